"""An independent oracle for the safety invariants, built from the raw stroke trace.

It never reads the firmware's counters or arithmetic. What it knows:
- the raw trace of completed strokes, as the fake motor saw them;
- the programs the test sent and the pump accepted, converted here by its own
  code (ug -> nL, floor), and the wall clock as the test set it;
- the boluses the pump granted (the dose and duration come from the test's
  own program, not from the pump);
- the disturbances the test itself injected (faults, stops, resets).

From those it computes S(t), what the programs scheduled up to t on the *true*
wall clock, and checks:
- I1 (and I3): for every interval [a, b], delivered <= scheduled + 1 stroke + eps;
  since every interval counts, time spent stopped can never be made up after;
- I2: every sliding 24 h and 1 h window ending at a stroke is within the cap in force;
- I6: in every interval free of disturbances, delivered >= scheduled - 1 stroke - eps.

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


class Oracle:
    def __init__(self, stroke_nl, wall_base):
        self.stroke = stroke_nl
        self.wall_base = wall_base
        self.table = None          # rate table of the program in force
        self.caps = None           # (daily nL, hourly nL) of the program in force
        self.wall_adjust = 0
        self.max_basal = 0         # fastest basal rate seen (nL/day), for eps
        self.max_bolus = 0         # fastest sum of concurrent bolus rates (nL/day)
        self.boluses = []          # (t0, duration_ms, volume_nl)
        # S cursor: basal scheduled up to cur_t, in nL*ms/day units (exact)
        self.cur_t = 0
        self.cur_s = 0
        # stroke processing
        self.k = 0                 # strokes of the trace already checked
        self.min_xa = 0            # I1: min over a of X(a), scaled
        self.win_day = deque()
        self.win_hour = deque()
        self.caps_hist = []        # (t, caps) changes, to know the cap in force at a stroke
        # liveness
        self.in_seg = False
        self.seg_max_xa = None
        self.dirty_until = 0
        self.held = False          # a stop the test caused is in force (suspend, jam, ...)
        self.live_checks = 0       # how many liveness comparisons were made
        self.violations = []

    # --- what the world did ----------------------------------------------
    def program(self, t, prog):
        self._basal_to(t)
        self.table = rate_table(prog)
        self.caps = caps_nl(prog)
        self.caps_hist.append((t, self.caps))
        self.max_basal = max(self.max_basal, max(r for _, r in self.table))

    def set_wall(self, t, new_wall_s):
        self._basal_to(t)
        self.wall_adjust = new_wall_s - (self.wall_base + t // 1000)

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

    def _basal_to(self, t):
        """Advance the cursor to t, integrating the program on the true wall clock."""
        assert t >= self.cur_t, "oracle evaluated out of order"
        while self.cur_t < t:
            if self.table is None:
                self.cur_t = t
                break
            tod = self._tod(self.cur_t)
            rate = rate_at(self.table, tod)
            secs = secs_to_change(self.table, tod)
            end = t if secs is None else min(t, (self.cur_t // 1000 + secs) * 1000)
            self.cur_s += rate * (end - self.cur_t)
            self.cur_t = end
        return self.cur_s

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
            d_before = self.k * st
            s_up = self.s_scaled(t, True)
            s_lo = self.s_scaled(t, False)
            xa = d_before - s_lo              # just before the stroke (a candidate)
            self.min_xa = min(self.min_xa, xa)
            xb = d_before + st - s_up         # just after it (a b candidate)
            if xb - self.min_xa > tol:
                self.violations.append("I1 over-delivery: at t=%d ms delivered exceeds scheduled by %.1f nL over some interval"
                                       % (t, (xb - self.min_xa) / DAY))
            self._window(t)
            self._live(t, d_before - s_lo, xb, tol)
            self.k += 1
        d = self.k * st
        self._live(now, d - self.s_scaled(now, False), None, tol)
        self.min_xa = min(self.min_xa, d - self.s_scaled(now, False))

    def _window(self, t):
        caps = None
        for ct, c in self.caps_hist:
            if ct <= t:
                caps = c
        for w, span, idx in ((self.win_day, DAY, 0), (self.win_hour, HOUR, 1)):
            w.append(t)
            while w and w[0] <= t - span:
                w.popleft()
            if caps is not None and len(w) * self.stroke > caps[idx]:
                self.violations.append("I2 cap: %d strokes (%d nL) in the %s ending at t=%d ms, cap %d nL"
                                       % (len(w), len(w) * self.stroke, "24 h" if idx == 0 else "1 h", t, caps[idx]))

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
