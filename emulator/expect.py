# A scenario's [[expect]] judged against the run. Alarms and refusals come
# from the pump's log; flags from the patient model; everything about strokes
# from the trace the motor recorded (trace.csv), not from the pump.
#
# Each result: {"expect": what in words, "ok": true/false, "status": "ok" or
# "fail", "first_ms": the first time it was seen or None, "detail": the figure
# it was judged on}.
from pump import alarms as A
from pump import eventlog as E
from pump.controller import REFUSAL_NAMES
from pump.schedule import BOLUS, PATIENT

from emulator.preset import fmt_time

DAY = 86400000


def _res(what, ok, first_ms=None, detail=""):
    return {"expect": what, "ok": bool(ok), "status": "ok" if ok else "fail", "first_ms": first_ms,
            "detail": detail}


def _window(x):
    return "between %s and %s" % (fmt_time(x["from_ms"]), fmt_time(x["to_ms"]))


def _raised(x, raw_events, kind, name_of):
    """An alarm or refusal expectation from the pump's log."""
    key = x["kind"]
    times = [t for t, k, code, a, b in raw_events if k == kind and name_of(code) == x[key] and t >= x["after_ms"]]
    hit = [t for t in times if x["within_ms"] is None or t <= x["after_ms"] + x["within_ms"]]
    what = "%s %s %s" % (key, x[key], "raised" if x["raised"] else "not raised")
    if key == "refusal":
        what = "refusal %s %s" % (x[key], "logged" if x["raised"] else "not logged")
    if x["within_ms"] is not None:
        what += " within %d min of %s" % (x["within_ms"] // 60000, fmt_time(x["after_ms"]))
    elif x["after_ms"]:
        what += " after %s" % fmt_time(x["after_ms"])
    return _res(what, bool(hit) == x["raised"], hit[0] if hit else None,
                "%d in the window" % len(hit))


def _ug(trace, t0, t1):
    """Drug (ug) the motor really moved in (t0, t1]: its volume x the strength it carried."""
    return sum(nl * conc for t, nl, kind, conc in trace if t0 < t <= t1) / 1e6


def _max_window(trace, span):
    """The most drug (ug) in any window of `span` real ms, and where it ends."""
    best, at = 0, None
    head = 0
    total = 0
    for t, nl, kind, conc in trace:
        total += nl * conc
        while trace[head][0] <= t - span:
            total -= trace[head][1] * trace[head][3]
            head += 1
        if total > best:
            best, at = total, t
    return best / 1e6, at


def evaluate(w, flags, other_trace=None):
    """-> the results of w's scenario's expectations. flags: the patient
    model's [{flag, t_ms}]; other_trace(path): the trace rows of another
    scenario's run (same_trace_as), or None where it cannot run (the lab)."""
    trace = w.motor.trace
    raw = w.raw_events
    out = []
    for x in w.sc.expect:
        kind = x.get("kind") or ("alarm" if "alarm" in x else "flag")
        if kind == "alarm":
            out.append(_raised(dict(x, kind="alarm"), raw, E.ALARM, A.name))
        elif kind == "refusal":
            out.append(_raised(x, raw, E.REFUSAL,
                               lambda c: REFUSAL_NAMES[c] if 0 <= c < len(REFUSAL_NAMES) else str(c)))
        elif kind == "flag":
            hit = [f["t_ms"] for f in flags if f["flag"] == x["flag"]]
            out.append(_res("patient flag %s %s" % (x["flag"], "raised" if x["raised"] else "not raised"),
                            bool(hit) == x["raised"], hit[0] if hit else None,
                            "raised %d time(s)%s" % (len(hit), ", first at " + fmt_time(hit[0]) if hit else "")))
        elif kind == "no_strokes_after":
            hit = [t for t, nl, k, c in trace if x["from_ms"] < t <= x["to_ms"]]
            out.append(_res("no stroke %s" % _window(x).replace("between", "after", 1).replace(" and ", " up to "),
                            not hit, hit[0] if hit else None, "%d strokes" % len(hit)))
        elif kind == "delivered_ug":
            ug = _ug(trace, x["from_ms"], x["to_ms"])
            out.append(_res("delivered %g .. %g ug %s" % (x["min_ug"], x["max_ug"], _window(x)),
                            x["min_ug"] <= ug <= x["max_ug"], None, "%.1f ug" % ug))
        elif kind == "boluses_granted":
            want = {"any": None, "clinician": (E.BOLUS, BOLUS), "patient": (E.BOLUS, PATIENT),
                    "prime": (E.PRIME, 0)}[x["bolus_kind"]]
            got = [t for t, k, code, a, b in raw if k in (E.BOLUS, E.PRIME) and x["from_ms"] <= t <= x["to_ms"]
                   and (want is None or (k == want[0] and (k == E.PRIME or code == want[1])))]
            out.append(_res("%d %s granted %s" % (x["count"], "boluses" if x["bolus_kind"] == "any"
                                                  else x["bolus_kind"] + " boluses", _window(x)),
                            len(got) == x["count"], got[0] if got else None, "%d granted" % len(got)))
        elif kind in ("max_real_24h_ug", "max_real_1h_ug"):
            ug, at = _max_window(trace, x["span_ms"])
            span = "24 real hours" if x["span_ms"] == DAY else "real hour"
            out.append(_res("at most %g ug in any %s" % (x["max_ug"], span), ug <= x["max_ug"], at,
                            "%.1f ug at most" % ug))
        elif kind == "same_trace_as":
            if other_trace is None:
                out.append({"expect": "the same trace as %s" % x["other"], "ok": None, "status": "not checked",
                            "first_ms": None, "detail": "the other scenario cannot be run here"})
                continue
            theirs = other_trace(x["other_path"])
            mine = list(w.trace_rows())
            first = None
            for i in range(min(len(mine), len(theirs))):
                if tuple(mine[i]) != tuple(theirs[i]):
                    first = mine[i][0]
                    break
            same = first is None and len(mine) == len(theirs)
            out.append(_res("the same trace as %s" % x["other"], same, first,
                            "%d strokes here, %d there%s" % (len(mine), len(theirs),
                                                             "" if same else "; first difference at %s"
                                                             % (fmt_time(first) if first is not None else "the end"))))
    # an armed event whose trigger never came did not happen: the scenario did
    # not test what it says
    for ev in w.arming.waiting:
        out.append(_res("armed event events[%d] (%s, waiting for %s) happens" % (
            ev.index, ev.do, ev.trigger or "a %s command" % ev.during), False, None, "its trigger never came"))
    for count, ev in w.arming.writes:
        out.append(_res("armed event events[%d] (%s) at its storage write happens" % (ev.index, ev.do), False,
                        None, "the store saw %d writes, it waited for %d" % (w.store.writes, count)))
    # a fault that could not be applied: one result per event, however often
    seen = {}
    for t, index, text in w.collisions:
        if index not in seen:
            seen[index] = [t, text, 0]
        seen[index][2] += 1
    for index in sorted(seen):
        t, text, n = seen[index]
        out.append(_res("events[%d] is applied each time" % index, False, t,
                        "%d time(s) not applied; the first: %s" % (n, text)))
    return out
