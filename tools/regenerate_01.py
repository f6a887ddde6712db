#!/usr/bin/env python3
"""Regenerate the cached sweep of lesson 01 (REINFORCE) in ``figures/01_weighting``.

    python tools/regenerate_01.py weighting      # figures/01_weighting: which return weights the log-probs
    python tools/regenerate_01.py all --workers 2

Every trial is plain REINFORCE on CartPole-v1 with the course defaults and the lesson's budget
(``SETTINGS``: 200 episodes, 4 per update). Four arms cross the two choices the lesson teaches:
``return_weighting`` (the episode's total return G_0 at every step, Williams' original estimator, or
the reward-to-go G_t) and ``normalize_weights`` (standardise the weights over the batch, or not). The
course default is reward-to-go, normalised. A fifth, gamma^t G_t raw, has the raw total return's expectation
without the noise of the rewards before each step: beside the two raw arms it splits that noise from the
factor gamma^t. The sweep is a ``pg.sweep`` results folder (resumable: run
the command again and finished trials are kept); ``pgcourse sweep --verify figures/01_weighting
--sample 1`` re-runs a random trial and checks it gives the same numbers bit for bit. The lesson loads
the folder with ``pgcourse.course.sweeps.load_results`` and prints the command beside each result.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/_regenerate.py, also when a test imports this file
from _regenerate import FIGURES, Sweep, command as _command, main  # noqa: E402

# The lesson's budget: 200 episodes (50 updates of 4 episodes), the same as its own live run.
SETTINGS = {"max_episodes": 200}

WEIGHTING_SEEDS = 20
WEIGHTING_ARMS = [
    {"label": "total return, raw", "return_weighting": "total", "normalize_weights": False},  # Williams (1992)
    {"label": "reward-to-go, raw", "normalize_weights": False},
    {"label": "total return, normalised", "return_weighting": "total"},
    {"label": "reward-to-go, normalised"},  # the course default
    # gamma^t G_t: the raw total return's expectation without its noise, so that the raw arms split noise from gamma^t
    {"label": "gamma^t x reward-to-go, raw", "return_weighting": "discounted", "normalize_weights": False},
]

SWEEPS = {
    "weighting": Sweep(FIGURES / "01_weighting", "reinforce", "CartPole-v1", WEIGHTING_ARMS, WEIGHTING_SEEDS, SETTINGS,
                       measure="final_return", last=20),
}


def command(name: str) -> str:
    """The shell command that regenerates sweep ``name`` (printed by the lesson beside its results)."""
    return _command("regenerate_01", name)


if __name__ == "__main__":
    main(__doc__.splitlines()[0], SWEEPS)
