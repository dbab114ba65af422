"""The companion files of procfs, rendered from the simulated machine (Linux 6.x formats).

What procps (``ps``, ``top``, ``free``, ``pgrep``, ``uptime``) reads besides the OOM
files: ``/proc/PID/{stat,statm,status,cmdline,comm}`` (and the same under
``task/TID/``), ``/proc/meminfo``, ``/proc/stat``, ``/proc/uptime`` and
``/proc/loadavg``.  Each function renders one file, is named after it (as psutil's
``_pslinux.py`` names its readers) and only reads the machine: no FUSE here.

The formats are Linux 6.x's, field for field (they were compared with the files of
a 6.18 kernel).  Where the model has no opinion the value is what the kernel prints
for a quiet machine of that shape: no page faults, no signals, no reaped children,
one CPU, no reclaimable memory.  Simulated processes are never ptrace-able by a
real reader, so the address fields of ``stat`` read as the kernel shows them to an
unpermitted reader (``1 1 0 0 0`` and zeros).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from ..kernel.caps import CAP_ALL
from ..machine import Machine, Mm, Task
from ..machine.task import PAGE_SIZE, comm_bytes

USER_HZ = 100  # include/asm-generic/param.h: what clock_t counts in
MAX_NUMNODES = 1024  # CONFIG_NODES_SHIFT=10, as on the x86_64 kernel the formats were taken from
RLIM_INFINITY = (1 << 64) - 1
SIGCHLD = 17
THREAD_SIZE = 16384  # x86_64 kernel stack: kernel/fork.c set_max_threads() divides RAM by 8 of them

# include/linux/sched.h
PF_FORKNOEXEC = 0x00000040  # forked but didn't exec
PF_NOFREEZE = 0x00008000
PF_KTHREAD = 0x00200000
PF_RANDOMIZE = 0x00400000  # randomize virtual address space: every exec'd process on x86_64
KTHREAD_FLAGS = PF_KTHREAD | PF_NOFREEZE | PF_FORKNOEXEC  # kthreadd and its children: 0x208040


def _kb(pages: int) -> int:
    return pages * PAGE_SIZE // 1024


def _clock_t(jiffies: int, hz: int) -> int:
    """kernel/time/time.c jiffies_to_clock_t(): the model counts jiffies at CONFIG_HZ."""
    return jiffies * USER_HZ // hz


def _seconds_to_clock_t(seconds: float) -> int:
    """nsec_to_clock_t() of a time in seconds (rounded to the nanosecond first, then floored)."""
    return round(seconds * 1_000_000_000) // (1_000_000_000 // USER_HZ)


# ------------------------------------------------------------------------------------ a task's facts


def _vfork_waiting(m: Machine, t: Task) -> bool:
    """kernel/fork.c wait_for_vfork_done(): the thread sleeps (TASK_KILLABLE) until its child execs or exits.

    A task leaves the table only through ``Machine._release_thread()``, which clears its vfork_parent:
    the count is of live tasks (no scan of the table, which made ``ps`` quadratic)."""
    return t.vfork_children > 0


def _state(m: Machine, t: Task, reader: int = 0) -> str:
    """fs/proc/array.c task_state_array[]: the thread reading its own file is running (it is on a CPU,
    making this read); every other simulated task sleeps, a vfork parent uninterruptibly."""
    if t.tid == reader:
        return "R (running)"
    return "D (disk sleep)" if _vfork_waiting(m, t) else "S (sleeping)"


def _ppid(t: Task) -> int:
    """task_tgid_nr_ns(task->real_parent): the parent process (0 for init and kthreadd)."""
    parent = t.leader.parent
    return parent.tgid if parent is not None else 0


def _pgrp_session(t: Task) -> int:
    """Process group and session (the model keeps neither): kernel threads are in 0, init and every
    child of init or of a kernel thread leads its own (a daemon's setsid()), other children inherit
    their parent's."""
    p = t.leader
    seen: set[int] = set()
    while True:
        if p.kthread:
            return 0
        parent = p.parent
        if parent is None or parent.tgid == 1 or parent.kthread or parent.tgid in seen:
            return p.tgid
        seen.add(p.tgid)
        p = parent


def _flags(m: Machine, t: Task) -> int:
    """task->flags: what a 6.x kernel shows for such a task."""
    if t.kthread:
        return KTHREAD_FLAGS
    if t.vfork_parent is not None:  # vfork()ed and not exec'd yet
        return PF_RANDOMIZE | PF_FORKNOEXEC
    return PF_RANDOMIZE


def _exit_signal(t: Task) -> int:
    """task->exit_signal: -1 for a non-leader thread, 0 for kthreadd (no parent), SIGCHLD otherwise."""
    if not t.is_leader:
        return -1
    return 0 if t.kthread and t.parent is None else SIGCHLD


def _times(t: Task, whole: bool) -> tuple[int, int]:
    """(utime, stime) in jiffies: the thread's, or thread_group_cputime() of its process
    (time of exited threads, kept as one number, is counted as user time)."""
    if not whole:
        return t.utime, t.stime
    sig = t.signal
    return (sig.dead_cputime + sum(th.utime for th in sig.threads), sum(th.stime for th in sig.threads))


def _mm_counts(mm: Mm | None) -> dict[str, int]:
    """fs/proc/task_mmu.c task_mem()/task_statm() inputs, in pages.

    The model keeps total_vm and the rss counters only: it has no layout, so there
    is no text, library or stack mapping; VmData is the address space that is not
    known to map a file or shared memory (total_vm - rss_file - rss_shmem).
    """
    if mm is None:
        return dict(total_vm=0, rss=0, anon=0, file=0, shmem=0, swap=0, data=0, stack=0, text=0, lib=0, pte_kb=0)
    return dict(total_vm=mm.total_vm, rss=mm.rss, anon=mm.rss_anon, file=mm.rss_file, shmem=mm.rss_shmem,
                swap=mm.swap, data=max(0, mm.total_vm - mm.rss_file - mm.rss_shmem), stack=0, text=0, lib=0,
                pte_kb=mm.pgtables >> 10)


# ----------------------------------------------------------------------------------- /proc/PID/*


def pid_stat(m: Machine, t: Task, whole: bool = True, reader: int = 0) -> bytes:
    """fs/proc/array.c do_task_stat(): proc_tgid_stat() (``whole``) or proc_tid_stat(); 52 fields.

    The reader is never permitted to ptrace a simulated task, so start_code/end_code
    read 1, and start_stack, esp, eip, wchan, the seven mm addresses and exit_code 0.
    """
    mm = t.mm
    utime, stime = _times(t, whole)
    sess = _pgrp_session(t)
    sigign = 0x7FFFFFFF if t.kthread else 0  # kernel threads ignore every signal
    fields: list[object] = [
        _state(m, t, reader)[0],
        _ppid(t), sess, sess,  # ppid, pgrp, session
        0, -1,  # tty_nr, tty_pgrp: no controlling terminal
        _flags(m, t),
        0, 0, 0, 0,  # min_flt, cmin_flt, maj_flt, cmaj_flt
        _clock_t(utime, m.hz), _clock_t(stime, m.hz), 0, 0,  # utime, stime, cutime, cstime
        20 + t.nice, t.nice,  # priority (task_prio() of SCHED_OTHER), nice
        len(t.signal.threads), 0,  # num_threads, itrealvalue
        _seconds_to_clock_t(t.start_time),
        mm.total_vm * PAGE_SIZE if mm else 0,  # vsize in bytes
        mm.rss if mm else 0,  # get_mm_rss(), pages
        RLIM_INFINITY,  # rsslim
        1 if mm else 0, 1 if mm else 0, 0, 0, 0,  # start_code, end_code, start_stack, esp, eip
        0, 0, sigign, 0,  # pending, blocked, sigign, sigcatch (& 0x7fffffff)
        0, 0, 0,  # wchan (0/1 in 6.x), nswap, cnswap
        _exit_signal(t), 0, 0, 0,  # exit_signal, processor, rt_priority, policy (SCHED_OTHER)
        0, 0, 0,  # delayacct_blkio_ticks, guest_time, cguest_time
        0, 0, 0, 0, 0, 0, 0,  # start_data, end_data, start_brk, arg_start, arg_end, env_start, env_end
        0,  # exit_code
    ]
    if m.era.version < (3, 3):  # 2.6.24..3.2: 44 fields, up to cguest_time (the mm addresses came in 3.3,
        del fields[42:]  # exit_code in 3.5)
    return f"{t.tid} ({t.comm}) {' '.join(map(str, fields))}\n".encode("utf-8", "surrogateescape")


def pid_statm(m: Machine, t: Task) -> bytes:
    """fs/proc/array.c proc_pid_statm() with task_mmu.c task_statm(): ``size resident shared text lib data dt``
    in pages (lib and dt are always 0 since 2.6)."""
    c = _mm_counts(t.mm)
    shared = c["file"] + c["shmem"]
    return b"%d %d %d %d 0 %d 0\n" % (c["total_vm"], c["rss"], shared, c["text"], c["data"] + c["stack"])


def _task_name(comm: str) -> str:
    """proc_task_name(escape=true): seq_escape_str(ESCAPE_SPACE | ESCAPE_SPECIAL, "\\n\\\\")."""
    return comm.replace("\\", "\\\\").replace("\n", "\\n")


def _bitmap(bits: Iterable[int], nbits: int) -> str:
    """lib/vsprintf.c bitmap_string() (``%*pb``): 32-bit hex groups, most significant first, comma separated."""
    value = 0
    for b in bits:
        value |= 1 << b
    groups = (nbits + 31) // 32
    words = [(value >> (32 * i)) & 0xFFFFFFFF for i in reversed(range(groups))]
    first = (nbits - 32 * (groups - 1) + 3) // 4  # the top group has only the digits it needs
    return ",".join(f"{w:0{first if i == 0 else 8}x}" for i, w in enumerate(words))


def _bitmap_list(bits: Iterable[int]) -> str:
    """lib/vsprintf.c bitmap_list_string() (``%*pbl``): ``0-3,5``."""
    out: list[str] = []
    run: list[int] = []
    for b in sorted(set(bits)):
        if run and b == run[-1] + 1:
            run.append(b)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [b]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(out)


@functools.lru_cache(maxsize=8)
def _cpus_allowed(cpus: int) -> str:
    """Every CPU of the machine: the two Cpus_allowed lines (formatted once per CPU count)."""
    return f"Cpus_allowed:\t{_bitmap(range(cpus), max(cpus, 1))}\nCpus_allowed_list:\t{_bitmap_list(range(cpus))}"


@functools.lru_cache(maxsize=256)
def _mems_allowed(mems: frozenset[int]) -> str:
    """The two Mems_allowed lines of a node set (a 1024-bit bitmap to format: once per set, not per read)."""
    return f"Mems_allowed:\t{_bitmap(mems, MAX_NUMNODES)}\nMems_allowed_list:\t{_bitmap_list(mems)}"


def _sigq_limit(m: Machine) -> int:
    """RLIMIT_SIGPENDING of init: kernel/fork.c set_max_threads() gives max_threads/2."""
    max_threads = max(20, m.ram_pages // (8 * THREAD_SIZE // PAGE_SIZE))
    return max_threads // 2


def pid_status(m: Machine, t: Task, reader: int = 0) -> bytes:
    """fs/proc/array.c proc_pid_status(): task_state(), task_mem() (fs/proc/task_mmu.c, only with an mm),
    task_core_dumping(), task_thp_status(), task_untag_mask() (x86), task_sig(), task_cap(),
    task_seccomp(), task_cpus_allowed(), cpuset_task_status_allowed(), task_context_switch_counts()."""
    sess = _pgrp_session(t)
    uid, gid = t.uid, t.gid
    out = [
        f"Name:\t{_task_name(t.comm)}",
        "Umask:\t0022",  # get_task_umask(): "%#04o"; the model keeps none, 022 is everyone's default
        f"State:\t{_state(m, t, reader)}",
        f"Tgid:\t{t.tgid}",
        "Ngid:\t0",
        f"Pid:\t{t.tid}",
        f"PPid:\t{_ppid(t)}",
        "TracerPid:\t0",
        f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}",
        f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}",
        "FDSize:\t64",  # NR_OPEN_DEFAULT: an fd table that never grew
        "Groups:\t" + (" " if m.era.version >= (3, 0) else ""),  # no supplementary groups
        f"NStgid:\t{t.tgid}",
        f"NSpid:\t{t.tid}",
        f"NSpgid:\t{sess}",
        f"NSsid:\t{sess}",
        f"Kthread:\t{1 if t.kthread else 0}",
    ]
    if t.mm is not None:
        c = _mm_counts(t.mm)
        # task_mem(): SEQ_PUT_DEC / seq_put_decimal_ull_width(..., 8), all in kB
        for key, pages in (("VmPeak", c["total_vm"]), ("VmSize", c["total_vm"]), ("VmLck", 0), ("VmPin", 0),
                           ("VmHWM", c["rss"]), ("VmRSS", c["rss"]), ("RssAnon", c["anon"]),
                           ("RssFile", c["file"]), ("RssShmem", c["shmem"]), ("VmData", c["data"]),
                           ("VmStk", c["stack"]), ("VmExe", c["text"]), ("VmLib", c["lib"])):
            out.append(f"{key}:\t{_kb(pages):8d} kB")
        out.append(f"VmPTE:\t{c['pte_kb']:8d} kB")
        out.append(f"VmSwap:\t{_kb(c['swap']):8d} kB")
        out += [
            f"HugetlbPages:\t{0:8d} kB",  # hugetlb_report_usage()
            "CoreDumping:\t0",
            "THP_enabled:\t1",
            "untag_mask:\t0xffffffffffffffff",  # x86 LAM: nothing untagged
        ]
    caps = t.caps
    out += [
        f"Threads:\t{len(t.signal.threads)}",
        f"SigQ:\t0/{_sigq_limit(m)}",
        "SigPnd:\t0000000000000000",
        "ShdPnd:\t0000000000000000",
        "SigBlk:\t0000000000000000",
        f"SigIgn:\t{'ffffffffffffffff' if t.kthread else '0000000000000000'}",
        "SigCgt:\t0000000000000000",
        "CapInh:\t0000000000000000",  # render_cap_t(): "%016llx"
        f"CapPrm:\t{caps:016x}",
        f"CapEff:\t{caps:016x}",
        f"CapBnd:\t{CAP_ALL:016x}",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t0",
        "Seccomp:\t0",
        "Seccomp_filters:\t0",
        "Speculation_Store_Bypass:\tthread vulnerable",  # the CPU's answer; copied from the reference machine
        "SpeculationIndirectBranch:\tconditional enabled",
        _cpus_allowed(m.cpus),
        _mems_allowed(t.mems),
        "voluntary_ctxt_switches:\t0",
        "nonvoluntary_ctxt_switches:\t0",
    ]
    if m.era.version < (2, 6, 33) and t.mm is not None and m.era.version >= (2, 6, 32):
        out.append("Stack usage:\t8 kB")  # 2.6.32 task_show_stack_usage(), removed again in 2.6.33
    return ("\n".join(_in_era(out, m.era.version)) + "\n").encode("utf-8", "surrogateescape")


