"""Scenario files: a simulated machine written by hand, in TOML -- or saved by fakeproc.

The format is documented in docs/scenarios.md and by the embedded
default, ``fakeproc/scenarios/default.toml``.  Processes are created in file
order, which is also the order the OOM killer walks them (for_each_process).

:func:`dump_scenario` writes a running machine in the same format (``fakeproc
save``, ``fakeproc mount --save-on-exit``) so that :func:`load_scenario`
rebuilds it value for value.  What a hand-written file rarely needs, a saved
one uses; every such key is optional, and files without them (the default
scenario among them) load exactly as before:

``[machine]``
    ``kernel = "2.6.32"``: the era the machine was saved under.  The loader
    uses the era it is given; ``fakeproc mount --scenario FILE`` takes this one
    when ``--kernel`` is not given.
    ``next_pid = 703``: the pid the next fork() gets (default: one past the
    highest pid listed; higher when the newest processes have exited).
    ``oom_adj_deprecation_warned = true``: 6.x printed its one-time warning
    about ``/proc/PID/oom_adj`` already.
    ``cpus = 4``: how many CPUs the machine shows (default 1; ``fakeproc shell`` shows the CPUs its programs
    may run on unless the scenario says).
    ``clock = "stepped"``: how the clock runs (also in hand-written files):
    ``stepped`` (only ``tick`` moves it), ``real``, or a speed like ``60x``.
    ``panic_on_oom = 1``, ``oom_kill_allocating_task``, ``oom_dump_tasks``,
    ``overcommit_memory``, ``overcommit_ratio``: the OOM killer's sysctls
    (``/proc/sys/vm``; default: the era's boot values), in the era's range.
    ``panic = "..."``: the machine panicked (the reason ``Kernel panic - not
    syncing:`` printed) and is stopped, as it was when saved.

``[[process]]``
    ``parent = 601``: the task that forked it, its ``real_parent``: a process's
    pid or the tid of one of its threads (a child forked by a non-leader thread
    hangs off that thread, kernel/fork.c ``p->real_parent = current``), listed
    before it.
    ``children = [705, 706, 703]``: the order of the task's children list
    (``p->children``: every task it forked and their threads, one entry each),
    where it is not the order the file creates them in (re-parenting appends
    an exiting task's children to its reaper's list).  Also in a thread table.
    ``alloc_rate = "16M"``: bytes the process allocates per simulated second
    (also in hand-written files; see ``machine/pressure.py``).
    ``utime``, ``stime``: the leader thread's user and system CPU time in
    jiffies, exactly (instead of ``cpu``/``sys_cpu``, which are spread over the
    threads).  ``exited_cputime``: jiffies of threads that have exited, still
    counted in the process's total (``thread_group_cputime()``).
    ``threads = [601, {tid = 602, utime = 30, start = 7.5, oom_adj = -17}]``: a
    list entry may be a table of what differs from the leader for that thread:
    ``comm``, ``uid``, ``gid``, ``nice``, ``caps``, ``start`` (default: the
    process's), ``utime``/``stime`` (default 0), ``swapoff`` (default false, as
    for the old forms: PF_OOM_ORIGIN is the flag of the one thread running
    swapoff), ``mems`` and, in 2.6.31 only (where each thread has its own),
    ``oom_adj``.
    ``mm = 400``: shares the address space of process 400, listed before (no
    memory keys then; with 2.6.31-rc its ``oom_adj`` is that address space's).
    ``multiprocess = true``: the address space is flagged MMF_MULTIPROCESS (a
    ``clone(CLONE_VM)`` child shares or shared it).
    ``pgtables_bytes = 6144``: page-table bytes exactly (``pgtables`` is
    rounded down to whole pages).  An explicit ``vm = 0`` now stays 0 (only a
    missing ``vm`` defaults to ``rss``, as before).
    ``vfork_parent = 400``: a vfork child, vfork()ed by thread 400 (listed
    before; a thread of its parent): unlike ``vfork = true`` it does not take
    its parent's address space, which ``mm`` or the memory keys give.
    ``vfork_parent_exited = 400``: instead, the task that vfork()ed it has
    exited (400: its process) and the child has not exec'd yet (vfork_done is
    still set).  Whether 6.x counts it as in vfork (unkillable) follows from
    the tree: in_vfork() compares the address space of its *current* real
    parent.  ``in_vfork``, which fakeproc wrote before, is read and ignored.
    ``caps = 0x1ffffffffff``: an integer bit mask is accepted too.

``[[dmesg]]`` (after the processes)
    ``time = 172800.0`` and ``text = "..."``: one kernel log record.

A saved file lists processes in creation order, the order for_each_process()
walks (it decides the killer's ties); a process re-parented to an init created
after it names a parent listed later, which the loader attaches once every
process exists (a hand-written file lists parents first).  Not kept: the daemon's
own settings (privilege, mount point), ``[machine] description``, ``Mm.users``
and the values the era does not read (2.6.32's ``signal->oom_adj`` under 6.x...).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import stat as statmod
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from ..kernel import ERA_NAMES
from ..kernel.badness import SHIFT_HZ
from ..kernel.caps import CAP_ALL, CAPABILITIES, parse_caps
from ..kernel.eras import (
    AdjHome,
    Era,
    legacy_to_score_adj,
    oom_adj_in_range,
    oom_score_adj_in_range,
    score_adj_to_legacy,
)
from ..kernel.limits import (
    MAX_NUMNODES,
    NICE_MAX,
    NICE_MIN,
    NR_CPUS,
    PID_MAX_DEFAULT,
    PID_MAX_LIMIT,
    RESERVED_PIDS,
    UID_MAX,
    ULONG_MAX,
    max_threads,
    max_uptime,
    ulong_pages,
)
from ..units import format_clock, format_size, parse_clock, parse_duration, parse_rate, parse_size
from .errors import MachineError
from .machine import Machine
from .sysctls import INT_MAX, INT_MIN, VM_SYSCTLS
from .table import adopt, disown, set_children
from .task import PAGE_SIZE, Mm, SignalStruct, Task, task_comm

log = logging.getLogger(__name__)

MACHINE_KEYS = {"ram", "swap", "hz", "uptime", "clock", "description", "kernel", "next_pid", "pid_max",
                "oom_adj_deprecation_warned", "panic", "cpus", *VM_SYSCTLS}
MEMORY_KEYS = {"vm", "rss", "file_rss", "shmem_rss", "swap", "pgtables", "pgtables_bytes"}
PROCESS_KEYS = MEMORY_KEYS | {
    "pid", "parent", "comm", "uid", "gid", "nice", "caps", "cpu", "sys_cpu", "start", "threads", "oom_adj",
    "oom_score_adj", "oom_score_adj_min", "kthread", "vfork", "clone_vm", "swapoff", "mems", "alloc_rate",
    # written by dump_scenario (see the module docstring)
    "utime", "stime", "exited_cputime", "mm", "multiprocess", "vfork_parent", "vfork_parent_exited", "in_vfork",
    "children",
}
THREAD_KEYS = {"tid", "comm", "uid", "gid", "nice", "caps", "start", "utime", "stime", "oom_adj", "swapoff", "mems",
               "children"}
DMESG_KEYS = {"time", "text"}


class ScenarioError(ValueError):
    """A scenario file that cannot describe a machine; the message says where."""


def default_scenario_text() -> str:
    return resources.files("fakeproc.scenarios").joinpath("default.toml").read_text()


#: The largest scenario file read (a million processes take about 130 MB); a file is read no further
MAX_SCENARIO_BYTES = 1 << 30


def read_scenario(path: str | Path) -> str:
    """The text of a scenario file: a regular file (not a FIFO, whose open would wait for a writer, nor a
    device such as /dev/zero, which never ends) of at most MAX_SCENARIO_BYTES, in UTF-8."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise ScenarioError(f"{path}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if not statmod.S_ISREG(st.st_mode):
            raise ScenarioError(f"{path}: not a regular file (a scenario is a TOML file)")
        if st.st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError(f"{path}: {st.st_size} bytes; a scenario is at most {MAX_SCENARIO_BYTES}")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_SCENARIO_BYTES + 1)
    except OSError as e:
        raise ScenarioError(f"{path}: {e.strerror}") from e
    finally:
        os.close(fd)
    if len(data) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"{path}: longer than {MAX_SCENARIO_BYTES} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError as e:
        raise ScenarioError(f"{path}: not UTF-8 text (byte {e.start})") from None


