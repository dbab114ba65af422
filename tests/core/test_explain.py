"""explain() ends on the oom_score the file shows; rank() agrees with the killer."""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fakeproc.kernel.eras import ERAS  # noqa: E402
from fakeproc.machine.explain import explain, rank  # noqa: E402

from .test_select_fast import OPS, build  # noqa: E402


@pytest.mark.parametrize("era", list(ERAS))
@settings(max_examples=100, deadline=None)
@given(ops=OPS, mems=st.sampled_from([None, frozenset({1})]))
def test_explanations_end_on_the_score_and_the_ranking_on_the_choice(era, ops, mems):
    m = build(era, ops)
    for tid in m.tasks:
        steps, score = explain(m, tid)
        assert score == int(m.read_oom_score(tid)), [s.what for s in steps]
        assert steps and (steps[-1].points in (score, None))
    ranked, chosen = rank(m, mems)
    sel = m.select_bad_process(mems)
    assert (chosen.tid if chosen else None) == (sel[0].tid if sel else None)
    if chosen is not None:
        entry = next(c for c in ranked if c.task is chosen)
        assert entry.skipped is None and entry.points == sel[1]


def test_a_hand_checked_explanation():
    m = build("2.6.32", [])
    p = m.fork(1, comm="hog")
    m.set_memory(p.tid, total_vm=655360)
    m.charge_cpu(p.tid, 600)
    steps, score = explain(m, p.tid)
    assert [s.what.split(":")[0] for s in steps][:1] == ["total_vm of its mm"]
    assert score == int(m.read_oom_score(p.tid))
