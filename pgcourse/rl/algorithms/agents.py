"""The agent axis of the training loops: A >= 1 agents, each with its own seed, envs, weights, optimisers and
settings, trained by one loop (:mod:`.ppo`, :mod:`.a2c`). ``pg.train`` is the batch of one; ``pg.train_many``
the same loop with one agent per seed.

Every tensor of a loop has the agent axis after the time axis (a rollout ``[T, A, N, ...]``) or first (a batch
``[A, B, ...]``, a minibatch ``[A, b, ...]``). What differs between one agent and many is behind two classes
with the same methods:

- :class:`OneAgent` (A = 1): the agent axis is a view of length one over the trainer's own modules, hooks and
  optimisers, and each piece of math is called on the agent's rows as they are: ``pg.train``'s run, bit for bit
  as before the loops had an agent axis (its batch has no padding, so there is no mask).
- :class:`~.stacked.AgentStack` (A > 1): the agents' weights stacked ``[A, ...]`` (one forward, one backward
  and one Adam step for all agents), each agent's rows padded to a length fixed by the configs, with a mask.

The functions below take either as ``agents`` (annotated ``OneAgent``: the methods both have). The pieces of
math (``parts.<name>``) are called through :func:`reduce_rows` and :func:`map_rows`: with the
reference functions and A > 1 once for all agents (their ``mask=`` argument: each agent's mean over its own
rows), otherwise agent by agent on its own rows (a learner's function, written for one agent, runs unchanged).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from torch import Tensor

from .. import diagnostics, losses, returns
from ..batching import mean_over_rows, minibatch_size_for, on_device
from .components import Components
from .trainer import Number, Trainer

# the reference pieces that take ``mask=``: called once for all agents of a padded batch
MASKED_PIECES = frozenset({mean_over_rows, losses.clipped_surrogate_loss, losses.value_loss, losses.entropy_bonus_loss,
                           losses.a2c_policy_loss, returns.normalize, diagnostics.approx_kl,
                           diagnostics.clip_fraction})


@dataclass
class Rows:
    """Which rows of an ``[A, b, ...]`` batch or minibatch are each agent's.

    ``sizes[a]`` rows of agent ``a`` come first, padding after them; ``mask`` is ``[A, b]`` (True on the agent's
    rows; None with one agent, whose batch is never padded); ``stepping[a]``: whether agent ``a`` takes part
    (an agent whose training is over, whose epochs stopped early, or that has no k-th minibatch does not)."""

    sizes: list[int]
    stepping: list[bool]
    mask: Tensor | None = None

    @property
    def agents(self) -> list[int]:
        return [a for a, taking_part in enumerate(self.stepping) if taking_part]


class PerAgent(tuple):
    """A piece of math the agents do not share (``pg.train_many`` with planted bugs per agent): agent ``a``'s own
    function is ``piece[a]``. :func:`reduce_rows`, :func:`map_rows` and :func:`advantages_of` call it agent by agent,
    each on its own rows; called as one function it refuses."""

    def __call__(self, *args, **kwargs):
        raise TypeError("this piece differs between agents: call piece[a] on agent a's rows (reduce_rows, map_rows)")


def shared_parts(components: Sequence[Components]) -> Components:
    """The agents' pieces of math as one :class:`Components`: a field the agents share as it is, one that differs a
    :class:`PerAgent`. GAE (``gae()``, which combines ``compute_gae`` and ``td_errors``) is combined per agent."""
    first = components[0]
    differing = {f.name: PerAgent(getattr(c, f.name) for c in components) for f in fields(Components)
                 if any(getattr(c, f.name) is not getattr(first, f.name) for c in components)}
    if "compute_gae" in differing or "td_errors" in differing:
        differing["compute_gae"] = PerAgent(c.gae() for c in components)
        differing["td_errors"] = returns.td_errors  # already inside each agent's gae(): gae() returns compute_gae
    return replace(first, **differing)


def piece_of(fn: Callable, agent: int) -> Callable:
    """Agent ``agent``'s function of a piece: ``fn`` itself, or its entry of a :class:`PerAgent`."""
    return fn[agent] if isinstance(fn, PerAgent) else fn


def as_row(values: Sequence[Number], device: torch.device) -> Tensor:
    """One number per agent as a tensor ``[A]`` (a learner's piece may give Python floats; those are kept in
    float64, so that the history reads back the float it gave)."""
    if len(values) == 1 and isinstance(values[0], Tensor):
        return values[0].reshape(1)  # one agent: a view (no kernel, on a GPU)
    return torch.stack([value.reshape(()) if isinstance(value, Tensor) else
                        torch.tensor(float(value), dtype=torch.float64, device=device) for value in values])


