# Programmer-link framing over a byte stream (USB CDC, UART, a pty, TCP).
#
# Frame:  A5 5A | len:u16 | body (len bytes) | crc32:u32 over len and body
# Body:   ver:u8 | type:u8 | seq:u16 | role:u8 | session:u32 | counter:u32 | payload | tag
#   payload: JSON in ASCII; tag: HMAC-SHA256, 32 bytes, present only when role
#   is patient or clinician (never for role 0, "no key"), over the session's
#   context (the pump's serial and the session nonce, see context()) and then
#   the body up to the tag. session: the first 4 bytes of the session nonce,
#   little-endian (0 when there is no session): a handle, not a secret.
# The reader is one buffer of fixed size made at start: it takes bytes only as
# far as it has room (the rest waits in the port), looks for A5 5A, checks the
# length and the CRC in place, and hands a good frame's place in the buffer to
# the link. A frame that is too long, fails its CRC, or stops arriving (no byte
# for gap_ms) is dropped and the reader looks for the next A5 5A: it
# resynchronises by itself, and nothing it does to a bad frame allocates.
import struct
from pump import compat
from pump.compat import const, crc32_parts

try:
    import micropython  # noqa: F401 (only to know which runtime this is)
    MICROPYTHON = True
except ImportError:
    MICROPYTHON = False

SYNC = b"\xa5\x5a"
VERSION = const(2)
HEAD = "<BBHBII"
HEAD_LEN = const(13)
MIN_BODY = const(4)          # ver, type and seq: enough to answer with the seq
TAG_LEN = const(32)
NONCE_LEN = const(16)
MAX_BODY = const(1024)       # what the pump accepts; its answers may be longer
MAX_ANSWER = const(8192)     # what a host accepts
ROLE_NONE = const(0)
ROLE_PATIENT = const(1)
ROLE_CLINICIAN = const(2)
ROLE_NAMES = ("none", "patient", "clinician")
CONTEXT_TAG = b"ITB-LINK-2"

# reader results
GOOD = const(0)
NOISE = const(1)        # bytes that are not a frame start
OVERSIZED = const(2)    # a length over the limit
BAD_CRC = const(3)
TRUNCATED = const(4)    # the rest of the frame never came
SHORT = const(5)        # a length under MIN_BODY

def crc32_check(buf, a, b):
    """Is the CRC-32 of buf[a:b] the 4 bytes at buf[b:b + 4] (little-endian)?
    A frame is checked where it lies, allocating nothing: on MicroPython a
    slice of the buffer would be a new object, so the table routine walks the
    indices; CPython (hosts, the emulator) takes a view for the C routine."""
    if MICROPYTHON:
        if compat._T24 is None:
            compat._tables()     # (the core's CRC tables)
        t24, t8 = compat._T24, compat._T8
        x = 0xFFFFFF
        y = 0xFF
        for i in range(a, b):
            j = y ^ buf[i]
            y = (x & 0xFF) ^ t8[j]
            x = (x >> 8) ^ t24[j]
        return (buf[b] == y ^ 0xFF and buf[b + 1] == (x & 0xFF) ^ 0xFF
                and (buf[b + 2] | (buf[b + 3] << 8)) == (x >> 8) ^ 0xFFFF)
    want = buf[b] | (buf[b + 1] << 8) | (buf[b + 2] << 16) | (buf[b + 3] << 24)
    return compat._crc32(memoryview(buf)[a:b]) & 0xFFFFFFFF == want


def context(serial, nonce):
    """What every tag of a session covers before the frame's own bytes: the
    protocol, the pump's identity and the session nonce. A frame signed for
    one pump or one session is worth nothing in any other."""
    s = serial.encode() if isinstance(serial, str) else bytes(serial)
    return CONTEXT_TAG + bytes([len(s)]) + s + bytes(nonce)


def handle(nonce):
    """The session field of a frame signed in the session of this nonce."""
    return nonce[0] | (nonce[1] << 8) | (nonce[2] << 16) | (nonce[3] << 24)


def encode(ftype, seq, payload, role=ROLE_NONE, counter=0, mac=None, session=0, ctx=b""):
    body = struct.pack(HEAD, VERSION, ftype, seq & 0xFFFF, role, session & 0xFFFFFFFF,
                       counter & 0xFFFFFFFF) + payload
    if role != ROLE_NONE:
        body += mac.digest(body, ctx)
    head = SYNC + struct.pack("<H", len(body))
    hi, lo = crc32_parts(head[2:] + body)
    return head + body + struct.pack("<HH", lo, hi)


