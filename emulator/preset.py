# A scenario as plain data, for every runtime the emulator runs in.
#
# emulator/scenario.py reads TOML files and checks them on CPython (it needs
# tomllib, datetime and re). What a run needs from a checked scenario is plain
# data: numbers, strings, lists and dicts. This module holds that part, with
# nothing MicroPython lacks, so the same World runs in CPython and in the
# MicroPython WebAssembly build behind the student lab (lab/): `make lab` turns
# each library scenario into JSON with scenario.to_plain(), and the page builds
# the Scenario back with from_plain(). The per-event key table and its check
# are here too, so an event typed on the lab page is checked exactly as the
# same event in a scenario file.
from pump import alarms as A

NUM = (int, float)

# the alarm names a scenario (or the lab page) may acknowledge or expect
ALARM_NAMES = {}
for _c in range(1, A.N_ALARMS):
    ALARM_NAMES[A.name(_c)] = _c

# per-action keys: key -> (types, required, lo, hi)
ACTION_KEYS = {
    "program": {"program": (dict, True, None, None)},
    "refill": {"volume_ml": (NUM, True, 0.001, 40), "concentration_ug_ml": (int, True, 1, 100000),
               "actual_concentration_ug_ml": (int, False, 1, 100000), "residual_ml": (NUM, False, 0, 40),
               "pocket_fill": (bool, False, None, None)},
    "bolus": {"dose_ug": (int, True, 1, 100000), "duration_min": (int, True, 1, 100000)},
    "patient_bolus": {},
    "prime": {"duration_min": (int, True, 1, 100000), "volume_ul": (int, False, 1, 100000)},
    "suspend": {}, "resume": {}, "silence": {}, "alarm_test": {},
    "acknowledge": {"alarm": (str, True, None, None)},
    "set_clock": {"shift_min": (int, True, -100000, 100000)},
    "clock_jump": {"shift_min": (int, True, -100000, 100000)},
    "kink": {"severity_pct": (int, True, 1, 100)},
    "block": {}, "release": {}, "disconnect": {}, "migrate": {}, "revise_catheter": {},
    "leak": {"pct": (int, True, 1, 100)},
    "stall": {"strokes": (int, True, 1, 1000)},
    "jam": {"after_strokes": (int, False, 0, 10000000)},
    "repair_motor": {},
    "battery_drop": {"to_permille": (int, True, 0, 1000)},
    "reset": {"cause": (str, False, None, None)},
    "reset_during_write": {"nth_write": (int, False, 1, 1000000), "atomic": (bool, False, None, None),
                           "repeat": (int, False, 1, 100000)},
    "dst": {"shift_min": (int, True, -1440, 1440)},
    "bit_flip": {"key": (str, True, None, None), "bit": (int, True, 0, 100000)},
    "lumbar_bolus": {"dose_ug": (int, True, 1, 1000)},
}


class ScenarioError(ValueError):
    def __init__(self, path, key, reason):
        self.path, self.key, self.reason = path, key, reason
        ValueError.__init__(self, "%s: %s: %s" % (path, key, reason))


def fmt_time(ms):
    """ms from the start -> '3d 06:30:00'."""
    d, rest = divmod(ms // 1000, 86400)
    return "%dd %02d:%02d:%02d" % (d, rest // 3600, rest % 3600 // 60, rest % 60)


def check_table(path, where, table, spec):
    """Every key known, every required key present, each value of its type
    and in range; else ScenarioError naming the key."""
    for key in table:
        if key not in spec:
            raise ScenarioError(path, where + key, "unknown key (known: %s)" % ", ".join(sorted(spec)))
    for key, (types, required, lo, hi) in spec.items():
        if key not in table:
            if required:
                raise ScenarioError(path, where + key, "is required")
            continue
        v = table[key]
        if isinstance(v, bool) and types is not bool:
            raise ScenarioError(path, where + key, "must be a number, not true/false")
        if not isinstance(v, types):
            want = {bool: "true or false", str: "a string", dict: "a table", int: "a whole number"}.get(
                types, "a number")
            raise ScenarioError(path, where + key, "must be %s, not %r" % (want, v))
        if lo is not None and not (lo <= v <= hi):
            raise ScenarioError(path, where + key, "%r is out of range %s .. %s" % (v, lo, hi))


def action_args(path, where, do, args):
    """Check one event's action and keys (without at/count/every). -> the args
    the action takes (an acknowledge gets its alarm's code as alarm_code)."""
    if do not in ACTION_KEYS:
        raise ScenarioError(path, where + "do", "%r is not an action (known: %s)"
                            % (do, ", ".join(sorted(ACTION_KEYS))))
    args = dict(args)
    check_table(path, where, args, ACTION_KEYS[do])
    if do == "acknowledge":
        if args["alarm"] not in ALARM_NAMES:
            raise ScenarioError(path, where + "alarm", "%r is not an alarm (known: %s)"
                                % (args["alarm"], ", ".join(sorted(ALARM_NAMES))))
        args["alarm_code"] = ALARM_NAMES[args["alarm"]]
    if do == "reset" and args.get("cause", "power_on") not in ("power_on", "watchdog", "soft"):
        raise ScenarioError(path, where + "cause", "must be power_on, watchdog or soft")
    return args


class Event:
    """One event. A fixed one happens at t_ms. An armed one waits: for
    `trigger` (what the pump does, emulator/timexpr.TRIGGERS) at or after t_ms,
    then `delay_ms` more; or, with `during` (a clinic command's name), for the
    next such command; and with `at_write` for that many storage writes more."""

    def __init__(self, t_ms, do, args, index, name=None, trigger=None, delay_ms=0, during=None, at_write=0):
        self.t_ms, self.do, self.args, self.index = t_ms, do, args, index
        self.name = name
        self.trigger = trigger
        self.delay_ms = delay_ms
        self.during = during
        self.at_write = at_write

    def armed(self):
        return self.trigger is not None or self.during is not None or self.at_write > 0

    def plain(self):
        d = {"t_ms": self.t_ms, "do": self.do, "args": self.args, "index": self.index}
        for k in ("name", "trigger", "delay_ms", "during", "at_write"):
            v = getattr(self, k)
            if v:
                d[k] = v
        return d

    def summary(self):
        return ", ".join("%s=%s" % (k, v) for k, v in sorted(self.args.items())
                         if k not in ("program", "alarm_code")) or self.do


class Scenario:
    """A checked scenario: every value present, typed and in range."""


# the attributes a checked Scenario carries as plain data (start_time, a
# datetime on CPython, travels as its ISO text; start_wall_s is the number)
PLAIN_KEYS = ("path", "name", "title", "description", "tags", "duration_ms", "seed", "board",
              "start_wall_s", "start", "physics", "patient", "patient_sample_ms", "expect")


def from_plain(d):
    """A Scenario from the plain data scenario.to_plain() made (e.g. parsed
    from JSON). The data was checked when the TOML file was loaded."""
    sc = Scenario()
    for key in PLAIN_KEYS:
        setattr(sc, key, d[key])
    sc.start_time = d.get("start_time_iso")
    sc.events = [Event(e["t_ms"], e["do"], e["args"], e["index"], e.get("name"), e.get("trigger"),
                       e.get("delay_ms", 0), e.get("during"), e.get("at_write", 0)) for e in d["events"]]
    return sc
