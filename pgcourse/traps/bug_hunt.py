"""The bug hunt of lesson 06: six mystery trainers, each the course's PPO or A2C with one hidden planted bug,
and the checks of the learner's answers.

The mystery trainers are saved runs shipped with the package (``mysteries/<k>/``, folders written by
:meth:`~pgcourse.run.Run.save`). Their config keeps every hyperparameter (a trap's presets would show as
any setting would), but not the trap's name: ``mystery_run(k).config.traps == ()``, and nothing in a saved
run, in this package's code or in its messages names an answer, in plain text or as a hash
(``tests/test_bug_hunt.py`` checks the files, ``repr`` and every attribute of the loaded runs).

The check compares behaviour. For trainer ``k`` it trains the course's algorithm with the trap the learner
names, from the mystery's saved config (same algorithm, environment, seed and settings, on CPU), for the
first :data:`CHECKED_UPDATES` updates, and compares their diagnostics (:data:`COMPARED`) with the mystery's.
Training on CPU is deterministic, so the right trap gives the same numbers (the tolerance absorbs another
processor's rounding) and every other trap, and no trap at all, gives different ones
(:func:`write_mysteries` refuses a mystery where that fails). Finding an answer without the lesson's
reasoning therefore means running that experiment for each candidate: the method the lesson teaches.

A wrong answer's message says where the learner's replay first parts from the mystery, and points at the
evidence that tells this trainer's bug apart (:data:`EVIDENCE`), without naming it.

``python tools/make_mysteries.py`` (or ``python -m pgcourse.traps mysteries --answers 1=NAME,...``)
(re)writes the runs; the answers are read from the solution notebook or the command line, never stored here.
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..algorithms import TRAINERS, Components, Hooks
from ..api import train
from ..config import ConfigError
from ..planted import TRAPS, plant, validate_traps
from ..run import Run, load

MYSTERIES = (1, 2, 3, 4, 5, 6)
MYSTERY_STEPS = 12_000  # env steps of the CartPole mystery trainers (the Pendulum ones: see MYSTERY_SPECS)
MYSTERY_DIR = Path(__file__).parent / "mysteries"

# How each mystery trainer was trained, apart from its bug (all of it is in its saved config as well).
# The Pendulum trainers start with a wider policy (std e^0.5 ~ 1.65 on actions bounded to [-2, 2]).
MYSTERY_SPECS: dict[int, dict[str, Any]] = {
    1: dict(algo="ppo", env_id="CartPole-v1", total_steps=MYSTERY_STEPS),
    2: dict(algo="a2c", env_id="CartPole-v1", total_steps=MYSTERY_STEPS),
    3: dict(algo="ppo", env_id="CartPole-v1", total_steps=MYSTERY_STEPS),
    4: dict(algo="ppo", env_id="Pendulum-v1", total_steps=20_480, log_std_init=0.5),
    5: dict(algo="ppo", env_id="Pendulum-v1", total_steps=20_480, log_std_init=0.5),
    6: dict(algo="ppo", env_id="Pendulum-v1", total_steps=20_480, log_std_init=0.5),
}

# What the check compares: the first updates' diagnostics, with a tolerance that survives another CPU's
# rounding yet separates every pair of traps (write_mysteries refuses a mystery where it does not).
# ATOL covers a policy loss that is ~0 (mean of normalised advantages). NaN (A2C has no approx_kl) equals NaN.
CHECKED_UPDATES = 2
COMPARED = ("env_step", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
RTOL, ATOL = 1e-4, 1e-5

# Where to look, per trainer: the evidence that tells its bug apart, for a wrong answer's message. It points at
# signals and at the experiment to run; it never names the bug.
EVIDENCE: dict[int, str] = {
    1: "Look at approx_kl and clip_fraction in m.history.updates: not small, exactly 0.0 on every update. In the "
       "clipped surrogate the ratio is exp(log pi_theta(a|s) - log pi_old(a|s)). Which of its two terms would have "
       "to change, during the update, for the ratio to stay exactly 1?",
    2: "Put the returns beside the entropy: the entropy falls (the policy becomes more certain, so it is learning) "
       "while the return falls below what a random policy gets. It learns the wrong thing. Then read its config: "
       "which suspects would have written another value into a setting (pg.traps.PRESETS, the trap descriptions)?",
    3: "Train a correct twin from the mystery's config (twin = "
       "pg.traps.bug_hunt.train_like(m)) and put the two side by side: the mystery's approx_kl and clip_fraction "
       "are clearly smaller, so its policy moves less per update with the same lr, epochs and clip range, and its "
       "critic explains less. What can shrink both networks' steps without touching a learning rate? Compare "
       "actor_grad_norm with critic_grad_norm, and think about where and how the gradients are clipped.",
    4: "Look at the first update: approx_kl far above the 0.01-0.02 of a healthy PPO and most samples clipped, "
       "with PPO's usual lr and epochs. A ratio that far from 1 on the first update means the update's log-probs "
       "disagree with the rollout's before the policy has moved. Pendulum's action is a vector of one number: "
       "what shape has a log-prob of it ([B] or [B, 1]), and what does [B] - [B, 1] give?",
    5: "Beside a correct run from the same config, the actor's signals look alike but the critic fits worse: "
       "explained_variance lower, value_loss and advantage_std larger. How do Pendulum's episodes end (never by "
       "termination; every one at the 200-step time limit)? Which part of the update uses how an episode ended?",
    6: "Its return rises much as a correct run's does and no signal stands out, yet its very first update "
       "already differs from that of a correct twin (train_like(m)): a bug present from the first rollout that "
       "bites quietly. Its policy starts wide (std e^0.5 ~ 1.65) on actions bounded to [-2, 2], so many sampled "
       "actions fall outside the bounds. Which action, and which log-prob, does the update then believe was "
       "played?",
}


def mystery_run(k: int) -> Run:
    """Mystery trainer ``k`` (1 to 6): the course's PPO or A2C with one hidden planted bug, loaded from its
    saved run (its config has ``traps=()``: the bug is for you to find)."""
    if k not in MYSTERIES:
        raise ValueError(f"mystery trainers are numbered {MYSTERIES[0]} to {MYSTERIES[-1]}, got {k!r}")
    return load(MYSTERY_DIR / str(k), device="cpu")


def train_like(mystery: Run, traps: tuple[str, ...] = (), **changes: Any) -> Run:
    """Train the course's algorithm with the mystery's saved settings (algorithm, environment, seed, budget and
    every hyperparameter), on CPU, with ``traps`` planted (default none: a correct twin of the mystery).
    ``changes`` override settings, e.g. ``total_steps=4096``. The experiment of the bug hunt:
    ``pg.traps.bug_hunt.train_like(m, traps=("suspect",))`` beside ``m``."""
    config = mystery.config
    fixed = ("algo", "env_id", "device", "progress", "traps")
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in fixed}
    settings.update(changes)
    return train(config.algo, config.env_id, device="cpu", progress=False, traps=tuple(traps), **settings)


def _signature(run: Run, updates: int) -> np.ndarray:
    """The compared diagnostics of the first ``updates`` updates, ``[len(COMPARED), <= updates]``."""
    table = run.history.updates
    return np.stack([np.asarray(table[column][:updates], dtype=float) for column in COMPARED])


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True).all())


def _replay(trap: str | None, mystery: Run, updates: int = CHECKED_UPDATES) -> np.ndarray:
    """Train the mystery's saved config with ``trap`` planted (None: no trap, the correct algorithm) on CPU
    and return the signature of its first ``updates`` updates. Stops after the first update that does not
    match the mystery's, so a wrong trap costs about one update. A trap that cannot be planted in this
    algorithm or environment gives an empty signature."""
    expected = _signature(mystery, updates)
    config = dataclasses.replace(mystery.config, traps=(trap,) if trap else (), device="cpu", progress=False)
    try:
        config, components, hooks = plant(config, Components(), Hooks())
    except ConfigError:
        return np.empty((len(COMPARED), 0))

    def stop_when_answered(trainer) -> None:
        done = len(trainer.history.updates)
        if done >= updates or not _close(_signature(trainer.run, done)[:, -1], expected[:, done - 1]):
            trainer.stopped = True

    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # leave the caller's RNGs as they were
        warnings.simplefilter("ignore")  # e.g. a trap that ends in NaN: its signature simply differs
        try:
            run = TRAINERS[config.algo](config, components, hooks, on_update=stop_when_answered)
        except Exception:  # a trap that cannot even train here is not the one
            return np.empty((len(COMPARED), 0))
        finally:
            np.random.set_state(numpy_state)
    return _signature(run, updates)


def behaves_like(trap: str | None, mystery: Run, updates: int = CHECKED_UPDATES) -> bool:
    """Whether the mystery's algorithm with ``trap`` planted (None: no trap), trained from the mystery's
    saved config, gives the mystery's first ``updates`` updates (see :data:`COMPARED`)."""
    return _close(_replay(trap, mystery, updates), _signature(mystery, updates))


