# The firmware's event-log records in words: the rows of the emulator's
# events.csv and of `pumpctl log`.
#
# The firmware logs small integers (a kind, a code, two values); this module
# gives them names and a readable detail, using the firmware's own name tables.
from pump import alarms as A
from pump import eventlog as E
from pump.controller import REFUSAL_NAMES, STOP_NAMES
from pump.schedule import KINDS

RESET_CAUSES = ("power_on", "watchdog", "soft")
GOVERNOR_REASONS = {1: "daily_cap", 2: "hourly_cap", 3: "reservoir", 4: "stroke_volume", 5: "no_limits"}
# a stop's bit -> the state name it gives (controller.STOP_NAMES)
STOP_BITS = dict((bit, name) for bit, name in STOP_NAMES)
TIME_OF_DAY_WHAT = {1: "skipped", 2: "held", 3: "hold_over"}
STORAGE_WHAT = {1: "ledger", 2: "therapy", 3: "window", 4: "log", 5: "program", 6: "link", 7: "identity",
                8: "safe_mode"}


def _name(seq, i):
    return seq[i] if 0 <= i < len(seq) and seq[i] else str(i)


def describe(kind, code, a, b, wall_s=0):
    """-> (kind name, code name, detail) for one firmware event record (wall_s:
    its stamp, the pump's wall clock when it was logged)."""
    k = E.kind_name(kind)
    if kind in (E.ALARM, E.ALARM_CLEAR, E.ACK):
        return k, A.name(code), "value %d" % a
    if kind == E.FAULT:
        return k, A.name(code) if code else "internal", "count %d" % a
    if kind == E.REFUSAL:
        why = _name(REFUSAL_NAMES, code)
        what = _name(E.REQUEST_NAMES, a)
        if code == 0:
            return k, why, "%d strokes refused in the run" % b
        if a == E.REQ_STROKE:
            return k, why, "stroke refused: " + GOVERNOR_REASONS.get(b, str(b))
        if why == "dose_limit":
            detail = GOVERNOR_REASONS.get(b, str(b))
        elif why == "lockout":
            detail = "%d s of lockout left" % b
        elif why == "max_per_day":
            detail = "%d granted in the last 24 h" % b
        elif why == "not_enough_drug":
            detail = "%d nL usable" % b
        elif a == E.REQ_PROGRAM:
            detail = "daily dose asked %d ug" % b
        else:
            detail = str(b)
        return k, why, "%s refused: %s" % (what, detail)
    if kind == E.STOP:
        if code == 0:
            names = [n for bit, n in STOP_NAMES if a & bit]
            up = [A.name(c) for c in range(1, A.N_ALARMS) if b & (1 << c)]
            return k, "restart", "in force: %s; alarms: %s" % (" ".join(names) if names else "none",
                                                               " ".join(up) if up else "none")
        return k, STOP_BITS.get(code, str(code)), ("begun" if a else "ended") + (" (value %d)" % b if b else "")
    if kind == E.TIME_OF_DAY:
        what = TIME_OF_DAY_WHAT.get(code, str(code))
        if code == 1:
            return k, what, "%d s of the day skipped, %d nL basal not given" % (a, b)
        if code == 2:
            return k, what, "wall clock %d s behind the schedule: lowest rate until it catches up" % a
        return k, what, "the day's schedule runs on"
    if kind == E.BOLUS:
        return k, _name(KINDS, code), "%d nL over %d s" % (a, b)
    if kind == E.PRIME:
        return k, "prime", "%d nL over %d s" % (a, b)
    if kind == E.BRIDGE:
        return k, "end" if code else "start", ("%d nL at %d nL/day" % (a, b)) if not code else ""
    if kind == E.REFILL:
        if code:
            return k, "discrepancy", "residual %d nL, expected %d nL" % (a, b)
        return k, "ok", "%d nL at %d ug/mL" % (a, b)
    if kind == E.PROGRAM:
        return k, "in_force", "%d nL/day (%d ug/day)" % (a, b)
    if kind == E.RESET:
        return k, _name(RESET_CAUSES, code), "lifetime strokes %d, %d nL basal skipped since the last save" % (a, b)
    if kind == E.CLOCK:
        old = a * 86400 + b
        return k, "set", "wall %d s -> %d s (%+d s)" % (old, wall_s, wall_s - old)
    if kind == E.OVERRIDE:
        return k, "step_up", "daily %d -> %d ug (from the lowest dose in force in 24 h)" % (a, b)
    if kind == E.STORAGE:
        return k, STORAGE_WHAT.get(code, str(code)), "value %d" % a
    if kind == E.LINK:
        # a summary of refused frames (pump.linklog): code is a mask of their kinds
        from pump.link import CODE_BITS, ERROR_NAMES
        names = [ERROR_NAMES[c] for c, bit in sorted(CODE_BITS.items()) if code & bit]
        return k, "+".join(names) or "frames", "%d refused for authority, %d other bad frames" % (a, b)
    if kind == E.SILENCE:
        return k, "silence", "%d alarms" % a
    return k, str(code), "%d %d" % (a, b)
