#!/usr/bin/env python3
"""Regenerate the cached sweeps of lessons 04 and 04c (PPO) in ``figures/04_*``.

    python tools/regenerate_04.py clip           # figures/04_clip: the clip ablation and the KL early stop
    python tools/regenerate_04.py sensitivity    # figures/04_sensitivity: update_epochs, minibatch_size, lr
    python tools/regenerate_04.py clip_acrobot   # figures/04_clip_acrobot: the clip ablation on Acrobot-v1
    python tools/regenerate_04.py all --workers 2

Every trial is PPO on CartPole-v1 with the course defaults and the lesson's budget (``SETTINGS``: the
12,000 env steps of the lesson's own run, learning rates annealed to 0 over them, one greedy evaluation
of 20 episodes at the end). Each sweep is a ``pg.sweep`` results folder (resumable: run the command again
and finished trials are kept); ``pgcourse sweep --verify figures/04_clip --sample 1`` re-runs a random
trial and checks it gives the same numbers bit for bit. The lesson loads the folders with
``pgcourse.course.sweeps.load_results`` and prints the command beside each result.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/_regenerate.py, also when a test imports this file
from _regenerate import FIGURES, Sweep, command as _command, main  # noqa: E402

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

# The clip ablation again on Acrobot-v1: does what the clip buys on CartPole transfer? PPO needs far more steps
# there (one 100k-step run of seed 0 scored -500 after 50k steps and -80 after 100k), so the budget is 100k steps,
# ten seeds, and the first three arms; the final evaluation samples actions (pg.config.EVAL_MODE_DEFAULTS).
ACROBOT_SETTINGS = {"total_steps": 100_000, "eval_every": 100_000}
ACROBOT_SEEDS = 10
ACROBOT_ARMS = CLIP_ARMS[:3]

SWEEPS = {
    "clip": Sweep(FIGURES / "04_clip", "ppo", "CartPole-v1", CLIP_ARMS, CLIP_SEEDS, SETTINGS),
    "sensitivity": Sweep(FIGURES / "04_sensitivity", "ppo", "CartPole-v1", SENSITIVITY_ARMS, SENSITIVITY_SEEDS,
                         SETTINGS),
    "clip_acrobot": Sweep(FIGURES / "04_clip_acrobot", "ppo", "Acrobot-v1", ACROBOT_ARMS, ACROBOT_SEEDS,
                          ACROBOT_SETTINGS),
}


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return _command("regenerate_04", name)


if __name__ == "__main__":
    main(__doc__.splitlines()[0], SWEEPS)
