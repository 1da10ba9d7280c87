# Persistent records: A/B copies, each framed with a sequence number and CRC32.
#
# A write goes to the copy holding the older sequence, so a reset in the middle
# of a write can only damage that copy; the other still holds the previous
# good record. load() returns the newest copy whose CRC checks, and tells a
# missing record (new pump) apart from a corrupt one (alarm).
#
# Frame: b"PR" | len:u16 | seq:u32 | payload | crc32:u32 (over all before it)
import struct
from pump.compat import crc32_parts, crc32_into, byte_view

_HEAD = "<2sHI"
_HEAD_LEN = 8

MISSING = 0
OK = 1
CORRUPT = 2  # at least one copy exists and none checks


def frame(seq, payload):
    f = Frame(len(payload))
    f.payload[:] = payload
    return bytes(f.seal(seq))


class Frame:
    """One record's frame kept in a buffer for the pump's life: the payload is
    written in place and seal() adds the header and CRC, so saving a record at
    every stroke allocates nothing. mem: an array of HEAD + n + 4 bytes whose
    memory is the frame (the governor counts in it), or None for a bytearray."""

    def __init__(self, n, mem=None):
        self.n = n
        self.mem = bytearray(_HEAD_LEN + n + 4) if mem is None else mem
        self._views()

    def _views(self):
        self.buf = self.mem if isinstance(self.mem, bytearray) else byte_view(self.mem, _HEAD_LEN + self.n + 4)
        mv = memoryview(self.buf)
        self.body = mv[:_HEAD_LEN + self.n]
        self.payload = mv[_HEAD_LEN:_HEAD_LEN + self.n]

    # views cannot be copied: a copy (the emulator's tests copy whole pumps)
    # keeps the memory and makes its views again
    def __getstate__(self):
        return {"n": self.n, "mem": self.mem}

    def __setstate__(self, state):
        self.n = state["n"]
        self.mem = state["mem"]
        self._views()

    def seal(self, seq):
        struct.pack_into(_HEAD, self.buf, 0, b"PR", self.n, seq)
        crc32_into(self.body, self.buf, _HEAD_LEN + self.n)
        return self.buf


def unframe(data):
    """Return (seq, payload) or None if the bytes are not a whole, intact record."""
    if data is None or len(data) < _HEAD_LEN + 4:
        return None
    magic, n, seq = struct.unpack_from(_HEAD, data, 0)
    if magic != b"PR" or len(data) != _HEAD_LEN + n + 4:
        return None
    lo, hi = struct.unpack_from("<HH", data, _HEAD_LEN + n)
    if (hi, lo) != crc32_parts(memoryview(data)[: _HEAD_LEN + n]):
        return None
    return seq, bytes(data[_HEAD_LEN : _HEAD_LEN + n])


def torn(data, size=None):
    """Is data the start of a record whose write was cut off (shorter than its
    own header says)? Such a copy was never complete, so never in force.
    size: the payload size of a fixed-size record, when known: then a copy
    shorter than such a record is a cut and one of its full length is not (a
    flipped bit never makes data shorter, so the length alone tells them apart;
    a write cut in place, over old or erased bytes, keeps the full length and
    counts as damage: the safe side)."""
    if size is not None:
        return len(data) < _HEAD_LEN + size + 4
    if len(data) < _HEAD_LEN:
        return True
    magic, n, _ = struct.unpack_from(_HEAD, data, 0)
    return magic == b"PR" and len(data) < _HEAD_LEN + n + 4


def copies(name):
    """The store keys of a record's two copies."""
    return (name + ".a", name + ".b")


class ABRecord:
    """One named record kept as two copies, name.a and name.b, in a store port."""

    def __init__(self, store, name, size=None, mem=None):
        """size: a fixed payload size, framed in place (see Frame): fill
        self.payload and call save() with no argument. The store copies what
        it is given, so the buffer is reused."""
        self.store = store
        self.keys = copies(name)
        self.frame = None if size is None else Frame(size, mem)
        self.seq = 0
        self._next = 0  # index of the copy the next save overwrites
        self.damaged = 0  # copies present but not intact at the last load
        self.suspect = 0  # of those, copies as long as an intact record

    @property
    def payload(self):
        return self.frame.payload

    def load(self):
        """-> (status, payload). Also positions the next save on the older copy.
        damaged: copies present but not intact; suspect: those of them that are
        whole (not torn), so perhaps a complete, newer record damaged later. A
        torn copy is a write a reset cut off: nothing after it happened. So a
        record whose only copy is torn was never written: MISSING, not CORRUPT."""
        best = None
        best_i = 0
        present = 0
        self.damaged = 0
        self.suspect = 0
        for i in (0, 1):
            raw = self.store.read(self.keys[i])
            if raw is None:
                continue
            present += 1
            rec = unframe(raw)
            if rec is None:
                self.damaged += 1
                if not torn(raw, None if self.frame is None else self.frame.n):
                    self.suspect += 1
            elif best is None or rec[0] > best[0]:
                best = rec
                best_i = i
        if best is None:
            self.seq = 0
            self._next = 0
            if present == 0 or (present == 1 and self.suspect == 0):
                return MISSING, None
            return CORRUPT, None
        self.seq = best[0]
        self._next = 1 - best_i
        return OK, best[1]

    def _framed(self, payload):
        if payload is None:
            return self.frame.seal(self.seq)
        return frame(self.seq, payload)

    def save(self, payload=None):
        """Save payload, or with none the in-place payload (size given)."""
        self.seq += 1
        self.store.write(self.keys[self._next], self._framed(payload))
        self._next = 1 - self._next

    def rewrite_newest(self, payload=None):
        """Write over the newest copy, keeping the older one as the fallback: for
        undoing the last save when the older copy already holds the state wanted."""
        self.seq += 1
        self.store.write(self.keys[1 - self._next], self._framed(payload))
