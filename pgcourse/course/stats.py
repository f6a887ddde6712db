"""Aggregate statistics for RL results that state their uncertainty.

Follows Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS 2021): report interval estimates, not single numbers; prefer the interquartile mean (IQM) to
the mean (outliers) and the median (high variance); get intervals from a *stratified* bootstrap that
resamples runs (seeds) within each task.

Conventions:
    scores        ``[runs]`` (one task) or ``[runs, tasks]``; runs are seeds. Pooling several tasks only
                  makes sense on comparable scales: normalise first (:func:`normalized`).
    arms          algorithms or settings compared, as a dict ``{arm_name: scores}``.
    intervals     percentile bootstrap by default; ``confidence`` is the two-sided level, e.g. 0.95.

Pure numpy/scipy functions: no torch, no other pgcourse module.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from ..rl.history import moving_average  # noqa: F401  (the smoothing a run's curves get; re-exported here)

METRICS = ("mean", "median", "iqm", "optimality_gap")
_ELEMENTS_PER_CHUNK = 2 ** 22  # bootstrap samples are drawn in chunks of about this many floats (32 MB)


# ----------------------------------------------------------------------------------------------- results
def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3g}"


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided interval ``[low, high]`` at level ``confidence``."""

    point: float
    low: float
    high: float
    confidence: float

    def __str__(self) -> str:
        return f"{_fmt(self.point)} [{_fmt(self.low)}, {_fmt(self.high)}]"


@dataclass(frozen=True, eq=False)
class Band:
    """A curve with a pointwise interval band; unpacks as ``x, point, low, high = band``.

    ``x`` is the grid (env steps for learning curves, thresholds tau for performance profiles);
    ``runs`` the number of runs; ``runs_at`` (``[G]`` or None) how many of them are defined at each x.
    """

    x: np.ndarray      # [G]
    point: np.ndarray  # [G]
    low: np.ndarray    # [G]
    high: np.ndarray   # [G]
    confidence: float
    statistic: str
    runs: int
    runs_at: np.ndarray | None = None  # [G]

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.x, self.point, self.low, self.high))


@dataclass(frozen=True)
class ThresholdEstimate:
    """How many runs reached a threshold, and how soon: never-reached runs count as ``inf`` steps."""

    reached: int
    runs: int
    median: Estimate            # median steps to threshold over all runs (can be inf)
    fraction_reached: Estimate  # Wilson score interval

    def __str__(self) -> str:
        f = self.fraction_reached
        return (f"reached by {self.reached}/{self.runs} runs ({f.point:.0%} [{f.low:.0%}, {f.high:.0%}]); "
                f"median steps {self.median}")


# ------------------------------------------------------------------------------------------- validation
def _as_scores(scores, name: str = "scores", allow_inf: bool = False) -> np.ndarray:
    """``scores`` as a float ``[runs, tasks]`` array, or a ValueError saying what is wrong."""
    try:
        arr = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a numeric [runs] or [runs, tasks] array: {error}") from None
    if arr.ndim == 1:
        arr = arr[:, None]  # [runs, 1]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be [runs] or [runs, tasks], got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}): expected at least one run and one task")
    if np.isnan(arr).any():
        run, task = np.argwhere(np.isnan(arr))[0]
        raise ValueError(f"{name} contains NaN (first at run {run}, task {task}): drop or fix those runs")
    bad = np.isinf(arr) if not allow_inf else np.isneginf(arr)
    if bad.any():
        run, task = np.argwhere(bad)[0]
        raise ValueError(f"{name} contains {arr[run, task]} at run {run}, task {task}: expected finite values")
    return arr


def _check_bootstrap_args(reps: int, confidence: float) -> None:
    if not isinstance(reps, (int, np.integer)) or isinstance(reps, bool) or reps < 1:
        raise ValueError(f"reps={reps!r} is invalid: expected an integer >= 1 (2000 or more for a 95% interval)")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} is invalid: expected a level in (0, 1), e.g. 0.95")


def _check_runs(scores: np.ndarray, name: str) -> None:
    if scores.shape[0] < 2:
        raise ValueError(f"{name} has {scores.shape[0]} run per task: a bootstrap interval needs at least 2 "
                         "runs (seeds); one run says nothing about run-to-run variation")


# ------------------------------------------------------------------------------------- point metrics
# Batched forms: x is [..., runs, tasks] and the result [...]; all of them pool the runs x tasks scores.
def _mean(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=(-2, -1))


