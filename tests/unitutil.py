"""Small helpers shared by the unit tests (not a test module)."""
from pump.program import validate, ProgramError

SMALL = 1 << 30   # hot-path integers must stay below this (DESIGN.md, Units)


class ConstProgram:
    """A stand-in for a Program with one step of any nL/day rate (the schedule
    only asks a program for rate_at and next_boundary_s)."""

    def __init__(self, rate):
        self.rate = rate

    def rate_at(self, tod_s):
        return self.rate

    def next_boundary_s(self, tod_s):
        return None


def _smallest(ok, lo, hi):
    """Smallest x in lo..hi with ok(x), for a monotone ok (hi must be ok)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def tightest_program(raw, stroke_nl, top=6000):
    """validate() raw with the smallest max_hourly_ug and then the smallest
    max_daily_ug the validator accepts: the program with the least headroom."""
    def accepts(daily, hourly):
        r = dict(raw, max_daily_ug=daily, max_hourly_ug=hourly)
        try:
            validate(r, stroke_nl)
            return True
        except ProgramError:
            return False

    hourly = _smallest(lambda h: accepts(top, h), 1, top)
    daily = _smallest(lambda d: accepts(d, hourly), hourly, top)
    r = dict(raw, max_daily_ug=daily, max_hourly_ug=hourly)
    return validate(r, stroke_nl), r


def small_ints(obj, names):
    """-> [(name, value)] of int attributes that are not small ints."""
    bad = []
    for n in names:
        v = getattr(obj, n)
        if isinstance(v, int) and not -SMALL <= v < SMALL:
            bad.append((n, v))
    return bad
