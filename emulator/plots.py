# The run's figures (matplotlib, written as PNG next to report.json).
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from emulator.scheduled import Scheduled  # noqa: E402
from emulator.trumpet import trumpet, steady_stretch  # noqa: E402

DAY = 86400000.0


def _axis(end_ms):
    """Time unit for the x axis: days for long runs, hours for short ones."""
    if end_ms >= 3 * DAY:
        return DAY, "days"
    return 3600000.0, "hours"


def _save(fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def delivery(w, report, out_dir):
    end = w.sc.duration_ms
    unit, label = _axis(end)
    fig, ax = plt.subplots(figsize=(9, 4))
    t, c, s = [], [], 0
    for r in w.motor.trace:
        s += r[1]
        t.append(r[0] / unit)
        c.append(s / 1000.0)
    ax.step([0] + t + [end / unit], [0] + c + [s / 1000.0], where="post", label="delivered (trace)", lw=1.5)
    sched = Scheduled(w.programs, w.walls, w.raw_events)
    grid = [t for t, _, _ in w.samples]
    ax.plot([g / unit for g in grid], [sched.at(g) / 1000.0 for g in grid], "--", label="programmed", lw=1)
    ax.set_xlabel(label)
    ax.set_ylabel("cumulative volume (uL)")
    ax.set_title("Delivery vs program: " + w.sc.name)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, out_dir, "delivery.png")


def reservoir_battery(w, report, out_dir):
    unit, label = _axis(w.sc.duration_ms)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    t = [r[0] / unit for r in w.series]
    a1.plot(t, [r[1] / 1e6 for r in w.series], label="pump believes")
    a1.plot(t, [r[2] / 1e6 for r in w.series], "--", label="really in the reservoir")
    a1.set_ylabel("reservoir (mL)")
    a1.legend(loc="best")
    a1.grid(alpha=0.3)
    a2.plot(t, [r[3] / 10.0 for r in w.series], color="tab:green", label="battery")
    prof = w.profile
    a2.axhline(prof["battery_eri_permille"] / 10.0, color="tab:orange", ls=":", label="ERI")
    a2.axhline(prof["battery_eos_permille"] / 10.0, color="tab:red", ls=":", label="EOS")
    a2.set_ylabel("battery (%)")
    a2.set_xlabel(label)
    a2.legend(loc="best")
    a2.grid(alpha=0.3)
    a1.set_title("Reservoir and battery: " + w.sc.name)
    return _save(fig, out_dir, "reservoir_battery.png")


def alarms(w, report, out_dir):
    end = w.sc.duration_ms
    unit, label = _axis(end)
    names = [a["alarm"] for a in report["alarms"]]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * max(len(names), 1) + 0.4))
    for i, a in enumerate(report["alarms"]):
        raised = [t for t, src, kind, code, _ in w.events if src == "pump" and kind == "alarm" and code == a["alarm"]]
        cleared = [t for t, src, kind, code, _ in w.events
                   if src == "pump" and kind in ("alarm_clear", "ack") and code == a["alarm"]]
        for r0 in raised:
            r1 = min([c for c in cleared if c >= r0] or [end])
            ax.barh(i, max((r1 - r0) / unit, end / unit / 400), left=r0 / unit,
                    color="tab:red" if a["critical"] else "tab:orange", height=0.5)
    faults = [(t, code) for t, src, kind, code, _ in w.events if src == "world"]
    for t, code in faults:
        ax.axvline(t / unit, color="grey", lw=0.8, ls=":")
        ax.text(t / unit, len(names) - 0.4, code, rotation=90, fontsize=7, va="bottom", color="grey")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names or [])
    ax.set_ylim(-0.6, len(names) + 0.8)
    ax.set_xlim(0, max(end, 1000) / unit)     # (a served session may end at once)
    ax.set_xlabel(label + "   (red: critical, orange: non-critical; dotted: injected faults)")
    ax.set_title("Alarms: " + w.sc.name + ("" if names else " (none raised)"))
    return _save(fig, out_dir, "alarms.png")


def patient(w, report, out_dir):
    unit, label = _axis(w.sc.duration_ms)
    fig, ax = plt.subplots(figsize=(9, 4))
    t = [s[0] / unit for s in w.samples]
    ax.plot(t, [s[1] for s in w.samples], label="CSF level (model)", lw=1)
    p = w.sc.patient
    lo = [s[2] * p["withdrawal_fraction_pct"] / 100.0 if s[2] else float("nan") for s in w.samples]
    hi = [s[2] * p["overdose_multiple_pct"] / 100.0 if s[2] else float("nan") for s in w.samples]
    ax.fill_between(t, lo, hi, color="tab:green", alpha=0.15, label="band from the programmed steady state")
    for f in report["patient"]["flags"]:
        ax.axvline(f["t_ms"] / unit, color="tab:red", ls="--", lw=1)
        ax.text(f["t_ms"] / unit, ax.get_ylim()[1] * 0.9, f["flag"].replace("_", " "), color="tab:red",
                rotation=90, fontsize=8, va="top")
    if w.lumbar:
        ax.axhline(p["response_ng_ml"], color="grey", ls=":", label="screening response level")
    ax.set_xlabel(label)
    ax.set_ylabel("ng/mL")
    ax.set_title("Patient model (educational, non-clinical): " + w.sc.name)
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, out_dir, "patient.png")


def trumpet_plot(w, report, out_dir):
    stretch = steady_stretch(report, w.motor.trace, w.sc.duration_ms)
    fig, ax = plt.subplots(figsize=(6, 4))
    rows = trumpet(w.motor.trace, *stretch) if stretch else []
    if rows:
        x = [r[0] for r in rows]
        ax.plot(x, [r[1] for r in rows], "o-", label="max error")
        ax.plot(x, [r[2] for r in rows], "o-", label="min error")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_title("Trumpet curve, %.1f days at %d nL/day" % ((stretch[1] - stretch[0]) / DAY, stretch[2]))
        ax.legend()
    else:
        ax.set_title("Trumpet curve: no steady continuous stretch of an hour or more")
    ax.set_xlabel("observation window (min)")
    ax.set_ylabel("flow error (%)")
    ax.grid(alpha=0.3)
    report["trumpet"] = [{"window_min": r[0], "max_err_pct": round(r[1], 1), "min_err_pct": round(r[2], 1)}
                         for r in rows]
    return _save(fig, out_dir, "trumpet.png")


def write_all(w, report, out_dir):
    return [f(w, report, out_dir) for f in (delivery, reservoir_battery, alarms, patient, trumpet_plot)]
