"""Evaluate a run: mean return over fixed, seeded episodes (the benchmark's definition of "solved")."""
from __future__ import annotations

from typing import NamedTuple

import gymnasium as gym
import numpy as np
import torch

from .envs import AUTORESET_MODE
from .run import Run, spaces_match


class EvalResult(NamedTuple):
    """``mean, std, returns = pg.evaluate(...)``; ``returns[i]`` is the episode seeded ``seed + i``."""

    mean: float
    std: float
    returns: np.ndarray


def evaluate(run: Run, env_id: str | None = None, episodes: int = 20, seed: int = 10_000,
             deterministic: bool = True, max_parallel: int = 32) -> EvalResult:
    """Play ``episodes`` episodes with ``run.act`` and return their raw (unscaled) returns.

    Episode ``i`` starts from ``env.reset(seed=seed + i)``, so the same call always plays the
    same starting states. Episodes run in parallel in a vector env, each env counting only its
    first episode. Observation normalisation uses the run's saved statistics (frozen).

    Args:
        run: a trained :class:`~pgcourse.run.Run`.
        env_id: environment to play (defaults to the one it was trained on); spaces must match.
        episodes: number of evaluation episodes.
        seed: seed of the first episode.
        deterministic: greedy actions (argmax / Gaussian mean); False samples from the policy.

    Runs with the run's ``config.torch_threads`` (1 by default, as training does), then restores the
    process's thread count.
    """
    env_id = env_id or run.config.env_id
    if not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes={episodes!r} is invalid: expected an integer >= 1")
    returns: list[float] = []
    threads_before = torch.get_num_threads()
    if run.config.torch_threads is not None:  # as in training: small networks run fastest on one thread
        torch.set_num_threads(run.config.torch_threads)
    try:
        while len(returns) < episodes:
            batch = min(max_parallel, episodes - len(returns))
            returns.extend(_play_first_episodes(run, env_id, batch, seed + len(returns), deterministic))
    finally:
        torch.set_num_threads(threads_before)
    returns_array = np.asarray(returns, dtype=np.float64)
    return EvalResult(float(returns_array.mean()), float(returns_array.std()), returns_array)


def _play_first_episodes(run: Run, env_id: str, num_envs: int, seed: int, deterministic: bool) -> list[float]:
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AUTORESET_MODE})
    try:
        if not spaces_match(envs.single_observation_space, run.observation_space) or \
                not spaces_match(envs.single_action_space, run.action_space):
            raise ValueError(f"{env_id} has observation space {envs.single_observation_space} and action space "
                             f"{envs.single_action_space}, but the run was trained on {run.observation_space} and "
                             f"{run.action_space} ({run.config.env_id})")
        max_steps = envs.envs[0].spec.max_episode_steps if envs.envs[0].spec else None
        max_steps = max_steps or 100_000
        obs, _ = envs.reset(seed=seed)  # env i gets seed + i
        episode_returns = np.zeros(num_envs)  # [N]
        finished = np.zeros(num_envs, dtype=bool)  # [N]
        for _ in range(max_steps + 1):
            actions = run.act(obs, deterministic=deterministic)
            obs, rewards, terminated, truncated, _ = envs.step(actions)
            episode_returns += np.where(finished, 0.0, rewards)
            finished |= np.asarray(terminated) | np.asarray(truncated)
            if finished.all():
                return episode_returns.tolist()
        raise RuntimeError(f"{env_id}: episodes did not end within {max_steps} steps")
    finally:
        envs.close()
