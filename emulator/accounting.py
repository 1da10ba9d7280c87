# Where the scheduled volume went: the judge's own account of a run, from
# the stroke trace, the schedule it works out (emulator/scheduled.py) and the
# pump's log, never the pump's counters:
#
#   scheduled = delivered + forfeited while stopped (by cause)
#             + refused by the governor + lost to restarts
#             + owed at the end (less than a stroke) + unexplained
#
# A restart loses what was owed and not yet a stroke: at most what was
# scheduled since the last stroke before it (a stroke and the grain at most),
# plus the one stroke it may have counted and not given. A stop (or a run
# of refusals) forfeits with it what was owed when it began: less than a
# stroke, from the stroke before it. What is left
# over, beyond a stroke still owed at the end, is a shortfall nothing explains:
# a silent loss, and liveness (I6) fails. The same pieces judge each stretch
# between two strokes (I9): scheduled there and not explained by a stop, a
# refusal or a restart is a silent stop.
from emulator.sortedsearch import bisect_left, bisect_right

from pump.controller import STOP_NAMES

DAY = 86400000
PRIORITY = [name for _, name in STOP_NAMES]      # a time in two stops counts for the first


def _pieces(stops, refusing, first, end):
    """The run from `first` to `end` cut where a stop or a refusal begins or
    ends: [(t0, t1, cause)], cause a stop's name, "refused" or None (running)."""
    cuts = {first, end}
    for t0, t1, _ in stops:
        cuts.add(max(min(t0, end), first))
        cuts.add(max(min(t1, end), first))
    for t0, t1 in refusing:
        cuts.add(max(min(t0, end), first))
        cuts.add(max(min(t1, end), first))
    cuts = sorted(cuts)
    out = []
    for a, b in zip(cuts, cuts[1:]):
        if b <= a:
            continue
        why = None
        for t0, t1, name in stops:
            if t0 <= a and b <= t1 and (why is None or PRIORITY.index(name) < PRIORITY.index(why)):
                why = name
        if why is None:
            for t0, t1 in refusing:
                if t0 <= a and b <= t1:
                    why = "refused"
        out.append((a, b, why))
    return out


