"""``env_backend="torch"``: pg.train's one loop stepping a torch vector env (issue 33, item 2).

- The same run as the numpy path: on CPU in float64, with gymnasium's start states injected into the torch env,
  a PPO or A2C run on CartPole (PPO on Acrobot) reproduces the numpy-env run's history bit for bit. With
  observation and reward normalisation it cannot (the normalisers' float32 sums run in torch's order, not
  numpy's: :class:`pgcourse.tensor_envs.TensorObsNormalizer`), nor on Pendulum (rewards gymnasium's to 5e-10):
  there the tightest tolerance that holds is tested.
- No host read per step: the reads of one update (counted by patching the ways a tensor reaches Python) are a
  constant, the same for 16 steps per rollout as for 256; on a real GPU, the synchronisations
  ``torch.cuda.set_sync_debug_mode("warn")`` reports between two updates, likewise (skipped without one).
- The config refuses what has no torch loop or env, naming what exists.
"""
from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from gymnasium.utils import seeding
from torch.utils._python_dispatch import TorchDispatchMode

import pgcourse as pg
from pgcourse.rl import config as config_module
from pgcourse.rl import tensor_envs
from pgcourse.rl.algorithms import train_a2c, train_ppo
from pgcourse.rl.algorithms import trainer as trainer_module
from pgcourse.rl.tensor_envs import TensorVectorEnv

PPO_SHORT = dict(total_steps=2048, n_steps=64, minibatch_size=128, update_epochs=4)
A2C_SHORT = dict(total_steps=1024)


class GymnasiumStarts(TensorVectorEnv):
    """A torch env whose sub-environment ``i`` starts each episode from the next draw of its own generator,
    seeded ``seed + i``, as gymnasium's ``reset`` draws it: the start states of the numpy path
    (``pgcourse.envs.SeededCartPoleVectorEnv``, a ``SyncVectorEnv`` elsewhere). The draw reads which
    sub-environments reset on the host, which the real env never does: a test device only."""

    def reset(self, *, seed=None, options=None):
        self._rngs = [seeding.np_random(seed + i)[0] for i in range(self.num_envs)]
        self._resetting = np.ones(self.num_envs, dtype=bool)
        return super().reset(options={"state": self._draw_start_states()})

    def reserve_start_states(self, steps):
        pass  # each step draws its own, for the sub-environments that reset then

    def _draw_start_states(self, steps=None):
        resetting = getattr(self, "_resetting", None)
        resetting = self._done.cpu().numpy() if resetting is None else resetting
        self._resetting = None
        low, high = np.array(self.spec.start_low), np.array(self.spec.start_high)
        states = np.zeros((self.num_envs, self.spec.state_dim))
        for i in np.flatnonzero(resetting):
            start = self._rngs[i].uniform(low=low, high=high)
            states[i] = start.astype(np.float32) if self.spec.start_in_float32 else start
        return torch.as_tensor(states, dtype=self.dtype, device=self.device)


@pytest.fixture
def gymnasium_starts(monkeypatch):
    monkeypatch.setattr(trainer_module, "make_tensor_env",
                        lambda env_id, num_envs, device: GymnasiumStarts(env_id, num_envs, device=device))


def _train(algo, backend, env_id="CartPole-v1", **overrides):
    settings = {**(PPO_SHORT if algo == "ppo" else A2C_SHORT), **overrides}
    return pg.train(algo, env_id, seed=3, device="cpu", progress=False, env_backend=backend, **settings)


