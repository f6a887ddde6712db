"""Chapters 06 and 07's checks pinned at every edge of their ordering comparisons (issue 45, item 5).

A mechanical sweep flipped every ordering comparison of the package at its boundary (``<`` <-> ``<=``, ``>`` <->
``>=``); in ``course/checks`` ch06_proof, ch06_traps and ch07_* the flips below survived the unit tests, or no unit
test ran the line. Each test states what the comparison means (is a value exactly at the threshold accepted or
refused, named or not?) and checks it at the edge, one below and one above; every expected value is worked out by
hand. Flips that no input can tell apart are not tested:
- ch07_line_search's scenarios' ``f > 0.3`` (their evaluate is only called at powers of shrink = 0.5);
- check_fisher_vector_product's ``damping > 0`` (three times: at damping 0 the hint's product is the expected
  product itself, which already failed to match);
- check_conjugate_gradient's ``taken < iterations`` (the iterate after ``iterations`` products is the expected x,
  which already failed to match);
- check_trpo_step's ``distance < 1e-2`` and the variants' ``< 1e-2`` (float32 ratios: 0.01 is no float32 value)
  and ``not moved and reference.fraction > 0`` (a reference that accepts nothing leaves theta_old, which an unmoved
  finite policy matches exactly: distance 0, KL 0, improvement 0).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pgcourse.course.checks import LearnerCodeError, ch06_proof, ch06_traps, ch07_trpo
from pgcourse.course.checks.ch06_proof import ActorCriticContract, _returns_problem, _structure_problem, on_policy_z
from pgcourse.course.checks.ch07_conjugate_gradient import (_cg_recomputed_residual, _cg_swapped_beta,
                                                            _steepest_descent)
from pgcourse.course.checks.ch07_line_search import LINE_SEARCH_MISTAKES, NAN_HINT, UNSCALED_HINT, _right
from pgcourse.course.checks.ch07_trpo import (_NOT_RESTORED_HINT, _SIGN_FLIP_HINT, _spd, batch_kl, cartpole_batch,
                                              check_conjugate_gradient, check_fisher_vector_product,
                                              check_line_search, check_trpo_step)
from pgcourse.rl.trust_region import conjugate_gradient, fisher_vector_product


# -- ch06_proof: one optimiser set, the z-score's zero variance, the returns' tolerance, the z limit ----------------
def _steps(*pairs):
    return [{"optimizer_number": number, "env_step": clock} for number, clock in pairs]


@pytest.mark.parametrize("steps, refused", [
    (_steps((0, 2), (0, 4)), False),  # one optimiser, stepped at both updates
    (_steps((0, 2), (1, 2), (0, 4), (1, 4)), False),  # two optimisers (actor, critic): as many as the first update's
    (_steps((0, 2), (1, 4)), True),  # a second optimiser built for update 2: more than the first update stepped
])
def test_the_optimisers_may_be_exactly_those_of_the_first_update(steps, refused):
    """Rule 2: the loop built too many optimisers when the optimisers ever stepped are MORE than those stepped at
    the first update; exactly as many (each update stepping the same set) is right. One env, n_steps 2, 4 steps:
    two updates, at env steps 2 and 4."""
    played = {"envs_built": 1, "actions": [0] * 4, "env": [0] * 4}
    problem = _structure_problem(played, steps, ActorCriticContract(total_steps=4, seed=0, lr=1e-3, n_steps=2))
    assert (problem is not None and "optimisers" in problem) is refused
    if not refused:
        assert problem is None


def _policy_record(n_actions: int, bias: list[float], actions: list[int]):
    """One update over one observation [1.0] with a policy Linear(1, 64), Tanh, Linear(64, n_actions) whose last
    layer's weights are 0 and its bias ``bias`` (so its probabilities are softmax(bias))."""
    policy = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, n_actions))
    with torch.no_grad():
        policy[2].weight.zero_()
        policy[2].bias.copy_(torch.tensor(bias))
    state = policy.state_dict()
    keys = list(state)
    names = {("policy", key): number for number, key in enumerate(keys)}
    steps = [{"params": list(range(len(keys))), "before": [state[key] for key in keys], "env_step": len(actions)}]
    played = {"obs": [[1.0]] * len(actions), "actions": actions}
    return played, steps, names


