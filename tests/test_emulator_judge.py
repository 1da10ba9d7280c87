"""pump-emu as a CI judge: exit status, JUnit, stroke-level expectations,
armed faults, and a report whose accounting adds up.

Each expectation key runs both ways (met: exit 0; unmet: exit 1). Planted
bugs (a pump changed the way a real bug would change it) show that the
checks can fail: each is run through the same command a CI job runs and
must exit 1 for the reason named.
"""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from emulator import cli, engine
from emulator import report as R
from emulator import scenario as S
from pump.controller import Pump

HERE = os.path.dirname(os.path.abspath(__file__))
JUNIT_XSD = os.path.join(HERE, "schemas", "junit-10.xsd")
VENV_BIN = os.path.dirname(sys.executable)
PROGRAM = {"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": 500, "max_daily_ug": 620,
           "max_hourly_ug": 40}


# --------------------------------------------------------------------------- helpers
def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return "{ " + ", ".join("%s = %s" % (k, _toml_value(x)) for k, x in v.items()) + " }"


def toml(d):
    """A scenario dict as TOML (each top-level key on one line, inline tables)."""
    return "".join("%s = %s\n" % (k, _toml_value(v)) for k, v in d.items())


def scenario(events=(), expect=(), duration="2d", program=PROGRAM, **more):
    d = {"title": "judge test", "duration": duration,
         "start": {"fill_ml": 20, "concentration_ug_ml": program["concentration_ug_ml"], "program": dict(program)},
         "events": list(events), "expect": list(expect)}
    d.update(more)
    return d


def write(tmp_path, name, d):
    p = tmp_path / (name + ".toml")
    p.write_text(toml(d))
    return str(p)


def run(capsys, path, tmp_path, *extra):
    """pump-emu run PATH -> (exit status, report.json or None, stdout, stderr)."""
    out = tmp_path / ("out-" + os.path.basename(path))
    code = cli.main(["run", path, "--out", str(out), "--no-plots"] + list(extra))
    o, e = capsys.readouterr()
    rep = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    return code, rep, o, e


def statuses(rep):
    return {c["id"]: c["status"] for c in rep["invariants"]}


# --------------------------------------------------------------------------- exit status
def test_a_clean_run_exits_0_and_says_pass(tmp_path, capsys):
    code, rep, out, _ = run(capsys, write(tmp_path, "clean", scenario()), tmp_path)
    assert code == 0
    assert rep["verdict"]["status"] == "pass" and rep["verdict"]["failed"] == []
    assert "verdict: PASS" in out
    # a run with strokes under a program judges every check on the stroke trace
    st = statuses(rep)
    assert st["I1"] == st["I1r"] == st["I2"] == st["I6"] == st["I9"] == st["I5"] == "ok", st
    assert st["I3"] == "not checked"        # it never stopped: nothing to judge, and it says so
    for c in rep["invariants"]:
        assert c["covered"], c


def test_a_failed_expectation_exits_1_and_no_fail_exits_0(tmp_path, capsys):
    path = write(tmp_path, "unmet", scenario(expect=[{"alarm": "occlusion"}]))
    code, rep, out, _ = run(capsys, path, tmp_path)
    assert code == 1
    assert rep["verdict"] == dict(rep["verdict"], status="fail", failed=["expect[0]"])
    assert "NOT MET: alarm occlusion raised" in out and "verdict: FAIL (expect[0])" in out
    code, rep, _, _ = run(capsys, path, tmp_path, "--no-fail")
    assert code == 0 and rep["verdict"]["status"] == "fail"     # the report still says so


