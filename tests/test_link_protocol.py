"""The programmer link (pump.link over pump.frames), in process, no pty.

A real Pump runs on the fake hardware of tests/portable/fakeports.py, filled
(20 mL of 500 ug/mL) and running a continuous program with a patient bolus.
Its Link talks to an in-memory port: read(n) hands over up to n queued bytes,
write() collects answers. The bench has said HELLO, so it holds a session
(the pump's serial and nonce); requests are encoded with pump.frames.encode
and signed in that session with the right or a wrong key; answers are decoded
with pump.frames.Reader. The session and replay attacks across sessions,
pumps, resets and keys are in test_link_sessions.py; floods and log retention
in test_link_flood.py.

Every refusal test checks the specific error (code and name) AND that nothing
changed: the pump's status (less the clock fields), the program read-back, the
reservoir, the store's bytes for the therapy, ledger and window records, the
alarms, and the motor (no stroke commanded now). A twin of the pump, copied
before the frame, then runs two hours beside it: the stroke traces must be the
same (no stroke commanded later either). This is design invariant I8: no
command changes therapy unless it is well-formed, authenticated for its role
and not a replay.

Then fuzzing (Hypothesis): arbitrary bytes in random chunks, and byte-level
mutations of valid signed frames of every request type. The totals are printed
by the last test of the file ("fuzz: N inputs, M bytes").

Finally the same frames under the real `micropython` binary: a generated script
builds the pump on fakeports and a Link, feeds it frames made here, and prints
the answers; CPython running the same script must print the same.

Some tests were written to show a defect found with this file (a confirm
window measured on stale pump time, an event log an attacker could flush, a
damaged counter copy reopening a replay, a client misled by noise, JSON read
differently on MicroPython); the defects are fixed and the tests guard them.
"""
import contextlib
import copy
import json
import os
import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from conftest import sim_profile
from fakeports import Hardware
from pump import alarms as A
from pump import eventlog as E
from pump import frames as F
from pump import link as L
from pump import schedule as S
from pump.compat import crc32
from pump.controller import Pump
from pump.hmac256 import HMAC256
from pump.session import Identity, SeededEntropy
from test_micropython import FIRMWARE, MICROPYTHON, PORTABLE, _env, needs_micropython

PROFILE = sim_profile()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIN = 60_000
HOUR = 60 * MIN
FILL = 20_000_000
CONC = 500
ROLE_P, ROLE_C = F.ROLE_PATIENT, F.ROLE_CLINICIAN
KEY_P = bytes(range(0x40, 0x60))            # 32 bytes each, distinctive in a store dump
KEY_C = bytes(range(0xC0, 0xE0))
KEY_WRONG = bytes(range(0x10, 0x30))
KEYS = {ROLE_P: KEY_P, ROLE_C: KEY_C}
SERIAL = "PUMP-T1"
PB = {"dose_ug": 30, "duration_min": 15, "lockout_min": 120, "max_per_day": 4}
PROG = {"mode": "continuous", "concentration_ug_ml": CONC, "daily_dose_ug": 400,
        "max_daily_ug": 560, "max_hourly_ug": 60, "patient_bolus": PB}
NEW_PROG = dict(PROG, daily_dose_ug=450)   # +12.5 %: inside the step-up limit
THERAPY_RECORDS = ("therapy", "ledger", "window")
# request types that need a key (everything but status and interrogate)
AUTH_TYPES = sorted(t for t, (_, roles, _c) in L.REQUESTS.items() if roles)
CLINICIAN_ONLY = sorted(t for t, (_, roles, _c) in L.REQUESTS.items() if roles == (ROLE_C,))


# ---------------------------------------------------------------- the bench
class MemPort:
    """The link's port: read() hands over what was queued, write() collects."""

    def __init__(self):
        self.inbox = bytearray()
        self.sent = bytearray()

    def read(self, n=1 << 30):
        data = bytes(self.inbox[:n])
        del self.inbox[:n]
        return data

    def write(self, data):
        self.sent += data


class Answer:
    def __init__(self, ftype, seq, obj):
        self.type, self.seq, self.obj = ftype, seq, obj

    @property
    def ok(self):
        return self.type != L.ERROR and self.obj.get("ok") is True

    @property
    def name(self):
        return self.obj.get("name")

    def __repr__(self):
        return "Answer(0x%02x, seq=%d, %r)" % (self.type, self.seq, self.obj)


def decode_answers(raw):
    """The pump's answers: whole, unsigned, version-2 frames with JSON objects."""
    r = F.Reader(max_body=F.MAX_ANSWER)
    out = []
    i = 0
    while True:
        if i < len(raw) and r.room():
            i += r.feed(raw[i:i + r.room()], 0)
        x = r.next(0)
        if x is None:
            if i < len(raw):
                continue
            break
        status, body = x
        assert status == F.GOOD, "the pump wrote a broken frame: %r" % (raw,)
        ver, ftype, seq, role, counter, payload, _, tag = F.split_body(body)
        assert (ver, role, counter, tag, F.session_of(body)) == (F.VERSION, F.ROLE_NONE, 0, b"", 0)
        obj = json.loads(payload)
        assert isinstance(obj, dict) and isinstance(obj.get("ok"), bool)
        if ftype == L.ERROR:
            assert obj["ok"] is False and L.ERROR_NAMES[obj["error"]] == obj["name"]
        else:
            assert ftype & 0x80 and (ftype & 0x7F) in L.REQUESTS and obj["ok"] is True
        out.append(Answer(ftype, seq, obj))
    assert not r.pending(), "trailing bytes after the answers"
    return out


def sign(key):
    return HMAC256(key) if key is not None else None


def raw_frame(ftype, seq, payload, role=0, counter=0, key=None, ver=F.VERSION, session=0, ctx=b""):
    """The test's own encoder (the format in frames.py's header comment), so a
    field frames.encode never writes (another version) can be sent. The tag
    is computed with CPython's hmac over the session context and the body."""
    import hashlib
    import hmac
    body = struct.pack("<BBHBII", ver, ftype, seq, role, session, counter) + payload
    if role:
        body += hmac.new(key, ctx + body, hashlib.sha256).digest()
    head = b"\xa5\x5a" + struct.pack("<H", len(body))
    return head + body + struct.pack("<I", crc32(head[2:] + body))


def boot(hw):
    p = Pump(PROFILE, **hw.ports())
    p.start()
    return p


class Bench:
    """One filled, programmed, running pump and its link."""

    def __init__(self, keys=KEYS):
        self.hw = Hardware(PROFILE)
        self.pump = boot(self.hw)
        assert self.pump.refill(FILL, CONC, 0) == 0
        self.hw.motor.actual_nl = FILL
        self.pump.program_now(PROG)
        self.next_wake = 0
        self.advance(10 * MIN)
        self.sync()
        assert self.pump.state() == "running"
        self.port = MemPort()
        self.keys = keys
        self.link = Link_(self.pump, self.port, keys, SERIAL, SeededEntropy(b"bench"))
        self.ms = 5_000_000          # the link's own clock (frame-gap timing)
        self.ctr = {ROLE_P: 0, ROLE_C: 0}
        self.seq = 100
        self.hello()

    def hello(self):
        """Start a session: -> the answer. Counters start again at 0."""
        a = self.ask(L.HELLO)
        assert a.ok and a.obj["serial"] == self.link.serial, a
        self.nonce = bytes.fromhex(a.obj["session"])
        self.ctx = F.context(a.obj["serial"], self.nonce)
        self.ctr = {ROLE_P: 0, ROLE_C: 0}
        return a

    def clone(self):
        return copy.deepcopy(self)

    def advance(self, ms):
        """Let pump time pass, waking the pump when it asked to (as harness.Run)."""
        end = self.hw.clock.now + ms
        while self.next_wake <= end:
            self.hw.clock.now = max(self.hw.clock.now, self.next_wake)
            self.next_wake = self.hw.clock.now + self.pump.cycle()
        self.hw.clock.now = end

    def sync(self):
        """The pump decides now (the main loop may wake it at any time)."""
        self.next_wake = self.hw.clock.now + self.pump.cycle()

    def reset(self, keys=None, serial=SERIAL, seed=b"bench"):
        """Power-on reset: a new Pump and a new Link on the same hardware and
        store (the seeded entropy starts again, as an emulator's would). The
        bench keeps its old session: the test says hello when it wants one."""
        self.pump = boot(self.hw)
        self.link = Link_(self.pump, self.port, KEYS if keys is None else keys, serial, SeededEntropy(seed))
        self.next_wake = self.hw.clock.now

    def frame(self, ftype, args=None, role=0, counter=None, key="right", seq=None, payload=None):
        if seq is None:
            self.seq += 1
            seq = self.seq
        if payload is None:
            payload = b"" if args is None and not role else json.dumps({} if args is None else args).encode()
        mac = None
        if role:
            if counter is None:
                self.ctr[role] += 1
                counter = self.ctr[role]
            if key == "right":
                key = KEYS[role]
            mac = HMAC256(key)
        if not role:
            return F.encode(ftype, seq, payload)
        return F.encode(ftype, seq, payload, role, counter or 0, mac, F.handle(self.nonce), self.ctx)

    def feed(self, data, gap_ms=1):
        """Queue bytes and poll until the link has read them all (a poll reads
        no more than its reader has room for); a request that may have changed
        therapy gets the pump's immediate decision, as in the firmware main
        loop. -> answers."""
        self.port.inbox += data
        changed = False
        while True:
            self.ms += gap_ms
            c = self.link.poll(self.ms)
            assert c in (True, False)
            changed = changed or c
            if not self.port.inbox:
                break
        if changed:
            self.next_wake = self.hw.clock.now + self.pump.cycle()
        self.changed = changed
        return self.answers()

    def answers(self):
        out = decode_answers(bytes(self.port.sent))
        self.port.sent = bytearray()
        return out

    def ask(self, ftype, args=None, role=0, **kw):
        """Send one request; -> its one answer."""
        f = self.frame(ftype, args, role, **kw)
        ans = self.feed(f)
        assert len(ans) == 1, ans
        return ans[0]


