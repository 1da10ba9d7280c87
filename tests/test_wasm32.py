"""The firmware on a 32-bit MicroPython: the WebAssembly build the lab pins,
run by Node (emulator/wasm32.mjs), the firmware loaded from .mpy as on a board.

The 64-bit unix port (test_micropython.py) has objects twice a board's size
and small ints up to 2**62, so a hot-path value between 2**30 and 2**62
allocates on a Pico or an ESP32 but not there. Here ints and pointers have a
board's width:
  - the build is what these tests take it for (31-bit small ints);
  - `--runtime wasm32` gives trace.csv and events.csv byte-identical to the
    in-process runtime on every library scenario (cut as test_sitl.py cuts
    them) and on generated ones; `pump-emu run` and `serve` take it;
  - a stroke allocates 0 bytes in steady state at 20, 100 and 800 ug/day
    with the board's store, with and without the link polled at every
    wake-up; a hot-path value planted at 2**30 must show as allocation here
    (and does not on the 64-bit port: why this runtime is needed);
  - 30 days, core alone and core + link, in every board profile's
    heap_budget_bytes: the GC heap never grows (this build adds an area when
    an allocation does not fit, where a board raises MemoryError); and the old
    64 KB budget is seen to grow, so the check can fail.
Skipped, saying why, without Node, the pinned npm build (or npm to install
it) or mpy-cross; `make test` says so before it starts.
"""
import filecmp
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings

import wasm32_figures as F
from emulator import report as R
from emulator import scenario as S
from emulator import wasm32 as W
from emulator.engine import World
from test_emulator_scenarios import generated_scenarios
from test_micropython import MICROPYTHON, _env
from test_sitl import window

WHY = F.missing()
pytestmark = [pytest.mark.wasm32, pytest.mark.skipif(WHY is not None, reason="wasm32 runtime: %s" % WHY)]
DAY = 86_400_000
SIM = os.path.join(F.BOARDS, "sim.json")


# ------------------------------------------------------------- the build itself
SMALL_INTS = """\
import sys, gc
print("maxsize=%d" % sys.maxsize)
def adds(x):
    gc.collect()
    gc.disable()
    a = gc.mem_alloc()
    for i in range(100):
        x = x + 1
        x = x - 1
    used = gc.mem_alloc() - a
    gc.enable()
    return used
print("below=%d" % adds((1 << 30) - 2))
print("at=%d" % adds(1 << 30))
"""


def test_the_build_has_a_boards_small_ints(tmp_path):
    script = tmp_path / "ints.py"
    script.write_text(SMALL_INTS)
    st, kv, text = W.run(str(script))
    assert st == 0, text
    assert int(kv["maxsize"]) == 2 ** 31 - 1
    assert int(kv["below"]) == 0                     # 2**30 - 1 is still a small int
    assert int(kv["at"]) >= 200 * 16                 # 2**30 is a heap object: every sum allocates


# ------------------------------------------------------ the same outputs as CPython
def run_pair(sc_loader, out):
    """Run the scenario in-process and in the wasm32 build. -> (worlds, what differs)."""
    worlds, differs = {}, []
    for runtime in ("cpython", "wasm32"):
        w = World(sc_loader(), runtime=runtime)
        try:
            w.run()
            rep = R.build(w)
        finally:
            w.close()
        R.write(w, rep, str(out / runtime))
        worlds[runtime] = w
    for f in ("trace.csv", "events.csv"):
        if not filecmp.cmp(str(out / "cpython" / f), str(out / "wasm32" / f), shallow=False):
            differs.append(f)
    return worlds, differs


def test_library_scenarios_are_the_same_as_in_process(tmp_path):
    """Every library scenario, cut to the stretch that holds its events (at most
    4 days), two at a time: the 32-bit process is about twice the unix port's time."""
    def one(item):
        name, path = item
        worlds, differs = run_pair(lambda: window(S.load(path)), tmp_path / name)
        return name, worlds, differs

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, S.library()))
    bad = ["%s: %s differ" % (name, ", ".join(d)) for name, _, d in results if d]
    assert not bad, "\n".join(bad)
    for name, worlds, _ in results:
        if name != "screening-trial":
            assert len(worlds["cpython"].motor.trace) > 0, name      # not two idle pumps
        assert worlds["wasm32"].pump.port_calls > 0, name           # the second ran in the 32-bit build
    assert len(results) == len(S.library()) >= 15


@settings(max_examples=min(settings().max_examples, 3), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=generated_scenarios())
def test_generated_scenarios_are_the_same_as_in_process(raw, tmp_path_factory):
    """A few of the emulator tests' generated scenarios (faults, resets in storage
    writes, clinic commands), one day each."""
    raw = dict(raw, duration="1d")
    raw["events"] = [e for e in raw["events"] if S.parse_time(e["at"]) <= DAY]
    _, differs = run_pair(lambda: S.from_dict(raw, "generated.toml"), tmp_path_factory.mktemp("gen"))
    assert not differs, differs


def test_cli_runs_the_wasm32_runtime(tmp_path):
    from emulator.cli import main
    out = tmp_path / "o"
    sc = tmp_path / "s.toml"
    sc.write_text('title = "t"\nduration = "06:00"\n[start]\nfill_ml = 5\nconcentration_ug_ml = 500\n'
                  '[start.program]\nmode = "continuous"\nconcentration_ug_ml = 500\ndaily_dose_ug = 500\n'
                  'max_daily_ug = 620\nmax_hourly_ug = 40\n')
    assert main(["run", str(sc), "--out", str(out), "--runtime", "wasm32", "--quiet", "--no-plots"]) == 0
    rows = (out / "trace.csv").read_text().splitlines()
    assert len(rows) - 1 == 1000          # 6 h at 1 mL/day: 250 uL in 250 nL strokes


