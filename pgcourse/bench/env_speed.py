"""How many CartPole-v1 steps per second each vector environment makes on this machine: the torch batch
(:mod:`pgcourse.rl.tensor_envs`, float64 and float32) beside gymnasium's numpy ``CartPoleVectorEnv``, the
course's seeded CartPole (``SeededCartPoleVectorEnv``), the same two with their episode statistics
(gymnasium's ``RecordEpisodeStatistics``; the course's ``EpisodeStatistics``, which is the env stack
``pg.train`` steps for CartPole-v1) and, for small batches, a ``SyncVectorEnv``.

A steps/s figure counts sub-environment steps: ``num_envs`` per call to ``step``, per second of the process's
CPU time (``time.process_time``: other processes on a busy machine do not count). Each measurement steps with
pre-drawn random actions (drawing them is not timed; every implementation gets the same actions) for at least
``seconds``, after a few untimed steps. The implementations are measured in turn, ``repeats`` rounds, the
order reversed every other round (interleaved A/B), and the median round is kept. Autoresets are included:
random actions end a CartPole episode every ~22 steps.

    python -m pgcourse.bench.env_speed                 # 8, 64, 512, 4096 envs, one torch thread
    python -m pgcourse.bench.env_speed --num-envs 8 64 --seconds 0.5

:func:`env_speed_section` is a ``ReportSection`` provider for ``run_benchmark(..., extra_sections=[...])``.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from ..rl.envs import AUTORESET_MODE, make_raw_vector_env, make_vector_env
from ..rl.tensor_envs import TensorVectorEnv
from .report import format_table
from .results import ReportSection

ENV_ID = "CartPole-v1"
DEFAULT_NUM_ENVS = (8, 64, 512, 4096)
SYNC_MAX_ENVS = 64  # a SyncVectorEnv is a Python loop over its envs: larger batches take long to measure
WARMUP_STEPS = 5
ACTION_BATCHES = 64  # pre-drawn action batches, used in turn


@dataclasses.dataclass
class SpeedRow:
    """One measurement: ``steps`` calls to ``step`` of ``num_envs`` sub-environments in ``seconds``."""

    implementation: str
    num_envs: int
    steps: int
    seconds: float

    @property
    def env_steps_per_second(self) -> float:
        return self.num_envs * self.steps / self.seconds


def time_steps(step: Callable[[Any], Any], actions: Sequence[Any], seconds: float) -> tuple[int, float]:
    """Call ``step(actions[i % len(actions)])`` until ``seconds`` of CPU time have passed; ``(calls, CPU
    seconds)``."""
    for i in range(WARMUP_STEPS):
        step(actions[i % len(actions)])
    calls, started = 0, time.process_time()
    while True:
        for _ in range(16):  # read the clock every 16 steps
            step(actions[calls % len(actions)])
            calls += 1
        elapsed = time.process_time() - started
        if elapsed >= seconds:
            return calls, elapsed


def _torch_stepper(dtype: torch.dtype) -> Callable[[int, np.random.Generator], tuple[Callable, list]]:
    def make(num_envs: int, rng: np.random.Generator):
        envs = TensorVectorEnv(ENV_ID, num_envs, dtype=dtype)
        envs.reset(seed=0)
        return envs.step, [torch.as_tensor(rng.integers(0, 2, num_envs)) for _ in range(ACTION_BATCHES)]
    return make


def _numpy_stepper(make_envs: Callable[[int], gym.vector.VectorEnv]):
    def make(num_envs: int, rng: np.random.Generator):
        envs = make_envs(num_envs)
        envs.reset(seed=0)
        return envs.step, [rng.integers(0, 2, num_envs) for _ in range(ACTION_BATCHES)]
    return make


IMPLEMENTATIONS: dict[str, Callable] = {
    "pgcourse.rl.tensor_envs, float64": _torch_stepper(torch.float64),
    "pgcourse.rl.tensor_envs, float32": _torch_stepper(torch.float32),
    "gymnasium CartPoleVectorEnv (numpy)": _numpy_stepper(lambda n: gym.make_vec(
        ENV_ID, num_envs=n, vectorization_mode="vector_entry_point")),
    "gymnasium CartPoleVectorEnv + RecordEpisodeStatistics": _numpy_stepper(lambda n: RecordEpisodeStatistics(
        gym.make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point"))),
    "pgcourse SeededCartPoleVectorEnv (numpy)": _numpy_stepper(lambda n: make_raw_vector_env(
        ENV_ID, n, vectorization="auto")),
    "pgcourse SeededCartPoleVectorEnv + EpisodeStatistics (pg.train's)": _numpy_stepper(lambda n: make_vector_env(
        ENV_ID, n, vectorization="auto")),
    "gymnasium SyncVectorEnv": _numpy_stepper(lambda n: gym.make_vec(
        ENV_ID, num_envs=n, vectorization_mode="sync", vector_kwargs={"autoreset_mode": AUTORESET_MODE})),
}


def measure_env_speed(num_envs: Sequence[int] = DEFAULT_NUM_ENVS, seconds: float = 1.0, repeats: int = 3,
                      implementations: Sequence[str] | None = None, seed: int = 0) -> list[SpeedRow]:
    """Each implementation at each batch size (SyncVectorEnv only up to ``SYNC_MAX_ENVS``): ``repeats`` rounds in
    which the implementations take turns (in reverse order every other round), the median round kept."""
    names = list(IMPLEMENTATIONS) if implementations is None else list(implementations)
    unknown = [name for name in names if name not in IMPLEMENTATIONS]
    if unknown:
        raise ValueError(f"unknown implementation(s) {unknown}: choose from {list(IMPLEMENTATIONS)}")
    rows = []
    for n in num_envs:
        active = [name for name in names if not (name == "gymnasium SyncVectorEnv" and n > SYNC_MAX_ENVS)]
        steppers = {name: IMPLEMENTATIONS[name](n, np.random.default_rng(seed)) for name in active}
        tries: dict[str, list[tuple[int, float]]] = {name: [] for name in active}
        for round_index in range(repeats):
            for name in active if round_index % 2 == 0 else active[::-1]:
                tries[name].append(time_steps(*steppers[name], seconds))
        for name in active:
            calls, elapsed = median_try(tries[name])
            rows.append(SpeedRow(name, n, calls, elapsed))
    return rows


def median_try(tries: Sequence[tuple[int, float]]) -> tuple[int, float]:
    """The ``(calls, seconds)`` try with the median seconds per call (the lower middle one of an even count)."""
    ordered = sorted(tries, key=lambda t: t[1] / t[0])
    return ordered[(len(ordered) - 1) // 2]


def speed_table(rows: Sequence[SpeedRow]) -> str:
    """Env steps/s per implementation and batch size, with the ratio to gymnasium's CartPoleVectorEnv."""
    reference = {row.num_envs: row.env_steps_per_second for row in rows
                 if row.implementation == "gymnasium CartPoleVectorEnv (numpy)"}
    body = [[row.implementation, str(row.num_envs), f"{row.env_steps_per_second:,.0f}",
             f"{row.seconds / row.steps * 1e6:,.1f}",
             f"{row.env_steps_per_second / reference[row.num_envs]:.2f}" if row.num_envs in reference else "—"]
            for row in rows]
    return format_table(["implementation", "envs", "env steps/s", "µs per step()", "vs CartPoleVectorEnv"], body)


