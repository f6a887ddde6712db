"""The parts of ``rl/agreement.py``'s conditions, each pinned on a case where it alone decides (issue 45, item 5).

A mechanical sweep dropped each operand of every ``and``/``or`` in ``pgcourse/rl`` in turn; in ``rl/agreement.py``
the drops below survived the unit tests (or no unit test ran the line). Each test states what the dropped part is
for, on an input where the full condition and the shortened one disagree; every expected value is worked out by
hand, with tolerances and values exact in binary floating point (0.25, 0.5, 4.0, ...).

Not tested, since no input can tell them apart:

- ``_same``'s ``_is_number(stored) and _is_number(again)`` with either part dropped: the NaN clause that follows
  needs both to be ``float``/``np.floating``, which already implies ``_is_number``.
- ``_near``'s ``isnan(stored) or isnan(again)`` with either part dropped: with one NaN the code below it returns
  False anyway (``inf == x`` is False for x NaN, and ``NaN <= tolerance`` is False), as the full branch does.
- ``divergence_onset``'s ``near > 0 and near >= len(differing) - near`` (``near >= 0``, or the first part dropped):
  at ``near == 0`` the second part reads ``0 >= len(differing)``, false for the non-empty list it is computed for.
"""
from __future__ import annotations

import math

import pytest

from pgcourse.rl.agreement import compare, divergence_onset


# -- compare: a flag is not a number ---------------------------------------------------------------------------------
@pytest.mark.parametrize("stored, again, rtol, atol", [
    (True, 1.00005, 1e-4, 1e-8),  # as numbers 1.0 vs 1.00005 would be within rtol 1e-4
    (False, 1e-9, 0.0, 1e-8),  # as numbers 0.0 vs 1e-9 would be within atol 1e-8
    (1.00005, True, 1e-4, 1e-8),
])
def test_a_bool_is_compared_for_equality_never_within_a_tolerance(stored, again, rtol, atol):
    """``compare``: a bool (a done flag, a "solved" verdict) is not a number, so it is never "within tolerance" of
    one: it agrees only with what it equals, and True vs 1.00005 is apart even where 1.0 vs 1.00005 is close."""
    agreement = compare({"done": stored}, {"done": again}, rtol=rtol, atol=atol)
    shown = f"done: stored {stored!r} vs re-run {again!r}"
    assert (agreement.identical, agreement.close, agreement.level) == (False, False, "apart")
    assert (agreement.first_difference, agreement.first_apart) == (shown, shown)


# -- compare: NaN agrees only with NaN, infinity only with the same infinity ----------------------------------------
@pytest.mark.parametrize("stored, again, rtol, atol", [
    (math.nan, 1.0, 1e-4, 1e-8),  # stored NaN, re-run a number
    (1.0, math.nan, 1e-4, 1e-8),  # the other way round
    (math.nan, 1.0, 0.0, math.inf),  # not even an unbounded tolerance makes them agree
    (1.0, math.nan, 0.0, math.inf),
    (math.inf, 1.0, 1e-4, 1e-8),  # rtol * |inf| is infinite, yet inf is not close to 1
    (1.0, math.inf, 1e-4, 1e-8),
    (math.inf, 1.0, 0.0, math.inf),
    (1.0, math.inf, 0.0, math.inf),  # |inf - 1| = inf <= atol = inf, yet apart
    (-math.inf, math.inf, 1e-4, 1e-8),
])
def test_a_non_finite_value_is_apart_from_anything_but_itself_whatever_the_tolerance(stored, again, rtol, atol):
    """``compare``: NaN is within tolerance only of NaN, and an infinity only of the same infinity, on either side
    and whatever ``rtol``/``atol`` (even infinite ones): a run that produced NaN or inf where the other has a number
    is apart, not a rounding away."""
    agreement = compare({"loss": [stored]}, {"loss": [again]}, rtol=rtol, atol=atol)
    shown = f"loss[0]: stored {stored!r} vs re-run {again!r}"
    assert (agreement.identical, agreement.close, agreement.compared) == (False, False, 1)
    assert (agreement.first_difference, agreement.first_apart) == (shown, shown)


# -- compare: None stored stands for a non-finite value only ---------------------------------------------------------
@pytest.mark.parametrize("again, identical", [
    (math.nan, True),
    (math.inf, True),
    (-math.inf, True),
    (1.0, False),  # a finite number is not what JSON's null stood for
    (0.0, False),
])
def test_a_stored_none_matches_only_a_non_finite_re_run_value(again, identical):
    """``compare``: ``None`` in the stored values is a non-finite float JSON could not hold, so it matches a re-run
    NaN or +-inf (bit for bit); against a finite number it is apart."""
    agreement = compare({"loss": [0.5, None]}, {"loss": [0.5, again]})
    assert agreement.compared == 2
    assert (agreement.identical, agreement.close) == (identical, identical)
    shown = None if identical else f"loss[1]: stored None vs re-run {again!r}"
    assert (agreement.first_difference, agreement.first_apart) == (shown, shown)


