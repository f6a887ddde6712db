"""The rl package's agreement levels and LeanAdam's flat buffer, pinned at every edge of their ordering comparisons
(issue 45, item 5).

A mechanical sweep flipped every ordering comparison of the package at its boundary (``<`` <-> ``<=``, ``>`` <->
``>=``); in ``rl/agreement.py`` and ``rl/algorithms/optim.py`` the flips below survived the unit tests, or no unit
test ran the line. Each test states what the comparison means (is a value exactly at the threshold accepted or
refused, counted or not?) and checks it at the edge, one below and one above; every expected value is worked out by
hand, with tolerances and values that are exact in binary floating point (0.25, 0.5, 2.0, ...).

One flip is not tested, since no input can tell it apart: ``divergence_onset``'s ``near > 0`` (as ``near >= 0``):
at ``near == 0`` the second clause reads ``0 >= len(differing)``, false for the non-empty list it is computed for.
"""
from __future__ import annotations

import math

import pytest
import torch

from pgcourse.rl.agreement import compare, divergence_onset, spread_check
from pgcourse.rl.algorithms.optim import FLAT_ALIGN, FLAT_MAX, flat_members


# -- compare: within tolerance means |again - stored| <= atol + rtol * |stored| --------------------------------------
@pytest.mark.parametrize("stored, again, rtol, atol, close", [
    (1.0, 1.25, 0.0, 0.5, True),  # 0.25 below the bound 0.5
    (1.0, 1.5, 0.0, 0.5, True),  # exactly at the bound: close
    (1.0, 1.75, 0.0, 0.5, False),  # 0.25 beyond it
    (1.0, 0.5, 0.0, 0.5, True),  # at the bound on the other side
    (2.0, 2.5, 0.25, 0.0, True),  # the relative part alone: 0.25 * |2| = 0.5, exactly at it
    (2.0, 2.75, 0.25, 0.0, False),
    (-2.0, -1.5, 0.125, 0.25, True),  # both parts: 0.25 + 0.125 * |-2| = 0.5, exactly at it
    (-2.0, -1.25, 0.125, 0.25, False),
])
def test_a_number_is_within_tolerance_up_to_and_including_the_bound(stored, again, rtol, atol, close):
    """``compare``: a differing number is close when ``|again - stored| <= atol + rtol * |stored|``; a difference
    exactly equal to the bound is within tolerance ("within tolerance"), one beyond it is "apart"."""
    agreement = compare({"loss": [stored]}, {"loss": [again]}, rtol=rtol, atol=atol)
    assert not agreement.identical
    assert agreement.close is close
    assert agreement.level == ("within tolerance" if close else "apart")
    assert agreement.first_apart == (None if close else f"loss[0]: stored {stored!r} vs re-run {again!r}")


@pytest.mark.parametrize("rtol, atol, accepted", [
    (0.0, 1e-8, True),  # a zero relative tolerance is a tolerance (the absolute one alone)
    (1e-4, 0.0, True),  # a zero absolute tolerance too
    (0.0, 0.0, True),  # both zero: close means equal
    (-1e-300, 0.0, False),
    (0.0, -1e-300, False),
    (math.nan, 0.0, False),
])
def test_tolerances_are_accepted_from_zero_on(rtol, atol, accepted):
    """``compare`` refuses a negative (or NaN) ``rtol`` or ``atol``; zero is allowed for each."""
    if not accepted:
        with pytest.raises(ValueError, match="rtol and atol must be >= 0"):
            compare(1.0, 1.0, rtol=rtol, atol=atol)
        return
    agreement = compare([1.0, 2.0], [1.0, 2.0], rtol=rtol, atol=atol)
    assert agreement.identical and agreement.close and (agreement.rtol, agreement.atol) == (rtol, atol)


def test_with_both_tolerances_zero_close_means_equal():
    """At ``rtol = atol = 0`` the bound is 0: a difference of 0 is close (``0 <= 0``), any other is apart."""
    assert compare(0.0, -0.0, rtol=0.0, atol=0.0).identical  # -0.0 == 0.0
    assert not compare(1.0, 1.0 + 2**-52, rtol=0.0, atol=0.0).close


