"""``fakeproc``: the command line (mount, umount, ctl, ps, log, save, run, shell, explain, oom)."""

from __future__ import annotations

import argparse
import errno
import os
import sys

from . import __version__
from .client import ControlError, ask, send
from .kernel import DEFAULT_ERA, ERA_NAMES

DEFAULT_MOUNTPOINT = "mountpoint"
#: the mount the client commands (ctl, ps, explain, oom, log, save) talk to by default: $FAKEPROC_MOUNT (inside
#: `fakeproc run` and `fakeproc shell`, /proc), else ./mountpoint
CLIENT_MOUNTPOINT = os.environ.get("FAKEPROC_MOUNT") or DEFAULT_MOUNTPOINT


def _print_reply(text: str) -> None:
    """A daemon's reply, on stdout: names in it (a comm set with prctl()) cannot drive the terminal."""
    from .verbs import printable

    sys.stdout.write(printable(text))


def _die(msg: str, code: int = 1) -> int:
    print(f"fakeproc: {msg}", file=sys.stderr)
    return code


def _add_privilege(p: argparse.ArgumentParser) -> None:
    p.add_argument("--privilege", choices=("owner", "caps"), default="owner",
                   help="who holds CAP_SYS_RESOURCE when writing: 'owner' (default) = callers with uid 0 or "
                        "the uid that mounted; 'caps' = each caller's real effective capabilities, read from "
                        "the kernel at the time of the write")


def _add_clock(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clock", metavar="stepped|real|Nx",
                   help="how the simulated clock runs: stepped (only `fakeproc ctl tick` moves it), real, or a "
                        "speed such as 60x (60 simulated seconds per second); processes with an allocation "
                        "rate allocate as it runs (default: the scenario's, else stepped)")


def _apply_clock(machine: object, clock: str | None) -> str | None:
    """Set ``--clock`` on a loaded machine; an error message if it does not parse."""
    from .units import parse_clock

    if clock is None:
        return None
    try:
        machine.clock_scale = parse_clock(clock)  # type: ignore[attr-defined]
    except ValueError as e:
        return str(e)
    return None


