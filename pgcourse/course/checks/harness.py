"""The machinery shared by every chapter's checks.

An exercise is declared once, as an :class:`Exercise`: its reference implementation, a function
that builds its :class:`Case` s, what it computes in words (its ``concept``, never the solution's
code), and the classic wrong versions as :class:`Mistake` s. :func:`_make_check` turns it into
``check_<name>``, which calls :func:`_run`: run the learner's function on every case (smallest
first), compare values, in-place changes, gradients and dtype with the reference, and either print
one line or raise an ``AssertionError`` built by :func:`_message`, naming the known mistake that
reproduces the learner's results (else what the exercise computes, in words), with the smallest
failing case and where the expected and received values differ.

The end of this module has the tensor helpers the chapters build their cases with (``_t``,
``_bool``, ``_randn``, ``_log_probs``). This module imports no chapter module.
"""
from __future__ import annotations

import math

import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

# The public home of the checks: tracebacks print pgcourse.course.checks.LearnerCodeError, pickles find it there.
_PACKAGE = __name__.rpartition(".")[0]


class LearnerCodeError(Exception):
    """Your function raised an exception while a check was running it (a crash, not a wrong answer)."""


LearnerCodeError.__module__ = _PACKAGE


# --------------------------------------------------------------------------------------------------
# The harness
# --------------------------------------------------------------------------------------------------

@dataclass
class Case:
    """One call of the exercise function: ``args`` are passed positionally, in this order."""

    description: str
    args: dict[str, Any]

    @property
    def size(self) -> int:
        return sum(value.numel() if isinstance(value, Tensor) else 1 for value in self.args.values())


@dataclass
class Mistake:
    """A known wrong version of an exercise: ``compute`` takes the exercise's arguments."""

    hint: str
    compute: Callable[..., Any]


@dataclass
class Exercise:
    """What a check needs to know about one exercise."""

    name: str
    reference: Callable[..., Any]
    make_cases: Callable[[], list[Case]]
    concept: str                         # what it computes, in words, no solution code: shown when no known
                                         # mistake explains the failure
    mistakes: list[Mistake] = field(default_factory=list)
    output: str = "tensor"               # "tensor" | "number" (float or 1-element tensor) | "numbers" (list)
    detached_output_hint: str | None = None       # the output must not require grad
    grad_args: tuple[str, ...] = ()               # gradients into these must match the reference
    leak_hints: dict[str, str] = field(default_factory=dict)     # arg -> hint if gradient reaches it
    no_grad_hints: dict[str, str] = field(default_factory=dict)  # arg -> hint if no gradient reaches it
    inplace_hint: str | None = None
    note: str = ""                        # how to read the printed tensors
    tolerance: tuple[float, float] | None = None  # (rtol, atol) for every case, when two correct formulas differ
                                                  # by more than float rounding (e.g. an eps inside a log)


@dataclass
class _Failure:
    kind: str                 # "type", "value", "inplace", "grad" or "dtype" (reported in that priority)
    case: Case
    problem: str
    hint: str | None = None
    expected: Any = None
    received: Any = None
    show_values: bool = True
    labels: tuple[str, str] = ("expected", "received")


_PRIORITY = ("type", "value", "inplace", "grad", "dtype")


def _clone_values(values: Any) -> list[Any]:
    """Fresh copies of a call's arguments (tensors become leaf copies, keeping requires_grad; anything else is
    passed as it is). Every check hands the learner's function copies and keeps the originals: its expectations
    are computed from untouched inputs, and comparing the copies with the originals afterwards shows an input the
    learner's function changed in place (:func:`_changed_input`)."""
    cloned = []
    for value in values:
        if isinstance(value, Tensor):
            copy = value.detach().clone()
            cloned.append(copy.requires_grad_(True) if value.requires_grad else copy)
        else:
            cloned.append(value)
    return cloned


