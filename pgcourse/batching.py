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


def minibatch_size_for(batch_size: int, minibatch_size: int, num_minibatches: int | None) -> int:
    """Rows per minibatch for a batch of ``batch_size`` transitions: ``minibatch_size``, or with a minibatch
    *count* ``k`` (``num_minibatches``, CleanRL's setting) ``ceil(batch_size / k)``, so that an epoch takes at
    most ``k`` gradient steps however wide the batch is (on a GPU the steps, not the rows, cost the time)."""
    if num_minibatches is None:
        return minibatch_size
    return max(1, -(-batch_size // num_minibatches))


def on_device(minibatches: list[Tensor], device: torch.device) -> list[Tensor]:
    """An epoch's minibatch indices on ``device`` in **one** host-to-device copy (the permutation is drawn on the
    CPU, from the run's generator): a copy per minibatch would wait for the GPU once per gradient step. The
    indices are the same numbers, in tensors of the same shapes; on the CPU they are returned as they are."""
    if all(chunk.device.type == device.type for chunk in minibatches):
        return list(minibatches)
    flat = torch.cat([chunk.cpu().reshape(-1) for chunk in minibatches]).to(device)  # [sum of sizes]
    parts = flat.split([chunk.numel() for chunk in minibatches])
    return [part.view(chunk.shape) for part, chunk in zip(parts, minibatches)]