Link_ = L.Link
_TEMPLATE = []


def bench():
    """A fresh copy of the template bench (building one takes a while)."""
    if not _TEMPLATE:
        _TEMPLATE.append(Bench())
    return copy.deepcopy(_TEMPLATE[0])


def therapy_state(b):
    """Everything that is therapy, as plain data (not the link's counters, not
    the event log, not the clock)."""
    p = b.pump
    st = p.status()
    for k in ("pump_time", "wall_s", "schedule_time_s"):
        st.pop(k)
    r = p.reservoir
    return {
        "status": st,
        "program": json.dumps(p.program.raw, sort_keys=True) if p.program is not None else None,
        "readback": p.program.readback() if p.program is not None else None,
        "reservoir": (r.remaining_nl(), r.fill_nl, r.conc, r.strokes, r.capacity_nl),
        "store": {k: v for k, v in b.hw.store.data.items() if k.split(".")[0] in THERAPY_RECORDS},
        "stop": p.stop, "safe_mode": p.safe_mode,
        "pb_grants": copy.deepcopy(p.pb_grants), "titration": copy.deepcopy(p.titration),
        "boluses": [(x.active, x.vol, x.left_s) for x in p.schedule.boluses],
        "alarms": (list(p.alarms.active), list(p.alarms.silenced)),
        "sounds": len(b.hw.annunciator.sounds),
        "wall_adjust": b.hw.clock.wall_adjust,
        "motor": (b.hw.motor.commands, len(b.hw.motor.trace)),
    }


def diff(a, b):
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}


@contextlib.contextmanager
def nothing_changes(b, horizon=2 * HOUR, sync=True):
    """The block must leave therapy as it was; a twin copied before it then runs
    beside the bench for `horizon`: both must command the very same strokes.
    The pump first decides at the current time (as after any command), so a
    request's own catch-up to now is not taken for a change."""
    if sync:
        b.sync()
    twin = b.clone()
    before = therapy_state(b)
    yield
    after = therapy_state(b)
    assert after == before, diff(after, before)
    assert not getattr(b, "changed", False)
    ahead = b.clone()
    ahead.advance(horizon)
    twin.advance(horizon)
    assert ahead.hw.motor.trace == twin.hw.motor.trace
    assert ahead.hw.motor.commands == twin.hw.motor.commands
    assert len(ahead.hw.motor.trace) > 0          # and it does pump meanwhile


def only_error(answers, name, seq=None):
    errs = [a for a in answers if a.type == L.ERROR]
    assert answers and errs == answers, answers
    assert [a.name for a in errs] == [name], answers
    assert answers[0].obj["error"] == L.ERROR_NAMES.index(name)
    if seq is not None:
        assert answers[0].seq == seq
    return answers[0]


def link_events(b):
    """The link's summary records (its own log, beside the therapy's)."""
    return [r for r in b.link.noise.log.records if r[4] == E.LINK]


def kind_events(b, kind):
    return [r for r in b.pump.log.records if r[4] == kind]


BOLUS_ARGS = {"dose_ug": 10, "duration_min": 60}   # 20 000 nL at 500 ug/mL


# ------------------------------------------------------------- sanity first
def test_own_encoder_matches_frames_encode():
    for role, key in ((0, None), (ROLE_P, KEY_P), (ROLE_C, KEY_C)):
        a = raw_frame(L.BOLUS, 7, b'{"x": 1}', role, 9, key)
        b_ = F.encode(L.BOLUS, 7, b'{"x": 1}', role, 9, sign(key))
        assert a == b_


def test_status_needs_no_key():
    b = bench()
    with nothing_changes(b):
        a = b.ask(L.STATUS, seq=4242)
        i = b.ask(L.INTERROGATE)
    assert a.type == L.STATUS | 0x80 and a.seq == 4242 and a.ok
    assert a.obj["state"] == "running" and a.obj["reservoir_nl"] == b.pump.reservoir.remaining_nl()
    assert a.obj["counters"] == [0, 0] and a.obj["serial"] == SERIAL
    assert i.ok and i.obj["program"]["daily_dose_ug"] == 400 and i.obj["pending_program"] is None
    assert i.obj["serial"] == SERIAL
    assert link_events(b) == []


def test_status_signed_with_a_key_is_checked_too():
    """Any signed frame is checked as a keyed request is: session, tag and
    counter (a signed status takes a counter too)."""
    b = bench()
    with nothing_changes(b):
        ok = b.ask(L.STATUS, role=ROLE_P, counter=1)
        bad = b.ask(L.STATUS, role=ROLE_C, key=KEY_WRONG)
        again = b.ask(L.STATUS, role=ROLE_P, counter=1)
    assert ok.ok and ok.obj["counters"] == [1, 0]
    assert bad.name == "bad_tag"
    assert again.name == "replay"


def test_every_request_type_is_accepted_when_valid():
    """The valid frames the fuzzers mutate really are accepted by the template."""
    for ftype, args, role in request_cases(fuzz_template()):
        b = fuzz_bench()
        f = b.frame(ftype, args, role, counter=b.ctr.get(role, 0) + 1)
        ans = b.feed(f)
        assert len(ans) == 1 and ans[0].ok, (L.REQUESTS[ftype][0], ans)
        assert ans[0].type == ftype | 0x80


# ------------------------------------------------------------ authority (I8)
def test_no_tag_on_a_clinician_request_is_auth_required():
    b = bench()
    with nothing_changes(b):
        ans = b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=0, seq=77))
    e = only_error(ans, "auth_required", seq=77)
    assert e.obj["error"] == L.E_AUTH_REQUIRED == 7
    assert "clinician" in e.obj["message"]
    assert [r[5] for r in link_events(b)] == [L.CODE_BITS[L.E_AUTH_REQUIRED]]


@pytest.mark.parametrize("ftype", AUTH_TYPES, ids=lambda t: L.REQUESTS[t][0])
def test_every_keyed_request_without_a_tag_is_auth_required(ftype):
    b = bench()
    args = {"program": NEW_PROG} if ftype == L.PROGRAM else {}
    with nothing_changes(b, horizon=HOUR):
        ans = b.feed(b.frame(ftype, args, role=0))
    only_error(ans, "auth_required")
    assert b.link.counters == [0, 0, 0]
    assert b.pump.log.records[-1][4] != E.LINK      # not in the therapy's log


def test_wrong_key_is_bad_tag():
    b = bench()
    with nothing_changes(b):
        ans = b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=1, key=KEY_WRONG))
    e = only_error(ans, "bad_tag")
    assert e.obj["error"] == L.E_BAD_TAG == 8
    # the counter of a forged frame is not taken: the real one still works
    assert b.link.counters[ROLE_C] == 0
    assert b.ask(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=1).ok


def test_patient_key_for_a_clinician_request_is_wrong_role():
    b = bench()
    with nothing_changes(b):
        ans = b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_P, counter=1, key=KEY_P))
    e = only_error(ans, "wrong_role")
    assert e.obj["error"] == L.E_WRONG_ROLE == 10
    assert "patient" in e.obj["message"]


@pytest.mark.parametrize("ftype", CLINICIAN_ONLY, ids=lambda t: L.REQUESTS[t][0])
def test_patient_key_cannot_do_any_clinician_request(ftype):
    b = bench()
    args = {"program": NEW_PROG} if ftype == L.PROGRAM else {}
    with nothing_changes(b, horizon=HOUR):
        ans = b.feed(b.frame(ftype, args, role=ROLE_P, counter=1, key=KEY_P))
    only_error(ans, "wrong_role")


def test_patient_key_under_the_clinician_role_byte_is_bad_tag():
    b = bench()
    with nothing_changes(b):
        ans = b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=1, key=KEY_P))
    only_error(ans, "bad_tag")


def test_clinician_key_cannot_ask_for_the_patient_bolus():
    b = bench()
    with nothing_changes(b):
        ans = b.feed(b.frame(L.PATIENT_BOLUS, {}, role=ROLE_C, counter=1))
    only_error(ans, "wrong_role")


