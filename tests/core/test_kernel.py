"""Pure tests of layer 1: parsers and badness, against hand-worked kernel behaviour."""

from __future__ import annotations

import errno

import pytest

from fakeproc.kernel.badness import ULONG_MAX, LegacyInputs, legacy_badness
from fakeproc.kernel.ctype import strstrip
from fakeproc.kernel.strtol import (
    Parsed,
    kernel_buffer,
    parse_kstrtoint,
    parse_simple_strtol,
    parse_strict_strtol,
)

EINVAL, ERANGE, EIO = errno.EINVAL, errno.ERANGE, errno.EIO


def test_kernel_buffer_clamps_to_12_and_cuts_at_nul():
    assert kernel_buffer(b"-17") == (b"-17", 3)
    assert kernel_buffer(b"5\0junk") == (b"5", 6)
    assert kernel_buffer(b"0000000000001") == (b"000000000000", 12)
    assert kernel_buffer(b"") == (b"", 0)


def test_strstrip_uses_kernel_whitespace_including_a0():
    assert strstrip(b"\xa0 -5\t\n") == b"-5"
    assert strstrip(b"\x85") == b"\x85"  # NEL is not kernel whitespace
    assert strstrip(b" \n ") == b""


@pytest.mark.parametrize("text,value", [
    (b"-17", -17), (b"-17\n", -17), (b" 15 ", 15), (b"0x0f", 15), (b"0X1", 1), (b"017", 15),
    (b"-0", 0), (b"0", 0), (b"\xa05\xa0", 5), (b"5\n", 5),
])
def test_strict_strtol_accepts(text, value):
    assert parse_strict_strtol(text) == Parsed(value)


@pytest.mark.parametrize("text", [
    b"", b"   ", b"+5", b"--5", b"-", b"5a", b"0x", b"08", b"5 5", b"0xg", b"- 5", b"5\n\n5", b"\xb5",
])
def test_strict_strtol_rejects_with_einval(text):
    assert parse_strict_strtol(text) == Parsed(None, EINVAL)


@pytest.mark.parametrize("text,expected", [
    (b"+5", Parsed(5)), (b"-17", Parsed(-17)), (b"2147483647", Parsed(2147483647)),
    (b"2147483648", Parsed(None, ERANGE)), (b"-2147483648", Parsed(-2147483648)),
    (b"-2147483649", Parsed(None, ERANGE)), (b"99999999999", Parsed(None, ERANGE)),
    (b"-+5", Parsed(None, EINVAL)), (b"+-5", Parsed(None, EINVAL)), (b"0x7fffffff", Parsed(0x7FFFFFFF)),
    (b"", Parsed(None, EINVAL)), (b"5x", Parsed(None, EINVAL)),
])
def test_kstrtoint(text, expected):
    assert parse_kstrtoint(text) == expected


@pytest.mark.parametrize("text,expected", [
    (b"5abc", Parsed(5, 0, 1)), (b"5\n\n", Parsed(5, 0, 2)), (b"5 ", Parsed(5, 0, 1)),
    (b" 5", Parsed(0, EIO)), (b"+5", Parsed(0, EIO)), (b"abc", Parsed(0, EIO)),
    (b"-", Parsed(0, 0, 1)), (b"--5", Parsed(0, 0, 1)), (b"4294967296", Parsed(0, 0, 10)),
    (b"0x", Parsed(0, 0, 1)), (b"-0x11", Parsed(-17, 0, 5)),
])
def test_simple_strtol_is_lenient(text, expected):
    assert parse_simple_strtol(text) == expected


def _inputs(**kw) -> LegacyInputs:
    base = dict(oom_adj=0, has_mm=True, total_vm=100_000, oom_origin=False, children_vm=(), cpu_jiffies=0,
                uptime_s=0, start_time_s=0, nice=0, cap_admin_or_resource=False, cap_rawio=False,
                mems_intersect=True, hz=250)
    base.update(kw)
    return LegacyInputs(**base)


def test_badness_by_hand():
    # total_vm 100000 + children (50000//2+1) + (7//2+1) = 125005
    i = _inputs(children_vm=(50_000, 7))
    assert legacy_badness(i) == 125_005
    # cpu: 2h at HZ=250 = 1_800_000 jiffies >> 11 = 878, isqrt 29: 125005 // 29 = 4310
    assert legacy_badness(i._replace(cpu_jiffies=1_800_000)) == 4310
    # run time: 2 days = 172800 s >> 10 = 168, isqrt(isqrt(168)) = 3: 125005 // 3 = 41668
    assert legacy_badness(i._replace(uptime_s=172_800)) == 41_668
    # nice doubles; each capability rule quarters; cpuset divides by 8
    assert legacy_badness(i._replace(nice=1)) == 250_010
    assert legacy_badness(i._replace(cap_admin_or_resource=True, cap_rawio=True)) == 125_005 // 4 // 4
    assert legacy_badness(i._replace(mems_intersect=False)) == 125_005 // 8
    # oom_adj shifts: +3 multiplies by 8, -2 divides by 4, and a 0 score becomes 1 << adj
    assert legacy_badness(i._replace(oom_adj=3)) == 1_000_040
    assert legacy_badness(i._replace(oom_adj=-2)) == 31_251
    assert legacy_badness(i._replace(total_vm=0, children_vm=(), oom_adj=4)) == 16


def test_badness_special_cases():
    assert legacy_badness(_inputs(oom_adj=-17)) == 0
    assert legacy_badness(_inputs(has_mm=False)) == 0
    assert legacy_badness(_inputs(oom_origin=True)) == ULONG_MAX
    # 2.6.31 does not test OOM_DISABLE first: the shift by 17 still runs
    assert legacy_badness(_inputs(oom_adj=-17, total_vm=1 << 20), adj_first=False) == 8
    # shifts wrap at 64 bits like an unsigned long
    assert legacy_badness(_inputs(total_vm=1 << 60, oom_adj=15)) == 0
