"""Tests that pin the definitions of the loops' agent axis (issue 45, item 5): ``algorithms/agents.py``,
``stacked.py``, ``ppo.py`` and ``a2c.py`` as ``pg.train_many`` uses them with agents whose settings differ.

A mutation audit found one-line bugs there that the whole-run tests let through (the batched PPO loop asking
``all`` agents instead of ``any`` for value clipping, among others). Each test below states a definition: the
helpers of the agent axis on small tensors built here (fake agents, no envs), the stacked networks, clipping and
Adam against one agent's own arithmetic, and, in tiny runs (a few hundred env steps), that every per-agent
setting acts on its agent alone and exactly as ``pg.train`` with that agent's config does.
(``tests/test_train_many.py`` tests the paths: seeds, traps, checkpoints, logs; not repeated here.)
"""
from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import pgcourse as pg
from pgcourse.rl import batching, diagnostics, losses, returns
from pgcourse.rl.algorithms import agents as agent_axis
from pgcourse.rl.algorithms.agents import (MASKED_PIECES, AgentMeans, OneAgent, PerAgent, Rows, _settings_for,
                                           advantages_of, agent_minibatches, as_row, epoch_kl_exceeds, gather_rows,
                                           map_rows, own_rows, piece_of, read_rows, reduce_rows, shared_parts)
from pgcourse.rl.algorithms.components import Components
from pgcourse.rl.algorithms.optim import LeanAdam
from pgcourse.rl.algorithms.stacked import (AgentStack, EachAgentEnv, SharedCartPoleEnv, StackedAdam, _groups,
                                            _stack_module, agent_generator, build_agents, clip_per_agent,
                                            joint_clip, norm_limits, shared_env, shared_tensor_env, stacked_linear,
                                            stacked_mlp)
from pgcourse.rl.algorithms.trainer import Hooks, Trainer
from pgcourse.rl.config import make_config

CPU = torch.device("cpu")


# -- helpers: fake agents (no envs) ------------------------------------------------------------------------------------
def fake_agents(*configs) -> SimpleNamespace:
    """What reduce_rows / advantages_of / epoch_kl_exceeds read of an agent axis: each agent's config, the device,
    the cache of setting columns."""
    return SimpleNamespace(trainers=[SimpleNamespace(config=SimpleNamespace(**c)) for c in configs], device=CPU,
                           setting_columns={})


def padded_mask(sizes: list[int], length: int) -> torch.Tensor:
    return torch.tensor([[i < size for i in range(length)] for size in sizes])  # [A, b], built by hand


class Spy:
    """A piece of math that records each call (its arguments and what the reference returned)."""

    def __init__(self, fn=None):
        self.fn, self.calls = fn, []

    def __call__(self, *args, **kwargs):
        result = self.fn(*args, **kwargs) if self.fn is not None else args[0].sum()
        self.calls.append((args, kwargs, result))
        return result


# == agents.py: the pieces of the agent axis ===========================================================================
def test_the_pieces_called_once_for_all_agents_with_a_mask_are_the_reference_ones_that_take_mask():
    """``MASKED_PIECES`` is exactly the reference functions that take ``mask=`` and the loops reduce with: the mean
    over rows, PPO's and A2C's losses, the value and entropy losses, advantage normalisation, approx-KL and the
    clip fraction (each one a function object: a learner's piece, even with the same code, is not one of them)."""
    assert MASKED_PIECES == {batching.mean_over_rows, losses.clipped_surrogate_loss, losses.value_loss,
                             losses.entropy_bonus_loss, losses.a2c_policy_loss, returns.normalize,
                             diagnostics.approx_kl, diagnostics.clip_fraction}
    assert diagnostics.explained_variance not in MASKED_PIECES and returns.compute_gae not in MASKED_PIECES


@pytest.mark.parametrize("stepping, expected", [([], []), ([True], [0]), ([False], []), ([True, False, True], [0, 2]),
                                                 ([False, False], []), ([False, True], [1])])
def test_rows_agents_are_the_indices_of_the_agents_taking_part(stepping, expected):
    """``Rows.agents``: the indices ``a`` with ``stepping[a]`` True, in order (none when no agent takes part); the
    mask defaults to None (one agent's batch is never padded)."""
    rows = Rows([1] * len(stepping), stepping)
    assert rows.agents == expected and rows.mask is None


def test_a_piece_that_differs_between_agents_refuses_to_be_called_as_one():
    """A :class:`PerAgent` is agent ``a``'s function at ``piece[a]`` (``piece_of``); called as one function it raises
    TypeError saying that the piece differs between agents; a shared function is its own piece for every agent."""
    first, second = (lambda x: x + 1), (lambda x: x + 2)
    piece = PerAgent([first, second])
    assert piece_of(piece, 0) is first and piece_of(piece, 1) is second
    assert piece_of(first, 0) is first and piece_of(first, 7) is first
    with pytest.raises(TypeError, match="differs between agents"):
        piece(1)


def test_shared_parts_keeps_a_shared_piece_and_makes_a_differing_one_per_agent():
    """``shared_parts``: a field every agent holds as the same object is kept as it is; a field where any agent's
    object is another (by identity: two functions with the same code differ) is a PerAgent of each agent's own,
    in agent order."""
    def normalize_a(x):
        return x

    def normalize_b(x):
        return x

    same = shared_parts([Components(), Components(), Components()])
    assert all(not isinstance(getattr(same, name), PerAgent) for name in Components.names())
    assert same.value_loss is losses.value_loss
    one = shared_parts([Components(normalize=normalize_a)])
    assert one.normalize is normalize_a
    parts = shared_parts([Components(), Components(normalize=normalize_a), Components(normalize=normalize_b)])
    assert isinstance(parts.normalize, PerAgent)
    assert list(parts.normalize) == [returns.normalize, normalize_a, normalize_b]
    assert parts.value_loss is losses.value_loss and not isinstance(parts.compute_gae, PerAgent)
    last = shared_parts([Components(), Components(), Components(value_loss=normalize_a)])  # the last agent differs
    assert list(last.value_loss) == [losses.value_loss, losses.value_loss, normalize_a]


@pytest.mark.parametrize("field", ["compute_gae", "td_errors"])
def test_gae_that_differs_is_each_agents_own_gae(field):
    """Where ``compute_gae`` or ``td_errors`` differs between agents, ``compute_gae`` is a PerAgent of each agent's
    ``gae()`` (its own GAE fed by its own deltas) and ``td_errors`` is the reference (already inside each gae())."""
    def mine(*args, **kwargs):
        return returns.compute_gae(*args, **kwargs) if field == "compute_gae" else returns.td_errors(*args, **kwargs)

    components = [Components(), Components(**{field: mine})]
    parts = shared_parts(components)
    assert isinstance(parts.compute_gae, PerAgent) and parts.td_errors is returns.td_errors
    assert parts.compute_gae[0] is returns.compute_gae
    if field == "compute_gae":
        assert parts.compute_gae[1] is mine
    else:
        assert isinstance(parts.compute_gae[1], functools.partial)
        assert parts.compute_gae[1].keywords == {"td_errors_fn": mine}


def test_as_row_is_one_number_per_agent():
    """``as_row``: one agent's 0-d tensor is a view ``[1]`` of it; several tensors stacked ``[A]``; Python numbers kept
    in float64 (the history reads back the float a learner's piece gave)."""
    t = torch.tensor(2.5)
    row = as_row([t], CPU)
    assert row.shape == (1,) and row.data_ptr() == t.data_ptr()
    stacked = as_row([torch.tensor(1.0), torch.tensor([2.0]), torch.tensor(3.0)], CPU)
    assert stacked.tolist() == [1.0, 2.0, 3.0] and stacked.dtype == torch.float32
    floats = as_row([0.1, 1 / 3], CPU)
    assert floats.dtype == torch.float64 and floats.tolist() == [0.1, 1 / 3]
    single = as_row([0.1], CPU)
    assert single.dtype == torch.float64 and single.tolist() == [0.1]
    assert as_row([0, 2], CPU).tolist() == [0.0, 2.0]


def test_own_rows_are_an_agents_first_rows():
    """``own_rows(t [A, b, ...], a, size)``: ``t[a, :size]``, a view; one agent with all its rows is the squeeze."""
    t = torch.arange(24.0).reshape(3, 4, 2)
    assert torch.equal(own_rows(t, 1, 3), t[1, :3]) and own_rows(t, 1, 3).data_ptr() == t[1].data_ptr()
    assert own_rows(t, 2, 0).shape == (0, 2)
    one = torch.arange(8.0).reshape(1, 4, 2)
    assert torch.equal(own_rows(one, 0, 4), one[0]) and own_rows(one, 0, 4).shape == (4, 2)
    assert torch.equal(own_rows(one, 0, 3), one[0, :3])
    assert own_rows(t, 0, 4).shape == (4, 2) and torch.equal(own_rows(t, 0, 4), t[0])


def test_settings_shared_by_all_agents_are_numbers_and_differing_ones_columns():
    """``_settings_for``: each positional setting a Python number where every agent has the same value, a float32
    column ``[A, 1]`` where they differ (made once: the same tensor from the cache), None for the whole call where
    a setting is None for some agents only; a setting None for all is None itself."""
    configs = [SimpleNamespace(clip=0.2, coef=0.1, opt=None), SimpleNamespace(clip=0.2, coef=0.3, opt=None),
               SimpleNamespace(clip=0.2, coef=0.5, opt=None)]
    cache: dict = {}
    shared = _settings_for(configs, lambda c: (c.clip, c.coef, c.opt), CPU, cache)
    assert shared[0] == 0.2 and isinstance(shared[0], float) and shared[2] is None
    column = shared[1]
    assert column.shape == (3, 1) and column.dtype == torch.float32
    assert column[:, 0].tolist() == [torch.tensor(v).item() for v in (0.1, 0.3, 0.5)]
    assert _settings_for(configs, lambda c: (c.coef,), CPU, cache)[0] is column  # made once
    assert _settings_for(configs, lambda c: (), CPU, cache) == ()
    mixed = [SimpleNamespace(eps=None), SimpleNamespace(eps=0.2), SimpleNamespace(eps=None)]
    assert _settings_for(mixed, lambda c: (c.eps,), CPU, {}) is None
    assert _settings_for(mixed[::-1][:1] + mixed[1:2], lambda c: (c.eps,), CPU, {}) is None  # None first or last
    two = [SimpleNamespace(v=1.0), SimpleNamespace(v=1.0 + 2 ** -20)]  # differ by less than float32's step at 1
    assert _settings_for(two, lambda c: (c.v,), CPU, {})[0].shape == (2, 1)