#: the -m option of the commands that talk to a running mount
MOUNTPOINT_HELP = "the mount to talk to (default: $FAKEPROC_MOUNT, else ./mountpoint)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fakeproc",
        description="A fake /proc for the Linux OOM killer: oom_adj and oom_score of a simulated machine, "
                    "served over FUSE, with the kernel's own rules era by era.")
    p.add_argument("--version", action="version", version=f"fakeproc {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    m = sub.add_parser(
        "mount", help="mount a simulated machine (foreground unless --background)",
        description="Mount a simulated machine at MOUNTPOINT and serve it until Ctrl-C or SIGTERM, which "
                    "unmount cleanly. A dead mount left there by a killed daemon is cleared first.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="files: MOUNTPOINT/PID/{oom_adj,oom_score}, MOUNTPOINT/PID/task/TID/..., "
               "MOUNTPOINT/sysrq-trigger (write f: run the OOM killer), "
               "MOUNTPOINT/fakeproc/control (see: fakeproc ctl --help), MOUNTPOINT/fakeproc/dmesg")
    m.add_argument("mountpoint", nargs="?", default=DEFAULT_MOUNTPOINT,
                   help="where to mount (default: ./mountpoint, created if missing)")
    m.add_argument("--kernel", choices=ERA_NAMES, default=None, metavar="ERA",
                   help=f"kernel era whose rules to follow: {', '.join(ERA_NAMES)} (default: the era a saved "
                        f"--scenario was saved under, else {DEFAULT_ERA})")
    _add_privilege(m)
    m.add_argument("--scenario", metavar="FILE",
                   help="TOML file describing the machine (RAM, swap, processes); default: the embedded "
                        "story of the 2009 vfork regression (see docs/scenarios.md)")
    m.add_argument("--save-on-exit", metavar="FILE",
                   help="when the mount ends cleanly (fakeproc umount, SIGINT, SIGTERM, SIGHUP), save the machine "
                        "to FILE, which --scenario FILE loads again (a SIGKILL'd daemon saves nothing)")
    _add_clock(m)
    m.add_argument("--background", action="store_true",
                   help="start the daemon in the background and return once the mount answers")
    m.add_argument("--log", metavar="FILE", help="with --background: the daemon's log file "
                   "(default: a file in the temporary directory, printed)")
    m.add_argument("-v", "--verbose", action="store_true", help="log every FUSE-level error too")
    m.add_argument("--fuse-backend", choices=("raw", "fusepy"), default=None,
                   help="who speaks FUSE: raw (the protocol over /dev/fuse in Python; mounts with mount(2) as root "
                        "and through fusermount3 as any other user) or fusepy (libfuse 2); default: $FAKEPROC_FUSE, "
                        "else raw")

    u = sub.add_parser("umount", aliases=["unmount"], help="unmount (also clears a dead daemon's mount)",
                       description="Unmount a fakeproc mount; the daemon then exits. A mount left by a "
                                   "daemon that was killed ('Transport endpoint is not connected') is "
                                   "cleared as well.")
    u.add_argument("mountpoint", nargs="?", default=DEFAULT_MOUNTPOINT, help="the mount (default: ./mountpoint)")

    c = sub.add_parser("ctl", help="change the simulated machine (fork, vfork, exec, exit, oom, ...)",
                       description="Send one command to a mount's control file (MOUNTPOINT/fakeproc/control) "
                                   "and print the reply. VERB --help for each verb.",
                       add_help=False)
    c.add_argument("-m", "--mountpoint", default=CLIENT_MOUNTPOINT, help=MOUNTPOINT_HELP)
    c.add_argument("words", nargs=argparse.REMAINDER, metavar="VERB ...",
                   help="a control verb and its arguments (fakeproc ctl --help lists them)")

    r = sub.add_parser(
        "run", help="run a real command with /proc served by the OOM model (needs root)",
        description="Run CMD in a private mount namespace whose /proc is a fakeproc mount: the OOM files of every "
                    "real process (oom_adj, oom_score, oom_score_adj as the era has them) come from the model, "
                    "everything else passes through to the host's /proc. Processes enter the model when first "
                    "named, inheriting their parent's value as the era says for fork, vfork, threads and exec. "
                    "Exits with CMD's status; SIGINT, SIGTERM and SIGHUP are forwarded to CMD; no mount and no "
                    "process survives the run.",
        epilog="inside: echo f > /proc/sysrq-trigger runs the model's OOM killer; /proc/fakeproc/control takes "
               "the ctl verbs and /proc/fakeproc/dmesg is the model's kernel log. From outside: "
               "fakeproc ctl -m PATH ... with --mountpoint PATH; inside, fakeproc ctl needs no -m ($FAKEPROC_MOUNT "
               "is /proc there).")
    r.add_argument("--kernel", choices=ERA_NAMES, default=DEFAULT_ERA, metavar="ERA",
                   help=f"kernel era: {', '.join(ERA_NAMES)} (default {DEFAULT_ERA})")
    _add_privilege(r)
    r.add_argument("--kill", action="store_true",
                   help="the model's OOM victims really receive SIGKILL (default: the model kills them in its "
                        "log and model only; the real processes go on)")
    r.add_argument("--oom-scope", choices=("run", "host"), default="run",
                   help="the OOM killer's candidates: run (default: the run's own processes, as a memory cgroup's "
                        "OOM considers only its tasks, so a test's victim does not depend on what else the machine "
                        "runs) or host (every process of the machine, the global OOM's view)")
    r.add_argument("--mountpoint", metavar="PATH",
                   help="make a symbolic link at PATH to the run's mount, for fakeproc ctl -m PATH from outside "
                        "(root only: the mount exists only in the run's own mount namespace, and the link leads "
                        "into it through the daemon's descriptor); removed when the run ends")
    r.add_argument("-v", "--verbose", action="count", default=0,
                   help="log what the mirror and the supervisor do (-vv: every FUSE request)")
    r.add_argument("cmd", nargs=argparse.REMAINDER, metavar="[--] CMD [ARGS...]", help="the command to run")

    sh = sub.add_parser(
        "shell", help="a shell whose /proc is a simulated machine (ps, top, free see it; needs root)",
        description="Open a shell (or run -c CMD) in a private mount namespace whose /proc is a simulated "
                    "machine: ps, top, pgrep, free and cat /proc/meminfo show the scenario's processes and "
                    "memory. The shell's own processes are mirrored into the machine (children of its init) so "
                    "that procps finds itself. Exits with the shell's status.")
    sh.add_argument("--kernel", choices=ERA_NAMES, default=None, metavar="ERA",
                    help=f"kernel era: {', '.join(ERA_NAMES)} (default: the scenario's, else {DEFAULT_ERA})")
    sh.add_argument("--scenario", metavar="FILE", help="the machine (default: the embedded story)")
    _add_privilege(sh)
    _add_clock(sh)
    sh.add_argument("--mountpoint", metavar="PATH",
                    help="make a symbolic link at PATH to the shell's mount, for fakeproc ctl -m PATH from outside "
                         "(root only); removed when the shell ends")
    sh.add_argument("-c", dest="shell_command", metavar="CMD",
                    help="run CMD with sh -c instead of an interactive shell")
    sh.add_argument("-v", "--verbose", action="count", default=0, help="log what the mirror and the supervisor do")

    e = sub.add_parser("explain", help="show each factor of a process's oom_score",
                       description="Show each factor of PID's oom_score for the mount's era: the values that "
                                   "went in, each step of the kernel's formula, and the result.")
    e.add_argument("-m", "--mountpoint", default=CLIENT_MOUNTPOINT, help=MOUNTPOINT_HELP)
    e.add_argument("pid", type=int, metavar="PID", help="the process (or thread) whose score to explain")
    e.add_argument("--as", dest="as_pid", type=int, metavar="PID",
                   help="the allocating task, whose cpuset nodes the legacy formula compares (default: none)")
    o = sub.add_parser("oom", help="run the OOM killer once (or --dry-run: rank the candidates)",
                       description="Run the simulated OOM killer once and print its report, or with --dry-run "
                                   "list the candidates in its order with their points (or why each was "
                                   "skipped) and the one it would choose, killing nothing.")
    o.add_argument("-m", "--mountpoint", default=CLIENT_MOUNTPOINT, help=MOUNTPOINT_HELP)
    o.add_argument("--dry-run", action="store_true", help="kill nothing; rank the candidates")
    o.add_argument("--as", dest="as_pid", type=int, metavar="PID",
                   help="the allocating task named in the report, whose cpuset the killer compares (default: the "
                        "caller)")

    ps = sub.add_parser("ps", help="list simulated processes with uid, comm, oom_adj, oom_score, memory",
                        description="List the mount's processes: pid, parent, uid, threads, oom_adj (and 6.x's "
                                    "oom_score_adj), oom_score, VSZ and RSS in KiB, comm, and flags such as "
                                    "[kthread] or [vfork-child-of-N]. Works for any user who can reach the mount "
                                    "(through MOUNTPOINT/fakeproc/query).")
    ps.add_argument("-m", "--mountpoint", default=CLIENT_MOUNTPOINT, help=MOUNTPOINT_HELP)
    ps.add_argument("--json", action="store_true", help="one JSON object per line")

    lg = sub.add_parser(
        "log", help="the kernel log and the stream of changes (writes, forks, exits, kills)",
        description="Print the mount's kernel log and every change to its machine, in order: writes to the OOM "
                    "files (with the other processes whose value moved along), forks, vforks, threads, execs, "
                    "exits, OOM calls and kills, memory, allocation-rate, clock and tick changes. Kernel lines "
                    "look as dmesg shows them; changes as '[TIME] @TYPE key=value ...'.",
        epilog="--json prints one object per event: seq (1, 2, ...), time (simulated seconds), type (kernel, write, "
               "fork, vfork, clone, thread, exec, exit, oom, kill, alloc_failed, memory, cpu, alloc, tick, clock, "
               "sysctl, panic, reboot) "
               "and that type's fields. The daemon keeps the last 50,000 events.")
    lg.add_argument("-m", "--mountpoint", default=CLIENT_MOUNTPOINT, help=MOUNTPOINT_HELP)
    lg.add_argument("-f", "--follow", action="store_true",
                    help="keep printing new events as they happen, until the mount goes away or Ctrl-C")
    lg.add_argument("--json", action="store_true", help="one JSON object per line, for scripts and tests")
    lg.add_argument("-k", "--kernel", action="store_true", help="only the kernel log (what dmesg would show)")
    lg.add_argument("--since", type=int, default=0, metavar="SEQ", help="only events numbered after SEQ")

    sv = sub.add_parser("save", help="save a mount's machine to a scenario file (mount --scenario FILE loads it)",
                        description="Write the machine of a running mount to FILE (replaced atomically) as a "
                                    "scenario file: fakeproc mount --scenario FILE serves the same machine again, "
                                    "value for value, under the era it was saved in.")
    sv.add_argument("-m", "--mountpoint", default=CLIENT_MOUNTPOINT, help=MOUNTPOINT_HELP)
    sv.add_argument("file", metavar="FILE", help="where to write it (a relative path is taken from here)")
    return p


