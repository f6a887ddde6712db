"""Loss terms of the policy-gradient family, as small pure functions (all are *losses*: minimise them).

Shapes: ``B`` is a batch of transitions (flattened ``T * N``), ``D`` the action dimension.
"""
from __future__ import annotations

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
    # min(unclipped, clipped), its gradient written out: where the clipped term is the smaller, the ratio is outside
    # [1 - eps, 1 + eps], where clip is flat, so that term passes no gradient (detached: no backward through it);
    # inside, the two terms are equal and the unclipped one is taken. The same numbers and gradient as torch.min
    # (a zero gradient may carry the other sign: -0.0 for 0.0), in a third of its backward kernels (issue 44).
    return -mean_over_rows(torch.where(unclipped <= clipped, unclipped, clipped.detach()), mask)


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


# The policy's distributions (log-probabilities, entropies, the action the env gets) live in
# pgcourse.rl.distributions; their names here are kept for code written before they moved.
from .distributions import (LOG_SQRT_2PI, categorical_entropy, categorical_log_prob,  # noqa: E402,F401
                            env_action, gaussian_entropy, gaussian_log_prob, tanh_env_action, tanh_squashed_log_prob)
