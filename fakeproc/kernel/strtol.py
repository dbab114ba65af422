"""The three ways the kernel has parsed a number written to an OOM file.

Each parser takes the kernel's view of the caller's buffer (see
:func:`kernel_buffer`) and returns a :class:`Parsed`.  The write handlers of
each era (``eras.py``) add the range check, the permission rule and the store.
"""

from __future__ import annotations

import errno
from typing import NamedTuple

from .ctype import digit_value, isxdigit, strstrip

#: fs/proc/base.c: ``char buffer[PROC_NUMBUF]`` with PROC_NUMBUF = 13, zero
#: filled, and ``count`` clamped to ``sizeof(buffer) - 1``.
PROC_NUMBUF = 13
WRITE_LIMIT = PROC_NUMBUF - 1

_U64 = 1 << 64


class Parsed(NamedTuple):
    """Outcome of parsing one write.

    ``value`` is what the kernel would store (None: nothing is stored);
    ``error`` is the errno the write fails with (0: it succeeds);
    ``consumed`` is the byte count a successful write returns (None: the whole
    clamped count).  2.6.31's parser can store a value *and* fail (``EIO``).
    """

    value: int | None
    error: int = 0
    consumed: int | None = None


def kernel_buffer(data: bytes) -> tuple[bytes, int]:
    """What the handler sees of one write(): (string up to the first NUL, count).

    The kernel copies at most 12 bytes into a zeroed 13-byte buffer and treats
    it as a C string; the count it returns is the clamped count, NUL or not.
    """
    count = min(len(data), WRITE_LIMIT)
    chunk = data[:count]
    nul = chunk.find(b"\0")
    return (chunk if nul < 0 else chunk[:nul]), count


def _guess_base(s: bytes) -> int:
    """lib/vsprintf.c simple_guess_base() (2.6.31/2.6.32)."""
    if s[:1] == b"0":
        if s[1:2] in (b"x", b"X") and len(s) > 2 and isxdigit(s[2]):
            return 16
        return 8
    return 10


def simple_strtoul(s: bytes, base: int = 0) -> tuple[int, int]:
    """lib/vsprintf.c simple_strtoul(): (value mod 2**64, index of the end)."""
    if not base:
        base = _guess_base(s)
    i = 0
    if base == 16 and s[:1] == b"0" and s[1:2] in (b"x", b"X"):
        i = 2
    result = 0
    while i < len(s) and isxdigit(s[i]):
        v = digit_value(s[i])
        if v >= base:
            break
        result = (result * base + v) % _U64
        i += 1
    return result, i


def _as_long(u: int) -> int:
    u %= _U64
    return u - _U64 if u >= 1 << 63 else u


def _as_int(v: int) -> int:
    v %= 1 << 32
    return v - (1 << 32) if v >= 1 << 31 else v


def parse_simple_strtol(buf: bytes) -> Parsed:
    """2.6.30/2.6.31 oom_adjust_write(): ``simple_strtol(buffer, &end, 0)``.

    Lenient: no whitespace skipped, ``+`` not a sign, never fails to parse.
    The long is stored into an ``int``; ``end`` also swallows one ``\\n``; the
    write returns ``end - buffer`` and, when that is 0, fails with EIO *after*
    storing the value (0).
    """
    neg = buf[:1] == b"-"
    start = 1 if neg else 0
    uval, end = simple_strtoul(buf[start:])
    end += start
    value = _as_int(_as_long(-uval if neg else uval))
    if buf[end : end + 1] == b"\n":
        end += 1
    if end == 0:
        return Parsed(value, errno.EIO)
    return Parsed(value, 0, end)


def _strict_strtoul(s: bytes) -> int | None:
    """lib/vsprintf.c strict_strtoul() (2.6.32), base 0; None for -EINVAL."""
    if not s:
        return None
    val, end = simple_strtoul(s)
    if end == 0:
        return None
    if end == len(s) or (end + 1 == len(s) and s[end] == 0x0A):
        return val
    return None


def parse_strict_strtol(buf: bytes) -> Parsed:
    """2.6.32 oom_adjust_write(): ``strict_strtol(strstrip(buffer), 0, &v)``.

    Every failure is EINVAL; ``+`` is not a sign; nothing may follow the digits.
    """
    s = strstrip(buf)
    if s[:1] == b"-":
        u = _strict_strtoul(s[1:])
        return Parsed(None, errno.EINVAL) if u is None else Parsed(_as_long(-u))
    u = _strict_strtoul(s)
    return Parsed(None, errno.EINVAL) if u is None else Parsed(_as_long(u))


def _kstrtoull(s: bytes) -> tuple[int | None, int]:
    """lib/kstrtox.c _kstrtoull(), base 0: (value, 0) or (None, errno)."""
    base = 10
    i = 0
    if s[:1] == b"0":
        if s[1:2] in (b"x", b"X") and len(s) > 2 and isxdigit(s[2]):
            base, i = 16, 2
        else:
            base = 8
    start = i
    res = 0
    overflow = False
    while i < len(s) and isxdigit(s[i]):
        v = digit_value(s[i])
        if v >= base:
            break
        res = res * base + v
        if res >= _U64:
            overflow = True
        i += 1
    if i == start:
        return None, errno.EINVAL
    if overflow:
        return None, errno.ERANGE
    if s[i : i + 1] == b"\n":
        i += 1
    if i != len(s):
        return None, errno.EINVAL
    return res, 0


def parse_kstrtoint(buf: bytes) -> Parsed:
    """6.x ``kstrtoint(strstrip(buffer), 0, &v)``: ``+`` allowed, ERANGE on overflow."""
    s = strstrip(buf)
    if s[:1] == b"-":
        u, err = _kstrtoull(s[1:])
        if u is None:
            return Parsed(None, err)
        if u > 1 << 63:
            return Parsed(None, errno.ERANGE)
        v = -u
    else:
        if s[:1] == b"+":
            s = s[1:]
        u, err = _kstrtoull(s)
        if u is None:
            return Parsed(None, err)
        if u >= 1 << 63:
            return Parsed(None, errno.ERANGE)
        v = u
    if _as_int(v) != v:
        return Parsed(None, errno.ERANGE)
    return Parsed(v)
