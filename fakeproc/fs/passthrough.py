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
import re
import select
import stat
from collections.abc import Callable
from typing import Any, TypeVar

from .creds import acting_as, caller_credentials
from .tables import MODEL_PID_NAMES, PID, TID
from .tree import Attr, FsError, Handle, Node, Reality, Request, Row, Version, name_to_int

T = TypeVar("T")

#: What opening a real file passes on: the access mode and the flags that change reads and writes.
OPEN_FLAGS = os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_DIRECTORY | os.O_NOFOLLOW

#: The row of every passed-through node (its mode is the host's, read at each stat)
REAL = Row("(host)", stat.S_IFREG)


class HostFile:
    """What an open host file keeps: whether its caller asked not to wait, whether it has a position, and
    whether it is the caller's own ``stat``/``status`` (see running())."""

    __slots__ = ("nonblock", "stream", "own_state", "ppid")

    def __init__(self, nonblock: bool, own_state: bool = False, ppid: int | None = None) -> None:
        self.nonblock = nonblock
        self.stream = False
        self.own_state = own_state
        self.ppid = ppid  # shell mode: the parent the machine gives the process, where it differs from the host's


#: /proc/PID/stat|status or /proc/PID/task/TID/stat|status: the thread whose state the file shows
_STATE_FILE = re.compile(r"/(\d+)/(?:task/(\d+)/)?(stat|status)$")


def with_ppid(data: bytes, name: str, ppid: int) -> bytes:
    """``stat``'s fourth field or ``status``'s ``PPid:`` line, set to ``ppid``."""
    if name == "status":
        return re.sub(rb"^PPid:\t\d+$", b"PPid:\t%d" % ppid, data, count=1, flags=re.M)
    close = data.rfind(b")")
    if close < 0:
        return data
    fields = data[close + 2:].split(b" ", 2)
    if len(fields) < 3:
        return data
    return data[:close + 2] + b" ".join([fields[0], b"%d" % ppid, fields[2]])


def running(data: bytes, name: str) -> bytes:
    """A thread reading its own ``stat`` or ``status`` through the fake is running; the host, asked by the
    daemon meanwhile, sees it asleep in the FUSE read.  fs/proc/array.c then shows ``R (running)``: the
    state the thread would have read itself."""
    if name == "status":
        return data.replace(b"State:\tS (sleeping)\n", b"State:\tR (running)\n", 1)
    close = data.rfind(b")")  # comm may hold spaces and parentheses: the state follows the last ")"
    if close >= 0 and data[close + 1:close + 4] == b" S ":
        return data[:close + 2] + b"R" + data[close + 3:]
    return data


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

    def lookup_host(self, rel: str, req: Request) -> Node:
        """A host entry below a model directory laid over the host's (``sys/kernel`` under ``sys``)."""
        with self._as_caller(req):
            os.lstat(f"{self.real_proc}/{rel}")
        return self._real(rel)

    def overlay_listing(self, rel: str, model: list[tuple[str, int]], req: Request) -> list[tuple[str, int]]:
        """A model directory laid over the host's: the model's entries, then the host's other names."""
        with self._as_caller(req):
            host = os.listdir(f"{self.real_proc}/{rel}")
        have = {n for n, _ in model}
        return model + [(n, 0) for n in host if n not in have]

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

    # A host file is opened non-blocking, whatever the caller asked: a read that would wait (/proc/kmsg
    # with nothing new) then says so at once (BlockingIOError), and the backend waits for it elsewhere,
    # interruptibly (wait_readable()), never in the loop that serves everyone else.  The caller's own
    # O_NONBLOCK is remembered (Handle.session): it gets EAGAIN, as from the host.  A file that has no
    # position (a stream: kmsg, uid_map's writers...) is read and written without one.

    def open(self, node: Node, flags: int, req: Request) -> Handle:
        assert node.real is not None
        with self._as_caller(req):
            fd = os.open(node.real, (flags & OPEN_FLAGS) | os.O_NONBLOCK)
        h = Handle(node, fd)
        m = _STATE_FILE.search(node.real)
        own = m is not None and int(m.group(2) or m.group(1)) == req.tid
        ppid = None
        if m is not None and self.reality.simulated_machine:
            # shell mode: a process of the shell whose real parent is outside the machine hangs off init there
            # (the mirror's adopter): ps --forest and pstree then draw the tree fakeproc ps shows
            t = self.reality.lookup(int(m.group(2) or m.group(1)))  # entered now if it was not yet
            parent = t.parent if t is not None else None
            if parent is not None:
                ppid = parent.tgid
        h.session = HostFile(bool(flags & os.O_NONBLOCK), own, ppid)
        return h

    def read(self, handle: Handle, size: int, offset: int, req: Request) -> bytes:
        """One read; BlockingIOError where the host would make the caller wait (see wait_readable())."""
        fd = handle.fd
        data = self._io(handle, req, lambda: os.pread(fd, size, offset), lambda: os.read(fd, size))
        f: HostFile = handle.session
        if (f.own_state or f.ppid is not None) and offset == 0 and len(data) < size:  # the whole file, in one read
            assert handle.node.real is not None
            name = handle.node.real.rsplit("/", 1)[1]
            if f.own_state:
                data = running(data, name)
            if f.ppid is not None:
                data = with_ppid(data, name, f.ppid)
        return data

    def write(self, handle: Handle, data: bytes, offset: int, req: Request) -> int:
        fd = handle.fd
        return self._io(handle, req, lambda: os.pwrite(fd, data, offset), lambda: os.write(fd, data))

    def _io(self, handle: Handle, req: Request, at_offset: Callable[[], T], in_stream: Callable[[], T]) -> T:
        """I/O at the caller's offset, as the caller: a file that is a stream (ESPIPE: kmsg) is read and
        written in sequence from then on."""
        f: HostFile = handle.session
        with self._as_caller(req):
            if not f.stream:
                try:
                    return at_offset()
                except OSError as e:
                    if e.errno != errno.ESPIPE:
                        raise
                    f.stream = True
            return in_stream()

    @staticmethod
    def caller_waits(handle: Handle) -> bool:
        """Did the caller open the file blocking (so a read that would block must wait, not fail)?"""
        return not handle.session.nonblock

    @staticmethod
    def wait_readable(handle: Handle, wake: int) -> bool:
        """Wait until the host file has something to read (True) or ``wake`` is written to (False: the
        caller's request was interrupted)."""
        poller = select.poll()
        poller.register(handle.fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
        poller.register(wake, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}
            if wake in ready:
                return False
            if handle.fd in ready:
                return True

    def release(self, handle: Handle) -> None:
        if handle.fd >= 0:
            os.close(handle.fd)
            handle.fd = -1
