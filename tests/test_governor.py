"""Unit tests for pump.governor: hard caps on sliding 24 h / 1 h windows.

The brute-force oracle keeps the exact time of every recorded stroke and counts
them in every sliding window (t-24h, t] and (t-1h, t]; it never looks at slots.
"""
import random
from array import array
from bisect import bisect_right

import pytest
from hypothesis import given, settings, strategies as st

from conftest import sim_profile
from pump import governor as G
from pump.governor import Governor, Window, OK, CAP_DAILY, CAP_HOURLY, RESERVOIR, VOLUME, NO_LIMITS
from pump.schedule import Schedule
from pump.units import DAY_MS, HOUR_MS, DAY_S
from unitutil import tightest_program

STROKE = sim_profile()["stroke_nl"]
BIG = 10**9


def gov(cap_day, cap_hour):
    g = Governor(STROKE)
    g.set_limits(cap_day * STROKE, cap_hour * STROKE)
    return g


def at(t):
    return divmod(t, DAY_MS)


def try_stroke(g, t, remaining=BIG, empty=0):
    d, m = at(t)
    r = g.check(d, m, STROKE, remaining, empty)
    if r == OK:
        g.record(d, m)
    return r


def window_count(times, t, span):
    """Exact number of strokes with time in (t - span, t]; times sorted."""
    return bisect_right(times, t) - bisect_right(times, t - span)


# --- the simple refusals ---------------------------------------------------------

def test_refusal_order_and_reasons():
    g = Governor(STROKE)
    assert g.check(0, 0, STROKE - 1, BIG, 0) == VOLUME
    assert g.check(0, 0, STROKE * 2, BIG, 0) == VOLUME
    assert g.check(0, 0, STROKE, BIG, 0) == NO_LIMITS
    g.set_limits(10 * STROKE, 5 * STROKE)
    assert g.check(0, 0, STROKE + 1, BIG, 0) == VOLUME      # volume before anything else
    assert g.check(0, 0, STROKE, STROKE - 1, 0) == RESERVOIR
    assert g.check(0, 0, STROKE, STROKE, 0) == OK            # exactly one stroke left
    assert g.check(0, 0, STROKE, 1000 + STROKE - 1, 1000) == RESERVOIR
    assert g.check(0, 0, STROKE, 1000 + STROKE, 1000) == OK
    g.clear_limits()
    assert g.check(0, 0, STROKE, BIG, 0) == NO_LIMITS


def test_caps_floor_to_whole_strokes():
    g = Governor(STROKE)
    g.set_limits(10 * STROKE + STROKE - 1, 3 * STROKE + 1)
    assert (g.cap_day, g.cap_hour) == (10, 3)


def test_hourly_cap_then_slot_rollover():
    g = gov(100, 3)
    t0 = 5 * DAY_MS + 12_345
    for i in range(3):
        assert try_stroke(g, t0 + i) == OK
    assert try_stroke(g, t0 + 3) == CAP_HOURLY
    # still refused until the first stroke's slot has left the hour window
    assert try_stroke(g, t0 + HOUR_MS - 1) == CAP_HOURLY
    # a slot counts whole while any part of it is inside: at most one slot late
    assert try_stroke(g, t0 + HOUR_MS + G.HOUR_SLOT_MS) == OK
    assert g.day.total == 4


def test_daily_cap_then_slot_rollover():
    g = gov(5, 5)
    t0 = 3 * DAY_MS - 2 * HOUR_MS           # the window crosses midnight
    for i in range(5):
        assert try_stroke(g, t0 + i * 2 * HOUR_MS) == OK
    assert try_stroke(g, t0 + 9 * HOUR_MS) == CAP_DAILY
    assert try_stroke(g, t0 + DAY_MS - 1) == CAP_DAILY
    assert try_stroke(g, t0 + DAY_MS + G.DAY_SLOT_MS) == OK
    assert try_stroke(g, t0 + DAY_MS + G.DAY_SLOT_MS + 1) == CAP_DAILY


def test_roll_past_whole_window_empties_it():
    g = gov(100, 100)
    for i in range(50):
        try_stroke(g, i * 60_000)
    g.roll(*at(3 * DAY_MS))
    assert g.day.total == 0 and g.hour.total == 0
    assert sum(g.day.counts) == 0 and sum(g.hour.counts) == 0


def test_headroom():
    g = gov(10, 4)
    assert g.headroom_nl(0, 0) == 4 * STROKE
    try_stroke(g, 0)
    assert g.headroom_nl(0, 1) == 3 * STROKE
    assert g.headroom_nl(*at(2 * HOUR_MS)) == 4 * STROKE   # min(day 9, hour 4)
    g.set_limits(10 * STROKE, 10 * STROKE)
    assert g.headroom_nl(*at(2 * HOUR_MS)) == 9 * STROKE


def test_slot_index_is_continuous_across_days():
    for w in (Governor(STROKE).day, Governor(STROKE).hour):
        assert w.index(1, 0) == w.index(0, DAY_MS - 1) + 1
        assert w.per_day * w.slot_ms == DAY_MS
    assert G.DAY_SLOTS * G.DAY_SLOT_MS >= DAY_MS + G.DAY_SLOT_MS
    assert G.HOUR_SLOTS * G.HOUR_SLOT_MS >= HOUR_MS + G.HOUR_SLOT_MS


