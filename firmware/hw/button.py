# The patient's button (a bolus request), debounced: a press counts once, when
# the pin has read pressed for debounce_ms.
import time
from machine import Pin


class Button:
    def __init__(self, pin_no, debounce_ms=50):
        self.pin = Pin(pin_no, Pin.IN, Pin.PULL_UP)   # pressed pulls to ground
        self.debounce_ms = debounce_ms
        self.since = None
        self.fired = False

    def pressed(self):
        """-> True once per press."""
        down = self.pin.value() == 0
        now = time.ticks_ms()
        if not down:
            self.since = None
            self.fired = False
            return False
        if self.since is None:
            self.since = now
        if not self.fired and time.ticks_diff(now, self.since) >= self.debounce_ms:
            self.fired = True
            return True
        return False
