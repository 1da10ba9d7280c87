"""Unit tests for pump.program: validate(), Program, ProgramError.

What a clinician or a safety reviewer relies on:
- every bad setting is refused with a ProgramError naming the field and a
  readable reason; nothing else (TypeError, KeyError) escapes validate();
- every limit is converted once to integer nL, rounded toward the safe side
  (floor for maxima), with no float anywhere in a Program;
- a flex pattern is read around the clock (the step before the first start
  runs from midnight), its daily total is exact;
- the caps leave the headroom the governor needs, and when they do not, the
  message names the least cap that would be accepted;
- a raise of the daily dose of more than max_step_up_pct within 24 h needs a
  clinician override.

The references below are computed independently of program.py: conversions
as ug * 1_000_000 // conc, flex patterns minute by minute from the raw steps
("the step in force is the one whose start passed most recently, going back
around the clock"), busiest windows by sliding a window over every minute.
"""
import copy
import re

import pytest
from hypothesis import given, strategies as st

from conftest import sim_profile
from pump.program import validate, Program, ProgramError, fastest_bolus_nl_day
from unitutil import tightest_program, small_ints

PROFILE = sim_profile()
STROKE = PROFILE["stroke_nl"]                      # 250 nL
STROKE_MS = PROFILE["stroke_ms"]                   # 200 ms
DAY_S = 86400
DAY_MIN = 1440
DEL = object()                                     # "remove this key" in an edit

# Half the motor's top speed: 250 nL every 400 ms = 216000 strokes a day.
FASTEST_SIM = 54_000_000


def nl(ug, conc):
    """The reference conversion: 1 ug/mL is 1 pg/nL, floor toward the safe side."""
    return ug * 1_000_000 // conc


