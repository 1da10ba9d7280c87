"""Programmer link figures for `make bench`:

- a status request's round trip (median, p99) through `pump-emu serve` on a
  pseudo-terminal and on TCP, with the in-process (CPython) runtime and with
  the firmware in a `micropython` process (SITL); the pumplink client (what
  pumpctl uses) runs in this process. Each is shown against a floor measured
  in the same run: the round trip of the same bytes through an echo on the
  same transport, so the figure says what the pump adds;
- a whole `pumpctl status` command (process start included);
- how many fuzz frames a second the in-process link handles (valid signed
  frames with bytes flipped, cut, repeated or moved into another session,
  and key-less junk), and what floods of key-less bytes get back (bytes out
  per byte in).

Figures only: nothing here passes or fails.
"""
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tty

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), ROOT]

from host_tools.pumplink import PumpClient  # noqa: E402

BIN = os.path.dirname(sys.executable)
N_CALLS = int(os.environ.get("LINK_BENCH_CALLS", "300"))
N_PROCS = 10


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def serve(keys, transport, runtime):
    where = ["--pty"] if transport == "pty" else ["--tcp", "0"]
    srv = subprocess.Popen([os.path.join(BIN, "pump-emu"), "serve", "routine-refill", *where, "--speed", "1",
                            "--keys", keys, "--runtime", runtime], stdout=subprocess.PIPE, text=True)
    line = srv.stdout.readline()
    return srv, line.split(" on ")[1].split(" ")[0]


def round_trips(path, n):
    rtt = []
    with PumpClient(path, timeout=5) as pc:
        pc.status()
        for _ in range(n):
            t0 = time.perf_counter()
            pc.status()
            rtt.append((time.perf_counter() - t0) * 1000)
    return rtt


class Echo:
    """The floor: the same transport with an echo at the far end (no pump)."""

    def __init__(self, transport):
        self.stop = False
        if transport == "pty":
            self.master, slave = os.openpty()
            tty.setraw(slave)
            self.path = os.ttyname(slave)
            self.slave = slave
            self.t = threading.Thread(target=self._pty, daemon=True)
        else:
            self.srv = socket.socket()
            self.srv.bind(("127.0.0.1", 0))
            self.srv.listen(1)
            self.path = "socket://127.0.0.1:%d" % self.srv.getsockname()[1]
            self.t = threading.Thread(target=self._tcp, daemon=True)
        self.t.start()

    def _pty(self):
        while not self.stop:
            r, _, _ = select.select([self.master], [], [], 0.1)
            if r:
                os.write(self.master, os.read(self.master, 4096))

    def _tcp(self):
        c, _ = self.srv.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while not self.stop:
            d = c.recv(4096)
            if not d:
                return
            c.sendall(d)

    def close(self):
        self.stop = True


def echo_floor(transport, frame_len, answer_len, n):
    """Round trip of a request-sized write answered by an answer-sized read."""
    import serial
    e = Echo(transport)
    try:
        s = serial.serial_for_url(e.path, timeout=1)
        out = []
        req = b"x" * frame_len
        for _ in range(n):
            t0 = time.perf_counter()
            s.write(req + b"y" * (answer_len - frame_len))
            got = 0
            while got < answer_len:
                got += len(s.read(answer_len - got))
            out.append((time.perf_counter() - t0) * 1000)
        s.close()
        return out
    finally:
        e.close()


def _pump_and_link():
    """A filled, running pump on the test suite's fake hardware, its link on
    an in-memory port, a session started: -> (link, port, nonce)."""
    import json as _json
    sys.path[:0] = [os.path.join(ROOT, "tests", "portable")]
    from fakeports import Hardware
    from pump.controller import Pump
    from pump.link import Link, HELLO
    from pump import frames as F
    from pump.session import SeededEntropy
    with open(os.path.join(ROOT, "boards", "sim.json")) as f:
        prof = _json.load(f)
    hw = Hardware(prof)
    pump = Pump(prof, **hw.ports())
    pump.start()
    pump.refill(20_000_000, 500, 0)
    hw.motor.actual_nl = 20_000_000
    pump.program_now({"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": 400,
                      "max_daily_ug": 560, "max_hourly_ug": 60})

    class Port:
        def __init__(self):
            self.inbox = bytearray()
            self.out = 0
            self.last = b""

        def read(self, n):
            d = bytes(self.inbox[:n])
            del self.inbox[:n]
            return d

        def write(self, d):
            self.out += len(d)
            self.last = bytes(d)
    port = Port()
    link = Link(pump, port, {1: b"p" * 32, 2: b"c" * 32}, "BENCH-1", SeededEntropy(b"bench"))
    port.inbox += F.encode(HELLO, 1, b"")
    link.poll(0)
    nonce = bytes.fromhex(_json.loads(port.last[4 + F.HEAD_LEN:-4])["session"])
    return link, port, nonce


