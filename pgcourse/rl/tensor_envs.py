r"""Vector environments in torch: CartPole-v1, Acrobot-v1 and Pendulum-v1, batched over ``num_envs``, on any
device, with gymnasium's dynamics, rewards, terminations, time limits and autoreset.

    envs = TensorVectorEnv("CartPole-v1", num_envs=64)              # CPU, float64
    obs, _ = envs.reset(seed=0)                                     # [64, 4] float32
    obs, reward, terminated, truncated, _ = envs.step(actions)      # actions: [64] int64

**What is gymnasium's, exactly.** The physics (:mod:`pgcourse.rl.tensor_dynamics`) repeats gymnasium's
arithmetic operation for operation. In float64 on CPU (the default there) the states are gymnasium's bit
for bit, so observations, rewards (Pendulum's to 5e-10: see tensor_dynamics) and flags are too, from the same
start states (tests/test_tensor_envs.py checks thousands of steps against ``SyncVectorEnv``). In float32
(the default on a GPU) the same equations round differently: a trajectory drifts from gymnasium's after
some hundred steps (measured: the first differing flag at step 212 for CartPole under a balancing policy,
935 for Acrobot under random actions, 64 envs each), while the statistics (episode lengths, returns) stay
the environment's.

**Autoreset: gymnasium's NEXT_STEP mode**, the convention of the course (lesson 00, :mod:`pgcourse.rl.envs`).
A step that ends an episode (``terminated`` or ``truncated``) returns that episode's *true final
observation*, so a truncated step bootstraps from it. The *next* call to :meth:`TensorVectorEnv.step` is
the sub-environment's reset step: its action is ignored, it returns reward 0, both flags False and the
first observation of a new episode. :func:`pgcourse.rl.envs.transition_mask` and
:func:`pgcourse.rl.returns.compute_gae` read these streams as they read gymnasium's.

**Seeding.** One ``torch.Generator`` for the batch, on the batch's device; ``reset(seed=s)`` seeds it. Start
states are uniform in gymnasium's ranges (Acrobot's rounded to float32, as gymnasium stores them), but the
random stream is torch's, so a seed gives other episodes than gymnasium's for the same seed. To replay
gymnasium's episodes, inject the start states: ``reset(options={"state": states})``. With ``streams=A`` the
sub-environments are A equal blocks (``pg.train_many``'s agents), each with a generator of its own:
``reset(seed=[s_0, ..., s_{A-1}])``, and block ``a``'s episodes are those of a batch of ``num_envs / A`` seeded
``s_a``, whatever the other blocks do.

**Start states drawn ahead.** A step draws the start state of every sub-environment, used by those that
autoreset (drawing only where an episode ended would need their count on the host). A trainer that knows it
will take ``T`` steps calls :meth:`TensorVectorEnv.reserve_start_states` first: the ``[T, num_envs]`` start
states are drawn in one call, the same numbers from the same stream as ``T`` draws of one step each (on the
CPU; measured, tests/test_tensor_envs.py), and each step takes its row (no kernel).

**No host synchronisation in step().** Nothing in :meth:`TensorVectorEnv.step` reads a tensor's value on
the host (no ``.item()``, no ``if`` on a tensor, no boolean indexing): every sub-environment is stepped,
the ones that autoreset take a fresh start state through ``torch.where``. The action range check of the
discrete environments is ``torch._assert_async``: immediate on CPU, reported by the device without
waiting for it elsewhere.
"""
from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from . import tensor_dynamics as dyn
from .envs import env_spaces

StepFunction = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]


@dataclass(frozen=True)
class TensorEnvSpec:
    """One environment: its physics (:mod:`pgcourse.rl.tensor_dynamics`) and its start-state distribution.

    ``step(state [N, D], action) -> (next_state [N, D], reward [N], terminated [N])``;
    ``observe(state [N, D]) -> obs [N, obs_dim]`` float32; start states uniform in
    ``[start_low, start_high]`` (each ``D`` floats), rounded to float32 when ``start_in_float32``.
    ``discrete_actions`` is ``n`` for ``Discrete(n)`` (actions ``[N]`` integers), None for a torque
    ``[N, 1]``. The time limit is gymnasium's registered ``max_episode_steps``.
    """

    env_id: str
    step: StepFunction
    observe: Callable[[Tensor], Tensor]
    start_low: tuple[float, ...]
    start_high: tuple[float, ...]
    discrete_actions: int | None
    start_in_float32: bool = False

    @property
    def state_dim(self) -> int:
        return len(self.start_low)


