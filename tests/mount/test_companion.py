"""The companion files procps reads (PID/stat, statm, status, cmdline, comm; meminfo, stat, uptime,
loadavg, cpuinfo), through real mounts: their shape against this machine's own /proc, their values
against the model, and the real procps tools reading them.

procps reads /proc by a fixed path, so the tools run in a private mount namespace whose /proc is
the mount.  ``ps`` and ``top`` refuse to run unless they find themselves in /proc (procps's
fatal_proc_unmounted() reads /proc/self/stat), which a purely simulated /proc cannot give them:
that refusal is tested as such, and their parsing is tested in a /proc made of the mount's
entries plus the tool's own real pid directory (test scaffolding only, see ``with_own_pid``).
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                reason="the procps checks need root and unshare(1)")

PID_FILES = ("cmdline", "comm", "stat", "statm", "status")
ROOT_FILES = ("cpuinfo", "loadavg", "meminfo", "stat", "uptime")
GIB = 1 << 30


def model(mnt) -> dict[int, dict]:
    """The model's own view (``fakeproc ctl ps --json``): pid -> row."""
    return {r["pid"]: r for r in map(json.loads, mnt.ctl("ps", "--json").splitlines())}


def stat_fields(text: str) -> list[str]:
    """/proc/PID/stat split as procps does: pid, comm (between the parentheses), then the rest."""
    pid, rest = text.split(" (", 1)
    comm, rest = rest.rsplit(") ", 1)
    return [pid, comm, *rest.split()]


def status_dict(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) if ":\t" in line else (line.rstrip(":"), "") for line in text.splitlines())


def meminfo(mnt) -> dict[str, int]:
    """/proc/meminfo as numbers (kB, or pages for the HugePages_ counts)."""
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in mnt.read("meminfo").splitlines())}


def keys(text: str) -> list[str]:
    return [line.split(":", 1)[0] for line in text.splitlines()]


def in_proc(mnt, cmd: str) -> subprocess.CompletedProcess:
    """Run ``cmd`` where /proc is the mount and nothing else (a private mount namespace)."""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           f'mount --bind "$0" /proc && {cmd}', str(mnt.path)],
                          capture_output=True, text=True, timeout=60)


#: A /proc made of the mount's entries (bound one by one onto a tmpfs) and the real directory of
#: the shell's own pid, which then execs the tool: what ps and top need to find themselves.
WITH_OWN_PID = r"""
set -e
mnt=$1 work=$2; shift 2
mkdir -p $work/real $work/proc
mount -t proc proc $work/real
mount -t tmpfs fakeproc-test $work/proc
for e in $(ls $mnt); do
  if [ -d $mnt/$e ]; then mkdir $work/proc/$e; else touch $work/proc/$e; fi
  mount --bind $mnt/$e $work/proc/$e
done
mkdir $work/proc/$$
mount --rbind $work/real/$$ $work/proc/$$
ln -s $$ $work/proc/self
mount --rbind $work/proc /proc
exec "$@"
"""


def with_own_pid(mnt, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", WITH_OWN_PID, "sh",
                           str(mnt.path), str(tmp_path), *argv], capture_output=True, text=True, timeout=60)


# ------------------------------------------------------------------------------------- shape


def test_the_files_are_listed_with_procfs_modes(mnt):
    assert set(PID_FILES) <= set(os.listdir(mnt / "600"))
    assert set(PID_FILES) <= set(os.listdir(mnt / "600/task/601"))
    assert set(ROOT_FILES) <= set(os.listdir(mnt.path))
    for name in PID_FILES:
        st = os.stat(mnt / f"700/{name}")
        assert stat.S_IMODE(st.st_mode) == (0o644 if name == "comm" else 0o444) and st.st_uid == 65534
        assert st.st_size == 0
    for name in ROOT_FILES:
        assert stat.S_IMODE(os.stat(mnt / name).st_mode) == 0o444


def test_stat_has_the_real_files_fields(mount_factory):
    mnt = mount_factory("--kernel", "6.x")  # the files of this machine's kernel, 6.18
    real = stat_fields(Path("/proc/self/stat").read_text())
    for path in ("1", "2", "400", "402", "600", "600/task/603", "700"):
        text = mnt.read(f"{path}/stat")
        assert text.endswith("\n") and text.count("\n") == 1
        fields = stat_fields(text)
        assert len(fields) == len(real) == 52, path
        assert all(re.fullmatch(r"-?\d+", f) for f in fields[3:]), path


