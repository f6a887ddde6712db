"""The course's checks (ch08's GRPO check, the checks' harness, the learning proof, the stages), its claims, stats,
tabular helpers, colab cells and views, pinned at every edge of their ordering comparisons (issue 45, item 5).

A mechanical sweep flipped every ordering comparison of the package at its boundary (``<`` <-> ``<=``, ``>`` <->
``>=``); in these modules the flips below survived the unit tests, or no unit test ran the line. Each test states
what the comparison means (is a value exactly at the threshold accepted or refused, counted or not?) and checks it
at the edge, one below and one above; every expected value is worked out by hand. Flips that no input can tell
apart are not tested: ``ch08_lm._cases_group_relative_advantages``' draws against 0.6 (none of seed 82's 30 draws
is float32(0.6)), ``direction_residual``'s ``r.norm() > 0`` (a zero ``r`` with a non-zero ``e`` gives the scale
0.0 and so (inf, 0.0) either way), ``colab_cells.problems``' ``setups[0] > first_code`` (``first_code`` is never a
set-up cell, so the two are never equal) and ``plot_clip_objective``'s ``advantage > 0`` (the advantage is 1.0 or
-1.0, never 0).
"""
from __future__ import annotations

import importlib
import math
from statistics import NormalDist
from types import SimpleNamespace

import gymnasium as gym
import nbformat
import numpy as np
import pytest
import torch

from pgcourse.course import claims, colab_cells, stats, tabular
from pgcourse.course.checks import ch08_lm, learning_proof, stages
from pgcourse.course.checks.harness import Case, Exercise, _differences, _make_check
from pgcourse.course.checks.learning_proof import (Batch, StepRecorder, _gradient_problem, _steps_problem,
                                                   batches_played, direction_residual, on_policy_z, prove_learning)
from pgcourse.course.views import render, widgets

up = lambda x: math.nextafter(x, math.inf)  # noqa: E731 - the next double above x
down = lambda x: math.nextafter(x, -math.inf)  # noqa: E731 - the next double below x
pretrain = importlib.import_module("pgcourse.rl.lm.pretrain")  # the module: pgcourse.rl.lm.pretrain is a function


# -- ch08: _unclipped_gradient's bound ------------------------------------------------------------------------------
EDGE_MOVE = 3 * 0.3 * (1 + 1e-4)  # SMOKE_EPOCHS * SMOKE_LR, with the bound's relative slack


@pytest.mark.parametrize("moved, within", [
    (down(EDGE_MOVE), True),
    (EDGE_MOVE, True),  # exactly the most the clipped loop can move: within
    (up(EDGE_MOVE), False),
    (float("nan"), False),
])
def test_a_move_of_exactly_the_clipped_loops_bound_is_not_called_unclipped(moved, within):
    """``_unclipped_gradient``: None (no diagnosis) when the parameters moved by at most SMOKE_EPOCHS * SMOKE_LR
    (times 1 + 1e-4) in norm, the bound included; the unclipped-gradient message beyond it (NaN is beyond)."""
    assert (ch08_lm.SMOKE_EPOCHS, ch08_lm.SMOKE_LR) == (3, 0.3)
    diagnosis = ch08_lm._unclipped_gradient(torch.tensor([moved], dtype=torch.float64))
    assert (diagnosis is None) is within
    if not within:
        assert "the gradient norm is not clipped at 1" in diagnosis


