# Therapy programs: validated on arrival, converted once to integer nL.
#
# A program arrives as a plain dict (from the programmer link, a TOML file or
# storage). validate() either returns a Program whose every field is an
# integer in pump units, or raises ProgramError naming the field and the
# reason. Limits are rounded toward the safe side (floor for maxima).
from pump.units import (DAY_S, DAY_MS, DAY_MIN, MINUTE_MS, MIN_CONC_UG_ML, MAX_CONC_UG_ML,
                        ug_to_nl_floor)
from pump.governor import DAY_SLOT_MS, HOUR_SLOT_MS

MODES = ("continuous", "flex", "stopped")
MAX_FLEX_STEPS = 10
MAX_DAILY_DOSE_UG = 3000   # label: reported maintenance 12-2003 ug/day
MAX_BOLUS_UG = 500
MAX_BOLUS_MIN = 240        # a patient bolus lasts at most 4 h
DEFAULT_STEP_UP_PCT = 30   # label titration: raise 10-30 % once per 24 h (spinal)
DEFAULT_LOW_RESERVOIR_UL = 2000
# Every rate the pump gives is at least one stroke an hour: a longer gap
# between strokes could not be told from a stop (no silent stop, I9).
MAX_STROKE_INTERVAL_MIN = 60

KNOWN_KEYS = ("mode", "concentration_ug_ml", "daily_dose_ug", "steps", "max_daily_ug",
              "max_hourly_ug", "max_step_up_pct", "override_step_up", "patient_bolus",
              "safe_rate_ug_day", "low_reservoir_ul", "bridge", "catheter_cm",
              "catheter_nl_per_cm")
BOLUS_KEYS = ("dose_ug", "duration_min", "lockout_min", "max_per_day")


