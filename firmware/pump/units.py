# Units of the whole pump: volume in integer nanolitres (nL), drug in integer
# micrograms (ug), concentration in integer ug/mL, monotonic time in integer ms,
# wall time in integer seconds since 2000-01-01 (the MicroPython epoch).
# 1 ug/mL is exactly 1 pg/nL, so ug -> nL is ug * 1_000_000 // conc.
from pump.compat import const

SECOND_MS = const(1000)
MINUTE_MS = const(60000)
HOUR_MS = const(3600000)
DAY_MS = const(86400000)
DAY_S = const(86400)
DAY_MIN = const(1440)

# Concentrations the model accepts. The real strengths (50, 500, 1000, 2000
# ug/mL, Lioresal Intrathecal and Gablofen labels) lie inside this range.
MIN_CONC_UG_ML = const(10)
MAX_CONC_UG_ML = const(3000)


def ug_to_nl_floor(ug, conc_ug_ml):
    """Drug mass -> volume, rounded down: used for maxima (the safe side)."""
    return (ug * 1000000) // conc_ug_ml


def ug_to_nl_ceil(ug, conc_ug_ml):
    return -((-ug * 1000000) // conc_ug_ml)


def nl_to_ug_floor(nl, conc_ug_ml):
    return (nl * conc_ug_ml) // 1000000
