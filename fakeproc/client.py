"""Talking to a running mount through its control file (no FUSE, no trio here).

Kept small and free of heavy imports: ``fakeproc ctl`` is run once per
command by scripts and tests.
"""

from __future__ import annotations

import errno
import os
import shlex

CONTROL = os.path.join("fakeproc", "control")
#: the same protocol for every user of the mount, questions only (fakeproc/control.py QUERIES)
QUERY = os.path.join("fakeproc", "query")


class ControlError(Exception):
    def __init__(self, err: int, reply: str) -> None:
        super().__init__(reply.strip() or os.strerror(err))
        self.errno = err
        self.reply = reply


def control_path(mountpoint: str) -> str:
    return os.path.join(mountpoint, CONTROL)


def ask(mountpoint: str, argv: list[str] | str) -> str:
    """A question (``ps``, ``explain``, ``oom --dry-run``, ``events``...): through the query file, which every
    user of the mount may use; a daemon without one (older than the query file) is asked on the control file."""
    try:
        return send(mountpoint, argv, query=True)
    except ControlError as e:
        if e.errno != errno.ENOENT or not os.path.exists(control_path(mountpoint)):
            raise
    return send(mountpoint, argv)


def send(mountpoint: str, argv: list[str] | str, query: bool = False) -> str:
    """Write one command line to the control file (``query``: the query file) and return the daemon's reply.

    Reply and errors travel on the same descriptor: the write fails with the
    command's errno, and a read on that descriptor gives the message.
    """
    line = argv if isinstance(argv, str) else shlex.join(argv)
    name = QUERY if query else CONTROL
    path = os.path.join(mountpoint, name)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        raise ControlError(errno.ENOENT, f"{mountpoint} is not a fakeproc mount (no {name})") from None
    except OSError as e:
        if e.errno == errno.ENOTCONN:
            raise ControlError(e.errno, f"the daemon serving {mountpoint} is dead (Transport endpoint is "
                                        f"not connected); run: fakeproc umount {mountpoint}") from None
        if e.errno == errno.EACCES and not query:
            raise ControlError(e.errno, f"{path}: Permission denied: changing this machine is for the user who "
                                        "mounted it (and root); questions (fakeproc ps, explain, oom --dry-run, "
                                        "log) work for everyone") from None
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
