"""Issue #14 through a real mount, with the tools a user has: the ``fakeproc ctl`` command, ``sh``, ``cat``,
``echo f > sysrq-trigger``.  Values by hand, from the kernel lines quoted in tests/core/test_process_tree.py
and tests/core/test_vm_sysctls.py (which test every rule in-process); here each kind once, end to end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakeproc.kernel.eras import ERAS

from ..conftest import fakeproc, sh
from ..core.test_process_tree import MINIMAL
from ..core.test_sysctl_parser import PROBE, load_vectors, replay

#: FUSE hands a write() to the daemon in pieces of at most 128 KiB (less the buffer's misalignment): the
#: sysctl handler sees a longer one whole in the kernel, so those vectors are for the in-process tests
FUSE_WHOLE_WRITE = 128 * 1024 - 4096


@pytest.fixture
def minimal(tmp_path, mount_factory):
    def make(kernel: str):
        scenario = tmp_path / f"minimal-{kernel}.toml"
        scenario.write_text(MINIMAL)
        return mount_factory("--kernel", kernel, "--scenario", str(scenario), name=f"m-{kernel}")

    return make


def ctl(mnt, line: str) -> str:
    """``fakeproc ctl -m MOUNT WORDS...``, as a user types it."""
    r = fakeproc("ctl", "-m", str(mnt.path), *line.split(), check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def dmesg(mnt) -> list[str]:
    return [line.split("] ", 1)[1] for line in (mnt.path / "fakeproc/dmesg").read_text().splitlines()]


def test_children_of_threads_and_the_child_first_kill(minimal):
    m = minimal("2.6.32")
    for line in ("fork 1 --comm parent", "mem 3 --vm 40000k", "fork 3 --comm small", "mem 4 --vm 40k",
                 "fork 3 --comm big", "mem 5 --vm 400000k", "thread 5", "thread 5"):
        ctl(m, line)
    assert sh(f"cat {m.path}/3/oom_score").stdout == "10000\n"  # 10000 + 6 + 3 * 50001 = 160009, / 16
    r = sh(f"echo f > {m.path}/sysrq-trigger")
    assert r.returncode == 0, r.stderr
    assert dmesg(m)[-2:] == ["Out of memory: kill process 3 (parent) score 10000 or a child",
                             "Killed process 4 (small)"]
    assert dmesg(m)[1] == "events/0 invoked oom-killer: gfp_mask=0xd0, order=0, oom_adj=0"
    assert not (m.path / "4").exists() and (m.path / "5").exists()


def test_a_thread_as_parent_and_credentials_at_exec(minimal):
    m = minimal("2.6.32")
    ctl(m, "fork 1 --comm parent")
    ctl(m, "mem 3 --vm 400000k")
    assert ctl(m, "thread 3").split()[-1] == "4"
    assert ctl(m, "fork 4 --comm kid").split()[-1] == "5"
    assert sh(f"cat {m.path}/3/oom_score").stdout == "6250\n"
    assert sh(f"cat {m.path}/5/stat").stdout.split()[3] == "3"  # getppid(): the thread's process
    ctl(m, "fork 1 --uid 1000")  # 6
    ctl(m, "set 6 --caps sys_admin")
    ctl(m, "exec 6 svc --vm 400000k")
    assert sh(f"cat {m.path}/6/oom_score").stdout == "100000\n"  # a non-root exec keeps no capability


def test_6_x_in_vfork_sysctls_dump_summary_and_reaper(minimal):
    m = minimal("6.x")
    for line in ("fork 1", "mem 3 --vm 400000k --rss 200000k", "vfork 3"):
        ctl(m, line)
    assert sh(f"cat {m.path}/4/oom_score").stdout == "0\n"
    ctl(m, "exit 3")
    assert sh(f"cat {m.path}/4/oom_score").stdout == "692\n"  # (1000 + 50000 * 1000 / 1310720) * 2 / 3
    assert sh(f"cat {m.path}/sys/vm/oom_dump_tasks {m.path}/sys/vm/panic_on_oom").stdout == "1\n0\n"
    r = sh(f"echo 3 > {m.path}/sys/vm/panic_on_oom", shell="bash")  # proc_dointvec_minmax 0..2
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert sh(f"echo f > {m.path}/sysrq-trigger").returncode == 0
    log = dmesg(m)
    assert log[1] == "kworker/0:1 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=-1, oom_score_adj=0"
    assert "Tasks state (memory values in pages):" in log
    assert log[-3].startswith("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,")
    assert log[-2].startswith("Out of memory: Killed process 4 (init) total-vm:400000kB, anon-rss:200000kB")
    assert log[-1].startswith("oom_reaper: reaped process 4 ")


def test_a_panic_stops_the_machine_and_reboot_starts_it_again(minimal):
    m = minimal("6.x")
    assert sh(f"echo 1 > {m.path}/sys/vm/panic_on_oom").returncode == 0
    ctl(m, "fork 1")
    r = fakeproc("ctl", "-m", str(m.path), "oom", check=False)
    assert "Kernel panic - not syncing: Out of memory: system-wide panic_on_oom is enabled" in r.stdout
    r = sh(f"echo 5 > {m.path}/3/oom_score_adj", shell="bash")
    assert r.returncode != 0 and "Input/output error" in r.stderr
    r = fakeproc("ctl", "-m", str(m.path), "fork", "1", check=False)
    assert r.returncode != 0 and "fakeproc ctl reboot" in r.stderr
    assert sh(f"cat {m.path}/3/oom_score_adj").stdout == "0\n"  # reads answer as at the panic
    assert "rebooted" in ctl(m, "reboot")
    assert not (m.path / "3").exists() and "Kernel panic" not in (m.path / "fakeproc/dmesg").read_text()
    assert sh(f"cat {m.path}/sys/vm/panic_on_oom").stdout == "0\n"  # the scenario's values again
    assert ctl(m, "fork 1").split()[-1] == "3"


@pytest.mark.parametrize("kernel", ["2.6.32", "6.x"])
def test_sysctl_write_vectors_through_the_mount(minimal, kernel):
    """Every write vector of tests/data/sysctl (6.x: measured on a real 6.18) on ``sys/vm/overcommit_ratio``
    (proc_dointvec in every era), through FUSE, answers what the era's handler answers."""
    m = minimal(kernel)
    path = str(m.path / "sys/vm/overcommit_ratio")
    version = ERAS[kernel].version
    checked = 0
    for vector in load_vectors().values():
        if any(len(PROBE.write_bytes(w)) > FUSE_WHOLE_WRITE for w in vector.get("writes", [])):
            continue
        if any(rd["size"] > FUSE_WHOLE_WRITE for rd in vector.get("reads", [])):
            continue
        with open(path, "w") as f:  # every vector starts from the boot value
            f.write("50\n")
        assert PROBE.replay(path, vector) == replay(version, vector, 50, None), json.dumps(vector)[:200]
        checked += 1
    assert checked > 150


def test_run_mode_serves_the_models_vm_sysctls_and_passes_the_rest_through():
    """Under ``fakeproc run`` the OOM sysctls are the model's (2.6.32 boots with oom_dump_tasks 0; the host,
    a 6.x, has 1) and a write stays in the model; every other /proc/sys file is the host's.  (The write goes
    to oom_dump_tasks, harmless on the host even if it leaked, never to panic_on_oom.)"""
    host = Path("/proc/sys/vm/oom_dump_tasks").read_text()
    r = fakeproc("run", "--kernel", "2.6.32", "--", "sh", "-c",
                 "cat /proc/sys/vm/oom_dump_tasks; echo 7 > /proc/sys/vm/oom_dump_tasks; "
                 "cat /proc/sys/vm/oom_dump_tasks /proc/sys/vm/swappiness /proc/sys/kernel/pid_max", check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["0", "7", Path("/proc/sys/vm/swappiness").read_text().strip(),
                                     Path("/proc/sys/kernel/pid_max").read_text().strip()]
    assert Path("/proc/sys/vm/oom_dump_tasks").read_text() == host
