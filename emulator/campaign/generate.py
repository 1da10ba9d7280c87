# (spec, seed, index) -> one scenario, as the TOML text `pump-emu run` reads.
#
# Deterministic: the same spec, seed and index give the same text on any
# machine and in any process (random.Random seeded with a string is
# independent of hash randomisation). Each scenario is checked by the
# scenario loader when it is made, so a spec that can make a bad scenario
# stops the campaign at once (exit 2) with the loader's message.
import heapq
import json
import math
import os
import random
import tomllib

from emulator.campaign.values import ENDED_BY, SpecError, is_choice, is_range
from emulator.preset import fmt_time
from emulator.timeexpr import parse_time

STROKE_NL = 250                 # boards/sim.json: the caps' headroom counts strokes
MIN_MS = 60000
DEFAULT_REPROGRAM_AFTER = {"min": "00:30", "max": "04:00"}
DEFAULT_FLEX_STEPS = {"min": 2, "max": 4}
TEMPLATE_KEYS = ("do", "p", "count", "at", "during", "every", "series", "reprogram_after", "lasts")


# --------------------------------------------------------------------------- values
def draw(rng, v, time=False):
    """One value of a spec entry (see values.py)."""
    if is_range(v):
        lo, hi = v["min"], v["max"]
        if time:
            return rng.randint(parse_time(lo), parse_time(hi))
        if isinstance(lo, int) and isinstance(hi, int):
            return rng.randint(lo, hi)
        return round(rng.uniform(lo, hi), 3)
    if is_choice(v):
        ch = v["choose"]
        w = v.get("weights")
        return draw(rng, rng.choices(ch, weights=w)[0] if w else rng.choice(ch), time)
    if isinstance(v, list):
        return draw(rng, rng.choice(v), time)
    if time and isinstance(v, str):
        return parse_time(v)
    return v


def run_rng(seed, index):
    return random.Random("pump-emu campaign %d/%d" % (seed, index))


# --------------------------------------------------------------------------- programs
def make_program(rng, ps, conc, dose=None):
    """A program the pump accepts: a dose from the ranges and caps with the
    headroom docs/programs.md asks for (plus `headroom_pct`)."""
    mode = draw(rng, ps.get("mode", "continuous"))
    if dose is None:
        dose = draw(rng, ps["daily_dose_ug"])
    prog = {"mode": mode, "concentration_ug_ml": conc}
    if mode == "flex":
        n = draw(rng, ps.get("flex_steps", DEFAULT_FLEX_STEPS))
        starts = sorted(rng.sample(range(0, 1440, 30), n))
        steps = [{"start_min": s, "daily_rate_ug": max(1, draw(rng, ps["daily_dose_ug"]))} for s in starts]
        prog["steps"] = steps
        peak = max(s["daily_rate_ug"] for s in steps)
        daily = peak
    else:
        prog["daily_dose_ug"] = dose
        peak = daily = dose
    strokes2 = math.ceil(2 * STROKE_NL * conc / 1e6) + 1
    head = draw(rng, ps.get("headroom_pct", 25))
    hourly = math.ceil(peak / 24 * 1.5) + math.ceil(peak / 8640) + strokes2 + 2
    pb = None
    if "patient_bolus" in ps and rng.random() < ps.get("patient_bolus_p", 1):
        pb = {k: draw(rng, v) for k, v in ps["patient_bolus"].items()}
        pb["lockout_min"] = max(pb.get("lockout_min", 60), pb.get("duration_min", 1))
        hourly += pb.get("dose_ug", 0)
        prog["patient_bolus"] = pb
    max_daily = math.ceil(daily * (100 + head) / 100) + math.ceil(peak / 288) + strokes2
    if pb:
        max_daily += pb.get("dose_ug", 0) * pb.get("max_per_day", 1)
    prog["max_daily_ug"] = min(6000, max(max_daily, hourly))
    prog["max_hourly_ug"] = min(prog["max_daily_ug"], draw(rng, ps["max_hourly_ug"]) if "max_hourly_ug" in ps
                                else hourly)
    if "safe_rate_pct" in ps and mode == "continuous":
        prog["safe_rate_ug_day"] = dose * draw(rng, ps["safe_rate_pct"]) // 100
    return prog


# --------------------------------------------------------------------------- TOML
def _val(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    return "{ " + ", ".join("%s = %s" % (_key(k), _val(x)) for k, x in v.items()) + " }"


def _key(k):
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _is_tables(v):
    return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)


def _section(name, d, out):
    out.append("\n[%s]" % name)
    for k, v in d.items():
        if not isinstance(v, dict):
            out.append("%s = %s" % (_key(k), _val(v)))
    for k, v in d.items():
        if isinstance(v, dict):
            _section(name + "." + _key(k), v, out)


def dumps(d):
    """A scenario dict as TOML: scalars, [tables], then [[arrays of tables]]."""
    out = []
    for k, v in d.items():
        if not isinstance(v, dict) and not _is_tables(v):
            out.append("%s = %s" % (_key(k), _val(v)))
    for k, v in d.items():
        if isinstance(v, dict):
            _section(_key(k), v, out)
    for k, v in d.items():
        if _is_tables(v):
            for item in v:
                out.append("\n[[%s]]" % _key(k))
                out.extend("%s = %s" % (_key(kk), _val(vv)) for kk, vv in item.items())
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- one run
def spec_name(spec):
    return os.path.splitext(os.path.basename(spec.get("_path", "campaign")))[0]


def run_name(spec, index):
    return "%s-%05d" % (spec_name(spec), index)


