# The pump controller: the pump's state, and the rooms that act on it.
#
# The path of one dose, room by room (docs/architecture.md walks it):
#   programming.py  a program checked, confirmed and put in force; a refill
#   commands.py     boluses, priming, suspend/resume, alarms, the clock
#   dosing.py       one wake-up: time and schedule brought to now (what is
#                   owed) -> governor (is it safe?) -> ledger (write-ahead)
#                   -> motor stroke -> the next wake-up
#   supervision.py  the next wake-up's motor feedback (stall?) and catheter
#                   pressure (occlusion?), the reservoir, stops and alarms
#   status.py       what the pump says about itself
#   recovery.py     the state rebuilt from the records after a reset
#   stops.py        the names they share: stop bits, refusals, exceptions
# Pump (below) holds the state, saves the records and logs the events.
#
# The controller never reads a real clock, file or port: everything comes
# through the ports handed to it. cycle() never lets an exception out; a
# fault is logged, alarmed, and the pump stops.
import json
import struct
from array import array
from pump.compat import forget_module
from pump.monotime import PumpTime
from pump.timeofday import TimeOfDay
from pump.program import fastest_bolus_nl_day
from pump.schedule import Schedule
from pump.governor import (Governor, RECORD_PAYLOAD as WIN_PAYLOAD, RECORD_ITEMS as WIN_ITEMS,
                           RECORD_HEAD as WIN_HEAD)
from pump.ledger import Ledger
from pump.record import ABRecord, copies
from pump.reservoir import Reservoir
from pump.catheter import Catheter
from pump.motor import MotorSupervisor
from pump.battery import BatteryMonitor
from pump import alarms as A
from pump import eventlog as E
from pump.dosing import Dosing, HEARTBEAT_MS  # noqa: F401
from pump.supervision import Supervision
from pump.programming import Programming
from pump.commands import Commands
from pump.status import Status
# the shared names, here too for those who import them from the controller
from pump.stops import (SUSPENDED, OCCLUDED, STALLED, EMPTY, EOS, NEEDS_PROGRAM, STORAGE, FAULT,  # noqa: F401
                        STOP_NAMES, STOP_ALARMS, PERSISTED_STOPS, ACK_ENDS,
                        R_NO_PROGRAM, R_STOPPED, R_LOCKOUT, R_MAX_PER_DAY, R_LIMIT, R_BUSY, R_BRIDGE,
                        R_SAFE_MODE, R_NOT_ALLOWED, R_RESERVOIR, R_PROGRAM, R_STEP_UP, REFUSAL_NAMES,
                        WALL_MAX_S, RESETS_ALARM, RESET_POWER_ON, RESET_WATCHDOG, RESET_SOFT,
                        CommandError, Refused, need_int)

# The records saved while the pump doses (the ledger before every stroke, the
# dose windows at a slot's first stroke): a board's store may keep them open.
STROKE_RECORDS = ("ledger", "window")


def stroke_keys():
    """The store keys of those records' copies."""
    return [k for name in STROKE_RECORDS for k in copies(name)]