# -- compare: the top level is named "value" ------------------------------------------------------------------------
@pytest.mark.parametrize("stored, again, shown", [
    (0.5, 0.25, "value: stored 0.5 vs re-run 0.25"),
    ("a", "b", "value: stored 'a' vs re-run 'b'"),
    ([1.0], [1.0, 2.0], "value: 1 entries stored vs 2 re-run"),
])
def test_a_difference_at_the_top_level_is_placed_at_value(stored, again, shown):
    """``compare``: a difference's place is its path (``loss[0]``, ``updates.loss``); the top level itself, whose
    path is empty, is called ``value``."""
    agreement = compare(stored, again, rtol=0.0, atol=0.0)
    assert (agreement.first_difference, agreement.first_apart) == (shown, shown)


# -- compare: a container on one side only is a differing value ------------------------------------------------------
@pytest.mark.parametrize("stored, again", [
    (0.5, {"x": 0.5}),  # a number stored, a dict re-run
    ({"x": 0.5}, 0.5),
    (0.5, [0.5]),  # a number stored, a list re-run
    ([0.5], 0.5),
])
def test_a_dict_or_list_on_one_side_only_is_one_differing_value(stored, again):
    """``compare`` walks into dicts when both sides are dicts and into lists when both are lists; where only one
    side is, the two are one leaf each, compared as values: they differ (and are apart)."""
    agreement = compare({"loss": stored}, {"loss": again})
    shown = f"loss: stored {stored!r} vs re-run {again!r}"
    assert (agreement.identical, agreement.close, agreement.compared) == (False, False, 1)
    assert (agreement.first_difference, agreement.first_apart) == (shown, shown)


@pytest.mark.parametrize("stored, again, shown", [
    ({"a": 1.0}, {"a": 1.0, "b": 2.0}, "b: absent from the stored values"),
    ({"a": 1.0, "b": 2.0}, {"a": 1.0}, "b: absent from the re-run values"),
])
def test_a_key_on_one_side_only_is_absent_from_the_other(stored, again, shown):
    """``compare``: a key present on one side only is a difference (and apart), named as absent from the side that
    lacks it; the keys both have are still compared (one here)."""
    agreement = compare(stored, again)
    assert (agreement.identical, agreement.close, agreement.compared) == (False, False, 1)
    assert (agreement.first_difference, agreement.first_apart) == (shown, shown)


# -- divergence_onset: a column's scale is its largest finite stored magnitude --------------------------------------
@pytest.mark.parametrize("first_stored, first_again", [
    (math.inf, math.inf),  # an infinite stored value does not make the scale infinite
    (-math.inf, -math.inf),
    (None, math.nan),  # nor does JSON's null for a non-finite one (and it is no number to take a size of)
])
def test_a_columns_scale_is_its_largest_finite_stored_magnitude(first_stored, first_again):
    """``divergence_onset`` judges a column's difference within ``atol + rtol * scale + rtol * |stored|``, where
    ``scale`` is the column's largest *finite* stored magnitude: non-finite values (and the None standing for one)
    are left out. Here the scale is 4.0, so with ``rtol=0.25, atol=0`` row 2 (0.5 vs 2.5, off by 2.0) is beyond
    ``0.25 * 4 + 0.25 * 0.5 = 1.125``: a difference larger than rounding (an infinite scale would accept any)."""
    stored = {"updates": {"env_step": [0, 10, 20], "loss": [first_stored, 4.0, 0.5]}}
    again = {"updates": {"env_step": [0, 10, 20], "loss": [first_again, 4.0, 2.5]}}
    onset = divergence_onset(stored, again, rtol=0.25, atol=0.0)
    assert (onset.table, onset.row, onset.env_step, onset.rounding) == ("updates", 2, 20.0, False)
    assert onset.detail == "0 of 1 differing columns within tolerance; loss: stored 0.5 vs re-run 2.5"


# -- divergence_onset: None stored stands for a non-finite value only ------------------------------------------------
@pytest.mark.parametrize("stored, again, shown", [
    (None, math.nan, None),  # JSON's null for a NaN: no difference
    (None, -math.inf, None),
    (None, None, None),  # equal values, whatever they are
    (None, 1.0, "loss: stored None vs re-run 1.0"),  # null does not stand for a finite number
    (1.0, math.nan, "loss: stored 1.0 vs re-run nan"),  # a number stored, NaN re-run: they differ
    (1.0, math.inf, "loss: stored 1.0 vs re-run inf"),
])
def test_a_stored_none_is_skipped_only_against_a_non_finite_number(stored, again, shown):
    """``divergence_onset``: a stored ``None`` against a re-run NaN or +-inf is not a difference (JSON stores a
    non-finite float as null); anything else differing is, and by more than rounding here: a stored None against a
    finite number, or a stored number against a re-run NaN or inf."""
    onset = divergence_onset({"updates": {"env_step": [5], "loss": [stored]}},
                             {"updates": {"env_step": [5], "loss": [again]}})
    if shown is None:
        assert onset is None
        return
    assert (onset.table, onset.row, onset.env_step, onset.rounding) == ("updates", 0, 5.0, False)
    assert onset.detail == f"0 of 1 differing columns within tolerance; {shown}"
