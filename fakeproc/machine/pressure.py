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
from math import floor

from .clock import Clock
from .errors import MachineError
from .journal import Journal
from .killer import OomKiller, OomResult
from .memory import Memory
from .table import ProcessTable
from .task import PAGE_SIZE, Caller, Task

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


class Pressure:
    """The allocating processes, and the clock that makes them allocate."""

    def __init__(self, table: ProcessTable, memory: Memory, killer: OomKiller, clock: Clock,
                 journal: Journal) -> None:
        self.table = table
        self.memory = memory
        self.killer = killer
        self.clock = clock
        self.journal = journal
        self.allocators: dict[int, Allocator] = {}  # pid -> allocation rate
        table.watchers.append(self.released)

    def released(self, t: Task, gone: bool) -> None:
        """The table's watcher: an exited process allocates no more."""
        if gone and t.is_leader:
            self.allocators.pop(t.tgid, None)  # an exited process allocates no more

    def stop(self, pid: int) -> None:
        """exec(): a new program; the old one's allocation stops."""
        self.allocators.pop(pid, None)

    def set_rate(self, t: Task, nbytes_per_s: float) -> None:
        """Process ``t`` allocates ``nbytes_per_s`` bytes per simulated second from now on (0: stops)."""
        if nbytes_per_s < 0:
            raise MachineError(errno.EINVAL, "an allocation rate cannot be negative (use shrink to free)")
        if nbytes_per_s and t.mm is None:
            raise MachineError(errno.EINVAL, f"{t.tgid} has no address space (kernel thread)")
        if nbytes_per_s:
            old = self.allocators.get(t.tgid)
            a = self.allocators[t.tgid] = Allocator(nbytes_per_s / PAGE_SIZE)
            if old is not None:
                a.carry = old.carry
        else:
            self.allocators.pop(t.tgid, None)
        self.journal.note("alloc", pid=t.tgid, rate=nbytes_per_s)

    def rate(self, pid: int) -> float:
        """Bytes per simulated second that ``pid`` allocates (0 if none)."""
        a = self.allocators.get(pid)
        return a.rate * PAGE_SIZE if a is not None else 0.0

    # ----------------------------------------------------------------- clock

    def run_clock(self, seconds: float) -> list[OomResult]:
        """Move the clock by ``seconds``: allocators allocate, the killer runs when memory runs out.
        Returns what each OOM call the allocation caused did."""
        clock = self.clock
        end = clock.uptime + seconds
        results: list[OomResult] = []
        processes = self.table.processes
        while True:
            live = [(processes[pid], a) for pid, a in self.allocators.items()
                    if pid in processes and processes[pid].mm is not None]
            remaining = end - clock.uptime
            if not live or remaining <= 0:
                break
            ram_free, swap_free = self.memory.free_pages()
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
            clock.uptime += lo
            result = self._allocation_failed(current)
            results.append(result)
            if self.killer.halt.reason is not None:  # the kernel panicked: time stops with it
                return results
            if not result.killed:  # nothing could be killed: the allocators stay blocked
                break
        clock.uptime = max(clock.uptime, end)
        return results

    def _allocate(self, live: list[tuple[Task, Allocator]], dt: float, ram_free: int) -> None:
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

    def _allocation_failed(self, t: Task) -> OomResult:
        """__alloc_pages_slowpath() gives up: out_of_memory() with ``t`` as current."""
        self.journal.note("alloc_failed", pid=t.tgid, comm=t.comm)
        return self.killer.out_of_memory(Caller(t.tgid, t.uid, t.comm, self.killer.adj(t), t), current_mems=t.mems)
