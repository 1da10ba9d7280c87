# The motor port: a stepper driver (A4988 / DRV8825: STEP, DIR, EN) turning a
# peristaltic head, with a feedback input (an encoder disc or a limit switch on
# the roller) counted by interrupt. A stroke is a fixed number of microsteps;
# fewer feedback edges than expected during it is a stall.
import time
from machine import Pin

COMPLETED = 1
STALLED = 0


class StepperMotor:
    def __init__(self, pins, cfg):
        self.step = Pin(pins["step"], Pin.OUT, value=0)
        self.dir = Pin(pins["dir"], Pin.OUT, value=0)
        self.en = Pin(pins["enable"], Pin.OUT, value=1)     # active low: off at rest
        self.fb = Pin(pins["feedback"], Pin.IN, Pin.PULL_UP)
        self.steps = cfg["microsteps_per_stroke"]
        self.pulse_us = cfg["step_pulse_us"]
        self.need = cfg["feedback_edges_per_stroke"]
        self.edges = 0
        self._last = COMPLETED
        self.fb.irq(trigger=Pin.IRQ_RISING, handler=self._edge)

    def _edge(self, pin):
        self.edges += 1

    def stroke(self, kind):
        self.edges = 0
        self.en.value(0)
        for _ in range(self.steps):
            self.step.value(1)
            time.sleep_us(self.pulse_us)
            self.step.value(0)
            time.sleep_us(self.pulse_us)
        self.en.value(1)        # the driver off between strokes: no heat, no drain
        self._last = COMPLETED if self.edges >= self.need else STALLED

    def result(self):
        return self._last
