"""Role keys for the programmer link.

A key file is JSON: {"patient": "<64 hex digits>", "clinician": "<64 hex digits>"}.
Keys are provisioned into a pump at build or flash time (and into the emulator
when it starts); they never travel over the link and are never logged. Where a
tool looks for them, first match wins:
  --keys FILE; $PUMP_KEYS (a file path); $PUMP_CLINICIAN_KEY / $PUMP_PATIENT_KEY
  (hex); ./pump-keys.json.
"""
import binascii
import json
import os

from pump.frames import ROLE_CLINICIAN, ROLE_PATIENT

DEFAULT_FILE = "pump-keys.json"
ROLES = {"patient": ROLE_PATIENT, "clinician": ROLE_CLINICIAN}


class KeyError_(ValueError):
    pass


def generate(path, force=False):
    """Write a new key file (mode 0600) and return its keys.

    An existing file is kept (FileExistsError): it may hold the keys a pump was
    provisioned with. force=True replaces it. The mode is set on the open file,
    so a replaced file does not keep its old permissions."""
    keys = {name: binascii.hexlify(os.urandom(32)).decode() for name in ROLES}
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            fd = None
            json.dump(keys, f, indent=1)
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
    return parse(keys, path)


def parse(obj, where):
    out = {}
    for name, role in ROLES.items():
        h = obj.get(name)
        if h is None:
            continue
        try:
            k = binascii.unhexlify(h)
        except (binascii.Error, TypeError, ValueError):
            raise KeyError_("%s: %s key is not hex" % (where, name))
        if len(k) < 16:
            raise KeyError_("%s: %s key is shorter than 16 bytes" % (where, name))
        out[role] = k
    return out


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
    """-> {role: key bytes} from the first source that exists (see above)."""
    if path:
        return load_file(path)
    if environ.get("PUMP_KEYS"):
        return load_file(environ["PUMP_KEYS"])
    env = {name: environ["PUMP_%s_KEY" % name.upper()] for name in ROLES if environ.get("PUMP_%s_KEY" % name.upper())}
    if env:
        return parse(env, "environment")
    if os.path.exists(DEFAULT_FILE):
        return load_file(DEFAULT_FILE)
    return {}