# --- conservativeness: brute force ---------------------------------------------------

gaps = st.one_of(st.integers(0, 2_000), st.integers(0, 120_000), st.integers(0, 900_000),
                 st.integers(0, 4 * HOUR_MS), st.integers(0, 30 * HOUR_MS))


@given(cap_day=st.integers(1, 40), cap_hour=st.integers(1, 40), t0=st.integers(0, 400 * DAY_MS),
       steps=st.lists(gaps, min_size=1, max_size=300))
def test_never_over_cap_in_any_sliding_window(cap_day, cap_hour, t0, steps):
    cap_hour = min(cap_hour, cap_day)
    g = gov(cap_day, cap_hour)
    times = []
    t = t0
    for gap in steps:
        t += gap
        if try_stroke(g, t) == OK:
            times.append(t)
            # the window sums only change at a stroke: checking at each one covers all t
            assert window_count(times, t, DAY_MS) <= cap_day
            assert window_count(times, t, HOUR_MS) <= cap_hour
        assert g.day.total == sum(g.day.counts)
        assert g.hour.total == sum(g.hour.counts)


@given(seed=st.integers(0, 2**32 - 1), cap_day=st.integers(20, 200))
def test_never_over_cap_dense_random_attempts(seed, cap_day):
    """Attempts packed as tightly as the motor allows, over three days."""
    rng = random.Random(seed)
    cap_hour = rng.randint(1, cap_day)
    g = gov(cap_day, cap_hour)
    times = []
    t = rng.randint(0, 50 * DAY_MS)
    end = t + 3 * DAY_MS
    while t < end:
        t += rng.choice([200, 1000, 10_000, 60_000, 600_000, 3 * HOUR_MS])
        if try_stroke(g, t) == OK:
            times.append(t)
            assert window_count(times, t, DAY_MS) <= cap_day
            assert window_count(times, t, HOUR_MS) <= cap_hour


# --- liveness -----------------------------------------------------------------------

@settings(max_examples=min(settings().max_examples, 25))
@given(ug=st.integers(20, 900), conc=st.sampled_from([500, 1000, 2000]),
       phase=st.integers(0, DAY_MS - 1), start_day=st.integers(0, 200))
def test_evenly_spaced_strokes_at_the_program_rate_are_all_allowed(ug, conc, phase, start_day):
    p, _ = tightest_program({"mode": "continuous", "concentration_ug_ml": conc,
                             "daily_dose_ug": ug}, STROKE)
    g = Governor(STROKE)
    g.set_limits(p.max_daily_nl, p.max_hourly_nl)
    rate = p.steps[0][1]
    t0 = start_day * DAY_MS + phase
    n = 2 * rate // STROKE + 50          # two days and a bit
    for k in range(n):
        t = t0 + k * STROKE * DAY_MS // rate
        assert try_stroke(g, t) == OK, "stroke %d of %d refused" % (k, n)


@st.composite
def flex_raw(draw):
    n = draw(st.integers(1, 5))
    starts = sorted(draw(st.sets(st.integers(0, 1439), min_size=n, max_size=n)))
    # 0, or at least a stroke an hour at 2000 ug/mL (12 ug/day): what validate() takes
    steps = [{"start_min": m, "daily_rate_ug": draw(st.one_of(st.just(0), st.integers(12, 900)))}
             for m in starts]
    if not any(s["daily_rate_ug"] for s in steps):
        steps[0]["daily_rate_ug"] = 50
    return {"mode": "flex", "concentration_ug_ml": draw(st.sampled_from([1000, 2000])), "steps": steps}


