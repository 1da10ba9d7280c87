# The pump's record store (flash on a board), with the faults storage has.
#
# A power cut can be armed to happen during the Nth write from now: the write
# is torn (half the new record, as a raw flash page write would leave it) or,
# with atomic=True, leaves the old record (littlefs's atomic rename).
# Bit flips model retention errors.


class PowerCut(BaseException):
    """The pump loses power in the middle of a storage write. BaseException, so
    the firmware's own `except Exception` cannot swallow it: power is gone."""


class FaultCollision(Exception):
    """A power cut armed while another is still pending: a scenario error."""

    def __init__(self, armed_ms, writes_to_go):
        Exception.__init__(self, "a power cut armed at %d ms is still %d writes away" % (armed_ms, writes_to_go))
        self.armed_ms = armed_ms
        self.writes_to_go = writes_to_go


class StoreModel:
    def __init__(self):
        self.data = {}
        self.writes = 0
        self.bytes_written = 0
        self.cut_at = 0
        self.cut_atomic = False
        self.cut_every = 0        # re-armed after each cut this many writes on ...
        self.cut_left = 0         # ... this many more times
        self.cut_armed_ms = 0     # when the pending cut was armed (for a collision's message)
        self.on_write = None      # callable(writes so far), after each write that lands

    # --- the store port -----------------------------------------------------
    def read(self, key):
        return self.data.get(key)

    def write(self, key, data):
        self.writes += 1
        if self.cut_at and self.writes == self.cut_at:
            self.cut_at = 0
            if self.cut_left > 0:            # every Nth write, so many times
                self.cut_left -= 1
                self.cut_at = self.writes + self.cut_every
            if not self.cut_atomic:
                self.data[key] = bytes(data[: len(data) // 2])
            raise PowerCut()
        self.data[key] = bytes(data)
        self.bytes_written += len(data)
        if self.on_write is not None:
            self.on_write(self.writes)

    # --- the world ----------------------------------------------------------
    def arm_cut(self, nth_write, atomic=False, repeat=1, now_ms=0):
        """A power cut at the nth_write-th write from now (and, with repeat,
        again every nth_write writes after each cut, repeat cuts in all).
        A cut still pending cannot be replaced: FaultCollision."""
        if self.cut_at:
            raise FaultCollision(self.cut_armed_ms, self.cut_at - self.writes)
        self.cut_at = self.writes + nth_write
        self.cut_atomic = atomic
        self.cut_every = nth_write
        self.cut_left = repeat - 1
        self.cut_armed_ms = now_ms

    def flip(self, key, bit):
        """Flip one bit of a stored record; False if there is no such record."""
        raw = self.data.get(key)
        if not raw:
            return False
        raw = bytearray(raw)
        raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
        self.data[key] = bytes(raw)
        return True
