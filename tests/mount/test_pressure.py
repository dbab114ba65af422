"""Memory pressure over time: allocation rates, the clock, the allocator calling the OOM killer, the change stream.

The model's rules (machine/pressure.py) are checked on the Machine directly; what a user does
(ctl alloc, ctl tick, --clock, fakeproc log) through real mounts and the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import time
from xml.etree import ElementTree

from fakeproc.kernel.eras import ERAS
from fakeproc.machine import Machine
from fakeproc.machine.task import PAGE_SIZE

from ..conftest import FAKEPROC, REPO, fakeproc, sh

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


# ----------------------------------------------------------------------------------- the mount


def test_ctl_alloc_and_tick_fire_the_killer_through_the_mount(mnt):
    out = mnt.ctl("alloc", "310", "1M/s")
    assert out.startswith("310 (sshd) allocates 1M/s; free: RAM 324608kB, swap 1048576kB")
    out = mnt.ctl("tick", "2m")
    lines = out.splitlines()
    assert lines[-1] == "uptime 172920.00s"
    # sshd's page was the first that did not fit (memhog asks 16 times as often, but not at that instant)
    assert "[172878.882812] sshd invoked oom-killer: gfp_mask=0x201da, order=0, oom_adj=-17" in lines
    assert "[172878.882812] Killed process 500 (memhog)" in lines
    assert not (mnt.path / "500").exists()
    assert "alloc:1M/s" in fakeproc("ps", "-m", str(mnt.path)).stdout
    r = fakeproc("ctl", "-m", str(mnt.path), "alloc", "2", "1M", check=False)
    assert r.returncode == 1 and "kernel thread" in r.stderr


def test_fakeproc_log_text_json_kernel_and_follow(mnt):
    assert sh(f"echo -5 > {mnt.path}/401/oom_adj").returncode == 0
    mnt.ctl("fork", "400", "--comm", "job")
    mnt.ctl("tick", "2m")
    evs = [json.loads(line) for line in fakeproc("log", "-m", str(mnt.path), "--json").stdout.splitlines()]
    kinds = [ev["type"] for ev in evs]
    assert [ev["seq"] for ev in evs] == list(range(1, len(evs) + 1))
    assert kinds[:3] == ["write", "fork", "tick"] and {"alloc_failed", "oom", "kill", "kernel"} <= set(kinds)
    write = evs[0]
    assert write["pid"] == 401 and write["file"] == "oom_adj" and write["value"] == -5 and write["by"] > 0
    kill = next(ev for ev in evs if ev["type"] == "kill")
    assert kill["pid"] == 500 and kill["comm"] == "memhog"
    text = fakeproc("log", "-m", str(mnt.path)).stdout.splitlines()
    assert text[0].startswith("[172800.000000] @write pid=401 tid=401 file=oom_adj value=-5 by=")
    assert any(line.endswith("] Killed process 500 (memhog)") for line in text)
    kernel = fakeproc("log", "-m", str(mnt.path), "-k").stdout
    assert kernel == mnt.read("fakeproc/dmesg")  # -k is the kernel log, as dmesg shows it
    # --follow prints what happens after it started, and ends when the mount goes away
    follower = subprocess.Popen(FAKEPROC + ["log", "-m", str(mnt.path), "--json", "-f", "--since", str(len(evs))],
                                stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        assert sh(f"echo 3 > {mnt.path}/310/oom_adj").returncode == 0
        ev = json.loads(follower.stdout.readline())
        assert ev["seq"] == len(evs) + 1 and ev["type"] == "write" and ev["pid"] == 310 and ev["value"] == 3
        fakeproc("umount", str(mnt.path))
        assert follower.wait(timeout=10) == 0
    finally:
        follower.kill()


def test_a_running_clock_fires_the_killer_with_nobody_ticking(mount_factory):
    mnt = mount_factory("--clock", "200x")
    assert "clock: 200x" in mnt.ctl("info")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (mnt.path / "500").exists():
        time.sleep(0.1)
    assert not (mnt.path / "500").exists()  # 84 simulated seconds: under a second of real time
    assert "memhog invoked oom-killer" in mnt.read("fakeproc/dmesg")
    assert mnt.ctl("clock", "stepped").startswith("clock stepped, uptime ")
    up = float(mnt.read("uptime").split()[0])
    time.sleep(0.5)
    assert float(mnt.read("uptime").split()[0]) == up  # stopped
    r = fakeproc("ctl", "-m", str(mnt.path), "clock", "fast", check=False)
    assert r.returncode == 2 and "not a clock" in r.stderr
    r = fakeproc("mount", str(mnt.path) + "-x", "--clock", "backwards", check=False)
    assert r.returncode == 2 and "--clock" in r.stderr


def test_the_timeline_tool_shows_the_model_move(tmp_path):
    """tools/oom_timeline.py mounts the default machine, steps its clock, and tabulates what the mount shows."""
    svg = tmp_path / "scores.svg"
    r = subprocess.run([*FAKEPROC[:1], str(REPO / "tools/oom_timeline.py"), "--kernel", "2.6.32", "--step", "30s",
                        "--until", "2m", "--svg", str(svg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    head, *rows = r.stdout.splitlines()
    assert head.split()[:4] == ["t", "(s)", "MemFree", "MiB"] and "500 memhog" in head
    assert [row.split()[0] for row in rows] == ["+0", "+30", "+60", "+90", "+120"]
    scores = [int(row.split()[9]) for row in rows[:3]]
    assert scores[0] < scores[1] < scores[2]  # memhog's badness grows with its total_vm
    assert rows[3].split()[9] == "-" and rows[3].endswith("500 memhog at +83.8s")
    ElementTree.parse(svg)  # well-formed
    assert "polyline" in svg.read_text()
