"""pump-emu campaign: many generated scenarios, judged, each failure shrunk.

  pump-emu campaign SPEC.toml --out DIR [--runs N] [--seed S]
                    [--workers K | --scheduler tcp://HOST:8786] [--runtime micropython]
  pump-emu campaign --resume DIR          continue a stopped campaign

Exit status: 0 no run failed; 1 a run failed a check (its shrunk scenario is
in DIR/failures/); 2 a bad spec or a spec that makes a bad scenario;
130 stopped by Ctrl-C (the results so far are kept: --resume DIR).
"""
import argparse
import os
import sys

EXIT_PASS, EXIT_FAIL, EXIT_BAD, EXIT_STOPPED = 0, 1, 2, 130


def parser():
    ap = argparse.ArgumentParser(prog="pump-emu campaign", description=__doc__.split("\n")[0],
                                 epilog="Educational, non-medical model. See docs/campaigns.md.")
    ap.add_argument("spec", nargs="?", help="a campaign spec (campaigns/*.toml); optional with --resume")
    ap.add_argument("--out", help="the campaign's folder: campaign.json, runs.csv, index.html, failures/")
    ap.add_argument("--runs", type=int, help="how many runs (default: the spec's `runs`)")
    ap.add_argument("--seed", type=int, help="the campaign's seed (default 1): the same seed makes the same runs")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="K",
                       help="local Dask workers, one process each (default: the machine's cores); "
                            "0: a plain loop in this process, no Dask")
    where.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://HOST:8786")
    ap.add_argument("--resume", metavar="DIR", help="continue the campaign in DIR: finished runs are not run again")
    ap.add_argument("--runtime", choices=("cpython", "micropython"), default=None,
                    help="cpython: the firmware core in the worker's process (default); micropython: the "
                         "firmware in a micropython process per run (SITL)")
    ap.add_argument("--shrink-per-check", type=int, default=None, metavar="N",
                    help="shrink at most N failing runs per check (default 3; the rest are in runs.csv)")
    ap.add_argument("--pump", metavar="MODULE:CLASS",
                    help="run another Pump class (a planted bug, to prove the campaign finds it); the module "
                         "must be importable on every worker")
    ap.add_argument("--no-html", action="store_true", help="campaign.json and runs.csv only")
    ap.add_argument("--quiet", action="store_true", help="no progress line, no summary")
    return ap


def main(argv=None):
    from emulator.campaign import dask_runner as D, report as R, spec as S
    from emulator.campaign.values import SpecError
    args = parser().parse_args(argv)
    seed, runs, runtime, spec_path, out = args.seed, args.runs, args.runtime, args.spec, args.out
    if args.resume:
        if out and os.path.abspath(out) != os.path.abspath(args.resume):
            print("pump-emu campaign: --resume DIR and --out name different folders", file=sys.stderr)
            return EXIT_BAD
        out = args.resume
        try:
            saved = D.load_args(out)
        except (OSError, ValueError):
            print("pump-emu campaign: %s: no campaign to resume there" % out, file=sys.stderr)
            return EXIT_BAD
        spec_path = spec_path or saved["spec"]
        seed = saved["seed"] if seed is None else seed
        if seed != saved["seed"]:
            print("pump-emu campaign: %s was run with seed %d, not %d" % (out, saved["seed"], seed), file=sys.stderr)
            return EXIT_BAD
        runs = runs or saved["runs"]
        runtime = runtime or saved["runtime"]
    if not spec_path or not out:
        print("pump-emu campaign: give SPEC.toml and --out DIR (or --resume DIR)", file=sys.stderr)
        return EXIT_BAD
    try:
        spec = S.load(spec_path)
    except SpecError as e:
        print("pump-emu campaign: bad spec: %s" % e, file=sys.stderr)
        return EXIT_BAD
    seed = 1 if seed is None else seed
    runs = runs or spec.get("runs", 100)
    if runs < 1 or (args.workers is not None and args.workers < 0):
        print("pump-emu campaign: --runs must be 1 or more, --workers 0 or more", file=sys.stderr)
        return EXIT_BAD
    if args.workers != 0:
        try:
            import distributed  # noqa: F401
        except ImportError:
            print("pump-emu campaign: Dask is not installed: pip install '.[campaign]' (or --workers 0 for a "
                  "plain loop in this process)", file=sys.stderr)
            return EXIT_BAD
    c = D.Campaign(spec, out, runs, seed, runtime or "cpython", pump=args.pump, quiet=args.quiet,
                   shrink_per_check=D.SHRINK_PER_CHECK if args.shrink_per_check is None else args.shrink_per_check)
    try:
        if args.workers == 0:
            c.run_local()
        else:
            c.run_dask(workers=args.workers or os.cpu_count() or 1, scheduler=args.scheduler)
    except SpecError as e:          # a run the spec made was a bad scenario
        print("pump-emu campaign: bad spec: %s" % e, file=sys.stderr)
        return EXIT_BAD
    s = R.write_all(c, plots=not args.no_html)
    if not args.quiet:
        print(R.text(s))
        print("report: %s" % os.path.join(out, "index.html" if not args.no_html else "campaign.json"))
    if c.interrupted:
        return EXIT_STOPPED
    return EXIT_FAIL if s["failed"] else EXIT_PASS
