"""Exercise 07's conjugate gradient: the known wrong versions ``check_conjugate_gradient`` (:mod:`.ch07_trpo`)
replays, each with the hint that names it.

Each takes the reference's arguments ``(matrix_vector_product, b, iterations, residual_tol)`` and returns ``x``. The
check names one only when it reproduces the learner's ``x`` on every system.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ...rl.trust_region import conjugate_gradient


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


def _cg_returns_residual(matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10,
                         residual_tol: float = 1e-10) -> Tensor:
    """The residual ``b - A x`` of conjugate gradient's iterate returned in place of ``x``."""
    return b - matvec(conjugate_gradient(matvec, b, iterations, residual_tol).x)


def _cg_from_b(matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10,
               residual_tol: float = 1e-10) -> Tensor:
    """Conjugate gradient started from x = b (its residual b - A b costs a product), not from x = 0."""
    residual = b - matvec(b)
    return b + conjugate_gradient(matvec, residual, iterations, residual_tol).x


def _cg_recomputed_residual(matvec: Callable[[Tensor], Tensor], b: Tensor, iterations: int = 10,
                            residual_tol: float = 1e-10) -> Tensor:
    """Conjugate gradient whose residual is recomputed as b - A x each iteration (a second product)."""
    x, direction = torch.zeros_like(b), b.clone()
    residual_sq = float(b @ b)
    for _ in range(iterations):
        if residual_sq < residual_tol:
            break
        product = matvec(direction)
        x = x + residual_sq / float(direction @ product) * direction
        residual = b - matvec(x)
        new_sq = float(residual @ residual)
        direction, residual_sq = residual + new_sq / residual_sq * direction, new_sq
    return x


# (hint, the wrong version) for more products than iterations: the first that reproduces x on every system is named
_CG_EXTRA_PRODUCTS: list[tuple[str, Callable[..., Tensor]]] = [
    ("one product too many: the loop runs iterations + 1 times (range(iterations + 1), or k <= iterations). Run "
     "it `iterations` times, one product each.",
     lambda matvec, b, iterations, tol: conjugate_gradient(matvec, b, iterations + 1, tol).x),
    ("x starts at b, not at 0: conjugate gradient starts from x = 0, so the first residual is b itself and costs "
     "no product (r = b - A x with x = b spends one, and the iterates are not the reference's).", _cg_from_b),
    ("one product per iteration (A times the search direction); the residual is updated from that product, not "
     "recomputed as b - A x.", _cg_recomputed_residual),
]


# (hint, the wrong version) for an x that differs: the first that reproduces x on every system is named
CG_MISTAKES: list[tuple[str, Callable[..., Tensor]]] = [
    ("the search direction is the residual itself: that is steepest descent, which zig-zags. Each new "
     "direction must be the residual plus beta times the previous direction (conjugate to the earlier ones).",
     _steepest_descent),
    ("beta is upside down: it is the NEW residual's squared norm over the OLD one's.", _cg_swapped_beta),
    # a student's try (issue 49): x stepped backwards, the residual updated right, so every x is -expected
    ("your x is exactly minus the solution's iterate (every sign flipped, the sizes right): each iteration moves x "
     "forward along the direction, x plus alpha times p, while the residual goes down by alpha times A p; you "
     "subtracted the step from x.",
     lambda matvec, b, iterations, tol: -conjugate_gradient(matvec, b, iterations, tol).x),
    ("you return the residual r = b - A x (it shrinks to 0 as x converges, so it looked like a solution on the "
     "systems solved exactly): return x, the estimate of the solution.", _cg_returns_residual),
]
