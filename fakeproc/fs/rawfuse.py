"""A FUSE backend that speaks the kernel's protocol over /dev/fuse itself: no libfuse, no ctypes callbacks.

It mounts with mount(2) (root only), answers each request from the kernel by
calling the same path-based ``FakeProcFS`` methods that fusepy calls, and
keeps the small part of libfuse 2's high-level layer those methods need: a
nodeid -> path table (with the kernel's lookup counts, for FORGET), directory
listings per open directory, the order of SETATTR's parts (chmod, chown,
truncate, utimens, then getattr), and libfuse 2's answers where fusepy has
no callback (ENOSYS for FLUSH, ACCESS, SETXATTR, REMOVEXATTR, RENAME2, ...).
So every answer stays what the fusepy backend gives.

Differences from libfuse 2 that change no answer, only the number of round
trips: FUSE_ATOMIC_O_TRUNC (``open(O_TRUNC)`` needs no SETATTR: truncation
of a fakeproc file is a no-op, as FakeProcFS.truncate() says), parallel
lookups, and attributes valid for 1 ns instead of 0 with ``attr_timeout=0``.
The kernel reads attr_valid 0 as "always stale" and asks GETATTR again for the
permission check that follows every LOOKUP of the path walk; 1 ns is one
jiffy (1-2 ticks, a few ms), and since entries stay valid for 0 s every path
walk looks each name up again, with fresh attributes.  The root directory's
attributes (mode, owner, times: they never change) are kept 10 ms, which saves
its GETATTR at each path walk (as long as the cached names below, if
longer); the cost is that ``stat`` of the mount point may still succeed for
that long after the daemon is killed (then ENOTCONN, as always).  Values are
never cached: every file is opened with FOPEN_DIRECT_IO.

Cached names: the model's own nodes (pid and thread directories and their
files, the root's files; not run mode's mirrors of real processes nor
passed-through host files: FakeProcFS._stat calls them *stable*) are
answered valid for ``stable_timeout`` seconds (FAKEPROC_FUSE_CACHE, default
1), so a path walk the kernel has made once costs no request until then: a
repeated ``cat PID/oom_score`` is OPEN, READ, RELEASE.  What can change
those answers is a task released (its names vanish) or a task's new owner
(its attributes), and the machine tells this backend of both
(``Machine.entry_watchers``): it sends FUSE_NOTIFY_INVAL_ENTRY for the names
the kernel holds, FUSE_NOTIFY_INVAL_INODE for the attributes.  The
notifications are written by a thread of their own (the kernel takes the
directory's lock to drop a name, and a LOOKUP waiting for this loop may hold
it); the reply to the WRITE that caused them (``ctl exit``, a kill) is
queued behind them, so the writer, and anyone who hears from it, never sees
a name that is gone.  The timeout only bounds a case the machine would miss.

Concurrency: ``threads`` reader threads (each on its own clone of the
/dev/fuse descriptor); a request is decoded and answered under the model's
one lock, the read and the reply's write happen outside it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import queue
import struct
import threading
from collections import OrderedDict
from typing import Any

from fuse import FuseOSError

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

UNKNOWN_INO = 0xFFFFFFFF  # libfuse 2 without use_ino: readdir's d_ino
MAX_WRITE = 128 * 1024
BUFSIZE = MAX_WRITE + 4096
# notifications (fuse_notify_code): written to the device with unique 0 and the code as the error
NOTIFY_INVAL_INODE, NOTIFY_INVAL_ENTRY = 2, 3
NOTIFY_INVAL_INODE_OUT = struct.Struct("<Qqq")  # nodeid, offset (-1: attributes only), length
NOTIFY_INVAL_ENTRY_OUT = struct.Struct("<QII")  # parent nodeid, name length, flags; + name + NUL
#: Names the kernel may keep at once (FAKEPROC_FUSE_CACHE_MAX): past that the oldest are dropped.  The
#: kernel frees an unused dentry only when it is used again after its time or under memory pressure,
#: so without a bound a ``ps`` over a million processes would leave seven million names cached, each
#: with this daemon's nodeid <-> path entries (about 300 bytes).
CACHED_MAX = 32768

ROOT_ATTR_VALID_NS = 10_000_000  # the root's mode, owner and times never change (see the module's docstring)
FUSE_DEV_IOC_CLONE = 0x8004E500  # _IOR(229, 0, uint32_t)

MS_NOSUID, MS_NODEV = 2, 4
MNT_DETACH = 2


def _valid_for(seconds: float) -> tuple[int, int]:
    """A validity as the kernel takes it: (seconds, nanoseconds)."""
    return int(seconds), int(seconds % 1 * 1e9)


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def mount_options(fd: int, options: dict[str, Any]) -> str:
    """The fuse filesystem's mount(2) data for the fusepy-style ``options`` (fuse_options())."""
    opts = [f"fd={fd}", "rootmode=40000", f"user_id={os.getuid()}", f"group_id={os.getgid()}"]
    opts += [name for name in ("default_permissions", "allow_other") if options.get(name)]
    return ",".join(opts)


