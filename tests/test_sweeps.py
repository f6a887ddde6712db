"""``pg.sweep`` on the local backend (a process pool), the results folder, and ``pgcourse sweep`` / ``plot``.

Budgets are tiny (512-1024 CartPole steps, under a second of training each); most driver tests run
their trials in this process (``InlineBackend``) so only the tests about processes pay for a pool.
The trial functions that crash or raise on purpose are in tests/sweep_helpers.py.
"""
from __future__ import annotations

import functools
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import pgcourse as pg
import sweep_helpers
from sweep_helpers import part_files as _part_files, running as _running
from sweep_helpers import interrupt_when, pgcourse_command, trial_files as _trial_files
from conftest import assert_history_equal
from pgcourse.course import stats
from pgcourse.cli import main, parse_grid_axis, parse_seeds
from pgcourse.rl.config import ConfigError
from pgcourse.course.sweeps import (LocalBackend, ResultsFolder, SweepResultsError, TrialSpec, expand, load_results,
                                    plot_sweep, run_trial, verify)
from pgcourse.course.sweeps.trial import deterministic_part, history_digest

GRID = {"clip_eps": [0.1, 0.2]}
SETTINGS = dict(total_steps=1024, eval_every=512, eval_episodes=3)  # every trial of the shared sweep


# -- helpers ----------------------------------------------------------------------------------------
class InlineBackend(LocalBackend):
    """Runs each trial in this process when its result is asked for (no pool): fast driver tests.

    ``submitted`` lists every trial id handed to it, in order (a resumed sweep must hand it none).
    """

    def __init__(self, function=run_trial):
        super().__init__(workers=1, function=function)
        self.pending: deque[TrialSpec] = deque()
        self.submitted: list[str] = []

    def submit(self, spec):
        self.pending.append(spec)
        self.submitted.append(spec.trial_id)

    @property
    def in_flight(self):
        return len(self.pending)

    def next_result(self):
        spec = self.pending.popleft()
        return spec, self.function(spec.to_dict(), self.device)

    def close(self, interrupted=False):
        self.pending.clear()


class NoTrainingBackend(InlineBackend):
    """Fails the test if the sweep hands it any trial."""

    def submit(self, spec):
        pytest.fail(f"the sweep ran {spec.trial_id}, which is already finished")


def _copy(results, tmp_path) -> Path:
    """A private copy of the shared sweep's folder, for tests that change it."""
    return Path(shutil.copytree(results.folder, tmp_path / "sweep"))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _edit_trial(path: Path, change, recompute_digest: bool) -> None:
    data = json.loads(path.read_text())
    change(data)
    if recompute_digest:
        data["history_sha256"] = history_digest(data["config"], data["history"])
    path.write_text(json.dumps(data))


def _add_to_return_3(data):
    data["history"]["episodes"]["return"][3] += 1.0


def _one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """2 arms x 2 seeds of tiny PPO CartPole runs on a pool of 2 workers, shared read-only (copy it to edit)."""
    folder = tmp_path_factory.mktemp("sweeps") / "clip"
    results = pg.sweep("ppo", "CartPole-v1", seeds=2, grid=GRID, folder=folder, workers=2, progress=False,
                       **SETTINGS)
    assert len(results.trials) == 4 and not results.failed and not results.missing, results
    return results


# -- the grid ---------------------------------------------------------------------------------------
def test_a_dict_grid_is_the_product_of_its_values_times_the_seeds():
    specs = expand("ppo", "CartPole-v1", 2, {"clip_eps": [0.1, 0.2], "hidden_sizes": [(32, 32), (64,)]},
                   {"total_steps": 512})
    assert len(specs) == 8
    assert list(dict.fromkeys(s.label for s in specs)) == [
        "clip_eps=0.1, hidden_sizes=(32,32)", "clip_eps=0.1, hidden_sizes=(64)",
        "clip_eps=0.2, hidden_sizes=(32,32)", "clip_eps=0.2, hidden_sizes=(64)"]
    assert [s.seed for s in specs] == [0, 1] * 4
    assert specs[2].overrides == {"total_steps": 512, "clip_eps": 0.1, "hidden_sizes": [64]}  # JSON values
    assert {(s.algo, s.env_id) for s in specs} == {("ppo", "CartPole-v1")}


def test_a_list_grid_gives_the_arms_themselves_with_their_own_label_algo_and_env():
    specs = expand("ppo", "CartPole-v1", [3], [
        {"label": "buggy", "traps": ["long_rollout"]},
        {"label": "fixed"},
        {"algo": "a2c", "env_id": ["CartPole-v1", "Acrobot-v1"], "lr": 1e-3},
    ])
    assert [(s.algo, s.env_id, s.label, s.seed) for s in specs] == [
        ("ppo", "CartPole-v1", "buggy", 3), ("ppo", "CartPole-v1", "fixed", 3),
        ("a2c", "CartPole-v1", "lr=0.001", 3), ("a2c", "Acrobot-v1", "lr=0.001", 3)]
    assert specs[0].overrides == {"traps": ["long_rollout"]} and specs[1].overrides == {}
    assert specs[3].arm == "a2c Acrobot-v1 lr=0.001"
    both = expand(["ppo", "a2c"], ["CartPole-v1", "Acrobot-v1"], 1)
    assert [s.arm for s in both] == ["ppo CartPole-v1 default", "ppo Acrobot-v1 default",
                                     "a2c CartPole-v1 default", "a2c Acrobot-v1 default"]


@pytest.mark.parametrize("seeds, expected", [(3, [0, 1, 2]), ([5, 7], [5, 7]), (range(2, 4), [2, 3])])
def test_seeds_are_a_count_or_the_seeds_themselves(seeds, expected):
    assert [s.seed for s in expand("ppo", "CartPole-v1", seeds)] == expected


def test_trial_ids_are_stable_unique_and_change_with_any_setting():
    # Pinned: an id that changed between versions would make every existing results folder look unfinished.
    spec = expand("ppo", "CartPole-v1", [0], {"clip_eps": [0.1]}, {"total_steps": 1024})[0]
    assert spec.trial_id == "ppo_CartPole-v1_clip_eps=0.1_seed0-6bf4791658"
    assert TrialSpec.from_dict(json.loads(json.dumps(spec.to_dict()))).trial_id == spec.trial_id
    specs = expand(["ppo", "a2c"], "CartPole-v1", 3, {"lr": [1e-3, 3e-4], "gamma": [0.9, 0.99]})
    ids = [s.trial_id for s in specs]
    assert len(set(ids)) == len(ids) == 24
    assert ids == [s.trial_id for s in expand(["ppo", "a2c"], "CartPole-v1", 3,
                                              {"lr": [1e-3, 3e-4], "gamma": [0.9, 0.99]})]
    # same label, different shared setting: a different trial
    other = expand("ppo", "CartPole-v1", [0], {"clip_eps": [0.1]}, {"total_steps": 2048})[0]
    assert other.label == spec.label and other.trial_id != spec.trial_id
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._=+-") for i in ids)