def test_reduce_rows_calls_a_masked_piece_once_with_each_agents_settings(monkeypatch):
    """A > 1 with a piece of ``MASKED_PIECES``: one call for all agents, on the padded tensors, with ``mask=`` and the
    agents' settings (numbers, or columns where they differ); its ``[A, 1]`` result is the ``[A]`` row."""
    spy = Spy(lambda x, eps, mask=None: (torch.where(mask, x, 0.0).sum(-1, keepdim=True) * eps))
    monkeypatch.setattr(agent_axis, "MASKED_PIECES", frozenset({spy}))
    agents = fake_agents(dict(eps=1.0), dict(eps=2.0))
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 100.0]])
    rows = Rows([3, 2], [True, True], padded_mask([3, 2], 3))
    out = reduce_rows(agents, spy, (x,), rows, lambda c: (c.eps,))
    assert out.tolist() == [6.0, 18.0] and out.shape == (2,) and len(spy.calls) == 1
    args, kwargs, _ = spy.calls[0]
    assert torch.equal(kwargs["mask"], rows.mask) and args[1][:, 0].tolist() == [1.0, 2.0]
    same = fake_agents(dict(eps=3.0), dict(eps=3.0))
    reduce_rows(same, spy, (x,), rows, lambda c: (c.eps,))
    assert spy.calls[-1][0][1] == 3.0


def test_reduce_rows_calls_any_other_piece_agent_by_agent_on_its_own_rows(monkeypatch):
    """A piece outside ``MASKED_PIECES`` (a learner's), a PerAgent, a setting None for some agents only, or one
    agent (no mask): one call per agent taking part, on its own first ``sizes[a]`` rows (None passed on as None),
    with its own settings; an agent not taking part gets 0."""
    seen = []

    def piece(x, other, eps):
        seen.append((x.tolist(), other, eps))
        return x.sum() * (1.0 if eps is None else eps)

    agents = fake_agents(dict(eps=None), dict(eps=2.0), dict(eps=3.0))
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    rows = Rows([3, 1, 2], [True, False, True], padded_mask([3, 0, 2], 3))
    out = reduce_rows(agents, piece, (x, None), rows, lambda c: (c.eps,))
    assert out.tolist() == [6.0, 0.0, 45.0]
    assert seen == [([1.0, 2.0, 3.0], None, None), ([7.0, 8.0], None, 3.0)]
    seen.clear()
    monkeypatch.setattr(agent_axis, "MASKED_PIECES", frozenset({piece}))  # a masked piece with a None for some agents
    out = reduce_rows(agents, piece, (x, None), rows, lambda c: (c.eps,))
    assert out.tolist() == [6.0, 0.0, 45.0] and len(seen) == 2
    doubled = PerAgent([lambda x: x.sum(), lambda x: 2 * x.sum()])
    out = reduce_rows(fake_agents({}, {}), doubled, (x[:2],), Rows([2, 3], [True, True], padded_mask([2, 3], 3)))
    assert out.tolist() == [3.0, 30.0]
    one = reduce_rows(fake_agents(dict(eps=2.0)), lambda x, eps: x.sum() * eps, (x[:1],), Rows([3], [True]),
                      lambda c: (c.eps,))
    assert one.tolist() == [12.0]


def test_reduce_rows_with_the_reference_losses_is_each_agents_own_call():
    """The reference pieces through ``reduce_rows`` (one masked call, settings differing per agent) give each agent
    what the piece gives on that agent's own rows with that agent's own setting."""
    g = torch.Generator().manual_seed(3)
    sizes, length = [6, 4, 5], 6
    new, old, adv = (torch.randn(3, length, generator=g) for _ in range(3))
    agents = fake_agents(dict(clip_eps=0.05), dict(clip_eps=0.5), dict(clip_eps=0.05))
    rows = Rows(sizes, [True] * 3, padded_mask(sizes, length))
    out = reduce_rows(agents, losses.clipped_surrogate_loss, (new, old, adv), rows, lambda c: (c.clip_eps,))
    kl = reduce_rows(agents, diagnostics.approx_kl, (old, new), rows)
    for a, (size, eps) in enumerate(zip(sizes, (0.05, 0.5, 0.05))):
        own = losses.clipped_surrogate_loss(new[a, :size], old[a, :size], adv[a, :size], eps)
        assert out[a].item() == pytest.approx(own.item(), rel=1e-5, abs=1e-6)
        assert kl[a].item() == pytest.approx(diagnostics.approx_kl(old[a, :size], new[a, :size]).item(), rel=1e-5)
    swapped = losses.clipped_surrogate_loss(new[1, :4], old[1, :4], adv[1, :4], 0.05)
    assert abs(out[1].item() - swapped.item()) > 1e-3  # the setting matters here: agent 1's own was used


def test_map_rows_applies_a_piece_to_each_agents_own_rows():
    """``map_rows``: without a mask each agent's rows through its piece, stacked; with a mask a masked piece in one
    call (each agent's own mean and deviation), any other piece on each agent's first ``sizes[a]`` rows, the
    padding and the rows of an agent not taking part left as they were."""
    x = torch.tensor([[1.0, 2.0, 3.0, 50.0], [4.0, 6.0, 60.0, 70.0], [9.0, 9.0, 9.0, 9.0]])
    one = map_rows(fake_agents({}), lambda v: v * 10, x[:1], Rows([4], [True]))
    assert one.tolist() == [[10.0, 20.0, 30.0, 500.0]]
    rows = Rows([3, 2, 4], [True, True, False], padded_mask([3, 2, 0], 4))
    out = map_rows(fake_agents({}, {}, {}), lambda v: v - v.mean(), x, rows)
    assert out.tolist() == [[-1.0, 0.0, 1.0, 50.0], [-1.0, 1.0, 60.0, 70.0], [9.0, 9.0, 9.0, 9.0]]
    assert x[0, 0] == 1.0  # the input is not written
    per_agent = PerAgent([lambda v: v * 0, lambda v: v * 2, lambda v: v * 3])
    out = map_rows(fake_agents({}, {}, {}), per_agent, x, rows)
    assert out.tolist() == [[0.0, 0.0, 0.0, 50.0], [8.0, 12.0, 60.0, 70.0], [9.0, 9.0, 9.0, 9.0]]
    normalized = map_rows(fake_agents({}, {}, {}), returns.normalize, x, Rows([3, 2, 1], [True] * 3,
                                                                               padded_mask([3, 2, 1], 4)))
    for a, size in enumerate([3, 2, 1]):
        torch.testing.assert_close(normalized[a, :size], returns.normalize(x[a, :size]), rtol=1e-5, atol=1e-6)


def test_advantages_of_is_gae_column_by_column_with_each_agents_discounts():
    """``advantages_of``: with the agents' gamma and lambda all equal and one GAE, one call on ``[T, A * N]`` (GAE
    treats each column on its own); otherwise one call per agent on its ``[T, N]`` with its own gamma and lambda (or
    its own GAE); either way ``[T, A, N]``, agent ``a``'s the GAE of its own rollout."""
    g = torch.Generator().manual_seed(0)
    T, A, N = 5, 3, 2
    rollout = SimpleNamespace(rewards=torch.randn(T, A, N, generator=g), values=torch.randn(T, A, N, generator=g),
                              next_values=torch.randn(T, A, N, generator=g),
                              terminated=(torch.rand(T, A, N, generator=g) < 0.3).float(),
                              truncated=(torch.rand(T, A, N, generator=g) < 0.2).float())

    def own(a, gamma, lam):
        return returns.compute_gae(*(getattr(rollout, f)[:, a] for f in
                                     ("rewards", "values", "next_values", "terminated", "truncated")), gamma, lam)

    spy = Spy(returns.compute_gae)
    same = advantages_of(fake_agents(*[dict(gamma=0.9, gae_lambda=0.8)] * 3), spy, rollout)
    assert len(spy.calls) == 1 and spy.calls[0][0][0].shape == (T, A * N) and spy.calls[0][0][5:] == (0.9, 0.8)
    assert same.shape == (T, A, N)
    for a in range(A):
        torch.testing.assert_close(same[:, a], own(a, 0.9, 0.8), rtol=1e-6, atol=1e-6)
    spy.calls.clear()
    discounts = [(0.9, 0.8), (0.5, 0.8), (0.9, 0.1)]
    differ = advantages_of(fake_agents(*[dict(gamma=g_, gae_lambda=l_) for g_, l_ in discounts]), spy, rollout)
    assert [call[0][5:] for call in spy.calls] == discounts and all(c[0][0].shape == (T, N) for c in spy.calls)
    for a, (gamma, lam) in enumerate(discounts):
        torch.testing.assert_close(differ[:, a], own(a, gamma, lam), rtol=1e-6, atol=1e-6)
    gaes = PerAgent([returns.compute_gae, lambda *args: torch.zeros(T, N), returns.compute_gae])
    mixed = advantages_of(fake_agents(*[dict(gamma=0.9, gae_lambda=0.8)] * 3), gaes, rollout)
    assert not mixed[:, 1].any() and torch.allclose(mixed[:, 2], own(2, 0.9, 0.8))


def test_gather_rows_takes_each_agents_own_rows():
    """``gather_rows(t [A, B, ...], index [A, b])``: ``out[a, i] = t[a, index[a, i]]`` (one agent too)."""
    t = torch.arange(3 * 5 * 2).reshape(3, 5, 2)
    index = torch.tensor([[4, 0], [1, 1], [0, 3]])
    expected = torch.stack([torch.stack([t[a, i] for i in index[a]]) for a in range(3)])
    assert torch.equal(gather_rows(t, index), expected)
    assert torch.equal(gather_rows(t[:1], index[:1]), expected[:1])
    flat = torch.arange(10.0).reshape(2, 5)
    assert gather_rows(flat, torch.tensor([[4, 3], [0, 2]])).tolist() == [[4.0, 3.0], [5.0, 7.0]]


def test_gather_rows_of_several_tensors_is_each_tensors_own_rows_and_keeps_none():
    """``gather_rows((t1, None, t2), index)``: a list, each entry ``gather_rows(t, index)`` of its tensor (shapes after
    the agent and row axes may differ), None where the tensor is None; one agent too."""
    t1, t2 = torch.arange(3 * 5 * 2).reshape(3, 5, 2), torch.arange(15.0).reshape(3, 5) * -1
    index = torch.tensor([[4, 0], [1, 1], [0, 3]])
    rows = gather_rows((t1, None, t2), index)
    assert isinstance(rows, list) and rows[1] is None
    assert torch.equal(rows[0], gather_rows(t1, index)) and torch.equal(rows[2], gather_rows(t2, index))
    assert rows[2].tolist() == [[-4.0, -0.0], [-6.0, -6.0], [-10.0, -13.0]]
    one = gather_rows([None, t2[1:2]], index[1:2])
    assert one[0] is None and one[1].tolist() == [[-6.0, -6.0]]


def test_read_rows_reads_every_tensor_as_python_floats_in_the_order_given():
    """``read_rows``: each ``[A]`` tensor as a list of Python floats (float64 kept exactly), in the order of the
    names given, whatever their dtypes."""
    values = {"b": torch.tensor([0.1, 0.2], dtype=torch.float64), "a": torch.tensor([1.5, -2.0]),
              "c": torch.tensor([True, False]), "d": torch.tensor([1 / 3, 2.0], dtype=torch.float64)}
    read = read_rows(values)
    assert list(read) == ["b", "a", "c", "d"]
    assert read == {"b": [0.1, 0.2], "a": [1.5, -2.0], "c": [1.0, 0.0], "d": [1 / 3, 2.0]}
    assert all(isinstance(x, float) for numbers in read.values() for x in numbers)
    assert read_rows({}) == {}