@pytest.mark.parametrize("mutate,key", [
    (lambda d: d["start"]["program"].update(daily_dose_ug=-500), "start.program.daily_dose_ug"),
    (lambda d: d["start"]["program"].update(max_hourly_ug=0), "start.program.max_hourly_ug"),
    (lambda d: d["events"].append({"at": "0d 10:00", "do": "bolus", "dose_ug": 100, "duration_min": 0}),
     "events[0].duration_min"),
    (lambda d: d["events"].append({"at": "0d 10:00", "do": "program",
                                   "program": dict(PROGRAM, daily_dose_ug=900, max_daily_ug=800)}),
     "events[0].program."),
    (lambda d: d["events"].append({"at": "0d 10:00", "do": "refill", "volume_ml": 99,
                                   "concentration_ug_ml": 500}), "events[0].volume_ml"),
    (lambda d: d.update(timezone="Mars/Olympus"), "timezone"),
    (lambda d: d["events"].extend([{"at": "0d 10:00", "do": "reset_during_write"},
                                   {"at": "0d 10:00", "do": "reset_during_write", "nth_write": 3}]), "events[1]"),
    (lambda d: d["events"].append({"after": "bolus_begins + 10m", "do": "block"}), "events[0].after"),
    (lambda d: d["events"].append({"during": "dance", "do": "block"}), "events[0].during"),
    (lambda d: d["events"].append({"at": "0d 10:00", "at_write": 3, "do": "block"}), "events[0].at_write"),
    (lambda d: d["expect"].append({"delivered_ug": [10, 5]}), "expect[0].delivered_ug"),
    (lambda d: d["expect"].append({"no_strokes_after": "nowhere + 1h"}), "expect[0].no_strokes_after"),
    (lambda d: d["expect"].append({"same_trace_as": "no-such-scenario"}), "expect[0].same_trace_as"),
    (lambda d: d["expect"].append({"refusal": "because"}), "expect[0].refusal"),
])
def test_bad_input_exits_2_naming_the_file_and_key_before_running(mutate, key, tmp_path, capsys):
    d = scenario()
    mutate(d)
    path = write(tmp_path, "bad", d)
    code, rep, out, err = run(capsys, path, tmp_path)
    assert code == 2, (out, err)
    assert rep is None                              # nothing ran
    assert path in err and key in err, err
    assert "Traceback" not in err


def test_a_program_the_pump_refuses_is_bad_input_with_the_pumps_reason(tmp_path, capsys):
    d = scenario()
    d["start"]["program"]["daily_dose_ug"] = -500
    code, _, _, err = run(capsys, write(tmp_path, "neg", d), tmp_path)
    assert code == 2
    # the firmware's own validation said why, not a second copy of its rules
    from pump.program import ProgramError, validate
    with pytest.raises(ProgramError) as e:
        validate(d["start"]["program"], 250)
    assert e.value.reason in err


# --------------------------------------------------------------------------- expectations, both ways
SUSPENDED = [{"name": "off", "at": "0d 10:00", "do": "suspend"}, {"name": "on", "at": "0d 18:00", "do": "resume"}]
BOLUS = [{"name": "bolus", "at": "0d 12:00", "do": "bolus", "dose_ug": 10, "duration_min": 30}]
BLOCK = [{"name": "block", "at": "0d 10:00", "do": "block"}, {"at": "0d 14:00", "do": "release"},
         {"at": "0d 14:30", "do": "acknowledge", "alarm": "occlusion"}]
TOO_BIG = [{"at": "0d 10:00", "do": "bolus", "dose_ug": 100, "duration_min": 60}]
EXPECTATIONS = [
    # (key, events, met, unmet)
    ("alarm", BLOCK, {"alarm": "occlusion", "after": "block", "within_min": 60}, {"alarm": "motor_stall"}),
    ("alarm raised = false", BLOCK, {"alarm": "motor_stall", "raised": False},
     {"alarm": "occlusion", "raised": False}),
    ("refusal", TOO_BIG, {"refusal": "dose_limit", "after": "0d 10:00", "within_min": 1}, {"refusal": "lockout"}),
    ("flag", SUSPENDED, {"flag": "possible_withdrawal"}, {"flag": "possible_overdose"}),
    ("no_strokes_after", SUSPENDED, {"no_strokes_after": "off", "until": "on"},
     {"no_strokes_after": "off", "until": "on + 1h"}),
    ("delivered_ug", [], {"delivered_ug": [499, 501], "from": "1d", "to": "2d"},
     {"delivered_ug": [600, 700], "from": "1d", "to": "2d"}),
    ("boluses_granted", BOLUS, {"boluses_granted": 1, "kind": "clinician", "from": "bolus", "to": "bolus + 1m"},
     {"boluses_granted": 1, "kind": "patient"}),
    ("max_real_24h_ug", [], {"max_real_24h_ug": 500.2}, {"max_real_24h_ug": 499}),
    ("max_real_1h_ug", BOLUS, {"max_real_1h_ug": 31}, {"max_real_1h_ug": 25}),
]


