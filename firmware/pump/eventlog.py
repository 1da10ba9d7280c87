# The event log: a bounded ring of time-stamped, CRC-checked records that
# survives resets. Each slot of the ring is its own store key ("log.NN"),
# so a reset in the middle of writing one event damages that event only.
import struct
from pump.compat import const
from pump.record import frame, unframe

ALARM = const(1)
ALARM_CLEAR = const(2)
REFILL = const(3)
PROGRAM = const(4)
RESET = const(5)
FAULT = const(6)
REFUSAL = const(7)
BOLUS = const(8)
SUSPEND = const(9)
RESUME = const(10)
CLOCK = const(11)
SILENCE = const(12)
ACK = const(13)
ALARM_TEST = const(14)
OVERRIDE = const(15)
PRIME = const(16)
BRIDGE = const(17)
STORAGE = const(18)
LINK = const(19)       # a programmer-link request refused for its authority (code: link error)

KIND_NAMES = ("", "alarm", "alarm_clear", "refill", "program", "reset", "fault", "refusal",
              "bolus", "suspend", "resume", "clock", "silence", "ack", "alarm_test",
              "override", "prime", "bridge", "storage", "link")

_FMT = "<IIiBBii"   # day, ms, wall_s, kind, code, a, b (a record's payload)
_REC = "<IIIiBBii"  # seq first: one entry of the ring in memory
_REC_LEN = const(26)


def kind_name(kind):
    return KIND_NAMES[kind] if 0 < kind < len(KIND_NAMES) else "event_%d" % kind


class EventLog:
    """The last `size` events, kept packed in one buffer (26 bytes each, not a
    tuple of eight ints each) and read out as tuples on demand."""

    PREFIX = "log"        # its store keys: PREFIX.NN (another ring beside it has its own)

    def __init__(self, store, size=64, sink=None):
        self.store = store
        self.size = size
        self.sink = sink      # optional callable(seq, day, ms, wall_s, kind, code, a, b)
        self.seq = 0
        self._ring = bytearray(size * _REC_LEN)
        self._first = 0       # ring index of the oldest entry
        self._n = 0           # entries held
        self.corrupt = 0      # slots found damaged at load

    def _key(self, seq):
        return "%s.%02d" % (self.PREFIX, seq % self.size)

    @property
    def records(self):
        """(seq, day, ms, wall_s, kind, code, a, b) tuples, oldest first."""
        return [self.entry(i) for i in range(self._n)]

    def entry(self, i):
        """The i-th entry held, oldest first (negative: from the newest)."""
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("no such entry")
        return struct.unpack_from(_REC, self._ring, ((self._first + i) % self.size) * _REC_LEN)

    def __len__(self):
        return self._n

    def _append(self, seq, day, ms, wall_s, kind, code, a, b):
        if self._n < self.size:
            j = (self._first + self._n) % self.size
            self._n += 1
        else:
            j = self._first
            self._first = (self._first + 1) % self.size
        struct.pack_into(_REC, self._ring, j * _REC_LEN, seq, day, ms, wall_s, kind, code, a, b)

    def load(self):
        recs = []
        self.corrupt = 0
        for i in range(self.size):
            raw = self.store.read("%s.%02d" % (self.PREFIX, i))
            if raw is None:
                continue
            r = unframe(raw)
            if r is None or len(r[1]) != struct.calcsize(_FMT):
                self.corrupt += 1
                continue
            recs.append((r[0],) + struct.unpack(_FMT, r[1]))
        recs.sort()
        self._first = 0
        self._n = 0
        for r in recs[-self.size:]:
            self._append(*r)
        self.seq = recs[-1][0] if recs else 0
        return self.corrupt

    def add(self, day, ms, wall_s, kind, code=0, a=0, b=0):
        # pack first: a value that does not fit changes nothing
        body = struct.pack(_FMT, day, ms, wall_s, kind, code, a, b)
        self.seq += 1
        self._append(self.seq, day, ms, wall_s, kind, code, a, b)
        if self.sink is not None:
            self.sink(self.seq, day, ms, wall_s, kind, code, a, b)
        self.store.write(self._key(self.seq), frame(self.seq, body))
