"""What reading and writing the OOM files does, era by era (fs/proc/base.c).

Order of a write, in every era: parse -> range -> task gone (ESRCH) ->
[2.6.31-rc: no mm -> EINVAL] -> permission (EACCES) -> store -> count.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Protocol

from ..kernel.badness import ModernInputs, legacy_badness, modern_badness, modern_oom_score
from ..kernel.eras import AdjHome, check_range, legacy_to_score_adj, oom_adj_in_range, oom_score_adj_in_range
from ..kernel.strtol import Parsed, kernel_buffer
from .errors import MachineError
from .task import Caller, Task

if TYPE_CHECKING:
    from .machine import Machine

LONG_MAX = (1 << 63) - 1


class Writer(Protocol):
    """The caller of a write: what the kernel asks of ``current``."""

    tid: int  # who wrote, for the journal

    def privileged(self) -> bool:
        """capable(CAP_SYS_RESOURCE)"""

    def caller(self) -> Caller:
        """comm and pid, for the deprecation warning"""


class OomFilesMixin:
    """The OOM files of /proc/PID and /proc/PID/task/TID."""

    # ------------------------------------------------------------------ reads

    def read_oom_adj(self: Machine, tid: int) -> bytes:
        """oom_adjust_read() / 6.x oom_adj_read(): ``"%d\\n"``."""
        return b"%d\n" % self.get_oom_adj(self.task(tid))

    def read_oom_score_adj(self: Machine, tid: int) -> bytes:
        return b"%d\n" % self.task(tid).signal.oom_score_adj

    def read_oom_score(self: Machine, tid: int, current_mems: frozenset[int] | None = None) -> bytes:
        """proc_oom_score(): badness() of the leader (2.6.32), of the thread (2.6.31*), or
        6.x's ``(1000 + oom_badness()*1000/totalpages)*2/3``."""
        t = self.task(tid)
        if self.era.scoring == "modern":
            return b"%d\n" % modern_oom_score(self.modern_badness(t), self.totalpages)
        who = t.leader if self.era.per_process else t
        return b"%d\n" % self.badness(who, current_mems)

    # ----------------------------------------------------------------- writes

    def _parse(self: Machine, data: bytes, in_range) -> tuple[Parsed, int]:
        buf, count = kernel_buffer(data)
        parsed = check_range(self.era.parse(buf), in_range)
        if parsed.value is None:
            raise MachineError(parsed.error, "invalid value")
        return parsed, count

    def write_oom_adj(self: Machine, tid: int, data: bytes, writer: Writer) -> int:
        """oom_adjust_write() (2.6.x) or 6.x oom_adj_write() (scaled to oom_score_adj)."""
        parsed, count = self._parse(data, oom_adj_in_range)
        t = self.tasks.get(tid)
        if t is None:
            raise MachineError(errno.ESRCH, f"process {tid} is gone")
        if self.era.has_score_adj:
            sharers = self._value_sharers(t)
            self._set_oom_score_adj(t, legacy_to_score_adj(parsed.value), True, writer)
            self._note_write(t, "oom_adj", writer, sharers)
            return count
        if self.era.adj_home is AdjHome.MM and t.mm is None:
            raise MachineError(errno.EINVAL, f"{tid} has no mm")
        if parsed.value < self.get_adj(t) and not writer.privileged():
            raise MachineError(errno.EACCES, "lowering oom_adj needs CAP_SYS_RESOURCE")
        sharers = self._value_sharers(t)
        self._set_adj(t, parsed.value)
        if parsed.error:  # 2.6.31: nothing was parsed, 0 was stored, the write fails
            self._note_write(t, "oom_adj", writer, sharers, errno.errorcode[parsed.error])
            raise MachineError(parsed.error, "nothing parsed (0 stored)")
        self._note_write(t, "oom_adj", writer, sharers)
        return count if parsed.count is None else parsed.count

    def write_oom_score_adj(self: Machine, tid: int, data: bytes, writer: Writer) -> int:
        """6.x oom_score_adj_write()."""
        parsed, count = self._parse(data, oom_score_adj_in_range)
        t = self.tasks.get(tid)
        if t is None:
            raise MachineError(errno.ESRCH, f"process {tid} is gone")
        sharers = self._value_sharers(t)
        self._set_oom_score_adj(t, parsed.value, False, writer)
        self._note_write(t, "oom_score_adj", writer, sharers)
        return count

    def _value_sharers(self: Machine, t: Task) -> dict[Task, int]:
        """Other processes whose value a write to ``t`` may move, with their value before it.

        Only where the era shares the value beyond the thread group: the mm
        (2.6.31-rc, so a vfork child's write reaches its parent) or 6.x's
        CLONE_VM peers.  Scanned only when the mm has users outside t's group.
        """
        mm = t.mm
        home = self.era.adj_home
        if mm is None or mm.users <= len(t.signal.threads) or home not in (AdjHome.MM, AdjHome.SIGNAL_SCORE_ADJ):
            return {}
        return {p: self.get_oom_adj(p) if home is AdjHome.MM else p.signal.oom_score_adj
                for p in self.processes.values()
                if p.signal is not t.signal and any(th.mm is mm for th in p.signal.threads)}

    def _note_write(self: Machine, t: Task, file: str, writer: Writer, sharers: dict[Task, int],
                    error: str | None = None) -> None:
        value = self.get_oom_adj(t) if file == "oom_adj" else t.signal.oom_score_adj
        fields: dict[str, object] = {"pid": t.tgid, "tid": t.tid, "file": file, "value": value,
                                     "by": writer.tid}
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
        self.note("write", **fields)

    def _set_oom_score_adj(self: Machine, t: Task, value: int, legacy: bool, writer: Writer) -> None:
        """6.x __set_oom_adj(): permission, the one-time warning, store, share with CLONE_VM peers."""
        sig = t.signal
        if legacy:
            if value < sig.oom_score_adj and not writer.privileged():
                raise MachineError(errno.EACCES, "lowering oom_adj needs CAP_SYS_RESOURCE")
            if not self.deprecation_warned:
                self.deprecation_warned = True
                me = writer.caller()
                self.printk(f"{me.comm} ({me.pid}): /proc/{t.tid}/oom_adj is deprecated, please use "
                            f"/proc/{t.tid}/oom_score_adj instead.")
        elif value < sig.oom_score_adj_min and not writer.privileged():
            raise MachineError(errno.EACCES, "going below oom_score_adj_min needs CAP_SYS_RESOURCE")
        set_min = not legacy and writer.privileged()
        mm = t.mm if t.vfork_parent is None and t.mm is not None and t.mm.multiprocess else None
        sig.oom_score_adj = value
        if set_min:
            sig.oom_score_adj_min = value
        self.touch(t)
        if mm is None:
            return
        for p in self.iter_processes():
            if p.signal is sig or p.kthread or p.tgid == 1:
                continue
            if p.vfork_parent is None and any(th.mm is mm for th in p.signal.threads):
                p.signal.oom_score_adj = value
                self.touch(p)
                if set_min:
                    p.signal.oom_score_adj_min = value

    # ----------------------------------------------------------------- scores

    def modern_badness(self: Machine, t: Task) -> int | None:
        """6.x oom_badness(): None is LONG_MIN (unkillable); PF_OOM_ORIGIN is handled by the killer."""
        mm = t.mm
        unkillable = (t.tgid == 1 or t.kthread or mm is None or t.signal.oom_score_adj == -1000
                      or t.in_vfork)
        return modern_badness(ModernInputs(
            unkillable=unkillable,
            rss=mm.rss if mm else 0, swap=mm.swap if mm else 0, pgtables_bytes=mm.pgtables if mm else 0,
            oom_score_adj=t.signal.oom_score_adj, totalpages=self.totalpages))

    def badness(self: Machine, p: Task, current_mems: frozenset[int] | None = None) -> int:
        return legacy_badness(self.badness_inputs(p, current_mems), adj_first=self.era.badness_adj_first)


__all__ = ["LONG_MAX", "OomFilesMixin", "Writer"]
