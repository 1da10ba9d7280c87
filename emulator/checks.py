# The invariant checks the emulator runs on every run: a judge of the run from
# the stroke trace the simulated motor recorded, the programs the clinic sent,
# the wall clock and the pump's own event log, never its counters. The caps
# bound what the pump *commands*, so strokes count at their nominal volume; the
# motor's accuracy error is reported beside them, not mixed in.
#
# Every check says how much of the run it covered. A check that covered
# nothing says "not checked", never "ok": status is "ok", "fail" or
# "not checked", and `ok` is true, false or null (none); verdict.py gives
# every check (here, in check_alarms.py and in check_clinic.py) those words.
#
# The checks run on the pump's own clock: a crystal that runs fast by
# drift_ppm makes the pump deliver that much more per true day, which no
# firmware can see. The drift itself is reported beside them.
from emulator.sortedsearch import bisect_left, bisect_right
from pump import eventlog as E
from pump.schedule import BRIDGE

from emulator import pumplog as L
from emulator.check_alarms import check_alarms
from emulator.check_clinic import check_asked
from emulator.clinic import Clinic
from emulator.refusals import unjustified as unjustified_refusals
from emulator.scheduled import Scheduled, rate_table, rate_at, secs_to_change, cut_spans
from emulator.accounting import account
from emulator.verdict import OK, FAIL, NOT_CHECKED, result

DAY = 86400000
HOUR = 3600000


class RunView:
    """A finished World seen on the pump's own clock."""

    def __init__(self, w):
        self.w = w
        self.profile = w.profile
        self.stroke = w.profile["stroke_nl"]
        self.ppm = w.clock.drift_ppm
        pt = self.pt
        # (a pump whose crystal keeps true time: its clock is the world's, nothing to convert)
        self.trace = (list(w.motor.trace) if not self.ppm
                      else [(pt(t), nl, kind, conc) for t, nl, kind, conc in w.motor.trace])
        self.times = [r[0] for r in self.trace]
        self.end = pt(w.sc.duration_ms)
        self.progs = [(pt(t), prog, rb) for t, prog, rb in w.programs]
        self.walls = [(pt(t), wall) for t, wall in w.walls]
        self.raw_events = [(pt(e[0]),) + tuple(e[1:]) for e in w.raw_events]
        self.events = [(pt(e[0]),) + tuple(e[1:]) for e in w.events]
        self.stops = L.stop_intervals(self.raw_events, self.end)
        self.refusing = L.refusal_runs(self.raw_events, self.end)
        self.restarts = L.restarts(self.raw_events)
        self.first_prog = self.progs[0][0] if self.progs else None
        self.days = self.end / DAY
        # what the clinic asked and the pump accepted, on the pump's clock:
        # the boluses owed and the suspensions are judged from these, not
        # from what the pump logged (unless commands came over the link)
        self.clinic = Clinic(w)
        c = self.clinic
        self.asked = [(pt(t), kind, code, nl, ms) for t, kind, code, nl, ms in c.asked_boluses()]
        self.suspensions = [(pt(t0), pt(t1)) for t0, t1 in c.suspensions(w.sc.duration_ms)]
        self.mismatches = [(pt(t0), pt(t1)) for t0, t1 in c.strength_mismatches(w.raw_events, w.sc.duration_ms)]
        self._boluses = None

    def pt(self, t):
        return t + t * self.ppm // 1000000

    def scheduled(self):
        """A new S(t) (it is read forward only): boluses as the clinic asked
        them, each cut at a suspension or a restart while it ran."""
        if self._boluses is None and not self.clinic.from_log:
            # (a suspension in the ms of a grant came after it: a suspended pump grants nothing)
            self._boluses = cut_spans([(t, nl, ms) for t, _, _, nl, ms in self.asked],
                                      [self.pt(t) for t in self.w.restart_times],
                                      [t0 for t0, _ in self.suspensions])
        return Scheduled(self.progs, self.walls, self.raw_events, boluses=self._boluses)

    def fastest(self):
        """The fastest basal plus the fastest the boluses ever ran together (nL/day)."""
        f = 0
        for _, prog, _ in self.progs:
            f = max([f] + [r for _, r in rate_table(prog)])
        spans = self.scheduled().boluses
        most = 0
        for t0, d, v in spans:
            together = sum(v2 * DAY // max(d2, 1) for t2, d2, v2 in spans
                           if t2 < t0 + max(d, 1) and t0 < t2 + max(d2, 1))
            most = max(most, together)
        return f + most

    def eps(self):
        """One stroke plus the one-second accounting grain (two seconds at the
        fastest rate); a clock glitch the pump sees at its next wake-up adds
        up to its longest sleep at that rate."""
        fastest = self.fastest()
        e = self.stroke + fastest * 2 // 86400 + 8
        if any(src == "world" and code in ("clock_jump", "dst") for _, src, _, code, _ in self.events):
            e += fastest * self.profile.get("max_sleep_ms", 600000) // DAY
        return e


