#!/usr/bin/env python3
"""Benchmark fakeproc against the real /proc and two floors, in the same run.

Servers, each asked the same thing (PID/oom_score to read, PID/oom_adj to write):
  real /proc       the machine's procfs, a throwaway `sleep` as the target;
  C floor          tools/floor/floor.c: libfuse3, multithreaded, direct_io, timeouts 0, built here
                   with cc (libfuse3-dev is installed with apt if missing, unless --no-install);
  C floor + fp     the same with fakeproc's mount options that libfuse3 knows (default_permissions,
                   allow_other, the timeouts; still multithreaded, and libfuse3's atomic O_TRUNC stays);
  min fusepy       tools/floor/min_fusepy.py: fusepy over libfuse2, nothreads, direct_io, timeouts 0,
                   two precomputed files and nothing else;
  min fusepy + fp  the same with fakeproc's exact fuse_options();
  fakeproc         a fresh `fakeproc mount --background`, FAKEPROC_FUSE=fusepy (libfuse2 via fusepy);
  fakeproc raw     the same with FAKEPROC_FUSE=raw (fakeproc/fs/rawfuse.py: the FUSE protocol over
                   /dev/fuse in Python, no libfuse).

Then, for fakeproc alone: `ps -e -o pid,oom,oomadj,comm` inside `fakeproc shell` over machines of N
processes written by tools/big_scenario.py (seconds, µs per process) and, as its baseline, the same ps
over the host's real /proc with N more (sleeping) processes; the resident memory of a mounted
daemon per simulated process, and how soon `fakeproc mount --background` returns ready.

Measured for each: µs per open+read+close of oom_score and per open+write("0")+close of oom_adj
(one client looping), the total throughput of two concurrent client processes over that of one (both
on the same file, and each on a file of its own process: the kernel serialises direct-I/O writes to one
file, whose WRITE holds the inode's lock for its round trip),
and the FUSE callbacks that one `cat`, one `sh -c 'echo 0 > ...'` and one benchmark iteration
cause (counted inside each server between marker lookups; fakeproc's from a second mount's
--verbose "request OP" log lines).  All servers are mounted at once and measured in interleaved
slices, so that load from elsewhere falls on every row alike; only ratios mean anything on a
noisy machine.  Every daemon and mount is removed on leaving, on Ctrl-C and SIGTERM too, and by a
watcher process even if the bench itself is killed (SIGKILL, a test's timeout).

    tools/bench.py [--seconds 2] [--rounds 5] [--quick] [--json] [--kernel 2.6.32] [--no-install]
                   [--ps-sizes 1000,10000,100000] [--rss-processes 100000] [--startup-runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOOLS = Path(__file__).resolve().parent
FLOOR_C = TOOLS / "floor" / "floor.c"
MIN_FUSEPY = TOOLS / "floor" / "min_fusepy.py"
BOOTSTRAP = TOOLS / "bootstrap.sh"
FAKEPROC = [sys.executable, "-m", "fakeproc"]
MARK = ".bench-mark"
BATCH = 20  # operations between two looks at the clock

#: Row keys, in table order, and their labels.
SERVERS = {
    "real": "real /proc",
    "c_floor": "C floor (libfuse3 mt)",
    "c_floor_fp": "C floor + fakeproc opts",
    "min_fusepy": "min fusepy (nothreads)",
    "min_fusepy_fp": "min fusepy + fakeproc opts",
    "fakeproc": "fakeproc (fusepy)",
    "fakeproc_raw": "fakeproc (raw /dev/fuse)",
}
#: fakeproc's rows: the environment of each one's daemon (FAKEPROC_FUSE: the backend).
BACKENDS = {"fakeproc": {"FAKEPROC_FUSE": "fusepy"}, "fakeproc_raw": {"FAKEPROC_FUSE": "raw"}}
#: The commands whose FUSE callbacks are counted.
COMMANDS = ("cat", "echo", "loop read", "loop write")
COMMAND_LABELS = {"cat": "cat oom_score", "echo": "sh -c 'echo 0 > oom_adj'",
                  "loop read": "bench read (open+read+close)", "loop write": "bench write (open+write+close)"}
#: fakeproc's fuse_options() that libfuse3 (the C floor) understands, passed on as -o.
LIBFUSE3_OPTIONS = {"default_permissions", "allow_other", "entry_timeout", "attr_timeout",
                    "negative_timeout", "kernel_cache", "auto_cache", "use_ino", "readdir_ino", "hard_remove"}


class BenchError(Exception):
    pass


class Unavailable(Exception):
    """A server that cannot run here (the C floor without libfuse3-dev); its row says why."""


# ------------------------------------------------------------------ clients

def loop_read(path: str, seconds: float) -> tuple[int, float]:
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(BATCH):
            fd = os.open(path, os.O_RDONLY)
            os.read(fd, 64)
            os.close(fd)
        n += BATCH
        now = time.perf_counter()
        if now >= deadline:
            return n, now - t0


def loop_write(path: str, seconds: float, payload: bytes = b"0") -> tuple[int, float]:
    n, t0 = 0, time.perf_counter()
    deadline = t0 + seconds
    while True:
        for _ in range(BATCH):
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, payload)
            os.close(fd)
        n += BATCH
        now = time.perf_counter()
        if now >= deadline:
            return n, now - t0


def one_read(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.read(fd, 64)
    os.close(fd)


def one_write(path: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    os.write(fd, b"0")
    os.close(fd)


def concurrent_ops_per_s(fn: Callable[[str, float], tuple[int, float]], path: str, seconds: float,
                         clients: int = 2, others: list[str] | None = None) -> float:
    """Total ops/s of ``clients`` forked processes looping on ``fn`` at the same time: all on ``path``,
    or client i on ``([path] + others)[i]``."""
    paths = [path] + (others or [])
    go_r, go_w = os.pipe()
    children: list[tuple[int, int]] = []
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for i in range(clients):
            res_r, res_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # the client: wait for the start, loop, report "n dt"
                code = 1
                try:
                    os.close(go_w)
                    os.close(res_r)
                    os.read(go_r, 1)
                    n, dt = fn(paths[i % len(paths)], seconds)
                    os.write(res_w, f"{n} {dt}".encode())
                    code = 0
                finally:
                    os._exit(code)
            os.close(res_w)
            children.append((pid, res_r))
        os.write(go_w, b"g" * clients)
        total = 0.0
        for _pid, res_r in children:
            with os.fdopen(res_r, "rb", closefd=False) as f:
                words = f.read().split()
            if len(words) != 2:
                raise BenchError(f"a concurrent client on {path} failed")
            total += int(words[0]) / float(words[1])
        return total
    finally:
        os.close(go_r)
        os.close(go_w)
        for pid, res_r in children:
            os.close(res_r)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # only if it is still there (Ctrl-C, failure)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


class Server:
    """A started server: where its two files are (and a second process's, for a second client with
    files of its own), how to count its callbacks and its daemon's pid (None for real /proc)."""

    def __init__(self, key: str, read_path: str, write_path: str, mark: Marker | None = None,
                 daemon: int | None = None, other: tuple[str, str] | None = None) -> None:
        self.key = key
        self.paths = {"read": read_path, "write": write_path}
        self.other = {"read": other[0], "write": other[1]} if other else None
        self.mark = mark
        self.daemon = daemon


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process, all its threads (0 for None)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