def test_agent_means_average_each_agents_own_steps_in_order():
    """``AgentMeans``: each agent's mean of a diagnostic over the steps it took (``rows.stepping``; all agents
    without rows), summed in the order added; an agent that took no step gets nan; ``read(name, since)`` gives each
    agent's numbers from step ``since`` on, of the steps it took."""
    means = AgentMeans(3)
    f64 = functools.partial(torch.tensor, dtype=torch.float64)
    means.add(loss=f64([1.0, 1.0, 5.0]), kl=f64([0.0, 1.0, 2.0]))
    means.add(Rows([1] * 3, [True, False, False]), loss=f64([1e16, 100.0, 100.0]), kl=f64([1.0, 1.0, 1.0]))
    means.add(Rows([1] * 3, [True, True, False]), loss=f64([-1e16, 3.0, 100.0]), kl=f64([2.0, 3.0, 3.0]))
    result = means.means()
    assert result[0]["loss"] == 0.0  # in the order added, (1 + 1e16) - 1e16 (the other way round: 1/3)
    assert result[1] == {"loss": 2.0, "kl": 2.0} and result[2] == {"loss": 5.0, "kl": 2.0}
    assert means.read("kl") == [[0.0, 1.0, 2.0], [1.0, 3.0], [2.0]]
    assert means.read("kl", since=1) == [[1.0, 2.0], [3.0], []]
    assert means.read("kl", since=3) == [[], [], []]
    idle = AgentMeans(2)
    idle.add(Rows([1, 1], [False, True]), x=torch.tensor([1.0, 4.0]))
    out = idle.means()
    assert math.isnan(out[0]["x"]) and out[1]["x"] == 4.0
    assert AgentMeans(2).means() == [{}, {}]


def kl_agents(*targets):
    return fake_agents(*[dict(target_kl=t) for t in targets])


def test_an_agent_stops_its_epochs_when_its_mean_kl_exceeds_its_own_target():
    """``epoch_kl_exceeds``: True for agent ``a`` when it took part in the epoch, has a ``target_kl`` and the mean
    of its minibatch KLs since the epoch's first step is strictly greater than it; equal is not over; an agent
    without a target, not taking part, or without a step in the epoch never stops."""
    per_step = AgentMeans(4)
    per_step.add(approx_kl=torch.tensor([9.0, 9.0, 9.0, 9.0]))  # an earlier epoch: not counted
    per_step.add(approx_kl=torch.tensor([0.25, 0.5, 0.1, 0.75]))
    per_step.add(Rows([1] * 4, [True, True, True, False]), approx_kl=torch.tensor([0.75, 0.5, 0.1, 9.0]))
    rows = Rows([1] * 4, [True, True, True, True])
    # means since step 1: 0.5, 0.5, 0.1, 0.75 (agent 3 took one step of the two)
    assert epoch_kl_exceeds(kl_agents(0.5, 0.25, None, 0.5), per_step, 1, rows) == [False, True, False, True]
    assert epoch_kl_exceeds(kl_agents(0.4999, 0.5, 0.0999, 0.7501), per_step, 1, rows) == [True, False, True, False]
    out = epoch_kl_exceeds(kl_agents(0.1, 0.1, 0.01, 0.1), per_step, 1, Rows([1] * 4, [True, False, True, True]))
    assert out == [True, False, True, True]
    assert epoch_kl_exceeds(kl_agents(0.1, 0.1, 0.01, 0.1), per_step, 3, rows) == [False] * 4  # no step since 3
    nothing = AgentMeans(2)  # no target anywhere: nothing is read (an AgentMeans without approx_kl)
    assert epoch_kl_exceeds(kl_agents(None, None), nothing, 0, Rows([1, 1], [True, True])) == [False, False]
    # a target only on an agent that is not taking part reads nothing either
    assert epoch_kl_exceeds(kl_agents(0.1, None), nothing, 0, Rows([1, 1], [False, True])) == [False, False]


def fake_trainer(minibatch_size=3, num_minibatches=None, seed=0, components=None):
    return SimpleNamespace(config=SimpleNamespace(minibatch_size=minibatch_size, num_minibatches=num_minibatches,
                                                  target_kl=None),
                           components=components or Components(), device=CPU, action_kind="discrete",
                           minibatch_generator=torch.Generator().manual_seed(seed), done=False)


@pytest.mark.parametrize("batch, minibatch_size, num_minibatches, sizes", [
    (10, 3, None, [3, 3, 2, 2]), (10, 10, None, [10]), (10, 20, None, [10]), (10, 64, 2, [5, 5]),
    (10, 64, 3, [4, 3, 3]), (7, 1, None, [1] * 7), (1, 4, None, [1])])
def test_one_agents_minibatches_are_its_own_permutation_cut_by_its_config(batch, minibatch_size, num_minibatches,
                                                                         sizes):
    """``OneAgent.minibatches``: the agent's permutation of its ``B`` rows from its own generator, cut into
    minibatches of ``minibatch_size`` rows (or ``ceil(B / num_minibatches)``) whose sizes differ by at most one,
    each ``[1, b]`` with its Rows (no mask)."""
    agent = OneAgent(fake_trainer(minibatch_size, num_minibatches, seed=5))
    chunks = agent.minibatches(Rows([batch], [True]))
    assert [index.shape for index, _ in chunks] == [(1, s) for s in sizes]
    assert [(r.sizes, r.stepping, r.mask) for _, r in chunks] == [([s], [True], None) for s in sizes]
    assert sorted(torch.cat([index[0] for index, _ in chunks]).tolist()) == list(range(batch))
    expected = torch.randperm(batch, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.cat([index[0] for index, _ in chunks]), expected)


def test_one_agent_is_a_view_of_length_one_over_its_trainer():
    """``OneAgent``: count 1; running and done read the trainer; a step's two norms come back ``[1]`` each (a Python
    float kept as float64); the act hook's actions and log-probs get the agent axis; pi_old is the ``old_log_probs``
    hook's."""
    trainer = fake_trainer()
    trainer.actor_critic_step = lambda actor, critic: (0.5, torch.tensor(2.0))
    trainer.act = lambda obs: (obs.sum(-1).long(), obs.mean(-1))
    agent = OneAgent(trainer)
    assert agent.count == 1 and agent.running() == [True] and agent.done is False
    trainer.done = True
    assert agent.running() == [False] and agent.done is True
    actor, critic = agent.step(torch.ones(1), torch.ones(1), Rows([1], [True]))
    assert actor.tolist() == [0.5] and actor.dtype == torch.float64 and critic.tolist() == [2.0]
    actions, log_probs = agent.act(torch.ones(1, 3, 2), [True])
    assert actions.tolist() == [[2, 2, 2]] and log_probs.tolist() == [[1.0, 1.0, 1.0]]
    trainer.hooks = Hooks(old_log_probs=lambda stored, new: new * 2)  # pi_old through the hook (a planted bug's)
    assert agent.old_log_probs(torch.zeros(1, 3), torch.ones(1, 3)).tolist() == [[2.0, 2.0, 2.0]]


def test_agent_minibatches_are_each_agents_own_draws_side_by_side_padded():
    """``agent_minibatches``: each agent taking part draws its epoch's permutation of its own ``B_a`` rows from its
    own generator, cut by its own config; the k-th minibatches side by side in ``index [A, b]`` padded with zeros to
    ``padded_length``; ``Rows.sizes`` each agent's k-th size (0 past its last minibatch or when not taking part),
    ``stepping`` size > 0, and the mask True on exactly each agent's first ``size`` positions."""
    trainers = [fake_trainer(3, seed=1), fake_trainer(4, seed=2), fake_trainer(2, seed=3), fake_trainer(64, 3, seed=4)]
    agents = SimpleNamespace(trainers=trainers, device=CPU)
    rows = Rows([7, 4, 9, 6], [True, True, False, True], None)
    minibatches = agent_minibatches(agents, rows, padded_length=5)
    expected = {0: torch.randperm(7, generator=torch.Generator().manual_seed(1)).tensor_split(3),
                1: torch.randperm(4, generator=torch.Generator().manual_seed(2)).tensor_split(1),
                3: torch.randperm(6, generator=torch.Generator().manual_seed(4)).tensor_split(3)}  # ceil(6 / 3) rows
    assert len(minibatches) == 3  # the most minibatches any agent has
    for k, (index, r) in enumerate(minibatches):
        assert index.shape == (4, 5) and index.dtype == torch.long
        sizes = [len(expected[a][k]) if a in expected and k < len(expected[a]) else 0 for a in range(4)]
        assert r.sizes == sizes and r.stepping == [s > 0 for s in sizes]
        assert torch.equal(r.mask, padded_mask(sizes, 5))
        for a in range(4):
            assert index[a, :sizes[a]].tolist() == (expected[a][k].tolist() if sizes[a] else [])
            assert not index[a, sizes[a]:].any()
    assert agent_minibatches(agents, Rows([1] * 4, [False] * 4), 5) == []


# == stacked.py: the agents' networks, clipping and Adam ===============================================================
def test_an_agents_generator_starts_where_torchs_global_generator_is_now():
    """``agent_generator`` (CPU): a generator in the global generator's current state, whose draws are the ones the
    global generator would give next; the global generator is not advanced."""
    torch.manual_seed(11)
    torch.rand(3)
    generator = agent_generator(CPU)
    state = torch.get_rng_state()
    assert torch.equal(generator.get_state(), state)
    assert torch.equal(torch.rand(4, generator=generator), torch.rand(4))


