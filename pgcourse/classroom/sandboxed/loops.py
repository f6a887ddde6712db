"""The loop stages in the sandbox: what the learner's loops may use there, and the player of a stage's case.

The write-the-loop exercises (lesson 01's REINFORCE loop, chapter 04b's PPO from scratch) hand the
learner's functions live objects: vector environments, networks, optimisers, a config, a rollout. Those
never cross the wire (only data does), so the grading worker describes a stage's case as data (a *spec*:
the environments' seed and the actions that bring them to the case's state, the networks' weights, the
optimisers' settings, the config's fields, the exact state of torch's generator at each call) and
:func:`play` builds the case here, next to the learner's functions, calls them and sends back data
(their results, the networks' parameters after each call, the inputs as the call left them). The check,
in the trusted worker, compares that data with the reference's, exactly as in the notebook.

The course package is not in the sandbox (it holds the reference answers). The few pieces of it that a
loop is *given* by the exercise contracts, and that answer no exercise of the chapter being graded, are
offered by :func:`install_kit` as ``pgcourse.networks.CategoricalPolicy`` / ``ValueNet``,
``pgcourse.algorithms.rollout.Rollout`` and ``pgcourse.minibatch_indices`` (``pg.networks...``): copies
of the package's code (``tests/test_grading_loops.py`` checks they give the same numbers), offered only
when no answer cell of the chapter defines that name (chapter 04 asks for ``minibatch_indices``).

Imports only torch, numpy and gymnasium: the grader copies this module into its sandbox.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

KIT_NAMES = ("CategoricalPolicy", "ValueNet", "Rollout", "minibatch_indices")
NOT_A_TENSOR = "not a tensor: "  # pgcourse.checks.stages.NOT_A_TENSOR


# --------------------------------------------------------------------------------------------------
# The kit: copies of the package's networks, Rollout, minibatch_indices and CartPole vector env
# --------------------------------------------------------------------------------------------------

def _orthogonal_init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def _mlp(in_dim: int, hidden_sizes: tuple[int, ...], out_dim: int, out_gain: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for hidden in hidden_sizes:
        layers += [_orthogonal_init(nn.Linear(width, hidden), math.sqrt(2.0)), nn.Tanh()]
        width = hidden
    layers.append(_orthogonal_init(nn.Linear(width, out_dim), out_gain))
    return nn.Sequential(*layers)


class CategoricalPolicy(nn.Module):
    """``pgcourse.networks.CategoricalPolicy`` (its network and initialisation): obs [B, obs_dim] -> logits."""

    kind = "discrete"

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.net = _mlp(obs_dim, tuple(hidden_sizes), n_actions, out_gain=0.01)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs)


class ValueNet(nn.Module):
    """``pgcourse.networks.ValueNet``: obs [B, obs_dim] -> values [B]."""

    def __init__(self, obs_dim: int, hidden_sizes: tuple[int, ...] = (64, 64)):
        super().__init__()
        self.net = _mlp(obs_dim, tuple(hidden_sizes), 1, out_gain=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(obs).squeeze(-1)


@dataclasses.dataclass
class Rollout:
    """``pgcourse.algorithms.rollout.Rollout``: the [T, N] fields of a rollout."""

    obs: Tensor
    actions: Tensor
    log_probs: Tensor
    values: Tensor
    next_values: Tensor
    rewards: Tensor
    terminated: Tensor
    truncated: Tensor
    valid: Tensor


ROLLOUT_FIELDS = tuple(field.name for field in dataclasses.fields(Rollout))


def minibatch_indices(batch_size: int, minibatch_size: int, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> list[Tensor]:
    """``pgcourse.batching.minibatch_indices``."""
    if batch_size < 1 or minibatch_size < 1:
        raise ValueError(f"batch_size and minibatch_size must be >= 1, got {batch_size} and {minibatch_size}")
    num_minibatches = -(-batch_size // minibatch_size)
    permutation = torch.randperm(batch_size, generator=generator).to(device)
    return list(torch.tensor_split(permutation, num_minibatches))


def _kit_module(name: str, items: dict[str, Any], blocked: Any) -> types.ModuleType:
    """A module offering ``items``; any other attribute behaves as the blocked course package's."""
    base = type(blocked) if isinstance(blocked, types.ModuleType) else types.ModuleType
    module = base(name, f"{name}: what the grader offers of it in the sandbox")
    module.__path__ = []
    for key, value in items.items():
        setattr(module, key, value)
    return module