def test_unknown_role_byte():
    b = bench()
    with nothing_changes(b):
        ans = b.feed(raw_frame(L.BOLUS, 5, json.dumps(BOLUS_ARGS).encode(), 3, 1, KEY_C))
    only_error(ans, "wrong_role")


def test_role_without_a_provisioned_key_is_no_key():
    b = bench()
    b.link = Link_(b.pump, b.port, {ROLE_C: KEY_C}, SERIAL)
    b.hello()
    with nothing_changes(b):
        ans = b.feed(b.frame(L.PATIENT_BOLUS, {}, role=ROLE_P, counter=1))
    only_error(ans, "no_key")
    assert b.ask(L.HELLO).obj["roles"] == ["clinician"]
    # nor an empty key
    b.link = Link_(b.pump, b.port, {ROLE_P: b"", ROLE_C: KEY_C}, SERIAL)
    b.hello()
    with nothing_changes(b):
        ans = b.feed(b.frame(L.PATIENT_BOLUS, {}, role=ROLE_P, counter=2, key=b""))
    only_error(ans, "no_key")


def test_replayed_frame_gives_one_bolus_only():
    b = bench()
    f = b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C)
    b.sync()
    without = b.clone()                # a twin that never got the bolus
    first = b.feed(f)
    assert len(first) == 1 and first[0].ok and first[0].obj["volume_nl"] == 20_000
    assert b.changed
    with nothing_changes(b):
        again = b.feed(f)             # the very same bytes
    e = only_error(again, "replay")
    assert e.obj["error"] == L.E_REPLAY == 9
    assert [r[5] for r in kind_events(b, E.BOLUS)] == [S.BOLUS]      # one clinician bolus
    b.advance(3 * HOUR)
    without.advance(3 * HOUR)
    # (a stroke is labelled with the source owed most, here the basal rate: count them all)
    extra = len(b.hw.motor.trace) - len(without.hw.motor.trace)
    assert abs(extra - 20_000 // PROFILE["stroke_nl"]) <= 1, extra


def test_replayed_patient_bolus_after_its_lockout_is_still_refused():
    """A recorded patient-bolus frame is worth nothing later, even when the
    pump would grant a new bolus."""
    b = bench()
    f = b.frame(L.PATIENT_BOLUS, {}, role=ROLE_P)
    assert b.feed(f)[0].ok
    b.advance(3 * HOUR)               # past the 2 h lockout
    with nothing_changes(b):
        only_error(b.feed(f), "replay")
    assert b.ask(L.PATIENT_BOLUS, {}, role=ROLE_P).ok     # a fresh request is granted


def test_reordered_counters_second_refused():
    b = bench()
    later = b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=5)
    earlier = b.frame(L.SUSPEND, {}, role=ROLE_C, counter=4)
    assert b.feed(later)[0].ok
    with nothing_changes(b):
        only_error(b.feed(earlier), "replay")
    assert b.pump.state() == "running"
    assert b.link.counters[ROLE_C] == 5
    # counters are per role: the patient's are untouched
    assert b.ask(L.SILENCE, {}, role=ROLE_P, counter=1).ok


def test_counter_equal_to_the_last_is_a_replay_even_with_other_content():
    b = bench()
    assert b.ask(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=9).ok
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.SUSPEND, {}, role=ROLE_C, counter=9)), "replay")


def test_counters_start_again_in_a_new_session_and_old_frames_are_stale():
    b = bench()
    f6 = b.frame(L.SUSPEND, {}, role=ROLE_C, counter=6)
    assert b.ask(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=7).ok
    assert b.ask(L.PATIENT_BOLUS, {}, role=ROLE_P, counter=3).ok
    assert b.ask(L.STATUS).obj["counters"] == [3, 7]
    old_session = (b.nonce, b.ctx)
    b.hello()
    assert b.ask(L.STATUS).obj["counters"] == [0, 0]
    assert b.nonce != old_session[0]
    with nothing_changes(b):
        only_error(b.feed(f6), "stale_session")
    # counter 1 is fresh in the new session
    assert b.ask(L.ALARM_TEST, {}, role=ROLE_C, counter=1).ok


def test_a_request_writes_nothing_to_the_store_before_it_acts():
    """Sessions live in RAM: a request costs no flash write of the link's
    own (the store is written only by what the request does)."""
    b = bench()
    store = b.hw.store
    saved = []
    orig = store.write

    def spy(key, data):
        saved.append(key)
        return orig(key, data)
    store.write = spy
    b.ask(L.ALARM_TEST, {}, role=ROLE_C)
    b.ask(L.STATUS)
    b.ask(L.HELLO)
    store.write = orig
    assert not [k for k in saved if k.startswith(("link.", "ident."))], saved
    assert saved and all(k.startswith("log.") for k in saved), saved    # the alarm test's own event


# ------------------------------------------------------------------ framing
def test_truncated_frame_then_a_valid_frame_is_answered():
    b = bench()
    f = b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=1)
    with nothing_changes(b):
        assert b.feed(f[: len(f) // 2]) == []          # waits for the rest
        gap = b.link.reader.gap_ms
        assert b.feed(b"", gap_ms=gap - 2) == []       # not yet
        ans = b.feed(b"", gap_ms=3)                     # gap_ms with no byte
    assert ans and ans[0].name == "truncated" and ans[0].obj["error"] == L.E_TRUNCATED
    assert all(a.type == L.ERROR for a in ans)
    st = b.ask(L.STATUS, seq=900)
    assert st.ok and st.seq == 900
    # the counter of the lost half frame was never taken
    assert b.ask(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=1).ok


def test_truncated_timing_is_right_across_the_ticks_wrap():
    b = bench()
    b.ms = (1 << 30) - 100
    f = b.frame(L.STATUS, {})
    assert b.feed(f[:7]) == []
    b.ms = ((1 << 30) + 300) & 0x3FFFFFFF     # 400 ms later, across the wrap
    assert b.feed(b"", gap_ms=0) == []
    b.ms += 101
    ans = b.feed(b"", gap_ms=0)
    assert ans and ans[0].name == "truncated"


def test_oversized_length_is_refused_and_the_link_resyncs():
    b = bench()
    bogus = b"\xa5\x5a" + struct.pack("<H", F.MAX_BODY + 1) + b"\x00" * 40
    with nothing_changes(b):
        ans = b.feed(bogus)
    assert ans[0].name == "oversized" and ans[0].obj["error"] == L.E_OVERSIZED
    assert all(a.type == L.ERROR for a in ans)
    assert b.ask(L.STATUS, seq=901).seq == 901


def test_real_frame_longer_than_the_pump_accepts_is_oversized():
    b = bench()
    big = dict(BOLUS_ARGS, pad="x" * F.MAX_BODY)
    with nothing_changes(b):
        ans = b.feed(b.frame(L.BOLUS, big, role=ROLE_C, counter=1))
    assert ans[0].name == "oversized"
    assert not any(a.ok for a in ans)
    assert b.link.counters[ROLE_C] == 0
    assert b.ask(L.STATUS).ok


def test_length_under_a_header_is_refused():
    b = bench()
    with nothing_changes(b):
        # under ver, type and seq: the reader drops it
        ans = b.feed(b"\xa5\x5a" + struct.pack("<H", F.MIN_BODY - 1) + b"\x00" * 20)
    assert ans[0].name == "bad_frame" and ans[0].seq == 0
    body = struct.pack("<BBH", F.VERSION, L.STATUS, 4321) + b"\x00" * (F.HEAD_LEN - 5)
    head = b"\xa5\x5a" + struct.pack("<H", len(body))
    with nothing_changes(b):
        # a whole frame, but its body is shorter than a header: answered with its seq
        ans = b.feed(head + body + struct.pack("<I", crc32(head[2:] + body)))
    only_error(ans, "bad_frame", seq=4321)
    assert b.ask(L.STATUS).ok


def test_bad_crc():
    b = bench()
    f = bytearray(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=1))
    f[-1] ^= 0x01
    with nothing_changes(b):
        ans = b.feed(bytes(f))
    assert ans[0].name == "bad_frame" and ans[0].obj["error"] == L.E_BAD_FRAME
    assert not any(a.ok for a in ans)
    assert b.link.counters[ROLE_C] == 0
    good = bytes(f[:-1]) + bytes([f[-1] ^ 0x01])
    assert b.feed(good)[0].ok


def test_signed_body_too_short_for_its_tag():
    b = bench()
    body = struct.pack("<BBHBII", F.VERSION, L.BOLUS, 3, ROLE_C, F.handle(b.nonce), 1) + b"{}"   # no room for a tag
    head = b"\xa5\x5a" + struct.pack("<H", len(body))
    with nothing_changes(b):
        ans = b.feed(head + body + struct.pack("<I", crc32(head[2:] + body)))
    only_error(ans, "bad_frame")


def test_noise_before_a_valid_frame():
    b = bench()
    noise = b"\x00\xff\x5a\xa5hello\xa5"
    ans = b.feed(noise + b.frame(L.STATUS, seq=902))
    # noise between frames gets its own error name, which a client waiting for
    # an answer can tell from a damaged frame (that may have been its own)
    assert [a.name for a in ans if a.type == L.ERROR] and all(a.name in ("noise", "bad_frame") for a in ans[:-1])
    assert any(a.name == "noise" for a in ans[:-1])
    assert ans[-1].ok and ans[-1].seq == 902
    ans = b.feed(noise + b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=1, seq=903))
    assert ans[-1].ok and ans[-1].seq == 903 and ans[-1].obj["volume_nl"] == 20_000


