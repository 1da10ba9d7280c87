# The programmer link: requests in frames (pump.frames), checked for authority
# (invariant I8) and carried out through the pump's own command interface.
#
# Roles: status, interrogate and hello need no key; the patient may ask for
# the programmed bolus and silence alarms; everything else is the clinician's.
# A programmer first sends HELLO on its channel (the byte stream it uses) and
# gets the pump's serial and a fresh session nonce (pump.session). A signed
# frame is accepted only in the channel's current session: its tag covers the
# protocol version, the serial, the nonce, the role, the counter and the whole
# request, and its counter must be above the last one accepted from its role
# in the session. A frame recorded in one session is worth nothing in any
# other: after a new HELLO, a reset, or on another pump.
# Programming takes two steps: PROGRAM answers with the pump's read-back and a
# token; only CONFIRM with that token puts the program in force.
#
# Bad frames cost the pump little: the reader checks them in its fixed buffer,
# refusals that need no key to provoke are answered from frames made once
# (only their seq and CRC change), and error answers on a channel are paid for
# by the bytes that came in on it, a byte for every ERROR_RATE (4) bytes in, at
# most ERROR_CREDIT (4 KB) in hand, which a new channel starts with: over any
# stretch, error bytes out are at most a quarter of bytes in plus 4 KB (a
# transmitter is a battery's cost on an implant). What is not answered is
# counted, shown by status and summarised in the link's own log (pump.linklog),
# never in the therapy's. Nothing a frame holds can make an exception escape poll().
import hashlib
import json
import struct
from binascii import hexlify

from pump import frames as F
from pump import alarms as A
from pump.compat import const, crc32_into
from pump.stops import CommandError, Refused, REFUSAL_NAMES, WALL_MAX_S
from pump.hmac256 import HMAC256, equal
from pump.governor import CAP_HOURLY
from pump.linklog import LinkNoise, BIT_OTHER
from pump.program import ProgramError
from pump.session import Identity
from pump import eventlog as E

# request types (an answer has type | 0x80; an error answer is ERROR)
STATUS = const(0x01)
INTERROGATE = const(0x02)
LOG = const(0x03)
HELLO = const(0x04)
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
E_STALE = const(18)
ERROR_NAMES = ("", "bad_frame", "oversized", "truncated", "bad_version", "unknown_request", "bad_payload",
               "auth_required", "bad_tag", "replay", "wrong_role", "refused", "program_error",
               "command_error", "not_pending", "internal", "no_key", "noise", "stale_session")
# the bit of a link summary record (pump.linklog) for each authority refusal
CODE_BITS = {E_AUTH_REQUIRED: 1, E_BAD_TAG: 2, E_REPLAY: 4, E_WRONG_ROLE: 8, E_NO_KEY: 16, E_STALE: 32}

P = F.ROLE_PATIENT
C = F.ROLE_CLINICIAN
# type -> (name, roles allowed (() means no key needed), changes what the pump does)
REQUESTS = {
    STATUS: ("status", (), False), INTERROGATE: ("interrogate", (), False), HELLO: ("hello", (), False),
    LOG: ("log", (C,), False), PROGRAM: ("program", (C,), False), CONFIRM: ("confirm", (C,), True),
    REFILL: ("refill", (C,), True), BOLUS: ("bolus", (C,), True), PRIME: ("prime", (C,), True),
    SUSPEND: ("suspend", (C,), True), RESUME: ("resume", (C,), True), CLOCK_SET: ("clock_set", (C,), True),
    ACK: ("acknowledge", (C,), True), ALARM_TEST: ("alarm_test", (C,), True),
    PATIENT_BOLUS: ("patient_bolus", (P,), True), SILENCE: ("silence", (P, C), True),
}
PENDING_MS = const(600000)     # a program read back must be confirmed within 10 min
LOG_PAGE = const(12)           # log records per answer
COUNTER_MAX = 0xFFFFFFFF       # the last counter of a session's role: a new session starts again at 1
ERROR_CREDIT = const(4096)     # error-answer bytes a channel may have in hand
ERROR_RATE = const(4)          # bytes in that earn one byte of error answer
OUT_SOFT = const(2048)         # a port holding this many answer bytes takes no new frame
MAX_CHANNELS = const(8)
STAT_CAP = const(0x3FFFFFFF)   # link counters stop here (small ints on every board)

