"""The per-pid files tools read besides the OOM files and procps's: a simulated process's address space
(``maps``, ``smaps``, ``smaps_rollup``), its links (``exe``, ``cwd``, ``root``), open files (``fd/``,
``fdinfo/``) and the small files (``io``, ``environ``, ``limits``, ``wchan``, ``loginuid``, ``sessionid``,
``cgroup``), in the era's kernel formats (fs/proc/task_mmu.c, fs/proc/base.c, fs/proc/fd.c).

The model has counters, not mappings, so the mappings are laid out from the counters, consistently:
the program's file pages (``rss_file``; one page not resident where it has none) are its text,
``/usr/bin/COMM``; its anonymous memory, resident
(``rss_anon``) or swapped out (``swap``), is its ``[heap]``, which takes the rest of ``total_vm``; its
shared memory (``rss_shmem``) a ``MAP_SHARED`` anonymous mapping (``/dev/zero (deleted)``).  The sizes
add up to ``total_vm``, the resident pages to the rss that ``status`` and ``statm`` show, so ``pmap``'s
total is VSZ and psutil's ``memory_full_info()`` agrees with ``memory_info()``.  Every page is mapped by
one process (an address space shared by a vfork child or threads is one mm): Pss is Rss, and all of it
is private.  Three descriptors are open on ``/dev/null``.
"""

from __future__ import annotations

from ..machine import Machine, MachineError, Task
from ..machine.task import PAGE_SIZE

#: where the model's mappings start: the text of a non-PIE x86_64 program, and the mmap area
TEXT_START = 0x400000
SHARED_START = 0x7F0000000000
#: fs/proc/task_mmu.c: 6.x's [rollup] line spans the first mapping's start to the last one's end
_PAD = 73  # show_map_vma(): the path starts in column 74 (seq_pad)


class Mapping:
    __slots__ = ("start", "pages", "perms", "inode", "path", "rss", "swap", "anon", "shared")

    def __init__(self, start: int, pages: int, perms: str, inode: int, path: str, rss: int, swap: int = 0,
                 anon: bool = False, shared: bool = False) -> None:
        self.start, self.pages, self.perms, self.inode, self.path = start, pages, perms, inode, path
        self.rss, self.swap, self.anon, self.shared = rss, swap, anon, shared

    @property
    def end(self) -> int:
        return self.start + self.pages * PAGE_SIZE

    def line(self) -> str:
        """show_map_vma(): ``%08lx-%08lx %c%c%c%c %08llx %02x:%02x %lu `` then the path padded to column 74."""
        dev = "08:01" if self.inode else "00:00"
        head = f"{self.start:08x}-{self.end:08x} {self.perms} {0:08x} {dev} {self.inode} "
        return (head.ljust(_PAD) + self.path).rstrip() + "\n" if self.path else head + "\n"


def mappings(t: Task) -> list[Mapping]:
    """The mappings of ``t``'s address space (none for a kernel thread), laid out from its counters."""
    mm = t.mm
    if mm is None:
        return []
    out: list[Mapping] = []
    text = mm.rss_file
    shared = mm.rss_shmem
    heap = max(0, mm.total_vm - text - shared)
    if not text and heap > mm.rss_anon + mm.swap:  # a program has text even when none of it is resident
        text, heap = 1, heap - 1
    at = TEXT_START
    if text:
        out.append(Mapping(at, text, "r-xp", 1000 + t.tgid, f"/usr/bin/{t.comm}", rss=mm.rss_file))
        at += text * PAGE_SIZE
    if heap:
        out.append(Mapping(at, heap, "rw-p", 0, "[heap]", rss=min(mm.rss_anon, heap),
                           swap=min(mm.swap, heap), anon=True))
    if shared:
        out.append(Mapping(SHARED_START, shared, "rw-s", 2000 + t.tgid, "/dev/zero (deleted)", rss=shared,
                           shared=True))
    return out