def _columns(run):
    for table in ("episodes", "updates"):
        for column in getattr(run.history, table).fields:
            if column != "wall_time":
                yield f"{table}.{column}", np.asarray(getattr(run.history, table)[column])


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_the_torch_env_run_is_the_numpy_env_run_bit_for_bit(algo, gymnasium_starts):
    numpy_run, torch_run = _train(algo, "numpy"), _train(algo, "torch")
    assert len(numpy_run.history.episodes) > 20 and len(numpy_run.history.updates) >= 4
    for (name, a), (_, b) in zip(_columns(numpy_run), _columns(torch_run), strict=True):
        assert a.shape == b.shape and a.tobytes() == b.tobytes(), f"{algo} {name} differs"
    for a, b in zip(numpy_run.policy.parameters(), torch_run.policy.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_with_normalisation_the_same_episodes_and_updates_to_float32_rounding(algo, gymnasium_starts):
    """Not bit for bit: the reward normaliser is gymnasium's exactly (its sums in numpy's pairwise order), but the
    observation normaliser's batch sums run in torch's order, not the one numpy takes on CartPole's column-major
    batch, so its statistics differ in their last bits (measured, seed 3: obs mean by 2e-7 relative). The actions
    come out the same, so the episodes are equal; the update diagnostics agree to 1e-5 relative, or 1e-6 absolute
    for numbers near 0 (measured: A2C's policy loss by up to 1e-4 relative, 7e-8 absolute)."""
    numpy_run = _train(algo, "numpy", normalize_obs=True, normalize_reward=True)
    torch_run = _train(algo, "torch", normalize_obs=True, normalize_reward=True)
    for (name, a), (_, b) in zip(_columns(numpy_run), _columns(torch_run), strict=True):
        assert a.shape == b.shape, f"{algo} {name}: {a.shape} against {b.shape}"
        if name.startswith("episodes."):
            assert a.tobytes() == b.tobytes(), f"{algo} {name} differs"
        else:
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=f"{algo} {name}")
    numpy_state, torch_state = numpy_run.normalizer_state, torch_run.normalizer_state
    assert torch_state["obs"]["count"] == numpy_state["obs"]["count"]
    assert torch_state["reward"]["count"] == numpy_state["reward"]["count"]
    assert torch_state["reward"] == numpy_state["reward"]  # bit for bit
    for key in ("mean", "var"):
        np.testing.assert_allclose(torch_state["obs"][key], numpy_state["obs"][key], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("num_envs", [3, 8, 13, 64, 128])
def test_the_reward_normaliser_is_gymnasiums_bit_for_bit_on_the_cpu(num_envs):
    """gymnasium's NormalizeReward arithmetic (vector wrapper, NEXT_STEP: the step after an episode end is left
    out of the statistics), on rewards and flags drawn at random: the same statistics and scaled rewards."""
    from gymnasium.wrappers.utils import RunningMeanStd
    rng = np.random.default_rng(num_envs)
    gamma, accumulated, prev_done = 0.99, np.zeros(num_envs, dtype=np.float32), np.zeros(num_envs, dtype=bool)
    rms, normalizer = RunningMeanStd(shape=()), tensor_envs.TensorRewardNormalizer(num_envs, gamma, torch.device("cpu"))
    for step in range(200):
        reward = rng.standard_normal(num_envs) + 1.0
        terminated, truncated = rng.random(num_envs) < 0.05, rng.random(num_envs) < 0.02
        active = ~prev_done
        accumulated[active] = accumulated[active] * gamma * (1 - terminated[active]) + reward[active]
        if np.any(active):
            rms.update(accumulated[active])
        prev_done = terminated | truncated
        expected = reward / np.sqrt(rms.var + 1e-8)
        scaled = normalizer(*(torch.from_numpy(x).unsqueeze(0) for x in (reward, terminated, truncated)))  # [1, N]
        assert (rms.mean, rms.var, rms.count) == tuple(normalizer.state()[key] for key in ("mean", "var", "count")), step
        assert np.array_equal(scaled[0].numpy(), expected), step


@pytest.mark.parametrize("normalizer_of", ["reward", "obs"])
def test_each_agent_of_a_shared_normaliser_has_the_statistics_of_its_own(normalizer_of):
    """pg.train_many's agents share one env but not its normalisers: with an agent axis, agent a's statistics and
    outputs are those of a normaliser fed agent a's rows alone, bit for bit, whatever the other agent's rows are."""
    rng, cpu = np.random.default_rng(5), torch.device("cpu")
    make = ((lambda agents: tensor_envs.TensorRewardNormalizer(16, [0.99, 0.9][:agents], cpu)) if normalizer_of == "reward"
            else (lambda agents: tensor_envs.TensorObsNormalizer(3, cpu, agents=agents)))
    shared, alone = make(2), make(1)
    for step in range(60):
        if normalizer_of == "reward":
            inputs = [torch.from_numpy(rng.standard_normal((2, 16)) * np.array([[1], [30]])), torch.from_numpy(rng.random((2, 16)) < 0.1),
                      torch.from_numpy(rng.random((2, 16)) < 0.05)]
        else:
            inputs = [torch.from_numpy(rng.standard_normal((2, 16, 3)).astype(np.float32) * np.array([1, 50])[:, None, None])]
        both, one = shared(*inputs), alone(*(x[:1] for x in inputs))
        assert torch.equal(both[:1], one) and shared.state(0) == alone.state(0), step
    assert shared.state(1) != shared.state(0)


def test_acrobot_too_is_the_numpy_env_run_bit_for_bit(gymnasium_starts):
    numpy_run, torch_run = (_train("ppo", backend, "Acrobot-v1", num_envs=2) for backend in ("numpy", "torch"))
    assert len(numpy_run.history.episodes) >= 3
    for (name, a), (_, b) in zip(_columns(numpy_run), _columns(torch_run), strict=True):
        assert a.shape == b.shape and a.tobytes() == b.tobytes(), f"Acrobot {name} differs"


def test_pendulum_agrees_to_float32_rounding(gymnasium_starts):
    """Pendulum's rewards are gymnasium's to 5e-10, not bit for bit (tensor_dynamics: float32 ``powf``), and it is
    normalised by default: the continuous actions drift by rounding, never by a flip, so the whole run agrees
    (measured, seed 3: episode returns to 5e-6 relative, policy loss by 5e-7 absolute)."""
    numpy_run, torch_run = (_train("ppo", backend, "Pendulum-v1", num_envs=2) for backend in ("numpy", "torch"))
    assert len(numpy_run.history.episodes) >= 8
    for (name, a), (_, b) in zip(_columns(numpy_run), _columns(torch_run), strict=True):
        assert a.shape == b.shape, f"Pendulum {name}: {a.shape} against {b.shape}"
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6, err_msg=f"Pendulum {name}")