# Messages of the refusals a sender without a key can provoke: constant, so
# their answers are made once (_Templates) and sent without allocating.
M_NOISE = "bytes between frames dropped"
M_BAD_CRC = "frame dropped: CRC mismatch"
M_SHORT = "frame dropped: length under a header"
M_OVERSIZED = "frame dropped: length over 1024"
M_TRUNCATED = "frame dropped: the rest did not come within 500 ms"
M_VERSION = "protocol version not spoken here: this pump speaks 2"
M_BODY = "body shorter than its header and tag"
M_UNKNOWN = "unknown request type"
M_ROLE = "unknown role"
M_NO_KEY = "this pump has no key for that role"
M_KEYS_FOR_OTHER = "the keys provisioned are for another pump: this pump uses none"
M_NO_SESSION = "no session on this channel: send hello first"
M_STALE = "the frame is not of this channel's current session: send hello"
M_USED_UP = "the session's counters for this role are used up: send hello"
M_BAD_TAG = "the tag does not match (a wrong key, another pump or session, or a changed byte)"
M_REPLAY = "the counter is not above the last accepted in this session"
M_ARGS = "this request takes no arguments: send {} or nothing"
_READER = {F.NOISE: (E_NOISE, M_NOISE), F.BAD_CRC: (E_BAD_FRAME, M_BAD_CRC), F.OVERSIZED: (E_OVERSIZED, M_OVERSIZED),
           F.TRUNCATED: (E_TRUNCATED, M_TRUNCATED), F.SHORT: (E_BAD_FRAME, M_SHORT)}


def strict_json(b):
    """True if b is exactly one JSON value (RFC 8259) in ASCII, with optional
    white space around it. MicroPython's json reads more than that (a trailing
    comma, a missing colon, a leading zero, text after the value); the same
    signed frame must mean the same on a board as in the emulator, so the
    pump checks the grammar itself before parsing. Containers nest at most 16
    deep (the outer object is depth 1)."""
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
        i = ws(i)
        if i >= n:
            return -1
        c = b[i]
        if c == 0x7B or c == 0x5B:          # { or [
            if depth >= 16:
                return -1
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


def _add(x, n):
    return x + n if x < STAT_CAP - n else STAT_CAP


def _message(code, key):
    """The message of a refusal that names roles (key & 3: the role used, for
    wrong_role; the roles allowed, for auth_required, as a bit set)."""
    if code == E_AUTH_REQUIRED:
        return "this request needs the %s key" % " or ".join(F.ROLE_NAMES[r] for r in (P, C) if key & r)
    return "this request is not allowed for the %s role" % F.ROLE_NAMES[key & 3]


class _Templates:
    """Error answers made once per message: (frame, view of its CRC'd part).
    Sending one patches its seq and CRC in place. Not copied with the link
    (views cannot be): a copy makes its own on first use."""

    def __init__(self):
        self.t = {}

    def __deepcopy__(self, memo):
        return _Templates()

    def get(self, code, message, key):
        t = self.t.get(key)
        if t is None:
            if message is None:
                message = _message(code, key)
            obj = {"ok": False, "error": code, "name": ERROR_NAMES[code], "message": message}
            f = bytearray(F.encode(ERROR, 0, json.dumps(obj).encode()))
            t = self.t[key] = (f, memoryview(f)[2:len(f) - 4])
        return t


class Channel:
    """One byte stream to the pump (the board's USB or UART; one connection
    of the emulator's TCP server): its reader, its session, its error credit."""

    def __init__(self, port):
        self.port = port
        self.reader = F.Reader()
        self.session = None
        self.credit = ERROR_CREDIT     # the first damaged frames are answered; then bytes in pay
        self.earned = 0


