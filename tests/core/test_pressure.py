"""Memory pressure over time: allocation rates, the clock, the allocator calling the OOM killer, the change stream.

The model's rules (machine/pressure.py) are checked on the Machine directly; what a user does
(ctl alloc, ctl tick, --clock, fakeproc log) through real mounts and the real CLI.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakeproc.kernel.eras import ERAS
from fakeproc.machine import Machine
from fakeproc.machine.scenario import build_machine, dump_scenario, load_scenario
from fakeproc.machine.task import PAGE_SIZE

ERA_LIST = list(ERAS)
#: the default story: free RAM + free swap when loaded, in pages, and memhog's 16M/s in pages
DEFAULT_ROOM = 81152 + 262144
MEMHOG_RATE = (16 << 20) // PAGE_SIZE


def events(m: Machine, kind: str, since: int = 0) -> list[dict]:
    return [ev for ev in m.journal.since(since) if ev["type"] == kind]


def used(m: Machine) -> tuple[int, int]:
    rss = sum(mm.rss for mm in m.address_spaces())
    swap = sum(mm.swap for mm in m.address_spaces())
    return rss, swap


# ----------------------------------------------------------------------------------- the model


@pytest.mark.parametrize("era", ERA_LIST)
def test_the_default_story_runs_memory_out_and_the_allocator_is_current(era):
    m = load_scenario(None, ERAS[era])
    assert m.free_pages() == (81152, 262144)
    assert m.alloc_rate(500) == 16 << 20
    m.tick(60)  # 60 s x 16M: 960M, within RAM + swap
    assert m.processes[500].mm.total_vm * PAGE_SIZE == (2560 + 960) << 20
    assert m.free_pages() == (0, DEFAULT_ROOM - 60 * MEMHOG_RATE)  # RAM first, then swap
    assert not events(m, "oom")
    m.tick(60)
    (oom,) = events(m, "oom")
    # the (room+1)-th page is asked for at 343297 / 4096 s after the story's start
    assert oom["time"] == pytest.approx(172800 + (DEFAULT_ROOM + 1) / MEMHOG_RATE, abs=1e-5)
    assert oom["current"] == 500 and oom["victim"] == 500 and oom["killed"] == [500]
    header = next(ev["text"] for ev in events(m, "kernel") if "invoked oom-killer" in ev["text"])
    word = "oom_score_adj" if era == "6.x" else "oomkilladj" if era == "2.6.31" else "oom_adj"
    assert header.startswith(f"memhog invoked oom-killer: gfp_mask={ERAS[era].gfp_fault}, order=0, {word}=0")
    assert 500 not in m.processes and 500 not in m.pressure.allocators
    assert m.uptime == 172800 + 120  # the clock goes on to the end of the step
    assert m.free_pages()[0] > 0  # memhog's memory came back


def test_the_header_names_the_allocator_not_the_victim():
    m = Machine(ERAS["6.x"], ram=1 << 30, swap=0, uptime=1000)
    m.spawn("init", pid=1)
    big = m.fork(1, comm="big")
    m.set_memory(big.tid, total_vm=150_000, rss_anon=150_000)
    small = m.fork(1, comm="small")
    m.set_memory(small.tid, total_vm=1000, rss_anon=1000)
    small.signal.oom_score_adj = -500
    m.set_alloc_rate(small.tid, 100 << 20)
    m.tick(10)
    (oom,) = events(m, "oom")
    assert oom["current"] == small.tid and oom["victim"] == big.tid
    assert any(ev["text"].startswith("small invoked oom-killer:") and ev["text"].endswith("oom_score_adj=-500")
               for ev in events(m, "kernel"))
    assert small.tid in m.processes  # it got its memory and goes on allocating
    assert small.mm.total_vm == 1000 + 10 * 25600


def test_2_6_32_uses_the_allocators_cpuset():
    """The legacy badness() divides by 8 for tasks outside current's mems: the allocator's, not the caller's."""
    m = Machine(ERAS["2.6.32"], ram=161_000 * PAGE_SIZE, swap=0, uptime=100_000)
    m.spawn("init", pid=1)
    far = m.fork(1, comm="far")
    m.set_memory(far.tid, total_vm=100_000, rss_anon=100_000)
    far.mems = frozenset({1})
    near = m.fork(1, comm="near")
    m.set_memory(near.tid, total_vm=60_000, rss_anon=60_000)
    hog = m.fork(1, comm="hog")
    m.set_memory(hog.tid, total_vm=10, rss_anon=10)
    m.set_alloc_rate(hog.tid, 1 << 30)
    m.tick(1)
    assert events(m, "oom")[0]["victim"] == near.tid  # far: 100000 / 8 < near's 60000


