"""Instant feedback for the course exercises: ``pg.checks.check_<exercise>(your_function)``.

A check runs your function on a set of cases (small hand-made ones and seeded random ones, with
the edge cases that matter: an episode ending mid-rollout, a time-limit truncation, T=1, one env
and several, float64 inputs, inputs that require grad), compares every result with the reference
implementation in this package, and then either prints one line (``✓ compute_gae: 14 cases
passed``) or raises an ``AssertionError`` that names the probable mistake and shows the smallest
case that goes wrong, with what was expected and what your function returned.

How a mistake gets its name: each check knows the classic wrong versions of its exercise and
computes them on the same cases. If your results agree with one of them on every case, the
message says which mistake that is.

If your function itself raises an exception, that is reported as a :class:`LearnerCodeError`
with your traceback: fix the crash first. ``NotImplementedError`` means the exercise is still a
stub and is reported as "not implemented yet".

``ALL_CHECKS`` maps each exercise name to its check, ``REFERENCES`` to the reference solution.
"""
from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import batching, diagnostics, envs, losses, returns

__all__ = ["LearnerCodeError", "ALL_CHECKS", "REFERENCES"]  # plus every check_<name>, added at the end


class LearnerCodeError(Exception):
    """Your function raised an exception while a check was running it (a crash, not a wrong answer)."""


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
    formula: str                         # shown when no known mistake explains the failure
    mistakes: list[Mistake] = field(default_factory=list)
    output: str = "tensor"               # "tensor" | "number" (float or 1-element tensor) | "numbers" (list)
    detached_output_hint: str | None = None       # the output must not require grad
    grad_args: tuple[str, ...] = ()               # gradients into these must match the reference
    leak_hints: dict[str, str] = field(default_factory=dict)     # arg -> hint if gradient reaches it
    no_grad_hints: dict[str, str] = field(default_factory=dict)  # arg -> hint if no gradient reaches it
    inplace_hint: str | None = None
    note: str = ""                        # how to read the printed tensors


@dataclass
class _Failure:
    kind: str                 # "value", "inplace", "grad" or "dtype" (reported in that priority)
    case: Case
    problem: str
    hint: str | None = None
    expected: Any = None
    received: Any = None
    show_values: bool = True
    labels: tuple[str, str] = ("expected", "received")


_PRIORITY = ("value", "inplace", "grad", "dtype")


def _clone_args(args: dict[str, Any]) -> list[Any]:
    """Fresh copies of the case's arguments (leaf tensors, keeping requires_grad)."""
    cloned = []
    for value in args.values():
        if isinstance(value, Tensor):
            copy = value.detach().clone()
            cloned.append(copy.requires_grad_(True) if value.requires_grad else copy)
        else:
            cloned.append(value)
    return cloned


def _call_learner(fn: Callable[..., Any], name: str, args: list[Any], arg_names: list[str] | None = None) -> Any:
    """Run the learner's function; their exceptions become LearnerCodeError (stubs: AssertionError)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)
    except NotImplementedError:
        raise AssertionError(
            f"{name}: not implemented yet. Replace `raise NotImplementedError()` with your code, "
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
    # kind == "numbers"
    if isinstance(value, Tensor):
        value = value.detach().flatten().tolist()
    elif isinstance(value, np.ndarray):
        value = value.flatten().tolist()
    if not isinstance(value, list | tuple):
        return None, f"expected a list of numbers, got a {type(value).__name__}."
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
        hint = ex.no_grad_hints.get(missing[0], "did you use .detach(), .item(), .numpy() or torch.tensor(...) on "
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
                hint = ex.no_grad_hints.get(name, "did you detach it, or rebuild it with torch.tensor(...)?")
                return _Failure("grad", case, f"no gradient flows back into `{name}`.", hint, show_values=False)
            continue
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
    if problem is not None:
        return _Failure("value", case, problem, expected=expected, received=output)
    if not _close(received, expected, ex.output, _tolerance(case, received, expected)):
        return _Failure("value", case, "", expected=expected, received=received)
    for name, original, passed in zip(case.args, case.args.values(), learner_args):
        if isinstance(original, Tensor) and not torch.equal(original.detach(), passed.detach()):
            hint = ex.inplace_hint or ("work on a copy or build a new tensor (x = x - m instead of x -= m): "
                                       "the caller still needs the original input.")
            return _Failure("inplace", case, f"your function modified its input `{name}` in place.", hint,
                            expected=original, received=passed,
                            labels=(f"`{name}` before your call", f"`{name}` after your call"))
    if ex.output == "tensor":
        grad_failure = _grad_failure(ex, case, learner_args, received, ref_args, expected)
        if grad_failure is not None:
            return grad_failure
    if ex.output == "tensor" and received.dtype != expected.dtype:
        if expected.dtype == torch.bool:
            hint = "return a bool tensor: comparisons and ~, |, & on bool tensors give one (or call .bool())."
        else:
            hint = (f"keep the dtype of the inputs: create new tensors with torch.zeros_like(x) / x.new_zeros(...) "
                    f"or dtype=x.dtype (plain torch.zeros(...) or torch.tensor([...]) gives "
                    f"{torch.get_default_dtype()}).")
        return _Failure("dtype", case, f"your output has dtype {received.dtype}, expected {expected.dtype}.", hint,
                        show_values=False)
    return None


def _matches_mistake(ex: Exercise, mistake: Mistake, case: Case, output: Any) -> bool:
    received, problem = _as_output(ex.output, output)
    if problem is not None:
        return False
    try:
        with torch.no_grad():
            wrong = _quiet(mistake.compute, _clone_args(case.args))
    except Exception:  # noqa: BLE001 - a mistake that cannot be computed on this case does not match
        return False
    wrong_value, problem = _as_output(ex.output, wrong)
    return problem is None and _close(received, wrong_value, ex.output, _tolerance(case, received, wrong_value))


def _diagnose(ex: Exercise, outcomes: list[tuple[Case, Any]], failing: Case) -> tuple[str | None, bool]:
    """(hint, certain): a known mistake that reproduces every case, else one that reproduces ``failing``."""
    for mistake in ex.mistakes:
        if all(_matches_mistake(ex, mistake, case, output) for case, output in outcomes):
            return mistake.hint, True
    failing_output = next(output for case, output in outcomes if case is failing)
    for mistake in ex.mistakes:
        if _matches_mistake(ex, mistake, failing, failing_output):
            return mistake.hint, False
    return None, False


def _fmt_number(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


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


def _message(name: str, problem: str, hint: str | None, certain: bool, case: Case, *, formula: str = "",
             expected: Any = None, received: Any = None, show_values: bool = True, note: str = "",
             labels: tuple[str, str] = ("expected", "received")) -> str:
    lines = [f"{name}: {problem}"]
    if hint:
        lines.append(("Probable mistake: " if certain else "Possible cause (it reproduces this case): ") + hint)
    elif formula:
        lines.append(f"Compare with the definition: {formula}")
    lines.append(f"Smallest failing case: {case.description}")
    lines += [f"    {arg} = {_fmt(value)}" for arg, value in case.args.items()]
    if show_values:
        width = max(len(label) for label in labels)
        lines.append(f"  {labels[0] + ':':<{width + 1}} {_fmt(expected)}")
        lines.append(f"  {labels[1] + ':':<{width + 1}} {_fmt(received)}")
    if note:
        lines.append(note)
    return "\n".join(lines)


def _run(ex: Exercise, fn: Callable[..., Any]) -> None:
    cases = sorted(ex.make_cases(), key=lambda case: case.size)
    outcomes: list[tuple[Case, Any]] = []
    failures: list[_Failure] = []
    for case in cases:
        learner_args = _clone_args(case.args)
        output = _call_learner(fn, ex.name, learner_args, list(case.args))
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
        hint, certain = _diagnose(ex, outcomes, failure.case)
        if not failure.problem:
            n_wrong = sum(f.kind == "value" for f in failures)
            failure.problem = f"wrong result in {n_wrong} of {len(cases)} cases."
            received, expected = failure.received, failure.expected
            if ex.output == "tensor" and tuple(received.shape) != tuple(expected.shape):
                failure.problem = (f"wrong shape: expected {tuple(expected.shape)}, got {tuple(received.shape)} "
                                   f"({n_wrong} of {len(cases)} cases wrong).")
    raise AssertionError(_message(ex.name, failure.problem, hint, certain, failure.case, formula=ex.formula,
                                  expected=failure.expected, received=failure.received,
                                  show_values=failure.show_values, note=ex.note, labels=failure.labels))


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


def _episode_flags(g: torch.Generator, steps: int, num_envs: int, p_end: float = 0.25) -> tuple[Tensor, Tensor]:
    """Bool [T, N] flags as a NEXT_STEP vector env makes them: after every episode end, one reset step."""
    terminated = torch.zeros(steps, num_envs, dtype=torch.bool)
    truncated = torch.zeros(steps, num_envs, dtype=torch.bool)
    draws = torch.rand(steps, num_envs, generator=g).tolist()
    for env_index in range(num_envs):
        resetting = False
        for t in range(steps):
            if resetting:  # the autoreset step: no flags, reward 0
                resetting = False
                continue
            u = draws[t][env_index]
            terminated[t, env_index] = u < 0.6 * p_end or 0.95 * p_end <= u < p_end
            truncated[t, env_index] = 0.6 * p_end <= u < p_end
            resetting = u < p_end
    return terminated, truncated


def _rollout_rewards(g: torch.Generator, terminated: Tensor, truncated: Tensor,
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """Rewards of a NEXT_STEP rollout: 0 on reset steps."""
    rewards = torch.randint(1, 6, terminated.shape, generator=g).to(dtype) / 2
    return rewards * envs.transition_mask(terminated, truncated)


def _gae_flags(g: torch.Generator, steps: int, num_envs: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Float 0/1 flags as the package's rollouts store them (terminations and truncations)."""
    u = torch.rand(steps, num_envs, generator=g)
    return (u < 0.12).to(dtype), ((u >= 0.12) & (u < 0.2)).to(dtype)


_STEPS_NOTE = "([T, N] tensors are printed one row per step t, one column per environment.)"


# --------------------------------------------------------------------------------------------------
# ch00: transition_mask, completed_episode_returns
# --------------------------------------------------------------------------------------------------

def _shift_mask(flags: Tensor, first: bool = True) -> Tensor:
    """[T, N] mask whose row t is ~flags[t-1], row 0 is ``first``."""
    valid = torch.full_like(flags, first, dtype=torch.bool)
    valid[1:] = ~flags[:-1]
    return valid


