"""The six hazards scenarios from outside the project found, each as it was
seen, and how the pump now ends it. Each test failed on the pump before the
fix; each also checks that the pump goes on dosing (a pump that stops for good
would pass a safety check and fail its patient).

1. A power cut in the therapy save of a refill with a new strength: the pump
   restarted with the old program, the new drug and no stop: a silent stop.
2. A flex step given twice when the clock went back an hour (DST fall-back),
   and a step skipped with no record when it went forward.
3. Nothing past 2034-01-09 could be set or run (seconds since 2000 >= 2**30).
4. A reset every few minutes: strokes lost and the reservoir believed short,
   and nothing said so.
5. Programs the pump cannot give well (a stroke every 18 h) and a bolus bigger
   than the reservoir were accepted.
6. Log records that mislead: a refusal's reason and request in one field, a
   stale stamp, an override that named the wrong base, no record of a refused
   program.
"""
import pytest

from conftest import sim_profile
from fakeports import PowerCut
from harness import Run
from test_properties import make_program
from pump import alarms as A
from pump import eventlog as E
from pump.controller import (Refused, CommandError, R_LIMIT, R_RESERVOIR, R_PROGRAM, R_STEP_UP, NEEDS_PROGRAM,
                             WALL_MAX_S)
from pump.governor import CAP_DAILY
from pump.program import ProgramError
from pump.schedule import PATIENT, BOLUS, BRIDGE

P = sim_profile()
STROKE = P["stroke_nl"]
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
FILL = 20_000_000
Y2000 = 0                      # the pump's epoch
D2034 = 12427 * 86400          # 2034-01-09 00:00: 2**30 s after 2000 is 13:37:04 that day


def evs(r, kind, code=None, since=0):
    return [e for e in r.events if e[1] == kind and (code is None or e[2] == code) and e[0] >= since]


def strokes(r, t0=0, t1=None):
    return sum(1 for t, _ in r.hw.motor.trace if t >= t0 and (t1 is None or t < t1))


def nl_day(ug, conc):
    return ug * 1_000_000 // conc


def max_real_day(r, t0, t1):
    """The most strokes in any 24 real hours inside [t0, t1) (the trace's own count)."""
    ts = [t for t, _ in r.hw.motor.trace if t0 <= t < t1]
    best = 0
    j = 0
    for i, t in enumerate(ts):
        while ts[j] <= t - DAY:
            j += 1
        best = max(best, i - j + 1)
    return best


# ------------------------------------------------------------ 1. silent stop
def refill_torn_at_therapy_save(clean):
    """Continuous 400 ug/day at 500 ug/mL; a refill with 2000 ug/mL and no new
    program; the power is cut in the refill's therapy-record save."""
    r = Run(P)
    assert r.refill(FILL, 500) is None
    assert r.program(make_program(500, 400)) is None
    r.advance(DAY)
    p = r.pump
    saves = []
    real = p.therapy_rec.save

    def spy(*a, **k):       # find which store write is the refill's therapy save
        saves.append(r.hw.store.writes + 1)
        return real(*a, **k)
    p.therapy_rec.save = spy
    base = r.hw.store.writes
    p.refill(FILL, 2000, r.hw.motor.actual_nl)        # a dry run on a copy of the store
    k = saves[0] - base
    # the same again, for real, with the power cut at that write
    r = Run(P)
    assert r.refill(FILL, 500) is None
    assert r.program(make_program(500, 400)) is None
    r.advance(DAY)
    r.hw.store.cut_at = r.hw.store.writes + k
    r.hw.store.cut_clean = clean
    err = r.refill(FILL, 2000)
    assert err == "reset"
    r.hw.motor.actual_nl = FILL          # the drug is in the reservoir whatever the pump heard
    return r


