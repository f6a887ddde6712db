"""The machinery of the stage checks: the learner's own loops (rollout, update, training) against the reference.

A function check (:mod:`.harness`) calls a pure function on tensor cases. A loop has state (vector envs,
networks, optimisers, random generators), so a *stage* check builds the same situation twice from seeds,
once for the learner's function and once for the reference, runs both and compares what they produced
field by field: exactly where the result does not depend on the order of floating-point operations
(observations, actions, rewards, flags, masks), within a stated tolerance where it does (log-probs,
values, parameters after Adam steps). When a field differs, the check runs the known wrong versions of
the stage (:class:`StageMistake`) on the same case and names the one that reproduces the learner's field;
the message says what differs, where, and in which situation, never the fix in code.

Where the learner's function runs: a case's learner side is played by a *runner* (:data:`RUNNERS`) that builds
the case, calls the learner's function and returns plain data (tensors, arrays, numbers, strings, lists,
dicts), and the check compares that data with the reference's. In a notebook the runner runs in the notebook.
The grader runs the learner's code in a sandbox that lets only data out and has no ``pgcourse`` inside: a
stage whose arguments are tensors (``advantages_and_returns``) is graded as it is, the runner calling the
grader's handle on the learner's function with data; a stage that hands the learner live objects
(environments, networks, optimisers) is played inside the sandbox: the grader's handle has a
``play_case(spec)`` method, the stage describes its case as data (:data:`REMOTE_CASES`: envs' seed and
replayed actions, networks' weights, optimisers' settings, config fields, torch's generator state at each
call), :mod:`pgcourse.classroom.sandboxed.loops` builds and plays it there, and the stage turns what comes back into the
runner's data (:func:`remote_play`; a handle may instead offer ``play_stage(stage, case_index)``). Graded, the
end-to-end checks are reduced (one seed, a shorter budget, the returned weights evaluated by the checker).

The chapter modules (``ch01_loop``, ``ch04b_ppo_loop``) declare the references, the cases, the runners and
the mistakes; this module has what they share: the environments and networks the cases are built from, the
player, the loop every stage check runs (:func:`run_stage_check`) and the one every end-to-end check runs
(:func:`train_on_seeds`), the comparison of one field, the failure message, the random-state guard, the step
counter the end-to-end checks wrap around the learner's environments, and the evaluations that decide "solved".
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from ...rl.envs import AUTORESET_MODE, make_raw_vector_env
from ...rl.history import History
from ...rl.networks import CategoricalPolicy, ValueNet
from ...rl.run import Run
from .harness import LearnerCodeError, _call_learner, _differences, _fmt

# float32 results that went through different but correct operation orders agree to about this
FLOAT_TOLERANCE = (1e-5, 1e-6)  # (rtol, atol) for log-probs, values, advantages
PARAMETER_TOLERANCE = (1e-3, 1e-5)  # (rtol, atol) for parameters after a few Adam steps (honest variants: 4%
                                    # of it at most; the known wrong versions: 300 times it or more)


# --------------------------------------------------------------------------------------------------
# What a case is built from
# --------------------------------------------------------------------------------------------------

def cartpole_envs(num_envs: int, time_limit: int | None = None) -> gym.vector.SyncVectorEnv:
    """``num_envs`` CartPole-v1 in a ``SyncVectorEnv`` with NEXT_STEP autoreset, each with ``time_limit`` steps
    per episode (None: CartPole's 500). A short limit puts truncations inside a short rollout."""
    def make() -> gym.Env:
        return gym.make("CartPole-v1") if time_limit is None else gym.make("CartPole-v1", max_episode_steps=time_limit)
    return gym.vector.SyncVectorEnv([make for _ in range(num_envs)], autoreset_mode=AUTORESET_MODE)


def fixed_networks(seed: int, obs_dim: int = 4, n_actions: int = 2, hidden_sizes: tuple[int, ...] = (64, 64),
                   sharpness: float = 150.0) -> tuple[CategoricalPolicy, ValueNet]:
    """A policy and a critic with seeded weights. The policy's output layer is scaled by ``sharpness`` (its
    initial gain is 0.01, which makes it nearly uniform): log-probs then vary from state to state, as a
    trained policy's do, and a wrong log-prob cannot hide behind log(1/2)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = CategoricalPolicy(obs_dim, n_actions, hidden_sizes)
        value_net = ValueNet(obs_dim, hidden_sizes)
    with torch.no_grad():
        policy.net[-1].weight.mul_(sharpness)
    return policy, value_net


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Run a block with torch's global generator seeded with ``seed``, then put the caller's state back
    (a check never changes the random draws of the notebook around it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def before_the_loop_seeds(seed: int) -> int:
    """The seed torch's generator holds when a check calls a learner's training loop for a run seeded ``seed``: a
    fixed number (the check is reproducible) that is not ``seed`` itself, so a loop that builds its networks before
    its own ``torch.manual_seed(config.seed)`` gets other weights than the exercise's and is told so (with ``seed``
    it was accepted: the check had seeded for it)."""
    return seed + 7919


def copies(*modules: torch.nn.Module) -> list[torch.nn.Module]:
    return [copy.deepcopy(module) for module in modules]


def call_learner(fn: Callable[..., Any], name: str, args: list[Any], arg_names: list[str]) -> Any:
    """The learner's function on ``args``; a crash is reported as theirs, a stub as "not implemented yet"."""
    return _call_learner(fn, name, args, arg_names)


