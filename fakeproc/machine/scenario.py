"""Scenario files: a simulated machine written by hand, in TOML.

The format is documented in the README ("Scenario files") and by the embedded
default, ``fakeproc/scenarios/default.toml``.  Processes are created in file
order, which is also the order the OOM killer walks them (for_each_process).
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from ..kernel.caps import CAP_ALL, parse_caps
from ..kernel.eras import (
    Era,
    legacy_to_score_adj,
    oom_adj_in_range,
    oom_score_adj_in_range,
    score_adj_to_legacy,
)
from ..units import parse_duration, parse_size
from .errors import MachineError
from .machine import Machine
from .task import PAGE_SIZE, Mm, Task

MACHINE_KEYS = {"ram", "swap", "hz", "uptime", "description"}
PROCESS_KEYS = {
    "pid", "parent", "comm", "uid", "gid", "nice", "caps", "vm", "rss", "file_rss", "shmem_rss", "swap",
    "pgtables", "cpu", "sys_cpu", "start", "threads", "oom_adj", "oom_score_adj", "oom_score_adj_min", "kthread",
    "vfork", "clone_vm", "swapoff", "mems",
}


class ScenarioError(ValueError):
    """A scenario file that cannot describe a machine; the message says where."""


def default_scenario_text() -> str:
    return resources.files("fakeproc.scenarios").joinpath("default.toml").read_text()


def load_scenario(path: str | Path | None, era: Era) -> Machine:
    """Build a machine from a scenario file (None: the embedded default)."""
    if path is None:
        text, name = default_scenario_text(), "<default scenario>"
    else:
        try:
            text, name = Path(path).read_text(), str(path)
        except OSError as e:
            raise ScenarioError(f"{path}: {e.strerror}") from e
    return build_machine(text, era, name)


def _caps(value: Any, uid: int, where: str) -> int:
    if value is None:
        return CAP_ALL if uid == 0 else 0
    if not isinstance(value, (str, list)):
        raise ScenarioError(f"{where}: caps must be \"all\", \"none\" or a list of names")
    try:
        return parse_caps(value)
    except ValueError as e:
        raise ScenarioError(f"{where}: {e}") from None


def _pages(spec: dict[str, Any], key: str, where: str) -> int:
    try:
        return parse_size(spec.get(key, 0)) // PAGE_SIZE
    except ValueError as e:
        raise ScenarioError(f"{where}: {key}: {e}") from e


def build_machine(text: str, era: Era, name: str = "<scenario>") -> Machine:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{name}: {e}") from e
    unknown = set(doc) - {"machine", "process"}
    if unknown:
        raise ScenarioError(f"{name}: unknown section(s) {sorted(unknown)}; expected [machine] and [[process]]")
    mspec = doc.get("machine", {})
    bad = set(mspec) - MACHINE_KEYS
    if bad:
        raise ScenarioError(f"{name}: [machine]: unknown key(s) {sorted(bad)}; known: {sorted(MACHINE_KEYS)}")
    try:
        m = Machine(era, ram=parse_size(mspec.get("ram", "4G")), swap=parse_size(mspec.get("swap", 0)),
                    hz=int(mspec.get("hz", 250)), uptime=parse_duration(mspec.get("uptime", 0)))
    except ValueError as e:
        raise ScenarioError(f"{name}: [machine]: {e}") from e
    if m.hz not in (100, 250, 300, 1000):
        raise ScenarioError(f"{name}: [machine]: hz must be 100, 250, 300 or 1000")
    for i, spec in enumerate(doc.get("process", [])):
        where = f"{name}: process #{i + 1}" + (f" (pid {spec['pid']})" if "pid" in spec else "")
        try:
            _add_process(m, spec, where)
        except MachineError as e:
            raise ScenarioError(f"{where}: {e}") from e
        except (TypeError, ValueError) as e:
            if isinstance(e, ScenarioError):
                raise
            raise ScenarioError(f"{where}: {e}") from e
    if 1 not in m.processes:
        raise ScenarioError(f"{name}: there must be a process with pid 1 (init)")
    return m


def _add_process(m: Machine, spec: dict[str, Any], where: str) -> None:
    bad = set(spec) - PROCESS_KEYS
    if bad:
        raise ScenarioError(f"unknown key(s) {sorted(bad)}; known: {sorted(PROCESS_KEYS)}")
    if "pid" not in spec or "comm" not in spec:
        raise ScenarioError("pid and comm are required")
    pid, comm = int(spec["pid"]), str(spec["comm"])
    ppid = int(spec.get("parent", 0))
    if ppid and ppid not in m.processes:
        raise ScenarioError(f"parent {ppid} must be listed before its child")
    parent = m.processes.get(ppid)
    uid = int(spec.get("uid", parent.uid if parent is not None else 0))  # as after fork()
    gid = int(spec.get("gid", uid))
    kthread = bool(spec.get("kthread", False))
    if spec.get("vfork") or spec.get("clone_vm"):
        if not ppid:
            raise ScenarioError("a vfork or clone_vm child needs a parent")
        t = m.fork(ppid, vfork=bool(spec.get("vfork")), share_vm=bool(spec.get("clone_vm")), pid=pid, comm=comm,
                   uid=uid, gid=gid)
    else:
        mm = None
        if not kthread:
            rss_anon = _pages(spec, "rss", where)
            mm = Mm(total_vm=_pages(spec, "vm", where) or rss_anon, rss_anon=rss_anon,
                    rss_file=_pages(spec, "file_rss", where), rss_shmem=_pages(spec, "shmem_rss", where),
                    swap=_pages(spec, "swap", where), pgtables=_pages(spec, "pgtables", where) * PAGE_SIZE)
        t = m.spawn(comm, pid=pid, parent=m.processes.get(ppid), uid=uid, gid=gid, mm=mm, kthread=kthread)
    t.nice = int(spec.get("nice", t.nice if t.mm is not None and t.mm.users > 1 else 0))
    t.caps = _caps(spec.get("caps"), uid, where)
    utime = int(parse_duration(spec.get("cpu", 0)) * m.hz)
    stime = int(parse_duration(spec.get("sys_cpu", 0)) * m.hz)
    start = parse_duration(spec.get("start", 0))
    if start > m.uptime:
        raise ScenarioError(f"start ({start}s) is after the machine's uptime ({m.uptime}s)")
    t.start_time = start
    t.oom_origin = bool(spec.get("swapoff", False))
    if "mems" in spec:
        t.mems = frozenset(int(n) for n in spec["mems"])
    _set_values(m, t, spec)
    threads = spec.get("threads", 1)
    tids = list(threads) if isinstance(threads, list) else [None] * (int(threads) - 1)
    for tid in tids:
        th = m.clone_thread(pid, tid=tid)
        th.start_time = start
    # the process's CPU time, spread evenly over its threads (the leader takes the remainder)
    threads_now = t.signal.threads
    for i, th in enumerate(threads_now):
        share_u, share_s = utime // len(threads_now), stime // len(threads_now)
        th.utime = share_u + (utime % len(threads_now) if i == 0 else 0)
        th.stime = share_s + (stime % len(threads_now) if i == 0 else 0)


def _set_values(m: Machine, t: Task, spec: dict[str, Any]) -> None:
    """oom_adj and/or oom_score_adj, each converted as the era's legacy mapping does."""
    adj, score_adj = spec.get("oom_adj"), spec.get("oom_score_adj")
    if adj is not None and not oom_adj_in_range(int(adj)):
        raise ScenarioError("oom_adj must be -17 or -16..15")
    if score_adj is not None and not oom_score_adj_in_range(int(score_adj)):
        raise ScenarioError("oom_score_adj must be -1000..1000")
    adj_min = spec.get("oom_score_adj_min")
    if adj_min is not None and not oom_score_adj_in_range(int(adj_min)):
        raise ScenarioError("oom_score_adj_min must be -1000..1000")
    if m.era.has_score_adj:
        if score_adj is None and adj is not None:
            score_adj = legacy_to_score_adj(int(adj))
        if score_adj is not None:
            m.store_adj(t, int(score_adj), None if adj_min is None else int(adj_min))
        elif adj_min is not None:
            t.signal.oom_score_adj_min = int(adj_min)
    else:
        if adj is None and score_adj is not None:
            adj = score_adj_to_legacy(int(score_adj))  # as probe.py does for kernels before oom_score_adj
        if adj is not None:
            m.store_adj(t, int(adj))
