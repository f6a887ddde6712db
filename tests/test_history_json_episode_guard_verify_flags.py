"""Known small bugs of the RL course package, each pinned by a definition (unit layer: the file is not listed in
tests/layers.py and no test here is ``slow``, so conftest marks every test ``unit``).

- ``pgcourse/rl/history.py``: ``Table.to_dict`` writes every value that is not a finite number (NaN, +inf, -inf) as
  None, so the JSON a run saves is strict JSON; a history saved before (with ``Infinity``) still loads.
- ``pgcourse/classroom/sandboxed/episode_cases.py``: ``EpisodeGuard.steps`` counts the ``env.step`` calls of the
  current episode: ``reset()`` sets it to 0.
- ``pgcourse/cli.py``: ``pgcourse sweep --verify FOLDER`` re-runs each trial with the settings saved in FOLDER (its
  ``env_kwargs`` and ``total_steps`` included), so ``--env-arg`` and ``--steps`` given with it are refused, not
  ignored.
- ``pgcourse/rl/algorithms/stacked.py``: ``stacked_linear``'s docstring claims only what holds: its gradients are
  ``nn.Linear``'s formulas exactly, and each agent's values and gradients are ``nn.Linear``'s to float rounding
  (bit for bit only where the two kernels happen to round alike).
"""
from __future__ import annotations

import json
import math

import gymnasium as gym
import pytest
import torch
from torch import nn

import pgcourse.course.sweeps
from pgcourse import cli
from pgcourse.classroom.sandboxed import episode_cases
from pgcourse.classroom.sandboxed.episode_cases import EpisodeGuard
from pgcourse.cli import UsageError
from pgcourse.rl.algorithms.stacked import stacked_linear
from pgcourse.rl.history import History, Table

INF, NAN = float("inf"), float("nan")


def _strict_json(value) -> str:
    """``json.dumps`` that refuses NaN and +/-inf (JSON has no such tokens)."""
    return json.dumps(value, allow_nan=False)


# == 1. pgcourse/rl/history.py: strict JSON ==========================================================================

def test_table_to_dict_writes_every_non_finite_value_as_none_so_its_json_is_strict():
    """``Table.to_dict``: columns as lists, a finite value as itself, NaN, +inf and -inf as None: ``json.dumps`` with
    ``allow_nan=False`` accepts it (no ``NaN`` or ``Infinity`` token)."""
    table = Table(("a", "b"))
    for a, b in ((1.5, INF), (NAN, -INF), (-0.25, 0.0)):
        table.append(a=a, b=b)
    rows = table.to_dict()
    assert rows == {"a": [1.5, None, -0.25], "b": [None, None, 0.0]}
    assert _strict_json(rows) == '{"a": [1.5, null, -0.25], "b": [null, null, 0.0]}'


def test_history_to_dict_is_strict_json_and_reads_back_with_non_finite_values_as_nan():
    """``History.to_dict`` of a history holding +/-inf is strict JSON; ``from_dict`` of it reads each None back as
    NaN (a value that was not a finite number stays one) and every finite value exactly."""
    history = History()
    history.updates.append(env_step=64, wall_time=0.5, approx_kl=INF, explained_variance=-INF, policy_loss=0.125)
    text = _strict_json(history.to_dict())
    back = History.from_dict(json.loads(text))
    row = {name: float(back.updates[name][0]) for name in ("env_step", "approx_kl", "explained_variance",
                                                           "policy_loss")}
    assert row["env_step"] == 64.0 and row["policy_loss"] == 0.125
    assert math.isnan(row["approx_kl"]) and math.isnan(row["explained_variance"])


def test_a_history_saved_with_infinity_tokens_still_loads():
    """A ``history.json`` written before this fix (Python's ``json`` wrote inf as ``Infinity``) still loads: the
    values are inf and -inf."""
    text = ('{"episodes": {"return": [1.0], "length": [1], "env_step": [1], "wall_time": [0.1]}, '
            '"updates": {"approx_kl": [Infinity], "explained_variance": [-Infinity]}, "evals": {}, '
            '"status": "completed", "solved_at": null}')
    history = History.from_dict(json.loads(text))
    assert history.updates["approx_kl"][0] == INF and history.updates["explained_variance"][0] == -INF
    assert history.episodes["return"].tolist() == [1.0]


# == 2. pgcourse/classroom/sandboxed/episode_cases.py: EpisodeGuard.steps ============================================

