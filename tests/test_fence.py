"""The byte-identity fence: every library scenario and hold-out writes the same
trace.csv, events.csv and report.json bytes as when tests/fence/golden.json
was made. A refactor or a speed-up that changes one byte fails here.
(~30 s on one core.) See tests/fence/make_golden.py."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fence"))
import make_golden as G  # noqa: E402

GOLDEN = G.load_golden()
CASES = G.scenario_paths()


def test_every_scenario_is_fenced():
    names = {n for n, _ in CASES}
    assert names == set(GOLDEN), (
        "the scenarios and golden.json disagree (new: %s; gone: %s); if that is meant, regenerate: %s"
        % (sorted(names - set(GOLDEN)), sorted(set(GOLDEN) - names), G.REGENERATE))


@pytest.mark.parametrize("name,path", CASES, ids=[n for n, _ in CASES])
def test_output_bytes_unchanged(name, path):
    if name not in GOLDEN:
        pytest.skip("not in golden.json (see test_every_scenario_is_fenced)")
    now = {name: G.digests(path)}
    diff = G.differences({name: GOLDEN[name]}, now)
    assert not diff, (
        "output bytes changed:\n  %s\n"
        "If the change is meant (not a refactor), regenerate the golden on purpose and commit it with "
        "the change: %s  (see the files with: %s --check --keep /tmp/fence)"
        % ("\n  ".join(diff), G.REGENERATE, G.REGENERATE))