def cmd_mount(a: argparse.Namespace) -> int:
    from .machine.scenario import scenario_kernel
    from .mounts import clear_stale, mount_state

    mp = a.mountpoint
    if not mp:
        return _die("the mount point is an empty path", 2)
    if os.path.lexists(mp) and not os.path.isdir(mp):
        return _die(f"{mp} is not a directory (a mount point is one)")
    parent = os.path.dirname(os.path.abspath(mp))
    if not os.path.isdir(parent):
        return _die(f"{parent}: no such directory (fakeproc creates the mount point, not the path to it)")
    saved_under = scenario_kernel(a.scenario)
    if a.kernel is None:
        a.kernel = saved_under or DEFAULT_ERA
    elif saved_under is not None and saved_under != a.kernel:
        print(f"fakeproc: {a.scenario} was saved under --kernel {saved_under}; loading it under {a.kernel} "
              "(values converted as for any scenario)", file=sys.stderr)
    if a.save_on_exit:
        a.save_on_exit = os.path.abspath(a.save_on_exit)
    state = mount_state(mp)
    if state == "stale":
        clear_stale(mp)
        print(f"fakeproc: cleared a dead mount at {mp} (its daemon was gone: "
              "Transport endpoint is not connected)", file=sys.stderr)
        state = mount_state(mp)
    if state == "missing":
        try:
            os.mkdir(mp)
        except FileExistsError:
            pass
        except OSError as e:
            return _die(f"{mp}: {e.strerror}")
    elif state == "fakeproc":
        return _die(f"{mp} is already a fakeproc mount (fakeproc umount {mp} first)")
    elif state == "other":
        return _die(f"something else is mounted at {mp}")
    if a.background:
        return _mount_background(a)
    return _mount_foreground(a)


