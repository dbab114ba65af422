"""The simulated kernel log (what ``dmesg`` would show)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class KernelLog:
    """printk() with the simulated clock's timestamp, kept in memory.

    Lines are also passed to :mod:`logging` so the daemon's own log shows them.
    """

    __slots__ = ("records",)

    def __init__(self) -> None:
        self.records: list[tuple[float, str]] = []

    def printk(self, uptime: float, text: str) -> str:
        self.records.append((uptime, text))
        line = format_record(uptime, text)
        log.info("kernel: %s", line)
        return line

    def text(self) -> str:
        return "".join(format_record(t, s) + "\n" for t, s in self.records)


def format_record(uptime: float, text: str) -> str:
    """dmesg's ``[%5lu.%06lu] `` prefix."""
    usec = int(round(uptime * 1_000_000))
    return f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {text}"
