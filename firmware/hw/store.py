# The record store port on the board's littlefs: one file per key.
#
# Most records are replaced whole: written to a temporary file and renamed
# over the old one (littlefs renames atomically), so a reset in the middle of
# a write leaves the old record whole.
#
# The records the pump saves at every stroke (`hot` keys: the ledger's and the
# dose windows' copies) are rewritten in place instead, through a file kept
# open: littlefs commits a file's new contents whole at flush() (copy on
# write), so a reset mid-write leaves the old record there too, and a stroke
# costs no file object, path or rename: nothing allocated, and fewer flash
# programs (tests/test_board_store.py cuts the power at each program of every
# write on a real littlefs). The price is each open file's littlefs cache,
# held for good (about 1.2 KB a file with the Pico's progsize of 256). On a
# file system without that guarantee (the unix port's) a cut can tear the one
# copy being written, at its full length: the A/B records (pump.record) then
# load the other copy, taking the torn one for a whole record damaged later
# (the ledger counts one stroke more, the safe side).
import os


class FileStore:
    def __init__(self, root="/pump", hot=()):
        self.root = root
        try:
            os.mkdir(root)
        except OSError:
            pass          # it exists
        self._hot = {}    # key -> [file kept open or None, its length]
        for key in hot:
            self._hot[key] = [None, 0]

    def _path(self, key):
        return self.root + "/" + key

    def read(self, key):
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, key, data):
        h = self._hot.get(key)
        if h is not None and h[0] is not None:
            f = h[0]
            if h[1] == len(data):
                try:
                    f.seek(0)
                    f.write(data)
                    f.flush()
                    return
                except OSError:
                    pass          # this write replaces the file whole instead
            h[0] = None
            try:
                f.close()
            except OSError:
                pass
        path = self._path(key)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)
        if h is not None:
            try:
                h[0] = open(path, "r+b")
                h[1] = len(data)
            except (OSError, MemoryError):
                pass              # the record is saved; the next write tries again

    def close(self):
        """Close the files kept open (before the file system is unmounted)."""
        for h in self._hot.values():
            f = h[0]
            h[0] = None
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass          # the others are closed all the same
