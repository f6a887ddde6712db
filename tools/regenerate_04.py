#!/usr/bin/env python3
"""Regenerate the cached sweeps of lesson 04 (PPO) in ``figures/04_*``.

    python tools/regenerate_04.py clip           # figures/04_clip: the clip ablation and the KL early stop
    python tools/regenerate_04.py sensitivity    # figures/04_sensitivity: update_epochs, minibatch_size, lr
    python tools/regenerate_04.py all --workers 2

Every trial is PPO on CartPole-v1 with the course defaults and the lesson's budget (``SETTINGS``: the
12,000 env steps of the lesson's own run, learning rates annealed to 0 over them, one greedy evaluation
of 20 episodes at the end). Each sweep is a ``pg.sweep`` results folder (resumable: run the command again
and finished trials are kept); ``pgcourse sweep --verify figures/04_clip --sample 1`` re-runs a random
trial and checks it gives the same numbers bit for bit. The lesson loads the folders with
``pgcourse.sweeps.load_results`` and prints the command beside each result.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pgcourse as pg

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"

# The lesson's budget: section 6's run is seed 0 of the "clip 0.2" arm. eval_every = total_steps gives one
# greedy evaluation (20 episodes) after the last update; evaluating never changes training.
SETTINGS = {"total_steps": 12_000, "eval_every": 12_000}

CLIP_SEEDS = 20
CLIP_ARMS = [
    {"label": "clip 0.2"},  # the course default
    {"label": "no clip", "clip_eps": 100.0},
    {"label": "no clip + target_kl 0.01", "clip_eps": 100.0, "target_kl": 0.01},
    {"label": "clip 0.2 + target_kl 0.01", "target_kl": 0.01},
]

SENSITIVITY_SEEDS = 10
# One setting changed at a time from the course defaults (update_epochs 10, minibatch_size 128, lr 1e-3;
# lr is the actor's learning rate, critic_lr stays 1e-3).
SENSITIVITY_ARMS = [
    {"label": "default"},
    {"label": "update_epochs 1", "update_epochs": 1},
    {"label": "update_epochs 3", "update_epochs": 3},
    {"label": "update_epochs 30", "update_epochs": 30},
    {"label": "update_epochs 30, no clip", "update_epochs": 30, "clip_eps": 100.0},  # is the clip what makes 30 safe?
    {"label": "minibatch_size 32", "minibatch_size": 32},
    {"label": "minibatch_size 512", "minibatch_size": 512},
    {"label": "lr 3e-4", "lr": 3e-4},
    {"label": "lr 3e-3", "lr": 3e-3},
]

SWEEPS = {
    "clip": (FIGURES / "04_clip", CLIP_ARMS, CLIP_SEEDS),
    "sensitivity": (FIGURES / "04_sensitivity", SENSITIVITY_ARMS, SENSITIVITY_SEEDS),
}


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return f"python tools/regenerate_04.py {name} --workers 2"


def run(name: str, workers: int = 2) -> pg.sweeps.SweepResults:
    folder, arms, seeds = SWEEPS[name]
    started = time.perf_counter()
    results = pg.sweep("ppo", "CartPole-v1", seeds=range(seeds), grid=arms, folder=folder, workers=workers,
                       compress=True, **SETTINGS)
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    trained = sum(record.wall_seconds for record in results.trials)
    print(f"{name}: {len(results.trials)} trials, {time.perf_counter() - started:.0f} s wall now, "
          f"{trained:.0f} s of training summed over trials, folder {size / 2**20:.2f} MiB")
    print(results.summary("final_eval"))
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
