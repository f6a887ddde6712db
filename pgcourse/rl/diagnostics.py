"""Numbers that tell whether a policy-gradient run is healthy (logged after every update).

Sums and variances of many terms are accumulated in :func:`accumulation_dtype`: float64 where the
run's device has it (CPU, CUDA), float32 where it does not (Apple's MPS).
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .batching import mean_over_rows

# device types whose tensors cannot be float64 (MPS: "the MPS framework doesn't support float64")
DEVICE_TYPES_WITHOUT_FLOAT64 = frozenset({"mps"})


def supports_float64(device: torch.device | str) -> bool:
    """Whether a tensor on ``device`` can be float64: True on CPU and CUDA, False on MPS."""
    return torch.device(device).type not in DEVICE_TYPES_WITHOUT_FLOAT64


def accumulation_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype to accumulate sums and variances in on ``device``: ``torch.float64`` where the device has
    it (CPU, CUDA), else ``torch.float32`` (MPS). Every float64 the package asks for on a run's device
    goes through this one function, so the rule lives here only."""
    return torch.float64 if supports_float64(device) else torch.float32


def _accumulable(tensor: Tensor) -> Tensor:
    """``tensor`` detached, flattened to ``[n]`` and cast to :func:`accumulation_dtype` of its device."""
    return tensor.detach().flatten().to(accumulation_dtype(tensor.device))


def approx_kl(old_log_probs: Tensor, new_log_probs: Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Low-variance, always non-negative estimate of :math:`\mathrm{KL}(\pi_{old}\,\|\,\pi_{new})`.

    With :math:`\log r = \log\pi_{new} - \log\pi_{old}` on actions sampled from :math:`\pi_{old}`,

    .. math:: \widehat{KL} = \mathbb{E}\big[(r - 1) - \log r\big]

    (Schulman's "k3" estimator: unbiased, and each term is :math:`\ge 0` because :math:`x-1\ge\log x`.)
    ``mask``: one estimate per agent (:func:`pgcourse.rl.batching.mean_over_rows`).
    """
    log_ratio = (new_log_probs - old_log_probs).detach()  # [B]
    return mean_over_rows((torch.exp(log_ratio) - 1.0) - log_ratio, mask)


def clip_fraction(ratio: Tensor, clip_eps: float | Tensor, mask: Tensor | None = None) -> Tensor:
    r"""Fraction of samples whose ratio lies outside :math:`[1-\epsilon, 1+\epsilon]` (where PPO clips).
    ``mask``: one fraction per agent (:func:`pgcourse.rl.batching.mean_over_rows`)."""
    ratio = ratio.detach()
    return mean_over_rows(((ratio - 1.0).abs() > clip_eps).float(), mask)


def explained_variance(values: Tensor, returns: Tensor) -> float:
    r""":math:`1 - \mathrm{Var}[\hat R - V] / \mathrm{Var}[\hat R]`.

    1 is a perfect critic, 0 is no better than predicting the mean return, below 0 is worse than
    that. Returns ``nan`` when the returns do not vary (the ratio is undefined). Computed on the inputs'
    device in :func:`accumulation_dtype` (float64 on CPU and CUDA, float32 on MPS).
    """
    values, returns = _accumulable(values), _accumulable(returns)  # [B], [B]
    var_returns = returns.var(unbiased=False)
    if var_returns.item() == 0.0:
        return float("nan")
    return float(1.0 - (returns - values).var(unbiased=False) / var_returns)


def relative_value_error(values: Tensor, returns: Tensor) -> float:
    r""":math:`\sqrt{\mathrm{mean}[(\hat R - V)^2]} \,/\, \mathrm{mean}|\hat R|`: the critic's typical error as a
    fraction of the size of its targets.

    Explained variance divides by :math:`\mathrm{Var}[\hat R]`, so once the targets barely vary (every CartPole
    episode reaching the 500-step limit: all targets near :math:`1/(1-\gamma)`) it turns negative for a
    critic that is off by 1%. This number says whether the critic is actually off. ``nan`` if all targets are 0.
    Computed on the inputs' device in :func:`accumulation_dtype` (float64 on CPU and CUDA, float32 on MPS).
    """
    values, returns = _accumulable(values), _accumulable(returns)  # [B], [B]
    scale = returns.abs().mean()
    if scale.item() == 0.0:
        return float("nan")
    return float((returns - values).pow(2).mean().sqrt() / scale)


def grad_norm(parameters: Iterable[torch.nn.Parameter]) -> float:
    """Global L2 norm of the gradients currently stored in ``parameters`` (before any clipping)."""
    norms = [p.grad.detach().norm(2) for p in parameters if p.grad is not None]
    if not norms:
        return 0.0
    return float(torch.stack(norms).norm(2))


def gradient_variance(grads: Tensor) -> float:
    r"""Total variance of a stochastic gradient estimator, measured from ``K`` sampled gradients.

    .. math:: \sum_{p=1}^{P} \frac{1}{K-1}\sum_{k=1}^{K} \big(g_{k,p} - \bar g_p\big)^2
              = \operatorname{tr}\,\widehat{\mathrm{Cov}}[g]

    Args:
        grads: ``[K, P]``: row ``k`` is the flattened gradient vector of the ``k``-th independent
            estimate (e.g. from its own batch of episodes), ``K >= 2``.

    Returns:
        The sum over the ``P`` coordinates of the unbiased sample variance across the ``K`` samples,
        computed on the device of ``grads`` in :func:`accumulation_dtype` (float64 on CPU and CUDA, float32 on MPS).
    """
    if grads.dim() != 2 or grads.shape[0] < 2:
        raise ValueError(f"grads must be [K, P] with K >= 2 sampled gradients, got shape {tuple(grads.shape)}")
    grads = grads.detach().to(accumulation_dtype(grads.device))  # [K, P]
    return float(grads.var(dim=0, unbiased=True).sum())
