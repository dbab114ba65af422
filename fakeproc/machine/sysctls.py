"""The OOM killer's knobs, ``/proc/sys/vm/*``: one int each, per machine (spec §7.2).

Values are kept as the kernel keeps them, a C ``int`` each; what a value means is read where it is
used: ``panic_on_oom`` (0, 1: panic on an unconstrained OOM, 2: on every OOM; any other nonzero value
acts as 1 where the era's parser lets it in), ``oom_kill_allocating_task`` (nonzero: kill the task
that allocates first), ``oom_dump_tasks`` (nonzero: the task table follows each OOM header),
``overcommit_memory`` and ``overcommit_ratio`` (meminfo's CommitLimit).  The write parser is the
era's proc_dointvec / proc_dointvec_minmax (fakeproc.kernel.sysctl).
"""

from __future__ import annotations

import errno

from ..kernel.eras import Era
from .errors import MachineError

INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1

#: the files, in the order a listing of /proc/sys/vm shows them (sysctl directories list by name)
VM_SYSCTLS = ("oom_dump_tasks", "oom_kill_allocating_task", "overcommit_memory", "overcommit_ratio",
              "panic_on_oom")


class VmSysctls:
    __slots__ = ("era", "values")

    def __init__(self, era: Era) -> None:
        self.era = era
        # kernel/sysctl.c and mm/oom_kill.c: the values at boot
        self.values: dict[str, int] = {
            "oom_dump_tasks": era.oom_dump_tasks_default, "oom_kill_allocating_task": 0,
            "overcommit_memory": 0, "overcommit_ratio": 50, "panic_on_oom": 0,
        }

    def __getitem__(self, name: str) -> int:
        return self.values[name]

    def limits(self, name: str) -> tuple[int, int] | None:
        """proc_dointvec_minmax's range (0..2) for the sysctls that take one in this era; None: any int."""
        return (0, 2) if name in self.era.sysctl_0_to_2 else None

    def defaults(self) -> dict[str, int]:
        return VmSysctls(self.era).values

    def check(self, name: str, value: int) -> None:
        """A value the era's handler would store (a scenario's, a control line's): EINVAL otherwise."""
        if name not in self.values:
            raise MachineError(errno.ENOENT, f"no such sysctl: vm.{name} (known: {', '.join(VM_SYSCTLS)})")
        lo, hi = self.limits(name) or (INT_MIN, INT_MAX)
        if not lo <= value <= hi:
            raise MachineError(errno.EINVAL, f"vm.{name} must be {lo}..{hi} in {self.era.name}")
