"""Stable-Baselines3's side of the comparisons (``stable-baselines3`` is optional: imported only here, when used)."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from ..rl.config import SOLVE_THRESHOLDS
from .results import (EVAL_EPISODES, EVAL_SEED, SB3_ENV_ID, SB3_TIMESTEPS, ZOO_PPO_CARTPOLE, CompareSettings,
                      SB3Result, SolveRun)


def sb3_available() -> bool:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


def _linear_schedule(start: float) -> Callable[[float], float]:
    """rl-zoo's ``lin_<start>``: SB3 passes the fraction of training left, 1 -> 0."""
    return lambda progress_remaining: progress_remaining * start


def _zoo_ppo(seed: int) -> Any:
    """SB3 PPO on CartPole-v1 with rl-zoo's tuned hyperparameters, on CPU, one torch thread."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    zoo = ZOO_PPO_CARTPOLE
    envs = make_vec_env(SB3_ENV_ID, n_envs=zoo["n_envs"], seed=seed, vec_env_cls=DummyVecEnv)
    model = PPO("MlpPolicy", envs, n_steps=zoo["n_steps"], batch_size=zoo["batch_size"], gae_lambda=zoo["gae_lambda"],
                gamma=zoo["gamma"], n_epochs=zoo["n_epochs"], ent_coef=zoo["ent_coef"],
                learning_rate=_linear_schedule(1e-3), clip_range=_linear_schedule(0.2), device="cpu", seed=seed,
                verbose=0)
    model.set_logger(Logger(folder=None, output_formats=[]))  # without one, every learn() makes <tmp>/SB3-<date>
    return model


def evaluate_sb3(model: Any, env_id: str = SB3_ENV_ID, episodes: int = EVAL_EPISODES,
                 seed: int = EVAL_SEED) -> list[float]:
    """Returns of ``episodes`` greedy episodes, episode ``i`` from ``reset(seed=seed + i)`` (as pg.evaluate)."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            episode_return, done = 0.0, False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = env.step(action)
                episode_return += float(reward)
                done = terminated or truncated
            returns.append(episode_return)
    finally:
        env.close()
    return returns


def sb3_vector_evaluator(episodes: int = EVAL_EPISODES, seed: int = EVAL_SEED,
                         env_id: str = SB3_ENV_ID) -> Callable[[Any], list[float]]:
    """SB3's own way to evaluate, as fast as it goes: ``evaluate_policy`` on a ``DummyVecEnv`` of ``episodes``
    envs (one batched ``predict`` per step), reseeded before each call so env ``i`` plays the episode
    seeded ``seed + i`` (the episodes of :func:`evaluate_sb3` and ``pg.evaluate``)."""
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import DummyVecEnv

    eval_env = make_vec_env(env_id, n_envs=episodes, vec_env_cls=DummyVecEnv)

    def evaluate_model(model: Any) -> list[float]:
        eval_env.seed(seed)
        returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=episodes, deterministic=True,
                                     return_episode_rewards=True)
        return [float(r) for r in returns]

    evaluate_model.env = eval_env  # type: ignore[attr-defined]  # for closing
    return evaluate_model


def run_sb3_ppo(seed: int, timesteps: int = SB3_TIMESTEPS, eval_episodes: int = EVAL_EPISODES,
                eval_seed: int = EVAL_SEED) -> SB3Result:
    """SB3 PPO on CartPole-v1 with the rl-zoo tuned hyperparameters for ``timesteps``; ``wall_seconds`` times
    ``model.learn`` alone. The final policy is evaluated afterwards (not timed)."""
    model = _zoo_ppo(seed)
    started = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    wall_seconds = time.perf_counter() - started
    model.get_env().close()
    returns = evaluate_sb3(model, SB3_ENV_ID, eval_episodes, eval_seed)
    mean, std = float(statistics.fmean(returns)), float(statistics.pstdev(returns))
    return SB3Result(seed, timesteps, wall_seconds, mean, std, mean >= SOLVE_THRESHOLDS[SB3_ENV_ID],
                     env_steps=int(model.num_timesteps))


def run_sb3_time_to_solve(seed: int, settings: CompareSettings) -> SolveRun:
    """SB3 PPO (rl-zoo hyperparameters) under the shared stopping rule: a callback evaluates every
    ``eval_every`` env steps with :func:`sb3_vector_evaluator` and stops training at the first mean at or
    above the threshold. Timed from building the agent (envs, model, evaluation envs) to that evaluation."""
    from stable_baselines3.common.callbacks import BaseCallback

    started = time.perf_counter()
    model = _zoo_ppo(seed)
    evaluate_model = sb3_vector_evaluator(settings.eval_episodes, settings.eval_seed)
    state: dict[str, Any] = {"next": settings.eval_every, "means": [], "eval_seconds": 0.0, "solved": None}

    class StopWhenSolved(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps < state["next"]:
                return True
            while state["next"] <= self.num_timesteps:
                state["next"] += settings.eval_every
            eval_started = time.perf_counter()
            mean = float(statistics.fmean(evaluate_model(self.model)))
            state["eval_seconds"] += time.perf_counter() - eval_started
            state["means"].append(mean)
            if mean >= settings.threshold:
                state["solved"] = (self.num_timesteps, time.perf_counter() - started)
                return False  # stops model.learn
            return True

    model.learn(total_timesteps=settings.budget, callback=StopWhenSolved())
    wall = time.perf_counter() - started
    model.get_env().close()
    evaluate_model.env.close()  # type: ignore[attr-defined]
    solved = state["solved"]
    return SolveRun("sb3", seed, solved is not None, solved[0] if solved else None, solved[1] if solved else wall,
                    state["eval_seconds"], len(state["means"]), state["means"][-1] if state["means"] else None)


