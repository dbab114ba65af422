"""`fakeproc explain` and `fakeproc oom --dry-run` through a mount, as a user runs them."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("era", ["2.6.32", "6.x"])
def test_explain_and_dry_run_through_a_mount(mount_factory, era):
    import subprocess
    import sys

    mnt = mount_factory("--kernel", era)

    def cli(*words: str) -> str:
        r = subprocess.run([sys.executable, "-m", "fakeproc", *words, "-m", str(mnt.path)], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    for pid in (1, 2, 401, 500, 600):
        assert cli("explain", str(pid)).splitlines()[-1] == f"oom_score {mnt.read(f'{pid}/oom_score').strip()}"
    ranking = cli("oom", "--dry-run")
    chosen = [line.split()[0] for line in ranking.splitlines() if "would be chosen" in line]
    assert chosen == ["500"] and (mnt.path / "500").exists()  # nothing killed
    assert "skipped  sshd" in ranking
    assert cli("oom").splitlines()[-1] == "killed: 500"