# The rooms are mixins: each method is defined once, in one room, so the order
# only says where a lookup looks first (the dosing cycle's, every wake-up).
class Pump(Dosing, Supervision, Programming, Commands, Status):
    def __init__(self, profile, clock, motor, pressure, battery, store, annunciator, log_sink=None):
        self.profile = profile
        self.clock = clock
        self.motor = motor
        self.pressure = pressure
        self.battery_port = battery
        self.store = store
        self.stroke_nl = profile["stroke_nl"]
        self.stroke_ms = profile.get("stroke_ms", 200)
        self.recheck_ms = profile.get("recheck_ms", 60000)
        self.retry_ms = profile.get("stall_retry_ms", 1000)
        self.max_sleep_ms = profile.get("max_sleep_ms", 600000)
        self.fastest_nl_day = fastest_bolus_nl_day(self.stroke_nl, self.stroke_ms)
        self.time = PumpTime()
        self.tod = TimeOfDay()    # the schedule's place in the day (never runs back)
        self.schedule = Schedule(self.stroke_nl)
        # The windows' counts live inside the window record's frame (u16 items:
        # 8-byte record header, 16 bytes of heads, lifetime and strength, the
        # counts, the CRC), so snapshotting them at a stroke copies and allocates nothing.
        win = array("H", bytes(2 * WIN_ITEMS))
        self.governor = Governor(self.stroke_nl, win, (8 + WIN_HEAD) // 2)
        self.win_conc = 0         # the strength (ug/mL) the windows count strokes of; 0: not known
        self.ledger = Ledger(store)
        self.reservoir = Reservoir(profile["reservoir_nl"], self.stroke_nl,
                                   profile.get("empty_nl", 0), profile.get("accuracy_pct", 15),
                                   profile.get("refill_min_tolerance_nl", 500000))
        self.catheter = Catheter(profile["occlusion_high"], profile["occlusion_clear"],
                                 profile["leak_low"], profile.get("occlusion_samples", 3),
                                 profile.get("occlusion_samples", 3), profile.get("leak_samples", 5))
        self.supervisor = MotorSupervisor(profile.get("stall_retries", 2))
        self.battery = BatteryMonitor(profile["battery_eri_permille"], profile["battery_eos_permille"])
        self.alarms = A.Alarms(annunciator)
        self.log = E.EventLog(store, profile.get("log_size", 64), log_sink)
        self.therapy_rec = ABRecord(store, "therapy")
        self.window_rec = ABRecord(store, "window", WIN_PAYLOAD, win)
        self.program = None
        self.safe_mode = False
        self.stop = NEEDS_PROGRAM
        self.titration = []       # [day, ms, daily ug*min, step-up %] of programs put in force,
        #                           back to the one in force 24 h ago
        self.pb_grants = []       # [day, ms] of patient boluses granted in the last 24 h
        self.restarts = []        # [day, ms] of restarts in the last 24 h
        self.reset_count = 0      # restarts over the pump's life
        self.reset_nl = 0         # basal volume those restarts skipped (schedule time lost)
        self.catheter_nl = profile.get("catheter_nl", 0)
        self.strokes_done = 0     # completed strokes since start (feedback), for status
        self.refused_strokes = 0   # strokes the governor refused (a count: stays small)
        self._was_running = False
        self._refusing = 0
        self._refused_run = 0     # strokes refused since the governor began refusing
        self._snap_idx = -1
        self._snap_lifetime = 0
        self._alarm_dt = 0
        self._in_count = False    # the stroke in flight is counted in the reservoir
        self._retry_wait = False  # a stalled stroke waits stall_retry_ms to be retried
        self.bridge_from = None   # [conc, nL/day, max_daily_nl, max_hourly_nl] of the old drug

    # ------------------------------------------------------------------ start
    def start(self, reset_cause=RESET_POWER_ON):
        """Recover state from the store after power-on or any reset. Never raises:
        if recovery itself fails (a store that cannot be read or written), the pump
        stops with the internal fault alarm rather than restart over and over."""
        try:
            self._start(reset_cause)
        except Exception as e:
            self._was_running = False
            try:
                self._fault(e)
            except Exception:
                self.stop |= FAULT

    def _start(self, reset_cause):
        # the recovery code runs once per start: on a board it is loaded for it
        # and its memory given back after (pump/recovery.py)
        from pump import recovery
        try:
            recovery.start(self, reset_cause)
        finally:
            forget_module("pump.recovery")

    def _save_window(self):
        g = self.governor
        struct.pack_into("<IIII", self.window_rec.payload, 0, g.day.head, g.hour.head, self.ledger.lifetime,
                         self.win_conc)
        self.window_rec.save()

    def _windows_in(self, conc):
        """The strokes counted from now on carry drug of conc ug/mL: the
        windows' counts are re-expressed in its strokes (rounded up) from the
        strength they are in, and saved at once, both copies, with that
        strength. Counts and strength are so saved together: a program sent
        again after a reset cut its first try finds the windows already in
        the new strength and leaves them (rescaled twice, the counts of a
        weaker drug would be halved again and the caps overrun)."""
        old = self.win_conc
        if old == conc:
            return
        self.win_conc = conc
        if old:
            self.governor.day.rescale(old, conc)
            self.governor.hour.rescale(old, conc)
            self._save_window()
            self._save_window()

    def _save_therapy(self, over_damage=False):
        """Save the therapy record. over_damage: the intact copy is written first
        and then the damaged one, so that a save cut off cannot leave only the
        older intact copy (what made the damage count would be forgotten)."""
        t = {"program": None if (self.program is None or self.safe_mode) else self.program.raw,
             "stop": self.stop & PERSISTED_STOPS, "day": self.time.day, "ms": self.time.ms,
             "titration": self.titration, "pb": self.pb_grants, "catheter_nl": self.catheter_nl,
             "latched": [c for c in self.alarms.codes() if A.LATCHED[c]],
             "resolved": [c for c in self.alarms.codes() if self.alarms.resolved[c]],
             "restarts": self.restarts, "resets": self.reset_count, "reset_nl": self.reset_nl,
             "bridge": self.bridge_from if self.schedule.bridging() else None,
             "safe": self.safe_mode}
        raw = json.dumps(t).encode()
        if over_damage:
            self.therapy_rec.rewrite_newest(raw)
        self.therapy_rec.save(raw)

    # ------------------------------------------------------------------ records
    def _tod(self):
        """The schedule's time of day, s (it follows the wall clock, never back)."""
        return self.tod.ms // 1000

    def _event(self, kind, code=0, a=0, b=0):
        self.log.add(self.time.day, self.time.ms, self.clock.wall_s(), kind, code, a, b)
