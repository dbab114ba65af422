"""Fixtures: real FUSE mounts in temporary directories, always unmounted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fakeproc.machine.task import Caller
from fakeproc.mounts import mount_state

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("FAKEPROC_SHARED", REPO.parent / "shared"))
FAKEPROC = [sys.executable, "-m", "fakeproc"]


def fakeproc(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run the fakeproc CLI as a user would."""
    return subprocess.run(FAKEPROC + list(args), capture_output=True, text=True, check=check, timeout=60, **kw)


class Writer:
    """A writer of the OOM files for the machine's API (``write_oom_adj(tid, data, writer)``): privileged
    (holding CAP_SYS_RESOURCE) or not."""

    tid = 4242

    def __init__(self, privileged: bool) -> None:
        self._privileged = privileged

    def privileged(self) -> bool:
        return self._privileged

    def caller(self) -> Caller:
        return Caller(4242, 0 if self._privileged else 1000, "writer")


class Mount:
    """A running fakeproc mount and helpers to drive it."""

    def __init__(self, path: Path, log: Path) -> None:
        self.path = path
        self.log = log

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def ctl(self, *words: str, check: bool = True) -> str:
        r = fakeproc("ctl", "-m", str(self.path), *words, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"fakeproc ctl {' '.join(words)} failed: {r.stderr}")
        return r.stdout

    def new_pid(self, *words: str) -> int:
        return int(self.ctl(*words).split()[-1])

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def daemon_pid(self) -> int:
        for line in self.ctl("info").splitlines():
            if line.startswith("daemon_pid:"):
                return int(line.split(":")[1])
        raise AssertionError("no daemon_pid in info")


def start_mount(path: Path, *options: str) -> Mount:
    log = path.parent / (path.name + ".log")
    if log.exists():
        log.unlink()
    r = fakeproc("mount", str(path), "--background", "--log", str(log), *options, check=False)
    assert r.returncode == 0, f"mount failed: {r.stderr}\n{log.read_text() if log.exists() else ''}"
    return Mount(path, log)


def stop_mount(m: Mount) -> None:
    """Unmount whatever state the mount is in; kill the daemon if it lingers."""
    pid = None
    try:
        pid = m.daemon_pid() if mount_state(str(m.path)) == "fakeproc" else None
    except AssertionError:
        pass
    fakeproc("umount", str(m.path), check=False)
    if mount_state(str(m.path)) in ("fakeproc", "stale"):
        subprocess.run(["fusermount", "-u", "-z", str(m.path)], check=False)
    if pid is not None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.02)
        if os.path.exists(f"/proc/{pid}"):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def mount_factory():
    """mount_factory(*options, name="mnt") -> Mount; every mount is unmounted at the end.

    The directory is world-traversable so tests can act as other users.
    """
    mounts: list[Mount] = []
    base = Path(tempfile.mkdtemp(prefix="fakeproc-test-"))
    base.chmod(0o755)

    def make(*options: str, name: str = "mnt") -> Mount:
        path = base / name
        path.mkdir(exist_ok=True)
        m = start_mount(path, *options)
        mounts.append(m)
        return m

    yield make
    problems = []
    for m in mounts:
        stop_mount(m)
        log = m.log.read_text(errors="replace") if m.log.exists() else ""
        if "Traceback" in log or "bug in fakeproc" in log:
            problems.append(f"{m.log}:\n{log[-3000:]}")
    shutil.rmtree(base, ignore_errors=True)
    # a daemon that logged a traceback answered someone with a made-up errno
    assert not problems, "the daemon logged errors:\n" + "\n".join(problems)


@pytest.fixture
def mnt(mount_factory) -> Mount:
    """The default machine (2.6.32, privilege owner) mounted in a temporary directory."""
    return mount_factory()


def sh(cmd: str, shell: str = "sh", **kw) -> subprocess.CompletedProcess:
    """Run a shell command line (dash by default; bash prints errno messages for write errors)."""
    kw.setdefault("timeout", 60)
    return subprocess.run([shell, "-c", cmd], capture_output=True, text=True, **kw)


# --------------------------------------------------------------------------------------------------
# Mounts shared by a whole module (property-based and stress tests must not mount per example),
# and the hypothesis profiles.


def _log_problems(m: Mount) -> str:
    log = m.log.read_text(errors="replace") if m.log.exists() else ""
    return f"{m.log}:\n{log[-3000:]}" if "Traceback" in log or "bug in fakeproc" in log else ""


@pytest.fixture(scope="module")
def module_mount_factory():
    """mount_factory for a whole module: make(*options, name="mnt", check_log=True) -> Mount.

    Every mount is unmounted after the module's last test, and fails the module if its daemon
    logged a traceback, unless it was made with ``check_log=False`` (a mount kept for tests that
    provoke a known daemon bug on purpose and check the log themselves).
    """
    mounts: list[tuple[Mount, bool]] = []
    base = Path(tempfile.mkdtemp(prefix="fakeproc-module-"))
    base.chmod(0o755)

    def make(*options: str, name: str = "mnt", check_log: bool = True) -> Mount:
        path = base / name
        path.mkdir(exist_ok=True)
        m = start_mount(path, *options)
        mounts.append((m, check_log))
        return m

    yield make
    problems = []
    for m, check_log in mounts:
        stop_mount(m)
        if check_log and _log_problems(m):
            problems.append(_log_problems(m))
    shutil.rmtree(base, ignore_errors=True)
    assert not problems, "the daemon logged errors:\n" + "\n".join(problems)


try:
    from hypothesis import HealthCheck, settings
except ImportError:  # only the property-based tests need it (setup.cfg: the "test" extra)
    settings = None

if settings is not None:
    # "ci" (the default) keeps tests/test_hostile.py around a minute on a 2-core machine;
    # HYPOTHESIS_PROFILE=thorough runs each property 10,000 times. No example database: nothing is
    # written into the working tree; a failure prints its minimal example and a reproduce blob.
    _common = dict(
        deadline=None,  # a FUSE round trip has no fixed duration
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    settings.register_profile("ci", max_examples=150, **_common)
    settings.register_profile("thorough", max_examples=10_000, **_common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
