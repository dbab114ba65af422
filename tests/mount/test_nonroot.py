"""fakeproc as a user other than root: the fast tier with no FUSE at all, and a mount through fusermount3.

Both run as uid 65534, each in a private mount namespace so that nothing outside changes: one hides
/dev/fuse (an empty file bound over it), the other shows a /dev/fuse that every user may open, as most
machines have it (fusermount3 opens the device with the user's own credentials; here it is mode 0600).
Such a mount is its user's alone (no ``allow_other`` without ``user_allow_other`` in /etc/fuse.conf):
even root is refused, so every look into it is made as uid 65534.
The interpreter must be one uid 65534 may run, of this one's version (a virtualenv under /root is not).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

from ..conftest import REPO

NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]


def nobody_python() -> list[str] | None:
    """An interpreter uid 65534 can run, with this one's packages on its path (None: there is none)."""
    paths = [str(REPO), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    env = ["env", "HOME=/tmp", "PYTHONDONTWRITEBYTECODE=1", f"PYTHONPATH={os.pathsep.join(paths)}"]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for exe in (sys.executable, shutil.which(version), f"/usr/bin/{version}"):
        if not exe or shutil.which("setpriv") is None:
            continue
        probe = subprocess.run([*NOBODY, *env, exe, "-c", "import trio, psutil, pytest, fakeproc"],
                               capture_output=True, cwd="/", timeout=60)
        if probe.returncode == 0:
            return [*env, exe]
    return None


PYTHON = nobody_python()
needs_python = pytest.mark.skipif(PYTHON is None, reason="no interpreter uid 65534 may run with this one's packages")


@needs_python
def test_the_fast_tier_passes_as_nobody_on_a_machine_without_fuse():
    assert PYTHON is not None
    inner = f"mount --bind /dev/null /dev/fuse 2>/dev/null || true; exec {' '.join(NOBODY)} {' '.join(PYTHON)} " \
            f"-m pytest -q -p no:cacheprovider {REPO}/tests/core -x"
    empty = tempfile.NamedTemporaryFile(delete=False)
    try:
        script = f"mount --bind {empty.name} /dev/fuse && {inner}"
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                           text=True, timeout=300, cwd="/")
    finally:
        os.unlink(empty.name)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and "failed" not in r.stdout


@needs_python
@pytest.mark.skipif(shutil.which("fusermount3") is None and shutil.which("fusermount") is None,
                    reason="no fusermount3 (Debian's fuse3) to mount with as a user")
def test_a_user_mounts_through_fusermount3_and_gets_the_raw_backend(tmp_path):
    assert PYTHON is not None
    home = Path(tempfile.mkdtemp(prefix="fakeproc-nobody-"))
    os.chown(home, 65534, 65534)
    mp, log = home / "mnt", home / "log"
    fp = [*NOBODY, *PYTHON, "-m", "fakeproc"]
    dev = tmp_path / "dev"
    dev.mkdir()
    # /dev/fuse as most machines have it (crw-rw-rw-), in this namespace only
    script = (f"mount -t tmpfs none {dev} && mknod -m 666 {dev}/fuse c 10 229 && mount --bind {dev}/fuse /dev/fuse && "
              f"{' '.join(fp)} mount {mp} --background --log {log} >/dev/null && "
              f"{' '.join(NOBODY)} cat {mp}/500/oom_score && {' '.join(NOBODY)} sh -c 'echo 5 > {mp}/700/oom_adj' && "
              f"{' '.join(NOBODY)} cat {mp}/700/oom_adj && grep -c 'FUSE backend raw' {log} && "
              f"{' '.join(fp)} umount {mp} && "
              f"grep -c ' {mp} ' /proc/self/mountinfo || true")
    try:
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script], capture_output=True,
                           text=True, timeout=120, cwd="/")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["81920", "5", "1", "0"], r.stdout + r.stderr
