"""Unit tests for pump.schedule: exact integer flows, boluses, forfeit, strokes, wake-ups.

The reference for every volume is exact integer arithmetic on the elapsed time:
a rate of R nL/day over S whole seconds owes floor(R*S/86400) nL.
"""
import copy
import random

import pytest
from hypothesis import given, settings, strategies as st

from conftest import sim_profile
from pump.program import validate
from pump.schedule import Flow, Bolus, Schedule, BASAL, BOLUS, PATIENT, PRIME, BRIDGE
from pump.units import DAY_MS, DAY_S
from unitutil import ConstProgram, SMALL, tightest_program

STROKE = sim_profile()["stroke_nl"]
MAX_SLEEP_MS = sim_profile()["max_sleep_ms"]
# the fastest basal a valid program can name: 3000 ug/day at 10 ug/mL
MAX_RATE = 3000 * 1_000_000 // 10
DAYS = 180

rates = st.one_of(
    st.integers(0, MAX_RATE),
    st.integers(1, 3 * DAY_S),
    st.sampled_from([1, DAY_S - 1, DAY_S, DAY_S + 1, 1_000_000, 999_999_999 % MAX_RATE, MAX_RATE]))


def hot_values(s):
    """Every integer the schedule keeps between wake-ups."""
    vals = [("ms_carry", s.ms_carry), ("bridge_left_nl", s.bridge_left_nl),
            ("bridge_rate", s.bridge_rate), ("forfeited_strokes", s.forfeited_strokes),
            ("forfeited_rem", s.forfeited_rem)]
    vals += [("owed[%d]" % k, v) for k, v in enumerate(s.owed)]
    flows = [("basal", s.basal)] + [("bolus%d" % b.kind, b.flow) for b in s.boluses]
    for name, f in flows:
        vals += [(name + ".q", f.q), (name + ".r", f.r), (name + ".frac", f.frac),
                 (name + ".rate", f.rate)]
    for b in s.boluses:
        vals += [("bolus%d.vol" % b.kind, b.vol), ("bolus%d.due" % b.kind, b.due),
                 ("bolus%d.left_s" % b.kind, b.left_s)]
    return vals


def assert_small(s):
    bad = [(n, v) for n, v in hot_values(s) if not (-SMALL < v < SMALL)]
    assert not bad, bad


def drain(s):
    """Take every whole stroke owed (as the pump would, one per wake-up); -> nL taken."""
    n = s.owed_total() // STROKE
    if n == 0:
        return 0
    if n < 4:
        for _ in range(n):
            s.take()
    else:  # fast rates: many strokes are owed per interval; take them in bulk
        rest = n * STROKE
        for k in range(5):
            m = min(rest, s.owed[k])
            s.owed[k] -= m
            rest -= m
        assert rest == 0
    return n * STROKE


