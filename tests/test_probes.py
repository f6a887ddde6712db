"""Probe environments (pgcourse.probes): registered by entry point, exact answers, and a tiny agent that
reaches them unless a planted trap breaks the piece a probe isolates."""
from __future__ import annotations

import pickle
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import pgcourse as pg
from pgcourse.course.debugging import probes


@pytest.mark.parametrize("name", list(probes.PROBES))
def test_every_probe_is_a_registered_valid_picklable_env(name):
    probe = probes.PROBES[name]
    spec = gym.spec(probe.env_id)
    assert isinstance(spec.entry_point, str) and spec.entry_point.startswith("pgcourse.course.debugging.probes:")  # no lambda
    env = gym.make(probe.full_id)  # the module:id form any process can make
    check_env(env.unwrapped, skip_render_check=True)
    env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    assert clone.observation_space == env.observation_space and clone.action_space == env.action_space


def _episode(env_id, actions, seed=0):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    seen, rewards = [float(obs[0])], []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        rewards.append(reward)
        if terminated or truncated:
            return seen, rewards, terminated, truncated
        seen.append(float(obs[0]))
    return seen, rewards, False, False


def test_rewards_are_the_documented_ones():
    assert _episode("ProbeConstant-v0", [0]) == ([0.0], [1.0], True, False)
    assert _episode("ProbeAction-v0", [1])[1] == [1.0] and _episode("ProbeAction-v0", [0])[1] == [-1.0]
    assert _episode("ProbeDelayed-v0", [0, 0]) == ([-1.0, 1.0], [0.0, 1.0], True, False)
    for seed in range(6):
        (obs,), (reward,), _, _ = _episode("ProbeObservation-v0", [0], seed)
        assert obs in (-1.0, 1.0) and reward == obs
        (obs,), (reward,), _, _ = _episode("ProbeActionObs-v0", [1], seed)
        assert reward == (1.0 if obs > 0 else -1.0)
    seen, rewards, terminated, truncated = _episode("ProbeTimeLimit-v0", [0] * 50)
    assert rewards == [1.0] * probes.TIME_LIMIT and truncated and not terminated  # a time limit, never terminal


def test_exact_answers_follow_gamma():
    assert probes.PROBES["delayed"].values(0.9).tolist() == [0.9, 1.0]
    assert probes.PROBES["observation"].values(0.5).tolist() == [-1.0, 1.0]
    assert probes.PROBES["time_limit"].values(0.8) == pytest.approx([5.0])


class _Const(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, obs):
        return self.fn(obs)


def _fake_run(value_fn, logits_fn, gamma=0.8):
    return SimpleNamespace(config=SimpleNamespace(gamma=gamma), value_net=_Const(value_fn), policy=_Const(logits_fn),
                           device=torch.device("cpu"))


def test_check_probe_compares_critic_and_policy_with_the_answer():
    uniform = lambda obs: torch.zeros(len(obs), 2)
    right = probes.check_probe(_fake_run(lambda obs: obs[:, 0], uniform), "observation")
    assert right["passed"] and right["value_error"] == 0.0 and np.isnan(right["best_action_prob"])
    wrong = probes.check_probe(_fake_run(lambda obs: torch.zeros(len(obs)), uniform), "observation")
    assert not wrong["passed"] and wrong["value_error"] == 1.0
    stream = probes.check_probe(_fake_run(lambda obs: torch.full((len(obs),), 4.6), uniform), "time_limit")
    assert stream["value_ok"]  # within 10% of 1/(1-0.8) = 5
    # the policy must put >= 0.9 on the best action: action 1 on ProbeAction, the matching action on ActionObs
    sure = lambda obs: torch.stack([-5 * obs[:, 0], 5 * obs[:, 0]], dim=1)
    assert probes.check_probe(_fake_run(lambda obs: torch.ones(len(obs)), sure), "action_obs")["passed"]
    flipped = lambda obs: torch.stack([5 * obs[:, 0], -5 * obs[:, 0]], dim=1)
    result = probes.check_probe(_fake_run(lambda obs: torch.ones(len(obs)), flipped), "action_obs")
    assert result["value_ok"] and not result["policy_ok"] and not result["passed"]


def test_run_probes_refuses_an_unknown_probe():
    with pytest.raises(ValueError, match="unknown probe.*known probes"):
        probes.run_probes("ppo", probes=["constnat"])


def test_a_run_on_a_probe_saves_and_loads(tmp_path):
    run = pg.train("ppo", "pgcourse.probes:ProbeConstant-v0", seed=0, total_steps=512, device="cpu", progress=False)
    loaded = pg.load(run.save(tmp_path / "probe_run"))
    obs = torch.zeros(1, 1)
    assert torch.equal(loaded.value_net(obs), run.value_net(obs))


@pytest.mark.slow
def test_correct_ppo_passes_and_planted_traps_fail_the_probe_they_break():
    """A few seconds: the default PPO reaches the answers; a flipped advantage fails the action probe (and
    keeps the value probe), a bootstrap cut at the time limit fails the time-limit probe."""
    good = probes.assert_probes_pass("ppo", probes=["constant", "delayed", "action", "time_limit"])
    assert len(good) == 4
    flipped = {r["probe"]: r for r in probes.run_probes("ppo", ["advantage_sign_flipped"],
                                                        probes=["constant", "action"])}
    assert flipped["constant"]["passed"] and flipped["action"]["best_action_prob"] < 0.1
    (cut,) = probes.run_probes("ppo", ["truncation_as_termination"], probes=["time_limit"])
    assert not cut["passed"] and cut["values"][0] < 4.0  # regresses on ~3.2, not 5


@pytest.mark.slow
def test_trpo_passes_every_probe_on_three_seeds():
    """TRPO at its PROBE_STEPS budget (16 updates), eighteen runs of 4-5 s of CPU each (measured 2026-11-29, 2-core
    AMD EPYC; the rollouts are two thirds of it): ProbeConstant, where every advantage is equal and TRPO takes no
    policy step, and the action probes, where each step is held to max_kl."""
    rows = probes.assert_probes_pass("trpo", seeds=(0, 1, 2))
    assert len(rows) == 3 * len(probes.PROBES) and {row["total_steps"] for row in rows} == {probes.PROBE_STEPS["trpo"]}


def test_a_run_on_a_probe_resumes_to_the_same_result_as_one_that_never_stopped():
    env_id = "pgcourse.probes:ProbeDelayed-v0"  # constant rates: an annealed schedule depends on total_steps
    straight = pg.train("ppo", env_id, seed=1, total_steps=1024, device="cpu", progress=False, anneal_lr=False)
    half = pg.train("ppo", env_id, seed=1, total_steps=512, device="cpu", progress=False, anneal_lr=False)
    resumed = pg.train("ppo", env_id, total_steps=1024, device="cpu", progress=False, resume=half)
    obs = torch.tensor([[-1.0], [1.0]])
    assert torch.equal(resumed.value_net(obs), straight.value_net(obs))


def test_pg_sweep_runs_a_probe_in_its_worker_processes(tmp_path):
    results = pg.sweep("ppo", "pgcourse.probes:ProbeConstant-v0", seeds=[0], total_steps=512,
                       folder=tmp_path / "probe_sweep", workers=1)
    assert len(results.trials) == 1 and not results.failed
    assert results.trials[0].episode_returns.tolist() == [1.0] * len(results.trials[0].episode_returns)