def install_kit(allowed: list[str]) -> list[str]:
    """Offer the kit's ``allowed`` names through the (blocked) course package; returns the names offered."""
    names = [name for name in allowed if name in KIT_NAMES]
    blocked = sys.modules.get("pgcourse")
    if blocked is None or not names:
        return []
    kit = {name: globals()[name] for name in names}
    rl = _kit_module("pgcourse.rl", {}, blocked)
    # each kit module under its name (pgcourse.rl.networks) and the name it had before (pgcourse.networks)
    for parent, prefix in ((blocked, "pgcourse."), (rl, "pgcourse.rl.")):
        networks = {name: kit[name] for name in ("CategoricalPolicy", "ValueNet") if name in kit}
        if networks:
            module = _kit_module(f"{prefix}networks", networks, blocked)
            sys.modules[f"{prefix}networks"] = module
            parent.networks = module
        if "Rollout" in kit:
            algorithms = _kit_module(f"{prefix}algorithms", {}, blocked)
            rollout = _kit_module(f"{prefix}algorithms.rollout", {"Rollout": Rollout}, blocked)
            algorithms.rollout = rollout
            sys.modules[f"{prefix}algorithms"], sys.modules[f"{prefix}algorithms.rollout"] = algorithms, rollout
            parent.algorithms = algorithms
        if "minibatch_indices" in kit:
            batching = _kit_module(f"{prefix}batching", {"minibatch_indices": minibatch_indices}, blocked)
            sys.modules[f"{prefix}batching"] = batching
            parent.batching = batching
    if "minibatch_indices" in kit:
        blocked.minibatch_indices = minibatch_indices
    sys.modules["pgcourse.rl"] = rl
    blocked.rl = rl
    return names


def _seeded_cartpole_class() -> type:
    """``pgcourse.envs.SeededCartPoleVectorEnv``: gymnasium's vectorised CartPole playing a SyncVectorEnv's
    episodes bit for bit (built lazily: gymnasium is imported only when a stage needs it)."""
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
    from gymnasium.utils import seeding

    class SeededCartPoleVectorEnv(CartPoleVectorEnv):
        def __init__(self, num_envs: int = 1, max_episode_steps: int = 500):
            super().__init__(num_envs=num_envs, max_episode_steps=max_episode_steps)
            self._env_rngs: list[Any] = [None] * num_envs

        def _draw_start(self, i: int) -> np.ndarray:
            if self._env_rngs[i] is None:
                self._env_rngs[i], _ = seeding.np_random()
            return self._env_rngs[i].uniform(low=self.low, high=self.high, size=(4,))

        def reset(self, *, seed: Any = None, options: dict[str, Any] | None = None):
            seeds = list(seed) if isinstance(seed, list | tuple) else \
                [None if seed is None else seed + i for i in range(self.num_envs)]
            if len(seeds) != self.num_envs:
                raise ValueError(f"{len(seeds)} seeds for {self.num_envs} sub-environments")
            _, info = super().reset(seed=None if seed is None else seeds[0], options=options)
            for i, env_seed in enumerate(seeds):
                if env_seed is not None:
                    self._env_rngs[i], _ = seeding.np_random(env_seed)
                self.state[:, i] = self._draw_start(i)
            self.low, self.high = -0.05, 0.05
            return self.state.T.astype(np.float32), info

        def step(self, action: np.ndarray):
            restarting = np.flatnonzero(self.prev_done)
            obs, reward, terminated, truncated, info = super().step(action)
            if restarting.size:
                for i in restarting:
                    self.state[:, i] = self._draw_start(int(i))
                obs = self.state.T.astype(np.float32)
            return obs, reward.astype(np.float64), terminated, truncated, info

    return SeededCartPoleVectorEnv


def cartpole_envs(num_envs: int, time_limit: int | None, fast: bool) -> Any:
    """CartPole-v1 vector envs with NEXT_STEP autoreset: the stage cases' ``SyncVectorEnv`` (``fast=False``,
    ``pgcourse.checks.stages.cartpole_envs``), or training's fast one (``make_raw_vector_env(..., "auto")``)."""
    import gymnasium as gym

    if fast:
        envs = _seeded_cartpole_class()(num_envs, max_episode_steps=time_limit or 500)
        envs.spec = gym.spec("CartPole-v1")
        return envs

    def make() -> Any:
        return gym.make("CartPole-v1") if time_limit is None else gym.make("CartPole-v1", max_episode_steps=time_limit)
    return gym.vector.SyncVectorEnv([make for _ in range(num_envs)], autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)


def _counting_envs_class() -> type:
    """``pgcourse.checks.stages.CountingEnvs``: counts what the learner's loop does with the envs."""
    import gymnasium as gym

    class CountingEnvs(gym.vector.VectorWrapper):
        def __init__(self, env: Any, first_episode_only: bool = False):
            super().__init__(env)
            self.first_episode_only = first_episode_only
            self.steps, self.transitions = 0, 0
            self.transitions_at_step: list[int] = []
            self.episodes: list[tuple[float, int, int]] = []
            self._resetting = np.zeros(self.num_envs, dtype=bool)
            self._returns = np.zeros(self.num_envs)
            self._lengths = np.zeros(self.num_envs, dtype=np.int64)
            self._finished: dict[int, tuple[float, int]] = {}

        def flush(self) -> None:
            for index in sorted(self._finished):
                episode_return, length = self._finished[index]
                self.transitions += length
                self.episodes.append((episode_return, length, self.transitions))
            self._finished = {}

        def reset(self, *, seed: Any = None, options: Any = None):
            self.flush()
            self._resetting[:] = False
            self._returns[:] = 0.0
            self._lengths[:] = 0
            return self.env.reset(seed=seed, options=options)

        def step(self, actions: Any):
            valid = ~self._resetting
            if self.first_episode_only:
                valid &= ~np.isin(np.arange(self.num_envs), list(self._finished))
            obs, rewards, terminated, truncated, infos = self.env.step(actions)
            ended = (np.asarray(terminated) | np.asarray(truncated)) & valid
            self.steps += 1
            if not self.first_episode_only:
                self.transitions += int(valid.sum())
            self._returns += np.where(valid, rewards, 0.0)
            self._lengths += valid
            for i in np.flatnonzero(ended):
                if self.first_episode_only:
                    self._finished[int(i)] = (float(self._returns[i]), int(self._lengths[i]))
                else:
                    self.episodes.append((float(self._returns[i]), int(self._lengths[i]), self.transitions))
                self._returns[i], self._lengths[i] = 0.0, 0
            self._resetting = np.asarray(terminated) | np.asarray(truncated)
            self.transitions_at_step.append(self.transitions)
            return obs, rewards, terminated, truncated, infos

    return CountingEnvs


