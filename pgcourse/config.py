"""Hyperparameters as validated dataclasses, one per algorithm family, with per-environment defaults.

A bad value fails at construction with the field's name, the value and the allowed range, so a
typo in a notebook never turns into a silent, slow, wrong training run.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

ALGORITHMS = ("reinforce", "reinforce_baseline", "a2c", "ppo")
DISCRETE_ONLY = ("reinforce", "reinforce_baseline")

# "Solved" thresholds used by evaluation and the benchmark: mean return over the evaluation episodes.
SOLVE_THRESHOLDS = {"CartPole-v1": 475.0, "Pendulum-v1": -200.0, "Acrobot-v1": -100.0,
                    "MountainCar-v0": -110.0, "LunarLander-v3": 200.0}


class ConfigError(ValueError):
    """A hyperparameter is out of its allowed range, unknown, or does not fit the environment."""


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name}={value!r} is invalid: expected {allowed}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        _fail(name, value, f"an integer in [{low}, {high if high is not None else 'inf'}]")


def _check_float(name: str, value: Any, low: float, high: float, low_open: bool = False,
                 high_open: bool = False, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if not _is_number(value) or not math.isfinite(value):
        _fail(name, value, f"a finite number in {interval}" + (" or None" if allow_none else ""))
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        _fail(name, value, f"a number in {interval}" + (" or None" if allow_none else ""))


def _check_bool(name: str, value: Any, allow_none: bool = False) -> None:
    if not (isinstance(value, bool) or (allow_none and value is None)):
        _fail(name, value, "True or False" + (" (or None for automatic)" if allow_none else ""))


@dataclass
class BaseConfig:
    """Settings every algorithm shares.

    Args:
        algo: one of ``"reinforce"``, ``"reinforce_baseline"``, ``"a2c"``, ``"ppo"``.
        env_id: a gymnasium id whose action space is ``Discrete`` or ``Box``.
        seed: seeds torch, the environments and the action sampling; same seed on CPU, same run.
        total_steps: budget of environment transitions (summed over the vector envs).
        max_episodes: also stop once this many episodes have completed (None: only ``total_steps``
            limits the run). Checked between updates, so vector-env algorithms may finish a few more.
        device: ``"auto"`` (cuda, then mps, then cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        num_envs: parallel environments in the gymnasium vector env.
        gamma: discount :math:`\\gamma \\in (0, 1]`.
        hidden_sizes: widths of the hidden layers of the actor and of the critic (tanh MLPs).
        lr: actor learning rate (Adam).
        critic_lr: critic learning rate (a separate Adam, so actor and critic step independently).
        adam_eps: Adam's epsilon (1e-5, as in the PPO reference implementations, not torch's 1e-8).
        anneal_lr: decay both learning rates linearly to 0 over ``total_steps``.
        ent_coef: entropy bonus :math:`\\beta` (loss term :math:`-\\beta H[\\pi]`).
        max_grad_norm: clip the actor's gradient norm to this (None: no clipping).
        critic_max_grad_norm: clip the critic's gradient norm to this, separately (None: no clipping).
        normalize_obs: running observation normalisation (gymnasium wrapper); None = on for Box actions.
        normalize_reward: reward scaling by the running std of the discounted return; None = on for Box actions.
        log_std_init: initial state-independent log standard deviation of a Gaussian policy.
        eval_every: evaluate the greedy policy every this many env steps (0: never during training).
        eval_episodes: episodes per evaluation.
        eval_seed: first seed of the evaluation episodes (episode i uses ``eval_seed + i``).
        solve_threshold: mean evaluation return that counts as solved (None: the env's known threshold).
        stop_when_solved: end training at the first evaluation that reaches ``solve_threshold``.
        progress: show a tqdm progress bar.
        torch_threads: CPU threads for torch (1 is fastest for these small MLPs; None leaves torch's default).
        on_nonfinite: what to do when a loss or parameter becomes NaN/inf: ``"stop"`` (warn, keep the
            last good weights, return the run) or ``"raise"``.
        traps: names of planted bugs to switch on (see ``pgcourse.planted``; ``pg.train`` plants them and
            checks the names); empty for the correct algorithm.
    """

    algo: str
    env_id: str
    seed: int = 0
    total_steps: int = 100_000
    max_episodes: int | None = None
    device: str = "auto"
    num_envs: int = 8
    gamma: float = 0.99
    hidden_sizes: tuple[int, ...] = (64, 64)
    lr: float = 3e-4
    critic_lr: float = 1e-3
    adam_eps: float = 1e-5
    anneal_lr: bool = False
    ent_coef: float = 0.0
    max_grad_norm: float | None = 0.5
    critic_max_grad_norm: float | None = 0.5
    normalize_obs: bool | None = None
    normalize_reward: bool | None = None
    log_std_init: float = 0.0
    eval_every: int = 0
    eval_episodes: int = 20
    eval_seed: int = 10_000
    solve_threshold: float | None = None
    stop_when_solved: bool = False
    progress: bool = True
    torch_threads: int | None = 1
    on_nonfinite: str = "stop"
    traps: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.hidden_sizes, list):
            self.hidden_sizes = tuple(self.hidden_sizes)
        if isinstance(self.traps, (list, str)):
            self.traps = (self.traps,) if isinstance(self.traps, str) else tuple(self.traps)
        self.validate()

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> None:
        if self.algo not in ALGORITHMS:
            _fail("algo", self.algo, f"one of {ALGORITHMS}")
        if not isinstance(self.env_id, str) or not self.env_id:
            _fail("env_id", self.env_id, "a gymnasium environment id such as 'CartPole-v1'")
        _check_int("seed", self.seed, 0, 2**32 - 1)
        _check_int("total_steps", self.total_steps, 1)
        if self.max_episodes is not None:
            _check_int("max_episodes", self.max_episodes, 1)
        if not isinstance(self.device, str) or not (
                self.device in ("auto", "cpu", "mps", "cuda") or self.device.startswith("cuda:")):
            _fail("device", self.device, "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'")
        _check_int("num_envs", self.num_envs, 1, 4096)
        _check_float("gamma", self.gamma, 0.0, 1.0, low_open=True)
        if (not isinstance(self.hidden_sizes, tuple) or not self.hidden_sizes
                or not all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= 65536
                           for h in self.hidden_sizes)):
            _fail("hidden_sizes", self.hidden_sizes, "a non-empty tuple of positive layer widths, e.g. (64, 64)")
        _check_float("lr", self.lr, 0.0, 1.0, low_open=True)
        _check_float("critic_lr", self.critic_lr, 0.0, 1.0, low_open=True)
        _check_float("adam_eps", self.adam_eps, 0.0, 1.0, low_open=True)
        _check_bool("anneal_lr", self.anneal_lr)
        _check_float("ent_coef", self.ent_coef, 0.0, 1.0)
        _check_float("max_grad_norm", self.max_grad_norm, 0.0, 1e6, low_open=True, allow_none=True)
        _check_float("critic_max_grad_norm", self.critic_max_grad_norm, 0.0, 1e6, low_open=True, allow_none=True)
        _check_bool("normalize_obs", self.normalize_obs, allow_none=True)
        _check_bool("normalize_reward", self.normalize_reward, allow_none=True)
        _check_float("log_std_init", self.log_std_init, -5.0, 2.0)
        _check_int("eval_every", self.eval_every, 0)
        _check_int("eval_episodes", self.eval_episodes, 1, 1000)
        _check_int("eval_seed", self.eval_seed, 0, 2**31 - 1)
        _check_float("solve_threshold", self.solve_threshold, -1e12, 1e12, allow_none=True)
        _check_bool("stop_when_solved", self.stop_when_solved)
        if self.stop_when_solved and self.eval_every == 0:
            _fail("stop_when_solved", True, "False unless eval_every > 0 (solving is judged by evaluations)")
        _check_bool("progress", self.progress)
        if self.torch_threads is not None:
            _check_int("torch_threads", self.torch_threads, 1, 256)
        if self.on_nonfinite not in ("stop", "raise"):
            _fail("on_nonfinite", self.on_nonfinite, "'stop' or 'raise'")
        if not all(isinstance(name, str) for name in self.traps):
            _fail("traps", self.traps, "a tuple of trap names (strings); see pgcourse.planted.TRAPS")

    def check_env(self, action_space_kind: str, action_space_repr: str) -> None:
        """Raise if this algorithm cannot act in an action space of this kind ('discrete'/'continuous')."""
        if action_space_kind == "continuous" and self.algo in DISCRETE_ONLY:
            raise ConfigError(
                f"algo={self.algo!r} supports Discrete action spaces only, but {self.env_id} has "
                f"{action_space_repr}. Use 'a2c' or 'ppo' for continuous (Box) actions.")

    # -- helpers ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["hidden_sizes"] = list(self.hidden_sizes)
        data["traps"] = list(self.traps)
        return data

    @property
    def resolved_solve_threshold(self) -> float | None:
        return self.solve_threshold if self.solve_threshold is not None else SOLVE_THRESHOLDS.get(self.env_id)


@dataclass
class ReinforceConfig(BaseConfig):
    """REINFORCE (``algo="reinforce"``) and REINFORCE with a learned baseline (``"reinforce_baseline"``).

    Each update uses ``num_envs`` complete episodes, one from each environment, all sampled from the
    current policy (envs that finish early wait for the longest episode; their extra steps are not
    used), so every gradient is an on-policy Monte Carlo estimate.

    Args:
        normalize_weights: standardise the returns (REINFORCE) or the advantages (with baseline)
            over the batch before weighting the log-probs.
    """

    normalize_weights: bool = True

    def validate(self) -> None:
        super().validate()
        if self.algo not in ("reinforce", "reinforce_baseline"):
            _fail("algo", self.algo, "'reinforce' or 'reinforce_baseline' for a ReinforceConfig")
        _check_bool("normalize_weights", self.normalize_weights)


@dataclass
class A2CConfig(BaseConfig):
    """Advantage actor-critic with GAE on vector environments (one gradient step per rollout).

    Args:
        n_steps: rollout length per environment; the batch is ``num_envs * n_steps`` transitions.
        gae_lambda: GAE :math:`\\lambda \\in [0, 1]`.
        normalize_advantages: standardise the advantages (over the whole batch; see PPO's
            ``normalize_per_minibatch``).
    """

    n_steps: int = 16
    gae_lambda: float = 0.95
    normalize_advantages: bool = True

    def validate(self) -> None:
        super().validate()
        if type(self) is A2CConfig and self.algo != "a2c":
            _fail("algo", self.algo, "'a2c' for an A2CConfig")
        _check_int("n_steps", self.n_steps, 1, 100_000)
        _check_float("gae_lambda", self.gae_lambda, 0.0, 1.0)
        _check_bool("normalize_advantages", self.normalize_advantages)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.n_steps


@dataclass
class PPOConfig(A2CConfig):
    """Proximal Policy Optimisation (clipped surrogate, minibatch epochs).

    Args:
        update_epochs: passes over each rollout batch.
        minibatch_size: transitions per gradient step; at most ``num_envs * n_steps``.
        clip_eps: :math:`\\epsilon` of the clipped surrogate.
        clip_value_loss: also clip the critic's change per update (off by default; it rarely helps).
        target_kl: stop the epochs of an update early once approx-KL exceeds this (None: never).
        normalize_per_minibatch: with ``normalize_advantages``, standardise each minibatch's advantages
            instead of the whole batch once (CleanRL's and SB3's choice; lesson 06 measures both).
    """

    n_steps: int = 128
    update_epochs: int = 4
    minibatch_size: int = 256
    clip_eps: float = 0.2
    clip_value_loss: bool = False
    target_kl: float | None = None
    normalize_per_minibatch: bool = False

    def validate(self) -> None:
        super().validate()
        if self.algo != "ppo":
            _fail("algo", self.algo, "'ppo' for a PPOConfig")
        _check_int("update_epochs", self.update_epochs, 1, 1000)
        _check_int("minibatch_size", self.minibatch_size, 1)
        if self.minibatch_size > self.batch_size:
            _fail("minibatch_size", self.minibatch_size,
                  f"at most the batch num_envs * n_steps = {self.num_envs} * {self.n_steps} = {self.batch_size}")
        _check_float("clip_eps", self.clip_eps, 0.0, 1e6, low_open=True)
        _check_bool("clip_value_loss", self.clip_value_loss)
        _check_float("target_kl", self.target_kl, 0.0, 1e6, low_open=True, allow_none=True)
        _check_bool("normalize_per_minibatch", self.normalize_per_minibatch)


CONFIG_CLASSES: dict[str, type[BaseConfig]] = {
    "reinforce": ReinforceConfig, "reinforce_baseline": ReinforceConfig, "a2c": A2CConfig, "ppo": PPOConfig,
}

# Defaults tuned on this course's benchmark (see README, "Benchmarks"); anything here can be overridden.
_ENV_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("reinforce", "discrete"): dict(num_envs=4, lr=5e-3, critic_lr=1e-2, gamma=0.99, max_grad_norm=None,
                                    critic_max_grad_norm=None, total_steps=500_000),
    ("reinforce_baseline", "discrete"): dict(num_envs=4, lr=5e-3, critic_lr=1e-2, gamma=0.99,
                                             max_grad_norm=None, critic_max_grad_norm=None,
                                             total_steps=500_000),
    # A2C takes one critic step per rollout: with critic_lr=1e-3 and the critic's gradient clipped to 0.5,
    # its explained variance stayed near 0 for 50k steps and the policy collapsed after reaching 500
    # (3/3 seeds); a faster, unclipped critic fixed both (see README, "Benchmarks").
    ("a2c", "discrete"): dict(num_envs=8, n_steps=16, lr=1e-3, critic_lr=5e-3, critic_max_grad_norm=None,
                              gamma=0.99, gae_lambda=0.95, ent_coef=0.0, anneal_lr=True, total_steps=200_000),
    ("a2c", "continuous"): dict(num_envs=8, n_steps=16, lr=3e-4, critic_lr=1e-3, gamma=0.9, gae_lambda=0.95,
                                total_steps=200_000),
    ("ppo", "discrete"): dict(num_envs=8, n_steps=64, minibatch_size=128, update_epochs=10, lr=1e-3,
                              critic_lr=1e-3, gamma=0.99, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.0,
                              anneal_lr=True, total_steps=100_000),
    # Pendulum: minibatches of 256 (not 64) reached the same returns (-152, -137 at 120k steps, seeds 0-1)
    # with a quarter of the gradient steps.
    ("ppo", "continuous"): dict(num_envs=8, n_steps=256, minibatch_size=256, update_epochs=10, lr=1e-3,
                                critic_lr=1e-3, gamma=0.9, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.0,
                                anneal_lr=True, total_steps=150_000),
}


def default_overrides(algo: str, action_kind: str) -> dict[str, Any]:
    """The course's default hyperparameters for ``algo`` on an action space of ``action_kind``."""
    return dict(_ENV_DEFAULTS.get((algo, action_kind), {}))


def make_config(algo: str, env_id: str, action_kind: str, **overrides: Any) -> BaseConfig:
    """Build the validated config: class defaults < per-(algo, action kind) defaults < ``overrides``."""
    if algo not in ALGORITHMS:
        raise ConfigError(f"algo={algo!r} is invalid: expected one of {ALGORITHMS}")
    cls = CONFIG_CLASSES[algo]
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown} for algo={algo!r}; valid settings: {sorted(names - {'algo', 'env_id'})}")
    values = default_overrides(algo, action_kind)
    values.update(overrides)
    return cls(algo=algo, env_id=env_id, **values)


def config_from_dict(data: dict[str, Any]) -> BaseConfig:
    """Rebuild (and re-validate) a config saved with :meth:`BaseConfig.to_dict`."""
    if not isinstance(data, dict) or "algo" not in data:
        raise ConfigError("saved config is not a mapping with an 'algo' key")
    cls = CONFIG_CLASSES.get(data["algo"])
    if cls is None:
        raise ConfigError(f"saved config has unknown algo {data['algo']!r}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"saved config has unknown field(s) {unknown} for algo {data['algo']!r}")
    return cls(**data)


__all__ = ["ALGORITHMS", "BaseConfig", "ReinforceConfig", "A2CConfig", "PPOConfig", "ConfigError",
           "make_config", "config_from_dict", "default_overrides", "SOLVE_THRESHOLDS"]
