"""The grader's rules in the notebook: one verdict for an answer, wherever its check runs.

When ``pgcourse grade`` runs a student's function, the course package is not there (it holds the reference
answers that the exercises re-implement): ``pg.normalize`` raises an ``ImportError`` saying so, and only
the *kit* the loop exercises are given is offered — ``pg.networks.CategoricalPolicy`` and ``ValueNet``,
``pg.algorithms.rollout.Rollout`` and ``pg.minibatch_indices`` (``pgcourse.grading.loops.KIT_NAMES``; not
``minibatch_indices`` in chapter 04, whose students write it). So that a check run in the notebook gives the
verdict the grader will give, :func:`grading_rules` applies the same rules to the learner's function while
the check runs it: every name of the learner's notebook that holds the course package, one of its modules,
or a function or class of it, is replaced for that time by a stand-in that raises the grader's own
``ImportError`` (the kit stays), and is put back afterwards.

Only functions defined in the learner's notebook (module ``__main__``) are affected: a check given a
function of the package itself, of a test module or of the grader's sandbox is run as before.
"""
from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Callable, Iterator
from typing import Any

PACKAGE = "pgcourse"
# What the sandbox offers, by module (pgcourse.grading.loops.install_kit): module name -> {attribute: object path}
# (each under its module's name and under the name it had before the package's folders: pgcourse.networks ...)
KIT = {
    **{f"pgcourse.{place}networks": {"CategoricalPolicy": "pgcourse.rl.networks.CategoricalPolicy",
                                     "ValueNet": "pgcourse.rl.networks.ValueNet"} for place in ("", "rl.")},
    **{f"pgcourse.{place}algorithms.rollout": {"Rollout": "pgcourse.rl.algorithms.rollout.Rollout"}
       for place in ("", "rl.")},
    **{f"pgcourse.{place}batching": {"minibatch_indices": "pgcourse.rl.batching.minibatch_indices"}
       for place in ("", "rl.")},
    "pgcourse": {"minibatch_indices": "pgcourse.rl.batching.minibatch_indices"},
}
# The checks whose chapter has the learner write a piece of the kit: that piece is not offered there.
OWN_PIECES = {"pgcourse.course.checks.ch04_ppo": frozenset({"minibatch_indices"})}


# The grader's message, word for word (pgcourse.grading.runner.POLICY: the sandbox's copy of the runner imports
# nothing of the package, so the text lives in both; tests/test_grading_honest.py holds them equal).
POLICY = ("{name} is not available while grading: the course package holds the reference answers that the "
          "exercises re-implement, so it is kept out of the sandbox. Write your answer with torch and numpy.")


def policy(name: str) -> str:
    """The grader's message for a use of ``name`` (``pgcourse.normalize``) by a student's code."""
    return POLICY.format(name=name)


def _kit_objects(withheld: frozenset[str]) -> dict[int, Any]:
    """{id: object} of the kit's objects offered (the real package's: the sandbox's copies give the same numbers)."""
    import importlib

    found = {}
    for items in KIT.values():
        for attribute, path in items.items():
            if attribute in withheld:
                continue
            module, _, name = path.rpartition(".")
            value = getattr(importlib.import_module(module), name)
            found[id(value)] = value
    return found


class _Withheld(types.ModuleType):
    """A course module as the grader's sandbox shows it: the kit's pieces, every other attribute an ImportError."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(policy(f"{self.__name__}.{name}"))


def withheld_module(name: str, withheld: frozenset[str] = frozenset()) -> types.ModuleType:
    """The stand-in for the course module ``name`` (``pgcourse``, ``pgcourse.networks`` …) under the grader's rules."""
    import importlib

    module = _Withheld(name, f"{name} as the grader offers it: the course's answers are not available")
    for attribute, path in KIT.get(name, {}).items():
        if attribute not in withheld:
            owner, _, item = path.rpartition(".")
            setattr(module, attribute, getattr(importlib.import_module(owner), item))
    for kit_module in KIT:  # the way down to a module that offers something (pgcourse -> algorithms -> rollout)
        if kit_module.startswith(name + "."):
            child = kit_module[len(name) + 1:].split(".")[0]
            if child not in module.__dict__:
                stand_in = withheld_module(f"{name}.{child}", withheld)
                if any(not key.startswith("__") for key in stand_in.__dict__):
                    setattr(module, child, stand_in)
    return module


def _withheld_callable(value: Any) -> Callable[..., Any]:
    name = f"{value.__module__}.{getattr(value, '__qualname__', getattr(value, '__name__', '?'))}"

    def withheld(*args: Any, **kwargs: Any) -> Any:
        raise ImportError(policy(name))
    withheld.__name__ = withheld.__qualname__ = getattr(value, "__name__", "withheld")
    return withheld


def _of_course(value: Any) -> bool:
    """Whether ``value`` is the course package, one of its modules, or a function or class defined in it."""
    if isinstance(value, types.ModuleType):
        return value.__name__ == PACKAGE or value.__name__.startswith(PACKAGE + ".")
    if isinstance(value, type | types.FunctionType | types.BuiltinFunctionType):
        module = getattr(value, "__module__", None) or ""
        return module == PACKAGE or module.startswith(PACKAGE + ".")
    return False


def learner_functions(*values: Any) -> list[types.FunctionType]:
    """The arguments that are functions defined in the learner's notebook (module ``__main__``)."""
    return [value for value in values
            if isinstance(value, types.FunctionType) and value.__module__ == "__main__"
            and isinstance(value.__globals__, dict)]


@contextlib.contextmanager
def grading_rules(*functions: Any, withheld: frozenset[str] = frozenset()) -> Iterator[None]:
    """While the body runs, the learner's ``functions`` see the course package as the grader's sandbox shows it.

    Each name in their notebook's namespace that holds something of the course package is replaced by a stand-in
    (:func:`withheld_module`, or a function raising the grader's ImportError); the kit's objects stay. The
    names are put back afterwards, unless the learner's code rebound them meanwhile."""
    namespaces = {id(f.__globals__): f.__globals__ for f in learner_functions(*functions)}
    if not namespaces:
        yield
        return
    kit = _kit_objects(withheld)
    replaced: list[tuple[dict[str, Any], str, Any, Any]] = []
    try:
        for namespace in namespaces.values():
            for name, value in list(namespace.items()):
                if name.startswith("__") or id(value) in kit or not _of_course(value):
                    continue
                stand_in = (withheld_module(value.__name__, withheld) if isinstance(value, types.ModuleType)
                            else _withheld_callable(value))
                namespace[name] = stand_in
                replaced.append((namespace, name, value, stand_in))
        yield
    finally:
        for namespace, name, value, stand_in in reversed(replaced):
            if namespace.get(name) is stand_in:
                namespace[name] = value


def under_grading_rules(check: Callable[..., Any]) -> Callable[..., Any]:
    """``check`` running the learner's functions (its arguments) under :func:`grading_rules`."""
    withheld = OWN_PIECES.get(getattr(check, "__module__", ""), frozenset())

    @functools.wraps(check)
    def checked(*args: Any, **kwargs: Any) -> Any:
        with grading_rules(*args, *kwargs.values(), withheld=withheld):
            return check(*args, **kwargs)
    checked.__wrapped_by_grading_rules__ = True  # type: ignore[attr-defined]
    return checked
