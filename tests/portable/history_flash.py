# What the pump's records take of a board's flash: the board's store
# (hw/store.py) on a real littlefs in RAM with the board's geometry, holding
# every record the pump keeps (ledger, windows, therapy, identity, the link's
# epoch and its 16 summaries) and an event log of LOG_SIZE records, each
# written a few times over (as a ring is). Blocks in use, from statvfs, with
# the log and without it:
#   micropython history_flash.py BLOCK_BYTES BLOCKS PROG_BYTES LOG_SIZE
# Prints used_bytes=, empty_bytes=.
import sys
import vfs
from ramflash import RamFlash
from hw.store import FileStore

BLOCK = int(sys.argv[1])
BLOCKS = int(sys.argv[2])
PROG = int(sys.argv[3])
LOG = int(sys.argv[4])
RECORDS = (("ledger.a", 56), ("ledger.b", 56), ("window.a", 1324), ("window.b", 1324), ("therapy.a", 400),
           ("therapy.b", 400), ("ident.a", 24), ("link.a", 16), ("link.b", 16))
EVENT = 34              # an event-log record as framed (pump.eventlog, pump.record)


def used(log_size):
    dev = RamFlash(BLOCK, BLOCKS)
    vfs.VfsLfs2.mkfs(dev, progsize=PROG)
    fs = vfs.VfsLfs2(dev, progsize=PROG)
    vfs.mount(fs, "/flash")
    try:
        store = FileStore("/flash/pump", hot=("ledger.a", "ledger.b", "window.a", "window.b"))
        for key, n in RECORDS:
            store.write(key, bytes(n))
        for i in range(16):
            store.write("noise.%02d" % i, bytes(EVENT))
        for rnd in range(3):
            for i in range(log_size):
                store.write("log.%02d" % i, bytes([rnd]) * EVENT)
        store.close()
        st = vfs.statvfs("/flash") if hasattr(vfs, "statvfs") else __import__("os").statvfs("/flash")
        return (st[2] - st[3]) * st[0]
    finally:
        vfs.umount("/flash")


print("empty_bytes=%d" % used(0))
print("used_bytes=%d" % used(LOG))
