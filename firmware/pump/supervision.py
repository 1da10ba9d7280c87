# Supervision: what the pump watches between strokes, and how it stops.
#
# The motor's report on the last stroke (a stall: retried, then a stop), the
# catheter pressure (occlusion, leak), the drug in the reservoir against the
# program, the reservoir's level; each cause of a stop as a bit of Pump.stop
# with the alarm it holds active (no silent stop), saved before it is logged.
#
# A mixin of Pump (controller.py): its methods use the state Pump.__init__ sets.
from pump.catheter import OCCLUDED as C_OCCL, CLEARED as C_CLEAR, LEAK as C_LEAK, LEAK_CLEARED as C_LEAK_CLEAR
from pump.motor import RETRY
from pump import alarms as A
from pump import eventlog as E
from pump.stops import OCCLUDED, STALLED, EMPTY, NEEDS_PROGRAM, FAULT, PERSISTED_STOPS


class Supervision:
    def _alarm(self, code, detail=0):
        if self.alarms.raise_(code):
            if A.LATCHED[code]:
                self._save_therapy()    # a latched alarm survives a reset
            self._event(E.ALARM, code, detail)

    def _clear(self, code, detail=0):
        if self.alarms.clear(code):
            self._event(E.ALARM_CLEAR, code, detail)

    def _halt(self, bit, code=0, detail=0, save=False):
        """Stop delivery for one cause, with its alarm (code 0: none). The stop
        and a latched alarm are saved (save: the therapy record in any case)
        before the records are logged: a reset in between leaves a stop whose
        records are logged again at the restart, never a logged stop the pump
        has forgotten."""
        new = not self.stop & bit
        self.stop |= bit
        self.schedule.forfeit()
        raised = code != 0 and self.alarms.raise_(code)
        if save or (new and bit & PERSISTED_STOPS) or (raised and A.LATCHED[code]):
            self._save_therapy()
        if new:
            self._event(E.STOP, bit, 1, detail)
        if raised:
            self._event(E.ALARM, code, detail)

    def _unhalt(self, bit, detail=0):
        """One cause of a stop is gone (its latched alarm stays, resolved, until
        a clinician acknowledges it)."""
        if not self.stop & bit:
            return
        self.stop &= ~bit
        if bit & PERSISTED_STOPS:
            self._save_therapy()
        self._event(E.STOP, bit, 0, detail)

    def _fault(self, e):
        """Stop, and alarm first: logging and saving need the store, which may
        be what failed. A fault that persists is logged once, not every wake-up."""
        first = not self.stop & FAULT
        self.stop |= FAULT
        self.schedule.forfeit()
        self.alarms.raise_(A.INTERNAL_FAULT)
        if not first:
            return
        try:
            self._event(E.FAULT, 0, 0)
            self._event(E.STOP, FAULT, 1, 0)
            self._event(E.ALARM, A.INTERNAL_FAULT, 0)
        except Exception:
            pass
        self._save_therapy()

    def _check_drug(self):
        """The reservoir must hold the drug the program is for. A mismatch found
        at any time (a restart after a save cut off in a refill included) stops
        the pump, alarmed, until a clinician confirms a program for that drug."""
        p = self.program
        if (p is not None and self.reservoir.conc and p.conc != self.reservoir.conc
                and not self.stop & NEEDS_PROGRAM):
            self._halt(NEEDS_PROGRAM, A.PROGRAM_REQUIRED, self.reservoir.conc)

    def _check_reservoir(self):
        r = self.reservoir
        if r.conc == 0:
            # never filled: a program in force with no drug is an empty reservoir
            if not self.stop & EMPTY:
                self._halt(EMPTY, A.RESERVOIR_EMPTY if self.program is not None else 0)
            elif self.program is not None:
                self._alarm(A.RESERVOIR_EMPTY)
            return
        # (every wake-up: the level read once; nothing is called when nothing changed)
        rem = r.remaining_nl()
        if rem - r.stroke_nl < r.empty_nl:       # r.can_stroke() is false
            if not self.stop & EMPTY:
                self._halt(EMPTY, A.RESERVOIR_EMPTY, rem)
        elif self.stop & EMPTY:
            self._unhalt(EMPTY)
            self._clear(A.RESERVOIR_EMPTY)
        low = self.program.low_reservoir_nl if self.program is not None else 0
        if rem <= low:
            self._alarm(A.LOW_RESERVOIR, rem)
        elif self.alarms.active[A.LOW_RESERVOIR]:
            self._clear(A.LOW_RESERVOIR)

    def _feedback(self):
        """Read the motor's report on the last stroke. -> True if it is to be retried."""
        kind = self.supervisor.pending_kind
        act = self.supervisor.feedback(self.motor.result())
        if act is None:
            self.strokes_done += 1
            self._on_pressure(self.pressure.read())
            return False
        # the motor did not move: that stroke left nothing in the patient,
        # and the ledger says so before anything else happens
        if self._in_count:   # not if a refill has measured the reservoir since
            self.reservoir.strokes -= 1
            self.ledger.uncount(self.time.day, self.time.ms)
        self.governor.unrecord()
        if act == RETRY:
            self.schedule.give_back(kind)
            return True
        self._halt(STALLED, A.MOTOR_STALL, self.supervisor.stalls)
        self._event(E.FAULT, A.MOTOR_STALL, self.supervisor.stalls)
        return False

    def _on_pressure(self, p):
        t = self.catheter.sample(p)
        # The stop is saved before the alarm or its clear is logged: a reset
        # between them then leaves a stop without its log record (logged again
        # at the restart), never a logged alarm the pump has forgotten.
        if t == C_OCCL:
            self._halt(OCCLUDED, A.OCCLUSION, p)   # saved: a reset must not pump into the block
        elif t == C_CLEAR:
            self.alarms.resolve(A.OCCLUSION)       # latched: a clinician looks at why
            self._unhalt(OCCLUDED, p)
        elif t == C_LEAK:
            self._alarm(A.CATHETER_LEAK, p)
        elif t == C_LEAK_CLEAR:
            self._clear(A.CATHETER_LEAK, p)