# --------------------------------------------------------------------------------------------------
# Running the learner's side of a case, here or where their functions live
# --------------------------------------------------------------------------------------------------

NOT_A_TENSOR = "not a tensor: "
RUNNERS: dict[str, Callable[[Callable[..., Any], int], Any]] = {}   # stage -> runner(fn, case index) -> data
_CHECKS_DIR = os.path.dirname(os.path.abspath(__file__))


def tensor_data(value: Any) -> Any:
    """A learner's value as data: a detached tensor copy, or ``"not a tensor: <type>"``."""
    if isinstance(value, str) and value.startswith(NOT_A_TENSOR):  # already said so where it was played
        return value
    if isinstance(value, Tensor):
        return value.detach().clone()
    tensor = as_tensor(value)
    return tensor if tensor is not None else NOT_A_TENSOR + type(value).__name__


def _is_stub(error: BaseException) -> bool:
    lines = str(error).strip().splitlines()
    return isinstance(error, NotImplementedError) or (
        type(error).__name__ == "StudentError" and bool(lines) and lines[-1].startswith("NotImplementedError"))


# stage -> (case index -> the case as data, (what playing it gave, case index) -> the runner's data): the stages
# whose learner side gets live objects, played where the learner's function lives by a handle with ``play_case``
REMOTE_CASES: dict[str, tuple[Callable[[int], dict[str, Any]], Callable[[dict[str, Any], int], Any]]] = {}


def is_remote(fn: Any) -> bool:
    """True for a handle on a function that lives elsewhere (the grader's): it plays cases, it is not called
    with live objects."""
    return callable(getattr(fn, "play_case", None)) or callable(getattr(fn, "play_stage", None))


def remote_play(stage: str, fn: Any, case_index: int) -> Any:
    """The learner's side of case ``case_index`` of ``stage``: with ``fn.play_stage(stage, case_index)`` when the
    handle offers it; with ``fn.play_case(spec)`` on the case described as data (:data:`REMOTE_CASES`, played by
    :mod:`pgcourse.classroom.sandboxed.loops`); a stage whose arguments are data calls the handle like a function."""
    play = getattr(fn, "play_stage", None)
    if callable(play):
        return play(stage, case_index)
    if stage in REMOTE_CASES and callable(getattr(fn, "play_case", None)):
        describe, adapt = REMOTE_CASES[stage]
        return adapt(fn.play_case(describe(case_index)), case_index)
    return RUNNERS[stage](fn, case_index)


