# The firmware alone, wake-up after wake-up: what one wake-up of the core
# costs, under CPython and under MicroPython alike, with nothing of the
# emulator around it (the ports are the tests' fakes: a clock, a motor that
# always completes, steady sensors, a dict store). Run by bench/wake_bench.py:
#   python|micropython portable_wake.py PROFILE DAYS DAILY_UG
# Prints key=value lines. The floor is measured in the same process: a loop
# that makes the same number of calls to a method that only returns a
# constant, i.e. what any design with one wake-up per call costs at least.
import sys
import json
try:
    from time import ticks_us, ticks_diff

    def now_us():
        return ticks_us()

    def since_us(t0):
        return ticks_diff(ticks_us(), t0)
except ImportError:          # CPython
    from time import perf_counter

    def now_us():
        return perf_counter()

    def since_us(t0):
        return (perf_counter() - t0) * 1e6

from fakeports import Hardware
from pump.controller import Pump

DAY = 86400000


class Floor:
    def cycle(self):
        return 21600


def main():
    with open(sys.argv[1]) as f:
        prof = json.load(f)
    days = int(sys.argv[2])
    daily_ug = int(sys.argv[3])
    hw = Hardware(prof)
    hw.motor.trace = None            # count strokes, list nothing
    pump = Pump(prof, **hw.ports())
    pump.start()
    pump.refill(20000000, 500, 0)
    hw.motor.actual_nl = 20000000
    # the refill is sized so the reservoir never runs dry in the run
    pump.program_now({"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": daily_ug,
                      "max_daily_ug": daily_ug + daily_ug // 4, "max_hourly_ug": daily_ug // 12 + 20})
    clock = hw.clock
    end = days * DAY
    wake = 0
    wakes = 0
    t0 = now_us()
    while wake <= end:
        clock.now = wake
        wake += pump.cycle()
        wakes += 1
    pump_us = since_us(t0)
    floor = Floor()
    w = 0
    t0 = now_us()
    for _ in range(wakes):
        w += floor.cycle()
    floor_us = since_us(t0)
    print("wakes=%d" % wakes)
    print("strokes=%d" % hw.motor.completed)
    print("pump_us=%d" % pump_us)
    print("floor_us=%d" % floor_us)
    print("state=%s" % pump.state())


main()
