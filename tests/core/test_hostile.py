"""Hostile callers through the filesystem core, in-process: arbitrary bytes, odd opens, odd offsets,
odd names, files held open across an exit (the rules and strategies: tests/hostile.py).

Nothing stands between a write and its handler here, so even a zero-byte write gets procfs's answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fakeproc.fs.tree import Handle
from fakeproc.kernel import ERA_NAMES

from ..harness import CoreMount
from ..hostile import (
    ALLOWED_ERRNOS,
    OPENS,
    WHERE,
    WRITE_CASES,
    WRITE_LIMIT,
    after_exit_expectations,
    errname,
    model_write,
    names,
    outcome,
    shown,
    value_files,
    with_examples,
    write_plans,
)


@dataclass
class Target:
    """A forked process with a second thread, on one era's machine behind the core."""

    core: CoreMount
    era: str
    pid: int
    tid: int
    positions: dict[int, int] = field(default_factory=dict)

    def rel(self, where: str, name: str) -> str:
        return WHERE[where].format(pid=self.pid, tid=self.tid, name=name)

    def holder(self, where: str) -> str:
        return "thread" if where == "thread" and self.era == "2.6.31" else "leader"

    def snapshot(self) -> dict[str, bytes]:
        return {f"{w}/{n}": self.core.read(self.rel(w, n)).encode() for w in WHERE for n in value_files(self.era)}

    def read_state(self) -> dict[str, int]:
        own = "oom_score_adj" if self.era == "6.x" else "oom_adj"
        return {h: int(self.core.read(self.rel(w, own))) for h, w in (("leader", "pid"), ("thread", "thread"))}

    def expected(self, state: dict[str, int]) -> dict[str, bytes]:
        return {f"{w}/{n}": b"%d\n" % shown(self.era, n, state[self.holder(w)])
                for w in WHERE for n in value_files(self.era)}


def new_target(core: CoreMount, era: str) -> Target:
    pid = core.new_pid("fork", "1", "--comm", "hostile")
    return Target(core, era, pid, core.new_pid("thread", str(pid)))


@pytest.fixture(scope="module")
def machines():
    """machines(era) -> a Target on that era's machine; one machine per era for the whole module."""
    made: dict[str, Target] = {}

    def get(era: str) -> Target:
        if era not in made:
            made[era] = new_target(CoreMount(era), era)
        return made[era]

    return get


def run_plan(t: Target, where: str, name: str, plan, on_answer) -> None:
    """As tests/mount/test_hostile.py's run_plan, with the file position kept as the kernel keeps it."""
    how, loop, writes = plan
    flags, read_first = OPENS[how]
    core = t.core
    h = core.open(t.rel(where, name), flags)
    pos = 0
    try:
        if read_first:
            on_answer(b"<read>", core.pread(h, 4096, 0))
        for chunk, offset in writes:
            pending = chunk
            while True:
                at = pos if offset is None else offset
                answer = outcome(lambda at=at, pending=pending: core.pwrite(h, pending, at))
                if offset is None and isinstance(answer, int):
                    pos += answer
                on_answer(pending, answer)
                if not (loop and isinstance(answer, int) and 0 < answer < len(pending)):
                    break
                pending = pending[answer:]
    finally:
        core.close(h)


@pytest.mark.parametrize("era,where,name", WRITE_CASES)
@with_examples()
@given(plan=write_plans())
def test_arbitrary_writes_get_kernel_answers_and_store_what_the_parser_says(machines, era, where, name, plan):
    t = machines(era)
    state = t.read_state()
    assert t.snapshot() == t.expected(state), "the views of the value disagree before any write"
    seen: list[tuple[bytes, int | str]] = []

    def check(sent: bytes, answer) -> None:
        seen.append((sent, answer))
        if sent == b"<read>":  # "r+": the old value first
            assert answer == t.expected(state)[f"{where}/{name}"]
            return
        if isinstance(answer, int):
            assert (1 if sent else 0) <= answer <= min(len(sent), WRITE_LIMIT), seen
        else:
            assert answer in {errname(e) for e in ALLOWED_ERRNOS[era]}, seen
        want, stored = model_write(era, name, sent, through_fuse=False)
        assert answer == want, seen
        if stored is not None:
            state[t.holder(where)] = stored
        assert t.snapshot() == t.expected(state), seen

    run_plan(t, where, name, plan, check)


def existing_names(core: CoreMount, rel: str) -> set[str]:
    names_ = set(core.listdir(rel))
    if rel == "":
        names_ |= {tid for pid in list(names_) if pid.isdigit() for tid in core.listdir(f"{pid}/task")}
    return names_ | {".", ".."}