def learner_crash(stage: str, error: BaseException) -> Exception:
    """What to raise for an exception of the learner's code: "not implemented yet" for a stub, else a
    :class:`LearnerCodeError` with their traceback (the check's frames left out)."""
    if _is_stub(error):
        return AssertionError(f"{stage}: not implemented yet. Replace `raise NotImplementedError()` with your "
                              f"code, then run the check again.")
    if type(error).__name__ == "StudentError":  # the grader's: the text is their traceback, from their process
        text = str(error)
    else:
        frames = [frame for frame in traceback.extract_tb(error.__traceback__)
                  if not os.path.abspath(frame.filename).startswith(_CHECKS_DIR)
                  and os.path.basename(frame.filename) != "contextlib.py"]
        text = "".join(traceback.format_list(frames) + traceback.format_exception_only(type(error), error))
    return LearnerCodeError(f"{stage}: your function raised an exception (this is a crash in your code, not a "
                            f"wrong answer). Your traceback:\n\n{text}")


def learner_data(stage: str, fn: Callable[..., Any], case_index: int) -> Any:
    """The data of the learner's side of one case: played where their function lives if its handle can
    (:func:`remote_play`, a grader's), else here. Their exception becomes a :class:`LearnerCodeError` with their
    traceback (the check's frames left out); a stub becomes "not implemented yet"."""
    try:
        if is_remote(fn):
            return remote_play(stage, fn, case_index)
        return RUNNERS[stage](fn, case_index)
    except Exception as error:  # noqa: BLE001 - a crash in their code is reported as theirs
        raise learner_crash(stage, error) from None


# --------------------------------------------------------------------------------------------------
# A case as data (for a handle that plays it where the learner's function lives)
# --------------------------------------------------------------------------------------------------

def torch_state(seed: int | None = None) -> Tensor:
    """The state of torch's global generator after ``manual_seed(seed)`` (now, if None)."""
    if seed is None:
        return torch.get_rng_state()
    with seeded_torch(seed):
        return torch.get_rng_state()


def network_spec(module: torch.nn.Module) -> dict[str, Any]:
    """A :class:`CategoricalPolicy` or :class:`ValueNet` as data: its class, sizes and weights."""
    linear = [layer for layer in module.net if isinstance(layer, torch.nn.Linear)]
    spec = {"class": type(module).__name__, "obs_dim": linear[0].in_features,
            "hidden_sizes": [layer.out_features for layer in linear[:-1]],
            "state": {key: value.detach().clone() for key, value in module.state_dict().items()}}
    if isinstance(module, CategoricalPolicy):
        spec["n_actions"] = linear[-1].out_features
    return spec


def config_spec(config: Any) -> dict[str, Any]:
    """A config's fields as data."""
    return {field_.name: getattr(config, field_.name) for field_ in dataclasses.fields(config)}


def call_spec(args: list[Any], seed: int | None = 0, state: Tensor | None = None,
              parameters: Sequence[str] = ()) -> dict[str, Any]:
    """One call of the learner's function in a case: ``args`` (``{"ref": name}`` for a live object of the case,
    ``{"rollout": fields}``, ``{"value": data}``), torch's generator state at the call, the networks whose
    parameters to report after it."""
    return {"args": args, "torch_state": state if state is not None else torch_state(seed),
            "parameters": list(parameters)}


