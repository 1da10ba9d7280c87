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


def generate(path):
    """Write a new key file (mode 0600) and return its keys."""
    keys = {name: binascii.hexlify(os.urandom(32)).decode() for name in ROLES}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keys, f, indent=1)
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