@pytest.mark.parametrize("clean", [False, True], ids=["torn", "atomic"])
def test_a_refill_cut_in_its_therapy_save_stops_the_pump_with_its_alarm(clean):
    r = refill_torn_at_therapy_save(clean)
    t0 = r.now
    r.advance(2 * DAY)
    st = r.pump.status()
    assert strokes(r, t0 + 1) == 0                  # no 500 ug/mL program pumps 2000 ug/mL drug
    assert st["state"] == "needs_program", st["state"]
    assert "program_required" in st["alarms"]
    assert r.pump.stop & NEEDS_PROGRAM
    # it survives another reset, and cannot be acknowledged away while the cause is there
    r.reboot()
    r.advance(HOUR)
    assert "program_required" in r.pump.status()["alarms"] and r.pump.state() == "needs_program"
    _, err = r.command(r.pump.acknowledge, A.PROGRAM_REQUIRED)
    assert isinstance(err, CommandError) and "still there" in str(err)
    # a program for the new drug ends it; dosing resumes at the new strength
    assert r.program(make_program(2000, 400)) is None
    t1 = r.now
    r.advance(DAY)
    assert abs(strokes(r, t1) * STROKE - nl_day(400, 2000)) <= 2 * STROKE
    assert not r.pump.alarms.active[A.PROGRAM_REQUIRED]


def test_a_drug_mismatch_found_at_a_restart_is_logged_as_a_stop():
    r = refill_torn_at_therapy_save(False)
    stops = [e for e in evs(r, E.STOP, NEEDS_PROGRAM) if e[3] == 1]
    alarms = evs(r, E.ALARM, A.PROGRAM_REQUIRED)
    assert stops and alarms, "the stop and its alarm must be on the record"


# ------------------------------------------------------------ 2. clock changes and flex steps
FLEX = [{"start_min": 0, "daily_rate_ug": 200}, {"start_min": 120, "daily_rate_ug": 2600},
        {"start_min": 180, "daily_rate_ug": 200}]      # 300 ug/day, 108 ug of it 02:00-03:00


def flex_pump():
    r = Run(P, wall_start_s=9500 * 86400)    # the wall clock at 00:00
    assert r.refill(FILL, 500) is None
    prog = {"mode": "flex", "concentration_ug_ml": 500, "steps": FLEX, "max_daily_ug": 400,
            "max_hourly_ug": 150}
    assert r.program(prog) is None
    return r


def test_a_fall_back_does_not_give_the_flex_step_twice_in_24_real_hours():
    r = flex_pump()
    r.advance(DAY + 3 * HOUR)                 # day 2, 03:00: the step has just run
    t = r.now
    assert r.set_wall(r.hw.clock.wall_s() - 3600) is None     # back to 02:00 (DST ends)
    r.advance(3 * DAY)
    daily = nl_day(300, 500)
    worst = max_real_day(r, 0, r.now) * STROKE
    assert worst <= daily + STROKE, "%d nL in some 24 real hours, the program gives %d" % (worst, daily)
    held = evs(r, E.TIME_OF_DAY, 2, t)
    assert [e[3] for e in held] == [3600]
    assert evs(r, E.TIME_OF_DAY, 3, t)                  # and the hold ends an hour later
    assert r.alarms_raised(A.DOSE_LIMIT) == []          # no cap had to stop it
    # liveness: the day after it gives its program to a stroke or two
    assert abs(strokes(r, t + DAY + HOUR, t + 2 * DAY + HOUR) * STROKE - daily) <= 2 * STROKE


