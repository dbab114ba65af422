"""fusepy, imported without its ``ldconfig -p`` subprocess.

``import fuse`` looks libfuse up with ``ctypes.util.find_library('fuse')``, which runs ``ldconfig -p``
(a process, tens of milliseconds of every daemon's start).  fusepy takes ``$FUSE_LIBRARY_PATH``
instead when it is set: if libfuse 2's soname loads, it is set to that for the import only (the
environment of the commands a session runs is left as it was).  Otherwise fusepy looks as it always did.
"""

from __future__ import annotations

import ctypes
import os
import sys
from types import ModuleType

LIBFUSE2 = "libfuse.so.2"


def _import_fuse() -> ModuleType:
    if not os.environ.get("FUSE_LIBRARY_PATH") and "fuse" not in sys.modules:
        try:
            ctypes.CDLL(LIBFUSE2)
        except OSError:
            pass
        else:
            os.environ["FUSE_LIBRARY_PATH"] = LIBFUSE2
            try:
                import fuse
            finally:
                del os.environ["FUSE_LIBRARY_PATH"]
            return fuse
    import fuse

    return fuse


fuse = _import_fuse()
FUSE = fuse.FUSE
FuseOSError = fuse.FuseOSError
c_stat = fuse.c_stat
fuse_get_context = fuse.fuse_get_context
set_st_attrs = fuse.set_st_attrs
