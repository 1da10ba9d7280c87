"""End to end: `pumpctl` (a subprocess, pyserial) against `pump-emu serve`
(a subprocess) over a real pseudo-terminal, and the same over TCP (--tcp 0,
a socket:// URL).

The server runs a small scenario written here: 20 mL of 500 ug/mL and a
continuous program of 400 ug/day with a patient bolus, at 600 times real time
(one real second is ten pump minutes). Its key file comes from `pumpctl keys
new`. Every test gets its own server, stopped in a finally (SIGTERM, then
SIGKILL if it does not stop).

Each test runs against three servers: the in-process runtime (the firmware
core and its link imported into pump-emu's CPython process) on a pty and on
TCP, and the MicroPython SITL runtime on a pty (`--runtime micropython`: the
firmware and its link in a separate `micropython` process, pump-emu only
forwarding the bytes), so pumpctl also talks to the firmware as MicroPython
runs it.

No timing assertions: waits are bounded, but only to fail instead of hanging.
"""
import csv
import json
import os
import re
import signal
import subprocess
import time

import pytest

from test_micropython import _tool, MICROPYTHON

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PUMP_EMU = _tool("pump-emu")
PUMPCTL = _tool("pumpctl")
needs_tools = pytest.mark.skipif(PUMP_EMU is None or PUMPCTL is None,
                                 reason="pump-emu / pumpctl console scripts not installed (pip install -e .)")
pytestmark = needs_tools

SPEED = 600
SCENARIO = """\
title = "programmer link end to end"
description = "pumpctl drives this pump over a pty or TCP"
duration = "30d"

[start]
fill_ml = 20
concentration_ug_ml = 500

[start.program]
mode = "continuous"
concentration_ug_ml = 500
daily_dose_ug = 400
max_daily_ug = 560
max_hourly_ug = 60
patient_bolus = { dose_ug = 30, duration_min = 5, lockout_min = 240, max_per_day = 4 }
"""
# +12.5 %: inside the 30 % step-up limit
NEW_PROGRAM = """\
mode = "continuous"
concentration_ug_ml = 500
daily_dose_ug = 450
max_daily_ug = 560
max_hourly_ug = 60

[patient_bolus]
dose_ug = 30
duration_min = 5
lockout_min = 240
max_per_day = 4
"""
# +100 % without override_step_up
STEP_UP_PROGRAM = """\
[program]
mode = "continuous"
concentration_ug_ml = 500
daily_dose_ug = 800
max_daily_ug = 1000
max_hourly_ug = 80
"""
LINE = re.compile(r"^pump-emu: serving (\S+) on (\S+) at ([0-9.]+)x real time")


def clean_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUMP_")}
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join([os.path.dirname(PUMPCTL), env.get("PATH", "")])
    env["HOME"] = str(tmp_path)
    return env


def new_keys(tmp_path, name):
    path = tmp_path / name
    r = subprocess.run([PUMPCTL, "keys", "new", str(path)], cwd=tmp_path, env=clean_env(tmp_path),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "wrote a new master key" in r.stdout
    keys = json.loads(path.read_text())
    assert sorted(keys) == ["master"] and len(keys["master"]) == 64
    assert os.stat(path).st_mode & 0o777 == 0o600
    return path


class Server:
    def __init__(self, proc, port, name, out_path, err_path):
        self.proc, self.port, self.name = proc, port, name
        self.out_path, self.err_path = out_path, err_path

    def output(self):
        return "--- stdout ---\n%s\n--- stderr ---\n%s" % (self.out_path.read_text(), self.err_path.read_text())


def start_server(tmp_path, transport, keyfile, scenario_text=SCENARIO, runtime="cpython", extra=()):
    sc = tmp_path / "link-e2e.toml"
    sc.write_text(scenario_text)
    where = ["--pty"] if transport == "pty" else ["--tcp", "0"]
    where += ["--runtime", runtime] + list(extra)
    out_path, err_path = tmp_path / "serve.out", tmp_path / "serve.err"
    # output to files, not pipes: a server nobody reads from must never block on print
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen([PUMP_EMU, "serve", str(sc), *where, "--speed", str(SPEED), "--keys", str(keyfile)],
                                cwd=tmp_path, env=clean_env(tmp_path), stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
    end = time.monotonic() + 30
    while True:
        text = out_path.read_text()
        if "\n" in text:
            m = LINE.match(text.splitlines()[0])
            assert m, "unexpected first line: %r" % text
            assert float(m.group(3)) == SPEED
            port = m.group(2)
            if transport == "pty":
                assert port.startswith("/dev/") and os.path.exists(port), port
            else:
                assert re.match(r"^socket://127\.0\.0\.1:\d+$", port), port
                assert not port.endswith(":0")
            return Server(proc, port, m.group(1), out_path, err_path)
        if proc.poll() is not None or time.monotonic() > end:
            proc.kill()
            raise AssertionError("pump-emu serve did not start (rc %s)\n%s\n%s" % (
                proc.poll(), text, err_path.read_text()))
        time.sleep(0.05)


def children(pid):
    """Command lines of a process's children (Linux /proc)."""
    out = []
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, task)) as f:
            for kid in f.read().split():
                try:
                    with open("/proc/%s/cmdline" % kid, "rb") as c:
                        out.append(c.read().replace(b"\0", b" ").decode(errors="replace"))
                except OSError:
                    pass
    return out


