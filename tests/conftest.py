"""What both tiers share: paths, the CLI, a shell, the in-process core, the hypothesis profiles.

Two tiers (docs/development.md): ``tests/core`` runs everything that does not need the kernel's VFS in this
process, through the filesystem core (tests/harness.py): no root, no FUSE; ``tests/mount`` drives real
mounts with real tools (tests/mount/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fakeproc.machine.task import Caller

from .harness import CoreMount

REPO = Path(__file__).resolve().parent.parent
#: the conformance vectors, their expected answers and the probe (a copy of the project's shared/conformance)
DATA = Path(__file__).resolve().parent / "data"
CONFORMANCE = DATA / "conformance"
FAKEPROC = [sys.executable, "-m", "fakeproc"]


def fakeproc(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run the fakeproc CLI as a user would."""
    return subprocess.run(FAKEPROC + list(args), capture_output=True, text=True, check=check, timeout=60, **kw)


def sh(cmd: str, shell: str = "sh", **kw) -> subprocess.CompletedProcess:
    """Run a shell command line (dash by default; bash prints errno messages for write errors)."""
    kw.setdefault("timeout", 60)
    return subprocess.run([shell, "-c", cmd], capture_output=True, text=True, **kw)


class Writer:
    """A writer of the OOM files for the machine's API (``write_oom_adj(tid, data, writer)``): privileged
    (holding CAP_SYS_RESOURCE) or not."""

    tid = 4242

    def __init__(self, privileged: bool) -> None:
        self._privileged = privileged

    def privileged(self) -> bool:
        return self._privileged

    def caller(self) -> Caller:
        return Caller(4242, 0 if self._privileged else 1000, "writer")


@pytest.fixture
def core_factory():
    """core_factory(era="2.6.32", privilege_name="owner", scenario=None, text=None) -> CoreMount."""
    return CoreMount


@pytest.fixture
def core() -> CoreMount:
    """The default machine (2.6.32, privilege owner) behind the core, in this process."""
    return CoreMount()


try:
    from hypothesis import HealthCheck, settings
except ImportError:  # only the property-based tests need it (setup.cfg: the "test" extra)
    settings = None

if settings is not None:
    # "ci" (the default) keeps the property tests around a minute on a 2-core machine;
    # HYPOTHESIS_PROFILE=thorough runs each property 10,000 times. No example database: nothing is
    # written into the working tree; a failure prints its minimal example and a reproduce blob.
    _common = dict(
        deadline=None,  # a FUSE round trip has no fixed duration
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    settings.register_profile("ci", max_examples=150, **_common)
    settings.register_profile("thorough", max_examples=10_000, **_common)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
