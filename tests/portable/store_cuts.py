# The board's record store (hw/store.py) on a real littlefs, writing as the
# pump does, with the power cut at each flash program of a write in turn, at
# every write of the run (so at metadata compactions too):
#   micropython store_cuts.py WRITES BLOCK_SIZE BLOCKS PROGSIZE
# The run: the ledger's copies (56 B) alternate at every stroke and the dose
# windows' (1324 B, stored in data blocks, not inline) at every third, all
# four kept open and rewritten in place; an event-log slot, the therapy and
# the link's counters are replaced by rename now and then, in the same
# directory. Write k is cut at its first program, then its second, ... until
# it completes; each time the flash is mounted again as the cut left it, and
# every record must read whole: the one being written old or new, every
# other as last written. Prints key=value lines.
import sys
import vfs
from ramflash import RamFlash
from hw.store import FileStore

writes = int(sys.argv[1])
BLOCK = int(sys.argv[2])
BLOCKS = int(sys.argv[3])
PROGSIZE = int(sys.argv[4])
ROOT = "/flash/pump"
HOT = ("ledger.a", "ledger.b", "window.a", "window.b")
SIZES = {"ledger": 56, "window": 1324, "log": 40, "therapy": 200, "link": 20}

run = []
for s in range(writes):
    run.append("ledger." + "ab"[s % 2])
    if s % 3 == 0:
        run.append("window." + "ab"[(s // 3) % 2])
    if s % 5 == 2:
        run.append("log.%02d" % ((s // 5) % 4))
    if s % 11 == 7:
        run.append("therapy.a")
    if s % 13 == 5:
        run.append("link.b")


def value(i, key):
    return bytes([i % 251 + 1]) * SIZES[key.split(".")[0]]


def kind(key):
    return key.split(".")[0] if key in HOT else "renamed"


def mount(dev):
    vfs.mount(vfs.VfsLfs2(dev, progsize=PROGSIZE), "/flash")


dev = RamFlash(BLOCK, BLOCKS)
vfs.VfsLfs2.mkfs(dev, progsize=PROGSIZE)
base = dev.data
out = {"cuts": 0, "old": 0, "new": 0, "bad": 0, "unfinished": 0}
progs = {}                      # kind -> [writes, programs]
for k in range(len(run)):
    key = run[k]
    n = 1
    while True:
        dev = RamFlash(BLOCK, BLOCKS, base)
        mount(dev)
        store = FileStore(ROOT, HOT)
        last = {}
        for i in range(k):      # the run so far
            store.write(run[i], value(i, run[i]))
            last[run[i]] = i
        dev.progs = 0
        dev.cut_at = n
        try:
            store.write(key, value(k, key))
        except OSError:
            pass                # littlefs found its own programs missing: still a cut
        cut = dev.dead()
        store.close()           # after a cut, nothing more reaches the chip
        vfs.umount("/flash")
        mount(RamFlash(BLOCK, BLOCKS, dev.data))
        s = FileStore(ROOT)
        for other in last:
            if other != key and s.read(other) != value(last[other], other):
                out["bad"] += 1
        got = s.read(key)
        vfs.umount("/flash")
        old = value(last[key], key) if key in last else None
        if got == value(k, key):
            out["new"] += 1
        elif got == old:
            out["old"] += 1
            if not cut:
                out["unfinished"] += 1    # a write that returned must have landed
        else:
            out["bad"] += 1
        if not cut:
            p = progs.setdefault(kind(key), [0, 0])
            p[0] += 1
            p[1] += n - 1
            break
        out["cuts"] += 1
        n += 1

out["writes"] = len(run)
for k in sorted(out):
    print("%s=%d" % (k, out[k]))
for k in sorted(progs):
    print("progs_x100_%s=%d" % (k, progs[k][1] * 100 // progs[k][0]))