# --------------------------------------------------------------------------------------------------
# The proof that a training loop learned: what it played and every optimiser step it took
# (``pgcourse.checks.learning_proof`` records the same in a notebook and checks the record)
# --------------------------------------------------------------------------------------------------

def _recording_envs_class() -> type:
    """``pgcourse.checks.learning_proof.RecordingEnvs``: records every reset and step of the learner's loop."""
    import gymnasium as gym

    class RecordingEnvs(gym.vector.VectorWrapper):
        def __init__(self, env: Any):
            super().__init__(env)
            self.resets: list[list[Any]] = []
            self.rows: dict[str, list[np.ndarray]] = {name: [] for name in ("obs", "actions", "rewards",
                                                                              "terminated", "truncated")}
            self._obs: np.ndarray | None = None

        @property
        def clock(self) -> int:
            return len(self.rows["actions"])

        def reset(self, *, seed: Any = None, options: Any = None):
            obs, info = self.env.reset(seed=seed, options=options)
            self.resets.append([self.clock, seed is not None])
            self._obs = np.array(obs, dtype=np.float32)
            return obs, info

        def step(self, actions: Any):
            obs, rewards, terminated, truncated, infos = self.env.step(actions)
            row = {"obs": self._obs, "actions": np.array(actions, dtype=np.int64).reshape(self.num_envs),
                   "rewards": np.array(rewards, dtype=np.float32), "terminated": np.array(terminated, dtype=bool),
                   "truncated": np.array(truncated, dtype=bool)}
            for name, value in row.items():
                self.rows[name].append(value)
            self._obs = np.array(obs, dtype=np.float32)
            return obs, rewards, terminated, truncated, infos

        def data(self) -> dict[str, Any]:
            empty = {"obs": np.zeros((0, self.num_envs, 4), dtype=np.float32)}  # no step played: [0, N] of each
            return {"resets": [list(reset) for reset in self.resets],
                    **{name: torch.as_tensor(np.stack(rows) if rows else empty.get(name, np.zeros((0, self.num_envs))))
                       for name, rows in self.rows.items()}}

    return RecordingEnvs


OPTIMIZER_SETTINGS = ("lr", "eps", "betas", "weight_decay", "amsgrad", "maximize")


