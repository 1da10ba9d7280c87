# A deterministic, scripted scenario for the pump, portable to MicroPython and
# CPython: the differential test runs it under both and compares the output
# byte for byte.
#
#   micropython:  MICROPYPATH=firmware:tests/portable micropython tests/portable/scenario_script.py boards/sim.json
#   cpython:      PYTHONPATH=firmware:tests/portable python tests/portable/scenario_script.py boards/sim.json
#
# Output, in this order:
#   stroke,<t_ms>,<kind>                        one line per completed stroke (the fake motor's raw trace)
#   event,<seq>,<day>,<ms>,<wall_s>,<kind>,<code>,<a>,<b>,<detail>
#                                               every event the pump logged (captured by log_sink,
#                                               so none is lost to the ring)
#   ring,<seq>,...                              the event-log ring (pump.log.records) at the end
#   <key>=<value>                               the final status, hw.* and scenario.* facts, sorted
#
# Portability rules kept here: no f-strings, no str.format_map, no reliance on
# dict ordering (every dict is printed with sorted keys), integers only.
import sys
import json

from fakeports import Hardware, PowerCut
from pump.controller import Pump, Refused, CommandError, RESET_SOFT, REFUSAL_NAMES
from pump.program import ProgramError
from pump.schedule import KINDS
from pump import alarms as A
from pump import eventlog as E

SEC = 1000
MIN = 60 * SEC
HOUR = 60 * MIN
DAY = 24 * HOUR

CONC = 500   # ug/mL
PB = {"dose_ug": 5, "duration_min": 10, "lockout_min": 120, "max_per_day": 4}
CONTINUOUS = {"mode": "continuous", "concentration_ug_ml": CONC, "daily_dose_ug": 100,
              "max_daily_ug": 120, "max_hourly_ug": 12, "safe_rate_ug_day": 50,
              "patient_bolus": PB}
# night 80, day 120 ug/day: 105 ug/day in all, inside the 30 % step-up limit
FLEX = {"mode": "flex", "concentration_ug_ml": CONC,
        "steps": [{"start_min": 0, "daily_rate_ug": 80},
                  {"start_min": 7 * 60, "daily_rate_ug": 120},
                  {"start_min": 22 * 60, "daily_rate_ug": 80}],
        "max_daily_ug": 120, "max_hourly_ug": 12, "safe_rate_ug_day": 50,
        "patient_bolus": PB}
# a step-up far above 30 % without the override: must be refused by check_program
TOO_HIGH = {"mode": "continuous", "concentration_ug_ml": CONC, "daily_dose_ug": 300,
            "max_daily_ug": 400, "max_hourly_ug": 30}


