"""The simulated clock: seconds since boot, CONFIG_HZ, and how the clock runs."""

from __future__ import annotations


class Clock:
    """Uptime in seconds (moved by ``Machine.tick()`` and, in run mode, set from the host's), the jiffies
    per second that CPU time is counted in, and the speed at which a daemon runs it."""

    __slots__ = ("uptime", "hz", "scale")

    def __init__(self, uptime: float = 0.0, hz: int = 250) -> None:
        self.uptime = uptime
        self.hz = hz
        #: 0: stepped (only tick moves it); 1: real time; N: N simulated seconds per real one
        self.scale = 0.0