@given(name=names, era=st.sampled_from(ERA_NAMES), rel=st.sampled_from(["", "{pid}", "{pid}/task", "{pid}/task/{tid}"]))
def test_arbitrary_names_are_enoent(machines, name, era, rel):
    t = machines(era)
    rel = rel.format(pid=t.pid, tid=t.tid)
    assume(name not in existing_names(t.core, rel))
    path = f"{rel}/{name}" if rel else name
    for flags in (os.O_RDONLY, os.O_WRONLY):
        assert outcome(lambda flags=flags: t.core.open(path, flags)) == "ENOENT", (rel, name)
    assert outcome(lambda: t.core.stat(path)) == "ENOENT"


@pytest.mark.parametrize("era", ERA_NAMES)
def test_paths_that_do_not_exist_are_enoent(machines, era):
    t = machines(era)
    absent = ["99999/oom_adj", "0/oom_adj", "-1/oom_adj", "+{pid}/oom_adj", "0{pid}/oom_adj", "{pid}x/oom_adj",
              " {pid}/oom_adj", "99999999999999999999/oom_adj", "{pid}/nonexistent", "{pid}/task/99999/oom_adj",
              "{pid}/task/1/oom_adj", "{pid}/task/{tid}/task", "{pid}/task/{tid}/nonexistent",
              "fakeproc/nonexistent", "nonexistent", "\u0661", "\uff11", "\u00b2", "{pid}/task/\u0660{pid}",
              "{pid}/task/0{tid}", "self", "thread-self"]  # no self without real processes behind the machine
    if era != "6.x":
        absent += ["{pid}/oom_score_adj", "{pid}/task/{tid}/oom_score_adj"]
    for rel in absent:
        rel = rel.format(pid=t.pid, tid=t.tid)
        assert outcome(lambda rel=rel: t.core.stat(rel)) == "ENOENT", rel
        assert outcome(lambda rel=rel: t.core.open(rel, os.O_WRONLY | os.O_TRUNC)) == "ENOENT", rel
    assert outcome(lambda: t.core.stat(t.rel("pid", "oom_adj") + "/x")) == "ENOTDIR"


# ------------------------------------------------------------------------------------------------
# Files held open while their process (or thread) exits: parse -> range -> ESRCH (section 3.1.4).


def open_all(t: Target) -> dict[str, Handle]:
    hs = {}
    for where in ("pid", "thread"):
        for name in value_files(t.era):
            hs[f"{where}/{name}"] = t.core.open(t.rel(where, name), os.O_RDWR)
        hs[f"{where}/oom_score"] = t.core.open(t.rel(where, "oom_score"))
    return hs


@pytest.mark.parametrize("era", ERA_NAMES)
def test_a_process_that_exits_under_open_files(era):
    core = CoreMount(era)
    t = new_target(core, era)
    hs = open_all(t)
    assert core.ctl("exit", str(t.pid)) == f"exited: {t.pid} {t.tid}\n"
    for key, h in hs.items():
        if key.endswith("oom_score"):
            assert [outcome(lambda h=h, o=o: core.pread(h, 100, o)) for o in (0, 100)] == ["ESRCH", "ESRCH"]
            continue
        want = after_exit_expectations(era, key.split("/")[-1])
        assert {data: outcome(lambda h=h, data=data: core.pwrite(h, data)) for data in want} == want, key
        assert outcome(lambda h=h: core.pread(h, 100, 0)) == "ESRCH"
    assert outcome(lambda: core.stat(t.rel("pid", "oom_adj"))) == "ENOENT"
    assert str(t.pid) not in core.listdir()
    # a new process that gets the old pid is not what the open files were about
    core.machine.fork(1, pid=t.pid)
    assert outcome(lambda: core.pwrite(hs["pid/oom_adj"], b"3")) == "ESRCH"
    assert core.read(f"{t.pid}/oom_adj") == "0\n"


@pytest.mark.parametrize("era", ERA_NAMES)
def test_a_thread_that_exits_under_open_files(era):
    core = CoreMount(era)
    t = new_target(core, era)
    hs = open_all(t)
    assert core.ctl("exit", str(t.tid)) == f"exited: {t.tid}\n"
    for key, h in hs.items():
        alive = key.startswith("pid/")  # the process lives on; the thread's files are gone
        if not key.endswith("oom_score"):
            assert outcome(lambda h=h: core.pwrite(h, b"3\n")) == (2 if alive else "ESRCH"), key
        assert isinstance(outcome(lambda h=h: core.pread(h, 100, 0)), bytes) == alive, key
    assert core.listdir(f"{t.pid}/task") == [str(t.pid)]


@pytest.mark.parametrize("era", ERA_NAMES)
def test_reads_at_odd_offsets_and_sizes(machines, era):
    t = machines(era)
    for where in WHERE:
        for name in (*value_files(era), "oom_score", "status", "stat", "comm"):
            whole = t.core.read(t.rel(where, name)).encode()
            h = t.core.open(t.rel(where, name))
            try:
                for offset in (0, 1, 2, 3, 100, 4096, 1 << 40):
                    for size in (0, 1, 2, 3, 4096):
                        assert t.core.pread(h, size, offset) == whole[offset:offset + size], (where, name, offset)
            finally:
                t.core.close(h)
