"""The faster CartPole path changes no number (issue 33, item 5).

- :class:`pgcourse.envs.StartStates` draws each sub-environment's starting states 32 episodes at a time: the
  same numbers as one ``uniform`` call per episode, and a reset with other bounds after some autoresets
  rewinds the generator to where one-call-per-episode would be (against a ``SyncVectorEnv`` of ``CartPoleEnv``);
- :class:`pgcourse.envs.SeededCartPoleVectorEnv` refuses actions other than 0/1 with a message that says so;
- :class:`pgcourse.envs.EpisodeStatistics` reports exactly what gymnasium's ``RecordEpisodeStatistics`` reports
  (``info["episode"]`` r and l, which entries are set, the queues and counts), for CartPole's float64 rewards,
  gymnasium's own float32 ones and an env with fractional rewards.

Speed is measured by ``pgcourse bench`` (``pgcourse.bench.env_speed``), never here.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils import seeding
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from pgcourse.rl.envs import (AUTORESET_MODE, START_BLOCK, EpisodeStatistics, SeededCartPoleVectorEnv, StartStates,
                              make_raw_vector_env)


def test_a_block_of_start_states_is_the_per_episode_draws():
    states = StartStates(2)
    states.seed(0, 7)
    states.seed(1, 8)
    reference = [seeding.np_random(7)[0], seeding.np_random(8)[0]]
    for _ in range(3 * START_BLOCK + 5):  # across three block refills
        drawn = states.next_autoreset(np.array([0, 1]))  # [4, 2]
        expected = np.stack([rng.uniform(-0.05, 0.05, size=(4,)) for rng in reference], axis=1)
        np.testing.assert_array_equal(drawn, expected)


@pytest.mark.parametrize("seed_again", [False, True])
def test_reset_with_other_bounds_after_autoresets_rewinds_the_generators(seed_again):
    num_envs = 4
    fast = make_raw_vector_env("CartPole-v1", num_envs, vectorization="auto")
    sync = make_raw_vector_env("CartPole-v1", num_envs)
    try:
        np.testing.assert_array_equal(fast.reset(seed=3)[0], sync.reset(seed=3)[0])
        rng = np.random.default_rng(3)
        for t in range(400):
            if t in (150, 300):  # mid-block: the blocks' unused draws must not have been used up
                seed = 11 if seed_again else None
                options = {"low": -0.3, "high": 0.3}
                np.testing.assert_array_equal(fast.reset(seed=seed, options=options)[0],
                                              sync.reset(seed=seed, options=options)[0], err_msg=f"reset at {t}")
            actions = rng.integers(0, 2, size=num_envs)
            for x, y in zip(fast.step(actions)[:4], sync.step(actions)[:4]):
                np.testing.assert_array_equal(x, y, err_msg=f"step {t}")
        assert fast.start_states.used.min() < START_BLOCK  # blocks in use when the test ended
    finally:
        fast.close()
        sync.close()


@pytest.mark.parametrize("bad", [np.array([0, 2, 1]), np.array([0, 1]), np.array([-1, 0, 1]), np.array([0.5, 0, 1])])
def test_cartpole_refuses_actions_other_than_0_and_1(bad):
    envs = SeededCartPoleVectorEnv(3)
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"3 values, each 0 \(push left\) or 1 \(push right\)"):
        envs.step(bad)


def _gym_cartpole(n):
    return gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point")  # float32 rewards


def _mountain_car(n):  # fractional rewards (minus the squared action), float64, 60-step episodes
    return gym.make_vec("MountainCarContinuous-v0", num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AUTORESET_MODE}, max_episode_steps=60)


@pytest.mark.parametrize("make", [lambda n: SeededCartPoleVectorEnv(n), _gym_cartpole, _mountain_car],
                         ids=["seeded-cartpole", "gymnasium-cartpole", "mountaincar-continuous"])
def test_episode_statistics_report_what_gymnasium_reports(make):
    num_envs = 5
    ours, theirs = EpisodeStatistics(make(num_envs)), RecordEpisodeStatistics(make(num_envs))
    try:
        ours.reset(seed=1)
        theirs.reset(seed=1)
        rng = np.random.default_rng(1)
        ended = 0
        for t in range(600):
            actions = np.stack([ours.single_action_space.sample() for _ in range(num_envs)])
            if isinstance(ours.single_action_space, gym.spaces.Discrete):
                actions = rng.integers(0, 2, size=num_envs)
            *_, info_ours = ours.step(actions)
            *_, info_theirs = theirs.step(actions)
            assert ("episode" in info_ours) == ("episode" in info_theirs), f"step {t}"
            if "episode" in info_theirs:
                np.testing.assert_array_equal(info_ours["_episode"], info_theirs["_episode"])
                for key in ("r", "l"):
                    assert info_ours["episode"][key].dtype == info_theirs["episode"][key].dtype
                    np.testing.assert_array_equal(info_ours["episode"][key], info_theirs["episode"][key])
                np.testing.assert_array_equal(info_ours["episode"]["t"] > 0, info_theirs["episode"]["t"] > 0)
                ended += int(info_theirs["_episode"].sum())
        assert ended >= 10
        assert ours.episode_count == theirs.episode_count
        assert list(ours.return_queue) == list(theirs.return_queue)
        assert list(ours.length_queue) == list(theirs.length_queue)
        assert len(ours.time_queue) == len(theirs.time_queue)
    finally:
        ours.close()
        theirs.close()


def test_env_speed_keeps_the_median_round():
    from pgcourse.bench.env_speed import median_try

    assert median_try([(10, 3.0), (10, 1.0), (10, 2.0)]) == (10, 2.0)  # 0.2 s per call: the middle of three
    assert median_try([(100, 1.0), (10, 0.5), (10, 2.0), (30, 3.0)]) == (10, 0.5)  # 0.01, 0.05, 0.1, 0.2: the lower middle


def test_pgcourse_bench_envs_runs_the_env_speed_measurement(monkeypatch):
    from pgcourse.bench import env_speed
    from pgcourse.cli import main

    calls = []
    monkeypatch.setattr(env_speed, "main", lambda argv: calls.append(argv) or 0)
    assert main(["bench", "envs", "--widths", "8", "64", "512"]) == 0
    assert main(["bench", "envs", "--quick"]) == 0
    assert calls == [["--num-envs", "8", "64", "512"],
                     ["--num-envs", "8", "64", "512", "4096", "--seconds", "0.3", "--repeats", "3"]]
