"""Unit tests for the small supervisors: alarms, catheter, battery, motor, reservoir.

These are the pieces behind invariant I7 (every hazard raises its alarm within
its stated time) and part of I5 (the reservoir never goes negative, no stroke
with an empty reservoir). Each module is driven directly, with a virtual clock
for the alarms, and where a property is natural it is checked against a small
independent model written here (absolute times / sliding windows instead of
the firmware's counters).
"""
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st

from conftest import sim_profile
from pump import alarms as A
from pump.alarms import (Alarms, TWO_TONE, SINGLE_TONE, REPEAT_CRITICAL_MS, REPEAT_NONCRITICAL_MS,
                         SILENCE_CRITICAL_MS, SILENCE_NONCRITICAL_MS)
from pump import catheter as C
from pump.catheter import Catheter, OCCLUDED, CLEARED, LEAK, LEAK_CLEARED
from pump.battery import BatteryMonitor, OK as B_OK, ERI as B_ERI, EOS as B_EOS
from pump.motor import MotorSupervisor, COMPLETED, STALLED, RETRY, GIVE_UP
from pump.reservoir import Reservoir, REFILL_OK, REFILL_DISCREPANCY

P = sim_profile()
HOUR = 3600000
DAY = 24 * HOUR

CRIT = A.OCCLUSION          # a critical alarm
CRIT2 = A.MOTOR_STALL       # another critical one
NONCRIT = A.LOW_RESERVOIR   # a non-critical one
NONCRIT2 = A.BATTERY_ERI


# =============================================================================
# Alarms
# =============================================================================

class FakeAnnunciator:
    """Records every sound as (virtual time ms, pattern)."""

    def __init__(self):
        self.now = 0
        self.sounds = []

    def sound(self, pattern):
        self.sounds.append((self.now, pattern))


class Rig:
    """Alarms on a virtual clock: time only moves through annunciate(dt), so
    raise/clear/silence always happen at the instant of the last annunciation."""

    def __init__(self):
        self.ann = FakeAnnunciator()
        self.al = Alarms(self.ann)
        self.t = 0

    def advance(self, dt):
        self.t += dt
        self.ann.now = self.t
        return self.al.annunciate(dt)

    def sounds_since(self, t0):
        return [s for s in self.ann.sounds if s[0] >= t0]

    def follow(self, until):
        """Sleep exactly as long as annunciate says, as the controller does,
        until virtual time `until`; returns the (time, pattern) sounds heard."""
        t0 = self.t
        n0 = len(self.ann.sounds)
        nxt = self.advance(0)
        while True:
            step = until - self.t if nxt is None else min(nxt, until - self.t)
            if step <= 0:
                break
            nxt = self.advance(step)
        assert self.t == until
        return [s for s in self.ann.sounds[n0:] if s[0] >= t0]

    def tick(self, until, step):
        """Wake every `step` ms (fine polling) until `until`."""
        n0 = len(self.ann.sounds)
        while self.t < until:
            self.advance(min(step, until - self.t))
        return self.ann.sounds[n0:]


def test_alarm_tables_have_one_entry_per_code():
    assert len(A.NAMES) == A.N_ALARMS
    assert len(A.CRITICAL) == A.N_ALARMS
    assert len(A.LATCHED) == A.N_ALARMS
    codes = [A.LOW_RESERVOIR, A.RESERVOIR_EMPTY, A.OCCLUSION, A.MOTOR_STALL, A.BATTERY_ERI,
             A.BATTERY_EOS, A.STORAGE_CORRUPT, A.WATCHDOG_RESET, A.CATHETER_LEAK,
             A.REFILL_DISCREPANCY, A.DOSE_LIMIT, A.PROGRAM_REQUIRED, A.INTERNAL_FAULT,
             A.FREQUENT_RESETS]
    assert sorted(codes) == list(range(1, A.N_ALARMS))
    assert A.name(A.OCCLUSION) == "occlusion"
    assert A.name(A.BATTERY_EOS) == "battery_eos"
    assert A.name(0) == "alarm_0" and A.name(A.N_ALARMS) == "alarm_%d" % A.N_ALARMS
    assert len(set(A.NAMES[1:])) == A.N_ALARMS - 1


def test_hazards_that_stop_delivery_are_critical_advisories_are_not():
    # An occlusion must raise a high-priority alarm (reference: pumps.md); so must
    # every condition that stops therapy.
    for code in (A.OCCLUSION, A.RESERVOIR_EMPTY, A.MOTOR_STALL, A.BATTERY_EOS,
                 A.STORAGE_CORRUPT, A.INTERNAL_FAULT):
        assert A.CRITICAL[code], A.name(code)
    # advisories: therapy continues, one-second single tone
    for code in (A.LOW_RESERVOIR, A.BATTERY_ERI, A.CATHETER_LEAK):
        assert not A.CRITICAL[code], A.name(code)
    # a stopped motor or a corrupt store must stay announced until a clinician sees it
    assert A.LATCHED[A.MOTOR_STALL] and A.LATCHED[A.STORAGE_CORRUPT]


