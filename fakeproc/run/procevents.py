"""The kernel's process events connector (``cn_proc``): every fork and exit of the host, as it happens.

Run mode learns of most processes only when they first touch ``/proc``; by then a daemon that
detached (``sshd``, ``pg_ctl -W start``, ``start-stop-daemon -b``) has lost the parent it was forked
from, and the model would take its value from whoever adopted it.  The connector
(drivers/connector/cn_proc.c; ``PROC_CN_MCAST_LISTEN`` on a ``NETLINK_CONNECTOR`` socket bound to
group ``CN_IDX_PROC``, root only) sends a ``PROC_EVENT_FORK`` with the parent's and the child's ids for
every fork, so the mirror can note at fork time what the child inherits (``Mirror.on_fork``).

One socket, read without blocking: :meth:`ProcEvents.read` returns what arrived since the last call
(the mirror drains it before it enters a process, and a sweep drains it regularly so the socket's
buffer does not overflow; an overflow, ENOBUFS, loses events and is logged).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from typing import NamedTuple

log = logging.getLogger(__name__)

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXIT = 0x80000000
NLMSG_DONE = 3

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")  # id.idx, id.val, seq, ack, len, flags
_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
_FORK = struct.Struct("=IIII")  # parent_pid, parent_tgid, child_pid, child_tgid
_EXIT = struct.Struct("=II")  # process_pid, process_tgid


class Fork(NamedTuple):
    parent_tgid: int
    child_pid: int
    child_tgid: int
    timestamp_ns: int  # ktime_get_ns(): nanoseconds since boot, the clock of a process's start time


class Exit(NamedTuple):
    pid: int
    tgid: int


class ProcEvents:
    """A listening proc connector socket; None from :meth:`open` where the kernel or the caller lacks it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lost = 0

    @classmethod
    def open(cls) -> ProcEvents | None:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
                                 NETLINK_CONNECTOR)
        except OSError as e:
            log.info("no process events connector (%s): late-seen processes inherit from their adopter", e)
            return None
        try:
            sock.bind((0, CN_IDX_PROC))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            cls._control(sock, PROC_CN_MCAST_LISTEN)
        except OSError as e:
            sock.close()
            log.info("no process events connector (%s): late-seen processes inherit from their adopter", e)
            return None
        return cls(sock)

    @staticmethod
    def _control(sock: socket.socket, op: int) -> None:
        payload = struct.pack("=I", op)
        cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
        msg = _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn
        sock.send(msg)

    def read(self) -> list[Fork | Exit]:
        """Every fork (of a process, not a thread) and every process exit that arrived, in order."""
        out: list[Fork | Exit] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return out
            except OSError as e:
                if e.errno == errno.ENOBUFS:  # the kernel dropped events: we were too slow
                    self.lost += 1
                    log.warning("process events were lost (socket buffer overflow): a process seen late may "
                                "inherit from its adopter")
                    continue
                raise
            out.extend(_parse(data))

    def close(self) -> None:
        try:
            self._control(self.sock, PROC_CN_MCAST_IGNORE)
        except OSError:
            pass
        self.sock.close()


def _parse(data: bytes) -> list[Fork | Exit]:
    out: list[Fork | Exit] = []
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length = _NLMSGHDR.unpack_from(data, pos)[0]
        if length < _NLMSGHDR.size:
            break
        body = pos + _NLMSGHDR.size + _CN_MSG.size
        if body + _EVENT.size <= pos + length:
            what, _cpu, ts = _EVENT.unpack_from(data, body)
            at = body + _EVENT.size
            if what == PROC_EVENT_FORK and at + _FORK.size <= pos + length:
                _ppid, ptgid, cpid, ctgid = _FORK.unpack_from(data, at)
                if cpid == ctgid:  # a new process (a new thread has cpid != ctgid)
                    out.append(Fork(ptgid, cpid, ctgid, ts))
            elif what == PROC_EVENT_EXIT and at + _EXIT.size <= pos + length:
                pid, tgid = _EXIT.unpack_from(data, at)
                if pid == tgid:
                    out.append(Exit(pid, tgid))
        pos += (length + 3) & ~3  # NLMSG_ALIGN
    return out
