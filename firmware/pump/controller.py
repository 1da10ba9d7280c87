# The pump controller: one wake-up at a time, the path of one dose.
#
#   clock -> schedule (what is owed) -> governor (is it safe?) -> ledger
#   (write-ahead) -> motor stroke -> next wake: motor feedback (stall?) and
#   catheter pressure (occlusion?) -> reservoir and battery -> event log -> alarms
#
# The controller never reads a real clock, file or port: everything comes
# through the ports handed to it. cycle() never lets an exception out; a
# fault is logged, alarmed, and the pump stops.
import json
import struct
from array import array
from pump.compat import const, forget_module
from pump.units import DAY_S, DAY_MS, ug_to_nl_floor, MIN_CONC_UG_ML, MAX_CONC_UG_ML
from pump.monotime import PumpTime
from pump.timeofday import TimeOfDay
from pump.program import (ProgramError, StepUpError, validate, MAX_BOLUS_UG, fastest_bolus_nl_day,
                          bolus_too_fast)
from pump.schedule import Schedule, BOLUS, PATIENT, PRIME, BRIDGE
from pump.governor import (Governor, OK as GOV_OK, RESERVOIR as GOV_RESERVOIR,
                           RECORD_PAYLOAD as WIN_PAYLOAD, RECORD_ITEMS as WIN_ITEMS)
from pump.ledger import Ledger
from pump.record import ABRecord, copies
from pump.reservoir import Reservoir, REFILL_DISCREPANCY as RECONCILE_BAD
from pump.catheter import Catheter, OCCLUDED as C_OCCL, CLEARED as C_CLEAR, LEAK as C_LEAK, LEAK_CLEARED as C_LEAK_CLEAR
from pump.motor import MotorSupervisor, RETRY
from pump.battery import BatteryMonitor, ERI as B_ERI, EOS as B_EOS
from pump import alarms as A
from pump import eventlog as E

# Why the pump is not delivering (bit flags; any set bit stops delivery).
SUSPENDED = const(1)
OCCLUDED = const(2)
STALLED = const(4)
EMPTY = const(8)
EOS = const(16)
NEEDS_PROGRAM = const(32)
STORAGE = const(64)
FAULT = const(128)
STOP_NAMES = ((EOS, "end_of_service"), (FAULT, "fault"), (STORAGE, "storage_fault"),
              (STALLED, "motor_stalled"), (NEEDS_PROGRAM, "needs_program"),
              (EMPTY, "out_of_drug"), (OCCLUDED, "occluded"), (SUSPENDED, "suspended"))
_PERSISTED_STOPS = SUSPENDED | STALLED | EOS | FAULT | NEEDS_PROGRAM | STORAGE | OCCLUDED
# The alarm each stop holds active while it is set (no silent stop, I9). A
# suspension is the clinician's own act and has none; needs_program has one
# once the pump has had a drug or a program (a new pump owes nothing).
STOP_ALARMS = ((EOS, A.BATTERY_EOS), (FAULT, A.INTERNAL_FAULT), (STORAGE, A.STORAGE_CORRUPT),
               (STALLED, A.MOTOR_STALL), (NEEDS_PROGRAM, A.PROGRAM_REQUIRED),
               (EMPTY, A.RESERVOIR_EMPTY), (OCCLUDED, A.OCCLUSION))
# Stops an acknowledgement ends: only the clinician can say the motor or the
# fault is dealt with. Every other stop ends when its cause is gone.
_ACK_ENDS = ((A.MOTOR_STALL, STALLED), (A.INTERNAL_FAULT, FAULT))

# Reasons a command is refused (also the code of the refusal event).
R_NO_PROGRAM = const(1)
R_STOPPED = const(2)
R_LOCKOUT = const(3)
R_MAX_PER_DAY = const(4)
R_LIMIT = const(5)
R_BUSY = const(6)
R_BRIDGE = const(7)
R_SAFE_MODE = const(8)
R_NOT_ALLOWED = const(9)
R_RESERVOIR = const(10)
R_PROGRAM = const(11)
R_STEP_UP = const(12)
# 0 is no refusal: the record that ends a run of refused strokes
REFUSAL_NAMES = ("refusals_ended", "no_program", "pump_stopped", "lockout", "max_per_day", "dose_limit",
                 "bolus_in_progress", "bridge_in_progress", "safe_mode", "not_allowed",
                 "not_enough_drug", "invalid_program", "step_up_limit")

