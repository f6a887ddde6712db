"""Checks of chapter 06 (debugging traps): the bug hunt and "find the bug in this code".

- ``check_mystery(k, answer)`` / ``check_bug_hunt(answers)``: the trap planted in mystery trainer ``k``,
  checked by behaviour in :mod:`pgcourse.course.debugging.bug_hunt` (imported only when the check runs; it knows the
  traps).
- ``check_train_actor_critic(fn)``: the learner's repaired actor-critic loop. The notebook shows a short
  loop with one subtle bug; the learner fixes it. The check trains the fixed loop on two probe environments
  whose right answer is known in closed form (the critic's value of their one state), then on CartPole,
  where it must learn. A probe environment is the smallest case in which a bug cannot hide: one state,
  reward 1 per step, an episode of 10 steps that ends by termination in one probe and by the time limit in
  the other. A third probe, two alternating states cut by a time limit on the state the next episode does not
  start from, tells which observation a truncated step bootstraps from (storing the row after ``env.reset()``
  bootstraps from the next episode's first observation, which the one-state probes cannot show).

The contract of the loop: ``fn(env_name, total_steps, seed=0, gamma=0.99, lr=3e-3, n_steps=16)``; the loop
builds its environments with ``make_envs(env_name)`` (a read-only cell of the notebook: ``"CartPole-v1"``, one
of the two probes, :data:`PROBES`, or another gymnasium id: the two-state probe is
``"TwoStateTimeLimitProbe-v0"``, registered by :mod:`pgcourse.classroom.sandboxed.episode_cases`, which the grader's sandbox imports
too) and returns ``(policy.state_dict(), value_net.state_dict(),
episode_returns)``: only data, so that the sandboxed grader can run it where the learner's code lives (no
environment or network crosses), and the check rebuilds the critic (``Linear(obs_dim, 64), Tanh,
Linear(64, 1)``) from its parameters. During the check ``make_envs`` is the check's (the name swapped in the loop's
module for the call, in the notebook and in the grader's student process: :mod:`pgcourse.classroom.sandboxed.loops`): the
envs record what the loop plays and every optimiser step is recorded, the learning score is computed from the
returns the check recorded, and :mod:`.ch06_proof` checks the returned networks are the product of the loop's own
steps (a loop that trained nothing, wrote the probes' critics by hand and reported returns of 500 passed before).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ...classroom.sandboxed.episode_cases import (TWO_STATE_PROBE_ID, two_state_values)  # importing it registers the two-state probe
from .ch06_proof import ActorCriticContract, prove_actor_critic, recorded_returns
from .harness import LearnerCodeError
from .sandbox_code import sandbox_loops
from .stages import is_remote

PROBE_GAMMA = 0.9
PROBE_LENGTH = 10
PROBE_STEPS = 16_384
PROBE_LR = 3e-3
PROBE_TOLERANCE = 0.6  # |V - expected|; measured on the fixed loop: within 0.1 (see tests/test_bug_hunt.py)
# The value of the probe's one state: every step is worth 1 and the next state is the same state, so
# V = 1 + gamma V where the episode goes on. After a time limit it goes on (the state has a future):
# V = 1 / (1 - gamma) = 10. After a termination it does not: 9 of every 10 targets are 1 + gamma V and the
# 10th is 1, so (all steps being the same state) the TD fixed point is V = 1 + gamma (9/10) V, V = 5.26.
TRUNCATION_VALUE = 1.0 / (1.0 - PROBE_GAMMA)

LEARN_ENV, LEARN_ENVS, LEARN_STEPS, LEARN_SEED = "CartPole-v1", 8, 30_000, 0
LEARN_WINDOW, LEARN_THRESHOLD = 50, 35.0  # best 50-episode average return; a random policy's over 30,000 steps: 27.3


def _termination_fixed_point(gamma: float = PROBE_GAMMA, length: int = PROBE_LENGTH) -> float:
    """V with V = mean over the episode's steps of the TD target: (length - 1) targets 1 + gamma V and one 1."""
    return 1.0 / (1.0 - gamma * (length - 1) / length)


TERMINATION_VALUE = _termination_fixed_point()


PROBES = {True: "probe-terminates", False: "probe-time-limit"}  # terminates? -> the env name make_envs knows


