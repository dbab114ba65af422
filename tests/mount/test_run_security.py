"""What a run lends, and to whom: nothing the host would refuse, to nobody outside the run.

The run's mount exists only in its own mount namespace; every file passed through to the host's /proc
is opened, read, written and listed with the caller's credentials.  Each probe below runs twice with
the same privileges, once on the host and once inside ``fakeproc run``, and must answer the same.
Writes only ever write a sysctl's current value back, so a wrong answer changes nothing on the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is missing")

AS_NOBODY = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]
AS_CAPLESS_ROOT = ["setpriv", "--inh-caps=-all", "--bounding-set=-all"]

PROBES = """
probe() { printf '%s: ' "$1"; shift; out=$( ("$@") 2>&1 | head -c 120 | tr '\\n' '|'); echo "$out rc=$?"; }
probe kallsyms head -c 40 /proc/kallsyms
probe kmsg cat /proc/kmsg
probe init-environ sh -c 'wc -c < /proc/1/environ'
probe init-exe readlink /proc/1/exe
probe init-fd sh -c 'ls /proc/1/fd | wc -l'
probe init-stack cat /proc/1/stack
probe kptr_restrict sh -c 'v=$(cat /proc/sys/kernel/kptr_restrict); echo $v > /proc/sys/kernel/kptr_restrict'
probe dmesg_restrict sh -c 'v=$(cat /proc/sys/kernel/dmesg_restrict); echo $v > /proc/sys/kernel/dmesg_restrict'
probe ns_last_pid sh -c 'v=$(cat /proc/sys/kernel/ns_last_pid); echo $v > /proc/sys/kernel/ns_last_pid'
probe sysrq sh -c 'cat /proc/sys/kernel/sysrq > /dev/null; echo ok'
"""


def host(prefix: list[str], script: str) -> str:
    r = subprocess.run([*prefix, "sh", "-c", script], capture_output=True, text=True, timeout=60, cwd="/")
    return r.stdout


def in_run(prefix: list[str], script: str, *wrap: str) -> str:
    r = subprocess.run([*wrap, sys.executable, "-m", "fakeproc", "run", "--", *prefix, "sh", "-c", script],
                       capture_output=True, text=True, timeout=90, cwd="/")
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("who", ["nobody", "capless-root"])
def test_a_passed_through_file_answers_as_the_host_answers_the_caller(who):
    prefix = AS_NOBODY if who == "nobody" else AS_CAPLESS_ROOT
    want = host(prefix, PROBES)
    assert "kallsyms: 0000000000000000" in want  # the probes do probe something: no addresses for this caller
    assert in_run(prefix, PROBES) == want


def test_hidepid_hides_in_the_run_what_it_hides_on_the_host():
    """A /proc mounted hidepid=invisible (a procfs instance of its own, in a namespace of its own): inside the run
    uid 65534 sees exactly the processes it sees there, and nothing of init's, not even the model's files."""
    script = ("ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline 2>&1 | head -c 80 | tr -d '\\n'; echo; "
              "cat /proc/1/oom_score 2>&1; test -e /proc/$$/oom_score && echo own-visible")
    setup = "mount -t proc -o hidepid=invisible proc /proc && exec \"$@\""
    wrap = ["unshare", "-m", "--propagation", "private", "sh", "-c", setup, "sh"]
    host_view = subprocess.run([*wrap, *AS_NOBODY, "sh", "-c", script], capture_output=True, text=True,
                               timeout=60, cwd="/").stdout
    fake_view = in_run(AS_NOBODY, script, *wrap)
    assert "No such file or directory" in host_view.splitlines()[1]
    assert host_view.splitlines()[1:3] == fake_view.splitlines()[1:3]
    assert fake_view.splitlines()[3] == "own-visible"
    # the fake lists the run's own processes of uid 65534 (sh, ls, grep): no more than the host does
    assert 1 <= int(fake_view.splitlines()[0]) <= int(host_view.splitlines()[0]) + 2


def _fakeproc_mounts_here() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if " - fuse.fakeproc " in line]


def test_the_mount_is_nowhere_outside_the_run_and_the_link_is_roots_alone(tmp_path):
    before = _fakeproc_mounts_here()
    link = tmp_path / "fake"
    os.chmod(tmp_path, 0o755)
    p = subprocess.Popen([sys.executable, "-m", "fakeproc", "run", "--mountpoint", str(link), "--", "sh", "-c",
                          "echo ready; read x"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        assert _fakeproc_mounts_here() == before  # the host's namespace has no new mount to walk into
        assert (link / "1" / "oom_adj").read_text() == "0\n"  # root reaches it through the link
        r = subprocess.run([*AS_NOBODY, "cat", str(link / "1" / "oom_adj")], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode != 0 and "Permission denied" in r.stderr, (r.stdout, r.stderr)
        p.communicate("\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    deadline = time.monotonic() + 5
    while os.path.lexists(link) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.lexists(link)  # the run took its link away
    assert _fakeproc_mounts_here() == before