LOOPS = {"read": loop_read, "write": loop_write}


def measure_all(servers: list[Server], seconds: float, rounds: int) -> dict[str, dict[str, Any]]:
    """µs/op (one client) and 2-client throughput ÷ 1-client throughput (both clients on the same file,
    and each on its own process's file), per server and operation.

    Every server is mounted at once and measured in ``rounds`` interleaved slices of ``seconds / rounds``
    (the order reversed every other round; each one-client slice followed by its two-client slice), so
    that a burst of load elsewhere on the machine falls on all of them alike rather than on one row.
    µs/op is the mean over all slices: total time ÷ total ops.
    """
    chunk = seconds / rounds
    for s in servers:  # warm up (the first close of a mount also turns FLUSH off)
        for op, fn in LOOPS.items():
            fn(s.paths[op], min(0.2, seconds))
    ops: dict[tuple[str, str], list[tuple[int, float]]] = {(s.key, op): [] for s in servers for op in LOOPS}
    two: dict[tuple[str, str], list[float]] = {(s.key, op): [] for s in servers for op in LOOPS}
    two_own: dict[tuple[str, str], list[float]] = {(s.key, op): [] for s in servers for op in LOOPS}
    cpu: dict[tuple[str, str], list[float]] = {(s.key, op): [0.0, 0.0] for s in servers for op in LOOPS}
    for r in range(rounds):
        for s in servers if r % 2 == 0 else reversed(servers):
            for op, fn in LOOPS.items():
                client, daemon = own_cpu_seconds(), cpu_seconds(s.daemon)
                ops[s.key, op].append(fn(s.paths[op], chunk))
                cpu[s.key, op][0] += own_cpu_seconds() - client
                cpu[s.key, op][1] += cpu_seconds(s.daemon) - daemon
                two[s.key, op].append(concurrent_ops_per_s(fn, s.paths[op], chunk))
                if s.other:
                    two_own[s.key, op].append(concurrent_ops_per_s(fn, s.paths[op], chunk, others=[s.other[op]]))
    out: dict[str, dict[str, Any]] = {s.key: {} for s in servers}
    for (key, op), slices in ops.items():
        n, dt = sum(x[0] for x in slices), sum(x[1] for x in slices)
        us = dt / n * 1e6
        per_slice = [t / k * 1e6 for k, t in slices]
        out[key][f"{op}_us"] = us
        out[key][f"{op}_slices_us"] = [round(x, 2) for x in per_slice]
        out[key][f"{op}_spread"] = statistics.pstdev(per_slice) / us  # relative: 0.1 = ±10% between slices
        out[key][f"scale2_{op}"] = sum(two[key, op]) / len(two[key, op]) / (n / dt)
        own = two_own[key, op]
        out[key][f"scale2_own_{op}"] = sum(own) / len(own) / (n / dt) if own else None
        out[key][f"{op}_client_cpu_us"] = cpu[key, op][0] / n * 1e6
        out[key][f"{op}_daemon_cpu_us"] = cpu[key, op][1] / n * 1e6
    return out


# ------------------------------------------------------------------ mounts and daemons

#: Run by a watcher process in its own session: it waits for EOF on its stdin, that is for the bench to
#: exit, however it exits (SIGKILL, a test's timeout, ...), then removes whatever the bench left in TMP:
#: every mount under it (lazily; a FUSE daemon ends with its mount), every recorded process still
#: running (checked by start time, so a reused pid is never hit), and TMP itself.
WATCHER = r"""
import os, shutil, signal, subprocess, sys, time
tmp = sys.argv[1]
sys.stdin.buffer.read()

def unmount_all():
    try:
        with open("/proc/self/mountinfo") as f:
            mps = [line.split()[4] for line in f if line.split()[4].startswith(tmp + "/")]
    except OSError:
        return
    for mp in reversed(mps):
        for cmd in (["fusermount", "-u", "-z", mp], ["umount", "-l", mp]):
            try:
                if subprocess.run(cmd, capture_output=True, timeout=15).returncode == 0:
                    break
            except Exception:
                pass

def start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None

def stop_recorded():
    try:
        with open(os.path.join(tmp, "pids")) as f:
            recorded = [line.split() for line in f if len(line.split()) == 2]
    except OSError:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid, started in recorded:
            if start_time(pid) == started:
                try:
                    os.kill(int(pid), sig)
                except OSError:
                    pass
        time.sleep(1)

if os.path.isdir(tmp):
    unmount_all()
    stop_recorded()
    time.sleep(2)  # a daemon that was still starting mounts late: once more
    unmount_all()
    shutil.rmtree(tmp, ignore_errors=True)
"""
PIDS_FILE: list[str] = []  # where record_pid() writes, once the watcher is set up


