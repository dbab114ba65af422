"""Many real processes at once through a real mount: writers, readers, forks and exits.

Every worker is a separate Python process (``python -c WORKER ROLE ARGS``), so the daemon sees
distinct callers; they all start at one signal (a "go" file) and report what they saw as JSON.  A
hang anywhere (daemon, kernel, worker) is a subprocess timeout: the test fails instead of hanging.

``FAKEPROC_STRESS_M`` sets the writes per writer (2,000 by default; the issue's 5,000 is
``FAKEPROC_STRESS_M=5000``) and ``FAKEPROC_STRESS_N`` the number of writers (8).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakeproc.kernel import ERA_NAMES
from fakeproc.kernel.eras import score_adj_to_legacy

M = int(os.environ.get("FAKEPROC_STRESS_M", "2000"))
N = int(os.environ.get("FAKEPROC_STRESS_N", "8"))
READERS = 2
STEP = 37  # writer i's k-th value: its values in the order k * STEP (coprime with their count)

# One script for every role.  argv[1] is the role, argv[2] its JSON arguments; it prints one JSON
# object.  Everything it does to the mount is a plain syscall: os.open/os.write/os.read/os.listdir.
WORKER = r"""
import errno, json, os, random, re, sys, time

role, a = sys.argv[1], json.loads(sys.argv[2])
open(a["ready"], "w").close()
while not os.path.exists(a["go"]):
    time.sleep(0.001)
now = time.monotonic_ns


def values(i, n, lo, hi):
    # writer i's values: its residue class mod n, never 0 (0 is every file's initial value)
    return [v for v in range(lo, hi + 1) if v % n == i % n and v != 0]


def writer():
    vals = values(a["i"], a["n"], a["lo"], a["hi"])
    keep = {}
    errors, last = [], {}
    for k in range(a["m"]):
        target = "own" if k % 2 == 0 else "shared"
        path = a[target]
        v = vals[(k * a["step"]) % len(vals)]
        data = b"%d\n" % v
        t0 = now()
        try:
            if a["keep"]:
                if path not in keep:
                    keep[path] = os.open(path, os.O_WRONLY)
                n = os.write(keep[path], data)
            else:
                fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
                try:
                    n = os.write(fd, data)
                finally:
                    os.close(fd)
        except OSError as e:
            errors.append([path, v, errno.errorcode.get(e.errno, e.errno)])
            continue
        t1 = now()
        if n != len(data):
            errors.append([path, v, "short write %d" % n])
            continue
        last[target] = [v, t0, t1]
    for fd in keep.values():
        os.close(fd)
    return {"errors": errors, "last": last}


def reader():
    n, allowed_files = a["n"], a["files"]  # {path: writer index or None (shared)}
    fds = {p: os.open(p, os.O_RDONLY) for p in allowed_files} if a["keep"] else {}
    bad, reads, written_seen, final = [], 0, set(), {}
    while True:
        stopping = os.path.exists(a["stop"])  # then one more pass, after every write
        for path, owner in allowed_files.items():
            try:
                if fds:
                    data = os.pread(fds[path], 4096, 0)
                else:
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        data = os.read(fd, 4096)
                    finally:
                        os.close(fd)
            except OSError as e:
                bad.append([path, errno.errorcode.get(e.errno, e.errno)])
                continue
            reads += 1
            if not re.fullmatch(rb"-?[0-9]+\n", data):
                bad.append([path, "torn: %r" % data])
                continue
            v = final[path] = int(data)
            if v == 0:  # the initial value: impossible once a written value was seen
                if path in written_seen:
                    bad.append([path, "went back to the initial value"])
            elif not (a["lo"] <= v <= a["hi"]) or (owner is not None and v % n != owner % n):
                bad.append([path, "impossible value %d" % v])
            else:
                written_seen.add(path)
        if stopping:
            break
    for fd in fds.values():
        os.close(fd)
    return {"bad": bad[:50], "nbad": len(bad), "reads": reads, "final": final}


def ls_numbers(path):
    try:
        return [int(x) for x in os.listdir(path) if x.isdigit()]
    except OSError:
        return []


def control(line):
    fd = os.open(a["control"], os.O_RDWR)
    try:
        os.write(fd, (line + "\n").encode())
        return os.read(fd, 65536).decode()
    finally:
        os.close(fd)


