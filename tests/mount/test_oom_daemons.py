"""Real OOM daemons on a simulated machine (issue #15 item 4): earlyoom and nohang read the era's meminfo and
take the paths they take on that kernel.  Their Debian packages are downloaded and unpacked in a temporary
directory (``apt-get download``, ``dpkg -x``), never installed: installing would start a daemon that kills
the host's processes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> Path:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.skip("needs apt-get and dpkg to fetch earlyoom and nohang")
    d = tmp_path_factory.mktemp("daemons")
    r = subprocess.run(["apt-get", "download", "earlyoom", "nohang"], cwd=d, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        pytest.skip(f"apt-get download earlyoom nohang failed: {r.stderr.strip()[:200]}")
    for deb in d.glob("*.deb"):
        subprocess.run(["dpkg", "-x", str(deb), str(d / "root")], check=True, timeout=60)
    return d / "root"


def shell(kernel: str, cmd: str) -> str:
    r = subprocess.run([sys.executable, "-m", "fakeproc", "shell", "--kernel", kernel, "-c", cmd],
                       capture_output=True, text=True, timeout=90)
    return r.stdout + r.stderr


@pytest.mark.parametrize("kernel", ["2.6.32", "6.x"])
def test_earlyoom_warns_about_memavailable_only_before_3_14(unpacked, kernel):
    out = shell(kernel, f"timeout 2 {unpacked}/usr/bin/earlyoom --dryrun -r 1 2>&1 | head -8")
    assert "earlyoom v" in out and "mem total: 4096 MiB, swap total: 1024 MiB" in out, out
    assert ("Your kernel does not provide MemAvailable data (needs 3.14+)" in out) is (kernel == "2.6.32")


@pytest.mark.parametrize("kernel", ["2.6.32", "6.x"])
def test_nohang_refuses_a_kernel_before_3_14(unpacked, kernel):
    conf = unpacked / "etc/nohang/nohang.conf"
    out = shell(kernel, f"timeout 3 python3 -W ignore {unpacked}/usr/sbin/nohang --monitor -c {conf} 2>&1 | head -4")
    assert ("your Linux kernel is too old, Linux 3.14+ required" in out) is (kernel == "2.6.32"), out
    if kernel == "6.x":
        assert "Monitoring has started!" in out
