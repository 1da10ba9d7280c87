"""Unit tests for persistence: pump.record (framed A/B records), pump.ledger (the
write-ahead stroke ledger, invariant I4) and pump.eventlog (the reset-surviving
event ring, invariant I7).

What a safety reviewer needs from this layer:
- a record that is not whole and intact is never accepted (CRC, magic, length);
- a reset in the middle of any write leaves the previous good record loadable,
  and a reload returns exactly one state that was really saved, never a mix;
- a save never overwrites the newest good copy, and sequence numbers only rise;
- the event log survives resets, stays bounded, and one torn or flipped slot
  costs that one event only, and is reported.

Faults are injected with the `Store` fake (tests/portable/fakeports.py):
`cut_at = k` tears write number k (keeps half its bytes) and raises PowerCut;
`flip(key, bit)` flips one stored bit. `MixStore` below models a harsher torn
write: a prefix of the new bytes over the old bytes (or over erased flash).
"""
import struct

import pytest
from hypothesis import given, strategies as st

from fakeports import Store, PowerCut
from pump.compat import crc32
from pump.record import frame, unframe, torn as torn_copy, ABRecord, MISSING, OK, CORRUPT
from pump.ledger import Ledger, FIELDS
from pump import eventlog as E
from pump.eventlog import EventLog

U32 = 2**32 - 1
LEDGER_PAYLOAD = 4 * len(FIELDS)      # one u32 per field
EVENT_PAYLOAD = struct.calcsize("<IIiBBii")
HEAD = 8                              # b"PR" | len:u16 | seq:u32
OVERHEAD = HEAD + 4                   # + crc32:u32

u32 = st.integers(0, U32)
i32 = st.integers(-2**31, 2**31 - 1)
u8 = st.integers(0, 255)


def crc_frame(body):
    """Append a correct CRC to arbitrary header+payload bytes, so that a test can
    check the magic/length checks on their own (the CRC alone would not catch it)."""
    return body + struct.pack("<I", crc32(body))


class MixStore(Store):
    """A Store whose torn write leaves the first `keep` bytes of the new data
    followed by the old bytes of that key (fill=None) or by erased flash
    (fill=0xFF / 0x00), so the torn copy may have exactly the right length."""

    def __init__(self, cut_at, keep, fill=None):
        Store.__init__(self)
        self.cut_at = cut_at
        self.keep = keep
        self.fill = fill

    def write(self, key, data):
        self.writes += 1
        if self.cut_at and self.writes == self.cut_at:
            self.cut_at = 0
            data = bytes(data)
            if self.fill is None:
                tail = self.data.get(key, b"")[self.keep:]
            else:
                tail = bytes([self.fill]) * (len(data) - self.keep)
            self.data[key] = data[: self.keep] + tail
            raise PowerCut()
        self.data[key] = bytes(data)


# =====================================================================  frame / unframe

@given(seq=u32, payload=st.binary(max_size=300))
def test_frame_roundtrip(seq, payload):
    f = frame(seq, payload)
    assert len(f) == OVERHEAD + len(payload)
    assert unframe(f) == (seq, payload)
    assert unframe(bytearray(f)) == (seq, payload)
    assert type(unframe(f)[0]) is int


def test_frame_layout_is_the_documented_one():
    # b"PR" | len:u16 | seq:u32 | payload | crc32:u32 over everything before it
    f = frame(0x01020304, b"abc")
    assert f[:2] == b"PR"
    assert struct.unpack_from("<H", f, 2)[0] == 3
    assert struct.unpack_from("<I", f, 4)[0] == 0x01020304
    assert f[8:11] == b"abc"
    assert struct.unpack_from("<I", f, 11)[0] == crc32(f[:11])


@pytest.mark.parametrize("payload", [b"", b"\x00", bytes(range(EVENT_PAYLOAD)),
                                     bytes(range(LEDGER_PAYLOAD)), b"\xff" * LEDGER_PAYLOAD])
def test_every_truncation_is_rejected(payload):
    f = frame(7, payload)
    for n in range(len(f)):
        assert unframe(f[:n]) is None, n


@given(seq=u32, payload=st.binary(max_size=200), data=st.data())
def test_truncation_and_extension_rejected(seq, payload, data):
    f = frame(seq, payload)
    n = data.draw(st.integers(0, len(f) - 1))
    assert unframe(f[:n]) is None
    extra = data.draw(st.binary(min_size=1, max_size=20))
    assert unframe(f + extra) is None