class StepRecorder:
    """``pgcourse.checks.learning_proof.StepRecorder``: while active, every ``optimizer.step()`` of any torch
    optimiser is recorded (the parameters before and after it, the gradients it used, the optimiser's settings and
    identity, the env step it came after), through torch's global optimiser hooks."""

    def __init__(self, clock: Any, keep: int | None = None):
        self.clock = clock
        self.keep = keep  # record the tensors of the first `keep` steps only (all if None); the rest are counted
        self.steps: list[dict[str, Any]] = []
        self._handles: list[Any] = []
        self._optimizers: dict[int, Any] = {}  # held, so that no other optimiser gets one's id while recording

    def __enter__(self) -> StepRecorder:
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
        self._handles = [register_optimizer_step_pre_hook(self._before), register_optimizer_step_post_hook(self._after)]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()

    @staticmethod
    def _params(optimizer: Any) -> list[Tensor]:
        return [p for group in optimizer.param_groups for p in group["params"]]

    def _before(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        params = self._params(optimizer)
        group = optimizer.param_groups[0]
        settings = {key: (tuple(float(b) for b in group[key]) if key == "betas" else
                          (bool(group[key]) if isinstance(group[key], bool) else float(group[key])))
                    for key in OPTIMIZER_SETTINGS if key in group}
        self._optimizers[id(optimizer)] = optimizer
        kept = self.keep is None or len(self.steps) < self.keep
        self.steps.append({"optimizer": type(optimizer).__name__[:100], "optimizer_id": id(optimizer),
                           "groups": len(optimizer.param_groups), "settings": settings, "env_step": int(self.clock()),
                           "ids": [id(p) for p in params], "kept": kept,
                           "before": [p.detach().clone() for p in params] if kept else [],
                           "grad": [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
                           if kept else []})

    def _after(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self.steps and self.steps[-1]["kept"]:
            self.steps[-1]["after"] = [p.detach().clone() for p in self._params(optimizer)]

    def data(self, returned: Any) -> list[dict[str, Any]]:
        """The steps as data, each parameter named by the returned module's name for it (``None``: a tensor of
        no returned module's); the optimisers numbered in the order they first stepped."""
        names = {id(p): name for name, p in returned.named_parameters()} if isinstance(returned, nn.Module) else {}
        numbers: dict[int, int] = {}
        steps = []
        for step in self.steps:
            step = dict(step)
            step["optimizer_number"] = numbers.setdefault(step.pop("optimizer_id"), len(numbers))
            step["names"] = [names.get(i) for i in step.pop("ids")]
            step.setdefault("after", step["before"])
            steps.append(step)
        return steps


# --------------------------------------------------------------------------------------------------
# Exercise 04b's train_ppo: what the loop did with its envs and optimisers
# (``pgcourse.checks.ch04b_glue`` records the same in a notebook and checks the record)
# --------------------------------------------------------------------------------------------------

def _glue_recorder_class() -> type:
    """``pgcourse.checks.ch04b_glue.GlueRecorder`` (built lazily: gymnasium is imported only when a stage needs
    it): while active, records the loop's resets and steps of ``recorder.envs``, whether each step's actions were
    chosen on the observation the envs had just returned, and every optimiser step (its env step, learning
    rates, the parameters it left)."""
    import gymnasium as gym

    class GlueRecorder:
        def __init__(self, envs: Any):
            self.envs = WatchedEnvs(envs, self)
            self.clock = 0
            self.resets: list[list[Any]] = []
            self.stale: list[int] = []
            self.optimizers: dict[int, dict[str, Any]] = {}
            self.returned: int | None = None
            self._obs: Tensor | None = None
            self._fed = True
            self._handles: list[Any] = []
            # for the PPO-gradient proof (:func:`ppo_gradient_proof`): every env step as data, each actor step's
            # weights, gradient and the observations the policy was called on since the previous actor step, the
            # critic's weights when each update began, the modules called on observations
            space = envs.single_action_space
            self.obs_dim = int(envs.single_observation_space.shape[0])
            self.n_actions = int(space.n) if hasattr(space, "n") else None
            self.env_steps: list[tuple[Any, ...]] = []
            self.actor_steps: list[dict[str, Any]] = []
            self.critic_at: dict[int, Tensor] = {}
            self.obs_modules: dict[int, nn.Module] = {}
            self._policy_inputs: list[Tensor] = []
            self.gradient_proof: dict[str, Any] | None = None

        def __enter__(self) -> Any:
            from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
            self._handles = [register_optimizer_step_pre_hook(self._stepping),
                             register_optimizer_step_post_hook(self._stepped),
                             torch.nn.modules.module.register_module_forward_pre_hook(self._forward),
                             torch.nn.modules.module.register_module_forward_hook(self._forward_done)]
            return self

        def __exit__(self, *exc: object) -> None:
            for handle in self._handles:
                handle.remove()
            self._handles = []

        def saw(self, obs: Any) -> None:
            self._obs, self._fed = torch.as_tensor(np.asarray(obs, dtype=np.float32)), False

        def stepping(self) -> None:
            if not self._fed:
                self.stale.append(self.clock)
            self.clock += 1

        def _forward(self, module: nn.Module, args: tuple[Any, ...]) -> None:
            if self._obs is None or not args or not isinstance(args[0], Tensor):
                return
            x = args[0]
            if tuple(x.shape) == tuple(self._obs.shape):
                self._fed = torch.equal(x.detach().to("cpu", torch.float32), self._obs)

        def _forward_done(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
            """A call on a batch of observations: remember the module; a call that gave action logits is the
            policy's, and its input is a candidate minibatch of the next actor step."""
            if not args or not isinstance(args[0], Tensor) or args[0].dim() != 2 or args[0].shape[-1] != self.obs_dim:
                return
            self.obs_modules.setdefault(id(module), module)
            if isinstance(output, Tensor) and output.dim() == 2 and output.shape[-1] == self.n_actions:
                x = args[0].detach().to("cpu", torch.float32)
                if not any(x.shape == seen.shape and torch.equal(x, seen) for seen in self._policy_inputs):
                    self._policy_inputs.append(x.clone())

        @staticmethod
        def _flat(optimizer: Any) -> Tensor:
            return torch.cat([p.detach().reshape(-1).to("cpu") for group in optimizer.param_groups
                              for p in group["params"]]).clone()

        def _stepping(self, optimizer: Any, args: Any, kwargs: Any) -> None:
            if id(optimizer) not in self.optimizers:
                self.optimizers[id(optimizer)] = {
                    "optimizer": optimizer, "shapes": [list(p.shape) for group in optimizer.param_groups
                                                       for p in group["params"]],
                    "clock": [], "lr": [], "outside": [], "first": self._flat(optimizer), "last": None}
            record = self.optimizers[id(optimizer)]
            if record["last"] is not None and not torch.equal(self._flat(optimizer), record["last"]):
                record["outside"].append(len(record["clock"]))  # written since its last step, not by it
            out_shape = record["shapes"][-1] if record["shapes"] else None
            if out_shape == [self.n_actions]:  # the actor: its weights and gradient as it steps
                params = [p for group in optimizer.param_groups for p in group["params"]]
                grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1)
                                  .to("cpu", torch.float32) for p in params]).clone()
                self.actor_steps.append({"clock": self.clock, "theta": self._flat(optimizer), "grad": grad,
                                         "inputs": self._policy_inputs})
                self._policy_inputs = []
            elif out_shape == [1] and self.clock not in self.critic_at:  # the critic as the rollout saw it
                self.critic_at[self.clock] = self._flat(optimizer)

        def _stepped(self, optimizer: Any, args: Any, kwargs: Any) -> None:
            record = self.optimizers[id(optimizer)]
            record["clock"].append(self.clock)
            record["lr"].append([float(group["lr"]) for group in optimizer.param_groups])
            record["last"] = self._flat(optimizer)

        def finish(self, output: Any, config: Any = None) -> None:
            policy = output[0] if isinstance(output, tuple | list) and output else output
            if config is not None:
                try:
                    self.gradient_proof = _ppo_proof().ppo_gradient_proof(self, config)
                except Exception as error:  # noqa: BLE001 - the loop's own objects may be anything
                    self.gradient_proof = {"error": f"{type(error).__name__}: {str(error)[:200]}"}
            if not isinstance(policy, nn.Module):
                return
            shapes = [list(p.shape) for p in policy.parameters()]
            weights = torch.cat([p.detach().reshape(-1).to("cpu") for p in policy.parameters()]) if shapes else None
            for index, record in enumerate(self.optimizers.values()):
                if record["shapes"] == shapes and torch.equal(record["last"], weights):
                    self.returned = index
                    return

        def data(self) -> dict[str, Any]:
            return {"steps": self.clock, "resets": [list(reset) for reset in self.resets],
                    "stale": self.stale[:20], "stale_count": len(self.stale), "returned": self.returned,
                    "ppo_gradient": self.gradient_proof,
                    "optimizers": [{"shapes": record["shapes"], "clock": record["clock"], "lr": record["lr"],
                                    "outside": record["outside"][:20], "outside_count": len(record["outside"]),
                                    "moved": not torch.equal(record["first"], record["last"])}
                                   for record in self.optimizers.values()]}

    class WatchedEnvs(gym.vector.VectorWrapper):
        def __init__(self, env: Any, recorder: GlueRecorder):
            super().__init__(env)
            self.recorder = recorder

        def reset(self, *, seed: Any = None, options: Any = None):
            obs, info = self.env.reset(seed=seed, options=options)
            self.recorder.resets.append([self.recorder.clock, _seed_data(seed)])
            self.recorder.saw(obs)
            return obs, info

        def step(self, actions: Any):
            self.recorder.stepping()
            seen = self.recorder._obs
            obs, rewards, terminated, truncated, infos = self.env.step(actions)
            self.recorder.env_steps.append((seen, np.array(actions, copy=True), np.asarray(rewards, dtype=np.float32),
                                            np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool),
                                            np.asarray(obs, dtype=np.float32).copy()))
            self.recorder.saw(obs)
            return obs, rewards, terminated, truncated, infos

    return GlueRecorder