def maps(m: Machine, t: Task) -> bytes:
    return "".join(v.line() for v in mappings(t)).encode()


def _kb_line(key: str, kb: int) -> str:
    """``SEQ_PUT_DEC(" kB\\n")`` fields of smaps: the name padded to 16 columns, the value in 8."""
    return f"{key + ':':<16}{kb:8d} kB\n"


def _fields(m: Machine, v: Mapping | None, size: int, rss: int, swap: int, anon: int, shmem: int) -> list[str]:
    """The counters of one mapping (or of them all, ``v`` None: smaps_rollup) in the era's order."""
    k = PAGE_SIZE // 1024
    if m.era.version < (2, 6, 34):
        # 2.6.31/2.6.32 show_smap(): Size, Rss, Pss, Shared/Private Clean/Dirty, Referenced, KernelPageSize,
        # MMUPageSize (Swap came in 2.6.34, Anonymous in 2.6.35)
        dirty = rss if v is None or v.anon or v.shared else 0
        out = [("Size", size), ("Rss", rss), ("Pss", rss), ("Shared_Clean", 0), ("Shared_Dirty", 0),
               ("Private_Clean", rss - dirty), ("Private_Dirty", dirty), ("Referenced", rss)]
        return [_kb_line(n, x * k) for n, x in out] + [_kb_line("KernelPageSize", k), _kb_line("MMUPageSize", k)]
    dirty = anon + shmem
    lines = []
    if v is not None:
        lines += [_kb_line("Size", size * k), _kb_line("KernelPageSize", k), _kb_line("MMUPageSize", k)]
    lines += [_kb_line("Rss", rss * k), _kb_line("Pss", rss * k), _kb_line("Pss_Dirty", dirty * k)]
    if v is None:  # smaps_rollup(): the Pss split
        lines += [_kb_line("Pss_Anon", anon * k), _kb_line("Pss_File", (rss - anon - shmem) * k),
                  _kb_line("Pss_Shmem", shmem * k)]
    lines += [_kb_line(n, x * k) for n, x in (
        ("Shared_Clean", 0), ("Shared_Dirty", 0), ("Private_Clean", rss - dirty), ("Private_Dirty", dirty),
        ("Referenced", rss), ("Anonymous", anon), ("KSM", 0), ("LazyFree", 0), ("AnonHugePages", 0),
        ("ShmemPmdMapped", 0), ("FilePmdMapped", 0), ("Shared_Hugetlb", 0), ("Private_Hugetlb", 0), ("Swap", swap),
        ("SwapPss", swap), ("Locked", 0))]
    if v is not None:
        flags = "rd mr mw me ac sd" if v.anon else "rd wr sh mr mw me ms sd" if v.shared else "rd ex mr mw me sd"
        lines += [f"{'THPeligible:':<16}{0:8d}\n", f"VmFlags: {flags} \n"]
    return lines


def smaps(m: Machine, t: Task) -> bytes:
    out: list[str] = []
    for v in mappings(t):
        out.append(v.line())
        out += _fields(m, v, v.pages, v.rss, v.swap, v.rss if v.anon else 0, v.rss if v.shared else 0)
    return "".join(out).encode()


def smaps_rollup(m: Machine, t: Task) -> bytes:
    """show_smaps_rollup() (4.14+): one ``[rollup]`` line from the first mapping's start to the last's end,
    and the sums (a kernel thread's file is empty)."""
    vs = mappings(t)
    if not vs:
        return b""
    head = f"{vs[0].start:08x}-{vs[-1].end:08x} ---p {0:08x} 00:00 0 ".ljust(_PAD) + "[rollup]\n"
    rss = sum(v.rss for v in vs)
    anon = sum(v.rss for v in vs if v.anon)
    shmem = sum(v.rss for v in vs if v.shared)
    return (head + "".join(_fields(m, None, 0, rss, sum(v.swap for v in vs), anon, shmem))).encode()


