"""The filesystem core in this process: what a mount answers, without FUSE, root or a kernel.

:class:`CoreMount` serves a machine through ``fakeproc.fs.core.ProcFS`` and calls it as the kernel's
VFS does for a caller (uid, gid, thread id): the path walk, the permission check that
``default_permissions`` makes from the modes and owners the core reports, open, read, write, close.
The fast tier drives everything that does not need the kernel's VFS through it: the era rules, every
conformance vector through the write handlers, the killer, the control verbs, hostile input.
"""

from __future__ import annotations

import errno
import os
import stat as statmod

from fakeproc.control import LONGEST_PIECE, Control
from fakeproc.fs.core import ProcFS
from fakeproc.fs.privilege import CapsPrivilege, OwnerPrivilege, Privilege
from fakeproc.fs.tables import ROOT_DIR
from fakeproc.fs.tree import Attr, FsError, FsState, Handle, errno_of
from fakeproc.kernel.eras import ERAS
from fakeproc.machine import Machine
from fakeproc.machine.scenario import build_machine, load_scenario

#: the caller's thread when none is named: this process (its real comm and capabilities, as a mount sees them)
ME = os.getpid()


def privilege(name: str) -> Privilege:
    """``owner``: root and the mounter hold CAP_SYS_RESOURCE; ``caps``: this process's real capabilities
    decide, as they do through a mount (root here lacks CAP_SYS_RESOURCE)."""
    return CapsPrivilege() if name == "caps" else OwnerPrivilege(0)


def may_open(a: Attr, flags: int, uid: int, gid: int) -> bool:
    """generic_permission() for ``default_permissions``: root (CAP_DAC_OVERRIDE) may read and write anything;
    others get the owner's, the group's or everyone's bits."""
    acc = flags & os.O_ACCMODE
    want = (4 if acc in (os.O_RDONLY, os.O_RDWR) else 0) | (2 if acc in (os.O_WRONLY, os.O_RDWR) else 0)
    if uid == 0:
        return True
    bits = a.mode >> 6 if uid == a.uid else a.mode >> 3 if gid == a.gid else a.mode
    return bits & want == want