def stop_server(srv, timeout=10):
    """SIGTERM; -> its exit status, or None if it had to be killed."""
    if srv.proc.poll() is not None:
        return srv.proc.returncode
    srv.proc.send_signal(signal.SIGTERM)
    try:
        return srv.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        srv.proc.kill()
        srv.proc.wait(10)
        return None


@pytest.fixture
def keyfile(tmp_path):
    return new_keys(tmp_path, "pump-keys-test.json")


@pytest.fixture(params=["pty", "tcp", "pty-micropython"])
def server(request, tmp_path, keyfile):
    transport, _, runtime = request.param.partition("-")
    if runtime and MICROPYTHON is None:
        pytest.skip("the micropython binary is not installed (make test installs it in .venv)")
    srv = start_server(tmp_path, transport, keyfile, runtime=runtime or "cpython")
    srv.transport = transport
    if runtime:
        # the pump really is a micropython process running firmware/sitl.py
        kids = children(srv.proc.pid)
        assert any("micropython" in c and "sitl.py" in c for c in kids), kids
    try:
        yield srv
    finally:
        rc = stop_server(srv)
        srv.stopped_rc = rc


class Ctl:
    """Runs the pumpctl console script against one server."""

    def __init__(self, srv, keyfile, tmp_path):
        self.srv, self.keyfile, self.tmp_path = srv, keyfile, tmp_path

    def __call__(self, *args, keys="default", port=None, timeout=3.0):
        argv = [PUMPCTL, "--port", port or self.srv.port, "--timeout", str(timeout)]
        if keys == "default":
            keys = self.keyfile
        if keys is not None:
            argv += ["--keys", str(keys)]
        r = subprocess.run(argv + [str(a) for a in args], cwd=self.tmp_path, env=clean_env(self.tmp_path),
                           capture_output=True, text=True, timeout=60)
        if self.srv is not None and self.srv.proc.poll() is not None:
            raise AssertionError("pump-emu serve died\n" + self.srv.output())
        return r

    def json(self, *args, **kw):
        r = self(*(("--json",) + args), **kw)
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        return json.loads(r.stdout)


@pytest.fixture
def ctl(server, keyfile, tmp_path):
    return Ctl(server, keyfile, tmp_path)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


# ------------------------------------------------------------------- reading
def test_status(ctl, server):
    r = ctl("status")
    assert r.returncode == 0, r.stderr
    assert re.search(r"^state:\s+running$", r.stdout, re.M), r.stdout
    assert re.search(r"^alarms:\s+none$", r.stdout, re.M)
    # the volume in mL and nL, and the drug it holds in µg (500 µg/mL)
    m = re.search(r"^reservoir:\s+([0-9.]+) mL = (\d+) nL \(([0-9.]+) µg of drug at 500 µg/mL\)$", r.stdout, re.M)
    assert m and 19.0 < float(m.group(1)) <= 20.0, r.stdout
    assert abs(int(m.group(2)) / 1e6 - float(m.group(1))) < 0.001
    assert abs(float(m.group(3)) - int(m.group(2)) * 500 / 1e6) < 0.001
    assert re.search(r"^pump clock:\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", r.stdout, re.M)
    # status needs no key at all
    r = ctl("status", keys=None)
    assert r.returncode == 0 and "running" in r.stdout


