# The board's record store (hw/store.py) on a real littlefs, with the power
# cut at each flash program of a write in turn, at every point of a run of
# writes (so at metadata compactions too):
#   micropython store_cuts.py MODE WRITES
# MODE: inplace (a key the pump writes at every stroke, rewritten through the
# file the store keeps open) or replace (any other key: a temporary file and
# a rename). Write k of the run is cut at its first program, then its second,
# ... until it completes; each time the flash is mounted again as the cut left
# it, and the record must read whole (write k-1's bytes or write k's, never a
# mix, never missing) and the other record must be untouched. Prints
# key=value lines.
import sys
import vfs
from ramflash import RamFlash
from hw.store import FileStore

BLOCK = 512
BLOCKS = 32                # a 16 KB file system: small, so it compacts often
ROOT = "/flash/pump"
KEY = "ledger.a"
OTHER = "therapy.a"
mode = sys.argv[1]
writes = int(sys.argv[2])
hot = (KEY,) if mode == "inplace" else ()


def value(n):
    return bytes([n % 251 + 1]) * 60


def unmount(store):
    store.close()
    vfs.umount("/flash")


dev = RamFlash(BLOCK, BLOCKS)
vfs.VfsLfs2.mkfs(dev)
vfs.mount(vfs.VfsLfs2(dev), "/flash")
store = FileStore(ROOT, hot)
store.write(OTHER, b"T" * 40)
unmount(store)
base = dev.data

outcome = {"old": 0, "new": 0, "mixed": 0, "missing": 0, "other_damaged": 0, "unfinished": 0}
progs_max = 0
progs_total = 0
for k in range(1, writes + 1):
    n = 1
    while True:
        dev = RamFlash(BLOCK, BLOCKS, base)
        vfs.mount(vfs.VfsLfs2(dev), "/flash")
        store = FileStore(ROOT, hot)
        for i in range(k):           # the run so far (the first opens a hot key's file)
            store.write(KEY, value(i))
        dev.progs = 0
        dev.cut_at = n
        try:
            store.write(KEY, value(k))
        except OSError:
            pass                     # littlefs found its own programs missing: still a cut
        cut = dev.dead()
        unmount(store)               # after a cut, nothing more reaches the chip
        vfs.mount(vfs.VfsLfs2(RamFlash(BLOCK, BLOCKS, dev.data)), "/flash")
        s = FileStore(ROOT)
        got = s.read(KEY)
        other = s.read(OTHER)
        vfs.umount("/flash")
        if got is None:
            outcome["missing"] += 1
        elif got == value(k - 1):
            outcome["old"] += 1
            if not cut:
                outcome["unfinished"] += 1   # a write that returned must have landed
        elif got == value(k):
            outcome["new"] += 1
        else:
            outcome["mixed"] += 1
        if other != b"T" * 40:
            outcome["other_damaged"] += 1
        if not cut:
            progs_max = max(progs_max, n - 1)
            progs_total += n - 1
            break
        n += 1

for key in sorted(outcome):
    print("%s=%d" % (key, outcome[key]))
print("writes=%d" % writes)
print("progs_max=%d" % progs_max)
print("progs_per_write_x100=%d" % (progs_total * 100 // writes))
