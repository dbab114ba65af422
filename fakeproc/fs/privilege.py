"""Who holds CAP_SYS_RESOURCE when writing: the ``--privilege`` policies.

The kernel asks capable(CAP_SYS_RESOURCE) of the *writer* (kernel-oom.md §8),
so the policy is asked about the calling thread that FUSE names.
"""

from __future__ import annotations

import os
from typing import Protocol

from ..kernel.caps import CAP_SYS_RESOURCE


class Privilege(Protocol):
    name: str

    def has_sys_resource(self, uid: int, tid: int) -> bool: ...


class OwnerPrivilege:
    """``--privilege owner``: uid 0 and the uid that mounted are privileged.

    This is what a user of a fake expects by default: root (or you) may do
    what root could do on a machine where root holds every capability.
    """

    name = "owner"

    def __init__(self, owner_uid: int) -> None:
        self.owner_uid = owner_uid

    def has_sys_resource(self, uid: int, tid: int) -> bool:
        return uid == 0 or uid == self.owner_uid


def read_cap_eff(tid: int, proc: str = "/proc") -> int | None:
    """CapEff of a real thread, from ``/proc/TID/status`` (None if it is gone)."""
    try:
        with open(f"{proc}/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        return None
    return None


class CapsPrivilege:
    """``--privilege caps``: the caller's real effective capability set decides.

    Read for the calling thread at the moment of the write, as the kernel's
    capable() looks at current's credentials.
    """

    name = "caps"

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc

    def has_sys_resource(self, uid: int, tid: int) -> bool:
        caps = read_cap_eff(tid, self.proc)
        return caps is not None and bool(caps >> CAP_SYS_RESOURCE & 1)


def make_privilege(name: str) -> Privilege:
    if name == "caps":
        return CapsPrivilege()
    if name == "owner":
        return OwnerPrivilege(os.getuid())
    raise ValueError(f"unknown privilege policy {name!r} (owner or caps)")