# The wall clock may be set from 2000-01-01 to 2099-12-31 23:59:59 (seconds
# since 2000, as MicroPython counts). Past 2034 that is 2**30 or more, a heap
# object on a 32-bit board: the pump reads it only to stamp records and for
# status, never per stroke (the schedule reads the clock's time of day).
WALL_MAX_S = 3155759999
RESETS_ALARM = const(3)        # this many restarts within 24 h raise frequent_resets

HEARTBEAT_MS = const(600000)   # pump time is saved at the first wake-up this long after
#                                the last save: a reset forgets at most this plus one sleep

# The records saved while the pump doses (the ledger before every stroke, the
# dose windows at a slot's first stroke): a board's store may keep them open.
STROKE_RECORDS = ("ledger", "window")


def stroke_keys():
    """The store keys of those records' copies."""
    return [k for name in STROKE_RECORDS for k in copies(name)]


RESET_POWER_ON = const(0)
RESET_WATCHDOG = const(1)
RESET_SOFT = const(2)


class CommandError(ValueError):
    """A command with a bad argument: nothing was changed."""

    def __init__(self, field, reason):
        super().__init__(field + ": " + reason)
        self.field = field
        self.reason = reason


class Refused(Exception):
    """A well-formed request the pump will not carry out now (logged)."""

    def __init__(self, code, detail=0):
        super().__init__(REFUSAL_NAMES[code])
        self.code = code
        self.detail = detail      # the number behind it: seconds of lockout left, which cap, ...


def _need_int(v, field, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int):
        raise CommandError(field, "must be a whole number")
    if v < lo or v > hi:
        raise CommandError(field, "%d is outside %d..%d" % (v, lo, hi))
    return v


