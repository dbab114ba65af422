"""The control verbs: one argparse definition for both ends of the control file.

The daemon parses each line written to ``MOUNTPOINT/fakeproc/control`` with
it, and ``fakeproc ctl`` uses it to check arguments and print ``--help``
before sending the line.  Light on imports: ``fakeproc ctl`` runs it once
per command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn, TypeVar

from .kernel.caps import parse_caps
from .units import parse_clock, parse_duration, parse_rate, parse_size

T = TypeVar("T")


class UsageError(Exception):
    """A control line that does not parse; the message is argparse's."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or "")


def _argument(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse ``type=`` from one of our parsers: its ValueError becomes argparse's usage error."""
    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = parse.__name__.removeprefix("parse_")  # argparse names it in "invalid size value"
    return convert


_size = _argument(parse_size)
_duration = _argument(parse_duration)
_rate = _argument(parse_rate)
_clock = _argument(parse_clock)
_caps = _argument(parse_caps)


def build_parser(prog: str = "fakeproc ctl") -> argparse.ArgumentParser:
    """The verbs, their arguments and their help (shared by daemon and CLI)."""
    p = _Parser(prog=prog, description="Change the simulated machine of a fakeproc mount.",
                epilog="SIZE: bytes, or with k/M/G (binary). SECONDS: 30, 90s, 15m, 2h, 1d2h.")
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help)

    v = verb("fork", "fork() a child of PPID, a process or one of its threads (a child forked by a thread "
                     "hangs off that thread, as in the kernel); prints the new pid as the last line")
    v.add_argument("ppid", type=int, metavar="PPID")
    v.add_argument("--uid", type=int, help="the child setuid()s to UID (dropping capabilities)")
    v.add_argument("--gid", type=int, help="the child's gid (default: its uid's)")
    v.add_argument("--comm", help="the child's name (default: the parent's, as after fork)")
    v = verb("vfork", "vfork() a child of PPID that shares its address space until exec/exit; "
                      "prints the new pid")
    v.add_argument("ppid", type=int, metavar="PPID")
    v.add_argument("--comm", help="the child's name (default: the parent's)")
    v = verb("clone", "clone(CLONE_VM) a child of PPID: a separate process sharing its address space "
                      "(6.x shares oom_score_adj writes with it); prints the new pid")
    v.add_argument("ppid", type=int, metavar="PPID")
    v.add_argument("--comm", help="the child's name (default: the parent's)")
    v = verb("thread", "start a new thread in process PID; prints the new tid")
    v.add_argument("pid", type=int, metavar="PID")
    v = verb("exec", "execve() COMM in process PID: new address space, other threads die")
    v.add_argument("pid", type=int, metavar="PID")
    v.add_argument("comm", metavar="COMM")
    v.add_argument("--vm", type=_size, default=4 << 20, metavar="SIZE", help="new address space (default 4M)")
    v.add_argument("--rss", type=_size, default=1 << 20, metavar="SIZE", help="resident part (default 1M)")
    v = verb("exit", "exit_group() of process PID, or exit() of one thread when given a tid")
    v.add_argument("pid", type=int, metavar="PID")
    v = verb("grow", "process PID maps and touches SIZE more memory")
    v.add_argument("pid", type=int, metavar="PID")
    v.add_argument("size", type=_size, metavar="SIZE")
    v = verb("shrink", "process PID unmaps SIZE of memory")
    v.add_argument("pid", type=int, metavar="PID")
    v.add_argument("size", type=_size, metavar="SIZE")
    v = verb("mem", "set the memory counters of process PID's address space")
    v.add_argument("pid", type=int, metavar="PID")
    for name, what in (("vm", "total_vm"), ("rss", "anonymous resident memory"),
                       ("file-rss", "file-backed resident memory"), ("shmem-rss", "shared memory"),
                       ("swap", "swapped-out memory"), ("pgtables", "page tables")):
        v.add_argument(f"--{name}", type=_size, metavar="SIZE", help=what)
    v = verb("set", "set other attributes of process PID")
    v.add_argument("pid", type=int, metavar="PID")
    v.add_argument("--nice", type=int, help="nice value (-20..19)")
    v.add_argument("--uid", type=int, help="setresuid() to UID: leaving uid 0 drops every capability")
    v.add_argument("--gid", type=int, help="setresgid() to GID")
    v.add_argument("--comm", help="the process's name (prctl(PR_SET_NAME): cut to 15 bytes)")
    v.add_argument("--caps", type=_caps, metavar="LIST",
                   help="effective capabilities: all, none, or e.g. sys_admin,sys_resource")
    v.add_argument("--swapoff", choices=("on", "off"), help="PF_OOM_ORIGIN: the process runs swapoff")
    v.add_argument("--start", type=_duration, metavar="SECONDS", help="start time, seconds since boot")
    v = verb("cpu", "charge CPU time to thread TID")
    v.add_argument("tid", type=int, metavar="TID")
    v.add_argument("seconds", type=_duration, metavar="SECONDS")
    v.add_argument("--system", action="store_true", help="as system time (default: user time)")
    v = verb("tick", "advance the simulated clock; processes with an allocation rate allocate, and the OOM "
                     "killer fires by itself when RAM and swap run out (its report is printed)")
    v.add_argument("seconds", type=_duration, metavar="SECONDS")
    v = verb("alloc", "process PID allocates RATE (bytes per simulated second, e.g. 16M or 16M/s) from now on; "
                      "0 stops it")
    v.add_argument("pid", type=int, metavar="PID")
    v.add_argument("rate", type=_rate, metavar="RATE")
    v = verb("clock", "how the simulated clock runs: stepped (only tick moves it), real (one simulated second "
                      "per second), or a speed such as 60x; without an argument, print it")
    v.add_argument("mode", type=_clock, nargs="?", metavar="stepped|real|Nx")
    v = verb("events", "print the change stream as JSON lines: writes, forks, execs, exits, kills, OOM calls, "
                       "memory and clock changes, kernel log lines")
    v.add_argument("--since", type=int, default=0, metavar="SEQ", help="only events numbered after SEQ")
    v = verb("oom", "run the OOM killer once and print what it did")
    v.add_argument("--as", dest="as_pid", type=int, metavar="PID",
                   help="the allocating task named in the report (default: the caller)")
    v.add_argument("--dry-run", action="store_true",
                   help="kill nothing: list the candidates in the killer's order with their points, or why "
                        "each was skipped, and the one it would choose")
    v = verb("explain", "show each factor of PID's oom_score for this era: the values that went in, each step "
                        "of the formula, the result")
    v.add_argument("pid", type=int, metavar="PID")
    v.add_argument("--as", dest="as_pid", type=int, metavar="PID",
                   help="the allocating task, whose cpuset nodes the legacy formula compares (default: none)")
    verb("dmesg", "print the kernel log")
    v = verb("ps", "list the processes with uid, comm, oom_adj, oom_score and memory")
    v.add_argument("--json", action="store_true", help="one JSON object per process")
    verb("info", "describe the machine: kernel era, memory, clock, daemon")
    v = verb("sysctl", "read or set the OOM killer's sysctls (/proc/sys/vm: panic_on_oom, oom_kill_allocating_task, "
                       "oom_dump_tasks, overcommit_memory, overcommit_ratio) in the kernel's ranges; without "
                       "NAME, list them")
    v.add_argument("name", nargs="?", metavar="NAME", help="e.g. panic_on_oom or vm.panic_on_oom")
    v.add_argument("value", nargs="?", type=int, metavar="VALUE", help="the new value (an int)")
    verb("reboot", "start the machine again from its scenario (after a kernel panic, nothing else runs on it)")
    v = verb("save", "write the machine to FILE as a scenario that fakeproc mount --scenario FILE loads again "
                     "(replaced atomically: a temporary file, then rename)")
    v.add_argument("file", metavar="FILE", help="an absolute path, as the daemon sees it (not inside the mount)")
    return p