def _sorted_pool(x: np.ndarray) -> np.ndarray:
    return np.sort(x.reshape(*x.shape[:-2], -1), axis=-1)  # [..., runs * tasks]


def _median(x: np.ndarray) -> np.ndarray:
    pool = _sorted_pool(x)
    n = pool.shape[-1]
    return 0.5 * (pool[..., (n - 1) // 2] + pool[..., n // 2])  # inf-safe (a never-reached run is inf)


def iqm_weights(n: int) -> np.ndarray:
    r"""``[n]`` weights of the sorted scores in the interquartile mean of ``n`` scores.

    Score :math:`x_{(i)}` (i = 1..n) covers the rank interval :math:`[i-1, i]`; its weight is the part
    of that interval inside the middle half :math:`[n/4, 3n/4]`, divided by :math:`n/2`. For n divisible
    by 4 this drops exactly the n/4 lowest and n/4 highest scores (= ``scipy.stats.trim_mean(x, 0.25)``).
    """
    i = np.arange(1, n + 1)
    overlap = np.clip(np.minimum(i, 0.75 * n) - np.maximum(i - 1, 0.25 * n), 0.0, None)
    return overlap / (0.5 * n)


def _iqm(x: np.ndarray) -> np.ndarray:
    pool = _sorted_pool(x)
    weights = iqm_weights(pool.shape[-1])
    used = weights > 0  # the outer quarters get weight 0 (and may be inf)
    return pool[..., used] @ weights[used]


def _optimality_gap(x: np.ndarray, threshold: float) -> np.ndarray:
    return np.maximum(threshold - x, 0.0).mean(axis=(-2, -1))


def mean(scores) -> float:
    r"""Mean of all run x task scores: :math:`\frac{1}{RT}\sum_{r,t} x_{r,t}` (= mean of the task means)."""
    return float(_mean(_as_scores(scores)))


def median(scores) -> float:
    """Median of all run x task scores (for one task: the median over seeds).

    rliable's ``aggregate_median`` is instead the median of the per-task means; pooling keeps mean,
    median and IQM statements about the same set of scores.
    """
    return float(_median(_as_scores(scores)))


def iqm(scores) -> float:
    """Interquartile mean: the mean of the middle 50% of all run x task scores.

    Exact for any count n (see :func:`iqm_weights`): the two scores at the quartile boundaries count
    with fractional weight, so it always averages exactly half the mass. ``trim_mean(x, 0.25)``
    (rliable) trims ``floor(n/4)`` scores per side, i.e. averages more than half when 4 does not divide n;
    the two agree when it does.
    """
    return float(_iqm(_as_scores(scores)))


def optimality_gap(scores, threshold: float) -> float:
    r"""How far below ``threshold`` (a target score) runs fall: :math:`\frac{1}{RT}\sum_{r,t}\max(\gamma - x_{r,t}, 0)`.

    Lower is better; scores above the threshold earn nothing extra.
    """
    if threshold is None or not math.isfinite(threshold):
        raise ValueError(f"threshold={threshold!r} is invalid: expected a finite target score")
    return float(_optimality_gap(_as_scores(scores), threshold))


def normalized(scores, low, high) -> np.ndarray:
    """``(scores - low) / (high - low)`` per task (``low``, ``high``: scalars or ``[tasks]``, e.g. the
    scores of a random policy and of a reference), so that tasks can be pooled."""
    scores = _as_scores(scores)  # [runs, tasks]
    low, high = np.broadcast_to(low, scores.shape[1:]), np.broadcast_to(high, scores.shape[1:])  # [tasks]
    if np.any(high == low):
        raise ValueError("normalized: high equals low for some task; expected distinct reference scores")
    return (scores - low) / (high - low)


_BATCHED: dict = {"mean": _mean, "median": _median, "iqm": _iqm, mean: _mean, median: _median, iqm: _iqm}


# ---------------------------------------------------------------------------------------- resampling
def _chunk_sizes(reps: int, per_rep: int) -> list[int]:
    size = max(1, _ELEMENTS_PER_CHUNK // max(per_rep, 1))
    return [min(size, reps - start) for start in range(0, reps, size)]


def _resample(scores: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``[size, runs, tasks]``: each task's column refilled with its own runs, drawn with replacement."""
    runs, tasks = scores.shape
    index = rng.integers(0, runs, size=(size, runs, tasks))  # [size, runs, tasks]
    return scores[index, np.arange(tasks)]  # task t only ever sees column t: the bootstrap is stratified


def stratified_resamples(scores, reps: int = 2000, seed: int | None = 0) -> Iterator[np.ndarray]:
    """Bootstrap samples of ``scores`` in chunks ``[chunk, runs, tasks]`` (``reps`` samples in all).

    Each sample keeps ``runs`` scores per task, drawn with replacement from that task's runs only.
    """
    scores = _as_scores(scores)
    _check_bootstrap_args(reps, 0.5)
    rng = np.random.default_rng(seed)
    for size in _chunk_sizes(reps, scores.size):
        yield _resample(scores, size, rng)


def _quantile(dist: np.ndarray, q) -> np.ndarray:
    """Linear-interpolation quantiles along axis 0 (as ``np.quantile``) that stay ``inf`` next to ``inf``."""
    ordered = np.sort(dist, axis=0)  # [B, ...]
    pos = np.asarray(q, dtype=np.float64) * (len(ordered) - 1)
    lo, hi = np.floor(pos).astype(int), np.ceil(pos).astype(int)
    a, b = ordered[lo], ordered[hi]
    frac = (pos - lo).reshape(pos.shape + (1,) * (ordered.ndim - 1))
    with np.errstate(invalid="ignore"):
        return np.where((frac == 0) | (a == b), a, a + (b - a) * frac)


def _percentile_interval(dist: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    return tuple(_quantile(dist, [(1 - confidence) / 2, (1 + confidence) / 2]))  # [...] each


def _bca_interval(dist: np.ndarray, point: float, jackknife: np.ndarray, confidence: float) -> tuple:
    """Bias-corrected and accelerated interval (Efron 1987) from ``dist`` ``[B]`` and leave-one-out values."""
    reps = len(dist)
    below = (np.sum(dist < point) + np.sum(dist <= point)) / (2 * reps)  # mid-rank, as scipy
    z0 = ndtri(np.clip(below, 0.5 / reps, 1 - 0.5 / reps))  # clipped: finite even if every sample is above
    spread = jackknife.mean() - jackknife  # [runs]
    denominator = 6 * np.sum(spread ** 2) ** 1.5
    accel = np.sum(spread ** 3) / denominator if denominator > 0 else 0.0
    z = ndtri(np.array([(1 - confidence) / 2, (1 + confidence) / 2]))
    low, high = _quantile(dist, ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z))))
    return low, high


def _statistic_fn(statistic, threshold, vectorized: bool) -> Callable[[np.ndarray], np.ndarray]:
    """A batched statistic ``[B, runs, tasks] -> [B]`` from a metric name or a callable."""
    if statistic == "optimality_gap" or statistic is optimality_gap:
        if threshold is None or not math.isfinite(threshold):
            raise ValueError(f"optimality_gap needs a finite threshold (the target score), got {threshold!r}")
        return lambda x: _optimality_gap(x, threshold)
    if isinstance(statistic, str):
        if statistic not in _BATCHED:
            raise ValueError(f"statistic={statistic!r} is unknown: expected one of {METRICS} or a callable")
        return _BATCHED[statistic]
    if not callable(statistic):
        raise ValueError(f"statistic={statistic!r} is invalid: expected one of {METRICS} or a callable")
    if statistic in _BATCHED:  # the public mean, median, iqm
        return _BATCHED[statistic]
    if vectorized:
        return lambda x: np.asarray(statistic(x), dtype=np.float64)
    return lambda x: np.array([statistic(sample) for sample in x], dtype=np.float64)


def stratified_bootstrap(scores, statistic="iqm", reps: int = 2000, confidence: float = 0.95,
                         seed: int | None = 0, method: str = "percentile", threshold: float | None = None,
                         vectorized: bool = False) -> Estimate:
    """Point estimate of ``statistic(scores)`` with a stratified-bootstrap interval.

    Args:
        scores: ``[runs]`` or ``[runs, tasks]``, at least 2 runs.
        statistic: ``"mean"``, ``"median"``, ``"iqm"``, ``"optimality_gap"`` (give ``threshold``), or a
            callable of a ``[runs, tasks]`` array returning a float (with ``vectorized=True``: of a
            ``[B, runs, tasks]`` array returning ``[B]``).
        reps: bootstrap samples B; each redraws every task's runs with replacement from that task only.
        confidence: two-sided level of the interval, in (0, 1).
        seed: for ``numpy.random.default_rng``; the same seed gives the same interval.
        method: ``"percentile"`` (the alpha/2 and 1-alpha/2 quantiles of the B statistics, as rliable) or
            ``"bca"`` (bias-corrected and accelerated; one task only, since its jackknife leaves out one run).
    """
    scores = _as_scores(scores)  # [runs, tasks]
    _check_bootstrap_args(reps, confidence)
    _check_runs(scores, "scores")
    if method not in ("percentile", "bca"):
        raise ValueError(f"method={method!r} is invalid: expected 'percentile' or 'bca'")
    if method == "bca" and scores.shape[1] != 1:
        raise ValueError(f"method='bca' supports one task, got {scores.shape[1]} tasks: use 'percentile'")
    return _bootstrap(scores, _statistic_fn(statistic, threshold, vectorized), reps, confidence, seed, method)


def _bootstrap(scores: np.ndarray, fn, reps: int, confidence: float, seed, method: str) -> Estimate:
    """:func:`stratified_bootstrap` on checked ``[runs, tasks]`` scores and a batched statistic ``fn``."""
    point = float(fn(scores[None])[0])
    rng = np.random.default_rng(seed)
    dist = np.concatenate([fn(_resample(scores, size, rng)) for size in _chunk_sizes(reps, scores.size)])  # [B]
    if method == "percentile":
        low, high = _percentile_interval(dist, confidence)
    else:
        leave_one_out = np.array([np.delete(scores, r, axis=0) for r in range(len(scores))])  # [runs, runs-1, 1]
        low, high = _bca_interval(dist, point, fn(leave_one_out), confidence)
    return Estimate(point, float(low), float(high), confidence)


def interval_estimates(scores_by_arm: Mapping[str, object], metrics: Sequence[str] | None = None,
                       threshold: float | None = None, reps: int = 2000, confidence: float = 0.95,
                       seed: int | None = 0) -> dict[str, dict[str, Estimate]]:
    """``{arm: {metric: Estimate}}``: every metric of every arm, with stratified-bootstrap percentile intervals.

    ``metrics`` defaults to mean, median and IQM, plus optimality gap when a ``threshold`` is given.
    Every arm uses the same ``seed``, so an arm's intervals depend only on its own scores.
    """
    if not scores_by_arm:
        raise ValueError("scores_by_arm is empty: expected {arm_name: scores}")
    if metrics is None:
        metrics = METRICS if threshold is not None else METRICS[:3]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}: expected some of {METRICS}")
    fns = {m: _statistic_fn(m, threshold, True) for m in metrics}
    _check_bootstrap_args(reps, confidence)
    results = {}
    for arm, scores in scores_by_arm.items():
        scores = _as_scores(scores, f"scores_by_arm[{arm!r}]")  # [runs, tasks]
        _check_runs(scores, f"scores_by_arm[{arm!r}]")
        # the same seed for every metric: all of them are computed on the same bootstrap samples
        results[arm] = {m: _bootstrap(scores, fn, reps, confidence, seed, "percentile") for m, fn in fns.items()}
    return results


def _improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + P(X = Y)/2 per task, averaged over tasks: x ``[..., n, T]``, y ``[..., m, T]`` -> ``[...]``."""
    xs, ys = x[..., :, None, :], y[..., None, :, :]  # [..., n, 1, T], [..., 1, m, T]
    wins = (xs > ys) + 0.5 * (xs == ys)  # [..., n, m, T]
    return wins.mean(axis=(-3, -2, -1))


def probability_of_improvement(x_scores, y_scores, reps: int = 2000, confidence: float = 0.95,
                               seed: int | None = 0) -> Estimate:
    r"""Probability that a run of X beats a run of Y on the same task, averaged over tasks.

    .. math:: P(X > Y) = \frac{1}{T}\sum_t \frac{1}{nm}\sum_{i,j} S(x_{i,t}, y_{j,t}),\quad
              S(a, b) = 1 \text{ if } a > b,\ \tfrac12 \text{ if } a = b,\ 0 \text{ otherwise}

    (the Mann-Whitney U statistic over nm, per task). The interval is a stratified-bootstrap
    percentile interval: each arm's runs are redrawn independently within each task.
    ``x_scores`` ``[n, T]`` and ``y_scores`` ``[m, T]`` need the same tasks; n and m may differ.
    """
    x, y = _as_scores(x_scores, "x_scores"), _as_scores(y_scores, "y_scores")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x_scores has {x.shape[1]} tasks and y_scores {y.shape[1]}: expected the same tasks")
    _check_bootstrap_args(reps, confidence)
    _check_runs(x, "x_scores")
    _check_runs(y, "y_scores")
    rng = np.random.default_rng(seed)
    dist = np.concatenate([_improvement(_resample(x, size, rng), _resample(y, size, rng))
                           for size in _chunk_sizes(reps, x.shape[0] * y.shape[0] * x.shape[1])])  # [B]
    low, high = _percentile_interval(dist, confidence)
    return Estimate(float(_improvement(x, y)), float(low), float(high), confidence)


def performance_profile(scores, taus, reps: int = 2000, confidence: float = 0.95, seed: int | None = 0) -> Band:
    r"""Fraction of runs x tasks scoring above each tau, :math:`\hat F(\tau) = \frac{1}{RT}\sum_{r,t}[x_{r,t} > \tau]`,
    with stratified-bootstrap percentile bands. Returns a :class:`Band` with ``x = taus`` ``[K]``."""
    scores = _as_scores(scores)  # [runs, tasks]
    taus = np.asarray(taus, dtype=np.float64).reshape(-1)  # [K]
    if taus.size == 0 or np.isnan(taus).any():
        raise ValueError(f"taus must be a non-empty array of thresholds without NaN, got {taus}")
    _check_bootstrap_args(reps, confidence)
    _check_runs(scores, "scores")

    def profile(x):  # [..., runs, tasks] -> [..., K]
        return (x[..., None] > taus).mean(axis=(-3, -2))

    rng = np.random.default_rng(seed)
    dist = np.concatenate([profile(_resample(scores, size, rng))
                           for size in _chunk_sizes(reps, scores.size * taus.size)])  # [B, K]
    low, high = _percentile_interval(dist, confidence)
    return Band(taus, profile(scores), low, high, confidence, "fraction of runs with score > tau", scores.shape[0])


# --------------------------------------------------------------------------------- time to threshold
def steps_to_threshold(steps, values, threshold: float) -> float:
    """The first ``steps[i]`` at which ``values[i] >= threshold``; ``math.inf`` if it never happens.

    ``inf`` (rather than None) lets never-reached runs enter :func:`threshold_estimate` as the slowest.
    No interpolation: the time is only as fine as the recorded points (e.g. every evaluation). Smooth
    noisy values first (:func:`moving_average`) if one lucky episode should not count as reaching it.
    """
    steps, values = np.asarray(steps, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if steps.ndim != 1 or steps.shape != values.shape:
        raise ValueError(f"steps and values must be 1-D and the same length, got shapes {steps.shape} "
                         f"and {values.shape}")
    if np.isnan(steps).any() or np.isnan(values).any():
        raise ValueError("steps or values contain NaN: expected recorded numbers only")
    if np.any(np.diff(steps) < 0):
        raise ValueError("steps must be non-decreasing (env steps in recording order)")
    reached = np.flatnonzero(values >= threshold)
    return float(steps[reached[0]]) if reached.size else math.inf


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Estimate:
    """Wilson score interval for a proportion ``successes / trials`` (sensible even at 0 or all)."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"wilson_interval({successes}, {trials}): expected 0 <= successes <= trials, trials >= 1")
    _check_bootstrap_args(1, confidence)
    z = float(ndtri((1 + confidence) / 2))
    p = successes / trials
    center = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials ** 2))
    return Estimate(p, max(0.0, center - half), min(1.0, center + half), confidence)


