"""The conformance data in tests/data/conformance is complete and regenerable (tools/regen_conformance.py).

Every expected file answers every vector of its vectors file, in the vectors' order, and the files
derived from the specification are exactly what ``tools/regen_conformance.py spec`` writes from the model
today (``spec --check``), so a regenerated file never differs from the committed one by surprise.
The measured files (``kernel``) need root and this machine's kernel: tests/mount/test_conformance.py
compares them with the kernel.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ..vectors import CONFORMANCE, vectors

TOOL = Path(__file__).resolve().parents[2] / "tools" / "regen_conformance.py"


def load_tool() -> ModuleType:
    if "regen_conformance" not in sys.modules:
        spec = importlib.util.spec_from_file_location("regen_conformance", TOOL)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["regen_conformance"] = module  # dataclasses look their module up while it loads
        spec.loader.exec_module(module)
    return sys.modules["regen_conformance"]


regen = load_tool()
EXPECTED_FILES = sorted(p.stem for p in (CONFORMANCE / "expected").glob("*.jsonl"))


def test_the_tool_knows_every_expected_file() -> None:
    """Each file is either measured (``kernel``) or derived (``spec``), and both kinds are there."""
    derived = {d.name for d in regen.DERIVED}
    assert set(EXPECTED_FILES) == derived | set(regen.MEASURED)
    assert not derived & set(regen.MEASURED)


@pytest.mark.parametrize("name", EXPECTED_FILES)
def test_every_vector_has_an_answer(name: str) -> None:
    """One answer per vector, for its target, in the vectors file's order (probe.py's output)."""
    want = [(v["id"], v["target"]) for v in vectors(regen.vectors_file(name))]
    with open(CONFORMANCE / "expected" / f"{name}.jsonl") as f:
        got = [json.loads(line) for line in f]
    assert [(d["id"], d["target"]) for d in got] == want
    for d in got:
        assert set(d) == {"id", "target", "open", "results", "read"}, d["id"]
        assert set(d["read"]) == {"oom_adj", "oom_score_adj"}, d["id"]


def test_the_derived_files_are_what_the_specification_writes() -> None:
    """``tools/regen_conformance.py spec --check``: the model's answers, under every era of each file, byte
    for byte the committed ones."""
    assert regen.check_spec(verbose=True) == {}


def test_a_difference_is_reported_by_vector_id(tmp_path: Path) -> None:
    """--check names the vectors that differ, and says so when only the bytes do."""
    text = (CONFORMANCE / "expected" / "2.6.32-cap.jsonl").read_text()
    lines = text.splitlines(keepends=True)
    changed = json.loads(lines[5])
    changed["results"] = ["EINVAL"]
    lines[5] = json.dumps(changed, sort_keys=True) + "\n"
    assert regen.differences("".join(lines), text) == [changed["id"]]
    assert regen.differences(text.replace(", ", ",  "), text) == [
        "(every answer agrees, but the line order or the format differs)"]
    for d in regen.DERIVED:
        (tmp_path / f"{d.name}.jsonl").write_text((CONFORMANCE / "expected" / f"{d.name}.jsonl").read_text())
    (tmp_path / "2.6.32-cap.jsonl").write_text("".join(lines))
    assert regen.main(["spec", "--check", "--out", str(tmp_path)]) == 1
    assert set(regen.check_spec(tmp_path)) == {"2.6.32-cap.jsonl (2.6.32)"}
