# Bytes the pump allocates over 500 strokes in steady state, for the test and
# `make bench`, under the MicroPython unix port (core on MICROPYPATH) or the
# 32-bit wasm32 build (emulator/wasm32.mjs):
#   micropython alloc_driver.py PROFILE DAILY_UG [STORE_DIR] [link] [plant=ATTR]
# With STORE_DIR the board's file store is used (the stroke records kept open);
# without, a store that allocates nothing, so only the pump's own is counted.
# `link`: the programmer link is attached and polled at every wake-up, as the
# board's main loop does, with no programmer talking. `plant=ATTR` (a dotted
# path from the pump, e.g. ledger.lifetime) sets that value to 2**30 before the
# count, to show that a hot-path value past a 32-bit board's small ints
# allocates there (the count must see it).
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
store_dir = None
with_link = False
plant = None
for arg in sys.argv[3:]:
    if arg == "link":
        with_link = True
    elif arg.startswith("plant="):
        plant = arg[6:].split(".")
    else:
        store_dir = arg
hw = Hardware(prof, ticks_start=(1 << 30) - 90000)
if store_dir is not None:
    from hw.store import FileStore
    hw.store = FileStore(store_dir, hot=stroke_keys())
else:
    hw.store = PreallocatedStore()
hw.motor.trace = None
pump = Pump(prof, **hw.ports())
pump.start()
pump.refill(20000000, 500, 0)
hw.motor.actual_nl = 20000000
pump.program_now({"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": daily_ug,
                  "max_daily_ug": daily_ug + daily_ug // 5, "max_hourly_ug": daily_ug // 10})
link = None
if with_link:
    from pump.link import Link
    from pump.frames import ROLE_PATIENT


    class QuietPort:
        """A programmer link with nobody at the other end."""

        def __init__(self):
            self.answered = 0      # bytes the pump sent (none is asked for)

        def read(self, n):
            return b""

        def write(self, data):
            self.answered += len(data)


    link = Link(pump, QuietPort(), {ROLE_PATIENT: b"patient key for the alloc run 32"})
DAY = 86400000
clock = hw.clock
sleep = 1
while clock.now < 2 * DAY:        # past the first day's window snapshots
    clock.now += sleep
    if link is not None:
        link.poll(clock.ticks_ms())
    sleep = pump.cycle()
if plant is not None:
    obj = pump
    for name in plant[:-1]:
        obj = getattr(obj, name)
    getattr(obj, plant[-1])          # it exists: a misspelt path is an error, not a new attribute
    setattr(obj, plant[-1], 1 << 30)
s0 = hw.motor.completed
wakes = 0
a0 = 0       # made before it is read: storing a new global may grow the module's dict
gc.collect()
gc.disable()
a0 = gc.mem_alloc()
while hw.motor.completed < s0 + 500 and wakes < 100000:
    clock.now += sleep
    if link is not None:
        link.poll(clock.ticks_ms())     # as the board's main loop does, between wake-ups
    sleep = pump.cycle()
    wakes += 1
used = gc.mem_alloc() - a0
gc.enable()
print("strokes=%d" % (hw.motor.completed - s0))
print("wakes=%d" % wakes)
print("bytes=%d" % used)
print("state=%s" % pump.state())
if link is not None:
    print("link_polls=%d" % wakes)
    print("link_answered=%d" % link.port.answered)
