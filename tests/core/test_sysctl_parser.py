"""The integer sysctl handlers (fakeproc.kernel.sysctl): 6.18 against writes measured on a real 6.18 kernel,
2.6.30-2.6.34 against a table worked out by hand from the quoted 2.6.32 source, and both against any input.

The measured vectors are tests/data/sysctl/vectors.jsonl; what the kernel answered is in
tests/data/sysctl/expected/6.18-{dointvec,minmax}.jsonl (README.md there says how they were taken).  Each vector is
replayed here as the kernel saw it: the writes in order on one file descriptor whose position advances by what
each successful write returned (``*ppos += *lenp``, the whole count for a write 6.18 ignores) and stays put after a
failed one, then the reads on a second descriptor, then a fresh read of the value.
"""

from __future__ import annotations

import errno
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakeproc.kernel.sysctl import (
    INT_MAX,
    INT_MIN,
    KMALLOC_MAX_SIZE,
    SysctlWrite,
    dointvec_read,
    dointvec_read_error,
    dointvec_write,
)

SYSCTL_DATA = Path(__file__).resolve().parent.parent / "data" / "sysctl"
V618 = (6, 18)
#: our eras' version tuples that take the 2.6.30-2.6.34 rules (fakeproc/kernel/eras.py)
OLD_ERAS = [(2, 6, 31), (2, 6, 31, -1), (2, 6, 32)]
V2632 = (2, 6, 32)

#: the sysctl each expected file was measured on, and the limits its handler checks:
#: net.unix.max_dgram_qlen is proc_dointvec; net.core.somaxconn is proc_dointvec_minmax with
#: ``.extra1 = SYSCTL_ZERO`` and no extra2 (net/core/sysctl_net_core.c), i.e. 0..INT_MAX.
MEASURED = {"dointvec": None, "minmax": (0, INT_MAX)}


