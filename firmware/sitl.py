# The firmware as a separate process for the emulator (software in the loop):
#   micropython sitl.py BOARD_JSON
# The pump core runs unchanged on the `sim` adapter (hw/simbus.py). The emulator
# drives it with one command per line and the process answers each with one
# line, after any port calls and log records the command caused:
#   "<ticks> <wall_s> start <cause>" | "<ticks> <wall_s> cycle <battery> <result>"
#   | "<ticks> <wall_s> facts"
#   | "<ticks> <wall_s> call <method> <json args>"   (the clock at that moment first)
#   | "<ticks> <wall_s> keys <json>"  (attach the programmer link; json is
#       {"keys": {role: hex key}, "serial": SN or null, "seed": hex or null},
#       or, as before, just {role: hex key}; seed: session nonces from a seeded
#       generator, for reproducible runs, instead of os.urandom)
#   | "<ticks> <wall_s> link <now_ms> <hex bytes>"    (bytes from the programmer
#       on channel 0) -> R [changed, answer hex, bytes waiting, program]
#   | "<ticks> <wall_s> chan <id> <now_ms> <hex bytes>"  (the same on channel
#       id, made at first use) -> R [changed, answer hex, bytes waiting,
#       program, room]: room is how many bytes the channel takes next time
#   | "<ticks> <wall_s> drop <id>"   (the channel's connection closed)
#   -> "R <json>" | "X <error class> <json [field, reason] or [code]>"
#      | "X PowerLost []" (the emulator cut the power in a storage write)
# Event-log records go out as "L <json record>" as the pump writes them.
# The bridge is bounded like a board: a channel takes no more bytes than its
# reader has room for, and stops taking frames once OUT_SOFT bytes of answers
# wait, so no command line or answer grows with what a programmer sends.
import gc
import json
import sys
from binascii import hexlify, unhexlify
try:
    from os import urandom
except ImportError:     # the 32-bit WebAssembly build has no os.urandom: nonces from a seed
    urandom = None

sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else ".")

from hw.simbus import Bus, PowerLost, SimClock, SimMotor, SimPressure, SimBattery, SimStore, SimAnnunciator
from pump.controller import Pump, CommandError, Refused
from pump.program import ProgramError
from pump.link import Link, OUT_SOFT
from pump.session import SeededEntropy

# what a command may return, as JSON
RESULTS = {"program_now": lambda p: p.readback()}


class PipePort:
    """A channel's port: the bytes of one command in, the answer bytes
    collected for its reply."""

    def __init__(self):
        self.inbox = b""
        self.out = bytearray()

    def read(self, n=4096):
        data = self.inbox
        if len(data) > n:
            self.inbox = data[n:]
            return data[:n]
        self.inbox = b""
        return data

    def write(self, data):
        self.out += data

    def busy(self):
        return len(self.out) >= OUT_SOFT


def link_poll(link, port, now_ms, data):
    """-> [changed, answer hex, bytes waiting, the program in force as
    [raw, read-back] or None] (the emulator notes program changes)."""
    try:
        port.inbox += data
        changed = link.poll(now_ms)
        out = hexlify(port.out).decode()
    except MemoryError:
        # never expected (bytes in and answers are bounded); but a pump
        # survives any byte stream, and so does its stand-in: what was in
        # hand is lost, and counted
        port.inbox = b""
        gc.collect()
        link.unanswered += 1
        changed, out = False, ""
    port.out = bytearray()
    p = link.pump.program
    prog = None if p is None else [p.raw, p.readback()]
    return [changed, out, link.waiting() or len(port.inbox) > 0, prog]


def port_room(link, port):
    for ch in link.channels:
        if ch.port is port:
            return ch.reader.room() - len(port.inbox)
    return 0


def attach(link, ports, cid):
    port = ports.get(cid)
    if port is None:
        port = ports[cid] = PipePort()
        link.attach(port)
    return port


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
    ports = {}
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
                cfg = json.loads(rest.split(" ", 1)[1])
                if "keys" not in cfg:
                    cfg = {"keys": cfg}
                keys = {}
                for role, key in cfg["keys"].items():
                    keys[int(role)] = unhexlify(key)
                seed = cfg.get("seed")
                ports = {}
                if seed:
                    entropy = SeededEntropy(unhexlify(seed))
                elif urandom is not None:
                    entropy = urandom
                else:           # (the nonce also holds the boot count: still unique)
                    entropy = SeededEntropy(b"wasm32 build without os.urandom")
                link = Link(pump, None, keys, cfg.get("serial"), entropy)
                res = None
            elif cmd == "link":
                port = attach(link, ports, 0)
                res = link_poll(link, port, int(parts[1]), unhexlify(parts[2]) if len(parts) > 2 else b"")
            elif cmd == "chan":
                cid, now_ms, data = (rest.split(" ", 3) + [""])[1:4]
                port = attach(link, ports, int(cid))
                res = link_poll(link, port, int(now_ms), unhexlify(data))
                res.append(port_room(link, port))
            elif cmd == "drop":
                port = ports.pop(int(parts[1]), None)
                if port is not None:
                    link.detach(port)
                res = None
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
        try:
            line = "R " + json.dumps(res)
        except MemoryError:
            gc.collect()
            line = "R null"
        bus.send(line)


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
