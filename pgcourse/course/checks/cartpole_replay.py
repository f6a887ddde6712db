"""Were the recorded CartPole steps CartPole-v1's? The check replays each recorded transition with the env's own
equations, on the check's side.

A training loop that is given recording envs can still change what they play without touching the recorder: it
can widen the env's thresholds (``env.unwrapped.x_threshold = 1e9``), change its physics, write its state, or its
rewards. The recorder then faithfully records episodes of another game (a loop whose actor learns nothing
recorded 8 episodes of 500 on 4,096 steps). A score taken from the recorded returns is only worth something if
those steps are CartPole's, so :func:`cartpole_problem` checks every recorded step of an episode against:

- the start of an episode: every component of the reset observation in [-0.05, 0.05];
- the dynamics: the next observation is the Euler step of ``gymnasium``'s ``CartPoleEnv.step`` from the observed
  state and the action (force +-10 N, gravity 9.8, cart 1 kg, pole 0.1 kg of half-length 0.5 m, tau 0.02 s);
- the reward: 1 on every step of an episode;
- the end: ``terminated`` exactly when the new state leaves |x| <= 2.4 or |theta| <= 12 degrees, ``truncated``
  exactly at the 500th step (the ``TimeLimit`` of ``gymnasium.make("CartPole-v1")``).

Steps that follow an episode's end with no reset (undefined in gymnasium) are not checked. The constants are
written here, not read from gymnasium's class, so that nothing the loop changes in its process changes them
(``tests/test_grading_env_tampering.py`` checks they reproduce gymnasium's episodes).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

GRAVITY, MASS_CART, MASS_POLE, HALF_LENGTH, FORCE, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * math.pi / 360
RESET_LIMIT = 0.05
MAX_EPISODE_STEPS = 500
# |recorded - replayed| of a next observation: the recorded observations are float32 roundings of gymnasium's
# float64 state; measured on the solution's 30,000 recorded CartPole steps (seed 0, 1,944 episodes): at most
# 2.3e-7 (43 times below the bound).
STATE_TOLERANCE = 1e-5
EDGE = 1e-5  # a state this close to a threshold may round either way: its termination flag is not judged


def cartpole_step(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """CartPole-v1's Euler step of each row: ``obs [B, 4]`` = (x, x_dot, theta, theta_dot), ``actions [B]`` in
    {0, 1} (force -10 or +10 N) -> the next state ``[B, 4]`` (float64)::

        temp = (F + m_p l theta_dot^2 sin theta) / (m_c + m_p)
        theta_acc = (g sin theta - cos theta temp) / (l (4/3 - m_p cos^2 theta / (m_c + m_p)))
        x_acc = temp - m_p l theta_acc cos theta / (m_c + m_p)
        (x, x_dot, theta, theta_dot) += tau (x_dot, x_acc, theta_dot, theta_acc)
    """
    x, x_dot, theta, theta_dot = np.asarray(obs, dtype=np.float64).T
    force = np.where(np.asarray(actions) == 1, FORCE, -FORCE)
    total, pole_ml = MASS_CART + MASS_POLE, MASS_POLE * HALF_LENGTH
    cos, sin = np.cos(theta), np.sin(theta)
    temp = (force + pole_ml * theta_dot ** 2 * sin) / total
    theta_acc = (GRAVITY * sin - cos * temp) / (HALF_LENGTH * (4.0 / 3.0 - MASS_POLE * cos ** 2 / total))
    x_acc = temp - pole_ml * theta_acc * cos / total
    return np.stack([x + TAU * x_dot, x_dot + TAU * x_acc, theta + TAU * theta_dot, theta_dot + TAU * theta_acc], -1)


def _fallen(state: np.ndarray) -> bool | None:
    """Whether ``state [4]`` is beyond a threshold; None when it is within EDGE of one (rounding decides)."""
    margins = (abs(state[0]) - X_LIMIT, abs(state[2]) - THETA_LIMIT)
    if any(abs(m) <= EDGE for m in margins):
        return None
    return any(m > 0 for m in margins)


def _advice() -> str:
    return ("the check scores the episodes played on the envs make_envs(env_name) gives your loop, as gymnasium "
            "makes them: change nothing of them (their thresholds, physics, state, rewards or time limit), "
            "and reset an env only through env.reset().")


def cartpole_problem(played: dict[str, Any]) -> str | None:
    """The first recorded step that CartPole-v1 could not have played, in words; None if every step of every
    episode is CartPole's. ``played``: the record of :class:`pgcourse.classroom.sandboxed.loops.EnvLog` (rows ``env``,
    ``obs [S, 4]``, ``actions``, ``rewards``, ``terminated``, ``truncated`` on one clock, ``final`` [[clock, obs]]
    of each step that ended an episode, ``resets`` [[clock, env, seeded]])."""
    env = np.asarray(played["env"], dtype=np.int64)
    obs = np.asarray(played["obs"], dtype=np.float64).reshape(len(env), -1)
    if len(env) == 0:
        return None
    if obs.shape[1] != 4:
        return f"the envs' observations have {obs.shape[1]} numbers; CartPole-v1's have 4: {_advice()}"
    actions = np.asarray(played["actions"])
    rewards = np.asarray(played["rewards"], dtype=np.float64)
    terminated, truncated = np.asarray(played["terminated"], bool), np.asarray(played["truncated"], bool)
    predicted = cartpole_step(obs, actions)  # [S, 4]
    final = {int(clock): np.asarray(o, dtype=np.float64) for clock, o in played["final"]}
    resets = sorted((int(clock), int(i)) for clock, i, *_ in played["resets"])
    waiting: dict[int, int | None] = {}   # env -> the row whose next state its next row starts from
    length: dict[int, int | None] = {}    # env -> steps of its current episode (None: none running)
    fresh: dict[int, bool] = {}
    r = 0
    for k in range(len(env)):
        while r < len(resets) and resets[r][0] <= k:
            waiting[resets[r][1]], length[resets[r][1]], fresh[resets[r][1]] = None, 0, True
            r += 1
        i = int(env[k])
        if length.get(i) is None:
            continue  # stepped after its episode ended (or before any reset): not an episode's step
        where = f"step {k + 1} of the record (env {i}, step {length[i] + 1} of its episode)"
        if fresh.pop(i, False) and not (np.abs(obs[k]) <= RESET_LIMIT + 1e-7).all():
            return (f"{where} starts from {np.round(obs[k], 4).tolist()}; CartPole-v1 resets to a state in "
                    f"[-{RESET_LIMIT}, {RESET_LIMIT}]^4: {_advice()}")
        previous = waiting.get(i)
        if previous is not None and not np.allclose(obs[k], predicted[previous], rtol=0, atol=STATE_TOLERANCE):
            return (f"{where} starts from {np.round(obs[k], 5).tolist()}, but CartPole-v1's step from the state "
                    f"before it leads to {np.round(predicted[previous], 5).tolist()}: {_advice()}")
        if rewards[k] != 1.0:
            return f"{where} gave the reward {rewards[k]:g}; CartPole-v1 gives 1 on every step: {_advice()}"
        length[i] += 1
        fallen = _fallen(predicted[k])
        if fallen is not None and bool(terminated[k]) != fallen:
            return (f"{where} {'ended' if terminated[k] else 'did not end'} with the state "
                    f"{np.round(predicted[k], 4).tolist()}; CartPole-v1 terminates exactly when |x| > {X_LIMIT} or "
                    f"|theta| > {THETA_LIMIT:.4f}: {_advice()}")
        if bool(truncated[k]) != (length[i] >= MAX_EPISODE_STEPS):
            return (f"{where} was {'' if truncated[k] else 'not '}truncated; CartPole-v1's time limit cuts an "
                    f"episode at step {MAX_EPISODE_STEPS}: {_advice()}")
        if terminated[k] or truncated[k]:
            if k in final and not np.allclose(final[k], predicted[k], rtol=0, atol=STATE_TOLERANCE):
                return (f"{where} ended on {np.round(final[k], 5).tolist()}, but CartPole-v1's step leads to "
                        f"{np.round(predicted[k], 5).tolist()}: {_advice()}")
            waiting[i], length[i] = None, None
        else:
            waiting[i] = k
    return None
