"""The math of policy gradients on sequences, as small pure tensor functions (chapter 08).

A language model is a policy whose action at step :math:`t` is the next token :math:`y_t`, whose state is
the prompt :math:`x` and the tokens so far :math:`y_{<t}`, and whose episode ends at the end-of-sequence
token. Everything the course built carries over; what is new is bookkeeping: responses in a batch have
different lengths, so every per-token tensor travels with a **mask** (1 for a real response token, the
end-of-sequence token included; 0 for padding), and every sum or mean over tokens is a masked one.

Shapes: ``B`` responses (for GRPO, ``P`` prompts times ``G`` samples each, laid out prompt-major: the ``G``
samples of prompt 0 first), ``T`` response positions (the longest response; shorter ones padded), ``V`` the
vocabulary. ``logits[:, t]`` is the model's distribution over ``tokens[:, t]`` (already shifted: the caller
aligns them). Chapter 08's exercises re-implement :func:`sequence_log_probs`, :func:`kl_k1`, :func:`kl_k3`,
:func:`group_relative_advantages` and :func:`masked_clipped_loss`.
"""
from __future__ import annotations

import torch
from torch import Tensor


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """The mean of ``values`` over the positions where ``mask`` is 1 (a scalar; 0 if the mask is empty).

    ``values`` and ``mask`` broadcast together (e.g. ``[B, T]`` and ``[B, T]``); ``mask`` may be bool or 0/1
    floats. Padding never enters the mean, however many padded positions a batch has.
    """
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def token_log_probs(logits: Tensor, tokens: Tensor) -> Tensor:
    """:math:`\\log \\pi_\\theta(y_t \\mid x, y_{<t})` for every position: ``[B, T, V]`` logits and ``[B, T]`` token
    ids in, ``[B, T]`` out (padding positions included: the mask is applied by the caller)."""
    log_p = torch.log_softmax(logits, dim=-1)  # [B, T, V]
    return log_p.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)  # [B, T]


def sequence_log_probs(logits: Tensor, tokens: Tensor, mask: Tensor) -> Tensor:
    """:math:`\\log \\pi_\\theta(y \\mid x) = \\sum_t m_t \\log \\pi_\\theta(y_t \\mid x, y_{<t})`: ``[B]``.

    Args:
        logits: ``[B, T, V]``, the model's logits for each response position (aligned with ``tokens``).
        tokens: ``[B, T]`` integer token ids of the sampled responses, padded.
        mask: ``[B, T]``, :math:`m_t`: 1 for real response tokens (end-of-sequence included), 0 for padding.

    Returns:
        The log-probability of each whole response, ``[B]``: a **sum** over its real tokens (the chain rule
        of probability), never a mean, and never touched by the padding's tokens.
    """
    per_token = token_log_probs(logits, tokens)  # [B, T]
    return (per_token * mask.to(per_token.dtype)).sum(-1)  # [B]


