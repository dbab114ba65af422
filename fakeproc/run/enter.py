"""Enter a private mount namespace, mount the fake over its /proc, then exec the command.

Run as ``python -m fakeproc.run.enter --fuse-fd F --sync-fd S -- CMD [ARGS...]`` by ``fakeproc
run`` and ``fakeproc shell`` (a fresh process, so no thread of the daemon is around when the
namespace is unshared).  ``F`` is the daemon's open ``/dev/fuse``: the FUSE filesystem is mounted
*here*, in the new namespace, and nowhere else, so no other user of the machine can reach it (in
the host's namespace there is no such mount to walk into; ``/proc/PID/root`` of a process of the
run leads to it only for those the kernel lets trace that process).  ``S`` is a socket to the
daemon: this process says ``m`` once the mount is made, and execs the command when the daemon
answers ``g`` (it has started serving and holds the mount's root).  Python 3.11 has no
``os.unshare``: libc's is used.
"""

from __future__ import annotations

import ctypes
import os
import sys

from ..mounts import unescape

CLONE_NEWNS = 0x00020000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def fuse_mount_data(fd: int) -> bytes:
    """mount(2) data of the fake's FUSE mount: the options of ``fakeproc mount`` as root
    (``default_permissions``: the kernel checks modes and owners as procfs would; ``allow_other``: the
    run's processes of every user get in; only they can reach it)."""
    return f"fd={fd},rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other".encode()


def enter(fuse_fd: int) -> None:
    """unshare(CLONE_NEWNS); make every mount private (nothing leaks back to the host); mount the fake on /proc.

    The new namespace starts with a copy of every mount, fakeproc mounts included; those copies are
    detached first, so that no other fakeproc daemon is kept alive by this namespace after its own
    unmount.
    """
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    for target in _fakeproc_mounts():
        _libc.umount2(os.fsencode(target), MNT_DETACH)
    _check(_libc.mount(b"fakeproc", b"/proc", b"fuse.fakeproc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                       fuse_mount_data(fuse_fd)), "mount -t fuse.fakeproc fakeproc /proc")


def _fakeproc_mounts() -> list[str]:
    """Mount points of fakeproc filesystems in this namespace (the host's /proc is still /proc here)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.startswith("fuse.fakeproc "):
                out.append(unescape(left.split()[4]))
    return out


def main(argv: list[str]) -> int:
    try:
        dash = argv.index("--")
        opts = dict(zip(argv[:dash:2], argv[1:dash:2], strict=True))
        fuse_fd, sync_fd = int(opts["--fuse-fd"]), int(opts["--sync-fd"])
        cmd = argv[dash + 1:]
        if not cmd:
            raise ValueError
    except (ValueError, KeyError):
        print("usage: python -m fakeproc.run.enter --fuse-fd F --sync-fd S -- CMD [ARGS...]", file=sys.stderr)
        return 2
    # If fakeproc run itself is SIGKILLed, its command goes too (a /proc whose daemon is gone only answers
    # ENOTCONN).  PR_SET_PDEATHSIG survives the exec below (not a set-uid one); the parent may already be
    # gone by the time it is set, hence the check after.
    parent = os.getppid()
    _check(_libc.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:
        return 125
    try:
        enter(fuse_fd)
    except OSError as e:
        print(f"fakeproc run: {e}", file=sys.stderr)
        return 125
    os.close(fuse_fd)
    os.write(sync_fd, b"m")
    if os.read(sync_fd, 1) != b"g":  # the daemon gave up (it says why)
        return 125
    os.close(sync_fd)
    try:
        os.execvp(cmd[0], cmd)
    except FileNotFoundError:
        print(f"fakeproc run: {cmd[0]}: command not found", file=sys.stderr)
        return 127
    except OSError as e:
        print(f"fakeproc run: {cmd[0]}: {e.strerror}", file=sys.stderr)
        return 126
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
