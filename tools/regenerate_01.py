#!/usr/bin/env python3
"""Regenerate the cached sweep of lesson 01 (REINFORCE) in ``figures/01_weighting``.

    python tools/regenerate_01.py weighting      # figures/01_weighting: which return weights the log-probs
    python tools/regenerate_01.py all --workers 2

Every trial is plain REINFORCE on CartPole-v1 with the course defaults and the lesson's budget
(``SETTINGS``: 200 episodes, 4 per update). The arms cross the two choices the lesson teaches:
``return_weighting`` (the episode's total return G_0 at every step, Williams' original estimator, or
the reward-to-go G_t) and ``normalize_weights`` (standardise the weights over the batch, or not). The
course default is reward-to-go, normalised. The sweep is a ``pg.sweep`` results folder (resumable: run
the command again and finished trials are kept); ``pgcourse sweep --verify figures/01_weighting
--sample 1`` re-runs a random trial and checks it gives the same numbers bit for bit. The lesson loads
the folder with ``pgcourse.sweeps.load_results`` and prints the command beside each result.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pgcourse as pg

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "figures"

# The lesson's budget: 200 episodes (50 updates of 4 episodes), the same as its own live run.
SETTINGS = {"max_episodes": 200}

WEIGHTING_SEEDS = 20
WEIGHTING_ARMS = [
    {"label": "total return, raw", "return_weighting": "total", "normalize_weights": False},  # Williams (1992)
    {"label": "reward-to-go, raw", "normalize_weights": False},
    {"label": "total return, normalised", "return_weighting": "total"},
    {"label": "reward-to-go, normalised"},  # the course default
]

SWEEPS = {
    "weighting": (FIGURES / "01_weighting", WEIGHTING_ARMS, WEIGHTING_SEEDS),
}


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return f"python tools/regenerate_01.py {name} --workers 2"


def run(name: str, workers: int = 2) -> pg.sweeps.SweepResults:
    folder, arms, seeds = SWEEPS[name]
    started = time.perf_counter()
    results = pg.sweep("reinforce", "CartPole-v1", seeds=range(seeds), grid=arms, folder=folder, workers=workers,
                       compress=True, **SETTINGS)
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    trained = sum(record.wall_seconds for record in results.trials)
    print(f"{name}: {len(results.trials)} trials, {time.perf_counter() - started:.0f} s wall now, "
          f"{trained:.0f} s of training summed over trials, folder {size / 2**20:.2f} MiB")
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
