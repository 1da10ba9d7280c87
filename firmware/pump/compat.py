# The few things that differ between MicroPython and CPython, guarded here so
# every other module imports one name and runs on both.
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from binascii import crc32 as _crc32

    def crc32(data):
        return _crc32(data) & 0xFFFFFFFF
except ImportError:  # a board built without binascii.crc32
    def crc32(data):
        c = 0xFFFFFFFF
        for b in data:
            c ^= b
            for _ in range(8):
                c = (c >> 1) ^ (0xEDB88320 & -(c & 1))
        return c ^ 0xFFFFFFFF