def policy_from_state(data: Any, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int]) -> CategoricalPolicy:
    """The policy a learner's loop returned (as data, played elsewhere), rebuilt here to evaluate it; an
    AssertionError that says what to return when it is not a :class:`CategoricalPolicy`'s weights."""
    policy = CategoricalPolicy(obs_dim, n_actions, tuple(hidden_sizes))
    state = data.get("state") if isinstance(data, dict) and "module" in data else None
    try:
        policy.load_state_dict(state)
    except Exception:  # noqa: BLE001 - anything else is the learner's mistake, said in words
        what = data.get("module") if isinstance(data, dict) and "module" in data else (
            data[len(NOT_A_TENSOR):] if isinstance(data, str) and data.startswith(NOT_A_TENSOR) else type(data).__name__)
        raise AssertionError(f"return the policy you trained, a CategoricalPolicy(obs_dim, n_actions, "
                             f"config.hidden_sizes) as the exercise says; got a {what}.") from None
    return policy


# --------------------------------------------------------------------------------------------------
# The loop every fast stage check runs
# --------------------------------------------------------------------------------------------------

def run_stage_check(stage: str, fn: Callable[..., Any], count: int, reference: Callable[..., Any], *,
                    compare: Callable[[Any, Any, int], Mismatch | None], mistakes: Sequence[StageMistake],
                    mistake_data: Callable[[StageMistake, int], Any], situation: Callable[[int, Any], str],
                    concept: Callable[[Mismatch], str], note: Callable[[Mismatch], str] = lambda mismatch: "",
                    alternatives: Sequence[tuple[Callable[[int], Any], Callable[[StageMistake, int], Any]]] = (),
                    depth: Callable[[Mismatch], int] = lambda mismatch: 0,
                    confirm_on_every_case: bool = False) -> None:
    """Each of the ``count`` cases: the reference's data and the learner's, compared; at the first mismatch, the
    known mistake that reproduces the learner's data on that case is named and the check fails (AssertionError
    with :func:`failure_message`).

    ``alternatives``: other correct versions of the stage, each a pair (case index -> its data, computed only when
    the learner's data differs from the reference's; (mistake, case index) -> that mistake's data played by this
    version); data equal to one of them passes. Data equal to none is compared with the version it agrees with
    furthest (``depth`` of the mismatch: a larger depth is a later difference, e.g. the diagnostics after matching
    parameters), and the mistakes are replayed in that version: a learner who chose the sample std is told about
    their diagnostics, not that their parameters differ from the population std's.
    A mistake is named only when its replay also gives the learner's data on the cases run before the failing one
    (where its replay is defined): one that agrees with the failing case alone is not the learner's (issue 49).
    ``confirm_on_every_case`` (for cheap stages): the learner's function is also run on the later cases, and the
    mistake must reproduce those too (two mistakes can agree on one small case)."""
    seen: list[tuple[int, Any]] = []  # (case index, the learner's data) of the cases that passed
    for index in range(count):
        expected = RUNNERS[stage](reference, index)
        received = learner_data(stage, fn, index)
        mismatch = compare(expected, received, index)
        if mismatch is None:
            seen.append((index, received))
            continue
        versions = [(expected, mismatch, mistake_data)]
        for data, replay in alternatives:
            other = data(index)
            versions.append((other, compare(other, received, index), replay))
        if any(found is None for _, found, _ in versions):
            seen.append((index, received))
            continue
        # the deepest agreement first (the reference first on a tie); the first version in which a known mistake
        # reproduces the learner's data is the one the message speaks of
        ranked = sorted(versions, key=lambda version: -depth(version[1]))
        others = seen + ([(at, learner_data(stage, fn, at)) for at in range(index + 1, count)]
                         if confirm_on_every_case else [])
        told = None
        for expected_here, mismatch_here, replay in ranked:
            def reproduces(mistake: StageMistake, at: int = index, data: Any = received,
                           replay: Callable[[StageMistake, int], Any] = replay) -> bool:
                return compare(replay(mistake, at), data, at) is None

            def everywhere(mistake: StageMistake, reproduces: Callable[..., bool] = reproduces) -> bool:
                return reproduces(mistake) and _reproduces_all(reproduces, mistake, others)

            hint = mismatch_here.hint
            if hint is None:
                hint = diagnose(mistakes, mismatch_here, everywhere)
            if told is None or hint is not None:
                told = (expected_here, mismatch_here, hint)
            if hint is not None:
                break
        expected, mismatch, hint = told
        raise AssertionError(failure_message(stage, mismatch, hint, situation(index, expected), concept(mismatch),
                                             note(mismatch)))