# -- ch08: check_grpo_update's smoke call and gain, on stand-in models --------------------------------------------
def _grpo_check(monkeypatch, stats_, *, delta=(1.0, 0.0), expected=None, expected_delta=(1.0, 0.0),
                accuracies=(0.0, 0.5), **options):
    """``check_grpo_update`` with everything around its decisions replaced: tiny models, a smoke call whose learner
    returns ``stats_`` and moves the parameters by ``delta``, a reference that returns ``expected`` and moves them
    by ``expected_delta``, known mistakes whose replays move them far away, and held-out accuracies ``accuracies``
    (before, after) for a training run of 0 updates."""
    expected = expected if expected is not None else {"reward": 0.0, "kl": 0.0}

    def models(start_model):
        return torch.nn.Linear(1, 1), torch.nn.Linear(1, 1).requires_grad_(False)

    def smoke_run(fn, policy, reference, name=None, arg_names=None):
        if name is not None:  # the learner's call
            return stats_, torch.tensor(delta, dtype=torch.float64), policy, reference
        if fn is ch08_lm.reference_grpo_update:
            return expected, torch.tensor(expected_delta, dtype=torch.float64), policy, reference
        return {}, torch.tensor([1e3, -1e3], dtype=torch.float64), policy, reference  # a known mistake: far off

    values = iter(accuracies)
    monkeypatch.setattr(ch08_lm, "_smoke_models", models)
    monkeypatch.setattr(ch08_lm, "_smoke_run", smoke_run)
    monkeypatch.setattr(ch08_lm, "_fresh_models", models)
    monkeypatch.setattr(pretrain, "held_out_prompts", lambda count: [])
    monkeypatch.setattr(pretrain, "evaluate_sorting", lambda policy, prompts, seed: {"sampled_exact": next(values)})
    return ch08_lm.check_grpo_update(lambda *args: None, updates=0, verbose=False, **options)


@pytest.mark.parametrize("reward, accepted", [
    (-2.0**-20, False),
    (0.0, True),  # no sample solved: a mean of 0 is in [0, 1]
    (2.0**-20, True),
    (1.0 - 2.0**-20, True),
    (1.0, True),  # every sample solved: a mean of 1 is in [0, 1]
    (1.0 + 2.0**-20, False),
])
def test_the_batch_reward_may_be_exactly_0_or_exactly_1(monkeypatch, reward, accepted):
    """The smoke call's ``reward`` is a mean of exact rewards, each 0 or 1: accepted in [0, 1], both ends included;
    refused outside (without ``compare``, so that only this rule decides)."""
    if accepted:
        report = _grpo_check(monkeypatch, {"reward": reward, "kl": 0.0}, compare=False)
        assert report.gain == 0.5
    else:
        with pytest.raises(AssertionError, match=r"outside \[0, 1\]"):
            _grpo_check(monkeypatch, {"reward": reward, "kl": 0.0}, compare=False)


@pytest.mark.parametrize("got, accepted", [
    (down(1e-5), True),
    (1e-5, True),  # exactly 1e-5 from the reference's 0.0: within
    (up(1e-5), False),
])
def test_a_reward_exactly_1e_5_from_the_reference_loops_is_accepted(monkeypatch, got, accepted):
    """``reward`` matches the reference loop's when they differ by at most 1e-5, 1e-5 included (the reference's
    0.0 here, so that the difference is ``got`` exactly)."""
    if accepted:
        assert _grpo_check(monkeypatch, {"reward": got, "kl": 0.0}).gain == 0.5
    else:
        with pytest.raises(AssertionError, match="the returned reward is"):
            _grpo_check(monkeypatch, {"reward": got, "kl": 0.0})


@pytest.mark.parametrize("got, advantages_hint", [
    (0.0, True),
    (down(1e-5), True),
    (1e-5, False),  # exactly 1e-5 is no longer "about 0": the sampling hint
    (up(1e-5), False),
])
def test_a_wrong_reward_below_1e_5_is_read_as_the_mean_of_the_advantages(monkeypatch, got, advantages_hint):
    """A wrong ``reward`` (the reference's is 0.5) whose size is under 1e-5, 1e-5 excluded, is the mean of the
    advantages (0 in every group); from 1e-5 on, the hint is about sampling."""
    with pytest.raises(AssertionError, match="the returned reward is") as failure:
        _grpo_check(monkeypatch, {"reward": got, "kl": 0.0}, expected={"reward": 0.5, "kl": 0.0})
    assert ("not of the advantages" in str(failure.value)) is advantages_hint
    assert ("sample with generate" in str(failure.value)) is not advantages_hint


