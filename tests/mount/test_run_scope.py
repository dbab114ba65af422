"""``fakeproc run``: whose processes the OOM killer considers (--oom-scope), and `fakeproc ps` inside a run
(issue #15 items 7 and 8)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .test_run import fakeproc_run, ok

FP = f"{sys.executable} -m fakeproc"
#: a process of the host, outside any run, that holds 200 MiB: the biggest candidate of the machine
HOG = [sys.executable, "-c", "import sys, time; b = bytearray(200 << 20); b[::4096] = b'x' * len(b[::4096]); "
                             "print('ready', flush=True); time.sleep(60)"]


@pytest.fixture
def hog():
    p = subprocess.Popen(HOG, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    yield p.pid
    p.kill()
    p.wait()


def test_the_killer_considers_only_the_runs_processes_by_default(hog):
    out = ok(fakeproc_run("--kernel", "6.x", cmd=f"sleep 30 & {FP} oom --dry-run; {FP} oom; kill $!"))
    chosen = [line for line in out.splitlines() if "<- would be chosen" in line][0]
    assert int(chosen.split()[0]) != hog
    # the host's processes are not brought in; those the run touched (its ancestors) are passed over
    assert "not part of this run (--oom-scope run)" in out
    assert "killed: " in out and f"killed: {hog}" not in out


def test_oom_scope_host_is_the_machine_wide_view(hog):
    out = ok(fakeproc_run("--kernel", "6.x", "--oom-scope", "host", cmd=f"{FP} oom --dry-run"))
    chosen = [line for line in out.splitlines() if "<- would be chosen" in line][0]
    assert int(chosen.split()[0]) == hog  # 200 MiB resident: nothing of the run comes close


def test_ps_inside_a_run_lists_the_runs_processes_and_not_the_exited(tmp_path):
    script = (f"sleep 30 & echo $! > {tmp_path}/pid; {FP} ps; kill $!; wait; echo ---; {FP} ps")
    out = ok(fakeproc_run("--kernel", "6.x", cmd=script))
    before, after = out.split("---\n")
    pid = (tmp_path / "pid").read_text().strip()
    assert before.splitlines()[0].split()[5] == "SCORE_ADJ"  # the era's columns, rows or not
    assert any(line.split()[0] == pid and line.endswith(" sleep") for line in before.splitlines()[1:])
    assert not any(line.split()[0] == pid for line in after.splitlines()[1:])