def _first_difference(replay: np.ndarray, expected: np.ndarray) -> str:
    """Where a replay first parts from the mystery, in words."""
    for u in range(expected.shape[1]):
        if u >= replay.shape[1]:
            return f"it stopped before update {u + 1}"
        for c, column in enumerate(COMPARED):
            a, b = replay[c, u], expected[c, u]
            if not np.isclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True):
                return f"at update {u + 1}, {column} is {a:.4g} with it planted and {b:.4g} in the mystery"
    return "its updates match"


def mystery_feedback(k: int, answer: Any) -> str | None:
    """None if ``answer`` names the trap planted in mystery trainer ``k``; otherwise the message that says
    what the answer did and where to look (never which trap it is)."""
    if k not in MYSTERIES:
        return f"there is no mystery trainer {k!r}; they are numbered {MYSTERIES[0]} to {MYSTERIES[-1]}"
    if not isinstance(answer, str) or answer not in TRAPS:
        return (f"mystery trainer {k}: {answer!r} is not a trap name; answer with one of the keys of pg.traps.TRAPS: "
                f"{sorted(TRAPS)}")
    mystery = mystery_run(k)
    try:
        validate_traps(mystery.config.algo, (answer,))
    except ConfigError:
        return (f"mystery trainer {k}: {answer!r} cannot be planted in this trainer: it is "
                f"{mystery.config.algo.upper()} on {mystery.config.env_id} ({mystery.action_kind} actions), and "
                f"{answer!r} exists for {TRAPS[answer][0]} only. Cross it off your list.\nWhere to look: {EVIDENCE[k]}")
    expected = _signature(mystery, CHECKED_UPDATES)
    replay = _replay(answer, mystery)
    if _close(replay, expected):
        return None
    where = _first_difference(replay, expected)
    lines = [f"mystery trainer {k}: the course's {mystery.config.algo.upper()} with {answer!r} planted does not "
             f"behave like it ({where})."]
    if replay.shape[1] == 0:
        lines[0] = (f"mystery trainer {k}: the course's {mystery.config.algo.upper()} with {answer!r} planted does "
                    f"not even train from this trainer's config.")
    elif _close(replay, _replay(None, mystery, replay.shape[1])[:, :replay.shape[1]]):
        lines.append(f"Here {answer!r} changes nothing at all: with it planted, the first updates are those of a "
                     "correct run, and the mystery's are not.")
    lines.append(f"Where to look: {EVIDENCE[k]}")
    lines.append(f"Test a suspect by experiment: m = pg.traps.mystery_run({k}); "
                 f"mine = pg.traps.bug_hunt.train_like(m, traps=({answer!r},)) "
                 "(and twin = pg.traps.bug_hunt.train_like(m), a correct run from the same config); "
                 f"then put mine.history.updates beside m.history.updates ({', '.join(COMPARED)}; the check compares "
                 f"the first {CHECKED_UPDATES} updates).")
    return "\n".join(lines)