def _clone_args(args: dict[str, Any]) -> list[Any]:
    """Fresh copies of the case's arguments (leaf tensors, keeping requires_grad)."""
    return _clone_values(args.values())


def _changed_input(names: list[str], originals: list[Any], passed: list[Any]) -> str | None:
    """The name of the first tensor argument whose copy, as the learner's function left it, differs from the
    original (changed in place), else None."""
    def plain(tensor: Tensor) -> Tensor:  # NaNs compare equal to NaNs
        return torch.nan_to_num(tensor.detach().cpu(), nan=1e300)

    for name, original, after in zip(names, originals, passed):
        if isinstance(original, Tensor) and isinstance(after, Tensor) and not torch.equal(plain(original),
                                                                                           plain(after)):
            return name
    return None


PACKAGE_FOLDER = str(Path(__file__).resolve().parents[2])  # pgcourse/: the check's and the grader's own code


def _innermost_function(error: BaseException) -> str | None:
    """The name of the innermost function of the learner's in ``error``'s traceback: the last frame outside the
    package (in the grader's sandbox the error crosses pgcourse's own link code, whose function names are not the
    learner's business: issue 46, item 7)."""
    name, trace = None, error.__traceback__
    while trace is not None:
        if not trace.tb_frame.f_code.co_filename.startswith(PACKAGE_FOLDER):
            name = trace.tb_frame.f_code.co_name
        trace = trace.tb_next
    return name


def _call_learner(fn: Callable[..., Any], name: str, args: list[Any], arg_names: list[str] | None = None) -> Any:
    """Run the learner's function; their exceptions become LearnerCodeError (stubs: AssertionError)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)
    except NotImplementedError as error:
        raiser = _innermost_function(error)  # a stub the learner's function called, or the function itself
        where = (f"{raiser} (called by your {name})" if raiser and raiser != getattr(fn, "__name__", name) else name)
        raise AssertionError(
            f"{where}: not implemented yet. Replace `raise NotImplementedError()` with your code, "
            f"then run the check again.") from None
    except Exception as error:  # noqa: BLE001 - any crash in their code is reported as theirs
        # Drop the check's own frame: the traceback starts inside the learner's function.
        learner_traceback = "".join(traceback.format_exception(type(error), error, error.__traceback__.tb_next))
        message = (f"{name}: your function raised an exception (this is a crash in your code, not a wrong "
                   f"answer). Your traceback:\n\n{learner_traceback}")
        if isinstance(error, TypeError) and error.__traceback__.tb_next is None and arg_names:
            message += f"\nThe check calls your function as {name}({', '.join(arg_names)}), in this order.\n"
        if "in-place" in str(error) or "inplace" in str(error):
            message += ("\nHint: an operation modifies a tensor in place (x += …, x[...] = …, or a method "
                        "ending in _). Build a new tensor instead of changing an input.")
        raise LearnerCodeError(message) from None


def _quiet(compute: Callable[..., Any], args: list[Any]) -> Any:
    """Run one of the check's own functions (reference or known mistake) without warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compute(*args)


def _is_low_precision(*values: Any) -> bool:
    return any(isinstance(v, Tensor) and v.is_floating_point() and v.dtype != torch.float64 for v in values)


def _tolerance(case: Case, *outputs: Any) -> tuple[float, float]:
    """(rtol, atol): float32 anywhere in the inputs or the outputs loosens the comparison."""
    return (1e-4, 1e-5) if _is_low_precision(*case.args.values(), *outputs) else (1e-6, 1e-8)


