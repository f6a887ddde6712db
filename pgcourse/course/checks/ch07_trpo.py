"""Checks for chapter 07 (TRPO and the natural gradient): ``categorical_kl``, ``fisher_vector_product``,
``conjugate_gradient`` and ``line_search``.

``categorical_kl`` is a tensor function checked by the harness. The other three take callables or an autograd
graph, so each has its own check: it builds small problems whose answer is known exactly (an explicit Fisher
matrix from full second derivatives of a tiny policy, symmetric positive-definite systems, a line search over a
KL that grows with the step), compares, and names the classic wrong versions (the damping forgotten or
multiplied in, a search direction never made conjugate, a line search that never shrinks, ignores the KL, holds a
shortened step to the full step's predicted improvement or stops one try short, a step length from an undamped
product).
The reference solutions are in :mod:`pgcourse.rl.trust_region`.

``check_trpo_step`` checks the assembly exercise, one whole TRPO update written from those four pieces, on real
CartPole batches against the package's update; :func:`cartpole_batch` and :func:`reference_trpo_step` (a batch as
``train_trpo`` builds it, and the package's update of it) serve it and lesson 07's measurements. Every check also
plays its cases where a grader's handle lives (``fn.play_case``: the live arguments rebuilt from data by
:mod:`pgcourse.classroom.sandboxed.loops`).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...rl.trust_region import (backtracking_line_search, categorical_kl, conjugate_gradient, fisher_vector_product,
                                flat_grad, max_step_length)
from .harness import (Case, Exercise, LearnerCodeError, Mistake, _call_learner, _changed_input, _clone_values,
                      _make_check, _message, _randn)
from .ch07_conjugate_gradient import (_CG_EXTRA_PRODUCTS, CG_MISTAKES, _cg_returns_residual,  # noqa: F401 - tests
                                      _cg_swapped_beta, _steepest_descent)
from .ch07_line_search import LINE_SEARCH_SCENARIOS, matching_mistake
from .stages import call_spec, is_remote, learner_crash

# --------------------------------------------------------------------------------------------------
# categorical_kl (a tensor function: the harness checks it)
# --------------------------------------------------------------------------------------------------


def _cases_categorical_kl() -> list[Case]:
    cases = [Case("one state, two actions: old uniform, new sure of action 0",
                  dict(old_logits=torch.tensor([[0.0, 0.0]]), new_logits=torch.tensor([[2.0, -2.0]]))),
             Case("two states, identical policies (the KL is 0)",
                  dict(old_logits=torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]),
                       new_logits=torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]]))),
             Case("logits shifted by a constant (the same policy: KL 0)",
                  dict(old_logits=torch.tensor([[1.0, 2.0]]), new_logits=torch.tensor([[11.0, 12.0]])))]
    g = torch.Generator().manual_seed(7)
    for batch, actions, scale in [(5, 3, 1.0), (16, 4, 3.0)]:
        cases.append(Case(f"random logits: {batch} states x {actions} actions, scale {scale}",
                          dict(old_logits=_randn(g, batch, actions, scale=scale),
                               new_logits=_randn(g, batch, actions, scale=scale, requires_grad=True))))
    cases.append(Case("float64 logits", dict(old_logits=_randn(g, 4, 2, dtype=torch.float64),
                                             new_logits=_randn(g, 4, 2, dtype=torch.float64, requires_grad=True))))
    cases.append(Case("a peaked policy: an action 110 logits below the others (its float32 probability is 0)",
                      dict(old_logits=torch.tensor([[40.0, 38.0, -70.0]]),
                           new_logits=torch.tensor([[38.0, 40.0, -70.0]], requires_grad=True))))
    return cases


CATEGORICAL_KL = Exercise(
    name="categorical_kl",
    reference=categorical_kl,
    make_cases=_cases_categorical_kl,
    concept=("for each state, the expected log-ratio log p_old(a) - log p_new(a) under the OLD policy's "
             "probabilities, summed over all actions (not sampled); one number per state, [B]."),
    mistakes=[
        Mistake("the KL is measured the wrong way round: KL(pi_new || pi_old) weighs the log-ratio by the new "
                "policy's probabilities. TRPO's constraint, and its Fisher matrix, use KL(pi_old || pi_new): the "
                "expectation is over the actions the old policy takes.",
                lambda old_logits, new_logits: categorical_kl(new_logits, old_logits)),
        Mistake("the log-ratio is not weighted by the old policy's probabilities: a plain sum (or mean) of "
                "log p_old - log p_new over actions is not an expectation.",
                lambda old_logits, new_logits: (old_logits.log_softmax(-1) - new_logits.log_softmax(-1)).sum(-1)),
        Mistake("the logits are used as if they were log-probabilities: normalise them first (a softmax over "
                "the actions), or logits shifted by a constant stop describing the same policy.",
                lambda old_logits, new_logits: (old_logits.exp() * (old_logits - new_logits)).sum(-1)),
        Mistake("one number for the whole batch: keep one KL per state (shape [B]); the mean over states is "
                "taken by the caller.",
                lambda old_logits, new_logits: categorical_kl(old_logits, new_logits).mean()),
        Mistake("log(softmax(...)) is -inf where a probability underflows to 0, and 0 x -inf is NaN: take the "
                "log-probabilities with log_softmax, which stays finite.",
                lambda old_logits, new_logits: (old_logits.softmax(-1) * (old_logits.softmax(-1).log()
                                                                          - new_logits.softmax(-1).log())).sum(-1)),
    ],
    grad_args=("new_logits",),
    no_grad_hints={"new_logits": (
        "the KL must stay connected to new_logits: TRPO differentiates it twice (its Hessian in the new "
        "policy's parameters is the Fisher matrix), so do not detach new_logits or turn them into numbers; only "
        "old_logits are constants.")},
    note="Your result must be differentiable with respect to new_logits (its Hessian is the Fisher matrix).",
)

check_categorical_kl = _make_check(CATEGORICAL_KL)

# --------------------------------------------------------------------------------------------------
# fisher_vector_product
# --------------------------------------------------------------------------------------------------


def _tiny_policy_problem(seed: int, obs_dim: int = 3, hidden: int = 4, actions: int = 2, batch: int = 12):
    """A one-hidden-layer tanh policy, its parameters, the gradient of the mean KL at theta_old (with its graph)
    and the explicit Fisher matrix (the KL's Hessian) built from full second derivatives."""
    gen = torch.Generator().manual_seed(seed)
    w1 = torch.randn(hidden, obs_dim, generator=gen, dtype=torch.float64).requires_grad_(True)
    b1 = (0.1 * torch.randn(hidden, generator=gen, dtype=torch.float64)).requires_grad_(True)
    w2 = torch.randn(actions, hidden, generator=gen, dtype=torch.float64).requires_grad_(True)
    b2 = (0.1 * torch.randn(actions, generator=gen, dtype=torch.float64)).requires_grad_(True)
    parameters = [w1, b1, w2, b2]
    obs = torch.randn(batch, obs_dim, generator=gen, dtype=torch.float64)
    sizes = [p.numel() for p in parameters]

    def logits_of(flat: Tensor) -> Tensor:
        a, b, c, d = torch.split(flat, sizes)
        hidden_out = torch.tanh(obs @ a.view(hidden, obs_dim).T + b)
        return hidden_out @ c.view(actions, hidden).T + d

    theta = torch.cat([p.detach().reshape(-1) for p in parameters])
    old_logits = logits_of(theta).detach()
    fisher = torch.autograd.functional.hessian(lambda flat: categorical_kl(old_logits, logits_of(flat)).mean(), theta)
    hidden_out = torch.tanh(obs @ w1.T + b1)
    kl = categorical_kl(old_logits, hidden_out @ w2.T + b2).mean()
    kl_grad = flat_grad(kl, parameters, create_graph=True)
    data = dict(w1=w1.detach(), b1=b1.detach(), w2=w2.detach(), b2=b2.detach(), obs=obs, old_logits=old_logits)
    return parameters, kl_grad, fisher, data


def _fvp_problem(fn_output: Any, expected: Tensor) -> Tensor | None:
    if isinstance(fn_output, Tensor) and fn_output.shape == expected.shape:
        return fn_output.detach()
    return None


_GRAPH_FREED = "backward through the graph a second time"


def _graph_freed_message(name: str, case: Case) -> str:
    return _message(name, "the second call on the same kl_grad crashed: the graph was freed by the first.",
                    "keep kl_grad's graph: differentiate with retain_graph set to True, because conjugate gradient "
                    "asks for many products of the same Fisher matrix.", True, case, show_values=False)


def _remote_fvp_outputs(fn: Any, name: str, data: dict[str, Tensor], vectors: list[Tensor],
                        dampings: tuple[float, ...]) -> list[Any]:
    """The learner's products, played where their function lives (the grader's sandbox): the tiny policy and
    ``kl_grad`` are rebuilt there from ``data`` (:mod:`pgcourse.classroom.sandboxed.loops`), the calls made in order."""
    spec = {"trust_region": {"kl_problem": data},
            "calls": [call_spec([{"ref": "kl_grad"}, {"ref": "parameters"}, {"value": vector}, {"value": damping}])
                      for vector, damping in zip(vectors, dampings)]}
    try:
        outcome = fn.play_case(spec)
    except Exception as error:  # noqa: BLE001 - a crash in their code is reported as theirs
        if _GRAPH_FREED in str(error):
            raise AssertionError(_graph_freed_message(name, Case("a tiny tanh policy, call 2 on the same kl_grad",
                                                                 {}))) from None
        raise learner_crash(name, error) from None
    return [(call["result"], (call.get("inputs") or [vector])[0]) for call, vector in zip(outcome["calls"], vectors)]


def check_fisher_vector_product(fn: Callable[..., Any]) -> None:
    """Check ``fisher_vector_product(kl_grad, parameters, vector, damping) -> [P]`` against ``(F + damping I) v``
    with ``F`` formed explicitly (full second derivatives of a tiny policy's KL, in float64), for several
    vectors and dampings, called repeatedly on the same ``kl_grad`` (conjugate gradient calls it ~10 times)."""
    name = "fisher_vector_product"
    checked = 0
    for seed in (0, 1):
        parameters, kl_grad, fisher, data = _tiny_policy_problem(seed)
        size = fisher.shape[0]
        dampings = (0.0, 0.1, 1.0)
        vectors = [torch.randn(size, generator=torch.Generator().manual_seed(100 * seed + number), dtype=fisher.dtype)
                   for number in range(len(dampings))]
        remote_outputs = _remote_fvp_outputs(fn, name, data, vectors, dampings) if is_remote(fn) else None
        for number, (damping, vector) in enumerate(zip(dampings, vectors)):
            case = Case(f"a tiny tanh policy (seed {seed}, {size} parameters), damping={damping}, call "
                        f"{number + 1} on the same kl_grad", dict(vector=vector, damping=damping))
            if remote_outputs is not None:
                output, vector_after = remote_outputs[number]
            else:
                vector_after = _clone_values([vector])[0]  # theirs; the expectation uses the untouched vector
                try:
                    output = _call_learner(fn, name, [kl_grad, parameters, vector_after, damping],
                                           ["kl_grad", "parameters", "vector", "damping"])
                except Exception as error:
                    if number > 0 and _GRAPH_FREED in str(error):
                        raise AssertionError(_graph_freed_message(name, case)) from None
                    raise
            expected = fisher @ vector + damping * vector
            received = _fvp_problem(output, expected)
            if received is None:
                raise AssertionError(_message(
                    name, f"expected a tensor of shape {tuple(expected.shape)} (one entry per parameter), got "
                          f"{type(output).__name__}{'' if not isinstance(output, Tensor) else tuple(output.shape)}.",
                    "flatten and concatenate the gradients of every parameter, in the order of `parameters`.",
                    True, case, expected=expected, received=output))
            if not torch.allclose(received, expected, rtol=1e-6, atol=1e-9):
                hint = None
                if torch.allclose(received, fisher @ vector, rtol=1e-6, atol=1e-9) and damping > 0:
                    hint = ("the damping is missing: TRPO's conjugate gradient solves (F + damping I) s = g, so the "
                            "product must add damping * vector (a nearly singular F makes CG unstable without it).")
                elif damping > 0 and torch.allclose(received, (1 + damping) * (fisher @ vector), rtol=1e-6,
                                                    atol=1e-9):
                    hint = "the damping multiplies F v; it is added: F v + damping * v (a multiple of the identity)."
                elif torch.allclose(received, kl_grad.detach(), atol=1e-9):
                    hint = ("this is the KL's gradient itself (zero at theta_old); the product is the gradient of "
                            "(kl_grad . vector) with respect to the parameters.")
                elif damping > 0 and torch.allclose(received, fisher @ vector + damping, rtol=1e-6, atol=1e-9):
                    hint = "damping was added to every entry; add damping * vector."
                raise AssertionError(_message(
                    name, "your product differs from (F + damping I) v.", hint, hint is not None, case,
                    concept=("the derivative, with respect to the parameters, of the dot product of kl_grad with "
                             "the (constant) vector, plus damping times the vector"),
                    expected=expected, received=received))
            if _changed_input(["vector"], [vector], [vector_after]) is not None:
                raise AssertionError(_message(
                    name, "the product is right, but `vector` came back changed.",
                    "your function changed its input `vector` in place: conjugate gradient still needs its search "
                    "direction after the product (it steps along it). Build new tensors instead of writing into "
                    "an input.", True, case, expected=vector, received=vector_after,
                    labels=("`vector` before your call", "`vector` after your call")))
            checked += 1
    print(f"✓ {name}: {checked} products matched the explicit Fisher matrix, {checked} cases passed")


# --------------------------------------------------------------------------------------------------
# conjugate_gradient
# --------------------------------------------------------------------------------------------------


def _spd(size: int, seed: int, conditioning: float = 1.0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=gen, dtype=torch.float64)
    return a @ a.T + conditioning * size * torch.eye(size, dtype=torch.float64)


def _x_of(output: Any) -> Any:
    if isinstance(output, dict) and isinstance(output.get("x"), Tensor):  # an object with .x, sent back as data
        return output["x"]
    return output.x if hasattr(output, "x") and isinstance(getattr(output, "x"), Tensor) else output


def _remote_cg(fn: Any, name: str, matrix: Tensor, b: Tensor, iterations: int, residual_tol: float
               ) -> tuple[Any, int, Any]:
    """The learner's conjugate gradient played in the grader's sandbox on a matrix known there only through a
    counting product: (x, the number of products taken, ``b`` as the call left it)."""
    spec = {"trust_region": {"matvec": matrix},
            "calls": [call_spec([{"ref": "matvec"}, {"value": b}, {"value": iterations}, {"value": residual_tol}])]}
    try:
        outcome = fn.play_case(spec)
    except Exception as error:  # noqa: BLE001 - a crash in their code is reported as theirs
        raise learner_crash(name, error) from None
    call = outcome["calls"][0]
    return _x_of(call["result"]), int(outcome.get("products", 0)), (call.get("inputs") or [b])[0]


_CG_CHANGED_B = ("your function changed its input `b` in place (with r = b, the residual IS b: r -= ... then writes "
                 "into it). In TRPO b is the surrogate's gradient g, which the update uses again after conjugate "
                 "gradient (the step length's predicted improvement g.s, the line search), so it comes back zeroed "
                 "or shrunk. Start the residual from a copy of b.")


def _learner_cg(fn: Any, name: str, matvec: Callable[[Tensor], Tensor], matrix: Tensor, b: Tensor, iterations: int,
                residual_tol: float, products: list[Tensor]) -> tuple[Any, Any]:
    """The learner's conjugate gradient on a copy of ``b`` (here or in the grader's sandbox): (x, the copy of ``b``
    as their call left it). ``products`` receives one entry per product taken."""
    if is_remote(fn):
        output, count, b_after = _remote_cg(fn, name, matrix, b, iterations, residual_tol)
        products.extend([b] * count)
        return output, b_after
    given = _clone_values([b])
    output = _x_of(_call_learner(fn, name, [matvec, given[0], iterations, residual_tol],
                                 ["matrix_vector_product", "b", "iterations", "residual_tol"]))
    return output, given[0]


def check_conjugate_gradient(fn: Callable[..., Any]) -> None:
    """Check ``conjugate_gradient(matrix_vector_product, b, iterations, residual_tol) -> x`` (a tensor, or an
    object with ``.x``) on symmetric positive-definite systems known only through products: exact solutions when
    ``iterations`` is the size, the reference's iterate when it stops early, ``x = 0`` without any product for
    ``b = 0``, and never more products than ``iterations``."""
    name = "conjugate_gradient"
    problems = [
        ("3x3 diagonal, 3 iterations (exact after 3: three distinct eigenvalues)",
         torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)), 3),
        ("6x6 random, 6 iterations (exact)", _spd(6, 0), 6),
        ("8x8 random, badly conditioned, stopped after 3 iterations (compare with the reference's 3rd iterate)",
         _spd(8, 1, conditioning=0.05), 3),
        ("12x12 random, 2 iterations", _spd(12, 2), 2),
    ]
    mistakes = CG_MISTAKES
    runs = []  # the learner's function on every system first, so that a mistake is named only if it explains them all
    for number, (description, matrix, iterations) in enumerate(problems):
        b = torch.randn(matrix.shape[0], generator=torch.Generator().manual_seed(50 + number), dtype=torch.float64)
        products: list[Tensor] = []

        def matvec(vector: Tensor, matrix: Tensor = matrix, products: list[Tensor] = products) -> Tensor:
            products.append(vector)
            return matrix @ vector

        runs.append((b, products, *_learner_cg(fn, name, matvec, matrix, b, iterations, 1e-20, products)))

    def reproduces(wrong: Callable[..., Tensor]) -> bool:  # on every system, and not only where it is ~0
        outs = [(output, wrong(lambda v, matrix=matrix: matrix @ v, b, iterations, 1e-20))
                for (_, matrix, iterations), (b, _, output, _) in zip(problems, runs)]
        return all(isinstance(out, Tensor) and out.shape == mistake.shape and
                   torch.allclose(out.detach(), mistake, rtol=1e-6, atol=1e-8) for out, mistake in outs) and \
            any(float(mistake.norm()) > 1e-6 for _, mistake in outs)

    for number, ((description, matrix, iterations), (b, products, output, b_after)) in enumerate(zip(problems, runs)):
        case = Case(description, dict(matrix=matrix, b=b, iterations=iterations))
        changed = _changed_input(["b"], [b], [b_after]) is not None
        expected = conjugate_gradient(lambda v, matrix=matrix: matrix @ v, b, iterations, 1e-20).x  # from b untouched
        if not isinstance(output, Tensor) or output.shape != b.shape:
            raise AssertionError(_message(name, f"expected x of shape {tuple(b.shape)}, got {type(output).__name__}.",
                                          "return the solution x (or an object whose .x is it).", True, case,
                                          expected=expected, received=output))
        if len(products) > iterations:
            hint = next((text for text, wrong in _CG_EXTRA_PRODUCTS if reproduces(wrong)), None)
            raise AssertionError(_message(
                name, f"{len(products)} matrix-vector products for iterations={iterations}.",
                hint or "one product per iteration (A times the search direction), `iterations` of them at most.",
                hint is not None, case, show_values=False))
        if not torch.allclose(output.detach(), expected, rtol=1e-6, atol=1e-8):
            hint = next((text for text, wrong in mistakes if reproduces(wrong)), None)
            taken = len(products)
            if hint is None and 0 < taken < iterations and torch.allclose(
                    output.detach(), conjugate_gradient(lambda v, matrix=matrix: matrix @ v, b, taken, 1e-20).x,
                    rtol=1e-6, atol=1e-8):
                hint = (f"your x is conjugate gradient's iterate after {taken} products, where iterations={iterations} "
                        f"asks for {iterations}: run the loop `iterations` times (an off-by-one in its bound?).")
            exact = torch.linalg.solve(matrix, b)
            if hint is None and torch.allclose(output.detach(), exact, rtol=1e-5, atol=1e-7) and iterations < len(b):
                hint = ("you solved the system exactly (or ran more iterations than asked): TRPO stops after "
                        "`iterations` products, an approximate natural gradient is enough.")
            raise AssertionError(_message(
                name, "x differs from conjugate gradient's iterate.", hint, hint is not None, case,
                concept=("start from x = 0 with residual r = b and direction p = r; each iteration steps along p by "
                         "r.r / p.Ap, updates r with that product, and makes the next direction the new residual "
                         "plus (new r.r / old r.r) times the old direction"),
                expected=expected, received=output.detach(),
                note=f"Your function also changed b in place: {_CG_CHANGED_B}" if changed else ""))
        if changed:
            raise AssertionError(_message(
                name, "x is right, but b came back changed.", _CG_CHANGED_B, True, case, expected=b,
                received=b_after, labels=("`b` before your call", "`b` after your call")))
    # the tolerance's early stop on a real system (exercise 07's third read: only b = 0 tested it): a tolerance just
    # above the reference's squared residual after 3 products stops it there, before the 4th; a stop on the norm
    # (not its square) or a check made once before the loop takes more products
    matrix = _spd(6, 3)
    b = torch.randn(6, generator=torch.Generator().manual_seed(60), dtype=torch.float64)
    third = conjugate_gradient(lambda v: matrix @ v, b, 3, 1e-30)
    tolerance = 1.5 * third.residual_norm ** 2
    reference = conjugate_gradient(lambda v: matrix @ v, b, 10, tolerance)
    early_products: list[Tensor] = []

    def early_matvec(vector: Tensor) -> Tensor:
        early_products.append(vector)
        return matrix @ vector

    case = Case(f"6x6 random, 10 iterations, residual_tol {tolerance:.3g} (the reference stops after "
                f"{reference.iterations} products)", dict(matrix=matrix, b=b, iterations=10, residual_tol=tolerance))
    output, _ = _learner_cg(fn, name, early_matvec, matrix, b, 10, tolerance, early_products)
    if len(early_products) != reference.iterations or not (
            isinstance(output, Tensor) and torch.allclose(output.detach(), reference.x, rtol=1e-6, atol=1e-8)):
        raise AssertionError(_message(
            name, f"{len(early_products)} products where the reference stops after {reference.iterations}, once the "
            f"residual's squared norm fell below residual_tol.",
            "stop as soon as the residual's squared norm (r.r, not its norm) is below residual_tol, and check it "
            "before each product, not once before the loop.", True, case, expected=reference.x,
            received=output.detach() if isinstance(output, Tensor) else output))
    zero_products: list[Tensor] = []
    b = torch.zeros(4, dtype=torch.float64)
    output, _ = _learner_cg(fn, name, lambda v: zero_products.append(v) or 2 * v, 2 * torch.eye(4, dtype=torch.float64),
                            b, 10, 1e-10, zero_products)
    if not isinstance(output, Tensor) or not torch.equal(output, b) or zero_products:
        raise AssertionError(_message(
            name, "for b = 0 the answer is x = 0, with no product needed.",
            "stop as soon as the residual's squared norm is below residual_tol (check before each product).",
            True, Case("b = 0", dict(b=b)), expected=b, received=output))
    print(f"✓ {name}: {len(problems) + 2} systems solved like the reference, {len(problems) + 2} cases passed")


