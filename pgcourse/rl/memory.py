"""Does a rollout of ``agents x num_envs x n_steps`` transitions fit in the run's memory? (issues 33 and 44, item 7)

An update holds, per transition (one sub-environment, one step), about

.. math:: b = \\underbrace{4\\,d_{obs} + b_{action} + 5 \\cdot 4 + 3}_{\\text{the rollout}}
          + \\underbrace{4\\,d_{obs} + b_{action} + 4 \\cdot 4}_{\\text{the flattened batch}}
          + \\underbrace{4 \\cdot 4}_{\\text{GAE's temporaries}} + \\underbrace{2 \\cdot 4\\,h}_{\\text{a whole-batch forward}}

bytes: the rollout stores the observation (``d_obs`` float32), the action (``b_action``: 8 for a discrete action,
an int64; ``4 d_act`` for a continuous one), five float32 (reward, value, log-probability, advantage, return) and
three bools (terminated, truncated, valid); the update copies the valid transitions into one flat batch
(observation, action, four float32) and GAE makes a few ``[T, N]`` float32 temporaries; the diagnostics after
the update run each network over the whole batch, with two ``[B, h]`` float32 activations alive at once (``h``
the widest hidden layer). The whole-batch forward is the peak: 512 of CartPole's 615 bytes with ``h = 64``.
Plus one observation per sub-environment to bootstrap from.

Measured (2-core CPU, torch 2.13, PPO CartPole-v1, 64 steps, one epoch): the peak RSS grew by 708-865 bytes per
transition at 16,384 and 65,536 envs, numpy and torch envs alike, 1.15-1.41x this estimate (the rollout alone,
the estimate before issue 44, was 47 bytes: 15-18x below). It stays a lower bound: a width it refuses cannot run,
and a width it accepts may still be tight (the networks, the minibatch activations and the environments add to it).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

FLOAT_BYTES = 4  # float32
SCALARS_PER_TRANSITION = 5  # reward, value, log-probability, advantage, return
FLAGS_PER_TRANSITION = 3  # terminated, truncated, valid (one byte each)
FLAT_SCALARS = 4  # the flattened batch: old log-probability, old value, advantage, return
GAE_TEMPORARIES = 4  # [T, N] float32 tensors GAE and the returns make on the way
LIVE_ACTIVATIONS = 2  # [B, h] float32 activations alive at once in a whole-batch forward (a layer's input and output)
DEFAULT_WIDEST_HIDDEN = 64  # the course's networks: (64, 64)


def transition_bytes(obs_dim: int, action_bytes: int, widest_hidden: int = DEFAULT_WIDEST_HIDDEN) -> int:
    """``b``, the bytes one transition takes in an update (the module's formula): the stored transition, its copy
    in the flattened batch, GAE's temporaries and its rows of a whole-batch forward through ``widest_hidden`` units."""
    stored = FLOAT_BYTES * obs_dim + action_bytes + SCALARS_PER_TRANSITION * FLOAT_BYTES + FLAGS_PER_TRANSITION
    flattened = FLOAT_BYTES * obs_dim + action_bytes + FLAT_SCALARS * FLOAT_BYTES
    return stored + flattened + GAE_TEMPORARIES * FLOAT_BYTES + LIVE_ACTIVATIONS * FLOAT_BYTES * widest_hidden


def action_bytes(discrete: bool, action_dim: int) -> int:
    """8 for a discrete action (an int64), ``4 * action_dim`` for a continuous one (float32)."""
    return 8 if discrete else FLOAT_BYTES * action_dim


def rollout_bytes(num_envs: int, n_steps: int, obs_dim: int, action_size: int, agents: int = 1,
                  widest_hidden: int = DEFAULT_WIDEST_HIDDEN) -> int:
    """``agents * num_envs * (n_steps * b + 4 d_obs)``: the update's transitions and the observations that
    bootstrap its last step (``action_size``: bytes per action, :func:`action_bytes`; ``widest_hidden``: the widest
    hidden layer of the networks)."""
    per_env = n_steps * transition_bytes(obs_dim, action_size, widest_hidden) + FLOAT_BYTES * obs_dim
    return agents * num_envs * per_env


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: ``torch.cuda.mem_get_info`` on a CUDA device, the host's available memory
    otherwise (psutil's ``virtual_memory().available``; ``os.sysconf`` free pages where psutil is missing)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)  # (free, total) bytes
        return int(free)
    try:
        import psutil
        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


@dataclass(frozen=True)
class RolloutMemory:
    """A rollout's estimated bytes against what the device has free."""

    needed: int
    available: int
    per_env: int  # bytes one sub-environment of one agent adds
    agents: int
    device: str

    @property
    def fits(self) -> bool:
        return self.needed <= self.available

    @property
    def largest_num_envs(self) -> int:
        """The widest ``num_envs`` whose rollout fits: ``floor(available / (agents * per_env))``."""
        return self.available // (self.agents * self.per_env)

    def refusal(self, num_envs: int, n_steps: int) -> str:
        """Why ``num_envs`` is too wide, with the numbers and the width that fits."""
        who = f"{self.agents} agents x " if self.agents > 1 else ""
        return (f"num_envs={num_envs} is too wide for the memory of {self.device}: a rollout of {who}{num_envs} envs "
                f"x {n_steps} steps needs at least {gib(self.needed)} ({self.per_env:,} bytes per env), "
                f"{gib(self.available)} is available; the largest num_envs that fits is "
                f"{self.largest_num_envs}{' for ' + str(self.agents) + ' agents' if self.agents > 1 else ''}")


def gib(num_bytes: int) -> str:
    """``1.5 GiB``-style size (MiB below one GiB)."""
    return f"{num_bytes / 2**30:,.1f} GiB" if num_bytes >= 2**30 else f"{num_bytes / 2**20:,.1f} MiB"


def rollout_memory(num_envs: int, n_steps: int, obs_dim: int, action_size: int, device: torch.device,
                   agents: int = 1, available: int | None = None,
                   widest_hidden: int = DEFAULT_WIDEST_HIDDEN) -> RolloutMemory | None:
    """The estimate of :func:`rollout_bytes` against ``available`` bytes (default: :func:`available_bytes`), or
    None when the device cannot say how much it has free (a CUDA error there is the run's to report)."""
    per_env = rollout_bytes(1, n_steps, obs_dim, action_size, widest_hidden=widest_hidden)
    if available is None:
        try:
            available = available_bytes(device)
        except (RuntimeError, AttributeError, AssertionError):
            return None
    return RolloutMemory(agents * num_envs * per_env, available, per_env, agents, str(device))


_DIMENSIONS: dict[str, tuple[int, int] | None] = {}


def env_dimensions(env_id: str, env_kwargs: Mapping[str, Any]) -> tuple[int, int] | None:
    """(observation size, bytes per action) of ``env_id`` made with ``env_kwargs`` (remembered per id and
    arguments), or None when it cannot be made or its spaces are not a flat Box and a Discrete/1-D Box."""
    key = json.dumps([env_id, dict(env_kwargs)], sort_keys=True, default=repr)
    if key not in _DIMENSIONS:
        try:
            import gymnasium as gym
            env = gym.make(env_id, **env_kwargs)
            obs_space, action_space = env.observation_space, env.action_space
            env.close()
            discrete = isinstance(action_space, gym.spaces.Discrete)
            _DIMENSIONS[key] = (int(math.prod(obs_space.shape)),
                                action_bytes(discrete, 1 if discrete else int(math.prod(action_space.shape))))
        except Exception:  # unknown id, bad arguments, other spaces: the trainer says what is wrong
            _DIMENSIONS[key] = None
    return _DIMENSIONS[key]


def time_limit(env_id: str) -> int | None:
    """``env_id``'s registered time limit (``max_episode_steps``), or None."""
    try:
        import gymnasium as gym
        return gym.spec(env_id).max_episode_steps
    except Exception:
        return None


def memory_devices(device: str, env_backend: str) -> list[torch.device]:
    """The devices whose free memory a rollout must fit in: the named one; for ``"auto"`` the CPU, and the GPU
    too when the env is a torch env and CUDA is present (auto may put the run there)."""
    if device.startswith("cuda"):
        return [torch.device(device)] if torch.cuda.is_available() else []
    devices = [torch.device("cpu")]
    if device == "auto" and env_backend == "torch" and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    return devices
