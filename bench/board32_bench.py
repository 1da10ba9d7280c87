"""Board figures on a 32-bit MicroPython beside the 64-bit unix port's.

The 32-bit figures come from the MicroPython WebAssembly build the lab pins,
run by Node (emulator/wasm32.mjs, tests/wasm32_figures.py): small ints stop
at 2**30 - 1 and pointers have a board's width, as on a Pico or an ESP32.
The 64-bit ones from the unix port, as bench/board_bench.py runs it. Both load
the firmware from .mpy into the heap, as `make flash` installs it. Prints:
  - bytes allocated per stroke in steady state (500 strokes, the board's
    store, with and without the link polled at every wake-up), and with a
    hot-path value planted at 2**30;
  - 30 days, core alone and core + link, from each profile's
    heap_budget_bytes: fits (the heap never grew) or by how much it grew,
    the live heap after import and at its peak; on the unix port, whose heap
    cannot grow, whether the run completed;
  - the smallest heap each needs (1 KB steps, 2-day runs: the growth, if
    any, comes at the imports, the setup and the first bolus);
  - the wasm32 SITL runtime's speed against the in-process one (30 days).
Figures only; without Node and the lab's npm build it says why and stops.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    sys.path.insert(0, p)

import wasm32_figures as F  # noqa: E402
from board_bench import PORTABLE, PROFILE, _mp  # noqa: E402

UNIX_DAYS_SEARCH = 2


def unix_heap_ok(lib, heap, link, days):
    store = tempfile.mkdtemp()
    try:
        rc, kv, _ = _mp([os.path.join(PORTABLE, "heap_driver.py"), PROFILE, str(days), store]
                        + (["link"] if link else []), lib, str(heap))
    finally:
        shutil.rmtree(store)
    return rc == 0 and kv.get("faults") == "0" and kv.get("state") == "running" and kv.get("bolus_errors") == "0"


def unix_smallest(lib, link, lo=64, hi=256):
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if unix_heap_ok(lib, "%dK" % mid, link, UNIX_DAYS_SEARCH):
            hi = mid
        else:
            lo = mid
    return hi


def unix_alloc(lib, daily, link=False, plant=None):
    store = tempfile.mkdtemp()
    try:
        args = [os.path.join(PORTABLE, "alloc_driver.py"), PROFILE, str(daily), store]
        args += (["link"] if link else []) + (["plant=" + plant] if plant else [])
        _, kv, _ = _mp(args, lib, "1M")
    finally:
        shutil.rmtree(store)
    return int(kv["bytes"]) // int(kv["strokes"])


def sitl_speed(days=30):
    from emulator.engine import World
    from emulator.scenario import from_dict
    raw = {"title": "bench", "duration": "%dd" % days,
           "start": {"fill_ml": 20, "concentration_ug_ml": 2000, "program": {
               "mode": "continuous", "concentration_ug_ml": 2000, "daily_dose_ug": 200,
               "max_daily_ug": 240, "max_hourly_ug": 20}}}
    out = {}
    for runtime in ("cpython", "wasm32"):
        w = World(from_dict(raw, "bench.toml"), runtime=runtime)
        t0 = time.perf_counter()
        try:
            w.run()
        finally:
            w.close()
        out[runtime] = (time.perf_counter() - t0, len(w.motor.trace))
    return out


def main():
    why = F.missing()
    if why:
        print("board figures on 32-bit: not measured: %s" % why)
        return
    lib = F.lib()             # bytecode .mpy: the unix port runs the same files
    print("board figures, 32-bit (MicroPython %s WebAssembly build under Node) beside 64-bit (unix port); "
          "firmware from .mpy:" % _version())
    print("  bytes allocated per stroke in steady state, 500 strokes, the board's store:")
    print("    %-34s %8s %8s" % ("", "32-bit", "64-bit"))
    for daily in (20, 100, 800):
        for link in (False, True):
            f = F.alloc_run(daily, store=True, link=link)
            print("    %-34s %8d %8d" % ("%d ug/day%s" % (daily, ", link polled" if link else ""),
                                          f["bytes"] // f["strokes"], unix_alloc(lib, daily, link)))
    f = F.alloc_run(100, store=True, plant="ledger.lifetime")
    print("    %-34s %8d %8d" % ("100 ug/day, ledger.lifetime = 2**30", f["bytes"] // f["strokes"],
                                  unix_alloc(lib, 100, plant="ledger.lifetime")))

    print("  %d days from each profile's heap_budget_bytes (32-bit: the heap grows by an area when an allocation "
          "does not fit; 64-bit: a fixed heap, MemoryError):" % F.HEAP_DAYS)
    runs = {}
    for name, p in F.profiles().items():
        heap = p["heap_budget_bytes"]
        for link in (False, True):
            if (heap, link) not in runs:
                runs[heap, link] = (F.heap_run(heap, link), unix_heap_ok(lib, heap, link, F.HEAP_DAYS))
            f, unix_ok = runs[heap, link]
            if not f["ok"]:
                res = "FAILED: %s" % f["why"]
            elif f["grew"] == 0:
                res = "fits: GC heap %d B, never grew" % f["wasm_heap_start"]
            else:
                res = "DOES NOT FIT: the GC heap grew from %d to %d B" % (f["wasm_heap_start"], f["wasm_heap_max"])
            print("    %-6s %6d B %-11s 32-bit %s; live after import %d B, peak %d B | 64-bit %s"
                  % (name, heap, "core + link" if link else "core", res, f["wasm_live_import"],
                     f["wasm_live_peak"], "completes" if unix_ok else "MemoryError"))
    for heap in (65536,):
        for link in (False, True):
            f = F.heap_run(heap, link, days=2)
            print("    the old %d B, %-11s 32-bit: the GC heap grew from %d to %d B; live peak %d B"
                  % (heap, "core + link" if link else "core", f["wasm_heap_start"], f["wasm_heap_max"],
                     f["wasm_live_peak"]))
    print("  the smallest heap (heapsize, 1 KB steps, %d-day runs): 32-bit never grows / 64-bit completes:"
          % UNIX_DAYS_SEARCH)
    for link in (False, True):
        print("    %-11s %4s KB / %4d KB" % ("core + link" if link else "core", F.smallest_heap(link),
                                             unix_smallest(lib, link)))
    s = sitl_speed()
    (tc, n), (tw, n2) = s["cpython"], s["wasm32"]
    assert n == n2
    print("  30 days, %d strokes: in-process %.2f s, SITL on the wasm32 build %.1f s: %.0fx the in-process time"
          % (n, tc, tw, tw / tc))


def _version():
    from emulator.mpwasm import pinned_version
    return pinned_version()


if __name__ == "__main__":
    main()
