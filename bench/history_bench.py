"""Therapy history: how many records the pump keeps, how many days that is at
a typical clinic pattern, and what it takes of each board's flash.

The pattern (180 days of the in-process pump on the test suite's fake
hardware): 400 ug/day of 2000 ug/mL (a 20 mL reservoir lasts about 100 days);
the patient asks for the programmed bolus at 08:00, 12:00, 12:30 (inside the
3 h lockout: refused) and 19:00; a clinic visit every 90 days sets the clock,
refills and sends a program; the low-reservoir alarm before the visit is
silenced once by the patient. Records a day are counted from the pump's own
event log, so a change in what the pump logs changes the figure.

Flash: the board's store (hw/store.py) writes the pump's records and a full
event log on a real littlefs in RAM with the board's block size and file
system size, under the MicroPython unix port; the blocks in use are what the
records take (littlefs keeps small files in its metadata blocks). RAM: the
event log's ring is 26 bytes a record. Figures only.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "portable"), ROOT]
BIN = os.path.dirname(sys.executable)
DAY = 86_400_000
DAYS = 180


def clinic_records_per_day(days=DAYS):
    from fakeports import Hardware
    from pump.controller import Pump, Refused, CommandError
    with open(os.path.join(ROOT, "boards", "sim.json")) as f:
        prof = json.load(f)
    prof["log_size"] = 10_000          # keep every record to count them
    hw = Hardware(prof)
    hw.motor.trace = None
    pump = Pump(prof, **hw.ports())
    pump.start()
    prog = {"mode": "continuous", "concentration_ug_ml": 2000, "daily_dose_ug": 400, "max_daily_ug": 480,
            "max_hourly_ug": 40, "patient_bolus": {"dose_ug": 20, "duration_min": 10, "lockout_min": 180,
                                                   "max_per_day": 4}}
    pump.refill(20_000_000, 2000, 0)
    hw.motor.actual_nl = 20_000_000
    pump.program_now(prog)
    start = len(pump.log)
    clock = hw.clock
    presses = [8 * 60, 12 * 60, 12 * 60 + 30, 19 * 60]
    wake = 0
    silenced = False
    for day in range(days):
        for minute in range(0, 1440, 10):
            t = day * DAY + minute * 60_000
            while wake <= t:
                clock.now = wake
                wake += pump.cycle()
            clock.now = t
            if minute in presses:
                try:
                    pump.patient_bolus()
                except (Refused, CommandError):
                    pass
                wake = clock.now + pump.cycle()
            if pump.alarms.codes() and not silenced and minute == 9 * 60:
                pump.silence()          # the low-reservoir tone, once
                silenced = True
            if day % 90 == 89 and minute == 10 * 60:
                pump.set_clock(clock.wall_s())
                left = pump.reservoir.remaining_nl()
                pump.refill(20_000_000, 2000, left)
                hw.motor.actual_nl = 20_000_000
                prog["daily_dose_ug"] = 400 + 10 * (day // 90 + 1)
                pump.program_now(prog)
                silenced = False
                wake = clock.now + pump.cycle()
    recs = pump.log.records[start:]
    kinds = {}
    from pump.eventlog import kind_name
    for r in recs:
        kinds[kind_name(r[4])] = kinds.get(kind_name(r[4]), 0) + 1
    return len(recs) / days, kinds


def flash_used(block, blocks, progsize, log_size):
    lib = os.pathsep.join([os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tests", "portable")])
    r = subprocess.run([os.path.join(BIN, "micropython"), "-X", "heapsize=8M",
                        os.path.join(ROOT, "tests", "portable", "history_flash.py"),
                        str(block), str(blocks), str(progsize), str(log_size)],
                       env=dict(os.environ, MICROPYPATH=lib), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    kv = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    if r.returncode != 0 or "used_bytes" not in kv:
        return None, r.stdout.strip().splitlines()[-1:]
    return int(kv["used_bytes"]), int(kv["empty_bytes"])


def main():
    rate, kinds = clinic_records_per_day()
    print("therapy history (the pump's event log; link noise has its own ring and never evicts it):")
    print("  clinic pattern, %d days: %.2f records a day (%s)" % (
        DAYS, rate, ", ".join("%s %d" % kv for kv in sorted(kinds.items(), key=lambda kv: -kv[1]))))
    for board in ("sim", "pico", "pico2", "esp32"):
        with open(os.path.join(ROOT, "boards", board + ".json")) as f:
            p = json.load(f)
        n = p.get("log_size", 64)
        fs = p.get("fs")
        line = "  %-5s %4d records = %5.0f days at the pattern; ring in RAM %6d B" % (board, n, n / rate, 26 * n)
        if fs:
            used, empty = flash_used(fs["block_bytes"], fs["bytes"] // fs["block_bytes"], fs["prog_bytes"], n)
            if used is None:
                line += "; flash: not measured (%s)" % empty
            else:
                line += ("; on littlefs (%d B blocks) the pump's records take %d KB of its %d KB file system "
                         "(%.1f %%), %d KB of it the log" % (fs["block_bytes"], used // 1024, fs["bytes"] // 1024,
                                                            100.0 * used / fs["bytes"], (used - empty) // 1024))
        print(line)


if __name__ == "__main__":
    main()
