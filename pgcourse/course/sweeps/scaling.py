"""How a sweep scales on this machine: the same trials on 1 and on N local workers, and on Ray.

``pgcourse bench`` prints this beside its other comparisons. The trials are identical in every
measurement (same grid, same seeds, no results folder), so the wall times compare like with like.

- speed-up = wall time on 1 worker / wall time on ``workers`` workers (ideal: ``workers``);
- overhead per trial = (wall time x workers - the trials' own training time) / trials: worker time
  that went to starting processes, scheduling and moving results rather than training. For Ray it is
  measured with Ray already started (its start-up is reported on its own line).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .backends import LocalBackend, RayBackend, available_cores
from .driver import run_specs
from .spec import expand


@dataclass
class ScalingRun:
    backend: str
    workers: int
    wall_seconds: float
    trial_seconds: float  # summed training time inside the trials
    trials: int

    @property
    def overhead_per_trial(self) -> float:
        return (self.wall_seconds * self.workers - self.trial_seconds) / self.trials


@dataclass
class ScalingReport:
    trials: int
    total_steps: int
    runs: list[ScalingRun] = field(default_factory=list)
    ray_start_seconds: float | None = None
    ray_skipped: str | None = None
    identical: bool | None = None  # every backend gave the same histories

    def run(self, backend: str, workers: int) -> ScalingRun | None:
        return next((r for r in self.runs if r.backend == backend and r.workers == workers), None)

    @property
    def speedup(self) -> float | None:
        one, many = self.run("local", 1), max((r for r in self.runs if r.backend == "local"),
                                              key=lambda r: r.workers, default=None)
        return None if one is None or many is None or many.workers == 1 else one.wall_seconds / many.wall_seconds

    def lines(self) -> list[str]:
        out = [f"Sweep scaling: {self.trials} PPO CartPole-v1 trials of {self.total_steps:,} steps each, no results "
               "folder, the same trials on every backend"]
        for run in self.runs:
            out.append(f"  {run.backend:5s} {run.workers} worker(s): {run.wall_seconds:6.1f} s wall, "
                       f"{run.trial_seconds:6.1f} s training inside the trials, overhead "
                       f"{run.overhead_per_trial:+.2f} s per trial")
        if self.speedup is not None:
            many = max(r.workers for r in self.runs if r.backend == "local")
            out.append(f"  speed-up on {many} local workers: {self.speedup:.2f}x (target >= 1.8x on 2 workers)")
        if self.ray_start_seconds is not None:
            out.append(f"  Ray start-up (ray.init on this machine, once per call): {self.ray_start_seconds:.1f} s")
        if self.ray_skipped:
            out.append(f"  Ray: {self.ray_skipped}")
        elif self.run("ray", max((r.workers for r in self.runs if r.backend == "ray"), default=0)):
            ray_run = max((r for r in self.runs if r.backend == "ray"), key=lambda r: r.workers)
            out.append(f"  Ray overhead per trial: {ray_run.overhead_per_trial:.2f} s (target <= 1 s)")
        if self.identical is not None:
            out.append(f"  histories identical on every backend: {'yes' if self.identical else 'NO'}")
        return out


def _timed(specs, backend) -> tuple[float, list[dict[str, Any]]]:
    started = time.perf_counter()
    outcome = run_specs(specs, None, backend, retries=0, progress=False)
    if outcome["interrupted"]:
        raise KeyboardInterrupt
    return time.perf_counter() - started, outcome["records"]


def measure_scaling(trials: int = 20, total_steps: int = 10_000, workers: int | None = None,
                    ray: bool = True) -> ScalingReport:
    """Run ``trials`` PPO CartPole trials (seeds 0..trials-1) on 1 local worker, on ``workers`` (default:
    every core) and, if Ray is installed and ``ray``, on a Ray instance started here with ``workers`` CPUs."""
    from .trial import deterministic_part

    workers = workers or available_cores()
    specs = expand("ppo", "CartPole-v1", range(trials), None, {"total_steps": total_steps})
    report = ScalingReport(trials, total_steps)
    histories = {}
    for count in sorted({1, workers}):
        wall, records = _timed(specs, LocalBackend(count))
        report.runs.append(ScalingRun("local", count, wall, sum(r["wall_seconds"] for r in records), len(records)))
        histories[f"local{count}"] = {r["trial_id"]: deterministic_part(r["history"]) for r in records}
    if ray:
        try:
            import ray as ray_module
        except ImportError:
            report.ray_skipped = "not installed (pip install 'pgcourse[scale]')"
        else:
            if ray_module.is_initialized():
                report.ray_skipped = "skipped: Ray is already initialised in this process"
            else:
                started = time.perf_counter()
                backend = RayBackend(workers=workers)
                backend._started_here = False  # keep Ray up for the measurement; shut down below
                report.ray_start_seconds = time.perf_counter() - started
                try:
                    wall, records = _timed(specs, backend)
                finally:
                    ray_module.shutdown()
                report.runs.append(ScalingRun("ray", workers, wall, sum(r["wall_seconds"] for r in records),
                                              len(records)))
                histories["ray"] = {r["trial_id"]: deterministic_part(r["history"]) for r in records}
    first = next(iter(histories.values()))
    report.identical = all(h == first for h in histories.values())
    return report
