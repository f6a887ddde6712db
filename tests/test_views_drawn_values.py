"""What the course's views DRAW, read back from the figures (issue 45, item 5).

A mutation audit found bugs in ``pgcourse.course.views.plotting`` that no test could see (the mean band averaged
over the wrong axis; a grid point on an episode's end step reading the previous episode): the views drew figures
whose values no test read. Each test below builds a small hand-made input (a stand-in run of a few episodes, a
few estimates, a tiny rollout, a fake environment), calls one view, and reads what it drew back from the
matplotlib objects (``ax.lines[i].get_data()``, the paths of ``fill_between``, bar heights, labels, limits,
titles, legends) or from the returned arrays, against values computed by hand in the test.

Covered: every public function of ``plotting`` and ``widgets`` (the explorers and the playground through the
functions they call, with training and the GIF writer replaced by stand-ins), and the pure helpers of ``render``
(frames from a fake environment, resizing, captions, GIF files); the real pygame renderer is not opened.
"""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import gymnasium as gym  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from pgcourse.course.stats import Band, Estimate  # noqa: E402
from pgcourse.course.views import plotting, render, widgets  # noqa: E402
from pgcourse.rl.config import ConfigError  # noqa: E402
from pgcourse.rl.history import History  # noqa: E402
from pgcourse.rl.run import Run  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _episodes_run(returns, env_steps, algo="ppo", seed=0, env_id="CartPole-v1"):
    """A stand-in run holding only finished episodes: ``returns[i]`` ended at ``env_steps[i]``."""
    history = History()
    for ret, step in zip(returns, env_steps):
        history.episodes.append(**{"return": float(ret), "length": 1.0, "env_step": float(step), "wall_time": 0.0})
    return SimpleNamespace(history=history, config=SimpleNamespace(algo=algo, seed=seed, env_id=env_id))


def _xy(line):
    xs, ys = line.get_data()
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


def _band(collection):
    """``{x: (lowest y, highest y)}`` over the vertices of a fill_between (its polygons hold y1 and y2 at each x)."""
    spans: dict[float, list[float]] = {}
    for path in collection.get_paths():
        for x, y in path.vertices:
            spans.setdefault(round(float(x), 9), []).append(float(y))
    return {x: (min(ys), max(ys)) for x, ys in sorted(spans.items())}


def _legend_texts(ax):
    legend = ax.get_legend()
    return [t.get_text() for t in legend.get_texts()] if legend is not None else []


# ================================================================================================ plotting
# -- plot_learning_curve ----------------------------------------------------------------------------------
def test_a_learning_curve_draws_the_trailing_moving_average_and_the_raw_returns_against_env_steps():
    """Line 0 is the trailing moving average (the mean of the last ``window`` returns, fewer at the start) at each
    episode's end step; line 1 the raw returns, faint, in the same colour."""
    run = _episodes_run([0.0, 2.0, 4.0, 10.0], [5, 9, 20, 31], algo="a2c", seed=3, env_id="Acrobot-v1")
    ax = plotting.plot_learning_curve(run, window=2)
    xs, ys = _xy(ax.lines[0])
    np.testing.assert_array_equal(xs, [5, 9, 20, 31])
    np.testing.assert_allclose(ys, [0.0, 1.0, 3.0, 7.0])
    raw_x, raw_y = _xy(ax.lines[1])
    np.testing.assert_array_equal(raw_x, [5, 9, 20, 31])
    np.testing.assert_array_equal(raw_y, [0.0, 2.0, 4.0, 10.0])
    assert ax.lines[1].get_alpha() == 0.2 and ax.lines[1].get_linewidth() == 0.8
    assert ax.lines[1].get_color() == ax.lines[0].get_color()
    assert ax.lines[0].get_label() == "a2c seed 3"
    assert ax.get_xlabel() == "environment steps"
    assert ax.get_ylabel() == "episode return (2-episode moving average)"
    assert ax.get_title() == "a2c on Acrobot-v1"


def test_a_learning_curve_against_episodes_counts_them_from_one_and_takes_a_given_label_and_axes():
    """``x="episode"``: the x values are 1..N; a given label replaces the default; a given Axes is drawn on and
    returned."""
    run = _episodes_run([1.0, 3.0, 5.0], [100, 200, 300])
    _, given = plt.subplots()
    ax = plotting.plot_learning_curve(run, window=20, x="episode", ax=given, label="mine")
    assert ax is given
    xs, ys = _xy(ax.lines[0])
    np.testing.assert_array_equal(xs, [1, 2, 3])
    np.testing.assert_allclose(ys, [1.0, 2.0, 3.0])  # window longer than the run: the mean so far
    assert ax.lines[0].get_label() == "mine"
    assert ax.get_xlabel() == "episodes"
    assert ax.get_ylabel() == "episode return (20-episode moving average)"


@pytest.mark.parametrize("x", ["steps", "Episode", "env_step ", ""])
def test_a_learning_curve_rejects_an_unknown_x_axis_naming_it(x):
    """Only ``"env_step"`` and ``"episode"`` (exactly) are x axes; the message names the bad value and the choices."""
    with pytest.raises(ValueError, match=r"x=.*invalid.*'env_step' or 'episode'"):
        plotting.plot_learning_curve(_episodes_run([1.0], [1]), x=x)


# -- curves_on_grid -------------------------------------------------------------------------------------
def test_a_curve_on_a_grid_holds_each_episode_from_its_end_step_through_the_last_end():
    """At grid point g the curve is the moving average of the last episode ended at or before g (an end step equal
    to g already counts), NaN before the first end and after the last one (the last end itself is defined)."""
    run = _episodes_run([1.0, 2.0, 3.0], [10, 20, 30])
    grid = np.array([0.0, 9.999, 10.0, 19.0, 20.0, 29.999, 30.0, 30.001])
    curve = plotting.curves_on_grid([run], grid, window=1)
    assert curve.shape == (1, 8)
    np.testing.assert_array_equal(curve[0], [np.nan, np.nan, 1.0, 1.0, 2.0, 2.0, 3.0, np.nan])


def test_a_curve_on_a_grid_is_smoothed_with_the_window_and_one_row_per_run_in_order():
    """Row i is run i's trailing moving average; a run with no episode is a row of NaN (the others unaffected)."""
    a = _episodes_run([0.0, 4.0, 8.0], [1, 2, 3])
    empty = _episodes_run([], [])
    b = _episodes_run([10.0, 20.0], [1, 3])
    curves = plotting.curves_on_grid([a, empty, b], np.array([1.0, 2.0, 3.0]), window=2)
    np.testing.assert_allclose(curves[0], [0.0, 2.0, 6.0])
    assert np.isnan(curves[1]).all()
    np.testing.assert_allclose(curves[2], [10.0, 10.0, 15.0])


def test_a_curve_on_a_grid_against_episodes_uses_the_episode_number():
    """``x="episode"``: episode i (from 1) ends at x = i, whatever env step it ended at."""
    run = _episodes_run([5.0, 7.0, 9.0], [100, 200, 300])
    curve = plotting.curves_on_grid([run], np.array([0.5, 1.0, 2.5, 3.0, 3.5]), window=1, x="episode")[0]
    np.testing.assert_array_equal(curve, [np.nan, 5.0, 7.0, 9.0, np.nan])


def test_curves_on_an_empty_grid_or_of_no_runs_have_the_matching_empty_shape():
    """``[num_runs, len(grid)]`` also at zero on either side."""
    assert plotting.curves_on_grid([], np.array([1.0, 2.0])).shape == (0, 2)
    assert plotting.curves_on_grid([_episodes_run([1.0], [1])], np.array([])).shape == (1, 0)


# -- plot_mean_band ---------------------------------------------------------------------------------------
def _two_seeds():
    """Seed a: 0, 2, 4 at steps 10, 20, 30 (window 1); seed b: 6, 6, 10, 20 at steps 10, 20, 30, 40."""
    return [_episodes_run([0.0, 2.0, 4.0], [10, 20, 30]), _episodes_run([6.0, 6.0, 10.0, 20.0], [10, 20, 30, 40])]


def test_the_mean_band_line_is_the_mean_over_seeds_at_each_grid_step_up_to_the_shortest_run():
    """The grid runs from 0 to the earliest last end (``points`` points); the line is the mean over the runs at each
    grid step of their held curves (NaN before any run has ended an episode)."""
    ax = plotting.plot_mean_band(_two_seeds(), window=1, points=7)
    xs, ys = _xy(ax.lines[0])
    np.testing.assert_allclose(xs, [0, 5, 10, 15, 20, 25, 30])
    np.testing.assert_allclose(ys, [np.nan, np.nan, 3.0, 3.0, 4.0, 4.0, 7.0])


def test_the_mean_band_minmax_band_is_the_range_of_the_seeds_at_each_step():
    """``band="minmax"``: from the lowest to the highest seed at each grid step, in the line's colour."""
    ax = plotting.plot_mean_band(_two_seeds(), window=1, points=7)
    band = _band(ax.collections[0])
    assert band[10.0] == (0.0, 6.0) and band[15.0] == (0.0, 6.0)
    assert band[20.0] == (2.0, 6.0) and band[30.0] == (4.0, 10.0)
    assert matplotlib.colors.to_hex(ax.collections[0].get_facecolor()[0]) == matplotlib.colors.to_hex(
        ax.lines[0].get_color())
    assert ax.get_title() == "mean over seeds, band = min to max"


def test_the_mean_band_std_band_is_the_mean_plus_and_minus_the_population_std_of_the_seeds():
    """``band="std"``: mean ± the standard deviation over the seeds (ddof 0: two seeds 0 and 6 give 3 ± 3)."""
    ax = plotting.plot_mean_band(_two_seeds(), window=1, points=7, band="std")
    band = _band(ax.collections[0])
    assert band[10.0] == pytest.approx((0.0, 6.0))
    assert band[20.0] == pytest.approx((2.0, 6.0))
    assert band[30.0] == pytest.approx((7.0 - 3.0, 7.0 + 3.0))
    assert ax.get_title() == "mean over seeds, band = ±1 std"


def test_three_seeds_separate_the_std_band_from_the_range():
    """Three seeds 0, 3, 9: mean 4, population std sqrt(14) (not the range 0..9 and not ddof=1's sqrt(21))."""
    runs = [_episodes_run([v], [0]) for v in (0.0, 3.0, 9.0)]
    for run in runs:
        run.history.episodes.append(**{"return": 0.0, "length": 1.0, "env_step": 10.0, "wall_time": 0.0})
    ax = plotting.plot_mean_band(runs, window=1, points=3, band="std")  # grid 0, 5, 10
    _, ys = _xy(ax.lines[0])
    assert ys[0] == pytest.approx(4.0) and ys[1] == pytest.approx(4.0) and ys[2] == pytest.approx(0.0)
    band = _band(ax.collections[0])
    assert band[5.0] == pytest.approx((4.0 - math.sqrt(14.0), 4.0 + math.sqrt(14.0)))