def churn_controller():
    rnd = random.Random(a["seed"])
    events, live = [], {}  # live: pid -> [tids other than the leader]
    for _ in range(a["ops"]):
        r = rnd.random()
        if r < 0.4 or len(live) < 3:
            pid = int(control("fork 1").split()[-1])
            live[pid] = []
            events.append(["fork", pid, now()])
        elif r < 0.6:
            pid = rnd.choice(sorted(live))
            tid = int(control("thread %d" % pid).split()[-1])
            live[pid].append(tid)
            events.append(["thread", pid, tid, now()])
        elif r < 0.75 and any(live.values()):
            pid = rnd.choice(sorted(p for p in live if live[p]))
            tid = live[pid].pop(rnd.randrange(len(live[pid])))
            t0 = now()
            assert control("exit %d" % tid) == "exited: %d\n" % tid
            events.append(["exit-thread", pid, tid, t0, now()])
        else:
            pid = rnd.choice(sorted(live))
            t0 = now()
            gone = control("exit %d" % pid).split()[1:]
            assert sorted(map(int, gone)) == sorted([pid] + live.pop(pid)), gone
            events.append(["exit", pid, t0, now()])
    return {"events": events, "live": live}


def churn_writer():
    # write to every file of every process this writer owns (pid % w == i) that it can see
    rnd = random.Random(a["seed"])
    ops, root = [], a["root"]
    deadline = time.monotonic() + a["max_seconds"]
    while not os.path.exists(a["stop"]) and time.monotonic() < deadline:
        for pid in ls_numbers(root):
            if pid < a["first_pid"] or pid % a["w"] != a["i"]:
                continue
            tids = [t for t in ls_numbers("%s/%d/task" % (root, pid)) if t != pid]
            tid = rnd.choice(tids) if tids and a["threads"] and rnd.random() < 0.5 else pid
            rel = "%d/%s" % (pid, a["file"]) if tid == pid else "%d/task/%d/%s" % (pid, tid, a["file"])
            v = rnd.randint(a["lo"], a["hi"])
            t_open = now()
            try:
                fd = os.open("%s/%s" % (root, rel), os.O_WRONLY | os.O_TRUNC)
            except OSError as e:
                ops.append([pid, tid, v, t_open, t_open, now(), "open " + errno.errorcode.get(e.errno, str(e.errno))])
                continue
            try:
                if rnd.random() < 0.3:
                    time.sleep(0.002)  # hold the file open across the controller's next exit
                t_write = now()
                out = os.write(fd, b"%d" % v)
            except OSError as e:
                out = errno.errorcode.get(e.errno, str(e.errno))
            finally:
                os.close(fd)
            ops.append([pid, tid, v, t_open, t_write, now(), out])
    return {"ops": ops}