# -- no host read per step ---------------------------------------------------------------------------------------
HOST_READS = ("__float__", "__int__", "__index__", "__bool__", "item", "tolist", "numpy", "cpu", "nonzero")


@pytest.fixture
def host_reads(monkeypatch):
    """Counts every way a tensor's value reaches Python (on a GPU each one waits for the device)."""
    counts: collections.Counter = collections.Counter()
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counting)
    getitem = torch.Tensor.__getitem__

    def indexing(self, index):  # a boolean mask as index: its True count must reach the host (a nonzero inside)
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(part, torch.Tensor) and part.dtype == torch.bool for part in parts):
            counts["boolean mask"] += 1
        return getitem(self, index)
    monkeypatch.setattr(torch.Tensor, "__getitem__", indexing)
    return counts


def _reads_per_update(counts, backend: str, algo: str, n_steps: int) -> float:
    """Host reads of the whole loop, per update: rollout, update, diagnostics, episode records."""
    settings = dict(num_envs=8, n_steps=n_steps, total_steps=8 * n_steps * 6)
    if algo == "ppo":
        settings.update(minibatch_size=64, update_epochs=2)
    config = config_module.make_config(algo, "CartPole-v1", "discrete", seed=0, device="cpu", progress=False,
                                       env_backend=backend, **settings)
    counts.clear()
    run = {"ppo": train_ppo, "a2c": train_a2c}[algo](config)
    return sum(counts.values()) / len(run.history.updates)


