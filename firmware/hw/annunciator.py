# The annunciator port: a piezo on PWM playing the reference's patterns (a
# three-second two-tone alarm for critical, a one-second single tone for
# non-critical) and a status LED. The core asks for a pattern; playing it takes
# seconds, so update() steps it from the main loop instead of blocking.
import time
from machine import Pin, PWM

TWO_TONE = 2
SINGLE_TONE = 1
# (frequency Hz, ms) steps; 0 Hz is silence
PATTERNS = {
    TWO_TONE: ((880, 250), (660, 250)) * 6,    # 3 s, two tones alternating
    SINGLE_TONE: ((880, 1000),),               # 1 s, one tone
}
DUTY_ON = 32768


class Buzzer:
    def __init__(self, pin_no, led_pin_no=None):
        self.pwm = PWM(Pin(pin_no))
        self.pwm.duty_u16(0)
        self.led = Pin(led_pin_no, Pin.OUT, value=0) if led_pin_no is not None else None
        self.queue = []        # steps still to play
        self.until = 0         # ticks when the current step ends
        self.playing = False

    def sound(self, pattern):
        self.queue.extend(PATTERNS.get(pattern, ()))
        if not self.playing:
            self._next(time.ticks_ms())

    def _next(self, now):
        if not self.queue:
            self.pwm.duty_u16(0)
            self.playing = False
            if self.led is not None:
                self.led.value(0)
            return
        freq, ms = self.queue.pop(0)
        if freq:
            self.pwm.freq(freq)
            self.pwm.duty_u16(DUTY_ON)
        else:
            self.pwm.duty_u16(0)
        if self.led is not None:
            self.led.value(1)
        self.playing = True
        self.until = time.ticks_add(now, ms)

    def update(self):
        """Called from the main loop. -> ms until the next step (None if silent)."""
        if not self.playing:
            return None
        now = time.ticks_ms()
        left = time.ticks_diff(self.until, now)
        if left <= 0:
            self._next(now)
            return 0 if self.playing else None
        return left