TENSOR_ENVS: dict[str, TensorEnvSpec] = {
    "CartPole-v1": TensorEnvSpec("CartPole-v1", dyn.cartpole_step, dyn.cartpole_observe,
                                 dyn.CARTPOLE_START_LOW, dyn.CARTPOLE_START_HIGH, discrete_actions=2),
    # AcrobotEnv.reset stores its start state as float32 (the steps after are float64)
    "Acrobot-v1": TensorEnvSpec("Acrobot-v1", dyn.acrobot_step, dyn.acrobot_observe,
                                dyn.ACROBOT_START_LOW, dyn.ACROBOT_START_HIGH, discrete_actions=3,
                                start_in_float32=True),
    "Pendulum-v1": TensorEnvSpec("Pendulum-v1", dyn.pendulum_step, dyn.pendulum_observe,
                                 dyn.PENDULUM_START_LOW, dyn.PENDULUM_START_HIGH, discrete_actions=None),
}


def tensor_env_spec(env_id: str) -> TensorEnvSpec:
    """The spec of ``env_id``, or a ValueError naming the environments there are."""
    if env_id not in TENSOR_ENVS:
        raise ValueError(f"no torch vector environment for {env_id!r}: there are {', '.join(TENSOR_ENVS)} "
                         f"(other environments run on gymnasium: pgcourse.rl.envs.make_vector_env)")
    return TENSOR_ENVS[env_id]


def default_dtype(device: torch.device) -> torch.dtype:
    """float64 on CPU (gymnasium's states, bit for bit), float32 elsewhere (GPUs are slow in float64, some
    have none)."""
    return torch.float64 if device.type == "cpu" else torch.float32


