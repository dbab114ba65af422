"""The per-pid files tools read (issue #15 item 2): mappings laid out from the model's counters, so that
what pmap, ps_mem and psutil add up agrees with status and statm; the era's formats."""

from __future__ import annotations

import errno

import pytest

from fakeproc.fs import pidfiles
from fakeproc.machine import MachineError


def kb(text: str, key: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines() if line.startswith(key + ":")]


@pytest.mark.parametrize("era", ["2.6.32", "6.x"])
def test_the_mappings_add_up_to_the_counters(core_factory, era):
    mnt = core_factory(era)
    mnt.ctl("mem", "600", "--file-rss", "8M", "--shmem-rss", "4M", "--swap", "100M")
    for pid in ("1", "310", "400", "402", "500", "600", "700"):
        vsz, rss = (int(x) * 4 for x in mnt.read(f"{pid}/statm").split()[:2])
        maps = mnt.read(f"{pid}/maps").splitlines()
        sizes = [int(end, 16) - int(start, 16) for start, end in (line.split()[0].split("-") for line in maps)]
        assert sum(sizes) // 1024 == vsz, pid  # pmap's total is VSZ
        smaps = mnt.read(f"{pid}/smaps")
        assert sum(kb(smaps, "Size")) == vsz and sum(kb(smaps, "Rss")) == rss, pid
        assert kb(smaps, "Pss") == kb(smaps, "Rss")  # one mm per process: nothing is shared
    smaps = mnt.read("600/smaps")
    assert any(line.endswith("/dev/zero (deleted)") for line in mnt.read("600/maps").splitlines())
    if era == "6.x":
        rollup = mnt.read("600/smaps_rollup")
        assert rollup.splitlines()[0].endswith("[rollup]")
        assert kb(rollup, "Swap") == [102400] and kb(rollup, "Pss_Shmem") == [4096] and kb(rollup, "Pss_File") == [8192]
        assert kb(rollup, "Rss") == [sum(kb(smaps, "Rss"))]
    else:  # 2.6.32 show_smap(): no Swap (2.6.34), no Anonymous (2.6.35); no smaps_rollup (4.14)
        assert not mnt.exists("600/smaps_rollup") and not kb(smaps, "Swap") and not kb(smaps, "Anonymous")
        assert [line.split(":")[0] for line in smaps.splitlines()[1:12]] == [
            "Size", "Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", "Referenced",
            "KernelPageSize", "MMUPageSize", mnt.read("600/maps").splitlines()[1].split(":")[0]]


def test_links_descriptors_and_small_files(core):
    assert core.fs.readlink(core.fs.resolve("500/exe", core.request()), core.request()) == "/usr/bin/memhog"
    assert sorted(core.listdir("500/fd")) == ["0", "1", "2"] == sorted(core.listdir("500/task/500/fdinfo"))
    assert core.read("500/fdinfo/2") == "pos:\t0\nflags:\t0000002\n"  # 2.6.32: no mnt_id (3.15)
    assert core.read("500/io").splitlines()[0] == "rchar: 0"
    assert core.read("500/limits").splitlines()[0].split() == ["Limit", "Soft", "Limit", "Hard", "Limit", "Units"]
    assert core.read("500/loginuid") == "4294967295" and core.read("500/wchan") == "0"
    with pytest.raises(OSError) as e:
        core.echo("500/loginuid", "1000")
    assert e.value.errno == errno.EPERM
    # a kernel thread: no address space, no executable
    assert core.read("2/maps") == "" and pidfiles.mappings(core.machine.task(2)) == []
    with pytest.raises(MachineError) as err:
        core.fs.readlink(core.fs.resolve("2/exe", core.request()), core.request())
    assert err.value.errno == errno.ENOENT


def test_running_patches_only_the_state():
    from fakeproc.fs.passthrough import running

    stat = b"42 (a) S) weird) S 1 42 42 0 -1 4194304\n"
    assert running(stat, "stat") == b"42 (a) S) weird) R 1 42 42 0 -1 4194304\n"
    status = b"Name:\tsh\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\n"
    assert running(status, "status") == b"Name:\tsh\nUmask:\t0022\nState:\tR (running)\nTgid:\t42\n"
    assert running(b"Name:\tsh\nState:\tD (disk sleep)\n", "status").endswith(b"D (disk sleep)\n")


def test_with_ppid_sets_the_parent_only():
    from fakeproc.fs.passthrough import with_ppid

    assert with_ppid(b"42 (a) b) S 4242 42 42 0\n", "stat", 1) == b"42 (a) b) S 1 42 42 0\n"
    assert with_ppid(b"Name:\tsh\nPPid:\t4242\nTracerPid:\t0\n", "status", 1) == b"Name:\tsh\nPPid:\t1\nTracerPid:\t0\n"
