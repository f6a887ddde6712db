"""What a run records: one row per finished episode, per update and per evaluation, as arrays."""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

EPISODE_FIELDS = ("return", "length", "env_step", "wall_time")
UPDATE_FIELDS = ("env_step", "wall_time", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                 "explained_variance", "actor_grad_norm", "critic_grad_norm", "lr", "critic_lr",
                 "advantage_std", "log_std_mean", "epochs_run", "value_rel_error", "update_kl",
                 # the critic's explained variance of the update's returns, named by WHEN it is measured:
                 # _before, with the values the batch was collected with (the critic has not trained on this batch:
                 # out of sample); _after, after the update's critic steps, on the same batch (in sample).
                 # "explained_variance" is kept for saved runs: it is _after for PPO and TRPO, _before for A2C
                 # and REINFORCE with a baseline.
                 "explained_variance_before", "explained_variance_after",
                 # TRPO's: candidate steps the line search tried, the fraction of the full step taken (0: none),
                 # conjugate gradient's residual norm, the surrogate's real and linearly predicted improvement
                 "line_search_steps", "step_fraction", "cg_residual", "surrogate_improvement",
                 "expected_improvement")
EVAL_FIELDS = ("env_step", "wall_time", "mean", "std")


class Table(Mapping):
    """Columns of equal length; ``table["return"]`` (or ``table.column("return")``) is a float array.

    ``wall_time`` is seconds since training started, *excluding* the time spent in evaluations
    during training, so it measures the cost of learning alone.
    """

    def __init__(self, fields: tuple[str, ...], rows: dict[str, list[float]] | None = None):
        self.fields = fields
        self._columns: dict[str, list[float]] = {name: [] for name in fields}
        if rows:
            for name, values in rows.items():
                if name not in self._columns:
                    raise ValueError(f"unknown history column {name!r}; expected one of {fields}")
                self._columns[name] = [float("nan") if v is None else float(v) for v in values]
            num_rows = max(len(v) for v in self._columns.values())
            for name in set(fields) - set(rows):  # a column added after this run was saved: NaN
                self._columns[name] = [float("nan")] * num_rows
            lengths = {len(v) for v in self._columns.values()}
            if len(lengths) > 1:
                raise ValueError(f"history columns have different lengths: { {k: len(v) for k, v in self._columns.items()} }")

    def append(self, **values: float) -> None:
        missing = set(self.fields) - set(values)
        extra = set(values) - set(self.fields)
        if extra:
            raise ValueError(f"unknown history column(s) {sorted(extra)}; expected {self.fields}")
        for name in self.fields:
            self._columns[name].append(float(values[name]) if name not in missing else float("nan"))

    def extend(self, **columns: np.ndarray) -> None:
        """Append many rows at once, a sequence per column (all of one length), as :meth:`append` appends one."""
        extra = set(columns) - set(self.fields)
        if extra:
            raise ValueError(f"unknown history column(s) {sorted(extra)}; expected {self.fields}")
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"columns of different lengths: { {name: len(v) for name, v in columns.items()} }")
        rows = lengths.pop() if lengths else 0
        for name in self.fields:
            self._columns[name].extend(np.asarray(columns[name], dtype=np.float64).tolist() if name in columns
                                       else [float("nan")] * rows)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._columns:
            raise KeyError(f"{name!r} is not a history column; columns: {self.fields}")
        return np.asarray(self._columns[name], dtype=np.float64)

    column = __getitem__

    def __iter__(self) -> Iterator[str]:
        return iter(self.fields)

    def __len__(self) -> int:
        return len(self._columns[self.fields[0]])

    @property
    def num_rows(self) -> int:
        return len(self)

    def to_dict(self) -> dict[str, list[float | None]]:
        """Columns as lists, NaN and +/-inf written as None (so the saved JSON is strict JSON; read back, None is
        NaN). A history saved with ``Infinity`` (before inf was written as None) still loads."""
        return {name: [v if math.isfinite(v) else None for v in values] for name, values in self._columns.items()}

    def __repr__(self) -> str:
        return f"Table({len(self)} rows; columns {', '.join(self.fields)})"


class History:
    """Per-episode, per-update and per-evaluation records of one training run.

    ``history.episodes["return"]`` – raw (unscaled) episode returns, in the order episodes ended;
    ``history.episodes["env_step"]`` – env transitions collected when each ended;
    ``history.updates[...]`` – diagnostics after each gradient update (see ``UPDATE_FIELDS``; a column an
    algorithm does not measure is NaN). PPO logs two KLs: ``approx_kl``, the mean over the update's
    gradient steps of the minibatch KL measured before each step (what ``target_kl`` is compared
    with), and ``update_kl``, KL(pi_old || pi_new) over the whole batch after the last epoch;
    ``history.evals[...]`` – evaluations during training in the config's ``eval_mode`` (if ``eval_every > 0``);
    ``history.status`` – ``"completed"``, ``"solved"``, ``"interrupted"`` (Ctrl-C), ``"checkpoint"`` (a
    saved checkpoint) or ``"stopped: <reason>"``.
    """

    def __init__(self) -> None:
        self.episodes = Table(EPISODE_FIELDS)
        self.updates = Table(UPDATE_FIELDS)
        self.evals = Table(EVAL_FIELDS)
        self.status = "running"
        self.solved_at: dict[str, float] | None = None  # first evaluation that reached the threshold

    # convenience views the notebooks use most
    @property
    def episode_returns(self) -> np.ndarray:
        return self.episodes["return"]

    @property
    def episode_env_steps(self) -> np.ndarray:
        return self.episodes["env_step"]

    def to_dict(self) -> dict[str, Any]:
        return {"episodes": self.episodes.to_dict(), "updates": self.updates.to_dict(), "evals": self.evals.to_dict(),
                "status": self.status, "solved_at": self.solved_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        history = cls()
        history.episodes = Table(EPISODE_FIELDS, data["episodes"])
        history.updates = Table(UPDATE_FIELDS, data["updates"])
        history.evals = Table(EVAL_FIELDS, data["evals"])
        history.status = str(data["status"])
        history.solved_at = data.get("solved_at")
        return history

    def __repr__(self) -> str:
        return (f"History({len(self.episodes)} episodes, {len(self.updates)} updates, "
                f"{len(self.evals)} evaluations, status={self.status!r})")


def moving_average(values, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` values (shorter at the start), same length as ``values``."""
    values = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window={window} must be >= 1")
    cumsum = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    starts = np.arange(1, len(values) + 1) - counts
    return (cumsum[1:] - cumsum[starts]) / counts
