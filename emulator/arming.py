# Events placed by what the pump does, not by the clock: a scenario's armed
# events (emulator/preset.Event.armed()).
#
#   after = "bolus_start + 10m"   ten minutes after the next bolus the pump grants
#   during = "refill"             at the next refill command (with at_write / nth_write:
#                                 that many storage writes into it)
#   at_write = 5                  a battery drop at the 5th storage write from then
#
# An armed event waits from its `at` (0 by default). When its trigger comes,
# it is due trigger + delay later; the engine applies it then, between the
# pump's own steps (never in the middle of one). What never came is reported.
from pump import alarms as A
from pump import eventlog as E
from pump.controller import STOP_NAMES
from pump.schedule import BOLUS, PATIENT

_STOP = dict(STOP_NAMES)


def triggers_of(kind, code, a):
    """The trigger names a pump event-log record fires."""
    if kind == E.BOLUS:
        return ("bolus_start", "patient_bolus_start" if code == PATIENT else
                "clinician_bolus_start" if code == BOLUS else "bolus_start")
    if kind == E.PRIME:
        return ("bolus_start", "prime_start")
    if kind == E.ALARM:
        return ("alarm:" + A.name(code),)
    if kind == E.STOP and code:
        return (("stop:" if a else "stop_end:") + _STOP.get(code, str(code)),)
    if kind == E.RESET:
        return ("reset",)
    if kind == E.REFILL and code == 0:
        return ("refill",)
    if kind == E.PROGRAM:
        return ("program",)
    return ()


class Arming:
    def __init__(self):
        self.waiting = []       # armed events, their trigger not come yet
        self.due = []           # (t_ms, order, event) to apply, sorted
        self.writes = []        # (store write count, event): applied at that write
        self.fired = []         # (t_ms, event): what came, for the report
        self._order = 0

    def arm(self, ev):
        self.waiting.append(ev)

    def _fire(self, ev, t):
        self.waiting.remove(ev)
        self.fired.append((t, ev))
        self._order += 1
        self.due.append((t + ev.delay_ms, self._order, ev))
        self.due.sort(key=lambda d: (d[0], d[1]))

    def pump_event(self, now, kind, code, a):
        """A record the pump logged: the armed events it triggers become due."""
        if not self.waiting:
            return
        names = triggers_of(kind, code, a)
        for ev in list(self.waiting):
            if ev.trigger in names and ev.t_ms <= now:
                self._fire(ev, now)

    def command(self, now, name):
        """A clinic command is about to go to the pump: events `during` it.
        -> those due at once (the engine applies them before the command)."""
        out = []
        for ev in list(self.waiting):
            if ev.during == name and ev.trigger is None and ev.t_ms <= now:
                self.waiting.remove(ev)
                self.fired.append((now, ev))
                out.append(ev)
        return out

    def next_due(self):
        return self.due[0][0] if self.due else None

    def pop_due(self):
        return self.due.pop(0)[2]

    def at_write(self, count, ev):
        """Apply ev when the store has seen `count` writes."""
        self.writes.append((count, ev))

    def write_done(self, count):
        """-> the events whose write has come."""
        out = [ev for c, ev in self.writes if c <= count]
        if out:
            self.writes = [(c, ev) for c, ev in self.writes if c > count]
        return out
