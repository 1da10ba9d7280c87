# The write-ahead ledger: the record that makes resets safe.
#
# Before a stroke is commanded its count is saved here; so a reset at any
# point, even in the middle of this write (A/B copies), can never lead the
# pump to repeat a stroke: at worst the last counted stroke never ran, which
# is the safe direction. The record also carries what the pump needs to run
# its documented safe state if the therapy record is lost: the fill, the
# concentration, the program's safe rate, its caps and its daily dose (the base
# of the step-up limit for the next program).
import struct
from pump.record import ABRecord, OK

_FMT = "<IIIIIIIIIIIIII"
FIELDS = ("day", "ms", "strokes", "lifetime", "fill_nl", "conc", "bridge_left_nl",
          "safe_rate_nl_day", "max_daily_nl", "max_hourly_nl", "dose_ug_min", "tod_place", "uncertain",
          "in_flight")
_OLD_LEN = 44    # the record before tod_place and uncertain: still read, so an update keeps the counts
_V2_LEN = 52     # the record before in_flight: still read


class Ledger:
    def __init__(self, store):
        self.rec = ABRecord(store, "ledger", struct.calcsize(_FMT))
        self.day = 0
        self.ms = 0
        self.strokes = 0          # counted since the last fill
        self.lifetime = 0         # counted since the pump was new
        self.fill_nl = 0
        self.conc = 0
        self.bridge_left_nl = 0
        self.safe_rate_nl_day = 0
        self.max_daily_nl = 0
        self.max_hourly_nl = 0
        self.dose_ug_min = 0      # daily dose of the program in force (ug*min/day)
        self.tod_place = 0        # the schedule's place in the day (timeofday.py), ms + 1; 0: unknown
        self.uncertain = 0        # of the strokes since the fill, those counted at a restart
        #                           without knowing whether they ran (the believed reservoir
        #                           may be that much below the real one)
        self.in_flight = 0        # 1: the newest copy is a stroke's write-ahead, and
        #                           a restart cannot know whether that stroke ran

    def load(self):
        status, payload = self.rec.load()
        if status == OK and len(payload) == self.rec.frame.n:
            v = struct.unpack(_FMT, payload)
            (self.day, self.ms, self.strokes, self.lifetime, self.fill_nl, self.conc,
             self.bridge_left_nl, self.safe_rate_nl_day, self.max_daily_nl,
             self.max_hourly_nl, self.dose_ug_min, self.tod_place, self.uncertain, self.in_flight) = v
        elif status == OK and len(payload) == _V2_LEN:
            v = struct.unpack(_FMT[:14], payload)
            (self.day, self.ms, self.strokes, self.lifetime, self.fill_nl, self.conc,
             self.bridge_left_nl, self.safe_rate_nl_day, self.max_daily_nl,
             self.max_hourly_nl, self.dose_ug_min, self.tod_place, self.uncertain) = v
            self.in_flight = 0
        elif status == OK and len(payload) == _OLD_LEN:
            v = struct.unpack(_FMT[:12], payload)
            (self.day, self.ms, self.strokes, self.lifetime, self.fill_nl, self.conc,
             self.bridge_left_nl, self.safe_rate_nl_day, self.max_daily_nl,
             self.max_hourly_nl, self.dose_ug_min) = v
            self.tod_place = 0
            self.uncertain = 0
            self.in_flight = 0
        elif status == OK:
            status = 2  # wrong shape: treat as corrupt
        return status

    def _pack(self, day, ms):
        self.day = day
        self.ms = ms
        # packed in the record's own frame: a stroke's save allocates nothing
        struct.pack_into(_FMT, self.rec.payload, 0, day, ms, self.strokes, self.lifetime,
                         self.fill_nl, self.conc, self.bridge_left_nl, self.safe_rate_nl_day,
                         self.max_daily_nl, self.max_hourly_nl, self.dose_ug_min,
                         self.tod_place, self.uncertain, self.in_flight)

    def uncount(self, day, ms):
        """The stroke counted by the last save did not run (the motor stalled).
        The older copy already holds the count without it, so the newest copy is
        rewritten: a reset in the middle leaves that older copy, never a copy
        with the stalled stroke in it beside a damaged one."""
        self.strokes -= 1
        self.lifetime -= 1
        newest_is_stroke = self.in_flight
        self.in_flight = 0
        self._pack(day, ms)
        if newest_is_stroke:
            self.rec.rewrite_newest()
        else:   # another save came between (a program change): both copies
            self.rec.save()
            self.rec.save()

    def save_over_damage(self):
        """After a damaged copy: the counts as now adjusted, written over the
        intact copy and then over the damaged one (a cut in the first leaves two
        bad copies, a lost ledger: the safe side; in the second, the first)."""
        self.in_flight = 0
        self._pack(self.day, self.ms)
        self.rec.rewrite_newest()
        self.rec.save()

    def save(self, day, ms, both=False, stroke=False):
        """Save the counts. both=True writes the two copies in turn, for a change
        of fill or program: a copy damaged later must not leave an intact copy
        from before the change, whose larger fill or older caps would be unsafe."""
        self.in_flight = 1 if stroke else 0
        self._pack(day, ms)
        self.rec.save()
        if both:
            self.rec.save()