def _as_output(kind: str, value: Any) -> tuple[Any, str | None]:
    """(normalised value, problem): tensors stay tensors, numbers become float, lists lists of floats."""
    if value is None:
        return None, "your function returned None. Did you forget the `return` statement?"
    if kind == "tensor":
        if isinstance(value, Tensor):
            return value, None
        return None, (f"expected a torch tensor, got a {type(value).__name__}. Keep working with torch "
                      f"operations on the input tensors.")
    if kind == "number":
        if isinstance(value, Tensor):
            if value.numel() == 1:
                return float(value.detach()), None
            return None, (f"expected a single number, got a tensor of shape {tuple(value.shape)}. Reduce it to "
                          f"one number (e.g. with .mean()).")
        if isinstance(value, int | float | np.generic) and not isinstance(value, bool | np.bool_):
            return float(value), None
        return None, f"expected a single number, got a {type(value).__name__}."
    # kind == "numbers": a list, as the docstring asks (a tensor passed the check, then the lesson's next cell that
    # uses the list crashed: a student's try, issue 49)
    if isinstance(value, Tensor | np.ndarray):
        return None, (f"expected a list of Python floats, got a {type(value).__name__}: the cells that use it take a "
                      f"list. Convert it with its tolist method, or build a list.")
    if not isinstance(value, list | tuple):
        return None, f"expected a list of numbers, got a {type(value).__name__}."
    if any(isinstance(item, bool | np.bool_) for item in value):  # a comparison's result, not a number (as above)
        return None, "expected a list of numbers, but some elements are bool (True/False), not numbers."
    try:
        return [float(item) for item in value], None
    except (TypeError, ValueError):
        return None, "expected a list of numbers, but some elements are not numbers."


