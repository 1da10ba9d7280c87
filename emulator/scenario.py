# Scenario files (TOML): loading and checking, with errors that name the file,
# the key and the reason. The schema is documented key by key in
# docs/scenarios.md; the tables below are its single source in code.
import datetime
import os
import re
import tomllib

from emulator import battery, catheter, clock, motor, patient
from pump.controller import WALL_MAX_S
# the portable part (also what the lab page runs under MicroPython)
from emulator.preset import (NUM, ALARM_NAMES, ACTION_KEYS, ScenarioError, Event, Scenario,  # noqa: F401
                             fmt_time, check_table, action_args, PLAIN_KEYS)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.path.join(ROOT, "scenarios")
EPOCH = datetime.datetime(2000, 1, 1)     # the pump's wall clock counts from here (as MicroPython)
MAX_DAYS = 3650

_TIME = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$")


def parse_time(text):
    """'3d 06:30', '12:00', '180d', '1d 00:00:30' -> ms, or None."""
    if not isinstance(text, str):
        return None
    m = _TIME.match(text)
    if not m or not text.strip() or (m.group(1) is None and m.group(2) is None):
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    if h > 23 or mi > 59 or s > 59:
        return None
    return ((d * 24 + h) * 60 + mi) * 60000 + s * 1000


PHYSICS = {"clock": clock.PARAMS, "motor": motor.PARAMS, "battery": battery.PARAMS,
           "catheter": dict(catheter.PARAMS, dead_volume_nl=None)}
# ranges that are not simply 0 .. 10**12
PHYSICS_RANGES = {"drift_ppm": (-1000, 1000), "bias_permille": (-500, 500), "jitter_permille": (0, 500),
                  "start_permille": (0, 1000), "ticks_start": (0, (1 << 30) - 1), "severity_pct": (0, 100),
                  # divisors: 0 would divide by zero
                  "capacity_mah": (1, 10**6), "open_drain_s": (1, 10**7), "kink_drain_s": (1, 10**7)}
TOP_KEYS = {"name", "title", "description", "duration", "seed", "board", "start_time", "tags",
            "start", "physics", "patient", "events", "expect"}
START_KEYS = {"fill_ml": (NUM, False, 0.001, 40), "concentration_ug_ml": (int, False, 1, 100000),
              "actual_concentration_ug_ml": (int, False, 1, 100000), "primed": (bool, False, None, None),
              "program": (dict, False, None, None)}
FLAGS = ("possible_withdrawal", "possible_overdose")


_check = check_table


def _time(path, key, v):
    t = parse_time(v)
    if t is None:
        raise ScenarioError(path, key, "%r is not a time like \"3d 06:30\", \"12:00\" or \"180d\"" % (v,))
    return t


def _tables(path, raw, key):
    """-> [(index, "key[i]", table)] of an array of tables ([[key]]), checked."""
    items = raw.get(key, [])
    if not isinstance(items, list):
        raise ScenarioError(path, key, "must be an array of tables ([[%s]])" % key)
    out = []
    for i, x in enumerate(items):
        where = "%s[%d]" % (key, i)
        if not isinstance(x, dict):
            raise ScenarioError(path, where, "must be a table")
        out.append((i, where, x))
    return out


