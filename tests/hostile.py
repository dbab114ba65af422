"""Hostile callers, what both tiers throw: the kernel's rules for one write(), and hypothesis strategies.

The property-based tests write arbitrary byte strings, in one or several ``write()`` calls, through
every way of opening, to every writable file of every era, and check each answer against the kernel's
rules of ``kernel-oom.md`` section 3: a byte count, or an errno that era can give for that file; a
failed write changes nothing (but 2.6.31's EIO, which stores 0 first, as that kernel did); a
successful one stores what the era's parser (``fakeproc.kernel``, pure functions) makes of the bytes,
seen through every view of the value (the process, its threads, 6.x's two files).  tests/core runs
them through the filesystem core in-process; tests/mount through real mounts, and against this
machine's own /proc.  ``HYPOTHESIS_PROFILE=thorough`` runs each property 10,000 times.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

from hypothesis import example, settings
from hypothesis import strategies as st

from fakeproc.kernel import ERA_NAMES
from fakeproc.kernel.eras import ERAS, legacy_to_score_adj, score_adj_to_legacy

#: The mount tier draws a fifth of the examples the core tier does (each is a few FUSE round trips).
MOUNT_EXAMPLES = max(10, settings.default.max_examples // 5)

# ------------------------------------------------------------------------------------------------
# What the kernel may answer (kernel-oom.md section 3), with no knowledge of the bytes written.
# The mounts are made by root with the default --privilege owner, so every writer here holds
# CAP_SYS_RESOURCE: EACCES is impossible; the target process lives, so ESRCH is impossible too.
#   EINVAL: any parse or range error, every era;
#   EIO:    simple_strtol consumed nothing (2.6.31, 2.6.31-rc only);
#   ERANGE: kstrtoint overflow (6.x only).
ALLOWED_ERRNOS = {
    "2.6.32": {errno.EINVAL},
    "2.6.31-rc": {errno.EINVAL, errno.EIO},
    "2.6.31": {errno.EINVAL, errno.EIO},
    "6.x": {errno.EINVAL, errno.ERANGE},
}
assert set(ALLOWED_ERRNOS) == set(ERA_NAMES)

WRITE_LIMIT = 12  # PROC_NUMBUF - 1: at most 12 bytes of one write() are looked at

#: Where a file of the target can be reached: the process, its leader as a thread, the other thread.
WHERE = {"pid": "{pid}/{name}", "leader": "{pid}/task/{pid}/{name}", "thread": "{pid}/task/{tid}/{name}"}

#: How a caller opens: (flags, read the old value and rewind first, like sshd's "r+").
OPENS = {
    "O_WRONLY": (os.O_WRONLY, False),
    "O_WRONLY|O_TRUNC": (os.O_WRONLY | os.O_TRUNC, False),
    "sh >": (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, False),
    "O_WRONLY|O_APPEND": (os.O_WRONLY | os.O_APPEND, False),
    "O_RDWR": (os.O_RDWR, False),
    "r+": (os.O_RDWR, True),
}


def value_files(era: str) -> tuple[str, ...]:
    return ("oom_adj", "oom_score_adj") if era == "6.x" else ("oom_adj",)


WRITE_CASES = [(era, where, name) for era in ERA_NAMES for where in ("pid", "thread") for name in value_files(era)]


def errname(e: int) -> str:
    return errno.errorcode.get(e, str(e))


def outcome(fn: Callable[[], object]) -> int | bytes | str:
    """What a call answers: a count, the bytes read, "OK" for anything else, or the errno's name."""
    try:
        r = fn()
    except OSError as e:
        return errname(e.errno)
    return r if isinstance(r, int | bytes) else "OK"


def in_range(name: str, v: int) -> bool:
    if name == "oom_score_adj":
        return -1000 <= v <= 1000
    return -16 <= v <= 15 or v == -17


def model_write(era: str, name: str, data: bytes, through_fuse: bool = True) -> tuple[int | str, int | None]:
    """(what write() returns: a count or an errno name, the value stored or None).

    The value is the era's own: oom_adj, or under 6.x oom_score_adj (what both files store).
    """
    if not data and through_fuse:
        return 0, None  # FUSE: the kernel answers a zero-byte write itself (section 3.1.6)
    buf = data[:WRITE_LIMIT]
    count = len(buf)
    if b"\0" in buf:
        buf = buf[: buf.index(b"\0")]
    parsed = ERAS[era].parse(buf)
    if parsed.value is None:
        return errname(parsed.error), None
    if not in_range(name, parsed.value):
        return "EINVAL", None
    stored = legacy_to_score_adj(parsed.value) if era == "6.x" and name == "oom_adj" else parsed.value
    if parsed.error:  # 2.6.31*: nothing consumed: 0 is stored, then the write fails (EIO)
        return errname(parsed.error), stored
    return (count if parsed.consumed is None else parsed.consumed), stored


def shown(era: str, name: str, stored: int) -> int:
    """What a file reads for a stored value (section 4; 6.x oom_adj is the lossy legacy view)."""
    return score_adj_to_legacy(stored) if era == "6.x" and name == "oom_adj" else stored


