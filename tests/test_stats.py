"""pgcourse.stats: aggregate metrics, stratified-bootstrap intervals, thresholds, curves; and their plots."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import scipy.stats  # noqa: E402

from pgcourse.course.views import plotting  # noqa: E402
from pgcourse.course import stats  # noqa: E402
from pgcourse.course.stats import Band, Estimate  # noqa: E402


# ------------------------------------------------------------------------------ point metrics by hand
def test_iqm_of_one_to_eight_is_the_mean_of_three_to_six():
    assert stats.iqm(np.arange(1, 9)) == pytest.approx(4.5)
    assert stats.iqm(np.arange(1, 9).reshape(4, 2)) == pytest.approx(4.5)  # pooled over runs x tasks


def test_iqm_weighs_the_quartile_boundaries_fractionally():
    # 6 scores: middle half is rank mass [1.5, 4.5] -> 2 and 16 count half, 4 and 8 fully: (1 + 4 + 8 + 8) / 3
    assert stats.iqm([1, 2, 4, 8, 16, 32]) == pytest.approx(7.0)
    assert scipy.stats.trim_mean([1, 2, 4, 8, 16, 32], 0.25) == pytest.approx(7.5)  # trims only 1 per side
    # 5 scores: [1.25, 3.75] -> weights 0, .75, 1, .75, 0 (the outlier is ignored)
    assert stats.iqm([1, 2, 3, 4, 1000]) == pytest.approx((0.75 * 2 + 3 + 0.75 * 4) / 2.5)
    assert stats.iqm([7.0]) == 7.0 and stats.iqm([1, 3]) == pytest.approx(2.0)
    for n in range(1, 12):
        weights = stats.iqm_weights(n)
        assert weights.sum() == pytest.approx(1.0) and np.allclose(weights, weights[::-1])


def test_iqm_equals_trim_mean_when_four_divides_the_count():
    scores = np.random.default_rng(0).normal(size=(6, 2))  # 12 scores
    assert stats.iqm(scores) == pytest.approx(scipy.stats.trim_mean(scores, 0.25, axis=None))


def test_mean_median_and_optimality_gap_by_hand():
    scores = np.array([[100.0, 300.0], [200.0, 250.0], [0.0, 500.0]])  # [runs=3, tasks=2]
    assert stats.mean(scores) == pytest.approx(225.0)
    assert stats.median(scores) == pytest.approx(225.0)  # pooled: 0 100 200 | 250 300 500
    assert stats.median([3, 1, 2]) == 2.0
    # threshold 250: shortfalls 150, 0, 50, 0, 250, 0
    assert stats.optimality_gap(scores, 250) == pytest.approx(450 / 6)
    assert stats.optimality_gap([300, 400], 250) == 0.0


def test_normalized_maps_low_to_zero_and_high_to_one_per_task():
    scores = np.array([[10.0, -100.0], [20.0, 0.0]])
    assert np.allclose(stats.normalized(scores, low=[10, -100], high=[20, 100]), [[0, 0], [1, 0.5]])


def test_estimate_prints_point_and_interval():
    assert str(Estimate(412.34, 398.12, 425.0, 0.95)) == "412.3 [398.1, 425.0]"
    assert str(Estimate(0.853, 0.7, 1.0, 0.95)) == "0.853 [0.7, 1.0]"
    assert str(Estimate(15000.0, 12000.0, math.inf, 0.95)) == "15000 [12000, inf]"


# ---------------------------------------------------------------------- probability of improvement
def test_probability_of_improvement_counts_ties_as_half():
    # 1 beats 0; 2 ties 2 twice and beats 0; 3 beats all: (1 + 2 + 3) / 9
    estimate = stats.probability_of_improvement([1, 2, 3], [2, 2, 0], reps=500)
    assert estimate.point == pytest.approx(6 / 9)
    assert estimate.low <= estimate.point <= estimate.high


def test_probability_of_improvement_averages_over_tasks():
    x = np.array([[10.0, 0.0], [11.0, 1.0]])  # wins task 0, loses task 1
    y = np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])  # three runs: the arms may differ in runs
    assert stats.probability_of_improvement(x, y, reps=200).point == pytest.approx(0.5)
    same = stats.probability_of_improvement([1, 2, 3, 4], [1, 2, 3, 4], reps=500)
    assert same.point == 0.5 and same.low < 0.5 < same.high


# ------------------------------------------------------------------------------- performance profile
def test_performance_profile_fractions_by_hand():
    scores = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    taus = [0.0, 1.5, 3.0, 25.0, 40.0]
    profile = stats.performance_profile(scores, taus, reps=300)
    assert np.allclose(profile.point, [6 / 6, 5 / 6, 3 / 6, 1 / 6, 0.0])  # strictly above tau
    assert np.all(profile.low <= profile.point + 1e-12) and np.all(profile.point <= profile.high + 1e-12)
    assert profile.x.tolist() == taus and profile.runs == 3


# ---------------------------------------------------------------------------------- time to threshold
def test_steps_to_threshold_is_the_first_recorded_step_at_or_above():
    steps, values = [0, 10, 20, 30], [1.0, 5.0, 3.0, 9.0]
    assert stats.steps_to_threshold(steps, values, 5.0) == 10.0
    assert stats.steps_to_threshold(steps, values, 6.0) == 30.0
    assert stats.steps_to_threshold(steps, values, 10.0) == math.inf
    assert stats.steps_to_threshold([], [], 1.0) == math.inf


def test_threshold_estimate_counts_runs_that_never_reach_it():
    result = stats.threshold_estimate([100, 200, math.inf, None, 150], reps=1000)
    assert (result.reached, result.runs) == (3, 5)
    assert result.median.point == 200.0  # of 100 150 200 inf inf, not of the three that made it
    assert result.median.high == math.inf and math.isfinite(result.median.low)
    wilson = scipy.stats.binomtest(3, 5).proportion_ci(0.95, method="wilson")
    assert result.fraction_reached.point == 0.6
    assert result.fraction_reached.low == pytest.approx(wilson.low)
    assert result.fraction_reached.high == pytest.approx(wilson.high)
    assert "3/5" in str(result) and "inf" in str(result)


def test_threshold_estimate_when_none_or_all_reach_it():
    never = stats.threshold_estimate([None, math.inf, math.inf], reps=200)
    assert never.median.point == never.median.low == never.median.high == math.inf
    assert never.fraction_reached.point == 0.0 and never.fraction_reached.low == 0.0
    always = stats.threshold_estimate([100, 110, 120, 130], reps=200)
    assert always.median.point == 115.0 and always.median.high <= 130
    assert always.fraction_reached.high == 1.0


# ------------------------------------------------------------------------- bootstrap vs scipy, seeds
@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_single_task_mean_interval_agrees_with_scipy(method):
    scores = np.random.default_rng(1).exponential(size=30)
    ours = stats.stratified_bootstrap(scores, "mean", reps=40000, seed=3, method=method)
    theirs = scipy.stats.bootstrap((scores,), np.mean, n_resamples=40000, rng=5,
                                   method="BCa" if method == "bca" else "percentile").confidence_interval
    assert ours.point == pytest.approx(scores.mean())
    width = theirs.high - theirs.low  # two independent bootstraps: they differ by Monte-Carlo noise only
    assert abs(ours.low - theirs.low) < 0.03 * width and abs(ours.high - theirs.high) < 0.03 * width


def test_single_task_median_interval_agrees_with_scipy():
    scores = np.random.default_rng(1).exponential(size=501)
    ours = stats.stratified_bootstrap(scores, "median", reps=10000, seed=3)
    theirs = scipy.stats.bootstrap((scores,), np.median, n_resamples=10000, rng=5,
                                   method="percentile").confidence_interval
    assert ours.point == np.median(scores)
    # a bootstrapped median of 501 scores is always one of the scores: the ends agree to a neighbour
    ordered = np.sort(scores)
    for a, b in ((ours.low, theirs.low), (ours.high, theirs.high)):
        assert abs(np.searchsorted(ordered, a) - np.searchsorted(ordered, b)) <= 1


def test_a_callable_statistic_matches_the_named_one():
    scores = np.random.default_rng(2).normal(size=(8, 3))
    named = stats.stratified_bootstrap(scores, "mean", reps=400, seed=1)
    assert stats.stratified_bootstrap(scores, np.mean, reps=400, seed=1) == named
    assert stats.stratified_bootstrap(scores, lambda x: x.mean(axis=(-2, -1)), reps=400, seed=1,
                                      vectorized=True) == named
    gap = stats.stratified_bootstrap(scores, "optimality_gap", reps=400, seed=1, threshold=0.5)
    assert gap.point == pytest.approx(stats.optimality_gap(scores, 0.5))


def test_same_seed_same_interval_other_seed_other_interval():
    scores = np.random.default_rng(4).normal(size=(10, 3))
    first = stats.stratified_bootstrap(scores, "iqm", reps=500, seed=7)
    assert stats.stratified_bootstrap(scores, "iqm", reps=500, seed=7) == first
    assert stats.stratified_bootstrap(scores, "iqm", reps=500, seed=8) != first
    a, b = (stats.interval_estimates({"x": scores}, reps=300, seed=s) for s in (0, 0))
    assert a == b
    assert stats.probability_of_improvement(scores, scores + 0.1, reps=300, seed=1) == \
        stats.probability_of_improvement(scores, scores + 0.1, reps=300, seed=1)


def test_interval_estimates_covers_every_arm_and_metric():
    rng = np.random.default_rng(5)
    arms = {"ppo": rng.normal(400, 50, size=(10, 2)), "a2c": rng.normal(300, 50, size=(10, 2))}
    result = stats.interval_estimates(arms, threshold=450.0, reps=500)
    assert set(result) == {"ppo", "a2c"} and set(result["ppo"]) == set(stats.METRICS)
    for arm, scores in arms.items():
        assert result[arm]["iqm"].point == pytest.approx(stats.iqm(scores))
        for e in result[arm].values():
            assert e.low <= e.point <= e.high and e.confidence == 0.95
    assert set(stats.interval_estimates(arms, reps=100)["ppo"]) == {"mean", "median", "iqm"}  # no threshold
    # an arm's intervals depend only on its own scores
    alone = stats.interval_estimates({"a2c": arms["a2c"]}, threshold=450.0, reps=500)
    assert alone["a2c"] == result["a2c"]
    assert result["ppo"]["mean"] == stats.stratified_bootstrap(arms["ppo"], "mean", reps=500)


# -------------------------------------------------------------------------------------- stratification
def test_each_bootstrap_sample_redraws_runs_within_each_task():
    rng = np.random.default_rng(6)
    scores = np.stack([rng.uniform(0, 1, 7), rng.uniform(1000, 1001, 7)], axis=1)  # [7 runs, 2 tasks]
    total = 0
    for chunk in stats.stratified_resamples(scores, reps=300, seed=0):
        assert chunk.shape[1:] == (7, 2)  # every sample keeps 7 runs of every task
        for task in range(2):
            assert np.isin(chunk[:, :, task], scores[:, task]).all()  # and only that task's runs
        total += len(chunk)
    assert total == 300


def test_a_task_on_another_scale_does_not_widen_the_interval():
    rng = np.random.default_rng(7)
    small = rng.normal(0, 1, size=20)
    scores = np.stack([small, np.full(20, 1000.0)], axis=1)  # task 1: large but constant
    pooled = stats.stratified_bootstrap(scores, "mean", reps=4000)
    alone = stats.stratified_bootstrap(small, "mean", reps=4000)
    # mean = (task-0 mean + 1000) / 2, so the interval is half as wide; mixing the tasks' runs would
    # make it hundreds wide
    assert (pooled.high - pooled.low) == pytest.approx((alone.high - alone.low) / 2, rel=0.1)


# ------------------------------------------------------------------------------------------- curves
def test_aggregate_curves_interpolates_within_each_run_only():
    xs = [np.array([0.0, 10.0]), np.array([0.0, 5.0])]
    ys = [np.array([0.0, 10.0]), np.array([0.0, 10.0])]  # y = x and y = 2x
    band = stats.aggregate_curves(xs, ys, num_points=6, statistic="mean", reps=200)
    grid, point, low, high = band
    assert np.allclose(grid, np.linspace(0, 5, 6))  # default grid ends where the shortest run ends
    assert np.allclose(point, 1.5 * grid) and band.runs_at.tolist() == [2] * 6
    assert np.all(low <= point + 1e-12) and np.all(point <= high + 1e-12)
    wide = stats.aggregate_curves(xs, ys, grid=[0.0, 5.0, 8.0, 12.0], statistic="mean", reps=200)
    assert wide.runs_at.tolist() == [2, 2, 1, 0]
    assert wide.point[2] == 8.0 and np.isnan(wide.low[2]) and np.isnan(wide.high[2])  # one run: no band
    assert np.isnan(wide.point[3])  # no run reaches x = 12: nothing is extrapolated


def test_aggregate_curves_smooths_each_run_before_interpolating():
    xs, ys = [np.arange(4.0)] * 3, [np.array([0.0, 0.0, 3.0, 3.0])] * 3
    band = stats.aggregate_curves(xs, ys, grid=np.arange(4.0), window=2, reps=100)
    assert np.allclose(band.point, [0.0, 0.0, 1.5, 3.0])
    assert np.allclose(band.low, band.point) and np.allclose(band.high, band.point)  # identical runs


def test_aggregate_curves_iqm_is_pointwise_and_reproducible():
    rng = np.random.default_rng(8)
    xs = [np.sort(rng.uniform(0, 100, 40)) for _ in range(6)]
    ys = [rng.normal(size=40) for _ in range(6)]
    band = stats.aggregate_curves(xs, ys, num_points=20, reps=300, seed=2)
    grid, curves = stats.curves_to_grid(xs, ys, num_points=20)
    assert np.allclose(band.point, [stats.iqm(curves[:, g]) for g in range(20)])
    again = stats.aggregate_curves(xs, ys, num_points=20, reps=300, seed=2)
    assert np.array_equal(band.low, again.low) and np.array_equal(band.high, again.high)


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("call, message", [
    (lambda: stats.iqm([]), "empty"),
    (lambda: stats.mean([[1.0, np.nan]]), "NaN"),
    (lambda: stats.median([1.0, np.inf]), "expected finite"),
    (lambda: stats.mean(np.zeros((2, 2, 2))), "[runs] or [runs, tasks]"),
    (lambda: stats.optimality_gap([1.0], None), "threshold"),
    (lambda: stats.stratified_bootstrap([1.0, 2.0], "mean", confidence=1.0), "confidence"),
    (lambda: stats.stratified_bootstrap([1.0, 2.0], "mean", confidence=0.0), "in (0, 1)"),
    (lambda: stats.stratified_bootstrap([1.0, 2.0], "mean", reps=0), "reps"),
    (lambda: stats.stratified_bootstrap([1.0, 2.0], "mode"), "unknown"),
    (lambda: stats.stratified_bootstrap([1.0, 2.0], "optimality_gap"), "threshold"),
    (lambda: stats.stratified_bootstrap([1.0, 2.0], "mean", method="bc"), "method"),
    (lambda: stats.stratified_bootstrap(np.ones((3, 2)), "mean", method="bca"), "one task"),
    (lambda: stats.stratified_bootstrap([1.0], "mean"), "at least 2 runs"),
    (lambda: stats.interval_estimates({}), "empty"),
    (lambda: stats.interval_estimates({"a": [1.0, 2.0]}, metrics=["optimality_gap"]), "threshold"),
    (lambda: stats.interval_estimates({"a": [1.0, 2.0]}, metrics=["max"]), "unknown metric"),
    (lambda: stats.interval_estimates({"a": [1.0, np.nan]}), "scores_by_arm['a']"),
    (lambda: stats.probability_of_improvement(np.ones((3, 2)), np.ones((3, 1))), "same tasks"),
    (lambda: stats.performance_profile([1.0, 2.0], []), "taus"),
    (lambda: stats.steps_to_threshold([0, 1], [1.0], 1.0), "same length"),
    (lambda: stats.steps_to_threshold([1, 0], [1.0, 2.0], 1.0), "non-decreasing"),
    (lambda: stats.threshold_estimate([1.0, np.nan]), "NaN"),
    (lambda: stats.aggregate_curves([[0, 1]], [[0, 1], [0, 1]]), "one of each"),
    (lambda: stats.aggregate_curves([[0, 1], [2, 3]], [[0, 1], [0, 1]]), "share no x range"),
    (lambda: stats.aggregate_curves([[0, 1]], [[0, 1]], statistic="max"), "statistic"),
])
def test_bad_input_says_what_was_expected(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)


# ------------------------------------------------------------------------------------------- plots
@pytest.fixture
def arms():
    rng = np.random.default_rng(9)
    return {"ppo": rng.normal(400, 50, size=8), "a2c": rng.normal(300, 80, size=8),
            "reinforce": rng.normal(150, 60, size=8)}


def test_plot_interval_estimates_draws_one_panel_per_metric_one_row_per_arm(arms):
    estimates = stats.interval_estimates(arms, threshold=450.0, reps=200)
    figure = plotting.plot_interval_estimates(estimates, title="CartPole")
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["Mean", "Median", "IQM", "Optimality gap"]
    assert all(len(ax.patches) == 3 for ax in axes)  # one interval bar per arm
    assert [t.get_text() for t in axes[0].get_yticklabels()] == ["ppo", "a2c", "reinforce"]
    assert str(estimates["ppo"]["iqm"]) in [t.get_text() for t in axes[2].texts]
    assert "95%" in figure._suptitle.get_text()
    plt.close(figure)
    figure, given = plt.subplots(1, 1)
    assert plotting.plot_interval_estimates(estimates, metrics=["iqm"], axes=given) is figure
    plt.close(figure)


def test_plot_aggregate_curves_labels_statistic_runs_and_level():
    rng = np.random.default_rng(10)
    curves = {}
    for arm in ("ppo", "a2c"):
        xs = [np.sort(rng.uniform(0, 1000, 50)) for _ in range(3)]
        curves[arm] = stats.aggregate_curves(xs, [rng.normal(size=50) for _ in range(3)], reps=100)
    figure = plotting.plot_aggregate_curves(curves, threshold=0.5)
    ax = figure.axes[0]
    assert len(ax.lines) == 3  # two arms and the threshold
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "ppo (IQM of 3 runs, 95% CI)" and "threshold" in labels[2]
    assert ax.get_xlabel() == "env steps" and ax.get_ylabel() == "return"
    plt.close(figure)
    figure = plotting.plot_aggregate_curves({"bare": tuple(curves["ppo"])})  # a (grid, point, low, high) tuple
    assert [t.get_text() for t in figure.axes[0].get_legend().get_texts()] == ["bare"]
    plt.close(figure)


def test_plot_performance_profiles_draws_one_line_per_arm(arms):
    taus = np.linspace(0, 600, 31)
    profiles = {arm: stats.performance_profile(scores, taus, reps=100) for arm, scores in arms.items()}
    figure = plotting.plot_performance_profiles(profiles)
    ax = figure.axes[0]
    assert len(ax.lines) == 3 and "score > τ" in ax.get_ylabel()
    plt.close(figure)
    tuples = {arm: (p.point, p.low, p.high) for arm, p in profiles.items()}
    with pytest.raises(ValueError, match="pass taus"):
        plotting.plot_performance_profiles(tuples)
    figure = plotting.plot_performance_profiles(tuples, taus)
    assert len(figure.axes[0].lines) == 3
    plt.close(figure)


def test_band_unpacks_as_grid_point_low_high():
    band = Band(np.arange(2.0), np.ones(2), np.zeros(2), np.full(2, 2.0), 0.9, "mean", 4)
    grid, point, low, high = band
    assert grid.tolist() == [0.0, 1.0] and high.tolist() == [2.0, 2.0]
