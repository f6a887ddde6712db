"""The package's layout: layers that import only downward, no import cycle, no module too long to read.

Imports are read from the source (``ast``), including those inside functions: a cycle closed by a
lazy import is still a cycle for a reader. Importing ``pgcourse.a.b`` also runs ``pgcourse/a/__init__.py``,
so a subpackage counts as imported with any of its modules (the top-level package is the exception:
every module would import it).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pgcourse"

# Lowest first. A module may import modules of its own layer or of layers below it, never above.
LAYERS: list[tuple[str, set[str]]] = [
    ("math", {"returns", "losses", "diagnostics", "batching", "notebook_format", "_version", "episode_cases", "stats",
              "trust_region", "agreement", "devices", "course_files", "colab", "memory", "tabular"}),
    ("parts", {"envs", "networks", "config", "history", "tensor_dynamics", "tensor_envs"}),
    ("runs", {"run", "evaluation"}),
    ("views", {"plotting", "render", "live", "loggers"}),
    ("training", {"algorithms", "lm"}),
    ("entry", {"planted", "api", "many"}),
    ("course tools", {"widgets", "checks", "traps", "exercisegen", "sweeps", "claims", "hints",
                      "concepts", "probes", "handout", "colab_cells"}),
    ("grading", {"grading"}),
    ("commands", {"cli", "bench", "traps.__main__"}),
]
MAX_LINES = 900


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def imported_names(name: str, path: Path) -> set[str]:
    """Every pgcourse module that module ``name`` imports, anywhere in its source."""
    package = name if name in PACKAGES else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "pgcourse")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "pgcourse":
                continue
            for alias in node.names:  # `from pgcourse.x import y`: y may be a submodule
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    edges: set[str] = set()
    for target in found:
        while target not in MODULES and "." in target:
            target = target.rpartition(".")[0]
        parts = target.split(".")
        for i in range(2, len(parts) + 1):  # the module and every subpackage above it run on import
            prefix = ".".join(parts[:i])
            if prefix in MODULES and prefix != name and not name.startswith(prefix + "."):
                edges.add(prefix)
        if target == "pgcourse":
            edges.add(target)
    return edges


GRAPH = {name: imported_names(name, path) for name, path in MODULES.items()}


def layer_of(name: str) -> int:
    short = name.removeprefix("pgcourse.")
    best = None
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if short == member or short.startswith(member + "."):
                if best is None or len(member) > best[1]:
                    best = (index, len(member))
    if best is None:
        raise AssertionError(f"{name} is in no layer of tests/test_architecture.py: place it in LAYERS")
    return best[0]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_graph_sees_lazy_imports():
    # a function-level import is an edge (this one is real: the ch06 check calls the bug hunt)
    assert "pgcourse.traps" in GRAPH["pgcourse.checks.ch06_traps"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle():
    cycle = find_cycle({name: edges - {"pgcourse"} for name, edges in GRAPH.items() if name != "pgcourse"})
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_submodule_imports_the_top_level_package():
    offenders = sorted(name for name, edges in GRAPH.items() if name != "pgcourse" and "pgcourse" in edges)
    assert offenders == [], f"these modules import the top-level package (import its modules instead): {offenders}"


def test_layers_import_only_downward():
    upward = [f"{name} ({LAYERS[layer_of(name)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for name, edges in GRAPH.items() if name != "pgcourse"
              for target in edges if target != "pgcourse" and layer_of(target) > layer_of(name)]
    assert upward == [], "\n".join(upward)


def test_nothing_under_algorithms_knows_a_trap():
    from pgcourse.planted import TRAPS

    for name, path in MODULES.items():
        if name.startswith("pgcourse.algorithms"):
            assert not any(target.startswith(("pgcourse.traps", "pgcourse.planted")) for target in GRAPH[name]), name
            source = path.read_text()
            named = [trap for trap in TRAPS if trap in source]
            assert named == [], f"{path.name} names trap(s) {named}"
            assert "config.traps" not in source, path.name


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_too_long_to_read(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines (at most {MAX_LINES}): split it by role"