def test_wrong_version():
    b = bench()
    with nothing_changes(b):
        ans = b.feed(raw_frame(L.BOLUS, 5, json.dumps(BOLUS_ARGS).encode(), ROLE_C, 1, KEY_C, ver=3,
                               session=F.handle(b.nonce), ctx=b.ctx))
    e = only_error(ans, "bad_version", seq=5)
    assert e.obj["error"] == L.E_VERSION and "speaks 2" in e.obj["message"]
    with nothing_changes(b):
        only_error(b.feed(raw_frame(L.STATUS, 6, b"{}", ver=0)), "bad_version")
    # a version-1 frame (the old 9-byte header) is answered as such, not as a damaged frame
    v1 = struct.pack("<BBHBI", 1, L.STATUS, 7, 0, 0) + b"{}"
    head = b"\xa5\x5a" + struct.pack("<H", len(v1))
    with nothing_changes(b):
        only_error(b.feed(head + v1 + struct.pack("<I", crc32(head[2:] + v1))), "bad_version", seq=7)
    assert b.link.counters[ROLE_C] == 0


@pytest.mark.parametrize("ftype", [0x00, 0x05, 0x1A, 0x22, 0x7F, 0x81, 0xFF])
def test_unknown_type(ftype):
    b = bench()
    with nothing_changes(b, horizon=HOUR):
        ans = b.feed(b.frame(ftype, {}, role=ROLE_C, counter=1))
    e = only_error(ans, "unknown_request")
    assert e.obj["error"] == L.E_UNKNOWN
    assert b.link.counters[ROLE_C] == 0


@pytest.mark.parametrize("payload", [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b"{\"dose_ug\": 10", b"null",
                                     b'{"dose_ug": 10.0, "duration_min": 60}',
                                     b'{"dose_ug": true, "duration_min": 60}',
                                     b'{"dose_ug": "10", "duration_min": 60}',
                                     b'{"duration_min": 60}',
                                     b'{"dose_ug": 100001, "duration_min": 60}'])
def test_bad_payload(payload):
    b = bench()
    with nothing_changes(b, horizon=HOUR):
        ans = b.feed(b.frame(L.BOLUS, role=ROLE_C, counter=1, payload=payload))
    e = only_error(ans, "bad_payload")
    assert e.obj["error"] == L.E_PAYLOAD


@pytest.mark.parametrize("payload", [b"{", b'{"x": 1}', b"[]", b" {}", b"{}{}"])
def test_keyless_requests_take_no_arguments(payload):
    b = bench()
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.STATUS, payload=payload)), "bad_payload")
        only_error(b.feed(b.frame(L.HELLO, payload=payload)), "bad_payload")
    assert b.ask(L.STATUS, payload=b"{}").ok and b.ask(L.STATUS, payload=b"").ok


def test_command_error_from_the_pump():
    """A well-formed payload the pump itself rejects (less than one stroke, a
    bolus too fast): command_error naming the field, nothing changed."""
    b = bench()
    with nothing_changes(b):
        e = only_error(b.feed(b.frame(L.BOLUS, {"dose_ug": 500, "duration_min": 1}, role=ROLE_C)),
                       "command_error")
    assert e.obj["field"] == "duration_min"
    with nothing_changes(b):
        e = only_error(b.feed(b.frame(L.REFILL, {"volume_nl": 5_000_000, "concentration_ug_ml": 5,
                                                 "residual_nl": 0}, role=ROLE_C)), "command_error")
    assert e.obj["field"] == "concentration_ug_ml"


def test_refused_by_the_pump_names_the_reason():
    b = bench()
    assert b.ask(L.PATIENT_BOLUS, {}, role=ROLE_P).ok
    b.advance(30 * MIN)                 # the 15 min bolus is over; lockout is 2 h
    with nothing_changes(b):
        e = only_error(b.feed(b.frame(L.PATIENT_BOLUS, {}, role=ROLE_P)), "refused")
    assert e.obj["reason"] == "lockout"


# ---------------------------------------------------------------- programming
@pytest.mark.parametrize("field,value", [("max_hourly_ug", 0), ("daily_dose_ug", 99999), ("max_daily_ug", 0),
                                         ("concentration_ug_ml", 5), ("mode", "bolus")])
def test_program_limit_out_of_range_is_a_program_error(field, value):
    b = bench()
    with nothing_changes(b):
        ans = b.feed(b.frame(L.PROGRAM, {"program": dict(NEW_PROG, **{field: value})}, role=ROLE_C))
    e = only_error(ans, "program_error")
    assert e.obj["error"] == L.E_PROGRAM and e.obj["field"] == field
    assert e.obj["message"].startswith(field + ":")
    assert b.pump.program.readback()["daily_dose_ug"] == 400
    assert b.link.pending is None
    assert b.ask(L.INTERROGATE).obj["pending_program"] is None


def test_program_must_be_a_table():
    b = bench()
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.PROGRAM, {"program": [1]}, role=ROLE_C)), "bad_payload")
        only_error(b.feed(b.frame(L.PROGRAM, {}, role=ROLE_C)), "bad_payload")


def test_step_up_without_override_is_refused():
    b = bench()
    with nothing_changes(b):
        e = only_error(b.feed(b.frame(L.PROGRAM, {"program": dict(PROG, daily_dose_ug=800, max_daily_ug=1000,
                                                                  max_hourly_ug=80)}, role=ROLE_C)),
                       "program_error")
    assert e.obj["field"] == "daily_dose_ug" and "override" in e.obj["reason"]


def test_two_step_programming():
    b = bench()
    events_before = len(kind_events(b, E.PROGRAM))
    with nothing_changes(b):
        a = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C)
        assert a.ok and a.type == L.PROGRAM | 0x80
        rb, token = a.obj["readback"], a.obj["token"]
        assert rb["daily_dose_ug"] == 450 and rb["daily_nl"] == 450 * 1_000_000 // CONC
        assert isinstance(token, str) and len(token) == 12 and int(token, 16) >= 0
        assert a.obj["confirm_within_s"] == L.PENDING_MS // 1000
        assert b.ask(L.INTERROGATE).obj["pending_program"] == token
    assert len(kind_events(b, E.PROGRAM)) == events_before
    c = b.ask(L.CONFIRM, {"token": token}, role=ROLE_C)
    assert c.ok and c.obj["readback"] == rb and c.obj["state"] == "running"
    assert b.changed
    assert b.pump.program.readback()["daily_dose_ug"] == 450
    assert len(kind_events(b, E.PROGRAM)) == events_before + 1
    assert b.ask(L.INTERROGATE).obj["pending_program"] is None


def test_confirm_with_a_wrong_token_is_not_pending():
    b = bench()
    token = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C).obj["token"]
    wrong = "%012x" % (int(token, 16) ^ 1)
    with nothing_changes(b):
        e = only_error(b.feed(b.frame(L.CONFIRM, {"token": wrong}, role=ROLE_C)), "not_pending")
        assert e.obj["error"] == L.E_NOT_PENDING
        only_error(b.feed(b.frame(L.CONFIRM, {"token": 123}, role=ROLE_C)), "not_pending")
        # the pending program is dropped after a wrong token: send it again
        only_error(b.feed(b.frame(L.CONFIRM, {"token": token}, role=ROLE_C)), "not_pending")
    assert b.pump.program.readback()["daily_dose_ug"] == 400


def test_confirm_without_program_is_not_pending():
    b = bench()
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.CONFIRM, {"token": "000000000000"}, role=ROLE_C)), "not_pending")


def test_confirm_twice_second_is_not_pending():
    b = bench()
    token = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C).obj["token"]
    assert b.ask(L.CONFIRM, {"token": token}, role=ROLE_C).ok
    n = len(kind_events(b, E.PROGRAM))
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.CONFIRM, {"token": token}, role=ROLE_C)), "not_pending")
    assert len(kind_events(b, E.PROGRAM)) == n


def test_confirm_by_the_patient_is_wrong_role():
    b = bench()
    token = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C).obj["token"]
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.CONFIRM, {"token": token}, role=ROLE_P)), "wrong_role")
        only_error(b.feed(b.frame(L.CONFIRM, {"token": token}, role=0)), "auth_required")
    # a refused confirm does not consume the pending program
    assert b.ask(L.CONFIRM, {"token": token}, role=ROLE_C).ok


def test_a_new_program_replaces_the_pending_one():
    b = bench()
    t1 = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C).obj["token"]
    t2 = b.ask(L.PROGRAM, {"program": dict(NEW_PROG, daily_dose_ug=420)}, role=ROLE_C).obj["token"]
    assert t1 != t2
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.CONFIRM, {"token": t1}, role=ROLE_C)), "not_pending")


