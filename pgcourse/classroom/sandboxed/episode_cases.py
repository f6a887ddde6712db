"""The episodes of the ``play_episode`` check, described as data so that they can be played wherever the
learner's function runs: in the notebook, or in the grader's sandbox (where only data crosses, so the
environment and the controller are built there from their names).

Also the environments other checks build by id where the learner's function runs (gymnasium ids registered when
this module is imported, which both processes do: ``pgcourse.course.checks`` imports it, and the grader's sandboxed
student process imports it when it starts):
:class:`TwoStateTimeLimitProbe`, exercise 06 Part B's probe of what a truncated step bootstraps from, and
:class:`OneStateProbe`, its two one-state probes (the check builds Part B's envs itself, recorded).

Imports only gymnasium and numpy: the grader copies this module into its sandbox.
"""
from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

# (description, env id, controller name, seed)
CASES: list[tuple[str, str, str, int]] = [
    ("CartPole-v1, always push left (ends by termination)", "CartPole-v1", "push_left", 0),
    ("CartPole-v1, a balancing controller (truncated at the 500-step limit)", "CartPole-v1", "balance", 1),
    ("Pendulum-v1, zero torque (Pendulum never terminates: truncated at 200 steps)", "Pendulum-v1", "zero_torque", 0),
]

CONTROLLERS: dict[str, Callable[[Any], Any]] = {
    "push_left": lambda obs: 0,
    "balance": lambda obs: int(obs[2] + obs[3] > 0),
    "zero_torque": lambda obs: np.zeros(1, dtype=np.float32),
}


class EpisodeGuard:
    """Wraps an env for the play_episode check: records the reset seed and whether ``step`` was called
    after the episode ended (then raises, so a loop that ignores ``truncated`` cannot run forever)."""

    def __init__(self, env: Any):
        self.env = env
        self.action_space, self.observation_space = env.action_space, env.observation_space
        self.ended = False
        self.stepped_past_end = False
        self.steps = 0  # env.step calls within the episode (what a right count of the length gives)
        self.reset_seed: Any = "never reset"

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self.ended = False
        self.steps = 0
        self.reset_seed = seed
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any):
        if self.ended:
            self.stepped_past_end = True
            raise RuntimeError("env.step() called after the episode ended (terminated or truncated)")
        result = self.env.step(action)
        self.steps += 1
        self.ended = bool(result[2] or result[3])
        return result


def _plain(value: Any) -> Any:
    """numpy scalars and arrays to Python numbers and lists (the outcome is data)."""
    if isinstance(value, tuple | list):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def play(fn: Callable[..., Any], env_id: str, controller: str, seed: int) -> dict[str, Any]:
    """Call ``fn(env, policy, seed)`` on a guarded ``env_id`` with the named controller.

    Returns data: ``{"result": ..., "reset_seed": ..., "stepped_past_end": bool, "steps": int}``, or with ``"error"``
    (the learner's traceback) and ``"error_type"`` instead of ``"result"`` when their function raised.
    """
    import gymnasium as gym

    guard = EpisodeGuard(gym.make(env_id))
    outcome: dict[str, Any] = {}
    try:
        outcome["result"] = _plain(fn(guard, CONTROLLERS[controller], seed))
    except Exception as error:  # noqa: BLE001 - the learner's crash, reported as data
        outcome["error_type"] = type(error).__name__
        outcome["error"] = "".join(traceback.format_exception(type(error), error, error.__traceback__.tb_next))
    finally:
        guard.env.close()
    reset_seed = guard.reset_seed
    outcome["reset_seed"] = reset_seed if reset_seed is None or isinstance(reset_seed, int | str) else repr(reset_seed)
    outcome["stepped_past_end"] = guard.stepped_past_end
    outcome["steps"] = guard.steps
    return outcome


def warm_up() -> None:
    """Import and build what the cases use once (in the sandbox, before any student code)."""
    import gymnasium as gym

    for env_id in {env_id for _, env_id, _, _ in CASES}:
        gym.make(env_id).close()


class TwoStateTimeLimitProbe(gym.Env):
    """Two states that alternate whatever the action, A (observation [1.0], reward 1) and B (observation [-1.0],
    reward 0); an episode starts in A and is cut by a time limit after 3 steps (A, B, A), never terminated, so
    its final observation is B while the next episode starts in A.

    With discount gamma the episode goes on after the time limit: V(A) = 1 + gamma V(B) and V(B) = gamma V(A),
    V(A) = 1 / (1 - gamma^2). A loop that bootstraps the truncated step from the observation reset() returned (A,
    the next episode's first state) instead of the step's own final observation (B) learns another fixed point
    (:func:`two_state_values`)."""

    LENGTH = 3

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    @staticmethod
    def _observation(t: int) -> np.ndarray:
        return np.full(1, 1.0 if t % 2 == 0 else -1.0, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._observation(0), {}

    def step(self, action: Any):
        reward = 1.0 if self.t % 2 == 0 else 0.0
        self.t += 1
        return self._observation(self.t), reward, False, self.t >= self.LENGTH, {}


def two_state_values(gamma: float, bootstrap_from_reset: bool = False) -> tuple[float, float]:
    """(V(A), V(B)) at the TD fixed point of :class:`TwoStateTimeLimitProbe`, each state's value the mean of its
    targets. A's two steps per episode have targets 1 + gamma V(B) and, on the truncated step, 1 + gamma V(B) again
    (or 1 + gamma V(A) when the loop bootstraps from the observation reset() returned); B's one step has
    gamma V(A)."""
    if bootstrap_from_reset:  # V(A) = 1 + gamma (V(B) + V(A)) / 2 with V(B) = gamma V(A)
        value_a = 1.0 / (1.0 - gamma * (1.0 + gamma) / 2.0)
    else:
        value_a = 1.0 / (1.0 - gamma * gamma)
    return value_a, gamma * value_a


TWO_STATE_PROBE_ID = "TwoStateTimeLimitProbe-v0"


class OneStateProbe(gym.Env):
    """Exercise 06 Part B's one-state probe (the notebook's ``ProbeEnv``): observation [1.0], two actions that do
    the same, reward 1 per step; every episode ends after ``length`` steps, by termination (``terminates``) or by a
    time limit. The check builds it where the learner's loop runs (its envs are the check's, recorded)."""

    def __init__(self, terminates: bool, length: int = 10) -> None:
        self.observation_space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.terminates, self.length, self.t = bool(terminates), int(length), 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t = 0
        return np.ones(1, np.float32), {}

    def step(self, action: Any):
        self.t += 1
        end = self.t >= self.length
        return np.ones(1, np.float32), 1.0, end and self.terminates, end and not self.terminates, {}


# Part B's env names (its make_envs) -> the gymnasium ids the check builds them by
PART_B_PROBES = {"probe-terminates": "OneStateTerminatingProbe-v0", "probe-time-limit": "OneStateTimeLimitProbe-v0"}


def _register() -> None:
    if TWO_STATE_PROBE_ID not in gym.registry:
        gym.register(TWO_STATE_PROBE_ID, entry_point=TwoStateTimeLimitProbe)
    for name, env_id in PART_B_PROBES.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=OneStateProbe, kwargs={"terminates": name == "probe-terminates"})


_register()
