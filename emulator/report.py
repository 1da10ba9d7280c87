# The run's outputs, a stable contract other tools read:
#   trace.csv   one row per stroke the motor physically completed
#   events.csv  the pump's event log, clinic commands and injected faults
#   report.json programs and limits, totals, alarms, patient model, checks
# and the summary printed on the terminal.
import csv
import json
import os

from emulator.checks import run_checks
from emulator.events import alarm_summary, expectations as expect_results
from emulator.patient import assess
from emulator.preset import fmt_time

TRACE_COLUMNS = ("t_ms", "nl", "kind", "concentration_ug_ml")
EVENT_COLUMNS = ("t_ms", "source", "kind", "code", "detail")


def build(w):
    """-> the report dict for a finished World."""
    stroke = w.profile["stroke_nl"]
    end = w.sc.duration_ms
    checks, sched = run_checks(w)
    trace = w.motor.trace
    delivered = sum(r[1] for r in trace)
    alarms = alarm_summary(w.raw_events)
    patient = assess(w.samples, w.sc.patient, w.lumbar, w.patient.tissue, w.sc.patient_sample_ms)
    patient.update({"to_csf_ug": round(w.patient.to_csf_ug, 1), "to_tissue_ug": round(w.patient.to_tissue_ug, 1),
                    "model": "one-compartment CSF, half-life %.2f h, clearance %.1f mL/h (educational, non-clinical)"
                    % (w.sc.patient["half_life_h"], w.sc.patient["clearance_ml_h"])})
    expectations = expect_results(w.sc.expect, w.raw_events, patient["flags"])
    programs = []
    for t, prog, rb in w.programs:
        programs.append({"t_ms": t, "mode": prog["mode"], "concentration_ug_ml": prog["concentration_ug_ml"],
                         "daily_dose_ug": rb.get("daily_dose_ug"), "daily_nl": rb.get("daily_nl"),
                         "max_daily_ug": prog["max_daily_ug"], "max_hourly_ug": prog["max_hourly_ug"],
                         "max_daily_nl": rb.get("max_daily_nl"), "max_hourly_nl": rb.get("max_hourly_nl"),
                         "program": prog})
    f = w.pump.facts()
    return {
        "scenario": {"name": w.sc.name, "title": w.sc.title, "file": os.path.relpath(w.sc.path),
                     "seed": w.seed, "duration_ms": end, "board": w.sc.board},
        "programs": programs,
        "totals": {
            "scheduled_nl": int(sched.at(end)),
            "delivered_nl": delivered,
            "delivered_strokes": len(trace),
            "commanded_nl": len(trace) * stroke,
            "refused_nl": (w.carried_refused + f["refused_strokes"]) * stroke,
            "forfeited_nl": w.carried_forfeited + f["forfeited_nl"],
            "stalled_strokes": w.motor.stalls,
            "resets": w.resets,
            "storage_writes": w.store.writes,
        },
        "reservoir": {"pump_believes_nl": f["reservoir_nl"], "really_nl": w.reservoir.volume_nl,
                      "concentration_ug_ml": w.reservoir.conc},
        "battery_permille": w.battery.level(),
        "final_state": f["state"],
        "alarms": alarms,
        "patient": patient,
        "world": [(t, code) for t, src, kind, code, _ in w.events if src == "world"],
        "invariants": checks,
        "expectations": expectations,
    }


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


def _ml(nl):
    return "%.2f mL" % (nl / 1e6)


def summary(report, out_dir=None, wall_s=None):
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
    lines.append("  delivered %s in %d strokes (scheduled %s, refused %s, forfeited %s)" % (
        _ml(tot["delivered_nl"]), tot["delivered_strokes"], _ml(tot["scheduled_nl"]),
        _ml(tot["refused_nl"]), _ml(tot["forfeited_nl"])))
    if r.get("world"):
        lines.append("  injected: " + "; ".join("%s %s" % (fmt_time(t), what) for t, what in r["world"][:8])
                     + (" ..." if len(r["world"]) > 8 else ""))
    res = r["reservoir"]
    lines.append("  reservoir: pump believes %s, really %s; battery %.1f %%; resets %d" % (
        _ml(res["pump_believes_nl"]), _ml(res["really_nl"]), r["battery_permille"] / 10, tot["resets"]))
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
    bad = [c for c in r["invariants"] if not c["ok"]]
    lines.append("  invariants: %s" % ("all %d hold" % len(r["invariants"]) if not bad else
                                       "%d FAILED: %s" % (len(bad), "; ".join("%s %s" % (c["id"], c["detail"]) for c in bad))))
    for c in r["invariants"]:
        lines.append("    %s %-45s %s" % (c["id"], c["name"], "ok" if c["ok"] else "FAIL"))
    if r["expectations"]:
        ok = sum(1 for e in r["expectations"] if e["ok"])
        lines.append("  scenario expectations: %d of %d met" % (ok, len(r["expectations"])))
        for e in r["expectations"]:
            if not e["ok"]:
                lines.append("    NOT MET: " + e["expect"])
    if out_dir:
        lines.append("  outputs: %s/ (trace.csv, events.csv, report.json, *.png)" % out_dir)
    return "\n".join(lines)
