"""A FUSE backend that speaks the kernel's protocol over /dev/fuse itself: no libfuse, no ctypes callbacks.

It serves a mounted /dev/fuse descriptor (fakeproc.fs.mounting: mount(2) as root, fusermount3 for
everyone else, or run mode's mount inside its own namespace), reads each request from the kernel and
answers it by node with the filesystem core (fakeproc.fs.core): no paths are built or parsed.

Node ids, explicitly: the kernel names an inode by the node id a LOOKUP answer gave it and keeps a
count of those answers (its lookups); this backend keeps the table the other way round
(:class:`NodeEntry`: the core's node, the count, and the parent id and name it was looked up as),
hands out a new id for every new node (``Node.key``: a row for one task) and drops the entry when a
FORGET brings the count to 0.  Ids are never reused while the kernel holds them.

Differences from libfuse 2 that change no answer, only the number of round trips:
FUSE_ATOMIC_O_TRUNC (``open(O_TRUNC)`` needs no SETATTR: truncation of a fakeproc file is a no-op),
parallel lookups, and attributes valid for 1 ns instead of 0 with ``attr_timeout=0``.  The kernel reads
attr_valid 0 as "always stale" and asks GETATTR again for the permission check that follows every
LOOKUP of the path walk; 1 ns is one jiffy (1-2 ticks, a few ms), and since entries stay valid for 0 s
every path walk looks each name up again, with fresh attributes.  The root directory's attributes
(mode, owner, times: they never change) are kept 10 ms, which saves its GETATTR at each path walk (as
long as the cached names below, if longer); the cost is that ``stat`` of the mount point may still
succeed for that long after the daemon is killed (then ENOTCONN, as always).  Values are never cached:
every file is opened with FOPEN_DIRECT_IO.

Cached names: the model's own nodes (pid and thread directories and their files, the root's files;
not run mode's mirrors of real processes nor passed-through host files: ``Attr.stable``) are answered
valid for ``stable_timeout`` seconds (FuseOptions.cache, default 1), so a path walk the kernel has
made once costs no request until then: a repeated ``cat PID/oom_score`` is OPEN, READ, RELEASE.  What
can change those answers is a task released (its names vanish) or a task's new owner (its
attributes), and the machine tells this backend of both (``Machine.entry_watchers``): it sends
FUSE_NOTIFY_INVAL_ENTRY for the names the kernel holds, FUSE_NOTIFY_INVAL_INODE for the attributes.
The notifications are written by a thread of their own (the kernel takes the directory's lock to drop
a name, and a LOOKUP waiting for this loop may hold it); the reply to the WRITE that caused them
(``ctl exit``, a kill) is queued behind them, so the writer, and anyone who hears from it, never sees
a name that is gone.  The timeout only bounds a case the machine would miss.

Concurrency: ``threads`` reader threads (each on its own clone of the /dev/fuse descriptor); a request
is decoded and answered under the model's one lock, the read and the reply's write happen outside it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import queue
import stat
import struct
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..machine import Task
from .core import ProcFS
from .tree import Attr, FsError, Handle, Node, errno_of

log = logging.getLogger(__name__)

# ------------------------------------------------------------ the protocol (include/uapi/linux/fuse.h)

KERNEL_VERSION = 7
MINOR_WANTED = 31  # what this module implements; the kernel's, if lower, wins

LOOKUP, FORGET, GETATTR, SETATTR, READLINK, SYMLINK = 1, 2, 3, 4, 5, 6
MKNOD, MKDIR, UNLINK, RMDIR, RENAME, LINK, OPEN, READ, WRITE, STATFS, RELEASE = 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18
FSYNC, SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR, FLUSH, INIT = 20, 21, 22, 23, 24, 25, 26
OPENDIR, READDIR, RELEASEDIR, FSYNCDIR, ACCESS, CREATE, INTERRUPT, DESTROY = 27, 28, 29, 30, 34, 35, 36, 38
BATCH_FORGET, RENAME2 = 42, 45

OPNAMES = {LOOKUP: "lookup", FORGET: "forget", GETATTR: "getattr", SETATTR: "setattr", READLINK: "readlink",
           SYMLINK: "symlink", MKNOD: "mknod", MKDIR: "mkdir", UNLINK: "unlink", RMDIR: "rmdir",
           RENAME: "rename", LINK: "link", OPEN: "open", READ: "read", WRITE: "write", STATFS: "statfs",
           RELEASE: "release", FSYNC: "fsync", SETXATTR: "setxattr", GETXATTR: "getxattr",
           LISTXATTR: "listxattr", REMOVEXATTR: "removexattr", FLUSH: "flush", INIT: "init",
           OPENDIR: "opendir", READDIR: "readdir", RELEASEDIR: "releasedir", FSYNCDIR: "fsyncdir",
           ACCESS: "access", CREATE: "create", INTERRUPT: "interrupt", DESTROY: "destroy",
           BATCH_FORGET: "batch_forget", RENAME2: "rename2"}

# init flags
ASYNC_READ, ATOMIC_O_TRUNC, PARALLEL_DIROPS = 1 << 0, 1 << 3, 1 << 18
# fuse_open_out.open_flags
FOPEN_DIRECT_IO = 1 << 0
FOPEN_NOFLUSH = 1 << 5
# fuse_getattr_in.getattr_flags
GETATTR_FH = 1 << 0
# fuse_setattr_in.valid
FATTR_MODE, FATTR_UID, FATTR_GID, FATTR_SIZE, FATTR_ATIME, FATTR_MTIME, FATTR_FH = 1, 2, 4, 8, 16, 32, 64

IN_HEADER = struct.Struct("<IIQQIIIHH")        # len opcode unique nodeid uid gid pid total_extlen padding
OUT_HEADER = struct.Struct("<IiQ")             # len error unique
INIT_IN = struct.Struct("<IIII")               # major minor max_readahead flags
INIT_OUT = struct.Struct("<IIIIHHIIHHI28x")    # ... max_write time_gran max_pages map_alignment flags2 unused
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")      # fuse_attr
ENTRY_OUT = struct.Struct("<QQQQII")           # nodeid generation entry_valid attr_valid (nsec x2); + attr
ATTR_OUT = struct.Struct("<QII")               # attr_valid attr_valid_nsec dummy; + attr
GETATTR_IN = struct.Struct("<IIQ")
SETATTR_IN = struct.Struct("<IIQQQQQQIIIIIIII")
OPEN_IN = struct.Struct("<II")
OPEN_OUT = struct.Struct("<QII")
RW_IN = struct.Struct("<QQIIQII")              # fuse_read_in, fuse_write_in
WRITE_OUT = struct.Struct("<II")
RELEASE_IN = struct.Struct("<QIIQ")
FORGET_IN = struct.Struct("<Q")
INTERRUPT_IN = struct.Struct("<Q")
BATCH_FORGET_IN = struct.Struct("<II")
FORGET_ONE = struct.Struct("<QQ")
XATTR_IN = struct.Struct("<II")                # fuse_getxattr_in (size, padding)
XATTR_OUT = struct.Struct("<II")
STATFS_OUT = struct.Struct("<QQQQQIIII24x")
MKNOD_IN = struct.Struct("<IIII")
MKDIR_IN = struct.Struct("<II")
CREATE_IN = struct.Struct("<IIII")
LINK_IN = struct.Struct("<Q")
RENAME_IN = struct.Struct("<Q")
DIRENT = struct.Struct("<QQII")

MAX_WRITE = 128 * 1024
BUFSIZE = MAX_WRITE + 4096
# notifications (fuse_notify_code): written to the device with unique 0 and the code as the error
NOTIFY_INVAL_INODE, NOTIFY_INVAL_ENTRY = 2, 3
NOTIFY_INVAL_INODE_OUT = struct.Struct("<Qqq")  # nodeid, offset (-1: attributes only), length
NOTIFY_INVAL_ENTRY_OUT = struct.Struct("<QII")  # parent nodeid, name length, flags; + name + NUL
#: Names the kernel may keep at once (FAKEPROC_FUSE_CACHE_MAX): past that the oldest are dropped.  The
#: kernel frees an unused dentry only when it is used again after its time or under memory pressure,
#: so without a bound a ``ps`` over a million processes would leave seven million names cached, each
#: with this daemon's node table entries.
CACHED_MAX = 32768

ROOT_ATTR_VALID_NS = 10_000_000  # the root's mode, owner and times never change (see the module's docstring)
FUSE_DEV_IOC_CLONE = 0x8004E500  # _IOR(229, 0, uint32_t)
ROOT_ID = 1  # FUSE_ROOT_ID




def _valid_for(seconds: float) -> tuple[int, int]:
    """A validity as the kernel takes it: (seconds, nanoseconds)."""
    return int(seconds), int(seconds % 1 * 1e9)


class ConnectionGone(RuntimeError):
    """The connection was aborted before the daemon read FUSE_INIT: the mount is gone, nobody used it (a
    ``fakeproc run`` whose command ended at once, taking the run's mount namespace with it)."""


class NoReply(Exception):
    """FORGET, INTERRUPT: the kernel waits for no answer."""


class NodeEntry:
    """A node the kernel holds: the core's node, the kernel's lookup count, and where it was looked up."""

    __slots__ = ("node", "lookups", "parent", "name")

    def __init__(self, node: Node, parent: int, name: str) -> None:
        self.node = node
        self.lookups = 0
        self.parent = parent
        self.name = name


class DirHandle:
    __slots__ = ("node", "entries")

    def __init__(self, node: Node) -> None:
        self.node = node
        self.entries: list[bytes] | None = None


class RawFuse:
    """Serve ``fs`` on the mounted /dev/fuse descriptor ``fd`` until it is unmounted (or the connection aborted)."""

    def __init__(self, fs: ProcFS, fd: int, lock: Any, threads: int = 1, stable_timeout: float = 0.0,
                 cached_max: int = CACHED_MAX, trace: bool = False) -> None:
        self.fs = fs
        self.fd = fd
        self.lock = lock
        self.trace = trace  # --verbose: log every request
        self.threads = max(1, threads)
        # (seconds, nanoseconds) as the kernel takes them: names 0 s, attributes 1 ns (see the docstring)
        self.entry_times = (0, 0)
        self.attr_times = (0, 1)
        self.stable_timeout = max(0.0, stable_timeout)
        self.stable_times = _valid_for(self.stable_timeout) if self.stable_timeout else self.attr_times
        # the root's attributes never change: kept 10 ms, or as long as the model's names
        self.root_times = max(self.attr_times, (0, ROOT_ATTR_VALID_NS), self.stable_times)
        # the notifier: a thread that writes invalidations (and the replies that must follow them)
        self.notes: queue.SimpleQueue[tuple[int, bytes] | None] = queue.SimpleQueue()
        self.noted = 0  # notifications queued so far (a request that queued some defers its reply)
        # stable node ids the kernel was told it may keep, in the order of their last LOOKUP answer
        self.cached: OrderedDict[int, None] = OrderedDict()
        self.cached_max = max(1, cached_max)
        # FOPEN_DIRECT_IO: every read and write reaches the daemon (sizes read 0, short counts reach the
        # caller); FOPEN_NOFLUSH: close() does not take the file's inode lock to flush a page cache that
        # direct I/O never fills (without it a close waits for another process's WRITE to the same file)
        self.open_flags = FOPEN_DIRECT_IO | FOPEN_NOFLUSH
        self.minor = 0
        # the node table: id -> entry, node key -> id; and, for the machine's changes, the ids of the nodes
        # of each task (by id(task): nodes about it, or reached through its pid directory)
        self.nodes: dict[int, NodeEntry] = {ROOT_ID: NodeEntry(fs.root, 0, "")}
        self.nodes[ROOT_ID].lookups = 1
        self.ids: dict[tuple[Any, ...], int] = {fs.root.key: ROOT_ID}
        self.of_task: dict[int, set[int]] = {}
        self.next_id = ROOT_ID + 1
        self.handles: dict[int, Handle] = {}
        self.next_fh = 1
        self.dirs: dict[int, DirHandle] = {}
        self.next_dh = 1
        # run mode: reads of host files that wait, each in a thread of its own (wait_and_read()), and what
        # an INTERRUPT tells them: unique -> the pipe that wakes it; uniques interrupted before they waited
        self.waiters = ThreadPoolExecutor(max_workers=64, thread_name_prefix="rawfuse-wait")
        self.waiting: dict[int, int] = {}
        self.interrupted: set[int] = set()
        self.waiting_lock = threading.Lock()
        self.handlers = {
            LOOKUP: self.lookup, GETATTR: self.getattr, SETATTR: self.setattr, READLINK: self.readlink,
            SYMLINK: self.symlink, MKNOD: self.mknod, MKDIR: self.mkdir, UNLINK: self.unlink, RMDIR: self.rmdir,
            RENAME: self.rename, LINK: self.link, OPEN: self.open, READ: self.read, WRITE: self.write,
            STATFS: self.statfs, RELEASE: self.release, GETXATTR: self.getxattr, LISTXATTR: self.listxattr,
            OPENDIR: self.opendir, READDIR: self.readdir, RELEASEDIR: self.releasedir, CREATE: self.create,
            FORGET: self.forget, BATCH_FORGET: self.batch_forget, INTERRUPT: self.interrupt,
            DESTROY: self.destroy,
        }
        # anything else is ENOSYS, as from libfuse 2 for the callbacks a filesystem does not have: FLUSH and
        # FSYNC (the kernel stops sending them), ACCESS (never sent with default_permissions; the kernel then
        # allows), SETXATTR/REMOVEXATTR (the caller gets EOPNOTSUPP), RENAME2 (EINVAL), locks, ioctl, poll

    # ------------------------------------------------------------ serve

    def serve(self) -> None:
        """Answer INIT, then serve until the mount goes away.  The descriptor is its owner's to close."""
        machine = self.fs.state.machine
        notifier = threading.Thread(target=self.notifier, name="rawfuse-notify", daemon=True)
        try:
            self.init()
            if self.stable_timeout:
                notifier.start()
                with self.lock:
                    machine.entry_watchers.append(self.changed)
            extra = [threading.Thread(target=self.loop, args=(self.clone(),), name=f"rawfuse-{i}", daemon=True)
                     for i in range(1, self.threads)]
            for t in extra:
                t.start()
            self.loop(self.fd)
            for t in extra:
                t.join()
        finally:
            with self.waiting_lock:  # reads still waiting end now (EINTR; their callers are gone anyway)
                for wake in self.waiting.values():
                    os.write(wake, b"!")
            self.waiters.shutdown(wait=True)
            with self.lock:
                if self.changed in machine.entry_watchers:
                    machine.entry_watchers.remove(self.changed)
            if notifier.is_alive():
                self.notes.put(None)
                notifier.join(2.0)  # before the descriptor it writes to is closed (and its number reused)

    def clone(self) -> int:
        """A second descriptor on the same connection (FUSE_DEV_IOC_CLONE): a reader of its own."""
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, FUSE_DEV_IOC_CLONE, struct.pack("<I", self.fd))
        except OSError:
            os.close(fd)
            return os.dup(self.fd)
        return fd

    def init(self) -> None:
        buf = bytearray(BUFSIZE)
        while True:
            try:
                os.readv(self.fd, [buf])
            except OSError as e:
                if e.errno in (errno.EINTR, errno.EAGAIN):
                    continue
                if e.errno == errno.ENODEV:  # the mount went away (its namespace ended) before we read its INIT
                    raise ConnectionGone(f"no FUSE_INIT from the kernel: {e.strerror}") from None
                raise RuntimeError(f"no FUSE_INIT from the kernel: {e.strerror}") from None
            _len, opcode, unique, *_ = IN_HEADER.unpack_from(buf)
            if opcode != INIT:
                self.send(self.fd, unique, -errno.EIO, b"")
                continue
            major, minor, readahead, flags = INIT_IN.unpack_from(buf, IN_HEADER.size)
            if major != KERNEL_VERSION:
                self.send(self.fd, unique, -errno.EPROTO, b"")
                raise RuntimeError(f"unsupported FUSE protocol {major}.{minor}")
            self.minor = min(minor, MINOR_WANTED)
            want = flags & (ASYNC_READ | ATOMIC_O_TRUNC | PARALLEL_DIROPS)
            self.send(self.fd, unique, 0, INIT_OUT.pack(KERNEL_VERSION, self.minor, readahead, want, 0, 0,
                                                        MAX_WRITE, 1, 0, 0, 0))
            log.debug("FUSE protocol %d.%d, flags %#x", KERNEL_VERSION, self.minor, want)
            return

    def loop(self, fd: int) -> None:
        buf = bytearray(BUFSIZE)
        mv = memoryview(buf)
        readv, write = os.readv, os.write
        unpack, pack = IN_HEADER.unpack_from, OUT_HEADER.pack
        handlers = self.handlers
        lock = self.lock
        trace = self.trace
        while True:
            try:
                n = readv(fd, [buf])
            except OSError as e:
                if e.errno in (errno.EINTR, errno.EAGAIN, errno.ENOENT):
                    continue
                if e.errno in (errno.ENODEV, errno.ECONNABORTED):  # unmounted, or the connection aborted
                    return
                raise
            _len, opcode, unique, nodeid, uid, gid, pid, _ext, _pad = unpack(buf)
            handler = handlers.get(opcode)
            err = 0
            out = b""
            deferred = False
            if trace:
                log.debug("%s", self.describe(opcode, nodeid, mv[40:n]))
            if handler is None:
                err = -errno.ENOSYS
            elif opcode in (READ, WRITE) and self.host_io(fd, opcode, unique, mv[40:n], (uid, gid, pid)):
                continue  # the host's file, read or written outside the model's lock (and maybe answered later)
            else:
                with lock:
                    noted = self.noted
                    try:
                        out = handler(nodeid, mv[40:n], (uid, gid, pid))
                    except NoReply:
                        continue
                    except Exception as e:  # noqa: BLE001 - every failure becomes an errno, bugs logged
                        err = -errno_of(e, f"opcode {OPNAMES.get(opcode, opcode)}")
                    # a write that took names or attributes away (a ctl exit, a kill...) is answered
                    # after the kernel has dropped them: its writer then never sees them again.
                    # Only a WRITE waits, as it holds no directory lock the notifier may need.
                    deferred = self.noted != noted and opcode == WRITE
            reply = pack(16 + len(out), err, unique) + out
            if deferred:
                self.notes.put((fd, reply))
                continue
            try:
                write(fd, reply)
            except OSError as e:
                if e.errno == errno.ENOENT:  # the request was interrupted meanwhile
                    continue
                if e.errno in (errno.ENODEV, errno.ECONNABORTED):
                    return
                raise

    @staticmethod
    def send(fd: int, unique: int, err: int, out: bytes) -> None:
        os.write(fd, OUT_HEADER.pack(16 + len(out), err, unique) + out)

    # ------------------------------------------------------------ the node table

    def node(self, nodeid: int) -> Node:
        e = self.nodes.get(nodeid)
        if e is None:
            raise FsError(errno.ENOENT)
        return e.node

    def remember(self, node: Node, parent: int, name: str) -> int:
        """The id of ``node`` (a new one if the kernel holds none for it), its lookup count one higher."""
        key = node.key
        nid = self.ids.get(key)
        if nid is None:
            nid = self.next_id
            self.next_id += 1
            self.ids[key] = nid
            e = self.nodes[nid] = NodeEntry(node, parent, name)
            for t in {node.task, node.view}:
                if t is not None:
                    self.of_task.setdefault(id(t), set()).add(nid)
        else:
            e = self.nodes[nid]
        e.lookups += 1
        return nid

    def drop(self, nodeid: int, n: int) -> None:
        """FORGET: the kernel let go of ``n`` lookups of ``nodeid``; at 0 the entry goes."""
        if nodeid == ROOT_ID:
            return
        e = self.nodes.get(nodeid)
        if e is None:
            return
        e.lookups -= n
        if e.lookups > 0:
            return
        del self.nodes[nodeid]
        self.cached.pop(nodeid, None)
        node = e.node
        if self.ids.get(node.key) == nodeid:
            del self.ids[node.key]
        for t in {node.task, node.view}:
            if t is not None:
                held = self.of_task.get(id(t))
                if held is not None:
                    held.discard(nodeid)
                    if not held:
                        del self.of_task[id(t)]

    # ------------------------------------------------------------ cached names and their invalidation

    def changed(self, t: Task, gone: bool) -> None:
        """Machine.entry_watchers: task ``t`` was released (``gone``) or its owner changed.

        Called under the model's lock.  Only the nodes the kernel holds are told of: for a released task,
        the names it holds that lead to it (``/TID``, which drops everything under it, and
        ``/TGID/task/TID``); for an owner change, the attributes of every node about it or under its
        directories.
        """
        held = self.of_task.get(id(t))
        if not held:
            return
        if not gone:
            for nid in held:
                self.invalidate_inode(nid)
            return
        for nid in list(held):
            e = self.nodes.get(nid)
            if e is not None and e.parent not in held:  # the top-most names of the task
                self.invalidate_entry(e.parent, e.name)

    def expire_oldest(self) -> None:
        """Past ``cached_max``: drop the oldest tenth of the names the kernel keeps; FORGET follows.

        One notification per top-level name (``/PID``: dropping a directory drops everything the kernel
        keeps under it), so a ``ps`` pays one per process, not one per file it read.  (FUSE_EXPIRE_ONLY
        would only mark names stale: Linux 6.18 then keeps an unused dentry all the same.  Dropped, a
        directory in use, a shell's working directory, still answers relative lookups, through its id.)"""
        cached, nodes = self.cached, self.nodes
        tops: dict[str, None] = {}
        for _ in range(max(1, self.cached_max // 10)):
            if not cached:
                break
            e = nodes.get(cached.popitem(last=False)[0])
            while e is not None and e.parent != ROOT_ID:
                e = nodes.get(e.parent)
            if e is not None:
                tops[e.name] = None
        for name in tops:
            self.invalidate_entry(ROOT_ID, name, count=False)

    def invalidate_entry(self, parent: int, name: str, count: bool = True) -> None:
        raw = os.fsencode(name)
        self.notify(NOTIFY_INVAL_ENTRY, NOTIFY_INVAL_ENTRY_OUT.pack(parent, len(raw), 0) + raw + b"\0", count)

    def invalidate_inode(self, nodeid: int) -> None:
        self.notify(NOTIFY_INVAL_INODE, NOTIFY_INVAL_INODE_OUT.pack(nodeid, -1, 0))

    def notify(self, code: int, body: bytes, count: bool = True) -> None:
        """Queue a notification for the notifier thread; ``count``: a change the current request made,
        so its reply waits behind it (see loop())."""
        if count:
            self.noted += 1
        self.notes.put((self.fd, OUT_HEADER.pack(16 + len(body), code, 0) + body))

    def notifier(self) -> None:
        """Write the queued invalidations, and the replies that wait for them, in order.

        A thread of its own: to drop a name the kernel takes its directory's lock, which a LOOKUP in that
        directory holds while it waits for the loop's answer.
        """
        get, write = self.notes.get, os.write
        while (item := get()) is not None:
            fd, data = item
            try:
                write(fd, data)
            except OSError as e:
                if e.errno in (errno.ENODEV, errno.ECONNABORTED, errno.EBADF):
                    return  # unmounted
                # ENOENT: the kernel no longer had that name or inode, or the waiting request was
                # interrupted meanwhile; nothing to do either way
                if e.errno != errno.ENOENT:
                    log.warning("FUSE notification failed: %s", e.strerror)

    # ------------------------------------------------------------ replies

    @staticmethod
    def attr(a: Attr, ino: int) -> bytes:
        at, mt, ct = a.atime_ns, a.mtime_ns, a.ctime_ns
        return ATTR.pack(ino, a.size, 0, at // 1_000_000_000, mt // 1_000_000_000, ct // 1_000_000_000,
                         at % 1_000_000_000, mt % 1_000_000_000, ct % 1_000_000_000, a.mode, a.nlink,
                         a.uid & 0xFFFFFFFF, a.gid & 0xFFFFFFFF, 0, 0, 0)

    def attr_reply(self, nodeid: int, a: Attr) -> bytes:
        sec, nsec = self.root_times if nodeid == ROOT_ID else self.stable_times if a.stable else self.attr_times
        return ATTR_OUT.pack(sec, nsec, 0) + self.attr(a, nodeid)

    def entry(self, parent: int, name: str, ctx: tuple[int, int, int]) -> bytes:
        """LOOKUP's answer for ``name`` in ``parent`` (and what MKDIR, CREATE... would answer)."""
        req = self.fs.request(*ctx)
        node = self.fs.lookup(self.node(parent), name, req)
        a = self.fs.getattr(node, req)
        nid = self.remember(node, parent, name)
        if a.stable and self.stable_timeout:
            (esec, ensec) = (asec, ansec) = self.stable_times
            cached = self.cached
            cached[nid] = None
            cached.move_to_end(nid)
            if len(cached) > self.cached_max:
                self.expire_oldest()
        else:
            (esec, ensec), (asec, ansec) = self.entry_times, self.attr_times
        return ENTRY_OUT.pack(nid, 0, esec, asec, ensec, ansec) + self.attr(a, nid)

    @staticmethod
    def name(data: memoryview) -> str:
        """A name from a request: the host's names are bytes, held as text with surrogates for what is not
        UTF-8 (os.fsdecode), so that a passed-through name that is no UTF-8 is found again; the model's
        names are all ASCII, so such a name is simply absent from them."""
        return os.fsdecode(bytes(data).split(b"\0", 1)[0])

    def path_of(self, nodeid: int) -> str:
        """The path a node was looked up as (for the log): its names up to the root."""
        names = []
        e = self.nodes.get(nodeid)
        while e is not None and nodeid != ROOT_ID:
            names.append(e.name)
            nodeid = e.parent
            e = self.nodes.get(nodeid)
        return "/" + "/".join(reversed(names)) if e is not None else "?"

    def describe(self, opcode: int, nodeid: int, body: memoryview) -> str:
        """--verbose: "request OP ('PATH',)", as the fusepy backend logs (a lookup names the child)."""
        path = self.path_of(nodeid)
        if opcode == LOOKUP:
            name = bytes(body[:-1]).decode(errors="replace")
            path = "/" + name if path == "/" else f"{path}/{name}"
        return f"request {OPNAMES.get(opcode, opcode)} ({path!r},)"

    # ------------------------------------------------------------ requests

    def lookup(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        return self.entry(nodeid, self.name(data), ctx)

    def forget(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        self.drop(nodeid, FORGET_IN.unpack_from(data)[0])
        raise NoReply

    def batch_forget(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        count, _ = BATCH_FORGET_IN.unpack_from(data)
        for i in range(count):
            nid, n = FORGET_ONE.unpack_from(data, 8 + 16 * i)
            self.drop(nid, n)
        raise NoReply

    def interrupt(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        """FUSE_INTERRUPT: the caller of request ``unique`` gave up (a signal).  Every request is answered at
        once but a read of a host file that waits (/proc/kmsg): that one is woken and answers EINTR."""
        unique = INTERRUPT_IN.unpack_from(data)[0]
        with self.waiting_lock:
            wake = self.waiting.get(unique)
            if wake is None:
                self.interrupted.add(unique)  # it may not be waiting yet; a finished one is forgotten below
                if len(self.interrupted) > 1024:
                    self.interrupted.clear()
        if wake is not None:
            os.write(wake, b"!")
        raise NoReply

    def destroy(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        return b""

    def getattr(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        flags, _, fh = GETATTR_IN.unpack_from(data)
        node = self.node(nodeid)
        handle = self.handles.get(fh) if flags & GETATTR_FH else None
        if handle is None and not self.fs.alive(node):
            # fstat() of a file whose process exited keeps working, as procfs's inode does; the kernel
            # sends no handle for it, so an open handle on the node stands in
            handle = next((h for h in self.handles.values() if h.node is node), None)
        return self.attr_reply(nodeid, self.fs.getattr(node, self.fs.request(*ctx), handle))

    def setattr(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        (valid, _, fh, size, _lo, _atime, _mtime, _ctime, _an, _mn, _cn, mode, _u4, uid, gid,
         _u5) = SETATTR_IN.unpack_from(data)
        handle = self.handles.get(fh) if valid & FATTR_FH else None
        # libfuse 2's fuse_lib_setattr() changes times only when both are given
        times = valid & (FATTR_ATIME | FATTR_MTIME) == FATTR_ATIME | FATTR_MTIME
        a = self.fs.setattr(self.node(nodeid), self.fs.request(*ctx), mode=mode if valid & FATTR_MODE else None,
                            uid=uid if valid & FATTR_UID else None, gid=gid if valid & FATTR_GID else None,
                            size=size if valid & FATTR_SIZE else None, times=times, handle=handle)
        return self.attr_reply(nodeid, a)

    def readlink(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        return os.fsencode(self.fs.readlink(self.node(nodeid), self.fs.request(*ctx)))[:4096]

    def open(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        flags, _ = OPEN_IN.unpack_from(data)
        h = self.fs.open(self.node(nodeid), flags, self.fs.request(*ctx))
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = h
        return OPEN_OUT.pack(fh, self.open_flags, 0)

    def _handle(self, fh: int) -> Handle:
        h = self.handles.get(fh)
        if h is None:
            raise FsError(errno.EBADF)
        return h

    def read(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        fh, offset, size, *_ = RW_IN.unpack_from(data)
        return self.fs.read(self._handle(fh), size, offset, self.fs.request(*ctx))[:size]

    def write(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        fh, offset, size, *_ = RW_IN.unpack_from(data)
        n = self.fs.write(self._handle(fh), bytes(data[40:40 + size]), offset, self.fs.request(*ctx))
        return WRITE_OUT.pack(n, 0)

    # ------------------------------------------------------------ the host's files (run mode)

    def host_io(self, fd: int, opcode: int, unique: int, data: memoryview, ctx: tuple[int, int, int]) -> bool:
        """A READ or WRITE of a passed-through host file: done here, without the model's lock (it reads and
        writes no model state), and answered; False if the handle is not a host file's.

        A read that would wait (/proc/kmsg with nothing new) goes to a waiter thread, which answers when the
        file has something or EINTR when the caller is interrupted: the loop goes on serving everyone else.
        """
        fh, offset, size, *_ = RW_IN.unpack_from(data)
        h = self.handles.get(fh)
        passthrough = self.fs.passthrough
        if h is None or h.node.real is None or passthrough is None:
            return False
        req = self.fs.request(*ctx)
        err, out = 0, b""
        try:
            if opcode == WRITE:
                out = WRITE_OUT.pack(passthrough.write(h, bytes(data[40:40 + size]), offset, req), 0)
            else:
                out = passthrough.read(h, size, offset, req)[:size]
        except BlockingIOError:
            if opcode == READ and passthrough.caller_waits(h):
                self.waiters.submit(self.wait_and_read, fd, unique, h, size, offset, ctx)
                return True
            err = -errno.EAGAIN
        except Exception as e:  # noqa: BLE001 - every failure becomes an errno, bugs logged
            err = -errno_of(e, f"opcode {OPNAMES.get(opcode, opcode)} of a host file")
        self.reply(fd, unique, err, out)
        return True

    def wait_and_read(self, fd: int, unique: int, h: Handle, size: int, offset: int, ctx: tuple[int, int, int]
                      ) -> None:
        """A waiter thread: poll the host file and a pipe an INTERRUPT writes to; read when it can."""
        passthrough = self.fs.passthrough
        assert passthrough is not None
        r, w = os.pipe()
        err, out = 0, b""
        try:
            with self.waiting_lock:
                self.waiting[unique] = w
                gone = unique in self.interrupted
            while True:
                if gone or not passthrough.wait_readable(h, r):
                    err = -errno.EINTR
                    break
                try:
                    out = passthrough.read(h, size, offset, self.fs.request(*ctx))[:size]
                    break
                except BlockingIOError:
                    continue  # someone else read it first
        except Exception as e:  # noqa: BLE001 - every failure becomes an errno, bugs logged
            err = -errno_of(e, "a waiting read of a host file")
        finally:
            with self.waiting_lock:
                self.waiting.pop(unique, None)
                self.interrupted.discard(unique)
            os.close(r)
            os.close(w)
        self.reply(fd, unique, err, out)

    @staticmethod
    def reply(fd: int, unique: int, err: int, out: bytes) -> None:
        try:
            os.write(fd, OUT_HEADER.pack(16 + len(out), err, unique) + out)
        except OSError as e:
            # ENOENT: the request was interrupted and is gone; ENODEV, ECONNABORTED: unmounted
            if e.errno not in (errno.ENOENT, errno.ENODEV, errno.ECONNABORTED, errno.EBADF):
                raise

    def release(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        h = self.handles.pop(RELEASE_IN.unpack_from(data)[0], None)
        if h is not None:
            self.fs.release(h)
        return b""

    def statfs(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        return STATFS_OUT.pack(0, 0, 0, 0, 0, 4096, 255, 4096, 0)  # procfs: no blocks, no inodes to count

    @staticmethod
    def sized(value: bytes, size: int) -> bytes:
        if size == 0:
            return XATTR_OUT.pack(len(value), 0)
        if len(value) > size:
            raise FsError(errno.ERANGE)
        return value

    def getxattr(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        size, _ = XATTR_IN.unpack_from(data)
        name = bytes(data[8:]).split(b"\0")[0].decode(errors="surrogateescape")
        return self.sized(self.fs.getxattr(self.node(nodeid), name, self.fs.request(*ctx)), size)

    def listxattr(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        size, _ = XATTR_IN.unpack_from(data)
        names = "\0".join(self.fs.listxattr(self.node(nodeid), self.fs.request(*ctx))).encode()
        return self.sized(names + b"\0" if names else b"", size)

    def opendir(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        fh = self.next_dh
        self.next_dh += 1
        self.dirs[fh] = DirHandle(self.node(nodeid))
        return OPEN_OUT.pack(fh, 0, 0)

    def readdir(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        fh, offset, size, *_ = RW_IN.unpack_from(data)
        dh = self.dirs.get(fh) or DirHandle(self.node(nodeid))
        if dh.entries is None or offset == 0:
            dh.entries = []
            for i, (name, mode) in enumerate(self.fs.readdir(dh.node, self.fs.request(*ctx))):
                b = os.fsencode(name)  # a host name that is no UTF-8 comes back as the bytes it was
                # d_ino: no inode number is promised before a LOOKUP (libfuse 2 sends the same); d_type from
                # the mode where the table knows it (DT_UNKNOWN: 0 for the host's names)
                rec = DIRENT.pack(0xFFFFFFFF, i + 1, len(b), stat.S_IFMT(mode) >> 12) + b
                dh.entries.append(rec + b"\0" * (-len(rec) % 8))
        out = []
        total = 0
        for rec in dh.entries[offset:]:
            if total + len(rec) > size:
                break
            out.append(rec)
            total += len(rec)
        return b"".join(out)

    def releasedir(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        self.dirs.pop(RELEASE_IN.unpack_from(data)[0], None)
        return b""

    # what procfs refuses: the core says how

    def unlink(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        self.fs.refuse_change(self.node(nodeid), self.name(data), self.fs.request(*ctx))
        return b""

    rmdir = unlink

    def mkdir(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        self.fs.refuse_create(self.node(nodeid), self.name(data[MKDIR_IN.size:]), self.fs.request(*ctx))
        return b""

    def mknod(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        self.fs.refuse_create(self.node(nodeid), self.name(data[MKNOD_IN.size:]), self.fs.request(*ctx))
        return b""

    def create(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        self.fs.refuse_create(self.node(nodeid), self.name(data[CREATE_IN.size:]), self.fs.request(*ctx))
        return b""

    def symlink(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        self.fs.refuse_create(self.node(nodeid), self.name(data), self.fs.request(*ctx))
        return b""

    def link(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        self.node(LINK_IN.unpack_from(data)[0])
        self.fs.refuse_create(self.node(nodeid), self.name(data[LINK_IN.size:]), self.fs.request(*ctx))
        return b""

    def rename(self, nodeid: int, data: memoryview, ctx: tuple[int, int, int]) -> bytes:
        newdir = RENAME_IN.unpack_from(data)[0]
        old, new = bytes(data[RENAME_IN.size:]).split(b"\0")[:2]
        try:
            old_name, new_name = old.decode(), new.decode()
        except UnicodeDecodeError:
            raise FsError(errno.EINVAL) from None
        req = self.fs.request(*ctx)
        self.fs.refuse_rename(self.node(nodeid), old_name, self.node(newdir), new_name, req)
        return b""
