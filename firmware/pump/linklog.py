# Link noise: frames the link refused or dropped, counted and kept apart from
# the therapy's history.
#
# Anyone on the line can send bad frames, and each logged one would be a flash
# write and a record pushed out of the event log. So the link counts them and
# writes at most one summary record per RECORD_MS of pump time, into a ring of
# its own (store keys noise.NN) beside the therapy's event log: programs,
# refills, boluses, alarms, resets and clock changes are never evicted by link
# noise, however much of it there is.
#
# A summary record is an event-log record of kind LINK: code is a bit mask of
# the refusals it counts (CODE_BITS), a the number of frames refused for their
# authority, b the number of other bad frames (damaged, cut short, malformed).
from pump import eventlog as E
from pump.compat import const

NOISE_SIZE = const(16)         # summary records kept
RECORD_MS = const(600000)      # one summary record per 10 min of pump time at most
BIT_OTHER = const(64)
CAP = const(0x7FFFFFFF)        # a record's count fields are signed 32-bit


class NoiseLog(E.EventLog):
    PREFIX = "noise"


class LinkNoise:
    def __init__(self, pump, size=NOISE_SIZE):
        self.pump = pump
        self.log = NoiseLog(pump.store, size, pump.log.sink)
        self.log.load()
        self.refused = 0        # authority refusals not yet in a record
        self.other = 0          # other bad frames not yet in a record
        self.mask = 0
        self.last = None        # (day, ms) of the last record written

    def count(self, bit):
        """One bad frame: bit from CODE_BITS for an authority refusal, or
        BIT_OTHER. Allocates nothing."""
        self.mask |= bit
        if bit == BIT_OTHER:
            if self.other < CAP:
                self.other += 1
        elif self.refused < CAP:
            self.refused += 1

    def tick(self):
        """Write the summary if there is one and the last is old enough."""
        if not (self.refused or self.other):
            return
        t = self.pump.time
        last = self.last
        if last is not None and t.since(last[0], last[1]) < RECORD_MS:
            return
        self.last = (t.day, t.ms)
        mask, refused, other = self.mask, self.refused, self.other
        self.mask = self.refused = self.other = 0
        self.log.add(t.day, t.ms, self.pump.clock.wall_s(), E.LINK, mask, refused, other)
