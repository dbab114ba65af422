"""``fakeproc run``: real, unmodified programs whose /proc is the model.

Each client is run as its users run it: shell one-liners, C programs built
with ``cc`` here, a Python scheduler, util-linux's ``choom``, procps's
``ps`` and ``top``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLIENTS = Path(__file__).parent.parent / "clients"


def fakeproc_run(*args: str, cmd: list[str] | str, timeout: float = 90, **kw) -> subprocess.CompletedProcess:
    if isinstance(cmd, str):
        cmd = ["sh", "-c", cmd]
    return subprocess.run([sys.executable, "-m", "fakeproc", "run", *args, "--", *cmd], capture_output=True,
                          text=True, timeout=timeout, **kw)


def ok(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


@pytest.fixture(scope="module")
def bins(tmp_path_factory) -> Path:
    """The C clients, built with cc as their users would build them."""
    if shutil.which("cc") is None:
        pytest.fail("cc is needed to build the C clients (tools/test installs gcc)")
    out = tmp_path_factory.mktemp("bin")
    for src in CLIENTS.glob("*.c"):
        subprocess.run(["cc", "-Wall", "-Werror", "-o", str(out / src.stem), str(src)], check=True)
    os.chmod(out, 0o755)
    return out


def fakeproc_mounts() -> list[str]:
    """The fakeproc mounts a run could leave in this namespace: over /proc, or at a run's own temporary
    directory (``fakeproc-run-*``).  Other mounts (another test's, a benchmark's) come and go meanwhile."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f if " - fuse.fakeproc " in line]
    return [p for p in points if p == "/proc" or os.path.basename(p).startswith("fakeproc-run-")]


@pytest.fixture(autouse=True)
def no_mount_here():
    """A run mounts only inside its own namespace: this one never gains a fakeproc mount, during or after."""
    before = fakeproc_mounts()
    yield
    assert fakeproc_mounts() == before, "fakeproc run mounted something in the caller's namespace"


# ------------------------------------------------------------ shell clients

def test_shell_protects_itself():
    out = ok(fakeproc_run(cmd="echo -17 > /proc/self/oom_adj; cat /proc/self/oom_adj /proc/self/oom_score"))
    assert out == "-17\n0\n"


