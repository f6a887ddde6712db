"""The bug hunt of lesson 06: three mystery PPO trainers, each with one hidden planted bug, and the check
of the learner's answers. The answers are stored as salted hashes, not as names.
"""
from __future__ import annotations

import hashlib

from ..api import train
from ..planted import TRAPS

MYSTERY_STEPS = 12_000
# The hidden traps are stored as hashes so that reading the source does not give the answers away.
_MYSTERY_SEEDS = {1: 3, 2: 1, 3: 2}
_MYSTERY_HASHES = {1: "8b3a8f007ac8273b", 2: "5566d6cb076ca9c4", 3: "08bfebc073a152c2"}


def _digest(name: str) -> str:
    return hashlib.sha256(("pgcourse-bug-hunt:" + name).encode()).hexdigest()[:16]


def _mystery_trap(k: int) -> str:
    for name in TRAPS:
        if _digest(name) == _MYSTERY_HASHES[k]:
            return name
    raise KeyError(k)


def mystery_run(k: int, total_steps: int = MYSTERY_STEPS):
    """Train mystery PPO trainer ``k`` (1, 2 or 3) on CartPole-v1: the course's PPO with one hidden trap."""
    if k not in _MYSTERY_HASHES:
        raise ValueError("mystery trainers are numbered 1, 2 and 3")
    return train("ppo", "CartPole-v1", seed=_MYSTERY_SEEDS[k], total_steps=total_steps, device="cpu",
                 progress=False, traps=(_mystery_trap(k),))


def check_bug_hunt(answers: dict[int, str]) -> None:
    """Check the bug hunt: ``answers[k]`` is the trap name (a key of ``TRAPS``) planted in mystery trainer ``k``."""
    if not isinstance(answers, dict):
        raise AssertionError(f"answers must be a dict {{1: 'trap name', 2: ..., 3: ...}}, got {type(answers).__name__}")
    try:  # keys may arrive as strings (e.g. through JSON)
        answers = {int(k): v for k, v in answers.items()}
    except (TypeError, ValueError):
        raise AssertionError("answers must be keyed by the trainer numbers 1, 2 and 3") from None
    missing = [k for k in (1, 2, 3) if k not in answers]
    if missing:
        raise AssertionError(f"answers has no entry for mystery trainer(s) {missing}")
    for k in (1, 2, 3):
        name = answers[k]
        if not isinstance(name, str) or name not in TRAPS:
            raise AssertionError(f"mystery trainer {k}: {name!r} is not a trap name; choose one of {sorted(TRAPS)}")
    wrong = [k for k in (1, 2, 3) if _digest(answers[k]) != _MYSTERY_HASHES[k]]
    if wrong:
        raise AssertionError(f"mystery trainer(s) {wrong}: that is not the planted bug. Look again at which "
                             "signal pg.diagnose flags first, and what in the update could produce exactly that number.")
    print("✓ bug hunt: all three planted bugs named correctly")
