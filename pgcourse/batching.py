"""Splitting a batch into shuffled minibatches (PPO's inner loop)."""
from __future__ import annotations

import torch
from torch import Tensor


def minibatch_indices(batch_size: int, minibatch_size: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> list[Tensor]:
    """A random permutation of ``range(batch_size)`` cut into ``ceil(batch_size / minibatch_size)`` chunks.

    Every index appears exactly once per epoch; chunk sizes differ by at most one, so no
    minibatch is a tiny, noisy leftover.
    """
    if batch_size < 1 or minibatch_size < 1:
        raise ValueError(f"batch_size and minibatch_size must be >= 1, got {batch_size} and {minibatch_size}")
    num_minibatches = -(-batch_size // minibatch_size)
    permutation = torch.randperm(batch_size, generator=generator).to(device)  # [batch_size]
    return list(torch.tensor_split(permutation, num_minibatches))
