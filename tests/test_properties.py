"""Hypothesis stateful tests: the world does anything it may; I1-I9 hold after every step.

Rules are what the world may do to the pump (programming, refills, bolus
requests, suspend/resume, occlusion, stalls, battery drain, clock changes,
flex programs with the clock set back or forward at a step's boundary, dates
up to 2099, resets in the middle of storage writes, a power cut at any write of
a refill or a program change, a new drug with no program for it, bit flips).
Invariants are checked by an independent oracle built from the raw stroke
trace and what the pump says of itself (tests/oracle.py): I1 on every interval
and on every 24 real hours, the caps in drug mass, liveness, and no silent
stop (a pump that says it runs keeps up; a stopped one shows the stop's alarm).
"""
import math

from hypothesis import assume, strategies as st, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conftest import sim_profile
from harness import Run
from oracle import DAY
from pump import alarms as A
from pump import eventlog as E
from pump.controller import WALL_MAX_S

PROFILE = sim_profile()
STROKE = PROFILE["stroke_nl"]
MIN = 60_000
HOUR = 60 * MIN


def make_program(conc, daily_ug=None, steps=None, pb=None, extra_daily=0, extra_hourly=0, **more):
    """A program dict whose caps leave the headroom validation asks for."""
    if steps:
        peak = max(s["daily_rate_ug"] for s in steps)
        # the busiest 24 h of a flex program is its daily total; bound it by the peak
        day_total = peak
        prog = {"mode": "flex", "steps": steps}
    else:
        peak = day_total = daily_ug
        prog = {"mode": "continuous", "daily_dose_ug": daily_ug}
    stroke_ug = math.ceil(2 * STROKE * conc / 1_000_000) + 1
    hourly = math.ceil(peak * 1.02 / 24) + stroke_ug + 1 + extra_hourly
    if pb:
        hourly += pb["dose_ug"]
    daily = max(math.ceil(day_total * 1.01) + stroke_ug + 1 + extra_daily, hourly)
    prog.update(concentration_ug_ml=conc, max_daily_ug=daily, max_hourly_ug=hourly)
    if pb:
        prog["patient_bolus"] = pb
    prog.update(more)
    return prog


concs = st.sampled_from([1000, 2000])
pbs = st.one_of(st.none(), st.fixed_dictionaries({
    "dose_ug": st.integers(5, 40), "duration_min": st.integers(2, 30),
    "lockout_min": st.integers(30, 240), "max_per_day": st.integers(1, 6)}))


@st.composite
def flex_steps(draw):
    n = draw(st.integers(2, 5))
    starts = sorted(draw(st.sets(st.integers(0, 1439), min_size=n, max_size=n)))
    return [{"start_min": s, "daily_rate_ug": draw(st.integers(50, 900))} for s in starts]


