# The programmer link: requests in frames (pump.frames), checked for authority
# (invariant I8) and carried out through the pump's own command interface.
#
# Roles: status needs no key; the patient may ask for the programmed bolus and
# silence alarms; everything else that changes therapy is the clinician's. A
# request that changes therapy carries an HMAC-SHA256 tag made with its role's
# key and a counter higher than any the pump has accepted from that role, so a
# recorded frame cannot be replayed. The pump saves the counter before it acts
# (a reset after the save loses the request, never repeats it).
# Programming takes two steps: PROGRAM answers with the pump's read-back and a
# token; only CONFIRM with that token puts the program in force.
# Nothing a frame holds can make an exception escape poll().
import hashlib
import json
import struct
from binascii import hexlify

from pump import frames as F
from pump import alarms as A
from pump import eventlog as E
from pump.compat import const
from pump.controller import CommandError, Refused, REFUSAL_NAMES
from pump.hmac256 import HMAC256, equal
from pump.program import ProgramError
from pump.record import ABRecord, OK as REC_OK, CORRUPT as REC_CORRUPT

# request types (an answer has type | 0x80; an error answer is ERROR)
STATUS = const(0x01)
INTERROGATE = const(0x02)
LOG = const(0x03)
PROGRAM = const(0x10)
CONFIRM = const(0x11)
REFILL = const(0x12)
BOLUS = const(0x13)
PRIME = const(0x14)
SUSPEND = const(0x15)
RESUME = const(0x16)
CLOCK_SET = const(0x17)
ACK = const(0x18)
ALARM_TEST = const(0x19)
PATIENT_BOLUS = const(0x20)
SILENCE = const(0x21)
ERROR = const(0x7F)

# stable error codes
E_BAD_FRAME = const(1)
E_OVERSIZED = const(2)
E_TRUNCATED = const(3)
E_VERSION = const(4)
E_UNKNOWN = const(5)
E_PAYLOAD = const(6)
E_AUTH_REQUIRED = const(7)
E_BAD_TAG = const(8)
E_REPLAY = const(9)
E_WRONG_ROLE = const(10)
E_REFUSED = const(11)
E_PROGRAM = const(12)
E_COMMAND = const(13)
E_NOT_PENDING = const(14)
E_INTERNAL = const(15)
E_NO_KEY = const(16)
E_NOISE = const(17)
ERROR_NAMES = ("", "bad_frame", "oversized", "truncated", "bad_version", "unknown_request", "bad_payload",
               "auth_required", "bad_tag", "replay", "wrong_role", "refused", "program_error",
               "command_error", "not_pending", "internal", "no_key", "noise")
_READER_ERRORS = {F.NOISE: E_NOISE, F.BAD_CRC: E_BAD_FRAME, F.OVERSIZED: E_OVERSIZED,
                  F.TRUNCATED: E_TRUNCATED, F.SHORT: E_BAD_FRAME}

P = F.ROLE_PATIENT
C = F.ROLE_CLINICIAN
# type -> (name, roles allowed (() means no key needed), changes what the pump does)
REQUESTS = {
    STATUS: ("status", (), False), INTERROGATE: ("interrogate", (), False),
    LOG: ("log", (C,), False), PROGRAM: ("program", (C,), False), CONFIRM: ("confirm", (C,), True),
    REFILL: ("refill", (C,), True), BOLUS: ("bolus", (C,), True), PRIME: ("prime", (C,), True),
    SUSPEND: ("suspend", (C,), True), RESUME: ("resume", (C,), True), CLOCK_SET: ("clock_set", (C,), True),
    ACK: ("acknowledge", (C,), True), ALARM_TEST: ("alarm_test", (C,), True),
    PATIENT_BOLUS: ("patient_bolus", (P,), True), SILENCE: ("silence", (P, C), True),
}
PENDING_MS = const(600000)   # a program read back must be confirmed within 10 min
LOG_PAGE = const(12)         # log records per answer
REFUSAL_LOG_MS = const(60000)  # authority refusals: at most one log record a minute
COUNTER_SKIP = const(65536)  # how far the counters move on when their newest copy may be lost


