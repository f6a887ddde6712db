"""Partial credit by cases (``--partial-credit``), computed in the trusted grading worker.

The rule (also in docs/teachers.md): an exercise whose check cell is a single call of one of the
course's standard checks, ``pg.checks.check_<name>(<function>)``, runs the student's function on
independent cases. When that check fails, the exercise earns

    points × (cases the answer gets right) / (cases),

rounded down to a quarter point (so always less than the full points), but only if the answer gets
right at least one *informative* case: one that neither of two do-nothing answers passes (all zeros
shaped like the right result, and the first input returned unchanged). So a stub, a crash, or an
answer that returns zeros earns nothing. A case "gets right" means exactly what the check requires
of it (values, in-place changes, gradients, dtype). A chapter's concept questions
(``pg.concepts.check_concepts("NN", answers)``) earn ``points × (questions right) / (questions)``, rounded
down the same way. Other checks written as custom code (several calls, an environment, the bug hunt, the
loop stages) are all or nothing. The check's own message is kept; a line saying
how many cases were right is added.
"""
from __future__ import annotations

import ast
import math
from typing import Any

STEP = 0.25  # partial points are rounded down to a multiple of this


def standard_check(check_source: str) -> tuple[str, str] | None:
    """(exercise name, function name) when the check cell is exactly ``pg.checks.check_<name>(<function>)``
    (comments aside) for a standard check of the course; else None."""
    try:
        body = ast.parse(check_source).body
    except SyntaxError:
        return None
    if len(body) != 1 or not isinstance(body[0], ast.Expr) or not isinstance(body[0].value, ast.Call):
        return None
    call = body[0].value
    target = call.func
    if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute) and \
            isinstance(target.value.value, ast.Name) and target.value.value.id == "pg" and target.value.attr == "checks":
        name = target.attr
    elif isinstance(target, ast.Name):
        name = target.id
    else:
        return None
    if not name.startswith("check_") or call.keywords or len(call.args) != 1 or not isinstance(call.args[0], ast.Name):
        return None
    from ...course.checks import EXERCISES

    exercise = name.removeprefix("check_")
    return (exercise, call.args[0].id) if exercise in EXERCISES else None


def concept_check(check_source: str) -> tuple[str, str] | None:
    """(chapter, name of the answers) when the check cell is exactly ``pg.concepts.check_concepts("NN", <name>)``
    (comments aside): a chapter's concept questions, whose partial credit is per question right."""
    try:
        body = ast.parse(check_source).body
    except SyntaxError:
        return None
    if len(body) != 1 or not isinstance(body[0], ast.Expr) or not isinstance(body[0].value, ast.Call):
        return None
    call, target = body[0].value, body[0].value.func
    if not (isinstance(target, ast.Attribute) and target.attr == "check_concepts"
            and isinstance(target.value, ast.Attribute) and target.value.attr == "concepts"
            and isinstance(target.value.value, ast.Name) and target.value.value.id == "pg"):
        return None
    if call.keywords or len(call.args) != 2 or not isinstance(call.args[0], ast.Constant) or \
            not isinstance(call.args[0].value, str | int) or not isinstance(call.args[1], ast.Name):
        return None
    return str(call.args[0].value), call.args[1].id


def concept_points(points: float, chapter: str, answers: Any) -> tuple[float, str]:
    """Partial credit of failed concept questions: ``points × right / questions`` rounded down to :data:`STEP`
    (a missing answer is not right), and the line that says so."""
    from ...course.concepts import count_correct

    try:
        right, total = count_correct(chapter, answers)
    except Exception:  # noqa: BLE001 - answers that are not a dict of letters earn nothing
        return 0.0, "Partial credit: none (the answers are not a dict of letters)."
    earned = min(partial_points(points, right, total, right), points)
    return earned, f"Partial credit: {right} of {total} questions right: {earned:g} of {points:g} point(s)."


def _trivial_outputs(exercise: Any, case: Any, expected: Any) -> list[Any]:
    """What a do-nothing answer returns on ``case``: zeros like the right result, and its first input."""
    import torch

    outputs: list[Any] = []
    if isinstance(expected, torch.Tensor):
        outputs.append(torch.zeros_like(expected.detach()))
    elif isinstance(expected, list | tuple):
        outputs.append([0.0] * len(expected))
    else:
        outputs.append(0.0)
    first = next(iter(case.args.values()), None)
    if isinstance(first, torch.Tensor):
        outputs.append(first.detach().clone())
    return outputs


def count_cases(exercise_name: str, function: Any) -> tuple[int, int, int]:
    """(cases the student's ``function`` gets right, cases, informative cases it gets right) for a standard check.

    The student's function is called once per case, as the check calls it; an exception in it fails
    that case only. Lost contact with the student process propagates (the caller decides)."""
    from ...course.checks import EXERCISES
    from ...course.checks.harness import _call_learner, _check_case, _clone_args, _quiet

    exercise = EXERCISES[exercise_name]
    right = total = informative_right = 0
    for case in sorted(exercise.make_cases(), key=lambda case: case.size):
        total += 1
        arguments = _clone_args(case.args)
        try:
            output = _call_learner(function, exercise.name, arguments, list(case.args))
            passed = _check_case(exercise, case, arguments, output) is None
        except Exception:  # noqa: BLE001 - their exception fails this case (a lost student process is a BaseException)
            passed = False
        if not passed:
            continue
        right += 1
        expected = _quiet(exercise.reference, _clone_args(case.args))
        if not any(_check_case(exercise, case, _clone_args(case.args), trivial) is None
                   for trivial in _trivial_outputs(exercise, case, expected)):
            informative_right += 1
    return right, total, informative_right


def partial_points(points: float, right: int, total: int, informative_right: int) -> float:
    """``points × right / total``, rounded down to :data:`STEP`; 0 without an informative case right."""
    if total <= 0 or informative_right <= 0:
        return 0.0
    return math.floor(points * right / total / STEP + 1e-9) * STEP


def describe(right: int, total: int, informative_right: int, earned: float, points: float) -> str:
    if informative_right == 0:
        return (f"Partial credit: none. Your function gets {right} of {total} cases right, but only cases that an "
                "answer of zeros or an unchanged input would also get right.")
    return f"Partial credit: your function gets {right} of {total} cases right: {earned:g} of {points:g} point(s)."
