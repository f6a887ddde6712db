"""The results folder of a sweep: ``sweep.json`` (what was asked for) and ``trials/<trial_id>.json``
(one JSON object per finished trial, written the moment it ends, atomically: a crash never leaves
half a file). ``.json.gz`` is read too (the lessons' cached sweeps are compressed).

A folder is never mixed with anything that is not a sweep: an existing non-empty folder without
``sweep.json`` is refused, and a trial file is only ever replaced by a newer record of the same trial.
"""
from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ...rl.history import History
from .spec import TrialSpec, arm_conflict, describe_difference
from ..._version import package_versions
from .trial import TRIAL_FORMAT, history_digest

SWEEP_FORMAT = "pgcourse-sweep"
SWEEP_FORMAT_VERSION = 1


class SweepResultsError(ValueError):
    """A results folder that is not a sweep, or a trial file that is corrupt or was edited."""


@dataclass
class TrialRecord:
    """A finished trial as read back: the spec, the full config, the history and how it ran.

    ``data`` is the JSON object as written (see :func:`pgcourse.course.sweeps.trial.run_trial`).
    """

    data: dict[str, Any]

    @property
    def spec(self) -> TrialSpec:
        return TrialSpec.from_dict(self.data)

    trial_id = property(lambda self: self.data["trial_id"])
    algo = property(lambda self: self.data["algo"])
    env_id = property(lambda self: self.data["env_id"])
    seed = property(lambda self: int(self.data["seed"]))
    label = property(lambda self: self.data["label"])
    arm = property(lambda self: self.data["arm"])
    status = property(lambda self: self.data["status"])
    ok = property(lambda self: self.data["status"] == "ok")
    config = property(lambda self: self.data.get("config"))
    wall_seconds = property(lambda self: float(self.data.get("wall_seconds", float("nan"))))

    @property
    def history(self) -> History:
        if not self.ok:
            raise SweepResultsError(f"trial {self.trial_id} failed ({self.data.get('error')}); it has no history")
        return History.from_dict(self.data["history"])

    @property
    def episode_returns(self) -> np.ndarray:
        return np.asarray([np.nan if v is None else v for v in self.data["history"]["episodes"]["return"]], float)

    @property
    def episode_env_steps(self) -> np.ndarray:
        return np.asarray(self.data["history"]["episodes"]["env_step"], dtype=float)

    def __repr__(self) -> str:
        return f"TrialRecord({self.arm}, seed {self.seed}, {self.status})"


def _read_json(path: Path) -> Any:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as file:
        return json.load(file)


