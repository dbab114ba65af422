"""The machine's memory: RAM and swap, and what the address spaces of its tasks hold of them."""

from __future__ import annotations

import errno
from collections.abc import Iterator

from ..kernel.limits import ULONG_MAX
from .errors import MachineError
from .table import ProcessTable
from .task import PAGE_SIZE, Mm, Task

#: the counters of an mm that ``set_memory`` may set, in pages (pgtables in bytes)
MM_COUNTERS = ("total_vm", "rss_anon", "rss_file", "rss_shmem", "swap", "pgtables")


class Memory:
    def __init__(self, table: ProcessTable, ram: int = 4 << 30, swap: int = 0) -> None:
        self.table = table
        self.ram_pages = ram // PAGE_SIZE
        self.swap_pages = swap // PAGE_SIZE

    @property
    def totalpages(self) -> int:
        """RAM pages + swap pages: what 6.x oom_badness() scales oom_score_adj by."""
        return self.ram_pages + self.swap_pages

    def address_spaces(self) -> Iterator[Mm]:
        """Every address space once (threads and vfork children share one)."""
        seen: set[int] = set()
        for t in self.table.tasks.values():
            mm = t.mm
            if mm is not None and id(mm) not in seen:
                seen.add(id(mm))
                yield mm

    def free_pages(self) -> tuple[int, int]:
        """(free RAM, free swap) in pages: what the allocator has left before it calls the killer."""
        rss = swap = 0
        for mm in self.address_spaces():
            rss += mm.rss
            swap += mm.swap
        return max(0, self.ram_pages - rss), max(0, self.swap_pages - swap)

    @staticmethod
    def mm_of(t: Task) -> Mm:
        if t.mm is None:
            raise MachineError(errno.EINVAL, f"{t.tgid} has no address space (kernel thread)")
        return t.mm

    def set_counters(self, t: Task, **pages: int) -> Mm:
        """Set counters of a process's mm (``MM_COUNTERS``: pages, page tables in bytes)."""
        mm = self.mm_of(t)
        for k, v in pages.items():
            if k not in MM_COUNTERS:
                raise MachineError(errno.EINVAL, f"no such memory counter: {k}")
            if not 0 <= v <= ULONG_MAX:
                raise MachineError(errno.EINVAL, f"{k} must be 0..{ULONG_MAX} (an unsigned long)")
        for k, v in pages.items():
            setattr(mm, k, v)
        return mm

    def grow(self, t: Task, nbytes: int) -> Mm:
        """The process maps and touches ``nbytes`` more (negative: unmaps)."""
        mm = self.mm_of(t)
        d = nbytes // PAGE_SIZE if nbytes >= 0 else -(-nbytes // PAGE_SIZE)
        if mm.total_vm + d < 0:
            raise MachineError(errno.EINVAL, f"{t.tgid} maps only {mm.total_vm * PAGE_SIZE} bytes")
        if mm.total_vm + d > ULONG_MAX:
            raise MachineError(errno.EINVAL, "total_vm would pass an unsigned long of pages")
        mm.total_vm += d
        mm.rss_anon = max(0, min(mm.rss_anon + d, mm.total_vm - mm.rss_file - mm.rss_shmem))
        return mm