def test_stacked_linear_gives_each_agent_its_own_layers_values_and_gradients():
    """``stacked_linear``: ``y[a] = x[a] W[a]^T + b[a]``, with agent ``a``'s gradients those of ``nn.Linear``'s backward
    for its own layer (``dW = g^T x``, ``db`` the sum of ``g`` over rows, ``dx = g W``), to rounding, for
    the same upstream gradient (an input without grad gives the weights the same gradients); through ``stacked_mlp``
    (two layers and a tanh) each agent's outputs and gradients are its own network's, to rounding; without grad
    the same numbers as with it."""
    torch.manual_seed(0)
    layers = [nn.Linear(3, 5) for _ in range(3)]
    w = torch.stack([layer.weight.detach() for layer in layers]).requires_grad_()
    b = torch.stack([layer.bias.detach() for layer in layers]).requires_grad_()
    x = torch.randn(3, 7, 3, requires_grad=True)
    grad = torch.randn(3, 7, 5)
    y = stacked_linear(x, w, b)
    y.backward(grad)
    close = functools.partial(torch.testing.assert_close, rtol=1e-6, atol=1e-6)
    close(w.grad, torch.bmm(grad.transpose(1, 2), x.detach()))  # the formulas
    close(b.grad, grad.sum(1))
    close(x.grad, torch.bmm(grad, w.detach()))
    for a, layer in enumerate(layers):
        xa = x.detach()[a].clone().requires_grad_()
        own = layer(xa)
        own.backward(grad[a])
        torch.testing.assert_close(y[a], own, rtol=1e-6, atol=1e-6)
        for ours, theirs in ((w.grad[a], layer.weight.grad), (b.grad[a], layer.bias.grad), (x.grad[a], xa.grad)):
            torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    w2 = w.detach().clone().requires_grad_()
    stacked_linear(x.detach(), w2, b.detach()).backward(grad)  # an input without grad: the weights' grads only
    assert torch.equal(w2.grad, w.grad)

    nets = [nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)) for _ in range(3)]
    weights = {name: torch.stack([dict(net.named_parameters())[name].detach() for net in nets]).requires_grad_()
               for name, _ in nets[0].named_parameters()}
    x = torch.randn(3, 7, 3, requires_grad=True)
    upstream = torch.randn(3, 7, 2)
    out = stacked_mlp(nets[0], weights, x)
    out.backward(upstream)
    for a, net in enumerate(nets):
        xa = x.detach()[a].clone().requires_grad_()
        own = net(xa)
        own.backward(upstream[a])
        torch.testing.assert_close(out[a], own, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(x.grad[a], xa.grad, rtol=1e-5, atol=1e-6)
        for name, p in net.named_parameters():
            torch.testing.assert_close(weights[name].grad[a], p.grad, rtol=1e-5, atol=1e-6, msg=f"{a} {name}")
    with torch.no_grad():
        assert torch.equal(stacked_mlp(nets[0], weights, x), out)


def test_stacked_mlp_refuses_a_layer_it_does_not_know():
    """``stacked_mlp`` knows ``Linear`` and ``Tanh``; any other layer is a TypeError that names it."""
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    weights = {"0.weight": torch.zeros(1, 2, 2), "0.bias": torch.zeros(1, 2)}
    with pytest.raises(TypeError, match="knows Linear and Tanh layers, not ReLU"):
        stacked_mlp(net, weights, torch.zeros(1, 1, 2))


def test_stacking_modules_makes_their_parameters_views_of_the_stack():
    """``_stack_module``: one leaf ``[A, ...]`` per parameter name (requiring grad), agent ``a``'s module parameters
    become views of slice ``a``: writing the stack changes the module, and the values are the modules' own."""
    torch.manual_seed(1)
    modules = [nn.Linear(2, 3) for _ in range(2)]
    before = [m.weight.detach().clone() for m in modules]
    stacked = _stack_module(modules)
    assert list(stacked) == ["weight", "bias"] and stacked["weight"].shape == (2, 3, 2)
    assert stacked["weight"].is_leaf and stacked["weight"].requires_grad
    for a, m in enumerate(modules):
        assert torch.equal(m.weight, before[a])
    with torch.no_grad():
        stacked["weight"][1].fill_(7.0)
    assert (modules[1].weight == 7.0).all() and torch.equal(modules[0].weight, before[0])


def test_stacked_adam_is_each_agents_own_adam_with_its_lr_and_steps():
    """``StackedAdam``: agent ``a``'s slice moves as ``LeanAdam`` (torch's Adam) on its own parameters with its own
    learning rate and step count, bit for bit; an agent not active in a step keeps weights, moments and step count,
    and its next step is its own next step (bias corrections of its own t); a learning rate changed between steps
    is used."""
    torch.manual_seed(2)
    shapes = [(4, 3), (4,)]
    agents = 3
    stacked = [torch.randn(agents, *s).requires_grad_() for s in shapes]
    own = [[p.detach()[a].clone().requires_grad_() for p in stacked] for a in range(agents)]
    adam = StackedAdam(stacked, eps=1e-5)
    leans = [LeanAdam(params, lr=1.0, eps=1e-5) for params in own]
    schedule = [([1e-3, 3e-3, 1e-2], [True, True, False]), ([1e-3, 3e-3, 1e-2], [False, True, True]),
                ([0.0, 2e-3, 1e-2], [True, True, True]), ([5e-3, 2e-3, 1e-2], [True, False, True])]
    for lrs, active in schedule:
        grads = [torch.randn(agents, *s) for s in shapes]
        moments = [[m.clone() for m in adam.exp_avg], [v.clone() for v in adam.exp_avg_sq]]
        before = [p.detach().clone() for p in stacked]
        for p, g in zip(stacked, grads):
            p.grad = g.clone()
        adam.step(lrs, active)
        for a in range(agents):
            if not active[a]:
                for p, old in zip(stacked, before):
                    assert torch.equal(p[a], old[a])
                for new, old in zip([*adam.exp_avg, *adam.exp_avg_sq], [*moments[0], *moments[1]]):
                    assert torch.equal(new[a], old[a])
                continue
            leans[a].param_groups[0]["lr"] = lrs[a]
            for p, g in zip(own[a], grads):
                p.grad = g[a].clone()
            leans[a].step()
            for p, q in zip(stacked, own[a]):
                assert torch.equal(p[a], q), (a, lrs, active)
    assert adam.steps == [3, 3, 3] and adam.step_counts.tolist() == [3, 3, 3]
    assert adam.betas == (0.9, 0.999) and adam.eps == 1e-5


def test_stacked_adams_bias_corrections_hold_at_any_step():
    """Adam's bias corrections ``1 - beta1^t`` and ``sqrt(1 - beta2^t)`` at each agent's own t, far past the first
    table of corrections (t = 2000 and t = 1 in one step): from zero moments, ``p - lr / (1 - b1^t) * (1 - b1) g /
    (sqrt((1 - b2) g^2) / sqrt(1 - b2^t) + eps)``."""
    p = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64, requires_grad=True)
    adam = StackedAdam([p], eps=1e-3)
    adam.steps = [1999, 0]
    adam.step_counts = torch.tensor([1999, 0])
    g = torch.tensor([[0.3, -0.02], [1.5, 0.01]], dtype=torch.float64)
    p.grad = g.clone()
    start = p.detach().clone()
    adam.step([0.1, 0.2], [True, True])
    b1, b2 = 0.9, 0.999
    for a, (t, lr) in enumerate([(2000, 0.1), (1, 0.2)]):
        for i in range(2):
            expected = start[a, i].item() - lr / (1 - b1 ** t) * (1 - b1) * g[a, i].item() / (
                math.sqrt((1 - b2) * g[a, i].item() ** 2) / math.sqrt(1 - b2 ** t) + 1e-3)
            assert p[a, i].item() == pytest.approx(expected, rel=1e-9)
    assert adam.steps == [2000, 1]


def test_stacked_adam_without_a_gradient_steps_on_zeros():
    """A stacked parameter without a gradient takes a step on zeros: from zero moments it stays where it is."""
    p = torch.ones(2, 3, requires_grad=True)
    q = torch.ones(2, 1, requires_grad=True)
    adam = StackedAdam([p, q], eps=1e-8)
    p.grad = torch.full((2, 3), 0.5)
    adam.step([0.1, 0.1], [True, True])
    assert torch.equal(q.detach(), torch.ones(2, 1)) and not torch.equal(p.detach(), torch.ones(2, 3))


def test_each_agent_clips_its_gradients_by_its_own_norm_and_limit():
    """``clip_per_agent``: agent ``a``'s norm over its slices of all the parameters (returned before clipping); its
    gradients scaled as ``clip_grad_norm_`` scales its own parameters' with its own limit, bit for bit; no limit
    (None, or inf) and a limit above the norm leave them exactly as they were; no limits at all clip nothing."""
    torch.manual_seed(4)
    shapes = [(3, 5), (5,)]
    limits = [0.1, None, 100.0, 0.5]
    grads = [torch.randn(4, *s) * torch.tensor([1.0, 2.0, 3.0, 0.01]).view(4, *[1] * len(s)) for s in shapes]
    for given in (limits, norm_limits(limits, torch.float32, CPU)):
        stacked = [torch.zeros(4, *s, requires_grad=True) for s in shapes]
        for p, g in zip(stacked, grads):
            p.grad = g.clone()
        norms = clip_per_agent(stacked, given)
        for a, limit in enumerate(limits):
            own = [torch.zeros(*s, requires_grad=True) for s in shapes]
            for p, g in zip(own, grads):
                p.grad = g[a].clone()
            expected = torch.linalg.vector_norm(torch.cat([g[a].reshape(-1) for g in grads]).double()).item()
            assert norms[a].item() == pytest.approx(expected, rel=1e-6)
            if limit is not None:
                torch.nn.utils.clip_grad_norm_(own, limit)
            for p, q in zip(stacked, own):
                assert torch.equal(p.grad[a], q.grad), (a, limit)
        assert torch.equal(stacked[0].grad[2], grads[0][2]) and torch.equal(stacked[0].grad[1], grads[0][1])
        assert torch.equal(stacked[0].grad[3], grads[0][3])  # norm 0.01-ish under a limit of 0.5
    untouched = [torch.zeros(4, *s, requires_grad=True) for s in shapes]
    for p, g in zip(untouched, grads):
        p.grad = g.clone()
    clip_per_agent(untouched, None)
    clip_per_agent(untouched, [None] * 4)
    assert all(torch.equal(p.grad, g) for p, g in zip(untouched, grads))


def test_clipping_by_an_exact_limit_uses_torchs_epsilon():
    """The clip coefficient is ``limit / (norm + 1e-6)``, at most 1: a gradient whose norm equals the limit is
    scaled by ``norm / (norm + 1e-6)``, just under 1."""
    p = torch.zeros(1, 2, requires_grad=True)
    p.grad = torch.tensor([[3.0, 4.0]])
    norms = clip_per_agent([p], [5.0])
    assert norms.tolist() == [5.0]
    assert torch.equal(p.grad, torch.tensor([[3.0, 4.0]]) * (torch.tensor(5.0) / (torch.tensor(5.0) + 1e-6)))


def test_norm_limits_are_inf_for_an_agent_without_one_and_none_when_no_agent_clips():
    """``norm_limits``: ``[A]`` of the limits with inf for an agent without one; None when no agent has a limit."""
    assert norm_limits([None, None], torch.float32, CPU) is None
    assert norm_limits([], torch.float32, CPU) is None
    limits = norm_limits([0.5, None, 2.0], torch.float64, CPU)
    assert limits.dtype == torch.float64 and limits.tolist() == [0.5, math.inf, 2.0]
    assert norm_limits([0.0], torch.float32, CPU).tolist() == [0.0]


def test_groups_are_the_agents_sharing_each_step_in_order_of_first_appearance():
    """``_groups``: ``[(step, [agents that take it])]``, the steps in order of first appearance."""
    assert _groups(["b", "a", "b", "c", "a"]) == [("b", [0, 2]), ("a", [1, 4]), ("c", [3])]
    assert _groups([]) == [] and _groups(["x"]) == [("x", [0])]


def test_joint_clip_is_what_the_step_says_of_itself():
    """``joint_clip``: the ``clips_networks_together`` attribute of the ``actor_critic_step`` hook (False without
    it)."""
    def together(*args):
        return args

    together.clips_networks_together = True

    def apart(*args):
        return args

    apart.clips_networks_together = False
    assert joint_clip(Hooks(actor_critic_step=together)) is True
    assert joint_clip(Hooks(actor_critic_step=apart)) is False and joint_clip(Hooks()) is False


