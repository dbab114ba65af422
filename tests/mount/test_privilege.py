"""Who may write what: file modes, the lowering rule, and the two --privilege policies."""

from __future__ import annotations

import shutil

import pytest

from ..conftest import sh

pytestmark = pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")


@pytest.fixture(params=["raw", "fusepy"])
def mnt(request, mount_factory):
    """The default machine through each FUSE backend in turn: this module is the subset both must pass."""
    return mount_factory("--fuse-backend", request.param)


def as_nobody(cmd: str):
    """Run a shell command as uid/gid 65534 with no groups and no capabilities."""
    return sh(f"setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all bash -c '{cmd}'")


def test_nobody_cannot_open_another_users_file(mnt):
    r = as_nobody(f"echo 5 > {mnt.path}/500/oom_adj")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert mnt.read("500/oom_adj") == "0\n"


def test_nobody_can_raise_but_not_lower_its_own_process(mnt):
    # dnsmasq (700) runs as 65534 at oom_adj 0
    assert as_nobody(f"echo 5 > {mnt.path}/700/oom_adj").returncode == 0
    assert mnt.read("700/oom_adj") == "5\n"
    assert as_nobody(f"echo 5 > {mnt.path}/700/oom_adj").returncode == 0  # the same value: allowed
    for lower in ("3", "-17"):
        r = as_nobody(f"echo {lower} > {mnt.path}/700/oom_adj")
        assert r.returncode != 0 and "Permission denied" in r.stderr
    assert mnt.read("700/oom_adj") == "5\n"
    assert mnt.read("700/task/700/oom_adj") == "5\n"


def test_nobody_cannot_use_the_control_file_or_sysrq(mnt):
    for path in ("fakeproc/control", "sysrq-trigger"):
        r = as_nobody(f"echo f > {mnt.path}/{path}")
        assert r.returncode != 0 and "Permission denied" in r.stderr
    assert "Killed process" not in mnt.read("fakeproc/dmesg")


def test_owner_policy_lets_root_lower(mnt):
    assert sh(f"echo -17 > {mnt.path}/500/oom_adj").returncode == 0
    assert mnt.read("500/oom_adj") == "-17\n"


def test_caps_policy_follows_the_real_capability_bit(mount_factory):
    mnt = mount_factory("--privilege", "caps")
    # root *without* CAP_SYS_RESOURCE (dropped explicitly, whatever this machine gives root)
    drop = "setpriv --inh-caps=-sys_resource --bounding-set=-sys_resource bash -c"
    r = sh(f"{drop} 'echo -5 > {mnt.path}/500/oom_adj'")
    assert r.returncode != 0 and "Permission denied" in r.stderr
    assert sh(f"{drop} 'echo 4 > {mnt.path}/500/oom_adj'").returncode == 0
    assert mnt.read("500/oom_adj") == "4\n"
    # a root holding it (ambient-less root keeps it only if the machine grants it)
    with open("/proc/self/status") as f:
        has_it = any(line.startswith("CapEff:") and int(line.split()[1], 16) >> 24 & 1 for line in f)
    r = sh(f"echo -5 > {mnt.path}/500/oom_adj")
    assert (r.returncode == 0) == has_it
    assert mnt.read("500/oom_adj") == ("-5\n" if has_it else "4\n")
