"""Layer 1: kernel semantics as pure functions and data, with no I/O.

Everything here is copied from a named kernel version; the rest of fakeproc
calls into it and never re-implements a kernel rule of its own.
"""

#: The eras ``--kernel`` offers, default first (``eras.ERAS`` holds their rules;
#: listed here too so the command line can name them without importing those).
ERA_NAMES: tuple[str, ...] = ("2.6.32", "2.6.31-rc", "2.6.31", "6.x")
DEFAULT_ERA = ERA_NAMES[0]