def split_body(body):
    """-> (ver, type, seq, role, counter, payload, signed_part, tag) or None if
    the body is shorter than its header and tag."""
    if len(body) < HEAD_LEN:
        return None
    ver, ftype, seq, role, _session, counter = struct.unpack_from(HEAD, body, 0)
    if role == ROLE_NONE:
        return ver, ftype, seq, role, counter, body[HEAD_LEN:], body, b""
    if len(body) < HEAD_LEN + TAG_LEN:
        return None
    end = len(body) - TAG_LEN
    return ver, ftype, seq, role, counter, body[HEAD_LEN:end], body[:end], body[end:]


def session_of(body):
    return struct.unpack_from("<I", body, 5)[0] if len(body) >= HEAD_LEN else 0


def _move(buf, dst, src, n):
    """buf[dst:dst + n] = buf[src:src + n] (dst < src) without a temporary copy."""
    if MICROPYTHON:
        for i in range(n):
            buf[dst + i] = buf[src + i]
    else:
        buf[dst:dst + n] = buf[src:src + n]


class Reader:
    def __init__(self, max_body=MAX_BODY, gap_ms=500):
        self.max_body = max_body
        self.gap_ms = gap_ms
        self.cap = 2 * (max_body + 8)
        self.buf = bytearray(self.cap)
        self.start = 0        # unread bytes are buf[start:end]
        self.end = 0
        self.last_ms = 0
        self.dropped = 0      # bytes thrown away while resynchronising
        self.overflow = 0     # bytes handed over with no room for them (lost)
        self.at = 0           # the last good frame's body: buf[at:at + n]
        self.n = 0

    def pending(self):
        return self.end - self.start

    def room(self):
        """How many bytes feed() can take now."""
        return self.cap - (self.end - self.start)

    def feed(self, data, now_ms):
        """Take data, as far as there is room: -> the number of bytes taken.
        A caller that reads at most room() bytes loses nothing; bytes beyond
        room() are counted in overflow (the reader never grows)."""
        n = len(data)
        if not n:
            return 0
        if self.end + n > self.cap and self.start:
            m = self.end - self.start
            _move(self.buf, 0, self.start, m)
            self.start, self.end = 0, m
        k = self.cap - self.end
        if n > k:
            self.overflow += n - k
            data = data[:k]
            n = k
        self.buf[self.end:self.end + n] = data
        self.end += n
        self.last_ms = now_ms
        return n

    def _drop_to(self, i):
        self.dropped += i - self.start
        self.start = i
        if i == self.end:
            self.start = self.end = 0

    def scan(self, now_ms):
        """The next thing in the stream, in place: None when more bytes are
        needed, GOOD (the body is buf[at:at + n], valid until the next feed),
        or why bytes were dropped."""
        buf, s, e = self.buf, self.start, self.end
        if s == e:
            return None
        i = buf.find(SYNC, s, e)
        if i < 0:
            # keep a last A5: it may be the first half of a sync
            keep = 1 if buf[e - 1] == 0xA5 else 0
            if e - keep == s:
                return None
            self._drop_to(e - keep)
            return NOISE
        if i > s:
            self._drop_to(i)
            return NOISE
        if e - s < 4:
            return self._wait(now_ms)
        n = buf[s + 2] | (buf[s + 3] << 8)
        if n > self.max_body or n < MIN_BODY:
            self._drop_to(s + 2)
            return OVERSIZED if n > self.max_body else SHORT
        if e - s < 8 + n:
            return self._wait(now_ms)
        if not crc32_check(buf, s + 2, s + 4 + n):
            self._drop_to(s + 2)
            return BAD_CRC
        self.at, self.n = s + 4, n
        self.start = s + 8 + n
        if self.start == e:
            self.start = self.end = 0   # the body stays where it is until the next feed
        return GOOD

    def next(self, now_ms):
        """-> (GOOD, body bytes) | (error, None) | None when more bytes are
        needed (hosts and tests: the body is copied)."""
        r = self.scan(now_ms)
        if r is None:
            return None
        if r == GOOD:
            return GOOD, bytes(self.buf[self.at:self.at + self.n])
        return r, None

    def _wait(self, now_ms):
        # ticks-style difference: right across the 2**30 wrap of time.ticks_ms
        if (now_ms - self.last_ms) & 0x3FFFFFFF >= self.gap_ms:
            self._drop_to(self.start + (2 if self.end - self.start >= 2 else 1))
            return TRUNCATED
        return None
