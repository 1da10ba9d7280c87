# A flash chip in RAM for littlefs under the MicroPython unix port (the
# block-device protocol of vfs.VfsLfs2): it counts program operations and can
# lose power at the Nth one: half of that program's bytes reach the chip and
# nothing after it (later programs and erases change nothing; no error is
# raised through littlefs, which would not see one either). Nothing here
# allocates, so littlefs may call it from a finaliser.


class RamFlash:

    def __init__(self, block_size, blocks, image=None):
        self.block_size = block_size
        self.data = bytearray(block_size * blocks) if image is None else bytearray(image)
        self.progs = 0
        self.cut_at = 0

    def dead(self):
        return self.cut_at and self.progs >= self.cut_at

    def readblocks(self, block, buf, off=0):
        a = block * self.block_size + off
        d = self.data
        for i in range(len(buf)):
            buf[i] = d[a + i]

    def writeblocks(self, block, buf, off=None):
        a = block * self.block_size + (off or 0)
        self.progs += 1
        n = len(buf)
        if self.dead():
            n = n // 2 if self.progs == self.cut_at else 0
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