def fuzz_rate(n=20000):
    """-> (frames a second, frames, seconds) for the in-process link."""
    import random
    from pump import frames as F
    from pump import link as L
    from pump.hmac256 import HMAC256
    link, port, nonce = _pump_and_link()
    rnd = random.Random(7)
    ctx = F.context("BENCH-1", nonce)
    mac = HMAC256(b"c" * 32)
    frames = []
    for i in range(n):
        f = bytearray(F.encode(L.ALARM_TEST, i & 0xFFFF, b"{}", 2, 1 + (i % 50), mac, F.handle(nonce), ctx))
        op = rnd.randrange(4)
        if op == 0:
            f[rnd.randrange(len(f))] ^= 1 << rnd.randrange(8)
        elif op == 1:
            f = f[:rnd.randrange(1, len(f))]
        elif op == 2:
            f = bytearray(F.encode(L.BOLUS, i & 0xFFFF, b"{}", 2, i, HMAC256(bytes(32)), F.handle(nonce), ctx))
        else:
            f = bytearray(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 60)))
        frames.append(bytes(f))
    t0 = time.perf_counter()
    ms = 0
    for f in frames:
        port.inbox += f
        ms += 600                              # a cut frame times out before the next
        link.poll(ms)
        link.poll(ms + 600)
    dt = time.perf_counter() - t0
    return n / dt, n, dt


def flood_ratio(size=1 << 20):
    """-> text: bytes out per byte in for floods of the in-process link."""
    import random
    out = []
    rnd = random.Random(3)
    for name, data in (("A5 5A FF FF", b"\xa5\x5a\xff\xff" * (size // 4)),
                       ("random bytes", bytes(rnd.getrandbits(8) for _ in range(size)))):
        link, port, _ = _pump_and_link()
        port.out = 0
        port.inbox += data
        ms = 0
        while port.inbox:
            ms += 1
            link.poll(ms)
        out.append("%s %.3f" % (name, port.out / size))
    return "; ".join(out) + " (1 MB each, in process)"


def main():
    rows = []
    with tempfile.TemporaryDirectory() as d:
        keys = os.path.join(d, "keys.json")
        subprocess.run([os.path.join(BIN, "pumpctl"), "keys", "new", keys], check=True, stdout=subprocess.DEVNULL)
        for runtime in ("cpython", "micropython"):
            for transport in ("pty", "tcp"):
                srv, path = serve(keys, transport, runtime)
                try:
                    rtt = round_trips(path, N_CALLS)
                    procs = []
                    if runtime == "cpython" and transport == "pty":
                        for _ in range(N_PROCS):
                            t0 = time.perf_counter()
                            subprocess.run([os.path.join(BIN, "pumpctl"), "--port", path, "--keys", keys, "status"],
                                           check=True, stdout=subprocess.DEVNULL)
                            procs.append((time.perf_counter() - t0) * 1000)
                finally:
                    srv.terminate()
                    srv.wait(10)
                floor = echo_floor(transport, 20, 200, N_CALLS)
                rows.append((runtime, transport, rtt, floor, procs))
    print("programmer link: status round trip through pump-emu serve, %d calls each "
          "(floor: an echo on the same transport, same run):" % N_CALLS)
    for runtime, transport, rtt, floor, procs in rows:
        m, p = statistics.median(rtt), pct(rtt, 99)
        fm, fp = statistics.median(floor), pct(floor, 99)
        print("  %-11s %-3s  median %6.2f ms (%5.1fx floor %.3f ms), p99 %6.2f ms (%5.1fx floor %.3f ms)"
              % (runtime, transport, m, m / fm, fm, p, p / fp, fp))
        if procs:
            print("  `pumpctl status` command, %d runs (process start included): median %.0f ms, p99 %.0f ms"
                  % (N_PROCS, statistics.median(procs), pct(procs, 99)))
    print("  fuzz: %d frames a second refused by the in-process link (%d mutated or forged frames, %.2f s)"
          % fuzz_rate())
    print("  floods of key-less bytes, bytes out per byte in: %s" % flood_ratio())


if __name__ == "__main__":
    main()
