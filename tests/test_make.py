"""The Makefile installs what each target needs and no more: make demo and
make lab the package alone, make mpy/flash/repl the board tools too, the tests
everything; make test-quick is offered beside make test. Checked with make -n
(nothing is run or installed)."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def plan(*target):
    """-> the commands make would run for a fresh clone (-B: as if nothing were built)."""
    r = subprocess.run(["make", "-n", "-B", *target], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [ln for ln in r.stdout.splitlines() if "pip install" in ln]


@pytest.mark.parametrize("target", [("demo",), ("lab",)])
def test_running_installs_the_package_alone(target):
    pips = plan(*target)
    assert any(ln.rstrip().endswith("pip install --quiet -e .") for ln in pips), pips
    assert not any("[test]" in ln or "[board]" in ln for ln in pips), pips


def test_a_board_gets_the_board_tools_not_the_test_chain():
    pips = plan("mpy", "BOARD=pico")
    assert any("-e '.[board]'" in ln for ln in pips) and not any("[test]" in ln for ln in pips), pips


@pytest.mark.parametrize("target", ["test", "test-quick", "test-deep", "bench"])
def test_the_tests_install_everything(target):
    assert any("-e '.[test]'" in ln for ln in plan(target))


def test_help_offers_a_quick_test_and_says_how_long_the_whole_suite_takes():
    r = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert "make test-quick" in r.stdout and "under 2 minutes" in r.stdout
    assert "10-15 minutes on 2 cores" in r.stdout


def test_ci_runs_make_test_as_the_readme_says():
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    assert lines[-1] == "make test"
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        assert "make test        # the whole suite" in f.read()
