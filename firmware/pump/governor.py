# The safety governor: the last word before a stroke is commanded.
#
# It does not trust the schedule. It keeps its own record of every stroke in
# two sliding windows on monotonic pump time (24 h and 1 h) and refuses a
# stroke that would take either window over the program's cap, that would
# draw the reservoir below its empty threshold, or that is not exactly one
# stroke. Windows are kept as stroke counts per slot (24 h: 288 slots of
# 5 min; 1 h: 360 slots of 10 s). A slot counts whole while any part of it is
# inside the window, so the governor may refuse up to one slot early, never late.
from array import array
from pump.compat import const
from pump.units import DAY_MS

DAY_SLOT_MS = const(300000)
DAY_SLOTS = const(289)      # 288 slots span 24 h; one more covers a partial slot
HOUR_SLOT_MS = const(10000)
HOUR_SLOTS = const(361)
# The windows' record: day head, hour head, lifetime and the strength the
# counts are in (ug/mL; 0: not known) (u32 each), then the counts; framed
# (8-byte header, 4-byte CRC) it is RECORD_ITEMS u16 items. The record of
# older firmware, without the strength, is 4 bytes shorter.
RECORD_HEAD = const(16)
RECORD_PAYLOAD = const(RECORD_HEAD + 2 * (DAY_SLOTS + HOUR_SLOTS))
RECORD_ITEMS = const((8 + RECORD_PAYLOAD + 4) // 2)
OLD_RECORD_PAYLOAD = const(RECORD_PAYLOAD - 4)
_DAY_SLOTS_PER_DAY = const(288)
_HOUR_SLOTS_PER_DAY = const(8640)

# Refusal reasons (also event codes)
OK = const(0)
CAP_DAILY = const(1)
CAP_HOURLY = const(2)
RESERVOIR = const(3)
VOLUME = const(4)
NO_LIMITS = const(5)


class Window:
    """Stroke counts per slot over a sliding window; slot index is absolute."""

    def __init__(self, n, slot_ms, per_day, mem=None, off=0):
        """mem, off: a u16 array whose items off..off+n keep the counts (the
        window record's frame, saved without a copy), or None for an array."""
        self.n = n
        self.slot_ms = slot_ms
        self.per_day = per_day
        self.mem = array("H", bytes(2 * n)) if mem is None else mem
        self.off = off
        self.counts = memoryview(self.mem)[off:off + n]
        self.head = 0       # absolute index of the newest slot
        self.total = 0

    # a view cannot be copied: a copy keeps the memory and makes its view again
    def __getstate__(self):
        d = dict(self.__dict__)
        del d["counts"]
        return d

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.counts = memoryview(self.mem)[self.off:self.off + self.n]

    def index(self, day, ms):
        return day * self.per_day + ms // self.slot_ms

    def roll(self, idx):
        """Move the window so its newest slot is idx, dropping expired slots."""
        gap = idx - self.head
        if gap <= 0:
            return
        if gap >= self.n:
            for i in range(self.n):
                self.counts[i] = 0
            self.total = 0
        else:
            for k in range(1, gap + 1):
                j = (self.head + k) % self.n
                self.total -= self.counts[j]
                self.counts[j] = 0
        self.head = idx

    def add(self, strokes):
        j = self.head % self.n
        self.counts[j] += strokes
        self.total += strokes

    def fill_newest(self, strokes):
        """Put strokes in the newest slot: used when restoring with unknown timing,
        since assuming they are the most recent is the conservative choice.
        A slot holds at most 0xFFFF, far above any cap: that means full."""
        j = self.head % self.n
        room = 0xFFFF - self.counts[j]
        if strokes > room:
            strokes = room
        self.add(strokes)

    def take_back(self, idx):
        """Remove one stroke counted in absolute slot idx, if still in the window."""
        j = idx % self.n
        if self.head - idx < self.n and self.counts[j] > 0:
            self.counts[j] -= 1
            self.total -= 1

    def rescale(self, num, den):
        """Re-express counts in strokes of another strength. Every window the
        governor will ever check is a run of slots ending at the newest, so the
        rounding is carried from the newest slot back: each such run holds its
        exact rescaled volume rounded up once (safe, and never a stroke more),
        where rounding every slot up on its own would overstate it many times."""
        done = 0        # rescaled strokes in the slots newer than this one, rounded up
        exact = 0       # their exact count, times den
        t = 0
        for k in range(self.n):
            j = (self.head - k) % self.n
            c = self.counts[j]
            if c:
                exact += c * num
                up = -((-exact) // den)
                c = up - done
                if c > 0xFFFF:
                    c = 0xFFFF
                done = up
                self.counts[j] = c
                t += c
        self.total = t

    def dump(self):
        """The counts as 2n bytes, u16 little-endian."""
        out = bytearray(2 * self.n)
        for i in range(self.n):
            c = self.counts[i]
            out[2 * i] = c & 0xFF
            out[2 * i + 1] = c >> 8
        return bytes(out)

    def load(self, head, raw):
        """Counts from dump()'s bytes, copied into this window's own slots."""
        self.head = head
        t = 0
        for i in range(self.n):
            c = raw[2 * i] | (raw[2 * i + 1] << 8)
            self.counts[i] = c
            t += c
        self.total = t


class Governor:
    def __init__(self, stroke_nl, mem=None, off=0):
        """mem, off: a u16 array whose items from off keep both windows' counts
        (day then hour: the window record's frame), or None for arrays."""
        self.stroke_nl = stroke_nl
        self.day = Window(DAY_SLOTS, DAY_SLOT_MS, _DAY_SLOTS_PER_DAY, mem, off)
        self.hour = Window(HOUR_SLOTS, HOUR_SLOT_MS, _HOUR_SLOTS_PER_DAY, mem,
                           off + DAY_SLOTS if mem is not None else 0)
        self.cap_day = 0      # strokes per 24 h
        self.cap_hour = 0     # strokes per 1 h
        self.limits_set = False
        self._last_day = -1   # slots of the last recorded stroke, for unrecord
        self._last_hour = -1

    def set_limits(self, max_daily_nl, max_hourly_nl):
        self.cap_day = max_daily_nl // self.stroke_nl
        self.cap_hour = max_hourly_nl // self.stroke_nl
        self.limits_set = True

    def clear_limits(self):
        self.cap_day = 0
        self.cap_hour = 0
        self.limits_set = False

    def roll(self, day, ms):
        # each window's index(day, ms) in line, and rolled only when it moved
        # on (Window.roll does nothing otherwise): this runs twice a stroke
        d = self.day
        i = day * d.per_day + ms // d.slot_ms
        if i > d.head:
            d.roll(i)
        d = self.hour
        i = day * d.per_day + ms // d.slot_ms
        if i > d.head:
            d.roll(i)

    def check(self, day, ms, volume_nl, remaining_nl, empty_nl):
        """Would one more stroke of volume_nl now be safe? -> OK or a reason."""
        if volume_nl != self.stroke_nl:
            return VOLUME
        if not self.limits_set:
            return NO_LIMITS
        if remaining_nl - volume_nl < empty_nl:
            return RESERVOIR
        self.roll(day, ms)
        if self.day.total + 1 > self.cap_day:
            return CAP_DAILY
        if self.hour.total + 1 > self.cap_hour:
            return CAP_HOURLY
        return OK

    def tighter(self):
        """Which cap leaves less room now (CAP_DAILY or CAP_HOURLY): what a
        refusal for the limits names."""
        if self.cap_hour - self.hour.total < self.cap_day - self.day.total:
            return CAP_HOURLY
        return CAP_DAILY

    def headroom_nl(self, day, ms):
        """Volume that could still be given now without reaching either cap."""
        self.roll(day, ms)
        d = self.cap_day - self.day.total
        h = self.cap_hour - self.hour.total
        return (d if d < h else h) * self.stroke_nl

    # A stroke is counted when it is commanded, before the motor moves.
    def record(self, day, ms):
        self.roll(day, ms)
        self.day.add(1)
        self.hour.add(1)
        self._last_day = self.day.head
        self._last_hour = self.hour.head

    def unrecord(self):
        """The motor reported the last recorded stroke stalled: it did not move,
        so it leaves the windows (the reservoir count trusts the same report)."""
        if self._last_day < 0:
            return
        self.day.take_back(self._last_day)
        self.hour.take_back(self._last_hour)
        self._last_day = self._last_hour = -1
