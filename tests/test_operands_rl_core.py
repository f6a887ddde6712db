"""The rl package's core guards, pinned on the cases where each of their parts decides (issue 45, item 5).

A mechanical sweep dropped each operand of every ``and``/``or`` in turn; in ``rl/algorithms/agents.py``,
``checkpoint.py``, ``optim.py`` and ``rl/api.py`` the drops below survived the unit tests. Each test states what the
whole condition means and checks it on an input where the dropped part alone makes the difference (the other parts
hold); every expected value is worked out by hand.

``api._resumed_config``'s ``config.max_episodes is None`` (a spent step budget was refused unless the run had an
episode budget) is not pinned here: the sweep showed that such a resume was accepted and trained nothing. The clause
is gone; tests/test_resume.py states the rule (either budget spent: refused, with what to pass).
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pgcourse.rl import api, returns
from pgcourse.rl.algorithms import checkpoint
from pgcourse.rl.algorithms.agents import PerAgent, Rows, reduce_rows, shared_parts
from pgcourse.rl.algorithms.components import Components
from pgcourse.rl.algorithms.optim import flat_members
from pgcourse.rl.batching import mean_over_rows
from pgcourse.rl.config import ConfigError, make_config
from pgcourse.rl.run import Run


# -- reduce_rows: one agent (no mask) is reduced on its own rows, and only while it takes part -----------------------
def one_agent() -> SimpleNamespace:
    """The little of :class:`OneAgent` that ``reduce_rows`` reads: one trainer's config, the device, the columns."""
    return SimpleNamespace(trainers=[SimpleNamespace(config=None)], device=torch.device("cpu"), setting_columns={})


@pytest.mark.parametrize("stepping, expected", [
    ([True], 3.0),  # (1 + 2 + 3 + 6) / 4
    ([False], 0.0),  # not taking part: 0, the piece is not called
])
def test_one_agent_is_reduced_on_its_own_rows_and_only_while_it_takes_part(stepping, expected):
    """``reduce_rows`` with one agent (``rows.mask`` None: its batch is never padded) calls the piece on the agent's
    rows as they are, even a reference piece that takes ``mask=`` (the one call with a mask is for A > 1 only); an
    agent not taking part gets 0. The reference ``mean_over_rows`` on [1, 2, 3, 6]: 3.0 while stepping, else 0."""
    x = torch.tensor([[1.0, 2.0, 3.0, 6.0]])  # [A=1, b=4]
    value = reduce_rows(one_agent(), mean_over_rows, (x,), Rows([4], stepping))
    assert value.shape == (1,) and value.tolist() == [expected]


# -- shared_parts: an agent's GAE is its own gae(), whichever of compute_gae and td_errors the agents differ in -------
def constant_deltas(rewards, values, next_values, terminated, gamma):
    """A learner's td_errors: every delta 1 (the reference's are 0 on the zero rollout below)."""
    return torch.ones_like(rewards)


def my_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
    """A learner's GAE: every advantage 7."""
    return torch.full_like(rewards, 7.0)


def test_agents_differing_only_in_compute_gae_each_run_their_own_gae_fed_by_the_shared_td_errors():
    """``shared_parts``: where the agents differ in ``compute_gae`` *or* ``td_errors``, agent ``a``'s GAE is its
    ``gae()`` (the reference ``compute_gae`` fed by a replaced ``td_errors``), and ``td_errors`` is the reference
    (already inside each ``gae()``). Here both agents share a replaced ``td_errors`` (deltas all 1) and only agent
    1 replaces ``compute_gae``: agent 0 runs the reference GAE on deltas of 1. With gamma = lambda = 0.5 over two
    steps of one env, no episode end: A_1 = 1, A_0 = 1 + 0.25 * 1 = 1.25 (the reference deltas would give 0s)."""
    parts = shared_parts([Components(td_errors=constant_deltas), Components(td_errors=constant_deltas,
                                                                            compute_gae=my_gae)])
    assert isinstance(parts.compute_gae, PerAgent) and parts.compute_gae[1] is my_gae
    assert parts.td_errors is returns.td_errors
    zeros = torch.zeros(2, 1)
    done = torch.zeros(2, 1, dtype=torch.bool)
    advantages = parts.compute_gae[0](zeros, zeros, zeros, done, done, 0.5, 0.5)
    assert advantages.tolist() == [[1.25], [1.0]]


# -- restore_accelerator_rng_states: "no CUDA generator state" only for a state that holds none -----------------------
def test_a_state_holding_cuda_generators_never_reads_as_holding_none(monkeypatch):
    """The note "the training state holds no CUDA generator state" is for a state without one (an older pgcourse's)
    continuing on CUDA. A state that holds them, continuing on ``cuda`` where CUDA is not available (so they cannot be
    put back), gets no such note: nothing is restored and nothing is said (as for MPS), and no device change either
    (saved on cuda, continuing on cuda)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("no CUDA here"))
    monkeypatch.setattr(checkpoint, "mps_available", lambda: False)
    state = {"device": "cuda:0", "cuda_rng": [torch.zeros(16, dtype=torch.uint8)], "mps_rng": None}
    assert checkpoint.restore_accelerator_rng_states(state, torch.device("cuda")) == []
    older = {"device": "cuda:0", "cuda_rng": None, "mps_rng": None}  # the same without the state: the note
    notes = checkpoint.restore_accelerator_rng_states(older, torch.device("cuda"))
    assert len(notes) == 1 and notes[0].startswith("the training state holds no CUDA generator state")


# -- flat_members: the flat buffer holds parameters of the first one's dtype only -------------------------------------
@pytest.mark.parametrize("dtypes, members", [
    ((torch.float32, torch.float64), []),  # the second is another dtype: one member left, no buffer
    ((torch.float32, torch.float64, torch.float32), [0, 2]),  # the float64 one is left out
    ((torch.float64, torch.float32, torch.float64), [0, 2]),  # "the first one's": float64 here
    ((torch.float32, torch.float32), [0, 1]),
])
def test_the_flat_buffer_holds_parameters_of_the_first_ones_dtype_only(dtypes, members):
    """``flat_members``: a parameter shares the flat moment buffers only with the same dtype (and device) as the
    first parameter, contiguous; with fewer than two such, there is no buffer. Every size here is 64 (aligned)."""
    params = [torch.zeros(64, dtype=dtype) for dtype in dtypes]
    chosen = flat_members(params)
    assert [next(i for i, p in enumerate(params) if p is member) for member in chosen] == members


# -- _resumable: a resumed run keeps its seed; passing that same seed is allowed ---------------------------------------
def stopped_run(seed: int) -> Run:
    """A run with a training state (its weights do not matter to the checks before resuming)."""
    config = make_config("ppo", "CartPole-v1", "discrete", seed=seed, total_steps=1000, progress=False)
    run = Run(config, torch.nn.Linear(4, 2), None, None, None, None)
    run.training_state = {"env_step": 500}
    return run


@pytest.mark.parametrize("seed, refused", [(None, False), (3, False), (4, True), (0, True)])
def test_a_resumed_run_keeps_its_seed_and_may_be_given_that_same_seed(seed, refused):
    """``api._resumable``: a resumed run keeps its own seed; leaving ``seed`` out or passing the run's own seed (3)
    is accepted, any other seed is refused with the run's seed named."""
    run = stopped_run(3)
    if refused:
        with pytest.raises(ConfigError, match="has seed 3; a resumed run keeps its seed"):
            api._resumable(run, "ppo", "CartPole-v1", seed)
    else:
        previous, state = api._resumable(run, "ppo", "CartPole-v1", seed)
        assert previous is run and state == {"env_step": 500}
