# The run's outputs, a stable contract other tools read:
#   trace.csv   one row per stroke the motor physically completed
#   events.csv  the pump's event log, clinic commands and injected faults
#   report.json programs and limits, totals, the judge's accounting, alarms,
#               patient model, checks, expectations and the verdict
# and the summary printed on the terminal.
#
# The verdict is "pass" when no check and no expectation failed, "fail"
# otherwise (pump-emu run exits 1). A check that covered nothing says
# "not checked": it neither passes nor fails the run, and the summary names it.
import csv
import json
import os

from emulator.checks import run_checks
from emulator.events import alarm_summary
from emulator.expect import evaluate
from emulator.patient import assess
from emulator.preset import fmt_time

TRACE_COLUMNS = ("t_ms", "nl", "kind", "concentration_ug_ml")
EVENT_COLUMNS = ("t_ms", "source", "kind", "code", "detail")


def other_trace_runner(w):
    """-> other_trace(path) for same_trace_as: that scenario run on the same
    runtime (each at most once), its trace rows."""
    done = {}

    def run(path):
        if path not in done:
            from emulator.engine import World
            from emulator.scenario import load
            o = World(load(path), runtime=w.runtime)
            try:
                o.run()
                done[path] = [tuple(r) for r in o.trace_rows()]
            finally:
                o.close()
        return done[path]
    return run


def verdict(checks, expectations):
    failed = [c["id"] for c in checks if c["status"] == "fail"]
    failed += ["expect[%d]" % i for i, e in enumerate(expectations) if e["status"] == "fail"]
    return {"status": "fail" if failed else "pass", "failed": failed,
            "not_checked": [c["id"] for c in checks if c["status"] == "not checked"]
            + ["expect[%d]" % i for i, e in enumerate(expectations) if e["status"] == "not checked"],
            "checks": len(checks), "expectations": len(expectations)}


def build(w, other_trace=None):
    """-> the report dict for a finished World. other_trace: how to get another
    scenario's trace for same_trace_as (default: run it here)."""
    stroke = w.profile["stroke_nl"]
    checks, acct = run_checks(w)
    trace = w.motor.trace
    delivered = sum(r[1] for r in trace)
    alarms = alarm_summary(w.raw_events)
    patient = assess(w.samples, w.sc.patient, w.lumbar, w.patient.tissue, w.sc.patient_sample_ms)
    patient.update({"to_csf_ug": round(w.patient.to_csf_ug, 1), "to_tissue_ug": round(w.patient.to_tissue_ug, 1),
                    "model": "one-compartment CSF, half-life %.2f h, clearance %.1f mL/h (educational, non-clinical)"
                    % (w.sc.patient["half_life_h"], w.sc.patient["clearance_ml_h"])})
    expectations = evaluate(w, patient["flags"], other_trace or other_trace_runner(w))
    programs = []
    for t, prog, rb in w.programs:
        programs.append({"t_ms": t, "mode": prog["mode"], "concentration_ug_ml": prog["concentration_ug_ml"],
                         "daily_dose_ug": rb.get("daily_dose_ug"), "daily_nl": rb.get("daily_nl"),
                         "max_daily_ug": prog["max_daily_ug"], "max_hourly_ug": prog["max_hourly_ug"],
                         "max_daily_nl": rb.get("max_daily_nl"), "max_hourly_nl": rb.get("max_hourly_nl"),
                         "program": prog})
    f = w.pump.facts()
    a = acct or {}
    return {
        "scenario": {"name": w.sc.name, "title": w.sc.title, "file": os.path.relpath(w.sc.path),
                     "seed": w.seed, "duration_ms": w.sc.duration_ms, "board": w.sc.board,
                     "timezone": getattr(w.sc, "timezone", None)},
        "verdict": verdict(checks, expectations),
        "programs": programs,
        # the judge's figures (trace, schedule, the pump's log), not the pump's counters
        "totals": {
            "scheduled_nl": a.get("scheduled_nl", 0),
            "delivered_nl": delivered,
            "delivered_strokes": len(trace),
            "commanded_nl": len(trace) * stroke,
            "refused_nl": a.get("refused_nl", 0),
            "forfeited_nl": sum(a.get("forfeited_by_stop_nl", {}).values()),
            "lost_to_reset_nl": a.get("lost_to_reset_nl", 0),
            "owed_at_stops_nl": a.get("owed_at_stops_nl", 0),
            "owed_at_end_nl": a.get("owed_at_end_nl", 0),
            "unexplained_nl": a.get("unexplained_nl", 0),
            "stalled_strokes": w.motor.stalls,
            "resets": w.resets,
            "storage_writes": w.store.writes,
        },
        "accounting": acct,
        "reservoir": {"pump_believes_nl": f["reservoir_nl"], "really_nl": w.reservoir.volume_nl,
                      "off_by_nl": f["reservoir_nl"] - w.reservoir.volume_nl,
                      "pump_uncertain_nl": f.get("uncertain_nl", 0),
                      "concentration_ug_ml": w.reservoir.conc},
        "battery_permille": w.battery.level(),
        "final_state": f["state"],
        "alarms": alarms,
        "patient": patient,
        "world": [(t, code) for t, src, kind, code, _ in w.events if src == "world"],
        "invariants": checks,
        "expectations": expectations,
    }