@pytest.mark.parametrize("n_actions, bias, actions, z", [
    (1, [0.0], [0, 0], 0.0),  # one action: every log-probability 0, variance 0: z is 0, not 0 / 0
    (2, [0.0, 0.0], [1], 0.0),  # uniform: log pi(a) = E[log pi] for every action, variance 0
    (2, [0.0, math.log(3.0)], [1], 1 / math.sqrt(3.0)),  # p = (1/4, 3/4): (ln 3 / 4) / (sqrt(3) ln 3 / 4)
])
def test_on_policy_z_is_zero_when_the_variance_is_exactly_zero(n_actions, bias, actions, z):
    """``on_policy_z``: the sum of log pi(a) - E[log pi] over the square root of the summed variance, and 0 when
    that variance is exactly 0 (only a positive variance divides). With p = (1/4, 3/4) and action 1 played:
    log(3/4) - E = (ln 3) / 4, Var = 1/4 (3/4 ln 3)^2 + 3/4 (1/4 ln 3)^2 = 3/16 (ln 3)^2, z = 1 / sqrt(3)."""
    played, steps, names = _policy_record(n_actions, bias, actions)
    assert on_policy_z(played, steps, names, 1, n_actions) == pytest.approx(z, abs=1e-6)


@pytest.mark.parametrize("tolerance, recorded, reported, refused", [
    (1e-3, 0.0, 0.001, False),  # exactly RETURN_TOLERANCE apart: the same return
    (1e-3, 0.0, -0.001, False),
    (1e-3, 0.0, math.nextafter(0.001, 1.0), True),  # one double farther: another return
    (2**-10, 20.0, 20.0 + 2**-10, False),  # exact doubles, the tolerance patched to 2**-10
    (2**-10, 20.0, 20.0 - 2**-10, False),
    (2**-10, 20.0, 20.0 + 2**-9, True),
    (2**-10, 20.0, 20.0 - 2**-9, True),
])
def test_a_reported_return_exactly_the_tolerance_from_the_recorded_one_is_the_same(monkeypatch, tolerance, recorded,
                                                                                   reported, refused):
    """Rule 8: a reported episode return is the played one when |reported - recorded| <= RETURN_TOLERANCE
    (equality accepted)."""
    monkeypatch.setattr(ch06_proof, "RETURN_TOLERANCE", tolerance)
    problem = _returns_problem({"episodes": [(0, 10, recorded)]}, [reported])
    assert (problem is not None) is refused


@pytest.mark.parametrize("z, refused", [
    (5.0, False), (-5.0, False),  # |z| exactly Z_LIMIT: sampling
    (math.nextafter(5.0, 6.0), True), (-math.nextafter(5.0, 6.0), True),
    (math.nextafter(5.0, 0.0), False),
])
def test_actions_with_z_exactly_at_the_limit_are_samples(monkeypatch, z, refused):
    """Rule 7: the actions are not the policy's samples when |z| > Z_LIMIT = 5; |z| = 5 exactly passes. Rules 1-6
    are stubbed as passed and z set, so only rule 7 (and rule 8 on an empty record) decides."""
    monkeypatch.setattr(ch06_proof, "_structure_problem", lambda *args: None)
    monkeypatch.setattr(ch06_proof, "_weights_problem", lambda *args: (None, {}))
    monkeypatch.setattr(ch06_proof, "on_policy_z", lambda *args: z)
    outcome = {"played": {"episodes": []}, "calls": [{"optimizer_steps": [], "result": ({}, {}, [])}]}
    problem = ch06_proof.prove_actor_critic(outcome, ActorCriticContract(16, 0, 1e-3), 1, 2)
    assert (problem is not None and "not samples" in problem) is refused
    if not refused:
        assert problem is None


# -- ch06_traps: the probe messages, the learning score's window, the check's three thresholds ---------------------
TOL = 0.5  # PROBE_TOLERANCE patched to 0.5: the values below (in [4, 8) or [8, 16)) plus or minus 0.5 are exact
NEAR_OTHER = "TD fixed point when the target drops"  # terminates=False, the value near the termination value
ABOVE = "above the largest discounted return"
NOT_REACHED = "has not reached the TD fixed point"


