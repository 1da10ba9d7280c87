# HMAC-SHA256 (RFC 2104) over hashlib.sha256, because MicroPython has no hmac
# module. The suite proves it equal to CPython's hmac (tests/test_link_hmac.py).
import hashlib

_BLOCK = 64


class HMAC256:
    """A keyed MAC: the padded keys are computed once, at provisioning."""

    def __init__(self, key):
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        key = bytes(key) + bytes(_BLOCK - len(key))
        self._ipad = bytes([b ^ 0x36 for b in key])
        self._opad = bytes([b ^ 0x5C for b in key])

    def digest(self, msg, prefix=b""):
        """The tag of prefix + msg (the link's session context, then the
        frame), without joining them into a new buffer."""
        inner = hashlib.sha256(self._ipad)
        if prefix:
            inner.update(prefix)
        inner.update(msg)
        outer = hashlib.sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()


def digest(key, msg):
    return HMAC256(key).digest(msg)


def equal(a, b):
    """Compare two tags in time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0
