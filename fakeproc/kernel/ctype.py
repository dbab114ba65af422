"""The kernel's own <linux/ctype.h>, which is not C's or Python's.

lib/ctype.c classifies bytes with a Latin-1 table: 0xA0 (no-break space) is
whitespace, and only ASCII characters are digits or hex digits.  Python's
``bytes.isspace`` and ``str.strip`` disagree on both counts, so the parsers
use these instead.
"""

KERNEL_SPACE = frozenset(b"\t\n\v\f\r \xa0")
_HEX = frozenset(b"0123456789abcdefABCDEF")


def isspace(c: int) -> bool:
    return c in KERNEL_SPACE


def isxdigit(c: int) -> bool:
    return c in _HEX


def isdigit(c: int) -> bool:
    return 0x30 <= c <= 0x39


def digit_value(c: int) -> int:
    """Value of a hex digit (caller checked isxdigit)."""
    if isdigit(c):
        return c - 0x30
    return (c | 0x20) - 0x61 + 10


def strstrip(s: bytes) -> bytes:
    """lib/string.c strstrip(): trailing, then leading kernel whitespace."""
    end = len(s)
    while end > 0 and isspace(s[end - 1]):
        end -= 1
    start = 0
    while start < end and isspace(s[start]):
        start += 1
    return s[start:end]
