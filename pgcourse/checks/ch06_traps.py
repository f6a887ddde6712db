"""Checks of chapter 06 (debugging traps): the bug hunt.

The answers are checked by :mod:`pgcourse.traps`, which knows the traps; it is imported only when
the check runs.
"""
from __future__ import annotations


def check_bug_hunt(answers: dict) -> None:
    """Check the bug hunt of chapter 06: ``answers[k]`` names the trap planted in mystery trainer ``k``
    (a key of ``pgcourse.traps.TRAPS``). Behaviour is compared, not names: the named trap is planted in the
    course's PPO, trained at the mystery's seed, and its first updates must match the mystery's."""
    from ..traps import check_bug_hunt as _check

    _check(answers)
