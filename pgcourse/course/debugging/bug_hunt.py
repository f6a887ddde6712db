"""The bug hunt of lesson 06: six mystery trainers, each the course's PPO or A2C with one hidden planted bug, and the
checks of the learner's answers.

**Two kinds of hunt.** The *practice six* ship with the package (``mysteries/<pool id>/``, :data:`PRACTICE`): saved
runs with their seeds, whose answers the solution notebook publishes; their check replays the named trap from the
saved config and compares the first updates (below). A *graded hunt* is made by the teacher for each student
(:mod:`pgcourse.classroom.hunts`): six runs trained from a teacher's secret, each with its correct twin (the same
settings and seed, no bug), in a folder per student (:func:`load_hunt`). Their saved configs withhold the seed
(:data:`WITHHELD_SEED`), so nothing on a learner's machine can replay a bug against them: the learner reads where
each mystery first parts from its twin and finds the bug that does that, by experiment at seeds of their own. The
bugs, the seeds and both runs' histories are in the teacher's key only; the grader's trusted worker reads it
(:data:`KEY_VARIABLE`) and grades each submission on the hunt made for the student it grades.

**An answer** is a trap (a key of ``pg.traps.TRAPS``), the signal of ``pg.diagnose`` through which it shows
(:data:`~.signals.SIGNALS`; the signals each trap acts on: :data:`~.signals.SHOWS_IN`) and its evidence: the value
the mystery logged at the first update where it parts from its twin, in a column of that signal
(:mod:`.evidence`). A guess of the trap alone scores nothing: all three must hold. On a graded hunt the learner's
check judges the answer's form and its evidence only; the trap and the signal are judged by the grader, once.

**The practice replay.** For practice trainer ``k`` the check trains the course's algorithm with the named trap
from the mystery's saved config (same seed, on CPU) for the first :data:`CHECKED_UPDATES` updates and compares their
diagnostics (:data:`COMPARED`) with the mystery's, as a *distance*: per diagnostic and update, the relative
difference ``|replay - mystery| / max(|mystery|, FLOOR)`` divided by that update's tolerance (:data:`TOLERANCES`:
3e-3 at update 1, 0.1 at update 2), the largest of them; at most 1 behaves alike. Measured on the practice runs: the
right trap drifts at most 0.078 under other rounding (ATen's scalar or AVX2 kernels, one thread, MKL's code paths,
torch 2.14.1, 10% of the initial weights nudged by one ulp), every other trap and no trap is at least 6.6 away.
:func:`write_mysteries` refuses a run where that margin (:data:`MARGIN`) does not hold, and one whose
``pg.diagnose`` first lead (:func:`first_lead`) names its bug. ``python tools/make_mysteries.py`` remakes them; the
answers are read from the solution notebook, never stored here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...rl.algorithms import TRAINERS, Components, Hooks
from ...rl.api import train
from ...rl.config import ConfigError, make_config
from ...rl.envs import action_space_kind, env_spaces
from ...rl.planted import BOX_ONLY, TRAPS, plant, validate_traps
from ...rl.run import Run, load
from .evidence import EVIDENCE_COLUMNS, TOLERANCE, first_parting, judge_evidence, parse_evidence
from .evidence import partings as evidence_partings
from .signals import INERT_BECAUSE, SHOWS_IN, SIGNALS, diagnose, signal_name, top_causes
from .signals import inert_signals as signals_inert_in

MYSTERY_STEPS = 12_000  # env steps of the CartPole mystery trainers (the Pendulum ones: see MYSTERY_SPECS)

# The pool (mysteries/<id>/): how each run was trained, apart from its bug (all of it is in its saved config as well).
# The Pendulum runs start with a wider policy (std e^0.5 ~ 1.65 on actions bounded to [-2, 2]); the A2C ones use
# A2C's defaults (16-step rollouts) over the same 20,480 steps.
_CARTPOLE = dict(env_id="CartPole-v1", total_steps=MYSTERY_STEPS)
_PENDULUM = dict(env_id="Pendulum-v1", total_steps=20_480, log_std_init=0.5)
MYSTERY_SPECS: dict[int, dict[str, Any]] = {  # the practice six, by pool id
    3: dict(algo="ppo", **_CARTPOLE),
    5: dict(algo="ppo", **_PENDULUM),
    6: dict(algo="ppo", **_PENDULUM),
    7: dict(algo="ppo", **_CARTPOLE),
    9: dict(algo="ppo", **_CARTPOLE),
    11: dict(algo="a2c", **_PENDULUM),
}
MYSTERY_DIR = Path(__file__).parent / "mysteries"
MYSTERIES = (1, 2, 3, 4, 5, 6)  # the numbers a learner sees: trainers 1-3 on CartPole, 4-6 on Pendulum

# What the check compares: the first updates' diagnostics. How far a replay may be from the mystery, per
# update: the relative difference |replay - mystery| / max(|mystery|, FLOOR) of each diagnostic, at most
# TOLERANCES[u] at update u + 1 (see the module's docstring for what was measured: the right trap drifts at
# most 0.078 of these tolerances under other rounding, every other trap is at least 6.6 of them away).
CHECKED_UPDATES = 2
COMPARED = ("env_step", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
FLOOR = 1e-3
TOLERANCES = (3e-3, 1e-1)
# write_mysteries: the own trap's drift under OTHER_ROUNDING must stay below 1 / MARGIN, and every other
# trap (and no trap) must be at least MARGIN away.
MARGIN = 5.0
# Another rounding on this machine: ATen's scalar kernels instead of AVX2/AVX-512, MKL's compatible code path,
# one thread (set before torch starts, hence a subprocess).
OTHER_ROUNDING = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE", "OMP_NUM_THREADS": "1",
                  "MKL_NUM_THREADS": "1"}

# Where to look, per kind of run (algorithm and environment): the evidence to read and the experiment to run, for the
# notebook's hints (where_to_look). The same text for every bug that kind of run may hold (a text written per bug would
# map to its bug); it points at pg.diagnose's signals and at the experiment, never names or describes a bug.
_TWIN = "its correct twin (pg.traps.bug_hunt.twin_run(k))"
_EXPERIMENT = ("Then plant each suspect at seeds of your own (several: one seed can mislead), train_like(m, "
               "traps=('suspect',), seed=s) beside train_like(m, seed=s): which columns does each part in first, and "
               "which way? The suspect whose first partings look like the mystery's at every seed is your answer.")
_CARTPOLE_PPO = ("pg.diagnose's leads are suspects, not verdicts. Put m.history.updates beside "
                 f"{_TWIN}: where does each signal first part (pg.traps.bug_hunt.partings(k))? Read the 'KL / clip "
                 "fraction', 'explained variance' and 'grad norms' columns (approx_kl, clip_fraction, "
                 "explained_variance, actor_grad_norm, critic_grad_norm) first: does the actor or the critic part "
                 "first, and which way? " + _EXPERIMENT)
_PENDULUM_PPO = ("pg.diagnose's leads are suspects, not verdicts. Put the 'policy std', 'entropy', 'explained "
                 "variance' and 'grad norms' columns (log_std_mean, entropy, explained_variance, actor_grad_norm, "
                 f"critic_grad_norm) beside {_TWIN}: where does the mystery first part, and which network is taught "
                 "something else? Suspects that only a Box action space can have are among them. " + _EXPERIMENT)
_PENDULUM_A2C = ("A2C has no pi_old, so there is no 'KL / clip fraction' to read: put policy_loss, value_loss and "
                 f"the 'policy std' and 'explained variance' columns beside {_TWIN}. Does the critic or the actor "
                 "part first? Suspects that only a Box action space can have are among them. " + _EXPERIMENT)


def _evidence(spec: dict[str, Any]) -> str:
    if spec["env_id"] == "CartPole-v1":
        return _CARTPOLE_PPO
    return _PENDULUM_A2C if spec["algo"] == "a2c" else _PENDULUM_PPO






# -- which six trainers: the practice six, or a hunt made for one student --------------------------------------------

PRACTICE = (7, 9, 3, 11, 5, 6)  # pool ids of the practice six (trainers 1-6): the solution notebook answers them
HUNT_FORMAT = "pgcourse-hunt/1"  # hunt.json of a hunt folder (made by pgcourse.classroom.hunts)
KEY_FORMAT = "pgcourse-hunt-key/1"  # the teacher's key of the hunts made for a class
KEY_VARIABLE = "PGCOURSE_HUNT_KEY"  # set by the grader (--hunt-key) in its trusted worker only: the key's path
STUDENT_VARIABLE = "PGCOURSE_STUDENT_ID"  # set by the grader's worker: the student whose answers it grades
WITHHELD_SEED = 2**32 - 1  # the seed a hunt's saved config shows: the real one is in the teacher's key only


@dataclasses.dataclass
class Hunt:
    """Six mystery trainers: the practice six (``student`` None) or those of a hunt folder made for ``student``."""
    student: str | None
    folder: Path | None
    runs: dict[int, Run]
    twins: dict[int, Run]  # each trainer's correct twin: its settings and seed, no bug (practice: trained when asked)


_CURRENT: list[Hunt | None] = [None]


def pool_run(pool_id: int) -> Run:
    """The saved run ``pool_id`` of the package's pool (``mysteries/<pool_id>/``: the practice six), on CPU."""
    if pool_id not in pool_ids():
        raise ValueError(f"there is no run {pool_id!r} in the bug hunt's pool {pool_ids()}")
    return load(MYSTERY_DIR / str(pool_id), device="cpu")