# -- spread_check: inside means low <= value <= high, both ends included --------------------------------------------
@pytest.mark.parametrize("value, inside", [
    (math.nextafter(-2.0, -math.inf), False),  # just below low
    (-2.0, True),  # exactly low
    (math.nextafter(-2.0, math.inf), True),
    (math.nextafter(3.0, -math.inf), True),
    (3.0, True),  # exactly high
    (math.nextafter(3.0, math.inf), False),  # just above high
])
def test_the_spread_holds_both_of_its_ends(value, inside):
    """``SpreadCheck.inside``: ``low <= value <= high``. Stored [0, 1] with ``min_width=0``: width 1, so the range
    is [0 - 2, 1 + 2] = [-2, 3], and a re-run exactly at either end is inside."""
    check = spread_check(value, [0.0, 1.0], min_width=0.0)
    assert (check.low, check.high, check.smallest, check.largest, check.seeds) == (-2.0, 3.0, 0.0, 1.0, 2)
    assert check.inside is inside
    assert str(check).split(" [")[0].endswith("inside" if inside else "OUTSIDE")


# -- divergence_onset: a row past a column's end is "(absent)" ----------------------------------------------------
def _updates(steps, losses):
    return {"updates": {"env_step": list(steps), "loss": list(losses)}}


@pytest.mark.parametrize("stored, again, row, shown", [
    # the re-run's loss column ends one row early: row 1 == its length, so its value there is "(absent)"
    (_updates([5, 25], [0.5, 0.4]), _updates([5, 25], [0.5]), 1, "loss: stored 0.4 vs re-run '(absent)'"),
    # the stored one does
    (_updates([5, 25], [0.5]), _updates([5, 25], [0.5, 0.4]), 1, "loss: stored '(absent)' vs re-run 0.4"),
    # a column absent altogether: row 0 == its length 0
    ({"updates": {"env_step": [5, 25]}}, _updates([5, 25], [0.5, 0.4]), 0, "loss: stored '(absent)' vs re-run 0.5"),
    ({"updates": {"env_step": [5, 25], "loss": [0.5, 0.4]}}, {"updates": {"env_step": [5, 25]}}, 0,
     "loss: stored 0.5 vs re-run '(absent)'"),
])
def test_a_row_at_or_past_a_columns_length_is_absent_there(stored, again, row, shown):
    """``divergence_onset`` reads a column's value at ``row`` only for ``row < len(column)``; at ``row ==
    len(column)`` (and beyond) the value is ``"(absent)"``, which differs from any number by more than rounding.
    Rows before the short column's end are compared as usual (row 0 is equal in the first two cases)."""
    onset = divergence_onset(stored, again)
    assert (onset.table, onset.row, onset.env_step, onset.rounding) == ("updates", row, [5.0, 25.0][row], False)
    assert onset.detail == f"0 of 1 differing columns within tolerance; {shown}"


# -- divergence_onset: rounding when at least half of the differing columns (and at least one) are within tolerance --
@pytest.mark.parametrize("near, far, rounding", [
    (0, 1, False),
    (1, 0, True),
    (1, 2, False),  # fewer than half
    (1, 1, True),  # exactly half: rounding
    (2, 2, True),
    (2, 3, False),
    (2, 1, True),  # more than half
])
def test_a_row_parted_by_rounding_has_at_least_half_its_differing_columns_within_tolerance(near, far, rounding):
    """``Onset.rounding``: ``near >= 1`` and ``near >= far`` among the first differing row's columns, where
    ``near`` columns differ within the tolerance and ``far`` beyond it. With ``rtol=0, atol=0.5`` a column off by
    0.25 is near and one off by 10 is far; the step column is equal on both sides."""
    names = [f"c{i}" for i in range(near + far)]
    stored = {"updates": {"env_step": [7], **{name: [1.0] for name in names}}}
    again = {"updates": {"env_step": [7], **{name: [1.25 if i < near else 11.0] for i, name in enumerate(names)}}}
    onset = divergence_onset(stored, again, rtol=0.0, atol=0.5)
    assert (onset.table, onset.row, onset.env_step) == ("updates", 0, 7.0)
    assert onset.rounding is rounding
    first = "c0: stored 1.0 vs re-run 1.25" if far == 0 else f"c{near}: stored 1.0 vs re-run 11.0"
    assert onset.detail == f"{near} of {near + far} differing columns within tolerance; {first}"


# -- LeanAdam's flat buffer: at least two members, at most FLAT_MAX elements --------------------------------------
def _sizes(members):
    return [p.numel() for p in members]