# ------------------------------------------------------------------------------------------------
# Strategies: arbitrary bytes, bytes from the parsers' alphabet, and numbers dressed up every way.

SPACES = b"\t\n\v\f\r \xa0"
ALPHABET = b"0123456789-+xXabcdefABCDEFgz" + SPACES + b"\0\xff\x80"

numbers = st.builds(
    lambda pre, sign, prefix, digits, post: (pre + sign + prefix + digits + post)[:64],
    st.lists(st.sampled_from(list(SPACES + b"\0+-")), max_size=3).map(bytes),
    st.sampled_from([b"", b"-", b"+", b"--", b"-+", b"+-"]),
    st.sampled_from([b"", b"0", b"0x", b"0X", b"00"]),
    st.one_of(
        st.integers(-20, 20),
        st.integers(-1100, 1100),
        st.integers(0, 2**70),
        st.sampled_from([2**31 - 1, 2**31, 2**32, 2**32 + 5, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**64 + 17]),
    ).flatmap(lambda n: st.sampled_from([b"%d" % abs(n), b"%x" % abs(n), b"%o" % abs(n)])),
    st.lists(st.sampled_from(list(ALPHABET)), max_size=4).map(bytes),
)
# a number, then what ends it for the kernel or for a caller (NUL, newline, padding past the
# 12 bytes the kernel looks at), then anything
ENDS = [b"\0", b"\n", b"\n\0", b"\0\n", b"\n\n", b" \0", b"\xa0", b" " * 11, b"\t" * 16, b"\0" * 12, b"\n" + b" " * 14]
terminated = st.builds(
    lambda n, end, junk: (n + end + junk)[:64],
    numbers,
    st.sampled_from(ENDS),
    st.binary(max_size=16),
)
payloads = st.one_of(
    st.binary(max_size=64),
    st.lists(st.sampled_from(list(ALPHABET)), max_size=64).map(bytes),
    numbers,
    terminated,
)


@st.composite
def write_plans(draw) -> tuple[str, bool, list[tuple[bytes, int | None]]]:
    """(how to open, resend the rest of a short write like a write loop, [(bytes, pwrite offset)]).

    The bytes (0 to 64 of them) are cut into one or several write() calls, some of them empty.
    """
    data = draw(payloads)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=3)))
    bounds = [0, *cuts, len(data)]
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    offsets = st.one_of(st.none(), st.sampled_from([0, 1, 12, 4096, 1 << 40]))
    return draw(st.sampled_from(sorted(OPENS))), draw(st.booleans()), [(c, draw(offsets)) for c in chunks]


def one_write(data: bytes, how: str = "O_WRONLY", loop: bool = False, offset: int | None = None):
    return (how, loop, [(data, offset)])


#: Always tried, whatever hypothesis draws: the classes of section 3 (count, NUL, 12 bytes, parsers).
EXAMPLES = [
    one_write(b"5\0" + b"junk" * 5),  # NUL ends the string; 12 of 22 bytes counted
    one_write(b"-17" + b" " * 20, "sh >"),  # stripped; a short write of 12
    one_write(b"0000000000005" + b"5", "r+", loop=True),  # the write loop sends the rest alone
    one_write(b"5abc", loop=True),  # 2.6.31: 1 consumed, then "abc": 0 stored and EIO
    one_write(b" 5\n", "O_WRONLY|O_TRUNC", offset=4096),  # 2.6.31: EIO; 2.6.32 and 6.x: 5
    one_write(b"+5"),
    one_write(b"0x0f\n"),
    one_write(b"99999999999\n"),  # 6.x: ERANGE
    one_write(b"4294967296"),  # 2.6.31: truncated to int 0
    one_write(b"\xa0-3\xa0", "O_WRONLY|O_APPEND", offset=1 << 40),
    ("O_RDWR", False, [(b"1", None), (b"", None), (b"-", 7), (b"1\n", None)]),
]


def with_examples(**more):
    def add(test):
        for plan in EXAMPLES:
            test = example(plan=plan, **more)(test)
        return test

    return add


names = st.one_of(
    st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1, max_size=12),
    st.builds(
        lambda pre, n, post: pre + str(n) + post,
        st.sampled_from(["", "0", "00", "+", "-", " ", "\t", "x"]),
        st.one_of(st.integers(0, 1000), st.integers(0, 2**70)),  # the mounts' pids are below 1000
        st.sampled_from(["", " ", "\n", "x", "0", "."]),
    ),
)



def after_exit_expectations(era: str, name: str) -> dict[bytes, str]:
    """What a write to an open value file of a process that is gone answers, era by era."""
    too_big = b"5000" if name == "oom_score_adj" else b"99"
    want = {b"3": "ESRCH", b"-17\n": "ESRCH", too_big: "EINVAL", b"0x7fffffff": "EINVAL"}
    # junk: strict parsers refuse it first; simple_strtol "parses" 0 and only then looks up the task
    want[b"abc"] = "ESRCH" if era in ("2.6.31", "2.6.31-rc") else "EINVAL"
    # 99999999999: 6.x kstrtoint overflows int (ERANGE); 2.6.32 range; 2.6.31 truncates to int, range
    want[b"99999999999"] = "ERANGE" if era == "6.x" else "EINVAL"
    return want


