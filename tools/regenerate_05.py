#!/usr/bin/env python3
"""Regenerate the cached sweeps of lesson 05 (PPO on Pendulum-v1) in ``figures/05_*``.

    python tools/regenerate_05.py pendulum       # figures/05_pendulum: the course defaults, and the normalisation ablation
    python tools/regenerate_05.py log_std        # figures/05_log_std: log_std collapse at a high lr, and the clamp
    python tools/regenerate_05.py squash         # figures/05_squash: the tanh-squashed Gaussian (box_action="tanh")
    python tools/regenerate_05.py all --workers 2

Every trial is PPO on Pendulum-v1 with the course's continuous defaults (``pgcourse.rl.config._ENV_DEFAULTS``)
and the lesson's budget (``SETTINGS``: 80,000 env steps, learning rates annealed to 0 over them unless an
arm says otherwise, one greedy evaluation of 20 episodes after the last update). Each sweep is a
``pg.sweep`` results folder (resumable: run the command again and finished trials are kept);
``pgcourse sweep --verify figures/05_pendulum --sample 1`` re-runs a random trial and checks it gives the
same numbers bit for bit. The lesson loads the folders with ``pgcourse.course.sweeps.load_results`` and prints
the command beside each result.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/_regenerate.py, also when a test imports this file
from _regenerate import FIGURES, Sweep, command as _command, main  # noqa: E402

# The lesson's budget: about half the course default (150k), which the machine's time allowed for 10 seeds
# per arm. eval_every = total_steps gives one greedy evaluation (20 episodes) after the last update;
# evaluating never changes training.
SETTINGS = {"total_steps": 80_000, "eval_every": 80_000}

PENDULUM_SEEDS = 10
# Both wrappers are on by default for Box actions (normalize_obs=None, normalize_reward=None); each arm
# switches one off in *training* (the statistics the policy acts with are then simply absent).
PENDULUM_ARMS = [
    {"label": "default (both normalised)"},
    {"label": "no reward normalisation", "normalize_reward": False},
    {"label": "no observation normalisation", "normalize_obs": False},
]

LOG_STD_SEEDS = 10
# A constant, high learning rate (no annealing) lets the policy gradient move log_std fast; the clamp
# (log_std_min) keeps sigma >= e^-0.5 = 0.61. The default arm of figures/05_pendulum is the reference.
HIGH_LR = {"lr": 1e-2, "anneal_lr": False}
LOG_STD_ARMS = [
    {"label": "lr 1e-2, constant", **HIGH_LR},
    {"label": "lr 1e-2, constant, log_std_min -0.5", **HIGH_LR, "log_std_min": -0.5},
]

SQUASH_SEEDS = 10
# The same budget and seeds as the default arm of figures/05_pendulum, which is the clipping arm it is compared with:
# only how a sample u becomes Pendulum's torque changes (clip(u, -2, 2) there, 2 tanh(u) here).
SQUASH_ARMS = [
    {"label": "tanh squash", "box_action": "tanh"},
]

SWEEPS = {
    "pendulum": Sweep(FIGURES / "05_pendulum", "ppo", "Pendulum-v1", PENDULUM_ARMS, PENDULUM_SEEDS, SETTINGS),
    "log_std": Sweep(FIGURES / "05_log_std", "ppo", "Pendulum-v1", LOG_STD_ARMS, LOG_STD_SEEDS, SETTINGS),
    "squash": Sweep(FIGURES / "05_squash", "ppo", "Pendulum-v1", SQUASH_ARMS, SQUASH_SEEDS, SETTINGS),
}


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return _command("regenerate_05", name)


if __name__ == "__main__":
    main(__doc__.splitlines()[0], SWEEPS)