def pool_ids(folder: Path = MYSTERY_DIR) -> tuple[int, ...]:
    """The ids of the saved runs in ``folder`` (sub-folders named by a number with a config.json)."""
    return tuple(sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / "config.json").is_file()))


def _practice() -> Hunt:
    return Hunt(None, None, {k: pool_run(i) for k, i in zip(MYSTERIES, PRACTICE)}, {})


def _current() -> Hunt:
    if _CURRENT[0] is None:
        _CURRENT[0] = _practice()
    return _CURRENT[0]


def read_hunt(folder: str | Path) -> Hunt:
    """The hunt saved in ``folder`` (``hunt.json``, one saved run per trainer, ``1/`` to ``6/``, and their twins in
    ``twins/``); a folder mixed from two hunts is refused."""
    if not isinstance(folder, (str, Path)):
        raise TypeError(f"a hunt is a folder: give its path (e.g. 'hunts/s123'), got {folder!r}")
    folder = Path(folder).expanduser()
    try:
        about = json.loads((folder / "hunt.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{folder} is not a bug-hunt folder: its hunt.json cannot be read ({error}); give the "
                         "folder your teacher handed out for you (it holds hunt.json and the folders 1 to 6)") from None
    if not isinstance(about, dict) or about.get("format") != HUNT_FORMAT or not isinstance(about.get("student"), str):
        raise ValueError(f"{folder}/hunt.json is not a bug hunt made by pgcourse (expected format {HUNT_FORMAT!r} and "
                         "a student id)")
    for k, digests in (about.get("histories") or {}).items():
        for run_folder, digest in zip((folder / k, folder / "twins" / k), digests):
            try:
                same = hashlib.sha256((run_folder / "history.json").read_bytes()).hexdigest() == digest
            except OSError:
                same = False
            if not same:
                raise ValueError(f"{run_folder} is not the run made for this hunt (its history is another's, or it "
                                 "is missing): use the folder your teacher handed out, unchanged")
    return Hunt(about["student"], folder, {k: load(folder / str(k), device="cpu") for k in MYSTERIES},
                {k: load(folder / "twins" / str(k), device="cpu") for k in MYSTERIES})


def twin_run(k: int) -> Run:
    """The correct twin of trainer ``k``: its settings and seed, no bug, recorded beside it (a hunt made for a
    student ships it in its folder, the practice six in ``mysteries/twins/``)."""
    hunt = _current()
    if k not in hunt.twins:
        hunt.twins[k] = load(MYSTERY_DIR / "twins" / str(PRACTICE[k - 1]), device="cpu")
    return hunt.twins[k]


def load_hunt(folder: str | Path | None = None) -> dict[int, str]:
    """Work on the six trainers of ``folder`` from now on: the hunt your teacher made for you (None: the practice
    six, whose answers the solution notebook gives). Returns ``{k: "PPO on CartPole-v1", ...}``.

    A hunt made for you is graded on your teacher's machine against its key, under the student id it was made for
    (printed here); its saved configs withhold the seed, so no check on your machine can replay its bug: you find it
    by comparing with correct runs of its settings at other seeds (:func:`train_like` with ``seed=``)."""
    hunt = _practice() if folder is None else read_hunt(folder)
    _CURRENT[0] = hunt
    if hunt.student is None:
        print("note: these are the practice six (no hunt folder given); their answers are in the solution notebook. "
              "A graded bug hunt is the folder your teacher made for you: load_hunt('that folder')")
    else:
        print(f"hunt made for student {hunt.student!r}: your teacher grades these six under that id (if it is not "
              "yours, tell your teacher). Their seeds are withheld; each comes with its correct twin (twin_run(k))")
    return {k: f"{run.config.algo.upper()} on {run.config.env_id}" for k, run in hunt.runs.items()}


def mystery_run(k: int) -> Run:
    """Mystery trainer ``k`` (1 to 6) of the hunt loaded by :func:`load_hunt` (without one, the practice six): the
    course's PPO or A2C with one hidden planted bug, loaded from its saved run (its config has ``traps=()``)."""
    if k not in MYSTERIES:
        raise ValueError(f"mystery trainers are numbered {MYSTERIES[0]} to {MYSTERIES[-1]}, got {k!r}")
    return _current().runs[k]


def where_to_look(k: int) -> str:
    """Where to look for trainer ``k``: the signals to put beside correct runs' and the experiment to run, one text
    per kind of run (algorithm and environment), never the bug's name. The notebook's hints for any hunt."""
    return _evidence(dataclasses.asdict(mystery_run(k).config))


def partings(k: int) -> dict[str, tuple[int, dict]]:
    """Where each signal of trainer ``k`` first parts from its correct twin's (:func:`.evidence.partings`):
    ``{signal: (update, {column: (mystery's value, twin's value)})}``. "Parts" means a relative difference above
    :data:`.evidence.TOLERANCE` (1e-6: both runs were recorded together, so before the bug acts they are equal)."""
    return evidence_partings(mystery_run(k).history.updates, twin_run(k).history.updates)


def first_lead(run: Run) -> str | None:
    """pg.diagnose's first lead on ``run``: the first trap its first finding names as a likely cause (None:
    it names none). No mystery's own trap is its first lead (:func:`write_mysteries`, ``classroom.hunts``)."""
    leads = top_causes(diagnose(run), 1)
    return leads[0] if leads else None


def train_like(mystery: Run, traps: tuple[str, ...] = (), seed: int | None = None, **changes: Any) -> Run:
    """Train the course's algorithm with the mystery's saved settings (algorithm, environment, budget and every
    hyperparameter), on CPU, with ``traps`` planted (default none: a correct run of the mystery's settings) at
    ``seed`` (default: the mystery's own, where its config gives it; a hunt made for a student withholds it, so
    give one: correct runs at a few seeds show the range a bug must leave). ``changes`` override settings (keep
    ``total_steps`` when you compare with the mystery: with ``anneal_lr`` every update's learning rate depends on
    the budget)."""
    config = mystery.config
    if seed is None and config.seed == WITHHELD_SEED:
        raise ConfigError("this trainer's seed is withheld (a hunt made for a student): its correct twin comes with the "
                          "hunt (pg.traps.bug_hunt.twin_run(k)); train_like(m, seed=1) trains a correct run of its "
                          "settings at seed 1, and train_like(m, traps=('suspect',), seed=1) a suspect beside it")
    fixed = ("algo", "env_id", "device", "progress", "traps", "seed")
    settings = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name not in fixed}
    settings.update(changes)
    return train(config.algo, config.env_id, seed=config.seed if seed is None else seed, device="cpu",
                 progress=False, traps=tuple(traps), **settings)