def _is_stub(error: BaseException) -> bool:
    return isinstance(error, NotImplementedError) or "NotImplementedError" in f"{type(error).__name__}: {error}"




def _call(fn: Callable[..., Any], env_name: str, total_steps: int, **kwargs: Any) -> tuple[Any, Any, list]:
    """The loop trained on ``env_name`` on the check's envs (its ``make_envs`` swapped for the check's, recorded: the
    same code where it runs, here or in the grader's student process, :mod:`pgcourse.classroom.sandboxed.loops`); the record must
    prove the returned networks the product of its own steps (:mod:`.ch06_proof`). Returns ``(policy state, critic
    state, the returns of the episodes the check recorded)``."""
    loops = sandbox_loops()
    contract = ActorCriticContract(total_steps, int(kwargs.get("seed", 0)), float(kwargs.get("lr", 3e-3)),
                                   int(kwargs.get("n_steps", 16)))
    spec = {"calls": [], "make_envs": {"args": [env_name, total_steps], "kwargs": kwargs,
                                       "keep": 2 * (total_steps // contract.n_steps) + 2}}
    try:
        outcome = fn.play_case(spec) if is_remote(fn) else loops.play_with_make_envs(fn, spec)
    except Exception as error:
        if _is_stub(error):
            raise AssertionError("train_actor_critic is not implemented yet: copy the loop above into the answer "
                                 "cell and fix it") from None
        raise LearnerCodeError(f"train_actor_critic raised {type(error).__name__}: {error}") from error
    result = outcome["calls"][0]["result"]
    if not (isinstance(result, tuple | list) and len(result) == 3):
        raise AssertionError("train_actor_critic must return (policy.state_dict(), value_net.state_dict(), "
                             f"episode_returns), as the loop above does; it returned {type(result).__name__}")
    env = gym.make(loops.PART_B_PROBES.get(env_name, env_name))
    obs_dim, n_actions = int(env.observation_space.shape[0]), int(env.action_space.n)
    env.close()
    problem = prove_actor_critic(outcome, contract, obs_dim, n_actions, env_name)
    if problem:
        raise AssertionError(f"train_actor_critic on {env_name} ({total_steps} steps, seed {contract.seed}): "
                             f"{problem}")
    return result[0], result[1], recorded_returns(outcome["played"])


def _critic(value_state: Any, obs_dim: int = 1) -> torch.nn.Module:
    """The loop's critic, rebuilt from the parameters it returned."""
    value_net = torch.nn.Sequential(torch.nn.Linear(obs_dim, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
    try:
        value_net.load_state_dict({str(k): torch.as_tensor(v) for k, v in dict(value_state).items()})
    except Exception as error:
        raise AssertionError("train_actor_critic's second result must be value_net.state_dict() of the loop's critic "
                             f"(Linear(obs_dim, 64), Tanh, Linear(64, 1)), as in the loop above: {error}") from None
    return value_net


def probe_value(fn: Callable[..., Any], terminates: bool, steps: int = PROBE_STEPS, lr: float = PROBE_LR,
                seed: int = 0) -> float:
    """Train loop ``fn`` on the probe (``make_envs(PROBES[terminates])``: one state, observation [1.0], reward 1
    per step, episodes of 10 steps ending by termination or by a time limit) and return its critic's value of
    the state."""
    torch_threads = torch.get_num_threads()
    try:
        _, value_state, _ = _call(fn, PROBES[terminates], steps, seed=seed, gamma=PROBE_GAMMA, lr=lr)
    finally:
        torch.set_num_threads(torch_threads)
    with torch.no_grad():
        return float(_critic(value_state)(torch.ones(1, 1)).reshape(-1)[0])


def _probe_message(value: float, terminates: bool) -> str:
    expected = TERMINATION_VALUE if terminates else TRUNCATION_VALUE
    other = TRUNCATION_VALUE if terminates else TERMINATION_VALUE
    how = "terminates" if terminates else "is cut by a time limit (truncated, never terminated)"
    lines = [f"Probe environment: one state, reward 1 per step, gamma = {PROBE_GAMMA}; each episode {how} after "
             f"{PROBE_LENGTH} steps. After training your loop for {PROBE_STEPS} steps, its critic values the state at "
             f"{value:.2f}; the right value is {expected:.2f}."]
    if not np.isfinite(value):
        lines.append("The value is not finite: the critic diverged.")
    elif abs(value - other) < PROBE_TOLERANCE:
        if terminates:
            lines.append(f"{other:.2f} = 1 / (1 - gamma) is the value of a state whose future never ends: your TD "
                         "targets bootstrap from V(s') after the terminal step too. There is no next state there.")
        else:
            lines.append(f"{other:.2f} is the TD fixed point when the target drops V(s') at every episode end. A "
                         "time limit is not a terminal state: the same state, the same future. Which flag decides "
                         "whether your target bootstraps?")
    elif value > max(expected, other) + PROBE_TOLERANCE:
        lines.append(f"That is above the largest discounted return any policy can get here ({TRUNCATION_VALUE:.0f}): "
                     "the critic is pushed by something other than its TD error. List the terms of your loss and "
                     "ask which of them send gradient into value_net's parameters (torch.autograd.grad of each term "
                     "with respect to list(value_net.parameters()), allow_unused=True, tells you).")
    else:
        lines.append("The critic has not reached the TD fixed point: are the targets r + gamma V(s') (with V(s') a "
                     "constant), and does the critic get a gradient step on every update?")
    return "\n".join(lines)


def two_state_probe_values(fn: Callable[..., Any], steps: int = PROBE_STEPS, lr: float = PROBE_LR,
                           seed: int = 0) -> tuple[float, float]:
    """Train loop ``fn`` on the two-state probe (``make_envs("TwoStateTimeLimitProbe-v0")``, a gymnasium id: states
    A = [1.0] with reward 1 and B = [-1.0] with reward 0 alternate, every episode A, B, A cut by the time limit, its
    final observation B) and return its critic's (V(A), V(B)). The one-state probes cannot tell which observation
    a truncated step bootstraps from (the final observation and the next episode's first are the same); here they
    differ, A after reset, B at the end."""
    torch_threads = torch.get_num_threads()
    try:
        _, value_state, _ = _call(fn, TWO_STATE_PROBE_ID, steps, seed=seed, gamma=PROBE_GAMMA, lr=lr)
    finally:
        torch.set_num_threads(torch_threads)
    with torch.no_grad():
        values = _critic(value_state)(torch.tensor([[1.0], [-1.0]])).reshape(-1)
    return float(values[0]), float(values[1])


TWO_STATE_VALUES = two_state_values(PROBE_GAMMA)  # (5.26, 4.74)
FROM_RESET_VALUES = two_state_values(PROBE_GAMMA, bootstrap_from_reset=True)  # (6.90, 6.21)


def _two_state_message(values: tuple[float, float]) -> str:
    (a, b), (right_a, right_b) = values, TWO_STATE_VALUES
    lines = [f"Two-state probe: states A (observation [1.0], reward 1) and B (observation [-1.0], reward 0) "
             f"alternate whatever the action; every episode is A, B, A, cut by a time limit after 3 steps (truncated, "
             f"never terminated), so its final observation is B and the next episode starts in A. gamma = "
             f"{PROBE_GAMMA}. After training your loop for {PROBE_STEPS} steps its critic gives V(A) = {a:.2f}, "
             f"V(B) = {b:.2f}; the right values are {right_a:.2f} and {right_b:.2f} (V(A) = 1 + gamma V(B), "
             f"V(B) = gamma V(A): the episode goes on after a time limit)."]
    wrong_a, wrong_b = FROM_RESET_VALUES
    if not (np.isfinite(a) and np.isfinite(b)):
        lines.append("The values are not finite: the critic diverged.")
    elif abs(a - wrong_a) < PROBE_TOLERANCE and abs(b - wrong_b) < PROBE_TOLERANCE:
        lines.append(f"{wrong_a:.2f} and {wrong_b:.2f} are the fixed point of targets that bootstrap the truncated "
                     "step from V(A), the observation reset() returned, the next episode's first state, instead of "
                     "V(B), the final observation that step itself returned. The one-state probes cannot show it "
                     "(there the two observations are the same). Which observation does your stored row hold when "
                     "an episode ends?")
    else:
        lines.append("The critic has not reached the TD fixed point: are the targets r + gamma V(s'), with s' the "
                     "observation the step returned (not the one after a reset), V(s') a constant, and does the "
                     "critic get a gradient step on every update?")
    return "\n".join(lines)


def learning_score(episode_returns: Sequence[float], window: int = LEARN_WINDOW) -> float:
    """The best average return over ``window`` consecutive finished episodes (NaN if fewer)."""
    returns = np.asarray(list(episode_returns), dtype=float)
    if len(returns) < window:
        return float("nan")
    return float(np.convolve(returns, np.ones(window) / window, mode="valid").max())


def check_train_actor_critic(fn: Callable[..., Any]) -> None:
    """Check the repaired actor-critic loop: the three probe environments (termination, time limit, and the
    two-state probe whose truncated step ends on another observation than the next reset's) give the critic the
    values their dynamics imply, and the loop learns CartPole-v1 (best 50-episode average return >= 35 within 30,000
    steps, scored on the returns the check recorded; a random policy's, over as many steps, is about 27). Every run
    plays on the check's envs and must prove the returned networks the product of its own optimiser steps
    (:mod:`.ch06_proof`). Four trainings: 12.5 s of CPU for the solution (measured 2026-11-29 on a 2-core AMD EPYC,
    one thread; an earlier docstring said 80 to 110 s)."""
    reached = {}
    for terminates in (True, False):
        value = probe_value(fn, terminates)
        expected = TERMINATION_VALUE if terminates else TRUNCATION_VALUE
        if not (np.isfinite(value) and abs(value - expected) < PROBE_TOLERANCE):
            raise AssertionError(_probe_message(value, terminates))
        reached[terminates] = value
    values = two_state_probe_values(fn)
    if not all(np.isfinite(v) and abs(v - right) < PROBE_TOLERANCE for v, right in zip(values, TWO_STATE_VALUES)):
        raise AssertionError(_two_state_message(values))
    _, _, returns = _call(fn, LEARN_ENV, LEARN_STEPS, seed=LEARN_SEED)  # the returns the check recorded
    score = learning_score(returns)
    if not score >= LEARN_THRESHOLD:
        raise AssertionError(
            f"On {LEARN_ENV} (make_envs: {LEARN_ENVS} envs; seed {LEARN_SEED}, {LEARN_STEPS} steps) your loop's best "
            f"{LEARN_WINDOW}-episode average return is {score:.1f} (over {len(returns)} finished episodes); a loop "
            f"that learns reaches {LEARN_THRESHOLD:.0f} (a random policy's, over as many steps, is about 27). The probes passed, so the critic "
            "is right: look at the actor's loss (its sign, and which actions' log-probs it weights).")
    print(f"✓ train_actor_critic: the probe critics within {PROBE_TOLERANCE} of the right values (yours "
          f"{reached[True]:.2f} for {TERMINATION_VALUE:.2f} after terminations, {reached[False]:.2f} for "
          f"{TRUNCATION_VALUE:.2f} after time limits, {values[0]:.2f} and {values[1]:.2f} for {TWO_STATE_VALUES[0]:.2f} "
          f"and {TWO_STATE_VALUES[1]:.2f} where the truncated step's final observation is not the reset one), and it "
          f"learns {LEARN_ENV} (best {LEARN_WINDOW}-episode average {score:.0f})")


def check_mystery(k: int, answer: str, signal: str | None = None, evidence: tuple[int, float] | None = None) -> None:
    """Check the bug hunt's answer for mystery trainer ``k``: ``answer`` names the trap planted in it (a key of
    ``pg.traps.TRAPS``), ``signal`` the signal of ``pg.diagnose`` it shows in (one of ``pg.traps.SIGNALS``) and
    ``evidence = (update, value)`` where that signal first parts from the correct twin's, with the mystery's value
    there. On the practice six the whole answer is judged; on a hunt made for you, its form and its evidence (the
    bug is in your teacher's key: the grader judges it)."""
    from ..debugging.bug_hunt import check_mystery as _check

    _check(k, answer, signal, evidence)


def check_bug_hunt(answers: dict) -> None:
    """Check all the bug hunt's answers at once: ``answers[k]`` is ``(trap, signal, (update, value))`` for mystery
    trainer ``k``."""
    from ..debugging import check_bug_hunt as _check

    _check(answers)