def test_status_has_the_real_files_keys_in_order(mount_factory):
    mnt = mount_factory("--kernel", "6.x")  # the files of this machine's kernel, 6.18
    real_user = Path("/proc/self/status").read_text()
    real_kthread = Path("/proc/2/status").read_text()  # kthreadd: no Vm* lines
    assert keys(mnt.read("600/status")) == keys(real_user)
    assert keys(mnt.read("600/task/605/status")) == keys(real_user)
    assert keys(mnt.read("2/status")) == keys(real_kthread)
    # the kernel's spacing: "Key:\tvalue", kB values right-aligned in 8 columns, Groups' trailing space
    ours = mnt.read("310/status").splitlines()
    assert "Groups:\t " in ours
    for line in ours:
        if line.endswith(" kB"):
            assert re.fullmatch(r"\w+:\t[ \d]{8} kB", line), line


def test_meminfo_has_the_real_files_lines_in_order_and_columns(mount_factory):
    """6.x: the lines of this machine's kernel (6.18); the formats of every era's fs/proc/meminfo.c."""
    mnt = mount_factory("--kernel", "6.x")
    real = Path("/proc/meminfo").read_text().splitlines()
    ours = mnt.read("meminfo").splitlines()
    assert keys("\n".join(ours)) == keys("\n".join(real))
    for mine, theirs in zip(ours, real, strict=True):
        for line in (mine, theirs):  # "%-16s%8lu kB", the HugePages_ counts "%-19s%5lu"
            value = line.split()[1]
            if line.startswith("HugePages_"):
                assert len(line) == 19 + max(5, len(value)), line
            else:
                assert line.endswith(" kB") and len(line) == 16 + max(8, len(value)) + 3, line


@pytest.mark.parametrize(("kernel", "count"), [("2.6.32", 41), ("2.6.31", 38)])
def test_meminfo_of_2_6_x_has_that_kernels_lines(mount_factory, kernel, count):
    """2.6.32 meminfo_proc_show(): no MemAvailable (3.14), so earlyoom and nohang take their old-kernel paths;
    2.6.31 has no Shmem, KernelStack nor HardwareCorrupted either.  /proc/version names the era's kernel."""
    mnt = mount_factory("--kernel", kernel)
    lines = mnt.read("meminfo").splitlines()
    assert len(lines) == count and not any(line.startswith("MemAvailable") for line in lines)
    assert lines[:3] == [f"MemTotal:        {4194304} kB", "MemFree:          324608 kB", "Buffers:               0 kB"]
    assert ("Shmem:                 0 kB" in lines) is (kernel == "2.6.32")
    if kernel == "2.6.32":
        assert "HardwareCorrupted:     0 kB" in lines  # "HardwareCorrupted: %5lu kB"
    assert mnt.read("version").startswith(f"Linux version {kernel} (")


def test_2_6_32_status_and_stat_have_that_kernels_fields(mnt):
    """2.6.32 proc_pid_status(): no Umask (4.7), NSpid (4.1), VmSwap (2.6.34), CapAmb (4.3), Seccomp (3.8) and
    the rest of later kernels, and "Stack usage:" (2.6.32 only); do_task_stat(): 44 fields (3.3 added the mm
    addresses, 3.5 exit_code)."""
    keys_ = keys(mnt.read("500/status"))
    assert keys_[:6] == ["Name", "State", "Tgid", "Pid", "PPid", "TracerPid"]
    assert not {"Umask", "NSpid", "VmSwap", "CapAmb", "Seccomp", "RssAnon", "Kthread"} & set(keys_)
    assert keys_[-1] == "Stack usage" and "Stack usage" not in keys(mnt.read("2/status"))  # only with an mm
    assert len(mnt.read("500/stat").split()) == 44