@pytest.mark.parametrize("key,events,met,unmet", EXPECTATIONS, ids=[e[0] for e in EXPECTATIONS])
def test_each_expectation_key_met_and_unmet(key, events, met, unmet, tmp_path, capsys):
    code, rep, _, err = run(capsys, write(tmp_path, "met", scenario(events, [met])), tmp_path)
    assert code == 0, (rep and rep["expectations"], err)
    assert rep["expectations"][0]["status"] == "ok", rep["expectations"]
    code, rep, out, _ = run(capsys, write(tmp_path, "unmet", scenario(events, [unmet])), tmp_path)
    assert code == 1, rep["expectations"]
    e = rep["expectations"][0]
    assert e["status"] == "fail" and e["ok"] is False and e["detail"], e
    assert "NOT MET: " + e["expect"] in out


def test_same_trace_as_met_and_unmet(tmp_path, capsys):
    twin = write(tmp_path, "twin", scenario())
    other = write(tmp_path, "other", scenario(program=dict(PROGRAM, daily_dose_ug=450)))
    code, rep, _, _ = run(capsys, write(tmp_path, "a", scenario(expect=[{"same_trace_as": "twin.toml"}])), tmp_path)
    assert code == 0 and rep["expectations"][0]["detail"].startswith("%d strokes here, %d there"
                                                                      % ((rep["totals"]["delivered_strokes"],) * 2))
    code, rep, _, _ = run(capsys, write(tmp_path, "b", scenario(expect=[{"same_trace_as": "other.toml"}])), tmp_path)
    assert code == 1 and "first difference at" in rep["expectations"][0]["detail"]
    assert os.path.exists(twin) and os.path.exists(other)


# --------------------------------------------------------------------------- armed events
def test_an_event_placed_after_what_the_pump_does(tmp_path, capsys):
    """after = "bolus_start + 10m": the block comes ten minutes after the pump
    granted the bolus, whenever that was; the report says where it was placed."""
    events = [{"at": "0d 00:00", "after": "bolus_start + 10m", "do": "block"},
              {"at": "0d 13:00", "do": "release"}] + BOLUS
    path = write(tmp_path, "armed", scenario(events, [{"alarm": "occlusion", "after": "bolus + 10m",
                                                        "within_min": 60}]))
    code, rep, _, _ = run(capsys, path, tmp_path)
    assert code == 0, rep["expectations"]
    rows = (tmp_path / "out-armed.toml" / "events.csv").read_text().splitlines()
    block = [r for r in rows if ",world,fault,block," in r]
    assert len(block) == 1 and block[0].startswith("%d," % (12 * 3600000 + 600000)), block
    assert "(placed: bolus_start)" in block[0]


def test_an_armed_event_that_never_came_fails_the_run(tmp_path, capsys):
    """A fault waiting for a bolus that never came did not test anything: the
    run fails and says which event waited for what."""
    path = write(tmp_path, "never", scenario([{"after": "bolus_start + 10m", "do": "block"}]))
    code, rep, _, _ = run(capsys, path, tmp_path)
    assert code == 1
    e = rep["expectations"][-1]
    assert e["status"] == "fail" and "waiting for bolus_start" in e["expect"] and "never came" in e["detail"]


def test_a_battery_drop_at_a_storage_write(tmp_path, capsys):
    events = [{"at": "0d 10:00", "at_write": 5, "do": "battery_drop", "to_permille": 10}]
    code, rep, _, _ = run(capsys, write(tmp_path, "drop", scenario(events, [{"alarm": "battery_eos",
                                                                            "after": "0d 10:00",
                                                                            "within_min": 60}])), tmp_path)
    assert code == 0, rep["expectations"]
    rows = (tmp_path / "out-drop.toml" / "events.csv").read_text().splitlines()
    drop = [r for r in rows if ",world,fault,battery_drop," in r][0]
    assert "(placed: at write " in drop and int(drop.split(",")[0]) > 10 * 3600000


