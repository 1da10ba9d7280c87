# A campaign spec: what varies from run to run, as ranges and choices.
#
# Every value in a spec is a literal, a list, a range or a weighted choice
# (values.py), and each run draws its own values from a seeded generator
# (generate.py).
import os
import tomllib

from emulator.campaign.generate import generate
from emulator.campaign.values import ENDED_BY, SpecError, is_choice, is_range
from emulator.scenario import ScenarioError, find
from emulator.timeexpr import parse_time

TOP_KEYS = {"title", "description", "base", "runs", "duration", "start_time", "timezone", "fill_ml",
            "program", "patient", "patients", "physics", "events"}
PROGRAM_KEYS = {"mode", "concentration_ug_ml", "daily_dose_ug", "headroom_pct", "max_hourly_ug",
                "patient_bolus", "patient_bolus_p", "safe_rate_pct", "flex_steps"}
DOS = {"program", "refill", "bolus", "patient_bolus", "prime", "suspend", "resume", "acknowledge", "silence",
       "alarm_test", "set_clock", "clock_jump", "kink", "block", "release", "disconnect", "leak", "migrate",
       "revise_catheter", "stall", "jam", "repair_motor", "battery_drop", "reset", "reset_during_write", "dst",
       "bit_flip"}


def _check_value(path, key, v, time=False):
    """A literal, a list, a range or a weighted choice; times must parse."""
    if is_range(v):
        lo, hi = v["min"], v["max"]
        if time:
            lo, hi = _ms(path, key + ".min", lo), _ms(path, key + ".max", hi)
        elif isinstance(lo, bool) or isinstance(hi, bool) or not all(isinstance(x, (int, float)) for x in (lo, hi)):
            raise SpecError(path, key, "a range needs two numbers (or two times)")
        if lo > hi:
            raise SpecError(path, key, "min %r is more than max %r" % (v["min"], v["max"]))
        return
    if is_choice(v):
        ch, w = v["choose"], v.get("weights")
        if not isinstance(ch, list) or not ch:
            raise SpecError(path, key + ".choose", "must be a list of one or more values")
        if w is not None and (not isinstance(w, list) or len(w) != len(ch)
                              or not all(isinstance(x, (int, float)) and x >= 0 for x in w) or not sum(w)):
            raise SpecError(path, key + ".weights", "one weight (0 or more, not all 0) per choice")
        for i, x in enumerate(ch):
            _check_value(path, "%s.choose[%d]" % (key, i), x, time)
        return
    if isinstance(v, dict) and key.split(".")[-1] not in ("program", "patient_bolus"):
        raise SpecError(path, key, "a table here must be {min, max} or {choose, weights}")
    if isinstance(v, list):
        if not v:
            raise SpecError(path, key, "an empty list: nothing to choose from")
        for i, x in enumerate(v):
            _check_value(path, "%s[%d]" % (key, i), x, time)
        return
    if time:
        _ms(path, key, v)


def _ms(path, key, v):
    try:
        return parse_time(v)
    except (ValueError, TypeError) as e:
        raise SpecError(path, key, "%r is not a time like \"1d 06:00\" (%s)" % (v, e))


