# The invariant checks the emulator runs on every run, from the stroke trace
# the simulated motor recorded and the programs the clinic sent. They do not
# read the firmware's counters. The caps bound what the pump *commands*, so
# strokes count at their nominal volume; the motor's accuracy error is reported
# beside them, not mixed in.
try:
    from bisect import bisect_left, bisect_right
except ImportError:    # MicroPython (the lab page runs these checks at the end of a run)
    def bisect_left(a, x):
        lo, hi = 0, len(a)
        while lo < hi:
            mid = (lo + hi) // 2
            if a[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def bisect_right(a, x):
        lo, hi = 0, len(a)
        while lo < hi:
            mid = (lo + hi) // 2
            if x < a[mid]:
                hi = mid
            else:
                lo = mid + 1
        return lo

from pump import alarms as A
from pump import eventlog as E
from pump.schedule import BRIDGE
from pump.controller import STOP_NAMES

DAY = 86400000
HOUR = 3600000
STOP_BITS = dict(STOP_NAMES)


def rate_table(prog):
    conc = prog["concentration_ug_ml"]
    if prog["mode"] == "continuous":
        return [(0, prog["daily_dose_ug"] * 1000000 // conc)]
    if prog["mode"] == "flex":
        return [(s["start_min"] * 60, s["daily_rate_ug"] * 1000000 // conc) for s in prog["steps"]]
    return [(0, 0)]


def _rate(table, tod):
    r = table[-1][1]
    for start, v in table:
        if start <= tod:
            r = v
    return r


def _secs_to_change(table, tod):
    if len(table) == 1:
        return None
    for start, _ in table:
        if start > tod:
            return start - tod
    return 86400 - tod + table[0][0]


class Scheduled:
    """S(t): what the programs in force scheduled up to t (nL x ms/day, exact),
    plus the boluses the pump granted spread over their durations, with the
    bridge's old rate while it runs. Flex steps follow the pump's wall clock as
    the pump's day schedule does: a jump forward at once (the part skipped is
    not owed), a jump back by holding its place in the day at the program's
    lowest rate until the wall clock has caught up (a part of the day is never
    owed twice). A change is taken the short way round the day."""

    def __init__(self, programs, walls, raw_events):
        self.changes = []    # (t, what, value)
        for t, prog, _ in programs:
            self.changes.append((t, 1, rate_table(prog)))
        for t, wall in walls:
            self.changes.append((t, 0, wall - t // 1000))
        self.boluses = []
        for t, kind, code, a, b in raw_events:
            if kind in (E.BOLUS, E.PRIME):
                self.boluses.append((t, b * 1000, a))
            elif kind == E.BRIDGE:
                self.changes.append((t, 2, b if code == 0 else None))
        self.changes.sort(key=lambda c: (c[0], c[1]))
        self.ci = 0
        self.table = None
        self.bridge = None
        self.wall_off = None
        self.hold_until = 0      # the day's schedule holds its place until then
        self.t = 0
        self.s = 0

    def _set_wall(self, tc, off):
        if self.wall_off is not None:
            place = ((self.wall_off + tc // 1000) if tc >= self.hold_until else self.held) % 86400
            d = ((off + tc // 1000) - place) % 86400
            if d > 43200:
                d -= 86400
            if d < 0:
                self.held = place
                self.hold_until = tc - d * 1000
            else:
                self.hold_until = 0
        self.wall_off = off

    def _apply_changes(self, t):
        while self.ci < len(self.changes) and self.changes[self.ci][0] <= t:
            tc, what, v = self.changes[self.ci]
            if what == 0:
                self._set_wall(tc, v)
            elif what == 1:
                self.table = v
            else:
                self.bridge = v
            self.ci += 1

    def basal_to(self, t):
        while self.t < t:
            self._apply_changes(self.t)
            nxt = self.changes[self.ci][0] if self.ci < len(self.changes) else t
            end = min(t, nxt) if nxt > self.t else t
            if self.table is None:
                self.t = end
                continue
            tod = ((self.wall_off or 0) + self.t // 1000) % 86400
            if self.bridge is not None:
                rate, secs = self.bridge, None
            elif self.t < self.hold_until:
                rate = min(r for _, r in self.table)
                secs = None
                end = min(end, self.hold_until)
            else:
                rate, secs = _rate(self.table, tod), _secs_to_change(self.table, tod)
            if secs is not None:
                end = min(end, (self.t // 1000 + secs) * 1000)
            self.s += rate * (end - self.t)
            self.t = end
        self._apply_changes(t)
        return self.s

    def at(self, t):
        """Scheduled nL up to t (float, exact enough for a 1-stroke tolerance)."""
        s = self.basal_to(t) / DAY
        for t0, d, v in self.boluses:
            if t > t0:
                s += v if t >= t0 + d or d == 0 else v * (t - t0) / d
        return s


def stop_intervals(raw_events, end):
    """[(t0, t1, why)] in which the pump must not stroke, from its own log: its
    stop records (a stop begun or ended, and after each restart the stops in
    force then, which a reset may have changed: a save it cut off)."""
    out = []
    open_ = {}
    for t, kind, code, a, b in raw_events:
        if kind != E.STOP:
            continue
        if code == 0:
            for bit, name in STOP_NAMES:
                if a & bit:
                    open_.setdefault(name, t)
                elif name in open_:
                    out.append((open_.pop(name), t, name))
            continue
        name = STOP_BITS.get(code, str(code))
        if a:
            open_.setdefault(name, t)
        elif name in open_:
            out.append((open_.pop(name), t, name))
    for why, t0 in open_.items():
        out.append((t0, end + 1, why))
    return sorted(out)


def _result(ident, name, ok, detail, **more):
    r = {"id": ident, "name": name, "ok": ok, "detail": detail}
    r.update(more)
    return r


def run_checks(w):
    """-> list of check results (dicts) for report.json."""
    stroke = w.profile["stroke_nl"]
    # Every check runs on the pump's own clock: a crystal that runs fast by
    # drift_ppm makes the pump deliver that much more per true day, which no
    # firmware can see. The drift itself is reported beside the checks.
    ppm = w.clock.drift_ppm

    def pt(t):
        return t + t * ppm // 1000000
    trace = [(pt(t), nl, kind, conc) for t, nl, kind, conc in w.motor.trace]
    end = pt(w.sc.duration_ms)
    progs = [(pt(t), prog, rb) for t, prog, rb in w.programs]
    walls = [(pt(t), wall) for t, wall in w.walls]
    raw_events = [(pt(e[0]),) + tuple(e[1:]) for e in w.raw_events]
    events = [(pt(e[0]),) + tuple(e[1:]) for e in w.events]
    out = []

    # the program (and concentration the pump believes) in force at each stroke
    def prog_at(t, pi):
        while pi + 1 < len(progs) and progs[pi + 1][0] <= t:
            pi += 1
        return pi

    # ---- I2: sliding 24 h and 1 h caps, in pg (nL x ug/mL) so strokes of two strengths add up
    worst = {"24 h": (0, None, 0), "1 h": (0, None, 0)}
    ok2 = True
    first_bad = None
    wins = {"24 h": [DAY, [], 0, 0], "1 h": [HOUR, [], 0, 0]}
    pi = 0
    for t, nl, kind, conc in trace:
        if not progs or t < progs[0][0]:
            continue
        pi = prog_at(t, pi)
        cur = progs[pi][1]
        conc_b = cur["concentration_ug_ml"]
        caps = {"24 h": cur["max_daily_ug"], "1 h": cur["max_hourly_ug"]}
        if kind == BRIDGE and pi > 0:
            old = progs[pi - 1][1]
            conc_b = old["concentration_ug_ml"]
            caps = {"24 h": old["max_daily_ug"], "1 h": old["max_hourly_ug"]}
        pg = stroke * conc_b
        for name, win in wins.items():
            span, q, head, total = win
            q.append((t, pg))
            total += pg
            while q[head][0] <= t - span:
                total -= q[head][1]
                head += 1
            if head > 4096:
                del q[:head]
                head = 0
            win[2], win[3] = head, total
            cap_pg = caps[name] * 1000000
            share = total * 1000 // cap_pg
            if share > worst[name][0]:
                worst[name] = (share, t, total // 1000000)
            if total > cap_pg:
                ok2 = False
                if first_bad is None:
                    first_bad = "%s window ending at %d ms holds %d ug, cap %d ug" % (name, t, total // 1000000, caps[name])
    out.append(_result("I2", "hard caps (sliding 24 h and 1 h)", ok2,
                       first_bad or "fullest 24 h window %.1f %% of its cap, fullest 1 h window %.1f %%"
                       % (worst["24 h"][0] / 10, worst["1 h"][0] / 10),
                       fullest_24h_permille=worst["24 h"][0], fullest_1h_permille=worst["1 h"][0]))

    # ---- I3: no stroke while the pump is stopped
    stops = stop_intervals(raw_events, end)
    bad = []
    si = 0
    for t, nl, kind, conc in trace:
        for t0, t1, why in stops:
            # a stroke in the same millisecond a stop begins was decided before it
            if t0 < t < t1:
                bad.append((t, why))
                break
    stopped_ms = sum(min(t1, end) - t0 for t0, t1, _ in stops)
    out.append(_result("I3", "no stroke while stopped", not bad,
                       ("%d strokes while stopped, first at %d ms (%s)" % (len(bad), bad[0][0], bad[0][1])) if bad
                       else "%d stop intervals, %.1f h stopped, no stroke in them" % (len(stops), stopped_ms / HOUR),
                       stop_intervals=len(stops)))

    # ---- I1 and I6: delivery against the schedule over every interval
    sched = Scheduled(progs, walls, raw_events)
    fastest = 0
    for _, prog, _ in progs:
        fastest = max([fastest] + [r for _, r in rate_table(prog)])
    # the fastest the boluses ever ran together (not their sum over the run)
    most = 0
    for t0, d, v in sched.boluses:
        together = sum(v2 * DAY // max(d2, 1) for t2, d2, v2 in sched.boluses if t2 < t0 + max(d, 1) and t0 < t2 + max(d2, 1))
        most = max(most, together)
    fastest += most
    eps = stroke + fastest * 2 // 86400 + 8
    # A wall-clock jump the pump was not told of (a glitch) reaches its flex
    # schedule at its next wake-up, up to max_sleep_ms later: the schedule here
    # switches at once, so allow that long at the fastest rate.
    max_sleep = w.profile.get("max_sleep_ms", 600000)
    if any(src == "world" and code == "clock_jump" for _, src, _, code, _ in events):
        eps += fastest * max_sleep // DAY
    quiet = _quiet_stretches(events, raw_events, progs, stops, end, trace, w.profile)
    min_x = 0.0
    worst1 = 0.0
    i1_bad = None
    d = 0
    for t, nl, kind, conc in trace:
        d += stroke
        x = d - sched.at(t)
        gain = x - min_x
        if gain > worst1:
            worst1 = gain
        if gain > eps and i1_bad is None:
            i1_bad = "at %d ms delivery is %.0f nL ahead of the schedule over some interval" % (t, gain)
        if x - stroke < min_x:
            min_x = x - stroke
    # liveness: inside each quiet stretch (no fault, stop, reset, refusal or
    # clinic change), from its start, at every stroke and at its end
    times = [t for t, _, _, _ in trace]
    worst6 = 0.0
    checks6 = 0
    i6_bad = None
    live_ms = 0
    for q0, q1 in quiet:
        if q1 - q0 < 2 * HOUR:
            continue
        live_ms += q1 - q0
        fresh = Scheduled(progs, walls, raw_events)
        k = bisect_left(times, q0)
        dq = k * stroke
        seg_max = dq - fresh.at(q0)
        k1 = bisect_left(times, q1)
        pts = [(times[j], (j + 1) * stroke) for j in range(k, k1)] + [(q1, k1 * stroke)]
        for t, dt in pts:
            x = dt - fresh.at(t)
            lag = seg_max - x - (stroke if t != q1 else 0)
            checks6 += 1
            if lag > worst6:
                worst6 = lag
            if lag > eps and i6_bad is None:
                i6_bad = "at %d ms delivery fell %.0f nL behind the schedule in a fault-free stretch" % (t, lag)
            if x > seg_max:
                seg_max = x
    out.append(_result("I1", "no over-delivery, no catch-up (every interval)", i1_bad is None,
                       i1_bad or "largest lead over the schedule in any interval %.0f nL (allowed %d)" % (worst1, eps),
                       largest_lead_nl=round(worst1), allowed_nl=eps))
    out.append(_result("I6", "liveness (fault-free stretches of 2 h or more)", i6_bad is None,
                       i6_bad or "%.1f days checked, %d comparisons, largest lag %.0f nL (allowed %d)"
                       % (live_ms / DAY, checks6, worst6, eps),
                       comparisons=checks6, checked_days=round(live_ms / DAY, 2), largest_lag_nl=round(worst6)))

    # ---- I5: never a stroke from an empty reservoir
    # a dry stroke is the pump's fault unless a pocket fill told it of drug
    # that never arrived (it cannot know), until the next real refill
    refills = sorted((pt(e.t_ms), bool(e.args.get("pocket_fill"))) for e in w.sc.events if e.do == "refill")
    dry_times = [t for t, nl, kind, conc in trace if nl == 0]
    unexplained = 0
    for t in dry_times:
        before = [pocket for rt, pocket in refills if rt <= t]
        if not (before and before[-1]):
            unexplained += 1
    dry = len(dry_times)
    out.append(_result("I5", "no stroke from an empty reservoir", unexplained == 0,
                       "%d strokes found the reservoir empty%s" % (
                           dry, (" (%d after a pocket fill the pump was told was a refill)" % (dry - unexplained))
                           if dry - unexplained else ""),
                       dry_strokes=dry, explained_by_pocket_fill=dry - unexplained))
    if ppm:
        out.append(_result("clock", "pump clock drift (not a firmware check)", True,
                           "the pump's crystal runs %+d ppm: on true time it delivered about %+d nL more "
                           "than on its own clock; the checks above run on its own clock"
                           % (ppm, sum(r[1] for r in trace) * ppm // 1000000), drift_ppm=ppm))
    return out, sched


def _quiet_stretches(events, raw_events, progs, stops, end, trace, profile):
    """-> [(t0, t1)] stretches with no disturbance. A disturbance is a world
    fault or repair, a reset, a refusal, an alarm raised or cleared, a
    suspend, a clock change, a refill or a new program: it disturbs from its
    time until 2 min after (the pump's re-check and stroke-feedback times); a
    stop disturbs until it ends; a granted bolus until 24 h after it ends
    (its strokes may be held back by the caps). A clock glitch disturbs until
    the pump's next wake-up can have seen it (max_sleep_ms); a reset until the
    first stroke after it (the pump restores its stops from storage, and a
    command cut short by the reset may not have taken effect); a stop from the
    stalls and retries that lead to it (a jam that comes after N strokes
    starts stalling before its alarm). Before the first program nothing is owed."""
    max_sleep = profile.get("max_sleep_ms", 600000)
    lead = (profile.get("stall_retries", 2) + 1) * (profile.get("stall_retry_ms", 1000)
                                                   + profile.get("stroke_ms", 200)) + 5000
    times = [r[0] for r in trace]
    marks = []
    for t, src, kind, code, detail in events:
        if src == "world" and code == "clock_jump":
            marks.append((t, t + max_sleep + 120000))
        elif kind == "reset" or (src == "world" and code in ("reset", "power_cut")):
            k = bisect_right(times, t)
            marks.append((t, (times[k] if k < len(times) else end) + 120000))
        elif src == "world" or kind in ("alarm", "alarm_clear", "refusal", "fault", "suspend", "stop",
                                        "resume", "clock", "refill", "storage", "ack", "bridge", "program",
                                        "time_of_day"):
            marks.append((t, t + 120000))
    for t0, t1, _ in stops:
        marks.append((t0 - lead, t1 + 120000))
    for t, kind, code, a, b in raw_events:
        if kind in (E.BOLUS, E.PRIME):
            marks.append((t, t + b * 1000 + DAY))
    marks.append((0, (progs[0][0] if progs else end) + 120000))
    marks.sort()
    merged = []
    for a, b in marks:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out = []
    for i, (a, b) in enumerate(merged):
        nxt = merged[i + 1][0] if i + 1 < len(merged) else end
        if nxt > b:
            out.append((b, min(nxt, end)))
    return out
