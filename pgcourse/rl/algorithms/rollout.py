"""Collecting experience: fixed-length rollouts of vector envs (A2C, PPO) and whole episodes (REINFORCE).

The env is behind one protocol with the agent axis first (``agents.env``: ``trainer.env_stepper`` for one agent):
with ``env_backend="torch"`` it is a torch vector env on the training device (one env of ``A x N`` for
``pg.train_many``'s agents) and nothing is read on the host per step; with the numpy envs the observations go to
the device and the actions come back every step. Finished episodes are recorded once per rollout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .agents import OneAgent, Rows
from .trainer import Trainer


@dataclass
class Rollout:
    """``n_steps`` steps of ``N`` environments (``T = n_steps``), all on the training device; from
    :func:`collect_rollouts` with an agent axis after the time axis (``[T, A, N]``), from :func:`collect_rollout`
    (one trainer) without it.

    ``valid[t, i]`` is False for autoreset steps (not transitions: excluded from every loss); it is
    the learner-replaceable ``transition_mask`` of the done flags.
    ``next_values[t]`` is V of the true next observation: ``values[t + 1]`` (NEXT_STEP autoreset
    hands back the final observation of an ending episode, and the following reset step's value
    is computed on it) and ``V(last observation)`` for the last step.
    """

    obs: Tensor          # [T, (A,) N, obs_dim]
    actions: Tensor      # [T, (A,) N] (discrete) or [T, (A,) N, D] (continuous), as sampled
    log_probs: Tensor    # [T, (A,) N]
    values: Tensor       # [T, (A,) N]
    next_values: Tensor  # [T, (A,) N]
    rewards: Tensor      # [T, (A,) N]
    terminated: Tensor   # [T, (A,) N] float 0/1
    truncated: Tensor    # [T, (A,) N] float 0/1
    valid: Tensor        # [T, (A,) N] bool

    def agent(self, a: int) -> Rollout:
        """Agent ``a``'s rollout ``[T, N]`` of a rollout ``[T, A, N]`` (views)."""
        return Rollout(**{name: getattr(self, name)[:, a] for name in self.__dataclass_fields__})


def collect_rollout(trainer: Trainer, n_steps: int) -> Rollout:
    """One trainer's rollout ``[T, N]``: :func:`collect_rollouts` for a batch of one agent (REINFORCE and TRPO
    train one agent; the tests and checks step one trainer)."""
    return collect_rollouts(OneAgent(trainer), n_steps).agent(0)


def collect_rollouts(agents, n_steps: int) -> Rollout:
    """Step every running agent's envs ``n_steps`` times with its current policy: a rollout ``[T, A, N]``.

    A rollout always holds at least one transition of every running agent. With ``n_steps=1``, a rollout that
    starts when every env's episode has just ended (on one-step episodes, every second rollout) would hold
    autoreset steps only, an empty batch to learn from; that agent's rollout is collected once more (the others
    wait: an agent's run never depends on the others'), and it holds a transition from every env (the step
    after an autoreset step is a real transition).
    """
    running = agents.running()
    rollout = _collect_rollout(agents, n_steps, running)
    empty = [running[a] and not bool(rollout.valid[:, a].any()) for a in range(len(running))]
    if any(empty):
        again = _collect_rollout(agents, n_steps, empty)
        for name in rollout.__dataclass_fields__:
            for a in range(len(running)):
                if empty[a]:
                    getattr(rollout, name)[:, a] = getattr(again, name)[:, a]
    return rollout


class StepColumns:
    """A rollout's per-step tensors as columns ``[T, ...]``. On the CPU each step's tensors are copied into columns
    made at the first step: keeping T steps' tensors alive until the end fragments glibc's heap (the peak RSS of a
    16,384-env PPO update grew 1.9x, measured with tests/test_num_envs_memory.py's script). On other devices they are
    kept as they come and stacked once (a GPU's caching allocator does not fragment so: seven copy kernels a step
    fewer). The same numbers either way."""

    def __init__(self, steps: int, device: torch.device):
        self.steps, self.copy = steps, device.type == "cpu"
        self.columns: list = []

    def add(self, t: int, tensors: tuple[Tensor, ...]) -> None:
        if not self.columns:
            self.columns = [torch.empty((self.steps, *x.shape), dtype=x.dtype, device=x.device) if self.copy else []
                            for x in tensors]
        for column, x in zip(self.columns, tensors):
            if self.copy:
                column[t] = x
            else:
                column.append(x)

    def stacked(self) -> list[Tensor]:
        return self.columns if self.copy else [torch.stack(column) for column in self.columns]


