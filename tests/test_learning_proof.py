"""A graded loop must prove it learned (issue 26, item 3): lesson 01's ``train_reinforce`` played 50 episodes
with random actions, then wrote a hand-made controller into the policy's weights, and was graded 2/2
("learned ... mean return 500.0"; the reference scores 92.7). The end-to-end check now records, on its side,
what the loop played on the envs it was given and every optimiser step it took, and checks that the returned
policy is the product of those steps on those episodes (pgcourse/checks/learning_proof.py).
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch

from pgcourse.course.checks import ch01_loop, learning_proof
from pgcourse.course.checks.stages import CountingEnvs, seeded_torch
from pgcourse.rl.config import make_config
from pgcourse.rl.envs import make_raw_vector_env
from pgcourse.classroom.sandboxed import loops

import training_loops
from wire_helpers import WireHandle


def _verdict(check, *args, **kwargs) -> str:
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(*args, **kwargs)
    except AssertionError as error:
        return str(error)
    return "passed"


def test_a_hand_made_controller_after_random_play_scores_nothing_graded_or_in_the_notebook():
    """The finding: graded 2/2 before (the grader only scored the returned weights)."""
    cheat = training_loops.reinforce_random_play_then_hand_made_weights
    graded = _verdict(ch01_loop.check_train_reinforce, WireHandle(cheat))
    assert "took no optimiser step" in graded, graded
    notebook = _verdict(ch01_loop.check_train_reinforce, cheat, seeds=(0,), max_episodes=ch01_loop.GRADED_EPISODES)
    assert "took no optimiser step" in notebook, notebook


def _record(recording_class, recorder_class, seed: int = 2, max_episodes: int = 12):
    """The reference loop played on recorded envs with its steps recorded: (played, steps, policy, config)."""
    config = make_config("reinforce", "CartPole-v1", "discrete", seed=seed, max_episodes=max_episodes, progress=False)
    recording = recording_class(make_raw_vector_env("CartPole-v1", config.num_envs, vectorization="auto"))
    envs = CountingEnvs(recording, first_episode_only=True)
    with seeded_torch(seed), recorder_class(lambda: recording.clock) as recorder:
        policy = ch01_loop.reference_train_reinforce(envs, config)
    envs.close()
    return recording.data(), recorder.data(policy), policy, config


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def test_the_sandbox_recorders_record_what_the_notebook_recorders_record():
    notebook = _record(learning_proof.RecordingEnvs, learning_proof.StepRecorder)
    sandbox = _record(loops._recording_envs_class(), loops.StepRecorder)
    assert _same(notebook[0], sandbox[0]) and _same(notebook[1], sandbox[1])
    played, steps, policy, config = notebook
    assert len(steps) == 3 and [step["env_step"] for step in steps] == [b.end for b in
                                                                         learning_proof.batches_played(played)]
    assert learning_proof.prove_learning(played, steps, dict(policy.named_parameters()),
                                         ch01_loop.reinforce_contract(config)) is None


def test_the_sandbox_recorder_keeps_the_tensors_of_its_first_steps_only():
    policy = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(policy.parameters())
    with loops.StepRecorder(lambda: 0, keep=2) as recorder:
        for _ in range(5):
            policy(torch.ones(2)).sum().backward()
            optimizer.step()
    steps = recorder.data(policy)
    assert [step["kept"] for step in steps] == [True, True, False, False, False]
    assert steps[4]["before"] == [] and len(steps[1]["after"]) == 2 and steps[4]["names"] == ["weight", "bias"]


def test_the_reference_passes_the_proof_with_its_actions_as_sampling_gives():
    """Seeds 0-11 at 50 episodes, measured: z from -0.99 to 1.78, gradient residual 0 (the reference's own loss)."""
    for seed in (0, 4):
        played, steps, policy, config = _record(learning_proof.RecordingEnvs, learning_proof.StepRecorder, seed, 50)
        contract = ch01_loop.reinforce_contract(config)
        assert learning_proof.prove_learning(played, steps, dict(policy.named_parameters()), contract) is None
        z = learning_proof.on_policy_z(steps, learning_proof.batches_played(played), contract)
        assert abs(z) < 2.5, z


def test_direction_residual_accepts_a_positive_scale_only():
    e = torch.tensor([1.0, -2.0, 3.0])
    assert learning_proof.direction_residual(2.5 * e, e) == pytest.approx((0.0, 2.5))
    assert learning_proof.direction_residual(-e, e)[0] == float("inf")
    residual, _ = learning_proof.direction_residual(e + torch.tensor([0.0, 0.0, 0.01]), e)
    assert 1e-3 < residual < 1e-2


def test_batches_are_each_envs_first_episode_after_a_reset():
    flags = np.zeros((5, 2), dtype=bool)
    flags[1, 0], flags[3, 1], flags[4, 0] = True, True, True
    played = {"resets": [[0, True], [0, False]], "obs": torch.arange(20.0).reshape(5, 2, 2),
              "actions": torch.tensor([[0, 1]] * 5), "rewards": torch.ones(5, 2), "terminated": torch.tensor(flags),
              "truncated": torch.zeros(5, 2, dtype=torch.bool)}
    batch, = learning_proof.batches_played(played)
    assert [len(r) for r in batch.episode_rewards] == [2, 4] and batch.end == 4
    assert batch.actions.tolist() == [0, 0, 1, 1, 1, 1]
    assert batch.obs[:, 0].tolist() == [0.0, 4.0, 2.0, 6.0, 10.0, 14.0]
    played["resets"].append([2, False])  # a reset before env 1 finished: no batch there; the next one ends at 5
    assert [batch.end for batch in learning_proof.batches_played(played)] == [5]
