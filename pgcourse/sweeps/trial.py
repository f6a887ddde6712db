"""One trial, run where a backend puts it (this process, a worker process, a Ray node): train, then
return a JSON-ready record. An exception in training is caught and returned as a ``"failed"`` record
with its traceback, so the driver decides whether to retry; only an interrupt propagates.
"""
from __future__ import annotations

import hashlib
import json
import math
import socket
import time
import traceback
from datetime import datetime, timezone
from typing import Any

from .._version import package_versions
from ..api import train
from .spec import TrialSpec

TRIAL_FORMAT = "pgcourse-trial"
TRIAL_FORMAT_VERSION = 1
WALL_TIME_KEYS = ("wall_time",)  # history columns (and solved_at keys) that differ between identical runs


def deterministic_part(history: dict[str, Any]) -> dict[str, Any]:
    """The history without its wall-clock columns: what the same seed must reproduce exactly."""
    def strip(table: dict[str, list]) -> dict[str, list]:
        return {name: values for name, values in table.items() if name not in WALL_TIME_KEYS}

    solved_at = history.get("solved_at")
    return {"episodes": strip(history["episodes"]), "updates": strip(history["updates"]),
            "evals": strip(history["evals"]), "status": history["status"],
            "solved_at": None if solved_at is None else
            {key: value for key, value in solved_at.items() if key not in WALL_TIME_KEYS}}


def history_digest(config: dict[str, Any], history: dict[str, Any]) -> str:
    """SHA-256 of the config and the deterministic part of the history (a corrupted or hand-edited file
    no longer matches it; ``pgcourse sweep --verify`` re-runs trials to catch an edit that recomputed it)."""
    payload = json.dumps({"config": config, "history": deterministic_part(history)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    return value


def run_trial(spec_data: dict[str, Any], device: str = "cpu") -> dict[str, Any]:
    """Train the trial described by ``spec_data`` (:meth:`TrialSpec.to_dict`) and return its record."""
    spec = TrialSpec.from_dict(spec_data)
    record: dict[str, Any] = {"format": TRIAL_FORMAT, "version": TRIAL_FORMAT_VERSION, "trial_id": spec.trial_id,
                              **spec.to_dict(), "arm": spec.arm, "device": device,
                              "host": socket.gethostname(), "versions": package_versions()}
    started = time.perf_counter()
    try:
        run = train(spec.algo, spec.env_id, seed=spec.seed, device=device, progress=False, **dict(spec.overrides))
    except Exception as error:  # recorded, then retried or reported by the driver
        record.update(status="failed", error=f"{type(error).__name__}: {error}",
                      traceback=traceback.format_exc()[-6000:], wall_seconds=time.perf_counter() - started,
                      finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        return record
    if run.history.status.startswith("interrupted"):  # Ctrl-C reached this worker: not a finished trial
        raise KeyboardInterrupt(f"trial {spec.trial_id} was interrupted")
    history = _finite_or_none(run.history.to_dict())  # strict JSON: inf written as null, as NaN already is
    config = run.config.to_dict()
    env_steps = int(run.history.episodes["env_step"][-1]) if len(run.history.episodes) else 0
    if len(run.history.updates):
        env_steps = max(env_steps, int(run.history.updates["env_step"][-1]))
    record.update(status="ok", error=None, run_status=run.history.status, config=config, history=history,
                  env_steps=env_steps, episodes=len(run.history.episodes),
                  wall_seconds=time.perf_counter() - started,
                  finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  history_sha256=history_digest(config, history))
    return record