@pytest.mark.parametrize("offset, says", [
    (-TOL, NOT_REACHED),  # exactly PROBE_TOLERANCE from the other fixed point: not "near" it
    (TOL, NOT_REACHED),
    (-TOL / 2, NEAR_OTHER),
    (TOL / 2, NEAR_OTHER),
])
def test_a_probe_value_exactly_the_tolerance_from_the_other_fixed_point_is_not_near_it(monkeypatch, offset, says):
    """``_probe_message`` (time-limit probe: expected 10, other 5.26): the value is named as the other probe's fixed
    point when |value - other| < PROBE_TOLERANCE (strictly)."""
    monkeypatch.setattr(ch06_traps, "PROBE_TOLERANCE", TOL)
    message = ch06_traps._probe_message(ch06_traps.TERMINATION_VALUE + offset, terminates=False)
    assert says in message and sum(text in message for text in (NEAR_OTHER, ABOVE, NOT_REACHED)) == 1


@pytest.mark.parametrize("offset, says", [
    (0.0, NOT_REACHED),  # exactly PROBE_TOLERANCE above the largest value (10): not "above"
    (-TOL / 2, NOT_REACHED),
    (TOL / 2, ABOVE),
])
def test_a_probe_value_exactly_the_tolerance_above_the_largest_is_not_above(monkeypatch, offset, says):
    """``_probe_message``: the value is called above any return when value > max(expected, other) +
    PROBE_TOLERANCE (strictly); time-limit probe, max = 10, value 10.5 + offset."""
    monkeypatch.setattr(ch06_traps, "PROBE_TOLERANCE", TOL)
    value = ch06_traps.TRUNCATION_VALUE + TOL + offset
    message = ch06_traps._probe_message(value, terminates=False)
    assert says in message and sum(text in message for text in (NEAR_OTHER, ABOVE, NOT_REACHED)) == 1


FROM_RESET = "bootstrap the truncated step from V(A)"


@pytest.mark.parametrize("da, db, named", [
    (0.0, TOL, False),  # V(B) exactly PROBE_TOLERANCE from the from-reset fixed point: not named
    (TOL, 0.0, False),  # V(A) exactly at the tolerance
    (-TOL, 0.0, False),
    (0.0, TOL / 2, True),
    (TOL / 2, -TOL / 2, True),
])
def test_two_state_values_exactly_the_tolerance_from_the_reset_fixed_point_are_not_named(monkeypatch, da, db, named):
    """``_two_state_message``: the from-reset bootstrap is named when BOTH |V(A) - 6.90| and |V(B) - 6.21| are
    < PROBE_TOLERANCE (strictly)."""
    monkeypatch.setattr(ch06_traps, "PROBE_TOLERANCE", TOL)
    wrong_a, wrong_b = ch06_traps.FROM_RESET_VALUES
    message = ch06_traps._two_state_message((wrong_a + da, wrong_b + db))
    assert (FROM_RESET in message) is named
    assert (NOT_REACHED in message) is not named


@pytest.mark.parametrize("returns, score", [
    ([1.0] * 49, None),  # fewer than the window: NaN
    ([1.0] * 24 + [3.0] * 26, 2.04),  # exactly the window: one average, (24 + 78) / 50
    ([1.0] * 24 + [3.0] * 27, 2.08),  # one more: the best of two averages, (23 + 81) / 50
])
def test_the_learning_score_needs_exactly_a_window_of_returns(returns, score):
    """``learning_score``: the best average of ``window`` (50) consecutive returns, NaN with fewer than 50."""
    result = ch06_traps.learning_score(returns)
    if score is None:
        assert math.isnan(result)
    else:
        assert result == pytest.approx(score, abs=1e-12)


def _fake_check(monkeypatch, terminates_value, truncates_value, two_state, returns):
    monkeypatch.setattr(ch06_traps, "PROBE_TOLERANCE", TOL)
    monkeypatch.setattr(ch06_traps, "probe_value",
                        lambda fn, terminates: terminates_value if terminates else truncates_value)
    monkeypatch.setattr(ch06_traps, "two_state_probe_values", lambda fn: two_state)
    monkeypatch.setattr(ch06_traps, "_call", lambda fn, env, steps, **kwargs: (None, None, returns))


