"""``fakeproc shell``: a shell whose /proc is a *simulated* machine, with the shell's own processes in it.

procps needs ``/proc/self`` and its own pid directory, so the shell's real
processes (and only them: the processes whose /proc is this mount) are
mirrored into the simulated machine, children of its init, with their real
pids; their other files pass through to the host's /proc.  Everything
machine-wide (``meminfo``, ``stat``, ``uptime``, ``loadavg``) and every
simulated process comes from the model.  A real pid equal to a simulated
one is hidden by the simulated process.
"""

from __future__ import annotations

import os

from ..machine import Machine, Task
from . import realproc as rp
from .mirror import Mirror


class ShellMirror(Mirror):
    """The run-mode mirror, restricted to the processes of one mount namespace."""

    simulated_machine = True

    def __init__(self, machine: Machine) -> None:
        super().__init__(machine, kill=False, scope="host")  # a simulated machine: all its processes
        self._admitted: dict[int, tuple[int, bool]] = {}  # pid -> (starttime, answer)

    def simulated(self, pid: int) -> bool:
        return pid in self.machine.tasks and pid not in self.known and not self._is_known_thread(pid)

    def _is_known_thread(self, tid: int) -> bool:
        t = self.machine.tasks.get(tid)
        return t is not None and t.tgid in self.known

    def visible(self, pid: int) -> bool:
        try:
            st = rp.read_stat(pid)
        except rp.ProcessGone:
            return False
        return self.admitted(pid, st)

    def admitted(self, pid: int, st: rp.Stat) -> bool:
        if self.fake_device is None:
            return False
        cached = self._admitted.get(pid)
        if cached is not None and cached[0] == st.starttime:
            return cached[1]
        answer = rp.mount_device(pid, "/proc") == self.fake_device
        self._admitted[pid] = (st.starttime, answer)
        return answer

    def extra_pids(self) -> list[int]:
        """A listing of the root: the shell's processes that exited leave the machine now, and those not yet
        in it enter it now (``fakeproc explain $$`` then works at once, as ps lists them); what could not be
        entered (it is exiting) is listed as it is."""
        self.sweep()
        out = []
        for name in os.listdir(self.real_proc):
            if name.isdigit() and int(name) not in self.machine.tasks and self.visible(int(name)):
                if self.process(int(name)) is None:
                    out.append(int(name))
        return out

    def adopter(self) -> Task | None:
        return self.machine.tasks.get(1)  # the simulated init

    def _now(self) -> int:
        return int(rp.read_uptime() * rp.CLK_TCK)  # the machine keeps the scenario's own clock
