"""pump-emu serve: the emulator as a serial device.

The firmware's programmer link (pump.link) is attached to a pseudo-terminal
(its path is printed) or to a TCP port on localhost, so pumpctl, or any serial
terminal, talks to the emulated pump exactly as to a board. Virtual time runs
at --speed times real time (--realtime is 1x); the scenario's events happen on
their schedule. The link's own timing (a frame that stops half way) runs on
real time, as a UART's would.
"""
import os
import select
import signal
import socket
import sys
import time
import tty

from pump.controller import RESET_POWER_ON
from pump.link import Link

from emulator.store import PowerCut
from emulator.sitl import SitlLink

WRITE_WAIT_S = 0.2     # how long an answer waits for a programmer that does not read


class PtyPort:
    """The link port on the master side of a pseudo-terminal."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)          # no echo, no line editing: a byte pipe
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.dropped = 0
        self.stalled = False

    def fileno(self):
        return self.master

    def read(self):
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return b""

    def write(self, data):
        # a programmer that does not read must not stop the pump's time: wait
        # a little for room, then drop the rest (as a UART with nobody listening)
        view = memoryview(data)
        # once the programmer has stopped reading, drop at once until it reads again
        give_up = time.monotonic() + (0 if self.stalled else WRITE_WAIT_S)
        while view:
            try:
                n = os.write(self.master, view)
                view = view[n:]
            except BlockingIOError:
                if time.monotonic() >= give_up:
                    self.dropped += len(view)
                    self.stalled = True
                    return
                select.select([], [self.master], [], 0.01)
            except OSError:
                return
        self.stalled = False

    def close(self):
        os.close(self.master)
        os.close(self.slave)


class TcpPort:
    """The link port on a TCP socket (localhost); one programmer at a time."""

    def __init__(self, port):
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(1)
        self.srv.setblocking(False)
        self.port = self.srv.getsockname()[1]
        self.path = "socket://127.0.0.1:%d" % self.port
        self.conn = None

    def fileno(self):
        return self.conn.fileno() if self.conn is not None else self.srv.fileno()

    def read(self):
        if self.conn is None:
            try:
                self.conn, _ = self.srv.accept()
                self.conn.setblocking(False)
            except BlockingIOError:
                return b""
        try:
            data = self.conn.recv(4096)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self.conn.close()
            self.conn = None
        return data

    def write(self, data):
        if self.conn is None:
            return
        try:
            self.conn.settimeout(WRITE_WAIT_S)
            self.conn.sendall(data)
            self.conn.setblocking(False)
        except OSError:            # a programmer that does not read: let it go
            self.conn.close()
            self.conn = None

    def close(self):
        if self.conn is not None:
            self.conn.close()
        self.srv.close()


def _program_in_force(world, link):
    """-> (raw, read-back) of the program in force, or None."""
    if isinstance(link, SitlLink):        # the pump is in the micropython process
        return None if link.program is None else tuple(link.program)
    p = world.pump.program
    return None if p is None else (p.raw, p.readback())


def _attach(world, port, keys):
    if world.runtime in ("micropython", "wasm32"):
        return SitlLink(world.pump, port, keys)
    return Link(world.pump, port, keys)


def _note_changes(world, link):
    """A program or a clock setting that came over the link: the report's
    checks need them as they need the scenario's own. A program is new when it
    differs from the last one noted (the scenario's or the link's), by value:
    the same program sent again changes nothing the checks use."""
    p = _program_in_force(world, link)
    if p is not None and (not world.programs or world.programs[-1][1] != p[0]):
        world.programs.append((world.clock.now, p[0], p[1]))
    wall = world.clock.wall_s()
    t0, w0 = world.walls[-1]
    if wall - w0 != (world.clock.now - t0) // 1000:
        world.walls.append((world.clock.now, wall))


def serve(world, port, keys, speed, out=print, stop_after_s=None):
    """Run the world in (scaled) real time with the link on port, until
    interrupted (SIGINT/SIGTERM) or stop_after_s of real time."""
    world.begin()
    link = _attach(world, port, keys)
    pump = world.pump
    t0 = time.monotonic()
    v0 = world.clock.now
    stopping = []

    def stop(*_):
        stopping.append(1)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    out("pump-emu: serving %s on %s at %gx real time (Ctrl-C to stop)" % (world.sc.name, port.path, speed))
    sys.stdout.flush()
    while not stopping:
        real = time.monotonic() - t0
        if stop_after_s is not None and real >= stop_after_s:
            break
        target = v0 + int(real * 1000 * speed)
        world.advance_to(target)
        if world.pump is not pump:           # the pump reset: the link restarts with it
            pump = world.pump
            link = _attach(world, port, keys)
        # sleep until the next virtual event, a byte on the link, or 50 ms
        nxt = world.next_time()
        wait = max(0.0, min(0.05, (nxt - world.clock.now) / 1000.0 / speed))
        try:
            r, _, _ = select.select([port], [], [], wait)
        except (OSError, ValueError):
            r = [port]
        if r or link.reader.buf:
            try:
                changed = link.poll(int(time.monotonic() * 1000))
            except PowerCut:      # a reset armed by the scenario hit the link's write
                world.log("world", "fault", "power_cut", "reset in the middle of a storage write")
                world.reboot(RESET_POWER_ON)
                continue
            if changed:
                _note_changes(world, link)
                world.cycle()     # a command: the pump decides at once, as on a board
    return link
