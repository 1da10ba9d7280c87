"""The firmware's figures on a 32-bit MicroPython: the heap and allocation
drivers (tests/portable) run in the wasm32 build (emulator/wasm32.mjs), the
firmware loaded from .mpy as on a board. tests/test_wasm32.py asserts them,
`make bench` prints them beside the 64-bit unix port's.

A heap run starts MicroPython with a profile's heap_budget_bytes and says
whether the GC heap ever grew (this build adds an area when an allocation
does not fit after a collection, where a board would raise MemoryError), how
far, and the live bytes. This build collects only between calls from Node,
so the modules are imported one call each (leaves first) and the driver
runs one wake-up per call: what is counted is the live heap plus one call's
garbage, a little more than a board, which collects whenever it must.
"""
import ast
import json
import os
import threading

from emulator import wasm32 as W

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTABLE = os.path.join(ROOT, "tests", "portable")
FIRMWARE = os.path.join(ROOT, "firmware")
BOARDS = os.path.join(ROOT, "boards")
DRIVERS = ("fakeports", "heap_driver", "heap_link", "alloc_driver")
_PARSING = threading.Lock()     # ast.parse is not safe in two threads at once (CPython 3.11)
HEAP_DAYS = 30
# 100 ug/day at 500 ug/mL = 800 strokes/day, plus one 40-stroke patient bolus a day
STROKES_A_DAY = 840


def missing():
    """-> why these runs cannot happen here (a sentence), or None."""
    return W.missing()


def lib():
    """What a board runs from /lib, the sim adapter, and the drivers, as .mpy."""
    return W.firmware_lib(extra=[(d + ".py", os.path.join(PORTABLE, d + ".py")) for d in DRIVERS])


def profiles():
    """-> {name: profile dict} of boards/*.json."""
    out = {}
    for fn in sorted(os.listdir(BOARDS)):
        if fn.endswith(".json"):
            with open(os.path.join(BOARDS, fn)) as f:
                out[fn[:-5]] = json.load(f)
    return out


def _imports(mod):
    """The firmware modules (pump.*, hw.*) that mod imports."""
    with open(os.path.join(FIRMWARE, *mod.split(".")) + ".py") as f, _PARSING:
        tree = ast.parse(f.read())
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[0] in ("pump", "hw"):
            out += [n.module + "." + a.name for a in n.names] if n.module in ("pump", "hw") else [n.module]
        elif isinstance(n, ast.Import):
            out += [a.name for a in n.names if a.name.split(".")[0] in ("pump", "hw")]
    return out


def import_order(roots):
    """roots and every firmware module they import, each after its imports."""
    seen, order = set(), []

    def visit(m):
        if m not in seen:
            seen.add(m)
            for d in _imports(m):
                visit(d)
            order.append(m)
    for r in roots:
        visit(r)
    return order


def heap_run(heap, link=False, days=HEAP_DAYS, profile="sim"):
    """The heap driver's run in a heap of `heap` bytes. -> dict of its
    key=value figures (ints where they are), plus ok (the pump ran the
    days through: every stroke, every bolus, no fault) and why (if not)."""
    # the core is imported first, one module a call; the link only after the
    # pump has started (in the driver's own step, as a board's main.py does)
    roots = ["pump.controller", "hw.store"]
    st, kv, text = W.run("heap_driver", ["/board.json", days, "/store"] + (["link"] if link else []),
                         heap=heap, lib=lib(), put=[(os.path.join(BOARDS, profile + ".json"), "/board.json")],
                         mkdir=["/store"], preload=import_order(roots) + ["fakeports"], watch=True)
    fig = {k: int(v) if v.lstrip("-").isdigit() else v for k, v in kv.items()}
    ok = (st == 0 and fig.get("state") == "running" and fig.get("faults") == 0 and fig.get("bolus_errors") == 0
          and fig.get("dry_strokes") == 0 and fig.get("boluses") == days
          and abs(fig.get("strokes", 0) - days * STROKES_A_DAY) <= 2)
    if link:
        ok = ok and fig.get("link_frames") == 3 * days and fig.get("link_errors") == 0
    fig["ok"] = ok
    fig["why"] = "" if ok else "exit %d, %s" % (st, text.strip().splitlines()[-3:] if text.strip() else "no output")
    if "wasm_heap_max" in fig:
        fig["grew"] = fig["wasm_heap_max"] - fig["wasm_heap_start"]
    return fig


def alloc_run(daily_ug, store=True, link=False, plant=None, profile="sim"):
    """Bytes allocated over 500 strokes in steady state. -> dict of the
    driver's figures (ints), with `files`: what the store holds after."""
    args = ["/board.json", daily_ug] + (["/store"] if store else []) + (["link"] if link else [])
    if plant:
        args.append("plant=" + plant)
    st, kv, text = W.run("alloc_driver", args, heap=1 << 20, lib=lib(),
                         put=[(os.path.join(BOARDS, profile + ".json"), "/board.json")],
                         mkdir=["/store"], ls=["/store"])
    assert st == 0, text
    fig = {k: int(v) if v.isdigit() else v for k, v in kv.items()}
    fig["files"] = [f for f in kv.get("ls /store", "").split(",") if f]
    return fig


def smallest_heap(link, lo=64, hi=192, days=2):
    """The smallest heap, in KB, in which the driver's first `days` never
    grow the heap (where the growth comes: the imports, the setup, the
    first bolus). -> KB, or None if even `hi` grows."""
    if heap_run(hi * 1024, link, days)["grew"] > 0:
        return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if heap_run(mid * 1024, link, days)["grew"] > 0:
            lo = mid
        else:
            hi = mid
    return hi