def _cases_transition_mask() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    none4 = _bool([[0]] * 4)
    cases = [
        Case("T=1, N=1, no episode end", dict(terminated=_bool([[0]]), truncated=_bool([[0]]))),
        Case("T=1, N=2, env 0 terminates at step 0", dict(terminated=_bool([[1, 0]]), truncated=_bool([[0, 0]]))),
        Case("episode terminates mid-rollout (T=4, N=1)",
             dict(terminated=_bool([[0], [1], [0], [0]]), truncated=none4)),
        Case("time-limit truncation mid-rollout (T=4, N=1)",
             dict(terminated=none4, truncated=_bool([[0], [0], [1], [0]]))),
        Case("termination in env 0 and truncation in env 1 at the same step, env 2 ends on the last step (T=5, N=3)",
             dict(terminated=_bool([[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]]),
                  truncated=_bool([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]))),
    ]
    for steps, num_envs in [(8, 2), (12, 4), (30, 3)]:
        terminated, truncated = _episode_flags(g, steps, num_envs)
        cases.append(Case(f"random rollout (T={steps}, N={num_envs})",
                          dict(terminated=terminated, truncated=truncated)))
    return cases


TRANSITION_MASK = Exercise(
    name="transition_mask",
    reference=envs.transition_mask,
    make_cases=_cases_transition_mask,
    formula="valid[0] = True; valid[t] = not (terminated[t-1] or truncated[t-1]).",
    note=_STEPS_NOTE,
    mistakes=[
        Mistake("off by one: you used the flags of step t itself. Step t is a real transition even if the episode "
                "ends there; it is the step AFTER an end (the reset step) that is not: "
                "valid[t] = not (terminated[t-1] or truncated[t-1]).",
                lambda terminated, truncated: ~(terminated | truncated)),
        Mistake("you only look at `terminated`: a truncated step (time limit) is followed by a reset step too. "
                "Use terminated | truncated.",
                lambda terminated, truncated: _shift_mask(terminated)),
        Mistake("you only look at `truncated`: a terminated step is followed by a reset step too. "
                "Use terminated | truncated.",
                lambda terminated, truncated: _shift_mask(truncated)),
        Mistake("the mask is inverted: it must be True for real transitions and False for the reset steps.",
                lambda terminated, truncated: ~_shift_mask(terminated | truncated)),
        Mistake("valid[0] must be True: the rollout starts right after a fresh reset, so step 0 is a real "
                "transition.",
                lambda terminated, truncated: _shift_mask(terminated | truncated, first=False)),
        Mistake("torch.roll wraps the last step round to step 0: when an episode ends on the last step, "
                "your valid[0] becomes False. Set valid[0] = True and shift only the other rows.",
                lambda terminated, truncated: ~torch.roll(terminated | truncated, 1, dims=0)),
        Mistake("you dropped step 0: the mask has one row per step, shape [T, N]. Prepend a row of True.",
                lambda terminated, truncated: ~(terminated | truncated)[:-1]),
    ],
)


def _returns_by_env(rewards: Tensor, terminated: Tensor, truncated: Tensor, *, ends: Tensor | None = None,
                    reset_running: bool = True, at_reset_step: bool = False, keep_unfinished: bool = False,
                    env_major: bool = False) -> list[float]:
    """Episode returns with one knob per classic mistake (all knobs off gives the right answer)."""
    done = (terminated | truncated) if ends is None else ends
    rewards = rewards.double()
    steps, num_envs = rewards.shape
    found: list[tuple[int, int, float]] = []  # (end step, env, return)
    running = [0.0] * num_envs
    for t in range(steps):
        for i in range(num_envs):
            if at_reset_step and t > 0 and done[t - 1, i]:
                found.append((t, i, running[i]))
                running[i] = 0.0
            running[i] += float(rewards[t, i])
            if not at_reset_step and done[t, i]:
                found.append((t, i, running[i]))
                if reset_running:
                    running[i] = 0.0
    found.sort(key=lambda item: (item[1], item[0]) if env_major else (item[0], item[1]))
    result = [value for _, _, value in found]
    return result + running if keep_unfinished else result


def _cases_completed_episode_returns() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    cases = [
        Case("T=1, N=1, no episode ends", dict(rewards=_t([[1.0]]), terminated=_bool([[0]]), truncated=_bool([[0]]))),
        Case("T=1, N=2, env 1 terminates at step 0",
             dict(rewards=_t([[1.0, 1.5]]), terminated=_bool([[0, 1]]), truncated=_bool([[0, 0]]))),
        Case("episode terminates mid-rollout (T=5, N=1)",
             dict(rewards=_t([[1.0], [2.0], [3.0], [0.0], [4.0]]), terminated=_bool([[0], [0], [1], [0], [0]]),
                  truncated=_bool([[0]] * 5))),
        Case("truncation mid-rollout and on the last step (T=5, N=1)",
             dict(rewards=_t([[1.0], [1.0], [0.0], [2.0], [3.0]]), terminated=_bool([[0]] * 5),
                  truncated=_bool([[0], [1], [0], [0], [1]]))),
        Case("episodes end at the same step in different envs (T=5, N=3)",
             dict(rewards=_t([[1.0, 0.5, 2.0], [2.0, 0.5, 2.0], [3.0, 0.0, 0.0], [4.0, 1.0, 3.0], [0.0, 1.0, 3.0]]),
                  terminated=_bool([[0, 0, 0], [0, 0, 1], [0, 0, 0], [1, 0, 0], [0, 0, 1]]),
                  truncated=_bool([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]))),
    ]
    for steps, num_envs, dtype in [(12, 3, torch.float32), (10, 2, torch.float64), (25, 4, torch.float32)]:
        terminated, truncated = _episode_flags(g, steps, num_envs)
        rewards = _rollout_rewards(g, terminated, truncated, dtype)
        cases.append(Case(f"random rollout (T={steps}, N={num_envs}, {str(dtype).removeprefix('torch.')})",
                          dict(rewards=rewards, terminated=terminated, truncated=truncated)))
    return cases


