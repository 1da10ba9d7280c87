# Were the governor's refusals for the caps true? A refusal is a stated cause
# for strokes not given (I6, I9), so a pump that refuses with room under its
# caps would hide a stop behind it. Judged from the stroke trace, not the
# pump's windows: at each refusal for a cap, and every 10 minutes while the
# run of refusals lasts and the schedule owed two strokes or more in those 10
# minutes (so the pump asked its governor again), the strokes in that window (widened by one of the
# governor's slots, which count whole) plus the one refused must pass the
# cap of a program in force in that window, unless a restart came within it
# (a restart may count its windows full: the safe side).
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
    """-> [(t, text)] refusals for a cap with room under it, first of each run."""
    stroke = v.stroke
    starts = [t for t, _, _ in v.progs]
    restarts = [t for t, _ in v.restarts]
    out = []
    records = [(t, b) for t, kind, code, a, b in v.raw_events
               if kind == E.REFUSAL and a == E.REQ_STROKE and code != 0 and b in SPANS]
    ends = [t1 for _, t1 in v.refusing]
    for t, reason in records:
        k = bisect_left(ends, t)
        run_end = min(ends[k] if k < len(ends) else v.end, v.end)
        span, key, label = SPANS[reason]
        sched = v.scheduled()
        at = t
        while at <= run_end:
            if any(s0 <= at < s1 for s0, s1, _ in v.stops):    # stopped: it asks nothing
                prev = sched.at(at)
                at += STEP_MS
                continue
            if at > t:
                if sched.at(at) - prev < 2 * stroke:    # nothing asked of the governor
                    prev = sched.at(at)
                    at += STEP_MS
                    continue
            prev = sched.at(at)
            lo = at - span
            if bisect_right(restarts, at) - bisect_right(restarts, lo - DAY_SLOT_MS) == 0:
                p0 = max(bisect_right(starts, lo) - 1, 0)
                p1 = bisect_right(starts, at) - 1
                if p1 >= 0:
                    cap = min(_cap_strokes(v.progs[i][1], key, stroke) for i in range(p0, p1 + 1))
                    n = bisect_right(v.times, at) - bisect_right(v.times, lo)
                    # one stroke of slack: a stroke in the same millisecond is either side
                    if n + 2 <= cap:
                        out.append((at, "refused for the %s cap with %d strokes in the window, cap %d"
                                    % (label, n, cap)))
                        break
            at += STEP_MS
    return out
