"""``pg.plot_sweep``: a results folder as a learner should see it — learning curves aggregated over
seeds with their confidence bands, and the final numbers as interval estimates."""
from __future__ import annotations

import os
from pathlib import Path

from .. import stats
from ...rl.config import SOLVE_THRESHOLDS
from ..views.plotting import plot_aggregate_curves, plot_interval_estimates
from .driver import load_results
from .results import SweepResults


def plot_sweep(results: SweepResults | str | os.PathLike, statistic: str = "iqm", window: int = 20,
               last: int = 100, path: str | os.PathLike | None = None, reps: int = 2000, seed: int = 0):
    """Top: per arm, the ``statistic`` (``"iqm"``, ``"mean"``, ``"median"``) over seeds of the return
    (moving average of ``window`` episodes) against env steps, with a pointwise 95% bootstrap band; each
    curve ends where its shortest seed ends. Bottom: IQM and mean over seeds of the mean return of the
    last ``last`` episodes, with 95% stratified-bootstrap intervals. Arms with one finished seed show
    their curve only. Returns the Figure (and writes it to ``path`` if given).
    """
    import matplotlib.pyplot as plt

    if not isinstance(results, SweepResults):
        results = load_results(results)
    if not results.trials:
        raise ValueError(f"{results.folder or 'the sweep'} has no finished trial to plot")
    names = results.short_names()
    groups = {arm: records for arm, records in results.by_arm().items() if records}
    curves = {}
    for arm in groups:
        xs, ys = results.curves(arm)
        if len(xs) >= 2:
            curves[names[arm]] = stats.aggregate_curves(xs, ys, statistic=statistic, window=window, reps=reps,
                                                        seed=seed)
    estimates = {names[arm]: values for arm, values in results.intervals("final_return", last, ("iqm", "mean"),
                                                                         reps=reps, seed=seed).items()}
    envs = {record.env_id for record in results.trials}
    threshold = SOLVE_THRESHOLDS.get(next(iter(envs))) if len(envs) == 1 else None
    figure = plt.figure(figsize=(11, 4.2 + 0.45 * len(estimates)))
    grid = figure.add_gridspec(2, 2, height_ratios=(3.2, 0.9 + 0.45 * max(1, len(estimates))))
    ax_curves = figure.add_subplot(grid[0, :])
    if curves:
        plot_aggregate_curves(curves, ax=ax_curves, threshold=threshold,
                              ylabel=f"return (moving average of {window} episodes)",
                              title=f"{', '.join(sorted(envs))}: {statistic.upper() if statistic == 'iqm' else statistic} "
                                    "over seeds with 95% bootstrap band")
    else:
        ax_curves.text(0.5, 0.5, "fewer than 2 finished seeds per arm: no band to draw", ha="center",
                       transform=ax_curves.transAxes)
    if estimates:
        left = figure.add_subplot(grid[1, 0])
        right = figure.add_subplot(grid[1, 1], sharey=left)
        plot_interval_estimates(estimates, ("iqm", "mean"), axes=[left, right])
        right.tick_params(labelleft=False)
        left.set_title(f"IQM over seeds of the mean return of the last {last} episodes", fontsize=10)
        right.set_title("mean over seeds of the same (95% intervals)", fontsize=10)
    seeds = sorted({len(records) for records in groups.values()})
    figure.suptitle(f"{results.folder.name + ': ' if results.folder else ''}{len(groups)} arm(s), "
                    f"{'-'.join(map(str, (seeds[0], seeds[-1]) if len(seeds) > 1 else seeds))} seeds each")
    figure.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
    return figure
