"""The vocabulary of the filesystem: rows and tables, nodes, requests, errors.

Rows and tables are the shape of a directory, declared the way fs/proc/base.c declares it: base.c
describes each directory of a process as an array of ``pid_entry`` rows (``DIR("task", ...)``,
``REG("oom_adj", S_IRUGO|S_IWUSR, ...)``, ``LNK("exe", ...)``): a name, a mode and the operations
behind it.  A :class:`Table` here is such an array, and a :class:`Row` one entry of it, with the
kernel versions in which the entry exists given as data (``since``/``until``), so that one table
serves every era.  A table may also list entries that come and go with the machine (the pids of the
root, the tids of ``task/``): its ``dynamic`` part.

A :class:`Node` is what an inode is in procfs: a row seen for one task, e.g. the ``oom_adj`` row of
process 500, or the ``task/603`` directory of process 600.  It holds the task itself, not its number,
as procfs's inode holds a ``struct pid``: a node of a task that exited answers ``ENOENT`` (``ESRCH``
for an open file), even if its pid is reused.  Its identity (:attr:`Node.key`) is stable for as long as
the node exists, which is what a FUSE backend maps its node ids to.

Handlers take the :class:`Request` and the node and raise :class:`~fakeproc.machine.MachineError` (or
:class:`FsError`) with the kernel's errno; :func:`errno_of` turns whatever a call raised into the errno
to answer with, in one place (as psutil's ``wrap_exceptions`` does).
"""

from __future__ import annotations

import errno
import itertools
import logging
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from ..machine import Caller, Machine, MachineError, Task
from .privilege import Privilege

log = logging.getLogger(__name__)

ReadHandler = Callable[["Request", "Node"], bytes]
WriteHandler = Callable[["Request", "Node", bytes], int]
LinkHandler = Callable[["Request", "Node"], str]
ReleaseHandler = Callable[["Handle"], None]
#: A kernel version as numbers: (2, 6, 32), (6, 18).  2.6.31-rc1..rc6 are (2, 6, 31, -1): before 2.6.31.
Version = tuple[int, ...]


_row_ids = itertools.count()


class Dynamic(Protocol):
    """The entries of a directory that come and go with the machine (pids, tids)."""

    def lookup(self, req: Request, parent: Node, name: str) -> Node | None: ...

    def names(self, req: Request, parent: Node) -> Iterable[str]: ...


@dataclass(eq=False, slots=True)
class Row:
    """One entry of a directory: a directory (``table``), a regular file (``read``/``write``) or a link.

    ``read``/``write`` of None: the kernel's file_operations lacks that method (EINVAL).  ``since`` and
    ``until``: the first kernel version that has the entry and the first that no longer has it.
    ``settable``: which attribute changes it takes without EPERM (and keeps nothing of: the owner is
    the task's, the times the mount's).
    ``positioned``: the read handler applies the file position itself (``req.offset``) instead of
    having its text sliced.  ``companion``: a file of the simulated machine only (``stat``, ``meminfo``,
    ...): run mode serves the host's file of that name instead.  ``reality``: only where real
    processes stand behind the machine (run and shell mode: ``self``, ``thread-self``).  ``host``: a
    directory that, where real processes stand behind the machine, lays the model's entries over the
    host's directory of that path (``sys``, ``sys/vm``: the OOM sysctls are the model's, the rest of
    ``/proc/sys`` the host's).
    """

    name: str
    mode: int  # with the file type bits
    table: Table | None = None
    read: ReadHandler | None = None
    write: WriteHandler | None = None
    link: LinkHandler | None = None
    release: ReleaseHandler | None = None  # close() of an open file (what it kept per open)
    since: Version | None = None
    until: Version | None = None
    positioned: bool = False
    companion: bool = False
    reality: bool = False
    host: str | None = None
    #: what proc_setattr() keeps quiet about for this entry (the rest is EPERM): "owner" (chown), "times"
    settable: frozenset[str] = frozenset({"owner", "times"})
    id: int = field(default=-1)  # a number of its own (node identities use it)

    def __post_init__(self) -> None:
        self.id = next(_row_ids)

    @property
    def is_dir(self) -> bool:
        return self.table is not None

    def exists_in(self, version: Version) -> bool:
        v = _padded(version)
        return (self.since is None or v >= _padded(self.since)) and (self.until is None or v < _padded(self.until))


def DIR(name: str, mode: int, table: Table, **kw: Any) -> Row:  # noqa: N802 - base.c's spelling
    return Row(name, stat.S_IFDIR | mode, table=table, **kw)