@settings(max_examples=min(settings().max_examples, 20))
@given(raw=flex_raw(), tod0=st.integers(0, DAY_S - 1))
def test_schedule_driven_flex_strokes_are_all_allowed(raw, tod0):
    """The schedule (an independent piece of code) drives strokes for a program with
    the least headroom validation accepts: the governor never refuses one."""
    p, _ = tightest_program(raw, STROKE)
    g = Governor(STROKE)
    g.set_limits(p.max_daily_nl, p.max_hourly_nl)
    s = Schedule(STROKE)
    s.set_program(p, tod0)
    t = 0
    while t < 2 * DAY_MS:
        due = s.ms_until_due((tod0 + t // 1000) % DAY_S)
        t += due
        s.advance(due, (tod0 + t // 1000) % DAY_S, True)
        while s.owed_total() >= STROKE:
            assert try_stroke(g, t) == OK
            s.take()


# --- rescale, restore -------------------------------------------------------------

@given(counts=st.lists(st.integers(0, 0xFFFF), min_size=G.HOUR_SLOTS, max_size=G.HOUR_SLOTS),
       num=st.integers(1, 3000), den=st.integers(1, 3000))
def test_rescale_rounds_every_run_ending_at_the_newest_slot_up_once(counts, num, den):
    """The windows the governor will check are runs of slots ending at the newest.
    After a change of strength each such run must hold at least its exact volume
    in the new strokes (never under-count: I2) and less than one stroke more (or
    the governor refuses strokes the program is owed)."""
    w = Window(G.HOUR_SLOTS, G.HOUR_SLOT_MS, 8640)
    w.counts = array("H", counts)
    w.head = len(counts) - 1 + w.n * 3          # any absolute position
    w.rescale(num, den)
    n = len(counts)
    old_run = new_run = 0
    for k in range(n):                           # slots from the newest back
        j = (w.head - k) % w.n
        old_run += counts[j]
        new_run += w.counts[j]
        exact = old_run * num
        if exact <= 0xFFFF * den:
            assert new_run * den >= exact, (k, new_run, exact / den)
            assert (new_run - 1) * den < exact, (k, new_run, exact / den)
    assert w.total == sum(w.counts)


def test_rescale_examples():
    w = Window(4, 1000, 86400)
    w.counts = array("H", [1, 2, 3, 0])
    w.head = 3                                   # newest slot is index 3
    w.rescale(3, 2)
    # runs from the newest: 0, 3 -> 4.5, 5 -> 7.5, 6 -> 9: rounded up 0, 5, 8, 9
    assert list(w.counts) == [1, 3, 5, 0] and w.total == 9
    w.rescale(1, 4)
    # runs: 0, 5 -> 1.25, 8 -> 2, 9 -> 2.25: rounded up 0, 2, 2, 3
    assert list(w.counts) == [1, 0, 2, 0] and w.total == 3


def test_rescale_after_a_concentration_doubling_does_not_double_the_hour():
    """One old-strength stroke in each of 60 ten-second slots is 30 strokes of the
    double strength, not 60 (rounding every slot up on its own gave 60)."""
    w = Window(G.HOUR_SLOTS, G.HOUR_SLOT_MS, 8640)
    w.head = 500
    for k in range(60):
        w.counts[(w.head - 2 * k) % w.n] = 1
    w.total = 60
    w.rescale(1, 2)
    assert w.total == 30


@given(times=st.lists(st.integers(0, 6 * HOUR_MS), min_size=1, max_size=80),
       later=st.lists(st.integers(0, 30 * HOUR_MS), min_size=1, max_size=20),
       start=st.integers(0, 100 * DAY_MS))
def test_restore_via_dump_and_load_gives_the_same_decisions(times, later, start):
    g = gov(30, 8)
    for t in sorted(times):
        try_stroke(g, start + t)
    last = start + max(times)
    h = Governor(STROKE)
    h.set_limits(30 * STROKE, 8 * STROKE)
    h.day.load(g.day.head, g.day.dump())
    h.hour.load(g.hour.head, g.hour.dump())
    assert (h.day.total, h.hour.total) == (g.day.total, g.hour.total)
    assert list(h.day.counts) == list(g.day.counts)
    t = last
    for gap in later:
        t += gap
        assert try_stroke(h, t) == try_stroke(g, t)
        assert (h.day.total, h.hour.total) == (g.day.total, g.hour.total)


def test_fill_newest_counts_as_the_most_recent():
    g = gov(10, 10)
    g.roll(*at(DAY_MS))
    g.day.fill_newest(0xFFFF)
    g.hour.fill_newest(0xFFFF)
    assert try_stroke(g, DAY_MS + 1) == CAP_DAILY
    assert try_stroke(g, DAY_MS + 2 * HOUR_MS) == CAP_DAILY     # hour window moved on, day not
    assert try_stroke(g, 2 * DAY_MS + G.DAY_SLOT_MS) == OK


def test_window_arrays_are_unsigned_16_bit():
    g = Governor(STROKE)
    assert g.day.counts.format == "H" and len(g.day.counts) == G.DAY_SLOTS
    assert len(g.day.dump()) == 2 * G.DAY_SLOTS
    assert len(g.hour.dump()) == 2 * G.HOUR_SLOTS


def test_windows_in_shared_memory_keep_their_own_slots():
    # the pump keeps both windows inside the window record's frame: one u16
    # array, day slots then hour slots, after a header the windows never touch
    mem = array("H", bytes(2 * (10 + G.DAY_SLOTS + G.HOUR_SLOTS + 2)))
    g = Governor(STROKE, mem, 10)
    g.set_limits(10 ** 9, 10 ** 9)
    for k in range(50):
        g.record(0, k * 7000)
    assert sum(mem[:10]) == 0 and sum(mem[-2:]) == 0
    assert sum(mem[10:10 + G.DAY_SLOTS]) == 50 == g.day.total
    assert sum(mem[10 + G.DAY_SLOTS:10 + G.DAY_SLOTS + G.HOUR_SLOTS]) == 50 == g.hour.total
    # a load copies into those same slots
    h = Governor(STROKE)
    h.day.load(g.day.head, g.day.dump())
    assert list(h.day.counts) == list(g.day.counts)
    g.day.load(0, bytes(2 * G.DAY_SLOTS))
    assert sum(mem[10:10 + G.DAY_SLOTS]) == 0 and g.day.total == 0