def test_pending_program_is_dropped_by_a_refill():
    b = bench()
    token = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C).obj["token"]
    res = b.ask(L.REFILL, {"volume_nl": FILL, "concentration_ug_ml": CONC,
                           "residual_nl": b.pump.reservoir.remaining_nl()}, role=ROLE_C)
    assert res.ok and res.obj["reconcile"] == "ok"
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.CONFIRM, {"token": token}, role=ROLE_C)), "not_pending")


def test_pending_program_expires():
    b = bench()
    token = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C).obj["token"]
    b.advance(L.PENDING_MS + MIN)       # the pump wakes meanwhile
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.CONFIRM, {"token": token}, role=ROLE_C)), "not_pending")


class Precondition(Exception):
    """The setting of an xfail test is wrong (not the defect it shows)."""


def require(cond, what):
    if not cond:
        raise Precondition(what)


def test_pending_program_expires_even_if_the_pump_has_not_woken():
    b = bench()
    assert b.ask(L.SUSPEND, {}, role=ROLE_C).ok       # a suspended pump sleeps long (max_sleep_ms)
    t0 = b.hw.clock.now
    token = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C).obj["token"]
    b.advance(5 * MIN)
    assert b.ask(L.SILENCE, {}, role=ROLE_P).ok       # any keyed request: the pump decides, sleeps again
    b.advance(L.PENDING_MS - 5 * MIN - 1)             # it wakes whenever it asks to
    late = t0 + L.PENDING_MS + MIN                    # a minute after the window closed
    require(b.next_wake > late, "the pump wakes before %d (at %d)" % (late, b.next_wake))
    b.hw.clock.now = late
    with nothing_changes(b, horizon=HOUR, sync=False):
        only_error(b.feed(b.frame(L.CONFIRM, {"token": token}, role=ROLE_C)), "not_pending")


def test_token_is_bound_to_the_program_read_back():
    """The same program sent again gets a new token (the counter is in it)."""
    b = bench()
    t1 = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C).obj["token"]
    t2 = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C).obj["token"]
    assert t1 != t2
    assert b.ask(L.CONFIRM, {"token": t2}, role=ROLE_C).ok


# ---------------------------------------------------------- logging and keys
def test_authority_refusals_are_summarised_and_keys_never_stored():
    b = bench()
    b.ask(L.BOLUS, BOLUS_ARGS, role=0)                                    # auth_required
    b.ask(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=1, key=KEY_WRONG)    # bad_tag
    b.ask(L.BOLUS, BOLUS_ARGS, role=ROLE_P, counter=1)                   # wrong_role
    assert b.ask(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=2).ok
    b.ask(L.SUSPEND, {}, role=ROLE_C, counter=2)                          # replay
    b.advance(L.PENDING_MS + MIN)         # a summary record at most every 10 min of pump time
    b.feed(b"")
    b.link = Link_(b.pump, b.port, {ROLE_C: KEY_C}, SERIAL)
    b.hello()
    b.ask(L.PATIENT_BOLUS, {}, role=ROLE_P, counter=5)                   # no_key
    recs = link_events(b)
    bits = L.CODE_BITS
    # the first refusal at once; the next three summed up ten minutes later;
    # the new link (as after a restart) starts its own ten minutes
    assert [(r[5], r[6], r[7]) for r in recs] == [
        (bits[L.E_AUTH_REQUIRED], 1, 0),
        (bits[L.E_BAD_TAG] | bits[L.E_WRONG_ROLE] | bits[L.E_REPLAY], 3, 0),
        (bits[L.E_NO_KEY], 1, 0)]
    assert all(E.kind_name(r[4]) == "link" for r in recs)
    assert not kind_events(b, E.LINK)                    # nothing of it in the therapy's log
    # the keys are nowhere in the store (records, logs, identity), nor in any answer
    blob = b"".join(k.encode() + v for k, v in sorted(b.hw.store.data.items()))
    for key in (KEY_P, KEY_C):
        for form in (key, key.hex().encode(), key[:16], key[16:], HMAC256(key)._ipad, HMAC256(key)._opad):
            assert form not in blob
            assert form not in bytes(b.port.sent)
    assert repr(b.pump.log.records).find(KEY_C.hex()) < 0


def test_refusals_are_summarised_at_most_every_ten_minutes():
    b = bench()
    for i in range(50):
        b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=0))     # answered while the error credit lasts
    assert [r[6] for r in link_events(b)] == [1]
    b.advance(9 * MIN)
    b.feed(b"")
    assert len(link_events(b)) == 1
    b.advance(2 * MIN)
    b.feed(b"")                          # the link writes its summary when polled
    recs = link_events(b)
    assert len(recs) == 2
    assert recs[1][6] == 49 and recs[1][5] == L.CODE_BITS[L.E_AUTH_REQUIRED]
    st = b.ask(L.STATUS).obj["link"]
    assert st["refused"] == 50 and st["noise_records"] == 2


def test_keyless_sender_cannot_flush_the_event_log():
    """The attack of issue 15, finding 3: about 100 key-less frames over four
    hours at 1x filled the 64-record log with link records and pushed the
    program and refill out. Now the therapy's log gets none of them."""
    b = bench()
    therapy = [r for r in b.pump.log.records]
    assert kind_events(b, E.PROGRAM) and kind_events(b, E.REFILL)
    for i in range(100):
        b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=0))      # (answered while the error credit lasts)
        b.feed(b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, key=KEY_WRONG))
        b.advance(144_000)              # 4 h over the 100 rounds
    assert b.pump.log.records[:len(therapy)] == therapy
    assert not kind_events(b, E.LINK)
    recs = link_events(b)
    assert b.link.stats()["refused"] == 200
    # one summary every 10 min of the 4 h, and the first; the link's ring keeps the newest 16
    assert 18 <= b.link.noise.log.seq <= 26 and len(recs) == 16
    assert all(r[6] == 10 and r[5] == L.CODE_BITS[L.E_AUTH_REQUIRED] | L.CODE_BITS[L.E_BAD_TAG]
               for r in recs)


def test_link_record_damaged_is_logged_and_nonces_stay_new():
    """The link's one record is its boot epoch (what makes each start's
    session nonces new). Damaged, it is logged and moved on; lost, it restarts
    from random bits. Either way, no nonce of an earlier start comes back."""
    b = bench()
    seen = {b.nonce}
    for damage in ("newest", "both", None):
        data = b.hw.store.data
        if damage == "newest":
            copies = [k for k in ("link.a", "link.b") if k in data]
            b.hw.store.flip(max(copies, key=lambda k: struct.unpack_from("<I", data[k], 4)[0]), 77)
        elif damage == "both":
            for k in ("link.a", "link.b"):
                if k in data:
                    b.hw.store.flip(k, 77)
        n_storage = len([r for r in b.pump.log.records if r[4] == E.STORAGE and r[5] == 6])
        b.reset()
        logged = len([r for r in b.pump.log.records if r[4] == E.STORAGE and r[5] == 6]) - n_storage
        assert logged == (0 if damage is None else 1), damage
        b.hello()
        assert b.nonce not in seen, damage
        seen.add(b.nonce)


def test_frames_arriving_together_are_all_answered():
    b = bench()
    frames = [b.frame(L.STATUS, seq=1000 + i) for i in range(3)] + \
             [b.frame(L.BOLUS, BOLUS_ARGS, role=ROLE_C, counter=1, seq=1003)]
    ans = b.feed(b"".join(frames))
    assert [a.seq for a in ans] == [1000, 1001, 1002, 1003] and all(a.ok for a in ans)


def full_size_frame(b, ftype=L.ALARM_TEST, seq=None, role=ROLE_C):
    """A signed request whose body is exactly MAX_BODY bytes (its unknown
    "pad" argument is ignored by the pump)."""
    f = b.frame(ftype, {"pad": ""}, role=role, seq=seq)
    b.ctr[role] -= 1
    pad = F.MAX_BODY - (len(f) - 8)
    f = b.frame(ftype, {"pad": "x" * pad}, role=role, seq=seq)
    assert len(f) == F.MAX_BODY + 8
    return f


def test_full_size_frames_arriving_together_are_all_answered():
    """Issue 15, finding 4: three frames of 1,032 bytes in one read got two
    answers (the reader kept two frames' worth and dropped the rest). Now the
    link reads no more than its reader has room for: the rest waits in the
    port, and every frame is answered, in order."""
    b = bench()
    frames = [full_size_frame(b, seq=2000 + i) for i in range(3)]
    frames.append(full_size_frame(b, L.SILENCE, seq=2003, role=ROLE_P))
    ans = b.feed(b"".join(frames))
    assert [(a.seq, a.ok) for a in ans] == [(2000, True), (2001, True), (2002, True), (2003, True)], ans
    assert b.link.stats()["overflow"] == 0 and b.link.stats()["dropped"] == 0


def test_a_megabyte_of_full_size_frames_is_answered_frame_by_frame():
    b = bench()
    n = (1 << 20) // (F.MAX_BODY + 8)
    frames = [full_size_frame(b, seq=i) for i in range(n)]
    ans = b.feed(b"".join(frames))
    assert len(ans) == n and all(a.ok for a in ans) and [a.seq for a in ans] == list(range(n))


