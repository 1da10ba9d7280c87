# The student lab's engine: one World (the unchanged firmware core on the
# emulator's hardware and patient models) driven by the lab web page.
#
# The page (lab/index.html, lab/lab.js) runs this module in the MicroPython
# WebAssembly build; the tests run it in CPython and in the MicroPython unix
# port as well. JavaScript only draws and forwards input: it steps time with
# step(ms), sends the buttons' actions through act(do, args) -- the same
# engine actions a scenario's [[events]] use (emulator/actions.py), so the
# pump's own read-back or refusal comes back verbatim -- and reads what to
# draw from view(). Every call returns a JSON string; numbers may come as
# strings (the JavaScript bridge passes whole numbers as 32-bit ints).
#
# Educational, non-medical: the patient model says nothing about any person.
import json

from pump import alarms as A
from pump import eventlog as E

from emulator.actions import apply
from emulator.engine import World
from emulator.events import alarm_summary
from emulator.expect import evaluate
from emulator.scheduled import Scheduled, rate_table
from emulator.patient import Assessor, tissue_flag
from emulator.preset import ALARM_NAMES, Event, ScenarioError, action_args, fmt_time, from_plain

DAY = 86400000
PENDING_MS = 600000        # a read-back waits for its confirmation 10 min of pump time (as the link)
MAX_EVENT_ROWS = 400       # rows of the event log sent at once (the page keeps the newest)
SCHED_KINDS = (E.BOLUS, E.PRIME, E.BRIDGE)


