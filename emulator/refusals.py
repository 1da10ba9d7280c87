# Were the governor's refusals for the caps true? A refusal is a stated cause
# for strokes not given (I6, I9), so a pump that refuses with room under its
# caps would hide a stop behind it. Judged from the stroke trace, not the
# pump's windows (widened by one of the governor's slots, which count whole):
# at each refusal for a cap the window must hold that cap less one stroke,
# unless a restart came within it (a restart may count its windows full: the
# safe side); and a run of refusals must end once the window has room for two
# strokes and the schedule has owed two more.
from pump import eventlog as E
from pump.governor import CAP_DAILY, CAP_HOURLY, DAY_SLOT_MS, HOUR_SLOT_MS

from emulator.sortedsearch import bisect_left, bisect_right

DAY = 86400000
HOUR = 3600000
STEP_MS = 600000
SPANS = {CAP_DAILY: (DAY + DAY_SLOT_MS, "max_daily_ug", "24 h"),
         CAP_HOURLY: (HOUR + HOUR_SLOT_MS, "max_hourly_ug", "1 h")}


def _cap_strokes(prog, key, stroke):
    return prog[key] * 1000000 // prog["concentration_ug_ml"] // stroke


def unjustified(v):
    """-> [(t, text)] refusals for a cap with room under it, first of each run.

    At a refusal record the governor was asked then: the window must hold the
    cap (less one stroke of slack). Later in the run, every 10 minutes: no
    stroke is given while a run lasts, so the window only empties; if it has
    room for two strokes, the run must end by the time the schedule owes two
    more (the pump asks its governor whenever a stroke is owed)."""
    stroke = v.stroke
    starts = [t for t, _, _ in v.progs]
    restarts = [t for t, _ in v.restarts]
    out = []
    records = [(t, b) for t, kind, code, a, b in v.raw_events
               if kind == E.REFUSAL and a == E.REQ_STROKE and code != 0 and b in SPANS]
    ends = [t1 for _, t1 in v.refusing]

    def room(at, span, key):
        """-> (strokes in the window, cap) if there was room for two, else None."""
        lo = at - span
        if bisect_right(restarts, at) - bisect_right(restarts, lo - DAY_SLOT_MS):
            return None          # a restart may have counted its windows full
        p0 = max(bisect_right(starts, lo) - 1, 0)
        p1 = bisect_right(starts, at) - 1
        if p1 < 0:
            return None
        cap = min(_cap_strokes(v.progs[i][1], key, stroke) for i in range(p0, p1 + 1))
        n = bisect_right(v.times, at) - bisect_right(v.times, lo)
        return (n, cap) if n + 2 <= cap else None

    def owes_two_by(at, end):
        """Does the schedule owe two strokes after `at`, outside a stop, before `end`?"""
        sched = v.scheduled()
        s0 = sched.at(at)
        probe = at
        while probe < end:
            probe = min(probe + 10000, end)
            if sched.at(probe) - s0 >= 2 * stroke:
                return probe < end and not any(a <= probe and at < b for a, b, _ in v.stops)
        return False
    for t, reason in records:
        k = bisect_left(ends, t)
        run_end = min(ends[k] if k < len(ends) else v.end, v.end)
        span, key, label = SPANS[reason]
        found = room(t, span, key)
        at = t
        while found is None and at + STEP_MS <= run_end:
            at += STEP_MS
            r = room(at, span, key)
            if r is not None and owes_two_by(at, run_end):
                found = r
        if found is not None:
            out.append((at, "refused for the %s cap with %d strokes in the window, cap %d" % ((label,) + found)))
    return out
