"""The loops read their diagnostics off the device once per update, not once per gradient step.

On a GPU every ``float(t)``/``t.item()`` waits for the device; PPO read about seven numbers per gradient step
(284 per update of lesson 04's CartPole config). Here the reads are counted on the CPU (the same calls), and
the numbers the history records are checked to be the same floats as before, bit for bit.
"""
from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

import pgcourse as pg

READS = ("__float__", "item", "tolist", "numpy", "__bool__")


@pytest.fixture
def host_reads(monkeypatch):
    counts: collections.Counter = collections.Counter()
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counting)
    return counts


def _reads_per_update(counts, algo: str, **overrides) -> float:
    """Host reads per update, the rollout's (one copy of the actions per env step) included."""
    counts.clear()
    run = pg.train(algo, "CartPole-v1", seed=0, device="cpu", progress=False, **overrides)
    return sum(counts.values()) / len(run.history.updates)


def test_ppo_reads_per_update_do_not_grow_with_the_gradient_steps(host_reads):
    one_epoch = _reads_per_update(host_reads, "ppo", total_steps=2048, update_epochs=1)
    ten_epochs = _reads_per_update(host_reads, "ppo", total_steps=2048, update_epochs=10)
    # 4 minibatches per epoch: ten epochs are 40 gradient steps against 4; before, 7 reads each (+252)
    assert ten_epochs == one_epoch, (one_epoch, ten_epochs)


def test_read_numbers_gives_the_floats_float_gives():
    from pgcourse.rl.algorithms.trainer import read_numbers
    values = {"a": torch.tensor(0.1, dtype=torch.float32), "b": torch.tensor(1 / 3, dtype=torch.float64),
              "c": torch.tensor(2.5e-3, dtype=torch.float16), "d": 0.7, "e": torch.tensor([1e-30])}
    read = read_numbers(values)
    assert list(read) == list(values)
    for name, value in values.items():
        assert read[name] == float(value) and type(read[name]) is float


def test_means_sum_in_the_order_added_as_the_loops_always_did():
    from pgcourse.rl.algorithms.agents import AgentMeans, Rows
    means = AgentMeans(2)
    for value in (1e16, 1.0, -1e16):  # sum() since 3.12 would give 1/3
        means.add(x=torch.tensor([value, 2.0], dtype=torch.float64))
    means.add(Rows([0, 3], [False, True]), x=torch.tensor([5.0, 6.0], dtype=torch.float64))  # agent 0 took no step
    assert means.means() == [{"x": 0.0}, {"x": 3.0}]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_rollouts_episodes_are_recorded_as_arrays_not_one_python_row_each(backend, monkeypatch):
    """Issue 44, item 4: each finished episode cost a Python call (~3 us; 0.3 s a rollout at 65,536 envs). The
    rollout's episodes go into the history in one call per rollout; the same rows as before (the cached-sweep and
    wiring tests hold the numbers bit for bit)."""
    from pgcourse.rl.history import Table
    calls = {"append": 0, "extend": 0}
    append, extend = Table.append, Table.extend

    def counting(name, original):
        def wrapped(self, **values):
            if "length" in self.fields:  # the episodes table
                calls[name] += 1
            return original(self, **values)
        return wrapped
    monkeypatch.setattr(Table, "append", counting("append", append))
    monkeypatch.setattr(Table, "extend", counting("extend", extend))
    run = pg.train("ppo", "CartPole-v1", seed=0, device="cpu", progress=False, total_steps=4096, env_backend=backend)
    assert calls["append"] == 0 and calls["extend"] == len(run.history.updates)
    assert len(run.history.episodes) > 50 and np.all(np.diff(run.history.episodes["env_step"]) >= 0)
