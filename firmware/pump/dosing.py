# The dosing cycle: one wake-up of the pump, the path of one dose.
#
#   _sync: pump time, the day's place and the schedule brought up to now
#   -> feedback on the stroke commanded at the previous wake-up and the
#   catheter pressure (supervision.py) -> battery, drug, reservoir -> at most
#   one stroke if something is owed and the governor agrees: counted in the
#   ledger first (write-ahead), then commanded -> the heartbeat save ->
#   alarms and the time of the next wake-up.
#
# A mixin of Pump (controller.py): its methods use the state Pump.__init__ sets.
from pump.compat import const
from pump.units import DAY_MS
from pump.schedule import BRIDGE
from pump.governor import OK as GOV_OK, RESERVOIR as GOV_RESERVOIR
from pump.battery import ERI as B_ERI, EOS as B_EOS
from pump import alarms as A
from pump import eventlog as E
from pump.stops import FAULT, OCCLUDED, EMPTY, EOS, R_LIMIT, R_RESERVOIR

HEARTBEAT_MS = const(600000)   # pump time is saved at the first wake-up this long after
#                                the last save: a reset forgets at most this plus one sleep


class Dosing:
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
        self.schedule.advance(dt, self.tod.ms // 1000, self._was_running and not self._retry_wait)
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
        tod = self.tod.ms // 1000      # (self._tod(), without the call)

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
        p = self.program
        if p is not None and p.conc != self.reservoir.conc:    # (else _check_drug finds nothing)
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
        t, led = self.time, self.ledger
        if (t.day - led.day) * DAY_MS + (t.ms - led.ms) >= HEARTBEAT_MS:    # t.since(led.day, led.ms)
            led.save(t.day, t.ms)

        # 6. alarms, and when to wake next
        nxt = self.alarms.annunciate(self._alarm_dt)
        self._alarm_dt = 0
        return self._next_wake(nxt, running, retry, tod)

    def _running(self):
        return (self.stop == 0 and self.program is not None and self.program.mode != "stopped"
                and self.reservoir.conc == self.program.conc)

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
        # the windows count strokes of the strength this one carries (the old
        # drug's while a bridge pushes it out, with the old caps): a reset that
        # cut a bridge's end, a lost therapy record in a bridge or a second
        # change of strength in one left them in another (a rescale, if any)
        b = self.bridge_from
        conc = b[0] if b is not None and self.schedule.bridge_left_nl > 0 else self.program.conc
        if conc != self.win_conc:
            self._windows_in(conc)
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
        if self.win_conc == 0 and self.bridge_from is not None:
            self.win_conc = self.bridge_from[0]
        if self.program is not None:
            self._windows_in(self.program.conc)     # (saved, both copies, as at a program change)
        self.bridge_from = None
        self._apply_limits()
        self._event(E.BRIDGE, 1, 0)
        self._save_therapy()

    def _apply_limits(self):
        if self.program is None:
            self.governor.clear_limits()
        elif self.schedule.bridging() and self.bridge_from is not None:
            self.governor.set_limits(self.bridge_from[2], self.bridge_from[3])
        else:
            self.governor.set_limits(self.program.max_daily_nl, self.program.max_hourly_nl)