#: the first kernel with each line of /proc/PID/status that 2.6.30 did not have (fs/proc/array.c,
#: fs/proc/task_mmu.c): a version's status has the lines whose version it has reached
STATUS_SINCE = {
    "Umask": (4, 7), "Ngid": (3, 13), "NStgid": (4, 1), "NSpid": (4, 1), "NSpgid": (4, 1), "NSsid": (4, 1),
    "Kthread": (6, 0), "VmPin": (3, 2), "RssAnon": (4, 5), "RssFile": (4, 5), "RssShmem": (4, 5), "VmSwap": (2, 6, 34),
    "HugetlbPages": (4, 4), "CoreDumping": (4, 15), "THP_enabled": (5, 0), "untag_mask": (6, 4), "CapAmb": (4, 3),
    "NoNewPrivs": (4, 10), "Seccomp": (3, 8), "Seccomp_filters": (5, 9), "Speculation_Store_Bypass": (4, 17),
    "SpeculationIndirectBranch": (5, 16),
}


@functools.lru_cache(maxsize=16)
def _not_yet(version: tuple[int, ...]) -> frozenset[str]:
    """The status lines a version does not have yet (made once per version: status is read for every process)."""
    return frozenset(key for key, since in STATUS_SINCE.items() if version < since)


#: (version, number of lines) -> the positions of the lines that version has.  A status has one of two shapes
#: (with an mm, or a kernel thread's without), told apart by its length, and the key at each position is the
#: same every time: the positions are found once, then each status (read for every process) is indexed
_KEPT: dict[tuple[tuple[int, ...], int], list[int]] = {}