class Link:
    def __init__(self, pump, port, keys, serial=None, entropy=None):
        """keys: {ROLE_PATIENT: bytes, ROLE_CLINICIAN: bytes}, provisioned at
        build or flash time for this pump's serial; a role without a key
        cannot be used. serial: the serial they were provisioned for (kept in
        the store at the first start). entropy: a port, callable(n) -> n
        random bytes (os.urandom on a board; a seeded one in the emulator's
        tests), or None. port: the first channel's byte port (None: channels
        are attached later). A start writes the boot epoch (and, the first
        time, the serial) to the store."""
        self.pump = pump
        self.ident = Identity(pump.store, serial, entropy, self._storage_event, pump.log.seq)
        self.serial = self.ident.serial
        self.macs = {}
        if self.ident.mismatch is None:
            for role in (P, C):
                k = keys.get(role)
                if k:
                    self.macs[role] = HMAC256(k)
        self.noise = LinkNoise(pump)
        self.channels = []
        if port is not None:
            self.attach(port)
        self.pending = None        # [token, Program, day, ms]
        self.frames_in = 0         # good frames handled
        self.errors = 0            # frames refused (answered or not)
        self.dropped = 0           # drops by the reader (noise runs, damaged or cut-off frames)
        self.unanswered = 0        # refusals not answered: the channel's error credit was spent
        self.bytes_in = 0
        self.bytes_out = 0
        self._tmpl = _Templates()

    def _storage_event(self, code, a=0):
        self.pump.log_event(E.STORAGE, code, a)

    # ------------------------------------------------------------ channels
    def attach(self, port):
        """A new channel on port: -> the Channel, or None when there are
        MAX_CHANNELS already."""
        if len(self.channels) >= MAX_CHANNELS:
            return None
        ch = Channel(port)
        self.channels.append(ch)
        return ch

    def detach(self, port):
        """The channel on port is gone (a connection closed): its session ends."""
        self.channels = [ch for ch in self.channels if ch.port is not port]

    # the first channel, as before channels (a board has only one)
    @property
    def port(self):
        return self.channels[0].port

    @port.setter
    def port(self, p):
        self.channels[0].port = p

    @property
    def reader(self):
        return self.channels[0].reader

    @property
    def counters(self):
        """[0, patient, clinician]: the first channel's session counters."""
        s = self.channels[0].session if self.channels else None
        return list(s.counters) if s is not None else [0, 0, 0]

    def waiting(self):
        """Bytes held in the readers (a frame half read, or frames waiting
        for room to answer): the caller should poll again soon."""
        for ch in self.channels:
            if ch.reader.pending():
                return True
        return False

    # ------------------------------------------------------------ the stream
    def poll(self, now_ms):
        """Read what each channel's port has (one reader's room at most, so a
        flood cannot hold the pump here), answer every whole frame.
        -> True if a request may have changed therapy (the main loop then
        cycles at once)."""
        changed = False
        for ch in self.channels:
            try:
                if self._poll(ch, now_ms):
                    changed = True
            except Exception:
                pass                # a port that fails: the next poll tries again
        try:
            self.noise.tick()
        except Exception:
            pass
        return changed

    def _poll(self, ch, now_ms):
        r = ch.reader
        port = ch.port
        room = r.room()
        if room > 0:
            data = port.read(room)
            if data:
                n = len(data)
                r.feed(data, now_ms)
                self.bytes_in = _add(self.bytes_in, n)
                e = ch.earned + n      # a byte of error answer for every ERROR_RATE bytes in
                c = ch.credit + e // ERROR_RATE
                ch.earned = e % ERROR_RATE
                ch.credit = c if c < ERROR_CREDIT else ERROR_CREDIT
        changed = False
        busy = getattr(port, "busy", None)
        while busy is None or not busy():
            st = r.scan(now_ms)
            if st is None:
                break
            if st != F.GOOD:
                self.dropped = _add(self.dropped, 1)
                code, msg = _READER[st]
                self._refuse(ch, 0, code, msg, BIT_OTHER)
                continue
            self.frames_in = _add(self.frames_in, 1)
            try:
                if self._handle(ch):
                    changed = True
            except Exception:       # nothing a frame holds may stop the pump
                self.errors = _add(self.errors, 1)
                self._send_error(ch, self._seq_at(r), E_INTERNAL, "the request failed inside the pump")
        return changed

    @staticmethod
    def _seq_at(r):
        return r.buf[r.at + 2] | (r.buf[r.at + 3] << 8)

    def _write(self, ch, data):
        ch.port.write(data)
        self.bytes_out = _add(self.bytes_out, len(data))

    def _send(self, ch, ftype, seq, obj):
        self._write(ch, F.encode(ftype, seq, json.dumps(obj).encode()))

    def _send_error(self, ch, seq, code, message, extra=None):
        obj = {"ok": False, "error": code, "name": ERROR_NAMES[code], "message": message}
        if extra:
            obj.update(extra)
        self._send(ch, ERROR, seq, obj)

    def _refuse(self, ch, seq, code, message, bit, key=None):
        """A refusal anyone can provoke: counted, summarised in the link's log,
        and answered only while the channel's error credit lasts. Allocates
        nothing (but the first time: its answer is made once; there are at most
        a few dozen). message: a constant; or None, and key (code * 4 + roles,
        see _message) names it."""
        self.errors = _add(self.errors, 1)
        self.noise.count(bit)
        f, view = self._tmpl.get(code, message, message if key is None else key)
        n = len(f)
        if ch.credit < n:
            self.unanswered = _add(self.unanswered, 1)
            return False
        ch.credit -= n
        f[6] = seq & 0xFF
        f[7] = seq >> 8
        crc32_into(view, f, n - 4)
        self._write(ch, f)
        return False

    # ------------------------------------------------------------ one request
    def _handle(self, ch):
        """The good frame in ch's reader. Everything up to the tag is checked
        in the reader's buffer; a frame refused there allocates nothing."""
        r = ch.reader
        buf, at, n = r.buf, r.at, r.n
        seq = buf[at + 2] | (buf[at + 3] << 8)
        if buf[at] != F.VERSION:
            return self._refuse(ch, seq, E_VERSION, M_VERSION, BIT_OTHER)
        if n < F.HEAD_LEN:
            return self._refuse(ch, seq, E_BAD_FRAME, M_BODY, BIT_OTHER)
        ftype = buf[at + 1]
        req = REQUESTS.get(ftype)
        if req is None:
            return self._refuse(ch, seq, E_UNKNOWN, M_UNKNOWN, BIT_OTHER)
        name, roles, changes = req
        role = buf[at + 4]
        if role > C:
            return self._refuse(ch, seq, E_WRONG_ROLE, M_ROLE, CODE_BITS[E_WRONG_ROLE])
        if role == F.ROLE_NONE:
            if roles:
                return self._refuse(ch, seq, E_AUTH_REQUIRED, None, CODE_BITS[E_AUTH_REQUIRED],
                                    E_AUTH_REQUIRED * 4 + (P if P in roles else 0) + (C if C in roles else 0))
            # the key-less requests take no arguments
            pl = n - F.HEAD_LEN
            if pl and not (pl == 2 and buf[at + 13] == 0x7B and buf[at + 14] == 0x7D):
                return self._refuse(ch, seq, E_PAYLOAD, M_ARGS, BIT_OTHER)
            args = None
        else:
            mac = self.macs.get(role)
            if mac is None:
                return self._refuse(ch, seq, E_NO_KEY, M_NO_KEY if self.ident.mismatch is None
                                    else M_KEYS_FOR_OTHER, CODE_BITS[E_NO_KEY])
            s = ch.session
            if s is None:
                return self._refuse(ch, seq, E_STALE, M_NO_SESSION, CODE_BITS[E_STALE])
            nonce = s.nonce
            if (buf[at + 5] != nonce[0] or buf[at + 6] != nonce[1] or buf[at + 7] != nonce[2]
                    or buf[at + 8] != nonce[3]):
                return self._refuse(ch, seq, E_STALE, M_STALE, CODE_BITS[E_STALE])
            if n < F.HEAD_LEN + F.TAG_LEN:
                return self._refuse(ch, seq, E_BAD_FRAME, M_BODY, BIT_OTHER)
            body = bytes(buf[at:at + n])
            end = n - F.TAG_LEN
            if not equal(mac.digest(body[:end], s.ctx), body[end:]):
                return self._refuse(ch, seq, E_BAD_TAG, M_BAD_TAG, CODE_BITS[E_BAD_TAG])
            if roles and role not in roles:
                return self._refuse(ch, seq, E_WRONG_ROLE, None, CODE_BITS[E_WRONG_ROLE], E_WRONG_ROLE * 4 + role)
            last = s.counters[role]
            if last == COUNTER_MAX:
                return self._refuse(ch, seq, E_STALE, M_USED_UP, CODE_BITS[E_STALE])
            counter = struct.unpack_from("<I", body, 9)[0]
            if counter <= last:
                return self._refuse(ch, seq, E_REPLAY, M_REPLAY, CODE_BITS[E_REPLAY])
            s.counters[role] = counter
            args = body[F.HEAD_LEN:end]
        try:
            if args is None:
                args = {}
            else:
                if args and not strict_json(args):
                    raise LinkError(E_PAYLOAD, "payload is not plain JSON")
                try:
                    args = json.loads(args) if args else {}
                except Exception:
                    raise LinkError(E_PAYLOAD, "payload is not JSON")
                if not isinstance(args, dict):
                    raise LinkError(E_PAYLOAD, "payload must be a JSON object")
            answer = getattr(self, "_do_" + name)(args, ch)
        except LinkError as e:
            self.errors = _add(self.errors, 1)
            self._send_error(ch, seq, e.code, e.message, e.extra)
            return False
        except ProgramError as e:
            self._send_error(ch, seq, E_PROGRAM, "%s: %s" % (e.field, e.reason), {"field": e.field, "reason": e.reason})
            return False
        except CommandError as e:
            self._send_error(ch, seq, E_COMMAND, "%s: %s" % (e.field, e.reason), {"field": e.field, "reason": e.reason})
            return False
        except Refused as e:
            why = REFUSAL_NAMES[e.code] if 0 <= e.code < len(REFUSAL_NAMES) else str(e.code)
            self._send_error(ch, seq, E_REFUSED, "refused: " + why, self._refusal_detail(why, e.detail))
            return False
        answer["ok"] = True
        self._send(ch, ftype | 0x80, seq, answer)
        return changes

    def _refusal_detail(self, why, detail):
        """The numbers behind a refusal, for the programmer to show: the
        detail the pump logged with it (seconds of lockout left, grants in
        24 h, usable nL, which cap) and, for the caps, the cap and what the
        window already holds, in nL. Read only: nothing here changes a dose."""
        extra = {"reason": why, "detail": detail}
        if why == "dose_limit":
            g = self.pump.governor
            if detail == CAP_HOURLY:
                extra["cap"] = "hourly"
                extra["cap_nl"] = g.cap_hour * g.stroke_nl
                extra["used_nl"] = g.hour.total * g.stroke_nl
            else:
                extra["cap"] = "daily"
                extra["cap_nl"] = g.cap_day * g.stroke_nl
                extra["used_nl"] = g.day.total * g.stroke_nl
        return extra

    # ------------------------------------------------------------ requests
    def stats(self):
        """What the link refused and dropped (status shows it)."""
        return {"frames": self.frames_in, "refused": self.errors, "dropped": self.dropped,
                "unanswered": self.unanswered, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                "overflow": sum(ch.reader.overflow for ch in self.channels),
                "noise_records": len(self.noise.log)}

    def _counters(self, ch):
        s = ch.session
        return [s.counters[P], s.counters[C]] if s is not None else [0, 0]

    def _do_hello(self, args, ch):
        s = ch.session = self.ident.new_session()
        return {"protocol": F.VERSION, "serial": self.serial, "session": hexlify(s.nonce).decode(),
                "roles": [F.ROLE_NAMES[r] for r in (P, C) if r in self.macs]}

    def _do_status(self, args, ch):
        p = self.pump
        return {"state": p.state(), "alarms": [A.name(c) for c in p.alarms.codes()],
                "reservoir_nl": p.reservoir.remaining_nl(), "battery_permille": p.battery.level,
                "wall_s": p.clock.wall_s(), "counters": self._counters(ch), "serial": self.serial,
                "link": self.stats()}

    def _do_interrogate(self, args, ch):
        st = self.pump.status()
        st["counters"] = self._counters(ch)
        st["pending_program"] = self.pending[0] if self.pending is not None else None
        st["log_seq"] = self.pump.log.seq
        st["serial"] = self.serial
        st["link"] = self.stats()
        return st

    def _do_log(self, args, ch):
        after = _arg(args, "after_seq", 0, 0x7FFFFFFF, 0)
        ring = args.get("ring", "therapy")
        if ring == "therapy":
            log = self.pump.log
        elif ring == "link":
            log = self.noise.log
        else:
            raise LinkError(E_PAYLOAD, "ring must be therapy or link")
        recs = []
        for i in range(len(log)):
            r = log.entry(i)
            if r[0] > after and len(recs) < LOG_PAGE:
                recs.append(list(r))
        return {"records": recs, "last_seq": log.seq, "ring": ring,
                "fields": ["seq", "day", "ms", "wall_s", "kind", "code", "a", "b"]}

    def _do_program(self, args, ch):
        raw = args.get("program")
        if not isinstance(raw, dict):
            raise LinkError(E_PAYLOAD, "program must be a table")
        prog = self.pump.check_program(raw)
        rb = prog.readback()
        h = hashlib.sha256(_canon(rb).encode())
        h.update(ch.session.nonce)
        h.update(struct.pack("<I", ch.session.counters[C]))
        token = hexlify(h.digest()[:6]).decode()
        t = self.pump.time
        self.pending = [token, prog, t.day, t.ms]
        return {"readback": rb, "token": token, "confirm_within_s": PENDING_MS // 1000}

    def _do_confirm(self, args, ch):
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

    def _do_refill(self, args, ch):
        self._clear_pending()
        cap = self.pump.reservoir.capacity_nl
        status = self.pump.refill(_arg(args, "volume_nl", 1, cap), _arg(args, "concentration_ug_ml", 1, 100000),
                                  _arg(args, "residual_nl", 0, cap))
        # the residual compared with what the pump expected, within its accuracy
        return {"reconcile": "discrepancy" if status else "ok", "state": self.pump.state()}

    def _do_bolus(self, args, ch):
        self._clear_pending()
        nl = self.pump.clinician_bolus(_arg(args, "dose_ug", 1, 100000), _arg(args, "duration_min", 1, 1440))
        return {"volume_nl": nl}

    def _do_prime(self, args, ch):
        self._clear_pending()
        vol = args.get("volume_nl")
        if vol is None:
            nl = self.pump.prime(_arg(args, "duration_min", 1, 240))
        else:
            nl = self.pump.prime(_arg(args, "duration_min", 1, 240), _arg(args, "volume_nl", 1, 10000000))
        return {"volume_nl": nl}

    def _do_suspend(self, args, ch):
        self._clear_pending()
        self.pump.suspend()
        return {"state": self.pump.state()}

    def _do_resume(self, args, ch):
        self._clear_pending()
        self.pump.resume()
        return {"state": self.pump.state()}

    def _do_clock_set(self, args, ch):
        self._clear_pending()
        self.pump.set_clock(_arg(args, "wall_s", 0, WALL_MAX_S))
        return {"wall_s": self.pump.clock.wall_s()}

    def _do_acknowledge(self, args, ch):
        return {"cleared": self.pump.acknowledge(_arg(args, "alarm", 1, A.N_ALARMS - 1))}

    def _do_alarm_test(self, args, ch):
        self.pump.alarm_test()
        return {}

    def _do_patient_bolus(self, args, ch):
        return {"volume_nl": self.pump.patient_bolus()}

    def _do_silence(self, args, ch):
        return {"silenced": self.pump.silence()}