def exe(m: Machine, t: Task) -> str:
    """proc_exe_link(): the program's path; a kernel thread has none (ENOENT)."""
    if t.mm is None:
        raise MachineError(2, "a kernel thread has no executable")
    return f"/usr/bin/{t.comm}"


def root_or_cwd(m: Machine, t: Task) -> str:
    return "/"


#: the descriptors every simulated process holds: stdin, stdout and stderr on /dev/null
FDS = ("0", "1", "2")


def fd_link(m: Machine, t: Task) -> str:
    return "/dev/null"


def fdinfo(m: Machine, t: Task, fd: int) -> bytes:
    """seq_show() of fs/proc/fd.c: ``pos``, ``flags`` (octal, O_RDWR|O_LARGEFILE on 64 bits) and, from 3.15,
    ``mnt_id``; 6.x adds ``ino``."""
    text = f"pos:\t0\nflags:\t{0o100002 if m.era.version >= (3,) else 0o2:07o}\n"
    if m.era.version >= (3, 15):
        text += "mnt_id:\t21\nino:\t5\n"
    return text.encode()


def io(m: Machine, t: Task) -> bytes:
    """do_io_accounting(): the model does no I/O."""
    return "".join(f"{k}: 0\n" for k in ("rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes",
                                            "cancelled_write_bytes")).encode()


#: proc_pid_limits(): the defaults of a process started by init (name, soft, hard, unit)
LIMITS = (
    ("Max cpu time", "unlimited", "unlimited", "seconds"), ("Max file size", "unlimited", "unlimited", "bytes"),
    ("Max data size", "unlimited", "unlimited", "bytes"), ("Max stack size", "8388608", "unlimited", "bytes"),
    ("Max core file size", "0", "unlimited", "bytes"), ("Max resident set", "unlimited", "unlimited", "bytes"),
    ("Max processes", "15640", "15640", "processes"), ("Max open files", "1024", "4096", "files"),
    ("Max locked memory", "65536", "65536", "bytes"), ("Max address space", "unlimited", "unlimited", "bytes"),
    ("Max file locks", "unlimited", "unlimited", "locks"), ("Max pending signals", "15640", "15640", "signals"),
    ("Max msgqueue size", "819200", "819200", "bytes"), ("Max nice priority", "0", "0", ""),
    ("Max realtime priority", "0", "0", ""), ("Max realtime timeout", "unlimited", "unlimited", "us"),
)


def limits(m: Machine, t: Task) -> bytes:
    """``"%-25s %-20s %-20s %-10s\\n"`` per limit, under a header of the same widths."""
    rows = [("Limit", "Soft Limit", "Hard Limit", "Units")] + list(LIMITS)
    return "".join(f"{a:<25} {b:<20} {c:<20} {d:<10}\n" if d else f"{a:<25} {b:<20} {c:<20}\n"
                   for a, b, c, d in rows).encode()


def wchan(m: Machine, t: Task) -> bytes:
    """proc_pid_wchan(): 6.x shows ``0`` unless the reader may see kernel symbols; 2.6.x the symbol the
    task sleeps in (the model's processes wait for nothing in particular: ``0``)."""
    return b"0"


def loginuid(m: Machine, t: Task) -> bytes:
    """proc_loginuid_read(): ``%u`` of the audit login uid: unset (4294967295) for daemons started by init."""
    return b"4294967295"


def sessionid(m: Machine, t: Task) -> bytes:
    return b"4294967295"


def cgroup(m: Machine, t: Task) -> bytes:
    """proc_cgroup_show(): 6.x's unified hierarchy root; 2.6.x has no hierarchy mounted: nothing."""
    return b"0::/\n" if m.era.version >= (4, 5) else b""


def environ(m: Machine, t: Task) -> bytes:
    """The model keeps no environment: empty, as for a kernel thread."""
    return b""