def test_nothing_killable_panics_and_the_clock_stops_there():
    """2.6.32 __out_of_memory(): ``panic("Out of memory and no killable processes...\n")``: the machine stops
    at the failing allocation (a second in), not at the end of the step."""
    m = Machine(ERAS["2.6.32"], ram=1 << 20, swap=0, uptime=10)
    m.spawn("init", pid=1)
    p = m.fork(1, comm="locked")
    m.store_adj(p, -17)
    m.set_alloc_rate(p.tid, 1 << 20)
    m.tick(3600)
    assert 10 < m.uptime < 12 and m.halt.reason == "Out of memory and no killable processes..."
    assert [ev["nothing_killable"] for ev in events(m, "oom")] == [True]
    assert "Out of memory and no killable processes" in m.log.text()
    assert used(m)[0] <= m.ram_pages


def test_2_6_31_livelock_does_not_hang_the_clock():
    m = Machine(ERAS["2.6.31"], ram=1 << 20, swap=0, uptime=10)
    m.spawn("init", pid=1)
    fat = m.fork(1, comm="fat")
    m.clone_thread(fat.tid).oom_adj = -17
    m.set_alloc_rate(fat.tid, 1 << 20)
    m.tick(60)
    (oom,) = events(m, "oom")
    assert oom["livelock"] and m.uptime == 70


@given(era=st.sampled_from(ERA_LIST),
       plan=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 64 << 20), st.floats(0, 30)), min_size=1,
                     max_size=12))
@settings(deadline=None)
def test_memory_never_overflows_and_every_oom_is_called_by_a_live_allocator(era, plan):
    m = Machine(ERAS[era], ram=256 << 20, swap=64 << 20, uptime=5000)
    m.spawn("init", pid=1)
    pids = []
    for i in range(4):
        p = m.fork(1, comm=f"p{i}")
        m.set_memory(p.tid, total_vm=4000 * (i + 1), rss_anon=4000 * (i + 1))
        pids.append(p.tid)
    for who, rate, dt in plan:
        if pids[who] in m.processes:
            m.set_alloc_rate(pids[who], rate)
        seq = m.journal.seq
        alive = {pid for pid in m.pressure.allocators if pid in m.processes}
        start = m.uptime
        m.tick(dt)
        assert m.uptime == pytest.approx(start + dt)
        rss, swap = used(m)
        assert rss <= m.ram_pages and swap <= m.swap_pages
        for ev in events(m, "oom", seq):
            assert ev["current"] in alive and start <= ev["time"] <= start + dt + 1e-6


@given(rate=st.integers(1, 64 << 20), steps=st.lists(st.floats(0.001, 5), min_size=1, max_size=10))
def test_pages_are_whole_and_steps_add_up(rate, steps):
    """Allocating over many small ticks gives what one tick of the same total gives (no OOM on the way)."""
    def machine() -> Machine:
        m = Machine(ERAS["6.x"], ram=64 << 30, swap=0, uptime=100)
        m.spawn("init", pid=1)
        m.set_alloc_rate(m.fork(1, comm="a").tid, rate)
        return m

    one, many = machine(), machine()
    one.tick(sum(steps))
    for s in steps:
        many.tick(s)
    a, b = one.processes[2].mm.total_vm, many.processes[2].mm.total_vm
    assert abs(a - b) <= 1  # float rounding of the summed steps may move the last page
    assert a == int(rate / PAGE_SIZE * sum(steps) + 1e-9) or abs(a - rate / PAGE_SIZE * sum(steps)) < 1


@pytest.mark.parametrize("era", ERA_LIST)
def test_rates_and_the_clock_survive_save_and_load(era):
    m = load_scenario(None, ERAS[era])
    m.set_alloc_rate(401, 3 << 20)
    m.clock_scale = 60
    text = dump_scenario(m)
    again = build_machine(text, ERAS[era])
    assert again.alloc_rate(500) == 16 << 20 and again.alloc_rate(401) == 3 << 20
    assert again.clock_scale == 60 and dump_scenario(again) == text


def test_the_journal_shows_the_2_6_31_rc_regression_as_it_happens():
    m = load_scenario(None, ERAS["2.6.31-rc"])
    seq = m.journal.seq

    class Writer:
        tid = 402

        def privileged(self) -> bool:
            return True

        def caller(self):
            raise AssertionError("not needed")

    m.write_oom_adj(400, b"-17", Writer())  # the scheduler protects itself again ...
    m.write_oom_adj(402, b"0", Writer())  # ... and its vfork child unprotects it
    first, second = events(m, "write", seq)
    assert first == {"seq": first["seq"], "time": 172800.0, "type": "write", "pid": 400, "tid": 400,
                     "file": "oom_adj", "value": -17, "by": 402, "also": {"402": -17}}
    assert second["pid"] == 402 and second["value"] == 0 and second["also"] == {"400": 0}
