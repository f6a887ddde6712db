#!/usr/bin/env python3
"""Regenerate the cached sweeps of lesson 07: TRPO beside PPO (``figures/07_trpo_vs_ppo``) and TRPO's trust-region size
on Pendulum (``figures/07_max_kl``).

    python tools/regenerate_07.py trpo_vs_ppo --workers 2
    python tools/regenerate_07.py max_kl --workers 2

Both algorithms with their course defaults (``pgcourse.rl.config._ENV_DEFAULTS``) on CartPole-v1, Acrobot-v1
and Pendulum-v1, 10 seeds each, the same budget of 200,000 env steps (TRPO's default; PPO's learning
rates are annealed over it), a greedy evaluation of 20 episodes every 20,000 steps (evaluating never
changes training). Every trial records its training wall time (evaluations excluded), so the lesson can
compare returns per env step and per second. The folder is a ``pg.sweep`` results folder (resumable);
``pgcourse sweep --verify figures/07_trpo_vs_ppo --sample 1`` re-runs a random trial bit for bit.

``max_kl``: TRPO on Pendulum-v1 with the trust region's size ``max_kl`` (delta) at 0.001, 0.003, 0.03 and 0.1, the same
10 seeds, budget and evaluations; the default, 0.01, is the ``trpo_vs_ppo`` sweep's Pendulum arm (the same runs), so it
is not trained twice.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/_regenerate.py, also when a test imports this file
from _regenerate import FIGURES, Sweep, command as _command, main  # noqa: E402

SETTINGS = {"total_steps": 200_000, "eval_every": 20_000}
ENVS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1")
MAX_KLS = (0.001, 0.003, 0.03, 0.1)  # around the default 0.01, a factor of about 3 apart on a log scale
SWEEPS = {
    "trpo_vs_ppo": Sweep(FIGURES / "07_trpo_vs_ppo", algo=["trpo", "ppo"], env_id=list(ENVS),
                         arms=[{"label": "defaults"}], seeds=10, settings=SETTINGS),
    "max_kl": Sweep(FIGURES / "07_max_kl", algo="trpo", env_id="Pendulum-v1",
                    arms=[{"label": f"max_kl {delta}", "max_kl": delta} for delta in MAX_KLS], seeds=10, settings=SETTINGS),
}


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return _command("regenerate_07", name)


if __name__ == "__main__":
    main(__doc__.splitlines()[0], SWEEPS)
