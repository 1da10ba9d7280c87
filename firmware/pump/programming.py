# Programming and refilling: what changes the dose the pump owes.
#
# A program is checked against the pump's state (check_program: its read-back
# is what the clinician confirms), then put in force (apply_program); a refill
# reconciles the residual with what the pump expected and, when the drug
# changes, holds delivery until a program for it is confirmed.
#
# A mixin of Pump (controller.py): its methods use the state Pump.__init__ sets.
from pump.units import MIN_CONC_UG_ML, MAX_CONC_UG_ML
from pump.program import ProgramError, StepUpError, validate
from pump.reservoir import REFILL_DISCREPANCY as RECONCILE_BAD
from pump import alarms as A
from pump import eventlog as E
from pump.stops import NEEDS_PROGRAM, STORAGE, R_PROGRAM, R_STEP_UP, need_int


class Programming:
    def check_program(self, raw):
        """Validate a program against the pump's state: -> Program (its read-back
        is what the programmer shows before the clinician confirms)."""
        self._sync()
        self._prune()
        base = None
        pct = None
        for t in self.titration:
            if t[2] > 0 and (base is None or t[2] < base):
                base = t[2]
            if len(t) > 3 and (pct is None or t[3] < pct):
                pct = t[3]
        prev = None if self.safe_mode else self.program
        if self.safe_mode and self.ledger.dose_ug_min and (base is None or self.ledger.dose_ug_min < base):
            # the program record is lost, the ledger kept its daily dose: the next
            # program is held to the step-up limit from it
            base = self.ledger.dose_ug_min
        try:
            p = validate(raw, self.stroke_nl, prev, base, self.fastest_nl_day, pct)
            if self.reservoir.conc and p.conc != self.reservoir.conc:
                raise ProgramError("concentration_ug_ml", "the program is for %d ug/mL but the reservoir holds %d ug/mL"
                                   % (p.conc, self.reservoir.conc))
            if p.bridge and (self.program is None or self.program.conc == p.conc or self.safe_mode):
                raise ProgramError("bridge", "there is no change of concentration to bridge")
        except ProgramError as e:
            # a refused program is on the record: the dose asked, and whether the
            # step-up limit or a bad setting refused it
            asked = raw.get("daily_dose_ug", 0) if isinstance(raw, dict) else 0
            if isinstance(asked, bool) or not isinstance(asked, int) or not 0 <= asked <= 0x7FFFFFFF:
                asked = 0
            self._event(E.REFUSAL, R_STEP_UP if isinstance(e, StepUpError) else R_PROGRAM, E.REQ_PROGRAM, asked)
            raise e
        return p

    def apply_program(self, p):
        """Put a checked program in force (the second step of programming)."""
        self._sync()
        self._prune()
        prev = self.program
        bridging = self.bridge_from is not None and self.schedule.bridging()
        if self.win_conc == 0 and prev is not None:
            # (windows of older firmware: in the strength counted in force)
            self.win_conc = self.bridge_from[0] if bridging else prev.conc
        if p.bridge and prev is not None:
            dead = p.catheter_nl if p.catheter_nl >= 0 else self.catheter_nl
            dead += self.profile.get("pump_tubing_nl", 0)
            # the old caps stay in force while old-strength drug is pushed out,
            # and the windows count its strokes until the bridge ends
            self.bridge_from = [prev.conc, prev.daily_nl, prev.max_daily_nl, prev.max_hourly_nl]
            self.schedule.start_bridge(dead, prev.daily_nl, self._tod())
            self._event(E.BRIDGE, 0, dead, prev.daily_nl)
        elif not bridging:
            # before the program is saved: a reset must not bring back the
            # windows in the old strength's strokes (fewer, at a weaker new
            # strength) under the new program's caps. (A bridge under way goes
            # on: its old drug's strokes are counted, and capped, as before.)
            self._windows_in(p.conc)
        self.ledger.max_daily_nl = p.max_daily_nl
        self.ledger.max_hourly_nl = p.max_hourly_nl
        self.program = p
        self.safe_mode = False
        if p.catheter_nl >= 0:
            self.catheter_nl = p.catheter_nl
        self.schedule.set_program(p, self._tod())
        self._apply_limits()
        # a program for the drug in the reservoir is the clinician's answer to
        # program_required; a lost record is resolved (its alarm waits for an ack)
        self._clear(A.PROGRAM_REQUIRED)
        if self.stop & STORAGE and self.reservoir.conc:
            self.alarms.resolve(A.STORAGE_CORRUPT)
        ended = self.stop & NEEDS_PROGRAM
        if self.reservoir.conc:
            ended |= self.stop & STORAGE
        self.stop &= ~ended
        self.titration.append([self.time.day, self.time.ms, p.daily_ug_min, p.max_step_up_pct])
        self.ledger.safe_rate_nl_day = p.safe_rate_nl_day
        self.ledger.dose_ug_min = p.daily_ug_min
        self.ledger.bridge_left_nl = self.schedule.bridge_left_nl
        self.ledger.save(self.time.day, self.time.ms, both=True)
        self._save_therapy()
        self._event(E.PROGRAM, 0, p.daily_nl, p.daily_dose_ug())
        for bit in (NEEDS_PROGRAM, STORAGE):
            if ended & bit:
                self._event(E.STOP, bit, 0, 0)
        if p.override_used:
            # the record names the dose the limit was measured from (the lowest
            # in force in the last 24 h), which is what made the override needed
            self._event(E.OVERRIDE, 0, p.base_ug_min // 1440, p.daily_dose_ug())
        self._check_reservoir()

    def program_now(self, raw):
        """Check and apply in one step (scripts, tests; the link uses two steps)."""
        p = self.check_program(raw)
        self.apply_program(p)
        return p

    def refill(self, volume_nl, conc, residual_nl):
        """The reservoir was emptied (residual_nl withdrawn) and refilled."""
        self._sync()
        need_int(volume_nl, "volume_nl", self.stroke_nl, self.reservoir.capacity_nl)
        need_int(conc, "concentration_ug_ml", MIN_CONC_UG_ML, MAX_CONC_UG_ML)
        need_int(residual_nl, "residual_nl", 0, self.reservoir.capacity_nl)
        status = 0
        if self.reservoir.conc:
            status, expected, tol = self.reservoir.reconcile(residual_nl)
            if status == RECONCILE_BAD:
                self._event(E.REFILL, 1, residual_nl, expected)
                self._alarm(A.REFILL_DISCREPANCY, residual_nl - expected)
        old_conc = self.reservoir.conc
        self.reservoir.refill(volume_nl, conc)
        self._in_count = False    # a stroke in flight is in the residual measured
        self.ledger.fill_nl = volume_nl
        self.ledger.conc = conc
        self.ledger.strokes = 0
        self.ledger.uncertain = 0
        # the fill first (both copies): a restart that finds the new drug with
        # the old program in force stops the pump there (_check_drug)
        self.ledger.save(self.time.day, self.time.ms, both=True)
        if self.program is None or self.program.conc != conc:
            # the drug changed: nothing is given until a program for it is confirmed
            self._halt(NEEDS_PROGRAM, A.PROGRAM_REQUIRED if (old_conc or self.program is not None) else 0,
                       conc, save=True)
        else:
            self._save_therapy()
        self._event(E.REFILL, 0, volume_nl, conc)
        self._check_reservoir()
        return status

    def _prune(self):
        """Forget titration, patient-bolus and restart history older than 24 h."""
        keep = [g for g in self.pb_grants if self.time.since(g[0], g[1]) < 86400000]
        if len(keep) != len(self.pb_grants):
            self.pb_grants = keep
        keep = [g for g in self.restarts if self.time.since(g[0], g[1]) < 86400000]
        if len(keep) != len(self.restarts):
            self.restarts = keep
        # programs put in force within 24 h, and the one in force 24 h ago
        keep = [t for t in self.titration if self.time.since(t[0], t[1]) < 86400000]
        old = len(self.titration) - len(keep)
        if old > 0:
            self.titration = self.titration[old - 1:]
