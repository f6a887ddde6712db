"""Ctrl-C during ``pg.train_many`` (issue 33): the docstring said "stops at once with an error (each returned run can
be resumed)", but an error returns no run. Now the first press stops every agent after the batched update it is in
and returns resumable runs, as pg.train does; a second press stops at once."""
import os
import signal

import numpy as np
import pytest

import pgcourse as pg
import pgcourse.algorithms.trainer as trainer_module

SETTINGS = dict(total_steps=4096, device="cpu", num_envs=4, n_steps=64, minibatch_size=64, update_epochs=2)


def _press_ctrl_c_at(monkeypatch, update_call: int, times: int = 1):
    """SIGINT to this process when Trainer.end_update is called for the ``update_call``-th time (agents count
    one call each per batched update)."""
    original = trainer_module.Trainer.end_update
    calls = {"n": 0}

    def end_update(self, **metrics):
        calls["n"] += 1
        if calls["n"] == update_call:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        original(self, **metrics)
    monkeypatch.setattr(trainer_module.Trainer, "end_update", end_update)


def test_the_first_ctrl_c_returns_every_agents_run_interrupted_and_resumable(monkeypatch, capsys):
    _press_ctrl_c_at(monkeypatch, update_call=3)  # during the second batched update of 2 agents
    runs = pg.train_many("ppo", "CartPole-v1", seeds=[0, 1], **SETTINGS)
    monkeypatch.undo()
    assert [run.history.status for run in runs] == ["interrupted", "interrupted"]
    assert [len(run.history.updates) for run in runs] == [2, 2]  # the batched update in progress finished
    assert "pg.resume(run)" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    resumed = pg.resume(runs[1], progress=False)
    assert resumed.history.status == "completed" and int(resumed.history.updates["env_step"][-1]) >= 4096
    assert np.isfinite(resumed.history.updates["policy_loss"]).all()


def test_a_second_ctrl_c_stops_at_once(monkeypatch):
    _press_ctrl_c_at(monkeypatch, update_call=3, times=2)
    with pytest.raises(KeyboardInterrupt):
        pg.train_many("ppo", "CartPole-v1", seeds=[0, 1], **SETTINGS)
    monkeypatch.undo()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
