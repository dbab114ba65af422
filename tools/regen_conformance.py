#!/usr/bin/env python3
"""Regenerate the conformance answers in tests/data/conformance/expected/, from the real kernel or from the model.

Two kinds of file live there (tests/data/conformance/README.md):

measured (``kernel``)   what this machine's kernel answers, replayed by tests/data/conformance/probe.py --spawn:
                          modern-nocap.jsonl         vectors.jsonl written by root, who lacks CAP_SYS_RESOURCE
                          modern-cap.jsonl           ... by a root who holds it (this file is otherwise derived)
                          modern-unprivileged.jsonl  vectors-unprivileged.jsonl written by uid 65534, after a
                                                     baseline written by a root lacking CAP_SYS_RESOURCE
                          (a root holding it gives modern-unprivileged-capbaseline.jsonl instead: there its
                          baseline write also sets oom_score_adj_min, so unpriv-10 is expected to differ)
                        Whether root holds CAP_SYS_RESOURCE is read from bit 24 of CapEff in /proc/self/status.
                        Needs root.  Every vector gets a throwaway `sleep 600` process; the probe writes only
                        to that process's /proc/PID/oom_adj and /proc/PID/oom_score_adj and kills it after.
                        Nothing else is written: no sysctl, no other process.
derived (``spec``)      the specification's answers, replayed in this process through fakeproc's model of each
                        era (the filesystem core over a machine, tests/harness.py CoreMount, exactly as
                        tests/core/test_conformance.py replays them; no mount, no root):
                          modern-cap.jsonl                         6.x, the writer holds CAP_SYS_RESOURCE
                          2.6.32-cap.jsonl, 2.6.32-nocap.jsonl     2.6.32, with and without it
                          2.6.31-cap.jsonl, 2.6.31-nocap.jsonl     2.6.31; 2.6.31-rc must answer the same

With --check nothing is written: the answers are compared with the files, and the exit status is 1 if any
vector's answer differs (their ids are listed; -v shows both answers).

    tools/regen_conformance.py spec [--check] [-v] [--out DIR]
    sudo tools/regen_conformance.py kernel [--check] [-v] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFORMANCE = REPO / "tests" / "data" / "conformance"
EXPECTED = CONFORMANCE / "expected"
PROBE = CONFORMANCE / "probe.py"

#: capable(CAP_SYS_RESOURCE): its bit in CapEff (include/uapi/linux/capability.h)
CAP_SYS_RESOURCE = 24
#: the uid that writes vectors-unprivileged.jsonl (each of its vectors names it as "as_uid")
UNPRIVILEGED_UID = 65534


@dataclass(frozen=True)
class Derived:
    """One specification-derived file: expected/NAME.jsonl, replayed under ``eras`` (the first one writes the
    file; every other one must answer the same), with or without CAP_SYS_RESOURCE."""

    name: str
    eras: tuple[str, ...]
    cap: bool


DERIVED = (
    Derived("modern-cap", ("6.x",), True),
    Derived("2.6.32-cap", ("2.6.32",), True),
    Derived("2.6.32-nocap", ("2.6.32",), False),
    Derived("2.6.31-cap", ("2.6.31", "2.6.31-rc"), True),
    Derived("2.6.31-nocap", ("2.6.31", "2.6.31-rc"), False),
)

#: the vectors file each expected file answers (all the others answer vectors.jsonl)
VECTORS_OF = {"modern-unprivileged": "vectors-unprivileged.jsonl",
              "modern-unprivileged-capbaseline": "vectors-unprivileged.jsonl"}
#: the files measured on the real kernel (modern-cap too, where root holds CAP_SYS_RESOURCE)
MEASURED = ("modern-nocap", "modern-unprivileged")


def vectors_file(name: str) -> str:
    return VECTORS_OF.get(name, "vectors.jsonl")


def load_vectors(file: str) -> list[dict]:
    """A vectors file as probe.py reads it (blank lines and # comments skipped)."""
    with open(CONFORMANCE / file) as f:
        return [json.loads(line) for line in f if line.strip() and not line.startswith("#")]


def render(records: list[dict]) -> str:
    """The expected files' format, probe.py's output: one JSON object per line, keys sorted, in vector order."""
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)


def by_id(text: str) -> dict[str, dict]:
    return {d["id"]: d for d in (json.loads(line) for line in text.splitlines() if line.strip())}


# ------------------------------------------------------------------ the specification: fakeproc's model


class NoCapSysResource:
    """A privilege policy under which no writer holds CAP_SYS_RESOURCE, root included (the "nocap" files),
    whatever this machine's root holds (the tests' ``caps`` policy reads the real capabilities instead)."""

    name = "nocap"

    def has_sys_resource(self, uid: int, tid: int) -> bool:
        return False


