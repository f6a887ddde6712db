"""Tests that pin the definitions of the sandbox kit's loop stages (issue 45, item 5):
``pgcourse/classroom/sandboxed/loops.py``.

The grading tests play the loop stages end to end, through the sandbox; they test paths. These state, on tiny
objects built here (scripted envs, a few CartPole steps, one-layer networks), what each piece of the module is
defined to do: the kit's networks and their initial gains, the minibatches, the CartPole vector env and which of
its steps count, what the recorders record, how a case's description becomes live objects and a call's record.
No sandbox, no worker process, no training.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
import types

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import pgcourse.classroom.sandboxed.episode_cases  # noqa: F401 - registers Part B's probe envs
from pgcourse.classroom.sandboxed import loops

SQRT2 = math.sqrt(2.0)


# -- small objects ---------------------------------------------------------------------------------------------------
class Scripted(gym.vector.VectorEnv):
    """A vector env playing given rows ``(rewards, terminated, truncated)``, one per ``step``; its observations are
    the step number (``t``) in every entry, so what came before or after a step is visible."""

    def __init__(self, rows, obs_dim: int = 4):
        self.rows = [tuple(np.asarray(part) for part in row) for row in rows]
        self.num_envs = len(self.rows[0][0])
        self.obs_dim = obs_dim
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Discrete(2)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.num_envs, obs_dim), np.float32)
        self.action_space = gym.spaces.MultiDiscrete([2] * self.num_envs)
        self.t = 0
        self.seeds: list = []

    def _obs(self):
        return np.full((self.num_envs, self.obs_dim), self.t, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        self.seeds.append(seed)
        return self._obs(), {}

    def step(self, actions):
        rewards, terminated, truncated = self.rows[self.t]
        self.t += 1
        return self._obs(), rewards.astype(float), terminated.astype(bool), truncated.astype(bool), {}


def rows(*steps):
    """Rows from ``(rewards, flags)`` pairs, a flag per env: "." nothing, "T" terminated, "R" truncated."""
    return [(r, [f == "T" for f in flags], [f == "R" for f in flags]) for r, flags in steps]


class Tick(gym.Env):
    """One env: observation [t, -t], reward t/2 at step t; terminated at the steps in ``ends``, truncated at those
    in ``cuts`` (counted since the last reset)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, ends=(), cuts=()):
        self.ends, self.cuts, self.t = set(ends), set(cuts), 0

    def _obs(self):
        return np.array([self.t, -self.t], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), self.t / 2, self.t in self.ends, self.t in self.cuts, {}


def linear(in_dim: int, out_dim: int, weight, bias) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return layer


def rng_state(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return generator.get_state()


def first_draws(seed: int, n: int) -> torch.Tensor:
    return torch.rand(n, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def blocked():
    """A stand-in for the blocked course package in ``sys.modules``, as in the sandbox (the real package's entries
    out of the way, restored after)."""
    ours = lambda name: name == "pgcourse" or name.startswith("pgcourse.")  # noqa: E731
    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in saved:
        del sys.modules[name]
    fake = types.ModuleType("pgcourse", "blocked")
    sys.modules["pgcourse"] = fake
    yield fake
    for name in [name for name in sys.modules if ours(name) and name not in saved]:
        del sys.modules[name]
    sys.modules.update(saved)


# -- 1. the module's constants ---------------------------------------------------------------------------------------
def test_the_kit_names_the_marker_and_the_rollout_fields():
    """The kit offers exactly four names; a value that is no data is reported with the prefix the stage checks read
    (``pgcourse.course.checks.stages.NOT_A_TENSOR``); a Rollout has its nine [T, N] fields in the package's order;
    Part B's probe names map to the probe envs registered by ``episode_cases``; the optimiser settings recorded."""
    from pgcourse.classroom.sandboxed import episode_cases
    from pgcourse.course.checks import stages

    assert loops.KIT_NAMES == ("CategoricalPolicy", "ValueNet", "Rollout", "minibatch_indices")
    assert loops.NOT_A_TENSOR == "not a tensor: " == stages.NOT_A_TENSOR
    assert loops.ROLLOUT_FIELDS == ("obs", "actions", "log_probs", "values", "next_values", "rewards", "terminated",
                                    "truncated", "valid")
    assert loops.PART_B_PROBES == {"probe-terminates": "OneStateTerminatingProbe-v0",
                                   "probe-time-limit": "OneStateTimeLimitProbe-v0"} == episode_cases.PART_B_PROBES
    assert loops.OPTIMIZER_SETTINGS == ("lr", "eps", "betas", "weight_decay", "amsgrad", "maximize")
    assert issubclass(loops.SpecError, ValueError)


# -- 2. the kit's networks -------------------------------------------------------------------------------------------
def linears(module: nn.Module) -> list[nn.Linear]:
    return [layer for layer in module.net if isinstance(layer, nn.Linear)]


def assert_orthogonal(layer: nn.Linear, gain: float) -> None:
    """Orthogonal with ``gain``: every singular value of the weight is ``gain``; the bias is zero."""
    singular = torch.linalg.svdvals(layer.weight.detach().double())
    assert torch.allclose(singular, torch.full_like(singular, gain), rtol=1e-5, atol=0), (gain, singular)
    assert torch.count_nonzero(layer.bias).item() == 0


@pytest.mark.parametrize("hidden", [(7, 6), (3,), (9, 2, 5), ()], ids=["two", "one", "three", "none"])
def test_the_policy_is_a_tanh_mlp_with_orthogonal_gains_sqrt2_and_0_01(hidden):
    """``CategoricalPolicy(obs_dim, n_actions, hidden)``: Linear + Tanh per hidden width (orthogonal, gain sqrt 2,
    zero bias), then a Linear to ``n_actions`` logits (orthogonal, gain 0.01, zero bias); no hidden layer: that one
    Linear alone."""
    torch.manual_seed(0)
    policy = loops.CategoricalPolicy(5, 3, hidden)
    widths = [5, *hidden, 3]
    assert [(layer.in_features, layer.out_features) for layer in linears(policy)] == list(zip(widths, widths[1:]))
    assert [type(layer).__name__ for layer in policy.net] == ["Linear", "Tanh"] * len(hidden) + ["Linear"]
    for layer in linears(policy)[:-1]:
        assert_orthogonal(layer, SQRT2)
    assert_orthogonal(linears(policy)[-1], 0.01)
    assert policy.kind == "discrete"


@pytest.mark.parametrize("hidden", [(7, 6), (4,), ()])
def test_the_value_net_is_a_tanh_mlp_with_output_gain_one(hidden):
    """``ValueNet(obs_dim, hidden)``: the same body (gain sqrt 2), one output (orthogonal gain 1.0, zero bias)."""
    torch.manual_seed(1)
    critic = loops.ValueNet(3, hidden)
    widths = [3, *hidden, 1]
    assert [(layer.in_features, layer.out_features) for layer in linears(critic)] == list(zip(widths, widths[1:]))
    assert [type(layer).__name__ for layer in critic.net] == ["Linear", "Tanh"] * len(hidden) + ["Linear"]
    for layer in linears(critic)[:-1]:
        assert_orthogonal(layer, SQRT2)
    assert_orthogonal(linears(critic)[-1], 1.0)


def test_the_networks_default_to_two_hidden_layers_of_64():
    """With no ``hidden_sizes``, both networks have two hidden layers of 64."""
    policy, critic = loops.CategoricalPolicy(4, 2), loops.ValueNet(4)
    assert [layer.out_features for layer in linears(policy)] == [64, 64, 2]
    assert [layer.out_features for layer in linears(critic)] == [64, 64, 1]


@pytest.mark.parametrize("batch", [1, 3])
def test_the_networks_compute_logits_and_values_of_a_batch(batch):
    """The policy maps obs [B, obs_dim] to logits [B, n_actions]; the critic to values [B] (a batch of one: [1],
    not a scalar), both ``tanh(x W1^T + b1) W2^T + b2``."""
    torch.manual_seed(2)
    policy, critic = loops.CategoricalPolicy(2, 3, (4,)), loops.ValueNet(2, (4,))
    x = torch.linspace(-1, 1, 2 * batch).reshape(batch, 2)
    for net, out in ((policy, 3), (critic, 1)):
        first, last = linears(net)
        by_hand = torch.tanh(x @ first.weight.T + first.bias) @ last.weight.T + last.bias
        found = net(x)
        assert found.shape == ((batch, 3) if out == 3 else (batch,))
        assert torch.allclose(found.reshape(batch, out), by_hand, atol=1e-6)


# -- 3. minibatch_indices --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size, minibatch_size, sizes", [
    (10, 4, [4, 3, 3]), (8, 4, [4, 4]), (9, 4, [3, 3, 3]), (3, 5, [3]), (5, 5, [5]), (1, 1, [1]), (4, 1, [1] * 4)])
def test_minibatches_are_ceil_b_over_m_near_equal_parts_of_one_permutation(batch_size, minibatch_size, sizes):
    """``ceil(batch_size / minibatch_size)`` minibatches, sizes differing by at most one (larger first), that
    concatenate to ``torch.randperm(batch_size, generator)``."""
    found = loops.minibatch_indices(batch_size, minibatch_size, torch.Generator().manual_seed(3))
    assert [len(part) for part in found] == sizes
    assert torch.equal(torch.cat(found), torch.randperm(batch_size, generator=torch.Generator().manual_seed(3)))
    assert all(part.device.type == "cpu" for part in found)


