"""pg.claim: the lesson's sentence is printed with its evidence when the numbers hold, and fails the cell when not."""
from __future__ import annotations

import numpy as np
import pytest

import pgcourse as pg
from pgcourse.course.stats import Estimate


def test_a_claim_that_holds_is_printed_with_its_evidence(capsys):
    ratio = Estimate(point=3.14159, low=2.4, high=4.0, confidence=0.95)
    assert pg.claim("the baseline cuts the variance at least twofold", ratio.low > 2, variance_ratio=ratio,
                    seeds=10) is None
    assert capsys.readouterr().out == ("✓ the baseline cuts the variance at least twofold  "
                                       "(variance_ratio = 3.1 [2.4, 4.0], seeds = 10)\n")


def test_numpy_results_are_accepted_and_shown_short(capsys):
    returns = np.array([480.0, 500.0, 495.5])
    pg.claim("every seed reaches 475", np.all(returns >= 475), lowest=returns.min(), mean=returns.mean())
    assert capsys.readouterr().out == "✓ every seed reaches 475  (lowest = 480, mean = 491.8)\n"


def test_a_claim_the_numbers_no_longer_support_fails_the_cell(capsys):
    with pytest.raises(pg.ClaimError, match=r"the lesson claims: λ = 0.95 beats λ = 1 .*gap = -3.2.*text beside"):
        pg.claim("λ = 0.95 beats λ = 1", -3.2 > 0, gap=-3.2)
    assert capsys.readouterr().out == ""
    assert issubclass(pg.ClaimError, AssertionError)  # nbval and pytest report it as a failed assertion


@pytest.mark.parametrize("holds", [3.0, "yes", None, np.array([True, False])])
def test_the_test_must_be_a_bool(holds):
    with pytest.raises(TypeError, match="holds must be True or False"):
        pg.claim("something", holds)


@pytest.mark.parametrize("statement", ["", "   ", None])
def test_the_statement_must_be_a_sentence(statement):
    with pytest.raises(TypeError, match="statement"):
        pg.claim(statement, True)
