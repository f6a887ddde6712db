"""The course package's small formatting, threshold and guard decisions, pinned at their edges (issue 45, item 5).

Audit 12 left alive: an estimate of exactly 1000 shown as "1000.0", a verify time budget that drops a trial taking
exactly ``max_seconds``, a module named ``pgcourse_x`` counted as the course package, a bool tensor accepted where
an integer one is expected. Each test states the definition and checks every decision of its function at the edge:
equality, one below, one above; every expected value is worked out by hand.
"""
from __future__ import annotations

import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pgcourse.course import stats
from pgcourse.course.checks import rules, stages
from pgcourse.course.stats import Estimate
from pgcourse.course.sweeps import driver
from pgcourse.course.sweeps.store import SweepResultsError


# -- stats: how a number is shown, and the bootstrap's argument checks -----------------------------------------
@pytest.mark.parametrize("value, shown", [
    (1000.0, "1000"),  # from 1000 on: no decimals
    (-1000.0, "-1000"),
    (1000.4, "1000"),
    (1234.5678, "1235"),
    (999.94, "999.9"),  # below 1000: one decimal
    (-999.94, "-999.9"),
    (1.0, "1.0"),  # from 1 on: one decimal
    (-1.0, "-1.0"),
    (1.04, "1.0"),
    (0.999, "0.999"),  # below 1: three significant digits
    (-0.5, "-0.5"),
    (0.012345, "0.0123"),
    (0.0, "0"),
    (float("nan"), "nan"),
    (float("inf"), "inf"),
    (float("-inf"), "-inf"),
])
def test_an_estimate_shows_no_decimals_from_1000_one_from_1_and_three_digits_below(value, shown):
    """``Estimate`` shows each number: its integer from |x| = 1000 on, one decimal from |x| = 1 on, three
    significant digits below 1, and a non-finite value as Python writes it."""
    assert str(Estimate(value, value, value, 0.95)) == f"{shown} [{shown}, {shown}]"


def test_an_estimate_shows_point_then_low_and_high():
    assert str(Estimate(1000.0, 999.94, 0.5, 0.95)) == "1000 [999.9, 0.5]"


@pytest.mark.parametrize("reps, confidence, error", [
    (1, 0.5, None),
    (0, 0.5, "reps=0 is invalid"),
    (True, 0.5, "reps=True is invalid"),
    (2.0, 0.5, "reps=2.0 is invalid"),
    (np.int64(1), 0.5, None),
    (1, 0.0, "confidence=0.0 is invalid"),  # both ends of (0, 1) are out
    (1, 1.0, "confidence=1.0 is invalid"),
    (1, 1e-9, None),
    (1, 1 - 1e-9, None),
])
def test_the_bootstrap_takes_a_positive_integer_of_reps_and_a_level_strictly_between_0_and_1(reps, confidence,
                                                                                              error):
    if error is None:
        stats._check_bootstrap_args(reps, confidence)
    else:
        with pytest.raises(ValueError, match=error):
            stats._check_bootstrap_args(reps, confidence)


@pytest.mark.parametrize("runs, refused", [(0, True), (1, True), (2, False), (3, False)])
def test_a_bootstrap_interval_needs_at_least_two_runs_per_task(runs, refused):
    scores = np.zeros((runs, 1))
    if refused:
        with pytest.raises(ValueError, match=f"scores has {runs} run per task: a bootstrap interval needs at least 2"):
            stats._check_runs(scores, "scores")
    else:
        stats._check_runs(scores, "scores")


# -- sweeps verify: which finished trials may be drawn -------------------------------------------------------------
class Drawn(Exception):
    """Raised by the fake folder when verify reads the trials it drew (the re-runs are not this test's)."""


class FakeFolder:
    """A results folder of finished trials ``{id: (arm, wall_seconds)}``; reading with the digest check (what
    verify does for the trials it drew) raises :class:`Drawn` with every id drawn."""

    trials: dict[str, tuple[str, float]] = {}

    def __init__(self, folder):
        self.path = folder
        self.drawn = []

    def read_manifest(self):
        return {}

    def finished_ids(self):
        return set(self.trials)

    def read(self, trial_id, check=True):
        if check:
            self.drawn.append(trial_id)
            if len(self.drawn) == len(self.expected):
                raise Drawn(sorted(self.drawn))
            return None
        arm, wall = self.trials[trial_id]
        return SimpleNamespace(arm=arm, wall_seconds=wall)


def drawn(monkeypatch, trials, **options):
    """The ids ``verify`` draws (all those allowed: the sample is larger than the folder), or its error."""
    expected = options.pop("expected")
    folder_class = type("Folder", (FakeFolder,), {"trials": trials, "expected": expected})
    monkeypatch.setattr(driver, "ResultsFolder", folder_class)
    with pytest.raises(Drawn) as caught:
        driver.verify("sweep", sample=10, seed=0, **options)
    return caught.value.args[0]