def test_interrogate_json(ctl):
    st = ctl.json("interrogate", keys=None)
    assert st["ok"] is True and st["state"] == "running" and st["stops"] == []
    assert st["concentration_ug_ml"] == 500 and st["fill_nl"] == 20_000_000
    assert 19_000_000 < st["reservoir_nl"] <= 20_000_000
    p = st["program"]
    assert (p["mode"], p["daily_dose_ug"], p["daily_nl"], p["concentration_ug_ml"]) == ("continuous", 400, 800_000, 500)
    assert (p["max_daily_nl"], p["max_hourly_nl"]) == (1_120_000, 120_000)
    assert (p["patient_bolus_nl"], p["patient_bolus_lockout_min"]) == (60_000, 240)
    assert st["counters"] == [0, 0] and st["pending_program"] is None
    assert st["serial"] == "EMU-0001"          # the emulated pump's, shown by interrogate
    assert st["alarms"] == [] and st["safe_mode"] is False
    # a stroke is counted before it is commanded: one may be in flight
    assert 0 <= st["strokes_counted"] - st["strokes_completed"] <= 1 and st["strokes_completed"] >= 0
    assert isinstance(st["log_seq"], int) and st["log_seq"] > 0
    r = ctl("interrogate")
    assert r.returncode == 0 and re.search(r"^program:\s+continuous, 400 µg/day \(800000 nL/day\) at 500 µg/mL",
                                           r.stdout, re.M), r.stdout
    # the caps and the patient bolus in µg, with the pump's nL beside them
    assert "caps: 560 µg (1120000 nL) in any 24 h, 60 µg (120000 nL) in any hour" in r.stdout
    assert "patient bolus: 30 µg (60000 nL) over 5 min, lockout 240 min, at most 4 in 24 h" in r.stdout


# ------------------------------------------------------------------ programming
def test_program_file_yes_shows_readback_and_takes_effect(ctl, tmp_path):
    prog = write(tmp_path, "new.toml", NEW_PROGRAM)
    r = ctl("program", prog, "--yes")
    assert r.returncode == 0, r.stderr
    assert "The pump read back" in r.stdout
    # what was typed, then the pump's own numbers in µg and in nL, on one line
    assert re.search(r"^\s+daily dose\s+450 µg/day\s+450 µg/day\s+900000 nL/day$", r.stdout, re.M), r.stdout
    assert re.search(r"^\s+cap in any hour\s+60 µg\s+60 µg\s+120000 nL$", r.stdout, re.M), r.stdout
    assert "confirmed: the program is in force (state running)" in r.stdout
    st = ctl.json("interrogate")
    assert st["program"]["daily_dose_ug"] == 450 and st["program"]["daily_nl"] == 900_000
    assert st["pending_program"] is None


def test_program_without_yes_and_no_terminal_changes_nothing(ctl, tmp_path):
    prog = write(tmp_path, "new.toml", NEW_PROGRAM)
    r = ctl("program", prog)
    assert r.returncode == 2 and "--yes" in r.stderr
    assert "The pump read back" in r.stdout
    assert ctl.json("interrogate")["program"]["daily_dose_ug"] == 400


def test_program_step_up_without_override_is_refused(ctl, tmp_path):
    prog = write(tmp_path, "up.toml", STEP_UP_PROGRAM)
    r = ctl("program", prog, "--yes")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "daily_dose_ug" in r.stderr and "override" in r.stderr and "program_error" in r.stderr
    assert "raises the daily dose from 400 to 800" in r.stderr
    assert "confirmed" not in r.stdout
    st = ctl.json("interrogate")
    assert st["program"]["daily_dose_ug"] == 400 and st["pending_program"] is None


def test_program_bad_file_is_usage(ctl, tmp_path):
    bad = write(tmp_path, "bad.toml", "mode = \n")
    r = ctl("program", bad, "--yes")
    assert r.returncode == 2 and "bad.toml" in r.stderr