class Pump:
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
        # 8-byte record header, 12 bytes of heads and lifetime, the counts, the
        # CRC), so snapshotting them at a stroke copies and allocates nothing.
        win = array("H", bytes(2 * WIN_ITEMS))
        self.governor = Governor(self.stroke_nl, win, 10)
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
        struct.pack_into("<III", self.window_rec.payload, 0, g.day.head, g.hour.head, self.ledger.lifetime)
        self.window_rec.save()

    def _save_therapy(self, over_damage=False):
        """Save the therapy record. over_damage: the intact copy is written first
        and then the damaged one, so that a save cut off cannot leave only the
        older intact copy (what made the damage count would be forgotten)."""
        t = {"program": None if (self.program is None or self.safe_mode) else self.program.raw,
             "stop": self.stop & _PERSISTED_STOPS, "day": self.time.day, "ms": self.time.ms,
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

    # ------------------------------------------------------------------ helpers
    def _tod(self):
        """The schedule's time of day, s (it follows the wall clock, never back)."""
        return self.tod.ms // 1000

    def _event(self, kind, code=0, a=0, b=0):
        self.log.add(self.time.day, self.time.ms, self.clock.wall_s(), kind, code, a, b)

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
        if save or (new and bit & _PERSISTED_STOPS) or (raised and A.LATCHED[code]):
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
        if bit & _PERSISTED_STOPS:
            self._save_therapy()
        self._event(E.STOP, bit, 0, detail)

    def _check_drug(self):
        """The reservoir must hold the drug the program is for. A mismatch found
        at any time (a restart after a save cut off in a refill included) stops
        the pump, alarmed, until a clinician confirms a program for that drug."""
        p = self.program
        if (p is not None and self.reservoir.conc and p.conc != self.reservoir.conc
                and not self.stop & NEEDS_PROGRAM):
            self._halt(NEEDS_PROGRAM, A.PROGRAM_REQUIRED, self.reservoir.conc)

    def _running(self):
        return (self.stop == 0 and self.program is not None and self.program.mode != "stopped"
                and self.reservoir.conc == self.program.conc)

    def _apply_limits(self):
        if self.program is None:
            self.governor.clear_limits()
        elif self.schedule.bridging() and self.bridge_from is not None:
            self.governor.set_limits(self.bridge_from[2], self.bridge_from[3])
        else:
            self.governor.set_limits(self.program.max_daily_nl, self.program.max_hourly_nl)

    def _check_reservoir(self):
        r = self.reservoir
        if r.conc == 0:
            # never filled: a program in force with no drug is an empty reservoir
            if not self.stop & EMPTY:
                self._halt(EMPTY, A.RESERVOIR_EMPTY if self.program is not None else 0)
            elif self.program is not None:
                self._alarm(A.RESERVOIR_EMPTY)
            return
        if not r.can_stroke():
            if not self.stop & EMPTY:
                self._halt(EMPTY, A.RESERVOIR_EMPTY, r.remaining_nl())
        elif self.stop & EMPTY:
            self._unhalt(EMPTY)
            self._clear(A.RESERVOIR_EMPTY)
        low = self.program.low_reservoir_nl if self.program is not None else 0
        if r.remaining_nl() <= low:
            self._alarm(A.LOW_RESERVOIR, r.remaining_nl())
        else:
            self._clear(A.LOW_RESERVOIR)

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

    # ------------------------------------------------------------------ the loop
    def cycle(self):
        """One wake-up. Returns the ms to sleep before the next. Never raises."""
        try:
            return self._cycle()
        except Exception as e:
            try:
                self._fault(e)
            except Exception:
                self.stop |= FAULT
            # the alarm must be heard even when the failing part comes before
            # the annunciation in every wake-up
            try:
                nxt = self.alarms.annunciate(self._alarm_dt or self.recheck_ms)
                self._alarm_dt = 0
            except Exception:
                nxt = None
            if nxt is None or nxt > self.recheck_ms:
                return self.recheck_ms
            return nxt if nxt >= 1 else 1

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

    def _sync(self):
        """Bring pump time and the schedule up to now, at the rates chosen at the
        previous decision. Every wake-up and every command starts here, so a
        command never applies its new rates to time that has already passed."""
        dt = self.time.sync(self.clock.ticks_ms())
        self._alarm_dt += dt
        held = self.tod.holding
        jump = self.tod.follow(dt, self.clock.tod_s())
        self.ledger.tod_place = self.tod.ms + 1
        self.schedule.holding = self.tod.holding
        # while waiting to retry a stalled stroke the motor is not working: that
        # time is forfeited like any stop, but the stalled stroke stays owed
        self.schedule.advance(dt, self._tod(), self._was_running and not self._retry_wait)
        if not self._was_running:
            self.schedule.forfeit()
        if jump or held != self.tod.holding:
            self._day_moved(jump, held)

    def _day_moved(self, jump, held):
        """The wall clock moved under the schedule (set, a new time zone, DST, a
        glitch): logged with what it means for the day's schedule."""
        if jump < 0:
            # the place held is saved: a restart must hold from it, not from an
            # older place whose stretch of the day was given since
            self.ledger.save(self.time.day, self.time.ms)
            self._event(E.TIME_OF_DAY, 2, -jump // 1000, 0)
            return
        if held and not self.tod.holding:
            self._event(E.TIME_OF_DAY, 3, 0, 0)
        if jump > 0:
            # the part of the day skipped is not given: its basal volume is logged
            p = self.program
            nl = 0
            if p is not None and not self.schedule.bridging():
                nl = p.nl_over((self.tod.ms - jump) % DAY_MS // 1000, jump // 1000)
            self._event(E.TIME_OF_DAY, 1, jump // 1000, nl)

    def _cycle(self):
        self._sync()
        tod = self._tod()

        # 1. feedback from the stroke commanded at the previous wake-up
        retry = False
        if self.supervisor.pending:
            retry = self._feedback()
        elif self.stop & OCCLUDED:
            self._on_pressure(self.pressure.read())

        # 2. battery
        b = self.battery.sample(self.battery_port.level())
        if b == B_ERI:
            self._alarm(A.BATTERY_ERI, self.battery.level)
        elif b == B_EOS:
            self._halt(EOS, A.BATTERY_EOS, self.battery.level)

        # 3. what is owed was counted by _sync in the state the pump was in at the
        # previous decision; if it is stopped now, all that is owed is forfeited
        self._check_drug()
        self._check_reservoir()
        running = self._running()
        if not running:
            self.schedule.forfeit()
        self._was_running = running
        self._retry_wait = retry

        # 4. at most one stroke per wake-up, if the governor agrees (a stalled
        # stroke is retried after stall_retry_ms, not at once)
        if running and not retry and self.schedule.owed_total() >= self.stroke_nl:
            self._stroke()

        # 5. pump time is saved at least every HEARTBEAT_MS, strokes or not: after
        # a reset the pump resumes from its last save, and time it forgot would
        # keep old strokes (or a conservative fill) in its windows that much longer
        if self.time.since(self.ledger.day, self.ledger.ms) >= HEARTBEAT_MS:
            self.ledger.save(self.time.day, self.time.ms)

        # 6. alarms, and when to wake next
        nxt = self.alarms.annunciate(self._alarm_dt)
        self._alarm_dt = 0
        return self._next_wake(nxt, running, retry, tod)

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

    def _next_wake(self, nxt, running, retry, tod):
        """ms to sleep: the first of the next sound, the next stroke owed, the
        stroke's feedback, a retry, or the occlusion re-check."""
        sleep = self.max_sleep_ms
        if nxt is not None and nxt < sleep:
            sleep = nxt
        if self.supervisor.pending:
            # read the stroke's feedback as soon as it is done
            return self.stroke_ms
        if retry:
            return self.retry_ms if self.retry_ms < sleep else sleep
        if running:
            due = self.schedule.ms_until_due(tod)
            if due is not None and due < sleep:
                sleep = due
            if self.tod.holding:
                # wake when the wall clock has caught up: the day's steps resume
                due = self.tod.hold_left_ms(self.clock.tod_s()) + 1000
                if due < sleep:
                    sleep = due
        elif self.stop & OCCLUDED and self.recheck_ms < sleep:
            sleep = self.recheck_ms
        return sleep if sleep >= 1 else 1

    def _stroke(self):
        day, ms = self.time.day, self.time.ms
        reason = self.governor.check(day, ms, self.stroke_nl, self.reservoir.remaining_nl(),
                                     self.reservoir.empty_nl)
        if reason != GOV_OK:
            self.schedule.refuse()
            self.refused_strokes += 1
            self._refused_run += 1
            if reason != self._refusing:
                self._refusing = reason
                self._event(E.REFUSAL, R_RESERVOIR if reason == GOV_RESERVOIR else R_LIMIT,
                            E.REQ_STROKE, reason)
            if reason == GOV_RESERVOIR:
                self._halt(EMPTY, A.RESERVOIR_EMPTY, self.reservoir.remaining_nl())
            else:
                self._alarm(A.DOSE_LIMIT, reason)
            return
        if self._refusing:
            # the run of refusals is over: on the record with how many it held
            self._refusing = 0
            self._event(E.REFUSAL, 0, E.REQ_STROKE, self._refused_run)
            self._refused_run = 0
            if self.alarms.resolve(A.DOSE_LIMIT):    # latched: a clinician looks at why
                self._save_therapy()
        kind = self.schedule.take()
        self.reservoir.strokes += 1
        led = self.ledger
        led.strokes = self.reservoir.strokes
        led.lifetime += 1
        led.bridge_left_nl = self.schedule.bridge_left_nl
        self.governor.record(day, ms)
        idx = self.governor.day.index(day, ms)
        if idx != self._snap_idx:
            self._snap_idx = idx
            self._save_window()
        led.save(day, ms, stroke=True)    # write-ahead: counted before commanded
        self._in_count = True
        self.supervisor.commanded(kind)
        self.motor.stroke(kind)
        if kind == BRIDGE and not self.schedule.bridging():
            self._end_bridge()
        if not self.reservoir.can_stroke():
            self._check_reservoir()       # that was the last stroke it holds: say so now

    def _end_bridge(self):
        """The old-strength drug is out of the catheter: from now on strokes carry
        the new strength, so the windows are re-expressed in it (rounded up)."""
        old = self.bridge_from[0] if self.bridge_from is not None else 0
        if old and self.program is not None and old != self.program.conc:
            self.governor.day.rescale(old, self.program.conc)
            self.governor.hour.rescale(old, self.program.conc)
        self.bridge_from = None
        self._apply_limits()
        self._event(E.BRIDGE, 1, 0)
        self._save_therapy()

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

    # ------------------------------------------------------------------ commands
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
        if p.bridge and prev is not None:
            dead = p.catheter_nl if p.catheter_nl >= 0 else self.catheter_nl
            dead += self.profile.get("pump_tubing_nl", 0)
            # the old caps stay in force while old-strength drug is pushed out
            self.bridge_from = [prev.conc, prev.daily_nl, prev.max_daily_nl, prev.max_hourly_nl]
            self.schedule.start_bridge(dead, prev.daily_nl, self._tod())
            self._event(E.BRIDGE, 0, dead, prev.daily_nl)
        elif prev is not None and prev.conc != p.conc and not self.safe_mode:
            self.governor.day.rescale(prev.conc, p.conc)
            self.governor.hour.rescale(prev.conc, p.conc)
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
        _need_int(volume_nl, "volume_nl", self.stroke_nl, self.reservoir.capacity_nl)
        _need_int(conc, "concentration_ug_ml", MIN_CONC_UG_ML, MAX_CONC_UG_ML)
        _need_int(residual_nl, "residual_nl", 0, self.reservoir.capacity_nl)
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

    def clinician_bolus(self, dose_ug, duration_min):
        """A single bolus over a duration, then back to the basal program."""
        _need_int(dose_ug, "dose_ug", 1, MAX_BOLUS_UG)
        _need_int(duration_min, "duration_min", 1, 1440)
        self._sync()
        if self.program is None:
            self._refuse(R_NO_PROGRAM, BOLUS)
        nl = ug_to_nl_floor(dose_ug, self.program.conc)
        if nl < self.stroke_nl:
            raise CommandError("dose_ug", "less than one stroke at this concentration")
        self._check_speed(nl, duration_min)
        b = self.schedule.bolus(BOLUS)
        try:
            if b.active:
                raise Refused(R_BUSY)
            self._grant_check(nl)
        except Refused as r:
            self._refuse(r.code, BOLUS, r.detail)
        self._sync()
        b.start(nl, duration_min * 60000)
        self._event(E.BOLUS, BOLUS, nl, duration_min * 60)
        return nl

    def prime(self, duration_min, volume_nl=None):
        """Priming bolus: fill the catheter's dead volume (length x volume per cm,
        plus the pump's own tubing). It counts against the caps like any stroke."""
        _need_int(duration_min, "duration_min", 1, 240)
        self._sync()
        dead = self.catheter_nl + self.profile.get("pump_tubing_nl", 0)
        if volume_nl is None:
            volume_nl = dead
        _need_int(volume_nl, "volume_nl", self.stroke_nl, max(dead, self.stroke_nl))
        self._check_speed(volume_nl, duration_min)
        b = self.schedule.bolus(PRIME)
        try:
            if b.active:
                raise Refused(R_BUSY)
            self._grant_check(volume_nl)
        except Refused as r:
            self._refuse(r.code, PRIME, r.detail)
        self._sync()
        b.start(volume_nl, duration_min * 60000)
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
        _need_int(code, "code", 1, A.N_ALARMS - 1)
        self._sync()
        nm = A.name(code)
        if not self.alarms.active[code]:
            raise CommandError("alarm", "%s is not active" % nm)
        if not A.LATCHED[code]:
            raise CommandError("alarm", "%s clears by itself when its cause is gone" % nm)
        ends = 0
        for c, bit in _ACK_ENDS:
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
        _need_int(wall_s, "wall_s", 0, WALL_MAX_S)
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

    # ------------------------------------------------------------------ status
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