def load_scenario(path: str | Path | None, era: Era) -> Machine:
    """Build a machine from a scenario file (None: the embedded default)."""
    if path is None:
        return build_machine(default_scenario_text(), era, "<default scenario>")
    return build_machine(read_scenario(path), era, str(path))


def scenario_kernel(path: str | Path | None) -> str | None:
    """The era a scenario file says it was saved under (``[machine] kernel``), if it says one.

    Errors are left to :func:`load_scenario`, which reports them properly.
    """
    if path is None:
        return None
    try:
        text = read_scenario(path)
        first = text.find(PROCESS_HEADER)
        machine = None
        if first >= 0:  # a big machine: its [machine] table is in the head, before the processes
            with contextlib.suppress(ValueError):
                machine = tomllib.loads(text[:first + 1]).get("machine")
        if machine is None:
            machine = tomllib.loads(text).get("machine", {})
        kernel = machine.get("kernel")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return kernel if kernel in ERA_NAMES else None


def _caps(value: Any, uid: int, where: str) -> int:
    if value is None:
        return CAP_ALL if uid == 0 else 0
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= CAP_ALL:
            raise ScenarioError(f"{where}: caps is a bit mask of {CAP_ALL.bit_length()} capabilities (0..{CAP_ALL:#x})")
        return value
    if not isinstance(value, (str, list)):
        raise ScenarioError(f"{where}: caps must be \"all\", \"none\", a list of names or a bit mask")
    try:
        return parse_caps(value)
    except ValueError as e:
        raise ScenarioError(f"{where}: {e}") from None


def _pages(spec: dict[str, Any], key: str, where: str) -> int:
    try:
        pages = parse_size(spec.get(key, 0)) // PAGE_SIZE
    except ValueError as e:
        raise ScenarioError(f"{where}: {key}: {e}") from e
    if pages > ULONG_MAX:
        raise ScenarioError(f"{where}: {key}: more pages than an unsigned long holds")
    return _shared(pages)


def _mems(value: Any) -> frozenset[int]:
    """A cpuset's memory nodes: a list of node numbers below MAX_NUMNODES."""
    if not isinstance(value, list):
        raise ScenarioError("mems must be a list of memory node numbers")
    return frozenset(_int(n, "a memory node", 0, MAX_NUMNODES - 1) for n in value)