def test_power_cuts_re_armed_at_every_nth_write(tmp_path, capsys):
    events = [{"at": "0d 10:00", "do": "reset_during_write", "nth_write": 7, "repeat": 5}]
    code, rep, _, _ = run(capsys, write(tmp_path, "every", scenario(events)), tmp_path)
    assert code == 0
    assert rep["totals"]["resets"] == 5
    cuts = [t for t, what in rep["world"] if what == "power_cut"]
    assert len(cuts) == 5 and cuts == sorted(cuts) and cuts[0] >= 10 * 3600000


def test_a_cut_armed_while_another_waits_is_not_silently_replaced(tmp_path, capsys, monkeypatch):
    """A suspended pump writes little: a second power cut armed while the first
    still waits for its 50th write would replace it. It is not applied, and
    the run fails saying so."""
    events = [{"at": "0d 09:00", "do": "suspend"}, {"at": "0d 10:00", "do": "reset_during_write", "nth_write": 50},
              {"at": "0d 10:30", "do": "reset_during_write", "nth_write": 1}, {"at": "0d 12:00", "do": "resume"}]
    code, rep, _, _ = run(capsys, write(tmp_path, "collide", scenario(events)), tmp_path)
    assert code == 1
    e = [x for x in rep["expectations"] if x["status"] == "fail"]
    assert len(e) == 1 and e[0]["expect"] == "events[2] is applied each time", e
    assert "storage writes away: not applied" in e[0]["detail"]
    assert rep["totals"]["resets"] == 1          # the first cut, at its 50th write


# --------------------------------------------------------------------------- time zone
def test_a_time_zone_moves_the_wall_clock_at_the_real_instants():
    from emulator import timezone
    import datetime
    tz = timezone.zone("Europe/Paris")
    start = datetime.datetime(2026, 3, 1, 0, 0)
    tr = timezone.transitions(tz, start, 365 * 86400000)
    # 29 March 2026 02:00 CET -> 03:00 CEST; 25 October 2026 03:00 CEST -> 02:00 CET
    spring = (datetime.datetime(2026, 3, 29, 1, 0) - datetime.datetime(2026, 2, 28, 23, 0)).total_seconds()
    autumn = (datetime.datetime(2026, 10, 25, 1, 0) - datetime.datetime(2026, 2, 28, 23, 0)).total_seconds()
    assert tr == [(int(spring * 1000), 3600), (int(autumn * 1000), -3600)]
    sc = S.from_dict(dict(scenario(duration="400d"), start_time="2026-03-01T00:00", timezone="Europe/Paris"))
    dst = [(e.t_ms, e.args["shift_min"]) for e in sc.events if e.do == "dst"]
    assert dst == [(int(spring * 1000), 60), (int(autumn * 1000), -60), (dst[2][0], 60)]
    assert S.from_dict(scenario(duration="400d")).events == []      # no zone: the clinician's clock only


# --------------------------------------------------------------------------- the new library scenarios
NEW = ["torn-refill-write", "dst-fall-back-flex", "reset-storm"]


@pytest.mark.parametrize("name", NEW)
def test_the_new_library_scenarios_pass_with_every_check_covered(name, tmp_path, capsys):
    code, rep, out, _ = run(capsys, S.find(name), tmp_path)
    assert code == 0, [c for c in rep["invariants"] if c["status"] != "ok"] + rep["expectations"]
    st = statuses(rep)
    assert st["I1"] == st["I1r"] == st["I6"] == st["I9"] == "ok", st
    assert all(e["status"] == "ok" for e in rep["expectations"]) and rep["expectations"]


from campaign_bugs import AlarmsLostAtRestartPump  # noqa: E402  (the campaign proof plants the same bug)


class WallClockDayPump(Pump):
    """Keys the day's schedule on the wall clock alone: set back, a step runs again."""

    def __init__(self, profile, *args, **kw):
        from pump.timeofday import TimeOfDay

        class WallClockDay(TimeOfDay):
            def follow(self, dt_ms, tod_s):
                self.place(tod_s)
                return 0
        Pump.__init__(self, profile, *args, **kw)
        self.tod = WallClockDay()


class SlowRestartPump(Pump):
    """After each start gives nothing for 10 minutes and says nothing of it."""

    def _start(self, cause):
        Pump._start(self, cause)
        self._mute_until = self.clock.ticks_ms() + 600000

    def _stroke(self):
        if self.clock.ticks_ms() - self._mute_until < 0:
            self.schedule.refuse()
            return None
        return Pump._stroke(self)


