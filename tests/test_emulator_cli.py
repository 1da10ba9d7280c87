"""pump-emu's command line: list, run, its outputs, bad input and determinism.

Most tests call emulator.cli.main(argv) in-process and read what it printed;
one runs the installed `pump-emu` console script as a user would.
"""
import json
import os
import subprocess
import sys

import pytest

from emulator import cli
from emulator import scenario as S

VENV_BIN = os.path.dirname(sys.executable)
PLOTS = ("delivery.png", "reservoir_battery.png", "alarms.png", "patient.png", "trumpet.png", "story.png")
OUTPUTS = ("trace.csv", "events.csv", "report.json")
SHORT = "patient-bolus-lockout"     # a 3-day library scenario: quick, with boluses and refusals


def pump_emu():
    exe = os.path.join(VENV_BIN, "pump-emu")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "emulator.cli"]


def run_main(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- list
def test_list_shows_every_library_scenario_once(capsys):
    code, out, err = run_main(capsys, "list")
    assert code == 0, err
    lines = out.splitlines()
    names = [n for n, _ in S.library()]
    assert len(names) >= 15
    assert len(lines) == len(names), out
    for name, line in zip(names, lines):
        path = os.path.join(S.LIBRARY, name + ".toml")
        sc = S.load(path)
        assert line.split()[0] == name, line
        assert "BROKEN" not in line, line
        assert sc.title in line, line
        days = sc.duration_ms // 86400000
        assert line.split()[1] == "%dd" % days, line


# --------------------------------------------------------------------------- run
def test_run_writes_every_output_and_a_summary(tmp_path):
    out = tmp_path / "out"
    p = subprocess.run(pump_emu() + ["run", SHORT, "--out", str(out)], capture_output=True, text=True,
                       timeout=300, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    sc = S.load(os.path.join(S.LIBRARY, SHORT + ".toml"))
    assert SHORT in p.stdout and sc.title in p.stdout, p.stdout
    for name in OUTPUTS + PLOTS:
        f = out / name
        assert f.is_file() and f.stat().st_size > 0, name
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    rows = (out / "trace.csv").read_text().splitlines()
    assert rows[0] == "t_ms,nl,kind,concentration_ug_ml"
    assert len(rows) > 1000
    assert (out / "events.csv").read_text().splitlines()[0] == "t_ms,source,kind,code,detail"
    rep = json.loads((out / "report.json").read_text())
    assert rep["scenario"]["name"] == SHORT
    assert rep["totals"]["delivered_strokes"] == len(rows) - 1
    assert not [c for c in rep["invariants"] if c["status"] == "fail"], rep["invariants"]
    assert rep["verdict"]["status"] == "pass"


def test_run_takes_a_path_and_quiet_prints_nothing(tmp_path, capsys):
    src = tmp_path / "my-test.toml"
    src.write_text('title = "a day at 500 ug/day"\nduration = "1d"\n'
                   '[start]\nfill_ml = 20\nconcentration_ug_ml = 500\n'
                   '[start.program]\nmode = "continuous"\nconcentration_ug_ml = 500\ndaily_dose_ug = 500\n'
                   'max_daily_ug = 620\nmax_hourly_ug = 40\n')
    out = tmp_path / "out"
    code, stdout, err = run_main(capsys, "run", str(src), "--out", str(out), "--no-plots", "--quiet")
    assert code == 0, err
    assert stdout == ""
    assert sorted(os.listdir(out)) == sorted(OUTPUTS)      # --no-plots: no PNG
    rep = json.loads((out / "report.json").read_text())
    assert rep["scenario"]["name"] == "my-test"
    # 1 mL/day for a day: 4000 strokes of 250 nL, give or take one
    assert abs(rep["totals"]["delivered_strokes"] - 4000) <= 1


# --------------------------------------------------------------------------- bad input
GOOD = ('title = "t"\nduration = "1d"\n'
        '[start]\nfill_ml = 20\nconcentration_ug_ml = 500\n')


def _event(at, do, **more):
    extra = "".join("%s = %s\n" % (k, json.dumps(v)) for k, v in more.items())
    return '[[events]]\nat = "%s"\ndo = "%s"\n%s' % (at, do, extra)


BAD = {
    # case: (file text, key named, words of the reason); a top-level key goes
    # first, as TOML puts a key after a table header into that table
    "unknown_top_level_key": ('colour = "red"\n' + GOOD, "colour", "unknown key"),
    "bad_at_time": (GOOD + _event("1d 25:00", "suspend"), "events[0].at", "is not a time"),
    "unknown_do": (GOOD + _event("0d 10:00", "explode"), "events[0].do", "is not an action"),
    "out_of_range_value": (GOOD + _event("0d 10:00", "kink", severity_pct=150), "events[0].severity_pct",
                           "out of range"),
    "missing_title": ('duration = "1d"\n', "title", "is required"),
    "invalid_toml": ('title = "t"\nduration = \n', "-", "not valid TOML"),
    "event_after_the_end": (GOOD + _event("2d 00:00", "suspend"), "events[0].at", "after the end"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_scenario_exits_2_naming_file_key_and_reason(case, tmp_path, capsys):
    text, key, reason = BAD[case]
    src = tmp_path / ("%s.toml" % case)
    src.write_text(text)
    out = tmp_path / "out"
    code, stdout, err = run_main(capsys, "run", str(src), "--out", str(out), "--no-plots")
    assert code == 2, (stdout, err)
    assert str(src) in err, err
    assert ": %s: " % key in err, err
    assert reason in err, err
    assert not out.exists() or not any(out.iterdir()), "something was written for a bad scenario"


def test_unknown_scenario_name_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_main(capsys, "run", "no-such-scenario", "--out", str(out))
    assert code == 2
    assert "no-such-scenario" in err and "no such file" in err, err
    assert "catheter-kink" in err, "the message should list the library"
    assert not out.exists() or not any(out.iterdir())


def test_bad_input_exits_2_from_the_console_script(tmp_path):
    out = tmp_path / "out"
    p = subprocess.run(pump_emu() + ["run", "no-such-scenario", "--out", str(out)], capture_output=True,
                       text=True, timeout=120, cwd=str(tmp_path))
    assert p.returncode == 2
    assert "no-such-scenario" in p.stderr
    assert not out.exists() or not any(out.iterdir())


# --------------------------------------------------------------------------- determinism
def _run(capsys, out, *more):
    code, _, err = run_main(capsys, "run", SHORT, "--out", str(out), "--no-plots", "--quiet", *more)
    assert code == 0, err
    return (out / "trace.csv").read_bytes(), (out / "events.csv").read_bytes()


def test_same_seed_same_bytes_other_seed_other_jitter(tmp_path, capsys):
    t1, e1 = _run(capsys, tmp_path / "a", "--seed", "7")
    t2, e2 = _run(capsys, tmp_path / "b", "--seed", "7")
    assert t1 == t2
    assert e1 == e2
    t3, e3 = _run(capsys, tmp_path / "c", "--seed", "8")
    assert t3 != t1, "a different seed should change the per-stroke accuracy jitter"
    rows1, rows3 = t1.splitlines()[1:], t3.splitlines()[1:]
    assert abs(len(rows1) - len(rows3)) <= 3, (len(rows1), len(rows3))
    # the jitter is in the volumes; the times of the strokes are the pump's, not the motor's
    vols1 = [int(r.split(b",")[1]) for r in rows1]
    vols3 = [int(r.split(b",")[1]) for r in rows3]
    assert vols1 != vols3
    sc = S.load(os.path.join(S.LIBRARY, SHORT + ".toml"))
    m = sc.physics["motor"]
    lo = 250 * (1000 + m["bias_permille"] - m["jitter_permille"]) // 1000
    hi = 250 * (1000 + m["bias_permille"] + m["jitter_permille"]) // 1000
    assert all(lo <= v <= hi for v in vols1 + vols3), (lo, hi)
    rep = json.loads((tmp_path / "c" / "report.json").read_text())
    assert rep["scenario"]["seed"] == 8


def test_default_seed_is_the_scenarios(tmp_path, capsys):
    sc = S.load(os.path.join(S.LIBRARY, SHORT + ".toml"))
    t1, e1 = _run(capsys, tmp_path / "a")
    t2, e2 = _run(capsys, tmp_path / "b", "--seed", str(sc.seed))
    assert (t1, e1) == (t2, e2)