TIMED = {"a": ("x", 1.0), "b": ("x", 2.0), "c": ("x", 3.0)}


@pytest.mark.parametrize("max_seconds, kept", [
    (1.999, ["a"]),
    (2.0, ["a", "b"]),  # a trial that took exactly max_seconds is kept
    (2.001, ["a", "b"]),
    (3.0, ["a", "b", "c"]),
    (None, ["a", "b", "c"]),
])
def test_verify_draws_only_trials_that_took_at_most_max_seconds(monkeypatch, max_seconds, kept):
    assert drawn(monkeypatch, TIMED, max_seconds=max_seconds, expected=kept) == kept


def test_verify_with_no_trial_within_max_seconds_says_so(monkeypatch):
    monkeypatch.setattr(driver, "ResultsFolder", type("Folder", (FakeFolder,), {"trials": TIMED, "expected": []}))
    with pytest.raises(SweepResultsError, match=r"sweep has no finished trial to verify that took at most 0\.5 s$"):
        driver.verify("sweep", sample=10, seed=0, max_seconds=0.5)


ARMS = {"a1": ("one", 1.0), "b1": ("two", 1.0), "b2": ("two", 1.0), "c1": ("three", 1.0), "c2": ("three", 1.0),
        "c3": ("three", 1.0)}


@pytest.mark.parametrize("min_arm_seeds, kept", [
    (1, ["a1", "b1", "b2", "c1", "c2", "c3"]),
    (2, ["b1", "b2", "c1", "c2", "c3"]),  # an arm with exactly min_arm_seeds finished seeds is kept
    (3, ["c1", "c2", "c3"]),
])
def test_verify_draws_only_trials_whose_arm_has_at_least_min_arm_seeds(monkeypatch, min_arm_seeds, kept):
    assert drawn(monkeypatch, ARMS, min_arm_seeds=min_arm_seeds, expected=kept) == kept


def test_verify_with_no_arm_of_enough_seeds_names_both_conditions(monkeypatch):
    monkeypatch.setattr(driver, "ResultsFolder", type("Folder", (FakeFolder,), {"trials": ARMS, "expected": []}))
    with pytest.raises(SweepResultsError, match=r"sweep has no finished trial to verify that took at most 5 s whose "
                                                r"arm has at least 4 finished seeds$"):
        driver.verify("sweep", sample=10, seed=0, max_seconds=5.0, min_arm_seeds=4)


@pytest.mark.parametrize("sample, min_arm_seeds, error", [
    (0, 1, "sample=0 is invalid: expected a positive integer"),
    (True, 1, "sample=True is invalid"),
    (1.0, 1, "sample=1.0 is invalid"),
    (1, 0, "min_arm_seeds=0 is invalid: expected a positive integer"),
    (1, True, "min_arm_seeds=True is invalid"),
])
def test_verify_refuses_a_sample_or_min_arm_seeds_below_one(sample, min_arm_seeds, error):
    with pytest.raises(ValueError, match=error):
        driver.verify("nowhere", sample=sample, min_arm_seeds=min_arm_seeds)


def test_verify_with_a_sample_of_one_draws_one_trial(monkeypatch):
    monkeypatch.setattr(driver, "ResultsFolder", type("Folder", (FakeFolder,), {"trials": TIMED, "expected": [0]}))
    with pytest.raises(Drawn) as caught:
        driver.verify("sweep", sample=1, seed=0)
    assert len(caught.value.args[0]) == 1 and caught.value.args[0][0] in TIMED


# -- check rules: what is the course package -----------------------------------------------------------------------
def function_in(module_name):
    def f():
        return None
    f.__module__ = module_name
    return f


def class_in(module_name):
    return type("C", (), {"__module__": module_name})


@pytest.mark.parametrize("name, of_course", [
    ("pgcourse", True),
    ("pgcourse.rl", True),
    ("pgcourse.rl.memory", True),
    ("pgcourse_x", False),  # the name as a prefix without the dot is another package
    ("pgcoursex.rl", False),
    ("pgcours", False),
    ("my.pgcourse", False),
    ("", False),
])
def test_the_course_package_is_pgcourse_and_its_dotted_modules_only(name, of_course):
    """A module, a function or a class is the course's when its module is ``pgcourse`` or ``pgcourse.<...>``."""
    assert rules._of_course(types.ModuleType(name)) is of_course
    assert rules._of_course(function_in(name)) is of_course
    assert rules._of_course(class_in(name)) is of_course