@pytest.fixture
def gpu_code_path(monkeypatch):
    """The torch env in float32, as on a GPU: its code path there (on CPU in float64 the trigonometry is numpy's,
    on the same memory, for gymnasium's bits: no device to wait for, but a ``.numpy()`` the count would see)."""
    monkeypatch.setattr(trainer_module, "make_tensor_env", lambda env_id, num_envs, device: TensorVectorEnv(
        env_id, num_envs, device=device, dtype=torch.float32))


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_the_torch_env_loop_reads_the_host_a_constant_number_of_times_per_update(algo, gpu_code_path, host_reads):
    short, long = (_reads_per_update(host_reads, "torch", algo, n) for n in (16, 256))
    assert short == long, f"{algo}: {short} host reads per update with 16 steps per rollout, {long} with 256"
    assert short <= 16, f"{algo}: {short} host reads per update (13 for PPO, 11 for A2C when this was written)"
    # the guard sees per-step reads where there are some: the numpy env takes its actions on the host each step
    numpy_short, numpy_long = (_reads_per_update(host_reads, "numpy", algo, n) for n in (16, 256))
    assert numpy_long - numpy_short >= 240, (numpy_short, numpy_long)


def test_flatten_valid_finds_the_transitions_with_one_read_for_all_tensors(host_reads):
    """It did one boolean-mask index per tensor (six for PPO's batch, six waits on a GPU); the rows are the same."""
    from pgcourse.rl.algorithms.rollout import Rollout, flatten_valid
    generator = torch.Generator().manual_seed(0)
    valid = torch.rand((5, 3), generator=generator) > 0.3  # [T, N]
    tensors = [torch.randn((5, 3, 2), generator=generator), torch.arange(15).reshape(5, 3)] * 3
    rollout = Rollout(*([None] * 8), valid=valid)
    host_reads.clear()
    flat = flatten_valid(rollout, *tensors)
    assert sum(host_reads.values()) == 1, dict(host_reads)
    for tensor, kept in zip(tensors, flat):
        assert torch.equal(kept, tensor[valid])


# -- which runs can have it ----------------------------------------------------------------------------------------
def test_the_config_lists_the_torch_envs_there_are():
    assert config_module.TENSOR_ENV_IDS == tuple(tensor_envs.TENSOR_ENVS)


@pytest.mark.parametrize("algo, env_id, overrides, words", [
    ("trpo", "CartPole-v1", {}, "'numpy' for algo='trpo' (the torch envs are stepped by 'a2c' and 'ppo' only)"),
    ("reinforce", "CartPole-v1", {}, "'numpy' for algo='reinforce'"),
    ("ppo", "MountainCar-v0", {}, "torch envs exist for CartPole-v1, Acrobot-v1, Pendulum-v1"),
    ("ppo", "CartPole-v1", {"env_kwargs": {"sutton_barto_reward": True}}, "'numpy' with env_kwargs="),
    ("ppo", "CartPole-v1", {"env_backend": "jax"}, "expected 'numpy' or 'torch'"),
])
def test_a_run_without_a_torch_loop_or_env_is_refused_naming_what_exists(algo, env_id, overrides, words):
    settings = {"env_backend": "torch", **overrides}
    with pytest.raises(pg.ConfigError, match="env_backend") as info:
        pg.train(algo, env_id, total_steps=64, progress=False, device="cpu", **settings)
    assert words in str(info.value), str(info.value)


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "Pendulum-v1"])
def test_the_other_torch_envs_train_and_the_run_evaluates_on_gymnasium(env_id):
    run = pg.train("ppo", env_id, seed=0, total_steps=1024, n_steps=64, minibatch_size=128, progress=False,
                   device="cpu", env_backend="torch")
    assert run.history.status == "completed" and len(run.history.updates) >= 2
    if env_id == "Pendulum-v1":  # normalised by default on Box actions: the statistics travel with the run
        assert set(run.normalizer_state) == {"obs", "reward"} and run.normalizer_state["obs"]["count"] > 1000
    result = pg.evaluate(run, env_id, episodes=2)
    assert np.isfinite(result.mean)


