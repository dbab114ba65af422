"""The ticker: moves a machine's simulated time while the daemon serves it (a running clock).

With ``clock = real`` or a speed such as ``60x`` (scenario, ``--clock``, or
``fakeproc ctl clock``), a trio task advances the machine every
``PERIOD`` seconds by the real time that passed times the speed, under the
daemon's model lock, so allocators allocate and the OOM killer fires while
programs watch.  A stepped clock (the default) only moves with ``tick``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import trio

from .machine import Machine

log = logging.getLogger(__name__)

#: seconds of real time between two steps of a running clock
PERIOD = 0.1


async def run_clock(current: Callable[[], Machine], lock: threading.Lock) -> None:
    """Advance the machine ``current()`` returns (a reboot replaces it) forever, until cancelled, as its
    ``clock_scale`` says."""
    last = time.monotonic()
    while True:
        await trio.sleep(PERIOD)
        now = time.monotonic()
        elapsed, last = now - last, now
        machine = current()
        if machine.clock_scale:
            await trio.to_thread.run_sync(_step, machine, lock, elapsed)


def _step(machine: Machine, lock: threading.Lock, elapsed: float) -> None:
    with lock:
        try:
            machine.run_clock(elapsed * machine.clock_scale)
        except Exception:  # noqa: BLE001 - the clock must not take the daemon down
            log.exception("bug in fakeproc while running the clock; it stops")
            machine.clock_scale = 0.0