def start_watcher(tmp: str) -> subprocess.Popen:
    PIDS_FILE[:] = [os.path.join(tmp, "pids")]
    return subprocess.Popen([sys.executable, "-c", WATCHER, tmp], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def record_pid(pid: int) -> None:
    """Note a process for the watcher (with its start time, so that a reused pid is never killed)."""
    if not PIDS_FILE:
        return
    try:
        with open(f"/proc/{pid}/stat") as f:
            started = f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return
    with open(PIDS_FILE[0], "a") as f:
        f.write(f"{pid} {started}\n")

def mounted(mountpoint: str) -> bool:
    target = os.path.abspath(mountpoint)
    try:
        with open("/proc/self/mountinfo") as f:
            return any(len(line.split()) > 4 and line.split()[4] == target for line in f)
    except OSError:
        return False


def unmount(mountpoint: str) -> None:
    """Unmount, falling back to a lazy unmount (fusermount -u -z, umount -l); never raises."""
    for cmd in (["fusermount", "-u"], ["umount"], ["fusermount", "-u", "-z"], ["umount", "-l"]):
        if not mounted(mountpoint):
            return
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(cmd + [mountpoint], capture_output=True, timeout=15)


def stop_process(pid: int, proc: subprocess.Popen | None = None) -> None:
    """Wait a little for a daemon whose mount is gone to exit, then SIGTERM, then SIGKILL it (by pid)."""
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return
            elif not alive(pid):
                return
            time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def tail(path: str, n: int = 2000) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError:
        return ""


def start_daemon(stack: contextlib.ExitStack, argv: list[str], mountpoint: str, log: str,
                 env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a foreground FUSE daemon (its own session: Ctrl-C is ours to handle) and wait for its files."""
    os.makedirs(mountpoint, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                start_new_session=True)
    record_pid(proc.pid)

    def stop() -> None:
        unmount(mountpoint)  # the daemon's loop ends with its mount
        stop_process(proc.pid, proc)
        unmount(mountpoint)

    stack.callback(stop)
    probe = os.path.join(mountpoint, "1", "oom_score")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{argv[0]} exited with {proc.returncode}:\n{tail(log)}")
        if mounted(mountpoint) and os.path.exists(probe):
            return proc
        time.sleep(0.02)
    raise BenchError(f"{argv[0]} did not mount {mountpoint} in 20 s:\n{tail(log)}")


def mount_fakeproc(stack: contextlib.ExitStack, mountpoint: str, kernel: str, log: str, verbose: bool,
                   scenario: str | None = None, backend: dict[str, str] | None = None) -> int:
    """`fakeproc mount --background`; the unmount (and, if need be, a kill of its daemon) is registered first."""
    daemon: list[int] = []

    def stop() -> None:
        if mounted(mountpoint):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(FAKEPROC + ["umount", mountpoint], capture_output=True, timeout=30)
        unmount(mountpoint)
        for pid in daemon:
            stop_process(pid)
        unmount(mountpoint)

    stack.callback(stop)
    argv = FAKEPROC + ["mount", mountpoint, "--background", "--kernel", kernel, "--log", log]
    if scenario:
        argv += ["--scenario", scenario]
    cli = subprocess.Popen(argv + (["--verbose"] if verbose else []), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                           env=dict(os.environ, **(backend or {})))
    interrupted: BaseException | None = None
    while True:  # let the CLI finish even on Ctrl-C, to learn its daemon's pid and so stop it
        try:
            out, err = cli.communicate()
            break
        except KeyboardInterrupt as e:
            interrupted = e
    daemon += [int(m) for m in re.findall(r"daemon pid (\d+)", out)]
    for pid in daemon:
        record_pid(pid)
    if interrupted is not None:
        raise interrupted
    if cli.returncode != 0 or not daemon:
        raise BenchError(f"fakeproc mount failed:\n{err}{tail(log)}")
    return daemon[0]


def build_floor(tmp: str, install: bool) -> str:
    """Compile floor.c with libfuse3 (installing libfuse3-dev with apt, via bootstrap.sh's apt_install)."""
    def ready() -> bool:
        return shutil.which("cc") is not None and shutil.which("pkg-config") is not None and subprocess.run(
            ["pkg-config", "--exists", "fuse3"], capture_output=True).returncode == 0

    if not ready():
        if not install:
            raise Unavailable("libfuse3-dev, pkg-config or cc missing (--no-install)")
        print("bench: installing libfuse3-dev (only libfuse3-3 and its headers; not the fuse3 package, which "
              "conflicts with fuse)", file=sys.stderr)
        r = subprocess.run(["bash", "-c", 'source "$0" && apt_install gcc libc6-dev pkg-config libfuse3-dev',
                            str(BOOTSTRAP)], stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if r.returncode != 0 or not ready():
            raise Unavailable(f"could not install libfuse3-dev: {(r.stderr or r.stdout).strip()[-300:]}")
    flags = subprocess.run(["pkg-config", "fuse3", "--cflags", "--libs"], capture_output=True, text=True,
                           check=True).stdout.split()
    exe = os.path.join(tmp, "floor")
    r = subprocess.run(["cc", "-O2", "-Wall", "-o", exe, str(FLOOR_C)] + flags, capture_output=True, text=True)
    if r.returncode != 0:
        raise Unavailable(f"cc failed: {r.stderr.strip()[-300:]}")
    return exe


def fakeproc_fuse_options() -> dict[str, Any]:
    from fakeproc.fs.fusepy_ops import fuse_options
    from fakeproc.fs.mounting import allow_other

    return fuse_options(allow_other())


def libfuse3_args(options: dict[str, Any]) -> list[str]:
    """fakeproc's fuse_options() as libfuse3 -o options (nothreads, nonempty and names do not apply)."""
    words = []
    for k, v in options.items():
        if k not in LIBFUSE3_OPTIONS or v is False or v is None:
            continue
        words.append(k if v is True else f"{k}={v}")
    return ["-o", ",".join(words)] if words else []


# ------------------------------------------------------------------ counting

class Marker:
    """Lookups of MOUNT/.bench-mark-N: each server reports the callbacks since the previous marker."""

    def __init__(self, root: str, since_last: Callable[[str], Counter]) -> None:
        self.root = root
        self.since_last = since_last
        self.n = 0

    def __call__(self) -> Counter:
        self.n += 1
        name = f"{MARK}-{self.n}"
        try:
            os.stat(os.path.join(self.root, name))
        except FileNotFoundError:
            pass
        else:
            raise BenchError(f"marker {name} exists in {self.root}")
        return self.since_last(name)


def counts_file_reader(path: str) -> Callable[[str], Counter]:
    """The C floor's "NAME N" lines or min_fusepy's JSON, written at each marker."""
    def since_last(_name: str) -> Counter:
        with open(path) as f:
            text = f.read()
        if text.startswith("{"):
            return Counter(json.loads(text))
        return Counter({w[0]: int(w[1]) for w in (line.split() for line in text.splitlines()) if len(w) == 2})
    return since_last


REQUEST_LINE = re.compile(r" request (\w+) \('([^']*)'")


def log_reader(log: str) -> Callable[[str], Counter]:
    """fakeproc --verbose logs "request OP ('PATH',)" for every callback: count the lines between markers."""
    state = {"prev": None}

    def since_last(name: str) -> Counter:
        events = []
        with open(log, errors="replace") as f:
            for line in f:
                m = REQUEST_LINE.search(line)
                if m:
                    events.append((m.group(1), m.group(2)))
        marks = {path: i for i, (_op, path) in enumerate(events) if path.startswith("/" + MARK)}
        end = marks.get("/" + name)
        if end is None:
            raise BenchError(f"marker {name} not in fakeproc's log {log}")
        start = marks[state["prev"]] + 1 if state["prev"] in marks else 0
        state["prev"] = "/" + name
        return Counter(op for op, _path in events[start:end])
    return since_last


def count_callbacks(mark: Marker, read_path: str, write_path: str) -> dict[str, dict[str, int]]:
    """Callbacks per command, less what a marker's own lookup costs (two markers in a row)."""
    commands: dict[str, Callable[[], Any]] = {
        "cat": lambda: subprocess.run(["cat", read_path], capture_output=True, check=True, timeout=10),
        "echo": lambda: subprocess.run(["sh", "-c", f"echo 0 > {shlex.quote(write_path)}"], capture_output=True,
                                       check=True, timeout=10),
        "loop read": lambda: one_read(read_path),
        "loop write": lambda: one_write(write_path),
    }
    for run in commands.values():  # warm: FLUSH is answered ENOSYS once per mount, then never sent
        run()
    mark()
    base = mark()
    out = {}
    for name, run in commands.items():
        mark()
        run()
        c = mark()
        c.subtract(base)
        # RELEASE is sent after close() returns (fuse_release_common(): a background request), so a
        # multi-threaded server may serve the marker's LOOKUP first: the next windows then hold it
        for _ in range(5):
            if c["open"] <= c["release"]:
                break
            late = mark()
            late.subtract(base)
            c.update(late)
        out[name] = {op: n for op, n in sorted(c.items(), key=lambda kv: (-kv[1], kv[0])) if n > 0}
    return out


# ------------------------------------------------------------------ the servers

def start_real(stack: contextlib.ExitStack, tmp: str, a: argparse.Namespace) -> Server:
    roots = []
    for _ in range(2):
        sleeper = subprocess.Popen(["sleep", "600"])
        record_pid(sleeper.pid)
        stack.callback(sleeper.wait)
        stack.callback(sleeper.kill)
        roots.append(f"/proc/{sleeper.pid}")
    return Server("real", f"{roots[0]}/oom_score", f"{roots[0]}/oom_adj",
                  other=(f"{roots[1]}/oom_score", f"{roots[1]}/oom_adj"))


def start_c_floor(stack: contextlib.ExitStack, tmp: str, a: argparse.Namespace, fp: bool) -> Server:
    exe = a.floor_exe
    if isinstance(exe, Unavailable):
        raise exe
    mp = os.path.join(tmp, "c-floor-fp" if fp else "c-floor")
    counts = mp + ".counts"
    extra = libfuse3_args(fakeproc_fuse_options()) if fp else []
    argv = [exe, mp, "-f", "-o", "fsname=floor,subtype=floor"] + extra
    proc = start_daemon(stack, argv, mp, mp + ".log", env=dict(os.environ, FLOOR_COUNTS=counts))
    return Server("c_floor_fp" if fp else "c_floor", f"{mp}/1/oom_score", f"{mp}/1/oom_adj",
                  Marker(mp, counts_file_reader(counts)), proc.pid, other=(f"{mp}/2/oom_score", f"{mp}/2/oom_adj"))


def start_min_fusepy(stack: contextlib.ExitStack, tmp: str, a: argparse.Namespace, fp: bool) -> Server:
    mp = os.path.join(tmp, "min-fusepy-fp" if fp else "min-fusepy")
    counts = mp + ".counts"
    argv = [sys.executable, str(MIN_FUSEPY), mp, "--counts", counts, "--options", "fakeproc" if fp else "minimal"]
    proc = start_daemon(stack, argv, mp, mp + ".log")
    return Server("min_fusepy_fp" if fp else "min_fusepy", f"{mp}/1/oom_score", f"{mp}/1/oom_adj",
                  Marker(mp, counts_file_reader(counts)), proc.pid, other=(f"{mp}/2/oom_score", f"{mp}/2/oom_adj"))


def new_pid(mp: str) -> str:
    r = subprocess.run(FAKEPROC + ["ctl", "-m", mp, "fork", "1"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise BenchError(f"fakeproc ctl fork failed: {r.stderr}")
    return r.stdout.split()[-1]


def start_fakeproc(stack: contextlib.ExitStack, tmp: str, a: argparse.Namespace, key: str = "fakeproc") -> Server:
    mp = os.path.join(tmp, key)
    daemon = mount_fakeproc(stack, mp, a.kernel, mp + ".log", verbose=False, backend=BACKENDS[key])
    pid, other = new_pid(mp), new_pid(mp)
    return Server(key, f"{mp}/{pid}/oom_score", f"{mp}/{pid}/oom_adj", daemon=daemon,
                  other=(f"{mp}/{other}/oom_score", f"{mp}/{other}/oom_adj"))


def count_fakeproc(tmp: str, a: argparse.Namespace, key: str = "fakeproc") -> dict[str, dict[str, int]]:
    """fakeproc's callbacks, from a second mount's --verbose log (the timed mount does not log every request;
    the raw backend logs the kernel's requests, a lookup as "lookup", where fusepy's log shows libfuse's
    callbacks, a lookup as "getattr")."""
    with contextlib.ExitStack() as stack:
        mp = os.path.join(tmp, key + "-verbose")
        mount_fakeproc(stack, mp, a.kernel, mp + ".log", verbose=True, backend=BACKENDS[key])
        pid = new_pid(mp)
        return count_callbacks(Marker(mp, log_reader(mp + ".log")), f"{mp}/{pid}/oom_score", f"{mp}/{pid}/oom_adj")


# ------------------------------------------------------------------ ps, memory, start-up

PS_COLUMNS = "pid,oom,oomadj,comm"
#: Inside `fakeproc shell -c`: ps alone, timed by the shell (date +%s%N), its rows counted.
PS_SCRIPT = ('a=$(date +%s%N); ps -e -o ' + PS_COLUMNS + ' > {out}; b=$(date +%s%N); '
             'echo "ps_ns $((b - a)) rows $(wc -l < {out})"')


def write_scenario(tmp: str, n: int) -> str:
    """A machine of ``n`` processes (tools/big_scenario.py), written once per size."""
    path = os.path.join(tmp, f"machine-{n}.toml")
    if not os.path.exists(path):
        sys.path.insert(0, str(TOOLS))
        try:
            from big_scenario import scenario
        finally:
            sys.path.remove(str(TOOLS))
        with open(path, "w") as f:
            f.write(scenario(n))
    return path


def ps_in_shell(tmp: str, n: int, kernel: str) -> dict[str, Any]:
    """`ps -e -o pid,oom,oomadj,comm` inside `fakeproc shell` over ``n`` simulated processes: ps alone
    (timed inside the shell) and the whole shell (start-up, the scenario's load and clean-up included)."""
    scenario = write_scenario(tmp, n)
    out = os.path.join(tmp, f"ps-{n}.out")
    t0 = time.perf_counter()
    script = PS_SCRIPT.format(out=shlex.quote(out))
    r = subprocess.run(FAKEPROC + ["shell", "--kernel", kernel, "--scenario", scenario, "-c", script],
                       capture_output=True, text=True, timeout=3600, start_new_session=True)
    total = time.perf_counter() - t0
    m = re.search(r"ps_ns (\d+) rows (\d+)", r.stdout)
    if r.returncode != 0 or m is None:
        raise BenchError(f"fakeproc shell (ps over {n} processes) failed: {r.stdout[-500:]}{r.stderr[-2000:]}")
    ps_s = int(m.group(1)) / 1e9
    return {"processes": n, "ps_s": ps_s, "us_per_process": ps_s / n * 1e6, "rows": int(m.group(2)) - 1,
            "shell_s": total}


#: A process that forks N children which wait (pause()) until it is told to stop, then kills them all.
def free_pids() -> int:
    """kernel.pid_max less the processes and threads running now: how many more pids fork() can get."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    with open("/proc/loadavg") as f:
        running = int(f.read().split()[3].split("/")[1])  # "R/T": every thread on the machine
    return pid_max - running - 300  # RESERVED_PIDS are not given out once pids wrap


PAUSERS = """
import os, signal, sys
n = int(sys.argv[1])
for _ in range(n):
    if os.fork() == 0:
        signal.pause()
        os._exit(0)
print("ready", flush=True)
sys.stdin.read()
os.killpg(0, signal.SIGKILL)
"""


def ps_on_real_proc(n: int) -> dict[str, Any]:
    """The same `ps` over the host's real /proc with ``n`` more (sleeping) processes: what procfs itself
    and ps's own work cost per process on this machine, the baseline for ps_in_shell()."""
    kids = subprocess.Popen([sys.executable, "-c", PAUSERS, str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        if kids.stdout.readline().strip() != "ready":
            raise BenchError(f"could not start {n} processes for ps on the real /proc")
        t0 = time.perf_counter()
        r = subprocess.run(["ps", "-e", "-o", PS_COLUMNS], capture_output=True, text=True, timeout=600)
        ps_s = time.perf_counter() - t0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(kids.pid, signal.SIGKILL)
        kids.wait()
        deadline = time.monotonic() + 30  # until init has reaped them all (they would count in the next ps)
        with contextlib.suppress(ProcessLookupError):
            while time.monotonic() < deadline:
                os.killpg(kids.pid, 0)
                time.sleep(0.05)
    rows = len(r.stdout.splitlines()) - 1
    return {"processes": n, "ps_s": ps_s, "rows": rows, "us_per_process": ps_s / rows * 1e6}


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError(f"no VmRSS for {pid}")


def mount_for_rss(tmp: str, n: int | None) -> dict[str, Any]:
    """A mounted daemon's resident memory, with the default machine (``n`` None) or ``n`` processes."""
    with contextlib.ExitStack() as stack:
        mp = os.path.join(tmp, f"rss-{n or 'default'}")
        scenario = write_scenario(tmp, n) if n else None
        t0 = time.perf_counter()
        daemon = mount_fakeproc(stack, mp, "2.6.32", mp + ".log", verbose=False, scenario=scenario)
        ready = time.perf_counter() - t0
        with open(os.path.join(mp, "1", "oom_score")) as f:  # it answers
            f.read()
        return {"processes": n, "rss_kib": vm_rss_kib(daemon), "ready_s": ready}


def daemon_memory(tmp: str, n: int) -> dict[str, Any]:
    base, big = mount_for_rss(tmp, None), mount_for_rss(tmp, n)
    return {"processes": n, "rss_kib": big["rss_kib"], "default_rss_kib": base["rss_kib"],
            "bytes_per_process": big["rss_kib"] * 1024 / n,
            "added_bytes_per_process": (big["rss_kib"] - base["rss_kib"]) * 1024 / n, "ready_s": big["ready_s"]}


def startup(tmp: str, runs: int) -> dict[str, Any]:
    """`fakeproc mount --background` with the default machine: from the command's start to its return
    (it returns once the mount answers), each run unmounted before the next."""
    times = []
    for _ in range(runs):
        times.append(mount_for_rss(tmp, None)["ready_s"])
    return {"runs_s": [round(t, 3) for t in times], "median_s": statistics.median(times), "min_s": min(times)}


# ------------------------------------------------------------------ report

def machine() -> dict[str, Any]:
    def cmd(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return "?"

    try:
        from importlib.metadata import version
        fusepy = version("fusepy")
    except Exception:  # noqa: BLE001 - only for the header
        fusepy = "?"
    return {
        "kernel": cmd("uname", "-r"), "nproc": cmd("nproc"),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": platform.python_version(), "fusepy": fusepy,
        "libfuse2": cmd("dpkg-query", "-W", "-f=${Version}", "libfuse2") or "?",
        "libfuse3": cmd("pkg-config", "--modversion", "fuse3") or "unavailable",
    }


def loadavg() -> float:
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


def fmt_counts(c: dict[str, int]) -> str:
    return ", ".join(f"{op} {n}" for op, n in c.items()) or "-"


def print_report(res: dict[str, Any]) -> None:
    m, rows = res["machine"], res["servers"]
    print(f"fakeproc bench: Linux {m['kernel']}, nproc {m['nproc']}, {m['date']}; Python {m['python']}, "
          f"fusepy {m['fusepy']}, libfuse2 {m['libfuse2']}, libfuse3 {m['libfuse3']}")
    print(f"fakeproc's fuse_options(): {res['fakeproc_options']}")
    print(f"load average {res['load_before']} before, {res['load_after']} after (1 min; others' work on this "
          f"machine skews all numbers, the interleaving below spreads it over every row)")
    print(f"{res['seconds']:g} s per measurement in {res['rounds']} interleaved slices; one client process looping "
          f"unless said; ±slices: standard deviation between slices;")
    print("×/proc and ×C: ratio to real /proc and to the C floor with the same options")
    print()
    floor = rows.get("c_floor", {})
    print(f"{'server':<27} {'read oom_score (open+read+close)':>32}   {'write oom_adj (open+write+close)':>32}   "
          f"{'2 clients ÷ 1: same file, own files':>36}")
    print(f"{'':<27} {'µs/op':>10} {'±slices':>8} {'×/proc':>6} {'×C':>5}   {'µs/op':>10} {'±slices':>8} "
          f"{'×/proc':>6} {'×C':>5}   {'read':>6} {'write':>6} {'read':>9} {'write':>6}")
    for key, v in rows.items():
        label = SERVERS[key]
        if v["status"] != "ok":
            print(f"{label:<27} {v['status']}")
            continue
        cells = []
        for op in ("read", "write"):
            us = v[f"{op}_us"]
            xc = v.get(f"{op}_x_floor")
            cells.append(f"{us:>8.1f}µs {v[f'{op}_spread'] * 100:>7.0f}% {v[f'{op}_x_proc']:>5.1f}x "
                         f"{(f'{xc:.1f}x' if xc is not None else '-'):>5}")
        own = "".join(f" {x:>5.2f}x" if x is not None else f" {'-':>6}"
                      for x in (v.get("scale2_own_read"), v.get("scale2_own_write")))
        print(f"{label:<27} {cells[0]}   {cells[1]}   {v['scale2_read']:>5.2f}x {v['scale2_write']:>5.2f}x  {own}")
    if floor.get("status", "ok") != "ok":
        print("(×C: the C floor is unavailable)")

    print()
    print("FUSE callbacks reached per command (after warm-up; counted inside each server between marker lookups; "
          "requests libfuse answers itself, as FLUSH→ENOSYS or FORGET, are not seen)")
    print(f"{'server':<27} {'command':<31} {'total':>5}  callbacks")
    for key, v in rows.items():
        if v["status"] != "ok" or not v.get("counts"):
            continue
        for i, cmd in enumerate(COMMANDS):
            c = v["counts"][cmd]
            print(f"{SERVERS[key] if i == 0 else '':<27} {COMMAND_LABELS[cmd]:<31} {sum(c.values()):>5}  "
                  f"{fmt_counts(c)}")

    print()
    print("CPU per operation (load-insensitive; client = this process, daemon = all the server's threads):")
    print(f"{'server':<27} {'read: client':>12} {'daemon':>9} {'÷ callbacks':>13}   {'write: client':>13} "
          f"{'daemon':>9} {'÷ callbacks':>13}")
    for key, v in rows.items():
        if v["status"] != "ok":
            continue
        cells = []
        for op in ("read", "write"):
            n = sum(v.get("counts", {}).get(f"loop {op}", {}).values())
            per = f"{v[f'{op}_daemon_cpu_us'] / n:5.1f}µs × {n}" if n else "-"
            daemon = f"{v[f'{op}_daemon_cpu_us']:.1f}µs" if key != "real" else "-"
            cells.append(f"{v[f'{op}_client_cpu_us']:>10.1f}µs {daemon:>9} {per:>13}")
        print(f"{SERVERS[key]:<27} {cells[0]}    {cells[1]}")

    if res.get("ps"):
        print()
        print(f"ps in fakeproc shell: `ps -e -o {PS_COLUMNS}` over N simulated processes (ps alone, timed inside "
              "the shell; the shell's start-up and the scenario's load are in `shell total`)")
        print(f"{'processes':>10} {'ps':>9} {'per process':>12} {'rows':>8} {'shell total':>12}")
        for p in res["ps"]:
            print(f"{p['processes']:>10} {p['ps_s']:>8.2f}s {p['us_per_process']:>10.0f}µs {p['rows']:>8} "
                  f"{p['shell_s']:>11.2f}s")
    if res.get("ps_real"):
        print("the same ps over the real /proc with N more processes (sleeping children; per row):")
        for p in res["ps_real"]:
            print(f"{p['processes']:>10} {p['ps_s']:>8.2f}s {p['us_per_process']:>10.0f}µs {p['rows']:>8}")
    mem = res.get("memory")
    if mem:
        print()
        print(f"daemon memory: VmRSS {mem['rss_kib']} KiB with {mem['processes']} processes "
              f"({mem['bytes_per_process']:.0f} bytes per process; {mem['added_bytes_per_process']:.0f} above the "
              f"default machine's {mem['default_rss_kib']} KiB); mounted and ready in {mem['ready_s']:.1f}s")
    up = res.get("startup")
    if up:
        print()
        print(f"start-up: `fakeproc mount --background` (default machine) ready in {up['median_s']:.3f}s median, "
              f"{up['min_s']:.3f}s best of {len(up['runs_s'])}")

    d = res.get("decomposition")
    if d:
        for basis, title in (("wall", "Where fakeproc's time goes, wall clock (µs per op; the servers compared at "
                                      "each step have the same mount options):"),
                             ("cpu", "Where fakeproc's CPU goes (µs of CPU per op, client + daemon; same pairs):")):
            print()
            print(title)
            for op in ("read", "write"):
                total = d[basis][op]["total"]
                print(f"  {op}: fakeproc {total:.1f}µs =")
                for part, us in d[basis][op]["parts"].items():
                    print(f"      {us:>7.1f}µs {us / total * 100:>5.1f}%  {part}")


def decompose(rows: dict[str, Any]) -> dict[str, Any] | None:
    """fakeproc's µs per op as a sum of differences between servers of the same mount options."""
    need = ("real", "c_floor_fp", "min_fusepy_fp", "fakeproc")
    if any(rows.get(k, {}).get("status") != "ok" for k in need):
        return None
    wall, cpu = {}, {}
    for op in ("read", "write"):
        real, c, mini, fake = (rows[k][f"{op}_us"] for k in need)
        wall[op] = {"total": fake, "parts": {
            "real /proc's own work (and the client loop)": real,
            "kernel FUSE round trips + libfuse3, in C (C floor + fakeproc opts − /proc)": c - real,
            "fusepy + libfuse2 + Python dispatch (min fusepy + fakeproc opts − C floor + fakeproc opts)": mini - c,
            "fakeproc's own Python (fakeproc − min fusepy + fakeproc opts)": fake - mini,
        }}
        cd, md, fd = (rows[k][f"{op}_daemon_cpu_us"] for k in need[1:])
        fc = rows["fakeproc"][f"{op}_client_cpu_us"]
        cpu[op] = {"total": fc + fd, "parts": {
            "client: the syscalls' kernel work, FUSE's client side included, and the client loop": fc,
            "daemon, as much as the C floor's (kernel FUSE daemon side + libfuse3)": cd,
            "daemon: fusepy + libfuse2 + Python dispatch (min fusepy − C floor, fakeproc opts)": md - cd,
            "daemon: fakeproc's own Python (fakeproc − min fusepy + fakeproc opts)": fd - md,
        }}
    return {"wall": wall, "cpu": cpu}


# ------------------------------------------------------------------ main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="per measurement (default 2; a run takes ~30× that)")
    ap.add_argument("--kernel", default="2.6.32", help="era of the fakeproc mount")
    ap.add_argument("--quick", action="store_true",
                    help="0.3 s per measurement, ps over 1k and 10k processes, memory at 10k (about a minute)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    ap.add_argument("--no-install", action="store_true",
                    help="do not apt-get libfuse3-dev if missing (the C floor then says unavailable)")
    ap.add_argument("--rounds", type=int, help="interleaved slices per measurement (default: 5, fewer if short)")
    ap.add_argument("--ps-sizes", metavar="N,N,...",
                    help="machine sizes for `ps` in `fakeproc shell` (default 1000,10000,100000; --quick 1000,10000; "
                         "0: none)")
    ap.add_argument("--rss-processes", type=int, metavar="N",
                    help="machine size for the daemon's memory per process (default 100000; --quick 10000; 0: none)")
    ap.add_argument("--startup-runs", type=int, metavar="K", help="runs of `mount --background` (default 5; --quick 3)")
    a = ap.parse_args()
    if a.quick:
        a.seconds = 0.3
    given = a.ps_sizes is not None
    a.ps_sizes = [int(x) for x in (a.ps_sizes or ("1000,10000" if a.quick else "1000,10000,100000")).split(",")
                  if int(x) > 0]
    free = free_pids()
    too_many = [n for n in a.ps_sizes if n + 50 > free]  # the real-/proc baseline starts n processes, and some more
    if too_many and not given:  # the default sizes: what this machine can hold
        print(f"bench: ps over {','.join(map(str, too_many))} processes skipped: about {free} pids are free here "
              "(kernel.pid_max less the processes running)", file=sys.stderr)
        a.ps_sizes = [n for n in a.ps_sizes if n not in too_many]
    elif too_many:
        ap.error(f"--ps-sizes {','.join(map(str, too_many))}: the baseline starts that many real processes, and this "
                 f"machine has about {free} pids free (kernel.pid_max less the processes running); use smaller "
                 "sizes, e.g. --ps-sizes 1000,10000")
    a.rss_processes = (10000 if a.quick else 100000) if a.rss_processes is None else a.rss_processes
    a.startup_runs = (3 if a.quick else 5) if a.startup_runs is None else a.startup_runs
    a.rounds = a.rounds or max(1, min(5, round(a.seconds / 0.1)))

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupt)  # unwind (and clean up) as on Ctrl-C
    signal.signal(signal.SIGHUP, interrupt)

    tmp = tempfile.mkdtemp(prefix="fakeproc-bench-")
    watcher = start_watcher(tmp)
    rows: dict[str, dict[str, Any]] = {}
    try:
        try:
            a.floor_exe = build_floor(tmp, install=not a.no_install)
        except Unavailable as e:
            a.floor_exe = e
        res: dict[str, Any] = {"machine": machine(), "seconds": a.seconds, "rounds": a.rounds, "kernel": a.kernel,
                               "fakeproc_options": fakeproc_fuse_options(), "servers": rows,
                               "load_before": loadavg()}
        starts: dict[str, Callable[[contextlib.ExitStack], Server]] = {
            "real": lambda st: start_real(st, tmp, a),
            "c_floor": lambda st: start_c_floor(st, tmp, a, fp=False),
            "c_floor_fp": lambda st: start_c_floor(st, tmp, a, fp=True),
            "min_fusepy": lambda st: start_min_fusepy(st, tmp, a, fp=False),
            "min_fusepy_fp": lambda st: start_min_fusepy(st, tmp, a, fp=True),
            "fakeproc": lambda st: start_fakeproc(st, tmp, a),
            "fakeproc_raw": lambda st: start_fakeproc(st, tmp, a, "fakeproc_raw"),
        }
        with contextlib.ExitStack() as stack:  # every daemon and mount goes on leaving, however we leave
            servers = []
            for key, start in starts.items():
                try:
                    servers.append(start(stack))
                    rows[key] = {"status": "ok"}
                except Unavailable as e:
                    rows[key] = {"status": f"unavailable: {e}"}
            for s in servers:
                if s.mark is not None:
                    rows[s.key]["counts"] = count_callbacks(s.mark, s.paths["read"], s.paths["write"])
            for key in BACKENDS:
                rows[key]["counts"] = count_fakeproc(tmp, a, key)
            for key, v in measure_all(servers, a.seconds, a.rounds).items():
                rows[key].update(v)
        res["ps"] = [ps_in_shell(tmp, n, a.kernel) for n in a.ps_sizes]
        res["memory"] = daemon_memory(tmp, a.rss_processes) if a.rss_processes > 0 else None
        res["startup"] = startup(tmp, a.startup_runs) if a.startup_runs > 0 else None
        res["load_after"] = loadavg()  # before forking the real ps's processes, which count in it
        res["ps_real"] = [ps_on_real_proc(n) for n in a.ps_sizes]
    except KeyboardInterrupt:
        print("bench: interrupted; daemons stopped and mounts removed", file=sys.stderr)
        return 130
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        watcher.stdin.close()  # nothing left for it to do: it exits

    for key, v in rows.items():
        if v["status"] != "ok":
            continue
        floor = rows.get("c_floor_fp" if key.endswith("_fp") or key in BACKENDS else "c_floor", {})
        for op in ("read", "write"):
            v[f"{op}_x_proc"] = v[f"{op}_us"] / rows["real"][f"{op}_us"]
            v[f"{op}_x_floor"] = (v[f"{op}_us"] / floor[f"{op}_us"]
                                  if key != "real" and floor.get("status") == "ok" else None)
    res["decomposition"] = decompose(rows)
    if a.json:
        print(json.dumps(res))
    else:
        print_report(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
