"""Policies and value function: small tanh MLPs with orthogonal initialisation.

Actor and critic are separate networks (no shared trunk), so each has its own optimiser, its own
learning rate and its own gradient clipping, and a badly scaled critic cannot swamp the actor.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .distributions import categorical_entropy, categorical_log_prob, gaussian_entropy, gaussian_log_prob


def orthogonal_init(layer: nn.Linear, gain: float) -> nn.Linear:
    """Orthogonal weights with ``gain``, zero bias (the initialisation PPO's reference code uses)."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int, out_gain: float) -> nn.Sequential:
    """``in_dim -> hidden... (tanh) -> out_dim``; hidden layers gain sqrt(2), the output ``out_gain``."""
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hidden_sizes:
        layers += [orthogonal_init(nn.Linear(width, hidden), math.sqrt(2.0)), nn.Tanh()]
        width = hidden
    layers.append(orthogonal_init(nn.Linear(width, out_dim), out_gain))
    return nn.Sequential(*layers)


def sample_categorical(logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One action per row of ``logits [B, A]``: ``torch.distributions.Categorical(logits=logits).sample()``
    computed the same way (same numbers, same draws from torch's generator, or from ``generator``) without
    building the distribution object, whose argument checks cost more than the sampling itself."""
    normalized = logits - logits.logsumexp(dim=-1, keepdim=True)  # [B, A], as Categorical.__init__
    probs = torch.softmax(normalized, dim=-1)  # [B, A], as Categorical.probs
    return exponential_race(probs, torch.empty_like(probs).exponential_(generator=generator))  # [B]


def exponential_race(probs: Tensor, exponentials: Tensor) -> Tensor:
    """The index of the largest ``probs / exponentials`` in each row (``[..., k]`` -> ``[...]``), for ``exponentials``
    drawn from Exp(1): row ``i`` picks ``j`` with probability ``probs[i, j]``. This is how ``torch.multinomial``
    draws one sample (its own code: ``exponential_`` into a tensor like ``probs``, divide, ``argmax``), so the draws
    and the generator's state after them are ``torch.multinomial``'s, bit for bit; without the checks of ``probs``
    it runs first (``aminmax``, comparisons, ``sum``, ``any`` and two ``_assert_async``: about 15 kernels on a GPU in
    place of 3; on this project's 2-core Xeon, one thread, torch 2.13: 21 µs against 8 for 8 rows of 2 actions).
    The probabilities here come from a softmax of finite logits: finite and non-negative."""
    return (probs / exponentials).argmax(dim=-1)


class CategoricalPolicy(nn.Module):
    """Softmax policy over ``n_actions``: ``forward(obs [B, obs_dim]) -> logits [B, n_actions]``.

    The output layer starts with gain 0.01 so the initial policy is close to uniform.
    """

    kind = "discrete"

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, n_actions, out_gain=0.01)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs)

    def sample(self, obs: Tensor, deterministic: bool = False,
               log_prob_fn: Callable = categorical_log_prob) -> tuple[Tensor, Tensor]:
        """Actions ``[B]`` (int64) and their log-probs ``[B]`` from ``log_prob_fn(logits, actions)``."""
        logits = self(obs)  # [B, A]
        if deterministic:
            actions = logits.argmax(dim=-1)
        else:
            actions = sample_categorical(logits)
        return actions, log_prob_fn(logits, actions)

    def log_prob_entropy(self, obs: Tensor, actions: Tensor, log_prob_fn: Callable = categorical_log_prob,
                         entropy_fn: Callable = categorical_entropy) -> tuple[Tensor, Tensor]:
        """``log pi(a|s)`` ``[B]`` of stored actions, ``log_prob_fn(logits, actions)``, and the entropy
        ``[B]``, ``entropy_fn(logits)``."""
        logits = self(obs)  # [B, A]
        return log_prob_fn(logits, actions), entropy_fn(logits)


class GaussianPolicy(nn.Module):
    """Diagonal Gaussian policy with a state-independent ``log_std`` parameter.

    ``forward(obs [B, obs_dim]) -> mean [B, D]``; ``self.log_std`` is ``[D]``. Actions are sampled
    unbounded and stored as sampled; only the copy sent to the environment is clipped to the bounds
    (clipping before computing the log-prob would make it the log-density of the wrong action).
    """

    kind = "continuous"

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: tuple[int, ...] = (64, 64),
                 log_std_init: float = 0.0):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, action_dim, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs)

    def clamp_log_std_(self, low: float) -> None:
        """Project ``log_std`` onto ``[low, inf)`` in place (``config.log_std_min``): afterwards
        :math:`\\sigma = e^{\\texttt{log\\_std}} \\ge e^{\\text{low}}`, so the policy never stops exploring."""
        with torch.no_grad():
            self.log_std.clamp_(min=low)

    def sample(self, obs: Tensor, deterministic: bool = False,
               log_prob_fn: Callable = gaussian_log_prob) -> tuple[Tensor, Tensor]:
        """Actions ``[B, D]`` (unclipped) and their log-probs ``[B]``, ``log_prob_fn(mean, log_std, actions)``."""
        mean = self(obs)  # [B, D]
        if deterministic:
            actions = mean
        else:
            actions = mean + torch.exp(self.log_std) * torch.randn_like(mean)  # [B, D]
        return actions, log_prob_fn(mean, self.log_std.expand_as(mean), actions)

    def log_prob_entropy(self, obs: Tensor, actions: Tensor, log_prob_fn: Callable = gaussian_log_prob,
                         entropy_fn: Callable = gaussian_entropy) -> tuple[Tensor, Tensor]:
        """``log pi(a|s)`` ``[B]`` of stored actions, ``log_prob_fn(mean, log_std, actions)``, and the
        entropy ``[B]``, ``entropy_fn(log_std)`` (state-independent, so the same for every row)."""
        mean = self(obs)  # [B, D]
        log_probs = log_prob_fn(mean, self.log_std.expand_as(mean), actions)  # [B]
        entropy = entropy_fn(self.log_std).expand(mean.shape[0])  # [B]
        return log_probs, entropy


class ValueNet(nn.Module):
    """State-value critic ``V(s)``: ``forward(obs [B, obs_dim]) -> values [B]`` (output gain 1)."""

    def __init__(self, obs_dim: int, hidden_sizes: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.net = mlp(obs_dim, hidden_sizes, 1, out_gain=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)


def make_policy(kind: str, obs_dim: int, action_dim: int, hidden_sizes: tuple[int, ...],
                log_std_init: float = 0.0) -> nn.Module:
    """A :class:`CategoricalPolicy` (``kind="discrete"``, ``action_dim`` = number of actions) or a
    :class:`GaussianPolicy` (``kind="continuous"``, ``action_dim`` = D)."""
    if kind == "discrete":
        return CategoricalPolicy(obs_dim, action_dim, hidden_sizes)
    if kind == "continuous":
        return GaussianPolicy(obs_dim, action_dim, hidden_sizes, log_std_init)
    raise ValueError(f"unknown policy kind {kind!r}: expected 'discrete' or 'continuous'")
