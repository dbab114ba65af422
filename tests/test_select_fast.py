"""The killer's inlined selection loops choose exactly what the per-task badness() specification chooses."""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fakeproc.kernel.caps import CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_SYS_RESOURCE  # noqa: E402
from fakeproc.kernel.eras import ERAS  # noqa: E402
from fakeproc.machine import Machine, MachineError  # noqa: E402

OPS = st.lists(st.tuples(st.sampled_from(["fork", "vfork", "clone", "thread", "exec", "exit", "mem", "cpu", "nice",
                                          "caps", "adj", "tick", "swapoff", "mems"]),
                         st.integers(0, 10_000), st.integers(-1000, 1000)), max_size=60)


def build(era: str, ops) -> Machine:
    m = Machine(ERAS[era], ram=1 << 30, swap=256 << 20, uptime=3600)
    m.spawn("init", pid=1)
    m.spawn("kthreadd", pid=2, kthread=True)
    for op, a, b in ops:
        pids = list(m.tasks)
        tid = pids[a % len(pids)]
        try:
            if op in ("fork", "vfork", "clone"):
                m.fork(tid, vfork=op == "vfork", share_vm=op == "clone")
            elif op == "thread":
                m.clone_thread(tid)
            elif op == "exec":
                m.exec(tid, "job", vm=(a % 97) << 20, rss=(a % 13) << 20)
            elif op == "exit":
                m.exit(tid)
            elif op == "mem":
                m.set_memory(tid, total_vm=a * 37, rss_anon=a * 5, rss_file=abs(b), swap=a % 300, pgtables=a * 8)
            elif op == "cpu":
                m.charge_cpu(tid, a / 7, system=b > 0)
            elif op == "nice":
                m.task(tid).nice = b % 40 - 20
            elif op == "caps":
                m.task(tid).caps = (b & 1) << CAP_SYS_ADMIN | (b >> 1 & 1) << CAP_SYS_RESOURCE | (
                    b >> 2 & 1) << CAP_SYS_RAWIO
            elif op == "adj":
                t = m.task(tid)
                if m.era.has_score_adj:
                    m.store_adj(t, b)
                else:
                    m.store_adj(t, -17 if b < -900 else b % 32 - 16)
            elif op == "tick":
                m.tick(a * 3)
            elif op == "swapoff":
                m.task(tid).oom_origin = b > 900
            elif op == "mems":
                m.task(tid).mems = frozenset({b % 2})
        except MachineError:
            pass
    return m


@pytest.mark.parametrize("era", list(ERAS))
@settings(max_examples=150, deadline=None)
@given(ops=OPS, mems=st.sampled_from([None, frozenset({0}), frozenset({1})]))
def test_fast_selection_equals_the_reference(era, ops, mems):
    m = build(era, ops)
    fast, ref = m.select_bad_process(mems), m.select_bad_process_reference(mems)
    assert (fast and (fast[0].tid, fast[1])) == (ref and (ref[0].tid, ref[1]))
