"""The conformance vectors through real mounts, and against this machine's own kernel, side by side.

`--privilege owner` (root holds CAP_SYS_RESOURCE, as on a stock machine) must reproduce the "cap"
answers; `--privilege caps` reads the writer's real capabilities, and root here lacks
CAP_SYS_RESOURCE, so it must reproduce the "nocap" answers.  The one allowed difference is the
zero-byte write, which never reaches a FUSE daemon (tests/data/conformance/README.md).  The replay
runs in this process (targets made through the control file, writes by this process or, for another
uid, a forked child): no process is started per vector.
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from ..vectors import compare, expected, read_path, replay, root_has_sys_resource, vectors, write_path

needs_nocap_root = pytest.mark.skipif(root_has_sys_resource(), reason="this machine's root holds "
                                      "CAP_SYS_RESOURCE: the nocap answers cannot be produced as root")


def replay_mount(mnt, name: str, has_score_adj: bool) -> dict[str, dict]:
    def new_target(uid: int | None) -> int:
        return mnt.new_pid("fork", "1", *(["--uid", str(uid)] if uid is not None else []))

    return replay(vectors(name), new_target,
                  lambda pid, f, chunks, uid: write_path(f"{mnt.path}/{pid}/{f}", chunks, uid),
                  lambda pid, f: read_path(f"{mnt.path}/{pid}/{f}"), has_score_adj)


@pytest.mark.parametrize("era,privilege,want", [
    ("2.6.32", "owner", "2.6.32-cap"),
    pytest.param("2.6.32", "caps", "2.6.32-nocap", marks=needs_nocap_root),
    ("2.6.31", "owner", "2.6.31-cap"),
    pytest.param("2.6.31", "caps", "2.6.31-nocap", marks=needs_nocap_root),
    ("2.6.31-rc", "owner", "2.6.31-cap"),
    pytest.param("2.6.31-rc", "caps", "2.6.31-nocap", marks=needs_nocap_root),
    ("6.x", "owner", "modern-cap"),
    pytest.param("6.x", "caps", "modern-nocap", marks=needs_nocap_root),
])
def test_write_vectors(mount_factory, era, privilege, want):
    mnt = mount_factory("--kernel", era, "--privilege", privilege)
    got = replay_mount(mnt, "vectors.jsonl", era == "6.x")
    assert compare(got, expected(want), through_fuse=True) == []


@needs_nocap_root
def test_unprivileged_vectors_6_x(mount_factory):
    """Writes by uid 65534 to its own process, after a baseline written by root."""
    mnt = mount_factory("--kernel", "6.x", "--privilege", "caps")
    got = replay_mount(mnt, "vectors-unprivileged.jsonl", True)
    assert compare(got, expected("modern-unprivileged"), through_fuse=True) == []


def replay_kernel(name: str, uid: int | None = None) -> dict[str, dict]:
    """The same vectors against this machine's real /proc: a throwaway ``sleep`` per vector (probe.py --spawn)."""
    sleepers: list[subprocess.Popen] = []

    def demote() -> None:
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)

    def new_target(_uid: int | None) -> int:
        p = subprocess.Popen(["sleep", "600"], preexec_fn=demote)
        sleepers.append(p)
        return p.pid

    try:
        return replay(vectors(name), new_target,
                      lambda pid, f, chunks, as_uid: write_path(f"/proc/{pid}/{f}", chunks, as_uid),
                      lambda pid, f: read_path(f"/proc/{pid}/{f}"), True)
    finally:
        for p in sleepers:
            p.send_signal(signal.SIGKILL)
            p.wait()


def test_live_differential_against_this_machines_kernel(mount_factory):
    """The vectors against the real /proc and a `6.x --privilege caps` mount, in the same run."""
    real = replay_kernel("vectors.jsonl")
    mnt = mount_factory("--kernel", "6.x", "--privilege", "caps")
    assert compare(replay_mount(mnt, "vectors.jsonl", True), real, through_fuse=True) == []


def test_live_differential_unprivileged(mount_factory):
    real = replay_kernel("vectors-unprivileged.jsonl", uid=65534)
    mnt = mount_factory("--kernel", "6.x", "--privilege", "caps")
    assert compare(replay_mount(mnt, "vectors-unprivileged.jsonl", True), real, through_fuse=True) == []
