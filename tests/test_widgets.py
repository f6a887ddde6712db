"""The lesson widgets without a kernel: pure plotting functions, explorer callbacks (set ``.value``),
the live training view, the playground (``.click()``) and side-by-side GIFs."""
from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

import pgcourse as pg
from pgcourse.rl import live
from pgcourse.course.views import widgets
from pgcourse.course.views.render import side_by_side_gif

from conftest import TINY_PPO_DISCRETE


# -- pure plotting functions ------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_plot_discounting_marks_the_effective_horizon_and_uses_discounted_returns(gamma):
    fig = widgets.plot_discounting(gamma)
    assert isinstance(fig, Figure)
    data = fig.course_data
    assert data["horizon"] == pytest.approx(1.0 / (1.0 - gamma))
    expected = pg.discounted_returns(torch.ones(200), gamma).numpy()
    np.testing.assert_allclose(data["returns"], expected, rtol=1e-6)
    assert f"{1.0 / (1.0 - gamma):.1f}" in fig.axes[0].get_title()


def test_plot_discounting_takes_a_custom_episode():
    data = widgets.plot_discounting(0.5, rewards=np.array([0.0, 0.0, 4.0])).course_data
    np.testing.assert_allclose(data["returns"], [1.0, 2.0, 4.0])
    with pytest.raises(ValueError, match="gamma"):
        widgets.plot_discounting(0.0)


def test_plot_gae_weights_blends_n_step_advantages_and_cuts_at_episode_ends():
    data = widgets.plot_gae_weights(gamma=0.9, lam=0.8, max_n=10).course_data
    np.testing.assert_allclose(data["weights"], 0.2 * 0.8 ** np.arange(10))
    assert data["weights"].sum() + data["tail"] == pytest.approx(1.0)
    rollout = widgets.sample_rollout()
    expected = pg.compute_gae(rollout["rewards"], rollout["values"], rollout["next_values"], rollout["terminated"],
                              rollout["truncated"], 0.9, 0.8)[:, 0].numpy()
    np.testing.assert_allclose(data["advantages"], expected)
    # lambda = 0: GAE is the one-step TD error; at the terminated step there is no bootstrap
    zero = widgets.plot_gae_weights(gamma=0.9, lam=0.0).course_data
    np.testing.assert_allclose(zero["advantages"], zero["td_errors"])
    end_at = int(rollout["terminated"][:, 0].argmax())
    assert zero["advantages"][end_at] == pytest.approx(1.0 - float(rollout["values"][end_at, 0]))


@pytest.mark.parametrize("clip_eps", [0.1, 0.2, 0.5])
def test_plot_clip_objective_has_zero_gradient_exactly_in_the_flat_regions(clip_eps):
    data = widgets.plot_clip_objective(clip_eps).course_data
    ratios = data["ratios"]
    positive, negative = data["positive"], data["negative"]
    away = np.abs(ratios - (1 + clip_eps)) > 1e-6
    np.testing.assert_array_equal(positive["flat"][away], (ratios > 1 + clip_eps)[away])
    away = np.abs(ratios - (1 - clip_eps)) > 1e-6
    np.testing.assert_array_equal(negative["flat"][away], (ratios < 1 - clip_eps)[away])
    np.testing.assert_allclose(positive["objective"], np.minimum(ratios, np.clip(ratios, 1 - clip_eps, 1 + clip_eps)))
    np.testing.assert_allclose(negative["objective"], np.minimum(-ratios, -np.clip(ratios, 1 - clip_eps, 1 + clip_eps)))
    inside = (ratios > 1 - clip_eps + 1e-6) & (ratios < 1 + clip_eps - 1e-6)
    np.testing.assert_allclose(positive["gradient"][inside], 1.0)
    np.testing.assert_allclose(negative["gradient"][inside], -1.0)


def test_plot_gaussian_policy_reports_log_prob_and_entropy():
    data = widgets.plot_gaussian_policy(mean=0.5, log_std=np.log(2.0), action=1.5).course_data
    sigma = 2.0
    assert data["log_prob"] == pytest.approx(-0.5 * (1.0 / sigma) ** 2 - np.log(sigma) - 0.5 * np.log(2 * np.pi),
                                             rel=1e-5)
    assert data["entropy"] == pytest.approx(np.log(sigma) + 0.5 * np.log(2 * np.pi * np.e), rel=1e-5)
    assert abs(data["samples"].mean() - 0.5) < 0.5 and abs(data["samples"].std() - sigma) < 0.5
    assert np.trapezoid(data["density"], data["xs"]) == pytest.approx(1.0, abs=1e-3)


# -- explorers: set a slider's value, the figure follows ----------------------------------------
def test_discount_explorer_redraws_when_gamma_moves():
    explorer = widgets.discount_explorer()
    before, png_before = explorer.data["horizon"], explorer.image.value
    assert before == pytest.approx(100.0)
    explorer.sliders["gamma"].value = 0.9
    assert explorer.data["horizon"] == pytest.approx(10.0)
    assert explorer.redraws == 2
    assert explorer.image.value != png_before and explorer.image.value[:4] == b"\x89PNG"