COMPLETED_EPISODE_RETURNS = Exercise(
    name="completed_episode_returns",
    reference=envs.completed_episode_returns,
    make_cases=_cases_completed_episode_returns,
    output="numbers",
    formula="sum the rewards of each episode from its first step to the step where terminated or truncated is "
            "True; list the finished episodes by (end step, env index).",
    note=_STEPS_NOTE,
    mistakes=[
        Mistake("an episode cut by a time limit (truncated) has ended too: close the episode when terminated OR "
                "truncated is True.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       ends=terminated)),
        Mistake("you also list episodes that were still running at the end of the rollout: only episodes that "
                "ENDED inside the rollout count.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       keep_unfinished=True)),
        Mistake("the running return is not reset at the episode end: after recording an episode's return, set "
                "that env's running sum back to 0.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       reset_running=False)),
        Mistake("wrong order: list the episodes by end step first, then by env index (loop over steps outside, "
                "envs inside).",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       env_major=True)),
        Mistake("you close an episode when you see its reset step, so an episode ending on the last step of the "
                "rollout is lost: record the return at the step where terminated or truncated is True.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       at_reset_step=True)),
    ],
)


# --------------------------------------------------------------------------------------------------
# ch01: discounted_returns, normalize, reinforce_loss
# --------------------------------------------------------------------------------------------------

def _returns_forwards(rewards: Tensor, gamma: float) -> Tensor:
    out = torch.empty_like(rewards)
    running = 0.0
    for t in range(rewards.shape[0]):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def _returns_exponent_from_start(rewards: Tensor, gamma: float) -> Tensor:
    steps = rewards.shape[0]
    discounts = gamma ** torch.arange(steps, dtype=rewards.dtype)  # gamma^k
    return torch.stack([(discounts[t:] * rewards[t:]).sum() for t in range(steps)])


def _returns_shifted(rewards: Tensor, gamma: float) -> Tensor:
    correct = returns.discounted_returns(rewards, gamma)
    return torch.cat([correct[1:], torch.zeros_like(correct[:1])])


def _cases_discounted_returns() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    return [
        Case("T=1", dict(rewards=_t([2.0]), gamma=0.9)),
        Case("T=3", dict(rewards=_t([1.0, 2.0, 3.0]), gamma=0.5)),
        Case("T=4, gamma=1 (no discount)", dict(rewards=_t([1.0, 0.0, -1.0, 2.0]), gamma=1.0)),
        Case("T=5, rewards that require grad", dict(rewards=_t([0.5, 1.0, 0.0, 2.0, 1.0], requires_grad=True),
                                                     gamma=0.9)),
        Case("float64 rewards (T=6)", dict(rewards=_randn(g, 6, dtype=torch.float64), gamma=0.95)),
        Case("random rewards (T=10)", dict(rewards=_randn(g, 10), gamma=0.9)),
        Case("random rewards (T=40)", dict(rewards=_randn(g, 40, shift=1.0), gamma=0.99)),
    ]


DISCOUNTED_RETURNS = Exercise(
    name="discounted_returns",
    reference=returns.discounted_returns,
    make_cases=_cases_discounted_returns,
    formula="G_t = r_t + gamma * G_{t+1}, with G_T = 0 (loop backwards from the last step).",
    detached_output_hint="returns are targets, not something to differentiate through: compute them from "
                         "rewards.detach() (or under torch.no_grad()).",
    mistakes=[
        Mistake("you accumulate forwards in time (from t=0): a return sums the rewards that come AFTER step t, "
                "so loop backwards from the last step.", _returns_forwards),
        Mistake("gamma applied one step late: you discount after adding r_t, so r_t itself gets multiplied by "
                "gamma. Only the future is discounted: G_t = r_t + gamma * G_{t+1}.",
                lambda rewards, gamma: gamma * returns.discounted_returns(rewards, gamma)),
        Mistake("off by one: returns[t] holds G_{t+1} (you store the running return before adding r_t).",
                _returns_shifted),
        Mistake("gamma is ignored: you sum the future rewards without discounting them.",
                lambda rewards, gamma: returns.discounted_returns(rewards, 1.0)),
        Mistake("every step gets the return of the whole episode (G_0): G_t only sums the rewards from step t "
                "on (reward-to-go).",
                lambda rewards, gamma: returns.discounted_returns(rewards, gamma)[0].expand(rewards.shape)),
        Mistake("the discount exponent counts from the start of the episode (gamma^k); it must count from "
                "step t: G_t = sum_k gamma^(k-t) r_k.", _returns_exponent_from_start),
    ],
)


def _cases_normalize() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    return [
        Case("a single element", dict(x=_t([3.0]))),
        Case("a constant input", dict(x=_t([2.0, 2.0, 2.0, 2.0]))),
        Case("five values", dict(x=_t([1.0, 2.0, 3.0, 4.0, 10.0]))),
        Case("2-D input [T, N] = [3, 2]: normalise over all elements", dict(x=_t([[1.0, 10.0], [2.0, 20.0],
                                                                                  [3.0, 30.0]]))),
        Case("random 2-D input [4, 3]", dict(x=_randn(g, 4, 3) + _t([0.0, 5.0, -3.0]))),
        Case("float64 input", dict(x=_randn(g, 7, dtype=torch.float64, scale=3.0, shift=1.0))),
        Case("random input (64 values)", dict(x=_randn(g, 64, scale=10.0, shift=-2.0))),
    ]


NORMALIZE = Exercise(
    name="normalize",
    reference=returns.normalize,
    make_cases=_cases_normalize,
    formula="(x - x.mean()) / (x.std(unbiased=False) + 1e-8), over all elements.",
    mistakes=[
        Mistake("you normalise each column separately (along dim=0): normalise over ALL elements, "
                "x.mean() and x.std(unbiased=False) without a dim.",
                lambda x: (x - x.mean(0)) / (x.std(0, unbiased=False) + 1e-8)),
        Mistake("you normalise each row separately (along the last dim): normalise over ALL elements, "
                "x.mean() and x.std(unbiased=False) without a dim.",
                lambda x: (x - x.mean(-1, keepdim=True)) / (x.std(-1, unbiased=False, keepdim=True) + 1e-8)),
        Mistake("no epsilon: a constant input (or a single element) has std 0 and gives 0/0 = nan. "
                "Divide by (std + 1e-8).",
                lambda x: (x - x.mean()) / x.std(unbiased=False)),
        Mistake("use the population standard deviation, x.std(unbiased=False): the default (unbiased, n-1) "
                "is nan for a single element.",
                lambda x: (x - x.mean()) / (x.std() + 1e-8)),
        Mistake("you forgot to subtract the mean.", lambda x: x / (x.std(unbiased=False) + 1e-8)),
        Mistake("you divide by the variance; divide by the standard deviation.",
                lambda x: (x - x.mean()) / (x.var(unbiased=False) + 1e-8)),
    ],
)


def _cases_reinforce_loss() -> list[Case]:
    g = torch.Generator().manual_seed(4)
    return [
        Case("B=1", dict(log_probs=_t([-0.5], requires_grad=True), weights=_t([2.0], requires_grad=True))),
        Case("B=4", dict(log_probs=_t([-0.1, -1.2, -0.7, -2.0], requires_grad=True),
                         weights=_t([1.0, -0.5, 2.0, 0.0], requires_grad=True))),
        Case("float64 (B=8)", dict(log_probs=_log_probs(g, 8, dtype=torch.float64, requires_grad=True),
                                   weights=_randn(g, 8, dtype=torch.float64, requires_grad=True))),
        Case("random (B=16)", dict(log_probs=_log_probs(g, 16, requires_grad=True),
                                   weights=_randn(g, 16, scale=3.0, requires_grad=True))),
        Case("random, weights without grad (B=32)", dict(log_probs=_log_probs(g, 32, requires_grad=True),
                                                         weights=_randn(g, 32, shift=1.0))),
    ]


REINFORCE_LOSS = Exercise(
    name="reinforce_loss",
    reference=losses.reinforce_loss,
    make_cases=_cases_reinforce_loss,
    formula="loss = -mean(log_probs * weights.detach()).",
    grad_args=("log_probs",),
    leak_hints={"weights": "missing .detach() on the weights: returns/advantages are constants of the policy "
                           "gradient; use weights.detach() so no gradient flows into them."},
    mistakes=[
        Mistake("loss sign flipped: the loss is MINUS the mean of log_probs * weights (gradient descent on it "
                "must raise the log-probability of high-return actions).",
                lambda log_probs, weights: (log_probs * weights).mean()),
        Mistake("average over the batch with .mean(), not .sum(): the loss scale must not grow with the "
                "batch size.", lambda log_probs, weights: -(log_probs * weights).sum()),
        Mistake("the loss must be a single number (a 0-dim tensor): reduce log_probs * weights with .mean().",
                lambda log_probs, weights: -(log_probs * weights)),
        Mistake("use the log-probabilities as they are (the score function is the gradient of log pi), "
                "not exp(log_probs).", lambda log_probs, weights: -(log_probs.exp() * weights).mean()),
    ],
)


# --------------------------------------------------------------------------------------------------
# ch02: baseline_advantages, value_loss, gradient_variance, categorical_entropy
# --------------------------------------------------------------------------------------------------

def _cases_baseline_advantages() -> list[Case]:
    g = torch.Generator().manual_seed(5)
    return [
        Case("B=1", dict(returns=_t([3.0]), values=_t([1.0], requires_grad=True))),
        Case("B=5", dict(returns=_t([3.0, 1.0, 0.0, 2.5, -1.0]), values=_t([1.0, 1.5, 0.5, 2.5, 0.0],
                                                                            requires_grad=True))),
        Case("float64 (B=6)", dict(returns=_randn(g, 6, dtype=torch.float64, scale=5.0),
                                   values=_randn(g, 6, dtype=torch.float64, scale=5.0, requires_grad=True))),
        Case("random (B=12)", dict(returns=_randn(g, 12, scale=10.0, shift=20.0),
                                   values=_randn(g, 12, scale=10.0, shift=15.0, requires_grad=True))),
    ]


BASELINE_ADVANTAGES = Exercise(
    name="baseline_advantages",
    reference=returns.baseline_advantages,
    make_cases=_cases_baseline_advantages,
    formula="advantages = returns - values.detach().",
    detached_output_hint="missing .detach() on the values: the advantages are constants for the policy loss; "
                         "with returns - values.detach() no gradient leaks into the critic through them.",
    mistakes=[
        Mistake("sign flipped: the advantage is returns - values (how much better than expected the outcome "
                "was), not values - returns.", lambda returns_, values: values - returns_),
        Mistake("you return the returns unchanged: subtract the baseline values.", lambda returns_, values: returns_),
        Mistake("you normalise the advantages here: baseline_advantages is just returns - values "
                "(normalisation is a separate step).",
                lambda returns_, values: returns.normalize(returns_ - values)),
    ],
)


def _cases_value_loss() -> list[Case]:
    g = torch.Generator().manual_seed(6)
    return [
        Case("B=1", dict(values=_t([1.0], requires_grad=True), returns=_t([3.0], requires_grad=True))),
        Case("B=4", dict(values=_t([1.0, 2.0, 0.0, -1.0], requires_grad=True),
                         returns=_t([1.5, 0.0, 0.0, 1.0], requires_grad=True))),
        Case("float64 (B=8)", dict(values=_randn(g, 8, dtype=torch.float64, requires_grad=True),
                                   returns=_randn(g, 8, dtype=torch.float64, scale=2.0))),
        Case("random (B=16)", dict(values=_randn(g, 16, requires_grad=True),
                                   returns=_randn(g, 16, scale=3.0, requires_grad=True))),
    ]


VALUE_LOSS = Exercise(
    name="value_loss",
    reference=losses.value_loss,
    make_cases=_cases_value_loss,
    formula="loss = 0.5 * mean((values - returns.detach())**2).",
    grad_args=("values",),
    leak_hints={"returns": "missing .detach() on the returns: they are regression targets; use "
                           "returns.detach() so only the critic's values get a gradient."},
    no_grad_hints={"values": "the critic must learn from this loss: do not detach the values (only the returns)."},
    mistakes=[
        Mistake("missing the factor 0.5: loss = 0.5 * mean((values - returns)**2).",
                lambda values, returns_: ((values - returns_) ** 2).mean()),
        Mistake("average the squared errors with .mean(), not .sum().",
                lambda values, returns_: 0.5 * ((values - returns_) ** 2).sum()),
        Mistake("use the squared error (values - returns)**2, not the absolute error.",
                lambda values, returns_: 0.5 * (values - returns_).abs().mean()),
        Mistake("sign flipped: a squared-error loss is never negative; minimising it pulls the values towards "
                "the returns.", lambda values, returns_: -0.5 * ((values - returns_) ** 2).mean()),
    ],
)


def _cases_gradient_variance() -> list[Case]:
    g = torch.Generator().manual_seed(7)
    return [
        Case("K=2 samples of a 1-parameter gradient", dict(grads=_t([[1.0], [3.0]]))),
        Case("K=3 samples, P=2", dict(grads=_t([[1.0, 0.0], [2.0, 4.0], [3.0, 2.0]]))),
        Case("K=5 samples, P=1", dict(grads=_randn(g, 5, 1, scale=2.0, shift=1.0))),
        Case("float64, K=4, P=3", dict(grads=_randn(g, 4, 3, dtype=torch.float64, shift=0.5))),
        Case("random, K=10, P=5", dict(grads=_randn(g, 10, 5, shift=2.0))),
        Case("random, K=32, P=20", dict(grads=_randn(g, 32, 20, scale=0.1) + torch.linspace(-1, 1, 20))),
    ]


GRADIENT_VARIANCE = Exercise(
    name="gradient_variance",
    reference=diagnostics.gradient_variance,
    make_cases=_cases_gradient_variance,
    output="number",
    formula="grads.var(dim=0, unbiased=True).sum(): the variance across the K samples of each of the P "
            "coordinates, summed over the coordinates.",
    mistakes=[
        Mistake("you computed the mean gradient, not its variance: measure the spread of the K samples around "
                "their mean with the sample variance across dim 0.", lambda grads: grads.mean(dim=0).sum()),
        Mistake("use the unbiased sample variance (divide by K-1): grads.var(dim=0, unbiased=True).",
                lambda grads: grads.var(dim=0, unbiased=False).sum()),
        Mistake("variance along the wrong axis: take it across the K samples (dim=0) for each coordinate, "
                "then sum over the P coordinates.", lambda grads: grads.var(dim=1).sum()),
        Mistake("the total variance SUMS the per-coordinate variances (the trace of the covariance); you "
                "averaged them.", lambda grads: grads.var(dim=0).mean()),
        Mistake("variance, not standard deviation: sum grads.var(dim=0), not grads.std(dim=0).",
                lambda grads: grads.std(dim=0).sum()),
        Mistake("not the variance of the gradient norms: take the variance of each coordinate across the "
                "samples, then sum.", lambda grads: grads.norm(dim=1).var()),
        Mistake("subtract the mean gradient: the mean squared norm is the second moment, not the variance.",
                lambda grads: (grads ** 2).sum(dim=1).mean()),
    ],
)


def _cases_categorical_entropy() -> list[Case]:
    g = torch.Generator().manual_seed(8)
    return [
        Case("B=1, A=2, uniform policy", dict(logits=_t([[0.0, 0.0]], requires_grad=True))),
        Case("B=2, A=3", dict(logits=_t([[1.0, 2.0, 3.0], [0.0, 0.0, 5.0]], requires_grad=True))),
        Case("nearly deterministic policy: a probability underflows to 0 (B=2, A=3)",
             dict(logits=_t([[0.0, -200.0, 5.0], [50.0, 0.0, 0.0]], requires_grad=True))),
        Case("float64 (B=5, A=6)", dict(logits=_randn(g, 5, 6, dtype=torch.float64, scale=2.0, requires_grad=True))),
        Case("random (B=8, A=4)", dict(logits=_randn(g, 8, 4, scale=3.0, requires_grad=True))),
        Case("random (B=32, A=2)", dict(logits=_randn(g, 32, 2, requires_grad=True))),
    ]


CATEGORICAL_ENTROPY = Exercise(
    name="categorical_entropy",
    reference=losses.categorical_entropy,
    make_cases=_cases_categorical_entropy,
    formula="H = -sum_a p_a log p_a over the last dim, with log p = log_softmax(logits).",
    grad_args=("logits",),
    mistakes=[
        Mistake("lost the minus sign: entropy is -sum p log p (it is never negative).",
                lambda logits: (torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)),
        Mistake("log(softmax(logits)) is -inf where a probability underflows to 0, and 0 * -inf = nan: use "
                "torch.log_softmax(logits, dim=-1) for the log-probabilities.",
                lambda logits: -(torch.softmax(logits, -1) * torch.log(torch.softmax(logits, -1))).sum(-1)),
        Mistake("logits are not log-probabilities: normalise them first with log_softmax (p = softmax(logits)).",
                lambda logits: -(logits.exp() * logits).sum(-1)),
        Mistake("you summed over the batch (dim=0): the entropy of each state sums over its ACTIONS, the last dim.",
                lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(0)),
        Mistake("you forgot to sum over the actions: the entropy is one number per state, shape [B].",
                lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1))),
        Mistake("sum over the actions, not mean: H = -sum_a p_a log p_a.",
                lambda logits: -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).mean(-1)),
    ],
)