def machine_line() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{cores} usable cores, torch {torch.__version__} with {torch.get_num_threads()} thread(s), "
            f"gymnasium {gym.__version__}, numpy {np.__version__}; load average {load}")


def env_speed_section(num_envs: Sequence[int] = DEFAULT_NUM_ENVS, seconds: float = 1.0, repeats: int = 3
                      ) -> Callable[[Callable[[str], None]], ReportSection]:
    """A ``ReportSection`` provider measuring :func:`measure_env_speed` when the benchmark calls it."""
    def provider(log: Callable[[str], None]) -> ReportSection:
        log(f"env speed: {ENV_ID} at {list(num_envs)} envs")
        rows = measure_env_speed(num_envs, seconds, repeats)
        return ReportSection(f"{ENV_ID} environment steps per second", [machine_line(), speed_table(rows)],
                             {"rows": [dataclasses.asdict(row) | {"env_steps_per_second": row.env_steps_per_second}
                                       for row in rows]})
    return provider


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgcourse.bench.env_speed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=list(DEFAULT_NUM_ENVS))
    parser.add_argument("--seconds", type=float, default=1.0, help="least time per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of measurements; the median is kept")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as pgcourse bench)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_line())
    print(speed_table(measure_env_speed(args.num_envs, args.seconds, args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
