# The schedule engine: how much volume is owed, from monotonic time.
#
# Every source of delivery is a rate in nL/day: the basal program (one rate per
# flex step, picked by local time of day), a clinician bolus, a patient bolus,
# a priming bolus, a bridge. Rates accumulate over whole seconds with an
# integer remainder in 1/86400 nL, so months of dosing never drift and no
# intermediate value reaches 2**30 (rate % 86400 times at most 8192 s).
#
# While the pump is stopped for any reason the time still passes but what it
# would have owed is forfeited, not saved up: no catch-up after a stop (I3).
from pump.compat import const
from pump.units import DAY_MS, DAY_S

BASAL = const(0)
BOLUS = const(1)
PATIENT = const(2)
PRIME = const(3)
BRIDGE = const(4)
KINDS = ("basal", "bolus", "patient_bolus", "prime", "bridge")
_CHUNK_S = const(8192)


class Flow:
    """A constant rate (nL/day) turned into whole nL with an exact remainder."""

    def __init__(self):
        self.q = 0      # whole nL per second
        self.r = 0      # remainder nL/day, < 86400
        self.frac = 0   # accumulated remainder, in 1/86400 nL
        self.rate = 0

    def set(self, nl_day):
        if nl_day != self.rate:
            self.rate = nl_day
            self.q = nl_day // DAY_S
            self.r = nl_day % DAY_S

    def run(self, secs):
        frac = self.frac + self.r * secs
        whole = self.q * secs + frac // DAY_S
        self.frac = frac % DAY_S
        return whole

    def gain(self, secs):
        """Whole nL run(secs) would add, without running it."""
        return self.q * secs + (self.frac + self.r * secs) // DAY_S

    def secs_for(self, need_nl):
        """Whole seconds until this flow alone adds need_nl (None if rate is 0)."""
        if self.rate == 0:
            return None
        units = need_nl * DAY_S - self.frac
        if units <= 0:
            return 0
        return -((-units) // self.rate)


class Bolus:
    """A volume given evenly over a duration on top of the basal rate."""

    def __init__(self, kind):
        self.kind = kind
        self.flow = Flow()
        self.clear()

    def clear(self):
        self.active = False
        self.vol = 0
        self.due = 0
        self.left_s = 0
        self.flow.set(0)
        self.flow.frac = 0

    def start(self, vol_nl, duration_ms):
        self.clear()
        self.active = True
        self.vol = vol_nl
        self.left_s = duration_ms // 1000
        # vol * DAY_MS may be a big int: computed once per bolus, not per stroke.
        self.flow.set(vol_nl * DAY_MS // duration_ms)

    def run(self, secs):
        if not self.active:
            return 0
        if secs >= self.left_s:
            inc = self.vol - self.due  # the last second tops up to the exact volume
            self.clear()
            return inc
        inc = self.flow.run(secs)
        self.left_s -= secs
        self.due += inc
        return inc


class Schedule:
    def __init__(self, stroke_nl):
        self.stroke_nl = stroke_nl
        self.program = None
        self.basal = Flow()
        self.boluses = (Bolus(BOLUS), Bolus(PATIENT), Bolus(PRIME))
        self.owed = [0, 0, 0, 0, 0]
        self.ms_carry = 0
        # forfeited volume as whole strokes plus a remainder: a plain nL total
        # would pass 2**30 within months of stops at a fast rate
        self.forfeited_strokes = 0
        self.forfeited_rem = 0
        self.bridge_left_nl = 0    # old-strength volume still to push out
        self.bridge_rate = 0
        self.holding = False       # the wall clock went back: the day's schedule
        #                            waits at the program's lowest rate (timeofday.py)
        # the flex step the basal rate was last chosen from: its program's steps
        # and the seconds of the day it covers, [lo, hi)
        self._steps = None
        self._span_steps = None
        self._span_lo = self._span_hi = 0

    # --- what is in force -------------------------------------------------
    def set_program(self, program, tod_s):
        self.program = program
        self._steps = getattr(program, "steps", None)   # [(start s, nL/day)], sorted (program.py)
        self._select(tod_s)

    def start_bridge(self, volume_nl, old_rate_nl_day, tod_s):
        self.bridge_left_nl = volume_nl
        self.bridge_rate = old_rate_nl_day
        self._select(tod_s)

    def bridging(self):
        return self.bridge_left_nl > 0

    def _select(self, tod_s):
        if self.bridge_left_nl > 0:
            self.basal.set(self.bridge_rate)
            self._span_steps = None
        elif self.program is None:
            self.basal.set(0)
            self._span_steps = None
        elif self.holding:
            self.basal.set(self.program.min_rate)
            self._span_steps = None
        else:
            # the step in force is looked up when the day has left it (or the
            # program changed), not at every wake-up
            st = self._steps
            if st is None:
                self.basal.set(self.program.rate_at(tod_s))
            elif st is not self._span_steps or tod_s < self._span_lo or tod_s >= self._span_hi:
                lo, hi = 0, DAY_S
                for start, _ in st:
                    if start <= tod_s:
                        lo = start
                    else:
                        hi = start
                        break
                self._span_steps, self._span_lo, self._span_hi = st, lo, hi
                self.basal.set(self.program.rate_at(tod_s))

    def bolus(self, kind):
        return self.boluses[kind - 1]

    # --- time passes --------------------------------------------------------
    def advance(self, dt_ms, tod_s, running):
        """Account dt_ms of pump time at the rates chosen at the last decision,
        then choose the rates for the local time of day now."""
        total = self.ms_carry + dt_ms
        secs = total // 1000
        self.ms_carry = total % 1000
        while secs > 0:
            n = secs if secs < _CHUNK_S else _CHUNK_S
            self._run(n, running)
            secs -= n
        self._select(tod_s)

    def _run(self, secs, running):
        basal_kind = BRIDGE if self.bridge_left_nl > 0 else BASAL
        inc = self.basal.run(secs)
        if running:
            self.owed[basal_kind] += inc
        else:
            self._forfeit(inc)
        for b in self.boluses:
            if not b.active:
                continue          # (b.run would add nothing)
            inc = b.run(secs)
            if running:
                self.owed[b.kind] += inc
            else:
                self._forfeit(inc)

    def _forfeit(self, nl):
        rem = self.forfeited_rem + nl
        if rem >= self.stroke_nl:
            self.forfeited_strokes += rem // self.stroke_nl
            rem = rem % self.stroke_nl
        self.forfeited_rem = rem

    def forfeited_nl(self):
        """Total volume given up so far (for reports; may be a big int)."""
        return self.forfeited_strokes * self.stroke_nl + self.forfeited_rem

    def forfeit(self):
        """The pump stopped: what was owed is given up, not carried over."""
        for k in range(5):
            self._forfeit(self.owed[k])
            self.owed[k] = 0
        self.basal.frac = 0
        # a bolus keeps its fraction: it is the bolus's exact position in its
        # volume, and its last second tops up to the volume minus all it has
        # produced (owed or forfeited); clearing it would be made up at the end

    # --- strokes ------------------------------------------------------------
    def owed_total(self):
        o = self.owed
        return o[0] + o[1] + o[2] + o[3] + o[4]

    def take(self):
        """Take one stroke from what is owed; return the kind it is counted as
        (the source owed most), borrowing the rest from the other sources."""
        o = self.owed
        kind = 0
        for k in range(1, 5):
            if o[k] > o[kind]:
                kind = k
        o[kind] -= self.stroke_nl
        k = 0
        while o[kind] < 0 and k < 5:
            if k != kind and o[k] > 0:
                m = o[k] if o[k] < -o[kind] else -o[kind]
                o[k] -= m
                o[kind] += m
            k += 1
        if kind == BRIDGE:
            self.bridge_left_nl -= self.stroke_nl
            if self.bridge_left_nl < 0:
                self.bridge_left_nl = 0
        return kind

    def give_back(self, kind):
        """A stroke stalled: it is still owed and may be retried."""
        self.owed[kind] += self.stroke_nl
        if kind == BRIDGE:
            self.bridge_left_nl += self.stroke_nl

    def refuse(self):
        """The governor refused a stroke: forfeit it rather than save it up."""
        need = self.stroke_nl
        for k in range(5):
            m = self.owed[k] if self.owed[k] < need else need
            if m > 0:
                self.owed[k] -= m
                need -= m
        self._forfeit(self.stroke_nl - need)

    def cancel_boluses(self):
        for b in self.boluses:
            b.clear()

    # --- when to wake -------------------------------------------------------
    def _gain(self, secs):
        g = self.basal.gain(secs)
        for b in self.boluses:
            if b.active:
                g += b.flow.gain(secs)
        return g

    def _secs_until(self, need, rate):
        """Fewest whole seconds until the flows add need nL (at most an hour, and
        never past a bolus end, which is a wake-up of its own). Each flow rounds
        down on its own, so the combined rate only bounds the answer: search
        between the bound for exact sums and the bound with every flow a nL short."""
        frac = self.basal.frac
        flows = 1
        cap = 3600
        for b in self.boluses:
            if b.active:
                frac += b.flow.frac
                flows += 1
                if b.left_s < cap:
                    cap = b.left_s
        units = need * DAY_S - frac
        lo = 1 if units <= 0 else -((-units) // rate)
        if flows == 1 or lo >= cap:
            return lo
        hi = -((-((need + flows) * DAY_S - frac)) // rate)
        if hi > cap:
            hi = cap
        if self._gain(hi) < need:
            return hi
        while lo < hi:
            mid = (lo + hi) // 2
            if self._gain(mid) >= need:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def rate_total(self):
        r = self.basal.rate
        for b in self.boluses:
            if b.active:
                r += b.flow.rate
        return r

    def ms_until_due(self, tod_s):
        """ms until one stroke is owed, or until a rate changes (step boundary,
        bolus end), whichever is first; None when nothing will ever be owed."""
        need = self.stroke_nl - self.owed_total()
        if need <= 0:
            return 0
        best = None
        rate = self.rate_total()
        if rate > 0:
            best = self._secs_until(need, rate)
        for b in self.boluses:
            if b.active and (best is None or b.left_s < best):
                best = b.left_s
        if self.program is not None and self.bridge_left_nl == 0 and not self.holding:
            nb = self.program.next_boundary_s(tod_s)
            if nb is not None and (best is None or nb < best):
                best = nb
        if best is None:
            return None
        if best < 1:
            best = 1
        if best > 3600:
            best = 3600
        return best * 1000 - self.ms_carry
