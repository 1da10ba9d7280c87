"""pumpctl: program and interrogate a pump (a board or pump-emu serve) over its programmer link.

  pumpctl --port PORT status | interrogate
  pumpctl --port PORT program FILE [--yes]        FILE: a program table (TOML, see examples/)
  pumpctl --port PORT refill --volume-ml V --concentration C --residual-ml R
  pumpctl --port PORT bolus --dose-ug D --duration-min M     (clinician)
  pumpctl --port PORT bolus --patient                        (patient key)
  pumpctl --port PORT prime --duration-min M [--volume-ul V]
  pumpctl --port PORT suspend | resume
  pumpctl --port PORT alarms [list | ack NAME | silence | test]
  pumpctl --port PORT clock set (--now | --to YYYY-MM-DDTHH:MM[:SS])
  pumpctl --port PORT log export --out FILE.csv|FILE.json [--link]
                                                  (--link: the link's summaries of refused frames)
  pumpctl keys new FILE [--force]                 write a new master key file
                                                  (--force: replace an existing FILE)
  pumpctl keys derive --serial SN --out FILE [--roles patient,clinician] [--force]
                                                  write pump SN's own keys (from the
                                                  master key: --keys, $PUMP_KEYS, ...)

`pumpctl COMMAND --help` explains each command. Amounts of drug are shown in µg
and in nL (the pump counts nL of the drug in its reservoir: µg = nL x µg/mL / 10^6).

PORT: a device (/dev/ttyACM0), a pty path, or a pyserial URL (socket://127.0.0.1:4000).
Keys: --keys FILE, else $PUMP_KEYS (a file), else $PUMP_CLINICIAN_KEY /
$PUMP_PATIENT_KEY (hex), else ./pump-keys.json. FILE is a master key (the
pump's keys are derived for the serial it gives in its hello) or one pump's
key file (used only with that pump). Status and interrogate need no key.
`keys new` and `keys derive` never overwrite a file (it may hold the keys a
pump was provisioned with) unless given --force.

Exit status: 0 done; 1 the pump refused or rejected the request (its reason
and the numbers behind it are printed); 2 bad usage or a bad file; 3 the port
could not be opened or the pump did not answer; 4 no key for the role the
request needs; 141 the reader of the output went away (`pumpctl ... | head`).
"""
import argparse
import csv
import datetime
import json
import math
import os
import sys
import tomllib

from pump import alarms as A
from pump.program import MAX_BOLUS_UG
from linkkeys import keys as K
from host_tools.pumplink import LinkDown, MissingKey, PumpClient, PumpError

EPOCH = datetime.datetime(2000, 1, 1)
EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_LINK, EXIT_KEY = 0, 1, 2, 3, 4
ALARM_CODES = {A.name(c): c for c in range(1, A.N_ALARMS)}


class Usage(Exception):
    pass


def _number(conv, s):
    try:
        v = conv(s)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % s)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError("%r is not a finite number" % s)
    if v < 0:
        raise argparse.ArgumentTypeError("%r is negative" % s)
    return v


def nonneg_int(s):
    """argparse type: a whole number, 0 or more."""
    return _number(int, s)


def volume_ml(s):
    """argparse type: a finite volume in mL, 0 or more, that converts to nL."""
    v = _number(float, s)
    if not math.isfinite(v * 1e6):
        raise argparse.ArgumentTypeError("%r is too large" % s)
    return v


def timeout_s(s):
    """argparse type: a finite number of seconds, more than 0."""
    v = _number(float, s)
    if v == 0:
        raise argparse.ArgumentTypeError("the timeout must be more than 0 s")
    return v


def load_program(path):
    try:
        with open(path, "rb") as f:
            prog = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise Usage("%s: %s" % (path, e))
    return prog.get("program", prog)


def clock_to(text):
    """--to: the pump's local time, without a zone (the pump keeps local time)."""
    try:
        t = datetime.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise Usage("--to needs a local time like 2026-03-29T03:00")
    if t.tzinfo is not None:
        raise Usage("--to takes the pump's local time without a zone or offset (like 2026-03-29T03:00), not %r"
                    % text)
    return t