def test_raise_clear_codes_and_priority():
    r = Rig()
    al = r.al
    assert al.codes() == [] and not al.any_critical()
    assert al.raise_(NONCRIT) is True
    assert al.raise_(NONCRIT) is False          # already active
    assert not al.any_critical()
    assert al.raise_(CRIT) is True
    assert al.any_critical()
    assert al.codes() == sorted([NONCRIT, CRIT])
    assert al.clear(CRIT) is True
    assert al.clear(CRIT) is False              # no longer active
    assert not al.any_critical()
    assert al.codes() == [NONCRIT]
    assert al.clear(A.OCCLUSION) is False
    assert al.clear(NONCRIT) is True
    assert al.codes() == []


def test_nothing_active_sounds_nothing_and_returns_none():
    r = Rig()
    assert r.advance(0) is None
    assert r.advance(DAY) is None
    assert r.ann.sounds == []


def test_critical_sounds_two_tone_at_once_then_every_repeat():
    r = Rig()
    r.advance(12345)
    r.al.raise_(CRIT)
    nxt = r.advance(0)
    assert r.ann.sounds == [(12345, TWO_TONE)]
    assert nxt == REPEAT_CRITICAL_MS
    heard = r.follow(12345 + 5 * REPEAT_CRITICAL_MS)
    assert heard == [(12345 + k * REPEAT_CRITICAL_MS, TWO_TONE) for k in range(1, 6)]


def test_critical_alarm_raised_between_wakes_sounds_at_the_next_wake():
    r = Rig()
    r.al.raise_(CRIT)
    assert r.advance(700) == REPEAT_CRITICAL_MS
    assert r.ann.sounds == [(700, TWO_TONE)]


def test_noncritical_sounds_single_tone_at_once_then_every_repeat():
    r = Rig()
    r.al.raise_(NONCRIT)
    heard = r.follow(4 * REPEAT_NONCRITICAL_MS)
    assert heard == [(k * REPEAT_NONCRITICAL_MS, SINGLE_TONE) for k in range(0, 5)]


def test_fine_polling_sounds_exactly_on_the_repeat_grid_never_more_often():
    r = Rig()
    r.al.raise_(CRIT)
    r.advance(0)
    r.tick(3 * REPEAT_CRITICAL_MS + 1, 1000)
    assert r.ann.sounds == [(k * REPEAT_CRITICAL_MS, TWO_TONE) for k in range(0, 4)]
    # one ms before the next repeat: nothing; at it: the sound
    r2 = Rig()
    r2.al.raise_(CRIT)
    r2.advance(0)
    assert r2.advance(REPEAT_CRITICAL_MS - 1) == 1
    assert len(r2.ann.sounds) == 1
    assert r2.advance(1) == REPEAT_CRITICAL_MS
    assert r2.ann.sounds[-1] == (REPEAT_CRITICAL_MS, TWO_TONE)


@given(st.lists(st.integers(1, 2 * REPEAT_CRITICAL_MS), min_size=1, max_size=60),
       st.sampled_from([CRIT, NONCRIT]))
def test_any_wake_pattern_sounds_at_first_wake_after_due_and_never_more_often(steps, code):
    rep = REPEAT_CRITICAL_MS if A.CRITICAL[code] else REPEAT_NONCRITICAL_MS
    r = Rig()
    r.al.raise_(code)
    wakes = [0]
    r.advance(0)
    for s in steps:
        r.advance(s)
        wakes.append(r.t)
    times = [t for t, _ in r.ann.sounds]
    pat = TWO_TONE if A.CRITICAL[code] else SINGLE_TONE
    assert all(p == pat for _, p in r.ann.sounds)
    assert times[0] == 0
    for a, b in zip(times, times[1:]):
        assert b - a >= rep                        # never more often
        # sounds at the first wake at or after it was due: no skipped opportunity
        first = min(w for w in wakes if w >= a + rep)
        assert b == first
    # and not a due sound was missed after the last one
    assert not any(w >= times[-1] + rep for w in wakes)


@pytest.mark.parametrize("crit", [c for c in range(1, A.N_ALARMS) if A.CRITICAL[c]])
def test_critical_and_noncritical_due_together_sound_the_critical_pattern_once(crit):
    # whatever the codes' order, the critical pattern wins
    for nc in [c for c in range(1, A.N_ALARMS) if not A.CRITICAL[c]]:
        r = Rig()
        r.al.raise_(nc)
        r.al.raise_(crit)
        r.advance(0)
        assert r.ann.sounds == [(0, TWO_TONE)], (A.name(crit), A.name(nc))
    # the non-critical one alone due later sounds the single tone
    r2 = Rig()
    r2.al.raise_(CRIT)
    r2.advance(0)
    r2.advance(1000)
    r2.al.raise_(NONCRIT)
    r2.advance(0)
    assert r2.ann.sounds == [(0, TWO_TONE), (1000, SINGLE_TONE)]


