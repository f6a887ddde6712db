"""A sweep's finished trials, grouped by arm, and the numbers the statistics need from them."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import stats
from .spec import TrialSpec
from .store import ResultsFolder, TrialRecord


# The fewest finished seeds from which summary() prints an interval (a percentile bootstrap of n values covers
# poorly for small n: rliable's guidance is many runs; the course's claims use ten or more).
INTERVAL_MIN_SEEDS = 5


class SweepResults:
    """Every requested trial of a sweep: the finished ones (``trials``), the failed, the missing.

    ``results.by_arm()`` groups the finished trials by arm (``"ppo CartPole-v1 clip_eps=0.1"``), in the
    order the grid gave them; ``results.scores()`` gives one number per seed for each arm, the input of
    :mod:`pgcourse.course.stats`; ``results.summary()`` prints their aggregates with 95% intervals.
    """

    def __init__(self, records: Iterable[TrialRecord], requested: Sequence[TrialSpec], folder: Path | None = None):
        by_id = {record.trial_id: record for record in records}
        self.requested = list(requested)
        self.folder = folder
        self.trials = [by_id[s.trial_id] for s in self.requested if s.trial_id in by_id and by_id[s.trial_id].ok]
        self.failed = [by_id[s.trial_id] for s in self.requested if s.trial_id in by_id and not by_id[s.trial_id].ok]
        self.missing = [s for s in self.requested if s.trial_id not in by_id]
        self.interrupted = False
        self.seconds: float | None = None
        self.skipped = 0

    @classmethod
    def from_folder(cls, folder: str | Path, requested: Sequence[TrialSpec]) -> SweepResults:
        store = ResultsFolder(folder)
        return cls(store.records([s.trial_id for s in requested]), requested, store.path)

    @classmethod
    def from_records(cls, records: Iterable[dict[str, Any]], requested: Sequence[TrialSpec]) -> SweepResults:
        return cls((TrialRecord(r) for r in records), requested)

    # -- grouping ------------------------------------------------------------------------------
    @property
    def arms(self) -> list[str]:
        """Arm names in the grid's order (an arm with no finished trial is still listed)."""
        return list(dict.fromkeys(spec.arm for spec in self.requested))

    def by_arm(self) -> dict[str, list[TrialRecord]]:
        groups: dict[str, list[TrialRecord]] = {arm: [] for arm in self.arms}
        for record in self.trials:
            groups[record.arm].append(record)
        return groups

    def short_names(self) -> dict[str, str]:
        """Each arm's shortest unambiguous name: the label alone when one algorithm and one env were swept."""
        specs = {spec.arm: spec for spec in self.requested}
        algos = {s.algo for s in specs.values()}
        envs = {s.env_id for s in specs.values()}
        names = {}
        for arm, spec in specs.items():
            parts = ([spec.algo] if len(algos) > 1 else []) + ([spec.env_id] if len(envs) > 1 else [])
            parts += [] if spec.label == "default" and parts else [spec.label]
            names[arm] = " ".join(parts)
        return names if len(set(names.values())) == len(names) else {arm: arm for arm in names}

    # -- numbers per seed ------------------------------------------------------------------------
    def scores(self, measure: str | Callable[[TrialRecord], float] = "final_return", last: int = 100
               ) -> dict[str, np.ndarray]:
        """One number per finished seed of each arm (``[seeds]`` arrays, arms without trials left out).

        ``measure``: ``"final_return"`` (mean return of the last ``last`` episodes), ``"final_eval"``
        (the last evaluation's mean), ``"max_eval"``, ``"episodes"``, ``"env_steps"``, ``"wall_seconds"``,
        or a function of a :class:`~pgcourse.course.sweeps.store.TrialRecord`.
        """
        function = measure if callable(measure) else _MEASURES.get(measure)
        if function is None:
            raise ValueError(f"measure={measure!r} is invalid: expected one of {sorted(_MEASURES)} or a function")
        scores = {}
        for arm, records in self.by_arm().items():
            if records:
                scores[arm] = np.asarray([function(r) if callable(measure) else function(r, last) for r in records],
                                         dtype=float)
        return scores

    def curves(self, arm: str, y: str = "return", source: str = "episodes") -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Learning curves of one arm: per seed, x = env steps and y = ``source``'s column ``y``
        (``source="episodes"``: each episode's return; ``"evals"``: evaluation ``"mean"``)."""
        xs, ys = [], []
        for record in self.by_arm()[arm]:
            table = record.data["history"][source]
            xs.append(np.asarray(table["env_step"], dtype=float))
            ys.append(np.asarray([np.nan if v is None else v for v in table[y]], dtype=float))
        return xs, ys

    # -- statistics ----------------------------------------------------------------------------
    def intervals(self, measure: str | Callable[[TrialRecord], float] = "final_return", last: int = 100,
                  metrics: Sequence[str] | None = None, threshold: float | None = None, reps: int = 2000,
                  seed: int = 0) -> dict[str, dict[str, stats.Estimate]]:
        """Mean, median, IQM (and optimality gap when ``threshold`` is given) of ``scores(measure)`` per
        arm, with stratified-bootstrap 95% intervals (arms with fewer than 2 finished seeds left out)."""
        scores = {arm: values for arm, values in self.scores(measure, last).items() if len(values) >= 2}
        if not scores:  # no arm has 2 finished seeds (yet): nothing to estimate, not an error
            return {}
        return stats.interval_estimates(scores, metrics=metrics, threshold=threshold, reps=reps, seed=seed)

    def steps_to_threshold(self, threshold: float, window: int = 20) -> dict[str, stats.ThresholdEstimate]:
        """Env steps until the moving average (``window`` episodes) of the return first reaches
        ``threshold``, per arm: the median over seeds with its interval, counting seeds that never reach it."""
        found = {}
        for arm, records in self.by_arm().items():
            if len(records) < 2:
                continue
            times = [stats.steps_to_threshold(r.episode_env_steps, stats.moving_average(r.episode_returns, window),
                                              threshold) for r in records]
            found[arm] = stats.threshold_estimate(times)
        return found

    def summary(self, measure: str = "final_return", last: int = 100, threshold: float | None = None,
                reps: int = 2000, seed: int = 0, min_seeds: int = INTERVAL_MIN_SEEDS) -> str:
        """A table: per arm, finished seeds, and the IQM, mean and median of ``measure`` with 95% intervals;
        with ``threshold``, also the env steps until the smoothed return reaches it. An arm with fewer than
        ``min_seeds`` finished seeds shows its seeds' values instead: a bootstrap "95%" interval from two or three
        values is their range, not an interval anyone should read as 95%."""
        names = self.short_names()
        estimates = self.intervals(measure, last, ("iqm", "mean", "median"), reps=reps, seed=seed)
        scores = self.scores(measure, last)
        reach = self.steps_to_threshold(threshold) if threshold is not None else {}
        what = f"mean return of the last {last} episodes" if measure == "final_return" else str(measure)
        lines = [f"{what} per seed, aggregated over seeds (95% stratified-bootstrap intervals, {reps} resamples)"]
        width = max([len(names[arm]) for arm in self.arms] + [3])
        header = f"{'arm':{width}s}  {'seeds':>5s}  {'IQM':>24s}  {'mean':>24s}  {'median':>24s}"
        lines += [header + ("  steps to threshold" if reach else ""), "-" * (len(header) + (20 if reach else 0))]
        groups = self.by_arm()
        for arm in self.arms:
            row = f"{names[arm]:{width}s}  {len(groups[arm]):>5d}"
            if arm in estimates and len(groups[arm]) >= min_seeds:
                row += "".join(f"  {str(estimates[arm][m]):>24s}" for m in ("iqm", "mean", "median"))
            else:
                values = ", ".join(f"{value:.4g}" for value in scores.get(arm, []))
                row += f"  per seed: {values} (an interval needs {min_seeds} or more seeds)"
            if arm in reach:
                row += f"  {reach[arm]}"
            lines.append(row)
        if self.failed or self.missing:
            lines.append(f"{len(self.failed)} failed, {len(self.missing)} not run"
                         + (f" (first failure: {self.failed[0].trial_id}: {self.failed[0].data.get('error')})"
                            if self.failed else ""))
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.trials)

    def __repr__(self) -> str:
        state = ", interrupted" if self.interrupted else ""
        return (f"SweepResults({len(self.trials)} finished, {len(self.failed)} failed, {len(self.missing)} not run, "
                f"{len(self.arms)} arms{state})")


def _final_return(record: TrialRecord, last: int) -> float:
    returns = record.episode_returns
    return float(np.mean(returns[-last:])) if len(returns) else float("nan")


def _eval_means(record: TrialRecord) -> np.ndarray:
    return np.asarray([np.nan if v is None else v for v in record.data["history"]["evals"]["mean"]], dtype=float)


def _final_eval(record: TrialRecord, last: int) -> float:
    means = _eval_means(record)
    return float(means[-1]) if len(means) else float("nan")


def _max_eval(record: TrialRecord, last: int) -> float:
    means = _eval_means(record)
    return float(np.nanmax(means)) if len(means) else float("nan")


_MEASURES: dict[str, Callable[[TrialRecord, int], float]] = {
    "final_return": _final_return, "final_eval": _final_eval, "max_eval": _max_eval,
    "episodes": lambda r, last: float(r.data.get("episodes", len(r.episode_returns))),
    "env_steps": lambda r, last: float(r.data.get("env_steps", 0)),
    "wall_seconds": lambda r, last: r.wall_seconds,
}
