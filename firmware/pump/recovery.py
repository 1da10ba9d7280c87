# Recovery after power-on or any reset: the pump's state from its records.
#
# Runs once per start, so on a board it is imported for the start and its
# memory given back after (Pump._start): the boot code and the programmer
# link are never in the heap at once. Each rule here is in docs/states.md
# ("Recovery after a reset"): what the pump does with an intact, torn or
# damaged copy of each record, and how it resumes time, the day's schedule,
# its stops and their alarms, and the count of restarts.
import json
import struct
from pump import alarms as A
from pump import eventlog as E
from pump.battery import EOS as B_EOS
from pump.governor import DAY_SLOTS, RECORD_PAYLOAD as WIN_PAYLOAD, RECORD_HEAD as WIN_HEAD, OLD_RECORD_PAYLOAD
from pump.program import Program, ProgramError, validate
from pump.record import OK, MISSING, CORRUPT
from pump.timeofday import TOLERANCE_MS as TOD_TOLERANCE_MS
from pump.units import DAY_MS

SAFE_MODE = 8        # the storage record's code when a start enters safe mode (a: its nL/day)
from pump.stops import (STOP_ALARMS, NEEDS_PROGRAM, STORAGE, OCCLUDED, EOS, PERSISTED_STOPS,
                        RESETS_ALARM, RESET_WATCHDOG)