def test_silenced_critical_is_quiet_for_the_timeout_then_sounds_again():
    r = Rig()
    r.al.raise_(CRIT)
    r.advance(0)
    r.advance(5000)
    assert r.al.silence() == 1
    t_s = r.t
    nxt = r.advance(0)
    assert nxt == SILENCE_CRITICAL_MS
    assert r.advance(SILENCE_CRITICAL_MS - 1) == 1
    assert r.sounds_since(t_s) == []
    assert r.advance(1) == REPEAT_CRITICAL_MS
    assert r.sounds_since(t_s) == [(t_s + SILENCE_CRITICAL_MS, TWO_TONE)]
    # then the normal repeat resumes
    heard = r.follow(t_s + SILENCE_CRITICAL_MS + 2 * REPEAT_CRITICAL_MS)
    assert [t for t, _ in heard] == [t_s + SILENCE_CRITICAL_MS + k * REPEAT_CRITICAL_MS
                                     for k in (1, 2)]


def test_silenced_critical_quiet_under_fine_polling_too():
    r = Rig()
    r.al.raise_(CRIT)
    r.advance(0)
    r.al.silence()
    heard = r.tick(SILENCE_CRITICAL_MS - 1, 10000)
    assert heard == []
    heard = r.tick(SILENCE_CRITICAL_MS + 10000, 10000)
    assert [p for _, p in heard] == [TWO_TONE]
    assert heard[0][0] - SILENCE_CRITICAL_MS < 10000


def test_silenced_noncritical_is_quiet_for_24h_then_sounds_again():
    r = Rig()
    r.al.raise_(NONCRIT)
    r.advance(0)
    r.al.silence()
    heard = r.follow(SILENCE_NONCRITICAL_MS - 1)
    assert heard == []
    heard = r.follow(SILENCE_NONCRITICAL_MS)
    assert heard == [(SILENCE_NONCRITICAL_MS, SINGLE_TONE)]


def test_silence_counts_active_alarms_each_with_its_own_timeout():
    r = Rig()
    assert r.al.silence() == 0
    r.al.raise_(CRIT)
    r.al.raise_(NONCRIT)
    r.advance(0)
    assert r.al.silence() == 2
    heard = r.follow(SILENCE_CRITICAL_MS + HOUR)
    # only the critical one's silence has run out: two-tone from then on
    assert heard == [(SILENCE_CRITICAL_MS + k * REPEAT_CRITICAL_MS, TWO_TONE) for k in range(0, 7)]
    # the critical one goes away; the non-critical one keeps its 24 h silence
    r.al.clear(CRIT)
    assert r.follow(SILENCE_NONCRITICAL_MS - 1) == []
    assert r.follow(SILENCE_NONCRITICAL_MS) == [(SILENCE_NONCRITICAL_MS, SINGLE_TONE)]


def test_new_alarm_sounds_at_once_while_others_are_silenced():
    r = Rig()
    r.al.raise_(CRIT)
    r.advance(0)
    r.al.silence()
    r.advance(60000)
    r.al.raise_(NONCRIT)
    r.advance(0)
    assert r.sounds_since(1) == [(60000, SINGLE_TONE)]
    r.advance(60000)
    r.al.raise_(CRIT2)
    r.advance(0)
    assert r.sounds_since(1) == [(60000, SINGLE_TONE), (120000, TWO_TONE)]
    # a new alarm does not cancel the silence of the first one
    r2 = Rig()
    r2.al.raise_(CRIT)
    r2.advance(0)
    r2.al.silence()
    r2.advance(1000)
    r2.al.raise_(CRIT2)
    r2.advance(0)
    r2.al.clear(CRIT2)
    assert r2.follow(SILENCE_CRITICAL_MS - 1) == []
    assert r2.follow(SILENCE_CRITICAL_MS) == [(SILENCE_CRITICAL_MS, TWO_TONE)]


def test_re_raising_an_active_alarm_neither_resounds_nor_breaks_silence():
    # A caller may raise_ a persisting condition on every wake: that must not make
    # it sound more often, nor cut a silence short.
    r = Rig()
    r.al.raise_(CRIT)
    r.advance(0)
    for _ in range(20):
        r.advance(1000)
        assert r.al.raise_(CRIT) is False
    assert len(r.ann.sounds) == 1
    r.al.silence()
    t_s = r.t
    for _ in range(20):
        r.advance(1000)
        r.al.raise_(CRIT)
    assert r.sounds_since(t_s) == []


def test_alarm_cleared_then_raised_again_during_silence_sounds_at_once():
    r = Rig()
    r.al.raise_(CRIT)
    r.advance(0)
    r.al.silence()
    r.advance(1000)
    r.al.clear(CRIT)
    r.advance(1000)
    r.al.raise_(CRIT)
    r.advance(0)
    assert r.ann.sounds == [(0, TWO_TONE), (2000, TWO_TONE)]


