# The pump on a board: build the ports from the board profile, recover state,
# and run the loop. Copied to the board with board.json (the profile) and
# keys.json (this pump's serial and role keys, provisioned at flash time:
# `make flash`).
#
# The loop cycles the pump when it asked to wake, answers the programmer link,
# watches the patient's button and plays alarm sounds. The watchdog is fed
# only after a pass in which nothing failed: a loop that keeps failing, or
# hangs, resets the board, and the pump then starts with the watchdog alarm.
import json
import time

from pump import eventlog as E
from pump.controller import (Pump, CommandError, Refused, RESET_POWER_ON, RESET_SOFT, RESET_WATCHDOG,
                             stroke_keys)

POLL_MS = 20          # the link and the button are looked at this often


def load_json(path):
    with open(path) as f:
        return json.load(f)


def load_keys(path):
    """-> ({role: key}, serial) from the pump key file flashed with the
    firmware (`make flash ... SERIAL=SN`: this pump's keys only)."""
    from binascii import unhexlify
    from pump.frames import ROLE_CLINICIAN, ROLE_PATIENT
    try:
        raw = load_json(path)
    except (OSError, ValueError):
        return {}, None    # no keys: the pump answers reads only
    keys = {}
    for name, role in (("patient", ROLE_PATIENT), ("clinician", ROLE_CLINICIAN)):
        if raw.get(name):
            keys[role] = unhexlify(raw[name])
    return keys, raw.get("serial")


def _urandom():
    try:
        from os import urandom
        return urandom
    except ImportError:
        return None        # the link's nonces stay unique by its boot epoch and counts


def reset_cause(machine):
    c = machine.reset_cause()
    if c == getattr(machine, "WDT_RESET", None):
        return RESET_WATCHDOG
    if c == getattr(machine, "PWRON_RESET", None):
        return RESET_POWER_ON
    return RESET_SOFT


class Board:
    """Every port of one board, built from its profile."""

    def __init__(self, profile, keys, machine, serial=None):
        from hw.clock import BoardClock
        from hw.motor import StepperMotor
        from hw.sensors import PressureSensor, BatteryGauge
        from hw.annunciator import Buzzer
        from hw.store import FileStore
        from hw.button import Button
        from hw.link import UsbCdcPort, UartPort
        pins = profile["pins"]
        self.clock = BoardClock(machine.RTC())
        self.motor = StepperMotor(pins, profile["motor"])
        self.pressure = PressureSensor(pins["pressure_adc"], profile["adc"])
        self.battery = BatteryGauge(pins["battery_adc"], profile["adc"])
        self.buzzer = Buzzer(pins["buzzer"], pins.get("led"))
        self.store = FileStore(profile.get("store_root", "/pump"), hot=stroke_keys())
        self.button = Button(pins["button"])
        lk = profile["link"]
        self.port = UartPort(lk) if lk["kind"] == "uart" else UsbCdcPort()
        self.wdt = machine.WDT(timeout=profile.get("watchdog_ms", 8000))
        self.pump = Pump(profile, clock=self.clock, motor=self.motor, pressure=self.pressure,
                         battery=self.battery, store=self.store, annunciator=self.buzzer)
        self.pump.start(reset_cause(machine))
        # the link's code comes after the start, whose recovery code is then
        # given back (pump/recovery.py): the two are never in the heap at once;
        # session nonces from os.urandom: the board's hardware RNG
        from pump.link import Link
        self.link = Link(self.pump, self.port, keys, serial, _urandom())


def run(b, clock=time, max_passes=None):
    """The main loop. clock: the time module (a test gives a virtual one)."""
    pump = b.pump
    next_wake = clock.ticks_ms()
    passes = 0
    failing = False
    while max_passes is None or passes < max_passes:
        passes += 1
        healthy = True
        try:
            now = clock.ticks_ms()
            due = clock.ticks_diff(next_wake, now) <= 0
            if b.link.poll(now):
                due = True          # a command: the pump decides at once
            if b.button.pressed():
                try:
                    pump.patient_bolus()
                except (Refused, CommandError):
                    pass            # refused and logged by the pump
                due = True
            if due:
                sleep = pump.cycle()
                next_wake = clock.ticks_add(clock.ticks_ms(), sleep)
            step = b.buzzer.update()
        except Exception:           # nothing may stop the loop; the watchdog decides
            healthy = False
            step = None
            if not failing:         # logged once, not at every pass
                try:
                    pump.log_event(E.FAULT, 0, 1)
                except Exception:
                    pass
        failing = not healthy
        if healthy:
            b.wdt.feed()
        wait = clock.ticks_diff(next_wake, clock.ticks_ms())
        if wait > POLL_MS:
            wait = POLL_MS
        if step is not None and step < wait:
            wait = step
        if wait > 0:
            clock.sleep_ms(wait)
    return passes


def maintenance_requested(profile, machine):
    """The patient button held down at power-on: do not start the pump (and
    its watchdog), so the board stays at the REPL for mpremote and make flash."""
    pin = machine.Pin(profile["pins"]["button"], machine.Pin.IN, machine.Pin.PULL_UP)
    return pin.value() == 0


def main():
    import machine
    profile = load_json("board.json")
    if maintenance_requested(profile, machine):
        print("pump: button held at start: maintenance, the pump is not started")
        return
    keys, serial = load_keys("keys.json")
    run(Board(profile, keys, machine, serial))


if __name__ == "__main__":
    main()