def test_minibatches_without_a_generator_use_torchs_global_one():
    """No generator: the permutation is torch's global generator's."""
    torch.manual_seed(4)
    expected = torch.randperm(6)
    torch.manual_seed(4)
    assert torch.equal(torch.cat(loops.minibatch_indices(6, 4, device="cpu")), expected)


@pytest.mark.parametrize("batch_size, minibatch_size", [(0, 4), (4, 0), (-1, 2), (0, 0)])
def test_minibatches_of_nothing_are_refused_naming_both_sizes(batch_size, minibatch_size):
    """A batch or minibatch size below 1 is a ValueError naming the rule and both values."""
    with pytest.raises(ValueError) as error:
        loops.minibatch_indices(batch_size, minibatch_size)
    assert str(error.value) == (f"batch_size and minibatch_size must be >= 1, got {batch_size} and "
                                f"{minibatch_size}")


# -- 4. install_kit ---------------------------------------------------------------------------------------------------
def test_install_kit_offers_the_allowed_kit_names_in_their_order(blocked):
    """It offers the allowed names that are kit names, in the order allowed lists them (others ignored)."""
    assert loops.install_kit(["Rollout", "train_ppo", "ValueNet", "rollout"]) == ["Rollout", "ValueNet"]


@pytest.mark.parametrize("allowed", [[], ["compute_gae"], ["categoricalpolicy"]])
def test_install_kit_with_no_kit_name_changes_nothing(blocked, allowed):
    """Nothing allowed of the kit (case counts): nothing offered, no module installed."""
    before = dict(sys.modules)
    assert loops.install_kit(allowed) == []
    assert sys.modules == before and not hasattr(blocked, "rl")


def test_install_kit_without_the_course_package_offers_nothing(blocked):
    """Without a (blocked) course package in ``sys.modules`` there is nothing to offer it through."""
    del sys.modules["pgcourse"]
    assert loops.install_kit(list(loops.KIT_NAMES)) == []
    assert not any(name == "pgcourse" or name.startswith("pgcourse.") for name in sys.modules)


def test_install_kit_offers_everything_under_both_names(blocked):
    """All four allowed: each under its module, both as ``pgcourse.X`` and ``pgcourse.rl.X``, in ``sys.modules``
    and as attributes of their parents; ``minibatch_indices`` also at the package's top level."""
    assert loops.install_kit(list(loops.KIT_NAMES)) == list(loops.KIT_NAMES)
    rl = sys.modules["pgcourse.rl"]
    assert blocked.rl is rl
    for parent, prefix in ((blocked, "pgcourse."), (rl, "pgcourse.rl.")):
        networks = sys.modules[f"{prefix}networks"]
        assert parent.networks is networks
        assert networks.CategoricalPolicy is loops.CategoricalPolicy and networks.ValueNet is loops.ValueNet
        algorithms, rollout = sys.modules[f"{prefix}algorithms"], sys.modules[f"{prefix}algorithms.rollout"]
        assert parent.algorithms is algorithms and algorithms.rollout is rollout and rollout.Rollout is loops.Rollout
        batching = sys.modules[f"{prefix}batching"]
        assert parent.batching is batching and batching.minibatch_indices is loops.minibatch_indices
        assert networks.__name__ == f"{prefix}networks" and networks.__path__ == []
        assert networks.__doc__ == f"{prefix}networks: what the grader offers of it in the sandbox"
    assert blocked.minibatch_indices is loops.minibatch_indices


@pytest.mark.parametrize("name", loops.KIT_NAMES)
def test_install_kit_offers_only_what_is_allowed(blocked, name):
    """One name allowed: only its module holds it; the modules of the other names are not installed."""
    assert loops.install_kit([name]) == [name]
    prefixes = ("pgcourse.", "pgcourse.rl.")
    networks = [sys.modules.get(f"{p}networks") for p in prefixes]
    if name in ("CategoricalPolicy", "ValueNet"):
        other = {"CategoricalPolicy": "ValueNet", "ValueNet": "CategoricalPolicy"}[name]
        assert all(getattr(m, name) is getattr(loops, name) and other not in vars(m) for m in networks)
    else:
        assert networks == [None, None] and "networks" not in vars(blocked)
    assert all((f"{p}algorithms.rollout" in sys.modules) == (name == "Rollout") for p in prefixes)
    assert all((f"{p}algorithms" in sys.modules) == (name == "Rollout") for p in prefixes)
    assert all((f"{p}batching" in sys.modules) == (name == "minibatch_indices") for p in prefixes)
    assert ("minibatch_indices" in vars(blocked)) == (name == "minibatch_indices")
    assert sys.modules["pgcourse.rl"] is blocked.rl


def test_the_kit_modules_are_of_the_blocked_packages_kind(blocked):
    """Each kit module is of the blocked package's module type, so any name it does not offer behaves as the
    blocked package's do (here: an ImportError); a blocked package that is no module gives plain modules."""
    class Blocked(types.ModuleType):
        def __getattr__(self, name):
            raise ImportError(f"blocked: {name}")

    sys.modules["pgcourse"] = Blocked("pgcourse")
    loops.install_kit(["ValueNet"])
    networks = sys.modules["pgcourse.networks"]
    assert type(networks) is Blocked and type(sys.modules["pgcourse.rl"]) is Blocked
    with pytest.raises(ImportError, match="blocked: CategoricalPolicy"):
        networks.CategoricalPolicy  # noqa: B018
    sys.modules["pgcourse"] = types.SimpleNamespace()
    loops.install_kit(["ValueNet"])
    assert type(sys.modules["pgcourse.networks"]) is types.ModuleType


# -- 5. the CartPole vector envs -------------------------------------------------------------------------------------
def starts(seed: int, draws: int = 1, bound: float = 0.05) -> np.ndarray:
    """The ``draws``-th start state of an env seeded with ``seed``: gymnasium's seeding is PCG64 on the seed."""
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        state = rng.uniform(-bound, bound, size=4)
    return state.astype(np.float32)


@pytest.mark.parametrize("seed", [10, 0])
def test_a_seeded_reset_gives_env_i_the_start_of_seed_plus_i(seed):
    """``reset(seed=s)``: env i starts from its own generator seeded with ``s + i`` (as a SyncVectorEnv's; 0 is a
    seed like any other)."""
    envs = loops.cartpole_envs(3, None, fast=True)
    obs, _ = envs.reset(seed=seed)
    assert obs.dtype == np.float32
    np.testing.assert_array_equal(obs, np.stack([starts(seed), starts(seed + 1), starts(seed + 2)]))


@pytest.mark.parametrize("seeds", [[7, 3], (7, 3)], ids=["list", "tuple"])
def test_a_reset_with_one_seed_per_env_seeds_each(seeds):
    """A list or tuple of seeds gives env i the i-th."""
    envs = loops.cartpole_envs(2, None, fast=True)
    np.testing.assert_array_equal(envs.reset(seed=seeds)[0], np.stack([starts(7), starts(3)]))


def test_a_reset_without_a_seed_continues_each_envs_stream():
    """An env given no seed (``None``, or ``None`` in the list) draws its next start from its own generator."""
    envs = loops.cartpole_envs(2, None, fast=True)
    envs.reset(seed=5)
    np.testing.assert_array_equal(envs.reset()[0], np.stack([starts(5, 2), starts(6, 2)]))
    np.testing.assert_array_equal(envs.reset(seed=[None, 9])[0], np.stack([starts(5, 3), starts(9)]))


def test_an_unseeded_first_reset_draws_a_start_within_the_bounds():
    """Never seeded: each env gets a generator of its own, its start within [-0.05, 0.05]."""
    obs = loops.cartpole_envs(2, None, fast=True).reset()[0]
    assert np.all(np.abs(obs) <= 0.05) and not np.array_equal(obs[0], obs[1])


@pytest.mark.parametrize("seeds", [[1], [1, 2, 3], []])
def test_a_reset_with_the_wrong_number_of_seeds_is_refused(seeds):
    """As many seeds as envs, or a ValueError naming both counts."""
    envs = loops.cartpole_envs(2, None, fast=True)
    with pytest.raises(ValueError, match=f"^{len(seeds)} seeds for 2 sub-environments$"):
        envs.reset(seed=seeds)


def test_reset_bounds_apply_to_that_reset_only():
    """``options={"low", "high"}`` bound that reset's starts; a restart after an episode ends draws within the
    default [-0.05, 0.05] again, from the env's own generator."""
    envs = loops.cartpole_envs(1, 3, fast=True)
    obs, _ = envs.reset(seed=2, options={"low": -0.3, "high": 0.3})
    np.testing.assert_array_equal(obs[0], starts(2, bound=0.3))
    assert (envs.low, envs.high) == (-0.05, 0.05)
    for _ in range(3):
        obs, *_ = envs.step(np.array([0]))
    obs, reward, terminated, truncated, _ = envs.step(np.array([0]))  # the NEXT_STEP restart
    rng = np.random.default_rng(2)
    rng.uniform(-0.3, 0.3, size=4)
    np.testing.assert_array_equal(obs[0], rng.uniform(-0.05, 0.05, size=4).astype(np.float32))
    assert reward.tolist() == [0.0] and not terminated[0] and not truncated[0]