def test_other_values_are_never_the_course_package():
    """Neither instances nor a function whose module is unknown; a builtin function by its module."""
    assert rules._of_course(3) is False and rules._of_course("pgcourse") is False
    assert rules._of_course(function_in(None)) is False
    assert rules._of_course(len) is False  # builtins
    assert rules._of_course(rules._of_course) is True


# -- stage checks: a value against the reference, its kind first ---------------------------------------------------
EXPECTED = torch.tensor([1, 0, 1])


@pytest.mark.parametrize("dtype, refused", [
    (torch.int64, False), (torch.int32, False), (torch.uint8, False), (torch.int8, False),
    (torch.bool, True),  # a bool is not an integer action
    (torch.float32, True), (torch.float64, True), (torch.float16, True),
])
def test_a_stage_expecting_integers_refuses_floats_and_bools(dtype, refused):
    mismatch = stages.compare("actions", EXPECTED, EXPECTED.to(dtype), exact=True, kind="integer")
    if refused:
        assert mismatch.problem == (f"`actions` has dtype {dtype}; actions of a Discrete space are integers.")
    else:
        assert mismatch is None


@pytest.mark.parametrize("dtype, refused", [
    (torch.float32, False), (torch.float64, False), (torch.float16, False),
    (torch.int64, True), (torch.bool, True), (torch.uint8, True),
])
def test_a_stage_expecting_floats_refuses_integers_and_bools(dtype, refused):
    mismatch = stages.compare("dones", EXPECTED.double(), EXPECTED.to(dtype), exact=True, kind="float")
    assert (mismatch is not None) is refused
    if refused:
        assert mismatch.problem.startswith(f"`dones` has dtype {dtype}; it must be a float tensor")


@pytest.mark.parametrize("dtype, refused", [
    (torch.bool, False), (torch.uint8, True), (torch.int64, True), (torch.float32, True),
])
def test_a_stage_expecting_bools_refuses_everything_else(dtype, refused):
    mismatch = stages.compare("mask", EXPECTED.bool(), EXPECTED.to(dtype), exact=True, kind="bool")
    assert (mismatch is not None) is refused
    if refused:
        assert mismatch.problem == f"`mask` has dtype {dtype}; it must be a bool tensor (it selects entries)."


def test_a_stage_with_no_kind_compares_values_whatever_the_dtype():
    for dtype in (torch.bool, torch.int64, torch.float32):
        assert stages.compare("x", EXPECTED, EXPECTED.to(dtype), exact=True) is None


def test_a_stage_refuses_a_non_tensor_and_a_wrong_shape_before_the_kind():
    assert stages.compare("x", EXPECTED, "text", exact=True, kind="integer").problem == (
        "`x` should be a tensor of shape (3,), got a str.")
    assert stages.compare("x", EXPECTED, None, exact=True).problem == (
        "`x` should be a tensor of shape (3,), got a NoneType.")
    assert stages.compare("x", EXPECTED, torch.zeros(2, dtype=torch.bool), exact=True, kind="integer").problem == (
        "`x` has shape (2,), expected (3,).")
    assert stages.compare("x", EXPECTED, torch.tensor([[1], [0], [1]]), exact=True).problem == (
        "`x` has shape (3, 1), expected (3,).")  # as many entries, another shape
    assert stages.compare("x", EXPECTED, [1, 0, 1], exact=True, kind="integer") is None  # a list is read as a tensor


@pytest.mark.parametrize("received, exact, equal", [
    ([1.0, 2.0, 3.0], True, True),
    ([1.0, 2.0, 3.0 + 1e-12], True, False),  # exact: any difference
    ([1.0, 2.0, 3.0 + 1e-12], False, True),
    ([1.0, 2.0, 4.0], False, False),
    ([1.0, 2.0, float("nan")], True, False),
])
def test_a_stage_is_equal_exactly_or_within_its_tolerance(received, exact, equal):
    expected = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    mismatch = stages.compare("v", expected, torch.tensor(received, dtype=torch.float64), exact=exact)
    assert (mismatch is None) is equal
    if not equal:
        assert mismatch.problem == f"your `v` {'are not equal to' if exact else 'differ from'} the reference's."


def test_a_stage_compares_only_where_the_mask_is_true():
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    received = torch.tensor([[1.0, 9.0], [3.0, 4.0]])
    where = torch.tensor([[True, False], [True, True]])
    assert stages.compare("v", expected, received, exact=True, where=where) is None
    mismatch = stages.compare("v", expected, received, exact=True, where=torch.ones(2, 2, dtype=torch.bool))
    assert mismatch.problem == ("your `v` are not equal to the reference's (compared on the real transitions, "
                                "valid = True).")
