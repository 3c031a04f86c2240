"""The import graph: no cycles (function-level imports included) and layers that point one way.

core (config, models, logging, the Kafka boundary, the consume loop, ops)
  <- stages (ingestor.fetch, consumers.parse, consumers.dedup; none imports another)
  <- tools (ingestor.tools: the commands, the daemon's wiring, status, dlq, replay, demo)
The demo newsroom (ingestor.demo) is imported by the demo command only.
Imports under ``if TYPE_CHECKING:`` are not imports at run time and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ingestor", "consumers")
STAGES = ("ingestor.fetch", "consumers.parse", "consumers.dedup")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        out.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                targets = [f"{module}.{alias.name}" for alias in node.names]
            for target in targets:
                resolved = resolve(target)
                if resolved and resolved != name:
                    graph[name].add(resolved)
    return graph


def _layer(module: str) -> str:
    if module.startswith("ingestor.tools") or module == "ingestor.__main__":
        return "tools"
    if module.startswith("ingestor.demo"):
        return "demo"
    if any(module == stage or module.startswith(stage + ".") for stage in STAGES):
        return "stage"
    return "core"


def _stage_of(module: str) -> str | None:
    return next((s for s in STAGES if module == s or module.startswith(s + ".")), None)


def test_no_import_cycles() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert cycles == []


def test_imports_point_one_way() -> None:
    allowed = {
        "core": {"core"},
        "stage": {"core", "stage"},
        "demo": {"core", "demo"},
        "tools": {"core", "stage", "tools", "demo"},
    }
    wrong = [
        f"{source} ({_layer(source)}) imports {target} ({_layer(target)})"
        for source, targets in _graph().items()
        for target in targets
        if _layer(target) not in allowed[_layer(source)]
        or (
            _layer(source) == "stage" and _layer(target) == "stage" and _stage_of(source) != _stage_of(target)
        )
    ]
    assert wrong == []


def test_the_demo_newsroom_is_imported_by_the_demo_command_only() -> None:
    importers = {
        source
        for source, targets in _graph().items()
        if any(t.startswith("ingestor.demo") for t in targets) and not source.startswith("ingestor.demo")
    }
    assert importers <= {"ingestor.tools.demo"}
