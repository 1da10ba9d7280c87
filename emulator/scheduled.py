# S(t): what the programs in force scheduled up to t, as a judge of the run
# works it out from what the clinic sent and the wall clock did, not from the
# pump's counters (nL x ms/day, exact).
#
# - Each accepted program's basal, per flex step. Flex steps follow the
#   pump's wall clock as the pump's day schedule is specified to: a jump
#   forward at once (the part skipped is not owed), a jump back by holding its
#   place in the day at the program's lowest rate until the wall clock has
#   caught up (no part of the day owed twice); a change the short way round.
# - A bridge runs the old program's rate until its end record.
# - In safe mode (a start that lost the program record) the program's own
#   safe rate, until a clinician programs again.
# - Each bolus the pump granted, spread over its duration, ended early by a
#   suspend or a restart (both cancel running boluses).
from pump import eventlog as E

DAY = 86400000
_NEVER = 1 << 62         # (no change to come)
SAFE_MODE = 8            # firmware/pump/recovery.py: the storage record that says safe mode began


def rate_table(prog):
    conc = prog["concentration_ug_ml"]
    if prog["mode"] == "continuous":
        return [(0, prog["daily_dose_ug"] * 1000000 // conc)]
    if prog["mode"] == "flex":
        return [(s["start_min"] * 60, s["daily_rate_ug"] * 1000000 // conc) for s in prog["steps"]]
    return [(0, 0)]


def safe_table(prog):
    return [(0, prog.get("safe_rate_ug_day", 0) * 1000000 // prog["concentration_ug_ml"])]


def rate_at(table, tod):
    r = table[-1][1]
    for start, v in table:
        if start <= tod:
            r = v
    return r


def secs_to_change(table, tod):
    if len(table) == 1:
        return None
    for start, _ in table:
        if start > tod:
            return start - tod
    return 86400 - tod + table[0][0]


def daily_nl(prog):
    """What a program gives in a whole day (nL): a bridge runs at this rate."""
    table = rate_table(prog)
    total = 0
    for i, (start, rate) in enumerate(table):
        end = table[i + 1][0] if i + 1 < len(table) else 86400
        total += rate * (end - start)
    return total // 86400


def cut_spans(grants, ends, ends_after=()):
    """grants: [(t0, volume nL, duration ms)]; ends: times a running bolus is
    cancelled (a suspend, a restart); ends_after: such times that come after
    a grant in the same ms (a suspension the clinic ordered after it).
    -> [(t0, duration ms, volume nL)], each cut short at the first end while
    it ran: what had run by then is owed, the rest is cancelled."""
    out = []
    for t, a, d in grants:
        cut = sorted([x for x in ends if t < x < t + d] + [x for x in ends_after if t <= x < t + d])
        if cut:
            el = cut[0] - t
            out.append((t, el, a * el // d if d else a))
        else:
            out.append((t, d, a))
    return out


def bolus_spans(raw_events):
    """The boluses and primes as the pump's own log tells them (a served run,
    the plots), cut at the suspends and restarts it logged."""
    ends = [t for t, kind, code, a, b in raw_events if kind in (E.SUSPEND, E.RESET)]
    return cut_spans([(t, a, b * 1000) for t, kind, code, a, b in raw_events if kind in (E.BOLUS, E.PRIME)], ends)


class Scheduled:
    """S(t) for one run. programs: [(t, program dict, ...)] accepted; walls:
    [(t, wall_s at t)] after each change of the pump's wall clock."""

    def __init__(self, programs, walls, raw_events, boluses=None, bridges=None):
        """boluses: [(t0, duration ms, nL)] owed (default: as the pump logged
        them); bridges: [(t0, nL/day, t_end)] (default: the pump's bridge records)."""
        self.changes = []    # (t, what, value): 0 wall, 1 program, 2 bridge, 3 safe mode
        last = None
        for p in programs:
            self.changes.append((p[0], 1, (rate_table(p[1]), p[1])))
            last = p[1]
        for t, wall in walls:
            self.changes.append((t, 0, wall - t // 1000))
        self.boluses = bolus_spans(raw_events) if boluses is None else boluses
        if bridges is not None:
            for t0, rate, t1 in bridges:
                self.changes.append((t0, 2, rate))
                if t1 is not None:
                    self.changes.append((t1, 2, None))
        for t, kind, code, a, b in raw_events:
            if kind == E.BRIDGE and bridges is None:
                self.changes.append((t, 2, b if code == 0 else None))
            elif kind == E.STORAGE and code == SAFE_MODE:
                self.changes.append((t, 3, a))
        self.changes.sort(key=lambda c: (c[0], c[1]))
        self.ci = 0
        self.table = None
        self.prog = None
        self.safe = False
        self.bridge = None
        self.wall_off = None
        self.hold_until = 0
        self.held = 0
        self.t = 0
        self.s = 0
        self._seg_rate = 0       # the stretch basal_to is in: its rate, and where it ends
        self._seg_end = -1
        self.last_program = last

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
                self.table, self.prog = v
                self.safe = False
            elif what == 2:
                self.bridge = v
            elif self.prog is not None:
                # safe mode: the program's own safe rate until the next program
                self.table = safe_table(self.prog)
                self.safe = True
            self.ci += 1

    def basal_to(self, t):
        if t < self._seg_end:
            # the usual call (a stroke a few seconds after the last): still in
            # the stretch at one rate found last time, with no change before t
            self.s += self._seg_rate * (t - self.t)
            self.t = t
            return self.s
        while self.t < t:
            self._apply_changes(self.t)
            # the stretch from self.t at one rate: up to the next change, the
            # end of a hold or the next flex step, whichever is first
            seg_end = self.changes[self.ci][0] if self.ci < len(self.changes) else _NEVER
            if self.table is None:
                rate = 0
            elif self.bridge is not None:
                rate = self.bridge
            elif self.t < self.hold_until:
                rate = min(r for _, r in self.table)
                if self.hold_until < seg_end:
                    seg_end = self.hold_until
            else:
                tod = ((self.wall_off or 0) + self.t // 1000) % 86400
                rate, secs = rate_at(self.table, tod), secs_to_change(self.table, tod)
                if secs is not None and (self.t // 1000 + secs) * 1000 < seg_end:
                    seg_end = (self.t // 1000 + secs) * 1000
            end = t if t < seg_end else seg_end
            self.s += rate * (end - self.t)
            self.t = end
            self._seg_rate, self._seg_end = rate, seg_end
        self._apply_changes(t)
        return self.s

    def bolus_at(self, t):
        s = 0.0
        for t0, d, v in self.boluses:
            if t > t0:
                s += v if t >= t0 + d or d == 0 else v * (t - t0) / d
        return s

    def at(self, t):
        """Scheduled nL up to t (float, exact enough for a 1-stroke tolerance).
        Times must not go back (a fresh Scheduled for an earlier one)."""
        return self.basal_to(t) / DAY + self.bolus_at(t)