def test_cleared_alarm_never_sounds_again():
    r = Rig()
    r.al.raise_(CRIT)
    r.al.raise_(NONCRIT)
    r.advance(0)
    r.advance(1000)
    r.al.clear(CRIT)
    r.al.clear(NONCRIT)
    assert r.advance(0) is None
    assert r.tick(2 * DAY, 60000) == []
    # cleared while silenced: the silence running out does not bring it back
    r2 = Rig()
    r2.al.raise_(CRIT)
    r2.advance(0)
    r2.al.silence()
    r2.advance(1000)
    r2.al.clear(CRIT)
    assert r2.advance(0) is None
    assert r2.tick(2 * DAY, 60000) == []
    assert r2.ann.sounds == [(0, TWO_TONE)]


def test_alarm_test_sounds_both_patterns_and_leaves_alarms_untouched():
    r = Rig()
    r.al.test()
    assert sorted(p for _, p in r.ann.sounds) == sorted([TWO_TONE, SINGLE_TONE])
    r.al.raise_(CRIT)
    r.advance(0)
    r.advance(1000)
    r.al.silence()
    n = len(r.ann.sounds)
    r.al.test()
    assert sorted(p for _, p in r.ann.sounds[n:]) == sorted([TWO_TONE, SINGLE_TONE])
    assert r.al.codes() == [CRIT]
    # the test did not cancel the silence nor restart anything
    assert r.follow(1000 + SILENCE_CRITICAL_MS - 1) == []
    assert r.follow(1000 + SILENCE_CRITICAL_MS) == [(1000 + SILENCE_CRITICAL_MS, TWO_TONE)]


def test_returned_wait_wakes_exactly_at_the_next_sound():
    r = Rig()
    r.al.raise_(CRIT)
    r.advance(0)
    r.advance(250000)
    r.al.raise_(NONCRIT)
    nxt = r.advance(0)
    assert nxt == REPEAT_CRITICAL_MS - 250000
    for _ in range(30):
        n = len(r.ann.sounds)
        if nxt > 1:
            r.advance(nxt - 1)
            assert len(r.ann.sounds) == n
            nxt = r.advance(1)
        else:
            nxt = r.advance(nxt)
        assert len(r.ann.sounds) == n + 1


# --- the alarm schedule against an independent absolute-time model ---------------

class AlarmModel:
    """Absolute times: due[c] is when active alarm c next sounds."""

    def __init__(self):
        self.due = {}

    def raise_(self, c, t):
        if c in self.due:
            return False
        self.due[c] = t
        return True

    def clear(self, c):
        return self.due.pop(c, None) is not None

    def silence(self, t):
        for c in self.due:
            self.due[c] = t + (SILENCE_CRITICAL_MS if A.CRITICAL[c] else SILENCE_NONCRITICAL_MS)
        return len(self.due)

    def annunciate(self, t):
        sounding = [c for c, d in self.due.items() if d <= t]
        for c in sounding:
            self.due[c] = t + (REPEAT_CRITICAL_MS if A.CRITICAL[c] else REPEAT_NONCRITICAL_MS)
        pattern = None
        if any(A.CRITICAL[c] for c in sounding):
            pattern = TWO_TONE
        elif sounding:
            pattern = SINGLE_TONE
        nxt = min((d - t for d in self.due.values()), default=None)
        return pattern, nxt


ALARM_CODES = st.sampled_from([CRIT, CRIT2, NONCRIT, NONCRIT2, A.BATTERY_EOS, A.CATHETER_LEAK])
ALARM_OPS = st.lists(st.one_of(
    st.tuples(st.just("raise"), ALARM_CODES),
    st.tuples(st.just("clear"), ALARM_CODES),
    st.tuples(st.just("silence"), st.just(0)),
    st.tuples(st.just("wait"), st.integers(0, 2 * HOUR)),
    st.tuples(st.just("sleep"), st.just(0)),        # wake exactly when told to
), max_size=80)


@given(ALARM_OPS)
def test_alarm_schedule_matches_absolute_time_model(ops):
    r = Rig()
    m = AlarmModel()

    def step(dt):
        n = len(r.ann.sounds)
        nxt = r.advance(dt)
        pattern, want_nxt = m.annunciate(r.t)
        got = r.ann.sounds[n:]
        assert got == ([] if pattern is None else [(r.t, pattern)])
        assert nxt == want_nxt                 # "ms until the next sound" is exact
        return nxt, got

    nxt, _ = step(0)
    fresh = True                               # nxt reflects the current alarm state
    for op, arg in ops:
        if op == "raise":
            assert r.al.raise_(arg) == m.raise_(arg, r.t)
            fresh = False
        elif op == "clear":
            assert r.al.clear(arg) == m.clear(arg)
            fresh = False
        elif op == "silence":
            assert r.al.silence() == m.silence(r.t)
            fresh = False
        elif op == "wait":
            nxt, _ = step(arg)
            fresh = True
        else:  # sleep exactly as long as the last annunciation asked
            if not fresh:
                nxt, _ = step(0)
            if nxt is None:
                nxt, _ = step(HOUR)
            else:
                nxt, got = step(nxt)
                assert got, "woke when annunciate said to and nothing sounded"
            fresh = True
        assert r.al.codes() == sorted(m.due)
        assert r.al.any_critical() == any(A.CRITICAL[c] for c in m.due)


