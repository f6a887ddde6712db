"""Known wrong backtracking line searches (exercise 07), each with the hint that names it.

``check_line_search`` (:mod:`.ch07_trpo`) replays each of them on its scenarios and names one only when it returns
the learner's fractions: on every scenario ("Probable mistake"), or on the failing one ("Possible cause"). A
scenario's own purpose is never presented as the learner's cause. Every search here takes the reference's
arguments ``(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio)`` and returns the
fraction it accepts (0.0 when none), as the exercise's ``line_search`` does.
"""
from __future__ import annotations

import math
from collections.abc import Callable

Evaluate = Callable[[float], tuple[float, float]]
LineSearch = Callable[[Evaluate, float, float, int, float, float], float]


def _search(accepts: Callable[[float, float, float, float], bool], fractions: Callable[[int, float], float]
            ) -> LineSearch:
    """A line search that tries ``fractions(k, shrink)`` for k = 0, 1, ... and returns the first that
    ``accepts(improvement, kl, threshold, max_kl)``; ``threshold`` is accept_ratio x expected x fraction."""
    def search(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio):
        for k in range(max_backtracks):
            fraction = fractions(k, shrink)
            improvement, kl = evaluate(fraction)
            if accepts(improvement, kl, accept_ratio * expected_improvement * fraction, max_kl):
                return fraction
        return 0.0
    return search


def _geometric(k: int, shrink: float) -> float:
    return shrink ** k


def _right(improvement: float, kl: float, threshold: float, max_kl: float) -> bool:
    return math.isfinite(improvement) and math.isfinite(kl) and kl <= max_kl and improvement > threshold


def _best_of_all(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio):
    """Every fraction tried; the acceptable one with the largest improvement returned."""
    acceptable = []
    for k in range(max_backtracks):
        fraction = shrink ** k
        improvement, kl = evaluate(fraction)
        if _right(improvement, kl, accept_ratio * expected_improvement * fraction, max_kl):
            acceptable.append((improvement, fraction))
    return max(acceptable)[1] if acceptable else 0.0


def _reference(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio):
    return _search(_right, _geometric)(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio)


UNSCALED_HINT = ("the required improvement is not scaled by the fraction tried: the linear model predicts "
                 "expected_improvement x fraction for a shortened step, so a step shrunk to fit the trust region "
                 "must beat accept_ratio x that, not accept_ratio x the full step's prediction (which a short step "
                 "may never reach).")
NAN_HINT = ("a NaN KL or improvement must count as a rejection (every comparison with NaN is False: test for "
            "acceptance, not for rejection).")

# (hint, the wrong search): the first that reproduces the learner's fractions is named
LINE_SEARCH_MISTAKES: list[tuple[str, LineSearch]] = [
    ("the KL was not checked: accept a step only if its KL is at most max_kl.",
     _search(lambda imp, kl, threshold, max_kl: imp > threshold, _geometric)),
    ("a KL equal to max_kl is inside the trust region: accept with kl <= max_kl, not kl < max_kl.",
     _search(lambda imp, kl, threshold, max_kl: kl < max_kl and imp > threshold, _geometric)),
    ("compare the real improvement with accept_ratio x expected_improvement x fraction, not with 0.",
     _search(lambda imp, kl, threshold, max_kl: kl <= max_kl and imp > 0, _geometric)),
    (NAN_HINT, _search(lambda imp, kl, threshold, max_kl: not (kl > max_kl or imp <= threshold), _geometric)),
    (UNSCALED_HINT,
     lambda evaluate, expected, max_kl, backtracks, shrink, ratio: _search(
         lambda imp, kl, threshold, max_kl: kl <= max_kl and imp > ratio * expected, _geometric)(
         evaluate, expected, max_kl, backtracks, shrink, ratio)),
    ("multiply the fraction by `shrink` after each rejected try (fractions 1, shrink, shrink^2, ...): your "
     "fractions halve whatever shrink is.", _search(_right, lambda k, shrink: 0.5 ** k)),
    ("return the first acceptable fraction (the longest step inside the trust region that improves enough): the "
     "search stops there, it does not try every fraction and keep the best improvement.", _best_of_all),
    ("return the fraction that was accepted, not the one after it (shrunk once more).",
     lambda *args: _reference(*args) * args[4]),
    ("you returned the improvement the linear model predicts for the accepted step (fraction x "
     "expected_improvement): return the fraction itself.", lambda *args: _reference(*args) * args[1]),
    ("one try short: try max_backtracks fractions, 1 up to shrink^(max_backtracks - 1).",
     lambda evaluate, expected, max_kl, backtracks, shrink, ratio: _reference(evaluate, expected, max_kl,
                                                                              backtracks - 1, shrink, ratio)),
]


def matching_mistake(fractions: list[float], scenarios: list[tuple], failing: int) -> tuple[str | None, bool]:
    """(hint, certain): the known wrong search that returns the learner's ``fractions`` on every scenario (certain),
    else one that returns it on scenario ``failing``, else (None, False). ``scenarios`` hold ``(evaluate,
    expected_improvement, max_kl, max_backtracks, shrink, accept_ratio)``, in ``fractions``' order."""
    def replay(search: LineSearch, scenario: tuple) -> float | None:
        try:
            return float(search(*scenario))
        except Exception:  # noqa: BLE001 - a wrong search that cannot run on a scenario does not match it
            return None

    def same(search: LineSearch, index: int) -> bool:
        replayed = replay(search, scenarios[index])
        return replayed is not None and math.isclose(replayed, fractions[index], abs_tol=1e-6)

    for hint, search in LINE_SEARCH_MISTAKES:
        if all(same(search, index) for index in range(len(scenarios))):
            return hint, True
    for hint, search in LINE_SEARCH_MISTAKES:
        if same(search, failing):
            return hint, False
    return None, False
