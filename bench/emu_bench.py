"""Emulator speed: a 180-day refill interval at stroke resolution.

Workload (the figures the speed work is measured by): 500 ug/day at 500 ug/mL with the sim profile's
250 nL stroke, i.e. 4000 strokes a day, 720 000 strokes in 180 days; a 40 mL
reservoir class is not needed: the pump is refilled every 20 days as a clinic
would (so delivery never stops). Prints wall seconds, strokes per second, the
ratio of simulated to real time, and the same workload as a bare Python loop
that only adds up the strokes (the lower bound for any stroke-by-stroke
emulator in CPython). Then the firmware alone (bench/portable_wake.py, the
tests' fake ports, no emulator): microseconds per wake-up under CPython and
under the MicroPython unix port, each against a floor measured in the same
process (as many calls to a method that only returns). Figures only:
nothing here passes or fails.
"""
import os
import subprocess
import sys
import time

from emulator.engine import World
from emulator.report import build
from emulator.scenario import from_dict

DAYS = 180
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAKE_DAYS = 10


def scenario():
    return from_dict({
        "title": "bench: 180 days at 500 ug/day, 500 ug/mL",
        "duration": "%dd" % DAYS,
        "physics": {"motor": {"jitter_permille": 20}},
        "start": {"fill_ml": 20, "concentration_ug_ml": 500,
                  "program": {"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": 500,
                              "max_daily_ug": 620, "max_hourly_ug": 40}},
        "events": [{"at": "19d 10:00", "do": "refill", "volume_ml": 20, "concentration_ug_ml": 500,
                    "count": 9, "every": "19d"}],
    }, "bench.toml")


def bare_loop(strokes, stroke_nl):
    t0 = time.perf_counter()
    total = 0
    t = 0
    for i in range(strokes):
        t += 21600
        total += stroke_nl
    return time.perf_counter() - t0


def firmware_alone(interpreter):
    """-> {wakes, strokes, pump_us, floor_us} of bench/portable_wake.py, or None."""
    paths = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "portable")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), MICROPYPATH=os.pathsep.join(paths))
    try:
        r = subprocess.run([interpreter, os.path.join(ROOT, "bench", "portable_wake.py"),
                            os.path.join(ROOT, "boards", "sim.json"), str(WAKE_DAYS), "500"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    except OSError:
        return None
    kv = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    if r.returncode != 0 or kv.get("state") != "running":
        print("  (%s: %s)" % (os.path.basename(interpreter), r.stdout.strip().splitlines()[-1:]))
        return None
    return {k: int(v) for k, v in kv.items() if v.isdigit()}


def main():
    sc = scenario()
    w = World(sc)
    t0 = time.perf_counter()
    w.run()
    run_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    rep = build(w)
    check_s = time.perf_counter() - t1
    n = len(w.motor.trace)
    sim_s = sc.duration_ms / 1000
    bare = bare_loop(n, w.profile["stroke_nl"])
    bad = [c["id"] for c in rep["invariants"] if c["status"] == "fail"]
    unjudged = [c["id"] for c in rep["invariants"] if c["status"] == "not checked"]
    print("emulator, %d days at 500 ug/day (500 ug/mL), sim profile:" % DAYS)
    print("  strokes                 %d (%d wake-ups of the firmware)" % (n, n * 2))
    print("  run wall time           %.2f s" % run_s)
    print("  checks + report         %.2f s" % check_s)
    print("  strokes per second      %.0f" % (n / run_s))
    print("  simulated / real time   %.2e" % (sim_s / run_s))
    print("  bare loop, same strokes %.3f s (lower bound; %.0fx faster than the emulator)" % (bare, run_s / bare))
    print("  invariants              %s%s" % ("all hold" if not bad else "FAILED: " + ", ".join(bad),
                                             "; not checked (nothing to judge): " + ", ".join(unjudged) if unjudged else ""))
    print("  target: 180 days in under 3 s (more than 5e6 x real time): %.2f us a wake-up for everything"
          % (3e6 / (n * 2)))
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    print("the firmware alone (fake ports, no emulator), %d days at 500 ug/day:" % WAKE_DAYS)
    for name, interp in (("CPython", sys.executable), ("MicroPython unix port", mp)):
        f = firmware_alone(interp)
        if f is None:
            print("  %-22s not measured" % name)
            continue
        per = f["pump_us"] / f["wakes"]
        floor = f["floor_us"] / f["wakes"]
        print("  %-22s %.1f us a wake-up (%d wake-ups, %d strokes); floor (a call that only returns) "
              "%.3f us: %.0fx the floor" % (name, per, f["wakes"], f["strokes"], floor, per / floor))
        if name == "CPython":
            print("  %-22s so %d strokes of the run above cost at least %.1f s in the firmware alone"
                  % ("", n, per * n * 2 / 1e6))


if __name__ == "__main__":
    main()
