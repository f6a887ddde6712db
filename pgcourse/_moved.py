"""The import paths of before the package had its three folders (``pgcourse.returns``, ``pgcourse.algorithms.ppo``,
``pgcourse.traps``, ``pgcourse.grading.wire``...) keep working, for code and notebooks written against them and for
the runs saved then (their pickles name the old modules). The package itself uses the new paths only.

A finder on ``sys.meta_path`` answers an old name with the module at its new place: the same module object (no
second copy, so a patch or an ``isinstance`` through either name is the same), imported when first asked for.
``MOVED`` is the table; the longest old prefix wins (``grading.wire`` before ``grading``).
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import ModuleType

MOVED = {
    **{name: f"rl.{name}" for name in (
        "returns", "losses", "diagnostics", "batching", "trust_region", "envs", "tensor_envs", "tensor_dynamics",
        "networks", "config", "history", "run", "evaluation", "devices", "memory", "loggers", "course_files",
        "planted", "api", "many", "live", "agreement", "algorithms", "lm")},
    **{name: f"course.{name}" for name in (
        "hints", "concepts", "claims", "stats", "tabular", "colab_cells", "checks", "sweeps")},
    **{name: f"course.views.{name}" for name in ("plotting", "render", "widgets")},
    "traps": "course.debugging",
    "probes": "course.debugging.probes",
    **{name: f"classroom.{name}" for name in ("handout", "exercisegen", "notebook_format", "grading")},
    "episode_cases": "classroom.sandboxed.episode_cases",
    **{f"grading.{name}": f"classroom.sandboxed.{name}" for name in (
        "wire", "clock", "link", "student", "runner", "loops", "ppo_proof")},
}


def new_location(fullname: str) -> str | None:
    """``pgcourse.<new place>`` of an old module name, or None if ``fullname`` is not an old name."""
    if not fullname.startswith("pgcourse."):
        return None
    rest = fullname[len("pgcourse."):]
    parts = rest.split(".")
    for cut in range(len(parts), 0, -1):
        old = ".".join(parts[:cut])
        if old in MOVED:
            return ".".join(["pgcourse", MOVED[old], *parts[cut:]])
    return None


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name; loads it as the module at its new place."""

    def __init__(self) -> None:
        self._specs: dict[int, importlib.machinery.ModuleSpec] = {}

    def find_spec(self, fullname, path=None, target=None):
        new = new_location(fullname)
        if new is None:
            return None
        real = importlib.util.find_spec(new)
        if real is None:
            return None
        spec = importlib.machinery.ModuleSpec(fullname, self, is_package=real.submodule_search_locations is not None)
        if real.submodule_search_locations is not None:
            spec.submodule_search_locations = list(real.submodule_search_locations)
        return spec

    def create_module(self, spec) -> ModuleType:
        module = importlib.import_module(new_location(spec.name))
        self._specs[id(module)] = module.__spec__  # the import system sets __spec__ to the old name's: put back
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._specs.pop(id(module), module.__spec__)
        # the import system binds the module to its old name's parent next, which is the module's own package (an old
        # name's parent is the same package object under its old name): where that package holds a function of the
        # module's name (pgcourse.lm.finetune, the function, beside pgcourse.lm.finetune, the module), keep it
        parent = sys.modules.get(module.__name__.rpartition(".")[0])
        child = module.__name__.rpartition(".")[2]
        if parent is not None and not isinstance(getattr(parent, child, module), ModuleType):
            parent.__class__ = _KeepsItsNames

    def get_code(self, fullname: str):
        """For ``python -m <old name>``: run the module at its new place as ``__main__`` (its relative imports
        are those of its new place)."""
        return compile(f"import runpy\nrunpy.run_module({new_location(fullname)!r}, run_name='__main__', "
                       "alter_sys=True)\n", f"<{fullname}: moved to {new_location(fullname)}>", "exec")


class _KeepsItsNames(ModuleType):
    """A package whose name for a function is not rebound to its submodule of the same name by an old-name import."""

    def __setattr__(self, name: str, value) -> None:
        current = self.__dict__.get(name)
        if isinstance(value, ModuleType) and current is not None and not isinstance(current, ModuleType) \
                and value.__name__ == f"{self.__name__}.{name}":
            return
        super().__setattr__(name, value)


def install() -> None:
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedModules())