def _ppo_proof() -> types.ModuleType:
    """The sibling module ``ppo_proof`` (exercise 04b's PPO-gradient proof): imported from the package this module
    is in (``sandboxside`` in the sandbox, ``pgcourse.grading`` in the grader), or loaded from its file next to this
    one when this module was itself loaded from its file (the notebook's checks: ``pgcourse.checks.sandbox_code``)."""
    if __package__:
        return importlib.import_module(f"{__package__}.ppo_proof")
    name = f"{__name__}_ppo_proof"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "ppo_proof.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def _seed_data(seed: Any) -> Any:
    if seed is None or isinstance(seed, bool):
        return None if seed is None else str(seed)
    if isinstance(seed, int | np.integer):
        return int(seed)
    return type(seed).__name__[:50]


# --------------------------------------------------------------------------------------------------
# Exercise 06 Part B: the loop builds its envs with make_envs(env_name); during the check that name is the
# check's, building recorded envs (pgcourse.checks.ch06_proof reads the record)
# --------------------------------------------------------------------------------------------------

PART_B_PROBES = {"probe-terminates": "OneStateTerminatingProbe-v0", "probe-time-limit": "OneStateTimeLimitProbe-v0"}


class EnvLog:
    """What the loop did on the envs the check's ``make_envs`` built, all envs on one clock (the number of
    ``step`` calls so far): each step's env, observation, action, reward and flags, the final observation of a
    step that ended an episode, every reset, and each finished episode's return."""

    def __init__(self) -> None:
        self.envs_built = 0
        self.rows: dict[str, list[Any]] = {name: [] for name in ("env", "obs", "actions", "rewards", "terminated",
                                                                  "truncated")}
        self.final: list[list[Any]] = []     # [clock of the step, its final observation]
        self.resets: list[list[Any]] = []    # [clock, env, seeded]
        self.episodes: list[list[Any]] = []  # [clock after the step that ended it, env, return]

    @property
    def clock(self) -> int:
        return len(self.rows["actions"])

    def data(self) -> dict[str, Any]:
        dim = len(self.rows["obs"][0]) if self.rows["obs"] else 1
        kinds = {"env": torch.int64, "obs": torch.float32, "actions": torch.int64, "rewards": torch.float32,
                 "terminated": torch.bool, "truncated": torch.bool}
        rows = {name: torch.as_tensor(np.asarray(values)) if values else
                torch.zeros((0, dim) if name == "obs" else (0,), dtype=kinds[name])
                for name, values in self.rows.items()}
        return {"envs_built": self.envs_built, **rows, "final": [[int(c), list(o)] for c, o in self.final],
                "resets": [list(r) for r in self.resets], "episodes": [list(e) for e in self.episodes]}


