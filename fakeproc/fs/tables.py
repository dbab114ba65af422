"""The directories of the fake, one table each, as fs/proc/base.c and fs/proc/root.c declare them.

``PID`` is base.c's ``tgid_base_stuff[]`` (the files of ``/PID``), ``TID`` its ``tid_base_stuff[]``
(``/PID/task/TID``), ``ROOT`` the top of the mount, ``FAKEPROC`` fakeproc's own directory.  Adding
a file is adding a row with its handler; a row says in which kernel versions it exists
(``since``/``until``).  The handlers read and write the machine through its API and know no OOM
rule themselves: what a write of ``oom_adj`` does is ``Machine.write_oom_adj``'s business; the
companion files are rendered by ``procfiles.py``.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable

from ..machine import Machine, MachineError, Task
from ..machine.sysctls import VM_SYSCTLS
from . import pidfiles, procfiles
from .tree import DIR, LNK, REG, Handle, Node, Request, Row, Table, name_to_int

# ------------------------------------------------------------------------- the tables, filled below

ROOT = Table("root")
FAKEPROC = Table("fakeproc")
PID = Table("pid")
TASK = Table("task")
TID = Table("tid")
SYS = Table("sys")
FD = Table("fd")
FDINFO = Table("fdinfo")
SYS_VM = Table("sys/vm")

#: the rows of the directories a table lists dynamically: /PID, /PID/task, /PID/task/TID, and the root
#: (procfs takes a chown or a new time of a file, of PID/task and of the root's times; the pid and tid
#: directories take neither: Row.settable)
ROOT_DIR = DIR("/", 0o555, ROOT, settable=frozenset({"times"}))
PID_DIR = DIR("PID", 0o555, PID, settable=frozenset())
TID_DIR = DIR("TID", 0o555, TID, settable=frozenset())


class Pids:
    """The root's processes: ``/PID`` for every process, and any thread's ``/TID`` (unlisted, as in procfs).

    In run mode the host's real processes are the passthrough's (fakeproc.fs.passthrough); in shell mode
    the scenario's processes are here and the shell's own real ones are the passthrough's."""

    def lookup(self, req: Request, parent: Node, name: str) -> Node | None:
        pid = name_to_int(name)
        if pid is None:
            return None
        reality = req.state.reality
        if reality is not None and not reality.simulated(pid):
            return None
        t = req.machine.tasks.get(pid)
        return Node(PID_DIR, t, t) if t is not None else None

    def names(self, req: Request, parent: Node) -> Iterable[str]:
        reality = req.state.reality
        if reality is None:
            return map(str, req.machine.processes)
        if reality.simulated_machine:
            extra = reality.extra_pids()  # first: it enters the shell's new processes into the machine
            return [*map(str, req.machine.processes), *map(str, extra)]
        return ()  # run mode: the host's listing has them


class Tids:
    """``/PID/task``: the threads of the process."""

    def lookup(self, req: Request, parent: Node, name: str) -> Node | None:
        tid = name_to_int(name)
        view = parent.view
        th = req.machine.tasks.get(tid) if tid is not None else None
        if th is None or view is None or th.tgid != view.tgid:
            return None
        return Node(TID_DIR, th, view)

    def names(self, req: Request, parent: Node) -> Iterable[str]:
        assert parent.view is not None
        return [str(th.tid) for th in parent.view.signal.threads]


ROOT.dynamic = Pids()
TASK.dynamic = Tids()

# ------------------------------------------------------------------------- /PID and /PID/task/TID


def _task(node: Node) -> Task:
    """The task a per-pid node is about (the core checked, for a read, that it is alive; a write's handler
    lets the machine check it where the kernel does: after parsing)."""
    assert node.task is not None
    return node.task


def read_oom_adj(req: Request, node: Node) -> bytes:
    return req.machine.read_oom_adj(_task(node))


def write_oom_adj(req: Request, node: Node, data: bytes) -> int:
    return req.machine.write_oom_adj(_task(node), data, req)


def read_oom_score_adj(req: Request, node: Node) -> bytes:
    return req.machine.read_oom_score_adj(_task(node))


def write_oom_score_adj(req: Request, node: Node, data: bytes) -> int:
    return req.machine.write_oom_score_adj(_task(node), data, req)


def read_oom_score(req: Request, node: Node) -> bytes:
    m = req.machine
    reader = m.tasks.get(req.tid)  # has_intersects_mems_allowed() compares with current
    return m.read_oom_score(_task(node), reader.mems if reader is not None else None)


def _reading_task(req: Request) -> int:
    """The model task making this read, if any: where real processes stand behind the machine (run, shell), the
    caller's tid names one; a plain mount's readers are outside the machine (0: nobody)."""
    return req.tid if req.state.reality is not None else 0


