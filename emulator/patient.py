# An educational, NON-CLINICAL model of baclofen in the spinal fluid.
#
# One compartment: drug that actually reaches the intrathecal space raises the
# amount A; it is cleared with first-order elimination, A(t) = A0 e^(-k t),
# k = ln 2 / half-life. The level is A / V with V = clearance x half-life / ln 2.
# Defaults from the Lioresal Intrathecal label's lumbar bolus study: half-life
# about 1.5 h, clearance about 30 mL/h (between patients 0.9-5 h and 13-80 mL/h).
# At a steady infusion of R ug/h the level settles at R / clearance.
#
# Drug that goes into the tissue instead (a pocket fill, a disconnection or a
# leak, a migrated tip) never reaches the spinal fluid; the model adds it up as
# a depot, because a large amount there is a systemic overdose risk.
#
# It is a teaching aid that shows *when* delivery went wrong. It is not a
# pharmacological model of any person and says nothing about real doses.
import math

PARAMS = {
    "half_life_h": 1.5,              # CSF elimination half-life (label)
    "clearance_ml_h": 30,            # CSF clearance (label)
    "withdrawal_fraction_pct": 50,   # below this share of the programmed steady state ...
    "withdrawal_after_h": 4,         # ... for this long: possible withdrawal
    "overdose_multiple_pct": 300,    # above this share of the programmed steady state ...
    "overdose_after_min": 30,        # ... for this long: possible overdose
    "tissue_overdose_ug": 2000,      # drug reaching the tissue within 24 h: possible overdose
    "response_ng_ml": 150,           # screening: the level this patient responds to ...
    "response_check_h": 4,           # ... still there this long after a lumbar bolus
    "sample_min": 5,                 # the level is sampled this often for flags and plots
}
HOUR_MS = 3600000


class PatientModel:
    def __init__(self, half_life_h=1.5, clearance_ml_h=30, **_):
        self.k_per_ms = math.log(2) / (half_life_h * HOUR_MS)
        self.clearance_ml_h = clearance_ml_h
        self.volume_ml = clearance_ml_h * half_life_h / math.log(2)
        self.amount_ug = 0.0
        self._t = 0
        self.to_csf_ug = 0.0
        self.to_tissue_ug = 0.0
        self.tissue = []          # (t_ms, ug) of drug that reached the tissue

    def _settle(self, t):
        if t > self._t:
            self.amount_ug *= math.exp(-self.k_per_ms * (t - self._t))
            self._t = t

    def dose(self, t, ug, where="csf"):
        if where == "csf":
            self._settle(t)
            self.amount_ug += ug
            self.to_csf_ug += ug
        else:
            self.to_tissue_ug += ug
            if self.tissue and t - self.tissue[-1][0] < 60000:
                self.tissue[-1] = (self.tissue[-1][0], self.tissue[-1][1] + ug)
            else:
                self.tissue.append((t, ug))

    def level_ng_ml(self, t):
        self._settle(t)
        return self.amount_ug / self.volume_ml * 1000.0

    def steady_state_ng_ml(self, daily_ug):
        return daily_ug / 24.0 / self.clearance_ml_h * 1000.0


class Assessor:
    """The level flags, one sample at a time (assess() feeds it a whole run;
    the lab page feeds it as the run goes). feed(t_ms, ng/mL, steady-state
    ng/mL or None when no dose is programmed)."""

    def __init__(self, params):
        self.low_frac = params["withdrawal_fraction_pct"] / 100.0
        self.high_mult = params["overdose_multiple_pct"] / 100.0
        self.low_need = params["withdrawal_after_h"] * HOUR_MS
        self.high_need = params["overdose_after_min"] * 60000
        self.flags = []
        self.armed = False          # withdrawal counts once the level has been in its band
        self.low_since = self.high_since = None
        self.low_flagged = self.high_flagged = False
        self.in_band = 0
        self.banded = 0
        self.prev_ss = None

    def band(self, ss):
        """-> (low line, high line) in ng/mL around a steady state."""
        return ss * self.low_frac, ss * self.high_mult

    def feed(self, t, level, ss):
        if ss is None or ss <= 0:
            self.armed = False
            self.low_since = self.high_since = None
            self.prev_ss = ss
            return
        if self.prev_ss is not None and ss > self.prev_ss:
            self.armed = False      # a higher dose takes time to build up: not withdrawal
        self.prev_ss = ss
        self.banded += 1
        lo, hi = ss * self.low_frac, ss * self.high_mult
        if lo <= level <= hi:
            self.in_band += 1
        if level >= lo:
            self.armed = True
            self.low_since = None
            self.low_flagged = False
        elif self.armed:
            if self.low_since is None:
                self.low_since = t
            if not self.low_flagged and t - self.low_since >= self.low_need:
                self.low_flagged = True
                self.flags.append({"flag": "possible_withdrawal", "t_ms": t, "since_ms": self.low_since,
                                   "level_ng_ml": round(level, 1), "band_low_ng_ml": round(lo, 1)})
        if level > hi:
            if self.high_since is None:
                self.high_since = t
            if not self.high_flagged and t - self.high_since >= self.high_need:
                self.high_flagged = True
                self.flags.append({"flag": "possible_overdose", "t_ms": t, "since_ms": self.high_since,
                                   "level_ng_ml": round(level, 1), "band_high_ng_ml": round(hi, 1)})
        else:
            self.high_since = None
            self.high_flagged = False

    def in_band_pct(self):
        return round(100.0 * self.in_band / self.banded, 1) if self.banded else None


def tissue_flag(tissue, params):
    """Drug in the tissue: a large amount within 24 h is a systemic overdose
    risk. tissue: [(t_ms, ug)]. -> the flag dict, or None."""
    lim = params["tissue_overdose_ug"]
    for i, (t, ug) in enumerate(tissue):
        total = sum(u for tt, u in tissue[i:] if tt < t + 86400000)
        if total >= lim:
            return {"flag": "possible_overdose", "t_ms": t, "since_ms": t, "tissue_ug_24h": round(total, 1),
                    "why": "drug reached the tissue instead of the spinal fluid"}
    return None


def assess(samples, params, lumbar, tissue, sample_ms):
    """Flags from the sampled level. samples: [(t_ms, ng/mL, steady-state ng/mL
    or None when no dose is programmed)]. -> dict for report.json."""
    ax = Assessor(params)
    for t, level, ss in samples:
        ax.feed(t, level, ss)
    flags = list(ax.flags)
    tf = tissue_flag(tissue, params)
    if tf is not None:
        flags.append(tf)
    flags.sort(key=lambda f: f["t_ms"])
    screening = []
    check = params["response_check_h"] * HOUR_MS
    for t0, dose in lumbar:
        at = [lv for t, lv, _ in samples if t0 + check <= t < t0 + check + sample_ms]
        peak = max([lv for t, lv, _ in samples if t0 <= t < t0 + check] or [0])
        above = sum(sample_ms for t, lv, _ in samples if t0 <= t < t0 + 86400000 and lv >= params["response_ng_ml"])
        lvl = at[0] if at else None
        screening.append({"t_ms": t0, "dose_ug": dose, "peak_ng_ml": round(peak, 1),
                          "level_at_check_ng_ml": None if lvl is None else round(lvl, 1),
                          "responded": lvl is not None and lvl >= params["response_ng_ml"],
                          "effect_h": round(above / HOUR_MS, 2)})
    return {"flags": flags, "in_band_pct": ax.in_band_pct(), "screening": screening}
