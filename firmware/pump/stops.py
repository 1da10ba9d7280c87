# Why the pump is not delivering, why it refuses a request, how it was
# restarted: the names every room of the controller shares (the stop bits,
# the refusal codes, the two exceptions a command raises), in a module of
# their own so that the rooms (dosing, supervision, commands, status,
# recovery) import them and not one another.
from pump.compat import const
from pump import alarms as A

# Why the pump is not delivering (bit flags; any set bit stops delivery).
SUSPENDED = const(1)
OCCLUDED = const(2)
STALLED = const(4)
EMPTY = const(8)
EOS = const(16)
NEEDS_PROGRAM = const(32)
STORAGE = const(64)
FAULT = const(128)
STOP_NAMES = ((EOS, "end_of_service"), (FAULT, "fault"), (STORAGE, "storage_fault"),
              (STALLED, "motor_stalled"), (NEEDS_PROGRAM, "needs_program"),
              (EMPTY, "out_of_drug"), (OCCLUDED, "occluded"), (SUSPENDED, "suspended"))
PERSISTED_STOPS = SUSPENDED | STALLED | EOS | FAULT | NEEDS_PROGRAM | STORAGE | OCCLUDED
# The alarm each stop holds active while it is set (no silent stop, I9). A
# suspension is the clinician's own act and has none; needs_program has one
# once the pump has had a drug or a program (a new pump owes nothing).
STOP_ALARMS = ((EOS, A.BATTERY_EOS), (FAULT, A.INTERNAL_FAULT), (STORAGE, A.STORAGE_CORRUPT),
               (STALLED, A.MOTOR_STALL), (NEEDS_PROGRAM, A.PROGRAM_REQUIRED),
               (EMPTY, A.RESERVOIR_EMPTY), (OCCLUDED, A.OCCLUSION))
# Stops an acknowledgement ends: only the clinician can say the motor or the
# fault is dealt with. Every other stop ends when its cause is gone.
ACK_ENDS = ((A.MOTOR_STALL, STALLED), (A.INTERNAL_FAULT, FAULT))

# Reasons a command is refused (also the code of the refusal event).
R_NO_PROGRAM = const(1)
R_STOPPED = const(2)
R_LOCKOUT = const(3)
R_MAX_PER_DAY = const(4)
R_LIMIT = const(5)
R_BUSY = const(6)
R_BRIDGE = const(7)
R_SAFE_MODE = const(8)
R_NOT_ALLOWED = const(9)
R_RESERVOIR = const(10)
R_PROGRAM = const(11)
R_STEP_UP = const(12)
# 0 is no refusal: the record that ends a run of refused strokes
REFUSAL_NAMES = ("refusals_ended", "no_program", "pump_stopped", "lockout", "max_per_day", "dose_limit",
                 "bolus_in_progress", "bridge_in_progress", "safe_mode", "not_allowed",
                 "not_enough_drug", "invalid_program", "step_up_limit")

# The wall clock may be set from 2000-01-01 to 2099-12-31 23:59:59 (seconds
# since 2000, as MicroPython counts). Past 2034 that is 2**30 or more, a heap
# object on a 32-bit board: the pump reads it only to stamp records and for
# status, never per stroke (the schedule reads the clock's time of day).
WALL_MAX_S = 3155759999
RESETS_ALARM = const(3)        # this many restarts within 24 h raise frequent_resets

RESET_POWER_ON = const(0)
RESET_WATCHDOG = const(1)
RESET_SOFT = const(2)


class CommandError(ValueError):
    """A command with a bad argument: nothing was changed."""

    def __init__(self, field, reason):
        super().__init__(field + ": " + reason)
        self.field = field
        self.reason = reason


class Refused(Exception):
    """A well-formed request the pump will not carry out now (logged)."""

    def __init__(self, code, detail=0):
        super().__init__(REFUSAL_NAMES[code])
        self.code = code
        self.detail = detail      # the number behind it: seconds of lockout left, which cap, ...


def need_int(v, field, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int):
        raise CommandError(field, "must be a whole number")
    if v < lo or v > hi:
        raise CommandError(field, "%d is outside %d..%d" % (v, lo, hi))
    return v