def test_gae_explorer_sliders_drive_gamma_and_lambda():
    explorer = widgets.gae_explorer()
    explorer.sliders["lam"].value = 1.0
    assert explorer.data["lam"] == 1.0 and explorer.data["tail"] == pytest.approx(1.0)
    explorer.sliders["lam"].value = 0.0
    np.testing.assert_allclose(explorer.data["advantages"], explorer.data["td_errors"])
    explorer.sliders["gamma"].value = 0.5
    assert explorer.data["gamma"] == 0.5


def test_clip_explorer_moves_the_flat_region_with_epsilon():
    explorer = widgets.clip_explorer()
    ratios = explorer.data["ratios"]
    first_flat = ratios[explorer.data["positive"]["flat"]].min()
    explorer.sliders["clip_eps"].value = 0.5
    assert ratios[explorer.data["positive"]["flat"]].min() > first_flat + 0.25


def test_gaussian_explorer_entropy_follows_log_std():
    explorer = widgets.gaussian_explorer()
    entropy = explorer.data["entropy"]
    explorer.sliders["log_std"].value = 0.5
    assert explorer.data["entropy"] == pytest.approx(entropy + 0.5, rel=1e-5)
    explorer.sliders["action"].value = 0.0
    explorer.sliders["mean"].value = 0.0
    assert explorer.data["log_prob"] == pytest.approx(-0.5 - 0.5 * np.log(2 * np.pi), rel=1e-5)


def test_explorers_do_not_leak_pyplot_figures():
    import matplotlib.pyplot as plt

    open_before = len(plt.get_fignums())
    explorer = widgets.clip_explorer()
    for value in (0.1, 0.3, 0.4):
        explorer.sliders["clip_eps"].value = value
    assert len(plt.get_fignums()) == open_before


# -- live training view ---------------------------------------------------------------------------
@pytest.mark.slow
def test_train_live_calls_the_view_every_update_and_leaves_a_static_figure():
    run = pg.train("ppo", "CartPole-v1", seed=0, live=True, **TINY_PPO_DISCRETE)
    view = widgets.LiveView.last
    assert view is not None and view.updates_seen == len(run.history.updates) > 0
    assert view.progress.value == view.progress.max == TINY_PPO_DISCRETE["total_steps"]
    assert isinstance(view.final_figure, Figure)
    assert [ax.get_title() for ax in view.final_figure.axes] == [label for _, label in live.LIVE_PANELS]
    assert "live" not in run.config.to_dict()


@pytest.mark.slow
def test_live_view_redraws_every_few_updates_and_training_is_unchanged():
    view = widgets.LiveView(every=2, min_seconds=0.0)
    live_run = pg.train("a2c", "CartPole-v1", seed=1, live=view, total_steps=512, num_envs=4, n_steps=16)
    plain_run = pg.train("a2c", "CartPole-v1", seed=1, progress=False, total_steps=512, num_envs=4, n_steps=16)
    num_updates = len(live_run.history.updates)
    assert view.updates_seen == num_updates >= 4
    assert view.redraws == num_updates // 2 and view.png[:4] == b"\x89PNG"
    np.testing.assert_array_equal(live_run.history.episodes["return"], plain_run.history.episodes["return"])
    np.testing.assert_array_equal(live_run.history.updates["policy_loss"], plain_run.history.updates["policy_loss"])


@pytest.mark.slow
def test_train_many_live_draws_every_agent_and_counts_each_batched_update_once():
    """Issue 44: train_many refused live=. One view for the batch: one line per agent in every panel, each batched
    update counted once, the static figure left at the end; training unchanged."""
    view = widgets.LiveView(every=1, min_seconds=0.0)
    runs = pg.train_many("a2c", "CartPole-v1", seeds=[1, 2, 3], live=view, total_steps=512, num_envs=4, n_steps=16)
    plain = pg.train_many("a2c", "CartPole-v1", seeds=[1, 2, 3], progress=False, total_steps=512, num_envs=4,
                          n_steps=16)
    assert view.updates_seen == view.redraws == len(runs[0].history.updates) >= 4
    assert len(view.histories) == 3 and view.progress.value == view.progress.max == 512
    returns_panel, entropy_panel = view.final_figure.axes[:2]
    assert len(returns_panel.lines) == len(entropy_panel.lines) == 3  # the moving averages, one per agent
    for run, other in zip(runs, plain):
        np.testing.assert_array_equal(run.history.updates["policy_loss"], other.history.updates["policy_loss"])


def test_the_live_view_is_a_parameter_of_one_training_call(monkeypatch):
    seen = []
    monkeypatch.setattr(widgets.LiveView, "update", lambda self, trainer: seen.append(trainer.num_updates))
    with pytest.raises(pg.ConfigError):
        pg.train("ppo", "CartPole-v1", live=True, total_steps=-1)
    pg.train("a2c", "CartPole-v1", seed=1, live=True, total_steps=256, num_envs=4, n_steps=16)
    assert seen == list(range(1, len(seen) + 1)) and len(seen) >= 2
    seen.clear()
    pg.train("a2c", "CartPole-v1", seed=1, progress=False, total_steps=256, num_envs=4, n_steps=16)
    assert seen == []  # no global state left behind: a later plain call reports to nobody


