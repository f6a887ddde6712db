"""Chapter 07's checks (pgcourse/checks/ch07_trpo.py): the references pass, the known wrong versions are named."""
from __future__ import annotations

import dataclasses

import numpy as np
import math

import pytest
import torch

from pgcourse.course.checks import ch07_trpo
from pgcourse.rl.trust_region import (backtracking_line_search, categorical_kl, conjugate_gradient,
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


WRONG_KL["must stay connected to new_logits"] = lambda old, new: categorical_kl(old, new.detach())


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
                                             (_fvp_frees_the_graph, "retain_graph set to True")])
def test_wrong_fisher_vector_products_are_named(wrong, expected):
    with pytest.raises(AssertionError, match=expected):
        ch07_trpo.check_fisher_vector_product(wrong)


def _cg_exact(matvec, b, iterations=10, residual_tol=1e-10):
    columns = [matvec(column) for column in torch.eye(len(b), dtype=b.dtype)]
    return torch.linalg.solve(torch.stack(columns, 1), b)


def _cg_tolerance_on_the_norm(matvec, b, iterations=10, residual_tol=1e-10, stop_on_norm=True, check_once=False):
    """A learner's CG whose early stop compares the residual's norm (not its square), or is checked only once
    (exercise 07's third read: the check tested the stop only with b = 0)."""
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), float(r @ r)
    for i in range(iterations):
        size = rr ** 0.5 if stop_on_norm else rr
        if (i == 0 or not check_once) and size < residual_tol:
            break
        ap = matvec(p)
        alpha = rr / float(p @ ap)
        x, r = x + alpha * p, r - alpha * ap
        new = float(r @ r)
        if new == 0.0:
            break
        p, rr = r + (new / rr) * p, new
    return x


def _cg_tolerance_checked_once(matvec, b, iterations=10, residual_tol=1e-10):
    return _cg_tolerance_on_the_norm(matvec, b, iterations, residual_tol, stop_on_norm=False, check_once=True)


@pytest.mark.parametrize("wrong, expected", [(ch07_trpo._steepest_descent, "steepest descent"),
                                             (ch07_trpo._cg_swapped_beta, "upside down"),
                                             (_cg_exact, "products for iterations"),
                                             (_cg_tolerance_on_the_norm, "squared norm"),
                                             (_cg_tolerance_checked_once, "squared norm")])
def test_wrong_conjugate_gradients_are_named(wrong, expected):
    with pytest.raises(AssertionError, match=expected):
        ch07_trpo.check_conjugate_gradient(wrong)


def _cg_returning_the_residual(matvec, b, iterations=10, residual_tol=1e-10):
    """A learner's CG that returns its residual r in place of x (issue 49: "No known mistake" before)."""
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), float(r @ r)
    for _ in range(iterations):
        if rr < residual_tol:
            break
        ap = matvec(p)
        alpha = rr / float(p @ ap)
        x, r = x + alpha * p, r - alpha * ap
        new = float(r @ r)
        p, rr = r + (new / rr) * p, new
    return r


def _cg_never_moving(matvec, b, iterations=10, residual_tol=1e-10):
    """x stays 0 (the update of x forgotten): its output is near the residual only where that is ~0."""
    for _ in range(iterations):
        matvec(b)
    return torch.zeros_like(b)


def test_a_cg_returning_its_residual_is_named_and_a_zero_one_is_not_told_so():
    """Issue 49: a conjugate gradient that returns the residual (~1e-17 on the systems it solves exactly) got "No
    known mistake". A mistake is named only when it explains every system, and not only where its output is ~0:
    a CG that never moves x (zeros, as close to the residual on the exact systems) is not told it returns the
    residual."""
    with pytest.raises(AssertionError, match="you return the residual r = b - A x"):
        ch07_trpo.check_conjugate_gradient(_cg_returning_the_residual)
    with pytest.raises(AssertionError) as zero:
        ch07_trpo.check_conjugate_gradient(_cg_never_moving)
    assert "residual r = b - A x" not in str(zero.value) and "No known mistake" in str(zero.value), str(zero.value)


