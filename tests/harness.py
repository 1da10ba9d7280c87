"""Drive the pump controller through a virtual world, keeping the oracle informed.

The harness owns time: it runs pump.cycle() whenever the pump asked to wake,
executes commands at a wake-up instant (then lets the pump decide at once, as
the firmware main loop does after a link frame), cuts power in the middle of
storage writes, and reboots the pump on the same hardware.
"""
from fakeports import Hardware, PowerCut
from oracle import Oracle, DAY
from pump.controller import Pump, RESET_POWER_ON, RESET_SOFT, OCCLUDED
from pump.program import ProgramError
from pump.controller import Refused, CommandError


class Run:
    def __init__(self, profile, ticks_start=0, wall_start_s=852076800, pump_factory=Pump):
        self.profile = profile
        self.stroke = profile["stroke_nl"]
        self.hw = Hardware(profile, ticks_start=ticks_start, wall_start_s=wall_start_s)
        self.oracle = Oracle(self.stroke, wall_start_s)
        self.events = []           # every event-log record, as (t_ms, kind, code, a, b)
        self.pump_factory = pump_factory
        self.resets = 0
        self.resets_since_fill = 0
        self._stalls_seen = 0
        self.next_wake = 0
        self.prog = None           # the program dict in force (as accepted)
        self._seen = None          # the pump's (state, alarms) the oracle last saw
        self.pump = self._boot(RESET_POWER_ON)
        self._saw()

    @property
    def now(self):
        return self.hw.clock.now

    def _sink(self, seq, day, ms, wall_s, kind, code, a, b):
        self.events.append((self.now, kind, code, a, b))

    def _boot(self, cause):
        p = self.pump_factory(self.profile, log_sink=self._sink, **self.hw.ports())
        p.start(cause)
        return p

    def _guard(self, fn, *args):
        """Run fn; a power cut reboots the pump (the command is lost)."""
        try:
            return fn(*args)
        except PowerCut:
            self.reboot()
            return None

    def _saw(self):
        """Tell the oracle what the pump says of itself (state, active alarms)
        whenever that changes: I9 holds it to it."""
        p = self.pump
        seen = (p.state(), tuple(sorted(p.status()["alarms"])))
        if seen != self._seen:
            self._seen = seen
            self.oracle.saw(self.now, seen[0], seen[1])

    def reboot(self, cause=RESET_SOFT):
        self.resets += 1
        self.resets_since_fill += 1
        # a reset loses what was owed but not yet a stroke: not liveness-relevant
        self.oracle.disturb(self.now + 1)
        self.oracle.saw(self.now, "reset", ())
        self._seen = None
        self.pump = self._guard(self._boot, cause) or self.pump
        self.next_wake = self.now
        self._saw()
        if self.pump.stop & OCCLUDED:
            # restored in an occlusion stop, the pump reads the pressure clear
            # again (a reading a minute) before it resumes
            p = self.profile
            self.oracle.disturb(self.now + p["recheck_ms"] * (p.get("occlusion_samples", 3) + 1) + 1)

    def _cycle(self):
        sleep = self._guard(self.pump.cycle)
        if sleep is None:
            return
        assert isinstance(sleep, int) and sleep >= 1, sleep
        self.next_wake = self.now + sleep
        self._saw()

    def advance(self, ms):
        end = self.now + ms
        while self.next_wake <= end:
            self.hw.clock.now = self.next_wake
            self._cycle()
        self.hw.clock.now = end

    def command(self, fn, *args, then=None):
        """Run a command now, then let the pump decide at once. -> (result, error).
        then(result): what the world does when the command succeeds, before the
        pump's next decision (the drug is in the reservoir before it pumps)."""
        try:
            res = fn(*args)
            err = None
        except PowerCut:
            self.reboot()
            res, err = None, "reset"
        except (ProgramError, Refused, CommandError) as e:
            res, err = None, e
        if err is None and then is not None:
            then(res)
        self._cycle()
        return res, err

    # --- clinic and patient actions, with the oracle told what happened -----
    def program(self, prog):
        res, err = self.command(self.pump.program_now, prog)
        if err is None:
            self.prog = prog
            self.oracle.program(self.now, prog)
        return err

    def refill(self, volume_nl, conc, residual_nl=None):
        if residual_nl is None:
            residual_nl = max(self.hw.motor.actual_nl, 0)
        def filled(_):
            self.hw.motor.actual_nl = volume_nl
            self.resets_since_fill = 0
            self.oracle.drug(self.now, conc)
        res, err = self.command(self.pump.refill, volume_nl, conc, residual_nl, then=filled)
        return err

    def refill_retried(self, volume_nl, conc, tries=4):
        """The clinician empties and refills the reservoir (the drug is in it
        whatever the pump hears), then tells the pump, again after each reset
        that cuts the command short, as a programmer that got no answer does.
        -> the error of the last try, or None."""
        residual = max(self.hw.motor.actual_nl, 0)
        self.hw.motor.actual_nl = volume_nl
        self.resets_since_fill = 0
        self.oracle.drug(self.now, conc)
        err = "reset"
        for _ in range(tries):
            try:
                self.pump.refill(volume_nl, conc, residual)
                err = None
                break
            except PowerCut:
                self.reboot()
            except (ProgramError, Refused, CommandError) as e:
                err = e
                break
        self._cycle()
        return err

    def patient_bolus(self):
        res, err = self.command(self.pump.patient_bolus)
        if err is None and res:
            pb = self.prog["patient_bolus"]
            vol = pb["dose_ug"] * 1_000_000 // self.prog["concentration_ug_ml"]
            dur = pb["duration_min"] * 60_000
            self.oracle.grant(self.now, vol, dur)
            self.oracle.disturb(self.now + dur + DAY)
        return res, err

    def clinician_bolus(self, dose_ug, duration_min):
        res, err = self.command(self.pump.clinician_bolus, dose_ug, duration_min)
        if err is None and res:
            vol = dose_ug * 1_000_000 // self.prog["concentration_ug_ml"]
            self.oracle.grant(self.now, vol, duration_min * 60_000)
            self.oracle.disturb(self.now + duration_min * 60_000 + DAY)
        return res, err

    def set_wall(self, wall_s):
        res, err = self.command(self.pump.set_clock, wall_s)
        if err is None:
            self.oracle.set_wall(self.now, wall_s)
        return err

    def check(self):
        """Check the oracle's invariants and the reservoir's; -> list of violations."""
        # A transient stall takes effect at the next stroke, whenever that comes
        # (after a suspension, say): the retries delay delivery from then on, so
        # liveness is not owed until 10 min after it, wherever it fell.
        st = self.hw.motor.stall_times
        while self._stalls_seen < len(st):
            self.oracle.disturb(st[self._stalls_seen] + 600_000)
            self._stalls_seen += 1
        self.oracle.check(self.hw.motor.trace, self.now)
        out = list(self.oracle.violations)
        m = self.hw.motor
        if m.dry_strokes:
            out.append("I5: %d strokes commanded with the reservoir really empty" % m.dry_strokes)
        believed = self.pump.reservoir.remaining_nl()
        if self.pump.reservoir.conc and believed > max(m.actual_nl, 0):
            out.append("I5: pump believes %d nL left, only %d nL are there" % (believed, m.actual_nl))
        uncertain = self.pump.status()["reservoir_uncertain_nl"]
        if self.pump.reservoir.conc and m.actual_nl - believed > uncertain:
            # every stroke the pump counts without knowing it ran, it says so
            out.append("I4/I5: pump believes %d nL left but %d nL are there; it reports only %d nL as uncertain"
                       % (believed, m.actual_nl, uncertain))
        return out

    def alarms_raised(self, code, since=0):
        from pump.eventlog import ALARM
        return [e[0] for e in self.events if e[1] == ALARM and e[2] == code and e[0] >= since]
