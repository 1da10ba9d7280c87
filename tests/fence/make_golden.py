"""The byte-identity fence: every library scenario and every hold-out in
tests/fence/holdouts/ run through the emulator (firmware core on CPython),
and the sha256 of the three files a run writes (trace.csv, events.csv,
report.json, exactly as `pump-emu run` writes them, minus the wall-clock
`run` entry) kept in tests/fence/golden.json.

A refactor or a speed-up must leave every byte alone: tests/test_fence.py
reruns them and compares. When a change of output is meant (a new event, a
judge that words a check differently), regenerate on purpose and commit the
new golden with the change that explains it:

    .venv/bin/python tests/fence/make_golden.py            # rewrite golden.json
    .venv/bin/python tests/fence/make_golden.py --check    # compare only, exit 1 on a difference
    .venv/bin/python tests/fence/make_golden.py --keep DIR # also keep the runs' files in DIR/<name>/
"""
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden.json")
FILES = ("trace.csv", "events.csv", "report.json")
REGENERATE = ".venv/bin/python tests/fence/make_golden.py"


def scenario_paths():
    """[(name, path)]: the library (scenarios/*.toml), then the hold-outs."""
    lib = sorted(glob.glob(os.path.join(ROOT, "scenarios", "*.toml")))
    hold = sorted(glob.glob(os.path.join(HERE, "holdouts", "*.toml")))
    return ([(os.path.splitext(os.path.basename(p))[0], p) for p in lib]
            + [("holdouts/" + os.path.splitext(os.path.basename(p))[0], p) for p in hold])


def run_one(path, out_dir):
    """Run one scenario and write its three files into out_dir, as `pump-emu run` does."""
    from emulator import report as R
    from emulator.engine import World
    from emulator.scenario import load
    w = World(load(path))
    try:
        w.run()
        rep = R.build(w)
    finally:
        w.close()
    R.write(w, rep, out_dir)


def digests(path, keep=None):
    """-> {file name: sha256 hex} for one scenario's run."""
    out = keep or tempfile.mkdtemp(prefix="fence-")
    try:
        run_one(path, out)
        d = {}
        for f in FILES:
            with open(os.path.join(out, f), "rb") as fh:
                d[f] = hashlib.sha256(fh.read()).hexdigest()
        return d
    finally:
        if keep is None:
            shutil.rmtree(out, ignore_errors=True)


def compute(keep=None):
    res = {}
    for name, path in scenario_paths():
        res[name] = digests(path, os.path.join(keep, name) if keep else None)
    return res


def load_golden():
    with open(GOLDEN) as f:
        return json.load(f)["digests"]


def differences(golden, now):
    """-> [str], one line per scenario/file whose bytes changed (or that appeared/vanished)."""
    out = []
    for name in sorted(set(golden) | set(now)):
        if name not in now:
            out.append("%s: in golden.json but no longer a scenario" % name)
        elif name not in golden:
            out.append("%s: a new scenario, not in golden.json" % name)
        else:
            for f in FILES:
                if golden[name].get(f) != now[name].get(f):
                    out.append("%s: %s changed (sha256 %s... now %s...)"
                               % (name, f, str(golden[name].get(f))[:12], now[name][f][:12]))
    return out


def main(argv):
    keep = None
    if "--keep" in argv:
        keep = argv[argv.index("--keep") + 1]
    now = compute(keep)
    if "--check" in argv:
        diff = differences(load_golden(), now)
        for line in diff:
            print(line)
        print("fence: %d scenario(s), %s" % (len(now), "%d difference(s)" % len(diff) if diff else "byte-identical"))
        return 1 if diff else 0
    with open(GOLDEN, "w") as f:
        json.dump({"about": "sha256 of each fence run's files; regenerate with: " + REGENERATE,
                   "digests": now}, f, indent=1, sort_keys=True)
        f.write("\n")
    print("fence: wrote %s (%d scenarios)" % (os.path.relpath(GOLDEN, ROOT), len(now)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
