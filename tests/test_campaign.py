"""Fault campaigns (pump-emu campaign, emulator/campaign/): proof that a small
campaign finds a planted bug and shrinks it to a scenario of at most three
events that fails the same check under `pump-emu run`, that the same campaign
on the real pump finds nothing (on a 2-worker Dask LocalCluster), that the
runs are the same whoever runs them, and that a stopped campaign resumes
without redoing its finished runs.

Budget: the whole file stays under a minute on two cores (short runs of 12 h
to 1.5 days; 40 runs per campaign).
"""
import csv
import json
import os
import tomllib

import pytest

import campaign_bugs
from emulator import cli, engine
from emulator.campaign import dask_runner, generate as G, run as RUN, spec as S, values as V
from emulator.timeexpr import parse_time
from test_micropython import needs_micropython

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = os.path.join(HERE, "campaigns", "restart-alarms.toml")
ROOT = os.path.dirname(HERE)
LIBRARY = sorted(os.path.join(ROOT, "campaigns", f) for f in os.listdir(os.path.join(ROOT, "campaigns"))
                 if f.endswith(".toml"))
BUG = "campaign_bugs:AlarmsLostAtRestartPump"
RUNS = 40


def campaign(capsys, *argv):
    code = cli.main(["campaign"] + [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def summary(out_dir):
    with open(os.path.join(out_dir, "campaign.json")) as f:
        return json.load(f)


def rows(out_dir):
    with open(os.path.join(out_dir, "runs.jsonl")) as f:
        return [json.loads(line) for line in f if '"kind": "shrunk"' not in line]


# --------------------------------------------------------------------------- the proof
def test_a_small_campaign_finds_a_planted_bug_and_shrinks_it(tmp_path, capsys, monkeypatch):
    """The alarm not latched across a restart: a pump that is stopped and
    restarts comes back stopped and silent. 40 runs must find it and each
    shrunk failure must be a scenario of at most 3 events that fails I9 (the
    silent stop; or I7, the alarm whose cause is still there) under
    `pump-emu run` on the buggy pump and passes on the real one."""
    out = tmp_path / "bug"
    code, text, err = campaign(capsys, SPEC, "--out", out, "--runs", RUNS, "--workers", 0, "--pump", BUG,
                              "--no-html")
    assert code == 1, (text, err)
    s = summary(out)
    assert s["runs_done"] == RUNS and s["complete"] and not s["interrupted"]
    by_check = s["failures_by_check"]
    assert s["failed"] >= 3 and by_check.get("I9", 0) >= 3 and set(by_check) <= {"I9", "I7"}, by_check
    assert s["void"] == 0 and s["bad"] == 0, (s["void_runs"], s["bad_runs"])
    assert dask_runner.SHRINK_PER_CHECK <= len(s["shrunk"]) <= dask_runner.SHRINK_PER_CHECK * len(by_check)
    for x in s["shrunk"]:
        assert x["check"] in by_check and x["events"] <= 3, x
        assert os.path.dirname(x["file"]) == str(out / "failures")
        with open(x["file"]) as f:
            body = f.read()
        assert body.startswith("# Fails check %s (" % x["check"]) and "# reproduce: pump-emu run " + x["file"] in body
        assert len(tomllib.loads(body).get("events", [])) == x["events"]
        assert "pump-emu run " + x["file"] in text       # the summary names the command
        # reproducible: the file alone fails the same check through pump-emu run ...
        with monkeypatch.context() as m:
            m.setattr(engine, "Pump", campaign_bugs.AlarmsLostAtRestartPump)
            code = cli.main(["run", x["file"], "--out", str(tmp_path / "re"), "--no-plots", "--quiet"])
        rep = json.loads((tmp_path / "re" / "report.json").read_text())
        assert code == 1 and x["check"] in rep["verdict"]["failed"], rep["verdict"]
        # ... and it is the bug that fails it: the real pump passes the same file
        code = cli.main(["run", x["file"], "--out", str(tmp_path / "ok"), "--no-plots", "--quiet"])
        assert code == 0, json.loads((tmp_path / "ok" / "report.json").read_text())["verdict"]
    capsys.readouterr()


def test_the_same_campaign_on_the_real_pump_finds_nothing_on_a_2_worker_dask_cluster(tmp_path, capsys,
                                                                                    monkeypatch):
    """Stopped (Ctrl-C) after 15 runs on a local cluster of its own, and resumed
    on a running cluster by its address: the partial results are kept and only
    the rest is run."""
    out = tmp_path / "clean"
    took = dask_runner.Campaign.took

    def ctrl_c_after_15(self, row, text):
        if self.progress.done == 15:
            raise KeyboardInterrupt
        return took(self, row, text)
    monkeypatch.setattr(dask_runner.Campaign, "took", ctrl_c_after_15)
    code, text, err = campaign(capsys, SPEC, "--out", out, "--runs", RUNS, "--workers", 2)
    assert code == 130 and "--resume" in text, (text, err)
    s = summary(out)
    assert s["interrupted"] and s["runs_done"] == 15 and s["workers"] == 2 and s["failed"] == 0
    monkeypatch.setattr(dask_runner.Campaign, "took", took)
    # resumed on a cluster that was already up, by its scheduler's address
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster:
        code, text, err = campaign(capsys, "--resume", out, "--scheduler", cluster.scheduler_address)
    assert code == 0, (text, err)
    assert "%d runs (15 done before), 2 worker(s) on %s" % (RUNS, cluster.scheduler_address) in err
    s = summary(out)
    assert s["workers"] == 2
    assert (s["runs_done"], s["passed"], s["failed"], s["void"], s["bad"]) == (RUNS, RUNS, 0, 0, 0), s
    assert s["shrunk"] == [] and not os.path.exists(out / "failures")
    rs = rows(out)
    assert sorted(r["run"] for r in rs) == list(range(RUNS))
    # every run was judged: each check has a status, the ones every run covers say ok
    for r in rs:
        assert {"I1", "I1r", "I2", "I3", "I5", "I6", "I9"} <= set(r["checks"]), r
        assert r["checks"]["I9"] == r["checks"]["I2"] == r["checks"]["I1"] == "ok", r
        assert 0 < r["ratio"] <= 1.01 and 0 < r["worst_24h_to_cap"] <= 1, r
    # the runs did what the spec asked for: refills, most at a new strength, restarts, faults
    assert all("refill" in r["generated"] for r in rs)
    assert sum("reset" in r["faults"] or "power_cut" in r["faults"] for r in rs) >= RUNS // 2
    assert any(a == "program_required" for r in rs for a in r["alarms"])
    with open(out / "runs.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == RUNS and {"seed", "faults", "ratio", "worst_24h_to_cap", "latency_min", "flags",
                                   "checks"} <= set(table[0])
    page = (out / "index.html").read_text()
    assert page.count("<svg") >= 3 and "Failures by check" in page and "Alarm latency per fault" in page
    # each run's scenario is kept and is a normal scenario file
    assert len(os.listdir(out / "scenarios")) == RUNS
    # the same seed gives the same runs without Dask, in this process
    code, _, _ = campaign(capsys, SPEC, "--out", tmp_path / "loop", "--runs", 10, "--workers", 0, "--no-html")
    assert code == 0
    strip = lambda r: {k: v for k, v in r.items() if k != "wall_s"}      # noqa: E731
    by_run = {r["run"]: strip(r) for r in rs}
    for r in rows(tmp_path / "loop"):
        assert strip(r) == by_run[r["run"]]


# --------------------------------------------------------------------------- generation
def test_generation_is_deterministic_and_every_scenario_loads(tmp_path):
    spec = S.load(SPEC)
    a = [G.generate(spec, 5, i)[1] for i in range(6)]
    assert a == [G.generate(spec, 5, i)[1] for i in range(6)]
    assert len(set(a)) == 6 and G.generate(spec, 6, 0)[1] != a[0]
    from emulator.scenario import load
    for i, text in enumerate(a):
        p = tmp_path / ("g%d.toml" % i)
        p.write_text(text)
        sc = load(str(p))
        assert 12 * 3600000 <= sc.duration_ms <= 36 * 3600000
        # the refill falls where the spec puts it, 01:00 .. 10:00
        evs = tomllib.loads(text)["events"]
        refills = [e for e in evs if e["do"] == "refill"]
        assert len(refills) == 1 and 3600000 <= parse_time(refills[0]["at"]) <= 36000000
        assert len(sc.events) == len(evs)


@pytest.mark.parametrize("path", LIBRARY, ids=[os.path.basename(p) for p in LIBRARY])
def test_the_library_specs_make_good_scenarios(path):
    spec = S.load(path)
    assert spec["title"] and spec.get("description")
    for i in range(5):
        name, text, facts = G.generate(spec, 1, i)
        assert name.startswith(os.path.basename(path)[:-5])
    # one short run of each spec is judged, not just loaded
    row, _ = RUN.run_index(spec, 1, 0)
    assert row["status"] in ("pass", "fail") and row["checks"], row


@pytest.mark.parametrize("body,key", [
    ('runs = 5\n', "title"),
    ('title = "t"\nduration = "1d"\n', "program"),
    ('title = "t"\nduration = "1d"\nfrobs = 1\n[program]\nconcentration_ug_ml = 500\ndaily_dose_ug = 400\n', "frobs"),
    ('title = "t"\nduration = {min = "2d", max = "1d"}\n[program]\nconcentration_ug_ml = 500\ndaily_dose_ug = 400\n',
     "duration"),
    ('title = "t"\nduration = "1d"\n[program]\nconcentration_ug_ml = 500\ndaily_dose_ug = 400\n'
     '[[events]]\ndo = "dance"\n', "events[0].do"),
    ('title = "t"\nduration = "1d"\n[program]\nconcentration_ug_ml = 500\ndaily_dose_ug = 400\n'
     '[[events]]\ndo = "kink"\nseverity_pct = {min = 50, max = 500}\n', "severity_pct"),
])
def test_a_bad_spec_exits_2_naming_the_key(body, key, tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text(body)
    code, out, err = campaign(capsys, p, "--out", tmp_path / "o", "--workers", 0)
    assert code == 2 and str(p) in err and key in err, err
    assert not os.path.exists(tmp_path / "o" / "runs.jsonl")


# --------------------------------------------------------------------------- stop and resume
def test_ctrl_c_keeps_partial_results_and_resume_does_only_the_rest(tmp_path, capsys, monkeypatch):
    out = tmp_path / "c"
    real = dask_runner.run_index
    ran = []

    def interrupted_at_6(spec, seed, i, *a):
        if i == 6:
            raise KeyboardInterrupt
        ran.append(i)
        return real(spec, seed, i, *a)
    monkeypatch.setattr(dask_runner, "run_index", interrupted_at_6)
    code, text, _ = campaign(capsys, SPEC, "--out", out, "--runs", 10, "--workers", 0, "--seed", 3, "--no-html")
    assert code == 130 and "--resume" in text
    s = summary(out)
    assert s["interrupted"] and s["runs_done"] == 6 and not s["complete"]
    monkeypatch.setattr(dask_runner, "run_index", lambda *a: ran.append(a[2]) or real(*a))
    ran.clear()
    code, _, _ = campaign(capsys, "--resume", out, "--workers", 0, "--no-html")
    assert code == 0 and ran == [6, 7, 8, 9]
    s = summary(out)
    assert s["complete"] and s["runs_done"] == 10 and s["seed"] == 3
    assert sorted(r["run"] for r in rows(out)) == list(range(10))
    # a resume with another seed would mix two campaigns: refused
    code, _, err = campaign(capsys, "--resume", out, "--seed", 4, "--workers", 0)
    assert code == 2 and "seed 3" in err


@needs_micropython
def test_a_run_under_micropython_gives_the_same_row():
    spec = S.load(SPEC)
    a, _ = RUN.run_index(spec, 1, 2)
    b, _ = RUN.run_index(spec, 1, 2, runtime="micropython")
    strip = lambda r: {k: v for k, v in r.items() if k != "wall_s"}      # noqa: E731
    assert strip(a) == strip(b)


def test_a_failure_whose_shrink_was_stopped_is_shrunk_on_resume(tmp_path, capsys, monkeypatch):
    out = tmp_path / "s"
    real = dask_runner.shrink_task

    def stopped(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(dask_runner, "shrink_task", stopped)
    code, _, _ = campaign(capsys, SPEC, "--out", out, "--runs", 4, "--workers", 0, "--pump", BUG, "--no-html")
    assert code == 130
    s = summary(out)
    assert s["failed"] == 1 and s["shrunk"] == [] and s["interrupted"]
    failing = s["failing_runs"][0]
    monkeypatch.setattr(dask_runner, "shrink_task", real)
    code, _, _ = campaign(capsys, "--resume", out, "--workers", 0, "--pump", BUG, "--no-html")
    s = summary(out)
    assert code == 1 and s["complete"] and s["failed"] >= 1
    assert s["shrunk"][0]["run"] == failing and s["shrunk"][0]["check"] == "I9" and s["shrunk"][0]["events"] <= 3


def test_a_spec_on_a_library_base_keeps_its_events_and_drops_its_expectations(tmp_path):
    p = tmp_path / "on-base.toml"
    p.write_text('title = "kinks on top of the routine refill"\nbase = "catheter-kink"\nduration = "4d"\n'
                 '[[events]]\ndo = "reset"\nat = {min = "01:00", max = "1d"}\n')
    spec = S.load(str(p))
    from emulator.scenario import find
    with open(find("catheter-kink"), "rb") as f:
        base = tomllib.load(f)
    _, text, facts = G.generate(spec, 1, 0)
    d = tomllib.loads(text)
    assert d["duration"] == "4d 00:00:00" and "expect" not in d and facts["faults"] == ["reset"]
    assert d["events"][:len(base["events"])] == base["events"] and d["events"][-1]["do"] == "reset"
    assert d["start"] == base["start"]
    row, _ = RUN.run_index(spec, 1, 0)
    assert row["status"] in ("pass", "fail") and "reset" in row["faults"]


def test_a_run_that_raises_is_a_finding_shrunk_to_the_event_that_raises_it(tmp_path, capsys):
    """An exception out of the pump is not the end of the campaign: the run
    fails the pseudo-check `crash` and is shrunk like any other failure."""
    out = tmp_path / "crash"
    code, text, _ = campaign(capsys, SPEC, "--out", out, "--runs", 10, "--workers", 0, "--no-html",
                             "--pump", "campaign_bugs:RefillRaisesPump", "--shrink-per-check", 1)
    s = summary(out)
    assert code == 1 and s["failures_by_check"].get("crash", 0) >= 1, s
    x = s["shrunk"][0]
    assert x["check"] == "crash" and "ZeroDivisionError" in x["detail"]
    evs = tomllib.loads(open(x["file"]).read())["events"]
    assert [e["do"] for e in evs] == ["refill"] and evs[0]["concentration_ug_ml"] == 2000
    assert s["runs_done"] == 10 and s["passed"] >= 1        # the refills at the same strength still ran


def test_a_patient_table_and_faults_that_last(tmp_path):
    p = tmp_path / "pop.toml"
    p.write_text('title = "t"\nduration = "1d"\n[program]\nconcentration_ug_ml = 500\ndaily_dose_ug = 400\n'
                 '[[patients]]\nhalf_life_h = 0.9\nclearance_ml_h = 13.0\n'
                 '[[patients]]\nhalf_life_h = 5.0\nclearance_ml_h = {min = 60.0, max = 80.0}\n'
                 '[[events]]\ndo = "block"\nat = "02:00"\nlasts = {min = "00:30", max = "01:00"}\n')
    spec = S.load(str(p))
    seen = set()
    for i in range(12):
        d = tomllib.loads(G.generate(spec, 1, i)[1])
        pt = d["patient"]
        assert pt == {"half_life_h": 0.9, "clearance_ml_h": 13.0} or (pt["half_life_h"] == 5.0
                                                                      and 60 <= pt["clearance_ml_h"] <= 80), pt
        seen.add(pt["half_life_h"])
        block, release = d["events"]
        assert (block["do"], release["do"]) == ("block", "release")
        assert 1800000 <= parse_time(release["at"]) - parse_time(block["at"]) <= 3600000
    assert seen == {0.9, 5.0}
    row, _ = RUN.run_index(spec, 1, 0)
    assert row["status"] == "pass" and [f for f, _ in row["latency_min"]] == ["block"], row
    assert 0 <= row["latency_min"][0][1] < 30       # the occlusion alarm came while it lasted
    p.write_text(p.read_text().replace('do = "block"', 'do = "stall"\nstrokes = 3'))
    with pytest.raises(V.SpecError, match="lasts"):
        S.load(str(p))
