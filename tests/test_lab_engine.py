"""The student lab's engine without a browser.

The lab page runs the emulator (emulator/lab.py on emulator/engine.py and the
models) in the MicroPython WebAssembly build. These tests check, faster than a
browser could:
  - a scenario travels as plain JSON (scenario.to_plain -> preset.from_plain)
    without changing the run: the Lab, stepped in uneven chunks, gives
    report.json's delivered total, alarms, flags, checks and expectations;
  - the same lab run, with actions from the page's buttons, gives the same
    numbers, event rows and pump answers under the MicroPython unix port as
    under CPython (the models use integer maths and their own PRNG for that);
  - the lab build (lab/builder.py) writes every preset, the files the page
    loads and at least five exercises, each naming a preset that exists.
The browser itself is tests/test_lab.py.
"""
import json
import math
import os
import subprocess

import pytest

from emulator import report as R
from emulator import scenario as S
from emulator.catheter import decay
from emulator.engine import World, load_profile
from emulator.lab import Lab, wall_text
from emulator.preset import from_plain
from emulator.prng import XorShift32
from test_micropython import MICROPYTHON, ROOT, _env, needs_micropython

LAB_SCRIPT = os.path.join(ROOT, "tests", "portable", "lab_script.py")
DAY = 86_400_000
HOUR = 3_600_000


def plain(name):
    return json.loads(json.dumps(S.to_plain(S.load(S.find(name)))))


def cpython_report(name, days=None):
    sc = S.load(S.find(name))
    if days:
        sc.duration_ms = min(sc.duration_ms, days * DAY)
        sc.events = [e for e in sc.events if e.t_ms <= sc.duration_ms]
    w = World(sc)
    w.run()
    return json.loads(json.dumps(R.build(w)))


def same_as_report(res, rep):
    assert res["finished"]
    assert res["delivered_nl"] == rep["totals"]["delivered_nl"]
    assert res["delivered_strokes"] == rep["totals"]["delivered_strokes"]
    assert res["scheduled_nl"] == rep["totals"]["scheduled_nl"]
    assert res["alarms"] == rep["alarms"]
    assert res["flags"] == [[f["flag"], f["t_ms"]] for f in rep["patient"]["flags"]]
    assert res["final_state"] == rep["final_state"]
    assert res["expectations"] == rep["expectations"]
    assert [(c["id"], c["ok"]) for c in res["checks"]] == [(c["id"], c["ok"]) for c in rep["invariants"]]
    assert res["resets"] == rep["totals"]["resets"]
    assert res["storage_writes"] == rep["totals"]["storage_writes"]


# ---------------------------------------------------------------- plain data
def test_every_library_scenario_survives_plain_json():
    for name, path in S.library():
        sc = S.load(path)
        back = from_plain(json.loads(json.dumps(S.to_plain(sc))))
        for key in ("name", "title", "duration_ms", "seed", "board", "start_wall_s", "start", "physics",
                    "patient", "patient_sample_ms", "expect"):
            assert getattr(back, key) == getattr(sc, key), (name, key)
        assert [(e.t_ms, e.do, e.args, e.index, e.summary()) for e in back.events] == \
            [(e.t_ms, e.do, e.args, e.index, e.summary()) for e in sc.events], name


@pytest.mark.parametrize("name,chunks", [("catheter-kink", (1, 7, 3600, 5 * HOUR, 13 * HOUR)),
                                         ("reset-during-write", (HOUR, 9 * HOUR, 1234567)),
                                         ("pocket-fill", (DAY, 17 * HOUR))])
def test_lab_in_chunks_equals_the_emulator_run(name, chunks):
    lab = Lab(plain(name), load_profile("sim"))
    i = 0
    while not lab.finished:
        lab.step(chunks[i % len(chunks)])
        if i % 5 == 0:
            json.loads(lab.view(0, 0, 0))
        i += 1
    same_as_report(json.loads(lab.result()), cpython_report(name))


def test_next_event_stops_at_each_logged_row():
    lab = Lab(plain("catheter-kink"), load_profile("sim"))
    lab.w.advance_to(2 * DAY + 9 * HOUR)
    n = len(lab.w.events)
    st = json.loads(lab.next_event())
    assert not st["more"]
    row = lab.w.events[n]
    assert row[1:4] == ("world", "fault", "block") and st["t_ms"] == row[0] == 2 * DAY + 10 * HOUR
    lab.next_event()
    assert lab.w.events[-1][2:4] == ("alarm", "occlusion")


