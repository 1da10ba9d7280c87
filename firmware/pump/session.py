# Link sessions: the pump's identity and a fresh nonce per session.
#
# A programmer starts a session with HELLO; the pump answers with its serial
# and a new 16-byte nonce. Every signed frame of the session is tagged over
# the serial and that nonce (pump.frames.context), and carries a counter that
# must rise within the session. Sessions live in RAM only: a reset, a new
# HELLO on the same channel, or a counter at its maximum ends one, and its
# frames are then worth nothing. Nonces must never repeat, so each is a hash
# of fresh entropy (a port: os.urandom, the board's hardware RNG, handed in by
# main.py; a seeded source in the emulator's tests), the boot epoch (a
# count of link starts kept in the store), the event log's sequence at the
# start and the session's number in this boot: unique even where the entropy
# is seeded (the emulator, for reproducible runs) or weak.
import hashlib
import struct

from pump import frames as F
from pump.record import ABRecord, OK as REC_OK, CORRUPT as REC_CORRUPT

SERIAL_MAX = 32
# storage event codes (kind STORAGE): which record was damaged
STORE_LINK = 6
STORE_IDENT = 7


def valid_serial(s):
    """1 to 32 of A-Z a-z 0-9 - _ . (it is shown, logged and put in file names)."""
    if not isinstance(s, str) or not 0 < len(s) <= SERIAL_MAX:
        return False
    for c in s:
        if not ("0" <= c <= "9" or "A" <= c <= "Z" or "a" <= c <= "z" or c in "-_."):
            return False
    return True


class SeededEntropy:
    """Deterministic bytes from a seed (SHA-256 in counter mode), for the
    emulator and the tests: a run can be repeated. Never on a board."""

    def __init__(self, seed):
        self.seed = bytes(seed)
        self.n = 0

    def __call__(self, k):
        out = b""
        while len(out) < k:
            self.n += 1
            out += hashlib.sha256(self.seed + struct.pack("<I", self.n)).digest()
        return out[:k]


class Session:
    def __init__(self, nonce, serial):
        self.nonce = nonce
        self.ctx = F.context(serial, nonce)
        self.counters = [0, 0, 0]     # the last counter accepted, per role


class Identity:
    """The pump's serial and its boot epoch, kept in the store.

    The serial is written once, from the provisioning (the key file flashed
    with the firmware), and kept: keys provisioned for another serial are not
    used. The epoch counts link starts; it is saved before any session of this
    start exists, so no two starts make the same nonces."""

    def __init__(self, store, provisioned=None, entropy=None, log_event=None, mark=0):
        """mark: a number that grows from start to start whatever happens to
        this record (the event log's sequence: each start logs its reset), so
        a start that lost the epoch still makes nonces of its own even with
        seeded entropy."""
        self.entropy = entropy        # callable(n) -> n random bytes, or None (then the
        #                               epoch, the mark and the count alone keep nonces unique)
        self.log_event = log_event
        self.mark = mark
        self.mismatch = None          # the provisioned serial, if it is not this pump's
        self.ident = ABRecord(store, "ident")
        self.serial = self._serial(provisioned)
        self.rec = ABRecord(store, "link")
        self.epoch = self._epoch()
        self.made = 0                 # sessions started since this start

    def _log(self, code, a=0):
        if self.log_event is not None:
            self.log_event(code, a)

    def _serial(self, provisioned):
        if provisioned is not None and not valid_serial(provisioned):
            provisioned = None
        st, pay = self.ident.load()
        if st == REC_OK:
            try:
                stored = pay.decode()
            except Exception:
                stored = None
            if stored is not None and valid_serial(stored):
                if provisioned is not None and provisioned != stored:
                    self.mismatch = provisioned
                return stored
            st = REC_CORRUPT
        if st == REC_CORRUPT:
            self._log(STORE_IDENT)
        if provisioned is None:
            return ""                 # not provisioned: the link answers reads only
        self.ident.save(provisioned.encode())
        return provisioned

    def _epoch(self):
        st, pay = self.rec.load()
        if st == REC_OK and len(pay) == 4:
            e = struct.unpack("<I", pay)[0]
            if self.rec.damaged:
                # the newest copy may be the damaged one: its epoch must not be used again
                e += 1
                self._log(STORE_LINK)
        else:
            # never written, or lost: start somewhere no earlier start is likely
            # to have been (32 random bits), so old nonces do not come back
            e = 0
            if self.entropy is not None:
                b = self.entropy(4)
                e = (b[0] | (b[1] << 8) | (b[2] << 16) | ((b[3] & 0x3F) << 24))
            if st == REC_CORRUPT:
                self._log(STORE_LINK)
        e = (e + 1) & 0x3FFFFFFF      # a small int on every board
        self.rec.save(struct.pack("<I", e))
        return e

    def new_session(self):
        self.made += 1
        h = hashlib.sha256(b"itb-session")
        if self.entropy is not None:
            h.update(self.entropy(F.NONCE_LEN))
        h.update(struct.pack("<III", self.epoch, self.made, self.mark & 0xFFFFFFFF))
        h.update(self.serial.encode())
        return Session(h.digest()[:F.NONCE_LEN], self.serial)
