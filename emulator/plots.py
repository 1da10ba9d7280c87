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


def _save(fig, out_dir, name, tight=True):
    path = os.path.join(out_dir, name)
    if tight:
        fig.tight_layout()
    # bbox "tight": the legends outside the axes are in the picture too
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def _legend_outside(ax, **kw):
    """The legend beside the axes, to the right: it never covers the data."""
    h, _ = ax.get_legend_handles_labels()
    if h:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, **kw)


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
    ax.set_ylabel("cumulative volume (µL)")
    ax.set_title("Delivery vs program: " + w.sc.name)
    _shade([ax], event_spans(w, max(end, 1000)), unit)
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, out_dir, "delivery.png")


def reservoir_battery(w, report, out_dir):
    unit, label = _axis(w.sc.duration_ms)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    t = [r[0] / unit for r in w.series]
    a1.plot(t, [r[1] / 1e6 for r in w.series], label="pump believes")
    a1.plot(t, [r[2] / 1e6 for r in w.series], "--", label="really in the reservoir")
    a1.set_ylabel("reservoir (mL)")
    _legend_outside(a1)
    a1.grid(alpha=0.3)
    a2.plot(t, [r[3] / 10.0 for r in w.series], color="tab:green", label="battery")
    prof = w.profile
    a2.axhline(prof["battery_eri_permille"] / 10.0, color="tab:orange", ls=":", label="ERI")
    a2.axhline(prof["battery_eos_permille"] / 10.0, color="tab:red", ls=":", label="EOS")
    a2.set_ylabel("battery (%)")
    a2.set_xlabel(label)
    _legend_outside(a2)
    a2.grid(alpha=0.3)
    a1.set_title("Reservoir and battery: " + w.sc.name)
    _shade([a1, a2], event_spans(w, max(w.sc.duration_ms, 1000)), unit)
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
    ax.set_ylabel("spinal-fluid level (ng/mL)")
    _shade([ax], event_spans(w, max(w.sc.duration_ms, 1000)), unit)
    tissue_axis(ax, w, unit)
    ax.set_title("Patient model (educational, non-clinical): " + w.sc.name)
    _legend_outside(ax)
    ax.grid(alpha=0.3)
    return _save(fig, out_dir, "patient.png")


def tissue_24h(w):
    """[(t_ms, µg of drug that reached the tissue in the 24 h before t)] at
    each tissue dose and 24 h after it (a pocket fill, a disconnection)."""
    doses = list(getattr(w.patient, "tissue", []))
    if not doses:
        return []
    times = sorted(set([t for t, _ in doses] + [t + DAY for t, _ in doses] + [w.sc.duration_ms]))
    out = []
    for t in times:
        out.append((t, sum(ug for td, ug in doses if t - DAY < td <= t)))
    return out


def tissue_axis(ax, w, unit):
    """On a patient panel: the drug that reached the tissue in 24 h (right
    axis), with the amount that flags a possible overdose. Nothing without it."""
    pts = tissue_24h(w)
    if not pts:
        return None
    a2 = ax.twinx()
    a2.step([0] + [t / unit for t, _ in pts], [0] + [ug for _, ug in pts], where="post", color="tab:purple",
            lw=1.2, label="drug in the tissue, last 24 h (µg, right)")
    lim = w.sc.patient.get("tissue_overdose_ug")
    if lim:
        a2.axhline(lim, color="tab:purple", ls=":", lw=1, label="tissue overdose flag at %d µg" % lim)
    a2.set_ylabel("in the tissue, 24 h (µg)", color="tab:purple")
    a2.set_ylim(bottom=0)
    # one legend for both axes, outside
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = a2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(1.13, 1.0), borderaxespad=0.0, fontsize=8)
    return a2


# --- the story: one page per run ------------------------------------------------
# faults that last until something ends them (a span), and what ends them
SPAN_END = {"block": ("release", "revise_catheter"), "kink": ("release", "revise_catheter"),
            "disconnect": ("revise_catheter",), "leak": ("revise_catheter",), "migrate": ("revise_catheter",),
            "jam": ("repair_motor",)}
ENDERS = {"release", "revise_catheter", "repair_motor"}
STATE_COLOURS = {"running": "tab:green", "dose_limited": "gold", "suspended": "tab:blue",
                 "stopped": "tab:gray", "needs_program": "tab:purple", "safe_mode": "tab:cyan"}