def _in_era(lines: list[str], version: tuple[int, ...]) -> list[str]:
    dropped = _not_yet(version)
    if not dropped:  # 6.18 has them all
        return lines
    keep = _KEPT.get((version, len(lines)))
    if keep is None:
        keep = _KEPT[version, len(lines)] = [i for i, line in enumerate(lines) if line[:line.find(":")] not in dropped]
    return [lines[i] for i in keep]


def pid_cmdline(m: Machine, t: Task) -> bytes:
    """fs/proc/base.c proc_pid_cmdline_read(): the argv area of the mm, NUL-separated.

    The model keeps no argv: a process reads as if it were started as ``comm`` alone
    (the command of its process, also for its threads); a kernel thread has no mm and
    reads empty.
    """
    if t.mm is None:
        return b""
    return comm_bytes(t.leader.comm) + b"\0"


def pid_comm(m: Machine, t: Task) -> bytes:
    """fs/proc/base.c comm_show(): the thread's comm and a newline."""
    return comm_bytes(t.comm) + b"\n"


# ----------------------------------------------------------------------------------- /proc/*


def memory(m: Machine) -> dict[str, int]:
    """The machine's memory in pages, summed over distinct address spaces: what meminfo shows."""
    anon = file = shmem = swap = vm = pte_bytes = 0
    for mm in m.address_spaces():
        anon += mm.rss_anon
        file += mm.rss_file
        shmem += mm.rss_shmem
        swap += mm.swap
        vm += mm.total_vm
        pte_bytes += mm.pgtables
    return dict(anon=anon, file=file, shmem=shmem, rss=anon + file + shmem, swap=swap, total_vm=vm,
                pte_kb=pte_bytes >> 10, free=max(0, m.ram_pages - (anon + file + shmem)),
                swap_free=max(0, m.swap_pages - swap))


