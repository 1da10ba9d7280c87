# Monotonic pump time from a wrapping tick counter.
#
# Boards give time.ticks_ms(), which wraps every 2**30 ms (about 12.4 days);
# the core needs time that never wraps over a six-month refill interval, but a
# plain millisecond count passes 2**30 after 12 days and would then be a heap
# object on a 32-bit board. So pump time is carried as (day, ms_in_day), both
# small ints, advanced by ticks_diff deltas. Readings must come at least every
# 2**29 ms (6 days) for the delta to be unambiguous; the pump wakes far more often.
from pump.compat import const
from pump.units import DAY_MS

TICKS_PERIOD = const(0x40000000)  # 2**30
TICKS_MASK = const(0x3FFFFFFF)
TICKS_HALF = const(0x20000000)


def ticks_diff(new, old):
    """Signed difference of two wrapping tick values, as time.ticks_diff."""
    return ((new - old + TICKS_HALF) & TICKS_MASK) - TICKS_HALF


class PumpTime:
    """Non-wrapping monotonic time: days and milliseconds within the day."""

    def __init__(self, day=0, ms=0):
        self.day = day
        self.ms = ms
        self._last_ticks = None

    def sync(self, ticks):
        """Advance by the ticks elapsed since the previous sync; return that delta (ms)."""
        if self._last_ticks is None:
            self._last_ticks = ticks
            return 0
        dt = ticks_diff(ticks, self._last_ticks)
        self._last_ticks = ticks
        if dt <= 0:  # a tick source must not run backwards; ignore, never rewind
            return 0
        ms = self.ms + dt      # self.add(dt), in line: every wake-up runs this
        while ms >= DAY_MS:
            ms -= DAY_MS
            self.day += 1
        self.ms = ms
        return dt

    def add(self, dt):
        ms = self.ms + dt
        while ms >= DAY_MS:
            ms -= DAY_MS
            self.day += 1
        self.ms = ms

    def since(self, day, ms):
        """ms from (day, ms) to now, for spans known to be short (< 12 days)."""
        return (self.day - day) * DAY_MS + (self.ms - ms)

    def restore(self, day, ms):
        """Resume pump time after a reset: time while off is not pump time."""
        self.day = day
        self.ms = ms
        self._last_ticks = None