PLANTED = [
    # (scenario, the planted bug, what must fail)
    ("torn-refill-write", AlarmsLostAtRestartPump, {"I9"}),
    ("dst-fall-back-flex", WallClockDayPump, {"I1r", "expect[0]"}),
    ("reset-storm", SlowRestartPump, {"I6", "I9", "expect[1]"}),
    ("reset-storm", "no restart count", {"expect[0]"}),
]


@pytest.mark.parametrize("name,bug,failing", PLANTED,
                         ids=["%s-%s" % (p[0], getattr(p[1], "__name__", "nocount")) for p in PLANTED])
def test_the_new_library_scenarios_fail_a_pump_with_the_old_bug(name, bug, failing, tmp_path, capsys,
                                                                monkeypatch):
    if bug == "no restart count":
        import pump.recovery
        monkeypatch.setattr(pump.recovery, "RESETS_ALARM", 10 ** 9)
    else:
        monkeypatch.setattr(engine, "Pump", bug)
    code, rep, out, _ = run(capsys, S.find(name), tmp_path)
    assert code == 1, rep["verdict"]
    assert failing <= set(rep["verdict"]["failed"]), rep["verdict"]
    assert "verdict: FAIL" in out


class SecondStrokePump(Pump):
    """Commands every stroke twice and counts it once: the governor never sees
    the second, so the caps are overrun by the motor, not by the schedule."""
    def _stroke(self):
        n = self.motor.commanded
        r = Pump._stroke(self)
        if self.motor.commanded > n:
            self.motor.stroke(0)
        return r


def test_the_cap_checks_fail_a_pump_that_gives_twice_what_it_counts(tmp_path, capsys, monkeypatch):
    """I2 (the sliding 24 h and 1 h caps) and I1r (any 24 real hours) are
    judged from the motor's trace: the real pump holds both on the scenario,
    the planted one fails both."""
    code, rep, _, _ = run(capsys, S.find("patient-bolus-lockout"), tmp_path / "real")
    st = statuses(rep)
    assert st["I2"] == st["I1r"] == "ok", st
    monkeypatch.setattr(engine, "Pump", SecondStrokePump)
    code, rep, _, _ = run(capsys, S.find("patient-bolus-lockout"), tmp_path / "planted")
    st = statuses(rep)
    assert code == 1 and st["I2"] == st["I1r"] == "fail", st


def test_a_silent_stop_of_two_days_fails_i6_and_i9(tmp_path, capsys, monkeypatch):
    """The seen case: no strokes for two days, state `running`, no alarm."""
    class StopsAfterADay(Pump):
        def _stroke(self):
            if self.clock.now > 86400000:
                self.schedule.refuse()
                return None
            return Pump._stroke(self)
    monkeypatch.setattr(engine, "Pump", StopsAfterADay)
    code, rep, _, _ = run(capsys, write(tmp_path, "quiet", scenario(duration="3d")), tmp_path)
    assert code == 1 and rep["final_state"] == "running"
    st = statuses(rep)
    assert st["I6"] == st["I9"] == "fail", st
    assert rep["accounting"]["unexplained_nl"] > 900000      # the two days' 2 mL, named as unexplained


# --------------------------------------------------------------------------- accounting
@pytest.mark.parametrize("name", ["reset-storm", "torn-refill-write", "catheter-kink", "patient-bolus-lockout"])
def test_the_accounting_adds_up(name, tmp_path, capsys):
    code, rep, out, _ = run(capsys, S.find(name), tmp_path)
    a = rep["accounting"]
    parts = (a["delivered_nl"] + sum(a["forfeited_by_stop_nl"].values()) + a["refused_nl"] + a["lost_to_reset_nl"]
             + a["owed_at_stops_nl"] + a["owed_at_end_nl"] + a["unexplained_nl"])
    assert abs(a["scheduled_nl"] - parts) <= 6, (a, parts)       # (each figure rounded down to a nL)
    assert abs(a["unexplained_nl"]) <= a["tolerance_nl"]
    assert a["delivered_nl"] == rep["totals"]["delivered_strokes"] * 250
    assert "not given: " in out and "reservoir: pump believes" in out
    res = rep["reservoir"]
    assert res["off_by_nl"] == res["pump_believes_nl"] - res["really_nl"]