def REG(name: str, mode: int, read: ReadHandler | None = None, write: WriteHandler | None = None,  # noqa: N802
        **kw: Any) -> Row:
    return Row(name, stat.S_IFREG | mode, read=read, write=write, **kw)


def LNK(name: str, link: LinkHandler, **kw: Any) -> Row:  # noqa: N802
    return Row(name, stat.S_IFLNK | 0o777, link=link, **kw)


def _padded(v: Version) -> Version:
    """(2, 6, 31) as (2, 6, 31, 0): then 2.6.31-rc's (2, 6, 31, -1) sorts before it."""
    return v + (0,) * (4 - len(v))


class Table:
    """The entries of one kind of directory, in the order a listing shows them."""

    __slots__ = ("name", "rows", "dynamic", "_by_name")

    def __init__(self, name: str, rows: Iterable[Row] = (), dynamic: Dynamic | None = None) -> None:
        self.name = name
        self.rows: list[Row] = []
        self.dynamic = dynamic
        self._by_name: dict[str, Row] = {}
        for r in rows:
            self.add(r)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        self._by_name[row.name] = row
        return row

    def remove(self, row: Row) -> None:
        self.rows.remove(row)
        del self._by_name[row.name]

    def extend(self, rows: Iterable[Row]) -> None:
        for r in rows:
            self.add(r)

    def row(self, name: str) -> Row | None:
        return self._by_name.get(name)

    def __repr__(self) -> str:
        return f"<Table {self.name}>"


class FsError(Exception):
    """A call the filesystem refuses: its errno."""

    def __init__(self, err: int, message: str = "") -> None:
        super().__init__(message or errno.errorcode.get(err, str(err)))
        self.errno = err


def errno_of(e: BaseException, what: str = "") -> int:
    """The errno a FUSE backend answers for an exception a call raised (the one place they are mapped)."""
    if isinstance(e, (FsError, MachineError)):
        return e.errno
    if isinstance(e, OSError) and e.errno:  # run mode: the host /proc's own answer, passed on
        return e.errno
    log.error("bug in fakeproc while serving %s; answering EIO", what, exc_info=e)
    return errno.EIO


def name_to_int(name: str) -> int | None:
    """fs/proc/util.c name_to_int(): ASCII decimal digits, no leading zero, below UINT_MAX; else None.

    (Python's ``str.isdigit()`` and ``int()`` also take '\u0661' or '\u00b2': procfs does not.)
    """
    if not name.isascii() or not name.isdigit() or (len(name) > 1 and name[0] == "0"):
        return None
    v = int(name)
    return v if v < 0xFFFFFFFF else None


class Node:
    """A row seen for a task (``task``: the task the row is about; ``view``: the task of the pid directory
    it was reached through), or, in run mode, a path of the host's /proc (``real``)."""

    __slots__ = ("row", "task", "view", "real")

    def __init__(self, row: Row, task: Task | None = None, view: Task | None = None, real: str | None = None) -> None:
        self.row = row
        self.task = task
        self.view = view
        self.real = real

    @property
    def key(self) -> tuple[int, int, int, str | None]:
        """The node's identity: equal keys are the same inode."""
        return self.row.id, id(self.task), id(self.view), self.real

    def __repr__(self) -> str:
        who = f" {self.task.tid}" if self.task is not None else ""
        return f"<Node {self.row.name}{who}{' ' + self.real if self.real else ''}>"


class Attr(NamedTuple):
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    atime_ns: int
    mtime_ns: int
    ctime_ns: int
    #: the name and these attributes change only when the machine says so (a task released, a new owner:
    #: ``Machine.entry_watchers``): a backend may let the kernel keep them
    stable: bool


class Handle:
    """An open file: the node it was opened on, and what the file keeps per open (the control file's
    replies, the log's text as it was at open, run mode's host descriptor)."""

    __slots__ = ("node", "fd", "session")

    def __init__(self, node: Node, fd: int = -1) -> None:
        self.node = node
        self.fd = fd  # run mode: the host's file, for a passed-through open
        self.session: Any = None  # the control file's per-open state (fakeproc.control)