def test_poll_never_raises_even_when_the_port_fails():
    b = bench()

    class BadPort(MemPort):
        def read(self, n=0):
            raise OSError("unplugged")

    b.link.port = BadPort()
    with nothing_changes(b):
        assert b.link.poll(b.ms) is False


def test_internal_error_in_a_request_is_answered_and_contained(monkeypatch):
    b = bench()

    def boom(args, ch):
        raise RuntimeError("kaboom")
    monkeypatch.setattr(b.link, "_do_interrogate", boom)
    with nothing_changes(b):
        ans = b.feed(b.frame(L.INTERROGATE) + b.frame(L.STATUS, seq=3001))
    assert ans[0].name == "internal"
    # the frame behind it is answered too
    assert ans[-1].ok and ans[-1].seq == 3001


# --------------------------------------------- signed programs of any content
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**7), st.text(max_size=8),
                      st.sampled_from([0, 1, 10, 500, 1440, 3000, -1, 2**31, 2**63]))
json_value = st.recursive(json_leaf, lambda ch: st.one_of(st.lists(ch, max_size=3),
                                                          st.dictionaries(st.text(max_size=4), ch, max_size=3)),
                          max_leaves=6)
PROGRAM_KEYS = sorted(set(PROG) | {"steps", "safe_rate_ug_day", "low_reservoir_ul", "max_step_up_pct",
                                   "override_step_up", "bridge", "catheter_cm", "catheter_nl_per_cm"})


@st.composite
def odd_programs(draw):
    prog = dict(NEW_PROG)
    for k in draw(st.lists(st.sampled_from(PROGRAM_KEYS + ["rate"]), max_size=4)):
        prog[k] = draw(json_value)
    if draw(st.booleans()):
        prog["patient_bolus"] = draw(st.dictionaries(st.sampled_from(sorted(PB) + ["x"]), json_value, max_size=5))
    if draw(st.booleans()):
        prog["steps"] = draw(st.lists(st.dictionaries(st.sampled_from(["start_min", "daily_rate_ug", "x"]),
                                                      json_value, max_size=3), max_size=3))
        prog["mode"] = draw(st.sampled_from(["flex", "continuous", "stopped"]))
    return prog


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(odd_programs())
def test_signed_program_of_any_content_never_faults_the_link(prog):
    """Whatever a correctly signed PROGRAM holds: a read-back or a program_error /
    bad_payload; never an internal error; and never a change before CONFIRM."""
    b = bench()
    f = b.frame(L.PROGRAM, {"program": prog}, role=ROLE_C)
    assume(len(f) - 8 <= F.MAX_BODY)
    before = therapy_state(b)
    ans = b.feed(f)
    assert len(ans) == 1, ans
    a = ans[0]
    assert a.ok or a.name in ("program_error", "bad_payload"), a
    assert therapy_state(b) == before


# -------------------------------------------------------------------- fuzzing
FUZZ = {"inputs": 0, "bytes": 0}
_FUZZ_TEMPLATE = []


def fuzz_template():
    """The template with a program read back and waiting for CONFIRM, so every
    request type has a valid frame. Counters: patient 2, clinician 3."""
    if not _FUZZ_TEMPLATE:
        b = bench()
        b.pump._alarm(A.WATCHDOG_RESET)      # a latched alarm, for ACK to clear
        assert b.ask(L.ALARM_TEST, {}, role=ROLE_C).ok
        assert b.ask(L.SILENCE, {}, role=ROLE_P).ok
        assert b.ask(L.SILENCE, {}, role=ROLE_P).ok
        assert b.ask(L.ALARM_TEST, {}, role=ROLE_C).ok
        a = b.ask(L.PROGRAM, {"program": NEW_PROG}, role=ROLE_C)
        b.token = a.obj["token"]
        b.port.sent = bytearray()
        _FUZZ_TEMPLATE.append(b)
    return _FUZZ_TEMPLATE[0]


def fuzz_bench():
    return copy.deepcopy(fuzz_template())


def request_cases(t):
    """(type, args, role) of a valid request of every type, for the template t."""
    wall = t.hw.clock.wall_s()
    return [
        (L.STATUS, {}, 0), (L.INTERROGATE, {}, 0), (L.LOG, {"after_seq": 0}, ROLE_C),
        (L.PROGRAM, {"program": dict(NEW_PROG, daily_dose_ug=430)}, ROLE_C),
        (L.CONFIRM, {"token": t.token}, ROLE_C),
        (L.REFILL, {"volume_nl": FILL, "concentration_ug_ml": CONC,
                    "residual_nl": t.pump.reservoir.remaining_nl()}, ROLE_C),
        (L.BOLUS, BOLUS_ARGS, ROLE_C), (L.PRIME, {"duration_min": 10, "volume_nl": 10_000}, ROLE_C),
        (L.SUSPEND, {}, ROLE_C), (L.RESUME, {}, ROLE_C), (L.CLOCK_SET, {"wall_s": wall + 3600}, ROLE_C),
        (L.ACK, {"alarm": A.WATCHDOG_RESET}, ROLE_C), (L.ALARM_TEST, {}, ROLE_C),
        (L.PATIENT_BOLUS, {}, ROLE_P), (L.SILENCE, {}, ROLE_P), (L.SILENCE, {}, ROLE_C),
    ]


def fuzz_examples():
    """Five times the profile's examples (ci: 1000 per fuzzer), capped so the
    file stays well under a minute on ci; deep gets 2000."""
    return min(5 * settings().max_examples, 2000)


def feed_in_chunks(b, data, chunks):
    answers = []
    i = 0
    k = 0
    while i < len(data):
        n = chunks[k % len(chunks)] if chunks else len(data)
        k += 1
        b.port.inbox += data[i:i + n]
        i += n
        b.ms += 1
        b.link.poll(b.ms)              # must not raise (Hypothesis reports it if it does)
        answers += b.answers()
    return answers


def recovers(b, stream):
    """After the input, a valid STATUS is answered, at worst after the reader
    has timed out the partial frames the input left (one gap_ms each)."""
    b.port.inbox += b.frame(L.STATUS, seq=0xBEEF)
    tries = stream.count(F.SYNC) + 3
    answers = []
    for _ in range(tries):
        b.ms += 1
        b.link.poll(b.ms)
        answers += b.answers()
        if any(a.ok and a.type == L.STATUS | 0x80 and a.seq == 0xBEEF for a in answers):
            return answers
        b.ms += b.link.reader.gap_ms
    raise AssertionError("the link did not recover: %r" % answers)


def count_input(data):
    FUZZ["inputs"] += 1
    FUZZ["bytes"] += len(data)


@st.composite
def junk_segment(draw):
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=300))
    if kind == 1:       # a frame start with a random length and body
        return F.SYNC + draw(st.binary(min_size=0, max_size=2)) + draw(st.binary(max_size=64))
    if kind == 4:       # a plausible frame that stops short: it swallows what follows
        return F.SYNC + struct.pack("<H", draw(st.integers(F.HEAD_LEN, F.MAX_BODY))) + draw(st.binary(max_size=40))
    # a body with a good CRC: the handler sees random header fields and payloads
    ftype = draw(st.one_of(st.sampled_from(sorted(L.REQUESTS)), st.integers(0, 255)))
    role = draw(st.sampled_from([0, 0, 1, 2, 3]))
    ver = draw(st.sampled_from([2, 2, 2, 1, 3]))
    session = draw(st.one_of(st.just(F.handle(fuzz_template().nonce)), st.integers(0, 0xFFFFFFFF)))
    payload = draw(st.one_of(st.binary(max_size=80),
                             json_value.map(lambda v: json.dumps(v).encode()),
                             st.dictionaries(st.sampled_from(["dose_ug", "duration_min", "token", "program",
                                                              "volume_nl", "wall_s", "alarm", "after_seq"]),
                                             json_value, max_size=3).map(lambda v: json.dumps(v).encode())))
    body = struct.pack("<BBHBII", ver, ftype, draw(st.integers(0, 0xFFFF)), role, session,
                       draw(st.integers(0, 0xFFFFFFFF))) + payload
    if role and kind == 3:
        body += draw(st.binary(min_size=32, max_size=32))
    head = F.SYNC + struct.pack("<H", len(body))
    return head + body + struct.pack("<I", crc32(head[2:] + body))


@settings(max_examples=fuzz_examples(), suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(junk_segment(), min_size=1, max_size=6).map(b"".join), st.lists(st.integers(1, 97), max_size=8))
@example(b"\xa5" * 10, [1])
@example(b"\xa5\x5a\xff\xff", [])
@example(b"\xa5\x5a\x09\x00" + b"\x01" * 9, [3])
def test_fuzz_arbitrary_bytes(data, chunks):
    b = fuzz_bench()
    count_input(data)
    before = therapy_state(b)
    counters = list(b.link.counters)
    answers = feed_in_chunks(b, data, chunks)
    assert not [a for a in answers if a.name == "internal"], answers
    # nothing a keyless sender can write changes therapy or takes a counter
    # (a HELLO it sends may end the session, and counters start again)
    assert not [a for a in answers if a.ok and (a.type & 0x7F) in AUTH_TYPES], answers
    assert therapy_state(b) == before
    assert b.link.counters == counters or any(a.ok and a.type == L.HELLO | 0x80 for a in answers)
    assert b.link.pending is not None and b.link.pending[0] == b.token
    recovers(b, data)


