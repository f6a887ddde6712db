"""Returns and advantages: the reference versions of what the exercises ask learners to write.

Pure tensor functions, no environment and no network. Every function works on the device and dtype
of its inputs and never builds a graph through its inputs' history (returns and advantages are
targets, not things to differentiate through).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .batching import mean_over_rows


def discounted_returns(rewards: Tensor, gamma: float) -> Tensor:
    r"""Monte Carlo return of every step of one finished episode.

    .. math:: G_t = r_t + \gamma G_{t+1}, \qquad G_T = 0

    Args:
        rewards: ``[T]`` rewards ``r_0 … r_{T-1}`` of one complete episode.
        gamma: discount factor :math:`\gamma \in (0, 1]`.

    Returns:
        ``[T]`` tensor of returns :math:`G_t`, same dtype and device as ``rewards``.
    """
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D [T] (one episode), got shape {tuple(rewards.shape)}")
    rewards = rewards.detach()
    returns = torch.empty_like(rewards)  # [T]
    running_return = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    for t in range(rewards.shape[0] - 1, -1, -1):
        running_return = rewards[t] + gamma * running_return
        returns[t] = running_return
    return returns


def normalize(x: Tensor, eps: float = 1e-8, mask: Tensor | None = None) -> Tensor:
    r"""Shift and scale to zero mean and unit standard deviation: :math:`(x - \bar x) / (\sigma_x + \epsilon)`.

    Uses the population standard deviation (``unbiased=False``) so a single element maps to 0,
    not NaN. ``eps`` keeps a constant input finite. ``mask`` (``[A, b]``, ``pg.train_many``'s agent axis):
    each agent's rows of ``x [A, b]`` with their own mean and deviation.
    """
    if mask is None:
        return (x - x.mean()) / (x.std(unbiased=False) + eps)
    mean = mean_over_rows(x, mask)  # [A, 1]
    return (x - mean) / (mean_over_rows((x - mean) ** 2, mask).sqrt() + eps)


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    truncated: Tensor,
    gamma: float,
    lam: float,
    *,
    td_errors_fn: Callable[..., Tensor] | None = None,
) -> Tensor:
    r"""Generalised Advantage Estimation over a rollout of ``T`` steps from ``N`` environments.

    .. math::
        \delta_t = r_t + \gamma (1 - \text{term}_t) V(s'_{t}) - V(s_t)

        \hat A_t = \delta_t + \gamma \lambda (1 - \text{done}_t) \hat A_{t+1},
        \qquad \text{done}_t = \text{term}_t \lor \text{trunc}_t

    ``s'_t`` is the *true* next observation of step ``t``: for a step that ended an episode it is the
    final observation, not the first observation of the next episode. So a truncated step (time
    limit) still bootstraps from :math:`V(s'_t)`; only a terminated step does not. The lambda-trace
    is cut at every episode end, terminated or truncated, because step ``t+1`` belongs to another
    episode.

    Args:
        rewards: ``[T, N]`` rewards :math:`r_t`.
        values: ``[T, N]`` critic values :math:`V(s_t)` of the observations the actions were taken in.
        next_values: ``[T, N]`` :math:`V(s'_t)` of the true next observations.
        terminated: ``[T, N]`` bool/0-1, the episode ended in a terminal state at step ``t``.
        truncated: ``[T, N]`` bool/0-1, the episode was cut by a time limit at step ``t``.
        gamma: discount :math:`\gamma \in (0, 1]`.
        lam: GAE :math:`\lambda \in [0, 1]`; 0 gives the one-step TD error, 1 the Monte Carlo
            return minus the value (bootstrapped where the rollout or a truncation cuts it).
        td_errors_fn: computes the deltas :math:`\delta_t` (default :func:`td_errors`); the training
            loops pass a learner's ``td_errors`` here (``pg.train(..., td_errors=my_td_errors)``).

    Returns:
        ``[T, N]`` advantages :math:`\hat A_t` (detached). Returns targets for the critic are
        ``advantages + values``.
    """
    shapes = {name: tuple(t.shape) for name, t in
              dict(rewards=rewards, values=values, next_values=next_values,
                   terminated=terminated, truncated=truncated).items()}
    if len(set(shapes.values())) != 1 or rewards.dim() != 2:
        raise ValueError(f"compute_gae expects five tensors of the same shape [T, N]; got {shapes}")
    rewards, values, next_values = rewards.detach(), values.detach(), next_values.detach()
    not_done = 1.0 - torch.logical_or(terminated.bool(), truncated.bool()).to(rewards.dtype)  # [T, N]
    deltas = (td_errors_fn or td_errors)(rewards, values, next_values, terminated, gamma)  # [T, N]
    advantages = torch.zeros_like(rewards)  # [T, N]
    running_advantage = torch.zeros_like(rewards[0])  # [N]
    for t in range(rewards.shape[0] - 1, -1, -1):
        running_advantage = deltas[t] + gamma * lam * not_done[t] * running_advantage
        advantages[t] = running_advantage
    return advantages


def td_errors(rewards: Tensor, values: Tensor, next_values: Tensor, terminated: Tensor, gamma: float) -> Tensor:
    r"""One-step temporal-difference errors, the building block of GAE.

    .. math:: \delta_t = r_t + \gamma (1 - \text{term}_t) V(s'_t) - V(s_t)

    A terminated step has no future, so its bootstrap term is cut; a truncated step (time limit)
    keeps it, which is why ``truncated`` is not an argument here.

    Args:
        rewards: ``[T, N]`` rewards :math:`r_t`.
        values: ``[T, N]`` :math:`V(s_t)`.
        next_values: ``[T, N]`` :math:`V(s'_t)` of the true next observations.
        terminated: ``[T, N]`` bool/0-1, the episode ended in a terminal state at step ``t``.
        gamma: discount :math:`\gamma`.

    Returns:
        ``[T, N]`` TD errors :math:`\delta_t` (detached: they are advantage estimates, constants of
        the policy gradient).
    """
    rewards, values, next_values = rewards.detach(), values.detach(), next_values.detach()
    not_terminated = 1.0 - terminated.to(rewards.dtype)  # [T, N]
    return rewards + gamma * not_terminated * next_values - values  # [T, N]


def baseline_advantages(returns: Tensor, values: Tensor) -> Tensor:
    r"""Advantages with a learned state baseline: :math:`\hat A_i = G_i - V(s_i)`.

    Subtracting a function of the state alone leaves the policy gradient unbiased and lowers its
    variance. The values are detached: the policy loss must not push gradient into the critic.

    Args:
        returns: ``[B]`` Monte Carlo returns :math:`G_i`.
        values: ``[B]`` critic values :math:`V(s_i)` (may carry grad; it is cut here).

    Returns:
        ``[B]`` advantages (detached).
    """
    return returns.detach() - values.detach()  # [B]
