"""Frames bound to one pump and one session (issue 15, finding 2; finding 5).

A captured frame, replayed:
  - in a later session of the same pump (after a new HELLO),
  - into another pump holding the same role keys (a key file copied to every
    board, as `make flash` used to do), or the same serial and keys (a clone),
  - after a reset, even with the emulator's seeded nonces,
  - after the pump lost the record that makes each start's nonces new,
  - after the keys were rotated,
is refused, and nothing changes. An attacker who rewrites the frame's session
field to the current session (anyone can: it is a handle, and the CRC is no
secret) gets bad_tag: the tag covers the serial and the session nonce.

Then the rest of the session design: a counter at its maximum ends the
session, not the role; the pump's serial in its store; per-pump keys from a
master key (HKDF, RFC 5869 vectors); the client's new session on
stale_session; a Hypothesis model of the handshake (sessions, counters, keys,
replays, another channel's HELLOs); and replays into `pump-emu serve` after a
restart, on both runtimes.
"""
import copy
import json
import os
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from pump import eventlog as E
from pump import frames as F
from pump import link as L
from pump.compat import crc32
from pump.hmac256 import HMAC256
from pump.session import SeededEntropy, valid_serial
from linkkeys import keys as K

from test_link_protocol import (BOLUS_ARGS, HOUR, KEY_C, KEY_P, KEYS, KEY_WRONG, MIN, ROLE_C, ROLE_P, SERIAL,
                                Bench, MemPort, bench, decode_answers, kind_events, nothing_changes, only_error)


def rehome(frame, nonce):
    """The frame with its session field set to nonce's handle and its CRC made
    good again: what anyone on the wire can do to a captured frame."""
    body = bytearray(frame[4:-4])
    struct.pack_into("<I", body, 5, F.handle(nonce))
    head = frame[:4]
    return head + bytes(body) + struct.pack("<I", crc32(head[2:] + bytes(body)))


def bolus_count(b):
    return len([r for r in b.pump.log.records if r[4] == E.BOLUS])


def another_pump(serial, keys=KEYS, seed=b"another board's rng"):
    """A second pump: the bench's therapy, but its own identity (store records
    ident and link gone, then provisioned with serial and keys) and its own
    entropy."""
    b = bench()
    for k in [k for k in b.hw.store.data if k.startswith(("ident.", "link."))]:
        del b.hw.store.data[k]
    b.reset(keys=keys, serial=serial, seed=seed)
    b.hello()
    assert b.link.serial == serial
    return b


def replay_refused(b, frame):
    """The captured frame, as it is and moved into the current session: both
    refused, nothing changes."""
    with nothing_changes(b):
        as_is = b.feed(frame)
        moved = b.feed(rehome(frame, b.nonce))
    assert len(as_is) == 1 and as_is[0].name in ("stale_session", "bad_tag"), as_is
    only_error(moved, "bad_tag")


# ------------------------------------------------------------- replays (finding 2)
def test_replay_into_a_later_session_is_refused():
    b = bench()
    f = b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C)
    assert b.feed(f)[0].ok and bolus_count(b) == 1
    only_error(b.feed(f), "replay")                # the same session: the counter
    b.hello()
    e = b.feed(f)
    assert e[0].name == "stale_session" and "hello" in e[0].obj["message"]
    replay_refused(b, f)
    assert bolus_count(b) == 1


def test_replay_into_another_pump_with_the_same_key_file_is_refused():
    """The old provisioning: one key file (role keys, no serial) on every
    board. Pump B has the same keys; frames from pump A still mean nothing."""
    a = bench()
    f = a.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C)
    assert a.feed(f)[0].ok
    for serial in ("PUMP-T2", SERIAL):            # another serial; or a clone with A's serial
        replay_refused(another_pump(serial), f)


def test_per_pump_keys_another_pumps_frames_fail_their_tag():
    """With keys derived per serial, pump B's keys are not pump A's at all:
    even a frame signed for B's session with A's keys is refused."""
    master = os.urandom(32)
    ka = {F.ROLE_PATIENT: K.derive(master, "PUMP-A", "patient"), F.ROLE_CLINICIAN: K.derive(master, "PUMP-A", "clinician")}
    kb = {F.ROLE_PATIENT: K.derive(master, "PUMP-B", "patient"), F.ROLE_CLINICIAN: K.derive(master, "PUMP-B", "clinician")}
    assert ka[ROLE_C] != kb[ROLE_C]
    b = another_pump("PUMP-B", kb)
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, key=ka[ROLE_C])), "bad_tag")
    assert b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, key=kb[ROLE_C]))[0].ok