def ceil_div(a, b):
    return -((-a) // b)


BOLUS = {"dose_ug": 25, "duration_min": 10, "lockout_min": 60, "max_per_day": 4}
CONT = {"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": 100,
        "max_daily_ug": 200, "max_hourly_ug": 40, "patient_bolus": BOLUS}
FLEX = {"mode": "flex", "concentration_ug_ml": 500,
        "steps": [{"start_min": 0, "daily_rate_ug": 100}, {"start_min": 480, "daily_rate_ug": 200},
                  {"start_min": 1200, "daily_rate_ug": 100}],
        "max_daily_ug": 400, "max_hourly_ug": 40}
STOPPED = {"mode": "stopped", "concentration_ug_ml": 500, "max_daily_ug": 10, "max_hourly_ug": 5}
ROOMY = dict(CONT, max_daily_ug=6000, max_hourly_ug=6000)
BASES = {"cont": CONT, "flex": FLEX, "stopped": STOPPED, "roomy": ROOMY}


def edited(base, edits):
    """A deep copy of BASES[base] with edits {"a.b.0.c": value} applied; value
    DEL removes the key; the key "" replaces the whole program."""
    raw = copy.deepcopy(BASES[base])
    for path, value in edits.items():
        if path == "":
            return value
        keys = [int(k) if k.isdigit() else k for k in path.split(".")]
        node = raw
        for k in keys[:-1]:
            node = node[k]
        if value is DEL:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return raw


def refused(raw, stroke_nl=STROKE, **kw):
    with pytest.raises(ProgramError) as info:
        validate(raw, stroke_nl, **kw)
    return info.value


def named_least(err, unit="ug"):
    m = re.search(r"at least (\d+) " + unit, err.reason)
    assert m, "the reason should name the least acceptable value: %r" % err.reason
    return int(m.group(1))


def cont(ug, **kw):
    """A continuous program with room under its caps for any daily dose."""
    return dict({"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": ug,
                 "max_daily_ug": 6000, "max_hourly_ug": 6000}, **kw)


def flex(conc, *steps, **kw):
    return dict({"mode": "flex", "concentration_ug_ml": conc,
                 "steps": [{"start_min": s, "daily_rate_ug": u} for s, u in steps],
                 "max_daily_ug": 6000, "max_hourly_ug": 6000}, **kw)


# --- independent references for flex patterns ----------------------------------

def raw_steps(raw):
    """[(start_min, ug/day)] of any program, as written in the raw dict."""
    if raw["mode"] == "continuous":
        return [(0, raw["daily_dose_ug"])]
    if raw["mode"] == "stopped":
        return [(0, 0)]
    return [(s["start_min"], s["daily_rate_ug"]) for s in raw["steps"]]


def in_force(steps, t, period):
    """Index of the step in force at t: the start that passed most recently."""
    return min(range(len(steps)), key=lambda i: (t - steps[i][0]) % period)


def minute_values(raw, convert):
    steps = raw_steps(raw)
    return [convert(steps[in_force(steps, m, DAY_MIN)][1]) for m in range(DAY_MIN)]


def busiest_nl(raw, window_min):
    """Largest basal volume (nL, rounded up) in any window_min-long span."""
    conc = raw["concentration_ug_ml"]
    per_min = minute_values(raw, lambda ug: nl(ug, conc))   # nL/day in each minute
    twice = per_min + per_min
    s = sum(twice[:window_min])
    best = s
    for a in range(1, DAY_MIN):
        s += twice[a + window_min - 1] - twice[a - 1]
        best = max(best, s)
    return ceil_div(best, DAY_MIN)          # sum of nL/day over minutes / 1440 = nL


def least_caps_reference(raw):
    """(least max_hourly_ug, least max_daily_ug) by the documented rule: the
    busiest window + one governor slot at the peak rate (10 s for the hour,
    5 min for the day) + two strokes; the hour also holds one patient bolus."""
    conc = raw["concentration_ug_ml"]
    peak = max(nl(u, conc) for _, u in raw_steps(raw))
    hour = busiest_nl(raw, 60) + ceil_div(peak * 10, DAY_S) + 2 * STROKE
    if raw.get("patient_bolus"):
        hour += nl(raw["patient_bolus"]["dose_ug"], conc)
    day = busiest_nl(raw, DAY_MIN) + ceil_div(peak * 300, DAY_S) + 2 * STROKE
    h = ceil_div(hour * conc, 1_000_000)
    return h, max(h, ceil_div(day * conc, 1_000_000))


def least_caps(raw):
    """The least caps validate() accepts, read from its own messages."""
    base = {k: v for k, v in raw.items() if k not in ("max_daily_ug", "max_hourly_ug")}
    try:
        validate(dict(base, max_daily_ug=6000, max_hourly_ug=1), STROKE)
        h = 1
    except ProgramError as e:
        assert e.field in ("max_hourly_ug", "patient_bolus.dose_ug"), e
        h = named_least(e)
    try:
        validate(dict(base, max_daily_ug=h, max_hourly_ug=h), STROKE)
        d = h
    except ProgramError as e:
        assert e.field == "max_daily_ug", e
        d = named_least(e)
    return h, d


# --- every bad field is refused by name ---------------------------------------

BAD = [
    # the program itself
    ("cont", {"": []}, "program", "table"),
    ("cont", {"": None}, "program", "table"),
    ("cont", {"": "mode = continuous"}, "program", "table"),
    ("cont", {"daily_dose": 100}, "daily_dose", "is not a program setting"),
    ("cont", {"Mode": "flex"}, "Mode", "is not a program setting"),
    # mode
    ("cont", {"mode": DEL}, "mode", "must be one of continuous, flex, stopped"),
    ("cont", {"mode": "bolus"}, "mode", "'bolus'"),
    ("cont", {"mode": "Continuous"}, "mode", "'Continuous'"),
    ("cont", {"mode": 1}, "mode", "must be one of"),
    # concentration
    ("cont", {"concentration_ug_ml": DEL}, "concentration_ug_ml", "is required"),
    ("cont", {"concentration_ug_ml": 9}, "concentration_ug_ml", "9 is outside 10..3000"),
    ("cont", {"concentration_ug_ml": 3001}, "concentration_ug_ml", "3001 is outside 10..3000"),
    ("cont", {"concentration_ug_ml": 0}, "concentration_ug_ml", "outside"),
    ("cont", {"concentration_ug_ml": -500}, "concentration_ug_ml", "outside"),
    ("cont", {"concentration_ug_ml": 500.0}, "concentration_ug_ml", "whole number"),
    ("cont", {"concentration_ug_ml": True}, "concentration_ug_ml", "whole number"),
    ("cont", {"concentration_ug_ml": "500"}, "concentration_ug_ml", "whole number"),
    # daily dose (continuous)
    ("cont", {"daily_dose_ug": DEL}, "daily_dose_ug", "is required"),
    ("cont", {"daily_dose_ug": 0}, "daily_dose_ug", "0 is outside 1..3000"),
    ("cont", {"daily_dose_ug": 3001}, "daily_dose_ug", "3001 is outside 1..3000"),
    ("cont", {"daily_dose_ug": 100.0}, "daily_dose_ug", "whole number"),
    ("cont", {"daily_dose_ug": 99.5}, "daily_dose_ug", "whole number"),
    ("cont", {"daily_dose_ug": True}, "daily_dose_ug", "whole number"),
    ("cont", {"daily_dose_ug": "100"}, "daily_dose_ug", "whole number"),
    # flex steps
    ("flex", {"steps": DEL}, "steps", "needs 1..10 steps"),
    ("flex", {"steps": []}, "steps", "needs 1..10 steps"),
    ("flex", {"steps": {"start_min": 0, "daily_rate_ug": 100}}, "steps", "needs 1..10 steps"),
    ("flex", {"steps": [{"start_min": 60 * i, "daily_rate_ug": 100} for i in range(11)]}, "steps", "11 steps; at most 10"),
    ("flex", {"steps.0.daily_rate_ug": 0, "steps.1.daily_rate_ug": 0, "steps.2.daily_rate_ug": 0}, "steps", "rate 0"),
    ("flex", {"steps.0": 100}, "steps[0]", "must be a table"),
    ("flex", {"steps.1.foo": 1}, "steps[1].foo", "is not a step setting"),
    ("flex", {"steps.1.start": 480}, "steps[1].start", "is not a step setting"),
    ("flex", {"steps.2.start_min": 300}, "steps[2].start_min", "increasing time order"),
    ("flex", {"steps.2.start_min": 480}, "steps[2].start_min", "increasing time order"),
    ("flex", {"steps.1.start_min": 0}, "steps[1].start_min", "increasing time order"),
    ("flex", {"steps.2.start_min": 1440}, "steps[2].start_min", "1440 is outside 0..1439"),
    ("flex", {"steps.0.start_min": -1}, "steps[0].start_min", "-1 is outside 0..1439"),
    ("flex", {"steps.1.start_min": DEL}, "steps[1].start_min", "is required"),
    ("flex", {"steps.1.start_min": 480.0}, "steps[1].start_min", "whole number"),
    ("flex", {"steps.0.start_min": False}, "steps[0].start_min", "whole number"),
    ("flex", {"steps.0.daily_rate_ug": -1}, "steps[0].daily_rate_ug", "-1 is outside 0..3000"),
    ("flex", {"steps.0.daily_rate_ug": 3001}, "steps[0].daily_rate_ug", "3001 is outside 0..3000"),
    ("flex", {"steps.0.daily_rate_ug": 100.5}, "steps[0].daily_rate_ug", "whole number"),
    ("flex", {"steps.2.daily_rate_ug": True}, "steps[2].daily_rate_ug", "whole number"),
    ("flex", {"steps.1.daily_rate_ug": DEL}, "steps[1].daily_rate_ug", "is required"),
    ("flex", {"steps.1.daily_rate_ug": "200"}, "steps[1].daily_rate_ug", "whole number"),
    # caps
    ("cont", {"max_daily_ug": DEL}, "max_daily_ug", "is required"),
    ("cont", {"max_daily_ug": 0}, "max_daily_ug", "0 is outside 1..6000"),
    ("cont", {"max_daily_ug": 6001}, "max_daily_ug", "6001 is outside 1..6000"),
    ("cont", {"max_daily_ug": 200.0}, "max_daily_ug", "whole number"),
    ("cont", {"max_daily_ug": True}, "max_daily_ug", "whole number"),
    ("flex", {"max_daily_ug": 150}, "max_daily_ug", "below what the program needs in 24 h: at least"),
    ("stopped", {"max_daily_ug": 6000, "max_hourly_ug": 6001}, "max_hourly_ug", "6001 is outside 1..6000"),
    ("cont", {"max_hourly_ug": DEL}, "max_hourly_ug", "is required"),
    ("cont", {"max_hourly_ug": 0}, "max_hourly_ug", "0 is outside 1..6000"),
    ("cont", {"max_hourly_ug": 40.0}, "max_hourly_ug", "whole number"),
    ("cont", {"max_hourly_ug": False}, "max_hourly_ug", "whole number"),
    ("cont", {"max_hourly_ug": 201}, "max_hourly_ug", "201 ug/h is above max_daily_ug 200"),
    ("flex", {"max_hourly_ug": 5}, "max_hourly_ug", "below what the program needs in its busiest hour: at least"),
    # patient bolus
    ("cont", {"patient_bolus": [25]}, "patient_bolus", "table"),
    ("cont", {"patient_bolus": 25}, "patient_bolus", "table"),
    ("cont", {"patient_bolus.x": 1}, "patient_bolus.x", "is not a patient bolus setting"),
    ("cont", {"patient_bolus.dose_ug": DEL}, "patient_bolus.dose_ug", "is required"),
    ("cont", {"patient_bolus.dose_ug": 0}, "patient_bolus.dose_ug", "0 is outside 1..500"),
    ("cont", {"patient_bolus.dose_ug": 501}, "patient_bolus.dose_ug", "501 is outside 1..500"),
    ("cont", {"patient_bolus.dose_ug": 25.0}, "patient_bolus.dose_ug", "whole number"),
    ("cont", {"patient_bolus.dose_ug": True}, "patient_bolus.dose_ug", "whole number"),
    ("cont", {"patient_bolus.dose_ug": 40}, "patient_bolus.dose_ug", "does not fit under max_hourly_ug 40"),
    ("cont", {"patient_bolus.lockout_min": DEL}, "patient_bolus.lockout_min", "is required"),
    ("cont", {"patient_bolus.lockout_min": 9}, "patient_bolus.lockout_min", "9 is outside 10..1440"),
    ("cont", {"patient_bolus.lockout_min": 1441}, "patient_bolus.lockout_min", "1441 is outside 10..1440"),
    ("cont", {"patient_bolus.lockout_min": 60.0}, "patient_bolus.lockout_min", "whole number"),
    ("cont", {"patient_bolus.duration_min": 90}, "patient_bolus.lockout_min", "shorter than duration_min"),
    ("cont", {"patient_bolus.duration_min": 61}, "patient_bolus.lockout_min", "shorter than duration_min"),
    ("cont", {"patient_bolus.duration_min": DEL}, "patient_bolus.duration_min", "is required"),
    ("cont", {"patient_bolus.duration_min": 0}, "patient_bolus.duration_min", "0 is outside 1..240"),
    ("cont", {"patient_bolus.duration_min": 241}, "patient_bolus.duration_min", "241 is outside 1..240"),
    ("cont", {"patient_bolus.duration_min": 10.0}, "patient_bolus.duration_min", "whole number"),
    ("cont", {"patient_bolus.max_per_day": DEL}, "patient_bolus.max_per_day", "is required"),
    ("cont", {"patient_bolus.max_per_day": 0}, "patient_bolus.max_per_day", "0 is outside 1..24"),
    ("cont", {"patient_bolus.max_per_day": 25}, "patient_bolus.max_per_day", "25 is outside 1..24"),
    ("cont", {"patient_bolus.max_per_day": 4.0}, "patient_bolus.max_per_day", "whole number"),
    ("cont", {"patient_bolus.max_per_day": True}, "patient_bolus.max_per_day", "whole number"),
    # safe rate, reservoir alarm, step-up, flags, catheter
    ("cont", {"safe_rate_ug_day": -1}, "safe_rate_ug_day", "-1 is outside 0..3000"),
    ("cont", {"safe_rate_ug_day": 3001}, "safe_rate_ug_day", "3001 is outside 0..3000"),
    ("cont", {"safe_rate_ug_day": 101}, "safe_rate_ug_day", "101 ug/day is above the programmed daily dose"),
    ("flex", {"safe_rate_ug_day": 151}, "safe_rate_ug_day", "above the programmed daily dose"),
    ("stopped", {"safe_rate_ug_day": 1}, "safe_rate_ug_day", "above the programmed daily dose"),
    ("cont", {"safe_rate_ug_day": 50.0}, "safe_rate_ug_day", "whole number"),
    ("cont", {"safe_rate_ug_day": True}, "safe_rate_ug_day", "whole number"),
    ("cont", {"low_reservoir_ul": -1}, "low_reservoir_ul", "-1 is outside 0..40000"),
    ("cont", {"low_reservoir_ul": 40001}, "low_reservoir_ul", "40001 is outside 0..40000"),
    ("cont", {"low_reservoir_ul": 2000.0}, "low_reservoir_ul", "whole number"),
    ("cont", {"low_reservoir_ul": True}, "low_reservoir_ul", "whole number"),
    ("cont", {"low_reservoir_ul": "2000"}, "low_reservoir_ul", "whole number"),
    ("cont", {"max_step_up_pct": -1}, "max_step_up_pct", "-1 is outside 0..100"),
    ("cont", {"max_step_up_pct": 101}, "max_step_up_pct", "101 is outside 0..100"),
    ("cont", {"max_step_up_pct": 30.0}, "max_step_up_pct", "whole number"),
    ("cont", {"max_step_up_pct": True}, "max_step_up_pct", "whole number"),
    ("cont", {"override_step_up": 1}, "override_step_up", "true or false"),
    ("cont", {"override_step_up": "true"}, "override_step_up", "true or false"),
    ("cont", {"override_step_up": None}, "override_step_up", "true or false"),
    ("cont", {"bridge": 1}, "bridge", "true or false"),
    ("cont", {"bridge": "yes"}, "bridge", "true or false"),
    ("cont", {"catheter_cm": 0, "catheter_nl_per_cm": 2200}, "catheter_cm", "0 is outside 1..200"),
    ("cont", {"catheter_cm": 201, "catheter_nl_per_cm": 2200}, "catheter_cm", "201 is outside 1..200"),
    ("cont", {"catheter_cm": 50.0, "catheter_nl_per_cm": 2200}, "catheter_cm", "whole number"),
    ("cont", {"catheter_cm": True, "catheter_nl_per_cm": 2200}, "catheter_cm", "whole number"),
    ("cont", {"catheter_nl_per_cm": 2200}, "catheter_cm", "is required"),
    ("cont", {"catheter_cm": 50}, "catheter_nl_per_cm", "is required"),
    ("cont", {"catheter_cm": 50, "catheter_nl_per_cm": 99}, "catheter_nl_per_cm", "99 is outside 100..20000"),
    ("cont", {"catheter_cm": 50, "catheter_nl_per_cm": 20001}, "catheter_nl_per_cm", "20001 is outside 100..20000"),
    ("cont", {"catheter_cm": 50, "catheter_nl_per_cm": 2200.0}, "catheter_nl_per_cm", "whole number"),
    # every rate at least one stroke an hour (250 nL: 6000 nL/day), with a strength that would do
    ("roomy", {"daily_dose_ug": 2}, "daily_dose_ug", "one 250 nL stroke every 90 min"),
    ("roomy", {"daily_dose_ug": 2}, "daily_dose_ug", "at most 333 ug/mL for this dose, or at least 3 ug/day"),
    ("roomy", {"concentration_ug_ml": 3000, "daily_dose_ug": 1}, "daily_dose_ug",
     "1 ug/day at 3000 ug/mL is one 250 nL stroke every 1081 min"),
    ("roomy", {"concentration_ug_ml": 3000, "daily_dose_ug": 1}, "daily_dose_ug", "at most 166 ug/mL"),
    ("flex", {"steps.1.daily_rate_ug": 2}, "steps[1].daily_rate_ug", "every 90 min"),
    ("cont", {"safe_rate_ug_day": 1}, "safe_rate_ug_day", "every 180 min"),
]


def _id(row):
    base, edits, field, _ = row
    what = ",".join("%s=%r" % (k or "program", "DEL" if v is DEL else v) for k, v in edits.items())
    return "%s:%s" % (base, what[:50])


@pytest.mark.parametrize("base,edits,field,fragment", BAD, ids=[_id(r) for r in BAD])
def test_bad_setting_is_refused_by_name(base, edits, field, fragment):
    raw = edited(base, edits)
    e = refused(raw)
    assert e.field == field, e
    assert fragment in e.reason, e
    assert isinstance(e, ValueError)
    assert str(e) == field + ": " + e.reason


@pytest.mark.parametrize("base", sorted(BASES))
def test_bases_are_valid(base):
    # the table above only means something if each base is accepted as it is
    assert validate(copy.deepcopy(BASES[base]), STROKE).mode == BASES[base]["mode"]


GOOD = [  # boundaries that must be accepted: (base, edits, attribute, expected value)
    ("roomy", {"concentration_ug_ml": 10}, "conc", 10),
    ("roomy", {"concentration_ug_ml": 3000}, "conc", 3000),
    ("roomy", {"daily_dose_ug": 3}, "daily_nl", 6000),          # one stroke an hour exactly
    ("roomy", {"daily_dose_ug": 3000}, "daily_nl", 6_000_000),
    ("roomy", {"low_reservoir_ul": 0}, "low_reservoir_nl", 0),
    ("roomy", {"low_reservoir_ul": 40000}, "low_reservoir_nl", 40_000_000),
    ("roomy", {}, "low_reservoir_nl", 2_000_000),
    ("roomy", {"max_step_up_pct": 0}, "max_step_up_pct", 0),
    ("roomy", {"max_step_up_pct": 100}, "max_step_up_pct", 100),
    ("roomy", {}, "max_step_up_pct", 30),
    ("roomy", {"patient_bolus.dose_ug": 1}, "pb_dose_nl", 2000),
    ("roomy", {"patient_bolus.dose_ug": 500}, "pb_dose_nl", 1_000_000),
    ("roomy", {"patient_bolus.duration_min": 1}, "pb_duration_ms", 60_000),
    ("roomy", {"patient_bolus.duration_min": 240, "patient_bolus.lockout_min": 240}, "pb_lockout_ms", 14_400_000),
    ("roomy", {"patient_bolus.duration_min": 10, "patient_bolus.lockout_min": 10}, "pb_lockout_ms", 600_000),
    ("roomy", {"patient_bolus.lockout_min": 1440}, "pb_lockout_ms", 86_400_000),
    ("roomy", {"patient_bolus.max_per_day": 1}, "pb_max_per_day", 1),
    ("roomy", {"patient_bolus.max_per_day": 24}, "pb_max_per_day", 24),
    ("roomy", {"patient_bolus": DEL}, "pb_dose_nl", 0),
    ("roomy", {"safe_rate_ug_day": 100}, "safe_rate_nl_day", 200_000),
    ("roomy", {"safe_rate_ug_day": 0}, "safe_rate_nl_day", 0),
    ("roomy", {"catheter_cm": 1, "catheter_nl_per_cm": 100}, "catheter_nl", 100),
    ("roomy", {"catheter_cm": 200, "catheter_nl_per_cm": 20000}, "catheter_nl", 4_000_000),
    ("roomy", {"catheter_cm": 50, "catheter_nl_per_cm": 2200}, "catheter_nl", 110_000),
    ("roomy", {}, "catheter_nl", -1),
    ("roomy", {"bridge": True}, "bridge", True),
    ("roomy", {"override_step_up": True}, "override", True),
    ("roomy", {"override_step_up": False}, "override", False),
    ("cont", {"max_hourly_ug": 200}, "max_hourly_nl", 400_000),       # hourly == daily is allowed
    ("flex", {"steps.2.start_min": 1439}, "steps", [(0, 200_000), (28_800, 400_000), (86_340, 200_000)]),
    ("flex", {"steps.1.daily_rate_ug": 0}, "steps", [(0, 200_000), (28_800, 0), (72_000, 200_000)]),
    ("flex", {"steps": [{"start_min": 60 * i, "daily_rate_ug": 100} for i in range(10)]}, "daily_nl", 200_000),
    ("flex", {"steps": [{"start_min": 720, "daily_rate_ug": 100}]}, "steps", [(43_200, 200_000)]),
    ("stopped", {}, "steps", [(0, 0)]),
]


@pytest.mark.parametrize("base,edits,attr,expected", GOOD, ids=[_id(r) for r in GOOD])
def test_boundary_setting_is_accepted(base, edits, attr, expected):
    p = validate(edited(base, edits), STROKE)
    assert getattr(p, attr) == expected


@pytest.mark.parametrize("conc", [50, 500, 1000, 2000])
def test_real_strengths_are_accepted(conc):
    """Lioresal Intrathecal 50/500/2000, Gablofen 50/500/1000/2000 ug/mL."""
    p = validate(cont(400, concentration_ug_ml=conc), STROKE)
    assert p.conc == conc
    assert p.steps == [(0, 400 * 1_000_000 // conc)]


@pytest.mark.parametrize("conc", [9, 3001])
def test_strengths_outside_the_model_are_refused(conc):
    e = refused(cont(400, concentration_ug_ml=conc))
    assert e.field == "concentration_ug_ml" and str(conc) in e.reason


def test_program_error_is_a_value_error_with_field_and_reason():
    e = ProgramError("daily_dose_ug", "is required")
    assert isinstance(e, ValueError)
    assert (e.field, e.reason, str(e)) == ("daily_dose_ug", "is required", "daily_dose_ug: is required")


# Keys that are not strings cannot come from TOML or JSON, but validate() is
# documented to answer every bad input with a ProgramError.
NON_STR_KEYS = [
    pytest.param(dict(CONT) | {1: "x"}, id="top-level"),
    pytest.param(edited("flex", {"steps.0": {"start_min": 0, "daily_rate_ug": 100, 5: 1}}), id="step"),
    pytest.param(edited("cont", {"patient_bolus": dict(BOLUS) | {None: 1}}), id="patient_bolus"),
]


@pytest.mark.parametrize("raw", NON_STR_KEYS)
def test_non_string_key_is_a_program_error(raw):
    e = refused(raw)
    assert isinstance(e.field, str) and e.reason


def test_bolus_under_one_stroke_is_refused():
    # With the sim stroke (250 nL) even 1 ug at 3000 ug/mL (333 nL) is a stroke or more,
    # so use a pump with a 1000 nL stroke: 1 ug at 2000 ug/mL is 500 nL.
    raw = edited("cont", {"concentration_ug_ml": 2000, "patient_bolus.dose_ug": 1})
    e = refused(raw, stroke_nl=1000)
    assert e.field == "patient_bolus.dose_ug" and "less than one stroke" in e.reason
    p = validate(edited("cont", {"concentration_ug_ml": 2000, "patient_bolus.dose_ug": 2}), 1000)
    assert p.pb_dose_nl == 1000                           # exactly one stroke is enough


def test_smallest_bolus_at_the_strongest_drug_is_a_stroke_on_the_sim_board():
    p = validate(edited("roomy", {"concentration_ug_ml": 3000, "patient_bolus.dose_ug": 1}), STROKE)
    assert p.pb_dose_nl == 333 >= STROKE


# --- caps too small: the message names the least cap, and it is exact ---------

LEAST = {
    "continuous 100 ug at 500": cont(100),
    "continuous 3000 ug at 10": cont(3000, concentration_ug_ml=10),
    "continuous 18 ug at 3000": cont(18, concentration_ug_ml=3000),   # the least at 3000: a stroke an hour
    "continuous with bolus": dict(cont(100), patient_bolus=BOLUS),
    "flex from midnight": flex(500, (0, 100), (480, 200), (1200, 100)),
    "flex short peak": flex(1000, (0, 0), (600, 3000), (601, 0), (900, 50)),
    "flex wrapping midnight": flex(500, (360, 100), (1320, 1000)),
    "flex wrapping, peak after first": flex(500, (30, 3000), (60, 0), (1380, 1000)),
    "stopped at 3000": {"mode": "stopped", "concentration_ug_ml": 3000},
}


@pytest.mark.parametrize("name", sorted(LEAST))
def test_least_hourly_cap_named_in_message_is_accepted_and_one_less_is_not(name):
    raw = dict(LEAST[name], max_daily_ug=6000)
    e = refused(dict(raw, max_hourly_ug=1))
    field = "patient_bolus.dose_ug" if "patient_bolus" in raw else "max_hourly_ug"
    assert e.field == field, e
    h = named_least(e)
    assert validate(dict(raw, max_hourly_ug=h), STROKE).max_hourly_nl == nl(h, raw["concentration_ug_ml"])
    e1 = refused(dict(raw, max_hourly_ug=h - 1))
    assert e1.field == field and named_least(e1) == h
    _, tight = tightest_program(LEAST[name], STROKE)
    assert tight["max_hourly_ug"] == h


@pytest.mark.parametrize("name", sorted(n for n in LEAST if not n.startswith("stopped")))
def test_least_daily_cap_named_in_message_is_accepted_and_one_less_is_not(name):
    h = least_caps(LEAST[name])[0]
    raw = dict(LEAST[name], max_hourly_ug=h)
    e = refused(dict(raw, max_daily_ug=h))
    assert e.field == "max_daily_ug", e
    d = named_least(e)
    assert validate(dict(raw, max_daily_ug=d), STROKE).max_daily_nl == nl(d, raw["concentration_ug_ml"])
    e1 = refused(dict(raw, max_daily_ug=d - 1))
    assert e1.field == "max_daily_ug" and named_least(e1) == d
    _, tight = tightest_program(LEAST[name], STROKE)
    assert (tight["max_hourly_ug"], tight["max_daily_ug"]) == (h, d)



@pytest.mark.parametrize("name", [
    "continuous 100 ug at 500", "continuous 3000 ug at 10", "continuous 18 ug at 3000",
    "continuous with bolus", "flex from midnight", "flex short peak", "stopped at 3000",
    "flex wrapping midnight",
    "flex wrapping, peak after first",
])
def test_least_caps_are_the_busiest_window_plus_governor_headroom(name):
    assert least_caps(LEAST[name]) == least_caps_reference(LEAST[name])


def test_accepted_hourly_cap_holds_the_busiest_basal_hour():
    # 00:00-00:30 runs 23:00's 1000 ug/day, 00:30-01:00 3000 ug/day: that hour
    # carries (1000 + 3000) / 48 ug = 166667 nL at 500 ug/mL. An hourly cap below
    # it makes the governor refuse programmed basal every night (under-delivery,
    # withdrawal risk) although the program was accepted as deliverable.
    raw = LEAST["flex wrapping, peak after first"]
    assert busiest_nl(raw, 60) == 166_667
    h, _ = least_caps(raw)
    p = validate(dict(raw, max_daily_ug=6000, max_hourly_ug=h), STROKE)
    assert p.max_hourly_nl >= 166_667 + 2 * STROKE


def test_daily_cap_demanded_is_not_inflated_for_a_pattern_across_midnight():
    # 400 ug/day (100 ug/day 06:00-22:00, 1000 ug/day 22:00-06:00): the least
    # daily cap should be about 404 ug, not about a full day at 1000 ug/day. A
    # cap forced 2.5 times above the dose no longer protects against overdose.
    raw = LEAST["flex wrapping midnight"]
    assert validate(raw, STROKE).daily_dose_ug() == 400
    _, d = least_caps(raw)
    assert d <= 404


def least_ug(conc):
    """The smallest non-zero rate (ug/day) validate() takes at conc: one stroke an hour."""
    return ceil_div(STROKE * 24 * conc, 1_000_000)


def at_least_a_stroke_an_hour(ug, conc):
    return ug if ug == 0 or ug >= least_ug(conc) else least_ug(conc)


def cont_programs():
    return st.builds(lambda ug, c: cont(at_least_a_stroke_an_hour(ug, c), concentration_ug_ml=c),
                     st.integers(1, 3000), st.integers(10, 3000))


@st.composite
def flex_programs(draw, from_midnight=False, max_steps=10):
    n = draw(st.integers(1, max_steps))
    lo = 1 if from_midnight else 0
    starts = sorted(draw(st.sets(st.integers(lo, DAY_MIN - 1), min_size=n, max_size=n)))
    if from_midnight:
        starts[0] = 0
    rates = [draw(st.one_of(st.integers(0, 3000), st.sampled_from([0, 1, 3000]))) for _ in starts]
    if not any(rates):
        rates[draw(st.integers(0, n - 1))] = draw(st.integers(1, 3000))
    conc = draw(st.one_of(st.sampled_from([10, 50, 500, 1000, 2000, 3000]), st.integers(10, 3000)))
    rates = [at_least_a_stroke_an_hour(r, conc) for r in rates]
    return flex(conc, *zip(starts, rates))


@given(raw=st.one_of(flex_programs(from_midnight=True), cont_programs()))
def test_least_caps_match_busiest_window_property(raw):
    assert least_caps(raw) == least_caps_reference(raw)


# --- conversion to integer nL -------------------------------------------------

@pytest.mark.parametrize("conc,ug,expected_nl", [
    (500, 100, 200_000), (50, 1, 20_000), (1000, 1, 1_000), (2000, 1, 500), (3000, 1, 333),
    (3000, 2, 666), (2999, 3000, 1_000_333), (10, 3000, 300_000_000), (7 * 143, 1, 999),
])
def test_daily_rate_converts_to_floor_nl(conc, ug, expected_nl):
    # the conversion does not depend on the motor: a 10 nL stroke keeps every
    # rate here above the floor of one stroke an hour
    p = validate(cont(ug, concentration_ug_ml=conc), 10)
    assert p.steps == [(0, expected_nl)] and type(p.steps[0][1]) is int
    assert p.daily_nl == expected_nl


def assert_all_ints(p):
    """No float anywhere in a Program: numbers are int (bool only for flags)."""
    for name, v in vars(p).items():
        if name == "raw":
            continue
        if name == "mode":
            assert v in ("continuous", "flex", "stopped")
        elif name in ("override", "override_used", "bridge"):
            assert type(v) is bool, name
        elif name == "steps":
            assert all(type(s) is int and type(r) is int for s, r in v), v
        elif name == "step_ug":
            assert all(type(u) is int for u in v), v
        else:
            assert type(v) is int, (name, v)
    for v in (p.daily_dose_ug(), p.rate_at(0), p.rate_at(DAY_S - 1)):
        assert type(v) is int


def assert_floor(nl_value, ug, conc):
    """nl_value is ug converted toward the safe side: never above, less than 1 nL below."""
    assert type(nl_value) is int
    assert nl_value * conc <= ug * 1_000_000 < (nl_value + 1) * conc


@given(conc=st.integers(10, 3000), hourly=st.integers(2, 6000), extra=st.integers(0, 6000),
       low=st.integers(0, 40000))
def test_caps_convert_to_floor_nl_property(conc, hourly, extra, low):
    daily = min(6000, hourly + extra)
    p = validate({"mode": "stopped", "concentration_ug_ml": conc, "max_daily_ug": daily,
                  "max_hourly_ug": hourly, "low_reservoir_ul": low}, STROKE)
    assert p.max_daily_nl == nl(daily, conc) and p.max_hourly_nl == nl(hourly, conc)
    assert_floor(p.max_daily_nl, daily, conc)
    assert_floor(p.max_hourly_nl, hourly, conc)
    assert p.low_reservoir_nl == low * 1000
    assert_all_ints(p)


@given(raw=st.one_of(flex_programs(), cont_programs()),
       dose=st.integers(1, 500), duration=st.integers(1, 240), lockout=st.integers(0, 1440),
       per_day=st.integers(1, 24), safe_frac=st.integers(0, 100),
       cath=st.tuples(st.integers(1, 200), st.integers(100, 20000)))
def test_every_program_value_is_an_exact_int_property(raw, dose, duration, lockout, per_day, safe_frac, cath):
    conc = raw["concentration_ug_ml"]
    steps = raw_steps(raw)
    daily_ug_min = sum(minute_values(raw, lambda ug: ug))
    safe = daily_ug_min // DAY_MIN * safe_frac // 100
    if safe < least_ug(conc):
        safe = 0                 # a safe rate, too, is at least a stroke an hour
    raw = dict(raw, safe_rate_ug_day=safe, catheter_cm=cath[0], catheter_nl_per_cm=cath[1],
               patient_bolus={"dose_ug": dose, "duration_min": duration,
                              "lockout_min": max(10, duration, lockout), "max_per_day": per_day})
    p = validate(raw, STROKE)
    assert p.steps == [(s * 60, nl(u, conc)) for s, u in steps]
    assert p.step_ug == [u for _, u in steps]
    for (_, r), (_, u) in zip(p.steps, steps):
        assert_floor(r, u, conc)
    assert p.pb_dose_nl == nl(dose, conc) and p.pb_dose_ug == dose
    assert_floor(p.pb_dose_nl, dose, conc)
    assert p.pb_duration_ms == duration * 60_000
    assert p.pb_lockout_ms == max(10, duration, lockout) * 60_000
    assert p.pb_max_per_day == per_day
    assert p.safe_rate_nl_day == nl(safe, conc)
    assert p.catheter_nl == cath[0] * cath[1]
    assert p.daily_ug_min == daily_ug_min
    assert p.daily_nl == daily_ug_min * 1_000_000 // (conc * DAY_MIN)
    assert_all_ints(p)
    assert not small_ints(p, [n for n in vars(p) if n not in ("raw", "mode", "steps", "step_ug")])


def test_extreme_program_keeps_every_value_a_small_int():
    # the weakest drug at the top dose and caps: the biggest nL numbers a program holds
    p = validate(edited("roomy", {"concentration_ug_ml": 10, "daily_dose_ug": 3000,
                                  "patient_bolus.dose_ug": 500, "low_reservoir_ul": 40000,
                                  "catheter_cm": 200, "catheter_nl_per_cm": 20000}), STROKE)
    assert p.max_daily_nl == 600_000_000 and p.pb_dose_nl == 50_000_000
    assert not small_ints(p, [n for n in vars(p) if n not in ("raw", "mode", "steps", "step_ug")])
    assert all(r < 1 << 30 for _, r in p.steps)
    assert_all_ints(p)


# --- flex patterns: daily totals, rate_at, next_boundary_s --------------------

@pytest.mark.parametrize("steps,ug_min,daily_ug", [
    ([(0, 100)], 144_000, 100),
    ([(720, 100)], 144_000, 100),                               # one step anywhere: all day
    ([(0, 100), (480, 200), (1200, 100)], 216_000, 150),
    # 06:00-22:00 at 100 ug/day, 22:00-06:00 (wrapping midnight) at 1000 ug/day
    ([(360, 100), (1320, 1000)], 100 * 960 + 1000 * 480, 400),
    ([(60, 0), (1380, 2400)], 2400 * 120, 200),                 # 23:00-01:00 only
    ([(1, 3), (2, 0)], 3, 0),                                   # one minute at 3 ug/day: floor
    ([(0, 1000), (1, 0), (2, 1000)], 1000 * 1439, 999),
])
def test_flex_daily_total_wraps_midnight(steps, ug_min, daily_ug):
    p = validate(flex(500, *steps), STROKE)
    assert p.daily_ug_min == ug_min
    assert p.daily_dose_ug() == daily_ug
    assert p.daily_nl == ug_min * 1_000_000 // (500 * DAY_MIN)


P3 = flex(500, (60, 100), (480, 300), (1320, 50))   # 200000, 600000, 100000 nL/day


@pytest.mark.parametrize("tod,rate,boundary", [
    (0, 100_000, 3_600),              # before the first start: the last step, from 22:00
    (3_599, 100_000, 1),
    (3_600, 200_000, 25_200),         # at a start, the new step is in force
    (3_601, 200_000, 25_199),
    (28_799, 200_000, 1),
    (28_800, 600_000, 50_400),
    (79_199, 600_000, 1),
    (79_200, 100_000, 10_800),        # last step: next boundary is 01:00 tomorrow
    (86_399, 100_000, 3_601),
])
def test_rate_at_and_next_boundary_around_boundaries(tod, rate, boundary):
    p = validate(P3, STROKE)
    assert p.rate_at(tod) == rate
    assert p.next_boundary_s(tod) == boundary


@pytest.mark.parametrize("raw", [cont(100), flex(500, (300, 100)), STOPPED], ids=["continuous", "one step", "stopped"])
def test_single_step_programs_have_no_boundary(raw):
    p = validate(raw, STROKE)
    rate = nl(raw_steps(raw)[0][1], 500)
    for tod in (0, 1, 17_999, 18_000, 86_399):
        assert p.rate_at(tod) == rate
        assert p.next_boundary_s(tod) is None


@given(raw=flex_programs(), data=st.data())
def test_rate_at_and_next_boundary_match_brute_force_property(raw, data):
    p = validate(raw, STROKE)
    conc = raw["concentration_ug_ml"]
    steps = [(s * 60, nl(u, conc)) for s, u in raw_steps(raw)]
    near = st.builds(lambda i, d: (steps[i][0] + d) % DAY_S,
                     st.integers(0, len(steps) - 1), st.integers(-2, 2))
    for tod in data.draw(st.lists(st.one_of(st.integers(0, DAY_S - 1), near), min_size=1, max_size=8)):
        assert p.rate_at(tod) == steps[in_force(steps, tod, DAY_S)][1]
        if len(steps) == 1:
            assert p.next_boundary_s(tod) is None
        else:
            assert p.next_boundary_s(tod) == min((s - tod) % DAY_S or DAY_S for s, _ in steps)


@given(raw=flex_programs())
def test_flex_daily_total_matches_minute_by_minute_sum_property(raw):
    p = validate(raw, STROKE)
    ug_min = sum(minute_values(raw, lambda ug: ug))
    assert p.daily_ug_min == ug_min
    assert p.daily_dose_ug() == ug_min // DAY_MIN
    assert p.daily_nl == ug_min * 1_000_000 // (raw["concentration_ug_ml"] * DAY_MIN)


# --- step-up limit ------------------------------------------------------------

def prev_program(raw):
    return validate(raw, STROKE)


STEP_UP = [  # (previous program, lowest dose in force in 24 h in ug/day or None, new program, accepted)
    (cont(100), None, cont(130), True),                                   # exactly +30 %
    (cont(100), None, cont(131), False),
    (cont(100), None, cont(131, override_step_up=True), True),
    (cont(100), None, cont(3000, override_step_up=True), True),
    (cont(100), None, cont(131, override_step_up=False), False),
    (cont(100, max_step_up_pct=10), None, cont(110), True),
    (cont(100, max_step_up_pct=10), None, cont(111), False),
    (cont(100, max_step_up_pct=10), None, cont(111, max_step_up_pct=100), False),  # rule in force governs
    (cont(100, max_step_up_pct=0), None, cont(100), True),
    (cont(100, max_step_up_pct=0), None, cont(101), False),
    (cont(100), 80, cont(104), True),                                     # base: lowest in 24 h
    (cont(100), 80, cont(105), False),
    (cont(100), 200, cont(130), True),                                    # a higher recent dose is not the base
    (cont(100), 200, cont(131), False),
    (cont(100), 100, cont(131), False),
    (STOPPED, None, cont(3000), True),                                    # nothing in force: no limit
    (cont(1000), None, cont(10), True),                                   # lowering
    (cont(1000, max_step_up_pct=0), None, cont(999), True),
    (cont(1000), 1000, STOPPED, True),
    (cont(2000, concentration_ug_ml=2000), None, cont(2000, concentration_ug_ml=500), True),  # same ug
    (cont(100, concentration_ug_ml=2000), None, cont(131, concentration_ug_ml=500), False),
    # flex 150 ug/day (216000 ug*min): 195 ug/day is exactly +30 %
    (flex(500, (0, 100), (480, 200), (1200, 100)), None, cont(195), True),
    (flex(500, (0, 100), (480, 200), (1200, 100)), None, cont(196), False),
    # same daily average, the step moves: 2 min at 1440 ug/day vs 1 min at 2880
    (flex(500, (0, 0), (600, 1440), (602, 0)), None, flex(500, (0, 0), (600, 2880), (601, 0)), True),
    (flex(500, (0, 0), (600, 1440), (602, 0)), None, flex(500, (0, 0), (600, 2880), (602, 0)), False),
    (cont(100), None, flex(500, (0, 130), (600, 131), (601, 130)), False),  # 1 ug*min over +30 %
]


@pytest.mark.parametrize("prev,recent,new,ok", STEP_UP)
def test_step_up_limit(prev, recent, new, ok):
    previous = prev_program(prev)
    base = None if recent is None else recent * DAY_MIN
    if ok:
        p = validate(new, STROKE, previous, base)
        assert p.override == new.get("override_step_up", False)
    else:
        e = refused(new, previous=previous, min_recent_ug_min=base)
        assert e.field == "daily_dose_ug", e
        assert "override" in e.reason


def test_step_up_message_names_base_new_dose_and_limit():
    e = refused(cont(131), previous=prev_program(cont(100)))
    assert "from 100 to 131 ug" in e.reason and "30 %" in e.reason
    e = refused(cont(105), previous=prev_program(cont(100)), min_recent_ug_min=80 * DAY_MIN)
    assert "from 80 to 105 ug" in e.reason
    e = refused(cont(111), previous=prev_program(cont(100, max_step_up_pct=10)))
    assert "10 %" in e.reason


def test_step_up_without_any_dose_in_24_h_is_unlimited():
    # a new pump, or one stopped for more than a day: the first dose is the clinician's
    assert validate(cont(3000), STROKE).daily_dose_ug() == 3000
    assert validate(cont(3000), STROKE, prev_program(STOPPED)).daily_dose_ug() == 3000


def test_a_restart_after_a_stop_is_measured_from_the_dose_before_the_stop():
    # 100 ug/day this morning, then stopped: restarting at 500 is a raise from 100
    e = refused(cont(500), previous=prev_program(STOPPED), min_recent_ug_min=100 * DAY_MIN)
    assert e.field == "daily_dose_ug" and "from 100 to 500" in e.reason
    assert validate(cont(130), STROKE, prev_program(STOPPED), 100 * DAY_MIN).daily_dose_ug() == 130
    # with no program in force at all (safe mode), the recent dose is still the base
    assert refused(cont(3000), min_recent_ug_min=100 * DAY_MIN).field == "daily_dose_ug"


def test_the_strictest_step_up_limit_of_the_last_24_h_governs():
    # a program that loosens the limit to 100 % cannot be followed by a doubling
    previous = prev_program(cont(100, max_step_up_pct=100))
    e = refused(cont(200), previous=previous, min_recent_ug_min=100 * DAY_MIN, min_recent_pct=30)
    assert "30 %" in e.reason
    assert validate(cont(130), STROKE, previous, 100 * DAY_MIN, None, 30).daily_dose_ug() == 130


def test_override_used_only_when_the_override_let_a_raise_through():
    previous = prev_program(cont(100))
    assert validate(cont(200, override_step_up=True), STROKE, previous).override_used
    assert not validate(cont(120, override_step_up=True), STROKE, previous).override_used


def test_lowering_the_dose_in_force_never_needs_an_override():
    # 100 ug/day this morning, raised to 1000 with an override; the clinician now lowers to 500.
    previous = prev_program(cont(1000, override_step_up=True))
    p = validate(cont(500), STROKE, previous, 100 * DAY_MIN)
    assert p.daily_dose_ug() == 500


# --- patient bolus speed (fastest_nl_day) -------------------------------------

def test_fastest_bolus_is_half_the_motor_top_speed():
    assert fastest_bolus_nl_day(STROKE, STROKE_MS) == FASTEST_SIM < 1 << 30


@pytest.mark.parametrize("conc,dose,least_min", [
    (500, 50, 3),       # 100000 nL at 37500 nL/min: 2.67 min
    (50, 100, 54),      # 2 mL: 53.3 min
    (2000, 500, 7),     # 250000 nL: 6.67 min
    (1000, 75, 2),      # 75000 nL: exactly 2 min at the fastest rate
    (1000, 76, 3),
    (3000, 1, 1),       # 333 nL: any duration
])
def test_least_bolus_duration_named_in_message_is_accepted(conc, dose, least_min):
    def raw(duration):
        return edited("roomy", {"concentration_ug_ml": conc, "patient_bolus.dose_ug": dose,
                                "patient_bolus.duration_min": duration, "patient_bolus.lockout_min": 240})
    # independent: on average at most one stroke per 2 * stroke_ms (37500 nL/min)
    assert least_min == ceil_div(nl(dose, conc) * 2 * STROKE_MS, STROKE * 60_000)
    if least_min == 1:
        assert validate(raw(1), STROKE, fastest_nl_day=FASTEST_SIM).pb_duration_ms == 60_000
        return
    e = refused(raw(min(least_min - 1, 240)), fastest_nl_day=FASTEST_SIM)
    assert e.field == "patient_bolus.duration_min", e
    assert named_least(e, "min") == least_min
    assert validate(raw(least_min), STROKE, fastest_nl_day=FASTEST_SIM).pb_duration_ms == least_min * 60_000


def test_a_bolus_too_large_to_give_within_four_hours_names_the_largest_dose():
    # 500 ug at 50 ug/mL is 10 mL: 267 min at the fastest bolus, over the 240 min limit
    raw = edited("roomy", {"concentration_ug_ml": 50, "patient_bolus.dose_ug": 500,
                           "patient_bolus.duration_min": 240, "patient_bolus.lockout_min": 240})
    e = refused(raw, fastest_nl_day=FASTEST_SIM)
    assert e.field == "patient_bolus.dose_ug", e
    largest = int(re.search(r"at most (\d+) ug", e.reason).group(1))
    assert largest == 450        # 240 min * 37.5 uL/min = 9 mL = 450 ug at 50 ug/mL
    ok = edited("roomy", {"concentration_ug_ml": 50, "patient_bolus.dose_ug": largest,
                          "patient_bolus.duration_min": 240, "patient_bolus.lockout_min": 240})
    assert validate(ok, STROKE, fastest_nl_day=FASTEST_SIM).pb_dose_ug == largest


# --- read-back ----------------------------------------------------------------

def test_readback_of_a_continuous_program():
    p = validate(edited("cont", {"safe_rate_ug_day": 50, "low_reservoir_ul": 3000}), STROKE)
    assert p.readback() == {
        "mode": "continuous", "concentration_ug_ml": 500,
        "daily_dose_ug": 100, "daily_nl": 200_000,
        "steps": [{"start_min": 0, "daily_rate_ug": 100, "nl_per_day": 200_000}],
        "max_daily_nl": 400_000, "max_hourly_nl": 80_000,
        "patient_bolus_nl": 50_000, "patient_bolus_duration_min": 10,
        "patient_bolus_lockout_min": 60, "patient_bolus_max_per_day": 4, "safe_rate_nl_day": 100_000,
        "low_reservoir_nl": 3_000_000, "override_step_up": False,
    }


def test_readback_of_a_flex_program_across_midnight_at_an_odd_strength():
    raw = flex(3000, (360, 100), (1320, 1001), max_daily_ug=2000, max_hourly_ug=101,
               override_step_up=True)
    rb = validate(raw, STROKE).readback()
    assert rb == {
        "mode": "flex", "concentration_ug_ml": 3000,
        "daily_dose_ug": (100 * 960 + 1001 * 480) // 1440,       # 400.33 -> 400
        "daily_nl": (100 * 960 + 1001 * 480) * 1_000_000 // (3000 * 1440),
        "steps": [{"start_min": 360, "daily_rate_ug": 100, "nl_per_day": 33_333},
                  {"start_min": 1320, "daily_rate_ug": 1001, "nl_per_day": 333_666}],
        "max_daily_nl": 666_666, "max_hourly_nl": 33_666,
        "patient_bolus_nl": 0, "patient_bolus_duration_min": 0,
        "patient_bolus_lockout_min": 0, "patient_bolus_max_per_day": 0, "safe_rate_nl_day": 0,
        "low_reservoir_nl": 2_000_000, "override_step_up": True,
    }
    assert rb["daily_nl"] == 133_444


def test_readback_of_a_stopped_program():
    rb = validate(STOPPED, STROKE).readback()
    assert (rb["mode"], rb["daily_dose_ug"], rb["daily_nl"], rb["steps"]) == (
        "stopped", 0, 0, [{"start_min": 0, "daily_rate_ug": 0, "nl_per_day": 0}])
    assert (rb["max_daily_nl"], rb["max_hourly_nl"]) == (20_000, 10_000)


def test_readback_echoes_the_patient_bolus_limits():
    rb = validate(CONT, STROKE).readback()
    flat = {k: v for k, v in rb.items() if not isinstance(v, (list, dict))}
    assert any("lockout" in k and v in (60, 3_600_000) for k, v in flat.items()), rb
    assert any("max_per_day" in k and v == 4 for k, v in flat.items()), rb
    assert any("duration" in k and v in (10, 600_000) for k, v in flat.items()), rb


def test_a_fresh_program_is_stopped_and_empty():
    p = Program()
    assert p.mode == "stopped" and p.rate_at(0) == 0 and p.next_boundary_s(0) is None
    assert p.daily_dose_ug() == 0 and p.pb_dose_nl == 0 and p.catheter_nl == -1
    assert_all_ints(p)


@pytest.mark.parametrize("raw,field", [
    (dict(flex(500, (0, 100), (600, 200)), daily_dose_ug=50), "daily_dose_ug"),
    (dict(cont(100), steps=[{"start_min": 0, "daily_rate_ug": 100}]), "steps"),
    (dict(STOPPED, daily_dose_ug=100), "daily_dose_ug"),
], ids=["dose in flex", "steps in continuous", "dose in stopped"])
def test_a_setting_the_mode_does_not_use_is_refused_not_ignored(raw, field):
    # a flex program carrying daily_dose_ug = 50 would otherwise deliver its steps,
    # not the 50 ug the clinician may believe they programmed
    e = refused(raw)
    assert e.field == field and "is not used by" in e.reason