# --------------------------------------------------------------------------------------------------
# line_search
# --------------------------------------------------------------------------------------------------


def _fraction_of(output: Any) -> Any:
    if isinstance(output, dict) and "fraction" in output:  # an object with .fraction, sent back as data
        return output["fraction"]
    return output.fraction if hasattr(output, "fraction") else output


def _real_number(output: Any) -> float | None:
    """``output`` as a Python float if it is one real number (int, float, numpy scalar, 0-d tensor), else None
    (a bool, None, a vector, anything else)."""
    if isinstance(output, (bool, np.bool_)):
        return None
    if isinstance(output, (int, float, np.integer, np.floating)):
        return float(output)
    if isinstance(output, Tensor) and output.dim() == 0 and not output.is_complex() and output.dtype != torch.bool:
        return float(output.detach())
    return None


def _describe(output: Any) -> str:
    if isinstance(output, Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    return "None" if output is None else f"a {type(output).__name__}"


def _remote_line_search(fn: Any, name: str, evaluate: Callable[[float], tuple[float, float]], args: list[Any],
                        tried: list[float]) -> Any:
    """The learner's line search played in the grader's sandbox, its ``evaluate`` a table of the fractions
    ``shrink^k`` (any other fraction evaluates to NaNs there); the fractions it tried go into ``tried``."""
    expected_improvement, max_kl, backtracks, shrink, ratio = args
    fractions = [shrink ** k for k in range(backtracks)]
    table = {"fractions": torch.tensor(fractions, dtype=torch.float64),
             "values": torch.tensor([list(evaluate(f)) for f in fractions], dtype=torch.float64)}
    spec = {"trust_region": {"evaluate": table},
            "calls": [call_spec([{"ref": "evaluate"}, *({"value": value} for value in args)])]}
    try:
        outcome = fn.play_case(spec)
    except Exception as error:  # noqa: BLE001 - a crash in their code is reported as theirs
        raise learner_crash(name, error) from None
    tried.extend(float(f) for f in outcome.get("tried", []))
    return _fraction_of(outcome["calls"][0]["result"])


def check_line_search(fn: Callable[..., Any]) -> None:
    """Check ``line_search(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio) ->
    fraction`` (a real number: a float, an int, a numpy scalar or a 0-d tensor; or an object with ``.fraction``;
    0.0 when no step is accepted) on searches whose answer is known: a KL that grows with the step, a surrogate
    that gets worse, NaNs, improvements below the accepted ratio of the prediction for the fraction tried, a last
    try that is the accepted one, a prediction other than 1, an improvement that peaks below the first acceptable
    fraction. A wrong fraction names a known wrong search (:mod:`.ch07_line_search`) only when it returns the
    learner's fractions; otherwise the message says what the failing search was built to test."""
    name = "line_search"
    scenarios = LINE_SEARCH_SCENARIOS
    fractions, tries, cases = [], [], []
    for description, evaluate, expected_improvement, max_kl, backtracks, shrink, ratio, expected, _ in scenarios:
        tried: list[float] = []

        def counted(fraction: float, evaluate=evaluate) -> tuple[float, float]:
            tried.append(float(fraction))
            return evaluate(fraction)

        case = Case(description, dict(expected_improvement=expected_improvement, max_kl=max_kl,
                                      max_backtracks=backtracks, shrink=shrink, accept_ratio=ratio))
        if is_remote(fn):
            output = _remote_line_search(fn, name, evaluate, [expected_improvement, max_kl, backtracks, shrink, ratio],
                                         tried)
        else:
            output = _fraction_of(_call_learner(
                fn, name, [counted, expected_improvement, max_kl, backtracks, shrink, ratio],
                ["evaluate", "expected_improvement", "max_kl", "max_backtracks", "shrink", "accept_ratio"]))
        reference = backtracking_line_search(evaluate, expected_improvement, max_kl, backtracks, shrink, ratio)
        assert math.isclose(reference.fraction, expected, abs_tol=1e-12), (description, reference)
        if len(tried) > backtracks:
            raise AssertionError(_message(name, f"{len(tried)} tries for max_backtracks={backtracks}.",
                                          "stop after max_backtracks tries and return 0.0.", True, case,
                                          show_values=False))
        fraction = _real_number(output)
        if fraction is None:
            raise AssertionError(_message(
                name, f"you returned {_describe(output)}, not a number.",
                "return a Python float: the accepted fraction itself (0.0 when no fraction is accepted).", True, case,
                show_values=False))
        fractions.append(fraction)
        tries.append(tried)
        cases.append(case)
    wrong = [k for k, scenario in enumerate(scenarios) if not math.isclose(fractions[k], scenario[7], abs_tol=1e-6)]
    if wrong:  # float32 returns pass
        k = wrong[0]
        expected, purpose, tried = scenarios[k][7], scenarios[k][8], tries[k]
        hint, certain = matching_mistake(fractions, [scenario[1:7] for scenario in scenarios], k,
                                         [scenario[7] for scenario in scenarios], tries)
        if hint is None and len(tried) > 1 and all(t == 1.0 for t in tried) and expected != 1.0:
            hint, certain = "the line search never shrinks: every try was the full step (fraction 1).", True
        # what the learner returned, not called a fraction: a returned loop index is not one (issue 49)
        problem = (f"your search returned {fractions[k]!r}, expected the fraction {expected!r} (fractions tried: "
                   f"{tried}). This search was built to test {purpose}")
        raise AssertionError(_message(name, problem, hint, certain, cases[k], expected=expected,
                                      received=fractions[k], show_values=False))
    print(f"✓ {name}: {len(scenarios)} searches ended where the reference's do, {len(scenarios)} cases passed")


# --------------------------------------------------------------------------------------------------
# one TRPO update on a real CartPole batch (the assembly exercise and the lesson's measurements)
# --------------------------------------------------------------------------------------------------


@dataclass
class TRPOBatch:
    """One TRPO batch of CartPole-v1, as :func:`pgcourse.rl.algorithms.trpo.train_trpo` builds it before its
    policy step: the policy that collected it (:math:`\\pi_{old}`), the valid transitions and their
    normalised GAE advantages, and the config's trust-region settings.

    On the CPU, the policy and every tensor (the one device rule for what helpers hand to lesson code): a
    lesson's own CPU networks and tensors combine with it on any machine, a GPU one included."""

    policy: torch.nn.Module   # pi_old: obs [B, obs_dim] -> logits [B, n_actions]
    obs: Tensor               # [B, obs_dim]
    actions: Tensor           # [B] int64
    old_log_probs: Tensor     # [B], log pi_old(a|s) stored at collection time
    advantages: Tensor        # [B], normalised
    max_kl: float
    cg_iters: int
    cg_damping: float
    line_search_steps: int
    line_search_shrink: float
    accept_ratio: float

    def copy_policy(self) -> torch.nn.Module:
        """A fresh copy of pi_old (every update starts from the same parameters)."""
        return copy.deepcopy(self.policy)


def cartpole_batch(seed: int = 0, policy: torch.nn.Module | None = None, **overrides: Any) -> TRPOBatch:
    """Collect one TRPO batch on CartPole-v1 with the course's TRPO defaults (``overrides`` change any field,
    e.g. ``max_kl=0.05``): ``num_envs * n_steps`` steps of the policy initialised with ``seed`` (or of a copy of
    ``policy``, e.g. a trained ``run.policy`` on any device), GAE advantages normalised, reset steps dropped.

    Collected on the CPU unless ``device=`` says otherwise (so the batch is the same on every machine), and
    returned on the CPU whatever the device: ``batch.policy`` and every tensor of the batch live there."""
    from ...rl.algorithms.rollout import collect_rollout, flatten_valid
    from ...rl.algorithms.trainer import Trainer
    from ...rl.config import make_config

    overrides = {"device": "cpu", **overrides}
    config = make_config("trpo", "CartPole-v1", "discrete", seed=seed, progress=False, **overrides)
    random_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:  # the trainer seeds the global generators (and samples the actions from torch's): put back after
        with Trainer(config) as trainer:
            if policy is not None:
                trainer.policy.load_state_dict(policy.state_dict())
            parts = trainer.components
            rollout = collect_rollout(trainer, config.n_steps)
            advantages = parts.gae()(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                                     rollout.truncated, config.gamma, config.gae_lambda)  # [T, N]
            obs, actions, old_log_probs, advantages = flatten_valid(rollout, rollout.obs, rollout.actions,
                                                                    rollout.log_probs, advantages)  # [B, ...]
            if config.normalize_advantages:
                advantages = parts.normalize(advantages)  # [B]
            batch_policy = copy.deepcopy(trainer.policy).cpu()  # a no-op on the CPU
            trainer._close()
    finally:
        random.setstate(random_state)
        np.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
    obs, actions, old_log_probs, advantages = (tensor.cpu() for tensor in (obs, actions, old_log_probs,
                                                                            advantages.detach()))
    return TRPOBatch(batch_policy, obs, actions, old_log_probs, advantages, config.max_kl, config.cg_iters,
                     config.cg_damping, config.line_search_steps, config.line_search_shrink, config.accept_ratio)


def _log_probs(policy: torch.nn.Module, obs: Tensor, actions: Tensor) -> Tensor:
    return torch.log_softmax(policy(obs), dim=-1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)  # [B]


def batch_surrogate(policy: torch.nn.Module, batch: TRPOBatch) -> Tensor:
    """:math:`L(\\theta) = \\frac1B \\sum_i \\rho_i A_i` of ``policy`` on ``batch`` (a scalar with its graph)."""
    return ((_log_probs(policy, batch.obs, batch.actions) - batch.old_log_probs).exp() * batch.advantages).mean()


def batch_kl(policy: torch.nn.Module, batch: TRPOBatch) -> Tensor:
    """Mean over the batch's states of KL(pi_old || pi_policy) (a scalar with its graph)."""
    with torch.no_grad():
        old_logits = batch.policy(batch.obs)  # [B, n]
    return categorical_kl(old_logits, policy(batch.obs)).mean()


@dataclass(frozen=True)
class TRPOStep:
    """What one TRPO update did: the new parameters ``[P]``, the accepted fraction of the full step, the real
    surrogate improvement and KL there, the linear prediction for the full step and conjugate gradient's
    iterations and final residual norm."""

    parameters: Tensor
    fraction: float
    improvement: float
    kl: float
    expected_improvement: float
    cg_iterations: int
    cg_residual: float


def reference_trpo_step(batch: TRPOBatch, direction: str = "natural", line_search: bool = True,
                        damped_length: bool = True, prediction: str = "full", surrogate: str = "ratio",
                        fisher_zero: bool = False, without_two: bool = False) -> TRPOStep:
    """One TRPO update of a copy of ``batch.policy`` with the package's functions, in ``train_trpo``'s order:
    surrogate gradient, conjugate gradient, step length, line search. The step length
    :math:`\\beta = \\sqrt{2\\delta / s^\\top (F + \\lambda I) s}` uses the same damped product as conjugate gradient.
    ``direction="gradient"`` (the plain gradient scaled to the same quadratic KL), ``direction="reversed"`` (the
    natural step downhill, the ascent's sign flipped), ``line_search=False`` (always the
    full step), ``damped_length=False`` (the step length from an undamped product :math:`F s`),
    ``prediction="unscaled"`` (the line search told :math:`g^\\top s`, not :math:`g^\\top \\beta s`) and
    ``surrogate="log_prob"`` (:math:`\\frac1B\\sum_i \\log\\pi(a_i|s_i) A_i`: the same gradient at
    :math:`\\theta_{old}`, other improvements) and ``fisher_zero`` (the KL's old logits not detached: its Hessian, the
    Fisher matrix, is 0, leaving the damping), ``surrogate="inverse_ratio"`` (the ratio upside down,
    pi_old / pi_theta: its gradient at theta_old is -g) and ``without_two`` (the step length sqrt(max_kl / s.(F + lambda I)s),
    the 2 forgotten) are the wrong versions the check names."""
    policy = batch.copy_policy()
    parameters = list(policy.parameters())
    old_params = torch.nn.utils.parameters_to_vector(parameters).detach()  # [P]
    objective = {"ratio": batch_surrogate,
                 "log_prob": lambda net, data: (_log_probs(net, data.obs, data.actions) * data.advantages).mean(),
                 "inverse_ratio": lambda net, data: ((data.old_log_probs - _log_probs(net, data.obs, data.actions))
                                                     .exp() * data.advantages).mean()}[surrogate]
    surrogate_old = objective(policy, batch)
    gradient = flat_grad(surrogate_old, parameters)  # g, [P]
    kl_grad = flat_grad(batch_kl(policy, batch), parameters, create_graph=True)  # [P]

    def fisher(vector: Tensor) -> Tensor:
        if fisher_zero:
            return batch.cg_damping * vector
        return fisher_vector_product(kl_grad, parameters, vector, batch.cg_damping)

    cg = conjugate_gradient(fisher, gradient, batch.cg_iters)
    step_direction = {"natural": cg.x, "gradient": gradient, "reversed": -cg.x}[direction]
    fisher_direction = (fisher(step_direction) if damped_length
                        else fisher_vector_product(kl_grad, parameters, step_direction, 0.0))  # (F + λI) s, or F s
    full_step = max_step_length(step_direction, fisher_direction, batch.max_kl) * step_direction  # [P]
    if without_two:
        full_step = full_step / math.sqrt(2.0)
    expected = float(gradient @ (full_step if prediction == "full" else step_direction))
    before = float(surrogate_old.detach())

    def evaluate(fraction: float) -> tuple[float, float]:
        torch.nn.utils.vector_to_parameters(old_params + fraction * full_step, parameters)
        with torch.no_grad():
            return float(objective(policy, batch)) - before, float(batch_kl(policy, batch))

    if line_search:
        search = backtracking_line_search(evaluate, expected, batch.max_kl, batch.line_search_steps,
                                          batch.line_search_shrink, batch.accept_ratio)
        fraction, improvement, kl = search.fraction, search.improvement, search.kl
    else:
        fraction = 1.0
        improvement, kl = evaluate(1.0)
    new_params = (old_params + fraction * full_step).detach()
    if fraction == 0.0:
        improvement, kl = 0.0, 0.0
    return TRPOStep(new_params, fraction, improvement, kl, expected, cg.iterations, cg.residual_norm)


def _remote_trpo_step(fn: Any, name: str, batch: TRPOBatch, data: list[Any]) -> tuple[Any, Tensor, list[Any]]:
    """The learner's update played in the grader's sandbox on a copy of ``batch.policy`` rebuilt there from its
    weights: (what it returned, the policy's parameters after the call, flattened ``[P]``, the data arguments as the
    call left them)."""
    layers = [module for module in batch.policy.net if isinstance(module, torch.nn.Linear)]
    network = {"class": "CategoricalPolicy", "obs_dim": layers[0].in_features, "n_actions": layers[-1].out_features,
               "hidden_sizes": [layer.out_features for layer in layers[:-1]],
               "state": {key: value.detach().clone() for key, value in batch.policy.state_dict().items()}}
    spec = {"networks": {"policy": network},
            "calls": [call_spec([{"ref": "policy"}, *({"value": value} for value in data)], parameters=["policy"])]}
    try:
        outcome = fn.play_case(spec)
    except Exception as error:  # noqa: BLE001 - a crash in their code is reported as theirs
        raise learner_crash(name, error) from None
    call = outcome["calls"][0]
    after = torch.cat([tensor.reshape(-1) for tensor in call["parameters"]["policy"]])  # [P]
    inputs = call.get("inputs")
    return _fraction_of(call["result"]), after, list(inputs) if isinstance(inputs, list) and len(inputs) == len(
        data) else list(data)


# (seed, overrides of the TRPO defaults, what the case tests): the third batch's step is computed with little
# damping, so the quadratic model overshoots and the line search must halve the full step (real KL 0.0123 > 0.01).
TRPO_STEP_CASES: tuple[tuple[int, dict[str, Any], str], ...] = (
    (0, {}, "the course defaults"),
    (1, {}, "the course defaults"),
    (1, dict(cg_damping=1e-4, cg_iters=20), "cg_damping=1e-4 and 20 CG iterations: the full step leaves the trust "
                                            "region, the line search must shrink it"),
    (0, dict(max_kl=1e8), "max_kl=1e8, a trust region so wide that every fraction the line search tries (1 down to "
                          "1/512) improves the surrogate by less than 10% of the linear prediction (at most 0.18 "
                          "against 0.45 and more): no fraction is accepted, and the policy must be left at theta_old"),
)
# max_kl is a setting of the update, not of the collection: set on the collected batch (so a value beyond the
# config's range can be tried); every other override goes to the config the batch is collected with.
_BATCH_FIELDS = ("max_kl",)

_SIGN_FLIP_HINT = ("your line search accepted no fraction, where the package's accepts {reference}: that is what a "
                   "step that goes downhill gives (every try makes the surrogate worse). TRPO maximises the "
                   "surrogate L: s solves "
                   "(F + cg_damping I) s = g with g the gradient of L itself (not of a loss -L), and the step is "
                   "+beta s. Or your evaluate(fraction) never writes theta_old + fraction x full step into the "
                   "policy before it measures the surrogate and the KL (then no try improves anything).")
_NOT_RESTORED_HINT = ("the line search accepted no fraction here (every try improved the surrogate by less than "
                      "accept_ratio x the prediction), but your policy was left where the last try put it: when no "
                      "fraction is accepted, write theta_old back into the policy (a fraction of 0).")


_NO_GRAPH = "does not require grad"


def _no_graph_crash(error: LearnerCodeError) -> LearnerCodeError:
    """Their crash, with a hint when autograd found no graph to differentiate (a detached KL, or kl_grad computed
    without create_graph): the Fisher-vector product differentiates the KL's gradient once more."""
    if _NO_GRAPH not in str(error):
        return error
    return LearnerCodeError(f"{error}\nHint: autograd found no graph to differentiate: compute kl_grad with "
                            f"create_graph=True, and keep categorical_kl connected to new_logits (the new policy's "
                            f"logits, computed from the policy's parameters, not detached).")


def check_trpo_step(fn: Callable[..., Any], cases: tuple[tuple[int, dict[str, Any], str], ...] = TRPO_STEP_CASES
                    ) -> None:
    """Check ``trpo_step(policy, obs, actions, old_log_probs, advantages, max_kl, cg_iters, cg_damping) ->
    fraction`` (it changes ``policy``'s parameters in place and returns the accepted fraction, a real number: a
    float, an int, a numpy scalar or a 0-d tensor; or an object with ``.fraction``) on real CartPole-v1 batches
    against the package's update: the step's real KL within ``max_kl``, the surrogate's improvement and the new
    parameters those of the reference, within float32 tolerance, and the fraction returned the reference's."""
    name = "trpo_step"
    for seed, overrides, what in cases:
        batch = dataclasses.replace(cartpole_batch(seed, **{k: v for k, v in overrides.items()
                                                            if k not in _BATCH_FIELDS}),
                                    **{k: v for k, v in overrides.items() if k in _BATCH_FIELDS})
        reference = reference_trpo_step(batch)
        policy = batch.copy_policy()
        case = Case(f"a CartPole-v1 batch of {batch.obs.shape[0]} transitions (reset steps dropped), policy "
                    f"initialised with seed {seed}, max_kl={batch.max_kl}, {what}",
                    dict(seed=seed, cg_damping=batch.cg_damping, cg_iters=batch.cg_iters))
        data = [batch.obs, batch.actions, batch.old_log_probs, batch.advantages, batch.max_kl, batch.cg_iters,
                batch.cg_damping]
        data_names = ["obs", "actions", "old_log_probs", "advantages", "max_kl", "cg_iters", "cg_damping"]
        try:
            if is_remote(fn):
                output, after, given = _remote_trpo_step(fn, name, batch, data)
                torch.nn.utils.vector_to_parameters(after, policy.parameters())
            else:
                given = _clone_values(data)  # theirs; the batch keeps the originals for the comparisons
                output = _fraction_of(_call_learner(fn, name, [policy, *given], ["policy", *data_names]))
        except LearnerCodeError as error:
            raise _no_graph_crash(error) from None
        changed = _changed_input(data_names, data, given)
        changed_note = (f"Your function also changed its input `{changed}` in place: the caller's batch must come "
                        f"back as it was." if changed else "")
        fraction = _real_number(output)
        if fraction is None:
            raise AssertionError(_message(
                name, f"you returned {_describe(output)}, not a number.",
                "return the accepted fraction (a float), the fraction of the full step your line search accepted "
                "(0.0 when it accepted none), after writing that step into the policy's parameters.", True, case,
                show_values=False))
        new_params = torch.nn.utils.parameters_to_vector(policy.parameters()).detach()  # [P]
        old_params = torch.nn.utils.parameters_to_vector(batch.policy.parameters()).detach()
        with torch.no_grad():
            kl = float(batch_kl(policy, batch))
            improvement = float(batch_surrogate(policy, batch)) - float(batch_surrogate(batch.policy, batch))
        step, reference_step = new_params - old_params, reference.parameters - old_params
        distance = float((step - reference_step).norm() / reference_step.norm().clamp_min(1e-12))
        moved_like_reference = distance < 1e-2 and kl <= batch.max_kl * (1 + 1e-3) and math.isclose(
            improvement, reference.improvement, rel_tol=2e-2, abs_tol=1e-6)
        if moved_like_reference:
            if math.isclose(fraction, reference.fraction, rel_tol=0.0, abs_tol=1e-6):
                if changed:
                    raise AssertionError(_message(
                        name, f"the policy moved like the reference's, but your function changed its input "
                              f"`{changed}` in place.",
                        f"an operation wrote into `{changed}` (x -= …, x[...] = …, or a method ending in _): the "
                        f"caller still needs its batch as it was. Build new tensors instead.", True, case,
                        show_values=False))
                continue
            raise AssertionError(_message(
                name, f"the policy moved like the reference's, but you returned {fraction!r} as the accepted fraction "
                      f"(the reference's: {reference.fraction!r}).",
                "return the fraction of the full step the line search accepted.", True, case, show_values=False))
        hint, certain = None, True
        moved = float(step.norm()) > 0.0  # False for a NaN step too: non-finite parameters are named first, below
        downhill_rejected = reference.fraction > 0 and fraction == 0.0 and reference_trpo_step(
            batch, direction="reversed").fraction == 0
        if not bool(torch.isfinite(new_params).all()):
            hint = ("the policy's parameters are not finite after your step (NaN or inf): look for a division by "
                    "zero or a square root of a negative number in the step length, and write only a finite try "
                    "into the parameters.")
        elif downhill_rejected:  # a possible cause: tries never written into the policy also give 0.0
            hint, certain = _SIGN_FLIP_HINT.format(reference=f"{reference.fraction:g}"), False
        elif not moved and reference.fraction > 0:
            hint = ("the policy's parameters did not change: write the accepted step into the policy's own "
                    "parameters (in place), as the line search's evaluate does for each try.")
        elif moved and reference.fraction == 0 and fraction == 0.0:
            hint = _NOT_RESTORED_HINT
        elif kl > batch.max_kl * (1 + 1e-3):
            hint = (f"the step's real KL is {kl:.4g} > max_kl = {batch.max_kl}: the line search must check the KL of "
                    "each try, from the old policy to the new one, and leave the parameters at the accepted try.")
        else:
            for label, variant in (
                    ("the step follows the plain gradient g, not the natural gradient: solve (F + cg_damping I) s = g "
                     "with conjugate gradient (your Fisher-vector product) and step along s.",
                     dict(direction="gradient")),
                    ("no line search: the full step was taken without checking the real KL and improvement.",
                     dict(line_search=False)),
                    ("the step length was computed from an undamped product F s: use the same damped product "
                     "(F + cg_damping I) s that conjugate gradient used, "
                     "beta = sqrt(2 max_kl / s.(F + cg_damping I)s).",
                     dict(damped_length=False)),
                    ("the prediction passed to line_search must be the full step's, g . (beta s), not g . s.",
                     dict(prediction="unscaled")),
                    ("the surrogate is the probability ratio's, mean(exp(log_prob - old_log_prob) * A), not "
                     "mean(log_prob * A): their gradients agree at the old policy, their improvements do not.",
                     dict(surrogate="log_prob")),
                    ("the ratio is upside down: it is pi_new / pi_old, exp(log_prob - old_log_prob); yours, "
                     "pi_old / pi_new, has the gradient -g at the old policy, so the step goes downhill on the real "
                     "surrogate.", dict(surrogate="inverse_ratio")),
                    ("the step length lost its 2: beta = sqrt(2 max_kl / s.(F + cg_damping I)s), from "
                     "1/2 beta^2 s.(F + cg_damping I)s = max_kl; without the 2 the quadratic KL is half of max_kl.",
                     dict(without_two=True)),
                    ("the Fisher-vector product is 0 (only the damping is left): the KL's old logits must be a "
                     "constant, computed under torch.no_grad() or detached; KL(pi || pi) with both sides on the graph "
                     "has a zero Hessian.", dict(fisher_zero=True))):
                wrong = reference_trpo_step(batch, **variant).parameters - old_params
                if float((step - wrong).norm() / wrong.norm().clamp_min(1e-12)) < 1e-2:
                    hint = label
                    break
        raise AssertionError(_message(
            name, f"your update differs from the package's: relative distance between the two steps {distance:.3g}, "
                  f"real KL {kl:.4g} (reference {reference.kl:.4g}), surrogate improvement {improvement:.4g} "
                  f"(reference {reference.improvement:.4g}).", hint, hint is not None and certain, case,
            concept=("the surrogate's gradient g at theta_old, s from conjugate gradient on (F + cg_damping I) s = g, "
                     "the full step sqrt(2 max_kl / s.(F + cg_damping I)s) s with the same damped product, then the "
                     "line search along it with the real KL and surrogate"),
            show_values=False, note=changed_note))
    seeds = ", ".join(str(seed) for seed in sorted({seed for seed, _, _ in cases}))
    print(f"✓ {name}: {len(cases)} cases (CartPole batches collected with seeds {seeds}) updated like the package's "
          f"TRPO, {len(cases)} cases passed")


CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "categorical_kl": check_categorical_kl,
    "fisher_vector_product": check_fisher_vector_product,
    "conjugate_gradient": check_conjugate_gradient,
    "line_search": check_line_search,
}

EXERCISES: list[Exercise] = [CATEGORICAL_KL]  # the harness-checked one; the other three have their own checks

REFERENCES: dict[str, Callable[..., Any]] = {
    "categorical_kl": categorical_kl,
    "fisher_vector_product": fisher_vector_product,
    "conjugate_gradient": conjugate_gradient,
    "line_search": backtracking_line_search,
}

__all__ = ["CATEGORICAL_KL", "check_categorical_kl", "check_fisher_vector_product", "check_conjugate_gradient",
           "check_line_search", "check_trpo_step", "TRPOBatch", "TRPOStep", "cartpole_batch", "batch_surrogate", "batch_kl",
           "reference_trpo_step", "CHECKS", "EXERCISES", "REFERENCES"]