class Reality(Protocol):
    """Run mode: the host's real processes behind the model (``fakeproc.run.mirror.Mirror``)."""

    real_proc: str
    #: shell mode: the machine is simulated; the real processes are only the shell's own
    simulated_machine: bool

    def lookup(self, tid: int) -> Task | None: ...  # the model's Task of a real thread, entered now

    def before_access(self, tid: int, writing: bool) -> None: ...

    def self_link(self, tid: int, thread: bool) -> str: ...

    def simulated(self, pid: int) -> bool: ...  # a process of the scenario, not a real one

    def visible(self, pid: int) -> bool: ...  # a real pid this mount shows

    def extra_pids(self) -> list[int]: ...  # real pids the root of a simulated machine lists too


class Fallback(Protocol):
    """Run mode's passthrough of the host's /proc (fakeproc.fs.passthrough): the nodes with a host path."""

    def lookup_root(self, name: str, req: Request) -> Node: ...
    def lookup_host(self, rel: str, req: Request) -> Node: ...
    def overlay_listing(self, rel: str, model: list[tuple[str, int]], req: Request) -> list[tuple[str, int]]: ...
    def lookup(self, parent: Node, name: str, req: Request) -> Node: ...
    def readdir(self, node: Node, req: Request) -> list[tuple[str, int]]: ...
    def root_listing(self, model: list[tuple[str, int]], req: Request) -> list[tuple[str, int]]: ...
    def readlink(self, node: Node, req: Request) -> str: ...
    def getattr(self, node: Node, req: Request, handle: Handle | None) -> Attr: ...
    def setattr(self, node: Node, req: Request, mode: int | None, uid: int | None, gid: int | None,
                size: int | None, times: bool, handle: Handle | None) -> Attr: ...
    def open(self, node: Node, flags: int, req: Request) -> Handle: ...
    def read(self, handle: Handle, size: int, offset: int, req: Request) -> bytes: ...
    def write(self, handle: Handle, data: bytes, offset: int, req: Request) -> int: ...
    def release(self, handle: Handle) -> None: ...
    def caller_waits(self, handle: Handle) -> bool: ...
    def wait_readable(self, handle: Handle, wake: int) -> bool: ...


class ControlSurface(Protocol):
    """The control file's protocol (fakeproc.control): lines in, replies out, per open file; ``query``: the
    query file's, questions only."""

    def write(self, req: Request, data: bytes, query: bool = False) -> int: ...

    def read(self, req: Request, size: int, query: bool = False) -> bytes: ...


class FsState:
    """What every handler may need: the machine, the privilege policy, the control surface."""

    __slots__ = ("machine", "privilege", "owner_uid", "owner_gid", "control", "reality", "btime", "mtime_ns")

    def __init__(self, machine: Machine, privilege: Privilege, owner_uid: int, owner_gid: int,
                 control: ControlSurface | None = None, reality: Reality | None = None) -> None:
        self.machine = machine
        self.privilege = privilege
        self.owner_uid = owner_uid
        self.owner_gid = owner_gid
        self.control = control
        self.reality = reality
        # /proc/stat btime: the wall-clock second the simulated machine booted, fixed when it is
        # mounted (its uptime then moves only with its own clock)
        self.btime = int(time.time() - machine.uptime)
        self.mtime_ns = time.time_ns()  # every file's times: the mount's


class Request:
    """One call: who asks (uid, gid, thread id from the FUSE request header) and the shared state."""

    __slots__ = ("state", "uid", "gid", "tid", "handle", "offset", "size")

    def __init__(self, state: FsState, uid: int, gid: int, tid: int, handle: Handle | None = None,
                 offset: int = 0) -> None:
        self.state = state
        self.uid = uid
        self.gid = gid
        self.tid = tid
        self.handle = handle  # the open file, if any
        self.offset = offset  # file position of this read or write
        self.size = 0  # bytes asked for by this read

    @property
    def machine(self) -> Machine:
        return self.state.machine

    def privileged(self) -> bool:
        """capable(CAP_SYS_RESOURCE) for the writer, per ``--privilege``."""
        return self.state.privilege.has_sys_resource(self.uid, self.tid)

    def caller(self) -> Caller:
        """``current`` for a report header: the model's task if the caller is one (run mode mirrors the
        real callers; a mount's callers are outside the machine, whatever their ids)."""
        m = self.machine
        reality = self.state.reality
        t = m.tasks.get(self.tid) if reality is not None and not reality.simulated(self.tid) else None
        if t is not None:
            return m.caller_of(t)
        return Caller(self.tid, self.uid, real_comm(self.tid))


def real_comm(tid: int, proc: str = "/proc") -> str:
    try:
        with open(f"{proc}/{tid}/comm", "rb") as f:
            return f.read().decode("utf-8", "replace").strip() or "?"
    except OSError:
        return "?"
