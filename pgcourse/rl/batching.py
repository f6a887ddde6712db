"""Rows of a batch: means over them, and shuffled minibatches of them (PPO's inner loop)."""
from __future__ import annotations

import torch
from torch import Tensor


def mean_over_rows(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """The mean the losses and diagnostics take over a batch's rows: ``x.mean()``, or with ``mask`` (``[A, b]``
    bool, True on each agent's own rows of a padded ``[A, b]`` batch: ``pg.train_many``'s agent axis) each agent's
    mean over its own rows, ``[A, 1]`` (an agent with no rows gets 0; padded rows add an exact 0 and get no
    gradient). Every loss of :mod:`pgcourse.rl.losses` reduces through this one function, so its math is written
    once for one agent and for A."""
    if mask is None:
        return x.mean()
    return (torch.where(mask, x, 0.0).sum(dim=-1, keepdim=True)
            / mask.sum(dim=-1, keepdim=True).clamp(min=1))  # [A, 1]


def minibatch_indices(batch_size: int, minibatch_size: int, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> list[Tensor]:
    """A random permutation of ``range(batch_size)`` cut into ``ceil(batch_size / minibatch_size)`` chunks.

    Every index appears exactly once per epoch; chunk sizes differ by at most one, so no
    minibatch is a tiny, noisy leftover. The permutation is drawn where ``generator`` lives (the CPU without
    one; the trainer's is on the GPU when it trains there, so the indices never cross to it) and moved to
    ``device`` if one is given.
    """
    if batch_size < 1 or minibatch_size < 1:
        raise ValueError(f"batch_size and minibatch_size must be >= 1, got {batch_size} and {minibatch_size}")
    num_minibatches = -(-batch_size // minibatch_size)
    drawn_on = generator.device if generator is not None else torch.device("cpu")
    permutation = torch.randperm(batch_size, generator=generator, device=drawn_on)  # [batch_size]
    if device is not None:
        permutation = permutation.to(device)
    return list(torch.tensor_split(permutation, num_minibatches))


def minibatch_size_for(batch_size: int, minibatch_size: int, num_minibatches: int | None) -> int:
    """Rows per minibatch for a batch of ``batch_size`` transitions: ``minibatch_size``, or with a minibatch
    *count* ``k`` (``num_minibatches``, CleanRL's setting) ``ceil(batch_size / k)``, so that an epoch takes at
    most ``k`` gradient steps however wide the batch is (on a GPU the steps, not the rows, cost the time)."""
    if num_minibatches is None:
        return minibatch_size
    return max(1, -(-batch_size // num_minibatches))


def on_device(minibatches: list[Tensor], device: torch.device) -> list[Tensor]:
    """An epoch's minibatch indices on ``device``, those not there yet in **one** host-to-device copy (a
    learner's ``minibatch_indices`` may draw on the CPU): a copy per minibatch would wait for the GPU once per
    gradient step. The indices are the same numbers, in tensors of the same shapes; those already on
    ``device`` are returned as they are."""
    away = [k for k, chunk in enumerate(minibatches) if chunk.device.type != device.type]
    if not away:
        return list(minibatches)
    flat = torch.cat([minibatches[k].cpu().reshape(-1) for k in away]).to(device)  # [sum of sizes]
    moved = dict(zip(away, flat.split([minibatches[k].numel() for k in away])))
    return [moved[k].view(chunk.shape) if k in moved else chunk for k, chunk in enumerate(minibatches)]