def read_tgid_stat(req: Request, node: Node) -> bytes:
    """proc_tgid_stat(): the thread group's times."""
    return procfiles.pid_stat(req.machine, _task(node), whole=True, reader=_reading_task(req))


def read_tid_stat(req: Request, node: Node) -> bytes:
    """proc_tid_stat() (task/TID/stat): the thread's own times."""
    return procfiles.pid_stat(req.machine, _task(node), whole=False, reader=_reading_task(req))


def read_status(req: Request, node: Node) -> bytes:
    return procfiles.pid_status(req.machine, _task(node), reader=_reading_task(req))


def write_comm(req: Request, node: Node, data: bytes) -> int:
    return req.machine.write_comm(_task(node), data, req)


#: The OOM files, in base.c's order: the model's own in every mode (run mode never passes the host's through).
OOM_ROWS = (
    REG("oom_adj", 0o644, read_oom_adj, write_oom_adj),
    REG("oom_score", 0o444, read_oom_score),
    REG("oom_score_adj", 0o644, read_oom_score_adj, write_oom_score_adj, since=(2, 6, 36)),
)


def _reader(render: Callable[[Machine, Task], bytes]) -> Callable[[Request, Node], bytes]:
    """A read handler from a renderer of the task's file, ``render(machine, task)`` (procfiles, pidfiles)."""
    def read(req: Request, node: Node) -> bytes:
        return render(req.machine, _task(node))
    return read


def _linker(target: Callable[[Machine, Task], str]) -> Callable[[Request, Node], str]:
    def link(req: Request, node: Node) -> str:
        return target(req.machine, _task(node))
    return link


def write_loginuid(req: Request, node: Node, data: bytes) -> int:
    """proc_loginuid_write(): ``if (current != pid_task(proc_pid(inode), PIDTYPE_PID)) return -EPERM``: only the
    process itself, which a simulated process never is."""
    raise MachineError(errno.EPERM, "only the process itself may set its loginuid")


def _fdinfo_reader(fd: int) -> Callable[[Request, Node], bytes]:
    def read(req: Request, node: Node) -> bytes:
        return pidfiles.fdinfo(req.machine, _task(node), fd)
    return read


FD.extend(LNK(n, _linker(pidfiles.fd_link)) for n in pidfiles.FDS)
FDINFO.extend(REG(n, 0o400, _fdinfo_reader(int(n))) for n in pidfiles.FDS)


def _companions(stat_reader: Row) -> list[Row]:
    """The files tools read besides the OOM files (a simulated machine's; run mode serves the host's), in
    base.c's order."""
    return [
        DIR("fd", 0o500, FD, companion=True),
        DIR("fdinfo", 0o500, FDINFO, companion=True),
        REG("environ", 0o400, _reader(pidfiles.environ), companion=True),
        REG("limits", 0o444, _reader(pidfiles.limits), companion=True),
        REG("status", 0o444, read_status, companion=True),
        REG("comm", 0o644, _reader(procfiles.pid_comm), write_comm, companion=True),
        REG("cmdline", 0o444, _reader(procfiles.pid_cmdline), companion=True),
        stat_reader,
        REG("statm", 0o444, _reader(procfiles.pid_statm), companion=True),
        REG("maps", 0o444, _reader(pidfiles.maps), companion=True),
        LNK("cwd", _linker(pidfiles.root_or_cwd), companion=True),
        LNK("root", _linker(pidfiles.root_or_cwd), companion=True),
        LNK("exe", _linker(pidfiles.exe), companion=True),
        REG("smaps", 0o444, _reader(pidfiles.smaps), companion=True),
        REG("smaps_rollup", 0o444, _reader(pidfiles.smaps_rollup), companion=True, since=(4, 14)),
        REG("wchan", 0o444, _reader(pidfiles.wchan), companion=True),
        REG("cgroup", 0o444, _reader(pidfiles.cgroup), companion=True),
        REG("loginuid", 0o644, _reader(pidfiles.loginuid), write_loginuid, companion=True),
        REG("sessionid", 0o444, _reader(pidfiles.sessionid), companion=True),
        REG("io", 0o400, _reader(pidfiles.io), companion=True),
    ]


TASK_DIR = DIR("task", 0o555, TASK)
PID.extend([TASK_DIR, *_companions(REG("stat", 0o444, read_tgid_stat, companion=True)), *OOM_ROWS])
TID.extend([*_companions(REG("stat", 0o444, read_tid_stat, companion=True)),
            *(REG(r.name, r.mode & 0o777, r.read, r.write, since=r.since) for r in OOM_ROWS)])

