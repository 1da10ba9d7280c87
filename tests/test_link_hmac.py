"""pump.hmac256 (the programmer link's MAC, written because MicroPython has no
hmac module) proved equal to CPython's hmac:

- Hypothesis: digest(key, msg) == hmac.new(key, msg, sha256).digest() for keys
  of 0..200 bytes, with extra weight around the 64-byte block edge (keys longer
  than a block are hashed first), and messages of 0..2000 bytes;
- equal() agrees with == on tags (same and different lengths);
- the RFC 4231 HMAC-SHA-256 test vectors, cases 1-4, 6 and 7 (case 5 is a
  truncated tag, which the link does not use);
- the same module under the real `micropython` unix port, on Hypothesis-drawn
  (key, msg) pairs passed in a generated script, compared with CPython.
"""
import binascii
import hashlib
import hmac
import os
import subprocess

import pytest
from hypothesis import example, given, settings, strategies as st

from pump import hmac256
from pump.hmac256 import HMAC256, digest, equal
from test_micropython import MICROPYTHON, FIRMWARE, _env, needs_micropython

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# key lengths: anything in 0..200, but often right at the block edge
key_lengths = st.one_of(st.integers(0, 200), st.sampled_from([0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200]))


@st.composite
def keys(draw):
    n = draw(key_lengths)
    return draw(st.binary(min_size=n, max_size=n))


messages = st.one_of(st.binary(max_size=2000),
                     st.sampled_from([0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 2000]).map(lambda n: b"\xa5" * n))


def reference(key, msg):
    return hmac.new(key, msg, hashlib.sha256).digest()


@given(keys(), messages)
@example(b"", b"")
@example(b"k" * 64, b"")
@example(b"k" * 65, b"m" * 2000)
@example(b"\x00" * 63, b"\x00")
def test_digest_equals_cpython_hmac(key, msg):
    assert digest(key, msg) == reference(key, msg)


@given(keys(), st.lists(messages, min_size=1, max_size=4))
def test_one_mac_object_gives_each_message_its_own_tag(key, msgs):
    """The padded keys are computed once; a MAC object must not carry state
    from one message to the next (the link keeps one per role for its life)."""
    mac = HMAC256(key)
    for m in msgs:
        assert mac.digest(m) == reference(key, m)
    assert mac.digest(msgs[0]) == reference(key, msgs[0])


@given(keys(), messages)
def test_key_as_bytearray_and_memoryview_msg(key, msg):
    assert HMAC256(bytearray(key)).digest(memoryview(msg)) == reference(key, msg)


tags = st.binary(min_size=0, max_size=40)


@given(tags, tags)
@example(b"", b"")
@example(b"\x00" * 32, b"\x00" * 31)
@example(b"\x00" * 32, b"\x00" * 31 + b"\x01")
@example(b"\x80" + b"\x00" * 31, b"\x00" * 32)
def test_equal_agrees_with_eq(a, b):
    assert equal(a, b) == (a == b)
    assert equal(bytearray(a), b) == (a == b)


@given(st.binary(min_size=32, max_size=32), st.integers(0, 255), st.integers(1, 255))
def test_equal_sees_every_byte(tag, pos, delta):
    other = bytearray(tag)
    other[pos % 32] ^= delta
    assert not equal(tag, bytes(other))
    assert equal(tag, bytes(tag))


# RFC 4231, section 4: HMAC-SHA-256 column
RFC4231 = {
    1: (b"\x0b" * 20, b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    2: (b"Jefe", b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    3: (b"\xaa" * 20, b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    4: (bytes(range(1, 26)), b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    6: (b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    7: (b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than block-size data."
                       b" The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
}


@pytest.mark.parametrize("case", sorted(RFC4231))
def test_rfc4231_vectors(case):
    key, data, want = RFC4231[case]
    assert binascii.hexlify(digest(key, data)).decode() == want
    assert binascii.hexlify(reference(key, data)).decode() == want   # the vector itself is right
    assert equal(HMAC256(key).digest(data), binascii.unhexlify(want))


def test_module_has_no_cpython_only_import():
    # the firmware copy must run where there is no hmac module
    src = open(hmac256.__file__).read()
    assert "import hmac" not in src and "from hmac" not in src


# ------------------------------------------------------------------ MicroPython
MP_SCRIPT = """\
import binascii
from pump.hmac256 import HMAC256, digest, equal
CASES = %s
for key, msg in CASES:
    t = digest(key, msg)
    assert equal(t, HMAC256(key).digest(msg))
    print(binascii.hexlify(t).decode())
print("done", len(CASES))
"""


def run_micropython(cases, tmp_path, name="hmac_case.py"):
    script = tmp_path / name
    script.write_text(MP_SCRIPT % repr(cases))
    r = subprocess.run([MICROPYTHON, str(script)], env=_env(MICROPYPATH=FIRMWARE), cwd=ROOT,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r.stdout.decode().split()


EDGE_CASES = [(b"", b""), (b"k" * 64, b"m"), (b"k" * 65, b"m" * 300), (b"\xaa" * 131, b"\xdd" * 2000)] + \
             [(k, d) for k, d, _ in RFC4231.values()]


@needs_micropython
@pytest.mark.micropython
def test_micropython_edge_cases_and_rfc_vectors(tmp_path):
    out = run_micropython(EDGE_CASES, tmp_path)
    assert out[-2:] == ["done", str(len(EDGE_CASES))]
    assert out[:-2] == [binascii.hexlify(reference(k, m)).decode() for k, m in EDGE_CASES]


@needs_micropython
@pytest.mark.micropython
@settings(max_examples=3)
@given(st.lists(st.tuples(keys(), messages), min_size=6, max_size=6))
def test_micropython_hmac_equals_cpython(tmp_path_factory, cases):
    out = run_micropython(cases, tmp_path_factory.mktemp("mp_hmac"))
    assert out[-2:] == ["done", str(len(cases))]
    assert out[:-2] == [binascii.hexlify(reference(k, m)).decode() for k, m in cases]
