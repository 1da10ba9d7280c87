# Fake hardware for the pump's ports, portable to MicroPython and CPython.
#
# The test harness owns time: `now` is the true virtual monotonic ms since the
# run began. The motor keeps the raw stroke trace (the oracle's ground truth)
# and the real volume left in the reservoir, which the firmware never sees.
TICKS_MASK = 0x3FFFFFFF


class PowerCut(BaseException):
    """Raised by the store to model a reset in the middle of a write. It derives
    from BaseException so the firmware's own `except Exception` cannot hide it."""


class Clock:
    def __init__(self, wall_start_s=852076800, ticks_start=0):
        self.now = 0                 # true virtual ms since the run began
        self.ticks_start = ticks_start
        self.wall_base = wall_start_s  # local wall seconds at now == 0
        self.wall_adjust = 0

    def ticks_ms(self):
        # (now + ticks_start) mod 2**30, as time.ticks_ms() gives it on a board:
        # without a big int on the way, which a 32-bit board's small ints (up
        # to 2**30 - 1) would make, allocating at every call
        t = (self.now & TICKS_MASK) - (TICKS_MASK - self.ticks_start)
        return t - 1 if t > 0 else t + TICKS_MASK

    def wall_s(self):
        return self.wall_base + self.now // 1000 + self.wall_adjust

    def tod_s(self):
        return self.wall_s() % 86400

    def set_wall(self, s):
        self.wall_adjust = s - (self.wall_base + self.now // 1000)


class Motor:
    def __init__(self, clock, stroke_nl, reservoir_nl=0):
        self.clock = clock
        self.stroke_nl = stroke_nl
        self.actual_nl = reservoir_nl  # what is really in the reservoir
        self.trace = []                # (t_ms, kind) of every completed stroke, or None:
        #                                a memory measurement keeps only the count
        self.completed = 0             # completed strokes
        self.stall_next = 0            # stall this many coming strokes
        self.jammed = False            # stall every stroke
        self.commands = 0
        self.dry_strokes = 0           # strokes commanded with the reservoir really empty
        self.stall_times = []          # when strokes stalled (the test's own record)
        self._last = 1

    def stroke(self, kind):
        self.commands += 1
        if self.jammed or self.stall_next > 0:
            if self.stall_next > 0:
                self.stall_next -= 1
                self.stall_times.append(self.clock.now)
            self._last = 0
            return
        if self.actual_nl < self.stroke_nl:
            self.dry_strokes += 1
        self.actual_nl -= self.stroke_nl
        self.completed += 1
        if self.trace is not None:
            self.trace.append((self.clock.now, kind))
        self._last = 1

    def result(self):
        return self._last


class Sensor:
    def __init__(self, value):
        self.value = value

    def read(self):
        return self.value

    def level(self):
        return self.value


class Annunciator:
    def __init__(self, clock):
        self.clock = clock
        self.sounds = []

    def sound(self, pattern):
        self.sounds.append((self.clock.now, pattern))


class Store:
    def __init__(self):
        self.data = {}
        self.writes = 0
        self.cut_at = 0   # if > 0: power is cut during the write with this number
        self.cut_clean = False  # the cut write leaves the old content (an atomic
        #                         rename, as littlefs does) instead of half a record

    def read(self, key):
        return self.data.get(key)

    def write(self, key, data):
        self.writes += 1
        if self.cut_at and self.writes == self.cut_at:
            self.cut_at = 0
            if not self.cut_clean:
                self.data[key] = bytes(data[: len(data) // 2])
            raise PowerCut()
        self.data[key] = bytes(data)

    def flip(self, key, bit):
        raw = bytearray(self.data[key])
        raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
        self.data[key] = bytes(raw)


class Hardware:
    """All the ports of one pump, wired to one virtual clock."""

    def __init__(self, profile, ticks_start=0, wall_start_s=852076800):
        self.profile = profile
        self.clock = Clock(wall_start_s, ticks_start)
        self.motor = Motor(self.clock, profile["stroke_nl"])
        self.pressure = Sensor(20)
        self.battery = Sensor(1000)
        self.store = Store()
        self.annunciator = Annunciator(self.clock)

    def ports(self):
        return dict(clock=self.clock, motor=self.motor, pressure=self.pressure,
                    battery=self.battery, store=self.store, annunciator=self.annunciator)
