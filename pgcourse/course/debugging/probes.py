"""Probe environments: the simplest environments with a known exact answer, to validate a learner piece by piece.

A policy-gradient bug rarely crashes, and on CartPole it can hide for thousands of steps. Each probe below is
a gymnasium environment of one or two steps (or a constant stream) whose correct value function and best
policy are known in closed form, so a few thousand env steps of training either reach the answer or show
which part of the learner is broken (after Andy Jones, "Debugging RL, without the agonizing pain"):

======================  ==========================================  ======================================
probe (id)              what it is                                   the exact answer (discount gamma)
======================  ==========================================  ======================================
``ProbeConstant``       one step, observation 0, reward +1           :math:`V(s) = 1`
``ProbeObservation``    one step, observation :math:`o = \\pm 1`,     :math:`V(o) = o`
                        reward :math:`o`
``ProbeDelayed``        two steps (observations -1 then +1),         :math:`V(-1) = \\gamma`, :math:`V(+1) = 1`
                        reward 0 then +1
``ProbeAction``         one step, observation 0, reward +1 for       :math:`\\pi(1) \\to 1`, :math:`V \\to 1`
                        action 1 and -1 for action 0
``ProbeActionObs``      one step, observation :math:`o = \\pm 1`,     :math:`\\pi(\\text{match} \\mid o) \\to 1`,
                        reward +1 if the action matches :math:`o`     :math:`V \\to 1`
                        (action 1 for +1, action 0 for -1), else -1
``ProbeTimeLimit``      observation 0, reward +1 every step, never   :math:`V(s) = 1/(1-\\gamma)`
                        terminates, truncated after 10 steps
======================  ==========================================  ======================================

A broken value loss fails the first three, a broken policy loss the action probes, a bootstrap that stops at a
time limit (``truncation_as_termination``) the last. Every environment is registered by module entry point
(no lambdas), so runs on them pickle, save, resume and run in :func:`pgcourse.sweep`'s worker processes: train
with the id ``"pgcourse.course.debugging.probes:ProbeConstant-v0"`` (gymnasium imports this module first), or import the module
and use ``"ProbeConstant-v0"``.

:func:`check_probe` reads a trained run's critic and policy on the probe's observations and compares them with
the answer; :func:`run_probes` trains a tiny agent on every probe and returns one row per (probe, seed).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

TIME_LIMIT = 10  # ProbeTimeLimit's truncation horizon
MODULE = "pgcourse.course.debugging.probes"


class _Probe(gym.Env):
    """A probe: observation ``Box(-1, 1, (1,))``, two discrete actions, a one- or two-step episode."""

    metadata = {"render_modes": []}

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self._obs = 0.0
        self._t = 0

    def _observe(self) -> np.ndarray:
        return np.array([self._obs], dtype=np.float32)

    def _first_observation(self) -> float:
        return 0.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        self._obs = self._first_observation()
        return self._observe(), {}

    def _random_sign(self) -> float:
        return float(self.np_random.choice([-1.0, 1.0]))


class ConstantRewardEnv(_Probe):
    """One step, observation 0, reward +1, then terminated: :math:`V(0) = 1`. Tests the value loss alone."""

    def step(self, action):
        return self._observe(), 1.0, True, False, {}


class ObservationRewardEnv(_Probe):
    """One step, observation :math:`o \\in \\{-1, +1\\}` at random, reward :math:`o`: :math:`V(o) = o`.
    Tests that the critic reads its input (and that observations reach it unshuffled)."""

    def _first_observation(self) -> float:
        return self._random_sign()

    def step(self, action):
        return self._observe(), float(self._obs), True, False, {}


class DelayedRewardEnv(_Probe):
    """Two steps: observation -1 with reward 0, then observation +1 with reward +1, then terminated.
    :math:`V(-1) = \\gamma`, :math:`V(+1) = 1`. Tests discounting and bootstrapping across a step."""

    def _first_observation(self) -> float:
        return -1.0

    def step(self, action):
        self._t += 1
        if self._t == 1:
            self._obs = 1.0
            return self._observe(), 0.0, False, False, {}
        return self._observe(), 1.0, True, False, {}


class ActionRewardEnv(_Probe):
    """One step, observation 0, reward +1 for action 1 and -1 for action 0: the best policy takes action 1
    (:math:`\\pi(1) \\to 1`, :math:`V \\to 1`). Tests the sign and the wiring of the policy loss."""

    def step(self, action):
        return self._observe(), 1.0 if int(action) == 1 else -1.0, True, False, {}


class ActionObservationRewardEnv(_Probe):
    """One step, observation :math:`o = \\pm 1` at random, reward +1 when the action matches it (action 1 for
    +1, action 0 for -1), else -1: :math:`\\pi(\\text{match} \\mid o) \\to 1`, :math:`V \\to 1`. Tests the policy
    and the critic together (the advantage must depend on the state)."""

    def _first_observation(self) -> float:
        return self._random_sign()

    def step(self, action):
        match = (int(action) == 1) == (self._obs > 0)
        return self._observe(), 1.0 if match else -1.0, True, False, {}


class ConstantStreamEnv(_Probe):
    """Observation 0 and reward +1 on every step, never terminated; registered with a time limit of
    :data:`TIME_LIMIT` steps, so every episode is *truncated*. The bootstrapped value is the same at every
    step, :math:`V = \\sum_k \\gamma^k = 1/(1-\\gamma)`. A learner that treats the time limit as a terminal
    state regresses on :math:`(1-\\gamma^{T-t})/(1-\\gamma)`, which depends on a time it cannot see, and lands
    far below."""

    def step(self, action):
        return self._observe(), 1.0, False, False, {}


@dataclass(frozen=True)
class Probe:
    """One probe: its gymnasium id, what it tests, the observations to read and the answer at each.

    ``values(gamma)`` gives :math:`V` at each of ``observations``; ``best_actions`` the action the best
    policy takes there (``None``: the reward does not depend on the action).
    """

    name: str
    env_id: str
    tests: str
    observations: tuple[float, ...]
    value_answers: tuple[str, ...]  # per observation: "1", "gamma", "obs", "stream"
    best_actions: tuple[int, ...] | None = None

    def values(self, gamma: float) -> np.ndarray:
        exact = {"1": lambda o: 1.0, "gamma": lambda o: gamma, "obs": lambda o: o,
                 "stream": lambda o: 1.0 / (1.0 - gamma)}
        return np.array([exact[kind](o) for kind, o in zip(self.value_answers, self.observations)])

    @property
    def full_id(self) -> str:
        """The id that works in any process (gymnasium imports this module first)."""
        return f"{MODULE}:{self.env_id}"


PROBES: dict[str, Probe] = {
    "constant": Probe("constant", "ProbeConstant-v0", "the value loss", (0.0,), ("1",)),
    "observation": Probe("observation", "ProbeObservation-v0", "the critic reads its input", (-1.0, 1.0),
                         ("obs", "obs")),
    "delayed": Probe("delayed", "ProbeDelayed-v0", "discounting and bootstrapping", (-1.0, 1.0), ("gamma", "1")),
    "action": Probe("action", "ProbeAction-v0", "the policy loss", (0.0,), ("1",), best_actions=(1,)),
    "action_obs": Probe("action_obs", "ProbeActionObs-v0", "policy and critic together", (-1.0, 1.0),
                        ("1", "1"), best_actions=(0, 1)),
    "time_limit": Probe("time_limit", "ProbeTimeLimit-v0", "bootstrapping through a time limit", (0.0,),
                        ("stream",)),
}

_ENTRY_POINTS = {"ProbeConstant-v0": "ConstantRewardEnv", "ProbeObservation-v0": "ObservationRewardEnv",
                 "ProbeDelayed-v0": "DelayedRewardEnv", "ProbeAction-v0": "ActionRewardEnv",
                 "ProbeActionObs-v0": "ActionObservationRewardEnv", "ProbeTimeLimit-v0": "ConstantStreamEnv"}


def register() -> None:
    """Register the probes with gymnasium (by ``module:Class`` entry point; done on import, idempotent)."""
    for env_id, cls in _ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=f"{MODULE}:{cls}",
                         max_episode_steps=TIME_LIMIT if env_id == "ProbeTimeLimit-v0" else None)


register()

# A value counts as right within this fraction of the answer's size (at least VALUE_TOLERANCE_ABS),
# a policy when it takes the best action with at least this probability.
VALUE_TOLERANCE = 0.1
VALUE_TOLERANCE_ABS = 0.1
POLICY_THRESHOLD = 0.9


def check_probe(run, probe: Probe | str) -> dict[str, Any]:
    """Read ``run``'s critic (and policy, for the action probes) at the probe's observations.

    Returns a dict: ``values`` (the critic's :math:`V`), ``answers`` (the exact :math:`V` for the run's
    gamma), ``value_error`` (the largest :math:`|V - V^*|`), ``value_ok`` (every value within
    ``max(VALUE_TOLERANCE * |V*|, VALUE_TOLERANCE_ABS)``), ``best_action_prob`` (the smallest probability of
    the best action, ``nan`` where the reward ignores the action), ``policy_ok`` and ``passed`` (both).
    """
    probe = PROBES[probe] if isinstance(probe, str) else probe
    obs = torch.tensor(probe.observations, dtype=torch.float32).unsqueeze(-1)  # [K, 1]
    answers = probe.values(float(run.config.gamma))
    with torch.no_grad():
        values = (run.value_net(obs.to(run.device)).cpu().numpy().astype(float)
                  if run.value_net is not None else np.full(len(answers), np.nan))
        probs = torch.softmax(run.policy(obs.to(run.device)), dim=-1).cpu().numpy()  # [K, 2]
    errors = np.abs(values - answers)
    value_ok = bool(np.all(errors <= np.maximum(VALUE_TOLERANCE * np.abs(answers), VALUE_TOLERANCE_ABS)))
    best = float("nan")
    policy_ok = True
    if probe.best_actions is not None:
        best = float(min(probs[i, a] for i, a in enumerate(probe.best_actions)))
        policy_ok = best >= POLICY_THRESHOLD
    return {"probe": probe.name, "values": values.tolist(), "answers": answers.tolist(),
            "value_error": float(errors.max()), "value_ok": value_ok, "best_action_prob": best,
            "policy_ok": policy_ok, "passed": value_ok and policy_ok}


# The probes' discount: with gamma = 0.8 the time-limit probe's answer is 1/(1-gamma) = 5, reached by
# bootstrapping in a few updates, while a learner that stops at the time limit regresses on the mean of
# (1-gamma^(10-t))/(1-gamma) over t = 0..9, about 3.2.
PROBE_GAMMA = 0.8
# Env steps per probe and algorithm: enough for the course's default PPO and A2C to reach every answer
# (lesson 06 measures it over ten seeds), a few seconds each. A2C takes one gradient step per 128 env steps.
# TRPO takes one policy step per rollout of 8 envs x 256 steps (~1,024 transitions on the one-step probes, the
# others being autoreset steps), each at most max_kl = 0.01 of KL: the action probes need ~12 updates
# (at 8,192 steps every seed failed them, at 12,288 they passed by a 0.03 value margin), so 16,384 steps,
# 16 updates: measured on seeds 0-29, every probe passed, every value within 0.05 of the answer, P(best) >= 0.99.
# On ProbeConstant (and in a batch where a converged policy always took the rewarded action) every advantage is
# equal, the policy gradient zero, and TRPO takes no policy step (pgcourse.rl.algorithms.trpo): only the critic learns.
PROBE_STEPS = {"ppo": 2048, "a2c": 8192, "reinforce_baseline": 8192, "reinforce": 8192, "trpo": 16384}


def run_probes(algo: str = "ppo", traps: Sequence[str] = (), seeds: Iterable[int] = (0,),
               probes: Iterable[str] | None = None, total_steps: int | None = None, **overrides: Any
               ) -> list[dict[str, Any]]:
    """Train ``algo`` (course defaults with ``gamma = PROBE_GAMMA``, ``traps`` planted, ``overrides``
    applied) for ``total_steps`` env steps (``None``: :data:`PROBE_STEPS`) on each probe and seed.

    Returns one row per (probe, seed): :func:`check_probe`'s dict plus ``algo``, ``traps``, ``seed`` and
    ``seconds`` (training time)."""
    from ...rl.api import train

    steps = PROBE_STEPS[algo] if total_steps is None else total_steps
    overrides = {"gamma": PROBE_GAMMA, **overrides}
    names = list(PROBES) if probes is None else list(probes)
    unknown = [name for name in names if name not in PROBES]
    if unknown:
        raise ValueError(f"probes: unknown probe(s) {unknown}; known probes: {list(PROBES)}")
    rows = []
    for name in names:
        probe = PROBES[name]
        for seed in seeds:
            run = train(algo, probe.full_id, seed=seed, total_steps=steps, device="cpu", progress=False,
                        traps=tuple(traps), **overrides)
            row = check_probe(run, probe)
            row.update(algo=algo, traps=list(traps), seed=int(seed), total_steps=steps,
                       seconds=float(run.history.updates["wall_time"][-1]))
            rows.append(row)
    return rows


def assert_probes_pass(algo: str = "ppo", seeds: Iterable[int] = (0,), **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`run_probes` and raise ``AssertionError`` naming every probe whose answer was not reached."""
    rows = run_probes(algo, seeds=seeds, **kwargs)
    failed = [f"{r['probe']} (seed {r['seed']}): V={np.round(r['values'], 3).tolist()} against "
              f"{np.round(r['answers'], 3).tolist()}, P(best action)={r['best_action_prob']:.3f}"
              for r in rows if not r["passed"]]
    if failed:
        raise AssertionError(f"{algo} did not reach the probes' answers: " + "; ".join(failed))
    return rows
