"""An independent oracle for the safety invariants, built from the raw stroke trace.

It never reads the firmware's counters or arithmetic. What it knows:
- the raw trace of completed strokes, as the fake motor saw them;
- the programs the test sent and the pump accepted, converted here by its own
  code (ug -> nL, floor), and the wall clock as the test set it;
- the boluses the pump granted (the dose and duration come from the test's
  own program, not from the pump);
- the disturbances the test itself injected (faults, stops, resets).

From those it computes S(t), what the programs scheduled up to t on the *true*
wall clock as the pump's day schedule is specified to follow it (forward at
once; back only by holding its place in the day, at the program's lowest
rate, until the wall clock has caught up, so no part of a day is owed twice),
and checks:
- I1 (and I3): for every interval [a, b], delivered <= scheduled + 1 stroke + eps;
  since every interval counts, time spent stopped can never be made up after;
- I2: every sliding 24 h and 1 h window ending at a stroke is within the cap in force;
- I6: in every interval free of disturbances, delivered >= scheduled - 1 stroke - eps;
- I1 on real time: in every 24 real hours, delivered <= what the programs in
  force then can give in that time (one program in force: its daily dose;
  several: each its own busiest stretch of the time it was in force) + the
  boluses granted in it + 1 stroke + eps, whatever the wall clock did. It does
  not use S(t): a schedule that follows the wall clock back and gives a part
  of the day twice fails it. The one allowance is for setting the clock
  forward, which skips a part of the day: the day that follows is that much
  shorter, so a window may hold the busiest stretch of that length more, minus
  what was skipped (the pump never starves the patient to make up for it);
- I9 no silent stop: whenever the pump says it is running, the strokes keep up
  with S(t) to within 2 strokes + eps (and the stall retries' time); whenever
  it says it is stopped, the alarm of that stop is active in its status.

eps covers the pump's one-second accounting grain: two seconds of the
fastest rate in force, plus a few nL of integer remainders.
"""
from collections import deque

DAY = 86_400_000
HOUR = 3_600_000