def check_mystery(k: int, answer: str) -> None:
    """Check one answer of the bug hunt: ``answer`` names the trap (a key of ``TRAPS``) planted in mystery
    trainer ``k``. Behaviour is compared, not names (a few seconds)."""
    problem = mystery_feedback(k, answer)
    if problem is not None:
        raise AssertionError(problem)
    print(f"✓ mystery trainer {k}: the course's {mystery_run(k).config.algo.upper()} with {answer!r} planted "
          f"gives its first {CHECKED_UPDATES} updates")


def check_bug_hunt(answers: dict[int, str]) -> None:
    """Check all the answers at once: ``answers[k]`` is the trap name planted in mystery trainer ``k``."""
    if not isinstance(answers, dict):
        raise AssertionError(f"answers must be a dict {{1: 'trap name', 2: ..., ...}}, got {type(answers).__name__}")
    try:  # keys may arrive as strings (e.g. through JSON)
        answers = {int(k): v for k, v in answers.items()}
    except (TypeError, ValueError):
        raise AssertionError(f"answers must be keyed by the trainer numbers {MYSTERIES}") from None
    missing = [k for k in MYSTERIES if k not in answers]
    if missing:
        raise AssertionError(f"answers has no entry for mystery trainer(s) {missing}")
    problems = [p for p in (mystery_feedback(k, answers[k]) for k in MYSTERIES) if p is not None]
    if problems:
        raise AssertionError("\n\n".join(problems))
    print(f"✓ bug hunt: all {len(MYSTERIES)} planted bugs named correctly")