# --------------------------------------------------------------------------- JUnit and check
def test_junit_is_valid_and_has_a_case_per_check_and_expectation(tmp_path, capsys):
    xmlschema = pytest.importorskip("xmlschema")
    path = write(tmp_path, "j", scenario(expect=[{"alarm": "occlusion"}, {"max_real_24h_ug": 501}]))
    junit = tmp_path / "reports" / "junit.xml"
    code, rep, _, _ = run(capsys, path, tmp_path, "--junit", str(junit))
    assert code == 1
    xmlschema.XMLSchema(JUNIT_XSD).validate(str(junit))
    suite = ET.parse(str(junit)).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(rep["invariants"]) + 2
    assert suite.get("failures") == "1" and suite.get("skipped") == "3" and suite.get("errors") == "0"
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == ["expect[0] alarm occlusion raised"]
    skipped = [c.get("name") for c in cases if c.find("skipped") is not None]
    assert skipped == ["I3 no stroke while stopped", "I7 alarms raised on their cause, and heard",
                       "I8 authority: therapy changed only as the clinic ordered (boluses as asked, suspensions as ordered)"]


def test_check_runs_many_and_exits_by_the_worst(tmp_path, capsys):
    xmlschema = pytest.importorskip("xmlschema")
    d = tmp_path / "suite"
    d.mkdir()
    write(d, "a-pass", scenario(duration="1d"))
    write(d, "b-fail", scenario(duration="1d", expect=[{"alarm": "occlusion"}]))
    code = cli.main(["check", str(d), "--jobs", "2"])
    out, _ = capsys.readouterr()
    assert code == 1
    lines = out.splitlines()
    assert lines[1].startswith("a-pass") and " PASS " in lines[1]
    assert lines[2].startswith("b-fail") and " FAIL " in lines[2] and "failed: expect[0]" in lines[2]
    assert lines[-1] == "1 passed, 1 failed, 0 bad"
    assert cli.main(["check", str(d), "--no-fail", "-j", "1"]) == 0
    bad = write(d, "c-bad", scenario(duration="1d", timezone="Nowhere/Else"))
    junit = tmp_path / "all.xml"
    code = cli.main(["check", str(d), "--junit", str(junit), "--out", str(tmp_path / "runs")])
    out, _ = capsys.readouterr()
    assert code == 2 and "c-bad" in out and " BAD " in out and bad in out
    xmlschema.XMLSchema(JUNIT_XSD).validate(str(junit))
    root = ET.parse(str(junit)).getroot()
    assert [s.get("name") for s in root.findall("testsuite")] == ["pump-emu.a-pass", "pump-emu.b-fail",
                                                                  "pump-emu.c-bad"]
    assert root.get("errors") == "1" and root.get("failures") == "1"
    assert (tmp_path / "runs" / "a-pass" / "report.json").exists()
    assert cli.main(["check", str(tmp_path / "suite" / "a-pass.toml")]) == 0


# --------------------------------------------------------------------------- small things
@pytest.mark.parametrize("argv", [["pump-emu", "list"], ["pump-emu", "--help"], ["pumpctl", "--help"]])
def test_a_closed_pipe_ends_quietly(argv):
    """`pump-emu list | head -1`, `pumpctl ... | head`: the reader goes away, no traceback."""
    mod = {"pump-emu": "emulator.cli", "pumpctl": "host_tools.pumpctl"}[argv[0]]
    exe = os.path.join(VENV_BIN, argv[0])
    cmd = ([exe] if os.path.exists(exe) else [sys.executable, "-m", mod]) + argv[1:]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()                     # before it writes a line
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) in (0, 141) and "Traceback" not in err and "BrokenPipe" not in err, err