@pytest.mark.parametrize("got, accepted", [
    (-1e-4, True),
    (down(1e-4), True),
    (1e-4, True),  # exactly kl_tol = 1e-4 * max(1, |0|) from the reference's 0.0: within
    (up(1e-4), False),
    (-up(1e-4), False),
])
def test_a_kl_exactly_the_tolerance_from_the_reference_loops_is_accepted(monkeypatch, got, accepted):
    """``kl`` matches the reference loop's when they differ by at most 1e-4 * max(1, |expected|), the tolerance
    included (the reference's 0.0: a tolerance of 1e-4, a difference of ``got`` exactly)."""
    if accepted:
        assert _grpo_check(monkeypatch, {"reward": 0.0, "kl": got}).gain == 0.5
    else:
        with pytest.raises(AssertionError, match="the returned kl is"):
            _grpo_check(monkeypatch, {"reward": 0.0, "kl": got})


@pytest.mark.parametrize("got, negated", [
    (1e-4, True),  # got + expected = 0: exactly the negative
    (2e-4, True),  # got + expected = 2e-4 - 1e-4 = 1e-4 exactly (2e-4 is twice 1e-4 in binary too): the tolerance
    (3e-4, False),  # got + expected is about 2e-4: beyond it
])
def test_a_kl_the_negative_of_the_reference_loops_within_the_tolerance_is_called_a_flipped_sign(monkeypatch, got,
                                                                                               negated):
    """A wrong ``kl`` is diagnosed as the sign flipped when ``|got + expected| <= 1e-4 * max(1, |expected|)``, the
    tolerance included (expected -1e-4: a tolerance of 1e-4; every ``got`` here is wrong by 2e-4 or more)."""
    with pytest.raises(AssertionError, match="the returned kl is") as failure:
        _grpo_check(monkeypatch, {"reward": 0.0, "kl": got}, expected={"reward": 0.0, "kl": -1e-4})
    assert ("the sign is flipped" in str(failure.value)) is negated


@pytest.mark.parametrize("moved, accepted", [
    (down(0.01), True),
    (0.01, True),  # a relative difference of exactly SMOKE_RTOL = 1e-2: within
    (up(0.01), False),
])
def test_a_parameter_change_exactly_smoke_rtol_from_the_reference_loops_is_accepted(monkeypatch, moved, accepted):
    """The learner's parameter change matches the reference loop's when ``||delta - expected|| / ||expected||`` is at
    most SMOKE_RTOL (1e-2), SMOKE_RTOL included: the reference moves by (1, 0), the learner by (1, ``moved``), a
    relative difference of ``moved`` exactly."""
    assert ch08_lm.SMOKE_RTOL == 1e-2
    if accepted:
        assert _grpo_check(monkeypatch, {"reward": 0.0, "kl": 0.0}, delta=(1.0, moved)).gain == 0.5
    else:
        with pytest.raises(AssertionError, match="moved the policy's parameters differently"):
            _grpo_check(monkeypatch, {"reward": 0.0, "kl": 0.0}, delta=(1.0, moved))


@pytest.mark.parametrize("after, passes", [
    (down(0.1), False),
    (0.1, True),  # from 0.0 to 0.1: a gain of exactly MIN_GAIN passes
    (up(0.1), True),
])
def test_a_gain_of_exactly_min_gain_passes(monkeypatch, after, passes):
    """The training run passes when the held-out accuracy rose by at least MIN_GAIN (0.10), MIN_GAIN included."""
    assert ch08_lm.MIN_GAIN == 0.10
    if passes:
        report = _grpo_check(monkeypatch, {"reward": 0.0, "kl": 0.0}, accuracies=(0.0, after))
        assert (report.before, report.after, report.gain) == (0.0, after, after)
    else:
        with pytest.raises(AssertionError, match="a gain of"):
            _grpo_check(monkeypatch, {"reward": 0.0, "kl": 0.0}, accuracies=(0.0, after))


