"""The filesystem core: what each filesystem call does to the nodes of the tables.

:class:`ProcFS` answers every call a FUSE backend passes on, by node (fakeproc.fs.tree), with the
kernel's errnos; it imports no FUSE binding, and no OOM rule: the tables' handlers call the machine.
Errors leave it as :class:`~fakeproc.fs.tree.FsError`, ``MachineError`` or, in run mode, the host's
``OSError``; a backend turns each into an errno with :func:`~fakeproc.fs.tree.errno_of`.

Run mode's passthrough of the host's /proc (:mod:`fakeproc.fs.passthrough`) plugs in beside the
tables (a :class:`~fakeproc.fs.tree.Fallback`): its nodes carry a host path (``Node.real``).
"""

from __future__ import annotations

import errno
import stat

from .tree import Attr, Fallback, FsError, FsState, Handle, Node, Request, Row


class ProcFS:
    """Every filesystem call, by node, for one machine (and, in run mode, the host's /proc behind it)."""

    def __init__(self, state: FsState, root: Row, passthrough: Fallback | None = None) -> None:
        self.state = state
        self.root = Node(root)
        self.passthrough = passthrough
        self.version = state.machine.era.version

    def request(self, uid: int, gid: int, tid: int, handle: Handle | None = None, offset: int = 0) -> Request:
        return Request(self.state, uid, gid, tid, handle, offset)

    # ------------------------------------------------------------ names

    def alive(self, node: Node) -> bool:
        t = node.task
        return t is None or self.state.machine.tasks.get(t.tid) is t

    def shown(self, row: Row) -> bool:
        """Does this row exist on this mount: in the era's kernel version, with or without a reality?"""
        if not row.exists_in(self.version):
            return False
        reality = self.state.reality
        if row.reality and reality is None:
            return False
        # run mode: the host's meminfo, stat, ... (a simulated machine keeps its own)
        return not (row.companion and reality is not None and not reality.simulated_machine)

    def lookup(self, parent: Node, name: str, req: Request) -> Node:
        """The entry ``name`` of directory ``parent`` (ENOENT if it has none, ENOTDIR if it is no directory)."""
        if parent.real is not None:
            assert self.passthrough is not None
            return self.passthrough.lookup(parent, name, req)
        table = parent.row.table
        if table is None:
            raise FsError(errno.ENOTDIR)
        if not self.alive(parent):
            raise FsError(errno.ENOENT)
        row = table.row(name)
        if row is not None and self.shown(row):
            return Node(row, parent.task, parent.view)
        if table.dynamic is not None:
            node = table.dynamic.lookup(req, parent, name)
            if node is not None:
                return node
        if self.passthrough is not None:
            if parent.row is self.root.row:
                return self.passthrough.lookup_root(name, req)
            if parent.row.host is not None:  # a model directory laid over the host's (sys/vm)
                return self.passthrough.lookup_host(f"{parent.row.host}/{name}", req)
        raise FsError(errno.ENOENT)

    def resolve(self, path: str, req: Request) -> Node:
        """The node of a path from the root (``/500/task/503/oom_adj``): one lookup per name."""
        node = self.root
        for name in path.split("/"):
            if name:
                node = self.lookup(node, name, req)
        return node

    def readdir(self, node: Node, req: Request) -> list[tuple[str, int]]:
        """(name, mode) of each entry, ``.`` and ``..`` first."""
        if node.real is not None:
            assert self.passthrough is not None
            return self.passthrough.readdir(node, req)
        table = node.row.table
        if table is None:
            raise FsError(errno.ENOTDIR)
        if not self.alive(node):
            raise FsError(errno.ENOENT)
        out = [(".", stat.S_IFDIR), ("..", stat.S_IFDIR)]
        out += [(r.name, r.mode) for r in table.rows if self.shown(r)]
        if self.passthrough is not None:
            if node.row is self.root.row:
                out = self.passthrough.root_listing(out, req)
            elif node.row.host is not None:
                out = self.passthrough.overlay_listing(node.row.host, out, req)
        if table.dynamic is not None:
            out += [(n, stat.S_IFDIR) for n in table.dynamic.names(req, node)]
        return out

    def readlink(self, node: Node, req: Request) -> str:
        if node.real is not None:
            assert self.passthrough is not None
            return self.passthrough.readlink(node, req)
        if node.row.link is None:
            raise FsError(errno.EINVAL)
        return node.row.link(req, node)

    # ------------------------------------------------------------ attributes

    def getattr(self, node: Node, req: Request, handle: Handle | None = None) -> Attr:
        """stat(): procfs's modes and owners (a process's entries belong to its uid).  An open file keeps
        answering after its process exited, as procfs's inode does."""
        if node.real is not None:
            assert self.passthrough is not None
            return self.passthrough.getattr(node, req, handle)
        state = self.state
        alive = self.alive(node)
        if not alive and handle is None:
            raise FsError(errno.ENOENT)
        t = node.task
        row = node.row
        if t is not None:
            uid, gid = t.uid, t.gid
        elif row.link is not None:
            uid = gid = 0
        else:
            uid, gid = state.owner_uid, state.owner_gid
        reality = state.reality
        # a run-mode mirror of a real process can change behind the model's back: never stable
        stable = alive and (t is None or reality is None or reality.simulated(t.tgid)) and row.link is None
        m = state.mtime_ns
        return Attr(row.mode, 2 if row.table is not None else 1, uid, gid, 0, m, m, m, stable)

    def setattr(self, node: Node, req: Request, mode: int | None = None, uid: int | None = None,
                gid: int | None = None, size: int | None = None, times: bool = False,
                handle: Handle | None = None) -> Attr:
        """chmod, chown, truncate and utimens, in libfuse's order, then the attributes.

        procfs has no chmod (EPERM); proc_setattr() takes a chown or a time change where the row says so
        (``Row.settable``) and keeps nothing; a size change of a file is ignored (O_TRUNC), of a
        directory EISDIR."""
        if node.real is not None:
            assert self.passthrough is not None
            return self.passthrough.setattr(node, req, mode, uid, gid, size, times, handle)
        if not self.alive(node) and handle is None:
            raise FsError(errno.ENOENT)
        row = node.row
        if mode is not None:
            raise FsError(errno.EPERM)
        if (uid is not None or gid is not None) and "owner" not in row.settable:
            raise FsError(errno.EPERM)
        if size is not None and row.table is not None:
            raise FsError(errno.EISDIR)
        if times and "times" not in row.settable:
            raise FsError(errno.EPERM)
        return self.getattr(node, req, handle)

    # ------------------------------------------------------------ I/O

    def open(self, node: Node, flags: int, req: Request) -> Handle:
        if node.real is not None:
            assert self.passthrough is not None
            return self.passthrough.open(node, flags, req)
        if not self.alive(node):
            raise FsError(errno.ENOENT)
        if node.row.table is not None:
            raise FsError(errno.EISDIR)
        return Handle(node)

    def read(self, handle: Handle, size: int, offset: int, req: Request) -> bytes:
        node = handle.node
        if node.real is not None:
            assert self.passthrough is not None
            return self.passthrough.read(handle, size, offset, req)
        row = node.row
        if row.read is None:
            raise FsError(errno.EINVAL)
        self._before_access(node, writing=False)
        req.handle, req.offset, req.size = handle, offset, size
        data = row.read(req, node)
        if row.positioned:
            return data[:size]
        return data[offset:offset + size]

    def write(self, handle: Handle, data: bytes, offset: int, req: Request) -> int:
        node = handle.node
        if node.real is not None:
            assert self.passthrough is not None
            return self.passthrough.write(handle, data, offset, req)
        row = node.row
        if row.write is None:
            raise FsError(errno.EINVAL)
        self._before_access(node, writing=True)
        req.handle, req.offset = handle, offset
        return row.write(req, node, data)

    def _before_access(self, node: Node, writing: bool) -> None:
        """A task's file: run mode brings the real process (and its children) up to date first; a read needs
        the live task of its id (ESRCH, as procfs says for an open file whose process exited).  A write's
        handler leaves that check to the machine, which makes it where the kernel does: after parsing."""
        t = node.task
        if t is None:
            return
        reality = self.state.reality
        if reality is not None and self.alive(node) and not reality.simulated(t.tgid):
            reality.before_access(t.tid, writing)
        if not writing and not self.alive(node):
            raise FsError(errno.ESRCH)

    def release(self, handle: Handle) -> None:
        if handle.node.real is not None:
            assert self.passthrough is not None
            self.passthrough.release(handle)
        elif handle.node.row.release is not None:
            handle.node.row.release(handle)

    # ------------------------------------------------------------ what procfs refuses, and how

    def refuse_change(self, parent: Node, name: str, req: Request) -> None:
        """unlink, rmdir: the name must exist (else ENOENT); procfs has no ->unlink/->rmdir (EPERM)."""
        self.lookup(parent, name, req)
        raise FsError(errno.EPERM)

    def refuse_create(self, parent: Node, name: str, req: Request) -> None:
        """mkdir, mknod, create, symlink, link: procfs's lookup of a new name fails first (ENOENT)."""
        raise FsError(errno.ENOENT)

    def refuse_rename(self, old_parent: Node, old: str, new_parent: Node, new: str, req: Request) -> None:
        """A missing target fails its lookup (ENOENT); an existing one reaches vfs_rename(), and procfs
        directories have no ->rename (EPERM)."""
        self.lookup(old_parent, old, req)
        self.lookup(new_parent, new, req)
        raise FsError(errno.EPERM)

    def listxattr(self, node: Node, req: Request) -> list[str]:
        self._exists(node, req)
        return []  # procfs has no extended attributes (and lists none)

    def getxattr(self, node: Node, name: str, req: Request) -> bytes:
        self._exists(node, req)
        raise FsError(errno.EOPNOTSUPP)  # no xattr handlers: the VFS's answer for procfs

    def _exists(self, node: Node, req: Request) -> None:
        if node.real is not None:
            assert self.passthrough is not None
            self.passthrough.getattr(node, req, None)
        elif not self.alive(node):
            raise FsError(errno.ENOENT)