def strict_json(b):
    """True if b is plain JSON as CPython reads it. MicroPython's json also
    takes a trailing comma, a leading zero or a NUL after the text; the same
    signed frame must mean the same on a board as in the emulator."""
    in_str = False
    esc = False
    prev = 0          # last byte outside a string that was not white space
    digits_from = -1  # where the digits of the current integer part began
    in_exp = False    # inside an exponent (1e05 is plain JSON)
    for i in range(len(b)):
        c = b[i]
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:       # backslash
                esc = True
            elif c == 0x22:       # quote
                in_str = False
                prev = c
            elif c < 0x20:
                return False
            continue
        if c in (0x20, 0x09, 0x0A, 0x0D):
            digits_from = -1
            in_exp = False
            continue
        if c < 0x20 or c > 0x7E:
            return False
        if 0x30 <= c <= 0x39:
            if in_exp:
                pass
            elif digits_from < 0:
                digits_from = i
            elif i == digits_from + 1 and b[digits_from] == 0x30:   # 01
                return False
        elif c in (0x65, 0x45) and digits_from >= 0 or c == 0x2E:    # e, E, .
            in_exp = True
        elif c in (0x2D, 0x2B) and (in_exp or digits_from < 0):      # a sign
            pass
        else:
            digits_from = -1
            in_exp = False
            if c == 0x22:
                in_str = True
            elif c in (0x7D, 0x5D) and prev == 0x2C:     # ,} or ,]
                return False
        prev = c
    return not in_str


def _canon(v):
    """A text for v that is the same on every runtime (sorted keys)."""
    if isinstance(v, dict):
        return "{" + ",".join(k + ":" + _canon(v[k]) for k in sorted(v)) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_canon(x) for x in v) + "]"
    return str(v)


