"""Chapter 08's cached experiments: fine-tuning runs over seeds, stored as one JSON table.

``python tools/regenerate_08.py finetune`` runs every arm (:data:`ARMS`) on seeds ``0..SEEDS-1`` on one CPU
core and writes :data:`CACHED`; the lesson reads it with :func:`load_cached` and computes every claim from
its rows. Each row is a :class:`~pgcourse.lm.finetune.FinetuneResult` as a dict (floats rounded to
:data:`DIGITS` decimals) plus its ``arm`` and ``seed``; :func:`rerun_row` runs a row's config again and
rounds the same way, so a test can check that a cached row is what the code computes, bit for bit.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .finetune import FinetuneConfig, finetune

CACHED = Path(__file__).resolve().parents[2] / "figures" / "08_lm" / "finetune_runs.json"
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


def load_cached(path: str | Path = CACHED) -> dict[str, Any]:
    """The cached table: ``{"command", "arms": {name: fields}, "seeds", "rows": [row, ...]}``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no cached fine-tuning runs at {path}: run `{COMMAND}`")
    return json.loads(path.read_text())
