"""Memory pressure over time: allocation rates, the clock, and the allocator calling the OOM killer.

A process given an allocation rate maps and touches that many bytes per
simulated second (anonymous memory: malloc + memset).  The pages come from
free RAM first.  Once RAM is full the kernel makes room by swapping anonymous
pages out; the model swaps out the allocating process's own (its rss stays,
its swap grows), which keeps every count the OOM files read honest.  Once
swap is full too, the page allocator fails in __alloc_pages_slowpath() and
calls out_of_memory() with the allocating task as ``current``: its comm and
oom_adj (oom_score_adj in 6.x) in the report header, its cpuset in the
legacy badness().  The victim's memory is freed when its last user dies and
the allocation goes on; when nothing can be killed, the allocators stay
blocked for the rest of the step (the real kernel would panic or hang).

Pages are whole: each allocator carries the fraction of a page it is owed,
so ``tick 1s`` ten times allocates what ``tick 10s`` does.  When several
processes allocate at once, ``current`` is the one whose page is the first
that does not fit.  The clock charges no CPU time (``ctl cpu`` does).
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from math import floor
from typing import TYPE_CHECKING

from .errors import MachineError
from .killer import OomResult
from .task import PAGE_SIZE, Caller, Mm, Task

if TYPE_CHECKING:
    from .machine import Machine


#: a billionth of a page: what float rounding of split steps may lose, forgiven so that pages add up
EPSILON = 1e-9


class Allocator:
    """One allocating process: its rate (pages per simulated second) and the part of a page it is owed."""

    __slots__ = ("rate", "carry")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.carry = 0.0

    def due(self, dt: float) -> int:
        """Whole pages asked for in the next ``dt`` seconds."""
        return floor(self.carry + self.rate * dt + EPSILON)


class PressureMixin:
    # ---------------------------------------------------------------- memory

    def address_spaces(self: Machine) -> Iterator[Mm]:
        """Every address space once (threads and vfork children share one)."""
        seen: set[int] = set()
        for t in self.tasks.values():
            mm = t.mm
            if mm is not None and id(mm) not in seen:
                seen.add(id(mm))
                yield mm

    def free_pages(self: Machine) -> tuple[int, int]:
        """(free RAM, free swap) in pages: what the allocator has left before it calls the killer."""
        rss = swap = 0
        for mm in self.address_spaces():
            rss += mm.rss_anon + mm.rss_file + mm.rss_shmem
            swap += mm.swap
        return max(0, self.ram_pages - rss), max(0, self.swap_pages - swap)

    def set_alloc_rate(self: Machine, pid: int, nbytes_per_s: float) -> Task:
        """Process ``pid`` allocates ``nbytes_per_s`` bytes per simulated second from now on (0: stops)."""
        t = self.process(pid)
        if nbytes_per_s < 0:
            raise MachineError(errno.EINVAL, "an allocation rate cannot be negative (use shrink to free)")
        if nbytes_per_s and t.mm is None:
            raise MachineError(errno.EINVAL, f"{pid} has no address space (kernel thread)")
        if nbytes_per_s:
            old = self.allocators.get(t.tgid)
            a = self.allocators[t.tgid] = Allocator(nbytes_per_s / PAGE_SIZE)
            if old is not None:
                a.carry = old.carry
        else:
            self.allocators.pop(t.tgid, None)
        self.note("alloc", pid=t.tgid, rate=nbytes_per_s)
        return t

    def alloc_rate(self: Machine, pid: int) -> float:
        """Bytes per simulated second that ``pid`` allocates (0 if none)."""
        a = self.allocators.get(pid)
        return a.rate * PAGE_SIZE if a is not None else 0.0

    # ----------------------------------------------------------------- clock

    def tick(self: Machine, seconds: float) -> float:
        """Move the clock by ``seconds``; allocators allocate, and the killer runs when memory runs out."""
        if seconds < 0:
            raise MachineError(errno.EINVAL, "the clock does not go back")
        self.run_clock(seconds)
        return self.uptime

    def run_clock(self: Machine, seconds: float) -> list[OomResult]:
        """tick() itself: returns what each OOM call the allocation caused did."""
        end = self.uptime + seconds
        results: list[OomResult] = []
        while True:
            live = [(self.processes[pid], a) for pid, a in self.allocators.items()
                    if pid in self.processes and self.processes[pid].mm is not None]
            remaining = end - self.uptime
            if not live or remaining <= 0:
                break
            ram_free, swap_free = self.free_pages()
            room = ram_free + swap_free
            if sum(a.due(remaining) for _, a in live) <= room:
                self._allocate(live, remaining, ram_free)
                break
            # Bisect for the moment the (room+1)-th page is asked for: lo still fits, hi does not.
            lo, hi = 0.0, remaining
            for _ in range(64):
                mid = (lo + hi) / 2
                if mid <= lo or mid >= hi:
                    break
                if sum(a.due(mid) for _, a in live) <= room:
                    lo = mid
                else:
                    hi = mid
            stepping = [(t, a) for t, a in live if a.due(hi) > a.due(lo)] or live
            current = max(stepping, key=lambda ta: (ta[1].rate, -ta[0].tgid))[0]
            self._allocate(live, lo, ram_free)
            self.uptime += lo
            result = self._allocation_failed(current)
            results.append(result)
            if not result.killed:  # nothing could be killed: the allocators stay blocked
                break
        self.uptime = max(self.uptime, end)
        return results

    def _allocate(self: Machine, live: list[tuple[Task, Allocator]], dt: float, ram_free: int) -> None:
        """Give every allocator what it asked for in ``dt``: free RAM first, then its own pages go to swap."""
        for t, a in live:
            want = a.carry + a.rate * dt
            n = floor(want + EPSILON)
            a.carry = max(0.0, want - n)
            if not n:
                continue
            mm = t.mm
            assert mm is not None
            in_ram = min(n, ram_free)
            ram_free -= in_ram
            mm.total_vm += n
            mm.rss_anon += in_ram
            mm.swap += n - in_ram  # a new page resident, an old one of its own swapped out
            self.touch_mm(mm, t)  # the killer's cached scores read these

    def _allocation_failed(self: Machine, t: Task) -> OomResult:
        """__alloc_pages_slowpath() gives up: out_of_memory() with ``t`` as current."""
        self.note("alloc_failed", pid=t.tgid, comm=t.comm)
        return self.out_of_memory(Caller(t.tgid, t.uid, t.comm, self.get_adj(t)), current_mems=t.mems)


__all__ = ["Allocator", "PressureMixin"]