def test_serve_out_is_checked_before_serving(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    exe = os.path.join(VENV_BIN, "pump-emu")
    argv = [exe] if os.path.exists(exe) else [sys.executable, "-m", "emulator.cli"]
    p = subprocess.run(argv + ["serve", "catheter-kink", "--tcp", "0", "--out", str(blocker / "out")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and str(blocker) in p.stderr and "Traceback" not in p.stderr, p.stderr


def test_serve_out_missing_folder_is_made_at_the_start(tmp_path, capsys, monkeypatch):
    from emulator import serve as SV
    seen = {}

    def fake_serve(w, port, keys, speed, serial=None, seed=None):
        seen["made"] = os.path.isdir(str(tmp_path / "new" / "deeper"))
    monkeypatch.setattr(SV, "serve", fake_serve)
    monkeypatch.setattr(SV, "PtyPort", lambda: type("P", (), {"close": lambda self: None})())
    monkeypatch.chdir(tmp_path)
    code = cli.main(["serve", "catheter-kink", "--out", str(tmp_path / "new" / "deeper")])
    assert code == 0 and seen["made"]
    assert (tmp_path / "new" / "deeper" / "report.json").exists()


def test_acknowledging_an_inactive_alarm_is_logged_as_an_error(tmp_path, capsys):
    events = [{"at": "0d 10:00", "do": "acknowledge", "alarm": "occlusion"}]
    code, rep, _, _ = run(capsys, write(tmp_path, "ack", scenario(events)), tmp_path)
    rows = (tmp_path / "out-ack.toml" / "events.csv").read_text().splitlines()
    ack = [r for r in rows if ",clinic,command,acknowledge occlusion," in r]
    assert ack == ["36000000,clinic,command,acknowledge occlusion,alarm: occlusion is not active"], ack


# --------------------------------------------------------------------------- I7: alarms on their cause
class PressureBlindPump(Pump):
    """Reads the catheter's pressure and does nothing with it."""

    def _on_pressure(self, p):
        pass


class MutePump(Pump):
    """Raises and logs its alarms, and never sounds one."""

    def __init__(self, *args, **kw):
        Pump.__init__(self, *args, **kw)
        self.alarms.ann = type("Mute", (), {"sound": lambda self, pattern: None})()


class GaugeBlindPump(Pump):
    """Samples its battery gauge and never acts on it."""

    def __init__(self, *args, **kw):
        Pump.__init__(self, *args, **kw)
        self.battery.sample = lambda level: None


class EndlessRetryPump(Pump):
    """Retries a stalled stroke for ever, never stopping with motor_stall."""

    def __init__(self, *args, **kw):
        from pump.motor import RETRY
        Pump.__init__(self, *args, **kw)
        sup = self.supervisor
        real = sup.feedback

        def feedback(result):
            act = real(result)
            if act is not None:
                sup.stalls = 0
                return RETRY
            return act
        sup.feedback = feedback


ALARM_BUGS = [
    ("catheter-kink", PressureBlindPump, "occlusion readings"),
    ("catheter-kink", MutePump, "without a sound"),
    ("battery-eri-eos", GaugeBlindPump, "battery at ERI"),
    ("motor-stall", EndlessRetryPump, "motor stalls in a row"),
]


@pytest.mark.parametrize("name,bug,why", ALARM_BUGS, ids=[b[1].__name__ for b in ALARM_BUGS])
def test_a_pump_deaf_to_its_sensors_or_mute_fails_i7(name, bug, why, tmp_path, capsys, monkeypatch):
    code, rep, _, _ = run(capsys, S.find(name), tmp_path)
    i7 = [c for c in rep["invariants"] if c["id"] == "I7"][0]
    assert code == 0 and i7["status"] == "ok" and i7["causes"] > 0, i7     # the real pump: covered and held
    monkeypatch.setattr(engine, "Pump", bug)
    code, rep, _, _ = run(capsys, S.find(name), tmp_path / "bug")
    i7 = [c for c in rep["invariants"] if c["id"] == "I7"][0]
    assert code == 1 and i7["status"] == "fail" and why in i7["detail"], i7


# --------------------------------------------------------------------------- I8: the clinic's orders
class DoubleBolusPump(Pump):
    """Gives (and logs) twice the clinician bolus asked for."""

    def clinician_bolus(self, dose_ug, duration_min):
        return Pump.clinician_bolus(self, 2 * dose_ug, duration_min)


class NoLockoutPump(Pump):
    """Forgets the patient bolus lockout."""

    def patient_bolus(self):
        if self.program is not None:
            self.program.pb_lockout_ms = 0
        return Pump.patient_bolus(self)


class SuspendIgnoredPump(Pump):
    """Answers a suspend and goes on pumping."""

    def suspend(self):
        self._sync()


class SuspendsItselfPump(Pump):
    """Stops after a day and calls it a suspension: no alarm, no order."""

    def cycle(self):
        if self.clock.now > 86400000 and not getattr(self, "_did", False):
            self._did = True
            Pump.suspend(self)
        return Pump.cycle(self)


class KeepsOldStrengthPump(Pump):
    """Told of a refill at a new strength, keeps the strength it had: the old
    program goes on with a drug it was not written for."""

    def refill(self, volume_nl, conc, *args):
        return Pump.refill(self, volume_nl, self.reservoir.conc or conc, *args)


def _orders():
    return scenario(duration="2d", events=[
        {"at": "0d 10:00", "do": "bolus", "dose_ug": 5, "duration_min": 60},
        {"at": "1d 12:00", "do": "suspend"}, {"at": "1d 18:00", "do": "resume"}])


ORDER_BUGS = [
    ("orders", DoubleBolusPump, "I8", "asked 10000 nL"),
    ("patient-bolus-lockout", NoLockoutPump, "I8", "lockout"),
    ("orders", SuspendIgnoredPump, "I3", "suspended by the clinic"),
    ("orders", SuspendsItselfPump, "I8", "suspended itself"),
    ("bridge-concentration-change", KeepsOldStrengthPump, "I3", "another strength than the program's"),
]


@pytest.mark.parametrize("name,bug,check,why", ORDER_BUGS, ids=[b[1].__name__ for b in ORDER_BUGS])
def test_a_pump_that_does_not_do_as_ordered_fails(name, bug, check, why, tmp_path, capsys, monkeypatch):
    path = write(tmp_path, name, _orders()) if name == "orders" else S.find(name)
    code, rep, _, _ = run(capsys, path, tmp_path)
    c = [c for c in rep["invariants"] if c["id"] == check][0]
    assert code == 0 and c["status"] == "ok", c          # the real pump: covered and held
    monkeypatch.setattr(engine, "Pump", bug)
    code, rep, _, _ = run(capsys, path, tmp_path / "bug")
    c = [c for c in rep["invariants"] if c["id"] == check][0]
    assert code == 1 and c["status"] == "fail" and why in c["detail"], c


# --------------------------------------------------------------------------- I9: refusals must be true
class HalfHourlyCapPump(Pump):
    """Its governor holds the hourly cap at half the program's, and says
    dose_limit: a refusal with its alarm up, and room under the real cap."""

    def _apply_limits(self):
        Pump._apply_limits(self)
        self.governor.cap_hour //= 2


def test_refusals_with_room_under_the_caps_fail_i9(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "caps", scenario(duration="1d"))
    code, rep, _, _ = run(capsys, path, tmp_path)
    assert code == 0 and statuses(rep)["I9"] == "ok"
    monkeypatch.setattr(engine, "Pump", HalfHourlyCapPump)
    code, rep, _, _ = run(capsys, path, tmp_path / "bug")
    i9 = [c for c in rep["invariants"] if c["id"] == "I9"][0]
    assert code == 1 and i9["status"] == "fail" and "1 h cap with" in i9["detail"], i9
    assert rep["accounting"]["refused_nl"] > 0          # the pump's refusals: logged, alarmed, untrue


# --------------------------------------------------------------------------- I5: the reservoir's count
class UnderCountPump(Pump):
    """Forgets every tenth stroke in its reservoir count: it believes it holds
    drug that is gone (it would run dry while saying it has some)."""

    def _stroke(self):
        n = self.reservoir.strokes
        r = Pump._stroke(self)
        if self.reservoir.strokes == n + 1 and n % 10 == 0:
            self.reservoir.strokes -= 1
        return r


def test_a_pump_that_believes_drug_that_is_not_there_fails_i5(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "count", scenario(duration="2d"))
    code, rep, _, _ = run(capsys, path, tmp_path)
    assert code == 0 and statuses(rep)["I5"] == "ok"
    monkeypatch.setattr(engine, "Pump", UnderCountPump)
    code, rep, _, _ = run(capsys, path, tmp_path / "bug")
    i5 = [c for c in rep["invariants"] if c["id"] == "I5"][0]
    assert code == 1 and i5["status"] == "fail" and "told volume less the strokes since" in i5["detail"], i5