def test_page_actions_go_through_the_engine_and_come_back_verbatim():
    lab = Lab(plain("routine-refill"), load_profile("sim"))
    lab.step(HOUR)
    bad = json.loads(lab.act("program", json.dumps({"program": {
        "mode": "continuous", "concentration_ug_ml": 2000, "daily_dose_ug": 400,
        "max_daily_ug": 600, "max_hourly_ug": 40}})))
    assert not bad["ok"] and bad["readback"] is None
    assert bad["text"].startswith("daily_dose_ug: raises the daily dose from 200 to 400 ug")
    assert bad["rows"][-1][1:4] == ["clinic", "command", "program"] and bad["rows"][-1][4] == bad["text"]
    ok = json.loads(lab.act("program", json.dumps({"program": {
        "mode": "continuous", "concentration_ug_ml": 2000, "daily_dose_ug": 240,
        "max_daily_ug": 300, "max_hourly_ug": 20}})))
    assert ok["ok"] and ok["text"] == "ok" and ok["readback"]["daily_nl"] == 120000
    # a key the action does not take is checked as in a scenario file
    typo = json.loads(lab.act("kink", json.dumps({"severity": 50})))
    assert not typo["ok"] and typo["text"].startswith("severity: unknown key")
    out = json.loads(lab.act("kink", json.dumps({"severity_pct": 100})))
    assert out["rows"][0][1:4] == ["world", "fault", "kink"]
    for _ in range(20):
        lab.next_event()
        if any(a["alarm"] == "occlusion" for a in json.loads(lab.view())["active"]):
            break
    v = json.loads(lab.view())
    assert [a for a in v["active"] if a["alarm"] == "occlusion"] == [{"alarm": "occlusion", "critical": True,
                                                                      "resolved": False}]
    assert v["pump"]["state"] == "occluded"


def test_wall_text_and_models_are_integer_and_portable():
    import datetime
    epoch = datetime.datetime(2000, 1, 1)
    for s in [0, 59, 86399, 86400 * 59, 86400 * 60, 5 * 365 * 86400 + 86400 + 59, 0x3FFFFFFF] + \
            [i * 7919 * 3607 for i in range(1, 400)]:
        assert wall_text(s) == (epoch + datetime.timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S"), s
    # the motor's jitter: a fixed sequence on every runtime (changing it changes every run's volumes)
    r = XorShift32(1)
    assert [r.randint(-20, 20) for _ in range(8)] == [-8, -20, -15, -1, -3, 2, -14, -2]
    assert [XorShift32(s).next() for s in (0, 1, 7, -3)] == [3862129951, 366695812, 1452080460, 2913557737]
    # the catheter's drain: integer exp, within a nL of the float formula
    for nl, dt, tau in ((1000, 5000, 5000), (123456, 1, 1200000), (999, 10 ** 7, 5000), (5, 0, 7)):
        assert abs(decay(nl, dt, tau) - math.floor(nl * math.exp(-dt / tau))) <= 1


# ---------------------------------------------------------------- the MicroPython unix port
PLAN = [["step", 3 * HOUR],
        ["act", "program", {"program": {"mode": "flex", "concentration_ug_ml": 1000, "steps": [
            {"start_min": 420, "daily_rate_ug": 560}, {"start_min": 1320, "daily_rate_ug": 420}],
            "max_daily_ug": 700, "max_hourly_ug": 50,
            "patient_bolus": {"dose_ug": 20, "duration_min": 10, "lockout_min": 120, "max_per_day": 4}}}],
        ["step", HOUR], ["act", "patient_bolus", {}], ["step", 20 * 60000], ["act", "patient_bolus", {}],
        ["act", "refill", {"volume_ml": 20, "concentration_ug_ml": 1000, "actual_concentration_ug_ml": 2000}],
        ["step", 6 * HOUR], ["act", "stall", {"strokes": 3}], ["step", 10 * 60000],
        ["act", "acknowledge", {"alarm": "motor_stall"}],
        ["act", "kink", {"severity_pct": 100}], ["next"], ["next"], ["next"], ["next"],
        ["act", "release", {}], ["act", "set_clock", {"shift_min": -60}], ["act", "battery_drop", {"to_permille": 140}],
        ["step", 2 * HOUR], ["act", "reset_during_write", {"nth_write": 1}], ["next"], ["next"],
        ["act", "migrate", {}], ["act", "reset", {}], ["act", "silence", {}],
        ["act", "acknowledge", {"alarm": "motor_stall"}], ["end"]]


def _compare_runs(a, b):
    assert a["acts"] == b["acts"]
    va, vb = a["view"], b["view"]
    assert va["events"] == vb["events"]
    assert va["pump"] == vb["pump"]
    assert va["alarms"] == vb["alarms"] and va["active"] == vb["active"]
    assert (va["delivered_nl"], va["delivered_strokes"], va["t_ms"]) == (vb["delivered_nl"], vb["delivered_strokes"], vb["t_ms"])
    assert len(va["points"]) == len(vb["points"])
    for p, q in zip(va["points"], vb["points"]):
        assert p[:3] == q[:3]
        for x, y in zip(p[3:], q[3:]):
            assert (x is None and y is None) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
    ra, rb = a["result"], b["result"]
    for key in ("delivered_nl", "delivered_strokes", "scheduled_nl", "alarms", "flags", "final_state",
                "expectations", "resets", "stalled_strokes", "storage_writes"):
        assert ra[key] == rb[key], key
    assert [(c["id"], c["ok"]) for c in ra["checks"]] == [(c["id"], c["ok"]) for c in rb["checks"]]


@needs_micropython
@pytest.mark.micropython
@pytest.mark.parametrize("name,plan,days", [("catheter-kink", [["end"]], 3),
                                            ("flex-day-night", PLAN, 2)])
def test_micropython_unix_port_gives_the_same_lab_run(tmp_path, name, plan, days):
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps(plain(name)))
    spec = tmp_path / "plan.json"
    spec.write_text(json.dumps({"plan": plan, "days": days}))
    import lab_script      # tests/portable is on the path (conftest)
    with open(os.path.join(ROOT, "boards", "sim.json")) as f:
        profile = f.read()
    cp = json.loads(json.dumps(lab_script.run(preset.read_text(), profile, plan, days)))
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=256M", LAB_SCRIPT, ROOT, str(preset), str(spec)],
                       cwd=str(tmp_path), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    mp = json.loads(r.stdout.decode().strip().splitlines()[-1])
    _compare_runs(cp, mp)
    if plan == [["end"]]:
        same_as_report(mp["result"], cpython_report(name, days))
    else:
        # the plan did what it says: the pump answered, and the faults were found
        texts = [a["text"] for a in mp["acts"]]
        assert texts[0] == "ok" and texts[1] == "ok" and texts[2].startswith("refused: ")
        raised = {a["alarm"] for a in mp["result"]["alarms"]}
        assert {"motor_stall", "occlusion", "battery_eri"} <= raised