def _int(value: Any, key: str, lo: int, hi: int) -> int:
    """A TOML integer in lo..hi (the kernel type's range): not a float, a boolean or a string."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{key} must be an integer, not {type(value).__name__} {str(value)[:40]!r}")
    if not lo <= value <= hi:
        raise ScenarioError(f"{key} must be {lo}..{hi}")
    return value


def _count(spec: dict[str, Any], key: str, default: int = 0) -> int:
    """A non-negative integer key (jiffies, byte counts, pids): an unsigned long."""
    return _int(spec.get(key, default), key, 0, ULONG_MAX)


#: A process table's header on a line of its own: where a scenario is cut into pieces parsed one by one.
PROCESS_HEADER = "\n[[process]]\n"
PIECE_PROCESSES = 200  # process tables per piece: few enough to stay small, enough to keep tomllib's per-call cost low


class _Unsplittable(Exception):
    """The text cannot be read piece by piece with the same meaning as whole: it is read whole."""


def _pieces(text: str) -> tuple[dict[str, Any], Iterator[dict[str, Any]], list[Any]]:
    """The head (everything before the first ``[[process]]`` line) parsed, the process tables parsed
    piece by piece (from one ``[[process]]`` line to the ``PIECE_PROCESSES``-th next) as they are consumed, and the
    ``[[dmesg]]`` records, filled in as the pieces are read.

    A machine of a million processes is then never a million parsed tables at once (the whole
    document as dicts takes several times the memory of the machine, and what it leaves behind when
    freed stays in the daemon's heap).  Whatever could mean something else when cut (a ``[[process]]``
    line inside a multi-line string or array makes a piece unparsable; a section other than process
    and dmesg after the first process, dmesg in the head) raises :class:`_Unsplittable` or
    ``TOMLDecodeError``: the caller then reads the text whole, as before.
    """
    first = text.find(PROCESS_HEADER)
    if first < 0:
        raise _Unsplittable
    head = tomllib.loads(text[:first + 1])
    if "process" in head or "dmesg" in head:
        raise _Unsplittable
    dmesg: list[Any] = []

    def specs() -> Iterator[dict[str, Any]]:
        pos = first + 1
        while pos < len(text):
            nxt = pos - 1
            for _ in range(PIECE_PROCESSES):
                nxt = text.find(PROCESS_HEADER, nxt + 1)
                if nxt < 0:
                    break
            end = len(text) if nxt < 0 else nxt + 1
            doc = tomllib.loads(text[pos:end])
            if set(doc) - {"process", "dmesg"} or not all(isinstance(v, list) for v in doc.values()):
                raise _Unsplittable
            dmesg.extend(doc.get("dmesg", ()))
            yield from doc["process"]
            pos = end

    return head, specs(), dmesg


#: Numbers read while a scenario loads, one object per value (a million processes of uid 1000 hold one
#: int 1000, not a million): ``_shared()``; emptied when the load ends.
_SHARED: dict[tuple[type, Any], Any] = {}
_SHARED_MAX = 1 << 16


def _shared(v: Any) -> Any:
    if len(_SHARED) >= _SHARED_MAX:
        return v
    return _SHARED.setdefault((v.__class__, v), v)


def build_machine(text: str, era: Era, name: str = "<scenario>") -> Machine:
    try:
        try:
            head, specs, dmesg = _pieces(text)
            return _build(head, specs, dmesg, era, name)
        except (_Unsplittable, tomllib.TOMLDecodeError, ScenarioError, RecursionError):
            pass  # read whole: the errors (and their order) are those of the whole document
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError(f"{name}: {e}") from e
        except RecursionError:
            raise ScenarioError(f"{name}: nested too deeply to read") from None
        return _build(doc, doc.get("process", []), doc.get("dmesg", []), era, name)
    finally:
        _SHARED.clear()


def _build(doc: dict[str, Any], processes: Iterable[dict[str, Any]], dmesg: list[Any], era: Era,
           name: str) -> Machine:
    unknown = set(doc) - {"machine", "process", "dmesg"}
    if unknown:
        raise ScenarioError(f"{name}: unknown section(s) {sorted(unknown)}; expected [machine], [[process]] "
                            "and [[dmesg]]")
    mspec = doc.get("machine", {})
    bad = set(mspec) - MACHINE_KEYS
    if bad:
        raise ScenarioError(f"{name}: [machine]: unknown key(s) {sorted(bad)}; known: {sorted(MACHINE_KEYS)}")
    if "kernel" in mspec and mspec["kernel"] not in ERA_NAMES:
        raise ScenarioError(f"{name}: [machine]: kernel must be one of {', '.join(ERA_NAMES)}")
    try:
        hz = _int(mspec.get("hz", 250), "hz", 100, 1000)
        if hz not in SHIFT_HZ:
            raise ScenarioError("hz must be 100, 250, 300 or 1000")
        ram, swap = parse_size(mspec.get("ram", "4G")), parse_size(mspec.get("swap", 0))
        if not (ulong_pages(ram) and ulong_pages(swap)):
            raise ScenarioError("ram and swap are counted in unsigned long pages: these are too big")
        if ram < PAGE_SIZE:  # the scores divide by totalram_pages() + total_swap_pages
            raise ScenarioError(f"ram must be at least a page ({PAGE_SIZE} bytes)")
        uptime = parse_duration(mspec.get("uptime", 0))
        if uptime > max_uptime(hz):
            raise ScenarioError(f"uptime must be at most {max_uptime(hz):.0f} s (jiffies_64 at HZ={hz})")
        m = Machine(era, ram=ram, swap=swap, hz=hz, uptime=uptime)
        next_pid = _int(mspec.get("next_pid", 1), "next_pid", 1, PID_MAX_LIMIT)
        pid_max = _int(mspec.get("pid_max", PID_MAX_DEFAULT), "pid_max", RESERVED_PIDS + 1, PID_MAX_LIMIT)
        m.clock_scale = parse_clock(mspec.get("clock", "stepped"))
        for key in VM_SYSCTLS:
            if key in mspec:
                m.set_sysctl(key, _int(mspec[key], key, INT_MIN, INT_MAX))
        if "cpus" in mspec:
            m.cpus, m.cpus_given = _int(mspec["cpus"], "cpus", 1, NR_CPUS), True
        if "panic" in mspec:  # stopped as it was saved; the log already holds the panic line
            m.halt.reason, m.halt.at = _text(mspec["panic"], "panic"), m.uptime
    except (ValueError, ScenarioError, MachineError) as e:
        raise ScenarioError(f"{name}: [machine]: {e}") from e
    # while loading, any pid the kernel could have; then the machine's pid_max, raised to hold every pid listed
    m.table.set_pid_max(PID_MAX_LIMIT)
    m.deprecation_warned = bool(mspec.get("oom_adj_deprecation_warned", False))
    orders: dict[int, tuple[str, Any]] = {}  # tid -> (where, its ``children`` list as written)
    later: list[tuple[Task, int, str]] = []  # (process, the parent it names, where): a parent listed after it
    for i, spec in enumerate(processes):
        where = f"{name}: process #{i + 1}" + (f" (pid {spec['pid']})" if "pid" in spec else "")
        try:
            _add_process(m, spec, where, orders, later)
        except (MachineError, TypeError, ValueError) as e:  # ScenarioError too: each says which file and process
            raise ScenarioError(f"{where}: {e}") from e
    if 1 not in m.processes:
        raise ScenarioError(f"{name}: there must be a process with pid 1 (init)")
    for t, ppid, where in later:  # list_add_tail() of the process and its threads, after every earlier one
        parent = m.tasks.get(ppid)
        if parent is None or parent.tgid == t.tgid:
            raise ScenarioError(f"{where}: parent {ppid} is not a process or thread of this file")
        for th in t.signal.threads:
            th.real_parent = parent
            adopt(parent, th)
    for tid, (where, order) in orders.items():
        _order_children(m.tasks[tid], order, where)
    highest = max(m.tasks)
    if "pid_max" in mspec and pid_max <= highest:
        raise ScenarioError(f"{name}: [machine]: pid_max {pid_max} is not above pid {highest}")
    m.table.set_pid_max(max(pid_max, highest + 1))
    m.next_pid = max(m.next_pid, next_pid)
    for i, rec in enumerate(dmesg):
        bad = set(rec) - DMESG_KEYS
        if bad or "text" not in rec:
            raise ScenarioError(f"{name}: dmesg record #{i + 1}: needs text (a string) and time, nothing else")
        try:
            m.log.add(parse_duration(rec.get("time", 0)), _text(rec["text"], "text"))
        except ValueError as e:
            raise ScenarioError(f"{name}: dmesg record #{i + 1}: {e}") from e
    m.journal.clear()  # the change stream starts with the machine: loading is not a change
    for when, text in m.log.records:
        m.journal.record(when, "kernel", text=text)
    # score every candidate now, as part of loading (a second at a million processes, a fraction of
    # the load): the first OOM selection then costs what any later one does (see killer.py)
    m.select_bad_process()
    return m


def _own_mm(spec: dict[str, Any], where: str) -> Mm:
    """An address space of the process's own, from the memory keys."""
    rss_anon = _pages(spec, "rss", where)
    if "pgtables_bytes" in spec:
        if "pgtables" in spec:
            raise ScenarioError("pgtables and pgtables_bytes say the same thing; give one")
        pgtables = _count(spec, "pgtables_bytes")
    else:
        pgtables = _pages(spec, "pgtables", where) * PAGE_SIZE
    rss_file, rss_shmem = _pages(spec, "file_rss", where), _pages(spec, "shmem_rss", where)
    resident = rss_anon + rss_file + rss_shmem
    total_vm = _pages(spec, "vm", where) if "vm" in spec else resident  # what is resident is mapped
    if total_vm < resident:
        raise ScenarioError("vm is below what is resident (rss + file_rss + shmem_rss): what is resident is mapped")
    if total_vm > ULONG_MAX:
        raise ScenarioError("rss + file_rss + shmem_rss is more pages than an unsigned long holds")
    return Mm(total_vm=total_vm, rss_anon=rss_anon, rss_file=rss_file, rss_shmem=rss_shmem,
              swap=_pages(spec, "swap", where), pgtables=pgtables)


