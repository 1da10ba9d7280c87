# One generated scenario, run the way `pump-emu run` runs a file (load, World,
# run, the report), reduced to one compact row for the campaign's table.
#
# The row is read from the run's outputs (report.json's figures and the
# events.csv rows), never from the pump's internals.
import contextlib
import importlib
import os
import tempfile

# the alarm each injected fault should bring, for the latency figures
FAULT_ALARM = {"block": ("occlusion",), "kink": ("occlusion",), "jam": ("motor_stall",),
               "stall": ("motor_stall",), "disconnect": ("catheter_leak",), "leak": ("catheter_leak",),
               "battery_drop": ("battery_eri", "battery_eos"),
               "bit_flip": ("storage_corrupt",)}


@contextlib.contextmanager
def pump_class(pump):
    """Run with another Pump class: a class or "module:Class" (a planted bug for
    proving the campaign finds it; the engine builds whatever emulator.engine.Pump is)."""
    if pump is None:
        yield
        return
    from emulator import engine
    if isinstance(pump, str):
        mod, _, cls = pump.partition(":")
        pump = getattr(importlib.import_module(mod), cls)
    real = engine.Pump
    engine.Pump = pump
    try:
        yield
    finally:
        engine.Pump = real


def execute(name, text, runtime="cpython", pump=None):
    """-> (report dict, events rows) or raises ScenarioError. The scenario is
    written to a file first: the run reads it as `pump-emu run FILE` does."""
    from emulator import report as R
    from emulator.engine import World
    from emulator.scenario import load
    with tempfile.TemporaryDirectory(prefix="pump-campaign-") as tmp:
        path = os.path.join(tmp, name + ".toml")
        with open(path, "w") as f:
            f.write(text)
        sc = load(path)
        with pump_class(pump):
            w = World(sc, runtime=runtime)
            rep = R.judged_run(w, runtime)
    return rep, list(w.events)


def latencies(events, world):
    """For each injected fault with an alarm it should bring: minutes from the
    fault to the first such alarm raised at or after it (None: not raised)."""
    raised = [(t, code) for t, src, kind, code, _ in events if src == "pump" and kind == "alarm"]
    out = []
    for t, code in world:
        want = FAULT_ALARM.get(code)
        if not want:
            continue
        first = next((ta for ta, a in raised if ta >= t and a in want), None)
        out.append((code, None if first is None else round((first - t) / 60000, 2)))
    return out


def row_of(index, name, rep, events, facts=None):
    """The campaign's row for one finished run."""
    v = rep["verdict"]
    checks = {c["id"]: c["status"] for c in rep["invariants"]}
    failed = list(v["failed"])
    # a generated scenario has no [[expect]] of its own: an expectation that
    # failed is the emulator saying the file did not test what it said (an
    # armed event that never came, a power cut that could not be applied)
    void = [f for f in failed if f.startswith("expect[")]
    real = [f for f in failed if not f.startswith("expect[")]
    sched, deliv = rep["totals"]["scheduled_nl"], rep["totals"]["delivered_nl"]
    i2 = next((c for c in rep["invariants"] if c["id"] == "I2"), {})
    return {
        "run": index, "name": name, "seed": rep["scenario"]["seed"],
        "status": "fail" if real else ("void" if void else "pass"),
        "failed": real,
        "detail": {c["id"]: c["detail"] for c in rep["invariants"] if c["id"] in real},
        "void": [e["detail"] for e in rep["expectations"] if e["status"] == "fail"],
        "checks": checks,
        "faults": [code for _, code in rep["world"]],
        "generated": (facts or {}).get("faults", []),
        "delivered_nl": deliv, "scheduled_nl": sched,
        "ratio": round(deliv / sched, 4) if sched else None,
        "worst_24h_to_cap": (i2["fullest_24h_permille"] / 1000) if "fullest_24h_permille" in i2 else None,
        "alarms": [a["alarm"] for a in rep["alarms"]],
        "latency_min": latencies(events, rep["world"]),
        "flags": sorted({f["flag"] for f in rep["patient"].get("flags", [])}),
        "in_band_pct": rep["patient"].get("in_band_pct"),
        "resets": rep["totals"]["resets"],
        "wall_s": rep["run"]["wall_s"],
        "error": None,
    }


def run_generated(name, text, index=-1, runtime="cpython", pump=None, facts=None):
    """Run one scenario text. -> its row (status "bad" with the loader's message
    when the file is refused)."""
    from emulator.scenario import ScenarioError
    try:
        rep, events = execute(name, text, runtime, pump)
    except ScenarioError as e:
        return {"run": index, "name": name, "status": "bad", "failed": [], "void": [], "checks": {},
                "faults": [], "generated": (facts or {}).get("faults", []), "error": str(e)}
    except Exception as e:       # the firmware or the emulator raised: a finding, shrunk like a failed check
        return crash_row(index, name, "%s: %s" % (type(e).__name__, e), facts)
    return row_of(index, name, rep, events, facts)


def crash_row(index, name, why, facts=None):
    """A run that ended in an exception (or took its worker down): it fails the
    pseudo-check `crash`."""
    return {"run": index, "name": name, "status": "fail", "failed": ["crash"], "detail": {"crash": why},
            "void": [], "checks": {}, "faults": [], "generated": (facts or {}).get("faults", []), "error": why}


def run_index(spec, seed, index, runtime="cpython", pump=None):
    """Generate run `index` and run it. -> (row, scenario text). The unit of
    work a Dask worker is given: small to send, the spec and two numbers."""
    from emulator.campaign.generate import generate
    name, text, facts = generate(spec, seed, index)
    return run_generated(name, text, index, runtime, pump, facts), text