def _identity(x):
    return x


@pytest.mark.parametrize("algo, env_id, seeds, grid, fixed, message", [
    ("ppo", "CartPole-v1", 1, {"clip_epz": [0.1]}, None, r"unknown setting.*clip_epz"),
    ("ppo", "CartPole-v1", 1, {"clip_eps": [0.1, -0.1]}, None, r"clip_eps=-0\.1 is invalid: expected a number in"),
    ("ppo", "CartPole-v1", 1, {"seed": [0, 1]}, None, r"seed=\[?0.*cannot be a swept setting: pass seeds="),
    ("ppo", "CartPole-v1", 1, [{"seed": 3}], None, r"seed=3 cannot be a swept setting: pass seeds="),
    ("ppo", "CartPole-v1", 1, {"device": ["cuda"]}, None, r"device='cuda' cannot be a swept setting: pass device="),
    ("ppo", "CartPole-v1", 1, None, {"device": "cpu"}, r"device='cpu' cannot be a swept setting"),
    ("ppo", "CartPole-v1", 1, {"progress": [True]}, None, r"progress=True cannot be a swept setting"),
    ("ppo", "CartPole-v1", 1, None, {"compute_gae": _identity}, r"compute_gae=.*replaced functions cannot be swept"),
    ("ppo", "CartPole-v1", 1, [{"compute_gae": _identity}], None, r"replaced functions cannot be swept"),
    ("ppo", "CartPole-v1", 1, [{"lr": 1e-3}, {"lr": 0.001, "label": "again"}], None, r"same trial twice"),
    ("ppo", "CartPole-v1", 1, {"hidden_sizes": [(32,), [32]]}, None, r"same trial twice"),
    ("ppo", "CartPole-v1", [0, 1, 0], None, None, r"repeats a seed"),
    ("ppo", "CartPole-v1", 0, None, None, r"seeds=0 is invalid"),
    ("ppo", "CartPole-v1", [-1], None, None, r"seeds=\[-1\] is invalid"),
    ("ppo", "CartPole-v1", [2**32], None, None, r"seeds=\[4294967296\] is invalid"),
    ("ppo", "CartPole-v1", 1, [], None, r"grid=\[\] is invalid: expected .* a non-empty list"),
    ("ppo", "CartPole-v1", 1, {"lr": []}, None, r"grid\['lr'\]=\[\] is invalid: expected a non-empty list"),
    ("ppo", "CartPole-v1", 1, {"lr": 1e-3}, None, r"grid\['lr'\]=0\.001 is invalid"),
    ("ppo", "CartPole-v1", 1, {"lr": [object()]}, None, r"expected a JSON value"),
    ("ppo2", "CartPole-v1", 1, None, None, r"algo='ppo2' is invalid: expected one of"),
    ("ppo", "NoSuchEnv-v0", 1, None, None, r"NoSuchEnv-v0"),
    (None, "CartPole-v1", 1, None, None, r"has no algorithm: pass algo="),
    ("ppo", "CartPole-v1", 1, {"traps": [["no_such_trap"]]}, None, r"unknown trap 'no_such_trap'; known traps"),
    ("a2c", "CartPole-v1", 1, {"traps": [["long_rollout"]]}, None, r"'long_rollout' is implemented for \('ppo',\)"),
    ("reinforce", "Pendulum-v1", 1, None, None, r"reinforce.*Discrete action spaces only.*Pendulum-v1"),
    ("ppo", "CartPole-v1", 1, [{"label": "a", "lr": 1e-3}, {"label": "a", "lr": 3e-4}], None,
     r"two arms named 'ppo CartPole-v1 a' with different settings"),
])
def test_bad_input_is_refused_before_anything_runs(algo, env_id, seeds, grid, fixed, message, tmp_path):
    with pytest.raises(ConfigError, match=message):
        expand(algo, env_id, seeds, grid, fixed)
    if "device" in (fixed or {}):
        return  # pg.sweep has a device= argument of its own
    with pytest.raises(ConfigError, match=message):  # the same through pg.sweep: nothing is written
        pg.sweep(algo, env_id, seeds, grid, folder=tmp_path / "out", backend=NoTrainingBackend(), progress=False,
                 **(fixed or {}))
    assert not (tmp_path / "out").exists()


# -- a sweep trial is pg.train ----------------------------------------------------------------------
def test_each_trial_equals_pg_train_run_in_this_process(swept):
    """Same seed and settings, same numbers: trained in a worker process or here, the history is identical."""
    assert [r.seed for r in swept.trials] == [0, 1, 0, 1]
    for record in (swept.trials[0], swept.trials[3]):  # one trial of each arm
        run = pg.train(record.algo, record.env_id, seed=record.seed, device="cpu", progress=False,
                       **record.spec.overrides)
        assert_history_equal(record.history, run.history, ignore=("wall_time",))
        assert deterministic_part(json.loads(json.dumps(run.history.to_dict()))) == \
            deterministic_part(record.data["history"])
        assert run.config.to_dict() == record.config
        assert record.config["clip_eps"] == record.spec.overrides["clip_eps"]
        assert record.config["seed"] == record.seed and record.config["total_steps"] == 1024
        assert len(record.data["history"]["evals"]["mean"]) >= 1  # eval_every reached the worker
    first, second = swept.trials[0].data["history"], swept.trials[1].data["history"]
    assert first["episodes"]["return"] != second["episodes"]["return"]  # the seed matters


def test_a_record_says_what_ran_where(swept):
    record = swept.trials[0].data
    assert record["status"] == "ok" and record["error"] is None and record["attempts"] == 1
    assert record["device"] == "cpu" and record["host"] and record["wall_seconds"] > 0
    assert record["backend"] == "local"
    assert set(record["versions"]) >= {"pgcourse", "torch", "gymnasium", "numpy", "python"}
    assert record["env_steps"] >= 1024 * 0.9 and record["episodes"] == len(record["history"]["episodes"]["return"])
    assert record["arm"] == "ppo CartPole-v1 clip_eps=0.1" and record["label"] == "clip_eps=0.1"