MUTATIONS = ("flip", "insert", "delete", "truncate", "duplicate")


def mutate(draw, data, ops):
    data = bytearray(data)
    for op in ops:
        n = len(data)
        if op == "flip" and n:
            i = draw(st.integers(0, n - 1))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            i = draw(st.integers(0, n))
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del data[i:i + draw(st.integers(1, 4))]
        elif op == "truncate" and n:
            del data[draw(st.integers(0, n - 1)):]
        elif op == "duplicate" and n:
            i = draw(st.integers(0, n - 1))
            j = draw(st.integers(i + 1, n))
            at = draw(st.integers(0, n))
            data[at:at] = data[i:j]
    return bytes(data)


@st.composite
def mutated_frames(draw):
    """A valid frame of any request type, then byte-level mutations either of
    the whole stream (the CRC then catches most) or of the body, framed again
    with its right length and CRC (anyone can compute a CRC: only the tag and
    the counter stand in the way). Sometimes the whole valid frame is sent
    again after it (a replay)."""
    t = fuzz_template()
    ftype, args, role = draw(st.sampled_from(request_cases(t)))
    counter = draw(st.integers(t.link.counters[role] + 1, t.link.counters[role] + 1000)) if role else 0
    seq = draw(st.integers(0, 0xFFFF))
    valid = F.encode(ftype, seq, json.dumps(args).encode(), role, counter, sign(KEYS.get(role)),
                     F.handle(t.nonce) if role else 0, t.ctx if role else b"")
    ops = draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3))
    level = draw(st.sampled_from(["stream", "body"]))
    if level == "stream":
        data = mutate(draw, valid, ops)
    else:
        body = mutate(draw, valid[4:-4], ops)
        head = F.SYNC + struct.pack("<H", len(body) & 0xFFFF)
        data = head + body + struct.pack("<I", crc32(head[2:] + body))
    if draw(st.integers(0, 2)) == 0:
        ops = ops + ["replay"]
        data = draw(st.sampled_from([valid + data, data + valid, valid + valid]))
    return ftype, role, seq, valid, data, (level, ops)


@settings(max_examples=fuzz_examples(), suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_frames(), st.lists(st.integers(1, 97), max_size=6))
def test_fuzz_mutated_signed_frames(case, chunks):
    ftype, role, seq, valid, data, ops = case
    b = fuzz_bench()
    count_input(data)
    before = therapy_state(b)
    pending = b.link.pending[0]
    answers = feed_in_chunks(b, data, chunks)
    assert not [a for a in answers if a.name == "internal"], answers
    accepted = [a for a in answers if a.ok and (a.type & 0x7F) in AUTH_TYPES]
    if accepted:
        # a request with authority was carried out: only from the valid frame, whole
        assert valid in data, (ops, answers)
        assert len(accepted) == 1, answers                  # a copy of it is a replay
        assert accepted[0].seq == seq and accepted[0].type == ftype | 0x80
    else:
        assert b.link.pending is not None and b.link.pending[0] == pending
        assert therapy_state(b) == before, (ops, answers)
    recovers(b, data)


def test_zz_fuzz_report(capsys):
    """The fuzz totals of this run (the fuzz tests above run first, in file
    order; run alone, this test runs them itself)."""
    if FUZZ["inputs"] == 0:
        test_fuzz_arbitrary_bytes()
        test_fuzz_mutated_signed_frames()
    with capsys.disabled():
        print("\nfuzz: %d inputs, %d bytes" % (FUZZ["inputs"], FUZZ["bytes"]))
    assert FUZZ["inputs"] > 0 and FUZZ["bytes"] > 0


# ------------------------------------------------------- the client (pumplink)
class LinkedSerial:
    """A stand-in for the pyserial port of PumpClient, wired to a bench's Link:
    what the client writes is polled by the link at once; `noise` is put on the
    line before the next write."""

    def __init__(self, b):
        self.b = b
        self.rx = bytearray()
        self.noise = b""

    def write(self, data):
        self.b.port.inbox += self.noise + data
        self.noise = b""
        self.b.ms += 1
        if self.b.link.poll(self.b.ms):
            self.b.pump.cycle()
        self.rx += self.b.port.sent
        self.b.port.sent = bytearray()
        return len(data)

    def flush(self):
        pass

    @property
    def in_waiting(self):
        return len(self.rx)

    def read(self, n=1):
        data = bytes(self.rx[:n])
        del self.rx[:n]
        return data

    def close(self):
        pass


def client_for(b):
    from host_tools.pumplink import PumpClient
    pc = PumpClient("loop://", KEYS, timeout=0.5)
    pc.ser.close()
    pc.ser = LinkedSerial(b)
    return pc


def test_client_round_trip_in_process():
    from host_tools.pumplink import PumpError
    b = bench()
    pc = client_for(b)
    assert pc.status()["state"] == "running"
    assert pc.bolus(10, 60)["volume_nl"] == 20_000
    rb = pc.program(NEW_PROG)
    assert pc.confirm(rb["token"])["readback"]["daily_dose_ug"] == 450
    with pytest.raises(PumpError) as e:
        pc.program(dict(PROG, daily_dose_ug=900, max_daily_ug=1000, max_hourly_ug=80))
    assert e.value.name == "program_error" and e.value.answer["field"] == "daily_dose_ug"
    fields, recs = pc.log()
    assert fields[0] == "seq" and len(recs) == len(b.pump.log.records)


def test_client_without_a_key_raises_before_sending():
    from host_tools.pumplink import PumpClient, MissingKey
    b = bench()
    pc = PumpClient("loop://", {ROLE_C: KEY_C}, timeout=0.5)
    pc.ser.close()
    pc.ser = LinkedSerial(b)
    with nothing_changes(b):
        with pytest.raises(MissingKey):
            pc.patient_bolus()


def test_client_is_not_fooled_by_noise_before_its_request():
    from host_tools.pumplink import PumpError
    b = bench()
    pc = client_for(b)
    pc.alarm_test()                      # the client has learnt the counters
    pc.ser.noise = b"\x00\x13"
    try:
        res = pc.bolus(10, 60)
    except PumpError as e:
        granted = len(kind_events(b, E.BOLUS))
        raise AssertionError("client says %r [%s] but the pump granted %d bolus(es)" % (e, e.name, granted))
    assert res["volume_nl"] == 20_000


# --------------------------------------------------------------- MicroPython
MP_LINK_SCRIPT = r'''
import json
import sys
from fakeports import Hardware
from pump.controller import Pump
from pump.link import Link
from pump import frames as F
from pump.hmac256 import HMAC256
from pump.session import SeededEntropy

PROFILE = json.loads(%(profile)r)
PROG = json.loads(%(prog)r)
KEYS = {1: %(key_p)r, 2: %(key_c)r}
FRAMES = %(frames)r


def canon(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return "%%d" %% v
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        ks = sorted(v.keys())
        return "{" + ",".join([k + ":" + ("<token>" if k == "token" else canon(v[k])) for k in ks]) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join([canon(x) for x in v]) + "]"
    return "?" + type(v).__name__


class Port:
    def __init__(self):
        self.inbox = b""
        self.sent = b""

    def read(self, n):
        d = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return d

    def write(self, d):
        self.sent += bytes(d)


hw = Hardware(PROFILE)
pump = Pump(PROFILE, **hw.ports())
pump.start()
pump.refill(20000000, 500, 0)
hw.motor.actual_nl = 20000000
pump.program_now(PROG)
wake = [0]


def advance(ms):
    end = hw.clock.now + ms
    while wake[0] <= end:
        if wake[0] > hw.clock.now:
            hw.clock.now = wake[0]
        wake[0] = hw.clock.now + pump.cycle()
    hw.clock.now = end


advance(600000)
port = Port()
link = Link(pump, port, KEYS, "MP-1", SeededEntropy(b"mp"))
ms = [1000]
token = [None]
session = [None]


def answers(label):
    r = F.Reader(F.MAX_ANSWER)
    r.feed(port.sent, 0)
    port.sent = b""
    while True:
        x = r.next(0)
        if x is None:
            break
        st, body = x
        p = F.split_body(body)
        obj = json.loads(p[5])
        if "token" in obj:
            token[0] = obj["token"]
        if "session" in obj:
            session[0] = bytes(int(obj["session"][i:i + 2], 16) for i in range(0, 32, 2))
        print("answer %%s type=%%d seq=%%d %%s" %% (label, p[1], p[2], canon(obj)))


for label, pump_ms, link_ms, data in FRAMES:
    advance(pump_ms)
    ms[0] += link_ms
    if label == "confirm":
        data = F.encode(0x11, 77, json.dumps({"token": token[0]}).encode(), 2, data[0], HMAC256(KEYS[2]),
                        F.handle(session[0]), F.context("MP-1", session[0]))
    port.inbox += data
    changed = False
    while True:
        changed = link.poll(ms[0]) or changed
        if not port.inbox:
            break
    if changed:
        wake[0] = hw.clock.now + pump.cycle()
    print("polled %%s changed=%%s" %% (label, canon(changed)))
    answers(label)

advance(3600000)
st = pump.status()
print("status " + canon(st))
print("counters " + canon(link.counters))
print("strokes %%d" %% len(hw.motor.trace))
for rec in pump.log.records:
    print("log " + canon(list(rec)))
'''


