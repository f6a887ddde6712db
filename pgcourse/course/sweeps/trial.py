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

from ..._version import package_versions
from ...rl.api import train
from ...rl.many import BATCHED_ALGORITHMS, UNBATCHED_TRAPS, train_many
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
    record = _new_record(spec, device)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        run = train(spec.algo, spec.env_id, seed=spec.seed, device=device, progress=False, **dict(spec.overrides))
    except Exception as error:  # recorded, then retried or reported by the driver
        return _failed(record, error, time.perf_counter() - started)
    return _finished(record, run, time.perf_counter() - started, time.process_time() - cpu_started)


def batchable(spec: TrialSpec) -> bool:
    """Whether ``pg.train_many`` can train this trial with other seeds of its arm: an algorithm whose loop has
    the agent axis, no trap that only one agent's rows can hold (what ``train_many`` refuses is trained one seed
    at a time)."""
    traps = dict(spec.overrides).get("traps") or ()
    return spec.algo in BATCHED_ALGORITHMS and not set(UNBATCHED_TRAPS) & set(traps)


def run_batch(specs_data: list[dict[str, Any]], device: str = "cpu") -> list[dict[str, Any]]:
    """Train the trials ``specs_data`` (seeds of one arm, :func:`batchable`) as one ``pg.train_many`` batch and
    return their records in the same order.

    Each record is a trial's as :func:`run_trial` writes it, plus ``"batch"``: the batch's seeds in order, its
    size, its wall time and its CPU time (``wall_seconds`` and ``cpu_seconds`` are the batch's divided by its size,
    so that summed over a sweep they count the machine's time once). One seed alone is :func:`run_trial` (``train_many`` of one seed is
    ``pg.train`` bit for bit). An exception fails every trial of the batch (the driver retries each alone).
    """
    if len(specs_data) == 1:
        return [run_trial(specs_data[0], device)]
    specs = [TrialSpec.from_dict(data) for data in specs_data]
    first = specs[0]
    if any((spec.algo, spec.env_id, dict(spec.overrides)) != (first.algo, first.env_id, dict(first.overrides))
           for spec in specs) or not all(batchable(spec) for spec in specs):
        raise ValueError(f"run_batch takes seeds of one batchable arm, got {[spec.trial_id for spec in specs]}")
    seeds = [spec.seed for spec in specs]
    records = [_new_record(spec, device) for spec in specs]
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        runs = train_many(first.algo, first.env_id, seeds=seeds, device=device, progress=False,
                          **dict(first.overrides))
    except Exception as error:
        seconds = time.perf_counter() - started
        return [_failed(record, error, seconds) for record in records]
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    batch = {"seeds": seeds, "agents": len(seeds), "wall_seconds": seconds, "cpu_seconds": cpu_seconds}
    return [{**_finished(record, run, seconds / len(seeds), cpu_seconds / len(seeds)), "batch": batch}
            for record, run in zip(records, runs)]


def _new_record(spec: TrialSpec, device: str) -> dict[str, Any]:
    return {"format": TRIAL_FORMAT, "version": TRIAL_FORMAT_VERSION, "trial_id": spec.trial_id, **spec.to_dict(),
            "arm": spec.arm, "device": device, "host": socket.gethostname(), "versions": package_versions()}


def _failed(record: dict[str, Any], error: Exception, seconds: float) -> dict[str, Any]:
    return {**record, "status": "failed", "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc()[-6000:], "wall_seconds": seconds,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _finished(record: dict[str, Any], run, seconds: float, cpu_seconds: float) -> dict[str, Any]:
    """The record of a finished run: ``wall_seconds`` and ``cpu_seconds`` (this process's CPU time, all threads)."""
    if run.history.status.startswith("interrupted"):  # Ctrl-C reached this worker: not a finished trial
        raise KeyboardInterrupt(f"trial {record['trial_id']} was interrupted")
    history = _finite_or_none(run.history.to_dict())  # strict JSON: inf written as null, as NaN already is
    config = run.config.to_dict()
    env_steps = int(run.history.episodes["env_step"][-1]) if len(run.history.episodes) else 0
    if len(run.history.updates):
        env_steps = max(env_steps, int(run.history.updates["env_step"][-1]))
    return {**record, "status": "ok", "error": None, "run_status": run.history.status, "config": config,
            "history": history, "env_steps": env_steps, "episodes": len(run.history.episodes),
            "wall_seconds": seconds, "cpu_seconds": cpu_seconds,
            "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "history_sha256": history_digest(config, history)}