# -- the results folder -----------------------------------------------------------------------------
def test_sweep_json_lists_the_requested_trials_and_nothing_partial_is_left(swept):
    manifest = json.loads((swept.folder / "sweep.json").read_text())
    requested = expand("ppo", "CartPole-v1", 2, GRID, SETTINGS)
    assert [t["trial_id"] for t in manifest["trials"]] == [s.trial_id for s in requested]
    assert manifest["trials"][1] == {"trial_id": requested[1].trial_id, **requested[1].to_dict()}
    assert len(manifest["runs"]) == 1 and manifest["runs"][0]["trials"] == 4
    assert [p.name for p in _trial_files(swept.folder)] == sorted(f"{s.trial_id}.json" for s in requested)
    assert _part_files(swept.folder) == [] and not list(swept.folder.rglob(".*"))


class ReplayBackend(LocalBackend):
    """Hands back the shared sweep's records one at a time, checking before each that every record it
    gave earlier is already complete on disk."""

    def __init__(self, records, folder):
        super().__init__(workers=2)
        self.records = {r.trial_id: r.data for r in records}
        self.folder = ResultsFolder(folder)
        self.queue: deque[TrialSpec] = deque()
        self.given: list[str] = []
        self.checked = 0

    def submit(self, spec):
        self.queue.append(spec)

    @property
    def in_flight(self):
        return len(self.queue)

    def next_result(self):
        for trial_id in self.given:  # every earlier result is on disk before the next one arrives
            record = self.folder.read(trial_id)  # complete, digest checked
            assert record is not None and record.ok, f"{trial_id} was not written when it finished"
            self.checked += 1
        assert _part_files(self.folder.path) == []
        spec = self.queue.popleft()
        self.given.append(spec.trial_id)
        data = dict(self.records[spec.trial_id])
        data.pop("attempts")
        return spec, data

    def close(self, interrupted=False):
        self.queue.clear()


def test_each_trial_is_written_the_moment_it_finishes(swept, tmp_path):
    backend = ReplayBackend(swept.trials, tmp_path / "replay")
    seen = []
    results = pg.sweep("ppo", "CartPole-v1", seeds=2, grid=GRID, folder=tmp_path / "replay", backend=backend,
                       progress=False, **SETTINGS)
    assert backend.checked == 0 + 1 + 2 + 3  # after the 1st, 2nd and 3rd result, each earlier one was on disk
    assert [r.data for r in results.trials] == [r.data for r in swept.trials]
    # the same through run_specs' hook, which sees each record right after it is written
    from pgcourse.course.sweeps.driver import run_specs
    folder = ResultsFolder(tmp_path / "hooked")
    specs = expand("ppo", "CartPole-v1", 2, GRID, SETTINGS)
    folder.record_request(specs)
    run_specs(specs, folder, ReplayBackend(swept.trials, folder.path), progress=False,
              on_record=lambda record: seen.append((record["trial_id"], folder.trial_path(record["trial_id"]))))
    assert [trial_id for trial_id, _ in seen] == [s.trial_id for s in specs]
    assert all(path is not None for _, path in seen)


def test_a_failed_write_leaves_the_previous_file_and_no_partial_file(swept, tmp_path, monkeypatch):
    folder = ResultsFolder(_copy(swept, tmp_path))
    record = dict(swept.trials[0].data, wall_seconds=123.0)
    path = folder.trial_path(record["trial_id"])
    before = path.read_bytes()

    def interrupted_replace(source, target):
        raise KeyboardInterrupt  # Ctrl-C (or a full disk) between writing the temporary file and renaming it

    monkeypatch.setattr("pgcourse.sweeps.store.os.replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        folder.write(record)
    monkeypatch.undo()
    assert path.read_bytes() == before and _part_files(folder.path) == []
    folder.write(record)
    assert folder.read(record["trial_id"]).wall_seconds == 123.0 and _part_files(folder.path) == []


def test_resume_runs_nothing_and_returns_the_same_results(swept, tmp_path):
    folder = _copy(swept, tmp_path)
    before = _snapshot(folder / "trials")
    results = pg.sweep("ppo", "CartPole-v1", seeds=2, grid=GRID, folder=folder, backend=NoTrainingBackend(),
                       progress=False, **SETTINGS)
    assert results.skipped == 4 and not results.interrupted
    assert [r.data for r in results.trials] == [r.data for r in swept.trials]
    assert _snapshot(folder / "trials") == before
    assert len(json.loads((folder / "sweep.json").read_text())["runs"]) == 2
    assert [r.data for r in load_results(folder).trials] == [r.data for r in swept.trials]


def test_extending_the_grid_runs_only_the_new_trials(swept, tmp_path):
    folder = _copy(swept, tmp_path)
    before = _snapshot(folder / "trials")
    backend = InlineBackend()
    results = pg.sweep("ppo", "CartPole-v1", seeds=3, grid={"clip_eps": [0.1, 0.2, 0.3]}, folder=folder,
                       backend=backend, progress=False, **SETTINGS)
    new = expand("ppo", "CartPole-v1", 3, {"clip_eps": [0.1, 0.2, 0.3]}, SETTINGS)
    old_ids = {r.trial_id for r in swept.trials}
    assert backend.submitted == [s.trial_id for s in new if s.trial_id not in old_ids]  # 5 new, 4 reused
    assert len(backend.submitted) == 5 and results.skipped == 4 and len(results.trials) == 9
    assert all(_snapshot(folder / "trials")[name] == data for name, data in before.items())
    assert list(results.by_arm()) == [f"ppo CartPole-v1 clip_eps={v}" for v in (0.1, 0.2, 0.3)]
    assert len(load_results(folder).trials) == 9  # sweep.json now asks for all nine


def test_changing_a_shared_setting_in_the_same_folder_is_refused(swept, tmp_path):
    """Same arm names, different experiment: its trials would be pooled with the old ones as more seeds."""
    folder = _copy(swept, tmp_path)
    before = _snapshot(folder)
    with pytest.raises(SweepResultsError, match=r"arm 'ppo CartPole-v1 clip_eps=0\.1'.*total_steps"):
        pg.sweep("ppo", "CartPole-v1", seeds=2, grid=GRID, folder=folder, backend=NoTrainingBackend(),
                 progress=False, **{**SETTINGS, "total_steps": 2048})
    assert _snapshot(folder) == before


def test_a_folder_holding_other_files_is_refused_and_left_untouched(tmp_path):
    folder = tmp_path / "mine"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "todo.txt").write_text("important")
    (folder / "results.json").write_text("{}")
    before = _snapshot(folder)
    with pytest.raises(SweepResultsError, match=r"holds files but no sweep\.json"):
        pg.sweep("ppo", "CartPole-v1", seeds=1, folder=folder, backend=NoTrainingBackend(), progress=False)
    assert _snapshot(folder) == before and sorted(p.name for p in folder.iterdir()) == ["notes", "results.json"]
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(SweepResultsError, match="is not a folder"):
        pg.sweep("ppo", "CartPole-v1", seeds=1, folder=a_file, backend=NoTrainingBackend(), progress=False)
    assert a_file.read_text() == "x"
    with pytest.raises(SweepResultsError, match=r"no sweep\.json"):
        load_results(folder)


