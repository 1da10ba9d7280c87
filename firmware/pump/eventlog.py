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
STOP = const(20)       # code: the stop's bit; a: 1 begun, 0 ended (code 0: a = the stops
#                        in force after a restart)
TIME_OF_DAY = const(21)  # the wall clock moved under the day's schedule: code 1 skipped
#                          forward (a: s, b: basal nL not given), 2 held (a: s behind), 3 hold over

# A clock record (code 0, set): a = the old time's day since 2000, b = its
# second of the day; the record's wall stamp is the new time.
KIND_NAMES = ("", "alarm", "alarm_clear", "refill", "program", "reset", "fault", "refusal",
              "bolus", "suspend", "resume", "clock", "silence", "ack", "alarm_test",
              "override", "prime", "bridge", "storage", "link", "stop", "time_of_day")

# A refusal record: code = why (controller.REFUSAL_NAMES), a = what was asked
# (below; 1-3 are the schedule's bolus kinds), b = the number behind the refusal
# (the governor's reason for a stroke, which cap for a bolus, seconds of lockout
# left, grants in 24 h, usable nL, the daily dose asked of a program).
REQ_STROKE = const(0)
REQ_PROGRAM = const(5)
REQUEST_NAMES = ("stroke", "bolus", "patient_bolus", "prime", "bridge", "program")

# wall_s is unsigned: seconds since 2000 reach 2**31 in 2068, and the clock may
# be set to 2099 (records written before, signed, read the same below 2**31)
_FMT = "<IIIBBii"   # day, ms, wall_s, kind, code, a, b (a record's payload)
_PAYLOAD = const(22)


def kind_name(kind):
    return KIND_NAMES[kind] if 0 < kind < len(KIND_NAMES) else "event_%d" % kind


class EventLog:
    """The last `size` events, each in its own store key (a slot of the ring:
    the record with sequence number s is in slot s % size). The records live in
    the store only: the heap holds one bit a slot (does it hold its record of
    the last `size`?), so a board's history of hundreds of records costs it a
    few dozen bytes; they are read back, as tuples, when asked for."""

    PREFIX = "log"        # its store keys: PREFIX.NN (another ring beside it has its own)

    def __init__(self, store, size=64, sink=None):
        self.store = store
        self.size = size
        self.sink = sink      # optional callable(seq, day, ms, wall_s, kind, code, a, b)
        self.seq = 0          # the newest record's sequence number (0: none yet)
        self._valid = bytearray((size + 7) // 8)
        self._n = 0           # records held
        self.corrupt = 0      # slots found damaged at load

    def _key(self, seq):
        return "%s.%02d" % (self.PREFIX, seq % self.size)

    def _ok(self, slot):
        return self._valid[slot >> 3] & (1 << (slot & 7))

    def _mark(self, slot, ok):
        if ok:
            self._valid[slot >> 3] |= 1 << (slot & 7)
        else:
            self._valid[slot >> 3] &= ~(1 << (slot & 7)) & 0xFF

    def _read(self, seq):
        """The record with this sequence number, from the store, or None."""
        r = unframe(self.store.read(self._key(seq)))
        if r is None or r[0] != seq or len(r[1]) != _PAYLOAD:
            return None
        return (seq,) + struct.unpack(_FMT, r[1])

    def seqs(self):
        """The sequence numbers held, oldest first."""
        first = self.seq - self.size + 1
        return [s for s in range(first if first > 1 else 1, self.seq + 1) if self._ok(s % self.size)]

    @property
    def records(self):
        """(seq, day, ms, wall_s, kind, code, a, b) tuples, oldest first (a slot
        damaged since it was loaded is left out)."""
        out = []
        for s in self.seqs():
            r = self._read(s)
            if r is not None:
                out.append(r)
        return out

    def newest_first(self):
        """The records held, newest first, read one at a time (a restart looks
        back through them for the story of each alarm)."""
        first = self.seq - self.size + 1
        s = self.seq
        while s >= first and s > 0:
            if self._ok(s % self.size):
                r = self._read(s)
                if r is not None:
                    yield r
            s -= 1

    def entry(self, i):
        """The i-th record held, oldest first (negative: from the newest)."""
        held = self.seqs()
        if not -len(held) <= i < len(held):
            raise IndexError("no such entry")
        r = self._read(held[i])
        if r is None:
            raise IndexError("entry damaged since it was loaded")
        return r

    def __len__(self):
        return self._n

    def load(self):
        """Find the records held: the newest `size` intact slots whose sequence
        numbers are those the slots must hold."""
        found = []
        self.corrupt = 0
        for i in range(self.size):
            raw = self.store.read("%s.%02d" % (self.PREFIX, i))
            if raw is None:
                continue
            r = unframe(raw)
            if r is None or len(r[1]) != _PAYLOAD or r[0] % self.size != i:
                self.corrupt += 1
                continue
            found.append(r[0])
        self.seq = max(found) if found else 0
        for i in range(len(self._valid)):
            self._valid[i] = 0
        self._n = 0
        for s in found:
            if s > self.seq - self.size:
                self._mark(s % self.size, True)
                self._n += 1
        return self.corrupt

    def add(self, day, ms, wall_s, kind, code=0, a=0, b=0):
        # pack first: a value that does not fit changes nothing
        body = struct.pack(_FMT, day, ms, wall_s, kind, code, a, b)
        self.seq += 1
        slot = self.seq % self.size
        if not self._ok(slot):
            self._n += 1              # (else the slot's older record leaves the ring)
        if self.sink is not None:
            self.sink(self.seq, day, ms, wall_s, kind, code, a, b)
        self._mark(slot, False)     # until the write lands
        self.store.write(self._key(self.seq), frame(self.seq, body))
        self._mark(slot, True)
