"""The daemon: serves one machine on one mount point until told to stop.

Concurrency, explicitly: trio owns the main thread (signals, supervision, the running clock); the
FUSE loop runs in one worker thread: fakeproc.fs.rawfuse (``FuseOptions.threads`` reader threads, 1
by default) or libfuse 2 through fusepy, single-threaded (``-s``); the model is only touched under
``lock``, by those threads and by anything trio adds (a clock step).  SIGINT, SIGTERM and SIGHUP
unmount, which ends the FUSE loop, which ends the daemon.  The signal handlers are installed
*before* libfuse starts, so libfuse (which only takes over signals left at SIG_DFL) leaves them to
trio.  With ``save_on_exit`` a clean end (a signal, ``fakeproc umount``) saves the machine to that
file once the FUSE loop is over; SIGKILL saves nothing.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from .control import Control
from .fs.core import ProcFS
from .fs.mounting import FuseOptions, allow_other, detach, open_connection
from .fs.passthrough import Passthrough
from .fs.privilege import Privilege
from .fs.tables import ROOT_DIR
from .fs.tree import FsState, Reality
from .machine import Machine, MachineError
from .machine.scenario import ScenarioError, save_scenario
from .mounts import unmount

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SaveError(Exception):
    """--save-on-exit could not write its file; the message says why."""


class Daemon:
    def __init__(self, mountpoint: str, machine: Machine, privilege: Privilege, reality: Reality | None = None,
                 save_on_exit: str | None = None, fuse: FuseOptions | None = None, fuse_fd: int = -1,
                 boot: Callable[[], Machine] | None = None) -> None:
        """``fuse_fd``: serve this /dev/fuse descriptor, mounted by someone else (run mode mounts it in the
        run's own mount namespace, over its /proc); ``mountpoint`` is then only a name for the logs.
        ``boot``: makes the machine afresh (from its scenario) for ``fakeproc ctl reboot``; None: no reboot."""
        self.mountpoint = os.path.abspath(mountpoint)
        self.save_on_exit = os.path.abspath(save_on_exit) if save_on_exit else None
        self.machine = machine
        self.privilege = privilege
        self.fuse = fuse or FuseOptions()
        self.fuse_fd = fuse_fd
        self.lock = threading.Lock()
        self.boot = boot
        self.control = Control(machine, self.info, self.reboot if boot is not None else None)
        self.state = FsState(machine, privilege, os.getuid(), os.getgid(), self.control, reality=reality)
        passthrough = Passthrough(reality, machine.era.version) if reality is not None else None
        self.fs = ProcFS(self.state, ROOT_DIR, passthrough)

    def reboot(self) -> str:
        """``fakeproc ctl reboot`` (under the model lock): a new machine from the scenario takes the old one's
        place everywhere the daemon holds it; the old one's tasks are gone for the kernel's caches too."""
        assert self.boot is not None
        old = self.machine
        try:
            new = self.boot()
        except ScenarioError as e:  # the file changed since the mount, and no longer loads
            raise MachineError(errno.EIO, f"reboot: {e}") from None
        new.succeed(old)
        self.machine = self.control.machine = self.state.machine = new
        self.state.btime = int(time.time() - new.uptime)
        log.info("rebooted: a %s machine, %d processes%s", new.era.name, len(new.processes),
                 f" (after: Kernel panic - not syncing: {old.halt.reason})" if old.halt.reason else "")
        return f"rebooted: a {new.era.name} machine with {len(new.processes)} processes, uptime {new.uptime:.2f}s\n"

    @property
    def backend(self) -> str:
        return "raw" if self.fuse_fd >= 0 else self.fuse.backend

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"daemon_pid": os.getpid(), "mountpoint": self.mountpoint,
                                "privilege": self.privilege.name, "fuse_backend": self.backend}
        if self.save_on_exit:
            info["save_on_exit"] = self.save_on_exit
        return info

    def run_fuse(self) -> None:
        """Serve the mount until it goes away.

        FAKEPROC_PROFILE=FILE: cProfile the serving thread (every request runs in it), stats written to FILE
        when the mount ends (python -m pstats FILE).
        """
        profile = os.environ.get("FAKEPROC_PROFILE")
        if not profile:
            self._serve_fuse()
            return
        import cProfile

        prof = cProfile.Profile()
        try:
            prof.runcall(self._serve_fuse)
        finally:
            prof.dump_stats(profile)

    def _serve_fuse(self) -> None:
        """The raw /dev/fuse loop (on a descriptor given, or mounted here), or libfuse 2 through fusepy."""
        trace = log.isEnabledFor(logging.DEBUG)
        if self.backend == "fusepy":
            from .fs.fusepy_ops import serve

            serve(self.fs, self.mountpoint, self.lock, allow_other(), trace)
            return
        from .fs.rawfuse import RawFuse

        fd, mounted = self.fuse_fd, False
        if fd < 0:
            fd, mounted = open_connection(self.mountpoint), True
        try:
            RawFuse(self.fs, fd, self.lock, threads=self.fuse.threads, stable_timeout=self.fuse.cache,
                    cached_max=self.fuse.cache_max, trace=trace).serve()
        except BaseException:
            if mounted:  # a failure, not the unmount that ends the loop: take the mount away
                detach(self.mountpoint)
            raise
        finally:
            if mounted:
                os.close(fd)

    async def _supervise(self, fuse: threading.Thread, early: list[int]) -> None:
        """Until the FUSE loop ends: unmount on SIGINT, SIGTERM, SIGHUP (also those that came before trio took
        the signals over), and run the clock."""
        import trio

        from .ticker import run_clock

        async def unmount_for(signum: int) -> None:
            log.info("%s: unmounting %s", signal.Signals(signum).name, self.mountpoint)
            try:
                await trio.to_thread.run_sync(unmount, self.mountpoint)
            except OSError as e:
                log.error("%s", e)

        with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
            async with trio.open_nursery() as nursery:

                async def fuse_ended() -> None:
                    await trio.to_thread.run_sync(fuse.join)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(fuse_ended)
                nursery.start_soon(run_clock, lambda: self.machine, self.lock)
                for signum in early:
                    await unmount_for(signum)
                async for signum in signals:
                    await unmount_for(signum)

    def serve(self) -> None:
        """Mount and serve until unmounted.

        The FUSE loop starts first and trio after: importing trio (about a fifth of a second) then overlaps
        the first requests instead of delaying the mount.  Until trio takes the signals over, a plain
        handler keeps them, and they are acted on as soon as it has.  The handlers are in place before
        libfuse starts, which then leaves them alone.
        """
        log.info("serving a %s machine (%d processes) at %s, privilege %s, FUSE backend %s", self.machine.era.name,
                 len(self.machine.processes), self.mountpoint, self.privilege.name, self.backend)
        early: list[int] = []
        previous = {s: signal.signal(s, lambda signum, _frame: early.append(signum)) for s in STOP_SIGNALS}
        failure: list[BaseException] = []

        def fuse_thread() -> None:
            try:
                self.run_fuse()
            except BaseException as e:  # noqa: BLE001 - raised below, in the main thread
                failure.append(e)

        fuse = threading.Thread(target=fuse_thread, name="fakeproc-fuse", daemon=True)
        fuse.start()
        try:
            import trio

            trio.run(self._supervise, fuse, early)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        fuse.join()
        if failure:
            raise failure[0]
        log.info("unmounted %s", self.mountpoint)
        if self.save_on_exit:
            self.save(self.save_on_exit)

    def save(self, path: str) -> None:
        """Write the machine to ``path`` atomically; SaveError (logged) if that fails."""
        with self.lock:
            try:
                save_scenario(self.machine, path)
            except (OSError, ScenarioError) as e:
                msg = f"could not save the machine to {path}: {getattr(e, 'strerror', None) or e}"
                log.error("%s", msg)
                raise SaveError(msg) from e
        log.info("saved the machine (%d processes) to %s", len(self.machine.processes), path)
