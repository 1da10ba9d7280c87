"""Programmer link round trip over a pseudo-terminal: `pump-emu serve` in one
process, the pumplink client (what pumpctl uses) in this one. Prints the median
and 99th percentile of a status request's round trip, and of a whole
`pumpctl status` command (process start included). Figures only."""
import os
import statistics
import subprocess
import sys
import tempfile
import time

from host_tools.pumplink import PumpClient

BIN = os.path.dirname(sys.executable)
N_CALLS = 500
N_PROCS = 20


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    with tempfile.TemporaryDirectory() as d:
        keys = os.path.join(d, "keys.json")
        subprocess.run([os.path.join(BIN, "pumpctl"), "keys", "new", keys], check=True, stdout=subprocess.DEVNULL)
        srv = subprocess.Popen([os.path.join(BIN, "pump-emu"), "serve", "routine-refill", "--pty", "--speed", "1",
                                "--keys", keys], stdout=subprocess.PIPE, text=True)
        try:
            line = srv.stdout.readline()
            path = line.split(" on ")[1].split(" ")[0]
            rtt = []
            with PumpClient(path, timeout=5) as pc:
                pc.status()
                for _ in range(N_CALLS):
                    t0 = time.perf_counter()
                    pc.status()
                    rtt.append((time.perf_counter() - t0) * 1000)
            procs = []
            for _ in range(N_PROCS):
                t0 = time.perf_counter()
                subprocess.run([os.path.join(BIN, "pumpctl"), "--port", path, "status"], check=True,
                               stdout=subprocess.DEVNULL)
                procs.append((time.perf_counter() - t0) * 1000)
        finally:
            srv.terminate()
            srv.wait(10)
    print("programmer link over a pty (pump-emu serve, in-process runtime):")
    print("  status round trip, %d calls:  median %.2f ms, p99 %.2f ms, max %.2f ms"
          % (N_CALLS, statistics.median(rtt), pct(rtt, 99), max(rtt)))
    print("  `pumpctl status` command, %d runs (process start included): median %.0f ms, p99 %.0f ms"
          % (N_PROCS, statistics.median(procs), pct(procs, 99)))


if __name__ == "__main__":
    main()