# -- harness: a gradient the reference does not have, the entries listed -------------------------------------------
@pytest.mark.parametrize("weight, passes", [
    (0.0, True),  # the reference's gradient into x is 0 everywhere: no gradient is no mistake
    (2.0**-60, False),  # the smallest gradient is one
    (-2.0**-60, False),
])
def test_no_gradient_into_an_input_is_a_mistake_only_where_the_references_is_not_zero(capsys, weight, passes):
    """Where the learner's output is not connected to a ``grad_args`` input, that is a failure only when the
    reference's gradient into it is non-zero somewhere (its largest size above 0); an all-zero one needs none.
    The reference is ``weight * x + y`` (its values those of ``y`` to 1e-18), the learner's ``y * 1.0``."""
    ex = Exercise(name="toy", reference=lambda x, y: weight * x + y,
                  make_cases=lambda: [Case("two entries", dict(
                      x=torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True),
                      y=torch.tensor([1.0, 3.0], dtype=torch.float64, requires_grad=True)))],
                  concept="weight * x + y", grad_args=("x", "y"))
    check = _make_check(ex)
    if passes:
        check(lambda x, y: y * 1.0)
        assert "✓ toy: 1 cases passed" in capsys.readouterr().out
    else:
        with pytest.raises(AssertionError, match="no gradient flows back into `x`"):
            check(lambda x, y: y * 1.0)


@pytest.mark.parametrize("wrong, more", [
    (2, ""),
    (3, ""),  # exactly max_shown entries differ: all shown, no "(and 0 more)"
    (4, " (and 1 more)"),
])
def test_the_differences_list_says_how_many_more_only_beyond_the_ones_shown(wrong, more):
    """``_differences`` shows the first ``max_shown`` (3) differing entries and adds "(and N more)" only when more
    than those differ."""
    expected = torch.zeros(5)
    received = torch.tensor([1.0] * wrong + [0.0] * (5 - wrong))
    text = _differences(expected, received, (1e-6, 1e-8))
    assert text.startswith(f"  {wrong} of 5 entries differ, first at [0]: expected 0, received 1")
    assert text.count("expected 0, received 1") == min(wrong, 3)
    assert text.endswith("received 1" + more)


# -- learning_proof: the recorder's budget, batches, residuals, the steps' order, z ---------------------------------
@pytest.mark.parametrize("keep, kept", [
    (0, [False, False, False]),
    (1, [True, False, False]),
    (2, [True, True, False]),  # keep=2: the first two steps' tensors, not a third
    (3, [True, True, True]),
    (None, [True, True, True]),
])
def test_the_recorder_keeps_the_tensors_of_the_first_keep_steps_only(keep, kept):
    """``StepRecorder(keep=k)`` records the tensors of the first ``k`` optimiser steps (``k`` of them, no more) and
    only counts the rest; None keeps all."""
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    with StepRecorder(lambda: 0, keep=keep) as recorder:
        for _ in range(3):
            weight.grad = torch.ones(1)
            optimizer.step()
    assert [step["kept"] for step in recorder.steps] == kept
    assert [[float(t) for t in step["before"]] for step in recorder.steps] == \
        [[-float(k)] if k_kept else [] for k, k_kept in enumerate(kept)]


def test_a_reset_followed_at_once_by_another_starts_no_batch():
    """``batches_played``: a reset that another reset follows at the same clock (the seeding one) starts no batch,
    its segment is empty. Shown on a record of no env at all, where nothing else would skip the empty segment; with
    one env, the batch starts at the second reset."""
    empty = np.zeros((0, 0), dtype=bool)
    played = dict(terminated=empty, truncated=empty, resets=[[0, True], [0, True]], obs=np.zeros((0, 0, 4)),
                  actions=np.zeros((0, 0)), rewards=np.zeros((0, 0)))
    assert batches_played(played) == []
    played = dict(terminated=[[False], [True]], truncated=[[False], [False]], resets=[[0, True], [0, False]],
                  obs=np.zeros((2, 1, 4)), actions=np.ones((2, 1)), rewards=np.ones((2, 1)))
    [batch] = batches_played(played)
    assert batch.end == 2 and batch.actions.tolist() == [1, 1]


@pytest.mark.parametrize("received, expected, result", [
    ([1.0, 0.0], [0.0, 0.0], (math.inf, 0.0)),  # nothing expected: no direction to be near
    ([0.0, 0.0], [0.0, 0.0], (0.0, 1.0)),
    ([1.0, 0.0], [0.0, 1.0], (math.inf, 0.0)),  # orthogonal: the best scale is exactly 0, not a positive one
    ([1.0, -1.0], [0.0, 1.0], (math.inf, -1.0)),
    ([1.0, 1.0], [0.0, 1.0], (2**-0.5, 1.0)),  # r - 1 e = (1, 0): residual 1 / sqrt(2)
])
def test_a_direction_residual_needs_a_strictly_positive_scale_of_a_non_zero_vector(received, expected, result):
    """``direction_residual``: (inf, 0) when ``e`` is 0 (and ``r`` is not; (0, 1) for both 0); (inf, s) when the
    best scale ``s = r.e / e.e`` is 0 or negative, 0 included; else ``||r - s e|| / ||r||``."""
    residual, scale = direction_residual(torch.tensor(received), torch.tensor(expected))
    assert residual == pytest.approx(result[0], rel=1e-15) and scale == result[1]


