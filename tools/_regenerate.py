"""What every ``tools/regenerate_NN.py`` shares: run one named sweep into its folder, and the command line.

A lesson's script declares its sweeps as :class:`Sweep` records and calls :func:`main`; this module runs
``pg.sweep`` (resumable: finished trials in the folder are kept), reports the folder's size and the summed
training time, and prints the summary the lesson reads. Nothing here knows a lesson's experiments.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pgcourse as pg

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"


@dataclass(frozen=True)
class Sweep:
    """One cached sweep: ``pg.sweep(algo, env_id, seeds=range(seeds), grid=arms, **settings)`` into ``folder``."""

    folder: Path
    algo: str | Sequence[str] | None  # None: every arm names its own
    env_id: str | Sequence[str] | None
    arms: Sequence[Mapping[str, Any]]
    seeds: int
    settings: Mapping[str, Any] = field(default_factory=dict)
    measure: str | None = "final_eval"  # what the printed summary reports (None: no summary)
    last: int = 100  # episodes ``final_return`` averages over


def run_sweep(name: str, sweep: Sweep, workers: int = 2, backend: str = "local") -> pg.sweeps.SweepResults:
    """Run (or resume) ``sweep`` on ``backend``; print its trial count, wall time, folder size and summary."""
    started = time.perf_counter()
    results = pg.sweep(sweep.algo, sweep.env_id, seeds=range(sweep.seeds), grid=list(sweep.arms),
                       folder=sweep.folder, workers=workers, backend=backend, compress=True, **dict(sweep.settings))
    size = sum(path.stat().st_size for path in sweep.folder.rglob("*") if path.is_file())
    trained = sum(record.wall_seconds for record in results.trials)
    cpu = sum(record.data.get("cpu_seconds", float("nan")) for record in results.trials)  # older records lack it
    print(f"{name}: {len(results.trials)} trials, {time.perf_counter() - started:.0f} s wall now, "
          f"{trained:.0f} s of training ({cpu:.0f} CPU-s) summed over trials, folder {size / 2**20:.2f} MiB")
    if sweep.measure is not None:
        print(results.summary(sweep.measure, last=sweep.last))
    return results


def command(script: str, name: str) -> str:
    """The shell command that regenerates sweep ``name`` of ``tools/<script>.py`` (a lesson prints it beside the
    results it reads)."""
    return f"python tools/{script}.py {name} --workers 2"


def main(description: str, sweeps: Mapping[str, Sweep], argv: Sequence[str] | None = None,
         extra: Mapping[str, Callable[[], Any]] | None = None) -> None:
    """``script NAME|all [--workers N] [--backend local|batch]``: regenerate one sweep (or every one, then every
    ``extra`` job)."""
    extra = dict(extra or {})
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("sweep", choices=[*sweeps, *extra, "all"])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--backend", choices=("local", "batch"), default="local",
                        help="local: one trial at a time per worker, as the committed caches were made (default); "
                             "batch: each PPO arm's seeds as one pg.train_many batch, several times less CPU, the "
                             "same learning but not the same bits (docs/scaling.md)")
    args = parser.parse_args(argv)
    names = [*sweeps, *extra] if args.sweep == "all" else [args.sweep]
    for name in names:
        if name in sweeps:
            run_sweep(name, sweeps[name], args.workers, args.backend)
        else:
            extra[name]()
