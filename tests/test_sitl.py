"""Software in the loop: the same scenarios under both runtimes give the same
outputs. `--runtime cpython` runs the firmware core inside the emulator;
`--runtime micropython` runs it, unchanged, as a separate `micropython`
process on the sim adapter (firmware/hw/simbus.py, firmware/sitl.py), its
hardware bus a pipe to the emulator. trace.csv and events.csv must be
byte-identical, and so must report.json apart from the run's wall time.

Every library scenario runs, cut to the stretch that holds its events (at
most 4 days: the micropython process is about 25 times slower), and a
Hypothesis sample of generated scenarios (faults, resets in storage writes,
clinic commands) runs the same way.
"""
import filecmp
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings

from emulator import report as R
from emulator import scenario as S
from emulator.engine import World
from test_micropython import needs_micropython
from test_emulator_scenarios import generated_scenarios

DAY = 86_400_000
HOUR = 3_600_000
CAP = 4 * DAY


def window(sc):
    """The stretch worth comparing: up to 12 h after the last event that comes
    before CAP, at least a day, at most CAP."""
    evs = [e.t_ms for e in sc.events if e.t_ms < CAP]
    end = max([DAY] + [t + 12 * HOUR for t in evs])
    end = min(end, CAP, sc.duration_ms)
    sc.duration_ms = end
    sc.events = [e for e in sc.events if e.t_ms <= end]
    sc.expect = []
    return sc


def run_both(sc_loader, tmp_path):
    outs = {}
    for runtime in ("cpython", "micropython"):
        sc = sc_loader()
        w = World(sc, runtime=runtime)
        try:
            w.run()
            rep = R.build(w)
        finally:
            w.close()
        out = tmp_path / runtime
        R.write(w, rep, str(out))
        outs[runtime] = (out, rep, w)
    return outs


def assert_same(outs):
    (a, ra, wa), (b, rb, wb) = outs["cpython"], outs["micropython"]
    for f in ("trace.csv", "events.csv"):
        assert filecmp.cmp(str(a / f), str(b / f), shallow=False), "%s differs between the runtimes" % f
    ja = json.loads((a / "report.json").read_text())
    jb = json.loads((b / "report.json").read_text())
    assert ja == jb, [k for k in ja if ja[k] != jb.get(k)]
    return wa, wb


@pytest.mark.micropython
@needs_micropython
@pytest.mark.parametrize("name", [n for n, _ in S.library()])
def test_library_scenario_is_the_same_under_both_runtimes(name, tmp_path):
    path = dict(S.library())[name]
    outs = run_both(lambda: window(S.load(path)), tmp_path)
    wa, wb = assert_same(outs)
    if name != "screening-trial":
        assert len(wa.motor.trace) > 0                      # the comparison is not of two idle pumps
    assert wb.pump.port_calls > 0                           # and the second ran in its own process


@pytest.mark.micropython
@needs_micropython
@settings(max_examples=min(settings().max_examples, 6), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=generated_scenarios())
def test_generated_scenarios_are_the_same_under_both_runtimes(raw, tmp_path_factory):
    """A sample of the emulator tests' generated scenarios (at most 6: each runs
    twice, once in a micropython process)."""
    raw = dict(raw, duration="1d")
    raw["events"] = [e for e in raw["events"] if S.parse_time(e["at"]) <= DAY]
    tmp = tmp_path_factory.mktemp("gen")
    assert_same(run_both(lambda: S.from_dict(raw, "generated.toml"), tmp))


@pytest.mark.micropython
@needs_micropython
def test_cli_runs_the_micropython_runtime(tmp_path):
    from emulator.cli import main
    out = tmp_path / "o"
    sc = tmp_path / "s.toml"
    sc.write_text('title = "t"\nduration = "06:00"\n[start]\nfill_ml = 5\nconcentration_ug_ml = 500\n'
                  '[start.program]\nmode = "continuous"\nconcentration_ug_ml = 500\ndaily_dose_ug = 500\n'
                  'max_daily_ug = 620\nmax_hourly_ug = 40\n')
    assert main(["run", str(sc), "--out", str(out), "--runtime", "micropython", "--quiet", "--no-plots"]) == 0
    rows = (out / "trace.csv").read_text().splitlines()
    assert len(rows) - 1 == 1000          # 6 h at 1 mL/day: 250 uL in 250 nL strokes
