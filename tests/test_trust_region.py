"""TRPO's math (pgcourse.trust_region) against explicit matrices, and the TRPO loop's guarantees."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.rl.config import ConfigError, make_config
from pgcourse.rl.networks import CategoricalPolicy, GaussianPolicy
from pgcourse.rl.trust_region import (backtracking_line_search, categorical_kl, conjugate_gradient,
                                      fisher_vector_product, flat_grad, gaussian_kl, max_step_length,
                                      quadratic_form_is_zero)


def test_categorical_kl_matches_torch():
    gen = torch.Generator().manual_seed(0)
    old, new = torch.randn(7, 4, generator=gen), torch.randn(7, 4, generator=gen)
    expected = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=old),
                                                 torch.distributions.Categorical(logits=new))
    torch.testing.assert_close(categorical_kl(old, new), expected)
    assert torch.allclose(categorical_kl(old, old), torch.zeros(7), atol=1e-7)


def test_gaussian_kl_matches_torch_summed_over_dimensions():
    gen = torch.Generator().manual_seed(1)
    old_mean, new_mean = torch.randn(5, 3, generator=gen), torch.randn(5, 3, generator=gen)
    old_log_std, new_log_std = torch.randn(3, generator=gen) * 0.3, torch.randn(3, generator=gen) * 0.3
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(old_mean, old_log_std.exp()),
        torch.distributions.Normal(new_mean, new_log_std.exp())).sum(-1)
    torch.testing.assert_close(gaussian_kl(old_mean, old_log_std, new_mean, new_log_std), expected)


def _explicit_fisher(policy, obs, old_output, kl_of):
    """The Hessian of the mean KL at theta_old, built column by column from full second derivatives."""
    params = list(policy.parameters())
    flat = torch.nn.utils.parameters_to_vector(params).detach()

    def kl_at(theta):
        torch.nn.utils.vector_to_parameters(theta, params)
        return kl_of(policy(obs))

    # torch.func would be neater; this keeps to plain autograd on a tiny net
    theta = flat.clone().requires_grad_(True)
    sizes = [p.numel() for p in params]

    def functional(theta_vec):
        chunks = torch.split(theta_vec, sizes)
        out = obs
        layers = [m for m in policy.net if isinstance(m, torch.nn.Linear)]
        i = 0
        for k, layer in enumerate(layers):
            weight = chunks[i].view_as(layer.weight)
            bias = chunks[i + 1].view_as(layer.bias)
            i += 2
            out = out @ weight.T + bias
            if k < len(layers) - 1:
                out = torch.tanh(out)
        return kl_of(out)

    hessian = torch.autograd.functional.hessian(functional, theta)
    torch.nn.utils.vector_to_parameters(flat, params)
    return hessian


def test_fisher_vector_product_equals_the_hessian_of_the_kl_times_v_plus_damping():
    torch.manual_seed(0)
    policy = CategoricalPolicy(3, 2, hidden_sizes=(4,))
    obs = torch.randn(16, 3)
    with torch.no_grad():
        old_output = policy(obs)
    assert any(isinstance(m, torch.nn.Tanh) for m in policy.net), "the explicit Hessian assumes tanh layers"

    def kl_of(logits):
        return categorical_kl(old_output, logits).mean()

    fisher = _explicit_fisher(policy, obs, old_output, kl_of)  # [P, P]
    params = list(policy.parameters())
    kl_grad = flat_grad(kl_of(policy(obs)), params, create_graph=True)
    assert torch.allclose(kl_grad, torch.zeros_like(kl_grad), atol=1e-6)  # KL is smallest at theta_old
    for seed, damping in [(0, 0.0), (1, 0.1)]:
        v = torch.randn(fisher.shape[0], generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(fisher_vector_product(kl_grad, params, v, damping), fisher @ v + damping * v,
                                   rtol=1e-4, atol=1e-6)
    # the Fisher matrix is positive semi-definite
    assert torch.linalg.eigvalsh(fisher).min() > -1e-6


def test_fisher_of_a_gaussian_policy_reaches_log_std():
    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, hidden_sizes=(4,))
    obs = torch.randn(8, 3)
    with torch.no_grad():
        old_mean, old_log_std = policy(obs), policy.log_std.clone()
    params = list(policy.parameters())
    kl = gaussian_kl(old_mean, old_log_std, policy(obs), policy.log_std).mean()
    kl_grad = flat_grad(kl, params, create_graph=True)
    v = torch.zeros(kl_grad.shape[0])
    assert params[0] is policy.log_std  # a module lists its own parameters before its submodules'
    v[:2] = 1.0  # the Fisher of a log-std is 2 per dimension: d^2/dl^2 of e^(2 l_old - 2 l) / 2 + l at l = l_old
    product = fisher_vector_product(kl_grad, params, v, 0.0)
    torch.testing.assert_close(product[:2], torch.full((2,), 2.0))


def _spd(n, seed):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    return a @ a.T + n * torch.eye(n, dtype=torch.float64)


def test_conjugate_gradient_solves_a_symmetric_positive_definite_system():
    matrix = _spd(12, 0)
    b = torch.randn(12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    result = conjugate_gradient(lambda v: matrix @ v, b, iterations=12, residual_tol=1e-20)
    torch.testing.assert_close(result.x, torch.linalg.solve(matrix, b))
    assert result.residual_norm < 1e-8 and result.iterations <= 12


def test_conjugate_gradient_stops_at_the_tolerance_and_counts_products():
    matrix = torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    products = []
    result = conjugate_gradient(lambda v: products.append(v) or matrix @ v, b, iterations=50)
    assert result.iterations == len(products) == 3  # three distinct eigenvalues: exact after 3
    assert conjugate_gradient(lambda v: matrix @ v, torch.zeros(3, dtype=torch.float64)).iterations == 0


def test_conjugate_gradient_without_damping_differs_from_the_damped_solve():
    # the wrong version chapter 07 names: solving F s = g where TRPO solves (F + lambda I) s = g
    matrix = _spd(6, 2)
    b = torch.ones(6, dtype=torch.float64)
    damped = conjugate_gradient(lambda v: matrix @ v + 0.5 * v, b, iterations=6, residual_tol=1e-20).x
    plain = conjugate_gradient(lambda v: matrix @ v, b, iterations=6, residual_tol=1e-20).x
    torch.testing.assert_close(damped, torch.linalg.solve(matrix + 0.5 * torch.eye(6, dtype=torch.float64), b))
    assert not torch.allclose(damped, plain)


def test_max_step_length_puts_the_quadratic_kl_on_the_constraint():
    matrix = _spd(5, 3)
    s = torch.randn(5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    beta = max_step_length(s, matrix @ s, max_kl=0.02)
    assert math.isclose(0.5 * beta**2 * float(s @ matrix @ s), 0.02, rel_tol=1e-9)
    with pytest.raises(ValueError, match="must be > 0"):
        max_step_length(s, -s, 0.01)


def test_line_search_takes_the_largest_fraction_that_satisfies_both_conditions():
    tried = []

    def evaluate(fraction):  # the KL grows with the step; improvement is linear
        tried.append(fraction)
        return fraction * 1.0, 0.04 * fraction**2

    result = backtracking_line_search(evaluate, expected_improvement=1.0, max_kl=0.01)
    assert tried == [1.0, 0.5] and result.fraction == 0.5 and result.steps_tried == 2 and result.accepted
    assert result.kl == pytest.approx(0.01)


def test_line_search_rejects_steps_that_make_the_surrogate_worse_and_can_give_up():
    result = backtracking_line_search(lambda f: (-1.0, 0.0), expected_improvement=1.0, max_kl=0.01,
                                      max_backtracks=4)
    assert result.fraction == 0.0 and not result.accepted and result.steps_tried == 4
    nan = backtracking_line_search(lambda f: (float("nan"), 0.0), 1.0, 0.01, max_backtracks=2)
    assert not nan.accepted
    with pytest.raises(ValueError, match="shrink"):
        backtracking_line_search(lambda f: (1.0, 0.0), 1.0, 0.01, shrink=1.0)


def test_line_search_that_never_shrinks_is_caught():
    # the wrong version chapter 07 names: trying the full step every time
    def never_shrinks(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
        return evaluate(1.0)

    def evaluate(fraction):
        return fraction, 0.04 * fraction**2

    assert never_shrinks(evaluate, 1.0, 0.01)[1] > 0.01  # over the trust region
    assert backtracking_line_search(evaluate, 1.0, 0.01).kl <= 0.01


@pytest.mark.parametrize("setting, value, expected", [
    ("max_kl", 0.0, "max_kl"), ("line_search_shrink", 1.0, "line_search_shrink"), ("cg_iters", 0, "cg_iters"),
    ("minibatch_size", 10**6, "at most the batch"), ("critic_epochs", 0, "critic_epochs"),
])
def test_trpo_config_errors_say_what_was_wrong(setting, value, expected):
    with pytest.raises(ConfigError, match=expected):
        make_config("trpo", "CartPole-v1", "discrete", **{setting: value})


def test_trpo_defaults_and_unknown_settings():
    config = make_config("trpo", "CartPole-v1", "discrete")
    assert (config.max_kl, config.n_steps, config.num_envs, config.critic_epochs) == (0.01, 256, 8, 10)
    with pytest.raises(ConfigError, match="clip_eps"):
        make_config("trpo", "CartPole-v1", "discrete", clip_eps=0.2)  # a PPO setting


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_every_trpo_update_stays_inside_the_trust_region(env_id):
    run = pg.train("trpo", env_id, seed=0, total_steps=8_192, progress=False, num_envs=4, n_steps=256,
                   critic_epochs=2)
    updates = run.history.updates
    assert len(updates) >= 8  # reset steps are not transitions, so a few more rollouts than 8,192 / 1,024
    kl, fraction = updates["update_kl"], updates["step_fraction"]
    assert np.all(kl <= run.config.max_kl + 1e-9)
    assert np.all((fraction == 0) | (fraction > 0) & (fraction <= 1))
    accepted = fraction > 0
    assert accepted.any() and np.all(updates["surrogate_improvement"][accepted] > 0)
    assert np.all(updates["line_search_steps"] >= 1) and np.all(np.isfinite(updates["cg_residual"]))


def test_trpo_is_reproducible_and_resumes_bit_for_bit(tmp_path):
    settings = dict(seed=3, progress=False, num_envs=4, n_steps=128, critic_epochs=2, minibatch_size=128)
    whole = pg.train("trpo", "CartPole-v1", total_steps=4_096, **settings)
    again = pg.train("trpo", "CartPole-v1", total_steps=4_096, **settings)
    assert np.array_equal(whole.history.updates["update_kl"], again.history.updates["update_kl"])
    half = pg.train("trpo", "CartPole-v1", total_steps=2_048, **settings)
    resumed = pg.resume(half, total_steps=4_096)
    for column in ("update_kl", "value_loss", "step_fraction"):
        assert np.array_equal(resumed.history.updates[column], whole.history.updates[column]), column


@pytest.mark.slow
def test_trpo_solves_cartpole_with_its_defaults():
    run = pg.train("trpo", "CartPole-v1", seed=0, total_steps=100_000, progress=False)
    assert pg.evaluate(run, episodes=20).mean >= 475


def test_trpo_keeps_log_std_above_its_bound():
    run = pg.train("trpo", "Pendulum-v1", seed=0, total_steps=4_096, progress=False, num_envs=4, n_steps=256,
                   critic_epochs=1, log_std_min=-0.05, max_kl=0.5)
    assert float(run.policy.log_std.detach().min()) >= -0.05


def test_diagnose_does_not_call_trpos_big_batches_a_trap():
    run = pg.train("trpo", "CartPole-v1", seed=0, total_steps=8_192, progress=False)
    diagnosis = pg.diagnose(run)
    assert "updates per episode" in {finding.signal for finding in diagnosis.healthy}
    assert not any("long_rollout" in finding.causes for finding in [*diagnosis, *diagnosis.healthy])



def test_a_quadratic_form_is_zero_only_to_float_precision():
    matrix = _spd(5, 3)
    s = torch.randn(5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert not quadratic_form_is_zero(s, matrix @ s)
    assert not quadratic_form_is_zero(1e-150 * s, matrix @ (1e-150 * s))  # relative: a tiny s still has a length
    zero = torch.zeros(5, dtype=torch.float64)
    assert quadratic_form_is_zero(zero, matrix @ zero)  # g = 0 -> s = 0: no step
    eps = torch.finfo(torch.float32).eps
    along, across = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert quadratic_form_is_zero(along, across + 0.5 * eps * along)  # below one rounding of |s| |F s|
    assert not quadratic_form_is_zero(along, across + 1e-3 * along)
    # a clearly negative or a NaN s^T F s is a bug, not "zero": max_step_length still raises on it
    assert not quadratic_form_is_zero(s, -s) and not quadratic_form_is_zero(s, s * float("nan"))
    with pytest.raises(ValueError, match="must be > 0"):
        max_step_length(zero, zero, 0.01)


def test_trpo_on_equal_advantages_takes_no_step_instead_of_crashing():
    # issue 25: on ProbeConstant every advantage is equal, so the policy gradient is zero, conjugate gradient
    # returns s = 0, and max_step_length raised "s^T F s = 0 must be > 0"
    run = pg.train("trpo", "pgcourse.probes:ProbeConstant-v0", seed=0, total_steps=4_096, device="cpu",
                   progress=False)
    updates = run.history.updates
    assert len(updates) >= 2 and np.all(updates["actor_grad_norm"] == 0)
    assert np.all(updates["step_fraction"] == 0) and np.all(updates["update_kl"] == 0)  # the policy stayed
    assert updates["value_loss"][-1] < updates["value_loss"][0]  # the critic still trained


def test_the_update_log_marks_the_updates_that_took_no_step():
    # ProbeAction: once every action in a batch is the rewarded one, every advantage is equal and the gradient
    # zero; those updates log line_search_steps = 0, which an update that searched never does (it tries >= 1).
    # Small batches of 256 transitions: near P(best) = 1 some batches hold the other action and some do not.
    run = pg.train("trpo", "pgcourse.probes:ProbeAction-v0", seed=0, total_steps=6_144, device="cpu",
                   progress=False, gamma=0.8, num_envs=4, n_steps=128, critic_epochs=1)
    updates = run.history.updates
    no_step = updates["line_search_steps"] == 0
    assert no_step.any() and not no_step[0] and np.all(updates["line_search_steps"][~no_step] >= 1)
    assert np.all(updates["step_fraction"][~no_step] > 0)  # every update with a gradient stepped
    for column in ("step_fraction", "update_kl", "expected_improvement", "surrogate_improvement"):
        assert np.all(updates[column][no_step] == 0), column
    assert np.all(updates["actor_grad_norm"][no_step] ** 2 < 1e-10)  # below conjugate gradient's residual_tol
    assert np.all(np.isfinite(updates["value_loss"]))
