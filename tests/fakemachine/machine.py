# A fake `machine` module for running the board adapters under the MicroPython
# unix port: it records what the adapters did (pin writes, PWM tones, watchdog
# feeds) and plays the hardware's part (ADC readings, the motor's feedback
# edges) from the `sim` settings a test sets.
sim = {
    "step": None,            # the STEP pin number (set by the test)
    "feedback": None,        # the feedback pin number
    "steps_per_edge": 4,     # microsteps per feedback edge while the motor turns
    "stalled": False,        # a jammed motor gives no edges
    "adc": {},               # pin number -> read_u16 value
    "reset_cause": 1,
    "held": (),              # input pins held low (a button pressed) from the start
}
log = []                     # ("pin", n, v) | ("freq", n, f) | ("duty", n, d) | ("feed",) | ("rtc", t)
_pins = {}
_steps = [0]

PWRON_RESET = 1
WDT_RESET = 3
SOFT_RESET = 5


def reset_cause():
    return sim["reset_cause"]


def reset_log():
    del log[:]
    _steps[0] = 0


class Pin:
    OUT = 1
    IN = 0
    PULL_UP = 1
    IRQ_RISING = 1

    def __init__(self, n, mode=None, pull=None, value=None):
        self.n = n
        # an input with a pull-up reads high until something pulls it down
        self.v = value if value is not None else (1 if pull == Pin.PULL_UP else 0)
        if n in sim["held"] and mode == Pin.IN:
            self.v = 0
        self.handler = None
        _pins[n] = self
        if value is not None and mode == Pin.OUT:
            log.append(("pin", n, value))

    def value(self, v=None):
        if v is None:
            return self.v
        rising = v and not self.v
        self.v = v
        log.append(("pin", self.n, v))
        if rising and self.n == sim["step"] and not sim["stalled"]:
            _steps[0] += 1
            if _steps[0] % sim["steps_per_edge"] == 0:
                fb = _pins.get(sim["feedback"])
                if fb is not None and fb.handler is not None:
                    fb.handler(fb)

    def irq(self, trigger=None, handler=None):
        self.handler = handler


class ADC:
    ATTN_11DB = 3

    def __init__(self, pin):
        self.n = pin.n

    def atten(self, a):
        log.append(("atten", self.n, a))

    def read_u16(self):
        return sim["adc"].get(self.n, 0)


class PWM:
    def __init__(self, pin):
        self.n = pin.n

    def freq(self, f):
        log.append(("freq", self.n, f))

    def duty_u16(self, d):
        log.append(("duty", self.n, d))


class WDT:
    def __init__(self, timeout=5000):
        self.timeout = timeout

    def feed(self):
        log.append(("feed",))


class RTC:
    def datetime(self, t=None):
        if t is not None:
            log.append(("rtc", t))


class UART:
    def __init__(self, n, baudrate=115200, tx=None, rx=None):
        self.inbox = b""
        self.sent = b""

    def any(self):
        return len(self.inbox)

    def read(self, n=None):
        d, self.inbox = self.inbox, b""
        return d

    def write(self, d):
        self.sent += d
