"""Chapter 08's cached experiments: fine-tuning runs over seeds (one JSON table), and the live pretraining run's seeds.

``python tools/regenerate_08.py finetune`` runs every arm (:data:`ARMS`) on seeds ``0..SEEDS-1`` on one CPU
core and writes :data:`CACHED`; the lesson reads it with :func:`load_cached` and computes every claim from
its rows. Each row is a :class:`~pgcourse.rl.lm.finetune.FinetuneResult` as a dict (floats rounded to
:data:`DIGITS` decimals) plus its ``arm`` and ``seed``; :func:`rerun_row` runs a row's config again and
rounds the same way, and :func:`compare_rerun_row` says how the two agree, at the three levels of
:mod:`pgcourse.rl.agreement`: bit for bit (a fact about the machine that re-ran it), within a tolerance, or, where
another CPU or thread count made the re-run part from the row over a rounding difference, inside the spread of
the arm's other seeds.

The lesson's live pretraining run (:func:`live_pretraining`: :data:`LIVE_PRETRAIN_STEPS` steps, a complete
schedule, the cached model's other settings) has its own small record, :data:`LIVE_PRETRAIN_SEEDS`: the loss
of every :data:`LIVE_PRETRAIN_BLOCK`-step block for ten seeds, written by ``python -m pgcourse.rl.lm.cached
pretrain-seeds``. Seed 0 is the run the lesson repeats (bit for bit on a machine that rounds as this one did);
the other nine give the spread that the live run lands inside on any machine.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..agreement import Agreement, Onset, SpreadCheck, compare, divergence_onset, spread_check
from ..course_files import figures_dir
from .finetune import FinetuneConfig, finetune
from .model import ModelConfig
from .pretrain import PretrainResult, pretrain, pretrained_info

CACHED = Path(__file__).resolve().parents[3] / "figures" / "08_lm" / "finetune_runs.json"
SEEDS = 10
DIGITS = 5
COMMAND = "python tools/regenerate_08.py finetune"
# arm name -> FinetuneConfig fields (the method defaults fill the rest)
ARMS: dict[str, dict[str, Any]] = {
    "reinforce": {"method": "reinforce"},
    "ppo": {"method": "ppo"},
    "grpo": {"method": "grpo"},
    "grpo_kl0": {"method": "grpo", "kl_coef": 0.0},
    "loophole_kl0": {"method": "grpo", "reward": "loophole", "kl_coef": 0.0},
    "loophole_kl_0.5": {"method": "grpo", "reward": "loophole", "kl_coef": 0.5},
    "loophole_kl_2": {"method": "grpo", "reward": "loophole", "kl_coef": 2.0},
}


def rounded(value: Any, digits: int = DIGITS) -> Any:
    """``value`` with every float rounded to ``digits`` decimals (dicts and lists walked)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: rounded(item, digits) for key, item in value.items()}
    if isinstance(value, list):
        return [rounded(item, digits) for item in value]
    return value


def run_arm(arm: str, seed: int, device: str = "cpu") -> dict[str, Any]:
    """One cached row: fine-tune arm ``arm`` on ``seed`` (CPU) and return its rounded dict with arm and seed."""
    if arm not in ARMS:
        raise ValueError(f"arm={arm!r} is invalid: expected one of {sorted(ARMS)}")
    result = finetune(FinetuneConfig(**ARMS[arm], seed=seed, device=device))
    row = rounded(result.to_dict())
    return {"arm": arm, "seed": seed, **row}


def rerun_row(row: dict[str, Any]) -> dict[str, Any]:
    """Run a cached row's stored config again; returns the rounded result in the row's layout."""
    result = finetune(FinetuneConfig.from_dict(row["config"]))
    return {"arm": row["arm"], "seed": row["seed"], **rounded(result.to_dict())}


def cached_path() -> Path:
    """:data:`CACHED` in a source checkout or an editable install; with a regular install (Colab), where the
    package is not inside the course, the same file in the course folder :func:`pgcourse.figures_dir` finds."""
    return CACHED if CACHED.exists() else figures_dir() / CACHED.relative_to(CACHED.parents[2] / "figures")


def load_cached(path: str | Path | None = None) -> dict[str, Any]:
    """The cached table (``path``, default :func:`cached_path`): ``{"command", "arms": {name: fields}, "seeds",
    "rows": [row, ...]}``."""
    path = cached_path() if path is None else Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no cached fine-tuning runs at {path}: run `{COMMAND}`")
    return json.loads(path.read_text())


