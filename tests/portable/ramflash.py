# A flash chip in RAM for littlefs under the MicroPython unix port (the
# block-device protocol of vfs.VfsLfs2): it counts program operations and can
# lose power at the Nth one: half of that program's bytes reach the chip and
# nothing after it (later programs and erases change nothing; no error is
# raised through littlefs, which would not see one either). Copies are done
# by slices, or byte by byte (allocating nothing) when lean is set, to count
# what the store allocates, or when the heap is locked (littlefs may be called
# from a finaliser).


class RamFlash:
    def __init__(self, block_size, blocks, image=None, lean=False):
        self.lean = lean
        self.block_size = block_size
        self.data = bytearray(block_size * blocks) if image is None else bytearray(image)
        self.progs = 0
        self.cut_at = 0

    def dead(self):
        return self.cut_at and self.progs >= self.cut_at

    def readblocks(self, block, buf, off=0):
        a = block * self.block_size + off
        if not self.lean:
            try:
                buf[:] = memoryview(self.data)[a:a + len(buf)]
                return
            except MemoryError:
                pass
        d = self.data
        for i in range(len(buf)):
            buf[i] = d[a + i]

    def writeblocks(self, block, buf, off=None):
        a = block * self.block_size + (off or 0)
        self.progs += 1
        n = len(buf)
        if self.dead():
            n = n // 2 if self.progs == self.cut_at else 0
        if not self.lean:
            try:
                self.data[a:a + n] = memoryview(buf)[:n]
                return
            except MemoryError:
                pass
        d = self.data
        for i in range(n):
            d[a + i] = buf[i]

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:
            if self.dead():
                return 0
            a = arg * self.block_size
            d = self.data
            for i in range(self.block_size):
                d[a + i] = 0xFF
            return 0
        return 0
