"""The files of the fake, declared as tables, the way fs/proc/base.c does.

``PID_ENTRIES`` plays the part of the kernel's ``tgid_base_stuff[]`` and
``tid_base_stuff[]``: each row is a name, a mode and its handlers, so adding a
file is adding a row.  ``ROOT_ENTRIES`` are the files at the top of the mount
(``/proc/sysrq-trigger``, ``meminfo``, ``stat``, ... and fakeproc's own ``fakeproc/`` directory).

Rows marked ``companion`` are the files procps reads besides the OOM files
(``stat``, ``status``, ``meminfo``, ...; rendered by ``procfiles.py``): they
describe a simulated machine only, so in run mode the host's real file of that
name is passed through instead.

Handlers receive a :class:`Request` (who asks, and the shared state) and the
tid the path names; they raise :class:`~fakeproc.machine.MachineError` with
the kernel's errno.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..kernel.eras import Era
from ..machine import Caller, Machine, MachineError, Task
from . import procfiles

if TYPE_CHECKING:
    from .privilege import Privilege

ReadHandler = Callable[["Request", int], bytes]
WriteHandler = Callable[["Request", int, bytes], int]


class Request:
    """One FUSE request: the caller (uid, gid, thread id) and the daemon's state."""

    __slots__ = ("state", "uid", "gid", "tid", "handle", "offset", "per_thread")

    def __init__(self, state: FsState, uid: int, gid: int, tid: int, handle: Any = None, offset: int = 0,
                 per_thread: bool = False) -> None:
        self.state = state
        self.uid = uid
        self.gid = gid
        self.tid = tid
        self.handle = handle  # the open file (fuseops.Handle), if any
        self.offset = offset  # file position of this read or write
        self.per_thread = per_thread  # the file was opened as PID/task/TID/NAME (tid_base_stuff[])

    @property
    def machine(self) -> Machine:
        return self.state.machine

    def privileged(self) -> bool:
        """capable(CAP_SYS_RESOURCE) for the writer, per ``--privilege``."""
        return self.state.privilege.has_sys_resource(self.uid, self.tid)

    def caller(self) -> Caller:
        """``current`` for a report header: the model's task if the caller is simulated."""
        m = self.machine
        t = m.tasks.get(self.tid)
        if t is not None:
            return Caller(t.tgid, t.uid, t.comm, m.get_adj(t))
        return Caller(self.tid, self.uid, real_comm(self.state.real_proc, self.tid))


def real_comm(proc: str, tid: int) -> str:
    try:
        with open(f"{proc}/{tid}/comm", "rb") as f:
            return f.read().decode("utf-8", "replace").strip() or "?"
    except OSError:
        return "?"


class Reality(Protocol):
    """Run mode: the host's real processes behind the model (``fakeproc.run.mirror.Mirror``).

    With a reality, every path the model does not serve passes through to
    the real ``/proc``, and pids name real processes, entered into the model
    by ``lookup`` when they are first named.
    """

    real_proc: str

    def lookup(self, tid: int) -> Any: ...  # the model's Task, or None

    def before_access(self, tid: int, writing: bool) -> None: ...

    def self_link(self, tid: int, thread: bool) -> str: ...

    #: shell mode: the machine is simulated, real processes are only the shell's own
    simulated_machine: bool

    def simulated(self, pid: int) -> bool: ...  # a process of the scenario, not a real one

    def visible(self, pid: int) -> bool: ...  # a real pid this mount shows

    def extra_pids(self) -> list[int]: ...  # real pids the root of a simulated machine lists too


class FsState:
    """What every handler may need: the machine, the privilege policy, the control surface."""

    __slots__ = ("machine", "privilege", "owner_uid", "owner_gid", "control", "real_proc", "last_reply",
                 "reality", "btime")

    def __init__(self, machine: Machine, privilege: Privilege, owner_uid: int, owner_gid: int,
                 control: Callable[[Request, str], tuple[bytes, int]] | None = None, real_proc: str = "/proc",
                 reality: Reality | None = None) -> None:
        self.machine = machine
        self.privilege = privilege
        self.owner_uid = owner_uid
        self.owner_gid = owner_gid
        self.control = control
        self.real_proc = real_proc
        self.last_reply = b""
        self.reality = reality
        # /proc/stat btime: the wall-clock second the simulated machine booted, fixed when it is
        # mounted (its uptime then moves only with its own clock)
        self.btime = int(time.time() - machine.uptime)