# -- for whoever maintains the course -------------------------------------------------------------

def indistinguishable(trap: str, mystery: Run) -> list[str]:
    """The traps other than ``trap`` (and "no trap", if so) that the check could not tell apart from it on
    this mystery run (empty for a sound mystery)."""
    twins = [other for other in TRAPS if other != trap and behaves_like(other, mystery)]
    return twins + (["no trap at all"] if behaves_like(None, mystery) else [])


def write_mysteries(answers: dict[int, str], seeds: dict[int, int], folder: str | Path = MYSTERY_DIR,
                    total_steps: int | None = None,
                    specs: dict[int, dict[str, Any]] | None = None) -> list[Path]:
    """Train mystery trainer ``k`` as ``specs[k]`` says (default :data:`MYSTERY_SPECS`; ``total_steps``
    replaces every budget) with trap ``answers[k]`` at seed ``seeds[k]``, check that the check can tell the
    planted trap from every other one and from no trap, and save the runs to ``folder/<k>/`` with the
    trap's name removed from their config (``traps=()``). Nothing is written unless all of them are sound."""
    specs = MYSTERY_SPECS if specs is None else specs
    numbers = sorted(specs)
    if sorted(answers) != numbers or sorted(seeds) != numbers:
        raise ValueError(f"give an answer and a seed for each of the mystery trainers {tuple(numbers)}")
    for k in numbers:
        if answers[k] not in TRAPS:
            raise ValueError(f"mystery trainer {k}: {answers[k]!r} is not a trap name; choose one of {sorted(TRAPS)}")
    runs = {}
    for k in numbers:
        spec = dict(specs[k])
        if total_steps is not None:
            spec["total_steps"] = total_steps
        algo, env_id = spec.pop("algo"), spec.pop("env_id")
        run = train(algo, env_id, seed=seeds[k], device="cpu", progress=False, traps=(answers[k],), **spec)
        run.config = dataclasses.replace(run.config, traps=())  # the presets stay, the name goes
        # no resumable state: it would resume without the bug, and an optimiser's state can tell which ran
        run.training_state, run.saved_training_state = None, None
        if not behaves_like(answers[k], run):
            raise RuntimeError(f"mystery trainer {k}: a replay with its own trap does not match it; is training "
                               "deterministic on this machine?")
        twins = indistinguishable(answers[k], run)
        if twins:
            raise ValueError(f"mystery trainer {k}: the check cannot tell its trap from {twins} at seed {seeds[k]} "
                             f"(their first {CHECKED_UPDATES} updates match); choose another trap or seed")
        runs[k] = run
    return [runs[k].save(Path(folder) / str(k), overwrite=True) for k in numbers]
