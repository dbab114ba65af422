"""The pytest plugin, used the way a scheduler's own test suite would use it."""

from __future__ import annotations

import time

import pytest

pytest_plugins = ["pytester"]


@pytest.mark.fakeproc(kernel="6.x", kill=True)
def test_a_protected_scheduler_and_the_job_the_killer_takes(fakeproc_machine, tmp_path):
    m = fakeproc_machine
    ready = tmp_path / "job"
    sched = m.popen(f"echo -1000 > /proc/self/oom_score_adj; "
                    f"sh -c 'echo 1000 > /proc/self/oom_score_adj; echo $$ > {ready}.tmp; mv {ready}.tmp {ready}; "
                    f"exec sleep 60' & wait $!; echo $? > {tmp_path}/status")
    try:
        for _ in range(500):
            if ready.exists():
                break
            time.sleep(0.02)
        job = int(ready.read_text())
        assert m.read(job, "oom_score_adj") == "1000"
        assert m.read(sched.pid, "oom_score_adj") == "-1000"
        report = m.oom()
        assert report.victim == (job, "sleep") and job in report.killed
        m.assert_chosen(pid=job, comm="sleep")
        # the change stream saw both writes, by the processes themselves, and the kill
        writes = {ev["pid"]: ev for ev in m.events(type="write")}
        assert writes[job]["value"] == 1000 and writes[job]["by"] == job
        assert writes[sched.pid]["value"] == -1000 and writes[sched.pid]["by"] == sched.pid
        assert [ev["pid"] for ev in m.events(type="kill")] == [job]
        assert sched.wait(timeout=30) == 0
        assert (tmp_path / "status").read_text() == "137\n"  # the job died of SIGKILL; the scheduler saw it
    finally:
        if sched.poll() is None:
            sched.kill()


def test_one_machine_per_era_from_the_factory(fakeproc_factory):
    old, new = fakeproc_factory(kernel="2.6.32"), fakeproc_factory(kernel="6.x")
    assert old.run("test -e /proc/self/oom_score_adj || echo absent").stdout == "absent\n"
    assert new.run("cat /proc/self/oom_score_adj").stdout == "0\n"
    out = old.run("echo -17 > /proc/self/oom_adj; cat /proc/self/oom_adj").stdout
    assert out == "-17\n"
    assert "Killed process" not in old.dmesg()


def test_a_suite_uses_it_in_a_few_lines(pytester):
    pytester.makepyfile("""
        import pytest

        @pytest.mark.fakeproc(kernel="2.6.31-rc")
        def test_vfork_child_unprotects_parent(fakeproc_machine):
            out = fakeproc_machine.run("echo -17 > /proc/self/oom_adj; cat /proc/self/oom_adj").stdout
            assert out == "-17\\n"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