def test_the_fast_envs_play_a_sync_vector_envs_episodes_bit_for_bit():
    """The fast vector env gives the same observations, rewards (float64) and flags as a SyncVectorEnv of
    CartPole-v1 with NEXT_STEP autoreset, across terminations, truncations (a time limit of 12) and restarts."""
    fast, sync = loops.cartpole_envs(2, 12, fast=True), loops.cartpole_envs(2, 12, fast=False)
    np.testing.assert_array_equal(fast.reset(seed=4)[0], sync.reset(seed=4)[0])
    ended = {"terminated": 0, "truncated": 0}
    for t in range(30):
        actions = np.array([1, t % 2])
        a, b = fast.step(actions), sync.step(actions)
        for x, y in zip(a[:4], b[:4]):
            np.testing.assert_array_equal(x, y)
        assert a[1].dtype == np.float64
        ended["terminated"] += int(a[2].sum())
        ended["truncated"] += int(a[3].sum())
    assert ended["terminated"] > 0 and ended["truncated"] > 0


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize("time_limit, limit", [(None, 500), (7, 7)])
def test_cartpole_envs_are_cartpole_v1_with_the_time_limit(fast, time_limit, limit):
    """``cartpole_envs(n, time_limit, fast)``: n CartPole-v1 envs, episodes cut at ``time_limit`` (None: 500); the
    fast one gymnasium's vector CartPole, the other a SyncVectorEnv with NEXT_STEP autoreset."""
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    envs = loops.cartpole_envs(3, time_limit, fast)
    assert envs.num_envs == 3
    if fast:
        assert isinstance(envs, CartPoleVectorEnv) and envs.spec.id == "CartPole-v1"
        assert envs.max_episode_steps == limit
    else:
        assert isinstance(envs, gym.vector.SyncVectorEnv)
        assert envs.autoreset_mode == gym.vector.AutoresetMode.NEXT_STEP
        assert [env.spec.id for env in envs.envs] == ["CartPole-v1"] * 3
        assert [env.spec.max_episode_steps for env in envs.envs] == [limit] * 3


@pytest.mark.parametrize("fast", [True, False])
def test_a_time_limit_truncates_at_that_step(fast):
    """An episode is truncated on its ``time_limit``-th step, not before."""
    envs = loops.cartpole_envs(1, 2, fast)
    envs.reset(seed=0)
    assert [bool(envs.step(np.array([t % 2]))[3][0]) for t in range(2)] == [False, True]


# -- 6. the counting envs: what counts as a transition and an ended episode ------------------------------------------
def counting(steps, first_episode_only=False):
    envs = loops._counting_envs_class()(Scripted(rows(*steps)), first_episode_only=first_episode_only)
    envs.reset()
    for _ in steps:
        envs.step(np.zeros(envs.num_envs, dtype=np.int64))
    return envs


def test_every_step_counts_but_the_reset_step_after_an_episode_ends():
    """Every step of every env is a transition except the step right after its episode ended (NEXT_STEP
    autoreset), whose reward and flags count for nothing; an episode (return, length, transitions so far) is
    recorded on the step it ends, by termination or truncation, envs of one step in env order."""
    envs = counting([
        ([1, 2], ".."),
        ([1, 2], "T."),   # env 0 terminates: return 2, length 2
        ([5, 2], ".R"),   # env 0 restarting (its reward ignored); env 1 truncated: 6, 3
        ([1, 7], ".."),   # env 1 restarting
        ([1, 1], ".T"),   # env 1 terminates after one step
        ([1, 1], "TT"),   # env 1 restarting (its flag ignored); env 0 terminates: 3, 3
        ([4, 3], ".."),   # both restarting: nothing counts
        ([2, 3], "RT"),   # both end after one step, recorded in env order
    ])
    assert envs.steps == 8
    assert envs.transitions_at_step == [2, 4, 5, 6, 8, 9, 9, 11]
    assert envs.transitions == 11
    assert envs.episodes == [(2.0, 2, 4), (6.0, 3, 5), (1.0, 1, 8), (3.0, 3, 9), (2.0, 1, 11), (3.0, 1, 11)]
    assert all(type(r) is float and type(n) is int for r, n, _ in envs.episodes)


def test_a_reset_starts_every_env_afresh():
    """A reset ends the restarting of envs whose episode just ended (their next step counts) and drops the
    returns and lengths of episodes under way."""
    envs = counting([([1, 1], "T."), ([1, 1], "..")])
    envs.reset()
    for reward, flags in (([3, 3], ".."), ([3, 3], "TT")):
        envs.env.rows.append((np.array(reward), np.array([f == "T" for f in flags]), np.zeros(2, bool)))
        envs.step(np.zeros(2, dtype=np.int64))
    assert envs.transitions_at_step == [2, 3, 5, 7]
    assert envs.episodes == [(1.0, 1, 2), (6.0, 2, 7), (6.0, 2, 7)]


def test_first_episode_only_counts_each_envs_first_episode_at_the_flush_in_env_order():
    """``first_episode_only``: only each env's first episode since the reset counts; the batch's episodes are
    recorded at the next reset (or flush) in env order, their transitions added one episode at a time; nothing
    counts as a transition before that."""
    envs = counting([
        ([1, 1], ".."),
        ([1, 1], ".T"),   # env 1's first episode: 2, 2
        ([1, 1], "T."),   # env 0's first episode: 3, 3
        ([1, 1], "TT"),   # env 0 restarting, env 1 done for this batch
        ([9, 9], "TR"),   # both done for this batch: nothing counts
    ], first_episode_only=True)
    assert envs.transitions_at_step == [0, 0, 0, 0, 0] and envs.episodes == [] and envs.transitions == 0
    envs.reset()
    assert envs.episodes == [(3.0, 3, 3), (2.0, 2, 5)] and envs.transitions == 5
    envs.flush()
    assert envs.episodes == [(3.0, 3, 3), (2.0, 2, 5)]  # a flush records a batch's episodes once


def test_first_episode_only_counts_again_after_a_reset():
    """After a reset (which records the batch), each env's next first episode counts."""
    envs = counting([([1, 1], "TT"), ([1, 1], "TT")], first_episode_only=True)
    envs.reset()
    envs.env.rows.append((np.array([2.0, 5.0]), np.array([False, True]), np.zeros(2, bool)))
    envs.step(np.zeros(2, dtype=np.int64))
    envs.flush()
    assert envs.episodes == [(1.0, 1, 1), (1.0, 1, 2), (5.0, 1, 3)]
    assert envs.steps == 3 and envs.transitions_at_step == [0, 0, 2]


# -- 7. the recording envs -------------------------------------------------------------------------------------------
def test_recording_envs_record_each_step_with_the_observation_it_was_chosen_on():
    """Each step's row: the observation before it (float32), the actions (int64, [N]), rewards (float32) and
    flags (bool); each reset: [steps so far, whether it was seeded]."""
    envs = loops._recording_envs_class()(Scripted(rows(([1, 2], ".."), ([3, 4], "T."), ([5, 6], ".R"))))
    envs.reset(seed=3)
    envs.step([[1], [0]])
    envs.step(np.array([0, 1]))
    envs.reset()
    envs.step([1, 1])
    data = envs.data()
    assert data["resets"] == [[0, True], [2, False]] and envs.clock == 3
    assert torch.equal(data["obs"], torch.tensor([[[0.0] * 4] * 2, [[1.0] * 4] * 2, [[2.0] * 4] * 2]))
    assert torch.equal(data["actions"], torch.tensor([[1, 0], [0, 1], [1, 1]]))
    assert torch.equal(data["rewards"], torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]))
    assert torch.equal(data["terminated"], torch.tensor([[False, False], [True, False], [False, False]]))
    assert torch.equal(data["truncated"], torch.tensor([[False, False], [False, False], [False, True]]))
    assert [data[k].dtype for k in ("obs", "actions", "rewards", "terminated", "truncated")] == \
        [torch.float32, torch.int64, torch.float32, torch.bool, torch.bool]


def test_recording_envs_with_no_step_give_empty_rows_of_n_envs():
    """No step played: every row table is empty, observations [0, N, 4], the others [0, N]."""
    envs = loops._recording_envs_class()(Scripted(rows(([1, 2, 3], "..."))))
    envs.reset()
    data = envs.data()
    assert data["resets"] == [[0, False]]
    assert data["obs"].shape == (0, 3, 4) and data["obs"].dtype == torch.float32
    assert [tuple(data[k].shape) for k in ("actions", "rewards", "terminated", "truncated")] == [(0, 3)] * 4


# -- 8. the optimiser step recorder ----------------------------------------------------------------------------------
def test_the_step_recorder_records_before_after_grad_settings_and_clock():
    """Each step: the optimiser's class name, its number of groups, settings of its first group (lr, eps, betas as
    floats, flags as bools; only those it has), the env step (the clock's value), the parameters before and after,
    the gradients (zeros for a parameter without one)."""
    layer = linear(2, 1, [[1.0, 2.0]], [0.5])
    other = nn.Parameter(torch.tensor([3.0]))
    optimizer = torch.optim.SGD([{"params": list(layer.parameters())}, {"params": [other], "lr": 9.0}], lr=0.25)
    clock = [7]
    layer(torch.tensor([[1.0, -1.0]])).sum().backward()
    with loops.StepRecorder(lambda: clock[0]) as recorder:
        optimizer.step()
    (step,) = recorder.steps
    assert step["optimizer"] == "SGD" and step["groups"] == 2 and step["env_step"] == 7 and step["kept"]
    assert step["settings"] == {"lr": 0.25, "weight_decay": 0.0, "maximize": False}
    assert type(step["settings"]["lr"]) is float and type(step["settings"]["maximize"]) is bool
    assert [t.tolist() for t in step["before"]] == [[[1.0, 2.0]], [0.5], [3.0]]
    assert [t.tolist() for t in step["grad"]] == [[[1.0, -1.0]], [1.0], [0.0]]
    assert [t.tolist() for t in step["after"]] == [[[0.75, 2.25]], [0.25], [3.0]]
    assert step["ids"] == [id(layer.weight), id(layer.bias), id(other)]
    assert step["optimizer_id"] == id(optimizer)


