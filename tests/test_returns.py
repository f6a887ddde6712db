"""Reference returns and advantages: hand-worked cases, a brute-force GAE and property tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pgcourse.rl.returns import compute_gae, discounted_returns, normalize

GAE_SETTINGS = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------------------------------------
# discounted_returns
# ---------------------------------------------------------------------------------------------
def test_discounted_returns_hand_worked():
    returns = discounted_returns(torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64), 0.9)
    torch.testing.assert_close(returns, torch.tensor([2.71, 1.9, 1.0], dtype=torch.float64))


def test_discounted_returns_varied_rewards():
    # G_2 = 3, G_1 = -2 + 0.5 * 3 = -0.5, G_0 = 1 + 0.5 * -0.5 = 0.75
    returns = discounted_returns(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64), 0.5)
    torch.testing.assert_close(returns, torch.tensor([0.75, -0.5, 3.0], dtype=torch.float64))


def test_discounted_returns_gamma_one_is_reverse_cumsum():
    rewards = torch.arange(1.0, 6.0, dtype=torch.float64)
    expected = torch.flip(torch.cumsum(torch.flip(rewards, [0]), 0), [0])
    torch.testing.assert_close(discounted_returns(rewards, 1.0), expected)


def test_discounted_returns_single_step_and_empty():
    torch.testing.assert_close(discounted_returns(torch.tensor([4.0]), 0.99), torch.tensor([4.0]))
    assert discounted_returns(torch.zeros(0), 0.99).shape == (0,)


def test_discounted_returns_keeps_dtype_and_detaches():
    rewards = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    returns = discounted_returns(rewards, 0.9)
    assert returns.dtype == torch.float64
    assert not returns.requires_grad


def test_discounted_returns_rejects_2d():
    with pytest.raises(ValueError, match="1-D"):
        discounted_returns(torch.zeros(3, 2), 0.9)


@given(rewards=hnp.arrays(np.float64, st.integers(1, 30), elements=st.floats(-100, 100)),
       gamma=st.floats(0.01, 1.0))
@settings(max_examples=60, deadline=None)
def test_discounted_returns_matches_explicit_sum(rewards, gamma):
    returns = discounted_returns(torch.from_numpy(rewards), gamma).numpy()
    T = len(rewards)
    expected = [sum(gamma ** (k - t) * rewards[k] for k in range(t, T)) for t in range(T)]
    np.testing.assert_allclose(returns, expected, rtol=1e-10, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# normalize
# ---------------------------------------------------------------------------------------------
def test_normalize_mean_zero_std_one():
    x = torch.tensor([1.0, 2.0, 3.0, 10.0], dtype=torch.float64)
    y = normalize(x)
    assert abs(float(y.mean())) < 1e-12
    assert abs(float(y.std(unbiased=False)) - 1.0) < 1e-6


def test_normalize_single_element_is_zero_not_nan():
    y = normalize(torch.tensor([5.0]))
    assert torch.isfinite(y).all()
    assert float(y[0]) == 0.0


def test_normalize_constant_input_is_finite():
    y = normalize(torch.full((6,), 3.0))
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, torch.zeros(6))


# ---------------------------------------------------------------------------------------------
# compute_gae: hand-worked cases
# ---------------------------------------------------------------------------------------------
def gae(rewards, values, next_values, terminated, truncated, gamma, lam, dtype=torch.float64):
    """Call compute_gae on python lists of shape [T] (one env) or [T][N]."""
    def as_tensor(x):
        t = torch.tensor(x, dtype=dtype)
        return t[:, None] if t.dim() == 1 else t
    return compute_gae(as_tensor(rewards), as_tensor(values), as_tensor(next_values), as_tensor(terminated),
                       as_tensor(truncated), gamma, lam)


def test_gae_hand_worked_no_episode_end():
    # deltas: d0 = 1 + 0.5*2 - 1 = 1, d1 = 2 + 0.5*4 - 2 = 2
    # A1 = 2, A0 = 1 + 0.5*0.5*2 = 1.5
    advantages = gae([1.0, 2.0], [1.0, 2.0], [2.0, 4.0], [0, 0], [0, 0], gamma=0.5, lam=0.5)
    torch.testing.assert_close(advantages[:, 0], torch.tensor([1.5, 2.0], dtype=torch.float64))


def test_gae_hand_worked_termination_cuts_bootstrap_and_trace():
    # step 0 terminates: d0 = 1 - 3 = -2 (next value 100 ignored); the trace from step 1 is cut.
    # d1 = 0 + 0.9*1 - 2 = -1.1
    advantages = gae([1.0, 0.0], [3.0, 2.0], [100.0, 1.0], [1, 0], [0, 0], gamma=0.9, lam=0.8)
    torch.testing.assert_close(advantages[:, 0], torch.tensor([-2.0, -1.1], dtype=torch.float64))


def test_gae_hand_worked_truncation_bootstraps_but_cuts_trace():
    # step 0 truncates: d0 = 1 + 0.9*10 - 3 = 7 (bootstraps from V(final obs) = 10); trace cut.
    advantages = gae([1.0, 0.0], [3.0, 2.0], [10.0, 1.0], [0, 0], [1, 0], gamma=0.9, lam=0.8)
    torch.testing.assert_close(advantages[:, 0], torch.tensor([7.0, -1.1], dtype=torch.float64))


def test_gae_hand_worked_three_steps_two_envs():
    rewards = [[1.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
    values = [[0.5, 0.0], [0.5, 0.0], [0.5, 0.0]]
    next_values = [[0.5, 0.0], [0.5, 0.0], [0.5, 2.0]]
    terminated = [[0, 0], [0, 0], [0, 0]]
    truncated = [[0, 0], [0, 0], [0, 0]]
    # env 0: every delta = 1 + 1*0.5 - 0.5 = 1; gamma*lam = 0.5 -> A = [1.75, 1.5, 1]
    # env 1: deltas = [0, 0, 1 + 2] ; A = [0.75, 1.5, 3]
    advantages = gae(rewards, values, next_values, terminated, truncated, gamma=1.0, lam=0.5)
    torch.testing.assert_close(advantages, torch.tensor([[1.75, 0.75], [1.5, 1.5], [1.0, 3.0]], dtype=torch.float64))


def test_gae_single_step():
    advantages = gae([2.0], [1.0], [3.0], [0], [1], gamma=0.5, lam=0.9)
    torch.testing.assert_close(advantages, torch.tensor([[2.5]], dtype=torch.float64))


def test_gae_bool_and_float_flags_agree():
    generator = torch.Generator().manual_seed(0)
    shape = (7, 3)
    rewards, values, next_values = (torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(3))
    terminated = torch.rand(shape, generator=generator) < 0.3
    truncated = torch.rand(shape, generator=generator) < 0.3
    from_bool = compute_gae(rewards, values, next_values, terminated, truncated, 0.9, 0.7)
    from_float = compute_gae(rewards, values, next_values, terminated.double(), truncated.double(), 0.9, 0.7)
    torch.testing.assert_close(from_bool, from_float, rtol=0, atol=0)


@pytest.mark.parametrize("bad", ["values", "next_values", "terminated", "truncated"])
def test_gae_shape_mismatch_raises(bad):
    tensors = {name: torch.zeros(5, 2) for name in ("rewards", "values", "next_values", "terminated", "truncated")}
    tensors[bad] = torch.zeros(5, 3)
    with pytest.raises(ValueError, match=r"\[T, N\]"):
        compute_gae(**tensors, gamma=0.99, lam=0.95)


def test_gae_rejects_1d_inputs():
    tensors = [torch.zeros(5) for _ in range(5)]
    with pytest.raises(ValueError):
        compute_gae(*tensors, 0.99, 0.95)


# ---------------------------------------------------------------------------------------------
# compute_gae against an independent brute-force definition
# ---------------------------------------------------------------------------------------------
def random_rollout(rng: np.random.Generator, T: int, N: int, p_term: float = 0.15, p_trunc: float = 0.15):
    """A consistent rollout: inside an episode next_values[t] = values[t+1]; where an episode ends,
    next_values[t] is V(final obs), unrelated to values[t+1] (the next episode's first state)."""
    rewards = rng.normal(size=(T, N))
    terminated = rng.random((T, N)) < p_term
    truncated = rng.random((T, N)) < p_trunc
    state_values = rng.normal(size=(T + 1, N)) * 3.0  # V(s_0) ... V(s_T)
    final_values = rng.normal(size=(T, N)) * 3.0      # V(final obs) where an episode ended
    values = state_values[:-1]
    done = terminated | truncated
    next_values = np.where(done, final_values, state_values[1:])
    return rewards, values, next_values, terminated, truncated


def brute_force_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """A_t = (1-lam) sum_{n<L} lam^(n-1) A_t^(n) + lam^(L-1) A_t^(L), with the n-step advantages
    A_t^(n) = sum_{j<n} gamma^j r_{t+j} + gamma^n V_boot - V(s_t) written out from scratch.

    L is the number of steps from t to the end of t's episode segment in the rollout (the first
    terminated/truncated step, or the last step of the rollout). Inside the segment the bootstrap is
    V(s_{t+n}) = values[t+n]; at its last step it is next_values (0 if that step terminated)."""
    T, N = rewards.shape
    advantages = np.zeros((T, N))
    for i in range(N):
        for t in range(T):
            end = t
            while end < T - 1 and not (terminated[end, i] or truncated[end, i]):
                end += 1
            L = end - t + 1
            n_step = []
            for n in range(1, L + 1):
                total = sum(gamma ** j * rewards[t + j, i] for j in range(n))
                last = t + n - 1
                if n < L:
                    bootstrap = values[t + n, i]
                else:
                    bootstrap = 0.0 if terminated[last, i] else next_values[last, i]
                n_step.append(total + gamma ** n * bootstrap - values[t, i])
            weighted = sum((1 - lam) * lam ** (n - 1) * n_step[n - 1] for n in range(1, L))
            advantages[t, i] = weighted + lam ** (L - 1) * n_step[L - 1]
    return advantages


def reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    return compute_gae(as_t(rewards), as_t(values), as_t(next_values), torch.as_tensor(terminated),
                       torch.as_tensor(truncated), gamma, lam).numpy()


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_gae_equals_brute_force_lambda_blend(seed, lam):
    rng = np.random.default_rng(seed)
    T, N = int(rng.integers(1, 14)), int(rng.integers(1, 5))
    rollout = random_rollout(rng, T, N)
    gamma = float(rng.uniform(0.5, 1.0))
    np.testing.assert_allclose(reference_gae(*rollout, gamma, lam), brute_force_gae(*rollout, gamma, lam),
                               rtol=1e-10, atol=1e-10)


def test_gae_brute_force_cases_contain_terminations_and_truncations():
    # the fixed seeds above really exercise both kinds of episode end mid-rollout
    rng = np.random.default_rng(3)
    _, _, _, terminated, truncated = random_rollout(rng, 13, 4)
    assert terminated[:-1].any() and truncated[:-1].any()


@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 12), N=st.integers(1, 4),
       gamma=st.floats(0.1, 1.0), lam=st.floats(0.0, 1.0))
