"""Kill the mutants: the property tests must fail on a wrong pump.

A test suite that passes on a broken pump proves nothing. Each mutant below is
the real firmware with one safety mechanism broken the way a plausible bug
would break it; the stateful machine of tests/test_properties.py (same rules,
same oracle) runs against it and must report the invariant that mutant breaks.
The correct pump passes the same machine in test_properties.py.

The search is derandomized (the same examples on every run) and does not
shrink, so each kill is fast and the same on every machine.
"""
import pytest
from hypothesis import HealthCheck, Phase, settings

from pump.controller import Pump, CommandError
from pump.governor import Governor
from pump.ledger import Ledger
from pump.schedule import Schedule
from pump.timeofday import TimeOfDay

import test_properties


# ------------------------------------------------------------------ the mutants
class LooseCapGovernor(Governor):
    """Off by one stroke in the cap check (`> cap + 1` for `> cap`)."""

    def check(self, day, ms, volume_nl, remaining_nl, empty_nl):
        self.cap_day += 1
        self.cap_hour += 1
        try:
            return Governor.check(self, day, ms, volume_nl, remaining_nl, empty_nl)
        finally:
            self.cap_day -= 1
            self.cap_hour -= 1


class NoHourlyCapGovernor(Governor):
    """Forgets the 1 h window: only the 24 h cap is enforced."""

    def set_limits(self, max_daily_nl, max_hourly_nl):
        Governor.set_limits(self, max_daily_nl, max_daily_nl)


def with_governor(cls):
    class MutantPump(Pump):
        def __init__(self, profile, *args, **kw):
            Pump.__init__(self, profile, *args, **kw)
            self.governor = cls(self.stroke_nl)
    MutantPump.__name__ = "PumpWith" + cls.__name__
    return MutantPump


class CommandFirstPump(Pump):
    """The ledger is written after the motor is commanded, not before."""

    def __init__(self, profile, clock, motor, *args, **kw):
        Pump.__init__(self, profile, clock, motor, *args, **kw)
        ledger = LateLedger(self.store)
        self.ledger = ledger

        class Motor:
            def stroke(_, kind):
                motor.stroke(kind)
                ledger.flush()

            def result(_):
                return motor.result()
        self.motor = Motor()


class LateLedger(Ledger):
    def save(self, day, ms, both=False, stroke=False):
        if stroke:
            self._late = (day, ms)     # written only once the motor has moved
            self.in_flight = 1
            return
        Ledger.save(self, day, ms, both)

    def flush(self):
        day, ms = self._late
        Ledger.save(self, day, ms, stroke=True)


class CatchUpSchedule(Schedule):
    """Saves up what was owed while stopped instead of forfeiting it (I3)."""

    def forfeit(self):
        pass

    def _forfeit(self, nl):
        self.owed[0] += nl


class CatchUpPump(Pump):
    def __init__(self, profile, *args, **kw):
        Pump.__init__(self, profile, *args, **kw)
        self.schedule = CatchUpSchedule(self.stroke_nl)


class NoOcclusionStopPump(Pump):
    """Raises the occlusion alarm but keeps pumping into the blocked catheter."""

    def _running(self):
        saved = self.stop
        self.stop &= ~2          # OCCLUDED
        try:
            return Pump._running(self)
        finally:
            self.stop = saved


class NeverPumps(Pump):
    """Does everything right except deliver: liveness must catch it."""

    def _stroke(self):
        self.schedule.refuse()


class DryPump(Pump):
    """Takes the reservoir's empty threshold one stroke too low."""

    def __init__(self, profile, *args, **kw):
        Pump.__init__(self, profile, *args, **kw)
        self.reservoir.empty_nl -= self.stroke_nl


class AlarmsNotLatchedPump(Pump):
    """Keeps its alarms in memory only: a restart comes up with its stops
    restored from storage but silent (the alarm not latched across a reset)."""

    def _start(self, reset_cause):
        Pump._start(self, reset_cause)
        for code in self.alarms.codes():
            self.alarms.clear(code)


class WallClockDay(TimeOfDay):
    """Keys the day's schedule on the wall clock alone: set back, a step runs again."""

    def follow(self, dt_ms, tod_s):
        self.place(tod_s)
        return 0


class WallClockDayPump(Pump):
    def __init__(self, profile, *args, **kw):
        Pump.__init__(self, profile, *args, **kw)
        self.tod = WallClockDay()


class Clock2034Pump(Pump):
    """Takes the wall clock for seconds since 2000 below 2**30 (to 2034-01-09)."""

    def set_clock(self, wall_s):
        if wall_s > 0x3FFFFFFF:
            raise CommandError("wall_s", "%d is outside 0..%d" % (wall_s, 0x3FFFFFFF))
        Pump.set_clock(self, wall_s)


MUTANTS = [
    # (mutant, what the oracle or a rule must say)
    (with_governor(LooseCapGovernor), "I2 cap"),
    (with_governor(NoHourlyCapGovernor), "I2 cap"),
    (CommandFirstPump, ("I4/I5", "I5:")),
    (CatchUpPump, "I1 over-delivery"),
    (NoOcclusionStopPump, "stroke completed after the occlusion alarm"),
    (NeverPumps, ("I6 liveness", "I9 silent stop")),
    (DryPump, ("I5", "the reservoir is dry")),
    (AlarmsNotLatchedPump, ("I9 silent stop", "no storage alarm", "no occlusion alarm")),
    (WallClockDayPump, "I1"),
    (Clock2034Pump, "clock set to day"),
]

KILL = settings(max_examples=300, stateful_step_count=50, deadline=None, derandomize=True,
                database=None, phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck), print_blob=False)


def hunt(pump_class):
    class World(test_properties.PumpWorld):
        pump_factory = pump_class
    World.TestCase.settings = KILL
    World.TestCase("runTest").runTest()


@pytest.mark.parametrize("mutant,symptom", MUTANTS, ids=[m.__name__ for m, _ in MUTANTS])
def test_the_properties_kill_the_mutant(mutant, symptom):
    with pytest.raises(BaseException) as caught:
        hunt(mutant)
    text = str(caught.value)
    for sub in getattr(caught.value, "exceptions", ()):
        text += "\n" + str(sub)
    symptoms = symptom if isinstance(symptom, tuple) else (symptom,)
    assert any(s in text for s in symptoms), (
        "the mutant was caught, but not for the expected reason:\n" + text[:2000])