def own_rows(tensor: Tensor, agent: int, size: int) -> Tensor:
    """Agent ``agent``'s first ``size`` rows of ``tensor [A, b, ...]``: ``[size, ...]``, a view. One agent with all
    its rows is a squeeze (whose gradient is a view too; indexing's would be a copy into zeros: a kernel)."""
    if tensor.shape[0] == 1 and size == tensor.shape[1]:
        return tensor.squeeze(0)
    return tensor[agent, :size]


def _settings_for(configs: Sequence, setting: Callable, device: torch.device, cache: dict) -> tuple | None:
    """The positional settings of a piece for all agents at once: each a Python number where the agents agree,
    a column ``[A, 1]`` where they differ (kept in ``cache``: made once, no copy to the device per step), or None
    where a setting is None for some agents and not for others (then the piece is called agent by agent)."""
    per_agent = [tuple(setting(config)) for config in configs]
    shared = []
    for values in zip(*per_agent):
        if all(value == values[0] for value in values):
            shared.append(values[0])
        elif any(value is None for value in values):
            return None
        else:
            if values not in cache:
                cache[values] = torch.tensor(values, dtype=torch.float32, device=device).unsqueeze(1)  # [A, 1]
            shared.append(cache[values])
    return tuple(shared)


def reduce_rows(agents: OneAgent, fn: Callable, tensors: Sequence[Tensor], rows: Rows,
                hyperparameters: Callable = lambda config: ()) -> Tensor:
    """``fn(*tensors, *hyperparameters(config))`` for every agent on its own rows: one number per agent ``[A]``
    (``fn`` may be a :class:`PerAgent`: each agent's own function).

    ``tensors`` are ``[A, b, ...]``; ``hyperparameters(config)`` gives an agent's remaining positional arguments
    from its config (e.g. ``lambda c: (c.clip_eps,)``). One agent: ``fn`` on its rows as they are. A > 1 with a reference piece: one
    call with ``mask=`` for all agents; otherwise one call per agent taking part on its own rows (0 for the
    others)."""
    configs = [trainer.config for trainer in agents.trainers]
    if rows.mask is not None and fn in MASKED_PIECES:
        shared = _settings_for(configs, hyperparameters, agents.device, agents.setting_columns)
        if shared is not None:
            return fn(*tensors, *shared, mask=rows.mask).reshape(len(configs))  # [A]
    values: list[Number] = [0.0] * len(configs)
    for a in rows.agents:
        values[a] = piece_of(fn, a)(*(None if tensor is None else own_rows(tensor, a, rows.sizes[a])
                                      for tensor in tensors), *hyperparameters(configs[a]))
    return as_row(values, agents.device)  # [A]


def map_rows(agents: OneAgent, fn: Callable, x: Tensor, rows: Rows) -> Tensor:
    """``fn(x)`` on every agent's own rows of ``x [A, b]``, elementwise (advantage normalisation): ``[A, b]``."""
    if rows.mask is None:
        return torch.stack([piece_of(fn, a)(own_rows(x, a, rows.sizes[a])) for a in range(x.shape[0])])  # unpadded
    if fn in MASKED_PIECES:
        return fn(x, mask=rows.mask)
    out = x.clone()
    for a in rows.agents:
        out[a, :rows.sizes[a]] = piece_of(fn, a)(x[a, :rows.sizes[a]])
    return out


def advantages_of(agents: OneAgent, compute_gae: Callable, rollout) -> Tensor:
    """GAE ``[T, A, N]`` of a rollout ``[T, A, N]``: one call with the agents side by side on the env axis,
    ``[T, A * N]`` (GAE treats every column on its own), or one per agent where their gamma, lambda or GAE differ."""
    fields = (rollout.rewards, rollout.values, rollout.next_values, rollout.terminated, rollout.truncated)
    discounts = [(trainer.config.gamma, trainer.config.gae_lambda) for trainer in agents.trainers]
    if len(set(discounts)) == 1 and not isinstance(compute_gae, PerAgent):
        return compute_gae(*(field.flatten(1, 2) for field in fields), *discounts[0]).view(rollout.values.shape)
    return torch.stack([piece_of(compute_gae, a)(*(field[:, a] for field in fields), *discounts[a])
                        for a in range(len(discounts))], dim=1)  # [T, A, N]