GOOD_RETURNS = [50.0] * 50  # 50 x 0.02 rounds to 1.0: the score is exactly 50.0


@pytest.mark.parametrize("offset, passes", [(0.0, True), (TOL / 2, True), (-TOL / 2, True), (TOL, False),
                                            (-TOL, False)])
@pytest.mark.parametrize("terminates", [True, False])
def test_a_probe_value_exactly_the_tolerance_from_the_right_one_fails(monkeypatch, terminates, offset, passes):
    """``check_train_actor_critic``: a probe critic passes when |V - expected| < PROBE_TOLERANCE (strictly): exactly
    the tolerance away fails. The probes' training is stubbed: each returns the value given."""
    monkeypatch.setattr(ch06_traps, "LEARN_THRESHOLD", 50.0)
    right = {True: ch06_traps.TERMINATION_VALUE, False: ch06_traps.TRUNCATION_VALUE}
    values = {t: right[t] + (offset if t == terminates else 0.0) for t in (True, False)}
    _fake_check(monkeypatch, values[True], values[False], ch06_traps.TWO_STATE_VALUES, GOOD_RETURNS)
    if passes:
        ch06_traps.check_train_actor_critic(None)
    else:
        with pytest.raises(AssertionError, match="Probe environment"):
            ch06_traps.check_train_actor_critic(None)


@pytest.mark.parametrize("da, db, passes", [(0.0, 0.0, True), (TOL / 2, -TOL / 2, True), (TOL, 0.0, False),
                                            (0.0, -TOL, False), (-TOL, TOL / 2, False)])
def test_two_state_values_exactly_the_tolerance_from_the_right_ones_fail(monkeypatch, da, db, passes):
    """``check_train_actor_critic``: the two-state probe passes when both |V - right| < PROBE_TOLERANCE
    (strictly)."""
    monkeypatch.setattr(ch06_traps, "LEARN_THRESHOLD", 50.0)
    a, b = ch06_traps.TWO_STATE_VALUES
    _fake_check(monkeypatch, ch06_traps.TERMINATION_VALUE, ch06_traps.TRUNCATION_VALUE, (a + da, b + db),
                GOOD_RETURNS)
    if passes:
        ch06_traps.check_train_actor_critic(None)
    else:
        with pytest.raises(AssertionError, match="Two-state probe"):
            ch06_traps.check_train_actor_critic(None)


@pytest.mark.parametrize("threshold, passes", [(50.0, True), (math.nextafter(50.0, 0.0), True),
                                               (math.nextafter(50.0, 100.0), False)])
def test_a_learning_score_exactly_at_the_threshold_passes(monkeypatch, capsys, threshold, passes):
    """``check_train_actor_critic``: the loop learns CartPole when its score is >= LEARN_THRESHOLD (equality
    passes). Fifty returns of 50 score exactly 50; the threshold is patched to 50 and its neighbours."""
    _fake_check(monkeypatch, ch06_traps.TERMINATION_VALUE, ch06_traps.TRUNCATION_VALUE, ch06_traps.TWO_STATE_VALUES,
                GOOD_RETURNS)
    monkeypatch.setattr(ch06_traps, "LEARN_THRESHOLD", threshold)
    if passes:
        ch06_traps.check_train_actor_critic(None)
        assert "learns CartPole-v1 (best 50-episode average 50)" in capsys.readouterr().out
    else:
        with pytest.raises(AssertionError, match="best 50-episode average return is 50.0"):
            ch06_traps.check_train_actor_critic(None)


# -- ch07_conjugate_gradient: the wrong versions stop only strictly below the tolerance ----------------------------
@pytest.mark.parametrize("wrong", [_steepest_descent, _cg_swapped_beta, _cg_recomputed_residual])
@pytest.mark.parametrize("tolerance, stepped", [(2.0, True), (math.nextafter(2.0, 0.0), True),
                                                (math.nextafter(2.0, 3.0), False)])
