"""Unit tests for pump.monotime: wrapping ticks -> non-wrapping pump time.

The oracle here is exact Python arithmetic on the true elapsed milliseconds;
the tick counter the pump sees is that count plus an offset, masked to 30 bits.
"""
import random

import pytest
from hypothesis import given, strategies as st

from pump.monotime import PumpTime, ticks_diff, TICKS_MASK, TICKS_HALF, TICKS_PERIOD
from pump.units import DAY_MS

SMALL = 1 << 30   # every value the hot path keeps must stay below this


def ticks(true_ms, start):
    return (true_ms + start) & TICKS_MASK


# --- ticks_diff ---------------------------------------------------------------

def test_constants():
    assert TICKS_PERIOD == 1 << 30
    assert TICKS_MASK == TICKS_PERIOD - 1
    assert TICKS_HALF == TICKS_PERIOD // 2


@pytest.mark.parametrize("old,new,expect", [
    (0, 0, 0),
    (0, 1, 1),
    (1, 0, -1),
    (TICKS_MASK, 0, 1),                 # wrap by one
    (TICKS_MASK - 4, 5, 10),            # across the wrap forward
    (5, TICKS_MASK - 4, -10),           # across the wrap backward
    (0, TICKS_HALF - 1, TICKS_HALF - 1),  # the largest unambiguous forward step
    (0, TICKS_HALF, -TICKS_HALF),       # half a period is read as backward (as time.ticks_diff)
    (TICKS_HALF, 0, -TICKS_HALF),
])
def test_ticks_diff_examples(old, new, expect):
    assert ticks_diff(new, old) == expect


@given(old=st.integers(0, TICKS_MASK), delta=st.integers(-TICKS_HALF, TICKS_HALF - 1))
def test_ticks_diff_recovers_every_delta_in_range(old, delta):
    new = (old + delta) & TICKS_MASK
    d = ticks_diff(new, old)
    assert d == delta
    assert -TICKS_HALF <= d < TICKS_HALF


@given(old=st.integers(0, TICKS_MASK), new=st.integers(0, TICKS_MASK))
def test_ticks_diff_is_antisymmetric_except_at_half(old, new):
    d = ticks_diff(new, old)
    assert -TICKS_HALF <= d < TICKS_HALF
    assert (old + d) & TICKS_MASK == new
    if d != -TICKS_HALF:
        assert ticks_diff(old, new) == -d


# --- PumpTime ---------------------------------------------------------------

def check_small(t):
    assert 0 <= t.ms < DAY_MS
    assert 0 <= t.day < SMALL
    assert t.ms < SMALL
    if t._last_ticks is not None:
        assert 0 <= t._last_ticks < SMALL


def test_first_sync_only_anchors():
    t = PumpTime()
    assert t.sync(12345) == 0
    assert (t.day, t.ms) == (0, 0)
    assert t.sync(12345 + 700) == 700
    assert (t.day, t.ms) == (0, 700)


def test_backward_ticks_never_rewind():
    t = PumpTime()
    t.sync(1000)
    t.sync(5000)
    assert t.sync(4000) == 0          # the source went back: ignored
    assert (t.day, t.ms) == (0, 4000)
    assert t.sync(4000) == 0          # no time passed
    assert t.sync(4500) == 500        # continues from the last reading
    assert (t.day, t.ms) == (0, 4500)


def test_exact_day_boundary():
    t = PumpTime(0, DAY_MS - 1)
    t.add(1)
    assert (t.day, t.ms) == (1, 0)
    t.add(DAY_MS)
    assert (t.day, t.ms) == (2, 0)
    t.add(3 * DAY_MS + 5)            # several days in one step
    assert (t.day, t.ms) == (5, 5)


def test_sync_across_wrap():
    start = TICKS_MASK - 999
    t = PumpTime()
    t.sync(ticks(0, start))
    assert t.sync(ticks(1000, start)) == 1000   # now exactly at 0 ticks
    assert t.sync(ticks(2500, start)) == 1500
    assert (t.day, t.ms) == (0, 2500)