# =============================================================================
# Catheter
# =============================================================================

HIGH = P["occlusion_high"]
CLR = P["occlusion_clear"]
LOW = P["leak_low"]
N_OCCL = P["occlusion_samples"]
N_LEAK = P["leak_samples"]


def cath(n_clear=None):
    return Catheter(HIGH, CLR, LOW, N_OCCL, N_OCCL if n_clear is None else n_clear, N_LEAK)


def feed(c, readings):
    return [c.sample(p) for p in readings]


NORMAL = (CLR + LOW) // 2 + 1      # a healthy back-pressure: > low, < clear
assert LOW < NORMAL < CLR < HIGH


def test_sim_thresholds_are_ordered_with_hysteresis():
    assert LOW < CLR < HIGH
    assert N_OCCL >= 1 and N_LEAK >= 1


def test_occlusion_after_exactly_n_readings_at_or_above_high():
    c = cath()
    out = feed(c, [NORMAL] * 4 + [HIGH] * N_OCCL)      # exactly at the threshold counts
    assert out[:-1] == [C.NONE] * (4 + N_OCCL - 1)     # not after n-1
    assert out[-1] == OCCLUDED and c.occluded
    c = cath()
    assert feed(c, [HIGH + 500] * N_OCCL)[-1] == OCCLUDED


def test_no_occlusion_from_interrupted_runs():
    c = cath()
    run = [HIGH] * (N_OCCL - 1)
    for brk in (HIGH - 1, CLR, NORMAL, 0):
        out = feed(c, run + [brk])
        assert OCCLUDED not in out and not c.occluded
    out = feed(c, run)
    assert OCCLUDED not in out and not c.occluded
    assert c.sample(HIGH) == OCCLUDED                  # the run finally reaches n


def test_occlusion_reported_once_per_episode():
    c = cath()
    out = feed(c, [HIGH] * (N_OCCL + 50))
    assert out.count(OCCLUDED) == 1
    assert c.occluded


def test_occlusion_clears_after_n_below_clear_with_hysteresis():
    c = cath()
    feed(c, [HIGH] * N_OCCL)
    # the hysteresis band [clear, high) neither clears nor re-raises
    assert feed(c, [CLR, HIGH - 1, CLR] * 10) == [C.NONE] * 30 and c.occluded
    # clear - 1 counts; n-1 of them, interrupted by a reading at clear, do not clear
    assert feed(c, [CLR - 1] * (N_OCCL - 1) + [CLR]) == [C.NONE] * N_OCCL
    assert c.occluded
    out = feed(c, [CLR - 1] * N_OCCL)
    assert out == [C.NONE] * (N_OCCL - 1) + [CLEARED]
    assert not c.occluded
    # staying low does not report again
    assert CLEARED not in feed(c, [NORMAL] * 20)


def test_clear_count_is_independent_of_occlusion_count():
    c = Catheter(HIGH, CLR, LOW, n_occl=2, n_clear=4, n_leak=N_LEAK)
    assert feed(c, [HIGH, HIGH]) == [C.NONE, OCCLUDED]
    assert feed(c, [NORMAL] * 4) == [C.NONE] * 3 + [CLEARED]


def test_reocclusion_after_clear_needs_a_fresh_full_run():
    c = cath()
    feed(c, [HIGH] * N_OCCL + [NORMAL] * N_OCCL)
    assert not c.occluded
    out = feed(c, [HIGH] * N_OCCL)
    assert out == [C.NONE] * (N_OCCL - 1) + [OCCLUDED]


def test_leak_advisory_after_n_leak_low_readings_and_clears():
    c = cath()
    out = feed(c, [LOW] * (N_LEAK - 1) + [LOW + 1])     # n-1 at the threshold, interrupted
    assert LEAK not in out and not c.leaking
    out = feed(c, [LOW] * (N_LEAK - 1))
    assert LEAK not in out
    assert c.sample(0) == LEAK and c.leaking
    assert LEAK not in feed(c, [0] * 20)                # reported once
    # clears after n_leak readings above low, not before; interrupted runs do not clear
    out = feed(c, [LOW + 1] * (N_LEAK - 1) + [LOW])
    assert LEAK_CLEARED not in out and c.leaking
    out = feed(c, [NORMAL] * N_LEAK)
    assert out == [C.NONE] * (N_LEAK - 1) + [LEAK_CLEARED]
    assert not c.leaking


def test_leak_does_not_mask_occlusion():
    c = cath()
    feed(c, [0] * N_LEAK)
    assert c.leaking
    out = feed(c, [HIGH] * N_OCCL)
    assert out[-1] == OCCLUDED


