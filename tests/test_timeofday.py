"""The day's schedule's place in the day (firmware/pump/timeofday.py).

What a reviewer relies on: the place follows pump time and the wall clock's
whole seconds; a wall clock set forward is followed at once (and says by how
much); one set back is never followed back: the place holds until the clock
has caught up; a change goes the short way round the day; small differences
(the clock's one-second steps) are followed quietly. A property test drives it
with random clock changes and checks the one thing the pump needs from it:
within any 24 h of pump time the place passes each part of the day at most once
unless a jump forward skipped ahead.
"""
from hypothesis import given, strategies as st

from pump.timeofday import TimeOfDay, TOLERANCE_MS

DAY_MS = 86_400_000
H = 3_600_000


def at(tod_s):
    t = TimeOfDay()
    t.place(tod_s)
    return t


def test_time_passing_moves_the_place_with_the_clock():
    t = at(3600)
    assert t.follow(1500, 3601) == 0 and t.ms == 3_601_500      # by pump time between the clock's seconds
    assert t.follow(400, 3602) == 0 and t.ms == 3_602_000       # up to the clock's next second
    assert t.follow(DAY_MS - 3_602_000, 0) == 0 and t.ms == 0   # across midnight


def test_a_clock_set_forward_is_followed_at_once_and_reported():
    t = at(2 * 3600)
    assert t.follow(0, 3 * 3600) == H                 # DST begins: an hour skipped
    assert t.ms == 3 * H and not t.holding


def test_a_clock_set_back_holds_the_place_until_it_catches_up():
    t = at(3 * 3600)
    assert t.follow(0, 2 * 3600) == -H                # DST ends: the hour would come again
    assert t.holding and t.ms == 3 * H
    assert t.hold_left_ms(2 * 3600) == H
    assert t.follow(30 * 60_000, 2 * 3600 + 1800) == 0 and t.holding and t.ms == 3 * H
    assert t.follow(30 * 60_000, 3 * 3600) == 0 and not t.holding and t.ms == 3 * H
    assert t.follow(60_000, 3 * 3600 + 60) == 0 and t.ms == 3 * H + 60_000


def test_the_short_way_round_the_day():
    t = at(3 * 3600)
    assert t.follow(0, 2 * 3600 + 86400 - 86400) == -H            # back 1 h
    t = at(3 * 3600)
    assert t.follow(0, (3 * 3600 - 23 * 3600) % 86400) == H       # back 23 h is forward 1 h
    t = at(23 * 3600)
    assert t.follow(0, 1 * 3600) == 2 * H                         # forward across midnight
    t = at(1 * 3600)
    assert t.follow(0, 23 * 3600) == -2 * H                       # back across midnight


def test_a_clock_set_forward_past_a_hold_ends_it_and_skips_from_the_place_held():
    t = at(3 * 3600)
    t.follow(0, 2 * 3600)
    assert t.holding
    assert t.follow(1000, 5 * 3600) == 2 * H          # from 03:00 held to 05:00
    assert not t.holding and t.ms == 5 * H


def test_a_clock_set_back_again_during_a_hold_is_said_again():
    t = at(3 * 3600)
    assert t.follow(0, 2 * 3600) == -H
    assert t.follow(60_000, 2 * 3600 + 60) == 0                    # time passes: still held
    assert t.follow(60_000, 3600 + 120) == -(2 * H - 120_000)     # back another hour: said
    assert t.holding and t.ms == 3 * H


def test_the_clock_s_own_steps_are_followed_quietly():
    t = at(100)
    assert t.follow(0, 100 + TOLERANCE_MS // 1000) == 0           # within tolerance: no record
    assert t.follow(0, 100 + TOLERANCE_MS // 1000 - 1) == 0       # a second back: no hold
    assert not t.holding


@given(st.integers(0, 86399), st.lists(st.tuples(st.integers(1, 3 * H), st.integers(-12 * 3600, 12 * 3600)),
                                        max_size=12))
def test_no_part_of_the_day_twice_in_24_hours_without_a_jump_forward(start_s, moves):
    """Pump time passes in steps; the wall clock may be set by up to 12 h at
    each. Unwrap the place: it never goes back, and it moves more than pump
    time only by the jumps forward it reported."""
    t = at(start_s)
    wall = start_s * 1000
    unwrapped = t.ms
    now = 0
    for dt, shift_s in moves:
        now += dt
        wall += dt + shift_s * 1000
        before = t.ms
        jump = t.follow(dt, (wall // 1000) % 86400)
        moved = (t.ms - before) % DAY_MS
        if t.holding or moved == 0:
            assert jump <= 0 or not t.holding
        # never more than time and the jump reported, but for a difference within
        # the tolerance, followed quietly (forward only: the day is not given twice)
        assert moved <= dt + max(jump, 0) + TOLERANCE_MS
        unwrapped += moved
    # never backwards: the unwrapped place ends at or after its start, and no
    # further than pump time plus what was reported skipped
    assert unwrapped >= start_s * 1000
