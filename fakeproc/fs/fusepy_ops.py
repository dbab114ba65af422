"""The fusepy backend: libfuse 2's path-based callbacks, answered by the filesystem core.

libfuse's high-level API names every file by its path; this adapter walks a path to a node through
the core (one ``lookup`` per name: fakeproc.fs.core.ProcFS.resolve) and calls the core with it.
Every callback runs under the model's one lock; every failure becomes the errno ``errno_of`` gives
(a bug is logged with its traceback and answered with EIO, never fusepy's default EINVAL).
Only the callbacks defined here are registered with libfuse; in particular there is no ``flush``,
so the kernel stops sending FLUSH after the first ENOSYS (nothing here needs it).
"""

from __future__ import annotations

import ctypes
import logging
from typing import Any

from .core import ProcFS
from .fusepy import FUSE, FuseOSError, c_stat, fuse_get_context, set_st_attrs
from .tree import FsError, Handle, Node, Request, errno_of

log = logging.getLogger(__name__)


def fuse_options(allow_other: bool) -> dict[str, Any]:
    """libfuse 2's mount options (see docs/security.md): why each one is here.

    - direct_io: every read/write reaches the daemon, sizes read 0 as in procfs, and short write counts
      reach the caller;
    - allow_other + default_permissions: other users get in, and the kernel checks the mode and owner of
      each file as procfs would;
    - entry/attr timeouts 0: a pid that exits vanishes at once, and a write followed by a read never sees
      stale attributes;
    - nonempty: the default mount point holds a .gitkeep (libfuse 2 refuses non-empty directories otherwise).
    """
    opts: dict[str, Any] = {
        "foreground": True, "nothreads": True, "direct_io": True, "default_permissions": True,
        "fsname": "fakeproc", "subtype": "fakeproc", "entry_timeout": 0, "attr_timeout": 0,
        "negative_timeout": 0, "nonempty": True,
    }
    if allow_other:
        opts["allow_other"] = True
    return opts


