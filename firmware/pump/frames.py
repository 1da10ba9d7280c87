# Programmer-link framing over a byte stream (USB CDC, UART, a pty, TCP).
#
# Frame:  A5 5A | len:u16 | body (len bytes) | crc32:u32 over len and body
# Body:   ver:u8 | type:u8 | seq:u16 | role:u8 | counter:u32 | payload | tag
#   payload: JSON (UTF-8); tag: HMAC-SHA256 over ver..payload, 32 bytes, present
#   only when role is patient or clinician (never for role 0, "no key").
# The reader keeps at most one frame's worth of bytes. A frame that is too
# long, fails its CRC, or stops arriving (no byte for gap_ms) is dropped with an
# error, and the reader looks for the next A5 5A: it resynchronises by itself.
import struct
from pump.compat import const, crc32_parts

SYNC = b"\xa5\x5a"
VERSION = const(1)
HEAD = "<BBHBI"
HEAD_LEN = const(9)
TAG_LEN = const(32)
MAX_BODY = const(1024)       # what the pump accepts; its answers may be longer
MAX_ANSWER = const(8192)     # what a host accepts
ROLE_NONE = const(0)
ROLE_PATIENT = const(1)
ROLE_CLINICIAN = const(2)
ROLE_NAMES = ("none", "patient", "clinician")

# reader results besides a frame
GOOD = const(0)
NOISE = const(1)        # bytes that are not a frame start
OVERSIZED = const(2)    # a length over the limit
BAD_CRC = const(3)
TRUNCATED = const(4)    # the rest of the frame never came
SHORT = const(5)        # a length under a header


def encode(ftype, seq, payload, role=ROLE_NONE, counter=0, mac=None):
    body = struct.pack(HEAD, VERSION, ftype, seq & 0xFFFF, role, counter & 0xFFFFFFFF) + payload
    if role != ROLE_NONE:
        body += mac.digest(body)
    head = SYNC + struct.pack("<H", len(body))
    hi, lo = crc32_parts(head[2:] + body)
    return head + body + struct.pack("<HH", lo, hi)


def split_body(body):
    """-> (ver, type, seq, role, counter, payload, signed_part, tag) or None if
    the body is shorter than its header and tag."""
    if len(body) < HEAD_LEN:
        return None
    ver, ftype, seq, role, counter = struct.unpack_from(HEAD, body, 0)
    if role == ROLE_NONE:
        return ver, ftype, seq, role, counter, body[HEAD_LEN:], body, b""
    if len(body) < HEAD_LEN + TAG_LEN:
        return None
    end = len(body) - TAG_LEN
    return ver, ftype, seq, role, counter, body[HEAD_LEN:end], body[:end], body[end:]


class Reader:
    def __init__(self, max_body=MAX_BODY, gap_ms=500):
        self.max_body = max_body
        self.gap_ms = gap_ms
        self.buf = bytearray()
        self.last_ms = 0
        self.dropped = 0      # bytes thrown away while resynchronising

    def feed(self, data, now_ms):
        if data:
            self.buf += data
            self.last_ms = now_ms
            # never hold more than one whole frame plus what may follow it
            cap = 2 * (self.max_body + 8)
            if len(self.buf) > cap:
                self.dropped += len(self.buf) - cap
                self.buf = self.buf[len(self.buf) - cap:]

    def _drop(self, n):
        self.dropped += n
        self.buf = self.buf[n:]

    def next(self, now_ms):
        """-> (GOOD, body) | (error, None) | None when more bytes are needed."""
        buf = self.buf
        if not buf:
            return None
        i = buf.find(SYNC)
        if i < 0:
            # keep a last A5: it may be the first half of a sync
            keep = 1 if buf[-1] == 0xA5 else 0
            if len(buf) - keep == 0:
                return None
            self._drop(len(buf) - keep)
            return NOISE, None
        if i > 0:
            self._drop(i)
            return NOISE, None
        if len(buf) < 4:
            return self._wait(now_ms)
        (n,) = struct.unpack_from("<H", buf, 2)
        if n > self.max_body or n < HEAD_LEN:
            self._drop(2)
            return (OVERSIZED if n > self.max_body else SHORT), None
        if len(buf) < 8 + n:
            return self._wait(now_ms)
        lo, hi = struct.unpack_from("<HH", buf, 4 + n)
        if (hi, lo) != crc32_parts(bytes(buf[2:4 + n])):
            self._drop(2)
            return BAD_CRC, None
        body = bytes(buf[4:4 + n])
        self.buf = buf[8 + n:]
        return GOOD, body

    def _wait(self, now_ms):
        # ticks-style difference: right across the 2**30 wrap of time.ticks_ms
        if (now_ms - self.last_ms) & 0x3FFFFFFF >= self.gap_ms:
            self._drop(2 if len(self.buf) >= 2 else len(self.buf))
            return TRUNCATED, None
        return None
