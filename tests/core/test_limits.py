"""No input breaks the machine: every number has the kernel's type and range, every name the kernel's form,
every file read is a file, and what grows (the log) is bounded.  In-process, through the core and the API."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from fakeproc.kernel.badness import modern_oom_score
from fakeproc.kernel.eras import ERAS
from fakeproc.kernel.limits import PID_MAX_DEFAULT, RESERVED_PIDS, ULONG_MAX
from fakeproc.machine import Machine, MachineError
from fakeproc.machine.klog import LOG_BUF_LEN, KernelLog
from fakeproc.machine.scenario import ScenarioError, build_machine, load_scenario
from fakeproc.verbs import format_ps, printable

from ..harness import CoreMount

HUGE = "9" * 400


def refused(core: CoreMount, *words: str) -> str:
    """A control line the machine refuses with EINVAL and a message (not a traceback, not a crash)."""
    reply = core.ctl(*words, check=False)
    assert reply.startswith("error: "), (words, reply)
    return reply


@pytest.mark.parametrize("words", [
    ("tick", HUGE), ("cpu", "600", HUGE), ("alloc", "500", HUGE), ("clock", HUGE + "x"), ("clock", "1e3x"),
    ("fork", "1", "--uid", str(2**32)), ("fork", "1", "--uid", "-1"), ("set", "500", "--gid", str(2**32)),
    ("mem", "500", "--vm", HUGE), ("mem", "500", "--vm", "1M"), ("exec", "500", "x", "--vm", "1M", "--rss", "2M"),
    ("grow", "500", HUGE), ("set", "500", "--start", HUGE), ("fork", HUGE), ("set", "500", "--caps", str(1 << 50)),
])
def test_huge_or_impossible_numbers_are_refused_and_the_machine_goes_on(core, words):
    refused(core, *words)
    core.ctl("alloc", "500", "16M")
    assert "uptime 172801.00s" in core.ctl("tick", "1s")
    assert core.read("500/oom_score").strip().isdigit() and core.read("uptime").startswith("172801.00 ")
    assert "memhog" in core.ctl("ps")


def test_the_uptime_stops_at_jiffies_64():
    m = Machine(ERAS["2.6.32"], hz=1000)
    m.spawn("init", pid=1)
    with pytest.raises(MachineError) as e:
        m.tick(ULONG_MAX / 1000)
    assert e.value.errno == errno.EINVAL
    m.tick(ULONG_MAX // 1000 - 1024)  # nearly as far as it goes
    assert m.read_oom_score(1) == b"0\n"


def test_pids_wrap_at_pid_max_past_the_reserved_ones_then_run_out():
    """alloc_pid(): idr_alloc_cyclic() up to pid_max, again from RESERVED_PIDS, then EAGAIN."""
    m = Machine(ERAS["6.x"])
    m.spawn("init", pid=1)
    m.table.set_pid_max(RESERVED_PIDS + 4)  # pids 1..303: init, then 300..303 after the wrap
    m.table.next_pid = RESERVED_PIDS + 2
    got = [m.fork(1).tgid for _ in range(4)]
    assert got == [302, 303, 300, 301]
    with pytest.raises(MachineError) as e:
        m.fork(1)
    assert e.value.errno == errno.EAGAIN
    m.exit(301)
    assert m.fork(1).tgid == 301
    assert PID_MAX_DEFAULT == 32768


def test_a_score_wraps_as_the_kernels_unsigned_long_and_long_do():
    # legacy: total_vm + half of each child's, an unsigned long sum
    m = Machine(ERAS["2.6.32"], ram=1 << 30)
    m.spawn("init", pid=1)
    p = m.fork(1, pid=10, uid=1000)
    m.set_memory(10, total_vm=ULONG_MAX, rss_anon=0)
    c = m.fork(10, pid=11, uid=1000)
    m.set_memory(11, total_vm=ULONG_MAX, rss_anon=0)
    expect = (ULONG_MAX + ULONG_MAX // 2 + 1) & ULONG_MAX
    assert int(m.read_oom_score(p.tid)) == expect == m.badness(p) < 1 << 64
    assert m.select_bad_process() == m.select_bad_process_reference()
    # 6.x: a long that wrapped prints as proc_oom_score()'s %lu does
    assert modern_oom_score(1 << 62, 10) < 1 << 64
    assert c.tgid == 11


@pytest.mark.parametrize("text, message", [
    ('[[process]]\npid = 1\ncomm = "init"\nuid = 4294967296\n', "uid must be 0..4294967294"),
    ('[[process]]\npid = -5\ncomm = "init"\n', "pid must be 1.."),
    ('[[process]]\npid = 0\ncomm = "init"\n', "pid must be 1.."),
    ('[[process]]\npid = 4294967296\ncomm = "init"\n', "pid must be 1.."),
    ('[[process]]\npid = 1\ncomm = "init"\nvm = "1M"\nrss = "2M"\n', "vm is below what is resident"),
    ('[machine]\nuptime = inf\n[[process]]\npid = 1\ncomm = "init"\n', "not a finite duration"),
    ('[[process]]\npid = 1\ncomm = "init"\nthreads = 1e9\n', "threads must be an integer"),
    ('[[process]]\npid = 1\ncomm = "init"\nthreads = 100000000\n', "threads must be 1..4194304"),
    ('[[process]]\npid = 1\ncomm = "init"\nthreads = 100000\n', "threads must be 1..65536 (threads-max"),
    ('[[process]]\npid = 1\ncomm = "init"\nnice = 40\n', "nice must be -20..19"),
    ('[machine]\nram = 4095\n[[process]]\npid = 1\ncomm = "init"\n', "ram must be at least a page"),
    ('[[process]]\npid = 1\ncomm = "init"\nmems = [5000]\n', "memory node must be 0..1023"),
    ('[[process]]\npid = 1\ncomm = "init"\ncaps = 0x1ffffffffffff\n', "caps is a bit mask"),
    ("x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ('[machine]\npid_max = 100\n[[process]]\npid = 1\ncomm = "init"\n', "pid_max must be 301.."),
])
def test_scenario_values_outside_the_kernels_ranges_are_refused_with_a_message(text, message):
    with pytest.raises(ScenarioError) as e:
        build_machine(text, ERAS["2.6.32"], "f.toml")
    assert message in str(e.value) and "f.toml" in str(e.value), str(e.value)


def test_a_scenario_must_be_a_regular_file_of_bounded_size(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero", tmp_path):
        with pytest.raises(ScenarioError) as e:
            load_scenario(path, ERAS["2.6.32"])  # no hang on the FIFO, no endless read of /dev/zero
        assert "not a regular file" in str(e.value) or "Is a directory" in str(e.value), e.value
    link = tmp_path / "zero.toml"
    link.symlink_to("/dev/zero")
    with pytest.raises(ScenarioError, match="not a regular file"):
        load_scenario(link, ERAS["2.6.32"])
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_names_are_kept_as_the_kernel_keeps_them_and_shown_safely():
    core = CoreMount()
    hostile = "\x1b]0;owned\x07\x1b[2J"
    core.ctl("set", "500", "--comm", hostile)
    assert core.read("500/comm") == hostile[:15] + "\n"  # the bytes, as the kernel keeps them
    row = next(r for r in core.ctl("ps").splitlines() if r.split()[0] == "500")
    assert "\x1b" not in row and "\x07" not in row and "?]0;owned??[2J" in row
    core.ctl("set", "500", "--comm", "é" * 10)  # 20 bytes: cut to 15, inside a character
    assert core.machine.processes[500].comm.encode("utf-8", "surrogateescape") == ("é" * 10).encode()[:15]
    assert printable(core.machine.processes[500].comm).endswith("?")
    assert format_ps([core.machine.describe(core.machine.processes[500])], False).isprintable() is False  # has \n only


def test_a_control_line_ends_at_a_newline_only(core):
    pid = core.new_pid("fork", "1", "--comm", "a\x1cb\x85c\u2028d")
    assert core.read(f"{pid}/comm") == "a\x1cb\x85c\u2028d"[:15].encode()[:15].decode(errors="ignore") + "\n"


def test_a_control_line_that_is_not_utf8_is_an_error_with_a_message(core):
    h = core.open("fakeproc/control", os.O_RDWR)
    with pytest.raises(OSError) as e:
        core.pwrite(h, b"fork 1 --comm \xff\n", 0)
    assert e.value.errno == errno.EINVAL and b"UTF-8" in core.pread(h, 100, 0)
    core.close(h)


def test_the_log_is_a_ring_buffer_and_reads_cost_what_they_return(core, monkeypatch):
    for i in range(20000):
        core.machine.printk(f"line {i} " + "x" * 40)
    text = core.read("fakeproc/dmesg")
    assert len(text) <= LOG_BUF_LEN and text.splitlines()[-1].endswith("line 19999 " + "x" * 40)
    built = []
    real_text = KernelLog.text
    monkeypatch.setattr(KernelLog, "text", lambda self: built.append(1) or real_text(self))
    h = core.open("fakeproc/dmesg")
    offset = 0
    while chunk := core.pread(h, 1000, offset):
        offset += len(chunk)
    core.close(h)
    assert offset == len(text.encode()) and len(built) == 1  # built once for the open, not once per read


def test_save_replaces_only_regular_files_and_cleans_up_after_a_killed_save(core, tmp_path):
    fifo, link = tmp_path / "fifo", tmp_path / "stdout"
    os.mkfifo(fifo)
    link.symlink_to("/dev/stdout")
    for target, kind in ((fifo, "a FIFO"), ("/dev/null", "a character device"), (link, "a symbolic link"),
                         (tmp_path, "a directory")):
        reply = core.ctl("save", str(target), check=False)
        assert reply.startswith("error: ") and kind in reply and "regular files" in reply, reply
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and os.readlink(link) == "/dev/stdout"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    # what a daemon SIGKILLed during a save leaves: its temporary file, named after a pid that is gone
    gone = 2**22 + 1  # above any pid_max: no such process
    stale = tmp_path / f".saved.fakeproc-{gone}-abcd.tmp"
    stale.write_text("x" * 1000)
    other = tmp_path / f".other.fakeproc-{gone}-abcd.tmp"  # another target's: not ours to clean
    other.write_text("x")
    core.ctl("save", str(tmp_path / "saved"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["fifo", "stdout", "saved", other.name])