def _recorded_env_class() -> type:
    import gymnasium as gym

    class RecordedEnv(gym.Wrapper):
        """One env of the check's make_envs: records into the shared :class:`EnvLog`; changes nothing."""

        def __init__(self, env: Any, index: int, log: EnvLog):
            super().__init__(env)
            self.index, self.log = index, log
            self._obs: list[float] | None = None
            self._return: float | None = None

        def reset(self, *, seed: Any = None, options: Any = None):
            obs, info = self.env.reset(seed=seed, options=options)
            self.log.resets.append([self.log.clock, self.index, seed is not None])
            self._obs, self._return = np.asarray(obs, dtype=np.float32).reshape(-1).tolist(), 0.0
            return obs, info

        def step(self, action: Any):
            obs, reward, terminated, truncated, info = self.env.step(action)
            log = self.log
            for name, value in (("env", self.index), ("obs", self._obs),
                                ("actions", int(np.asarray(action).reshape(-1)[0])), ("rewards", float(reward)),
                                ("terminated", bool(terminated)), ("truncated", bool(truncated))):
                log.rows[name].append(value)
            self._obs = np.asarray(obs, dtype=np.float32).reshape(-1).tolist()
            if self._return is not None:
                self._return += float(reward)
            if terminated or truncated:
                log.final.append([log.clock - 1, self._obs])
                if self._return is not None:
                    log.episodes.append([log.clock, self.index, self._return])
                self._return = None  # the next episode counts from the next reset
            return obs, reward, terminated, truncated, info

    return RecordedEnv


def recording_make_envs(log: EnvLog) -> Any:
    """The check's ``make_envs(name, num_envs=8)``: Part B's probes (``pgcourse.episode_cases.OneStateProbe``) or
    ``gymnasium.make(name)``, each wrapped to record into ``log``."""
    import gymnasium as gym

    recorded = _recorded_env_class()

    def make_envs(name: str, num_envs: int = 8) -> list[Any]:
        envs = [recorded(gym.make(PART_B_PROBES.get(name, name)), log.envs_built + i, log) for i in range(num_envs)]
        log.envs_built += num_envs
        return envs

    return make_envs


def steps_data(recorder: StepRecorder) -> list[dict[str, Any]]:
    """The recorded optimiser steps as data, the parameters numbered in the order they first stepped
    (``params``), the optimisers too."""
    numbers: dict[int, int] = {}
    optimizers: dict[int, int] = {}
    steps = []
    for step in recorder.steps:
        step = dict(step)
        step["optimizer_number"] = optimizers.setdefault(step.pop("optimizer_id"), len(optimizers))
        step["params"] = [numbers.setdefault(i, len(numbers)) for i in step.pop("ids")]
        step.setdefault("after", step["before"])
        steps.append(step)
    return steps