def start(pump, reset_cause):
    pump.log.load()
    torn_log = pump.log.corrupt
    lst = pump.ledger.load()
    tst, tpay = pump.therapy_rec.load()
    wst, wpay = pump.window_rec.load()
    pump.time.restore(0, 0)
    for newest in pump.log.newest_first():   # nor earlier than the newest event it logged
        _later(pump, newest[1], newest[2])
        break
    pump._event_later = []
    pump._therapy_damaged = False
    pump._revalidation_failed = False
    corrupt = []
    ledger_ok = lst == OK
    saved_lifetime = pump.ledger.lifetime if ledger_ok else 0
    if lst == OK and pump.ledger.in_flight:
        # The newest copy is a stroke's write-ahead: that stroke was counted
        # before it was commanded, and nothing after it says it ran (a power
        # cut before the motor moved, or before a stall's correction was
        # saved). It stays counted, the safe direction, and is reported. The
        # note is saved over the older copy, so each restart counts it once.
        pump.ledger.uncertain += 1
        pump.ledger.save(pump.ledger.day, pump.ledger.ms)
    if lst == OK and pump.ledger.rec.suspect:
        # One copy fails its check and is not a write cut short (a cut never
        # commanded its stroke): a record written in full and damaged later,
        # perhaps the newer one, whose stroke may have run, or a write cut in
        # place. Count one more stroke: the pump may believe it has less drug,
        # never more; it says how much it so believes in `uncertain`.
        pump.ledger.strokes += 1
        pump.ledger.lifetime += 1
        pump.ledger.uncertain += 1
        # saved at once, over the intact copy first: a later write cut off
        # over the damaged copy would otherwise erase what it says
        pump.ledger.save_over_damage()
    if lst == OK:
        pump.reservoir.fill_nl = pump.ledger.fill_nl
        pump.reservoir.conc = pump.ledger.conc
        pump.reservoir.strokes = pump.ledger.strokes
        _later(pump, pump.ledger.day, pump.ledger.ms)
    elif lst == CORRUPT:
        corrupt.append(1)
    therapy = None
    pump.bridge_from = None
    if tst == OK:
        try:
            therapy = json.loads(tpay)
            _later(pump, therapy["day"], therapy["ms"])
        except Exception:
            therapy = None
            tst = CORRUPT
    if tst == CORRUPT:
        corrupt.append(2)
    elif therapy is not None and pump.therapy_rec.damaged:
        pump._therapy_damaged = True
    if wst == OK and _load_window(pump, wpay):
        # pump time resumes no earlier than the newest window slot: strokes
        # after the restart must fall in later slots, never pile into that one
        hh = pump.governor.hour.head
        _later(pump, hh // pump.governor.hour.per_day,
                    (hh % pump.governor.hour.per_day) * pump.governor.hour.slot_ms)
    elif wst != MISSING or saved_lifetime > 0:
        corrupt.append(3)
        wst = CORRUPT
    pump.governor.roll(pump.time.day, pump.time.ms)
    refilled = False    # the windows were given strokes of unknown timing
    if wst == MISSING:
        pump._snap_lifetime = 0
    if wst == OK or wst == MISSING:
        # strokes counted by the ledger after the last window snapshot: put
        # them in the newest slot, as if they had just happened (conservative)
        missing = pump.ledger.lifetime - pump._snap_lifetime
        if missing > 0:
            pump.governor.day.fill_newest(missing)
            pump.governor.hour.fill_newest(missing)
            refilled = True
    elif wst == CORRUPT:
        # the dose history is lost: the pump cannot show that any stroke in
        # the next 24 h is inside the caps, so it counts the windows as full
        pump.governor.day.fill_newest(0xFFFF)
        pump.governor.hour.fill_newest(0xFFFF)
        refilled = True

    pump.stop = 0
    # a damaged copy beside a usable record: logged (code: which record;
    # a: 1 if the copy was whole, so perhaps newer, 0 if torn by a reset)
    for which, rec in ((1, pump.ledger.rec), (2, pump.therapy_rec), (3, pump.window_rec)):
        if rec.damaged and which not in corrupt:
            pump._event_later.append((E.STORAGE, which, rec.suspect))
    if therapy is not None and therapy.get("safe") and ledger_ok:
        _restore_therapy(pump, therapy)
        _enter_safe_mode(pump)
    elif therapy is not None:
        _restore_therapy(pump, therapy)
        if pump._therapy_damaged:
            _distrust_therapy(pump, ledger_ok, corrupt)
    elif tst == CORRUPT and ledger_ok and _safe_rate_usable(pump):
        _enter_safe_mode(pump)
    else:
        pump.stop |= NEEDS_PROGRAM
    if not ledger_ok and lst == CORRUPT:
        pump.stop |= STORAGE
    if tst == CORRUPT and not pump.safe_mode:
        pump.stop |= STORAGE
    skip_nl = _resume_day(pump, ledger_ok)
    pump.schedule.bridge_left_nl = 0
    if ledger_ok and pump.bridge_from is not None and pump.ledger.bridge_left_nl > 0:
        pump.schedule.start_bridge(pump.ledger.bridge_left_nl, pump.bridge_from[1], pump._tod())
    if pump.program is not None:
        pump.schedule.set_program(pump.program, pump._tod())
    pump._apply_limits()
    if lst == CORRUPT and wst == OK:
        # the windows were saved at the first stroke of a slot; the ledger
        # counted the strokes after that, and it is lost. The governor held
        # them to the hourly cap in force, so count a full hour now (with no
        # program known, full windows).
        n = pump.governor.cap_hour if pump.governor.limits_set else 0xFFFF
        pump.governor.day.fill_newest(n)
        pump.governor.hour.fill_newest(n)
        refilled = True
    if refilled:
        # the conservative counts are saved at once: another reset must not
        # go back to the snapshot without them
        pump._save_window()
    # a restart of a pump that has records (not a new pump): counted, and
    # the basal the time since the last save held is what it may have lost
    restart = lst != MISSING or tst != MISSING
    if restart:
        pump.restarts.append([pump.time.day, pump.time.ms])
        pump._prune()
        pump.reset_count += 1
        pump.reset_nl += skip_nl
    pump._event(E.RESET, reset_cause, pump.ledger.lifetime, skip_nl)
    for ev in pump._event_later:
        pump._event(*ev)
    if torn_log:
        pump._event(E.STORAGE, 4, torn_log)
    for which in corrupt:
        pump._event(E.STORAGE, which, 0)
    # every stop brings its alarm back (no silent stop), and a drug the
    # program is not for, found now (a save cut off by the reset), stops it
    drug_known = pump.reservoir.conc != 0 or pump.program is not None
    for bit, code in STOP_ALARMS:
        if pump.stop & bit and (code != A.PROGRAM_REQUIRED or drug_known):
            pump.alarms.raise_(code)
    # the stops and the alarms in force after the restart (b: a bit per alarm
    # code), so a reader of the log sees every latched alarm come back
    mask = 0
    for code in pump.alarms.codes():
        mask |= 1 << code
    pump._event(E.STOP, 0, pump.stop, mask)
    if pump.tod.holding:
        pump._event(E.TIME_OF_DAY, 2, -pump.tod.ahead_ms(pump.clock.tod_s()) // 1000, 0)
    if corrupt or pump._revalidation_failed:
        pump._alarm(A.STORAGE_CORRUPT)
    if reset_cause == RESET_WATCHDOG:
        pump._alarm(A.WATCHDOG_RESET)
    if len(pump.restarts) >= RESETS_ALARM:
        pump._alarm(A.FREQUENT_RESETS, len(pump.restarts))
    if restart or corrupt or pump._revalidation_failed:
        # restarts counted; latched alarms and stops survive another reset
        pump._save_therapy(over_damage=pump._therapy_damaged and pump.therapy_rec.suspect > 0)
    pump._check_drug()
    pump._check_reservoir()
    # an alarm in force whose record a reset may have cut off is logged again
    for code in _not_logged_active(pump, pump.alarms.codes()):
        pump._event(E.ALARM, code, 0)
    pump._was_running = False
    pump._snap_idx = -1   # the first stroke after a start always snapshots the windows


def _resume_day(pump, ledger_ok):
    """Put the schedule back at its saved place in the day, then follow the
    wall clock: forward over the time since the last save (the pump was off
    or forgot it: not given, no catch-up), or hold if the clock went back.
    -> the basal volume so skipped (nL)."""
    now = pump.clock.tod_s()
    place = pump.ledger.tod_place
    if not ledger_ok or not 0 < place <= DAY_MS:
        pump.tod.place(now)
        pump.ledger.tod_place = pump.tod.ms + 1
        return 0
    pump.tod.ms = place - 1
    pump.tod.holding = False
    d = pump.tod.ahead_ms(now)
    skip = 0
    if d < -TOD_TOLERANCE_MS:
        pump.tod.hold(now)
    elif d > 0:
        p = pump.program
        if p is not None and not pump.safe_mode and not pump.stop:
            # (a stop in force then owed nothing: nothing was skipped)
            skip = p.nl_over(pump.tod.ms // 1000, d // 1000)
        pump.tod.place(now)
    pump.ledger.tod_place = pump.tod.ms + 1
    pump.schedule.holding = pump.tod.holding
    return skip


def _later(pump, day, ms):
    if (day, ms) > (pump.time.day, pump.time.ms):
        pump.time.restore(day, ms)


def _restore_therapy(pump, t):
    raw = t.get("program")
    if raw is not None:
        try:
            pump.program = validate(raw, pump.stroke_nl, fastest_nl_day=pump.fastest_nl_day)
        except ProgramError:
            pump.program = None
            pump.stop |= STORAGE
            pump._event_later.append((E.STORAGE, 5, 0))
            pump._revalidation_failed = True
    pump.stop |= t.get("stop", 0) & PERSISTED_STOPS
    if pump.program is None:
        pump.stop |= NEEDS_PROGRAM
    pump.titration = t.get("titration", [])
    pump.pb_grants = t.get("pb", [])
    pump.restarts = t.get("restarts", [])
    pump.reset_count = t.get("resets", 0)
    pump.reset_nl = t.get("reset_nl", 0)
    pump.catheter_nl = t.get("catheter_nl", pump.catheter_nl)
    pump.bridge_from = t.get("bridge")
    for code in t.get("latched", []):
        if 0 < code < A.N_ALARMS and A.LATCHED[code]:
            pump.alarms.raise_(code)
    for code in t.get("resolved", []):
        if 0 < code < A.N_ALARMS:
            pump.alarms.resolve(code)
    if pump.stop & EOS:
        pump.battery.state = B_EOS
    if pump.stop & OCCLUDED:
        # still blocked until the pressure reads clear again, as before the reset
        pump.catheter.occluded = True


def _not_logged_active(pump, codes):
    """Of these active alarms, those whose story the event log does not end
    with them raised (a reset may have cut off the record, or the ring let it
    go): they are logged again, once. One pass back through the log."""
    left = list(codes)
    out = []
    for r in pump.log.newest_first():
        if not left:
            break
        if r[5] in left and r[4] in (E.ALARM, E.ALARM_CLEAR, E.ACK):
            left.remove(r[5])
            if r[4] != E.ALARM:
                out.append(r[5])
    return sorted(out + left)

def _distrust_therapy(pump, ledger_ok, corrupt):
    """The therapy record in use may be one save old. A lost patient-bolus
    grant would shorten a lockout: count one as granted now. A lost program
    change would leave old limits in force: if the program disagrees with the
    caps the ledger saved with the newest program, fall back to the safe state."""
    if pump.program is not None and pump.program.pb_dose_nl:
        pump.pb_grants.append([pump.time.day, pump.time.ms])
    p = pump.program
    if p is not None and ledger_ok and (p.max_daily_nl != pump.ledger.max_daily_nl
                                        or p.max_hourly_nl != pump.ledger.max_hourly_nl
                                        or p.safe_rate_nl_day != pump.ledger.safe_rate_nl_day):
        corrupt.append(2)
        pump.program = None
        if _safe_rate_usable(pump):
            _enter_safe_mode(pump)
        else:
            pump.stop |= STORAGE | NEEDS_PROGRAM


def _safe_rate_usable(pump):
    """Safe mode needs a safe rate, and a catheter holding the drug it is for:
    while a bridge pushes the old strength out (the ledger says how much is
    left) the old drug's strength and caps were in the lost therapy record, and
    the safe rate would push that drug at the new strength's rate (from 2000 to
    1000 ug/mL, twice the drug a stroke: 265 ug in 24 h under a 256 ug cap).
    The pump stops instead, alarmed, until a clinician programs it."""
    return pump.ledger.safe_rate_nl_day > 0 and pump.ledger.bridge_left_nl == 0


def _enter_safe_mode(pump):
    """The program record is lost but the ledger names a safe rate: run only
    that, with the ledger's caps, no boluses, until a clinician reprograms."""
    p = Program()
    p.mode = "continuous"
    p.conc = pump.ledger.conc
    p.steps = [(0, pump.ledger.safe_rate_nl_day)]
    p.step_ug = [pump.ledger.safe_rate_nl_day * pump.ledger.conc // 1000000]
    p.daily_nl = pump.ledger.safe_rate_nl_day
    p.daily_ug_min = p.step_ug[0] * 1440
    p.min_rate = p.steps[0][1]
    p.max_daily_nl = pump.ledger.max_daily_nl
    p.max_hourly_nl = pump.ledger.max_hourly_nl
    pump.program = p
    pump.safe_mode = True
    # on the record with the rate it runs at: a reader of the log knows why less is given
    pump._event_later.append((E.STORAGE, SAFE_MODE, pump.ledger.safe_rate_nl_day))


def _load_window(pump, payload):
    if len(payload) == WIN_PAYLOAD:
        dh, hh, life, conc = struct.unpack_from("<IIII", payload, 0)
        at = WIN_HEAD
    elif len(payload) == OLD_RECORD_PAYLOAD:
        # older firmware's record: the strength is not in it (taken as the
        # program's in force, as that firmware did, once the program is known)
        dh, hh, life = struct.unpack_from("<III", payload, 0)
        conc = 0
        at = WIN_HEAD - 4
    else:
        return False
    pump.governor.day.load(dh, payload[at:at + 2 * DAY_SLOTS])
    pump.governor.hour.load(hh, payload[at + 2 * DAY_SLOTS:])
    pump._snap_lifetime = life
    pump.win_conc = conc
    return True
