# Bytes the pump allocates over 500 strokes in steady state, for the test and
# `make bench`, under the MicroPython unix port (core on MICROPYPATH):
#   micropython alloc_driver.py PROFILE DAILY_UG [STORE_DIR]
# With STORE_DIR the board's file store is used (the stroke records kept open);
# without, a store that allocates nothing, so only the pump's own is counted.
import sys
import json
import gc
from fakeports import Hardware, Store
from pump.controller import Pump, stroke_keys


class PreallocatedStore(Store):
    """Copies a record over its previous copy when the length is the same, as
    a flash sector is rewritten: the store allocates nothing, so what is
    counted is the pump's own allocation."""

    def write(self, key, data):
        old = self.data.get(key)
        if old is not None and len(old) == len(data):
            old[:] = data
        else:
            self.data[key] = bytearray(data)


with open(sys.argv[1]) as f:
    prof = json.load(f)
daily_ug = int(sys.argv[2])
hw = Hardware(prof, ticks_start=(1 << 30) - 90000)
if len(sys.argv) > 3:
    from hw.store import FileStore
    hw.store = FileStore(sys.argv[3], hot=stroke_keys())
else:
    hw.store = PreallocatedStore()
hw.motor.trace = None
pump = Pump(prof, **hw.ports())
pump.start()
pump.refill(20000000, 500, 0)
hw.motor.actual_nl = 20000000
pump.program_now({"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": daily_ug,
                  "max_daily_ug": daily_ug + daily_ug // 5, "max_hourly_ug": daily_ug // 10})
DAY = 86400000
clock = hw.clock
sleep = 1
while clock.now < 2 * DAY:        # past the first day's window snapshots
    clock.now += sleep
    sleep = pump.cycle()
s0 = hw.motor.completed
wakes = 0
a0 = 0       # made before it is read: storing a new global may grow the module's dict
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
while hw.motor.completed < s0 + 500 and wakes < 100000:
    clock.now += sleep
    sleep = pump.cycle()
    wakes += 1
used = gc.mem_alloc() - a0
gc.enable()
print("strokes=%d" % (hw.motor.completed - s0))
print("wakes=%d" % wakes)
print("bytes=%d" % used)
print("state=%s" % pump.state())