class PumpWorld(RuleBasedStateMachine):
    pump_factory = None   # a Pump class; tests/test_mutants.py puts broken ones here

    def __init__(self):
        super().__init__()
        self.run = None

    @initialize(ticks=st.integers(0, 2**30 - 1), conc=concs, daily=st.integers(50, 800), pb=pbs,
                wall=st.integers(700_000_000, 900_000_000))
    def implant(self, ticks, conc, daily, pb, wall):
        kw = {} if self.pump_factory is None else {"pump_factory": self.pump_factory}
        self.run = Run(PROFILE, ticks_start=ticks, wall_start_s=wall, **kw)
        self.conc = conc
        # stops the world caused whose end the test controls: liveness is not owed meanwhile
        self.causes = set()
        self.refilled_since_loss = False
        self.steps = 0
        assert self.run.refill(20_000_000, conc) is None
        err = self.run.program(make_program(conc, daily, pb=pb))
        assert err is None, err
        self.run.advance(MIN)

    def _cause(self, name, on):
        if on:
            self.causes.add(name)
        else:
            self.causes.discard(name)

    # ---------------------------------------------------------------- time
    @rule(minutes=st.one_of(st.integers(1, 90), st.integers(90, 36 * 60)))
    def time_passes(self, minutes):
        self.run.advance(minutes * MIN)

    @rule(days=st.integers(1, 3))
    def days_pass(self, days):
        self.run.advance(days * DAY)

    # ---------------------------------------------------------------- clinic
    @rule(daily=st.integers(50, 900), pb=pbs, override=st.booleans(), extra=st.integers(0, 200))
    def reprogram_continuous(self, daily, pb, override, extra):
        self._reprogram(make_program(self.conc, daily, pb=pb, extra_daily=extra, override_step_up=override))

    @rule(steps=flex_steps(), pb=pbs, override=st.booleans())
    def reprogram_flex(self, steps, pb, override):
        self._reprogram(make_program(self.conc, steps=steps, pb=pb, override_step_up=override))

    def _reprogram(self, prog):
        before = self.run.prog
        err = self.run.program(prog)
        if err is None:
            self._after_program(prog, before)

    def _after_program(self, prog, before):
        """A program was accepted (before: the one it replaced)."""
        if before is not None and (prog["max_daily_ug"] < before["max_daily_ug"]
                                   or prog["max_hourly_ug"] < before["max_hourly_ug"]
                                   or prog["concentration_ug_ml"] != before["concentration_ug_ml"]):
            # lower caps than the windows already hold (or caps for a stronger
            # drug, in whose terms the windows are rescaled) may hold strokes
            # for a day: safety over liveness, so liveness is not owed for that day
            self.run.oracle.disturb(self.run.now + DAY)
        self._cause("corrupt", False)   # a clinician reprogram ends the safe state
        self._cause("new_drug", False)  # and a program for the new drug ends its stop
        if self.refilled_since_loss:
            # with the ledger lost the pump knows nothing of its reservoir: it
            # stays stopped until a refill (measured) and then a new program
            self._cause("ledger_lost", False)

    @rule(volume_ml=st.integers(1, 20))
    def refill(self, volume_ml):
        if self.run.refill(volume_ml * 1_000_000, self.conc) is None and "ledger_lost" in self.causes:
            self.refilled_since_loss = True

    @rule(k=st.integers(1, 8), clean=st.booleans(), new_drug=st.booleans(), volume_ml=st.integers(5, 20))
    def refill_cut_at_a_write(self, k, clean, new_drug, volume_ml):
        """Power is cut at the k-th storage write of a refill, maybe one with a
        new strength and no program for it: the drug is in the reservoir
        whatever the pump heard; the clinician repeats the refill after the
        reset. A new drug stops the pump, alarmed, until a program for it."""
        r = self.run
        conc = (2000 if self.conc == 1000 else 1000) if new_drug else self.conc
        r.hw.store.cut_at = r.hw.store.writes + k
        r.hw.store.cut_clean = clean
        err = r.refill_retried(volume_ml * 1_000_000, conc)
        r.hw.store.cut_at = 0
        if err is not None:
            return
        if "ledger_lost" in self.causes:
            self.refilled_since_loss = True
        if conc != self.conc:
            self.conc = conc
            self._cause("new_drug", True)
            r.oracle.hold(r.now, True)
            r.advance(HOUR)
            assert r.pump.state() in ("needs_program", "storage_fault", "fault", "end_of_service"), (
                "a new drug with no program for it, and the pump is " + r.pump.state())

    @rule(k=st.integers(1, 8), clean=st.booleans(), daily=st.integers(50, 900))
    def program_cut_at_a_write(self, k, clean, daily):
        """Power is cut at the k-th storage write of a program change; the
        clinician sends it again after the reset, as after any lost answer."""
        r = self.run
        before = r.prog
        prog = make_program(self.conc, daily)
        r.hw.store.cut_at = r.hw.store.writes + k
        r.hw.store.cut_clean = clean
        err = None
        for _ in range(4):
            err = r.program(prog)
            if err != "reset":
                break
        r.hw.store.cut_at = 0
        if err is None:
            self._after_program(prog, before)

    @rule(dose=st.integers(5, 60), minutes=st.integers(1, 120))
    def clinician_bolus(self, dose, minutes):
        self.run.clinician_bolus(dose, minutes)

    @rule()
    def patient_bolus(self):
        self.run.patient_bolus()

    @rule(minutes=st.integers(1, 600))
    def suspend_for(self, minutes):
        """The common case: a clinician suspends, and resumes later."""
        r = self.run
        r.command(r.pump.suspend)
        r.oracle.hold(r.now, True)
        r.advance(minutes * MIN)
        r.command(r.pump.resume)
        r.oracle.hold(r.now, bool(self.causes))

    @precondition(lambda self: self.steps >= 30)
    @rule()
    def suspend(self):
        """Suspended and left so (late in a run, so that most runs mostly pump)."""
        self.run.command(self.run.pump.suspend)
        self._cause("suspended", True)

    @rule()
    def resume(self):
        self.run.command(self.run.pump.resume)
        self._cause("suspended", False)

    @rule(delta_min=st.sampled_from([-600, -60, 60, 600, 24 * 60, -24 * 60]))
    def clock_change(self, delta_min):
        self.run.set_wall(self.run.hw.clock.wall_s() + delta_min * 60)

    @precondition(lambda self: self.run is not None and self.run.prog is not None
                  and self.run.prog["mode"] == "flex")
    @rule(which=st.integers(0, 9), end=st.booleans(), delta_min=st.sampled_from([-60, 60, -23 * 60, 23 * 60]),
          off_s=st.integers(-90, 90), glitch=st.booleans())
    def clock_change_at_a_flex_step(self, which, end, delta_min, off_s, glitch):
        """The clock set back or forward (by a clinician, or DST: a glitch the
        pump is not told of) just as a flex step begins or ends: a step given
        must not be given again within 24 real hours, a step skipped is not made up."""
        r = self.run
        steps = r.prog["steps"]
        i = which % len(steps)
        edge = steps[(i + 1) % len(steps)]["start_min"] if end else steps[i]["start_min"]
        tod = r.hw.clock.wall_s() % 86400
        wait = (edge * 60 + off_s - tod) % 86400
        r.advance(wait * 1000)
        if glitch:
            # nobody tells the pump: it reads the new time at its next wake-up,
            # and logs what that does to the day (the oracle moves the clock then)
            t0 = r.now
            c = r.hw.clock
            c.set_wall(c.wall_s() + delta_min * 60)
            r.advance(PROFILE["max_sleep_ms"] + 1)
            seen = [e[0] for e in r.events if e[0] >= t0 and e[1] == E.TIME_OF_DAY]
            assert seen, "the wall clock moved %d min and the pump did not notice within its longest sleep" % delta_min
            r.oracle.set_wall(seen[0], c.wall_base + seen[0] // 1000 + c.wall_adjust)
        else:
            wall = r.hw.clock.wall_s() + delta_min * 60
            err = r.set_wall(wall)
            # any time up to the end of 2099 is set; past it the pump says why
            assert (err is None) == (0 <= wall <= WALL_MAX_S), err

    @rule(day=st.one_of(st.integers(0, 36524), st.sampled_from([12427, 12428, 12429, 36524])),
          tod_s=st.integers(0, 86399))
    def set_the_date(self, day, tod_s):
        """Any date from 2000-01-01 to 2099-12-31 is set and kept (2034-01-09, where
        seconds since 2000 pass 2**30, and the last day of 2099 most of all);
        the pump doses on across it."""
        r = self.run
        wall = day * 86400 + tod_s
        err = r.set_wall(wall)
        assert err is None, "clock set to day %d of 2000-2099 refused: %s" % (day, err)
        r.advance(HOUR)
        assert abs(r.pump.status()["wall_s"] - (wall + 3600)) <= 1

    # ---------------------------------------------------------------- faults
    @rule(minutes=st.integers(1, 240))
    def catheter_kink(self, minutes):
        r = self.run
        t0 = r.now
        n0 = len(r.hw.motor.trace)
        resets0 = r.resets
        r.hw.pressure.value = 400
        self._cause("occluded", True)
        r.oracle.hold(r.now, True)
        r.advance(minutes * MIN)
        # I7: the alarm comes within occlusion_samples strokes, and no stroke after
        # it; a reset before the alarm starts the count of high readings again
        after = [t for t, _ in r.hw.motor.trace[n0:]]
        alarms = r.alarms_raised(A.OCCLUSION, t0)
        allowed = PROFILE["occlusion_samples"] * (1 + r.resets - resets0)
        if alarms:
            assert len([t for t in after if t < alarms[0]]) <= allowed, after
            assert not [t for t in after if t > alarms[0]], "stroke completed after the occlusion alarm"
        else:
            # the reading after the last of these strokes comes at the next wake-up
            assert len(after) <= allowed, "occlusion not alarmed after %d strokes" % len(after)
        r.hw.pressure.value = 20
        r.advance(PROFILE["recheck_ms"] * (PROFILE["occlusion_samples"] + 1))
        self._cause("occluded", False)

    @rule(n=st.integers(1, 2))
    def transient_stall(self, n):
        self.run.hw.motor.stall_next = n
        self.run.oracle.disturb(self.run.now + 10 * MIN)

    @rule()
    def motor_jams(self):
        r = self.run
        cmd0 = r.hw.motor.commands
        t0 = r.now
        r.hw.motor.jammed = True
        self._cause("jammed", True)
        r.oracle.hold(r.now, True)
        r.advance(6 * 3600_000)
        if r.alarms_raised(A.MOTOR_STALL, t0):
            assert r.hw.motor.commands - cmd0 <= PROFILE["stall_retries"] + 1
            assert r.pump.state() != "running"
        elif r.pump.state() == "running" and r.hw.motor.commands > cmd0:
            raise AssertionError("motor jammed, %d strokes commanded, no stall alarm" % (r.hw.motor.commands - cmd0))
        r.hw.motor.jammed = False
        r.command(r.pump.acknowledge, A.MOTOR_STALL)
        self._cause("jammed", False)

    @rule(level=st.sampled_from([500, 140]))
    def battery_drains(self, level):
        self._battery(level)

    @precondition(lambda self: self.steps >= 30)
    @rule()
    def battery_ends(self):
        """End of service is for good: late in a run, so that most runs mostly pump."""
        self._battery(20)

    def _battery(self, level):
        r = self.run
        r.hw.battery.value = level
        if level <= PROFILE["battery_eos_permille"]:
            self._cause("eos", True)
            r.oracle.hold(r.now, True)
            r.advance(PROFILE["max_sleep_ms"] + 1)
            assert r.alarms_raised(A.BATTERY_EOS), "EOS not alarmed"
            n = len(r.hw.motor.trace)
            r.advance(DAY)
            assert len(r.hw.motor.trace) == n, "strokes after end of service"
        elif level <= PROFILE["battery_eri_permille"]:
            r.advance(PROFILE["max_sleep_ms"] + 1)
            assert r.alarms_raised(A.BATTERY_ERI) or "eos" in self.causes

    @rule(k=st.integers(1, 12), clean=st.booleans())
    def reset_mid_write(self, k, clean):
        """Power is cut during the k-th storage write from now: the record is
        left half written, or (clean) not written at all."""
        r = self.run
        r.hw.store.cut_at = r.hw.store.writes + k
        r.hw.store.cut_clean = clean
        r.advance(2 * 3600_000)
        r.hw.store.cut_at = 0

    @rule(ml=st.integers(1, 3))
    def runs_dry(self, ml):
        """A small refill that runs out: the empty alarm comes, and the pump
        never commands a stroke the reservoir cannot supply (I5, I7)."""
        r = self.run
        if self.run.refill(ml * 1_000_000, self.conc) is not None:
            return
        if "ledger_lost" in self.causes:
            self.refilled_since_loss = True
        t0 = r.now
        r.oracle.hold(r.now, True)      # running dry is not a liveness failure
        rate = max(r.oracle.max_basal, 1)
        r.advance(min(ml * 1_000_000 * DAY // rate + DAY, 10 * DAY))
        if r.hw.motor.actual_nl < STROKE:
            assert r.pump.state() != "running", "the reservoir is dry and the pump says running"
        if r.pump.state() == "out_of_drug":
            assert r.alarms_raised(A.RESERVOIR_EMPTY, t0), "out of drug with no empty alarm"
        if r.refill(20_000_000, self.conc) is None and "ledger_lost" in self.causes:
            self.refilled_since_loss = True
        r.oracle.hold(r.now, bool(self.causes))

    @rule()
    def watchdog_reset(self):
        from pump.controller import RESET_WATCHDOG
        self.run.reboot(RESET_WATCHDOG)
        self.run.advance(1000)
        assert self.run.pump.alarms.active[A.WATCHDOG_RESET]

    @rule(which=st.sampled_from(["ledger", "therapy", "window"]), bit=st.integers(0, 4000),
          both=st.sampled_from([False, False, False, True]))
    def bit_flip(self, which, bit, both):
        r = self.run
        present = [k for k in (which + ".a", which + ".b") if k in r.hw.store.data]
        assume(present)
        for key in (present if both else present[:1]):
            r.hw.store.flip(key, bit)
        # every copy unreadable (a second flip of the same bit mends a copy)
        from pump.record import unframe, torn
        lost = all(unframe(r.hw.store.data[k]) is None for k in present)
        if lost and which == "window":
            # the dose history is lost: the governor counts its windows full until
            # they roll out, a day later; no reprogramming shortens that
            # (plus a slot, and the pump time a reset may forget: HEARTBEAT_MS)
            r.oracle.disturb(r.now + DAY + 30 * MIN)
        elif lost and which == "ledger":
            self._cause("ledger_lost", True)
            self.refilled_since_loss = False
            r.oracle.hold(r.now, True)
            # the strokes the lost ledger counted since the last window snapshot
            # are put in the windows as a full hour at the restart: after a refill
            # and a new program the caps may still hold delivery back while that
            # hour is in the windows (a day for the 24 h one)
            r.oracle.disturb(r.now + DAY + 30 * MIN)
        elif lost or which == "therapy":
            # a lost or possibly stale therapy record puts the pump in its safe
            # state until a clinician reprograms: liveness is not owed meanwhile
            self._cause("corrupt", True)
            r.oracle.hold(r.now, True)
        r.reboot()
        r.advance(1000)
        # a stale copy may bring back a stop a clinician had cleared (a stall
        # acknowledged, a suspension resumed): the pump keeps it, alarmed, and
        # the clinician clears it again
        if "jammed" not in self.causes and r.pump.alarms.active[A.MOTOR_STALL]:
            r.command(r.pump.acknowledge, A.MOTOR_STALL)
        if "suspended" not in self.causes and "suspended" in r.pump.status()["stops"]:
            r.command(r.pump.resume)
        if lost and not all(torn(r.hw.store.data[k]) for k in present):
            # (a record whose every copy looks cut short was never written: a
            # flipped length field looks so too, and is taken as a new record)
            assert r.pump.alarms.active[A.STORAGE_CORRUPT], "every copy bad and no storage alarm"

    # ---------------------------------------------------------------- invariants
    @invariant()
    def safety_invariants_hold(self):
        r = self.run
        if r is None:
            return
        self.steps += 1
        low = r.hw.motor.actual_nl < 8 * STROKE   # running dry is not a liveness failure
        r.oracle.hold(r.now, bool(self.causes) or low or r.pump.battery.state != 0 and "eos" in self.causes)
        v = r.check()
        assert not v, "\n".join(v[:5])


PumpWorld.TestCase.settings = settings(parent=settings.get_profile(settings._current_profile))
TestPumpWorld = PumpWorld.TestCase
