"""``num_envs`` is limited by the memory an update needs, not by a fixed 4096 (issue 33, item 7; issue 44, item 7).

The estimate (:mod:`pgcourse.memory`): ``agents * num_envs * (n_steps * b + 4 d_obs)`` bytes with
``b = (4 d_obs + b_action + 5 * 4 + 3) + (4 d_obs + b_action + 4 * 4) + 4 * 4 + 2 * 4 h``; for CartPole-v1
(d_obs = 4, a discrete action of 8 bytes), the course's 64-unit networks and PPO's ``n_steps = 64``, ``b = 615`` and
one env takes ``64 * 615 + 16 = 39,376`` bytes. Free memory is faked here (``available_bytes``) so that the
limits are exact and do not depend on the machine; one slow test measures the real footprint against it.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pgcourse as pg
from pgcourse.rl import memory
from pgcourse.rl.config import ConfigError, make_config

CARTPOLE_PPO_ENV_BYTES = 64 * ((4 * 4 + 8 + 5 * 4 + 3) + (4 * 4 + 8 + 4 * 4) + 4 * 4 + 2 * 4 * 64) + 4 * 4  # 39,376


def _ppo(num_envs, **overrides):
    return make_config("ppo", "CartPole-v1", "discrete", num_envs=num_envs, device="cpu", progress=False, **overrides)


def test_8192_envs_are_accepted_on_the_cpu():
    assert _ppo(8192).num_envs == 8192  # 8192 x 39,376 bytes = 308 MiB


def test_the_estimate_is_the_formula():
    assert memory.rollout_bytes(1, 64, 4, memory.action_bytes(True, 1)) == CARTPOLE_PPO_ENV_BYTES
    assert memory.rollout_bytes(10, 64, 4, 8, agents=3) == 30 * CARTPOLE_PPO_ENV_BYTES
    assert memory.action_bytes(False, 6) == 24  # a continuous action: 6 float32
    assert memory.rollout_bytes(1, 64, 4, 8, widest_hidden=256) - CARTPOLE_PPO_ENV_BYTES == 64 * 2 * 4 * 192
    config = _ppo(16, hidden_sizes=(32, 256))  # the config passes its widest layer
    assert memory.rollout_memory(16, 64, 4, 8, torch.device("cpu"), widest_hidden=max(config.hidden_sizes),
                                 available=0).per_env == memory.rollout_bytes(1, 64, 4, 8, widest_hidden=256)


def test_a_huge_width_is_refused_with_the_estimate_what_is_free_and_the_width_that_fits(monkeypatch):
    free = 100 * 2**20  # 100 MiB
    monkeypatch.setattr(memory, "available_bytes", lambda device: free)
    largest = free // CARTPOLE_PPO_ENV_BYTES  # 2,662
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
    per_env = 500 * (CARTPOLE_PPO_ENV_BYTES - 16) // 64 + 4 * 4  # REINFORCE holds up to CartPole-v1's 500 steps
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


MEASURE_FOOTPRINT = """
import json, sys, threading, time
import torch
import pgcourse as pg
torch.set_num_threads(1)


def anonymous_bytes():  # the process's resident anonymous memory (tensors, arrays), not its mapped files
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("RssAnon:"))


pg.train("ppo", "CartPole-v1", seed=0, total_steps=256, num_envs=2, n_steps=64, progress=False, device="cpu")
before = anonymous_bytes()  # after a warm-up: imports, kernels, allocator pools
peak, done = [before], threading.Event()


def watch():  # the peak, sampled every half millisecond (an update's peak lasts far longer)
    while not done.is_set():
        peak[0] = max(peak[0], anonymous_bytes())
        time.sleep(0.0005)


watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
pg.train("ppo", "CartPole-v1", seed=0, total_steps=NUM_ENVS * 64, num_envs=NUM_ENVS, n_steps=64, num_minibatches=4,
         update_epochs=1, progress=False, device="cpu")
done.set()
watcher.join()
print(json.dumps(peak[0] - before))
"""


@pytest.mark.slow
def test_the_estimate_is_within_1_5x_below_the_measured_footprint():
    """Issue 44, item 7: the estimate counted the stored rollout only (47 bytes per CartPole transition) while an
    update's peak RSS grew by 708-865 (the flattened batch, GAE's temporaries and, the peak, the whole-batch forward
    of the diagnostics). One update at 16,384 envs, in a process of its own: the estimate is a lower bound within
    1.5x of the growth (measured 1.15x here; 1.21x at 65,536 envs).

    The growth is of resident *anonymous* memory (RssAnon), the memory the estimate models. Total RSS (ru_maxrss
    against the RSS before) read the same on a quiet machine (1.19x and 1.20x, 2026-11-28) but 1.55x once, in a
    `make test` beside other memory-hungry passes: total RSS also counts the mapped pages of torch's libraries, which
    the kernel may drop between the two readings and fault back in during the run (a likely cause, not confirmed)."""
    import json
    import subprocess
    import sys
    if not Path("/proc/self/status").exists():
        pytest.skip("reads RssAnon from /proc/self/status (Linux)")
    num_envs = 16_384
    result = subprocess.run([sys.executable, "-c", MEASURE_FOOTPRINT.replace("NUM_ENVS", str(num_envs))],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    growth = json.loads(result.stdout.strip().splitlines()[-1])
    estimate = num_envs * CARTPOLE_PPO_ENV_BYTES
    assert estimate <= growth <= 1.5 * estimate, (growth, estimate, growth / estimate)