def _step(env_step, **fields):
    return {"env_step": env_step, "names": ["weight"], "optimizer_number": 0, **fields}


def _batch(end, obs=None, actions=None):
    obs = torch.zeros(1, 4) if obs is None else obs
    return Batch(obs, torch.tensor([1]) if actions is None else actions, [torch.ones(1)], end)


@pytest.mark.parametrize("env_steps, problem", [
    ([4, 4], "update 2 came with no new batch of episodes"),  # at the same env step as the previous update
    ([4, 6], "update 2 came before every env had finished its episode"),  # later, yet no batch ended
    ([0], "update 1 came with no new batch of episodes"),  # before anything was played
])
def test_an_update_at_the_same_env_step_as_the_previous_one_came_with_no_new_batch(env_steps, problem):
    """``_steps_problem``: an update after which no batch ended since the previous update is either too early (the
    env step moved on since, past no batch's end) or one too many (the env step did not move: the same step, or
    the start, is not a later one)."""
    message = _steps_problem({"actions": [[1]]}, [_step(at) for at in env_steps], [_batch(4)],
                             SimpleNamespace(budget=2))
    assert message.startswith(problem)


@pytest.mark.parametrize("logits, z", [
    ([0.0, 0.0], 0.0),  # uniform: every log-prob equals its mean, variance 0, z 0 (not 0 / 0)
    ([0.0, math.log(3.0)], 3**-0.5),  # p = (1/4, 3/4), action 1: total L/4, variance 3 L^2 / 16 (L = log 3)
])
def test_the_on_policy_z_of_a_policy_with_no_variance_is_0(logits, z):
    """``on_policy_z``: total / sqrt(variance) when the variance of the log-probabilities is above 0; 0 when it is
    exactly 0 (a uniform policy)."""
    logits = torch.tensor(logits, dtype=torch.float64)
    contract = SimpleNamespace(policy=lambda params: (lambda obs: logits.expand(len(obs), 2)))
    steps = [_step(1, before=[torch.zeros(1)])]
    assert on_policy_z(steps, [_batch(1)], contract) == pytest.approx(z, rel=1e-12, abs=0.0)


@pytest.mark.parametrize("limit, accepted", [
    (up(0.8), True),
    (0.8, True),  # received (3, 4) against (1, 0): residual |(0, 4)| / |(3, 4)| = 4/5 exactly, the limit: accepted
    (down(0.8), False),
])
def test_a_gradient_exactly_the_residual_limit_from_the_expected_one_is_accepted(monkeypatch, limit, accepted):
    """``_gradient_problem``: a step's gradient is the exercise's when its direction residual is at most
    GRADIENT_RESIDUAL, the limit included (set here to the residual 0.8 of a hand-made pair)."""
    monkeypatch.setattr(learning_proof, "GRADIENT_RESIDUAL", limit)
    contract = SimpleNamespace(policy=lambda params: None, mistakes=[],
                               gradient=lambda policy, batch, mistake: torch.tensor([1.0, 0.0], dtype=torch.float64))
    steps = [_step(1, before=[torch.zeros(2)], grad=[torch.tensor([3.0, 4.0])])]
    problem = _gradient_problem(steps, [_batch(1)], contract)
    assert (problem is None) is accepted
    if not accepted:
        assert problem.startswith("the gradient of update 1 is not the REINFORCE gradient")