class FakeProcOperations:
    """fusepy Operations over a :class:`ProcFS`.

    fusepy registers every attribute named like a libfuse callback (even ``lock``!), so everything that
    is not a callback here starts with ``_``.
    """

    use_ns = True  # fusepy: utimens() times in nanoseconds

    def __init__(self, fs: ProcFS, lock: Any, trace: bool = False) -> None:
        self._fs = fs
        self._lock = lock
        self._trace = trace  # --verbose: log every request
        self._handles: dict[int, Handle] = {}
        self._open_paths: dict[str, Handle] = {}  # fstat() of a file whose process exited: its open handle
        self._next_fh = 1

    def __call__(self, op: str, *args: Any) -> Any:
        """fusepy's single entry point: one callback under the lock, its failure as the kernel's errno."""
        if self._trace:
            log.debug("request %s %r", op, args[:1])
        with self._lock:
            try:
                return getattr(self, op)(*args)
            except FuseOSError:
                raise
            except Exception as e:  # noqa: BLE001 - every failure becomes an errno, bugs logged
                raise FuseOSError(errno_of(e, f"{op}{args[:1]!r}")) from None

    def _req(self) -> Request:
        uid, gid, pid = fuse_get_context()
        return self._fs.request(uid, gid, pid)

    def _node(self, path: str, req: Request) -> Node:
        return self._fs.resolve(path, req)

    @staticmethod
    def _split(path: str) -> tuple[str, str]:
        parent, _, name = path.rstrip("/").rpartition("/")
        return parent or "/", name

    # ------------------------------------------------------------- metadata

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        req = self._req()
        h = self._handles.get(fh) if fh is not None else None
        if h is None:
            try:
                node = self._node(path, req)
            except FsError:
                h = self._open_paths.get(path)
                if h is None:
                    raise
                node = h.node
        else:
            node = h.node
        a = self._fs.getattr(node, req, h)
        return {"st_mode": a.mode, "st_nlink": a.nlink, "st_uid": a.uid, "st_gid": a.gid, "st_size": a.size,
                "st_atime": a.atime_ns, "st_mtime": a.mtime_ns, "st_ctime": a.ctime_ns}

    def readdir(self, path: str, fh: int) -> list[str]:
        req = self._req()
        return [name for name, _mode in self._fs.readdir(self._node(path, req), req)]

    def readlink(self, path: str) -> str:
        req = self._req()
        return self._fs.readlink(self._node(path, req), req)

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 255}

    def _setattr(self, path: str, fh: int | None = None, **change: Any) -> int:
        req = self._req()
        h = self._handles.get(fh) if fh is not None else None
        node = h.node if h is not None else self._node(path, req)
        self._fs.setattr(node, req, handle=h, **change)
        return 0

    def chmod(self, path: str, mode: int) -> int:
        return self._setattr(path, mode=mode)

    def chown(self, path: str, uid: int, gid: int) -> int:
        # libfuse 2 passes -1 for an id that does not change
        return self._setattr(path, uid=None if uid in (-1, 0xFFFFFFFF) else uid,
                             gid=None if gid in (-1, 0xFFFFFFFF) else gid)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        return self._setattr(path, fh, size=length)

    def utimens(self, path: str, times: Any = None) -> int:
        return self._setattr(path, times=True)

    def listxattr(self, path: str) -> list[str]:
        req = self._req()
        return self._fs.listxattr(self._node(path, req), req)

    def getxattr(self, path: str, name: str, position: int = 0) -> bytes:
        req = self._req()
        return self._fs.getxattr(self._node(path, req), name, req)

    # ------------------------------------------------------------------ I/O

    def open(self, path: str, flags: int) -> int:
        req = self._req()
        h = self._fs.open(self._node(path, req), flags, req)
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = h
        self._open_paths[path] = h
        return fh

    def _handle(self, path: str, fh: int) -> Handle:
        h = self._handles.get(fh)
        if h is None:  # libfuse may call without an open
            return self._fs.open(self._node(path, self._req()), 0, self._req())
        return h

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self._fs.read(self._handle(path, fh), size, offset, self._req())

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return self._fs.write(self._handle(path, fh), bytes(data), offset, self._req())

    def release(self, path: str, fh: int) -> int:
        h = self._handles.pop(fh, None)
        if h is not None:
            if self._open_paths.get(path) is h:
                del self._open_paths[path]
            self._fs.release(h)
        return 0

    # ----------------------------------------- what procfs refuses, and how

    def unlink(self, path: str) -> int:
        parent, name = self._split(path)
        req = self._req()
        self._fs.refuse_change(self._node(parent, req), name, req)
        return 0

    rmdir = unlink

    def _refuse_create(self, path: str) -> int:
        parent, name = self._split(path)
        req = self._req()
        self._fs.refuse_create(self._node(parent, req), name, req)
        return 0

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        return self._refuse_create(path)

    def mkdir(self, path: str, mode: int) -> int:
        return self._refuse_create(path)

    def symlink(self, target: str, source: str) -> int:
        return self._refuse_create(target)

    def link(self, target: str, source: str) -> int:
        return self._refuse_create(target)

    def mknod(self, path: str, mode: int, dev: int) -> int:
        return self._refuse_create(path)

    def rename(self, old: str, new: str) -> int:
        req = self._req()
        (op, on), (np_, nn) = self._split(old), self._split(new)
        self._fs.refuse_rename(self._node(op, req), on, self._node(np_, req), nn, req)
        return 0


class FastFUSE(FUSE):
    """fusepy's FUSE, with a cheaper getattr (most of the requests ``ps`` causes: the kernel asks again for
    every path component, as the timeouts are 0).

    fusepy fills the ``struct stat`` field by field from the dict getattr() returns; here the struct of a
    given dict is built once (by fusepy's own ``set_st_attrs``, so the bytes are the same) and copied in.
    The attributes themselves are still asked of the filesystem at every request: nothing is stale.
    """

    STAT_CACHE_MAX = 4096  # distinct attribute sets (mode, owner, times...)

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


def serve(fs: ProcFS, mountpoint: str, lock: Any, allow_other: bool, trace: bool = False) -> None:
    """Mount with libfuse 2 (fusermount for other users than root) and serve until unmounted."""
    FastFUSE(FakeProcOperations(fs, lock, trace), mountpoint, **fuse_options(allow_other))