def _exited_task(tgid: int) -> Task:
    """What is left of a vfork parent that has exited: its process id (the child's vfork_done is still set,
    which is all in_vfork() reads of it)."""
    return Task(tgid, tgid, "", 0, 0, SignalStruct(), None, None, 0.0)


def _order_children(t: Task, order: Any, where: str) -> None:
    """A ``children`` key: the task's children list in the order written, which must name exactly the tasks
    whose real parent it is (each once)."""
    if not isinstance(order, list):
        raise ScenarioError(f"{where}: children of {t.tid} must be a list of tids")
    tids = [_int(c, "a child's tid", 1, PID_MAX_LIMIT - 1) for c in order]
    have = {c.tid: c for c in t.children}
    if sorted(tids) != sorted(have):
        raise ScenarioError(f"{where}: children of {t.tid} must list each task whose parent it is once: "
                            f"{sorted(have)}, not {tids}")
    set_children(t, [have[c] for c in tids])


def _add_process(m: Machine, spec: dict[str, Any], where: str, orders: dict[int, tuple[str, Any]],
                 later: list[tuple[Task, int, str]]) -> None:
    bad = set(spec) - PROCESS_KEYS
    if bad:
        raise ScenarioError(f"unknown key(s) {sorted(bad)}; known: {sorted(PROCESS_KEYS)}")
    if "pid" not in spec or "comm" not in spec:
        raise ScenarioError("pid and comm are required")
    pid, comm = _int(spec["pid"], "pid", 1, PID_MAX_LIMIT - 1), sys.intern(task_comm(_text(spec["comm"], "comm")))
    ppid = _int(spec.get("parent", 0), "parent", 0, PID_MAX_LIMIT - 1)
    parent = m.tasks.get(ppid)
    if ppid and parent is None and (spec.get("vfork") or spec.get("clone_vm")):
        raise ScenarioError(f"parent {ppid} must be listed before its vfork or clone_vm child")
    uid = _shared(_int(spec.get("uid", parent.uid if parent is not None else 0), "uid", 0, UID_MAX))  # as after fork()
    gid = _shared(_int(spec.get("gid", uid), "gid", 0, UID_MAX))
    kthread = bool(spec.get("kthread", False))
    old_style = bool(spec.get("vfork") or spec.get("clone_vm"))
    new_style = {"mm", "vfork_parent", "vfork_parent_exited", "in_vfork"} & set(spec)
    if old_style and new_style:
        raise ScenarioError(f"vfork/clone_vm (share the parent's address space) and {sorted(new_style)} "
                            "exclude each other")
    if old_style:
        if not ppid:
            raise ScenarioError("a vfork or clone_vm child needs a parent")
        t = m.fork(ppid, vfork=bool(spec.get("vfork")), share_vm=bool(spec.get("clone_vm")), pid=pid, comm=comm,
                   uid=uid, gid=gid)
    else:
        mm = None
        if "mm" in spec:
            owner = m.processes.get(_count(spec, "mm"))
            if owner is None or owner.mm is None:
                raise ScenarioError(f"mm = {spec['mm']}: no process with an address space listed before")
            if MEMORY_KEYS & set(spec):
                raise ScenarioError(f"a process sharing the address space of {owner.tgid} takes its memory "
                                    f"from it: no {sorted(MEMORY_KEYS & set(spec))}")
            mm = owner.mm
        elif not kthread:
            mm = _own_mm(spec, where)
        if kthread and new_style:
            raise ScenarioError("a kernel thread has no address space to share")
        t = m.spawn(comm, pid=pid, parent=parent, uid=uid, gid=gid, mm=mm, kthread=kthread)
        if ppid and parent is None:
            later.append((t, ppid, where))  # a parent listed after it: attached once every process exists
        _set_vfork_parent(m, t, spec, where)
    if "children" in spec:
        orders[t.tid] = (where, spec["children"])
    if spec.get("multiprocess"):
        if t.mm is None:
            raise ScenarioError("multiprocess: a kernel thread has no address space")
        t.mm.multiprocess = True
    t.nice = _int(spec.get("nice", t.nice if t.mm is not None and len(t.mm.users) > 1 else 0), "nice", NICE_MIN,
                  NICE_MAX)
    t.caps = _caps(spec.get("caps"), uid, where)
    start = _shared(parse_duration(spec.get("start", 0)))
    if start > m.uptime:
        raise ScenarioError(f"start ({start}s) is after the machine's uptime ({m.uptime}s)")
    t.start_time = start
    t.oom_origin = bool(spec.get("swapoff", False))
    if "mems" in spec:
        t.mems = _mems(spec["mems"])
    if "alloc_rate" in spec:
        m.set_alloc_rate(pid, parse_rate(spec["alloc_rate"]))
    _set_values(m, t, spec)
    threads = spec.get("threads", 1)
    # a process's threads are at most what the machine's threads-max allows (the kernel's fork fails beyond)
    most = min(PID_MAX_LIMIT, max_threads(m.ram_pages, m.era.version))
    entries = list(threads) if isinstance(threads, list) else [None] * (_int(threads, "threads", 1, PID_MAX_LIMIT) - 1)
    if len(entries) >= most:
        raise ScenarioError(f"threads must be 1..{most} (threads-max for this RAM)")
    for entry in entries:
        tspec = entry if isinstance(entry, dict) else {"tid": entry}
        if "tid" not in tspec:
            raise ScenarioError("a thread table needs its tid")
        th = m.clone_thread(pid, tid=None if tspec["tid"] is None else _int(tspec["tid"], "tid", 1, PID_MAX_LIMIT - 1))
        th.start_time = start
        _set_thread(m, th, tspec, where)
        if "children" in tspec:
            orders[th.tid] = (where, tspec["children"])
    exact = {"utime", "stime"} & set(spec) or any(
        isinstance(e, dict) and {"utime", "stime"} & set(e) for e in entries)
    t.signal.dead_cputime = _count(spec, "exited_cputime")
    if exact:
        if {"cpu", "sys_cpu"} & set(spec):
            raise ScenarioError("cpu/sys_cpu (spread over the threads) and utime/stime (jiffies) exclude each other")
        t.utime, t.stime = _count(spec, "utime"), _count(spec, "stime")
        return
    utime = int(parse_duration(spec.get("cpu", 0)) * m.hz)
    stime = int(parse_duration(spec.get("sys_cpu", 0)) * m.hz)
    # the process's CPU time, spread evenly over its threads (the leader takes the remainder)
    threads_now = t.signal.threads
    for i, th in enumerate(threads_now):
        share_u, share_s = utime // len(threads_now), stime // len(threads_now)
        th.utime = _shared(share_u + (utime % len(threads_now) if i == 0 else 0))
        th.stime = _shared(share_s + (stime % len(threads_now) if i == 0 else 0))


