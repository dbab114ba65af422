"""Every conformance vector through the core's write handlers, for every era and privilege, in-process.

The expected answers are the kernel's (tests/data/conformance: 6.18 measured on these machines, the
2.6.x ones derived from those kernels' sources).  Here nothing stands between a write and the handler,
so even the zero-byte write, which a FUSE mount never sees, must get procfs's answer.  ``owner``: root
holds CAP_SYS_RESOURCE; ``caps``: this process's real capabilities decide (root here lacks it; any
other user too), which gives the "nocap" answers.
"""

from __future__ import annotations

import os

import pytest

from ..harness import CoreMount
from ..vectors import compare, expected, replay, root_has_sys_resource, vectors

CASES = [("2.6.32", "owner", "2.6.32-cap"), ("2.6.32", "caps", "2.6.32-nocap"),
         ("2.6.31", "owner", "2.6.31-cap"), ("2.6.31", "caps", "2.6.31-nocap"),
         ("2.6.31-rc", "owner", "2.6.31-cap"), ("2.6.31-rc", "caps", "2.6.31-nocap"),
         ("6.x", "owner", "modern-cap"), ("6.x", "caps", "modern-nocap")]

needs_nocap = pytest.mark.skipif(os.geteuid() == 0 and root_has_sys_resource(),
                                 reason="this machine's root holds CAP_SYS_RESOURCE: no nocap answers from it")


def replay_core(core: CoreMount, name: str) -> dict[str, dict]:
    def new_target(uid: int | None) -> int:
        return core.new_pid("fork", "1", *(["--uid", str(uid)] if uid is not None else []))

    def write(pid: int, file: str, chunks: list[bytes], as_uid: int | None) -> dict:
        uid = as_uid or 0
        try:
            return {"open": "ok", "results": core.write(f"{pid}/{file}", *chunks, flags=os.O_WRONLY, uid=uid)}
        except OSError as e:
            import errno

            return {"open": errno.errorcode[e.errno], "results": []}

    def read(pid: int, file: str) -> str | None:
        try:
            return core.read(f"{pid}/{file}")
        except FileNotFoundError:
            return None

    return replay(vectors(name), new_target, write, read, core.machine.era.has_score_adj)


@pytest.mark.parametrize("era,privilege,want", [
    pytest.param(*c, marks=needs_nocap if c[1] == "caps" else ()) for c in CASES])
def test_every_vector_gets_the_kernels_answer(era, privilege, want):
    core = CoreMount(era, privilege)
    assert compare(replay_core(core, "vectors.jsonl"), expected(want), through_fuse=False) == []


@needs_nocap
def test_unprivileged_vectors_6_x():
    """Writes by uid 65534 to its own process, after a baseline written by root (who lacks CAP_SYS_RESOURCE)."""
    core = CoreMount("6.x", "caps")
    assert compare(replay_core(core, "vectors-unprivileged.jsonl"), expected("modern-unprivileged"),
                   through_fuse=False) == []


def test_unprivileged_vectors_6_x_with_a_privileged_baseline():
    """Under --privilege owner root holds CAP_SYS_RESOURCE, so its baseline write of 300 also sets
    oom_score_adj_min (6.x __set_oom_adj()): nobody may then go below 300, which the real kernel allows
    here only because root lacks the capability.  Every other answer is the same."""
    got = replay_core(CoreMount("6.x", "owner"), "vectors-unprivileged.jsonl")
    want = expected("modern-unprivileged")
    assert got["unpriv-10"]["results"] == ["EACCES"] and got["unpriv-10"]["read"]["oom_score_adj"] == "300\n"
    assert compare({k: v for k, v in got.items() if k != "unpriv-10"},
                   {k: v for k, v in want.items() if k != "unpriv-10"}, through_fuse=False) == []
