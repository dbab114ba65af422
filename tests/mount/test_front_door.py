"""What a new user meets first (issue #17): questions for every user of a mount, changes for its mounter;
mount errors said once, in one line, before anything is created; complete help."""

from __future__ import annotations

import os
import subprocess

import pytest

from ..conftest import fakeproc, sh
from .test_nonroot import NOBODY, PYTHON, needs_python


def as_nobody(cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([*NOBODY, "bash", "-c", cmd], capture_output=True, text=True, timeout=60, cwd="/")


def test_the_query_file_answers_questions_for_everyone_and_changes_nothing(mnt):
    q = mnt.path / "fakeproc/query"
    assert oct(q.stat().st_mode & 0o777) == "0o666" and oct((mnt.path / "fakeproc/control").stat().st_mode & 0o777) \
        == "0o600"
    r = as_nobody(f"exec 3<>{q}; echo ps >&3; cat <&3")
    assert r.returncode == 0 and "jobsched" in r.stdout, r.stderr
    r = as_nobody(f"exec 3<>{q}; echo 'oom --dry-run' >&3; cat <&3")
    assert "<- would be chosen" in r.stdout
    r = as_nobody(f"exec 3<>{q}; echo 'fork 1' >&3; cat <&3")
    assert "only answers questions" in r.stdout and "Operation not permitted" in r.stderr
    for line in ("oom", "save /tmp/x.toml", "sysctl panic_on_oom 1", "tick 1", "clock 60x", "reboot"):
        r = as_nobody(f"exec 3<>{q}; echo '{line}' >&3; cat <&3")
        assert "only answers questions" in r.stdout, line
    assert mnt.exists("500")  # nothing was killed
    # a query file that asked nothing reads nothing: the mounter's replies are not everyone's
    mnt.ctl("fork", "1", "--comm", "secret")
    assert as_nobody(f"cat {q}").stdout == ""
    r = as_nobody(f"exec 3<>{mnt.path}/fakeproc/control")
    assert r.returncode != 0 and "Permission denied" in r.stderr


@needs_python
def test_the_question_commands_work_for_any_user(mnt):
    assert PYTHON is not None
    fp = " ".join([*PYTHON, "-m", "fakeproc"])
    r = as_nobody(f"{fp} ps -m {mnt.path}")
    assert r.returncode == 0 and "memhog" in r.stdout, r.stderr
    for words in ("explain 500", "explain 500 --as 400", "oom --dry-run", "log -k", "ctl ps", "ctl info"):
        verb, *rest = words.split()
        r = as_nobody(f"{fp} {verb} -m {mnt.path} {' '.join(rest)}")
        assert r.returncode == 0, (words, r.stderr)
    r = as_nobody(f"{fp} ctl -m {mnt.path} fork 1")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "changing this machine is for the user who mounted it" in r.stderr


def test_mount_errors_are_one_line_and_create_nothing(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    cases = [
        ([str(f)], "is not a directory"),
        ([str(tmp_path / "no/such/dir")], "no such directory"),
        ([""], "empty path"),
        ([str(tmp_path / "m"), "--scenario", str(f)], "there must be a process with pid 1"),
    ]
    for args, said in cases:
        r = fakeproc("mount", *args, "--background", check=False)
        assert r.returncode != 0 and said in r.stderr, (args, r.stderr)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("fakeproc: "), r.stderr
    assert not (tmp_path / "no").exists()


def test_info_and_help(mnt):
    uptime = [line for line in mnt.ctl("info").splitlines() if line.startswith("uptime:")][0]
    assert uptime == "uptime: 172800.00"
    for cmd in ("ps", "explain", "oom", "save", "log"):
        out = fakeproc(cmd, "--help").stdout
        assert "the mount to talk to" in out, cmd
    assert "--as PID" in fakeproc("explain", "--help").stdout
    assert "List the mount's processes" in fakeproc("ps", "--help").stdout
    out = fakeproc("ctl", "--help").stdout
    assert "-m, --mountpoint MOUNTPOINT" in out and "reboot" in out and "sysctl" in out


@pytest.fixture
def mnt(mount_factory):
    return mount_factory()


def test_the_query_file_is_listed(mnt):
    assert sorted(os.listdir(mnt.path / "fakeproc")) == ["control", "dmesg", "query"]
    assert sh(f"ls -l {mnt.path}/fakeproc/query").stdout.startswith("-rw-rw-rw-")
