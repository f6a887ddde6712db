"""The bug hunt of lesson 06: three mystery PPO trainers, each with one hidden planted bug, and the check
of the learner's answers.

The mystery trainers are saved runs shipped with the package (``mysteries/<k>/``, folders written by
:meth:`~pgcourse.run.Run.save`). Their config keeps every hyperparameter, a trap's presets included (a
longer rollout shows in ``num_envs`` and ``n_steps`` as any setting would), but not the trap's name:
``mystery_run(k).config.traps == ()``. Nothing in the package names the answers, in plain text or as a
hash.

The check compares behaviour. For each trainer it trains the course's PPO with the trap the learner names,
at the mystery's seed and step budget (both in its saved config), for the first :data:`CHECKED_UPDATES`
updates, and compares their diagnostics (:data:`COMPARED`) with the mystery's first updates. Training on
CPU is deterministic, so the right trap gives the same numbers (the tolerance absorbs another processor's
rounding) and every other trap gives different ones (``tests/test_traps.py`` checks all of them). Finding
an answer without the lesson's reasoning therefore means running that experiment for each candidate
trap: the method the lesson teaches, not a look-up.

``python -m pgcourse.traps mysteries --answers 1=NAME,2=NAME,3=NAME`` (re)writes the runs; it is for
whoever maintains the course, takes the answers as input and stores them nowhere.
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import torch

from ..algorithms import TRAINERS, Components, Hooks
from ..api import train
from ..config import make_config
from ..planted import TRAPS, plant
from ..run import Run, load

MYSTERIES = (1, 2, 3)
MYSTERY_STEPS = 12_000  # env steps each mystery trainer ran
MYSTERY_DIR = Path(__file__).parent / "mysteries"

# What the check compares: the first updates' diagnostics, with a tolerance that survives another CPU's
# rounding yet separates every pair of traps. Measured on the three mysteries: the closest wrong trap is
# ~7,900 times the tolerance away; torch's scalar kernels (ATEN_CPU_CAPABILITY=default) instead of AVX-512
# move the right one by 0.04 of it. ATOL covers a policy loss that is ~0 (mean of normalised advantages).
CHECKED_UPDATES = 2
COMPARED = ("env_step", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
RTOL, ATOL = 1e-4, 1e-5


def mystery_run(k: int) -> Run:
    """Mystery PPO trainer ``k`` (1, 2 or 3): the course's PPO with one hidden planted bug, trained on
    CartPole-v1 for :data:`MYSTERY_STEPS` env steps. Loaded from the saved run (its config has
    ``traps=()``: the bug is for you to find)."""
    if k not in MYSTERIES:
        raise ValueError("mystery trainers are numbered 1, 2 and 3")
    return load(MYSTERY_DIR / str(k), device="cpu")


def _signature(run: Run, updates: int) -> np.ndarray:
    """The compared diagnostics of the first ``updates`` updates, ``[len(COMPARED), <= updates]``."""
    table = run.history.updates
    return np.stack([table[column][:updates] for column in COMPARED])


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.isclose(a, b, rtol=RTOL, atol=ATOL).all())


def _replay(trap: str, mystery: Run, updates: int = CHECKED_UPDATES) -> np.ndarray:
    """Train the course's PPO with ``trap`` planted as the mystery was trained (same algorithm, env, seed
    and step budget, on CPU) and return the signature of its first ``updates`` updates. Stops after the
    first update that does not match the mystery's, so a wrong trap costs about one update."""
    expected = _signature(mystery, updates)
    saved = mystery.config
    config = make_config(saved.algo, saved.env_id, mystery.action_kind, seed=saved.seed,
                         total_steps=saved.total_steps, device="cpu", progress=False, traps=(trap,))
    config, components, hooks = plant(config, Components(), Hooks())

    def stop_when_answered(trainer) -> None:
        done = len(trainer.history.updates)
        if done >= updates or not _close(_signature(trainer.run, done)[:, -1], expected[:, done - 1]):
            trainer.stopped = True

    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():  # leave the caller's RNGs as they were
        warnings.simplefilter("ignore")  # e.g. a trap that ends in NaN: its signature simply differs
        try:
            run = TRAINERS[config.algo](config, components, hooks, on_update=stop_when_answered)
        except Exception:  # a trap that cannot even train here (e.g. one for Box actions only) is not the one
            return np.empty((len(COMPARED), 0))
        finally:
            np.random.set_state(numpy_state)
    return _signature(run, updates)