def load(path):
    """Read and check a campaign spec. -> dict (the spec as written, with
    `_path` and, for a `base`, the base scenario's TOML table under `_base`)."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise SpecError(path, "-", "no such file")
    except tomllib.TOMLDecodeError as e:
        raise SpecError(path, "-", "not valid TOML: %s" % e)
    return check(raw, path)


def check(raw, path="<campaign>"):
    for k in raw:
        if k not in TOP_KEYS:
            raise SpecError(path, k, "unknown key (known: %s)" % ", ".join(sorted(TOP_KEYS)))
    if not isinstance(raw.get("title"), str):
        raise SpecError(path, "title", "is required (one line: what the campaign looks for)")
    runs = raw.get("runs", 100)
    if not isinstance(runs, int) or isinstance(runs, bool) or not 1 <= runs <= 10 ** 7:
        raise SpecError(path, "runs", "must be a whole number from 1 to 10000000")
    spec = dict(raw)
    spec["_path"] = path
    if "base" in raw:
        if not isinstance(raw["base"], str):
            raise SpecError(path, "base", "must be a library scenario name or a path to a .toml file")
        base = raw["base"]
        if base.endswith(".toml") and not os.path.isabs(base):
            near = os.path.join(os.path.dirname(os.path.abspath(path)), base)      # beside the spec first
            base = near if os.path.exists(near) else base
        try:
            bpath = find(base)
            with open(bpath, "rb") as f:
                spec["_base"] = tomllib.load(f)
            from emulator.scenario import load as load_scenario
            load_scenario(bpath)        # a base must itself be a good scenario
        except (OSError, ScenarioError, tomllib.TOMLDecodeError) as e:
            raise SpecError(path, "base", "%s: %s" % (raw["base"], e))
    elif "program" not in raw:
        raise SpecError(path, "program", "is required without a base (the program's ranges)")
    if "duration" not in raw and "base" not in raw:
        raise SpecError(path, "duration", "is required without a base, e.g. duration = {min = \"1d\", max = \"2d\"}")
    if "duration" in raw:
        _check_value(path, "duration", raw["duration"], time=True)
    for k in ("start_time", "timezone", "fill_ml"):
        if k in raw:
            _check_value(path, k, raw[k])
    prog = raw.get("program", {})
    if not isinstance(prog, dict):
        raise SpecError(path, "program", "must be a table")
    for k, v in prog.items():
        if k not in PROGRAM_KEYS:
            raise SpecError(path, "program." + k, "unknown key (known: %s)" % ", ".join(sorted(PROGRAM_KEYS)))
        if k != "patient_bolus":
            _check_value(path, "program." + k, v)
    for k in ("concentration_ug_ml", "daily_dose_ug"):
        if "base" not in raw and k not in prog:
            raise SpecError(path, "program." + k, "is required")
    for k, v in prog.get("patient_bolus", {}).items():
        _check_value(path, "program.patient_bolus." + k, v)
    if "patient" in raw and "patients" in raw:
        raise SpecError(path, "patients", "give [patient] ranges or a [[patients]] table, not both")
    for k, v in raw.get("patient", {}).items():
        _check_value(path, "patient." + k, v)
    pts = raw.get("patients", [])
    if not isinstance(pts, list) or not all(isinstance(p, dict) for p in pts):
        raise SpecError(path, "patients", "must be [[patients]] tables (one row per patient)")
    phys = raw.get("physics", {})
    if not isinstance(phys, dict):
        raise SpecError(path, "physics", "must be a table")
    for part, table in phys.items():
        if not isinstance(table, dict):
            raise SpecError(path, "physics." + part, "must be a table")
        for k, v in table.items():
            _check_value(path, "physics.%s.%s" % (part, k), v)
    evs = raw.get("events", [])
    if not isinstance(evs, list):
        raise SpecError(path, "events", "must be [[events]] tables")
    for i, ev in enumerate(evs):
        where = "events[%d]" % i
        if not isinstance(ev, dict):
            raise SpecError(path, where, "must be a table")
        if ev.get("do") not in DOS:
            raise SpecError(path, where + ".do", "%r is not an action (known: %s)" % (ev.get("do"), ", ".join(sorted(DOS))))
        p = ev.get("p", 1)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise SpecError(path, where + ".p", "the chance the event is in a run: a number from 0 to 1")
        for k, v in ev.items():
            if k in ("do", "p"):
                continue
            if k == "program":
                raise SpecError(path, where + ".program", "a program event draws from [program]; give no program here")
            _check_value(path, where + "." + k, v, time=k in ("at", "every", "reprogram_after", "lasts"))
        if "lasts" in ev and ev["do"] not in ENDED_BY:
            raise SpecError(path, where + ".lasts", "only a fault that something ends takes `lasts` (%s)"
                            % ", ".join(sorted(ENDED_BY)))
        if "during" in ev and ev["during"] not in ("refill", "program", "bolus", "prime"):
            raise SpecError(path, where + ".during", "a generated event can be placed during refill, program, "
                                                     "bolus or prime")
    # every scenario the spec can make is checked when it is made (exit 2 at
    # the first that the scenario loader refuses): here, the first one
    generate(spec, 0, 0)
    return spec