def spec_text(era: str, cap: bool, vectors: str = "vectors.jsonl") -> str:
    """Every vector replayed through the model of ``era`` in this process, rendered as an expected file."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    # the tests' own in-process replay: one fresh process per vector, made with `ctl fork 1`, written
    # through the filesystem core as a mount's caller would, read back the same way
    from tests.core.test_conformance import replay_core
    from tests.harness import CoreMount

    core = CoreMount(era, "owner")  # owner: root holds CAP_SYS_RESOURCE
    if not cap:
        core.state.privilege = NoCapSysResource()
    got = replay_core(core, vectors)
    return render([got[v["id"]] for v in load_vectors(vectors)])


def spec_files() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Each derived file's text (from its first era), and where its other eras answer differently."""
    texts: dict[str, str] = {}
    disagree: dict[str, list[str]] = {}
    for d in DERIVED:
        first = texts[d.name] = spec_text(d.eras[0], d.cap)
        for era in d.eras[1:]:
            bad = differences(spec_text(era, d.cap), first)
            if bad:
                disagree[f"{d.name}: {era} against {d.eras[0]}"] = bad
    return texts, disagree


# ------------------------------------------------------------------ comparing


def differences(got: str, want: str, verbose: bool = False) -> list[str]:
    """The vector ids whose answers differ between two expected files' texts (with both answers if verbose);
    if every answer agrees but the bytes do not, one line saying so (the order or the format differs)."""
    g, w = by_id(got), by_id(want)
    out = []
    for vid in list(w) + [k for k in g if k not in w]:
        if g.get(vid) != w.get(vid):
            if not verbose:
                out.append(vid)
                continue
            a, b = (json.dumps(d[vid], sort_keys=True) if vid in d else "(none)" for d in (w, g))
            out.append(f"{vid}\n      want {a}\n      got  {b}")
    if not out and got != want:
        out.append("(every answer agrees, but the line order or the format differs)")
    return out


def compare_with(name: str, text: str, directory: Path, verbose: bool = False) -> list[str]:
    path = directory / f"{name}.jsonl"
    if not path.exists():
        return [f"(no {path} to compare with)"]
    return differences(text, path.read_text(), verbose)


def check_spec(directory: Path = EXPECTED, verbose: bool = False) -> dict[str, list[str]]:
    """What ``spec --check`` reports: for each derived file (and era) whose model answers differ from the
    file in ``directory``, the differing vector ids.  Empty when the model and the files agree byte for byte."""
    out: dict[str, list[str]] = {}
    for d in DERIVED:
        path = directory / f"{d.name}.jsonl"
        want = path.read_text() if path.exists() else None
        for era in d.eras:
            label = f"{d.name}.jsonl ({era})"
            if want is None:
                out[label] = [f"(no {path} to compare with)"]
                continue
            bad = differences(spec_text(era, d.cap), want, verbose)
            if bad:
                out[label] = bad
    return out