class LinkError(Exception):
    def __init__(self, code, message="", extra=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra


def _arg(args, key, lo, hi, default=None):
    v = args.get(key, default)
    if v is None:
        raise LinkError(E_PAYLOAD, key + " is required")
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise LinkError(E_PAYLOAD, "%s must be a whole number %d .. %d" % (key, lo, hi))
    return v


class Link:
    def __init__(self, pump, port, keys):
        """keys: {ROLE_PATIENT: bytes, ROLE_CLINICIAN: bytes}, provisioned at
        build or flash time; a role without a key cannot be used."""
        self.pump = pump
        self.port = port
        self.macs = {}
        for role in (P, C):
            k = keys.get(role)
            if k:
                self.macs[role] = HMAC256(k)
        self.reader = F.Reader()
        self.rec = ABRecord(pump.store, "link")
        self.counters = [0, 0, 0]
        self.pending = None        # [token, Program, day, ms]
        self.frames_in = 0
        self.errors = 0
        self._last_logged = None   # (day, ms) of the last authority refusal logged
        self._refusals_unlogged = 0
        st, pay = self.rec.load()
        if st == REC_OK and len(pay) == 8:
            self.counters[P], self.counters[C] = struct.unpack("<II", pay)
            if self.rec.suspect:
                # A whole copy failed its check: perhaps the newest, so the last
                # frame accepted may be newer than these counters. Move both on
                # far enough that no recorded frame is fresh (hosts read the new
                # counters from status), as the ledger counts one more stroke.
                self.counters[P] += COUNTER_SKIP
                self.counters[C] += COUNTER_SKIP
                self.rec.save(struct.pack("<II", self.counters[P], self.counters[C]))
                self.pump.log_event(E.STORAGE, 6, 1)
        elif st == REC_CORRUPT or st == REC_OK:
            # Both copies damaged: the counters are lost. The replay window
            # reopens for frames older than the loss; the pump says so.
            self.pump.log_event(E.STORAGE, 6, 0)

    # ------------------------------------------------------------ the stream
    def poll(self, now_ms):
        """Read what the port has, answer every whole frame. -> True if a
        request may have changed therapy (the main loop then cycles at once)."""
        changed = False
        try:
            data = self.port.read()
            if data:
                self.reader.feed(data, now_ms)
            while True:
                r = self.reader.next(now_ms)
                if r is None:
                    break
                status, body = r
                if status != F.GOOD:
                    self.errors += 1
                    self._send_error(0, _READER_ERRORS.get(status, E_BAD_FRAME), "frame dropped")
                    continue
                self.frames_in += 1
                try:
                    if self._handle(body):
                        changed = True
                except Exception:   # nothing a frame holds may stop the pump
                    self.errors += 1
                    self._send_error(self._seq_of(body), E_INTERNAL, "the request failed inside the pump")
        except Exception:
            pass                    # a port that fails: the next poll tries again
        return changed

    @staticmethod
    def _seq_of(body):
        return struct.unpack_from("<H", body, 2)[0] if len(body) >= 4 else 0

    def _send(self, ftype, seq, obj):
        self.port.write(F.encode(ftype, seq, json.dumps(obj).encode()))

    def _send_error(self, seq, code, message, extra=None):
        obj = {"ok": False, "error": code, "name": ERROR_NAMES[code], "message": message}
        if extra:
            obj.update(extra)
        self._send(ERROR, seq, obj)

    # ------------------------------------------------------------ one request
    def _handle(self, body):
        parts = F.split_body(body)
        seq = 0
        try:
            if parts is None:
                raise LinkError(E_BAD_FRAME, "body shorter than its header")
            ver, ftype, seq, role, counter, payload, signed, tag = parts
            if ver != F.VERSION:
                raise LinkError(E_VERSION, "protocol version %d; this pump speaks %d" % (ver, F.VERSION))
            req = REQUESTS.get(ftype)
            if req is None:
                raise LinkError(E_UNKNOWN, "unknown request type 0x%02x" % ftype)
            name, roles, changes = req
            if role > C:
                raise LinkError(E_WRONG_ROLE, "unknown role %d" % role)
            if role != F.ROLE_NONE:
                mac = self.macs.get(role)
                if mac is None:
                    raise LinkError(E_NO_KEY, "this pump has no %s key" % F.ROLE_NAMES[role])
                if not equal(mac.digest(signed), tag):
                    raise LinkError(E_BAD_TAG, "the tag does not match the %s key" % F.ROLE_NAMES[role])
            if roles:
                if role == F.ROLE_NONE:
                    raise LinkError(E_AUTH_REQUIRED, "%s needs the %s key" % (
                        name, " or ".join(F.ROLE_NAMES[r] for r in roles)))
                if role not in roles:
                    raise LinkError(E_WRONG_ROLE, "%s is not allowed for the %s role" % (name, F.ROLE_NAMES[role]))
                if counter <= self.counters[role]:
                    raise LinkError(E_REPLAY, "counter %d is not above the last accepted (%d)"
                                    % (counter, self.counters[role]))
                self.counters[role] = counter
                self.rec.save(struct.pack("<II", self.counters[P], self.counters[C]))
            if payload and not strict_json(payload):
                raise LinkError(E_PAYLOAD, "payload is not plain JSON")
            try:
                args = json.loads(payload) if payload else {}
            except Exception:
                raise LinkError(E_PAYLOAD, "payload is not JSON")
            if not isinstance(args, dict):
                raise LinkError(E_PAYLOAD, "payload must be a JSON object")
            answer = getattr(self, "_do_" + name)(args)
        except LinkError as e:
            self.errors += 1
            if e.code in (E_AUTH_REQUIRED, E_BAD_TAG, E_REPLAY, E_WRONG_ROLE, E_NO_KEY):
                self._log_refusal(e.code)
            self._send_error(seq, e.code, e.message, e.extra)
            return False
        except ProgramError as e:
            self._send_error(seq, E_PROGRAM, "%s: %s" % (e.field, e.reason), {"field": e.field, "reason": e.reason})
            return False
        except CommandError as e:
            self._send_error(seq, E_COMMAND, "%s: %s" % (e.field, e.reason), {"field": e.field, "reason": e.reason})
            return False
        except Refused as e:
            why = REFUSAL_NAMES[e.code] if 0 <= e.code < len(REFUSAL_NAMES) else str(e.code)
            self._send_error(seq, E_REFUSED, "refused: " + why, {"reason": why})
            return False
        answer["ok"] = True
        self._send(ftype | 0x80, seq, answer)
        return changes

    def _log_refusal(self, code):
        # Anyone on the line can send refusals: one log record a minute at most,
        # whatever their kind, with the count of those not logged (each record
        # is a flash write, and the log must keep the therapy's history).
        t = self.pump.time
        last = self._last_logged
        if last is None or t.since(last[0], last[1]) >= REFUSAL_LOG_MS:
            self._last_logged = (t.day, t.ms)
            self.pump.log_event(E.LINK, code, self._refusals_unlogged)
            self._refusals_unlogged = 0
        else:
            self._refusals_unlogged += 1

    # ------------------------------------------------------------ requests
    def _do_status(self, args):
        p = self.pump
        return {"state": p.state(), "alarms": [A.name(c) for c in p.alarms.codes()],
                "reservoir_nl": p.reservoir.remaining_nl(), "battery_permille": p.battery.level,
                "wall_s": p.clock.wall_s(), "counters": [self.counters[P], self.counters[C]]}

    def _do_interrogate(self, args):
        st = self.pump.status()
        st["counters"] = [self.counters[P], self.counters[C]]
        st["pending_program"] = self.pending[0] if self.pending is not None else None
        st["log_seq"] = self.pump.log.seq
        return st

    def _do_log(self, args):
        after = _arg(args, "after_seq", 0, 0x7FFFFFFF, 0)
        recs = [list(r) for r in self.pump.log.records if r[0] > after][:LOG_PAGE]
        return {"records": recs, "last_seq": self.pump.log.seq,
                "fields": ["seq", "day", "ms", "wall_s", "kind", "code", "a", "b"]}

    def _do_program(self, args):
        raw = args.get("program")
        if not isinstance(raw, dict):
            raise LinkError(E_PAYLOAD, "program must be a table")
        prog = self.pump.check_program(raw)
        rb = prog.readback()
        h = hashlib.sha256(_canon(rb).encode())
        h.update(struct.pack("<I", self.counters[C]))
        token = hexlify(h.digest()[:6]).decode()
        t = self.pump.time
        self.pending = [token, prog, t.day, t.ms]
        return {"readback": rb, "token": token, "confirm_within_s": PENDING_MS // 1000}

    def _do_confirm(self, args):
        token = args.get("token")
        pend = self.pending
        self.pending = None
        self.pump.sync()            # the window is measured to now, not to the last wake-up
        if pend is None or self.pump.time.since(pend[2], pend[3]) >= PENDING_MS:
            raise LinkError(E_NOT_PENDING, "no program is waiting for confirmation (send it again)")
        if token != pend[0]:
            raise LinkError(E_NOT_PENDING, "the token does not match the program read back (send it again)")
        self.pump.apply_program(pend[1])
        return {"readback": pend[1].readback(), "state": self.pump.state()}

    def _clear_pending(self):
        self.pending = None

    def _do_refill(self, args):
        self._clear_pending()
        cap = self.pump.reservoir.capacity_nl
        status = self.pump.refill(_arg(args, "volume_nl", 1, cap), _arg(args, "concentration_ug_ml", 1, 100000),
                                  _arg(args, "residual_nl", 0, cap))
        # the residual compared with what the pump expected, within its accuracy
        return {"reconcile": "discrepancy" if status else "ok", "state": self.pump.state()}

    def _do_bolus(self, args):
        self._clear_pending()
        nl = self.pump.clinician_bolus(_arg(args, "dose_ug", 1, 100000), _arg(args, "duration_min", 1, 1440))
        return {"volume_nl": nl}

    def _do_prime(self, args):
        self._clear_pending()
        vol = args.get("volume_nl")
        if vol is None:
            nl = self.pump.prime(_arg(args, "duration_min", 1, 240))
        else:
            nl = self.pump.prime(_arg(args, "duration_min", 1, 240), _arg(args, "volume_nl", 1, 10000000))
        return {"volume_nl": nl}

    def _do_suspend(self, args):
        self._clear_pending()
        self.pump.suspend()
        return {"state": self.pump.state()}

    def _do_resume(self, args):
        self._clear_pending()
        self.pump.resume()
        return {"state": self.pump.state()}

    def _do_clock_set(self, args):
        self._clear_pending()
        self.pump.set_clock(_arg(args, "wall_s", 0, 0x3FFFFFFF))
        return {"wall_s": self.pump.clock.wall_s()}

    def _do_acknowledge(self, args):
        return {"cleared": self.pump.acknowledge(_arg(args, "alarm", 1, A.N_ALARMS - 1))}

    def _do_alarm_test(self, args):
        self.pump.alarm_test()
        return {}

    def _do_patient_bolus(self, args):
        return {"volume_nl": self.pump.patient_bolus()}

    def _do_silence(self, args):
        return {"silenced": self.pump.silence()}
