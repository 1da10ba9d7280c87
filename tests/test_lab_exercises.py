"""The lab's guided exercises (docs/lab/) tell a student what the page will
show: alarm times, event-log rows, totals, the pump's refusals. Each quote an
answer gives is checked here against the lab engine (CPython, the same engine
the page runs) on the exercise's preset, doing what the exercise's steps say,
so an answer cannot drift from the model it explains. A failure names the
exercise and the quote the run no longer gives.
"""
import json
import os
import re

import pytest

from emulator import scenario as S
from emulator.engine import load_profile
from emulator.lab import Lab
from emulator.preset import fmt_time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_DOCS = os.path.join(ROOT, "docs", "lab")
DAY = 86400000
HOUR = 3600000
MIN = 60000
RUNS = {}


def doc(prefix):
    """The exercise's text, white space folded (quotes wrap across lines)."""
    name = [f for f in os.listdir(LAB_DOCS) if f.startswith(prefix)][0]
    with open(os.path.join(LAB_DOCS, name), encoding="utf-8") as f:
        return re.sub(r"\s+", " ", f.read())


def lab(name):
    return Lab(S.to_plain(S.load(S.find(name))), load_profile("sim"))


def finished(name):
    """The preset run to the end (each preset once per session)."""
    if name not in RUNS:
        lb = lab(name)
        lb.run_to(10 ** 13)
        RUNS[name] = (lb, json.loads(lb.result()))
    return RUNS[name]


def rows(lb, *head):
    """Event-log rows whose (source, kind, what) start with head, as the page prints them."""
    return [(r[0], " ".join(str(x) for x in r[1:])) for r in lb.w.events if r[1:1 + len(head)] == head]


def first(lb, *head):
    found = rows(lb, *head)
    assert found, "no %s row in the run" % " ".join(head)
    return found[0]


def hm(ms):
    return fmt_time(ms)[:-3]          # '2d 15:30'


def flag_at(res, flag):
    at = [t for f, t in res["flags"] if f == flag]
    assert at, "the run raised no %s flag (flags: %s)" % (flag, res["flags"])
    return at[0]


def alarm(res, name):
    found = [a for a in res["alarms"] if a["alarm"] == name]
    assert found, "the run raised no %s alarm (alarms: %s)" % (name, [a["alarm"] for a in res["alarms"]])
    return found[0]


def says(text, *quotes):
    for q in quotes:
        assert q in text, "the exercise does not say %r, which is what the lab shows" % q


def strokes_before(lb, t_ms):
    return sum(1 for s in lb.w.motor.trace if s[0] < t_ms)


def program(lb, daily_ug, max_daily_ug, max_hourly_ug=90, override=False):
    prog = {"mode": "continuous", "concentration_ug_ml": 500, "daily_dose_ug": daily_ug,
            "max_daily_ug": max_daily_ug, "max_hourly_ug": max_hourly_ug}
    if override:
        prog["override_step_up"] = True
    return json.loads(lb.act("program", json.dumps({"program": prog})))


