"""pump-emu: run the pump's firmware core in accelerated time.

  pump-emu list                          the scenario library, one line each
  pump-emu run SCENARIO --out DIR [--seed N] [--no-plots] [--quiet]

SCENARIO is a library name (see `pump-emu list`) or a path to a .toml file.
Exit status: 0 when the run completed (alarms and failed checks are results,
reported in the summary and report.json); 2 on bad input (an unknown scenario,
a bad key in the file), with a message naming the file, key and reason.
"""
import argparse
import os
import sys
import time

from emulator import report as R
from emulator.scenario import ScenarioError, find, library, load, fmt_time

DEFAULT_SERIAL = "EMU-0001"     # the emulated pump's serial when no key file names one
IDLE_S = 60.0                   # (emulator.serve.IDLE_S: cli imports nothing heavy before it runs)


def cmd_list(args):
    for name, path in library():
        try:
            sc = load(path)
            print("%-24s %-8s %s" % (name, fmt_time(sc.duration_ms).split(" ")[0], sc.title))
        except ScenarioError as e:
            print("%-24s BROKEN   %s" % (name, e))
    return 0


def cmd_run(args):
    from emulator.engine import World
    sc = load(find(args.scenario))
    w = World(sc, seed=args.seed, runtime=args.runtime)
    bar = None
    progress = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm
        # shown only if the run takes more than a second, and only on a terminal
        bar = tqdm(total=sc.duration_ms / 86400000, unit="day", delay=1.0, mininterval=0.25,
                   desc=sc.name, leave=False, file=sys.stderr,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} days [{elapsed}<{remaining}]")

        def progress(t):
            bar.update(t / 86400000 - bar.n)
    t0 = time.perf_counter()
    try:
        w.run(progress)
        wall = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        rep = R.build(w)
    finally:
        w.close()
    rep["run"] = {"wall_s": round(wall, 3)}
    os.makedirs(args.out, exist_ok=True)
    if not args.no_plots:
        from emulator import plots
        plots.write_all(w, rep, args.out)
    R.write(w, rep, args.out)
    if not args.quiet:
        print(R.summary(rep, args.out, wall))
    return 0


def cmd_serve(args):
    from emulator.engine import World
    from emulator.serve import PtyPort, TcpPort, serve
    from host_tools import keys as K
    sc = load(find(args.scenario))
    w = World(sc, seed=args.seed, runtime=args.runtime)
    path = args.keys or os.environ.get("PUMP_KEYS") or K.DEFAULT_FILE
    if not os.path.exists(path):
        if path != K.DEFAULT_FILE:
            # a key file named but missing is a typo, not a request for new keys
            raise ValueError("%s: no such key file (make one with: pumpctl keys new %s)" % (path, path))
        K.generate(path)
        print("pump-emu: new master key written to %s (give pumpctl the same file)" % path)
    ks = K.load_file(path)
    serial = args.serial or ks.serial or DEFAULT_SERIAL
    from pump.session import valid_serial
    if not valid_serial(serial):
        raise ValueError("%r is not a pump serial (1 to 32 of A-Z a-z 0-9 - _ .)" % serial)
    if ks.serial is not None and serial != ks.serial:
        raise ValueError("%s holds the keys of pump %s, not of %s" % (path, ks.serial, serial))
    keys = ks.for_serial(serial)
    seed = None if args.link_seed is None else (args.link_seed & (2 ** 64 - 1)).to_bytes(8, "little")
    if args.idle_timeout <= 0:
        raise ValueError("--idle-timeout must be more than 0 s")
    port = TcpPort(args.tcp, idle_s=args.idle_timeout) if args.tcp is not None else PtyPort()
    speed = 1.0 if args.realtime else args.speed
    try:
        serve(w, port, keys, speed, serial=serial, seed=seed)
    finally:
        port.close()
    if args.out:
        # the report covers the time served, not the scenario's planned length
        sc.duration_ms = w.clock.now
        w.finish()
        rep = R.build(w)
        from emulator import plots
        plots.write_all(w, rep, args.out)
        R.write(w, rep, args.out)
        print(R.summary(rep, args.out))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="pump-emu", description=__doc__.split("\n")[0],
                                 epilog="Educational, non-medical model. See docs/emulator.md and docs/scenarios.md.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list the scenario library")
    run = sub.add_parser("run", help="run a scenario and write trace.csv, events.csv, report.json and plots")
    run.add_argument("scenario", help="a library name (pump-emu list) or a path to a .toml file")
    run.add_argument("--out", required=True, help="directory for the outputs (created if needed)")
    run.add_argument("--seed", type=int, default=None, help="random seed for the physics (default: the scenario's)")
    run.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    run.add_argument("--quiet", action="store_true", help="no summary, no progress bar")
    run.add_argument("--runtime", choices=("cpython", "micropython", "wasm32"), default="cpython",
                     help="cpython: the firmware core in this process (default); micropython: the same "
                          "firmware as a separate micropython process on the sim adapter (SITL); wasm32: "
                          "that process on the 32-bit MicroPython WebAssembly build under Node, the "
                          "firmware loaded from .mpy as on a board")
    srv = sub.add_parser("serve", help="run a scenario as a serial device for pumpctl (pty or TCP)")
    srv.add_argument("scenario", help="a library name (pump-emu list) or a path to a .toml file")
    where = srv.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal (default); its path is printed")
    where.add_argument("--tcp", type=int, metavar="PORT", help="serve on 127.0.0.1:PORT (0: any free port)")
    pace = srv.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="virtual seconds per real second (default 1)")
    pace.add_argument("--realtime", action="store_true", help="the same as --speed 1")
    srv.add_argument("--keys", help="key file: a master key (the pump's role keys are derived for its serial) "
                                     "or a pump key file (default $PUMP_KEYS or ./pump-keys.json, "
                                     "a new master key if missing)")
    srv.add_argument("--serial", help="the emulated pump's serial (default: the pump key file's, else %s)"
                     % DEFAULT_SERIAL)
    srv.add_argument("--idle-timeout", type=float, default=IDLE_S, metavar="S",
                     help="with --tcp: close a connection that sends nothing for S seconds (default %g)" % IDLE_S)
    srv.add_argument("--seed", type=int, default=None)
    srv.add_argument("--link-seed", type=int, default=None,
                     help="session nonces from this seed, for reproducible tests (default: os.urandom; with "
                          "a seed, a restarted emulator makes the same nonces again)")
    srv.add_argument("--runtime", choices=("cpython", "micropython", "wasm32"), default="cpython",
                     help="cpython: the firmware and its link in this process (default); micropython: "
                          "both in a separate micropython process (SITL), pumpctl talking to it; wasm32: "
                          "that process on the 32-bit MicroPython WebAssembly build under Node")
    srv.add_argument("--out", help="on exit, write trace.csv, events.csv and report.json here")
    args = ap.parse_args(argv)
    if args.cmd == "serve" and args.speed <= 0:
        ap.error("--speed must be more than 0")
    try:
        if args.cmd == "serve":
            return cmd_serve(args)
        return cmd_list(args) if args.cmd == "list" else cmd_run(args)
    except ScenarioError as e:
        print("pump-emu: bad scenario: %s" % e, file=sys.stderr)
        return 2
    except ValueError as e:      # a bad key file
        print("pump-emu: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("pump-emu: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
