"""Ctrl-C, checkpoints and resuming: nothing is lost, and a resumed run equals one that never stopped.

Ctrl-C is a real SIGINT sent to this process from inside training (after a chosen update), so the
signal handler of :mod:`pgcourse.algorithms.interrupts` is what is tested; the CLI test sends it from
outside to a ``pgcourse train`` process.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

import pgcourse as pg
from conftest import TINY_A2C, assert_history_equal
from pgcourse.rl.algorithms import trainer as trainer_module
from pgcourse.rl.algorithms.interrupts import InterruptGuard
from pgcourse.rl.config import ConfigError
from pgcourse.rl.run import TRAINING_STATE_FILE

WALL = ("wall_time",)
# (algo, env, settings): every loop, discrete and continuous, with evaluations during training
CASES = [
    ("reinforce", "CartPole-v1", dict(total_steps=1500, num_envs=2)),
    ("reinforce_baseline", "CartPole-v1", dict(total_steps=1500, num_envs=2)),
    ("a2c", "CartPole-v1", dict(TINY_A2C, total_steps=1024)),
    ("ppo", "CartPole-v1", dict(total_steps=2048, num_envs=4, n_steps=64, minibatch_size=64, update_epochs=2,
                                eval_every=512, eval_episodes=2)),
    ("ppo", "Pendulum-v1", dict(total_steps=2048, num_envs=2, n_steps=256, minibatch_size=128, update_epochs=2,
                                eval_every=1024, eval_episodes=1)),
    # TRPO (chapter 07); tests/test_trpo_interrupt.py also presses Ctrl-C inside its CG and line search
    ("trpo", "CartPole-v1", dict(total_steps=1536, num_envs=4, n_steps=64, minibatch_size=64, critic_epochs=2,
                                 eval_every=512, eval_episodes=2)),
    ("trpo", "Pendulum-v1", dict(total_steps=1536, num_envs=2, n_steps=128, minibatch_size=128, critic_epochs=2,
                                 eval_every=768, eval_episodes=1)),
]


def weights_equal(a: pg.Run, b: pg.Run) -> bool:
    nets = [(a.policy, b.policy)] + ([(a.value_net, b.value_net)] if a.value_net is not None else [])
    return all(all(torch.equal(x, y) for x, y in zip(na.state_dict().values(), nb.state_dict().values()))
               for na, nb in nets)


def assert_same_run(resumed: pg.Run, uninterrupted: pg.Run) -> None:
    assert_history_equal(resumed.history, uninterrupted.history, ignore=WALL)
    assert weights_equal(resumed, uninterrupted)
    assert resumed.normalizer_state == uninterrupted.normalizer_state


@pytest.fixture
def ctrl_c_after(monkeypatch):
    """``ctrl_c_after(k)``: send SIGINT to this process at the end of update k (``times`` of them)."""
    def arm(update: int, times: int = 1, during_next: bool = False) -> None:
        original = trainer_module.Trainer.end_update
        calls = {"n": 0}

        def end_update(self, **metrics):
            calls["n"] += 1
            if calls["n"] == update and not during_next:
                for _ in range(times):
                    os.kill(os.getpid(), signal.SIGINT)
            original(self, **metrics)
        monkeypatch.setattr(trainer_module.Trainer, "end_update", end_update)
    return arm


@pytest.mark.parametrize("algo, env_id, settings", CASES, ids=[f"{a}-{e}" for a, e, _ in CASES])
def test_ctrl_c_returns_the_run_and_resuming_equals_an_uninterrupted_run(algo, env_id, settings, ctrl_c_after,
                                                                           monkeypatch, capsys):
    uninterrupted = pg.train(algo, env_id, seed=3, progress=False, **settings)
    ctrl_c_after(2)
    interrupted = pg.train(algo, env_id, seed=3, progress=False, **settings)
    monkeypatch.undo()
    assert interrupted.history.status == "interrupted"
    assert len(interrupted.history.updates) == 2  # stopped at the end of the update the Ctrl-C came in
    assert "pg.resume(run)" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back

    resumed = pg.resume(interrupted, progress=False)
    assert resumed.history.status == uninterrupted.history.status
    assert_same_run(resumed, uninterrupted)
    assert len(interrupted.history.updates) == 2  # the run passed in is left as it was


def test_resuming_from_a_saved_folder_is_exact_too(ctrl_c_after, monkeypatch, tmp_path):
    algo, env_id, settings = CASES[3]
    uninterrupted = pg.train(algo, env_id, seed=1, progress=False, **settings)
    ctrl_c_after(3)
    interrupted = pg.train(algo, env_id, seed=1, progress=False, **settings)
    monkeypatch.undo()
    folder = interrupted.save(tmp_path / "run")
    assert (folder / TRAINING_STATE_FILE).is_file()
    loaded = pg.load(folder)
    assert loaded.history.status == "interrupted"
    resumed = pg.train(algo, env_id, resume=folder, progress=False)  # the same as pg.resume(folder)
    assert_same_run(resumed, uninterrupted)


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_complete_update(monkeypatch, capsys):
    algo, env_id, settings = CASES[3]
    original = trainer_module.Trainer.end_update
    calls, after_two = {"n": 0}, {}

    def end_update(self, **metrics):
        calls["n"] += 1
        if calls["n"] == 3:  # update 3 has stepped its networks: both presses land inside it
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        original(self, **metrics)
        if calls["n"] == 2:
            after_two.update({name: p.clone() for name, p in self.policy.state_dict().items()})
    monkeypatch.setattr(trainer_module.Trainer, "end_update", end_update)
    run = pg.train(algo, env_id, seed=2, progress=False, **settings)
    monkeypatch.undo()
    assert run.history.status.startswith("interrupted inside an update")
    assert len(run.history.updates) == 2
    assert run.training_state is None
    assert all(torch.equal(p, after_two[name]) for name, p in run.policy.state_dict().items())
    assert "cannot be resumed exactly" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(ConfigError, match="no training state.*checkpoint"):
        pg.resume(run)


def test_checkpoints_survive_a_crash_and_resume_exactly(monkeypatch, tmp_path):
    algo, env_id, settings = CASES[3]
    uninterrupted = pg.train(algo, env_id, seed=4, progress=False, **settings)
    original = trainer_module.Trainer.end_update
    calls = {"n": 0}

    def crash_at_update_6(self, **metrics):
        calls["n"] += 1
        if calls["n"] == 6:
            raise RuntimeError("the machine went down")
        original(self, **metrics)
    monkeypatch.setattr(trainer_module.Trainer, "end_update", crash_at_update_6)
    folder = tmp_path / "checkpoints"
    with pytest.raises(RuntimeError, match="went down"):
        pg.train(algo, env_id, seed=4, progress=False, checkpoint_every=512, checkpoint_dir=folder, **settings)
    monkeypatch.undo()
    checkpoint = pg.load(folder)
    assert checkpoint.history.status == "checkpoint"
    # the last checkpoint: the end of the first update past 1024 steps (an update adds at most 4 x 64 steps)
    assert 1024 <= int(checkpoint.history.updates["env_step"][-1]) < 1024 + 256
    assert len(checkpoint.history.updates) < 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]  # no staging folders left behind

    resumed = pg.resume(folder, progress=False, checkpoint_every=512, checkpoint_dir=folder)
    assert_same_run(resumed, uninterrupted)
    final = pg.load(folder)  # the end of training is saved as the last checkpoint
    assert final.history.status == uninterrupted.history.status
    assert_history_equal(final.history, uninterrupted.history, ignore=WALL)


def test_a_finished_run_trains_further_as_one_longer_run(tmp_path):
    settings = dict(CASES[3][2], anneal_lr=False)  # nothing then depends on the budget
    longer = pg.train("ppo", "CartPole-v1", seed=5, progress=False, **dict(settings, total_steps=4096))
    short = pg.train("ppo", "CartPole-v1", seed=5, progress=False, **settings)
    assert short.history.status == "completed"
    extended = pg.resume(short, total_steps=4096, progress=False)
    assert_same_run(extended, longer)


def test_log_dir_of_an_interrupted_and_resumed_run_holds_each_row_once(ctrl_c_after, monkeypatch, tmp_path):
    pytest.importorskip("tensorboard")
    algo, env_id, settings = CASES[3]
    uninterrupted = pg.train(algo, env_id, seed=6, progress=False, **settings)
    ctrl_c_after(3)
    interrupted = pg.train(algo, env_id, seed=6, progress=False, log_dir=tmp_path / "logs", **settings)
    monkeypatch.undo()
    pg.resume(interrupted, progress=False, log_dir=tmp_path / "logs")
    for table in ("episodes", "updates", "evals"):
        with open(tmp_path / "logs" / f"{table}.csv", newline="") as file:
            logged = list(csv.DictReader(file))
        expected = getattr(uninterrupted.history, table)
        assert len(logged) == len(expected), table
        for column in expected.fields:
            if column not in WALL:
                values = [float(row[column]) if row[column] else float("nan") for row in logged]
                assert values == pytest.approx(list(expected[column]), nan_ok=True), (table, column)
    assert len(list((tmp_path / "logs").glob("events.out.tfevents.*"))) == 2  # one per training session


def _csv_rows(path) -> int:
    with open(path, newline="") as file:
        return len(list(csv.DictReader(file)))


def test_a_resumed_run_goes_on_logging_and_checkpointing_where_it_did(tmp_path, capsys):
    """``pg.resume(folder)`` (and ``pgcourse resume RUN``) after a crash trained on but stopped writing the run's
    CSV logs and checkpoints unless ``log_dir``/``checkpoint_every`` were given again (issue 29): a run now
    remembers where it wrote (``run.outputs``, in meta.json) and its resumption says, on one line, that it goes
    on there."""
    logs, checkpoints = tmp_path / "logs", tmp_path / "checkpoints"
    first = pg.train("a2c", "CartPole-v1", seed=3, progress=False, log_dir=logs, checkpoint_every=256,
                     checkpoint_dir=checkpoints, **TINY_A2C)
    assert first.outputs == {"log_dir": str(logs.resolve()), "checkpoint_every": 256,
                             "checkpoint_dir": str(checkpoints.resolve())}
    rows_before = _csv_rows(logs / "updates.csv")
    assert rows_before == len(first.history.updates)
    capsys.readouterr()
    resumed = pg.resume(checkpoints, total_steps=1024, progress=False)
    said = capsys.readouterr().err
    assert f"logs to {logs.resolve()}" in said and "a checkpoint every 256 env steps" in said
    assert _csv_rows(logs / "updates.csv") == len(resumed.history.updates) > rows_before
    assert pg.load(checkpoints).history.updates["env_step"][-1] == resumed.history.updates["env_step"][-1]
    assert pg.load(checkpoints).outputs == first.outputs


def test_a_resumed_copy_does_not_checkpoint_over_the_original(tmp_path, capsys):
    import shutil

    checkpoints = tmp_path / "checkpoints"
    pg.train("a2c", "CartPole-v1", seed=3, progress=False, checkpoint_every=256, checkpoint_dir=checkpoints,
             **TINY_A2C)
    original = (checkpoints / "weights.pt").read_bytes()
    shutil.copytree(checkpoints, tmp_path / "copy")
    capsys.readouterr()
    pg.resume(tmp_path / "copy", total_steps=1024, progress=False)
    assert "no checkpoints (it checkpointed to" in capsys.readouterr().err
    assert (checkpoints / "weights.pt").read_bytes() == original


# -- what resuming refuses, with reasons ------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run():
    return pg.train("a2c", "CartPole-v1", seed=0, progress=False, **TINY_A2C)


@pytest.mark.parametrize("call, message", [
    (lambda run: pg.train("ppo", "CartPole-v1", resume=run), "is a2c on CartPole-v1, not ppo on CartPole-v1"),
    (lambda run: pg.train("a2c", "CartPole-v1", seed=7, resume=run), "keeps its seed"),
    (lambda run: pg.resume(run, total_steps=4096, lr=1e-3), "lr cannot change"),
    (lambda run: pg.resume(run), "already trained .* pass a larger total_steps"),
    # an episode budget does not lift the spent step budget: training would stop at once (it was accepted, silently)
    (lambda run: pg.resume(run, max_episodes=10**6), "already trained .* pass a larger total_steps"),
    (lambda run: pg.resume(run, total_steps=4096, checkpoint_every=0, checkpoint_dir="x"), "checkpoint_every=0"),
    (lambda run: pg.resume(run, total_steps=4096, checkpoint_every=100), "needs checkpoint_dir"),
])
def test_resume_refuses_with_a_reason(finished_run, call, message):
    with pytest.raises(ConfigError, match=message):
        call(finished_run)


def test_a_run_saved_without_training_state_says_why_it_cannot_resume(finished_run, tmp_path):
    folder = finished_run.save(tmp_path / "old")
    (folder / TRAINING_STATE_FILE).unlink()  # as saved by pgcourse before checkpoints existed
    with pytest.raises(ConfigError, match="no training state"):
        pg.resume(folder, total_steps=4096)


def test_a_joint_grad_clip_run_is_not_resumed_inexactly():
    run = pg.train("ppo", "CartPole-v1", seed=0, progress=False, traps=("joint_grad_clip",),
                   **dict(CASES[3][2], total_steps=256))
    with pytest.raises(ConfigError, match="joint_grad_clip"):
        pg.resume(run, total_steps=512)


def test_checkpoints_never_replace_what_is_not_theirs(finished_run, tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("years of work")
    with pytest.raises(ConfigError, match="not a saved pgcourse run"):
        pg.train("a2c", "CartPole-v1", progress=False, checkpoint_every=64, checkpoint_dir=thesis, **TINY_A2C)
    assert (thesis / "thesis.tex").read_text() == "years of work"
    other = finished_run.save(tmp_path / "other-run")
    before = (other / "weights.pt").read_bytes()
    with pytest.raises(ConfigError, match="already holds a saved run"):
        pg.train("a2c", "CartPole-v1", progress=False, checkpoint_every=64, checkpoint_dir=other, **TINY_A2C)
    assert (other / "weights.pt").read_bytes() == before


# -- the Ctrl-C handler itself ------------------------------------------------------------------------
def test_the_guard_leaves_an_ignored_sigint_ignored():
    """Sweep workers ignore SIGINT (their driver stops them): training there must not start catching it."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with InterruptGuard() as guard:
            assert not guard.active
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_guard_is_inactive_outside_the_main_thread():
    seen = {}

    def body():
        with InterruptGuard() as guard:
            seen["active"] = guard.active
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == {"active": False}


