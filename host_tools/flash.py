"""Build and flash the firmware for a board (what `make mpy`, `make flash` and
`make repl` run).

  python -m host_tools.flash mpy BOARD            compile to build/BOARD/ with mpy-cross
  python -m host_tools.flash flash BOARD PORT [--serial SN] [--keys FILE]
                                                  compile, copy with mpremote, reset
  python -m host_tools.flash repl PORT            the board's REPL (mpremote)

A board is a profile in boards/ (pico, pico2, esp32). The flashed board gets
/lib/pump and /lib/hw as .mpy for its architecture, /main.py, /board.json and
/keys.json: this pump's serial and its own two role keys, never the master.
FILE (--keys, else $PUMP_KEYS, else ./pump-keys.json) is a master key file
(`pumpctl keys new pump-keys.json`; the pump's keys are derived for --serial)
or one pump's key file (`pumpctl keys derive`; its serial is used). Exit
status 0, or 2 with a message saying what to do.
"""
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
BOARDS = os.path.join(ROOT, "boards")
BUILD = os.path.join(ROOT, "build")
SIM_ONLY = ("simbus.py",)        # the emulator's adapter: not for a real board


class Usage(Exception):
    pass


def boards():
    return sorted(f[:-5] for f in os.listdir(BOARDS) if f.endswith(".json") and f != "sim.json")


def profile(board):
    if not board:
        raise Usage("say which board: make mpy BOARD=<%s>" % "|".join(boards()))
    path = os.path.join(BOARDS, board + ".json")
    if board == "sim" or not os.path.exists(path):
        raise Usage("no board profile boards/%s.json (boards: %s)" % (board, ", ".join(boards())))
    with open(path) as f:
        return json.load(f)


def tool(name):
    exe = shutil.which(name, path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        raise Usage("%s is not installed: run `make test` or `make mpy` once to set up .venv" % name)
    return exe


def board_modules():
    """-> [(lib-relative path, source)] of what a board runs from /lib: the
    core and the board adapters (not the emulator's)."""
    return [(pkg + "/" + name, os.path.join(FIRMWARE, pkg, name)) for pkg in ("pump", "hw")
            for name in sorted(os.listdir(os.path.join(FIRMWARE, pkg)))
            if name.endswith(".py") and name not in SIM_ONLY]


def compile_module(src, rel, lib, arch=None, cross=None):
    """mpy-cross src into lib/rel (.py -> .mpy), for arch or plain bytecode
    (what any port runs). -> the .mpy's size in bytes."""
    mpy = os.path.join(lib, rel[:-3] + ".mpy")
    os.makedirs(os.path.dirname(mpy), exist_ok=True)
    argv = [cross or tool("mpy-cross")] + (["-march=" + arch] if arch else []) + ["-s", rel, src, "-o", mpy]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise Usage("mpy-cross failed on %s: %s" % (src, r.stdout.strip()))
    return os.path.getsize(mpy)


def build(board, out=print):
    """Compile for the board. -> (build dir, total .mpy bytes)."""
    p = profile(board)
    arch = p["mpy_arch"]
    cross = tool("mpy-cross")
    dest = os.path.join(BUILD, board)
    if os.path.exists(dest):
        shutil.rmtree(dest)
    total = 0
    for rel, src in board_modules():
        total += compile_module(src, rel, os.path.join(dest, "lib"), arch, cross)
    shutil.copy(os.path.join(FIRMWARE, "main.py"), os.path.join(dest, "main.py"))
    with open(os.path.join(dest, "board.json"), "w") as f:
        json.dump({k: v for k, v in p.items() if not k.startswith("_")}, f)
    out("built %s for %s (%s): %d bytes of .mpy in %s" % (board, p["mcu"], arch, total, os.path.relpath(dest)))
    return dest, total


def pump_keys(path, serial):
    """-> the keys.json for the pump with this serial (a dict): its serial and
    its own role keys, derived from a master key or taken from its key file."""
    from linkkeys import keys as K
    try:
        ks = K.load_file(path)
        if ks.master is not None:
            if not serial:
                raise Usage("%s is a master key: say which pump, make flash ... SERIAL=<serial> "
                            "(its own keys are derived and flashed, never the master)" % path)
        elif ks.serial is None:
            raise Usage("%s holds role keys bound to no pump: make a master key (pumpctl keys new FILE) "
                        "and flash with SERIAL=<serial>" % path)
        else:
            serial = serial or ks.serial
        keys = ks.for_serial(serial)
    except K.KeyError_ as e:
        raise Usage(str(e))
    out = {"serial": serial}
    for name, role in K.ROLES.items():
        if role in keys:
            out[name] = keys[role].hex()
    return out


def find_keys(path):
    path = path or os.environ.get("PUMP_KEYS") or "pump-keys.json"
    if not os.path.exists(path):
        raise Usage("no key file %s: make one with `pumpctl keys new %s` (keep it: pumpctl needs the same)"
                    % (path, path))
    return path


def flash(board, port, keys=None, out=print, serial=None):
    if not board:
        raise Usage("say which board: make flash BOARD=<%s> PORT=%s" % ("|".join(boards()), port or "/dev/ttyACM0"))
    if not port:
        raise Usage("say which port: make flash BOARD=%s PORT=/dev/ttyACM0 (mpremote devs lists them)" % (board or "pico"))
    profile(board)
    if port.startswith("/dev/") and not os.path.exists(port):
        raise Usage("no device %s: is the board plugged in? (`mpremote devs` lists ports)" % port)
    pump = pump_keys(find_keys(keys), serial)
    dest, _ = build(board, out)
    fd = os.open(os.path.join(dest, "keys.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(pump, f)
    mp = tool("mpremote")
    cmd = [mp, "connect", port, "fs", "mkdir", ":lib", "+", "fs", "cp", "-r",
           os.path.join(dest, "lib") + "/", ":", "+", "fs", "cp",
           os.path.join(dest, "main.py"), os.path.join(dest, "board.json"), os.path.join(dest, "keys.json"), ":",
           "+", "reset"]
    out(" ".join(cmd))
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise Usage("mpremote failed (exit %d): check the port, that no other program has it open, "
                    "and that the board runs MicroPython 1.20 or newer" % r.returncode)
    out("flashed %s on %s as pump %s; talk to it with: pumpctl --port %s status" % (board, port, pump["serial"], port))


def repl(port):
    if not port:
        raise Usage("say which port: make repl PORT=/dev/ttyACM0")
    if port.startswith("/dev/") and not os.path.exists(port):
        raise Usage("no device %s: is the board plugged in? (`mpremote devs` lists ports)" % port)
    os.execv(tool("mpremote"), ["mpremote", "connect", port, "repl"])


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if not args or args[0] not in ("mpy", "flash", "repl"):
            raise Usage(__doc__.strip().split("\n\n")[1])
        cmd, rest = args[0], [a for a in args[1:]]
        opts = {}
        for name in ("--keys", "--serial"):
            if name in rest:
                i = rest.index(name)
                opts[name] = rest[i + 1] if i + 1 < len(rest) else None
                del rest[i:i + 2]
        keys = opts.get("--keys")
        rest += [""] * 2
        if cmd == "mpy":
            build(rest[0])
        elif cmd == "flash":
            flash(rest[0], rest[1], keys, serial=opts.get("--serial"))
        else:
            repl(rest[0])
    except Usage as e:
        print("%s: %s" % ("make " + (args[0] if args else ""), e), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