def test_the_wrong_cg_versions_stop_only_strictly_below_the_tolerance(wrong, tolerance, stepped):
    """Like the reference, each wrong version stops when r.r < residual_tol (strictly): a squared residual exactly
    at the tolerance takes its step. A = diag(1, 2), b = [1, 1]: r.r = 2, one iteration steps to
    x = (r.r / r.Ar) r = (2 / 3) [1, 1]; a stop leaves x = 0."""
    matrix = torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64))
    x = wrong(lambda v: matrix @ v, torch.tensor([1.0, 1.0], dtype=torch.float64), 1, tolerance)
    expected = [2 / 3, 2 / 3] if stepped else [0.0, 0.0]
    assert x.tolist() == pytest.approx(expected, abs=1e-15)


# -- ch07_line_search: the right rule and every wrong search at the edge -----------------------------------------
@pytest.mark.parametrize("improvement, threshold, accepted", [
    (0.25, 0.25, False),  # exactly the required improvement: not more
    (math.nextafter(0.25, 1.0), 0.25, True),
    (0.0, 0.0, False),
])
def test_the_right_search_wants_strictly_more_than_the_required_improvement(improvement, threshold, accepted):
    """``_right``: accepted when finite, kl <= max_kl and improvement > threshold (strictly)."""
    assert _right(improvement, 0.0, threshold, 0.01) is accepted
    assert _right(improvement, 0.01, threshold, 0.01) is accepted  # a KL exactly max_kl is inside


MISTAKES = dict(enumerate(hint for hint, _ in LINE_SEARCH_MISTAKES))


def _wrong_search(index: int):
    return LINE_SEARCH_MISTAKES[index][1]


@pytest.mark.parametrize("index", [0, 1, 3, 4, 5])
def test_the_wrong_searches_refuse_an_improvement_exactly_at_the_threshold(index):
    """Each wrong search differs from the reference by its one mistake only: an improvement exactly at
    accept_ratio x expected x fraction is not accepted. Improvement 0.5 f, KL 0, expected 1, accept_ratio 0.5:
    every try is exactly at its threshold (0.0 returned); a hair above accepts the full step."""
    assert index in (0, 1) or LINE_SEARCH_MISTAKES[index][0] == NAN_HINT
    search = _wrong_search(index)
    assert search(lambda f: (0.5 * f, 0.0), 1.0, 0.01, 3, 0.5, 0.5) == 0.0
    assert search(lambda f: (0.5 * f + 2**-20, 0.0), 1.0, 0.01, 3, 0.5, 0.5) == 1.0


def test_the_search_that_compares_with_zero_refuses_an_improvement_of_exactly_zero():
    """The "compared with 0" mistake accepts improvement > 0 (strictly): an improvement of exactly 0 is refused,
    the smallest positive one accepted."""
    assert "not with 0" in MISTAKES[2]
    search = _wrong_search(2)
    assert search(lambda f: (0.0, 0.0), 1.0, 0.01, 3, 0.5, 0.1) == 0.0
    assert search(lambda f: (5e-324, 0.0), 1.0, 0.01, 3, 0.5, 0.1) == 1.0


def test_the_unscaled_search_refuses_an_improvement_exactly_at_the_full_steps_threshold():
    """The unscaled mistake accepts improvement > accept_ratio x expected (strictly, not scaled by the fraction):
    an improvement of exactly 0.5 = 0.5 x 1 at every fraction is refused, a hair more accepted at once."""
    assert MISTAKES[6] == UNSCALED_HINT
    search = _wrong_search(6)
    assert search(lambda f: (0.5, 0.0), 1.0, 0.01, 3, 0.5, 0.5) == 0.0
    assert search(lambda f: (0.5 + 2**-20, 0.0), 1.0, 0.01, 3, 0.5, 0.5) == 1.0


@pytest.mark.parametrize("index", [3, 4, 5])
@pytest.mark.parametrize("kl, fraction", [(0.01, 1.0), (math.nextafter(0.01, 0.0), 1.0),
                                          (math.nextafter(0.01, 1.0), 0.0)])