@pytest.mark.skipif(__import__("fake_cuda").unusable_reason() is not None, reason="the fake GPU cannot run here")
def test_on_a_gpu_the_env_lives_there_in_float32():
    """On the suite's fake CUDA device (tests/fake_cuda.py), which refuses a CPU tensor mixed into a GPU op: the
    env, the normalisers and the rollout stay on the device."""
    from fake_cuda import fake_cuda, on_fake_cuda
    with fake_cuda():
        run = pg.train("ppo", "CartPole-v1", seed=0, total_steps=1024, n_steps=64, minibatch_size=128,
                       progress=False, device="cuda", env_backend="torch", normalize_obs=True, normalize_reward=True)
        assert all(on_fake_cuda(p) for p in run.policy.parameters())
    assert run.history.status == "completed" and len(run.history.episodes) > 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.set_sync_debug_mode)")
def test_on_cuda_no_step_of_the_rollout_waits_for_the_gpu():
    """The synchronisations CUDA reports between one update's end and the next (a rollout and an update): as
    many for 16 steps per rollout as for 256 (reads once per rollout and once per update, none per step)."""
    import warnings

    def syncs_between_updates(n_steps):
        config = config_module.make_config("ppo", "CartPole-v1", "discrete", seed=0, device="cuda", progress=False,
                                           env_backend="torch", num_envs=64, n_steps=n_steps,
                                           total_steps=64 * n_steps * 4, minibatch_size=16 * n_steps,
                                           update_epochs=2)  # 4 minibatches an epoch at either length
        seen: list[int] = []
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                train_ppo(config, on_update=lambda trainer: seen.append(
                    sum("synchroniz" in str(w.message) for w in caught)))
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return {later - earlier for earlier, later in zip(seen, seen[1:])}

    short, long = syncs_between_updates(16), syncs_between_updates(256)
    assert short == long and len(short) == 1, (short, long)


@pytest.mark.skipif(__import__("fake_cuda").unusable_reason() is not None, reason="the fake GPU cannot run here")
def test_on_the_fake_gpu_many_agents_on_torch_envs_sync_as_often_at_any_width_and_minibatch_count(monkeypatch):
    """pg.train_many goes through the same loop with the agent axis, torch envs on the device included: its syncs
    per update (counted between the first agent's end_update calls) do not grow with the envs' width or the
    number of minibatches."""
    from fake_cuda import SYNCS, fake_cuda

    def syncs_per_update(num_envs: int, num_minibatches: int) -> set[int]:
        seen: list[collections.Counter] = []
        end_update = trainer_module.Trainer.end_update

        def recording(self, **metrics):
            if self.config.seed == 0:
                seen.append(SYNCS.copy())
            return end_update(self, **metrics)
        monkeypatch.setattr(trainer_module.Trainer, "end_update", recording)
        with fake_cuda():
            pg.train_many("ppo", "CartPole-v1", seeds=[0, 1], device="cuda", progress=False, env_backend="torch",
                          num_envs=num_envs, n_steps=16, total_steps=num_envs * 16 * 3,
                          num_minibatches=num_minibatches, update_epochs=4)
        return {sum((later - earlier).values()) for earlier, later in zip(seen, seen[1:])}

    counts = {(width, k): syncs_per_update(width, k) for width, k in [(64, 4), (512, 4), (64, 8)]}
    assert len(set(map(frozenset, counts.values()))) == 1 and len(counts[64, 4]) == 1, counts
    # 31 for two agents when this was written: 8 per agent are its critic diagnostics (explained variance before and
    # after, relative error: reference functions that return floats), the rest are the batch's
    assert max(counts[64, 4]) <= 16 * 2, counts


