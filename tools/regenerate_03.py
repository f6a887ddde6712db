#!/usr/bin/env python3
"""Regenerate the cached sweeps of lesson 03 (A2C and GAE) in ``figures/03_*``.

    python tools/regenerate_03.py lambda        # figures/03_lambda: the GAE lambda sweep
    python tools/regenerate_03.py truncation    # figures/03_truncation: bootstrapping at the time limit, or not
    python tools/regenerate_03.py lambda_acrobot  # figures/03_lambda_acrobot: the same lambda sweep on Acrobot-v1
    python tools/regenerate_03.py all --workers 2

Every trial is A2C (on CartPole-v1 unless the sweep's name says Acrobot-v1) with the course defaults (``pg.config.default_overrides("a2c",
"discrete")``) and the budget in ``SWEEPS``; everything not listed in an arm is the default. Each sweep is
a ``pg.sweep`` results folder (resumable: run the command again and finished trials are kept);
``pgcourse sweep --verify figures/03_lambda --sample 1`` re-runs a random trial and checks it gives the
same numbers bit for bit. The lesson loads the folders with ``pgcourse.course.sweeps.load_results`` and prints
the command beside each result.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/_regenerate.py, also when a test imports this file
from _regenerate import FIGURES, Sweep, command as _command, main  # noqa: E402

# The lambda sweep: 50k env steps, the learning rates annealed to 0 over them (the default), one greedy
# evaluation of 20 episodes after the last update (eval_every = total_steps; evaluating never changes
# training). A2C logs a row per update (every 128 steps): about 47 kB per compressed trial at this budget
# (2.7 MiB for the folder); 100k steps would double it.
LAMBDA_SETTINGS = {"total_steps": 50_000, "eval_every": 50_000}
LAMBDA_SEEDS = 10
LAMBDAS = (0.0, 0.5, 0.9, 0.95, 0.99, 1.0)
LAMBDA_ARMS = [{"label": f"lambda {lam}", "gae_lambda": lam} for lam in LAMBDAS]

# The truncation experiment: CartPole with a time limit of 100 steps instead of 500 (gym.make's
# max_episode_steps, through env_kwargs), so that a learning agent hits the limit early and often (with the
# 500-step limit A2C reaches it only late in a 100k-step run: 2 seeds per arm at 100k steps gave training
# averages of the last 50 episodes 465, 459 correct and 450, 206 with the bug, at ~85 kB per trial); the bug
# is the planted trap "truncation_as_termination" (pgcourse.rl.planted), GAE cutting the bootstrap at every time
# limit. 30k steps: every run of both arms balances for the full 100 steps by then.
TRUNCATION_SETTINGS = {"total_steps": 30_000, "eval_every": 30_000, "env_kwargs": {"max_episode_steps": 100}}
TRUNCATION_SEEDS = 10
TRUNCATION_ARMS = [
    {"label": "correct"},
    {"label": "truncation as termination", "traps": ["truncation_as_termination"]},
]

# The lambda sweep again on Acrobot-v1 (reward -1 per step until the tip swings above the line, time limit 500):
# does CartPole's answer transfer to a task whose early episodes all end by truncation? Same arms, seeds and
# budget; the final evaluation samples actions (pg.config.EVAL_MODE_DEFAULTS: a greedy Acrobot policy can hold one
# action forever). One A2C run of 100k steps took 11 CPU-s on the 2-core CPU of the course's machine.
ACROBOT_LAMBDA_SETTINGS = dict(LAMBDA_SETTINGS)

SWEEPS = {
    "lambda": Sweep(FIGURES / "03_lambda", "a2c", "CartPole-v1", LAMBDA_ARMS, LAMBDA_SEEDS, LAMBDA_SETTINGS),
    "truncation": Sweep(FIGURES / "03_truncation", "a2c", "CartPole-v1", TRUNCATION_ARMS, TRUNCATION_SEEDS,
                        TRUNCATION_SETTINGS),
    "lambda_acrobot": Sweep(FIGURES / "03_lambda_acrobot", "a2c", "Acrobot-v1", LAMBDA_ARMS, LAMBDA_SEEDS,
                            ACROBOT_LAMBDA_SETTINGS),
}


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return _command("regenerate_03", name)


if __name__ == "__main__":
    main(__doc__.splitlines()[0], SWEEPS)
