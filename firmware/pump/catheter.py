# Catheter supervision: debounced back-pressure.
#
# One reading per completed stroke (and one per re-check while stopped).
# OCCLUSION after n_occl readings in a row at or above the high threshold,
# so the alarm comes within n_occl strokes of a blockage; it clears after
# n_clear readings in a row below the clear threshold. A run of n_leak readings at
# or below the low threshold suggests a disconnection or leak (advisory).
NONE = 0
OCCLUDED = 1
CLEARED = 2
LEAK = 3
LEAK_CLEARED = 4


class Catheter:
    def __init__(self, high, clear, low, n_occl=3, n_clear=3, n_leak=5):
        self.high = high
        self.clear = clear
        self.low = low
        self.n_occl = n_occl
        self.n_clear = n_clear
        self.n_leak = n_leak
        self.occluded = False
        self.leaking = False
        self._hi = 0
        self._ok = 0
        self._lo = 0
        self._norm = 0

    def sample(self, p):
        """Feed one pressure reading; return the transition it completes, if any."""
        self._hi = self._hi + 1 if p >= self.high else 0
        self._ok = self._ok + 1 if p < self.clear else 0
        self._lo = self._lo + 1 if p <= self.low else 0
        self._norm = self._norm + 1 if p > self.low else 0
        if not self.occluded and self._hi >= self.n_occl:
            self.occluded = True
            self._ok = 0
            return OCCLUDED
        if self.occluded and self._ok >= self.n_clear:
            self.occluded = False
            self._hi = 0
            return CLEARED
        if not self.leaking and self._lo >= self.n_leak:
            self.leaking = True
            return LEAK
        if self.leaking and self._norm >= self.n_leak:
            self.leaking = False
            return LEAK_CLEARED
        return NONE
