"""Many seeds as one batch (``pg.train_many``) against the same seeds one after another (``pg.train``).

Both sides train the same PPO CartPole-v1 seeds with the course defaults in this process, one torch thread.
Time is CPU seconds of this process (``time.process_time``), so other programs on a loaded machine slow the
wall clock but not the measure; the load average is reported with it. Learning is compared by each run's mean
return over its last 20 training episodes: the two sides' means over the seeds, and Welch's t statistic of
their difference. The goal (issue 33): the batch >= 5x faster than one after another at ten seeds.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

BATCH_SPEED_TARGET = 5.0


@dataclass
class BatchedSeeds:
    seeds: list[int]
    total_steps: int
    batch_cpu_seconds: float
    batch_wall_seconds: float
    one_by_one_cpu_seconds: float
    one_by_one_wall_seconds: float
    batch_final_returns: list[float]
    one_by_one_final_returns: list[float]
    load_average: list[float] | None
    env_backend: str = "numpy"

    @property
    def speedup(self) -> float:
        """CPU seconds one after another / CPU seconds as one batch."""
        return self.one_by_one_cpu_seconds / self.batch_cpu_seconds

    @property
    def welch_t(self) -> float | None:
        """Welch's t of the difference of the two sides' mean final returns (None with fewer than 2 seeds)."""
        return welch_t(self.batch_final_returns, self.one_by_one_final_returns)

    def lines(self) -> list[str]:
        count = len(self.seeds)
        load = (f", load average {', '.join(f'{x:.1f}' for x in self.load_average)} at the end"
                if self.load_average else "")
        t = self.welch_t
        return [f"Many seeds as one batch: {count} PPO CartPole-v1 seeds of {self.total_steps:,} steps, pg.train_many "
                f"against pg.train one after another, {self.env_backend} envs (one torch thread, CPU seconds of this "
                "process)",
                f"  one batch:         {self.batch_cpu_seconds:7.1f} CPU-s ({self.batch_wall_seconds:.1f} s wall)",
                f"  one after another: {self.one_by_one_cpu_seconds:7.1f} CPU-s ({self.one_by_one_wall_seconds:.1f} s "
                f"wall){load}",
                f"  speed-up: {self.speedup:.2f}x (target >= {BATCH_SPEED_TARGET:g}x at ten seeds)",
                f"  mean final return (last 20 training episodes): {np.mean(self.batch_final_returns):.1f} as one "
                f"batch, {np.mean(self.one_by_one_final_returns):.1f} one after another"
                + ("" if t is None else f" (Welch's t = {t:+.2f})")]

    def data(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup, "welch_t": self.welch_t}


def welch_t(a: list[float], b: list[float]) -> float | None:
    r""":math:`(\bar a - \bar b) / \sqrt{s_a^2/n_a + s_b^2/n_b}`; 0 when both samples are constant and equal."""
    if len(a) < 2 or len(b) < 2:
        return None
    difference = float(np.mean(a) - np.mean(b))
    spread = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    if spread == 0.0:
        return 0.0 if difference == 0.0 else math.copysign(math.inf, difference)
    return difference / spread


def final_return(run: Any, episodes: int = 20) -> float:
    """Mean return of the run's last ``episodes`` training episodes."""
    returns = np.asarray(run.history.episodes["return"])
    return float(returns[-episodes:].mean()) if len(returns) else float("nan")


def measure_batched_seeds(seeds: list[int], total_steps: int, env_backend: str = "numpy") -> BatchedSeeds:
    """Train ``seeds`` as one batch, then one after another; CPU and wall seconds of each, final returns. With
    ``env_backend="torch"`` both sides step torch envs on the CPU (the batch: one env of all the agents' envs)."""
    from ..rl.api import train
    from ..rl.many import train_many

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        batch = train_many("ppo", "CartPole-v1", seeds=seeds, total_steps=total_steps, progress=False,
                           env_backend=env_backend, device="cpu")
        batch_cpu, batch_wall = time.process_time() - cpu, time.perf_counter() - wall
        cpu, wall = time.process_time(), time.perf_counter()
        single = [train("ppo", "CartPole-v1", seed=seed, total_steps=total_steps, progress=False,
                        env_backend=env_backend, device="cpu") for seed in seeds]
        single_cpu, single_wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        torch.set_num_threads(threads)
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return BatchedSeeds(list(seeds), total_steps, batch_cpu, batch_wall, single_cpu, single_wall,
                        [final_return(run) for run in batch], [final_return(run) for run in single], load, env_backend)
