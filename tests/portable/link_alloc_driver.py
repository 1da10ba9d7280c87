# Bytes the programmer link allocates per bad frame, under the MicroPython
# unix port (core and link on MICROPYPATH):  micropython link_alloc_driver.py PROFILE
# A flood of one kind of bad frame comes in reads of up to the reader's room;
# after a few polls (the refusal's answer is made once, at first use) the
# heap allocated over many more polls is divided by the frames they held.
# Prints "<kind> frames=N bytes=B" lines.
import gc
import json
import struct
import sys
from fakeports import Hardware
from pump.controller import Pump
from pump.link import Link, BOLUS, STATUS
from pump.compat import crc32
from pump.session import SeededEntropy

with open(sys.argv[1]) as f:
    prof = json.load(f)
hw = Hardware(prof)
pump = Pump(prof, **hw.ports())
pump.start()


class Port:
    """Hands over the same bytes object at every read (the port's own
    allocation is not the link's); counts what the link writes."""

    def __init__(self):
        self.data = b""
        self.out = 0

    def read(self, n):
        d = self.data
        self.data = b""
        return d

    def write(self, d):
        self.out += len(d)


def frame(body):
    head = b"\xa5\x5a" + struct.pack("<H", len(body))
    return head + body + struct.pack("<I", crc32(head[2:] + body))


port = Port()
link = Link(pump, port, {2: b"k" * 32}, "ALLOC-1", SeededEntropy(b"alloc"))
room = link.reader.room()
KINDS = (
    ("noise", b"\x00" * 40),
    ("oversized", b"\xa5\x5a\xff\xff"),
    ("bad_crc", frame(struct.pack("<BBHBII", 2, STATUS, 1, 0, 0, 0))[:-1] + b"\x00"),
    ("bad_version", frame(struct.pack("<BBHBII", 1, STATUS, 1, 0, 0, 0))),
    ("auth_required", frame(struct.pack("<BBHBII", 2, BOLUS, 1, 0, 0, 0) + b"{}")),
    ("no_session", frame(struct.pack("<BBHBII", 2, BOLUS, 1, 2, 0, 1) + b"{}" + b"t" * 32)),
)
t = 0
for name, unit in KINDS:
    n = room // len(unit)
    chunk = unit * n
    for i in range(3):
        t += 1
        port.data = chunk
        link.poll(t)
    reps = 20
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    for i in range(reps):
        t += 1
        port.data = chunk
        link.poll(t)
    used = gc.mem_alloc() - a0
    gc.enable()
    print("%s frames=%d bytes=%d" % (name, n * reps, used))
print("refused=%d unanswered=%d" % (link.errors, link.unanswered))
