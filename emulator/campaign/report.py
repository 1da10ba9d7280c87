# The campaign's report: DIR/campaign.json (the summary), DIR/runs.csv (one
# row per run) and DIR/index.html (a static page: charts as inline SVG).
import csv
import html
import io
import json
import os
from collections import Counter, defaultdict

CSV_COLUMNS = ("run", "name", "seed", "status", "failed", "checks", "faults", "delivered_nl", "scheduled_nl",
               "ratio", "worst_24h_to_cap", "alarms", "latency_min", "flags", "in_band_pct", "resets", "wall_s",
               "scenario", "error")


def _cell(v):
    if isinstance(v, dict):
        return ";".join("%s=%s" % kv for kv in v.items())
    if isinstance(v, list):
        return ";".join(("%s:%s" % tuple(x)) if isinstance(x, (list, tuple)) else str(x) for x in v)
    return "" if v is None else v


def summary(c):
    """campaign.json's content for a Campaign (dask_runner.Campaign)."""
    rows = [c.journal.rows[k] for k in sorted(c.journal.rows)]
    by_status = Counter(r["status"] for r in rows)
    by_check = Counter(f for r in rows for f in r.get("failed", []))
    ratios = [r["ratio"] for r in rows if r.get("ratio") is not None]
    shrunk = [c.journal.shrunk[k] for k in sorted(c.journal.shrunk)]
    done = len(rows)
    return {
        "title": c.spec["title"], "spec": c.spec["_path"], "seed": c.seed, "runtime": c.runtime,
        "runs_requested": c.runs, "runs_done": done, "complete": done == c.runs,
        "interrupted": c.interrupted, "workers": c.workers,
        "wall_s": round(c.wall, 2),
        "runs_per_s": round((done - c.resumed) / c.wall, 2) if c.wall > 0 else None,
        "passed": by_status.get("pass", 0), "failed": by_status.get("fail", 0),
        "void": by_status.get("void", 0), "bad": by_status.get("bad", 0),
        "failures_by_check": dict(sorted(by_check.items())),
        "failing_runs": [r["run"] for r in rows if r["status"] == "fail"],
        "void_runs": [{"run": r["run"], "why": r.get("void")} for r in rows if r["status"] == "void"],
        "bad_runs": [{"run": r["run"], "error": r.get("error")} for r in rows if r["status"] == "bad"],
        "ratio_min": min(ratios) if ratios else None, "ratio_max": max(ratios) if ratios else None,
        "shrunk": [{"run": s["run"], "check": s["check"], "file": s["file"], "events": s["events"],
                    "detail": s["detail"], "command": "pump-emu run %s --out out/%s"
                    % (s["file"], os.path.splitext(os.path.basename(s["file"]))[0])} for s in shrunk],
    }


