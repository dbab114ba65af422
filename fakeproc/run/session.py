"""One ``fakeproc run``: mount, mirror, run the command, forward signals, clean everything up.

trio supervises the pieces, each a task of one nursery:

- the FUSE loop (Daemon.run_fuse(): the raw backend or libfuse, in a worker thread), serving a
  machine whose processes are the host's real ones (:mod:`.mirror`);
- the command, started through :mod:`.enter` in a private mount namespace
  whose ``/proc`` is the mount;
- the signal forwarder: SIGINT, SIGTERM and SIGHUP go to the command;
- the sweeper: processes that exited leave the model.

fakeproc run is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so what the
command leaves behind (daemons it forked) comes back to it: such processes
are reported, then ended, before the mount goes away.  No mount and no
process outlives a run, whatever way the command ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import trio

from ..daemon import Daemon
from ..fs.mounting import FuseOptions
from ..fs.privilege import make_privilege
from ..fs.rawfuse import ConnectionGone
from ..kernel.eras import ERAS
from ..machine import Machine
from ..ticker import run_clock
from . import cgroup, realproc
from .mirror import Mirror, kernel_hz
from .procevents import ProcEvents
from .shell import ShellMirror

log = logging.getLogger("fakeproc.run")

PR_SET_CHILD_SUBREAPER = 36
SWEEP_INTERVAL = 0.5  # seconds between two passes of the sweeper
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: What a ``--mountpoint`` link points to: the daemon's descriptor of the mount's root, in the run's namespace.
LINK_TARGET = re.compile(r"/proc/\d+/fd/\d+")


class RunError(Exception):
    """fakeproc run cannot start (no root, no FUSE, ...): said plainly, exit status 1."""


def check_prerequisites() -> None:
    """Mount namespaces and FUSE mounts need root here; say so rather than fail obscurely."""
    if os.geteuid() != 0:
        raise RunError("fakeproc run needs root: it unshares a mount namespace (CAP_SYS_ADMIN) and mounts a FUSE "
                       "filesystem over /proc in it. Run it as root (or with sudo).")
    if not os.path.exists("/dev/fuse"):
        raise RunError("/dev/fuse is missing: load the fuse module (modprobe fuse) or install Debian's fuse")


def clear_dead_link(link: str) -> None:
    """A ``--mountpoint`` link left by a run that was killed (its daemon's descriptor is gone): removed, with a
    message.  Anything else at that path is refused: the link is made only where nothing is."""
    if not os.path.lexists(link):
        return
    if os.path.islink(link) and LINK_TARGET.fullmatch(os.readlink(link)):
        if not os.path.exists(link):
            os.unlink(link)
            print(f"fakeproc run: removed the link of an earlier run at {link} (its daemon was gone)",
                  file=sys.stderr)
            return
        raise RunError(f"{link} is the mount of a run still going on (fakeproc ctl -m {link} info)")
    raise RunError(f"--mountpoint {link}: something is already there (the run makes a symbolic link to its "
                   "mount at that path)")


class RunSession:
    def __init__(self, cmd: list[str], era: str, privilege: str = "owner", kill: bool = False,
                 mountpoint: str | None = None, simulated: Machine | None = None, oom_scope: str = "run") -> None:
        """``simulated``: ``fakeproc shell``'s machine (a scenario) instead of the host's processes.
        ``oom_scope``: the OOM killer's candidates, the run's processes or the host's (Mirror)."""
        self.cmd = cmd
        if simulated is not None:
            self.machine = simulated
            self.mirror: Mirror = ShellMirror(simulated)
        else:
            ram, swap = realproc.ram_and_swap()
            self.machine = Machine(ERAS[era], ram=ram, swap=swap, hz=kernel_hz(), uptime=realproc.read_uptime())
            self.mirror = Mirror(self.machine, kill=kill, scope=oom_scope)
            self.mirror.events = ProcEvents.open()  # forks as they happen: what a detached daemon inherited
        self.link = os.path.abspath(mountpoint) if mountpoint else None
        if self.link is not None:
            clear_dead_link(self.link)
        self.daemon = Daemon(self.link or "/proc", self.machine, make_privilege(privilege), reality=self.mirror,
                             fuse=FuseOptions.from_environment("raw"))
        self.root_fd = -1  # the mount's root, in the run's namespace: what the link leads to
        self.cgroup: cgroup.RunCgroup | None = None  # the run's processes, where cgroup v2 is writable
        self.status = 1

    # ------------------------------------------------------------ the pieces

    async def _forward_signals(self, proc: trio.Process) -> None:
        with trio.open_signal_receiver(*FORWARDED) as signals:
            async for signum in signals:
                log.info("forwarding %s to %s", signal.Signals(signum).name, self.cmd[0])
                if proc.returncode is None:
                    proc.send_signal(signum)

    async def _sweep(self) -> None:
        while True:
            await trio.sleep(SWEEP_INTERVAL)
            await trio.to_thread.run_sync(self._sweep_locked)

    def _sweep_locked(self) -> None:
        with self.daemon.lock:
            self.mirror.sweep()

    def _leftovers(self) -> list[psutil.Process]:
        """The run's live processes: our descendants (orphans come back to us, the subreaper), and processes
        that joined the namespace from outside (nsenter) and are still in it."""
        me = psutil.Process()
        try:
            left = list(me.children(recursive=True))
        except psutil.Error:
            return []
        mine = {p.pid for p in left} | {me.pid}
        for pid in psutil.pids():
            if pid not in mine and realproc.mount_device(pid, "/proc") == self.mirror.fake_device:
                with contextlib.suppress(psutil.Error):
                    left.append(psutil.Process(pid))
        zombies = [p for p in left if _status(p) in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)]
        psutil.wait_procs(zombies, timeout=1)  # dead already: only reaped
        return [p for p in left if p not in zombies]

    def _enter_cgroup(self, pid: int) -> None:
        """Put the command (which has not forked yet: it waits for ``g``) in a cgroup of its own."""
        self.cgroup = cgroup.create()
        if self.cgroup is None:
            return
        try:
            self.cgroup.add(pid)
        except OSError as e:  # e.g. EBUSY: our cgroup's controllers forbid processes in a child
            log.info("no cgroup for the run (%s): processes left behind are ended by sweeps", e)
            self.cgroup.remove()
            self.cgroup = None

    def _end_leftovers(self) -> None:
        """Processes that outlived the command: report them, SIGTERM, then SIGKILL until none is left.

        One listing is not enough: a process can fork between the listing and the signal (a respawning
        script that ignores SIGTERM).  Where the run has a cgroup, ``cgroup.kill`` ends all of it at once,
        forks included; the sweeps that follow (and that are all there is on cgroup v1) list again and
        kill what they find, orphans coming back to us as the subreaper, until a pass finds nothing.
        """
        left = self._leftovers()
        if not left:
            return
        names = ", ".join(f"{p.pid} ({_name(p)})" for p in left)
        print(f"fakeproc run: {self.cmd[0]} left {len(left)} process(es) behind: {names}; ending them",
              file=sys.stderr)
        for p in left:
            _signal(p, signal.SIGTERM)
        _gone, left = psutil.wait_procs(left, timeout=1)
        if left and self.cgroup is not None:
            self.cgroup.kill()
        deadline = time.monotonic() + 30
        while True:
            left = self._leftovers()
            if not left:
                return
            if time.monotonic() > deadline:
                log.error("processes of the run would not die: %s", ", ".join(str(p.pid) for p in left))
                return
            for p in left:
                _signal(p, signal.SIGKILL)
            psutil.wait_procs(left, timeout=1)

    # ----------------------------------------------------------------- main

    async def _start(self, nursery: trio.Nursery, fuse_done: trio.Event, failure: list[BaseException]
                     ) -> trio.Process | None:
        """Start the command's process, which mounts the fake over its namespace's /proc, and serve that mount.

        The handshake (fakeproc.run.enter): it says ``m`` once mounted; the FUSE loop starts on the
        descriptor; the daemon takes hold of the mount's root (``self.root_fd``: what ``--mountpoint``
        links to, and the device that tells the run's processes apart); ``g`` lets the command run.
        None if the process ended before mounting (it said why; ``self.status`` is its exit status).
        """
        fuse_fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        ours, theirs = socket.socketpair()
        try:
            ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            env = dict(os.environ, FAKEPROC_MOUNT="/proc")
            argv = [sys.executable, "-m", "fakeproc.run.enter", "--fuse-fd", str(fuse_fd), "--sync-fd",
                    str(theirs.fileno()), "--", *self.cmd]
            # its own process group, given the terminal as a shell gives it to a job: the terminal's
            # Ctrl-C then reaches the command once, and a signal to fakeproc run is forwarded
            proc = await trio.lowlevel.open_process(argv, env=env, process_group=0,
                                                    pass_fds=(fuse_fd, theirs.fileno()))
            theirs.close()
            said = None
            with trio.move_on_after(20):
                said = await trio.to_thread.run_sync(ours.recv, 1)
            if said != b"m":
                if said != b"":  # no answer in time (b"" is its exit: it said why)
                    proc.kill()
                self.status = _exit_status(await proc.wait())
                return None
            self.daemon.fuse_fd = fuse_fd

            async def fuse_thread(fd: int) -> None:
                try:
                    await trio.to_thread.run_sync(self.daemon.run_fuse)
                except BaseException as e:  # noqa: BLE001 - reported below
                    failure.append(e)
                finally:
                    os.close(fd)
                    fuse_done.set()

            nursery.start_soon(fuse_thread, fuse_fd)
            fuse_fd = -1  # the FUSE thread owns it now
            # (no stat of the mount here: it would wait for the FUSE thread, which runs once this task yields)
            self.root_fd = os.open(f"/proc/{proc.pid}/root/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self.mirror.fake_device = realproc.mount_device(proc.pid, "/proc")
            self._enter_cgroup(proc.pid)
            if self.link is not None:
                os.symlink(f"/proc/{os.getpid()}/fd/{self.root_fd}", self.link)
            ours.send(b"g")
            log.info("running %s (pid %d) with the fake as its /proc", self.cmd, proc.pid)
            return proc
        finally:
            ours.close()
            theirs.close()
            if fuse_fd >= 0:
                os.close(fuse_fd)

    async def main(self) -> int:
        fuse_done = trio.Event()
        failure: list[BaseException] = []
        async with trio.open_nursery() as nursery:
            try:
                proc = await self._start(nursery, fuse_done, failure)
                if proc is None:
                    return self.status
                terminal = _give_terminal(proc.pid)
                try:
                    async with trio.open_nursery() as helpers:
                        helpers.start_soon(self._forward_signals, proc)
                        helpers.start_soon(self._sweep)
                        helpers.start_soon(run_clock, lambda: self.daemon.machine, self.daemon.lock)
                        await proc.wait()
                        helpers.cancel_scope.cancel()
                finally:
                    if terminal:
                        _give_terminal(os.getpgrp())
                self.status = _exit_status(await proc.wait())
                try:
                    await trio.to_thread.run_sync(self._end_leftovers)
                except Exception:  # noqa: BLE001 - cleanup goes on: the mount must still go away
                    log.exception("while ending the processes left behind")
            finally:
                with trio.CancelScope(shield=True):
                    await self._unmount(fuse_done)
                if self.mirror.events is not None:
                    self.mirror.events.close()
                    self.mirror.events = None
        if failure and not isinstance(failure[0], ConnectionGone):  # gone unused: the command had ended
            raise RunError(f"the FUSE loop failed: {failure[0]}")
        return self.status

    async def _unmount(self, fuse_done: trio.Event) -> None:
        """The mount lives only in the run's namespace: it goes when the namespace's last process has
        ended and the daemon lets go of its root; the FUSE loop then ends.  If some process still holds
        the namespace, the connection is cut (fusectl)."""
        if self.link is not None and os.path.islink(self.link):
            os.unlink(self.link)
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1
        if self.cgroup is not None:
            await trio.to_thread.run_sync(self.cgroup.remove)
            self.cgroup = None
        if self.daemon.fuse_fd < 0:
            return  # never served
        with trio.move_on_after(2):
            await fuse_done.wait()
        if not fuse_done.is_set():
            await trio.to_thread.run_sync(abort_connection, self.mirror.fake_device)
            with trio.move_on_after(10):
                await fuse_done.wait()

    def run(self) -> int:
        return trio.run(self.main)


def abort_connection(device: str | None) -> None:
    """Abort a FUSE connection through fusectl (mounted if needed): its daemon's loop then ends."""
    if device is None:
        return
    conns = "/sys/fs/fuse/connections"
    if not os.path.isdir(conns) or not os.listdir(conns):  # fusectl is not mounted yet
        subprocess.run(["mount", "-t", "fusectl", "fusectl", conns], capture_output=True)
    try:
        with open(f"{conns}/{device.split(':')[1]}/abort", "w") as f:
            f.write("1")
        log.warning("aborted the FUSE connection %s: a mount namespace still held the mount", device)
    except OSError as e:
        log.error("could not abort FUSE connection %s: %s", device, e)


def _exit_status(rc: int) -> int:
    """A shell's $?: the exit status, or 128 + N for a process ended by signal N (Popen's -N)."""
    return 128 - rc if rc < 0 else rc


def _give_terminal(pgrp: int) -> bool:
    """tcsetpgrp() on our controlling terminal, if we are its foreground job; True if done."""
    try:
        if not os.isatty(0) or os.tcgetpgrp(0) not in (os.getpgrp(), pgrp):
            return False
        old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(0, pgrp)
        finally:
            signal.signal(signal.SIGTTOU, old)
        return True
    except OSError:
        return False


def _status(p: psutil.Process) -> str:
    try:
        return p.status()
    except psutil.Error:
        return psutil.STATUS_DEAD


def _name(p: psutil.Process) -> str:
    try:
        return p.name()
    except psutil.Error:
        return "?"


def _signal(p: psutil.Process, sig: int) -> None:
    try:
        p.send_signal(sig)
    except psutil.Error:
        pass