def check_num_envs(num_envs: Any) -> int:
    """``num_envs`` as an int >= 1, or a ValueError that says what it was."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1 (how many environments the batch steps), "
                         f"got {num_envs!r}")
    return num_envs


def start_states_from_uniform(low: Tensor, high: Tensor, uniform: Tensor, in_float32: bool = False) -> Tensor:
    r"""Start states uniform in ``[low, high]`` (each ``[D]``) per coordinate, as gymnasium's ``np_random.uniform``:
    :math:`s = \text{low} + (\text{high} - \text{low})\,U` for uniforms ``U [..., D]`` in ``[0, 1)``; rounded to
    float32 when ``in_float32``."""
    states = low + (high - low) * uniform  # [..., D]
    return states.to(torch.float32).to(low.dtype) if in_float32 else states


def autoreset(resetting: Tensor, next_state: Tensor, start_state: Tensor, reward: Tensor, terminated: Tensor,
              elapsed: Tensor, max_episode_steps: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """NEXT_STEP autoreset of the sub-environments flagged in ``resetting`` ``[N]`` (their previous step
    ended an episode): the step's result is replaced by a reset's, a start state with reward 0, both
    flags False and the episode clock at 0; elsewhere the clock ticks and reaching ``max_episode_steps``
    truncates. ``elapsed`` is the clock before the step. Returns ``(state, reward, terminated, truncated,
    elapsed)``; ``terminated`` (the physics' fresh flags) is cleared in place."""
    state = torch.where(resetting[:, None], start_state, next_state)  # [N, D]
    elapsed = (elapsed + 1).masked_fill_(resetting, 0)  # [N] steps into the episode, 0 on a reset step
    truncated = elapsed >= max_episode_steps  # [N], never on a reset step (the limit is >= 1)
    return state, reward.masked_fill(resetting, 0.0), terminated.masked_fill_(resetting, False), truncated, elapsed


def on_device(tensor: Tensor, device: torch.device) -> bool:
    """Whether ``tensor`` is on ``device`` (``"cuda"`` without an index means the current CUDA device)."""
    if tensor.device.type != device.type:
        return False
    return device.index is None or tensor.device.index in (device.index, None)


class TensorVectorEnv:
    """``num_envs`` copies of a classic-control environment stepped as one batch of tensors (see the module).

    Args:
        env_id: ``"CartPole-v1"``, ``"Acrobot-v1"`` or ``"Pendulum-v1"``.
        num_envs: how many sub-environments, >= 1.
        device: where the states live (``"cpu"``, ``"cuda"``, ...).
        dtype: of the states and rewards: ``torch.float64`` (default on CPU: gymnasium's numbers exactly) or
            ``torch.float32`` (default elsewhere). Observations are float32 either way, as gymnasium's.
        max_episode_steps: the time limit (a step with this many steps in its episode is ``truncated``);
            gymnasium's registered limit by default (500, 500, 200).
        streams: how many equal blocks of sub-environments draw their start states from generators of their
            own (see the module): 1 by default; ``pg.train_many`` gives each agent one.

    Attributes ``single_observation_space``, ``single_action_space`` are gymnasium's spaces of ``env_id``.
    """

    def __init__(self, env_id: str, num_envs: int, *, device: str | torch.device = "cpu",
                 dtype: torch.dtype | None = None, max_episode_steps: int | None = None, streams: int = 1):
        self.spec = tensor_env_spec(env_id)
        self.num_envs = check_num_envs(num_envs)
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1 or self.num_envs % streams:
            raise ValueError(f"streams must be an integer >= 1 that divides num_envs={self.num_envs} (the blocks of "
                             f"sub-environments with a generator each), got {streams!r}")
        self.device = torch.device(device)
        self.dtype = default_dtype(self.device) if dtype is None else dtype
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float64 or torch.float32, got {self.dtype}")
        limit = gym.spec(env_id).max_episode_steps if max_episode_steps is None else max_episode_steps
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_episode_steps must be an integer >= 1, got {limit!r}")
        self.max_episode_steps = limit
        self.single_observation_space, self.single_action_space = env_spaces(env_id)
        self.generators = [torch.Generator(device=self.device) for _ in range(streams)]
        for generator in self.generators:
            generator.seed()  # unseeded: a random stream, as an unseeded gymnasium env
        self._reserve: Tensor | None = None  # [T, N, D] start states drawn ahead (reserve_start_states)
        self._reserve_used = 0
        self._start_low = torch.tensor(self.spec.start_low, dtype=self.dtype, device=self.device)  # [D]
        self._start_high = torch.tensor(self.spec.start_high, dtype=self.dtype, device=self.device)  # [D]
        self._state: Tensor | None = None
        self._elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)  # [N]
        self._done = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)  # [N]

    @property
    def generator(self) -> torch.Generator:
        """The generator of the start states (of the first block with ``streams`` > 1)."""
        return self.generators[0]

    def __getstate__(self) -> dict[str, Any]:
        """The env's state for pickling (a run's checkpoint). Start states reserved ahead and all used (as after
        every rollout) are left out: the next step would draw afresh either way. They were 92% of a checkpoint's
        bytes (``[T, N, D]``: 134 MB at 262,144 CartPole envs on a GPU, copied to the host at the end of every run)."""
        state = self.__dict__.copy()
        if state["_reserve"] is not None and state["_reserve_used"] >= state["_reserve"].shape[0]:
            state["_reserve"], state["_reserve_used"] = None, 0
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """An env pickled by an older pgcourse (a checkpoint) had one ``generator`` and drew no start states
        ahead: it continues as one stream."""
        if "generator" in state:
            state["generators"] = [state.pop("generator")]
        state.setdefault("_reserve", None)
        state.setdefault("_reserve_used", 0)
        self.__dict__.update(state)

    def close(self) -> None:
        """Nothing to release (the protocol of gymnasium's vector envs, which training calls at the end)."""

    def __repr__(self) -> str:
        streams = f", streams={len(self.generators)}" if len(self.generators) > 1 else ""
        return (f"TensorVectorEnv({self.spec.env_id!r}, num_envs={self.num_envs}, device={str(self.device)!r}, "
                f"dtype={self.dtype}, max_episode_steps={self.max_episode_steps}{streams})")

    @property
    def state(self) -> Tensor:
        """``[N, D]`` the physical states (``dtype``): CartPole (x, x_dot, theta, theta_dot), Acrobot (theta1,
        theta2, dtheta1, dtheta2), Pendulum (theta, theta_dot). A view: do not modify it."""
        if self._state is None:
            raise RuntimeError(f"{self!r} has no state before reset(): call envs.reset(seed=...) first")
        return self._state

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict[str, Any] | None = None) -> tuple[Tensor, dict]:
        """Start a new episode in every sub-environment. Returns ``(obs [N, obs_dim] float32, {})``.

        Args:
            seed: seeds the batch's generator (then every start state, here and at autoresets, follows);
                with ``streams`` > 1 a list of one seed per block.
            options: ``{"state": [N, D]}`` starts from these states instead of drawn ones (later autoresets
                draw); any other key is an error.
        """
        options = dict(options or {})
        unknown = set(options) - {"state"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}: the only option is 'state', "
                             f"a [num_envs, {self.spec.state_dim}] tensor of start states")
        if seed is not None:
            seeds = list(seed) if isinstance(seed, (list, tuple)) else [seed]
            if len(seeds) != len(self.generators):
                raise ValueError(f"seed={seed!r}: expected {len(self.generators)} seed(s), one per block of "
                                 f"sub-environments (streams={len(self.generators)})")
            for generator, block_seed in zip(self.generators, seeds):
                generator.manual_seed(block_seed)
        if "state" in options:
            self._state = self._check_states(options["state"])
        else:
            self._state = self._draw_start_states()
        self._elapsed.zero_()
        self._done.zero_()
        self._reserve, self._reserve_used = None, 0
        return self.spec.observe(self._state), {}

    def reserve_start_states(self, steps: int) -> None:
        """Draw the start states of the next ``steps`` steps now, in one call per block (see the module): the same
        numbers, from the same stream, as the steps would draw one by one; a step past them draws its own."""
        self._reserve, self._reserve_used = self._draw_start_states(steps), 0  # [steps, N, D]

    @torch.no_grad()
    def step(self, actions: Tensor, check_range: bool = True) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        """One step of every sub-environment (a reset step for those whose last step ended an episode).

        Args:
            actions: ``[N]`` integers for CartPole and Acrobot, ``[N, 1]`` floats for Pendulum, on ``device``.
            check_range: check on the device that discrete actions are in range (five kernels a step; the
                training loop, whose actions are drawn from the policy's categories, passes False).

        Returns:
            ``(obs [N, obs_dim] float32, reward [N] dtype, terminated [N] bool, truncated [N] bool, {})``.
        """
        if self._state is None:
            raise RuntimeError(f"{self!r}.step() before reset(): call envs.reset(seed=...) first")
        self._check_actions(actions, check_range)
        next_state, reward, terminated = self.spec.step(self._state, actions)  # [N, D], [N], [N]
        self._state, reward, terminated, truncated, self._elapsed = autoreset(
            self._done, next_state, self._next_start_states(), reward, terminated, self._elapsed,
            self.max_episode_steps)
        self._done = terminated | truncated
        return self.spec.observe(self._state), reward, terminated, truncated, {}

    @property
    def episode_ended(self) -> Tensor:
        """``[N]`` bool: the last step ended each sub-environment's episode (its next step is a reset step). Read
        only."""
        return self._done

    @property
    def elapsed(self) -> Tensor:
        """``[N]`` int64: the steps of each sub-environment's current episode (0 on a reset step). Read only."""
        return self._elapsed

    def _next_start_states(self) -> Tensor:
        """``[N, D]`` this step's start states (used by the sub-environments that autoreset): the next reserved
        row, or a draw."""
        if self._reserve is not None and self._reserve_used < self._reserve.shape[0]:
            self._reserve_used += 1
            return self._reserve[self._reserve_used - 1]
        self._reserve = None
        return self._draw_start_states()

    def _draw_start_states(self, steps: int | None = None) -> Tensor:
        """``[N, D]`` start states (``[steps, N, D]`` with ``steps``), each block's from its own generator."""
        block = self.num_envs // len(self.generators)
        uniforms = [torch.rand((block, self.spec.state_dim) if steps is None else (steps, block, self.spec.state_dim),
                               generator=generator, dtype=self.dtype, device=self.device)
                    for generator in self.generators]
        uniform = uniforms[0] if len(uniforms) == 1 else torch.cat(uniforms, dim=-2)  # [(steps,) N, D]
        return start_states_from_uniform(self._start_low, self._start_high, uniform, self.spec.start_in_float32)

    def _check_states(self, states: Any) -> Tensor:
        states = torch.as_tensor(states)
        shape = (self.num_envs, self.spec.state_dim)
        if tuple(states.shape) != shape or not states.is_floating_point():
            raise ValueError(f"options['state'] must be a float tensor of shape {list(shape)} "
                             f"(num_envs, state_dim) for {self.spec.env_id}, got {states.dtype} {list(states.shape)}")
        return states.detach().to(device=self.device, dtype=self.dtype).clone()

    def _check_actions(self, actions: Any, check_range: bool = True) -> None:
        """Shape, dtype and device of ``actions`` (metadata only); the range of discrete ones, asynchronously."""
        env_id, n = self.spec.env_id, self.spec.discrete_actions
        expected = (f"a [{self.num_envs}] integer tensor (one action in 0..{n - 1} per sub-environment)"
                    if n is not None else f"a [{self.num_envs}, 1] float tensor (one torque per sub-environment)")
        if not isinstance(actions, Tensor):
            raise TypeError(f"{env_id} actions must be {expected}, got {type(actions).__name__} "
                            f"(torch.as_tensor(actions, device={str(self.device)!r}) makes one)")
        shape = (self.num_envs,) if n is not None else (self.num_envs, 1)
        if tuple(actions.shape) != shape:
            raise ValueError(f"{env_id} actions must be {expected}, got shape {list(actions.shape)}")
        wrong_dtype = (actions.is_floating_point() or actions.is_complex() or actions.dtype == torch.bool
                       if n is not None else not actions.is_floating_point())
        if wrong_dtype:
            raise TypeError(f"{env_id} actions must be {expected}, got dtype {actions.dtype}")
        if not on_device(actions, self.device):
            raise ValueError(f"{env_id} actions are on {actions.device}, the environments on {self.device}: "
                             f"move them with actions.to({str(self.device)!r})")
        if n is not None and check_range:
            torch._assert_async(((actions >= 0) & (actions < n)).all(),
                                f"{env_id} actions must be in 0..{n - 1} (Discrete({n}))")