def _mount_foreground(a: argparse.Namespace) -> int:
    import logging

    from .daemon import Daemon, SaveError
    from .fs.mounting import FuseOptions
    from .fs.privilege import make_privilege
    from .kernel.eras import ERAS
    from .machine import Machine
    from .machine.scenario import ScenarioError, load_scenario
    from .mounts import claim

    logging.basicConfig(level=logging.DEBUG if a.verbose else logging.INFO,
                        format="%(asctime)s fakeproc[%(process)d] %(levelname)s %(message)s", stream=sys.stderr)
    if not a.verbose:
        logging.getLogger("fuse").setLevel(logging.WARNING)
    try:
        claimed = claim(a.mountpoint)  # noqa: F841 - held (open) for the daemon's life
    except OSError as e:
        return _die(e.strerror or str(e))
    try:
        machine = load_scenario(a.scenario, ERAS[a.kernel])
    except ScenarioError as e:
        return _die(f"bad scenario: {e}")
    bad = _apply_clock(machine, a.clock)
    if bad:
        return _die(f"--clock: {bad}", 2)
    scenario = os.path.abspath(a.scenario) if a.scenario else None

    def boot() -> Machine:  # `fakeproc ctl reboot`: the same scenario, era and clock, from the start
        m = load_scenario(scenario, ERAS[a.kernel])
        _apply_clock(m, a.clock)
        return m

    try:
        Daemon(a.mountpoint, machine, make_privilege(a.privilege), save_on_exit=a.save_on_exit,
               fuse=FuseOptions.from_environment(a.fuse_backend), boot=boot).serve()
    except RuntimeError as e:
        return _die(f"mount failed at {a.mountpoint} ({e}): {_why_mount_failed(a.fuse_backend)}")
    except SaveError as e:
        return _die(str(e))
    return 0


