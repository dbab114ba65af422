"""Kernel eras as data: every rule that differs between kernels, in one record.

The simulated machine (``fakeproc.machine``) reads these fields and never asks
"which kernel is this?" by name, so an era is one :class:`Era` row.  The
fields follow the tables of ``kernel-oom.md`` (sections 2 to 7); each row
names the kernel source it was read from.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from . import DEFAULT_ERA, ERA_NAMES  # noqa: F401 (re-exported)
from .badness import OOM_ADJUST_MAX, OOM_ADJUST_MIN, OOM_DISABLE, OOM_SCORE_ADJ_MAX, OOM_SCORE_ADJ_MIN
from .strtol import Parsed, parse_kstrtoint, parse_simple_strtol, parse_strict_strtol


class AdjHome(Enum):
    """Where a kernel keeps the OOM adjustment; decides what fork/vfork/thread/exec share."""

    TASK = "task_struct"  # 2.6.30/2.6.31: per thread (task->oomkilladj)
    MM = "mm_struct"  # 2.6.31-rc: per address space (mm->oom_adj): the regression
    SIGNAL = "signal_struct"  # 2.6.32: per thread group (signal->oom_adj): the fix
    SIGNAL_SCORE_ADJ = "signal_struct oom_score_adj"  # 2.6.36+: signal->oom_score_adj (-1000..1000)


class Refusal(Enum):
    """oom_kill_task(): when the chosen task may not be killed after all."""

    MM_DISABLED = "the victim's mm is at -17"  # 2.6.31-rc
    ANY_SHARER_DISABLED = "a thread sharing the victim's mm is at -17"  # 2.6.31: the livelock
    PROCESS_DISABLED = "the victim's process is at -17"  # 2.6.32
    NEVER = "never"  # 6.x: unkillable tasks are never selected


class Sharers(Enum):
    """Who else dies with the victim: the processes sharing its mm."""

    NONE = "nobody else"  # 2.6.32
    ALL = "every other task sharing the mm"  # 2.6.31, 2.6.31-rc: the vfork parent too
    USER = "every other user process sharing the mm"  # 6.x: not init, not kernel threads


def oom_adj_in_range(v: int) -> bool:
    """include/linux/oom.h: -16..15, or OOM_DISABLE (-17)."""
    return OOM_ADJUST_MIN <= v <= OOM_ADJUST_MAX or v == OOM_DISABLE


def oom_score_adj_in_range(v: int) -> bool:
    """include/uapi/linux/oom.h: OOM_SCORE_ADJ_MIN..OOM_SCORE_ADJ_MAX."""
    return OOM_SCORE_ADJ_MIN <= v <= OOM_SCORE_ADJ_MAX


@dataclass(frozen=True, slots=True)
class Era:
    """One kernel's whole set of OOM rules."""

    name: str
    #: the kernel version it models (2.6.31-rc1..rc6 come before 2.6.31: (2, 6, 31, -1)); the filesystem's
    #: tables say which files each version has
    version: tuple[int, ...]
    #: where the value lives (and so what fork, vfork, threads and exec share)
    adj_home: AdjHome
    #: parser of a write to oom_adj / oom_score_adj (after the 12-byte clamp and the NUL cut)
    parse: Callable[[bytes], Parsed]
    #: badness(): "legacy" (total_vm, cpu, run time, nice, caps; §6.1) or "modern" (rss+swap+pgtables; §6.2)
    scoring: str
    #: legacy badness() returns 0 for OOM_DISABLE before anything else (2.6.32, 2.6.31-rc)
    badness_adj_first: bool
    #: oom_score and the killer look at processes (leaders), or at every thread
    per_process: bool
    #: select_bad_process() skips candidates at -17 (2.6.31: the thread's; 2.6.32: the process's)
    skip_disabled: bool
    #: the first eligible candidate is taken whatever its score (``|| !chosen``); else a score must beat 0
    first_eligible: bool
    #: an equal score replaces the chosen one (6.x: the last wins ties)
    ties_replace: bool
    #: oom_kill_process() tries a child with its own mm first
    child_first: bool
    refusal: Refusal
    sharers: Sharers
    #: the report header's word for current's value: oom_adj=, oomkilladj=, oom_score_adj=
    header_adj_word: str
    #: "legacy" log lines ("kill process ... or a child" / "Killed process") or "modern" (one line)
    log_style: str
    #: prefix of the SysRq messages
    sysrq_prefix: str
    #: gfp_mask printed for SysRq-f (GFP_KERNEL) and for a user page fault (GFP_HIGHUSER_MOVABLE)
    gfp_sysrq: str
    gfp_fault: str
    #: SysRq-f runs in a kernel worker, the header's ``current`` (spec §7.1, history H1): 2.6.x keventd's
    #: ``events/0``, 2.6.36+ a ``kworker/N:M``; with the ``order=`` it passes (-1 from 4.3: is_sysrq_oom())
    sysrq_worker: str
    sysrq_order: int
    #: 2.6.x: panic_on_oom and "no killable processes" panic a SysRq-f like any OOM; 4.3+ never
    sysrq_panics: bool
    #: vm.oom_dump_tasks at boot (kernel/sysctl.c: 0 up to 2.6.35, 1 from 2.6.36)
    oom_dump_tasks_default: int
    #: the vm sysctls parsed by proc_dointvec_minmax 0..2 (2.6.39+: panic_on_oom, overcommit_memory);
    #: the others take any int (proc_dointvec)
    sysctl_0_to_2: frozenset[str]

    @property
    def has_score_adj(self) -> bool:
        return self.adj_home is AdjHome.SIGNAL_SCORE_ADJ


