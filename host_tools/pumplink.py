"""Client for the pump's programmer link, over anything pyserial opens: a device
(/dev/ttyACM0), a pseudo-terminal path, or a URL such as socket://localhost:4000.
The frame format and the MAC are the firmware's own modules (pump.frames,
pump.hmac256): one implementation on both ends.

A signed request needs a session: the client sends HELLO first (once per
connection), learns the pump's serial and session nonce, takes the role keys
for that serial (derived from a master key, or from a pump key file for that
serial) and counts its own frames from 1. When the pump answers
stale_session (it restarted, another HELLO replaced the session, or the
counters are used up) nothing was done: the client starts a new session and
sends the request once more."""
import json
import os
import select
import socket
import time

import serial

from pump import frames as F
from pump import link as L
from pump.hmac256 import HMAC256
from linkkeys.keys import KeySet


SEQ0_GRACE_S = 0.3

# what a port raises when it goes away in use (a pty whose other end closed, a
# USB device unplugged): pyserial's own error, an OSError, or, from flush()
# (tcdrain) on POSIX, termios.error, which is neither
try:
    import termios
    PORT_ERRORS = (serial.SerialException, OSError, termios.error)
except ImportError:     # Windows
    PORT_ERRORS = (serial.SerialException, OSError)


class TcpPort:
    """socket://HOST:PORT without pyserial's socket handler, which reports at
    most one byte waiting (an answer was read a byte at a time) and leaves
    Nagle on. The pyserial calls PumpClient makes: read, in_waiting, write,
    flush, close."""

    def __init__(self, url, timeout):
        hostport = url[len("socket://"):].split("/")[0]
        host, _, port = hostport.rpartition(":")
        try:
            self.sock = socket.create_connection((host or "localhost", int(port)), timeout=3)
        except ValueError:
            raise ValueError("not a socket://HOST:PORT URL: %s" % url)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.timeout = timeout
        self.eof = False

    def read(self, n=1):
        """Up to n bytes: what has come, waiting at most the timeout for the first."""
        if self.eof:
            raise serial.SerialException("the pump closed the connection")
        r, _, _ = select.select([self.sock], [], [], self.timeout)
        if not r:
            return b""
        data = self.sock.recv(n)
        if not data:
            self.eof = True
            raise serial.SerialException("the pump closed the connection")
        return data

    @property
    def in_waiting(self):
        r, _, _ = select.select([self.sock], [], [], 0)
        return 65536 if r else 0

    def write(self, data):
        self.sock.setblocking(True)
        try:
            self.sock.sendall(data)
        finally:
            self.sock.setblocking(False)
        return len(data)

    def flush(self):
        pass

    def close(self):
        self.sock.close()


class LinkDown(Exception):
    """The port could not be opened, failed while in use (PORT_ERRORS), or the
    pump did not answer in time."""


class MissingKey(Exception):
    """A request needs a role key this client was not given."""


class PumpError(Exception):
    """The pump answered with an error frame."""

    def __init__(self, answer):
        Exception.__init__(self, answer.get("message", ""))
        self.answer = answer
        self.code = answer.get("error", 0)
        self.name = answer.get("name", "")


