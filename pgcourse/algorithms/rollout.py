"""Collecting experience: fixed-length rollouts of vector envs (A2C, PPO) and whole episodes (REINFORCE).

The env is behind one protocol (``trainer.env_stepper``): with ``env_backend="torch"`` it is a torch vector
env on the training device and nothing is read on the host per step; with the numpy envs the observations go
to the device and the actions come back every step. Finished episodes are recorded once per rollout.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .trainer import Trainer


@dataclass
class Rollout:
    """``n_steps`` steps of ``N`` environments (``T = n_steps``), all on the training device.

    ``valid[t, i]`` is False for autoreset steps (not transitions: excluded from every loss); it is
    the learner-replaceable ``transition_mask`` of the done flags.
    ``next_values[t]`` is V of the true next observation: ``values[t + 1]`` (NEXT_STEP autoreset
    hands back the final observation of an ending episode, and the following reset step's value
    is computed on it) and ``V(last observation)`` for the last step.
    """

    obs: Tensor          # [T, N, obs_dim]
    actions: Tensor      # [T, N] (discrete) or [T, N, D] (continuous), as sampled
    log_probs: Tensor    # [T, N]
    values: Tensor       # [T, N]
    next_values: Tensor  # [T, N]
    rewards: Tensor      # [T, N]
    terminated: Tensor   # [T, N] float 0/1
    truncated: Tensor    # [T, N] float 0/1
    valid: Tensor        # [T, N] bool


def collect_rollout(trainer: Trainer, n_steps: int) -> Rollout:
    """Step every env ``n_steps`` times with the current policy (the trainer's ``act`` hook).

    A rollout always holds at least one transition. With ``n_steps=1``, a rollout that starts when every
    env's episode has just ended (on one-step episodes, every second rollout) would hold autoreset steps only,
    an empty batch to learn from; it is collected once more, and that one holds a transition from every env
    (the step after an autoreset step is a real transition).
    """
    rollout = _collect_rollout(trainer, n_steps)
    if not bool(rollout.valid.any()):
        rollout = _collect_rollout(trainer, n_steps)
    return rollout


def _collect_rollout(trainer: Trainer, n_steps: int) -> Rollout:
    """The steps of one rollout. The env is behind one protocol (``trainer.env_stepper``): a torch env keeps
    observations, actions, rewards and flags on the device, a numpy env copies them each step; either way the
    finished episodes are recorded once, after the last step."""
    num_envs, device = trainer.config.num_envs, trainer.device
    obs_buffer = torch.empty((n_steps, num_envs, trainer.obs_dim), device=device)  # [T, N, obs_dim]
    action_shape = (n_steps, num_envs) if trainer.action_kind == "discrete" else \
        (n_steps, num_envs, int(trainer.action_low.shape[0]))
    actions_buffer = torch.empty(action_shape, device=device,
                                 dtype=torch.long if trainer.action_kind == "discrete" else torch.float32)
    log_probs_buffer = torch.empty((n_steps, num_envs), device=device)  # [T, N]
    values_buffer = torch.empty((n_steps + 1, num_envs), device=device)  # [T + 1, N]
    rewards = torch.empty((n_steps, num_envs), device=device)  # [T, N] float32
    # row 0: the flags of the step before this rollout (its first step is a reset step after an episode end)
    terminated = torch.zeros((n_steps + 1, num_envs), dtype=torch.bool, device=device)  # [T + 1, N]
    truncated = torch.zeros((n_steps + 1, num_envs), dtype=torch.bool, device=device)  # [T + 1, N]

    stepper = trainer.env_stepper
    terminated[0] = stepper.begin_rollout()
    with torch.no_grad():
        for t in range(n_steps):
            obs = stepper.observation()  # [N, obs_dim]
            actions, log_probs = trainer.act(obs)  # [N] or [N, D], [N]
            obs_buffer[t], actions_buffer[t], log_probs_buffer[t] = obs, actions, log_probs
            values_buffer[t] = trainer.value_net(obs)
            rewards[t], terminated[t + 1], truncated[t + 1] = stepper.step(trainer.env_action_tensor(actions))
        values_buffer[n_steps] = trainer.value_net(stepper.observation())
    trainer.record_rollout(stepper.end_rollout())

    valid = trainer.components.transition_mask(terminated, truncated)[1:]  # [T, N]
    return Rollout(obs=obs_buffer, actions=actions_buffer, log_probs=log_probs_buffer, values=values_buffer[:-1],
                   next_values=values_buffer[1:], rewards=rewards,
                   terminated=terminated[1:].float(), truncated=truncated[1:].float(),
                   valid=torch.as_tensor(valid, device=device).bool())


def flatten_valid(rollout: Rollout, *tensors: Tensor) -> list[Tensor]:
    """Flatten ``[T, N, ...]`` tensors to ``[B, ...]`` keeping only real transitions (``valid``).

    The rows kept are found once (``nonzero``: the batch size ``B`` has to reach the host, one read) and
    gathered from every tensor, the rows boolean indexing keeps, in its order (one read for all the tensors,
    not one each)."""
    mask = rollout.valid.reshape(-1)  # [T * N]
    rows = mask.nonzero().squeeze(1)  # [B]
    return [tensor.reshape(mask.shape[0], *tensor.shape[2:]).index_select(0, rows) for tensor in tensors]


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