def account(v, eps):
    """-> the account of a RunView (a dict, report.json's `accounting`)."""
    stroke = v.stroke
    prof = v.profile
    first, end = v.first_prog, v.end
    times = [t for t in v.times if t >= first]
    pieces = _pieces(v.stops, v.refusing, first, end)
    restarts = [t for t, _ in v.restarts if first < t < end]
    # the stalls' retries wait with the stroke still owed: a little time not given
    stalls = v.w.motor.stalls
    stall_ms = prof.get("stall_retry_ms", 1000) + prof.get("stroke_ms", 200)
    fastest = v.fastest()
    stall_allow = stalls * stall_ms * fastest // DAY
    gap_allowed = 2 * stroke + eps + stall_allow
    # a gap between strokes can hide a silent stop only if it is long enough to
    # owe more than gap_allowed at the fastest rate: only those are measured
    min_gap = gap_allowed * DAY // max(fastest, 1)
    gaps = []                # (a, b) between two strokes (or the first program, or the end)
    bounds = [first] + times + [end]
    for a, b in zip(bounds, bounds[1:]):
        if b > a:
            gaps.append((a, b))
    long_gaps = [(a, b) for a, b in gaps if b - a > min_gap]
    # S at every time the account needs, in one pass of the schedule
    need = set([first, end])
    for a, b, _ in pieces:
        need.add(a)
        need.add(b)
    for a, b in long_gaps:
        need.add(a)
        need.add(b)
    for t in restarts:
        need.add(t)
        k = bisect_left(times, t)
        need.add(times[k - 1] if k > 0 else first)
    # where a stop or a refusal begins after running: what was owed then goes with it
    stop_starts = [b_ for (a_, b_, w0), (_, _, w1) in zip(pieces, pieces[1:]) if w0 is None and w1 is not None]
    for t in stop_starts:
        k = bisect_left(times, t)
        need.add(times[k - 1] if k > 0 else first)
    sched = v.scheduled()
    s_at = {}
    for t in sorted(need):
        s_at[t] = sched.at(t)

    def s(a, b):
        return s_at[b] - s_at[a]
    by_cause = {}
    for a, b, why in pieces:
        if why is not None:
            by_cause[why] = by_cause.get(why, 0.0) + s(a, b)
    refused = by_cause.pop("refused", 0.0)
    scheduled = s_at[end]
    delivered = len(times) * stroke
    forfeited = sum(by_cause.values())
    raw = scheduled - delivered - forfeited - refused
    # each restart not in a stop: what was owed since the stroke before it
    # (a running pump strokes as soon as a stroke is owed: at most a stroke
    # and the grain), and the stroke it may have counted and not given
    allowed = 0.0
    for t in restarts:
        if any(a <= t < b and why is not None for a, b, why in pieces):
            continue
        k = bisect_left(times, t)
        prev = times[k - 1] if k > 0 else first
        allowed += min(s(prev, t), stroke + eps) + stroke
    lost_to_reset = min(max(raw, 0.0), allowed)
    at_stop_allowed = 0.0
    for t in stop_starts:
        k = bisect_left(times, t)
        at_stop_allowed += min(s(times[k - 1] if k > 0 else first, t), stroke)
    owed_at_stops = min(max(raw - lost_to_reset, 0.0), at_stop_allowed)
    # the pump gives whole strokes: less than one may still be owed at the end
    owed = min(max(raw - lost_to_reset - owed_at_stops, 0.0), stroke)
    unexplained = raw - lost_to_reset - owed_at_stops - owed
    tolerance = eps + stall_allow
    # the stretches between strokes (I9)
    silent = []
    worst_gap = 0.0
    for a, b in long_gaps:
        sch = s(a, b)
        expl = 0.0
        for p0, p1, why in pieces:
            if why is not None and p1 > a and p0 < b:
                lo, hi = max(p0, a), min(p1, b)
                if lo in s_at and hi in s_at:
                    expl += s(lo, hi)
                else:            # (a piece's end inside a gap is one of need's times)
                    expl += sch
        n_restarts = bisect_right(restarts, b) - bisect_left(restarts, a)
        left = sch - expl - n_restarts * stroke
        if left > worst_gap:
            worst_gap = left
        if left > gap_allowed:
            silent.append((a, b, int(left)))
    f = v.w.pump.facts()
    return {
        "scheduled_nl": int(scheduled),
        "delivered_nl": delivered,
        "forfeited_by_stop_nl": dict((k, int(x)) for k, x in sorted(by_cause.items())),
        "refused_nl": int(refused),
        "lost_to_reset_nl": int(lost_to_reset),
        "lost_to_reset_allowed_nl": int(allowed),
        "owed_at_stops_nl": int(owed_at_stops),
        "owed_at_end_nl": int(owed),
        "unexplained_nl": int(unexplained),
        "tolerance_nl": int(tolerance),
        "restarts": len(restarts),
        "gaps": len(gaps), "gaps_measured": len(long_gaps),
        "silent_gaps": silent[:20], "silent_gaps_n": len(silent),      # (the first 20)
        "worst_gap_nl": int(worst_gap), "gap_allowed_nl": int(gap_allowed),
        "judged_days": round((end - first) / DAY, 2),
        # the pump's own figures beside the judge's (its counters, carried across restarts)
        "pump_says": {"refused_nl": (v.w.carried_refused + f["refused_strokes"]) * stroke,
                      "forfeited_nl": v.w.carried_forfeited + f["forfeited_nl"],
                      "restarts": f.get("resets", 0), "reset_skipped_nl": f.get("reset_nl", 0),
                      "reservoir_uncertain_nl": f.get("uncertain_nl", 0)},
    }