class NoReply(Exception):
    """FORGET, INTERRUPT: the kernel waits for no answer."""


class DirHandle:
    __slots__ = ("path", "entries")

    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: list[bytes] | None = None


class RawFuse:
    """Serve ``ops`` (a FakeProcFS) at ``mountpoint`` until it is unmounted (or the connection aborted)."""

    def __init__(self, ops: Any, mountpoint: str | None, options: dict[str, Any], threads: int = 1,
                 stable_timeout: float = 0.0, cached_max: int = CACHED_MAX, fd: int = -1) -> None:
        """``fd``: a /dev/fuse descriptor already mounted by someone else (run mode mounts it inside the
        run's own mount namespace); then ``mountpoint`` is None and nothing is mounted here."""
        self.ops = ops
        self.fs = ops._call  # fs(op, args): a FakeProcFS method, any failure as a FuseOSError
        self.lock = ops._lock
        self.mountpoint = os.path.abspath(mountpoint) if mountpoint is not None else None
        self.given_fd = fd
        self.options = options
        self.threads = max(1, threads)
        self.entry_valid = float(options.get("entry_timeout", 0))
        self.attr_valid = float(options.get("attr_timeout", 0))
        # (seconds, nanoseconds) as the kernel takes them; 0 becomes 1 ns: see the module's docstring
        self.entry_times = _valid_for(self.entry_valid)
        self.attr_times = _valid_for(self.attr_valid) if self.attr_valid else (0, 1)
        self.stable_timeout = max(0.0, stable_timeout)
        self.stable_times = _valid_for(self.stable_timeout) if self.stable_timeout else self.attr_times
        # the root's attributes never change: kept 10 ms, or as long as the model's names
        self.root_times = max(self.attr_times, (0, ROOT_ATTR_VALID_NS), self.stable_times)
        # the notifier: a thread that writes invalidations (and the replies that must follow them)
        self.notes: queue.SimpleQueue[tuple[int, bytes] | None] = queue.SimpleQueue()
        self.noted = 0  # notifications queued so far (a request that queued some defers its reply)
        # stable nodeids the kernel was told it may keep, in the order of their last LOOKUP answer
        self.cached: OrderedDict[int, None] = OrderedDict()
        self.cached_max = max(1, cached_max)
        # FOPEN_NOFLUSH: close() does not take the file's inode lock to flush a page cache that
        # direct I/O never fills (fuse_flush(); without it a close waits for another process's
        # WRITE to the same file, which holds that lock for its whole round trip)
        self.direct_io = FOPEN_DIRECT_IO | FOPEN_NOFLUSH if options.get("direct_io") else 0
        self.fd = -1
        self.minor = 0
        # nodeid -> path, path -> nodeid, nodeid -> the kernel's lookup count
        self.paths: dict[int, str] = {1: "/"}
        self.ids: dict[str, int] = {"/": 1}
        self.lookups: dict[int, int] = {}
        self.next_id = 2
        self.dirs: dict[int, DirHandle] = {}
        self.next_dh = 1
        self.handlers = {
            LOOKUP: self.lookup, GETATTR: self.getattr, SETATTR: self.setattr, READLINK: self.readlink,
            SYMLINK: self.symlink, MKNOD: self.mknod, MKDIR: self.mkdir, UNLINK: self.unlink, RMDIR: self.rmdir,
            RENAME: self.rename, LINK: self.link, OPEN: self.open, READ: self.read, WRITE: self.write,
            STATFS: self.statfs, RELEASE: self.release, GETXATTR: self.getxattr, LISTXATTR: self.listxattr,
            OPENDIR: self.opendir, READDIR: self.readdir, RELEASEDIR: self.releasedir, CREATE: self.create,
            FORGET: self.forget, BATCH_FORGET: self.batch_forget, INTERRUPT: self.interrupt,
            DESTROY: self.destroy,
        }
        # anything else is ENOSYS, as from libfuse 2 for the callbacks FakeProcFS does not have: FLUSH and
        # FSYNC (the kernel stops sending them), ACCESS (never sent with default_permissions; the kernel then
        # allows), SETXATTR/REMOVEXATTR (the caller gets EOPNOTSUPP), RENAME2 (EINVAL), locks, ioctl, poll

    # ------------------------------------------------------------ mount, loop

    def mount(self) -> None:
        if self.given_fd >= 0:
            self.fd = self.given_fd
            return
        assert self.mountpoint is not None
        try:
            fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise RuntimeError(f"cannot open /dev/fuse: {e.strerror}") from None
        data = mount_options(fd, self.options)
        name = str(self.options.get("fsname", "fakeproc"))
        fstype = "fuse." + str(self.options.get("subtype", "fakeproc"))
        libc = _libc()
        if libc.mount(name.encode(), self.mountpoint.encode(), fstype.encode(), MS_NOSUID | MS_NODEV,
                      data.encode()) != 0:
            err = ctypes.get_errno()
            os.close(fd)
            raise RuntimeError(f"mount(2) of {self.mountpoint}: {os.strerror(err)}")
        self.fd = fd

    def serve(self) -> None:
        """Mount, answer INIT, serve until the mount goes away; then close the device."""
        self.mount()
        machine = self.ops.state.machine
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
        except BaseException:
            # a failure (not the unmount that ends the loop): take the mount away, as libfuse does on exit,
            # rather than leave one that answers ENOTCONN
            if self.mountpoint is not None:
                _libc().umount2(self.mountpoint.encode(), MNT_DETACH)
            raise
        finally:
            with self.lock:
                if self.changed in machine.entry_watchers:
                    machine.entry_watchers.remove(self.changed)
            if notifier.is_alive():
                self.notes.put(None)
                notifier.join(2.0)  # before the descriptor it writes to is closed (and its number reused)
            if self.given_fd < 0:  # a given descriptor is its owner's to close
                os.close(self.fd)
            self.fd = -1

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
        ops = self.ops
        trace = ops._trace
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
            if handler is None:
                err = -errno.ENOSYS
                if trace:
                    log.debug("%s", self.describe(opcode, nodeid, mv[40:n]))
            else:
                with lock:
                    ops._ctx = (uid, gid, pid)
                    noted = self.noted
                    try:
                        if trace:
                            log.debug("%s", self.describe(opcode, nodeid, mv[40:n]))
                        out = handler(nodeid, mv[40:n])
                    except FuseOSError as e:
                        err = -(e.errno or errno.EIO)
                    except NoReply:
                        continue
                    except Exception:
                        log.exception("bug in fakeproc's raw FUSE backend serving opcode %d; answering EIO", opcode)
                        err = -errno.EIO
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

    # ------------------------------------------------------------ cached names and their invalidation

    def changed(self, t: Any, gone: bool) -> None:
        """Machine.entry_watchers: task ``t`` was released (``gone``) or its owner changed.

        Called under the model's lock.  The kernel holds a name only while it holds a lookup of
        it (``self.ids``), so only those are sent: a released task's ``/TID`` (for a leader that
        drops its whole directory) and ``/TGID/task/TID``; for an owner change, the attributes of
        every node under those two.
        """
        tid, tgid = t.tid, t.tgid
        ids = self.ids
        if gone:
            if f"/{tid}" in ids:
                self.invalidate_entry(1, str(tid))
            task_dir = ids.get(f"/{tgid}/task")
            if task_dir is not None:
                self.invalidate_entry(task_dir, str(tid))
            return
        prefixes = (f"/{tid}", f"/{tgid}/task/{tid}")
        for nid, path in self.paths.items():
            for p in prefixes:
                if path == p or path.startswith(p + "/"):
                    self.invalidate_inode(nid)
                    break

    def expire_oldest(self) -> None:
        """Past ``cached_max``: drop the oldest tenth of the names the kernel keeps; FORGET follows.

        One notification per top-level name (``/PID``: dropping a directory drops everything the
        kernel keeps under it), so a ``ps`` pays one per process, not one per file it read.
        (FUSE_EXPIRE_ONLY would only mark names stale: Linux 6.18 then keeps an unused dentry all
        the same.  Dropped, a directory in use, a shell's working directory, still answers
        relative lookups, through its nodeid.)"""
        cached, paths = self.cached, self.paths
        tops: dict[str, None] = {}
        for _ in range(max(1, self.cached_max // 10)):
            if not cached:
                break
            path = paths.get(cached.popitem(last=False)[0])
            if path is not None:
                tops[path[1:].partition("/")[0]] = None
        for name in tops:
            self.invalidate_entry(1, name, count=False)

    def invalidate_entry(self, parent: int, name: str, count: bool = True) -> None:
        raw = name.encode()
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

        A thread of its own: to drop a name the kernel takes its directory's lock, which a
        LOOKUP in that directory holds while it waits for the loop's answer.
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

    # ------------------------------------------------------------ helpers

    def path(self, nodeid: int) -> str:
        p = self.paths.get(nodeid)
        if p is None:
            raise FuseOSError(errno.ENOENT)
        return p

    def child(self, nodeid: int, name: bytes | memoryview) -> str:
        parent = self.path(nodeid)
        try:
            n = bytes(name).decode()
        except UnicodeDecodeError:
            raise FuseOSError(errno.EINVAL) from None  # fusepy: an exception decoding the path -> EINVAL
        return "/" + n if parent == "/" else parent + "/" + n

    @staticmethod
    def cstrings(data: memoryview) -> list[bytes]:
        return bytes(data).split(b"\0")

    @staticmethod
    def attr(st: dict[str, Any], ino: int) -> bytes:
        if len(st) == 8 or "st_ino" in st and len(st) == 9:  # what FakeProcFS.getattr() gives: all there
            a, m, c = st["st_atime"], st["st_mtime"], st["st_ctime"]
            return ATTR.pack(ino, st["st_size"], 0, a // 1_000_000_000, m // 1_000_000_000, c // 1_000_000_000,
                             a % 1_000_000_000, m % 1_000_000_000, c % 1_000_000_000, st["st_mode"],
                             st["st_nlink"], st["st_uid"] & 0xFFFFFFFF, st["st_gid"] & 0xFFFFFFFF, 0, 0, 0)
        g = st.get
        a, m, c = g("st_atime", 0), g("st_mtime", 0), g("st_ctime", 0)
        return ATTR.pack(ino, g("st_size", 0), g("st_blocks", 0), a // 1_000_000_000, m // 1_000_000_000,
                         c // 1_000_000_000, a % 1_000_000_000, m % 1_000_000_000, c % 1_000_000_000,
                         st["st_mode"], g("st_nlink", 0), g("st_uid", 0) & 0xFFFFFFFF, g("st_gid", 0) & 0xFFFFFFFF,
                         g("st_rdev", 0), g("st_blksize", 0), 0)

    def attr_reply(self, nodeid: int, st: dict[str, Any], stable: bool = False) -> bytes:
        sec, nsec = self.root_times if nodeid == 1 else self.stable_times if stable else self.attr_times
        return ATTR_OUT.pack(sec, nsec, 0) + self.attr(st, nodeid)

    def remember(self, path: str) -> int:
        nid = self.ids.get(path)
        if nid is None:
            nid = self.next_id
            self.next_id += 1
            self.ids[path] = nid
            self.paths[nid] = path
            self.lookups[nid] = 1
        else:
            self.lookups[nid] = self.lookups.get(nid, 0) + 1
        return nid

    def entry(self, path: str) -> bytes:
        st, stable = self.fs("_stat", (path, None))
        nid = self.remember(path)
        if stable and self.stable_timeout:
            (esec, ensec) = (asec, ansec) = self.stable_times
            cached = self.cached
            cached[nid] = None
            cached.move_to_end(nid)
            if len(cached) > self.cached_max:
                self.expire_oldest()
        else:
            (esec, ensec), (asec, ansec) = self.entry_times, self.attr_times
        return ENTRY_OUT.pack(nid, 0, esec, asec, ensec, ansec) + self.attr(st, nid)

    def drop(self, nodeid: int, n: int) -> None:
        if nodeid == 1:
            return
        left = self.lookups.get(nodeid, 0) - n
        if left > 0:
            self.lookups[nodeid] = left
            return
        self.lookups.pop(nodeid, None)
        self.cached.pop(nodeid, None)
        path = self.paths.pop(nodeid, None)
        if path is not None and self.ids.get(path) == nodeid:
            del self.ids[path]

    def describe(self, opcode: int, nodeid: int, body: memoryview) -> str:
        """--verbose: "request OP ('PATH',)", as the fusepy backend logs (a lookup names the child)."""
        path = self.paths.get(nodeid, "?")
        if opcode == LOOKUP:
            try:
                path = self.child(nodeid, body[:-1])
            except FuseOSError:
                pass
        return f"request {OPNAMES.get(opcode, opcode)} ({path!r},)"

    # ------------------------------------------------------------ requests

    def lookup(self, nodeid: int, data: memoryview) -> bytes:
        return self.entry(self.child(nodeid, data[:-1]))

    def forget(self, nodeid: int, data: memoryview) -> bytes:
        self.drop(nodeid, FORGET_IN.unpack_from(data)[0])
        raise NoReply

    def batch_forget(self, nodeid: int, data: memoryview) -> bytes:
        count, _ = BATCH_FORGET_IN.unpack_from(data)
        for i in range(count):
            nid, n = FORGET_ONE.unpack_from(data, 8 + 16 * i)
            self.drop(nid, n)
        raise NoReply

    def interrupt(self, nodeid: int, data: memoryview) -> bytes:
        raise NoReply  # every request is answered at once anyway

    def destroy(self, nodeid: int, data: memoryview) -> bytes:
        return b""

    def getattr(self, nodeid: int, data: memoryview) -> bytes:
        flags, _, fh = GETATTR_IN.unpack_from(data)
        st, stable = self.fs("_stat", (self.path(nodeid), fh if flags & GETATTR_FH else None))
        return self.attr_reply(nodeid, st, stable)

    def setattr(self, nodeid: int, data: memoryview) -> bytes:
        # libfuse 2's fuse_lib_setattr(): chmod, chown, (f)truncate, utimens (only with both times), getattr
        (valid, _, fh, size, _lo, atime, mtime, _ctime, atimensec, mtimensec, _cn, mode, _u4, uid, gid,
         _u5) = SETATTR_IN.unpack_from(data)
        path = self.path(nodeid)
        fh = fh if valid & FATTR_FH else None
        if valid & FATTR_MODE:
            self.fs("chmod", (path, mode))
        if valid & (FATTR_UID | FATTR_GID):
            self.fs("chown", (path, uid if valid & FATTR_UID else -1, gid if valid & FATTR_GID else -1))
        if valid & FATTR_SIZE:
            if fh is not None:
                self.fs("truncate", (path, size, fh))
            else:
                self.fs("truncate", (path, size))
        if valid & (FATTR_ATIME | FATTR_MTIME) == FATTR_ATIME | FATTR_MTIME:
            self.fs("utimens", (path, (atime * 1_000_000_000 + atimensec, mtime * 1_000_000_000 + mtimensec)))
        return self.attr_reply(nodeid, self.fs("getattr", (path, fh)))

    def readlink(self, nodeid: int, data: memoryview) -> bytes:
        return self.fs("readlink", (self.path(nodeid),)).encode()[:4096]

    def open(self, nodeid: int, data: memoryview) -> bytes:
        flags, _ = OPEN_IN.unpack_from(data)
        fh = self.fs("open", (self.path(nodeid), flags))
        return OPEN_OUT.pack(fh, self.direct_io, 0)

    def read(self, nodeid: int, data: memoryview) -> bytes:
        fh, offset, size, *_ = RW_IN.unpack_from(data)
        out = self.fs("read", (self.path(nodeid), size, offset, fh))
        if len(out) > size:
            raise FuseOSError(errno.EINVAL)  # fusepy's assertion
        return out

    def write(self, nodeid: int, data: memoryview) -> bytes:
        fh, offset, size, *_ = RW_IN.unpack_from(data)
        n = self.fs("write", (self.path(nodeid), bytes(data[40:40 + size]), offset, fh))
        return WRITE_OUT.pack(n, 0)

    def release(self, nodeid: int, data: memoryview) -> bytes:
        fh = RELEASE_IN.unpack_from(data)[0]
        self.fs("release", (self.paths.get(nodeid, ""), fh))
        return b""

    def statfs(self, nodeid: int, data: memoryview) -> bytes:
        sv = self.fs("statfs", (self.path(nodeid),))
        g = sv.get
        return STATFS_OUT.pack(g("f_blocks", 0), g("f_bfree", 0), g("f_bavail", 0), g("f_files", 0),
                               g("f_ffree", 0), g("f_bsize", 0), g("f_namemax", 0), g("f_frsize", 0), 0)

    @staticmethod
    def sized(value: bytes, size: int) -> bytes:
        if size == 0:
            return XATTR_OUT.pack(len(value), 0)
        if len(value) > size:
            raise FuseOSError(errno.ERANGE)
        return value

    def getxattr(self, nodeid: int, data: memoryview) -> bytes:
        size, _ = XATTR_IN.unpack_from(data)
        name = bytes(data[8:]).split(b"\0")[0].decode(errors="surrogateescape")
        return self.sized(self.fs("getxattr", (self.path(nodeid), name)), size)

    def listxattr(self, nodeid: int, data: memoryview) -> bytes:
        size, _ = XATTR_IN.unpack_from(data)
        names = "\0".join(self.fs("listxattr", (self.path(nodeid),)) or []).encode()
        return self.sized(names + b"\0" if names else b"", size)

    def opendir(self, nodeid: int, data: memoryview) -> bytes:
        fh = self.next_dh
        self.next_dh += 1
        self.dirs[fh] = DirHandle(self.path(nodeid))
        return OPEN_OUT.pack(fh, 0, 0)

    def readdir(self, nodeid: int, data: memoryview) -> bytes:
        fh, offset, size, *_ = RW_IN.unpack_from(data)
        dh = self.dirs.get(fh)
        if dh is None:
            dh = DirHandle(self.path(nodeid))
        if dh.entries is None or offset == 0:
            dh.entries = []
            for i, name in enumerate(self.fs("readdir", (dh.path, 0))):
                b = name.encode()
                rec = DIRENT.pack(UNKNOWN_INO, i + 1, len(b), 0) + b
                dh.entries.append(rec + b"\0" * (-len(rec) % 8))
        out = []
        total = 0
        for rec in dh.entries[offset:]:
            if total + len(rec) > size:
                break
            out.append(rec)
            total += len(rec)
        return b"".join(out)

    def releasedir(self, nodeid: int, data: memoryview) -> bytes:
        self.dirs.pop(RELEASE_IN.unpack_from(data)[0], None)
        return b""

    # what procfs refuses: FakeProcFS says how, as through fusepy

    def unlink(self, nodeid: int, data: memoryview) -> bytes:
        self.fs("unlink", (self.child(nodeid, data[:-1]),))
        return b""

    def rmdir(self, nodeid: int, data: memoryview) -> bytes:
        self.fs("rmdir", (self.child(nodeid, data[:-1]),))
        return b""

    def mkdir(self, nodeid: int, data: memoryview) -> bytes:
        mode, _umask = MKDIR_IN.unpack_from(data)
        path = self.child(nodeid, bytes(data[8:]).split(b"\0")[0])
        self.fs("mkdir", (path, mode))
        return self.entry(path)

    def mknod(self, nodeid: int, data: memoryview) -> bytes:
        mode, rdev, _umask, _ = MKNOD_IN.unpack_from(data)
        path = self.child(nodeid, bytes(data[16:]).split(b"\0")[0])
        self.fs("mknod", (path, mode, rdev))
        return self.entry(path)

    def create(self, nodeid: int, data: memoryview) -> bytes:
        _flags, mode, _umask, _ = CREATE_IN.unpack_from(data)
        path = self.child(nodeid, bytes(data[16:]).split(b"\0")[0])
        fh = self.fs("create", (path, mode))
        return self.entry(path) + OPEN_OUT.pack(fh, self.direct_io, 0)

    def symlink(self, nodeid: int, data: memoryview) -> bytes:
        name, target = self.cstrings(data)[:2]
        path = self.child(nodeid, name)
        self.fs("symlink", (path, target.decode(errors="surrogateescape")))
        return self.entry(path)

    def link(self, nodeid: int, data: memoryview) -> bytes:
        old = self.path(LINK_IN.unpack_from(data)[0])
        path = self.child(nodeid, bytes(data[8:]).split(b"\0")[0])
        self.fs("link", (path, old))
        return self.entry(path)

    def rename(self, nodeid: int, data: memoryview) -> bytes:
        newdir = RENAME_IN.unpack_from(data)[0]
        old, new = self.cstrings(data[8:])[:2]
        self.fs("rename", (self.child(nodeid, old), self.child(newdir, new)))
        return b""