print(json.dumps(globals()[role]()))
"""


class Workers:
    """Start worker processes together, collect their JSON; kill them all on a timeout."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.go = tmp / "go"
        self.stop = tmp / "stop"
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.daemon_pid: int | None = None  # killed if workers are stuck in it (see kill())

    def start(self, role: str, **args) -> int:
        index = len(self.procs)
        args.update(ready=str(self.tmp / f"ready-{index}"), go=str(self.go), stop=str(self.stop))
        p = subprocess.Popen(
            [sys.executable, "-c", WORKER, role, json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append((role, p))
        return index

    def release(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not all((self.tmp / f"ready-{i}").exists() for i in range(len(self.procs))):
            assert time.monotonic() < deadline, "workers did not start"
            assert all(p.poll() is None for _, p in self.procs), [p.stderr.read() for _, p in self.procs if p.poll()]
            time.sleep(0.01)
        self.go.touch()

    def wait(self, indices, deadline: float) -> list[dict]:
        """Results of the given workers, in order; a worker still running at the deadline is a hang."""
        out = []
        for i in indices:
            role, p = self.procs[i]
            try:
                stdout, stderr = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"{role} worker {i} still running at the deadline: deadlock or livelock")
            assert p.returncode == 0, f"{role} worker {i} failed:\n{stderr}"
            out.append(json.loads(stdout))
        return out

    def kill(self) -> None:
        """SIGKILL every worker.  One blocked in a FUSE request the daemon already took waits for
        the answer even through SIGKILL: then the daemon is killed too, which aborts the connection
        (the mount fixture clears the dead mount)."""
        for _, p in self.procs:
            if p.poll() is None:
                p.kill()
        deadline = time.monotonic() + 5
        for _, p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                if self.daemon_pid is not None:
                    os.kill(self.daemon_pid, signal.SIGKILL)
                    self.daemon_pid = None
                p.wait(timeout=30)


@pytest.fixture
def workers(tmp_path):
    w = Workers(tmp_path)
    yield w
    w.kill()


def value_file(era: str) -> str:
    return "oom_score_adj" if era == "6.x" else "oom_adj"


def value_range(era: str) -> tuple[int, int]:
    return (-1000, 1000) if era == "6.x" else (-16, 15)


def ps_rows(mnt) -> dict[int, dict]:
    return {row["pid"]: row for row in map(json.loads, mnt.ctl("ps", "--json").splitlines())}


# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERA_NAMES)
def test_concurrent_writers_and_readers_lose_nothing_and_tear_nothing(mount_factory, workers, era):
    """N writers x M writes, alternating their own process's file and one file they all share,
    with readers reading every file throughout."""
    mnt = mount_factory("--kernel", era)
    workers.daemon_pid = mnt.daemon_pid()
    name, (lo, hi) = value_file(era), value_range(era)
    shared = mnt.new_pid("fork", "1", "--comm", "shared")
    own = [mnt.new_pid("fork", "1", "--comm", f"own{i}") for i in range(N)]
    for pid in (shared, *own):
        assert mnt.read(f"{pid}/{name}") == "0\n"
    base = dict(n=N, m=M, lo=lo, hi=hi, step=STEP)
    writers = []
    for i in range(N):
        # half the writers reopen for every write (the shell's >), half keep one descriptor (like sshd);
        # half reach the shared process as /PID, half as /PID/task/PID
        shared_rel = f"{shared}/{name}" if i % 2 == 0 else f"{shared}/task/{shared}/{name}"
        own_path, shared_path = str(mnt.path / f"{own[i]}/{name}"), str(mnt.path / shared_rel)
        writers.append(workers.start("writer", i=i, own=own_path, shared=shared_path, keep=i % 4 >= 2, **base))
    files = {str(mnt.path / f"{pid}/{name}"): i for i, pid in enumerate(own)}
    files[str(mnt.path / f"{shared}/{name}")] = None
    readers = [workers.start("reader", files=files, keep=r % 2 == 1, **base) for r in range(READERS)]
    t0 = time.monotonic()
    workers.release()
    wrote = workers.wait(writers, deadline=time.monotonic() + 120 + N * M * 0.005)
    elapsed = time.monotonic() - t0
    workers.stop.touch()
    read = workers.wait(readers, deadline=time.monotonic() + 60)

    assert [w["errors"] for w in wrote] == [[]] * N  # every write returned its full count
    # no torn, impossible or stale reads, and the readers did read while the writers wrote
    assert [r["bad"] for r in read] == [[]] * READERS
    assert all(r["reads"] >= 20 for r in read), [r["reads"] for r in read]
    # no lost update: each process's own file holds its writer's last value, in every view
    for i, pid in enumerate(own):
        last = wrote[i]["last"]["own"][0]
        assert mnt.read(f"{pid}/{name}") == f"{last}\n"
        assert mnt.read(f"{pid}/task/{pid}/{name}") == f"{last}\n"
        if era == "6.x":
            assert mnt.read(f"{pid}/oom_adj") == f"{score_adj_to_legacy(last)}\n"
    # the shared file holds the last value of the writer whose last write happened last: its value
    # names its writer (values are residues mod N), and that write cannot have ended before another
    # writer's last write began (CLOCK_MONOTONIC is one clock for every process)
    final = int(mnt.read(f"{shared}/{name}"))
    w = next(i for i in range(N) if final % N == i % N)
    last_shared = [x["last"]["shared"] for x in wrote]
    assert final == last_shared[w][0], (final, last_shared)
    assert all(last_shared[w][2] > start for i, (_, start, _) in enumerate(last_shared) if i != w)
    # every reader's last pass, after the last write, read the final values (nothing stale)
    finals = {path: int(Path(path).read_text()) for path in files}
    assert [r["final"] for r in read] == [finals] * READERS
    # ps agrees with the files
    rows = ps_rows(mnt)
    for pid in (shared, *own):
        key = "oom_score_adj" if era == "6.x" else "oom_adj"
        assert rows[pid][key] == int(mnt.read(f"{pid}/{name}"))
    print(f"{era}: {N} writers x {M} writes in {elapsed:.1f}s; {sum(r['reads'] for r in read)} reads")


@pytest.mark.parametrize("era", ERA_NAMES)
def test_forks_and_exits_during_writes_keep_the_model_consistent(mount_factory, workers, era):
    """A controller forks, adds threads and exits processes and threads through the control file
    while writers write to whatever the directory listing shows.

    Each process is written by one writer only (pid % 4), so its final value is exactly that writer's
    last successful write.  Under 2.6.31 each thread has its own value, which a new thread copies from
    the leader at an instant the test cannot know: there the writers write the process's file only.
    """
    mnt = mount_factory("--kernel", era)
    workers.daemon_pid = mnt.daemon_pid()
    per_thread = era == "2.6.31"
    name, (lo, hi) = value_file(era), value_range(era)
    scenario = {int(p) for p in os.listdir(mnt.path) if p.isdigit()}
    first = max(scenario) + 1
    nwriters = 4
    ops = max(1000, M // 2)
    control = str(mnt.path / "fakeproc/control")
    ctl = workers.start("churn_controller", control=control, ops=ops, seed=1)
    wr = [
        workers.start(
            "churn_writer",
            root=str(mnt.path),
            first_pid=first,
            w=nwriters,
            i=i,
            file=name,
            lo=lo,
            hi=hi,
            seed=100 + i,
            max_seconds=120 + ops,
            threads=not per_thread,
        )
        for i in range(nwriters)
    ]
    workers.release()
    (controller,) = workers.wait([ctl], deadline=time.monotonic() + 120 + ops)
    workers.stop.touch()
    results = workers.wait(wr, deadline=time.monotonic() + 60)

    # what the controller did, and when: the model the mount must show
    forked, exited, threads, thread_exits = set(), {}, {}, {}
    for ev in controller["events"]:
        if ev[0] == "fork":
            forked.add(ev[1])
            threads[ev[1]] = {ev[1]}
        elif ev[0] == "thread":
            threads[ev[1]].add(ev[2])
        elif ev[0] == "exit-thread":
            threads[ev[1]].discard(ev[2])
            thread_exits[ev[2]] = ev[3:]
        else:
            exited[ev[1]] = ev[2:]
    live = {int(p): sorted(map(int, tids)) for p, tids in controller["live"].items()}
    assert set(live) == forked - set(exited)
    assert {p: sorted(t - {p}) for p, t in threads.items() if p in live} == live

    # every write answered a count, or ESRCH/ENOENT for a process or thread already exiting
    last: dict[int, int] = {}
    written: dict[int, set[int]] = {}
    wrote, refused = 0, {"ESRCH": 0, "open ENOENT": 0}
    for r in results:
        for pid, tid, v, _t_open, t_write, t_end, out in r["ops"]:
            # the exits that end this file: its process's, and its thread's if it names one
            exits = [e for e in (exited.get(pid), thread_exits.get(tid) if tid != pid else None) if e]
            if isinstance(out, int):
                assert out == len(b"%d" % v), (pid, tid, v, out)
                # a write that began after the exit was over cannot succeed
                assert all(t_write < end for _, end in exits), (pid, tid, "written after its exit", exits, t_write)
                last[pid] = v
                written.setdefault(pid, {0}).add(v)
                wrote += 1
            else:
                assert out in refused, (pid, tid, out)
                refused[out] += 1
                # and only for one that was exiting (its exit began before the write ended)
                assert any(start < t_end for start, _ in exits), (pid, tid, out, "but it was not exiting")
    assert wrote >= 50, "the writers hardly wrote: the test proves nothing"

    # the listing, ps, the task directories and the files agree with each other and with the model
    listed = {int(p) for p in os.listdir(mnt.path) if p.isdigit()}
    rows = ps_rows(mnt)
    assert listed == set(rows) == scenario | set(live)
    for pid in live:
        assert sorted(int(t) for t in os.listdir(mnt.path / f"{pid}/task")) == sorted({pid, *live[pid]})
        assert rows[pid]["threads"] == len(live[pid]) + 1
        value = last.get(pid, 0)  # forked from init, at 0
        for rel in [f"{pid}", f"{pid}/task/{pid}"]:
            assert mnt.read(f"{rel}/{name}") == f"{value}\n", (rel, value)
        for tid in live[pid]:
            got = int(mnt.read(f"{pid}/task/{tid}/{name}"))
            if per_thread:  # a value the leader had when the thread was made
                assert got in written.get(pid, {0}), (pid, tid, got)
            else:
                assert got == value, (pid, tid, got, value)
        oom_adj = score_adj_to_legacy(value) if era == "6.x" else value
        assert rows[pid]["oom_adj"] == oom_adj == int(mnt.read(f"{pid}/oom_adj"))
        assert rows[pid]["oom_score"] == int(mnt.read(f"{pid}/oom_score"))
    for pid in exited:
        assert not (mnt.path / str(pid)).exists()
    print(f"{era}: {ops} control ops ({len(forked)} forks, {len(exited)} exits), {wrote} writes, refused {refused}")