def _write_atomically(path: Path, payload: Any, compress: bool) -> None:
    text = json.dumps(payload, allow_nan=False)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(gzip.compress(text.encode(), mtime=0) if compress else text.encode())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ResultsFolder:
    """Read and write one sweep's results folder (see the module docstring for the layout)."""

    def __init__(self, path: str | os.PathLike, compress: bool = False):
        self.path = Path(path).expanduser()
        self.compress = compress
        self.trials_dir = self.path / "trials"
        self.manifest_path = self.path / "sweep.json"

    # -- opening -------------------------------------------------------------------------------
    def is_sweep(self) -> bool:
        return self.manifest_path.is_file()

    def check_writable(self) -> None:
        """Refuse a file, or a non-empty folder that is not a sweep (it is someone's work, never mixed into)."""
        if self.path.exists() and not self.path.is_dir():
            raise SweepResultsError(f"{self.path} exists and is not a folder; choose another results folder")
        if self.path.is_dir() and not self.is_sweep() and any(self.path.iterdir()):
            raise SweepResultsError(f"{self.path} holds files but no sweep.json: it is not a sweep's results folder, "
                                    "and a sweep never writes among other files; choose an empty or new folder")

    def read_manifest(self) -> dict[str, Any]:
        try:
            manifest = _read_json(self.manifest_path)
        except FileNotFoundError:
            raise SweepResultsError(f"{self.path} is not a sweep's results folder (no sweep.json)") from None
        except (OSError, ValueError) as error:
            raise SweepResultsError(f"{self.manifest_path} is corrupt: {error}") from None
        if not isinstance(manifest, dict) or manifest.get("format") != SWEEP_FORMAT:
            raise SweepResultsError(f"{self.manifest_path} does not describe a pgcourse sweep")
        return manifest

    def check_request(self, specs: Sequence[TrialSpec]) -> None:
        """Refuse trials whose arm name the folder already holds with other settings: the statistics group
        trials by arm name, so both experiments' seeds would be pooled as one arm."""
        if not self.is_sweep():
            return
        conflict = arm_conflict([*self.requested(), *specs])
        if conflict is not None:
            old, new = conflict
            raise SweepResultsError(
                f"{self.path}: arm {old.arm!r} is already in this folder with other settings "
                f"({describe_difference(old.overrides, new.overrides)}); its seeds would be pooled with this "
                "sweep's as one arm: use a new results folder, or another label for the arm")

    def record_request(self, specs: Sequence[TrialSpec], command: str | None = None) -> None:
        """Add the requested trials to ``sweep.json`` (a resumed or extended sweep keeps earlier ones)."""
        self.check_writable()
        self.check_request(specs)
        self.trials_dir.mkdir(parents=True, exist_ok=True)
        manifest = self.read_manifest() if self.is_sweep() else {
            "format": SWEEP_FORMAT, "version": SWEEP_FORMAT_VERSION, "trials": [], "runs": []}
        known = {spec["trial_id"] for spec in manifest["trials"]}
        for spec in specs:
            if spec.trial_id not in known:
                manifest["trials"].append({"trial_id": spec.trial_id, **spec.to_dict()})
                known.add(spec.trial_id)
        manifest["runs"].append({"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                 "trials": len(specs), "command": command, "versions": package_versions()})
        _write_atomically(self.manifest_path, manifest, compress=False)

    def requested(self) -> list[TrialSpec]:
        return [TrialSpec.from_dict(item) for item in self.read_manifest()["trials"]]

    # -- trials --------------------------------------------------------------------------------
    def trial_path(self, trial_id: str) -> Path | None:
        for suffix in (".json", ".json.gz"):
            path = self.trials_dir / f"{trial_id}{suffix}"
            if path.is_file():
                return path
        return None

    def write(self, record: dict[str, Any]) -> Path:
        suffix = ".json.gz" if self.compress else ".json"
        path = self.trials_dir / f"{record['trial_id']}{suffix}"
        _write_atomically(path, record, self.compress)
        other = self.trials_dir / f"{record['trial_id']}{'.json' if self.compress else '.json.gz'}"
        other.unlink(missing_ok=True)  # an older record of this trial in the other format
        return path

    def read(self, trial_id: str, check: bool = True) -> TrialRecord | None:
        path = self.trial_path(trial_id)
        if path is None:
            return None
        try:
            data = _read_json(path)
        except (OSError, ValueError, EOFError) as error:
            raise SweepResultsError(f"{path} is corrupt (not readable JSON: {error})") from None
        if not isinstance(data, dict) or data.get("format") != TRIAL_FORMAT or data.get("trial_id") != trial_id:
            raise SweepResultsError(f"{path} is not the record of trial {trial_id}")
        if check and data.get("status") == "ok":
            try:
                digest = history_digest(data["config"], data["history"])
            except (KeyError, TypeError) as error:
                raise SweepResultsError(f"{path} is incomplete: {error!r} missing") from None
            if digest != data.get("history_sha256"):
                raise SweepResultsError(f"{path} was edited or damaged: its config and history no longer match "
                                        "the digest written with them (re-run the trial, or delete the file)")
        return TrialRecord(data)

    def records(self, trial_ids: Iterable[str] | None = None, check: bool = True) -> Iterator[TrialRecord]:
        """Every trial record in the folder (or those of ``trial_ids`` that exist), in id order."""
        if trial_ids is None:
            names = sorted(p.name for p in self.trials_dir.glob("*.json*") if not p.name.startswith("."))
            trial_ids = [name.removesuffix(".gz").removesuffix(".json") for name in names]
        for trial_id in trial_ids:
            record = self.read(trial_id, check)
            if record is not None:
                yield record

    def finished_ids(self) -> set[str]:
        """Trials with an ``"ok"`` record (a failed record is run again when the sweep resumes)."""
        return {record.trial_id for record in self.records(check=False) if record.ok}
