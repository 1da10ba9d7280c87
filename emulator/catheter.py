# The catheter from the pump to the intrathecal space, as plumbing.
#
# It holds a dead volume of fluid: what the pump pushes in at one end pushes the
# same volume out at the tip, first in first out, so after a change of strength
# the old drug still reaches the patient (why the firmware has a bridge bolus),
# and a new catheter delivers nothing until it is primed.
#
# Back-pressure at the pump's sensor: a base pressure, plus the volume held up
# behind an obstruction (the tubing's compliance) times a stiffness. Under a
# kink the held volume drains slowly through the narrowing; under a block it
# does not drain; when released it flows on to the tip (the pump does not add a
# post-occlusion bolus, but the plumbing delivers what it held). A disconnection
# or a leak loses pressure and sends the drug into the tissue. A migrated tip
# delivers into the tissue instead of the spinal fluid.
#
# The drain is exponential, computed in integers (decay() below), so the
# model gives the same pressures, to the nL, under CPython and MicroPython
# (the lab page): the pressure decides the pump's occlusion alarm.

PARAMS = {
    "base_mmhg": 20,          # sensor reading with an open, intact catheter
    "stiffness_mmhg_per_ul": 600,   # pressure per uL held behind an obstruction
    "open_drain_s": 5,        # time constant of the held volume with nothing in the way
    "kink_drain_s": 1200,     # ... through a kink of severity 1.0 (scaled by severity)
    "leak_mmhg": 1,           # sensor reading when disconnected or leaking badly
}

_FIX = 60                  # decay() works in fixed point with 60 fraction bits
_ONE = 1 << _FIX
_E_INV = 424136118829305344   # e**-1 * 2**60, rounded


def decay(nl, dt, tau):
    """floor(nl * e**(-dt/tau)) in integers, for nl, dt >= 0 and tau > 0
    (exact to about 1 part in 10**15; no float, so every runtime agrees)."""
    n, r = divmod(dt, tau)
    if n >= 44:                # e**-44 * 2**60 < 1
        return 0
    # e**(-r/tau), 0 <= r/tau < 1: the alternating Taylor series
    f = _ONE
    term = _ONE
    k = 1
    while term:
        term = term * r // (tau * k)
        f = f - term if k & 1 else f + term
        k += 1
    for _ in range(n):
        f = f * _E_INV >> _FIX
    return nl * f >> _FIX


OPEN = "open"
KINKED = "kinked"
BLOCKED = "blocked"
DISCONNECTED = "disconnected"

CSF = "csf"
TISSUE = "tissue"


class CatheterModel:
    def __init__(self, clock, dead_nl, primed_conc=0, base_mmhg=20, stiffness_mmhg_per_ul=600,
                 open_drain_s=5, kink_drain_s=1200, leak_mmhg=1, sink=None):
        self.clock = clock
        self.dead_nl = dead_nl
        # contents, tip end first: [nL, ug/mL] segments. 0 ug/mL is saline or CSF.
        self.contents = [[dead_nl, primed_conc]] if dead_nl > 0 else []
        self.base = base_mmhg
        self.stiff = stiffness_mmhg_per_ul
        self.open_drain_ms = open_drain_s * 1000
        self.kink_drain_ms = kink_drain_s * 1000
        self.leak_mmhg = leak_mmhg
        self.path = OPEN
        self.severity = 0          # kink severity, 0..100 %
        self.leak_pct = 0          # share of each stroke lost at a leak near the pump
        self.migrated = False
        self.held = []             # [nL, ug/mL] held up behind an obstruction, in order
        self.held_nl = 0
        self._t = 0
        self.sink = sink           # sink(t_ms, nl, ug, where): drug that left the catheter

    # --- the plumbing -----------------------------------------------------
    def _drain_ms(self):
        if self.path == BLOCKED:
            return None
        if self.path == KINKED:
            return max(self.open_drain_ms, self.kink_drain_ms * self.severity // 100)
        return self.open_drain_ms

    def _settle(self):
        """Let the held volume drain through whatever is in the way, to now."""
        now = self.clock.now
        dt = now - self._t
        self._t = now
        if self.held_nl <= 0 or dt <= 0:
            return
        tau = self._drain_ms()
        if tau is None:
            return
        keep = decay(self.held_nl, dt, tau)
        self._pass(self._take(self.held, self.held_nl - keep))
        self.held_nl = keep

    @staticmethod
    def _take(segs, nl):
        """Take nl from the front of a segment list. -> [[nL, conc], ...]"""
        out = []
        while nl > 0 and segs:
            s = segs[0]
            n = s[0] if s[0] <= nl else nl
            out.append([n, s[1]])
            s[0] -= n
            nl -= n
            if s[0] == 0:
                segs.pop(0)
        return out

    def _pass(self, segs):
        """Fluid enters the catheter at the pump end and as much leaves at the tip."""
        where = TISSUE if self.migrated else CSF
        for nl, conc in segs:
            if self.dead_nl > 0:
                self.contents.append([nl, conc])
                out = self._take(self.contents, nl)
            else:
                out = [[nl, conc]]
            for onl, oconc in out:
                self._emit(onl, oconc, where)

    def _emit(self, nl, conc, where):
        if self.sink is not None and nl > 0:
            self.sink(self.clock.now, nl, nl * conc / 1e6, where)

    def push(self, nl, conc):
        """A stroke puts nl of drug at conc into the catheter."""
        self._settle()
        if self.path == DISCONNECTED:
            self._emit(nl, conc, TISSUE)
            return
        if self.leak_pct:
            lost = nl * self.leak_pct // 100
            self._emit(lost, conc, TISSUE)
            nl -= lost
        if self.path == OPEN and self.held_nl == 0:
            self._pass([[nl, conc]])
            return
        self.held.append([nl, conc])
        self.held_nl += nl

    # --- the pressure sensor port ----------------------------------------
    def read(self):
        self._settle()
        if self.path == DISCONNECTED or self.leak_pct >= 50:
            return self.leak_mmhg
        return self.base + self.held_nl * self.stiff // 1000

    level = read

    # --- the world ----------------------------------------------------------
    def kink(self, severity_pct):
        self._settle()
        self.path = KINKED
        self.severity = severity_pct

    def block(self):
        self._settle()
        self.path = BLOCKED

    def release(self):
        """A kink or block clears (a disconnection needs a revision)."""
        self._settle()
        if self.path in (KINKED, BLOCKED):
            self.path = OPEN
            self.severity = 0

    def disconnect(self):
        self._settle()
        self.path = DISCONNECTED

    def leak(self, pct):
        self._settle()
        self.leak_pct = pct

    def repair(self):
        """A catheter revision: reconnected, no leak, tip back in place. The
        catheter keeps its contents (the same catheter, repositioned)."""
        self._settle()
        self.path = OPEN
        self.severity = 0
        self.leak_pct = 0
        self.migrated = False

    def migrate(self):
        self._settle()
        self.migrated = True

    def residual_drug_nl(self):
        return sum(s[0] for s in self.contents if s[1]) + self.held_nl
