# A scenario in a time zone: the pump's wall clock moves at the zone's real
# daylight-saving instants, as a clock with automatic DST would, and the pump
# is not told (it finds out at its next wake-up, as from any clock change).
#
# `timezone = "Europe/Paris"` with start_time = local time there: each change
# of the zone's UTC offset inside the run becomes an event `dst` at the real
# instant, shifting the wall clock by the change (+60 min in spring, -60 min in
# autumn). The IANA database comes from the system or from the tzdata package.
import datetime

try:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
except ImportError:          # (CPython 3.11 has it; MicroPython never loads scenarios)
    ZoneInfo = None

_HOUR = datetime.timedelta(hours=1)


def zone(name):
    """-> the zone, or raise ValueError naming what is wrong."""
    if ZoneInfo is None:
        raise ValueError("this Python has no zoneinfo")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, KeyError):
        raise ValueError("%r is not a time zone of the IANA database (like \"Europe/Paris\")" % (name,))


def transitions(tz, start_local, duration_ms):
    """The zone's offset changes in the run: [(t_ms from the start, shift in
    seconds)]. start_local: the naive local start (its offset is the one in
    force then; an ambiguous hour is taken as the first)."""
    start_utc = start_local.replace(tzinfo=tz).astimezone(datetime.timezone.utc)
    end_utc = start_utc + datetime.timedelta(milliseconds=duration_ms)
    out = []
    t = start_utc
    off = t.astimezone(tz).utcoffset()
    while t < end_utc:
        nxt = min(t + _HOUR, end_utc)
        o2 = nxt.astimezone(tz).utcoffset()
        if o2 != off:
            lo, hi = t, nxt           # the change lies in (lo, hi]: to the second
            while hi - lo > datetime.timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid <= lo:
                    break
                if mid.astimezone(tz).utcoffset() == off:
                    lo = mid
                else:
                    hi = mid
            ms = int((hi - start_utc).total_seconds() * 1000)
            out.append((ms, int((o2 - off).total_seconds())))
            off = o2
        t = nxt
    return out