def test_the_step_recorder_records_adams_settings_with_their_types():
    """Adam's settings: lr, eps, weight decay as floats, betas a tuple of floats, amsgrad and maximize bools."""
    p = nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([p], lr=0.5, betas=(0.8, 0.9), eps=1e-3, amsgrad=True)
    p.grad = torch.ones(2)
    with loops.StepRecorder(lambda: 0) as recorder:
        optimizer.step()
    settings = recorder.steps[0]["settings"]
    assert settings == {"lr": 0.5, "eps": 1e-3, "betas": (0.8, 0.9), "weight_decay": 0.0, "amsgrad": True,
                        "maximize": False}
    assert [type(settings[k]).__name__ for k in loops.OPTIMIZER_SETTINGS] == \
        ["float", "float", "tuple", "float", "bool", "bool"]
    assert all(type(b) is float for b in settings["betas"])


@pytest.mark.parametrize("keep, kept", [(None, [True] * 3), (0, [False] * 3), (1, [True, False, False]),
                                        (2, [True, True, False]), (3, [True] * 3)])
def test_the_step_recorder_keeps_the_tensors_of_the_first_keep_steps(keep, kept):
    """``keep``: the tensors of the first ``keep`` steps only (None: all); every step is counted."""
    p = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p], lr=1.0)
    with loops.StepRecorder(lambda: 0, keep=keep) as recorder:
        for _ in range(3):
            p.grad = torch.ones(1)
            optimizer.step()
    assert [s["kept"] for s in recorder.steps] == kept
    assert [bool(s["before"]) and bool(s["grad"]) and "after" in s for s in recorder.steps] == kept
    assert all(s["before"] == [] and s["grad"] == [] and "after" not in s for s in recorder.steps if not s["kept"])


def test_the_step_recorder_records_only_while_active():
    """Steps before entering and after leaving are not recorded."""
    p = nn.Parameter(torch.zeros(1))
    p.grad = torch.ones(1)
    optimizer = torch.optim.SGD([p], lr=1.0)
    recorder = loops.StepRecorder(lambda: 0)
    optimizer.step()
    with recorder:
        optimizer.step()
    optimizer.step()
    assert len(recorder.steps) == 1


def test_the_step_records_as_data_name_parameters_by_the_returned_module_and_number_optimisers():
    """``data(returned)``: each step's parameters named by the returned module's names for them (None for any
    other tensor, all None when no module was returned); the optimisers numbered in the order they first stepped;
    a step without tensors kept (or whose post-hook never ran) has ``after`` = ``before``."""
    net = linear(1, 1, [[1.0]], [0.0])
    stray = nn.Parameter(torch.zeros(1))
    second = torch.optim.SGD([stray, net.bias], lr=1.0)
    first = torch.optim.SGD([net.weight], lr=1.0)
    for p in (stray, net.weight, net.bias):
        p.grad = torch.ones_like(p)
    with loops.StepRecorder(lambda: 0, keep=2) as recorder:
        second.step()
        first.step()
        second.step()
    recorder._before(first, (), {})  # a step whose post-hook never ran (it raised)
    data = recorder.data(net)
    assert [s["optimizer_number"] for s in data] == [0, 1, 0, 1]
    assert [s["names"] for s in data] == [[None, "bias"], ["weight"], [None, "bias"], ["weight"]]
    assert all("ids" not in s and "optimizer_id" not in s for s in data)
    assert data[2]["after"] == [] and data[3]["after"] is data[3]["before"]
    assert [s["names"] for s in recorder.data("not a module")] == [[None, None], [None], [None, None], [None]]


def test_steps_data_numbers_parameters_in_the_order_they_first_stepped():
    """``steps_data``: each step's parameters as numbers, in the order they first stepped; optimisers too."""
    a, b, c = (nn.Parameter(torch.zeros(1)) for _ in range(3))
    for p in (a, b, c):
        p.grad = torch.ones(1)
    one, two = torch.optim.SGD([b], lr=1.0), torch.optim.SGD([c, a, b], lr=1.0)
    with loops.StepRecorder(lambda: 0, keep=1) as recorder:
        one.step()
        two.step()
        one.step()
    data = loops.steps_data(recorder)
    assert [s["params"] for s in data] == [[0], [1, 2, 0], [0]]
    assert [s["optimizer_number"] for s in data] == [0, 1, 0]
    assert data[1]["after"] == [] and len(data[0]["after"]) == 1
    assert all("ids" not in s and "optimizer_id" not in s for s in data)


# -- 9. the glue recorder (exercise 04b) -----------------------------------------------------------------------------
def glue(num_envs: int = 2):
    envs = loops.cartpole_envs(num_envs, None, fast=True)
    return loops._glue_recorder_class()(envs)


def test_a_step_is_stale_unless_a_module_was_called_on_the_observation_just_returned():
    """A step's actions count as chosen on fresh observations only if some module was called, since the envs last
    returned observations, on exactly those (same shape, same values); otherwise the step's clock is stale."""
    torch.manual_seed(0)
    policy = nn.Linear(4, 2)
    recorder = glue()
    with recorder:
        obs, _ = recorder.envs.reset(seed=0)
        policy(torch.as_tensor(obs))
        recorder.envs.step(np.zeros(2, dtype=np.int64))  # 0: fresh
        old = obs
        obs, *_ = recorder.envs.step(np.zeros(2, dtype=np.int64))  # 1: stale (nothing called)
        policy(torch.as_tensor(old))
        obs, *_ = recorder.envs.step(np.zeros(2, dtype=np.int64))  # 2: stale (called on the previous obs)
        policy(torch.as_tensor(obs[:1]))
        obs, *_ = recorder.envs.step(np.zeros(2, dtype=np.int64))  # 3: stale (called on part of them)
        policy(torch.as_tensor(obs))
        policy(torch.as_tensor(obs[:1]))  # another shape after it: still fed
        recorder.envs.step(np.zeros(2, dtype=np.int64))  # 4: fresh
    policy(torch.as_tensor(obs))  # after the recording: not seen
    data = recorder.data()
    assert data["steps"] == 5 and data["stale"] == [1, 2, 3] and data["stale_count"] == 3
    assert data["resets"] == [[0, 0]]
    assert recorder._handles == []


def test_stale_steps_are_listed_up_to_twenty_and_all_counted():
    """The record lists the first 20 stale steps and counts them all."""
    recorder = glue(1)
    with recorder:
        recorder.envs.reset(seed=1)
        for _ in range(23):
            recorder.envs.step(np.zeros(1, dtype=np.int64))
    data = recorder.data()
    assert data["stale"] == list(range(20)) and data["stale_count"] == 23 and data["steps"] == 23


def test_the_watched_envs_record_each_step_and_reset():
    """Each step: the observation it was chosen on, a copy of the actions, rewards (float32), flags, the new
    observation; each reset: the clock and the seed as data."""
    recorder = glue()
    with recorder:
        obs0, _ = recorder.envs.reset(seed=[3, 4])
        actions = np.array([0, 1])
        obs1, rewards, terminated, truncated, _ = recorder.envs.step(actions)
        actions[:] = 7
        recorder.envs.reset()
    (seen, acted, r, te, tr, new), = recorder.env_steps
    assert np.array_equal(seen.numpy(), obs0) and acted.tolist() == [0, 1] and np.array_equal(new, obs1)
    assert r.dtype == np.float32 and r.tolist() == [1.0, 1.0] and te.tolist() == [False, False]
    assert tr.tolist() == [False, False]
    assert recorder.resets == [[0, "list"], [1, None]]


@pytest.mark.parametrize("seed, data", [(None, None), (True, "True"), (False, "False"), (5, 5), (np.int64(6), 6),
                                        (0, 0), ([1, 2], "list"), ((1,), "tuple"), (2.5, "float"), ("x", "str")])
def test_a_reset_seed_as_data(seed, data):
    """A seed as data: None stays None, a bool its text, an int (numpy's too) the int, anything else its type."""
    found = loops._seed_data(seed)
    assert found == data and type(found) is type(data)


def test_a_seed_of_an_unknown_kind_is_named_by_its_type_cut_to_50_characters():
    """The type's name is cut to 50 characters."""
    long_name = type("T" * 60, (), {})
    assert loops._seed_data(long_name()) == "T" * 50


def test_modules_called_on_observation_batches_and_the_policys_inputs_are_remembered():
    """A call on [B, obs_dim] remembers the module; one that returned [B, n_actions] logits is the policy's, its
    input (once, however often it is called on it) a candidate minibatch of the next actor step."""
    torch.manual_seed(0)
    policy, critic, other, wide = nn.Linear(4, 2), nn.Linear(4, 1), nn.Linear(3, 2), nn.Linear(4, 3)
    recorder = glue()
    x1, x2, x3 = torch.ones(3, 4), torch.zeros(5, 4), torch.full((3, 4), 2.0)
    with recorder:
        policy(x1)
        policy(x1)
        policy(x2)
        policy(x3)                # the shape of x1, other values: another minibatch
        critic(x1)
        wide(torch.full((3, 4), 5.0))  # three outputs: not the logits of two actions
        policy(torch.ones(4))      # not a batch
        other(torch.ones(2, 3))   # not observations
    assert set(recorder.obs_modules) == {id(policy), id(critic), id(wide)}
    assert [x[0, 0].item() for x in recorder._policy_inputs] == [1.0, 0.0, 2.0]


