"""pumpctl's failures of use: each ends with its documented exit status and a
one-line message, never a Python traceback (exit 2 bad usage or a bad file,
3 the port failed or the pump did not answer).

pumpctl runs in-process (host_tools.pumpctl.main). Where the pump must not be
asked anything, PumpClient is replaced by a stand-in that records that it was
opened; the lost-link cases use a fake serial port that fails, and a real
pseudo-terminal whose other end is closed in the middle of a request.
"""
import json
import os
import stat
import threading

import pytest
import serial

from linkkeys import keys as K
from host_tools import pumpctl
from host_tools.pumplink import LinkDown, PumpClient
from pump import frames as F

KEYS = {F.ROLE_PATIENT: bytes(range(0x40, 0x60)), F.ROLE_CLINICIAN: bytes(range(0xC0, 0xE0))}


@pytest.fixture(autouse=True)
def clean(tmp_path, monkeypatch):
    """No keys from the environment or the working directory."""
    for k in list(os.environ):
        if k.startswith("PUMP_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)


def run(argv):
    """-> pumpctl's exit status (argparse's own errors exit via SystemExit)."""
    try:
        return pumpctl.main([str(a) for a in argv])
    except SystemExit as e:
        return e.code


def no_traceback(err):
    assert "Traceback" not in err, err


class Recorder:
    """Stands in for PumpClient: records every port it was asked to open, and
    answers nothing (a test that reaches it has already failed)."""
    opened = []

    def __init__(self, port, keys=None, timeout=3.0, **kw):
        Recorder.opened.append(port)
        raise AssertionError("pumpctl opened the port %s" % port)


@pytest.fixture
def no_port(monkeypatch):
    Recorder.opened = []
    monkeypatch.setattr(pumpctl, "PumpClient", Recorder)
    yield Recorder.opened
    assert Recorder.opened == [], "the port was opened"


@pytest.fixture
def keyfile(tmp_path):
    p = tmp_path / "keys.json"
    p.write_text(json.dumps({"patient": KEYS[F.ROLE_PATIENT].hex(), "clinician": KEYS[F.ROLE_CLINICIAN].hex()}))
    return p


# ------------------------------------------------ 1, 7: keys new FILE [--force]
def test_keys_new_in_a_missing_directory_is_usage(tmp_path, capsys):
    rc = run(["keys", "new", tmp_path / "no" / "such" / "dir" / "k.json"])
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert "pumpctl: cannot write" in err and "No such file or directory" in err
    assert "wrote new" not in out
    no_traceback(err)


def test_keys_new_on_a_directory_is_usage(tmp_path, capsys):
    rc = run(["keys", "new", tmp_path])
    _, err = capsys.readouterr()
    assert rc == 2 and "--force" in err, err          # it exists
    rc = run(["keys", "new", "--force", tmp_path])
    _, err = capsys.readouterr()
    assert rc == 2 and "cannot write" in err, err
    no_traceback(err)


def test_keys_new_writes_a_0600_file(tmp_path, capsys):
    path = tmp_path / "k.json"
    old = os.umask(0)
    try:
        assert run(["keys", "new", path]) == 0
    finally:
        os.umask(old)
    out, _ = capsys.readouterr()
    assert "wrote a new master key" in out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    keys = json.loads(path.read_text())
    assert sorted(keys) == ["master"] and len(keys["master"]) == 64 and int(keys["master"], 16) >= 0


def test_keys_new_does_not_overwrite_an_existing_key_file(tmp_path, capsys):
    path = tmp_path / "k.json"
    assert run(["keys", "new", path]) == 0
    before = path.read_bytes()
    capsys.readouterr()
    rc = run(["keys", "new", path])
    out, err = capsys.readouterr()
    assert rc == 2, err
    assert "already exists" in err and "--force" in err
    assert "wrote new" not in out
    assert path.read_bytes() == before             # the provisioned keys are still there
    no_traceback(err)


def test_keys_new_force_replaces_and_sets_0600(tmp_path, capsys):
    path = tmp_path / "k.json"
    path.write_text("old keys, world readable")
    os.chmod(path, 0o644)
    assert run(["keys", "new", path, "--force"]) == 0
    out, _ = capsys.readouterr()
    assert "mode 0600" in out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(json.loads(path.read_text())) == ["master"]


def test_keys_generate_default_keeps_the_file_and_leaves_nothing_half_written(tmp_path, monkeypatch):
    path = tmp_path / "k.json"
    path.write_text("keep me")
    with pytest.raises(FileExistsError):
        K.generate(str(path))
    assert path.read_text() == "keep me"

    def broken_dump(*a, **kw):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(K.json, "dump", broken_dump)
    fresh = tmp_path / "fresh.json"
    with pytest.raises(OSError):
        K.generate(str(fresh))
    assert not fresh.exists()


def test_keys_help_names_force(capsys):
    with pytest.raises(SystemExit):
        pumpctl.main(["keys", "--help"])
    assert "--force" in capsys.readouterr().out
    assert "--force" in pumpctl.__doc__


# ------------------------------------------------ 2: --keys is not a readable file
@pytest.mark.parametrize("cmd", [["status"], ["bolus", "--patient"], ["bolus", "--dose-ug", "10", "--duration-min", "60"]])
def test_keys_option_naming_a_directory_is_usage(tmp_path, capsys, no_port, cmd):
    rc = run(["--port", "loop://", "--keys", tmp_path] + cmd)
    _, err = capsys.readouterr()
    assert rc == 2, err
    assert str(tmp_path) in err and "cannot read the key file" in err
    no_traceback(err)


def test_pump_keys_env_naming_a_directory_is_usage(tmp_path, capsys, no_port, monkeypatch):
    monkeypatch.setenv("PUMP_KEYS", str(tmp_path))
    rc = run(["--port", "loop://", "suspend"])
    _, err = capsys.readouterr()
    assert rc == 2 and "cannot read the key file" in err, err


def test_default_key_file_that_is_a_directory_is_usage(tmp_path, capsys, no_port):
    (tmp_path / K.DEFAULT_FILE).mkdir()
    rc = run(["--port", "loop://", "status"])
    _, err = capsys.readouterr()
    assert rc == 2 and K.DEFAULT_FILE in err, err


def test_missing_key_file_still_says_how_to_make_one(tmp_path, capsys, no_port):
    rc = run(["--port", "loop://", "--keys", tmp_path / "nope.json", "status"])
    _, err = capsys.readouterr()
    assert rc == 2 and "no such key file" in err and "pumpctl keys new" in err


# ------------------------------------------------ 3: clock set --to with a zone
@pytest.mark.parametrize("to", ["2026-03-29T03:00+02:00", "2026-03-29T01:00Z", "2026-03-29T03:00:00-05:30"])
def test_clock_to_with_a_zone_is_usage(keyfile, capsys, no_port, to):
    rc = run(["--port", "loop://", "--keys", keyfile, "clock", "set", "--to", to])
    _, err = capsys.readouterr()
    assert rc == 2, err
    assert "local time without a zone" in err and to in err
    no_traceback(err)


def test_clock_to_not_a_time_is_usage(keyfile, capsys, no_port):
    rc = run(["--port", "loop://", "--keys", keyfile, "clock", "set", "--to", "tomorrow"])
    _, err = capsys.readouterr()
    assert rc == 2 and "--to needs a local time" in err, err


class FakeClient:
    """A pump that grants everything, for the paths that must reach it."""
    calls = []

    def __init__(self, port, keys=None, timeout=3.0, **kw):
        self.keys = keys

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def set_clock(self, wall_s):
        FakeClient.calls.append(("set_clock", wall_s))
        return {"ok": True, "wall_s": wall_s}

    def refill(self, volume_nl, conc, residual_nl):
        FakeClient.calls.append(("refill", volume_nl, conc, residual_nl))
        return {"ok": True, "reconcile": "ok", "state": "running"}

    def log(self, ring="therapy"):
        FakeClient.calls.append(("log",))
        # one record: a patient bolus (kind 8, code 2) of 60000 nL over 900 s
        return ["seq", "day", "ms", "wall_s", "kind", "code", "a", "b"], [[1, 0, 0, 100, 8, 2, 60000, 900]]


@pytest.fixture
def fake_pump(monkeypatch):
    FakeClient.calls = []
    monkeypatch.setattr(pumpctl, "PumpClient", FakeClient)
    return FakeClient.calls


def test_clock_to_local_time_is_sent(keyfile, capsys, fake_pump):
    assert run(["--port", "loop://", "--keys", keyfile, "clock", "set", "--to", "2000-01-02T00:00"]) == 0
    assert fake_pump == [("set_clock", 86400)]
    assert "pump clock set to 2000-01-02 00:00:00" in capsys.readouterr().out


# ------------------------------------------------ 4: refill numbers
@pytest.mark.parametrize("opt,value,why", [
    ("--volume-ml", "nan", "not a finite number"), ("--volume-ml", "inf", "not a finite number"),
    ("--volume-ml", "-inf", "not a finite number"), ("--volume-ml", "-1", "negative"),
    ("--residual-ml", "nan", "not a finite number"), ("--residual-ml", "-0.5", "negative"),
    ("--residual-ml", "Infinity", "not a finite number"), ("--volume-ml", "1e305", "too large"),
    ("--volume-ml", "ten", "not a number"), ("--concentration", "-500", "negative"),
    ("--concentration", "nan", "not a number"),
])
def test_refill_bad_number_is_usage(keyfile, capsys, no_port, opt, value, why):
    args = {"--volume-ml": "20", "--concentration": "500", "--residual-ml": "1"}
    args[opt] = value
    argv = ["--port", "loop://", "--keys", keyfile, "refill"]
    for k, v in args.items():
        argv += ["%s=%s" % (k, v)]
    rc = run(argv)
    _, err = capsys.readouterr()
    assert rc == 2, err
    assert opt in err and why in err, err
    no_traceback(err)


def test_refill_good_numbers_reach_the_pump(keyfile, capsys, fake_pump):
    rc = run(["--port", "loop://", "--keys", keyfile, "refill", "--volume-ml", "20", "--concentration", "500",
              "--residual-ml", "0"])
    assert rc == 0, capsys.readouterr().err
    assert fake_pump == [("refill", 20_000_000, 500, 0)]


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_timeout_must_be_a_positive_finite_number(capsys, no_port, value):
    rc = run(["--port", "loop://", "--timeout=" + value, "status"])
    _, err = capsys.readouterr()
    assert rc == 2 and "--timeout" in err, err


# ------------------------------------------------ 5: log export --out
def test_log_export_to_a_missing_directory_is_usage_before_any_request(tmp_path, keyfile, capsys, no_port):
    out = tmp_path / "no" / "such" / "dir" / "x.csv"
    rc = run(["--port", "loop://", "--keys", keyfile, "log", "export", "--out", out])
    _, err = capsys.readouterr()
    assert rc == 2, err
    assert "cannot write" in err and str(out) in err
    no_traceback(err)


def test_log_export_to_a_directory_is_usage(tmp_path, keyfile, capsys, no_port):
    rc = run(["--port", "loop://", "--keys", keyfile, "log", "export", "--out", tmp_path])
    _, err = capsys.readouterr()
    assert rc == 2 and "cannot write" in err, err


def test_log_export_writes_csv_and_json(tmp_path, keyfile, capsys, fake_pump):
    old = tmp_path / "x.csv"
    old.write_text("a much longer earlier export that must not leave a tail\n" * 20)
    assert run(["--port", "loop://", "--keys", keyfile, "log", "export", "--out", old]) == 0
    lines = old.read_text().splitlines()
    # names and words with units first, the raw numbers after them
    assert lines[0] == "seq,time,kind_name,code_name,detail,kind,code,a,b,day,ms,wall_s" and len(lines) == 2
    assert lines[1] == "1,2000-01-01 00:01:40,bolus,patient_bolus,60000 nL over 900 s,8,2,60000,900,0,0,100"
    assert run(["--port", "loop://", "--keys", keyfile, "log", "export", "--out", tmp_path / "x.json"]) == 0
    recs = json.loads((tmp_path / "x.json").read_text())
    assert recs == [{"seq": 1, "time": "2000-01-01 00:01:40", "kind_name": "bolus", "code_name": "patient_bolus",
                     "detail": "60000 nL over 900 s", "kind": 8, "code": 2, "a": 60000, "b": 900,
                     "day": 0, "ms": 0, "wall_s": 100}]


def test_log_export_that_loses_the_link_keeps_an_old_file_and_leaves_no_new_one(tmp_path, keyfile, capsys,
                                                                                 monkeypatch):
    class Down(FakeClient):
        def log(self, ring="therapy"):
            raise LinkDown("no answer from loop:// within 3.0 s")
    monkeypatch.setattr(pumpctl, "PumpClient", Down)
    old = tmp_path / "old.csv"
    old.write_text("earlier export\n")
    assert run(["--port", "loop://", "--keys", keyfile, "log", "export", "--out", old]) == 3
    assert old.read_text() == "earlier export\n"
    new = tmp_path / "new.csv"
    assert run(["--port", "loop://", "--keys", keyfile, "log", "export", "--out", new]) == 3
    assert not new.exists()
    no_traceback(capsys.readouterr().err)


# ------------------------------------------------ 6: the port fails mid-request
class BrokenSerial:
    """A pyserial port that fails at one operation (as a pty does when the
    pump side closes): `fail` is write, flush, read or in_waiting."""

    def __init__(self, fail, exc):
        self.fail, self.exc = fail, exc
        self.written = bytearray()

    def _maybe(self, op):
        if self.fail == op:
            raise self.exc

    def write(self, data):
        self._maybe("write")
        self.written += data
        return len(data)

    def flush(self):
        self._maybe("flush")

    @property
    def in_waiting(self):
        self._maybe("in_waiting")
        return 1

    def read(self, n=1):
        self._maybe("read")
        return b"\x00"[:n]          # noise, then in_waiting is asked

    def close(self):
        pass


EXCS = [serial.SerialException("device reports readiness to read but returned no data"),
        OSError(5, "Input/output error")]
EXC_IDS = ["SerialException", "OSError"]
try:        # pyserial's flush() (tcdrain) on a pty whose other end closed
    import termios
    EXCS.append(termios.error(5, "Input/output error"))
    EXC_IDS.append("termios.error")
except ImportError:
    pass


@pytest.mark.parametrize("fail", ["write", "flush", "read", "in_waiting"])
@pytest.mark.parametrize("exc", EXCS, ids=EXC_IDS)
def test_client_turns_port_errors_into_link_down(fail, exc):
    pc = PumpClient("loop://", KEYS, timeout=0.5)
    pc.ser.close()
    pc.ser = BrokenSerial(fail, exc)
    with pytest.raises(LinkDown) as e:
        pc.status()
    assert "lost the link to loop://" in str(e.value) and str(exc) in str(e.value)
    assert "may have been carried out" in str(e.value)


@pytest.mark.parametrize("fail", ["write", "read", "in_waiting"])
def test_pumpctl_port_error_mid_request_is_exit_3(keyfile, capsys, monkeypatch, fail):
    class Client(PumpClient):
        def __init__(self, port, keys=None, timeout=3.0):
            PumpClient.__init__(self, "loop://", keys, timeout=timeout)
            self.ser.close()
            self.ser = BrokenSerial(fail, serial.SerialException("read failed: [Errno 5] Input/output error"))
    monkeypatch.setattr(pumpctl, "PumpClient", Client)
    rc = run(["--port", "loop://", "--keys", keyfile, "bolus", "--patient"])
    _, err = capsys.readouterr()
    assert rc == 3, err
    assert "lost the link" in err and "Input/output error" in err
    no_traceback(err)


def test_pumpctl_pty_closed_by_the_pump_side_mid_request_is_exit_3(keyfile, capsys):
    """A real pty: the 'pump' reads the request, then closes its end (the
    client then fails in flush() or in read(), depending on timing)."""
    master, slave = os.openpty()
    port = os.ttyname(slave)
    got = bytearray()

    def pump_side():
        try:
            while len(got) < 4:
                got.extend(os.read(master, 1024))
        except OSError:
            pass
        finally:
            os.close(master)
    t = threading.Thread(target=pump_side, daemon=True)
    t.start()
    try:
        rc = run(["--port", port, "--keys", keyfile, "--timeout", "5", "status"])
    finally:
        t.join(5)
        os.close(slave)
    _, err = capsys.readouterr()
    assert got[:2] == b"\xa5\x5a", "the request never reached the pump side"
    assert rc == 3, err
    assert "lost the link" in err, err
    no_traceback(err)


# ------------------------------------------------ 8: program FILE unreadable
def test_program_file_that_is_a_directory_is_usage(tmp_path, keyfile, capsys, no_port):
    rc = run(["--port", "loop://", "--keys", keyfile, "program", tmp_path, "--yes"])
    _, err = capsys.readouterr()
    assert rc == 2 and str(tmp_path) in err, err
    no_traceback(err)


def test_program_file_missing_is_usage_before_the_port(tmp_path, keyfile, capsys, no_port):
    rc = run(["--port", "loop://", "--keys", keyfile, "program", tmp_path / "nope.toml", "--yes"])
    _, err = capsys.readouterr()
    assert rc == 2 and "No such file" in err, err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads a mode-000 file")
def test_program_file_without_read_permission_is_usage(tmp_path, keyfile, capsys, no_port):
    p = tmp_path / "secret.toml"
    p.write_text('mode = "continuous"\n')
    os.chmod(p, 0)
    rc = run(["--port", "loop://", "--keys", keyfile, "program", p, "--yes"])
    _, err = capsys.readouterr()
    assert rc == 2 and "Permission denied" in err, err


def test_program_file_not_utf8_is_usage(tmp_path, keyfile, capsys, no_port):
    p = tmp_path / "latin1.toml"
    p.write_bytes(b'mode = "continuous"\nnote = "caf\xe9"\n')
    rc = run(["--port", "loop://", "--keys", keyfile, "program", p, "--yes"])
    _, err = capsys.readouterr()
    assert rc == 2 and str(p) in err, err
    no_traceback(err)


def test_program_file_io_error_is_usage(tmp_path, keyfile, capsys, no_port, monkeypatch):
    p = tmp_path / "p.toml"
    p.write_text('mode = "continuous"\n')

    def eio(*a, **kw):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(pumpctl.tomllib, "load", eio)
    rc = run(["--port", "loop://", "--keys", keyfile, "program", p, "--yes"])
    _, err = capsys.readouterr()
    assert rc == 2 and "Input/output error" in err, err


def test_key_file_io_error_is_usage(keyfile, capsys, no_port, monkeypatch):
    def eio(*a, **kw):
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(K.json, "load", eio)
    rc = run(["--port", "loop://", "--keys", keyfile, "status"])
    _, err = capsys.readouterr()
    assert rc == 2 and "Input/output error" in err, err