def _close(received: Any, expected: Any, kind: str, tolerance: tuple[float, float]) -> bool:
    rtol, atol = tolerance
    if kind == "tensor":
        if not isinstance(received, Tensor) or tuple(received.shape) != tuple(expected.shape):
            return False
        return torch.allclose(received.detach().double(), expected.detach().double(), rtol=rtol, atol=atol,
                              equal_nan=True)
    if kind == "number":
        expected = [float(expected)]
        received = [received]
    if len(received) != len(expected):
        return False
    return torch.allclose(torch.tensor(received, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                          rtol=rtol, atol=atol, equal_nan=True)


def _grad_weights(output: Tensor) -> Tensor:
    """Fixed, unequal weights so that the gradient of a vector output is checked element by element."""
    return torch.linspace(0.5, 1.5, output.numel(), dtype=output.dtype).reshape(output.shape)


def _gradients(output: Tensor, inputs: list[Tensor]) -> list[Tensor | None]:
    return list(torch.autograd.grad((output * _grad_weights(output)).sum(), inputs, allow_unused=True))


def _grad_failure(ex: Exercise, case: Case, learner_args: list[Any], received: Tensor,
                  ref_args: list[Any], expected: Tensor) -> _Failure | None:
    names = list(case.args)
    with_grad = [i for i, value in enumerate(case.args.values()) if isinstance(value, Tensor) and value.requires_grad]
    if not with_grad:
        return None
    if ex.detached_output_hint is not None:
        if received.requires_grad:
            return _Failure("grad", case, "your output still requires grad (it is connected to the autograd graph "
                            "of the inputs).", ex.detached_output_hint, show_values=False)
        return None
    if not received.requires_grad:
        missing = [names[i] for i in with_grad if names[i] in ex.grad_args]
        if not missing:
            return None
        hint = ex.no_grad_hints.get(missing[0], "did you use .detach(), .item(), .numpy() or torch.tensor on "
                                                "an input? Keep the computation in torch operations.")
        return _Failure("grad", case, f"no gradient flows back into `{missing[0]}`: your output is not connected "
                        f"to it.", hint, show_values=False)
    try:
        learner_grads = _gradients(received, [learner_args[i] for i in with_grad])
    except RuntimeError as error:
        raise LearnerCodeError(f"{ex.name}: backpropagating through your output failed:\n{error}") from None
    if expected.requires_grad:
        ref_grads = _gradients(expected, [ref_args[i] for i in with_grad])
    else:
        ref_grads = [None] * len(with_grad)
    for i, learner_grad, ref_grad in zip(with_grad, learner_grads, ref_grads):
        name = names[i]
        if name in ex.leak_hints:
            if learner_grad is not None and bool(learner_grad.abs().max() > 0):
                return _Failure("grad", case, f"gradient flows back into `{name}`, which should be a constant here.",
                                ex.leak_hints[name], show_values=False)
            continue
        if name not in ex.grad_args:
            continue
        reference_grad = ref_grad if ref_grad is not None else torch.zeros_like(ref_args[i])
        if learner_grad is None:
            if bool(reference_grad.abs().max() > 0):
                hint = ex.no_grad_hints.get(name, "did you detach it, or rebuild it with torch.tensor?")
                return _Failure("grad", case, f"no gradient flows back into `{name}`.", hint, show_values=False)
            continue
        broken = ~torch.isfinite(learner_grad) & torch.isfinite(reference_grad)
        if bool(broken.any()):
            return _Failure("grad", case, f"the gradient with respect to `{name}` is nan or infinite in "
                            f"{int(broken.sum())} entries where it should be finite, although the values are right.",
                            "a nan or inf formed inside the computation and masked afterwards (torch.where, "
                            "nan_to_num) still reaches the gradient: avoid forming it (a log of 0, a division by "
                            "0) rather than masking it.",
                            expected=reference_grad, received=learner_grad,
                            labels=(f"expected gradient of `{name}`", "your gradient"))
        if not _close(learner_grad, reference_grad, "tensor", _tolerance(case)):
            return _Failure("grad", case, f"the gradient with respect to `{name}` is not the expected one, although "
                            f"the values are right.",
                            "some part of the computation is detached or replaced by a constant; compute everything "
                            "with differentiable torch operations on the inputs.",
                            expected=reference_grad, received=learner_grad,
                            labels=(f"expected gradient of `{name}`", "your gradient"))
    return None


def _check_case(ex: Exercise, case: Case, learner_args: list[Any], output: Any) -> _Failure | None:
    """The first thing wrong with one case: values, then in-place changes, then gradients, then dtype."""
    ref_args = _clone_args(case.args)
    expected = _quiet(ex.reference, ref_args)
    received, problem = _as_output(ex.output, output)
    if ex.output == "number":
        expected = float(expected)
    if problem is not None:  # the output's type or form: its values are not compared, nor diagnosed
        return _Failure("type", case, problem, expected=expected, received=output)
    if not _close(received, expected, ex.output, ex.tolerance or _tolerance(case, received, expected)):
        return _Failure("value", case, "", expected=expected, received=received)
    for name, original, passed in zip(case.args, case.args.values(), learner_args):
        if isinstance(original, Tensor) and not torch.equal(original.detach(), passed.detach()):
            hint = ex.inplace_hint or ("work on a copy or build a new tensor (x = x - m instead of x -= m): "
                                       "the caller still needs the original input.")
            return _Failure("inplace", case, f"your function modified its input `{name}` in place.", hint,
                            expected=original, received=passed,
                            labels=(f"`{name}` before your call", f"`{name}` after your call"))
    if ex.output == "number" and ex.detached_output_hint is not None and isinstance(output, Tensor) \
            and output.requires_grad:
        return _Failure("grad", case, "your output still requires grad (it is connected to the autograd graph of "
                        "the inputs).", ex.detached_output_hint, show_values=False)
    if ex.output == "tensor":
        grad_failure = _grad_failure(ex, case, learner_args, received, ref_args, expected)
        if grad_failure is not None:
            return grad_failure
    if ex.output == "tensor" and received.dtype != expected.dtype:
        if expected.dtype == torch.bool:
            hint = "return a bool tensor: comparisons and ~, |, & on bool tensors give one (or call .bool())."
        elif not expected.dtype.is_floating_point:  # counts and indices
            hint = (f"return {str(expected.dtype).removeprefix('torch.')} values, the dtype torch gives indices and "
                    f"counts (.long() converts).")
        else:
            hint = (f"keep the dtype of the inputs: a new tensor created without a dtype gets torch's default, "
                    f"{str(torch.get_default_dtype()).removeprefix('torch.')}; create the tensors you return with "
                    f"the dtype of the inputs (the *_like constructors copy it).")
        return _Failure("dtype", case, f"your output has dtype {received.dtype}, expected {expected.dtype}.", hint,
                        show_values=False)
    return None


def _matches_mistake(ex: Exercise, mistake: Mistake, case: Case, output: Any) -> str | None:
    """Whether ``mistake`` reproduces the learner's ``output`` on ``case``: ``"value"`` when it does and some entry
    of the mistake's output is a number, ``"nan"`` when it does only because both are NaN throughout, ``"undefined"``
    when the mistake cannot be replayed on this case (it raises: it says nothing there), else None.
    A NaN alone is no signature: an answer that returns NaN for any reason would "reproduce" a mistake whose output
    is all NaN on that case (e.g. ``log(log_std)`` for a negative ``log_std``)."""
    received, problem = _as_output(ex.output, output)
    if problem is not None:
        return None
    try:
        with torch.no_grad():
            wrong = _quiet(mistake.compute, _clone_args(case.args))
    except Exception:  # noqa: BLE001 - a mistake that cannot be computed on this case is not replayed there
        return "undefined"
    wrong_value, problem = _as_output(ex.output, wrong)
    if problem is not None or not _close(received, wrong_value, ex.output,
                                         ex.tolerance or _tolerance(case, received, wrong_value)):
        return None
    return "nan" if _all_nan(wrong_value) else "value"


def _all_nan(value: Any) -> bool:
    """Whether every entry of a normalised output (tensor, float or list of floats) is NaN."""
    if isinstance(value, Tensor):
        return value.is_floating_point() and value.numel() > 0 and bool(torch.isnan(value.detach()).all())
    values = value if isinstance(value, list) else [value]
    return len(values) > 0 and all(isinstance(v, float) and math.isnan(v) for v in values)


def _diagnose(ex: Exercise, outcomes: list[tuple[Case, Any]], failing: Case,
              passed: Sequence[Case] = ()) -> tuple[str | None, bool]:
    """(hint, certain): the first known mistake whose replay reproduces the learner's output on EVERY case their
    function was run on (where the replay is defined: the failing case among them; a number, not only NaN, in one of
    them at least), else
    (None, False). A mistake that reproduces the failing case alone is not named (issue 49): its replay differs
    from the learner's output elsewhere, so it is not their mistake, however well it fits one case (a symmetric
    case, or one where two quantities happen to be equal, gives several mistakes the same value). ``passed`` is
    kept for the callers: the cases the learner got right are among ``outcomes``."""
    del passed
    for mistake in ex.mistakes:
        matches = {id(case): _matches_mistake(ex, mistake, case, output) for case, output in outcomes}
        if all(matches.values()) and "value" in matches.values() and matches[id(failing)] in ("value", "nan"):
            return mistake.hint, True
    return None, False


def _fmt_number(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def _fmt_pair(want: float, got: float) -> tuple[str, str]:
    """Two numbers that differ beyond the tolerance, with as many digits as it takes for them to print differently
    (4 first: 'expected 0.02074, received 0.02074' told a learner nothing; the difference was 6e-8)."""
    for digits in (4, 7, 10, 17):
        pair = (f"{want:.{digits}g}", f"{got:.{digits}g}")
        if pair[0] != pair[1]:
            return pair
    return _fmt_number(want), _fmt_number(got)


def _fmt_nested(tensor: Tensor, max_items: int = 12) -> str:
    if tensor.dim() == 0:
        return _fmt_number(tensor.item())
    items = [_fmt_nested(tensor[i], max_items) for i in range(min(tensor.shape[0], max_items))]
    if tensor.shape[0] > max_items:
        items.append(f"… {tensor.shape[0] - max_items} more")
    return "[" + ", ".join(items) + "]"


def _fmt(value: Any, meta: bool = True) -> str:
    """Compact, readable rendering of a check's input or output."""
    if isinstance(value, Tensor):
        text = _fmt_nested(value.detach().cpu())
        if not meta:
            return text
        details = [f"shape {tuple(value.shape)}", str(value.dtype).removeprefix("torch.")]
        if value.requires_grad:
            details.append("requires_grad")
        return f"{text}   ({', '.join(details)})"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(item, meta=False) for item in value) + "]"
    if isinstance(value, float):
        return _fmt_number(value)
    if isinstance(value, str):
        return value
    if isinstance(value, torch.Generator):
        return "torch.Generator"
    return repr(value)


def _differences(expected: Any, received: Any, tolerance: tuple[float, float], max_shown: int = 3) -> str | None:
    """Where two results of the same shape differ, ``N of M entries differ, first at [1, 0]: expected 0,
    received 1; …`` (None if they cannot be compared entry by entry)."""
    rtol, atol = tolerance
    if isinstance(expected, Tensor) and isinstance(received, Tensor):
        if tuple(expected.shape) != tuple(received.shape) or expected.dim() == 0:
            return None
        want, got = expected.detach().cpu().double(), received.detach().cpu().double()
        wrong = ~torch.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        spots = [tuple(index) for index in wrong.nonzero().tolist()]
        values = [_fmt_pair(want[spot].item(), got[spot].item()) for spot in spots]
    elif isinstance(expected, list) and isinstance(received, list) and len(expected) == len(received):
        spots = [(i,) for i, (want, got) in enumerate(zip(expected, received))
                 if not torch.isclose(torch.tensor(float(got), dtype=torch.float64),
                                      torch.tensor(float(want), dtype=torch.float64), rtol=rtol, atol=atol,
                                      equal_nan=True)]
        values = [_fmt_pair(float(expected[i]), float(received[i])) for (i,) in spots]
    else:
        return None
    if not spots:
        return None
    shown = "; ".join(f"at [{', '.join(map(str, spot))}]: expected {want}, received {got}"
                      for spot, (want, got) in zip(spots[:max_shown], values[:max_shown]))
    more = f" (and {len(spots) - max_shown} more)" if len(spots) > max_shown else ""
    return f"  {len(spots)} of {_count(expected)} entries differ, first {shown}{more}"


def _count(value: Any) -> int:
    return value.numel() if isinstance(value, Tensor) else len(value)


def _message(name: str, problem: str, hint: str | None, certain: bool, case: Case, *, concept: str = "",
             expected: Any = None, received: Any = None, show_values: bool = True, note: str = "",
             labels: tuple[str, str] = ("expected", "received"),
             tolerance: tuple[float, float] | None = None) -> str:
    lines = [f"{name}: {problem}"]
    if hint:
        lines.append(("Probable mistake: " if certain else "Possible cause (it reproduces this case): ") + hint)
    elif concept:
        lines.append(f"No known mistake reproduces your results. What {name} computes: {concept}")
        lines.append("Work out the smallest failing case below by hand and compare it with your result.")
    lines.append(f"Smallest failing case: {case.description}")
    lines += [f"    {arg} = {_fmt(value)}" for arg, value in case.args.items()]
    if show_values:
        width = max(len(label) for label in labels)
        lines.append(f"  {labels[0] + ':':<{width + 1}} {_fmt(expected)}")
        lines.append(f"  {labels[1] + ':':<{width + 1}} {_fmt(received)}")
        differences = _differences(expected, received, tolerance) if tolerance is not None else None
        if differences is not None:
            lines.append(differences)
    if note:
        lines.append(note)
    return "\n".join(lines)


def _run(ex: Exercise, fn: Callable[..., Any]) -> None:
    cases = sorted(ex.make_cases(), key=lambda case: case.size)
    outcomes: list[tuple[Case, Any]] = []
    failures: list[_Failure] = []
    for case in cases:
        learner_args = _clone_args(case.args)
        try:
            output = _call_learner(fn, ex.name, learner_args, list(case.args))
        except LearnerCodeError:
            if failures:  # a mistake already seen on a smaller case explains more than a later case's crash
                break
            raise
        outcomes.append((case, output))
        failure = _check_case(ex, case, learner_args, output)
        if failure is not None:
            failures.append(failure)
    if not failures:
        print(f"✓ {ex.name}: {len(cases)} cases passed")
        return
    failure = min(failures, key=lambda f: _PRIORITY.index(f.kind))  # min keeps the smallest case of a kind
    hint, certain = failure.hint, True
    if failure.kind == "value":
        failed = {id(f.case) for f in failures}
        hint, certain = _diagnose(ex, outcomes, failure.case, [case for case, _ in outcomes if id(case) not in failed])
        if not failure.problem:
            n_wrong = sum(f.kind == "value" for f in failures)
            failure.problem = f"wrong result in {n_wrong} of {len(cases)} cases."
            received, expected = failure.received, failure.expected
            if ex.output == "tensor" and tuple(received.shape) != tuple(expected.shape):
                failure.problem = (f"wrong shape: expected {tuple(expected.shape)}, got {tuple(received.shape)} "
                                   f"({n_wrong} of {len(cases)} cases wrong).")
    tolerance = (ex.tolerance or _tolerance(failure.case, failure.received, failure.expected)
                 if failure.kind == "value" else None)
    concept = "" if failure.kind == "type" else ex.concept  # a type problem is not a wrong value: no "by hand"
    raise AssertionError(_message(ex.name, failure.problem, hint, certain, failure.case, concept=concept,
                                  expected=failure.expected, received=failure.received,
                                  show_values=failure.show_values, note=ex.note, labels=failure.labels,
                                  tolerance=tolerance))


# --------------------------------------------------------------------------------------------------
# Building cases
# --------------------------------------------------------------------------------------------------

def _t(rows: Any, dtype: torch.dtype = torch.float32, requires_grad: bool = False) -> Tensor:
    return torch.tensor(rows, dtype=dtype).requires_grad_(requires_grad)


def _bool(rows: Any) -> Tensor:
    return torch.tensor(rows, dtype=torch.bool)


def _randn(g: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32, scale: float = 1.0,
           shift: float = 0.0, requires_grad: bool = False) -> Tensor:
    values = torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift
    return values.to(dtype).requires_grad_(requires_grad)


def _log_probs(g: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32,
               requires_grad: bool = False) -> Tensor:
    """Random log-probabilities (negative, like real ones)."""
    values = -0.05 - torch.randn(*shape, generator=g, dtype=torch.float64).abs()
    return values.to(dtype).requires_grad_(requires_grad)


_STEPS_NOTE = "([T, N] tensors are printed one row per step t, one column per environment.)"

# The exercises that take both flags share this diagnosis of `done = terminated + truncated`.
_BOTH_FLAGS_HINT = ("terminated and truncated can both be True on the same step (a time limit reached as the pole "
                    "falls: gymnasium then returns both, and the rollouts keep them as they come). Added as numbers "
                    "they make 2, not 1: combine the two flags with a logical or, or clamp their sum to 1.")


# --------------------------------------------------------------------------------------------------
# From an exercise to its check
# --------------------------------------------------------------------------------------------------

def _make_check(ex: Exercise) -> Callable[[Callable[..., Any]], None]:
    def check(fn: Callable[..., Any]) -> None:
        _run(ex, fn)
    check.__name__ = check.__qualname__ = f"check_{ex.name}"
    check.__module__ = _PACKAGE  # where check_<name> is found (pg.checks.check_<name>)
    check.__doc__ = (f"Check your ``{ex.name}`` against the reference on small, edge and random cases.\n\n"
                     f"What it computes: {ex.concept}\nPrints one line on success; raises AssertionError naming the "
                     f"probable mistake otherwise, LearnerCodeError if your function crashes.")
    return check
