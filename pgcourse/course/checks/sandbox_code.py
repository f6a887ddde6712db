"""The grader's sandbox module ``pgcourse/classroom/sandboxed/loops.py``, loaded by the notebook's checks from its file.

The loop checks (exercise 04b's ``train_ppo``, exercise 06's ``train_actor_critic``) record what a learner's loop
does with recorders that must be the same code in the notebook and in the grader's student process. That code
lives in ``grading/loops.py``, which imports only torch, numpy and gymnasium because the grader copies it into its
sandbox. The checks sit below the grading layer and may not import ``pgcourse.classroom.grading`` (its package imports the
checks: an import cycle), so they load the module from its file, as the sandbox loads it.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

_SANDBOX_LOOPS = "pgcourse_sandbox_loops"  # the name it has here; in the sandbox it is its own module too


def sandbox_loops() -> types.ModuleType:
    """The module ``pgcourse/classroom/sandboxed/loops.py``, loaded once from its file under the name ``pgcourse_sandbox_loops``."""
    module = sys.modules.get(_SANDBOX_LOOPS)
    if module is None:
        path = Path(__file__).resolve().parents[2] / "classroom" / "sandboxed" / "loops.py"
        spec = importlib.util.spec_from_file_location(_SANDBOX_LOOPS, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[_SANDBOX_LOOPS] = module  # its dataclasses look their module up by name
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[_SANDBOX_LOOPS]
            raise
    return module
