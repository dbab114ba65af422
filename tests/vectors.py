"""The conformance vectors (tests/data/conformance) and one way of replaying them for both tiers.

A vector is one open() of a process's ``oom_adj`` or ``oom_score_adj``, then one write() per chunk, on a
fresh target process, after an optional reset written by root, maybe by another uid; what each write
returned and what the files read afterwards are compared with what the kernel answered (``expected/``;
README there).  ``replay`` takes the three operations a tier provides (make a target, write, read), so
the core tier replays every vector through the write handlers in-process and the mount tier through a
real mount, both without starting a process per vector.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

CONFORMANCE = Path(__file__).resolve().parent / "data" / "conformance"
FILES = ("oom_adj", "oom_score_adj")
#: A write() of zero bytes never reaches a FUSE daemon: the kernel answers 0 itself (procfs: EINVAL).
FUSE_EXCEPTION = {"oom_adj-c032": [0], "oom_score_adj-c032": [0]}


def vectors(name: str = "vectors.jsonl") -> list[dict]:
    with open(CONFORMANCE / name) as f:
        return [json.loads(line) for line in f if line.strip() and not line.startswith("#")]


def expected(name: str) -> dict[str, dict]:
    with open(CONFORMANCE / "expected" / (name + ".jsonl")) as f:
        return {d["id"]: d for d in map(json.loads, f)}


def reset_value(name: str, value: str, has_score_adj: bool) -> tuple[str, str]:
    """probe.py's reset: oom_score_adj, or on kernels before it oom_adj at value * 17 / 1000."""
    if name == "oom_score_adj" and not has_score_adj:
        return "oom_adj", str(int(int(value) * 17 / 1000))
    return name, value


def replay(vecs: list[dict], new_target: Callable[[int | None], int],
           write: Callable[[int, str, list[bytes], int | None], dict],
           read: Callable[[int, str], str | None], has_score_adj: bool) -> dict[str, dict]:
    """Each vector on a fresh target: ``new_target(uid)`` -> pid; ``write(pid, file, chunks, as_uid)`` ->
    {"open": "ok" | errno name, "results": [...]}; ``read(pid, file)`` -> its text, None if absent."""
    out = {}
    for v in vecs:
        pid = new_target(v.get("as_uid"))
        for name, value in (v.get("reset") or {}).items():
            name, value = reset_value(name, value, has_score_adj)
            res = write(pid, name, [value.encode()], None)
            assert res["open"] == "ok" and isinstance(res["results"][0], int), (v["id"], res)
        res = write(pid, v["target"], [bytes.fromhex(h) for h in v["writes"]], v.get("as_uid"))
        out[v["id"]] = {"id": v["id"], "target": v["target"], **res, "read": {f: read(pid, f) for f in FILES}}
    return out


def compare(got: dict[str, dict], want: dict[str, dict], through_fuse: bool) -> list[str]:
    """Vectors whose answers differ (through FUSE, the zero-byte write aside)."""
    assert set(got) == set(want)
    bad = []
    for vid, w in want.items():
        g = got[vid]
        results = FUSE_EXCEPTION.get(vid, w["results"]) if through_fuse and w["open"] == "ok" else w["results"]
        if (g["open"], g["results"], g["read"]) != (w["open"], results, w["read"]):
            bad.append(f"{vid}: want {w['open']} {results} {w['read']}, got {g['open']} {g['results']} {g['read']}")
    return bad


def errname(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, str(e.errno))


def root_has_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        caps = next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))
    return bool(caps >> 24 & 1)


def read_path(path: str) -> str | None:
    """probe.py's read_value(): the text, None for a missing file, an errno name otherwise."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except FileNotFoundError:
        return None
    except OSError as e:
        return errname(e)


def write_path(path: str, chunks: list[bytes], as_uid: int | None) -> dict:
    """probe.py's replay(): one open(O_WRONLY), one write() per chunk; as another uid in a child process."""
    def run() -> dict:
        out: dict = {"open": "ok", "results": []}
        try:
            fd = os.open(path, os.O_WRONLY)
        except OSError as e:
            out["open"] = errname(e)
            return out
        try:
            for c in chunks:
                try:
                    out["results"].append(os.write(fd, c))
                except OSError as e:
                    out["results"].append(errname(e))
        finally:
            os.close(fd)
        return out

    if as_uid is None:
        return run()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # drop privileges in a child, so that the kernel (or the fake) sees an ordinary caller
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(as_uid)
            os.setuid(as_uid)
            payload = json.dumps(run()).encode()
        except BaseException as e:  # noqa: BLE001 - reported, not lost
            payload = json.dumps({"open": f"probe-error: {e!r}", "results": []}).encode()
        os.write(w, payload)
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)
