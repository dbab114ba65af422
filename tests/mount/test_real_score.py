"""6.x oom_score against this machine's kernel: same memory in, same number out.

Real processes hold known amounts of memory; their VmRSS, VmSwap and VmPTE and
the machine's RAM and swap are loaded into a simulated machine; for every
oom_score_adj the test can set (raising is always allowed), fakeproc's
oom_score must equal the kernel's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from fakeproc.kernel.badness import modern_oom_score

HOLDER = textwrap.dedent("""
    import sys, time
    block = bytearray(b"\\x01") * int(sys.argv[1])  # every page written: resident
    print("ready", flush=True)
    time.sleep(600)
""")
SIZES_MIB = (8, 64, 256)
ADJS = (0, 1, 7, 100, 333, 500, 999, 1000)


def status_kib(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmSwap", "VmPTE"):
                out[key] = int(rest.split()[0])
    return out


def meminfo_kib() -> dict[str, int]:
    with open("/proc/meminfo") as f:
        return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in f) if k in
                ("MemTotal", "SwapTotal")}


@pytest.fixture
def holders():
    procs = []
    try:
        for mib in SIZES_MIB:
            p = subprocess.Popen([sys.executable, "-c", HOLDER, str(mib << 20)], stdout=subprocess.PIPE, text=True)
            procs.append(p)
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def kernel_rss_pages(vmrss_kib: int, swap_kib: int, pte_kib: int, totalpages: int, scores: dict[int, int]) -> int:
    """The rss the kernel's oom_badness() saw.

    oom_badness() reads the mm's rss through percpu counters without summing
    the per-CPU deltas (get_mm_rss()), while /proc/PID/status sums them: the
    two may differ by up to a batch (32 pages) per counter and CPU.  Find the
    rss in that window that explains *every* score the kernel gave; a wrong
    formula finds none.
    """
    drift = 3 * 32 * (os.cpu_count() or 1) + 32
    base = vmrss_kib // 4
    fits = [r for r in range(max(0, base - drift), base + drift + 1)
            if all(modern_oom_score(r + swap_kib // 4 + pte_kib // 4 + adj * (totalpages // 1000), totalpages)
                   == score for adj, score in scores.items())]
    assert fits, f"no rss near {base} pages gives the kernel's scores {scores}"
    return base if base in fits else fits[0]


def test_oom_score_equals_the_kernels(mount_factory, tmp_path, holders):
    mem = meminfo_kib()
    totalpages = (mem["MemTotal"] + mem["SwapTotal"]) // 4
    scenario = tmp_path / "real.toml"
    scenario.write_text(f'[machine]\nram = "{mem["MemTotal"]}k"\nswap = "{mem["SwapTotal"]}k"\n'
                        '[[process]]\npid = 1\ncomm = "init"\n')
    mnt = mount_factory("--kernel", "6.x", "--scenario", str(scenario))
    compared = 0
    for real_pid in holders:
        st = status_kib(real_pid)
        real: dict[int, int] = {}
        for adj in ADJS:
            with open(f"/proc/{real_pid}/oom_score_adj", "w") as f:
                f.write(str(adj))
            real[adj] = int(open(f"/proc/{real_pid}/oom_score").read())
        assert status_kib(real_pid) == st, "the holder's memory moved; numbers not comparable"
        rss = kernel_rss_pages(st["VmRSS"], st.get("VmSwap", 0), st["VmPTE"], totalpages, real)
        fake_pid = mnt.new_pid("fork", "1", "--uid", "1000")
        mnt.ctl("mem", str(fake_pid), "--vm", f"{rss * 4}k", "--rss", f"{rss * 4}k",
                "--swap", f"{st.get('VmSwap', 0)}k", "--pgtables", f"{st['VmPTE']}k")
        for adj in ADJS:
            (mnt.path / str(fake_pid) / "oom_score_adj").write_text(str(adj))
            fake = (mnt.path / str(fake_pid) / "oom_score").read_text()
            assert fake == f"{real[adj]}\n", f"pid {real_pid} rss {rss} pages adj {adj}: kernel {real[adj]}, " \
                                              f"fakeproc {fake!r}"
            compared += 1
    assert compared == len(SIZES_MIB) * len(ADJS)