def event_spans(w, end):
    """-> [(t0, t1, label, source)]: the world's faults (block to release, ...)
    and the clinic's acts, each a span on every panel of the story. A fault
    with nothing to end it lasts to the end of the run; a moment (a refill, a
    reset, a stall of a few strokes) is a narrow span."""
    spans = []
    evs = [(t, src, kind, code) for t, src, kind, code, _ in w.events if src in ("world", "clinic")]
    moment = max(end / 300.0, 60000)
    for i, (t, src, kind, code) in enumerate(evs):
        if src == "world" and code in ENDERS:
            continue
        if src == "world" and code in SPAN_END:
            t1 = next((t2 for t2, s2, _, c2 in evs[i + 1:] if s2 == "world" and c2 in SPAN_END[code]), end)
            spans.append((t, max(t1, t + moment), code, "fault"))
        elif src == "world":
            spans.append((t, t + moment, code, "fault"))
        else:
            name = code.split(" ")[0]
            spans.append((t, t + moment, name, "clinic"))
    return spans


def _shade(axes, spans, unit):
    for t0, t1, _, src in spans:
        for ax in axes:
            ax.axvspan(t0 / unit, t1 / unit, color="0.55" if src == "fault" else "tab:blue",
                       alpha=0.18 if src == "fault" else 0.10, lw=0)


def _label_spans(ax, spans, unit, end):
    """Name the spans above the top panel: those that start close together
    share one label ('refill + wrong concentration'); a name repeated soon
    after is not named again."""
    groups = []
    last = {}
    for t0, _, name, src in spans:
        if name in last and t0 - last[name] < end / 15.0:
            continue
        last[name] = t0
        nm = name.replace("_", " ")
        if groups and t0 - groups[-1][0] < end / 80.0:
            if nm not in groups[-1][1]:
                groups[-1][1].append(nm)
            if src == "fault":
                groups[-1][2] = "fault"
        else:
            groups.append([t0, [nm], src])
    for t0, names, src in groups:
        ax.text(t0 / unit, 1.02, " + ".join(names), transform=ax.get_xaxis_transform(), rotation=60,
                fontsize=7, va="bottom", ha="left", color="0.3" if src == "fault" else "tab:blue")