def open_export(path):
    """Open (or create) the export file before any request goes out: -> (file,
    created). An existing file is not truncated until there is something to
    write to it."""
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            created = True
        except FileExistsError:
            fd = os.open(path, os.O_WRONLY)
            created = False
    except OSError as e:
        raise Usage("cannot write %s: %s" % (path, e.strerror or e))
    return os.fdopen(fd, "w", newline=None if path.endswith(".json") else ""), created


def write_export(f, path, fields, rows):
    try:
        f.truncate(0)
        if path.endswith(".json"):
            json.dump(rows, f, indent=1)
        else:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        f.flush()
    except OSError as e:
        raise Usage("cannot write %s: %s" % (path, e.strerror or e))


def _wall(s):
    return (EPOCH + datetime.timedelta(seconds=s)).isoformat(sep=" ")


def _num(x):
    """A number as a person writes it: 240, 0.5, 12.345 (at most 3 decimals)."""
    if x is None:
        return "-"
    t = "%.3f" % x
    return t.rstrip("0").rstrip(".") if "." in t else t


def _ug(nl, conc):
    """nL of drug at conc µg/mL -> µg (None if either is unknown)."""
    if nl is None or not conc:
        return None
    return nl * conc / 1e6


def dose(nl, conc, per=""):
    """'60000 nL (30 µg)': a volume of drug with its dose, or the volume alone
    when the concentration is not known."""
    if nl is None:
        return "-"
    ug = _ug(nl, conc)
    if ug is None:
        return "%d nL%s" % (nl, per)
    return "%d nL%s (%s µg%s)" % (nl, per, _num(ug), per)


def dose_ug_first(nl, conc, per=""):
    """'30 µg (60000 nL)': the dose first (what a clinician prescribes)."""
    if nl is None:
        return "-"
    ug = _ug(nl, conc)
    if ug is None:
        return "%d nL%s" % (nl, per)
    return "%s µg%s (%d nL%s)" % (_num(ug), per, nl, per)


def _ml(nl):
    return "%.3f mL" % (nl / 1e6) if nl is not None else "-"


def _span(s):
    """Seconds -> '1 h 05 min 30 s', '12 min 05 s', '40 s'."""
    s = int(s)
    h, m, sec = s // 3600, s // 60 % 60, s % 60
    if h:
        return "%d h %02d min %02d s" % (h, m, sec)
    if m:
        return "%d min %02d s" % (m, sec)
    return "%d s" % sec


def show_status(st, out, conc=None):
    out("state:      %s" % st["state"])
    out("alarms:     %s" % (", ".join(st["alarms"]) or "none"))
    res = st["reservoir_nl"]
    ug = _ug(res, conc)
    out("reservoir:  %s = %d nL%s" % (_ml(res), res, (" (%s µg of drug at %s µg/mL)" % (_num(ug), conc))
                                       if ug is not None else ""))
    out("battery:    %.1f %%" % (st.get("battery_permille", 0) / 10))
    out("pump clock: %s" % _wall(st["wall_s"]))


def show_program(p, out, head="program:    "):
    c = p["concentration_ug_ml"]
    pad = " " * len(head)
    if p["mode"] == "stopped":
        out(head + "stopped (no basal, no bolus) at %s µg/mL" % c)
    else:
        out(head + "%s, %s µg/day (%d nL/day) at %s µg/mL"
            % (p["mode"], p["daily_dose_ug"], p["daily_nl"], c))
    for st in (p.get("steps") or []) if p["mode"] == "flex" else []:
        out(pad + "step from %02d:%02d  %s µg/day (%d nL/day)" % (st["start_min"] // 60, st["start_min"] % 60,
                                                              st["daily_rate_ug"], st["nl_per_day"]))
    out(pad + "caps: %s in any 24 h, %s in any hour" % (dose_ug_first(p["max_daily_nl"], c),
                                                          dose_ug_first(p["max_hourly_nl"], c)))
    if p.get("patient_bolus_nl"):
        out(pad + "patient bolus: %s over %d min, lockout %d min, at most %d in 24 h"
            % (dose_ug_first(p["patient_bolus_nl"], c), p["patient_bolus_duration_min"],
               p["patient_bolus_lockout_min"], p["patient_bolus_max_per_day"]))
    else:
        out(pad + "patient bolus: none (the patient's requests are refused)")
    if p.get("safe_rate_nl_day"):
        out(pad + "safe mode rate: %s" % dose_ug_first(p["safe_rate_nl_day"], c, "/day"))