def _mount_background(a: argparse.Namespace) -> int:
    """Fork the daemon from this process (no second interpreter to start and no second import: ready
    sooner), in a session of its own, its output in the log; return once the mount answers."""
    import tempfile

    from . import daemon as _daemon  # noqa: F401 - imported once, before the fork, for the child
    from .machine import scenario as _scenario  # noqa: F401
    from .mounts import mount_state, wait_until

    logfile = a.log or tempfile.mktemp(prefix="fakeproc-", suffix=".log")
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the daemon
        code = 1
        try:
            os.setsid()
            out = os.open(logfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # as Popen's close_fds: hold no pipe of the caller
            a.background = False
            code = _mount_foreground(a)
        except BaseException:  # noqa: BLE001 - the log says why; nothing may return into the CLI
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    status: list[int] = []

    def exited() -> bool:
        if not status and os.waitpid(pid, os.WNOHANG)[0] == pid:
            status.append(1)
        return bool(status)

    control = os.path.join(a.mountpoint, "fakeproc", "control")

    def ours() -> bool:
        """The mount answering is this daemon's, not one that won a race for the directory."""
        from .client import ControlError, send

        try:
            info = send(a.mountpoint, ["info"])
        except (ControlError, OSError):
            return False
        return f"daemon_pid: {pid}" in info.splitlines()

    def ready() -> bool:
        return exited() or (mount_state(a.mountpoint) == "fakeproc" and os.path.exists(control) and ours())

    # 20 s, and more for a big scenario (a million processes take minutes to load)
    size = os.path.getsize(a.scenario) if a.scenario and os.path.exists(a.scenario) else 0
    wait_until(ready, timeout=20 + size / 500_000)
    if exited() or not ready():
        with open(logfile, errors="replace") as f:
            tail = f.read()[-4000:]
        said = [line for line in tail.splitlines() if line.startswith("fakeproc: ")]
        if exited() and said:  # the daemon said why it stopped (a bad scenario...): that, once
            sys.stderr.write("\n".join(said) + "\n")
            return 1
        sys.stderr.write(tail)
        if not exited():
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        return _die(f"the daemon did not come up at {a.mountpoint} (log: {logfile})")
    print(f"fakeproc: mounted a {a.kernel} machine at {a.mountpoint} (daemon pid {pid}, log {logfile})")
    return 0


def _why_mount_failed(backend: str | None) -> str:
    """What most likely stopped a mount, checked rather than guessed."""
    import shutil

    from .fs.mounting import FuseOptions

    if not os.path.exists("/dev/fuse"):
        return "there is no /dev/fuse (load the fuse module, or give a container --device /dev/fuse)"
    chosen = FuseOptions.from_environment(backend).backend
    if os.geteuid() != 0 and not os.access("/dev/fuse", os.R_OK | os.W_OK):
        st = os.stat("/dev/fuse")
        return (f"this user may not open /dev/fuse (mode {st.st_mode & 0o777:o}, owner {st.st_uid}:{st.st_gid}); "
                "mount as root, or have /dev/fuse made crw-rw-rw- as most systems have it")
    if os.geteuid() != 0:
        if chosen == "fusepy" and not shutil.which("fusermount"):
            return ("libfuse 2 (--fuse-backend fusepy) mounts as a non-root user through fusermount, which is not "
                    "installed; the raw backend (the default) uses fusermount3")
        if chosen != "fusepy" and not shutil.which("fusermount3") and not shutil.which("fusermount"):
            return "a non-root mount needs the setuid fusermount3 (Debian package fuse3)"
        return ("fusermount refused it: is the mount point yours and empty? (see the daemon's log; "
                "user_allow_other in /etc/fuse.conf lets other users in)")
    return "see the daemon's log (is FUSE available in this kernel and namespace?)"


def cmd_umount(a: argparse.Namespace) -> int:
    from .mounts import clear_stale, mount_state, unmount, wait_until

    mp = a.mountpoint
    state = mount_state(mp)
    if state == "stale":
        clear_stale(mp)
        print(f"fakeproc: cleared a dead mount at {mp} (its daemon was gone: "
              "Transport endpoint is not connected)", file=sys.stderr)
        return 0
    if state != "fakeproc":
        return _die(f"{mp} is not a fakeproc mount")
    pid = None
    try:
        for line in send(mp, ["info"]).splitlines():
            if line.startswith("daemon_pid:"):
                pid = int(line.split(":")[1])
    except ControlError:
        pass
    try:
        unmount(mp)
    except OSError as e:
        return _die(str(e))
    if pid is not None and not wait_until(lambda: not _alive(pid), timeout=10):
        return _die(f"unmounted {mp}, but daemon {pid} is still running")
    return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_ctl(a: argparse.Namespace) -> int:
    from .verbs import UsageError
    from .verbs import build_parser as ctl_parser

    words = a.words
    parser = ctl_parser(prog="fakeproc ctl [-m MOUNTPOINT]")
    if not words or words[0] in ("-h", "--help", "help"):
        parser.print_help()
        print(f"\noptions of fakeproc ctl:\n  -m, --mountpoint MOUNTPOINT\n                        {MOUNTPOINT_HELP}\n"
              "\nThe mounter (and root) may change the machine through MOUNTPOINT/fakeproc/control; anyone who "
              "can reach\nthe mount may ask questions (ps, explain, oom --dry-run, dmesg, events, info, sysctl NAME), "
              "which go\nthrough MOUNTPOINT/fakeproc/query.")
        return 0 if words else 2
    try:
        line = parser.parse_args(words)
    except UsageError as e:
        if str(e).strip() and "usage:" not in str(e):
            print(e, file=sys.stderr)
        # --help of a verb: argparse printed it and asked to exit
        return 0 if "-h" in words or "--help" in words else 2
    try:
        try:
            reply = send(a.mountpoint, words)
        except ControlError as e:
            from .control import is_question  # heavy: only for a caller the control file refused

            if e.errno != errno.EACCES or not is_question(line):
                raise
            reply = ask(a.mountpoint, words)  # not the mounter: a question goes through the query file
        _print_reply(reply)
    except ControlError as e:
        return _die(str(e))
    return 0


def cmd_run(a: argparse.Namespace) -> int:
    import logging

    from .run.session import RunError, RunSession, check_prerequisites

    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        return _die("run: no command given (fakeproc run [OPTIONS] [--] CMD [ARGS...])", 2)
    level = logging.WARNING if not a.verbose else logging.INFO if a.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="fakeproc run: %(message)s", stream=sys.stderr)
    if a.verbose < 2:
        logging.getLogger("fuse").setLevel(logging.CRITICAL)
        logging.getLogger("fakeproc.fs").setLevel(max(level, logging.INFO))
    try:
        check_prerequisites()
        return RunSession(cmd, a.kernel, a.privilege, a.kill, a.mountpoint, oom_scope=a.oom_scope).run()
    except RunError as e:
        return _die(f"run: {e}")