def test_episode_guard_counts_the_steps_of_the_current_episode_reset_starts_again_at_zero():
    """``EpisodeGuard.steps``: the ``env.step`` calls since the last ``reset()`` (0 right after a reset)."""
    guard = EpisodeGuard(gym.make("CartPole-v1"))
    try:
        guard.reset(seed=0)
        for _ in range(3):
            guard.step(0)
        assert guard.steps == 3
        guard.reset(seed=0)
        assert guard.steps == 0
        guard.step(0)
        guard.step(0)
        assert guard.steps == 2
    finally:
        guard.env.close()


def test_play_reports_the_steps_of_the_episode_the_learner_returned():
    """``play``'s ``"steps"``: the steps of the learner's (last) episode, so a function that steps, resets and then
    plays and counts the episode right reports a ``steps`` equal to the length it returned."""
    def play_episode(env, policy, seed):
        obs, _ = env.reset(seed=seed)
        env.step(policy(obs))  # a stray step before the episode proper
        obs, _ = env.reset(seed=seed)
        total, length = 0.0, 0
        while True:
            obs, reward, terminated, truncated, _ = env.step(policy(obs))
            total, length = total + float(reward), length + 1
            if terminated or truncated:
                return total, length, bool(terminated), bool(truncated)

    outcome = episode_cases.play(play_episode, "CartPole-v1", "push_left", 0)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["steps"] == outcome["result"][1] > 0


# == 3. pgcourse/cli.py: sweep --verify with --env-arg ===============================================================

@pytest.mark.parametrize("extra, option", [(["--env-arg", "g=9.0"], "--env-arg"), (["--steps", "100"], "--steps")])
def test_sweep_verify_refuses_env_arg_and_steps_instead_of_ignoring_them(monkeypatch, extra, option):
    """``pgcourse sweep --verify FOLDER`` re-runs each trial with the settings saved in FOLDER (its ``env_kwargs``
    and ``total_steps`` included): ``--env-arg`` or ``--steps`` given with it is a UsageError naming the option,
    and nothing is verified or swept."""
    called = []
    report = type("Report", (), {"ok": True, "__str__": lambda self: "REPORT"})()
    monkeypatch.setattr(pgcourse.course.sweeps, "verify", lambda *args, **kwargs: called.append("verify") or report)
    monkeypatch.setattr(pgcourse.course.sweeps, "sweep", lambda *args, **kwargs: called.append("sweep"))
    with pytest.raises(UsageError) as error:
        cli.cmd_sweep(cli.build_parser().parse_args(["sweep", "--verify", "V", *extra]))
    assert option in str(error.value) and "saved" in str(error.value), str(error.value)
    assert called == []


# == 4. pgcourse/rl/algorithms/stacked.py: what stacked_linear's docstring claims ====================================

def test_stacked_linear_docstring_claims_bit_for_bit_only_if_it_holds():
    """``stacked_linear`` vs one ``nn.Linear`` per agent, float32 on random data over a few shapes: its docstring may
    say "bit for bit" only if every output and gradient is ``torch.equal`` to ``nn.Linear``'s; it says what always
    holds, that they agree to rounding."""
    torch.manual_seed(0)
    every_equal = True
    for batch, inputs, outputs in ((64, 64, 1), (7, 3, 2), (2048, 4, 64), (64, 4, 64)):
        layers = [nn.Linear(inputs, outputs) for _ in range(3)]
        weight = torch.stack([layer.weight.detach() for layer in layers]).requires_grad_()
        bias = torch.stack([layer.bias.detach() for layer in layers]).requires_grad_()
        x = torch.randn(3, batch, inputs, requires_grad=True)
        upstream = torch.randn(3, batch, outputs)
        y = stacked_linear(x, weight, bias)
        y.backward(upstream)
        for a, layer in enumerate(layers):
            xa = x.detach()[a].clone().requires_grad_()
            own = layer(xa)
            own.backward(upstream[a])
            pairs = ((y[a], own), (x.grad[a], xa.grad), (weight.grad[a], layer.weight.grad),
                     (bias.grad[a], layer.bias.grad))
            for ours, theirs in pairs:
                torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
                every_equal = every_equal and torch.equal(ours, theirs)
    doc = " ".join(stacked_linear.__doc__.split())
    if not every_equal:
        assert "gradients are those of its own network bit for bit" not in doc, doc
    assert "to rounding" in doc, doc
