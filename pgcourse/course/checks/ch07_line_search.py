"""Exercise 07's line search: the searches ``check_line_search`` (:mod:`.ch07_trpo`) plays, and the known wrong
searches, each with the hint that names it.

The check replays each wrong search on the scenarios and names one only when it returns
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


def _accepted_index(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio):
    """The loop's counter k of the accepted try (0 for the full step) returned in place of its fraction shrink^k;
    0.0 when none is accepted."""
    for k in range(max_backtracks):
        fraction = shrink ** k
        improvement, kl = evaluate(fraction)
        if _right(improvement, kl, accept_ratio * expected_improvement * fraction, max_kl):
            return float(k)
    return 0.0


def _reference(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio):
    return _search(_right, _geometric)(evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio)


UNSCALED_HINT = ("the required improvement is not scaled by the fraction tried: the linear model predicts "
                 "expected_improvement x fraction for a shortened step, so a step shrunk to fit the trust region "
                 "must beat accept_ratio x that, not accept_ratio x the full step's prediction (which a short step "
                 "may never reach).")
NAN_HINT = ("a NaN KL or improvement must count as a rejection (every comparison with NaN is False: test for "
            "acceptance, not for rejection).")

# description, evaluate, expected_improvement, max_kl, max_backtracks, shrink, accept_ratio, the answer, what it tests
LINE_SEARCH_SCENARIOS = [
    ("KL = 0.04 f^2, improvement = f (the full step is twice too far: accept f = 0.5)",
     lambda f: (f, 0.04 * f * f), 1.0, 0.01, 10, 0.5, 0.1, 0.5,
     "that a step is accepted only if its KL is at most max_kl (the full step here reaches 0.04)."),
    ("KL = 0.01 f, improvement = f (the full step is on the constraint's edge: accept f = 1)",
     lambda f: (f, 0.01 * f), 1.0, 0.01, 10, 0.5, 0.1, 1.0,
     "that fraction 1 is tried first and that KL <= max_kl counts as inside."),
    ("the surrogate gets worse at every step: accept nothing (0.0)",
     lambda f: (-f, 0.0), 1.0, 0.01, 5, 0.5, 0.1, 0.0,
     "that a step making the surrogate worse is never accepted, even inside the trust region (return 0.0)."),
    ("improvement = 0.05 f, 10% of the prediction = 0.1 f: too little everywhere (0.0)",
     lambda f: (0.05 * f, 0.0), 1.0, 0.01, 6, 0.5, 0.1, 0.0,
     "that the real improvement must beat accept_ratio x expected_improvement x fraction, not 0."),
    ("NaN KL for large steps, fine from f = 0.25 (shrink 0.5)",
     lambda f: (f, float("nan") if f > 0.3 else 0.0), 1.0, 0.01, 10, 0.5, 0.1, 0.25,
     "that a NaN KL counts as a rejection."),
    ("NaN improvement for large steps, KL 0 everywhere, fine from f = 0.25 (shrink 0.5)",
     lambda f: (float("nan") if f > 0.3 else f, 0.0), 1.0, 0.01, 10, 0.5, 0.1, 0.25,
     "that a NaN improvement counts as a rejection."),
    ("shrink = 0.8, KL = 0.02 f^2: accept 0.8^n, the first with KL <= 0.01 (0.8^2 = 0.64)",
     lambda f: (f, 0.02 * f * f), 1.0, 0.01, 10, 0.8, 0.1, 0.64,
     "the fractions 1, shrink, shrink^2, ... for a shrink other than 0.5."),
    ("improvement = 0.15 f, KL = 0.12 f^2: the first fraction inside is f = 0.25 (0.0075); its improvement "
     "0.0375 beats 10% of the prediction for f = 0.25 (0.025), not 10% of the full step's (0.1): accept f = 0.25",
     lambda f: (0.15 * f, 0.12 * f * f), 1.0, 0.01, 10, 0.5, 0.1, 0.25,
     "that the required improvement is scaled by the fraction tried."),
    ("expected_improvement = 2, improvement = f, KL = 0.12 f^2, max_backtracks = 3: the third and last try, "
     "f = 0.25, is accepted",
     lambda f: (f, 0.12 * f * f), 2.0, 0.01, 3, 0.5, 0.1, 0.25,
     "that max_backtracks fractions are tried (the last one is accepted here) and the fraction returned as it is."),
    ("improvement = f - 1.5 f^2, KL 0: f = 1 makes it worse, f = 0.5 is the first acceptable (0.125 > 0.05), "
     "though f = 0.25 would improve more (0.156): accept f = 0.5",
     lambda f: (f - 1.5 * f * f, 0.0), 1.0, 0.01, 10, 0.5, 0.1, 0.5,
     "that the search stops at the first acceptable fraction."),
]

# (hint, the wrong search): the first that reproduces the learner's fractions is named
LINE_SEARCH_MISTAKES: list[tuple[str, LineSearch]] = [
    ("the KL was not checked: accept a step only if its KL is at most max_kl.",
     _search(lambda imp, kl, threshold, max_kl: imp > threshold, _geometric)),
    ("a KL equal to max_kl is inside the trust region: accept with kl <= max_kl, not kl < max_kl.",
     _search(lambda imp, kl, threshold, max_kl: kl < max_kl and imp > threshold, _geometric)),
    ("compare the real improvement with accept_ratio x expected_improvement x fraction, not with 0.",
     _search(lambda imp, kl, threshold, max_kl: kl <= max_kl and imp > 0, _geometric)),
    (NAN_HINT, _search(lambda imp, kl, threshold, max_kl: not (kl > max_kl or imp <= threshold), _geometric)),
    (NAN_HINT, _search(lambda imp, kl, threshold, max_kl: math.isfinite(kl) and not (kl > max_kl or imp <= threshold),
                       _geometric)),  # a NaN KL caught, a NaN improvement let through
    (NAN_HINT, _search(lambda imp, kl, threshold, max_kl: math.isfinite(imp) and not (kl > max_kl or imp <= threshold),
                       _geometric)),  # the other way round
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
    # a student's try (issue 49), told before what its first failing search was built to test
    ("you returned the index of the accepted try (the loop's counter: 0 for the first try, 1 for the second, ...), "
     "not its fraction: return shrink^index, the fraction you evaluated and accepted (1 for the first try).",
     _accepted_index),
    ("one try short: try max_backtracks fractions, 1 up to shrink^(max_backtracks - 1).",
     lambda evaluate, expected, max_kl, backtracks, shrink, ratio: _reference(evaluate, expected, max_kl,
                                                                              backtracks - 1, shrink, ratio)),
]


def matching_mistake(fractions: list[float], scenarios: list[tuple], failing: int, answers: list[float] | None = None,
                     tries: list[list[float]] | None = None) -> tuple[str | None, bool]:
    """(hint, certain): the known wrong search that returns the learner's ``fractions`` on every scenario (certain),
    else one that returns it on scenario ``failing`` and on every scenario the learner got right (``answers``: the
    right fractions; a wrong search that would have failed a scenario the learner passed is not theirs), else
    (None, False). Where the fractions the learner tried are known (``tries``), the wrong search must have tried
    the same ones on ``failing`` too. ``scenarios`` hold ``(evaluate, expected_improvement, max_kl,
    max_backtracks, shrink, accept_ratio)``, in ``fractions``' order."""
    def replay(search: LineSearch, index: int) -> tuple[float, list[float]] | None:
        tried: list[float] = []
        evaluate, *rest = scenarios[index]

        def counted(fraction: float) -> tuple[float, float]:
            tried.append(float(fraction))
            return evaluate(fraction)
        try:
            return float(search(counted, *rest)), tried
        except Exception:  # noqa: BLE001 - a wrong search that cannot run on a scenario does not match it
            return None

    def same(search: LineSearch, index: int, with_tries: bool = False) -> bool:
        replayed = replay(search, index)
        if replayed is None or not math.isclose(replayed[0], fractions[index], abs_tol=1e-6):
            return False
        return not (with_tries and tries and tries[index]) or replayed[1] == tries[index]

    right = [k for k in range(len(scenarios))
             if answers is not None and math.isclose(fractions[k], answers[k], abs_tol=1e-6)]
    for hint, search in LINE_SEARCH_MISTAKES:
        if all(same(search, index) for index in range(len(scenarios))):
            return hint, True
    for hint, search in LINE_SEARCH_MISTAKES:
        if same(search, failing, with_tries=True) and all(same(search, index) for index in right):
            return hint, False
    return None, False