@dataclass(frozen=True, slots=True)
class Entry:
    """One file: its name, permission bits, and what reading and writing it do.

    ``read``/``write`` of None: the kernel's file_operations lacks that
    method (read → EINVAL, write → EINVAL).  ``shown``: in which eras it exists.
    ``positioned``: the read handler applies the file position itself
    (``req.offset``) instead of getting its content sliced.
    ``companion``: a file of the simulated machine only (``stat``, ``meminfo``, ...):
    in run mode the host's real file of that name is served instead.
    """

    name: str
    mode: int
    read: Callable[..., bytes] | None = None
    write: Callable[..., int] | None = None
    shown: Callable[[Era], bool] = lambda era: True
    positioned: bool = False
    companion: bool = False


# ---------------------------------------------------------------- per pid

def _read_oom_adj(req: Request, tid: int) -> bytes:
    return req.machine.read_oom_adj(tid)


def _write_oom_adj(req: Request, tid: int, data: bytes) -> int:
    return req.machine.write_oom_adj(tid, data, req)


def _read_oom_score_adj(req: Request, tid: int) -> bytes:
    return req.machine.read_oom_score_adj(tid)


def _write_oom_score_adj(req: Request, tid: int, data: bytes) -> int:
    return req.machine.write_oom_score_adj(tid, data, req)


def _read_oom_score(req: Request, tid: int) -> bytes:
    m = req.machine
    reader = m.tasks.get(req.tid)  # has_intersects_mems_allowed() compares with current
    return m.read_oom_score(tid, reader.mems if reader is not None else None)


def _task(req: Request, tid: int) -> Task:
    t = req.machine.tasks.get(tid)
    if t is None:  # exited under an open file
        raise MachineError(errno.ESRCH, f"process {tid} is gone")
    return t


def _read_stat(req: Request, tid: int) -> bytes:
    # proc_tgid_stat() sums the thread group's times; proc_tid_stat() (task/TID/stat) the thread's
    return procfiles.pid_stat(req.machine, _task(req, tid), whole=not req.per_thread)


def _read_statm(req: Request, tid: int) -> bytes:
    return procfiles.pid_statm(req.machine, _task(req, tid))


def _read_status(req: Request, tid: int) -> bytes:
    return procfiles.pid_status(req.machine, _task(req, tid))


def _read_cmdline(req: Request, tid: int) -> bytes:
    return procfiles.pid_cmdline(req.machine, _task(req, tid))


def _read_comm(req: Request, tid: int) -> bytes:
    return procfiles.pid_comm(req.machine, _task(req, tid))


def _write_comm(req: Request, tid: int, data: bytes) -> int:
    """fs/proc/base.c comm_write(): only a thread of the same process may rename it, else EINVAL.

    No writer is ever a thread of a simulated process (they are real processes outside
    the model), so a write is EINVAL, or ESRCH once the process is gone.
    """
    _task(req, tid)
    raise MachineError(errno.EINVAL, "comm can be written only by the process itself")


def _companion(name: str, mode: int, read: ReadHandler, write: WriteHandler | None = None) -> Entry:
    return Entry(name, mode, read, write, companion=True)


#: tgid_base_stuff[]/tid_base_stuff[] (the ``task`` directory is added for pids), in the kernel's order:
#: the companion files procps reads, then the OOM files.
PID_ENTRIES: tuple[Entry, ...] = (
    _companion("status", 0o444, _read_status),
    _companion("comm", 0o644, _read_comm, _write_comm),
    _companion("cmdline", 0o444, _read_cmdline),
    _companion("stat", 0o444, _read_stat),
    _companion("statm", 0o444, _read_statm),
    Entry("oom_adj", 0o644, _read_oom_adj, _write_oom_adj, lambda era: "oom_adj" in era.pid_files),
    Entry("oom_score", 0o444, _read_oom_score, None, lambda era: "oom_score" in era.pid_files),
    Entry("oom_score_adj", 0o644, _read_oom_score_adj, _write_oom_score_adj,
          lambda era: "oom_score_adj" in era.pid_files),
)