def generate(spec, seed, index):
    """-> (name, TOML text, facts) for run `index` of the campaign with `seed`.
    facts: {"faults": [the generated events' actions], "patient": {...}}."""
    from emulator.scenario import ScenarioError, from_dict
    rng = run_rng(seed, index)
    name = run_name(spec, index)
    base = spec.get("_base")
    d = {"name": name, "title": "%s: run %d of seed %d" % (spec["title"], index, seed),
         "description": "Generated by the campaign %s (seed %d, run %d); reproduce with pump-emu run on this file."
                        % (spec_name(spec), seed, index),
         "tags": ["campaign", spec_name(spec)]}
    if base:
        for k, v in base.items():
            if k not in ("name", "title", "description", "tags", "expect"):
                d[k] = json.loads(json.dumps(v, default=str))   # a deep copy (TOML dates as text)
    if "duration" in spec:
        d["duration"] = fmt_time(draw(rng, spec["duration"], time=True) // MIN_MS * MIN_MS)
    duration = parse_time(d["duration"])
    d["seed"] = rng.randint(1, 2 ** 31 - 1)
    for k in ("start_time", "timezone"):
        if k in spec:
            d[k] = draw(rng, spec[k])
    ps = spec.get("program", {})
    start = d.setdefault("start", {})
    if ps:
        conc = draw(rng, ps["concentration_ug_ml"])
        start.update({"fill_ml": draw(rng, spec.get("fill_ml", 20)), "concentration_ug_ml": conc,
                      "program": make_program(rng, ps, conc)})
    conc = start.get("concentration_ug_ml") or start.get("program", {}).get("concentration_ug_ml", 500)
    base_prog = start.get("program")
    if "patients" in spec:
        row = rng.choice(spec["patients"])
        d["patient"] = {k: draw(rng, v) for k, v in row.items()}
    elif "patient" in spec:
        d["patient"] = dict(d.get("patient", {}), **{k: draw(rng, v) for k, v in spec["patient"].items()})
    for part, table in spec.get("physics", {}).items():
        d.setdefault("physics", {}).setdefault(part, {}).update({k: draw(rng, v) for k, v in table.items()})

    # the generated events, placed in time; then walked in time order so that a
    # refill's "same" strength and a program's strength follow the refills before them
    heap, seq, during = [], 0, []
    for tmpl in spec.get("events", []):
        if rng.random() >= tmpl.get("p", 1):
            continue
        for _ in range(draw(rng, tmpl.get("count", 1))):
            ev = {"do": tmpl["do"]}
            for k, v in tmpl.items():
                if k not in TEMPLATE_KEYS:
                    ev[k] = draw(rng, v)
            if tmpl.get("every") is not None:
                ev["count"] = draw(rng, tmpl.get("series", 2))
                ev["every"] = fmt_time(draw(rng, tmpl["every"], time=True))
            if "during" in tmpl:
                during.append((tmpl["during"], ev))
                continue
            t = draw(rng, tmpl.get("at", {"min": "0d 00:01", "max": fmt_time(duration)}), time=True)
            t = min(t // 1000 * 1000, duration)
            gap = draw(rng, tmpl.get("reprogram_after", DEFAULT_REPROGRAM_AFTER), time=True)
            heapq.heappush(heap, (t, seq, ev, gap // 1000 * 1000))
            seq += 1
            if "lasts" in tmpl and tmpl["do"] in ENDED_BY:
                end = t + draw(rng, tmpl["lasts"], time=True) // 1000 * 1000
                if end <= duration:
                    heapq.heappush(heap, (end, seq, {"do": ENDED_BY[tmpl["do"]]}, 0))
                    seq += 1
    events = []
    while heap:
        t, _, ev, gap = heapq.heappop(heap)
        if ev["do"] == "refill":
            ev.setdefault("volume_ml", 20)
            if ev.get("concentration_ug_ml", "same") == "same":
                ev["concentration_ug_ml"] = conc
            if ev.get("actual_concentration_ug_ml") == "same":
                del ev["actual_concentration_ug_ml"]
            if ev["concentration_ug_ml"] != conc:
                # the pump stops for a program at the new strength; the clinician sends one
                conc = ev["concentration_ug_ml"]
                if t + gap <= duration:
                    dose = (base_prog or {}).get("daily_dose_ug")
                    prog = make_program(rng, ps, conc, dose) if ps else dict(base_prog, concentration_ug_ml=conc)
                    heapq.heappush(heap, (t + gap, seq, {"do": "program", "program": prog}, 0))
                    seq += 1
        elif ev["do"] == "program" and "program" not in ev:
            ev["program"] = make_program(rng, ps, conc) if ps else dict(base_prog, concentration_ug_ml=conc)
        events.append((t, ev))
    # an event placed `during` a command is armed just before one such command of the run
    placed = []
    for what, ev in during:
        targets = [i for i, (t, e) in enumerate(events) if e["do"] == what]
        if targets:
            i = rng.choice(targets)
            ev["during"] = what
            placed.append((events[i][0], i, ev))
    order = sorted([(t, i, 1, ev) for i, (t, ev) in enumerate(events)] + [(t, i, 0, ev) for t, i, ev in placed],
                   key=lambda x: (x[0], x[1], x[2]))
    mine = []
    for t, _, _, ev in order:
        mine.append(dict({"at": fmt_time(t)}, **ev))
    d["events"] = list(d.get("events", [])) + mine
    text = dumps(d)
    try:
        from_dict(tomllib.loads(text), name + ".toml")
    except (ScenarioError, tomllib.TOMLDecodeError) as e:
        raise SpecError(spec.get("_path", "<campaign>"), "-", "run %d (seed %d) makes a bad scenario: %s"
                        % (index, seed, e))
    facts = {"faults": [ev["do"] for ev in mine], "patient": d.get("patient", {})}
    return name, text, facts
