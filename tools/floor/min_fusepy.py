#!/usr/bin/env python3
"""A minimal fusepy daemon of fakeproc's shape, for tools/bench.py: fusepy + libfuse2 and nothing else.

Serves /1/oom_score (0444, "0\\n") and /1/oom_adj (0644, reads "0\\n", accepts any write and O_TRUNC),
and the same under /2 (a second client's own files),
with the callbacks fakeproc registers on this path (getattr, readdir, open, read, write, truncate,
release; no flush, so the kernel stops sending FLUSH after one ENOSYS) and a plain dispatching
``__call__`` as fakeproc's (no lock, no model, no logging).

Options (``--options``):
  minimal   single-threaded (nothreads), direct_io, entry/attr/negative timeouts 0 (fakeproc's);
  fakeproc  fakeproc's own fuse_options() (adds default_permissions, allow_other as root, ...),
            with only fsname/subtype renamed so the mount is not taken for a fakeproc mount.

Request counting: ``__call__`` counts every callback by name.  A getattr of "/.bench-mark..." is
a marker: it writes the counts since the previous marker to ``--counts FILE`` (JSON), resets them
and answers ENOENT.  The counts are also written there at exit.

    min_fusepy.py MOUNTPOINT [--options minimal|fakeproc] [--counts FILE]
"""

from __future__ import annotations

import argparse
import errno
import json
import stat
import time
from collections import Counter
from typing import Any

from fuse import FUSE, FuseOSError

MARK = "/.bench-mark"
CONTENT = b"0\n"


class MinFS:
    """The two files and their directories; every answer precomputed."""

    use_ns = True

    def __init__(self, counts_file: str | None = None) -> None:
        t = time.time_ns()
        common = {"st_atime": t, "st_mtime": t, "st_ctime": t, "st_size": 0, "st_uid": 0, "st_gid": 0}
        self.attrs = {
            "/": common | {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2},
        }
        self.listing = {"/": [".", "..", "1", "2"]}
        for pid in ("/1", "/2"):  # two processes: two clients can each have their own files
            self.attrs[pid] = common | {"st_mode": stat.S_IFDIR | 0o555, "st_nlink": 2}
            self.attrs[pid + "/oom_score"] = common | {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1}
            self.attrs[pid + "/oom_adj"] = common | {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1}
            self.listing[pid] = [".", "..", "oom_adj", "oom_score"]
        self.counts: Counter[str] = Counter()
        self.counts_file = counts_file

    # fusepy calls operations(op, *args), as fakeproc's FakeProcOperations.__call__ (minus its lock and error mapping)
    def __call__(self, op: str, *args: Any) -> Any:
        if op == "getattr" and args[0].startswith(MARK):
            self.dump_counts()
            raise FuseOSError(errno.ENOENT)
        self.counts[op] += 1
        return getattr(self, op)(*args)

    def dump_counts(self) -> None:
        if self.counts_file:
            with open(self.counts_file, "w") as f:
                json.dump(dict(self.counts), f)
        self.counts.clear()

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        st = self.attrs.get(path)
        if st is None:
            raise FuseOSError(errno.ENOENT)
        return st

    def readdir(self, path: str, fh: int) -> list[str]:
        names = self.listing.get(path)
        if names is None:
            raise FuseOSError(errno.ENOTDIR)
        return names

    def open(self, path: str, flags: int) -> int:
        if path not in self.attrs or path.count("/") != 2:
            raise FuseOSError(errno.EISDIR)
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return CONTENT[offset:offset + size]

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> int:
        return 0

    def release(self, path: str, fh: int) -> int:
        return 0


def mount_options(which: str) -> dict[str, Any]:
    if which == "fakeproc":
        from fakeproc.fs.fusepy_ops import fuse_options
        from fakeproc.fs.mounting import allow_other

        return fuse_options(allow_other()) | {"fsname": "minfusepy", "subtype": "minfusepy"}
    return {"foreground": True, "nothreads": True, "direct_io": True, "entry_timeout": 0, "attr_timeout": 0,
            "negative_timeout": 0, "fsname": "minfusepy", "subtype": "minfusepy"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mountpoint")
    ap.add_argument("--options", choices=("minimal", "fakeproc"), default="minimal")
    ap.add_argument("--counts", metavar="FILE", help="where markers (and exit) write the callback counts")
    a = ap.parse_args()
    ops = MinFS(a.counts)
    try:
        FUSE(ops, a.mountpoint, **mount_options(a.options))
    finally:
        ops.dump_counts()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
