"""fakeproc shell: procps against a simulated machine, with the shell's own processes in it."""

from __future__ import annotations

import subprocess
import sys


def shell(*args: str, cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fakeproc", "shell", *args, "-c", cmd], capture_output=True,
                          text=True, timeout=90)


def test_ps_free_pgrep_and_top_see_the_simulated_machine():
    r = shell(cmd="ps -e -o pid,ppid,user,oom,oomadj,rss,comm; echo; free -k | sed -n 2p; pgrep -x memhog; "
                  "cat /proc/500/oom_score /proc/uptime; top -b -n 1 | sed -n 2p; echo $$")
    assert r.returncode == 0, r.stderr
    ps, rest = r.stdout.split("\n\n", 1)
    rows = {line.split()[0]: line.split() for line in ps.splitlines()[1:]}
    assert rows["500"][1] == "1" and rows["500"][3:] == ["81920", "0", "2097152", "memhog"]  # user: uid 1000
    assert {"1", "2", "310", "400", "401", "402", "600", "700"} <= set(rows)
    mem, pgrep, score, uptime, tasks, sh_pid = rest.splitlines()
    assert mem.split()[1] == str(4 << 20)  # the scenario's 4G of RAM, in kB
    assert pgrep == "500" and score == "81920" and uptime.startswith("172800.00 ")
    assert tasks.startswith("Tasks:")
    assert sh_pid in rows and rows[sh_pid][-1] == "sh"  # the shell itself is there, so procps works


def test_the_killer_runs_inside_and_kills_in_the_model():
    r = shell("--kernel", "6.x", cmd="echo f > /proc/sysrq-trigger; grep -c 'Killed process 500' /proc/fakeproc/dmesg; "
                                     "test -e /proc/500 || echo gone")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "gone"]


def test_memory_runs_out_while_the_shell_watches():
    """A running clock (60 simulated seconds per second): memhog allocates, free shows it, then the killer
    fires by itself with memhog as the allocating task; the shell's own processes are not in danger."""
    r = shell("--clock", "60x", cmd="free -m | sed -n 2p; sleep 3; while test -e /proc/500; do sleep 0.2; done; "
                                    "grep -h 'invoked oom-killer' /proc/fakeproc/dmesg; free -m | sed -n 2p; echo $$")
    assert r.returncode == 0, r.stderr
    before, header, after, sh_pid = r.stdout.splitlines()
    assert int(before.split()[3]) < 400  # MemFree: 317M at first, less as memhog allocates
    assert header.endswith("memhog invoked oom-killer: gfp_mask=0x201da, order=0, oom_adj=0")
    assert int(after.split()[3]) > 2000  # memhog's 3.5G came back
    assert int(sh_pid) > 0


def test_pmap_and_psutil_read_the_simulated_address_spaces():
    """pmap's total is the process's VSZ; psutil's memory_full_info() (smaps_rollup), memory_maps() (smaps),
    exe(), cwd(), num_fds() and io_counters() work on a simulated process (issue #15 item 2)."""
    script = ("pmap 500 | tail -1; pmap -x 600 | tail -1; "
              f"{sys.executable} -c 'import psutil; p = psutil.Process(500); f = p.memory_full_info(); "
              "print(f.rss, f.uss, f.pss, f.swap, len(p.memory_maps()), p.exe(), p.cwd(), p.num_fds(), "
              "p.io_counters().read_bytes)'")
    r = shell("--kernel", "6.x", cmd=script)
    assert r.returncode == 0, r.stderr
    pmap500, pmap600, py = r.stdout.splitlines()
    assert pmap500.split() == ["total", "2621440K"]  # memhog: 2560 MiB mapped
    assert pmap600.split()[2:5] == ["1572864", "921600", "921600"]  # javad: VSZ, RSS, dirty
    rss, uss, pss, swap, nmaps, exe, cwd, fds, io = py.split()
    assert int(rss) == int(uss) == int(pss) == 2 << 30 and swap == "0" and nmaps == "2"
    assert (exe, cwd, fds, io) == ("/usr/bin/memhog", "/", "3", "0")


def test_a_process_reading_its_own_state_sees_itself_running():
    """fs/proc/array.c: the thread reading its own stat or status is on a CPU, R; the daemon, reading the host's
    file meanwhile, would see it asleep in the FUSE read (issue #15 item 3)."""
    r = shell(cmd="grep State /proc/self/status; cut -d' ' -f3 /proc/self/stat; grep State /proc/1/status")
    assert r.stdout.splitlines() == ["State:\tR (running)", "R", "State:\tS (sleeping)"], r.stderr


def test_the_cpus_agree_inside_the_shell():
    """nproc (sched_getaffinity), getconf (sysfs), /proc/cpuinfo, /proc/stat and Cpus_allowed count the same CPUs:
    the shell's machine shows the CPUs its programs may run on (issue #15 item 3); a scenario's ``cpus`` wins."""
    script = ("nproc; getconf _NPROCESSORS_ONLN; grep -c ^processor /proc/cpuinfo; grep -c '^cpu[0-9]' /proc/stat; "
              "grep Cpus_allowed_list /proc/500/status | cut -f2")
    r = shell(cmd=script)
    nproc, onln, cpuinfo, stat, allowed = r.stdout.split()
    assert nproc == onln == cpuinfo == stat, r.stdout
    assert allowed == ("0" if nproc == "1" else f"0-{int(nproc) - 1}")


def test_ps_and_pstree_draw_the_tree_fakeproc_ps_shows():
    """The shell's first process hangs off init in the machine (its real parent, fakeproc's supervisor, is
    outside it): its stat and status say so too, so ps --forest and pstree agree with fakeproc ps."""
    r = shell(cmd=f"echo $$; ps -o pid=,ppid= -p $$; "
                  f"{sys.executable} -m fakeproc ps | awk -v p=$$ '$1 == p {{print $2}}'; "
                  "pstree -p 1 | grep -c \"sh($$)\"")
    me, ps_row, model_ppid, in_tree = r.stdout.splitlines()
    assert ps_row.split() == [me, "1"] and model_ppid == "1" and in_tree == "1", r.stdout + r.stderr


def test_a_shell_process_is_in_the_machine_at_once_and_leaves_it_at_once():
    r = shell(cmd=f"{sys.executable} -m fakeproc explain $$ | head -1; sleep 0.2 & p=$!; wait; "
                  f"ls /proc | grep -cx $p; {sys.executable} -m fakeproc ps | grep -c ' sleep$'")
    head, listed, in_ps = r.stdout.splitlines()
    assert " (sh), kernel 2.6.32: badness()" in head and listed == in_ps == "0", r.stdout + r.stderr