def _reproduces_all(reproduces: Callable[..., bool], mistake: StageMistake, cases: list[tuple[int, Any]]) -> bool:
    """Whether ``mistake`` gives the learner's data on every (case index, data) of ``cases`` where it can be
    replayed (a replay that raises on a case says nothing about it)."""
    for at, data in cases:
        try:
            if not reproduces(mistake, at, data):
                return False
        except Exception:  # noqa: BLE001 - a mistake that cannot run on a case is not replayed there
            continue
    return True


def case_mistake(run_case: Callable[[Callable[..., Any]], Any], reference: Callable[..., Any],
                 to_data: Callable[[Any], Any], name: str) -> Any:
    """A case played by the reference with its known mistake ``name`` switched on, as data."""
    return to_data(run_case(lambda *args: reference(*args, mistake=name)))


# --------------------------------------------------------------------------------------------------
# Comparing one field
# --------------------------------------------------------------------------------------------------

@dataclass
class Mismatch:
    """One field of one case that differs from the reference."""

    field: str
    problem: str
    expected: Any = None
    received: Any = None
    details: str | None = None   # where the values differ, entry by entry
    hint: str | None = None      # the mistake, when the mismatch itself shows it (an input changed in place, a
                                 # result still attached to the graph): named as the probable mistake, and no
                                 # known wrong version is searched for


def as_tensor(value: Any) -> Tensor | None:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray | list | tuple):
        try:
            return torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError):
            return None
    return None


def compare(name: str, expected: Tensor, received: Any, *, exact: bool,
            tolerance: tuple[float, float] = FLOAT_TOLERANCE, where: Tensor | None = None,
            kind: str | None = None) -> Mismatch | None:
    """None if ``received`` equals ``expected`` (exactly, or within ``tolerance``) at the entries ``where``
    is True (all entries if None); else what differs. ``kind``: "float" or "bool" or "integer" demands that
    kind of dtype (the loops downstream compute with it)."""
    got = None if isinstance(received, str) else as_tensor(received)
    if got is None:
        what = received[len(NOT_A_TENSOR):] if isinstance(received, str) and received.startswith(NOT_A_TENSOR) \
            else type(received).__name__
        return Mismatch(name, f"`{name}` should be a tensor of shape {tuple(expected.shape)}, got a {what}.")
    if tuple(got.shape) != tuple(expected.shape):
        return Mismatch(name, f"`{name}` has shape {tuple(got.shape)}, expected {tuple(expected.shape)}.")
    if kind == "float" and not got.is_floating_point():
        return Mismatch(name, f"`{name}` has dtype {got.dtype}; it must be a float tensor (0.0 / 1.0 for "
                              f"flags), because the loss arithmetic multiplies and subtracts with it.")
    if kind == "bool" and got.dtype != torch.bool:
        return Mismatch(name, f"`{name}` has dtype {got.dtype}; it must be a bool tensor (it selects entries).")
    if kind == "integer" and (got.is_floating_point() or got.dtype == torch.bool):
        return Mismatch(name, f"`{name}` has dtype {got.dtype}; actions of a Discrete space are integers.")
    want, have = expected.detach().cpu().double(), got.detach().cpu().double()
    if where is not None:  # [T, N] mask of a [T, N, ...] field: compare the real transitions only
        mask = where.cpu().bool()
        mask = mask.reshape(*mask.shape, *[1] * (want.dim() - mask.dim())).expand_as(want)
        want, have = torch.where(mask, want, 0.0), torch.where(mask, have, 0.0)
    if exact:
        same = torch.equal(torch.nan_to_num(want, nan=1e300), torch.nan_to_num(have, nan=1e300))
        tolerance = (0.0, 0.0)
    else:
        same = torch.allclose(have, want, rtol=tolerance[0], atol=tolerance[1], equal_nan=True)
    if same:
        return None
    scope = " (compared on the real transitions, valid = True)" if where is not None else ""
    how = "are not equal to" if exact else "differ from"
    return Mismatch(name, f"your `{name}` {how} the reference's{scope}.", expected=want, received=have,
                    details=_differences(want, have, tolerance))