def test_actor_and_critic_steps_are_told_apart_by_their_last_parameters_shape():
    """An optimiser whose last parameter has shape [n_actions] is the actor's: each of its steps records the clock,
    the weights and gradient (zeros where none) before the step and the policy's inputs since its previous step;
    one whose last parameter has shape [1] is the critic's: its weights when it first steps at a clock."""
    torch.manual_seed(0)
    policy, critic = nn.Linear(4, 2), nn.Linear(4, 1)
    actor_opt, critic_opt = torch.optim.SGD(policy.parameters(), lr=0.1), torch.optim.SGD(critic.parameters(), lr=0.1)
    recorder = glue()
    x = torch.ones(3, 4)
    with recorder:
        recorder.envs.reset(seed=0)
        recorder.envs.step(np.zeros(2, dtype=np.int64))
        policy(x).sum().backward()
        theta = torch.cat([policy.weight.detach().reshape(-1), policy.bias.detach()]).clone()
        actor_opt.step()
        actor_opt.step()
        critic(x).sum().backward()
        first = torch.cat([critic.weight.detach().reshape(-1), critic.bias.detach()]).clone()
        critic_opt.step()
        critic_opt.step()
    one, two = recorder.actor_steps
    assert one["clock"] == 1 and torch.equal(one["theta"], theta)
    assert torch.equal(one["grad"], torch.cat([torch.ones(8) * 3.0, torch.full((2,), 3.0)]))
    assert [t.shape for t in one["inputs"]] == [(3, 4)] and two["inputs"] == []
    assert list(recorder.critic_at) == [1] and torch.equal(recorder.critic_at[1], first)


def test_each_optimiser_records_its_clock_lrs_outside_writes_and_whether_it_moved():
    """Per optimiser: its parameters' shapes, the clock and learning rates (one per group) of each step, the steps
    before which its weights were written by something else (listed up to 20, all counted), and whether its
    weights moved from the first step's; the record's ``returned`` names the optimiser whose last weights are the
    returned policy's."""
    torch.manual_seed(0)
    policy, critic = nn.Linear(4, 2), nn.Linear(4, 1)
    still = nn.Linear(4, 3)
    actor_opt = torch.optim.SGD(policy.parameters(), lr=0.1)
    critic_opt = torch.optim.SGD(critic.parameters(), lr=0.2)
    still_opt = torch.optim.SGD(still.parameters(), lr=0.3)  # no gradient: never moves
    recorder = glue()
    with recorder:
        recorder.envs.reset(seed=0)
        critic(torch.ones(2, 4)).sum().backward()
        critic_opt.step()
        recorder.envs.step(np.zeros(2, dtype=np.int64))
        policy(torch.ones(2, 4)).sum().backward()
        actor_opt.step()
        with torch.no_grad():
            policy.bias.add_(1.0)  # written outside the optimiser
        actor_opt.param_groups[0]["lr"] = 0.05
        actor_opt.step()
        actor_opt.step()
        still_opt.step()
    recorder.finish((policy, critic))
    data = recorder.data()
    assert [o["shapes"] for o in data["optimizers"]] == [[[1, 4], [1]], [[2, 4], [2]], [[3, 4], [3]]]
    assert [o["clock"] for o in data["optimizers"]] == [[0], [1, 1, 1], [1]]
    assert data["optimizers"][1]["lr"] == [[0.1], [0.05], [0.05]]
    assert [(o["outside"], o["outside_count"]) for o in data["optimizers"]] == [([], 0), ([1], 1), ([], 0)]
    assert [o["moved"] for o in data["optimizers"]] == [True, True, False]
    assert data["returned"] == 1 and data["ppo_gradient"] is None
    with torch.no_grad():
        policy.bias.add_(1.0)
    for output, returned in ((policy, None), ("policy", None), ((), None), ([critic, policy], 0)):
        fresh = glue()
        fresh.optimizers = recorder.optimizers
        fresh.finish(output)  # a policy whose weights are not the last its optimiser left, no module: None
        assert fresh.returned == returned, output


def test_outside_writes_are_listed_up_to_twenty_and_all_counted():
    """More than 20 outside writes: the first 20 listed, all counted."""
    p = nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([p], lr=1.0)
    recorder = glue()
    with recorder:
        for _ in range(23):
            optimizer.step()
            with torch.no_grad():
                p.add_(1.0)
        optimizer.step()
    record = recorder.data()["optimizers"][0]
    assert record["outside"] == list(range(1, 21)) and record["outside_count"] == 23


def test_the_ppo_gradient_proof_runs_only_with_a_config_and_its_errors_are_data(monkeypatch):
    """``finish(output, config)`` asks the sibling ``ppo_proof`` for its verdict on the record (none without a
    config); an exception there is recorded as "Type: message" (the message cut to 200 characters)."""
    asked = []

    def proof(recorder, config):
        asked.append(config)
        if config == "bad":
            raise RuntimeError("x" * 300)
        return {"checked": 3}

    monkeypatch.setattr(loops, "_ppo_proof", lambda: types.SimpleNamespace(ppo_gradient_proof=proof))
    recorder = glue()
    recorder.finish(None)
    assert recorder.gradient_proof is None and asked == []
    recorder.finish(None, "good")
    assert recorder.gradient_proof == {"checked": 3}
    recorder.finish(None, "bad")
    assert recorder.gradient_proof == {"error": "RuntimeError: " + "x" * 200} and asked == ["good", "bad"]


def test_the_ppo_proof_is_the_sibling_module_imported_or_loaded_from_its_file():
    """Imported as a package's module: its package's ``ppo_proof``; loaded from its file (no package): the
    ``ppo_proof.py`` next to it, loaded once under ``<name>_ppo_proof``."""
    from pgcourse.classroom.sandboxed import ppo_proof

    assert loops._ppo_proof() is ppo_proof
    spec = importlib.util.spec_from_file_location("loops_from_file", loops.__file__)
    copy = importlib.util.module_from_spec(spec)
    sys.modules["loops_from_file"] = copy  # as pgcourse.course.checks.sandbox_code loads it
    try:
        spec.loader.exec_module(copy)
        loaded = copy._ppo_proof()
        assert loaded is not ppo_proof and loaded is sys.modules["loops_from_file_ppo_proof"]
        assert loaded.__file__ == ppo_proof.__file__ and copy._ppo_proof() is loaded
    finally:
        sys.modules.pop("loops_from_file_ppo_proof", None)
        sys.modules.pop("loops_from_file", None)


# -- 10. Part B's recorded envs --------------------------------------------------------------------------------------
def test_recorded_envs_log_steps_final_observations_resets_and_episode_returns():
    """All envs on one clock (steps so far): each step's env, observation before it, first action, reward and
    flags; a step that ends an episode (terminated or truncated) logs [its clock, the final observation] and, if
    the episode began with a reset, [clock after it, env, return]; an episode not begun by a reset has no return."""
    log = loops.EnvLog()
    recorded = loops._recorded_env_class()
    e0, e1 = recorded(Tick(ends={2, 3}), 0, log), recorded(Tick(cuts={1}), 1, log)
    e0.reset(seed=5)
    e1.reset()
    obs, *_ = e0.step(np.array([2]))
    assert obs.tolist() == [1.0, -1.0]  # what the loop sees is unchanged
    e1.step(1)
    e0.step(0)
    e0.step(1)  # ends again, no reset since: a final observation, no return
    assert log.clock == 4
    assert log.resets == [[0, 0, True], [0, 1, False]]
    assert log.final == [[1, [1.0, -1.0]], [2, [2.0, -2.0]], [3, [3.0, -3.0]]]
    assert log.episodes == [[2, 1, 0.5], [3, 0, 1.5]]
    data = log.data()
    assert data["env"].tolist() == [0, 1, 0, 0] and data["actions"].tolist() == [2, 1, 0, 1]
    assert data["obs"].tolist() == [[0.0, 0.0], [0.0, 0.0], [1.0, -1.0], [2.0, -2.0]]
    assert data["rewards"].tolist() == [0.5, 0.5, 1.0, 1.5]
    assert data["terminated"].tolist() == [False, False, True, True]
    assert data["truncated"].tolist() == [False, True, False, False]
    assert data["final"] == log.final and data["resets"] == log.resets and data["episodes"] == log.episodes


def test_an_empty_env_log_gives_typed_empty_rows():
    """No step: every row empty with its kind (observations [0, 1] float32, env and actions int64, rewards float32,
    flags bool), nothing built."""
    data = loops.EnvLog().data()
    assert data["envs_built"] == 0 and data["final"] == data["resets"] == data["episodes"] == []
    assert {k: (tuple(data[k].shape), data[k].dtype) for k in ("env", "obs", "actions", "rewards", "terminated",
                                                                 "truncated")} == {
        "env": ((0,), torch.int64), "obs": ((0, 1), torch.float32), "actions": ((0,), torch.int64),
        "rewards": ((0,), torch.float32), "terminated": ((0,), torch.bool), "truncated": ((0,), torch.bool)}


def test_the_checks_make_envs_numbers_every_env_it_builds_and_maps_the_probe_names():
    """``make_envs(name, num_envs=8)``: recorded envs numbered on from those built before; Part B's probe names
    build the probe envs, any other name ``gymnasium.make(name)``."""
    log = loops.EnvLog()
    make_envs = loops.recording_make_envs(log)
    first = make_envs("CartPole-v1", 2)
    assert [e.index for e in first] == [0, 1] and log.envs_built == 2
    assert all(e.log is log and e.spec.id == "CartPole-v1" for e in first)
    assert make_envs("Acrobot-v1", 1)[0].spec.id == "Acrobot-v1" and log.envs_built == 3
    probes = make_envs("probe-time-limit")
    assert [e.index for e in probes] == list(range(3, 11)) and log.envs_built == 11
    assert probes[0].spec.id == "OneStateTimeLimitProbe-v0"
    assert make_envs("probe-terminates", 1)[0].spec.id == "OneStateTerminatingProbe-v0"


