"""pytest plugin: a running fake machine for a scheduler's own test suite.

Installed with fakeproc (entry point ``pytest11``), it gives the fixtures
``fakeproc_machine`` (one machine per test; the era from the
``@pytest.mark.fakeproc(kernel=..., kill=..., privilege=...)`` marker) and
``fakeproc_factory`` (as many machines as a test wants)::

    @pytest.mark.fakeproc(kernel="2.6.31-rc", kill=True)
    def test_my_scheduler_survives(fakeproc_machine):
        sched = fakeproc_machine.popen(["./my-scheduler", "--jobs", "2"])
        ...
        fakeproc_machine.oom()
        fakeproc_machine.assert_chosen(comm="job")

A machine is one ``fakeproc run`` kept alive for the test: every command the
test runs under it (``run``, ``popen``) enters that run's mount namespace
with ``nsenter``, so they all share one model, one kernel log and one OOM
killer, and ``--kill`` reaches them.  It needs root, like ``fakeproc run``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

_KILLED = re.compile(r"Killed process (\d+) \(([^)]*)\)")


@dataclass
class OomReport:
    """What one run of the OOM killer did: its log lines and who died."""

    lines: list[str]
    killed: list[int] = field(default_factory=list)  # every pid that died (victim and mm sharers)

    @property
    def victim(self) -> tuple[int, str] | None:
        """(pid, comm) of the process the report names as killed."""
        for line in self.lines:
            m = _KILLED.search(line)
            if m:
                return int(m.group(1)), m.group(2)
        return None


class FakeMachine:
    """One running ``fakeproc run`` whose namespace the test's commands enter."""

    def __init__(self, kernel: str = "2.6.32", kill: bool = False, privilege: str = "owner",
                 oom_scope: str = "run") -> None:
        """``oom_scope``: the killer's candidates, the machine's own processes (``run``, the default: the
        commands the test runs under it; what else the CI machine runs never becomes the victim) or every
        process of the host (``host``)."""
        if os.geteuid() != 0:
            pytest.fail("fakeproc_machine needs root: it mounts FUSE over /proc in a private mount namespace",
                        pytrace=False)
        if shutil.which("nsenter") is None:
            pytest.fail("fakeproc_machine needs nsenter (util-linux)", pytrace=False)
        self.kernel = kernel
        self._dir = tempfile.mkdtemp(prefix="fakeproc-machine-")
        #: a symbolic link into the run's mount (which exists only in the run's mount namespace), for root
        self.mountpoint = os.path.join(self._dir, "proc")
        argv = [sys.executable, "-m", "fakeproc", "run", "--kernel", kernel, "--privilege", privilege,
                "--oom-scope", oom_scope, "--mountpoint", self.mountpoint] + (["--kill"] if kill else []) + [
            "--", "sh", "-c", "echo $$; exec sleep infinity"]
        self._run = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self._run.stdout is not None and self._run.stderr is not None
        line = self._run.stdout.readline()
        if not line.strip().isdigit():
            err = self._run.stderr.read() if self._run.poll() is not None else ""
            self.close()
            pytest.fail(f"fakeproc run did not start: {err.strip()}", pytrace=False)
        self.anchor = int(line)  # the process whose mount namespace the commands join

    # ------------------------------------------------------------- commands

    def _argv(self, cmd: Sequence[str] | str) -> list[str]:
        if isinstance(cmd, str):
            cmd = ["sh", "-c", cmd]
        return ["nsenter", f"--mount=/proc/{self.anchor}/ns/mnt", "--", *cmd]

    def run(self, cmd: Sequence[str] | str, *, check: bool = False, timeout: float = 60,
            **kw: Any) -> subprocess.CompletedProcess:
        """Run a command (argv, or a string for ``sh -c``) with this machine as its /proc."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run(self._argv(cmd), check=check, timeout=timeout, **kw)

    def popen(self, cmd: Sequence[str] | str, **kw: Any) -> subprocess.Popen:
        """Start a command in the background (a daemon, a scheduler) with this machine as its /proc."""
        return subprocess.Popen(self._argv(cmd), **kw)

    # ---------------------------------------------------------------- model

    def ctl(self, *words: str) -> str:
        """One control verb (see ``fakeproc ctl --help``); raises on error."""
        r = subprocess.run([sys.executable, "-m", "fakeproc", "ctl", "-m", self.mountpoint, *words],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"fakeproc ctl {' '.join(words)}: {r.stderr.strip()}")
        return r.stdout

    def read(self, pid: int, name: str) -> str:
        """``/proc/PID/NAME`` as the model answers it (oom_adj, oom_score, oom_score_adj)."""
        with open(os.path.join(self.mountpoint, str(pid), name)) as f:
            return f.read().strip()

    def dmesg(self) -> str:
        """The model's kernel log."""
        with open(os.path.join(self.mountpoint, "fakeproc", "dmesg")) as f:
            return f.read()

    def events(self, since: int = 0, type: str | None = None) -> list[dict[str, Any]]:
        """The change stream (``fakeproc log --json``): events numbered after ``since``, of one type if given.

        Writes to the OOM files carry ``by`` (the writer's tid) and ``also`` (other processes whose value
        moved with it); forks, execs, exits, OOM calls and kills are there too, in order.
        """
        import json

        events = [json.loads(line) for line in self.ctl("events", "--since", str(since)).splitlines()]
        return [ev for ev in events if type is None or ev["type"] == type]

    def oom(self) -> OomReport:
        """Run the model's OOM killer once (as SysRq-f would) and report what it did."""
        out = self.ctl("oom").splitlines()
        killed = [int(w) for w in out[-1].split(":", 1)[1].split() if w.isdigit()] if out else []
        return OomReport([line for line in out[:-1]], killed)

    def chosen(self) -> list[tuple[int, str]]:
        """(pid, comm) of every process the killer has killed so far, in order."""
        return [(int(m.group(1)), m.group(2)) for m in _KILLED.finditer(self.dmesg())]

    def assert_chosen(self, pid: int | None = None, comm: str | None = None) -> None:
        """Assert that the last OOM kill took ``pid`` (and/or a process named ``comm``)."""
        chosen = self.chosen()
        assert chosen, f"the OOM killer has killed nobody; kernel log:\n{self.dmesg()}"
        last_pid, last_comm = chosen[-1]
        if pid is not None:
            assert last_pid == pid, f"the OOM killer chose {last_pid} ({last_comm}), not {pid}"
        if comm is not None:
            assert last_comm == comm, f"the OOM killer chose {last_pid} ({last_comm}), not a {comm!r}"

    # ------------------------------------------------------------- teardown

    def close(self) -> None:
        if self._run.poll() is None:
            self._run.send_signal(signal.SIGTERM)  # forwarded to the anchor; the run cleans up
            try:
                self._run.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._run.kill()
                self._run.wait()
        for stream in (self._run.stdout, self._run.stderr):
            if stream is not None:
                stream.close()
        deadline = time.monotonic() + 5
        while os.path.lexists(self.mountpoint) and time.monotonic() < deadline:  # the run takes its link away
            time.sleep(0.05)
        shutil.rmtree(self._dir, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fakeproc(kernel='2.6.32', kill=False, privilege='owner', oom_scope='run'): "
                                       "the machine the fakeproc_machine fixture starts")


@pytest.fixture
def fakeproc_factory() -> Iterator[Any]:
    """``fakeproc_factory(kernel=..., kill=..., privilege=..., oom_scope=...)`` -> a new :class:`FakeMachine`."""
    machines: list[FakeMachine] = []

    def make(kernel: str = "2.6.32", kill: bool = False, privilege: str = "owner",
             oom_scope: str = "run") -> FakeMachine:
        m = FakeMachine(kernel, kill, privilege, oom_scope)
        machines.append(m)
        return m

    yield make
    for m in machines:
        m.close()


@pytest.fixture
def fakeproc_machine(request: pytest.FixtureRequest, fakeproc_factory: Any) -> FakeMachine:
    """A running fake machine for this test; its era and options from ``@pytest.mark.fakeproc``."""
    marker = request.node.get_closest_marker("fakeproc")
    return fakeproc_factory(**(marker.kwargs if marker else {}))
