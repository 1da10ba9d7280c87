# The programmer side of heap_driver.py's `link` run, in a module of its own
# so the core-only runs do not compile it: the link attached as on a board,
# and each day a programmer that says HELLO, asks for status, and asks for the
# patient bolus in a frame signed in that session.
import json
from binascii import unhexlify
from pump.link import Link, STATUS, PATIENT_BOLUS, HELLO
from pump import frames as F
from pump.hmac256 import HMAC256

KEY = b"patient key for the heap run 32b"
SERIAL = "HEAP-1"


class Programmer:
    """The link's byte port, the programmer's end: frames in, answers counted."""

    def __init__(self, pump):
        self.inbox = b""
        self.granted = 0
        self.nonce = None
        self.mac = HMAC256(KEY)
        self.days = 0
        self.link = Link(pump, self, {F.ROLE_PATIENT: KEY}, SERIAL)

    def read(self, n):
        d = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return d

    def write(self, frame):
        ans = json.loads(frame[4 + F.HEAD_LEN:-4])
        if ans.get("ok") and ans.get("volume_nl"):     # a bolus granted
            self.granted += 1
        if ans.get("session"):
            self.nonce = unhexlify(ans["session"])

    def daily(self, now_ms):
        self.days += 1
        n = 3 * self.days
        self.inbox = F.encode(HELLO, n, b"")
        self.link.poll(now_ms)
        self.inbox = (F.encode(STATUS, n + 1, b"{}") +
                      F.encode(PATIENT_BOLUS, n + 2, b"{}", F.ROLE_PATIENT, 1, self.mac,
                               F.handle(self.nonce), F.context(SERIAL, self.nonce)))
