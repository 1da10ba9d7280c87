"""Board figures: the firmware's heap under the MicroPython unix port, bytes
allocated per stroke in steady state (target 0), the .mpy size per board, and
the SITL runtime's speed against the in-process one. Figures only.

The unix port has 64-bit objects (a 32-bit board's are about half the size
for pointers and small ints), and it loads .mpy bytecode into the heap as a
board does for files on its filesystem.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
BIN = os.path.dirname(sys.executable)

DRIVER = r'''
import gc, sys, json
gc.collect()
base = gc.mem_alloc()
from fakeports import Hardware
from pump.controller import Pump
gc.collect()
imported = gc.mem_alloc()
prof = json.load(open(sys.argv[1]))
days = int(sys.argv[2])
hw = Hardware(prof, ticks_start=(1 << 30) - 90000)


class Count:
    """The fake motor's stroke trace, counted instead of kept (a board keeps none)."""
    n = 0

    def append(self, x):
        self.n += 1

    def __len__(self):
        return self.n


hw.motor.trace = Count()
pump = Pump(prof, **hw.ports())
pump.start()
pump.refill(20000000, 2000, 0)
hw.motor.actual_nl = 20000000
pump.program_now({"mode": "continuous", "concentration_ug_ml": 2000, "daily_dose_ug": 200,
                  "max_daily_ug": 240, "max_hourly_ug": 20})
gc.collect()
setup = gc.mem_alloc()
peak = setup
DAY = 86400000
sleep = 1
n = 0
steady = None
while hw.clock.now < days * DAY:
    hw.clock.now += sleep
    sleep = pump.cycle()
    n += 1
    if n % 200 == 0:
        gc.collect()
        a = gc.mem_alloc()
        if a > peak:
            peak = a
    if steady is None and hw.clock.now > 2 * DAY:
        # steady state: count what 500 strokes allocate, with the collector off
        gc.collect()
        gc.disable()
        s0 = len(hw.motor.trace)
        a0 = gc.mem_alloc()
        while len(hw.motor.trace) < s0 + 500:
            hw.clock.now += sleep
            sleep = pump.cycle()
        steady = (gc.mem_alloc() - a0) // 500
        gc.enable()
print("imported", imported - base)
print("setup", setup - base)
print("peak", peak - base)
print("per_stroke", steady)
print("strokes", len(hw.motor.trace))
'''


def heap_figures(days=30):
    from host_tools.flash import FIRMWARE
    cross = os.path.join(BIN, "mpy-cross")
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "pump"))
        for name in os.listdir(os.path.join(FIRMWARE, "pump")):
            if name.endswith(".py"):
                subprocess.run([cross, "-s", "pump/" + name, os.path.join(FIRMWARE, "pump", name), "-o",
                                os.path.join(d, "pump", name[:-3] + ".mpy")], check=True)
        subprocess.run([cross, os.path.join(ROOT, "tests", "portable", "fakeports.py"), "-o",
                        os.path.join(d, "fakeports.mpy")], check=True)
        drv = os.path.join(d, "drv.py")
        with open(drv, "w") as f:
            f.write("import sys\nsys.path.insert(0, %r)\n" % d + DRIVER)
        r = subprocess.run([os.path.join(BIN, "micropython"), "-X", "heapsize=4M", drv,
                            os.path.join(ROOT, "boards", "sim.json"), str(days)],
                           stdout=subprocess.PIPE, text=True, check=True)
    return dict(line.split(" ", 1) for line in r.stdout.splitlines())


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
    print("board figures (firmware/pump under the MicroPython unix port):")
    h = heap_figures()
    print("  30-day run: heap after importing the core (.mpy) %s B, after setup %s B, live peak %s B"
          % (h["imported"], h["setup"], h["peak"]))
    print("  bytes allocated per stroke in steady state: %s (target 0)" % h["per_stroke"])
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