def report(problems: dict[str, list[str]], checked: list[str]) -> int:
    for label in checked:
        if label not in problems:
            print(f"{label}: agrees")
    for label, bad in problems.items():
        n = sum(not b.startswith("(") for b in bad)
        print(f"{label}: {n} vector{'s' if n != 1 else ''} differ:" if n else f"{label}: differs:")
        for b in bad:
            print(f"    {b}")
    return 1 if problems else 0


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` whole, never leaving a half-written file behind (the tests read these)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# ------------------------------------------------------------------ subcommands


def cmd_spec(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else EXPECTED
    if args.check:
        problems = check_spec(out, args.verbose)
        return report(problems, [f"{d.name}.jsonl ({era})" for d in DERIVED for era in d.eras])
    texts, disagree = spec_files()
    for d in DERIVED:
        if any(label.startswith(d.name + ":") for label in disagree):
            print(f"{d.name}.jsonl: not written, its eras answer differently", file=sys.stderr)
            continue
        path = out / f"{d.name}.jsonl"
        same = path.exists() and path.read_text() == texts[d.name]
        if not same:
            write_atomically(path, texts[d.name])
        print(f"{path}: {'unchanged' if same else 'written'} ({texts[d.name].count(chr(10))} vectors, "
              f"{d.eras[0]}, {'cap' if d.cap else 'nocap'})")
    return report(disagree, [])


def holds_cap_sys_resource() -> bool:
    """Bit 24 of this process's effective capabilities (the probe it starts inherits them)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    raise RuntimeError("no CapEff line in /proc/self/status")


def measure(vectors: str, spawn_uid: int | None) -> str:
    """probe.py --spawn over one vectors file: its output, checked to answer every vector in order."""
    cmd = [sys.executable, str(PROBE), "--spawn", "--vectors", str(CONFORMANCE / vectors)]
    if spawn_uid is not None:
        cmd += ["--spawn-uid", str(spawn_uid)]
    print("running:", " ".join(cmd), file=sys.stderr)
    text = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout
    ids = [d["id"] for d in map(json.loads, text.splitlines())]
    want = [v["id"] for v in load_vectors(vectors)]
    if ids != want:
        raise RuntimeError(f"{PROBE.name} answered {len(ids)} vectors of {vectors}'s {len(want)}, or out of order")
    errors = [d["id"] for d in map(json.loads, text.splitlines()) if d["open"].startswith("probe-error")]
    if errors:
        raise RuntimeError(f"{PROBE.name} could not replay {errors} (see their 'open' field)")
    return text


def cmd_kernel(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("regen_conformance.py kernel: must run as root (the probe writes root's baselines and drops to "
              f"uid {UNPRIVILEGED_UID} for the unprivileged vectors); nothing measured", file=sys.stderr)
        return 2
    if not os.path.exists("/proc/self/oom_score_adj"):
        print("regen_conformance.py kernel: this kernel has no oom_score_adj (before 2.6.36): its answers are "
              "not the modern-*.jsonl files; nothing measured", file=sys.stderr)
        return 2
    cap = holds_cap_sys_resource()
    print(f"kernel {os.uname().release}; root {'holds' if cap else 'lacks'} CAP_SYS_RESOURCE", file=sys.stderr)
    runs: list[tuple[str, Callable[[], str]]] = [
        ("modern-cap" if cap else "modern-nocap", lambda: measure("vectors.jsonl", None)),
        ("modern-unprivileged-capbaseline" if cap else "modern-unprivileged",
         lambda: measure("vectors-unprivileged.jsonl", UNPRIVILEGED_UID)),
    ]
    out = Path(args.out) if args.out else EXPECTED
    problems: dict[str, list[str]] = {}
    for name, run in runs:
        text = run()
        path = out / f"{name}.jsonl"
        if args.check:
            bad = compare_with(name, text, out, args.verbose)
            if bad:
                problems[f"{name}.jsonl"] = bad
            else:
                print(f"{name}.jsonl: agrees")
            continue
        write_atomically(path, text)
        print(f"{path}: written ({text.count(chr(10))} vectors, measured)")
    return report(problems, [])


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="regen_conformance.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--check", action="store_true",
                        help="compare with the files instead of writing them; exit 1 listing the differing vector ids")
    common.add_argument("--out", metavar="DIR",
                        help="write (or with --check, compare with) the files in DIR instead of "
                        "tests/data/conformance/expected")
    common.add_argument("-v", "--verbose", action="store_true", help="with --check: show both answers of each")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{kernel,spec}")
    k = sub.add_parser(
        "kernel", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="re-measure modern-nocap (or modern-cap) and modern-unprivileged on this machine's kernel (root)",
        description="Re-measure the real kernel's answers with probe.py --spawn, as root:\n"
                    "  vectors.jsonl               -> modern-nocap.jsonl (modern-cap.jsonl if root holds\n"
                    "                                 CAP_SYS_RESOURCE: bit 24 of CapEff in /proc/self/status)\n"
                    "  vectors-unprivileged.jsonl  -> modern-unprivileged.jsonl, written by uid 65534\n"
                    "                                 (modern-unprivileged-capbaseline.jsonl if root holds it)\n\n"
                    "Safe on a live machine: every vector gets a throwaway `sleep 600` process; the probe writes\n"
                    "only to that process's /proc/PID/oom_adj and /proc/PID/oom_score_adj, and kills it after.\n"
                    "It never writes to a sysctl, nor to any other process.")
    k.set_defaults(run=cmd_kernel)
    s = sub.add_parser(
        "spec", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        help="regenerate the specification-derived files from fakeproc's model, in process (no root, no mount)",
        description="Regenerate the specification-derived files by replaying vectors.jsonl through fakeproc's\n"
                    "model in this process (no root, no mount), in the committed files' format and line order:\n"
                    "  modern-cap.jsonl                      6.x\n"
                    "  2.6.32-cap.jsonl, 2.6.32-nocap.jsonl  2.6.32\n"
                    "  2.6.31-cap.jsonl, 2.6.31-nocap.jsonl  2.6.31 (2.6.31-rc must answer the same)\n"
                    "\"cap\": the writer (root) holds CAP_SYS_RESOURCE; \"nocap\": nobody does, whatever this\n"
                    "machine's root holds.  A file whose text would not change is left alone.")
    s.set_defaults(run=cmd_spec)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
