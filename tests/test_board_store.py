"""The board's record store (firmware/hw/store.py) on a real littlefs: the
unix port's vfs.VfsLfs2, the littlefs driver the boards run, over a flash chip
in RAM that loses power at a chosen program operation
(tests/portable/ramflash.py).

The records the pump saves at every stroke (the ledger's and the dose
windows' copies) are rewritten in place through files the store keeps open;
every other record is replaced by a temporary file and a rename. Written as
the pump writes them, every record must stay whole across a power cut at any
flash program, and the stroke records must cost no heap per write (a stroke
allocates nothing on the board); what the open files hold is reported.
"""
import os

import pytest

from test_micropython import FIRMWARE, MICROPYTHON, PORTABLE, _env, _run, needs_micropython

pytestmark = [pytest.mark.micropython, needs_micropython]


def run_script(name, *args, timeout=300):
    r = _run([MICROPYTHON, os.path.join(PORTABLE, name)] + [str(a) for a in args],
             _env(MICROPYPATH=os.pathsep.join([FIRMWARE, PORTABLE])), timeout=timeout)
    text = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode == 0, text
    return {k: int(v) for k, v in (ln.split("=", 1) for ln in r.stdout.decode().splitlines() if "=" in ln)}


# (strokes, block size, blocks, progsize): a small file system that compacts
# often, and the Pico's geometry (4 KB sectors, progsize 256)
@pytest.mark.parametrize("strokes, block, blocks, progsize", [(100, 512, 64, 32), (60, 4096, 32, 256)])
def test_a_power_cut_at_any_flash_program_leaves_every_record_whole(strokes, block, blocks, progsize, capsys):
    kv = run_script("store_cuts.py", strokes, block, blocks, progsize)
    with capsys.disabled():
        print("\nlittlefs %d x %d B blocks, progsize %d: %d writes as the pump makes them, each cut at every "
              "program in turn: %d cuts, %d left the record being written old, %d new; programs a write: "
              "ledger %.2f, windows %.2f (both in place), renamed records %.2f"
              % (blocks, block, progsize, kv["writes"], kv["cuts"], kv["old"], kv["new"] - kv["writes"],
                 kv["progs_x100_ledger"] / 100, kv["progs_x100_window"] / 100, kv["progs_x100_renamed"] / 100))
    assert kv["bad"] == 0, kv                   # never a mix, never missing, nothing else touched
    assert kv["unfinished"] == 0, kv            # a write that returned had landed
    assert kv["old"] >= kv["writes"], kv        # every write was cut at least once before it landed
    assert kv["cuts"] + kv["writes"] == kv["old"] + kv["new"], kv


def test_a_stroke_record_write_allocates_nothing_and_programs_less_flash(capsys):
    kv = run_script("store_alloc.py", 300)
    n = kv["writes"]
    with capsys.disabled():
        print("\nlittlefs (Pico geometry), %d writes: ledger record kept open %d B and %.1f programs a write, "
              "renamed %d B and %.1f; windows record kept open %d B and %.1f, renamed %d B and %.1f; "
              "each open file holds %d B"
              % (n, kv["ledger_hot_bytes"] // n, kv["ledger_hot_progs"] / n, kv["ledger_renamed_bytes"] // n,
                 kv["ledger_renamed_progs"] / n, kv["window_hot_bytes"] // n, kv["window_hot_progs"] / n,
                 kv["window_renamed_bytes"] // n, kv["window_renamed_progs"] / n, kv["held_per_open_file"]))
    for rec in ("ledger", "window"):
        assert kv[rec + "_hot_bytes"] == 0
        assert kv[rec + "_renamed_bytes"] > 0         # the measure sees allocation when there is some
        assert kv[rec + "_hot_progs"] < kv[rec + "_renamed_progs"]
    assert 0 < kv["held_per_open_file"] < 2048
