# Trumpet curve: the flow-rate error a patient could see over short windows,
# as IEC 60601-2-24 presents infusion pump accuracy (2, 5, 11, 19, 31 min).
# For each window length, every window of that length in a steady stretch is
# compared with the programmed rate; the curve is the largest and smallest
# percentage error. A stroke pump's short windows are dominated by its
# quantisation: a 2 min window holds few strokes.
WINDOWS_MIN = (2, 5, 11, 19, 31)


def trumpet(trace, t0, t1, rate_nl_day, windows_min=WINDOWS_MIN):
    """trace: [(t_ms, nl, ...)]; [t0, t1) a stretch at a steady programmed rate.
    -> [(window_min, max_err_pct, min_err_pct)] (empty if the stretch is short)."""
    times = [r[0] for r in trace if t0 <= r[0] < t1]
    vols = [r[1] for r in trace if t0 <= r[0] < t1]
    out = []
    if rate_nl_day <= 0:
        return out
    cum = [0]
    for v in vols:
        cum.append(cum[-1] + v)
    import bisect
    for wmin in windows_min:
        span = wmin * 60000
        expect = rate_nl_day * span / 86400000.0
        hi, lo = None, None
        # windows start at each minute of the stretch
        t = t0
        while t + span <= t1:
            a = bisect.bisect_left(times, t)
            b = bisect.bisect_left(times, t + span)
            err = (cum[b] - cum[a] - expect) * 100.0 / expect
            hi = err if hi is None or err > hi else hi
            lo = err if lo is None or err < lo else lo
            t += 60000
        if hi is not None:
            out.append((wmin, hi, lo))
    return out


def steady_stretch(report, trace, end):
    """The longest stretch with one continuous program and no alarm: (t0, t1, nL/day)."""
    progs = [p for p in report["programs"] if p["mode"] == "continuous"]
    best = None
    marks = sorted([a["first_raised_ms"] for a in report["alarms"]] + [p["t_ms"] for p in report["programs"]] + [end])
    for p in progs:
        t0 = p["t_ms"] + 3600000
        t1 = min([m for m in marks if m > p["t_ms"]] or [end])
        if t1 - t0 > 3600000 and (best is None or t1 - t0 > best[1] - best[0]):
            best = (t0, min(t1, t0 + 7 * 86400000), p["daily_nl"])
    return best
