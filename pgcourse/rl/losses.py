"""Loss terms of the policy-gradient family, as small pure functions (all are *losses*: minimise them).

Shapes: ``B`` is a batch of transitions (flattened ``T * N``), ``D`` the action dimension.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .batching import mean_over_rows


def reinforce_loss(log_probs: Tensor, weights: Tensor) -> Tensor:
    r"""Score-function surrogate :math:`L = -\frac{1}{B}\sum_i \log\pi(a_i|s_i)\, w_i`.

    ``weights`` are returns :math:`G_t` (REINFORCE) or advantages :math:`G_t - V(s_t)` (with a
    baseline). They are constants of the gradient, so they are detached here.

    Args:
        log_probs: ``[B]`` :math:`\log\pi_\theta(a_i|s_i)`, with grad.
        weights: ``[B]`` returns or advantages.
    """
    return -(log_probs * weights.detach()).mean()


def clipped_surrogate_loss(new_log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor,
                           clip_eps: float | Tensor, mask: Tensor | None = None) -> Tensor:
    r"""PPO's clipped surrogate, negated so that it is a loss.

    .. math::
        \rho_i = \exp(\log\pi_\theta(a_i|s_i) - \log\pi_{\theta_{old}}(a_i|s_i))

        L^{CLIP} = -\frac{1}{B}\sum_i \min\big(\rho_i \hat A_i,\;
                    \mathrm{clip}(\rho_i, 1-\epsilon, 1+\epsilon)\hat A_i\big)

    The ratio is formed in log space (a difference of log-probs, then ``exp``): dividing raw
    probabilities underflows for continuous actions.

    Args:
        new_log_probs: ``[B]`` log-probs under the policy being optimised (with grad).
        old_log_probs: ``[B]`` log-probs stored at collection time (constants).
        advantages: ``[B]`` advantage estimates (constants).
        clip_eps: :math:`\epsilon`, e.g. 0.2.
        mask: None (one agent); ``pg.train_many`` passes ``[A, b]`` tensors, ``clip_eps`` per agent ``[A, 1]``
            and each agent's rows (:func:`pgcourse.rl.batching.mean_over_rows`), and gets one loss per agent ``[A, 1]``.
    """
    ratio = torch.exp(new_log_probs - old_log_probs.detach())  # [B]
    advantages = advantages.detach()
    unclipped = ratio * advantages  # [B]
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages  # [B]
    return -mean_over_rows(torch.min(unclipped, clipped), mask)


def value_loss(values: Tensor, returns: Tensor, old_values: Tensor | None = None,
               clip_eps: float | Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    r"""Critic regression :math:`\frac{1}{2B}\sum_i (V(s_i) - \hat R_i)^2`.

    With ``old_values`` and ``clip_eps`` it is PPO's clipped value loss (the worse of the clipped and
    unclipped squared errors), which keeps the critic inside a trust region of its own. ``mask``: as in
    :func:`clipped_surrogate_loss` (one loss per agent).
    """
    returns = returns.detach()
    squared_error = (values - returns) ** 2  # [B]
    if old_values is not None and clip_eps is not None:
        old_values = old_values.detach()
        clipped_values = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)
        squared_error = torch.max(squared_error, (clipped_values - returns) ** 2)
    return 0.5 * mean_over_rows(squared_error, mask)


def entropy_bonus_loss(entropy: Tensor, ent_coef: float | Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Entropy term as a loss: :math:`-\beta\,\bar{H}[\pi]` (minimising it *raises* entropy). ``mask``: as in
    :func:`clipped_surrogate_loss`."""
    return -ent_coef * mean_over_rows(entropy, mask)


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


def a2c_policy_loss(log_probs: Tensor, advantages: Tensor, entropy: Tensor, ent_coef: float | Tensor,
                    mask: Tensor | None = None) -> Tensor:
    r"""Actor loss of A2C: policy gradient with advantages, plus an entropy bonus.

    .. math:: L = -\frac{1}{B}\sum_i \log\pi(a_i|s_i)\,\hat A_i \;-\; \beta\,\frac{1}{B}\sum_i H[\pi(\cdot|s_i)]

    Args:
        log_probs: ``[B]`` :math:`\log\pi_\theta(a_i|s_i)`, with grad.
        advantages: ``[B]`` :math:`\hat A_i` (constants: detached here).
        entropy: ``[B]`` :math:`H[\pi_\theta(\cdot|s_i)]`, with grad (the bonus must push the policy).
        ent_coef: :math:`\beta \ge 0`.
        mask: as in :func:`clipped_surrogate_loss`.
    """
    policy_term = -mean_over_rows(log_probs * advantages.detach(), mask)
    entropy_term = -ent_coef * mean_over_rows(entropy, mask)
    return policy_term + entropy_term


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
