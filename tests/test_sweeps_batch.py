"""``pg.sweep(..., backend="batch")``: each arm's seeds trained as one ``pg.train_many`` batch in a worker process,
one ordinary trial record per seed, so results folders, statistics, resume and ``verify`` work unchanged.

Budgets are tiny (1,024-2,048 CartPole steps); a batch of three seeds trains in about a second.
"""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

import pgcourse as pg
from conftest import assert_history_equal
from sweep_helpers import interrupt_when, part_files, pgcourse_command, running, trial_files
from pgcourse.cli import main
from pgcourse.course.sweeps import ResultsFolder, load_results, verify
from pgcourse.course.sweeps.backends import BatchBackend, Lost, make_backend
from pgcourse.course.sweeps.spec import TrialSpec
from pgcourse.course.sweeps.trial import batchable, run_batch

SETTINGS = dict(total_steps=1024, n_steps=64, num_envs=4)
ARMS = [{"label": "clip 0.1", "clip_eps": 0.1}, {"label": "clip 0.3", "clip_eps": 0.3}]


@pytest.fixture(scope="module")
def batch_folder(tmp_path_factory):
    """Two PPO arms x three seeds, one arm with a planted trap (a batch too) and one with a trap a batch cannot hold
    (its seeds run alone), on the batch backend."""
    folder = tmp_path_factory.mktemp("batch") / "sweep"
    grid = [*ARMS, {"label": "trap", "traps": ["joint_grad_clip"]}, {"label": "alone", "traps": ["log_prob_not_summed"]}]
    results = pg.sweep("ppo", "CartPole-v1", seeds=range(3), grid=grid, folder=folder, backend="batch",
                       workers=2, progress=False, **SETTINGS)
    return folder, results


def test_each_ppo_arm_is_one_batch_and_each_other_trial_runs_alone(batch_folder):
    folder, results = batch_folder
    assert len(results.trials) == 12 and not results.failed
    for record in results.trials:
        assert record.data["backend"] == "batch"
        if record.label != "alone":
            assert record.data["batch"]["seeds"] == [0, 1, 2] and record.data["batch"]["agents"] == 3
            # the batch's time is shared among its agents, so a sweep's summed wall time counts it once
            assert record.wall_seconds == pytest.approx(record.data["batch"]["wall_seconds"] / 3)
            assert record.data["cpu_seconds"] == pytest.approx(record.data["batch"]["cpu_seconds"] / 3)
        else:
            assert "batch" not in record.data and record.data["cpu_seconds"] > 0


def test_a_batch_made_record_is_the_train_many_run_and_an_alone_one_is_pg_train(batch_folder):
    folder, results = batch_folder
    runs = pg.train_many("ppo", "CartPole-v1", seeds=[0, 1, 2], clip_eps=0.3, progress=False, **SETTINGS)
    by_seed = {record.seed: record for record in results.trials if record.label == "clip 0.3"}
    for seed, run in enumerate(runs):
        assert_history_equal(by_seed[seed].history, run.history, ignore=("wall_time",))
    trapped = pg.train_many("ppo", "CartPole-v1", seeds=[0, 1, 2], traps=["joint_grad_clip"], progress=False,
                            **SETTINGS)
    by_seed = {record.seed: record for record in results.trials if record.label == "trap"}
    for seed, run in enumerate(trapped):
        assert_history_equal(by_seed[seed].history, run.history, ignore=("wall_time",))
    alone = next(record for record in results.trials if record.label == "alone" and record.seed == 1)
    assert_history_equal(alone.history, pg.train("ppo", "CartPole-v1", seed=1, progress=False,
                                                 traps=["log_prob_not_summed"], **SETTINGS).history,
                         ignore=("wall_time",))


def test_results_and_statistics_read_a_batch_folder_as_any_other(batch_folder):
    folder, _ = batch_folder
    results = load_results(folder)
    scores = results.scores("final_return", last=5)
    assert set(scores) == {"ppo CartPole-v1 clip 0.1", "ppo CartPole-v1 clip 0.3", "ppo CartPole-v1 trap",
                           "ppo CartPole-v1 alone"}
    assert all(len(values) == 3 and np.isfinite(values).all() for values in scores.values())
    assert "clip 0.1" in results.summary("final_return", last=5)


def test_verify_reruns_a_batch_made_trial_in_its_batch_bit_for_bit(batch_folder):
    folder, _ = batch_folder
    report = verify(folder, sample=4, seed=3, exact=True)
    assert report.ok and report.identical, str(report)
    assert len(report.checked) == 4  # the batch's other seeds are trained, not reported


def test_an_edited_batch_record_is_caught_by_verify(batch_folder, tmp_path):
    import shutil

    from pgcourse.course.sweeps import ResultsFolder
    from pgcourse.course.sweeps.trial import history_digest

    folder = tmp_path / "edited"
    shutil.copytree(batch_folder[0], folder)
    store = ResultsFolder(folder)
    record = next(r for r in store.records() if r.label == "clip 0.1" and r.seed == 2).data
    record["history"]["episodes"]["return"][3] += 5.0  # a forged return, its digest recomputed to match
    record["history_sha256"] = history_digest(record["config"], record["history"])
    store.write(record)
    for seed in range(50):  # draw until the edited trial is in the sample
        report = verify(folder, sample=3, seed=seed, exact=True)
        if record["trial_id"] in report.checked:
            break
    assert record["trial_id"] in report.mismatches, str(report)


