"""The board's record store (firmware/hw/store.py) on a real littlefs: the
unix port's vfs.VfsLfs2, the littlefs driver the boards run, over a flash chip
in RAM that loses power at a chosen program operation
(tests/portable/ramflash.py).

The records the pump saves at every stroke (the ledger's and the dose
windows' copies) are rewritten in place through a file the store keeps open;
every other record is replaced by a temporary file and a rename. Both must
leave each record whole across a power cut at any flash program, and the
stroke records must cost no heap (a stroke allocates nothing on the board).
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


@pytest.mark.parametrize("mode, writes", [("inplace", 150), ("replace", 40)])
def test_a_power_cut_at_any_flash_program_leaves_the_record_whole(mode, writes, capsys):
    kv = run_script("store_cuts.py", mode, writes)
    with capsys.disabled():
        print("\nlittlefs, %s writes: %d writes, each cut at every program in turn: %d cuts left the old "
              "record, %d the new; programs a write: %.2f on average, %d at most"
              % (mode, kv["writes"], kv["old"], kv["new"] - kv["writes"],
                 kv["progs_per_write_x100"] / 100, kv["progs_max"]))
    assert kv["mixed"] == 0 and kv["missing"] == 0 and kv["other_damaged"] == 0, kv
    assert kv["unfinished"] == 0, kv                   # a write that returned had landed
    assert kv["writes"] == writes and kv["new"] >= writes, kv
    assert kv["old"] >= writes, kv                      # every write was cut at least once first


def test_a_stroke_record_write_allocates_nothing_and_programs_less_flash(capsys):
    kv = run_script("store_alloc.py", 1000)
    with capsys.disabled():
        print("\nlittlefs, 1000 writes of a 64-byte record: kept open and rewritten in place %d B allocated, "
              "%d programs; replaced by rename %d B, %d programs"
              % (kv["hot_bytes"], kv["hot_progs"], kv["replaced_bytes"], kv["replaced_progs"]))
    assert kv["hot_bytes"] == 0
    assert kv["replaced_bytes"] > 0                    # the measure sees allocation when there is some
    assert kv["hot_progs"] < kv["replaced_progs"]
