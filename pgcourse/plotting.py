"""Learning curves that state what they show: one run, or mean with a band over seeds."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from .run import Run


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (shorter at the start), same length as ``values``."""
    values = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window={window} must be >= 1")
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    starts = np.arange(1, len(values) + 1) - counts
    return (cumsum[1:] - cumsum[starts]) / counts


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


def plot_diagnostics(run: Run, names: Sequence[str] = ("entropy", "approx_kl", "clip_fraction", "explained_variance"),
                     axes=None):
    """One small panel per update diagnostic, against env steps."""
    if axes is None:
        _, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 2.8), squeeze=False)
        axes = axes[0]
    steps = run.history.updates["env_step"]
    for ax, name in zip(axes, names):
        ax.plot(steps, run.history.updates[name])
        ax.set_title(name)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
    return axes