def canon(v):
    """A representation that is the same on CPython and MicroPython."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return "%d" % v
    if isinstance(v, str):
        return v
    if isinstance(v, dict):
        ks = sorted(v.keys())
        return "{" + ",".join([str(k) + ":" + canon(v[k]) for k in ks]) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join([canon(x) for x in v]) + "]"
    if isinstance(v, float):
        # floats have no place in the pump; their repr also differs between runtimes
        return "FLOAT(" + repr(v) + ")"
    return "?" + type(v).__name__


def detail(kind, code):
    if kind in (E.ALARM, E.ALARM_CLEAR, E.ACK):
        return A.name(code)
    if kind == E.REFUSAL:
        return REFUSAL_NAMES[code] if 0 <= code < len(REFUSAL_NAMES) else "refusal_%d" % code
    if kind == E.BOLUS:
        return KINDS[code] if 0 <= code < len(KINDS) else "kind_%d" % code
    return "-"


def fmt_event(tag, rec):
    seq, day, ms, wall_s, kind, code, a, b = rec
    return "%s,%d,%d,%d,%d,%s,%d,%d,%d,%s" % (tag, seq, day, ms, wall_s, E.kind_name(kind),
                                            code, a, b, detail(kind, code))


class Scenario:
    def __init__(self, profile):
        self.profile = profile
        # ticks start 90 s before the 2**30 wrap: the wrap comes during first fill
        self.hw = Hardware(profile, ticks_start=(1 << 30) - 90 * SEC)
        self.events = []
        self.facts = {}
        self.strokes = 0
        self.kinds = {}
        self.resets = 0
        self.next_wake = 0
        self.pump = self.boot(0)

    # --- plumbing ------------------------------------------------------------
    def sink(self, seq, day, ms, wall_s, kind, code, a, b):
        self.events.append((seq, day, ms, wall_s, kind, code, a, b))

    def boot(self, cause):
        p = Pump(self.profile, log_sink=self.sink, **self.hw.ports())
        p.start(cause)
        return p

    def drain(self):
        # print completed strokes as they come, so the trace never piles up in
        # a small heap (a long list fragments the MicroPython heap)
        tr = self.hw.motor.trace
        if tr:
            for t, kind in tr:
                k = KINDS[kind] if 0 <= kind < len(KINDS) else "kind_%d" % kind
                print("stroke,%d,%s" % (t, k))
                self.strokes += 1
                self.kinds[k] = self.kinds.get(k, 0) + 1
            tr.clear()

    def power_cut(self):
        """A reset in the middle of a storage write: new Pump, same hardware."""
        self.resets += 1
        self.drain()
        self.pump = self.boot(RESET_SOFT)
        self.next_wake = self.hw.clock.now

    def cycle(self):
        try:
            sleep = self.pump.cycle()
        except PowerCut:
            self.power_cut()
            return
        if not isinstance(sleep, int) or isinstance(sleep, bool) or sleep < 1:
            raise AssertionError("cycle() returned %r" % (sleep,))
        self.next_wake = self.hw.clock.now + sleep
        self.drain()

    def run_to(self, t):
        """Wake the pump whenever it asked to, up to virtual time t (ms)."""
        clock = self.hw.clock
        while self.next_wake <= t:
            clock.now = self.next_wake
            self.cycle()
        clock.now = t

    def command(self, name, fn, *args):
        """A command arrives at the current instant; then the pump decides at
        once, as the firmware main loop does after a link frame."""
        try:
            res = fn(*args)
            out = "ok:" + canon(res)
        except Refused as e:
            out = "refused:" + REFUSAL_NAMES[e.code]
        except (ProgramError, CommandError) as e:
            out = "error:" + e.field
        except PowerCut:
            self.power_cut()
            out = "reset"
        self.facts["scenario." + name] = out
        self.cycle()
        return out

    def at(self, t, name, fn, *args):
        self.run_to(t)
        return self.command(name, fn, *args)

    # --- the script ------------------------------------------------------------
    def run(self):
        hw = self.hw
        p = lambda: self.pump  # noqa: E731  (the pump object changes after a reset)

        # first fill and a continuous program (the wrap comes 90 s later)
        self.command("0_first_fill", p().refill, 20000000, CONC, 0)
        hw.motor.actual_nl = 20000000
        self.command("0_program_continuous", lambda: p().program_now(CONTINUOUS).readback())

        # day 1, 02:00: a flex day/night program, checked then applied (two steps)
        self.run_to(DAY + 2 * HOUR)
        self.command("1_check_too_high", lambda: p().check_program(TOO_HIGH).readback())
        checked = []

        def check_flex():
            checked.append(p().check_program(FLEX))
            return checked[0].readback()["daily_dose_ug"]
        self.command("1_check_flex", check_flex)
        self.command("1_apply_flex", lambda: p().apply_program(checked[0]))

        # day 1, 10:00: a patient bolus is granted; 30 min later one is refused (lockout)
        self.at(DAY + 10 * HOUR, "2_bolus_granted", lambda: p().patient_bolus())
        self.at(DAY + 10 * HOUR + 30 * MIN, "2_bolus_lockout", lambda: p().patient_bolus())
        # after the lockout has run out a second one is granted again
        self.at(DAY + 13 * HOUR, "2_bolus_after_lockout", lambda: p().patient_bolus())

        # day 2: suspend for two hours, then resume (the time is forfeited)
        self.at(2 * DAY + 3 * HOUR, "3_suspend", lambda: p().suspend())
        self.at(2 * DAY + 4 * HOUR, "3_bolus_suspended", lambda: p().patient_bolus())
        self.at(2 * DAY + 5 * HOUR, "3_resume", lambda: p().resume())

        # day 3: an occlusion: back-pressure above occlusion_high for two hours
        self.run_to(3 * DAY)
        hw.pressure.value = self.profile["occlusion_high"] + 100
        self.run_to(3 * DAY + 2 * HOUR)
        self.facts["scenario.4_state_occluded"] = p().state()
        hw.pressure.value = 20
        self.run_to(3 * DAY + 3 * HOUR)
        self.facts["scenario.4_state_after_occlusion"] = p().state()

        # day 4: a transient stall (inside the retries), then a permanent one
        self.run_to(4 * DAY)
        hw.motor.stall_next = self.profile.get("stall_retries", 2)
        self.run_to(4 * DAY + 1 * HOUR)
        self.facts["scenario.5_state_after_transient"] = p().state()
        self.run_to(4 * DAY + 6 * HOUR)
        hw.motor.jammed = True
        self.run_to(4 * DAY + 8 * HOUR)
        self.facts["scenario.5_state_jammed"] = p().state()
        hw.motor.jammed = False
        self.command("5_ack_stall", p().acknowledge, A.MOTOR_STALL)
        self.command("5_ack_again", p().acknowledge, A.MOTOR_STALL)

        # day 5: the wall clock is set back 3 h, later forward 5 h
        self.run_to(5 * DAY + 1 * HOUR)
        self.command("6_clock_back", lambda: p().set_clock(hw.clock.wall_s() - 3 * 3600))
        self.run_to(5 * DAY + 13 * HOUR)
        self.command("6_clock_forward", lambda: p().set_clock(hw.clock.wall_s() + 5 * 3600))

        # day 6: power is cut in the middle of a storage write; the pump restarts
        self.run_to(6 * DAY)
        hw.store.cut_at = hw.store.writes + 3
        while self.resets == 0 and hw.clock.now < 6 * DAY + HOUR:
            clock = hw.clock
            clock.now = self.next_wake
            self.cycle()
        self.facts["scenario.7_reset_at_ms"] = hw.clock.now if self.resets else -1
        self.facts["scenario.7_state_after_reset"] = p().state()

        # day 7: refill, reconciling against what is really left
        self.run_to(7 * DAY)
        residual = hw.motor.actual_nl if hw.motor.actual_nl > 0 else 0
        self.command("8_refill", p().refill, 20000000, CONC, residual)
        hw.motor.actual_nl = 20000000

        # and one more day of dosing
        self.run_to(8 * DAY)
        self.drain()


def main():
    if len(sys.argv) < 2:
        print("usage: scenario_script.py PROFILE.json")
        sys.exit(2)
    with open(sys.argv[1]) as f:
        profile = json.load(f)
    sc = Scenario(profile)
    sc.run()
    pump = sc.pump
    hw = sc.hw
    for rec in sc.events:
        print(fmt_event("event", rec))
    for rec in pump.log.records:
        print(fmt_event("ring", rec))
    out = {}
    st = pump.status()
    for k in st:
        out[k] = canon(st[k])
    for k in sc.facts:
        out[k] = canon(sc.facts[k])
    m = hw.motor
    out["hw.actual_nl"] = canon(m.actual_nl)
    out["hw.commands"] = canon(m.commands)
    out["hw.dry_strokes"] = canon(m.dry_strokes)
    out["hw.now_ms"] = canon(hw.clock.now)
    out["hw.sounds"] = canon(len(hw.annunciator.sounds))
    out["hw.store_writes"] = canon(hw.store.writes)
    out["scenario.events"] = canon(len(sc.events))
    out["scenario.resets"] = canon(sc.resets)
    out["scenario.strokes"] = canon(sc.strokes)
    out["scenario.strokes_by_kind"] = canon(sc.kinds)
    for k in sorted(out.keys()):
        print(k + "=" + out[k])


main()