def test_the_nan_searches_keep_a_kl_exactly_max_kl_inside(index, kl, fraction):
    """The NaN mistakes reject ``kl > max_kl`` (strictly), like the reference: a KL exactly max_kl is inside. KL
    constant, improvement 1 at every try (far above 0.1 x f)."""
    assert LINE_SEARCH_MISTAKES[index][0] == NAN_HINT
    assert _wrong_search(index)(lambda f: (1.0, kl), 1.0, 0.01, 3, 0.5, 0.1) == fraction


# -- ch07_trpo: the graph-freed message, the CG hints, the line search's "never shrinks", the TRPO step ----------
_FREED_ERROR = "Trying to backward through the graph a second time (or directly access saved tensors after ...)"


def test_a_graph_freed_error_on_the_first_call_is_a_crash_not_the_second_call_message():
    """``check_fisher_vector_product``: the "graph freed by the first call" message is for a crash on a call after
    the first (number > 0); the same error on the very first call is reported as the learner's crash."""
    def crashes(kl_grad, parameters, vector, damping):
        raise RuntimeError(_FREED_ERROR)

    with pytest.raises(LearnerCodeError, match="backward through the graph a second time"):
        check_fisher_vector_product(crashes)


def test_a_graph_freed_error_on_the_second_call_gets_its_message():
    calls = []

    def second_crashes(kl_grad, parameters, vector, damping):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError(_FREED_ERROR)
        return fisher_vector_product(kl_grad, parameters, vector, damping)

    with pytest.raises(AssertionError, match="the graph was freed by the first"):
        check_fisher_vector_product(second_crashes)


def _tiny(b, size):
    x = torch.zeros_like(b)
    x[0] = size
    return x


@pytest.mark.parametrize("size, named", [(1e-6, False), (2e-6, True)])
def test_a_mistake_is_named_only_where_it_is_larger_than_1e_6_somewhere(monkeypatch, size, named):
    """``check_conjugate_gradient``'s ``reproduces``: a wrong version is named only if it reproduces x on every
    system AND its x has a norm > 1e-6 on at least one (strictly): a wrong version whose every x has norm exactly
    1e-6 ([1e-6, 0, ...]: sqrt(1e-6 ** 2) rounds back to 1e-6) is not named."""
    assert float(torch.tensor([1e-6, 0.0], dtype=torch.float64).norm()) == 1e-6
    monkeypatch.setattr(ch07_trpo, "CG_MISTAKES", [("TINY MISTAKE", lambda matvec, b, it, tol: _tiny(b, size))])
    with pytest.raises(AssertionError) as error:
        check_conjugate_gradient(lambda matvec, b, iterations, tol: _tiny(b, size))
    assert ("TINY MISTAKE" in str(error.value)) is named


def test_an_x_of_zero_with_no_product_is_not_called_the_iterate_after_zero_products():
    """The off-by-one hint ("conjugate gradient's iterate after k products") is for 0 < k < iterations: x = 0 with
    no product is not named an iterate; k = iterations - 1 products is."""
    with pytest.raises(AssertionError) as error:
        check_conjugate_gradient(lambda matvec, b, iterations, tol: torch.zeros_like(b))
    assert "iterate after" not in str(error.value)
    with pytest.raises(AssertionError, match="iterate after 2 products, where iterations=3"):
        check_conjugate_gradient(lambda matvec, b, iterations, tol: conjugate_gradient(matvec, b, iterations - 1,
                                                                                       tol).x)


_SYSTEMS = {3: torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)), 6: _spd(6, 0),
            8: _spd(8, 1, conditioning=0.05), 12: _spd(12, 2)}  # the check's systems, by size


@pytest.mark.parametrize("size, named", [(3, False), (8, True)])
def test_the_exact_solution_hint_is_only_for_fewer_iterations_than_the_size(size, named):
    """"You solved the system exactly" is said only when iterations < len(b): with iterations == len(b) (the 3x3
    system, 3 iterations) an x near the exact solution is conjugate gradient's own answer. The learner solves
    every system exactly (no product), the 3x3 one off by a factor 1 + 5e-6 (within the exact solution's
    tolerance 1e-5, not the iterate's 1e-6); the 8x8 system with 3 iterations is where the hint is due."""
    def solves(matvec, b, iterations, tol):
        x = torch.linalg.solve(_SYSTEMS[len(b)], b)
        return x * (1 + 5e-6) if len(b) == size == 3 else x

    with pytest.raises(AssertionError) as error:
        check_conjugate_gradient(solves)
    assert ("you solved the system exactly" in str(error.value)) is named
    assert ("3x3 diagonal" in str(error.value)) is (size == 3)