@GAE_SETTINGS
def test_gae_equals_brute_force_property(seed, T, N, gamma, lam):
    rollout = random_rollout(np.random.default_rng(seed), T, N, p_term=0.2, p_trunc=0.2)
    np.testing.assert_allclose(reference_gae(*rollout, gamma, lam), brute_force_gae(*rollout, gamma, lam),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_gae_lambda_zero_is_one_step_td_error(seed):
    rng = np.random.default_rng(100 + seed)
    rewards, values, next_values, terminated, truncated = random_rollout(rng, 10, 3)
    gamma = 0.93
    td_error = rewards + gamma * (1 - terminated) * next_values - values
    np.testing.assert_allclose(reference_gae(rewards, values, next_values, terminated, truncated, gamma, 0.0),
                               td_error, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_gae_lambda_one_is_monte_carlo_minus_value(seed):
    """lam = 1: discounted rewards to the episode end (or rollout end) + gamma^k V(s') only where
    the segment was truncated or cut by the rollout end, never after a termination, minus V(s_t)."""
    rng = np.random.default_rng(200 + seed)
    rewards, values, next_values, terminated, truncated = random_rollout(rng, 11, 3)
    gamma = 0.9
    T, N = rewards.shape
    expected = np.zeros((T, N))
    for i in range(N):
        for t in range(T):
            total, k = 0.0, t
            while True:
                total += gamma ** (k - t) * rewards[k, i]
                if terminated[k, i]:
                    break
                if truncated[k, i] or k == T - 1:
                    total += gamma ** (k - t + 1) * next_values[k, i]
                    break
                k += 1
            expected[t, i] = total - values[t, i]
    np.testing.assert_allclose(reference_gae(rewards, values, next_values, terminated, truncated, gamma, 1.0),
                               expected, rtol=1e-10, atol=1e-10)


def test_gae_truncation_uses_next_values_termination_does_not():
    rewards = torch.zeros(1, 1, dtype=torch.float64)
    values = torch.zeros(1, 1, dtype=torch.float64)
    next_values = torch.full((1, 1), 5.0, dtype=torch.float64)
    no = torch.zeros(1, 1, dtype=torch.bool)
    yes = torch.ones(1, 1, dtype=torch.bool)
    truncated_adv = compute_gae(rewards, values, next_values, no, yes, 0.9, 0.95)
    terminated_adv = compute_gae(rewards, values, next_values, yes, no, 0.9, 0.95)
    both_adv = compute_gae(rewards, values, next_values, yes, yes, 0.9, 0.95)
    assert float(truncated_adv) == pytest.approx(4.5)
    assert float(terminated_adv) == 0.0
    assert float(both_adv) == 0.0  # terminated wins: a terminal state has no future


@pytest.mark.parametrize("flag", ["terminated", "truncated"])
def test_gae_trace_is_cut_at_episode_end(flag):
    """What happens after an episode end (rewards, values) never reaches the advantage before it."""
    T = 6
    rewards = torch.ones(T, 1, dtype=torch.float64)
    values = torch.zeros(T, 1, dtype=torch.float64)
    next_values = torch.zeros(T, 1, dtype=torch.float64)
    flags = {"terminated": torch.zeros(T, 1), "truncated": torch.zeros(T, 1)}
    flags[flag][2] = 1.0
    base = compute_gae(rewards, values, next_values, flags["terminated"], flags["truncated"], 0.99, 0.95)
    later_rewards = rewards.clone()
    later_rewards[3:] = 1000.0
    changed = compute_gae(later_rewards, values, next_values, flags["terminated"], flags["truncated"], 0.99, 0.95)
    torch.testing.assert_close(base[:3], changed[:3], rtol=0, atol=0)
    assert not torch.allclose(base[3:], changed[3:])


# ---------------------------------------------------------------------------------------------
# compute_gae: properties
# ---------------------------------------------------------------------------------------------
finite = st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False)


@given(data=st.data(), T=st.integers(1, 15), N=st.integers(1, 4))
@GAE_SETTINGS
def test_gae_no_ends_lambda_one_gamma_one_closed_form(data, T, N):
    """No episode end, lam = gamma = 1 and consistent values (next_values[t] = values[t+1]):
    A_t = sum_{k >= t} r_k + V(s_T) - V(s_t)."""
    rewards = data.draw(hnp.arrays(np.float64, (T, N), elements=finite))
    state_values = data.draw(hnp.arrays(np.float64, (T + 1, N), elements=finite))
    flags = np.zeros((T, N), dtype=bool)
    advantages = reference_gae(rewards, state_values[:-1], state_values[1:], flags, flags, 1.0, 1.0)
    reward_to_go = np.flip(np.cumsum(np.flip(rewards, 0), 0), 0)
    expected = reward_to_go + state_values[T] - state_values[:-1]
    np.testing.assert_allclose(advantages, expected, rtol=1e-9, atol=1e-9)


@given(seed=st.integers(0, 2**31 - 1), T=st.integers(2, 12), N=st.integers(1, 3),
       gamma=st.floats(0.1, 1.0), lam=st.floats(0.0, 1.0), end=st.integers(0, 10),
       flag=st.sampled_from(["terminated", "truncated"]))
@GAE_SETTINGS
def test_gae_ignores_everything_after_an_episode_end(seed, T, N, gamma, lam, end, flag):
    rng = np.random.default_rng(seed)
    end = min(end, T - 2)
    rewards, values, next_values = rng.normal(size=(3, T, N))
    terminated = np.zeros((T, N), dtype=bool)
    truncated = np.zeros((T, N), dtype=bool)
    (terminated if flag == "terminated" else truncated)[end, :] = True
    base = reference_gae(rewards, values, next_values, terminated, truncated, gamma, lam)
    rewards2, values2, next_values2 = rewards.copy(), values.copy(), next_values.copy()
    rewards2[end + 1:] = rng.normal(size=rewards2[end + 1:].shape) * 50
    values2[end + 1:] = rng.normal(size=values2[end + 1:].shape) * 50
    next_values2[end + 1:] = rng.normal(size=next_values2[end + 1:].shape) * 50
    # more episode ends later on change nothing before the first one either
    terminated2, truncated2 = terminated.copy(), truncated.copy()
    terminated2[end + 1:] = rng.random(terminated2[end + 1:].shape) < 0.5
    changed = reference_gae(rewards2, values2, next_values2, terminated2, truncated2, gamma, lam)
    np.testing.assert_allclose(base[:end + 1], changed[:end + 1], rtol=0, atol=0)


@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 12), N=st.integers(1, 4),
       gamma=st.floats(0.1, 1.0), lam=st.floats(0.0, 1.0), scale=st.floats(-3.0, 3.0))
