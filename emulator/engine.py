# The emulator's engine: the unchanged firmware core (firmware/pump) on
# simulated hardware, with a virtual clock that jumps from event to event.
#
# Three things can happen next: the pump's own wake-up (it says how long it
# sleeps), a scenario event (clinic, patient or fault), or a sample of the
# world for the plots and the patient model. The engine jumps to the earliest,
# never sleeps, and hands commands to the pump the way the firmware main loop
# does after a programmer frame: run the command, then let the pump decide at
# once.
#
# The engine and the models it builds run under CPython and under MicroPython
# alike (the student lab runs them in the browser, in the MicroPython
# WebAssembly build): a World can be given its board profile and a scenario
# made from plain data (emulator/preset.py), so it needs no file access.
import json

try:
    import os
    os.path.dirname
except (ImportError, AttributeError):   # MicroPython: no os.path (profiles come as dicts)
    os = None

from pump.controller import Pump, Refused, CommandError, RESET_POWER_ON, RESET_WATCHDOG, RESET_SOFT, REFUSAL_NAMES
from pump.program import ProgramError
from pump.schedule import KINDS

from emulator.arming import Arming
from emulator.battery import BatteryModel
from emulator.catheter import CatheterModel
from emulator.clock import ClockModel
from logwords.events import describe
from emulator.motor import MotorModel
from emulator.patient import PatientModel, HOUR_MS
from emulator.reservoir import ReservoirModel
from emulator.sensorlog import SensorLog
from emulator.store import StoreModel, PowerCut

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) if os is not None else None
BOARDS = os.path.join(ROOT, "boards") if os is not None else None
SERIES_EVERY = 6          # reservoir and battery: every 6th patient sample


def load_profile(board):
    path = os.path.join(BOARDS, board + ".json")
    with open(path) as f:
        return json.load(f)


class Annunciator:
    def __init__(self, clock):
        self.clock = clock
        self.sounds = []

    def sound(self, pattern):
        self.sounds.append((self.clock.now, pattern))


