"""Learning curves that state what they show: one run, mean with a band over seeds, or (with
:mod:`pgcourse.course.stats`) interval estimates, aggregate curves with bootstrap bands and performance profiles."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from ...rl.run import Run
from ..stats import Band, Estimate, moving_average  # noqa: F401  (moving_average: re-exported)


def plot_learning_curve(run: Run, window: int = 20, x: str = "env_step", ax=None, label: str | None = None):
    """Episode returns of one run (faint) and their moving average, against env steps or episodes."""
    if x not in ("env_step", "episode"):
        raise ValueError(f"x={x!r} is invalid: expected 'env_step' or 'episode'")
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    returns = run.history.episodes["return"]
    xs = run.history.episodes["env_step"] if x == "env_step" else np.arange(1, len(returns) + 1)
    line, = ax.plot(xs, moving_average(returns, window), label=label or f"{run.config.algo} seed {run.config.seed}")
    ax.plot(xs, returns, alpha=0.2, color=line.get_color(), linewidth=0.8)
    ax.set_xlabel("environment steps" if x == "env_step" else "episodes")
    ax.set_ylabel(f"episode return ({window}-episode moving average)")
    ax.set_title(f"{run.config.algo} on {run.config.env_id}")
    ax.grid(alpha=0.3)
    return ax


def curves_on_grid(runs: Sequence[Run], grid: np.ndarray, window: int = 20, x: str = "env_step") -> np.ndarray:
    """``[num_runs, len(grid)]``: each run's moving-average return, held constant between episode ends
    (NaN before its first episode ends and after its last recorded point)."""
    curves = np.full((len(runs), len(grid)), np.nan)
    for i, run in enumerate(runs):
        returns = moving_average(run.history.episodes["return"], window)
        xs = run.history.episodes["env_step"] if x == "env_step" else np.arange(1, len(returns) + 1)
        if len(xs) == 0:
            continue
        index = np.searchsorted(xs, grid, side="right") - 1
        inside = (index >= 0) & (grid <= xs[-1])
        curves[i, inside] = returns[index[inside]]
    return curves


def plot_mean_band(runs: Sequence[Run], label: str | None = None, window: int = 20, x: str = "env_step",
                   band: str = "minmax", points: int = 200, ax=None):
    """Mean over runs (seeds) of the moving-average return, with a band: ``"minmax"`` (the range of
    the seeds) or ``"std"`` (mean ± one standard deviation)."""
    if not runs:
        raise ValueError("plot_mean_band needs at least one run")
    if band not in ("minmax", "std"):
        raise ValueError(f"band={band!r} is invalid: expected 'minmax' or 'std'")
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    ends = [run.history.episodes["env_step"][-1] if x == "env_step" else len(run.history.episodes)
            for run in runs if len(run.history.episodes)]
    grid = np.linspace(0, min(ends), points)
    curves = curves_on_grid(runs, grid, window, x)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(curves, axis=0)
            low, high = ((np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)) if band == "minmax" else
                         (mean - np.nanstd(curves, axis=0), mean + np.nanstd(curves, axis=0)))
    label = label or f"{runs[0].config.algo} ({len(runs)} seeds)"
    line, = ax.plot(grid, mean, label=label)
    ax.fill_between(grid, low, high, alpha=0.2, color=line.get_color())
    ax.set_xlabel("environment steps" if x == "env_step" else "episodes")
    ax.set_ylabel(f"return ({window}-episode moving average)")
    ax.set_title(f"mean over seeds, band = {'min to max' if band == 'minmax' else '±1 std'}")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


# what each column of ``history.updates`` is, in words: panel titles and axis labels
DIAGNOSTIC_LABELS = {
    "policy_loss": "policy loss", "value_loss": "value loss", "entropy": "entropy (nats)",
    "approx_kl": "approx KL (minibatch mean)", "update_kl": "update KL (old to new policy)",
    "clip_fraction": "clip fraction", "explained_variance": "explained variance", "actor_grad_norm": "actor grad norm",
    "explained_variance_before": "explained variance before the update (out of sample)",
    "explained_variance_after": "explained variance after the update (in sample)",
    "critic_grad_norm": "critic grad norm", "lr": "learning rate (actor)", "critic_lr": "learning rate (critic)",
    "advantage_std": "advantage std (raw)", "log_std_mean": "mean log std", "epochs_run": "epochs run",
    "value_rel_error": "critic's relative error",
}


def plot_diagnostics(run: Run, names: Sequence[str] = ("entropy", "update_kl", "clip_fraction", "explained_variance"),
                     axes=None):
    """One small panel per update diagnostic (a column of ``history.updates``), against env steps, titled in
    words (:data:`DIAGNOSTIC_LABELS`)."""
    if axes is None:
        _, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
        axes = axes[0]
    steps = run.history.updates["env_step"]
    for ax, name in zip(axes, names):
        ax.plot(steps, run.history.updates[name])
        ax.set_title(DIAGNOSTIC_LABELS.get(name, name.replace("_", " ")), fontsize=9)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    return axes


_METRIC_TITLES = {"mean": "Mean", "median": "Median", "iqm": "IQM", "optimality_gap": "Optimality gap"}


def _given_axes(axes, count: int, figsize: tuple[float, float], sharey: bool = False) -> list:
    """``count`` axes: the ones given (an Axes or a sequence of them) or a new row of panels."""
    if axes is None:
        return list(plt.subplots(1, count, figsize=figsize, sharey=sharey, squeeze=False)[1][0])
    axes = list(np.atleast_1d(np.asarray(axes, dtype=object)).ravel())
    if len(axes) != count:
        raise ValueError(f"got {len(axes)} axes for {count} panel(s): pass one Axes per panel, or none")
    return axes


def plot_interval_estimates(estimates: dict[str, dict[str, Estimate]], metrics: Sequence[str] | None = None,
                            axes=None, title: str | None = None):
    """Interval estimates as in Agarwal et al. (2021): one panel per metric, one row per arm, the point
    estimate (tick) inside its interval (bar), annotated ``point [low, high]``.

    ``estimates`` is :func:`pgcourse.course.stats.interval_estimates`' ``{arm: {metric: Estimate}}``; ``metrics``
    defaults to the first arm's. Returns the Figure.
    """
    if not estimates:
        raise ValueError("estimates is empty: expected {arm: {metric: Estimate}} (pgcourse.course.stats.interval_estimates)")
    arms = list(estimates)
    metrics = list(metrics or estimates[arms[0]])
    missing = [f"{arm}/{m}" for arm in arms for m in metrics if m not in estimates[arm]]
    if missing:
        raise ValueError(f"no estimate for {missing}: every arm needs every metric plotted")
    axes = _given_axes(axes, len(metrics), (3.4 * len(metrics), 0.6 * len(arms) + 1.4), sharey=True)
    for ax, metric in zip(axes, metrics):
        column = [estimates[arm][metric] for arm in arms]
        values = [v for e in column for v in (e.low, e.point, e.high) if np.isfinite(v)]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        pad = 0.08 * (hi - lo) or 1.0
        for row, e in enumerate(column):
            low = e.low if np.isfinite(e.low) else lo - pad  # an infinite end runs to the panel's edge
            high = e.high if np.isfinite(e.high) else hi + pad
            ax.barh(row, high - low, left=low, height=0.5, color=f"C{row}", alpha=0.4)
            ax.plot([e.point], [row], marker="|", markersize=14, markeredgewidth=2.5, color=f"C{row}")
            ax.annotate(str(e), (e.point if np.isfinite(e.point) else hi, row), xytext=(0, 9),
                        textcoords="offset points", ha="center", fontsize=8)
        ax.set_xlim(lo - 1.5 * pad, hi + 1.5 * pad)
        ax.set_title(_METRIC_TITLES.get(metric, metric))
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(arms)), arms)
    axes[0].set_ylim(len(arms) - 0.4, -0.7)  # first arm on top, room for the annotation
    confidence = estimates[arms[0]][metrics[0]].confidence
    figure = axes[0].figure
    figure.suptitle(f"{title + ': ' if title else ''}point estimates with {confidence:.0%} bootstrap intervals")
    figure.tight_layout()
    return figure


def _band_label(arm: str, curve, statistic: bool = True) -> str:
    """``arm (IQM of 10 runs, 95% CI)``: what the line and band are (a bare tuple: just the arm)."""
    if not isinstance(curve, Band):
        return arm
    counts = curve.runs_at[curve.runs_at > 0] if curve.runs_at is not None else np.array([curve.runs])
    if not counts.size:  # no run reaches any point of the grid
        runs = "0"
    else:
        runs = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    what = f"{_METRIC_TITLES.get(curve.statistic, curve.statistic)} of " if statistic else ""
    return f"{arm} ({what}{runs} runs, {curve.confidence:.0%} CI)"


def _draw_band(ax, x, point, low, high, label: str, step: bool = False):
    line, = ax.plot(x, point, label=label, drawstyle="steps-post" if step else "default")
    shown = np.isfinite(low) & np.isfinite(high)
    ax.fill_between(x, np.where(shown, low, 0), np.where(shown, high, 0), where=shown, alpha=0.2,
                    color=line.get_color(), step="post" if step else None, linewidth=0)
    return line


def plot_aggregate_curves(curves_by_arm: dict, ax=None, xlabel: str = "env steps", ylabel: str = "return",
                          threshold: float | None = None, title: str | None = None):
    """One line per arm with its pointwise confidence band, from :func:`pgcourse.course.stats.aggregate_curves`.

    Each value is a :class:`~pgcourse.course.stats.Band` (the legend then states statistic, runs and CI level)
    or a ``(grid, point, low, high)`` tuple. ``threshold`` draws a dashed target line. Returns the Figure.
    """
    if not curves_by_arm:
        raise ValueError("curves_by_arm is empty: expected {arm: aggregate_curves(...)}")
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for arm, curve in curves_by_arm.items():
        _draw_band(ax, *curve, label=_band_label(arm, curve))
    if threshold is not None:
        ax.axhline(threshold, linestyle="--", color="gray", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax.figure


def plot_performance_profiles(profiles_by_arm: dict, taus=None, ax=None, xlabel: str = "score threshold τ",
                              title: str | None = None):
    """Performance profiles (fraction of runs scoring above tau, against tau) with their bands.

    Each value is a :class:`~pgcourse.course.stats.Band` from :func:`pgcourse.course.stats.performance_profile`, or a
    ``(point, low, high)`` tuple when ``taus`` is given. A profile that lies above another everywhere
    dominates it (stochastic dominance). Returns the Figure.
    """
    if not profiles_by_arm:
        raise ValueError("profiles_by_arm is empty: expected {arm: performance_profile(...)}")
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for arm, profile in profiles_by_arm.items():
        if isinstance(profile, Band):
            xs, point, low, high = profile
        elif taus is None:
            raise ValueError(f"profile {arm!r} is a tuple: pass taus, or the Band from performance_profile")
        else:
            xs, (point, low, high) = np.asarray(taus), profile
        _draw_band(ax, xs, point, low, high, _band_label(arm, profile, statistic=False), step=True)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax.figure
