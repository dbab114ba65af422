"""Run mode: the host's /proc behind the model, passed through with the caller's credentials.

In ``fakeproc run`` (and for the shell's own processes in ``fakeproc shell``) every name the model does
not own is the host's: ``/proc/meminfo``, ``/proc/PID/status``, ``/proc/sys/...``.  A node of this
kind carries the host path (``Node.real``); looking it up, listing, reading, writing and following
it are done here, each with the caller's credentials (:mod:`fakeproc.fs.creds`), so the host kernel
decides as it would for the caller: modes and owners, ptrace-guarded files, ``hidepid``,
capabilities a sysctl asks for.

A real process's directory (``/PID``, ``/PID/task/TID``) is the host's with the model's OOM files in
place of the host's (``tables.MODEL_PID_NAMES``; an era without ``oom_score_adj`` has none there):
those names are the model's nodes, for the model's task of that real process (the mirror brings it
in when it is first named).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from .creds import acting_as, caller_credentials
from .tables import MODEL_PID_NAMES, PID, TID
from .tree import Attr, FsError, Handle, Node, Reality, Request, Row, Version, name_to_int

#: What opening a real file passes on: the access mode and the flags that change reads and writes.
OPEN_FLAGS = os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_DIRECTORY | os.O_NOFOLLOW

#: The row of every passed-through node (its mode is the host's, read at each stat)
REAL = Row("(host)", stat.S_IFREG)


class Passthrough:
    def __init__(self, reality: Reality, version: Version) -> None:
        self.reality = reality
        self.real_proc = reality.real_proc
        self.version = version  # the era's kernel: which OOM files a process has

    def _as_caller(self, req: Request) -> Any:
        return acting_as(caller_credentials(req.uid, req.gid, req.tid, self.real_proc))

    def _real(self, rel: str) -> Node:
        return Node(REAL, real=f"{self.real_proc}/{rel}")

    def _parts(self, node: Node) -> list[str]:
        assert node.real is not None
        return node.real[len(self.real_proc) + 1:].split("/")

    # ------------------------------------------------------------ names

    def lookup_root(self, name: str, req: Request) -> Node:
        """A name of the root the model does not own: a real process (one this mount shows, and the
        caller may see: ``hidepid``), or any other host entry."""
        pid = name_to_int(name)
        if pid is not None:
            if not self.reality.visible(pid):
                raise FsError(errno.ENOENT)
            with self._as_caller(req):
                os.stat(f"{self.real_proc}/{pid}")
        return self._real(name)

    def lookup(self, parent: Node, name: str, req: Request) -> Node:
        parts = self._parts(parent)
        pid_dir = len(parts) == 1 and name_to_int(parts[0]) is not None
        tid_dir = len(parts) == 3 and parts[1] == "task" and name_to_int(parts[0]) is not None and (
            name_to_int(parts[2]) is not None)
        if (pid_dir or tid_dir) and name in MODEL_PID_NAMES:
            return self._model_file(parts, name, tid_dir)
        return self._real("/".join([*parts, name]))

    def _model_file(self, parts: list[str], name: str, thread: bool) -> Node:
        """``/PID/NAME`` or ``/PID/task/TID/NAME`` of a real process: the model's file for its task."""
        row = (TID if thread else PID).row(name)
        if row is None or not row.exists_in(self.version):
            raise FsError(errno.ENOENT)  # not a file of this era
        owner = self.reality.lookup(int(parts[0]))
        task = owner if not thread else self.reality.lookup(int(parts[2]))
        if owner is None or task is None or task.tgid != owner.tgid:
            raise FsError(errno.ENOENT)  # no such live process or thread (or the model killed it)
        return Node(row, task, owner)

    def readdir(self, node: Node, req: Request) -> list[tuple[str, int]]:
        """A host directory; a process's or a thread's shows the era's OOM files, not the host's."""
        assert node.real is not None
        with self._as_caller(req):
            names = os.listdir(node.real)
        parts = self._parts(node)
        if name_to_int(parts[0]) is not None and (len(parts) == 1 or (len(parts) == 3 and parts[1] == "task")):
            table = TID if len(parts) == 3 else PID
            names = [n for n in names if n not in MODEL_PID_NAMES] + [
                r.name for r in table.rows if r.name in MODEL_PID_NAMES and r.exists_in(self.version)]
        return [(".", stat.S_IFDIR), ("..", stat.S_IFDIR)] + [(n, 0) for n in names]

    def root_listing(self, model: list[tuple[str, int]], req: Request) -> list[tuple[str, int]]:
        """The root: the model's entries, then the host's other names (in shell mode, not its pids: the
        scenario's processes and the shell's own are listed by the model)."""
        with self._as_caller(req):
            host = os.listdir(self.real_proc)
        have = {n for n, _ in model}
        simulated = self.reality.simulated_machine
        return model + [(n, 0) for n in host if n not in have and not (simulated and name_to_int(n) is not None)]

    def readlink(self, node: Node, req: Request) -> str:
        assert node.real is not None
        with self._as_caller(req):
            return os.readlink(node.real)

    # ------------------------------------------------------------ attributes

    def getattr(self, node: Node, req: Request, handle: Handle | None) -> Attr:
        assert node.real is not None
        with self._as_caller(req):
            st = os.fstat(handle.fd) if handle is not None and handle.fd >= 0 else os.lstat(node.real)
        return Attr(st.st_mode, st.st_nlink, st.st_uid, st.st_gid, st.st_size, st.st_atime_ns, st.st_mtime_ns,
                    st.st_ctime_ns, False)

    def setattr(self, node: Node, req: Request, mode: int | None, uid: int | None, gid: int | None,
                size: int | None, times: bool, handle: Handle | None) -> Attr:
        """No chmod (EPERM); procfs files have no size to set (O_TRUNC is harmless), and the rest is kept
        by nobody."""
        attr = self.getattr(node, req, handle)
        if mode is not None:
            raise FsError(errno.EPERM)
        return attr

    # ------------------------------------------------------------ I/O

    def open(self, node: Node, flags: int, req: Request) -> Handle:
        assert node.real is not None
        with self._as_caller(req):
            fd = os.open(node.real, flags & OPEN_FLAGS)
        return Handle(node, fd)

    def read(self, handle: Handle, size: int, offset: int, req: Request) -> bytes:
        with self._as_caller(req):
            return os.pread(handle.fd, size, offset)

    def write(self, handle: Handle, data: bytes, offset: int, req: Request) -> int:
        with self._as_caller(req):
            return os.pwrite(handle.fd, data, offset)

    def release(self, handle: Handle) -> None:
        if handle.fd >= 0:
            os.close(handle.fd)
            handle.fd = -1
