# The pump on a 32-bit MicroPython: the WebAssembly build the student lab pins
# (lab/package.json, installed by emulator/mpwasm.py), run by Node without a
# browser (emulator/wasm32.mjs).
#
# Wasm32Pump is the SITL pump (emulator/sitl.py) in that runtime: the same
# firmware/sitl.py on the same sim adapter, loaded as a board loads it, the
# core and the adapters compiled to .mpy in /lib, the pipe protocol unchanged.
# `pump-emu run SCENARIO --runtime wasm32` runs it; tests/test_wasm32.py and
# `make bench` also run the heap and allocation drivers here, where pointers
# and small ints have a board's size (31-bit small ints: 2**30 is a heap object).
import hashlib
import os
import shutil
import subprocess
import sys
import threading

from emulator.sitl import SITL_MAIN, SitlPump

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "emulator", "wasm32.mjs")
CACHE = os.path.join(ROOT, "build", "wasm32")     # compiled firmware, one folder per source version
HEAP = 512 * 1024       # the SITL process's heap; the budgets are measured by the tests
SIM_ADAPTER = ("hw/simbus.py", os.path.join(ROOT, "firmware", "hw", "simbus.py"))


def node_binary():
    return shutil.which("node") or shutil.which("nodejs")


def missing():
    """-> why the wasm32 runtime cannot run here (a sentence), or None."""
    from emulator.mpwasm import installed
    if node_binary() is None:
        return "Node.js is not installed (Debian: apt-get install nodejs npm)"
    if not installed() and shutil.which("npm") is None:
        return "npm is not installed, and lab/node_modules has no MicroPython WebAssembly build"
    from host_tools.flash import Usage, tool
    try:
        tool("mpy-cross")
    except Usage as e:
        return str(e)
    return None


def ensure_ready():
    """Install the pinned build (npm ci in lab/, once) -> the node binary.
    Raises RuntimeError with what to do."""
    from emulator.mpwasm import InstallError, npm_ci
    why = missing()
    if why:
        raise RuntimeError("the wasm32 runtime needs Node.js, the lab's MicroPython WebAssembly build and "
                           "mpy-cross: " + why)
    try:
        npm_ci()
    except InstallError as e:
        raise RuntimeError(str(e))
    return node_binary()


def firmware_lib(extra=(), cache=None):
    """The board's /lib for the wasm32 runtime: what `make flash` copies (the
    core and the board adapters, host_tools.flash.board_modules), the sim
    adapter, and `extra` [(lib path, source)], compiled with mpy-cross to
    bytecode .mpy. Built once per version of the sources. -> its path."""
    from host_tools.flash import board_modules, compile_module, tool
    mods = sorted(board_modules() + [SIM_ADAPTER] + list(extra))
    h = hashlib.sha256()
    for rel, src in mods:
        with open(src, "rb") as f:
            h.update(rel.encode() + b"\0" + f.read() + b"\0")
    base = cache or CACHE
    lib = os.path.join(base, h.hexdigest()[:16], "lib")
    if os.path.isdir(lib):
        return lib
    # (several threads of one process may build at once: each its own folder)
    tmp = "%s.%d.%d.tmp" % (os.path.dirname(lib), os.getpid(), threading.get_ident())
    shutil.rmtree(tmp, ignore_errors=True)
    cross = tool("mpy-cross")
    for rel, src in mods:
        compile_module(src, rel, os.path.join(tmp, "lib"), cross=cross)
    try:
        os.rename(tmp, os.path.dirname(lib))
    except OSError:           # another process built the same version meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return lib


def command(script, args=(), heap=HEAP, lib=None, put=(), mkdir=(), ls=(), preload=(), watch=False):
    """The node command line that runs a MicroPython script in the wasm32 build
    (see emulator/wasm32.mjs for the options)."""
    argv = [ensure_ready(), RUNNER, "--heap", str(heap)]
    if lib:
        argv += ["--lib", lib]
    for host, where in put:
        argv += ["--put", "%s=%s" % (host, where)]
    for d in mkdir:
        argv += ["--mkdir", d]
    for d in ls:
        argv += ["--ls", d]
    if preload:
        argv += ["--preload", ",".join(preload)]
    if watch:
        argv.append("--watch")
    return argv + [script] + [str(a) for a in args]


def run(script, args=(), timeout=600, **kw):
    """Run a script to its end. -> (exit status, {key: value} of its
    key=value lines, stdout and stderr as text)."""
    r = subprocess.run(command(script, args, **kw), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=timeout)
    kv = {}
    for line in r.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            kv[k] = v
    return r.returncode, kv, r.stdout + r.stderr


class Wasm32Pump(SitlPump):
    """The SITL pump, its process the wasm32 build instead of the unix port."""

    def command(self, profile_path):
        return command(SITL_MAIN, ["/board.json"], heap=HEAP, lib=firmware_lib(),
                       put=[(profile_path, "/board.json")])


if __name__ == "__main__":       # python -m emulator.wasm32 SCRIPT [ARG...]: a quick run
    st, _, text = run(sys.argv[1], sys.argv[2:], lib=firmware_lib())
    sys.stdout.write(text)
    sys.exit(st)