def threshold_estimate(times, reps: int = 2000, confidence: float = 0.95, seed: int | None = 0) -> ThresholdEstimate:
    """Steps to reach a threshold over seeds, counting the seeds that never reach it.

    Args:
        times: ``[runs]`` steps to threshold per seed (:func:`steps_to_threshold`); ``inf`` or None = never.

    The median counts never-reached runs as ``inf``, so once half the runs miss, the median is ``inf``,
    and the upper end of its (percentile bootstrap) interval is ``inf`` as soon as a resample can have
    half its runs missing. That is the honest answer: dropping them would make a flaky method look fast.
    ``fraction_reached`` has a Wilson interval.
    """
    times = np.array([math.inf if t is None else t for t in np.ravel(np.asarray(times, dtype=object))],
                     dtype=np.float64)  # [runs]
    times = _as_scores(times, "times", allow_inf=True)  # [runs, 1]
    _check_bootstrap_args(reps, confidence)
    _check_runs(times, "times")
    median_estimate = _bootstrap(times, _median, reps, confidence, seed, "percentile")
    reached = int(np.isfinite(times).sum())
    return ThresholdEstimate(reached, len(times), median_estimate, wilson_interval(reached, len(times), confidence))


# -------------------------------------------------------------------------------------------- curves
def curves_to_grid(xs_per_run: Sequence, ys_per_run: Sequence, grid=None, num_points: int = 100,
                   window: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(grid [G], curves [runs, G])``: each run's curve (after a ``window`` moving average) linearly
    interpolated onto the grid, NaN outside that run's own x range (never extrapolated).

    The default grid spans only where every run is defined: from the latest first x to the earliest last x.
    """
    if len(xs_per_run) != len(ys_per_run) or len(xs_per_run) == 0:
        raise ValueError(f"got {len(xs_per_run)} x arrays and {len(ys_per_run)} y arrays: expected one of each "
                         "per run, at least one run")
    xs, ys = [], []
    for i, (x, y) in enumerate(zip(xs_per_run, ys_per_run)):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.ndim != 1 or x.shape != y.shape or x.size == 0:
            raise ValueError(f"run {i}: x and y must be 1-D, non-empty and the same length, got {x.shape}, {y.shape}")
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise ValueError(f"run {i}: x or y contains NaN or inf: expected recorded numbers only")
        if np.any(np.diff(x) < 0):
            raise ValueError(f"run {i}: x must be non-decreasing (env steps in recording order)")
        xs.append(x)
        ys.append(moving_average(y, window))
    if grid is None:
        start, end = max(x[0] for x in xs), min(x[-1] for x in xs)
        if start > end:
            raise ValueError(f"the runs share no x range (latest start {start} > earliest end {end}): pass a grid")
        grid = np.linspace(start, end, num_points)
    grid = np.asarray(grid, dtype=np.float64)  # [G]
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError(f"grid must be a non-empty 1-D array of finite x values, got shape {grid.shape}")
    curves = np.full((len(xs), grid.size), np.nan)  # [runs, G]
    for i, (x, y) in enumerate(zip(xs, ys)):
        inside = (grid >= x[0]) & (grid <= x[-1])
        curves[i, inside] = np.interp(grid[inside], x, y)
    return grid, curves


def aggregate_curves(xs_per_run: Sequence, ys_per_run: Sequence, grid=None, num_points: int = 100,
                     statistic: str = "iqm", window: int = 1, reps: int = 2000, confidence: float = 0.95,
                     seed: int | None = 0) -> Band:
    """One learning curve over seeds: ``statistic`` ("iqm", "mean" or "median") across runs at each grid x,
    with a pointwise percentile-bootstrap band that redraws whole runs (curves) with replacement.

    Args:
        xs_per_run, ys_per_run: per run, x (env steps, non-decreasing) and y (e.g. episode returns at the
            env step each ended, or evaluation means), ``[n_i]`` each.
        grid: x values ``[G]``; default ``num_points`` points where every run is defined (see
            :func:`curves_to_grid`). At an x outside some runs' range only the runs defined there count
            (``runs_at``); with fewer than 2 the band is NaN there, with none the point is NaN too.
        window: moving average over each run's own points before interpolating (1 = none).
    """
    if statistic not in ("iqm", "mean", "median"):
        raise ValueError(f"statistic={statistic!r} is invalid: expected 'iqm', 'mean' or 'median'")
    _check_bootstrap_args(reps, confidence)
    grid, curves = curves_to_grid(xs_per_run, ys_per_run, grid, num_points, window)  # [G], [runs, G]
    fn = _BATCHED[statistic]
    defined = ~np.isnan(curves)  # [runs, G]
    point, low, high = (np.full(grid.size, np.nan) for _ in range(3))  # [G] each
    rng = np.random.default_rng(seed)
    patterns, group = np.unique(defined.T, axis=0, return_inverse=True)  # grid points with the same runs
    for pattern, columns in zip(patterns, (group.reshape(-1) == g for g in range(len(patterns)))):
        sub = curves[np.ix_(pattern, columns)]  # [k, g]: the k runs defined on these g grid points
        k = len(sub)
        if k == 0:
            continue
        point[columns] = fn(sub.T[:, :, None])  # [g, k, 1] -> [g]
        if k < 2:
            continue
        dist = np.concatenate([fn(sub[rng.integers(0, k, size=(size, k))].transpose(0, 2, 1)[..., None])
                               for size in _chunk_sizes(reps, sub.size)])  # [B, g]
        low[columns], high[columns] = _percentile_interval(dist, confidence)
    return Band(grid, point, low, high, confidence, statistic, len(curves), defined.sum(axis=0))
