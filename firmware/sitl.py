# The firmware as a separate process for the emulator (software in the loop):
#   micropython sitl.py BOARD_JSON
# The pump core runs unchanged on the `sim` adapter (hw/simbus.py). The emulator
# drives it with one command per line and the process answers each with one
# line, after any port calls and log records the command caused:
#   "<ticks> <wall_s> start <cause>" | "<ticks> <wall_s> cycle <battery> <result>"
#   | "<ticks> <wall_s> facts"
#   | "<ticks> <wall_s> call <method> <json args>"   (the clock at that moment first)
#   | "<ticks> <wall_s> keys <json {role: hex key}>"  (attach the programmer link)
#   | "<ticks> <wall_s> link <now_ms> <hex bytes>"    (bytes from the programmer)
#   -> "R <json>" | "X <error class> <json [field, reason] or [code]>"
#      | "X PowerLost []" (the emulator cut the power in a storage write)
# Event-log records go out as "L <json record>" as the pump writes them.
import json
import sys
from binascii import hexlify, unhexlify

sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else ".")

from hw.simbus import Bus, PowerLost, SimClock, SimMotor, SimPressure, SimBattery, SimStore, SimAnnunciator
from pump.controller import Pump, CommandError, Refused
from pump.program import ProgramError
from pump.link import Link

# what a command may return, as JSON
RESULTS = {"program_now": lambda p: p.readback()}


class PipePort:
    """The programmer link's port: the bytes of one "link" command in, the
    answer bytes collected for its reply."""

    def __init__(self):
        self.inbox = b""
        self.out = bytearray()

    def read(self):
        data = self.inbox
        self.inbox = b""
        return data

    def write(self, data):
        self.out += data


def link_poll(link, port, now_ms, data):
    """-> [changed, answer hex, a frame half read, the program in force as
    [raw, read-back] or None] (the emulator notes program changes)."""
    port.inbox = data
    changed = link.poll(now_ms)
    out = hexlify(bytes(port.out)).decode()
    port.out = bytearray()
    p = link.pump.program
    prog = None if p is None else [p.raw, p.readback()]
    return [changed, out, len(link.reader.buf) > 0, prog]


def main():
    """The command loop, as a generator: send it one command line at a time.
    Its answers and port calls go out through the bus as it handles them."""
    with open(sys.argv[1]) as f:
        profile = json.load(f)
    bus = Bus()

    def sink(seq, day, ms, wall_s, kind, code, a, b):
        bus.send("L " + json.dumps([seq, day, ms, wall_s, kind, code, a, b]))

    clock = SimClock(bus)
    motor = SimMotor(bus)
    battery = SimBattery(bus)
    pump = Pump(profile, clock=clock, motor=motor, pressure=SimPressure(bus),
                battery=battery, store=SimStore(bus), annunciator=SimAnnunciator(bus), log_sink=sink)
    link = None
    port = PipePort()
    while True:
        line = yield
        ticks, wall, rest = line.rstrip("\n").split(" ", 2)
        clock.ticks = int(ticks)
        clock.wall = int(wall)
        parts = rest.split(" ", 2)
        cmd = parts[0]
        battery.known = None
        motor.last = None
        try:
            if cmd == "cycle":
                battery.known = int(parts[1])
                motor.last = int(parts[2])
                res = pump.cycle()
            elif cmd == "start":
                pump.start(int(parts[1]))
                res = None
            elif cmd == "facts":
                res = pump.facts()
            elif cmd == "keys":
                keys = {}
                for role, key in json.loads(rest.split(" ", 1)[1]).items():
                    keys[int(role)] = unhexlify(key)
                link = Link(pump, port, keys)
                res = None
            elif cmd == "link":
                res = link_poll(link, port, int(parts[1]), unhexlify(parts[2]) if len(parts) > 2 else b"")
            elif cmd == "call":
                name = parts[1]
                res = getattr(pump, name)(*json.loads(parts[2]))
                conv = RESULTS.get(name)
                if conv is not None:
                    res = conv(res)
            else:
                raise SystemExit("sitl: unknown command " + cmd)
        except ProgramError as e:
            bus.send("X ProgramError " + json.dumps([e.field, e.reason]))
            continue
        except CommandError as e:
            bus.send("X CommandError " + json.dumps([e.field, e.reason]))
            continue
        except Refused as e:
            bus.send("X Refused " + json.dumps([e.code]))
            continue
        except PowerLost:
            # the pump stopped where the power went; this process stays only
            # to report the counters it had (facts), then the emulator ends it
            bus.send("X PowerLost []")
            continue
        bus.send("R " + json.dumps(res))


_commands = None


def step():
    """Handle the next command line on stdin; False at its end. A process runs
    this in a loop; the wasm32 runtime calls it from its own loop, because
    that port collects garbage only between such calls."""
    global _commands
    if _commands is None:
        _commands = main()
        next(_commands)
    line = sys.stdin.readline()
    if not line:
        return False
    _commands.send(line)
    return True


if __name__ == "__main__":
    while step():
        pass
