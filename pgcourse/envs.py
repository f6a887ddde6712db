"""Vector environments from gymnasium 1.x, seeded, with the autoreset mode made explicit.

We use ``AutoresetMode.NEXT_STEP`` (gymnasium's default, and the only mode its normalisation
wrappers accept). In that mode, a step that ends an episode returns the episode's *true final
observation*; the environment resets on the *next* call to ``step``, which ignores the action and
returns reward 0 and the first observation of the new episode. That "reset step" is not a
transition and must never be trained on. :class:`RolloutStepper` below turns the raw stream into
transitions and a ``valid`` mask so the algorithms never see a reset step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers.vector import NormalizeObservation, NormalizeReward, RecordEpisodeStatistics

AUTORESET_MODE = gym.vector.AutoresetMode.NEXT_STEP


def action_space_kind(space: gym.Space) -> str:
    """``"discrete"`` for ``Discrete``, ``"continuous"`` for a 1-D ``Box``; anything else is an error."""
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return "continuous"
    raise ValueError(f"unsupported action space {space}: expected Discrete(n) or a 1-D Box (continuous actions)")


def check_observation_space(space: gym.Space, env_id: str) -> int:
    """Return the observation dimension, or raise if observations are not flat float vectors."""
    if not (isinstance(space, gym.spaces.Box) and len(space.shape) == 1):
        raise ValueError(f"{env_id}: unsupported observation space {space}; expected a 1-D Box (a flat vector)")
    return int(space.shape[0])


def env_spaces(env_id: str) -> tuple[gym.Space, gym.Space]:
    """(single observation space, single action space) of ``env_id``, without keeping the env."""
    try:
        env = gym.make(env_id)
    except gym.error.Error as error:
        raise ValueError(f"cannot make gymnasium environment {env_id!r}: {error}") from error
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def make_vector_env(env_id: str, num_envs: int, *, normalize_obs: bool = False, normalize_reward: bool = False,
                    gamma: float = 0.99, render_mode: str | None = None) -> gym.vector.VectorEnv:
    """A ``SyncVectorEnv`` of ``num_envs`` copies of ``env_id`` in NEXT_STEP autoreset mode.

    Wrapper order (inside to outside): episode statistics on the *raw* rewards, then observation
    normalisation, then reward scaling, all from ``gymnasium.wrappers.vector``. Seed it with
    ``envs.reset(seed=seed)`` (sub-environment ``i`` gets ``seed + i``).
    """
    kwargs: dict[str, Any] = {} if render_mode is None else {"render_mode": render_mode}
    envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": AUTORESET_MODE}, **kwargs)
    return add_normalization(RecordEpisodeStatistics(envs), normalize_obs=normalize_obs,
                             normalize_reward=normalize_reward, gamma=gamma)


def add_normalization(envs: gym.vector.VectorEnv, *, normalize_obs: bool, normalize_reward: bool,
                      gamma: float = 0.99) -> gym.vector.VectorEnv:
    """Wrap ``envs`` in gymnasium's observation normalisation, then reward scaling (each if asked)."""
    if normalize_obs:
        envs = NormalizeObservation(envs)
    if normalize_reward:
        envs = NormalizeReward(envs, gamma=gamma)
    return envs


def find_wrapper(envs: Any, wrapper_type: type) -> Any | None:
    """The first wrapper of ``wrapper_type`` in the chain ``envs, envs.env, …``, or None."""
    while envs is not None:
        if isinstance(envs, wrapper_type):
            return envs
        envs = getattr(envs, "env", None)
    return None


@dataclass
class ObsNormalizerState:
    """Frozen statistics of gymnasium's ``NormalizeObservation``: ``(obs - mean) / sqrt(var + epsilon)``."""

    mean: np.ndarray
    var: np.ndarray
    count: float
    epsilon: float = 1e-8

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        return ((observations - self.mean) / np.sqrt(self.var + self.epsilon)).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist(), "count": float(self.count),
                "epsilon": float(self.epsilon)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObsNormalizerState:
        return cls(np.asarray(data["mean"], dtype=np.float64), np.asarray(data["var"], dtype=np.float64),
                   float(data["count"]), float(data["epsilon"]))


def normalizer_state(envs: Any) -> dict[str, Any]:
    """Snapshot of the running statistics of the normalisation wrappers (empty dict if none)."""
    state: dict[str, Any] = {}
    obs_wrapper = find_wrapper(envs, NormalizeObservation)
    if obs_wrapper is not None:
        rms = obs_wrapper.obs_rms
        state["obs"] = ObsNormalizerState(np.array(rms.mean, dtype=np.float64), np.array(rms.var, dtype=np.float64),
                                          float(rms.count), float(obs_wrapper.epsilon)).to_dict()
    reward_wrapper = find_wrapper(envs, NormalizeReward)
    if reward_wrapper is not None:
        rms = reward_wrapper.return_rms
        state["reward"] = {"var": float(np.asarray(rms.var)), "mean": float(np.asarray(rms.mean)),
                           "count": float(rms.count), "epsilon": float(reward_wrapper.epsilon)}
    return state