# -- AgentStack built from real configs (CartPole / Pendulum envs, nothing trained) ------------------------------------
def configs_for(algo, env_id, seeds, **settings):
    kind = "discrete" if env_id == "CartPole-v1" else "continuous"
    per_agent = {name: value for name, value in settings.items() if isinstance(value, list)}
    shared = {name: value for name, value in settings.items() if name not in per_agent}
    shared = {"num_envs": 2, "n_steps": 8, "progress": False, "device": "cpu", **shared}
    if algo == "ppo" and "minibatch_size" not in settings and "num_minibatches" not in settings:
        shared["minibatch_size"] = 8
    return [make_config(algo, env_id, kind, seed=seed, **shared, **{n: v[a] for n, v in per_agent.items()})
            for a, seed in enumerate(seeds)]


@pytest.fixture
def closing():
    """Stacks made in a test, closed after it (their envs)."""
    made = []
    yield made.append
    for stack in made:
        for trainer in stack.trainers:
            trainer._close()


def test_a_stacks_clipping_limits_are_each_agents_own(closing):
    """Each agent clips its actor by its ``max_grad_norm`` and its critic by its ``critic_max_grad_norm`` (inf where
    it has none); an agent whose step clips both networks together is clipped once, over both, by its actor's limit
    (its separate limits are inf), and no limits tensor is made where no agent has one."""
    stack = AgentStack(configs_for("ppo", "CartPole-v1", [0, 1, 2], max_grad_norm=[0.5, None, 0.3],
                                   critic_max_grad_norm=[None, 0.7, 0.2]))
    closing(stack)
    assert stack.actor_limits.tolist() == pytest.approx([0.5, math.inf, 0.3])
    assert stack.critic_limits.tolist() == pytest.approx([math.inf, 0.7, 0.2])
    assert stack.joint_limits is None

    def together(trainer, actor_loss, critic_loss):
        return 0.0, 0.0

    together.clips_networks_together = True
    joint = AgentStack(configs_for("ppo", "CartPole-v1", [0, 1], max_grad_norm=[0.5, 0.4],
                                   critic_max_grad_norm=[0.6, 0.9]), hooks=[Hooks(), Hooks(actor_critic_step=together)])
    closing(joint)
    assert joint.actor_limits.tolist() == pytest.approx([0.5, math.inf])
    assert joint.critic_limits.tolist() == pytest.approx([0.6, math.inf])
    assert joint.joint_limits.tolist() == pytest.approx([math.inf, 0.4])
    none = AgentStack(configs_for("a2c", "CartPole-v1", [0, 1], max_grad_norm=None, critic_max_grad_norm=None))
    closing(none)
    assert none.actor_limits is None and none.critic_limits is None and none.joint_limits is None


@pytest.mark.parametrize("algo, settings, rows", [
    ("ppo", dict(minibatch_size=[6, 10]), 10), ("ppo", dict(minibatch_size=[10, 6]), 10),
    ("ppo", dict(num_minibatches=[3, 3]), 6), ("ppo", dict(minibatch_size=[16, 16]), 16),
    ("a2c", dict(n_steps=4), 8)])
def test_a_stacks_minibatches_are_padded_to_the_largest_any_config_can_have(algo, settings, rows, closing):
    """The padded length of a minibatch is the largest minibatch any agent's config can have: its
    ``minibatch_size``, or ``ceil(batch_size / num_minibatches)`` (A2C: its whole batch, ``num_envs * n_steps``)."""
    stack = AgentStack(configs_for(algo, "CartPole-v1", [0, 1], **settings))
    closing(stack)
    assert stack.minibatch_rows == rows


def test_each_agent_draws_from_the_generator_its_trainer_would_sample_from(closing):
    """Agent ``a``'s generator starts where torch's global generator is once its trainer is built (seeded, networks
    made): where ``pg.train``'s sampling would draw from."""
    configs = configs_for("ppo", "CartPole-v1", [3, 8, 3])
    stack = AgentStack(configs)
    closing(stack)
    for a, config in enumerate(configs):
        alone = Trainer(config)
        expected = torch.rand(6)
        alone._close()
        assert torch.equal(torch.rand(6, generator=stack.generators[a]), expected), a


def test_a_stack_refuses_what_it_cannot_batch(closing):
    """A stack computes log-probs and entropies once for all agents: agents whose log-prob functions differ are a
    ValueError saying so; an ``actor_critic_step`` with no batched form is a ValueError naming it."""
    def other_log_prob(logits, actions):
        return torch.distributions.Categorical(logits=logits).log_prob(actions)

    def other_entropy(logits):
        return torch.distributions.Categorical(logits=logits).entropy()

    configs = configs_for("ppo", "CartPole-v1", [0, 1])
    with pytest.raises(ValueError, match="log-prob or entropy functions differ"):
        AgentStack(configs, components=[Components(), Components(action_log_probs=other_log_prob)])
    with pytest.raises(ValueError, match="log-prob or entropy functions differ"):
        AgentStack(configs, components=[Components(categorical_entropy=other_entropy), Components()])

    def my_step(trainer, actor_loss, critic_loss):
        return 0.0, 0.0

    with pytest.raises(ValueError, match="my_step.*has no batched form"):
        AgentStack(configs, hooks=[Hooks(), Hooks(actor_critic_step=my_step)])


def test_a_stack_step_uses_each_agents_own_learning_rates_and_log_std_bound(closing):
    """``AgentStack.step``: each agent's actor Adam at its actor optimiser's lr and its critic Adam at its critic
    optimiser's lr; the agents not taking part (``rows.mask.any(1)`` False) do not move; afterwards an active agent
    with ``log_std_min`` has its ``log_std`` clamped to it, the others not."""
    stack = AgentStack(configs_for("ppo", "Pendulum-v1", [0, 1, 2], log_std_min=[None, -0.1, -0.1]))
    closing(stack)
    with torch.no_grad():
        stack.actor["log_std"].fill_(-1.0)
    stack.trainers[0].actor_optimizer.param_groups[0]["lr"] = 0.0
    stack.trainers[1].critic_optimizer.param_groups[0]["lr"] = 0.0
    actor_before = {n: p.detach().clone() for n, p in stack.actor.items()}
    critic_before = {n: p.detach().clone() for n, p in stack.critic.items()}
    obs = torch.randn(3, 5, stack.trainers[0].obs_dim)
    actor_loss = (stack.policy_output(obs) ** 2).sum((1, 2))  # [A]; log_std gets no gradient
    critic_loss = stack.values(obs).pow(2).sum(1)
    rows = Rows([5, 5, 0], [True, True, False], padded_mask([5, 5, 0], 5))
    actor_norms, critic_norms = stack.step(actor_loss, critic_loss, rows)
    assert actor_norms.shape == (3,) and (critic_norms > 0).all()

    def moved(now, before, a):
        return any(not torch.equal(now[n][a], before[n][a]) for n in now if n != "log_std")

    assert not moved(stack.actor, actor_before, 0) and moved(stack.critic, critic_before, 0)
    assert moved(stack.actor, actor_before, 1) and not moved(stack.critic, critic_before, 1)
    assert not moved(stack.actor, actor_before, 2) and not moved(stack.critic, critic_before, 2)
    log_std = stack.actor["log_std"].detach()
    assert (log_std[0] == -1.0).all() and (log_std[1] == -0.1).all() and (log_std[2] == -1.0).all()
    assert stack.actor_optimizer.steps == [1, 1, 0]


def test_each_drawing_agent_samples_from_its_own_generator(closing):
    """``AgentStack.sample``: the agents drawing now take their actions from their own generators as one policy
    samples (discrete: ``multinomial`` of the softmax; continuous: ``mean + exp(log_std) * noise``); the others'
    rows are 0 (continuous: the mean, no noise) and their generators are not advanced."""
    stack = AgentStack(configs_for("ppo", "CartPole-v1", [0, 1, 2]))
    closing(stack)
    states = [g.get_state() for g in stack.generators]
    logits = torch.randn(3, 6, 2)
    actions = stack.sample(logits, [0, 2])
    for a in (0, 2):
        g = torch.Generator()
        g.set_state(states[a])
        expected = torch.multinomial(torch.softmax(logits[a] - logits[a].logsumexp(-1, keepdim=True), -1), 1, True,
                                     generator=g).squeeze(-1)
        assert torch.equal(actions[a], expected)
    assert not actions[1].any() and torch.equal(stack.generators[1].get_state(), states[1])
    box = AgentStack(configs_for("ppo", "Pendulum-v1", [0, 1], log_std_init=[-0.5, 0.3]))
    closing(box)
    states = [g.get_state() for g in box.generators]
    means = torch.randn(2, 4, 1)
    drawn = box.sample(means, [1])
    g = torch.Generator()
    g.set_state(states[1])
    noise = torch.randn(4, 1, generator=g)
    assert torch.equal(drawn[0], means[0])
    torch.testing.assert_close(drawn[1], means[1] + math.exp(0.3) * noise)


def test_only_the_running_agents_draw_when_the_stack_acts(closing):
    """``AgentStack.act``: the agents still running draw their actions (each from its own generator, as its own
    policy samples); an agent that has stopped draws nothing (its generator stays where it stopped, for its run) and
    its rows are 0."""
    stack = AgentStack(configs_for("ppo", "CartPole-v1", [0, 1, 2]))
    closing(stack)
    states = [g.get_state() for g in stack.generators]
    obs = torch.randn(3, 2, stack.trainers[0].obs_dim)
    actions, log_probs = stack.act(obs, [True, False, True])
    assert torch.equal(stack.generators[1].get_state(), states[1]) and not actions[1].any()
    assert not torch.equal(stack.generators[0].get_state(), states[0])
    for a in (0, 2):
        g = torch.Generator()
        g.set_state(states[a])
        with torch.no_grad():
            logits = stack.trainers[a].policy.net(obs[a])
        expected = torch.multinomial(torch.softmax(logits - logits.logsumexp(-1, keepdim=True), -1), 1, True,
                                     generator=g).squeeze(-1)
        assert torch.equal(actions[a], expected)
        torch.testing.assert_close(log_probs[a], torch.log_softmax(logits, -1).gather(1, expected[:, None])[:, 0])


def test_an_agents_optimizer_states_are_its_own_adam_in_lean_adams_form(closing):
    """``optimizer_states(a)``: agent ``a``'s Adam as ``LeanAdam.state_dict()``: its lr (its trainer's), eps and
    betas, and per parameter None before its first step, else its step count and its slices of the moments."""
    stack = AgentStack(configs_for("ppo", "CartPole-v1", [0, 1], lr=[1e-3, 2e-3], critic_lr=[3e-3, 4e-3]))
    closing(stack)
    actor, critic = stack.optimizer_states(1)
    assert actor["param_groups"] == [{"lr": 2e-3, "eps": stack.actor_optimizer.eps, "betas": (0.9, 0.999)}]
    assert critic["param_groups"][0]["lr"] == 4e-3 and all(s is None for s in actor["state"][0])
    for p in stack.actor.values():
        p.grad = torch.ones_like(p)
    stack.actor_optimizer.step([1e-3, 2e-3], [False, True])
    first, _ = stack.optimizer_states(0)
    second, _ = stack.optimizer_states(1)
    assert all(s is None for s in first["state"][0])
    for state, m, v in zip(second["state"][0], stack.actor_optimizer.exp_avg, stack.actor_optimizer.exp_avg_sq):
        assert state["step"] == 1 and torch.equal(state["exp_avg"], m[1]) and torch.equal(state["exp_avg_sq"], v[1])


