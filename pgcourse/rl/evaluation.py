"""Evaluate a run: mean return over fixed, seeded episodes (the benchmark's definition of "solved").

Two ways to play the policy (``mode``): ``"greedy"`` takes the most likely action (the argmax of the
logits; the Gaussian's mean), ``"sample"`` draws each action from :math:`\\pi`, as training does. They
usually agree once a policy has learned; early in training, or where one fixed action loops forever
(Acrobot: the same action in every state never swings the pendulum up), the greedy policy can score the
worst return while the policy it comes from already solves the task. A run evaluates in its
``config.eval_mode`` unless told otherwise; :func:`compare_modes` plays both and says whether they
disagree sharply (:func:`modes_disagree`).
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch

from .config import EVAL_MODES, check_env_kwargs, check_eval_mode
from .envs import describe_env, make_raw_vector_env, max_episode_steps
from .run import Run, as_run, spaces_match


class EvalResult(NamedTuple):
    """``mean, std, returns = pg.evaluate(...)``; ``returns[i]`` is the episode seeded ``seed + i``."""

    mean: float
    std: float
    returns: np.ndarray


def resolve_mode(run: Run, mode: str | None = None, deterministic: bool | None = None) -> str:
    """The evaluation mode to use: ``mode`` if given, else ``deterministic`` (True: ``"greedy"``, False:
    ``"sample"``) if given, else the run's ``config.eval_mode``."""
    if mode is not None:
        mode = check_eval_mode(mode, "mode")
        if deterministic is not None and deterministic != (mode == "greedy"):
            raise ValueError(f"mode={mode!r} and deterministic={deterministic!r} contradict each other: "
                             "give mode only ('greedy' or 'sample')")
        return mode
    if deterministic is not None:
        if not isinstance(deterministic, bool):
            raise ValueError(f"deterministic={deterministic!r} is invalid: expected True (greedy), False (sample) "
                             "or None (the run's eval_mode)")
        return "greedy" if deterministic else "sample"
    return getattr(run.config, "eval_mode", "greedy")