def test_resume_refuses_finished_trials_that_today_would_run_differently(swept, tmp_path):
    """Simulates changed course defaults: a finished trial's config (digest recomputed) no longer matches."""
    folder = _copy(swept, tmp_path)
    path = _trial_files(folder)[2]
    _edit_trial(path, lambda data: data["config"].update(gamma=0.98), recompute_digest=True)
    before = _snapshot(folder)
    with pytest.raises(SweepResultsError, match=r"ran with gamma=0\.98, but this pgcourse would run it with "
                                                r"gamma=0\.99.*new results folder"):
        pg.sweep("ppo", "CartPole-v1", seeds=2, grid=GRID, folder=folder, backend=NoTrainingBackend(),
                 progress=False, **SETTINGS)
    assert _snapshot(folder) == before  # not even sweep.json was touched


def test_compressed_trials_are_gzip_and_load_back(tmp_path):
    folder = tmp_path / "gz"
    results = pg.sweep("ppo", "CartPole-v1", seeds=2, folder=folder, backend=InlineBackend(), progress=False,
                       compress=True, total_steps=512)
    files = _trial_files(folder)
    assert len(files) == 2 and all(p.name.endswith(".json.gz") for p in files)
    assert all(p.read_bytes()[:2] == b"\x1f\x8b" for p in files)
    assert json.loads(gzip.decompress(files[0].read_bytes()))["format"] == "pgcourse-trial"
    loaded = load_results(folder)
    assert [r.data for r in loaded.trials] == [r.data for r in results.trials]
    again = pg.sweep("ppo", "CartPole-v1", seeds=2, folder=folder, backend=NoTrainingBackend(), progress=False,
                     total_steps=512)  # resumed without compress: the .json.gz trials count as finished
    assert again.skipped == 2 and len(again.trials) == 2