class PumpClient:
    def __init__(self, port, keys=None, timeout=3.0, baudrate=115200):
        try:
            if port.startswith("socket://"):
                self.ser = TcpPort(port, timeout=0.02)
            else:
                self.ser = serial.serial_for_url(port, baudrate=baudrate, timeout=0.02)
        except PORT_ERRORS + (ValueError,) as e:
            raise LinkDown("cannot open %s: %s" % (port, e))
        self.port = port
        self.timeout = timeout
        self.keys = KeySet.of(keys)
        self.macs = None            # the role keys for this pump, once its serial is known
        self.reader = F.Reader(max_body=F.MAX_ANSWER)
        self.unread = bytearray()   # bytes read but not yet taken by the reader
        self.seq = int.from_bytes(os.urandom(2), "little")
        self.serial = None
        self.session = None         # (handle, context) of the current session
        self.counters = None
        self.sent = 0

    def close(self):
        self.ser.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _now_ms(self):
        return int(time.monotonic() * 1000)

    def _lost(self, e):
        # a request already on its way may have been carried out: say so, so
        # nobody repeats a bolus on the strength of this error alone
        return LinkDown("lost the link to %s: %s (a request already sent may have been carried out: "
                        "check with status or interrogate before repeating it)" % (self.port, e))

    def send_raw(self, data):
        """Write bytes as they are (tests and fuzzing)."""
        try:
            self.ser.write(data)
            self.ser.flush()
        except PORT_ERRORS as e:
            raise self._lost(e)

    def _read_some(self):
        """One byte (waiting up to the port's short timeout), then all that is there."""
        try:
            data = self.ser.read(1)
            if data and self.ser.in_waiting:
                data += self.ser.read(self.ser.in_waiting)
        except PORT_ERRORS as e:
            raise self._lost(e)
        return data

    def read_answer(self, seq=None, timeout=None):
        """-> (type, seq, answer dict) of the answer frame with this seq.

        The pump answers a frame it could not read (CRC, length, cut short) with
        an error carrying seq 0: it may have been this request, or other bytes
        on the line. Such an error is the answer only if no answer with this
        seq follows within SEQ0_GRACE_S: taking it at once could report a
        failure for a request the pump then carries out (and a retry would do
        it twice). Errors about noise between frames are never the answer."""
        end = time.monotonic() + (self.timeout if timeout is None else timeout)
        seq0 = None
        while True:
            if self.unread and self.reader.room():
                n = self.reader.feed(bytes(self.unread[:self.reader.room()]), self._now_ms())
                del self.unread[:n]
            r = self.reader.next(self._now_ms())
            if r is not None:
                status, body = r
                if status != F.GOOD:
                    continue
                parts = F.split_body(body)
                if parts is None:
                    continue
                _, ftype, aseq, _, _, payload, _, _ = parts
                try:
                    answer = json.loads(payload)
                except ValueError:
                    continue
                if seq is None or aseq == seq:
                    return ftype, aseq, answer
                if ftype == L.ERROR and aseq == 0 and answer.get("error") != L.E_NOISE and seq0 is None:
                    seq0 = (ftype, aseq, answer)
                    end = min(end, time.monotonic() + SEQ0_GRACE_S)
                continue
            if time.monotonic() > end:
                if seq0 is not None:
                    return seq0
                raise LinkDown("no answer from %s within %.1f s" % (self.port, self.timeout))
            data = self._read_some()
            if data:
                self.unread += data

    def frame(self, ftype, args=None, role=F.ROLE_NONE, counter=None):
        """-> (seq, frame bytes) for a request, signed with role's key in the
        current session (started here if there is none)."""
        payload = json.dumps(args or {}, separators=(",", ":")).encode() if args or role else b""
        if role == F.ROLE_NONE:
            self.seq = (self.seq + 1) & 0xFFFF
            return self.seq, F.encode(ftype, self.seq, payload)
        if not self.keys.has(role):
            raise MissingKey("no %s key: give --keys FILE or set PUMP_KEYS" % F.ROLE_NAMES[role])
        if self.session is None:
            self.hello()
        self.seq = (self.seq + 1) & 0xFFFF
        mac = self.macs.get(role)
        if mac is None:
            raise MissingKey("no %s key for pump %s" % (F.ROLE_NAMES[role], self.serial))
        if counter is None:
            counter = self.next_counter(role)
        handle, ctx = self.session
        return self.seq, F.encode(ftype, self.seq, payload, role, counter, mac, handle, ctx)

    def hello(self):
        """Start a session: -> the pump's answer (serial, session nonce, protocol)."""
        ans = self.call(L.HELLO)
        serial = ans.get("serial") or ""
        try:
            nonce = bytes.fromhex(ans["session"])
        except (KeyError, TypeError, ValueError):
            raise LinkDown("%s answered hello without a session nonce: is it a pump speaking protocol %d?"
                           % (self.port, F.VERSION))
        if self.macs is None or serial != self.serial:
            self.macs = {role: HMAC256(k) for role, k in self.keys.for_serial(serial).items()}
        self.serial = serial
        self.session = (F.handle(nonce), F.context(serial, nonce))
        self.counters = {F.ROLE_PATIENT: 0, F.ROLE_CLINICIAN: 0}
        return ans

    def next_counter(self, role):
        self.counters[role] += 1
        return self.counters[role]

    def call(self, ftype, args=None, role=F.ROLE_NONE):
        """Send one request; -> the answer dict, or PumpError / LinkDown."""
        for attempt in (0, 1):
            seq, data = self.frame(ftype, args, role)
            self.send_raw(data)
            self.sent += 1
            atype, _, answer = self.read_answer(seq)
            if atype == L.ERROR or not answer.get("ok"):
                if answer.get("error") == L.E_STALE and role != F.ROLE_NONE and attempt == 0:
                    # refused before anything was done: a new session, then once more
                    self.session = None
                    continue
                raise PumpError(answer)
            return answer

    # --- requests ---------------------------------------------------------
    def status(self):
        return self.call(L.STATUS)

    def interrogate(self):
        return self.call(L.INTERROGATE)

    def program(self, prog):
        """Step one: -> the pump's read-back and the token to confirm it with."""
        return self.call(L.PROGRAM, {"program": prog}, F.ROLE_CLINICIAN)

    def confirm(self, token):
        return self.call(L.CONFIRM, {"token": token}, F.ROLE_CLINICIAN)

    def refill(self, volume_nl, concentration_ug_ml, residual_nl):
        return self.call(L.REFILL, {"volume_nl": volume_nl, "concentration_ug_ml": concentration_ug_ml,
                                    "residual_nl": residual_nl}, F.ROLE_CLINICIAN)

    def bolus(self, dose_ug, duration_min):
        return self.call(L.BOLUS, {"dose_ug": dose_ug, "duration_min": duration_min}, F.ROLE_CLINICIAN)

    def prime(self, duration_min, volume_nl=None):
        args = {"duration_min": duration_min}
        if volume_nl is not None:
            args["volume_nl"] = volume_nl
        return self.call(L.PRIME, args, F.ROLE_CLINICIAN)

    def patient_bolus(self):
        return self.call(L.PATIENT_BOLUS, {}, F.ROLE_PATIENT)

    def suspend(self):
        return self.call(L.SUSPEND, {}, F.ROLE_CLINICIAN)

    def resume(self):
        return self.call(L.RESUME, {}, F.ROLE_CLINICIAN)

    def set_clock(self, wall_s):
        return self.call(L.CLOCK_SET, {"wall_s": wall_s}, F.ROLE_CLINICIAN)

    def acknowledge(self, alarm_code):
        return self.call(L.ACK, {"alarm": alarm_code}, F.ROLE_CLINICIAN)

    def silence(self):
        role = F.ROLE_PATIENT if self.keys.has(F.ROLE_PATIENT) else F.ROLE_CLINICIAN
        return self.call(L.SILENCE, {}, role)

    def alarm_test(self):
        return self.call(L.ALARM_TEST, {}, F.ROLE_CLINICIAN)

    def log(self, ring="therapy"):
        """Every record the pump still holds in a log ring (therapy, or link:
        the link's summaries of refused frames), oldest first."""
        out, after = [], 0
        while True:
            args = {"after_seq": after}
            if ring != "therapy":
                args["ring"] = ring
            page = self.call(L.LOG, args, F.ROLE_CLINICIAN)
            recs = page["records"]
            if not recs:
                return page["fields"], out
            out.extend(recs)
            after = recs[-1][0]
