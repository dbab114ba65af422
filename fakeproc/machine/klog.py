"""The simulated kernel log (what ``dmesg`` would show)."""

from __future__ import annotations

import logging

from .clock import Clock
from .journal import Journal

log = logging.getLogger(__name__)


class KernelLog:
    """printk() with the simulated clock's timestamp, kept in memory.

    Each line is also a ``kernel`` event of the change stream, and goes to :mod:`logging` so the
    daemon's own log shows it.
    """

    __slots__ = ("records", "clock", "journal")

    def __init__(self, clock: Clock, journal: Journal) -> None:
        self.records: list[tuple[float, str]] = []
        self.clock = clock
        self.journal = journal

    def printk(self, text: str) -> str:
        uptime = self.clock.uptime
        self.records.append((uptime, text))
        self.journal.record(uptime, "kernel", text=text)
        line = format_record(uptime, text)
        log.info("kernel: %s", line)
        return line

    def since(self, count: int) -> list[str]:
        """The lines printed after the first ``count`` records, formatted (what a verb prints of its own doing)."""
        return [format_record(t, s) for t, s in self.records[count:]]

    def text(self) -> str:
        return "".join(format_record(t, s) + "\n" for t, s in self.records)


def format_record(uptime: float, text: str) -> str:
    """dmesg's ``[%5lu.%06lu] `` prefix."""
    usec = int(round(uptime * 1_000_000))
    return f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {text}"