def gather_rows(tensors: Tensor | Sequence[Tensor | None], index: Tensor) -> Tensor | list[Tensor | None]:
    """Each agent's rows ``index [A, b]`` of ``tensor [A, B, ...]``: ``[A, b, ...]`` (a copy; no arithmetic). Given a
    sequence of tensors ``[A, B, ...]`` (None stays None), a list of their rows: the rows of ``[A * B]`` found once."""
    many = not isinstance(tensors, Tensor)
    tensors = list(tensors) if many else [tensors]
    count, length = next(tensor for tensor in tensors if tensor is not None).shape[:2]
    flat = index[0] if count == 1 else (  # [A * b] rows of [A * B]
        index + torch.arange(count, device=index.device).unsqueeze(1) * length).reshape(-1)
    rows = [None if tensor is None else tensor.flatten(0, 1).index_select(0, flat).view(*index.shape, *tensor.shape[2:])
            for tensor in tensors]
    return rows if many else rows[0]


def read_rows(values: dict[str, Tensor]) -> dict[str, list[float]]:
    """Tensors ``[A]`` (one number per agent) as lists of Python floats, in one device-to-host copy per dtype
    (:func:`~.trainer.read_numbers` for 0-d tensors: ``tolist`` gives the floats ``float(t)`` gives)."""
    groups: dict[tuple[torch.dtype, torch.device], list[str]] = {}
    for name, value in values.items():
        groups.setdefault((value.dtype, value.device), []).append(name)
    read: dict[str, list[float]] = {}
    for names in groups.values():
        stacked = torch.stack([values[name].detach() for name in names])  # [k, A] on the device
        read.update((name, [float(n) for n in numbers]) for name, numbers in zip(names, stacked.cpu().tolist()))
    return {name: read[name] for name in values}


class AgentMeans:
    """Each agent's means of named diagnostics over the gradient steps it took in one update.

    ``add(rows, name=tensor [A], ...)`` keeps the tensors as they are; ``means()`` reads every tensor in one
    copy per dtype (:func:`read_rows`) and sums each agent's numbers in the order they were added
    (as ``total += value``), so one agent's means are the floats its loop always logged."""

    def __init__(self, agents: int):
        self.agents = agents
        self.steps: list[tuple[list[bool], dict[str, Tensor]]] = []

    def add(self, rows: Rows | None = None, **values: Tensor) -> None:
        """One gradient step's numbers ``[A]``, of the agents ``rows.stepping`` (all agents without ``rows``)."""
        self.steps.append(([True] * self.agents if rows is None else list(rows.stepping), values))

    def read(self, name: str, since: int = 0) -> list[list[float]]:
        """Agent by agent, the numbers of ``name`` from the steps it took since step ``since`` (one read)."""
        numbers = read_rows({str(k): values[name] for k, (_, values) in enumerate(self.steps[since:])})
        return [[numbers[str(k)][a] for k, (stepping, _) in enumerate(self.steps[since:]) if stepping[a]]
                for a in range(self.agents)]

    def means(self) -> list[dict[str, float]]:
        names = list(self.steps[0][1]) if self.steps else []
        numbers = read_rows({f"{name}/{k}": values[name] for k, (_, values) in enumerate(self.steps)
                             for name in names})
        means = []
        for a in range(self.agents):
            agent_means = {}
            taken = [k for k, (stepping, _) in enumerate(self.steps) if stepping[a]]
            for name in names:
                total = 0.0
                for k in taken:
                    total += numbers[f"{name}/{k}"][a]
                agent_means[name] = total / len(taken) if taken else float("nan")
            means.append(agent_means)
        return means


