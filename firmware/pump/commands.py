# Commands: boluses, priming, suspend and resume, alarms, the clock.
#
# Each command first brings pump time up to now (_sync), checks its arguments
# (CommandError: nothing changed) and the pump's state (Refused: logged with
# why), then starts what it asks; the dosing cycle gives it stroke by stroke.
#
# A mixin of Pump (controller.py): its methods use the state Pump.__init__ sets.
from pump.units import DAY_S, ug_to_nl_floor
from pump.program import MAX_BOLUS_UG, bolus_too_fast
from pump.schedule import BOLUS, PATIENT, PRIME
from pump import alarms as A
from pump import eventlog as E
from pump.stops import (SUSPENDED, STALLED, STOP_ALARMS, ACK_ENDS, WALL_MAX_S, R_NO_PROGRAM, R_STOPPED,
                        R_LOCKOUT, R_MAX_PER_DAY, R_LIMIT, R_BUSY, R_BRIDGE, R_SAFE_MODE, R_NOT_ALLOWED,
                        R_RESERVOIR, CommandError, Refused, need_int)


class Commands:
    def _grant_check(self, dose_nl, allow_safe=False):
        if self.program is None:
            raise Refused(R_NO_PROGRAM)
        if self.safe_mode and not allow_safe:
            raise Refused(R_SAFE_MODE)
        if not self._running():
            raise Refused(R_STOPPED)
        if self.schedule.bridging():
            raise Refused(R_BRIDGE)
        usable = self.reservoir.remaining_nl() - self.reservoir.empty_nl
        if dose_nl > usable:
            raise Refused(R_RESERVOIR, usable if usable > 0 else 0)
        # room for the dose and what is owed now; basal given during the bolus
        # replaces basal that leaves the window meanwhile (the program was
        # validated to fit its busiest hour plus one bolus)
        need = dose_nl + self.schedule.owed_total() + 2 * self.stroke_nl
        if self.governor.headroom_nl(self.time.day, self.time.ms) < need:
            raise Refused(R_LIMIT, self.governor.tighter())

    def _refuse(self, code, what, detail=0):
        """Log a refused request (why, what was asked, the number behind it) and raise."""
        self._event(E.REFUSAL, code, what, detail)
        raise Refused(code, detail)

    def patient_bolus(self):
        """The patient asks for the programmed bolus. -> dose in nL, or Refused."""
        self._sync()   # lockout and the 24 h count are measured to now
        p = self.program
        try:
            if self.safe_mode:
                raise Refused(R_SAFE_MODE)
            if p is None or p.pb_dose_nl == 0:
                raise Refused(R_NOT_ALLOWED if p is not None else R_NO_PROGRAM)
            self._prune()
            b = self.schedule.bolus(PATIENT)
            if b.active:
                raise Refused(R_BUSY)
            if self.pb_grants:
                last = self.pb_grants[-1]
                since = self.time.since(last[0], last[1])
                if since < p.pb_lockout_ms:
                    raise Refused(R_LOCKOUT, (p.pb_lockout_ms - since + 999) // 1000)
            if len(self.pb_grants) >= p.pb_max_per_day:
                raise Refused(R_MAX_PER_DAY, len(self.pb_grants))
            self._grant_check(p.pb_dose_nl)
        except Refused as r:
            self._refuse(r.code, PATIENT, r.detail)
        self._sync()
        b.start(p.pb_dose_nl, p.pb_duration_ms)
        self.pb_grants.append([self.time.day, self.time.ms])
        self._save_therapy()
        self._event(E.BOLUS, PATIENT, p.pb_dose_nl, p.pb_duration_ms // 1000)
        return p.pb_dose_nl

    def _check_speed(self, vol_nl, duration_min):
        least = bolus_too_fast(vol_nl, duration_min * 60000, self.fastest_nl_day)
        if least is not None:
            raise CommandError("duration_min", "%d nL in %d min is faster than the pump gives a bolus; at least %d min"
                               % (vol_nl, duration_min, least))

    def _start_bolus(self, kind, nl, duration_min):
        """A clinician's bolus or a prime: nl over duration_min, if the pump can
        give it that fast, none of that kind runs and the caps and the reservoir
        leave room (else refused, on the record)."""
        self._check_speed(nl, duration_min)
        b = self.schedule.bolus(kind)
        try:
            if b.active:
                raise Refused(R_BUSY)
            self._grant_check(nl)
        except Refused as r:
            self._refuse(r.code, kind, r.detail)
        self._sync()
        b.start(nl, duration_min * 60000)

    def clinician_bolus(self, dose_ug, duration_min):
        """A single bolus over a duration, then back to the basal program."""
        need_int(dose_ug, "dose_ug", 1, MAX_BOLUS_UG)
        need_int(duration_min, "duration_min", 1, 1440)
        self._sync()
        if self.program is None:
            self._refuse(R_NO_PROGRAM, BOLUS)
        nl = ug_to_nl_floor(dose_ug, self.program.conc)
        if nl < self.stroke_nl:
            raise CommandError("dose_ug", "less than one stroke at this concentration")
        self._start_bolus(BOLUS, nl, duration_min)
        self._event(E.BOLUS, BOLUS, nl, duration_min * 60)
        return nl

    def prime(self, duration_min, volume_nl=None):
        """Priming bolus: fill the catheter's dead volume (length x volume per cm,
        plus the pump's own tubing). It counts against the caps like any stroke."""
        need_int(duration_min, "duration_min", 1, 240)
        self._sync()
        dead = self.catheter_nl + self.profile.get("pump_tubing_nl", 0)
        if volume_nl is None:
            volume_nl = dead
        need_int(volume_nl, "volume_nl", self.stroke_nl, max(dead, self.stroke_nl))
        self._start_bolus(PRIME, volume_nl, duration_min)
        self._event(E.PRIME, 0, volume_nl, duration_min * 60)
        return volume_nl

    def suspend(self):
        self._sync()
        if not self.stop & SUSPENDED:
            self.schedule.cancel_boluses()
            self._halt(SUSPENDED)
            self._event(E.SUSPEND)

    def resume(self):
        self._sync()
        if self.stop & SUSPENDED:
            self._unhalt(SUSPENDED)
            self._event(E.RESUME)

    def silence(self):
        # time until now is spent on the countdowns first: it is not part of the silence
        self._sync()
        self.alarms.annunciate(self._alarm_dt, False)
        self._alarm_dt = 0
        n = self.alarms.silence()
        self._event(E.SILENCE, 0, n)
        return n

    def acknowledge(self, code):
        """A clinician acknowledges a latched alarm. It clears once its cause is
        gone; for a motor stall or an internal fault the acknowledgement is what
        ends the stop (the clinician says it is dealt with). -> True."""
        need_int(code, "code", 1, A.N_ALARMS - 1)
        self._sync()
        nm = A.name(code)
        if not self.alarms.active[code]:
            raise CommandError("alarm", "%s is not active" % nm)
        if not A.LATCHED[code]:
            raise CommandError("alarm", "%s clears by itself when its cause is gone" % nm)
        ends = 0
        for c, bit in ACK_ENDS:
            if c == code:
                ends = bit
        for bit, c in STOP_ALARMS:
            if c == code and self.stop & bit and bit != ends:
                raise CommandError("alarm", "%s: its cause is still there (%s)" % (nm, self.state()))
        if code == A.DOSE_LIMIT and self._refusing:
            raise CommandError("alarm", "dose_limit: the limits still hold strokes back")
        self._event(E.ACK, code)
        self.alarms.clear(code)
        if ends:
            self.stop &= ~ends
            if ends == STALLED:
                self.supervisor.reset()
        self._save_therapy()
        self._event(E.ALARM_CLEAR, code, 0)
        if ends:
            self._event(E.STOP, ends, 0, 0)
        return True

    def alarm_test(self):
        self._sync()
        self.alarms.test()
        self._event(E.ALARM_TEST)

    def set_clock(self, wall_s):
        """Set the wall clock (clinician), 2000-01-01 .. 2099-12-31. Limits run on
        pump time and the day's schedule never runs back (timeofday.py), so this
        moves flex steps and log stamps only: no catch-up, no step given twice."""
        self._sync()
        need_int(wall_s, "wall_s", 0, WALL_MAX_S)
        old = self.clock.wall_s()
        # the schedule's place in the day is saved first: after a reset in the
        # middle, the pump measures the clock change from where it was
        self.ledger.save(self.time.day, self.time.ms)
        self.clock.set_wall(wall_s)
        # the record's own stamp is the new time; the old one goes as its day
        # and second of the day (seconds since 2000 do not fit a field past 2068)
        self._event(E.CLOCK, 0, old // DAY_S, old % DAY_S)

    def sync(self):
        """Bring pump time up to now (a programmer request measures time on it)."""
        self._sync()

    def log_event(self, kind, code=0, a=0, b=0):
        """Record an event from outside the controller (the programmer link),
        stamped with pump time brought up to now."""
        self._sync()
        self._event(kind, code, a, b)