def requires_grad_problem(name: str, value: Any, why: str) -> Mismatch | None:
    if isinstance(value, Tensor) and value.requires_grad:
        return Mismatch(name, f"your `{name}` is connected to the autograd graph (it requires grad). {why}")
    return None


# --------------------------------------------------------------------------------------------------
# Known wrong versions of a stage, and the failure message
# --------------------------------------------------------------------------------------------------

@dataclass
class StageMistake:
    """A known wrong version of a stage: ``compute`` takes the case and returns the stage's result, computed
    the wrong way; the check compares it with the learner's on the failing field."""

    hint: str
    compute: Callable[..., Any]
    fields: tuple[str, ...] = ()   # the fields it changes (empty: any)


def diagnose(mistakes: Sequence[StageMistake], mismatch: Mismatch, reproduces: Callable[[StageMistake], bool]
             ) -> str | None:
    """The hint of the first mistake that changes ``mismatch.field`` and reproduces the learner's value there."""
    for mistake in mistakes:
        if mistake.fields and mismatch.field not in mistake.fields:
            continue
        try:
            if reproduces(mistake):
                return mistake.hint
        except Exception:  # noqa: BLE001 - a mistake that cannot run on this case does not match
            continue
    return None


def failure_message(name: str, mismatch: Mismatch, hint: str | None, case: str, concept: str,
                    note: str = "") -> str:
    lines = [f"{name}: {mismatch.problem}"]
    if hint:
        lines.append(f"Probable mistake: {hint}")
    elif concept:
        lines.append(f"No known mistake reproduces your `{mismatch.field}`. What it should hold: {concept}")
    lines.append(f"Failing case: {case}")
    if mismatch.expected is not None and mismatch.details is None:
        lines.append(f"  expected: {_fmt(mismatch.expected)}")
        lines.append(f"  received: {_fmt(mismatch.received)}")
    if mismatch.details:
        lines.append(mismatch.details)
    if note:
        lines.append(note)
    return "\n".join(lines)


STEP_NOTE = "([T, N] entries are written [t, n]: step t of the rollout, environment n.)"


# --------------------------------------------------------------------------------------------------
# End to end: count what the learner's loop does, evaluate what it learned
# --------------------------------------------------------------------------------------------------

