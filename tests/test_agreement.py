"""pgcourse.agreement: how a re-run agrees with a stored run, at the three levels a learner's machine allows."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pgcourse.rl.agreement import compare, divergence_onset, spread_check
from pgcourse.course.sweeps.driver import UNJUDGED, compare_rerun


def test_identical_values_agree_bit_for_bit_including_nan_and_tensors():
    stored = {"loss": [0.5, float("nan")], "steps": [1, 2], "name": "ppo"}
    again = {"loss": torch.tensor([0.5, float("nan")], dtype=torch.float64), "steps": np.array([1, 2]), "name": "ppo"}
    agreement = compare(stored, again)
    assert agreement.identical and agreement.close and agreement.level == "bit for bit" and agreement.compared == 5
    assert str(agreement) == "bit for bit on this machine: True (5 values)"


def test_a_last_bit_difference_is_within_tolerance_and_named():
    agreement = compare({"loss": [0.5, 0.25]}, {"loss": [0.5, 0.25 * (1 + 1e-7)]})
    assert not agreement.identical and agreement.close and agreement.level == "within tolerance"
    assert agreement.first_difference.startswith("loss[1]: stored 0.25 vs re-run 0.250000")
    assert "bit for bit on this machine: False" in str(agreement) and "within rtol 0.0001: True" in str(agreement)


@pytest.mark.parametrize("again, where", [
    ({"loss": [0.5, 0.3]}, "loss[1]: stored 0.25 vs re-run 0.3"),
    ({"loss": [0.5]}, "loss: 2 entries stored vs 1 re-run"),
    ({"loss": [0.5, float("nan")]}, "loss[1]: stored 0.25 vs re-run nan"),
    ({"loss": [0.5, 0.25], "extra": 1}, "extra: absent from the stored values"),
])
def test_a_real_difference_is_apart_and_says_where(again, where):
    agreement = compare({"loss": [0.5, 0.25]}, again)
    assert not agreement.close and agreement.level == "apart" and agreement.first_apart == where
    assert f"first apart {where}" in str(agreement)


def test_json_null_stands_for_a_non_finite_float():
    assert compare({"kl": [None]}, {"kl": [float("inf")]}).identical


def test_bad_tolerances_are_refused():
    with pytest.raises(ValueError, match="rtol and atol must be >= 0"):
        compare(1.0, 1.0, rtol=-1)


def test_the_spread_is_the_stored_range_widened_by_its_width():
    check = spread_check(60.0, [100.0, 120.0, 110.0])
    assert (check.low, check.high, check.seeds) == (60.0, 160.0, 3) and check.inside
    assert not spread_check(59.9, [100.0, 120.0, 110.0]).inside
    assert "OUTSIDE [60, 160]" in str(spread_check(59.9, [100.0, 120.0, 110.0]))
    # ten runs that all scored 500: 5% of 500 either side, not 500 exactly
    assert spread_check(476.0, [500.0] * 10).inside and not spread_check(474.0, [500.0] * 10).inside
    assert not spread_check(float("nan"), [1.0, 2.0]).inside
    with pytest.raises(ValueError, match="at least 2 stored finite values"):
        spread_check(1.0, [1.0, float("nan")])


def test_a_correct_rerun_lands_inside_the_spread_almost_always():
    """The coverage the module docstring promises: ten (nine) normal seeds, one more draw from the same law,
    misses about 5e-5 (1.4e-4) of the time; widened by one range only it would miss 0.2%."""
    rng = np.random.default_rng(0)
    for seeds, most in ((10, 1.5e-4), (9, 3e-4)):
        trials = 40_000
        misses = sum(not spread_check(rng.normal(), rng.normal(size=seeds), min_width=0).inside for _ in range(trials))
        assert misses / trials < most, (seeds, misses)


def _history(returns, losses, steps=None):
    steps = steps or [10 * (i + 1) for i in range(len(returns))]
    return {"episodes": {"env_step": steps, "return": list(returns)},
            "updates": {"env_step": [5 + 20 * i for i in range(len(losses))], "loss": list(losses)},
            "evals": {"env_step": [], "mean": []}, "status": "finished", "solved_at": None}


def test_the_onset_is_the_earliest_row_in_env_steps_and_knows_rounding_from_an_edit():
    stored = _history([10, 12, 15, 20], [0.5, 0.4])
    parted = _history([10, 13, 14, 22], [0.5 * (1 + 1e-9), 0.41])  # update 0 (step 5) rounds, then episodes part
    onset = divergence_onset(stored, parted)
    assert (onset.table, onset.row, onset.env_step, onset.rounding) == ("updates", 0, 5.0, True)
    edited = _history([10, 99, 15, 20], [0.5, 0.4])
    onset = divergence_onset(stored, edited)
    assert (onset.table, onset.row, onset.rounding) == ("episodes", 1, False) and "return: stored 12 vs re-run 99" in str(onset)
    assert divergence_onset(stored, _history([10, 12, 15, 20], [0.5, 0.4])) is None


def test_compare_rerun_levels():
    stored = _history([10, 12, 15, 20], [0.5, 0.4])
    others = [_history([11, 12, 14, 19], [0.5, 0.4]), _history([9, 13, 16, 21], [0.5, 0.4])]
    assert compare_rerun(stored, stored, others) == ("bit for bit", "")
    level, detail = compare_rerun(stored, _history([10, 13, 14, 22], [0.5 * (1 + 1e-9), 0.41]), others)
    assert level == "inside the spread" and "a rounding difference" in detail and "inside" in detail
    level, detail = compare_rerun(stored, _history([10, 13, 14, 22], [0.5 * (1 + 1e-9), 0.41]), others, exact=True)
    assert level is None and "exact was asked for" in detail
    level, detail = compare_rerun(stored, _history([10, 200, 300, 400], [0.5 * (1 + 1e-9), 0.41]), others)
    assert level is None and "OUTSIDE" in detail  # parted by rounding, but learned something else
    # parted over rounding with no spread to compare: neither agreement nor a difference (a single-seed arm on
    # another CPU); CI failed on this verdict when it called such a trial DIFFERENT
    level, detail = compare_rerun(stored, _history([10, 13, 14, 22], [0.5 * (1 + 1e-9), 0.41]), others[:1])
    assert level == UNJUDGED and "fewer than 2 other seeds" in detail
    level, detail = compare_rerun(stored, _history([10, 99, 15, 20], [0.5, 0.4]), others[:1])
    assert level is None and "larger than rounding" in detail  # an edit is still caught without a spread
    level, detail = compare_rerun(stored, _history([10, 99, 15, 20], [0.5, 0.4]), others)
    assert level is None and "larger than rounding" in detail
    crashed = dict(_history([10, 13, 14, 22], [0.5 * (1 + 1e-9), 0.41]), status="diverged")
    assert compare_rerun(stored, crashed, others)[0] is None


def test_a_row_of_rounding_differences_may_hold_a_column_of_pure_cancellation_noise():
    """TRPO's first update re-run with ATEN_CPU_CAPABILITY=default (figures/07_trpo_vs_ppo, CartPole seed 9):
    eight columns agree to ~1e-7, while the surrogate at the old policy (a mean of centred advantages, pure
    rounding noise) and the conjugate-gradient residual (at the solver's tolerance) differ wholly."""
    stored = {"updates": {"env_step": [1962], "policy_loss": [-3.402507786631759e-08], "advantage_std": [5.476780414581299],
                          "value_loss": [45.42939808368683], "update_kl": [0.008828172460198402],
                          "cg_residual": [8.7594923780774e-06]}}
    again = {"updates": {"env_step": [1962], "policy_loss": [1.2346242783678463e-07], "advantage_std": [5.476780891418457],
                         "value_loss": [45.429401707649234], "update_kl": [0.00882817804813385],
                         "cg_residual": [8.841302186396043e-06]}}
    onset = divergence_onset(stored, again)
    assert onset.rounding and "3 of 5 differing columns within tolerance" in str(onset)
    edited = {"updates": {**stored["updates"], "advantage_std": [6.0], "value_loss": [50.0], "update_kl": [0.02]}}
    assert not divergence_onset(stored, edited).rounding


def test_a_stored_rounded_history_shows_a_drift_with_one_column_still_within_rounding():
    """Lesson 08's learned-reward row (seed 3) re-run on an AMX Xeon: the history is stored to five digits, so the
    drift first shows at update 5, with one column within tolerance and the entropy beyond it (0.23725 vs 0.23709).
    Half within is a rounding onset; an edited number alone in an otherwise identical row is not."""
    stored = {"history": {"update": [0, 1, 2, 3, 4, 5], "reward": [0.1, 0.2, 0.3, 0.35, 0.4, 0.45],
                          "entropy": [0.3, 0.29, 0.27, 0.26, 0.25, 0.23725]}}
    again = {"history": {"update": [0, 1, 2, 3, 4, 5], "reward": [0.1, 0.2, 0.3, 0.35, 0.4, 0.45000002],
                         "entropy": [0.3, 0.29, 0.27, 0.26, 0.25, 0.23709]}}
    onset = divergence_onset(stored, again, tables=("history",), step_column="update", atol=1e-5)
    assert onset.row == 5 and onset.rounding and "1 of 2 differing columns within tolerance" in str(onset)
    edited = {"history": {**stored["history"], "entropy": [0.3, 0.29, 0.27, 0.26, 0.25, 0.3]}}
    assert not divergence_onset(stored, edited, tables=("history",), step_column="update", atol=1e-5).rounding