def rate_table(prog):
    """The oracle's own conversion of a program dict: [(start_s, nl_per_day)]."""
    conc = prog["concentration_ug_ml"]
    mode = prog["mode"]
    if mode == "continuous":
        return [(0, prog["daily_dose_ug"] * 1_000_000 // conc)]
    if mode == "flex":
        return [(s["start_min"] * 60, s["daily_rate_ug"] * 1_000_000 // conc) for s in prog["steps"]]
    return [(0, 0)]


def caps_nl(prog):
    conc = prog["concentration_ug_ml"]
    return prog["max_daily_ug"] * 1_000_000 // conc, prog["max_hourly_ug"] * 1_000_000 // conc


def rate_at(table, tod):
    rate = table[-1][1]
    for start, r in table:
        if start <= tod:
            rate = r
    return rate


def secs_to_change(table, tod):
    if len(table) == 1:
        return None
    for start, _ in table:
        if start > tod:
            return start - tod
    return 86400 - tod + table[0][0]


def span_nl_scaled(table, start_s, span_ms):
    """Basal of the table over span_ms from local time start_s, in nL*ms/day."""
    total = 0
    t = start_s * 1000
    left = span_ms
    while left > 0:
        tod = (t // 1000) % 86400
        secs = secs_to_change(table, tod)
        step = left if secs is None else min(left, secs * 1000 - t % 1000)
        total += rate_at(table, tod) * step
        t += step
        left -= step
    return total


def peak_nl_scaled(table, span_ms):
    """The most basal the table gives in any span_ms of the day (nL*ms/day). The
    integral over a sliding span is piecewise linear in its start, so its
    maximum has the span's start or end on a step boundary."""
    days, rest = divmod(span_ms, DAY)
    full = days * span_nl_scaled(table, 0, DAY)
    if rest == 0:
        return full
    cands = set()
    for start, _ in table:
        cands.add(start)
        cands.add((start - (rest + 999) // 1000) % 86400)
        cands.add((start - rest // 1000) % 86400)
    return full + max(span_nl_scaled(table, c, rest) for c in cands)


# The alarm each stopped state must show (I9); running states owe strokes.
STOP_ALARMS = {"occluded": ("occlusion",), "motor_stalled": ("motor_stall",),
               "out_of_drug": ("reservoir_empty",), "end_of_service": ("battery_eos",),
               "fault": ("internal_fault",), "storage_fault": ("storage_corrupt",),
               "needs_program": ("program_required", "storage_corrupt"),
               "dose_limited": ("dose_limit",), "safe_mode": ("storage_corrupt",)}
RUNNING = ("running", "stopped")


class Oracle:
    def __init__(self, stroke_nl, wall_base):
        self.stroke = stroke_nl
        self.wall_base = wall_base
        self.table = None          # rate table of the program in force
        self.caps = None           # (daily nL, hourly nL) of the program in force
        self.wall_adjust = 0
        self.hold_until = 0        # the day's schedule holds its place until then (ms)
        self.held_tod = 0
        self.max_basal = 0         # fastest basal rate seen (nL/day), for eps
        self.max_bolus = 0         # fastest sum of concurrent bolus rates (nL/day)
        self.boluses = []          # (t0, duration_ms, volume_nl)
        # S cursor: basal scheduled up to cur_t, in nL*ms/day units (exact)
        self.cur_t = 0
        self.cur_s = 0
        self.checkpoints = []      # (t, S, table, wall adjust, hold until) at each change
        # stroke processing
        self.k = 0                 # strokes of the trace already checked
        self.min_xa = 0            # I1: min over a of X(a), scaled
        self.win_day = deque()     # (t, pg) of the strokes in the last 24 h
        self.win_hour = deque()    # and in the last hour
        self.win_total = [0, 0]    # their pg
        self.caps_hist = []        # (t, caps in pg) changes, to know the cap in force at a stroke
        self.concs = []            # (t, ug/mL) of the drug in the reservoir from t on
        # liveness
        self.in_seg = False
        self.seg_max_xa = None
        self.dirty_until = 0
        self.held = False          # a stop the test caused is in force (suspend, jam, ...)
        self.live_checks = 0       # how many liveness comparisons were made
        self.violations = []
        # I1 on real time
        self.tables = []           # (t, table) of every program accepted
        self.forwards = []         # (t, skipped ms, place s, table): the clock set forward
        self.win_real = deque()
        self.real_checks = 0       # windows compared
        self.worst_real = 0.0      # largest delivered / bound seen
        # I9: the pump's reported state, as the harness saw it after each wake-up
        self.states = []           # (t, state, alarms) not yet judged, in time order
        self.state = None
        self.running_since = None  # (t, S) from which a running pump owes strokes
        self.silent_checks = 0     # running stretches and stops judged

    # --- what the world did ----------------------------------------------
    def program(self, t, prog):
        self._basal_to(t)
        self.table = rate_table(prog)
        self.tables.append((t, self.table))
        self._checkpoint()
        self.caps = caps_nl(prog)
        conc = prog["concentration_ug_ml"]
        self.caps_hist.append((t, (prog["max_daily_ug"] * 1_000_000, prog["max_hourly_ug"] * 1_000_000)))
        self.max_basal = max(self.max_basal, max(r for _, r in self.table))

    def set_wall(self, t, new_wall_s):
        self._basal_to(t)
        place = self._tod(t) if t >= self.hold_until else self.held_tod
        self.wall_adjust = new_wall_s - (self.wall_base + t // 1000)
        behind = (place - self._tod(t)) % 86400      # the short way round the day
        if 0 < behind < 43200:
            self.held_tod = place
            self.hold_until = t + behind * 1000
        else:
            self.hold_until = 0
            ahead = (self._tod(t) - place) % 86400
            if ahead and self.table is not None:
                self.forwards.append((t, ahead * 1000, place, self.table))
        self._checkpoint()

    def drug(self, t, conc):
        """The reservoir was refilled with conc ug/mL: strokes from t carry it."""
        self.concs.append((t, conc))

    def saw(self, t, state, alarms):
        """The pump's state and active alarms after a wake-up ("reset": it restarted)."""
        self.states.append((t, state, alarms))

    def grant(self, t, volume_nl, duration_ms):
        self.boluses.append((t, duration_ms, volume_nl))
        live = sum(v * DAY // d + 1 for t0, d, v in self.boluses if t0 + d > t)
        self.max_bolus = max(self.max_bolus, live)

    def disturb(self, until):
        """A fault, stop or reset from now until `until`: liveness is not owed."""
        self.in_seg = False
        self.dirty_until = max(self.dirty_until, until)

    def hold(self, now, held):
        """A stop of unknown length begins (held) or ends (not held) at now."""
        if held:
            self.in_seg = False
        elif self.held:
            self.disturb(now)
        self.held = held

    # --- S(t) ------------------------------------------------------------
    def _tod(self, t):
        return (self.wall_base + self.wall_adjust + t // 1000) % 86400

    def _integrate(self, t0, s0, t, table, adjust, hold_until):
        """S's basal from (t0, s0) to t under one model (no change in between)."""
        while t0 < t:
            if table is None:
                return s0
            if t0 < hold_until:
                end = min(t, hold_until)
                s0 += min(r for _, r in table) * (end - t0)
                t0 = end
                continue
            tod = (self.wall_base + adjust + t0 // 1000) % 86400
            secs = secs_to_change(table, tod)
            end = t if secs is None else min(t, (t0 // 1000 + secs) * 1000)
            s0 += rate_at(table, tod) * (end - t0)
            t0 = end
        return s0

    def _basal_to(self, t):
        """Basal scheduled up to t, integrating the program on the true wall clock.
        The cursor moves forward; a time before it (a state the pump reported,
        judged after a later program change) is worked out from the checkpoint
        the oracle kept at each change of program or clock."""
        if t < self.cur_t:
            cps = [c for c in self.checkpoints if c[0] <= t]
            t0, s0, table, adjust, hold_until = cps[-1] if cps else (0, 0, None, 0, 0)
            return self._integrate(t0, s0, t, table, adjust, hold_until)
        self.cur_s = self._integrate(self.cur_t, self.cur_s, t, self.table, self.wall_adjust, self.hold_until)
        self.cur_t = t
        return self.cur_s

    def _checkpoint(self):
        self.checkpoints.append((self.cur_t, self.cur_s, self.table, self.wall_adjust, self.hold_until))

    def _bolus_scaled(self, t, up):
        total = 0
        for t0, d, v in self.boluses:
            el = min(max(t - t0, 0), d)
            num = v * DAY * el
            total += -((-num) // d) if up else num // d
        return total

    def s_scaled(self, t, up):
        return self._basal_to(t) + self._bolus_scaled(t, up)

    # --- checks ------------------------------------------------------------
    def eps_scaled(self):
        return (2 * (self.max_basal + self.max_bolus) * 1000 // DAY + 5) * DAY

    def check(self, trace, now):
        """Check every stroke not yet checked, then the state at `now`."""
        st = self.stroke * DAY
        tol = st + self.eps_scaled()
        while self.k < len(trace):
            t, kind = trace[self.k]
            if t > now:
                break
            self._states_to(t, tol)
            d_before = self.k * st
            s_up = self.s_scaled(t, True)
            s_lo = self.s_scaled(t, False)
            xa = d_before - s_lo              # just before the stroke (a candidate)
            self.min_xa = min(self.min_xa, xa)
            xb = d_before + st - s_up         # just after it (a b candidate)
            if xb - self.min_xa > tol:
                self.violations.append("I1 over-delivery: at t=%d ms delivered exceeds scheduled by %.1f nL over some interval"
                                       % (t, (xb - self.min_xa) / DAY))
            self._silent(t, s_lo, tol)
            self.running_since = (t, s_lo) if self.state in RUNNING else None
            self._window(t)
            self._real_day(t, tol)
            self._live(t, d_before - s_lo, xb, tol)
            self.k += 1
        d = self.k * st
        self._states_to(now + 1, tol)
        self._silent(now, self.s_scaled(now, False), tol)
        self._live(now, d - self.s_scaled(now, False), None, tol)
        self.min_xa = min(self.min_xa, d - self.s_scaled(now, False))

    # --- I9 ------------------------------------------------------------------
    def _states_to(self, t, tol):
        """Judge the state records before t, in time order with the strokes."""
        while self.states and self.states[0][0] < t:
            ts, state, alarms = self.states.pop(0)
            s = self.s_scaled(ts, False)
            self._silent(ts, s, tol)
            if state == "reset":
                # a restart loses what was owed but not yet a stroke: owed anew from here
                if self.running_since is not None:
                    self.running_since = (ts, s)
                continue
            need = STOP_ALARMS.get(state)
            owed = any(tp < ts for tp, _ in self.tables)     # a program was in force before
            if need and owed and not any(a in alarms for a in need):
                self.violations.append("I9 silent stop: at t=%d ms the pump is %s with no %s alarm (active: %s)"
                                       % (ts, state, " or ".join(need), ", ".join(sorted(alarms)) or "none"))
            self.silent_checks += 1
            if state in RUNNING:
                if self.state not in RUNNING or self.running_since is None:
                    self.running_since = (ts, s)
            else:
                self.running_since = None
            self.state = state

    def _silent(self, t, s, tol):
        """While the pump says it runs, what S(t) owes since then is stroked."""
        if self.running_since is None:
            return
        if t < self.dirty_until or self.held:
            self.running_since = (t, s)    # owed again from the end of what the test caused
            return
        t0, s0 = self.running_since
        if s - s0 > tol + self.stroke * DAY:
            self.violations.append("I9 silent stop: from t=%d to %d ms the pump said it was %s but gave nothing "
                                   "of %.0f nL scheduled" % (t0, t, self.state, (s - s0) / DAY))
            self.running_since = (t, s)

    # --- I1 on real time -----------------------------------------------------
    def _real_bound(self, a, b, tol):
        """The most the pump may give in (a, b], nL*ms/day (see the module's I1)."""
        bound = tol
        segs = []
        for i, (t, table) in enumerate(self.tables):
            t1 = self.tables[i + 1][0] if i + 1 < len(self.tables) else b
            lo, hi = max(t, a), min(t1, b)
            if hi > lo:
                segs.append((table, hi - lo))
        if len(segs) == 1:
            bound += span_nl_scaled(segs[0][0], 0, DAY) if segs[0][1] >= DAY - 1000 else peak_nl_scaled(*segs[0])
        else:
            bound += sum(peak_nl_scaled(table, span) for table, span in segs)
        for t0, d, v in self.boluses:
            el = min(max(b - t0, 0), d) - min(max(a - t0, 0), d)
            if el > 0:
                bound += -((-v * DAY * el) // d)
        for t, skipped, place, table in self.forwards:
            if a < t <= b:
                bound += max(0, peak_nl_scaled(table, skipped) - span_nl_scaled(table, place, skipped))
        return bound

    def _real_day(self, t, tol):
        w = self.win_real
        w.append(t)
        while w[0] <= t - DAY:
            w.popleft()
        got = len(w) * self.stroke * DAY
        # fast path: under the average of the programs in force (a lower bound of the bound)
        floor = tol
        for i, (tp, table) in enumerate(self.tables):
            t1 = self.tables[i + 1][0] if i + 1 < len(self.tables) else t
            span = min(t1, t) - max(tp, t - DAY)
            if span > 0:
                floor += span_nl_scaled(table, 0, DAY) * span // DAY
        self.real_checks += 1
        if got <= floor:
            return
        bound = self._real_bound(t - DAY, t, tol)
        self.worst_real = max(self.worst_real, got / bound)
        if got > bound:
            self.violations.append("I1 on real time: %d strokes (%d nL) in the 24 real hours ending at t=%d ms, "
                                   "at most %.0f nL may be given" % (len(w), len(w) * self.stroke, t, bound / DAY))

    def _window(self, t):
        """I2 in drug mass (pg: nL x ug/mL), so that strokes of two strengths add
        up across a change of drug: each stroke carries the reservoir's drug."""
        caps = None
        for ct, c in self.caps_hist:
            if ct <= t:
                caps = c
        conc = 0
        for ct, c in self.concs:
            if ct <= t:
                conc = c
        pg = self.stroke * conc
        for w, span, idx in ((self.win_day, DAY, 0), (self.win_hour, HOUR, 1)):
            w.append((t, pg))
            self.win_total[idx] += pg
            while w and w[0][0] <= t - span:
                self.win_total[idx] -= w.popleft()[1]
            if caps is not None and self.win_total[idx] > caps[idx]:
                self.violations.append("I2 cap: %d strokes (%.1f ug) in the %s ending at t=%d ms, cap %d ug"
                                       % (len(w), self.win_total[idx] / 1e6, "24 h" if idx == 0 else "1 h", t,
                                          caps[idx] // 1_000_000))

    def _live(self, t, x_low, x_high, tol):
        if self.held or t < self.dirty_until or self.table is None:
            self.in_seg = False
            return
        if not self.in_seg:
            self.in_seg = True
            self.seg_max_xa = x_low
        if x_low - self.seg_max_xa < -tol:
            self.violations.append("I6 liveness: at t=%d ms delivery fell %.1f nL behind the program in a fault-free interval"
                                   % (t, (self.seg_max_xa - x_low) / DAY))
        self.live_checks += 1
        if x_high is not None:
            self.seg_max_xa = max(self.seg_max_xa, x_high)