def _set_vfork_parent(m: Machine, t: Task, spec: dict[str, Any], where: str) -> None:
    """vfork_parent / vfork_parent_exited: a vfork child described explicitly."""
    if "in_vfork" in spec and "vfork_parent_exited" not in spec:
        raise ScenarioError("in_vfork goes with vfork_parent_exited (a live vfork parent's address space says it)")
    if "vfork_parent" in spec:
        if "vfork_parent_exited" in spec:
            raise ScenarioError("vfork_parent and vfork_parent_exited exclude each other")
        vp = m.tasks.get(_count(spec, "vfork_parent"))
        if vp is None or vp is t:
            raise ScenarioError(f"vfork_parent {spec['vfork_parent']} must be a thread listed before")
        t.vfork_parent = vp
        rp = t.real_parent
        if rp is not None and rp is not vp and rp is vp.leader:
            # a file saved before ``parent`` named threads gives the vfork parent's process: vfork() makes the
            # child of the thread that called it (p->real_parent = current)
            disown(rp, t)
            t.real_parent = vp
            adopt(vp, t)
    elif "vfork_parent_exited" in spec:
        if t.mm is None:
            raise ScenarioError("a kernel thread has no address space to share")
        t.vfork_parent = _exited_task(_count(spec, "vfork_parent_exited"))
        said = spec.get("in_vfork")
        if said is not None and said != t.in_vfork:
            log.warning("%s: in_vfork = %s ignored: in_vfork() follows from the real parent's address space "
                        "(here %s)", where, said, t.in_vfork)