@GAE_SETTINGS
def test_gae_is_linear_in_rewards(seed, T, N, gamma, lam, scale):
    rng = np.random.default_rng(seed)
    rewards_a, rewards_b, values, next_values = rng.normal(size=(4, T, N))
    terminated = rng.random((T, N)) < 0.2
    truncated = rng.random((T, N)) < 0.2
    zeros = np.zeros((T, N))
    combined = reference_gae(rewards_a + scale * rewards_b, values, next_values, terminated, truncated, gamma, lam)
    part_a = reference_gae(rewards_a, values, next_values, terminated, truncated, gamma, lam)
    part_b = reference_gae(rewards_b, zeros, zeros, terminated, truncated, gamma, lam)
    np.testing.assert_allclose(combined, part_a + scale * part_b, rtol=1e-9, atol=1e-9)


@given(T=st.integers(1, 8), N=st.integers(1, 3), dtype=st.sampled_from([torch.float32, torch.float64]))
@settings(max_examples=20, deadline=None)
def test_gae_preserves_dtype_shape_and_detaches(T, N, dtype):
    rewards = torch.randn(T, N, dtype=dtype, requires_grad=True)
    values = torch.randn(T, N, dtype=dtype, requires_grad=True)
    next_values = torch.randn(T, N, dtype=dtype, requires_grad=True)
    flags = torch.zeros(T, N, dtype=torch.bool)
    advantages = compute_gae(rewards, values, next_values, flags, flags, 0.99, 0.95)
    assert advantages.dtype == dtype
    assert advantages.shape == (T, N)
    assert not advantages.requires_grad
    assert advantages.grad_fn is None
    assert rewards.grad is None


def test_gae_float64_precision_is_kept():
    # 1 + 1e-12 is representable in float64 but not in float32
    rewards = torch.tensor([[1e-12], [1.0]], dtype=torch.float64)
    zeros = torch.zeros(2, 1, dtype=torch.float64)
    advantages = compute_gae(rewards, zeros, zeros, zeros, zeros, 1.0, 1.0)
    assert float(advantages[0, 0]) - 1.0 == pytest.approx(1e-12, rel=1e-3)
    assert math.isclose(float(advantages[1, 0]), 1.0)