def printable(text: str) -> str:
    """What a terminal is shown of a name: as procps's escape_str(), every control character (ESC, BEL,
    NUL...) and every byte that is not UTF-8 becomes '?', so a name set with prctl() cannot drive the
    terminal that lists it."""
    return "".join(c if (c.isprintable() or c in "\t\n") and not 0xD800 <= ord(c) <= 0xDFFF else "?" for c in text)


def format_ps(rows: list[dict[str, object]], modern: bool) -> str:
    """The table of ``fakeproc ps``; an OOM_SCORE_ADJ column when the era has one (``modern``)."""
    out = ["  PID  PPID   UID THR OOM_ADJ" + (" SCORE_ADJ" if modern else "") + "  OOM_SCORE      VSZ      RSS COMM"]
    for r in rows:
        adj = f" {r['oom_score_adj']:9d}" if modern else ""
        line = (f"{r['pid']:5d} {r['ppid']:5d} {r['uid']:5d} {r['threads']:3d} {r['oom_adj']:7d}{adj} "
                f"{r['oom_score']:10d} {r['vm_kib']:8d} {r['rss_kib']:8d} {printable(str(r['comm']))}")
        if r["flags"]:
            line += f" [{r['flags']}]"
        out.append(line)
    return "\n".join(out) + "\n"
