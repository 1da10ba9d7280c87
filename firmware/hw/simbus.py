# The `sim` board's adapter: every port call goes over a pipe to the emulator,
# which keeps the hardware models and the virtual clock (software in the loop,
# as PX4 and ArduPilot SITL do).
#   a read, or a storage write:  "P <port>.<method> <json args>"
#             back: "V <json value>" | "C" (the power is cut in this write)
#   a motor stroke, a sound, a clock setting:  "N <port>.<method> <json args>",
#             no answer: the emulator applies it in order
# Virtual time does not move while the pump handles one command, so the clock
# comes with the command line, not over the pipe; so do, for a wake-up, the
# battery gauge and the last stroke's result, which a wake-up reads once and
# before it strokes. Bytes travel as hex.
import json
import sys
from binascii import hexlify, unhexlify


class PowerLost(BaseException):
    """The emulator cut the power in the middle of a storage write. A
    BaseException, like the emulator's PowerCut: no `except Exception` in the
    firmware may catch it, so it stops the pump exactly where the cut is."""


class Bus:
    def __init__(self, inp=None, out=None):
        self.inp = inp or sys.stdin
        self.out = out or sys.stdout
        self.calls = 0

    def send(self, line):
        self.out.write(line + "\n")
        if hasattr(self.out, "flush"):
            self.out.flush()

    def tell(self, name, args):
        self.calls += 1
        self.send("N " + name + " " + json.dumps(args))

    def call(self, name, args):
        self.calls += 1
        self.send("P " + name + " " + json.dumps(args))
        reply = self.inp.readline()
        if reply.startswith("V "):
            return json.loads(reply[2:])
        if reply.startswith("C"):
            raise PowerLost()
        raise SystemExit("simbus: lost the emulator (%r)" % reply[:40])


class SimClock:
    def __init__(self, bus):
        self.bus = bus
        self.ticks = 0        # set from each command line
        self.wall = 0

    def ticks_ms(self):
        return self.ticks

    def wall_s(self):
        return self.wall

    def tod_s(self):
        return self.wall % 86400

    def set_wall(self, s):
        self.wall = s
        self.bus.tell("clock.set_wall", [s])


class SimMotor:
    def __init__(self, bus):
        self.bus = bus
        self.last = None      # the result, when it came with the command

    def stroke(self, kind):
        self.last = None
        self.bus.tell("motor.stroke", [kind])

    def result(self):
        if self.last is not None:
            return self.last
        return self.bus.call("motor.result", [])


class SimPressure:
    def __init__(self, bus):
        self.bus = bus

    def read(self):
        return self.bus.call("pressure.read", [])


class SimBattery:
    def __init__(self, bus):
        self.bus = bus
        self.known = None     # the level, when it came with the command

    def level(self):
        if self.known is not None:
            v = self.known
            self.known = None
            return v
        return self.bus.call("battery.level", [])


class SimStore:
    def __init__(self, bus):
        self.bus = bus

    def read(self, key):
        v = self.bus.call("store.read", [key])
        return None if v is None else unhexlify(v)

    def write(self, key, data):
        self.bus.call("store.write", [key, hexlify(bytes(data)).decode()])


class SimAnnunciator:
    def __init__(self, bus):
        self.bus = bus

    def sound(self, pattern):
        self.bus.tell("annunciator.sound", [pattern])
