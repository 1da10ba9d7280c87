"""pump-emu: run the pump's firmware core in accelerated time, and judge it.

  pump-emu list                          the scenario library, one line each
  pump-emu run SCENARIO --out DIR [--seed N] [--no-plots] [--quiet] [--junit FILE] [--no-fail]
  pump-emu check DIR|SCENARIO... [--out DIR] [--junit FILE] [--jobs N] [--no-fail]
  pump-emu serve SCENARIO [--tcp PORT] ...   the pump as a serial device for pumpctl

SCENARIO is a library name (see `pump-emu list`) or a path to a .toml file.
Exit status (run and check): 0 every invariant check held and every
expectation of the scenario was met; 1 one failed (with --no-fail: 0, for
exploring); 2 bad input (an unknown scenario, a bad key or value, a program or
command the pump's own validation refuses), with a message naming the file,
key and reason. A check the run gave nothing to judge says "not checked" and
fails nothing.
"""
import argparse
import glob
import os
import sys

from emulator import report as R
from emulator.scenario import ScenarioError, find, library, load, fmt_time

RUNTIMES = ("cpython", "micropython", "wasm32")
RUNTIME_HELP = ("cpython: the firmware core in this process (default); micropython: the same firmware as a "
                "separate micropython process on the sim adapter (SITL); wasm32: that process on the 32-bit "
                "MicroPython WebAssembly build under Node, the firmware loaded from .mpy as on a board")
DEFAULT_SERIAL = "EMU-0001"     # the emulated pump's serial when no key file names one
IDLE_S = 60.0                   # (emulator.serve.IDLE_S: cli imports nothing heavy before it runs)
EXIT_PASS, EXIT_FAIL, EXIT_BAD = 0, 1, 2


def cmd_list(args):
    for name, path in library():
        try:
            sc = load(path)
            print("%-24s %-8s %s" % (name, fmt_time(sc.duration_ms).split(" ")[0], sc.title))
        except ScenarioError as e:
            print("%-24s BROKEN   %s" % (name, e))
    return 0


def _status(rep, no_fail):
    return EXIT_FAIL if rep["verdict"]["status"] == "fail" and not no_fail else EXIT_PASS


def _write_junit(path, reports=(), errors=()):
    from emulator import junit
    root = junit.new()
    for rep in reports:
        junit.add_report(root, rep)
    for name, file, msg in errors:
        junit.add_error(root, name, file, msg)
    junit.write(root, path)