def test_batchable_is_what_train_many_takes():
    assert batchable(TrialSpec("ppo", "CartPole-v1", 0, {"clip_eps": 0.1}))
    assert batchable(TrialSpec("a2c", "CartPole-v1", 0, {}))  # the loops with an agent axis: A2C and PPO
    assert not batchable(TrialSpec("trpo", "CartPole-v1", 0, {}))
    assert batchable(TrialSpec("ppo", "CartPole-v1", 0, {"traps": ["long_rollout", "joint_grad_clip"]}))
    assert not batchable(TrialSpec("ppo", "Pendulum-v1", 0, {"traps": ["log_prob_not_summed"]}))
    assert batchable(TrialSpec("ppo", "CartPole-v1", 0, {"env_backend": "torch"}))
    assert batchable(TrialSpec("ppo", "CartPole-v1", 0, {"traps": []}))


def test_run_batch_refuses_trials_of_different_arms():
    specs = [TrialSpec("ppo", "CartPole-v1", 0, {"clip_eps": 0.1}).to_dict(),
             TrialSpec("ppo", "CartPole-v1", 1, {"clip_eps": 0.2}).to_dict()]
    with pytest.raises(ValueError, match="seeds of one batchable arm"):
        run_batch(specs)


def test_a_batch_that_fails_fails_each_trial_with_the_error():
    specs = [TrialSpec("ppo", "CartPole-v1", seed, {"total_steps": 256, "clip_eps": -1.0}).to_dict() for seed in (0, 1)]
    records = run_batch(specs)
    assert [record["status"] for record in records] == ["failed", "failed"]
    assert all("clip_eps" in record["error"] and record["seed"] == seed for record, seed in zip(records, (0, 1)))


def test_make_backend_and_the_cli_know_batch(tmp_path, capsys):
    assert isinstance(make_backend("batch", 1), BatchBackend)
    with pytest.raises(ValueError, match="address= is for backend='ray'"):
        make_backend("batch", 1, address="ray://x:1")
    with pytest.raises(ValueError, match="'batch'"):
        make_backend("batches")
    code = main(["sweep", "ppo", "--env", "CartPole-v1", "--seeds", "0-1", "--steps", "512", "--backend", "batch",
                 "--workers", "1", "--out", str(tmp_path / "cli")])
    assert code in (0, None)
    records = list(load_results(tmp_path / "cli").trials)
    assert [record.data["batch"]["seeds"] for record in records] == [[0, 1], [0, 1]]


def test_a_dead_worker_loses_its_batch_as_shared_and_the_driver_reruns_each_alone(monkeypatch):
    """A batch's trials are lost together when its worker dies: each is a suspect, re-run on its own."""
    backend = BatchBackend(workers=1)

    class Broken:
        def result(self):
            from concurrent.futures.process import BrokenProcessPool
            raise BrokenProcessPool("killed")

    specs = [TrialSpec("ppo", "CartPole-v1", seed, {"total_steps": 256}) for seed in (0, 1)]
    for spec in specs:
        backend.submit(spec)
    assert backend.in_flight == 2
    monkeypatch.setattr(backend, "_start_batches", lambda: backend._batches.update({Broken(): (specs, None)}))
    monkeypatch.setattr("pgcourse.sweeps.backends.wait", lambda futures, return_when: (set(futures), set()))
    outcomes = [backend.next_result(), backend.next_result()]
    assert [spec.seed for spec, _ in outcomes] == [0, 1]
    assert all(isinstance(outcome, Lost) and outcome.shared for _, outcome in outcomes)
    backend.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and sends SIGINT to a process group")
def test_ctrl_c_keeps_every_finished_batch_stops_the_workers_and_a_rerun_trains_only_the_rest(tmp_path):
    """Two arms, one short and one long (1 and 60 epochs per update), each a batch of two seeds in its own worker:
    Ctrl-C after the short batch's trials are written keeps them whole and stops the long batch's worker; a rerun
    keeps them as written and trains only what is missing."""
    out = tmp_path / "sweep"
    command = pgcourse_command("sweep", "ppo", "--env", "CartPole-v1", "--seeds", "2", "--steps", "8192", "--grid",
                               "update_epochs=1,60", "--backend", "batch", "--workers", "2", "--out", str(out), "--quiet")
    run = interrupt_when(command, lambda: len(trial_files(out)) >= 2, "the short batch did not finish")
    stderr, family = run.stderr, run.family
    assert run.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    kept = trial_files(out)
    assert len(kept) == 2 and part_files(out) == []  # the short batch's two trials, whole; nothing of the long one
    records = [ResultsFolder(out).read(path.name.split(".json")[0]) for path in kept]
    assert all(r.ok and r.config["update_epochs"] == 1 and r.data["batch"]["seeds"] == [0, 1] for r in records)
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in family if running(pid)], "worker processes outlived the interrupted sweep"

    before = {path.name: path.read_bytes() for path in kept}
    rerun = subprocess.run([*command[:command.index("--grid") + 1], "update_epochs=1,2",
                            *command[command.index("--grid") + 2:]], capture_output=True, text=True, timeout=300)
    # the long arm replaced by one a test can afford (a new arm); the short arm's trials are kept as written
    assert rerun.returncode == 0, rerun.stderr
    assert all((out / "trials" / name).read_bytes() == data for name, data in before.items())
    assert len(trial_files(out)) == 4