def cmd_save(a: argparse.Namespace) -> int:
    # the daemon has its own working directory: it is given an absolute path
    try:
        _print_reply(send(a.mountpoint, ["save", os.path.abspath(a.file)]))
    except ControlError as e:
        return _die(str(e))
    return 0


def cmd_shell(a: argparse.Namespace) -> int:
    import logging

    from .kernel.eras import ERAS
    from .machine.scenario import ScenarioError, load_scenario, scenario_kernel
    from .run.session import RunError, RunSession, check_prerequisites

    logging.basicConfig(level=logging.WARNING if not a.verbose else logging.DEBUG,
                        format="fakeproc shell: %(message)s", stream=sys.stderr)
    logging.getLogger("fuse").setLevel(logging.CRITICAL)
    kernel = a.kernel or (scenario_kernel(a.scenario) if a.scenario else None) or DEFAULT_ERA
    try:
        machine = load_scenario(a.scenario, ERAS[kernel])
    except ScenarioError as e:
        return _die(f"bad scenario: {e}")
    bad = _apply_clock(machine, a.clock)
    if bad:
        return _die(f"--clock: {bad}", 2)
    if not machine.cpus_given:  # the CPUs nproc and sysconf() report inside: the machine's files agree
        machine.cpus = len(os.sched_getaffinity(0))
    cmd = ["sh", "-c", a.shell_command] if a.shell_command else [os.environ.get("SHELL") or "/bin/sh", "-i"]
    try:
        check_prerequisites()
        return RunSession(cmd, kernel, a.privilege, False, a.mountpoint, simulated=machine).run()
    except RunError as e:
        return _die(f"shell: {e}")