# ---------------------------------------------------------------- the build
def test_lab_build_writes_presets_sources_and_exercises(tmp_path):
    from emulator.mpwasm import pinned_version
    from lab import builder as L
    out = tmp_path / "build"
    n = L.build(str(out))
    assert n == len(S.library())
    man = json.loads((out / "manifest.json").read_text())
    assert man["micropython"] == pinned_version()
    for rel in man["py"]:
        assert (out / "py" / rel).is_file(), rel
    assert "pump/controller.py" in man["py"] and "emulator/lab.py" in man["py"]
    for name, _ in S.library():
        d = json.loads((out / "presets" / (name + ".json")).read_text())
        assert d["name"] == name
    exercises = [e for e in man["exercises"] if not e["index"]]
    assert len(exercises) >= 5
    names = {n for n, _ in S.library()}
    for e in exercises:
        assert e["preset"] in names, e
        page = (out / "docs" / e["file"]).read_text()
        assert "<details>" in page and "Answers" in page and "Questions" in page
    # the modules the page loads import nothing MicroPython lacks
    for rel in man["py"]:
        src = (out / "py" / rel).read_text()
        for mod in ("tomllib", "datetime", "import re\n", "random", "csv", "bisect\n"):
            assert ("import " + mod) not in src or "except ImportError" in src, (rel, mod)


def test_lab_pins_the_micropython_build():
    with open(os.path.join(ROOT, "lab", "package.json")) as f:
        pkg = json.load(f)
    with open(os.path.join(ROOT, "lab", "package-lock.json")) as f:
        lock = json.load(f)
    want = pkg["dependencies"]["@micropython/micropython-webassembly-pyscript"]
    assert want[0].isdigit() and not any(c in want for c in "^~*<> ")
    assert lock["packages"]["node_modules/@micropython/micropython-webassembly-pyscript"]["version"] == want


def test_the_lab_counts_the_drug_at_its_real_strength():
    """A wrong-strength refill: the lab's points carry the drug delivered (pg:
    nL x µg/mL of the drug really in the reservoir) and the daily dose in
    force, so the page can draw µg/day: 4x the program after the refill,
    though the volume runs on as before."""
    lab = Lab(plain("wrong-concentration-refill"), load_profile("sim"), days=7)
    while not json.loads(lab.step(str(3600000)))["finished"]:
        lab.view(0, 0, 0)                 # as the page does between steps
    lab.view(0, 0, 0)
    pts = lab.points
    trace = lab.w.motor.trace
    assert pts[-1][6] == sum(r[1] * r[3] for r in trace if r[0] <= pts[-1][0])
    assert {p[7] for p in pts[1:]} == {400}                 # the program never changed

    def ug_per_day(t0, t1):
        a = max(p for p in pts if p[0] <= t0)
        b = max(p for p in pts if p[0] <= t1)
        return (b[6] - a[6]) / 1e6 * 86400000 / (b[0] - a[0])
    hour = 3600000
    assert 380 <= ug_per_day(2 * 24 * hour, 4 * 24 * hour) <= 420        # 400 µg/day of 500 µg/mL
    assert 1520 <= ug_per_day(6 * 24 * hour, 7 * 24 * hour) <= 1680      # 2000 µg/mL drug: 4x
