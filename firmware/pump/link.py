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
from pump.controller import CommandError, Refused, REFUSAL_NAMES, WALL_MAX_S
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
    """True if b is exactly one JSON value (RFC 8259) in ASCII, with optional
    white space around it. MicroPython's json reads more than that (a trailing
    comma, a missing colon, a leading zero, text after the value); the same
    signed frame must mean the same on a board as in the emulator, so the
    pump checks the grammar itself before parsing. Nesting is limited to 16."""
    n = len(b)
    for c in b:
        if c > 0x7E:
            return False        # hosts send ASCII (\u escapes for the rest)

    def ws(i):
        while i < n and b[i] in (0x20, 0x09, 0x0A, 0x0D):
            i += 1
        return i

    def digits(i):
        j = i
        while j < n and 0x30 <= b[j] <= 0x39:
            j += 1
        return j

    def string(i):              # b[i] is the opening quote
        i += 1
        while i < n:
            c = b[i]
            if c == 0x22:
                return i + 1
            if c < 0x20:
                return -1
            if c == 0x5C:
                i += 1
                if i >= n:
                    return -1
                e = b[i]
                if e == 0x75:   # \uXXXX
                    if i + 4 >= n:
                        return -1
                    for k in range(1, 5):
                        h = b[i + k]
                        if not (0x30 <= h <= 0x39 or 0x41 <= h <= 0x46 or 0x61 <= h <= 0x66):
                            return -1
                    i += 4
                elif e not in b'"\\/bfnrt':
                    return -1
            i += 1
        return -1

    def number(i):
        if b[i] == 0x2D:
            i += 1
        if i >= n:
            return -1
        if b[i] == 0x30:
            i += 1
        elif 0x31 <= b[i] <= 0x39:
            i = digits(i)
        else:
            return -1
        if i < n and b[i] == 0x2E:
            j = digits(i + 1)
            if j == i + 1:
                return -1
            i = j
        if i < n and b[i] in (0x65, 0x45):
            i += 1
            if i < n and b[i] in (0x2B, 0x2D):
                i += 1
            j = digits(i)
            if j == i:
                return -1
            i = j
        return i

    def value(i, depth):
        if depth > 16:
            return -1
        i = ws(i)
        if i >= n:
            return -1
        c = b[i]
        if c == 0x7B or c == 0x5B:          # { or [
            close = 0x7D if c == 0x7B else 0x5D
            i = ws(i + 1)
            if i < n and b[i] == close:
                return i + 1
            while True:
                if c == 0x7B:
                    i = ws(i)
                    if i >= n or b[i] != 0x22:
                        return -1
                    i = ws(string(i))
                    if i < 0 or i >= n or b[i] != 0x3A:
                        return -1
                    i += 1
                i = value(i, depth + 1)
                if i < 0:
                    return -1
                i = ws(i)
                if i >= n:
                    return -1
                if b[i] == 0x2C:
                    i += 1
                    continue
                return i + 1 if b[i] == close else -1
        if c == 0x22:
            return string(i)
        if c == 0x2D or 0x30 <= c <= 0x39:
            return number(i)
        for lit in (b"true", b"false", b"null"):
            if b[i:i + len(lit)] == lit:
                return i + len(lit)
        return -1

    end = value(0, 0)
    return end >= 0 and ws(end) == n


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
            if self.rec.damaged:
                # A copy failed its check: perhaps the newest (a flipped length
                # looks like a cut-off write), so the last frame accepted may be
                # newer than these counters. Move both on far enough that no
                # recorded frame is fresh (hosts read the new counters from
                # status), as the ledger counts one more stroke.
                self._skip(1)
        elif st == REC_CORRUPT or st == REC_OK or self.rec.damaged:
            # Every copy damaged: the counters are lost. The replay window
            # reopens for frames older than the loss; the pump says so.
            self.pump.log_event(E.STORAGE, 6, 0)

    def _skip(self, why):
        for role in (P, C):
            c = self.counters[role] + COUNTER_SKIP
            # at the top the role can send no more frames: better than a replay
            self.counters[role] = c if c <= 0xFFFFFFFF else 0xFFFFFFFF
        self.rec.save(struct.pack("<II", self.counters[P], self.counters[C]))
        self.pump.log_event(E.STORAGE, 6, why)

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
        log = self.pump.log
        recs = []
        for i in range(len(log)):
            r = log.entry(i)
            if r[0] > after and len(recs) < LOG_PAGE:
                recs.append(list(r))
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
        self.pump.set_clock(_arg(args, "wall_s", 0, WALL_MAX_S))
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