#: fs/proc/meminfo.c meminfo_proc_show(): every line of a 6.x x86_64 kernel, in order.
MEMINFO_KEYS = (
    "MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached", "Active", "Inactive",
    "Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable", "Mlocked",
    "SwapTotal", "SwapFree", "Zswap", "Zswapped", "Dirty", "Writeback", "AnonPages", "Mapped", "Shmem",
    "KReclaimable", "Slab", "SReclaimable", "SUnreclaim", "KernelStack", "PageTables", "SecPageTables",
    "NFS_Unstable", "Bounce", "WritebackTmp", "CommitLimit", "Committed_AS", "VmallocTotal", "VmallocUsed",
    "VmallocChunk", "Percpu", "AnonHugePages", "ShmemHugePages", "ShmemPmdMapped", "FileHugePages",
    "FilePmdMapped", "Balloon", "HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp",
    "Hugepagesize", "Hugetlb", "DirectMap4k", "DirectMap2M", "DirectMap1G",
)
#: 2.6.32 fs/proc/meminfo.c meminfo_proc_show() (x86_64, no highmem, CONFIG_MEMORY_FAILURE as distributions
#: build it), mm/hugetlb.c hugetlb_report_meminfo() and arch/x86/mm/pageattr.c arch_report_meminfo(): no
#: MemAvailable (3.14), no KReclaimable, Percpu, AnonHugePages (2.6.38) and the rest of later kernels.
MEMINFO_KEYS_2_6_32 = (
    "MemTotal", "MemFree", "Buffers", "Cached", "SwapCached", "Active", "Inactive", "Active(anon)",
    "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable", "Mlocked", "SwapTotal", "SwapFree", "Dirty",
    "Writeback", "AnonPages", "Mapped", "Shmem", "Slab", "SReclaimable", "SUnreclaim", "KernelStack", "PageTables",
    "NFS_Unstable", "Bounce", "WritebackTmp", "CommitLimit", "Committed_AS", "VmallocTotal", "VmallocUsed",
    "VmallocChunk", "HardwareCorrupted", "HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp",
    "Hugepagesize", "DirectMap4k", "DirectMap2M",
)
#: 2.6.30/2.6.31: Shmem and KernelStack came with 2.6.32's "oom analysis" counters (NR_SHMEM,
#: NR_KERNEL_STACK), HardwareCorrupted with hwpoison (2.6.32)
MEMINFO_KEYS_2_6_31 = tuple(k for k in MEMINFO_KEYS_2_6_32 if k not in ("Shmem", "KernelStack", "HardwareCorrupted"))
#: mm/hugetlb.c hugetlb_report_meminfo(): page counts, "%-19s%5lu" (no unit).
_HUGEPAGE_COUNTS = ("HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp")


