# The run's alarms for report.json and the lab page, from the firmware's
# event-log records. The records' names and details (the rows of events.csv)
# are logwords/events.py, which pumpctl uses as well.
from pump import alarms as A
from pump import eventlog as E


def alarm_summary(raw_events):
    """Each alarm the pump logged: first raised, how often, when cleared or
    acknowledged. raw_events: [(t_ms, kind, code, a, b)] as the firmware logged
    them. -> [dict] oldest first (report.json's `alarms`; the lab page shows the same)."""
    alarms = {}
    for t, kind, code, a, b in raw_events:
        if kind == E.ALARM:
            nm = A.name(code)
            al = alarms.get(nm)
            if al is None:
                al = alarms[nm] = {"alarm": nm, "critical": bool(A.CRITICAL[code]),
                                   "first_raised_ms": t, "raised": 0, "cleared_ms": []}
            al["raised"] += 1
        elif kind == E.ALARM_CLEAR and A.name(code) in alarms:
            # (an acknowledgement logs its own ack row and then the clear)
            alarms[A.name(code)]["cleared_ms"].append(t)
    return sorted(alarms.values(), key=lambda a: a["first_raised_ms"])
