# The few things that differ between MicroPython and CPython, guarded here so
# every other module imports one name and runs on both.
from sys import maxsize, modules, implementation
from struct import pack_into, unpack_from

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from uctypes import addressof as _addressof, bytearray_at as _bytearray_at
except ImportError:  # CPython: memoryview.cast does it (byte_view)
    _addressof = _bytearray_at = None

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
_T24 = None       # CRC-32 table split: bits 8..31 (24 bits, a small int everywhere)
_T8 = None        # and bits 0..7


def _tables():
    global _T24, _T8
    from array import array
    t24 = array("I", bytes(1024))
    t8 = array("B", bytes(256))
    for n in range(256):
        hi, lo = 0, n          # the table entry as 16-bit halves, to stay small
        for _ in range(8):
            carry = lo & 1
            lo = (lo >> 1) | ((hi & 1) << 15)
            hi >>= 1
            if carry:
                hi ^= 0xEDB8
                lo ^= 0x8320
        t24[n] = (hi << 8) | (lo >> 8)
        t8[n] = lo & 0xFF
    _T24, _T8 = t24, t8


def crc32_into(data, buf, off, wide=True):
    """Write the CRC-32 of data into buf[off:off + 4], little-endian, allocating
    nothing (a record is framed in place at every stroke). wide=False forces
    the small-int routine (a 64-bit host's tests check it against binascii)."""
    if wide and WIDE_INTS and _crc32 is not None:
        pack_into("<I", buf, off, _crc32(data) & 0xFFFFFFFF)
        return
    if _T24 is None:
        _tables()
    t24, t8 = _T24, _T8
    a = 0xFFFFFF       # the CRC register held as bits 8..31 and bits 0..7:
    b = 0xFF           # both small ints on a 32-bit board
    for x in data:
        i = b ^ x
        b = (a & 0xFF) ^ t8[i]
        a = (a >> 8) ^ t24[i]
    pack_into("<BBH", buf, off, b ^ 0xFF, (a & 0xFF) ^ 0xFF, (a >> 8) ^ 0xFFFF)


def _halves(data, wide):
    b = bytearray(4)
    crc32_into(data, b, 0, wide)
    lo, hi = unpack_from("<HH", b, 0)
    return hi, lo


def crc32_halves(data):
    """CRC-32 of data as (high 16 bits, low 16 bits), with small ints only."""
    return _halves(data, False)


def crc32_parts(data):
    """CRC-32 of data as (high 16 bits, low 16 bits)."""
    return _halves(data, True)


def byte_view(arr, nbytes):
    """A writable bytes view of an array's memory (no copy): records whose
    payload is an array are framed in it. MicroPython's memoryview has no
    cast(), so there it is a uctypes view, valid while arr is alive."""
    if hasattr(memoryview, "cast"):        # CPython
        return memoryview(arr).cast("B")
    if _addressof is None:
        raise ImportError("this MicroPython has no uctypes: the pump's records are framed with it")
    return _bytearray_at(_addressof(arr), nbytes)


def forget_module(name):
    """Give a module's memory back: code a board needs once (at start) is
    loaded for it and dropped after. Only on MicroPython: under CPython the
    module stays (the emulator restarts the pump often, and tests patch it)."""
    if implementation.name == "micropython":
        modules.pop(name, None)
        pkg, _, mod = name.rpartition(".")
        parent = modules.get(pkg)
        if parent is not None and hasattr(parent, mod):
            delattr(parent, mod)     # the package keeps its submodules as attributes too


def crc32(data):
    """CRC-32 as one int (tests and tools; the firmware uses crc32_parts)."""
    hi, lo = crc32_parts(data)
    return (hi << 16) | lo


if not WIDE_INTS:
    _tables()       # at import on a 32-bit board: the first record save allocates nothing