def delivery_ug_day(w, end):
    """-> ([t_ms], [µg/day]): the drug the pump really moved (its strokes at
    the real concentration in the reservoir), as a rate over bins of an hour
    (runs up to 10 days), 6 h (up to 60 days) or a day."""
    width = 3600000 if end <= 10 * DAY else (6 * 3600000 if end <= 60 * DAY else DAY)
    n = max(1, int(-(-end // width)))
    bins = [0.0] * n
    for r in w.motor.trace:
        i = min(int(r[0] // width), n - 1)
        bins[i] += r[1] * (r[3] if len(r) > 3 else 0) / 1e6
    return [i * width for i in range(n + 1)], [b * DAY / width for b in bins] + [bins[-1] * DAY / width]


def programmed_ug_day(w, end):
    """-> ([t_ms], [µg/day]): the daily dose of the program in force, as the
    pump read it back (0 while none or a stopped one)."""
    t, v = [0], [0.0]
    for tp, prog, rb in w.programs:
        t.append(tp)
        v.append(float(rb.get("daily_dose_ug") or 0) if prog.get("mode") != "stopped" else 0.0)
    t.append(end)
    v.append(v[-1])
    return t, v


def caption(w, report):
    """The run in plain words, under the story."""
    tot = report.get("totals", {})
    dl, sch = tot.get("delivered_nl"), tot.get("scheduled_nl")
    t, ug = delivery_ug_day(w, w.sc.duration_ms)
    days = w.sc.duration_ms / DAY
    given_ug = sum(r[1] * (r[3] if len(r) > 3 else 0) / 1e6 for r in w.motor.trace)
    parts = ["%s over %s:" % (w.sc.name, ("%.1f days" % days) if days >= 1 else ("%.1f hours" % (days * 24)))]
    if dl is not None and sch is not None:
        parts.append("the pump moved %.3f mL (%s µg of drug) of the %.3f mL its programs asked for."
                     % (dl / 1e6, "%.0f" % given_ug, sch / 1e6))
    al = report.get("alarms") or []
    if al:
        parts.append("Alarms: " + ", ".join("%s%s%s" % (a["alarm"].replace("_", " "),
                                                       " (critical)" if a["critical"] else "",
                                                       " x%d" % a["raised"] if a["raised"] > 1 else "")
                                           for a in al) + ".")
    else:
        parts.append("No alarm.")
    flags = (report.get("patient") or {}).get("flags") or []
    if flags:
        names = []
        for f in flags:
            nm = f["flag"].replace("_", " ")
            if nm not in names:
                names.append(nm)
        parts.append("The patient model flags " + " and ".join(names) + ".")
    else:
        parts.append("The patient's level stays out of the flags.")
    v = (report.get("verdict") or {}).get("status")
    if v:
        parts.append("The checks: %s." % v)
    parts.append("Grey shading: faults of the world (from start to repair); blue: the clinic's acts.")
    return " ".join(parts)


def story(w, report, out_dir):
    """One page for the run: delivery, reservoir, battery, pump state and
    alarms, the patient; faults and clinic acts shaded across all of them."""
    end = max(w.sc.duration_ms, 1000)
    unit, label = _axis(end)
    fig, axes = plt.subplots(5, 1, figsize=(11, 13), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2, 1.4, 2, 3]})
    a_del, a_res, a_bat, a_state, a_pat = axes
    spans = event_spans(w, end)

    # 1. delivery: µg/day of real drug vs the program, and the cumulative volume
    t, ug = delivery_ug_day(w, end)
    a_del.step([x / unit for x in t], ug, where="post", color="tab:blue", lw=1.5,
               label="drug delivered (µg/day, real strength)")
    tp, vp = programmed_ug_day(w, end)
    a_del.step([x / unit for x in tp], vp, where="post", color="k", ls="--", lw=1, label="programmed daily dose (µg/day)")
    a_del.set_ylabel("dose (µg/day)")
    a_del.set_ylim(bottom=0)
    av = a_del.twinx()
    ct, cv, s = [0.0], [0.0], 0
    for r in w.motor.trace:
        s += r[1]
        ct.append(r[0] / unit)
        cv.append(s / 1e6)
    ct.append(end / unit)
    cv.append(s / 1e6)
    av.plot(ct, cv, color="tab:orange", lw=1, label="volume delivered (mL, right)")
    av.set_ylabel("volume (mL)", color="tab:orange")
    av.set_ylim(bottom=0)
    h1, l1 = a_del.get_legend_handles_labels()
    h2, l2 = av.get_legend_handles_labels()
    a_del.legend(h1 + h2, l1 + l2, loc="upper left", bbox_to_anchor=(1.13, 1.0), borderaxespad=0.0, fontsize=8)

    # 2. reservoir
    ts = [r[0] / unit for r in w.series]
    a_res.plot(ts, [r[1] / 1e6 for r in w.series], label="the pump believes")
    a_res.plot(ts, [r[2] / 1e6 for r in w.series], "--", label="really in the reservoir")
    low = [rb.get("low_reservoir_nl") for _, _, rb in w.programs if rb.get("low_reservoir_nl")]
    if low:
        a_res.axhline(low[-1] / 1e6, color="tab:orange", ls=":", lw=1, label="low reservoir alarm")
    a_res.set_ylabel("reservoir (mL)")
    a_res.set_ylim(bottom=0)
    _legend_outside(a_res)

    # 3. battery
    a_bat.plot(ts, [r[3] / 10.0 for r in w.series], color="tab:green", label="battery")
    prof = w.profile
    a_bat.axhline(prof["battery_eri_permille"] / 10.0, color="tab:orange", ls=":",
                  label="ERI: plan the replacement")
    a_bat.axhline(prof["battery_eos_permille"] / 10.0, color="tab:red", ls=":", label="EOS: the pump stops")
    a_bat.set_ylabel("battery (%)")
    a_bat.set_ylim(0, 105)
    _legend_outside(a_bat)

    # 4. pump state (top row) and each alarm while it was up
    names = [a["alarm"] for a in report.get("alarms") or []]
    rows = len(names) + 1
    runs = []
    for r in w.series:
        if runs and runs[-1][2] == r[4]:
            runs[-1][1] = r[0]
        else:
            if runs:
                runs[-1][1] = r[0]
            runs.append([r[0], r[0], r[4]])
    if runs:
        runs[-1][1] = end
    seen = set()
    for t0, t1, st in runs:
        a_state.barh(rows - 1, max(t1 - t0, end / 2000.0) / unit, left=t0 / unit, height=0.6,
                     color=STATE_COLOURS.get(st, "tab:red"), label=None if st in seen else "state: " + st)
        seen.add(st)
    for i, a in enumerate(report.get("alarms") or []):
        raised = [t for t, src, kind, code, _ in w.events if src == "pump" and kind == "alarm" and code == a["alarm"]]
        cleared = [t for t, src, kind, code, _ in w.events
                   if src == "pump" and kind in ("alarm_clear", "ack") and code == a["alarm"]]
        y = rows - 2 - i
        for r0 in raised:
            r1 = min([c for c in cleared if c >= r0] or [end])
            a_state.barh(y, max((r1 - r0) / unit, end / unit / 400), left=r0 / unit, height=0.5,
                         color="tab:red" if a["critical"] else "tab:orange")
    a_state.set_yticks(list(range(rows)))
    a_state.set_yticklabels(list(reversed(["pump state"] + [n.replace("_", " ") for n in names])), fontsize=8)
    a_state.set_ylim(-0.6, rows - 0.4)
    _legend_outside(a_state)
    a_state.text(1.01, 0.0, "alarms: red critical,\norange non-critical" if names else "no alarm raised",
                 transform=a_state.transAxes, fontsize=7, va="bottom")

    # 5. the patient: the spinal-fluid level, its band and flags; the tissue dose
    tt = [x[0] / unit for x in w.samples]
    a_pat.plot(tt, [x[1] for x in w.samples], lw=1, label="spinal-fluid level (model, ng/mL)")
    p = w.sc.patient
    lo = [x[2] * p["withdrawal_fraction_pct"] / 100.0 if x[2] else float("nan") for x in w.samples]
    hi = [x[2] * p["overdose_multiple_pct"] / 100.0 if x[2] else float("nan") for x in w.samples]
    a_pat.fill_between(tt, lo, hi, color="tab:green", alpha=0.15, label="band around the programmed steady state")
    for f in (report.get("patient") or {}).get("flags") or []:
        a_pat.axvline(f["t_ms"] / unit, color="tab:red", ls="--", lw=1)
        a_pat.text(f["t_ms"] / unit, 0.95, f["flag"].replace("_", " "), color="tab:red", rotation=90, fontsize=8,
                   va="top", ha="right", transform=a_pat.get_xaxis_transform())
    if w.lumbar:
        a_pat.axhline(p["response_ng_ml"], color="grey", ls=":", label="screening response level")
    a_pat.set_ylabel("level (ng/mL)")
    a_pat.set_ylim(bottom=0)
    if tissue_axis(a_pat, w, unit) is None:
        _legend_outside(a_pat)
    a_pat.set_xlabel(label)
    a_pat.set_xlim(0, end / unit)

    for ax in axes:
        ax.grid(alpha=0.3)
    _shade(axes, spans, unit)
    _label_spans(a_del, spans, unit, end)
    fig.suptitle("The story of %s%s" % (w.sc.name, (": " + w.sc.title) if getattr(w.sc, "title", "") else ""),
                 fontsize=11, y=0.995)
    import textwrap
    fig.text(0.02, 0.005, "\n".join(textwrap.wrap(caption(w, report), 140)), fontsize=8.5, va="top")
    fig.tight_layout(rect=(0, 0.01, 1, 0.975))
    return _save(fig, out_dir, "story.png", tight=False)


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
        _legend_outside(ax)
    else:
        ax.set_title("Trumpet curve: no steady continuous stretch of an hour or more")
    ax.set_xlabel("observation window (min)")
    ax.set_ylabel("flow error (%)")
    ax.grid(alpha=0.3)
    report["trumpet"] = [{"window_min": r[0], "max_err_pct": round(r[1], 1), "min_err_pct": round(r[2], 1)}
                         for r in rows]
    return _save(fig, out_dir, "trumpet.png")


def write_all(w, report, out_dir):
    return [f(w, report, out_dir) for f in (delivery, reservoir_battery, alarms, patient, trumpet_plot, story)]
