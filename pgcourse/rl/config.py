"""Hyperparameters as validated dataclasses, one per algorithm family, with per-environment defaults.

A bad value fails at construction with the field's name, the value and the allowed range, so a
typo in a notebook never turns into a silent, slow, wrong training run.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Union

from .devices import VALID_DEVICES, is_valid_device_name

ALGORITHMS = ("reinforce", "reinforce_baseline", "a2c", "ppo", "trpo")
DISCRETE_ONLY = ("reinforce", "reinforce_baseline")
# env_backend="torch": the algorithms whose loop steps a torch vector env, and the envs there are as tensors
# (pgcourse.rl.tensor_envs.TENSOR_ENVS; a test keeps the two lists equal)
ENV_BACKENDS = ("numpy", "torch")
BOX_ACTIONS = ("clip", "tanh")  # how a Gaussian sample becomes a Box action (BaseConfig.box_action)
TENSOR_BACKEND_ALGOS = ("a2c", "ppo")
TENSOR_ENV_IDS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1")

# "Solved" thresholds used by evaluation and the benchmark: mean return over the evaluation episodes.
SOLVE_THRESHOLDS = {"CartPole-v1": 475.0, "Pendulum-v1": -200.0, "Acrobot-v1": -100.0,
                    "MountainCar-v0": -110.0, "LunarLander-v3": 200.0}


# How evaluations play the policy (``eval_mode``): "greedy" takes the most likely action (argmax of the
# logits; the Gaussian's mean), "sample" draws the action from pi as training does.
EVAL_MODES = ("greedy", "sample")
# pg.train's eval_mode where "greedy" misjudges the policy. Acrobot-v1, PPO with the course defaults, 20
# episodes per evaluation, every 10k steps: the greedy policy scored -500 +- 0 where sampling from the same
# policy already reached the top, e.g. seeds 3, 6, 7 at 10k steps: greedy -500, sampled -227, -283, -204 (each
# greedy policy took one action in all 2500 steps of 5 episodes: it never swings up); over 24 seeds (another
# machine), 17 of 320 evaluations had the greedy mean below the sampled one by more than both stds, 4 the other
# way. Runs trained 10k or 20k steps (seeds 0-7) ended with the greedy mean sharply below the sampled one in 6 of
# 16 (20k steps, seed 5: -500 +- 0 against -105.4 +- 33.9) and above it in 2 (by 32 and 41): sampling costs little
# where greedy fails badly. After 100k steps the two agree within noise (seeds 0-9: greedy -79.0 to -106.4,
# sampled -76.5 to -92.9).
# CartPole-v1 and Pendulum-v1 keep "greedy": after training (5 seeds each, on that other machine) the two modes'
# means were equal (500) and within 13 of each other, and lesson 06's cached sweeps used greedy evaluations.
EVAL_MODE_DEFAULTS = {"Acrobot-v1": "sample"}
# Keyword arguments gym.make takes itself or pgcourse sets: not accepted in env_kwargs.
RESERVED_ENV_KWARGS = {"render_mode": "pgcourse sets it itself (rgb_array for GIFs, none for training)",
                       "num_envs": "use the num_envs setting", "vectorization_mode": "pgcourse chooses it",
                       "vector_kwargs": "pgcourse chooses them", "wrappers": "register a wrapped environment instead"}


class ConfigError(ValueError):
    """A hyperparameter is out of its allowed range, unknown, or does not fit the environment."""


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name}={value!r} is invalid: expected {allowed}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- what each setting may be: one table per config class (``value_ranges()``), read by ``validate`` and by
# tests that draw valid and invalid values from it, so a range changed here is a range changed everywhere
@dataclass(frozen=True)
class IntRange:
    """An integer in ``[low, high]`` (``high=None``: no upper bound), or also None with ``allow_none``."""

    low: int
    high: int | None = None
    allow_none: bool = False

    def describe(self) -> str:
        return (f"an integer in [{self.low}, {self.high if self.high is not None else 'inf'}]"
                + (" or None" if self.allow_none else ""))

    def check(self, name: str, value: Any) -> None:
        if value is None and self.allow_none:
            return
        if (not isinstance(value, int) or isinstance(value, bool) or value < self.low
                or (self.high is not None and value > self.high)):
            _fail(name, value, self.describe())


@dataclass(frozen=True)
class FloatRange:
    """A finite number in ``[low, high]`` (each end open with ``low_open`` / ``high_open``), or also None."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    allow_none: bool = False

    @property
    def interval(self) -> str:
        return f"{'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"

    def describe(self) -> str:
        return f"a number in {self.interval}" + (" or None" if self.allow_none else "")

    def check(self, name: str, value: Any) -> None:
        if value is None and self.allow_none:
            return
        if not _is_number(value) or not math.isfinite(value):
            _fail(name, value, "a finite " + self.describe()[2:])
        too_low = value <= self.low if self.low_open else value < self.low
        too_high = value >= self.high if self.high_open else value > self.high
        if too_low or too_high:
            _fail(name, value, self.describe())


@dataclass(frozen=True)
class Flag:
    """True or False, or also None (the automatic choice) with ``allow_none``."""

    allow_none: bool = False

    def describe(self) -> str:
        return "True or False" + (" (or None for automatic)" if self.allow_none else "")

    def check(self, name: str, value: Any) -> None:
        if not (isinstance(value, bool) or (self.allow_none and value is None)):
            _fail(name, value, self.describe())


@dataclass(frozen=True)
class Choice:
    """One of ``values`` (strings); ``meaning`` says what they are in the error message."""

    values: tuple[str, ...]
    meaning: str = ""

    def describe(self) -> str:
        return self.meaning or " or ".join(repr(value) for value in self.values)

    def check(self, name: str, value: Any) -> None:
        if not (isinstance(value, str) and value in self.values):
            _fail(name, value, self.describe())


