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


def replay(mnt, vectors: str) -> dict[str, dict]:
    new_target = " ".join(shlex.quote(w) for w in FAKEPROC + ["ctl", "-m", str(mnt.path), "fork", "1"])
    r = subprocess.run([sys.executable, str(CONFORMANCE / "probe.py"), "--root", str(mnt.path),
                        "--new-target", new_target, "--vectors", str(CONFORMANCE / vectors)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    return {d["id"]: d for d in map(json.loads, r.stdout.splitlines())}


def expected(name: str) -> dict[str, dict]:
    with open(CONFORMANCE / "expected" / name) as f:
        return {d["id"]: d for d in map(json.loads, f)}


def compare(got: dict[str, dict], want: dict[str, dict]) -> list[str]:
    bad = []
    for vid, w in want.items():
        g = got[vid]
        results = FUSE_EXCEPTION.get(vid, w["results"]) if w["open"] == "ok" else w["results"]
        if (g["open"], g["results"], g["read"]) != (w["open"], results, w["read"]):
            bad.append(f"{vid}: want {w['open']} {results} {w['read']}, got {g['open']} {g['results']} {g['read']}")
    return bad


@pytest.mark.parametrize("privilege,expect", [("owner", "2.6.32-cap.jsonl"), ("caps", "2.6.32-nocap.jsonl")])
def test_2_6_32_vectors(mount_factory, privilege, expect):
    if privilege == "caps" and root_has_sys_resource():
        pytest.skip("this machine's root holds CAP_SYS_RESOURCE: the nocap answers cannot be produced as root")
    mnt = mount_factory("--kernel", "2.6.32", "--privilege", privilege)
    want = expected(expect)
    got = replay(mnt, "vectors.jsonl")
    assert set(got) == set(want)
    assert compare(got, want) == []