@pytest.mark.skipif(__import__("fake_cuda").unusable_reason() is not None, reason="the fake GPU cannot run here")
def test_on_the_fake_gpu_an_update_syncs_as_often_at_any_width_and_minibatch_count():
    """Everything that would make the host wait for a real GPU (tests/fake_cuda.py's ``count_syncs``: host-device
    copies, value reads, data-dependent sizes), counted between two updates of PPO on the torch env. The
    minibatch permutation went to the device once per minibatch: 28 syncs per update at 4 epochs x 4 minibatches,
    44 at 8 minibatches (issue 44), then once per epoch (16); now it is drawn on the device (12, and one more:
    the finished episodes are picked out on the device before their one copy), and nothing else grows with width
    or minibatch count."""
    from fake_cuda import SYNCS, fake_cuda

    def syncs_per_update(num_envs: int, num_minibatches: int) -> set[int]:
        config = config_module.make_config("ppo", "CartPole-v1", "discrete", seed=0, device="cuda", progress=False,
                                           env_backend="torch", num_envs=num_envs, n_steps=16,
                                           total_steps=num_envs * 16 * 3, num_minibatches=num_minibatches,
                                           update_epochs=4)
        seen: list[collections.Counter] = []
        with fake_cuda():
            train_ppo(config, on_update=lambda trainer: seen.append(SYNCS.copy()))
        return {sum((later - earlier).values()) for earlier, later in zip(seen, seen[1:])}

    counts = {(width, k): syncs_per_update(width, k) for width, k in [(64, 4), (512, 4), (64, 8)]}
    assert len(set(map(frozenset, counts.values()))) == 1 and len(counts[64, 4]) == 1, counts
    assert max(counts[64, 4]) <= 13, counts