def _set_thread(m: Machine, th: Task, tspec: dict[str, Any], where: str) -> None:
    """What a ``threads`` table says of one thread; the rest is the leader's (clone() copied it)."""
    bad = set(tspec) - THREAD_KEYS
    if bad:
        raise ScenarioError(f"thread {tspec.get('tid')}: unknown key(s) {sorted(bad)}; known: {sorted(THREAD_KEYS)}")
    if "comm" in tspec:
        th.comm = _text(tspec["comm"], "comm")
    if "uid" in tspec:
        th.uid = _int(tspec["uid"], "uid", 0, UID_MAX)
    if "gid" in tspec:
        th.gid = _int(tspec["gid"], "gid", 0, UID_MAX)
    if "nice" in tspec:
        th.nice = _int(tspec["nice"], "nice", NICE_MIN, NICE_MAX)
    if "caps" in tspec:
        th.caps = _caps(tspec["caps"], th.uid, f"{where}: thread {th.tid}")
    if "start" in tspec:
        start = parse_duration(tspec["start"])
        if start > m.uptime:
            raise ScenarioError(f"thread {th.tid}: start ({start}s) is after the machine's uptime ({m.uptime}s)")
        th.start_time = start
    th.utime, th.stime = _count(tspec, "utime"), _count(tspec, "stime")
    if "swapoff" in tspec:
        th.oom_origin = bool(tspec["swapoff"])
    if "mems" in tspec:
        th.mems = _mems(tspec["mems"])
    if "oom_adj" in tspec:
        adj = _int(tspec["oom_adj"], "oom_adj", -17, 15)
        if not oom_adj_in_range(adj):
            raise ScenarioError(f"thread {th.tid}: oom_adj must be -17 or -16..15")
        if m.era.adj_home is AdjHome.TASK:  # elsewhere the process's value applies
            th.oom_adj = adj


def _set_values(m: Machine, t: Task, spec: dict[str, Any]) -> None:
    """oom_adj and/or oom_score_adj, each converted as the era's legacy mapping does."""
    adj, score_adj = spec.get("oom_adj"), spec.get("oom_score_adj")
    if adj is not None and not oom_adj_in_range(_int(adj, "oom_adj", -17, 15)):
        raise ScenarioError("oom_adj must be -17 or -16..15")
    if score_adj is not None and not oom_score_adj_in_range(_int(score_adj, "oom_score_adj", -1000, 1000)):
        raise ScenarioError("oom_score_adj must be -1000..1000")
    adj_min = spec.get("oom_score_adj_min")
    if adj_min is not None and not oom_score_adj_in_range(_int(adj_min, "oom_score_adj_min", -1000, 1000)):
        raise ScenarioError("oom_score_adj_min must be -1000..1000")
    if m.era.has_score_adj:
        if score_adj is None and adj is not None:
            score_adj = legacy_to_score_adj(int(adj))
        if score_adj is not None:
            m.store_adj(t, int(score_adj), None if adj_min is None else int(adj_min))
        elif adj_min is not None:
            t.signal.oom_score_adj_min = int(adj_min)
    else:
        if adj is None and score_adj is not None:
            adj = score_adj_to_legacy(int(score_adj))  # as probe.py does for kernels before oom_score_adj
        if adj is not None:
            m.store_adj(t, int(adj))


# --------------------------------------------------------------------------------------------------
# Saving: dump_scenario() writes what build_machine() reads back.


class _Raw(str):
    """A value already written as TOML (a hexadecimal bit mask)."""


def _text_value(s: str) -> str | list[int]:
    """A name or a log line as the scenario keeps it: a string, or, when it holds bytes that are not UTF-8
    (a comm the kernel cut inside a character), the list of its bytes, which TOML can hold exactly."""
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in s):
        return s
    return list(s.encode("utf-8", "surrogateescape"))


