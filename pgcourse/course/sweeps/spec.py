"""What a sweep runs: a grid of arms (algorithm, environment, config overrides) times seeds.

Each trial is a :class:`TrialSpec`: plain data (strings, numbers, lists), so it can travel to a worker
process or a Ray node and be written to JSON beside its results. Its ``trial_id`` is derived from the
trial's content (algorithm, environment, overrides, seed), so re-running a sweep finds the trials that
are already finished by name.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...rl.algorithms import Components, Hooks
from ...rl.config import ALGORITHMS, ConfigError, check_env_kwargs, make_config, plain_setting
from ...rl.envs import action_space_kind, env_spaces
from ...rl.planted import plant

# Settings a sweep decides itself: every trial runs without a progress bar, on the backend's device.
SWEEP_OWNED = {"seed": "seeds=", "device": "device=", "progress": None}
ARM_KEYS = ("label", "algo", "env_id")  # an arm (a dict of a grid list) may also name these
MAX_SEED = 2**32 - 1  # the config's range for seed (checked here, not in a worker after the sweep started)


@dataclass(frozen=True)
class TrialSpec:
    """One training run of a sweep: ``pg.train(algo, env_id, seed=seed, **overrides)``.

    Attributes:
        algo, env_id, seed: as for :func:`pgcourse.train`.
        overrides: config fields this arm changes from the course defaults (JSON values).
        label: the arm's name without the seed (e.g. ``"clip_eps=0.1"``); trials that differ only in
            their seed share it, which is what the statistics group by.
    """

    algo: str
    env_id: str
    seed: int
    overrides: Mapping[str, Any] = field(default_factory=dict)
    label: str = "default"

    @property
    def arm(self) -> str:
        """``"ppo CartPole-v1 clip_eps=0.1"``: the arm this trial is a seed of."""
        return f"{self.algo} {self.env_id} {self.label}"

    @property
    def content_digest(self) -> str:
        """SHA-256 of what is run (algorithm, environment, overrides, seed), whatever the arm is called."""
        canonical = json.dumps({"algo": self.algo, "env_id": self.env_id, "seed": self.seed,
                                "overrides": dict(self.overrides)}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def trial_id(self) -> str:
        """A file-name-safe id, readable and unique: slug of the arm and seed + a hash of the content."""
        slug = re.sub(r"[^A-Za-z0-9.=+-]+", "_", f"{self.algo}_{self.env_id}_{self.label}").strip("_")[:80]
        return f"{slug}_seed{self.seed}-{self.content_digest[:10]}"

    def to_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, "env_id": self.env_id, "seed": self.seed, "overrides": dict(self.overrides),
                "label": self.label}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSpec:
        return cls(algo=str(data["algo"]), env_id=str(data["env_id"]), seed=int(data["seed"]),
                   overrides=dict(data.get("overrides") or {}), label=str(data.get("label", "default")))


def _as_list(value: str | Sequence[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{what}={value!r} is invalid: expected a string or a list of strings")
    return items


def _seeds(seeds: int | Iterable[int]) -> list[int]:
    items = list(range(seeds)) if isinstance(seeds, int) and not isinstance(seeds, bool) else list(seeds)
    if not items or any(not isinstance(s, int) or isinstance(s, bool) or not 0 <= s <= MAX_SEED for s in items):
        raise ConfigError(f"seeds={seeds!r} is invalid: expected a count (e.g. 10) or integers in [0, {MAX_SEED}] "
                          "(e.g. range(10))")
    if len(set(items)) != len(items):
        raise ConfigError(f"seeds={seeds!r} repeats a seed: a seed gives the same run twice")
    return items


def _value_text(value: Any) -> str:
    return "(" + ",".join(map(str, value)) + ")" if isinstance(value, (list, tuple)) else str(value)


def _arms(grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """The grid as a list of arm dicts: a mapping ``{field: [values]}`` is its Cartesian product (each
    arm labelled ``"field=value, ..."``); a list of dicts is taken as the arms themselves."""
    if grid is None:
        return [{"label": "default"}]
    if isinstance(grid, Mapping):
        names = list(grid)
        for name, values in grid.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
                raise ConfigError(f"grid[{name!r}]={values!r} is invalid: expected a non-empty list of values "
                                  f"(e.g. grid={{{name!r}: [0.1, 0.2]}})")
        arms = []
        for combo in itertools.product(*(grid[name] for name in names)):
            arm = {name: plain_setting(name, value) for name, value in zip(names, combo)}
            arm["label"] = ", ".join(f"{name}={_value_text(value)}" for name, value in arm.items()) or "default"
            arms.append(arm)
        return arms
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or not grid:
        raise ConfigError(f"grid={grid!r} is invalid: expected {{field: [values]}} or a non-empty list of dicts")
    arms = []
    for index, arm in enumerate(grid):
        if not isinstance(arm, Mapping):
            raise ConfigError(f"grid[{index}]={arm!r} is invalid: expected a dict of settings")
        arm = {name: plain_setting(name, value) for name, value in arm.items()}
        arm.setdefault("label", ", ".join(f"{k}={_value_text(v)}" for k, v in arm.items()
                                          if k not in ARM_KEYS) or "default")
        arms.append(arm)
    return arms


def _check_json(name: str, value: Any) -> Any:
    if callable(value):
        raise ConfigError(f"{name}={value!r} is invalid in a sweep: a sweep records every trial as JSON and "
                          "re-runs it to verify it, so replaced functions cannot be swept (call pg.train in a loop)")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is invalid in a sweep: expected a JSON value (number, string, bool, "
                          "None or a list of them)") from None


_KIND_CACHE: dict[tuple[str, str], str] = {}  # (env_id, env_kwargs as canonical JSON) -> action kind


def action_kind_of(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> str:
    """``"discrete"`` or ``"continuous"``: the action space of ``env_id`` made with ``env_kwargs`` (LunarLander-v3
    is discrete, with ``{"continuous": True}`` continuous), cached per environment and keyword arguments."""
    try:
        env_kwargs = check_env_kwargs(env_kwargs)
    except ConfigError as error:
        raise ValueError(str(error)) from None
    key = (env_id, json.dumps(env_kwargs, sort_keys=True))
    if key not in _KIND_CACHE:
        _KIND_CACHE[key] = action_space_kind(env_spaces(env_id, env_kwargs)[1])
    return _KIND_CACHE[key]


@functools.lru_cache(maxsize=1)
def ids_known_to_a_fresh_process() -> frozenset[str] | None:
    """The environment ids a new Python process knows after importing gymnasium (what a sweep's worker knows
    before it makes an environment), asked of a new process once; None if it could not be asked."""
    code = "import json, gymnasium; print(json.dumps(sorted(gymnasium.registry)))"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
        return frozenset(json.loads(done.stdout.strip().splitlines()[-1]))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def check_workers_can_make(env_ids: Iterable[str]) -> None:
    """Raise :class:`ConfigError` for an environment only this process knows: registered here (in a notebook,
    say) with ``gymnasium.register``, it does not exist in the fresh processes that run a sweep's trials. An id
    ``"module:EnvId"`` makes gymnasium import ``module`` (which registers it) in each worker first: that works."""
    env_ids = list(dict.fromkeys(env_ids))
    pending = [env_id for env_id in env_ids if ":" not in env_id]
    for env_id in env_ids:
        module = env_id.split(":")[0] if ":" in env_id else None
        if module is not None and (module == "__main__" or not _importable(module)):
            raise ConfigError(f"env_id={env_id!r}: a worker process cannot import module {module!r}; put the "
                              "gymnasium.register call in a module file (say my_envs.py) that Python can import "
                              "from this folder, and use the id 'my_envs:<EnvId>'")
    if not pending:
        return
    known = ids_known_to_a_fresh_process()
    if known is None:
        return  # could not ask: the workers will say so if they cannot make it
    for env_id in pending:
        if env_id in known:
            continue
        entry_point = gym_entry_point(env_id)
        module = entry_point.split(":")[0] if isinstance(entry_point, str) else getattr(entry_point, "__module__", None)
        example = module if module and module != "__main__" and not module.startswith("gymnasium") else "my_envs"
        raise ConfigError(
            f"env_id={env_id!r} is registered only in this process (a gymnasium.register call made here, e.g. in the "
            f"notebook), and a sweep's trials run in fresh worker processes that do not know it. Put the register "
            f"call in a module of yours (say {example}.py, importable from this folder) and sweep "
            f"env_id='{example}:{env_id}': gymnasium imports {example} in each worker before making the environment. "
            f"(pg.train, pg.evaluate and GIFs in this process work with the id as it is.)")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def gym_entry_point(env_id: str) -> Any:
    """The entry point ``env_id`` is registered with in this process (None if it is not registered)."""
    import gymnasium as gym

    try:
        return gym.spec(env_id).entry_point
    except Exception:  # not registered here either: make_config's env check reports it
        return None


def expand(algo: str | Sequence[str] | None, env_id: str | Sequence[str] | None, seeds: int | Iterable[int],
           grid: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]] | None = None,
           fixed: Mapping[str, Any] | None = None) -> list[TrialSpec]:
    """Every trial of the sweep, arms x algorithms x environments x seeds, checked before anything runs.

    Raises:
        ConfigError: an unknown algorithm or setting, a value out of range (each arm's config is built
            and validated here), a setting the sweep owns (``seed``, ``device``), a non-JSON value, or
            two arms that are the same trial.
    """
    algos, envs, seed_list = _as_list(algo, "algo"), _as_list(env_id, "env_id"), _seeds(seeds)
    for name in algos:
        if name not in ALGORITHMS:
            raise ConfigError(f"algo={name!r} is invalid: expected one of {ALGORITHMS}")
    fixed = {name: _check_json(name, plain_setting(name, value)) for name, value in (fixed or {}).items()}
    specs: list[TrialSpec] = []
    for arm in _arms(grid):
        label = str(arm.pop("label"))
        arm_algos = _as_list(arm.pop("algo"), "algo") if "algo" in arm else algos
        arm_envs = _as_list(arm.pop("env_id"), "env_id") if "env_id" in arm else envs
        if not arm_algos or not arm_envs:
            raise ConfigError(f"arm {label!r} has no {'algorithm' if not arm_algos else 'environment'}: pass "
                              f"{'algo' if not arm_algos else 'env_id'}= to the sweep or name one in the arm")
        overrides = {**fixed, **{name: _check_json(name, value) for name, value in arm.items()}}
        for name, instead in SWEEP_OWNED.items():
            if name in overrides:
                hint = f"pass {instead} to the sweep" if instead else "the sweep sets it"
                raise ConfigError(f"{name}={overrides[name]!r} cannot be a swept setting: {hint}")
        for one_algo, one_env in itertools.product(arm_algos, arm_envs):
            try:
                kind = action_kind_of(one_env, overrides.get("env_kwargs"))
            except ValueError as error:
                raise ConfigError(str(error)) from None
            config = make_config(one_algo, one_env, kind, **overrides)  # raises ConfigError on a bad value
            config.check_env(kind, "a Box action space" if kind == "continuous" else "a Discrete action space")
            plant(config, Components(), Hooks())  # unknown trap names fail here, not in a worker
            specs.extend(TrialSpec(one_algo, one_env, seed, overrides, label) for seed in seed_list)
    seen: dict[str, TrialSpec] = {}
    for spec in specs:  # the same run twice, whatever the arms are called
        twin = seen.setdefault(spec.content_digest, spec)
        if twin is not spec:
            raise ConfigError(f"the grid names the same trial twice ({twin.trial_id} and {spec.trial_id}): two arms "
                              f"with identical settings ({twin.label!r} and {spec.label!r})")
    check_arm_names(specs)
    return specs


def arm_conflict(specs: Iterable[TrialSpec]) -> tuple[TrialSpec, TrialSpec] | None:
    """Two trials that share an arm name but not their settings (their seeds would be pooled as one arm)."""
    settings: dict[str, TrialSpec] = {}
    for spec in specs:
        first = settings.setdefault(spec.arm, spec)
        if dict(first.overrides) != dict(spec.overrides):
            return first, spec
    return None


def describe_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    """``"total_steps 1024 vs 2048"``: the settings two override dicts disagree on."""
    names = sorted(k for k in set(a) | set(b) if a.get(k, "(default)") != b.get(k, "(default)"))
    return ", ".join(f"{k} {a.get(k, '(default)')!r} vs {b.get(k, '(default)')!r}" for k in names)


def check_arm_names(specs: Sequence[TrialSpec]) -> None:
    conflict = arm_conflict(specs)
    if conflict is not None:
        first, second = conflict
        raise ConfigError(f"two arms named {first.arm!r} with different settings "
                          f"({describe_difference(first.overrides, second.overrides)}): their seeds would be "
                          "pooled as one arm; give them different labels")