def test_replay_after_a_reset_is_refused_even_with_seeded_nonces():
    """An emulator restarted with the same seed makes the same entropy; the
    boot epoch and the log's sequence still make a new nonce."""
    b = bench()
    f = b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C)
    assert b.feed(f)[0].ok
    old = b.nonce
    b.reset()                                      # same store, same seed
    only_error(b.feed(f), "stale_session")         # no session on the new link
    b.hello()
    assert b.nonce != old
    replay_refused(b, f)


def test_replay_after_the_counter_record_is_lost_is_refused():
    """Issue 15: both copies of the counter record damaged re-opened replay.
    Counters are per session now; the record left (the boot epoch) can be
    lost too, and nonces still do not come back."""
    b = bench()
    f = b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C)
    assert b.feed(f)[0].ok
    for k in ("link.a", "link.b"):
        if k in b.hw.store.data:
            b.hw.store.flip(k, 77)
    b.reset()
    assert any(r[4] == E.STORAGE and r[5] == 6 for r in b.pump.log.records)
    b.hello()
    replay_refused(b, f)
    # and with the whole store lost but the event log (a new pump's store)
    for k in [k for k in b.hw.store.data if k.startswith(("link.", "ident."))]:
        del b.hw.store.data[k]
    b.reset()
    b.hello()
    replay_refused(b, f)


def test_replay_after_key_rotation_is_refused():
    b = bench()
    f = b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C)
    assert b.feed(f)[0].ok
    master = os.urandom(32)
    new = {r: K.derive(master, SERIAL, n) for n, r in K.ROLES.items()}
    b.reset(keys=new)
    b.hello()
    replay_refused(b, f)
    with nothing_changes(b):      # the old key, even in the new session
        only_error(b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, key=KEY_C)), "bad_tag")
    assert b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, key=new[ROLE_C]))[0].ok


def test_frames_of_one_channel_are_worth_nothing_on_another():
    """Two programmers on two channels (two TCP connections of pump-emu
    serve): each has its own session; one's frames are refused on the other,
    and one's HELLO does not end the other's session."""
    b = bench()
    other = MemPort()
    b.link.attach(other)
    f = b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C)
    other.inbox += F.encode(L.HELLO, 9, b"")
    b.feed(b"")
    hello2 = decode_answers(bytes(other.sent))[0]
    other.sent = bytearray()
    nonce2 = bytes.fromhex(hello2.obj["session"])
    assert nonce2 != b.nonce
    for data in (f, rehome(f, nonce2)):
        other.inbox += data
        b.feed(b"")
        ans = decode_answers(bytes(other.sent))
        other.sent = bytearray()
        assert ans[0].name in ("stale_session", "bad_tag"), ans
    assert b.feed(f)[0].ok                         # on its own channel, in its session
    b.link.detach(other)
    assert len(b.link.channels) == 1


# ------------------------------------------------------------- finding 5
def test_a_counter_at_its_maximum_ends_the_session_not_the_role():
    """Issue 15, finding 5: one accepted frame at counter 0xFFFFFFFF locked
    that role for good ("replay" for every later frame). Now the session's
    counters are used up; a new session starts again at 1."""
    b = bench()
    assert b.ask(L.ALARM_TEST, {}, role=ROLE_C, counter=0xFFFFFFFF).ok
    with nothing_changes(b):
        e = only_error(b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=5)), "stale_session")
    assert "used up" in e.obj["message"]
    assert b.ask(L.SILENCE, {}, role=ROLE_P, counter=1).ok      # the other role carries on
    b.hello()
    assert b.ask(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=1).ok


def test_the_client_starts_a_new_session_when_told_its_is_stale():
    from test_link_protocol import client_for
    b = bench()
    pc = client_for(b)
    pc.alarm_test()
    first = pc.session
    pc.counters[ROLE_C] = 0xFFFFFFFE
    pc.alarm_test()                                # counter 0xFFFFFFFF: accepted
    pc.alarm_test()                                # used up: a new session, then accepted
    assert pc.session != first and pc.counters[ROLE_C] == 1
    # and after the pump restarts (its sessions end)
    b.reset()
    pc.alarm_test()
    assert len(kind_events(b, E.ALARM_TEST)) >= 1
    assert pc.counters[ROLE_C] == 1


# ------------------------------------------------------------- identity
def test_the_serial_is_kept_in_the_store_and_shown():
    b = bench()
    assert "ident.a" in b.hw.store.data or "ident.b" in b.hw.store.data
    assert b.ask(L.INTERROGATE).obj["serial"] == SERIAL
    assert b.ask(L.HELLO).obj["serial"] == SERIAL
    b.reset(serial=None)                           # a start without provisioning keeps it
    assert b.link.serial == SERIAL and b.ask(L.STATUS).obj["serial"] == SERIAL


