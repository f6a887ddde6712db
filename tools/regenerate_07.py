#!/usr/bin/env python3
"""Regenerate the cached sweep of lesson 07 (TRPO beside PPO) in ``figures/07_trpo_vs_ppo``.

    python tools/regenerate_07.py trpo_vs_ppo --workers 2

Both algorithms with their course defaults (``pgcourse.rl.config._ENV_DEFAULTS``) on CartPole-v1, Acrobot-v1
and Pendulum-v1, 10 seeds each, the same budget of 200,000 env steps (TRPO's default; PPO's learning
rates are annealed over it), a greedy evaluation of 20 episodes every 20,000 steps (evaluating never
changes training). Every trial records its training wall time (evaluations excluded), so the lesson can
compare returns per env step and per second. The folder is a ``pg.sweep`` results folder (resumable);
``pgcourse sweep --verify figures/07_trpo_vs_ppo --sample 1`` re-runs a random trial bit for bit.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/_regenerate.py, also when a test imports this file
from _regenerate import FIGURES, Sweep, command as _command, main  # noqa: E402

SETTINGS = {"total_steps": 200_000, "eval_every": 20_000}
ENVS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1")
SWEEPS = {
    "trpo_vs_ppo": Sweep(FIGURES / "07_trpo_vs_ppo", algo=["trpo", "ppo"], env_id=list(ENVS),
                         arms=[{"label": "defaults"}], seeds=10, settings=SETTINGS),
}


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return _command("regenerate_07", name)


if __name__ == "__main__":
    main(__doc__.splitlines()[0], SWEEPS)
