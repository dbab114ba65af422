"""The control surface: executes the verbs of ``verbs.py`` against the machine.

Every line written to ``MOUNTPOINT/fakeproc/control`` runs here, so a plain shell can do everything
the CLI does::

    exec 3<>mountpoint/fakeproc/control; echo 'fork 400' >&3; cat <&3

The protocol, per open file (:class:`Session`): what is written is cut into lines at ``\n`` only,
whatever pieces the kernel hands over.  FUSE passes a large ``write()`` on in pieces of at most 128 KiB
(``max_write``), each but the last ending at a page boundary of the caller's buffer, so at least
128 KiB - 4095 bytes long: a piece that long keeps a line it ends inside until the rest comes; a
shorter one is the end of its ``write()``, and its last line runs even without a newline (as one
``echo -n`` is one command); what is left when the file is closed runs then.  Each line runs once.  The replies of every
line a file ran since it last read are what it reads, from where its last write left the file
position; a failed write answers with the command's errno and leaves its error message to read.  A
file that wrote nothing reads the last reply given (``echo 'tick 1h' > control; cat control``).

``fakeproc/query`` (mode 0666) speaks the same protocol for anyone who can reach the mount, and answers
only the questions (:data:`QUERIES`: ``ps``, ``explain``, ``oom --dry-run``, ``dmesg``, ``events``,
``info``, ``sysctl`` without a value, ``clock`` without a mode, ``help``); anything that would change the
machine, or write a file as the daemon (``save``), is EPERM there.  The control file stays the mounter's.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shlex
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .machine import Caller, Machine, MachineError
from .machine.explain import explain, rank
from .machine.scenario import ScenarioError, dump_scenario, write_atomically
from .units import format_clock, format_size
from .verbs import UsageError, build_parser, format_ps

if TYPE_CHECKING:
    from .fs.core import Handle, Request

#: the longest line the control file takes (a 1 MB ``fork 1 --comm ...`` fits); longer is EINVAL
MAX_LINE = 4 << 20
#: the shortest piece of a write() that FUSE may follow with another: 128 KiB (max_write, 32 pages)
#: less what a buffer not aligned to a page lacks of its first page
LONGEST_PIECE = 128 * 1024
SHORTEST_SPLIT_PIECE = LONGEST_PIECE - 4096 + 1


#: the verbs the query file answers (and the forms of changing verbs that change nothing: Control._only_reads)
QUERIES = frozenset({"ps", "explain", "dmesg", "events", "info"})


class Session:
    """One open control file: the start of a line not yet complete, and the replies to read."""

    __slots__ = ("control", "pending", "reply", "reply_base", "read_since", "query")

    def __init__(self, control: Control, query: bool = False) -> None:
        self.control = control
        self.query = query  # the query file: questions only
        self.pending = b""
        self.reply: bytes | None = None  # None: this file wrote nothing yet
        self.reply_base = 0  # the file position at which the reply starts
        self.read_since = True  # read since its last write: the next write's replies start afresh

    def close(self, handle: Handle) -> None:
        """close(): a last line without a newline runs now (its reply has no reader)."""
        if self.pending:
            pending, self.pending = self.pending, b""
            self.control.run_lines(None, [pending], self.query)


class Control:
    """Executes control lines against a machine (the daemon end)."""

    #: seconds ``save`` waits for its file to be written (see do_save)
    SAVE_TIMEOUT = 10.0

    #: the verbs that still answer on a machine that panicked (a crash dump to look at): the questions, saving
    #: it, and starting it again
    READ_ONLY = QUERIES | {"save", "reboot"}

    def __init__(self, machine: Machine, info: Callable[[], dict[str, object]] | None = None,
                 reboot: Callable[[], str] | None = None) -> None:
        self.machine = machine
        self.parser = build_parser()
        self.info = info or (lambda: {})
        #: ``reboot``: the daemon's own (a mount's machine starts again from its scenario); None in run mode
        self.reboot = reboot
        self.last_reply = b""
        #: what each verb of verbs.build_parser() runs
        self.verbs: dict[str, Callable[[Request | None, argparse.Namespace], str]] = {
            "fork": self.do_fork, "vfork": self.do_vfork, "clone": self.do_clone, "thread": self.do_thread,
            "exec": self.do_exec, "exit": self.do_exit, "grow": self.do_grow, "shrink": self.do_shrink,
            "mem": self.do_mem, "set": self.do_set, "cpu": self.do_cpu, "tick": self.do_tick,
            "alloc": self.do_alloc, "clock": self.do_clock, "events": self.do_events, "oom": self.do_oom,
            "explain": self.do_explain, "dmesg": self.do_dmesg, "ps": self.do_ps, "info": self.do_info,
            "save": self.do_save, "sysctl": self.do_sysctl, "reboot": self.do_reboot,
        }

    # ------------------------------------------------------------ the file protocol

    def write(self, req: Request, data: bytes, query: bool = False) -> int:
        """A WRITE of the control file (of the query file: ``query``): run its complete lines, keep the rest
        for the next piece."""
        h = req.handle
        assert h is not None
        s = h.session = h.session or Session(self, query)
        if s.read_since:
            s.reply, s.read_since = b"", False
        lines: list[bytes | None] = list((s.pending + data).split(b"\n"))
        s.pending = lines.pop() or b""
        if len(data) < SHORTEST_SPLIT_PIECE and s.pending:  # the end of the write(): its last line runs
            lines.append(s.pending)
            s.pending = b""
        if len(s.pending) > MAX_LINE:
            s.pending = b""
            lines.append(None)  # too long: refused below
        reply, err = self.run_lines(req, lines, s.query)
        s.reply = (s.reply or b"") + reply
        self.last_reply = s.reply
        if err:
            s.pending = b""  # the write failed: what it brought is not kept
            s.reply_base = req.offset  # a failed write leaves the file position where it was
            raise MachineError(err, reply.decode(errors="replace").strip())
        s.reply_base = req.offset + len(data)
        return len(data)

    def read(self, req: Request, size: int, query: bool = False) -> bytes:
        """The replies to this file's lines, from where its last write left the file position; for a control
        file that wrote nothing, the last reply given (a query file that asked nothing reads nothing: the
        mounter's replies are not everyone's)."""
        h = req.handle
        s = h.session if h is not None else None
        if s is None or s.reply is None:
            return b"" if query else self.last_reply[req.offset:req.offset + size]
        s.read_since = True
        start = max(0, req.offset - s.reply_base)
        return s.reply[start:start + size]  # what is asked for, not the rest of a long reply each time

    def run_lines(self, req: Request | None, lines: list[bytes | None], query: bool = False) -> tuple[bytes, int]:
        """Run each line (``query``: questions only); stop at the first error.  Returns (reply, errno)."""
        out: list[str] = []
        for raw in lines:
            try:
                if raw is None:
                    raise UsageError(f"a control line is at most {MAX_LINE} bytes")
                try:
                    line = raw.decode()
                except UnicodeDecodeError:
                    raise UsageError("commands are UTF-8 text") from None
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                out.append(self.run_line(req, line, query))
            except UsageError as e:
                out.append(f"error: {e}".rstrip() + "\n")
                return "".join(out).encode("utf-8", "surrogateescape"), errno.EINVAL
            except MachineError as e:
                out.append(f"error: {e}\n")
                return "".join(out).encode("utf-8", "surrogateescape"), e.errno
        return "".join(out).encode("utf-8", "surrogateescape"), 0

    def run_line(self, req: Request | None, line: str, query: bool = False) -> str:
        try:
            # shlex reads a character at a time: only a line with quoting needs it (a 1 MB name is split
            # in a millisecond, not in seconds under the model's lock)
            argv = shlex.split(line) if any(c in line for c in "'\"\\") else line.split()
        except ValueError as e:
            raise UsageError(str(e)) from None
        if argv and argv[0] in ("-h", "--help", "help"):
            return self.parser.format_help()
        if "-h" in argv or "--help" in argv:
            return self.parser.format_help()
        a = self.parser.parse_args(argv)
        if query and not is_question(a):
            raise MachineError(errno.EPERM, f"{a.verb}: fakeproc/query only answers questions (ps, explain, oom "
                                            "--dry-run, dmesg, events, info, sysctl NAME); changing the machine "
                                            "goes through fakeproc/control, its mounter's")
        if a.verb not in self.READ_ONLY and not self._only_reads(a):
            self.machine.halt.check()  # a panicked machine runs nothing until `reboot` (machine/halt.py)
        return self.verbs[a.verb](req, a)

    @staticmethod
    def _only_reads(a: argparse.Namespace) -> bool:
        """The forms of a changing verb that change nothing: ``oom --dry-run``, ``clock``, ``sysctl [NAME]``."""
        if a.verb == "oom":
            return bool(a.dry_run)
        if a.verb == "clock":
            return a.mode is None
        if a.verb == "sysctl":
            return a.value is None
        return False

    # ------------------------------------------------------------------ verbs

    def do_fork(self, req: Request | None, a: argparse.Namespace) -> str:
        return f"{self.machine.fork(a.ppid, uid=a.uid, gid=a.gid, comm=a.comm).tid}\n"

    def do_vfork(self, req: Request | None, a: argparse.Namespace) -> str:
        return f"{self.machine.fork(a.ppid, comm=a.comm, vfork=True).tid}\n"

    def do_clone(self, req: Request | None, a: argparse.Namespace) -> str:
        return f"{self.machine.fork(a.ppid, comm=a.comm, share_vm=True).tid}\n"

    def do_thread(self, req: Request | None, a: argparse.Namespace) -> str:
        return f"{self.machine.clone_thread(a.pid).tid}\n"

    def do_exec(self, req: Request | None, a: argparse.Namespace) -> str:
        t = self.machine.exec(a.pid, a.comm, vm=a.vm, rss=a.rss)
        return f"{t.tgid} is now {t.comm}\n"

    def do_exit(self, req: Request | None, a: argparse.Namespace) -> str:
        gone = self.machine.exit(a.pid)
        return "exited: " + " ".join(str(t.tid) for t in gone) + "\n"

    def _mem_line(self, pid: int) -> str:
        mm = self.machine.process(pid).mm
        assert mm is not None
        return f"{pid}: vm {mm.total_vm * 4}kB rss {mm.rss * 4}kB swap {mm.swap * 4}kB\n"

    def do_grow(self, req: Request | None, a: argparse.Namespace) -> str:
        self.machine.grow(a.pid, a.size)
        return self._mem_line(a.pid)

    def do_shrink(self, req: Request | None, a: argparse.Namespace) -> str:
        self.machine.grow(a.pid, -a.size)
        return self._mem_line(a.pid)

    def do_mem(self, req: Request | None, a: argparse.Namespace) -> str:
        fields = {"total_vm": a.vm, "rss_anon": a.rss, "rss_file": a.file_rss, "rss_shmem": a.shmem_rss,
                  "swap": a.swap}
        pages = {k: v // 4096 for k, v in fields.items() if v is not None}
        if a.pgtables is not None:
            pages["pgtables"] = a.pgtables
        self.machine.set_memory(a.pid, **pages)
        return self._mem_line(a.pid)

    def do_set(self, req: Request | None, a: argparse.Namespace) -> str:
        t = self.machine.set_attrs(a.pid, nice=a.nice, uid=a.uid, gid=a.gid, comm=a.comm, caps=a.caps,
                                   swapoff=None if a.swapoff is None else a.swapoff == "on", start=a.start)
        return f"{t.tgid}: uid {t.uid} gid {t.gid} nice {t.nice} caps {t.caps:#x} comm {t.comm}\n"

    def do_cpu(self, req: Request | None, a: argparse.Namespace) -> str:
        t = self.machine.charge_cpu(a.tid, a.seconds, a.system)
        return f"{t.tid}: utime {t.utime} stime {t.stime} jiffies\n"

    def do_tick(self, req: Request | None, a: argparse.Namespace) -> str:
        m = self.machine
        before = m.log.printed
        m.note("tick", seconds=a.seconds)
        uptime = m.tick(a.seconds)
        return "".join(line + "\n" for line in m.log.since(before)) + f"uptime {uptime:.2f}s\n"

    def do_alloc(self, req: Request | None, a: argparse.Namespace) -> str:
        t = self.machine.set_alloc_rate(a.pid, a.rate)
        free_ram, free_swap = self.machine.free_pages()
        return (f"{t.tgid} ({t.comm}) allocates {format_size(a.rate)}/s; free: RAM {free_ram * 4}kB, "
                f"swap {free_swap * 4}kB\n")

    def do_clock(self, req: Request | None, a: argparse.Namespace) -> str:
        m = self.machine
        if a.mode is not None and a.mode != m.clock_scale:
            m.clock_scale = a.mode
            m.note("clock", mode=format_clock(a.mode))
        return f"clock {format_clock(m.clock_scale)}, uptime {m.uptime:.2f}s\n"

    def do_events(self, req: Request | None, a: argparse.Namespace) -> str:
        return "".join(json.dumps(ev) + "\n" for ev in self.machine.journal.since(a.since))

    def do_oom(self, req: Request | None, a: argparse.Namespace) -> str:
        m = self.machine
        if a.as_pid is not None:
            t = m.task(a.as_pid)
            current, mems = m.caller_of(t), t.mems
        elif req is not None:
            current, mems = req.caller(), None
        else:
            current, mems = Caller(0, 0, "fakeproc"), None
        if a.dry_run:
            return self._dry_run(mems)
        before = m.log.printed
        result = m.out_of_memory(current, current_mems=mems)
        lines = m.log.since(before)
        lines.append("killed: " + (" ".join(str(t.tid) for t in result.killed if t.is_leader) or "nothing"))
        return "\n".join(lines) + "\n"

    def _dry_run(self, mems: frozenset[int] | None) -> str:
        m = self.machine
        for o in m.observers:  # run mode: every real process is a candidate
            o.before_oom()
        ranked, chosen = rank(m, mems)
        unit = "badness" if m.era.scoring == "modern" else "points"
        out = [f"{'PID':>7} {'TID':>7} {unit.upper():>20}  COMM"]
        order = sorted((c for c in ranked if c.skipped is None), key=lambda c: -(c.points or 0)) + [
            c for c in ranked if c.skipped is not None]
        for c in order:
            value = f"{c.points:20d}" if c.skipped is None else f"{'skipped':>20}"
            mark = "  <- would be chosen" if c.task is chosen else ""
            why = f" ({c.skipped})" if c.skipped else ""
            out.append(f"{c.task.tgid:7d} {c.task.tid:7d} {value}  {c.task.comm}{why}{mark}")
        if chosen is None:
            out.append("nobody is killable: the kernel would panic")
        return "\n".join(out) + "\n"

    def do_explain(self, req: Request | None, a: argparse.Namespace) -> str:
        m = self.machine
        for o in m.observers:  # run and shell mode: a real process is explained as it is now
            o.before_oom()
        mems = m.task(a.as_pid).mems if a.as_pid is not None else None
        t = m.task(a.pid)
        steps, score = explain(m, a.pid, mems)
        formula = ("oom_badness(): rss + swap + page tables + oom_score_adj * totalpages / 1000"
                   if m.era.scoring == "modern" else "badness() of mm/oom_kill.c")
        out = [f"{t.tgid} ({t.comm}), kernel {m.era.name}: {formula}"]
        for s in steps:
            out.append(f"  {s.what:<75} {'' if s.points is None else s.points}")
        out.append(f"oom_score {score}")
        return "\n".join(out) + "\n"

    def do_dmesg(self, req: Request | None, a: argparse.Namespace) -> str:
        return self.machine.log.text()

    def do_ps(self, req: Request | None, a: argparse.Namespace) -> str:
        m = self.machine
        for o in m.observers:  # run mode: the run's processes as they are now, the exited ones gone
            o.before_oom()
        rows = [m.describe(p) for p in m.iter_processes()]
        if a.json:
            return "".join(json.dumps(r) + "\n" for r in rows)
        return format_ps(rows, m.era.has_score_adj)

    def do_info(self, req: Request | None, a: argparse.Namespace) -> str:
        m = self.machine
        info = {"kernel": m.era.name, "ram_kib": m.ram_pages * 4, "swap_kib": m.swap_pages * 4, "hz": m.hz,
                "uptime": f"{m.uptime:.2f}", "clock": format_clock(m.clock_scale), "processes": len(m.processes),
                "threads": len(m.tasks)}
        info.update(self.info())
        return "".join(f"{k}: {v}\n" for k, v in info.items())

    def do_sysctl(self, req: Request | None, a: argparse.Namespace) -> str:
        m = self.machine
        if a.name is None:
            return "".join(f"vm.{k} = {v}\n" for k, v in sorted(m.sysctl.values.items()))
        name = a.name.removeprefix("vm.").replace("/", ".").removeprefix("vm.")
        if name not in m.sysctl.values:
            raise MachineError(errno.ENOENT, f"no such sysctl: {a.name} (known: "
                                             f"{', '.join('vm.' + k for k in sorted(m.sysctl.values))})")
        if a.value is not None:
            m.set_sysctl(name, a.value)
        return f"vm.{name} = {m.sysctl[name]}\n"

    def do_reboot(self, req: Request | None, a: argparse.Namespace) -> str:
        if self.reboot is None:
            raise MachineError(errno.EOPNOTSUPP, "this machine cannot reboot: a run's or a shell's machine stands "
                                                 "for real processes (end the run and start another)")
        return self.reboot()

    def do_save(self, req: Request | None, a: argparse.Namespace) -> str:
        """Write the machine to a file, atomically.

        The daemon serves its mount from one thread, which is the one running
        this verb: a file inside the mount would wait for that thread forever.
        Paths under the mount point are refused by name; whatever reaches it
        another way (a symbolic link) is written from a helper thread, given up
        on after SAVE_TIMEOUT with EDEADLK, and fails once this request is done.
        """
        path = a.file
        if not os.path.isabs(path):
            raise MachineError(errno.EINVAL, f"{path}: FILE must be an absolute path (the daemon's working "
                                             "directory is not yours; `fakeproc save FILE` makes it absolute)")
        path = os.path.normpath(path)
        mountpoint = str(self.info().get("mountpoint") or "")
        if mountpoint and (path == mountpoint or path.startswith(mountpoint.rstrip("/") + "/")):
            raise MachineError(errno.EINVAL, f"{path} is inside this mount ({mountpoint}): save it elsewhere")
        try:
            text = dump_scenario(self.machine)
        except ScenarioError as e:
            raise MachineError(errno.EINVAL, str(e)) from None
        failure: list[OSError] = []

        def write() -> None:
            try:
                write_atomically(path, text)
            except OSError as e:
                failure.append(e)

        writer = threading.Thread(target=write, name="fakeproc-save", daemon=True)
        writer.start()
        writer.join(self.SAVE_TIMEOUT)
        if writer.is_alive():
            raise MachineError(errno.EDEADLK, f"{path}: not written after {self.SAVE_TIMEOUT:g}s (does it lead "
                                              "into this mount?)")
        if failure:
            err = failure[0]
            raise MachineError(err.errno or errno.EIO, f"{path}: {err.strerror or err}")
        m = self.machine
        return f"saved {len(m.processes)} processes ({len(m.tasks)} threads) to {path}\n"


def is_question(a: argparse.Namespace) -> bool:
    """A parsed control line the query file answers: one of QUERIES, or a form of a changing verb that changes
    nothing (``oom --dry-run``, ``clock``, ``sysctl NAME``)."""
    return a.verb in QUERIES or Control._only_reads(a)