def test_agents_share_one_torch_env_only_when_they_can(closing):
    """``shared_tensor_env``: one torch env of ``A x N`` (each trainer told its agent index) when the agents train on
    torch envs with the same observation and reward normalisation and rollouts longer than one step; None for
    numpy envs, one-step rollouts, or normalisation that differs."""
    torch_configs = configs_for("ppo", "CartPole-v1", [0, 1], env_backend="torch")
    stack = AgentStack(torch_configs)
    closing(stack)
    assert stack.shared is not None and stack.shared.envs.num_envs == 4
    assert [t.shared_env for t in stack.trainers] == [(stack.shared, 0), (stack.shared, 1)]
    for settings in (dict(), dict(env_backend="torch", n_steps=1, minibatch_size=2),
                     dict(env_backend="torch", normalize_obs=[False, True]),
                     dict(env_backend="torch", normalize_reward=[True, False])):
        trainers = [Trainer(c) for c in configs_for("ppo", "CartPole-v1", [0, 1], **settings)]
        assert shared_tensor_env(trainers) is None, settings
        assert all(t.shared_env is None for t in trainers)
        for t in trainers:
            t._close()


def test_agents_on_numpy_cartpole_share_one_env_only_when_they_can():
    """``shared_env``: one numpy CartPole env of ``A x N`` for agents on numpy CartPole without normalisation and with
    rollouts longer than one step; None (each agent steps its own) for normalised observations or rewards, another
    env, or one-step rollouts."""
    trainers = [Trainer(c) for c in configs_for("ppo", "CartPole-v1", [0, 1, 2])]
    try:
        shared = shared_env(trainers)
        assert isinstance(shared, SharedCartPoleEnv) and shared.stepper.envs.num_envs == 6
    finally:
        for t in trainers:
            t._close()
    for env_id, settings in (("CartPole-v1", dict(normalize_obs=True)), ("CartPole-v1", dict(normalize_reward=True)),
                             ("CartPole-v1", dict(n_steps=1, minibatch_size=2)), ("Acrobot-v1", dict())):
        trainers = [Trainer(c) for c in configs_for("ppo", "CartPole-v1", [0, 1], **settings)] if env_id == \
            "CartPole-v1" else [Trainer(make_config("ppo", env_id, "discrete", seed=s, num_envs=2, n_steps=8,
                                                    minibatch_size=8, device="cpu")) for s in (0, 1)]
        try:
            assert shared_env(trainers) is None, (env_id, settings)
        finally:
            for t in trainers:
                t._close()


def test_the_shared_numpy_env_is_each_agents_own_env_and_hands_it_back_as_it_is():
    """``SharedCartPoleEnv``: agent ``a``'s block of the ``A x N`` env plays the episodes of agent ``a``'s own env
    (the one ``pg.train`` makes) step for step under the same actions: observations, rewards, flags, the finished
    episodes' steps, returns and lengths. ``agent(a)`` between rollouts is that own env as it would be now: stepped
    on from there, it gives what the shared block gives, and its episode statistics are the own env's."""
    seeds, n = [3, 8, 5], 4
    trainers = [Trainer(c) for c in configs_for("ppo", "CartPole-v1", seeds, num_envs=n)]
    own = [(t.envs, t.stepper) for t in trainers]  # each agent's own env, stepped beside the shared one
    rng = np.random.default_rng(0)
    try:
        shared = SharedCartPoleEnv(trainers)
        for rollout in range(3):
            assert torch.equal(shared.begin_rollout(40), torch.as_tensor(np.stack([s.autoresetting for _, s in own])))
            steps = [[] for _ in seeds]  # per agent: (valid count, episode returns, episode lengths) of each step
            for _ in range(40):  # episodes end (and restart) within each rollout of 40 steps
                obs = shared.observation()
                assert torch.equal(obs, torch.as_tensor(np.stack([s.obs for _, s in own])))
                actions = rng.integers(0, 2, size=(len(seeds), n))
                rewards, terminated, truncated = shared.step(torch.as_tensor(actions))
                for a, (_, stepper) in enumerate(own):
                    result = stepper.step(actions[a])
                    assert rewards[a].tolist() == result.rewards.tolist()
                    assert terminated[a].tolist() == result.terminated.tolist()
                    assert truncated[a].tolist() == result.truncated.tolist()
                    steps[a].append((int(result.valid.sum()), result.episode_returns, result.episode_lengths))
            records = shared.end_rollout()
            for a, record in enumerate(records):
                assert record.valid_counts.tolist() == [count for count, _, _ in steps[a]]
                assert record.episode_steps.tolist() == [k for k, (_, r, _) in enumerate(steps[a]) for _ in r]
                assert record.episode_returns.tolist() == [x for _, r, _ in steps[a] for x in r]
                assert record.episode_lengths.tolist() == [x for _, _, ls in steps[a] for x in ls]
            assert sum(len(r.episode_returns) for r in records) > 0
        for a, (envs, stepper) in enumerate(own):
            taken_envs, taken = shared.agent(a)
            assert taken.envs is taken_envs and taken_envs is not envs
            assert np.array_equal(taken.obs, stepper.obs) and np.array_equal(taken.autoresetting, stepper.autoresetting)
            for name in ("episode_returns", "episode_lengths", "prev_dones"):
                assert np.array_equal(getattr(taken_envs, name), getattr(envs, name)), name
            assert taken_envs.episode_count == envs.episode_count > 0
            assert list(taken_envs.return_queue) == list(envs.return_queue)
            assert list(taken_envs.length_queue) == list(envs.length_queue)
            for step in range(900):  # on from here the taken env, the own env and the shared block agree, past the
                # 32 start states each sub-environment draws at a time (random actions: ~22 steps an episode)
                actions = rng.integers(0, 2, size=(len(seeds), n))
                rewards, _, _ = shared.step(torch.as_tensor(actions))
                mine, theirs = taken.step(actions[a]), stepper.step(actions[a])
                assert np.array_equal(mine.next_obs, theirs.next_obs) and np.array_equal(mine.rewards, theirs.rewards)
                assert mine.episode_returns == theirs.episode_returns and rewards[a].tolist() == mine.rewards.tolist()
                for b, (_, other) in enumerate(own):  # the others' own envs follow the shared one too
                    if b != a:
                        other.step(actions[b])
    finally:
        for t in trainers:
            t._close()


def test_each_agents_own_env_leaves_the_rows_of_an_agent_not_running_zero():
    """``EachAgentEnv``: the agents' envs stepped one after another; the rows of an agent not running are zeros."""
    trainers = [Trainer(c) for c in configs_for("ppo", "CartPole-v1", [0, 1, 2])]
    try:
        env = EachAgentEnv(trainers)
        assert env.shape == (3, 2)
        env.begin_rollout(4, [True, False, True])
        obs = env.observation()
        assert obs.shape == (3, 2, 4) and not obs[1].any() and obs[0].any() and obs[2].any()
        rewards, terminated, truncated = env.step(torch.zeros(3, 2, dtype=torch.long))
        assert rewards.tolist() == [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
        records = env.end_rollout()
        assert len(records) == 3 and records[1].valid_counts.size == 0 and records[0].valid_counts.tolist() == [2]
    finally:
        for t in trainers:
            t._close()


def test_build_agents_is_one_agent_for_one_config_and_a_stack_for_more(closing):
    """``build_agents``: one config, or a sequence of one (with its one components / hooks / callback), is a
    OneAgent; more configs a stack; a resume point or a single callback for many agents is a ValueError."""
    [config] = configs_for("a2c", "CartPole-v1", [4])
    hooks = Hooks()
    one = build_agents(config)
    assert isinstance(one, OneAgent) and one.trainer.config is config
    listed = build_agents([config], components=[Components(normalize=returns.normalize)], hooks=[hooks],
                          on_update=[print])
    assert isinstance(listed, OneAgent) and listed.trainer.hooks is hooks and listed.trainer.on_update is print
    for agent in (one, listed):
        agent.trainer._close()
    configs = configs_for("a2c", "CartPole-v1", [4, 5])
    with pytest.raises(ValueError, match="resume trains one agent"):
        build_agents(configs, resume=object())
    with pytest.raises(ValueError, match="one callback per agent"):
        build_agents(configs, on_update=print)
    stack = build_agents(configs, on_update=[print, None])
    closing(stack)
    assert isinstance(stack, AgentStack) and stack.count == 2
    assert stack.trainers[0].on_update is print and stack.trainers[1].on_update is None


# == ppo.py / a2c.py through pg.train_many: every per-agent setting acts on its agent alone ============================
PPO = dict(num_envs=2, n_steps=32, minibatch_size=32, update_epochs=2, total_steps=128, progress=False, device="cpu",
           clip_eps=0.2, ent_coef=0.0, target_kl=None, max_grad_norm=0.5, critic_max_grad_norm=0.5, lr=1e-3,
           critic_lr=1e-3, anneal_lr=False, gamma=0.99, gae_lambda=0.95, clip_value_loss=False)
A2C = dict(num_envs=2, n_steps=16, total_steps=96, progress=False, device="cpu", ent_coef=0.0, max_grad_norm=0.5,
           critic_max_grad_norm=0.5, lr=1e-3, critic_lr=1e-3, anneal_lr=False, gamma=0.99, gae_lambda=0.95)
SEEDS = [0, 1, 2]
SETTINGS = {"ppo": PPO, "a2c": A2C}
COMPARED = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "actor_grad_norm",
            "critic_grad_norm", "update_kl", "explained_variance")
EXACT = ("env_step", "epochs_run", "lr", "critic_lr")


def table(run) -> dict[str, np.ndarray]:
    return {name: np.asarray(run.history.updates[name]) for name in run.history.updates if name != "wall_time"}


def weights(run) -> list[torch.Tensor]:
    return [p.detach() for p in [*run.policy.parameters(), *run.value_net.parameters()]]


def bit_for_bit(run, other) -> bool:
    ours, theirs = table(run), table(other)
    return (ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k], equal_nan=True) for k in ours)
            and all(torch.equal(p, q) for p, q in zip(weights(run), weights(other))))


def assert_follows(run, alone):
    """``run`` follows ``alone`` to float rounding (the stacked products round some rows otherwise): the first
    update's diagnostics to 1e-4 relative, the counts and learning rates exactly, the weights to 5e-6."""
    ours, theirs = table(run), table(alone)
    for name in EXACT:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    for name in COMPARED:
        if not np.isnan(theirs[name]).all():
            np.testing.assert_allclose(ours[name][:1], theirs[name][:1], rtol=1e-4, atol=1e-6, err_msg=name)
    for p, q in zip(weights(run), weights(alone)):
        torch.testing.assert_close(p, q, rtol=0, atol=5e-6)


def far_apart(run, other) -> bool:
    """The runs differ by far more than rounding (a setting acted)."""
    return max(float((p - q).abs().max()) for p, q in zip(weights(run), weights(other))) > 5e-5


