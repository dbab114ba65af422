"""``fakeproc run``: whose processes the OOM killer considers (--oom-scope), and `fakeproc ps` inside a run
(issue #15 items 7 and 8)."""

from __future__ import annotations

import shutil
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
    rows = {int(line.split()[0]): line for line in out.splitlines()[1:] if line.split()[0].isdigit()}
    assert hog in rows and "skipped" not in rows[hog]  # a host process, scored
    # 200 MiB resident: it outranks every process of the run (another big process of the host may outrank it)
    ranked = [pid for pid in rows if "skipped" not in rows[pid]]
    run_pids = [pid for pid in ranked if "fakeproc" in rows[pid] or " sh" in rows[pid]]
    assert all(ranked.index(hog) < ranked.index(pid) for pid in run_pids)


def test_ps_inside_a_run_lists_the_runs_processes_and_not_the_exited(tmp_path):
    script = (f"sleep 30 & echo $! > {tmp_path}/pid; {FP} ps; kill $!; wait; echo ---; {FP} ps")
    out = ok(fakeproc_run("--kernel", "6.x", cmd=script))
    before, after = out.split("---\n")
    pid = (tmp_path / "pid").read_text().strip()
    assert before.splitlines()[0].split()[5] == "SCORE_ADJ"  # the era's columns, rows or not
    assert any(line.split()[0] == pid and line.endswith(" sleep") for line in before.splitlines()[1:])
    assert not any(line.split()[0] == pid for line in after.splitlines()[1:])


@pytest.mark.parametrize(("kernel", "file", "value"), [("6.x", "oom_score_adj", "300"), ("2.6.32", "oom_adj", "-5")])
def test_a_process_whose_parent_exited_inherits_what_it_had_at_fork(tmp_path, kernel, file, value):
    """kernel/fork.c copy_process() copies the parent's value at fork time; the model hears of the fork
    from the process events connector (cn_proc), so a child first seen after its parent exited has the
    value it was forked with, not its adopter's (issue #15 item 5's reproducer: the kernel prints 300)."""
    pidfile = tmp_path / "p"
    script = (f"echo {value} > /proc/self/{file}; sh -c 'sleep 30 & echo $! > {pidfile}'; sleep .3; "
              f"cat /proc/$(cat {pidfile})/{file}; kill $(cat {pidfile})")
    assert ok(fakeproc_run("--kernel", kernel, cmd=script)) == f"{value}\n"


@pytest.mark.skipif(shutil.which("start-stop-daemon") is None, reason="no start-stop-daemon (dpkg)")
def test_start_stop_daemon_background_keeps_its_starters_value(tmp_path):
    pidfile = tmp_path / "ssd.pid"
    script = (f"echo 300 > /proc/self/oom_score_adj; start-stop-daemon --start -b -m --pidfile {pidfile} "
              f"--exec /bin/sleep -- 30; sleep .3; cat /proc/$(cat {pidfile})/oom_score_adj; kill $(cat {pidfile})")
    assert ok(fakeproc_run("--kernel", "6.x", cmd=script)) == "300\n"