#: what the three 2.6.x eras share (typed Any: a ** of mixed field types)
_LEGACY: dict[str, Any] = dict(scoring="legacy", header_adj_word="oom_adj",
               log_style="legacy", sysrq_prefix="SysRq : ", gfp_sysrq="0xd0", gfp_fault="0x201da",
               sysrq_worker="events/0", sysrq_order=0, sysrq_panics=True, oom_dump_tasks_default=0,
               sysctl_0_to_2=frozenset())

ERA_2_6_31 = Era(
    name="2.6.31",  # released 2.6.30/2.6.31: oom_adj per thread; lenient simple_strtol; the livelock
    version=(2, 6, 31),
    adj_home=AdjHome.TASK, parse=parse_simple_strtol, badness_adj_first=False, per_process=False,
    skip_disabled=True, first_eligible=True, ties_replace=False, child_first=True,
    refusal=Refusal.ANY_SHARER_DISABLED, sharers=Sharers.ALL,
    **{**_LEGACY, "header_adj_word": "oomkilladj"},
)

ERA_2_6_31_RC = Era(
    name="2.6.31-rc",  # 2.6.31-rc1..rc6: oom_adj in the mm, shared with a vfork child (the regression)
    version=(2, 6, 31, -1),
    adj_home=AdjHome.MM, parse=parse_simple_strtol, badness_adj_first=True, per_process=False,
    skip_disabled=False, first_eligible=False, ties_replace=False, child_first=True,
    refusal=Refusal.MM_DISABLED, sharers=Sharers.ALL, **_LEGACY,
)

ERA_2_6_32 = Era(
    name="2.6.32",  # oom_adj per thread group (signal_struct), the per-process fix
    version=(2, 6, 32),
    adj_home=AdjHome.SIGNAL, parse=parse_strict_strtol, badness_adj_first=True, per_process=True,
    skip_disabled=True, first_eligible=True, ties_replace=False, child_first=True,
    refusal=Refusal.PROCESS_DISABLED, sharers=Sharers.NONE, **_LEGACY,
)

ERA_6_X = Era(
    name="6.x",  # today's kernels (checked against 6.18): oom_score_adj, legacy oom_adj view, rss-based score
    version=(6, 18),
    adj_home=AdjHome.SIGNAL_SCORE_ADJ,
    parse=parse_kstrtoint, scoring="modern", badness_adj_first=True, per_process=True,
    skip_disabled=False, first_eligible=False, ties_replace=True, child_first=False,
    refusal=Refusal.NEVER, sharers=Sharers.USER, header_adj_word="oom_score_adj", log_style="modern",
    sysrq_prefix="sysrq: ", gfp_sysrq="0xcc0(GFP_KERNEL)", gfp_fault="0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP)",
    sysrq_worker="kworker/0:1", sysrq_order=-1, sysrq_panics=False, oom_dump_tasks_default=1,
    sysctl_0_to_2=frozenset({"panic_on_oom", "overcommit_memory"}),
)

#: Eras offered by ``--kernel``; the first is the default.
ERAS: dict[str, Era] = {e.name: e for e in (ERA_2_6_32, ERA_2_6_31_RC, ERA_2_6_31, ERA_6_X)}
assert tuple(ERAS) == ERA_NAMES, "fakeproc.kernel.ERA_NAMES must list the eras of ERAS"


def check_range(parsed: Parsed, in_range: Callable[[int], bool]) -> Parsed:
    """The range check of the write handlers, on a parse that produced a value."""
    if parsed.value is not None and not in_range(parsed.value):
        return Parsed(None, errno.EINVAL)
    return parsed


def legacy_to_score_adj(oom_adj: int) -> int:
    """6.x oom_adj_write(): 15 -> 1000, else oom_adj * 1000 / 17 truncated toward zero."""
    if oom_adj == OOM_ADJUST_MAX:
        return 1000
    q = abs(oom_adj) * 1000 // 17
    return q if oom_adj >= 0 else -q


def score_adj_to_legacy(score_adj: int) -> int:
    """6.x oom_adj_read(): 1000 -> 15, else score_adj * 17 / 1000 truncated, capped at 15."""
    if score_adj == 1000:
        return OOM_ADJUST_MAX
    q = abs(score_adj) * 17 // 1000
    v = q if score_adj >= 0 else -q
    return min(v, OOM_ADJUST_MAX)