def load(path):
    """Read and check one scenario file. -> Scenario, or ScenarioError."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ScenarioError(path, "-", "no such file")
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(path, "-", "not valid TOML: %s" % e)
    return from_dict(raw, path)


def from_dict(raw, path="<scenario>"):
    for key in raw:
        if key not in TOP_KEYS:
            raise ScenarioError(path, key, "unknown key (known: %s)" % ", ".join(sorted(TOP_KEYS)))
    sc = Scenario()
    sc.path = path
    sc.name = raw.get("name", os.path.splitext(os.path.basename(path))[0])
    for key in ("name", "title", "description", "board"):
        if key in raw and not isinstance(raw[key], str):
            raise ScenarioError(path, key, "must be a string")
    if "title" not in raw:
        raise ScenarioError(path, "title", "is required (one line: what the scenario shows)")
    sc.title = raw["title"]
    sc.description = raw.get("description", "").strip()
    sc.tags = raw.get("tags", [])
    if not isinstance(sc.tags, list) or not all(isinstance(t, str) for t in sc.tags):
        raise ScenarioError(path, "tags", "must be a list of strings")
    if "duration" not in raw:
        raise ScenarioError(path, "duration", "is required, e.g. duration = \"30d\"")
    sc.duration_ms = _time(path, "duration", raw["duration"])
    if not 0 < sc.duration_ms <= MAX_DAYS * 86400000:
        raise ScenarioError(path, "duration", "must be more than 0 and at most %d days" % MAX_DAYS)
    sc.seed = raw.get("seed", 1)
    if not isinstance(sc.seed, int) or isinstance(sc.seed, bool):
        raise ScenarioError(path, "seed", "must be a whole number")
    sc.board = raw.get("board", "sim")
    if not os.path.exists(os.path.join(ROOT, "boards", sc.board + ".json")):
        raise ScenarioError(path, "board", "no board profile boards/%s.json" % sc.board)
    start_time = raw.get("start_time", "2026-01-05T08:00")
    try:
        dt = datetime.datetime.fromisoformat(start_time)
    except (TypeError, ValueError):
        raise ScenarioError(path, "start_time", "%r is not a local date and time like \"2026-01-05T08:00\"" % (start_time,))
    if dt.tzinfo is not None:
        raise ScenarioError(path, "start_time", "give local time without a zone: the pump's clock has none")
    sc.start_time = dt
    sc.start_wall_s = int((dt - EPOCH).total_seconds())
    if not 0 <= sc.start_wall_s <= WALL_MAX_S:
        raise ScenarioError(path, "start_time", "must be between 2000-01-01T00:00 and 2099-12-31T23:59:59, "
                            "the dates the pump's wall clock can be set to")

    start = raw.get("start", {})
    if not isinstance(start, dict):
        raise ScenarioError(path, "start", "must be a table")
    _check(path, "start.", start, START_KEYS)
    if "fill_ml" in start and "concentration_ug_ml" not in start:
        raise ScenarioError(path, "start.concentration_ug_ml", "is required with start.fill_ml")
    sc.start = start

    phys = raw.get("physics", {})
    if not isinstance(phys, dict):
        raise ScenarioError(path, "physics", "must be a table")
    sc.physics = {}
    for part, defaults in PHYSICS.items():
        given = phys.get(part, {})
        if not isinstance(given, dict):
            raise ScenarioError(path, "physics." + part, "must be a table")
        spec = {k: (int, False) + PHYSICS_RANGES.get(k, (0, 10**12)) for k in defaults}
        _check(path, "physics.%s." % part, given, spec)
        sc.physics[part] = {k: v for k, v in dict(defaults, **given).items() if v is not None}
    for part in phys:
        if part not in PHYSICS:
            raise ScenarioError(path, "physics." + part, "unknown model (known: %s)" % ", ".join(sorted(PHYSICS)))

    pat = raw.get("patient", {})
    if not isinstance(pat, dict):
        raise ScenarioError(path, "patient", "must be a table")
    spec = {k: (NUM, False, 0.001 if k in ("half_life_h", "clearance_ml_h", "sample_min") else 0, 10**7)
            for k in patient.PARAMS}
    _check(path, "patient.", pat, spec)
    sc.patient = dict(patient.PARAMS, **pat)
    sc.patient_sample_ms = int(sc.patient["sample_min"] * 60000)

    sc.events = []
    for i, where, ev in _tables(path, raw, "events"):
        if "at" not in ev:
            raise ScenarioError(path, where + ".at", "is required: when it happens, e.g. at = \"2d 14:00\"")
        t = _time(path, where + ".at", ev["at"])
        do = ev.get("do")
        if do not in ACTION_KEYS:
            raise ScenarioError(path, where + ".do", "%r is not an action (known: %s)" % (do, ", ".join(sorted(ACTION_KEYS))))
        args = action_args(path, where + ".", do, {k: v for k, v in ev.items() if k not in ("at", "do", "count", "every")})
        count = ev.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100000:
            raise ScenarioError(path, where + ".count", "must be a whole number 1 .. 100000")
        every = _time(path, where + ".every", ev["every"]) if "every" in ev else 0
        if count > 1 and every <= 0:
            raise ScenarioError(path, where + ".every", "is required with count > 1, e.g. every = \"06:00\"")
        for n in range(count):
            tn = t + n * every
            if tn > sc.duration_ms:
                if n == 0:
                    raise ScenarioError(path, where + ".at", "%s is after the end of the scenario (%s)"
                                        % (ev["at"], fmt_time(sc.duration_ms)))
                break
            sc.events.append(Event(tn, do, args, i))
    sc.events.sort(key=lambda e: (e.t_ms, e.index))

    sc.expect = []
    for i, where, x in _tables(path, raw, "expect"):
        if "alarm" in x:
            _check(path, where + ".", x, {"alarm": (str, True, None, None), "after": (str, False, None, None),
                                          "within_min": (int, False, 0, 10**7), "raised": (bool, False, None, None)})
            if x["alarm"] not in ALARM_NAMES:
                raise ScenarioError(path, where + ".alarm", "%r is not an alarm (known: %s)" % (x["alarm"], ", ".join(sorted(ALARM_NAMES))))
            after = _time(path, where + ".after", x["after"]) if "after" in x else 0
            sc.expect.append({"alarm": x["alarm"], "after_ms": after, "within_ms": x.get("within_min", -1) * 60000
                              if "within_min" in x else None, "raised": x.get("raised", True)})
        elif "flag" in x:
            _check(path, where + ".", x, {"flag": (str, True, None, None), "raised": (bool, False, None, None)})
            if x["flag"] not in FLAGS:
                raise ScenarioError(path, where + ".flag", "must be one of %s" % ", ".join(FLAGS))
            sc.expect.append({"flag": x["flag"], "raised": x.get("raised", True)})
        else:
            raise ScenarioError(path, where, "needs `alarm` or `flag`")
    return sc


def to_plain(sc):
    """A checked Scenario as plain data (JSON-ready), for runtimes that cannot
    read TOML: preset.from_plain() builds the same Scenario back (the lab)."""
    d = {key: getattr(sc, key) for key in PLAIN_KEYS}
    d["path"] = os.path.relpath(sc.path, ROOT) if os.path.isabs(sc.path) else sc.path
    d["start_time_iso"] = sc.start_time.isoformat()
    d["events"] = [{"t_ms": e.t_ms, "do": e.do, "args": e.args, "index": e.index} for e in sc.events]
    return d


def library():
    """-> [(name, path)] of the scenarios shipped in scenarios/, sorted."""
    out = []
    for fn in sorted(os.listdir(LIBRARY)):
        if fn.endswith(".toml"):
            out.append((fn[:-5], os.path.join(LIBRARY, fn)))
    return out


def find(name_or_path):
    """A library name ('catheter-kink') or a path to a .toml file."""
    if os.path.exists(name_or_path):
        return name_or_path
    cand = os.path.join(LIBRARY, name_or_path + ".toml")
    if os.path.exists(cand):
        return cand
    names = [n for n, _ in library()]
    raise ScenarioError(name_or_path, "-", "no such file, and not a scenario in the library (pump-emu list shows: %s)"
                        % ", ".join(names))