def judged_run(w, runtime, progress=None):
    """Run a World to its end and judge it; the pump process is closed
    whatever happens. -> the report, with how long the run took."""
    import time
    t0 = time.perf_counter()
    try:
        w.run(progress)
        wall = time.perf_counter() - t0
        rep = build(w)
    finally:
        w.close()
    rep["run"] = {"wall_s": round(wall, 3), "runtime": runtime}
    return rep


def write(w, report, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "trace.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(TRACE_COLUMNS)
        wr.writerows(w.trace_rows())
    with open(os.path.join(out_dir, "events.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(EVENT_COLUMNS)
        wr.writerows(w.events)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)


STATUS_WORD = {"ok": "ok", "fail": "FAIL", "not checked": "n/c"}


def _ml(nl):
    return "%.2f mL" % (nl / 1e6)


def _vol(nl):
    """A volume at a scale that shows it: mL, or µL under 0.1 mL."""
    return _ml(nl) if abs(nl) >= 100000 else "%.1f µL" % (nl / 1e3)


def summary(report, out_dir=None, wall_s=None, plots=True):
    r = report
    sc, tot = r["scenario"], r["totals"]
    days = sc["duration_ms"] / 86400000
    lines = ["", "%s  (%s)" % (sc["title"], sc["name"]),
             "  %.1f days simulated%s; final state: %s" % (
                 days, (" in %.2f s (%.0fx real time)" % (wall_s, sc["duration_ms"] / 1000 / max(wall_s, 1e-6)))
                 if wall_s else "", r["final_state"])]
    for p in r["programs"]:
        lines.append("  %s program: %s, %s ug/day at %d ug/mL (caps %d ug/24 h, %d ug/h)" % (
            fmt_time(p["t_ms"]), p["mode"], p["daily_dose_ug"], p["concentration_ug_ml"],
            p["max_daily_ug"], p["max_hourly_ug"]))
    lines.append("  delivered %s in %d strokes of %s scheduled" % (
        _ml(tot["delivered_nl"]), tot["delivered_strokes"], _ml(tot["scheduled_nl"])))
    acct = r.get("accounting")
    if acct:
        parts = ["%s forfeited while %s" % (_vol(v), k) for k, v in acct["forfeited_by_stop_nl"].items() if v]
        if acct["refused_nl"]:
            parts.append("%s refused by the limits" % _vol(acct["refused_nl"]))
        if acct["lost_to_reset_nl"]:
            parts.append("%s lost to %d restart(s)" % (_vol(acct["lost_to_reset_nl"]), acct["restarts"]))
        if acct.get("owed_at_stops_nl"):
            parts.append("%s owed when a stop began" % _vol(acct["owed_at_stops_nl"]))
        if acct["owed_at_end_nl"]:
            parts.append("%s owed at the end" % _vol(acct["owed_at_end_nl"]))
        parts.append("%s unexplained (allowed %s)" % (_vol(acct["unexplained_nl"]), _vol(acct["tolerance_nl"])))
        lines.append("  not given: " + "; ".join(parts))
    if r.get("world"):
        lines.append("  injected: " + "; ".join("%s %s" % (fmt_time(t), what) for t, what in r["world"][:8])
                     + (" ..." if len(r["world"]) > 8 else ""))
    res = r["reservoir"]
    lines.append("  reservoir: pump believes %s, really %s (%s%s%s); battery %.1f %%; resets %d" % (
        _ml(res["pump_believes_nl"]), _ml(res["really_nl"]), "+" if res["off_by_nl"] > 0 else "",
        _vol(res["off_by_nl"]) if res["off_by_nl"] else "the same",
        ", up to %s uncertain by its own count" % _vol(res["pump_uncertain_nl"]) if res["pump_uncertain_nl"] else "",
        r["battery_permille"] / 10, tot["resets"]))
    if r["alarms"]:
        lines.append("  alarms:")
        for a in r["alarms"]:
            lines.append("    %-20s first at %s%s, raised %d time(s)%s" % (
                a["alarm"], fmt_time(a["first_raised_ms"]), " (critical)" if a["critical"] else "", a["raised"],
                ", first cleared at " + fmt_time(a["cleared_ms"][0]) if a["cleared_ms"] else ", still active"))
    else:
        lines.append("  alarms: none")
    pt = r["patient"]
    lines.append("  patient model (educational): %.0f ug reached the spinal fluid, %.0f ug the tissue%s" % (
        pt["to_csf_ug"], pt["to_tissue_ug"],
        "; level in band %.1f %% of the time" % pt["in_band_pct"] if pt["in_band_pct"] is not None else ""))
    for f in pt["flags"]:
        lines.append("    FLAG %s at %s" % (f["flag"], fmt_time(f["t_ms"])))
    for s in pt["screening"]:
        lines.append("    screening %d ug at %s: level at check %s ng/mL -> %s" % (
            s["dose_ug"], fmt_time(s["t_ms"]), s["level_at_check_ng_ml"],
            "responded" if s["responded"] else "no adequate response"))
    checks = r["invariants"]
    bad = [c for c in checks if c["status"] == "fail"]
    unseen = [c for c in checks if c["status"] == "not checked"]
    lines.append("  invariants: %s%s" % (
        "%d of %d FAILED" % (len(bad), len(checks)) if bad else "%d hold" % (len(checks) - len(unseen)),
        ", %d not checked (the run gave them nothing to judge)" % len(unseen) if unseen else ""))
    for c in checks:
        lines.append("    %-5s %-4s %s" % (c["id"], STATUS_WORD[c["status"]], c["name"]))
        lines.append("          %s; covered %s" % (c["detail"], c["covered"]))
    if r["expectations"]:
        met = sum(1 for e in r["expectations"] if e["status"] == "ok")
        lines.append("  scenario expectations: %d of %d met" % (met, len(r["expectations"])))
        for e in r["expectations"]:
            if e["status"] != "ok":
                lines.append("    %s %s (%s)" % ("NOT MET:" if e["status"] == "fail" else "not checked:",
                                                e["expect"], e["detail"]))
    v = r.get("verdict")
    if v:
        lines.append("  verdict: %s" % ("PASS" if v["status"] == "pass" else "FAIL (%s)" % ", ".join(v["failed"])))
    if out_dir:
        lines.append("  outputs: %s/ (trace.csv, events.csv, report.json%s)" % (
            out_dir, ", story.png: the run on one page, *.png" if plots else ""))
    return "\n".join(lines)
