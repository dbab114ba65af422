"""The integer sysctl model (fakeproc.kernel.sysctl, 6.18 rules) against this machine's own kernel, live.

A sample of tests/data/sysctl/vectors.jsonl is measured again with tests/data/sysctl/probe_sysctl.py, each vector in
its own ``unshare -n`` (a new network namespace: the per-namespace net.unix.max_dgram_qlen and net.core.somaxconn
share proc_dointvec / proc_dointvec_minmax with the vm.* sysctls, and nothing of the host's is written), and
compared with what ``dointvec_write`` / ``dointvec_read`` say, not with the stored file: a kernel that behaves
differently shows up as a difference here rather than as a stale expectation.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..core.test_sysctl_parser import MEASURED, SYSCTL_DATA, V618, load_vectors, replay

PROBE = SYSCTL_DATA / "probe_sysctl.py"
HOST_FILES = ("/proc/sys/net/unix/max_dgram_qlen", "/proc/sys/net/core/somaxconn")


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "needs root (unshare -n)"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    if not platform.release().startswith("6."):
        return f"the model's 6.x rules are 6.18's; this kernel is {platform.release()}"
    if not all(Path(p).exists() for p in HOST_FILES):
        return "no /proc/sys/net/unix or /proc/sys/net/core (CONFIG_UNIX / CONFIG_NET?)"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")

#: the vectors that pin the rules down: NUL bytes, the 4095-byte window, positions, short counts, reads, bases,
#: overflow, the range check; plus every 9th vector of the file for breadth.
SAMPLE_IDS = [
    "one_nl", "empty", "only_nl", "neg1", "int_max_p1", "int_min", "two64", "plus1", "minus",
    "lead_nbsp", "lead_nel", "trail_cr", "trail_crlf", "hex_bare", "oct08", "zeros7_20", "zeros7_21",
    "hex_padded_21", "two_tokens", "five_nul", "five_nl_nul", "nul_5", "sp4094_78", "sp4095_7",
    "seven_sp4093_2_x1000", "seven_nl_x5000", "multi_1_2", "multi_bad_2", "pos1_7", "pos2_bad",
    "pos_back_to_0", "read_123_3_100", "read_neg5_1_10", "read_kmalloc", "seven_sp_kmalloc",
]


def _sample() -> list[str]:
    ids = list(load_vectors())
    return sorted(set(SAMPLE_IDS) | set(ids[::9]), key=ids.index)


def _host_values() -> list[str]:
    return [Path(p).read_text() for p in HOST_FILES]


@pytest.fixture(scope="module")
def live() -> dict[str, list[dict]]:
    """{"dointvec" | "minmax": the probe's result lines for the sample}, measured now."""
    before = _host_values()
    out: dict[str, list[dict]] = {}
    for name in MEASURED:
        r = subprocess.run(
            [sys.executable, str(PROBE), "run", name, str(SYSCTL_DATA / "vectors.jsonl"), "--ids", ",".join(_sample())],
            capture_output=True, text=True, timeout=600,
        )
        assert r.returncode == 0, r.stderr
        out[name] = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert _host_values() == before, "the host's sysctls changed: the probe must only write in a new netns"
    return out


@pytest.mark.parametrize("name", list(MEASURED))
def test_the_live_kernel_matches_the_model(live, name):
    vectors = load_vectors()
    assert [m["id"] for m in live[name]] == _sample()
    differences = []
    for measured in live[name]:
        vector = vectors[measured["id"]]
        got = replay(V618, vector, int(measured["initial"]), MEASURED[name])
        want = {k: measured[k] for k in got}
        if got != want:
            differences.append(f"{measured['id']} ({vector['text']}): kernel {want}, model {got}")
    assert not differences, f"kernel {platform.release()}:\n" + "\n".join(differences)