def load_probe() -> ModuleType:
    """tests/data/sysctl/probe_sysctl.py as a module (for its decoding of a vector's writes)."""
    spec = importlib.util.spec_from_file_location("probe_sysctl", SYSCTL_DATA / "probe_sysctl.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PROBE = load_probe()


def load_vectors() -> dict[str, dict]:
    with open(SYSCTL_DATA / "vectors.jsonl") as f:
        return {v["id"]: v for v in map(json.loads, filter(str.strip, f))}


def load_expected(name: str) -> list[dict]:
    with open(SYSCTL_DATA / "expected" / f"6.18-{name}.jsonl") as f:
        return [json.loads(line) for line in f if line.strip()]


def replay(version: tuple[int, ...], vector: dict, initial: int, limits: tuple[int, int] | None) -> dict:
    """What the model says the probe would print for ``vector`` (minus "id" and "initial")."""
    value = initial
    writes = vector.get("writes", [])
    positions = vector.get("pos") or [None] * len(writes)
    pos = 0
    results: list = []
    for w, at in zip(writes, positions, strict=True):
        if at is not None:
            pos = at
        r = dointvec_write(version, PROBE.write_bytes(w), pos, limits)
        if r.error:
            results.append(errno.errorcode[r.error])
            continue
        results.append(r.consumed)
        pos += r.consumed
        if r.value is not None:
            value = r.value
    out: dict = {"results": results}
    if "reads" in vector:
        reads: list = []
        rpos = 0
        for rd in vector["reads"]:
            if rd.get("pos") is not None:
                rpos = rd["pos"]
            err = dointvec_read_error(version, rd["size"])
            if err:
                reads.append(errno.errorcode[err])
                continue
            got = dointvec_read(version, value, rpos, rd["size"])
            rpos += len(got)
            reads.append(got.hex())
        out["reads"] = reads
    out["read"] = dointvec_read(version, value, 0, 4096).decode("latin-1")
    return out


VECTORS = load_vectors()
CASES = [
    pytest.param(name, m, id=f"{name}-{m['id']}") for name in MEASURED for m in load_expected(name)
]


def test_every_vector_was_measured_on_both_sysctls():
    for name in MEASURED:
        assert {m["id"] for m in load_expected(name)} == set(VECTORS), name


@pytest.mark.parametrize(("name", "measured"), CASES)
def test_618_matches_the_measured_kernel(name, measured):
    vector = VECTORS[measured["id"]]
    initial = int(measured["initial"])
    got = replay(V618, vector, initial, MEASURED[name])
    assert got == {k: measured[k] for k in got}, vector["text"]


# ---------------------------------------------------------------------------------------------------------------
# 2.6.30-2.6.34, by hand from the quoted 2.6.32 __do_proc_dointvec.  Each expectation is (value, errno, consumed).

EINVAL = errno.EINVAL
BAD = (None, EINVAL, 0)
MINMAX_0_2 = (0, 2)

HAND_2632: list[tuple[bytes, tuple[int, int] | None, tuple[int | None, int, int], str]] = [
    (b"1\n", None, (1, 0, 2), "plain"),
    (b"5", None, (5, 0, 1), "no newline"),
    # entry check: if (!tbl_data || !table->maxlen || !*lenp || ...) { *lenp = 0; return 0; }
    (b"", None, (None, 0, 0), "zero-length write"),
    # while (left) { ... if (!isspace(c)) break; left--; s++; }  if (!left) break;  -> first == 1 -> -EINVAL
    (b"\n", None, BAD, "only whitespace"),
    (b" \t\n\v\f\r\xa07\n", None, (7, 0, 9), "every isspace() kind leads, 0xa0 included (Latin-1 ctype)"),
    (b"\x857", None, BAD, "0x85 is not isspace(), and not a digit"),
    (b"-1\n", None, (-1, 0, 3), "negative"),
    # if (*p == '-' && left > 1): a lone '-' (left == 1) stays, then *p < '0' -> break
    (b"-", None, BAD, "lone minus"),
    (b"-\n", None, BAD, "minus then newline: *p is '\\n', not a digit"),
    (b"--1", None, BAD, "two minus signs"),
    (b"+1", None, BAD, "+ is not a sign here"),
    (b"0x10\n", None, (16, 0, 5), "simple_strtoul base 0: 0x -> 16"),
    (b"010\n", None, (8, 0, 4), "leading 0 -> octal"),
    # octal '0' parsed, then (len < left) && *p && !isspace(*p) with *p == '8' -> break
    (b"08\n", None, BAD, "8 is not octal"),
    # simple_guess_base: cp[2] == '\n' is no hex digit -> base 8; '0' parsed, 'x' is not a space
    (b"0x\n", None, BAD, "bare 0x"),
    # -> the int store truncates: *valp = *negp ? -*lvalp : *lvalp;
    (b"2147483648\n", None, (INT_MIN, 0, 11), "INT_MAX + 1 wraps to INT_MIN"),
    (b"4294967297\n", None, (1, 0, 11), "2**32 + 1 -> 1"),
    # -(2147483649) mod 2**64 = 18446744071562067967, low 32 bits 0x7fffffff
    (b"-2147483649\n", None, (INT_MAX, 0, 12), "INT_MIN - 1 wraps to INT_MAX"),
    (b"-2147483648", None, (INT_MIN, 0, 11), "INT_MIN"),
    (b"-0\n", None, (0, 0, 3), "minus zero"),
    # 21 bytes: 20 copied (TMPBUFLEN 21), simple_strtoul wraps 2**64 to 0, *p is buf[20] == NUL so the check
    # passes; s += 20, left = 1, and the trailing loop skips the '\n'
    (b"18446744073709551616\n", None, (0, 0, 21), "2**64 wraps to 0, no overflow check"),
    (b"18446744073709551617", None, (1, 0, 20), "2**64 + 1 -> 1"),
    # 20 of the 21 nines: (10**20 - 1) mod 2**64 = 0x6BC75E2D630FFFFF, low 32 bits 0x630FFFFF = 1661992959;
    # the 21st nine is left (not isspace) -> *lenp -= left: 22 - 2
    (b"9" * 21 + b"\n", None, (1661992959, 0, 20), "21 nines: the first 20 parsed, a short count"),
    (b"0" * 20 + b"1", None, (0, 0, 20), "21 digits: twenty zeros parsed, the 1 left over"),
    (b"0" * 19 + b"7", None, (7, 0, 20), "20 digits fill the buffer exactly"),
    # "0x" + 18 f's fill the 20 bytes: 2**72 - 1 mod 2**64 = 2**64 - 1 -> int -1; the 19th f is left
    (b"0x" + b"f" * 19, None, (-1, 0, 20), "hex wraps mod 2**64 too"),
    # trailing: while (left) { get_user(c, s++); if (!isspace(c)) break; left--; } ... *lenp -= left;
    (b"1 2\n", None, (1, 0, 2), "a second token: stored 1, short count"),
    (b"1\t2\n", None, (1, 0, 2), "tab-separated second token"),
    (b"1\r\n", None, (1, 0, 3), "\\r after the digits is isspace() here (6.18 refuses it)"),
    (b"7\v", None, (7, 0, 2), "\\v after the digits"),
    (b"7\xa0", None, (7, 0, 2), "0xa0 after the digits"),
    (b"1a", None, BAD, "a letter after the digits"),
    # if ((len < left) && *p && !isspace(*p)): *p == NUL passes; the trailing loop stops at the NUL
    (b"5\x00", None, (5, 0, 1), "NUL after the number: stored, short count"),
    (b"5\x00\n", None, (5, 0, 1), "NUL then newline: the newline is never reached"),
    (b"5\n\x00", None, (5, 0, 2), "newline then NUL"),
    (b"5\x006", None, (5, 0, 1), "a NUL between two numbers"),
    (b"1" + b"\x00" * 30, None, (1, 0, 1), "a run of NULs"),
    (b"\x005", None, BAD, "a leading NUL is neither space nor digit"),
    # '-' with left > 1 sets neg; then *p is the NUL, not a digit
    (b"-\x005", None, BAD, "minus then NUL"),
    # no PAGE_SIZE limit: the buffer is read byte by byte from user space
    (b" " * 5000 + b"7", None, (7, 0, 5001), "5000 spaces then 7"),
    (b" " * 4095 + b"7", None, (7, 0, 4096), "the 7 as byte 4096 (6.18 does not look that far)"),
    (b"7" + b" " * 4999, None, (7, 0, 5000), "7 then 4999 spaces"),
    # do_proc_dointvec_minmax_conv: int val = *negp ? -*lvalp : *lvalp; then the range check on val
    (b"2\n", MINMAX_0_2, (2, 0, 2), "minmax in range"),
    (b"3\n", MINMAX_0_2, BAD, "minmax above"),
    (b"-1\n", MINMAX_0_2, BAD, "minmax below"),
    (b"4294967297\n", MINMAX_0_2, (1, 0, 11), "minmax checks the truncated int: 2**32 + 1 is 1, in range"),
    (b"4294967298", MINMAX_0_2, (2, 0, 10), "2**32 + 2 is 2, in range"),
    (b"2147483648", (0, INT_MAX), BAD, "INT_MAX + 1 truncates to INT_MIN, below 0"),
]


@pytest.mark.parametrize("version", OLD_ERAS, ids=lambda v: ".".join(map(str, v)))
@pytest.mark.parametrize(("data", "limits", "expected", "why"), HAND_2632, ids=[c[3] for c in HAND_2632])
def test_2632_write_by_hand(version, data, limits, expected, why):
    assert dointvec_write(version, data, 0, limits) == SysctlWrite(*expected), why


@pytest.mark.parametrize("version", OLD_ERAS, ids=lambda v: ".".join(map(str, v)))
def test_2632_writes_ignore_the_file_position(version):
    # 2.6.32 has no ppos check on writes: the retried tail of "1 2\n" at offset 2 stores 2 (§I1)
    assert dointvec_write(version, b"2\n", 2) == SysctlWrite(2, 0, 2)
    assert dointvec_write(version, b"x", 7) == SysctlWrite(None, EINVAL, 0)
    assert dointvec_write(version, b"", 9) == SysctlWrite(None, 0, 0)
    # nor a KMALLOC_MAX_SIZE limit: proc_sys_call_handler hands the user buffer to the handler
    big = b"7" + b" " * KMALLOC_MAX_SIZE
    assert dointvec_write(version, big, 0) == SysctlWrite(7, 0, len(big))


def test_618_rules_not_measured_directly():
    """A few 6.18 cases from the source that the measured set does not pin down on its own."""
    # proc_get_long: ``if (len == TMPBUFLEN - 1) return -EINVAL;`` also for a 21-character hex string
    assert dointvec_write(V618, b"0x" + b"0" * 18 + b"1", 0) == SysctlWrite(None, EINVAL, 0)
    assert dointvec_write(V618, b"0x" + b"0" * 17 + b"1", 0) == SysctlWrite(1, 0, 20)
    # minmax with both bounds
    assert dointvec_write(V618, b"2\n", 0, MINMAX_0_2) == SysctlWrite(2, 0, 2)
    assert dointvec_write(V618, b"3\n", 0, MINMAX_0_2) == SysctlWrite(None, EINVAL, 0)
    # truncation is gone: 2**32 + 1 is refused by do_proc_dointvec_conv before the range check
    assert dointvec_write(V618, b"4294967297\n", 0, MINMAX_0_2) == SysctlWrite(None, EINVAL, 0)
    # a write at position != 0 is ignored even when it would fail, and even for minmax
    assert dointvec_write(V618, b"-1", 3, MINMAX_0_2) == SysctlWrite(None, 0, 2)


READS = [
    # (value, pos, size, 2.6.32's bytes, 6.18's bytes)
    (123, 0, 100, b"123\n", b"123\n"),
    (123, 0, 1, b"1", b"1"),
    (123, 0, 3, b"123", b"123"),  # if (!write && !first && left): no room left, no newline
    (123, 0, 4, b"123\n", b"123\n"),
    (123, 1, 100, b"", b""),  # (*ppos && !write) -> *lenp = 0
    (123, 0, 0, b"", b""),  # !*lenp
    (-5, 0, 100, b"-5\n", b"-5\n"),
    (-5, 0, 1, b"-", b"-"),
    (0, 0, 100, b"0\n", b"0\n"),
    (INT_MAX, 0, 100, b"2147483647\n", b"2147483647\n"),
    # 2.6.32: *lvalp = (unsigned long)-val with val == INT_MIN: the int negation wraps to INT_MIN and the cast
    # sign-extends it, sprintf("%s%lu", "-", 18446744071562067968).  6.18: *lvalp = -(unsigned long)val.
    (INT_MIN, 0, 100, b"-18446744071562067968\n", b"-2147483648\n"),
    (INT_MIN, 0, 5, b"-1844", b"-2147"),
]


@pytest.mark.parametrize(("value", "pos", "size", "old", "new"), READS)
def test_reads(value, pos, size, old, new):
    for version in OLD_ERAS:
        assert dointvec_read(version, value, pos, size) == old
    assert dointvec_read(V618, value, pos, size) == new


def test_huge_reads():
    """6.18 fails a read of KMALLOC_MAX_SIZE or more with ENOMEM (measured: read_kmalloc); 2.6.32 does not."""
    assert dointvec_read_error(V618, KMALLOC_MAX_SIZE) == errno.ENOMEM
    assert dointvec_read_error(V618, KMALLOC_MAX_SIZE - 1) == 0
    assert dointvec_read(V618, 5, 0, KMALLOC_MAX_SIZE) == b""
    assert dointvec_read_error(V2632, KMALLOC_MAX_SIZE) == 0
    assert dointvec_read(V2632, 5, 0, KMALLOC_MAX_SIZE) == b"5\n"


# ---------------------------------------------------------------------------------------------------------------
# Any input

_ALPHABET = st.sampled_from(list(b" \t\n\v\f\r\xa0\x00\x85-+0123456789xXabfg"))
_DATA = st.one_of(
    st.binary(max_size=64),
    st.lists(_ALPHABET, max_size=40).map(bytes),
    st.tuples(st.integers(0, 5000), st.lists(_ALPHABET, max_size=30).map(bytes), st.sampled_from(b" \t\n0x")).map(
        lambda t: bytes([t[2]]) * t[0] + t[1]
    ),
)
_VERSIONS = st.sampled_from([*OLD_ERAS, V618])
_LIMITS = st.one_of(st.none(), st.tuples(st.integers(INT_MIN, INT_MAX), st.integers(INT_MIN, INT_MAX)))


@given(version=_VERSIONS, data=_DATA, pos=st.integers(0, 1 << 40), limits=_LIMITS)
def test_write_never_raises_and_stays_in_the_kernel_s_range(version, data, pos, limits):
    r = dointvec_write(version, data, pos, limits)
    assert isinstance(r, SysctlWrite)
    # the handlers return -EINVAL (the parser) or 0; proc_sys_call_handler adds -ENOMEM from 2.6.35 (6.18)
    assert r.error in ({0, EINVAL} if version < (2, 6, 35) else {0, EINVAL, errno.ENOMEM})
    if r.error:
        assert r.value is None and r.consumed == 0
    else:
        assert 0 <= r.consumed <= len(data)
        if r.value is not None:
            assert INT_MIN <= r.value <= INT_MAX
            if limits is not None:
                assert limits[0] <= r.value <= limits[1]
        else:
            # nothing stored: an empty write, or (6.18) one at a position other than 0, which reports its count
            assert not data or (version >= (2, 6, 35) and pos != 0 and r.consumed == len(data))
    if version >= (2, 6, 35) and pos:
        assert r.value is None


@given(version=_VERSIONS, value=st.integers(-(1 << 40), 1 << 40), pos=st.integers(0, 1 << 40),
                  size=st.integers(0, 1 << 23))
def test_read_never_raises(version, value, pos, size):
    got = dointvec_read(version, value, pos, size)
    assert isinstance(got, bytes) and len(got) <= size
    if pos or not size:
        assert got == b""
    elif not dointvec_read_error(version, size):
        as_int = (value + (1 << 31)) % (1 << 32) - (1 << 31)
        assert got[:1] == (b"-" if as_int < 0 else b"%d" % as_int)[:1]
