"""Checks for chapter 07 (TRPO and the natural gradient): ``categorical_kl``, ``fisher_vector_product``,
``conjugate_gradient`` and ``line_search``.

``categorical_kl`` is a tensor function checked by the harness. The other three take callables or an autograd
graph, so each has its own check: it builds small problems whose answer is known exactly (an explicit Fisher
matrix from full second derivatives of a tiny policy, symmetric positive-definite systems, a line search over a
KL that grows with the step), compares, and names the classic wrong versions (the damping forgotten or
multiplied in, a search direction never made conjugate, a line search that never shrinks or ignores the KL).
The reference solutions are in :mod:`pgcourse.trust_region`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..trust_region import backtracking_line_search, categorical_kl, conjugate_gradient, flat_grad
from .harness import Case, Exercise, Mistake, _call_learner, _make_check, _message, _randn

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
                               new_logits=_randn(g, batch, actions, scale=scale))))
    cases.append(Case("float64 logits", dict(old_logits=_randn(g, 4, 2, dtype=torch.float64),
                                             new_logits=_randn(g, 4, 2, dtype=torch.float64))))
    return cases


def _probabilities_kl(old_logits: Tensor, new_logits: Tensor) -> Tensor:
    old_p, new_p = old_logits.softmax(-1), new_logits.softmax(-1)
    return (old_p * (old_p.log() - new_p.log())).sum(-1)


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
    ],
    grad_args=("new_logits",),
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
    return parameters, kl_grad, fisher


def _fvp_problem(fn_output: Any, expected: Tensor) -> Tensor | None:
    if isinstance(fn_output, Tensor) and fn_output.shape == expected.shape:
        return fn_output.detach()
    return None


def check_fisher_vector_product(fn: Callable[..., Any]) -> None:
    """Check ``fisher_vector_product(kl_grad, parameters, vector, damping) -> [P]`` against ``(F + damping I) v``
    with ``F`` formed explicitly (full second derivatives of a tiny policy's KL, in float64), for several
    vectors and dampings, called repeatedly on the same ``kl_grad`` (conjugate gradient calls it ~10 times)."""
    name = "fisher_vector_product"
    checked = 0
    for seed in (0, 1):
        parameters, kl_grad, fisher = _tiny_policy_problem(seed)
        size = fisher.shape[0]
        eye = torch.eye(size, dtype=fisher.dtype)
        for number, damping in enumerate((0.0, 0.1, 1.0)):
            vector = torch.randn(size, generator=torch.Generator().manual_seed(100 * seed + number),
                                 dtype=fisher.dtype)
            case = Case(f"a tiny tanh policy (seed {seed}, {size} parameters), damping={damping}, call "
                        f"{number + 1} on the same kl_grad", dict(vector=vector, damping=damping))
            try:
                output = _call_learner(fn, name, [kl_grad, parameters, vector, damping],
                                       ["kl_grad", "parameters", "vector", "damping"])
            except Exception as error:
                if number > 0 and "backward through the graph a second time" in str(error):
                    raise AssertionError(_message(
                        name, "the second call on the same kl_grad crashed: the graph was freed by the first.",
                        "keep kl_grad's graph: differentiate with retain_graph=True, because conjugate gradient "
                        "asks for many products of the same Fisher matrix.", True, case, show_values=False)) from None
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
            checked += 1
    print(f"✓ {name}: {checked} products matched the explicit Fisher matrix")


# --------------------------------------------------------------------------------------------------
# conjugate_gradient
# --------------------------------------------------------------------------------------------------


def _spd(size: int, seed: int, conditioning: float = 1.0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=gen, dtype=torch.float64)
    return a @ a.T + conditioning * size * torch.eye(size, dtype=torch.float64)


def _steepest_descent(matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10,
                      residual_tol: float = 1e-10) -> Tensor:
    x, residual = torch.zeros_like(b), b.clone()
    for _ in range(iterations):
        if float(residual @ residual) < residual_tol:
            break
        product = matvec(residual)
        step = float(residual @ residual) / float(residual @ product)
        x = x + step * residual
        residual = residual - step * product
    return x


def _cg_swapped_beta(matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10,
                     residual_tol: float = 1e-10) -> Tensor:
    x, residual, direction = torch.zeros_like(b), b.clone(), b.clone()
    residual_sq = float(residual @ residual)
    for _ in range(iterations):
        if residual_sq < residual_tol:
            break
        product = matvec(direction)
        step = residual_sq / float(direction @ product)
        x = x + step * direction
        residual = residual - step * product
        new_sq = float(residual @ residual)
        direction = residual + (residual_sq / new_sq) * direction  # beta upside down
        residual_sq = new_sq
    return x


def _x_of(output: Any) -> Any:
    return output.x if hasattr(output, "x") and isinstance(getattr(output, "x"), Tensor) else output


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
    mistakes = [
        ("the search direction is the residual itself: that is steepest descent, which zig-zags. Each new "
         "direction must be the residual plus beta times the previous direction (conjugate to the earlier ones).",
         _steepest_descent),
        ("beta is upside down: it is the NEW residual's squared norm over the OLD one's.", _cg_swapped_beta),
    ]
    for number, (description, matrix, iterations) in enumerate(problems):
        b = torch.randn(matrix.shape[0], generator=torch.Generator().manual_seed(50 + number), dtype=torch.float64)
        products: list[Tensor] = []

        def matvec(vector: Tensor, matrix: Tensor = matrix) -> Tensor:
            products.append(vector)
            return matrix @ vector

        case = Case(description, dict(matrix=matrix, b=b, iterations=iterations))
        output = _x_of(_call_learner(fn, name, [matvec, b, iterations, 1e-20],
                                     ["matrix_vector_product", "b", "iterations", "residual_tol"]))
        expected = conjugate_gradient(lambda v, matrix=matrix: matrix @ v, b, iterations, 1e-20).x
        if not isinstance(output, Tensor) or output.shape != b.shape:
            raise AssertionError(_message(name, f"expected x of shape {tuple(b.shape)}, got {type(output).__name__}.",
                                          "return the solution x (or an object whose .x is it).", True, case,
                                          expected=expected, received=output))
        if len(products) > iterations:
            raise AssertionError(_message(
                name, f"{len(products)} matrix-vector products for iterations={iterations}.",
                "one product per iteration (A times the search direction); the residual is updated from that "
                "product, not recomputed as b - A x.", True, case, show_values=False))
        if not torch.allclose(output.detach(), expected, rtol=1e-6, atol=1e-8):
            hint = next((text for text, wrong in mistakes
                         if torch.allclose(output.detach(), wrong(lambda v, matrix=matrix: matrix @ v, b, iterations,
                                                                  1e-20), rtol=1e-6, atol=1e-8)), None)
            exact = torch.linalg.solve(matrix, b)
            if hint is None and torch.allclose(output.detach(), exact, rtol=1e-5, atol=1e-7) and iterations < len(b):
                hint = ("you solved the system exactly (or ran more iterations than asked): TRPO stops after "
                        "`iterations` products, an approximate natural gradient is enough.")
            raise AssertionError(_message(
                name, "x differs from conjugate gradient's iterate.", hint, hint is not None, case,
                concept=("start from x = 0 with residual r = b and direction p = r; each iteration steps along p by "
                         "r.r / p.Ap, updates r with that product, and makes the next direction the new residual "
                         "plus (new r.r / old r.r) times the old direction"),
                expected=expected, received=output.detach()))
    zero_products: list[Tensor] = []
    b = torch.zeros(4, dtype=torch.float64)
    output = _x_of(_call_learner(fn, name, [lambda v: zero_products.append(v) or 2 * v, b, 10, 1e-10]))
    if not isinstance(output, Tensor) or not torch.equal(output, b) or zero_products:
        raise AssertionError(_message(
            name, "for b = 0 the answer is x = 0, with no product needed.",
            "stop as soon as the residual's squared norm is below residual_tol (check before each product).",
            True, Case("b = 0", dict(b=b)), expected=b, received=output))
    print(f"✓ {name}: {len(problems) + 1} systems solved like the reference")


# --------------------------------------------------------------------------------------------------
# line_search
# --------------------------------------------------------------------------------------------------


def _fraction_of(output: Any) -> Any:
    return output.fraction if hasattr(output, "fraction") else output


def check_line_search(fn: Callable[..., Any]) -> None:
    """Check ``line_search(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio) ->
    fraction`` (a float, or an object with ``.fraction``; 0.0 when no step is accepted) on searches whose answer
    is known: a KL that grows with the step, a surrogate that gets worse, NaNs, improvements below the accepted
    ratio of the prediction."""
    name = "line_search"
    scenarios = [
        ("KL = 0.04 f^2, improvement = f (the full step is twice too far: accept f = 0.5)",
         lambda f: (f, 0.04 * f * f), 1.0, 0.01, 10, 0.5, 0.1, 0.5,
         "the KL was not checked: accept a step only if its KL is at most max_kl (the full step here reaches 0.04)."),
        ("KL = 0.01 f, improvement = f (the full step is on the constraint's edge: accept f = 1)",
         lambda f: (f, 0.01 * f), 1.0, 0.01, 10, 0.5, 0.1, 1.0,
         "the full step satisfies both conditions: try fraction 1 first (KL <= max_kl counts as inside)."),
        ("the surrogate gets worse at every step: accept nothing (0.0)",
         lambda f: (-f, 0.0), 1.0, 0.01, 5, 0.5, 0.1, 0.0,
         "a step that makes the surrogate worse is never accepted, even inside the trust region: return 0.0."),
        ("improvement = 0.05 f, 10% of the prediction = 0.1 f: too little everywhere (0.0)",
         lambda f: (0.05 * f, 0.0), 1.0, 0.01, 6, 0.5, 0.1, 0.0,
         "compare the real improvement with accept_ratio x expected_improvement x fraction, not with 0."),
        ("NaN KL for large steps, fine from f = 0.25 (shrink 0.5)",
         lambda f: (f, float("nan") if f > 0.3 else 0.0), 1.0, 0.01, 10, 0.5, 0.1, 0.25,
         "a NaN KL or improvement must count as a rejection (every comparison with NaN is False: test for "
         "acceptance, not for rejection)."),
        ("shrink = 0.8, KL = 0.02 f^2: accept 0.8^n, the first with KL <= 0.01 (0.8^2 = 0.64)",
         lambda f: (f, 0.02 * f * f), 1.0, 0.01, 10, 0.8, 0.1, 0.64,
         "multiply the fraction by `shrink` after each rejected try (fractions 1, shrink, shrink^2, ...)."),
    ]
    for description, evaluate, expected_improvement, max_kl, backtracks, shrink, ratio, expected, hint in scenarios:
        tried: list[float] = []

        def counted(fraction: float, evaluate=evaluate) -> tuple[float, float]:
            tried.append(float(fraction))
            return evaluate(fraction)

        case = Case(description, dict(expected_improvement=expected_improvement, max_kl=max_kl,
                                      max_backtracks=backtracks, shrink=shrink, accept_ratio=ratio))
        output = _fraction_of(_call_learner(
            fn, name, [counted, expected_improvement, max_kl, backtracks, shrink, ratio],
            ["evaluate", "expected_improvement", "max_kl", "max_backtracks", "shrink", "accept_ratio"]))
        reference = backtracking_line_search(evaluate, expected_improvement, max_kl, backtracks, shrink, ratio)
        assert math.isclose(reference.fraction, expected, abs_tol=1e-12), (description, reference)
        if len(tried) > backtracks:
            raise AssertionError(_message(name, f"{len(tried)} tries for max_backtracks={backtracks}.",
                                          "stop after max_backtracks tries and return 0.0.", True, case,
                                          show_values=False))
        if not isinstance(output, (int, float)) or isinstance(output, bool) or not math.isclose(
                float(output), expected, abs_tol=1e-9):
            never_shrinks = len(tried) > 1 and all(t == 1.0 for t in tried)
            chosen = ("the line search never shrinks: every try was the full step (fraction 1)."
                      if never_shrinks and expected != 1.0 else hint)
            raise AssertionError(_message(
                name, f"accepted fraction {output!r}, expected {expected!r} (fractions tried: {tried}).", chosen,
                never_shrinks and expected != 1.0, case, expected=expected, received=output, show_values=False))
    print(f"✓ {name}: {len(scenarios)} searches ended where the reference's do")


CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "categorical_kl": check_categorical_kl,
    "fisher_vector_product": check_fisher_vector_product,
    "conjugate_gradient": check_conjugate_gradient,
    "line_search": check_line_search,
}

REFERENCES: dict[str, Callable[..., Any]] = {"categorical_kl": categorical_kl}

__all__ = ["CATEGORICAL_KL", "check_categorical_kl", "check_fisher_vector_product", "check_conjugate_gradient",
           "check_line_search", "CHECKS", "REFERENCES"]
