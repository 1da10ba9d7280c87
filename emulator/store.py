# The pump's record store (flash on a board), with the faults storage has.
#
# A power cut can be armed to happen during the Nth write from now: the write
# is torn (half the new record, as a raw flash page write would leave it) or,
# with atomic=True, leaves the old record (littlefs's atomic rename).
# Bit flips model retention errors.


class PowerCut(BaseException):
    """The pump loses power in the middle of a storage write. BaseException, so
    the firmware's own `except Exception` cannot swallow it: power is gone."""


class StoreModel:
    def __init__(self):
        self.data = {}
        self.writes = 0
        self.bytes_written = 0
        self.cut_at = 0
        self.cut_atomic = False

    # --- the store port -----------------------------------------------------
    def read(self, key):
        return self.data.get(key)

    def write(self, key, data):
        self.writes += 1
        if self.cut_at and self.writes == self.cut_at:
            self.cut_at = 0
            if not self.cut_atomic:
                self.data[key] = bytes(data[: len(data) // 2])
            raise PowerCut()
        self.data[key] = bytes(data)
        self.bytes_written += len(data)

    # --- the world ----------------------------------------------------------
    def arm_cut(self, nth_write, atomic=False):
        self.cut_at = self.writes + nth_write
        self.cut_atomic = atomic

    def flip(self, key, bit):
        """Flip one bit of a stored record; False if there is no such record."""
        raw = self.data.get(key)
        if not raw:
            return False
        raw = bytearray(raw)
        raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
        self.data[key] = bytes(raw)
        return True
