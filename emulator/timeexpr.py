# Time values in scenario files.
#
# A time counts from the start of the run: "3d 06:30", "12:00", "180d",
# "1d 00:00:30". A span may also be written short: "10m", "90s", "1h30m",
# "2d". An event's time may name another event: at = "kink + 10m" is ten
# minutes after the event named "kink"; an armed event waits for something
# the pump does: after = "bolus_start + 10m" (see TRIGGERS).
import re

_TIME = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d{1,2}):(\d{2})(?::(\d{2}))?)?\s*$")
_SPAN = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*(?:(\d+)\s*s)?\s*$")
_EXPR = re.compile(r"^\s*([A-Za-z_][\w:-]*)\s*(?:([+-])\s*(.+?))?\s*$")

# What an armed event (`after = "TRIGGER + SPAN"`) may wait for: something the
# pump logged, or a clinic command it was given.
TRIGGERS = ("bolus_start", "patient_bolus_start", "clinician_bolus_start", "prime_start", "refill",
            "program", "reset", "alarm:NAME", "stop:STATE", "stop_end:STATE")


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


def parse_span(text):
    """A time as above, or a short span: '10m', '90s', '1h30m', '2d' -> ms, or None."""
    t = parse_time(text)
    if t is not None:
        return t
    if not isinstance(text, str) or not text.strip():
        return None
    m = _SPAN.match(text)
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60000 + s * 1000


def parse_expr(text):
    """'name', 'name + 10m', 'name - 1h' -> (name, offset ms), or None.
    A plain time ('2d 10:00') is not an expression (parse_time reads it)."""
    if not isinstance(text, str) or parse_time(text) is not None:
        return None
    m = _EXPR.match(text)
    if not m:
        return None
    name, sign, span = m.groups()
    if sign is None:
        return name, 0
    ms = parse_span(span)
    if ms is None:
        return None
    return name, ms if sign == "+" else -ms


def trigger_known(name):
    """Is name one of TRIGGERS (with its argument, for alarm:/stop:/stop_end:)?"""
    if ":" in name:
        head, arg = name.split(":", 1)
        return head in ("alarm", "stop", "stop_end") and bool(arg)
    return name in TRIGGERS