def test_a_spring_forward_skips_the_step_and_logs_it_with_its_volume():
    r = flex_pump()
    r.advance(DAY + 2 * HOUR)                 # day 2, 02:00: the step begins
    t = r.now
    assert r.set_wall(r.hw.clock.wall_s() + 3600) is None     # 03:00 (DST begins)
    r.advance(HOUR)
    skipped = evs(r, E.TIME_OF_DAY, 1, t)
    assert [(e[3], e[4]) for e in skipped] == [(3600, nl_day(2600, 500) // 24)]
    assert strokes(r, t, r.now) * STROKE <= nl_day(200, 500) // 24 + STROKE    # not made up
    r.advance(DAY)
    assert strokes(r, t + HOUR, t + 23 * HOUR) > 0


def test_a_clock_set_back_across_a_reset_still_gives_no_step_twice():
    r = flex_pump()
    r.advance(DAY + 3 * HOUR)
    assert r.set_wall(r.hw.clock.wall_s() - 3600) is None
    r.advance(10 * MIN)
    r.reboot()                                # the hold's place is saved; it goes on after
    r.advance(3 * DAY)
    assert max_real_day(r, 0, r.now) * STROKE <= nl_day(300, 500) + STROKE


# ------------------------------------------------------------ 3. the wall clock to 2099
@pytest.mark.parametrize("start", [D2034 - 30 * 86400, WALL_MAX_S - 6 * 3600],
                         ids=["2033-12 across 2034-01-09", "2099-12-31 into 2100"])
def test_the_wall_clock_is_set_and_runs_across_2034_and_2099(start):
    r = Run(P)
    assert r.refill(FILL, 1000) is None
    assert r.program(make_program(1000, 300)) is None
    assert r.set_wall(start) is None
    t0 = r.now
    r.advance(40 * DAY if start < D2034 else 2 * DAY)
    st = r.pump.status()
    assert st["wall_s"] == start + (r.now - t0) // 1000
    assert st["wall_s"] >= 1 << 30
    r.pump.alarm_test()
    r.pump.log.load()                        # read back from the store: stamps are unsigned
    assert r.pump.log.entry(-1)[3] == st["wall_s"] and r.pump.log.entry(-1)[4] == E.ALARM_TEST
    days = (r.now - t0) // DAY
    assert abs(strokes(r, t0) * STROKE - days * nl_day(300, 1000)) <= 2 * STROKE
    with pytest.raises(CommandError):
        r.pump.set_clock(WALL_MAX_S + 1)     # 2100-01-01 is not a date to set


# ------------------------------------------------------------ 4. resets: losses on the record
def test_a_reset_storm_is_counted_alarmed_and_its_losses_add_up():
    r = Run(P)
    assert r.refill(FILL, 500) is None
    assert r.program(make_program(500, 500)) is None
    t0 = r.now
    n = 0
    while r.now < t0 + 10 * DAY:
        r.advance(5 * MIN)
        r.hw.store.cut_at = r.hw.store.writes + 1 if n % 2 else 0    # every other one in a write
        r.advance(7_000)
        r.hw.store.cut_at = 0
        if n % 2 == 0:
            r.reboot()
        n += 1
    resets = evs(r, E.RESET, since=t0 + 1)
    st = r.pump.status()
    assert len(resets) == r.resets and st["resets"] == r.resets
    assert st["resets_24h"] >= 3 and "frequent_resets" in st["alarms"]
    # what the pump believes left and what is there: the difference is what it says it does not know
    believed, real = st["reservoir_nl"], r.hw.motor.actual_nl
    assert 0 <= real - believed <= st["reservoir_uncertain_nl"]
    # every nL not given is a reset's: at least what each logged as skipped,
    # at most that plus the stroke each may have owed
    scheduled = 10 * DAY * nl_day(500, 500) // DAY
    short = scheduled - strokes(r, t0, t0 + 10 * DAY) * STROKE
    skipped = sum(e[4] for e in resets)
    assert skipped - STROKE <= short <= skipped + (len(resets) + 1) * STROKE, (short, skipped, len(resets))
    assert st["reset_skipped_nl"] == sum(e[4] for e in evs(r, E.RESET))
    # liveness: most of the program is given all the same
    assert short < scheduled // 5


# ------------------------------------------------------------ 5. programs the pump cannot give well
def test_a_stroke_every_18_hours_is_refused_with_a_strength_that_would_do():
    r = Run(P)
    assert r.refill(FILL, 3000) is None
    prog = {"mode": "continuous", "concentration_ug_ml": 3000, "daily_dose_ug": 1,
            "max_daily_ug": 100, "max_hourly_ug": 20}
    err = r.program(prog)
    assert isinstance(err, ProgramError) and err.field == "daily_dose_ug"
    assert "every 1081 min" in err.reason and "at most 166 ug/mL" in err.reason
    assert evs(r, E.REFUSAL, R_PROGRAM)              # and the refusal is on the record
    assert r.pump.program is None


def test_a_bolus_bigger_than_the_reservoir_holds_is_refused():
    r = Run(P)
    assert r.refill(1_000_000, 1000) is None           # 1 mL: 1000 ug
    assert r.program(make_program(1000, 300, extra_hourly=600)) is None
    _, err = r.clinician_bolus(500, 60)
    assert err is None                                 # 500 ug fits
    r.advance(2 * HOUR)
    left = r.pump.reservoir.remaining_nl()
    res, err = r.clinician_bolus(500, 60)              # but not twice
    assert isinstance(err, Refused) and err.code == R_RESERVOIR and err.detail == left
    assert evs(r, E.REFUSAL, R_RESERVOIR)[-1][2:] == (R_RESERVOIR, BOLUS, left)


# ------------------------------------------------------------ 6. log records that say what happened
def test_a_refusal_names_its_reason_its_request_and_its_number():
    pb = {"dose_ug": 20, "duration_min": 10, "lockout_min": 30, "max_per_day": 6}
    r = Run(P)
    assert r.refill(FILL, 1000) is None
    # a daily cap with room for the basal and one bolus, a roomy hourly one
    prog = make_program(1000, 300, pb=pb, extra_hourly=40)
    prog["max_daily_ug"] = 330
    assert r.program(prog) is None
    r.advance(DAY)
    granted = 0
    for _ in range(6):
        res, err = r.patient_bolus()
        granted += res is not None
        r.advance(HOUR)
    refusals = [e for e in evs(r, E.REFUSAL) if e[3] == PATIENT]
    assert granted >= 1 and refusals
    # why: dose_limit; what: a patient bolus; which limit: the 24 h one
    assert refusals[0][2:] == (R_LIMIT, PATIENT, CAP_DAILY), refusals[0]


def test_every_record_is_stamped_with_pump_time_brought_up_to_now():
    r = Run(P)
    assert r.refill(FILL, 1000) is None
    assert r.program(make_program(1000, 100)) is None   # a stroke every 216 s: long sleeps
    r.advance(HOUR + 100_000)
    t = r.now
    r.pump.alarm_test()                                 # a command, between wake-ups
    rec = r.pump.log.entry(-1)
    assert rec[4] == E.ALARM_TEST
    assert (rec[1], rec[2]) == (0, t)                   # day 0, ms: now, not the last wake-up


def test_an_override_names_the_dose_it_was_measured_from_and_a_refused_program_is_recorded():
    r = Run(P)
    assert r.refill(FILL, 1000) is None
    assert r.program(make_program(1000, 200)) is None
    r.advance(2 * HOUR)
    assert r.program(make_program(1000, 250)) is None   # +25 %
    err = r.program(make_program(1000, 320))            # +60 % on the 200 still in force within 24 h
    assert isinstance(err, ProgramError)
    step_up = evs(r, E.REFUSAL, R_STEP_UP)
    assert step_up and step_up[-1][3:] == (E.REQ_PROGRAM, 320)
    assert r.program(make_program(1000, 320, override_step_up=True)) is None
    over = evs(r, E.OVERRIDE)
    assert [e[3:] for e in over] == [(200, 320)]        # from 200, not from the 250 just before


def test_a_cut_before_a_stalled_strokes_correction_is_saved_is_reported_as_uncertain():
    """The motor stalls once; the power goes before the pump saves that the
    stroke did not run (a cut that writes nothing). The copy left counts the
    stroke: after the restart the pump believes a stroke less than is there,
    and must say so, then go on dosing."""
    r = Run(P)
    assert r.refill(FILL, 500) is None
    assert r.program(make_program(500, 500)) is None
    r.advance(HOUR)
    n0 = len(r.hw.motor.trace)
    r.hw.motor.stall_next = 1
    # the next write after the stall is the correction (the ledger's uncount)
    while not r.hw.motor.stall_times:
        r.advance(max(r.next_wake - r.now, 1))    # wake by wake, up to the stalled stroke
    r.hw.store.cut_at = r.hw.store.writes + 1
    r.hw.store.cut_clean = True
    r.advance(10_000)
    r.hw.store.cut_at = 0
    assert r.resets == 1, "the correction's save was not cut"
    st = r.pump.status()
    believed, real = st["reservoir_nl"], r.hw.motor.actual_nl
    assert real - believed == STROKE and st["reservoir_uncertain_nl"] >= STROKE
    # a second restart with no stroke between counts the same stroke once
    r.reboot()
    assert r.pump.status()["reservoir_uncertain_nl"] == st["reservoir_uncertain_nl"]
    r.advance(DAY)
    assert len(r.hw.motor.trace) - n0 >= nl_day(500, 500) // STROKE - 2


def test_a_reset_right_after_a_change_of_strength_keeps_the_windows_in_the_new_strength():
    """The windows count strokes; at a new strength a clinician's program
    re-expresses them (twice as many strokes at half the strength). A reset
    before the next window save brought back the old counts: the pump then gave
    40 % over the new 24 h cap in drug (the property test found it)."""
    r = Run(P)
    assert r.refill(FILL, 2000) is None
    assert r.program(make_program(2000, 600)) is None
    t0 = r.now
    r.advance(20 * HOUR + 37_000)                        # (between two strokes)
    assert r.refill(FILL, 1000) is None                 # half the strength: a program for it
    assert r.program(make_program(1000, 150)) is None     # caps far below the last 20 h's drug
    r.reboot()                                            # in the same window slot: no stroke saved it
    r.advance(DAY)
    assert not [v for v in r.check() if v.startswith("I2")], r.check()[:3]
    # and it doses again once the old strength's drug has left the 24 h window
    r.advance(DAY)
    assert strokes(r, r.now - HOUR) > 0 and strokes(r, t0) > 0


@pytest.mark.parametrize("k", range(1, 9))
@pytest.mark.parametrize("clean", [False, True], ids=["torn", "clean"])
def test_a_program_at_a_new_strength_cut_by_a_reset_and_sent_again_rescales_the_windows_once(k, clean):
    """A program at a new strength re-expresses the windows and saves them
    before the program itself. A reset cut the program's save after the
    windows' (its 2nd to 6th write): the clinician sent it again, and the pump
    rescaled the already rescaled counts a second time, halving them again
    (1000 to 2000 ug/mL): 68 ug in 24 h under a 54 ug cap (the property test
    found it). The windows' record now says the strength its counts are in."""
    r = Run(P)
    assert r.refill(FILL, 1000) is None
    assert r.program(make_program(1000, 157)) is None
    r.advance(3 * DAY + 37_000)                           # (between two strokes)
    assert r.refill(FILL, 2000) is None                   # a new strength: stopped until its program
    prog = make_program(2000, 50)                          # a cap below what the last 24 h held
    r.hw.store.cut_at = r.hw.store.writes + k
    r.hw.store.cut_clean = clean
    for _ in range(4):                                     # sent again after each reset, as a programmer does
        err = r.program(prog)
        if err != "reset":
            break
    r.hw.store.cut_at = 0
    assert err is None, err
    r.advance(DAY + HOUR)
    assert not [v for v in r.check() if v.startswith("I2")], r.check()[:3]
    # and it doses again once the old strength's drug has left the 24 h window
    t1 = r.now
    r.advance(DAY)
    assert strokes(r, t1) > 0


def test_windows_saved_without_their_strength_by_older_firmware_still_load():
    """A window record of the firmware before the strength was saved in it
    (4 bytes shorter) is read as before: its counts in the strength of the
    program in force, so an update keeps the dose history."""
    import struct
    from pump.record import frame, unframe
    from pump.governor import RECORD_PAYLOAD, OLD_RECORD_PAYLOAD, RECORD_HEAD
    r = Run(P)
    assert r.refill(FILL, 1000) is None
    assert r.program(make_program(1000, 600)) is None
    r.advance(20 * HOUR + 37_000)                        # (between two strokes)
    held = r.pump.governor.day.total
    assert held > 0
    for key in ("window.a", "window.b"):
        seq, payload = unframe(r.hw.store.data[key])
        assert len(payload) == RECORD_PAYLOAD
        old = payload[:RECORD_HEAD - 4] + payload[RECORD_HEAD:]      # no strength field
        assert len(old) == OLD_RECORD_PAYLOAD
        r.hw.store.data[key] = frame(seq, old)
    r.reboot()
    assert r.pump.governor.day.total >= held and r.pump.win_conc == 0
    assert not r.pump.alarms.active[A.STORAGE_CORRUPT]
    # a program at a new strength then rescales them from the program in force
    assert r.refill(FILL, 2000) is None
    assert r.program(make_program(2000, 300)) is None
    assert r.pump.win_conc == 2000 and r.pump.governor.day.total < held
    r.advance(DAY)
    assert not [v for v in r.check() if v.startswith("I2")], r.check()[:3]


def bridged(old, new, bridge_left_nl):
    """2 days at old = (conc, ug/day), a refill at new[0] and its program with a
    bridge, run until bridge_left_nl of old drug is left in the catheter (between
    two strokes). -> (run, refill time, old program, new program)."""
    r = Run(P)
    assert r.refill(FILL, old[0]) is None
    po = make_program(*old)
    assert r.program(po) is None
    r.advance(2 * DAY + 37_000)
    t_refill = r.now
    assert r.refill(FILL, new[0]) is None
    pn = make_program(*new, bridge=True)
    assert r.program(pn) is None
    while r.pump.schedule.bridge_left_nl > bridge_left_nl:
        r.advance(10_000)
    r.advance(37_000 - r.now % 10_000)
    return r, t_refill, po, pn


def over_caps_after_bridge(r, t_refill, old_conc, new_conc, prog):
    """The drug the patient got (the strokes before the refill and the bridge's
    strokes carry the old strength: the oracle counts the reservoir's) in the
    24 h and 1 h ending at each stroke after the bridge's last, over the caps of
    prog. -> [(t, span, ug, cap ug)]."""
    from bisect import bisect_right
    trace = r.hw.motor.trace
    end = [t for t, k in trace if k == BRIDGE][-1]
    ts = [t for t, _ in trace]
    pre = [0]
    for t, k in trace:
        pre.append(pre[-1] + STROKE * (old_conc if t < t_refill or k == BRIDGE else new_conc))
    out = []
    for i, t in enumerate(ts):
        if t <= end:
            continue
        for span, cap in ((DAY, prog["max_daily_ug"]), (HOUR, prog["max_hourly_ug"])):
            ug = (pre[i + 1] - pre[bisect_right(ts, t - span)]) / 1e6
            if ug > cap:
                out.append((t, span, ug, cap))
    return out


@pytest.mark.parametrize("k", range(1, 7))
@pytest.mark.parametrize("clean", [False, True], ids=["torn", "clean"])
def test_a_reset_that_cuts_a_bridges_end_leaves_no_window_in_the_old_strength(k, clean):
    """At a bridge's last stroke the windows are re-expressed in the new
    strength and saved, after the stroke's ledger save (which says the bridge
    is over). A reset in the windows' save left them in the old strength
    beside a program at the new one, for good: from 2000 to 1000 ug/mL each old
    stroke counted for half its drug, 500 ug in 24 h under a 256 ug cap, 21 ug
    in 1 h under 14 ug."""
    r, t_refill, po, pn = bridged((2000, 500), (1000, 250), STROKE)
    r.hw.store.cut_at = r.hw.store.writes + k
    r.hw.store.cut_clean = clean
    r.advance(HOUR)
    r.hw.store.cut_at = 0
    assert r.resets == 1 and not r.pump.schedule.bridging()
    r.advance(2 * DAY)
    assert over_caps_after_bridge(r, t_refill, 2000, 1000, pn)[:3] == []
    # and it doses again once the old strength's drug has left the 24 h window
    assert strokes(r, r.now - HOUR) > 0


def test_a_program_at_the_same_strength_during_a_bridge_leaves_its_old_drug_counted_in_the_old():
    """A program sent during a bridge at the strength already in force (a new
    dose) re-expressed the windows in that strength at once, while the bridge
    went on pushing old drug under the old caps: from 2000 to 1000 ug/mL the
    counts doubled (the bridge was refused for 12 h), and its strokes after
    that counted as new-strength ones: 20.8 ug in 1 h under a 14 ug cap once
    the bridge was out."""
    r, t_refill, po, pn = bridged((2000, 500), (1000, 250), (P["catheter_nl"] + P["pump_tubing_nl"]) // 2)
    t0 = r.now
    p2 = make_program(1000, 240)
    assert r.program(p2) is None
    r.advance(2 * DAY)
    end = [t for t, k in r.hw.motor.trace if k == BRIDGE][-1]
    assert [e for e in evs(r, E.REFUSAL, since=t0) if e[0] <= end] == [], "the bridge was refused"
    assert over_caps_after_bridge(r, t_refill, 2000, 1000, p2)[:3] == []
    assert strokes(r, r.now - HOUR) > 0


def test_a_therapy_record_lost_during_a_bridge_stops_the_pump_rather_than_push_the_old_drug_at_the_safe_rate():
    """Safe mode runs the ledger's safe rate when the therapy record is lost.
    Lost during a bridge, it pushed the old strength still in the catheter at
    the new strength's rate, with the bridge and its old caps forgotten (they
    were in the lost record): 265 ug in 24 h under a 256 ug cap, 17 ug in 1 h
    under 14 ug, at the tip. The pump now stops, alarmed, until a clinician
    programs it; then it doses again."""
    from pump.record import copies
    dead = P["catheter_nl"] + P["pump_tubing_nl"]
    r = Run(P)
    assert r.refill(FILL, 2000) is None
    po = make_program(2000, 500, safe_rate_ug_day=400)
    assert r.program(po) is None
    r.advance(2 * DAY + 37_000)
    assert r.refill(FILL, 1000) is None
    pn = make_program(1000, 250, bridge=True, safe_rate_ug_day=200)
    assert r.program(pn) is None
    while r.pump.schedule.bridge_left_nl > dead // 2:
        r.advance(10_000)
    r.advance(37_000 - r.now % 10_000)
    t_lost = r.now
    for key in copies("therapy"):
        r.hw.store.data[key] = b"\x00" * 40
    r.reboot()
    r.advance(DAY)
    assert not r.pump.safe_mode and r.pump.alarms.active[A.STORAGE_CORRUPT]
    assert strokes(r, t_lost) == 0              # not one stroke of old drug at the safe rate
    # the clinician programs it again (at the new strength: the bridge's record
    # is lost, so it cannot be resumed): it doses again
    t1 = r.now
    assert r.program(make_program(1000, 250)) is None
    r.advance(DAY)
    assert strokes(r, t1) > 0
