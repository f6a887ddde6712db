"""``pg.claim``: a sentence of a lesson, checked against the numbers of the cell beside it.

A lesson's markdown says what an experiment shows ("the learned baseline cuts the gradient variance
about threefold"). The code cell beside it computes the numbers and states the claim with
:func:`claim`, which prints the claim with its evidence and fails the cell when the numbers no longer
support it, so re-running the course (nbval) catches text that a regenerated cache or a new version of
the code has made false, instead of leaving a learner to trust it.

    ratio = pg.stats.stratified_bootstrap(...)            # an Estimate: point [low, high]
    pg.claim("the baseline cuts the gradient variance at least twofold", ratio.low > 2, variance_ratio=ratio)
    # ✓ the baseline cuts the gradient variance at least twofold  (variance_ratio = 3.1 [2.4, 4.0])
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any

import numpy as np


class ClaimError(AssertionError):
    """A lesson's claim is not supported by the numbers computed beside it."""


def _show(value: Any) -> str:
    """A number with 4 significant digits, an interval estimate as ``point [low, high]``, else ``str``."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (Real, np.number)):
        number = float(value)
        if math.isfinite(number) and number == int(number) and abs(number) < 1e15:
            return f"{int(number):,}"
        return f"{number:.4g}"
    return str(value)


def claim(statement: str, holds: bool, **evidence: Any) -> None:
    """Print ``statement`` with its evidence if ``holds``; raise :class:`ClaimError` if not.

    Args:
        statement: the sentence the lesson's text says, in words (non-empty).
        holds: the claim's test, computed from the measured numbers (a bool, e.g.
            ``ratio.low > 2``: the whole 95% interval above 2).
        **evidence: the numbers the claim rests on, shown beside it (``name=value``; a
            :class:`pgcourse.course.stats.Estimate` shows as ``point [low, high]``).

    Raises:
        TypeError: ``holds`` is not a bool (``claim("...", ratio)`` would test a number's truth).
        ClaimError: the numbers do not support the claim; the message says which and what to do.
    """
    if not isinstance(statement, str) or not statement.strip():
        raise TypeError(f"statement must be the claim as a non-empty sentence, got {statement!r}")
    if isinstance(holds, np.ndarray) and holds.shape == ():
        holds = holds.item()
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"holds must be True or False (the claim's test, e.g. ratio.low > 2), got "
                        f"{type(holds).__name__} {holds!r}")
    shown = ", ".join(f"{name} = {_show(value)}" for name, value in evidence.items())
    shown = f"  ({shown})" if shown else ""
    if not holds:
        raise ClaimError(f"✗ the lesson claims: {statement}{shown} — the numbers above no longer support it. "
                         "The text beside this cell must change, or the experiment behind it.")
    print(f"✓ {statement}{shown}")