def test_the_flat_buffer_limits_are_the_documented_ones():
    assert (FLAT_ALIGN, FLAT_MAX) == (64, 32_768) and FLAT_MAX % FLAT_ALIGN == 0


@pytest.mark.parametrize("sizes, members", [
    ([FLAT_MAX - 128, 64], [FLAT_MAX - 128, 64]),  # 64 below the limit
    ([FLAT_MAX - 64, 64], [FLAT_MAX - 64, 64]),  # exactly FLAT_MAX elements: shared
    ([FLAT_MAX - 64, 65], []),  # one element over it (64 + a tail of 65: 65 % 64 != 0): none
    ([FLAT_MAX, 64], []),  # 64 over it
    ([FLAT_MAX - 3, 3], []),  # neither aligned: only the last tail goes in, and one member is not a buffer
    ([64, FLAT_MAX - 64 - 5, 5], [64, 5]),  # the unaligned middle one is left out (one tail only, the last)
    ([FLAT_MAX - 64 - 5, 64, 5], [64, 5]),
], ids=["below", "exactly FLAT_MAX", "one over", "64 over", "one tail", "middle tail", "first tail"])
def test_parameters_share_the_flat_buffer_up_to_and_including_flat_max_elements(sizes, members):
    """``flat_members``: the aligned parameters, then the last unaligned one, share the buffer when their sizes
    sum to at most ``FLAT_MAX`` (exactly ``FLAT_MAX`` is allowed: torch does not split it between threads)."""
    params = [torch.zeros(n) for n in sizes]
    assert _sizes(flat_members(params)) == members


@pytest.mark.parametrize("sizes, members", [
    ([], []),
    ([64], []),  # one member: no buffer
    ([3], []),
    ([64, 64], [64, 64]),  # exactly two: a buffer
    ([128, 3], [128, 3]),  # an aligned one and the tail
    ([5, 3], []),  # two tails, only the last goes in: one member
    ([64, 128, 7], [64, 128, 7]),  # three
], ids=["none", "one aligned", "one tail", "exactly two", "aligned and tail", "two tails", "three"])
def test_parameters_share_the_flat_buffer_from_two_members_on(sizes, members):
    """``flat_members``: a buffer needs at least two members (one parameter alone gains nothing from it)."""
    params = [torch.zeros(n) for n in sizes]
    assert _sizes(flat_members(params)) == members


def test_lean_adam_keeps_two_members_moments_in_one_flat_buffer():
    """Through ``LeanAdam``: with exactly two members, each parameter's moments are views of one shared buffer."""
    from pgcourse.rl.algorithms.optim import LeanAdam
    a, b = torch.nn.Parameter(torch.ones(64)), torch.nn.Parameter(torch.ones(64))
    optimiser = LeanAdam([a, b], lr=0.1)
    (a.sum() + 2 * b.sum()).backward()
    optimiser.step()
    members, exp_avg, _ = optimiser._flat[0]
    assert members == [a, b] and exp_avg.numel() == 128
    assert optimiser.state[b]["exp_avg"].data_ptr() == exp_avg.data_ptr() + 64 * exp_avg.element_size()
    # Adam's first step moves every weight by lr against its gradient's sign: m/sqrt(v) is 1 after bias correction
    assert torch.allclose(a.detach(), torch.full((64,), 0.9)) and torch.allclose(b.detach(), torch.full((64,), 0.9))


@pytest.mark.parametrize("total_steps, refused", [(999, True), (1000, True), (1001, False)])
def test_a_run_resumes_only_with_a_budget_beyond_the_steps_it_has_trained(total_steps, refused):
    """``api._resumed_config``: a run that has trained 1,000 env steps resumes only with ``total_steps`` above 1,000;
    a budget equal to the steps trained is spent (refused with the steps and the budget named), one step more is
    accepted."""
    from types import SimpleNamespace

    from pgcourse.rl import api
    from pgcourse.rl.config import ConfigError, make_config
    previous = SimpleNamespace(config=make_config("ppo", "CartPole-v1", "discrete", seed=0, total_steps=1000,
                                                  progress=False))
    if refused:
        with pytest.raises(ConfigError, match=f"already trained 1,000 of its total_steps={total_steps:,}"):
            api._resumed_config(previous, {"env_step": 1000}, "cpu", {"total_steps": total_steps})
    else:
        assert api._resumed_config(previous, {"env_step": 1000}, "cpu", {"total_steps": total_steps}).total_steps == 1001