@functools.cache
def batch(algo: str, env_id: str = "CartPole-v1", **per_agent) -> tuple:
    """``pg.train_many`` of the small settings with ``per_agent`` (tuples: one value per seed), cached."""
    settings = {k: v for k, v in SETTINGS[algo].items() if k not in per_agent}
    return tuple(pg.train_many(algo, env_id, seeds=SEEDS, per_agent={k: list(v) for k, v in per_agent.items()},
                               **settings))


PER_AGENT = [("ppo", "clip_eps", 0.02), ("ppo", "ent_coef", 0.1), ("ppo", "target_kl", 1e-6),
             ("ppo", "max_grad_norm", 1e-3), ("ppo", "critic_max_grad_norm", 1e-3), ("ppo", "lr", 1e-2),
             ("ppo", "critic_lr", 1e-2), ("ppo", "anneal_lr", True), ("ppo", "gamma", 0.8),
             ("ppo", "gae_lambda", 0.5), ("ppo", "total_steps", 64),
             ("a2c", "ent_coef", 0.5), ("a2c", "max_grad_norm", 1e-3), ("a2c", "critic_max_grad_norm", 1e-3),
             ("a2c", "lr", 1e-2), ("a2c", "critic_lr", 1e-2), ("a2c", "anneal_lr", True), ("a2c", "gamma", 0.8),
             ("a2c", "gae_lambda", 0.5), ("a2c", "total_steps", 48)]
COLUMNS = ("clip_eps", "ent_coef")  # the settings a reference piece takes: a column [A, 1] where agents differ


@pytest.mark.parametrize("algo, name, value", PER_AGENT, ids=[f"{a}-{n}" for a, n, _ in PER_AGENT])
def test_a_per_agent_setting_acts_on_its_agent_alone_as_in_pg_train(algo, name, value):
    """Agent 1 of three given its own value of a setting: the other two agents' runs are bit for bit those of the
    batch where agent 1 has the common value; agent 1's run is far from that batch's agent 1 (the setting acts),
    follows ``pg.train`` with that agent's own config to float rounding (so the value acted exactly as it does alone:
    neither another agent's value nor none), and, for a setting a reference piece takes, is bit for bit agent 1 of a
    batch where every agent has the value."""
    base = SETTINGS[algo][name]
    plain = batch(algo)  # every agent with the common value
    mixed = batch(algo, **{name: (base, value, base)})
    for a in (0, 2):
        assert bit_for_bit(mixed[a], plain[a]), f"agent {a} changed with agent 1's {name}"
    assert far_apart(mixed[1], plain[1]), f"{name}={value!r} did not act on agent 1"
    if name in COLUMNS:  # agent 1's column entry is its number, bit for bit
        assert bit_for_bit(mixed[1], batch(algo, **{name: (value,) * 3})[1])
    settings = {**SETTINGS[algo], name: value}
    assert_follows(mixed[1], pg.train(algo, "CartPole-v1", seed=SEEDS[1], **settings))
    assert mixed[1].config == make_config(algo, "CartPole-v1", "discrete", seed=SEEDS[1], **settings)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_adams_epsilon_acts_in_a_batch_as_in_pg_train(algo):
    """``adam_eps`` given to every agent is each agent's Adam epsilon (actor and critic), as in ``pg.train``: with a
    large one each agent follows its ``pg.train`` run, far from the runs with the default."""
    settings = {**SETTINGS[algo], "adam_eps": 0.1}
    runs = pg.train_many(algo, "CartPole-v1", seeds=[0, 1], **settings)
    default = batch(algo)
    for seed, run in zip([0, 1], runs):
        assert_follows(run, pg.train(algo, "CartPole-v1", seed=seed, **settings))
        assert far_apart(run, default[seed])
        assert max(float((p - q).detach().abs().max()) for p, q in zip(run.value_net.parameters(),
                                                                       default[seed].value_net.parameters())) > 5e-5


@pytest.mark.parametrize("position", [0, 2])
def test_value_clipping_is_each_agents_own_whichever_agents_ask_for_it(position):
    """``clip_value_loss`` for one agent of three (any position): that agent's critic loss is clipped, as in
    ``pg.train`` with its config (a batch clips if any agent asks, not only if all do), and the other agents'
    critics are not clipped: each follows its own ``pg.train`` run (to rounding: its critic loss is then computed
    agent by agent rather than for all agents in one call)."""
    settings = {**PPO, "critic_lr": 2e-2}
    del settings["clip_value_loss"]
    flags = [a == position for a in range(3)]
    runs = pg.train_many("ppo", "CartPole-v1", seeds=SEEDS, per_agent={"clip_value_loss": flags}, **settings)
    for a, (seed, run) in enumerate(zip(SEEDS, runs)):
        alone = pg.train("ppo", "CartPole-v1", seed=seed, clip_value_loss=flags[a], **settings)
        assert_follows(run, alone)
        if flags[a]:
            unclipped = pg.train("ppo", "CartPole-v1", seed=seed, **settings)
            assert far_apart(run, unclipped), "value clipping did not act"


def test_an_agent_past_its_target_kl_stops_its_own_epochs():
    """``target_kl`` per agent: an agent whose mean minibatch KL of an epoch exceeds its target takes no more epochs
    of that update (``epochs_run`` 1 of 3), the others take all of theirs."""
    settings = {**PPO, "update_epochs": 3}
    del settings["target_kl"]
    runs = pg.train_many("ppo", "CartPole-v1", seeds=SEEDS, per_agent={"target_kl": [None, 1e-6, 10.0]}, **settings)
    epochs = [table(run)["epochs_run"].tolist() for run in runs]
    assert len(epochs[1]) >= 2 and epochs == [[3] * len(epochs[0]), [1] * len(epochs[1]), [3] * len(epochs[2])]


def test_log_std_min_bounds_its_own_agent_only():
    """``log_std_min`` per agent (Box actions): after every step the agent's ``log_std`` is at least its bound,
    as in ``pg.train``; an agent without one goes below it."""
    settings = dict(num_envs=4, n_steps=32, minibatch_size=64, update_epochs=2, total_steps=256, progress=False,
                    device="cpu", lr=5e-2, log_std_init=0.0, ent_coef=0.0)
    runs = pg.train_many("ppo", "Pendulum-v1", seeds=[0, 1], per_agent={"log_std_min": [None, -0.01]}, **settings)
    free, bounded = (run.policy.log_std.detach() for run in runs)
    assert (bounded >= -0.01).all() and (free < -0.01).any()
    assert_follows(runs[1], pg.train("ppo", "Pendulum-v1", seed=1, log_std_min=-0.01, **settings))


# -- the loops' wiring: what each piece is called with and where its result goes (spies on the pieces) -----------------
def ppo_spies() -> dict[str, Spy]:
    return {"normalize": Spy(returns.normalize), "clipped_surrogate_loss": Spy(losses.clipped_surrogate_loss),
            "entropy_bonus_loss": Spy(losses.entropy_bonus_loss), "value_loss": Spy(losses.value_loss),
            "approx_kl": Spy(diagnostics.approx_kl), "clip_fraction": Spy(diagnostics.clip_fraction),
            "explained_variance": Spy(diagnostics.explained_variance),
            "minibatch_indices": Spy(batching.minibatch_indices)}


def mean_in_order(numbers) -> float:
    total = 0.0
    for x in numbers:
        total += x
    return total / len(numbers)


def relative_error(values, targets) -> float:
    values, targets = values.double(), targets.double()
    return float(((targets - values) ** 2).mean().sqrt() / targets.abs().mean())