class CatheterModel:
    """Sliding-window model: looks only at the history of readings."""

    def __init__(self, high, clear, low, n_occl, n_clear, n_leak):
        self.high, self.clear, self.low = high, clear, low
        self.n_occl, self.n_clear, self.n_leak = n_occl, n_clear, n_leak
        self.hist = []
        self.occluded = False
        self.leaking = False

    def _last(self, n, pred):
        return len(self.hist) >= n and all(pred(p) for p in self.hist[-n:])

    def sample(self, p):
        self.hist.append(p)
        if not self.occluded and self._last(self.n_occl, lambda x: x >= self.high):
            self.occluded = True
            return OCCLUDED
        if self.occluded and self._last(self.n_clear, lambda x: x < self.clear):
            self.occluded = False
            return CLEARED
        if not self.leaking and self._last(self.n_leak, lambda x: x <= self.low):
            self.leaking = True
            return LEAK
        if self.leaking and self._last(self.n_leak, lambda x: x > self.low):
            self.leaking = False
            return LEAK_CLEARED
        return C.NONE


# readings clustered around every threshold so that runs and boundaries are hit
PRESSURE = st.one_of(
    st.sampled_from([0, LOW - 1, LOW, LOW + 1, NORMAL, CLR - 1, CLR, CLR + 1,
                     HIGH - 1, HIGH, HIGH + 1, 1000]),
    st.integers(0, 2 * HIGH))


@given(st.lists(st.one_of(PRESSURE, st.tuples(PRESSURE, st.integers(1, 8))), max_size=120))
def test_catheter_matches_sliding_window_model(chunks):
    readings = []
    for ch in chunks:
        if isinstance(ch, tuple):
            readings += [ch[0]] * ch[1]
        else:
            readings.append(ch)
    c = cath()
    m = CatheterModel(HIGH, CLR, LOW, N_OCCL, N_OCCL, N_LEAK)
    for i, p in enumerate(readings):
        was_occluded = m.occluded
        got = c.sample(p)
        want = m.sample(p)
        assert got == want, (i, readings[:i + 1])
        # the property in words: OCCLUDED exactly when the last n are all >= high
        # and it was not already occluded
        last_n_high = i + 1 >= N_OCCL and all(x >= HIGH for x in readings[i + 1 - N_OCCL:i + 1])
        assert (got == OCCLUDED) == (last_n_high and not was_occluded)
        assert c.occluded == m.occluded and c.leaking == m.leaking


@given(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6),
       st.lists(PRESSURE, max_size=80))
def test_occlusion_raised_within_n_readings_for_any_debounce(n_occl, n_clear, n_leak, before):
    """I7 for occlusion: whatever came before, n_occl readings at or above high
    leave the catheter occluded, with OCCLUDED reported no later than the n-th."""
    c = Catheter(HIGH, CLR, LOW, n_occl, n_clear, n_leak)
    feed(c, before)
    was = c.occluded
    out = feed(c, [HIGH] * n_occl)
    assert c.occluded
    if not was:
        assert OCCLUDED in out


# =============================================================================
# Battery
# =============================================================================

ERI_PM = P["battery_eri_permille"]
EOS_PM = P["battery_eos_permille"]


def battery():
    return BatteryMonitor(ERI_PM, EOS_PM)


def test_battery_thresholds_are_inclusive_and_reported_once():
    b = battery()
    assert b.state == B_OK
    assert b.sample(1000) is None
    assert b.sample(ERI_PM + 1) is None and b.state == B_OK
    assert b.sample(ERI_PM) == B_ERI and b.state == B_ERI
    assert b.sample(ERI_PM - 1) is None                 # already ERI: no repeat
    assert b.sample(EOS_PM + 1) is None and b.state == B_ERI
    assert b.sample(EOS_PM) == B_EOS and b.state == B_EOS
    assert b.sample(0) is None and b.state == B_EOS
    assert b.level == 0


def test_eos_reached_directly_from_ok():
    b = battery()
    assert b.sample(900) is None
    assert b.sample(EOS_PM) == B_EOS
    assert b.state == B_EOS


def test_eri_is_latched_against_a_bouncing_gauge():
    b = battery()
    b.sample(ERI_PM)
    for lvl in (ERI_PM + 1, 500, 1000, ERI_PM):
        assert b.sample(lvl) is None
        assert b.state == B_ERI
    assert b.level == ERI_PM


def test_eos_is_latched_against_a_bouncing_gauge():
    b = battery()
    b.sample(EOS_PM)
    for lvl in (EOS_PM + 1, ERI_PM, ERI_PM + 1, 1000, 0):
        assert b.sample(lvl) is None
        assert b.state == B_EOS
    assert b.level == 0                                 # the reading is still reported


def _classify(level):
    return B_EOS if level <= EOS_PM else (B_ERI if level <= ERI_PM else B_OK)


@given(st.lists(st.one_of(st.integers(0, 1000),
                          st.sampled_from([EOS_PM - 1, EOS_PM, EOS_PM + 1,
                                           ERI_PM - 1, ERI_PM, ERI_PM + 1])), max_size=60))
def test_battery_state_is_worst_level_seen(levels):
    b = battery()
    worst = B_OK
    for lvl in levels:
        new = max(worst, _classify(lvl))
        got = b.sample(lvl)
        assert got == (new if new != worst else None)
        worst = new
        assert b.state == worst
        assert b.level == lvl


# =============================================================================
# Motor
# =============================================================================