class OneAgent:
    """One agent (``pg.train``): the loops' agent axis over one :class:`~.trainer.Trainer`, as views of length one.

    Its steps are the trainer's: the ``act`` hook samples, the trainer's modules give log-probs and values,
    the ``actor_critic_step`` hook steps its optimisers (lesson 06's planted bugs replace those hooks)."""

    count = 1

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.trainers = [trainer]
        self.parts = trainer.components  # the pieces of math the loop calls
        self.device, self.action_kind = trainer.device, trainer.action_kind
        self.setting_columns: dict = {}

    def running(self) -> list[bool]:
        return [not self.trainer.done]

    @property
    def done(self) -> bool:
        return self.trainer.done

    @property
    def env(self):
        """The env protocol with the agent axis first (the trainer's stepper: numpy or torch)."""
        return self.trainer.env_stepper

    def begin_rollout(self, steps: int, running: list[bool]) -> Tensor:
        return self.env.begin_rollout(steps)  # [1, N]

    def env_actions(self, actions: Tensor, running: list[bool]) -> Tensor:
        return self.trainer.env_action_tensor(actions[0]).unsqueeze(0)  # [1, N(, D)]

    def act(self, obs: Tensor, running: list[bool]) -> tuple[Tensor, Tensor]:
        actions, log_probs = self.trainer.act(obs[0])  # [N] or [N, D], [N]
        return actions.unsqueeze(0), log_probs.unsqueeze(0)

    def values(self, obs: Tensor) -> Tensor:
        return self.trainer.value_net(obs[0]).unsqueeze(0)  # [1, b]

    def log_probs_and_entropy(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        log_probs, entropy = self.trainer.log_probs_and_entropy(obs[0], actions[0])  # [b], [b]
        return log_probs.unsqueeze(0), entropy.unsqueeze(0)

    def old_log_probs(self, stored: Tensor, new_log_probs: Tensor) -> Tensor:
        return self.trainer.hooks.old_log_probs(stored[0], new_log_probs[0]).unsqueeze(0)  # the hook's

    def step(self, actor_loss: Tensor, critic_loss: Tensor, rows: Rows) -> tuple[Tensor, Tensor]:
        actor_norm, critic_norm = self.trainer.actor_critic_step(actor_loss.squeeze(0), critic_loss.squeeze(0))
        return as_row([actor_norm], self.device), as_row([critic_norm], self.device)

    def minibatches(self, rows: Rows) -> list[tuple[Tensor, Rows]]:
        trainer, config = self.trainer, self.trainer.config
        size = minibatch_size_for(rows.sizes[0], config.minibatch_size, config.num_minibatches)
        chunks = on_device(trainer.components.minibatch_indices(rows.sizes[0], size, trainer.minibatch_generator),
                           self.device)  # [b] each, on the device
        return [(chunk.unsqueeze(0), Rows([chunk.shape[0]], [True])) for chunk in chunks]

    def finish(self) -> list:
        return [self.trainer.finish()]

    def __enter__(self) -> OneAgent:  # the with-block around a loop: the trainer's Ctrl-C guard and clean-up
        self.trainer.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        return self.trainer.__exit__(exc_type, exc, tb)


def agent_minibatches(agents, rows: Rows, padded_length: int) -> list[tuple[Tensor, Rows]]:
    """A > 1: each agent taking part draws its epoch's permutation from its own generator (its own
    ``minibatch_indices``); the k-th minibatches of all agents side by side, ``index [A, b]`` padded to
    ``padded_length`` rows (a length the configs fix, never the other agents' batches: the matrix products may
    round an agent's rows differently for another length), sent to the device in one copy."""
    chunks: dict[int, list[Tensor]] = {}
    for a in rows.agents:
        trainer, config = agents.trainers[a], agents.trainers[a].config
        size = minibatch_size_for(rows.sizes[a], config.minibatch_size, config.num_minibatches)
        chunks[a] = list(trainer.components.minibatch_indices(rows.sizes[a], size, trainer.minibatch_generator))
    count = len(agents.trainers)
    steps = max((len(agent_chunks) for agent_chunks in chunks.values()), default=0)
    index = torch.zeros((steps, count, padded_length), dtype=torch.long, device=agents.device)  # [K, A, b]
    sizes = [[0] * count for _ in range(steps)]
    for a, agent_chunks in chunks.items():
        for k, chunk in enumerate(on_device(agent_chunks, agents.device)):  # drawn on the device, or one copy
            index[k, a, :chunk.shape[0]] = chunk
            sizes[k][a] = chunk.shape[0]
    positions = torch.arange(padded_length, device=agents.device)  # [b]
    counts = torch.tensor(sizes, device=agents.device)  # [K, A], the epoch's one copy
    return [(index[k], Rows(sizes[k], [size > 0 for size in sizes[k]], positions < counts[k].unsqueeze(1)))
            for k in range(steps)]


def epoch_kl_exceeds(agents, per_step: AgentMeans, since: int, rows: Rows) -> list[bool]:
    """Whether each agent's mean minibatch KL over this epoch's steps exceeds its ``target_kl`` (the one read per
    epoch, and only when some agent has a target)."""
    configs = [trainer.config for trainer in agents.trainers]
    if not any(configs[a].target_kl is not None for a in rows.agents):
        return [False] * len(configs)
    kls = per_step.read("approx_kl", since)
    return [a in rows.agents and configs[a].target_kl is not None and bool(kls[a])
            and float(np.mean(kls[a])) > configs[a].target_kl for a in range(len(configs))]
