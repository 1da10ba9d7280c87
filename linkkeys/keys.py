"""Keys for the programmer link.

Every pump has its own role keys, derived from a master key and the pump's
serial (HKDF-SHA256, RFC 5869):

    PRK            = HMAC-SHA256(salt = "itb-pump link keys v2", master)
    key(role, SN)  = HMAC-SHA256(PRK, "role key" 00 role 00 SN 01)     (32 bytes)

with role "patient" or "clinician". A pump holds only its own two keys
(provisioned when it is flashed: `make flash ... SERIAL=SN`), so keys read out
of one pump open no other, and a frame signed for one pump is refused by all
the others.

Key files are JSON, mode 0600:
  master:  {"master": "<64 hex digits>"}                 (pumpctl keys new)
  pump:    {"serial": "SN", "patient": "<64 hex>", "clinician": "<64 hex>"}
           (pumpctl keys derive --serial SN; either role may be left out:
           a patient's remote holds only the patient key)
  legacy:  {"patient": ..., "clinician": ...}  role keys bound to no serial.
Keys never travel over the link and are never logged. Where a tool looks for
them, first match wins: --keys FILE; $PUMP_KEYS (a file path);
$PUMP_CLINICIAN_KEY / $PUMP_PATIENT_KEY (hex); ./pump-keys.json.
"""
import binascii
import hashlib
import hmac
import json
import os

from pump.frames import ROLE_CLINICIAN, ROLE_PATIENT
from pump.session import valid_serial

DEFAULT_FILE = "pump-keys.json"
ROLES = {"patient": ROLE_PATIENT, "clinician": ROLE_CLINICIAN}
SALT = b"itb-pump link keys v2"


class KeyError_(ValueError):
    pass


def hkdf_extract(salt, ikm):
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length):
    out, t, i = b"", b"", 0
    while len(out) < length:
        i += 1
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
    return out[:length]


def derive(master, serial, role_name):
    """The role key of pump `serial` under `master` (32 bytes)."""
    if not valid_serial(serial):
        raise KeyError_("%r is not a pump serial (1 to 32 of A-Z a-z 0-9 - _ .)" % (serial,))
    info = b"role key\x00" + role_name.encode() + b"\x00" + serial.encode()
    return hkdf_expand(hkdf_extract(SALT, master), info, 32)


class KeySet:
    """What one key source holds: a master key, or role keys (bound to a
    serial or not)."""

    def __init__(self, roles=None, serial=None, master=None, where=""):
        self.roles = dict(roles or {})
        self.serial = serial
        self.master = master
        self.where = where

    @classmethod
    def of(cls, keys):
        """A KeySet from a KeySet, a {role: key} dict (unbound) or None."""
        if isinstance(keys, KeySet):
            return keys
        return cls(roles=keys or {})

    def has(self, role):
        return self.master is not None or role in self.roles

    def for_serial(self, serial):
        """-> {role: key} for the pump with this serial."""
        if self.master is not None:
            return {role: derive(self.master, serial, name) for name, role in ROLES.items()}
        if self.serial is not None and serial and self.serial != serial:
            raise KeyError_("%s holds the keys of pump %s; the pump on this port is %s"
                            % (self.where or "the key file", self.serial, serial))
        return dict(self.roles)


def _write_new(path, obj, force):
    """Write obj as JSON to a new file (mode 0600). An existing file is kept
    (FileExistsError): it may hold keys a pump was provisioned with, or the
    master. force=True replaces it. The mode is set on the open file, so a
    replaced file does not keep its old permissions."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            fd = None
            json.dump(obj, f, indent=1)
    except BaseException:
        if fd is not None:
            os.close(fd)
        if not force:
            # a file this call created and could not finish: leave nothing half-written
            try:
                os.unlink(path)
            except OSError:
                pass
        raise


def generate(path, force=False):
    """Write a new master key file: -> its KeySet."""
    obj = {"master": binascii.hexlify(os.urandom(32)).decode()}
    _write_new(path, obj, force)
    return parse(obj, path)


def write_pump_file(path, keyset, serial, roles=("patient", "clinician"), force=False):
    """Derive (or take) the keys of pump `serial` and write them, with the
    serial, to a pump key file: -> the dict written."""
    keys = keyset.for_serial(serial)
    obj = {"serial": serial}
    for name in roles:
        k = keys.get(ROLES[name])
        if k is None:
            raise KeyError_("%s has no %s key" % (keyset.where or "the key source", name))
        obj[name] = binascii.hexlify(k).decode()
    _write_new(path, obj, force)
    return obj


def _hex_key(h, where, name):
    try:
        k = binascii.unhexlify(h)
    except (binascii.Error, TypeError, ValueError):
        raise KeyError_("%s: %s key is not hex" % (where, name))
    if len(k) < 16:
        raise KeyError_("%s: %s key is shorter than 16 bytes" % (where, name))
    return k


def parse(obj, where):
    if "master" in obj:
        return KeySet(master=_hex_key(obj["master"], where, "master"), where=where)
    out = {}
    for name, role in ROLES.items():
        h = obj.get(name)
        if h is not None:
            out[role] = _hex_key(h, where, name)
    serial = obj.get("serial")
    if serial is not None and not valid_serial(serial):
        raise KeyError_("%s: %r is not a pump serial" % (where, serial))
    return KeySet(roles=out, serial=serial, where=where)


def load_file(path):
    try:
        with open(path) as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise KeyError_("%s: no such key file (make one with: pumpctl keys new %s)" % (path, path))
    except ValueError as e:
        raise KeyError_("%s: not a JSON key file: %s" % (path, e))
    except OSError as e:        # a directory, no permission, an I/O error
        raise KeyError_("%s: cannot read the key file: %s" % (path, e.strerror or e))
    if not isinstance(obj, dict):
        raise KeyError_("%s: not a JSON object" % path)
    return parse(obj, path)


def find(path=None, environ=os.environ):
    """-> the KeySet of the first source that exists (see above)."""
    if path:
        return load_file(path)
    if environ.get("PUMP_KEYS"):
        return load_file(environ["PUMP_KEYS"])
    env = {name: environ["PUMP_%s_KEY" % name.upper()] for name in ROLES if environ.get("PUMP_%s_KEY" % name.upper())}
    if env:
        return parse(env, "environment")
    if os.path.exists(DEFAULT_FILE):
        return load_file(DEFAULT_FILE)
    return KeySet()