@pytest.mark.parametrize("count", [1, 2])
@pytest.mark.parametrize("clip_value_loss", [False, True])
def test_a_ppo_update_is_its_pieces_wired_as_the_pseudo_code_says(count, clip_value_loss):
    """One PPO update, agent by agent (``pg.train``, or each of two agents of ``pg.train_many`` with other settings):
    the advantages normalised once over the agent's whole batch; per minibatch the surrogate with the agent's
    ``clip_eps`` on the normalised advantages of its rows, the entropy bonus with its ``ent_coef``, the value loss on
    the returns ``A + V_old`` of its rows (with ``V_old`` and ``clip_eps`` when it clips the value loss, neither
    when not), approx-KL of (pi_old, pi) and the clip fraction of ``exp(log pi - log pi_old)`` with its
    ``clip_eps``; the history row: each diagnostic's mean over the update's steps, ``update_kl`` approx-KL over the
    whole batch after the epochs, ``explained_variance`` (= ``_after``) of the critic after the update and
    ``explained_variance_before`` of ``V_old``, ``value_rel_error`` of the critic after, ``advantage_std`` the
    deviation of the advantages before normalisation, ``epochs_run`` all the epochs."""
    spies = ppo_spies()
    settings = dict(num_envs=2, n_steps=16, minibatch_size=16, update_epochs=2, total_steps=64, progress=False,
                    device="cpu")  # an agent's 17 to 32 rows: two minibatches an epoch, both agents stepping in each
    clip_eps, ent_coef = [0.1, 0.3][:count], [0.01, 0.05][:count]
    value_clips = [clip_value_loss, not clip_value_loss][:count]
    if count == 1:
        runs = [pg.train("ppo", "CartPole-v1", seed=0, clip_eps=clip_eps[0], ent_coef=ent_coef[0],
                         clip_value_loss=value_clips[0], **settings, **spies)]
    else:
        runs = pg.train_many("ppo", "CartPole-v1", seeds=[0, 1], per_agent={
            "clip_eps": clip_eps, "ent_coef": ent_coef, "clip_value_loss": value_clips}, **settings, **spies)
    updates = len(runs[0].history.updates)
    assert updates >= 2 and all(len(run.history.updates) == updates for run in runs)
    calls = {name: [spy.calls[i::count] for i in range(count)] for name, spy in spies.items()}  # agent by agent
    calls["explained_variance"] = [[call for k, call in enumerate(spies["explained_variance"].calls)
                                    if k // 2 % count == a] for a in range(count)]  # two calls for each agent in turn
    for a, run in enumerate(runs):
        history = table(run)
        index_calls = calls["minibatch_indices"][a]
        steps_per_update = len(calls["clipped_surrogate_loss"][a]) // updates
        for u in range(updates):
            steps = slice(u * steps_per_update, (u + 1) * steps_per_update)
            surrogate, entropy = calls["clipped_surrogate_loss"][a][steps], calls["entropy_bonus_loss"][a][steps]
            value, clipped = calls["value_loss"][a][steps], calls["clip_fraction"][a][steps]
            kl_calls = calls["approx_kl"][a][u * (steps_per_update + 1):(u + 1) * (steps_per_update + 1)]
            kl, update_kl = kl_calls[:-1], kl_calls[-1]
            (raw,), _, normalized = calls["normalize"][a][u]
            after, before = calls["explained_variance"][a][2 * u:2 * u + 2]
            old_values, targets = before[0]
            batch_rows = raw.shape[0]
            assert update_kl[0][0].shape == (batch_rows,) and after[0][0].shape == (batch_rows,)
            torch.testing.assert_close(targets - old_values, raw, rtol=1e-5, atol=1e-5)  # R = A + V_old
            assert torch.equal(after[0][1], targets) and not torch.equal(after[0][0], old_values)
            chunks = [c for _, _, result in index_calls[2 * u:2 * u + 2] for c in result]  # the epochs' minibatches
            assert [args[:2] for args, _, _ in index_calls[2 * u:2 * u + 2]] == [(batch_rows, 16)] * 2
            assert len(chunks) == steps_per_update == 2 * math.ceil(batch_rows / 16)
            for k, chunk in enumerate(chunks):
                new_lp, old_lp, adv, eps = surrogate[k][0]
                assert eps == clip_eps[a] and entropy[k][0][1] == ent_coef[a] and clipped[k][0][1] == clip_eps[a]
                assert torch.equal(adv, normalized[chunk])
                assert torch.equal(old_lp, update_kl[0][0][chunk])  # pi_old: the stored log-probs
                assert torch.equal(kl[k][0][0], old_lp) and torch.equal(kl[k][0][1], new_lp)
                assert torch.equal(clipped[k][0][0], (new_lp - old_lp).exp().detach())
                values_arg, returns_arg, old_values_arg, value_clip = value[k][0]
                assert torch.equal(returns_arg, targets[chunk])
                if value_clips[a]:
                    assert value_clip == clip_eps[a] and torch.equal(old_values_arg, old_values[chunk])
                else:
                    assert value_clip is None
                    assert old_values_arg is None or count > 1  # gathered for the batch when another agent clips
            for name, spy_calls in (("policy_loss", surrogate), ("value_loss", value), ("approx_kl", kl),
                                    ("clip_fraction", clipped)):
                assert history[name][u] == pytest.approx(mean_in_order([float(r.detach()) for _, _, r in spy_calls]),
                                                         rel=1e-6, abs=1e-9), name
            assert history["entropy"][u] == pytest.approx(mean_in_order([float(args[0].detach().mean()) for args, _, _
                                                                         in entropy]), rel=1e-5)
            assert history["update_kl"][u] == float(update_kl[2])
            assert history["explained_variance"][u] == history["explained_variance_after"][u] == after[2]
            assert history["explained_variance_before"][u] == before[2]
            assert history["value_rel_error"][u] == pytest.approx(relative_error(*after[0]), rel=1e-9)
            assert history["advantage_std"][u] == float(raw.std())
            assert history["epochs_run"][u] == 2


@pytest.mark.parametrize("count", [1, 2])
def test_an_a2c_update_is_its_pieces_wired_as_the_pseudo_code_says(count):
    """One A2C update per agent: the advantages normalised over the agent's batch; the actor loss is A2C's loss of
    (log pi, normalised advantages, entropy, the agent's ``ent_coef``), the critic's the value loss of (V, A + V)
    without clipping; the history row: ``policy_loss`` the same loss with ``ent_coef`` 0 (the policy-gradient term
    alone), ``value_loss`` the critic's, ``entropy`` the mean entropy, ``explained_variance`` (= ``_before``) of the
    critic before its step and ``_after`` after it, ``value_rel_error`` of the critic before, ``epochs_run`` 1."""
    spies = {"normalize": Spy(returns.normalize), "a2c_policy_loss": Spy(losses.a2c_policy_loss),
             "value_loss": Spy(losses.value_loss), "explained_variance": Spy(diagnostics.explained_variance)}
    settings = dict(num_envs=2, n_steps=8, total_steps=48, progress=False, device="cpu")
    ent_coef = [0.03, 0.2][:count]
    if count == 1:
        runs = [pg.train("a2c", "CartPole-v1", seed=0, ent_coef=ent_coef[0], **settings, **spies)]
    else:
        runs = pg.train_many("a2c", "CartPole-v1", seeds=[0, 1], per_agent={"ent_coef": ent_coef}, **settings, **spies)
    calls = {name: [spy.calls[i::count] for i in range(count)] for name, spy in spies.items()}
    calls["explained_variance"] = [[call for k, call in enumerate(spies["explained_variance"].calls)
                                    if k // 2 % count == a] for a in range(count)]  # two calls for each agent in turn
    for a, run in enumerate(runs):
        history = table(run)
        assert len(history["env_step"]) >= 3 and len(calls["normalize"][a]) == len(history["env_step"])
        for u in range(len(history["env_step"])):
            (raw,), _, normalized = calls["normalize"][a][u]
            loss, plain = calls["a2c_policy_loss"][a][2 * u:2 * u + 2]
            (values, targets), value_kwargs, value_result = calls["value_loss"][a][u]
            before, after = calls["explained_variance"][a][2 * u:2 * u + 2]
            assert loss[0][3] == ent_coef[a] and plain[0][3] == 0.0 and value_kwargs == {}
            assert torch.equal(loss[0][1], normalized) and torch.equal(plain[0][1], normalized)
            assert torch.equal(loss[0][0], plain[0][0]) and torch.equal(loss[0][2], plain[0][2])
            torch.testing.assert_close(targets - values.detach(), raw, rtol=1e-5, atol=1e-5)
            assert torch.equal(before[0][0], values.detach()) and torch.equal(before[0][1], targets)
            assert torch.equal(after[0][1], targets) and not torch.equal(after[0][0], before[0][0])
            assert history["policy_loss"][u] == float(plain[2]) != float(loss[2].detach())
            assert history["value_loss"][u] == float(value_result.detach())
            assert history["entropy"][u] == float(loss[0][2].detach().mean())
            assert history["explained_variance"][u] == history["explained_variance_before"][u] == before[2]
            assert history["explained_variance_after"][u] == after[2]
            assert history["value_rel_error"][u] == pytest.approx(relative_error(values.detach(), targets), rel=1e-9)
            assert history["advantage_std"][u] == float(raw.std()) and history["epochs_run"][u] == 1


@pytest.mark.parametrize("algo, normalize_advantages, per_minibatch", [("ppo", False, False), ("ppo", False, True),
                                                                       ("ppo", True, True), ("a2c", False, False)])
def test_advantages_are_normalised_where_the_config_says(algo, normalize_advantages, per_minibatch):
    """``normalize_advantages=False``: the advantages are never normalised (``normalize_per_minibatch`` or not);
    with both (PPO) each minibatch's advantages are, on its own rows, and the batch's are not."""
    spy, surrogate = Spy(returns.normalize), Spy(losses.clipped_surrogate_loss)
    settings = dict(num_envs=2, n_steps=16, total_steps=64, progress=False, device="cpu",
                    normalize_advantages=normalize_advantages, normalize=spy)
    if algo == "ppo":
        settings.update(minibatch_size=16, update_epochs=2, normalize_per_minibatch=per_minibatch,
                        clipped_surrogate_loss=surrogate)
    runs = pg.train_many(algo, "CartPole-v1", seeds=[0, 1], **settings)
    if not normalize_advantages:
        assert spy.calls == [] and all(not np.isnan(table(run)["advantage_std"]).any() for run in runs)
        return
    assert len(spy.calls) == len(surrogate.calls) > 0
    for (raw,), _, normalized in spy.calls:
        assert raw.shape[0] <= 16
    for (args, _, _), (_, _, normalized) in zip(surrogate.calls, spy.calls):
        assert torch.equal(args[2], normalized)


@pytest.mark.parametrize("count", [1, 2])
def test_a_learners_entropy_term_is_called_even_where_every_ent_coef_is_zero(count):
    """PPO leaves the reference entropy term out where every agent's ``ent_coef`` is 0 (it is 0, and so is its
    gradient), never a learner's: with ``ent_coef=0`` a learner's entropy piece is still called at every step and its
    result is in the actor loss (a piece that ignores the coefficient changes the run)."""
    settings = dict(num_envs=2, n_steps=16, minibatch_size=16, update_epochs=1, total_steps=32, progress=False,
                    device="cpu", ent_coef=0.0)
    spy = Spy(lambda entropy, ent_coef: -100.0 * entropy.mean())  # a learner's bug: its own coefficient

    def train(**pieces):
        if count == 1:
            return [pg.train("ppo", "CartPole-v1", seed=0, **settings, **pieces)]
        return pg.train_many("ppo", "CartPole-v1", seeds=[0, 1], **settings, **pieces)

    runs, reference = train(entropy_bonus_loss=spy), train()
    steps = sum(len(table(run)["env_step"]) for run in runs) * 2  # two minibatches an update
    assert len(spy.calls) == steps and all(args[1] == 0.0 for args, _, _ in spy.calls)
    for run, plain in zip(runs, reference):
        assert far_apart(run, plain)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_the_logged_gradient_norms_are_the_actors_and_the_critics_before_clipping(algo):
    """``actor_grad_norm`` is the norm of the actor loss's gradient, ``critic_grad_norm`` the critic's, both before
    clipping: an actor loss made zero gives an actor norm of exactly 0 and a critic norm above 0, and a norm limit far
    below them does not bound the logged norms."""
    zero = (lambda *args: losses.a2c_policy_loss(*args) * 0.0) if algo == "a2c" else \
        (lambda *args: losses.clipped_surrogate_loss(*args) * 0.0)
    piece = {"a2c_policy_loss" if algo == "a2c" else "clipped_surrogate_loss": zero}
    settings = dict(num_envs=2, n_steps=16, total_steps=64, progress=False, device="cpu", ent_coef=0.0,
                    max_grad_norm=1e-4, critic_max_grad_norm=1e-4)
    if algo == "ppo":
        settings.update(minibatch_size=16, update_epochs=1)
    for runs in ([pg.train(algo, "CartPole-v1", seed=0, **settings, **piece)],
                 pg.train_many(algo, "CartPole-v1", seeds=[0, 1], **settings, **piece)):
        for run in runs:
            history = table(run)
            assert (history["actor_grad_norm"] == 0.0).all()
            assert (history["critic_grad_norm"] > 1e-3).all()
    normal = pg.train_many(algo, "CartPole-v1", seeds=[0, 1], **settings)
    assert all((table(run)["actor_grad_norm"] > 1e-3).all() for run in normal)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_learning_rates_anneal_for_each_agent_from_its_own_values(algo):
    """``anneal_lr`` per agent: an annealing agent's learning rates at each update are ``(1 - steps / total_steps)``
    times its own ``lr`` and ``critic_lr``; an agent that does not anneal keeps its own."""
    settings = {**SETTINGS[algo], "total_steps": 384}
    settings = {k: v for k, v in settings.items() if k not in ("lr", "critic_lr", "anneal_lr")}
    runs = pg.train_many(algo, "CartPole-v1", seeds=SEEDS, per_agent={
        "anneal_lr": [True, False, True], "lr": [1e-3, 2e-3, 3e-3], "critic_lr": [4e-3, 5e-3, 6e-3]}, **settings)
    for run, anneal, lr, critic_lr in zip(runs, [True, False, True], [1e-3, 2e-3, 3e-3], [4e-3, 5e-3, 6e-3]):
        history = table(run)
        steps_before = np.concatenate([[0], history["env_step"][:-1]])  # the env steps taken before each update
        assert len(steps_before) >= 3
        fraction = 1.0 - steps_before / 384 if anneal else np.ones(len(steps_before))
        np.testing.assert_allclose(history["lr"], fraction * lr, rtol=1e-12)
        np.testing.assert_allclose(history["critic_lr"], fraction * critic_lr, rtol=1e-12)
