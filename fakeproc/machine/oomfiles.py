"""What reading and writing the OOM files does, era by era (fs/proc/base.c).

Order of a write, in every era: parse -> range -> task gone (ESRCH) -> [2.6.31-rc: no mm -> EINVAL]
-> permission (EACCES) -> store -> count.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Protocol

from ..kernel.badness import modern_oom_score
from ..kernel.eras import (
    AdjHome,
    Era,
    check_range,
    legacy_to_score_adj,
    oom_adj_in_range,
    oom_score_adj_in_range,
    score_adj_to_legacy,
)
from ..kernel.strtol import Parsed, kernel_buffer
from .errors import MachineError
from .journal import Journal
from .killer import OomKiller
from .klog import KernelLog
from .table import ProcessTable
from .task import Caller, Task


class Writer(Protocol):
    """The caller of a write: what the kernel asks of ``current``."""

    tid: int  # who wrote, for the journal

    def privileged(self) -> bool:
        """capable(CAP_SYS_RESOURCE)"""

    def caller(self) -> Caller:
        """comm and pid, for the deprecation warning"""


class OomFiles:
    """The OOM files of /proc/PID and /proc/PID/task/TID."""

    def __init__(self, era: Era, table: ProcessTable, killer: OomKiller, klog: KernelLog, journal: Journal) -> None:
        self.era = era
        self.table = table
        self.killer = killer
        self.klog = klog
        self.journal = journal
        self.deprecation_warned = False  # 6.x pr_warn_once() of the legacy oom_adj file

    # ------------------------------------------------------- where the value is

    def get_oom_adj(self, t: Task) -> int:
        """What ``oom_adj`` reads: the value, or 6.x's lossy legacy view of oom_score_adj."""
        if self.era.adj_home is AdjHome.SIGNAL_SCORE_ADJ:
            return score_adj_to_legacy(t.signal.oom_score_adj)
        return self.killer.adj(t)

    def _set_adj(self, t: Task, v: int) -> None:
        home = self.era.adj_home
        if home is AdjHome.SIGNAL:
            t.signal.oom_adj = v
        elif home is AdjHome.SIGNAL_SCORE_ADJ:
            t.signal.oom_score_adj = v
        elif home is AdjHome.MM:
            if t.mm is None:
                raise MachineError(errno.EINVAL, f"{t.tid} has no mm")
            t.mm.oom_adj = v
        else:
            t.oom_adj = v

    def store_adj(self, t: Task, v: int, adj_min: int | None = None) -> None:
        """Set a process's value with no permission check (scenario loading, run mode's real values)."""
        for th in t.signal.threads if self.era.adj_home is AdjHome.TASK else (t,):
            self._set_adj(th, v)
        if adj_min is not None:
            t.signal.oom_score_adj_min = adj_min

    # ------------------------------------------------------------------ reads

    def read_oom_adj(self, who: int | Task) -> bytes:
        """oom_adjust_read() / 6.x oom_adj_read(): ``"%d\\n"``."""
        return b"%d\n" % self.get_oom_adj(self._live(who))

    def read_oom_score_adj(self, who: int | Task) -> bytes:
        return b"%d\n" % self._live(who).signal.oom_score_adj

    def read_oom_score(self, who: int | Task, current_mems: frozenset[int] | None = None) -> bytes:
        """proc_oom_score(): badness() of the leader (2.6.32), of the thread (2.6.31*), or 6.x's
        ``(1000 + oom_badness()*1000/totalpages)*2/3``."""
        return b"%d\n" % self.oom_score(self._live(who), current_mems)

    def oom_score(self, t: Task, current_mems: frozenset[int] | None = None) -> int:
        k = self.killer
        if self.era.scoring == "modern":
            return modern_oom_score(k.modern_badness(t), k.memory.totalpages)
        return k.badness(t.leader if self.era.per_process else t, current_mems)

    # ----------------------------------------------------------------- writes

    def _parse(self, data: bytes, in_range: Callable[[int], bool]) -> tuple[int, Parsed, int]:
        buf, count = kernel_buffer(data)
        parsed = check_range(self.era.parse(buf), in_range)
        if parsed.value is None:
            raise MachineError(parsed.error, "invalid value")
        return parsed.value, parsed, count

    def _live(self, who: int | Task) -> Task:
        """The task a file is about, by id or (an open file's) the task itself: ESRCH once it has exited,
        even if its id now names another (procfs's inode holds the struct pid)."""
        if isinstance(who, Task):
            if self.table.tasks.get(who.tid) is not who:
                raise MachineError(errno.ESRCH, f"process {who.tid} is gone")
            return who
        t = self.table.tasks.get(who)
        if t is None:
            raise MachineError(errno.ESRCH, f"process {who} is gone")
        return t

    def write_oom_adj(self, who: int | Task, data: bytes, writer: Writer) -> int:
        """oom_adjust_write() (2.6.x) or 6.x oom_adj_write() (scaled to oom_score_adj)."""
        value, parsed, count = self._parse(data, oom_adj_in_range)
        t = self._live(who)
        if self.era.has_score_adj:
            sharers = self._value_sharers(t)
            self._set_oom_score_adj(t, legacy_to_score_adj(value), True, writer)
            self._note_write(t, "oom_adj", writer, sharers)
            return count
        if self.era.adj_home is AdjHome.MM and t.mm is None:
            raise MachineError(errno.EINVAL, f"{t.tid} has no mm")
        if value < self.killer.adj(t) and not writer.privileged():
            raise MachineError(errno.EACCES, "lowering oom_adj needs CAP_SYS_RESOURCE")
        sharers = self._value_sharers(t)
        self._set_adj(t, value)
        if parsed.error:  # 2.6.31: nothing was parsed, 0 was stored, the write fails
            self._note_write(t, "oom_adj", writer, sharers, errno.errorcode[parsed.error])
            raise MachineError(parsed.error, "nothing parsed (0 stored)")
        self._note_write(t, "oom_adj", writer, sharers)
        return count if parsed.consumed is None else parsed.consumed

    def write_oom_score_adj(self, who: int | Task, data: bytes, writer: Writer) -> int:
        """6.x oom_score_adj_write()."""
        value, _parsed, count = self._parse(data, oom_score_adj_in_range)
        t = self._live(who)
        sharers = self._value_sharers(t)
        self._set_oom_score_adj(t, value, False, writer)
        self._note_write(t, "oom_score_adj", writer, sharers)
        return count

    def _value_sharers(self, t: Task) -> dict[Task, int]:
        """Other processes whose value a write to ``t`` may move, with their value before it.

        Only where the era shares the value beyond the thread group: the mm (2.6.31-rc, so a vfork
        child's write reaches its parent) or 6.x's CLONE_VM peers.
        """
        mm = t.mm
        home = self.era.adj_home
        if mm is None or home not in (AdjHome.MM, AdjHome.SIGNAL_SCORE_ADJ) or all(u.signal is t.signal
                                                                                  for u in mm.users):
            return {}
        return {p: self.get_oom_adj(p) if home is AdjHome.MM else p.signal.oom_score_adj
                for p in self.table.sharers(mm) if p.signal is not t.signal}

    def _note_write(self, t: Task, file: str, writer: Writer, sharers: dict[Task, int],
                    error: str | None = None) -> None:
        value = self.get_oom_adj(t) if file == "oom_adj" else t.signal.oom_score_adj
        fields: dict[str, object] = {"pid": t.tgid, "tid": t.tid, "file": file, "value": value, "by": writer.tid}
        if self.era.has_score_adj and file == "oom_adj":
            fields["oom_score_adj"] = t.signal.oom_score_adj
        also = {}
        for p, before in sharers.items():
            now = self.get_oom_adj(p) if self.era.adj_home is AdjHome.MM else p.signal.oom_score_adj
            if now != before:
                also[str(p.tgid)] = now
        if also:
            fields["also"] = also
        if error:
            fields["error"] = error
        self.journal.note("write", **fields)

    def _set_oom_score_adj(self, t: Task, value: int, legacy: bool, writer: Writer) -> None:
        """6.x __set_oom_adj(): permission, the one-time warning, store, share with CLONE_VM peers."""
        sig = t.signal
        if legacy:
            if value < sig.oom_score_adj and not writer.privileged():
                raise MachineError(errno.EACCES, "lowering oom_adj needs CAP_SYS_RESOURCE")
            if not self.deprecation_warned:
                self.deprecation_warned = True
                me = writer.caller()
                self.klog.printk(f"{me.comm} ({me.pid}): /proc/{t.tid}/oom_adj is deprecated, please use "
                                 f"/proc/{t.tid}/oom_score_adj instead.")
        elif value < sig.oom_score_adj_min and not writer.privileged():
            raise MachineError(errno.EACCES, "going below oom_score_adj_min needs CAP_SYS_RESOURCE")
        set_min = not legacy and writer.privileged()
        mm = t.mm if t.vfork_parent is None and t.mm is not None and t.mm.multiprocess else None
        sig.oom_score_adj = value
        if set_min:
            sig.oom_score_adj_min = value
        if mm is None:
            return
        for p in self.table.sharers(mm):
            if p.signal is sig or p.kthread or p.tgid == 1 or p.vfork_parent is not None:
                continue
            p.signal.oom_score_adj = value
            if set_min:
                p.signal.oom_score_adj_min = value

    def write_comm(self, who: int | Task, data: bytes, writer: Writer) -> int:
        """fs/proc/base.c comm_write(): only a thread of the same process may rename it, else EINVAL.

        No writer is ever a thread of a simulated process (they are real processes outside the
        model), so a write is EINVAL, or ESRCH once the process is gone.
        """
        self._live(who)
        raise MachineError(errno.EINVAL, "comm can be written only by the process itself")


__all__ = ["OomFiles", "Writer"]