def test_stall_retried_max_retries_times_then_give_up():
    n = P["stall_retries"]
    m = MotorSupervisor(n)
    for _ in range(n):
        assert m.feedback(STALLED) == RETRY
    assert m.feedback(STALLED) == GIVE_UP


def test_completed_stroke_resets_the_stall_count():
    n = P["stall_retries"]
    m = MotorSupervisor(n)
    for _ in range(3):
        for _ in range(n):
            assert m.feedback(STALLED) == RETRY
        assert m.feedback(COMPLETED) is None
    for _ in range(n):
        assert m.feedback(STALLED) == RETRY
    assert m.feedback(STALLED) == GIVE_UP


def test_after_give_up_further_stalls_never_retry_until_reset():
    m = MotorSupervisor(2)
    for _ in range(3):
        m.feedback(STALLED)
    for _ in range(5):
        assert m.feedback(STALLED) == GIVE_UP
    m.reset()
    assert m.feedback(STALLED) == RETRY


def test_zero_retries_gives_up_on_first_stall():
    m = MotorSupervisor(0)
    assert m.feedback(STALLED) == GIVE_UP


def test_pending_tracks_a_commanded_stroke_until_its_feedback():
    m = MotorSupervisor(2)
    assert not m.pending
    m.commanded(7)
    assert m.pending and m.pending_kind == 7
    m.feedback(STALLED)
    assert not m.pending
    m.commanded(3)
    m.feedback(COMPLETED)
    assert not m.pending


@given(st.integers(0, 4), st.lists(st.sampled_from([COMPLETED, STALLED, "reset"]), max_size=60))
def test_motor_supervisor_matches_consecutive_stall_model(max_retries, events):
    m = MotorSupervisor(max_retries)
    run = 0
    for e in events:
        if e == "reset":
            m.reset()
            run = 0
            continue
        got = m.feedback(e)
        if e == COMPLETED:
            run = 0
            assert got is None
        else:
            run += 1
            assert got == (RETRY if run <= max_retries else GIVE_UP)


# =============================================================================
# Reservoir
# =============================================================================

STROKE = P["stroke_nl"]
CAP = P["reservoir_nl"]
PCT = P["accuracy_pct"]
MIN_TOL = P["refill_min_tolerance_nl"]


def reservoir(empty=None, stroke=STROKE, pct=PCT, min_tol=MIN_TOL):
    return Reservoir(CAP, stroke, P["empty_nl"] if empty is None else empty, pct, min_tol)


def test_never_filled_reservoir_cannot_stroke():
    r = reservoir()
    assert r.remaining_nl() == 0 and r.conc == 0
    assert not r.can_stroke()


def test_refill_sets_volume_and_resets_counts():
    r = reservoir()
    r.refill(CAP, 500)
    r.strokes = 1000
    r.refill(10 * STROKE * 1000, 2000)
    assert r.strokes == 0
    assert r.delivered_nl() == 0
    assert r.remaining_nl() == 10 * STROKE * 1000
    assert r.fill_nl == 10 * STROKE * 1000 and r.conc == 2000