def test_num_minibatches_fixes_the_gradient_steps_per_epoch_whatever_the_batch():
    """``num_minibatches=k`` cuts each batch of B valid transitions into chunks of ceil(B / k) rows: k steps (at
    most) per epoch at any width; ``minibatch_size`` keeps its meaning when the count is not given."""
    calls: list[tuple[int, int, int]] = []

    def recording(batch_size, minibatch_size, generator=None):
        chunks = pg.minibatch_indices(batch_size, minibatch_size, generator)
        calls.append((batch_size, minibatch_size, len(chunks)))
        return chunks

    for num_envs in (4, 16):
        calls.clear()
        pg.train("ppo", "CartPole-v1", seed=0, device="cpu", progress=False, total_steps=num_envs * 32 * 2,
                 num_envs=num_envs, n_steps=32, num_minibatches=3, update_epochs=2, minibatch_indices=recording)
        assert calls and all(size == -(-batch // 3) and 2 <= steps <= 3 for batch, size, steps in calls), calls
    calls.clear()
    pg.train("ppo", "CartPole-v1", seed=0, device="cpu", progress=False, total_steps=256, num_envs=4, n_steps=32,
             minibatch_size=40, update_epochs=1, minibatch_indices=recording)
    assert {size for _, size, _ in calls} == {40}


@pytest.mark.parametrize("settings, words", [
    ({"num_minibatches": 4, "minibatch_size": 64}, "were both given: expected one (a size or a count)"),
    ({"num_minibatches": 0}, "num_minibatches=0 is invalid"),
    ({"num_minibatches": 10_000, "num_envs": 2, "n_steps": 8}, "at most the batch num_envs * n_steps = 2 * 8 = 16"),
])
def test_a_minibatch_count_that_cannot_be_is_refused(settings, words):
    with pytest.raises(pg.ConfigError) as info:
        pg.train("ppo", "CartPole-v1", total_steps=64, progress=False, device="cpu", **settings)
    assert words in str(info.value), str(info.value)


_NO_KERNEL = {torch.ops.aten.detach.default, torch.ops.aten.empty.memory_format, torch.ops.aten.empty_like.default,
              torch.ops.aten.empty_strided.default}  # a view of the same data, or memory not yet written


class _Kernels(TorchDispatchMode):
    """Counts the aten ops that would launch a kernel on a GPU (views, detach and empty tensors launch none). An op
    is counted once, whatever it calls inside: ``torch.multinomial``, counted as one, launches about fifteen
    (its input checks: ``aminmax``, comparisons, ``sum``, ``any``, ``_assert_async``; then ``exponential_``, a
    division and ``argmax``: torch 2.13's profiler on the CPU), which is why the loops draw with the last three
    themselves (``pgcourse.rl.networks.exponential_race``)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view and func not in _NO_KERNEL:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.skipif(__import__("fake_cuda").unusable_reason() is not None, reason="the fake GPU cannot run here")
@pytest.mark.parametrize("agents", [1, 4])
def test_on_the_fake_gpu_an_env_step_launches_at_most_50_kernels(agents, monkeypatch):
    """Issue 44, item 5: the kernels of one env step of PPO on CartPole, counted (not timed) over a whole rollout on
    the fake CUDA device: policy and critic, sampling, the physics (fused multiply-adds off the float64 path), the
    autoreset (start states drawn once per rollout) and the statistics. It was 93, then 85; 46 when this was written.
    Many agents add one draw each (each agent samples from its own generator)."""
    from fake_cuda import fake_cuda
    from pgcourse.rl.algorithms import rollout
    counted: list[float] = []
    collect = rollout._collect_rollout

    def counting(agents_, n_steps, running):
        if agents_.trainers[0].num_updates != 1:  # the second rollout: everything made once is made
            return collect(agents_, n_steps, running)
        kernels = _Kernels()
        with kernels:
            result = collect(agents_, n_steps, running)
        counted.append(kernels.count / n_steps)
        return result
    monkeypatch.setattr(rollout, "_collect_rollout", counting)
    settings = dict(env_backend="torch", device="cuda", num_envs=16, n_steps=32, total_steps=16 * 32 * 3,
                    minibatch_size=128, progress=False)
    with fake_cuda():
        if agents == 1:
            pg.train("ppo", "CartPole-v1", seed=0, **settings)
        else:
            pg.train_many("ppo", "CartPole-v1", seeds=list(range(agents)), **settings)
    print(f"{agents} agent(s): {counted[0]:.2f} kernels per env step")
    assert len(counted) == 1 and counted[0] <= 50 + (agents - 1), counted


@pytest.mark.skipif(__import__("fake_cuda").unusable_reason() is not None, reason="the fake GPU cannot run here")
def test_on_the_fake_gpu_a_gradient_step_launches_at_most_100_kernels(monkeypatch):
    """Issue 44, item 5: at most 100 kernels per PPO gradient step (CartPole, the course's settings), counted on the
    fake CUDA device: 161, then 177 with the agent axis, 144 (clipping through CUDA's multi-tensor kernels, one
    agent's rows and losses as views), 132 (Adam in torch's fused kernel on CUDA), now 100: the clipped surrogate's
    min written as a where whose clipped branch passes no gradient (14 fewer: the same numbers and gradient, bit
    for bit on the CPU), the entropy term left out where it is 0 (ent_coef 0 with the reference piece: 12 fewer),
    and the gradient clip folded into the fused Adam kernel as its gradient divisor (6 fewer)."""
    from fake_cuda import fake_cuda
    from pgcourse.rl.algorithms.agents import OneAgent
    minibatches, counted = OneAgent.minibatches, []

    def counting(self, rows):
        chunks = minibatches(self, rows)
        if self.trainer.num_updates != 1:
            return chunks

        def each():
            for chunk in chunks:
                kernels = _Kernels()
                with kernels:
                    yield chunk  # the loop's body runs here: gather, losses, backward, clipping, Adam, diagnostics
                counted.append(kernels.count)
        return each()
    monkeypatch.setattr(OneAgent, "minibatches", counting)
    with fake_cuda():
        pg.train("ppo", "CartPole-v1", seed=0, env_backend="torch", device="cuda", num_envs=16, n_steps=32,
                 total_steps=16 * 32 * 3, minibatch_size=128, update_epochs=1, progress=False)
    assert len(counted) == 4 and max(counted) <= 100, counted


@pytest.mark.skipif(__import__("fake_cuda").unusable_reason() is not None, reason="the fake GPU cannot run here")
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_on_a_cuda_device_the_clip_folded_into_adam_is_clip_grad_norm_then_adam(max_norm):
    """On CUDA ``clip_and_step`` divides the gradients by max(1, (|g| + 1e-6) / max_norm) inside the fused Adam kernel
    instead of multiplying them by clip_grad_norm_'s min(1, max_norm / (|g| + 1e-6)): the same step up to rounding
    when it clips (a norm far above max_norm), and bit for bit when it does not (a divisor of exactly 1); the norm
    returned is the one before clipping, and the gradients are left clipped as clip_grad_norm_ leaves them."""
    from fake_cuda import fake_cuda
    from pgcourse.rl.algorithms.optim import LeanAdam
    from pgcourse.rl.algorithms.trainer import Trainer

    with fake_cuda():
        torch.manual_seed(0)
        ours = [torch.randn(64, 4, device="cuda", requires_grad=True), torch.randn(3, device="cuda", requires_grad=True)]
        theirs = [p.detach().clone().requires_grad_(True) for p in ours]
        lean, fused = LeanAdam(ours, lr=3e-3, eps=1e-5), torch.optim.Adam(theirs, lr=3e-3, eps=1e-5, fused=True)
        for step in range(4):
            grads = [10 * torch.randn_like(p) for p in ours]  # a norm of about 50
            for p, q, g in zip(ours, theirs, grads):
                p.grad, q.grad = g.clone(), g.clone()
            norm = Trainer.clip_and_step(lean, ours, max_norm)
            expected_norm = torch.nn.utils.clip_grad_norm_(theirs, max_norm, foreach=True)
            fused.step()
            assert torch.equal(norm.cpu(), expected_norm.cpu())
            for p, q in zip(ours, theirs):  # the gradients left clipped, as clip_grad_norm_ leaves them
                torch.testing.assert_close(p.grad.cpu(), q.grad.cpu(), rtol=1e-6, atol=0)
            for p, q in zip(ours, theirs):
                if max_norm > 1e5:
                    assert torch.equal(p.detach().cpu(), q.detach().cpu()), step
                else:
                    torch.testing.assert_close(p.detach().cpu(), q.detach().cpu(), rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(__import__("fake_cuda").unusable_reason() is not None, reason="the fake GPU cannot run here")
def test_on_a_cuda_device_lean_adam_is_torchs_fused_adam():
    """On CUDA LeanAdam takes torch's fused kernel (one launch): the parameters move as torch.optim.Adam(fused=True)
    moves them, step after step, with a learning rate changed between steps (annealing) and across a state_dict
    round trip (a resumed run)."""
    from fake_cuda import fake_cuda
    from pgcourse.rl.algorithms.optim import LeanAdam

    with fake_cuda():
        torch.manual_seed(0)
        ours = [torch.randn(64, 4, device="cuda", requires_grad=True), torch.randn(3, device="cuda", requires_grad=True)]
        theirs = [p.detach().clone().requires_grad_(True) for p in ours]
        lean, fused = LeanAdam(ours, lr=3e-3, eps=1e-5), torch.optim.Adam(theirs, lr=3e-3, eps=1e-5, fused=True)
        for step in range(6):
            grads = [torch.randn_like(p) for p in ours]
            for params, optimizer in ((ours, lean), (theirs, fused)):
                for p, g in zip(params, grads):
                    p.grad = g.clone()
                optimizer.param_groups[0]["lr"] = 3e-3 * (1 - step / 6)
                optimizer.step()
            if step == 2:  # a resumed run: a new optimiser from the state dict
                state = lean.state_dict()
                lean = LeanAdam(ours, lr=3e-3, eps=1e-5)
                lean.load_state_dict(state)
            for p, q in zip(ours, theirs):
                assert torch.equal(p.detach().cpu(), q.detach().cpu()), step