def behaves_like(trap: str, mystery: Run, updates: int = CHECKED_UPDATES) -> bool:
    """Whether the course's PPO with ``trap`` planted, trained at the mystery's seed, gives the mystery's
    first ``updates`` updates (see :data:`COMPARED`)."""
    return _close(_replay(trap, mystery, updates), _signature(mystery, updates))


def check_bug_hunt(answers: dict[int, str]) -> None:
    """Check the bug hunt: ``answers[k]`` is the trap name (a key of ``TRAPS``) planted in mystery trainer ``k``.

    Behaviour is compared, not names: each named trap is planted in the course's PPO, trained at the
    mystery's seed for its first updates, and those updates must match the mystery's (a few seconds).
    """
    if not isinstance(answers, dict):
        raise AssertionError(f"answers must be a dict {{1: 'trap name', 2: ..., 3: ...}}, got {type(answers).__name__}")
    try:  # keys may arrive as strings (e.g. through JSON)
        answers = {int(k): v for k, v in answers.items()}
    except (TypeError, ValueError):
        raise AssertionError("answers must be keyed by the trainer numbers 1, 2 and 3") from None
    missing = [k for k in MYSTERIES if k not in answers]
    if missing:
        raise AssertionError(f"answers has no entry for mystery trainer(s) {missing}")
    for k in MYSTERIES:
        name = answers[k]
        if not isinstance(name, str) or name not in TRAPS:
            raise AssertionError(f"mystery trainer {k}: {name!r} is not a trap name; choose one of {sorted(TRAPS)}")
    wrong = [k for k in MYSTERIES if not behaves_like(answers[k], mystery_run(k))]
    if wrong:
        k = wrong[0]
        lines = [f"mystery trainer {j}: the course's PPO with {answers[j]!r} planted does not behave like mystery "
                 f"trainer {j}." for j in wrong]
        raise AssertionError("\n".join(lines) + (
            f"\nRun that experiment and compare, e.g. for trainer {k}:\n"
            f"    m = pg.traps.mystery_run({k})\n"
            f"    mine = pg.train('ppo', 'CartPole-v1', seed=m.config.seed, total_steps=m.config.total_steps, "
            f"device='cpu', traps=({answers[k]!r},))\n"
            f"then put mine.history.updates beside m.history.updates ({', '.join(COMPARED)}: the check compares "
            f"the first {CHECKED_UPDATES} updates), or pg.diagnose(mine) beside pg.diagnose(m). Where they "
            "differ, what in the update would give the mystery's numbers?"))
    print("✓ bug hunt: all three planted bugs named correctly")


# -- for whoever maintains the course -------------------------------------------------------------

def indistinguishable(trap: str, mystery: Run) -> list[str]:
    """The traps other than ``trap`` that the check could not tell apart from it on this mystery run
    (empty for a sound mystery)."""
    return [other for other in TRAPS if other != trap and behaves_like(other, mystery)]


def write_mysteries(answers: dict[int, str], seeds: dict[int, int], folder: str | Path = MYSTERY_DIR,
                    total_steps: int = MYSTERY_STEPS) -> list[Path]:
    """Train mystery trainer ``k`` with trap ``answers[k]`` at seed ``seeds[k]`` for each k, check that the
    check can tell the planted trap from every other one, and save the runs to ``folder/<k>/`` with the
    trap's name removed from their config (``traps=()``). Nothing is written unless all three are sound."""
    if sorted(answers) != list(MYSTERIES) or sorted(seeds) != list(MYSTERIES):
        raise ValueError(f"give an answer and a seed for each of the mystery trainers {MYSTERIES}")
    for k in MYSTERIES:
        if answers[k] not in TRAPS:
            raise ValueError(f"mystery trainer {k}: {answers[k]!r} is not a trap name; choose one of {sorted(TRAPS)}")
    runs = {}
    for k in MYSTERIES:
        run = train("ppo", "CartPole-v1", seed=seeds[k], total_steps=total_steps, device="cpu", progress=False,
                    traps=(answers[k],))
        run.config = dataclasses.replace(run.config, traps=())  # the presets stay, the name goes
        if not behaves_like(answers[k], run):
            raise RuntimeError(f"mystery trainer {k}: a replay with its own trap does not match it; is training "
                               "deterministic on this machine?")
        twins = indistinguishable(answers[k], run)
        if twins:
            raise ValueError(f"mystery trainer {k}: the check cannot tell its trap from {twins} at seed {seeds[k]} "
                             f"(their first {CHECKED_UPDATES} updates match); choose another trap or seed")
        runs[k] = run
    return [runs[k].save(Path(folder) / str(k), overwrite=True) for k in MYSTERIES]
