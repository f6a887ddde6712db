"""``num_envs`` is limited by the memory a rollout needs, not by a fixed 4096 (issue 33, item 7).

The estimate (:mod:`pgcourse.memory`): ``agents * num_envs * (n_steps * b + 4 d_obs)`` bytes with
``b = 4 d_obs + b_action + 5 * 4 + 3``; for CartPole-v1 (d_obs = 4, a discrete action of 8 bytes) and PPO's
``n_steps = 64``, ``b = 47`` and one env takes ``64 * 47 + 16 = 3024`` bytes. Free memory is faked here
(``available_bytes``) so that the limits are exact and do not depend on the machine.
"""
from __future__ import annotations

import pytest
import torch

import pgcourse as pg
from pgcourse import memory
from pgcourse.config import ConfigError, make_config

CARTPOLE_PPO_ENV_BYTES = 64 * (4 * 4 + 8 + 5 * 4 + 3) + 4 * 4  # 3024


def _ppo(num_envs, **overrides):
    return make_config("ppo", "CartPole-v1", "discrete", num_envs=num_envs, device="cpu", progress=False, **overrides)


def test_8192_envs_are_accepted_on_the_cpu():
    assert _ppo(8192).num_envs == 8192  # 8192 x 3024 bytes = 24 MiB


def test_the_estimate_is_the_formula():
    assert memory.rollout_bytes(1, 64, 4, memory.action_bytes(True, 1)) == CARTPOLE_PPO_ENV_BYTES
    assert memory.rollout_bytes(10, 64, 4, 8, agents=3) == 30 * CARTPOLE_PPO_ENV_BYTES
    assert memory.action_bytes(False, 6) == 24  # a continuous action: 6 float32


def test_a_huge_width_is_refused_with_the_estimate_what_is_free_and_the_width_that_fits(monkeypatch):
    free = 100 * 2**20  # 100 MiB
    monkeypatch.setattr(memory, "available_bytes", lambda device: free)
    largest = free // CARTPOLE_PPO_ENV_BYTES  # 34,674
    assert _ppo(largest).num_envs == largest
    with pytest.raises(ConfigError) as refused:
        _ppo(largest + 1)
    message = str(refused.value)
    assert f"num_envs={largest + 1} is too wide for the memory of cpu" in message
    assert f"{largest + 1} envs x 64 steps needs at least 100.0 MiB ({CARTPOLE_PPO_ENV_BYTES:,} bytes per env)" in message
    assert "100.0 MiB is available" in message
    assert f"the largest num_envs that fits is {largest}" in message


def test_a_width_past_the_real_memory_is_refused():
    with pytest.raises(ConfigError, match=r"num_envs=1000000000000 is too wide .* GiB is available; the largest "
                                          r"num_envs that fits is \d+"):
        _ppo(10**12)


def test_the_gpu_free_memory_bounds_a_cuda_run(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, 80 * 2**30))  # 1 MiB free
    with pytest.raises(ConfigError, match="too wide for the memory of cuda: .* 1.0 MiB is available; the largest "
                                          f"num_envs that fits is {2**20 // CARTPOLE_PPO_ENV_BYTES}"):
        make_config("ppo", "CartPole-v1", "discrete", num_envs=1000, device="cuda", progress=False)


def test_episode_algorithms_use_the_time_limit(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2**20)
    per_env = 500 * (4 * 4 + 8 + 5 * 4 + 3) + 4 * 4  # REINFORCE stores up to CartPole-v1's 500 steps
    with pytest.raises(ConfigError, match=f"x 500 steps .* the largest num_envs that fits is {2**20 // per_env}"):
        make_config("reinforce", "CartPole-v1", "discrete", num_envs=2**20 // per_env + 1, device="cpu")


def test_train_many_counts_agents_times_envs(monkeypatch):
    free = 64 * 40 * CARTPOLE_PPO_ENV_BYTES  # one agent of 64 envs fits, 41 agents do not
    monkeypatch.setattr(memory, "available_bytes", lambda device: free)
    with pytest.raises(ConfigError, match="a rollout of 41 agents x 64 envs x 64 steps .* the largest num_envs that "
                                          "fits is 62 for 41 agents"):
        pg.train_many("ppo", "CartPole-v1", seeds=range(41), num_envs=64, n_steps=64, total_steps=64 * 64,
                      device="cpu", progress=False)


def test_an_env_that_cannot_be_made_is_left_to_the_trainer_to_report():
    config = make_config("ppo", "NoSuchEnv-v0", "discrete", num_envs=10**9, device="cpu", progress=False)
    assert config.num_envs == 10**9


def test_a_gpu_that_cannot_report_its_free_memory_leaves_the_check_to_the_run(monkeypatch):
    def broken(device=None):
        raise RuntimeError("CUDA error: no CUDA-capable device is detected")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", broken)
    config = make_config("ppo", "CartPole-v1", "discrete", num_envs=64, device="cuda", progress=False)
    assert config.num_envs == 64