def cmd_explain(a: argparse.Namespace) -> int:
    return _send_verb(a.mountpoint, ["explain", str(a.pid)] + (["--as", str(a.as_pid)] if a.as_pid is not None else []),
                      question=True)


def cmd_oom(a: argparse.Namespace) -> int:
    words = ["oom"] + (["--dry-run"] if a.dry_run else []) + (["--as", str(a.as_pid)] if a.as_pid is not None else [])
    return _send_verb(a.mountpoint, words, question=a.dry_run)


def _send_verb(mountpoint: str, words: list[str], question: bool = False) -> int:
    try:
        _print_reply(ask(mountpoint, words) if question else send(mountpoint, words))
    except ControlError as e:
        return _die(str(e))
    return 0


def cmd_log(a: argparse.Namespace) -> int:
    import json
    import time

    from .machine.journal import format_event
    from .verbs import printable

    seq = a.since
    while True:
        try:
            reply = ask(a.mountpoint, ["events", "--since", str(seq)])
        except ControlError as e:
            if a.follow and seq > a.since and e.errno in (errno.ENOENT, errno.ENOTCONN, errno.ECONNABORTED):
                return 0  # the mount went away while we followed it
            return _die(str(e))
        out = []
        for line in reply.splitlines():
            ev = json.loads(line)
            if ev["seq"] > seq + 1 and seq:
                print(f"fakeproc: {ev['seq'] - seq - 1} events were lost (the daemon keeps the last 50,000)",
                      file=sys.stderr)
            seq = ev["seq"]
            if a.kernel and ev["type"] != "kernel":
                continue
            out.append(json.dumps(ev) if a.json else printable(format_event(ev)))
        if out:
            sys.stdout.write("\n".join(out) + "\n")
            sys.stdout.flush()
        if not a.follow:
            return 0
        time.sleep(0.2)


def cmd_ps(a: argparse.Namespace) -> int:
    try:
        _print_reply(ask(a.mountpoint, ["ps"] + (["--json"] if a.json else [])))
    except ControlError as e:
        return _die(str(e))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a, extra = parser.parse_known_args(argv)
    if extra:
        if a.command != "ctl":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        a.words = extra + a.words  # `ctl --help`, `ctl -m MP --help`: options argparse left over
    try:
        commands = {"mount": cmd_mount, "umount": cmd_umount, "unmount": cmd_umount, "ctl": cmd_ctl, "ps": cmd_ps,
                    "run": cmd_run, "shell": cmd_shell, "explain": cmd_explain, "oom": cmd_oom, "save": cmd_save,
                    "log": cmd_log}
        return commands[a.command](a)
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        return _die(str(e))
