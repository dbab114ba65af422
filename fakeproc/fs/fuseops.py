"""The fusepy adapter: paths to table entries, errors to errnos, one lock.

No OOM logic lives here.  Every callback runs under ``self._lock`` (the
model's one lock), and every unexpected exception is logged with its
traceback and answered with EIO, so that a bug never passes for a kernel's
EINVAL.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
import time
from typing import Any

from fuse import FuseOSError, fuse_get_context

from ..machine import MachineError, Task
from .entries import ROOT_DIRS, ROOT_ENTRIES, Entry, FsState, Request, pid_entries

log = logging.getLogger(__name__)

DIR_MODE = stat.S_IFDIR | 0o555


class Node:
    """What a path names.  ``kind``: root, dir (fakeproc/), pid, task, tid, file, rootfile."""

    __slots__ = ("kind", "task", "entry")

    def __init__(self, kind: str, task: Task | None = None, entry: Entry | None = None) -> None:
        self.kind = kind
        self.task = task
        self.entry = entry


class Handle:
    """An open file: the node it was opened on and, for the control file, the reply."""

    __slots__ = ("node", "tid", "reply", "reply_base")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.tid = node.task.tid if node.task is not None else 0
        self.reply: bytes | None = None
        self.reply_base = 0  # file position at which the reply starts


class FakeProcFS:
    """fusepy Operations for one simulated machine.

    fusepy registers every attribute named like a libfuse callback (even
    ``lock``!), so everything that is not a callback here starts with ``_``
    or has a name libfuse does not use.  Only the callbacks defined here are
    registered with libfuse; in
    particular there is no ``flush``, so the kernel stops sending FLUSH after
    the first ENOSYS (nothing here needs it).
    """

    use_ns = True  # fusepy: utimens() times in nanoseconds

    def __init__(self, state: FsState, lock: Any) -> None:
        self.state = state
        self._lock = lock
        self._trace = log.isEnabledFor(logging.DEBUG)  # --verbose: log every request
        self.handles: dict[int, Handle] = {}
        self._fh = itertools.count(1)
        self.mtime_ns = time.time_ns()
        self.root_files = {(d, e.name): e for d, e in ROOT_ENTRIES}

    # fusepy calls operations(op, *args): the single entry point.
    def __call__(self, op: str, *args: Any) -> Any:
        if self._trace:
            log.debug("request %s %r", op, args[:1])
        with self._lock:
            try:
                return getattr(self, op)(*args)
            except FuseOSError:
                raise
            except MachineError as e:
                raise FuseOSError(e.errno) from None
            except Exception:
                log.exception("bug in fakeproc while serving %s%r; answering EIO", op, args[:1])
                raise FuseOSError(errno.EIO) from None

    def _request(self, handle: Handle | None = None, offset: int = 0) -> Request:
        uid, gid, tid = fuse_get_context()
        return Request(self.state, uid, gid, tid, handle, offset)

    # ------------------------------------------------------------ resolution

    def resolve(self, path: str) -> Node:
        parts = [p for p in path.split("/") if p]
        m = self.state.machine
        if not parts:
            return Node("root")
        head = parts[0]
        if head.isdigit() and head[0] != "0":
            task = m.tasks.get(int(head))
            if task is None:
                raise FuseOSError(errno.ENOENT)
            return self._resolve_pid(task, parts[1:])
        if len(parts) == 1 and head in ROOT_DIRS:
            return Node("dir", entry=Entry(head, 0o555))
        entry = self.root_files.get(("/".join(parts[:-1]), parts[-1]))
        if entry is None:
            raise FuseOSError(errno.ENOENT)
        return Node("rootfile", entry=entry)

    def _resolve_pid(self, task: Task, rest: list[str]) -> Node:
        if not rest:
            return Node("pid", task)
        entries = pid_entries(self.state.machine.era)
        if rest[0] == "task":
            if len(rest) == 1:
                return Node("task", task)
            if not rest[1].isdigit():
                raise FuseOSError(errno.ENOENT)
            th = self.state.machine.tasks.get(int(rest[1]))
            if th is None or th.tgid != task.tgid:
                raise FuseOSError(errno.ENOENT)
            if len(rest) == 2:
                return Node("tid", th)
            if len(rest) == 3 and rest[2] in entries:
                return Node("file", th, entries[rest[2]])
            raise FuseOSError(errno.ENOENT)
        if len(rest) == 1 and rest[0] in entries:
            return Node("file", task, entries[rest[0]])
        raise FuseOSError(errno.ENOENT)

    # ------------------------------------------------------------- metadata

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        node = self.resolve(path)
        t = self.mtime_ns
        st: dict[str, Any] = {"st_atime": t, "st_mtime": t, "st_ctime": t, "st_size": 0}
        if node.task is not None:
            st["st_uid"], st["st_gid"] = node.task.uid, node.task.gid
        else:
            st["st_uid"], st["st_gid"] = self.state.owner_uid, self.state.owner_gid
        if node.kind in ("file", "rootfile"):
            st["st_mode"] = stat.S_IFREG | node.entry.mode
            st["st_nlink"] = 1
        else:
            st["st_mode"] = DIR_MODE
            st["st_nlink"] = 2
        return st

    def readdir(self, path: str, fh: int) -> list[str]:
        node = self.resolve(path)
        m = self.state.machine
        names = [".", ".."]
        if node.kind == "root":
            names += [d for d in ROOT_DIRS] + [e.name for d, e in ROOT_ENTRIES if d == ""]
            names += [str(pid) for pid in m.processes]
        elif node.kind == "dir":
            names += [e.name for d, e in ROOT_ENTRIES if d == node.entry.name]
        elif node.kind == "pid":
            names += ["task"] + list(pid_entries(m.era))
        elif node.kind == "task":
            names += [str(th.tid) for th in node.task.signal.threads]
        elif node.kind == "tid":
            names += list(pid_entries(m.era))
        else:
            raise FuseOSError(errno.ENOTDIR)
        return names

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    # ------------------------------------------------------------------ I/O

    def open(self, path: str, flags: int) -> int:
        node = self.resolve(path)
        if node.entry is None or node.kind not in ("file", "rootfile"):
            raise FuseOSError(errno.EISDIR)
        fh = next(self._fh)
        self.handles[fh] = Handle(node)
        return fh

    def _handle(self, path: str, fh: int) -> Handle:
        h = self.handles.get(fh)
        if h is None:  # libfuse may call without an open (e.g. truncate by path)
            h = Handle(self.resolve(path))
        return h

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        h = self._handle(path, fh)
        entry = h.node.entry
        if entry.read is None:
            raise FuseOSError(errno.EINVAL)
        data = entry.read(self._request(h, offset), h.tid)
        if entry.positioned:
            return data[:size]
        return data[offset:offset + size]

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        h = self._handle(path, fh)
        entry = h.node.entry
        if entry.write is None:
            raise FuseOSError(errno.EINVAL)
        return entry.write(self._request(h, offset), h.tid, bytes(data))

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        # O_TRUNC on open arrives here; procfs's setattr ignores the size.
        node = self.resolve(path)
        if node.kind not in ("file", "rootfile"):
            raise FuseOSError(errno.EISDIR)
        return 0

    def release(self, path: str, fh: int) -> int:
        self.handles.pop(fh, None)
        return 0

    def utimens(self, path: str, times: Any = None) -> int:
        self.resolve(path)
        return 0

    # ----------------------------------------- what procfs refuses, and how

    def chmod(self, path: str, mode: int) -> int:
        self.resolve(path)
        raise FuseOSError(errno.EPERM)

    def chown(self, path: str, uid: int, gid: int) -> int:
        self.resolve(path)
        raise FuseOSError(errno.EPERM)

    def unlink(self, path: str) -> int:
        self.resolve(path)
        raise FuseOSError(errno.EPERM)

    def rmdir(self, path: str) -> int:
        self.resolve(path)
        raise FuseOSError(errno.EPERM)

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        raise FuseOSError(errno.ENOENT)

    def mkdir(self, path: str, mode: int) -> int:
        raise FuseOSError(errno.ENOENT)

    def symlink(self, target: str, source: str) -> int:
        raise FuseOSError(errno.ENOENT)

    def rename(self, old: str, new: str) -> int:
        raise FuseOSError(errno.ENOENT)

    def link(self, target: str, source: str) -> int:
        raise FuseOSError(errno.ENOENT)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise FuseOSError(errno.ENOENT)


def fuse_options(foreground: bool = True) -> dict[str, Any]:
    """Mount options (see README, Security): why each one is here.

    - direct_io: every read/write reaches the daemon, sizes read 0 as in
      procfs, and short write counts reach the caller;
    - allow_other + default_permissions: other users get in, and the kernel
      checks the mode and owner of each file as procfs would;
    - entry/attr timeouts 0: a pid that exits vanishes at once, and a write
      followed by a read never sees stale attributes;
    - nonempty: the default mount point holds a .gitkeep (libfuse 2 refuses
      non-empty directories otherwise).
    """
    opts: dict[str, Any] = {
        "foreground": foreground,
        "nothreads": True,
        "direct_io": True,
        "default_permissions": True,
        "fsname": "fakeproc",
        "subtype": "fakeproc",
        "entry_timeout": 0,
        "attr_timeout": 0,
        "negative_timeout": 0,
        "nonempty": True,
    }
    if os.getuid() == 0:
        opts["allow_other"] = True
    return opts