def _civil(days):
    """Days since 1970-01-01 -> (year, month, day) (proleptic Gregorian)."""
    z = days + 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def wall_text(wall_s):
    """The pump's wall clock (local seconds since 2000-01-01) as text."""
    days, s = divmod(wall_s, 86400)
    y, m, d = _civil(days + 10957)
    return "%04d-%02d-%02d %02d:%02d:%02d" % (y, m, d, s // 3600, s % 3600 // 60, s % 60)


class Lab:
    def __init__(self, plain, profile, days=None, seed=None):
        """plain: a scenario as scenario.to_plain() made it (a dict); profile:
        the board profile (a dict); days: cut the run to this many days."""
        sc = from_plain(plain)
        if days:
            end = int(days * DAY)
            if 0 < end < sc.duration_ms:
                sc.duration_ms = end
                sc.events = [e for e in sc.events if e.t_ms <= end]
        self.sc = sc
        self.w = World(sc, seed=seed, profile=profile)
        self.w.begin()
        self.finished = False
        self.assessor = Assessor(sc.patient)
        # (t, delivered nL, scheduled nL, level, low line, high line, delivered pg, programmed µg/day):
        # pg of drug = nL x µg/mL at the drug's real strength (1 µg/mL is 1 pg/nL), so a
        # wrong concentration shows in the dose though the volume is right
        self.points = []
        self._ns = 0               # samples taken into points
        self._ti = 0               # trace rows added up
        self._delivered = 0
        self._delivered_pg = 0
        self._pi = 0               # programs passed (for the daily dose in force at a sample)
        self._dose = 0
        self._ri = 0               # raw events scanned
        self._n_sched = 0          # bolus, prime and bridge records seen
        self._sched = None
        self._sched_key = None
        self._alarms = []
        self._alarms_n = -1
        self._tissue_n = -1
        self._tissue_flag = None
        self._pending = None       # (program action args, pump time read back) waiting for confirm
        self._collect()

    @classmethod
    def from_json(cls, preset_text, profile_text, days=0, seed=None):
        return cls(json.loads(preset_text), json.loads(profile_text), days or None, seed)

    # --- time -------------------------------------------------------------------
    def now(self):
        return self.w.clock.now

    def status(self, more=False):
        return json.dumps({"t_ms": self.w.clock.now, "finished": self.finished, "more": more})

    def step(self, ms):
        """Let ms of virtual time pass (never past the end). -> status() JSON
        (the page then asks view() for what changed)."""
        self._advance(self.w.clock.now + int(ms))
        return self.status()

    def run_to(self, t_ms):
        self._advance(int(t_ms))
        return self.status()

    def _advance(self, target):
        w = self.w
        end = self.sc.duration_ms
        if target > end:
            target = end
        if target > w.clock.now:
            w.advance_to(target)
        self._collect()
        if w.clock.now >= end and not self.finished:
            w.finish()
            self.finished = True
            self._collect()

    def next_event(self, max_steps=20000):
        """Run until something is logged (by the pump, the clinic or the world)
        or the end. -> status() JSON, with more = true if it gave up after
        max_steps wake-ups (call again)."""
        w = self.w
        n0 = len(w.events)
        end = self.sc.duration_ms
        for _ in range(int(max_steps)):
            t = w.next_time()
            if t > end or w.clock.now >= end:
                self._advance(end)
                return self.status()
            w.advance_to(t)
            if len(w.events) > n0:
                self._collect()
                return self.status()
        self._collect()
        return self.status(True)

    def extend(self, days):
        """Carry on past the scenario's end (free play after a preset)."""
        self.sc.duration_ms += int(float(days) * DAY)
        self.finished = False
        return self.status()

    # --- the page's buttons -------------------------------------------------------
    def act(self, do, args_text="{}"):
        """One action now, checked as the same event in a scenario file would be,
        then applied by the engine. -> JSON {ok, text, readback, rows}."""
        w = self.w
        try:
            args = json.loads(args_text) if args_text else {}
            if not isinstance(args, dict):
                raise ScenarioError("lab", do, "the action's keys must be a table")
            args = action_args("lab", "", do, args)
        except ScenarioError as e:
            return json.dumps({"ok": False, "text": "%s: %s" % (e.key, e.reason), "readback": None, "rows": []})
        except ValueError as e:
            return json.dumps({"ok": False, "text": "not JSON: %s" % e, "readback": None, "rows": []})
        n_ev, n_prog = len(w.events), len(w.programs)
        apply(w, Event(w.clock.now, do, args, -1))
        rows = [list(r) for r in w.events[n_ev:]]
        ok, text = True, "done"
        for r in rows:
            if r[1] == "clinic" and r[2] == "command":
                ok, text = r[4] == "ok", r[4]
                break
        else:
            if rows and rows[0][1] == "world":
                text = ("injected, the pump is not told (%s)" if rows[0][2] == "fault" else "repaired (%s)") % rows[0][4]
        rb = w.programs[-1][2] if len(w.programs) > n_prog else None
        self._collect()
        return json.dumps({"ok": ok, "text": text, "readback": rb, "rows": rows})

    # --- programming in two steps, as over the programmer link ----------------------
    def check_program(self, args_text="{}"):
        """Step one: the pump checks the program and reads back its own numbers
        (µg and nL); nothing changes until confirm_program(), within 10 min of
        pump time, as the link's PROGRAM and CONFIRM (firmware/pump/link.py).
        -> JSON {ok, text, readback}."""
        w = self.w
        self._pending = None
        try:
            args = json.loads(args_text) if args_text else {}
            if not isinstance(args, dict):
                raise ScenarioError("lab", "program", "the action's keys must be a table")
            args = action_args("lab", "", "program", args)
        except ScenarioError as e:
            return json.dumps({"ok": False, "text": "%s: %s" % (e.key, e.reason), "readback": None})
        except ValueError as e:
            return json.dumps({"ok": False, "text": "not JSON: %s" % e, "readback": None})
        res, err = w.command("program_check", w.pump.check_program, dict(args["program"]))
        self._collect()
        if err is not None:
            return json.dumps({"ok": False, "text": err, "readback": None})
        self._pending = (args, w.clock.now)
        return json.dumps({"ok": True, "text": "read back: confirm to put it in force, or cancel",
                           "readback": res.readback()})

    def confirm_program(self):
        """Step two: put the program read back in force (the pump checks it
        again, at this moment). -> JSON as act()."""
        pend = self._pending
        self._pending = None
        if pend is None:
            return json.dumps({"ok": False, "text": "no program is waiting for confirmation (send it again)",
                               "readback": None, "rows": []})
        if self.w.clock.now - pend[1] >= PENDING_MS:
            return json.dumps({"ok": False, "text": "the read-back is more than 10 min of pump time old "
                               "(send it again)", "readback": None, "rows": []})
        return self.act("program", json.dumps(pend[0]))

    def cancel_program(self):
        """Drop the program read back: the pump keeps the one in force."""
        had = self._pending is not None
        self._pending = None
        return json.dumps({"ok": True, "text": "cancelled; the pump keeps its program" if had
                           else "no program was waiting", "readback": None, "rows": []})

    # --- what the page draws -----------------------------------------------------
    def info(self):
        """What does not change: the scenario, the alarm names, the profile's limits."""
        sc = self.sc
        return json.dumps({"name": sc.name, "title": sc.title, "description": sc.description,
                           "seed": self.w.seed, "end_ms": sc.duration_ms,
                           "alarm_names": sorted(ALARM_NAMES, key=lambda n: ALARM_NAMES[n]),
                           "critical": [n for n in ALARM_NAMES if A.CRITICAL[ALARM_NAMES[n]]],
                           "stroke_nl": self.w.profile["stroke_nl"],
                           "expect": sc.expect})

    def _scheduled(self):
        w = self.w
        key = (len(w.programs), len(w.walls), self._n_sched)
        if key != self._sched_key:
            self._sched = Scheduled(w.programs, w.walls, w.raw_events)
            self._sched_key = key
        return self._sched

    def _collect(self):
        w = self.w
        raw = w.raw_events
        for i in range(self._ri, len(raw)):
            if raw[i][1] in SCHED_KINDS:
                self._n_sched += 1
        self._ri = len(raw)
        samples = w.samples
        if self._ns >= len(samples):
            return
        sched = self._scheduled()
        trace = w.motor.trace
        ti, delivered, pg = self._ti, self._delivered, self._delivered_pg
        progs = w.programs
        for i in range(self._ns, len(samples)):
            t, level, ss = samples[i]
            while ti < len(trace) and trace[ti][0] <= t:
                delivered += trace[ti][1]
                pg += trace[ti][1] * trace[ti][3]
                ti += 1
            while self._pi < len(progs) and progs[self._pi][0] <= t:
                tp, prog, rb = progs[self._pi]
                self._dose = 0 if prog.get("mode") == "stopped" else (rb.get("daily_dose_ug") or 0)
                self._pi += 1
            self.assessor.feed(t, level, ss)
            lo = hi = None
            if ss is not None and ss > 0:
                lo, hi = self.assessor.band(ss)
            self.points.append((t, delivered, int(sched.at(t)), level, lo, hi, pg, self._dose))
        self._ti, self._delivered, self._delivered_pg, self._ns = ti, delivered, pg, len(samples)

    def alarms(self):
        if self._alarms_n != len(self.w.raw_events):
            self._alarms = alarm_summary(self.w.raw_events)
            self._alarms_n = len(self.w.raw_events)
        return self._alarms

    def active_alarms(self):
        """The pump's active alarms, from its interrogation (status)."""
        try:
            st = self.w.pump.status()
            names, resolved = st["alarms"], st.get("alarms_resolved", [])
        except Exception:      # a pump without status(): what its log says is still raised
            names = [a["alarm"] for a in self.alarms()
                     if not a["cleared_ms"] or a["cleared_ms"][-1] < a["first_raised_ms"]]
            resolved = []
        out = []
        for n in names:
            code = 0
            for c in range(1, A.N_ALARMS):
                if A.name(c) == n:
                    code = c
            # a latched alarm whose cause is gone sounds the single tone until acknowledged
            out.append({"alarm": n, "critical": bool(A.CRITICAL[code]) and n not in resolved if code else False,
                        "resolved": n in resolved})
        return out

    def flags(self):
        w = self.w
        if self._tissue_n != len(w.patient.tissue):
            self._tissue_flag = tissue_flag(w.patient.tissue, self.sc.patient)
            self._tissue_n = len(w.patient.tissue)
        fl = list(self.assessor.flags)
        if self._tissue_flag is not None:
            fl.append(self._tissue_flag)
        fl.sort(key=lambda f: f["t_ms"])
        return fl

    def delivered(self):
        trace = self.w.motor.trace
        for i in range(self._ti, len(trace)):
            self._delivered += trace[i][1]
            self._delivered_pg += trace[i][1] * trace[i][3]
        self._ti = len(trace)
        return self._delivered

    def pump_panel(self):
        w = self.w
        f = w.pump.facts()
        prog = w.programs[-1][1] if w.programs else None
        rb = w.programs[-1][2] if w.programs else None
        wall = w.clock.wall_s()
        out = {"state": f["state"], "reservoir_nl": f["reservoir_nl"], "reservoir_real_nl": w.reservoir.volume_nl,
               "real_concentration_ug_ml": w.reservoir.conc, "daily_dose_ug": f["daily_dose_ug"],
               "battery_permille": w.battery.level(), "eri_permille": w.profile["battery_eri_permille"],
               "eos_permille": w.profile["battery_eos_permille"],
               "capacity_nl": w.profile["reservoir_nl"], "wall": wall_text(wall),
               "mode": prog["mode"] if prog else None, "program": prog, "readback": rb,
               "rate_ug_day": 0, "days_left": None, "catheter": w.catheter.path,
               "catheter_migrated": w.catheter.migrated, "motor_jammed": w.motor.jammed}
        if prog is not None:
            conc = prog["concentration_ug_ml"]
            if f["state"] in ("running", "safe_mode") and prog["mode"] != "stopped":
                tod = wall % 86400
                r = rate_table(prog)[-1][1]
                for start, v in rate_table(prog):
                    if start <= tod:
                        r = v
                out["rate_ug_day"] = r * conc // 1000000
            daily_nl = rb.get("daily_nl") or 0
            if daily_nl > 0 and f["daily_dose_ug"] > 0:
                out["days_left"] = round(f["reservoir_nl"] / daily_nl, 1)
        return out

    def view(self, ev_from=0, pt_from=0, snd_from=0):
        """Everything the page draws; lists only from the cursors given (the
        page keeps what it already has)."""
        w = self.w
        events = w.events
        ev_from = max(int(ev_from), len(events) - MAX_EVENT_ROWS)
        pt_from, snd_from = int(pt_from), int(snd_from)
        sounds = w.annunciator.sounds
        return json.dumps({
            "t_ms": w.clock.now, "t_text": fmt_time(w.clock.now), "end_ms": self.sc.duration_ms,
            "finished": self.finished, "name": self.sc.name, "title": self.sc.title,
            "pump": self.pump_panel(), "active": self.active_alarms(), "alarms": self.alarms(),
            "flags": self.flags(), "delivered_nl": self.delivered(), "delivered_strokes": len(w.motor.trace),
            "events_n": len(events), "events_from": ev_from,
            "events": [list(r) for r in events[ev_from:]],
            "points_n": len(self.points), "points": self.points[pt_from:],
            "sounds_n": len(sounds), "sounds": [s[1] for s in sounds[snd_from:]][-4:],
            "next_event_ms": self.sc.events[w._ei].t_ms if w._ei < len(self.sc.events) else None,
        })

    def result(self, checks=True):
        """The run's figures, as report.json has them (the test compares the two),
        with the invariant checks and the scenario's expectations."""
        w = self.w
        flags = self.flags()
        out = {"t_ms": w.clock.now, "finished": self.finished, "delivered_nl": self.delivered(),
               "delivered_strokes": len(w.motor.trace), "final_state": w.pump.facts()["state"],
               "alarms": self.alarms(), "flags": [[f["flag"], f["t_ms"]] for f in flags],
               "in_band_pct": self.assessor.in_band_pct(),
               "expectations": evaluate(w, flags) if self.finished else [],
               "resets": w.resets, "stalled_strokes": w.motor.stalls, "storage_writes": w.store.writes,
               "checks": []}
        if checks and self.finished:
            from emulator.checks import run_checks
            res, acct = run_checks(w)
            out["checks"] = [{"id": c["id"], "name": c["name"], "ok": c["ok"], "status": c["status"],
                              "detail": c["detail"], "covered": c["covered"]} for c in res]
            out["scheduled_nl"] = acct["scheduled_nl"] if acct else 0
            out["accounting"] = acct
        return json.dumps(out)