@dataclass
class StepResult:
    """One vector step seen as transitions.

    ``valid[i]`` is False when sub-env ``i`` was autoresetting: its action was ignored, its reward
    is 0 and ``next_obs[i]`` is the first observation of a new episode, so it is not a transition.
    For a valid step that ended an episode, ``next_obs[i]`` is the true final observation (NEXT_STEP
    mode returns it from the ending step), which is what a truncated step bootstraps from.
    """

    next_obs: np.ndarray       # [N, obs_dim]
    rewards: np.ndarray        # [N] (scaled if reward normalisation is on)
    terminated: np.ndarray     # [N] bool
    truncated: np.ndarray      # [N] bool
    valid: np.ndarray          # [N] bool
    episode_returns: list[float]   # raw returns of episodes that ended this step
    episode_lengths: list[int]


class RolloutStepper:
    """Steps a NEXT_STEP vector env and marks which steps are real transitions."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int):
        self.envs = envs
        self.obs, _ = envs.reset(seed=seed)  # [N, obs_dim]
        self.autoresetting = np.zeros(envs.num_envs, dtype=bool)  # [N]: this step will be a reset step
        self.envs.action_space.seed(seed)

    def step(self, actions: np.ndarray) -> StepResult:
        valid = ~self.autoresetting
        next_obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        episode_returns: list[float] = []
        episode_lengths: list[int] = []
        if "episode" in infos:
            ended = infos["_episode"]  # [N] bool: an episode ended in this sub-env at this step
            for i in np.flatnonzero(ended):
                episode_returns.append(float(infos["episode"]["r"][i]))
                episode_lengths.append(int(infos["episode"]["l"][i]))
        self.autoresetting = terminated | truncated
        self.obs = next_obs
        return StepResult(next_obs, np.asarray(rewards, dtype=np.float64), terminated, truncated, valid,
                          episode_returns, episode_lengths)


def transition_mask(terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    r"""Which steps of a NEXT_STEP rollout (started from a fresh reset) are real transitions.

    .. math:: \text{valid}_0 = \text{True}, \qquad
              \text{valid}_t = \lnot(\text{term}_{t-1} \lor \text{trunc}_{t-1})

    The step right after an episode end is the autoreset step: its action is ignored, its reward is
    0 and its observation starts a new episode, so it is not a transition.

    Args:
        terminated: ``[T, N]`` bool, as returned by ``envs.step`` at each step.
        truncated: ``[T, N]`` bool.

    Returns:
        ``[T, N]`` bool mask, True for real transitions.
    """
    done = torch.as_tensor(terminated).bool() | torch.as_tensor(truncated).bool()  # [T, N]
    valid = torch.ones_like(done)  # [T, N]; step 0 follows the reset, so it is real
    valid[1:] = ~done[:-1]
    return valid


def completed_episode_returns(rewards: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor) -> list[float]:
    """Undiscounted returns of the episodes that ended within a NEXT_STEP rollout started from reset.

    An episode ends at a step where ``terminated`` or ``truncated`` is True (both end it: a time
    limit ends the episode as surely as a terminal state). Episodes still running at the last step
    are left out. Reset steps are not transitions and add nothing.

    Args:
        rewards: ``[T, N]`` rewards as returned by ``envs.step``.
        terminated: ``[T, N]`` bool.
        truncated: ``[T, N]`` bool.

    Returns:
        One float per finished episode, ordered by (end step, env index).
    """
    rewards = torch.as_tensor(rewards).detach().double()  # [T, N]
    done = torch.as_tensor(terminated).bool() | torch.as_tensor(truncated).bool()  # [T, N]
    valid = transition_mask(terminated, truncated)  # [T, N]
    running_returns = torch.zeros(rewards.shape[1], dtype=torch.float64)  # [N]
    episode_returns: list[float] = []
    for t in range(rewards.shape[0]):
        running_returns += torch.where(valid[t], rewards[t], 0.0)
        for env_index in torch.nonzero(done[t]).flatten().tolist():
            episode_returns.append(float(running_returns[env_index]))
            running_returns[env_index] = 0.0
    return episode_returns


def play_episode(env: gym.Env, policy, seed: int) -> tuple[float, int, bool, bool]:
    """Play one episode of ``env`` from ``env.reset(seed=seed)`` with ``action = policy(obs)``.

    Returns ``(episode_return, length, terminated, truncated)``: the sum of all rewards (the last
    one included), the number of steps, and the flags of the last step. The loop stops at the
    first step that is ``terminated`` *or* ``truncated`` (a time limit ends the episode too).
    """
    obs, _ = env.reset(seed=seed)
    episode_return, length = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        episode_return += float(reward)
        length += 1
        if terminated or truncated:
            return episode_return, length, bool(terminated), bool(truncated)
