"""Chapter 07's checks (pgcourse/checks/ch07_trpo.py): the references pass, the known wrong versions are named."""
from __future__ import annotations

import pytest
import torch

from pgcourse.checks import ch07_trpo
from pgcourse.trust_region import (backtracking_line_search, categorical_kl, conjugate_gradient,
                                   fisher_vector_product, flat_grad)


def test_the_references_pass(capsys):
    ch07_trpo.check_categorical_kl(categorical_kl)
    ch07_trpo.check_fisher_vector_product(fisher_vector_product)
    ch07_trpo.check_conjugate_gradient(lambda *args: conjugate_gradient(*args).x)
    ch07_trpo.check_conjugate_gradient(conjugate_gradient)  # an object with .x is accepted too
    ch07_trpo.check_line_search(backtracking_line_search)
    assert capsys.readouterr().out.count("✓") == 5


def test_honest_variants_pass():
    # a KL through torch.distributions; a line search written with a while loop
    def kl_via_torch(old_logits, new_logits):
        return torch.distributions.kl_divergence(torch.distributions.Categorical(logits=old_logits),
                                                 torch.distributions.Categorical(logits=new_logits))

    def while_search(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
        fraction, tries = 1.0, 0
        while tries < max_backtracks:
            improvement, kl = evaluate(fraction)
            tries += 1
            if kl <= max_kl and improvement > accept_ratio * expected_improvement * fraction:
                return fraction
            fraction *= shrink
        return 0.0

    def fvp_two_steps(kl_grad, parameters, vector, damping):
        grads = torch.autograd.grad((kl_grad * vector).sum(), parameters, retain_graph=True)
        return torch.cat([g.reshape(-1) for g in grads]) + damping * vector

    ch07_trpo.check_categorical_kl(kl_via_torch)
    ch07_trpo.check_line_search(while_search)
    ch07_trpo.check_fisher_vector_product(fvp_two_steps)


WRONG_KL = {
    "wrong way round": lambda old, new: categorical_kl(new, old),
    "not weighted": lambda old, new: (old.log_softmax(-1) - new.log_softmax(-1)).sum(-1),
    "one number": lambda old, new: categorical_kl(old, new).mean(),
}


@pytest.mark.parametrize("expected, wrong", list(WRONG_KL.items()), ids=list(WRONG_KL))
def test_wrong_kls_are_named(expected, wrong):
    with pytest.raises(AssertionError, match=expected):
        ch07_trpo.check_categorical_kl(wrong)


def _fvp_without_damping(kl_grad, parameters, vector, damping):
    return flat_grad((kl_grad * vector).sum(), parameters, retain_graph=True)


def _fvp_damping_multiplies(kl_grad, parameters, vector, damping):
    return (1 + damping) * flat_grad((kl_grad * vector).sum(), parameters, retain_graph=True)


def _fvp_frees_the_graph(kl_grad, parameters, vector, damping):
    return flat_grad((kl_grad * vector).sum(), parameters) + damping * vector


@pytest.mark.parametrize("wrong, expected", [(_fvp_without_damping, "damping is missing"),
                                             (_fvp_damping_multiplies, "damping multiplies"),
                                             (_fvp_frees_the_graph, "retain_graph=True")])
def test_wrong_fisher_vector_products_are_named(wrong, expected):
    with pytest.raises(AssertionError, match=expected):
        ch07_trpo.check_fisher_vector_product(wrong)


def _cg_exact(matvec, b, iterations=10, residual_tol=1e-10):
    columns = [matvec(column) for column in torch.eye(len(b), dtype=b.dtype)]
    return torch.linalg.solve(torch.stack(columns, 1), b)


@pytest.mark.parametrize("wrong, expected", [(ch07_trpo._steepest_descent, "steepest descent"),
                                             (ch07_trpo._cg_swapped_beta, "upside down"),
                                             (_cg_exact, "products for iterations")])
def test_wrong_conjugate_gradients_are_named(wrong, expected):
    with pytest.raises(AssertionError, match=expected):
        ch07_trpo.check_conjugate_gradient(wrong)


def _never_shrinks(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    for _ in range(max_backtracks):
        improvement, kl = evaluate(1.0)
        if kl <= max_kl and improvement > 0:
            return 1.0
    return 0.0


def _ignores_kl(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    fraction = 1.0
    for _ in range(max_backtracks):
        improvement, _ = evaluate(fraction)
        if improvement > accept_ratio * expected_improvement * fraction:
            return fraction
        fraction *= shrink
    return 0.0


def _accepts_any_improvement(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5,
                             accept_ratio=0.1):
    fraction = 1.0
    for _ in range(max_backtracks):
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > 0:
            return fraction
        fraction *= shrink
    return 0.0


def _rejects_by_comparison(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5,
                           accept_ratio=0.1):
    fraction = 1.0
    for _ in range(max_backtracks):
        improvement, kl = evaluate(fraction)
        if not (kl > max_kl or improvement <= accept_ratio * expected_improvement * fraction):
            return fraction  # NaN passes both "rejection" tests
        fraction *= shrink
    return 0.0


@pytest.mark.parametrize("wrong, expected", [(_never_shrinks, "never shrinks"), (_ignores_kl, "KL was not checked"),
                                             (_accepts_any_improvement, "accept_ratio x expected_improvement"),
                                             (_rejects_by_comparison, "NaN")])
def test_wrong_line_searches_are_named(wrong, expected):
    with pytest.raises(AssertionError, match=expected):
        ch07_trpo.check_line_search(wrong)