def show_interrogate(st, out):
    out("pump:       serial %s" % (st.get("serial") or "(not provisioned)"))
    show_status(st, out, st.get("concentration_ug_ml"))
    p = st.get("program")
    if p:
        show_program(p, out)
    else:
        out("program:    none")
    out("drug:       %s µg/mL, filled %s, %s days left" % (st["concentration_ug_ml"], _ml(st["fill_nl"]),
                                                           st.get("days_left")))
    out("stops:      %s" % (", ".join(st["stops"]) or "none"))


# what the pump reads back (its own numbers) next to the field that was typed:
# (label, typed key, typed unit, read-back key, read-back unit, kind)
#   kind "ug": the read-back is nL of drug, shown in µg and nL; "ul": a volume in
#   nL, shown in µL; "same": the same value; "min": minutes
READBACK_ROWS = (
    ("mode", ("mode",), "", "mode", "", "same"),
    ("concentration", ("concentration_ug_ml",), "µg/mL", "concentration_ug_ml", "µg/mL", "same"),
    ("daily dose", ("daily_dose_ug",), "µg/day", "daily_nl", "/day", "ug"),
    ("cap in any 24 h", ("max_daily_ug",), "µg", "max_daily_nl", "", "ug"),
    ("cap in any hour", ("max_hourly_ug",), "µg", "max_hourly_nl", "", "ug"),
    ("patient bolus", ("patient_bolus", "dose_ug"), "µg", "patient_bolus_nl", "", "ug"),
    ("  given over", ("patient_bolus", "duration_min"), "min", "patient_bolus_duration_min", "min", "same"),
    ("  lockout", ("patient_bolus", "lockout_min"), "min", "patient_bolus_lockout_min", "min", "same"),
    ("  at most per 24 h", ("patient_bolus", "max_per_day"), "", "patient_bolus_max_per_day", "", "same"),
    ("safe mode rate", ("safe_rate_ug_day",), "µg/day", "safe_rate_nl_day", "/day", "ug"),
    ("low reservoir alarm", ("low_reservoir_ul",), "µL", "low_reservoir_nl", "", "ul"),
    ("step-up override", ("override_step_up",), "", "override_step_up", "", "same"),
)


def _typed(prog, path):
    v = prog
    for k in path:
        if not isinstance(v, dict) or k not in v:
            return None
        v = v[k]
    return v


def _cell(v, unit):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return ("%s %s" % (v, unit)).strip()


