"""The shared write vectors, replayed through a real mount with the shared probe.

`--privilege owner` (root holds CAP_SYS_RESOURCE, as on a stock machine) must
reproduce the "cap" answers; `--privilege caps` reads the writer's real
capabilities, and root here lacks CAP_SYS_RESOURCE, so it must reproduce the
"nocap" answers.  The one allowed difference is the zero-byte write, which
never reaches a FUSE daemon (shared/conformance/README.md).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from .conftest import FAKEPROC, SHARED

CONFORMANCE = SHARED / "conformance"
FUSE_EXCEPTION = {"oom_adj-c032": [0], "oom_score_adj-c032": [0]}

pytestmark = pytest.mark.skipif(not (CONFORMANCE / "probe.py").exists(),
                                reason=f"no conformance vectors at {CONFORMANCE} (set FAKEPROC_SHARED)")


def root_has_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(caps >> 24 & 1)


def replay(mnt, vectors: str, uid: int | None = None) -> dict[str, dict]:
    """probe.py against a mount; each vector's target is made by `fakeproc ctl fork 1`."""
    fork = ["ctl", "-m", str(mnt.path), "fork", "1"] + (["--uid", str(uid)] if uid is not None else [])
    new_target = " ".join(shlex.quote(w) for w in FAKEPROC + fork)
    return run_probe("--root", str(mnt.path), "--new-target", new_target, "--vectors", str(CONFORMANCE / vectors))


def run_probe(*args: str) -> dict[str, dict]:
    r = subprocess.run([sys.executable, str(CONFORMANCE / "probe.py"), *args], capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stderr
    return {d["id"]: d for d in map(json.loads, r.stdout.splitlines())}


def expected(name: str) -> dict[str, dict]:
    with open(CONFORMANCE / "expected" / name) as f:
        return {d["id"]: d for d in map(json.loads, f)}


def compare(got: dict[str, dict], want: dict[str, dict]) -> list[str]:
    """Vectors whose answers differ, the zero-byte write through FUSE aside."""
    assert set(got) == set(want)
    bad = []
    for vid, w in want.items():
        g = got[vid]
        results = FUSE_EXCEPTION.get(vid, w["results"]) if w["open"] == "ok" else w["results"]
        if (g["open"], g["results"], g["read"]) != (w["open"], results, w["read"]):
            bad.append(f"{vid}: want {w['open']} {results} {w['read']}, got {g['open']} {g['results']} {g['read']}")
    return bad


needs_nocap_root = pytest.mark.skipif(root_has_sys_resource(), reason="this machine's root holds "
                                      "CAP_SYS_RESOURCE: the nocap answers cannot be produced as root")


@pytest.mark.parametrize("era,privilege,expect", [
    ("2.6.32", "owner", "2.6.32-cap"),
    pytest.param("2.6.32", "caps", "2.6.32-nocap", marks=needs_nocap_root),
    ("2.6.31", "owner", "2.6.31-cap"),
    pytest.param("2.6.31", "caps", "2.6.31-nocap", marks=needs_nocap_root),
    ("2.6.31-rc", "owner", "2.6.31-cap"),
    pytest.param("2.6.31-rc", "caps", "2.6.31-nocap", marks=needs_nocap_root),
    ("6.x", "owner", "modern-cap"),
    pytest.param("6.x", "caps", "modern-nocap", marks=needs_nocap_root),
])
def test_write_vectors(mount_factory, era, privilege, expect):
    mnt = mount_factory("--kernel", era, "--privilege", privilege)
    assert compare(replay(mnt, "vectors.jsonl"), expected(expect + ".jsonl")) == []


@needs_nocap_root
def test_unprivileged_vectors_6_x(mount_factory):
    """Writes by uid 65534 to its own process, after a baseline written by root."""
    want = expected("modern-unprivileged.jsonl")
    caps = mount_factory("--kernel", "6.x", "--privilege", "caps", name="caps")
    assert compare(replay(caps, "vectors-unprivileged.jsonl", uid=65534), want) == []
    # Under --privilege owner root holds CAP_SYS_RESOURCE, so its baseline write of 300 also
    # sets oom_score_adj_min (6.x __set_oom_adj()): nobody may then go below 300, which the
    # real kernel allows here only because root lacks the capability.
    owner = mount_factory("--kernel", "6.x", "--privilege", "owner", name="owner")
    got = replay(owner, "vectors-unprivileged.jsonl", uid=65534)
    assert got["unpriv-10"]["results"] == ["EACCES"] and got["unpriv-10"]["read"]["oom_score_adj"] == "300\n"
    assert compare({k: v for k, v in got.items() if k != "unpriv-10"},
                   {k: v for k, v in want.items() if k != "unpriv-10"}) == []


def test_live_differential_against_this_machines_kernel(mount_factory):
    """The vectors against the real /proc and a `6.x --privilege caps` mount, in the same run."""
    real = run_probe("--spawn", "--vectors", str(CONFORMANCE / "vectors.jsonl"))
    mnt = mount_factory("--kernel", "6.x", "--privilege", "caps")
    assert compare(replay(mnt, "vectors.jsonl"), real) == []


def test_live_differential_unprivileged(mount_factory):
    real = run_probe("--spawn", "--spawn-uid", "65534", "--vectors", str(CONFORMANCE / "vectors-unprivileged.jsonl"))
    mnt = mount_factory("--kernel", "6.x", "--privilege", "caps")
    assert compare(replay(mnt, "vectors-unprivileged.jsonl", uid=65534), real) == []