def mp_frames(extra=()):
    """(label, pump ms before, link ms before, bytes) made by CPython. The
    script's pump makes its session nonces from SeededEntropy(b"mp"): the
    same pump built here, as the script builds it, gives the first HELLO's
    nonce."""
    seqs = iter(range(1, 1000))
    hw = Hardware(PROFILE)
    pump = boot(hw)
    pump.refill(FILL, CONC, 0)
    pump.program_now(PROG)
    nonce = Identity(hw.store, "MP-1", SeededEntropy(b"mp"), None, pump.log.seq).new_session().nonce
    ctx = F.context("MP-1", nonce)

    def fr(ftype, args, role=0, counter=0, key="right", payload=None):
        if payload is None:
            payload = json.dumps(args).encode()
        k = KEYS.get(role) if key == "right" else key
        return F.encode(ftype, next(seqs), payload, role, counter, sign(k) if role else None,
                        F.handle(nonce) if role else 0, ctx if role else b"")
    bol = fr(L.BOLUS, BOLUS_ARGS, ROLE_C, 1)
    half = fr(L.BOLUS, BOLUS_ARGS, ROLE_C, 2)
    frames = [
        ("hello", 0, 1, fr(L.HELLO, {})),
        ("status", 0, 1, fr(L.STATUS, {})),
        ("interrogate", 0, 1, fr(L.INTERROGATE, {})),
        ("bolus", MIN, 1, bol),
        ("replay", 0, 1, bol),
        ("bad_tag", 0, 1, fr(L.BOLUS, BOLUS_ARGS, ROLE_C, 2, key=KEY_WRONG)),
        ("no_tag", 0, 1, fr(L.BOLUS, BOLUS_ARGS)),
        ("wrong_role", 0, 1, fr(L.BOLUS, BOLUS_ARGS, ROLE_P, 1)),
        ("noise", 0, 1, b"\x00\x01\xa5\x00zz" + fr(L.STATUS, {})),
        ("bad_crc", 0, 1, fr(L.STATUS, {})[:-1] + b"\x00"),
        ("oversized", 0, 1, b"\xa5\x5a\xff\x7f" + b"\x00" * 10),
        ("half", 0, 1, half[:11]),
        ("truncated", 0, 600, b""),
        ("version", 0, 1, raw_frame(L.STATUS, 9, b"{}", ver=7)),
        ("unknown", 0, 1, fr(0x5E, {})),
        ("bad_json", 0, 1, fr(L.BOLUS, None, ROLE_C, 3, payload=b"{oops")),
        ("not_object", 0, 1, fr(L.BOLUS, None, ROLE_C, 4, payload=b"[10, 60]")),
        ("patient_bolus", 30 * MIN, 1, fr(L.PATIENT_BOLUS, {}, ROLE_P, 1)),
        ("lockout", 30 * MIN, 1, fr(L.PATIENT_BOLUS, {}, ROLE_P, 2)),
        ("program_error", 0, 1, fr(L.PROGRAM, {"program": dict(NEW_PROG, max_hourly_ug=0)}, ROLE_C, 5)),
        ("step_up", 0, 1, fr(L.PROGRAM, {"program": dict(PROG, daily_dose_ug=900, max_daily_ug=1000,
                                                          max_hourly_ug=80)}, ROLE_C, 6)),
        ("program", 0, 1, fr(L.PROGRAM, {"program": NEW_PROG}, ROLE_C, 7)),
        ("confirm", MIN, 1, bytes([8])),             # built in the script with the token it got
        ("confirm_again", 0, 1, fr(L.CONFIRM, {"token": "0"}, ROLE_C, 9)),
        ("log", 0, 1, fr(L.LOG, {"after_seq": 0}, ROLE_C, 10)),
        ("silence", 0, 1, fr(L.SILENCE, {}, ROLE_P, 3)),
        ("suspend", HOUR, 1, fr(L.SUSPEND, {}, ROLE_C, 11)),
        ("resume", HOUR, 1, fr(L.RESUME, {}, ROLE_C, 12)),
        ("clock", 0, 1, fr(L.CLOCK_SET, {"wall_s": 852076800 + 86400}, ROLE_C, 13)),
        ("refill", HOUR, 1, fr(L.REFILL, {"volume_nl": FILL, "concentration_ug_ml": CONC,
                                          "residual_nl": 19_000_000}, ROLE_C, 14)),
    ] + [(label, 0, 1, fr(*a, **kw)) for label, a, kw in extra]
    return frames


def run_link_script(runtime, frames, tmp_path):
    script = tmp_path / "link_script.py"
    script.write_text(MP_LINK_SCRIPT % {
        "profile": json.dumps(PROFILE), "prog": json.dumps(PROG), "key_p": KEY_P, "key_c": KEY_C,
        "frames": frames})
    path = os.pathsep.join([FIRMWARE, PORTABLE])
    if runtime == "cpython":
        argv, env = [sys.executable, "-B", str(script)], _env(PYTHONPATH=path, PYTHONHASHSEED="0")
    else:
        argv, env = [MICROPYTHON, str(script)], _env(MICROPYPATH=path)
    r = subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert r.returncode == 0, "%s: %s" % (runtime, r.stderr.decode(errors="replace"))
    return r.stdout.decode().splitlines()


def compare_runs(cp, mp):
    assert len(cp) == len(mp) and cp == mp, "\n".join(
        "cpython: %s\nmicropy: %s" % (a, b_) for a, b_ in zip(cp, mp) if a != b_)


@needs_micropython
@pytest.mark.micropython
def test_link_on_micropython_answers_as_on_cpython(tmp_path):
    frames = mp_frames()
    cp = run_link_script("cpython", frames, tmp_path)
    mp = run_link_script("micropython", frames, tmp_path)
    # the run is not trivial: each kind of answer is there
    text = "\n".join(cp)
    for label, want in [("hello", 'serial:"MP-1"'), ("status", "ok:true"), ("bolus", "volume_nl:20000"),
                        ("replay", '"replay"'),
                        ("bad_tag", '"bad_tag"'), ("no_tag", '"auth_required"'), ("wrong_role", '"wrong_role"'),
                        ("noise", '"noise"'), ("oversized", '"oversized"'), ("truncated", '"truncated"'),
                        ("version", '"bad_version"'), ("unknown", '"unknown_request"'),
                        ("bad_json", '"bad_payload"'), ("patient_bolus", "volume_nl:60000"),
                        ("lockout", '"lockout"'), ("program_error", 'field:"max_hourly_ug"'),
                        ("step_up", 'field:"daily_dose_ug"'), ("program", "token:<token>"),
                        ("confirm", "daily_dose_ug:450"), ("confirm_again", '"not_pending"'),
                        ("refill", 'reconcile:')]:
        assert any(line.startswith("answer %s " % label) and want in line for line in cp), (label, want, text)
    assert any(line.startswith("polled confirm changed=true") for line in cp)
    compare_runs(cp, mp)


@needs_micropython
@pytest.mark.micropython
def test_link_on_micropython_parses_payloads_as_on_cpython(tmp_path):
    extra = [("trailing_comma", (L.BOLUS, None, ROLE_C, 20), {"payload": b'{"dose_ug": 10, "duration_min": 60,}'}),
             ("leading_zero", (L.BOLUS, None, ROLE_C, 21), {"payload": b'{"dose_ug": 010, "duration_min": 60}'}),
             ("trailing_nul", (L.SUSPEND, None, ROLE_C, 22), {"payload": b'{}\x00'})]
    frames = mp_frames(extra)
    compare_runs(run_link_script("cpython", frames, tmp_path), run_link_script("micropython", frames, tmp_path))


@pytest.mark.parametrize("innermost", [b"[]", b"[1]", b"{}", b'{"a": 1}'])
def test_containers_nest_sixteen_deep_at_most(innermost):
    """protocol.md: 16 levels of containers, the outer object the first.
    Issue 15 found 17 passing when the innermost container was empty."""
    def nested(levels):           # the outer object, then levels - 2 lists, then the innermost
        return b'{"x": ' + b"[" * (levels - 2) + innermost + b"]" * (levels - 2) + b"}"
    assert L.strict_json(nested(16))
    assert not L.strict_json(nested(17))
    b = bench()
    with nothing_changes(b):
        only_error(b.feed(b.frame(L.SILENCE, role=ROLE_P, payload=nested(17))), "bad_payload")
    assert b.ask(L.SILENCE, role=ROLE_P, payload=nested(16)).ok
