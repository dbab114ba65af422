"""The fusepy adapter: paths to table entries, errors to errnos, one lock.

No OOM logic lives here.  Every callback runs under ``self._lock`` (the
model's one lock), and every unexpected exception is logged with its
traceback and answered with EIO, so that a bug never passes for a kernel's
EINVAL.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import logging
import os
import stat
import time
from typing import Any

from ..machine import MachineError, Task
from .creds import acting_as, caller_credentials
from .entries import MODEL_PID_NAMES, ROOT_DIRS, ROOT_ENTRIES, Entry, FsState, Request, pid_entries
from .fusepy import FUSE, FuseOSError, c_stat, fuse_get_context, set_st_attrs

log = logging.getLogger(__name__)

DIR_MODE = stat.S_IFDIR | 0o555

#: Nodes whose names and attributes only the machine changes (see FakeProcFS._stat); a ``file`` is one
#: too unless it belongs to a run-mode mirror of a real process.
STABLE_KINDS = frozenset({"dir", "rootfile", "pid", "task", "tid"})
#: What opening a real file passes on: the access mode and the flags that change reads and writes.
OPEN_FLAGS = os.O_ACCMODE | os.O_APPEND | os.O_NONBLOCK | os.O_DIRECTORY | os.O_NOFOLLOW


def name_to_int(name: str) -> int | None:
    """fs/proc/util.c name_to_int(): ASCII decimal digits, no leading zero, below UINT_MAX; else None.

    (Python's ``str.isdigit()`` and ``int()`` also take '\u0661' or '\u00b2': procfs does not.)
    """
    if not name.isascii() or not name.isdigit() or (len(name) > 1 and name[0] == "0"):
        return None
    v = int(name)
    return v if v < 0xFFFFFFFF else None


class Node:
    """What a path names.  ``kind``: root, dir (fakeproc/), pid, task, tid, file, rootfile;
    in run mode also ``real`` (passed through to ``real``, the host's path) and ``link``
    (``self``/``thread-self``, resolved for each caller).  ``thread``: a file named as
    ``PID/task/TID/NAME`` (procfs's tid_base_stuff[], e.g. a thread's own ``stat``)."""

    __slots__ = ("kind", "task", "entry", "real", "thread")

    def __init__(self, kind: str, task: Task | None = None, entry: Entry | None = None,
                 real: str | None = None, thread: bool = False) -> None:
        self.kind = kind
        self.task = task
        self.entry = entry
        self.real = real
        self.thread = thread


class Handle:
    """An open file: the node it was opened on and, for the control file, the reply."""

    __slots__ = ("node", "tid", "reply", "reply_base", "fd", "path")

    def __init__(self, node: Node, fd: int = -1, path: str = "") -> None:
        self.node = node
        self.path = path
        self.tid = node.task.tid if node.task is not None else 0
        self.reply: bytes | None = None
        self.reply_base = 0  # file position at which the reply starts
        self.fd = fd  # run mode: the real file, for a passed-through open


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
        #: (uid, gid, tid) of the request being served, set (under the lock) by a backend that reads
        #: the request header itself (fakeproc.fs.rawfuse); None: ask fusepy's fuse_get_context()
        self._ctx: tuple[int, int, int] | None = None
        self._parsed: dict[str, tuple[tuple[str, ...], int | None]] = {}

    # fusepy calls operations(op, *args): the single entry point.
    def __call__(self, op: str, *args: Any) -> Any:
        if self._trace:
            log.debug("request %s %r", op, args[:1])
        with self._lock:
            return self._call(op, args)

    def _call(self, op: str, args: tuple) -> Any:
        """One operation, the lock already held: every failure becomes a FuseOSError."""
        try:
            return getattr(self, op)(*args)
        except FuseOSError:
            raise
        except MachineError as e:
            raise FuseOSError(e.errno) from None
        except OSError as e:  # run mode: the real /proc's own answer, passed on
            if e.errno is None:
                raise
            raise FuseOSError(e.errno) from None
        except Exception:
            log.exception("bug in fakeproc while serving %s%r; answering EIO", op, args[:1])
            raise FuseOSError(errno.EIO) from None

    def _context(self) -> tuple[int, int, int]:
        """The caller's (uid, gid, tid), whichever backend serves the request."""
        ctx = self._ctx
        return ctx if ctx is not None else fuse_get_context()

    def _request(self, handle: Handle | None = None, offset: int = 0) -> Request:
        uid, gid, tid = self._context()
        return Request(self.state, uid, gid, tid, handle, offset, handle is not None and handle.node.thread)

    # ------------------------------------------------------------ resolution

    def _parse(self, path: str) -> tuple[tuple[str, ...], int | None]:
        """A path's names and its first name as a pid (name_to_int()), remembered: the same paths come
        back at every open."""
        parsed = self._parsed.get(path)
        if parsed is None:
            parts = tuple(p for p in path.split("/") if p)
            parsed = (parts, name_to_int(parts[0]) if parts else None)
            if len(self._parsed) >= 4096:
                self._parsed.clear()
            self._parsed[path] = parsed
        return parsed

    def resolve(self, path: str) -> Node:
        parts, pid = self._parse(path)
        m = self.state.machine
        if not parts:
            return Node("root")
        head = parts[0]
        if self.state.reality is not None:
            return self._resolve_real(path, list(parts))
        if pid is not None:
            task = m.tasks.get(pid)
            if task is None:
                raise FuseOSError(errno.ENOENT)
            return self._resolve_pid(task, parts[1:])
        if len(parts) == 1 and head in ROOT_DIRS:
            return Node("dir", entry=Entry(head, 0o555))
        entry = self.root_files.get(("/".join(parts[:-1]), parts[-1]))
        if entry is None:
            raise FuseOSError(errno.ENOENT)
        return Node("rootfile", entry=entry)

    def _resolve_pid(self, task: Task, rest: list[str] | tuple[str, ...]) -> Node:
        if not rest:
            return Node("pid", task)
        entries = pid_entries(self.state.machine.era)
        if rest[0] == "task":
            if len(rest) == 1:
                return Node("task", task)
            tid = name_to_int(rest[1])
            th = self.state.machine.tasks.get(tid) if tid is not None else None
            if th is None or th.tgid != task.tgid:
                raise FuseOSError(errno.ENOENT)
            if len(rest) == 2:
                return Node("tid", th)
            if len(rest) == 3 and rest[2] in entries:
                return Node("file", th, entries[rest[2]], thread=True)
            raise FuseOSError(errno.ENOENT)
        if len(rest) == 1 and rest[0] in entries:
            return Node("file", task, entries[rest[0]])
        raise FuseOSError(errno.ENOENT)

    def _resolve_real(self, path: str, parts: list[str]) -> Node:
        """Run mode: the model's files where it has them, the host's /proc everywhere else."""
        reality = self.state.reality
        head, rest = parts[0], parts[1:]
        real = reality.real_proc + path
        pid = name_to_int(head)
        if pid is not None and reality.simulated(pid):  # shell mode: a process of the scenario
            return self._resolve_pid(self.state.machine.tasks[pid], rest)
        if pid is not None and not reality.visible(pid):
            raise FuseOSError(errno.ENOENT)
        if pid is not None:
            with self._as_caller():  # hidepid: a process the caller may not see is not there, model files too
                os.stat(f"{reality.real_proc}/{pid}")
            name = rest[-1] if rest else ""
            if (len(rest) == 1 or (len(rest) == 3 and rest[0] == "task")) and name in MODEL_PID_NAMES:
                entry = pid_entries(self.state.machine.era).get(name)
                if entry is None or (len(rest) == 3 and name_to_int(rest[1]) is None):
                    raise FuseOSError(errno.ENOENT)  # not a file of this era
                owner = reality.lookup(int(head))
                task = owner if len(rest) == 1 else reality.lookup(int(rest[1]))
                if owner is None or task is None or task.tgid != owner.tgid:
                    raise FuseOSError(errno.ENOENT)  # no such live process or thread (or the model killed it)
                return Node("file", task, entry, thread=len(rest) == 3)
            return Node("real", real=real)
        if len(parts) == 1 and head in ROOT_DIRS:
            return Node("dir", entry=Entry(head, 0o555))
        entry = self.root_files.get(("/".join(parts[:-1]), parts[-1]))
        if entry is not None and (reality.simulated_machine or not entry.companion):
            return Node("rootfile", entry=entry)  # run mode: the host's meminfo, stat, ... pass through
        if len(parts) == 1 and head in ("self", "thread-self"):
            return Node("link", entry=Entry(head, 0o777))
        return Node("real", real=real)

    def _as_caller(self) -> Any:
        """Run mode: the host's /proc is opened, read, written and listed with the caller's credentials
        (fsuid, fsgid, groups, effective capabilities: fakeproc.fs.creds), so the host kernel refuses
        what it would refuse the caller: ptrace-guarded files, ``hidepid``, root-only sysctls..."""
        uid, gid, tid = self._context()
        return acting_as(caller_credentials(uid, gid, tid, self.state.reality.real_proc))

    # ------------------------------------------------------------- metadata

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        return self._stat(path, fh)[0]

    def _stat(self, path: str, fh: int | None = None) -> tuple[dict[str, Any], bool]:
        """getattr(), and whether the answer is *stable*: the name exists and its attributes stay
        the same until the machine itself says otherwise (``Machine.entry_watchers``: a task
        released, a task's owner changed).  That holds for the model's own nodes; a run-mode
        mirror of a real process, a passed-through host file, ``self`` or an open file whose
        process exited can change behind the model's back.  The raw backend lets the kernel cache
        stable names and attributes and takes them back when told (fakeproc.fs.rawfuse)."""
        # fstat() of an open file keeps working after its process exited, as procfs's inode does
        # (the kernel does not always pass the handle: then an open handle on the same path stands in)
        h = self.handles.get(fh) if fh is not None else None
        if h is None:
            try:
                node = self.resolve(path)
            except FuseOSError:
                h = next((o for o in self.handles.values() if o.path == path), None)
                if h is None:
                    raise
        node = h.node if h is not None else node
        if node.kind == "real":
            with self._as_caller():
                st = os.fstat(h.fd) if h is not None and h.fd >= 0 else os.lstat(node.real)
            return {k: getattr(st, k) for k in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_size", "st_ino")} | {
                "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns, "st_ctime": st.st_ctime_ns}, False
        kind = node.kind
        reality = self.state.reality
        task = node.task
        stable = (kind in STABLE_KINDS or (kind == "file" and (reality is None or reality.simulated(task.tgid)))) and (
            h is None or task is None or self.state.machine.tasks.get(task.tid) is task)
        t = self.mtime_ns
        st: dict[str, Any] = {"st_atime": t, "st_mtime": t, "st_ctime": t, "st_size": 0}
        if task is not None:
            st["st_uid"], st["st_gid"] = task.uid, task.gid
        else:
            st["st_uid"], st["st_gid"] = self.state.owner_uid, self.state.owner_gid
        if node.kind in ("file", "rootfile"):
            st["st_mode"] = stat.S_IFREG | node.entry.mode
            st["st_nlink"] = 1
        elif node.kind == "link":
            st["st_mode"] = stat.S_IFLNK | 0o777
            st["st_nlink"] = 1
            st["st_uid"] = st["st_gid"] = 0
        else:
            st["st_mode"] = DIR_MODE
            st["st_nlink"] = 2
        return st, stable

    def readdir(self, path: str, fh: int) -> list[str]:
        node = self.resolve(path)
        m = self.state.machine
        names = [".", ".."]
        if node.kind == "real":
            return names + self._real_listing(path, node.real)
        if node.kind == "root" and self.state.reality is not None and self.state.reality.simulated_machine:
            with self._as_caller():
                listing = os.listdir(self.state.reality.real_proc)
            real = [n for n in listing
                    if name_to_int(n) is None and n not in ROOT_DIRS and ("", n) not in self.root_files]
            return names + [d for d in ROOT_DIRS] + [e.name for d, e in ROOT_ENTRIES if d == ""] + real + [
                str(pid) for pid in m.processes] + [str(pid) for pid in self.state.reality.extra_pids()]
        if node.kind == "root" and self.state.reality is not None:
            with self._as_caller():
                real = [n for n in os.listdir(self.state.reality.real_proc) if n not in ROOT_DIRS]
            return names + real + [d for d in ROOT_DIRS] + [
                e.name for d, e in ROOT_ENTRIES if d == "" and not e.companion and e.name not in real]
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

    def _real_listing(self, path: str, real: str) -> list[str]:
        """A real directory; a pid's or a thread's shows the era's OOM files, not the host's."""
        with self._as_caller():
            names = os.listdir(real)
        parts = [p for p in path.split("/") if p]
        if name_to_int(parts[0]) is not None and (len(parts) == 1 or (len(parts) == 3 and parts[1] == "task")):
            names = [n for n in names if n not in MODEL_PID_NAMES] + [
                n for n in pid_entries(self.state.machine.era) if n in MODEL_PID_NAMES]
        return names

    def readlink(self, path: str) -> str:
        node = self.resolve(path)
        if node.kind == "link":
            _uid, _gid, tid = self._context()
            return self.state.reality.self_link(tid, node.entry.name == "thread-self")
        if node.kind != "real":
            raise FuseOSError(errno.EINVAL)
        with self._as_caller():
            return os.readlink(node.real)

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    # ------------------------------------------------------------------ I/O

    def open(self, path: str, flags: int) -> int:
        node = self.resolve(path)
        if node.kind == "real":
            with self._as_caller():
                fd = os.open(node.real, flags & OPEN_FLAGS)
            fh = next(self._fh)
            self.handles[fh] = Handle(node, fd, path)
            return fh
        if node.entry is None or node.kind not in ("file", "rootfile"):
            raise FuseOSError(errno.EISDIR)
        fh = next(self._fh)
        self.handles[fh] = Handle(node, path=path)
        return fh

    def _handle(self, path: str, fh: int) -> Handle:
        h = self.handles.get(fh)
        if h is None:  # libfuse may call without an open (e.g. truncate by path)
            h = Handle(self.resolve(path))
        return h

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        h = self._handle(path, fh)
        if h.fd >= 0:
            with self._as_caller():
                return os.pread(h.fd, size, offset)
        entry = h.node.entry
        if entry.read is None:
            raise FuseOSError(errno.EINVAL)
        if h.node.kind == "file" and self.state.reality is not None:
            self.state.reality.before_access(h.tid, writing=False)
        data = entry.read(self._request(h, offset), h.tid)
        if entry.positioned:
            return data[:size]
        return data[offset:offset + size]

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        h = self._handle(path, fh)
        if h.fd >= 0:
            with self._as_caller():
                return os.pwrite(h.fd, data, offset)
        entry = h.node.entry
        if entry.write is None:
            raise FuseOSError(errno.EINVAL)
        if h.node.kind == "file" and self.state.reality is not None:
            self.state.reality.before_access(h.tid, writing=True)
        return entry.write(self._request(h, offset), h.tid, bytes(data))

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        # O_TRUNC on open arrives here; procfs's setattr ignores the size (ftruncate() of a file whose
        # process exited too).
        h = self.handles.get(fh) if fh is not None else None
        node = h.node if h is not None else self.resolve(path)
        if node.kind == "real":
            return 0  # procfs files have no size to set; O_TRUNC is harmless there
        if node.kind not in ("file", "rootfile"):
            raise FuseOSError(errno.EISDIR)
        return 0

    def release(self, path: str, fh: int) -> int:
        h = self.handles.pop(fh, None)
        if h is not None and h.fd >= 0:
            os.close(h.fd)
        return 0

    def utimens(self, path: str, times: Any = None) -> int:
        # proc_setattr() accepts (and forgets) times on files and on PID/task; the pid and tid
        # directories use proc_pid_... without setattr: EPERM
        if self.resolve(path).kind in ("pid", "tid"):
            raise FuseOSError(errno.EPERM)
        return 0

    def listxattr(self, path: str) -> list[str]:
        self.resolve(path)
        return []  # procfs has no extended attributes (and lists none)

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        self.resolve(path)
        raise FuseOSError(errno.EOPNOTSUPP)  # no xattr handlers: the VFS's answer for procfs

    # ----------------------------------------- what procfs refuses, and how

    def chmod(self, path: str, mode: int) -> int:
        self.resolve(path)
        raise FuseOSError(errno.EPERM)

    def chown(self, path: str, uid: int, gid: int) -> int:
        # as utimens(): proc_setattr() takes a chown of a file or of PID/task and keeps nothing
        # (the owner is the process's, recomputed at every lookup)
        if self.resolve(path).kind in ("pid", "tid", "root", "dir"):
            raise FuseOSError(errno.EPERM)
        return 0

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
        # procfs: a missing target fails its lookup (ENOENT); an existing one reaches vfs_rename(),
        # and procfs directories have no ->rename (EPERM)
        self.resolve(old)
        self.resolve(new)
        raise FuseOSError(errno.EPERM)

    def link(self, target: str, source: str) -> int:
        raise FuseOSError(errno.ENOENT)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        raise FuseOSError(errno.ENOENT)


BACKENDS = ("raw", "fusepy")


def fuse_backend() -> str:
    """FAKEPROC_FUSE=raw|fusepy: who speaks FUSE to the kernel.

    ``raw`` (fakeproc.fs.rawfuse: the protocol over /dev/fuse, mount(2), root
    only) or ``fusepy`` (libfuse 2 through ctypes, fusermount).  Unset: raw
    as root, fusepy otherwise.
    """
    name = os.environ.get("FAKEPROC_FUSE", "").strip().lower()
    if name in BACKENDS:
        return name
    if name:
        log.warning("FAKEPROC_FUSE=%s: not one of %s; using the default", name, "|".join(BACKENDS))
    return "raw" if os.geteuid() == 0 else "fusepy"


def _env_number(name: str, default: int | float, minimum: int | float) -> Any:
    """A number from the environment, of ``default``'s type, at least ``minimum``; unset or not a
    number: ``default``."""
    try:
        return max(minimum, type(default)(os.environ.get(name, default)))
    except ValueError:
        return default


def raw_threads() -> int:
    """FAKEPROC_FUSE_THREADS: reader threads of the raw backend (default 1)."""
    return _env_number("FAKEPROC_FUSE_THREADS", 1, 1)


def raw_cache_timeout() -> float:
    """FAKEPROC_FUSE_CACHE: seconds the raw backend lets the kernel keep the model's names and attributes
    (default 1; 0: ask every time, as the fusepy backend does).  They are taken back at once when the
    machine changes them (a task released, an owner changed), so this bounds nothing but a missed case."""
    return _env_number("FAKEPROC_FUSE_CACHE", 1.0, 0.0)


def raw_cache_max() -> int:
    """FAKEPROC_FUSE_CACHE_MAX: how many names the raw backend lets the kernel keep at once (32768)."""
    return _env_number("FAKEPROC_FUSE_CACHE_MAX", 32768, 1)


def fuse_options(foreground: bool = True) -> dict[str, Any]:
    """Mount options (see README, Security): why each one is here.

    - direct_io: every read/write reaches the daemon, sizes read 0 as in
      procfs, and short write counts reach the caller;
    - allow_other + default_permissions: other users get in, and the kernel
      checks the mode and owner of each file as procfs would;
    - entry/attr timeouts 0: a pid that exits vanishes at once, and a write
      followed by a read never sees stale attributes (the raw backend keeps
      the model's own names longer and takes them back when they change:
      raw_cache_timeout());
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


class FastFUSE(FUSE):
    """fusepy's FUSE, with a cheaper getattr (most of the requests ``ps`` causes: the kernel asks again for
    every path component, as the timeouts are 0).

    fusepy fills the ``struct stat`` field by field from the dict getattr() returns; here the struct of a
    given dict is built once (by fusepy's own ``set_st_attrs``, so the bytes are the same) and copied in.
    The attributes themselves are still asked of the filesystem at every request: nothing is stale.
    """

    STAT_CACHE_MAX = 4096  # distinct attribute sets (mode, owner, times...); a real /proc file adds its own

    def __init__(self, operations: Any, mountpoint: str, **kwargs: Any) -> None:
        self._stat_cache: dict[tuple, bytes] = {}
        super().__init__(operations, mountpoint, **kwargs)

    def getattr(self, path: bytes, buf: Any) -> int:
        return self.fgetattr(path, buf, None)

    def fgetattr(self, path: bytes | None, buf: Any, fip: Any) -> int:
        fh = fip.contents.fh if fip else None
        attrs = self.operations("getattr", None if path is None else path.decode(self.encoding), fh)
        key = tuple(attrs.items())
        raw = self._stat_cache.get(key)
        if raw is None:
            st = c_stat()
            set_st_attrs(st, attrs, use_ns=self.use_ns)
            raw = bytes(st)
            if len(self._stat_cache) >= self.STAT_CACHE_MAX:
                self._stat_cache.clear()
            self._stat_cache[key] = raw
        ctypes.memmove(buf, raw, len(raw))
        return 0