def test_program_limit_out_of_range_names_the_field(ctl, tmp_path):
    prog = write(tmp_path, "zero.toml", NEW_PROGRAM.replace("max_hourly_ug = 60", "max_hourly_ug = 0"))
    r = ctl("program", prog, "--yes")
    assert r.returncode == 1 and "(field max_hourly_ug)" in r.stderr, r.stderr


# ---------------------------------------------------------------- clinic acts
def test_refill(ctl):
    st = ctl.json("status")
    residual_ml = st["reservoir_nl"] / 1e6
    r = ctl("refill", "--volume-ml", "20", "--concentration", "500", "--residual-ml", "%.3f" % residual_ml)
    assert r.returncode == 0, r.stderr
    assert "refilled 20.000 mL of 500 µg/mL (10000 µg); residual vs expected: ok; state running" in r.stdout
    st = ctl.json("interrogate")
    assert st["fill_nl"] == 20_000_000 and st["state"] == "running"


def test_patient_bolus_granted_then_refused_in_lockout(ctl):
    r = ctl("bolus", "--patient")
    assert r.returncode == 0, r.stderr
    assert "bolus granted: 60000 nL = 30 µg over 5 min" in r.stdout
    # the 5 min bolus lasts half a real second; the lockout is 240 min (24 real s)
    deadline = time.monotonic() + 20
    while True:
        r = ctl("bolus", "--patient")
        if "bolus_in_progress" in r.stderr and time.monotonic() < deadline:
            time.sleep(0.2)
            continue
        break
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "lockout" in r.stderr and "refused" in r.stderr
    # the time left, as the pump counts it: 240 min from the start of the bolus
    assert re.search(r"lockout \(240 min from the start of the last one\); the next may be asked for in "
                     r"(4 h 00 min|3 h [0-5]\d min) \d\d s", r.stderr), r.stderr
    assert "granted" not in r.stdout


def test_clinician_bolus_and_wrong_key_file(ctl, tmp_path):
    r = ctl("bolus", "--dose-ug", "10", "--duration-min", "60")
    assert r.returncode == 0 and "bolus granted: 20000 nL = 10 µg over 60 min" in r.stdout, r.stderr
    other = new_keys(tmp_path, "other-keys.json")
    r = ctl("bolus", "--dose-ug", "10", "--duration-min", "60", keys=other)
    assert r.returncode == 1 and "bad_tag" in r.stderr, (r.stdout, r.stderr)
    r = ctl("bolus", "--patient", keys=other)
    assert r.returncode == 1 and "bad_tag" in r.stderr
    # nothing was granted by the forged requests: one bolus in the pump's log
    assert ctl.json("interrogate")["link"]["refused"] >= 2
    ctl("log", "export", "--out", tmp_path / "log.json")
    recs = json.loads((tmp_path / "log.json").read_text())
    assert [r["code"] for r in recs if r["kind_name"] == "bolus"] == [1]     # one clinician bolus (kind BOLUS)


def test_alarms_silence_list_and_test(ctl):
    r = ctl("alarms", "silence")
    assert r.returncode == 0 and re.search(r"^silenced \d+ alarm\(s\)$", r.stdout, re.M), r.stderr
    r = ctl("alarms")
    assert r.returncode == 0 and "active alarms: none" in r.stdout
    r = ctl("alarms", "test")
    assert r.returncode == 0 and "alarm test sounded" in r.stdout
    r = ctl("alarms", "ack", "no_such_alarm")
    assert r.returncode == 2 and "unknown alarm" in r.stderr


def test_suspend_resume(ctl):
    assert "state: suspended" in ctl("suspend").stdout
    assert ctl.json("status")["state"] == "suspended"
    assert "state: running" in ctl("resume").stdout


