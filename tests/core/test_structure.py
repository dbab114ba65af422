"""The shape of the code: layers that import one way, a filesystem without OOM rules, tables that grow by a row."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from fakeproc.fs.tables import PID, TID
from fakeproc.fs.tree import REG

from ..harness import CoreMount

PACKAGE = Path(__file__).resolve().parents[2] / "fakeproc"


def import_graph() -> dict[str, set[str]]:
    """Module -> the fakeproc modules it imports (at any place, TYPE_CHECKING blocks and functions included)."""
    mods = {}
    for p in PACKAGE.rglob("*.py"):
        name = ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = p
    graph: dict[str, set[str]] = {}
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)] if node.level else []
                target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module or ""
                for a in node.names:
                    deps.add(f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_itself_back():
    assert cycles(import_graph()) == []


def test_the_filesystem_imports_no_oom_rule():
    """fs/ maps nodes to handlers and errors to errnos: the rules are the kernel's and the machine's layers'."""
    rules = {"fakeproc.kernel.eras", "fakeproc.kernel.badness", "fakeproc.kernel.strtol", "fakeproc.machine.killer",
             "fakeproc.machine.oomfiles", "fakeproc.machine.pressure", "fakeproc.machine.table"}
    graph = import_graph()
    assert {m: graph[m] & rules for m in graph if m.startswith("fakeproc.fs") and graph[m] & rules} == {}


def test_layers_import_downwards_only():
    """kernel <- machine <- fs <- front ends: no layer imports one above it (units: sizes and durations, a leaf)."""
    layer = {"fakeproc.units": 0, "fakeproc.kernel": 1, "fakeproc.machine": 2, "fakeproc.fs": 3}
    graph = import_graph()

    def level(m: str) -> int:
        return next((v for k, v in layer.items() if m == k or m.startswith(k + ".")), 4)

    assert {(m, d) for m, deps in graph.items() for d in deps if level(d) > level(m)} == set()


def test_the_core_loads_without_a_fuse_binding():
    code = ("import sys, fakeproc.fs.core, fakeproc.fs.tables, fakeproc.fs.passthrough, fakeproc.fs.rawfuse, "
            "fakeproc.daemon, fakeproc.control; print(sorted(m for m in sys.modules if m.split('.')[0] == 'fuse'))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_a_file_is_one_row_and_its_handler():
    """timerslack_ns, as base.c declares it in tgid_base_stuff[] only (REG("timerslack_ns", S_IRUGO|S_IWUGO,
    ...)): one row and its handler, and the process has the file, its threads do not."""
    def read_timerslack(req, node) -> bytes:
        return b"50000\n"

    row = REG("timerslack_ns", 0o666, read_timerslack)
    PID.add(row)
    try:
        core = CoreMount()
        assert "timerslack_ns" in core.listdir("500") and core.read("500/timerslack_ns") == "50000\n"
        assert "timerslack_ns" not in core.listdir("500/task/500")  # a table of its own: tid_base_stuff
    finally:
        PID.remove(row)
    assert TID.row("timerslack_ns") is None and not CoreMount().exists("500/timerslack_ns")
