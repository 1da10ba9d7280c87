# The pump's motor and its feedback, as the firmware's motor port sees them.
#
# A stroke moves the profile's stroke volume, give or take the pump's accuracy:
# a slow bias (e.g. a worn roller delivers 5 % less) plus a seeded per-stroke
# jitter. The firmware reads the result (completed or stalled) at its next
# wake-up. Stalls: a transient one for the next N strokes, a permanent jam, or
# a jam that comes after N more strokes (shaft wear). Every stroke, stalled or
# not, costs battery charge. The jitter comes from a small integer generator
# (emulator/prng.py), so a seed gives the same run in CPython and MicroPython.
from emulator.prng import XorShift32

PARAMS = {
    "bias_permille": 0,       # systematic volume error per stroke: -50 is 5 % under
    "jitter_permille": 20,    # uniform per-stroke error within +/- this
}

COMPLETED = 1
STALLED = 0


class MotorModel:
    def __init__(self, clock, reservoir, catheter, battery, stroke_nl, bias_permille=0,
                 jitter_permille=20, seed=0):
        self.clock = clock
        self.reservoir = reservoir
        self.catheter = catheter
        self.battery = battery
        self.stroke_nl = stroke_nl
        self.bias = bias_permille
        self.jitter = jitter_permille
        self.rng = XorShift32(seed)
        self.stall_next = 0        # stall this many coming strokes
        self.jammed = False
        self.jam_after = -1        # jam after this many more completed strokes
        self.trace = []            # (t_ms, nl, kind, conc) of every completed stroke
        self.commanded = 0
        self.stalls = 0
        self.dry = 0               # strokes completed with the reservoir really empty
        self.stall_times = []      # t_ms of every stalled stroke (the judge's I7)
        self._last = COMPLETED

    def _volume(self):
        e = self.bias
        if self.jitter:
            e += self.rng.randint(-self.jitter, self.jitter)
        return self.stroke_nl * (1000 + e) // 1000

    # --- the motor port ---------------------------------------------------
    def stroke(self, kind):
        self.commanded += 1
        self.battery.stroke()
        if self.jam_after == 0:
            self.jammed = True
            self.jam_after = -1
        if self.jammed or self.stall_next > 0:
            if self.stall_next > 0:
                self.stall_next -= 1
            self.stalls += 1
            self.stall_times.append(self.clock.now)
            self._last = STALLED
            return
        if self.jam_after > 0:
            self.jam_after -= 1
        conc = self.reservoir.conc
        nl = self.reservoir.draw(self._volume())
        if nl == 0:
            self.dry += 1
        self.trace.append((self.clock.now, nl, kind, conc))
        if nl:
            self.catheter.push(nl, conc)
        self._last = COMPLETED

    def result(self):
        return self._last

    # --- the world ----------------------------------------------------------
    def stall(self, strokes):
        self.stall_next = strokes

    def jam(self, after_strokes=0):
        if after_strokes <= 0:
            self.jammed = True
        else:
            self.jam_after = after_strokes

    def repair(self):
        self.jammed = False
        self.stall_next = 0
        self.jam_after = -1