def meminfo_keys(version: tuple[int, ...]) -> tuple[str, ...]:
    """The lines of meminfo in a kernel version."""
    if version < (2, 6, 32):
        return MEMINFO_KEYS_2_6_31
    if version < (3,):
        return MEMINFO_KEYS_2_6_32
    return MEMINFO_KEYS


def meminfo(m: Machine) -> bytes:
    """fs/proc/meminfo.c meminfo_proc_show(): ``show_val_kb()`` is the label padded to 16 columns and
    ``%8lu kB``.

    The machine's memory is its processes' pages and nothing else (no kernel, slab, buffers or
    free-able cache): MemFree is RAM minus the resident pages of every address space, file and
    shmem pages are page cache mapped by those processes (Cached, Mapped, Active(file)), and
    nothing is reclaimable, so MemAvailable is MemFree (as for the model's OOM killer).
    """
    mem = memory(m)
    keys = meminfo_keys(m.era.version)
    kb = {k: 0 for k in MEMINFO_KEYS + keys}
    kb.update({
        "MemTotal": _kb(m.ram_pages),
        "MemFree": _kb(mem["free"]),
        "MemAvailable": _kb(mem["free"]),
        "Cached": _kb(mem["file"] + mem["shmem"]),
        "Active": _kb(mem["rss"]),
        "Active(anon)": _kb(mem["anon"] + mem["shmem"]),  # shmem lives on the anon LRU
        "Active(file)": _kb(mem["file"]),
        "SwapTotal": _kb(m.swap_pages),
        "SwapFree": _kb(mem["swap_free"]),
        "AnonPages": _kb(mem["anon"]),
        "Mapped": _kb(mem["file"] + mem["shmem"]),
        "Shmem": _kb(mem["shmem"]),
        "PageTables": mem["pte_kb"],
        # mm/util.c vm_commit_limit(): totalram_pages * sysctl_overcommit_ratio / 100 + total_swap_pages (no
        # hugetlb pages, overcommit_kbytes 0)
        "CommitLimit": _kb(m.ram_pages * m.sysctl["overcommit_ratio"] // 100 + m.swap_pages),
        "Committed_AS": _kb(mem["total_vm"]),
        "VmallocTotal": 34359738367,  # x86_64, 4-level paging
        "Hugepagesize": 2048,
        "DirectMap4k": _kb(m.ram_pages),
    })
    lines = []
    for key in keys:
        if key in _HUGEPAGE_COUNTS:
            lines.append(f"{key + ':':<19}{kb[key]:5d}\n")
        elif key == "HardwareCorrupted":  # 2.6.32: "HardwareCorrupted: %5lu kB"
            lines.append(f"{key}: {kb[key]:5d} kB\n")
        else:
            lines.append(f"{key + ':':<16}{kb[key]:8d} kB\n")
    return "".join(lines).encode()


def _cpu_ticks(m: Machine) -> tuple[int, int, int]:
    """(user, nice, system) in clock ticks: account_user_time() charges a task with nice > 0 to "nice"."""
    user = nice = system = 0
    for p in m.processes.values():
        for th in p.signal.threads:
            if th.nice > 0:
                nice += th.utime
            else:
                user += th.utime
            system += th.stime
        if p.nice > 0:
            nice += p.signal.dead_cputime
        else:
            user += p.signal.dead_cputime
    return _clock_t(user, m.hz), _clock_t(nice, m.hz), _clock_t(system, m.hz)


def _idle_ticks(m: Machine) -> int:
    user, nice, system = _cpu_ticks(m)
    return max(0, _seconds_to_clock_t(m.uptime) * m.cpus - user - nice - system)


NR_IRQS = 16  # the legacy ISA interrupts: a minimal x86 machine
NR_SOFTIRQS = 10  # include/linux/interrupt.h: HI, TIMER, NET_TX, NET_RX, BLOCK, IRQ_POLL, TASKLET, SCHED, HRTIMER, RCU


def stat(m: Machine, btime: int) -> bytes:
    """fs/proc/stat.c show_stat(): cpu time of the live simulated tasks (one CPU; idle is the rest of
    the uptime), boot time in seconds since the epoch, fork count, runnable and iowait tasks.

    procs_running is 1 (the reader, which the kernel's nr_running() counts; every simulated task
    sleeps); processes is every pid the machine allocated.
    """
    user, nice, system = _cpu_ticks(m)
    idle = _idle_ticks(m)
    cpu = f"{user} {nice} {system} {idle} 0 0 0 0 0 0"
    # the per-CPU lines add up to the first: the tasks' time on cpu0, every other CPU idle all along
    each = _seconds_to_clock_t(m.uptime)
    lines = [f"cpu  {cpu}", f"cpu0 {user} {nice} {system} {max(0, each - user - nice - system)} 0 0 0 0 0 0"
             if m.cpus > 1 else f"cpu0 {cpu}"]
    lines += [f"cpu{i} 0 0 0 {each} 0 0 0 0 0 0" for i in range(1, m.cpus)]
    lines += [
        "intr 0" + " 0" * NR_IRQS,
        "ctxt 0",
        f"btime {btime}",
        f"processes {m.next_pid - 1}",
        "procs_running 1",
        "procs_blocked 0",  # nr_iowait(): nobody waits for I/O (a vfork parent's D is not iowait)
        "softirq 0" + " 0" * NR_SOFTIRQS,
    ]
    return ("\n".join(lines) + "\n").encode()


def uptime(m: Machine) -> bytes:
    """fs/proc/uptime.c uptime_proc_show(): ``%lu.%02lu %lu.%02lu`` (truncated, not rounded); idle is
    summed over the CPUs, the same idle time as /proc/stat's."""
    up = _seconds_to_clock_t(m.uptime)
    idle = _idle_ticks(m)
    return b"%d.%02d %d.%02d\n" % (up // 100, up % 100, idle // 100, idle % 100)


#: arch/x86/kernel/cpu/proc.c show_cpuinfo(): the simulated CPU.  The model has no opinion on the
#: hardware: these are a plain x86_64 processor's identity (the reference machine's family and model,
#: the baseline x86-64 flags, no bugs), one core, one thread.
CPUINFO_CPU = (
    ("vendor_id", "AuthenticAMD"), ("cpu family", "25"), ("model", "1"), ("model name", "AMD EPYC"),
    ("stepping", "1"), ("microcode", "0x1000065"), ("cpu MHz", "2445.406"), ("cache size", "512 KB"),
)
_CPUINFO_FLAGS = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
                  "sse sse2 syscall nx lm")


#: fs/proc/version.c: linux_proc_banner, ``"%s version %s (" LINUX_COMPILE_BY "@" LINUX_COMPILE_HOST ") ("
#: LINUX_COMPILER ") %s\n"`` with the release and build of the era's kernel (its release day)
VERSIONS = {
    (2, 6, 31, -1): "2.6.31-rc5 (fakeproc@fakeproc) (gcc version 4.4.1 (GCC) ) #1 SMP Thu Jul 30 00:00:00 UTC 2009",
    (2, 6, 31): "2.6.31 (fakeproc@fakeproc) (gcc version 4.4.1 (GCC) ) #1 SMP Wed Sep 9 00:00:00 UTC 2009",
    (2, 6, 32): "2.6.32 (fakeproc@fakeproc) (gcc version 4.4.2 (GCC) ) #1 SMP Thu Dec 3 00:00:00 UTC 2009",
    (6, 18): "6.18.0 (fakeproc@fakeproc) (gcc (GCC) 14.2.0, GNU ld (GNU Binutils) 2.44) #1 SMP PREEMPT_DYNAMIC "
             "Sun Nov 30 00:00:00 UTC 2025",
}


def version(m: Machine) -> bytes:
    """/proc/version: the era's kernel, so that a program asking which kernel it runs on gets the era's."""
    return f"Linux version {VERSIONS[m.era.version]}\n".encode()


def cpuinfo(m: Machine) -> bytes:
    """arch/x86/kernel/cpu/proc.c show_cpuinfo() for each of the machine's CPUs ("%s\t: %s";
    keys shorter than 8 columns get a second tab, as the kernel's literals have)."""

    def line(key: str, value: str) -> str:
        return f"{key}{chr(9) * (2 if len(key) < 8 else 1)}: {value}".rstrip() + "\n"

    out = []
    for cpu in range(m.cpus):
        rows = [("processor", str(cpu)), *CPUINFO_CPU,
                ("physical id", "0"), ("siblings", str(m.cpus)), ("core id", str(cpu)), ("cpu cores", str(m.cpus)),
                ("apicid", str(cpu)), ("initial apicid", str(cpu)), ("fpu", "yes"), ("fpu_exception", "yes"),
                ("cpuid level", "16"), ("wp", "yes"), ("flags", _CPUINFO_FLAGS), ("bugs", ""),
                ("bogomips", "4890.81"), ("TLB size", "2560 4K pages"), ("clflush size", "64"),
                ("cache_alignment", "64"), ("address sizes", "48 bits physical, 48 bits virtual")]
        out += [line(k, v) for k, v in rows]
        out.append("power management:\n\n")
    return "".join(out).encode()


def loadavg(m: Machine) -> bytes:
    """fs/proc/loadavg.c loadavg_proc_show(): no load (every simulated task sleeps), the reader running,
    every thread, and the last pid allocated."""
    return b"0.00 0.00 0.00 1/%d %d\n" % (len(m.tasks), m.next_pid - 1)
