"""make mpy / flash / repl (host_tools/flash.py): the build for each board,
and a clear message, not a traceback, for a missing or unknown board, port or
key file. Flashing a real board needs one; it is not done here."""
import json
import os

import pytest

from host_tools import flash as FL
from test_micropython import needs_mpy_cross


@needs_mpy_cross
@pytest.mark.parametrize("board", ["pico", "pico2", "esp32"])
def test_mpy_builds_every_module_for_the_board(board, capsys):
    assert FL.main(["mpy", board]) == 0
    dest = os.path.join(FL.BUILD, board)
    lib = os.path.join(dest, "lib")
    pump = sorted(os.listdir(os.path.join(lib, "pump")))
    hw = sorted(os.listdir(os.path.join(lib, "hw")))
    src_pump = sorted(f[:-3] + ".mpy" for f in os.listdir(os.path.join(FL.FIRMWARE, "pump")) if f.endswith(".py"))
    assert pump == src_pump
    assert "simbus.mpy" not in hw and "motor.mpy" in hw          # the emulator's adapter stays out
    assert os.path.exists(os.path.join(dest, "main.py")) and os.path.exists(os.path.join(dest, "board.json"))
    for f in pump:
        with open(os.path.join(lib, "pump", f), "rb") as fh:
            assert fh.read(2) == b"M\x06"                              # mpy v6
    assert "bytes of .mpy" in capsys.readouterr().out


@pytest.mark.parametrize("argv,says", [
    (["mpy", ""], "say which board"),
    (["mpy", "uno"], "no board profile boards/uno.json"),
    (["mpy", "sim"], "no board profile"),
    (["flash", "pico", ""], "say which port"),
    (["flash", "pico", "/dev/no-such-tty"], "is the board plugged in"),
    (["flash", "nope", "/dev/null"], "no board profile"),
    (["repl", ""], "say which port"),
    (["repl", "/dev/no-such-tty"], "no device /dev/no-such-tty: is the board plugged in"),
    (["flash", "", "/dev/ttyACM0"], "say which board: make flash BOARD=<esp32|pico|pico2> PORT=/dev/ttyACM0"),
    ([], "mpy BOARD"),
])
def test_bad_requests_get_a_message_and_exit_2(argv, says, capsys):
    assert FL.main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_flash_without_keys_says_how_to_make_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PUMP_KEYS", raising=False)
    assert FL.main(["flash", "pico", "/dev/null"]) == 2
    assert "pumpctl keys new" in capsys.readouterr().err


def test_freeze_manifest_freezes_what_a_flash_copies():
    # boards/manifest.py (MicroPython's manifest language, run here with stand-ins
    # for its functions) must name the same modules `make flash` copies, and only
    # files that exist: a module missing from a frozen build fails at boot
    flash = FL
    frozen = []
    here = flash.BOARDS

    def package(name, files=None, base_path=".", opt=None):
        pkg_dir = os.path.join(here, base_path, name)
        names = files if files is not None else sorted(f for f in os.listdir(pkg_dir) if f.endswith(".py"))
        for f in names:
            assert os.path.exists(os.path.join(pkg_dir, f)), f
            frozen.append(name + "/" + f)

    included = []
    with open(os.path.join(here, "manifest.py")) as f:
        exec(compile(f.read(), "boards/manifest.py", "exec"),
             {"package": package, "include": included.append, "module": None, "freeze": None})
    assert included == ["$(PORT_DIR)/boards/manifest.py"]     # the port's own frozen modules stay
    copied = [rel for rel, _ in flash.board_modules()]
    assert "hw/simbus.py" not in copied and "pump/controller.py" in copied
    assert sorted(frozen) == sorted(copied)


# ------------------------------------------------ make flash writes one pump's keys
def _master(tmp_path):
    from linkkeys import keys as K
    path = tmp_path / "master.json"
    K.generate(str(path))
    return path, K.load_file(str(path))


@needs_mpy_cross
def test_flash_writes_only_that_pumps_keys(tmp_path, monkeypatch, capsys):
    """make flash ... SERIAL=SN with a master key file: the board gets SN and
    the two role keys derived for SN, never the master (a board read out opens
    no other pump)."""
    from linkkeys import keys as K
    path, ks = _master(tmp_path)
    calls = []
    real_tool, real_run = FL.tool, FL.subprocess.run
    monkeypatch.setattr(FL, "tool", lambda name: "mpremote" if name == "mpremote" else real_tool(name))

    def run(argv, **kw):            # mpremote is not run: the board is not here
        if argv[0] != "mpremote":
            return real_run(argv, **kw)
        calls.append(argv)
        return type("R", (), {"returncode": 0})()
    monkeypatch.setattr(FL.subprocess, "run", run)
    assert FL.main(["flash", "pico", "/dev/null", "--keys", str(path), "--serial", "PUMP-0042"]) == 0
    written = os.path.join(FL.BUILD, "pico", "keys.json")
    assert os.stat(written).st_mode & 0o777 == 0o600
    with open(written) as f:
        got = json.load(f)
    assert sorted(got) == ["clinician", "patient", "serial"] and got["serial"] == "PUMP-0042"
    for name, role in K.ROLES.items():
        assert bytes.fromhex(got[name]) == K.derive(ks.master, "PUMP-0042", name)
    assert ks.master.hex() not in json.dumps(got)
    assert written in calls[0] and "as pump PUMP-0042" in capsys.readouterr().out
    # another serial, other keys
    assert FL.main(["flash", "pico", "/dev/null", "--keys", str(path), "--serial", "PUMP-0043"]) == 0
    with open(written) as f:
        other = json.load(f)
    assert other["clinician"] != got["clinician"] and other["patient"] != got["patient"]


@pytest.mark.parametrize("case,says", [
    ("master_without_serial", "SERIAL="), ("unbound", "bound to no pump"), ("other_pump", "holds the keys of pump"),
    ("bad_serial", "not a pump serial")])
def test_flash_refuses_keys_it_cannot_bind_to_the_pump(case, says, tmp_path, capsys):
    from linkkeys import keys as K
    path, ks = _master(tmp_path)
    serial = {"master_without_serial": None, "other_pump": "PUMP-2", "bad_serial": "no spaces"}.get(case)
    if case == "unbound":
        path = tmp_path / "roles.json"
        path.write_text(json.dumps({"patient": "11" * 32, "clinician": "22" * 32}))
    elif case == "other_pump":
        K.write_pump_file(str(tmp_path / "p1.json"), ks, "PUMP-1")
        path = tmp_path / "p1.json"
    argv = ["flash", "pico", "/dev/null", "--keys", str(path)] + (["--serial", serial] if serial else [])
    assert FL.main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err
