# Scenario files (TOML): loading and checking, with errors that name the file,
# the key and the reason. The schema is documented key by key in
# docs/scenarios.md; the tables below are its single source in code.
import datetime
import json
import os
import tomllib

from emulator import battery, catheter, clock, motor, patient
from emulator.timeexpr import parse_time, parse_span, parse_expr, trigger_known, TRIGGERS
from pump.controller import WALL_MAX_S
# the portable part (also what the lab page runs under MicroPython)
from emulator.preset import (NUM, ALARM_NAMES, ACTION_KEYS, ScenarioError, Event, Scenario,  # noqa: F401
                             fmt_time, check_table, action_args, PLAIN_KEYS)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.path.join(ROOT, "scenarios")
EPOCH = datetime.datetime(2000, 1, 1)     # the pump's wall clock counts from here (as MicroPython)
MAX_DAYS = 3650

PHYSICS = {"clock": clock.PARAMS, "motor": motor.PARAMS, "battery": battery.PARAMS,
           "catheter": dict(catheter.PARAMS, dead_volume_nl=None)}
# ranges that are not simply 0 .. 10**12
PHYSICS_RANGES = {"drift_ppm": (-1000, 1000), "bias_permille": (-500, 500), "jitter_permille": (0, 500),
                  "start_permille": (0, 1000), "ticks_start": (0, (1 << 30) - 1), "severity_pct": (0, 100),
                  # divisors: 0 would divide by zero
                  "capacity_mah": (1, 10**6), "open_drain_s": (1, 10**7), "kink_drain_s": (1, 10**7)}
TOP_KEYS = {"name", "title", "description", "duration", "seed", "board", "start_time", "timezone", "tags",
            "start", "physics", "patient", "events", "expect"}
# keys an event may have beside its action's own
EVENT_KEYS = ("at", "do", "count", "every", "name", "after", "during", "at_write")
# clinic commands an event may wait for (`during`)
COMMAND_NAMES = ("program", "refill", "bolus", "patient_bolus", "prime", "suspend", "resume", "acknowledge",
                 "silence", "alarm_test", "set_clock")
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

    sc.timezone = raw.get("timezone")
    sc.events = _events(path, raw, sc)
    sc.expect = _expectations(path, raw, sc)
    from emulator.preflight import check_scenario
    check_scenario(sc, board_profile(sc.board))
    return sc


def board_profile(board):
    with open(os.path.join(ROOT, "boards", board + ".json")) as f:
        return json.load(f)


def _when(path, key, v, names):
    """A time from the start, or 'name [+|- span]' of a fixed event. -> ms."""
    t = parse_time(v)
    if t is not None:
        return t
    e = parse_expr(v)
    if e is None:
        raise ScenarioError(path, key, "%r is not a time like \"3d 06:30\", \"12:00\" or \"180d\", nor "
                            "an event's name with a span (\"kink + 10m\")" % (v,))
    name, off = e
    if name not in names:
        raise ScenarioError(path, key, "%r names no event with a fixed time (names: %s)"
                            % (name, ", ".join(sorted(names)) or "none"))
    return names[name] + off


