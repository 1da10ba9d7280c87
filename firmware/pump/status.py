# Status: what the pump says about itself (the programmer's status, the
# simulator's facts, the one-word state).
#
# A mixin of Pump (controller.py): its methods use the state Pump.__init__ sets.
from pump import alarms as A
from pump.stops import STOP_NAMES


class Status:
    def state(self):
        for bit, name in STOP_NAMES:
            if self.stop & bit:
                return name
        if self.program is None:
            return "needs_program"
        if self.program.mode == "stopped":
            return "stopped"
        if self._refusing:
            return "dose_limited"     # the governor holds strokes back (dose_limit alarm)
        return "safe_mode" if self.safe_mode else "running"

    def facts(self):
        """A few numbers for a simulator's report (small: sent over a pipe)."""
        p = self.program
        dose = p.daily_dose_ug() if p is not None and p.mode != "stopped" else 0
        return {"state": self.state(), "reservoir_nl": self.reservoir.remaining_nl(), "daily_dose_ug": dose,
                "refused_strokes": self.refused_strokes, "forfeited_nl": self.schedule.forfeited_nl(),
                "resets": self.reset_count, "reset_nl": self.reset_nl,
                "uncertain_nl": self.ledger.uncertain * self.stroke_nl}

    def status(self):
        r = self.reservoir
        p = self.program
        return {
            "state": self.state(),
            "stops": [n for bit, n in STOP_NAMES if self.stop & bit],
            "program": p.readback() if p is not None else None,
            "safe_mode": self.safe_mode,
            "reservoir_nl": r.remaining_nl(), "fill_nl": r.fill_nl,
            "concentration_ug_ml": r.conc,
            "days_left": r.days_left(p.daily_nl) if p is not None else None,
            "battery_permille": self.battery.level,
            "alarms": [A.name(c) for c in self.alarms.codes()],
            # latched alarms whose cause is gone, waiting for a clinician's acknowledgement
            "alarms_resolved": [A.name(c) for c in self.alarms.codes() if self.alarms.resolved[c]],
            "strokes_counted": self.ledger.lifetime, "strokes_completed": self.strokes_done,
            # of the strokes counted since the fill, those counted at a restart without
            # knowing whether they ran: the reservoir may hold that much more than believed
            "reservoir_uncertain_nl": self.ledger.uncertain * self.stroke_nl,
            "resets": self.reset_count, "resets_24h": len(self.restarts),
            "reset_skipped_nl": self.reset_nl,
            "bridge_left_nl": self.schedule.bridge_left_nl,
            "schedule_time_s": self._tod(), "schedule_holding": self.tod.holding,
            "pump_time": [self.time.day, self.time.ms], "wall_s": self.clock.wall_s(),
        }