@pytest.mark.parametrize("payload", [b"", bytes(range(EVENT_PAYLOAD)), bytes(range(LEDGER_PAYLOAD))])
def test_every_single_bit_flip_is_rejected(payload):
    f = frame(12345, payload)
    for bit in range(len(f) * 8):
        g = bytearray(f)
        g[bit // 8] ^= 1 << (bit % 8)
        assert unframe(bytes(g)) is None, bit


@pytest.mark.parametrize("magic", [b"PQ", b"RP", b"pr", b"\x00\x00", b"\xff\xff", b"QR"])
def test_wrong_magic_rejected_even_with_valid_crc(magic):
    payload = bytes(range(LEDGER_PAYLOAD))
    body = struct.pack("<2sHI", magic, len(payload), 3) + payload
    assert unframe(crc_frame(body)) is None


@pytest.mark.parametrize("n", [0, LEDGER_PAYLOAD - 1, LEDGER_PAYLOAD + 1, LEDGER_PAYLOAD + 4, 0xFFFF])
def test_wrong_length_field_rejected_even_with_valid_crc(n):
    payload = bytes(range(LEDGER_PAYLOAD))
    body = struct.pack("<2sHI", b"PR", n, 3) + payload
    assert unframe(crc_frame(body)) is None


@pytest.mark.parametrize("data", [None, b"", b"P", b"PR", b"PR" + b"\x00" * 9, b"\x00" * 12,
                                  b"\xff" * 12, b"\xff" * 64])
def test_none_empty_and_short_rejected(data):
    assert unframe(data) is None


@given(st.binary(max_size=80))
def test_garbage_never_raises_and_is_only_accepted_if_it_is_a_frame(data):
    r = unframe(data)
    assert r is None or frame(*r) == data


# =====================================================================  ABRecord

def copies(store, name="r"):
    """{key: (seq, payload) | 'bad'} for every stored copy of a record."""
    out = {}
    for k in (name + ".a", name + ".b"):
        raw = store.read(k)
        if raw is not None:
            out[k] = unframe(raw) or "bad"
    return out


def test_load_on_empty_store_is_missing():
    rec = ABRecord(Store(), "r")
    assert rec.load() == (MISSING, None)
    assert rec.damaged == 0
    assert rec.seq == 0


def test_saves_alternate_copies_and_keep_the_previous_one():
    s = Store()
    rec = ABRecord(s, "r")
    for i in range(1, 8):
        rec.save(b"p%d" % i)
        c = copies(s)
        written = "r.a" if i % 2 else "r.b"
        other = "r.b" if i % 2 else "r.a"
        assert c[written] == (i, b"p%d" % i)
        if i > 1:
            assert c[other] == (i - 1, b"p%d" % (i - 1))   # the previous good record survives
        assert s.writes == i


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_load_returns_newest_intact_copy(n):
    s = Store()
    rec = ABRecord(s, "r")
    for i in range(1, n + 1):
        rec.save(b"p%d" % i)
    fresh = ABRecord(s, "r")
    assert fresh.load() == (OK, b"p%d" % n)
    assert fresh.seq == n
    assert fresh.damaged == 0


def _damage(store, key, how):
    if how == "flip":
        store.flip(key, 8 * HEAD + 3)          # a payload bit
    elif how == "flip_seq":
        store.flip(key, 8 * 4)                 # the low bit of seq
    elif how == "half":
        store.data[key] = store.data[key][: len(store.data[key]) // 2]
    elif how == "erased":
        store.data[key] = b"\xff" * len(store.data[key])
    elif how == "empty":
        store.data[key] = b""


DAMAGE = ["flip", "flip_seq", "half", "erased", "empty"]


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("which", ["newest", "older"])
@pytest.mark.parametrize("n", [4, 5])    # newest copy in r.b / in r.a
def test_one_copy_damaged_loads_the_other(n, which, how):
    s = Store()
    rec = ABRecord(s, "r")
    for i in range(1, n + 1):
        rec.save(b"p%d" % i)
    newest, older = ("r.a", "r.b") if n % 2 else ("r.b", "r.a")
    _damage(s, newest if which == "newest" else older, how)
    fresh = ABRecord(s, "r")
    status, payload = fresh.load()
    assert status == OK
    assert fresh.damaged == 1
    if which == "newest":
        assert payload == b"p%d" % (n - 1) and fresh.seq == n - 1
    else:
        assert payload == b"p%d" % n and fresh.seq == n


@pytest.mark.parametrize("how_a", DAMAGE)
@pytest.mark.parametrize("how_b", ["flip", "half", "erased"])
def test_both_copies_damaged_is_corrupt(how_a, how_b):
    s = Store()
    rec = ABRecord(s, "r")
    for i in range(1, 4):
        rec.save(b"p%d" % i)
    _damage(s, "r.a", how_a)
    _damage(s, "r.b", how_b)
    fresh = ABRecord(s, "r")
    assert fresh.load() == (CORRUPT, None)
    assert fresh.damaged == 2


def test_single_damaged_copy_and_other_missing_is_corrupt_not_missing():
    # "corrupt" must raise the storage alarm; a damaged record must never be
    # mistaken for a new pump with nothing stored.
    s = Store()
    ABRecord(s, "r").save(b"p1")
    s.flip("r.a", 0)
    fresh = ABRecord(s, "r")
    assert fresh.load() == (CORRUPT, None)
    assert fresh.damaged == 1


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_seq_keeps_rising_after_reload_and_save_overwrites_the_older_copy(n):
    s = Store()
    rec = ABRecord(s, "r")
    for i in range(1, n + 1):
        rec.save(b"p%d" % i)
    newest = "r.a" if n % 2 else "r.b"
    good = s.data[newest]
    fresh = ABRecord(s, "r")
    assert fresh.load() == (OK, b"p%d" % n)
    fresh.save(b"q")
    assert s.data[newest] == good                       # newest good copy untouched
    other = "r.b" if newest == "r.a" else "r.a"
    assert unframe(s.data[other]) == (n + 1, b"q")       # older copy replaced, seq rose
    again = ABRecord(s, "r")
    assert again.load() == (OK, b"q")
    assert again.seq == n + 1
    again.save(b"z")
    assert unframe(s.data[newest]) == (n + 2, b"z")      # then alternates as before


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("which", ["newest", "older"])
def test_save_after_load_with_a_damaged_copy_rewrites_the_damaged_one(which, how):
    # The only good copy must never be the one a save (that may be torn) overwrites.
    s = Store()
    rec = ABRecord(s, "r")
    for i in range(1, 6):
        rec.save(b"p%d" % i)                       # r.a = 5, r.b = 4
    bad = "r.a" if which == "newest" else "r.b"
    good = "r.b" if bad == "r.a" else "r.a"
    _damage(s, bad, how)
    good_bytes = s.data[good]
    good_seq = unframe(good_bytes)[0]
    fresh = ABRecord(s, "r")
    assert fresh.load()[0] == OK
    s.cut_at = s.writes + 1                        # and that save is torn
    with pytest.raises(PowerCut):
        fresh.save(b"new")
    assert s.data[good] == good_bytes
    after = ABRecord(s, "r")
    assert after.load() == (OK, unframe(good_bytes)[1])
    after.save(b"new")                             # not torn this time
    assert s.data[good] == good_bytes
    assert unframe(s.data[bad]) == (good_seq + 1, b"new")
    final = ABRecord(s, "r")
    assert final.load() == (OK, b"new")
    assert final.damaged == 0


def test_corrupt_record_recovers_after_a_new_save():
    s = Store()
    rec = ABRecord(s, "r")
    for i in range(1, 4):
        rec.save(b"p%d" % i)
    s.flip("r.a", 77)
    s.flip("r.b", 77)
    fresh = ABRecord(s, "r")
    assert fresh.load() == (CORRUPT, None)
    fresh.save(b"new")
    again = ABRecord(s, "r")
    assert again.load() == (OK, b"new")
    assert again.damaged == 1                      # the other copy is still reported


# A random history of completed saves, torn saves (each followed by a reset),
# resets and bit flips while powered off (followed by a reset), checked against a
# model of what each copy holds. Properties after every step:
#  - load returns the newest intact copy; CORRUPT iff copies exist and none is
#    intact; MISSING iff nothing is stored; `damaged` counts the bad copies;
#  - every write (torn or not) touches exactly one copy, never the one holding
#    the newest intact record, and its seq is above every intact seq.
ops = st.lists(st.one_of(
    st.tuples(st.just("save"), st.binary(max_size=12)),
    st.tuples(st.just("tear"), st.binary(max_size=12)),
    st.tuples(st.just("reset"), st.just(b"")),
    st.tuples(st.just("flip"), st.integers(0, 2 * 8 * 24 - 1)),
), max_size=30)


class KeyLogStore(Store):
    """A Store that remembers which key each write (torn or not) went to."""

    def __init__(self):
        Store.__init__(self)
        self.written = []

    def write(self, key, data):
        self.written.append(key)
        Store.write(self, key, data)


@given(ops)
def test_abrecord_history_against_model(history):
    s = KeyLogStore()
    rec = ABRecord(s, "r")
    assert rec.load() == (MISSING, None)

    def check_load():
        r = ABRecord(s, "r")
        c = copies(s)
        good = {k: v for k, v in c.items() if v != "bad"}
        status, payload = r.load()
        assert r.damaged == len(c) - len(good)
        if good:
            best = max(good.values())
            assert (status, payload) == (OK, best[1]) and r.seq == best[0]
        elif len(c) == 1 and torn_copy(s.data[list(c)[0]]):
            # the only copy is a write cut off by a reset: never written
            assert (status, payload) == (MISSING, None)
        else:
            assert (status, payload) == ((CORRUPT if c else MISSING), None)
        return r

    for op, arg in history:
        if op == "reset":
            rec = check_load()
            continue
        if op == "flip":
            keys = sorted(s.data)
            if keys:
                key = keys[(arg // 200) % len(keys)]
                s.flip(key, arg)
            rec = check_load()
            continue
        before = dict(s.data)
        good = {k: v for k, v in copies(s).items() if v != "bad"}
        best_key = max(good, key=lambda k: good[k][0]) if good else None
        if op == "tear":
            s.cut_at = s.writes + 1
            with pytest.raises(PowerCut):
                rec.save(arg)
        else:
            rec.save(arg)
        changed = [k for k in set(before) | set(s.data) if before.get(k) != s.data.get(k)]
        assert set(changed) <= {s.written[-1]}          # one write, to one copy only
        changed = s.written[-1:]
        assert len(s.written) == s.writes and changed[0] in ("r.a", "r.b")
        assert changed[0] != best_key
        if op == "save":
            new = unframe(s.data[changed[0]])
            assert new[1] == arg
            assert all(new[0] > v[0] for v in good.values())
        else:
            assert unframe(s.data[changed[0]]) is None
            rec = check_load()


# =====================================================================  Ledger

def ledger_state(led):
    return tuple(getattr(led, f) for f in FIELDS)


def save_state(led, state):
    """Save a full FIELDS tuple through the ledger (day and ms go via save())."""
    for f, v in zip(FIELDS[2:], state[2:]):
        setattr(led, f, v)
    # in_flight is what save() is told: a stroke's write-ahead or not
    led.save(state[0], state[1], stroke=bool(state[-1]))


ZERO = (0,) * len(FIELDS)
ledger_states = st.tuples(*([u32] * (len(FIELDS) - 1) + [st.integers(0, 1)]))


def distinct_state(i):
    """Distinct, non-zero values in every field, some near the top of u32."""
    return tuple((i * 1000003 + j * 7919 + 1 if j % 3 else U32 - i * 31 - j) & U32
                 for j in range(len(FIELDS) - 1)) + (i % 2,)


def test_ledger_missing_on_empty_store():
    led = Ledger(Store())
    assert led.load() == MISSING
    assert ledger_state(led) == ZERO


@given(ledger_states)
def test_ledger_fields_roundtrip(state):
    s = Store()
    save_state(Ledger(s), state)
    fresh = Ledger(s)
    assert fresh.load() == OK
    assert ledger_state(fresh) == state
    assert all(type(v) is int for v in ledger_state(fresh))


def test_ledger_every_field_is_stored_in_its_own_place():
    s = Store()
    for j, f in enumerate(FIELDS):
        mark = 1 if f == "in_flight" else 0x01010101 * (j + 1)
        state = tuple(mark if i == j else (i + 1 if i < len(FIELDS) - 1 else 0) for i in range(len(FIELDS)))
        save_state(Ledger(s), state)
        fresh = Ledger(s)
        assert fresh.load() == OK
        assert getattr(fresh, f) == mark
        assert ledger_state(fresh) == state


@pytest.mark.parametrize("length", [0, 4, LEDGER_PAYLOAD - 8, LEDGER_PAYLOAD - 1,
                                    LEDGER_PAYLOAD + 1, LEDGER_PAYLOAD + 4, 2 * LEDGER_PAYLOAD])
def test_ledger_wrong_payload_length_is_corrupt(length):
    s = Store()
    s.write("ledger.a", frame(9, bytes(range(1, length + 1)) if length < 256 else b"\x05" * length))
    led = Ledger(s)
    assert led.load() == CORRUPT == 2
    assert ledger_state(led) == ZERO                    # nothing half-loaded


def test_ledger_record_of_the_previous_firmware_loads_with_no_stroke_in_flight():
    # an update must keep the counts: the 13-field record still loads
    s = Store()
    old = distinct_state(3)[:-1]
    s.write("ledger.a", frame(1, struct.pack("<" + "I" * len(old), *old)))
    led = Ledger(s)
    assert led.load() == OK
    assert ledger_state(led) == old + (0,)


def test_ledger_newest_copy_of_wrong_length_is_not_silently_skipped():
    # A well-framed but wrong-shaped newest record means the store is not what
    # this firmware wrote: report corrupt, do not quietly fall back to older data.
    s = Store()
    led = Ledger(s)
    save_state(led, distinct_state(1))                       # ledger.a, seq 1
    s.write("ledger.b", frame(2, b"\x01" * (LEDGER_PAYLOAD + 4)))
    fresh = Ledger(s)
    assert fresh.load() == CORRUPT
    assert ledger_state(fresh) == ZERO


@pytest.mark.parametrize("field", [f for f in FIELDS if f != "in_flight"])   # (that one save() sets)
def test_ledger_refuses_float_and_writes_nothing(field):
    s = Store()
    led = Ledger(s)
    save_state(led, distinct_state(1))
    before = dict(s.data)
    if field in ("day", "ms"):
        args = (1.5, 2) if field == "day" else (1, 2.5)
    else:
        setattr(led, field, 3.0)
        args = (1, 2)
    with pytest.raises((struct.error, TypeError)):
        led.save(*args)
    assert s.data == before                               # no float ever reaches the store
    fresh = Ledger(s)
    assert fresh.load() == OK
    assert ledger_state(fresh) == distinct_state(1)
    assert all(type(v) is int for v in ledger_state(fresh))


# ------------------------------------------------------------  reset at every write step
#
# Which state must a reload give after write k is torn?  The state of save k-1.
# Save k goes to the copy holding the OLDER record (save k-2); the torn copy keeps
# only part of its bytes, so it fails unframe(); the other copy still holds save k
# -1 intact, and is the newest intact copy. Save k must never load, because its
# write never finished and the CRC/length cannot pass on a partial frame. (For the
# ledger this is the safe side of I4: the count of save k may be lost, a stroke
# is never repeated.) For k == 1 there is no previous save: the only copy is torn,
# a write that never finished, so nothing was ever in force: MISSING (with the
# copy counted as damaged, for the log) and the ledger fields at zero, never a
# half-loaded state. A whole copy that fails its check is CORRUPT (see below).

N_SAVES = 8
STATES = [distinct_state(i) for i in range(1, N_SAVES + 8)]


def _expect_after_tear(fresh, st_, k, states):
    if k == 1:
        assert st_ == MISSING
        assert ledger_state(fresh) == ZERO
        assert fresh.rec.damaged == 1
    else:
        assert st_ == OK
        assert ledger_state(fresh) == states[k - 2]      # exactly save k-1
        assert fresh.rec.damaged == 1
        assert fresh.rec.seq == k - 1


@pytest.mark.parametrize("k", range(1, N_SAVES + 1))
def test_ledger_torn_write_at_every_step(k):
    s = Store()
    s.cut_at = k
    led = Ledger(s)
    raised_at = None
    for i in range(N_SAVES):
        try:
            save_state(led, STATES[i])
        except PowerCut:
            raised_at = i + 1
            break
    assert raised_at == k and s.writes == k
    fresh = Ledger(s)
    st_ = fresh.load()                                    # no exception on load
    _expect_after_tear(fresh, st_, k, STATES)

    # Continue after the reset: the next save must go over the torn copy, and every
    # later reload must see exactly the latest save, with nothing left damaged.
    torn_key = "ledger.a" if k % 2 else "ledger.b"
    kept = {key: v for key, v in s.data.items() if key != torn_key}
    for j in range(4):
        state = STATES[k + j]
        save_state(fresh, state)
        if j == 0:
            assert unframe(s.data[torn_key]) is not None  # the torn copy was rewritten
            assert all(s.data[key] == v for key, v in kept.items())
        again = Ledger(s)
        assert again.load() == OK
        assert ledger_state(again) == state
        assert again.rec.damaged == 0
        assert again.rec.seq == k + j     # k-1 loaded (0 after CORRUPT), then +1 per save


@pytest.mark.parametrize("k", range(1, 6))
@pytest.mark.parametrize("k2", [1, 2, 3])
def test_ledger_second_tear_after_recovery(k, k2):
    """Tear write k, reload, keep saving on the fresh ledger, tear again k2 saves
    later: the reload gives exactly the last save that completed."""
    s = Store()
    s.cut_at = k
    led = Ledger(s)
    done = []
    with pytest.raises(PowerCut):
        for i in range(k):
            save_state(led, STATES[i])
            done.append(STATES[i])
    led = Ledger(s)
    led.load()
    s.cut_at = s.writes + k2
    with pytest.raises(PowerCut):
        for i in range(k2):
            save_state(led, STATES[k + i])
            done.append(STATES[k + i])
    fresh = Ledger(s)
    st_ = fresh.load()
    if done:
        assert st_ == OK and ledger_state(fresh) == done[-1]
        assert fresh.rec.damaged == 1
    else:
        assert st_ == MISSING and ledger_state(fresh) == ZERO


@given(st.lists(ledger_states, min_size=1, max_size=10), st.data())
def test_ledger_torn_write_random(states, data):
    k = data.draw(st.integers(1, len(states)))
    s = Store()
    s.cut_at = k
    led = Ledger(s)
    with pytest.raises(PowerCut):
        for state in states:
            save_state(led, state)
    assert s.writes == k
    fresh = Ledger(s)
    _expect_after_tear(fresh, fresh.load(), k, states)


@pytest.mark.parametrize("fill", [None, 0xFF, 0x00])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_ledger_torn_write_any_prefix_over_old_or_erased_bytes(k, fill):
    """Harsher than Store.cut_at: the torn copy may have exactly the right length
    (new prefix over the old record or over erased flash). The reload must be
    save k-1, or save k only if its bytes all landed, never anything else."""
    flen = OVERHEAD + LEDGER_PAYLOAD
    for keep in range(flen + 1):
        s = MixStore(k, keep, fill)
        led = Ledger(s)
        with pytest.raises(PowerCut):
            for i in range(k):
                save_state(led, STATES[i])
        torn_key = "ledger.a" if k % 2 else "ledger.b"
        complete = s.data[torn_key] == frame(k, struct.pack("<" + "I" * len(FIELDS), *STATES[k - 1]))
        fresh = Ledger(s)
        st_ = fresh.load()
        if complete:
            assert st_ == OK and ledger_state(fresh) == STATES[k - 1], keep
        elif k == 1:
            # cut short: never written; whole length but wrong: damaged later, or
            # cut in place (the ledger's size is fixed: only the length tells a cut)
            expect = MISSING if torn_copy(s.data[torn_key], LEDGER_PAYLOAD) else CORRUPT
            assert st_ == expect and ledger_state(fresh) == ZERO, keep
        else:
            assert st_ == OK and ledger_state(fresh) == STATES[k - 2], keep


# =====================================================================  EventLog

events = st.tuples(u32, u32, u32, u8, u8, i32, i32)   # day, ms, wall_s, kind, code, a, b


def ev(i):
    """A distinct event with values in every field, including negatives, and
    wall times from 2027 to past 2099 (unsigned: 2**31 s after 2000 is 2068)."""
    return (i, i * 1000 + 1, 852076800 + i if i % 2 else 3155759999 - i, E.ALARM + i % 18, (i * 37) % 256,
            -i * 1000, 2**31 - 1 - i)


def add_all(log, evs):
    for e in evs:
        log.add(*e)


def expected_records(evs, first_seq, size):
    recs = [(first_seq + j,) + tuple(e) for j, e in enumerate(evs)]
    return recs[-size:]


def test_eventlog_reload_same_records_and_seq_continues():
    s = Store()
    log = EventLog(s, size=8)
    evs = [ev(i) for i in range(1, 6)]
    add_all(log, evs)
    assert log.records == expected_records(evs, 1, 8)
    fresh = EventLog(s, size=8)
    assert fresh.load() == 0
    assert fresh.corrupt == 0
    assert fresh.records == log.records
    assert fresh.seq == 5
    fresh.add(*ev(6))
    assert fresh.records[-1] == (6,) + ev(6)
    again = EventLog(s, size=8)
    again.load()
    assert again.records == expected_records([ev(i) for i in range(1, 7)], 1, 8)
    assert again.seq == 6
    assert all(type(v) is int for r in again.records for v in r)


def test_eventlog_empty_store():
    log = EventLog(Store(), size=4)
    assert log.load() == 0
    assert log.records == [] and log.seq == 0


@given(st.integers(1, 10), st.lists(events, max_size=25), st.integers(0, 3))
def test_eventlog_ring_and_reloads_random(size, evs, resets):
    """Add events with resets in between: the log (in memory and reloaded) always
    holds exactly the last `size` events in order, with consecutive seqs, and the
    store holds at most `size` slots."""
    s = Store()
    log = EventLog(s, size=size)
    log.load()
    cuts = sorted({(len(evs) * (r + 1)) // (resets + 1) for r in range(resets)})
    prev = 0
    for c in cuts + [len(evs)]:
        add_all(log, evs[prev:c])
        prev = c
        log = EventLog(s, size=size)
        assert log.load() == 0
        assert log.records == expected_records(evs[:c], 1, size)
        assert log.seq == c
    assert len([k for k in s.data if k.startswith("log.")]) <= size
    assert all(type(v) is int for r in log.records for v in r)


def test_eventlog_ring_keeps_only_last_size():
    s = Store()
    log = EventLog(s, size=4)
    evs = [ev(i) for i in range(1, 12)]
    add_all(log, evs)
    assert [r[0] for r in log.records] == [8, 9, 10, 11]
    assert log.records == expected_records(evs, 1, 4)
    fresh = EventLog(s, size=4)
    fresh.load()
    assert fresh.records == log.records and fresh.seq == 11
    assert sorted(k for k in s.data) == ["log.00", "log.01", "log.02", "log.03"]


SIZE = 6
N_EVENTS = 14


@pytest.mark.parametrize("t", range(1, N_EVENTS + 1))
def test_eventlog_torn_write_damages_only_that_slot(t):
    s = Store()
    s.cut_at = t
    log = EventLog(s, size=SIZE)
    evs = [ev(i) for i in range(1, N_EVENTS + 1)]
    with pytest.raises(PowerCut):
        add_all(log, evs)
    assert s.writes == t
    fresh = EventLog(s, size=SIZE)
    assert fresh.load() == 1 and fresh.corrupt == 1
    # The torn slot held event t-SIZE (if any): that one and event t are lost,
    # every other stored event is kept, in order.
    keep = [(i,) + evs[i - 1] for i in range(max(1, t - SIZE + 1), t)]
    assert fresh.records == keep
    assert fresh.seq == t - 1
    # Logging continues with seq t into the torn slot, which is thereby repaired.
    fresh.add(*ev(100))
    again = EventLog(s, size=SIZE)
    assert again.load() == 0
    assert again.records == (keep + [(t,) + ev(100)])[-SIZE:]
    assert again.seq == t


def test_eventlog_bit_flip_damages_only_that_slot_every_bit():
    s = Store()
    log = EventLog(s, size=SIZE)
    evs = [ev(i) for i in range(1, 11)]      # slots hold seqs 5..10
    add_all(log, evs)
    target = "log.%02d" % (9 % SIZE)           # holds seq 9
    clean = dict(s.data)
    others = [r for r in log.records if r[0] != 9]
    nbits = 8 * len(clean[target])
    assert nbits == 8 * (OVERHEAD + EVENT_PAYLOAD)
    for bit in range(nbits):
        s.data = dict(clean)
        s.flip(target, bit)
        fresh = EventLog(s, size=SIZE)
        assert fresh.load() == 1, bit
        assert fresh.records == others, bit
        assert fresh.seq == 10, bit


def test_eventlog_flip_in_newest_slot_then_seq_reused_for_that_slot_only():
    s = Store()
    log = EventLog(s, size=SIZE)
    add_all(log, [ev(i) for i in range(1, 9)])
    s.flip("log.%02d" % (8 % SIZE), 100)
    fresh = EventLog(s, size=SIZE)
    assert fresh.load() == 1
    assert fresh.seq == 7
    fresh.add(*ev(50))                          # seq 8 goes back into the damaged slot
    again = EventLog(s, size=SIZE)
    assert again.load() == 0
    assert [r[0] for r in again.records] == [3, 4, 5, 6, 7, 8]
    assert again.records[-1] == (8,) + ev(50)


def test_eventlog_wrong_payload_length_slot_is_corrupt():
    s = Store()
    log = EventLog(s, size=4)
    add_all(log, [ev(i) for i in range(1, 4)])
    s.write("log.02", frame(2, b"\x00" * (EVENT_PAYLOAD + 1)))   # well framed, wrong shape
    fresh = EventLog(s, size=4)
    assert fresh.load() == 1
    assert [r[0] for r in fresh.records] == [1, 3]


def test_eventlog_sink_receives_every_event():
    got = []
    s = Store()
    log = EventLog(s, size=4, sink=lambda *r: got.append(r))
    evs = [ev(i) for i in range(1, 11)]
    add_all(log, evs)
    assert got == [(i + 1,) + e for i, e in enumerate(evs)]   # all 10, not only the ring
    fresh = EventLog(s, size=4, sink=lambda *r: got.append(r))
    fresh.load()
    assert len(got) == 10                       # loading replays nothing
    fresh.add(*ev(11))
    assert got[-1] == (11,) + ev(11)


def test_eventlog_defaults_code_a_b_to_zero():
    s = Store()
    EventLog(s, size=4).add(3, 4, 5, E.RESET)
    fresh = EventLog(s, size=4)
    fresh.load()
    assert fresh.records == [(1, 3, 4, 5, E.RESET, 0, 0, 0)]


BAD_EVENT_ARGS = [
    ("float wall_s", (1, 2, 3.5, E.ALARM, 1, 0, 0)),
    ("float ms", (1, 2.0, 3, E.ALARM, 1, 0, 0)),
    ("float a", (1, 2, 3, E.ALARM, 1, 0.5, 0)),
    ("code > 255", (1, 2, 3, E.ALARM, 300, 0, 0)),
    ("a > int32", (1, 2, 3, E.ALARM, 1, 2**31, 0)),
    ("negative wall_s", (1, 2, -1, E.ALARM, 1, 0, 0)),
    ("wall_s > u32", (1, 2, 2**32, E.ALARM, 1, 0, 0)),
]


@pytest.mark.parametrize("name,args", BAD_EVENT_ARGS, ids=[n for n, _ in BAD_EVENT_ARGS])
def test_eventlog_never_stores_a_non_int_or_out_of_range_value(name, args):
    s = Store()
    log = EventLog(s, size=4)
    log.add(*ev(1))
    before = dict(s.data)
    with pytest.raises((struct.error, TypeError, ValueError, OverflowError)):
        log.add(*args)
    assert s.data == before
    fresh = EventLog(s, size=4)
    assert fresh.load() == 0
    assert fresh.records == [(1,) + ev(1)]


@pytest.mark.parametrize("name,args", BAD_EVENT_ARGS, ids=[n for n, _ in BAD_EVENT_ARGS])
def test_eventlog_rejected_event_leaves_no_trace(name, args):
    got = []
    log = EventLog(Store(), size=4, sink=lambda *r: got.append(r))
    log.add(*ev(1))
    with pytest.raises((struct.error, TypeError, ValueError, OverflowError)):
        log.add(*args)
    assert log.records == [(1,) + ev(1)]
    assert log.seq == 1
    assert got == [(1,) + ev(1)]


def test_kind_names():
    assert E.kind_name(E.ALARM) == "alarm"
    assert E.kind_name(E.STORAGE) == "storage"
    assert E.kind_name(0) == "event_0"
    assert E.kind_name(200) == "event_200"


# =====================================================================  all together

@pytest.mark.parametrize("k", range(1, 19))
def test_shared_store_torn_at_every_write(k):
    """Ledger, event log and a therapy record share one store, as in the
    controller. Tear every write in turn: after the reset each reloads exactly
    its last completed write, and exactly one copy/slot in the store is damaged."""
    s = Store()
    s.cut_at = k
    led = Ledger(s)
    log = EventLog(s, size=4)
    ther = ABRecord(s, "therapy")
    done_led, done_ev, done_ther = [], [], []
    with pytest.raises(PowerCut):
        for i in range(1, 7):
            log.add(*ev(i))
            done_ev.append(ev(i))
            save_state(led, STATES[i - 1])
            done_led.append(STATES[i - 1])
            ther.save(b"therapy %d" % i)
            done_ther.append(b"therapy %d" % i)
    assert s.writes == k
    led2, log2, ther2 = Ledger(s), EventLog(s, size=4), ABRecord(s, "therapy")
    lst = led2.load()
    log2.load()
    tst, tpay = ther2.load()
    assert led2.rec.damaged + log2.corrupt + ther2.damaged == 1
    # writes go event i, ledger i, therapy i: write k tore one of them
    torn = ("log", "ledger", "therapy")[(k - 1) % 3]
    if done_led:
        assert lst == OK and ledger_state(led2) == done_led[-1]
    else:
        assert lst == MISSING            # a torn only copy was never written
        assert ledger_state(led2) == ZERO
    if done_ther:
        assert (tst, tpay) == (OK, done_ther[-1])
    else:
        assert (tst, tpay) == (MISSING, None)
    if torn == "log":
        t = len(done_ev) + 1                      # the torn event; its slot held event t-4
        assert log2.records == [(j,) + ev(j) for j in range(max(1, t - 3), t)]
    else:
        assert log2.records == expected_records(done_ev, 1, 4)
    assert log2.seq == len(done_ev)