@pytest.mark.parametrize("tries, named", [(1, False), (2, True)])
def test_never_shrinks_is_said_only_after_more_than_one_full_step(tries, named):
    """``check_line_search``: "the line search never shrinks" needs more than one try, all of fraction 1; a search
    that tried the full step once (and returned 0.75, which no known wrong search returns) is not told so."""
    def search(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio):
        for _ in range(tries):
            evaluate(1.0)
        return 0.75

    with pytest.raises(AssertionError) as error:
        check_line_search(search)
    assert ("never shrinks" in str(error.value)) is named


SMALL = dict(n_steps=16, num_envs=2, minibatch_size=32)  # a 32-step CartPole batch (fast)


def _unmoved(policy, *args):
    return 0.0


def test_a_step_whose_kl_is_exactly_max_kl_moves_like_the_reference():
    """``check_trpo_step``: the policy moved like the reference's when (among others) its real KL <=
    max_kl (1 + 1e-3), equality included. With max_kl = 0 the reference accepts nothing (its full step is 0) and
    a policy left at theta_old has KL exactly 0 = max_kl: it passes."""
    check_trpo_step(_unmoved, cases=((0, dict(max_kl=0.0, **SMALL), "max_kl 0"),))


def _bumped(policy, *args):
    with torch.no_grad():
        list(policy.parameters())[-1].add_(torch.tensor([0.05, -0.05]))
    return 0.0


def test_a_moved_policy_returning_zero_where_the_reference_accepts_nothing_is_told_to_restore():
    """The "downhill" hint is for a reference that accepted a fraction (> 0) where the learner returned 0.0; where
    the reference accepted none (max_kl = 0) a learner that moved and returned 0.0 is told to put theta_old back."""
    with pytest.raises(AssertionError) as error:
        check_trpo_step(_bumped, cases=((0, dict(max_kl=0.0, **SMALL), "max_kl 0"),))
    assert _NOT_RESTORED_HINT[:60] in str(error.value) and _SIGN_FLIP_HINT[:60] not in str(error.value)


def _bumped_one(policy, *args):
    _bumped(policy)
    return 1.0


def _max_kl_at(kl: float) -> float:
    """The max_kl whose max_kl * (1 + 1e-3) is exactly ``kl`` (a neighbour of kl / 1.001)."""
    below = above = kl / (1 + 1e-3)
    for _ in range(16):
        for candidate in (below, above):
            if candidate * (1 + 1e-3) == kl:
                return candidate
        below, above = math.nextafter(below, 0.0), math.nextafter(above, 1.0)
    raise AssertionError("no max_kl with max_kl * 1.001 == kl")


@pytest.mark.parametrize("nudge, named", [(0, False), (-1, True), (1, False)])
def test_a_kl_exactly_at_max_kl_times_1_001_is_not_called_outside(nudge, named):
    """``check_trpo_step``: the hint "the step's real KL is ... > max_kl" needs kl > max_kl (1 + 1e-3) (strictly).
    The learner adds [0.05, -0.05] to the last bias and returns 1.0; max_kl is chosen so that max_kl (1 + 1e-3)
    is exactly that step's KL (nudge 0), one double below (nudge -1: the KL is outside) or above."""
    batch = cartpole_batch(0, **SMALL)
    policy = batch.copy_policy()
    _bumped(policy)
    with torch.no_grad():
        kl = float(batch_kl(policy, batch))
    max_kl = _max_kl_at(kl)
    max_kl = {0: max_kl, -1: math.nextafter(max_kl, 0.0), 1: math.nextafter(max_kl, 1.0)}[nudge]
    with pytest.raises(AssertionError) as error:
        check_trpo_step(_bumped_one, cases=((0, dict(max_kl=max_kl, **SMALL), "edge"),))
    assert ("the line search must check the KL of each try" in str(error.value)) is named