# --------------------------------------------------------------------------------------------------
# ch03: td_errors, compute_gae, a2c_policy_loss
# --------------------------------------------------------------------------------------------------

def _cases_td_errors() -> list[Case]:
    g = torch.Generator().manual_seed(9)
    cases = [
        Case("T=1, N=1, not terminated", dict(rewards=_t([[1.0]]), values=_t([[0.5]]), next_values=_t([[2.0]]),
                                              terminated=_t([[0.0]]), gamma=0.9)),
        Case("T=1, N=2, env 1 terminated", dict(rewards=_t([[1.0, 1.0]]), values=_t([[0.5, 0.5]]),
                                                next_values=_t([[2.0, 2.0]]), terminated=_t([[0.0, 1.0]]),
                                                gamma=0.9)),
        Case("episode terminates mid-rollout (T=4, N=1)",
             dict(rewards=_t([[1.0], [0.0], [2.0], [1.0]]), values=_t([[1.0], [2.0], [0.5], [1.0]]),
                  next_values=_t([[2.0], [3.0], [1.0], [2.0]]), terminated=_t([[0.0], [1.0], [0.0], [0.0]]),
                  gamma=0.9)),
    ]
    for steps, num_envs, dtype, grad in [(3, 2, torch.float32, True), (5, 3, torch.float64, True),
                                         (16, 4, torch.float32, False)]:
        terminated, _ = _gae_flags(g, steps, num_envs, dtype)
        terminated[steps // 2, 0] = 1.0
        description = f"random (T={steps}, N={num_envs}, {str(dtype).removeprefix('torch.')}" + (
            ", values that require grad)" if grad else ")")
        cases.append(Case(description, dict(
            rewards=_randn(g, steps, num_envs, dtype=dtype),
            values=_randn(g, steps, num_envs, dtype=dtype, requires_grad=grad),
            next_values=_randn(g, steps, num_envs, dtype=dtype, requires_grad=grad),
            terminated=terminated, gamma=0.99)))
    return cases


TD_ERRORS = Exercise(
    name="td_errors",
    reference=returns.td_errors,
    make_cases=_cases_td_errors,
    formula="delta = rewards + gamma * (1 - terminated) * next_values - values.",
    note=_STEPS_NOTE,
    detached_output_hint="TD errors are advantage estimates, constants for the policy gradient: compute them from "
                         "values.detach() and next_values.detach() (or under torch.no_grad()).",
    mistakes=[
        Mistake("you bootstrap through a terminal state: next_values must be multiplied by (1 - terminated), "
                "because a terminated episode has no future.",
                lambda rewards, values, next_values, terminated, gamma: rewards + gamma * next_values - values),
        Mistake("values and next_values are swapped: delta = r + gamma * V(s') - V(s), with V(s') = next_values.",
                lambda rewards, values, next_values, terminated, gamma:
                rewards + gamma * (1 - terminated) * values - next_values),
        Mistake("sign flipped: delta = r + gamma * V(s') - V(s) (the target minus the current estimate).",
                lambda rewards, values, next_values, terminated, gamma:
                values - rewards - gamma * (1 - terminated) * next_values),
        Mistake("the next value must be discounted: gamma * (1 - terminated) * next_values.",
                lambda rewards, values, next_values, terminated, gamma:
                rewards + (1 - terminated) * next_values - values),
        Mistake("only the bootstrap term gamma * V(s') is cut at a terminal state: r_t - V(s_t) still count, "
                "so don't multiply the whole delta by (1 - terminated).",
                lambda rewards, values, next_values, terminated, gamma:
                (1 - terminated) * (rewards + gamma * next_values - values)),
    ],
)


def _gae_variant(rewards: Tensor, values: Tensor, next_values: Tensor, bootstrap: Tensor, trace: Tensor,
                 gamma: float, decay: float, forwards: bool = False, trace_from_next_step: bool = False) -> Tensor:
    """GAE with the masks given explicitly, to reproduce the classic mistakes."""
    deltas = rewards + gamma * bootstrap * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    steps = rewards.shape[0]
    for t in (range(steps) if forwards else range(steps - 1, -1, -1)):
        keep = (trace[t + 1] if t + 1 < steps else torch.ones_like(trace[0])) if trace_from_next_step else trace[t]
        running = deltas[t] + decay * keep * running
        advantages[t] = running
    return advantages


def _gae_mistake(**knobs: Any) -> Callable[..., Tensor]:
    def compute(rewards, values, next_values, terminated, truncated, gamma, lam):
        not_terminated = 1 - terminated
        not_done = 1 - torch.clamp(terminated + truncated, max=1)
        bootstrap = {"not_terminated": not_terminated, "not_done": not_done, "always": torch.ones_like(rewards)}[
            knobs.get("bootstrap", "not_terminated")]
        trace = {"not_terminated": not_terminated, "not_done": not_done, "always": torch.ones_like(rewards)}[
            knobs.get("trace", "not_done")]
        if knobs.get("swap"):
            values, next_values = next_values, values
        decay = gamma if knobs.get("no_lambda") else gamma * lam
        return _gae_variant(rewards, values, next_values, bootstrap, trace, gamma, decay,
                            forwards=knobs.get("forwards", False),
                            trace_from_next_step=knobs.get("trace_from_next_step", False))
    return compute


def _cases_compute_gae() -> list[Case]:
    g = torch.Generator().manual_seed(10)
    zeros4 = _t([[0.0]] * 4)
    cases = [
        Case("T=1, N=1, no episode end", dict(rewards=_t([[1.0]]), values=_t([[0.5]]), next_values=_t([[1.0]]),
                                              terminated=_t([[0.0]]), truncated=_t([[0.0]]), gamma=0.9, lam=0.8)),
        Case("T=1, N=2: env 0 terminates and env 1 is truncated in the same step",
             dict(rewards=_t([[1.0, 1.0]]), values=_t([[0.5, 0.5]]), next_values=_t([[1.0, 1.0]]),
                  terminated=_t([[1.0, 0.0]]), truncated=_t([[0.0, 1.0]]), gamma=0.9, lam=0.8)),
        Case("episode terminates mid-rollout (T=4, N=1)",
             dict(rewards=_t([[1.0], [0.0], [2.0], [1.0]]), values=_t([[1.0], [2.0], [0.5], [1.0]]),
                  next_values=_t([[2.0], [3.0], [1.0], [2.0]]), terminated=_t([[0.0], [1.0], [0.0], [0.0]]),
                  truncated=zeros4, gamma=0.9, lam=0.8)),
        Case("time-limit truncation mid-rollout (T=4, N=1)",
             dict(rewards=_t([[1.0], [0.0], [2.0], [1.0]]), values=_t([[1.0], [2.0], [0.5], [1.0]]),
                  next_values=_t([[2.0], [3.0], [1.0], [2.0]]), terminated=zeros4,
                  truncated=_t([[0.0], [0.0], [1.0], [0.0]]), gamma=0.9, lam=0.8)),
        Case("termination and truncation at the same step in different envs, env 2 ends on the last step "
             "(T=5, N=3)",
             dict(rewards=_t([[1.0, 0.5, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]]),
                  values=_t([[1.0, 0.0, 2.0], [0.5, 1.0, 1.0], [2.0, 1.0, 0.0], [1.0, 1.5, 0.5], [0.0, 1.0, 1.0]]),
                  next_values=_t([[0.5, 1.0, 1.0], [1.0, 2.0, 0.0], [1.0, 1.5, 0.5], [0.0, 1.0, 1.0],
                                  [2.0, 0.5, 3.0]]),
                  terminated=_t([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                                 [0.0, 0.0, 1.0]]),
                  truncated=_t([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                                [0.0, 0.0, 0.0]]),
                  gamma=0.9, lam=0.8)),
    ]
    for steps, num_envs, dtype, grad, gamma, lam, what in [
            (4, 2, torch.float32, False, 0.9, 0.0, "lambda = 0 (one-step TD errors)"),
            (6, 2, torch.float32, False, 0.9, 1.0, "lambda = 1 (Monte Carlo, bootstrapped where cut)"),
            (6, 2, torch.float32, True, 0.95, 0.9, "values that require grad"),
            (8, 3, torch.float64, False, 0.99, 0.95, "float64"),
            (16, 4, torch.float32, False, 0.99, 0.95, "random rollout"),
            (32, 2, torch.float32, False, 0.98, 0.9, "random rollout")]:
        terminated, truncated = _gae_flags(g, steps, num_envs, dtype)
        terminated[1, 0], truncated[1, 0], truncated[steps // 2, -1] = 1.0, 0.0, 1.0
        cases.append(Case(f"{what} (T={steps}, N={num_envs})", dict(
            rewards=_randn(g, steps, num_envs, dtype=dtype, shift=0.5),
            values=_randn(g, steps, num_envs, dtype=dtype, requires_grad=grad),
            next_values=_randn(g, steps, num_envs, dtype=dtype, requires_grad=grad),
            terminated=terminated, truncated=truncated, gamma=gamma, lam=lam)))
    return cases


COMPUTE_GAE = Exercise(
    name="compute_gae",
    reference=returns.compute_gae,
    make_cases=_cases_compute_gae,
    formula="delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t; "
            "A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}, done = terminated or truncated, "
            "looping backwards.",
    note=_STEPS_NOTE,
    detached_output_hint="advantages are targets, constants for the losses: compute them from values.detach() "
                         "and next_values.detach() (or under torch.no_grad()).",
    mistakes=[
        Mistake("you bootstrap through a terminal state: next_values must be multiplied by (1 - terminated).",
                _gae_mistake(bootstrap="always")),
        Mistake("a truncated step (time limit) must still bootstrap from next_values: cut the bootstrap with "
                "(1 - terminated) only, not with (1 - done).",
                _gae_mistake(bootstrap="not_done")),
        Mistake("the lambda-trace is not reset at episode ends: multiply the running advantage by (1 - done), "
                "done = terminated or truncated, so an advantage never mixes in the next episode.",
                _gae_mistake(trace="always")),
        Mistake("the lambda-trace must also be cut at a truncation: after a truncated step comes another "
                "episode; multiply the running advantage by (1 - done) with done = terminated or truncated.",
                _gae_mistake(trace="not_terminated")),
        Mistake("values and next_values are swapped: delta_t = r_t + gamma * (1 - terminated_t) * next_values_t "
                "- values_t.", _gae_mistake(swap=True)),
        Mistake("you loop forwards in time: A_t depends on A_{t+1}, so loop backwards from the last step.",
                _gae_mistake(forwards=True)),
        Mistake("the episode-end mask is off by one step: the flags of step t itself decide whether A_{t+1} is "
                "added to A_t (in this course done[t] means 'the episode ended at step t').",
                _gae_mistake(trace_from_next_step=True)),
        Mistake("the trace decays by gamma * lam per step; you left out lam.", _gae_mistake(no_lambda=True)),
        Mistake("you return the critic targets (advantages + values); compute_gae returns the advantages.",
                lambda rewards, values, next_values, terminated, truncated, gamma, lam:
                returns.compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam) + values),
    ],
)


def _cases_a2c_policy_loss() -> list[Case]:
    g = torch.Generator().manual_seed(11)

    def grad_case(description, batch, ent_coef, dtype=torch.float32):
        return Case(description, dict(log_probs=_log_probs(g, batch, dtype=dtype, requires_grad=True),
                                      advantages=_randn(g, batch, dtype=dtype, requires_grad=True),
                                      entropy=(_randn(g, batch, dtype=dtype, scale=0.2) + 1.0).requires_grad_(),
                                      ent_coef=ent_coef))
    return [
        Case("B=1", dict(log_probs=_t([-0.5], requires_grad=True), advantages=_t([2.0], requires_grad=True),
                         entropy=_t([1.0], requires_grad=True), ent_coef=0.01)),
        Case("B=4", dict(log_probs=_t([-0.1, -1.2, -0.7, -2.0], requires_grad=True),
                         advantages=_t([1.0, -0.5, 2.0, 0.0], requires_grad=True),
                         entropy=_t([0.7, 0.5, 0.6, 0.2], requires_grad=True), ent_coef=0.5)),
        grad_case("ent_coef = 0 (B=6)", 6, 0.0),
        grad_case("float64 (B=8)", 8, 0.1, torch.float64),
        grad_case("random (B=20)", 20, 0.01),
    ]


A2C_POLICY_LOSS = Exercise(
    name="a2c_policy_loss",
    reference=losses.a2c_policy_loss,
    make_cases=_cases_a2c_policy_loss,
    formula="loss = -mean(log_probs * advantages.detach()) - ent_coef * mean(entropy).",
    grad_args=("log_probs", "entropy"),
    leak_hints={"advantages": "missing .detach() on the advantages: they are constants of the policy gradient; "
                              "use advantages.detach() so the actor loss does not train the critic."},
    no_grad_hints={"entropy": "the entropy bonus must carry gradient into the policy: don't detach the entropy."},
    mistakes=[
        Mistake("the whole loss has the wrong sign: you return the objective (to maximise); the loss to minimise "
                "is its negative.",
                lambda log_probs, advantages, entropy, ent_coef:
                -losses.a2c_policy_loss(log_probs, advantages, entropy, ent_coef)),
        Mistake("the policy term has the wrong sign: it is -mean(log_probs * advantages), so that minimising the "
                "loss raises the log-probability of actions with positive advantage.",
                lambda log_probs, advantages, entropy, ent_coef:
                (log_probs * advantages).mean() - ent_coef * entropy.mean()),
        Mistake("entropy sign flipped: the bonus enters the loss as -ent_coef * mean(entropy), so that minimising "
                "the loss RAISES the entropy.",
                lambda log_probs, advantages, entropy, ent_coef:
                -(log_probs * advantages).mean() + ent_coef * entropy.mean()),
        Mistake("the entropy bonus is missing: add -ent_coef * mean(entropy).",
                lambda log_probs, advantages, entropy, ent_coef: -(log_probs * advantages).mean()),
        Mistake("take the mean of the entropy over the batch, not the sum.",
                lambda log_probs, advantages, entropy, ent_coef:
                -(log_probs * advantages).mean() - ent_coef * entropy.sum()),
        Mistake("average the policy term over the batch with .mean(), not .sum().",
                lambda log_probs, advantages, entropy, ent_coef:
                -(log_probs * advantages).sum() - ent_coef * entropy.mean()),
    ],
)


# --------------------------------------------------------------------------------------------------
# ch04: clipped_surrogate_loss, approx_kl, clip_fraction, explained_variance, minibatch_indices
# --------------------------------------------------------------------------------------------------

def _surrogate(ratio: Tensor, advantages: Tensor, clip_eps: float, *, clip_advantage: bool = False,
               reduce: Callable[[Tensor, Tensor], Tensor] = torch.min) -> Tensor:
    if clip_advantage:
        clipped = ratio * torch.clamp(advantages, 1 - clip_eps, 1 + clip_eps)
    else:
        clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
    return -reduce(ratio * advantages, clipped).mean()


def _cases_clipped_surrogate_loss() -> list[Case]:
    g = torch.Generator().manual_seed(12)
    old = _t([-1.0, -1.0, -2.0, -0.5, -1.5])

    def random_case(description, batch, scale, clip_eps, dtype=torch.float32):
        old_log_probs = _log_probs(g, batch, dtype=dtype) - 0.3
        new_log_probs = (old_log_probs + _randn(g, batch, dtype=dtype, scale=scale)).clamp(max=-0.01).requires_grad_()
        return Case(description, dict(new_log_probs=new_log_probs, old_log_probs=old_log_probs,
                                      advantages=_randn(g, batch, dtype=dtype), clip_eps=clip_eps))
    return [
        Case("B=1, ratio inside the clip range", dict(new_log_probs=_t([-1.0], requires_grad=True),
                                                      old_log_probs=_t([-1.1]), advantages=_t([1.0]), clip_eps=0.2)),
        Case("the four clipping regions plus one ratio inside (B=5)",
             dict(new_log_probs=(old + _t([0.5, -0.5, 0.5, -0.5, 0.05])).requires_grad_(), old_log_probs=old,
                  advantages=_t([1.0, 2.0, -1.0, -2.0, 0.5]), clip_eps=0.2)),
        Case("tiny probabilities: log-probs around -150, as with many action dims (B=3)",
             dict(new_log_probs=_t([-149.9, -160.15, -139.95], requires_grad=True),
                  old_log_probs=_t([-150.0, -160.0, -140.0]), advantages=_t([1.0, -1.0, 0.5]), clip_eps=0.2)),
        random_case("float64 (B=8)", 8, 0.3, 0.3, torch.float64),
        random_case("random (B=32)", 32, 0.3, 0.2),
        random_case("random (B=64)", 64, 0.2, 0.1),
    ]


CLIPPED_SURROGATE_LOSS = Exercise(
    name="clipped_surrogate_loss",
    reference=losses.clipped_surrogate_loss,
    make_cases=_cases_clipped_surrogate_loss,
    formula="ratio = exp(new_log_probs - old_log_probs); loss = -mean(min(ratio * A, clamp(ratio, 1 - eps, "
            "1 + eps) * A)).",
    grad_args=("new_log_probs",),
    mistakes=[
        Mistake("you form the ratio from raw probabilities, exp(new) / exp(old): small probabilities underflow "
                "to 0 and 0/0 = nan. Form it in log space: exp(new_log_probs - old_log_probs).",
                lambda new, old, advantages, clip_eps: _surrogate(new.exp() / old.exp(), advantages, clip_eps)),
        Mistake("the ratio is pi_new / pi_old = exp(new_log_probs - old_log_probs), not the quotient of the "
                "log-probs.", lambda new, old, advantages, clip_eps: _surrogate(new / old, advantages, clip_eps)),
        Mistake("you forgot the exp: new_log_probs - old_log_probs is the LOG of the ratio.",
                lambda new, old, advantages, clip_eps: _surrogate(new - old, advantages, clip_eps)),
        Mistake("the ratio is upside down: pi_new / pi_old = exp(new_log_probs - old_log_probs).",
                lambda new, old, advantages, clip_eps: _surrogate((old - new).exp(), advantages, clip_eps)),
        Mistake("max instead of min: PPO takes the pessimistic MIN of the unclipped and clipped surrogates.",
                lambda new, old, advantages, clip_eps:
                _surrogate((new - old).exp(), advantages, clip_eps, reduce=torch.max)),
        Mistake("you clip the advantage instead of the ratio: clamp(ratio, 1 - eps, 1 + eps) * advantages.",
                lambda new, old, advantages, clip_eps:
                _surrogate((new - old).exp(), advantages, clip_eps, clip_advantage=True)),
        Mistake("loss sign flipped: this is a LOSS to minimise, the negative of the clipped objective.",
                lambda new, old, advantages, clip_eps: -_surrogate((new - old).exp(), advantages, clip_eps)),
        Mistake("you never clip: the clipped term clamp(ratio, 1 - eps, 1 + eps) * advantages is missing.",
                lambda new, old, advantages, clip_eps: -((new - old).exp() * advantages).mean()),
        Mistake("you only kept the clipped term: take the min of ratio * A and clamp(ratio, 1 - eps, 1 + eps) * A.",
                lambda new, old, advantages, clip_eps:
                -(torch.clamp((new - old).exp(), 1 - clip_eps, 1 + clip_eps) * advantages).mean()),
    ],
)


def _k3(log_ratio: Tensor) -> Tensor:
    return ((log_ratio.exp() - 1) - log_ratio).mean()


def _cases_approx_kl() -> list[Case]:
    g = torch.Generator().manual_seed(13)

    def random_case(description, batch, scale, dtype=torch.float32):
        old_log_probs = _log_probs(g, batch, dtype=dtype) - 0.3
        new_log_probs = (old_log_probs + _randn(g, batch, dtype=dtype, scale=scale)).clamp(max=-0.01)
        return Case(description, dict(old_log_probs=old_log_probs, new_log_probs=new_log_probs))
    return [
        Case("B=1", dict(old_log_probs=_t([-1.0]), new_log_probs=_t([-0.8]))),
        Case("identical policies (KL = 0)", dict(old_log_probs=_t([-1.0, -2.0, -0.5]),
                                                 new_log_probs=_t([-1.0, -2.0, -0.5]))),
        Case("B=4", dict(old_log_probs=_t([-1.0, -2.0, -0.5, -3.0]), new_log_probs=_t([-1.2, -1.5, -0.6, -2.0]))),
        random_case("float64 (B=10)", 10, 0.3, torch.float64),
        random_case("random, small policy change (B=64)", 64, 0.1),
        random_case("random, large policy change (B=16)", 16, 0.7),
    ]


APPROX_KL = Exercise(
    name="approx_kl",
    reference=diagnostics.approx_kl,
    make_cases=_cases_approx_kl,
    output="number",
    formula="log_r = new_log_probs - old_log_probs; KL = mean((exp(log_r) - 1) - log_r)  (the k3 estimator).",
    mistakes=[
        Mistake("KL with the wrong sign of the log-ratio: log r = new_log_probs - old_log_probs (you used "
                "old - new).", lambda old, new: _k3(old - new)),
        Mistake("your KL is negative: the k3 estimator mean((r - 1) - log r) is never negative; you flipped "
                "its sign.", lambda old, new: -_k3(new - old)),
        Mistake("that is the k1 estimator mean(old - new), which is noisy and can be negative: use k3, "
                "mean((r - 1) - log r).", lambda old, new: (old - new).mean()),
        Mistake("the log term must be subtracted: mean((r - 1) - log r), not (r - 1) + log r.",
                lambda old, new: ((new - old).exp() - 1 + (new - old)).mean()),
        Mistake("that is the k2 estimator mean(0.5 * log_r**2): use k3, mean((r - 1) - log r).",
                lambda old, new: (0.5 * (new - old) ** 2).mean()),
    ],
)


def _cases_clip_fraction() -> list[Case]:
    g = torch.Generator().manual_seed(14)
    return [
        Case("B=1, ratio inside the range", dict(ratio=_t([1.05]), clip_eps=0.2)),
        Case("B=1, ratio above the range", dict(ratio=_t([1.5]), clip_eps=0.2)),
        Case("ratios above, below and inside (B=6)", dict(ratio=_t([0.5, 0.9, 1.0, 1.1, 1.3, 2.0]), clip_eps=0.2)),
        Case("float64 (B=20)", dict(ratio=_randn(g, 20, dtype=torch.float64, scale=0.2).exp(), clip_eps=0.15)),
        Case("random (B=50)", dict(ratio=_randn(g, 50, scale=0.3).exp(), clip_eps=0.2)),
        Case("random (B=100)", dict(ratio=_randn(g, 100, scale=0.15).exp(), clip_eps=0.1)),
    ]


CLIP_FRACTION = Exercise(
    name="clip_fraction",
    reference=diagnostics.clip_fraction,
    make_cases=_cases_clip_fraction,
    output="number",
    formula="mean of (|ratio - 1| > clip_eps), as a float.",
    mistakes=[
        Mistake("ratios below 1 - clip_eps are clipped too: count |ratio - 1| > clip_eps, both sides.",
                lambda ratio, clip_eps: (ratio > 1 + clip_eps).float().mean()),
        Mistake("you measured the fraction INSIDE the range: the clip fraction counts the ratios outside it.",
                lambda ratio, clip_eps: ((ratio - 1).abs() <= clip_eps).float().mean()),
        Mistake("that is a count: divide by the batch size to get a fraction (use .float().mean()).",
                lambda ratio, clip_eps: ((ratio - 1).abs() > clip_eps).float().sum()),
        Mistake("compare |ratio - 1| with clip_eps, not the ratio itself.",
                lambda ratio, clip_eps: (ratio.abs() > clip_eps).float().mean()),
    ],
)


def _residual_ratio(values: Tensor, returns_: Tensor) -> Tensor:
    return (returns_ - values).var() / returns_.var()


def _cases_explained_variance() -> list[Case]:
    g = torch.Generator().manual_seed(15)
    random_returns = _randn(g, 50, scale=3.0)
    returns_2d = _randn(g, 8, 4, scale=2.0)
    returns_64 = _randn(g, 20, dtype=torch.float64, scale=5.0)
    return [
        Case("B=2", dict(values=_t([1.0, 2.0]), returns=_t([1.0, 3.0]))),
        Case("a perfect critic (values == returns)", dict(values=_t([1.0, 2.0, 3.0, 4.0]),
                                                          returns=_t([1.0, 2.0, 3.0, 4.0]))),
        Case("a critic that predicts the mean return", dict(values=_t([3.0, 3.0, 3.0]), returns=_t([1.0, 2.0, 6.0]))),
        Case("a critic worse than the mean", dict(values=_t([3.0, 2.0, 1.0]), returns=_t([1.0, 2.0, 3.0]))),
        Case("random, a decent critic (B=50)", dict(values=random_returns + _randn(g, 50), returns=random_returns)),
        Case("[T, N] = [8, 4] inputs", dict(values=returns_2d * 0.5 + _randn(g, 8, 4), returns=returns_2d)),
        Case("float64 (B=20)", dict(values=returns_64 + _randn(g, 20, dtype=torch.float64, scale=2.0),
                                    returns=returns_64)),
    ]


EXPLAINED_VARIANCE = Exercise(
    name="explained_variance",
    reference=diagnostics.explained_variance,
    make_cases=_cases_explained_variance,
    output="number",
    formula="1 - Var[returns - values] / Var[returns].",
    mistakes=[
        Mistake("explained variance upside down: it is 1 - Var[returns - values] / Var[returns] (the residual "
                "variance on top).", lambda values, returns_: 1 - 1 / _residual_ratio(values, returns_)),
        Mistake("Var[returns - values] / Var[returns] is the UNexplained fraction: subtract it from 1.",
                _residual_ratio),
        Mistake("divide by the variance of the returns (the targets), not of the values.",
                lambda values, returns_: 1 - (returns_ - values).var() / values.var()),
        Mistake("the ratio of the variances of values and returns is not explained variance: use the variance "
                "of the residual returns - values.", lambda values, returns_: values.var() / returns_.var()),
    ],
)


def _minibatch_problem(chunks: Any, batch_size: int, minibatch_size: int) -> tuple[str, str] | None:
    """(problem, hint) for a result that is not a shuffled partition into ceil(batch/mb) minibatches."""
    if chunks is None:
        return "your function returned None.", "did you forget the `return` statement?"
    if isinstance(chunks, Tensor) or not isinstance(chunks, list | tuple):
        return (f"expected a list of index tensors, got a {type(chunks).__name__}.",
                "return a list of 1-D index tensors, e.g. list(permutation.split(minibatch_size)).")
    if not all(isinstance(c, Tensor) and c.dim() == 1 and not c.is_floating_point() and c.dtype != torch.bool
               for c in chunks):
        return ("every minibatch must be a 1-D tensor of integer indices.",
                "cut a permutation tensor (torch.randperm) into pieces; don't convert them to lists or floats.")
    flat = torch.cat([c.cpu().long() for c in chunks]) if chunks else torch.zeros(0, dtype=torch.long)
    if flat.unique().numel() != flat.numel():
        return ("some indices appear more than once.",
                "the minibatches overlap: every index must be in exactly one minibatch. Shuffle without "
                "replacement (torch.randperm), then cut the permutation into pieces.")
    if sorted(flat.tolist()) != list(range(batch_size)):
        return ("some indices of range(batch_size) never appear (or indices are out of range).",
                "every index must be in exactly one minibatch: don't drop the last, smaller minibatch.")
    if any(c.numel() > minibatch_size for c in chunks):
        return ("a minibatch is larger than minibatch_size.",
                "minibatch_size is the size of each minibatch, not the number of minibatches: make "
                "ceil(batch_size / minibatch_size) minibatches of at most minibatch_size indices.")
    expected_count = -(-batch_size // minibatch_size)
    if len(chunks) != expected_count:
        return (f"expected ceil({batch_size} / {minibatch_size}) = {expected_count} minibatches, got {len(chunks)}.",
                "make ceil(batch_size / minibatch_size) minibatches (you made minibatch_size of them, or "
                "needlessly small ones).")
    if batch_size >= 8 and flat.tolist() == list(range(batch_size)):
        return ("the indices come in their original order.",
                "not shuffled: draw a random permutation, torch.randperm(batch_size, generator=generator), "
                "so each epoch visits the batch in a new order.")
    return None


def _call_minibatch(fn: Callable[..., Any], batch_size: int, minibatch_size: int, seed: int,
                    global_seed: int) -> Any:
    """Call with a generator seeded ``seed``, on a temporarily re-seeded global RNG (restored after)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(global_seed)
        return _call_learner(fn, "minibatch_indices", [batch_size, minibatch_size, generator],
                             ["batch_size", "minibatch_size", "generator"])


def _order(chunks: list[Tensor]) -> list[int]:
    return torch.cat([c.cpu().long() for c in chunks]).tolist()


def check_minibatch_indices(fn: Callable[..., Any]) -> None:
    """Check ``minibatch_indices(batch_size, minibatch_size, generator) -> list[Tensor]``.

    Not compared with the reference element by element (any shuffle is fine): the result must be a
    partition of ``range(batch_size)`` into ``ceil(batch_size / minibatch_size)`` minibatches of at
    most ``minibatch_size`` indices, shuffled, reproducible with the same seeded generator, and
    different for a different generator or the next call.
    """
    name = "minibatch_indices"
    sizes = [(1, 1), (5, 8), (7, 7), (10, 4), (13, 5), (16, 4), (64, 16), (100, 32)]
    for number, (batch_size, minibatch_size) in enumerate(sizes):
        chunks = _call_minibatch(fn, batch_size, minibatch_size, seed=100 + number, global_seed=number)
        found = _minibatch_problem(chunks, batch_size, minibatch_size)
        if found is not None:
            problem, hint = found
            case = Case(f"batch_size={batch_size}, minibatch_size={minibatch_size}",
                        dict(batch_size=batch_size, minibatch_size=minibatch_size,
                             generator=torch.Generator().manual_seed(100 + number)))
            raise AssertionError(_message(
                name, problem, hint, True, case,
                expected=f"a shuffled partition of range({batch_size}) into ceil({batch_size} / {minibatch_size}) = "
                         f"{-(-batch_size // minibatch_size)} minibatch(es) of at most {minibatch_size} indices",
                received=chunks))
    batch_size, minibatch_size = 16, 4
    case = Case(f"batch_size={batch_size}, minibatch_size={minibatch_size}, called several times",
                dict(batch_size=batch_size, minibatch_size=minibatch_size))
    first = _order(_call_minibatch(fn, batch_size, minibatch_size, seed=7, global_seed=1))
    same_seed = _order(_call_minibatch(fn, batch_size, minibatch_size, seed=7, global_seed=2))
    if first != same_seed:
        raise AssertionError(_message(
            name, "two generators seeded with the same seed gave different minibatches.",
            "not reproducible: draw the permutation from the generator you are given, "
            "torch.randperm(batch_size, generator=generator), not from the global random state.", True, case,
            expected=f"the same order twice: {first}", received=f"{first} then {same_seed}"))
    other_seed = _order(_call_minibatch(fn, batch_size, minibatch_size, seed=8, global_seed=1))
    generator = torch.Generator().manual_seed(9)
    with torch.random.fork_rng(devices=[]):
        again = [_order(_call_learner(fn, name, [batch_size, minibatch_size, generator])) for _ in range(2)]
    if first == other_seed or again[0] == again[1]:
        raise AssertionError(_message(
            name, "the minibatches come out in the same order for different generators or successive calls.",
            "the shuffle is the same every call: don't re-seed inside the function; draw from the generator "
            "you are given so each epoch gets a new order.", True, case,
            expected="a new order for another generator and for the next call with the same generator",
            received=f"seed 7: {first}; seed 8: {other_seed}; two successive calls: {again[0]} and {again[1]}"))
    print(f"✓ {name}: {len(sizes) + 4} cases passed")


# --------------------------------------------------------------------------------------------------
# ch05: gaussian_log_prob, gaussian_entropy, env_action
# --------------------------------------------------------------------------------------------------

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def _gaussian_terms(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """[B, D] per-dimension log-densities."""
    return -0.5 * ((actions - mean) / log_std.exp()) ** 2 - log_std - LOG_SQRT_2PI


def _cases_gaussian_log_prob() -> list[Case]:
    g = torch.Generator().manual_seed(16)

    def random_case(description, batch, dims, per_sample, dtype=torch.float32):
        std_shape = (batch, dims) if per_sample else (dims,)
        return Case(description, dict(mean=_randn(g, batch, dims, dtype=dtype, requires_grad=True),
                                      log_std=_randn(g, *std_shape, dtype=dtype, scale=0.5, requires_grad=True),
                                      actions=_randn(g, batch, dims, dtype=dtype, scale=1.5)))
    return [
        Case("B=1, D=1", dict(mean=_t([[0.0]], requires_grad=True), log_std=_t([0.0], requires_grad=True),
                              actions=_t([[1.0]]))),
        Case("B=2, D=2, log_std of shape [D]",
             dict(mean=_t([[0.0, 1.0], [0.5, -1.0]], requires_grad=True), log_std=_t([-0.5, 0.3], requires_grad=True),
                  actions=_t([[0.2, 1.5], [0.0, -2.0]]))),
        random_case("log_std of shape [B, D] (B=3, D=4)", 3, 4, True),
        random_case("float64 (B=4, D=2)", 4, 2, False, torch.float64),
        random_case("random (B=16, D=6)", 16, 6, False),
    ]


GAUSSIAN_LOG_PROB = Exercise(
    name="gaussian_log_prob",
    reference=losses.gaussian_log_prob,
    make_cases=_cases_gaussian_log_prob,
    formula="sum over the last dim of -0.5 * ((actions - mean) / std)**2 - log_std - 0.5 * log(2 pi), "
            "std = exp(log_std).",
    grad_args=("mean", "log_std"),
    mistakes=[
        Mistake("Gaussian log-prob not summed over action dims: the dimensions are independent, so the joint "
                "log-prob is the SUM over the last dim, shape [B] (.sum(-1)).",
                lambda mean, log_std, actions: _gaussian_terms(mean, log_std, actions)),
        Mistake("sum the per-dimension log-probs over the action dims, don't average them.",
                lambda mean, log_std, actions: _gaussian_terms(mean, log_std, actions).mean(-1)),
        Mistake("log_std used as std: log_std is the LOG of the standard deviation; std = log_std.exp().",
                lambda mean, log_std, actions:
                (-0.5 * ((actions - mean) / log_std) ** 2 - torch.log(log_std) - LOG_SQRT_2PI).sum(-1)),
        Mistake("missing the normaliser -log(std) = -log_std in each dimension.",
                lambda mean, log_std, actions:
                (-0.5 * ((actions - mean) / log_std.exp()) ** 2 - LOG_SQRT_2PI).sum(-1)),
        Mistake("missing the constant -0.5 * log(2 pi) in each dimension.",
                lambda mean, log_std, actions:
                (-0.5 * ((actions - mean) / log_std.exp()) ** 2 - log_std).sum(-1)),
        Mistake("you divided (actions - mean) by the variance: standardise with the std, "
                "z = (actions - mean) / exp(log_std).",
                lambda mean, log_std, actions:
                (-0.5 * ((actions - mean) / (2 * log_std).exp()) ** 2 - log_std - LOG_SQRT_2PI).sum(-1)),
        Mistake("sign flipped: you return the negative log-likelihood; this function returns log pi(a|s).",
                lambda mean, log_std, actions: -_gaussian_terms(mean, log_std, actions).sum(-1)),
    ],
)


def _cases_gaussian_entropy() -> list[Case]:
    g = torch.Generator().manual_seed(17)
    return [
        Case("D=1: a single action dim gives a scalar", dict(log_std=_t([0.0], requires_grad=True))),
        Case("log_std of shape [D], D=3", dict(log_std=_t([-0.5, 0.0, 0.7], requires_grad=True))),
        Case("[B, D] = [4, 2]", dict(log_std=_randn(g, 4, 2, scale=0.5, requires_grad=True))),
        Case("float64, [3, 5]", dict(log_std=_randn(g, 3, 5, dtype=torch.float64, scale=0.5, requires_grad=True))),
        Case("[2, 3, 5]: sum over the last dim only", dict(log_std=_randn(g, 2, 3, 5, scale=0.5,
                                                                          requires_grad=True))),
    ]


_ENTROPY_CONSTANT = 0.5 + LOG_SQRT_2PI  # 0.5 * log(2 pi e)

GAUSSIAN_ENTROPY = Exercise(
    name="gaussian_entropy",
    reference=losses.gaussian_entropy,
    make_cases=_cases_gaussian_entropy,
    formula="(log_std + 0.5 * log(2 pi e)).sum(-1).",
    grad_args=("log_std",),
    mistakes=[
        Mistake("gaussian entropy not summed: the entropy of independent dimensions is the SUM over the last "
                "(action) dim, .sum(-1).", lambda log_std: log_std + _ENTROPY_CONSTANT),
        Mistake("you summed over the first dim (dim=0): sum over the LAST dim, the action dimensions.",
                lambda log_std: (log_std + _ENTROPY_CONSTANT).sum(0)),
        Mistake("sum over the action dims, don't average them.",
                lambda log_std: (log_std + _ENTROPY_CONSTANT).mean(-1)),
        Mistake("missing the constant 0.5 * log(2 pi e) per dimension.", lambda log_std: log_std.sum(-1)),
        Mistake("the constant is 0.5 * log(2 pi e) = 0.5 + 0.5 * log(2 pi): you left out the 0.5 from e.",
                lambda log_std: (log_std + LOG_SQRT_2PI).sum(-1)),
        Mistake("the entropy depends on log(std) = log_std itself, not on std = exp(log_std).",
                lambda log_std: (log_std.exp() + _ENTROPY_CONSTANT).sum(-1)),
    ],
)


def _cases_env_action() -> list[Case]:
    g = torch.Generator().manual_seed(18)
    return [
        Case("B=1, D=1, inside the bounds", dict(actions=_t([[0.5]]), low=_t([-2.0]), high=_t([2.0]))),
        Case("Pendulum bounds [-2, 2] (B=4, D=1)", dict(actions=_t([[-3.0], [-1.0], [1.5], [2.5]]),
                                                        low=_t([-2.0]), high=_t([2.0]))),
        Case("asymmetric bounds (B=3, D=2)", dict(actions=_t([[-0.5, 4.0], [0.5, -2.0], [2.0, 0.0]]),
                                                  low=_t([0.0, -1.0]), high=_t([1.0, 3.0]))),
        Case("random (B=8, D=2)", dict(actions=_randn(g, 8, 2), low=_t([-0.4, -2.0]), high=_t([0.4, 2.0]))),
        Case("float64 (B=16, D=3)", dict(actions=_randn(g, 16, 3, dtype=torch.float64, scale=2.0),
                                         low=_t([-1.0, -2.0, 0.0], torch.float64),
                                         high=_t([1.0, 2.0, 0.5], torch.float64))),
    ]


ENV_ACTION = Exercise(
    name="env_action",
    reference=losses.env_action,
    make_cases=_cases_env_action,
    formula="torch.clamp(actions, low, high), a new tensor.",
    inplace_hint="you clip `actions` in place (clamp_, out=, or assigning into it): the rollout must store the "
                 "action as SAMPLED (its log-prob is what PPO's ratio uses). Return a clipped copy: "
                 "torch.clamp(actions, low, high).",
    mistakes=[
        Mistake("you return the actions unclipped: clip them to [low, high] before they go to env.step.",
                lambda actions, low, high: actions),
        Mistake("use the env's bounds low and high, not [-1, 1].", lambda actions, low, high: actions.clamp(-1, 1)),
        Mistake("clip both sides: you only applied the upper bound.",
                lambda actions, low, high: torch.minimum(actions, high)),
        Mistake("clip, don't squash: tanh rescaling changes actions that are already inside the bounds.",
                lambda actions, low, high: low + (high - low) * (torch.tanh(actions) + 1) / 2),
    ],
)


# --------------------------------------------------------------------------------------------------
# ch00: play_episode (plays real episodes, so it has its own check); ch01: action_log_probs
# --------------------------------------------------------------------------------------------------

class _EpisodeGuard:
    """Wraps an env for the play_episode check: records whether ``step`` was called after the episode
    ended (then raises, so a loop that ignores ``truncated`` cannot run forever)."""

    def __init__(self, env: Any):
        self.env = env
        self.action_space, self.observation_space = env.action_space, env.observation_space
        self.ended = False
        self.stepped_past_end = False
        self.reset_seed: Any = "never reset"

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.ended = False
        self.reset_seed = seed
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any):
        if self.ended:
            self.stepped_past_end = True
            raise RuntimeError("env.step() called after the episode ended (terminated or truncated)")
        result = self.env.step(action)
        self.ended = bool(result[2] or result[3])
        return result


def _play_episode_cases() -> list[tuple[str, str, Callable[[Any], Any], int]]:
    return [
        ("CartPole-v1, always push left (ends by termination)", "CartPole-v1", lambda obs: 0, 0),
        ("CartPole-v1, a balancing controller (truncated at the 500-step limit)", "CartPole-v1",
         lambda obs: int(obs[2] + obs[3] > 0), 1),
        ("Pendulum-v1, zero torque (Pendulum never terminates: truncated at 200 steps)", "Pendulum-v1",
         lambda obs: np.zeros(1, dtype=np.float32), 0),
    ]


def check_play_episode(fn: Callable[..., Any]) -> None:
    """Check ``play_episode(env, policy, seed) -> (episode_return, length, terminated, truncated)``."""
    import gymnasium as gym

    name = "play_episode"
    cases = _play_episode_cases()
    for description, env_id, policy, seed in cases:
        expected = envs.play_episode(gym.make(env_id), policy, seed)
        guard = _EpisodeGuard(gym.make(env_id))
        case = Case(description, dict(env=env_id, policy="a fixed controller", seed=seed))
        try:
            received = _call_learner(fn, name, [guard, policy, seed], ["env", "policy", "seed"])
        except LearnerCodeError:
            if guard.stepped_past_end:
                raise AssertionError(_message(
                    name, "your loop called env.step() after the episode had ended.",
                    "stop when terminated OR truncated: a time limit (truncated=True) ends the episode too, and "
                    "Pendulum only ever truncates.", True, case, expected=expected,
                    received="a step after the last one")) from None
            raise
        if not (isinstance(received, tuple) and len(received) == 4):
            raise AssertionError(_message(name, "the result is not a 4-tuple.",
                                          "return (episode_return, length, terminated, truncated).", True, case,
                                          expected=expected, received=received))
        episode_return, length, terminated, truncated = received
        hint = None
        if guard.reset_seed != seed:
            hint = f"reset with env.reset(seed=seed) so the episode starts from the seeded state (you used {guard.reset_seed!r})."
        elif int(length) != expected[1]:
            hint = "count every step, the last one included (length = number of env.step calls)."
        elif abs(float(episode_return) - expected[0]) > 1e-3 * max(1.0, abs(expected[0])):
            hint = "sum every reward, the last one included."
        elif (bool(terminated), bool(truncated)) != expected[2:]:
            hint = "return the terminated / truncated flags of the last step exactly as env.step gave them."
        if hint is not None:
            raise AssertionError(_message(name, "the episode you played differs from the reference.", hint, True,
                                          case, expected=expected, received=received))
    print(f"✓ {name}: {len(cases)} cases passed")


def _cases_action_log_probs() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    return [
        Case("one state, 2 actions (B=1)", dict(logits=_t([[0.3, -0.2]], requires_grad=True), actions=torch.tensor([1]))),
        Case("B=5, 2 actions", dict(logits=_randn(g, 5, 2, requires_grad=True), actions=torch.tensor([0, 1, 1, 0, 1]))),
        Case("B=4, 3 actions", dict(logits=_randn(g, 4, 3, scale=3.0, requires_grad=True),
                                    actions=torch.tensor([2, 0, 1, 2]))),
        Case("a confident policy: logits [0, 120], action 0",
             dict(logits=_t([[0.0, 120.0]], requires_grad=True), actions=torch.tensor([0]))),
        Case("float64 (B=6, 4 actions)", dict(logits=_randn(g, 6, 4, dtype=torch.float64, requires_grad=True),
                                              actions=torch.tensor([3, 0, 1, 2, 2, 0]))),
    ]


def _gather(values: Tensor, actions: Tensor) -> Tensor:
    return values.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


ACTION_LOG_PROBS = Exercise(
    name="action_log_probs",
    reference=losses.categorical_log_prob,
    make_cases=_cases_action_log_probs,
    formula="log_probs[i] = log_softmax(logits[i])[actions[i]] (Categorical(logits=logits).log_prob(actions)).",
    grad_args=("logits",),
    no_grad_hints={"logits": "the result must keep its gradient with respect to the logits (no .detach(), "
                             "no .item(), no numpy)."},
    mistakes=[
        Mistake("take the LOG of the probability: log_softmax, not softmax.",
                lambda logits, actions: _gather(torch.softmax(logits, -1), actions)),
        Mistake("the logits are not log-probabilities: normalise them first (log_softmax over the actions).",
                lambda logits, actions: _gather(logits, actions)),
        Mistake("normalise over the actions (dim=-1), not over the batch (dim=0).",
                lambda logits, actions: _gather(torch.log_softmax(logits, 0), actions)),
        Mistake("return the log-prob of the action taken, one per state, not of every action.",
                lambda logits, actions: torch.log_softmax(logits, -1)),
        Mistake("log(softmax(logits)) underflows to log(0) = -inf for a confident policy: use log_softmax "
                "or Categorical(logits=...).",
                lambda logits, actions: _gather(torch.log(torch.softmax(logits, -1)), actions)),
        Mistake("sign flipped: a log-probability is <= 0.",
                lambda logits, actions: -_gather(torch.log_softmax(logits, -1), actions)),
    ],
)


# --------------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------------

EXERCISES: dict[str, Exercise] = {ex.name: ex for ex in [
    TRANSITION_MASK, COMPLETED_EPISODE_RETURNS,
    ACTION_LOG_PROBS, DISCOUNTED_RETURNS, NORMALIZE, REINFORCE_LOSS,
    BASELINE_ADVANTAGES, VALUE_LOSS, GRADIENT_VARIANCE, CATEGORICAL_ENTROPY,
    TD_ERRORS, COMPUTE_GAE, A2C_POLICY_LOSS,
    CLIPPED_SURROGATE_LOSS, APPROX_KL, CLIP_FRACTION, EXPLAINED_VARIANCE,
    GAUSSIAN_LOG_PROB, GAUSSIAN_ENTROPY, ENV_ACTION,
]}


def _make_check(ex: Exercise) -> Callable[[Callable[..., Any]], None]:
    def check(fn: Callable[..., Any]) -> None:
        _run(ex, fn)
    check.__name__ = check.__qualname__ = f"check_{ex.name}"
    check.__doc__ = (f"Check your ``{ex.name}`` against the reference on small, edge and random cases.\n\n"
                     f"Expected: {ex.formula}\nPrints one line on success; raises AssertionError naming the probable "
                     f"mistake otherwise, LearnerCodeError if your function crashes.")
    return check


check_transition_mask = _make_check(TRANSITION_MASK)
check_completed_episode_returns = _make_check(COMPLETED_EPISODE_RETURNS)
check_action_log_probs = _make_check(ACTION_LOG_PROBS)
check_discounted_returns = _make_check(DISCOUNTED_RETURNS)
check_normalize = _make_check(NORMALIZE)
check_reinforce_loss = _make_check(REINFORCE_LOSS)
check_baseline_advantages = _make_check(BASELINE_ADVANTAGES)
check_value_loss = _make_check(VALUE_LOSS)
check_gradient_variance = _make_check(GRADIENT_VARIANCE)
check_categorical_entropy = _make_check(CATEGORICAL_ENTROPY)
check_td_errors = _make_check(TD_ERRORS)
check_compute_gae = _make_check(COMPUTE_GAE)
check_a2c_policy_loss = _make_check(A2C_POLICY_LOSS)
check_clipped_surrogate_loss = _make_check(CLIPPED_SURROGATE_LOSS)
check_approx_kl = _make_check(APPROX_KL)
check_clip_fraction = _make_check(CLIP_FRACTION)
check_explained_variance = _make_check(EXPLAINED_VARIANCE)
check_gaussian_log_prob = _make_check(GAUSSIAN_LOG_PROB)
check_gaussian_entropy = _make_check(GAUSSIAN_ENTROPY)
check_env_action = _make_check(ENV_ACTION)

ALL_CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "play_episode": check_play_episode,
    "transition_mask": check_transition_mask,
    "completed_episode_returns": check_completed_episode_returns,
    "action_log_probs": check_action_log_probs,
    "discounted_returns": check_discounted_returns,
    "normalize": check_normalize,
    "reinforce_loss": check_reinforce_loss,
    "baseline_advantages": check_baseline_advantages,
    "value_loss": check_value_loss,
    "gradient_variance": check_gradient_variance,
    "categorical_entropy": check_categorical_entropy,
    "td_errors": check_td_errors,
    "compute_gae": check_compute_gae,
    "a2c_policy_loss": check_a2c_policy_loss,
    "clipped_surrogate_loss": check_clipped_surrogate_loss,
    "approx_kl": check_approx_kl,
    "clip_fraction": check_clip_fraction,
    "explained_variance": check_explained_variance,
    "minibatch_indices": check_minibatch_indices,
    "gaussian_log_prob": check_gaussian_log_prob,
    "gaussian_entropy": check_gaussian_entropy,
    "env_action": check_env_action,
}

REFERENCES: dict[str, Callable[..., Any]] = {
    **{name: ex.reference for name, ex in EXERCISES.items()},
    "minibatch_indices": batching.minibatch_indices,
    "play_episode": envs.play_episode,
}

__all__ += [f"check_{name}" for name in ALL_CHECKS]


# --------------------------------------------------------------------------------------------------
# ch06: the bug hunt
# --------------------------------------------------------------------------------------------------

def check_bug_hunt(answers: dict) -> None:
    """Check the bug hunt of chapter 06: ``answers[k]`` names the trap planted in mystery trainer ``k``
    (a key of ``pgcourse.traps.TRAPS``). The answers are compared with hashes, not with plain names."""
    from .traps import check_bug_hunt as _check

    _check(answers)
