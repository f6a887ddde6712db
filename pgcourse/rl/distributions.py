"""The policy's distributions as small pure functions: log-probabilities and entropies of the categorical and
diagonal-Gaussian policies, the tanh-squashed Gaussian, and the action a Box env gets from a sample.

Shapes: ``B`` is a batch of transitions (flattened ``T * N``), ``D`` the action dimension, ``A`` the number of
discrete actions.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def gaussian_log_prob(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    r"""Log-density of a diagonal Gaussian policy, summed over action dimensions.

    .. math::
        \log\pi(a|s) = \sum_{d=1}^{D}\Big[-\frac{(a_d-\mu_d)^2}{2\sigma_d^2} - \log\sigma_d
                       - \tfrac12\log 2\pi\Big], \qquad \sigma_d = e^{\texttt{log\_std}_d}

    Args:
        mean: ``[B, D]`` means :math:`\mu(s)`.
        log_std: ``[D]`` or ``[B, D]`` log standard deviations (broadcast against ``mean``).
        actions: ``[B, D]`` actions *as sampled* (before any clipping to the action bounds).

    Returns:
        ``[B]`` joint log-probabilities (the actions' dimensions are independent, so their
        log-densities add).
    """
    log_std = log_std.expand_as(mean)  # [B, D]
    z = (actions - mean) / torch.exp(log_std)  # [B, D]
    return (-0.5 * z.pow(2) - log_std - LOG_SQRT_2PI).sum(dim=-1)


def tanh_env_action(actions: Tensor, low: Tensor, high: Tensor) -> Tensor:
    r"""The action to send to ``env.step`` when the policy is squashed: the Gaussian sample :math:`u` mapped
    into the box by :math:`a = \text{low} + (\tanh u + 1)\,(\text{high} - \text{low}) / 2`.

    The counterpart of :func:`env_action` (which clips) for ``box_action="tanh"``: every sample lands inside the
    box, a large :math:`|u|` saturates smoothly instead of piling up on the bound, and the rollout
    stores :math:`u` (its log-density :func:`tanh_squashed_log_prob` differs from :math:`u`'s Gaussian one by a
    term without :math:`\theta`, so ratios and policy gradients are the Gaussian's).

    Args:
        actions: ``[B, D]`` Gaussian samples :math:`u`.
        low: ``[D]`` lower bounds (``env.single_action_space.low``).
        high: ``[D]`` upper bounds.

    Returns:
        ``[B, D]`` a new tensor inside ``[low, high]`` (strictly inside in exact arithmetic; in float32
        :math:`\tanh u` rounds to :math:`\pm 1` from :math:`|u| \approx 9`, which gives the bound itself).
    """
    low = torch.as_tensor(low, dtype=actions.dtype, device=actions.device)  # [D]
    high = torch.as_tensor(high, dtype=actions.dtype, device=actions.device)  # [D]
    return low + (torch.tanh(actions) + 1.0) * (high - low) / 2.0  # [B, D]


def tanh_squashed_log_prob(mean: Tensor, log_std: Tensor, pre_tanh: Tensor, high: Tensor) -> Tensor:
    r"""Log-density of the squashed action :math:`a = \text{high} \odot \tanh(u)`, :math:`u \sim
    \mathcal N(\mu, \operatorname{diag}\sigma^2)`, summed over action dimensions (change of variables).

    .. math::
        \log\pi(a|s) = \log\mathcal N(u;\mu,\sigma) - \sum_{d=1}^{D}\Big[\log\text{high}_d
                        + \log\big(1-\tanh^2 u_d\big)\Big],
        \qquad \log\big(1-\tanh^2 u\big) = 2\big(\log 2 - u - \operatorname{softplus}(-2u)\big)

    The right-hand form is exact and stays finite where :math:`\tanh^2 u` rounds to 1 (large :math:`|u|`).

    Args:
        mean: ``[B, D]`` means :math:`\mu(s)` of the Gaussian before the squash.
        log_std: ``[D]`` or ``[B, D]`` log standard deviations.
        pre_tanh: ``[B, D]`` the Gaussian sample :math:`u` itself (the squash loses it where tanh saturates).
        high: ``[D]`` positive half-widths of the symmetric action box ``[-high, high]``.

    Returns:
        ``[B]`` log-densities of the squashed actions.
    """
    log_det = torch.log(high) + 2.0 * (math.log(2.0) - pre_tanh - torch.nn.functional.softplus(-2.0 * pre_tanh))
    return gaussian_log_prob(mean, log_std, pre_tanh) - log_det.sum(dim=-1)  # [B]


def gaussian_entropy(log_std: Tensor) -> Tensor:
    r"""Entropy of a diagonal Gaussian, :math:`\sum_d (\log\sigma_d + \tfrac12\log 2\pi e)`, over the last dim."""
    return (log_std + 0.5 + LOG_SQRT_2PI).sum(dim=-1)


def categorical_log_prob(logits: Tensor, actions: Tensor) -> Tensor:
    r"""``[B]`` :math:`\log\pi(a_i|s_i)` of a softmax policy from ``[B, A]`` logits, taken in log space."""
    log_probs_all = torch.log_softmax(logits, dim=-1)  # [B, A]
    return log_probs_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


def categorical_entropy(logits: Tensor) -> Tensor:
    r"""``[B]`` entropy :math:`-\sum_a \pi(a|s)\log\pi(a|s)` of a softmax policy."""
    log_probs_all = torch.log_softmax(logits, dim=-1)  # [B, A]
    return -(log_probs_all.exp() * log_probs_all).sum(dim=-1)


def env_action(actions: Tensor, low: Tensor, high: Tensor) -> Tensor:
    r"""The action to send to ``env.step``: a copy of ``actions`` clipped to the box ``[low, high]``.

    A Gaussian policy samples outside the bounds. The environment needs an in-bounds action, but the
    rollout must store the action *as sampled*: its log-prob is what the ratio and the policy
    gradient use. So this returns a new tensor and leaves ``actions`` untouched.

    Args:
        actions: ``[B, D]`` sampled actions.
        low: ``[D]`` lower bounds (``env.single_action_space.low``).
        high: ``[D]`` upper bounds.

    Returns:
        ``[B, D]`` clipped copy.
    """
    low = torch.as_tensor(low, dtype=actions.dtype, device=actions.device)  # [D]
    high = torch.as_tensor(high, dtype=actions.dtype, device=actions.device)  # [D]
    return torch.clamp(actions, low, high)  # [B, D], a new tensor