def test_serve_wasm32_talks_to_pumpctl(tmp_path):
    """pump-emu serve --runtime wasm32: pumpctl reads the pump and programs it,
    the firmware and its link running in the 32-bit build."""
    import test_link_e2e as E
    if E.PUMP_EMU is None or E.PUMPCTL is None:
        pytest.skip("pump-emu / pumpctl console scripts not installed")
    keyfile = E.new_keys(tmp_path, "keys.json")
    srv = E.start_server(tmp_path, "tcp", keyfile, runtime="wasm32")
    try:
        kids = E.children(srv.proc.pid)
        assert any("wasm32.mjs" in c and "sitl.py" in c for c in kids), kids
        ctl = E.Ctl(srv, keyfile, tmp_path)
        st = ctl.json("interrogate", keys=None)
        assert st["state"] == "running" and st["program"]["daily_dose_ug"] == 400
        prog = tmp_path / "new.toml"
        prog.write_text(E.NEW_PROGRAM)
        r = ctl("program", prog, "--yes")
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert ctl.json("interrogate")["program"]["daily_dose_ug"] == 450
        r = ctl("bolus", "--patient")
        assert r.returncode == 0 and "bolus granted: 60000 nL" in r.stdout, (r.stdout, r.stderr)
    finally:
        assert E.stop_server(srv) is not None, "pump-emu serve did not stop on SIGTERM"


# ------------------------------------------------------------ allocation per stroke
@pytest.mark.parametrize("link", [False, True], ids=["core", "link"])
@pytest.mark.parametrize("daily_ug", [20, 100, 800])
def test_a_stroke_allocates_nothing_on_32_bit(daily_ug, link):
    # 20 ug/day: every stroke the first of its 5-min slot (the windows saved too);
    # 800 ug/day: a stroke every 81 s. The board's store, stroke records kept open.
    f = F.alloc_run(daily_ug, store=True, link=link)
    assert f["state"] == "running" and f["strokes"] == 500, f                  # it pumps
    assert f["bytes"] == 0, "%d bytes allocated over 500 strokes (%d wake-ups)" % (f["bytes"], f["wakes"])
    assert {"ledger.a", "ledger.b", "window.a", "window.b"} <= set(f["files"]), f["files"]
    assert not [n for n in f["files"] if n.endswith(".tmp")]
    if link:
        assert f["link_polls"] == f["wakes"] > 0 and f["link_answered"] == 0


def test_a_planted_2_30_shows_as_allocation_on_32_bit_only(tmp_path):
    """The ledger's lifetime stroke count, set to 2**30 and counted at every
    stroke: a heap object on a 32-bit board, so each stroke allocates here. The
    64-bit unix port runs the same and allocates nothing: it cannot see this."""
    f = F.alloc_run(100, store=True, plant="ledger.lifetime")
    assert f["state"] == "running" and f["strokes"] == 500, f
    assert f["bytes"] >= 500 * 16, f                # at least one GC block a stroke
    if MICROPYTHON is None:
        return
    # the same .mpy files: bytecode runs on either port
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=1M", os.path.join(F.PORTABLE, "alloc_driver.py"), SIM, "100",
                        str(tmp_path / "store"), "plant=ledger.lifetime"],
                       env=_env(MICROPYPATH=F.lib()), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    kv = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert kv["strokes"] == "500" and kv["bytes"] == "0", kv


# ------------------------------------------------------------------- the heap
def test_thirty_days_fit_every_boards_heap_budget(capsys):
    """Core alone and core + link, 30 days (a patient bolus a day, through the
    link in signed frames in the second), started in the smallest
    heap_budget_bytes of boards/*.json: the heap must never grow. A heap that
    does not grow in that budget does not in a larger one (the collector adds
    an area only when an allocation fails after a full collection), so this
    covers every profile; `make bench` runs each."""
    budgets = {name: p["heap_budget_bytes"] for name, p in F.profiles().items()}
    heap = min(budgets.values())
    with ThreadPoolExecutor(2) as pool:
        core, link = pool.map(lambda lk: F.heap_run(heap, lk), (False, True))
    lines = ["", "32-bit (wasm32) %d-day run from %d B (%s), firmware from .mpy:" % (
        F.HEAP_DAYS, heap, ", ".join(sorted(n for n, b in budgets.items() if b == heap)))]
    for what, f in (("core       ", core), ("core + link", link)):
        lines.append("  %s %s: GC heap %d B at start, %d B at most; live after import %d B, peak %d B"
                     % (what, "fits" if f["ok"] and f["grew"] == 0 else "DOES NOT FIT", f["wasm_heap_start"],
                        f["wasm_heap_max"], f["wasm_live_import"], f["wasm_live_peak"]))
    with capsys.disabled():
        print("\n".join(lines))
    for what, f in (("core", core), ("core + link", link)):
        assert f["ok"], "%s: the pump did not run the %d days: %s" % (what, F.HEAP_DAYS, f["why"])
        assert f["wasm_steps"] > F.HEAP_DAYS * 1600                     # every wake-up came back to Node
        assert f["grew"] == 0, "%s: the heap grew from %d to %d B in a %d B budget" % (
            what, f["wasm_heap_start"], f["wasm_heap_max"], heap)
        assert f["wasm_live_peak"] < f["wasm_heap_start"]


def test_the_heap_check_sees_a_budget_too_small():
    """The old 64 KB budget: the firmware's code alone, loaded from .mpy into
    the heap, does not fit, and the run must say the heap grew."""
    f = F.heap_run(65536, link=False, days=1)
    assert f["ok"], f["why"]
    assert f["wasm_heap_start"] == 64000
    assert f["grew"] > 0 and f["wasm_live_peak"] > 64000, f
