# What the clinic asked of the pump and what it answered, for the judge: the
# boluses it asked for (and how much each must be), the suspensions, the
# refills and the strength it was told. The judge holds the pump's own log
# against these, so a pump that logs a grant nobody asked for, a suspension
# nobody ordered or a strength it was not told is caught, not believed.
#
# In a served run (pump-emu serve) commands also come over the programmer
# link, which the clinic record does not see: there the judge falls back on
# the pump's log for them, and says so (`from_log`).
from pump import eventlog as E
from pump.schedule import BOLUS, PATIENT


def _prog_at(programs, t):
    """The program (raw dict) the clinic had put in force by t, or None."""
    cur = None
    for tp, prog, _ in programs:
        if tp <= t:
            cur = prog
    return cur


def dead_volume(programs, t, profile):
    """The catheter's and the pump's tubing volume at t (nL): what a prime
    fills and a bridge pushes out."""
    cath = profile.get("catheter_nl", 0)
    for tp, prog, _ in programs:
        if tp <= t and "catheter_cm" in prog:
            cath = prog["catheter_cm"] * prog.get("catheter_nl_per_cm", 2200)
    return cath + profile.get("pump_tubing_nl", 0)


class Clinic:
    def __init__(self, w):
        self.from_log = bool(getattr(w, "link_commands", False))
        # a command a reset cut short whose effect the restarted pump holds
        # counts as answered (engine: took_effect)
        took = getattr(w, "took_effect", ())
        self.commands = [(t, n, args, None if i in took else err) for i, (t, n, args, err) in enumerate(w.commands)]
        self.programs = w.programs
        self.profile = w.profile

    def asked_boluses(self):
        """[(t, log kind, code, nL, ms)]: each bolus or prime the clinic asked
        for and the pump accepted, with what it must be: a clinician bolus
        dose_ug at the program's strength (rounded down, as the pump's
        maxima are), the program's patient bolus, a prime of the volume asked
        or the dead volume."""
        out = []
        for t, name, args, err in self.commands:
            if err is not None:
                continue
            prog = _prog_at(self.programs, t)
            if name == "bolus" and prog is not None:
                dose_ug, minutes = args
                out.append((t, E.BOLUS, BOLUS, dose_ug * 1000000 // prog["concentration_ug_ml"], minutes * 60000))
            elif name == "patient_bolus" and prog is not None and prog.get("patient_bolus"):
                pb = prog["patient_bolus"]
                out.append((t, E.BOLUS, PATIENT, pb["dose_ug"] * 1000000 // prog["concentration_ug_ml"],
                            pb["duration_min"] * 60000))
            elif name == "prime":
                minutes = args[0]
                nl = args[1] if len(args) > 1 else dead_volume(self.programs, t, self.profile)
                out.append((t, E.PRIME, 0, nl, minutes * 60000))
        return out

    def suspensions(self, end):
        """[(t0, t1)]: from each suspend the pump accepted to the next resume it accepted."""
        out = []
        t0 = None
        for t, name, args, err in self.commands:
            if err is not None:
                continue
            if name == "suspend" and t0 is None:
                t0 = t
            elif name == "resume" and t0 is not None:
                out.append((t0, t))
                t0 = None
        if t0 is not None:
            out.append((t0, end + 1))
        return out

    def refills(self, raw_events):
        """[(t, nL, told ug/mL)]: each refill the pump was told of, the start's
        fill included. A refill cut short by a reset counts if the pump logged
        it (it knew, then). In a served run: the refills the pump logged."""
        if self.from_log:     # refills came over the link too: the pump's log is the record
            return [(t, a, b) for t, kind, code, a, b in raw_events if kind == E.REFILL and code == 0]
        logged = set(t for t, kind, code, a, b in raw_events if kind == E.REFILL and code == 0)
        out = []
        for t, name, args, err in self.commands:
            if name == "refill" and (err is None or t in logged):
                out.append((t, args[0], args[1]))
        return out

    def strength_mismatches(self, raw_events, end):
        """[(t0, t1)]: from a refill told a strength the program in force was
        not written for, until a program for that strength: the pump must not
        stroke in between (it cannot dose a drug its program does not know)."""
        changes = [(t, 0, conc) for t, nl, conc in self.refills(raw_events)]
        changes += [(t, 1, prog["concentration_ug_ml"]) for t, prog, _ in self.programs]
        changes.sort()
        out = []
        drug = prog = None
        t0 = None
        for t, what, conc in changes:
            if what == 0:
                drug = conc
            else:
                prog = conc
            bad = drug is not None and prog is not None and drug != prog
            if bad and t0 is None:
                t0 = t
            elif not bad and t0 is not None:
                out.append((t0, t))
                t0 = None
        if t0 is not None:
            out.append((t0, end + 1))
        return out

    def patient_bolus_rules(self):
        """The patient boluses the pump granted against its program's lockout
        and count in 24 h. -> [(t, what was broken)]."""
        bad = []
        grants = []
        for t, name, args, err in self.commands:
            if name != "patient_bolus" or err is not None:
                continue
            prog = _prog_at(self.programs, t)
            pb = (prog or {}).get("patient_bolus")
            if not pb:
                bad.append((t, "granted with no patient bolus programmed"))
                continue
            if grants and t - grants[-1] < pb["lockout_min"] * 60000:
                bad.append((t, "granted %d min after the last, lockout %d min"
                            % ((t - grants[-1]) // 60000, pb["lockout_min"])))
            n = sum(1 for g in grants if g > t - 86400000)
            if n >= pb["max_per_day"]:
                bad.append((t, "the %d. in 24 h, at most %d" % (n + 1, pb["max_per_day"])))
            grants.append(t)
        return bad