class SlidingSum:
    """The sum of the values added in the last `span` ms (an entry leaves once
    it is `span` old), kept in one pass over times that never go back."""

    def __init__(self, span):
        self.span = span
        self.q = []
        self.head = 0
        self.total = 0

    def add(self, t, x):
        q = self.q
        q.append((t, x))
        self.total += x
        while q[self.head][0] <= t - self.span:
            self.total -= q[self.head][1]
            self.head += 1
        if self.head > 4096:
            del q[:self.head]
            self.head = 0
        return self.total


# ---------------------------------------------------------------- I2 caps
def check_caps(v):
    """Sliding 24 h and 1 h windows in pg (nL x ug/mL), so strokes of two
    strengths add up; a bridge stroke carries the old drug, under its caps."""
    stroke, progs = v.stroke, v.progs
    # the 24 h window first, then the 1 h window (the first that fails is named)
    wins = (("24 h", SlidingSum(DAY), "max_daily_ug"), ("1 h", SlidingSum(HOUR), "max_hourly_ug"))
    worst = [0, 0]            # permille of its cap, the fullest each window was
    first_bad = None
    pi = 0
    last = len(progs) - 1
    n = 0
    for t, nl, kind, conc in v.trace:
        if not progs or t < progs[0][0]:
            continue
        while pi < last and progs[pi + 1][0] <= t:
            pi += 1
        cur = progs[pi - 1][1] if kind == BRIDGE and pi > 0 else progs[pi][1]
        pg = stroke * cur["concentration_ug_ml"]
        n += 1
        for i in (0, 1):
            name, win, cap = wins[i]
            total = win.add(t, pg)
            cap_pg = cur[cap] * 1000000
            share = total * 1000 // cap_pg
            if share > worst[i]:
                worst[i] = share
            if total > cap_pg and first_bad is None:
                first_bad = "%s window ending at %d ms holds %d ug, cap %d ug" % (name, t, total // 1000000, cur[cap])
    name = "hard caps (sliding 24 h and 1 h)"
    covered = "%d windows ending at a stroke" % n
    if not n:
        return result("I2", name, NOT_CHECKED, "no stroke under a program: no window to judge", covered)
    return result("I2", name, FAIL if first_bad else OK,
                  first_bad or "fullest 24 h window %.1f %% of its cap, fullest 1 h window %.1f %%"
                  % (worst[0] / 10, worst[1] / 10), covered,
                  fullest_24h_permille=worst[0], fullest_1h_permille=worst[1])


# ---------------------------------------------------------------- I3 stops
def check_stops(v):
    bad = []
    stops = (v.stops + [(t0, t1, "suspended by the clinic") for t0, t1 in v.suspensions]
             + [(t0, t1, "a drug of another strength than the program's") for t0, t1 in v.mismatches])
    for t, nl, kind, conc in v.trace:
        for t0, t1, why in stops:
            # a stroke in the same millisecond a stop begins was decided before it
            if t0 < t < t1:
                bad.append((t, why))
                break
    stops = [s for s in stops if s[1] > s[0]]
    stopped_ms = sum(min(t1, v.end) - t0 for t0, t1, _ in stops)
    name = "no stroke while stopped"
    covered = "%d stop intervals, %.1f h" % (len(stops), stopped_ms / HOUR)
    if bad:
        return result("I3", name, FAIL, "%d strokes while stopped, first at %d ms (%s)" % (len(bad), bad[0][0], bad[0][1]),
                      covered, stop_intervals=len(stops))
    if not stops:
        return result("I3", name, NOT_CHECKED, "the pump never stopped: nothing to judge", covered, stop_intervals=0)
    return result("I3", name, OK, "%d stop intervals, %.1f h stopped, no stroke in them" % (len(stops), stopped_ms / HOUR),
                  covered, stop_intervals=len(stops))


# ---------------------------------------------------------------- I1 every interval
def check_intervals(v, eps):
    if not v.progs:
        return result("I1", "no over-delivery, no catch-up (every interval)", NOT_CHECKED,
                      "no program was ever in force", "0 days")
    sched = v.scheduled()
    min_x = 0.0
    worst = 0.0
    bad = None
    d = 0
    for t, nl, kind, conc in v.trace:
        d += v.stroke
        x = d - sched.at(t)
        gain = x - min_x
        if gain > worst:
            worst = gain
        if gain > eps and bad is None:
            bad = "at %d ms delivery is %.0f nL ahead of the schedule over some interval" % (t, gain)
        if x - v.stroke < min_x:
            min_x = x - v.stroke
    span = (v.end - v.first_prog) / DAY
    return result("I1", "no over-delivery, no catch-up (every interval)", FAIL if bad else OK,
                  bad or "largest lead over the schedule in any interval %.0f nL (allowed %d)" % (worst, eps),
                  "every interval of %.1f days, %d strokes" % (span, len(v.trace)),
                  largest_lead_nl=round(worst), allowed_nl=eps)


# ---------------------------------------------------------------- I1 on real time
def _span_nl(table, start_s, span_ms):
    """Basal of a rate table over span_ms from local time start_s (nL x ms/day)."""
    total = 0
    t = start_s * 1000
    left = span_ms
    while left > 0:
        tod = (t // 1000) % 86400
        secs = secs_to_change(table, tod)
        step = left if secs is None else min(left, secs * 1000 - t % 1000)
        total += rate_at(table, tod) * step
        t += step
        left -= step
    return total


def _peak_nl(table, span_ms, cache):
    """The most basal the table gives in any span_ms of its day (nL x ms/day)."""
    key = (id(table), span_ms // 60000 + 1)
    if key in cache:
        return cache[key]
    span = key[1] * 60000          # a minute up: the bound a little loose, never tight
    days, rest = divmod(span, DAY)
    best = days * _span_nl(table, 0, DAY)
    if rest:
        cands = []
        for start, _ in table:
            cands.append(start)
            cands.append((start - rest // 1000) % 86400)
        best += max(_span_nl(table, c, rest) for c in cands)
    cache[key] = best
    return best


def check_real_day(v):
    """I1 on real time: the drug in every 24 real hours (a window ending at
    each stroke) within what the programs in force then can give in it, their
    own busiest stretch of the time each was in force (one program: its daily
    dose), plus the boluses granted in it, plus a stroke. It does not follow
    the wall clock, so a step given twice fails it. The one allowance: after
    the clock is set forward by J, the busiest J of the program less what was
    skipped (the next day is J short; the pump does not starve the patient)."""
    name = "no over-delivery in any 24 real hours"
    if not v.progs or not v.trace:
        return result("I1r", name, NOT_CHECKED, "no stroke under a program: no window to judge", "0 windows")
    tables = [(t, rate_table(p), p["concentration_ug_ml"]) for t, p, _ in v.progs]
    daily = [_span_nl(tb, 0, DAY) for _, tb, _ in tables]
    starts = [t for t, _, _ in tables]
    grants = sorted(v.scheduled().boluses)
    longest = max([d for _, d, _ in grants] + [0])
    g_starts = [g[0] for g in grants]
    forwards = _forward_jumps(v)
    cache = {}
    # a window wholly inside one program's time: its daily dose, in pg
    whole = [daily[i] / DAY * tables[i][2] for i in range(len(tables))]
    last = len(starts) - 1
    stroke = v.stroke
    window = SlidingSum(DAY)   # pg in the 24 real hours ending at each stroke
    worst = 0
    bad = None
    n = 0
    for t, nl, kind, conc in v.trace:
        if t < starts[0]:
            continue
        pi = bisect_right(starts, t) - 1
        c = tables[pi - 1][2] if kind == BRIDGE and pi > 0 else tables[pi][2]
        total = window.add(t, stroke * c)
        n += 1
        a = t - DAY
        if starts[pi] <= a:
            bound = whole[pi]
        else:
            p0 = bisect_right(starts, a) - 1
            if p0 < 0:
                p0 = 0
            bound = 0.0              # pg
            for i in range(p0, pi + 1):
                lo = starts[i] if starts[i] > a else a
                hi = starts[i + 1] if i < last and starts[i + 1] < t else t
                if hi > lo:
                    nl_ms = daily[i] if hi - lo >= DAY - 1000 else _peak_nl(tables[i][1], hi - lo, cache)
                    bound += nl_ms / DAY * tables[i][2]
        if grants:
            for j in range(bisect_left(g_starts, a - longest), bisect_right(g_starts, t)):
                t0, d, vol = grants[j]
                el = min(max(t - t0, 0), d) - min(max(a - t0, 0), d)
                if el > 0:
                    bound += vol * el / max(d, 1) * _conc_at(tables, t0)
        for tf, allowance, fc in forwards:
            if a < tf <= t:
                bound += allowance * fc
        bound += stroke * c
        share = int(total * 1000 // max(bound, 1))
        if share > worst:
            worst = share
        if total > bound + 8 * c and bad is None:
            bad = "%d ug in the 24 real hours ending at %d ms, at most %d ug may be given" % (
                total // 1000000, t, int(bound) // 1000000)
    return result("I1r", name, FAIL if bad else OK,
                  bad or "fullest 24 real hours %.1f %% of what the programs in force may give" % (worst / 10),
                  "%d windows of 24 real hours ending at a stroke" % n, fullest_permille=worst)


def _conc_at(tables, t):
    c = tables[0][2]
    for tp, _, conc in tables:
        if tp <= t:
            c = conc
    return c


def _forward_jumps(v):
    """[(t, allowance nL, conc)] for each wall clock change forward the short
    way round the day: the busiest stretch of that length less what was skipped."""
    out = []
    prev = None
    cache = {}
    for t, wall in v.walls:
        if prev is not None:
            expected = prev[1] + (t - prev[0]) // 1000
            d = (wall - expected) % 86400
            if 0 < d <= 43200:
                tables = [(tp, rate_table(p), p["concentration_ug_ml"]) for tp, p, _ in v.progs if tp <= t]
                if tables:
                    _, table, conc = tables[-1]
                    place = expected % 86400
                    allow = (_peak_nl(table, d * 1000, cache) - _span_nl(table, place, d * 1000)) / DAY
                    if allow > 0:
                        out.append((t, allow, conc))
        prev = (t, wall)
    return out


# ---------------------------------------------------------------- I5 the reservoir's count
def check_dry(v):
    """The pump's count of its reservoir, held against the world's: the
    volume it was told at each refill less the strokes it commanded since.
    - A stroke that found the reservoir really empty is the pump's fault only
      if by that count it had no stroke left above its empty level (its own
      rule); otherwise the pump could not know (a pocket fill, a motor that
      gives more than its nominal stroke), and it is reported, not failed.
    - What the pump says it holds is never more than that count (a stroke
      of slack for timing); at the end never less than the count by more
      than what it reports as uncertain."""
    w = v.w
    stroke = v.stroke
    empty = w.profile.get("empty_nl", 0)
    fills = sorted((t, nl) for t, nl, conc in v.clinic.refills(w.raw_events))
    fill_t = [t for t, _ in fills]
    wtimes = [t for t, nl, kind, conc in w.motor.trace]

    def count_at(t, before=False):
        """-> the told volume less the strokes since, at world time t, or None."""
        i = bisect_right(fill_t, t) - 1
        if i < 0:
            return None
        n = (bisect_left(wtimes, t) if before else bisect_right(wtimes, t)) - bisect_right(wtimes, fill_t[i])
        return fills[i][1] - n * stroke
    dry = 0
    unexplained = []
    for t, nl, kind, conc in w.motor.trace:
        if nl != 0:
            continue
        dry += 1
        c = count_at(t, before=True)
        if c is not None and c - stroke < empty:
            unexplained.append(t)
    over = None
    if not v.clinic.from_log:
        for t, believed, real, batt, state in w.series:
            c = count_at(t)
            if c is not None and believed > c + stroke:
                over = (t, believed, c)
                break
    under = None
    f = w.pump.facts()
    c = count_at(w.clock.now)
    final = w.series[-1][1] if w.series else None
    if c is not None and final is not None and not v.clinic.from_log and f.get("conc", 1):
        if c - final > f.get("uncertain_nl", 0) + stroke:
            under = (final, c, f.get("uncertain_nl", 0))
    name = "the reservoir's count: no stroke from an empty reservoir by it, no drug believed that is not there"
    covered = "%d strokes, %d reservoir readings" % (len(v.trace), len(w.series))
    more = {"dry_strokes": dry, "explained_by_count": dry - len(unexplained)}
    if not v.trace:
        return result("I5", name, NOT_CHECKED, "no stroke to judge", covered, **more)
    if unexplained:
        return result("I5", name, FAIL, "%d strokes commanded with no stroke left by the pump's own count, first at "
                      "%d ms" % (len(unexplained), v.pt(unexplained[0])), covered, **more)
    if over:
        return result("I5", name, FAIL, "at %d ms the pump says it holds %d nL; told volume less the strokes "
                      "since: %d nL" % (v.pt(over[0]), over[1], over[2]), covered, **more)
    if under:
        return result("I5", name, FAIL, "at the end the pump says it holds %d nL, %d nL below its count, and "
                      "reports %d nL as uncertain" % (under[0], under[1] - under[0], under[2]), covered, **more)
    return result("I5", name, OK, "%d strokes found the reservoir empty%s; the pump's figure within a stroke of "
                  "its count" % (dry, (" (%d with drug left by the count: the pump could not know)"
                                       % (dry - len(unexplained))) if dry else ""), covered, **more)


# ---------------------------------------------------------------- I6 liveness
def check_liveness(v, eps, acct):
    """Two ways. Over the whole run: what was scheduled and not delivered must
    be what a stated cause explains (a stop, a refusal of the governor, a
    restart's lost batch), to within a stroke. And in every quiet stretch of
    2 h or more (no fault, stop, restart, refusal or clinic change), from its
    start: delivered keeps up with the schedule to within a stroke."""
    quiet = _quiet_stretches(v)
    worst = 0.0
    checks = 0
    bad = None
    live_ms = 0
    times = v.times
    for q0, q1 in quiet:
        if q1 - q0 < 2 * HOUR:
            continue
        live_ms += q1 - q0
        fresh = v.scheduled()
        k = bisect_left(times, q0)
        seg_max = k * v.stroke - fresh.at(q0)
        k1 = bisect_left(times, q1)
        pts = [(times[j], (j + 1) * v.stroke) for j in range(k, k1)] + [(q1, k1 * v.stroke)]
        for t, dt in pts:
            x = dt - fresh.at(t)
            lag = seg_max - x - (v.stroke if t != q1 else 0)
            checks += 1
            if lag > worst:
                worst = lag
            if lag > eps and bad is None:
                bad = "at %d ms delivery fell %.0f nL behind the schedule in a fault-free stretch" % (t, lag)
            if x > seg_max:
                seg_max = x
    name = "liveness (the whole run's shortfall explained; quiet stretches of 2 h or more)"
    covered = "the whole run's accounting; %.1f days in quiet stretches, %d comparisons" % (live_ms / DAY, checks)
    more = {"comparisons": checks, "checked_days": round(live_ms / DAY, 2), "largest_lag_nl": round(worst)}
    if acct is None:
        return result("I6", name, NOT_CHECKED, "no program was ever in force: nothing was owed", covered, **more)
    unexplained = acct["unexplained_nl"]
    if unexplained > acct["tolerance_nl"] and bad is None:
        bad = ("%d nL scheduled and not given that no stop, refusal or restart explains (allowed %d)"
               % (unexplained, acct["tolerance_nl"]))
    return result("I6", name, FAIL if bad else OK,
                  bad or "shortfall explained to within %d nL; largest lag in a quiet stretch %.0f nL (allowed %d)"
                  % (unexplained, worst, eps), covered, **more)


def _quiet_stretches(v):
    """-> [(t0, t1)] stretches with no disturbance. A disturbance is a world
    fault or repair, a restart, a refusal, an alarm raised or cleared, a stop,
    a clock change, a refill or a new program: it disturbs from its time until
    2 min after (the pump's re-check and stroke-feedback times); a restart
    until 2 min after the first stroke after it; a bolus until a day after its
    end (the caps may hold basal back behind it); a stop from a little before
    it began (a stalled stroke and its retries come first) until 2 min after it;
    a run of refusals from its first to 2 min after its last."""
    profile, events, end, times = v.profile, v.events, v.end, v.times
    max_sleep = profile.get("max_sleep_ms", 600000)
    lead = (profile.get("stall_retries", 2) + 1) * (profile.get("stall_retry_ms", 1000)
                                                   + profile.get("stroke_ms", 200)) + 5000
    marks = []
    for t, src, kind, code, detail in events:
        if src == "world" and code in ("clock_jump", "dst"):
            marks.append((t, t + max_sleep + 120000))
        elif kind == "reset" or (src == "world" and code in ("reset", "power_cut")):
            k = bisect_right(times, t)
            marks.append((t, (times[k] if k < len(times) else end) + 120000))
        elif src == "world" or kind in ("alarm", "alarm_clear", "refusal", "fault", "suspend", "stop",
                                        "resume", "clock", "refill", "storage", "ack", "bridge", "program",
                                        "time_of_day"):
            marks.append((t, t + 120000))
    for t0, t1, _ in v.stops:
        marks.append((t0 - lead, t1 + 120000))
    for t0, t1 in v.refusing:       # the governor holding strokes back: a stated cause, not quiet
        marks.append((t0, t1 + 120000))
    for t, kind, code, a, b in v.raw_events:
        if kind in (E.BOLUS, E.PRIME):
            marks.append((t, t + b * 1000 + DAY))
    marks.append((0, (v.progs[0][0] if v.progs else end) + 120000))
    marks.sort()
    merged = []
    for a, b in marks:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out = []
    for i, (a, b) in enumerate(merged):
        nxt = merged[i + 1][0] if i + 1 < len(merged) else end
        if nxt > b:
            out.append((b, min(nxt, end)))
    return out


# ---------------------------------------------------------------- I9 no silent stop
def check_silent(v, eps, acct):
    """A stretch without strokes while the program schedules them must lie in
    a stop whose alarm is up (a suspension: the clinician's own act), or in a
    refusal of the governor with dose_limit up, or be a restart's lost batch."""
    name = "no silent stop"
    if acct is None:
        return result("I9", name, NOT_CHECKED, "no program was ever in force: nothing was owed", "0 gaps")
    silent = L.silent_stops(v.raw_events, v.stops, v.progs)
    _, unalarmed = L.refusals_alarmed(v.raw_events, v.refusing)
    untrue = unjustified_refusals(v)
    gaps = acct["gaps"]
    bad = None
    if silent:
        bad = "the %s stop at %d ms had no alarm up" % (silent[0][1], silent[0][0])
    elif unalarmed:
        bad = "strokes refused from %d ms with no dose_limit alarm up" % unalarmed[0][0]
    elif untrue:
        bad = "at %d ms strokes %s" % untrue[0]
    elif acct["silent_gaps"]:
        g = acct["silent_gaps"][0]
        bad = ("no stroke from %d to %d ms while %d nL were scheduled, with no stop, refusal or restart to "
               "explain them" % (g[0], g[1], g[2]))
    return result("I9", name, FAIL if bad else OK,
                  bad or "%d stretches between strokes judged, longest unexplained %.0f nL (allowed %d)"
                  % (gaps, acct["worst_gap_nl"], acct["gap_allowed_nl"]),
                  "%d stretches between strokes over %.1f days" % (gaps, acct["judged_days"]),
                  silent_stops=len(silent) + len(unalarmed), silent_gaps=acct["silent_gaps_n"],
                  refusals_without_cause=len(untrue))


def run_checks(w):
    """-> (check results for report.json, the run's accounting or None)."""
    v = RunView(w)
    eps = v.eps()
    acct = account(v, eps) if v.progs else None
    out = [check_caps(v), check_stops(v), check_intervals(v, eps), check_real_day(v),
           check_liveness(v, eps, acct), check_silent(v, eps, acct), check_dry(v), check_alarms(v),
           check_asked(v)]
    if v.ppm:
        out.append(result("clock", "pump clock drift (not a firmware check)", OK,
                          "the pump's crystal runs %+d ppm: on true time it delivered about %+d nL more "
                          "than on its own clock; the checks above run on its own clock"
                          % (v.ppm, sum(r[1] for r in v.trace) * v.ppm // 1000000), "the whole run",
                          drift_ppm=v.ppm))
    return out, acct