class CoreMount:
    """A machine behind the filesystem core, called like a mount: ``read("500/oom_score")``, ``ctl("fork", "1")``."""

    def __init__(self, era: str = "2.6.32", privilege_name: str = "owner", scenario: str | None = None,
                 machine: Machine | None = None, text: str | None = None) -> None:
        def boot() -> Machine:
            return build_machine(text, ERAS[era]) if text is not None else load_scenario(scenario, ERAS[era])

        self.boot = boot
        if machine is None:
            machine = boot()
        self.machine = machine
        self.control = Control(machine, lambda: {"daemon_pid": ME, "mountpoint": "(in-process)",
                                                 "privilege": privilege_name}, self._reboot)
        self.state = FsState(machine, privilege(privilege_name), 0, 0, self.control)
        self.fs = ProcFS(self.state, ROOT_DIR)

    def _reboot(self) -> str:
        """``ctl reboot`` as the daemon does it (fakeproc.daemon.Daemon.reboot)."""
        new = self.boot()
        new.succeed(self.machine)
        self.machine = self.control.machine = self.state.machine = new
        return f"rebooted: {len(new.processes)} processes\n"

    # ------------------------------------------------------------ system calls, as a caller makes them

    def request(self, uid: int = 0, gid: int = 0, tid: int = ME):  # noqa: ANN201 - fakeproc.fs.core.Request
        return self.fs.request(uid, gid, tid)

    def open(self, rel: str, flags: int = os.O_RDONLY, uid: int = 0, gid: int = 0, tid: int = ME) -> Handle:
        """open(2): ENOENT, ENOTDIR, EACCES as the VFS would answer, then the core's open."""
        req = self.request(uid, gid, tid)
        try:
            node = self.fs.resolve(rel, req)
            a = self.fs.getattr(node, req)
            if not may_open(a, flags, uid, gid):
                raise FsError(errno.EACCES)
            if statmod.S_ISDIR(a.mode) and flags & os.O_ACCMODE != os.O_RDONLY:
                raise FsError(errno.EISDIR)
            return self.fs.open(node, flags, req)
        except Exception as e:  # noqa: BLE001 - as a system call reports it
            raise _oserror(e, rel) from None

    def pread(self, h: Handle, size: int = 4096, offset: int = 0, uid: int = 0, tid: int = ME) -> bytes:
        try:
            return self.fs.read(h, size, offset, self.request(uid, uid, tid))
        except Exception as e:  # noqa: BLE001
            raise _oserror(e) from None

    def pwrite(self, h: Handle, data: bytes, offset: int = 0, uid: int = 0, tid: int = ME) -> int:
        """write(2): a zero-byte write reaches the handler here (through FUSE the kernel answers 0 itself)."""
        try:
            return self.fs.write(h, data, offset, self.request(uid, uid, tid))
        except Exception as e:  # noqa: BLE001
            raise _oserror(e) from None

    def close(self, h: Handle) -> None:
        self.fs.release(h)

    # ------------------------------------------------------------ what a shell does

    def read(self, rel: str, uid: int = 0) -> str:
        """``cat``: read until the end."""
        h = self.open(rel, uid=uid)
        try:
            out, offset = b"", 0
            while chunk := self.pread(h, 4096, offset, uid):
                out += chunk
                offset += len(chunk)
            return out.decode("utf-8", "surrogateescape")
        finally:
            self.close(h)

    def write(self, rel: str, *chunks: bytes, flags: int = os.O_WRONLY | os.O_TRUNC, uid: int = 0,
              tid: int = ME) -> list[int | str]:
        """One open, one write(2) per chunk: each one's count or errno name (as the conformance probe records)."""
        h = self.open(rel, flags, uid, uid, tid)
        out: list[int | str] = []
        offset = 0
        try:
            for c in chunks:
                try:
                    n = self.pwrite(h, c, offset, uid, tid)
                    offset += n
                    out.append(n)
                except OSError as e:
                    out.append(errno.errorcode[e.errno])
        finally:
            self.close(h)
        return out

    def echo(self, rel: str, text: str, uid: int = 0, tid: int = ME) -> None:
        """``echo TEXT > FILE``: raises the write's OSError, as the shell reports it."""
        (res,) = self.write(rel, (text + "\n").encode(), uid=uid, tid=tid)
        if isinstance(res, str):
            raise OSError(getattr(errno, res), os.strerror(getattr(errno, res)))

    def exists(self, rel: str) -> bool:
        try:
            self.fs.resolve(rel, self.request())
        except (FsError, OSError):
            return False
        return True

    def listdir(self, rel: str = "") -> list[str]:
        try:
            req = self.request()
            return [n for n, _ in self.fs.readdir(self.fs.resolve(rel, req), req) if n not in (".", "..")]
        except Exception as e:  # noqa: BLE001
            raise _oserror(e, rel) from None

    def stat(self, rel: str) -> Attr:
        try:
            req = self.request()
            return self.fs.getattr(self.fs.resolve(rel, req), req)
        except Exception as e:  # noqa: BLE001
            raise _oserror(e, rel) from None

    # ------------------------------------------------------------ the control file

    def ctl(self, *words: str, check: bool = True) -> str:
        """One control line, its reply read back on the same descriptor (what ``fakeproc ctl`` does)."""
        import shlex

        h = self.open("fakeproc/control", os.O_RDWR)
        try:
            line = (shlex.join(words) + "\n").encode()
            err = 0
            try:
                self.pwrite(h, line, 0)
            except OSError as e:
                err = e.errno
            reply = self.pread(h, 1 << 20, len(line) if not err else 0).decode("utf-8", "surrogateescape")
        finally:
            self.close(h)
        if check and err:
            raise AssertionError(f"fakeproc ctl {' '.join(words)} failed: {reply}")
        return reply

    def new_pid(self, *words: str) -> int:
        return int(self.ctl(*words).split()[-1])


def _oserror(e: BaseException, path: str = "") -> OSError:
    err = errno_of(e, "a core call")
    return OSError(err, os.strerror(err), path) if path else OSError(err, os.strerror(err))


def kernel_pieces(data: bytes, misalign: int = 0) -> list[bytes]:
    """How FUSE hands one write() of ``data`` to the daemon (fuse_perform_write()): 128 KiB at a time, the
    first piece shorter by the buffer's offset into its first page (fuse_get_user_pages() pins at most 32 pages)."""
    out, first = [], LONGEST_PIECE - misalign
    while data:
        n = first if not out else LONGEST_PIECE
        out.append(data[:n])
        data = data[n:]
    return out