# -- the training side: normalisers and a stepper that keep everything on the device ---------------------------
def rounded_sqrt(x: Tensor) -> Tensor:
    r""":math:`\sqrt{x}` correctly rounded, as numpy's: float32 through float64 (the square root rounded twice is
    still the correctly rounded one); float64 on CPU by numpy, on the same memory (torch's CPU ``sqrt`` is not
    always correctly rounded: measured, torch 2.13.0+cpu); ``torch.sqrt`` elsewhere (no host read on a GPU)."""
    if x.dtype == torch.float32:
        return torch.sqrt(x.double()).float()
    if x.dtype == torch.float64 and x.device.type == "cpu":
        return torch.from_numpy(np.asarray(np.sqrt(x.numpy())))
    return torch.sqrt(x)


class TensorObsNormalizer:
    r"""gymnasium's ``NormalizeObservation`` (vector wrapper) as tensors on the observations' device, one per agent
    (``agents`` running statistics side by side: ``pg.train_many``'s agents share one env, not their statistics).

    Every batch ``x [A, N, obs_dim]`` (the reset's, then every step's) updates each agent's running moments with its
    own ``N`` rows, then ``(x - mean) / sqrt(var + epsilon)`` is returned as float32. The moments are float32 as
    gymnasium's; the count (``1e-4 + N`` per batch) is a host number, since it never depends on the data:

    .. math:: \delta = \bar x_B - \mu, \quad n' = n + N, \quad \mu' = \mu + \delta N / n', \quad
              \sigma'^2 = \bigl(\sigma^2 n + \sigma_B^2 N + \delta^2 n N / n'\bigr) / n'

    The division and the square root round as numpy's (:func:`rounded_sqrt`); the batch sums do not always:
    numpy's order depends on the memory layout of the numpy env's batch (a ``SyncVectorEnv`` stacks rows: one row
    after another, which torch's ``sum`` repeats up to 17 rows, measured; the course's CartPole hands over a
    column-major batch: numpy's pairwise sum down each column), so the moments can differ from gymnasium's in
    their last float32 bits (``tests/test_tensor_backend.py`` measures how far that carries).
    """

    def __init__(self, obs_dim: int, device: torch.device, epsilon: float = 1e-8, agents: int = 1):
        self.mean = torch.zeros((agents, obs_dim), dtype=torch.float32, device=device)  # [A, obs_dim]
        self.var = torch.ones((agents, obs_dim), dtype=torch.float32, device=device)  # [A, obs_dim]
        self.count = 1e-4
        self.epsilon = epsilon

    def __call__(self, x: Tensor) -> Tensor:
        """Update the moments with ``x [A, N, obs_dim]`` and return it normalised ``[A, N, obs_dim]`` float32."""
        x = x.to(torch.float32)
        n = x.shape[1]
        batch_mean = (x.sum(1).double() / n).float()  # [A, obs_dim] float32, as np.mean's float64 division
        batch_var = ((x - batch_mean.unsqueeze(1)).square().sum(1).double() / n).float()  # [A, obs_dim]
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta.square() * self.count * n / total
        self.var, self.count = m2 / total, total
        return ((x - self.mean.unsqueeze(1)) / rounded_sqrt(self.var + self.epsilon).unsqueeze(1)).to(torch.float32)

    def state(self, agent: int = 0) -> dict[str, Any]:
        """Agent ``agent``'s statistics as ``pgcourse.rl.envs.normalizer_state`` writes them (read off the device:
        call it between updates only)."""
        return {"mean": self.mean[agent].double().cpu().tolist(), "var": self.var[agent].double().cpu().tolist(),
                "count": float(self.count), "epsilon": float(self.epsilon)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Statistics pickled by an older pgcourse (``[obs_dim]``, one agent) get their agent axis."""
        for name in ("mean", "var"):
            if state[name].dim() == 1:
                state[name] = state[name].unsqueeze(0)
        self.__dict__.update(state)


NUMPY_SUM_EXACT_UP_TO = 128  # numpy's pairwise blocks: one block of 8 lanes up to 128 numbers, recursion beyond


def masked_float32_sum(values: Tensor, keep: Tensor, numpy_order: bool) -> Tensor:
    """The float32 sums of ``values[..., keep]`` over the last axis (``[..., N]`` each; ``[...]``), with no host read.

    ``numpy_order``: in the order numpy's ``np.add.reduce`` sums the selected numbers (its pairwise sum), so the
    float32 result is numpy's bit for bit, for ``N`` up to :data:`NUMPY_SUM_EXACT_UP_TO`; with ``k`` numbers kept:
    below 8, one after another from -0.0; from 8, eight running lanes over the first ``k - k % 8`` numbers,
    combined as ``((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))``, then the last ``k % 8`` one after another.
    Otherwise (or for a wider batch) torch's ``sum`` of the masked values, whose order is torch's."""
    n = values.shape[-1]
    masked = torch.where(keep, values, torch.zeros_like(values))  # [..., N]
    if not numpy_order or n > NUMPY_SUM_EXACT_UP_TO:
        return masked.sum(-1)
    order = torch.argsort((~keep).to(torch.int8), dim=-1, stable=True)  # kept ones first, in their order
    a = masked.gather(-1, order)  # [..., N]: the k kept numbers, then zeros
    k = keep.sum(-1)  # [...]
    small = torch.full(k.shape, -0.0, dtype=values.dtype, device=values.device)
    for i in range(min(n, 7)):  # k < 8: adding the zeros after the k-th changes nothing
        small = small + a[..., i]
    if n < 8:
        return small
    lanes = a[..., :8].clone()  # [..., 8]
    whole_rows = torch.div(k, 8, rounding_mode="floor")  # rows of 8 in the main block
    for row in range(1, n // 8):
        lanes = lanes + torch.where((whole_rows > row).unsqueeze(-1), a[..., 8 * row:8 * row + 8],
                                    torch.zeros_like(lanes))
    lane = lanes.unbind(-1)
    big = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]))
    start = whole_rows * 8
    for j in range(7):  # the remainder, k % 8 numbers
        position = start + j
        picked = a.gather(-1, position.clamp(max=n - 1).unsqueeze(-1)).squeeze(-1)
        big = big + torch.where(position < k, picked, torch.zeros_like(big))
    return torch.where(k < 8, small, big)


class TensorRewardNormalizer:
    r"""gymnasium's ``NormalizeReward`` (vector wrapper, NEXT_STEP) as tensors, one per agent: each reward is
    divided by the running standard deviation of its agent's discounted return, :math:`r / \sqrt{\sigma_G^2 +
    \epsilon}`.

    Per step, on the sub-environments that are not autoresetting (``active``):
    :math:`G \leftarrow \gamma G (1 - \text{term}) + r`, and each agent's running moments of :math:`G` (float64)
    take the batch of its active ones. The batch is a masked one here (a fixed shape, no host read); on the CPU its
    sums run in numpy's pairwise order (:func:`masked_float32_sum`), so the statistics and the scaled rewards are
    gymnasium's bit for bit up to 128 envs; on a GPU, torch's order. ``gammas``: one discount per agent.
    """

    def __init__(self, num_envs: int, gammas: float | Sequence[float], device: torch.device, epsilon: float = 1e-8):
        gammas = [gammas] if isinstance(gammas, (int, float)) else list(gammas)
        agents = len(gammas)
        self.accumulated = torch.zeros((agents, num_envs), dtype=torch.float32, device=device)  # [A, N] G, float32
        self.prev_done = torch.zeros((agents, num_envs), dtype=torch.bool, device=device)  # [A, N]
        self.mean = torch.zeros(agents, dtype=torch.float64, device=device)  # [A]
        self.var = torch.ones(agents, dtype=torch.float64, device=device)  # [A]
        self.count = torch.full((agents,), 1e-4, dtype=torch.float64, device=device)  # [A] grows by the active count
        self.gamma = torch.tensor(gammas, dtype=torch.float32, device=device).unsqueeze(1)  # [A, 1], as G's dtype
        self.epsilon = epsilon
        self.numpy_order = device.type == "cpu"  # gymnasium's sums bit for bit where exactness is the point

    def __call__(self, reward: Tensor, terminated: Tensor, truncated: Tensor) -> Tensor:
        """``reward [A, N]`` scaled (float64), after updating the statistics with this step."""
        active = ~self.prev_done  # [A, N]
        grown = ((self.accumulated * self.gamma).double() * (~terminated).double() + reward.double()).float()
        self.accumulated = torch.where(active, grown, self.accumulated)  # [A, N]
        k = active.sum(-1).double()  # [A] how many entries each agent's batch has (0: no update)
        safe_k = k.clamp(min=1.0)
        batch_mean = (masked_float32_sum(self.accumulated, active, self.numpy_order).double() / safe_k).float()  # [A]
        squares = (self.accumulated - batch_mean.unsqueeze(1)).square()  # [A, N]
        batch_var = (masked_float32_sum(squares, active, self.numpy_order).double() / safe_k).float()  # [A]
        delta = batch_mean.double() - self.mean
        total = self.count + k
        new_mean = self.mean + delta * k / total
        m2 = self.var * self.count + (batch_var * k.float()).double() + delta.square() * self.count * k / total
        some = k > 0
        self.mean = torch.where(some, new_mean, self.mean)
        self.var = torch.where(some, m2 / total, self.var)
        self.count = torch.where(some, total, self.count)
        self.prev_done = terminated | truncated
        return reward.double() / rounded_sqrt(self.var + self.epsilon).unsqueeze(1)

    def state(self, agent: int = 0) -> dict[str, Any]:
        """Agent ``agent``'s statistics as ``pgcourse.rl.envs.normalizer_state`` writes them (a host read: between
        updates)."""
        mean, var, count = torch.stack([self.mean[agent], self.var[agent], self.count[agent]]).cpu().tolist()
        return {"var": var, "mean": mean, "count": count, "epsilon": float(self.epsilon)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Statistics pickled by an older pgcourse (one agent, no agent axis, ``gamma`` a number) get their axis."""
        if state["accumulated"].dim() == 1:
            for name in ("accumulated", "prev_done", "mean", "var", "count"):
                state[name] = state[name].unsqueeze(0)
            state["gamma"] = torch.tensor([[state["gamma"]]], dtype=torch.float32, device=state["mean"].device)
        self.__dict__.update(state)


@dataclass
class StepRecord:
    """What one rollout's steps leave for the history, read once at its end, as arrays (no Python object per
    episode): per step ``[T]``, how many sub-environments made a transition and the host clock when the step was
    taken; per finished episode ``[E]``, in the order they ended (step by step, env order within a step), the
    step that ended it, its return and its length."""

    valid_counts: np.ndarray     # [T] int64
    clock: np.ndarray            # [T] float64, time.perf_counter() of each step
    episode_steps: np.ndarray    # [E] int64, the rollout step that ended each episode
    episode_returns: np.ndarray  # [E] float64
    episode_lengths: np.ndarray  # [E] int64

    @classmethod
    def empty(cls) -> StepRecord:
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64))


class TensorRolloutStepper:
    """Steps a :class:`TensorVectorEnv` for training with nothing read on the host per step: the training
    side of the env, the same protocol as the numpy path's stepper (``pgcourse.rl.algorithms.trainer``).

    **Agents.** The env's sub-environments are ``A = len(seeds)`` equal blocks, one per agent (``pg.train_many``
    trains A agents on one env of ``A x N``; ``pg.train`` is ``A = 1``); each block is seeded with its agent's seed
    (the env's ``streams``) and has its own normalisers' statistics. Everything the stepper hands over has the
    agent axis first: observations ``[A, N, obs_dim]``, rewards and flags ``[A, N]``, one :class:`StepRecord` per agent.

    Per step it keeps on the device what gymnasium's ``RecordEpisodeStatistics`` keeps (returns of the raw
    rewards; the lengths are the env's episode clocks) and the optional normalisers (:class:`TensorObsNormalizer`,
    :class:`TensorRewardNormalizer`, gymnasium's order: episode statistics, then observations, then rewards);
    :meth:`end_rollout` picks the finished episodes out on the device and reads them in one copy.

    Args:
        envs: the environments (reset here with ``seeds``), ``streams=len(seeds)``.
        seeds: one seed per agent (an int: one agent).
        gamma: the discount of the reward normaliser, one per agent (a number: the same for all).
    """

    def __init__(self, envs: TensorVectorEnv, seeds: int | Sequence[int], *, normalize_obs: bool,
                 normalize_reward: bool, gamma: float | Sequence[float]):
        seeds = [seeds] if isinstance(seeds, int) else [int(seed) for seed in seeds]
        self.envs, self.device, self.agents = envs, envs.device, len(seeds)
        if len(envs.generators) != self.agents:
            raise ValueError(f"{envs!r} has {len(envs.generators)} stream(s) of start states for {self.agents} agents")
        n = envs.num_envs // self.agents
        obs_dim = int(envs.single_observation_space.shape[0])
        gammas = [gamma] * self.agents if isinstance(gamma, (int, float)) else list(gamma)
        self.obs_normalizer = TensorObsNormalizer(obs_dim, self.device, agents=self.agents) if normalize_obs else None
        self.reward_normalizer = TensorRewardNormalizer(n, gammas, self.device) if normalize_reward else None
        raw_obs, _ = envs.reset(seed=seeds if self.agents > 1 else seeds[0])
        self.obs = self._observe(raw_obs)  # [A, N, obs_dim] float32
        self.autoresetting = torch.zeros((self.agents, n), dtype=torch.bool, device=self.device)  # [A, N]
        self._episode_return = torch.zeros((self.agents, n), dtype=envs.dtype, device=self.device)  # [A, N] raw
        self._records: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []  # per step: resetting, done, return, length
        self._clock: list[float] = []

    def _agents_first(self, tensor: Tensor) -> Tensor:
        """``[A * N, ...]`` as ``[A, N, ...]`` (a view)."""
        return tensor.view(self.agents, -1, *tensor.shape[1:])

    def _observe(self, raw_obs: Tensor) -> Tensor:
        raw_obs = self._agents_first(raw_obs)  # [A, N, obs_dim]
        return raw_obs if self.obs_normalizer is None else self.obs_normalizer(raw_obs)

    def observation(self) -> Tensor:
        """``[A, N, obs_dim]`` float32 on the device: what the policies see now."""
        return self.obs

    def begin_rollout(self, steps: int) -> Tensor:
        """Start a rollout of ``steps`` steps (their start states are drawn now, in one call per agent); returns
        the flags of the step before it, ``[A, N]`` bool: True where its first step is a reset step."""
        self._records, self._clock = [], []
        self.envs.reserve_start_states(steps)
        return self.autoresetting

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Step with ``actions [A, N]`` (or ``[A, N, D]``, on the device); returns ``(rewards [A, N] float32,
        terminated [A, N] bool, truncated [A, N] bool)`` on the device, rewards scaled if reward normalisation is on."""
        resetting = self.autoresetting  # [A, N] this step is a reset step, not a transition
        raw_obs, reward, terminated, truncated, _ = self.envs.step(actions.flatten(0, 1), check_range=False)
        reward, terminated, truncated = (self._agents_first(x) for x in (reward, terminated, truncated))  # [A, N]
        self._episode_return = (self._episode_return + reward).masked_fill_(resetting, 0.0)
        done = self._agents_first(self.envs.episode_ended)  # [A, N] terminated | truncated, as the env has it
        self._records.append((resetting, done, self._episode_return, self._agents_first(self.envs.elapsed)))
        self._clock.append(time.perf_counter())
        self.obs = self._observe(raw_obs)
        if self.reward_normalizer is not None:
            reward = self.reward_normalizer(reward, terminated, truncated)
        self.autoresetting = done
        return reward.to(torch.float32), terminated, truncated

    def end_rollout(self) -> list[StepRecord]:
        """Each agent's finished episodes and transition counts of the rollout, read off the device in **one** copy
        (after the ``nonzero`` that finds them, which tells the host how many: the copy is the rollout's episodes,
        not its ``[T, A, N]`` steps)."""
        if not self._records:
            return [StepRecord.empty() for _ in range(self.agents)]
        dtype = self.envs.dtype  # counts, steps, agents, lengths (< 2**24) and returns are exact in it
        resetting, done, returns, lengths = (torch.stack(column) for column in zip(*self._records))  # 4 x [T, A, N]
        steps, width = len(self._records), done.shape[1] * done.shape[2]
        ended = done.reshape(-1).nonzero().squeeze(1)  # [E] row-major: step by step, agent, env order within a step
        table = torch.cat([(~resetting).sum(dim=2).T.reshape(-1).to(dtype), (ended // width).to(dtype),
                           (ended % width // done.shape[2]).to(dtype), returns.reshape(-1)[ended].to(dtype),
                           lengths.reshape(-1)[ended].to(dtype)]).cpu().numpy()  # the one copy
        counts = table[:steps * self.agents].astype(np.int64).reshape(self.agents, steps)
        episode_steps, agent_of, episode_returns, episode_lengths = table[steps * self.agents:].reshape(4, -1)
        clock = np.asarray(self._clock, dtype=np.float64)
        self._records, self._clock = [], []
        records = []
        for agent in range(self.agents):
            mine = agent_of == agent  # [E], in the order they ended
            records.append(StepRecord(counts[agent], clock, episode_steps[mine].astype(np.int64),
                                      episode_returns[mine].astype(np.float64), episode_lengths[mine].astype(np.int64)))
        return records

    def normalizer_state(self, agent: int = 0) -> dict[str, Any]:
        """Agent ``agent``'s normaliser statistics in :func:`pgcourse.rl.envs.normalizer_state`'s format (empty
        without)."""
        state: dict[str, Any] = {}
        if self.obs_normalizer is not None:
            state["obs"] = self.obs_normalizer.state(agent)
        if self.reward_normalizer is not None:
            state["reward"] = self.reward_normalizer.state(agent)
        return state

    def agent(self, a: int) -> tuple[TensorVectorEnv, TensorRolloutStepper]:
        """Agent ``a``'s env and stepper on their own (copies, one agent: what ``pg.train`` would have now), so that
        its run saves and resumes as a single-agent run. Between rollouts only."""
        n, envs = self.envs.num_envs // self.agents, self.envs
        rows = slice(a * n, (a + 1) * n)
        own_envs = TensorVectorEnv(envs.spec.env_id, n, device=envs.device, dtype=envs.dtype,
                                   max_episode_steps=envs.max_episode_steps)
        own_envs.generators[0].set_state(envs.generators[a].get_state())
        own_envs._state, own_envs._elapsed, own_envs._done = (x[rows].clone() for x in
                                                               (envs.state, envs._elapsed, envs._done))
        own = copy.copy(self)
        own.envs, own.agents, own._records, own._clock = own_envs, 1, [], []
        own.obs, own.autoresetting, own._episode_return = (x[a:a + 1].clone() for x in
                                                           (self.obs, self.autoresetting, self._episode_return))
        for name in ("obs_normalizer", "reward_normalizer"):
            normalizer = getattr(self, name)
            if normalizer is not None:
                setattr(own, name, copy.copy(normalizer))
                for field, value in vars(normalizer).items():
                    if isinstance(value, Tensor):
                        setattr(getattr(own, name), field, value[a:a + 1].clone())
        return own_envs, own

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A stepper pickled by an older pgcourse (one agent, ``[N]`` tensors, its own episode lengths) gets its
        agent axis."""
        if "agents" not in state:
            state["agents"] = 1
            for name in ("obs", "autoresetting", "_episode_return"):
                state[name] = state[name].unsqueeze(0)
            state.pop("_episode_length", None)
        self.__dict__.update(state)