# -- playground -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_playground_train_button_trains_and_writes_a_gif(tmp_path):
    playground = widgets.Playground(algo="a2c", gif_dir=tmp_path, num_envs=4, n_steps=16)
    playground.total_steps.value = 1_000
    playground.seed.value = 3
    playground.train_button.click()
    assert playground.error is None
    assert playground.run.config.algo == "a2c" and playground.run.config.seed == 3
    assert playground.run.history.updates["env_step"][-1] >= 1_000
    assert playground.gif_path.exists() and playground.gif_path.parent == tmp_path
    assert playground.gif_path.stat().st_size <= 2_000_000
    assert not playground.train_button.disabled


def test_playground_reports_an_invalid_combination_instead_of_raising(tmp_path):
    playground = widgets.Playground(algo="ppo", gif_dir=tmp_path)
    playground.lr.value = 1e-3
    playground.total_steps.value = 1_000
    playground.train_kwargs = {"num_envs": 0}
    playground.train_button.click()
    assert playground.error and "num_envs" in playground.error
    assert playground.run is None and playground.gif_path is None


# -- GIFs -----------------------------------------------------------------------------------------
def test_side_by_side_gif_loops_stays_small_and_captions_both_returns(tmp_path):
    def lean(obs):
        return int(obs[2] + obs[3] > 0)

    path = side_by_side_gif([None, lean], "CartPole-v1", tmp_path / "pair.gif", labels=["random", "trained"], seed=1)
    assert path.stat().st_size <= 2_000_000
    with Image.open(path) as image:
        assert image.info.get("loop") == 0 and image.n_frames > 10
        width, height = image.size
        image.seek(image.n_frames - 1)
        last = np.asarray(image.convert("RGB"))
    _, random_return = pg.render.rollout_frames(None, "CartPole-v1", seed=1, frame_skip=3, max_width=240)
    assert random_return < 100
    assert width == 2 * 240 + 4
    # both captions are drawn: dark pixels in the caption strip under each half
    strip = last[-20:]
    assert (strip[:, :240] < 100).any() and (strip[:, 244:] < 100).any()


def test_side_by_side_gif_shrinks_to_the_size_limit(tmp_path):
    path = side_by_side_gif([None, None], "CartPole-v1", tmp_path / "small.gif", labels=["a", "b"], seed=0,
                            frame_skip=1, max_bytes=60_000)
    assert path.stat().st_size <= 60_000


def test_widgets_module_is_reachable_lazily():
    assert pg.widgets is widgets
    assert matplotlib.get_backend()  # importing the widgets never forces an interactive backend


def test_the_gae_explorer_draws_the_learners_function_over_the_reference():
    import torch

    from pgcourse.rl import returns
    from pgcourse.course.views.widgets import gae_explorer, plot_gae_weights

    right = plot_gae_weights(0.9, 0.8, your_compute_gae=returns.compute_gae).course_data
    assert right["max_difference"] == 0.0 and right["yours_note"] == ""

    def summed_flags(rewards, values, next_values, terminated, truncated, gamma, lam):  # a classic mistake
        return returns.compute_gae(rewards, values, next_values, terminated + truncated, truncated, gamma, lam)

    wrong = plot_gae_weights(0.9, 0.8, your_compute_gae=summed_flags).course_data
    assert wrong["max_difference"] > 0.1

    def bootstraps_through_termination(rewards, values, next_values, terminated, truncated, gamma, lam):
        deltas = rewards + gamma * next_values - values  # the bootstrap is never cut; the trace still is
        return _gae_from(deltas, terminated, truncated, gamma, lam)

    shown = plot_gae_weights(0.9, 0.8, your_compute_gae=bootstraps_through_termination).course_data
    assert shown["max_difference"] > 0.1  # the explorer's terminal step has a non-zero V(s'), as a real critic's

    def stub(*args):
        raise NotImplementedError()

    assert plot_gae_weights(your_compute_gae=stub).course_data["yours_note"] == "your compute_gae: not implemented yet"
    assert "expected a tensor of shape (16, 1)" in plot_gae_weights(
        your_compute_gae=lambda *args: torch.zeros(3)).course_data["yours_note"]
    assert "raised ZeroDivisionError" in plot_gae_weights(your_compute_gae=lambda *args: 1 / 0).course_data["yours_note"]
    explorer = gae_explorer(your_compute_gae=returns.compute_gae)
    assert explorer.data["max_difference"] == 0.0


def _gae_from(deltas, terminated, truncated, gamma, lam):
    """GAE's backward recursion over given TD errors, the trace cut at any episode end."""
    import torch

    done = ((terminated + truncated) > 0).to(deltas.dtype)
    advantages, running = torch.zeros_like(deltas), torch.zeros_like(deltas[0])
    for t in reversed(range(deltas.shape[0])):
        running = deltas[t] + gamma * lam * (1 - done[t]) * running
        advantages[t] = running
    return advantages
