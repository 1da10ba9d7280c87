# The few things that differ between MicroPython and CPython, guarded here so
# every other module imports one name and runs on both.
from sys import maxsize

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from binascii import crc32 as _crc32
except ImportError:  # a board built without binascii.crc32
    _crc32 = None

# On a 32-bit board a small int has 31 bits: a CRC-32 of 2**30 or more is a heap
# object, and a record is framed at every stroke. There the CRC is computed in
# two 16-bit halves (the same CRC-32, IEEE, as binascii's), so nothing on the
# hot path allocates; where ints are 64-bit (CPython, the unix port) the C
# routine is used and split.
WIDE_INTS = maxsize > (1 << 62)
_T_HI = None
_T_LO = None


def _tables():
    global _T_HI, _T_LO
    from array import array
    hi_t = array("H", bytes(512))
    lo_t = array("H", bytes(512))
    for n in range(256):
        hi, lo = 0, n
        for _ in range(8):
            carry = lo & 1
            lo = (lo >> 1) | ((hi & 1) << 15)
            hi >>= 1
            if carry:
                hi ^= 0xEDB8
                lo ^= 0x8320
        hi_t[n] = hi
        lo_t[n] = lo
    _T_HI, _T_LO = hi_t, lo_t


def crc32_halves(data):
    """CRC-32 of data as (high 16 bits, low 16 bits), with small ints only."""
    if _T_HI is None:
        _tables()
    th, tl = _T_HI, _T_LO
    hi = 0xFFFF
    lo = 0xFFFF
    for b in data:
        i = (lo ^ b) & 0xFF
        lo = ((lo >> 8) | ((hi & 0xFF) << 8)) ^ tl[i]
        hi = (hi >> 8) ^ th[i]
    return hi ^ 0xFFFF, lo ^ 0xFFFF


def crc32_parts(data):
    """CRC-32 of data as (high 16 bits, low 16 bits)."""
    if WIDE_INTS and _crc32 is not None:
        c = _crc32(data) & 0xFFFFFFFF
        return c >> 16, c & 0xFFFF
    return crc32_halves(data)


def crc32(data):
    """CRC-32 as one int (tests and tools; the firmware uses crc32_parts)."""
    hi, lo = crc32_parts(data)
    return (hi << 16) | lo
