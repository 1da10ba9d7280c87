# The time of day the flex schedule runs on.
#
# A flex program gives each part of the local day its own rate, so the
# schedule needs the time of day, and only the wall clock knows it. But the
# wall clock can be set back (a DST fall-back, a correction, a new time zone),
# which would run a part of the day twice, or forward, which would skip one.
# So the schedule keeps its own place in the day, moved by monotonic pump
# time, and follows the wall clock by two rules:
# - it never runs back: when the wall clock is behind it, the schedule holds
#   its place (giving the program's lowest rate meanwhile) until the wall
#   clock has caught up, so no part of the day is given twice;
# - a jump forward is followed at once: the part of the day skipped is not
#   given (no catch-up), and the pump logs it with its volume.
# In any 24 real hours the schedule therefore passes each part of the day at
# most once, and a program gives at most its daily dose, whatever the wall
# clock does (I1 on monotonic time). A change is taken the short way round
# the day: setting the clock back 23 h is a jump forward of 1 h.
# Differences up to TOLERANCE_MS (the wall clock reads whole seconds; a
# board's real-time clock and tick counter drift apart) are followed quietly.
from pump.compat import const
from pump.units import DAY_MS

TOLERANCE_MS = const(2000)
_HALF_DAY_MS = const(43200000)


class TimeOfDay:
    def __init__(self):
        self.ms = 0              # the schedule's place in the day, ms after local midnight
        self.holding = False     # the wall clock is behind it: the schedule waits
        self._wall = 0           # while holding: the wall clock's time of day last read, ms

    def place(self, tod_s):
        """Take the wall clock's time of day as it is (a new pump, a lost record)."""
        self.ms = tod_s * 1000
        self.holding = False

    def hold(self, tod_s):
        """Hold the place: the wall clock (now tod_s) is behind it."""
        self.holding = True
        self._wall = tod_s * 1000

    def ahead_ms(self, tod_s):
        """How far the wall clock (tod_s) is ahead of the schedule, the short
        way round the day: in (-12 h, +12 h], negative when it is behind."""
        d = tod_s * 1000 - self.ms
        if d > _HALF_DAY_MS:
            d -= DAY_MS
        elif d <= -_HALF_DAY_MS:
            d += DAY_MS
        return d

    def follow(self, dt_ms, tod_s):
        """dt_ms of pump time passed and the wall clock now reads tod_s. -> 0,
        or the ms the schedule jumped forward beyond dt_ms (> 0), or, when a
        hold begins, minus the ms the wall clock is behind (< 0)."""
        if self.holding:
            d = self.ahead_ms(tod_s)
            if d < 0:
                # still behind; set back again meanwhile? then the hold is anew, and said
                w = self._wall + dt_ms - tod_s * 1000
                self._wall = tod_s * 1000
                if w > _HALF_DAY_MS:
                    w -= DAY_MS
                elif w <= -_HALF_DAY_MS:
                    w += DAY_MS
                return d if (w > TOLERANCE_MS or w < -TOLERANCE_MS) else 0
            # caught up (the pump wakes then), or the clock was set forward past
            # the place held: the day runs on from the wall clock's place
            self.holding = False
            self.ms = tod_s * 1000
            return d if d > TOLERANCE_MS else 0
        m = self.ms + dt_ms
        while m >= DAY_MS:
            m -= DAY_MS
        self.ms = m
        d = tod_s * 1000 - m       # self.ahead_ms(tod_s), in line: every wake-up runs this
        if d > _HALF_DAY_MS:
            d -= DAY_MS
        elif d <= -_HALF_DAY_MS:
            d += DAY_MS
        if d > 0:
            # at the wall clock's second (it steps whole seconds, and the place
            # was set from one): so a step starts when the clock says it does
            self.ms = tod_s * 1000
            return d if d > TOLERANCE_MS else 0
        if d < -TOLERANCE_MS:
            self.hold(tod_s)
            return d
        return 0

    def hold_left_ms(self, tod_s):
        """ms until a hold ends (0 when not holding)."""
        if not self.holding:
            return 0
        d = -self.ahead_ms(tod_s)
        return d if d > 0 else 0
