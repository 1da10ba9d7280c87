"""pumpctl: program and interrogate a pump (a board or pump-emu serve) over its
programmer link.

  pumpctl --port PORT status | interrogate
  pumpctl --port PORT program FILE [--yes]        FILE: a program table (TOML)
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

PORT: a device (/dev/ttyACM0), a pty path, or a pyserial URL (socket://127.0.0.1:4000).
Keys: --keys FILE, else $PUMP_KEYS (a file), else $PUMP_CLINICIAN_KEY /
$PUMP_PATIENT_KEY (hex), else ./pump-keys.json. FILE is a master key (the
pump's keys are derived for the serial it gives in its hello) or one pump's
key file (used only with that pump). Status and interrogate need no key.
`keys new` and `keys derive` never overwrite a file (it may hold the keys a
pump was provisioned with) unless given --force.

Exit status: 0 done; 1 the pump refused or rejected the request (its reason
is printed); 2 bad usage or a bad file; 3 the port could not be opened or the
pump did not answer; 4 no key for the role the request needs.
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
from pump.eventlog import kind_name
from host_tools import keys as K
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
            w = csv.DictWriter(f, fieldnames=fields + ["kind_name", "time"])
            w.writeheader()
            w.writerows(rows)
        f.flush()
    except OSError as e:
        raise Usage("cannot write %s: %s" % (path, e.strerror or e))


def _wall(s):
    return (EPOCH + datetime.timedelta(seconds=s)).isoformat(sep=" ")


def _ml(nl):
    return "%.3f mL" % (nl / 1e6) if nl is not None else "-"


def show_status(st, out):
    out("state:      %s" % st["state"])
    out("alarms:     %s" % (", ".join(st["alarms"]) or "none"))
    out("reservoir:  %s" % _ml(st["reservoir_nl"]))
    out("battery:    %.1f %%" % (st.get("battery_permille", 0) / 10))
    out("pump clock: %s" % _wall(st["wall_s"]))


def show_interrogate(st, out):
    out("pump:       serial %s" % (st.get("serial") or "(not provisioned)"))
    show_status(st, out)
    p = st.get("program")
    if p:
        out("program:    %s, %s ug/day at %s ug/mL (%s nL/day); caps %s nL/24 h, %s nL/h"
            % (p["mode"], p["daily_dose_ug"], p["concentration_ug_ml"], p["daily_nl"],
               p["max_daily_nl"], p["max_hourly_nl"]))
        for s in p.get("steps") or []:
            out("            step %02d:%02d  %s ug/day (%s nL/day)" % (s["start_min"] // 60, s["start_min"] % 60,
                                                                   s["daily_rate_ug"], s["nl_per_day"]))
    else:
        out("program:    none")
    out("drug:       %s ug/mL, filled %s, %s days left" % (st["concentration_ug_ml"], _ml(st["fill_nl"]),
                                                           st.get("days_left")))
    out("stops:      %s" % (", ".join(st["stops"]) or "none"))


def show_readback(rb, out):
    out("The pump read back:")
    for k in sorted(rb):
        if k != "steps":
            out("  %-28s %s" % (k, rb[k]))
    for s in rb.get("steps") or []:
        out("  step %02d:%02d  %s ug/day = %s nL/day" % (s["start_min"] // 60, s["start_min"] % 60,
                                                       s["daily_rate_ug"], s["nl_per_day"]))


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


def _run(args, out, ask, keys, prog, when, export):
    with PumpClient(args.port, keys, timeout=args.timeout) as pc:
        res = None
        if args.cmd == "status":
            res = pc.status()
            if not args.json:
                show_status(res, out)
        elif args.cmd == "interrogate":
            res = pc.interrogate()
            if not args.json:
                show_interrogate(res, out)
        elif args.cmd == "program":
            rb = pc.program(prog)
            if not args.json:
                show_readback(rb["readback"], out)
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
                out("refilled; residual vs expected: %s; state %s" % (res["reconcile"], res["state"]))
        elif args.cmd == "bolus":
            if args.patient:
                res = pc.patient_bolus()
            else:
                if args.dose_ug is None or args.duration_min is None:
                    raise Usage("bolus needs --dose-ug and --duration-min, or --patient")
                res = pc.bolus(args.dose_ug, args.duration_min)
            if not args.json:
                out("bolus granted: %d nL" % res["volume_nl"])
        elif args.cmd == "prime":
            res = pc.prime(args.duration_min, args.volume_ul * 1000 if args.volume_ul else None)
            if not args.json:
                out("priming %d nL" % res["volume_nl"])
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
                if args.name not in ALARM_CODES:
                    raise Usage("unknown alarm %r (known: %s)" % (args.name, ", ".join(sorted(ALARM_CODES))))
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
            rows = [dict(zip(fields, r)) for r in recs]
            for r in rows:
                r["kind_name"] = kind_name(r["kind"])
                r["time"] = _wall(r["wall_s"])
            write_export(export, args.out, fields, rows)
            res = {"records": len(rows), "file": args.out}
            if not args.json:
                out("exported %d log records to %s" % (len(rows), args.out))
        if args.json:
            out(json.dumps(res, indent=1, sort_keys=True))
    return EXIT_OK


def parser():
    ap = argparse.ArgumentParser(prog="pumpctl", description=__doc__.split("\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", help="device, pty path or pyserial URL")
    ap.add_argument("--keys", help="role key file (see above)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--timeout", type=timeout_s, default=3.0, help="seconds to wait for an answer (default 3)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("status")
    sub.add_parser("interrogate")
    p = sub.add_parser("program")
    p.add_argument("file", help="a program table (TOML)")
    p.add_argument("--yes", action="store_true", help="confirm without asking (scripts)")
    p = sub.add_parser("refill")
    p.add_argument("--volume-ml", type=volume_ml, required=True)
    p.add_argument("--concentration", type=nonneg_int, required=True, help="ug/mL")
    p.add_argument("--residual-ml", type=volume_ml, required=True, help="volume withdrawn before filling")
    p = sub.add_parser("bolus")
    p.add_argument("--dose-ug", type=int)
    p.add_argument("--duration-min", type=int)
    p.add_argument("--patient", action="store_true", help="the patient's programmed bolus (patient key)")
    p = sub.add_parser("prime")
    p.add_argument("--duration-min", type=int, required=True)
    p.add_argument("--volume-ul", type=int)
    sub.add_parser("suspend")
    sub.add_parser("resume")
    p = sub.add_parser("alarms")
    p.add_argument("action", nargs="?", default="list", choices=("list", "ack", "silence", "test"))
    p.add_argument("name", nargs="?", help="alarm to acknowledge")
    p = sub.add_parser("clock")
    p.add_argument("action", choices=("set",))
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--now", action="store_true")
    g.add_argument("--to", help="the pump's local time, without a zone: YYYY-MM-DDTHH:MM[:SS]")
    p = sub.add_parser("log")
    p.add_argument("action", choices=("export",))
    p.add_argument("--out", required=True)
    p.add_argument("--link", action="store_true",
                   help="export the link's summaries of refused frames instead of the therapy log")
    p = sub.add_parser("keys", description="keys new FILE [--force]: a new master key file; "
                       "keys derive --serial SN --out FILE [--roles patient,clinician] [--force] [MASTER]: "
                       "pump SN's own keys. --force replaces an existing file (a pump provisioned with the "
                       "old keys will refuse the new ones).")
    ks = p.add_subparsers(dest="action", required=True)
    k = ks.add_parser("new", help="write a new master key file")
    k.add_argument("file")
    k.add_argument("--force", action="store_true",
                   help="replace FILE if it exists (pumps provisioned from the old master will refuse the new keys)")
    k = ks.add_parser("derive", help="write one pump's keys, derived from the master key for its serial")
    k.add_argument("master", nargs="?", help="the master key file (default: --keys, $PUMP_KEYS, ./pump-keys.json)")
    k.add_argument("--serial", required=True, help="the pump's serial")
    k.add_argument("--out", required=True, help="the pump key file to write")
    k.add_argument("--roles", default="patient,clinician",
                   help="which role keys to write (default both; a patient's remote: patient)")
    k.add_argument("--force", action="store_true", help="replace --out if it exists")
    return ap


def main(argv=None):
    from host_tools.pipeout import run_quietly
    return run_quietly(_main, argv)


def _main(argv=None):
    ap = parser()
    args = ap.parse_args(argv)
    if args.cmd != "keys" and not args.port:
        ap.error("--port is required (a device, a pty path or socket://host:port)")

    def err(msg):
        print("pumpctl: " + msg, file=sys.stderr)
    try:
        return run(args)
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
