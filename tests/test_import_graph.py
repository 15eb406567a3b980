"""The package has no import cycle: the static graph of every import statement (module level and
inside functions, TYPE_CHECKING blocks included) between occamgan's modules is acyclic. Package
faces (__init__.py) only re-export and are left out, as importing a submodule runs them anyway."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def modules() -> dict[str, Path]:
    return {".".join(p.relative_to(SRC).with_suffix("").parts): p for p in (SRC / "occamgan").rglob("*.py")}


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = name.split(".")[:-1] if path.name != "__init__.py" else name.split(".")
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
            candidates = [stem, *(f"{stem}.{a.name}" for a in node.names)]
        else:
            continue
        for target in candidates:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and known[target].name != "__init__.py":
                targets.add(target)
    return targets


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

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
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    return {n: (imported(n, p, known) if p.name != "__init__.py" else set()) for n, p in known.items()}


def test_no_import_cycles():
    assert cycles(graph()) == []


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    g = graph()
    assert "occamgan.config" in g["occamgan.api"]  # the graph sees real imports


def test_libraries_do_not_know_runs_or_the_api():
    """metrics/, diagnostics/ and bayes/ are pure functions of tensors and modules."""
    g = graph()
    upper = {"occamgan.api", "occamgan.runs", "occamgan.evaluation", "occamgan.train.run_dir",
             "occamgan.train.trainer", "occamgan.config"}
    for name, targets in g.items():
        if name.split(".")[1] in ("metrics", "diagnostics", "bayes"):
            assert not targets & upper, (name, targets & upper)
