"""The README's walkthrough "Program the emulated pump like a board", run as
written: its commands are read from README.md and typed into two tmux windows
(a real terminal, so `program` asks for its confirmation and gets `y`). Only
the pty name is the one pump-emu printed instead of the README's /dev/pts/3.

The working directory is a fresh one holding .venv and examples/ of this
checkout (as a fresh clone after `make demo` would), so the key file the
server creates and the exported log land there.
"""
import os
import re
import shutil
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TMUX = shutil.which("tmux")
VENV = os.path.join(ROOT, ".venv")

pytestmark = pytest.mark.skipif(TMUX is None or not os.path.exists(os.path.join(VENV, "bin", "pumpctl")),
                                reason="needs tmux and the checkout's .venv (make demo or make test builds it)")


def walkthrough():
    """-> the README's shell lines of the walkthrough: (server line, [pumpctl lines])."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    sec = text[text.index("### Program the emulated pump like a board"):]
    block = sec[sec.index("```sh\n") + 6:]
    block = block[:block.index("```")]
    lines = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    serve = [ln for ln in lines if "pump-emu serve" in ln]
    ctl = [ln for ln in lines if "pumpctl" in ln]
    assert len(serve) == 1 and len(ctl) >= 4, lines
    return serve[0], ctl


class Tmux:
    def __init__(self, tmp):
        self.sock = str(tmp / "tmux.sock")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PUMP_", "TMUX"))}
        env.update(HOME=str(tmp), LANG="C.UTF-8", LC_ALL="C.UTF-8", PS1="$ ")
        env.pop("PYTHONPATH", None)
        self.env = env
        self.tmux("new-session", "-d", "-s", "walk", "-x", "220", "-y", "60", "-c", str(tmp),
                  "bash --norc --noprofile")

    def tmux(self, *args):
        return subprocess.run([TMUX, "-u", "-S", self.sock] + list(args), env=self.env, capture_output=True,
                              text=True, timeout=30, check=True).stdout

    def type(self, window, line):
        self.tmux("send-keys", "-t", "walk:%d" % window, "-l", line)
        self.tmux("send-keys", "-t", "walk:%d" % window, "Enter")

    def screen(self, window):
        return self.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "walk:%d" % window)

    def wait_for(self, window, pattern, timeout=30):
        end = time.monotonic() + timeout
        while True:
            text = self.screen(window)
            m = re.search(pattern, text, re.M)
            if m:
                return m, text
            if time.monotonic() > end:
                raise AssertionError("waited for %r in window %d:\n%s" % (pattern, window, text))
            time.sleep(0.1)

    def close(self):
        subprocess.run([TMUX, "-S", self.sock, "kill-server"], env=self.env, capture_output=True, timeout=30)


def test_readme_walkthrough_works_as_written(tmp_path):
    serve, ctl = walkthrough()
    os.symlink(VENV, tmp_path / ".venv")
    os.symlink(os.path.join(ROOT, "examples"), tmp_path / "examples")
    t = Tmux(tmp_path)
    try:
        t.type(0, serve)
        m, _ = t.wait_for(0, r"^pump-emu: serving \S+ on (/dev/\S+) at 60x real time")
        pty = m.group(1)
        assert (tmp_path / "pump-keys.json").exists()     # the server made the key file pumpctl uses
        t.tmux("new-window", "-t", "walk:1", "-c", str(tmp_path), "bash --norc --noprofile")
        outputs = []
        for i, line in enumerate(ctl):
            assert "/dev/pts/3" in line, line
            before = t.screen(1).count("__rc=")
            t.type(1, line.replace("/dev/pts/3", pty))
            if " program " in line.split("#")[0]:
                t.wait_for(1, r"Put this program in force\? \[y/N\] $")
                t.type(1, "y")
            t.type(1, "echo __rc=$?")
            end = time.monotonic() + 30
            while t.screen(1).count("__rc=") < before + 2:     # the echo typed, then its output
                assert time.monotonic() < end, t.screen(1)
                time.sleep(0.1)
            text = t.screen(1)
            rc = int(re.findall(r"^__rc=(\d+)$", text, re.M)[-1])
            outputs.append((line, rc, text))
        screen = outputs[-1][2]
        # interrogate: the program in force in µg and nL
        assert outputs[0][1] == 0 and "patient bolus: 30 µg (60000 nL) over 15 min" in screen, screen
        # the patient's bolus is granted, then refused with its reason
        assert outputs[1][1] == 0 and "bolus granted: 60000 nL = 30 µg over 15 min" in screen
        assert outputs[2][1] == 1 and re.search(r"refused: (bolus_in_progress|lockout) - ", screen)
        # the example program: the read-back beside the file, confirmed with y
        assert outputs[3][1] == 0 and re.search(r"daily dose\s+440 µg/day\s+440 µg/day\s+880000 nL/day", screen)
        assert "confirmed: the program is in force (state running)" in screen
        # the log: exported, with the bolus and the new program in words
        assert outputs[4][1] == 0 and "log records to log.csv" in screen
        log = (tmp_path / "log.csv").read_text()
        assert ",bolus,patient_bolus,60000 nL over 900 s," in log, log
        assert ",program,in_force,880000 nL/day (440 ug/day)," in log, log
        assert "Traceback" not in screen and "Traceback" not in t.screen(0)
    finally:
        t.close()
