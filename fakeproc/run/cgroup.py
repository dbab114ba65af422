"""A cgroup v2 group for one run, so that ending the run's processes cannot miss one.

Listing processes and signalling them races with fork: a respawning script forks between the
listing and the SIGKILL.  A cgroup has no such race: the kernel puts every child in its parent's
cgroup at fork, and ``cgroup.kill`` (Linux 5.14, ``cgroup_kill()`` in kernel/cgroup/cgroup.c)
SIGKILLs the whole subtree, including what forks while it runs.

It needs a writable cgroup2 hierarchy (the unified one, or the "unified" half of a hybrid
set-up such as ``/sys/fs/cgroup/unified``); where there is none (cgroup v1 only, no root),
:func:`create` returns None and the run falls back to sweeps (``Session._end_leftovers``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

log = logging.getLogger("fakeproc.run")


def _cgroup2_mount() -> str | None:
    """Where the cgroup2 hierarchy is mounted in our namespace, from /proc/self/mountinfo."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    return left.split(" ")[4].replace("\\040", " ")
    except OSError:
        pass
    return None


def _own_cgroup2() -> str | None:
    """Our cgroup in the v2 hierarchy: the ``0::PATH`` line of /proc/self/cgroup."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].rstrip("\n")
    except OSError:
        pass
    return None


class RunCgroup:
    """``fakeproc-run-PID`` below our own cgroup: the run's processes, and only them."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def add(self, pid: int) -> None:
        """Move a process (before it forks anything) into the group; its children follow it there."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    def pids(self) -> list[int]:
        """The processes in the group and in its sub-groups."""
        found: list[int] = []
        for top, _dirs, files in os.walk(self.path):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError), open(os.path.join(top, "cgroup.procs")) as f:
                    found.extend(int(x) for x in f.read().split())
        return found

    def kill(self, timeout: float = 10) -> bool:
        """SIGKILL everything in the group at once; True once the group is empty."""
        try:
            with open(os.path.join(self.path, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError as e:
            log.warning("cgroup.kill of %s failed: %s", self.path, e)
            return False
        deadline = time.monotonic() + timeout
        while self.pids():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def remove(self) -> None:
        """rmdir the group (and sub-groups the run made), which the kernel allows once they are empty."""
        for top, dirs, _files in os.walk(self.path, topdown=False):
            for d in dirs:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(top, d))
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not remove the run's cgroup %s: %s", self.path, e)


def create() -> RunCgroup | None:
    """A new empty cgroup for this run, or None where cgroup v2 with ``cgroup.kill`` is not writable."""
    mount, own = _cgroup2_mount(), _own_cgroup2()
    if mount is None or own is None:
        return None
    parent = os.path.join(mount, own.lstrip("/"))
    _remove_stale(parent)
    path = os.path.join(parent, f"fakeproc-run-{os.getpid()}")
    try:
        os.mkdir(path)
    except FileExistsError:  # left by an earlier run of this pid that was SIGKILLed: empty it and reuse it
        pass
    except OSError as e:
        log.info("no cgroup for the run (%s): processes left behind are ended by sweeps", e)
        return None
    group = RunCgroup(path)
    if not os.path.exists(os.path.join(path, "cgroup.kill")):  # before Linux 5.14 (the root cgroup has none)
        group.remove()
        return None
    group.kill()  # empty already, unless it is an old run's
    return group


def _remove_stale(parent: str) -> None:
    """Groups of earlier runs whose ``fakeproc run`` was SIGKILLed (it could not remove its own): what is
    still in one is killed (its command died with the run; these are what it had started), then it goes."""
    try:
        names = [n for n in os.listdir(parent) if n.startswith("fakeproc-run-")]
    except OSError:
        return
    for name in names:
        pid = name[len("fakeproc-run-"):]
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            group = RunCgroup(os.path.join(parent, name))
            log.info("removing the cgroup %s of a run that was killed", group.path)
            group.kill(timeout=2)
            group.remove()