#: Every per-pid name the model owns in run mode: the host's file of that name is never passed through.
MODEL_PID_NAMES = frozenset(r.name for r in OOM_ROWS)

# ------------------------------------------------------------------------- the root and fakeproc/


def write_sysrq(req: Request, node: Node, data: bytes) -> int:
    """drivers/char/sysrq.c write_sysrq_trigger(): the first byte is the key."""
    req.machine.sysrq(data[:1], req.caller())
    return len(data)


def read_meminfo(req: Request, node: Node) -> bytes:
    return procfiles.meminfo(req.machine)


def read_proc_stat(req: Request, node: Node) -> bytes:
    return procfiles.stat(req.machine, req.state.btime)


def read_uptime(req: Request, node: Node) -> bytes:
    return procfiles.uptime(req.machine)


def read_loadavg(req: Request, node: Node) -> bytes:
    return procfiles.loadavg(req.machine)


def read_version(req: Request, node: Node) -> bytes:
    return procfiles.version(req.machine)


def read_cpuinfo(req: Request, node: Node) -> bytes:
    return procfiles.cpuinfo(req.machine)


def link_self(req: Request, node: Node) -> str:
    reality = req.state.reality
    assert reality is not None
    return reality.self_link(req.tid, thread=False)


def link_thread_self(req: Request, node: Node) -> str:
    reality = req.state.reality
    assert reality is not None
    return reality.self_link(req.tid, thread=True)


def read_control(req: Request, node: Node) -> bytes:
    control = req.state.control
    if control is None:
        return b""
    return control.read(req, req.size)


def release_control(handle: Handle) -> None:
    if handle.session is not None:
        handle.session.close(handle)


def write_control(req: Request, node: Node, data: bytes) -> int:
    control = req.state.control
    if control is None:  # a mount without a control surface (a test's) refuses writes
        raise MachineError(errno.EINVAL, "no control surface")
    return control.write(req, data)


def read_query(req: Request, node: Node) -> bytes:
    control = req.state.control
    return b"" if control is None else control.read(req, req.size, query=True)


def write_query(req: Request, node: Node, data: bytes) -> int:
    control = req.state.control
    if control is None:
        raise MachineError(errno.EINVAL, "no control surface")
    return control.write(req, data, query=True)


def read_dmesg(req: Request, node: Node) -> bytes:
    """The log's text as it was when the file was opened, made once per open: a read costs what it returns
    (the kernel's syslog reads likewise do not rebuild the buffer).  A comm's bytes come as they were."""
    h = req.handle
    if h is None:
        return req.machine.log.text().encode("utf-8", "surrogateescape")
    if h.session is None:
        h.session = req.machine.log.text().encode("utf-8", "surrogateescape")
    return h.session


# ------------------------------------------------------------------------- /sys/vm


def _sysctl_row(name: str) -> Row:
    """One int of /proc/sys/vm (kernel/sysctl.c vm_table): mode 0644, read and written by the era's
    proc_dointvec handlers, which look at the file position themselves."""

    def read(req: Request, node: Node) -> bytes:
        return req.machine.read_sysctl(name, req.offset, req.size)

    def write(req: Request, node: Node, data: bytes) -> int:
        return req.machine.write_sysctl(name, data, req.offset)

    return REG(name, 0o644, read, write, positioned=True)


SYS_VM.extend(_sysctl_row(n) for n in VM_SYSCTLS)
SYS.add(DIR("vm", 0o555, SYS_VM, host="sys/vm"))

FAKEPROC.extend([
    REG("control", 0o600, read_control, write_control, positioned=True, release=release_control),
    # the same protocol for every user, questions only (control.py QUERIES)
    REG("query", 0o666, read_query, write_query, positioned=True, release=release_control),
    REG("dmesg", 0o444, read_dmesg),
])

ROOT.extend([
    REG("meminfo", 0o444, read_meminfo, companion=True),
    REG("stat", 0o444, read_proc_stat, companion=True),
    REG("uptime", 0o444, read_uptime, companion=True),
    REG("loadavg", 0o444, read_loadavg, companion=True),
    REG("cpuinfo", 0o444, read_cpuinfo, companion=True),  # procps's stat library needs it (see procfiles)
    REG("version", 0o444, read_version, companion=True),
    REG("sysrq-trigger", 0o200, None, write_sysrq),
    DIR("fakeproc", 0o555, FAKEPROC, settable=frozenset({"times"})),
    DIR("sys", 0o555, SYS, host="sys"),
    LNK("self", link_self, reality=True),
    LNK("thread-self", link_thread_self, reality=True),
])