def _signature(run: Run, updates: int) -> np.ndarray:
    """The compared diagnostics of the first ``updates`` updates, ``[len(COMPARED), <= updates]``."""
    table = run.history.updates
    return np.stack([np.asarray(table[column][:updates], dtype=float) for column in COMPARED])


def _differences(replay: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Relative differences ``|replay - expected| / max(|expected|, FLOOR)``, ``[len(COMPARED), updates]`` over
    the updates of ``expected``: 0 where both are NaN, inf where only one is or where the replay has no such
    update (it stopped)."""
    differences = np.full(expected.shape, np.inf)
    n = min(expected.shape[1], replay.shape[1])
    a, b = replay[:, :n], expected[:, :n]
    with np.errstate(invalid="ignore", over="ignore"):
        relative = np.abs(a - b) / np.maximum(np.abs(b), FLOOR)
    relative = np.where(np.isnan(a) & np.isnan(b), 0.0, relative)
    differences[:, :n] = np.where(np.isnan(relative), np.inf, relative)
    return differences


def _tolerances(updates: int) -> np.ndarray:
    """The tolerance of each of the first ``updates`` updates (past :data:`TOLERANCES`, its last)."""
    return np.array([TOLERANCES[min(u, len(TOLERANCES) - 1)] for u in range(updates)])


def distance(replay: np.ndarray, expected: np.ndarray) -> float:
    """How far a replay's signature is from the mystery's, in tolerances: the largest relative difference of a
    compared diagnostic divided by its update's tolerance (:data:`TOLERANCES`). At most 1: it behaves alike."""
    if expected.shape[1] == 0:
        return 0.0
    return float((_differences(replay, expected) / _tolerances(expected.shape[1])).max())


def _replay(trap: str | None, mystery: Run, updates: int = CHECKED_UPDATES,
            stop_beyond: float | None = 1.0) -> np.ndarray:
    """Train the mystery's saved config with ``trap`` planted (None: no trap, the correct algorithm) on CPU
    and return the signature of its first ``updates`` updates. Stops after the first update whose distance
    from the mystery's is above ``stop_beyond`` (None: never), so a wrong trap costs about one update. A trap
    that cannot be planted in this algorithm or environment gives an empty signature."""
    if mystery.config.seed == WITHHELD_SEED:
        raise ValueError("this mystery's seed is withheld (a hunt made for a student): no replay can reproduce it; "
                         "compare it with its correct twin instead")
    expected = _signature(mystery, updates)
    tolerances = _tolerances(updates)
    config = dataclasses.replace(mystery.config, traps=(trap,) if trap else (), device="cpu", progress=False)
    try:
        config, components, hooks = plant(config, Components(), Hooks())
    except ConfigError:
        return np.empty((len(COMPARED), 0))

    def stop_when_answered(trainer) -> None:
        done = len(trainer.history.updates)
        if done >= updates:
            trainer.stopped = True
        elif stop_beyond is not None and done <= expected.shape[1]:
            latest = _differences(_signature(trainer.run, done)[:, -1:], expected[:, done - 1:done])
            if latest.max() / tolerances[done - 1] > stop_beyond:
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
    saved config, gives the mystery's first ``updates`` updates (see :data:`COMPARED`), to within rounding:
    :func:`distance` at most 1."""
    return distance(_replay(trap, mystery, updates), _signature(mystery, updates)) <= 1.0


def _first_difference(replay: np.ndarray, expected: np.ndarray) -> str:
    """Where a replay first parts from the mystery, in words: the update and the diagnostic, and no number of
    the replay. (Trainers 4, 5 and 6 share one config, so a wrong answer's replay can be another mystery's run:
    its numbers would give that mystery's answer away.)"""
    differences = _differences(replay, expected)
    tolerances = _tolerances(expected.shape[1])
    for u in range(expected.shape[1]):
        if u >= replay.shape[1]:
            return f"it stopped before update {u + 1}"
        for c, column in enumerate(COMPARED):
            if differences[c, u] > tolerances[u]:
                return (f"at update {u + 1}, its {column} differs from the mystery's by more than another "
                        "processor's rounding could explain")
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
                f"{answer!r} exists for {TRAPS[answer][0]} only. Cross it off your list.\nWhere to look: {where_to_look(k)}")
    expected = _signature(mystery, CHECKED_UPDATES)
    replay = _replay(answer, mystery)
    if distance(replay, expected) <= 1.0:
        return None
    where = _first_difference(replay, expected)
    lines = [f"mystery trainer {k}: the course's {mystery.config.algo.upper()} with {answer!r} planted does not "
             f"behave like it: {where}."]
    if replay.shape[1] == 0:
        lines[0] = (f"mystery trainer {k}: the course's {mystery.config.algo.upper()} with {answer!r} planted does "
                    f"not even train from this trainer's config.")
    elif distance(replay, _replay(None, mystery, replay.shape[1], stop_beyond=None)) <= 1.0:
        lines.append(f"Here {answer!r} changes nothing in the first updates: with it planted, they are those of a "
                     "correct run, and the mystery's are not.")
    lines.append(f"Where to look: {where_to_look(k)}")
    lines.append(f"Test a suspect by experiment: m = pg.traps.mystery_run({k}); "
                 f"mine = pg.traps.bug_hunt.train_like(m, traps=({answer!r},)) "
                 "(and twin = pg.traps.bug_hunt.train_like(m), a correct run from the same config); "
                 f"then put mine.history.updates beside m.history.updates ({', '.join(COMPARED)}; the check compares "
                 f"the first {CHECKED_UPDATES} updates, to within rounding: relative differences up to "
                 f"{' then '.join(f'{t:g}' for t in TOLERANCES)}).")
    return "\n".join(lines)


def unmeasured_signals(k: int) -> set[str]:
    """The signals of :data:`~pgcourse.course.debugging.signals.SIGNALS` that trainer ``k``'s run does not measure: A2C
    has no pi_old ('KL / clip fraction'), a Discrete policy no Gaussian ('policy std')."""
    return unmeasured_in(dataclasses.asdict(mystery_run(k).config))


def unmeasured_in(spec: dict[str, Any]) -> set[str]:
    """The signals a run of ``spec`` (its settings: at least ``algo`` and ``env_id``) does not measure."""
    missing = set()
    if spec["algo"] == "a2c":
        missing.add("KL / clip fraction")
    if spec["env_id"] == "CartPole-v1":
        missing.add("policy std")
    return missing


def answerable_signals(answer: str, spec: dict[str, Any]) -> set[str]:
    """The signals of ``SHOWS_IN[answer]`` that a run of ``spec`` (its settings, or :data:`MYSTERY_SPECS`'s) measures
    and that ``answer`` is not kept from moving by its settings (:func:`~.signals.inert_signals`; the course
    defaults fill what ``spec`` leaves out): the right signal halves of that run's answer."""
    _, action_space = env_spaces(spec["env_id"], spec.get("env_kwargs"))
    kind = action_space_kind(action_space)
    fields = {field.name for field in dataclasses.fields(make_config(spec["algo"], spec["env_id"], kind))}
    config = make_config(spec["algo"], spec["env_id"], kind, **{name: value for name, value in spec.items()
                                                                if name in fields - {"algo", "env_id", "traps"}})
    return set(SHOWS_IN[answer]) - unmeasured_in(spec) - signals_inert_in(answer, config)


def inert_signals(k: int, answer: str) -> set[str]:
    """Signals of :data:`~pgcourse.course.debugging.signals.SHOWS_IN` through which ``answer`` cannot act in trainer
    ``k``'s settings (:func:`~pgcourse.course.debugging.signals.inert_signals` of its saved config)."""
    return signals_inert_in(answer, mystery_run(k).config)


def _signal_feedback(k: int, answer: str, name: str, settings: dict[str, Any]) -> str | None:
    """None if ``name`` is a signal through which ``answer`` (the right trap of trainer ``k``) acts in a run of
    ``settings``; otherwise why not, without naming the ones that are."""
    if name in unmeasured_in(settings):
        return (f"mystery trainer {k}: {answer!r} is right, but this trainer does not measure {name!r} (its history "
                "has no such numbers), so it cannot be where the bug shows: which signal of its history does it move?")
    if name in answerable_signals(answer, settings) or name not in SHOWS_IN[answer]:
        return None if name in answerable_signals(answer, settings) else (
            f"mystery trainer {k}: {answer!r} is right, but {name!r} is not a signal this bug acts on: what does it "
            "change in the update, and which of pg.diagnose's signals reads that?")
    return (f"mystery trainer {k}: {answer!r} is right, but in this trainer's settings it cannot act through "
            f"{name!r}: {INERT_BECAUSE[answer]} Which signal reads what it does change?")


def signal_feedback(k: int, answer: str, signal: Any) -> str | None:
    """None if ``signal`` is one of the signals through which ``answer`` (the right trap of trainer ``k``) acts;
    otherwise why not, without naming the ones that are."""
    name = signal_name(signal)
    if name is None:
        return (f"mystery trainer {k}: {signal!r} is not one of pg.diagnose's signals; name the signal with one of "
                f"pg.traps.SIGNALS: {list(SIGNALS)}")
    return _signal_feedback(k, answer, name, dataclasses.asdict(mystery_run(k).config))


def _key_entry(k: int) -> dict[str, Any] | None:
    """The teacher's key entry of trainer ``k`` of the student being graded (``{"trap", "seed", "settings",
    "history"}``), when this is the grader's worker with a key (:data:`KEY_VARIABLE`) grading a student; else None."""
    path, student = os.environ.get(KEY_VARIABLE), os.environ.get(STUDENT_VARIABLE)
    if not path or not student:
        return None
    key = json.loads(Path(path).read_text(encoding="utf-8"))
    entry = key.get("students", {}).get(student)
    if entry is None:
        raise AssertionError(f"mystery trainer {k}: your teacher's key has no hunt made for student {student!r}, the "
                             "id this submission is graded under; your teacher can make one (pgcourse.classroom.hunts)")
    return entry[str(k)]


def _form_problem(k: int, answer: Any, signal: Any, settings: dict[str, Any]) -> str | None:
    """What is wrong with the form of an answer for a trainer of ``settings`` (None: a trap that can be planted
    there and a signal it measures), told the same whatever its bug."""
    if not isinstance(answer, str) or answer not in TRAPS:
        return (f"mystery trainer {k}: {answer!r} is not a trap name; answer with one of the keys of pg.traps.TRAPS: "
                f"{sorted(TRAPS)}")
    try:
        validate_traps(settings["algo"], (answer,))
    except ConfigError:
        return (f"mystery trainer {k}: {answer!r} cannot be planted in this trainer: it is {settings['algo'].upper()} "
                f"on {settings['env_id']}, and {answer!r} exists for {TRAPS[answer][0]} only. Cross it off your list.")
    if settings["env_id"] == "CartPole-v1" and answer in BOX_ONLY:
        return (f"mystery trainer {k}: {answer!r} acts on a Box (continuous) action space, and this trainer's "
                "CartPole-v1 has two discrete actions. Cross it off your list.")
    if signal is None:
        return (f"mystery trainer {k}: name the signal too: the signal of pg.diagnose through which the bug shows, one "
                f"of pg.traps.SIGNALS: {list(SIGNALS)}")
    if signal_name(signal) is None:
        return (f"mystery trainer {k}: {signal!r} is not one of pg.diagnose's signals; name the signal with one of "
                f"pg.traps.SIGNALS: {list(SIGNALS)}")
    if signal_name(signal) in unmeasured_in(settings):
        return (f"mystery trainer {k}: this trainer does not measure {signal_name(signal)!r} (its history has no such "
                "numbers), so it cannot be where the bug shows")
    return None


def judge_answer(k: int, answer: Any, signal: Any, evidence: Any) -> tuple[str | None, str]:
    """``(problem, verdict)``: what is wrong with trainer ``k``'s answer (None: nothing found) and, when nothing is,
    what was judged: ``"graded"`` (the teacher's key: the trap, its signal and the evidence), ``"practice"`` (a
    replay of the trap, its signal and the evidence) or ``"form"`` (a hunt made for a student, on the student's
    machine: the answer's form and its evidence only, the bug being in the teacher's key alone)."""
    if isinstance(k, bool) or k not in MYSTERIES:
        return f"there is no mystery trainer {k!r}; they are numbered {MYSTERIES[0]} to {MYSTERIES[-1]}", "form"
    entry = _key_entry(k)
    if entry is not None:
        settings, history, twin, mode = entry["settings"], entry["history"], entry["twin_history"], "graded"
    else:
        run = mystery_run(k)
        settings, history = dataclasses.asdict(run.config), run.history.updates
        mode = "practice" if _current().student is None else "form"
    problem = _form_problem(k, answer, signal, settings)
    if problem is not None:
        return problem, mode
    name = signal_name(signal)
    if entry is None:
        twin = twin_run(k).history.updates
    judged = judge_evidence(history, twin, name, evidence)
    if judged is not None:
        return f"mystery trainer {k}, your evidence: {judged}.", mode
    if mode == "graded" and answer != entry["trap"]:
        return (f"mystery trainer {k}: {answer!r} is not the bug planted in this trainer (your evidence holds: the "
                "mystery first parts from its twin there)."), mode
    if mode == "practice":
        problem = mystery_feedback(k, answer)
        if problem is not None:
            return problem, mode
    if mode != "form":
        problem = _signal_feedback(k, answer, name, settings)
    return problem, mode


def check_mystery(k: int, answer: str, signal: str | None = None, evidence: tuple[int, float] | None = None) -> None:
    """Check one answer of the bug hunt: ``answer`` names the trap (a key of ``TRAPS``) planted in mystery trainer
    ``k``, ``signal`` the signal of ``pg.diagnose`` (one of ``pg.traps.SIGNALS``) through which it shows, and
    ``evidence = (update, value)`` the value the mystery logged in a column of that signal
    (:data:`~.evidence.EVIDENCE_COLUMNS`) at the first update where it parts from its correct twin (counted from 1).

    On the practice six the whole answer is checked (the trap by a replay of two updates). On a hunt made for you,
    this machine cannot know its bug: the check says whether the answer is well formed and whether its evidence
    holds; your teacher's grader judges the trap and the signal, once, with the key."""
    problem, mode = judge_answer(k, answer, signal, evidence)
    if problem is not None:
        raise AssertionError(problem)
    update, value = parse_evidence(evidence)
    if mode == "form":
        print(f"✓ mystery trainer {k}: a well-formed answer, and its evidence holds ({signal_name(signal)!r} first parts "
              f"from the correct twin's at update {update}: {value:.4g}). Whether {answer!r} is the bug and "
              f"{signal_name(signal)!r} its signal, your teacher's grader says: no check on this machine knows it")
        return
    print(f"✓ mystery trainer {k}: {answer!r} is its bug, it shows in {signal_name(signal)!r}, and your evidence holds "
          f"(update {update}: {value:.4g}, where it first parts from its correct twin)")


def check_bug_hunt(answers: dict[int, tuple]) -> None:
    """Check all the answers at once: ``answers[k]`` is ``(trap, signal, (update, value))`` for mystery trainer
    ``k``."""
    if not isinstance(answers, dict):
        raise AssertionError("answers must be a dict {1: ('trap name', 'signal', (update, value)), 2: ..., ...}, got "
                             f"{type(answers).__name__}")
    try:  # keys may arrive as strings (e.g. through JSON)
        answers = {int(k): v for k, v in answers.items()}
    except (TypeError, ValueError):
        raise AssertionError(f"answers must be keyed by the trainer numbers {MYSTERIES}") from None
    missing = [k for k in MYSTERIES if k not in answers]
    if missing:
        raise AssertionError(f"answers has no entry for mystery trainer(s) {missing}")
    problems = []
    for k in MYSTERIES:
        triple = answers[k]
        if not (isinstance(triple, tuple | list) and len(triple) == 3):
            problems.append(f"mystery trainer {k}: answer with (trap, signal, (update, value)), got {triple!r}")
            continue
        try:
            check_mystery(k, *triple)
        except AssertionError as error:
            problems.append(str(error))
    if problems:
        raise AssertionError("\n\n".join(problems))
    print(f"✓ bug hunt: all {len(MYSTERIES)} answers checked")


# -- for whoever maintains the course -------------------------------------------------------------

def indistinguishable(trap: str, mystery: Run, margin: float = MARGIN) -> list[str]:
    """The traps other than ``trap`` (and "no trap", if so) that the check could not tell apart from it on
    this mystery run with ``margin``: their replays are less than ``margin`` tolerances away from the mystery
    (:func:`distance`; empty for a sound mystery)."""
    expected = _signature(mystery, CHECKED_UPDATES)
    near = [other for other in (*TRAPS, None) if other != trap
            and distance(_replay(other, mystery, stop_beyond=margin), expected) < margin]
    return [other if other is not None else "no trap at all" for other in near]


def replay_elsewhere(trap: str | None, folder: str | Path, updates: int = CHECKED_UPDATES,
                     environment: dict[str, str] | None = None) -> np.ndarray:
    """The signature of the saved run in ``folder`` replayed with ``trap`` planted (as :func:`behaves_like`
    does, for ``updates`` updates) in a fresh Python whose torch rounds otherwise (``environment``, default
    :data:`OTHER_ROUNDING`): the drift a learner's machine may show, measured on this one."""
    code = ("import json, sys\n"
            "from pgcourse.rl.run import load\n"
            "from pgcourse.course.debugging import bug_hunt\n"
            "mystery = load(sys.argv[1], device='cpu')\n"
            "replay = bug_hunt._replay(sys.argv[2] or None, mystery, int(sys.argv[3]), stop_beyond=None)\n"
            "print(json.dumps(replay.tolist()))\n")
    package_root = str(Path(__file__).resolve().parents[3])
    python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, **(OTHER_ROUNDING if environment is None else environment), "PYTHONPATH": python_path}
    done = subprocess.run([sys.executable, "-c", code, str(folder), trap or "", str(updates)], env=env,
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"the replay under another rounding failed:\n{done.stderr[-2000:]}")
    return np.array(json.loads(done.stdout.strip().splitlines()[-1]), dtype=float).reshape(len(COMPARED), -1)