def test_the_mean_band_defaults_label_axis_labels_and_a_legend():
    """Label ``"<algo> (<n> seeds)"`` from the first run (a given label wins); x label by ``x``; the y label names
    the window; the legend shows the label; 200 grid points by default."""
    ax = plotting.plot_mean_band([_episodes_run([1.0], [4], algo="trpo"), _episodes_run([1.0], [4], algo="x")])
    assert ax.lines[0].get_label() == "trpo (2 seeds)"
    assert _legend_texts(ax) == ["trpo (2 seeds)"]
    assert len(ax.lines[0].get_xdata()) == 200
    assert ax.get_xlabel() == "environment steps"
    assert ax.get_ylabel() == "return (20-episode moving average)"
    _, given = plt.subplots()
    ax = plotting.plot_mean_band([_episodes_run([1.0, 2.0], [4, 8])], label="mine", window=5, x="episode", ax=given,
                                 points=3)
    assert ax is given and _legend_texts(ax) == ["mine"]
    assert ax.get_xlabel() == "episodes" and ax.get_ylabel() == "return (5-episode moving average)"


def test_the_mean_band_against_episodes_ends_at_the_fewest_episodes_and_skips_empty_runs():
    """``x="episode"``: the grid ends at the smallest episode count among runs that have episodes (a run with none
    does not end the grid at 0); the window smooths each run."""
    runs = [_episodes_run([2.0, 4.0, 6.0], [1, 2, 3]), _episodes_run([], []), _episodes_run([0.0, 0.0], [5, 6])]
    ax = plotting.plot_mean_band(runs, window=2, x="episode", points=3)
    xs, ys = _xy(ax.lines[0])
    np.testing.assert_allclose(xs, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(ys, [np.nan, 1.0, 1.5])  # (2 + 0) / 2; ((2+4)/2 + 0) / 2
    assert ax.lines[0].get_label() == "ppo (3 seeds)"


@pytest.mark.parametrize("band", ["range", "MINMAX", "std ", "", None])
def test_the_mean_band_rejects_an_unknown_band_naming_it(band):
    """Only ``"minmax"`` and ``"std"`` are bands; the message names the bad one and the choices."""
    with pytest.raises(ValueError, match=r"band=.*invalid.*'minmax' or 'std'"):
        plotting.plot_mean_band([_episodes_run([1.0], [1])], band=band)


def test_the_mean_band_needs_a_run():
    """No runs: a ValueError that says a run is needed (not an error from min() of nothing)."""
    with pytest.raises(ValueError, match="at least one run"):
        plotting.plot_mean_band([])


# -- plot_diagnostics -------------------------------------------------------------------------------------
def _updates_run(rows):
    history = History()
    for row in rows:
        history.updates.append(**row)
    return SimpleNamespace(history=history, config=SimpleNamespace(algo="ppo"))


def test_diagnostics_draw_one_panel_per_column_against_env_steps_titled_in_words():
    """Panel i plots column ``names[i]`` of ``history.updates`` against its ``env_step``; the title is the column's
    words (:data:`DIAGNOSTIC_LABELS`), an unknown column's name with spaces for underscores; x label ``env steps``."""
    run = _updates_run([{"env_step": 64, "entropy": 0.69, "update_kl": 0.01, "clip_fraction": 0.1, "lr": 3e-4},
                        {"env_step": 128, "entropy": 0.6, "update_kl": 0.02, "clip_fraction": 0.2, "lr": 1e-4}])
    axes = plotting.plot_diagnostics(run, names=("entropy", "update_kl", "clip_fraction", "lr", "line_search_steps"))
    assert len(axes) == 5
    assert [len(ax.get_figure().axes) for ax in axes[:1]] == [5]  # one row of five panels
    xs, ys = _xy(axes[0].lines[0])
    np.testing.assert_array_equal(xs, [64, 128])
    np.testing.assert_allclose(ys, [0.69, 0.6])
    np.testing.assert_allclose(_xy(axes[1].lines[0])[1], [0.01, 0.02])
    np.testing.assert_allclose(_xy(axes[3].lines[0])[1], [3e-4, 1e-4])
    assert [ax.get_title() for ax in axes] == ["entropy (nats)", "update KL (old to new policy)", "clip fraction",
                                               "learning rate (actor)", "line search steps"]
    assert all(ax.get_xlabel() == "env steps" for ax in axes)


def test_diagnostics_default_to_four_panels_and_draw_on_given_axes():
    """Default: entropy, update KL, clip fraction, explained variance; given axes are used and returned."""
    run = _updates_run([{"env_step": 1, "entropy": 1.0, "update_kl": 2.0, "clip_fraction": 3.0,
                         "explained_variance": 4.0}])
    axes = plotting.plot_diagnostics(run)
    assert [ax.get_title() for ax in axes] == ["entropy (nats)", "update KL (old to new policy)", "clip fraction",
                                               "explained variance"]
    assert [float(_xy(ax.lines[0])[1][0]) for ax in axes] == [1.0, 2.0, 3.0, 4.0]
    _, given = plt.subplots(1, 2)
    out = plotting.plot_diagnostics(run, names=("clip_fraction", "entropy"), axes=given)
    assert out is given and given[0].get_title() == "clip fraction" and float(_xy(given[1].lines[0])[1][0]) == 1.0


def test_diagnostic_labels_say_what_each_column_measures():
    """Every labelled key is a history column, and the labels that distinguish look-alike columns say how: the
    minibatch KL vs the update KL, the critic's explained variance before (out of sample) vs after (in sample), the
    actor's vs the critic's learning rate and grad norm, entropy in nats."""
    from pgcourse.rl.history import UPDATE_FIELDS
    labels = plotting.DIAGNOSTIC_LABELS
    assert set(labels) <= set(UPDATE_FIELDS)
    assert "minibatch" in labels["approx_kl"] and "old to new" in labels["update_kl"]
    assert "before" in labels["explained_variance_before"] and "out of sample" in labels["explained_variance_before"]
    assert "after" in labels["explained_variance_after"] and "in sample" in labels["explained_variance_after"]
    assert "actor" in labels["lr"] and "critic" in labels["critic_lr"]
    assert labels["actor_grad_norm"] == "actor grad norm" and labels["critic_grad_norm"] == "critic grad norm"
    assert labels["entropy"] == "entropy (nats)" and labels["advantage_std"] == "advantage std (raw)"
    assert labels["policy_loss"] == "policy loss" and labels["value_loss"] == "value loss"
    assert labels["log_std_mean"] == "mean log std" and labels["epochs_run"] == "epochs run"
    assert labels["value_rel_error"] == "critic's relative error" and labels["clip_fraction"] == "clip fraction"


# -- _given_axes ----------------------------------------------------------------------------------------------
def test_given_axes_makes_a_row_when_none_and_flattens_what_is_given():
    """None: ``count`` new panels in one row; one Axes for one panel; a 2-D array of axes is flattened in order."""
    made = plotting._given_axes(None, 3, (6, 2))
    assert len(made) == 3 and len({id(ax.figure) for ax in made}) == 1
    assert [ax.get_subplotspec().colspan.start for ax in made] == [0, 1, 2]
    _, one = plt.subplots()
    assert plotting._given_axes(one, 1, (3, 2)) == [one]
    _, grid = plt.subplots(2, 2)
    assert plotting._given_axes(grid, 4, (3, 2)) == [grid[0, 0], grid[0, 1], grid[1, 0], grid[1, 1]]


def test_given_axes_made_with_sharey_share_the_y_axis():
    """``sharey=True``: the new panels share their y limits."""
    a, b = plotting._given_axes(None, 2, (4, 2), sharey=True)
    a.set_ylim(-7, 7)
    assert b.get_ylim() == (-7, 7)
    c, d = plotting._given_axes(None, 2, (4, 2))
    c.set_ylim(-7, 7)
    assert d.get_ylim() != (-7, 7)


@pytest.mark.parametrize("given, count", [(2, 3), (2, 1), (1, 2)])
def test_given_axes_of_the_wrong_count_are_refused_naming_both_counts(given, count):
    """One Axes per panel: any other number is a ValueError that says how many were given and needed."""
    _, axes = plt.subplots(1, given, squeeze=False)
    with pytest.raises(ValueError, match=rf"got {given} axes for {count} panel\(s\)"):
        plotting._given_axes(axes, count, (3, 2))


# -- plot_interval_estimates -------------------------------------------------------------------------------
def _estimates():
    return {"ppo": {"mean": Estimate(10.0, 8.0, 12.0, 0.95), "iqm": Estimate(4.0, 3.0, 6.0, 0.95)},
            "a2c": {"mean": Estimate(5.0, 2.0, 6.0, 0.95), "iqm": Estimate(1.0, 0.0, 2.0, 0.95)}}


def _bars(ax):
    return [(p.get_x(), p.get_x() + p.get_width(), p.get_y() + p.get_height() / 2, p.get_height()) for p in ax.patches]


def test_interval_estimates_draw_each_arms_interval_as_a_bar_and_its_point_as_a_tick_on_its_row():
    """One panel per metric (the first arm's, in order), one row per arm (row i = arm i): a bar from low to high,
    height 0.5, a tick at the point, the text ``point [low, high]`` above it."""
    fig = plotting.plot_interval_estimates(_estimates())
    mean_ax, iqm_ax = fig.axes
    assert _bars(mean_ax) == [(8.0, 12.0, 0.0, 0.5), (2.0, 6.0, 1.0, 0.5)]
    assert _bars(iqm_ax) == [(3.0, 6.0, 0.0, 0.5), (0.0, 2.0, 1.0, 0.5)]
    assert [tuple(map(list, _xy(line))) for line in mean_ax.lines] == [([10.0], [0.0]), ([5.0], [1.0])]
    assert [line.get_marker() for line in mean_ax.lines] == ["|", "|"]
    texts = [(t.get_text(), tuple(t.xy)) for t in mean_ax.texts]
    assert texts == [("10.0 [8.0, 12.0]", (10.0, 0)), ("5.0 [2.0, 6.0]", (5.0, 1))]
    assert [ax.get_title() for ax in fig.axes] == ["Mean", "IQM"]


def test_interval_estimates_pad_the_panel_by_a_twelfth_of_the_spread_and_put_the_first_arm_on_top():
    """x limits: the column's lowest to highest finite value, widened by 1.5 x pad, pad = 0.08 x (high - low);
    the y axis lists the arms, the first on top (limits ``len - 0.4`` to ``-0.7``)."""
    fig = plotting.plot_interval_estimates(_estimates())
    mean_ax, iqm_ax = fig.axes
    pad = 0.08 * (12.0 - 2.0)
    assert mean_ax.get_xlim() == pytest.approx((2.0 - 1.5 * pad, 12.0 + 1.5 * pad))
    pad = 0.08 * (6.0 - 0.0)
    assert iqm_ax.get_xlim() == pytest.approx((0.0 - 1.5 * pad, 6.0 + 1.5 * pad))
    assert [t.get_text() for t in mean_ax.get_yticklabels()] == ["ppo", "a2c"]
    assert list(mean_ax.get_yticks()) == [0, 1]
    assert mean_ax.get_ylim() == pytest.approx((2 - 0.4, -0.7))


def test_an_infinite_interval_end_runs_to_the_panels_edge_and_an_infinite_point_is_annotated_at_the_top():
    """A -inf low starts the bar at (lowest finite value - pad), a +inf high ends it at (highest + pad); an
    infinite point's text sits at the highest finite value."""
    estimates = {"a": {"median": Estimate(4.0, -math.inf, 5.0, 0.9)},
                 "b": {"median": Estimate(math.inf, 3.0, math.inf, 0.9)}}
    fig = plotting.plot_interval_estimates(estimates)
    ax = fig.axes[0]
    pad = 0.08 * (5.0 - 3.0)
    bars = _bars(ax)
    assert bars[0][:2] == pytest.approx((3.0 - pad, 5.0))
    assert bars[1][:2] == pytest.approx((3.0, 5.0 + pad))
    assert tuple(ax.texts[1].xy) == (5.0, 1)
    assert ax.texts[1].get_text() == "inf [3.0, inf]"
    assert ax.get_title() == "Median"


def test_a_column_of_one_value_gets_a_pad_of_one_and_no_finite_value_the_unit_range():
    """Equal low, point and high (zero spread): pad 1.0; nothing finite: the range 0..1 (pad 0.08), an infinite
    interval spanning it from pad below to pad above."""
    fig = plotting.plot_interval_estimates({"a": {"mean": Estimate(2.0, 2.0, 2.0, 0.95)}})
    assert fig.axes[0].get_xlim() == pytest.approx((2.0 - 1.5, 2.0 + 1.5))
    nothing = {"a": {"mean": Estimate(math.inf, -math.inf, math.inf, 0.95)}}
    fig = plotting.plot_interval_estimates(nothing)
    assert fig.axes[0].get_xlim() == pytest.approx((0.0 - 0.12, 1.0 + 0.12))
    assert _bars(fig.axes[0])[0][:2] == pytest.approx((-0.08, 1.08))
    assert tuple(fig.axes[0].texts[0].xy) == (1.0, 0)


def test_interval_estimates_title_states_the_confidence_and_prefixes_a_given_title():
    """Suptitle ``"<title>: point estimates with 95% bootstrap intervals"`` (the first estimate's confidence, as a
    whole percent); no title, no prefix. Metrics not in the title table keep their name."""
    fig = plotting.plot_interval_estimates(_estimates(), title="CartPole")
    assert fig._suptitle.get_text() == "CartPole: point estimates with 95% bootstrap intervals"
    estimates = {"a": {"optimality_gap": Estimate(1.0, 0.5, 1.5, 0.9), "score": Estimate(1.0, 0.5, 1.5, 0.9)}}
    fig = plotting.plot_interval_estimates(estimates)
    assert fig._suptitle.get_text() == "point estimates with 90% bootstrap intervals"
    assert [ax.get_title() for ax in fig.axes] == ["Optimality gap", "score"]


def test_interval_estimates_plot_the_metrics_asked_for_on_the_axes_given():
    """``metrics`` picks and orders the panels; given axes are drawn on (the figure returned is theirs)."""
    fig, axes = plt.subplots(1, 1)
    out = plotting.plot_interval_estimates(_estimates(), metrics=["iqm"], axes=axes)
    assert out is fig and axes.get_title() == "IQM" and _bars(axes)[0][:2] == (3.0, 6.0)


def test_interval_estimates_refuse_nothing_and_a_missing_metric_naming_it():
    """No arms: a ValueError naming the expected shape; an arm without a plotted metric: one naming ``arm/metric``."""
    with pytest.raises(ValueError, match="estimates is empty"):
        plotting.plot_interval_estimates({})
    estimates = {"a": {"mean": Estimate(1, 0, 2, 0.95), "iqm": Estimate(1, 0, 2, 0.95)},
                 "b": {"mean": Estimate(1, 0, 2, 0.95)}}
    with pytest.raises(ValueError, match=r"no estimate for \['b/iqm'\]"):
        plotting.plot_interval_estimates(estimates)
    with pytest.raises(ValueError, match=r"\['a/median', 'b/median'\]"):
        plotting.plot_interval_estimates(estimates, metrics=["median"])


# -- _band_label, _draw_band, plot_aggregate_curves ---------------------------------------------------------
def _curve_band(point, low, high, runs=4, runs_at=None, statistic="iqm", confidence=0.95, x=None):
    point = np.asarray(point, dtype=float)
    x = np.arange(len(point), dtype=float) if x is None else np.asarray(x, dtype=float)
    return Band(x, point, np.asarray(low, dtype=float), np.asarray(high, dtype=float), confidence, statistic, runs,
                None if runs_at is None else np.asarray(runs_at))


@pytest.mark.parametrize("runs_at, statistic, shown, expected", [
    (None, "iqm", True, "ppo (IQM of 4 runs, 95% CI)"),
    ([3, 3, 3], "mean", True, "ppo (Mean of 3 runs, 95% CI)"),
    ([0, 2, 3, 3], "median", True, "ppo (Median of 2-3 runs, 95% CI)"),  # a point no run reaches is not counted
    ([5], "score", True, "ppo (score of 5 runs, 95% CI)"),
    ([2, 3], "iqm", False, "ppo (2-3 runs, 95% CI)"),
])
def test_a_band_label_states_the_statistic_the_runs_and_the_confidence(runs_at, statistic, shown, expected):
    """``arm (Statistic of N runs, C% CI)``; N is the range of the per-point run counts over points with any run
    (one number when they agree); a statistic not in the table keeps its name; ``statistic=False`` leaves it out."""
    band = _curve_band([1.0] * (len(runs_at) if runs_at else 1), [0.0] * (len(runs_at) if runs_at else 1),
                       [2.0] * (len(runs_at) if runs_at else 1), runs=4, runs_at=runs_at, statistic=statistic)
    assert plotting._band_label("ppo", band, statistic=shown) == expected


def test_a_band_label_of_a_plain_tuple_is_the_arm_and_the_confidence_is_a_whole_percent():
    assert plotting._band_label("arm", (np.zeros(1),) * 4) == "arm"
    band = _curve_band([1.0], [0.0], [2.0], runs=10, confidence=0.9)
    assert plotting._band_label("x", band) == "x (IQM of 10 runs, 90% CI)"


def test_aggregate_curves_draw_each_arms_point_line_and_its_band_where_the_band_is_finite():
    """One line per arm (its x and point values) labelled as the band says; the band fills low..high only where both
    are finite (a NaN end leaves a gap, never a fill to 0)."""
    band = _curve_band([1.0, 2.0, 3.0, 4.0], [0.5, np.nan, 2.5, 3.0], [1.5, 2.5, 3.5, 5.0], x=[0, 10, 20, 30])
    fig = plotting.plot_aggregate_curves({"ppo": band, "a2c": (np.array([0.0, 5.0]), np.array([7.0, 8.0]),
                                                              np.array([6.0, 7.0]), np.array([8.0, 9.0]))})
    ax = fig.axes[0]
    xs, ys = _xy(ax.lines[0])
    np.testing.assert_array_equal(xs, [0, 10, 20, 30])
    np.testing.assert_array_equal(ys, [1, 2, 3, 4])
    assert ax.lines[0].get_drawstyle() == "default"
    spans = _band(ax.collections[0])
    assert 10.0 not in spans  # the NaN low: no fill there
    assert spans[0.0] == (0.5, 1.5)
    assert spans[20.0] == (2.5, 3.5) and spans[30.0] == (3.0, 5.0)
    assert all(lo >= 0.5 for lo, _ in spans.values())  # nothing drawn down to 0
    assert _band(ax.collections[1]) == {0.0: (6.0, 8.0), 5.0: (7.0, 9.0)}
    assert _legend_texts(ax) == ["ppo (IQM of 4 runs, 95% CI)", "a2c"]
    assert ax.get_xlabel() == "env steps" and ax.get_ylabel() == "return" and ax.get_title() == ""


@pytest.mark.parametrize("threshold, label", [(0.0, "threshold 0"), (475.0, "threshold 475"),
                                              (0.125, "threshold 0.125"), (-1e6, "threshold -1e+06")])
def test_aggregate_curves_draw_a_threshold_even_at_zero(threshold, label):
    """``threshold`` (any number, 0 included) is a dashed grey horizontal line at that height, labelled ``%g``."""
    fig = plotting.plot_aggregate_curves({"a": _curve_band([1.0], [0.0], [2.0])}, threshold=threshold,
                                         xlabel="episodes", ylabel="score", title="T")
    ax = fig.axes[0]
    target = ax.lines[-1]
    assert len(ax.lines) == 2
    assert set(_xy(target)[1]) == {threshold}
    assert target.get_linestyle() == "--" and target.get_color() == "gray"
    assert _legend_texts(ax)[-1] == label
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("episodes", "score", "T")


def test_aggregate_curves_without_a_threshold_draw_no_target_and_use_a_given_axes():
    _, given = plt.subplots()
    fig = plotting.plot_aggregate_curves({"a": _curve_band([1.0], [0.0], [2.0])}, ax=given)
    assert fig is given.figure and len(given.lines) == 1


def test_aggregate_curves_and_profiles_refuse_nothing():
    with pytest.raises(ValueError, match="curves_by_arm is empty"):
        plotting.plot_aggregate_curves({})
    with pytest.raises(ValueError, match="profiles_by_arm is empty"):
        plotting.plot_performance_profiles({})


# -- plot_performance_profiles ----------------------------------------------------------------------------
def test_performance_profiles_are_step_lines_with_step_bands_labelled_without_the_statistic():
    """Each profile is a ``steps-post`` line over its taus (a Band's x) with a post-step band; the legend names runs
    and CI but no statistic; y from -0.02 to 1.02, labelled as the fraction above τ."""
    band = _curve_band([1.0, 0.5, 0.0], [0.8, 0.3, 0.0], [1.0, 0.7, 0.1], runs=6, statistic="profile",
                       x=[0.0, 1.0, 2.0])
    fig = plotting.plot_performance_profiles({"ppo": band}, title="profiles")
    ax = fig.axes[0]
    xs, ys = _xy(ax.lines[0])
    np.testing.assert_array_equal(xs, [0, 1, 2])
    np.testing.assert_array_equal(ys, [1.0, 0.5, 0.0])
    assert ax.lines[0].get_drawstyle() == "steps-post"
    vertices = np.concatenate([p.vertices for p in ax.collections[0].get_paths()])
    # post steps: the low edge is 0.8 on [0, 1), 0.3 on [1, 2): the point (1, 0.8) is a corner of the fill
    assert any(np.allclose(v, (1.0, 0.8)) for v in vertices) and any(np.allclose(v, (1.0, 0.3)) for v in vertices)
    assert _legend_texts(ax) == ["ppo (6 runs, 95% CI)"]
    assert ax.get_ylim() == pytest.approx((-0.02, 1.02))
    assert ax.get_ylabel() == "fraction of runs with score > τ"
    assert ax.get_xlabel() == "score threshold τ" and ax.get_title() == "profiles"


def test_performance_profiles_given_as_tuples_take_their_x_from_taus():
    """A ``(point, low, high)`` tuple is drawn against ``taus``; without taus it is refused, naming the arm."""
    taus = [0.0, 0.5, 1.0]
    fig = plotting.plot_performance_profiles({"a": (np.array([1.0, 0.4, 0.0]), np.zeros(3), np.ones(3))}, taus=taus,
                                             xlabel="τ (normalised)")
    ax = fig.axes[0]
    np.testing.assert_array_equal(_xy(ax.lines[0])[0], taus)
    np.testing.assert_array_equal(_xy(ax.lines[0])[1], [1.0, 0.4, 0.0])
    assert _legend_texts(ax) == ["a"] and ax.get_xlabel() == "τ (normalised)" and ax.get_title() == ""
    with pytest.raises(ValueError, match=r"profile 'a' is a tuple: pass taus"):
        plotting.plot_performance_profiles({"a": (np.ones(3), np.zeros(3), np.ones(3))})


# ================================================================================================ widgets
# -- plot_discounting --------------------------------------------------------------------------------------
def test_discounting_draws_the_weights_gamma_to_the_k_and_the_discounted_returns():
    """Left: gamma^k for k = 0..T-1; right: G_t = r_t + gamma G_{t+1}, computed here by hand."""
    fig = widgets.plot_discounting(0.5, rewards=np.array([1.0, 0.0, 4.0, 2.0]))
    ax_w, ax_r = fig.axes
    xs, ys = _xy(ax_w.lines[0])
    np.testing.assert_array_equal(xs, [0, 1, 2, 3])
    np.testing.assert_allclose(ys, [1.0, 0.5, 0.25, 0.125])
    g3 = 2.0
    g2 = 4.0 + 0.5 * g3
    g1 = 0.0 + 0.5 * g2
    g0 = 1.0 + 0.5 * g1
    np.testing.assert_allclose(_xy(ax_r.lines[0])[1], [g0, g1, g2, g3])
    assert ax_r.get_title() == f"G_0 = {g0:.1f} for 4 rewards"
    assert ax_w.get_title() == "γ = 0.500: effective horizon 2.0 steps"
    assert ax_w.get_ylim() == pytest.approx((0, 1.05))
    assert (ax_w.get_xlabel(), ax_w.get_ylabel()) == ("steps into the future k", "weight γ^k")
    assert (ax_r.get_xlabel(), ax_r.get_ylabel()) == ("step t of the episode", "discounted return G_t")
    data = fig.course_data
    assert data["gamma"] == 0.5 and data["horizon"] == 2.0
    np.testing.assert_allclose(data["returns"], [g0, g1, g2, g3], rtol=1e-6)
    np.testing.assert_allclose(data["weights"], [1.0, 0.5, 0.25, 0.125])


def test_discounting_defaults_to_two_hundred_rewards_of_one():
    """No rewards: +1 for 200 steps, so G_0 = (1 - gamma^200) / (1 - gamma)."""
    fig = widgets.plot_discounting(0.9)
    returns = fig.course_data["returns"]
    assert len(returns) == 200
    assert returns[0] == pytest.approx((1 - 0.9 ** 200) / 0.1, rel=1e-5) and returns[-1] == pytest.approx(1.0)
    assert fig.axes[1].get_title() == "G_0 = 10.0 for 200 rewards"


@pytest.mark.parametrize("length, marked", [(3, True), (2, False), (200, True)])
def test_the_horizon_is_marked_only_when_it_falls_on_the_drawn_steps(length, marked):
    """gamma = 0.5 has horizon 2: a dashed red line at k = 2 labelled ``horizon 1/(1-γ) = 2`` when the last step
    drawn is at least 2 (equal included), none when the episode is shorter."""
    fig = widgets.plot_discounting(0.5, rewards=np.ones(length))
    ax = fig.axes[0]
    lines = [line for line in ax.lines if line.get_linestyle() == "--"]
    if marked:
        assert len(lines) == 1 and set(_xy(lines[0])[0]) == {2.0}
        assert _legend_texts(ax) == ["horizon 1/(1-γ) = 2"]
    else:
        assert lines == [] and ax.get_legend() is None


def test_gamma_one_has_an_infinite_horizon_and_no_mark():
    """gamma = 1 is allowed: the horizon is infinite (no line), the weights all 1, G_t the undiscounted sum."""
    fig = widgets.plot_discounting(1.0, rewards=np.array([1.0, 2.0, 3.0]))
    assert fig.course_data["horizon"] == math.inf
    assert len(fig.axes[0].lines) == 1
    assert fig.axes[0].get_title() == "γ = 1.000: effective horizon inf steps"
    np.testing.assert_allclose(fig.course_data["returns"], [6.0, 5.0, 3.0])
    np.testing.assert_allclose(fig.course_data["weights"], [1.0, 1.0, 1.0])


@pytest.mark.parametrize("gamma", [0.0, -0.5, 1.0001, 2.0])
def test_discounting_rejects_gamma_outside_zero_to_one_naming_it(gamma):
    with pytest.raises(ValueError, match=r"gamma=.*invalid: expected 0 < gamma <= 1"):
        widgets.plot_discounting(gamma)


def test_discounting_accepts_the_smallest_positive_gamma():
    fig = widgets.plot_discounting(1e-6, rewards=np.array([3.0, 5.0]))
    np.testing.assert_allclose(fig.course_data["returns"], [3.0 + 5e-6, 5.0], rtol=1e-6)


# -- sample_rollout and _learners_output -------------------------------------------------------------------
def test_the_sample_rollout_ends_once_by_termination_and_once_by_truncation():
    """``[T, 1]`` tensors: rewards all 1; terminated only at ``end_at``; truncated only at ``truncate_at``;
    next_values are the next step's values except at the two ends (6.0 terminated, 6.5 truncated); values in [5, 7)."""
    rollout = widgets.sample_rollout(length=8, end_at=2, truncate_at=5, seed=1)
    assert {k: tuple(v.shape) for k, v in rollout.items()} == {k: (8, 1) for k in
                                                               ("rewards", "values", "next_values", "terminated",
                                                                "truncated")}
    assert rollout["rewards"].eq(1).all()
    assert rollout["terminated"][:, 0].tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert rollout["truncated"][:, 0].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    values, next_values = rollout["values"][:, 0], rollout["next_values"][:, 0]
    assert ((values >= 5) & (values < 7)).all()
    for t in range(7):
        if t not in (2, 5):
            assert next_values[t] == values[t + 1]
    assert float(next_values[2]) == 6.0 and float(next_values[5]) == 6.5
    assert 5 <= float(next_values[7]) < 7
    again = widgets.sample_rollout(length=8, end_at=2, truncate_at=5, seed=1)
    assert torch.equal(again["values"], rollout["values"])
    assert not torch.equal(widgets.sample_rollout(length=8, end_at=2, truncate_at=5, seed=2)["values"],
                           rollout["values"])
    default = widgets.sample_rollout()
    assert default["rewards"].shape == (16, 1)
    assert int(default["terminated"][:, 0].argmax()) == 5 and int(default["truncated"][:, 0].argmax()) == 11


def test_a_learners_output_is_its_tensor_as_float64_numpy_computed_on_copies():
    """A correct function gives (its output as float64 numpy, ""); it receives copies (its in-place edits do not
    reach the caller's tensors); non-tensor arguments are passed as they are."""
    given = torch.ones(3, 1)

    def in_place(x, scale):
        x.mul_(scale)
        return x

    output, note = widgets._learners_output(in_place, [given, 2.0], "f", (3, 1))
    assert note == "" and output.dtype == np.float64
    np.testing.assert_array_equal(output, [[2.0], [2.0], [2.0]])
    assert given.eq(1).all()


def _raise(error):
    def function(*args):
        raise error
    return function


@pytest.mark.parametrize("function, note", [
    (_raise(NotImplementedError()), "your compute_gae: not implemented yet"),
    (_raise(ValueError("bad shape")), "your compute_gae raised ValueError: bad shape"),
    (_raise(KeyError("x" * 100)), "your compute_gae raised KeyError: '" + "x" * 59),
    (lambda *args: torch.zeros(3), "your compute_gae returned (3,), expected a tensor of shape (3, 1)"),
    (lambda *args: [0.0, 0.0, 0.0], "your compute_gae returned list, expected a tensor of shape (3, 1)"),
    (lambda *args: None, "your compute_gae returned NoneType, expected a tensor of shape (3, 1)"),
])
def test_a_learners_failure_becomes_a_note_not_an_exception(function, note):
    """Not implemented, a crash (its message cut to 60 characters), a wrong shape or a non-tensor: (None, why)."""
    assert widgets._learners_output(function, [torch.zeros(3, 1)], "compute_gae", (3, 1)) == (None, note)


# -- plot_gae_weights --------------------------------------------------------------------------------------
def _hand_gae(rollout, gamma, lam):
    r = rollout["rewards"][:, 0].double().numpy()
    v = rollout["values"][:, 0].double().numpy()
    nv = rollout["next_values"][:, 0].double().numpy()
    term = rollout["terminated"][:, 0].double().numpy()
    trunc = rollout["truncated"][:, 0].double().numpy()
    advantages, following = np.zeros(len(r)), 0.0
    for t in reversed(range(len(r))):
        delta = r[t] + gamma * nv[t] * (1 - term[t]) - v[t]
        done = max(term[t], trunc[t])
        following = delta + gamma * lam * (1 - done) * following
        advantages[t] = following
    return advantages


def test_gae_weights_are_the_geometric_blend_and_the_advantages_are_gae_with_its_cuts():
    """Left: bars at n = 1..max_n of height (1-λ)λ^(n-1); right: bars of GAE(γ, λ) at each step (computed by hand:
    no bootstrap at the termination, a bootstrap but a cut trace at the truncation) and dots of the TD errors;
    vertical lines half a step after the termination (solid red) and the truncation (dashed orange)."""
    rollout = widgets.sample_rollout(length=8, end_at=2, truncate_at=5, seed=0)
    fig = widgets.plot_gae_weights(gamma=0.9, lam=0.5, max_n=4, rollout=rollout)
    ax_w, ax_a = fig.axes
    assert [p.get_x() + p.get_width() / 2 for p in ax_w.patches] == [1, 2, 3, 4]
    np.testing.assert_allclose([p.get_height() for p in ax_w.patches], [0.5, 0.25, 0.125, 0.0625])
    expected = _hand_gae(rollout, 0.9, 0.5)
    np.testing.assert_allclose([p.get_height() for p in ax_a.patches], expected, rtol=1e-5)
    dots = [line for line in ax_a.lines if line.get_marker() == "."][0]
    np.testing.assert_allclose(_xy(dots)[1], _hand_gae(rollout, 0.9, 0.0), rtol=1e-5)
    verticals = {line.get_label(): (float(_xy(line)[0][0]), line.get_linestyle(), line.get_color())
                 for line in ax_a.lines if line.get_marker() != "."}
    assert verticals == {"terminated (no bootstrap)": (2.5, "-", "tab:red"),
                         "truncated (bootstrap)": (5.5, "--", "tab:orange")}
    data = fig.course_data
    assert data["tail"] == pytest.approx(0.5 ** 4)
    np.testing.assert_allclose(data["advantages"], expected, rtol=1e-5)
    np.testing.assert_allclose(data["weights"], [0.5, 0.25, 0.125, 0.0625])
    assert data["yours"] is None and data["yours_note"] == "" and data["max_difference"] is None
    assert ax_w.get_title() == "λ = 0.50: weight beyond n=4: 0.06; mean n ≈ 2.0"
    assert ax_a.get_title() == "GAE with γ = 0.900, λ = 0.50"
    assert ax_w.get_ylim()[1] == pytest.approx(1.15 * 0.5)
    assert (ax_w.get_xlabel(), ax_w.get_ylabel()) == ("n (the n-step advantage)", r"weight $(1-\lambda)\,\lambda^{n-1}$")
    assert (ax_a.get_xlabel(), ax_a.get_ylabel()) == ("step t of the rollout", "advantage Â_t")


@pytest.mark.parametrize("lam, top, mean_n", [(1.0, 1.15 * 0.05, "inf"), (0.0, 1.15, "1.0"), (0.99, 1.15 * 0.05, "100.0")])
def test_gae_weight_bars_scale_to_the_largest_bar_but_never_below_a_floor(lam, top, mean_n):
    """The y limit is 1.15 x max(largest weight, 0.05): λ = 1 (all mass beyond max_n, bars 0) and λ = 0.99 (bars of
    0.01) use the floor; the mean n, 1/(1-λ), is inf at λ = 1."""
    fig = widgets.plot_gae_weights(gamma=0.99, lam=lam, max_n=5)
    assert fig.axes[0].get_ylim()[1] == pytest.approx(top)
    assert fig.axes[0].get_title().endswith(f"mean n ≈ {mean_n}")
    assert fig.course_data["tail"] == pytest.approx(lam ** 5)


@pytest.mark.parametrize("gamma, lam", [(0.0, 0.5), (1.01, 0.5), (-0.1, 0.5), (0.9, -0.01), (0.9, 1.01)])
def test_gae_weights_reject_gamma_or_lambda_out_of_range_naming_both(gamma, lam):
    with pytest.raises(ValueError, match=r"gamma=.*lam=.*invalid: expected 0 < gamma <= 1 and 0 <= lam <= 1"):
        widgets.plot_gae_weights(gamma=gamma, lam=lam)


def test_gae_weights_accept_gamma_one_and_lambda_at_both_ends():
    for gamma, lam in [(1.0, 0.0), (1.0, 1.0), (0.5, 0.0)]:
        assert widgets.plot_gae_weights(gamma=gamma, lam=lam, max_n=3).course_data["lam"] == lam


def test_the_learners_gae_is_drawn_over_the_reference_with_the_largest_difference_in_the_title():
    """``your_compute_gae``: hollow purple markers at its advantages; the title's second line gives the largest
    absolute difference from the reference (``%.2g``); it is called with the rollout, gamma and lambda."""
    rollout = widgets.sample_rollout(length=6, end_at=1, truncate_at=4)
    reference = _hand_gae(rollout, 0.9, 0.8)
    calls = []

    def yours(rewards, values, next_values, terminated, truncated, gamma, lam):
        calls.append((gamma, lam))
        out = torch.as_tensor(reference, dtype=torch.float32)[:, None].clone()
        out[3] += 0.25
        out[0] -= 0.5
        return out

    fig = widgets.plot_gae_weights(gamma=0.9, lam=0.8, rollout=rollout, your_compute_gae=yours)
    assert calls == [(0.9, 0.8)]
    data = fig.course_data
    assert data["max_difference"] == pytest.approx(0.5, abs=1e-5)
    ax = fig.axes[1]
    assert ax.get_title() == "GAE with γ = 0.900, λ = 0.80\nyours vs the reference: largest difference 0.5"
    mine = [line for line in ax.lines if line.get_label() == "your compute_gae"][0]
    assert mine.get_marker() == "o" and mine.get_markerfacecolor() == "none"
    expected = reference.copy()
    expected[3] += 0.25
    expected[0] -= 0.5
    np.testing.assert_allclose(_xy(mine)[1], expected, rtol=1e-5)
    assert "your compute_gae" in _legend_texts(ax)


def test_a_learners_gae_that_fails_is_named_in_the_title_instead():
    fig = widgets.plot_gae_weights(your_compute_gae=_raise(NotImplementedError()))
    assert fig.axes[1].get_title().endswith("\nyour compute_gae: not implemented yet")
    assert fig.course_data["yours"] is None and fig.course_data["max_difference"] is None
    assert fig.course_data["yours_note"] == "your compute_gae: not implemented yet"
    assert len(fig.axes[1].lines) == 3  # the TD dots and the two episode ends, no markers of yours


# -- clip_objective and plot_clip_objective ----------------------------------------------------------------
@pytest.mark.parametrize("advantage", [1.0, -1.0, 2.5])
def test_the_clip_objective_is_the_min_of_the_plain_and_clipped_terms_and_its_slope(advantage):
    """objective(ρ) = min(ρA, clip(ρ, 1-ε, 1+ε)A); slope A where the unclipped term is the min, else 0 (never -0.0)."""
    ratios = np.array([0.3, 0.7, 0.95, 1.0, 1.1, 1.3, 2.0])
    eps = 0.2
    objective, gradient = widgets.clip_objective(ratios, advantage, eps)
    plain, clipped = ratios * advantage, np.clip(ratios, 1 - eps, 1 + eps) * advantage
    np.testing.assert_allclose(objective, np.minimum(plain, clipped), rtol=1e-12)
    active = plain < clipped  # away from the kinks: only where the unclipped term is strictly smaller
    inside = (ratios > 1 - eps) & (ratios < 1 + eps)
    np.testing.assert_allclose(gradient[inside], advantage)
    np.testing.assert_allclose(gradient[active], advantage)
    flat = ~inside & ~active
    assert (gradient[flat] == 0).all() and not np.signbit(gradient[flat]).any()


def test_the_clip_figure_draws_objective_unclipped_line_and_gradient_for_both_signs_of_a():
    """Panel 0 is A = +1, panel 1 is A = -1: the objective, the unclipped ρA (dotted grey) and the gradient (dashed
    black) over ``points`` ratios from 0.01 to ``max_ratio``; grey verticals at 1 ± ε; the flat region shaded."""
    fig = widgets.plot_clip_objective(clip_eps=0.25, max_ratio=2.0, points=200)
    ratios = np.linspace(0.01, 2.0, 200)
    for ax, advantage, colour, loc in zip(fig.axes, (1.0, -1.0), ("tab:green", "tab:red"), ("upper left",
                                                                                            "lower left")):
        objective, unclipped, gradient, low, high = ax.lines
        np.testing.assert_allclose(_xy(objective)[0], ratios)
        expected = np.minimum(ratios * advantage, np.clip(ratios, 0.75, 1.25) * advantage)
        np.testing.assert_allclose(_xy(objective)[1], expected, rtol=1e-9)
        assert objective.get_color() == colour
        np.testing.assert_allclose(_xy(unclipped)[1], ratios * advantage)
        assert unclipped.get_linestyle() == ":"
        slope = np.where(ratios * advantage < np.clip(ratios, 0.75, 1.25) * advantage, advantage, 0.0)
        slope[(ratios > 0.75) & (ratios < 1.25)] = advantage
        kink = np.isclose(ratios, 0.75) | np.isclose(ratios, 1.25)
        np.testing.assert_allclose(_xy(gradient)[1][~kink], slope[~kink])
        assert gradient.get_linestyle() == "--" and gradient.get_color() == "black"
        assert set(_xy(low)[0]) == {0.75} and set(_xy(high)[0]) == {1.25}
        assert ax.get_ylim() == pytest.approx((-2.7, 2.7))
        assert ax.get_title() == f"A = {advantage:+.0f}, ε = 0.25"
        assert ax.get_xlabel() == "ratio ρ = π_new / π_old"
        assert ax.get_legend()._loc == matplotlib.legend.Legend.codes[loc]
        shaded = np.concatenate([p.vertices[:, 0] for p in ax.collections[0].get_paths()])
        flat_ratios = ratios[(slope == 0) & ~kink]
        assert shaded.min() == pytest.approx(flat_ratios.min()) and shaded.max() == pytest.approx(flat_ratios.max())
        spans = _band(ax.collections[0])
        assert all(span == (-3.0, 3.0) for span in spans.values())
        key = "positive" if advantage > 0 else "negative"
        np.testing.assert_array_equal(fig.course_data[key]["flat"], np.abs(fig.course_data[key]["gradient"]) < 1e-12)
    assert fig.course_data["clip_eps"] == 0.25
    np.testing.assert_allclose(fig.course_data["ratios"], ratios)
    assert fig.course_data["positive"]["flat"].sum() == ((ratios > 1.25).sum())
    assert fig.course_data["negative"]["flat"].sum() == ((ratios < 0.75).sum())


@pytest.mark.parametrize("clip_eps", [0.0, -0.1])
def test_the_clip_figure_rejects_a_non_positive_epsilon_naming_it(clip_eps):
    with pytest.raises(ValueError, match=r"clip_eps=.*invalid: expected > 0"):
        widgets.plot_clip_objective(clip_eps=clip_eps)


def test_the_clip_figure_defaults_and_a_tiny_epsilon():
    """Defaults: ε = 0.2, 251 ratios from 0.01 to 2.5; a tiny positive ε is accepted."""
    data = widgets.plot_clip_objective().course_data
    assert data["clip_eps"] == 0.2 and len(data["ratios"]) == 251
    assert data["ratios"][0] == pytest.approx(0.01) and data["ratios"][-1] == pytest.approx(2.5)
    assert widgets.plot_clip_objective(clip_eps=1e-3, points=5).course_data["clip_eps"] == 1e-3


# -- plot_gaussian_policy ----------------------------------------------------------------------------------
def _normal_log_pdf(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


@pytest.mark.parametrize("mean, log_std", [(0.0, 0.0), (1.5, -1.0), (-2.0, 0.5), (0.0, -2.0)])
def test_the_gaussian_policy_draws_its_density_over_a_range_of_four_stds_and_the_unit_range(mean, log_std):
    """The density line is N(mean, e^log_std) at x from mean - 4 max(σ, 0.25) to mean + 4 max(σ, 0.25) (400 points),
    joined with x = -4 and x = 4, sorted; the log-prob of the action and the entropy are the textbook formulas."""
    std = math.exp(log_std)
    fig = widgets.plot_gaussian_policy(mean=mean, log_std=log_std, action=0.5, num_samples=50)
    ax = fig.axes[0]
    xs, ys = _xy(ax.lines[0])
    half = 4 * max(std, 0.25)
    expected_xs = np.union1d(np.linspace(mean - half, mean + half, 400), [-4.0, 4.0])
    np.testing.assert_allclose(xs, expected_xs)
    assert (np.diff(xs) > 0).all() and -4.0 in xs and 4.0 in xs
    np.testing.assert_allclose(ys, [math.exp(_normal_log_pdf(x, mean, std)) for x in xs], rtol=1e-4, atol=1e-7)
    data = fig.course_data
    assert data["log_prob"] == pytest.approx(_normal_log_pdf(0.5, mean, std), rel=1e-5)
    assert data["entropy"] == pytest.approx(log_std + 0.5 * math.log(2 * math.pi * math.e), rel=1e-5)
    assert ax.lines[0].get_label() == f"density N(μ={mean:.2f}, σ={std:.2f})"
    assert ax.get_title() == f"entropy H = log σ + ½ log 2πe = {data['entropy']:.2f} nats"


def test_the_gaussian_policy_samples_are_seeded_draws_and_the_action_is_marked():
    """``num_samples`` draws mean + σ z (z from torch's generator seeded with ``seed``) in a 30-bin density
    histogram; a dashed red vertical at the action, labelled with its log-prob."""
    fig = widgets.plot_gaussian_policy(mean=1.0, log_std=math.log(2.0), action=-0.5, num_samples=7, seed=3)
    z = torch.randn(7, generator=torch.Generator().manual_seed(3)).numpy()
    np.testing.assert_allclose(fig.course_data["samples"], 1.0 + 2.0 * z, rtol=1e-6)
    ax = fig.axes[0]
    assert len(ax.patches) == 30
    widths = [p.get_width() for p in ax.patches]
    assert sum(p.get_height() * w for p, w in zip(ax.patches, widths)) == pytest.approx(1.0)
    action_line = ax.lines[1]
    assert set(_xy(action_line)[0]) == {-0.5} and action_line.get_linestyle() == "--"
    log_prob = _normal_log_pdf(-0.5, 1.0, 2.0)
    assert action_line.get_label() == f"action a=-0.50: log π(a) = {log_prob:.2f}"
    assert _legend_texts(ax) == ["density N(μ=1.00, σ=2.00)", "7 sampled actions",
                                 "action a=-0.50: log π(a) = " + f"{log_prob:.2f}"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("action", "density")
    again = widgets.plot_gaussian_policy(mean=1.0, log_std=math.log(2.0), num_samples=7, seed=3)
    np.testing.assert_array_equal(again.course_data["samples"], fig.course_data["samples"])
    assert not np.array_equal(widgets.plot_gaussian_policy(num_samples=7, seed=4).course_data["samples"],
                              widgets.plot_gaussian_policy(num_samples=7, seed=3).course_data["samples"])


def test_the_gaussian_policy_defaults():
    """Defaults: N(0, 1), action 1, 200 samples; course data keeps the inputs."""
    data = widgets.plot_gaussian_policy().course_data
    assert (data["mean"], data["log_std"], data["action"]) == (0.0, 0.0, 1.0)
    assert len(data["samples"]) == 200
    assert data["log_prob"] == pytest.approx(_normal_log_pdf(1.0, 0.0, 1.0), rel=1e-6)


# -- the explorers: sliders -> the plotting function ------------------------------------------------------
@pytest.fixture
def fast_png(monkeypatch):
    """The explorers' PNG step replaced by a stand-in that records which figure it was given."""
    drawn = []

    def png(fig, dpi=80):
        drawn.append(fig)
        return b"\x89PNG" + str(len(drawn)).encode()

    monkeypatch.setattr(widgets, "figure_png", png)
    return drawn


def _slider_spec(slider):
    return (slider.value, slider.min, slider.max, slider.step, slider.readout_format, slider.continuous_update)


def test_an_explorer_draws_its_function_with_the_slider_values_and_the_fixed_arguments(fast_png):
    """At creation and after every slider move: ``plot(**sliders, **fixed)``, its course data kept, its PNG shown,
    the redraw counted."""
    calls = []

    def plot(a, b, c):
        calls.append((a, b, c))
        fig = widgets.CourseFigure()
        fig.course_data = {"sum": a + b + c}
        return fig

    explorer = widgets.Explorer(plot, {"a": widgets._slider("a", 1.0, 0.0, 5.0, 0.5),
                                       "b": widgets._slider("b", 2.0, 0.0, 5.0, 0.5)}, c=10.0)
    assert calls == [(1.0, 2.0, 10.0)] and explorer.redraws == 1 and explorer.data == {"sum": 13.0}
    assert explorer.image.value == b"\x89PNG1" and explorer.image.format == "png"
    explorer.sliders["b"].value = 3.5
    assert calls[-1] == (1.0, 3.5, 10.0) and explorer.redraws == 2 and explorer.data == {"sum": 14.5}
    assert explorer.image.value == b"\x89PNG2"
    assert list(explorer.children[0].children) == list(explorer.sliders.values())
    assert explorer.children[1] is explorer.image


def test_a_slider_is_a_float_slider_that_redraws_on_release():
    slider = widgets._slider("x", 0.3, 0.1, 0.9, 0.05)
    assert _slider_spec(slider) == (0.3, 0.1, 0.9, 0.05, ".2f", False)
    assert slider.description == "x" and slider.style.description_width == "initial"
    assert widgets._slider("y", 0.5, 0.0, 1.0, 0.1, ".3f").readout_format == ".3f"


def test_the_discount_explorer_slides_gamma_from_a_half_to_0_999(fast_png):
    """One slider (0.5..0.999, step 0.001, 3 decimals) drives :func:`plot_discounting`, with the given rewards."""
    explorer = widgets.discount_explorer(gamma=0.9, rewards=np.array([1.0, 1.0]))
    assert list(explorer.sliders) == ["gamma"]
    assert _slider_spec(explorer.sliders["gamma"]) == (0.9, 0.5, 0.999, 0.001, ".3f", False)
    assert explorer.data["gamma"] == 0.9
    np.testing.assert_allclose(explorer.data["returns"], [1.9, 1.0])
    explorer.sliders["gamma"].value = 0.5
    np.testing.assert_allclose(explorer.data["returns"], [1.5, 1.0])
    assert explorer.redraws == 2


def test_the_gae_explorer_slides_gamma_and_lambda_and_passes_the_learners_function(fast_png):
    explorer = widgets.gae_explorer(gamma=0.95, lam=0.9, your_compute_gae=_raise(NotImplementedError()))
    assert list(explorer.sliders) == ["gamma", "lam"]
    assert _slider_spec(explorer.sliders["gamma"]) == (0.95, 0.5, 1.0, 0.005, ".3f", False)
    assert _slider_spec(explorer.sliders["lam"]) == (0.9, 0.0, 1.0, 0.01, ".2f", False)
    assert (explorer.data["gamma"], explorer.data["lam"]) == (0.95, 0.9)
    assert explorer.data["yours_note"] == "your compute_gae: not implemented yet"
    explorer.sliders["lam"].value = 0.0
    np.testing.assert_allclose(explorer.data["advantages"], explorer.data["td_errors"])


def test_the_clip_and_gaussian_explorers_slide_their_parameters(fast_png):
    clip = widgets.clip_explorer(clip_eps=0.3)
    assert list(clip.sliders) == ["clip_eps"]
    assert _slider_spec(clip.sliders["clip_eps"]) == (0.3, 0.05, 0.8, 0.05, ".2f", False)
    assert clip.data["clip_eps"] == 0.3
    gaussian = widgets.gaussian_explorer(mean=0.5, log_std=-1.0, action=2.0)
    assert list(gaussian.sliders) == ["mean", "log_std", "action"]
    assert _slider_spec(gaussian.sliders["mean"]) == (0.5, -2.0, 2.0, 0.1, ".2f", False)
    assert _slider_spec(gaussian.sliders["log_std"]) == (-1.0, -2.0, 1.0, 0.1, ".2f", False)
    assert _slider_spec(gaussian.sliders["action"]) == (2.0, -3.0, 3.0, 0.1, ".2f", False)
    assert (gaussian.data["mean"], gaussian.data["log_std"], gaussian.data["action"]) == (0.5, -1.0, 2.0)
    gaussian.sliders["log_std"].value = 0.5
    assert gaussian.data["entropy"] == pytest.approx(0.5 + 0.5 * math.log(2 * math.pi * math.e), rel=1e-5)


def test_the_sample_episode_is_two_hundred_rewards_of_one():
    assert widgets.SAMPLE_EPISODE_REWARDS.shape == (200,) and (widgets.SAMPLE_EPISODE_REWARDS == 1).all()


# -- the playground, with training and the GIF replaced ---------------------------------------------------
@pytest.fixture
def playground_calls(monkeypatch):
    calls = {"train": [], "gif": [], "shown": []}

    def train(algo, env_id, **kwargs):
        calls["train"].append((algo, env_id, kwargs))
        if kwargs.get("reject"):
            raise ConfigError("reinforce needs episodes that end")
        if kwargs.get("crash"):
            raise RuntimeError("boom")
        return SimpleNamespace(algo=algo)

    def rollout_gif(run, env_id, path, **kwargs):
        calls["gif"].append((run, env_id, Path(path), kwargs))
        return Path(path)

    monkeypatch.setattr(widgets.api, "train", train)
    monkeypatch.setattr(widgets.render, "rollout_gif", rollout_gif)
    monkeypatch.setattr(widgets.render, "show_gif", lambda path: ("gif", path))
    monkeypatch.setattr(widgets, "display_if_notebook", lambda *objects: calls["shown"].append(objects))
    return calls


def test_the_playground_offers_four_algorithms_three_envs_and_bounded_settings():
    """Dropdowns of the algorithms and envs (the given ones selected); total_steps 1,000..200,000 in steps of 1,000;
    lr on a log scale 1e-5..1e-2; seed 0..9."""
    playground = widgets.Playground(algo="a2c", env_id="Acrobot-v1", total_steps=5_000, lr=1e-3, seed=4)
    assert playground.algo.options == ("reinforce", "reinforce_baseline", "a2c", "ppo")
    assert playground.env.options == ("CartPole-v1", "Acrobot-v1", "Pendulum-v1")
    assert (playground.algo.value, playground.env.value) == ("a2c", "Acrobot-v1")
    steps = playground.total_steps
    assert (steps.value, steps.min, steps.max, steps.step) == (5_000, 1_000, 200_000, 1_000)
    assert (playground.lr.value, playground.lr.base, playground.lr.min, playground.lr.max) == pytest.approx(
        (1e-3, 10, -5, -2))
    assert playground.lr.readout_format == ".1e"
    assert (playground.seed.value, playground.seed.min, playground.seed.max) == (4, 0, 9)
    assert playground.run is None and playground.gif_path is None and playground.error is None
    default = widgets.Playground()
    assert (default.algo.value, default.env.value, default.total_steps.value, default.seed.value) == (
        "ppo", "CartPole-v1", 20_000, 0)
    assert default.lr.value == pytest.approx(3e-4)


def test_training_from_the_playground_passes_the_widgets_values_and_writes_the_gif_in_gif_dir(playground_calls,
                                                                                             tmp_path):
    """Train: ``pg.train(algo, env, seed, total_steps (int), lr (float), live view, progress=False, **train_kwargs)``
    (a train_kwargs progress wins), then a GIF ``<algo>-<env>-seed<seed>.gif`` in ``gif_dir`` (every 3rd frame, 320
    px), shown in the output; the button is enabled again afterwards."""
    playground = widgets.Playground(algo="ppo", env_id="Pendulum-v1", total_steps=3_000, lr=1e-4, seed=2,
                                    gif_dir=tmp_path / "gifs", num_envs=2, progress=True)
    playground.train_button.click()
    ((algo, env_id, kwargs),) = playground_calls["train"]
    assert (algo, env_id) == ("ppo", "Pendulum-v1")
    assert kwargs["seed"] == 2 and kwargs["total_steps"] == 3_000 and isinstance(kwargs["total_steps"], int)
    assert kwargs["lr"] == pytest.approx(1e-4) and isinstance(kwargs["lr"], float)
    assert kwargs["num_envs"] == 2 and kwargs["progress"] is True
    view = kwargs["live"]
    assert view.title == "ppo on Pendulum-v1 (seed 2, lr 1.0e-04)" and view.target is playground.output
    ((run, gif_env, path, gif_kwargs),) = playground_calls["gif"]
    assert run is playground.run and gif_env == "Pendulum-v1"
    assert path == tmp_path / "gifs" / "ppo-Pendulum-v1-seed2.gif" == playground.gif_path
    assert gif_kwargs == {"seed": 2, "frame_skip": 3, "max_width": 320}
    assert playground_calls["shown"] == [(("gif", path),)]
    assert playground.error is None and playground.train_button.disabled is False


def test_the_playground_trains_without_progress_bars_by_default_and_makes_a_temporary_gif_folder(
        playground_calls, monkeypatch, tmp_path):
    made = []
    monkeypatch.setattr(widgets.tempfile, "mkdtemp", lambda prefix: made.append(prefix) or str(tmp_path / "t"))
    playground = widgets.Playground(algo="reinforce", seed=9)
    playground.train_button.click()
    assert playground_calls["train"][0][2]["progress"] is False
    assert made == ["pgcourse-playground-"]
    assert playground.gif_path == tmp_path / "t" / "reinforce-CartPole-v1-seed9.gif"
    playground.train_button.click()  # the folder is made once
    assert made == ["pgcourse-playground-"]


def test_a_rejected_setting_is_reported_in_the_playground_not_raised(playground_calls, tmp_path):
    """A ConfigError: ``playground.error`` is its message, the output says it cannot train, no GIF; the button is
    enabled again, and a later good run clears the error."""
    playground = widgets.Playground(algo="reinforce", env_id="Pendulum-v1", gif_dir=tmp_path, reject=True)
    playground.gif_path = None
    playground.train_button.click()
    assert playground.error == "reinforce needs episodes that end"
    assert playground_calls["gif"] == [] and playground.gif_path is None
    (shown,) = playground_calls["shown"]
    assert "Cannot train this combination:" in shown[0].value and "reinforce needs episodes that end" in shown[0].value
    assert playground.train_button.disabled is False
    playground.train_kwargs = {}
    playground.train_button.click()
    assert playground.error is None and playground.gif_path is not None


def test_a_crash_in_training_is_raised_but_the_button_comes_back(playground_calls, tmp_path):
    playground = widgets.Playground(gif_dir=tmp_path, crash=True)
    with pytest.raises(RuntimeError, match="boom"):
        playground._train()
    assert playground.train_button.disabled is False and playground.error is None


# ================================================================================================ render
class _FakeEnv(gym.Env):
    """An env whose episode lasts ``length`` steps (terminated, or truncated when ``truncate``), reward = the step's
    action + 1, and whose frame after step k is a ``height x width`` image filled with k."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, length=5, truncate=False, height=4, width=6, blank=False, max_episode_steps=None):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = gym.spaces.Discrete(3)
        self.length, self.truncate, self.height, self.width, self.blank = length, truncate, height, width, blank
        self.spec = None if max_episode_steps is None else SimpleNamespace(max_episode_steps=max_episode_steps)
        self.t, self.actions, self.closed, self.reset_seed = 0, [], False, None

    def reset(self, *, seed=None, options=None):
        self.t, self.reset_seed = 0, seed
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        self.actions.append(int(action))
        ended = self.t >= self.length
        return np.full(2, self.t, np.float32), float(action) + 1.0, ended and not self.truncate, \
            ended and self.truncate, {}

    def render(self):
        if self.blank:
            return None
        return np.full((self.height, self.width, 3), self.t % 256, dtype=np.uint8)

    def close(self):
        self.closed = True


@pytest.fixture
def fake_env(monkeypatch):
    made = []

    def make(env_id, env_kwargs=None, render_mode=None, **settings):
        assert render_mode == "rgb_array"
        env = _FakeEnv(**{**made_settings, **settings})
        made.append((env_id, env_kwargs, env))
        return env

    made_settings: dict = {}
    monkeypatch.setattr(render, "make_env", make)
    return SimpleNamespace(made=made, settings=made_settings)


def _frame_ids(frames):
    return [int(frame[0, 0, 0]) for frame in frames]


@pytest.mark.parametrize("length, skip, kept", [
    (5, 1, [0, 1, 2, 3, 4, 5]), (5, 2, [0, 2, 4, 5]), (6, 2, [0, 2, 4, 6]), (5, 5, [0, 5]), (5, 10, [0, 5]),
    (1, 3, [0, 1]),
])
def test_rollout_frames_keep_the_first_every_skipth_and_the_last_frame(fake_env, length, skip, kept):
    """The reset frame, then the frame after every ``frame_skip``-th step, and the frame of the step that ends the
    episode (once, also when it is a multiple); the return is the sum of the rewards."""
    fake_env.settings.update(length=length)
    frames, episode_return = render.rollout_frames(lambda obs: 1, "Fake-v0", frame_skip=skip)
    assert _frame_ids(frames) == kept
    assert episode_return == 2.0 * length


def test_a_truncated_episode_ends_the_rollout_like_a_terminated_one(fake_env):
    fake_env.settings.update(length=3, truncate=True)
    frames, episode_return = render.rollout_frames(lambda obs: 0, "Fake-v0", frame_skip=2)
    assert _frame_ids(frames) == [0, 2, 3] and episode_return == 3.0
    assert fake_env.made[0][2].closed


@pytest.mark.parametrize("max_steps, spec_limit, steps", [(4, None, 4), (None, 7, 7), (None, None, 1000),
                                                          (3, 7, 3), (None, 0, 1000)])
def test_an_episode_that_does_not_end_stops_at_max_steps_or_the_specs_limit_or_1000(fake_env, max_steps, spec_limit,
                                                                                    steps):
    """The limit is ``max_steps`` if given, else the env spec's ``max_episode_steps`` (when set and not 0), else
    1000; the last step's frame is kept only when it falls on the skip."""
    fake_env.settings.update(length=10_000, max_episode_steps=spec_limit, height=1, width=1)
    frames, episode_return = render.rollout_frames(lambda obs: 0, "Fake-v0", frame_skip=1, max_steps=max_steps)
    assert len(frames) == steps + 1 and episode_return == float(steps)


def test_rollout_frames_seed_the_env_and_its_action_space_and_a_random_agent_samples_it(fake_env):
    """No agent: actions are the action space's samples, seeded with ``seed`` (the same seed, the same actions);
    the env is reset with ``seed`` and closed."""
    fake_env.settings.update(length=20)
    render.rollout_frames(None, "Fake-v0", seed=5)
    render.rollout_frames(None, "Fake-v0", seed=5)
    render.rollout_frames(None, "Fake-v0", seed=6)
    (_, _, a), (_, _, b), (_, _, c) = fake_env.made
    assert a.reset_seed == 5 and c.reset_seed == 6
    assert a.actions == b.actions and a.actions != c.actions
    space = gym.spaces.Discrete(3)
    space.seed(5)
    assert a.actions == [int(space.sample()) for _ in range(20)]
    assert a.closed and b.closed and c.closed


def test_a_policy_function_samples_seeded_only_when_asked_to_sample(fake_env):
    """A function agent is greedy unless ``deterministic=False``: then its torch draws come from the generator
    seeded with ``seed`` (two rollouts draw the same), otherwise from the ongoing one (they differ)."""
    fake_env.settings.update(length=3)

    def draws(deterministic):
        drawn = []
        render.rollout_frames(lambda obs: drawn.append(float(torch.rand(1))) or 0, "Fake-v0", seed=7,
                              deterministic=deterministic)
        return drawn

    with torch.random.fork_rng():
        torch.manual_seed(123)
        assert draws(False) == draws(False)
        assert draws(None) != draws(None)
        assert draws(True) != draws(True)
        seeded = draws(False)
        torch.manual_seed(7)
        assert seeded == [float(torch.rand(1)) for _ in range(3)]


def test_rollout_frames_resize_wide_frames_and_keep_narrow_ones(fake_env):
    fake_env.settings.update(length=1, height=10, width=40)
    frames, _ = render.rollout_frames(lambda obs: 0, "Fake-v0", max_width=20)
    assert [f.shape for f in frames] == [(5, 20, 3), (5, 20, 3)]
    frames, _ = render.rollout_frames(lambda obs: 0, "Fake-v0", max_width=40)
    assert [f.shape for f in frames] == [(10, 40, 3), (10, 40, 3)]


def test_rollout_frames_refuse_an_env_that_renders_nothing_and_close_it(fake_env):
    fake_env.settings.update(blank=True)
    with pytest.raises(ValueError, match=r"Fake-v0 rendered no frame with render_mode='rgb_array'"):
        render.rollout_frames(None, "Fake-v0")
    assert fake_env.made[0][2].closed


@pytest.mark.parametrize("frame_skip", [0, -1])
def test_rollout_frames_refuse_a_frame_skip_below_one(frame_skip):
    with pytest.raises(ValueError, match=r"frame_skip=.*invalid: expected an integer >= 1"):
        render.rollout_frames(None, "CartPole-v1", frame_skip=frame_skip)


def test_rollout_frames_and_gifs_need_an_env_unless_the_agent_is_a_run():
    with pytest.raises(ValueError, match="env_id is required unless agent is a Run"):
        render.rollout_frames(lambda obs: 0)
    with pytest.raises(ValueError, match="env_id is required unless agent is a Run"):
        render.rollout_gif(None)


class _FakeRun(Run):
    """A Run without networks: acts with ``action`` and records what it was asked."""

    def __init__(self, eval_mode="greedy", env_id="Fake-v0", algo="ppo"):
        self.config = SimpleNamespace(algo=algo, env_id=env_id, env_kwargs={}, eval_mode=eval_mode)
        self.device = torch.device("cpu")
        self.asked = []

    def act(self, observations, deterministic=False):
        self.asked.append((observations.shape, deterministic))
        return np.array([2])


@pytest.mark.parametrize("eval_mode, deterministic, greedy", [("greedy", None, True), ("sample", None, False),
                                                              ("sample", True, True), ("greedy", False, False)])
def test_a_run_plays_its_own_env_acting_on_a_batch_of_one_greedily_as_its_mode_says(fake_env, monkeypatch,
                                                                                   eval_mode, deterministic, greedy):
    """A Run plays the env it was trained on (checked against its spaces), acts on ``obs[None]`` and its first
    action is taken; greedy as ``deterministic`` says, else as its ``eval_mode``."""
    checked = []
    monkeypatch.setattr(render, "check_playable", lambda run, env_id, kwargs, obs, act: checked.append(env_id))
    fake_env.settings.update(length=2)
    run = _FakeRun(eval_mode=eval_mode)
    frames, episode_return = render.rollout_frames(run, deterministic=deterministic)
    assert fake_env.made[0][0] == "Fake-v0" and checked == ["Fake-v0"]
    assert run.asked == [((1, 2), greedy)] * 2
    assert fake_env.made[0][2].actions == [2, 2] and episode_return == 6.0


def test_a_saved_runs_folder_is_loaded_as_the_agent(monkeypatch, tmp_path):
    """A str or path agent is a saved run's folder (loaded); anything else is kept as it is."""
    loaded = []
    monkeypatch.setattr(render, "as_run", lambda path: loaded.append(path) or "the run")
    assert render._as_agent(str(tmp_path)) == "the run" and render._as_agent(tmp_path) == "the run"
    assert loaded == [str(tmp_path), tmp_path]
    policy = lambda obs: 0  # noqa: E731
    assert render._as_agent(policy) is policy and render._as_agent(None) is None


def test_a_policy_function_gets_the_raw_observation():
    env = _FakeEnv()
    seen = []
    obs = np.array([0.5, -0.5], np.float32)
    assert render._act(lambda o: seen.append(o) or 1, env, obs, True) == 1
    assert seen[0] is obs


@pytest.mark.parametrize("width, max_width, shape", [(40, 40, (10, 40, 3)), (40, 41, (10, 40, 3)),
                                                     (40, 39, (10, 39, 3)), (40, 20, (5, 20, 3)), (40, 12, (3, 12, 3)),
                                                     (40, 14, (4, 14, 3))])
def test_resize_keeps_frames_up_to_max_width_and_scales_wider_ones_keeping_the_aspect(width, max_width, shape):
    """Width <= max_width: the same array; wider: max_width wide, height rounded to keep the aspect ratio."""
    frame = np.zeros((10, width, 3), np.uint8)
    out = render._resize(frame, max_width)
    assert out.shape == shape
    if max_width >= width:
        assert out is frame


def _gif_frames(path):
    with Image.open(path) as image:
        frames, durations = [], []
        for i in range(image.n_frames):
            image.seek(i)
            frames.append(np.asarray(image.convert("RGB")))
            durations.append(image.info.get("duration"))
        return frames, durations, image.info.get("loop")


def test_a_gif_holds_every_frame_at_the_given_rate_and_loops_forever(tmp_path):
    """``write_gif``: one GIF frame per frame (parent folders made), each shown 1000 / fps ms, looping forever."""
    frames = [np.full((4, 6, 3), v, np.uint8) for v in (0, 100, 200)]
    path = render.write_gif(frames, tmp_path / "a" / "b.gif", fps=10.0)
    assert path == tmp_path / "a" / "b.gif" and path.exists()
    read, durations, loop = _gif_frames(path)
    assert len(read) == 3 and read[0].shape == (4, 6, 3)
    assert [int(f[0, 0, 0]) for f in read] == [0, 100, 200]
    assert durations == [100, 100, 100] and loop == 0
    path = render.write_gif(frames, tmp_path / "c.gif")
    assert _gif_frames(path)[1][0] == 40  # 25 fps


def test_a_gif_of_no_frames_is_refused():
    with pytest.raises(ValueError, match="no frames to write"):
        render.write_gif([], "never.gif")


def _lean_controller(obs):
    return int(obs[2] + obs[3] > 0)


@pytest.mark.parametrize("agent, ret, caption", [
    (_FakeRun(algo="a2c"), 500.0, "a2c on CartPole-v1: return 500"),
    (None, 12.4, "random agent on CartPole-v1: return 12"),
    (lambda obs: 0, -0.6, "policy on CartPole-v1: return -1"),
    (None, 499.6, "random agent on CartPole-v1: return 500"),
    (_lean_controller, 500.0, "lean controller on CartPole-v1: return 500"),  # a named function: its name
])
def test_the_default_caption_names_who_played_where_and_the_rounded_return(agent, ret, caption):
    assert render.default_caption(agent, "CartPole-v1", ret) == caption


def _ink(strip):
    return np.argwhere(strip.min(axis=2) < 128)


def test_a_caption_adds_a_white_strip_with_the_words_in_black_below_the_frame():
    """The frame on top, unchanged (RGB of an RGBA frame), then a 22 px white strip with the text starting 6 px in
    and 4 px down; no text leaves the strip white."""
    frame = np.zeros((8, 120, 4), np.uint8)
    frame[..., 0] = 50
    frame[..., 3] = 255
    out = render._caption(frame, "ppo on")
    assert out.shape == (8 + 22, 120, 3)
    np.testing.assert_array_equal(out[:8], frame[..., :3])
    ink = _ink(out[8:])
    assert ink.size
    assert ink[:, 1].min() >= 6 and ink[:, 0].min() >= 4
    assert render._caption(frame, "", height=10).shape == (18, 120, 3)
    assert (render._caption(frame, "")[8:] == 255).all()


def test_a_captions_text_starts_six_pixels_in_and_four_down_in_the_strip():
    """The first word is drawn at (6, frame height + 4): a capital's ink starts within a few pixels of that point."""
    frame = np.zeros((4, 100, 3), np.uint8)
    ink = _ink(render._caption(frame, "A")[4:])
    assert 4 <= ink[:, 0].min() < 9 and 6 <= ink[:, 1].min() < 9
    assert ink[:, 0].max() < 22


def test_a_caption_leaves_a_visible_gap_between_words():
    """Each word is placed after the previous one's width plus a third of the font size (4 px): "ppo on" has a
    blank gap of at least 4 columns between its words, wider than "ppoon" has anywhere."""
    frame = np.zeros((4, 200, 3), np.uint8)

    def widest_gap(text):
        columns = np.unique(_ink(render._caption(frame, text)[4:])[:, 1])
        return int(np.diff(columns).max()) - 1

    assert widest_gap("ppo on") >= 4
    assert widest_gap("ppo on") > widest_gap("ppoon")


@pytest.fixture
def fake_frames(monkeypatch):
    """``rollout_frames`` replaced: agent i's episode is ``lengths[i]`` frames of value 10 (i + 1) + t, returning
    its stored return."""
    calls = []
    episodes = {}

    def frames(agent, env_id=None, **kwargs):
        calls.append((agent, env_id, kwargs))
        length, ret, height, width = episodes[agent]
        return [np.full((height, width, 3), min(10 * (len(calls)) + t, 255), np.uint8) for t in range(length)], ret

    monkeypatch.setattr(render, "rollout_frames", frames)
    return SimpleNamespace(calls=calls, episodes=episodes)


def test_a_rollout_gif_captions_every_frame_with_the_default_caption_or_the_given_text(fake_frames, monkeypatch,
                                                                                       tmp_path):
    """``caption=True``: :func:`default_caption`; a string: that text; False: no strip. Settings pass through."""
    texts = []
    real = render._caption
    monkeypatch.setattr(render, "_caption", lambda frame, text: texts.append(text) or real(frame, text))
    fake_frames.episodes[None] = (3, 41.7, 10, 30)
    path = render.rollout_gif(None, "CartPole-v1", tmp_path / "r.gif", seed=4, frame_skip=5, max_width=30, fps=5)
    assert texts == ["random agent on CartPole-v1: return 42"] * 3
    frames, durations, _ = _gif_frames(path)
    assert len(frames) == 3 and frames[0].shape == (32, 30, 3) and durations[0] == 200
    assert fake_frames.calls[0][2] == {"seed": 4, "deterministic": None, "frame_skip": 5, "max_width": 30,
                                       "env_kwargs": None}
    texts.clear()
    render.rollout_gif(None, "CartPole-v1", tmp_path / "s.gif", caption="hello")
    assert texts == ["hello"] * 3
    texts.clear()
    path = render.rollout_gif(None, "CartPole-v1", tmp_path / "t.gif", caption=False)
    assert texts == [] and _gif_frames(path)[0][0].shape == (10, 30, 3)


def test_a_rollout_gif_of_a_run_plays_its_own_env(fake_frames, tmp_path):
    run = _FakeRun(algo="trpo", env_id="Acrobot-v1")
    fake_frames.episodes[run] = (1, -80.0, 4, 8)
    render.rollout_gif(run, path=tmp_path / "r.gif")
    assert fake_frames.calls[0][1] == "Acrobot-v1" and fake_frames.calls[0][2]["env_kwargs"] == {}


def test_show_gif_embeds_the_files_bytes(tmp_path):
    path = render.write_gif([np.zeros((2, 2, 3), np.uint8)], tmp_path / "x.gif")
    shown = render.show_gif(path, width=120)
    assert shown.data == path.read_bytes() and shown.format == "gif" and shown.width == 120


def test_side_by_side_gifs_join_captioned_columns_with_white_separators_holding_the_shorter_episodes_end(
        fake_frames, tmp_path):
    """One column per agent, in order, 4 white columns between them (none after the last); each frame captioned
    ``<label>: return <R>``; a shorter episode repeats its last frame; a shorter frame is padded with white below."""
    fake_frames.episodes.update({"a": (3, 10.4, 6, 8), "b": (2, 99.5, 4, 5)})
    path = render.side_by_side_gif(["a", "b"], "CartPole-v1", tmp_path / "s.gif", labels=["left", "right"],
                                   seed=2, max_width=8)
    frames, durations, loop = _gif_frames(path)
    assert len(frames) == 3 and loop == 0 and durations[0] == 40
    assert frames[0].shape == (6 + 22, 8 + 4 + 5, 3)
    for frame in frames:
        assert (frame[:, 8:12] >= 250).all()  # the separator
        assert (frame[4:6, 12:] >= 250).all()  # the shorter frame's padding
    assert [int(frame[0, 0, 0]) for frame in frames] == [10, 11, 12]
    assert [int(frame[0, 12, 0]) for frame in frames] == [20, 21, 21]  # b's last frame, held
    assert [call[2]["seed"] for call in fake_frames.calls] == [2, 2]
    assert all(call[2]["frame_skip"] == 3 and call[2]["max_width"] == 8 for call in fake_frames.calls)


def test_side_by_side_gif_captions_with_labels_default_agent_numbers(fake_frames, monkeypatch, tmp_path):
    texts = []
    real = render._caption
    monkeypatch.setattr(render, "_caption", lambda frame, text: texts.append(text) or real(frame, text))
    fake_frames.episodes.update({"a": (1, 10.4, 4, 4), "b": (1, 99.5, 4, 4)})
    render.side_by_side_gif(["a", "b"], "CartPole-v1", tmp_path / "s.gif")
    assert texts == ["agent 0: return 10", "agent 1: return 100"]


@pytest.mark.parametrize("agents, labels, counts", [(["a"], ["x", "y"], "1 agents and 2 labels"),
                                                    (["a", "b"], ["x"], "2 agents and 1 labels"),
                                                    ([], None, "0 agents and 0 labels")])
def test_side_by_side_gif_needs_one_label_per_agent_and_an_agent(agents, labels, counts):
    with pytest.raises(ValueError, match=f"need one label per agent; got {counts}"):
        render.side_by_side_gif(agents, "CartPole-v1", labels=labels)


def test_a_side_by_side_gif_over_its_byte_limit_drops_every_other_frame_at_half_the_rate(fake_frames, tmp_path):
    """Larger than ``max_bytes``: every other frame is dropped (the first kept) and the GIF written again at a lower
    rate, until it fits or two frames are left: each halving of the frames halves the rate, so the GIF plays as long
    (9 frames at 20 fps, halved three times: 2 frames at 2.5 fps, 400 ms each)."""
    fake_frames.episodes["a"] = (9, 1.0, 8, 8)
    path = render.side_by_side_gif(["a"], "CartPole-v1", tmp_path / "s.gif", fps=20.0, max_bytes=1)
    frames, durations, _ = _gif_frames(path)
    assert [int(f[0, 0, 0]) for f in frames] == [10, 18]  # 9 frames -> 5 -> 3 -> 2
    assert durations == [400, 400], durations  # 20 fps halved three times
    fake_frames.calls.clear()
    fake_frames.episodes["b"] = (3, 1.0, 8, 8)
    path = render.side_by_side_gif(["b"], "CartPole-v1", tmp_path / "t.gif", fps=20.0)
    frames, durations, _ = _gif_frames(path)
    assert len(frames) == 3 and durations[0] == 50


def test_an_aggregate_band_no_run_reaches_is_drawn_and_labelled_with_no_runs():
    """A Band whose grid lies beyond every run (no run at any point) is still a legend entry: "0 runs", not a crash."""
    from pgcourse.course.stats import aggregate_curves
    band = aggregate_curves([[0, 10], [0, 10]], [[1, 2], [3, 4]], grid=[20.0, 30.0], reps=10)
    assert list(band.runs_at) == [0, 0]
    figure = plotting.plot_aggregate_curves({"a": band})
    labels = [text.get_text() for ax in figure.axes if ax.get_legend() for text in ax.get_legend().get_texts()]
    labels += [line.get_label() for ax in figure.axes for line in ax.lines]
    assert any("(" in label and "0 runs" in label for label in labels), labels
