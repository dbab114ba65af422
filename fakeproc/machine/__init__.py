"""Layer 2: the simulated machine: tasks, address spaces, clock, OOM killer, log.

Nothing here knows about FUSE or files; the filesystem and the front ends call
:class:`~fakeproc.machine.machine.Machine` methods.
"""

from .errors import MachineError
from .machine import Machine
from .task import Caller, Mm, SignalStruct, Task

__all__ = ["Caller", "Machine", "MachineError", "Mm", "SignalStruct", "Task"]
