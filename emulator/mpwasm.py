# The pinned MicroPython WebAssembly build: the 32-bit MicroPython that both
# the emulator's wasm32 runtime (emulator/wasm32.py, under Node) and the
# student lab's page (lab/, in the browser) run.
#
# Its pin is lab/package.json and lab/package-lock.json, and `npm ci` installs
# it into lab/node_modules, because the lab page loads it from there (the lab
# server serves lab/ and nothing above it). Those are data files: this module
# imports nothing from lab/, which builds on the emulator, not the other way.
import json
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NPM_DIR = os.path.join(ROOT, "lab")       # package.json, package-lock.json, node_modules/
MP_PACKAGE = "@micropython/micropython-webassembly-pyscript"
MP_DIR = os.path.join(NPM_DIR, "node_modules", *MP_PACKAGE.split("/"))


class InstallError(RuntimeError):
    """npm is missing, or `npm ci` did not install the build."""


def installed():
    return os.path.exists(os.path.join(MP_DIR, "micropython.mjs"))


def npm_ci(quiet=True):
    """Install the pinned MicroPython WebAssembly build into lab/node_modules
    (npm ci, from package-lock.json) unless it is there. -> its folder."""
    if installed():
        return MP_DIR
    with _Lock(os.path.join(NPM_DIR, ".npm-ci.lock")):     # two test processes, one install
        if installed():
            return MP_DIR
        return _npm_ci(quiet)


class _Lock:
    """An exclusive lock on a file, where the system has one (fcntl)."""

    def __init__(self, path):
        self.path = path
        self.f = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:
            return self
        self.f = open(self.path, "w")
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.f is not None:
            self.f.close()      # (closing lets the lock go)
        return False


def _npm_ci(quiet):
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("the lab needs npm (Node.js) to install %s once; install nodejs and npm" % MP_PACKAGE)
    cmd = [npm, "ci", "--no-audit", "--no-fund"] + (["--silent"] if quiet else [])
    r = subprocess.run(cmd, cwd=NPM_DIR)
    if r.returncode != 0 or not installed():
        raise InstallError("npm ci in %s failed (exit %d)" % (NPM_DIR, r.returncode))
    return MP_DIR


def pinned_version():
    with open(os.path.join(NPM_DIR, "package.json")) as f:
        return json.load(f)["dependencies"][MP_PACKAGE]