class World:
    """One pump and everything around it, for one scenario run."""

    def __init__(self, scenario, seed=None, runtime="cpython", profile=None):
        """scenario: a checked Scenario (emulator.scenario.load, or
        emulator.preset.from_plain); profile: the board profile as a dict
        (default: boards/<scenario's board>.json)."""
        sc = scenario
        self.runtime = runtime
        self.sc = sc
        self.seed = sc.seed if seed is None else seed
        self.profile = load_profile(sc.board) if profile is None else profile
        ph = sc.physics
        self.clock = ClockModel(sc.start_wall_s, **ph["clock"])
        self.store = StoreModel()
        self.battery = BatteryModel(self.clock, **ph["battery"])
        self.patient = PatientModel(**sc.patient)
        self.to_csf = []             # (t_ms, ug) reaching the spinal fluid, per stroke
        cath = dict(ph["catheter"])
        dead = cath.pop("dead_volume_nl", None)
        if dead is None:
            dead = self.profile.get("catheter_nl", 0)
        primed = sc.start.get("primed", True)
        conc0 = sc.start.get("actual_concentration_ug_ml", sc.start.get("concentration_ug_ml", 0))
        self.catheter = CatheterModel(self.clock, dead, conc0 if primed else 0, sink=self._at_tip, **cath)
        self.reservoir = ReservoirModel(self.profile["reservoir_nl"])
        self.motor = MotorModel(self.clock, self.reservoir, self.catheter, self.battery,
                                self.profile["stroke_nl"], seed=self.seed, **ph["motor"])
        self.annunciator = Annunciator(self.clock)
        self.sensors = SensorLog(self)   # (before any pump is given the ports)
        self.events = []             # (t_ms, source, kind, code, detail)
        self.programs = []           # (t_ms, program dict as accepted, readback)
        self.samples = []            # (t_ms, level ng/mL, steady-state ng/mL or None)
        self.series = []             # (t_ms, believed nL, real nL, battery permille, state)
        self.lumbar = []             # (t_ms, dose ug) screening boluses
        self.raw_events = []         # (t_ms, kind, code, a, b) as the firmware logged them
        self.walls = [(0, sc.start_wall_s)]   # (t_ms, pump wall_s at t_ms) after each change
        self.resets = 0
        self.arming = Arming()       # events placed by what the pump does (after, during, at_write)
        self.collisions = []         # (t_ms, event index, text): faults that could not be applied
        self.commands = []           # (t_ms, name, args, error or None): what the clinic asked, and the answer
        self.took_effect = set()     # indices in commands: cut by a reset, yet the restarted pump holds them
        self.restart_times = []      # t_ms of each restart (not the first start): the world's own record
        self.store.on_write = self._store_wrote
        self.carried_refused = 0
        self.carried_forfeited = 0
        self.next_wake = 0
        self.pump = self._boot(RESET_POWER_ON)

    # --- wiring -------------------------------------------------------------
    def _at_tip(self, t, nl, ug, where):
        self.patient.dose(t, ug, where)

    def _sink(self, seq, day, ms, wall_s, kind, code, a, b):
        k, c, d = describe(kind, code, a, b, wall_s)
        self.events.append((self.clock.now, "pump", k, c, d))
        self.raw_events.append((self.clock.now, kind, code, a, b))
        self.arming.pump_event(self.clock.now, kind, code, a)

    def _store_wrote(self, count):
        """A storage write landed: an event placed at this write happens now."""
        if not self.arming.writes:          # (the common case: nothing waits for a write)
            return
        from emulator.actions import apply
        for ev in self.arming.write_done(count):
            apply(self, ev, placed=True, write_reached=True)

    def log(self, source, kind, code, detail=""):
        self.events.append((self.clock.now, source, kind, code, detail))

    def _boot(self, cause):
        if self.runtime in ("micropython", "wasm32"):
            if self.runtime == "micropython":
                from emulator.sitl import SitlPump
            else:
                from emulator.wasm32 import Wasm32Pump as SitlPump
            old = getattr(self, "pump", None)
            if old is not None:
                old.close()
            p = SitlPump(self, os.path.join(BOARDS, self.sc.board + ".json"))
        else:
            p = Pump(self.profile, clock=self.clock, motor=self.motor, pressure=self.sensors.pressure,
                     battery=self.sensors.battery, store=self.store, annunciator=self.annunciator,
                     log_sink=self._sink)
        p.start(cause)
        return p

    def close(self):
        """End the pump's process, if it has one."""
        if self.runtime in ("micropython", "wasm32"):
            self.pump.close()

    def reboot(self, cause=RESET_SOFT):
        self.resets += 1
        self.restart_times.append(self.clock.now)
        self.sensors.restart()
        # the pump's own counters start again after a reset: keep what it had
        f = self.pump.facts()
        self.carried_refused += f["refused_strokes"]
        self.carried_forfeited += f["forfeited_nl"]
        while True:
            try:
                self.pump = self._boot(cause)
                break
            except PowerCut:   # a cut armed for the restart's own writes
                self.log("world", "fault", "power_cut", "reset in the middle of a storage write during the restart")
                self.resets += 1
                self.restart_times.append(self.clock.now)
                self.sensors.restart()
                cause = RESET_POWER_ON
        self.next_wake = self.clock.now

    def cycle(self):
        try:
            sleep = self.pump.cycle()
        except PowerCut:
            self.log("world", "fault", "power_cut", "reset in the middle of a storage write")
            self.reboot(RESET_POWER_ON)
            return
        self.next_wake = self.clock.now + sleep

    def command(self, name, fn, *args):
        """A clinic or patient command; the pump decides at once after it.
        -> (result, error text or None)."""
        from emulator.actions import apply
        for ev in self.arming.command(self.clock.now, name.split(" ")[0]):
            apply(self, ev, placed=True)        # an event `during` this command: before it goes
        self.battery.telemetry()
        try:
            res, err = fn(*args), None
        except PowerCut:
            self.log("world", "fault", "power_cut", "reset in the middle of a storage write during " + name)
            self.reboot(RESET_POWER_ON)
            res, err = None, "the pump reset during the command"
        except ProgramError as e:
            res, err = None, "%s: %s" % (e.field, e.reason)
        except CommandError as e:
            res, err = None, str(e)
        except Refused as e:
            res, err = None, "refused: " + (REFUSAL_NAMES[e.code] if 0 <= e.code < len(REFUSAL_NAMES) else str(e.code))
        self.log("clinic", "command", name, "ok" if err is None else err)
        self.commands.append((self.clock.now, name, args, err))
        self.cycle()
        return res, err

    # --- running ------------------------------------------------------------
    def run(self, progress=None):
        """Run the whole scenario, start to end."""
        self.begin()
        self.advance_to(self.sc.duration_ms, progress)
        self.finish()
        if progress is not None:
            progress(self.sc.duration_ms)

    def begin(self):
        from emulator.actions import apply_start
        self._ei = 0
        self._next_sample = 0
        self._n_samples = 0
        apply_start(self)

    def next_time(self):
        """The virtual time of the next thing that will happen."""
        events = self.sc.events
        t_ev = events[self._ei].t_ms if self._ei < len(events) else None
        t = min(self.next_wake, self._next_sample)
        t_due = self.arming.next_due()
        if t_due is not None and t_due < t:
            t = t_due
        return t if t_ev is None or t < t_ev else t_ev

    def advance_to(self, end, progress=None):
        """Run everything due up to and including `end`; the clock ends at `end`."""
        from emulator.actions import apply
        sample_ms = self.sc.patient_sample_ms
        events = self.sc.events
        n_events = len(events)
        clock = self.clock
        last_report = clock.now
        arming = self.arming
        while True:
            t_ev = events[self._ei].t_ms if self._ei < n_events else end + 1
            # A run is mostly the pump's wake-ups: those before anything else
            # (an event, a sample, the end, an event the pump's own doings place)
            # follow one another here without the whole choice below. A tie
            # goes to the other thing, as below.
            t_other = t_ev if t_ev < self._next_sample else self._next_sample
            if t_other > end:
                t_other = end + 1
            wake = self.next_wake
            while wake < t_other and (not arming.due or wake < arming.due[0][0]):
                if wake > clock.now:
                    clock.now = wake
                self.cycle()
                if progress is not None and wake - last_report >= 3600000:
                    progress(wake)
                    last_report = wake
                wake = self.next_wake
            t = min(wake, t_ev, self._next_sample)
            t_due = arming.next_due()
            if t_due is not None and t_due < t:
                t = t_due
            if t > end:
                break
            if t > clock.now:
                clock.now = t
            if t == self._next_sample:
                self._sample(self._n_samples % SERIES_EVERY == 0)
                self._n_samples += 1
                self._next_sample += sample_ms
            elif t == t_ev:
                ev = events[self._ei]
                self._ei += 1
                if ev.trigger is not None or ev.during is not None:
                    arming.arm(ev)     # from now it waits for what places it
                else:
                    apply(self, ev)
            elif t == t_due:
                apply(self, arming.pop_due(), placed=True)
            else:
                self.cycle()
            if progress is not None and t - last_report >= 3600000:
                progress(t)
                last_report = t
        if end > clock.now:
            clock.now = end

    def finish(self):
        self._sample(True)

    def _sample(self, series):
        t = self.clock.now
        self.catheter.read()     # let held-up drug move on to the tip
        f = self.pump.facts()
        # the band follows what the clinician intended (the last program the
        # pump accepted), not what the pump has now: a pump that has lost its
        # program still leaves the patient without drug
        ss = None
        if self.programs and self.programs[-1][1]["mode"] != "stopped":
            dose = self.programs[-1][2].get("daily_dose_ug") or 0
            if dose > 0:
                ss = self.patient.steady_state_ng_ml(dose)
        self.samples.append((t, self.patient.level_ng_ml(t), ss))
        if series:
            self.series.append((t, f["reservoir_nl"], self.reservoir.volume_nl, self.battery.level(), f["state"]))

    # --- results --------------------------------------------------------------
    def trace_rows(self):
        for t, nl, kind, conc in self.motor.trace:
            yield t, nl, KINDS[kind] if 0 <= kind < len(KINDS) else str(kind), conc