def resolve_env(run: Run, env_id: str | None = None,
                env_kwargs: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """``(env_id, env_kwargs)`` to play ``run`` on: by default the environment it was trained on, with its
    ``config.env_kwargs``; another ``env_id`` gets no keyword arguments unless ``env_kwargs`` is given."""
    trained_on = run.config.env_id
    env_id = env_id or trained_on
    if env_kwargs is None:
        env_kwargs = run.config.env_kwargs if env_id == trained_on else {}
    return env_id, check_env_kwargs(env_kwargs)


def _short(space: gym.Space) -> str:
    return f"Box(shape={space.shape})" if isinstance(space, gym.spaces.Box) else str(space)


def check_playable(run: Run, env_id: str, env_kwargs: Mapping[str, Any], observation_space: gym.Space,
                   action_space: gym.Space) -> None:
    """Raise ``ValueError`` ("the environments differ: ...") unless ``env_id`` made with ``env_kwargs`` has the
    spaces ``run`` was trained on; the message names both environments with their keyword arguments."""
    if spaces_match(observation_space, run.observation_space) and spaces_match(action_space, run.action_space):
        return
    here = describe_env(env_id, env_kwargs)
    trained = describe_env(run.config.env_id, run.config.env_kwargs)
    leave_out = "leave the env and env_kwargs out" if run.config.env_kwargs or env_kwargs else "leave the env out"
    raise ValueError(
        f"the environments differ: {here} has observation space {_short(observation_space)} and action space "
        f"{_short(action_space)}, but this run was trained on {trained}, whose observation space is "
        f"{_short(run.observation_space)} and action space {_short(run.action_space)}; play it on "
        f"{trained} ({leave_out}), or train a run on {here}")


@contextmanager
def seeded_sampling(device: torch.device, seed: int) -> Iterator[None]:
    """Draw from torch's generator of ``device`` seeded with ``seed``, and put the generator's state back
    afterwards: sampled evaluations repeat for a seed, and evaluating during training leaves the training's
    own random draws (and so the run) exactly as they would be without it."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        with torch.random.fork_rng(devices=[index], device_type="cuda"):
            torch.default_generator.manual_seed(seed)
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
            yield
    elif device.type == "mps":
        with torch.random.fork_rng(devices=[0], device_type="mps"):
            torch.default_generator.manual_seed(seed)
            torch.mps.manual_seed(seed)
            yield
    else:
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            yield


def evaluate(run: Run | str | os.PathLike, env_id: str | None = None, episodes: int = 20, seed: int = 10_000,
             deterministic: bool | None = None, max_parallel: int = 32, vectorization: str = "auto", *,
             mode: str | None = None, env_kwargs: Mapping[str, Any] | None = None) -> EvalResult:
    """Play ``episodes`` episodes with ``run.act`` and return their raw (unscaled) returns.

    Episode ``i`` starts from ``env.reset(seed=seed + i)``, so the same call always plays the
    same starting states (and, with ``mode="sample"``, the same draws). Episodes run in parallel in a
    vector env, each env counting only its first episode. Observation normalisation uses the run's saved
    statistics (frozen).

    Args:
        run: a trained :class:`~pgcourse.rl.run.Run`, or the folder of a saved one (``"runs/ppo-cartpole"``).
        env_id: environment to play (defaults to the one it was trained on); spaces must match.
        episodes: number of evaluation episodes.
        seed: seed of the first episode.
        deterministic: the older way to choose the mode: True is ``mode="greedy"``, False ``mode="sample"``.
        max_parallel: at most this many episodes at once (one batched forward per step for all of them).
        vectorization: ``"auto"`` (CartPole on gymnasium's numpy-vectorised env; the same episodes) or
            ``"sync"`` (a ``SyncVectorEnv``); see :func:`pgcourse.rl.envs.make_raw_vector_env`.
        mode: ``"greedy"``, the most likely action (argmax of the logits; the Gaussian's mean), or
            ``"sample"``, actions drawn from the policy (torch's generator seeded with ``seed`` for the
            call, then restored, so sampling repeats and disturbs nothing). None: the run's
            ``config.eval_mode`` (what its evaluations during training used; see
            :data:`pgcourse.rl.config.EVAL_MODE_DEFAULTS`). :func:`compare_modes` plays both.
        env_kwargs: keyword arguments for ``gym.make``; None: the run's ``config.env_kwargs`` when playing
            the environment it was trained on, none for another ``env_id``.

    Runs with the run's ``config.torch_threads`` (1 by default, as training does), then restores the
    process's thread count.
    """
    run = as_run(run)
    mode = resolve_mode(run, mode, deterministic)
    env_id, env_kwargs = resolve_env(run, env_id, env_kwargs)
    if not isinstance(episodes, int) or isinstance(episodes, bool) or episodes < 1:
        raise ValueError(f"episodes={episodes!r} is invalid: expected an integer >= 1")
    returns: list[float] = []
    threads_before = torch.get_num_threads()
    if run.config.torch_threads is not None:  # as in training: small networks run fastest on one thread
        torch.set_num_threads(run.config.torch_threads)
    try:
        while len(returns) < episodes:
            batch = min(max_parallel, episodes - len(returns))
            returns.extend(_play_first_episodes(run, env_id, batch, seed + len(returns), mode, vectorization,
                                                env_kwargs))
    finally:
        torch.set_num_threads(threads_before)
    returns_array = np.asarray(returns, dtype=np.float64)
    return EvalResult(float(returns_array.mean()), float(returns_array.std()), returns_array)


def _play_first_episodes(run: Run, env_id: str, num_envs: int, seed: int, mode: str, vectorization: str = "auto",
                         env_kwargs: Mapping[str, Any] | None = None) -> list[float]:
    envs = make_raw_vector_env(env_id, num_envs, vectorization=vectorization, env_kwargs=env_kwargs)
    try:
        check_playable(run, env_id, env_kwargs or {}, envs.single_observation_space, envs.single_action_space)
        if mode == "greedy":
            return _play(run, envs, env_id, num_envs, seed, deterministic=True)
        with seeded_sampling(run.device, seed):
            return _play(run, envs, env_id, num_envs, seed, deterministic=False)
    finally:
        envs.close()


def _play(run: Run, envs: gym.vector.VectorEnv, env_id: str, num_envs: int, seed: int,
          deterministic: bool) -> list[float]:
    max_steps = max_episode_steps(envs) or 100_000
    obs, _ = envs.reset(seed=seed)  # env i gets seed + i
    episode_returns = np.zeros(num_envs)  # [N]
    finished = np.zeros(num_envs, dtype=bool)  # [N]
    for _ in range(max_steps + 1):
        actions = run.act(obs, deterministic=deterministic)
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        episode_returns += np.where(finished, 0.0, rewards)
        finished |= np.asarray(terminated) | np.asarray(truncated)
        if finished.all():
            return episode_returns.tolist()
    raise RuntimeError(f"{env_id}: episodes did not end within {max_steps} steps")


# -- greedy against sampled --------------------------------------------------------------------------
RANGE_FRACTION = 0.1


def modes_disagree(greedy: EvalResult, sample: EvalResult, range_fraction: float = RANGE_FRACTION) -> bool:
    """True when two evaluations (of the same episodes) disagree *sharply*: their means differ by more than
    each one's standard deviation, and by more than ``range_fraction`` (10%) of the range of all their
    returns together. Noise between two similar policies stays below the stds; a greedy policy stuck at the
    worst return while sampling nearly solves the task (Acrobot, PPO seed 5 trained 20k steps: -500 ± 0 against
    -105.4 ± 33.9) is far above both."""
    gap = abs(greedy.mean - sample.mean)
    every_return = np.concatenate([np.asarray(greedy.returns, float), np.asarray(sample.returns, float)])
    spread = float(every_return.max() - every_return.min()) if every_return.size else 0.0
    return gap > greedy.std and gap > sample.std and gap > range_fraction * spread


def disagreement_note(greedy: EvalResult, sample: EvalResult) -> str:
    """One line on why the greedy and the sampled policy score so differently (for :func:`modes_disagree`)."""
    if greedy.mean < sample.mean:
        return ("the greedy policy scores worse than sampling from it: always taking its most likely action, it can "
                "loop through the same states forever (on Acrobot, one action in every state never swings up) where "
                "sampled actions escape; judge this run by mode 'sample', or train on until its most likely action "
                "is good on its own")
    return ("sampling scores worse than the greedy policy: the policy still gives poor actions much probability "
            "(high entropy, or a wide Gaussian) and the draws hurt; the greedy policy shows what it has learned")


class ModeComparison(NamedTuple):
    """Both evaluations of one run on the same episodes (:func:`compare_modes`)."""

    greedy: EvalResult
    sample: EvalResult

    @property
    def disagree(self) -> bool:
        return modes_disagree(self.greedy, self.sample)

    @property
    def note(self) -> str:
        """Why they differ (:func:`disagreement_note`); empty when they do not disagree sharply."""
        return disagreement_note(self.greedy, self.sample) if self.disagree else ""


def compare_modes(run: Run | str | os.PathLike, env_id: str | None = None, episodes: int = 20, seed: int = 10_000,
                  *, env_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> ModeComparison:
    """Evaluate ``run`` greedily and by sampling on the same seeded episodes (see :func:`evaluate`);
    ``.disagree`` says whether the two disagree sharply (:func:`modes_disagree`), ``.note`` why."""
    run = as_run(run)
    results = {mode: evaluate(run, env_id, episodes, seed, mode=mode, env_kwargs=env_kwargs, **kwargs)
               for mode in EVAL_MODES}
    return ModeComparison(results["greedy"], results["sample"])
