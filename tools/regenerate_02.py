#!/usr/bin/env python3
"""Regenerate the cached sweeps of lesson 02 (REINFORCE with a baseline) in ``figures/02_*``.

    python tools/regenerate_02.py baselines    # figures/02_baselines: no baseline, batch mean, learned critic
    python tools/regenerate_02.py entropy      # figures/02_entropy: the entropy bonus beta from 0 to 1
    python tools/regenerate_02.py all --workers 2

Every trial trains on CartPole-v1 with the course defaults for its algorithm plus the arm's settings, for a
budget of env steps (one update per 4 complete episodes; the budget keeps each trial to seconds). Each sweep is a ``pg.sweep`` results folder
(resumable: run the command again and finished trials are kept); ``pgcourse sweep --verify
figures/02_baselines --sample 1`` re-runs a random trial and checks it gives the same numbers bit for bit.
The lesson loads the folders with ``pgcourse.sweeps.load_results`` and prints the command beside each result.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pgcourse as pg

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"

BASELINE_SEEDS = 10
BASELINE_STEPS = 20_000
# The same update with four choices of what is subtracted from G_t (all weights then divided by their std).
BASELINE_ARMS = [
    {"label": "no baseline", "algo": "reinforce", "center_weights": False},
    {"label": "batch mean", "algo": "reinforce"},  # lesson 01's REINFORCE: normalise = subtract the mean
    {"label": "learned V, 1 critic step", "algo": "reinforce_baseline"},  # the course default
    {"label": "learned V, 20 critic steps", "algo": "reinforce_baseline", "critic_epochs": 20},
]

ENTROPY_SEEDS = 10
ENTROPY_STEPS = 25_000
ENTROPY_LR = 2e-2  # a fast actor (4x the default 5e-3): the setting where a policy can commit too early
ENTROPY_ARMS = [{"label": f"beta {beta:g}", "ent_coef": beta} for beta in (0.0, 0.01, 0.05, 0.1, 0.3, 1.0)]

SWEEPS = {
    "baselines": (FIGURES / "02_baselines", "reinforce", BASELINE_ARMS, BASELINE_SEEDS,
                  {"total_steps": BASELINE_STEPS}),
    "entropy": (FIGURES / "02_entropy", "reinforce_baseline", ENTROPY_ARMS, ENTROPY_SEEDS,
                {"total_steps": ENTROPY_STEPS, "lr": ENTROPY_LR}),
}


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return f"python tools/regenerate_02.py {name} --workers 2"


def run(name: str, workers: int = 2) -> pg.sweeps.SweepResults:
    folder, algo, arms, seeds, settings = SWEEPS[name]
    started = time.perf_counter()
    results = pg.sweep(algo, "CartPole-v1", seeds=range(seeds), grid=arms, folder=folder, workers=workers,
                       compress=True, **settings)
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    trained = sum(record.wall_seconds for record in results.trials)
    longest = max(record.wall_seconds for record in results.trials)
    print(f"{name}: {len(results.trials)} trials, {time.perf_counter() - started:.0f} s wall now, "
          f"{trained:.0f} s of training summed over trials (longest {longest:.0f} s), folder {size / 2**20:.2f} MiB")
    print(results.summary("final_return", last=20))
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", choices=[*SWEEPS, "all"])
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args(argv)
    for name in SWEEPS if args.sweep == "all" else [args.sweep]:
        run(name, args.workers)


if __name__ == "__main__":
    main()
