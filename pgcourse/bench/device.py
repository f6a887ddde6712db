"""``pgcourse bench device``: where a torch environment starts being faster on the GPU than on the CPU.

PPO on CartPole-v1 with ``env_backend="torch"`` (the environment as tensors on the device, nothing read on the
host per step), ``n_steps`` 32, 4 epochs of 4 minibatches, a few updates, at a few widths (``num_envs``): env
steps per second on the CPU and on CUDA. The **crossover** is the smallest measured width from which CUDA is
faster at every wider measured width (None when it never is); it is written to the cache file that
``device="auto"`` reads (:func:`pgcourse.rl.devices.crossover_path`), for this GPU and this torch only. On a machine
without CUDA it measures the CPU, says there is no GPU and writes nothing. Never MPS.

Times are wall-clock seconds of the training call after one untimed warm-up run per device and width (CUDA's
start-up and the kernels' first launches are not counted), with ``torch.cuda.synchronize()`` before the clock
stops; the CPU seconds of this process are reported beside them (a busy machine slows the wall clock).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..rl import devices
from ..rl.algorithms import train_ppo
from ..rl.config import make_config

DEVICE_WIDTHS = (8, 64, 512, 4096)
QUICK_WIDTHS = (8, 64, 512)
N_STEPS, UPDATES = 32, 3


@dataclass(frozen=True)
class DeviceTiming:
    """One timed run: env steps per second of wall time, and the CPU seconds it took."""

    device: str
    num_envs: int
    env_steps: int
    wall_seconds: float
    cpu_seconds: float

    @property
    def steps_per_second(self) -> float:
        return self.env_steps / self.wall_seconds if self.wall_seconds > 0 else float("inf")


def ppo_config(device: str, num_envs: int, updates: int = UPDATES, n_steps: int = N_STEPS):
    """The measured workload: PPO CartPole, torch env, ``updates`` updates of ``num_envs * n_steps`` steps."""
    batch = num_envs * n_steps
    return make_config("ppo", "CartPole-v1", "discrete", seed=0, device=device, env_backend="torch", progress=False,
                       num_envs=num_envs, n_steps=n_steps, num_minibatches=4, update_epochs=4,
                       total_steps=batch * updates)


def time_ppo(device: str, num_envs: int, updates: int = UPDATES) -> DeviceTiming:
    """Train the workload once untimed (warm-up), then once timed."""
    def synchronize() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    train_ppo(ppo_config(device, num_envs, updates=1))
    synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    run = train_ppo(ppo_config(device, num_envs, updates=updates))
    synchronize()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return DeviceTiming(device, num_envs, int(run.history.updates["env_step"][-1]), wall, cpu)


def crossover(widths: Sequence[int], cpu_rates: Sequence[float], gpu_rates: Sequence[float]) -> int | None:
    r"""The smallest width :math:`w` with GPU faster than CPU at :math:`w` and at every wider measured width:
    :math:`\min\{w_i : r^{gpu}_j > r^{cpu}_j\ \forall j \ge i\}` (widths ascending), None if the widest is not."""
    if not (len(widths) == len(cpu_rates) == len(gpu_rates)) or list(widths) != sorted(widths):
        raise ValueError(f"widths must be ascending with one rate each, got {widths}, {cpu_rates}, {gpu_rates}")
    found = None
    for width, cpu, gpu in reversed(list(zip(widths, cpu_rates, gpu_rates))):
        if gpu <= cpu:
            break
        found = width
    return found


def measure(widths: Sequence[int] = DEVICE_WIDTHS, updates: int = UPDATES) -> dict[str, Any]:
    """CPU and (if present) CUDA timings at each width, interleaved (CPU then CUDA at each width), and the
    crossover; ``gpu`` is None on a machine without CUDA."""
    widths = sorted(widths)
    has_cuda = torch.cuda.is_available()
    cpu_runs, gpu_runs = [], []
    for width in widths:
        cpu_runs.append(time_ppo("cpu", width, updates))
        if has_cuda:
            gpu_runs.append(time_ppo("cuda", width, updates))
    result: dict[str, Any] = {"widths": widths, "n_steps": N_STEPS, "updates": updates,
                              "workload": dict(devices.MEASURED_WORKLOAD),
                              "cpu": [vars(run) for run in cpu_runs], "gpu": [vars(run) for run in gpu_runs] or None,
                              "cpu_steps_per_second": [run.steps_per_second for run in cpu_runs],
                              "gpu_steps_per_second": [run.steps_per_second for run in gpu_runs] or None}
    result["crossover_envs"] = crossover(widths, result["cpu_steps_per_second"],
                                         result["gpu_steps_per_second"]) if has_cuda else None
    if has_cuda:
        result["gpu_name"] = torch.cuda.get_device_name(0)
    return result


def report_lines(result: dict[str, Any]) -> list[str]:
    """The table and the verdict, in words."""
    gpu = result["gpu_steps_per_second"]
    lines = [f"PPO CartPole-v1, env_backend='torch', n_steps {result['n_steps']}, 4 epochs x 4 minibatches, "
             f"{result['updates']} updates (wall clock after a warm-up run; CPU seconds of this process)",
             f"{'num_envs':>9} {'CPU steps/s':>12} {'CPU s':>7} {'GPU steps/s':>12} {'GPU/CPU':>8}"]
    for i, width in enumerate(result["widths"]):
        cpu_run = result["cpu"][i]
        cpu_rate = result["cpu_steps_per_second"][i]
        gpu_part = f"{gpu[i]:>12,.0f} {gpu[i] / cpu_rate:>7.2f}x" if gpu else f"{'-':>12} {'-':>8}"
        lines.append(f"{width:>9} {cpu_rate:>12,.0f} {cpu_run['cpu_seconds']:>7.2f} {gpu_part}")
    if gpu is None:
        lines.append("no GPU on this machine (torch.cuda.is_available() is False): device='auto' trains on the CPU; "
                     "nothing written")
    elif result["crossover_envs"] is None:
        lines.append(f"the GPU ({result['gpu_name']}) was not faster at the widest width measured: device='auto' "
                     "keeps the CPU")
    else:
        lines.append(f"crossover: {result['crossover_envs']} envs on {result['gpu_name']}: device='auto' with "
                     f"env_backend='torch' trains there from num_envs={result['crossover_envs']}")
    return lines


def main(widths: Sequence[int] | None = None, quick: bool = False, write: bool = True) -> int:
    """Measure, print, and (with CUDA) write the crossover for ``device="auto"``."""
    result = measure(widths or (QUICK_WIDTHS if quick else DEVICE_WIDTHS), updates=2 if quick else UPDATES)
    for line in report_lines(result):
        print(line)
    if result["gpu_steps_per_second"] is not None and write:
        path = devices.write_crossover(result["crossover_envs"], result)
        print(f"wrote {path}")
    return 0