@pytest.mark.parametrize("start", [0, 1, TICKS_MASK, TICKS_MASK - 5000, TICKS_HALF, 123456789])
def test_sync_at_largest_allowed_steps_for_months(start):
    """Readings every 2**29 - 1 ms (just over 6 days) for 200 days: exact, no wrap error."""
    step = TICKS_HALF - 1
    t = PumpTime()
    t.sync(ticks(0, start))
    now = 0
    while now < 200 * DAY_MS:
        now += step
        assert t.sync(ticks(now, start)) == step
        assert t.day * DAY_MS + t.ms == now
        check_small(t)


@st.composite
def irregular_deltas(draw):
    """A seed and a mixture of wake-up spacings, from 1 ms to just over 6 days."""
    seed = draw(st.integers(0, 2**32 - 1))
    weights = draw(st.lists(st.integers(0, 10), min_size=5, max_size=5).filter(any))
    return seed, weights


def gen_deltas(seed, weights, total_ms):
    rng = random.Random(seed)
    kinds = [
        lambda: rng.randint(1, 3),                         # a burst of commands
        lambda: rng.randint(1, 1000),                      # strokes / retries
        lambda: rng.randint(1000, 600000),                 # a normal sleep
        lambda: rng.randint(600000, DAY_MS),               # a long quiet spell
        lambda: rng.randint(DAY_MS, TICKS_HALF - 1),       # the longest readable gap
    ]
    now = 0
    out = []
    while now < total_ms:
        k = rng.choices(range(5), weights)[0]
        d = kinds[k]()
        # keep the number of wake-ups bounded: at most ~4000 per run
        if total_ms // 4000 > d and rng.random() < 0.9:
            d = rng.randint(d, total_ms // 2000)
        out.append(d)
        now += d
    return out


@given(start=st.integers(0, TICKS_MASK), day0=st.integers(0, 3), ms0=st.integers(0, DAY_MS - 1),
       mix=irregular_deltas())
def test_pumptime_200_days_irregular_matches_exact(start, day0, ms0, mix):
    seed, weights = mix
    t = PumpTime(day0, ms0)
    base = day0 * DAY_MS + ms0
    t.sync(ticks(0, start))
    now = 0
    for d in gen_deltas(seed, weights, 200 * DAY_MS):
        now += d
        assert t.sync(ticks(now, start)) == d
        assert t.day * DAY_MS + t.ms == base + now
        assert divmod(base + now, DAY_MS) == (t.day, t.ms)
        check_small(t)
    assert t.day >= 200


@given(d0=st.integers(0, 400), m0=st.integers(0, DAY_MS - 1),
       back=st.integers(0, 11 * DAY_MS))
def test_since_is_exact_for_short_spans(d0, m0, back):
    now = d0 * DAY_MS + m0 + back
    t = PumpTime(*divmod(now, DAY_MS))
    assert t.since(d0, m0) == back


def test_restore_resumes_from_saved_time_and_drops_off_time():
    start = TICKS_MASK - 10
    t = PumpTime()
    t.sync(ticks(0, start))
    t.sync(ticks(5 * DAY_MS + 123, start))
    saved = (t.day, t.ms)
    # a reset: a new PumpTime restored from storage; the ticks counter went on
    # (or restarted) while the pump was off: that time is not pump time
    t2 = PumpTime()
    t2.restore(*saved)
    assert (t2.day, t2.ms) == saved
    assert t2.sync(ticks(9 * DAY_MS, start)) == 0     # first reading only anchors
    assert (t2.day, t2.ms) == saved
    assert t2.sync(ticks(9 * DAY_MS + 2000, start)) == 2000
    assert t2.day * DAY_MS + t2.ms == 5 * DAY_MS + 123 + 2000


def test_restore_forgets_previous_anchor():
    t = PumpTime()
    t.sync(100)
    t.sync(200)
    t.restore(3, 7)
    # a stale anchor would turn this into a huge (or negative) delta
    assert t.sync(TICKS_MASK) == 0
    assert (t.day, t.ms) == (3, 7)
    assert t.sync(5) == 6       # across the wrap
    assert (t.day, t.ms) == (3, 13)
