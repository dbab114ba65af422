"""A kernel panic: the simulated machine stops, as the real one would.

``panic()`` (kernel/panic.c) prints ``Kernel panic - not syncing: REASON`` and never returns: nothing
runs afterwards.  The simulation keeps what the machine was at that moment, readable (every file
answers as it did then, the log ends with the panic, ``ps``, ``explain`` and ``save`` still work: a
crash dump one can look at), and refuses everything that would run on it: writes to its files,
forks, exits, the clock, allocations, OOM kills.  ``fakeproc ctl reboot`` starts it again from its
scenario.
"""

from __future__ import annotations

import errno

from .clock import Clock
from .errors import MachineError
from .journal import Journal
from .klog import KernelLog


class Halt:
    __slots__ = ("reason", "at", "clock", "klog", "journal")

    def __init__(self, clock: Clock, klog: KernelLog, journal: Journal) -> None:
        self.reason: str | None = None  # None: running
        self.at = 0.0  # the uptime of the panic
        self.clock = clock
        self.klog = klog
        self.journal = journal

    def panic(self, reason: str) -> None:
        """kernel/panic.c panic(): the message, then the machine stops (a second panic prints nothing)."""
        if self.reason is not None:
            return
        self.reason = reason
        self.at = self.clock.uptime
        self.klog.printk(f"Kernel panic - not syncing: {reason}")
        self.journal.note("panic", reason=reason)

    def check(self) -> None:
        """Refuse what would run on a stopped machine: EIO with what happened and how to go on."""
        if self.reason is not None:
            raise MachineError(errno.EIO, f"the machine panicked at {self.at:.2f}s (Kernel panic - not syncing: "
                                          f"{self.reason}); nothing runs on it until `fakeproc ctl reboot`")