# -- how a re-run agrees with its cached row ------------------------------------------------------------------
TIMINGS = ("wall_seconds", "cpu_seconds")  # facts about the machine that ran it: never compared
RTOL = 1e-4  # float32 training rounds at ~1e-7 per operation; 1e-4 leaves room for a few thousand roundings
ATOL = 10.0 ** -DIGITS  # one unit of the last stored decimal: two honest values can round to neighbours
# name -> the summary of a row that a re-run on another machine must land near: (row -> float)
SUMMARIES = {
    "eval_start.sampled_exact": lambda row: row["eval_start"]["sampled_exact"],
    "eval_end.sampled_exact": lambda row: row["eval_end"]["sampled_exact"],
    "mean of history.reward": lambda row: float(np.mean(row["history"]["reward"])),
    "mean of history.kl": lambda row: float(np.mean(row["history"]["kl"])),
}


@dataclass(frozen=True)
class RerunCheck:
    """How a re-run of a cached row agrees with it (:func:`compare_rerun_row`); ``str()`` is the report.

    Attributes:
        level: ``"bit for bit"``, ``"within tolerance"``, ``"inside the spread"``, or None (they disagree).
        agreement: :func:`pgcourse.rl.agreement.compare` of the row and the re-run, timings left out.
        onset: where the re-run's history first leaves the row's (None if it never does), and whether that first
            difference is a rounding difference.
        spreads: summary name -> (the row's value, the re-run's) each checked against the arm's other seeds.
        problem: why they disagree (None if they agree).
    """

    level: str | None
    agreement: Agreement
    onset: Onset | None = None
    spreads: dict[str, tuple[SpreadCheck, SpreadCheck]] = field(default_factory=dict)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.level is not None

    def __str__(self) -> str:
        lines = [str(self.agreement)]
        if self.onset is not None:
            lines.append(f"history: {self.onset}")
        for name, (stored, again) in self.spreads.items():
            lines.append(f"{name}: cached {stored}; re-run {again}")
        lines.append(f"level: {self.level}" if self.ok else f"DISAGREE: {self.problem}")
        return "\n".join(lines)


def _without_timings(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key not in TIMINGS}


def compare_rerun_row(row: dict[str, Any], again: dict[str, Any], others: list[dict[str, Any]],
                      rtol: float = RTOL, atol: float = ATOL) -> RerunCheck:
    """How ``again`` (:func:`rerun_row` of ``row``) agrees with the cached ``row``; ``others``: the arm's other seeds.

    Three levels, strongest first, each said for what it is:

    1. **bit for bit**: every stored number, text and count reproduced (timings aside). A fact about the machine
       that re-ran it: the one that made the cache, or one that rounds as it did.
    2. **within tolerance**: every number within ``atol + rtol * |stored|`` and everything else equal.
    3. **inside the spread**: the re-run parted from the row, and its history's first difference is a rounding
       difference (:func:`pgcourse.rl.agreement.divergence_onset` on the per-update history), as on another CPU
       kernel path or thread count; from there the two are different draws of the same run. Then each summary of
       :data:`SUMMARIES`, the row's and the re-run's, must lie inside the arm's other seeds' range widened by
       twice its width on each side (:func:`pgcourse.rl.agreement.spread_check`).

    They disagree (``level`` None) when the config or the status differs, when the history's first difference is
    larger than rounding (an edited number, or code that computes something else), or when a summary of either
    lies outside the spread (an edited evaluation, a run that stopped learning).

    What it cannot tell: the history is stored rounded to :data:`DIGITS` decimals, so a rounding difference below
    the 5th decimal is invisible in it, and the row only says where the runs part to within that rounding. A
    number edited within the rounding (1e-5), or an edit of a summary that keeps it inside the seeds' spread where
    the re-run is not bit for bit, passes level 3: on a machine that reproduces the row, the agreement printed
    still shows the difference (level 1 fails, and its first difference is named).
    """
    agreement = compare(_without_timings(row), _without_timings(again), rtol=rtol, atol=atol)
    if agreement.identical:
        return RerunCheck("bit for bit", agreement)
    for key in ("arm", "seed", "config", "status"):
        if row.get(key) != again.get(key):
            return RerunCheck(None, agreement, problem=f"{key}: cached {row.get(key)!r} vs re-run {again.get(key)!r}")
    onset = divergence_onset({"history": row["history"]}, {"history": again["history"]}, tables=("history",),
                             rtol=rtol, atol=atol, step_column="update")
    if onset is not None and not onset.rounding:
        return RerunCheck(None, agreement, onset, problem=f"the history's first difference is larger than rounding "
                                                          f"({onset.detail}): an edited number or changed code")
    if len(others) < 2:
        return RerunCheck(None, agreement, onset, problem=f"the arm has {len(others)} other seed(s): no spread")
    spreads = {name: (spread_check(summary(row), [summary(o) for o in others]),
                      spread_check(summary(again), [summary(o) for o in others])) for name, summary in SUMMARIES.items()}
    outside = [f"{name} ({which})" for name, checks in spreads.items()
               for which, check in zip(("cached", "re-run"), checks) if not check.inside]
    if outside:
        return RerunCheck(None, agreement, onset, spreads, problem="outside the other seeds' spread: " + ", ".join(outside))
    return RerunCheck("within tolerance" if agreement.close else "inside the spread", agreement, onset, spreads)