def write_mysteries(answers: dict[int, str], seeds: dict[int, int], folder: str | Path = MYSTERY_DIR,
                    total_steps: int | None = None,
                    specs: dict[int, dict[str, Any]] | None = None) -> list[Path]:
    """Train pool run ``k`` (a pool id) as ``specs[k]`` says (default :data:`MYSTERY_SPECS`; ``total_steps``
    replaces every budget) with trap ``answers[k]`` at seed ``seeds[k]``, for each ``k`` of ``answers``; check that
    pg.diagnose's first lead (:func:`first_lead`) is not the planted trap (diagnose alone must not settle it), that
    the check tells the planted trap from every other one and from no trap by :data:`MARGIN` tolerances, and that a
    replay of its own trap under another rounding (:func:`replay_elsewhere`) stays within ``1 / MARGIN``; save the
    runs to ``folder/<k>/`` with the trap's name removed from their config (``traps=()``). Nothing is written
    unless all of them are sound."""
    specs = MYSTERY_SPECS if specs is None else specs
    numbers = sorted(answers)
    if not numbers or not set(numbers) <= set(specs) or not set(numbers) <= set(seeds):
        raise ValueError(f"give an answer and a seed for pool runs among {tuple(sorted(specs))} (each with a spec), "
                         f"got answers for {tuple(numbers)} and seeds for {tuple(sorted(seeds))}")
    for k in numbers:
        if answers[k] not in TRAPS:
            raise ValueError(f"mystery trainer {k}: {answers[k]!r} is not a trap name; choose one of {sorted(TRAPS)}")
        if not answerable_signals(answers[k], specs[k]):
            raise ValueError(f"mystery trainer {k}: no signal of {answers[k]!r} (SHOWS_IN) is measured and able to move "
                             f"in a {specs[k]['algo']} run on {specs[k]['env_id']} with these settings, so no answer "
                             "could get the signal half right; choose another trap or setting")
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
        lead = first_lead(run)
        if lead == answers[k]:
            raise ValueError(f"pool run {k}: pg.diagnose's first lead names its trap at seed {seeds[k]}, so diagnose "
                             "alone would settle it; choose another trap or seed")
        if not behaves_like(answers[k], run):
            raise RuntimeError(f"mystery trainer {k}: a replay with its own trap does not match it; is training "
                               "deterministic on this machine?")
        twins = indistinguishable(answers[k], run)
        if twins:
            raise ValueError(f"mystery trainer {k}: the check cannot tell its trap from {twins} at seed {seeds[k]} "
                             f"(their first {CHECKED_UPDATES} updates are within {MARGIN:g} tolerances of the "
                             "mystery's); choose another trap or seed")
        runs[k] = run
    with tempfile.TemporaryDirectory() as scratch:
        for k in numbers:
            saved = runs[k].save(Path(scratch) / str(k))
            drift = distance(replay_elsewhere(answers[k], saved), _signature(runs[k], CHECKED_UPDATES))
            if drift > 1.0 / MARGIN:
                raise ValueError(f"mystery trainer {k}: replayed with its own trap under another rounding "
                                 f"({OTHER_ROUNDING}), it parts from itself by {drift:.2g} tolerances, more than "
                                 f"1/{MARGIN:g}: a right answer could fail on a learner's processor; choose another "
                                 "seed")
    return [runs[k].save(Path(folder) / str(k), overwrite=True) for k in numbers]