def test_remaining_never_negative_and_conservation():
    r = reservoir()
    r.refill(10 * STROKE + STROKE // 2, 500)
    for k in range(0, 15):
        r.strokes = k
        assert r.remaining_nl() >= 0
        if k * STROKE <= r.fill_nl:
            assert r.remaining_nl() + r.delivered_nl() == r.fill_nl
    r.strokes = 10**6
    assert r.remaining_nl() == 0


@pytest.mark.parametrize("empty", [0, 1000, 3 * STROKE])
def test_can_stroke_exactly_at_the_empty_boundary(empty):
    r = reservoir(empty=empty)
    r.refill(empty + STROKE, 500)
    assert r.can_stroke()                       # exactly one stroke above empty
    r.refill(empty + STROKE - 1, 500)
    assert not r.can_stroke()                   # one nL short
    r.refill(empty + STROKE, 500)
    r.strokes = 1
    assert r.remaining_nl() == empty
    assert not r.can_stroke()


@given(st.integers(0, 5 * STROKE), st.integers(0, 60 * STROKE))
def test_draining_through_can_stroke_never_goes_below_empty(empty, fill):
    r = reservoir(empty=empty)
    r.refill(fill, 500)
    n = 0
    while r.can_stroke():
        r.strokes += 1
        n += 1
        assert r.remaining_nl() >= empty        # no stroke ever takes it below empty
        assert n * STROKE <= fill, "stroke allowed with the reservoir empty"
    # and it stopped only when one more stroke would have
    assert r.remaining_nl() - STROKE < empty
    assert n == max(0, (fill - empty) // STROKE)


def test_days_left():
    r = reservoir(empty=0)
    assert r.days_left(1000) == 0               # never filled
    r.refill(1000000, 500)
    assert r.days_left(0) is None and r.days_left(-5) is None
    assert r.days_left(250000) == 4             # exact
    assert r.days_left(250001) == 3             # floored: never promises a day it lacks
    assert r.days_left(1000001) == 0
    r2 = reservoir(empty=100000)
    r2.refill(1000000, 500)
    assert r2.days_left(300000) == 3            # (1000000 - 100000) // 300000
    assert r2.days_left(300001) == 2


def test_days_left_never_negative():
    r = reservoir(empty=1000)
    r.refill(STROKE, 500)                       # a refill smaller than the empty reserve
    assert r.days_left(1000) == 0
    r.refill(0, 500)
    assert r.days_left(1) == 0


@given(st.integers(0, 5 * STROKE), st.integers(0, CAP), st.integers(1, 4000000))
def test_days_left_floor_property(empty, fill, daily):
    r = reservoir(empty=empty)
    r.refill(fill, 500)
    d = r.days_left(daily)
    usable = r.remaining_nl() - empty
    if usable >= 0:
        assert d >= 0
        assert d * daily <= usable < (d + 1) * daily


def test_reconcile_before_any_stroke_uses_min_tolerance():
    r = reservoir()
    r.refill(CAP, 500)
    assert r.reconcile(CAP) == (REFILL_OK, CAP, MIN_TOL)
    assert r.reconcile(CAP - MIN_TOL) == (REFILL_OK, CAP, MIN_TOL)
    assert r.reconcile(CAP + MIN_TOL) == (REFILL_OK, CAP, MIN_TOL)
    assert r.reconcile(CAP - MIN_TOL - 1)[0] == REFILL_DISCREPANCY
    assert r.reconcile(CAP + MIN_TOL + 1)[0] == REFILL_DISCREPANCY
    assert r.reconcile(0)[0] == REFILL_DISCREPANCY


def test_reconcile_percentage_tolerance_with_exact_boundaries():
    r = reservoir()
    r.refill(CAP, 500)
    r.strokes = 20000                           # 5 mL delivered: 15 % = 750000 nL > min
    expected = CAP - 20000 * STROKE
    tol = 20000 * STROKE * PCT // 100
    assert tol > MIN_TOL
    assert r.reconcile(expected) == (REFILL_OK, expected, tol)
    assert r.reconcile(expected + tol)[0] == REFILL_OK
    assert r.reconcile(expected - tol)[0] == REFILL_OK
    assert r.reconcile(expected + tol + 1)[0] == REFILL_DISCREPANCY
    assert r.reconcile(expected - tol - 1)[0] == REFILL_DISCREPANCY


def test_reconcile_fractional_percentage_is_rounded_strict():
    r = reservoir()
    r.refill(CAP, 500)
    r.strokes = 13335                           # 3333750 nL * 15 % = 500062.5 nL
    expected = CAP - 13335 * STROKE
    status, exp, tol = r.reconcile(expected + 500062)
    assert (status, exp, tol) == (REFILL_OK, expected, 500062)
    assert r.reconcile(expected + 500063)[0] == REFILL_DISCREPANCY
    assert r.reconcile(expected - 500063)[0] == REFILL_DISCREPANCY


def test_reconcile_min_tolerance_where_percentage_is_smaller_and_at_the_crossover():
    r = reservoir(stroke=100, pct=10, min_tol=1000)
    r.refill(100000, 500)
    r.strokes = 99                              # 9900 nL: 10 % = 990 < 1000
    assert r.reconcile(r.remaining_nl() + 1000) == (REFILL_OK, 100000 - 9900, 1000)
    assert r.reconcile(r.remaining_nl() + 1001)[0] == REFILL_DISCREPANCY
    r.strokes = 100                             # 10000 nL: 10 % = 1000 = min
    assert r.reconcile(r.remaining_nl() - 1000)[2] == 1000
    assert r.reconcile(r.remaining_nl() - 1000)[0] == REFILL_OK
    assert r.reconcile(r.remaining_nl() - 1001)[0] == REFILL_DISCREPANCY
    r.strokes = 101                             # 10100 nL: 10 % = 1010 > min
    assert r.reconcile(r.remaining_nl() + 1010) == (REFILL_OK, 100000 - 10100, 1010)
    assert r.reconcile(r.remaining_nl() + 1011)[0] == REFILL_DISCREPANCY


@given(st.integers(STROKE, CAP), st.integers(0, CAP // STROKE), st.integers(0, CAP),
       st.integers(0, 30), st.integers(0, 2000000))
def test_reconcile_matches_exact_rational_rule(fill, strokes, residual, pct, min_tol):
    r = reservoir(pct=pct, min_tol=min_tol)
    r.refill(fill, 500)
    strokes = min(strokes, fill // STROKE)
    r.strokes = strokes
    delivered = strokes * STROKE
    expected = fill - delivered
    diff = abs(residual - expected)
    # within pct % of what was delivered (exact rational), or within the minimum
    ok = Fraction(diff) <= Fraction(pct * delivered, 100) or diff <= min_tol
    status, exp, tol = r.reconcile(residual)
    assert exp == expected
    assert status == (REFILL_OK if ok else REFILL_DISCREPANCY)
    assert tol >= min_tol and tol <= max(min_tol, Fraction(pct * delivered, 100))
    # a refill that matches exactly is always accepted
    assert r.reconcile(expected)[0] == REFILL_OK
