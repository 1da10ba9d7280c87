# A small deterministic pseudo-random generator for the hardware models.
#
# The emulator runs under CPython and under MicroPython (the student lab, in
# the browser); a seed must give exactly the same run in both, so the models
# cannot use `random` (MicroPython's is another generator, and may be left out
# of a build). This is Marsaglia's xorshift32 (13, 17, 5) on plain integers:
# the same numbers on every runtime. It is for modelling noise only.
_MASK = 0xFFFFFFFF


class XorShift32:
    def __init__(self, seed=0):
        # spread the seed (any int, negative too) over 32 bits; never 0
        x = (seed * 2654435761 + 0x9E3779B9) & _MASK
        self.x = x if x else 0x6A09E667
        for _ in range(4):          # let a small seed's bits mix
            self.next()

    def next(self):
        """-> the next number, 1 .. 2**32 - 1."""
        x = self.x
        x ^= (x << 13) & _MASK
        x ^= x >> 17
        x ^= (x << 5) & _MASK
        self.x = x
        return x

    def randint(self, lo, hi):
        """-> a whole number lo .. hi, both included (the bias of taking a
        remainder is below 1 in 10**6 for the spans the models use)."""
        return lo + self.next() % (hi - lo + 1)
