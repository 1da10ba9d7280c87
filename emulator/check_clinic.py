# I8: the clinic's orders, as the pump carried them out. Held against what
# the clinic asked and the pump accepted (the world's record of commands),
# never against the pump's log alone: every bolus and prime the pump logged
# was asked for, at the size asked; every accepted one is on its record; a
# patient bolus keeps its program's lockout and count in 24 h; and a stop the
# pump calls a suspension was ordered by the clinic.
from pump import eventlog as E
from pump.schedule import PATIENT

from emulator.verdict import result, OK, FAIL, NOT_CHECKED

MATCH_MS = 1000      # a grant is logged in the command that asked for it


def _grants(v):
    """-> (logged grants nobody asked for or of another size, asked grants not logged)."""
    logged = [(t, kind, code, a, b) for t, kind, code, a, b in v.raw_events if kind in (E.BOLUS, E.PRIME)]
    unasked = []
    free = list(v.asked)
    for t, kind, code, nl, secs in logged:
        hit = None
        for i, (ta, ka, ca, nla, ms) in enumerate(free):
            if ka == kind and abs(t - ta) <= MATCH_MS and (kind == E.PRIME or ca == code):
                hit = i
                break
        if hit is None:
            unasked.append((t, kind, code, nl, "nobody asked for it"))
            continue
        ta, ka, ca, nla, ms = free.pop(hit)
        if nl != nla or secs * 1000 != ms:
            unasked.append((t, kind, code, nl, "asked %d nL over %d s" % (nla, ms // 1000)))
    return unasked, free


def _what(kind, code):
    return "prime" if kind == E.PRIME else ("patient bolus" if code == PATIENT else "clinician bolus")


def check_asked(v):
    name = "authority: therapy changed only as the clinic ordered (boluses as asked, suspensions as ordered)"
    if v.clinic.from_log:
        return result("I8", name, NOT_CHECKED, "commands came over the programmer link: the pump's own "
                      "log is the only record of them", "0 commands")
    n_cmd = len(v.clinic.commands)
    unasked, unlogged = _grants(v)
    rules = [(v.pt(t), why) for t, why in v.clinic.patient_bolus_rules()]
    orders = [(t0, t1) for t0, t1 in v.suspensions]
    self_suspended = []
    for t0, t1, why in v.stops:
        if why == "suspended" and t1 > t0 and not any(s0 - MATCH_MS <= t0 <= s1 for s0, s1 in orders):
            self_suspended.append(t0)
    covered = "%d commands, %d boluses and primes asked, %d suspensions ordered" % (
        n_cmd, len(v.asked), len(orders))
    more = {"asked": len(v.asked), "unasked": len(unasked), "unlogged": len(unlogged),
            "rule_breaks": len(rules), "unordered_suspensions": len(self_suspended)}
    bad = None
    if unasked:
        t, kind, code, nl, why = unasked[0]
        bad = "the %s of %d nL logged at %d ms: %s" % (_what(kind, code), nl, t, why)
    elif unlogged:
        t, kind, code, nl, ms = unlogged[0]
        bad = "the %s of %d nL accepted at %d ms is not on the pump's record" % (_what(kind, code), nl, t)
    elif rules:
        bad = "a patient bolus at %d ms: %s" % rules[0]
    elif self_suspended:
        bad = "the pump suspended itself at %d ms: no suspension was ordered" % self_suspended[0]
    if bad:
        return result("I8", name, FAIL, bad, covered, **more)
    if not v.asked and not orders and not any(s[2] == "suspended" for s in v.stops):
        return result("I8", name, NOT_CHECKED, "no bolus, prime or suspension was asked: nothing to judge",
                      covered, **more)
    return result("I8", name, OK, "%d boluses and primes as asked, %d suspensions as ordered"
                  % (len(v.asked), len(orders)), covered, **more)
