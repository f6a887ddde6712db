"""Loss terms, diagnostics and minibatching: hand-worked values and comparisons with torch.distributions."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical, Normal

from pgcourse.rl.batching import minibatch_indices
from pgcourse.rl.diagnostics import approx_kl, clip_fraction, explained_variance, grad_norm, relative_value_error
from pgcourse.rl.distributions import categorical_entropy, categorical_log_prob, gaussian_entropy, gaussian_log_prob
from pgcourse.rl.losses import clipped_surrogate_loss, entropy_bonus_loss, reinforce_loss, value_loss


# ---------------------------------------------------------------------------------------------
# reinforce_loss
# ---------------------------------------------------------------------------------------------
def test_reinforce_loss_value_and_sign():
    log_probs = torch.tensor([-1.0, -2.0], requires_grad=True)
    weights = torch.tensor([3.0, -1.0])
    loss = reinforce_loss(log_probs, weights)
    # -(( -1*3) + (-2*-1)) / 2 = -(-3 + 2)/2 = 0.5
    assert float(loss.detach()) == pytest.approx(0.5)
    loss.backward()
    # minimising the loss raises log-probs of positively weighted actions: d loss / d log p = -w / B
    torch.testing.assert_close(log_probs.grad, torch.tensor([-1.5, 0.5]))


def test_reinforce_loss_detaches_weights():
    log_probs = torch.tensor([-0.5, -0.7], requires_grad=True)
    weights = torch.tensor([1.0, 2.0], requires_grad=True)
    reinforce_loss(log_probs, weights).backward()
    assert weights.grad is None
    assert log_probs.grad is not None


def test_entropy_bonus_loss_sign():
    entropy = torch.tensor([1.0, 3.0])
    assert float(entropy_bonus_loss(entropy, 0.1)) == pytest.approx(-0.2)


# ---------------------------------------------------------------------------------------------
# clipped_surrogate_loss
# ---------------------------------------------------------------------------------------------
def surrogate(ratio: float, advantage: float, clip_eps: float = 0.2):
    new_log_probs = torch.tensor([math.log(ratio)], dtype=torch.float64, requires_grad=True)
    old_log_probs = torch.zeros(1, dtype=torch.float64)
    loss = clipped_surrogate_loss(new_log_probs, old_log_probs, torch.tensor([advantage], dtype=torch.float64),
                                  clip_eps)
    loss.backward()
    return float(loss.detach()), float(new_log_probs.grad[0])


@pytest.mark.parametrize("ratio, advantage, expected_loss, grad_is_zero", [
    (1.1, 2.0, -2.2, False),     # inside the range: plain ratio * A
    (0.9, -2.0, 1.8, False),     # inside the range, negative advantage
    (1.5, 2.0, -2.4, True),      # A > 0, ratio above 1 + eps: clipped at 1.2 * A, flat
    (0.5, 2.0, -1.0, False),     # A > 0, ratio below 1 - eps: min picks the unclipped 0.5 * A (still pushes up)
    (1.5, -2.0, 3.0, False),     # A < 0, ratio above 1 + eps: min picks the unclipped 1.5 * A (pushes down)
    (0.5, -2.0, 1.6, True),      # A < 0, ratio below 1 - eps: clipped at 0.8 * A, flat
])
def test_clipped_surrogate_hand_worked(ratio, advantage, expected_loss, grad_is_zero):
    loss, grad = surrogate(ratio, advantage)
    assert loss == pytest.approx(expected_loss, rel=1e-9)
    if grad_is_zero:
        assert grad == 0.0
    else:
        # d/d log pi of -(ratio * A) = -ratio * A
        assert grad == pytest.approx(-ratio * advantage, rel=1e-9)


def test_clipped_surrogate_at_ratio_one_is_minus_mean_advantage():
    advantages = torch.tensor([1.0, -3.0, 0.5, 2.0])
    log_probs = torch.tensor([-0.3, -1.2, -2.0, -0.1])
    loss = clipped_surrogate_loss(log_probs.clone().requires_grad_(), log_probs, advantages, 0.2)
    assert float(loss.detach()) == pytest.approx(-float(advantages.mean()))


def test_clipped_surrogate_batch_is_mean_of_elements():
    ratios = [1.1, 1.5, 0.5, 0.5]
    advantages = [2.0, 2.0, 2.0, -2.0]
    new = torch.log(torch.tensor(ratios, dtype=torch.float64))
    loss = clipped_surrogate_loss(new, torch.zeros(4, dtype=torch.float64),
                                  torch.tensor(advantages, dtype=torch.float64), 0.2)
    assert float(loss.detach()) == pytest.approx(np.mean([-2.2, -2.4, -1.0, 1.6]))


def test_clipped_surrogate_constants_get_no_gradient():
    new = torch.tensor([-0.5, -0.2], requires_grad=True)
    old = torch.tensor([-0.4, -0.3], requires_grad=True)
    advantages = torch.tensor([1.0, -1.0], requires_grad=True)
    clipped_surrogate_loss(new, old, advantages, 0.2).backward()
    assert new.grad is not None
    assert old.grad is None and advantages.grad is None


def test_clipped_surrogate_works_in_log_space_for_tiny_probabilities():
    # log-probs around -1000 (continuous actions): raw probabilities underflow to 0, the ratio must not
    new = torch.tensor([-1000.0], dtype=torch.float64)
    old = torch.tensor([-1000.1], dtype=torch.float64)
    loss = clipped_surrogate_loss(new, old, torch.tensor([1.0], dtype=torch.float64), 0.2)
    assert float(loss.detach()) == pytest.approx(-math.exp(0.1))


# ---------------------------------------------------------------------------------------------
# value_loss
# ---------------------------------------------------------------------------------------------
def test_value_loss_plain():
    values = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    returns = torch.tensor([1.0, 0.0, 5.0])
    loss = value_loss(values, returns)
    assert float(loss.detach()) == pytest.approx(0.5 * (0 + 4 + 4) / 3)
    loss.backward()
    torch.testing.assert_close(values.grad, torch.tensor([0.0, 2.0, -2.0]) / 3)


def test_value_loss_detaches_returns():
    values = torch.tensor([1.0], requires_grad=True)
    returns = torch.tensor([2.0], requires_grad=True)
    value_loss(values, returns).backward()
    assert returns.grad is None


def test_value_loss_clipped():
    old_values = torch.tensor([0.0, 0.0, 0.0])
    values = torch.tensor([1.0, 1.0, 0.1])
    returns = torch.tensor([2.0, 0.0, 1.0])
    # 0: unclipped (1-2)^2 = 1, clipped (0.2-2)^2 = 3.24 -> 3.24
    # 1: unclipped (1-0)^2 = 1, clipped (0.2-0)^2 = 0.04 -> 1
    # 2: inside the range: (0.1-1)^2 = 0.81 both
    loss = value_loss(values, returns, old_values, clip_eps=0.2)
    assert float(loss.detach()) == pytest.approx(0.5 * (3.24 + 1.0 + 0.81) / 3)
    # without old_values / clip_eps it is the plain loss
    assert float(value_loss(values, returns)) == pytest.approx(0.5 * (1.0 + 1.0 + 0.81) / 3)


# ---------------------------------------------------------------------------------------------
# log-probs and entropies against torch.distributions
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("D", [1, 3])
def test_gaussian_log_prob_matches_torch_normal(D):
    generator = torch.Generator().manual_seed(D)
    B = 7
    mean = torch.randn(B, D, generator=generator, dtype=torch.float64)
    log_std = torch.randn(B, D, generator=generator, dtype=torch.float64) * 0.5
    actions = torch.randn(B, D, generator=generator, dtype=torch.float64) * 2
    expected = Normal(mean, log_std.exp()).log_prob(actions).sum(-1)
    result = gaussian_log_prob(mean, log_std, actions)
    assert result.shape == (B,)
    torch.testing.assert_close(result, expected, rtol=1e-12, atol=1e-12)


def test_gaussian_log_prob_broadcasts_state_independent_log_std():
    generator = torch.Generator().manual_seed(7)
    B, D = 5, 3
    mean = torch.randn(B, D, generator=generator, dtype=torch.float64)
    log_std = torch.tensor([-1.0, 0.0, 0.5], dtype=torch.float64)  # [D]
    actions = torch.randn(B, D, generator=generator, dtype=torch.float64)
    expected = Normal(mean, log_std.exp().expand(B, D)).log_prob(actions).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(mean, log_std, actions), expected, rtol=1e-12, atol=1e-12)


def test_gaussian_log_prob_gradient_matches_torch():
    mean = torch.tensor([[0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    log_std = torch.tensor([0.1, -0.4], dtype=torch.float64, requires_grad=True)
    actions = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    gaussian_log_prob(mean, log_std, actions).sum().backward()
    ours = (mean.grad.clone(), log_std.grad.clone())
    mean.grad, log_std.grad = None, None
    Normal(mean, log_std.exp()).log_prob(actions).sum().backward()
    torch.testing.assert_close(ours[0], mean.grad)
    torch.testing.assert_close(ours[1], log_std.grad)


@pytest.mark.parametrize("shape", [(1,), (3,), (4, 2)])
def test_gaussian_entropy_matches_torch_normal(shape):
    log_std = torch.linspace(-1.5, 1.0, int(np.prod(shape)), dtype=torch.float64).reshape(shape)
    expected = Normal(torch.zeros_like(log_std), log_std.exp()).entropy().sum(-1)
    torch.testing.assert_close(gaussian_entropy(log_std), expected, rtol=1e-12, atol=1e-12)


def test_categorical_log_prob_and_entropy_match_torch():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(9, 4, generator=generator, dtype=torch.float64) * 3
    actions = torch.randint(0, 4, (9,), generator=generator)
    dist = Categorical(logits=logits)
    torch.testing.assert_close(categorical_log_prob(logits, actions), dist.log_prob(actions))
    torch.testing.assert_close(categorical_entropy(logits), dist.entropy())


def test_categorical_log_prob_is_finite_for_extreme_logits():
    logits = torch.tensor([[1000.0, -1000.0]])
    log_prob = categorical_log_prob(logits, torch.tensor([1]))
    assert torch.isfinite(log_prob).all()
    assert float(log_prob) == pytest.approx(-2000.0)


# ---------------------------------------------------------------------------------------------
# approx_kl, clip_fraction, explained_variance, grad_norm
# ---------------------------------------------------------------------------------------------
def test_approx_kl_zero_for_equal_inputs():
    log_probs = torch.tensor([-0.1, -2.0, -5.0])
    assert float(approx_kl(log_probs, log_probs.clone())) == 0.0


def test_approx_kl_non_negative():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        old = torch.randn(50, generator=generator) * 2
        new = torch.randn(50, generator=generator) * 2
        assert float(approx_kl(old, new)) >= 0.0


def test_approx_kl_hand_worked_k3():
    # log r = log(2): (r - 1) - log r = 1 - log 2
    old = torch.tensor([0.0], dtype=torch.float64)
    new = torch.tensor([math.log(2.0)], dtype=torch.float64)
    assert float(approx_kl(old, new)) == pytest.approx(1.0 - math.log(2.0))


def test_approx_kl_estimates_true_kl_of_two_categoricals():
    p_old = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    p_new = torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64)
    true_kl = float((p_old * (p_old / p_new).log()).sum())  # KL(old || new)
    generator = torch.Generator().manual_seed(0)
    actions = torch.multinomial(p_old, 200_000, replacement=True, generator=generator)
    estimate = float(approx_kl(p_old.log()[actions], p_new.log()[actions]))
    assert estimate == pytest.approx(true_kl, rel=0.05)
    # and it is not the reverse KL(new || old)
    reverse_kl = float((p_new * (p_new / p_old).log()).sum())
    assert abs(estimate - true_kl) < abs(estimate - reverse_kl)


def test_approx_kl_is_detached():
    new = torch.tensor([-0.5, -0.3], requires_grad=True)
    assert not approx_kl(torch.tensor([-0.4, -0.4]), new).requires_grad


def test_clip_fraction_counts_outside_range():
    ratio = torch.tensor([0.7, 0.85, 0.95, 1.0, 1.1, 1.21, 1.3, 3.0])
    # outside [0.8, 1.2]: 0.7, 1.21, 1.3, 3.0
    assert float(clip_fraction(ratio, 0.2)) == pytest.approx(4 / 8)
    assert float(clip_fraction(ratio, 10.0)) == 0.0
    assert float(clip_fraction(torch.ones(5), 0.2)) == 0.0


def test_relative_value_error_stays_small_where_explained_variance_misleads():
    # a solved CartPole: every target near 1/(1-gamma), a critic off by about 0.3%
    returns = torch.tensor([99.3, 99.4, 99.2, 99.35], dtype=torch.float64)
    values = torch.tensor([99.0, 98.9, 99.1, 98.95], dtype=torch.float64)
    assert explained_variance(values, returns) < -1  # "worse than the mean" ...
    assert relative_value_error(values, returns) == pytest.approx(
        float(torch.sqrt(((returns - values) ** 2).mean()) / returns.abs().mean()))
    assert relative_value_error(values, returns) < 0.005  # ... yet off by 0.3%
    assert relative_value_error(torch.zeros(3), torch.tensor([10.0, 20.0, 30.0])) == pytest.approx(
        math.sqrt((100 + 400 + 900) / 3) / 20)
    assert math.isnan(relative_value_error(torch.ones(3), torch.zeros(3)))


def test_explained_variance_values():
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert explained_variance(returns.clone(), returns) == pytest.approx(1.0)
    assert explained_variance(torch.full((4,), float(returns.mean())), returns) == pytest.approx(0.0, abs=1e-12)
    assert explained_variance(-returns, returns) < 0.0
    # hand-worked: residual [0.5, -0.5, 0.5, -0.5] -> var 0.25, var(returns) = 1.25 -> 1 - 0.2 = 0.8
    values = returns + torch.tensor([0.5, -0.5, 0.5, -0.5])
    assert explained_variance(values, returns) == pytest.approx(0.8)
    # a constant offset is invisible to the variance
    assert explained_variance(returns + 10.0, returns) == pytest.approx(1.0)


def test_explained_variance_nan_for_constant_returns():
    result = explained_variance(torch.tensor([1.0, 2.0, 3.0]), torch.full((3,), 5.0))
    assert isinstance(result, float) and math.isnan(result)


def test_explained_variance_returns_python_float_and_flattens():
    returns = torch.arange(6.0).reshape(2, 3)
    result = explained_variance(returns.clone().requires_grad_(), returns)
    assert isinstance(result, float)
    assert result == pytest.approx(1.0)


def test_grad_norm():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(3))
    c = torch.nn.Parameter(torch.zeros(1))  # no gradient: ignored
    a.grad = torch.tensor([3.0, 0.0])
    b.grad = torch.tensor([0.0, 4.0, 12.0])
    assert grad_norm([a, b, c]) == pytest.approx(13.0)
    assert grad_norm([c]) == 0.0
    assert grad_norm([]) == 0.0


def test_grad_norm_matches_clip_grad_norm_total():
    layer = torch.nn.Linear(4, 3)
    layer(torch.randn(5, 4)).pow(2).sum().backward()
    expected = float(torch.nn.utils.clip_grad_norm_(layer.parameters(), max_norm=1e9))
    assert grad_norm(layer.parameters()) == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------------------------------------
# minibatch_indices
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size, minibatch_size", [(10, 3), (10, 10), (10, 1), (7, 100), (64, 16), (1000, 96)])
def test_minibatch_indices_cover_each_index_once(batch_size, minibatch_size):
    chunks = minibatch_indices(batch_size, minibatch_size, torch.Generator().manual_seed(0))
    assert len(chunks) == math.ceil(batch_size / minibatch_size)
    everything = torch.cat(chunks)
    assert sorted(everything.tolist()) == list(range(batch_size))
    sizes = [len(chunk) for chunk in chunks]
    assert max(sizes) - min(sizes) <= 1
    assert max(sizes) <= minibatch_size
    assert all(chunk.dtype == torch.int64 for chunk in chunks)


def test_minibatch_indices_is_shuffled_and_deterministic():
    first = minibatch_indices(50, 10, torch.Generator().manual_seed(4))
    second = minibatch_indices(50, 10, torch.Generator().manual_seed(4))
    other = minibatch_indices(50, 10, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(torch.cat(first), torch.cat(other))
    assert not torch.equal(torch.cat(first), torch.arange(50))


def test_minibatch_indices_generator_advances_between_epochs():
    generator = torch.Generator().manual_seed(0)
    epoch_1 = torch.cat(minibatch_indices(40, 8, generator))
    epoch_2 = torch.cat(minibatch_indices(40, 8, generator))
    assert not torch.equal(epoch_1, epoch_2)


@pytest.mark.parametrize("batch_size, minibatch_size", [(0, 4), (10, 0), (-3, 2), (10, -1)])
def test_minibatch_indices_bad_arguments(batch_size, minibatch_size):
    with pytest.raises(ValueError, match="batch_size and minibatch_size must be >= 1"):
        minibatch_indices(batch_size, minibatch_size)
