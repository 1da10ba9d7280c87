# What the board's record store (hw/store.py) costs for the records the pump
# saves at every stroke, on a real littlefs in RAM with the Pico's geometry
# (4 KB blocks, progsize 256): bytes allocated and flash programs a write,
# kept open and rewritten in place against replaced by rename, for the
# ledger's record (56 B) and the dose windows' (1324 B); and the heap the
# kept-open files hold for good (their littlefs caches):
#   micropython store_alloc.py WRITES
import sys
import gc
import vfs
from ramflash import RamFlash
from hw.store import FileStore

PROGSIZE = 256


def run(store, dev, key, size, n):
    rec = bytearray(size)                # a framed record, reused as the pump does
    store.write(key, rec)                # the first write makes the file (and opens a hot one)
    gc.collect()
    gc.disable()
    a0 = gc.mem_alloc()
    p0 = dev.progs
    for i in range(n):
        rec[0] = i & 0xFF
        store.write(key, rec)
    used = gc.mem_alloc() - a0
    gc.enable()
    assert store.read(key) == rec
    return used, dev.progs - p0


n = int(sys.argv[1])
dev = RamFlash(4096, 64, lean=True)
vfs.VfsLfs2.mkfs(dev, progsize=PROGSIZE)
vfs.mount(vfs.VfsLfs2(dev, progsize=PROGSIZE), "/flash")
store = FileStore("/flash/pump", hot=("ledger.a", "window.a"))
print("writes=%d" % n)
for name, size in (("ledger", 56), ("window", 1324)):
    b, p = run(store, dev, name + ".a", size, n)
    print("%s_hot_bytes=%d" % (name, b))
    print("%s_hot_progs=%d" % (name, p))
    b, p = run(store, dev, name + ".b", size, n)
    print("%s_renamed_bytes=%d" % (name, b))
    print("%s_renamed_progs=%d" % (name, p))
gc.collect()
a = gc.mem_alloc()
store.close()
gc.collect()
print("held_per_open_file=%d" % ((a - gc.mem_alloc()) // 2))