def test_keys_provisioned_for_another_pump_are_not_used():
    b = bench()
    b.reset(serial="PUMP-OTHER")                   # this board's store says PUMP-T1
    a = b.ask(L.HELLO)
    assert a.obj["serial"] == SERIAL and a.obj["roles"] == []
    b.nonce = bytes.fromhex(a.obj["session"])
    b.ctx = F.context(SERIAL, b.nonce)
    with nothing_changes(b):
        e = only_error(b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C)), "no_key")
    assert "another pump" in e.obj["message"]
    assert b.ask(L.STATUS).ok                      # reads still answered


@pytest.mark.parametrize("s,ok", [("PUMP-0001", True), ("a", True), ("x" * 32, True), ("x" * 33, False),
                                  ("", False), ("no space", False), ("é", False), ("a/b", False)])
def test_serial_rules(s, ok):
    assert valid_serial(s) == ok


# ------------------------------------------------------------- key derivation
RFC5869 = [  # test cases 1 and 3 of RFC 5869 (SHA-256)
    ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9", 42,
     "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
    ("0b" * 22, "", "", 42,
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
]


@pytest.mark.parametrize("ikm,salt,info,n,prk,okm", RFC5869)
def test_hkdf_matches_rfc5869(ikm, salt, info, n, prk, okm):
    p = K.hkdf_extract(bytes.fromhex(salt), bytes.fromhex(ikm))
    assert p.hex() == prk
    assert K.hkdf_expand(p, bytes.fromhex(info), n).hex() == okm


def test_derived_keys_differ_by_serial_role_and_master():
    m1, m2 = b"\x01" * 32, b"\x02" * 32
    keys = {(m, s, r): K.derive(m, s, r) for m in (m1, m2) for s in ("PUMP-1", "PUMP-2", "PUMP-12")
            for r in ("patient", "clinician")}
    assert len(set(keys.values())) == len(keys) and all(len(k) == 32 for k in keys.values())
    assert K.derive(m1, "PUMP-1", "patient") == keys[(m1, "PUMP-1", "patient")]   # deterministic
    with pytest.raises(K.KeyError_):
        K.derive(m1, "bad serial", "patient")


def test_a_pump_key_file_is_used_only_with_its_pump(tmp_path):
    ks = K.parse({"master": "ab" * 32}, "m.json")
    obj = K.write_pump_file(str(tmp_path / "p.json"), ks, "PUMP-7", roles=("patient",))
    assert sorted(obj) == ["patient", "serial"]
    assert os.stat(tmp_path / "p.json").st_mode & 0o777 == 0o600
    pk = K.load_file(str(tmp_path / "p.json"))
    assert pk.for_serial("PUMP-7") == {ROLE_P: K.derive(ks.master, "PUMP-7", "patient")}
    assert pk.has(ROLE_P) and not pk.has(ROLE_C)
    with pytest.raises(K.KeyError_) as e:
        pk.for_serial("PUMP-8")
    assert "PUMP-7" in str(e.value) and "PUMP-8" in str(e.value)
    with pytest.raises(FileExistsError):
        K.write_pump_file(str(tmp_path / "p.json"), ks, "PUMP-7")


# ------------------------------------------------------------- the handshake, fuzzed
ANY_COUNTER = st.one_of(st.sampled_from(["next", "same", "back", "skip", "max"]), st.integers(0, 0xFFFFFFFF))


@st.composite
def handshake_ops(draw):
    kind = draw(st.sampled_from(["hello", "hello_other", "send", "send", "send", "replay", "noise"]))
    if kind == "send":
        return (kind, draw(st.sampled_from([ROLE_P, ROLE_C])), draw(ANY_COUNTER),
                draw(st.sampled_from(["current", "current", "old", "random"])),
                draw(st.sampled_from(["right", "right", "right", "wrong", "other_role"])))
    if kind == "replay":
        return (kind, draw(st.integers(0, 1000)), draw(st.booleans()))
    if kind == "noise":
        return (kind, draw(st.binary(max_size=40)))
    return (kind,)


_HS = []


def handshake_bench():
    if not _HS:
        b = bench()
        b.other = MemPort()
        b.link.attach(b.other)
        _HS.append(b)
    return copy.deepcopy(_HS[0])


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(handshake_ops(), max_size=30))
def test_handshake_model(ops):
    """A model of what the pump must accept: a signed frame iff it is of the
    channel's current session, under the right key for an allowed role, its
    counter above the last accepted of its role in that session (and that one
    not the maximum). Replays of any earlier frame, HELLOs on another channel
    and noise between frames, in any order. No frame is ever accepted twice,
    and the pump did exactly what the accepted frames asked."""
    b = handshake_bench()
    old_nonces = []
    last = {ROLE_P: 0, ROLE_C: 0}
    sent = []                         # (frame bytes, nonce, role, counter, key ok)
    accepted = set()
    tests_before = len(kind_events(b, E.ALARM_TEST))
    n_tests = 0

    def expect(nonce, role, counter, key_ok):
        return nonce == b.nonce and key_ok and last[role] != 0xFFFFFFFF and counter > last[role]

    for op in ops:
        if op[0] == "hello":
            old_nonces.append(b.nonce)
            b.hello()
            last = {ROLE_P: 0, ROLE_C: 0}
        elif op[0] == "hello_other":
            b.other.inbox += F.encode(L.HELLO, 1, b"")
            b.feed(b"")
            b.other.sent = bytearray()
            assert b.link.channels[0].session.nonce == b.nonce
        elif op[0] == "noise":
            b.feed(op[1])
            while b.link.waiting():                # a partial frame (or a last A5) it left
                b.feed(b"\x00", gap_ms=600)
        else:
            if op[0] == "send":
                _, role, c, which, key = op
                base = last[role]
                counter = {"next": base + 1, "same": base, "back": max(0, base - 1), "skip": base + 1000,
                           "max": 0xFFFFFFFF}.get(c, c) if isinstance(c, str) else c
                counter = min(counter, 0xFFFFFFFF)
                nonce = {"current": b.nonce, "old": old_nonces[-1] if old_nonces else b.nonce,
                         "random": bytes(16)}[which]
                k = {"right": KEYS[role], "wrong": KEY_WRONG, "other_role": KEYS[3 - role]}[key]
                ftype = L.ALARM_TEST if role == ROLE_C else L.SILENCE
                frame = F.encode(ftype, 7, b"{}", role, counter, HMAC256(k), F.handle(nonce),
                                 F.context(SERIAL, nonce))
                entry = (frame, nonce, role, counter, key == "right")
                sent.append(entry)
            else:
                if not sent:
                    continue
                entry = sent[op[1] % len(sent)]
                if op[2]:                          # moved into the current session by the attacker
                    entry = (rehome(entry[0], b.nonce), None, entry[2], entry[3], False)
            frame, nonce, role, counter, key_ok = entry
            want = expect(nonce, role, counter, key_ok)
            ans = b.feed(frame)
            assert len(ans) <= 1
            got = bool(ans) and ans[0].ok
            assert got == want, (op, ans, last)
            if got:
                assert frame not in accepted
                accepted.add(frame)
                last[role] = counter
                n_tests += role == ROLE_C
    assert len(kind_events(b, E.ALARM_TEST)) - tests_before == n_tests