@pytest.mark.parametrize("limit, named", [
    (up(0.8), True),
    (0.8, True),  # the mistake's gradient (1, 0) is exactly the limit from the received (3, 4): named
    (down(0.8), False),
])
def test_a_known_mistake_exactly_the_residual_limit_from_the_gradient_is_named(monkeypatch, limit, named):
    """A wrong gradient is named as a known mistake's when that mistake's gradient is at most GRADIENT_RESIDUAL from
    it, the limit included (the right gradient (0, -1) points the other way: infinitely far)."""
    monkeypatch.setattr(learning_proof, "GRADIENT_RESIDUAL", limit)
    gradients = {None: [0.0, -1.0], "across": [1.0, 0.0]}
    contract = SimpleNamespace(policy=lambda params: None, mistakes=[("across", "returns across episodes")],
                               gradient=lambda policy, batch, mistake: torch.tensor(gradients[mistake],
                                                                                    dtype=torch.float64))
    steps = [_step(1, before=[torch.zeros(2)], grad=[torch.tensor([3.0, 4.0])])]
    problem = _gradient_problem(steps, [_batch(1)], contract)
    assert (problem == "the gradient of update 1: returns across episodes") is named
    assert problem.startswith("the gradient of update 1 is not the REINFORCE gradient") is not named


@pytest.mark.parametrize("z, sampled", [
    (down(5.0), True),
    (5.0, True),  # |z| exactly Z_LIMIT: still the policy's samples
    (-5.0, True),
    (up(5.0), False),
    (-up(5.0), False),
])
def test_actions_with_a_z_of_exactly_z_limit_count_as_the_policys_samples(monkeypatch, z, sampled):
    """``prove_learning``: the actions are the policy's samples when |z| <= Z_LIMIT (5), the limit included; the
    rules before it pass and the gradient rule answers after it here."""
    assert learning_proof.Z_LIMIT == 5.0
    monkeypatch.setattr(learning_proof, "batches_played", lambda played: [])
    for rule in ("_steps_problem", "_weights_problem", "_adam_problem"):
        monkeypatch.setattr(learning_proof, rule, lambda *args: None)
    monkeypatch.setattr(learning_proof, "on_policy_z", lambda steps, batches, contract: z)
    monkeypatch.setattr(learning_proof, "_gradient_problem", lambda steps, batches, contract: "the gradient rule")
    problem = prove_learning({}, [], {}, SimpleNamespace())
    assert (problem == "the gradient rule") is sampled
    if not sampled:
        assert problem.startswith("the actions your loop played are not samples of the policy")


# -- stages: the env step of each update of a learner's run ---------------------------------------------------------
@pytest.mark.parametrize("transitions, steps_per_update, env_steps", [
    ([4, 8, 12], 1, [4.0, 8.0]),  # update 1 ends at step index 0: transitions_at_step[0], not 0
    ([4, 8, 12], 2, [8.0, 12.0]),
    ([4], 3, [4.0, 4.0]),  # fewer steps than asked: the last one recorded (index 0 again)
    ([], 1, [0.0, 0.0]),  # nothing played: index -1, env step 0
])
def test_a_learners_update_at_step_index_0_is_at_the_first_steps_transitions(transitions, steps_per_update,
                                                                                 env_steps):
    """``learner_run``: update k ends at step index min(k * steps_per_update, steps played) - 1; its env step is the
    transitions counted at that index, index 0 included; 0 only when no step was played (index -1)."""
    envs = SimpleNamespace(episodes=[], transitions_at_step=transitions,
                           single_observation_space=gym.spaces.Box(-1, 1, (4,)),
                           single_action_space=gym.spaces.Discrete(2))
    run = stages.learner_run(torch.nn.Linear(4, 2), None, None, envs, [{"policy_loss": 1.0}, {"policy_loss": 2.0}],
                             steps_per_update)
    assert run.history.updates["env_step"].tolist() == env_steps
    assert run.history.updates["policy_loss"].tolist() == [1.0, 2.0]


# -- claims: whole numbers shown with separators below 1e15 ---------------------------------------------------------
@pytest.mark.parametrize("value, shown", [
    (999_999_999_999_999.0, "999,999,999,999,999"),
    (-999_999_999_999_999.0, "-999,999,999,999,999"),
    (1e15, "1e+15"),  # exactly 1e15: too long to write out
    (-1e15, "-1e+15"),
    (1e15 + 2, "1e+15"),
])
def test_a_whole_number_is_written_out_only_below_1e15(value, shown):
    """``claims._show``: a whole number of size below 1e15 (1e15 excluded) with thousands separators; from 1e15 on,
    4 significant digits."""
    assert claims._show(value) == shown