# -- the command line ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_ctrl_c_saves_the_run_and_pgcourse_resume_finishes_it_exactly(tmp_path):
    steps = 12_288
    out = tmp_path / "run"
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    train = subprocess.Popen([sys.executable, "-m", "pgcourse.cli", "train", "ppo", "--env", "CartPole-v1", "--steps",
                              str(steps), "--out", str(out), "--quiet", "--checkpoint-every", "2048"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / "meta.json").exists() and train.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the first checkpoint: training is under way
    train.send_signal(signal.SIGINT)
    stdout, stderr = train.communicate(timeout=120)
    assert train.returncode == 130, stdout + stderr
    assert "status interrupted" in stdout and f"saved to {out}" in stdout
    assert f"pgcourse resume {out}" in stderr
    assert pg.load(out).history.status == "interrupted"

    resumed = subprocess.run([sys.executable, "-m", "pgcourse.cli", "resume", str(out), "--quiet"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    uninterrupted = pg.train("ppo", "CartPole-v1", seed=0, total_steps=steps, progress=False)
    assert_same_run(pg.load(out), uninterrupted)


def test_a_sweep_trial_interrupted_in_its_worker_is_not_recorded_as_finished(monkeypatch, finished_run):
    """A Ctrl-C that reaches a Ray worker stops its training gracefully: the trial must not count as done."""
    from pgcourse.course.sweeps import trial
    from pgcourse.course.sweeps.spec import TrialSpec

    finished_run.history.status = "interrupted"
    try:
        monkeypatch.setattr(trial, "train", lambda *args, **kwargs: finished_run)
        spec = TrialSpec(algo="a2c", env_id="CartPole-v1", seed=0, overrides={"total_steps": 512})
        with pytest.raises(KeyboardInterrupt):
            trial.run_trial(spec.to_dict())
    finally:
        finished_run.history.status = "completed"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["SIGTERM", "SIGHUP"])
def test_cli_sigterm_or_a_closed_terminal_saves_the_run_without_checkpoints(tmp_path, kind):
    """Issue 48: a run stopped with SIGTERM (`timeout`, a cluster's job limit) or SIGHUP (a closed terminal) without
    --checkpoint-every was lost; Ctrl-C saved it. Now both stop it as Ctrl-C does: after the update it is in, the
    run saved and resumable."""
    out, log = tmp_path / "run", tmp_path / "stderr.txt"
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")
    with open(log, "w") as stderr:
        # the child as a terminal's shell starts it: SIGHUP at its default (a suite run under nohup ignores SIGHUP,
        # and an ignored SIGHUP is inherited and, by design, kept ignored: the loaded CI run of 2026-11-26 ran 200k
        # steps past the signal)
        train = subprocess.Popen([sys.executable, "-m", "pgcourse.cli", "train", "ppo", "--env", "CartPole-v1",
                                  "--steps", "200000", "--out", str(out)], stdout=subprocess.PIPE, stderr=stderr,
                                 text=True, env=env, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
        deadline = time.monotonic() + 600  # generous: a busy machine starts python slowly
        while "ppo CartPole-v1" not in log.read_text() and train.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the progress bar is up: the trainer (and its Ctrl-C guard) is built
        time.sleep(1.0)
        train.send_signal(getattr(signal, kind))
        stdout, _ = train.communicate(timeout=600)
    assert train.returncode == 130, stdout + log.read_text()
    assert "status interrupted" in stdout and f"saved to {out}" in stdout
    run = pg.load(out)
    assert run.history.status == "interrupted" and 0 < run.history.updates["env_step"][-1] < 200_000
    assert run.resume_state() is not None  # training_state.pt: resumable exactly


def test_sigterm_is_not_redirected_where_ctrl_c_is_ignored_and_nohup_keeps_sighup_ignored():
    """The redirection must never make a process unkillable: with SIGINT ignored (a background job without job
    control) SIGTERM keeps its own handler; a SIGHUP ignored by nohup stays ignored (closing the terminal must not
    stop a run started with nohup)."""
    from pgcourse.cli import _termination_as_interrupt
    saved = {kind: signal.getsignal(kind) for kind in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with _termination_as_interrupt():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, saved[signal.SIGTERM])
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with _termination_as_interrupt():
            assert signal.getsignal(signal.SIGTERM) == saved[signal.SIGTERM]
    finally:
        for kind, handler in saved.items():
            signal.signal(kind, handler)


@pytest.mark.parametrize("max_episodes, refused", [(None, True), (7, True), (8, True), (9, False)])
def test_a_run_with_an_episode_budget_resumes_only_with_episodes_left_to_play(max_episodes, refused):
    """Training stops when either budget is spent. A REINFORCE run that played its max_episodes=8 (two batches of
    four) cannot be resumed with 8 (its own) or fewer: it would train nothing; it says so and what to pass. With 9 it
    plays on (a batch more)."""
    run = pg.train("reinforce", "CartPole-v1", seed=0, max_episodes=8, progress=False)
    assert len(run.history.episodes) == 8
    overrides = {} if max_episodes is None else {"max_episodes": max_episodes}
    if refused:
        with pytest.raises(ConfigError, match=r"already played 8 of its max_episodes=[0-9]+: pass a larger "
                                              r"max_episodes"):
            pg.resume(run, progress=False, **overrides)
    else:
        assert len(pg.resume(run, progress=False, **overrides).history.episodes) > 8
