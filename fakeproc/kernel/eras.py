"""Kernel eras as data: every rule that differs between kernels, in one record.

The simulated machine (``fakeproc.machine``) reads these fields and never asks
"which kernel is this?" by name, so a new era is a new :class:`Era` row.  The
fields follow the tables of ``kernel-oom.md`` (sections 2, 3, 5, 6 and 7).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from . import DEFAULT_ERA, ERA_NAMES  # noqa: F401 (re-exported)
from .badness import OOM_ADJUST_MAX, OOM_ADJUST_MIN, OOM_DISABLE
from .strtol import Parsed, parse_strict_strtol


class AdjHome(Enum):
    """Where a kernel keeps ``oom_adj``; decides what fork/vfork/thread/exec share."""

    TASK = "task_struct"  # 2.6.30/2.6.31: per thread
    MM = "mm_struct"  # 2.6.31-rc: per address space (the regression)
    SIGNAL = "signal_struct"  # 2.6.32: per thread group (the fix)


def oom_adj_in_range(v: int) -> bool:
    """include/linux/oom.h: -16..15, or OOM_DISABLE (-17)."""
    return OOM_ADJUST_MIN <= v <= OOM_ADJUST_MAX or v == OOM_DISABLE


@dataclass(frozen=True, slots=True)
class Era:
    """One kernel's whole set of OOM rules."""

    name: str
    summary: str
    #: where oom_adj is stored
    adj_home: AdjHome
    #: files under /<pid>/ and /<pid>/task/<tid>/ besides task/
    pid_files: tuple[str, ...]
    #: parser of an oom_adj write (after the 12-byte clamp and the NUL cut)
    parse_oom_adj: Callable[[bytes], Parsed]
    #: badness(): True if OOM_DISABLE is tested first (2.6.32)
    badness_adj_first: bool
    #: oom_score and the killer look at the thread group (leader), not each thread
    per_process: bool
    #: the header of the kill report names oom_adj with this word
    header_adj_word: str
    #: a candidate replaces the chosen one on an equal score (6.x) or only when greater
    ties_replace: bool
    #: try to kill a child with its own mm before the chosen process
    child_first: bool
    #: the other processes sharing the victim's mm are killed too (vfork parent!)
    kill_mm_sharers: bool


ERA_2_6_32 = Era(
    name="2.6.32",
    summary="oom_adj per thread group (signal_struct), the per-process fix",
    adj_home=AdjHome.SIGNAL,
    pid_files=("oom_adj", "oom_score"),
    parse_oom_adj=parse_strict_strtol,
    badness_adj_first=True,
    per_process=True,
    header_adj_word="oom_adj",
    ties_replace=False,
    child_first=True,
    kill_mm_sharers=False,
)

#: Eras offered by ``--kernel``; the first is the default.
ERAS: dict[str, Era] = {e.name: e for e in (ERA_2_6_32,)}
assert tuple(ERAS) == ERA_NAMES, "fakeproc.kernel.ERA_NAMES must list the eras of ERAS"


def check_oom_adj_range(parsed: Parsed) -> Parsed:
    """Apply the range check of oom_adjust_write() to a parse that produced a value."""
    if parsed.value is not None and not oom_adj_in_range(parsed.value):
        return Parsed(None, errno.EINVAL)
    return parsed
