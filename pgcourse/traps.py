"""Planted bugs ("traps") that the debugging chapter switches on one at a time.

Each trap is a name an algorithm understands (``pg.train("ppo", ..., traps=("name",))``). The
registry below says which algorithms implement it and what it breaks; a config naming an unknown
trap, or one the algorithm does not implement, fails at construction.
"""
from __future__ import annotations

# name -> (algorithms that implement it, one-line description)
TRAPS: dict[str, tuple[tuple[str, ...], str]] = {}


def validate_traps(algo: str, traps: tuple[str, ...]) -> None:
    from .config import ConfigError

    for name in traps:
        if name not in TRAPS:
            known = sorted(TRAPS) or "none yet"
            raise ConfigError(f"traps: unknown trap {name!r}; known traps: {known}")
        algos, _ = TRAPS[name]
        if algo not in algos:
            raise ConfigError(f"traps: {name!r} is implemented for {algos}, not for algo={algo!r}")


def describe() -> dict[str, str]:
    """Name -> what the trap does, for the lesson's table."""
    return {name: description for name, (_, description) in TRAPS.items()}