def test_log_export_csv_and_json(ctl, tmp_path):
    assert ctl("alarms", "test").returncode == 0
    r = ctl("log", "export", "--out", tmp_path / "x.csv")
    assert r.returncode == 0, r.stderr
    m = re.search(r"exported (\d+) log records to", r.stdout)
    assert m and int(m.group(1)) > 0
    rows = list(csv.DictReader(open(tmp_path / "x.csv", newline="")))
    assert len(rows) == int(m.group(1))
    assert list(rows[0]) == ["seq", "time", "kind_name", "code_name", "detail", "kind", "code", "a", "b",
                             "day", "ms", "wall_s"]
    # the program put in force at the start, in words with its units
    assert any(row["kind_name"] == "program" and row["detail"] == "800000 nL/day (400 ug/day)" for row in rows), rows
    kinds = {row["kind_name"] for row in rows}
    assert {"program", "alarm_test"} <= kinds, kinds
    r = ctl("log", "export", "--out", tmp_path / "x.json")
    assert r.returncode == 0, r.stderr
    recs = json.loads((tmp_path / "x.json").read_text())
    assert isinstance(recs, list) and len(recs) >= len(rows)
    assert all({"seq", "kind", "kind_name", "time", "wall_s"} <= set(rec) for rec in recs)
    seqs = [rec["seq"] for rec in recs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


# ------------------------------------------------------------ failures of use
def test_missing_key_is_exit_4(ctl, tmp_path):
    # no --keys, no $PUMP_*, no ./pump-keys.json in the working directory
    assert not (tmp_path / "pump-keys.json").exists()
    r = ctl("bolus", "--patient", keys=None)
    assert r.returncode == 4 and "no patient key" in r.stderr, (r.returncode, r.stderr)
    r = ctl("suspend", keys=None)
    assert r.returncode == 4 and "no clinician key" in r.stderr
    only_c = tmp_path / "clinician-only.json"
    r = ctl("keys", "derive", "--serial", "EMU-0001", "--roles", "clinician", "--out", only_c)
    assert r.returncode == 0, r.stderr
    assert sorted(json.loads(only_c.read_text())) == ["clinician", "serial"]
    r = ctl("bolus", "--patient", keys=only_c)
    assert r.returncode == 4
    assert ctl("alarms", "test", keys=only_c).returncode == 0     # the clinician key it holds works
    assert ctl.json("status")["state"] == "running"


def test_key_file_missing_or_bad_is_usage(ctl, tmp_path):
    r = ctl("suspend", keys=tmp_path / "nope.json")
    assert r.returncode == 2 and "no such key file" in r.stderr
    short = write(tmp_path, "short.json", json.dumps({"clinician": "00" * 8}))
    r = ctl("suspend", keys=short)
    assert r.returncode == 2 and "shorter than 16 bytes" in r.stderr


def test_server_stops_cleanly(tmp_path, keyfile):
    srv = start_server(tmp_path, "pty", keyfile)
    try:
        ctl = Ctl(srv, keyfile, tmp_path)
        assert ctl("status").returncode == 0
    finally:
        rc = stop_server(srv)
    assert rc == 0, srv.output()


# -------------------------------------------------------------- no pump there
def test_no_pump_emu_port_missing_is_exit_3(tmp_path, keyfile):
    ctl = Ctl(None, keyfile, tmp_path)
    r = ctl("status", port=str(tmp_path / "no-such-pty"))
    assert r.returncode == 3 and "cannot open" in r.stderr and "pump-emu serve" in r.stderr, r.stderr
    r = ctl("status", port="socket://127.0.0.1:1")        # nothing listens on port 1
    assert r.returncode == 3, r.stderr


def test_no_pump_emu_silent_pty_is_exit_3(tmp_path, keyfile):
    master, slave = os.openpty()
    try:
        ctl = Ctl(None, keyfile, tmp_path)
        r = ctl("status", port=os.ttyname(slave), timeout=0.5)
        assert r.returncode == 3 and "no answer" in r.stderr, r.stderr
    finally:
        os.close(master)
        os.close(slave)


# ------------------------------------------------------------- server weakness
def test_server_survives_a_programmer_that_does_not_read(tmp_path, keyfile):
    srv = start_server(tmp_path, "pty", keyfile)
    fd = os.open(srv.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        import tty
        tty.setraw(fd)
        noise = b"\xa5\x5a\xff\xff" * 1024        # 2 error answers per 4 bytes
        try:
            os.write(fd, noise)
        except BlockingIOError:
            pass
        time.sleep(1.0)
        rc = stop_server(srv, timeout=5)
        assert rc == 0, "pump-emu serve did not stop on SIGTERM (had to be killed)"
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait(10)
        os.close(fd)
