"""A trained agent you can keep and use: policy, critic, normaliser statistics, config and history.

``run.save(dir)`` writes a small folder; ``pgcourse.load(dir)`` reads it back and checks it. An
existing run is never overwritten unless ``overwrite=True``; a corrupt or mismatched folder raises
:class:`RunLoadError` saying which file is wrong. A run that can be trained on (``pg.train(...,
resume=dir)``) also holds ``training_state.pt``: optimisers, random generators and the environments
mid-episode (a pickle: resume only runs you trust; :mod:`pgcourse.rl.algorithms.checkpoint`).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from .._version import package_versions
from .config import BaseConfig, ConfigError, config_from_dict
from .devices import choose_device
from .diagnostics import accumulation_dtype
from .envs import ObsNormalizerState, action_space_kind
from .history import History
from .distributions import env_action, tanh_env_action
from .networks import ValueNet, make_policy

FORMAT_NAME = "pgcourse-run"
FORMAT_VERSION = 1
RUN_FILES = ("meta.json", "config.json", "weights.pt", "normalizer.json", "history.json")
TRAINING_STATE_FILE = "training_state.pt"  # optional: present when the run can be resumed


class RunLoadError(ValueError):
    """A saved run is missing, corrupt, or does not match its own config."""


def bounds_on_device(bounds: np.ndarray, device: torch.device) -> Tensor:
    """A Box's ``low`` or ``high`` ``[D]`` as a tensor on ``device``, in the space's own dtype, except that
    float64 becomes :func:`~pgcourse.rl.diagnostics.accumulation_dtype` of ``device`` (float64 on CPU and CUDA,
    float32 on MPS, which has no float64)."""
    bounds = np.asarray(bounds)  # [D]
    if bounds.dtype == np.float64 and accumulation_dtype(device) != torch.float64:
        bounds = bounds.astype(np.float32)  # cast on the host: no float64 tensor is ever made
    return torch.as_tensor(bounds, device=device)


def _space_to_dict(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "low": np.asarray(space.low).tolist(),
                "high": np.asarray(space.high).tolist(), "dtype": str(space.dtype)}
    raise ValueError(f"cannot save space {space}")


def _space_from_dict(data: dict[str, Any]) -> gym.Space:
    if data["type"] == "Discrete":
        return gym.spaces.Discrete(data["n"], start=data.get("start", 0))
    if data["type"] == "Box":
        return gym.spaces.Box(np.asarray(data["low"], dtype=data["dtype"]), np.asarray(data["high"], dtype=data["dtype"]),
                              dtype=data["dtype"])
    raise ValueError(f"unknown space type {data['type']!r}")


def spaces_match(a: gym.Space, b: gym.Space) -> bool:
    """Same kind and shape (and same number of actions / bounds)."""
    try:
        return _space_to_dict(a) == _space_to_dict(b)
    except ValueError:  # a kind of space a run can never have been trained on
        return False


def as_run(run_or_path: Run | str | os.PathLike) -> Run:
    """``run_or_path`` itself if it is a :class:`Run`, else the run saved in that folder (:func:`load`)."""
    if isinstance(run_or_path, (str, os.PathLike)):
        return load(run_or_path)
    return run_or_path


class Run:
    """A trained (or training) agent.

    Attributes:
        config: the validated config actually used (:class:`~pgcourse.rl.config.BaseConfig` subclass).
        policy: the actor, a ``torch.nn.Module`` (categorical logits or Gaussian mean + ``log_std``).
        value_net: the critic ``V(s)`` (None for plain REINFORCE).
        history: :class:`~pgcourse.rl.history.History` of episodes, updates and evaluations.
        obs_normalizer: frozen observation statistics (None if observations were not normalised).
        normalizer_state: all running statistics of the env wrappers, as saved.
        observation_space, action_space: the single-env spaces the agent was trained on.
        training_state: what resuming needs besides weights and history (None: cannot be resumed);
            read from ``training_state.pt`` only when asked for (:meth:`resume_state`).
        device: where ``policy`` and ``value_net`` live (the device the run trained on, or the one it was
            loaded onto). Everything else a run hands out for analysis (``history``, :meth:`act`'s actions,
            :func:`~pgcourse.rl.evaluation.evaluate`'s results) is numpy or on the CPU.
        device_reason: why that device, in words (:func:`pgcourse.rl.devices.choose_device`); saved in
            ``meta.json`` with the device.
        outputs: where the run wrote while it trained, saved in ``meta.json``: ``log_dir``,
            ``checkpoint_every`` and ``checkpoint_dir`` (absolute paths; absent: not used). Resuming the run
            goes on writing there unless told otherwise (:func:`pgcourse.train`'s ``resume``).
    """

    def __init__(self, config: BaseConfig, policy: nn.Module, value_net: nn.Module | None, history: History,
                 observation_space: gym.Space, action_space: gym.Space, normalizer_state: dict[str, Any] | None = None,
                 device: torch.device | None = None, device_reason: str | None = None):
        self.config = config
        self.policy = policy
        self.value_net = value_net
        self.history = history
        self.observation_space = observation_space
        self.action_space = action_space
        self.device = device or next(policy.parameters()).device
        self.device_reason = device_reason  # why this device (pgcourse.rl.devices.choose_device), or None
        self.set_normalizer_state(normalizer_state or {})
        self.training_state: dict[str, Any] | None = None
        self.saved_training_state: Path | None = None  # the file it comes from, for a loaded run
        self.outputs: dict[str, Any] = {}  # log_dir, checkpoint_every, checkpoint_dir of the training

    def resume_state(self) -> dict[str, Any] | None:
        """The training state to resume from (loaded from the run's folder the first time), or None."""
        if self.training_state is None and self.saved_training_state is not None:
            path = self.saved_training_state
            try:  # a pickle (it holds the environments): trusted like any pickle the user made
                self.training_state = torch.load(path, map_location="cpu", weights_only=False)
            except Exception as error:
                raise RunLoadError(f"{path} is corrupt or not a pgcourse training state: "
                                   f"{_error_text(error)}") from error
            if not isinstance(self.training_state, dict) or "envs" not in self.training_state:
                self.training_state = None
                raise RunLoadError(f"{path} is not a pgcourse training state")
        return self.training_state

    def set_normalizer_state(self, state: dict[str, Any]) -> None:
        self.normalizer_state = state
        self.obs_normalizer = ObsNormalizerState.from_dict(state["obs"]) if "obs" in state else None

    @property
    def action_kind(self) -> str:
        return action_space_kind(self.action_space)

    # -- acting ----------------------------------------------------------------------------------
    def act(self, observations: np.ndarray | torch.Tensor, deterministic: bool = False) -> np.ndarray:
        """Actions for a batch of *raw* observations (as the environment returns them).

        Args:
            observations: ``[B, obs_dim]`` array. Normalised here with the saved statistics when
                the run was trained with observation normalisation.
            deterministic: the most likely action (argmax / Gaussian mean) instead of a sample.

        Returns:
            ``[B]`` int64 actions (Discrete) or ``[B, D]`` float32 actions clipped to the Box bounds.
        """
        obs_dim = self.observation_space.shape[0]
        if isinstance(observations, torch.Tensor):
            observations = observations.detach().cpu().numpy()
        observations = np.asarray(observations)
        if observations.dtype == object or not np.issubdtype(observations.dtype, np.number):
            raise TypeError(f"observations must be a numeric array, got dtype {observations.dtype}")
        if observations.ndim != 2 or observations.shape[1] != obs_dim:
            hint = " (a single observation? pass obs[None] to make a batch of one)" if observations.shape == (obs_dim,) else ""
            raise ValueError(f"observations must have shape [batch, {obs_dim}] for {self.config.env_id}, "
                             f"got {observations.shape}{hint}")
        if self.obs_normalizer is not None:
            observations = self.obs_normalizer(observations)
        obs_tensor = torch.as_tensor(observations, dtype=torch.float32, device=self.device)  # [B, obs_dim]
        with torch.no_grad():
            actions, _ = self.policy.sample(obs_tensor, deterministic=deterministic)
        if self.action_kind == "continuous":  # the same map into the box as in training (config.box_action)
            low, high = bounds_on_device(self.action_space.low, self.device), bounds_on_device(
                self.action_space.high, self.device)  # [D], [D]
            to_box = tanh_env_action if getattr(self.config, "box_action", "clip") == "tanh" else env_action
            return to_box(actions, low, high).cpu().numpy().astype(np.float32)
        return actions.cpu().numpy().astype(np.int64)

    # -- saving ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the run to folder ``path`` (created) and return it.

        Raises ``FileExistsError`` if ``path`` exists and is not empty, unless ``overwrite=True`` and it
        holds a saved run and nothing else (other files are never deleted); even then the old folder is
        replaced only after the new one is completely written.
        """
        problem = save_target_problem(path, overwrite, "overwrite=True")
        if problem is not None:
            raise FileExistsError(problem)
        target = Path(path).expanduser().resolve()  # "." has no name to build the staging folder's name from
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.saving-", dir=target.parent))
        try:
            meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
                    "observation_space": _space_to_dict(self.observation_space),
                    "action_space": _space_to_dict(self.action_space), "versions": package_versions(),
                    "device": str(self.device), "device_reason": self.device_reason, "outputs": self.outputs}
            (staging / "meta.json").write_text(json.dumps(meta, indent=1))
            (staging / "config.json").write_text(json.dumps(self.config.to_dict(), indent=1))
            # clones: a pg.train_many agent's weights are views of the batch's, whose whole storage torch.save would write
            weights = {"policy": {k: v.detach().cpu().clone() for k, v in self.policy.state_dict().items()},
                       "value_net": None if self.value_net is None else
                       {k: v.detach().cpu().clone() for k, v in self.value_net.state_dict().items()}}
            torch.save(weights, staging / "weights.pt")
            (staging / "normalizer.json").write_text(json.dumps(self.normalizer_state, indent=1))
            (staging / "history.json").write_text(json.dumps(self.history.to_dict()))
            training_state = self.resume_state()
            if training_state is not None:
                torch.save(training_state, staging / TRAINING_STATE_FILE)
            if target.is_dir() and not any(target.iterdir()):
                # an empty folder (perhaps the current one, '--out .'): fill it, keep the folder itself
                for item in staging.iterdir():
                    os.replace(item, target / item.name)
            elif target.exists():
                old = target.with_name(f".{target.name}.replaced-{os.getpid()}")
                os.replace(target, old)
                try:
                    os.replace(staging, target)
                except BaseException:
                    os.replace(old, target)  # the new run could not take its place: put the previous one back
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return target

    def __repr__(self) -> str:
        return f"Run({self.config.algo} on {self.config.env_id}, seed={self.config.seed}, {self.history!r})"


def save_target_problem(path: str | os.PathLike, overwrite: bool, overwrite_flag: str = "overwrite=True") -> str | None:
    """Why a run cannot be saved to ``path`` (None if it can): a file, a non-empty folder without
    ``overwrite``, or, even with it, a folder that holds anything but a saved run (never deleted)."""
    target = Path(path).expanduser()
    if not target.exists():
        return None
    if not target.is_dir():
        return f"{target} exists and is not a folder; choose another path"
    entries = sorted(entry.name for entry in target.iterdir())
    if not entries:
        return None
    meta = target / "meta.json"
    try:
        is_run = json.loads(meta.read_text()).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        is_run = False
    others = [name for name in entries if name not in (*RUN_FILES, TRAINING_STATE_FILE)]
    if not is_run:  # a folder of the user's own: never suggest the flag that cannot replace it
        shown = ", ".join(entries[:5]) + (", …" if len(entries) > 5 else "")
        return (f"{target} is not a saved pgcourse run (it holds {shown}); a run is saved only into a new or "
                f"empty folder or over a saved run ({overwrite_flag}): choose another path")
    if not overwrite:
        return (f"{target} already holds a saved run; pass {overwrite_flag} to replace it, or choose another path")
    if others:
        return (f"{target} holds a saved run and other files ({', '.join(others[:5])}); {overwrite_flag} would "
                "delete them: move them away or choose another path")
    return None


def _error_text(error: BaseException) -> str:
    """The error's message, or its type's name when it has none (torch's EOFError on a cut file has none)."""
    if isinstance(error, KeyError) and error.args:
        return f"missing key {error.args[0]!r}"
    return str(error).strip() or type(error).__name__


def _require_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise RunLoadError(f"{path} is empty (the save was cut short?); save the run again")


def _read_json(folder: Path, name: str) -> Any:
    _require_not_empty(folder / name)
    try:
        return json.loads((folder / name).read_text())
    except json.JSONDecodeError as error:
        raise RunLoadError(f"{folder / name} is corrupt (not valid JSON: {error})") from error


def load(path: str | os.PathLike, device: str = "cpu") -> Run:
    """Load a run saved with :meth:`Run.save` onto ``device`` and check that its parts fit together."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"no saved run at {folder} (expected the folder of a saved run, as "
                                "`pgcourse train --out FOLDER` or run.save(FOLDER) writes it)")
    missing = [name for name in RUN_FILES if not (folder / name).is_file()]
    if missing:
        raise RunLoadError(f"{folder} is not a complete pgcourse run: missing {missing}")
    meta = _read_json(folder, "meta.json")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise RunLoadError(f"{folder / 'meta.json'} does not describe a pgcourse run")
    if meta.get("version") != FORMAT_VERSION:
        raise RunLoadError(f"{folder} was saved in format version {meta.get('version')}; this pgcourse reads "
                           f"version {FORMAT_VERSION}")
    config_data = _read_json(folder, "config.json")
    try:
        config = config_from_dict(config_data)
    except (ConfigError, TypeError) as error:
        raise RunLoadError(f"{folder / 'config.json'} is not a valid config: {_error_text(error)}") from error
    try:
        observation_space = _space_from_dict(meta["observation_space"])
        action_space = _space_from_dict(meta["action_space"])
        kind = action_space_kind(action_space)
    except (KeyError, ValueError, TypeError) as error:
        raise RunLoadError(f"{folder / 'meta.json'} has invalid spaces: {_error_text(error)}") from error
    choice = choose_device(device)
    torch_device = choice.device
    action_dim = int(action_space.n) if kind == "discrete" else int(action_space.shape[0])
    obs_dim = int(observation_space.shape[0])
    policy = make_policy(kind, obs_dim, action_dim, config.hidden_sizes, config.log_std_init)
    value_net = None if config.algo == "reinforce" else ValueNet(obs_dim, config.hidden_sizes)
    _require_not_empty(folder / "weights.pt")
    try:
        weights = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        raise RunLoadError(f"{folder / 'weights.pt'} is corrupt or not a pgcourse weights file: "
                           f"{_error_text(error)}") from error
    if not isinstance(weights, dict) or "policy" not in weights:
        raise RunLoadError(f"{folder / 'weights.pt'} does not hold a 'policy' state dict")
    try:
        policy.load_state_dict(weights["policy"])
        if value_net is not None:
            if weights.get("value_net") is None:
                raise RunLoadError(f"{folder / 'weights.pt'} has no critic weights but algo={config.algo!r} needs one")
            value_net.load_state_dict(weights["value_net"])
    except RuntimeError as error:
        raise RunLoadError(f"{folder / 'weights.pt'} does not match config.json (hidden_sizes={config.hidden_sizes}, "
                           f"obs_dim={obs_dim}, action_dim={action_dim}): {_error_text(error)}") from error
    normalizer = _read_json(folder, "normalizer.json")
    if not isinstance(normalizer, dict) or not isinstance(normalizer.get("obs", {}), dict):
        raise RunLoadError(f"{folder / 'normalizer.json'} should hold the running statistics as a JSON object: {{}}, "
                           f"or {{\"obs\": {{\"mean\": [...], \"var\": [...], \"count\": n, \"epsilon\": e}}}}")
    if "obs" in normalizer and len(normalizer["obs"].get("mean", [])) != obs_dim:
        raise RunLoadError(f"{folder / 'normalizer.json'} has statistics for {len(normalizer['obs'].get('mean', []))} "
                           f"observation dimensions, expected {obs_dim}")
    try:
        ObsNormalizerState.from_dict(normalizer["obs"]) if "obs" in normalizer else None
    except (KeyError, ValueError, TypeError) as error:
        raise RunLoadError(f"{folder / 'normalizer.json'} has incomplete observation statistics (mean, var, count "
                           f"and epsilon are needed): {_error_text(error)}") from error
    history_data = _read_json(folder, "history.json")  # raises its own "not valid JSON" error
    try:
        history = History.from_dict(history_data)
    except (KeyError, ValueError, TypeError) as error:
        raise RunLoadError(f"{folder / 'history.json'} is corrupt: {_error_text(error)}") from error
    policy.to(torch_device)
    if value_net is not None:
        value_net.to(torch_device)
    run = Run(config, policy, value_net, history, observation_space, action_space, normalizer, torch_device,
              f"loaded onto it ({choice.reason}); trained on {meta.get('device', 'a device not recorded')}")
    if (folder / TRAINING_STATE_FILE).is_file():
        run.saved_training_state = (folder / TRAINING_STATE_FILE).resolve()
    outputs = meta.get("outputs")
    run.outputs = dict(outputs) if isinstance(outputs, dict) else {}  # absent in runs saved before it existed
    return run