def test_root_files_have_the_real_files_shape(mnt):
    real = Path("/proc/stat").read_text().splitlines()
    ours = mnt.read("stat").splitlines()

    def tags(lines):
        return [line.split()[0] for line in lines if not re.match(r"cpu\d", line)]

    assert tags(ours) == tags(real)  # cpu, intr, ctxt, btime, processes, procs_running, procs_blocked, softirq
    assert ours[0].startswith("cpu  ") and len(ours[0].split()) == len(real[0].split()) == 11
    assert ours[1].split()[1:] == ours[0].split()[1:] and ours[1].startswith("cpu0 ")  # one CPU
    softirq = [line for line in ours if line.startswith("softirq ")][0]
    assert len(softirq.split()) == len([line for line in real if line.startswith("softirq ")][0].split())
    assert re.fullmatch(r"\d+\.\d\d \d+\.\d\d\n", Path("/proc/uptime").read_text())
    assert re.fullmatch(r"\d+\.\d\d \d+\.\d\d\n", mnt.read("uptime"))
    assert re.fullmatch(r"\d+\.\d\d \d+\.\d\d \d+\.\d\d \d+/\d+ \d+\n", Path("/proc/loadavg").read_text())
    assert re.fullmatch(r"0\.00 0\.00 0\.00 1/\d+ \d+\n", mnt.read("loadavg"))
    real_cpu = Path("/proc/cpuinfo").read_text().split("\n\n")[0]

    def shape(text: str) -> list[str]:
        # arch/x86/kernel/cpu/proc.c show_cpuinfo(): "TLB size" only ``if (c->x86_tlbsize > 0)`` (AMD CPUs)
        return [k for k in keys(text) if k != "TLB size\t"]

    assert shape(mnt.read("cpuinfo").split("\n\n")[0]) == shape(real_cpu)
    assert mnt.read("cpuinfo").endswith("power management:\n\n")


# -------------------------------------------------------------------------------- the model's values