# ------------------------------------------------------------- mount root

def _write_sysrq(req: Request, _tid: int, data: bytes) -> int:
    """drivers/char/sysrq.c write_sysrq_trigger(): the first byte is the key."""
    m = req.machine
    if data[:1] == b"f":
        # SysRq-f: moom_callback() -> out_of_memory(GFP_KERNEL, order 0)
        m.printk(f"{m.era.sysrq_prefix}Manual OOM execution")
        m.out_of_memory(req.caller(), sysrq=True)
    elif data[:1] and data[:1] not in b"\n":
        m.printk(f"{m.era.sysrq_prefix}HELP : fakeproc simulates only 'f' (manual OOM), not {data[:1]!r}")
    return len(data)


def _read_dmesg(req: Request, _tid: int) -> bytes:
    return req.machine.log.text().encode()


def _read_control(req: Request, _tid: int) -> bytes:
    """The reply to this descriptor's last command, read from where that write left
    the file position (so ``echo CMD >&3; cat <&3`` works); on a descriptor
    that wrote nothing, the last reply given to anyone."""
    h = req.handle
    if h is not None and h.reply is not None:
        return h.reply[max(0, req.offset - h.reply_base):]
    return req.state.last_reply[req.offset:]


def _write_control(req: Request, _tid: int, data: bytes) -> int:
    if req.state.control is None:
        raise MachineError(errno.EINVAL, "no control surface")
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise MachineError(errno.EINVAL, "commands are UTF-8 text") from None
    reply, err = req.state.control(req, text)
    req.state.last_reply = reply
    if req.handle is not None:
        req.handle.reply = reply
        # a failed write leaves the file position where it was: the reply starts there
        req.handle.reply_base = req.offset + (0 if err else len(data))
    if err:
        raise MachineError(err, reply.decode(errors="replace").strip())
    return len(data)


def _read_meminfo(req: Request, _tid: int) -> bytes:
    return procfiles.meminfo(req.machine)


def _read_proc_stat(req: Request, _tid: int) -> bytes:
    return procfiles.stat(req.machine, req.state.btime)


def _read_uptime(req: Request, _tid: int) -> bytes:
    return procfiles.uptime(req.machine)


def _read_loadavg(req: Request, _tid: int) -> bytes:
    return procfiles.loadavg(req.machine)


def _read_cpuinfo(req: Request, _tid: int) -> bytes:
    return procfiles.cpuinfo(req.machine)


#: Files at the root of the mount, as (directory, entry): "" is the root itself.
ROOT_ENTRIES: tuple[tuple[str, Entry], ...] = (
    ("", _companion("meminfo", 0o444, _read_meminfo)),
    ("", _companion("stat", 0o444, _read_proc_stat)),
    ("", _companion("uptime", 0o444, _read_uptime)),
    ("", _companion("loadavg", 0o444, _read_loadavg)),
    ("", _companion("cpuinfo", 0o444, _read_cpuinfo)),  # procps's stat library needs it (see procfiles)
    ("", Entry("sysrq-trigger", 0o200, None, _write_sysrq)),
    ("fakeproc", Entry("control", 0o600, _read_control, _write_control, positioned=True)),
    ("fakeproc", Entry("dmesg", 0o444, _read_dmesg, None)),
)
ROOT_DIRS = ("fakeproc",)


#: Every per-pid name the model may own in run mode (the OOM rows): the real file of that name is never
#: passed through.  The companion rows are not among them: run mode serves the host's stat, status, ...
MODEL_PID_NAMES = frozenset(e.name for e in PID_ENTRIES if not e.companion)


_PID_ENTRIES_BY_ERA: dict[int, tuple[Era, dict[str, Entry]]] = {}


def pid_entries(era: Era) -> dict[str, Entry]:
    """The files of a pid (and tid) directory under ``era``, by name: the same dict every time (read only)."""
    hit = _PID_ENTRIES_BY_ERA.get(id(era))
    if hit is None or hit[0] is not era:
        hit = _PID_ENTRIES_BY_ERA[id(era)] = (era, {e.name: e for e in PID_ENTRIES if e.shown(era)})
    return hit[1]
