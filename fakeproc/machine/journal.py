"""The change stream: every change to the simulated machine, in order, for scripts and tests.

The kernel log says what the kernel would print; the journal says what
happened to the model: writes to the OOM files (with every other process
whose value moved along, which is how 2.6.31-rc's vfork regression shows),
forks, execs, exits, kills, OOM calls, clock and memory changes, and each
kernel log line too, so one stream has it all in order.

Events are plain dicts (JSON-ready) numbered from 1 by ``seq``.  Only the
last ``maxlen`` are kept: a follower that falls behind learns how many it
missed from the first ``seq`` it gets back.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .clock import Clock

Event = dict[str, Any]


class Journal:
    __slots__ = ("events", "seq", "clock")

    def __init__(self, clock: Clock, maxlen: int = 50_000) -> None:
        self.events: deque[Event] = deque(maxlen=maxlen)
        self.seq = 0
        self.clock = clock

    def note(self, kind: str, **fields: Any) -> Event:
        """Add a change, stamped with the simulated clock."""
        return self.record(self.clock.uptime, kind, **fields)

    def clear(self) -> None:
        """Start the stream again (a loaded scenario is the machine's beginning, not a change)."""
        self.events.clear()
        self.seq = 0

    def record(self, time: float, kind: str, **fields: Any) -> Event:
        self.seq += 1
        ev: Event = {"seq": self.seq, "time": round(time, 6), "type": kind}
        ev.update(fields)
        self.events.append(ev)
        return ev

    def since(self, seq: int) -> list[Event]:
        """Events numbered after ``seq`` that are still kept (oldest first)."""
        if not self.events or seq >= self.seq:
            return []
        first = self.events[0]["seq"]
        start = max(0, seq + 1 - first)
        return [self.events[i] for i in range(start, len(self.events))]


def format_event(ev: Event) -> str:
    """One line of ``fakeproc log``: kernel lines as dmesg shows them, changes as ``[time] @type key=value``."""
    usec = int(round(ev["time"] * 1_000_000))
    stamp = f"[{usec // 1_000_000:5d}.{usec % 1_000_000:06d}] "
    if ev["type"] == "kernel":
        return stamp + ev["text"]
    rest = " ".join(f"{k}={_value(v)}" for k, v in ev.items() if k not in ("seq", "time", "type"))
    return f"{stamp}@{ev['type']} {rest}".rstrip()


def _value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(_value(x) for x in v) or "-"
    if isinstance(v, dict):
        return ",".join(f"{k}:{_value(x)}" for k, x in v.items())
    if isinstance(v, str) and (not v or " " in v):
        return repr(v)
    return str(v)
