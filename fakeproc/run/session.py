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

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import psutil
import trio

from ..clock import run_clock
from ..daemon import Daemon
from ..fs.privilege import make_privilege
from ..kernel.eras import ERAS
from ..machine import Machine
from ..mounts import clear_stale, fakeproc_mountpoints, mount_state, unmount
from . import realproc
from .mirror import Mirror, kernel_hz
from .shell import ShellMirror

log = logging.getLogger("fakeproc.run")

PR_SET_CHILD_SUBREAPER = 36
SWEEP_INTERVAL = 0.5  # seconds between two passes of the sweeper
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RUN_PREFIX = "fakeproc-run-"  # temporary mount points of runs


class RunError(Exception):
    """fakeproc run cannot start (no root, no FUSE, ...): said plainly, exit status 1."""


def check_prerequisites() -> None:
    """Mount namespaces and FUSE mounts need root here; say so rather than fail obscurely."""
    if os.geteuid() != 0:
        raise RunError("fakeproc run needs root: it unshares a mount namespace (CAP_SYS_ADMIN) and mounts a FUSE "
                       "filesystem over /proc in it. Run it as root (or with sudo).")
    if not os.path.exists("/dev/fuse"):
        raise RunError("/dev/fuse is missing: load the fuse module (modprobe fuse) or install Debian's fuse")


def clear_dead_runs(mountpoint: str | None) -> None:
    """Clear the mounts of runs whose daemon was killed (kill -9 leaves them answering ENOTCONN)."""
    prefix = os.path.join(tempfile.gettempdir(), RUN_PREFIX)
    for mp in fakeproc_mountpoints():
        if (mp.startswith(prefix) or mp == mountpoint) and mount_state(mp) == "stale":
            clear_stale(mp)
            print(f"fakeproc run: cleared the dead mount of an earlier run at {mp} (its daemon was gone: "
                  "Transport endpoint is not connected)", file=sys.stderr)
            if mp.startswith(prefix):
                shutil.rmtree(mp, ignore_errors=True)  # the run's own temporary directory


class RunSession:
    def __init__(self, cmd: list[str], era: str, privilege: str = "owner", kill: bool = False,
                 mountpoint: str | None = None, simulated: Machine | None = None) -> None:
        """``simulated``: ``fakeproc shell``'s machine (a scenario) instead of the host's processes."""
        self.cmd = cmd
        if simulated is not None:
            self.machine = simulated
            self.mirror: Mirror = ShellMirror(simulated)
        else:
            ram, swap = realproc.ram_and_swap()
            self.machine = Machine(ERAS[era], ram=ram, swap=swap, hz=kernel_hz(), uptime=realproc.read_uptime())
            self.mirror = Mirror(self.machine, kill=kill)
        self.own_dir = mountpoint is None
        clear_dead_runs(os.path.realpath(mountpoint) if mountpoint else None)
        self.mountpoint = mountpoint or tempfile.mkdtemp(prefix=RUN_PREFIX)
        os.makedirs(self.mountpoint, exist_ok=True)
        os.chmod(self.mountpoint, 0o755)
        self.daemon = Daemon(self.mountpoint, self.machine, make_privilege(privilege), reality=self.mirror)
        self.status = 1

    # ------------------------------------------------------------ the pieces

    async def _wait_mounted(self, fuse_done: trio.Event) -> None:
        control = os.path.join(self.mountpoint, "fakeproc", "control")
        with trio.move_on_after(20):
            while not fuse_done.is_set():
                if mount_state(self.mountpoint) == "fakeproc" and os.path.exists(control):
                    return
                await trio.sleep(0.01)
        raise RunError(f"the FUSE mount at {self.mountpoint} did not come up")

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

    def _end_leftovers(self) -> None:
        """Descendants that outlived the command came back to us (subreaper): report, then end them."""
        me = psutil.Process()
        try:
            left = [p for p in me.children(recursive=True)]
        except psutil.Error:
            return
        # and processes that joined the namespace from outside (nsenter) and are still in it
        mine = {p.pid for p in left} | {me.pid}
        for pid in psutil.pids():
            if pid not in mine and realproc.mount_device(pid, "/proc") == self.mirror.fake_device:
                try:
                    left.append(psutil.Process(pid))
                except psutil.Error:
                    pass
        zombies = [p for p in left if _status(p) in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)]
        left = [p for p in left if p not in zombies]
        psutil.wait_procs(zombies, timeout=1)  # dead already: only reaped
        if not left:
            return
        names = ", ".join(f"{p.pid} ({_name(p)})" for p in left)
        print(f"fakeproc run: {self.cmd[0]} left {len(left)} process(es) behind: {names}; ending them",
              file=sys.stderr)
        for p in left:
            _signal(p, signal.SIGTERM)
        _gone, alive = psutil.wait_procs(left, timeout=1)
        for p in alive:
            _signal(p, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)

    # ----------------------------------------------------------------- main

    async def main(self) -> int:
        fuse_done = trio.Event()
        failure: list[BaseException] = []

        async def fuse_thread() -> None:
            try:
                await trio.to_thread.run_sync(self.daemon.run_fuse)
            except BaseException as e:  # noqa: BLE001 - reported below
                failure.append(e)
            finally:
                fuse_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(fuse_thread)
            try:
                await self._wait_mounted(fuse_done)
                if failure:
                    raise RunError(f"FUSE mount failed at {self.mountpoint}: {failure[0]}")
                self.mirror.fake_device = realproc.mount_device("self", os.path.realpath(self.mountpoint))
                ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
                env = dict(os.environ, FAKEPROC_MOUNT=self.mountpoint)
                argv = [sys.executable, "-m", "fakeproc.run.enter", self.mountpoint, "--", *self.cmd]
                # its own process group, given the terminal as a shell gives it to a job: the terminal's
                # Ctrl-C then reaches the command once, and a signal to fakeproc run is forwarded
                proc = await trio.lowlevel.open_process(argv, env=env, process_group=0)
                log.info("running %s (pid %d) with /proc from %s", self.cmd, proc.pid, self.mountpoint)
                terminal = _give_terminal(proc.pid)
                try:
                    async with trio.open_nursery() as helpers:
                        helpers.start_soon(self._forward_signals, proc)
                        helpers.start_soon(self._sweep)
                        helpers.start_soon(run_clock, self.daemon.machine, self.daemon.lock)
                        await proc.wait()
                        helpers.cancel_scope.cancel()
                finally:
                    if terminal:
                        _give_terminal(os.getpgrp())
                rc = proc.returncode
                self.status = 128 - rc if rc < 0 else rc
                try:
                    await trio.to_thread.run_sync(self._end_leftovers)
                except Exception:  # noqa: BLE001 - cleanup goes on: the mount must still go away
                    log.exception("while ending the processes left behind")
            finally:
                with trio.CancelScope(shield=True):
                    if not fuse_done.is_set():
                        try:
                            await trio.to_thread.run_sync(unmount, self.mountpoint)
                        except OSError as e:
                            log.error("%s", e)
                        with trio.move_on_after(2):
                            await fuse_done.wait()
                        if not fuse_done.is_set():  # a namespace still holds the mount: cut the connection
                            await trio.to_thread.run_sync(abort_connection, self.mirror.fake_device)
                        with trio.move_on_after(10):
                            await fuse_done.wait()
        if self.own_dir:
            shutil.rmtree(self.mountpoint, ignore_errors=True)
        return self.status

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
