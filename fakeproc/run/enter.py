"""Enter a private mount namespace whose /proc is the fake, then exec the command.

Run as ``python -m fakeproc.run.enter FAKE -- CMD [ARGS...]`` by ``fakeproc
run`` (a fresh process, so no thread of the daemon is around when the
namespace is unshared).  Python 3.11 has no ``os.unshare``: libc's is used.
"""

from __future__ import annotations

import ctypes
import os
import sys

from ..mounts import unescape

CLONE_NEWNS = 0x00020000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def enter(fake: str) -> None:
    """unshare(CLONE_NEWNS); make every mount private (nothing leaks back to the host); bind FAKE on /proc.

    The new namespace starts with a copy of every mount, fakeproc mounts
    included; those copies are detached, so that no fakeproc daemon (this
    one, or another run's) is kept alive by this namespace after its own
    unmount.
    """
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    _check(_libc.mount(os.fsencode(fake), b"/proc", None, MS_BIND, None), f"mount --bind {fake} /proc")
    for target in _fakeproc_mounts():
        if target != "/proc":
            _libc.umount2(os.fsencode(target), MNT_DETACH)


def _fakeproc_mounts() -> list[str]:
    """Mount points of fakeproc filesystems in this namespace (through the fake /proc itself)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.startswith("fuse.fakeproc "):
                out.append(unescape(left.split()[4]))
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m fakeproc.run.enter FAKE -- CMD [ARGS...]", file=sys.stderr)
        return 2
    fake, cmd = argv[0], argv[2:]
    try:
        enter(fake)
    except OSError as e:
        print(f"fakeproc run: {e}", file=sys.stderr)
        return 125
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
