# The record store port on the board's littlefs: one file per key, written to a
# temporary file and renamed over the old one (littlefs renames atomically), so
# a reset in the middle of a write leaves the old record whole.
import os


class FileStore:
    def __init__(self, root="/pump"):
        self.root = root
        try:
            os.mkdir(root)
        except OSError:
            pass          # it exists

    def _path(self, key):
        return self.root + "/" + key

    def read(self, key):
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except OSError:
            return None

    def write(self, key, data):
        tmp = self._path(key) + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, self._path(key))
