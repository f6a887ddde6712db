"""Evaluate a run: mean return over fixed, seeded episodes (the benchmark's definition of "solved")."""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np
import torch

from .envs import make_raw_vector_env, max_episode_steps
from .run import Run, as_run, check_env_fits


class EvalResult(NamedTuple):
    """``mean, std, returns = pg.evaluate(...)``; ``returns[i]`` is the episode seeded ``seed + i``."""

    mean: float
    std: float
    returns: np.ndarray


def evaluate(run: Run | str | os.PathLike, env_id: str | None = None, episodes: int = 20, seed: int = 10_000,
             deterministic: bool = True, max_parallel: int = 32, vectorization: str = "auto") -> EvalResult:
    """Play ``episodes`` episodes with ``run.act`` and return their raw (unscaled) returns.

    Episode ``i`` starts from ``env.reset(seed=seed + i)``, so the same call always plays the
    same starting states. Episodes run in parallel in a vector env, each env counting only its
    first episode. Observation normalisation uses the run's saved statistics (frozen).

    Args:
        run: a trained :class:`~pgcourse.run.Run`, or the folder of a saved one (``"runs/ppo-cartpole"``).
        env_id: environment to play (defaults to the one it was trained on); spaces must match.
        episodes: number of evaluation episodes.
        seed: seed of the first episode.
        deterministic: greedy actions (argmax / Gaussian mean); False samples from the policy.
        max_parallel: at most this many episodes at once (one batched forward per step for all of them).
        vectorization: ``"auto"`` (CartPole on gymnasium's numpy-vectorised env; the same episodes) or
            ``"sync"`` (a ``SyncVectorEnv``); see :func:`pgcourse.envs.make_raw_vector_env`.

    Runs with the run's ``config.torch_threads`` (1 by default, as training does), then restores the
    process's thread count.
    """
    run = as_run(run)
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
            returns.extend(_play_first_episodes(run, env_id, batch, seed + len(returns), deterministic, vectorization))
    finally:
        torch.set_num_threads(threads_before)
    returns_array = np.asarray(returns, dtype=np.float64)
    return EvalResult(float(returns_array.mean()), float(returns_array.std()), returns_array)


def _play_first_episodes(run: Run, env_id: str, num_envs: int, seed: int, deterministic: bool,
                         vectorization: str = "auto") -> list[float]:
    envs = make_raw_vector_env(env_id, num_envs, vectorization=vectorization)
    try:
        check_env_fits(run, env_id, envs.single_observation_space, envs.single_action_space)
        max_steps = max_episode_steps(envs) or 100_000
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