def _rejects_only_a_nan_kl(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    """Tests for rejection: a NaN KL is caught by its explicit test, a NaN improvement slips through (exercise 07's
    third read: the check had no NaN-improvement case)."""
    fraction = 1.0
    for _ in range(max_backtracks):
        improvement, kl = evaluate(fraction)
        if math.isnan(kl) or kl > max_kl or improvement < accept_ratio * expected_improvement * fraction:
            fraction *= shrink
            continue
        return fraction
    return 0.0


def test_a_line_search_that_accepts_a_nan_improvement_is_named():
    with pytest.raises(AssertionError, match="NaN KL or improvement must count as a rejection"):
        ch07_trpo.check_line_search(_rejects_only_a_nan_kl)


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


def _unscaled_ratio(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    fraction = 1.0
    for _ in range(max_backtracks):
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > accept_ratio * expected_improvement:  # no x fraction
            return fraction
        fraction *= shrink
    return 0.0


def _returns_predicted_improvement(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5,
                                   accept_ratio=0.1):
    return backtracking_line_search(evaluate, expected_improvement, max_kl, max_backtracks, shrink,
                                    accept_ratio).fraction * expected_improvement


def _one_try_short(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    return backtracking_line_search(evaluate, expected_improvement, max_kl, max_backtracks - 1, shrink,
                                    accept_ratio).fraction


@pytest.mark.parametrize("wrong, expected", [(_never_shrinks, "never shrinks"), (_ignores_kl, "KL was not checked"),
                                             (_accepts_any_improvement, "accept_ratio x expected_improvement"),
                                             (_rejects_by_comparison, "NaN"),
                                             (_unscaled_ratio, "Probable mistake: the required improvement is not "
                                                               "scaled by the fraction tried"),
                                             (_returns_predicted_improvement, "Probable mistake: you returned the "
                                                                              "improvement the linear model"),
                                             (_one_try_short, "Probable mistake: one try short")])
def test_wrong_line_searches_are_named(wrong, expected):
    with pytest.raises(AssertionError, match=expected):
        ch07_trpo.check_line_search(wrong)


# -- trpo_step: one whole update, assembled from the four pieces ------------------------------------------------------
def _update_like(direction="natural", line_search=True, returned=None, damped_length=True, **variant):
    """A trpo_step that moves the policy as the package's update does, with one knob turned (``returned``: a value
    to return instead of the fraction, or a function of the step giving it)."""
    def trpo_step(policy, obs, actions, old_log_probs, advantages, max_kl, cg_iters, cg_damping):
        batch = ch07_trpo.TRPOBatch(policy, obs, actions, old_log_probs, advantages, max_kl, cg_iters, cg_damping,
                                    10, 0.5, 0.1)
        step = ch07_trpo.reference_trpo_step(batch, direction=direction, line_search=line_search,
                                             damped_length=damped_length, **variant)
        torch.nn.utils.vector_to_parameters(step.parameters, policy.parameters())
        if returned is None:
            return step.fraction
        return returned(step) if callable(returned) else returned
    return trpo_step


def _trpo_step_via_distributions(policy, obs, actions, old_log_probs, advantages, max_kl, cg_iters, cg_damping,
                                 bug=None):
    """An honest variant: log-probs and KL through torch.distributions, flat gradients by hand (``bug``: one
    learner's mistake switched on)."""
    if bug == "advantages_restandardised_in_place":
        advantages.div_(advantages.std() + 1e-8)
    parameters = list(policy.parameters())
    theta_old = torch.nn.utils.parameters_to_vector(parameters).detach()
    with torch.no_grad():
        old = torch.distributions.Categorical(logits=policy(obs))

    def surrogate():
        new_log_probs = torch.distributions.Categorical(logits=policy(obs)).log_prob(actions)
        if bug == "inverse_ratio":  # pi_old / pi_new
            return (torch.exp(old_log_probs - new_log_probs) * advantages).mean()
        return (torch.exp(new_log_probs - old_log_probs) * advantages).mean()

    def mean_kl():
        return torch.distributions.kl_divergence(old, torch.distributions.Categorical(logits=policy(obs))).mean()

    def flat(grads):
        return torch.cat([g.reshape(-1) for g in grads])

    surrogate_old = surrogate()
    gradient = flat(torch.autograd.grad(surrogate_old, parameters))
    kl_grad = flat(torch.autograd.grad(mean_kl(), parameters, create_graph=True))

    def fisher(vector):
        return fisher_vector_product(kl_grad, parameters, vector, cg_damping)

    direction = conjugate_gradient(fisher, gradient, cg_iters).x
    if bug == "downhill":
        direction = -direction
    full_step = ((1 if bug == "without_two" else 2) * max_kl / float(direction @ fisher(direction))) ** 0.5 * direction
    before = float(surrogate_old.detach())

    def evaluate(fraction):
        if bug != "tries_not_written":
            torch.nn.utils.vector_to_parameters(theta_old + fraction * full_step, parameters)
        with torch.no_grad():
            return float(surrogate()) - before, float(mean_kl())

    fraction = backtracking_line_search(evaluate, float(gradient @ full_step), max_kl).fraction
    if fraction > 0 or bug != "theta_old_not_restored":
        torch.nn.utils.vector_to_parameters(theta_old + fraction * full_step, parameters)
    return fraction


def _trpo_step_with(bug):
    def trpo_step(*args):
        return _trpo_step_via_distributions(*args, bug=bug)
    trpo_step.__name__ = f"trpo_step_{bug}"
    return trpo_step


def test_trpo_step_reference_and_an_honest_variant_pass(capsys):
    ch07_trpo.check_trpo_step(_update_like())
    ch07_trpo.check_trpo_step(_trpo_step_via_distributions)
    assert capsys.readouterr().out.count("✓ trpo_step: 4 cases (CartPole batches collected with seeds 0, 1)") == 2


def test_the_fourth_trpo_case_rejects_every_fraction_and_a_downhill_step_is_not_called_unwritten():
    """max_kl=1e8: the package's line search accepts no fraction (so theta_old must be restored); the sign-flipped
    step is told that its steps go downhill, not that it forgot to write the step into the policy."""
    seed, overrides, _ = ch07_trpo.TRPO_STEP_CASES[3]
    batch = dataclasses.replace(ch07_trpo.cartpole_batch(seed), **overrides)
    assert ch07_trpo.reference_trpo_step(batch).fraction == 0.0
    with pytest.raises(AssertionError) as info:
        ch07_trpo.check_trpo_step(_trpo_step_with("downhill"))
    assert "parameters did not change" not in str(info.value)


def test_the_third_trpo_case_needs_the_line_search():
    seed, overrides, _ = ch07_trpo.TRPO_STEP_CASES[2]
    batch = ch07_trpo.cartpole_batch(seed, **overrides)
    assert ch07_trpo.reference_trpo_step(batch).fraction < 1.0
    assert ch07_trpo.reference_trpo_step(batch, line_search=False).kl > batch.max_kl


def _policy_unchanged(policy, obs, actions, old_log_probs, advantages, max_kl, cg_iters, cg_damping):
    return 1.0


@pytest.mark.parametrize("wrong, expected", [
    (_update_like(direction="gradient"), "plain gradient"),
    (_update_like(line_search=False), "the line search must check the KL"),
    (_update_like(returned=0.5), "return the fraction of the full step the line search accepted"),
    (_policy_unchanged, "parameters did not change"),
    (_update_like(direction="reversed"), "that is what a step that goes downhill gives"),
    (_update_like(prediction="unscaled"), "must be the full step's, g . \\(beta s\\), not g . s"),
    (_update_like(surrogate="log_prob"), "not mean\\(log_prob \\* A\\)"),
    (_trpo_step_with("downhill"), "that is what a step that goes downhill gives"),
    (_trpo_step_with("theta_old_not_restored"), "write theta_old back into the policy"),
    (_trpo_step_with("advantages_restandardised_in_place"), "an operation wrote into `advantages`"),
    (_trpo_step_with("tries_not_written"), "Possible cause .* never writes theta_old \\+ fraction x full step"),
    (_trpo_step_with("inverse_ratio"), "Probable mistake: the ratio is upside down"),
    (_trpo_step_with("without_two"), "Probable mistake: the step length lost its 2"),
], ids=["plain gradient", "no line search", "wrong fraction returned", "policy unchanged", "ascent sign flipped",
        "prediction g.s, not g.(beta s)", "surrogate mean(log_prob * A)", "ascent sign flipped, learner-style",
        "theta_old not restored", "advantages changed in place", "tries never written into the policy",
        "ratio upside down (a student's try: 'No known mistake')", "step length without the 2 (the same)"])
def test_wrong_trpo_steps_are_named(wrong, expected):
    with pytest.raises(AssertionError, match=expected):
        ch07_trpo.check_trpo_step(wrong)


@pytest.mark.parametrize("convert", [float, np.float32, np.float64, torch.tensor,
                                     lambda x: torch.tensor(x, dtype=torch.float64)],
                         ids=["float", "np.float32", "np.float64", "0-d float32 tensor", "0-d float64 tensor"])
def test_a_fraction_of_any_real_number_type_is_accepted(convert, capsys):
    ch07_trpo.check_line_search(lambda *args: convert(backtracking_line_search(*args).fraction))
    ch07_trpo.check_trpo_step(_update_like(returned=lambda step: convert(step.fraction)))
    assert capsys.readouterr().out.count("✓") == 2


@pytest.mark.parametrize("returned", [None, [1.0], True, "1.0"], ids=["None", "list", "bool", "str"])
def test_a_line_search_that_returns_no_number_is_told_to_return_a_float(returned):
    with pytest.raises(AssertionError, match="return a Python float"):
        ch07_trpo.check_line_search(lambda *args: returned)


@pytest.mark.parametrize("returned", [lambda step: None, lambda step: step.parameters, lambda step: "1.0"],
                         ids=["None", "the step vector", "a string"])
def test_a_trpo_step_that_returns_no_number_fails_even_when_the_policy_moved_right(returned):
    with pytest.raises(AssertionError, match=r"return the accepted fraction \(a float\)"):
        ch07_trpo.check_trpo_step(_update_like(returned=returned))


def test_the_undamped_step_length_is_named():
    with pytest.raises(AssertionError, match="the step length was computed from an undamped product F s"):
        ch07_trpo.check_trpo_step(_update_like(damped_length=False))


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_a_step_that_writes_non_finite_parameters_is_told_so_not_that_nothing_changed(value):
    """A step that leaves NaN or inf in the policy has no finite norm: ``float(step.norm()) > 0`` is False for NaN,
    and the check once called such a step "the policy's parameters did not change". It is named for what it is."""
    def non_finite_step(policy, *batch):
        with torch.no_grad():
            list(policy.parameters())[-1].fill_(value)
        return 0.5

    with pytest.raises(AssertionError) as error:
        ch07_trpo.check_trpo_step(non_finite_step)
    assert "the policy's parameters are not finite after your step" in str(error.value), str(error.value)
    assert "did not change" not in str(error.value)


def _trpo_step_without_create_graph(policy, obs, actions, old_log_probs, advantages, max_kl, cg_iters, cg_damping):
    parameters = list(policy.parameters())
    with torch.no_grad():
        old_logits = policy(obs)
    kl_grad = flat_grad(categorical_kl(old_logits, policy(obs)).mean(), parameters)  # no graph kept
    fisher_vector_product(kl_grad, parameters, torch.ones_like(kl_grad), cg_damping)
    return 1.0


def test_a_kl_gradient_without_a_graph_gets_a_hint():
    with pytest.raises(ch07_trpo.LearnerCodeError, match="compute kl_grad with create_graph=True, and keep "
                                                          "categorical_kl connected to new_logits"):
        ch07_trpo.check_trpo_step(_trpo_step_without_create_graph)


def _strict_kl(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    fraction = 1.0
    for _ in range(max_backtracks):
        improvement, kl = evaluate(fraction)
        if math.isfinite(improvement) and math.isfinite(kl) and kl < max_kl \
                and improvement > accept_ratio * expected_improvement * fraction:
            return fraction
        fraction *= shrink
    return 0.0


def _linear_schedule(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    for k in range(max_backtracks):
        fraction = 1.0 - 0.1 * k
        improvement, kl = evaluate(fraction)
        if math.isfinite(improvement) and math.isfinite(kl) and kl <= max_kl \
                and improvement > accept_ratio * expected_improvement * fraction:
            return fraction
    return 0.0


def _best_of_all_tries(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    best, best_improvement = 0.0, -math.inf
    for k in range(max_backtracks):
        fraction = shrink ** k
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > accept_ratio * expected_improvement * fraction and improvement > best_improvement:
            best, best_improvement = fraction, improvement
    return best


def _recursive_search(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1,
                      fraction=1.0):
    """Correct, written otherwise: recursion, acceptance tested with math.isnan, a numpy float returned."""
    if max_backtracks == 0:
        return np.float64(0.0)
    improvement, kl = evaluate(fraction)
    if not (math.isnan(improvement) or math.isnan(kl)) and kl <= max_kl and \
            improvement > accept_ratio * expected_improvement * fraction:
        return np.float64(fraction)
    return _recursive_search(evaluate, expected_improvement, max_kl, max_backtracks - 1, shrink, accept_ratio,
                             fraction * shrink)


def _all_hints():
    from pgcourse.course.checks.ch07_line_search import LINE_SEARCH_MISTAKES
    return [hint for hint, _ in LINE_SEARCH_MISTAKES]


@pytest.mark.parametrize("wrong, named", [
    (_strict_kl, "a KL equal to max_kl is inside the trust region"),
    (_best_of_all_tries, "return the first acceptable fraction"),
    (_linear_schedule, None),
])
def test_a_line_search_is_told_only_the_mistake_its_fractions_reproduce(wrong, named):
    """Issue 49: a scenario's purpose was printed as the cause whatever the code did (a strict KL test was told
    'the KL was not checked', a linear schedule 'a NaN KL must count as a rejection'). Now a known wrong search is
    named only when it returns the learner's fractions; otherwise no cause is named, only what the search tests."""
    with pytest.raises(AssertionError) as failure:
        ch07_trpo.check_line_search(wrong)
    message = str(failure.value)
    others = [hint for hint in _all_hints() if named is None or not hint.startswith(named)]
    assert not [hint for hint in others if hint in message], message
    assert "This search was built to test" in message
    if named is None:
        assert "Possible cause" not in message and "Probable mistake" not in message, message
    else:
        assert named in message, message


def test_a_line_search_written_otherwise_passes(capsys):
    ch07_trpo.check_line_search(_recursive_search)
    assert "✓ line_search" in capsys.readouterr().out


def _old_logits_on_the_graph(policy, obs, actions, old_log_probs, advantages, max_kl, cg_iters, cg_damping):
    """A learner's trpo_step whose KL takes the old logits from the policy itself, not detached: the KL's gradient is
    identically 0, so the Fisher-vector product is the damping alone (issue 49: told 'No known mistake')."""
    parameters = list(policy.parameters())
    theta_old = torch.nn.utils.parameters_to_vector(parameters).detach()
    old_logits_value = policy(obs).detach()

    def surrogate():
        new_log_probs = torch.log_softmax(policy(obs), -1).gather(1, actions[:, None]).squeeze(1)
        return (torch.exp(new_log_probs - old_log_probs) * advantages).mean()

    surrogate_old = surrogate()
    gradient = torch.cat([g.reshape(-1) for g in torch.autograd.grad(surrogate_old, parameters)])
    logits = policy(obs)
    kl_grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(categorical_kl(logits, policy(obs)).mean(),
                                                                    parameters, create_graph=True)])

    def fisher(vector):
        return fisher_vector_product(kl_grad, parameters, vector, cg_damping)

    direction = conjugate_gradient(fisher, gradient, cg_iters).x
    full_step = (2 * max_kl / float(direction @ fisher(direction))) ** 0.5 * direction
    before = float(surrogate_old.detach())

    def evaluate(fraction):
        torch.nn.utils.vector_to_parameters(theta_old + fraction * full_step, parameters)
        with torch.no_grad():
            return float(surrogate()) - before, float(categorical_kl(old_logits_value, policy(obs)).mean())

    fraction = backtracking_line_search(evaluate, float(gradient @ full_step), max_kl).fraction
    torch.nn.utils.vector_to_parameters(theta_old + fraction * full_step, parameters)
    return fraction


def test_a_trpo_step_whose_kl_keeps_the_old_logits_on_the_graph_is_named():
    with pytest.raises(AssertionError, match="Probable mistake: the Fisher-vector product is 0") as failure:
        ch07_trpo.check_trpo_step(_old_logits_on_the_graph)
    assert "No known mistake" not in str(failure.value)


def test_a_kl_through_log_of_softmax_is_named_on_a_peaked_policy():
    """Issue 49: a KL via log(softmax) passed, and gives NaN where a probability underflows to 0 in float32."""
    def through_log_of_softmax(old_logits, new_logits):
        p_old = torch.softmax(old_logits, -1)
        return (p_old * (torch.log(p_old) - torch.log(torch.softmax(new_logits, -1)))).sum(-1)

    with pytest.raises(AssertionError, match="Probable mistake: log\\(softmax\\(...\\)\\) is -inf"):
        ch07_trpo.check_categorical_kl(through_log_of_softmax)
    ch07_trpo.check_categorical_kl(lambda old, new: torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=old), torch.distributions.Categorical(logits=new)))


def _shrinks_before_the_first_try(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5,
                                  accept_ratio=0.1):
    fraction = 1.0
    for _ in range(max_backtracks):
        fraction *= shrink
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > accept_ratio * expected_improvement * fraction:
            return fraction
    return 0.0


def test_a_search_is_not_told_a_mistake_whose_tries_differ_from_its_own():
    """A student's read: a search that never tried fraction 1 was told 'accept with kl <= max_kl' (the strict-KL
    search returns the same 0.5 there, after trying 1.0 first): a named mistake must also try what the learner tried,
    and get right what the learner got right."""
    with pytest.raises(AssertionError) as failure:
        ch07_trpo.check_line_search(_shrinks_before_the_first_try)
    message = str(failure.value)
    assert "fractions tried: [0.5]" in message and "kl < max_kl" not in message, message