def test_the_hosts_real_files_are_not_touched_nor_reachable():
    r = subprocess.Popen([sys.executable, "-m", "fakeproc", "run", "--kernel", "6.x", "--", "sh", "-c",
                          "echo 700 > /proc/self/oom_score_adj && echo $$ $(cat /proc/self/oom_score_adj) "
                          "&& read x"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid, value = r.stdout.readline().split()
    assert value == "700"
    real = Path(f"/proc/{pid}/oom_score_adj").read_text()  # the host's own view of the same process
    assert real == Path("/proc/self/oom_score_adj").read_text()  # inherited from us, not 700
    r.communicate("\n", timeout=30)
    assert r.returncode == 0


def test_everything_else_passes_through():
    out = ok(fakeproc_run(cmd="head -1 /proc/meminfo; test -r /proc/self/status && echo status; "
                              "ls /proc/self | grep -c '^oom'; "
                              "test -e /proc/self/oom_score_adj || echo no-score-adj; "
                              "readlink /proc/self/exe; free | head -1 | tr -s ' '; "
                              "pgrep -x sh >/dev/null && echo pgrep"))
    lines = out.splitlines()
    assert lines[0].startswith("MemTotal:")
    assert lines[1] == "status"
    assert lines[2] == "2"  # 2.6.32 has oom_adj and oom_score, not the host's oom_score_adj
    assert lines[3] == "no-score-adj"
    assert lines[4] in ("/usr/bin/ls", "/bin/ls", "/usr/bin/readlink", "/bin/readlink")
    assert "total" in lines[5]
    assert lines[6] == "pgrep"


def test_self_and_thread_self_resolve_for_each_caller():
    script = (
        "import os, threading\n"
        "print(os.readlink('/proc/self') == str(os.getpid()))\n"
        "def t():\n"
        "    print(os.readlink('/proc/thread-self') == f'{os.getpid()}/task/{threading.get_native_id()}')\n"
        "    print(open('/proc/thread-self/oom_adj').read().strip())\n"
        "th = threading.Thread(target=t); th.start(); th.join()\n")
    out = ok(fakeproc_run("--kernel", "2.6.31", cmd=[sys.executable, "-c", script]))
    assert out == "True\nTrue\n0\n"


def test_fork_before_and_after_a_write():
    out = ok(fakeproc_run(cmd="sleep 30 & a=$!; echo -17 > /proc/self/oom_adj; sleep 30 & b=$!; "
                              "cat /proc/$a/oom_adj /proc/$b/oom_adj; kill $a $b"))
    assert out == "0\n-17\n"  # forked before the write: the old value; after: the new one


# --------------------------------------------------------------- C clients

@pytest.mark.parametrize("era, parent_after", [("2.6.31-rc", "0"), ("2.6.32", "-17"), ("6.x", "-17")])
def test_vfork_scheduler_in_c(bins, era, parent_after):
    job = 'echo "job $(cat /proc/$$/oom_adj) parent $(cat /proc/$PPID/oom_adj)"'
    out = ok(fakeproc_run("--kernel", era, cmd=[str(bins / "vfork_sched"), "sh", "-c", job]))
    lines = out.splitlines()
    assert lines[0] == f"job 0 parent {parent_after}"  # the job runs after exec: the parent's value is final
    assert lines[1].endswith(f"oom_adj {parent_after}")


@pytest.mark.parametrize("era, written", [("2.6.32", "wrote 7 to /proc/PID/oom_adj"),
                                          ("6.x", "wrote 500 to /proc/PID/oom_score_adj")])
def test_slurm_style_writer_falls_back_only_without_oom_score_adj(bins, era, written):
    out = ok(fakeproc_run("--kernel", era, cmd=f"{bins}/slurm_writer $$ 500 | sed s/$$/PID/; cat /proc/$$/oom_adj"))
    assert out.splitlines() == [written, "7" if era == "2.6.32" else "8"]


@pytest.mark.parametrize("era, name, old, new", [("2.6.32", "oom_adj", "3", "-17"),
                                                  ("6.x", "oom_score_adj", "300", "-1000")])
def test_sshd_style_r_plus_handle(bins, era, name, old, new):
    out = ok(fakeproc_run("--kernel", era, cmd=f"echo {old} > /proc/self/{name}; exec {bins}/sshd_oom {name} {new}"))
    assert out == f"old {old} new {new}\n"


# ----------------------------------------------------------- Python clients

@pytest.mark.parametrize("how", ["preexec", "posix_spawn"])
def test_python_scheduler(how):
    job = "cat /proc/$$/oom_adj /proc/$PPID/oom_adj"
    out = ok(fakeproc_run(cmd=[sys.executable, str(CLIENTS / "sched.py"), how, "oom_adj", "-17", "0", "--",
                               "sh", "-c", job]))
    assert out.splitlines() == ["0", "-17", "scheduler oom_adj -17"]


# ------------------------------------------------------- util-linux, procps

def test_choom_under_6_x():
    out = ok(fakeproc_run("--kernel", "6.x", cmd="choom -p $$; choom -n 500 -- sh -c 'choom -p $$'"))
    lines = out.splitlines()
    assert lines[1].endswith("current OOM score adjust value: 0")
    assert lines[3].endswith("current OOM score adjust value: 500")
    assert int(lines[2].rsplit(":", 1)[1]) > int(lines[0].rsplit(":", 1)[1])


def test_ps_and_top_list_real_processes_with_the_models_values():
    # procps-ng's oomadj column reads oom_score_adj (and shows 0 where there is none): a 6.x machine
    out = ok(fakeproc_run("--kernel", "6.x", cmd="echo -500 > /proc/self/oom_score_adj; "
                          "ps -eo pid,ppid,oom,oomadj,comm | grep \"^ *$$ \"; "
                          "echo $$; top -b -n 1 | grep -c .; cat /proc/$$/oom_score"))
    row, pid, top_lines, score = out.splitlines()
    fields = row.split()
    assert fields[0] == pid and fields[3] == "-500" and fields[4] == "sh"
    assert fields[2] == score  # ps's oom column is the model's oom_score
    assert int(top_lines) > 7  # summary lines, header, at least one process


# ------------------------------------------------------- the OOM killer, --kill

def test_kill_sends_a_real_sigkill_that_the_command_sees():
    victim = "echo 1000 > /proc/self/oom_score_adj; exec sleep 60"
    out = ok(fakeproc_run("--kernel", "6.x", "--kill", cmd=f"sh -c '{victim}' & sleep 0.5; "
                          "echo f > /proc/sysrq-trigger; wait $!; echo status $?; "
                          "grep -c 'Killed process' /proc/fakeproc/dmesg"))
    assert out.splitlines() == ["status 137", "1"]


def test_without_kill_the_model_kills_only_in_its_log():
    victim = "echo 1000 > /proc/self/oom_score_adj; exec sleep 2"
    r = fakeproc_run("--kernel", "6.x", cmd=f"sh -c '{victim}' & v=$!; sleep 0.5; echo f > /proc/sysrq-trigger; "
                     "grep -o \"Killed process $v\" /proc/fakeproc/dmesg; cat /proc/$v/oom_score_adj; "
                     "wait $v; echo status $?")
    lines = ok(r).splitlines()
    assert lines[0].startswith("Killed process")
    assert lines[-1] == "status 0"  # the real sleep ran to its end
    assert "keeps running" in r.stderr


def test_oom_from_outside_with_ctl(tmp_path):
    mp = tmp_path / "fake"
    p = subprocess.Popen([sys.executable, "-m", "fakeproc", "run", "--kernel", "6.x", "--kill", "--mountpoint",
                          str(mp), "--", "sh", "-c", "echo 1000 > /proc/self/oom_score_adj; echo ready; "
                                                     "exec sleep 60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    r = subprocess.run([sys.executable, "-m", "fakeproc", "ctl", "-m", str(mp), "oom"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "Killed process" in r.stdout
    p.wait(timeout=30)
    assert p.returncode == 128 + signal.SIGKILL


# ------------------------------------------- status, signals, what is left over

def test_exit_status_is_the_commands():
    assert fakeproc_run(cmd="exit 7").returncode == 7
    assert fakeproc_run(cmd="kill -TERM $$").returncode == 128 + signal.SIGTERM
    r = fakeproc_run(cmd=["/nonexistent/program"])
    assert r.returncode == 127 and "command not found" in r.stderr


def test_sigterm_is_forwarded_and_everything_cleaned_up():
    p = subprocess.Popen([sys.executable, "-m", "fakeproc", "run", "--", "sh", "-c",
                          "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done"],
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=30)
    assert out == "got TERM\n" and p.returncode == 3
    assert time.monotonic() - t0 < 5


def test_daemons_left_behind_are_reported_and_ended():
    r = fakeproc_run(cmd="setsid sleep 300 & echo $!; sleep 0.5")
    pid = int(ok(r).strip())
    assert "left 1 process(es) behind" in r.stderr and f"{pid} (sleep)" in r.stderr
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


def test_without_root_it_says_so():
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is missing")
    r = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                        sys.executable, "-m", "fakeproc", "run", "--", "true"], capture_output=True, text=True,
                       timeout=60, cwd="/")
    assert r.returncode != 0
    assert "needs root" in r.stderr


def test_vanished_processes_leave_the_model():
    count = "echo 'ps --json' >&3; grep -c \"\\\"pid\\\": $p,\" <&3 || true"
    out = ok(fakeproc_run(cmd=f"sleep 0.3 & p=$!; cat /proc/$p/oom_adj; exec 3<>/proc/fakeproc/control; {count}; "
                              f"wait; sleep 1.5; exec 3<>/proc/fakeproc/control; {count}"))
    assert out.split() == ["0", "1", "0"]  # in the model while it ran, gone after (the sweeper)


def test_a_crashing_command_leaves_nothing_behind():
    r = fakeproc_run(cmd="sleep 300 & kill -KILL $$")
    assert r.returncode == 128 + signal.SIGKILL
    assert "left 1 process(es) behind" in r.stderr  # the sleep, ended by the run


def test_top_sorts_by_the_models_oom_score():
    # the sleep is tiny for the real kernel; only the model's oom_score_adj of 1000 puts it on top
    out = ok(fakeproc_run("--kernel", "6.x", cmd="choom -n 1000 -- sleep 30 & sleep 0.3; echo $!; "
                                                  "top -b -n 1 -o OOMs -w 200 | sed -n 8p; kill $!"))
    pid, first = out.splitlines()
    assert first.split()[0] == pid and first.split()[-1] == "sleep"


def test_an_unprivileged_command_follows_the_rules_inside():
    script = ("echo 5 > /proc/self/oom_adj && echo raised; echo -5 > /proc/self/oom_adj 2>/dev/null || echo refused; "
              "cat /proc/self/oom_adj; (echo 0 > /proc/1/oom_adj) 2>/dev/null || echo not-mine; "
              "(echo ps > /proc/fakeproc/control) 2>/dev/null || echo no-control; "
              "(echo f > /proc/sysrq-trigger) 2>/dev/null || echo no-sysrq; "
              "cat /proc/1/environ >/dev/null 2>&1 || echo no-environ")
    out = ok(fakeproc_run(cmd=["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                               "sh", "-c", script]))
    assert out.split() == ["raised", "refused", "5", "not-mine", "no-control", "no-sysrq", "no-environ"]