class CountingEnvs(gym.vector.VectorWrapper):
    """The learner's vector env, counting what their loop does with it, as ``pg.train`` records it: ``steps``
    calls of ``step``, ``transitions`` real transitions, and every finished episode as (return, length,
    transitions when it was recorded). Changes nothing the loop sees.

    ``first_episode_only`` (REINFORCE, which plays one episode per env from each ``reset``): only each env's
    first episode since the last reset counts, and a batch's episodes are recorded at the next reset (or
    :meth:`flush`) in env order, their transitions added one episode at a time. Otherwise (A2C, PPO) every
    step counts but NEXT_STEP reset steps, and an episode is recorded on the step it ends."""

    def __init__(self, env: gym.vector.VectorEnv, first_episode_only: bool = False):
        super().__init__(env)
        self.first_episode_only = first_episode_only
        self.steps = 0
        self.transitions = 0
        self.transitions_at_step: list[int] = []
        self.episodes: list[tuple[float, int, int]] = []
        self._resetting = np.zeros(self.num_envs, dtype=bool)
        self._returns = np.zeros(self.num_envs)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)
        self._finished: dict[int, tuple[float, int]] = {}   # first_episode_only: env -> its episode of this batch

    def flush(self) -> None:
        """Record the batch's finished first episodes (``first_episode_only``), in env order."""
        for index in sorted(self._finished):
            episode_return, length = self._finished[index]
            self.transitions += length
            self.episodes.append((episode_return, length, self.transitions))
        self._finished = {}

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        self.flush()
        self._resetting[:] = False
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, actions):
        valid = ~self._resetting
        if self.first_episode_only:
            valid &= ~np.isin(np.arange(self.num_envs), list(self._finished))
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        ended = (np.asarray(terminated) | np.asarray(truncated)) & valid
        self.steps += 1
        if not self.first_episode_only:
            self.transitions += int(valid.sum())
        self._returns += np.where(valid, rewards, 0.0)
        self._lengths += valid
        for i in np.flatnonzero(ended):
            if self.first_episode_only:
                self._finished[int(i)] = (float(self._returns[i]), int(self._lengths[i]))
            else:
                self.episodes.append((float(self._returns[i]), int(self._lengths[i]), self.transitions))
            self._returns[i], self._lengths[i] = 0.0, 0
        self._resetting = np.asarray(terminated) | np.asarray(truncated)
        self.transitions_at_step.append(self.transitions)
        return obs, rewards, terminated, truncated, infos


def greedy_returns(policy: torch.nn.Module, env_id: str, episodes: int = 20, seed: int = 10_000) -> np.ndarray:
    """Returns of ``episodes`` greedy episodes (the most likely action of ``policy(obs)``'s logits), episode
    ``i`` from ``reset(seed=seed + i)``: the episodes ``pg.evaluate`` plays for a run with this policy."""
    envs = make_raw_vector_env(env_id, episodes, vectorization="auto")
    try:
        obs, _ = envs.reset(seed=seed)
        totals, finished = np.zeros(episodes), np.zeros(episodes, dtype=bool)
        while not finished.all():
            with torch.no_grad():
                actions = policy(torch.as_tensor(obs, dtype=torch.float32)).argmax(dim=-1)
            obs, rewards, terminated, truncated, _ = envs.step(actions.cpu().numpy())
            totals += np.where(finished, 0.0, rewards)
            finished |= np.asarray(terminated) | np.asarray(truncated)
        return totals
    finally:
        envs.close()


def sampled_returns(policy: torch.nn.Module, env_id: str, episodes: int = 20, seed: int = 10_000) -> np.ndarray:
    """Returns of ``episodes`` episodes of ``policy`` acting as it trains, its actions sampled from its logits
    (torch's generator seeded with ``seed``, the caller's state restored), episode ``i`` from
    ``reset(seed=seed + i)``. Unlike the greedy return, it does not reward a lucky untrained network (the argmax
    of a near-uniform policy balances CartPole for 9 to 500 steps, depending on its initial weights; sampled, an
    untrained policy scores about 22 whatever its weights)."""
    envs = make_raw_vector_env(env_id, episodes, vectorization="auto")
    try:
        obs, _ = envs.reset(seed=seed)
        totals, finished = np.zeros(episodes), np.zeros(episodes, dtype=bool)
        with seeded_torch(seed):
            while not finished.all():
                with torch.no_grad():
                    logits = policy(torch.as_tensor(obs, dtype=torch.float32))
                    actions = torch.distributions.Categorical(logits=logits).sample()
                obs, rewards, terminated, truncated, _ = envs.step(actions.cpu().numpy())
                totals += np.where(finished, 0.0, rewards)
                finished |= np.asarray(terminated) | np.asarray(truncated)
        return totals
    finally:
        envs.close()