def test_pid_files_show_the_models_values(mount_factory):
    mnt = mount_factory("--kernel", "6.x")  # the files of this machine's kernel, 6.18
    rows = model(mnt)
    for pid, r in rows.items():
        f = stat_fields(mnt.read(f"{pid}/stat"))
        s = status_dict(mnt.read(f"{pid}/status"))
        assert int(f[0]) == pid and f[1] == r["comm"] and s["Name"] == r["comm"]
        assert int(f[3]) == r["ppid"] == int(s["PPid"])
        assert int(f[19]) == r["threads"] == int(s["Threads"])
        assert int(f[22]) == r["vm_kib"] * 1024  # vsize in bytes
        assert int(f[23]) * 4 == r["rss_kib"]  # rss in pages
        assert s["Uid"] == "\t".join([str(r["uid"])] * 4)
        assert s["Tgid"] == s["Pid"] == str(pid)
        kthread = "kthread" in r["flags"]
        assert s["Kthread"] == ("1" if kthread else "0")
        assert int(f[8]) & 0x00200000 == (0x00200000 if kthread else 0)  # PF_KTHREAD
        if kthread:
            assert "VmRSS" not in s and mnt.read(f"{pid}/cmdline") == ""
            assert mnt.read(f"{pid}/statm") == "0 0 0 0 0 0 0\n"
            continue
        assert s["VmRSS"] == f"{r['rss_kib']:8d} kB" and s["VmSize"] == f"{r['vm_kib']:8d} kB"
        assert s["VmRSS"] == s["VmHWM"] and s["VmSize"] == s["VmPeak"]
        statm = list(map(int, mnt.read(f"{pid}/statm").split()))
        assert statm[:2] == [r["vm_kib"] // 4, r["rss_kib"] // 4] and statm[4] == statm[6] == 0
        assert mnt.read(f"{pid}/cmdline") == r["comm"] + "\0"
        assert mnt.read(f"{pid}/comm") == r["comm"] + "\n"

    # javad (default.toml): 8 threads, 3h of user and 20m of system time at HZ 250, started 120 s after boot
    f = stat_fields(mnt.read("600/stat"))
    assert f[2] == "S" and (f[13], f[14]) == (str(3 * 3600 * 100), str(20 * 60 * 100)) and f[21] == "12000"
    assert f[17:19] == ["20", "0"] and f[37] == "17"  # priority, nice; exit_signal SIGCHLD
    threads = [stat_fields(mnt.read(f"600/task/{t}/stat")) for t in range(600, 608)]
    assert sum(int(t[13]) for t in threads) == int(f[13])  # a thread's stat has its own times
    assert threads[1][0] == "601" and threads[1][37] == "-1"  # a thread's exit_signal
    assert stat_fields(mnt.read("700/stat"))[17:19] == ["25", "5"]  # dnsmasq: nice 5
    assert stat_fields(mnt.read("400/stat"))[2] == "D"  # jobsched waits for its vfork child 402
    assert status_dict(mnt.read("400/status"))["State"] == "D (disk sleep)"
    assert status_dict(mnt.read("310/status"))["CapEff"] == "000001ffffffffff"  # root: every capability
    assert status_dict(mnt.read("401/status"))["CapEff"] == "0000000000000000"
    # pgrp and session: daemons (children of init) lead their own, a forked job inherits its parent's
    assert stat_fields(mnt.read("401/stat"))[4:6] == ["400", "400"]
    assert stat_fields(mnt.read("2/stat"))[4:6] == ["0", "0"]


def test_changes_show_at_once_and_the_gone_are_esrch(mount_factory):
    mnt = mount_factory("--kernel", "6.x")  # the files of this machine's kernel, 6.18
    mnt.ctl("mem", "500", "--swap", "256M", "--pgtables", "8M", "--file-rss", "100M")
    s = status_dict(mnt.read("500/status"))
    assert (s["VmSwap"], s["VmPTE"], s["RssFile"]) == (f"{262144:8d} kB", f"{8192:8d} kB", f"{102400:8d} kB")
    assert mnt.read("500/statm").split()[2] == str(100 * 256)  # shared: file + shmem pages
    mnt.ctl("set", "500", "--comm", "hog2")
    assert mnt.read("500/comm") == "hog2\n" and stat_fields(mnt.read("500/stat"))[1] == "hog2"
    fd = os.open(mnt / "500/stat", os.O_RDONLY)
    try:
        mnt.ctl("exit", "500")
        with pytest.raises(OSError) as e:
            os.read(fd, 4096)
        assert e.value.errno == errno.ESRCH
    finally:
        os.close(fd)
    assert not (mnt / "500").exists()


def test_comm_refuses_writers_outside_the_process(mnt):
    # comm_write(): only a thread of the process itself may rename it; no writer is one
    r = sh(f"echo x > {mnt.path}/400/comm", shell="bash")
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert mnt.read("400/comm") == "jobsched\n"
    with pytest.raises(OSError) as e:
        (mnt / "400/stat").write_text("x")
    assert e.value.errno == errno.EINVAL


def test_meminfo_stat_uptime_loadavg_show_the_models_machine(mnt):
    rows = model(mnt)
    m = meminfo(mnt)
    # one address space counted once: 402 is jobsched's vfork child and shares its mm
    resident = sum(r["rss_kib"] for r in rows.values() if "vfork-child" not in r["flags"])
    assert m["MemTotal"] == 4 * GIB // 1024 and m["SwapTotal"] == GIB // 1024
    assert m["MemFree"] == 4 * GIB // 1024 - resident and "MemAvailable" not in m  # 2.6.32: no MemAvailable
    assert m["SwapFree"] == m["SwapTotal"] and m["AnonPages"] == resident
    mnt.ctl("mem", "600", "--swap", "100M")
    assert meminfo(mnt)["SwapFree"] == (GIB - 100 * 2**20) // 1024
    mnt.ctl("grow", "500", "3G")  # more than is free: MemFree stops at 0
    assert meminfo(mnt)["MemFree"] == 0

    up, idle = map(float, mnt.read("uptime").split())
    assert up == 2 * 86400  # default.toml: uptime 2d
    lines = {line.split()[0]: line.split()[1:] for line in mnt.read("stat").splitlines()}
    user, nice, system, idle_ticks = map(int, lines["cpu"][:4])
    assert idle_ticks == round(idle * 100) and user + nice + system + idle_ticks == int(up * 100)
    assert nice == 60 * 100  # dnsmasq's minute at nice 5
    assert abs(int(lines["btime"][0]) + up - time.time()) < 120
    assert lines["procs_running"] == ["1"] and lines["procs_blocked"] == ["0"]
    assert mnt.read("loadavg") == "0.00 0.00 0.00 1/16 700\n"  # 16 threads; pid 700 the last allocated
    mnt.ctl("tick", "90s")
    assert mnt.read("uptime").startswith("172890.00 ")


def test_a_6_x_reader_sees_one_machine(mount_factory, tmp_path):
    """oom_score recomputed from stat's rss, status's VmSwap and VmPTE, oom_score_adj and meminfo's
    totals (6.x oom_badness() and proc_oom_score()) equals the file, for every killable process."""
    mnt = mount_factory("--kernel", "6.x")
    mnt.ctl("mem", "600", "--swap", "300M", "--pgtables", "2M")
    mnt.ctl("mem", "401", "--file-rss", "50M", "--shmem-rss", "10M")
    assert sh(f"echo 300 > {mnt.path}/700/oom_score_adj").returncode == 0
    m = meminfo(mnt)
    totalpages = (m["MemTotal"] + m["SwapTotal"]) // 4

    def c_div(a: int, b: int) -> int:
        return abs(a) // b * (1 if a >= 0 else -1)

    checked = 0
    for pid in model(mnt):
        adj = int(mnt.read(f"{pid}/oom_score_adj"))
        status = status_dict(mnt.read(f"{pid}/status"))
        if pid == 1 or status["Kthread"] == "1" or adj == -1000 or pid == 402:  # unkillable (402: in vfork)
            assert mnt.read(f"{pid}/oom_score") == "0\n"
            continue
        rss = int(stat_fields(mnt.read(f"{pid}/stat"))[23])
        swap = int(status["VmSwap"].split()[0]) // 4
        pte = int(status["VmPTE"].split()[0]) // 4
        points = rss + swap + pte + adj * (totalpages // 1000)
        assert int(mnt.read(f"{pid}/oom_score")) == c_div((1000 + c_div(points * 1000, totalpages)) * 2, 3), pid
        checked += 1
    assert checked == 4  # 401, 500, 600, 700
    r = with_own_pid(mnt, tmp_path, "ps", "-o", "pid=,oom=,oomadj=,rss=", "-p", "700,600")
    assert sorted(line.split() for line in r.stdout.splitlines()) == [
        [str(pid), mnt.read(f"{pid}/oom_score").strip(), mnt.read(f"{pid}/oom_score_adj").strip(),
         str(int(stat_fields(mnt.read(f"{pid}/stat"))[23]) * 4)] for pid in (600, 700)]


# ----------------------------------------------------------------------------------- procps


def test_procps_in_a_purely_simulated_proc(mnt):
    """What each tool does when /proc holds only simulated processes (procps-ng 4.0.2 here)."""
    r = in_proc(mnt, "free -k")
    assert r.returncode == 0, r.stderr
    mem = r.stdout.splitlines()[1].split()
    # 2.6.32 has no MemAvailable: procps estimates it, from MemFree and the (empty) page cache and slab
    total, free = (meminfo(mnt)[k] for k in ("MemTotal", "MemFree"))
    avail = free
    assert mem == ["Mem:", str(total), str(total - avail), str(free), "0", "0", str(avail)]
    assert in_proc(mnt, "free -k").stdout.splitlines()[2].split() == ["Swap:", "1048576", "0", "1048576"]

    r = in_proc(mnt, "uptime")
    assert r.returncode == 0 and re.search(r" up 2 days, +0 min, .* load average: 0\.00, 0\.00, 0\.00$", r.stdout)

    assert in_proc(mnt, "pgrep -l job").stdout == "400 jobsched\n402 jobsched\n"
    assert in_proc(mnt, "pgrep -u 1000").stdout.split() == ["401", "500", "600"]
    assert in_proc(mnt, "pgrep -P 400").stdout.split() == ["401", "402"]  # ppid from stat
    assert in_proc(mnt, "pgrep -f sim-worker").stdout == "401\n"  # cmdline
    assert in_proc(mnt, "pidof javad").stdout == "600\n"

    # ps and top look themselves up first (fatal_proc_unmounted(): /proc/self/stat) and give up
    for tool in ("ps -e", "top -bn1"):
        r = in_proc(mnt, tool)
        assert (r.returncode, r.stdout, r.stderr) == (47, "", "Error, do this: mount -t proc proc /proc\n"), tool
    # pmap lists the mappings laid out from the model's counters (pidfiles.py); no vmstat: vmstat gives up
    r = in_proc(mnt, "pmap 400")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "400:   jobsched", r.stderr
    assert r.stdout.splitlines()[-1].split() == ["total", "307200K"]
    r = in_proc(mnt, "vmstat")
    assert (r.returncode, r.stderr) == (1, "vmstat: Unable to create vmstat structure\n")


def test_ps_and_top_parse_the_files(mnt, tmp_path):
    """ps and top beside their own real /proc/PID (see WITH_OWN_PID): every column from the model."""
    rows = model(mnt)
    columns = "pid=,ppid=,uid=,user=,oom=,oomadj=,rss=,vsz=,stat=,nlwp=,comm=,args="
    r = with_own_pid(mnt, tmp_path, "ps", "-ww", "-e", "-o", columns)
    assert r.returncode == 0, r.stderr
    seen = {}
    for line in r.stdout.splitlines():
        pid, ppid, uid, user, oom, oomadj, rss, vsz, state, nlwp, comm, args = line.split(None, 11)
        if int(pid) not in rows:
            continue  # ps itself
        row = rows[int(pid)]
        seen[int(pid)] = state
        # ps's oomadj is oom_score_adj, which 2.6.32 lacks: procps shows 0
        assert (int(ppid), int(uid), int(oom), int(oomadj), int(rss), int(vsz), int(nlwp), comm) == (
            row["ppid"], row["uid"], row["oom_score"], 0, row["rss_kib"], row["vm_kib"], row["threads"], row["comm"])
        assert user == pwd.getpwuid(row["uid"]).pw_name[:8].rstrip() or user == str(row["uid"])
        assert args == (f"[{comm}]" if "kthread" in row["flags"] else comm)
    assert set(seen) == set(rows)
    assert seen[400] == "Ds" and seen[600] == "Ssl" and seen[700] == "SNs" and seen[401] == "S"

    # ps -L: each thread's own task/TID/stat, except the main thread, which procps reads from
    # /proc/PID/stat (the whole process: 8 threads of 25 minutes)
    r = with_own_pid(mnt, tmp_path, "ps", "-L", "-o", "lwp=,time=", "-p", "600")
    assert r.returncode == 0, r.stderr
    assert [line.split() for line in r.stdout.splitlines()] == (
        [["600", "03:20:00"]] + [[str(t), "00:25:00"] for t in range(601, 608)])

    r = with_own_pid(mnt, tmp_path, "top", "-bn1", "-w", "200")
    assert r.returncode == 0, r.stderr
    head = r.stdout.splitlines()
    assert re.match(r"top - \S+ up 2 days, +0 min, .* load average: 0\.00, 0\.00, 0\.00", head[0])
    assert re.match(rf"Tasks: +{len(rows) + 1} total, +1 running, +{len(rows)} sleeping", head[1])  # + top itself
    assert re.match(r"%Cpu\(s\):", head[2])
    assert re.match(r"MiB Mem : +4096\.0 total, ", head[3]) and re.match(r"MiB Swap: +1024\.0 total, ", head[4])
    tasks = {int(line.split()[0]): line.split() for line in head[7:] if line.split() and line.split()[0].isdigit()}
    assert tasks[600][-1] == "javad" and tasks[600][5] == "921600" and tasks[600][7] == "S"


def test_run_mode_still_passes_the_hosts_files_through():
    """In run mode the companions are the host's real files, listed once."""
    out = subprocess.run([sys.executable, "-m", "fakeproc", "run", "--", "sh", "-c",
                          "head -1 /proc/meminfo; ls /proc/$$ | sort | uniq -d | wc -l; "
                          "grep -c '^Name:' /proc/$$/status; cut -d' ' -f1 /proc/$$/stat; echo $$; "
                          "ls /proc | grep -cx -e meminfo -e cpuinfo -e stat -e uptime -e loadavg"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    meminfo, duplicates, names, stat_pid, pid, root_files = out.stdout.splitlines()
    assert meminfo == Path("/proc/meminfo").read_text().splitlines()[0]  # the host's RAM
    assert duplicates == "0"  # no name listed twice in a real pid directory
    assert names == "1" and stat_pid == pid  # the shell's own real status and stat
    assert root_files == "5"