def fastest_bolus_nl_day(stroke_nl, stroke_ms):
    """A bolus may run at half the motor's top speed (one stroke per stroke_ms) at
    most: the pump keeps up with it, and every rate stays a small int."""
    return stroke_nl * (DAY_MS // (2 * stroke_ms))


def bolus_too_fast(vol_nl, duration_ms, fastest_nl_day):
    """-> None, or the fewest whole minutes vol_nl may be given over."""
    if vol_nl * DAY_MS <= fastest_nl_day * duration_ms:
        return None
    return -((-vol_nl * DAY_MS) // (fastest_nl_day * MINUTE_MS))


class ProgramError(ValueError):
    def __init__(self, field, reason):
        super().__init__(field + ": " + reason)
        self.field = field
        self.reason = reason


class StepUpError(ProgramError):
    """A raise of the daily dose beyond the step-up limit (the safety refusal
    a clinician override exists for), told apart from a malformed program."""


def _int(raw, key, lo, hi, default=None, field=None):
    name = field or key
    if key not in raw:
        if default is None:
            raise ProgramError(name, "is required")
        return default
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProgramError(name, "must be a whole number, got %r" % (v,))
    if v < lo or v > hi:
        raise ProgramError(name, "%d is outside %d..%d" % (v, lo, hi))
    return v


def _bool(raw, key):
    v = raw.get(key, False)
    if not isinstance(v, bool):
        raise ProgramError(key, "must be true or false")
    return v


class Program:
    """A validated program. Rates in nL/day, limits in nL, times in ms."""

    def __init__(self):
        self.raw = None
        self.mode = "stopped"
        self.conc = 0
        self.steps = [(0, 0)]        # (start second of day, nL/day), sorted
        self.min_rate = 0            # the lowest step's nL/day (given while the day's schedule holds)
        self.step_ug = [0]           # ug/day of each step, for read-back
        self.daily_ug_min = 0        # daily dose in ug*min/day (exact, for step-up checks)
        self.daily_nl = 0
        self.max_daily_nl = 0
        self.max_hourly_nl = 0
        self.max_step_up_pct = DEFAULT_STEP_UP_PCT
        self.override = False
        self.override_used = False   # the override let through a raise the limit refuses
        self.base_ug_min = 0         # the dose the step-up was measured from (ug*min/day), 0: none
        self.pb_dose_nl = 0          # patient bolus; 0 means none programmed
        self.pb_dose_ug = 0
        self.pb_duration_ms = 0
        self.pb_lockout_ms = 0
        self.pb_max_per_day = 0
        self.safe_rate_nl_day = 0
        self.low_reservoir_nl = DEFAULT_LOW_RESERVOIR_UL * 1000
        self.bridge = False
        self.catheter_nl = -1        # -1: use the profile's catheter

    def daily_dose_ug(self):
        return self.daily_ug_min // DAY_MIN

    def rate_at(self, tod_s):
        """nL/day of the step in force at local time of day tod_s."""
        rate = self.steps[-1][1]
        for start, r in self.steps:
            if start <= tod_s:
                rate = r
            else:
                break
        return rate

    def next_boundary_s(self, tod_s):
        """Seconds from tod_s until the next step starts (None for one step)."""
        if len(self.steps) < 2:
            return None
        for start, _ in self.steps:
            if start > tod_s:
                return start - tod_s
        return DAY_S - tod_s + self.steps[0][0]

    def nl_over(self, tod_s, span_s):
        """Basal volume (nL, rounded down) the program gives over span_s seconds
        of the day from local time tod_s: what a skipped part of the day held."""
        total = 0                 # in nL*s/day
        t = tod_s % DAY_S
        left = span_s
        while left > 0:
            rate = self.rate_at(t)
            nb = self.next_boundary_s(t)
            span = left if nb is None or nb > left else nb
            total += rate * span
            t = (t + span) % DAY_S
            left -= span
        return total // DAY_S

    def readback(self):
        """What the pump echoes to the programmer: its own converted numbers."""
        return {
            "mode": self.mode, "concentration_ug_ml": self.conc,
            "daily_dose_ug": self.daily_dose_ug(), "daily_nl": self.daily_nl,
            "steps": [{"start_min": s // 60, "daily_rate_ug": u, "nl_per_day": r}
                      for (s, r), u in zip(self.steps, self.step_ug)],
            "max_daily_nl": self.max_daily_nl, "max_hourly_nl": self.max_hourly_nl,
            "patient_bolus_nl": self.pb_dose_nl,
            "patient_bolus_duration_min": self.pb_duration_ms // MINUTE_MS,
            "patient_bolus_lockout_min": self.pb_lockout_ms // MINUTE_MS,
            "patient_bolus_max_per_day": self.pb_max_per_day,
            "safe_rate_nl_day": self.safe_rate_nl_day,
            "low_reservoir_nl": self.low_reservoir_nl, "override_step_up": self.override,
        }


def _peak_window_nl(steps, window_s):
    """Largest basal volume (nL, rounded up) in any window_s-long span of the daily
    pattern. The integral of a step function over a sliding window peaks with a
    window edge on a step boundary, so only those placements are tried."""
    if len(steps) == 1:
        return -((-steps[0][1] * window_s) // DAY_S)
    best = 0
    starts = [s for s, _ in steps]
    cands = []
    for b in starts:
        cands.append(b)
        cands.append((b - window_s) % DAY_S)
    for a in cands:
        total = 0  # in nL*s/day
        t = a
        left = window_s
        while left > 0:
            tod = t % DAY_S
            rate = steps[-1][1]       # before the first step: yesterday's last
            nxt = steps[0][0] if tod < steps[0][0] else DAY_S
            for i in range(len(steps)):
                if steps[i][0] <= tod:
                    rate = steps[i][1]
                    nxt = steps[i + 1][0] if i + 1 < len(steps) else DAY_S
            span = min(left, nxt - tod)
            total += rate * span
            t += span
            left -= span
        best = max(best, -((-total) // DAY_S))
    return best


def validate(raw, stroke_nl, previous=None, min_recent_ug_min=None, fastest_nl_day=None,
             min_recent_pct=None):
    """Check a program dict and convert it. previous: the Program in force
    (for the step-up limit); min_recent_ug_min: the lowest non-zero daily dose
    in force during the last 24 h, the base the step-up is measured from;
    fastest_nl_day: the fastest bolus the pump gives (fastest_bolus_nl_day);
    min_recent_pct: the strictest max_step_up_pct in force in the last 24 h."""
    if not isinstance(raw, dict):
        raise ProgramError("program", "must be a table of settings")
    for k in raw:
        if not isinstance(k, str) or k not in KNOWN_KEYS:
            raise ProgramError(str(k), "is not a program setting")
    p = Program()
    p.raw = raw
    mode = raw.get("mode")
    if mode not in MODES:
        raise ProgramError("mode", "must be one of continuous, flex, stopped, got %r" % (mode,))
    p.mode = mode
    p.conc = _int(raw, "concentration_ug_ml", MIN_CONC_UG_ML, MAX_CONC_UG_ML)
    conc = p.conc

    for k, only in (("daily_dose_ug", "continuous"), ("steps", "flex")):
        if k in raw and mode != only:
            raise ProgramError(k, "is not used by a %s program (only %s)" % (mode, only))
    if mode == "continuous":
        ug = _int(raw, "daily_dose_ug", 1, MAX_DAILY_DOSE_UG)
        p.steps = [(0, ug_to_nl_floor(ug, conc))]
        p.step_ug = [ug]
        p.daily_ug_min = ug * DAY_MIN
    elif mode == "flex":
        steps = raw.get("steps")
        if not isinstance(steps, list) or not steps:
            raise ProgramError("steps", "a flex program needs 1..%d steps" % MAX_FLEX_STEPS)
        if len(steps) > MAX_FLEX_STEPS:
            raise ProgramError("steps", "%d steps; at most %d per day" % (len(steps), MAX_FLEX_STEPS))
        out = []
        ugs = []
        prev = -1
        for i, st in enumerate(steps):
            where = "steps[%d]" % i
            if not isinstance(st, dict):
                raise ProgramError(where, "must be a table with start_min and daily_rate_ug")
            for k in st:
                if not isinstance(k, str) or k not in ("start_min", "daily_rate_ug"):
                    raise ProgramError(where + "." + str(k), "is not a step setting")
            start = _int(st, "start_min", 0, DAY_MIN - 1, field=where + ".start_min")
            if start <= prev:
                raise ProgramError(where + ".start_min", "steps must start in increasing time order")
            prev = start
            ug = _int(st, "daily_rate_ug", 0, MAX_DAILY_DOSE_UG, field=where + ".daily_rate_ug")
            out.append((start * 60, ug_to_nl_floor(ug, conc)))
            ugs.append(ug)
        p.steps = out
        p.step_ug = ugs
        total = 0
        for i in range(len(out)):
            end = out[i + 1][0] if i + 1 < len(out) else DAY_S + out[0][0]
            total += ugs[i] * ((end - out[i][0]) // 60)
        p.daily_ug_min = total
        if total == 0:
            raise ProgramError("steps", "every step has rate 0; use mode = stopped")
    else:
        p.steps = [(0, 0)]
        p.step_ug = [0]
        p.daily_ug_min = 0

    p.daily_nl = ug_to_nl_floor(p.daily_ug_min, conc * DAY_MIN)
    peak_rate = max(r for _, r in p.steps)
    p.min_rate = min(r for _, r in p.steps)
    for i in range(len(p.steps)):
        _check_interval("daily_dose_ug" if mode == "continuous" else "steps[%d].daily_rate_ug" % i,
                        p.step_ug[i], p.steps[i][1], conc, stroke_nl)
    max_daily_ug = _int(raw, "max_daily_ug", 1, 2 * MAX_DAILY_DOSE_UG)
    max_hourly_ug = _int(raw, "max_hourly_ug", 1, 2 * MAX_DAILY_DOSE_UG)
    if max_hourly_ug > max_daily_ug:
        raise ProgramError("max_hourly_ug", "%d ug/h is above max_daily_ug %d" % (max_hourly_ug, max_daily_ug))
    p.max_daily_nl = ug_to_nl_floor(max_daily_ug, conc)
    p.max_hourly_nl = ug_to_nl_floor(max_hourly_ug, conc)

    # The governor counts its windows in slots and a slot counts whole while any
    # part of it is inside the window, so it may hold a stroke up to one slot
    # early. A program must leave that much headroom (plus two strokes of
    # quantisation) under its own limits, or the pump could never deliver it.
    slot_day = -((-peak_rate * (DAY_SLOT_MS // 1000)) // DAY_S)
    slot_hour = -((-peak_rate * (HOUR_SLOT_MS // 1000)) // DAY_S)
    need_day = _peak_window_nl(p.steps, DAY_S) + slot_day + 2 * stroke_nl
    need_hour = _peak_window_nl(p.steps, 3600) + slot_hour + 2 * stroke_nl

    pb = raw.get("patient_bolus")
    if pb is not None:
        if not isinstance(pb, dict):
            raise ProgramError("patient_bolus", "must be a table of settings")
        for k in pb:
            if not isinstance(k, str) or k not in BOLUS_KEYS:
                raise ProgramError("patient_bolus." + str(k), "is not a patient bolus setting")
        p.pb_dose_ug = _int(pb, "dose_ug", 1, MAX_BOLUS_UG, field="patient_bolus.dose_ug")
        p.pb_duration_ms = _int(pb, "duration_min", 1, MAX_BOLUS_MIN, field="patient_bolus.duration_min") * MINUTE_MS
        p.pb_lockout_ms = _int(pb, "lockout_min", 10, DAY_MIN, field="patient_bolus.lockout_min") * MINUTE_MS
        p.pb_max_per_day = _int(pb, "max_per_day", 1, 24, field="patient_bolus.max_per_day")
        if p.pb_lockout_ms < p.pb_duration_ms:
            raise ProgramError("patient_bolus.lockout_min", "must not be shorter than duration_min")
        p.pb_dose_nl = ug_to_nl_floor(p.pb_dose_ug, conc)
        if p.pb_dose_nl < stroke_nl:
            raise ProgramError("patient_bolus.dose_ug", "%d ug is less than one stroke at this concentration" % p.pb_dose_ug)
        least = None if fastest_nl_day is None else bolus_too_fast(p.pb_dose_nl, p.pb_duration_ms, fastest_nl_day)
        if least is not None and least > MAX_BOLUS_MIN:
            raise ProgramError("patient_bolus.dose_ug",
                               "%d ug at %d ug/mL takes longer than %d min at the pump's fastest bolus; at most %d ug"
                               % (p.pb_dose_ug, conc, MAX_BOLUS_MIN,
                                  fastest_nl_day * MAX_BOLUS_MIN * MINUTE_MS // DAY_MS * conc // 1000000))
        if least is not None:
            raise ProgramError("patient_bolus.duration_min",
                               "%d ug in %d min is faster than the pump gives a bolus; at least %d min"
                               % (p.pb_dose_ug, p.pb_duration_ms // MINUTE_MS, least))
        if need_hour + p.pb_dose_nl > p.max_hourly_nl:
            raise ProgramError("patient_bolus.dose_ug",
                               "%d ug does not fit under max_hourly_ug %d with the basal rate; the hourly limit must be at least %d ug"
                               % (p.pb_dose_ug, max_hourly_ug, _ug_ceil(need_hour + p.pb_dose_nl, conc)))
    if need_day > p.max_daily_nl:
        raise ProgramError("max_daily_ug", "%d ug is below what the program needs in 24 h: at least %d ug"
                           % (max_daily_ug, _ug_ceil(need_day, conc)))
    if need_hour > p.max_hourly_nl:
        raise ProgramError("max_hourly_ug", "%d ug is below what the program needs in its busiest hour: at least %d ug"
                           % (max_hourly_ug, _ug_ceil(need_hour, conc)))

    safe_ug = _int(raw, "safe_rate_ug_day", 0, MAX_DAILY_DOSE_UG, default=0)
    if safe_ug * DAY_MIN > p.daily_ug_min:
        raise ProgramError("safe_rate_ug_day", "%d ug/day is above the programmed daily dose" % safe_ug)
    p.safe_rate_nl_day = ug_to_nl_floor(safe_ug, conc)
    _check_interval("safe_rate_ug_day", safe_ug, p.safe_rate_nl_day, conc, stroke_nl)
    p.low_reservoir_nl = _int(raw, "low_reservoir_ul", 0, 40000, default=DEFAULT_LOW_RESERVOIR_UL) * 1000
    p.max_step_up_pct = _int(raw, "max_step_up_pct", 0, 100, default=DEFAULT_STEP_UP_PCT)
    p.override = _bool(raw, "override_step_up")
    p.bridge = _bool(raw, "bridge")
    if "catheter_cm" in raw or "catheter_nl_per_cm" in raw:
        p.catheter_nl = (_int(raw, "catheter_cm", 1, 200)
                         * _int(raw, "catheter_nl_per_cm", 100, 20000))

    # The step-up limit (titration: raise the daily dose at most pct % in 24 h).
    # base: the lowest dose in force at any time in the last 24 h (a stopped
    # pump has no dose, so a restart is measured from the doses before the stop);
    # pct: the strictest limit in force in that time. Lowering is always allowed.
    in_force = 0
    base = None
    pct = DEFAULT_STEP_UP_PCT
    if previous is not None:
        pct = previous.max_step_up_pct
        if previous.mode != "stopped":
            in_force = base = previous.daily_ug_min
    if min_recent_ug_min and (base is None or min_recent_ug_min < base):
        base = min_recent_ug_min
    if min_recent_pct is not None and min_recent_pct < pct:
        pct = min_recent_pct
    p.base_ug_min = base or 0
    if base and p.daily_ug_min > in_force and p.daily_ug_min * 100 > base * (100 + pct):
        if not p.override:
            raise StepUpError("daily_dose_ug",
                               "raises the daily dose from %d to %d ug, more than %d %% within 24 h; a clinician override is required"
                               % (base // DAY_MIN, p.daily_dose_ug(), pct))
        p.override_used = True
    return p


def _check_interval(field, ug_day, nl_day, conc, stroke_nl):
    """A non-zero rate must give at least one stroke every MAX_STROKE_INTERVAL_MIN."""
    if nl_day <= 0 or nl_day * MAX_STROKE_INTERVAL_MIN >= stroke_nl * DAY_MIN:
        return
    least_nl = -((-stroke_nl * DAY_MIN) // MAX_STROKE_INTERVAL_MIN)    # nL/day
    most_conc = ug_day * 1000000 // least_nl
    what = "%d ug/day at %d ug/mL is one %d nL stroke every %d min; the pump gives a rate at least one stroke every %d min (a longer gap could not be told from a stop)" % (
        ug_day, conc, stroke_nl, stroke_nl * DAY_MIN // nl_day, MAX_STROKE_INTERVAL_MIN)
    if most_conc >= MIN_CONC_UG_ML:
        what += ": use a concentration of at most %d ug/mL for this dose, or at least %d ug/day" % (
            most_conc, _ug_ceil(least_nl, conc))
    else:
        what += ": at least %d ug/day at this concentration" % _ug_ceil(least_nl, conc)
    raise ProgramError(field, what)


def _ug_ceil(nl, conc):
    return -((-nl * conc) // 1000000)
