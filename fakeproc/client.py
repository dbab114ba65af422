"""Talking to a running mount through its control file (no FUSE, no trio here).

Kept small and free of heavy imports: ``fakeproc ctl`` is run once per
command by scripts and tests.
"""

from __future__ import annotations

import errno
import os
import shlex

CONTROL = os.path.join("fakeproc", "control")


class ControlError(Exception):
    def __init__(self, err: int, reply: str) -> None:
        super().__init__(reply.strip() or os.strerror(err))
        self.errno = err
        self.reply = reply


def control_path(mountpoint: str) -> str:
    return os.path.join(mountpoint, CONTROL)


def send(mountpoint: str, argv: list[str] | str) -> str:
    """Write one command line to the control file and return the daemon's reply.

    Reply and errors travel on the same descriptor: the write fails with the
    command's errno, and a read on that descriptor gives the message.
    """
    line = argv if isinstance(argv, str) else shlex.join(argv)
    path = control_path(mountpoint)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        raise ControlError(errno.ENOENT, f"{mountpoint} is not a fakeproc mount (no {CONTROL})") from None
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise ControlError(e.errno, f"the daemon serving {mountpoint} is dead (Transport endpoint is "
                                        f"not connected); run: fakeproc umount {mountpoint}") from None
        raise ControlError(e.errno or errno.EIO, f"{path}: {e.strerror}") from None
    try:
        err = 0
        try:
            os.write(fd, (line + "\n").encode("utf-8", "surrogateescape"))  # argv's bytes as given
        except OSError as e:
            err = e.errno or errno.EIO
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        reply = b"".join(chunks).decode(errors="replace")
    finally:
        os.close(fd)
    if err:
        raise ControlError(err, reply)
    return reply