def write_csv(c, path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        for k in sorted(c.journal.rows):
            r = c.journal.rows[k]
            r = dict(r, scenario=os.path.join("scenarios", r["name"] + ".toml"))
            w.writerow([_cell(r.get(col)) for col in CSV_COLUMNS])


# ------------------------------------------------------------------------- page
def _svg(fig):
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    s = buf.getvalue()
    return s[s.index("<svg"):]


def charts(rows):
    """-> [(title, svg)]: the distributions a person would rather see than read."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = []
    ratios = [r["ratio"] for r in rows if r.get("ratio") is not None]
    if ratios:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist(ratios, bins=30, color="#4477aa")
        ax.set_xlabel("delivered / scheduled (judge's figures)")
        ax.set_ylabel("runs")
        out.append(("Delivered / scheduled per run", _svg(fig)))
    lat = defaultdict(list)
    missed = Counter()
    for r in rows:
        for fault, m in r.get("latency_min") or []:
            if m is None:
                missed[fault] += 1
            else:
                lat[fault].append(m)
    if lat or missed:
        faults = sorted(set(lat) | set(missed))
        fig, ax = plt.subplots(figsize=(7, 0.9 + 0.45 * len(faults)))
        data = [lat.get(f) or [float("nan")] for f in faults]
        try:
            ax.boxplot(data, orientation="horizontal")
        except TypeError:               # matplotlib before 3.10
            ax.boxplot(data, vert=False)
        ax.set_yticks(range(1, len(faults) + 1))
        ax.set_yticklabels(["%s (%d; %d no alarm)" % (f, len(lat.get(f, [])), missed[f]) for f in faults])
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=0)
        ax.set_xlabel("minutes from the fault to its alarm")
        out.append(("Alarm latency per fault", _svg(fig)))
    band = [r["in_band_pct"] for r in rows if r.get("in_band_pct") is not None]
    if band:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.hist(band, bins=20, range=(0, 100), color="#228833")
        ax.set_xlabel("patient time in band (%)")
        ax.set_ylabel("runs")
        out.append(("Patient time in band", _svg(fig)))
    by_check = Counter(f for r in rows for f in r.get("failed", []))
    fig, ax = plt.subplots(figsize=(6, 2.5))
    if by_check:
        ks = sorted(by_check)
        ax.bar(ks, [by_check[k] for k in ks], color="#cc3311")
    else:
        ax.text(0.5, 0.5, "no failing run", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("failing runs")
    out.append(("Failures by check", _svg(fig)))
    return out


def write_html(c, s, path):
    rows = [c.journal.rows[k] for k in sorted(c.journal.rows)]
    e = html.escape
    parts = ["<!doctype html><meta charset='utf-8'><title>%s</title>" % e(s["title"]),
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:2px 8px;"
             "text-align:left}table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}</style>",
             "<h1>%s</h1>" % e(s["title"]),
             "<p>Spec <code>%s</code>, seed %d, runtime %s: %d of %d runs%s, %d passed, <b>%d failed</b>, "
             "%d void, %d bad; %.1f runs/s on %d worker(s).</p>"
             % (e(s["spec"]), s["seed"], e(s["runtime"]), s["runs_done"], s["runs_requested"],
                " (stopped early)" if s["interrupted"] else "", s["passed"], s["failed"], s["void"], s["bad"],
                s["runs_per_s"] or 0, s["workers"]),
             "<p>Educational, non-medical model. A void run is a generated scenario that did not test what it "
             "said (an armed fault that never came); a bad one, a file the loader refused.</p>"]
    if s["shrunk"]:
        parts.append("<h2>Failures, shrunk</h2><table><tr><th>check</th><th>run</th><th>events</th>"
                     "<th>detail</th><th>reproduce</th></tr>")
        for x in s["shrunk"]:
            parts.append("<tr><td>%s</td><td>%d</td><td>%d</td><td>%s</td><td><code>%s</code></td></tr>"
                         % (e(x["check"]), x["run"], x["events"], e(x["detail"]), e(x["command"])))
        parts.append("</table>")
    for title, svg in charts(rows):
        parts.append("<h2>%s</h2>%s" % (e(title), svg))
    parts.append("<p>Every run: <a href='runs.csv'>runs.csv</a>; the summary: "
                 "<a href='campaign.json'>campaign.json</a>; each scenario in <code>scenarios/</code>.</p>")
    with open(path, "w") as f:
        f.write("\n".join(parts))


def write_all(c, plots=True):
    s = summary(c)
    with open(os.path.join(c.out, "campaign.json"), "w") as f:
        json.dump(s, f, indent=1)
    write_csv(c, os.path.join(c.out, "runs.csv"))
    if plots:
        write_html(c, s, os.path.join(c.out, "index.html"))
    return s


def text(s):
    """The summary printed at the end."""
    lines = ["campaign %s: %d of %d runs, %d passed, %d failed, %d void, %d bad (%.1f runs/s)"
             % (s["title"][:60], s["runs_done"], s["runs_requested"], s["passed"], s["failed"], s["void"], s["bad"],
                s["runs_per_s"] or 0)]
    for chk, n in s["failures_by_check"].items():
        lines.append("  %s failed in %d run(s)" % (chk, n))
    for x in s["shrunk"]:
        lines.append("  shrunk: %s (%d events) fails %s: %s" % (x["file"], x["events"], x["check"], x["detail"]))
        lines.append("    %s" % x["command"])
    for v in s["void_runs"][:5]:
        lines.append("  void run %d: %s" % (v["run"], "; ".join(v["why"] or [])))
    for b in s["bad_runs"][:5]:
        lines.append("  bad run %d: %s" % (b["run"], b["error"]))
    if s["interrupted"]:
        lines.append("  stopped early: the results so far are kept; continue with --resume")
    return "\n".join(lines)
