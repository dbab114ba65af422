"""The simulated kernel log (what ``dmesg`` would show): a ring buffer, as the kernel's is."""

from __future__ import annotations

import logging
from collections import deque

from .clock import Clock
from .journal import Journal

log = logging.getLogger(__name__)

#: 1 << CONFIG_LOG_BUF_SHIFT (17 on these machines' x86_64 kernel): printk's ring buffer.  The oldest
#: lines go when the text would grow past it, so a machine whose killer finds nothing to kill on a
#: running clock (a few lines a second, forever) keeps a bounded log.
LOG_BUF_LEN = 1 << 17


class KernelLog:
    """printk() with the simulated clock's timestamp, kept in memory up to ``LOG_BUF_LEN`` bytes of text.

    Lines are also ``kernel`` events of the change stream, and go to :mod:`logging` so the daemon's own
    log shows them.
    """

    __slots__ = ("_records", "_size", "printed", "clock", "journal", "limit")

    def __init__(self, clock: Clock, journal: Journal, limit: int = LOG_BUF_LEN) -> None:
        self._records: deque[tuple[float, str, int]] = deque()  # (uptime, text, its length as dmesg shows it)
        self._size = 0
        self.printed = 0  # lines ever printed (seq of the last): since() counts from it
        self.clock = clock
        self.journal = journal
        self.limit = limit

    def add(self, uptime: float, text: str) -> None:
        """Keep a line (a scenario's saved log); the oldest go when the buffer is full."""
        n = len(format_record(uptime, text)) + 1
        self._records.append((uptime, text, n))
        self._size += n
        self.printed += 1
        while self._size > self.limit and len(self._records) > 1:
            self._size -= self._records.popleft()[2]

    def printk(self, text: str) -> str:
        uptime = self.clock.uptime
        self.add(uptime, text)
        self.journal.record(uptime, "kernel", text=text)
        line = format_record(uptime, text)
        log.info("kernel: %s", line)
        return line

    @property
    def records(self) -> list[tuple[float, str]]:
        """The lines kept, oldest first: (uptime, text)."""
        return [(t, s) for t, s, _ in self._records]

    def since(self, printed: int) -> list[str]:
        """The lines printed after the first ``printed`` ones (those still kept), formatted: what a verb
        prints of its own doing (``before = log.printed; ...; log.since(before)``)."""
        new = self.printed - printed
        if new <= 0:
            return []
        tail = list(self._records)[-new:]
        return [format_record(t, s) for t, s, _ in tail]

    def text(self) -> str:
        return "".join(format_record(t, s) + "\n" for t, s, _ in self._records)


def format_record(uptime: float, text: str) -> str:
    """dmesg's ``[%5lu.%06lu] `` prefix."""
    usec = int(round(uptime * 1_000_000))
    return f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] {text}"
