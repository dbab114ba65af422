"""The files of a mounted default machine, driven with real syscalls and shell commands."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from ..conftest import sh


@pytest.fixture(params=["raw", "fusepy"])
def mnt(request, mount_factory):
    """The default machine through each FUSE backend in turn: this module is the subset both must pass."""
    return mount_factory("--fuse-backend", request.param)


def test_ls_lists_pid_directories_and_control_files(mnt):
    names = set(os.listdir(mnt.path))
    assert {"1", "2", "310", "400", "401", "402", "500", "600", "700"} <= names
    assert {"sysrq-trigger", "fakeproc"} <= names
    assert sorted(os.listdir(mnt / "400")) == [  # 2.6.32: no smaps_rollup (4.14) nor oom_score_adj (2.6.36)
        "cgroup", "cmdline", "comm", "cwd", "environ", "exe", "fd", "fdinfo", "io", "limits", "loginuid", "maps",
        "oom_adj", "oom_score", "root", "sessionid", "smaps", "stat", "statm", "status", "task", "wchan"]
    assert sorted(os.listdir(mnt / "600/task"), key=int) == [str(t) for t in range(600, 608)]
    # a non-leader thread is reachable as /<tid> but not listed, as in procfs
    assert "601" not in names and (mnt / "601/oom_adj").read_text() == "0\n"


def test_modes_and_owners_follow_procfs(mnt):
    st = os.stat(mnt / "700/oom_adj")
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == 65534 and st.st_size == 0
    assert stat.S_IMODE(os.stat(mnt / "700/oom_score").st_mode) == 0o444
    assert stat.S_ISDIR(os.stat(mnt / "700").st_mode) and os.stat(mnt / "700").st_uid == 65534
    assert stat.S_IMODE(os.stat(mnt / "sysrq-trigger").st_mode) == 0o200


def test_cat_reads_values_computed_now(mnt):
    r = sh(f"cat {mnt.path}/500/oom_score {mnt.path}/400/oom_adj {mnt.path}/310/oom_adj")
    assert r.returncode == 0 and r.stdout == "81920\n-17\n-17\n"
    # memhog: 2560M = 655360 pages; cpu 10m at HZ 250 >> 11 = 73, isqrt 8: 81920
    mnt.ctl("grow", "500", "512M")  # +131072 pages -> 786432 // 8
    assert mnt.read("500/oom_score") == "98304\n"
    mnt.ctl("cpu", "500", "20m")  # 30m of cpu: 450000 >> 11 = 219, isqrt 14
    assert mnt.read("500/oom_score") == f"{786432 // 14}\n"


def test_echo_minus_17_protects_the_whole_process(mnt):
    assert mnt.read("600/oom_score") != "0\n"
    r = sh(f"echo -17 > {mnt.path}/600/oom_adj")
    assert r.returncode == 0, r.stderr
    assert mnt.read("600/oom_score") == "0\n"
    for tid in range(600, 608):
        assert mnt.read(f"600/task/{tid}/oom_adj") == "-17\n"
        assert mnt.read(f"600/task/{tid}/oom_score") == "0\n"


def test_echo_99_is_invalid_and_changes_nothing(mnt):
    before = mnt.read("500/oom_adj"), mnt.read("500/oom_score")
    r = sh(f"echo 99 > {mnt.path}/500/oom_adj", shell="bash")
    assert r.returncode != 0 and "write error: Invalid argument" in r.stderr
    assert (mnt.read("500/oom_adj"), mnt.read("500/oom_score")) == before


@pytest.mark.parametrize("payload", [b"-17", b"-17\n", b"-17\0", b"-17\0garbage"])
@pytest.mark.parametrize("flags", [os.O_WRONLY | os.O_TRUNC, os.O_WRONLY, os.O_RDWR])
def test_every_way_of_writing_works(mnt, payload, flags):
    pid = mnt.new_pid("fork", "1")
    fd = os.open(mnt / f"{pid}/oom_adj", flags)
    try:
        assert os.write(fd, payload) == len(payload)
    finally:
        os.close(fd)
    assert mnt.read(f"{pid}/oom_adj") == "-17\n"


def test_r_plus_read_then_write_on_one_descriptor_like_sshd(mnt):
    pid = mnt.new_pid("fork", "1")
    with open(mnt / f"{pid}/oom_adj", "r+") as f:
        assert f.read() == "0\n"
        f.seek(0)
        f.write("-17\n")
    assert mnt.read(f"{pid}/oom_adj") == "-17\n"


def test_long_writes_are_short_counts_and_the_rest_is_parsed_alone(mnt):
    pid = mnt.new_pid("fork", "1")
    fd = os.open(mnt / f"{pid}/oom_adj", os.O_WRONLY)
    try:
        assert os.write(fd, b"0000000000005") == 12  # only 12 bytes looked at: 0
        assert os.write(fd, b"5") == 1  # what a write loop sends next
    finally:
        os.close(fd)
    assert mnt.read(f"{pid}/oom_adj") == "5\n"


def test_oom_score_is_not_writable(mnt):
    fd = os.open(mnt / "500/oom_score", os.O_WRONLY)  # root may open it
    try:
        with pytest.raises(OSError) as e:
            os.write(fd, b"5")
        assert e.value.errno == errno.EINVAL
    finally:
        os.close(fd)


def test_a_process_that_exits_under_an_open_file_gives_esrch(mnt):
    pid = mnt.new_pid("fork", "1")
    fd = os.open(mnt / f"{pid}/oom_adj", os.O_RDWR)
    try:
        mnt.ctl("exit", str(pid))
        for bad in (lambda: os.write(fd, b"3"), lambda: os.pread(fd, 100, 0)):
            with pytest.raises(OSError) as e:
                bad()
            assert e.value.errno == errno.ESRCH
        # but a bad value is refused for what it is, before the task is looked up
        with pytest.raises(OSError) as e:
            os.write(fd, b"99")
        assert e.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    assert not (mnt / str(pid)).exists()


def test_reads_at_odd_offsets_and_sizes(mnt):
    fd = os.open(mnt / "500/oom_score", os.O_RDONLY)
    try:
        assert os.pread(fd, 2, 0) == b"81"
        assert os.pread(fd, 100, 3) == b"20\n"
        assert os.pread(fd, 100, 1000) == b""
    finally:
        os.close(fd)


@pytest.mark.parametrize("cmd,message", [
    ("mkdir {m}/500/x", "No such file or directory"),
    ("touch {m}/500/newfile", "No such file or directory"),
    ("rm -f {m}/500/oom_adj", "Operation not permitted"),
    ("chmod 600 {m}/500/oom_adj", "Operation not permitted"),
    ("ln -s x {m}/500/link", "No such file or directory"),
    ("cat {m}/99999/oom_adj", "No such file or directory"),
    ("cat {m}/500/nonexistent", "No such file or directory"),
])
def test_filesystem_changes_are_refused_like_procfs(mnt, cmd, message):
    r = sh(cmd.format(m=mnt.path))
    assert r.returncode != 0 and message in r.stderr
    assert mnt.read("500/oom_adj") == "0\n"


def test_garbage_never_kills_the_daemon(mnt):
    pid = mnt.new_pid("fork", "1")
    path = mnt / f"{pid}/oom_adj"
    for junk in (b"\xff\xfe", b"-", b"+5", b"0x", b" " * 40, b"\0", b"5" * 4096, b"-18", b"16", b"\xa0"):
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, junk)
        except OSError as e:
            assert e.errno == errno.EINVAL
        finally:
            os.close(fd)
    for junk in (b"\xff", b"fork", b"fork notanumber", b"'unterminated", b"exit 1", b"tick -5"):
        fd = os.open(mnt / "fakeproc/control", os.O_WRONLY)
        try:
            with pytest.raises(OSError):
                os.write(fd, junk)
        finally:
            os.close(fd)
    assert mnt.read(f"{pid}/oom_adj") == "0\n"
    assert "1" in os.listdir(mnt.path)