def _text(value: Any, key: str) -> str:
    """What _text_value() wrote: a string, or a list of byte values."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 255
                                       for b in value):
        return bytes(value).decode("utf-8", "surrogateescape")
    raise ScenarioError(f"{key} must be a string (or a list of byte values)")


def _toml_str(s: str) -> str:
    """A TOML basic string.  Lone surrogates (not text, so not TOML) become U+FFFD."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\b\t\n\f\r":
            out.append({"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\u{o:04X}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\uFFFD")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _toml_num(x: float) -> str:
    """An exact TOML number: integral values as integers, others as Python's shortest repr."""
    if isinstance(x, int):
        return str(x)
    if math.isfinite(x) and x.is_integer() and abs(x) < 2**53:
        return str(int(x))
    return repr(x)  # 0.25, 1e-05, 1e+16, inf, nan: all TOML floats


def _toml(v: Any) -> str:
    if isinstance(v, _Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return _toml_num(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r}")


def _size_value(nbytes: int) -> str | int:
    return format_size(nbytes) if nbytes else 0


def _caps_value(caps: int) -> str | list[str] | _Raw:
    if caps == CAP_ALL:
        return "all"
    if caps == 0:
        return "none"
    names = [name for name, bit in CAPABILITIES.items() if caps >> bit & 1]
    if sum(1 << CAPABILITIES[n] for n in names) == caps:
        return names
    return _Raw(f"{caps:#x}")


def _line(key: str, value: Any) -> str:
    return f"{key} = {_toml(value)}"


def _alive(m: Machine, t: Task | None) -> bool:
    return t is not None and m.tasks.get(t.tid) is t


def _dump_order(m: Machine) -> list[Task]:
    """Creation order (for_each_process()'s, which decides the killer's ties): a parent listed later (an init
    created after the process it adopted) is attached by the loader once every process exists."""
    return list(m.processes.values())


def _children_value(t: Task, expected: dict[int, list[int]]) -> list[int] | None:
    """The task's children list where the loader would not build it so by itself."""
    actual = [c.tid for c in t.children]
    return actual if actual != expected.get(t.tid, []) else None


def _thread_entry(m: Machine, p: Task, th: Task, expected: dict[int, list[int]]) -> int | dict[str, Any]:
    """A thread as the loader reads it: its tid, and what clone() would not have given it."""
    d: dict[str, Any] = {"tid": th.tid}
    for key, mine, leaders in (("comm", _text_value(th.comm), _text_value(p.comm)), ("uid", th.uid, p.uid),
                               ("gid", th.gid, p.gid), ("nice", th.nice, p.nice)):
        if mine != leaders:
            d[key] = mine
    if th.caps != p.caps:
        d["caps"] = _caps_value(th.caps)
    if th.start_time != p.start_time:
        d["start"] = th.start_time
    if th.utime:
        d["utime"] = th.utime
    if th.stime:
        d["stime"] = th.stime
    if m.era.adj_home is AdjHome.TASK and th.oom_adj != p.oom_adj:
        d["oom_adj"] = th.oom_adj
    if th.oom_origin:  # PF_OOM_ORIGIN belongs to the thread running swapoff: clone() does not copy it
        d["swapoff"] = True
    if th.mems != p.mems:
        d["mems"] = sorted(th.mems)
    children = _children_value(th, expected)
    if children is not None:
        d["children"] = children
    return th.tid if len(d) == 1 else d


def _process_lines(m: Machine, p: Task, mm_owner: dict[int, tuple[Mm, int]],
                   expected: dict[int, list[int]]) -> list[str]:
    era = m.era
    rp = p.real_parent if _alive(m, p.real_parent) else None
    out = [_line("pid", p.tgid), _line("parent", rp.tid if rp is not None else 0),
           _line("comm", _text_value(p.comm))]
    if p.kthread:
        out.append(_line("kthread", True))
    out += [_line("uid", p.uid), _line("gid", p.gid), _line("nice", p.nice), _line("caps", _caps_value(p.caps)),
            _line("start", p.start_time)]
    if p.utime:
        out.append(_line("utime", p.utime))
    if p.stime:
        out.append(_line("stime", p.stime))
    if p.signal.dead_cputime:
        out.append(_line("exited_cputime", p.signal.dead_cputime))
    mm = p.mm
    for th in p.signal.threads[1:]:
        if th.mm is not mm:
            raise ScenarioError(f"cannot save thread {th.tid}: its address space is not its process's")
        if th.real_parent is not p.real_parent:
            raise ScenarioError(f"cannot save thread {th.tid}: its real parent is not its process's")
    if mm is not None:
        owner = mm_owner.get(id(mm))
        if owner is not None:
            out.append(_line("mm", owner[1]))
        else:
            mm_owner[id(mm)] = (mm, p.tgid)
            out += [_line("vm", _size_value(mm.total_vm * PAGE_SIZE)),
                    _line("rss", _size_value(mm.rss_anon * PAGE_SIZE))]
            for key, pages in (("file_rss", mm.rss_file), ("shmem_rss", mm.rss_shmem), ("swap", mm.swap)):
                if pages:
                    out.append(_line(key, _size_value(pages * PAGE_SIZE)))
            if mm.pgtables % PAGE_SIZE:
                out.append(_line("pgtables_bytes", mm.pgtables))
            elif mm.pgtables:
                out.append(_line("pgtables", _size_value(mm.pgtables)))
            if mm.multiprocess:
                out.append(_line("multiprocess", True))
    vp = p.vfork_parent
    if vp is not None:
        if _alive(m, vp):
            out.append(_line("vfork_parent", vp.tid))
        else:
            out.append(_line("vfork_parent_exited", vp.tgid))
    home = era.adj_home
    if home is AdjHome.SIGNAL_SCORE_ADJ:
        out += [_line("oom_score_adj", p.signal.oom_score_adj),
                _line("oom_score_adj_min", p.signal.oom_score_adj_min)]
    elif home is AdjHome.SIGNAL:
        out.append(_line("oom_adj", p.signal.oom_adj))
    elif home is AdjHome.TASK:
        out.append(_line("oom_adj", p.oom_adj))
    elif mm is not None:  # AdjHome.MM: the address space's value (a kernel thread has none)
        out.append(_line("oom_adj", mm.oom_adj))
    if p.oom_origin:
        out.append(_line("swapoff", True))
    if p.mems != frozenset({0}):
        out.append(_line("mems", sorted(p.mems)))
    rate = m.alloc_rate(p.tgid)
    if rate:
        out.append(_line("alloc_rate", _size_value(round(rate))))
    children = _children_value(p, expected)
    if children is not None:
        out.append(_line("children", children))
    threads = [_thread_entry(m, p, th, expected) for th in p.signal.threads[1:]]
    if threads:
        out.append("threads = [")
        out += [f"  {_toml(e)}," for e in threads]
        out.append("]")
    return out


def dump_scenario(machine: Machine) -> str:
    """The machine as a scenario file that :func:`load_scenario` rebuilds value for value.

    Every process, thread, address space and value the OOM files read, the
    clock, the next pid, the kernel log and 6.x's one-time deprecation
    warning.  The text depends only on the machine (no timestamps), so
    dump -> load -> dump gives the same text.
    """
    m = machine
    out = [
        "# A fakeproc machine, saved by `fakeproc save` or `fakeproc mount --save-on-exit`.",
        "# Load it again with: fakeproc mount --scenario THIS_FILE",
        "# (the keys are described in docs/scenarios.md and in fakeproc/machine/scenario.py;",
        "# sizes in bytes with k/M/G suffixes, times in seconds, utime/stime/exited_cputime in jiffies)",
        "",
        "[machine]",
        _line("kernel", m.era.name),
        _line("ram", _size_value(m.ram_pages * PAGE_SIZE)),
        _line("swap", _size_value(m.swap_pages * PAGE_SIZE)),
        _line("hz", m.hz),
        _line("uptime", m.uptime),
        _line("clock", format_clock(m.clock_scale)),
        _line("next_pid", m.next_pid),
    ]
    if m.table.pid_max != PID_MAX_DEFAULT:
        out.append(_line("pid_max", m.table.pid_max))
    if m.cpus != 1:
        out.append(_line("cpus", m.cpus))
    if m.deprecation_warned:
        out.append(_line("oom_adj_deprecation_warned", True))
    if m.halt.reason is not None:
        out.append(_line("panic", _text_value(m.halt.reason)))
    defaults = m.sysctl.defaults()
    out += [_line(k, v) for k, v in m.sysctl.values.items() if v != defaults[k]]
    mm_owner: dict[int, tuple[Mm, int]] = {}  # id(mm) -> (mm, the first process written with it)
    order = _dump_order(m)
    # the children lists the loader builds by itself: each process, then its threads, appended to its real
    # parent's list as the file creates them
    expected: dict[int, list[int]] = {}
    listed: set[int] = set()
    attached_later: list[Task] = []
    for p in order:
        rp = p.real_parent
        if _alive(m, rp):
            assert rp is not None
            if rp.tgid in listed:
                expected.setdefault(rp.tid, []).extend(th.tid for th in p.signal.threads)
            else:  # the loader attaches it once every process exists
                attached_later.append(p)
        listed.add(p.tgid)
    for p in attached_later:
        assert p.real_parent is not None
        expected.setdefault(p.real_parent.tid, []).extend(th.tid for th in p.signal.threads)
    for p in order:
        out += ["", "[[process]]"] + _process_lines(m, p, mm_owner, expected)
    for when, text in m.log.records:
        out += ["", "[[dmesg]]", _line("time", when), _line("text", _text_value(text))]
    return "\n".join(out) + "\n"


def write_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and rename():
    readers see the old file or the new one, never half of one.  An existing file keeps its mode.

    Only a regular file is replaced: a FIFO, a device (``/dev/null``) or a symbolic link (``/dev/stdout``:
    the rename would replace the link itself) is refused with EINVAL.  The temporary file is named after
    the target and the writer's pid (``.NAME.fakeproc-PID-XXXX.tmp``); one left by a writer that is gone
    (a daemon killed during a save) is removed by the next save to that name.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    base = os.path.basename(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        mode = 0o644
    else:
        if statmod.S_ISDIR(st.st_mode):  # what rename(2) onto a directory answers
            raise OSError(errno.EISDIR, "a directory: fakeproc replaces only regular files", path)
        if not statmod.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"not a regular file ({_file_kind(st.st_mode)}): fakeproc replaces only "
                                        "regular files", path)
        mode = st.st_mode & 0o7777
    _remove_stale_temporaries(directory, base)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.fakeproc-{os.getpid()}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _file_kind(mode: int) -> str:
    for test, kind in ((statmod.S_ISLNK, "a symbolic link"), (statmod.S_ISDIR, "a directory"),
                       (statmod.S_ISFIFO, "a FIFO"), (statmod.S_ISCHR, "a character device"),
                       (statmod.S_ISBLK, "a block device"), (statmod.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def _remove_stale_temporaries(directory: str, base: str) -> None:
    """Temporary files of earlier saves to ``base`` whose writer is gone (killed during the save)."""
    prefix = f".{base}.fakeproc-"
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))


def save_scenario(machine: Machine, path: str | Path) -> None:
    """dump_scenario() to ``path``, atomically."""
    write_atomically(path, dump_scenario(machine))
