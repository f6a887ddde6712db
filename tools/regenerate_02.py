#!/usr/bin/env python3
"""Regenerate the cached sweeps of lesson 02 (REINFORCE with a baseline) in ``figures/02_*``.

    python tools/regenerate_02.py baselines    # figures/02_baselines: no baseline, batch mean, learned critic
    python tools/regenerate_02.py entropy      # figures/02_entropy: the entropy bonus beta from 0 to 1
    python tools/regenerate_02.py all --workers 2

Every trial trains on CartPole-v1 with the course defaults for its algorithm plus the arm's settings, for a
budget of env steps (one update per 4 complete episodes; the budget keeps each trial to seconds). Each sweep is a ``pg.sweep`` results folder
(resumable: run the command again and finished trials are kept); ``pgcourse sweep --verify
figures/02_baselines --sample 1`` re-runs a random trial and checks it gives the same numbers bit for bit.
The lesson loads the folders with ``pgcourse.course.sweeps.load_results`` and prints the command beside each result.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/_regenerate.py, also when a test imports this file
from _regenerate import FIGURES, Sweep, command as _command, main  # noqa: E402

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
    "baselines": Sweep(FIGURES / "02_baselines", "reinforce", "CartPole-v1", BASELINE_ARMS, BASELINE_SEEDS,
                       {"total_steps": BASELINE_STEPS}, measure="final_return", last=20),
    "entropy": Sweep(FIGURES / "02_entropy", "reinforce_baseline", "CartPole-v1", ENTROPY_ARMS, ENTROPY_SEEDS,
                     {"total_steps": ENTROPY_STEPS, "lr": ENTROPY_LR}, measure="final_return", last=20),
}


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return _command("regenerate_02", name)


if __name__ == "__main__":
    main(__doc__.splitlines()[0], SWEEPS)
