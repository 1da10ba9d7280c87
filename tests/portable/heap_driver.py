# A 30-day continuous run for the small-heap test and `make bench`, under the
# MicroPython unix port with the core precompiled to .mpy on MICROPYPATH:
#   micropython -X heapsize=64wK heap_driver.py PROFILE DAYS STORE_DIR [link]
# With `link` the programmer link is attached as on a board (pump.link, the
# role keys) and polled at every wake-up; each day a programmer says HELLO and
# asks for status and the patient bolus (a frame signed in that session)
# through it (heap_link.py); without, the bolus is asked of
# the pump directly. Prints key=value lines: what happened, and the live heap
# at each stage. The same run goes on the 32-bit wasm32 build: emulator/wasm32.mjs
# imports this module and calls step() and finish(). There the collector runs
# only between calls, so gc.collect() here does nothing at once and the heap
# figures are the runner's (wasm_*, taken between calls).
import sys
import os
import json
import gc
try:
    import micropython
except ImportError:
    micropython = None

gc.collect()
base = gc.mem_alloc()
from fakeports import Hardware
from hw.store import FileStore
from pump.controller import Pump, stroke_keys
WITH_LINK = len(sys.argv) > 4 and sys.argv[4] == "link"
# the link is imported after the pump has started, as a board's main.py does:
# the start's recovery code (pump/recovery.py) is given back before it comes

DAY = 86400000
with open(sys.argv[1]) as f:
    prof = json.load(f)
days = int(sys.argv[2])
store_dir = sys.argv[3]
gc.collect()
imported = gc.mem_alloc()
def out(line):
    # a too-small heap may fail even here: say what can be said
    try:
        print(line)
    except MemoryError:
        pass


faults = [0, "none"]         # count, first one
bolus_errors = [0, "none"]


def note(box, e):
    box[0] += 1
    if box[0] == 1:
        try:
            box[1] = "%s: %s" % (type(e).__name__, e)
        except MemoryError:
            box[1] = "MemoryError (while describing it)"


class HeapPump(Pump):
    def _fault(self, e):
        # a MemoryError inside cycle() is swallowed by the firmware into a fault
        # stop: note it here so a too-small heap cannot pass unnoticed
        note(faults, e)
        if faults[0] == 1 and hasattr(sys, "print_exception"):
            sys.print_exception(e)
        Pump._fault(self, e)


hw = Hardware(prof, ticks_start=(1 << 30) - 90000)
hw.store = FileStore(store_dir, hot=stroke_keys())    # the board's store: records in files, not in the heap
hw.motor.trace = None              # the fake motor counts strokes instead of listing them
pump = None
link = None
port = None


# The pump is set up in four pieces, one per step() call (boot, fill, the
# link, the program): the wasm32 build collects garbage only between calls,
# so a piece's garbage is gone before the next, as a board's collector would
# reclaim it.
def boot():
    global pump
    pump = HeapPump(prof, **hw.ports())
    pump.start()


def fill():
    pump.refill(20000000, 500, 0)
    hw.motor.actual_nl = 20000000


# the link's modules, one a call (leaves first), as the core's were imported
LINK_MODULES = ("pump.hmac256", "pump.frames", "pump.session", "pump.linklog", "pump.link", "heap_link")


def import_next():
    if WITH_LINK:
        __import__(LINK_MODULES[len(link_imported)])
    link_imported.append(1)


link_imported = []


def attach():
    global link, port
    if WITH_LINK:
        from heap_link import Programmer
        port = Programmer(pump)
        link = port.link


def program():
    pump.program_now({"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": 100,
                      "max_daily_ug": 120, "max_hourly_ug": 12,
                      "patient_bolus": {"dose_ug": 5, "duration_min": 10, "lockout_min": 120,
                                        "max_per_day": 4}})


setup_steps = [boot, fill] + [import_next] * len(LINK_MODULES) + [attach, program]
setup = 0
peak = 0
clock = hw.clock
sounds = hw.annunciator.sounds
end = days * DAY
bolus_at = DAY // 2
wake = 0
wakes = 0
strokes = 0
nsounds = 0
boluses = 0


def step():
    """One wake-up (with the day's bolus when it is due); False after the last.
    The wasm32 runner calls it from its own loop: that port collects garbage
    only between calls (emulator/wasm32.mjs)."""
    global wake, wakes, nsounds, bolus_at, boluses, peak, setup
    if setup_steps:
        setup_steps.pop(0)()
        if not setup_steps:
            gc.collect()
            setup = peak = gc.mem_alloc()
        return True
    if wake > end:
        return False
    clock.now = wake
    if wake >= bolus_at:
        bolus_at += DAY
        if link is None:
            try:
                if pump.patient_bolus():
                    boluses += 1
            except Exception as e:
                note(bolus_errors, e)
        else:
            port.daily(clock.ticks_ms())
    if link is not None:
        link.poll(clock.ticks_ms())     # as the board's main loop does
    wake += pump.cycle()
    wakes += 1
    # the fake annunciator lists what it played; count and drop it so the heap
    # measures the pump, not the test's records
    if sounds:
        nsounds += len(sounds)
        sounds.clear()
    if wakes % 256 == 0:
        gc.collect()
        a = gc.mem_alloc()
        if a > peak:
            peak = a
    return True


def finish():
    global boluses
    # what went wrong first, before anything else needs memory
    out("faults=%d" % faults[0])
    out("first_fault=%s" % faults[1])
    out("bolus_errors=%d" % bolus_errors[0])
    out("first_bolus_error=%s" % bolus_errors[1])
    gc.collect()
    final = gc.mem_alloc()
    strokes = hw.motor.completed
    store_bytes = 0
    store_keys = 0
    for name in os.listdir(store_dir):
        store_keys += 1
        store_bytes += os.stat(store_dir + "/" + name)[6]
    state = pump.state()
    gc.collect()

    if link is not None:
        boluses = port.granted
        out("link_frames=%d" % link.frames_in)
        out("link_errors=%d" % link.errors)
    out("days=%d" % days)
    out("wakes=%d" % wakes)
    out("strokes=%d" % strokes)
    out("boluses=%d" % boluses)
    out("state=%s" % state)
    out("dry_strokes=%d" % hw.motor.dry_strokes)
    out("sounds=%d" % nsounds)
    out("heap_total=%d" % (gc.mem_alloc() + gc.mem_free()))
    out("live_after_driver_compile=%d" % base)
    out("live_after_import=%d" % imported)
    out("live_after_setup=%d" % setup)
    out("live_peak=%d" % peak)
    out("live_final=%d" % final)
    out("store_keys=%d" % store_keys)
    out("store_bytes=%d" % store_bytes)
    if micropython is not None and hasattr(micropython, "mem_peak"):
        out("mem_peak=%d" % micropython.mem_peak())


if __name__ == "__main__":
    while step():
        pass
    finish()