# -- colab cells: an empty notebook ---------------------------------------------------------------------------------
def test_an_empty_notebook_has_no_badge_and_no_set_up_cell_and_no_cell_to_hide():
    """``problems``: cells 0 and the set-up cell are checked for the hidden tag only where they exist (index below
    the number of cells); an empty notebook lacks the badge and the set-up cell, and that is all."""
    found = colab_cells.problems(nbformat.v4.new_notebook(), "solutions/x.ipynb",
                                 colab_cells.Release("owner/name", "v1"))
    assert len(found) == 2
    assert "cell 0 is not the Colab badge" in found[0] and "expected one set-up cell" in found[1]


# -- stats: repeated steps, one trial -------------------------------------------------------------------------------
@pytest.mark.parametrize("steps, allowed", [
    ([0, 10, 10, 20], True),  # a repeated step (difference 0) is non-decreasing
    ([0, 10, 11, 20], True),
    ([0, 10, 9, 20], False),
])
def test_steps_to_threshold_takes_repeated_steps_and_refuses_a_step_back(steps, allowed):
    """``steps_to_threshold``: the steps must be non-decreasing (equal neighbours allowed); the first step whose
    value reaches the threshold (>=)."""
    if allowed:
        assert stats.steps_to_threshold(steps, [0.0, 1.0, 5.0, 6.0], 5.0) == steps[2]
    else:
        with pytest.raises(ValueError, match="non-decreasing"):
            stats.steps_to_threshold(steps, [0.0, 1.0, 5.0, 6.0], 5.0)


@pytest.mark.parametrize("x, allowed", [
    ([0.0, 1.0, 1.0, 2.0], True),  # a repeated x (difference 0) is non-decreasing
    ([0.0, 1.0, 0.5, 2.0], False),
])
def test_curves_to_grid_takes_a_repeated_x_and_refuses_a_step_back(x, allowed):
    """``curves_to_grid``: each run's x must be non-decreasing, equal neighbours allowed; the ends interpolate to
    the first and last y."""
    if allowed:
        grid, curves = stats.curves_to_grid([x], [[0.0, 1.0, 3.0, 4.0]], grid=[0.0, 2.0])
        assert grid.tolist() == [0.0, 2.0] and curves.tolist() == [[0.0, 4.0]]
    else:
        with pytest.raises(ValueError, match="non-decreasing"):
            stats.curves_to_grid([x], [[0.0, 1.0, 3.0, 4.0]], grid=[0.0, 2.0])


@pytest.mark.parametrize("successes, trials", [(0, 0), (0, -1), (2, 1), (-1, 1)])
def test_a_wilson_interval_needs_at_least_one_trial(successes, trials):
    """``wilson_interval``: trials >= 1 and 0 <= successes <= trials; otherwise ValueError."""
    with pytest.raises(ValueError, match="trials >= 1"):
        stats.wilson_interval(successes, trials)


@pytest.mark.parametrize("successes, point, low, high", [
    (0, 0.0, 0.0, "z2"),  # 0 of 1: [0, z^2 / (1 + z^2)]
    (1, 1.0, "1", 1.0),  # 1 of 1: [1 / (1 + z^2), 1]
])
def test_a_wilson_interval_of_exactly_one_trial(successes, point, low, high):
    """One trial is enough: with p = 0 or 1 and n = 1 the Wilson bounds are center -+ half with center =
    (p + z^2/2) / (1 + z^2) and half = z^2 / (2 (1 + z^2)), i.e. [0, z^2 / (1 + z^2)] and [1 / (1 + z^2), 1]."""
    z2 = NormalDist().inv_cdf(0.975) ** 2
    by_hand = {"z2": z2 / (1 + z2), "1": 1 / (1 + z2)}
    estimate = stats.wilson_interval(successes, 1)
    assert estimate.point == point
    assert estimate.low == pytest.approx(by_hand.get(low, low), abs=1e-12)
    assert estimate.high == pytest.approx(by_hand.get(high, high), abs=1e-12)