def _events(path, raw, sc):
    tables = _tables(path, raw, "events")
    # names first: an event's `at` may be another's name, in any order
    names = {}
    pending = list(tables)
    for _ in range(len(tables) + 1):
        left = []
        for i, where, ev in pending:
            name = ev.get("name")
            if name is None:
                continue
            if not isinstance(name, str) or parse_expr(name) != (name, 0):
                raise ScenarioError(path, where + ".name", "must be a word (letters, digits, _ or -)")
            at = ev.get("at", "0d")
            if parse_time(at) is None and (parse_expr(at) or ("",))[0] not in names:
                left.append((i, where, ev))
                continue
            if "after" in ev or "during" in ev:
                continue        # an armed event has no fixed time to name
            if name in names:
                raise ScenarioError(path, where + ".name", "%r names another event too" % name)
            names[name] = _when(path, where + ".at", at, names)
        if len(left) == len(pending):
            break
        pending = left
    events = []
    for i, where, ev in tables:
        do = ev.get("do")
        if do not in ACTION_KEYS:
            raise ScenarioError(path, where + ".do", "%r is not an action (known: %s)" % (do, ", ".join(sorted(ACTION_KEYS))))
        if "at" not in ev and "after" not in ev and "during" not in ev:
            raise ScenarioError(path, where + ".at", "is required: when it happens, e.g. at = \"2d 14:00\" "
                                "(or after = \"bolus_start + 10m\")")
        t = _when(path, where + ".at", ev.get("at", "0d"), names)
        if t < 0:
            raise ScenarioError(path, where + ".at", "%r is before the start" % (ev.get("at"),))
        args = action_args(path, where + ".", do, {k: v for k, v in ev.items() if k not in EVENT_KEYS})
        trigger, delay = None, 0
        if "after" in ev:
            e = parse_expr(ev["after"])
            if e is None or not trigger_known(e[0]):
                raise ScenarioError(path, where + ".after", "%r is not a trigger with a span, like "
                                    "\"bolus_start + 10m\" (triggers: %s)" % (ev["after"], ", ".join(TRIGGERS)))
            trigger, delay = e
            if delay < 0:
                raise ScenarioError(path, where + ".after", "the span must not be negative")
            if trigger.startswith("alarm:") and trigger[6:] not in ALARM_NAMES:
                raise ScenarioError(path, where + ".after", "%r is not an alarm" % trigger[6:])
        during = ev.get("during")
        if during is not None and "after" in ev:
            raise ScenarioError(path, where + ".during", "an event waits for one thing: `after` or `during`, not both")
        if during is not None and during not in COMMAND_NAMES:
            raise ScenarioError(path, where + ".during", "%r is not a clinic command (known: %s)"
                                % (during, ", ".join(COMMAND_NAMES)))
        at_write = ev.get("at_write", 0)
        if "at_write" in ev:
            if do not in ("battery_drop", "reset_during_write"):
                raise ScenarioError(path, where + ".at_write", "only battery_drop and reset_during_write are "
                                    "placed at a storage write (reset_during_write: nth_write)")
            if isinstance(at_write, bool) or not isinstance(at_write, int) or not 1 <= at_write <= 1000000:
                raise ScenarioError(path, where + ".at_write", "must be a whole number 1 .. 1000000")
            if do == "reset_during_write":
                args["nth_write"] = at_write
                at_write = 0
        if during is not None and do == "battery_drop" and not at_write:
            at_write = 1
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
                                        % (ev.get("at"), fmt_time(sc.duration_ms)))
                break
            events.append(Event(tn, do, args, i, ev.get("name"), trigger, delay, during, at_write))
    if sc.timezone is not None:
        if not isinstance(sc.timezone, str):
            raise ScenarioError(path, "timezone", "must be a string like \"Europe/Paris\"")
        from emulator import timezone
        try:
            tz = timezone.zone(sc.timezone)
        except ValueError as e:
            raise ScenarioError(path, "timezone", str(e))
        for t, shift in timezone.transitions(tz, sc.start_time, sc.duration_ms):
            events.append(Event(t, "dst", {"shift_min": shift // 60}, -1))
    # two power cuts armed for the same moment would replace one another
    cuts = {}
    for e in events:
        if e.do == "reset_during_write" and not e.armed():
            if e.t_ms in cuts:
                raise ScenarioError(path, "events[%d]" % e.index, "arms a power cut at %s, as events[%d] does: "
                                    "the two collide (use nth_write or repeat)" % (fmt_time(e.t_ms), cuts[e.t_ms]))
            cuts[e.t_ms] = e.index
    events.sort(key=lambda e: (e.t_ms, e.index))
    return events


# [[expect]]: each kind's keys (besides its main key)
EXPECT_KINDS = {
    "alarm": {"alarm": (str, True, None, None), "after": (str, False, None, None),
              "within_min": (int, False, 0, 10**7), "raised": (bool, False, None, None)},
    "refusal": {"refusal": (str, True, None, None), "after": (str, False, None, None),
                "within_min": (int, False, 0, 10**7), "raised": (bool, False, None, None)},
    "flag": {"flag": (str, True, None, None), "raised": (bool, False, None, None)},
    "no_strokes_after": {"no_strokes_after": (str, True, None, None), "until": (str, False, None, None)},
    "delivered_ug": {"delivered_ug": (list, True, None, None), "from": (str, False, None, None),
                     "to": (str, False, None, None)},
    "boluses_granted": {"boluses_granted": (int, True, 0, 100000), "kind": (str, False, None, None),
                        "from": (str, False, None, None), "to": (str, False, None, None)},
    "max_real_24h_ug": {"max_real_24h_ug": (NUM, True, 0, 10**7)},
    "max_real_1h_ug": {"max_real_1h_ug": (NUM, True, 0, 10**7)},
    "same_trace_as": {"same_trace_as": (str, True, None, None)},
}
BOLUS_KINDS = ("any", "clinician", "patient", "prime")


def _expectations(path, raw, sc):
    from pump.controller import REFUSAL_NAMES
    names = {}
    for e in sc.events:            # a repeated event's name: its first time
        if e.name and not e.armed() and e.name not in names:
            names[e.name] = e.t_ms
    out = []
    for i, where, x in _tables(path, raw, "expect"):
        kinds = [k for k in EXPECT_KINDS if k in x]
        if len(kinds) != 1:
            raise ScenarioError(path, where, "needs exactly one of %s" % ", ".join(sorted(EXPECT_KINDS)))
        kind = kinds[0]
        _check(path, where + ".", x, EXPECT_KINDS[kind])

        def when(key, default):
            return _when(path, where + "." + key, x[key], names) if key in x else default
        item = {"kind": kind}
        if kind in ("alarm", "refusal"):
            known = ALARM_NAMES if kind == "alarm" else [n for n in REFUSAL_NAMES if n and n != "refusals_ended"]
            if x[kind] not in known:
                raise ScenarioError(path, where + "." + kind, "%r is not a%s (known: %s)"
                                    % (x[kind], "n alarm" if kind == "alarm" else " refusal", ", ".join(sorted(known))))
            item.update({kind: x[kind], "after_ms": when("after", 0), "raised": x.get("raised", True),
                         "within_ms": x["within_min"] * 60000 if "within_min" in x else None})
        elif kind == "flag":
            if x["flag"] not in FLAGS:
                raise ScenarioError(path, where + ".flag", "must be one of %s" % ", ".join(FLAGS))
            item.update({"flag": x["flag"], "raised": x.get("raised", True)})
        elif kind == "no_strokes_after":
            item.update({"from_ms": when("no_strokes_after", 0), "to_ms": when("until", sc.duration_ms)})
        elif kind == "delivered_ug":
            lim = x["delivered_ug"]
            if (len(lim) != 2 or not all(isinstance(v, NUM) and not isinstance(v, bool) for v in lim)
                    or not 0 <= lim[0] <= lim[1]):
                raise ScenarioError(path, where + ".delivered_ug", "must be [min, max] in ug, 0 <= min <= max")
            item.update({"min_ug": lim[0], "max_ug": lim[1], "from_ms": when("from", 0),
                         "to_ms": when("to", sc.duration_ms)})
        elif kind == "boluses_granted":
            bk = x.get("kind", "any")
            if bk not in BOLUS_KINDS:
                raise ScenarioError(path, where + ".kind", "must be one of %s" % ", ".join(BOLUS_KINDS))
            item.update({"count": x["boluses_granted"], "bolus_kind": bk, "from_ms": when("from", 0),
                         "to_ms": when("to", sc.duration_ms)})
        elif kind in ("max_real_24h_ug", "max_real_1h_ug"):
            item.update({"max_ug": x[kind], "span_ms": 86400000 if kind == "max_real_24h_ug" else 3600000})
        else:
            other = x["same_trace_as"]
            here = os.path.dirname(os.path.abspath(path)) if path and not path.startswith("<") else ROOT
            cand = os.path.join(here, other) if not os.path.isabs(other) else other
            if not os.path.exists(cand):
                try:
                    cand = find(other)
                except ScenarioError:
                    raise ScenarioError(path, where + ".same_trace_as", "%r is no scenario file nor a library "
                                        "scenario" % other)
            if os.path.abspath(cand) == os.path.abspath(path):
                raise ScenarioError(path, where + ".same_trace_as", "names this scenario itself")
            item.update({"other": other, "other_path": cand})
        if "from_ms" in item and not 0 <= item["from_ms"] <= item["to_ms"] <= sc.duration_ms:
            raise ScenarioError(path, where, "the window must lie in the run, its start before its end")
        item["index"] = i
        out.append(item)
    return out


def to_plain(sc):
    """A checked Scenario as plain data (JSON-ready), for runtimes that cannot
    read TOML: preset.from_plain() builds the same Scenario back (the lab)."""
    d = {key: getattr(sc, key) for key in PLAIN_KEYS}
    d["path"] = os.path.relpath(sc.path, ROOT) if os.path.isabs(sc.path) else sc.path
    d["start_time_iso"] = sc.start_time.isoformat()
    d["events"] = [e.plain() for e in sc.events]
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
