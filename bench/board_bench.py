"""Board figures: the firmware's heap under the MicroPython unix port, bytes
allocated per stroke in steady state (target 0), the .mpy size per board, and
the SITL runtime's speed against the in-process one. Figures only.

The unix port has 64-bit objects (a 32-bit board's are about half the size
for pointers and small ints), and it loads .mpy bytecode into the heap as a
board does for files on its filesystem.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
BIN = os.path.dirname(sys.executable)

PORTABLE = os.path.join(ROOT, "tests", "portable")
PROFILE = os.path.join(ROOT, "boards", "sim.json")


def _compile_lib(d):
    """What a board runs from /lib and the fake ports, as .mpy, as on a board."""
    from host_tools.flash import board_modules, compile_module
    for rel, src in board_modules() + [("fakeports.py", os.path.join(PORTABLE, "fakeports.py")),
                                   ("heap_link.py", os.path.join(PORTABLE, "heap_link.py"))]:
        compile_module(src, rel, d, cross=os.path.join(BIN, "mpy-cross"))


def _mp(args, lib, heap):
    env = dict(os.environ, MICROPYPATH=lib)
    r = subprocess.run([os.path.join(BIN, "micropython"), "-X", "heapsize=" + heap] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    kv = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    return r.returncode, kv, r.stdout


def heap_figures(days=30):
    out = {}
    with tempfile.TemporaryDirectory() as d:
        lib = os.path.join(d, "lib")
        _compile_lib(lib)
        for heap, link in (("64wK", ""), ("64K", ""), ("4M", ""), ("64wK", "link"), ("4M", "link")):
            store = os.path.join(d, "store-%s-%s" % (heap, link))
            os.makedirs(store)
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            rc, kv, text = _mp([os.path.join(PORTABLE, "heap_driver.py"), PROFILE, str(days), store]
                               + ([link] if link else []), lib, heap)
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            # CPU seconds of the micropython process (its start and the driver included)
            kv["cpu_s"] = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
            ok = rc == 0 and kv.get("faults") == "0" and kv.get("state") == "running"
            out[heap, link] = (ok, kv, text.strip().splitlines()[-1] if not ok else "")
        for daily in (20, 100, 800):
            rc, kv, _ = _mp([os.path.join(PORTABLE, "alloc_driver.py"), PROFILE, str(daily)], lib, "1M")
            out["alloc", daily] = kv
            store = os.path.join(d, "alloc-store-%d" % daily)
            os.makedirs(store)
            rc, kv, _ = _mp([os.path.join(PORTABLE, "alloc_driver.py"), PROFILE, str(daily), store], lib, "1M")
            out["alloc_file", daily] = kv
    return out


def store_figures(writes):
    """The board's store on a real littlefs in RAM: heap and flash programs a write."""
    _, kv, _ = _mp([os.path.join(PORTABLE, "store_alloc.py"), str(writes)],
                   os.pathsep.join([os.path.join(ROOT, "firmware"), PORTABLE]), "4M")
    return {k: int(v) for k, v in kv.items()}


def sitl_figures(days=180):
    from emulator.engine import World
    from emulator.scenario import from_dict
    raw = {"title": "bench", "duration": "%dd" % days,
           "start": {"fill_ml": 20, "concentration_ug_ml": 2000, "program": {
               "mode": "continuous", "concentration_ug_ml": 2000, "daily_dose_ug": 200,
               "max_daily_ug": 240, "max_hourly_ug": 20}}}
    out = {}
    for runtime in ("cpython", "micropython"):
        w = World(from_dict(raw, "bench.toml"), runtime=runtime)
        t0 = time.perf_counter()
        try:
            w.run()
        finally:
            w.close()
        out[runtime] = (time.perf_counter() - t0, len(w.motor.trace))
    return out


def main():
    from host_tools.flash import build
    print("board figures (firmware/pump under the MicroPython unix port, 64-bit objects):")
    h = heap_figures()
    for heap, link, what in (("64wK", "", "word-scaled 64 KB: 128 KB on this 64-bit host"),
                             ("64K", "", "literal 64 KB"), ("4M", "", "ample heap"),
                             ("64wK", "link", "word-scaled 64 KB, the link attached as on a board"),
                             ("4M", "link", "ample heap, the link attached")):
        ok, kv, why = h[heap, link]
        if ok:
            print("  30 days, heapsize=%-4s (%s): OK; live heap after the driver %s B, after import %s B, "
                  "after setup %s B, peak %s B" % (heap, what, kv["live_after_driver_compile"],
                                                  kv["live_after_import"], kv["live_after_setup"], kv["live_peak"]))
        else:
            print("  30 days, heapsize=%-4s (%s): FAILED: %s" % (heap, what, why))
    ok, kv, _ = h["4M", ""]
    if ok:
        print("  time per wake-up, 30 days at heapsize=4M: %.1f us (%d wake-ups, %.2f s of CPU with the start "
              "and the driver; a Pico's are slower by the ratio of the two CPUs)"
              % (kv["cpu_s"] * 1e6 / int(kv["wakes"]), int(kv["wakes"]), kv["cpu_s"]))
    for daily in (20, 100, 800):
        a, f = h["alloc", daily], h["alloc_file", daily]
        print("  bytes allocated per stroke at %3d ug/day: pump %d (target 0); with the board's file store "
              "(stroke records kept open) %d" % (daily, int(a["bytes"]) // int(a["strokes"]),
                                    int(f["bytes"]) // int(f["strokes"])))
    st = store_figures(300)
    n = st["writes"]
    for rec in ("ledger", "window"):
        print("  board store on littlefs (Pico geometry), the %s record: kept open %d B allocated and %.1f flash "
              "programs a write; renamed %d B and %.1f" % (rec, st[rec + "_hot_bytes"] // n, st[rec + "_hot_progs"] / n,
                                                          st[rec + "_renamed_bytes"] // n, st[rec + "_renamed_progs"] / n))
    print("  each file the store keeps open holds %d B of littlefs cache (4 files)" % st["held_per_open_file"])
    for board in ("pico", "pico2", "esp32"):
        _, total = build(board, out=lambda *a: None)
        with open(os.path.join(ROOT, "boards", board + ".json")) as f:
            p = json.load(f)
        print("  %-6s .mpy for %-9s %6d B (heap budget %d B)" % (board, p["mpy_arch"], total, p["heap_budget_bytes"]))
    s = sitl_figures()
    (tc, n), (tm, n2) = s["cpython"], s["micropython"]
    print("  180 days, %d strokes: in-process %.1f s, SITL (micropython process) %.1f s: %.1fx slower; "
          "SITL runs %.2e x real time" % (n, tc, tm, tm / tc, 180 * 86400 / tm))
    assert n == n2


if __name__ == "__main__":
    main()