# -- tabular: one state; the enumeration budget ---------------------------------------------------------------------
@pytest.mark.parametrize("n_states, n_actions, allowed", [
    (0, 2, False),
    (1, 2, True),  # one state is enough
    (2, 2, True),
    (1, 1, False),
])
def test_a_random_mdp_needs_at_least_one_state_and_two_actions(n_states, n_actions, allowed):
    """``random_mdp``: n_states >= 1 and n_actions >= 2. With one state every transition goes back to it
    (probability 1) and it is the start."""
    if not allowed:
        with pytest.raises(ValueError, match="at least 1 state and 2 actions"):
            tabular.random_mdp(n_states, n_actions, seed=0)
        return
    mdp = tabular.random_mdp(n_states, n_actions, seed=0)
    assert (mdp.n_states, mdp.n_actions) == (n_states, n_actions)
    if n_states == 1:
        assert mdp.transitions.tolist() == [[[1.0], [1.0]]] and mdp.start.tolist() == [1.0]


class _Enumerated(Exception):
    """Raised by the stand-in for itertools: the budget let the enumeration start."""


@pytest.mark.parametrize("n_actions, allowed", [
    (1_999_999, True),
    (2_000_000, True),  # one state, one step: exactly 2,000,000 trajectories, the most allowed
    (2_000_001, False),
])
def test_all_trajectories_enumerates_up_to_exactly_two_million(monkeypatch, n_actions, allowed):
    """``all_trajectories``: S (A S)^H trajectories are enumerated when there are at most 2,000,000, that count
    included (S = 1, H = 1: A of them); more are refused. The enumeration itself is stood in for."""
    def product(*grids):
        raise _Enumerated
    monkeypatch.setattr(tabular, "itertools", SimpleNamespace(product=product))
    mdp = tabular.TabularMDP(None, torch.zeros(1, 1).expand(1, n_actions), None)
    if allowed:
        with pytest.raises(_Enumerated):
            tabular.all_trajectories(mdp, None, 1)
    else:
        with pytest.raises(ValueError, match="2,000,001 trajectories are too many"):
            tabular.all_trajectories(mdp, None, 1)


# -- views: the GIF's size budget, the flat regions -----------------------------------------------------------------
@pytest.mark.parametrize("max_bytes, written", [
    (401, [4]),
    (400, [4]),  # 4 frames of 100 bytes: exactly max_bytes, kept
    (399, [4, 2]),  # one byte over: every other frame dropped
])
def test_a_side_by_side_gif_of_exactly_max_bytes_is_kept(monkeypatch, tmp_path, max_bytes, written):
    """``side_by_side_gif``: the GIF is kept when its size is at most ``max_bytes``, that size included; larger,
    every other frame is dropped and it is written again. A stand-in writer makes 100 bytes a frame."""
    calls = []

    def write_gif(frames, path, fps=25.0):
        calls.append(len(frames))
        path = tmp_path / "out.gif"
        path.write_bytes(b"x" * (100 * len(frames)))
        return path

    monkeypatch.setattr(render, "rollout_frames", lambda agent, env_id, **kwargs: (
        [np.zeros((8, 8, 3), dtype=np.uint8)] * 4, 1.0))
    monkeypatch.setattr(render, "_caption", lambda frame, text: frame)
    monkeypatch.setattr(render, "write_gif", write_gif)
    render.side_by_side_gif([None], "CartPole-v1", tmp_path / "out.gif", max_bytes=max_bytes)
    assert calls == written


def test_a_gradient_of_exactly_1e_12_is_not_flat(monkeypatch):
    """``plot_clip_objective`` shades as flat (no gradient) the ratios whose gradient is below 1e-12 in size, 1e-12
    excluded. The gradients are stood in for."""
    gradient = np.array([0.0, 1e-13, -1e-13, 1e-12, -1e-12, 2e-12])
    monkeypatch.setattr(widgets, "clip_objective", lambda ratios, advantage, clip_eps: (np.zeros(6), gradient))
    fig = widgets.plot_clip_objective(points=6)
    for key in ("positive", "negative"):
        assert fig.course_data[key]["flat"].tolist() == [True, True, True, False, False, False]