Range = Union[IntRange, FloatRange, Flag, Choice]


def _plain(value: Any) -> Any:
    """A numpy scalar (``np.int64(8)`` from ``np.arange``, ``np.float32(1e-3)``, ``np.True_``) as the Python
    number or bool it holds; anything else as it is."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


def _as_range_type(allowed: Any, value: Any) -> Any:
    """A setting's value as the type its range holds, so that one setting has one spelling: a numpy scalar
    (np.arange's) as the Python number, an integral float for an integer setting as the int
    (``total_steps=1e5`` is 100,000 steps; 1e5 + 0.5 is still refused), an int for a float setting as the float
    (``clip_eps=100`` is ``clip_eps=100.0``: one sweep trial, not two). Anything else as it is, for ``validate``."""
    value = _plain(value)
    if isinstance(value, bool):
        return value
    if isinstance(allowed, IntRange) and isinstance(value, float) and value.is_integer():
        converted: Any = int(value)
    elif isinstance(allowed, FloatRange) and isinstance(value, int):
        converted = float(value)
    else:
        return value
    try:
        allowed.check("value", converted)
    except ConfigError:
        return value  # out of range either way: the error quotes the value as it was written
    return converted


def plain_setting(name: str, value: Any) -> Any:
    """``value`` as config field ``name`` stores it (:func:`_as_range_type` with the field's range in any
    algorithm's config; unknown names and values unchanged). Sweeps name their trials with it."""
    for config_class in CONFIG_CLASSES.values():
        allowed = config_class.value_ranges().get(name)
        if allowed is not None:
            return _as_range_type(allowed, value)
    return value


# other words for an evaluation mode -> the mode
_EVAL_MODE_WORDS = {"deterministic": "greedy", "argmax": "greedy", "mean": "greedy", "mode": "greedy",
                    "stochastic": "sample", "sampled": "sample", "sampling": "sample", "random": "sample"}


def check_eval_mode(value: Any, name: str = "eval_mode") -> str:
    """``value`` if it is ``"greedy"`` or ``"sample"``; otherwise a :class:`ConfigError` saying what the modes
    mean, with a "did you mean" (``"stochastic"`` -> ``"sample"``, ``"gredy"`` -> ``"greedy"``)."""
    if isinstance(value, str) and value in EVAL_MODES:
        return value
    expected = "'greedy' (the most likely action: argmax / Gaussian mean) or 'sample' (actions drawn from the policy)"
    if isinstance(value, str):
        meant = _EVAL_MODE_WORDS.get(value.strip().lower())
        close = difflib.get_close_matches(value.strip().lower(), EVAL_MODES, n=1, cutoff=0.6)
        meant = meant or (close[0] if close else None)
        if meant is not None:
            expected += f" (did you mean {meant!r}?)"
    _fail(name, value, expected)
    raise AssertionError  # unreachable: _fail raises


def check_env_kwargs(value: Any, name: str = "env_kwargs") -> dict[str, Any]:
    """``value`` as a plain JSON dict (tuples become lists), or a :class:`ConfigError` saying what is wrong.

    ``env_kwargs`` are passed to ``gym.make(env_id, **env_kwargs)`` wherever the environment is made and are
    saved with the run, so they must be keyword names (strings) with JSON values (numbers, strings, bools,
    None, lists and dicts of them)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _fail(name, value, "a dict of keyword arguments for gym.make, e.g. {'continuous': True}")
    for key in value:
        if not isinstance(key, str) or not key.isidentifier():
            _fail(name, dict(value), f"keyword names (strings such as 'continuous'); {key!r} is not one")
        if key in RESERVED_ENV_KWARGS:
            _fail(name, dict(value), f"no {key!r} key: {RESERVED_ENV_KWARGS[key]}")
    try:
        return json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as error:
        _fail(name, dict(value), f"JSON values only (numbers, strings, bools, None, lists, dicts; finite): {error}")
    raise AssertionError  # unreachable


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
        device: ``"auto"`` (the CPU for the course's numpy environments, or what the environment variable
            ``PGCOURSE_DEVICE`` names: :mod:`pgcourse.rl.devices`), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``.
        num_envs: parallel environments in the gymnasium vector env; as many as the rollout's memory allows on
            the run's device (a ConfigError says the estimate and the widest that fits: :mod:`pgcourse.rl.memory`).
        gamma: discount :math:`\\gamma \\in (0, 1]`.
        hidden_sizes: widths of the hidden layers of the actor and of the critic (tanh MLPs).
        lr: actor learning rate (Adam).
        critic_lr: critic learning rate (a separate Adam, so actor and critic step independently).
        adam_eps: Adam's epsilon (1e-5, as in the PPO reference implementations, not torch's 1e-8); at least
            1e-30 (a smaller one is 0 in float32, and a zero gradient then gives 0/0 = NaN).
        anneal_lr: decay both learning rates linearly to 0 over ``total_steps``.
        ent_coef: entropy bonus :math:`\\beta` (loss term :math:`-\\beta H[\\pi]`).
        max_grad_norm: clip the actor's gradient norm to this (None: no clipping).
        critic_max_grad_norm: clip the critic's gradient norm to this, separately (None: no clipping).
        normalize_obs: running observation normalisation (gymnasium wrapper); None = on for Box actions.
        normalize_reward: reward scaling by the running std of the discounted return; None = on for Box actions.
        log_std_init: initial state-independent log standard deviation of a Gaussian policy.
        log_std_min: lower bound of a Gaussian policy's ``log_std`` (None, the default: unbounded). After
            every actor step ``log_std`` is projected onto ``[log_std_min, inf)``, so
            :math:`\\sigma \\ge e^{\\texttt{log\\_std\\_min}}` and exploration cannot collapse (lesson 05).
            At most ``log_std_init``; ignored for discrete actions.
        eval_every: evaluate the policy every this many env steps (0: never during training).
        eval_episodes: episodes per evaluation.
        eval_seed: first seed of the evaluation episodes (episode i uses ``eval_seed + i``).
        eval_mode: how evaluations play the policy: ``"greedy"``, the most likely action (argmax of the
            logits; the Gaussian's mean), or ``"sample"``, actions drawn from :math:`\\pi` as in training
            (from a generator seeded with the episodes' seed, so an evaluation is repeatable and never
            changes training). Used by the evaluations during training (``history.evals``,
            ``solve_threshold``) and the default of ``pg.evaluate``, ``pgcourse eval`` and GIFs of the run.
            The class default is ``"greedy"``; ``pg.train`` uses ``EVAL_MODE_DEFAULTS`` per environment
            (``"sample"`` on Acrobot-v1, where a greedy policy can take one action forever and score
            -500 while the policy it comes from reaches the goal).
        env_kwargs: keyword arguments of ``gym.make(env_id, **env_kwargs)``, used wherever the environment
            is made (training, evaluation, GIFs, sweeps), e.g. ``{"continuous": True}`` for LunarLander-v3.
            JSON values only (saved with the run; tuples become lists); not ``render_mode``.
        solve_threshold: mean evaluation return that counts as solved (None: the env's known threshold).
        stop_when_solved: end training at the first evaluation that reaches ``solve_threshold``.
        progress: show a tqdm progress bar.
        torch_threads: CPU threads for torch (1 is fastest for these small MLPs; None leaves torch's default).
        on_nonfinite: what to do when a loss or parameter becomes NaN/inf: ``"stop"`` (warn, keep the
            last good weights, return the run) or ``"raise"``.
        traps: names of planted bugs to switch on (see ``pgcourse.rl.planted``; ``pg.train`` plants them and
            checks the names); empty for the correct algorithm.
        env_backend: ``"numpy"`` (gymnasium's envs on the CPU, the default) or ``"torch"``: the environment as
            tensors on the run's device (:mod:`pgcourse.rl.tensor_envs`; ``"a2c"`` and ``"ppo"`` on CartPole-v1,
            Acrobot-v1 and Pendulum-v1, without ``env_kwargs``), with nothing read on the host per step.
            Other episodes than numpy's for a seed (torch draws the start states).
        box_action: how a Gaussian policy's sample :math:`u` becomes the action sent to a ``Box`` env:
            ``"clip"`` (the default) sends :math:`\\operatorname{clip}(u, \\text{low}, \\text{high})`
            (``distributions.env_action``); ``"tanh"`` sends :math:`\\text{low} + (\\tanh u + 1)(\\text{high} -
            \\text{low})/2` (``distributions.tanh_env_action``, the squashed Gaussian of lesson 05). Either way the
            rollout stores :math:`u`, whose Gaussian log-density the ratio uses: the squash's log-determinant
            depends on :math:`u` alone, so it cancels in :math:`\\pi_\\theta / \\pi_{\\theta_\\text{old}}`
            and in the policy gradient; the entropy bonus and the logged entropy stay :math:`u`'s (the squashed
            action's entropy has no closed form). Ignored for discrete actions.
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
    # added after the first saved runs and sweeps: a saved config without them had these defaults
    eval_mode: str = "greedy"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    log_std_min: float | None = None  # lesson 05
    env_backend: str = "numpy"  # issue 33
    box_action: str = "clip"  # lesson 05: "clip" or "tanh"

    # what each setting with a range may be (a subclass adds its own: see value_ranges)
    RANGES: ClassVar[dict[str, Range]] = {
        "seed": IntRange(0, 2**32 - 1),
        "total_steps": IntRange(1),
        "max_episodes": IntRange(1, allow_none=True),
        "num_envs": IntRange(1),  # and the rollout must fit in memory: check_rollout_memory
        "gamma": FloatRange(0.0, 1.0, low_open=True),
        "lr": FloatRange(0.0, 1.0, low_open=True),
        "critic_lr": FloatRange(0.0, 1.0, low_open=True),
        # added to the float32 sqrt(v) of Adam's step: an eps below float32's smallest normal number (1.2e-38)
        # rounds to 0 (5e-324 did), and a zero gradient, which a batch of equal advantages gives, then makes 0/0
        # = NaN in every parameter; 1e-30 leaves a margin (torch's default is 1e-8, this course's 1e-5)
        "adam_eps": FloatRange(1e-30, 1.0),
        "anneal_lr": Flag(),
        "ent_coef": FloatRange(0.0, 1.0),
        "max_grad_norm": FloatRange(0.0, 1e6, low_open=True, allow_none=True),
        "critic_max_grad_norm": FloatRange(0.0, 1e6, low_open=True, allow_none=True),
        "normalize_obs": Flag(allow_none=True),
        "normalize_reward": Flag(allow_none=True),
        "log_std_init": FloatRange(-5.0, 2.0),
        "log_std_min": FloatRange(-20.0, 2.0, allow_none=True),
        "eval_every": IntRange(0),
        "eval_episodes": IntRange(1, 1000),
        "eval_seed": IntRange(0, 2**31 - 1),
        "solve_threshold": FloatRange(-1e12, 1e12, allow_none=True),
        "stop_when_solved": Flag(),
        "progress": Flag(),
        "torch_threads": IntRange(1, 256, allow_none=True),
        "on_nonfinite": Choice(("stop", "raise")),
        "env_backend": Choice(ENV_BACKENDS),
        "box_action": Choice(BOX_ACTIONS),
    }
    HIDDEN_WIDTH: ClassVar[IntRange] = IntRange(1, 65536)  # each entry of hidden_sizes

    @classmethod
    def value_ranges(cls) -> dict[str, Range]:
        """Every setting of this config class that has a range or a set of values -> what it may be
        (:class:`IntRange`, :class:`FloatRange`, :class:`Flag`, :class:`Choice`), the base class's first.
        ``validate`` checks these, then the settings that depend on each other (``minibatch_size`` at most
        the batch, ``log_std_min`` at most ``log_std_init``, ...)."""
        ranges: dict[str, Range] = {}
        for klass in reversed(cls.__mro__):
            ranges.update(vars(klass).get("RANGES", {}))
        return ranges

    def __post_init__(self) -> None:
        for name, allowed in self.value_ranges().items():
            setattr(self, name, _as_range_type(allowed, getattr(self, name)))
        if isinstance(self.hidden_sizes, list):
            self.hidden_sizes = tuple(self.hidden_sizes)
        if isinstance(self.hidden_sizes, tuple):
            self.hidden_sizes = tuple(_plain(width) for width in self.hidden_sizes)
        if isinstance(self.traps, (list, str)):
            self.traps = (self.traps,) if isinstance(self.traps, str) else tuple(self.traps)
        self.env_kwargs = check_env_kwargs(self.env_kwargs)
        self.validate()

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> None:
        if self.algo not in ALGORITHMS:
            _fail("algo", self.algo, f"one of {ALGORITHMS}")
        if not isinstance(self.env_id, str) or not self.env_id:
            _fail("env_id", self.env_id, "a gymnasium environment id such as 'CartPole-v1'")
        if not is_valid_device_name(self.device):
            _fail("device", self.device, VALID_DEVICES)
        width = self.HIDDEN_WIDTH
        if (not isinstance(self.hidden_sizes, tuple) or not self.hidden_sizes
                or not all(isinstance(h, int) and not isinstance(h, bool) and width.low <= h <= width.high
                           for h in self.hidden_sizes)):
            _fail("hidden_sizes", self.hidden_sizes, f"a non-empty tuple of positive layer widths (each "
                                                     f"{width.describe()}), e.g. (64, 64)")
        for name, allowed in self.value_ranges().items():
            allowed.check(name, getattr(self, name))
        if self.log_std_min is not None and self.log_std_min > self.log_std_init:
            _fail("log_std_min", self.log_std_min,
                  f"at most log_std_init={self.log_std_init} (the bound holds from the start), or None")
        if self.stop_when_solved and self.eval_every == 0:
            _fail("stop_when_solved", True, "False unless eval_every > 0 (solving is judged by evaluations)")
        if not isinstance(self.traps, tuple) or not all(isinstance(name, str) for name in self.traps):
            _fail("traps", self.traps, "a tuple of trap names (strings); see pgcourse.rl.planted.TRAPS")
        check_eval_mode(self.eval_mode)
        check_env_kwargs(self.env_kwargs)
        self._check_env_backend()
        self.check_rollout_memory()

    def rollout_length(self) -> int | None:
        """Steps per sub-environment in one rollout: ``n_steps``, or for an algorithm that collects whole episodes
        the environment's time limit (None when it has none)."""
        n_steps = getattr(self, "n_steps", None)
        if n_steps is not None:
            return int(n_steps)
        from .memory import time_limit

        return time_limit(self.env_id)

    def check_rollout_memory(self, agents: int = 1) -> None:
        """Refuse a ``num_envs`` (times ``agents``, for ``pg.train_many``) whose rollout cannot fit in the free
        memory of the run's device (:mod:`pgcourse.rl.memory`'s estimate, a lower bound). Skipped when the
        environment cannot be made here (the trainer reports that) or has no time limit and no ``n_steps``."""
        from . import memory

        steps, spaces = self.rollout_length(), memory.env_dimensions(self.env_id, self.env_kwargs)
        if steps is None or spaces is None:
            return
        obs_dim, action_size = spaces
        for device in memory.memory_devices(self.device, self.env_backend):
            estimate = memory.rollout_memory(self.num_envs, steps, obs_dim, action_size, device, agents=agents,
                                             widest_hidden=max(self.hidden_sizes, default=1))
            if estimate is not None and not estimate.fits:
                raise ConfigError(estimate.refusal(self.num_envs, steps))

    def _check_env_backend(self) -> None:
        """``env_backend="torch"`` only where a torch env and a loop that steps it exist."""
        if self.env_backend != "torch":
            return
        if self.algo not in TENSOR_BACKEND_ALGOS:
            _fail("env_backend", self.env_backend, f"'numpy' for algo={self.algo!r} (the torch envs are stepped "
                  f"by {' and '.join(repr(a) for a in TENSOR_BACKEND_ALGOS)} only)")
        if self.env_id not in TENSOR_ENV_IDS:
            _fail("env_backend", self.env_backend, f"'numpy' for env_id={self.env_id!r} (torch envs exist for "
                  f"{', '.join(TENSOR_ENV_IDS)})")
        if self.env_kwargs:
            _fail("env_backend", self.env_backend, f"'numpy' with env_kwargs={self.env_kwargs!r} (a torch env "
                  "has gymnasium's default settings only)")

    def check_env(self, action_space_kind: str, action_space_repr: str) -> None:
        """Raise if this algorithm cannot act in an action space of this kind ('discrete'/'continuous')."""
        if action_space_kind == "continuous" and self.algo in DISCRETE_ONLY:
            raise ConfigError(
                f"algo={self.algo!r} supports Discrete action spaces only, but {self.env_id} has "
                f"{action_space_repr}. For continuous (Box) actions use one of "
                f"{', '.join(repr(algo) for algo in ALGORITHMS if algo not in DISCRETE_ONLY)}.")

    # -- helpers ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["hidden_sizes"] = list(self.hidden_sizes)
        data["traps"] = list(self.traps)
        return data

    @property
    def resolved_solve_threshold(self) -> float | None:
        return self.solve_threshold if self.solve_threshold is not None else SOLVE_THRESHOLDS.get(self.env_id)


RETURN_WEIGHTINGS = ("reward_to_go", "total", "discounted")  # ReinforceConfig.return_weighting


@dataclass
class ReinforceConfig(BaseConfig):
    """REINFORCE (``algo="reinforce"``) and REINFORCE with a learned baseline (``"reinforce_baseline"``).

    Each update uses ``num_envs`` complete episodes, one from each environment, all sampled from the
    current policy (envs that finish early wait for the longest episode; their extra steps are not
    used), so every gradient is an on-policy Monte Carlo estimate.

    Args:
        normalize_weights: standardise the returns (REINFORCE) or the advantages (with baseline)
            over the batch before weighting the log-probs.
        center_weights: with ``normalize_weights``, subtract the batch mean before dividing by the batch
            std (the default). ``False`` only divides by the std, so plain REINFORCE keeps no baseline at
            all (lesson 02's "no baseline" arm, on the same step scale as the others).
        critic_epochs: full-batch Adam steps of the critic on each batch (``reinforce_baseline`` only).
            The first is the step taken together with the actor's; each extra one refits the critic to the
            same returns after the advantages were computed, so the baseline still never sees the actions
            it weights. 1 (the default) is one step per batch; lesson 02 measures how far that lags.
        return_weighting: which return weights the log-prob of step :math:`t` of an episode of length
            :math:`T`. ``"reward_to_go"`` (the default): :math:`G_t = \\sum_{k=t}^{T-1} \\gamma^{k-t} r_k`,
            only the rewards that came after the action. ``"total"``: the whole episode's discounted
            return :math:`G_0` for every step, Williams' estimator with its baseline at 0
            :math:`\\nabla_\\theta \\log p_\\theta(\\tau)\\, G_0`. Its expectation is
            :math:`\\mathbb{E}[\\sum_t \\gamma^t G_t \\nabla_\\theta \\log \\pi_\\theta(a_t \\mid s_t)]`: the reward-to-go's
            with the factor :math:`\\gamma^t` that the reward-to-go form drops (the same when
            :math:`\\gamma = 1`); the rewards before step :math:`t` add only noise to its term
            (lesson 01 measures how much). ``"discounted"``: :math:`\\gamma^t G_t`, the terms of that expectation:
            the gradient of the discounted objective without the earlier rewards' noise, whose factor
            :math:`\\gamma^t` shrinks the weight of late steps (lesson 01 trains it beside the others). With
            ``reinforce_baseline`` the critic's :math:`V(s_t)` (fitted to :math:`G_t`) is subtracted from whichever
            weight is chosen: unbiased, as any function of the state is, but for ``"total"`` and ``"discounted"``
            not the baseline that weight's own value would be (neither arm of the course trains that pair).
    """

    normalize_weights: bool = True
    # added after the first saved runs and sweeps (lesson 02): a saved config without them had these defaults
    center_weights: bool = True
    critic_epochs: int = 1
    return_weighting: str = "reward_to_go"

    RANGES: ClassVar[dict[str, Range]] = {
        "normalize_weights": Flag(),
        "center_weights": Flag(),
        "critic_epochs": IntRange(1, 1000),
        "return_weighting": Choice(RETURN_WEIGHTINGS, "'reward_to_go' (G_t, the rewards from step t on), 'total' "
                                                      "(the episode's return G_0 for every step) or 'discounted' "
                                                      "(gamma^t G_t)"),
    }

    def validate(self) -> None:
        super().validate()
        if self.algo not in ("reinforce", "reinforce_baseline"):
            _fail("algo", self.algo, "'reinforce' or 'reinforce_baseline' for a ReinforceConfig")
        if self.critic_epochs > 1 and self.algo != "reinforce_baseline":
            _fail("critic_epochs", self.critic_epochs, "1 for algo='reinforce' (it has no critic to fit)")


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

    RANGES: ClassVar[dict[str, Range]] = {
        "n_steps": IntRange(1, 100_000),
        "gae_lambda": FloatRange(0.0, 1.0),
        "normalize_advantages": Flag(),
    }

    def validate(self) -> None:
        super().validate()
        if type(self) is A2CConfig and self.algo != "a2c":
            _fail("algo", self.algo, "'a2c' for an A2CConfig")

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.n_steps


@dataclass
class PPOConfig(A2CConfig):
    """Proximal Policy Optimisation (clipped surrogate, minibatch epochs).

    Args:
        update_epochs: passes over each rollout batch.
        minibatch_size: transitions per gradient step; at most ``num_envs * n_steps``.
        num_minibatches: gradient steps per epoch instead (CleanRL's setting; None: use ``minibatch_size``): each
            batch of ``B`` transitions is cut into minibatches of ``ceil(B / num_minibatches)``, so the steps per
            update do not grow with ``num_envs`` (what a GPU wants). Give one of the two, not both.
        clip_eps: :math:`\\epsilon` of the clipped surrogate.
        clip_value_loss: also clip the critic's change per update (off by default; it rarely helps).
        target_kl: stop the epochs of an update early once approx-KL exceeds this (None: never).
        normalize_per_minibatch: with ``normalize_advantages``, standardise each minibatch's advantages
            instead of the whole batch once (CleanRL's and SB3's choice; lesson 06 measures both).
    """

    n_steps: int = 128
    update_epochs: int = 4
    minibatch_size: int = 256
    num_minibatches: int | None = None
    clip_eps: float = 0.2
    clip_value_loss: bool = False
    target_kl: float | None = None
    normalize_per_minibatch: bool = False

    RANGES: ClassVar[dict[str, Range]] = {
        "update_epochs": IntRange(1, 1000),
        "minibatch_size": IntRange(1),  # and at most the batch, num_envs * n_steps
        "num_minibatches": IntRange(1, allow_none=True),  # and at most the batch
        "clip_eps": FloatRange(0.0, 1e6, low_open=True),
        "clip_value_loss": Flag(),
        "target_kl": FloatRange(0.0, 1e6, low_open=True, allow_none=True),
        "normalize_per_minibatch": Flag(),
    }

    def validate(self) -> None:
        super().validate()
        if self.algo != "ppo":
            _fail("algo", self.algo, "'ppo' for a PPOConfig")
        batch = f"the batch num_envs * n_steps = {self.num_envs} * {self.n_steps} = {self.batch_size}"
        if self.num_minibatches is not None and self.num_minibatches > self.batch_size:
            _fail("num_minibatches", self.num_minibatches, f"at most {batch}")
        if self.num_minibatches is None and self.minibatch_size > self.batch_size:
            _fail("minibatch_size", self.minibatch_size, f"at most {batch}")


@dataclass
class TRPOConfig(A2CConfig):
    """Trust Region Policy Optimisation: one natural-gradient step per rollout, inside a KL trust region.

    The policy has no learning rate (``lr`` is unused): the step is :math:`\\sqrt{2\\delta / s^\\top (F + \\lambda I) s}\\, s`
    with :math:`s \\approx F^{-1} g` from conjugate gradient, shrunk by a backtracking line search.

    Args:
        max_kl: :math:`\\delta`, the largest mean KL(pi_old || pi_new) an update may reach.
        cg_iters: conjugate-gradient iterations (Fisher-vector products) per update.
        cg_damping: :math:`\\lambda` added to the Fisher matrix's diagonal, :math:`(F + \\lambda I) s = g`.
        line_search_steps: fractions of the full step tried at most (1, shrink, shrink², …).
        line_search_shrink: the factor between two tries, in (0, 1).
        accept_ratio: the least ratio of the surrogate's real improvement to its linear prediction.
        critic_epochs: passes over the batch of the critic's minibatch regression (its own Adam, ``critic_lr``).
        minibatch_size: transitions per critic step; at most ``num_envs * n_steps``.
        n_steps: steps per env per rollout (A2C's 16 would make batches smaller than one critic minibatch).
    """

    n_steps: int = 256
    max_kl: float = 0.01
    cg_iters: int = 10
    cg_damping: float = 0.1
    line_search_steps: int = 10
    line_search_shrink: float = 0.5
    accept_ratio: float = 0.1
    critic_epochs: int = 5
    minibatch_size: int = 256

    RANGES: ClassVar[dict[str, Range]] = {
        "max_kl": FloatRange(0.0, 10.0, low_open=True),
        "cg_iters": IntRange(1, 10_000),
        "cg_damping": FloatRange(0.0, 1e6),
        "line_search_steps": IntRange(1, 100),
        "line_search_shrink": FloatRange(0.0, 1.0, low_open=True, high_open=True),  # each try shrinks the step
        "accept_ratio": FloatRange(0.0, 1.0),
        "critic_epochs": IntRange(1, 1000),
        "minibatch_size": IntRange(1),  # and at most the batch, num_envs * n_steps
    }

    def validate(self) -> None:
        super().validate()
        if self.algo != "trpo":
            _fail("algo", self.algo, "'trpo' for a TRPOConfig")
        if self.minibatch_size > self.batch_size:
            _fail("minibatch_size", self.minibatch_size,
                  f"at most the batch num_envs * n_steps = {self.num_envs} * {self.n_steps} = {self.batch_size}")


CONFIG_CLASSES: dict[str, type[BaseConfig]] = {
    "reinforce": ReinforceConfig, "reinforce_baseline": ReinforceConfig, "a2c": A2CConfig, "ppo": PPOConfig,
    "trpo": TRPOConfig,
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
    # TRPO: batches of 2,048 transitions (Spinning Up uses 4,000), delta = 0.01, lambda 0.97 as in the paper's
    # follow-up (GAE, Schulman et al. 2016); the critic gets 10 passes of minibatch regression per batch.
    ("trpo", "discrete"): dict(num_envs=8, n_steps=256, minibatch_size=256, critic_epochs=10, critic_lr=1e-3,
                               gamma=0.99, gae_lambda=0.97, max_kl=0.01, total_steps=200_000),
    ("trpo", "continuous"): dict(num_envs=8, n_steps=256, minibatch_size=256, critic_epochs=10, critic_lr=1e-3,
                                 gamma=0.9, gae_lambda=0.95, max_kl=0.01, total_steps=200_000),
    # Pendulum: minibatches of 256 (not 64) reached the same returns (-152, -137 at 120k steps, seeds 0-1)
    # with a quarter of the gradient steps.
    ("ppo", "continuous"): dict(num_envs=8, n_steps=256, minibatch_size=256, update_epochs=10, lr=1e-3,
                                critic_lr=1e-3, gamma=0.9, gae_lambda=0.95, clip_eps=0.2, ent_coef=0.0,
                                anneal_lr=True, total_steps=150_000),
}


# Per-environment defaults, over the per-action-kind ones above, where an environment needs its own.
# LunarLander-v3, PPO: the CartPole defaults reached a greedy mean (20 episodes) of 127 to 189 after 1M steps
# (seeds 0-3, none solved); these settings (16 envs x 128 steps, 10 epochs of minibatches of 256, lr 3e-4,
# gamma 0.999, lambda 0.98, entropy 0.01) reached 228 to 282 on 14/14 seeds after 1M steps (seeds 0-13),
# 9/10 at 600k, 8/10 at 500k. Measured on a 16-core Xeon, torch 2.11 CPU, one thread a run (docs/benchmark.md).
_ENV_ID_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("ppo", "LunarLander-v3"): dict(num_envs=16, n_steps=128, minibatch_size=256, update_epochs=10, lr=3e-4,
                                    critic_lr=1e-3, gamma=0.999, gae_lambda=0.98, ent_coef=0.01, anneal_lr=True,
                                    total_steps=1_000_000),
}


def default_overrides(algo: str, action_kind: str, env_id: str | None = None) -> dict[str, Any]:
    """The course's default hyperparameters for ``algo`` on an action space of ``action_kind``, with those of
    ``env_id`` itself over them where the course tuned that environment (:data:`_ENV_ID_DEFAULTS`)."""
    values = dict(_ENV_DEFAULTS.get((algo, action_kind), {}))
    if env_id is not None:
        values.update(_ENV_ID_DEFAULTS.get((algo, env_id), {}))
    return values


# Names other RL libraries give to pgcourse's settings: a learner coming from them gets "did you mean"
# with the right name, which spelling distance alone would miss (learning_rate is far from lr).
# Each entry: other name -> (pgcourse's name, what the other name is: "<other name> is <this>").
_SB3, _CLEANRL, _SPINUP, _RLLIB = "Stable-Baselines3", "CleanRL", "Spinning Up", "RLlib"
SETTING_ALIASES: dict[str, tuple[str, str]] = {
    "learning_rate": ("lr", f"its name in {_SB3} and {_CLEANRL}"),
    "pi_lr": ("lr", f"its name in {_SPINUP}"),
    "actor_lr": ("lr", "the actor's learning rate, called lr here"),
    "vf_lr": ("critic_lr", f"its name in {_SPINUP}"),
    "value_lr": ("critic_lr", "the critic's learning rate, called critic_lr here"),
    "n_epochs": ("update_epochs", f"its name in {_SB3}"),
    "num_epochs": ("update_epochs", f"its name in {_RLLIB}"),
    "num_sgd_iter": ("update_epochs", f"its name in older {_RLLIB}"),
    "train_pi_iters": ("update_epochs", f"its name in {_SPINUP}"),
    "epochs": ("update_epochs", "the passes over each batch, called update_epochs here"),
    "batch_size": ("minibatch_size", f"its name in {_SB3}, where it is the minibatch size"),
    "sgd_minibatch_size": ("minibatch_size", f"its name in older {_RLLIB}"),
    "clip_range": ("clip_eps", f"its name in {_SB3}"),
    "clip_coef": ("clip_eps", f"its name in {_CLEANRL}"),
    "clip_ratio": ("clip_eps", f"its name in {_SPINUP}"),
    "clip_param": ("clip_eps", f"its name in {_RLLIB}"),
    "clip_range_vf": ("clip_value_loss", f"{_SB3}'s range for clipping the value loss; here it is True/False "
                                         "and uses clip_eps"),
    "clip_vloss": ("clip_value_loss", f"its name in {_CLEANRL}"),
    "num_steps": ("n_steps", f"its name in {_CLEANRL}"),
    "n_envs": ("num_envs", f"its name in {_SB3}"),
    "total_timesteps": ("total_steps", f"its name in {_SB3} and {_CLEANRL}"),
    "lam": ("gae_lambda", f"its name in {_SPINUP}"),
    "lambda_": ("gae_lambda", f"its name in {_RLLIB}"),
    "norm_adv": ("normalize_advantages", f"its name in {_CLEANRL}"),
    "normalize_advantage": ("normalize_advantages", f"its name in {_SB3}"),
    "entropy_coef": ("ent_coef", "the entropy bonus, called ent_coef here"),
    "entropy_coeff": ("ent_coef", f"its name in {_RLLIB}"),
    "grad_clip": ("max_grad_norm", f"its name in {_RLLIB}"),
    "kl_target": ("target_kl", f"its name in {_RLLIB}"),
    "adam_epsilon": ("adam_eps", "Adam's epsilon, called adam_eps here"),
    "discount": ("gamma", "the discount, called gamma here"),
    "net_arch": ("hidden_sizes", f"its name in {_SB3} (policy_kwargs)"),
    "hidden_dims": ("hidden_sizes", "the hidden layer widths, called hidden_sizes here"),
    "norm_obs": ("normalize_obs", f"its name in {_SB3}'s VecNormalize"),
    "norm_reward": ("normalize_reward", f"its name in {_SB3}'s VecNormalize"),
    "n_episodes": ("max_episodes", "an episode budget, called max_episodes here"),
    "num_episodes": ("max_episodes", "an episode budget, called max_episodes here"),
    "deterministic": ("eval_mode", f"{_SB3}'s evaluation flag: deterministic=True is eval_mode='greedy' here, "
                                   "False is eval_mode='sample'"),
    "deterministic_eval": ("eval_mode", "an evaluation flag: True is eval_mode='greedy' here, False 'sample'"),
    "env_config": ("env_kwargs", f"its name in {_RLLIB}"),
    "env_args": ("env_kwargs", "the environment's keyword arguments, called env_kwargs here"),
}


def valid_setting_names(algo: str) -> list[str]:
    """The settings ``make_config`` accepts for ``algo`` (its config's fields, less algo and env_id)."""
    return sorted({f.name for f in fields(CONFIG_CLASSES[algo])} - {"algo", "env_id"})


def suggest_setting(name: str, valid: list[str]) -> tuple[str, str] | None:
    """``(suggested name, why)`` for an unknown setting ``name`` (``why`` empty for a mere typo), or None
    when nothing is close.

    Another library's name for the setting comes first (``learning_rate`` -> ``lr``), then the closest
    spelling among ``valid`` (``clip_epz`` -> ``clip_eps``, by :func:`difflib.get_close_matches`)."""
    alias = SETTING_ALIASES.get(name.lower())
    if alias is not None and alias[0] in valid:
        return alias[0], f"{name} is {alias[1]}"
    close = difflib.get_close_matches(name.lower(), valid, n=1, cutoff=0.75)
    return (close[0], "") if close else None


def _algorithms_with_setting(name: str) -> list[str]:
    return [algo for algo in ALGORITHMS if name in valid_setting_names(algo)]


def _algos_phrase(algos: list[str]) -> str:
    return " and ".join(f"algo={algo!r}" for algo in algos)


def _describe_unknown(name: str, algo: str, valid: list[str]) -> str:
    """``'learning_rate' (did you mean 'lr'? learning_rate is its name in Stable-Baselines3 and CleanRL)``."""
    owners = _algorithms_with_setting(name)
    if owners:
        return f"{name!r} (a setting of {_algos_phrase(owners)}, not of algo={algo!r})"
    alias = SETTING_ALIASES.get(name.lower())
    alias_owners = _algorithms_with_setting(alias[0]) if alias is not None and alias[0] not in valid else []
    if alias_owners:
        return f"{name!r} (pgcourse calls it {alias[0]!r}, a setting of {_algos_phrase(alias_owners)}, not of algo={algo!r})"
    suggestion = suggest_setting(name, valid)
    if suggestion is None:
        return repr(name)
    meant, why = suggestion
    return f"{name!r} (did you mean {meant!r}?{' ' + why if why else ''})"


def check_setting_names(algo: str, names: Iterable[str], replaceable: Iterable[str] = ()) -> None:
    """Raise :class:`ConfigError` naming every unknown setting in ``names``, with a "did you mean" for each
    that resembles a valid one, and the valid settings listed.

    ``replaceable``: names of functions that may also be passed (``pg.train``'s replaceable pieces of
    the math, :meth:`pgcourse.rl.algorithms.Components.names`); they count as valid and are listed too.
    """
    settings, functions = valid_setting_names(algo), sorted(replaceable)
    unknown = [name for name in names if name not in settings and name not in functions]
    if not unknown:
        return
    described = ", ".join(_describe_unknown(name, algo, settings + functions) for name in unknown)
    lines = [f"unknown setting{'s' if len(unknown) > 1 else ''} for algo={algo!r}: {described}",
             f"valid settings: {settings}"]
    if functions:
        lines.append(f"replaceable functions (pass your own, e.g. compute_gae=my_compute_gae): {functions}")
    raise ConfigError("\n".join(lines))


def make_config(algo: str, env_id: str, action_kind: str, **overrides: Any) -> BaseConfig:
    """Build the validated config: class defaults < per-(algo, action kind) defaults < per-(algo, env id)
    defaults < ``overrides``."""
    if algo not in ALGORITHMS:
        raise ConfigError(f"algo={algo!r} is invalid: expected one of {ALGORITHMS}")
    check_setting_names(algo, overrides)
    if overrides.get("num_minibatches") is not None and "minibatch_size" in overrides:
        raise ConfigError(f"minibatch_size={overrides['minibatch_size']!r} and num_minibatches="
                          f"{overrides['num_minibatches']!r} were both given: expected one (a size or a count)")
    values = default_overrides(algo, action_kind, env_id)
    if env_id in EVAL_MODE_DEFAULTS:
        values["eval_mode"] = EVAL_MODE_DEFAULTS[env_id]
    values.update(overrides)
    return CONFIG_CLASSES[algo](algo=algo, env_id=env_id, **values)


def default_config_dict(algo: str) -> dict[str, Any]:
    """The config class's own defaults for ``algo``, as :meth:`BaseConfig.to_dict` writes them (``env_id``
    aside): what a config saved before a field existed had for it."""
    if algo not in CONFIG_CLASSES:
        raise ConfigError(f"algo={algo!r} is invalid: expected one of {ALGORITHMS}")
    data = CONFIG_CLASSES[algo](algo=algo, env_id="(any)").to_dict()
    data.pop("env_id")
    return data


def fill_absent_defaults(saved: Mapping[str, Any], expected: Mapping[str, Any]) -> dict[str, Any]:
    """``saved`` (a config dict written by an older pgcourse) with each field it lacks taken from ``expected``
    where ``expected`` holds that field's default, since the old config ran with it; a field it lacks whose
    ``expected`` value is not the default stays absent, so a comparison still flags it."""
    filled = dict(saved)
    algo = expected.get("algo", saved.get("algo"))
    defaults = default_config_dict(algo) if algo in CONFIG_CLASSES else {}
    for name, value in expected.items():
        if name not in filled and name in defaults and value == defaults[name]:
            filled[name] = value
    return filled


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
    return cls(**data)  # a field the saved config lacks (saved by an older pgcourse) gets its class default


__all__ = ["ALGORITHMS", "BaseConfig", "IntRange", "FloatRange", "Flag", "Choice", "ReinforceConfig", "A2CConfig", "PPOConfig", "TRPOConfig", "ConfigError",
           "make_config", "check_setting_names", "suggest_setting", "config_from_dict", "default_overrides",
           "SOLVE_THRESHOLDS", "EVAL_MODES", "EVAL_MODE_DEFAULTS", "check_eval_mode", "check_env_kwargs",
           "default_config_dict", "fill_absent_defaults"]
