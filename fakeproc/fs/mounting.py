"""How a FUSE connection comes to be: a ``/dev/fuse`` descriptor mounted at a directory.

Three ways, each giving the raw backend (fakeproc.fs.rawfuse) a descriptor to serve:

- as root, ``mount(2)`` itself, with the descriptor in the mount data (:func:`mount_fd`);
- as any other user, the setuid ``fusermount3`` (or libfuse 2's ``fusermount``) opens ``/dev/fuse``,
  mounts it and passes the descriptor back over a socket named by ``_FUSE_COMMFD``: libfuse's own
  protocol (:func:`mount_with_fusermount`);
- run mode mounts it inside the run's own mount namespace (fakeproc.run.enter).

:class:`FuseOptions` is the backend's configuration, given to the daemon as a parameter; the command
line takes its defaults from ``FAKEPROC_FUSE*`` (:meth:`FuseOptions.from_environment`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, replace

log = logging.getLogger(__name__)

MS_NOSUID, MS_NODEV = 2, 4
MNT_DETACH = 2
BACKENDS = ("raw", "fusepy")
FUSE_CONF = "/etc/fuse.conf"


@dataclass(frozen=True, slots=True)
class FuseOptions:
    """Who speaks FUSE and how.

    ``backend``: ``raw`` (the protocol over /dev/fuse in Python: fakeproc.fs.rawfuse) or ``fusepy``
    (libfuse 2 through fusepy).  ``threads``: the raw backend's reader threads.  ``cache``: seconds the
    raw backend lets the kernel keep the model's names and attributes (0: ask every time); they are
    taken back the moment the machine changes them, so this bounds nothing but a missed case.
    ``cache_max``: how many names it lets the kernel keep at once.
    """

    backend: str = "raw"
    threads: int = 1
    cache: float = 1.0
    cache_max: int = 32768

    @classmethod
    def from_environment(cls, backend: str | None = None) -> FuseOptions:
        """The defaults the command line gives: ``backend`` if given, else ``$FAKEPROC_FUSE`` (raw|fusepy),
        else raw; ``$FAKEPROC_FUSE_THREADS`` (1), ``$FAKEPROC_FUSE_CACHE`` (1 s), ``$FAKEPROC_FUSE_CACHE_MAX``
        (32768).  A value that is not a number keeps the default, with a warning."""
        name = (backend or os.environ.get("FAKEPROC_FUSE", "")).strip().lower()
        if name and name not in BACKENDS:
            log.warning("FAKEPROC_FUSE=%s: not one of %s; using raw", name, "|".join(BACKENDS))
            name = ""
        d = cls()
        return replace(d, backend=name or d.backend,
                       threads=int(_env_number("FAKEPROC_FUSE_THREADS", d.threads, 1)),
                       cache=float(_env_number("FAKEPROC_FUSE_CACHE", d.cache, 0.0)),
                       cache_max=int(_env_number("FAKEPROC_FUSE_CACHE_MAX", d.cache_max, 1)))


def _env_number(name: str, default: float, minimum: float) -> float:
    text = os.environ.get(name)
    if text is None:
        return default
    try:
        return max(minimum, type(default)(text))
    except ValueError:
        log.warning("%s=%s: not a number; using %s", name, text, default)
        return default


def allow_other() -> bool:
    """May this mount let other users in?  Root may; another user only where /etc/fuse.conf says
    ``user_allow_other`` (fusermount refuses the option otherwise)."""
    if os.geteuid() == 0:
        return True
    try:
        with open(FUSE_CONF) as f:
            return any(line.split("#")[0].strip() == "user_allow_other" for line in f)
    except OSError:
        return False


def mount_data(fd: int) -> str:
    """The fuse filesystem's mount(2) data: ``default_permissions`` (the kernel checks modes and owners as
    procfs would) and, where allowed, ``allow_other`` (every user of the machine gets in)."""
    opts = [f"fd={fd}", "rootmode=40000", f"user_id={os.getuid()}", f"group_id={os.getgid()}", "default_permissions"]
    if allow_other():
        opts.append("allow_other")
    return ",".join(opts)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def mount_fd(mountpoint: str) -> int:
    """Open /dev/fuse and mount it at ``mountpoint`` with mount(2) (root); the descriptor to serve."""
    try:
        fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeError(f"cannot open /dev/fuse: {e.strerror}") from None
    if _libc().mount(b"fakeproc", os.fsencode(mountpoint), b"fuse.fakeproc", MS_NOSUID | MS_NODEV,
                     mount_data(fd).encode()) != 0:
        err = ctypes.get_errno()
        os.close(fd)
        raise RuntimeError(f"mount(2) of {mountpoint}: {os.strerror(err)}")
    return fd


def fusermount() -> str | None:
    """The setuid mount helper: libfuse 3's ``fusermount3``, else libfuse 2's ``fusermount``."""
    return shutil.which("fusermount3") or shutil.which("fusermount")


def mount_with_fusermount(mountpoint: str) -> int:
    """Mount as an ordinary user: ``fusermount3 -o OPTIONS -- MOUNTPOINT`` mounts, and sends the /dev/fuse
    descriptor back over the socket whose number ``_FUSE_COMMFD`` gives (libfuse's fuse_mount_fusermount())."""
    helper = fusermount()
    if helper is None:
        raise RuntimeError("no fusermount3 (Debian's fuse3) to mount with as a user other than root")
    opts = "fsname=fakeproc,subtype=fakeproc,default_permissions" + (",allow_other" if allow_other() else "")
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        env = dict(os.environ, _FUSE_COMMFD=str(theirs.fileno()))
        r = subprocess.run([helper, "-o", opts, "--", mountpoint], env=env, pass_fds=(theirs.fileno(),),
                           capture_output=True, text=True, timeout=30)
        theirs.close()
        if r.returncode != 0:
            raise RuntimeError(f"{os.path.basename(helper)}: {r.stderr.strip() or f'exit status {r.returncode}'}")
        _msg, fds, _flags, _addr = socket.recv_fds(ours, 1, 1)
        if not fds:
            raise RuntimeError(f"{os.path.basename(helper)} mounted {mountpoint} but passed no descriptor")
        os.set_inheritable(fds[0], False)
        return fds[0]
    finally:
        ours.close()
        theirs.close()


def open_connection(mountpoint: str) -> int:
    """A mounted /dev/fuse descriptor at ``mountpoint``: mount(2) as root, fusermount otherwise."""
    return mount_fd(mountpoint) if os.geteuid() == 0 else mount_with_fusermount(mountpoint)


def detach(mountpoint: str) -> None:
    """Take a mount away (lazily) after a failure, as libfuse does on exit, rather than leave one that
    answers ENOTCONN."""
    if os.geteuid() == 0:
        _libc().umount2(os.fsencode(mountpoint), MNT_DETACH)
        return
    helper = fusermount()
    if helper is not None:
        subprocess.run([helper, "-u", "-z", "--", mountpoint], capture_output=True, timeout=30)