# ------------------------------------------------------------- pump-emu serve restarted
@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_replay_into_a_restarted_emulator_is_refused(tmp_path, runtime):
    """Issue 15: a frame captured from `pump-emu serve` replayed into the
    emulator after a restart (same key file, counters at 0) was accepted."""
    from test_link_e2e import MICROPYTHON, new_keys, start_server, stop_server
    from host_tools.pumplink import PumpClient, PumpError
    if runtime == "micropython" and MICROPYTHON is None:
        pytest.skip("the micropython binary is not installed")
    keyfile = new_keys(tmp_path, "keys.json")
    ks = K.load_file(str(keyfile))
    srv = start_server(tmp_path, "pty", keyfile, runtime=runtime)
    try:
        with PumpClient(srv.port, ks) as pc:
            seq, frame = pc.frame(L.ALARM_TEST, {}, ROLE_C)      # hello, then the frame
            pc.send_raw(frame)
            assert pc.read_answer(seq)[2]["ok"] is True
    finally:
        assert stop_server(srv) == 0
    srv = start_server(tmp_path, "pty", keyfile, runtime=runtime)
    try:
        with PumpClient(srv.port, None) as spy:                  # no key: anyone on the line
            spy.send_raw(frame)
            ans = spy.read_answer(struct.unpack_from("<H", frame, 6)[0])[2]
            assert ans["name"] == "stale_session", ans
            nonce = bytes.fromhex(spy.hello()["session"])
            spy.send_raw(rehome(frame, nonce))
            ans = spy.read_answer(struct.unpack_from("<H", frame, 6)[0])[2]
            assert ans["name"] == "bad_tag", ans
            st = spy.interrogate()
            assert st["link"]["refused"] == 2
        with PumpClient(srv.port, ks) as pc:                     # the key holder carries on
            assert pc.alarm_test()["ok"] is True
    finally:
        assert stop_server(srv) == 0