def wake_gaps(seed, total_ms, max_gap_ms):
    """Irregular wake-up spacings in ms, the hot path's (none longer than max_gap_ms)."""
    rng = random.Random(seed)
    out = []
    now = 0
    while now < total_ms:
        r = rng.random()
        if r < 0.05:
            d = rng.randint(1, 999)           # sub-second: ms carry
        elif r < 0.15:
            d = rng.randint(1000, 30000)
        else:
            d = rng.randint(max_gap_ms // 2, max_gap_ms)
        d = min(d, total_ms - now)
        out.append(d)
        now += d
    return out


def const_schedule(rate):
    s = Schedule(STROKE)
    s.set_program(ConstProgram(rate), 0)
    return s


# --- Flow ---------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0, 1, 250, DAY_S - 1, DAY_S, DAY_S + 1, 1_000_000, MAX_RATE])
def test_flow_one_day_in_seconds_is_exact(rate):
    f = Flow()
    f.set(rate)
    assert f.q * DAY_S + f.r == rate and 0 <= f.r < DAY_S
    total = sum(f.run(1) for _ in range(DAY_S))
    assert total == rate
    assert f.frac == 0


@given(rate=rates, chunks=st.lists(st.integers(0, 8192), min_size=1, max_size=200))
def test_flow_any_chunking_is_exact(rate, chunks):
    f = Flow()
    f.set(rate)
    got = 0
    secs = 0
    for c in chunks:
        got += f.run(c)
        secs += c
        assert got == rate * secs // DAY_S
        assert 0 <= f.frac < DAY_S
        assert 0 <= f.r * 8192 + DAY_S < SMALL    # the largest product run() forms


def test_flow_rate_change_keeps_remainder():
    """Changing the rate (a flex step) carries the fraction: the sum stays exact."""
    f = Flow()
    f.set(1)
    assert f.run(43200) == 0 and f.frac == 43200
    f.set(DAY_S + 1)
    assert f.run(1) == 1  # 1 nL/s + (43200 + 1)/86400 -> 1 whole, 43201 left
    assert f.frac == 43201
    f.set(1)
    assert f.run(43199) == 1 and f.frac == 0


def test_flow_secs_for():
    f = Flow()
    assert f.secs_for(5) is None
    f.set(DAY_S)           # 1 nL/s
    assert f.secs_for(5) == 5
    f.run(1)
    f.set(DAY_S // 2)      # 0.5 nL/s
    assert f.secs_for(1) == 2


# --- the basal flow through Schedule.advance, over months --------------------

@settings(max_examples=min(settings().max_examples, 12))
@given(rate=rates, seed=st.integers(0, 2**32 - 1))
def test_basal_180_days_irregular_wakes_is_exact_and_small(rate, seed):
    s = const_schedule(rate)
    elapsed_ms = 0
    taken = 0
    for d in wake_gaps(seed, DAYS * DAY_MS, MAX_SLEEP_MS):
        s.advance(d, 0, True)
        elapsed_ms += d
        # exact: no drift, ever
        owed = s.owed[BASAL]
        assert taken + owed == rate * (elapsed_ms // 1000) // DAY_S
        assert s.ms_carry == elapsed_ms % 1000
        # what changes on the hot path (the rest is checked at the end)
        assert owed < SMALL and s.basal.frac < SMALL
        if owed >= STROKE:
            n = owed // STROKE
            s.owed[BASAL] -= n * STROKE   # the strokes the pump takes
            taken += n * STROKE
    assert_small(s)
    assert s.forfeited_nl() == 0
    assert taken + s.owed_total() == rate * (DAYS * DAY_S) // DAY_S


@pytest.mark.parametrize("gap_ms", [1, 999, 1001, 8192 * 1000 + 1, 6 * DAY_MS])
def test_basal_long_and_short_single_steps(gap_ms):
    """One advance may span many 8192 s chunks; a sub-second one only carries ms."""
    s = const_schedule(MAX_RATE)
    elapsed = 0
    for _ in range(3):
        s.advance(gap_ms, 0, True)
        elapsed += gap_ms
        assert s.owed_total() == MAX_RATE * (elapsed // 1000) // DAY_S
        assert s.ms_carry == elapsed % 1000


# --- forfeit: no catch-up ----------------------------------------------------

def test_stopped_time_is_forfeited_not_caught_up():
    rate = 1_000_000
    s = const_schedule(rate)
    s.advance(3_600_000, 0, True)
    hour = rate * 3600 // DAY_S
    assert s.owed_total() == hour
    # the pump stops (as the controller does: forfeit what is owed, then time passes stopped)
    s.forfeit()
    assert s.owed_total() == 0
    for _ in range(30):
        s.advance(600_000, 0, False)
        s.forfeit()
    assert s.owed_total() == 0
    # running again: only the time since counts
    s.advance(3_600_000, 0, True)
    assert s.owed_total() == hour
    # forfeit() also drops the sub-nL remainder each time it runs (31 times here)
    assert 0 <= hour + rate * 5 * 3600 // DAY_S - s.forfeited_nl() <= 31


@settings(max_examples=min(settings().max_examples, 20))
@given(rate=rates, seed=st.integers(0, 2**32 - 1))
def test_running_and_stopped_spans_conserve_and_never_catch_up(rate, seed):
    rng = random.Random(seed)
    s = const_schedule(rate)
    running = True
    elapsed_ms = 0
    taken = 0
    span_ms = 0          # length of the current running span
    span_got = 0         # what it has owed so far
    for d in wake_gaps(seed, 10 * DAY_MS, MAX_SLEEP_MS):
        before = s.owed_total()
        s.advance(d, 0, running)
        if not running:
            s.forfeit()           # as the controller does after a stopped interval
        elapsed_ms += d
        if running:
            span_ms += d
            span_got += s.owed_total() - before
            # a span owes its own time (plus at most the sub-second carry from before it)
            assert span_got <= rate * (span_ms + 1000) // DAY_MS
        else:
            assert s.owed_total() == before == 0
        # conservation: everything produced is owed, taken or forfeited
        # (forfeit() also drops the sub-nL fractions, so this is <= rather than ==)
        assert taken + s.owed_total() + s.forfeited_nl() <= rate * (elapsed_ms // 1000) // DAY_S
        taken += drain(s)
        if rng.random() < 0.02:     # the pump stops or starts
            running = not running
            if not running:
                s.forfeit()
            span_ms = span_got = 0
        assert_small(s)


def test_forfeit_clears_basal_fraction_but_a_bolus_keeps_its_position():
    s = const_schedule(DAY_S // 2)   # half a nL per second
    b = s.bolus(PATIENT)
    b.start(1000, 3_600_000)
    s.advance(1000, 0, True)
    assert s.basal.frac > 0 and b.flow.frac > 0
    frac = b.flow.frac
    s.forfeit()
    assert s.basal.frac == 0 and s.owed == [0] * 5
    assert b.flow.frac == frac


@given(vol=st.integers(STROKE, 200_000), dur_min=st.integers(1, 240), seed=st.integers(0, 2**32 - 1))
def test_a_bolus_interrupted_by_stops_never_makes_up_what_it_forfeited(vol, dur_min, seed):
    """Stops in the middle of a bolus (occlusion, suspend): what the bolus owed
    plus what it forfeited is exactly its volume, never more (no catch-up of
    fractions at its end), and nothing is owed after its end."""
    rng = random.Random(seed)
    s = const_schedule(0)
    b = s.bolus(BOLUS)
    b.start(vol, dur_min * 60_000)
    owed = 0
    t = 0
    while b.active:
        running = rng.random() < 0.6
        dt = rng.randint(1, 300_000)
        t += dt
        s.advance(dt, 0, running)
        if not running:
            s.forfeit()
        owed += s.owed[BOLUS]
        s.owed[BOLUS] = 0
    s.advance(3_600_000, 0, True)
    assert s.owed_total() == 0
    assert owed + s.forfeited_nl() == vol


def test_bolus_time_passes_while_stopped():
    """A bolus whose time passes while the pump is stopped is gone, not postponed."""
    s = const_schedule(0)
    b = s.bolus(BOLUS)
    b.start(10_000, 600_000)
    s.advance(300_000, 0, True)
    half = s.owed[BOLUS]
    assert 4_990 <= half <= 5_000
    s.owed[BOLUS] = 0             # given
    s.advance(300_000, 0, False)
    s.forfeit()
    assert not b.active
    s.advance(3_600_000, 0, True)
    assert s.owed_total() == 0
    assert s.forfeited_nl() == 10_000 - half


# --- boluses ----------------------------------------------------------------------

@given(vol=st.integers(1, 5_000_000), dur_s=st.integers(1, 240 * 60), extra_ms=st.integers(0, 999),
       seed=st.integers(0, 2**32 - 1), basal=st.integers(0, 5_000_000))
def test_bolus_delivers_exactly_its_volume_by_its_end(vol, dur_s, extra_ms, seed, basal):
    duration_ms = dur_s * 1000 + extra_ms
    s = const_schedule(basal)
    b = s.bolus(BOLUS)
    b.start(vol, duration_ms)
    rng = random.Random(seed)
    elapsed = 0
    got = 0
    while elapsed < duration_ms:
        d = min(rng.choice([1, 500, 1000, 7000, 60000, 600000]), duration_ms - elapsed)
        s.advance(d, 0, True)
        elapsed += d
        got += s.owed[BOLUS]
        s.owed[BOLUS] = 0
        # evenly spread: never ahead of the straight line from 0 to vol
        assert got * duration_ms <= vol * (elapsed // 1000) * 1000 or elapsed // 1000 >= dur_s
        assert got <= vol
        drain(s)
    assert got == vol
    assert not b.active
    s.advance(3_600_000, 0, True)
    assert s.owed[BOLUS] == 0


def test_bolus_restart_replaces():
    b = Bolus(PATIENT)
    b.start(1000, 60_000)
    b.run(30)
    b.start(1000, 60_000)
    assert b.due == 0 and b.left_s == 60 and b.active
    assert b.run(60) == 1000 and not b.active


def test_hot_path_small_for_boluses_the_motor_can_deliver():
    """The motor gives at most one stroke per stroke_ms; a bolus at that speed keeps
    every stored value small."""
    prof = sim_profile()
    fastest = prof["stroke_nl"] * DAY_MS // prof["stroke_ms"]    # nL/day
    vol = 20_000_000
    duration_ms = vol * DAY_MS // fastest + 1
    s = const_schedule(MAX_RATE)
    for b in s.boluses:
        b.start(vol, duration_ms)
    assert_small(s)
    assert s.rate_total() < SMALL


def test_a_bolus_faster_than_the_pump_gives_is_refused_and_the_fastest_stays_small():
    """1 mL over 1 min would be a rate of 1.44e9 nL/day, a big int on every wake-up;
    the pump refuses any bolus faster than half its motor speed, and the fastest it
    accepts keeps every value small."""
    from harness import Run
    from pump.controller import CommandError
    from pump.program import fastest_bolus_nl_day
    prof = sim_profile()
    run = Run(prof)
    assert run.refill(20_000_000, 500) is None
    assert run.program({"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": 3000,
                        "max_daily_ug": 6000, "max_hourly_ug": 6000}) is None
    res, err = run.clinician_bolus(500, 1)       # 1 mL in a minute
    assert isinstance(err, CommandError) and err.field == "duration_min", err
    assert "at least 27 min" in err.reason, err.reason
    assert not run.pump.schedule.bolus(BOLUS).active
    res, err = run.clinician_bolus(500, 27)
    assert err is None and res == 1_000_000
    s = run.pump.schedule
    assert s.bolus(BOLUS).flow.rate <= fastest_bolus_nl_day(STROKE, prof["stroke_ms"])
    assert_small(s)
    assert s.rate_total() < SMALL


def test_forfeited_total_stays_small_over_a_long_stop():
    """A valid program (3000 ug/day at 500 ug/mL) stopped for 180 days forfeits
    more than 2**30 nL; the schedule keeps it as strokes plus a remainder."""
    rate = 3000 * 1_000_000 // 500
    s = const_schedule(rate)
    for _ in range(DAYS * 144):
        s.advance(600_000, 0, False)
        s.forfeit()
        assert_small(s)
    # whole nL only: each forfeit() drops the fraction of a nL still accruing
    assert rate * DAYS - DAYS * 144 <= s.forfeited_nl() <= rate * DAYS
    assert s.forfeited_nl() >= SMALL                # the case the split exists for


# --- take / give_back / refuse -------------------------------------------------

owed_vectors = st.lists(st.integers(0, 3 * STROKE), min_size=5, max_size=5)


@given(owed=owed_vectors, bridge_left=st.integers(0, 10 * STROKE))
def test_take_attributes_to_the_largest_and_borrows_the_rest(owed, bridge_left):
    s = Schedule(STROKE)
    s.owed = list(owed)
    s.bridge_left_nl = bridge_left
    total = sum(owed)
    if total < STROKE:
        return
    kind = s.take()
    assert owed[kind] == max(owed) and kind == owed.index(max(owed))
    assert sum(s.owed) == total - STROKE
    assert all(v >= 0 for v in s.owed)
    # nothing was added anywhere; only the chosen kind can have lost more than it
    for k in range(5):
        assert s.owed[k] <= owed[k]
    if kind == BRIDGE:
        assert s.bridge_left_nl == max(0, bridge_left - STROKE)
    else:
        assert s.bridge_left_nl == bridge_left
    # a stalled stroke is given back to the kind it was counted as
    s.give_back(kind)
    assert sum(s.owed) == total


@given(owed=owed_vectors)
def test_refuse_forfeits_one_stroke(owed):
    s = Schedule(STROKE)
    s.owed = list(owed)
    total = sum(owed)
    s.refuse()
    gone = min(total, STROKE)
    assert sum(s.owed) == total - gone
    assert s.forfeited_nl() == gone
    assert all(0 <= s.owed[k] <= owed[k] for k in range(5))


def test_take_with_bolus_and_basal():
    s = Schedule(STROKE)
    s.owed = [100, 200, 0, 0, 0]
    assert s.take() == BOLUS
    assert s.owed == [50, 0, 0, 0, 0]


# --- when to wake ---------------------------------------------------------------

def test_ms_until_due_nothing_owed_ever():
    s = Schedule(STROKE)
    assert s.ms_until_due(0) is None
    s.set_program(ConstProgram(0), 0)
    assert s.ms_until_due(0) is None


def test_ms_until_due_zero_when_a_stroke_is_owed():
    s = const_schedule(1000)
    s.owed[BASAL] = STROKE
    assert s.ms_until_due(0) == 0


@given(rate=st.integers(1, MAX_RATE), pre_ms=st.integers(0, 3 * 3_600_000))
def test_waking_at_ms_until_due_makes_a_stroke_owed(rate, pre_ms):
    s = const_schedule(rate)
    s.advance(pre_ms, 0, True)
    drain(s)
    wakes = STROKE * DAY_S // (rate * 3600) + 3
    for _ in range(wakes):
        due = s.ms_until_due(0)
        assert due is not None and due >= 1
        capped = (due + s.ms_carry) >= 3_600_000
        early = None if capped else copy.deepcopy(s)
        s.advance(due, 0, True)
        assert s.ms_carry == 0          # a wake-up lands on a whole second
        if s.owed_total() >= STROKE:
            # and not a second later than needed
            if due > 1000 and early is not None:
                early.advance(due - 1000, 0, True)
                assert early.owed_total() < STROKE
            return
        assert capped, "woke at ms_until_due with %d of %d nL owed" % (s.owed_total(), STROKE)
    pytest.fail("no stroke owed after %d wake-ups" % wakes)


@given(rate=st.integers(1, 3_000_000), vol=st.integers(STROKE, 100_000),
       dur_min=st.integers(1, 240), pre_ms=st.integers(0, 3_600_000))
def test_waking_at_ms_until_due_with_a_bolus_makes_a_stroke_owed(rate, vol, dur_min, pre_ms):
    s = const_schedule(rate)
    s.advance(pre_ms, 0, True)
    drain(s)
    s.bolus(PATIENT).start(vol, dur_min * 60_000)
    for _ in range(200):
        due = s.ms_until_due(0)
        bolus_end = any(b.active and b.left_s * 1000 - s.ms_carry <= due for b in s.boluses)
        capped = due + s.ms_carry >= 3_600_000     # an hour is the longest sleep
        early = copy.deepcopy(s) if due > 1000 else None
        s.advance(due, 0, True)
        if not bolus_end and not capped:
            assert s.owed_total() >= STROKE
            if early is not None:                  # and not a second later than needed
                early.advance(due - 1000, 0, True)
                assert early.owed_total() < STROKE
        drain(s)


# --- flex programs: step boundaries --------------------------------------------

FLEX = {"mode": "flex", "concentration_ug_ml": 500,
        "steps": [{"start_min": 0, "daily_rate_ug": 100}, {"start_min": 480, "daily_rate_ug": 400},
                  {"start_min": 1200, "daily_rate_ug": 0}, {"start_min": 1320, "daily_rate_ug": 37}]}


def test_program_boundaries_from_validate():
    p, _ = tightest_program(FLEX, STROKE)
    assert [s for s, _ in p.steps] == [0, 480 * 60, 1200 * 60, 1320 * 60]
    assert p.rate_at(0) == 200_000 and p.rate_at(480 * 60 - 1) == 200_000
    assert p.rate_at(480 * 60) == 800_000
    assert p.rate_at(1200 * 60) == 0
    assert p.rate_at(DAY_S - 1) == 37 * 1_000_000 // 500
    assert p.next_boundary_s(0) == 480 * 60
    assert p.next_boundary_s(480 * 60) == 720 * 60
    assert p.next_boundary_s(1320 * 60) == DAY_S - 1320 * 60   # wraps to midnight
    first_late = dict(FLEX, steps=[{"start_min": 60, "daily_rate_ug": 100},
                                   {"start_min": 600, "daily_rate_ug": 200}])
    q, _ = tightest_program(first_late, STROKE)
    assert q.rate_at(0) == 400_000                 # before the first start: the last step
    assert q.next_boundary_s(700 * 60) == DAY_S - 700 * 60 + 3600


@st.composite
def flex_programs(draw):
    n = draw(st.integers(2, 6))
    starts = sorted(draw(st.sets(st.integers(0, 1439), min_size=n, max_size=n)))
    # 0, or at least a stroke an hour at 2000 ug/mL (12 ug/day): what validate() takes
    steps = [{"start_min": m, "daily_rate_ug": draw(st.one_of(st.just(0), st.integers(12, 900)))}
             for m in starts]
    if all(s["daily_rate_ug"] == 0 for s in steps):
        steps[0]["daily_rate_ug"] = 12
    conc = draw(st.sampled_from([500, 1000, 2000]))
    return {"mode": "flex", "concentration_ug_ml": conc, "steps": steps}


@settings(max_examples=min(settings().max_examples, 30))
@given(raw=flex_programs(), tod0=st.integers(0, DAY_S - 1))
def test_flex_wakes_on_every_boundary_and_totals_are_exact(raw, tod0):
    p = validate(dict(raw, max_daily_ug=6000, max_hourly_ug=6000), STROKE)
    s = Schedule(STROKE)
    s.set_program(p, tod0)
    starts = {st_ for st_, _ in p.steps}
    seen = set()
    elapsed_ms = 0
    integral = 0        # exact sum of rate * seconds, in nL*s/day
    taken = 0
    while elapsed_ms < DAY_MS + 3_600_000:
        tod = (tod0 + elapsed_ms // 1000) % DAY_S
        assert s.basal.rate == p.rate_at(tod)
        due = s.ms_until_due(tod)
        assert due is not None and 1 <= due <= 3_600_000
        nb = p.next_boundary_s(tod)
        assert due <= nb * 1000               # never sleeps over a step change
        # the rate in force now applies to the whole interval
        integral += s.basal.rate * (due // 1000)
        s.advance(due, (tod0 + (elapsed_ms + due) // 1000) % DAY_S, True)
        elapsed_ms += due
        new_tod = (tod0 + elapsed_ms // 1000) % DAY_S
        if new_tod in starts:
            seen.add(new_tod)
        assert taken + s.owed_total() == integral // DAY_S
        taken += drain(s)
        assert_small(s)
    assert seen == starts
    # the wake-ups' own bookkeeping agrees with the step function integrated directly
    assert integral == step_integral(raw, tod0, elapsed_ms // 1000)


def step_integral(raw, tod0, secs):
    """nL*s/day of a flex program dict from tod0 over secs seconds (independent of Program)."""
    conc = raw["concentration_ug_ml"]
    table = [(st_["start_min"] * 60, st_["daily_rate_ug"] * 1_000_000 // conc) for st_ in raw["steps"]]
    total = 0
    t = tod0
    left = secs
    while left > 0:
        tod = t % DAY_S
        rate = table[-1][1]
        nxt = table[0][0] + DAY_S
        for start, r in table:
            if start <= tod:
                rate = r
            else:
                nxt = start
                break
        if nxt <= tod:
            nxt += DAY_S
        span = min(left, nxt - tod)
        total += rate * span
        t += span
        left -= span
    return total


def test_bridge_uses_old_rate_until_volume_is_out():
    p, _ = tightest_program({"mode": "continuous", "concentration_ug_ml": 500,
                             "daily_dose_ug": 500}, STROKE)
    s = Schedule(STROKE)
    s.set_program(p, 0)
    s.start_bridge(1000, 2_000_000, 0)
    assert s.bridging() and s.basal.rate == 2_000_000
    s.advance(600_000, 0, True)
    assert s.owed[BRIDGE] > 0 and s.owed[BASAL] == 0
    for _ in range(4):
        assert s.take() == BRIDGE
    assert not s.bridging()
    s.advance(1000, 0, True)
    assert s.basal.rate == p.steps[0][1]