# ------------------------------------------------------------------ exercise 1
def test_exercise_1_occlusion_quotes_the_run():
    text = doc("01-")
    lb, res = finished("catheter-kink")
    occ = alarm(res, "occlusion")
    t_alarm, row = first(lb, "pump", "alarm", "occlusion")
    t_clear = [t for t, r in rows(lb, "pump", "stop", "occluded") if "ended" in r][0]
    t_ack, _ = first(lb, "pump", "ack", "occlusion")
    t_block, _ = first(lb, "world", "fault", "block")
    says(text, "At `%s`, %d s after the block: `%s`" % (fmt_time(t_alarm), (t_alarm - t_block) // 1000, row),
         "The stop ends at `%s` (`pump stop occluded ended`" % fmt_time(t_clear),
         "(`pump ack occlusion` at `%s`)" % fmt_time(t_ack),
         "delivered %.3f mL, programmed %.3f mL" % (res["delivered_nl"] / 1e6, res["scheduled_nl"] / 1e6),
         "*possible withdrawal* after 4 h",
         "At `%s`." % hm(flag_at(res, "possible_withdrawal")))
    assert occ["first_raised_ms"] == t_alarm and occ["cleared_ms"] == [t_ack]
    # "Nothing" was delivered while the alarm was active, and the checks named hold
    assert not [s for s in lb.w.motor.trace if t_alarm <= s[0] < t_clear]
    assert strokes_before(lb, t_alarm) > strokes_before(lb, t_block)     # the strokes held behind the block
    held = strokes_before(lb, t_alarm) - strokes_before(lb, t_block)
    says(text, "the %s strokes given between the block and the alarm" % ["no", "one", "two", "three", "four",
                                                                         "five", "six"][held])
    checks = {c["id"]: c["ok"] for c in res["checks"]}
    assert checks["I1"] and checks["I3"], res["checks"]


# ------------------------------------------------------------------ exercise 2
def test_exercise_2_overdose_after_refill_quotes_the_run():
    text = doc("02-")
    lb, res = finished("wrong-concentration-refill")
    assert res["alarms"] == []           # "None. The pump cannot see the drug's strength"
    says(text, "at `%s`, about six hours after the refill" % hm(flag_at(res, "possible_overdose")))
    t_refill, _ = first(lb, "world", "fault", "wrong_concentration")
    assert 5 * HOUR < flag_at(res, "possible_overdose") - t_refill < 7 * HOUR

    lb, res = finished("pocket-fill")
    t_pocket, _ = first(lb, "world", "fault", "pocket_fill")
    says(text, "at once (`%s`" % hm(flag_at(res, "possible_overdose")),
         "*possible withdrawal* at `%s`" % hm(flag_at(res, "possible_withdrawal")))
    assert flag_at(res, "possible_overdose") == t_pocket
    t_disc, row = first(lb, "pump", "alarm", "refill_discrepancy")
    says(text, "at `%s` the residual" % hm(t_disc),
         "(`%s`, in nL)" % row.split(" refill_discrepancy ")[1])
    # the pocket fill left the reservoir really empty: every stroke after it moved nothing
    assert all(s[1] == 0 for s in lb.w.motor.trace if t_pocket < s[0] < t_disc)


# ------------------------------------------------------------------ exercise 3
def test_exercise_3_end_of_battery_quotes_the_run():
    text = doc("03-")
    lb, res = finished("battery-eri-eos")
    t_eri, eri = first(lb, "pump", "alarm", "battery_eri")
    t_eos, eos = first(lb, "pump", "alarm", "battery_eos")
    says(text, "At `%s` (`%s`)" % (fmt_time(t_eri), eri),
         "At `%s` (`%s`)" % (fmt_time(t_eos), eos.split("battery_eos ")[1]),
         "delivered %.2f mL against %.2f mL programmed" % (res["delivered_nl"] / 1e6, res["scheduled_nl"] / 1e6),
         "*possible withdrawal* at `%s`" % hm(flag_at(res, "possible_withdrawal")))
    assert res["final_state"] == "end_of_service"
    assert not [s for s in lb.w.motor.trace if s[0] > t_eos]        # no stroke after EOS

    # step 5, after EOS: the two bolus requests and silence get what the answer quotes
    lb = lab("battery-eri-eos")
    lb.run_to(t_eos + HOUR)
    clin = json.loads(lb.act("bolus", json.dumps({"dose_ug": 50, "duration_min": 60})))
    pat = json.loads(lb.act("patient_bolus"))
    sil = json.loads(lb.act("silence"))
    says(text, "refused with `%s`: a stopped pump" % clin["text"],
         "refused with `%s` even before that" % pat["text"], "Silence answers `%s`" % sil["text"])
    assert not clin["ok"] and not pat["ok"] and sil["ok"]
    assert "battery_eos" in [a["alarm"] for a in json.loads(lb.view())["active"]]   # silenced, still active


# ------------------------------------------------------------------ exercise 4
def test_exercise_4_step_up_limit_quotes_the_pump():
    text = doc("04-")
    lb = lab("implant-titration")
    lb.run_to(29 * DAY + 10 * HOUR + 5 * MIN + 1000)
    refusals = [r for t, r in rows(lb, "clinic", "command", "program") if t == 29 * DAY + 10 * HOUR]
    assert len(refusals) == 1
    says(text, "`%s`" % refusals[0].split("clinic command program ")[1])

    # step 2: 406 after the accepted 325 is still measured from 260
    r406 = program(lb, 406, 530)
    assert not r406["ok"]
    says(text, "(`%s`)" % re.search(r"raises the daily dose from \d+ to \d+ ug", r406["text"]).group(0))
    # step 3: 260 x 1.30 = 338 is the largest accepted
    for dose, ok in ((330, True), (338, True), (339, False)):
        got = program(lb, dose, 530)
        assert got["ok"] == ok and (got["readback"] is not None) == ok, (dose, got["text"])
    says(text, "338 µg/day: 260 × 1.30 = 338. 330 and 338 are accepted", "339 is refused")
    # step 4: a day after the 325 program, 406 passes
    lb.step(DAY + HOUR)
    assert program(lb, 406, 530)["ok"]

    # step 5 straight after step 1: the override is accepted and logged
    lb = lab("implant-titration")
    lb.run_to(29 * DAY + 10 * HOUR + 5 * MIN + 1000)
    n = len(lb.w.events)
    assert program(lb, 600, 780, override=True)["ok"]
    over = [" ".join(str(x) for x in r[1:]) for r in lb.w.events[n:] if r[1:4] == ("pump", "override", "step_up")]
    assert len(over) == 1
    says(text, "`pump override step_up` row", "(`%s` if you went straight" % over[0].split("step_up ")[1])
    # step 6: an hourly cap below the program's own busiest hour
    r10 = program(lb, 600, 780, max_hourly_ug=10)
    assert not r10["ok"]
    says(text, "`%s`" % r10["text"])


# ------------------------------------------------------------------ exercise 5
def test_exercise_5_reset_during_write_quotes_the_run():
    text = doc("05-")
    lb, res = finished("reset-during-write")
    cuts = [t for t, _ in rows(lb, "world", "fault", "power_cut")]
    assert len(cuts) >= 2
    resets = dict(rows(lb, "pump", "reset"))
    storage = dict(rows(lb, "pump", "storage"))
    # the first cut tore the window record; the count matches the strokes given
    says(text, "`world fault power_cut` (`%s`)" % fmt_time(cuts[0]), "`%s`" % storage[cuts[0]])
    given = strokes_before(lb, cuts[0] + 1)
    says(text, "`lifetime strokes %d`, and %d strokes were given" % (given, given))
    assert resets[cuts[0]].startswith("pump reset power_on lifetime strokes %d," % given)
    # the second tore a ledger copy short: a cut write, its stroke never commanded,
    # so the count is exact (a full-length damaged copy would count one more)
    given = strokes_before(lb, cuts[1] + 1)
    says(text, "at `%s` and compare again" % fmt_time(cuts[1]),
         "`lifetime strokes %d`; the motor had completed %d strokes" % (given, given))
    assert resets[cuts[1]].startswith("pump reset power_on lifetime strokes %d," % given)
    assert storage[cuts[1]].startswith("pump storage ledger")
    t_ack, _ = first(lb, "pump", "ack", "watchdog_reset")
    says(text, "as at `%s`" % hm(t_ack))
    programmed = res["scheduled_nl"] // lb.w.profile["stroke_nl"]
    says(text, "Delivered {:,} strokes against {:,} programmed".format(res["delivered_strokes"], programmed)
         .replace(",", " "))
    checks = {c["id"]: c["status"] for c in res["checks"]}
    says(text, "Checks I1 and I6 hold", "I3 says *not checked*")
    assert checks["I1"] == checks["I6"] == "ok" and checks["I3"] == "not checked", res["checks"]
    lost = res["accounting"]["lost_to_reset_nl"]
    assert res["accounting"]["unexplained_nl"] <= res["accounting"]["tolerance_nl"]
    # (the accounting counts strokes at their nominal volume, as the pump commands them)
    assert res["scheduled_nl"] - res["accounting"]["delivered_nl"] - lost <= lb.w.profile["stroke_nl"]


@pytest.mark.parametrize("prefix", ["01-", "02-", "03-", "04-", "05-"])
def test_each_exercise_names_a_preset_the_lab_has(prefix):
    text = doc(prefix)
    names = re.findall(r"\?scenario=([a-z0-9-]+)", text)
    assert names
    for n in names:
        assert os.path.exists(S.find(n)), n