def play_with_make_envs(fn: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Call ``fn(*args, **kwargs)`` (``spec["make_envs"]``) with the name ``make_envs`` of its module (the notebook's
    namespace) swapped, for the call, for :func:`recording_make_envs`, every optimiser step recorded (the tensors of
    the first ``keep``); returns ``{"calls": [{"result", "optimizer_steps"}], "played": the EnvLog's data}``. The
    learner's exception propagates."""
    call = spec["make_envs"]
    namespace = getattr(fn, "__globals__", None)
    log = EnvLog()
    missing = object()
    original = missing if namespace is None else namespace.get("make_envs", missing)
    if namespace is not None:
        namespace["make_envs"] = recording_make_envs(log)
    threads = torch.get_num_threads()
    try:
        with StepRecorder(lambda: log.clock, keep=int(call["keep"])) as recorder:
            result = fn(*call.get("args", []), **call.get("kwargs", {}))
    finally:
        torch.set_num_threads(threads)
        if namespace is not None:
            if original is missing:
                namespace.pop("make_envs", None)
            else:
                namespace["make_envs"] = original
    return {"calls": [{"result": _to_data(result), "optimizer_steps": steps_data(recorder)}], "played": log.data()}


# --------------------------------------------------------------------------------------------------
# Playing a case
# --------------------------------------------------------------------------------------------------

class SpecError(ValueError):
    """A case description this module cannot play (the worker's mistake, never the learner's)."""


def make_config(fields: dict[str, Any], name: str = "Config") -> Any:
    """A frozen dataclass instance with the config's fields (what the learner's code reads as ``config.x``)."""
    if not isinstance(fields, dict) or not all(isinstance(key, str) and key.isidentifier() for key in fields):
        raise SpecError("bad config")
    cls = dataclasses.make_dataclass(name, [(key, Any) for key in fields], frozen=True)
    return cls(**fields)


def _network(description: dict[str, Any]) -> nn.Module:
    kinds = {"CategoricalPolicy": CategoricalPolicy, "ValueNet": ValueNet}
    cls = kinds.get(description.get("class"))
    if cls is None:
        raise SpecError("bad network")
    args = [int(description["obs_dim"])] + ([int(description["n_actions"])] if cls is CategoricalPolicy else [])
    module = cls(*args, tuple(int(h) for h in description["hidden_sizes"]))
    module.load_state_dict(description["state"])
    return module


def _to_data(value: Any, depth: int = 0) -> Any:
    """What a learner's function returned, as data: tensors (their requires_grad kept), arrays, numbers,
    strings, containers, dataclasses (a Rollout) as dicts of their fields, modules as their type and weights;
    anything else as ``"not a tensor: <type>"``."""
    if depth > 8:
        return NOT_A_TENSOR + type(value).__name__
    if value is None or isinstance(value, bool | int | float | str | Tensor | np.ndarray | np.generic):
        return value
    if isinstance(value, tuple | list):
        return type(value)(_to_data(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return {key: _to_data(item, depth + 1) for key, item in value.items()
                if isinstance(key, str | int | float | bool)}
    if isinstance(value, nn.Module):
        return {"module": type(value).__name__[:100],
                "state": {key: tensor.detach().clone() for key, tensor in value.state_dict().items()}}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _to_data(getattr(value, field.name), depth + 1) for field in dataclasses.fields(value)}
    if any(hasattr(value, name) for name in ROLLOUT_FIELDS):
        return {name: _to_data(getattr(value, name), depth + 1) for name in ROLLOUT_FIELDS if hasattr(value, name)}
    return NOT_A_TENSOR + type(value).__name__[:100]


def _argument(item: Any, objects: dict[str, Any], results: list[Any] = ()) -> Any:
    if not isinstance(item, dict) or len(item) != 1:
        raise SpecError("bad argument")
    (kind, value), = item.items()
    if kind == "returned":  # [call, item]: what an earlier call of the case returned (its item-th part), as it is
        call, part = (int(number) for number in value)
        if not 0 <= call < len(results):
            raise SpecError(f"no call {call} before this one")
        returned = results[call]
        return returned[part] if isinstance(returned, tuple | list) and -len(returned) <= part < len(returned) \
            else None
    if kind == "ref":
        if value not in objects:
            raise SpecError(f"unknown object {value!r}")
        return objects[value]
    if kind == "rollout":
        return Rollout(**{name: value[name] for name in ROLLOUT_FIELDS})
    if kind == "value":
        return value
    raise SpecError(f"bad argument kind {kind!r}")


def _parameters(module: nn.Module) -> list[Tensor]:
    return [parameter.detach().clone() for parameter in module.parameters()]


def _build(spec: dict[str, Any]) -> dict[str, Any]:
    """The live objects of a case: envs (seeded, then brought to the case's state), networks, optimisers, config."""
    objects: dict[str, Any] = {}
    envs_spec = spec.get("envs")
    if envs_spec is not None:
        envs = cartpole_envs(int(envs_spec["num_envs"]), envs_spec.get("time_limit"), bool(envs_spec.get("fast")))
        if envs_spec.get("recording"):
            envs = objects["_recording"] = _recording_envs_class()(envs)
        if envs_spec.get("counting") is not None:
            envs = _counting_envs_class()(envs, first_episode_only=envs_spec["counting"] == "first_episode_only")
        if envs_spec.get("seed") is not None:
            envs.reset(seed=int(envs_spec["seed"]))
            for actions in envs_spec.get("replay", []):
                envs.step(np.asarray(actions))
        objects["envs"] = envs
    for name, description in (spec.get("networks") or {}).items():
        objects[name] = _network(description)
    for name, description in (spec.get("optimizers") or {}).items():
        objects[name] = torch.optim.Adam(objects[description["params_of"]].parameters(), lr=float(description["lr"]),
                                         eps=float(description["eps"]))
    if spec.get("config") is not None:
        objects["config"] = make_config(spec["config"], str(spec.get("config_name", "Config")))
    if spec.get("trust_region") is not None:
        _trust_region_objects(spec["trust_region"], objects)
    return objects


def _trust_region_objects(description: dict[str, Any], objects: dict[str, Any]) -> None:
    """Chapter 07's live arguments, built here from data: ``kl_problem`` (a tiny tanh policy's ``parameters`` and
    ``kl_grad``, the gradient of its mean KL(pi_old || pi_theta) at theta_old, with its graph), ``matvec`` (a
    symmetric matrix known only through products, counted) and ``evaluate`` (a line search's evaluate, read from
    a table of fractions; a fraction not in the table gives NaNs; the fractions tried are recorded)."""
    if not isinstance(description, dict):
        raise SpecError("bad trust-region case")
    problem = description.get("kl_problem")
    if problem is not None:
        parameters = [problem[name].detach().clone().requires_grad_(True) for name in ("w1", "b1", "w2", "b2")]
        w1, b1, w2, b2 = parameters
        new_logits = torch.tanh(problem["obs"] @ w1.T + b1) @ w2.T + b2  # [B, n]
        old_log_p = torch.log_softmax(problem["old_logits"], dim=-1)  # [B, n]
        kl = (old_log_p.exp() * (old_log_p - torch.log_softmax(new_logits, dim=-1))).sum(-1).mean()
        grads = torch.autograd.grad(kl, parameters, create_graph=True)
        objects["parameters"], objects["kl_grad"] = parameters, torch.cat([g.reshape(-1) for g in grads])  # [P]
    matrix = description.get("matvec")
    if matrix is not None:
        products = objects.setdefault("_products", [])

        def matrix_vector_product(vector: Tensor) -> Tensor:
            products.append(1)
            return matrix @ vector

        objects["matvec"] = matrix_vector_product
    table = description.get("evaluate")
    if table is not None:
        tried = objects.setdefault("_tried", [])
        known = [(float(fraction), (float(value[0]), float(value[1])))
                 for fraction, value in zip(table["fractions"], table["values"])]

        def evaluate(fraction: float) -> tuple[float, float]:
            fraction = float(fraction)
            tried.append(fraction)
            return next((value for at, value in known if math.isclose(fraction, at, rel_tol=1e-9, abs_tol=1e-15)),
                        (math.nan, math.nan))

        objects["evaluate"] = evaluate


def play(fn: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Play one case of a loop stage with the learner's ``fn``: build its objects, make its calls (each with
    torch's generator in the given state, the caller's state restored afterwards), return data.

    A call's record: ``result`` (what ``fn`` returned, as data), ``parameters`` (the named networks'
    parameters after the call), ``inputs`` (the data arguments as the call left them). With counting envs,
    ``counts``: the episodes, transitions and steps of the learner's loop. The learner's exception propagates
    (the caller reports it as theirs)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("calls"), list):
        raise SpecError("bad stage case")
    if spec.get("glue"):  # exercise 04b's train_ppo: the loop's glue is recorded as it runs
        return _play_glued(fn, spec)
    if spec.get("make_envs"):  # exercise 06's train_actor_critic: its envs are the check's, recorded
        return play_with_make_envs(fn, spec)
    objects = _build(spec)
    records, results = [], []
    try:
        for call in spec["calls"]:
            args = [_argument(item, objects, results) for item in call["args"]]
            recorder = StepRecorder(lambda: objects["_recording"].clock if "_recording" in objects else 0,
                                    keep=int(spec.get("record_steps") or 0))
            with torch.random.fork_rng(devices=[]), recorder if spec.get("record_steps") else contextlib.nullcontext():
                torch.set_rng_state(call["torch_state"])
                result = fn(*args)
            results.append(result)
            record = {"result": _to_data(result),
                      "parameters": {name: _parameters(objects[name]) for name in call.get("parameters", [])},
                      "inputs": [_to_data(arg) for item, arg in zip(call["args"], args) if "ref" not in item]}
            if spec.get("record_steps"):
                record["optimizer_steps"] = recorder.data(result)
            records.append(record)
        outcome: dict[str, Any] = {"calls": records}
        if "_products" in objects:  # chapter 07: the products conjugate gradient took, the fractions tried
            outcome["products"] = len(objects["_products"])
        if "_tried" in objects:
            outcome["tried"] = list(objects["_tried"])
        if "_recording" in objects:  # what the loop played, for the proof that it learned
            outcome["played"] = objects["_recording"].data()
        envs = objects.get("envs")
        if envs is not None and hasattr(envs, "episodes"):
            envs.flush()
            outcome["counts"] = {"episodes": [list(episode) for episode in envs.episodes],
                                 "transitions": int(envs.transitions), "steps": int(envs.steps),
                                 "transitions_at_step": list(envs.transitions_at_step)}
        return outcome
    finally:
        envs = objects.get("envs")
        if envs is not None:
            try:
                envs.close()
            except Exception:  # noqa: BLE001 - the learner may have closed them
                pass


def _play_glued(fn: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """:func:`play` with the loop ``fn(envs, config)`` watched by a glue recorder (``outcome["glue"]``: its
    record as data, None when the loop raised before returning)."""
    recorders: list[Any] = []

    def watched(envs: Any, config: Any) -> Any:
        recorder = _glue_recorder_class()(envs)
        recorders.append(recorder)
        with recorder:
            output = fn(recorder.envs, config)
        recorder.finish(output, config)
        return output

    outcome = play(watched, {**spec, "glue": False})
    outcome["glue"] = recorders[0].data() if recorders else None
    return outcome