def _check_out(path):
    """A file we will write at the end: its folder made now, so a typo fails first."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    if not os.access(d, os.W_OK):
        raise OSError("%s: cannot write there" % d)


def cmd_run(args):
    from emulator.engine import World
    if args.junit:
        _check_out(args.junit)
    try:
        sc = load(find(args.scenario))
    except ScenarioError as e:
        if args.junit:
            _write_junit(args.junit, errors=[(os.path.basename(args.scenario), args.scenario, str(e))])
        raise
    os.makedirs(args.out, exist_ok=True)
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
    try:
        rep = R.judged_run(w, args.runtime, progress)
    finally:
        if bar is not None:
            bar.close()
    if not args.no_plots:
        from emulator import plots
        plots.write_all(w, rep, args.out)
    R.write(w, rep, args.out)
    if args.junit:
        _write_junit(args.junit, [rep])
    if not args.quiet:
        print(R.summary(rep, args.out, rep["run"]["wall_s"], plots=not args.no_plots))
    return _status(rep, args.no_fail)


def scenario_files(items):
    """The scenarios named on the command line: folders (their .toml files,
    all levels down, sorted), files and library names, in the order given."""
    out = []
    for it in items:
        if os.path.isdir(it):
            found = sorted(glob.glob(os.path.join(it, "**", "*.toml"), recursive=True))
            if not found:
                raise ScenarioError(it, "-", "a folder with no .toml scenario in it")
            out.extend(found)
        else:
            out.append(it)
    return out


def check_one(item, runtime, out, plots):
    """One scenario of `check`, in a worker process. -> a small dict."""
    name = os.path.splitext(os.path.basename(item))[0]
    try:
        sc = load(find(item))
    except ScenarioError as e:
        return {"name": name, "file": item, "error": str(e)}
    from emulator.engine import World
    w = World(sc, runtime=runtime)
    rep = R.judged_run(w, runtime)
    if out:
        d = os.path.join(out, sc.name)
        if plots:
            from emulator import plots as P
            os.makedirs(d, exist_ok=True)
            P.write_all(w, rep, d)
        R.write(w, rep, d)
    return {"name": sc.name, "file": item, "report": rep}


def _table_line(r):
    if "error" in r:
        return "%-28s BAD   %s" % (r["name"], r["error"])
    rep = r["report"]
    v = rep["verdict"]
    note = ""
    if v["failed"]:
        note = "failed: " + ", ".join(v["failed"])
    if v["not_checked"]:
        note += ("; " if note else "") + "not checked: " + ", ".join(v["not_checked"])
    return "%-28s %-5s %7.1f d %7.1f s  %d checks, %d expectations  %s" % (
        r["name"], v["status"].upper(), rep["scenario"]["duration_ms"] / 86400000, rep["run"]["wall_s"],
        v["checks"], v["expectations"], note)


def cmd_check(args):
    files = scenario_files(args.scenarios)
    if args.junit:
        _check_out(args.junit)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    jobs = args.jobs or min(len(files), os.cpu_count() or 1)
    print("pump-emu check: %d scenario(s), %d at a time, runtime %s" % (len(files), jobs, args.runtime))
    results = []
    if jobs <= 1:
        for f in files:
            results.append(check_one(f, args.runtime, args.out, args.plots))
            print(_table_line(results[-1]), flush=True)
    else:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            futs = [ex.submit(check_one, f, args.runtime, args.out, args.plots) for f in files]
            for fu in futs:          # in the order given, each as soon as it and those before are done
                results.append(fu.result())
                print(_table_line(results[-1]), flush=True)
    bad = [r for r in results if "error" in r]
    failed = [r for r in results if "report" in r and r["report"]["verdict"]["status"] == "fail"]
    print("%d passed, %d failed, %d bad" % (len(results) - len(bad) - len(failed), len(failed), len(bad)))
    if args.junit:
        _write_junit(args.junit, [r["report"] for r in results if "report" in r],
                     [(r["name"], r["file"], r["error"]) for r in bad])
    if bad:
        return EXIT_BAD
    return EXIT_FAIL if failed and not args.no_fail else EXIT_PASS


def cmd_serve(args):
    from emulator.engine import World
    from emulator.serve import PtyPort, TcpPort, serve
    from linkkeys import keys as K
    sc = load(find(args.scenario))
    if args.out:
        # made and checked now: a session must not be lost to a typo at its end
        os.makedirs(args.out, exist_ok=True)
        if not os.access(args.out, os.W_OK):
            raise OSError("%s: cannot write there" % args.out)
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
    from cmdline.pipeout import run_quietly
    return run_quietly(_main, argv)


def _main(argv=None):
    if (sys.argv[1:] if argv is None else list(argv))[:1] == ["campaign"]:     # docs/campaigns.md
        from emulator.campaign import main as campaign
        return campaign((sys.argv[1:] if argv is None else list(argv))[1:])
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
    run.add_argument("--runtime", choices=RUNTIMES, default="cpython", help=RUNTIME_HELP)
    run.add_argument("--junit", metavar="FILE", help="also write JUnit XML: a testcase per check and expectation")
    run.add_argument("--no-fail", action="store_true",
                     help="exit 0 even when a check or expectation fails (exploring; bad input still exits 2)")
    chk = sub.add_parser("check", help="run many scenarios, one line each; exit 1 if any fails, 2 if any is bad")
    chk.add_argument("scenarios", nargs="+", metavar="DIR|SCENARIO",
                     help="folders of .toml files (all levels down), files or library names")
    chk.add_argument("--out", help="each scenario's trace.csv, events.csv and report.json in OUT/<name>/")
    chk.add_argument("--plots", action="store_true", help="with --out: the PNG plots too")
    chk.add_argument("--junit", metavar="FILE", help="JUnit XML: a testsuite per scenario")
    chk.add_argument("--jobs", "-j", type=int, default=0, metavar="N",
                     help="scenarios run at once, each in its own process (default: one per CPU)")
    chk.add_argument("--runtime", choices=RUNTIMES, default="cpython", help=RUNTIME_HELP)
    chk.add_argument("--no-fail", action="store_true", help="exit 0 even when a scenario fails (bad input: 2)")
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
    if args.cmd == "check" and args.jobs < 0:
        ap.error("--jobs must be 0 (one per CPU) or more")
    cmds = {"serve": cmd_serve, "list": cmd_list, "run": cmd_run, "check": cmd_check}
    try:
        return cmds[args.cmd](args)
    except ScenarioError as e:
        print("pump-emu: bad scenario: %s" % e, file=sys.stderr)
        return EXIT_BAD
    except ValueError as e:      # a bad key file
        print("pump-emu: %s" % e, file=sys.stderr)
        return EXIT_BAD
    except BrokenPipeError:
        raise                    # the reader went away: ended quietly by run_quietly
    except OSError as e:
        print("pump-emu: %s" % e, file=sys.stderr)
        return EXIT_BAD


if __name__ == "__main__":
    sys.exit(main())