# -- the lesson's live pretraining run ------------------------------------------------------------------------
LIVE_PRETRAIN_STEPS = 750  # about 25 s of one CPU thread on the machine that made the cache
LIVE_PRETRAIN_BLOCK = 50  # the loss curve is recorded as the mean of each block of this many steps
PRETRAIN_SEEDS_COMMAND = "python -m pgcourse.rl.lm.cached pretrain-seeds"
# seed -> the mean loss of each LIVE_PRETRAIN_BLOCK-step block of live_pretraining(seed) (steps 1-50, 51-100, ...),
# rounded to DIGITS decimals; one CPU thread; written by PRETRAIN_SEEDS_COMMAND
LIVE_PRETRAIN_SEEDS: dict[int, list[float]] = {
    0: [1.97585, 0.86639, 0.69495, 0.62165, 0.54959, 0.50411, 0.47682, 0.45599, 0.43606, 0.41654, 0.41341, 0.40287,
        0.39118, 0.39395, 0.38655],
    1: [1.98367, 0.84367, 0.66881, 0.57442, 0.53579, 0.48633, 0.46079, 0.43616, 0.42311, 0.40631, 0.40839, 0.4048,
        0.3904, 0.37885, 0.37836],
    2: [1.95052, 0.87514, 0.68526, 0.62633, 0.54284, 0.48883, 0.46831, 0.43726, 0.43188, 0.42145, 0.40573, 0.39452,
        0.38888, 0.38629, 0.3765],
    3: [1.95286, 0.85415, 0.69093, 0.59194, 0.52918, 0.48124, 0.45564, 0.431, 0.42362, 0.41263, 0.40027, 0.38933,
        0.38111, 0.37669, 0.37419],
    4: [1.96531, 0.86367, 0.69116, 0.61857, 0.55921, 0.50871, 0.47552, 0.45093, 0.42864, 0.40987, 0.41006, 0.39648,
        0.38811, 0.38816, 0.37732],
    5: [1.95587, 0.85788, 0.70743, 0.62368, 0.5491, 0.49276, 0.47235, 0.43934, 0.42296, 0.40774, 0.40232, 0.38828,
        0.38474, 0.38279, 0.38212],
    6: [1.9612, 0.8609, 0.66588, 0.58835, 0.54168, 0.5031, 0.46707, 0.43879, 0.43332, 0.41872, 0.40692, 0.3938,
        0.39438, 0.38476, 0.38197],
    7: [1.96062, 0.86669, 0.69782, 0.58746, 0.52157, 0.48428, 0.45886, 0.43931, 0.42459, 0.41334, 0.39785, 0.3949,
        0.38109, 0.37869, 0.38169],
    8: [1.96291, 0.84369, 0.68729, 0.58858, 0.52453, 0.49122, 0.46425, 0.43653, 0.42881, 0.41403, 0.40351, 0.39594,
        0.3914, 0.38495, 0.38538],
    9: [1.94782, 0.84955, 0.68847, 0.60056, 0.52478, 0.47663, 0.45955, 0.42988, 0.42472, 0.40926, 0.40183, 0.39361,
        0.38468, 0.38277, 0.3827],
}


def block_losses(losses: list[float], block: int = LIVE_PRETRAIN_BLOCK) -> list[float]:
    """``[len(losses) // block]``: the mean loss of each complete block of ``block`` steps, rounded to :data:`DIGITS`."""
    blocks = len(losses) // block
    return [round(float(np.mean(losses[i * block:(i + 1) * block])), DIGITS) for i in range(blocks)]


def live_pretraining(seed: int = 0, steps: int = LIVE_PRETRAIN_STEPS) -> PretrainResult:
    """The lesson's live pretraining: :func:`~pgcourse.rl.lm.pretrain.pretrain` for ``steps`` steps (a complete
    schedule: warm-up, then cosine decay to 0 at ``steps``), every other setting the cached model's."""
    settings = pretrained_info()["config"]
    return pretrain(steps=steps, seed=seed, batch_size=settings["batch_size"], lr=settings["lr"],
                    warmup=settings["warmup"], min_digits=settings["min_digits"], max_digits=settings["max_digits"],
                    model_config=ModelConfig(**settings["model"]))


def measure_live_pretraining(seeds: range = range(SEEDS)) -> dict[int, list[float]]:
    """:func:`block_losses` of :func:`live_pretraining` for each seed (one CPU thread, as the record was made)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {seed: block_losses(live_pretraining(seed).losses) for seed in seeds}
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    if sys.argv[1:] != ["pretrain-seeds"]:
        sys.exit(f"usage: {PRETRAIN_SEEDS_COMMAND}   (prints LIVE_PRETRAIN_SEEDS to paste into {__file__})")
    print(f"LIVE_PRETRAIN_SEEDS: dict[int, list[float]] = {measure_live_pretraining()!r}")
