"""pgcourse.tabular: the exact small-MDP computations behind lesson 02's G -> Q -> A and lesson 04's
performance-difference lemma. Each identity is checked against an independent computation, and each
check is shown able to fail (a wrong weight, the wrong state distribution)."""
from __future__ import annotations

import pytest
import torch

from pgcourse.course import tabular

HORIZON = 4


def _setup(seed=0, n_states=3, n_actions=2):
    mdp = tabular.random_mdp(n_states, n_actions, seed=seed, reward_offset=1.0, reward_scale=0.5)
    logits = torch.randn(n_states, n_actions, generator=torch.Generator().manual_seed(seed + 7), dtype=torch.float64)
    return mdp, logits


def test_random_mdp_is_a_valid_mdp():
    mdp = tabular.random_mdp(4, 3, seed=1)
    assert torch.allclose(mdp.transitions.sum(-1), torch.ones(4, 3, dtype=torch.float64))
    assert torch.isclose(mdp.start.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert (mdp.transitions >= 0).all() and (mdp.start >= 0).all()
    assert torch.equal(tabular.random_mdp(4, 3, seed=1).rewards, mdp.rewards)         # same seed, same MDP


def test_sharpness_one_keeps_the_dirichlet_rows_and_larger_concentrates_them():
    plain = tabular.random_mdp(4, 3, seed=5)
    assert torch.equal(tabular.random_mdp(4, 3, seed=5, sharpness=1.0).transitions, plain.transitions)
    sharp = tabular.random_mdp(4, 3, seed=5, sharpness=4.0)
    assert (sharp.transitions.max(-1).values >= plain.transitions.max(-1).values).all()
    with pytest.raises(ValueError, match="sharpness must be a positive power"):
        tabular.random_mdp(4, 3, seed=5, sharpness=0.0)


@pytest.mark.parametrize("n_states, n_actions", [(0, 2), (3, 1)])
def test_random_mdp_rejects_degenerate_sizes(n_states, n_actions):
    with pytest.raises(ValueError, match="at least 1 state and 2 actions"):
        tabular.random_mdp(n_states, n_actions, seed=0)


def test_enumeration_refuses_what_it_cannot_hold():
    mdp, logits = _setup()
    with pytest.raises(ValueError, match="too many to enumerate"):
        tabular.all_trajectories(mdp, torch.softmax(logits, -1), horizon=12)


def test_trajectory_probabilities_sum_to_one_and_returns_average_to_j():
    mdp, logits = _setup()
    probs = torch.softmax(logits, -1)
    paths = tabular.all_trajectories(mdp, probs, HORIZON)
    assert torch.isclose(paths.probability.sum(), torch.tensor(1.0, dtype=torch.float64))
    expected_return = paths.probability @ tabular.rewards_to_go(mdp, paths)[:, 0]      # sum_tau p(tau) G_0(tau)
    assert torch.isclose(expected_return, tabular.finite_horizon_return(mdp, probs, HORIZON), atol=1e-12)


def test_q_is_the_expected_reward_to_go_given_state_and_action():
    mdp, logits = _setup(seed=3)
    probs = torch.softmax(logits, -1)
    q = tabular.finite_horizon_q(mdp, probs, HORIZON)
    paths = tabular.all_trajectories(mdp, probs, HORIZON)
    returns = tabular.rewards_to_go(mdp, paths)
    for t in (0, 2):
        for s in range(mdp.n_states):
            for a in range(mdp.n_actions):
                mask = (paths.states[:, t] == s) & (paths.actions[:, t] == a)
                weight = paths.probability[mask]
                assert torch.isclose(weight @ returns[mask, t] / weight.sum(), q[t, s, a], atol=1e-12)


def test_softmax_scores_are_the_gradients_of_log_pi():
    _, logits = _setup(seed=2, n_states=3, n_actions=3)
    jacobian = torch.autograd.functional.jacobian(lambda x: torch.log_softmax(x, -1), logits)  # [S, A, S, A]
    assert torch.allclose(tabular.softmax_scores(logits), jacobian.reshape(3, 3, 9), atol=1e-14)


def _weights(mdp, logits):
    probs = torch.softmax(logits, -1)
    q = tabular.finite_horizon_q(mdp, probs, HORIZON)
    v = torch.cat([(probs * q).sum(-1), torch.zeros(1, mdp.n_states, dtype=torch.float64)])
    paths = tabular.all_trajectories(mdp, probs, HORIZON)
    t = torch.arange(HORIZON)
    g = tabular.rewards_to_go(mdp, paths)
    q_taken = q[t, paths.states, paths.actions]
    return paths, {"G": g, "Q": q_taken, "A": q_taken - v[t, paths.states],
                   "G - V(next)": g - v[t + 1, paths.next_states], "Q of the other action": q[t, paths.states, 1 - paths.actions]}


@pytest.mark.parametrize("seed", range(3))
def test_g_q_and_a_give_the_true_gradient_and_wrong_weights_do_not(seed):
    mdp, logits = _setup(seed)
    leaf = logits.clone().requires_grad_(True)
    true_gradient = torch.autograd.grad(tabular.finite_horizon_return(mdp, torch.softmax(leaf, -1), HORIZON), leaf)[0]
    paths, weights = _weights(mdp, logits)
    scores = tabular.softmax_scores(logits)
    variances = {}
    for name, weight in weights.items():
        mean, variances[name] = tabular.score_function_moments(scores, paths, weight)
        error = float((mean - true_gradient.flatten()).norm() / true_gradient.norm())
        if name in ("G", "Q", "A"):
            assert error < 1e-10, name
        else:
            assert error > 1e-3, f"{name} should be biased, relative error {error:.1e}"
    assert variances["A"] < variances["Q"] <= variances["G"] * (1 + 1e-12)


def test_variance_is_zero_for_a_deterministic_weightless_estimator():
    mdp, logits = _setup()
    paths, weights = _weights(mdp, logits)
    mean, variance = tabular.score_function_moments(tabular.softmax_scores(logits), paths,
                                                    torch.zeros_like(weights["G"]))
    assert float(variance) == 0.0 and float(mean.abs().max()) == 0.0


def test_discounted_values_satisfy_bellman_and_d_is_a_distribution():
    mdp, logits = _setup(seed=4, n_states=5, n_actions=3)
    probs = torch.softmax(logits, -1)
    values, q = tabular.discounted_values(mdp, probs, gamma=0.9)
    assert torch.allclose(values, (probs * q).sum(-1), atol=1e-12)
    assert torch.allclose(q, mdp.rewards + 0.9 * mdp.transitions @ values, atol=1e-12)
    d = tabular.discounted_state_distribution(mdp, probs, gamma=0.9)
    assert torch.isclose(d.sum(), torch.tensor(1.0, dtype=torch.float64)) and (d >= 0).all()
    # d = (1 - gamma) sum_t gamma^t mu P_pi^t, summed by brute force
    policy_transitions = torch.einsum("sa,sat->st", probs, mdp.transitions)
    state, total = mdp.start.clone(), torch.zeros(5, dtype=torch.float64)
    for step in range(600):
        total += 0.1 * 0.9 ** step * state
        state = state @ policy_transitions
    assert torch.allclose(d, total, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_performance_difference_lemma_is_exact_and_the_surrogate_is_not(seed):
    mdp, logits = _setup(seed, n_states=5, n_actions=3)
    probs_old = torch.softmax(logits, -1)
    probs_new = torch.softmax(logits + 2.0 * torch.randn(5, 3, generator=torch.Generator().manual_seed(seed),
                                                         dtype=torch.float64), -1)
    gamma = 0.9
    improvement = tabular.discounted_return(mdp, probs_new, gamma) - tabular.discounted_return(mdp, probs_old, gamma)
    lemma = tabular.advantage_under(mdp, probs_old, probs_new, gamma,
                                    tabular.discounted_state_distribution(mdp, probs_new, gamma))
    surrogate = tabular.advantage_under(mdp, probs_old, probs_new, gamma,
                                        tabular.discounted_state_distribution(mdp, probs_old, gamma))
    assert abs(float(lemma - improvement)) < 1e-12
    assert abs(float(surrogate - improvement)) > 1e-4        # the wrong state distribution: the check can fail


def test_mean_kl_is_zero_only_for_the_same_policy():
    _, logits = _setup(n_states=4, n_actions=3)
    probs = torch.softmax(logits, -1)
    d = torch.full((4,), 0.25, dtype=torch.float64)
    assert float(tabular.mean_kl(probs, probs, d)) == 0.0
    assert float(tabular.mean_kl(probs, torch.softmax(logits * 0.5, -1), d)) > 0.0