@dataclass
class SeedResult:
    """What one seed of an end-to-end check measured."""

    seed: int
    eval_mean: float
    eval_returns: np.ndarray
    transitions: int
    updates: int
    seconds: float
    run: Any = None                     # a pgcourse Run wrapping the learner's networks, for plots and GIFs
    problems: list[str] = field(default_factory=list)
    learned: bool = True                # its return reached the check's threshold (a problem may still be its glue)

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class LoopReport:
    """The result of an end-to-end check: one :class:`SeedResult` per seed (``report.runs`` for plotting)."""

    name: str
    results: list[SeedResult]

    @property
    def runs(self) -> list[Any]:
        return [result.run for result in self.results]

    def __repr__(self) -> str:
        rows = ", ".join(f"seed {r.seed}: {r.eval_mean:.1f}" for r in self.results)
        return f"LoopReport({self.name}: {rows})"


def train_on_seeds(stage: str, seeds: Sequence[int], header: str, train_one: Callable[[int], SeedResult],
                   line: Callable[[SeedResult], str], failure: Callable[[list[SeedResult], SeedResult], str],
                   success: str) -> LoopReport:
    """The end-to-end checks' loop: print ``header``, train on each seed (``train_one``), print its line, stop with
    ``failure`` at the first seed that fails, else print ``success``."""
    print(header)
    results: list[SeedResult] = []
    for seed in seeds:
        result = train_one(seed)
        results.append(result)
        print(line(result) + ("" if result.passed else "  <- failed"))
        if not result.passed:
            raise AssertionError(failure(results, result))
    if success:  # an empty success: the caller has more to check before it says so
        print(success)
    return LoopReport(stage, results)


def play_loop(stage: str, fn: Any, config: Any, envs: dict[str, Any], **spec: Any) -> tuple[dict[str, Any], float]:
    """The learner's training loop ``fn(envs, config)`` played where it lives (a grader's handle), on fresh
    CartPole envs (``envs``: the spec's settings beside the defaults, e.g. ``counting``, ``time_limit``; ``spec``:
    what else to record, e.g. ``glue=True``); (the outcome, seconds)."""
    spec = {"envs": {"num_envs": config.num_envs, "time_limit": None, "fast": True, **envs},
            "config": config_spec(config), "config_name": type(config).__name__, **spec,
            "calls": [call_spec([{"ref": "envs"}, {"ref": "config"}], seed=before_the_loop_seeds(config.seed))]}
    with Timer() as timer:
        try:
            outcome = fn.play_case(spec)
        except Exception as error:  # noqa: BLE001 - a crash in their code is reported as theirs
            raise learner_crash(stage, error) from None
    return outcome, timer.seconds


def play_training(stage: str, fn: Any, config: Any, first_episode_only: bool) -> tuple[Any, dict[str, Any], float]:
    """:func:`play_loop` counting the transitions (of each env's first episode only, or all): (what the loop
    returned, as data; the counts; seconds)."""
    outcome, seconds = play_loop(stage, fn, config, {"counting": "first_episode_only" if first_episode_only else "all"})
    return outcome["calls"][0]["result"], outcome.get("counts") or {}, seconds


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def learner_run(policy, value_net, config, envs: CountingEnvs, updates: list[dict[str, Any]],
                steps_per_update: int) -> Run:
    """A :class:`Run` holding the learner's networks, the episodes their loop played (counted by ``envs``) and
    their update diagnostics, so that ``pg.plotting``, ``pg.rollout_gif`` and ``pg.evaluate`` work on it."""
    history = History()
    for episode_return, length, transitions in envs.episodes:
        history.episodes.append(**{"return": episode_return, "length": length, "env_step": transitions,
                                   "wall_time": float("nan")})
    for index, entry in enumerate(updates):
        step = min((index + 1) * steps_per_update, len(envs.transitions_at_step)) - 1
        row = {name: float(entry[name]) for name in ("approx_kl", "clip_fraction", "explained_variance",
                                                      "policy_loss", "value_loss", "entropy") if name in entry}
        history.updates.append(env_step=envs.transitions_at_step[step] if step >= 0 else 0, **row)
    history.status = "completed"
    return Run(config, policy, value_net, history, envs.single_observation_space, envs.single_action_space)
