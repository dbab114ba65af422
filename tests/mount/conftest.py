"""The mount tier: real FUSE mounts in temporary directories, always unmounted.

Everything here needs root (``allow_other``, mount namespaces, the raw backend's mount(2)) and FUSE;
without them the tier is skipped, each test saying why.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from fakeproc.client import ControlError, send
from fakeproc.mounts import mount_state, unmount, wait_until

from ..conftest import fakeproc, sh


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the mount tier needs root (allow_other, mount namespaces, mount(2)); tools/test --fast runs the rest"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse on this machine"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = _why_not()
    if why:
        here = Path(__file__).parent
        for item in items:
            if here in Path(str(item.fspath)).parents:
                item.add_marker(pytest.mark.skip(reason=why))


class Mount:
    """A running fakeproc mount and helpers to drive it."""

    def __init__(self, path: Path, log: Path) -> None:
        self.path = path
        self.log = log

    def __truediv__(self, other: str) -> Path:
        return self.path / other

    def ctl(self, *words: str, check: bool = True) -> str:
        """One control line, as ``fakeproc ctl`` sends it (fakeproc.client: the control file, from here)."""
        try:
            return send(str(self.path), list(words))
        except ControlError as e:
            if check:
                raise AssertionError(f"fakeproc ctl {' '.join(words)} failed: {e}") from None
            return e.reply

    def new_pid(self, *words: str) -> int:
        return int(self.ctl(*words).split()[-1])

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def echo(self, rel: str, text: str) -> None:
        """``echo TEXT > FILE`` from a shell: its failure as an OSError."""
        r = sh(f"echo {shlex.quote(text)} > {shlex.quote(str(self.path / rel))}", shell="bash")
        if r.returncode != 0:
            raise OSError(r.stderr.strip())

    def exists(self, rel: str) -> bool:
        return (self.path / rel).exists()

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
    """Unmount whatever state the mount is in (what ``fakeproc umount`` does, from here: tens of
    milliseconds, not an interpreter's start); kill the daemon if it lingers."""
    pid = None
    try:
        pid = m.daemon_pid() if mount_state(str(m.path)) == "fakeproc" else None
    except AssertionError:
        pass
    state = mount_state(str(m.path))
    if state == "fakeproc":
        with contextlib.suppress(OSError):
            unmount(str(m.path))
    if mount_state(str(m.path)) in ("fakeproc", "stale"):
        subprocess.run(["fusermount", "-u", "-z", str(m.path)], check=False, capture_output=True)
    if pid is not None and not wait_until(lambda: not _running(pid), timeout=5, interval=0.005):
        os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


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