# -- 11. a case's description as live objects ------------------------------------------------------------------------
def test_a_config_is_a_frozen_dataclass_of_its_fields():
    """``make_config(fields, name)``: an instance of a frozen dataclass called ``name`` with those fields."""
    config = loops.make_config({"gamma": 0.9, "n_steps": 4, "é": "u"}, "PPOConfig")
    assert (config.gamma, config.n_steps, config.é) == (0.9, 4, "u")
    assert type(config).__name__ == "PPOConfig" and dataclasses.is_dataclass(config)
    assert [f.name for f in dataclasses.fields(config)] == ["gamma", "n_steps", "é"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.gamma = 1.0
    assert type(loops.make_config({})).__name__ == "Config" and dataclasses.fields(loops.make_config({})) == ()


@pytest.mark.parametrize("fields", [[("a", 1)], None, "a", {"a b": 1}, {"1a": 1}, {"": 1}, {1: 2}, {"a": 1, "b-c": 2}])
def test_a_config_that_is_not_a_dict_of_identifiers_is_a_spec_error(fields):
    """Fields must be a dict whose every key is an identifier string."""
    with pytest.raises(loops.SpecError, match="^bad config$"):
        loops.make_config(fields)


def test_a_network_is_built_from_its_class_sizes_and_weights():
    """``{"class", "obs_dim", "n_actions" (policy only), "hidden_sizes", "state"}``: the kit's network of that class
    and sizes (given as numbers or their text), holding exactly those weights."""
    torch.manual_seed(5)
    source = loops.CategoricalPolicy(3, 2, (4,))
    policy = loops._network({"class": "CategoricalPolicy", "obs_dim": "3", "n_actions": 2, "hidden_sizes": ["4"],
                             "state": source.state_dict()})
    assert type(policy) is loops.CategoricalPolicy and policy is not source
    assert all(torch.equal(a, b) for a, b in zip(policy.state_dict().values(), source.state_dict().values()))
    critic_source = loops.ValueNet(3, (5,))
    critic = loops._network({"class": "ValueNet", "obs_dim": 3, "n_actions": 99, "hidden_sizes": [5],
                             "state": critic_source.state_dict()})
    assert type(critic) is loops.ValueNet
    assert torch.equal(critic.net[0].weight, critic_source.net[0].weight)


def test_a_network_whose_weights_are_incomplete_is_refused():
    """The weights must be the whole network's: a state missing one of its tensors is an error (never a network
    left partly at its random initialisation)."""
    state = loops.ValueNet(3, (4,)).state_dict()
    del state["net.2.bias"]
    with pytest.raises(RuntimeError, match="net.2.bias"):
        loops._network({"class": "ValueNet", "obs_dim": 3, "hidden_sizes": [4], "state": state})


@pytest.mark.parametrize("description", [{"class": "MLP"}, {}, {"class": None}, {"class": "valuenet"}])
def test_a_network_of_an_unknown_class_is_a_spec_error(description):
    """Only the kit's two classes (exact names)."""
    with pytest.raises(loops.SpecError, match="^bad network$"):
        loops._network({**description, "obs_dim": 3, "hidden_sizes": [], "state": {}})


class Holder:
    """An object with some of a Rollout's fields (a learner's own rollout class)."""

    def __init__(self):
        self.obs, self.rewards, self.other = torch.ones(1), [1.0], "x"


@dataclasses.dataclass
class Pair:
    a: object
    b: object


@pytest.mark.parametrize("value", [None, True, 3, 2.5, "s", np.float32(1.5), np.int64(2)])
def test_plain_values_are_their_own_data(value):
    """None, bools, numbers (numpy's too) and strings are data as they are."""
    assert loops._to_data(value) is value


def test_tensors_and_arrays_are_their_own_data():
    """A tensor (its requires_grad kept) or an array is data as it is, the same object."""
    tensor, array = torch.ones(2, requires_grad=True), np.zeros(3)
    assert loops._to_data(tensor) is tensor and loops._to_data(array) is array


def test_containers_dataclasses_modules_and_rollout_likes_become_data():
    """Tuples and lists keep their type; dicts keep their str/int/float/bool keys only; a module is its type name
    and detached weights; a dataclass instance the dict of its fields; an object with some of a Rollout's fields
    the dict of those; anything else "not a tensor: <type>"."""
    assert loops._to_data((1, [2, (3,)])) == (1, [2, (3,)]) and type(loops._to_data((1,))) is tuple
    assert type(loops._to_data([1])) is list
    assert loops._to_data({"a": 1, 2: 2, 2.5: 3, True: 4, None: 5, (1,): 6}) == {"a": 1, 2: 2, 2.5: 3, True: 4}
    layer = linear(1, 1, [[2.0]], [1.0])
    layer.weight.requires_grad_(True)
    data = loops._to_data(layer)
    assert data["module"] == "Linear" and list(data["state"]) == ["weight", "bias"]
    assert data["state"]["weight"].tolist() == [[2.0]] and not data["state"]["weight"].requires_grad
    with torch.no_grad():
        layer.weight.add_(1.0)
    assert data["state"]["weight"].tolist() == [[2.0]]  # a copy
    assert loops._to_data(Pair(1, (object(),))) == {"a": 1, "b": ("not a tensor: object",)}
    assert loops._to_data(Pair) == "not a tensor: type"
    holder = loops._to_data(Holder())
    assert list(holder) == ["obs", "rewards"] and holder["rewards"] == [1.0]
    assert loops._to_data(1j) == "not a tensor: complex" and loops._to_data({1, 2}) == "not a tensor: set"
    long = type("L" * 150, (), {})()
    assert loops._to_data(long) == "not a tensor: " + "L" * 100
    assert loops._to_data(type("M" * 150, (nn.Module,), {})())["module"] == "M" * 100


@pytest.mark.parametrize("container", ["list", "tuple", "dict", "dataclass"])
@pytest.mark.parametrize("depth, innermost", [(8, 1), (9, "not a tensor: int"), (10, "not a tensor: {}")])
def test_data_nested_deeper_than_eight_is_not_followed(container, depth, innermost):
    """A value inside eight containers (lists, tuples, dicts, dataclasses) is data; one deeper (a number or a
    container) is "not a tensor: <type>" in its place."""
    wrap = {"list": lambda v: [v], "tuple": lambda v: (v,), "dict": lambda v: {"k": v},
            "dataclass": lambda v: Pair(v, None)}[container]
    key = {"list": 0, "tuple": 0, "dict": "k", "dataclass": "a"}[container]
    value = 1
    for _ in range(depth):
        value = wrap(value)
    found = loops._to_data(value)
    for _ in range(9 if depth > 8 else 8):
        found = found[key]
    kind = {"list": "list", "tuple": "tuple", "dict": "dict", "dataclass": "Pair"}[container]
    assert found == (innermost.format(kind) if isinstance(innermost, str) else innermost)


def test_arguments_are_values_refs_rollouts_or_earlier_results():
    """An argument is one of ``{"value": x}`` (x), ``{"ref": name}`` (the case's object), ``{"rollout": fields}`` (a
    Rollout of those fields), ``{"returned": [call, part]}`` (an earlier call's result's part, as it is; None when
    that result is no tuple or list or has no such part; negative parts count from the end)."""
    objects = {"envs": object()}
    assert loops._argument({"value": [1, 2]}, objects) == [1, 2]
    assert loops._argument({"ref": "envs"}, objects) is objects["envs"]
    fields = {name: torch.tensor([i]) for i, name in enumerate(loops.ROLLOUT_FIELDS)}
    rollout = loops._argument({"rollout": {**fields, "extra": 1}}, objects)
    assert isinstance(rollout, loops.Rollout) and all(getattr(rollout, n) is fields[n] for n in fields)
    with pytest.raises(KeyError, match="valid"):  # every field is needed: none is left None
        loops._argument({"rollout": {n: fields[n] for n in loops.ROLLOUT_FIELDS if n != "valid"}}, objects)
    results = [("a", "b", "c"), ["x"], "not a tuple"]
    expected = {0: "a", 2: "c", -1: "c", -3: "a", 3: None, -4: None}
    assert {part: loops._argument({"returned": [0, part]}, objects, results) for part in expected} == expected
    assert loops._argument({"returned": ["1", "0"]}, objects, results) == "x"
    assert loops._argument({"returned": [2, 0]}, objects, results) is None


@pytest.mark.parametrize("item, message", [
    ({"returned": [3, 0]}, "no call 3 before this one"), ({"returned": [-1, 0]}, "no call -1 before this one"),
    ({"ref": "policy"}, "unknown object 'policy'"), ({"weird": 1}, "bad argument kind 'weird'"),
    ({"value": 1, "ref": "envs"}, "bad argument"), ({}, "bad argument"), ([("value", 1)], "bad argument")])
def test_a_bad_argument_is_a_spec_error_naming_what_was_wrong(item, message):
    """A call number that is no earlier call, an unknown object, an unknown kind, or not a one-key dict."""
    with pytest.raises(loops.SpecError) as error:
        loops._argument(item, {"envs": 1}, ["r0", "r1", "r2"])
    assert str(error.value) == message


def test_build_makes_networks_optimisers_and_the_config():
    """Networks from their descriptions, Adam optimisers (lr, eps) over a named network's parameters, the config
    (its class named ``config_name``, "Config" by default); nothing else without envs."""
    torch.manual_seed(6)
    net = loops.ValueNet(2, (3,))
    spec = {"networks": {"critic": {"class": "ValueNet", "obs_dim": 2, "hidden_sizes": [3],
                                    "state": net.state_dict()}},
            "optimizers": {"opt": {"params_of": "critic", "lr": "0.01", "eps": 1e-5}},
            "config": {"gamma": 0.5}, "config_name": "A2CConfig"}
    objects = loops._build(spec)
    assert set(objects) == {"critic", "opt", "config"}
    opt = objects["opt"]
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["lr"] == 0.01 and opt.param_groups[0]["eps"] == 1e-5
    assert [id(p) for p in opt.param_groups[0]["params"]] == [id(p) for p in objects["critic"].parameters()]
    assert type(objects["config"]).__name__ == "A2CConfig" and objects["config"].gamma == 0.5
    assert type(loops._build({"config": {}})["config"]).__name__ == "Config"
    assert loops._build({"networks": None, "optimizers": None, "config": None, "trust_region": None}) == {}


def test_build_seeds_replays_and_wraps_the_envs():
    """Envs: ``num_envs`` CartPoles (``time_limit``, ``fast``), recorded (innermost, also under ``_recording``)
    and counted (``counting`` = "first_episode_only" or any other value: every episode) as asked, then reset with
    ``seed`` and brought to the case's state by stepping the ``replay`` actions."""
    spec = {"envs": {"num_envs": 2, "time_limit": 3, "fast": True, "recording": True, "counting": "first_episode_only",
                     "seed": 8, "replay": [[0, 1], [1, 1]]}}
    objects = loops._build(spec)
    envs, recording = objects["envs"], objects["_recording"]
    assert type(envs).__name__ == "CountingEnvs" and envs.env is recording and envs.first_episode_only
    assert type(recording.env).__name__ == "SeededCartPoleVectorEnv" and recording.env.max_episode_steps == 3
    assert recording.resets == [[0, True]] and recording.clock == 2 and envs.steps == 2
    assert recording.data()["actions"].tolist() == [[0, 1], [1, 1]]
    np.testing.assert_array_equal(recording.data()["obs"][0].numpy(), np.stack([starts(8), starts(9)]))
    every = loops._build({"envs": {"num_envs": 1, "counting": "all", "recording": True, "seed": 0}})
    assert every["envs"].first_episode_only is False and every["envs"].steps == 0
    assert every["_recording"].resets == [[0, True]]  # seed 0 is a seed
    plain = loops._build({"envs": {"num_envs": 3, "replay": [[0, 0, 0]]}})
    assert set(plain) == {"envs"} and isinstance(plain["envs"], gym.vector.SyncVectorEnv)
    assert plain["envs"].envs[0].spec.max_episode_steps == 500 and plain["envs"].num_envs == 3
    with pytest.raises(Exception):  # noqa: B017 - never reset, so never stepped: stepping now is the loop's error
        plain["envs"].step(np.zeros(3, dtype=np.int64))


# -- 12. chapter 07's trust-region objects ---------------------------------------------------------------------------
def test_the_kl_gradient_is_that_of_the_mean_kl_from_the_old_policy():
    """``kl_problem``: new parameters (copies of w1, b1, w2, b2, requiring grad) of ``tanh(obs w1^T + b1) w2^T +
    b2``, and ``kl_grad``, the gradient at them of the batch mean of KL(pi_old || pi_theta), flattened in that
    order, with its graph (for Fisher-vector products). By hand: d/dlogits = (softmax(new) - softmax(old)) / B."""
    g = torch.Generator().manual_seed(7)
    problem = {"obs": torch.randn(3, 2, generator=g), "w1": torch.randn(4, 2, generator=g),
               "b1": torch.randn(4, generator=g), "w2": torch.randn(3, 4, generator=g),
               "b2": torch.randn(3, generator=g), "old_logits": torch.randn(3, 3, generator=g)}
    objects = {}
    loops._trust_region_objects({"kl_problem": problem}, objects)
    d = {k: v.double() for k, v in problem.items()}
    h = torch.tanh(d["obs"] @ d["w1"].T + d["b1"])
    q, p = torch.softmax(h @ d["w2"].T + d["b2"], -1), torch.softmax(d["old_logits"], -1)
    dz = (q - p) / 3
    dh = (dz @ d["w2"]) * (1 - h ** 2)
    by_hand = torch.cat([(dh.T @ d["obs"]).reshape(-1), dh.sum(0), (dz.T @ h).reshape(-1), dz.sum(0)])
    assert torch.allclose(objects["kl_grad"].double(), by_hand, atol=1e-6)
    names = ("w1", "b1", "w2", "b2")
    assert all(torch.equal(p, problem[n]) and p is not problem[n] and p.requires_grad
               for p, n in zip(objects["parameters"], names))
    assert not problem["w1"].requires_grad and objects["kl_grad"].requires_grad
    torch.autograd.grad(objects["kl_grad"].sum(), objects["parameters"])  # a second derivative exists


def test_the_matrix_is_known_through_counted_products():
    """``matvec``: v -> matrix @ v (the matrix as given, not its transpose), each call counted."""
    objects = {}
    matrix = torch.tensor([[2.0, 1.0], [0.0, 3.0]])
    loops._trust_region_objects({"matvec": matrix}, objects)
    assert objects["matvec"](torch.tensor([1.0, -1.0])).tolist() == [1.0, -3.0]
    objects["matvec"](torch.zeros(2))
    assert len(objects["_products"]) == 2


def test_the_line_search_reads_its_table_and_records_every_fraction_tried():
    """``evaluate(fraction)``: the table's (value, value) for that fraction (equal within a relative 1e-9, or
    1e-15 absolute near 0), NaNs for a fraction not in it; every fraction tried recorded as a float."""
    objects = {}
    loops._trust_region_objects({"evaluate": {"fractions": [1.0, 0.5, 0.0], "values": [[1, 2], [3, 4], [5, 6]]}},
                                objects)
    evaluate = objects["evaluate"]
    assert evaluate(0.5) == (3.0, 4.0) and evaluate(np.float32(1.0)) == (1.0, 2.0)
    assert evaluate(0.5 * (1 + 5e-10)) == (3.0, 4.0) and evaluate(1e-16) == (5.0, 6.0)
    for missing in (0.5 * (1 + 2e-9), 0.25, 1e-14, -1.0):
        assert all(math.isnan(v) for v in evaluate(missing))
    assert objects["_tried"] == [0.5, 1.0, 0.5 * (1 + 5e-10), 1e-16, 0.5 * (1 + 2e-9), 0.25, 1e-14, -1.0]
    assert all(type(f) is float for f in objects["_tried"])


@pytest.mark.parametrize("description", [None, [1], "kl"])
def test_a_trust_region_case_that_is_not_a_dict_is_a_spec_error(description):
    """The trust-region case must be a dict."""
    with pytest.raises(loops.SpecError, match="^bad trust-region case$"):
        loops._trust_region_objects(description, {})


def test_an_empty_trust_region_case_builds_nothing():
    """No kl_problem, matvec or evaluate: no objects."""
    objects = {}
    loops._trust_region_objects({}, objects)
    assert objects == {}
    assert loops._build({"trust_region": {"matvec": torch.eye(2)}}).keys() == {"matvec", "_products"}


# -- 13. playing a case ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [[], None, {}, {"calls": ()}, {"calls": {"a": 1}}])
def test_a_case_without_a_list_of_calls_is_a_spec_error(spec):
    """A case is a dict with a list of calls."""
    with pytest.raises(loops.SpecError, match="^bad stage case$"):
        loops.play(lambda: None, spec)


def test_each_call_runs_with_its_torch_state_and_the_callers_is_restored():
    """Each call starts from its own state of torch's generator; the caller's generator is as it was after."""
    state = rng_state(3)
    spec = {"calls": [{"args": [], "torch_state": state}, {"args": [], "torch_state": state}]}
    torch.manual_seed(99)
    before = torch.get_rng_state()
    outcome = loops.play(lambda: torch.rand(2), spec)
    assert torch.equal(torch.get_rng_state(), before)
    assert [torch.equal(c["result"], first_draws(3, 2)) for c in outcome["calls"]] == [True, True]


def test_a_calls_record_holds_its_result_the_networks_after_it_and_its_data_inputs_as_left():
    """A call's record: ``result`` as data, ``parameters`` (copies of the named networks' parameters after the
    call), ``inputs`` (the data arguments, not the object references, as the call left them); a later call may
    take an earlier one's results."""
    torch.manual_seed(0)
    net = loops.ValueNet(1, ())
    state = {k: v.clone() for k, v in net.state_dict().items()}

    def fn(critic, counts, scale):
        counts.append(len(counts))
        with torch.no_grad():
            for p in critic.parameters():
                p.add_(scale)
        return critic, scale * 2, "done"

    spec = {"networks": {"v": {"class": "ValueNet", "obs_dim": 1, "hidden_sizes": [], "state": state}},
            "calls": [{"args": [{"ref": "v"}, {"value": []}, {"value": 1.0}], "torch_state": rng_state(0),
                       "parameters": ["v"]},
                      {"args": [{"ref": "v"}, {"value": [9]}, {"returned": [0, 1]}], "torch_state": rng_state(0)}]}
    first, second = loops.play(fn, spec)["calls"]
    assert first["inputs"] == [[0], 1.0] and second["inputs"] == [[9, 1], 2.0]
    assert [p.tolist() for p in first["parameters"]["v"]] == [(state["net.0.weight"] + 1).tolist(), [1.0]]
    assert second["parameters"] == {}
    assert first["result"][1:] == (2.0, "done") and first["result"][0]["module"] == "ValueNet"
    assert first["result"][0]["state"]["net.0.bias"].tolist() == [1.0]  # the network as it was returned, copied
    assert "optimizer_steps" not in first and set(loops.play(lambda: 1, {"calls": []})) == {"calls"}


def test_a_case_with_record_steps_records_the_optimiser_steps_of_each_call():
    """``record_steps``: each call's optimiser steps, the first ``record_steps`` with their tensors, the parameters
    named by the returned module, the env step on the recording envs' clock (0 without them)."""
    torch.manual_seed(0)
    net = loops.ValueNet(1, ())
    spec = {"networks": {"v": {"class": "ValueNet", "obs_dim": 1, "hidden_sizes": [], "state": net.state_dict()}},
            "optimizers": {"opt": {"params_of": "v", "lr": 0.1, "eps": 1e-8}}, "record_steps": 1,
            "calls": [{"args": [{"ref": "v"}, {"ref": "opt"}], "torch_state": rng_state(0)}]}

    def fn(critic, opt):
        for _ in range(2):
            opt.zero_grad()
            critic(torch.ones(1, 1)).sum().backward()
            opt.step()
        return critic

    (call,) = loops.play(fn, spec)["calls"]
    steps = call["optimizer_steps"]
    assert [s["kept"] for s in steps] == [True, False] and [s["env_step"] for s in steps] == [0, 0]
    assert steps[0]["names"] == ["net.0.weight", "net.0.bias"] and steps[0]["settings"]["lr"] == 0.1
    spec.update(envs={"num_envs": 1, "fast": True, "recording": True, "seed": 0, "replay": [[0], [1], [0]]})
    steps = loops.play(fn, spec)["calls"][0]["optimizer_steps"]
    assert [s["env_step"] for s in steps] == [3, 3]


def test_the_outcome_counts_the_loops_episodes_after_a_flush():
    """With counting envs the outcome has ``counts``: episodes (flushed first), transitions, steps and the
    transitions after each step; with recording envs ``played``; with chapter 07's objects the products taken and
    the fractions tried."""
    def loop(envs):
        for _ in range(4):
            envs.step(np.zeros(2, dtype=np.int64))

    spec = {"envs": {"num_envs": 2, "time_limit": 3, "fast": True, "counting": "every", "seed": 0},
            "calls": [{"args": [{"ref": "envs"}], "torch_state": rng_state(0)}]}
    outcome = loops.play(loop, spec)
    assert outcome["counts"] == {"episodes": [[3.0, 3, 6], [3.0, 3, 6]], "transitions": 6, "steps": 4,
                                 "transitions_at_step": [2, 4, 6, 6]}
    assert "played" not in outcome and "products" not in outcome and "tried" not in outcome
    spec["envs"].update(counting="first_episode_only", recording=True)
    outcome = loops.play(loop, spec)
    assert outcome["counts"] == {"episodes": [[3.0, 3, 3], [3.0, 3, 6]], "transitions": 6, "steps": 4,
                                 "transitions_at_step": [0, 0, 0, 0]}
    assert outcome["played"]["actions"].shape == (4, 2) and outcome["played"]["resets"] == [[0, True]]
    call = [{"args": [{"ref": "matvec"}], "torch_state": rng_state(0)}]
    outcome = loops.play(lambda matvec: (matvec(torch.ones(2)), matvec(torch.ones(2))),
                         {"trust_region": {"matvec": torch.eye(2)}, "calls": call})
    assert outcome["products"] == 2 and "tried" not in outcome and "counts" not in outcome
    call = [{"args": [{"ref": "evaluate"}], "torch_state": rng_state(0)}]
    outcome = loops.play(lambda evaluate: [evaluate(f) for f in (0.5, 0.25, 1.0)],
                         {"trust_region": {"evaluate": {"fractions": [1.0], "values": [[0, 0]]}}, "calls": call})
    assert outcome["tried"] == [0.5, 0.25, 1.0] and "products" not in outcome  # in the order tried


def test_the_envs_are_closed_after_the_case_even_when_the_loop_raises():
    """The learner's exception propagates; the case's envs are closed either way (a close that fails is
    ignored)."""
    closed = []

    def loop(envs):
        envs.close = lambda: closed.append(True)
        raise KeyError("the learner's")

    spec = {"envs": {"num_envs": 1, "fast": True}, "calls": [{"args": [{"ref": "envs"}], "torch_state": rng_state(0)}]}
    with pytest.raises(KeyError, match="the learner's"):
        loops.play(loop, spec)
    assert closed == [True]

    def breaks_close(envs):
        def close():
            raise RuntimeError("cannot close")
        envs.close = close
        return 5

    assert loops.play(breaks_close, spec)["calls"][0]["result"] == 5


def test_a_glued_case_watches_the_loop_with_a_glue_recorder(monkeypatch):
    """``glue``: the loop ``fn(envs, config)`` gets the case's envs watched; the outcome's ``glue`` is the first
    call's record (None with no call), its PPO-gradient proof made with the case's config."""
    monkeypatch.setattr(loops, "_ppo_proof", lambda: types.SimpleNamespace(
        ppo_gradient_proof=lambda recorder, config: {"checked": config.steps, "steps": recorder.clock}))
    def train(envs, config):
        envs.reset(seed=config.seed)
        for _ in range(config.steps):
            envs.step(np.zeros(1, dtype=np.int64))
        return "policy"

    call = {"args": [{"ref": "envs"}, {"ref": "config"}], "torch_state": rng_state(0)}
    spec = {"glue": True, "envs": {"num_envs": 1, "fast": True}, "config": {"seed": 4, "steps": 2}, "calls": [call]}
    outcome = loops.play(train, spec)
    assert outcome["glue"]["steps"] == 2 and outcome["glue"]["resets"] == [[0, 4]]
    assert outcome["glue"]["stale"] == [0, 1] and outcome["calls"][0]["result"] == "policy"
    assert outcome["glue"]["ppo_gradient"] == {"checked": 2, "steps": 2}
    made = []

    def train_then_less(envs, config):
        made.append(envs)
        return train(envs, dataclasses.replace(config, steps=config.steps - len(made) + 1))

    two = loops.play(train_then_less, {**spec, "config": {"seed": 4, "steps": 3}, "calls": [call, call]})
    assert two["glue"]["steps"] == 3 and len(made) == 2  # the first call's record (the second stepped twice)
    assert loops.play(train, {**spec, "calls": []})["glue"] is None


LOOP_SOURCE = """
import torch
def train(n, *, lr=0.5, raise_it=False):
    envs = make_envs("CartPole-v1", n)
    for env in envs:
        env.reset(seed=1)
    envs[-1].step(0)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    for _ in range(2):
        p.grad = torch.ones(1)
        opt.step()
    torch.set_num_threads(2)
    if raise_it:
        raise RuntimeError("learner")
    return (p.detach().clone(), n)
"""


@pytest.mark.parametrize("had", [False, True])
def test_a_make_envs_case_swaps_the_loops_make_envs_for_the_call(had):
    """``make_envs``: the loop's module name ``make_envs`` is the check's recording one for the call (its own, or
    none, again after, also when the loop raised); the torch thread count restored; the outcome: the call's result
    and optimiser steps (``keep`` of them with tensors) and what was played."""
    namespace = {}
    exec(LOOP_SOURCE, namespace)  # noqa: S102 - a learner's module of our own making
    own = object()
    if had:
        namespace["make_envs"] = own
    threads = torch.get_num_threads()
    spec = {"make_envs": {"keep": "1", "args": [2], "kwargs": {"lr": 0.25}}, "calls": []}
    outcome = loops.play(namespace["train"], spec)
    assert (namespace.get("make_envs", None) is own) if had else "make_envs" not in namespace
    assert torch.get_num_threads() == threads
    (call,) = outcome["calls"]
    assert call["result"][0].tolist() == [-0.5] and call["result"][1] == 2
    assert [s["kept"] for s in call["optimizer_steps"]] == [True, False]
    assert [s["params"] for s in call["optimizer_steps"]] == [[0], [0]]
    assert call["optimizer_steps"][0]["settings"]["lr"] == 0.25 and call["optimizer_steps"][0]["env_step"] == 1
    played = outcome["played"]
    assert played["envs_built"] == 2 and played["resets"] == [[0, 0, True], [0, 1, True]]
    assert played["env"].tolist() == [1]
    with pytest.raises(RuntimeError, match="learner"):
        loops.play(namespace["train"], {"make_envs": {"keep": 0, "args": [1], "kwargs": {"raise_it": True}},
                                        "calls": []})
    assert (namespace.get("make_envs", None) is own) if had else "make_envs" not in namespace
    assert torch.get_num_threads() == threads


def test_a_make_envs_case_of_a_callable_without_a_module_still_runs():
    """A loop with no module namespace (no ``__globals__``) is called as it is, with no args or kwargs given."""
    class Loop:
        def __call__(self):
            return "ran"

    outcome = loops.play(Loop(), {"make_envs": {"keep": 0}, "calls": []})
    assert outcome["calls"] == [{"result": "ran", "optimizer_steps": []}]
    assert outcome["played"]["envs_built"] == 0