def readback_rows(rb, prog=None):
    """-> [(label, typed, pump µg, pump nL)]: the pump's read-back in µg and nL
    beside what was typed ('-' where nothing was typed: the pump's default)."""
    prog = prog or {}
    c = rb.get("concentration_ug_ml")
    rows = []
    for label, path, tunit, key, unit, kind in READBACK_ROWS:
        if key not in rb:
            continue
        v = rb[key]
        t = _typed(prog, path)
        typed = _cell(t, tunit)
        if key == "daily_nl":
            if rb.get("mode") == "flex":
                typed = "(from the steps)"
            rows.append((label, typed, "%s µg/day" % rb.get("daily_dose_ug"), "%d nL/day" % v))
            steps_typed = prog.get("steps") if isinstance(prog.get("steps"), list) else []
            for i, st in enumerate((rb.get("steps") or []) if rb.get("mode") == "flex" else []):
                ts = steps_typed[i] if i < len(steps_typed) and isinstance(steps_typed[i], dict) else {}
                rows.append(("  step from %02d:%02d" % (st["start_min"] // 60, st["start_min"] % 60),
                             _cell(ts.get("daily_rate_ug"), "µg/day"),
                             "%s µg/day" % st["daily_rate_ug"], "%d nL/day" % st["nl_per_day"]))
        elif kind == "ug":
            if not v and t is None:
                continue            # not programmed (no patient bolus, no safe mode)
            rows.append((label, typed, "%s µg%s" % (_num(_ug(v, c)), unit), "%d nL%s" % (v, unit)))
        elif kind == "ul":
            rows.append((label, typed, "%s µL" % _num(v / 1000), "%d nL" % v))
        else:
            if label.startswith("  ") and not rb.get("patient_bolus_nl"):
                continue
            rows.append((label, typed, _cell(v, unit), ""))
    return rows


def show_readback(rb, out, prog=None):
    out("The pump read back (its own numbers; compare them with what you typed):")
    rows = [("", "you typed", "pump: dose", "pump: volume")] + readback_rows(rb, prog)
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        out(("  %-*s  %-*s  %-*s  %s" % (w[0], r[0], w[1], r[1], w[2], r[2], r[3])).rstrip())


def explain_refusal(ans, st=None, asked_nl=None):
    """A refusal with the numbers behind it. ans: the pump's error answer
    (reason, detail; for the caps cap, cap_nl, used_nl); st: the pump's
    interrogate answer, if it could be read (the program in force);
    asked_nl: the volume the request asked for, if known."""
    why = ans.get("reason") or ans.get("name") or "refused"
    d = ans.get("detail")
    p = (st or {}).get("program") or {}
    c = p.get("concentration_ug_ml") or (st or {}).get("concentration_ug_ml")
    if why == "lockout":
        text = "the patient bolus is in its lockout"
        if p.get("patient_bolus_lockout_min"):
            text += " (%d min from the start of the last one)" % p["patient_bolus_lockout_min"]
        if d:
            text += "; the next may be asked for in %s" % _span(d)
    elif why == "max_per_day":
        text = "%s patient boluses granted in the last 24 h" % (d if d is not None else "the most")
        if p.get("patient_bolus_max_per_day"):
            text += ", the program allows %d" % p["patient_bolus_max_per_day"]
    elif why == "dose_limit":
        text = "the %s cap" % ({"hourly": "hourly", "daily": "24 h"}.get(ans.get("cap"), "dose"))
        if ans.get("cap_nl") is not None:
            room = max(0, ans["cap_nl"] - ans.get("used_nl", 0))
            text += " is %s; %s given in that window, %s of room left" % (
                dose_ug_first(ans["cap_nl"], c), dose_ug_first(ans.get("used_nl", 0), c), dose_ug_first(room, c))
        if asked_nl:
            text += "; this bolus needs %s on top of the basal due" % dose_ug_first(asked_nl, c)
    elif why == "not_enough_drug":
        text = "the reservoir has %s usable" % (dose_ug_first(d, c) if d is not None else "too little")
        if asked_nl:
            text += ", the bolus needs %s" % dose_ug_first(asked_nl, c)
    elif why == "not_allowed":
        text = ("the program in force has no patient bolus: program one with a patient_bolus "
                "table (pumpctl program examples/continuous-with-patient-bolus.toml)")
    elif why == "no_program":
        text = "no program is in force: send one with pumpctl program FILE"
    elif why == "pump_stopped":
        text = "the pump is not giving drug (state %s)" % ((st or {}).get("state") or "stopped")
        if (st or {}).get("stops"):
            text += ": %s" % ", ".join(st["stops"])
    elif why == "bolus_in_progress":
        text = "a bolus of this kind is still being given"
    elif why == "bridge_in_progress":
        text = "the catheter is being bridged to the new concentration; boluses wait until it is done"
    elif why == "safe_mode":
        text = "the pump is in safe mode (its program record was lost): only basal at the safe rate"
    elif why == "step_up_limit":
        text = "the daily dose rises more than the step-up limit allows within 24 h (override_step_up)"
    else:
        text = str(d) if d else ""
    return "refused: %s%s" % (why, (" - " + text) if text else "")


def keys_cmd(args, out):
    try:
        if args.action == "new":
            K.generate(args.file, force=args.force)
            out("wrote a new master key to %s (mode 0600); derive each pump's keys from it with "
                "pumpctl keys derive --serial SN, or flash with make flash SERIAL=SN" % args.file)
            return EXIT_OK
        roles = [r.strip() for r in args.roles.split(",") if r.strip()]
        bad = [r for r in roles if r not in K.ROLES]
        if bad or not roles:
            raise Usage("--roles takes patient, clinician or both (comma-separated), not %r" % args.roles)
        ks = K.find(args.master or args.keys)
        if ks.master is None and ks.serial is None and ks.roles:
            raise Usage("%s holds role keys bound to no pump: derive from a master key (pumpctl keys new)"
                        % (ks.where or "the key source"))
        if ks.master is None and not ks.roles:
            raise Usage("no master key: give --keys FILE (pumpctl keys new FILE makes one)")
        K.write_pump_file(args.out, ks, args.serial, roles, force=args.force)
    except BrokenPipeError:
        raise              # the reader of the report went away, not the key file
    except FileExistsError:
        raise Usage("%s already exists and may hold the keys a pump was provisioned with; "
                    "add --force to replace it" % (args.file if args.action == "new" else args.out))
    except OSError as e:
        raise Usage("cannot write %s: %s" % (args.file if args.action == "new" else args.out, e.strerror or e))
    out("wrote the %s key%s of pump %s to %s (mode 0600)" % (" and ".join(roles), "s" if len(roles) > 1 else "",
                                                              args.serial, args.out))
    return EXIT_OK


def run(args, out=print, ask=input):
    if args.cmd == "keys":
        return keys_cmd(args, out)
    keys = K.find(args.keys)
    # everything local (files, times) is checked before the port is opened
    prog = load_program(args.file) if args.cmd == "program" else None
    when = clock_to(args.to) if args.cmd == "clock" and not args.now else None
    if args.cmd != "log":
        return _run(args, out, ask, keys, prog, when, None)
    f, created = open_export(args.out)
    try:
        with f:
            return _run(args, out, ask, keys, prog, when, f)
    except BaseException:
        if created:        # nothing exported: leave no empty file behind
            try:
                os.unlink(args.out)
            except OSError:
                pass
        raise


class Explained(Exception):
    """A refusal of the pump, explained with its numbers (exit 1)."""

    def __init__(self, text, answer):
        Exception.__init__(self, text)
        self.answer = answer


def _asked_nl(args, st):
    """The volume the refused request asked for, if it can be known."""
    p = (st or {}).get("program") or {}
    if args.cmd == "bolus" and args.patient:
        return p.get("patient_bolus_nl") or None
    if args.cmd == "bolus" and p.get("concentration_ug_ml"):
        return args.dose_ug * 1000000 // p["concentration_ug_ml"]
    if args.cmd == "prime" and args.volume_ul:
        return args.volume_ul * 1000
    return None


def _run(args, out, ask, keys, prog, when, export):
    with PumpClient(args.port, keys, timeout=args.timeout) as pc:
        try:
            return _request(pc, args, out, ask, prog, when, export)
        except PumpError as e:
            if e.name != "refused" or args.json:
                raise
            # the numbers behind the refusal: the program in force (no key needed)
            try:
                st = pc.interrogate()
            except (PumpError, LinkDown):
                st = None
            raise Explained(explain_refusal(e.answer, st, _asked_nl(args, st)), e.answer)


LOG_COLUMNS = ["seq", "time", "kind_name", "code_name", "detail", "kind", "code", "a", "b", "day", "ms", "wall_s"]


def log_rows(fields, recs):
    """The pump's log records with names and a detail in words and units:
    seq, time (the pump's local wall clock), kind_name, code_name, detail
    ('60000 nL over 900 s'), then the raw numbers (kind, code, a, b; day and
    ms of the pump's monotonic time; wall_s: seconds since 2000-01-01)."""
    from logwords.events import describe
    rows = []
    for r in recs:
        raw = dict(zip(fields, r))
        k, code_name, detail = describe(raw["kind"], raw["code"], raw["a"], raw["b"], raw["wall_s"])
        row = {"seq": raw["seq"], "time": _wall(raw["wall_s"]), "kind_name": k, "code_name": code_name,
               "detail": detail}
        for f in LOG_COLUMNS[5:]:
            row[f] = raw.get(f)
        rows.append(row)
    return rows


def _request(pc, args, out, ask, prog, when, export):
    res = None
    if args.cmd == "status":
        res = pc.status()
        if not args.json:
            try:
                conc = pc.interrogate().get("concentration_ug_ml")
            except PumpError:
                conc = None
            show_status(res, out, conc)
    elif args.cmd == "interrogate":
        res = pc.interrogate()
        if not args.json:
            show_interrogate(res, out)
    elif args.cmd == "program":
        rb = pc.program(prog)
        if not args.json:
            show_readback(rb["readback"], out, prog)
        if not args.yes:
            if not sys.stdin.isatty() and ask is input:
                raise Usage("not confirmed: run on a terminal to confirm, or add --yes")
            try:
                answer = ask("Put this program in force? [y/N] ")
            except (EOFError, KeyboardInterrupt):
                answer = ""            # Ctrl-D or Ctrl-C at the prompt: no
            if answer.strip().lower() not in ("y", "yes"):
                out("not confirmed; the pump keeps its program")
                return EXIT_REFUSED
        res = pc.confirm(rb["token"])
        if not args.json:
            out("confirmed: the program is in force (state %s)" % res["state"])
    elif args.cmd == "refill":
        res = pc.refill(int(round(args.volume_ml * 1e6)), args.concentration, int(round(args.residual_ml * 1e6)))
        if not args.json:
            out("refilled %s of %s µg/mL (%s µg); residual vs expected: %s; state %s"
                % (_ml(round(args.volume_ml * 1e6)), args.concentration,
                   _num(args.volume_ml * args.concentration), res["reconcile"], res["state"]))
    elif args.cmd == "bolus":
        if args.patient:
            res = pc.patient_bolus()
        else:
            res = pc.bolus(args.dose_ug, args.duration_min)
        if not args.json:
            try:
                p = pc.interrogate().get("program") or {}
            except PumpError:
                p = {}
            c = p.get("concentration_ug_ml")
            ug = _ug(res["volume_nl"], c)
            out("bolus granted: %d nL%s" % (res["volume_nl"], (" = %s µg" % _num(ug)) if ug is not None else "")
                + ("" if args.patient else " over %d min" % args.duration_min)
                + (" over %d min" % p["patient_bolus_duration_min"]
                   if args.patient and p.get("patient_bolus_duration_min") else ""))
    elif args.cmd == "prime":
        res = pc.prime(args.duration_min, args.volume_ul * 1000 if args.volume_ul else None)
        if not args.json:
            try:
                c = pc.interrogate().get("concentration_ug_ml")
            except PumpError:
                c = None
            ug = _ug(res["volume_nl"], c)
            out("priming %d nL (%s µL%s) over %d min" % (res["volume_nl"], _num(res["volume_nl"] / 1000),
                                                       ", %s µg" % _num(ug) if ug is not None else "",
                                                       args.duration_min))
    elif args.cmd in ("suspend", "resume"):
        res = getattr(pc, args.cmd)()
        if not args.json:
            out("state: %s" % res["state"])
    elif args.cmd == "alarms":
        if args.action == "list":
            res = pc.status()
            if not args.json:
                out("active alarms: %s" % (", ".join(res["alarms"]) or "none"))
        elif args.action == "ack":
            res = pc.acknowledge(ALARM_CODES[args.name])
            if not args.json:
                out("acknowledged" if res["cleared"] else "%s is not an active latched alarm" % args.name)
        elif args.action == "silence":
            res = pc.silence()
            if not args.json:
                out("silenced %d alarm(s)" % res["silenced"])
        else:
            res = pc.alarm_test()
            if not args.json:
                out("alarm test sounded")
    elif args.cmd == "clock":
        t = datetime.datetime.now().replace(microsecond=0) if args.now else when
        res = pc.set_clock(int((t - EPOCH).total_seconds()))
        if not args.json:
            out("pump clock set to %s" % _wall(res["wall_s"]))
    elif args.cmd == "log":
        fields, recs = pc.log("link" if args.link else "therapy")
        rows = log_rows(fields, recs)
        write_export(export, args.out, LOG_COLUMNS, rows)
        res = {"records": len(rows), "file": args.out}
        if not args.json:
            out("exported %d log records to %s" % (len(rows), args.out))
    if args.json:
        out(json.dumps(res, indent=1, sort_keys=True))
    return EXIT_OK


def _ranged(lo, hi, unit):
    def conv(s):
        v = _number(int, s)
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError("%s is outside %d .. %d %s" % (s, lo, hi, unit))
        return v
    conv.__name__ = "whole number %d..%d" % (lo, hi)
    return conv


def parser():
    head, rest = __doc__.split("\n\n", 1)
    ap = argparse.ArgumentParser(prog="pumpctl", description=head.replace("\n", " "),
                                 epilog=rest, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", help="the pump: a device, a pty path or a pyserial URL (socket://HOST:PORT)")
    ap.add_argument("--keys", metavar="FILE",
                    help="a master key file or one pump's key file (default: $PUMP_KEYS, "
                         "$PUMP_CLINICIAN_KEY/$PUMP_PATIENT_KEY, ./pump-keys.json; see Keys below)")
    ap.add_argument("--json", action="store_true", help="print the pump's answer as JSON instead of text")
    ap.add_argument("--timeout", type=timeout_s, default=3.0, metavar="S",
                    help="seconds to wait for each answer (default 3)")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def cmd(name, help, desc=None):
        return sub.add_parser(name, help=help, description=desc or help)
    cmd("status", "the pump's state, alarms, reservoir (mL, nL and µg), battery and clock; no key needed")
    cmd("interrogate", "everything status shows, plus the program in force in µg and nL (daily dose, steps, "
        "caps, patient bolus), the drug and days left, and why the pump is stopped; no key needed")
    p = cmd("program", "send a program, read back the pump's own numbers, then confirm (clinician key)",
            "Send the program in FILE (a TOML table, as in examples/*.toml and docs/programs.md). The pump "
            "checks it and reads back its own numbers (µg and nL) next to what you typed; nothing changes "
            "until you confirm. The pump forgets an unconfirmed program after 10 minutes of its time.")
    p.add_argument("file", help="a program table (TOML); a [program] table in it is used if there is one")
    p.add_argument("--yes", action="store_true", help="confirm without asking (for scripts; read the read-back!)")
    p = cmd("refill", "empty and refill the reservoir (clinician key)",
            "Tell the pump the reservoir was emptied (RESIDUAL withdrawn) and filled with VOLUME of drug at "
            "CONCENTRATION. The pump compares the residual with what it expected. A new concentration stops "
            "the pump until a program for it is confirmed.")
    p.add_argument("--volume-ml", type=volume_ml, required=True, metavar="V", help="mL of drug filled")
    p.add_argument("--concentration", type=nonneg_int, required=True, metavar="C",
                   help="the drug's strength, µg/mL")
    p.add_argument("--residual-ml", type=volume_ml, required=True, metavar="R",
                   help="mL withdrawn from the reservoir before filling")
    p = cmd("bolus", "a clinician bolus (--dose-ug, --duration-min) or the patient's bolus (--patient)",
            "Either a clinician bolus of --dose-ug µg over --duration-min minutes (clinician key), or, with "
            "--patient and nothing else, the bolus the program allows the patient (patient key: dose, "
            "duration, lockout and daily maximum come from the program). The caps still hold; a refusal "
            "says why, with the numbers.")
    p.add_argument("--dose-ug", type=_ranged(1, MAX_BOLUS_UG, "µg"), metavar="D",
                   help="clinician bolus: µg of drug, 1 .. %d" % MAX_BOLUS_UG)
    p.add_argument("--duration-min", type=_ranged(1, 1440, "min"), metavar="M",
                   help="clinician bolus: minutes to give it over, 1 .. 1440")
    p.add_argument("--patient", action="store_true", help="the patient's programmed bolus (patient key)")
    p = cmd("prime", "fill the catheter's dead volume with a priming bolus (clinician key)")
    p.add_argument("--duration-min", type=_ranged(1, 240, "min"), required=True, metavar="M",
                   help="minutes to give it over, 1 .. 240")
    p.add_argument("--volume-ul", type=_ranged(1, 10000, "µL"), metavar="V",
                   help="µL to give (default: the catheter's dead volume)")
    cmd("suspend", "stop all delivery until resume (clinician key)")
    cmd("resume", "resume delivery after suspend (clinician key)")
    p = cmd("alarms", "list active alarms, acknowledge one, silence them (patient or clinician key) or test the tones",
            "alarms [list]: the active alarms (no key). alarms ack NAME: acknowledge a latched alarm whose "
            "cause is gone (clinician). alarms silence: silence the tones (patient or clinician). "
            "alarms test: sound the alarm test (clinician). Alarm names: " + ", ".join(sorted(ALARM_CODES)))
    p.add_argument("action", nargs="?", default="list", choices=("list", "ack", "silence", "test"),
                   help="what to do (default list)")
    p.add_argument("name", nargs="?", help="alarms ack: the alarm to acknowledge")
    p = cmd("clock", "set the pump's wall clock, its local time (clinician key)",
            "clock set --now: the computer's local time. clock set --to TIME: a given local time. Flex "
            "steps follow this clock; the caps do not.")
    p.add_argument("action", choices=("set",), help="set")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--now", action="store_true", help="this computer's local time")
    g.add_argument("--to", metavar="TIME", help="the pump's local time, without a zone: YYYY-MM-DDTHH:MM[:SS]")
    p = cmd("log", "export the pump's event log to CSV or JSON (clinician key)",
            "log export --out FILE: every record the pump still holds, oldest first; FILE.json writes JSON, "
            "any other name CSV. Columns: " + ", ".join(LOG_COLUMNS) + ". detail says what happened in words "
            "and units (nL, µg, s); time is the pump's local wall clock; kind, code, a, b are the raw numbers "
            "(docs/protocol.md).")
    p.add_argument("action", choices=("export",), help="export")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write (.csv or .json)")
    p.add_argument("--link", action="store_true",
                   help="export the link's summaries of refused frames instead of the therapy log")
    p = sub.add_parser("keys", help="make a master key file, or derive one pump's keys from it",
                       description="keys new FILE [--force]: a new master key file; "
                       "keys derive --serial SN --out FILE [--roles patient,clinician] [--force] [MASTER]: "
                       "pump SN's own keys. --force replaces an existing file (a pump provisioned with the "
                       "old keys will refuse the new ones).")
    ks = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    k = ks.add_parser("new", help="write a new master key file", description="Write a new master key file "
                      "(mode 0600). Keep it off the boards: each pump gets its own keys derived from it.")
    k.add_argument("file", help="the master key file to write")
    k.add_argument("--force", action="store_true",
                   help="replace FILE if it exists (pumps provisioned from the old master will refuse the new keys)")
    k = ks.add_parser("derive", help="write one pump's keys, derived from the master key for its serial",
                      description="Write pump SN's own role keys, derived from the master key, to --out "
                      "(mode 0600): the file a board is flashed with, or a patient's remote (--roles patient).")
    k.add_argument("master", nargs="?", help="the master key file (default: --keys, $PUMP_KEYS, ./pump-keys.json)")
    k.add_argument("--serial", required=True, help="the pump's serial")
    k.add_argument("--out", required=True, help="the pump key file to write")
    k.add_argument("--roles", default="patient,clinician",
                   help="which role keys to write (default both; a patient's remote: patient)")
    k.add_argument("--force", action="store_true", help="replace --out if it exists")
    return ap


def check_args(ap, args):
    """Options that contradict each other are errors (exit 2), never ignored."""
    if args.cmd != "keys" and not args.port:
        ap.error("--port is required (a device, a pty path or socket://host:port)")
    if args.cmd == "bolus":
        if args.patient and (args.dose_ug is not None or args.duration_min is not None):
            ap.error("bolus --patient gives the program's patient bolus: it takes no --dose-ug or "
                     "--duration-min (for a clinician bolus leave out --patient)")
        if not args.patient and (args.dose_ug is None or args.duration_min is None):
            ap.error("bolus needs --dose-ug and --duration-min (a clinician bolus), or --patient alone")
    if args.cmd == "alarms":
        if args.action == "ack" and not args.name:
            ap.error("alarms ack needs the alarm's NAME (known: %s)" % ", ".join(sorted(ALARM_CODES)))
        if args.action == "ack" and args.name not in ALARM_CODES:
            ap.error("unknown alarm %r (known: %s)" % (args.name, ", ".join(sorted(ALARM_CODES))))
        if args.action != "ack" and args.name:
            ap.error("alarms %s takes no alarm name (only alarms ack NAME does)" % args.action)


def main(argv=None):
    from cmdline.pipeout import run_quietly
    return run_quietly(_main, argv)


def _main(argv=None):
    ap = parser()
    args = ap.parse_args(argv)
    check_args(ap, args)

    def err(msg):
        print("pumpctl: " + msg, file=sys.stderr)
    try:
        return run(args)
    except Explained as e:
        err("the pump said no: %s" % e)
        return EXIT_REFUSED
    except PumpError as e:
        extra = (" (field %s)" % e.answer["field"]) if e.answer.get("field") else ""
        err("the pump said no: %s [%s]%s" % (e, e.name, extra))
        return EXIT_REFUSED
    except LinkDown as e:
        err("%s; check the port, that the pump (or pump-emu serve) is running, and --timeout" % e)
        return EXIT_LINK
    except MissingKey as e:
        err(str(e))
        return EXIT_KEY
    except (Usage, K.KeyError_) as e:
        err(str(e))
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
