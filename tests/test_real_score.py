"""6.x oom_score against this machine's kernel: same memory in, same number out.

Real processes hold known amounts of memory; their VmRSS, VmSwap and VmPTE and
the machine's RAM and swap are loaded into a simulated machine; for every
oom_score_adj the test can set (raising is always allowed), fakeproc's
oom_score must equal the kernel's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

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


def test_oom_score_equals_the_kernels(mount_factory, tmp_path, holders):
    mem = meminfo_kib()
    scenario = tmp_path / "real.toml"
    scenario.write_text(f'[machine]\nram = "{mem["MemTotal"]}k"\nswap = "{mem["SwapTotal"]}k"\n'
                        '[[process]]\npid = 1\ncomm = "init"\n')
    mnt = mount_factory("--kernel", "6.x", "--scenario", str(scenario))
    compared = 0
    for real_pid in holders:
        st = status_kib(real_pid)
        fake_pid = mnt.new_pid("fork", "1", "--uid", "1000")
        mnt.ctl("mem", str(fake_pid), "--vm", f"{st['VmRSS']}k", "--rss", f"{st['VmRSS']}k",
                "--swap", f"{st.get('VmSwap', 0)}k", "--pgtables", f"{st['VmPTE']}k")
        for adj in ADJS:
            with open(f"/proc/{real_pid}/oom_score_adj", "w") as f:
                f.write(str(adj))
            (mnt.path / str(fake_pid) / "oom_score_adj").write_text(str(adj))
            again = status_kib(real_pid)
            real = open(f"/proc/{real_pid}/oom_score").read()
            assert status_kib(real_pid) == again == st, "the holder's memory moved; numbers not comparable"
            fake = (mnt.path / str(fake_pid) / "oom_score").read_text()
            assert fake == real, f"pid {real_pid} rss {st['VmRSS']}k adj {adj}: kernel {real!r}, fakeproc {fake!r}"
            compared += 1
    assert compared == len(SIZES_MIB) * len(ADJS)
