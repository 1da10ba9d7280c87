# Before a run: every program and command of a scenario checked with the
# pump's own rules, so a value the pump would refuse is a bad scenario (exit
# status 2, with the file, the key path and the pump's reason), not a run that
# quietly does something else.
#
# Programs go through the firmware's validate() (the checks a program gets on
# arrival, without the pump's state: the step-up limit and the reservoir's
# strength are results of the run, not errors of the file). Commands are given
# to a scratch pump on the emulator's models: its argument checks raise
# CommandError for a value out of range; anything else it says (a refusal for
# want of a program, say) is about state, and passes.
from pump.controller import Pump, CommandError, Refused
from pump.program import ProgramError, validate, fastest_bolus_nl_day

from emulator.preset import ScenarioError

UL = 1000
ML = 1000000


def _nl(ml):
    return int(round(ml * ML))


def check_program(path, where, raw, profile):
    try:
        validate(raw, profile["stroke_nl"],
                 fastest_nl_day=fastest_bolus_nl_day(profile["stroke_nl"], profile.get("stroke_ms", 200)))
    except ProgramError as e:
        raise ScenarioError(path, where + e.field, e.reason)


def _scratch_pump(profile):
    """A pump on fresh models, for argument checks only."""
    from emulator.battery import BatteryModel
    from emulator.catheter import CatheterModel
    from emulator.clock import ClockModel
    from emulator.motor import MotorModel
    from emulator.reservoir import ReservoirModel
    from emulator.store import StoreModel
    clock = ClockModel(0)
    battery = BatteryModel(clock)
    reservoir = ReservoirModel(profile["reservoir_nl"])
    catheter = CatheterModel(clock, profile.get("catheter_nl", 0), 0)

    class Quiet:
        def sound(self, pattern):
            pass
    p = Pump(profile, clock=clock, motor=MotorModel(clock, reservoir, catheter, battery, profile["stroke_nl"]),
             pressure=catheter, battery=battery, store=StoreModel(), annunciator=Quiet())
    p.start()
    return p


# a command's arguments as the pump takes them: (method, args from the event)
COMMANDS = {
    "bolus": ("clinician_bolus", lambda a: (a["dose_ug"], a["duration_min"])),
    "prime": ("prime", lambda a: (a["duration_min"],) + ((a["volume_ul"] * UL,) if "volume_ul" in a else ())),
    "refill": ("refill", lambda a: (_nl(a["volume_ml"]), a["concentration_ug_ml"],
                                    _nl(a["residual_ml"]) if "residual_ml" in a else 0)),
}
# the event key a firmware argument comes from, for the message
ARG_KEYS = {"refill": {"volume_nl": "volume_ml", "residual_nl": "residual_ml"},
            "prime": {"volume_nl": "volume_ul"}}


def check_command(path, where, do, args, profile):
    if do not in COMMANDS:
        return
    name, conv = COMMANDS[do]
    pump = _scratch_pump(profile)
    try:
        getattr(pump, name)(*conv(args))
    except CommandError as e:
        raise ScenarioError(path, where + ARG_KEYS.get(do, {}).get(e.field, e.field), "the pump refuses it: " + e.reason)
    except (Refused, ProgramError):
        pass           # about the pump's state, not the value: a result of the run


def check_scenario(sc, profile):
    """Every program and command of a loaded scenario; raises ScenarioError."""
    if "program" in sc.start:
        check_program(sc.path, "start.program.", sc.start["program"], profile)
    seen = set()
    for e in sc.events:
        if e.index in seen and e.index >= 0:
            continue
        seen.add(e.index)
        where = "events[%d]." % e.index
        if e.do == "program":
            check_program(sc.path, where + "program.", e.args["program"], profile)
        else:
            check_command(sc.path, where, e.do, e.args, profile)
