"""pump-emu serve: the emulator as a serial device.

The firmware's programmer link (pump.link) is attached to a pseudo-terminal
(its path is printed) or to a TCP port on localhost, so pumpctl, or any serial
terminal, talks to the emulated pump exactly as to a board. Virtual time runs
at --speed times real time (--realtime is 1x); the scenario's events happen on
their schedule. The link's own timing (a frame that stops half way) runs on
real time, as a UART's would.

On TCP each connection is its own channel of the link: its own reader (a
frame half sent on one connection never holds up another), its own session,
its own answers. Up to MAX_CLIENTS connect at once; a connection that sends
nothing for IDLE_S seconds is closed, and when all places are taken a new
connection takes the place of the one idle longest. Answers go out with
TCP_NODELAY, all of one poll in one write.
"""
import os
import select
import signal
import socket
import sys
import time
import tty

from pump.controller import RESET_POWER_ON
from pump.link import Link, MAX_CHANNELS, OUT_SOFT

from emulator.store import PowerCut
from emulator.sitl import SitlLink

WRITE_WAIT_S = 0.2     # how long an answer waits for a programmer that does not read (pty)
IDLE_S = 60.0          # a TCP connection that sends nothing for this long is closed
MAX_CLIENTS = MAX_CHANNELS
OUT_CAP = 65536        # answer bytes a TCP connection may leave unread before it is closed
TICK_S = 1.0           # the link is polled at least this often (frame timeouts, its log)


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

    def read(self, n=4096):
        try:
            return os.read(self.master, n)
        except (BlockingIOError, OSError):
            return b""

    def write(self, data):
        # a programmer that does not read must not stop the pump's time: wait
        # a little for room, then drop the rest (as a UART with nobody listening)
        view = memoryview(bytes(data))
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

    # the transport: one port, always there
    def ports(self):
        return [self]

    def read_fds(self):
        return [self.master]

    def write_fds(self):
        return []

    def service(self, readable, writable):
        return [], []

    def flush(self):
        pass

    def close(self):
        os.close(self.master)
        os.close(self.slave)


class ConnPort:
    """One programmer's TCP connection: a channel of its own in the link."""

    def __init__(self, sock):
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.out = bytearray()
        self.closed = False
        self.last_rx = time.monotonic()

    def fileno(self):
        return self.sock.fileno()

    def read(self, n=4096):
        if self.closed or n <= 0:
            return b""
        try:
            data = self.sock.recv(n)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:
            self.close()
            return b""
        self.last_rx = time.monotonic()
        return data

    def write(self, data):
        if self.closed:
            return
        self.out += data
        if len(self.out) > OUT_CAP:      # a programmer that does not read: let it go
            self.close()

    def busy(self):
        """Answers wait unread: the link takes no new frame from here (the
        client's bytes wait in TCP, which then slows the client down)."""
        return len(self.out) >= OUT_SOFT

    def flush(self):
        while self.out and not self.closed:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            del self.out[:n]

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


class TcpPort:
    """The link's TCP server on localhost: several programmers at once, each
    connection its own channel (ConnPort)."""

    def __init__(self, port, idle_s=IDLE_S, max_clients=MAX_CLIENTS):
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(max_clients)
        self.srv.setblocking(False)
        self.port = self.srv.getsockname()[1]
        self.path = "socket://127.0.0.1:%d" % self.port
        self.idle_s = idle_s
        self.max_clients = max_clients
        self.conns = []
        self.refused = 0       # connections closed to make room, or for idling

    def ports(self):
        return list(self.conns)

    def read_fds(self):
        return [self.srv] + [c for c in self.conns if not c.busy()]

    def write_fds(self):
        return [c for c in self.conns if c.out]

    def service(self, readable, writable):
        """Accept new connections and close idle or closed ones: -> (new
        ports, ports gone)."""
        new, gone = [], []
        if self.srv in readable:
            while True:
                try:
                    sock, _ = self.srv.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                if len([c for c in self.conns if not c.closed]) >= self.max_clients:
                    # full: the connection idle longest makes room for the new one
                    oldest = min(self.conns, key=lambda c: c.last_rx)
                    oldest.close()
                    self.refused += 1
                c = ConnPort(sock)
                self.conns.append(c)
                new.append(c)
        now = time.monotonic()
        for c in self.conns:
            if not c.closed and now - c.last_rx > self.idle_s:
                c.close()
                self.refused += 1
        for c in self.conns:
            if c.closed:
                gone.append(c)
        if gone:
            self.conns = [c for c in self.conns if not c.closed]
            new = [c for c in new if not c.closed]
        return new, gone

    def flush(self):
        for c in self.conns:
            c.flush()

    def close(self):
        for c in self.conns:
            c.close()
        self.srv.close()


