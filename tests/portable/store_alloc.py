# Bytes the board's record store (hw/store.py) allocates for the writes the
# pump makes at every stroke, on a real littlefs in RAM (as on a board), and
# the flash programs each costs; a replaced (renamed) record for comparison:
#   micropython store_alloc.py WRITES
import sys
import gc
import vfs
from ramflash import RamFlash
from hw.store import FileStore


def run(store, dev, key, n):
    rec = bytearray(64)                  # a framed record, reused as the pump does
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
dev = RamFlash(512, 64)
vfs.VfsLfs2.mkfs(dev)
vfs.mount(vfs.VfsLfs2(dev), "/flash")
store = FileStore("/flash/pump", hot=("ledger.a",))
hot_bytes, hot_progs = run(store, dev, "ledger.a", n)
cold_bytes, cold_progs = run(store, dev, "therapy.a", n)
print("writes=%d" % n)
print("hot_bytes=%d" % hot_bytes)
print("hot_progs=%d" % hot_progs)
print("replaced_bytes=%d" % cold_bytes)
print("replaced_progs=%d" % cold_progs)
