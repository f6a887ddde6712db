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

# Three folders, one per product, and a few modules at the root (pgcourse/__init__.py tells a reader which is which):
# the RL library (rl/), the course's teaching tools (course/), the classroom (classroom/; its sandboxed/ folder is
# the code that runs inside the grader's sandbox). A folder imports from itself and from the folders before it in
# FOLDER_ORDER only; anything may import the sandboxed kit and _version (both import nothing of pgcourse).
FOLDER_ORDER = ["classroom.sandboxed", "rl", "course", "classroom", "root"]
ROOT_MODULES_AT_MOST = 6
LEAVES = {"pgcourse._version", "pgcourse.classroom.sandboxed"}
EMPTY_PACKAGES = {"pgcourse.classroom", "pgcourse.course", "pgcourse.rl"}  # docstrings only: run by a sub-import

# Within the folders, layers: lowest first. A module may import modules of its own layer or of layers below it.
LAYERS: list[tuple[str, set[str]]] = [
    ("sandboxed", {"classroom.sandboxed", "_version", "colab", "_moved"}),
    ("rl math", {"rl.returns", "rl.losses", "rl.distributions", "rl.diagnostics", "rl.batching", "rl.trust_region", "rl.devices",
                 "rl.course_files", "rl.memory", "rl.agreement"}),
    ("rl parts", {"rl.envs", "rl.networks", "rl.config", "rl.history", "rl.tensor_dynamics", "rl.tensor_envs"}),
    ("rl runs", {"rl.run", "rl.evaluation", "rl.loggers", "rl.live"}),
    ("rl training", {"rl.algorithms", "rl.lm", "rl.planted"}),
    ("rl entry", {"rl.api", "rl.many", "rl"}),
    ("course basics", {"course.stats", "course.tabular", "course.views", "course.colab_cells",
                       "course.concepts", "course.claims"}),
    ("course tools", {"course", "course.checks", "course.debugging", "course.sweeps", "course.hints"}),
    ("classroom", {"classroom", "classroom.notebook_format", "classroom.exercisegen", "classroom.handout",
                   "classroom.grading"}),
    ("commands", {"cli", "bench", "course.debugging.__main__", "classroom.grading.__main__"}),
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
    assert "pgcourse.course.debugging" in GRAPH["pgcourse.course.checks.ch06_traps"]
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
              for target in edges if target != "pgcourse" and target not in EMPTY_PACKAGES
              and layer_of(target) > layer_of(name)]
    assert upward == [], "\n".join(upward)


def test_nothing_under_algorithms_knows_a_trap():
    from pgcourse.rl.planted import TRAPS

    for name, path in MODULES.items():
        if name.startswith("pgcourse.rl.algorithms"):
            assert not any(target.startswith(("pgcourse.course.debugging", "pgcourse.rl.planted"))
                           for target in GRAPH[name]), name
            source = path.read_text()
            named = [trap for trap in TRAPS if trap in source]
            assert named == [], f"{path.name} names trap(s) {named}"
            assert "config.traps" not in source, path.name


def folder_of(name: str) -> str:
    short = name.removeprefix("pgcourse.")
    if short.endswith(".__main__"):
        return "root"  # a command (python -m ...), as cli.py
    for folder in FOLDER_ORDER[:-1]:
        if short == folder or short.startswith(folder + "."):
            return folder
    return "root"


def test_each_folder_imports_only_itself_and_the_folders_below():
    crossing = [f"{name} ({folder_of(name)}) imports {target} ({folder_of(target)})"
                for name, edges in GRAPH.items() if name != "pgcourse"
                for target in edges if target != "pgcourse" and target not in EMPTY_PACKAGES and not any(
                    target == leaf or target.startswith(leaf + ".") for leaf in LEAVES)
                and FOLDER_ORDER.index(folder_of(target)) > FOLDER_ORDER.index(folder_of(name))]
    assert crossing == [], "\n".join(crossing)


def test_the_sandboxed_kit_imports_nothing_of_pgcourse():
    for name in MODULES:
        if folder_of(name) == "classroom.sandboxed":
            assert GRAPH[name] <= {target for target in MODULES if target.startswith("pgcourse.classroom.sandboxed")}, \
                (name, GRAPH[name])


def test_at_most_six_modules_at_the_package_root():
    root = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(root) <= ROOT_MODULES_AT_MOST, root


def test_docs_architecture_lists_every_folder_and_module_as_it_is():
    """docs/architecture.md's module list is written by tools/architecture_doc.py from the package (each
    module's path and the first line of its docstring): it is never out of date."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("architecture_doc", PACKAGE.parent / "tools" / "architecture_doc.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    document = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    assert tool.module_table(PACKAGE) in document, "docs/architecture.md is out of date: run python tools/architecture_doc.py"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_too_long_to_read(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines (at most {MAX_LINES}): split it by role"