def _collect_rollout(agents, n_steps: int, running: list[bool]) -> Rollout:
    """The steps of one rollout of the ``running`` agents (the others' rows are not valid). The env is behind one
    protocol (``agents.env``, agent axis first): a torch env keeps observations, actions, rewards and flags on
    the device, a numpy env copies them each step; either way the finished episodes are recorded once, after
    the last step."""
    trainers, env = agents.trainers, agents.env
    steps = StepColumns(n_steps, agents.device)  # obs, actions, log-probs, values, rewards, terminated, truncated
    # the flags of the step before this rollout (its first step is a reset step after an episode end)
    flags_before = agents.begin_rollout(n_steps, running)  # [A, N] bool
    with torch.no_grad():
        for t in range(n_steps):
            obs = env.observation()  # [A, N, obs_dim]
            actions, log_probs = agents.act(obs, running)  # [A, N] or [A, N, D], [A, N]
            values = agents.values(obs)  # [A, N]
            steps.add(t, (obs, actions, log_probs, values, *env.step(agents.env_actions(actions, running))))
        last_values = agents.values(env.observation())  # [A, N]
    obs, actions, log_probs, values, rewards, terminated, truncated = steps.stacked()  # [T, A, N, ...] each
    terminated = torch.cat([flags_before.unsqueeze(0), terminated])  # [T + 1, A, N], row 0: the step before
    truncated = torch.cat([torch.zeros_like(flags_before).unsqueeze(0), truncated])  # [T + 1, A, N]
    valid = torch.zeros(rewards.shape, dtype=torch.bool, device=agents.device)  # [T, A, N]
    records = env.end_rollout()
    for a in (a for a in range(len(trainers)) if running[a]):
        trainers[a].record_rollout(records[a])
        valid[:, a] = torch.as_tensor(trainers[a].components.transition_mask(terminated[:, a], truncated[:, a])[1:],
                                      device=agents.device).bool()
    return Rollout(obs=obs, actions=actions, log_probs=log_probs, values=values,
                   next_values=torch.cat([values[1:], last_values.unsqueeze(0)]), rewards=rewards,
                   terminated=terminated[1:].float(), truncated=truncated[1:].float(), valid=valid)


def flatten_valid(rollout: Rollout, *tensors: Tensor) -> list[Tensor]:
    """Flatten ``[T, N, ...]`` tensors to ``[B, ...]`` keeping only real transitions (``valid``).

    The rows kept are found once (``nonzero``: the batch size ``B`` has to reach the host, one read) and
    gathered from every tensor, the rows boolean indexing keeps, in its order (one read for all the tensors,
    not one each)."""
    mask = rollout.valid.reshape(-1)  # [T * N]
    rows = mask.nonzero().squeeze(1)  # [B]
    return [tensor.reshape(mask.shape[0], *tensor.shape[2:]).index_select(0, rows) for tensor in tensors]


def agents_batch(rollout: Rollout, *tensors: Tensor):
    """The valid transitions of a rollout ``[T, A, N, ...]`` as a batch ``[A, B, ...]`` per tensor, and its
    :class:`~.agents.Rows`. One agent: :func:`flatten_valid`'s rows, no padding (``B`` is its count). A > 1:
    each agent's valid rows first, in order, then padding up to ``B = T * N`` (a length the config fixes), the
    row counts read in one copy."""
    steps, count, num_envs = rollout.valid.shape
    if count == 1:
        flat = flatten_valid(rollout.agent(0), *(tensor[:, 0] for tensor in tensors))
        return [tensor.unsqueeze(0) for tensor in flat], Rows([flat[0].shape[0]], [True])
    mask = rollout.valid.transpose(0, 1).reshape(count, steps * num_envs)  # [A, T * N] in (t, n) order
    order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)  # each agent's valid rows first, in order
    sizes = mask.sum(dim=1).tolist()  # [A], the one read
    flat_order = (order + torch.arange(count, device=order.device).unsqueeze(1) * order.shape[1]).reshape(-1)
    batch = [tensor.transpose(0, 1).reshape(count * steps * num_envs, *tensor.shape[3:]).index_select(0, flat_order)
             .view(count, steps * num_envs, *tensor.shape[3:]) for tensor in tensors]  # [A, T * N, ...] each
    positions = torch.arange(steps * num_envs, device=mask.device)
    return batch, Rows(sizes, [size > 0 for size in sizes],
                       positions < torch.tensor(sizes, device=mask.device).unsqueeze(1))


def collect_episodes(trainer: Trainer) -> tuple[Tensor, Tensor, list[Tensor], list[float]]:
    """One complete episode per env from a fresh reset (REINFORCE).

    Returns ``obs [B, obs_dim]`` and ``actions [B]`` of all episodes concatenated (env 0's episode
    first), the list of each episode's rewards ``[T_i]`` (as trained on: scaled if reward
    normalisation is on) and each episode's raw return (for the history).
    """
    envs, device = trainer.envs, trainer.device
    num_envs = trainer.config.num_envs
    obs_np, _ = envs.reset()  # continues each env's seeded RNG; NEXT_STEP autoreset state is cleared
    obs_steps, action_steps, reward_steps = [], [], []
    lengths = np.zeros(num_envs, dtype=np.int64)  # [N] length of the first episode, 0 while running
    raw_returns = np.zeros(num_envs)  # [N]
    with torch.no_grad():
        while not lengths.all():
            obs = trainer.obs_tensor(obs_np)  # [N, obs_dim]
            actions, _ = trainer.act(obs)  # [N] or [N, D]
            obs_np, rewards, terminated, truncated, infos = envs.step(trainer.env_actions(actions))
            obs_steps.append(obs)
            action_steps.append(actions)
            reward_steps.append(np.asarray(rewards, dtype=np.float32))
            ended_now = (np.asarray(terminated) | np.asarray(truncated)) & (lengths == 0)
            if ended_now.any():  # gymnasium adds infos["episode"] only on steps where an episode ended
                lengths[ended_now] = len(reward_steps)
                raw_returns[ended_now] = infos["episode"]["r"][ended_now]
    obs_all = torch.stack(obs_steps)  # [T_max, N, obs_dim]
    actions_all = torch.stack(action_steps)  # [T_max, N]
    rewards_all = torch.as_tensor(np.stack(reward_steps), device=device)  # [T_max, N]
    obs = torch.cat([obs_all[:lengths[i], i] for i in range(num_envs)])  # [B, obs_dim]
    actions = torch.cat([actions_all[:lengths[i], i] for i in range(num_envs)])  # [B]
    episode_rewards = [rewards_all[:lengths[i], i] for i in range(num_envs)]  # N x [T_i]
    return obs, actions, episode_rewards, raw_returns.tolist()
