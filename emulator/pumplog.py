# The run as the pump's own event log tells it, for the judge: when it was
# stopped and why (and whether that stop's alarm was up), when its governor
# refused strokes, when it restarted and what each restart skipped.
from pump import alarms as A
from pump import eventlog as E
from pump.controller import STOP_NAMES

STOP_BITS = dict(STOP_NAMES)
# the alarm a stop must have up (no silent stop); a suspension is the
# clinician's own act and has none
STOP_ALARM = {"occluded": (A.OCCLUSION,), "motor_stalled": (A.MOTOR_STALL,),
              "out_of_drug": (A.RESERVOIR_EMPTY,), "end_of_service": (A.BATTERY_EOS,),
              "fault": (A.INTERNAL_FAULT,), "storage_fault": (A.STORAGE_CORRUPT,),
              "needs_program": (A.PROGRAM_REQUIRED, A.STORAGE_CORRUPT)}
ALARM_SLACK_MS = 1000     # the pump logs a stop's alarm right after the stop


def stop_intervals(raw_events, end):
    """[(t0, t1, why)] in which the pump must not stroke, from its own log: its
    stop records (a stop begun or ended, and after each restart the stops in
    force then, which a reset may have changed: a save it cut off)."""
    out = []
    open_ = {}
    for t, kind, code, a, b in raw_events:
        if kind != E.STOP:
            continue
        if code == 0:
            for bit, name in STOP_NAMES:
                if a & bit:
                    open_.setdefault(name, t)
                elif name in open_:
                    out.append((open_.pop(name), t, name))
            continue
        name = STOP_BITS.get(code, str(code))
        if a:
            open_.setdefault(name, t)
        elif name in open_:
            out.append((open_.pop(name), t, name))
    for why, t0 in open_.items():
        out.append((t0, end + 1, why))
    return sorted(out)


def refusal_runs(raw_events, end):
    """[(t0, t1)]: the governor refusing strokes, from the first refusal of a
    stroke to the record that ends the run (its code 0) or a restart."""
    out = []
    t0 = None
    for t, kind, code, a, b in raw_events:
        if kind == E.RESET and t0 is not None:
            # a restarted pump has refused nothing yet: its next refusal
            # begins a run of its own (with its alarm)
            out.append((t0, t))
            t0 = None
            continue
        if kind != E.REFUSAL or a != E.REQ_STROKE:
            continue
        if code == 0:
            if t0 is not None:
                out.append((t0, t))
                t0 = None
        elif t0 is None:
            t0 = t
    if t0 is not None:
        out.append((t0, end + 1))
    return out


def restarts(raw_events):
    """[(t, basal nL the restart skipped)] of every start but the first."""
    out = [(t, b) for t, kind, code, a, b in raw_events if kind == E.RESET]
    return out[1:]


def alarm_up(raw_events, code, t):
    """Was this alarm up at t, as the log tells it: raised and not cleared
    since, and at each restart in the list of alarms in force then (a latched
    alarm a restart lost is down)? A raise up to the slack after t counts: the
    pump logs a stop's alarm right after the stop."""
    up = False
    bit = 1 << code
    for tr, kind, c, a, b in raw_events:
        if tr > t + ALARM_SLACK_MS:
            break
        if kind == E.STOP and c == 0:
            if tr <= t:
                up = bool(b & bit)
            elif b & bit:
                up = True
        elif c != code:
            continue
        elif kind == E.ALARM:
            up = True
        elif kind == E.ALARM_CLEAR and tr <= t:
            up = False
    return up


def silent_stops(raw_events, stops, programs):
    """The stops without their alarm up: when one began, at each restart
    during it and after each clear of its alarm while it lasted.
    -> [(t, why)], t the first such time. A stop before any program, or out of
    drug with no program, owes nothing."""
    first_prog = programs[0][0] if programs else None
    out = []
    for t0, t1, why in stops:
        need = STOP_ALARM.get(why)
        if not need or first_prog is None or t0 < first_prog or t1 <= t0:
            continue
        points = [t0] + [t for t, kind, c, a, b in raw_events if t0 < t < t1 and (
            (kind == E.STOP and c == 0) or (kind == E.ALARM_CLEAR and c in need))]
        for p in points:
            if not any(alarm_up(raw_events, c, p) for c in need):
                out.append((p, why))
                break
    return out


def refusals_alarmed(raw_events, runs):
    """The refusal runs with the dose_limit alarm up, and those without."""
    ok, bad = [], []
    for t0, t1 in runs:
        if t1 <= t0:     # ended in the same ms (a restart): nothing was held back
            continue
        (ok if alarm_up(raw_events, A.DOSE_LIMIT, t0) else bad).append((t0, t1))
    return ok, bad
