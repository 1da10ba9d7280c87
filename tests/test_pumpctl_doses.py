"""pumpctl speaks in doses: the clinician reads µg beside the pump's nL, a
refusal says why with its numbers (the cap, what was asked, the time left),
options that contradict each other are errors, every command explains itself,
and a reader that goes away (`pumpctl ... | head`) ends it quietly.

The refusal and read-back texts are checked on their own (pure functions fed
the pump's answers), then end to end: pumpctl (a subprocess) against
`pump-emu serve` on a pty, with the example programs in examples/.
"""
import argparse
import os
import re
import subprocess
import sys
import tomllib

import pytest

from host_tools import pumpctl
from test_link_e2e import Ctl, SCENARIO, new_keys, needs_tools, start_server, stop_server

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def run(argv):
    try:
        return pumpctl.main([str(a) for a in argv])
    except SystemExit as e:
        return e.code


# ------------------------------------------------------------ argument conflicts
@pytest.mark.parametrize("argv,says", [
    (["bolus", "--patient", "--dose-ug", "5"], "takes no --dose-ug or --duration-min"),
    (["bolus", "--patient", "--duration-min", "30"], "takes no --dose-ug or --duration-min"),
    (["bolus", "--dose-ug", "5"], "needs --dose-ug and --duration-min"),
    (["bolus"], "or --patient alone"),
    (["bolus", "--dose-ug", "501", "--duration-min", "30"], "outside 1 .. 500 µg"),
    (["bolus", "--dose-ug", "0", "--duration-min", "30"], "outside 1 .. 500 µg"),
    (["bolus", "--dose-ug", "5", "--duration-min", "1441"], "outside 1 .. 1440 min"),
    (["prime", "--duration-min", "241"], "outside 1 .. 240 min"),
    (["alarms", "ack"], "needs the alarm's NAME"),
    (["alarms", "ack", "no_such_alarm"], "unknown alarm"),
    (["alarms", "silence", "occlusion"], "takes no alarm name"),
])
def test_contradicting_or_out_of_range_options_are_usage_errors(argv, says, capsys, monkeypatch):
    """Nothing is sent: the request would not be what was typed."""
    def never(*a, **kw):
        raise AssertionError("pumpctl opened the port")
    monkeypatch.setattr(pumpctl, "PumpClient", never)
    rc = run(["--port", "loop://"] + argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert says in err, err
    assert "Traceback" not in err


# ------------------------------------------------------------ help
def _subparsers(ap):
    for a in ap._actions:
        if isinstance(a, argparse._SubParsersAction):
            return a
    return None


def test_every_command_and_option_has_help():
    ap = pumpctl.parser()
    sub = _subparsers(ap)
    helped = {c.dest for c in sub._choices_actions if c.help}
    assert helped == set(sub.choices), set(sub.choices) - helped
    for name, p in sub.choices.items():
        assert p.description, name
        parsers = [p] + (list(_subparsers(p).choices.values()) if _subparsers(p) else [])
        for q in parsers:
            for a in q._actions:
                if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                    continue
                assert a.help, "%s: %s has no help" % (q.prog, a.option_strings or a.dest)


def test_top_help_is_whole_and_points_the_right_way(capsys):
    with pytest.raises(SystemExit) as e:
        pumpctl.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    # the description is a whole sentence, not the first line of one
    assert "over its programmer link." in out
    flat = " ".join(out.split())
    assert "(see above)" not in flat and "see Keys below" in flat
    assert "Keys: --keys FILE" in out           # ... and Keys is below
    for cmd in ("status", "interrogate", "program", "refill", "bolus", "prime", "suspend", "resume",
                "alarms", "clock", "log", "keys"):
        assert re.search(r"^\s+%s\s+\S" % cmd, out, re.M) or re.search(r"^\s+%s\n\s+\S" % cmd, out, re.M), cmd


def test_bolus_help_gives_both_kinds_and_the_ranges(capsys):
    with pytest.raises(SystemExit):
        pumpctl.main(["bolus", "--help"])
    out = capsys.readouterr().out
    assert "1 .. 500" in out and "1 .. 1440" in out and "patient key" in out and "--patient" in out


# ------------------------------------------------------------ a closed pipe
def _with_no_reader(argv, cwd):
    r, w = os.pipe()
    os.close(r)                                  # `pumpctl ... | true`: nobody reads
    try:
        return subprocess.run([sys.executable, "-m", "host_tools.pumpctl"] + argv, stdout=w,
                              stderr=subprocess.PIPE, cwd=cwd, timeout=60,
                              env=dict(os.environ, PYTHONPATH=ROOT))
    finally:
        os.close(w)


def test_a_reader_that_went_away_ends_pumpctl_quietly(tmp_path):
    p = _with_no_reader(["keys", "new", str(tmp_path / "k.json")], tmp_path)
    assert p.returncode == 141, p.stderr         # 128 + SIGPIPE, as a C tool would end
    assert p.stderr == b""                       # no traceback, no BrokenPipeError message
    assert (tmp_path / "k.json").exists()        # the work was done; only its report was lost
    p = _with_no_reader(["--help"], tmp_path)
    assert p.returncode in (0, 141) and p.stderr == b"", p.stderr


# ------------------------------------------------------------ refusals with numbers
PROGRAM = {"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": 400, "daily_nl": 800000,
           "max_daily_nl": 1120000, "max_hourly_nl": 120000, "patient_bolus_nl": 60000,
           "patient_bolus_duration_min": 15, "patient_bolus_lockout_min": 120, "patient_bolus_max_per_day": 4}
ST = {"state": "running", "program": PROGRAM, "concentration_ug_ml": 500, "stops": []}


def test_lockout_refusal_gives_the_time_left():
    text = pumpctl.explain_refusal({"reason": "lockout", "detail": 4830}, ST)
    assert text == ("refused: lockout - the patient bolus is in its lockout (120 min from the start of the "
                    "last one); the next may be asked for in 1 h 20 min 30 s")


def test_max_per_day_refusal_gives_the_count_and_the_limit():
    text = pumpctl.explain_refusal({"reason": "max_per_day", "detail": 4}, ST)
    assert text == "refused: max_per_day - 4 patient boluses granted in the last 24 h, the program allows 4"


def test_dose_limit_refusal_gives_the_cap_what_was_given_and_what_was_asked():
    ans = {"reason": "dose_limit", "detail": 2, "cap": "hourly", "cap_nl": 120000, "used_nl": 100000}
    text = pumpctl.explain_refusal(ans, ST, asked_nl=60000)
    assert text == ("refused: dose_limit - the hourly cap is 60 µg (120000 nL); 50 µg (100000 nL) given in "
                    "that window, 10 µg (20000 nL) of room left; this bolus needs 30 µg (60000 nL) on top of "
                    "the basal due")


def test_not_enough_drug_and_not_allowed_say_what_to_do():
    text = pumpctl.explain_refusal({"reason": "not_enough_drug", "detail": 40000}, ST, asked_nl=60000)
    assert text == "refused: not_enough_drug - the reservoir has 20 µg (40000 nL) usable, the bolus needs 30 µg (60000 nL)"
    text = pumpctl.explain_refusal({"reason": "not_allowed", "detail": 0}, ST)
    assert "no patient bolus" in text and "examples/continuous-with-patient-bolus.toml" in text


def test_refusal_without_the_program_still_gives_the_pump_numbers():
    """The interrogate after a refusal may fail: the pump's own numbers remain."""
    text = pumpctl.explain_refusal({"reason": "dose_limit", "detail": 1, "cap": "daily", "cap_nl": 1120000,
                                    "used_nl": 1100000}, None)
    assert text == ("refused: dose_limit - the 24 h cap is 1120000 nL; 1100000 nL given in that window, "
                    "20000 nL of room left")


# ------------------------------------------------------------ read-back beside what was typed
def test_readback_rows_put_the_typed_value_beside_the_pump_dose_and_volume():
    with open(os.path.join(EXAMPLES, "continuous-with-patient-bolus.toml"), "rb") as f:
        typed = tomllib.load(f)
    rb = {"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": 440, "daily_nl": 880000,
          "steps": [{"start_min": 0, "daily_rate_ug": 440, "nl_per_day": 880000}],
          "max_daily_nl": 1200000, "max_hourly_nl": 120000, "patient_bolus_nl": 60000,
          "patient_bolus_duration_min": 15, "patient_bolus_lockout_min": 120, "patient_bolus_max_per_day": 4,
          "safe_rate_nl_day": 400000, "low_reservoir_nl": 2000000, "override_step_up": False}
    rows = {r[0].strip(): r[1:] for r in pumpctl.readback_rows(rb, typed)}
    assert rows["daily dose"] == ("440 µg/day", "440 µg/day", "880000 nL/day")
    assert rows["cap in any 24 h"] == ("600 µg", "600 µg", "1200000 nL")
    assert rows["patient bolus"] == ("30 µg", "30 µg", "60000 nL")
    assert rows["lockout"] == ("120 min", "120 min", "")
    assert rows["low reservoir alarm"] == ("2000 µL", "2000 µL", "2000000 nL")
    assert not any(k.startswith("step from") for k in rows)       # continuous: no steps to compare


def test_readback_shows_a_rounded_cap_as_the_pump_holds_it():
    """A cap the pump rounds down to whole nL reads back as what it holds, not as typed."""
    rb = {"mode": "continuous", "concentration_ug_ml": 3000, "daily_dose_ug": 100, "daily_nl": 33333,
          "steps": [], "max_daily_nl": 66666, "max_hourly_nl": 6666}
    rows = {r[0].strip(): r[1:] for r in pumpctl.readback_rows(rb, {"max_daily_ug": 200, "max_hourly_ug": 20})}
    assert rows["cap in any 24 h"] == ("200 µg", "199.998 µg", "66666 nL")


# ------------------------------------------------------------ end to end, with examples/
@pytest.fixture(scope="module")
def pump(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("doses")
    keyfile = new_keys(tmp, "pump-keys.json")
    srv = start_server(tmp, "pty", keyfile, SCENARIO)
    try:
        yield Ctl(srv, keyfile, tmp)
    finally:
        stop_server(srv)


@needs_tools
def test_examples_program_and_refusals_end_to_end(pump):
    r = pump("bolus", "--dose-ug", "100", "--duration-min", "60")
    assert r.returncode == 1, (r.stdout, r.stderr)
    # the hourly cap of 60 µg cannot hold 100 µg: the cap, what the window holds and the ask
    assert re.search(r"refused: dose_limit - the hourly cap is 60 µg \(120000 nL\); [0-9.]+ µg \(\d+ nL\) given "
                     r"in that window, [0-9.]+ µg \(\d+ nL\) of room left; this bolus needs 100 µg \(200000 nL\)",
                     r.stderr), r.stderr
    # a priming bolus in nL, µL and µg (500 µg/mL)
    r = pump("prime", "--duration-min", "60", "--volume-ul", "10")
    assert r.returncode == 0 and "priming 10000 nL (10 µL, 5 µg) over 60 min" in r.stdout, (r.stdout, r.stderr)
    for name in ("continuous-with-patient-bolus.toml", "flex-day-night.toml"):
        r = pump("program", os.path.join(EXAMPLES, name), "--yes")
        assert r.returncode == 0, (name, r.stdout, r.stderr)
        assert "confirmed: the program is in force (state running)" in r.stdout
    assert re.search(r"^\s+step from 22:00\s+300 µg/day\s+300 µg/day\s+600000 nL/day$", r.stdout, re.M), r.stdout
    # the flex example has no patient bolus: the refusal says what to do
    r = pump("bolus", "--patient")
    assert r.returncode == 1 and "refused: not_allowed" in r.stderr and "examples/" in r.stderr, r.stderr