def _program_in_force(world, link):
    """-> (raw, read-back) of the program in force, or None."""
    if isinstance(link, SitlLink):        # the pump is in the micropython process
        return None if link.program is None else tuple(link.program)
    p = world.pump.program
    return None if p is None else (p.raw, p.readback())


def _attach(world, transport, keys, serial, seed):
    """The link of the pump now running, every open connection attached. A
    link's start writes to the store (its boot epoch): a power cut the
    scenario armed may fall there, and the pump starts again."""
    while True:
        try:
            return _new_link(world, transport, keys, serial, seed)
        except PowerCut:
            world.log("world", "fault", "power_cut", "reset in the middle of a storage write")
            world.reboot(RESET_POWER_ON)


def _new_link(world, transport, keys, serial, seed):
    if world.runtime in ("micropython", "wasm32"):
        link = SitlLink(world.pump, None, keys, serial, seed)
    else:
        from pump.session import SeededEntropy
        link = Link(world.pump, None, keys, serial, os.urandom if seed is None else SeededEntropy(seed))
    for p in transport.ports():
        link.attach(p)
    return link


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


def serve(world, port, keys, speed, out=print, stop_after_s=None, serial=None, seed=None):
    """Run the world in (scaled) real time with the link on port (a PtyPort or
    a TcpPort), until interrupted (SIGINT/SIGTERM) or stop_after_s of real
    time. keys: {role: key} for this pump's serial; seed: bytes for
    reproducible session nonces (None: os.urandom, so a restarted emulator
    never makes a nonce it made before)."""
    world.begin()
    transport = port
    link = _attach(world, transport, keys, serial, seed)
    # commands come over the link too, which the clinic record does not see:
    # the judge takes the pump's own log for them, and says so
    world.link_commands = True
    pump = world.pump             # (after the link: its start may have reset the pump)
    t0 = time.monotonic()
    v0 = world.clock.now
    last_poll = 0.0
    stopping = []

    def stop(*_):
        stopping.append(1)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    out("pump-emu: serving %s on %s at %gx real time (Ctrl-C to stop)" % (world.sc.name, transport.path, speed))
    sys.stdout.flush()
    while not stopping:
        real = time.monotonic() - t0
        if stop_after_s is not None and real >= stop_after_s:
            break
        target = v0 + int(real * 1000 * speed)
        world.advance_to(target)
        if world.pump is not pump:           # the pump reset: the link restarts with it (sessions end)
            link = _attach(world, transport, keys, serial, seed)
            pump = world.pump
        # sleep until the next virtual event, a byte on the link, or 50 ms
        nxt = world.next_time()
        wait = max(0.0, min(0.05, (nxt - world.clock.now) / 1000.0 / speed))
        if link.waiting():
            wait = min(wait, 0.01)
        try:
            r, w, _ = select.select(transport.read_fds(), transport.write_fds(), [], wait)
        except (OSError, ValueError):
            r, w = transport.read_fds(), []
        new, gone = transport.service(r, w)
        for p in gone:
            link.detach(p)
        for p in new:
            if link.attach(p) is None:
                p.close()
        now = time.monotonic()
        if r or new or link.waiting() or now - last_poll >= TICK_S:
            last_poll = now
            try:
                changed = link.poll(int(now * 1000))
            except PowerCut:      # a reset armed by the scenario hit the link's write
                world.log("world", "fault", "power_cut", "reset in the middle of a storage write")
                world.reboot(RESET_POWER_ON)
                continue
            if changed:
                _note_changes(world, link)
                world.cycle()     # a command: the pump decides at once, as on a board
        transport.flush()
    return link