def kl_k1(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """The k1 estimator of :math:`D_{KL}(\\pi_\\theta \\| \\pi_{ref})`, per token: ``[B, T]`` in, ``[B, T]`` out.

    With :math:`y_t` sampled from :math:`\\pi_\\theta`, :math:`k_1 = \\log \\pi_\\theta(y_t) - \\log \\pi_{ref}(y_t)` is
    unbiased (its mean over samples is the KL) but noisy, and negative on single tokens. RLHF's PPO subtracts
    :math:`\\beta k_1` from each token's reward.
    """
    return log_probs - ref_log_probs


def kl_k3(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """The k3 estimator of :math:`D_{KL}(\\pi_\\theta \\| \\pi_{ref})`, per token: ``[B, T]`` in, ``[B, T]`` out.

    With :math:`r = \\pi_{ref}(y_t) / \\pi_\\theta(y_t)` and :math:`y_t \\sim \\pi_\\theta`,
    :math:`k_3 = (r - 1) - \\log r`. Unbiased (:math:`\\mathbb{E}[r] = 1`), never negative, and lower-variance
    than k1 when the policies are close (Schulman, "Approximating KL divergence", 2020). GRPO adds
    :math:`\\beta k_3` to its loss.
    """
    log_ratio = ref_log_probs - log_probs  # log r, [B, T]
    return torch.expm1(log_ratio) - log_ratio  # [B, T]


def group_relative_advantages(rewards: Tensor, eps: float = 1e-6, scale: bool = True) -> Tensor:
    """GRPO's advantages: each sample's reward against the other samples of its own prompt: ``[P, G]`` → ``[P, G]``.

    .. math:: \\hat A_{i} = \\frac{r_i - \\operatorname{mean}(r_1..r_G)}{\\operatorname{std}(r_1..r_G) + \\epsilon}

    Args:
        rewards: ``[P, G]``: row ``p`` holds the rewards of the ``G >= 2`` responses sampled for prompt ``p``.
        eps: :math:`\\epsilon`, keeps a group whose rewards are all equal at advantage 0 (not NaN).
        scale: divide by the group's standard deviation (the sample std, ``unbiased``, as GRPO's code does).
            ``False`` keeps only the centring (Dr. GRPO argues the scaling over-weights near-solved prompts).

    Returns:
        ``[P, G]``, the same dtype. The group mean plays the critic's role: no value network is trained.
    """
    centred = rewards - rewards.mean(dim=1, keepdim=True)  # [P, G]
    if not scale:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)  # [P, G]


def masked_clipped_loss(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, mask: Tensor,
                        clip_eps: float = 0.2) -> Tensor:
    """PPO's clipped surrogate on tokens, to **minimise**: a scalar.

    .. math:: -\\frac{1}{\\sum_{i,t} m_{i,t}} \\sum_{i,t} m_{i,t}
              \\min\\big(\\rho_{i,t} \\hat A_{i,t},\\ \\operatorname{clip}(\\rho_{i,t}, 1-\\epsilon, 1+\\epsilon) \\hat A_{i,t}\\big),
              \\qquad \\rho_{i,t} = e^{\\log\\pi_\\theta(y_{i,t}) - \\log\\pi_{old}(y_{i,t})}

    Args:
        log_probs: ``[B, T]`` per-token log-probabilities under the policy being updated (with grad).
        old_log_probs: ``[B, T]`` the same tokens' log-probabilities when they were sampled (constants).
        advantages: ``[B, T]`` per token (PPO with a value head), or ``[B]`` per response (GRPO, REINFORCE),
            broadcast over the response's tokens.
        mask: ``[B, T]``, 1 for real tokens, 0 for padding.
        clip_eps: :math:`\\epsilon`.

    Returns:
        The negative clipped surrogate, averaged over every real token of the batch (a token-level mean: a long
        response counts by its tokens; padding never counts).
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)  # [B, 1], broadcast over T
    ratio = torch.exp(log_probs - old_log_probs.detach())  # [B, T]
    unclipped = ratio * advantages  # [B, T]
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages  # [B, T]
    return -masked_mean(torch.min(unclipped, clipped), mask)


def kl_penalized_rewards(task_rewards: Tensor, log_probs: Tensor, ref_log_probs: Tensor, mask: Tensor,
                         kl_coef: float) -> Tensor:
    """RLHF's per-token rewards: :math:`r_t = -\\beta k_{1,t}`, plus the task reward on the response's last real
    token: ``[B]`` and ``[B, T]`` tensors in, ``[B, T]`` out (0 on padding).

    Summed over a response they give :math:`R(x, y) - \\beta \\log\\frac{\\pi_\\theta(y|x)}{\\pi_{ref}(y|x)}`: the KL
    leash becomes part of the return that GAE spreads over tokens.
    """
    mask = mask.to(log_probs.dtype)
    rewards = -kl_coef * kl_k1(log_probs, ref_log_probs).detach() * mask  # [B, T]
    last = (mask.sum(-1).long() - 1).clamp(min=0)  # [B], index of each response's last real token
    rewards = rewards.clone()
    rewards[torch.arange(rewards.shape[0]), last] += task_rewards.to(rewards.dtype) * (mask.sum(-1) > 0)
    return rewards