# -- failures, retries, lost workers ----------------------------------------------------------------
def test_a_trial_that_raises_is_retried_recorded_and_run_again_on_resume(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    failing = functools.partial(sweep_helpers.training_raises, marker_dir=str(markers), failures={0: 1, 1: 99})
    folder = tmp_path / "sweep"
    results = pg.sweep("ppo", "CartPole-v1", seeds=2, folder=folder, backend=LocalBackend(2, function=failing),
                       progress=False, total_steps=512)
    ids = [s.trial_id for s in expand("ppo", "CartPole-v1", 2, None, {"total_steps": 512})]
    assert [sweep_helpers.attempts(str(markers), i) != [] for i in ids] == [True, True]
    # seed 0 failed once, then succeeded on its retry
    assert [r.trial_id for r in results.trials] == [ids[0]] and results.trials[0].data["attempts"] == 2
    assert len(sweep_helpers.attempts(str(markers), ids[0])) == 2
    # seed 1 failed twice: recorded as failed, with the error and where it came from
    assert [r.trial_id for r in results.failed] == [ids[1]]
    failed = results.failed[0].data
    assert failed["status"] == "failed" and failed["attempts"] == 2
    assert failed["error"] == "RuntimeError: planted failure on attempt 2"
    assert "broken_train" in failed["traceback"] and "history" not in failed
    assert json.loads(ResultsFolder(folder).trial_path(ids[1]).read_text())["status"] == "failed"
    assert "1 failed" in results.summary() and "planted failure" in results.summary()
    assert [r.trial_id for r in load_results(folder).failed] == [ids[1]]
    # a resume runs the failed trial again (and only it)
    backend = InlineBackend()
    resumed = pg.sweep("ppo", "CartPole-v1", seeds=2, folder=folder, backend=backend, progress=False,
                       total_steps=512)
    assert backend.submitted == [ids[1]]
    assert [r.trial_id for r in resumed.trials] == ids and resumed.failed == []


def test_a_trial_function_that_raises_is_retried_not_fatal(tmp_path):
    """An exception out of the trial function itself (not from training) costs that trial an attempt,
    as on Ray, instead of ending the whole sweep."""
    markers = tmp_path / "markers"
    markers.mkdir()
    function = functools.partial(sweep_helpers.raises_on_first_attempt, marker_dir=str(markers))
    results = pg.sweep("ppo", "CartPole-v1", seeds=1, folder=tmp_path / "sweep",
                       backend=LocalBackend(1, function=function), progress=False, total_steps=512)
    assert len(results.trials) == 1 and results.trials[0].data["attempts"] == 2
    with_no_retry = pg.sweep("ppo", "CartPole-v1", seeds=[1], backend=LocalBackend(1, function=function),
                             retries=0, progress=False, total_steps=512)
    assert with_no_retry.trials == [] and len(with_no_retry.failed) == 1
    assert "RuntimeError: the trial function raised on its first attempt" in with_no_retry.failed[0].data["error"]


def test_a_lost_worker_is_retried_and_no_trial_is_lost_or_duplicated(tmp_path):
    """Two trials kill their worker on their first attempt (a pool of 2 then loses whatever ran beside
    them too): every trial still finishes, once, with the numbers of an ordinary run."""
    markers = tmp_path / "markers"
    markers.mkdir()
    function = functools.partial(sweep_helpers.dies_on_first_attempt, marker_dir=str(markers), seeds=(1,))
    folder = tmp_path / "sweep"
    results = pg.sweep("ppo", "CartPole-v1", seeds=2, grid=GRID, folder=folder,
                       backend=LocalBackend(2, function=function), progress=False, total_steps=512)
    specs = expand("ppo", "CartPole-v1", 2, GRID, {"total_steps": 512})
    assert [r.trial_id for r in results.trials] == [s.trial_id for s in specs] and not results.failed
    assert [p.name for p in _trial_files(folder)] == sorted(f"{s.trial_id}.json" for s in specs)
    for spec, record in zip(specs, results.trials):
        pids = sweep_helpers.attempts(str(markers), spec.trial_id)
        # every submission is counted; one lost with a broken pool may not have started (a race of the pool)
        assert len(pids) <= record.data["attempts"] <= len(pids) + 1
        if spec.seed == 1:  # its worker died; it ran again, in another process, and finished
            assert len(pids) >= 2 and pids[0] != pids[-1]
        assert record.ok and ResultsFolder(folder).read(spec.trial_id).ok
    assert _part_files(folder) == []
    # the final record of a trial whose worker died has the numbers of an ordinary run
    clean = pg.sweep("ppo", "CartPole-v1", seeds=[1], grid={"clip_eps": [0.1]}, backend=InlineBackend(),
                     progress=False, total_steps=512)
    assert deterministic_part(clean.trials[0].data["history"]) == deterministic_part(results.trials[1].data["history"])


def test_a_trial_that_always_kills_its_worker_fails_alone(tmp_path):
    """A pool cannot tell whose worker died: a trial lost beside others runs again on its own, so only the
    trial that keeps killing its worker uses up its retries; those that ran beside it all finish."""
    markers = tmp_path / "markers"
    markers.mkdir()
    function = functools.partial(sweep_helpers.dies_on_first_attempt, marker_dir=str(markers), seeds=(0,),
                                 times=99, labels=("clip_eps=0.1",))
    results = pg.sweep("ppo", "CartPole-v1", seeds=3, grid=GRID, folder=tmp_path / "sweep",
                       backend=LocalBackend(2, function=function), progress=False, total_steps=512)
    specs = expand("ppo", "CartPole-v1", 3, GRID, {"total_steps": 512})
    assert [r.trial_id for r in results.failed] == [specs[0].trial_id]
    assert [r.trial_id for r in results.trials] == [s.trial_id for s in specs[1:]]
    failed = results.failed[0].data
    assert failed["error"].startswith("lost: worker process died") and "were lost with that pool" not in failed["error"]
    assert failed["attempts"] == len(sweep_helpers.attempts(str(markers), specs[0].trial_id)) >= 2


def test_an_interrupted_close_leaves_no_worker_and_no_pool_thread_behind(tmp_path):
    """Ctrl-C stops the running trials' workers and joins the pool's manager thread before the sweep returns.
    Left running, that thread closes its wake-up pipe while the interpreter's exit hook writes to it, and the
    learner sees "OSError: Bad file descriptor" after the interrupt (a CPython race; once in a fresh-clone suite)."""
    import threading

    markers = tmp_path / "markers"
    markers.mkdir()
    backend = LocalBackend(2, function=functools.partial(sweep_helpers.sleeps, marker_dir=str(markers)))
    for seed in (0, 1):
        backend.submit(TrialSpec("ppo", "CartPole-v1", seed, {"total_steps": 256}))
    deadline = time.monotonic() + 120
    while len(list(markers.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int(path.read_text()) for path in markers.iterdir()]
    assert len(workers) == 2, "the two sleeping trials did not start"
    threads = [thread for thread in threading.enumerate() if type(thread).__name__ == "_ExecutorManagerThread"]
    assert threads, "expected the pool's manager thread to run while trials are in flight"
    backend.close(interrupted=True)
    assert not [thread for thread in threads if thread.is_alive()], "the pool's manager thread outlived close()"
    assert not [pid for pid in workers if _running(pid)], "a worker outlived close()"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and sends SIGINT to a process group")
def test_ctrl_c_keeps_every_finished_trial_stops_the_workers_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "sweep"
    command = pgcourse_command("sweep", "ppo", "--env", "CartPole-v1", "--seeds", "3", "--steps", "2048",
                               "--workers", "2", "--out", str(out), "--quiet")

    def workers_stopped(family: dict[int, int], sweep_pid: int) -> None:
        workers = {pid for pid, parent in family.items() if parent != sweep_pid}  # the forkserver's children
        assert len(workers) >= 2, family
        time.sleep(0.5)
        assert not [pid for pid in workers if _running(pid)], "a worker still runs after the sweep said it stopped"

    run = interrupt_when(command, lambda: bool(_trial_files(out)), "no trial finished", after_stop=workers_stopped)
    stderr, family, seconds = run.stderr, run.family, run.seconds
    assert run.returncode == 130, stderr
    assert seconds < 10, f"took {seconds:.1f} s to stop"  # about 2 s, most of it the interpreter's exit
    finished = _trial_files(out)
    assert 1 <= len(finished) < 3  # the third trial started when the first ended, and was stopped
    assert f"{len(finished)} finished trials are kept in {out}" in stderr and "again to resume" in stderr
    assert "Traceback" not in stderr, stderr
    for path in finished:  # each complete: readable, its digest matches
        assert ResultsFolder(out).read(path.name.removesuffix(".json")).ok
    assert _part_files(out) == []
    deadline = time.monotonic() + 10  # the forkserver and resource tracker end with the sweep's process
    while any(_running(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in family if _running(pid)], "worker processes outlived the interrupted sweep"

    kept = {path.name: path.read_bytes() for path in finished}
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len(_trial_files(out)) == 3 and _part_files(out) == []
    assert all((out / "trials" / name).read_bytes() == data for name, data in kept.items())  # not run again
    assert "default" in rerun.stdout and "IQM" in rerun.stdout
    results = load_results(out)
    assert [r.seed for r in results.trials] == [0, 1, 2] and not results.failed


# -- tampering and verify ---------------------------------------------------------------------------
def test_an_edited_number_breaks_the_digest_and_loading_names_the_file(swept, tmp_path):
    folder = _copy(swept, tmp_path)
    path = _trial_files(folder)[1]
    _edit_trial(path, _add_to_return_3, recompute_digest=False)
    with pytest.raises(SweepResultsError, match=rf"{path.name} was edited or damaged"):
        load_results(folder)
    with pytest.raises(SweepResultsError, match=rf"{path.name} was edited or damaged"):  # nor resumed on
        pg.sweep("ppo", "CartPole-v1", seeds=2, grid=GRID, folder=folder, backend=NoTrainingBackend(),
                 progress=False, **SETTINGS)
    path.write_text(path.read_text()[:-20])  # cut short, as by a crash of a non-atomic writer
    with pytest.raises(SweepResultsError, match=rf"{path.name} is corrupt"):
        load_results(folder)


def test_verify_catches_an_edit_whose_digest_was_recomputed(swept, tmp_path, capsys):
    folder = _copy(swept, tmp_path)
    for path in _trial_files(folder):  # every trial, so any sample finds one
        _edit_trial(path, _add_to_return_3, recompute_digest=True)
    assert len(load_results(folder).trials) == 4  # the digest alone cannot tell
    report = verify(folder, sample=1, seed=0)
    assert not report.ok and len(report.checked) == 1 and report.sample_seed == 0
    [(trial_id, difference)] = report.mismatches.items()
    # the first row that differs differs by more than rounding: an edit, not another machine's last bits
    assert difference.startswith("history: first apart at env step ") and "episodes[3]" in difference
    assert "a difference larger than rounding; 0 of 1 differing columns within tolerance; return: stored " in difference
    assert f"DIFFERENT {trial_id}: history: first apart" in str(report)
    capsys.readouterr()
    assert main(["sweep", "--verify", str(folder), "--sample", "1", "--sample-seed", "0", "--quiet"]) == 1
    printed = capsys.readouterr().out
    assert "DIFFERENT" in printed and "episodes[3]" in printed and "sample seed 0" in printed


def _nudge_first_loss(data):
    """A last-bit change of one logged float, as another processor's rounding would make."""
    losses = data["history"]["updates"]["policy_loss"]
    losses[0] = losses[0] * (1 + 1e-9)


def test_a_rounding_difference_verifies_within_tolerance_and_fails_exact(swept, tmp_path, capsys):
    folder = _copy(swept, tmp_path)
    for path in _trial_files(folder):
        _edit_trial(path, _nudge_first_loss, recompute_digest=True)
    report = verify(folder, sample=1, seed=0)
    assert report.ok and not report.identical and list(report.levels.values()) == ["within tolerance"]
    assert "updates.policy_loss[0]" in str(report) and "1 within tolerance" in str(report)
    exact = verify(folder, sample=1, seed=0, exact=True)
    assert not exact.ok and "not bit for bit" in next(iter(exact.mismatches.values()))
    capsys.readouterr()
    assert main(["sweep", "--verify", str(folder), "--sample", "1", "--sample-seed", "0", "--quiet"]) == 0
    assert main(["sweep", "--verify", str(folder), "--sample", "1", "--sample-seed", "0", "--quiet", "--exact"]) == 1
    printed = capsys.readouterr().out
    assert "within tolerance" in printed and "not bit for bit" in printed


def _part_over_rounding(data):
    """What another CPU does to a re-run: its first update rounds in the last bits, then the episodes part."""
    _nudge_first_loss(data)
    data["history"]["episodes"]["return"][-1] += 50.0


def test_a_trial_that_parts_over_rounding_without_other_seeds_is_unjudged_not_different(swept, tmp_path, capsys):
    """The swept arms have one other seed each: too few for a spread. A re-run that parts over rounding there
    cannot be judged on this machine (CI called a single-seed trial of figures/06_traps DIFFERENT on another CPU)."""
    folder = _copy(swept, tmp_path)
    for path in _trial_files(folder):
        _edit_trial(path, _part_over_rounding, recompute_digest=True)
    report = verify(folder, sample=1, seed=0)
    assert not report.mismatches and not report.levels and len(report.unjudged) == 1
    assert not report.ok  # nothing was confirmed
    [(trial_id, why)] = report.unjudged.items()
    assert "a rounding difference" in why and "fewer than 2 other seeds" in why
    assert f"UNJUDGED {trial_id}" in str(report) and "DIFFERENT" not in str(report)
    assert "none could be judged" in str(report)
    capsys.readouterr()
    assert main(["sweep", "--verify", str(folder), "--sample", "1", "--sample-seed", "0", "--quiet"]) == 1
    assert "UNJUDGED" in capsys.readouterr().out
    # the draw can be kept to trials that any machine can judge; here no arm has 3 seeds
    with pytest.raises(SweepResultsError, match="whose arm has at least 3 finished seeds"):
        verify(folder, sample=1, seed=0, min_arm_seeds=3)
    assert verify(folder, sample=1, seed=0, min_arm_seeds=2).unjudged  # 2 seeds: one other, still no spread
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="min_arm_seeds"):
            verify(folder, sample=1, seed=0, min_arm_seeds=bad)


def test_a_record_made_before_a_column_existed_still_verifies_on_the_columns_it_has(swept, tmp_path):
    """A column pgcourse started logging later (PPO's update_kl) is missing from old records: they verify
    on every column they hold, and a changed number in one of those is still caught."""
    folder = _copy(swept, tmp_path)
    for path in _trial_files(folder):
        _edit_trial(path, lambda data: data["history"]["updates"].pop("update_kl"), recompute_digest=True)
    assert verify(folder, sample=1, seed=0).ok
    for path in _trial_files(folder):
        _edit_trial(path, _add_to_return_3, recompute_digest=True)
    assert not verify(folder, sample=1, seed=0).ok


def test_an_untouched_folder_verifies(swept, capsys):
    assert main(["sweep", "--verify", str(swept.folder), "--sample", "2", "--sample-seed", "1", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "verified 2 trial(s)" in printed and "all agree: 2 bit for bit" in printed and "sample seed 1" in printed
    assert "DIFFERENT" not in printed


# -- the results API --------------------------------------------------------------------------------
def test_scores_give_one_number_per_seed_for_each_arm(swept):
    arms = ["ppo CartPole-v1 clip_eps=0.1", "ppo CartPole-v1 clip_eps=0.2"]
    final = swept.scores()
    assert list(final) == arms and all(v.shape == (2,) for v in final.values())
    record = swept.by_arm()[arms[1]][0]
    returns = np.asarray(record.data["history"]["episodes"]["return"], float)
    assert final[arms[1]][0] == pytest.approx(returns[-100:].mean())
    assert swept.scores("final_return", last=5)[arms[1]][0] == pytest.approx(returns[-5:].mean())
    evals = swept.scores("final_eval")
    assert evals[arms[1]][0] == record.data["history"]["evals"]["mean"][-1]
    assert swept.scores(lambda r: r.seed * 10.0)[arms[0]].tolist() == [0.0, 10.0]
    assert swept.scores("env_steps")[arms[0]].tolist() == [float(r.data["env_steps"]) for r in swept.by_arm()[arms[0]]]
    with pytest.raises(ValueError, match="measure='best' is invalid"):
        swept.scores("best")


def test_by_arm_groups_the_seeds_in_the_grid_order(swept):
    groups = swept.by_arm()
    assert list(groups) == swept.arms == ["ppo CartPole-v1 clip_eps=0.1", "ppo CartPole-v1 clip_eps=0.2"]
    assert [[r.seed for r in records] for records in groups.values()] == [[0, 1], [0, 1]]
    assert all(r.label == f"clip_eps={r.config['clip_eps']}" for records in groups.values() for r in records)
    assert swept.short_names() == {arm: arm.split()[-1] for arm in groups}
    assert repr(swept) == "SweepResults(4 finished, 0 failed, 0 not run, 2 arms)"


def test_summary_shows_iqm_mean_and_median_with_their_intervals(swept):
    text = swept.summary(reps=500, min_seeds=2)
    lines = text.splitlines()
    assert "95%" in lines[0] and all(word in lines[1] for word in ("arm", "seeds", "IQM", "mean", "median"))
    expected = stats.interval_estimates(swept.scores(), metrics=("iqm", "mean", "median"), reps=500, seed=0)
    for name, arm in zip(("clip_eps=0.1", "clip_eps=0.2"), swept.arms):
        [row] = [line for line in lines if line.startswith(name)]
        assert row.split()[1] == "2"  # seeds
        for metric in ("iqm", "mean", "median"):
            assert str(expected[arm][metric]) in row
    assert "steps to threshold" in swept.summary(threshold=1.0, reps=100)


def test_summary_prints_no_interval_from_two_seeds(swept):
    """Issue 48: two seeds printed a '95%' interval (their range); the summary shows their values instead."""
    text = swept.summary(reps=200)
    for name, arm in zip(("clip_eps=0.1", "clip_eps=0.2"), swept.arms):
        [row] = [line for line in text.splitlines() if line.startswith(name)]
        values = ", ".join(f"{value:.4g}" for value in swept.scores()[arm])
        assert f"per seed: {values} (an interval needs 5 or more seeds)" in row and "[" not in row, row


def test_steps_to_threshold_per_arm(swept):
    easy = swept.steps_to_threshold(1.0, window=1)  # every episode returns at least 1
    for arm, estimate in easy.items():
        assert estimate.reached == estimate.runs == 2
        first_steps = [r.episode_env_steps[0] for r in swept.by_arm()[arm]]
        assert estimate.median.point == pytest.approx(np.median(first_steps))
    never = swept.steps_to_threshold(1e6)
    assert all(e.reached == 0 and e.median.point == float("inf") for e in never.values())


def test_plot_sweep_writes_a_png(swept, tmp_path):
    import matplotlib.pyplot as plt

    figure = plot_sweep(swept.folder, path=tmp_path / "plots" / "clip.png", reps=200)
    plt.close(figure)
    with Image.open(tmp_path / "plots" / "clip.png") as image:
        assert image.format == "PNG" and image.size[0] > 500


def test_cli_plot_draws_a_sweep_or_saved_runs(swept, tmp_path, capsys):
    out = tmp_path / "sweep.png"
    assert main(["plot", str(swept.folder), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.format == "PNG"
    runs = [tmp_path / f"run{seed}" for seed in (0, 1)]
    for seed, run in enumerate(runs):
        assert main(["train", "a2c", "--env", "CartPole-v1", "--seed", str(seed), "--steps", "256", "--quiet",
                     "--out", str(run)]) == 0
    assert main(["plot", *map(str, runs), "--out", str(tmp_path / "runs.png")]) == 0
    with Image.open(tmp_path / "runs.png") as image:
        assert image.format == "PNG"


def test_cli_plot_refuses_bad_input_in_one_line(swept, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([str(swept.folder / "sweep.json")], "is not a folder"),
        ([str(tmp_path / "missing")], "is not a folder"),
        ([str(empty)], "is neither a sweep folder (sweep.json) nor a saved"),
        ([str(swept.folder), str(empty)], "give one sweep folder, or one or more saved runs"),
        ([str(swept.folder), "--out", str(tmp_path / "x.txt")], "expected a .png, .svg or .pdf file"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(["plot", *argv]) == 2, argv
        error = _one_line_error(capsys)
        assert error.startswith("pgcourse plot: error: ") and message in error, error
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "x.txt").exists()


# -- pgcourse sweep: parsing and errors -------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("clip_eps=0.1,0.2", ("clip_eps", [0.1, 0.2])),
    ("hidden_sizes=(32,32),(64,64)", ("hidden_sizes", [(32, 32), (64, 64)])),
    ("hidden_sizes=(32,)", ("hidden_sizes", [(32,)])),
    ("lr=1e-3", ("lr", [0.001])),
    ("anneal_lr=True,False", ("anneal_lr", [True, False])),
    ("traps=long_rollout,low_critic_lr", ("traps", ["long_rollout", "low_critic_lr"])),
])
def test_grid_axes_parse(text, expected):
    assert parse_grid_axis(text) == expected


@pytest.mark.parametrize("text, expected", [("3", [0, 1, 2]), ("2-4", [2, 3, 4]), ("0,5", [0, 5]),
                                            ("7", list(range(7)))])
def test_seeds_parse(text, expected):
    assert parse_seeds(text) == expected


def test_cli_sweep_hands_the_parsed_grid_seeds_and_settings_to_pg_sweep(monkeypatch, tmp_path, capsys):
    import pgcourse.sweeps

    calls = []

    class Done:
        interrupted, failed, trials, folder = False, [], [], None

        def summary(self):
            return "SUMMARY"

    monkeypatch.setattr(pgcourse.sweeps, "sweep", lambda *args, **kwargs: calls.append((args, kwargs)) or Done())
    out = str(tmp_path / "out")
    assert main(["sweep", "ppo,a2c", "--env", "CartPole-v1,Acrobot-v1", "--seeds", "2-4", "--grid", "clip_eps=0.1,0.2",
                 "--grid", "hidden_sizes=(32,32),(64,64)", "--set", "lr=1e-3", "--steps", "512", "--out", out,
                 "--workers", "3", "--retries", "2", "--compress", "--quiet"]) == 0
    assert "SUMMARY" in capsys.readouterr().out
    (algo, env_id, seeds, grid), kwargs = calls[-1]
    assert algo == ["ppo", "a2c"] and env_id == ["CartPole-v1", "Acrobot-v1"] and seeds == [2, 3, 4]
    assert grid == {"clip_eps": [0.1, 0.2], "hidden_sizes": [(32, 32), (64, 64)]}
    assert kwargs["lr"] == 0.001 and kwargs["total_steps"] == 512 and kwargs["folder"] == out
    assert kwargs["workers"] == 3 and kwargs["retries"] == 2 and kwargs["compress"] and not kwargs["progress"]
    assert kwargs["backend"] == "local" and kwargs["address"] is None
    for text, seeds in (("3", [0, 1, 2]), ("0,5", [0, 5])):
        assert main(["sweep", "ppo", "--env", "CartPole-v1", "--seeds", text, "--out", out]) == 0
        assert calls[-1][0][2] == seeds and calls[-1][0][3] is None


def test_cli_sweep_runs_a_sweep_and_prints_its_summary(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["sweep", "a2c", "--env", "CartPole-v1", "--seeds", "0,5", "--steps", "512", "--workers", "2",
                 "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "IQM" in printed and "default" in printed
    results = load_results(out)
    assert [r.seed for r in results.trials] == [0, 5] and {r.algo for r in results.trials} == {"a2c"}
    assert all(r.config["total_steps"] == 512 for r in results.trials)


@pytest.mark.parametrize("argv, message", [
    (["ppo", "--env", "CartPole-v1", "--grid", "clip_eps"], "--grid expects key=value1,value2"),
    (["ppo", "--env", "CartPole-v1", "--grid", "=0.1,0.2"], "--grid expects key=value1,value2"),
    (["ppo", "--env", "CartPole-v1", "--grid", "clip_eps="], "--grid expects key=value1,value2"),
    (["ppo", "--env", "CartPole-v1", "--grid", "seed=1,2"], "use --seeds"),
    (["ppo", "--env", "CartPole-v1", "--grid", "clip_epz=0.1"], "unknown setting"),
    (["ppo", "--env", "CartPole-v1", "--grid", "clip_eps=0.1", "--grid", "clip_eps=0.2"], "is given twice"),
    (["ppo", "--env", "CartPole-v1", "--grid", "clip_eps=0.1,-1"], "clip_eps=-1 is invalid"),
    (["ppo", "--env", "CartPole-v1", "--seeds", "x"], "--seeds expects a count"),
    (["ppo", "--env", "CartPole-v1", "--seeds", "3-"], "--seeds expects a count"),
    (["ppo", "--env", "CartPole-v1", "--seeds", "5-2"], "--seeds expects a count"),
    (["ppo", "--env", "CartPole-v1", "--seeds", "1,-2"], "--seeds expects a count"),
    (["ppo", "--env", "CartPole-v1", "--seeds", "0,0"], "repeats a seed"),
    (["ppo", "--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    (["ppo", "--env", "CartPole-v1", "--backend", "local", "--address", "ray://x:1"], "address= is for backend='ray'"),
])
def test_cli_sweep_refuses_bad_input_in_one_line_and_writes_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["sweep", *argv, "--out", str(out), "--quiet"]) == 2
    error = _one_line_error(capsys)
    assert error.startswith("pgcourse sweep: error: ") and message in error, error
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["ppo", "--env", "CartPole-v1"], "--out FOLDER is required"),
    (["--env", "CartPole-v1", "--out", "x"], "give ALGO and --env"),
    (["ppo", "--out", "x"], "give ALGO and --env"),
    (["ppo", "--verify", "x"], "--verify FOLDER re-runs trials of a finished sweep; give no ALGO"),
    (["--verify", "no_such_folder"], "is not a sweep's results folder"),
])
def test_cli_sweep_usage_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", *argv]) == 2
    error = _one_line_error(capsys)
    assert message in error, error
    assert list(tmp_path.iterdir()) == []


def test_summary_and_plots_work_with_fewer_than_two_seeds_per_arm(tmp_path, capsys):
    import matplotlib.pyplot as plt

    folder = tmp_path / "one_seed"
    results = pg.sweep("ppo", "CartPole-v1", seeds=1, grid=GRID, folder=folder, backend=InlineBackend(),
                       progress=False, total_steps=512)
    assert results.intervals() == {}
    summary = results.summary(reps=100)
    assert summary.count("per seed: ") == 2 and "fewer than 2 seeds finished" not in summary, summary
    plt.close(plot_sweep(results, path=tmp_path / "one.png", reps=100))
    assert main(["plot", str(folder), "--out", str(tmp_path / "cli.png")]) == 0
    with Image.open(tmp_path / "cli.png") as image:
        assert image.format == "PNG"


def test_non_finite_numbers_in_a_history_are_written_as_null_not_crash_the_writer():
    from pgcourse.course.sweeps.trial import _finite_or_none

    history = {"updates": {"approx_kl": [0.1, float("inf"), -float("inf"), None]}, "status": "stopped: inf"}
    assert _finite_or_none(history) == {"updates": {"approx_kl": [0.1, None, None, None]}, "status": "stopped: inf"}


def test_a_setting_has_one_spelling_in_a_sweep_int_or_float():
    """``clip_eps=100`` (the CLI's ``--grid clip_eps=100``) and ``clip_eps=100.0`` (Python) were two trials, with two
    ids, in one folder; ``total_steps=2e3`` and ``2000`` likewise. One trial now, named by the config's value."""
    from pgcourse.course.sweeps.spec import expand

    as_int = expand("ppo", "CartPole-v1", [0], grid={"clip_eps": [100]}, fixed={"total_steps": 2000})
    as_float = expand("ppo", "CartPole-v1", [0], grid={"clip_eps": [100.0]}, fixed={"total_steps": 2e3})
    as_arm = expand("ppo", "CartPole-v1", [0], grid=[{"clip_eps": 100}], fixed={"total_steps": 2000.0})
    assert as_int[0].trial_id == as_float[0].trial_id == as_arm[0].trial_id
    assert as_int[0].label == "clip_eps=100.0" and as_int[0].overrides == {"total_steps": 2000, "clip_eps": 100.0}
    with pytest.raises(pg.ConfigError, match="same trial twice"):
        expand("ppo", "CartPole-v1", [0], grid={"clip_eps": [100, 100.0]})


def test_a_sweep_at_the_top_level_of_a_script_is_refused_with_the_main_guard_advice(tmp_path):
    """The README's pg.sweep example, put in a script as shown, spawned workers that each re-ran the script: ten
    screens of multiprocessing tracebacks and "worker process died" (issue 29). It is now refused before any worker
    starts; the same call under ``if __name__ == "__main__":`` runs."""
    call = ('pg.sweep("a2c", "CartPole-v1", seeds=range(2), total_steps=256, num_envs=4, n_steps=16, '
            f'workers=2, folder={str(tmp_path / "sweep")!r})')
    unguarded = tmp_path / "unguarded.py"
    unguarded.write_text(f"import pgcourse as pg\ndef main():\n    {call}\nmain()\n")
    done = subprocess.run([sys.executable, str(unguarded)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
    assert done.returncode != 0 and 'if __name__ == "__main__"' in done.stderr and "line 4" in done.stderr
    assert "Traceback" in done.stderr and done.stderr.count("Traceback") == 1  # one error, no worker's
    assert not (tmp_path / "sweep").exists()
    guarded = tmp_path / "guarded.py"
    guarded.write_text(f"import pgcourse as pg\nif __name__ == '__main__':\n    {call}\n    print('swept')\n")
    done = subprocess.run([sys.executable, str(guarded)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SDL_VIDEODRIVER": "dummy"})
    assert done.returncode == 0 and "swept" in done.stdout, done.stderr
