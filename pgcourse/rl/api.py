"""``pg.train``: the one entry point the notebooks, the CLI and outside scripts use; ``pg.resume`` continues
a run where it stopped."""
from __future__ import annotations

import contextvars
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .algorithms import TRAINERS, Components, Hooks
from .algorithms.checkpoint import ResumePoint
from .algorithms.components import refuse_uncalled
from .config import ALGORITHMS, ConfigError, check_setting_names, config_from_dict, make_config
from .envs import action_space_kind, env_spaces
from .planted import plant
from .run import Run, as_run, save_target_problem

# what may change when a run is resumed: how long it trains and how it shows progress, never how it learns
RESUME_SETTINGS = ("total_steps", "max_episodes", "progress", "torch_threads")


def train(algo: str, env_id: str, seed: int | None = None, total_steps: int | None = None, device: str = "auto",
          live: Any = False, *, resume: Run | str | os.PathLike | None = None, checkpoint_every: int | None = None,
          checkpoint_dir: str | os.PathLike | None = None, log_dir: str | os.PathLike | None = None,
          **overrides: Any) -> Run:
    """Train ``algo`` on ``env_id`` and return the :class:`~pgcourse.rl.run.Run`.

    Args:
        algo: ``"reinforce"``, ``"reinforce_baseline"``, ``"a2c"``, ``"ppo"`` or ``"trpo"``.
        env_id: a gymnasium id with a ``Discrete`` or 1-D ``Box`` action space.
        seed: same seed on CPU gives the same run (history identical apart from wall times); None: 0,
            or the resumed run's seed.
        total_steps: env-step budget (None: the course default for this algorithm and action space).
        device: ``"auto"`` trains on the CPU (the course's runs are small and its environments step on the
            CPU: :mod:`pgcourse.rl.devices` says what was measured), unless the environment variable ``PGCOURSE_DEVICE``
            names a device; ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` ask for one. The choice and its
            reason are in ``run.device`` and ``run.device_reason``.
        live: in a notebook, redraw return, entropy, approx KL, clip fraction and explained variance
            every few updates while training runs, then leave a static figure
            (:class:`pgcourse.rl.live.LiveView`; pass a ``LiveView`` to choose where it draws). Not a
            hyperparameter: it is not saved in the config. The text progress bar is off unless asked for.
        resume: a run (or its folder) to continue from where it stopped: an interrupted run, a checkpoint,
            or a finished run given a larger ``total_steps``. It goes on with its own config, weights,
            optimiser states, random generators and environments, so the result equals one run that
            never stopped (on CPU, to the bit). Only ``total_steps``, ``max_episodes``, ``progress`` and
            ``torch_threads`` may change; replaced functions must be passed again.
        checkpoint_every: save the run, resumable, to ``checkpoint_dir`` every this many env steps (at
            the end of the update that reaches it) and when training ends. After a crash or a second
            Ctrl-C, ``resume=checkpoint_dir`` continues from the last checkpoint.
        checkpoint_dir: the folder checkpoints go to: new, empty, or the folder being resumed.
        log_dir: write the history as it grows to CSV files and TensorBoard event files in this
            folder (:class:`pgcourse.rl.loggers.TrainingLogger`; TensorBoard needs ``pgcourse[tensorboard]``).

    Ctrl-C while training stops after the current update and returns the run so far (status
    ``"interrupted"``, resumable), saying how to go on; a second Ctrl-C stops at once, keeping the
    weights of the last complete update (not resumable: resume from a checkpoint).
        **overrides: any field of the algorithm's config (see ``pgcourse.rl.config``), e.g. ``lr=1e-3``,
            ``gae_lambda=0.9``, ``progress=False``; or a function replacing a piece of the math,
            e.g. ``compute_gae=my_compute_gae`` (any field of :class:`~pgcourse.rl.algorithms.Components`);
            ``traps=("joint_grad_clip",)`` plants lesson 06's bugs (:mod:`pgcourse.rl.planted`).

    Raises:
        ConfigError: unknown setting (with a "did you mean" and the valid settings and replaceable
            functions listed), a value out of range, or an algorithm that cannot act in
            this environment's action space.
    """
    run = run_training(algo, env_id, seed, total_steps, device, live, resume=resume,
                       checkpoint_every=checkpoint_every, checkpoint_dir=checkpoint_dir, log_dir=log_dir, **overrides)
    if run.history.status.startswith("interrupted"):
        print(interruption_message(run, checkpoint_dir))
    return run


def run_training(algo: str, env_id: str, seed: int | None = None, total_steps: int | None = None,
                 device: str = "auto", live: Any = False, *, resume: Run | str | os.PathLike | None = None,
                 checkpoint_every: int | None = None, checkpoint_dir: str | os.PathLike | None = None,
                 log_dir: str | os.PathLike | None = None, **overrides: Any) -> Run:
    """:func:`train` without its message after Ctrl-C, for tools that report on their own (the CLI)."""
    if algo not in ALGORITHMS:
        raise ConfigError(f"algo={algo!r} is invalid: expected one of {ALGORITHMS}")
    if resume is not None:
        previous, state = _resumable(resume, algo, env_id, seed)
        seed = previous.config.seed
        log_dir, checkpoint_every, checkpoint_dir = _outputs_of_resumed(previous, log_dir, checkpoint_every,
                                                                        checkpoint_dir)
    elif seed is None:
        seed = 0
    _check_checkpointing(checkpoint_every, checkpoint_dir, resume)
    component_names = Components.names()
    check_setting_names(algo, overrides, replaceable=component_names)
    pieces = {name: overrides.pop(name) for name in list(overrides) if name in component_names}
    for name, fn in pieces.items():
        if not callable(fn):
            raise ConfigError(f"{name}={fn!r} is invalid: expected a function with the signature of "
                              f"pgcourse's reference {name}")
    env_kwargs = previous.config.env_kwargs if resume is not None else overrides.get("env_kwargs")
    _, action_space = env_spaces(env_id, env_kwargs)
    kind = action_space_kind(action_space)
    refuse_uncalled(algo, kind, pieces)
    if total_steps is not None:
        overrides["total_steps"] = total_steps
    if live:
        overrides.setdefault("progress", False)  # the live view has its own progress bar
    if resume is None:
        config = make_config(algo, env_id, kind, seed=seed, device=device, **overrides)
        start = None
    else:
        config = _resumed_config(previous, state, device, overrides)
        start = ResumePoint(previous, state)
    config, components, hooks = plant(config, Components(**pieces), Hooks())

    callbacks: list[Callable] = []
    view = logger = None
    if live:
        from .live import LiveView  # ipywidgets and matplotlib load only when a live view is asked for

        view = live if isinstance(live, LiveView) else LiveView(title=f"{algo} on {env_id} (seed {seed})")
        callbacks.append(view.update)
    if log_dir is not None:
        from .loggers import TrainingLogger, logged_rows

        if start is None and logged_rows(log_dir):
            raise ConfigError(f"log_dir {log_dir} already holds the logs of another run ({logged_rows(log_dir)} "
                              "rows); a new run's rows would not be written there. Choose a new folder, or resume "
                              "that run (pg.resume / pgcourse resume) to go on logging into it")
        logger = TrainingLogger(log_dir)
        callbacks.append(lambda trainer: logger.write(trainer.history))
    outputs = {name: value for name, value in (("log_dir", _absolute(log_dir)), ("checkpoint_every", checkpoint_every),
                                                ("checkpoint_dir", _absolute(checkpoint_dir))) if value is not None}
    if checkpoint_every is not None:
        callbacks.append(_Checkpoints(checkpoint_every, checkpoint_dir, start, outputs))

    def on_update(trainer: Any) -> None:
        for callback in callbacks:
            callback(trainer)

    if view is not None:
        view.show()
    try:
        run = TRAINERS[algo](config, components, hooks, on_update=on_update if callbacks else None, resume=start)
        run.outputs = outputs
        if logger is not None:
            logger.write(run.history)
    finally:
        if view is not None:
            view.close()
        if logger is not None:
            logger.close()
    if checkpoint_dir is not None and run.training_state is not None:
        run.save(checkpoint_dir, overwrite=True)  # the end of training is the last checkpoint
    return run


def resume(run: Run | str | os.PathLike, total_steps: int | None = None, **kwargs: Any) -> Run:
    """Continue ``run`` (a :class:`Run` or its folder) where it stopped: ``pg.train`` with the run's
    own algorithm, environment and seed and ``resume=run``. ``total_steps`` larger than the run's
    budget trains a finished run further. Other arguments as for :func:`train` (``checkpoint_every``,
    ``checkpoint_dir``, ``log_dir``, ``live``, ``progress``, ``device``)."""
    previous = as_run(run)
    return train(previous.config.algo, previous.config.env_id, total_steps=total_steps, resume=previous, **kwargs)


# what the messages call the outputs' settings: the Python arguments, or the CLI's options (in `pgcourse resume`)
_SETTING_NAMES = contextvars.ContextVar("pgcourse_setting_names",
                                        default={"log": "log_dir=", "every": "checkpoint_every=",
                                                 "dir": "checkpoint_dir="})
_CLI_NAMES = {"log": "--log-dir", "every": "--checkpoint-every", "dir": "--out"}


def resume_quietly(run: Run | str | os.PathLike, total_steps: int | None = None, **kwargs: Any) -> Run:
    """:func:`resume` without the message after Ctrl-C (the CLI's); its messages name the CLI's options."""
    previous = as_run(run)
    token = _SETTING_NAMES.set(_CLI_NAMES)
    try:
        return run_training(previous.config.algo, previous.config.env_id, total_steps=total_steps, resume=previous,
                            **kwargs)
    finally:
        _SETTING_NAMES.reset(token)


def interruption_message(run: Run, checkpoint_dir: str | os.PathLike | None = None) -> str:
    """What happened and what to do next, for a run whose training was interrupted."""
    steps = run.history.updates["env_step"]
    done = f"at env step {int(steps[-1]) if len(steps) else 0:,} of {run.config.total_steps:,}"
    if run.training_state is not None:
        return (f"training interrupted {done}: the run holds everything up to its last update. "
                "Continue it with pg.resume(run) (the same numbers as if it had never stopped), "
                "or keep it with run.save(folder).")
    where = (f"resume from the last checkpoint: pg.resume({str(checkpoint_dir)!r})" if checkpoint_dir is not None
             else "pass checkpoint_every= and checkpoint_dir= to be able to resume after a hard stop")
    return (f"training stopped at once {done} (second Ctrl-C): the run keeps the weights of its last complete "
            f"update but cannot be resumed exactly; {where}.")


def _resumable(resume: Run | str | os.PathLike, algo: str, env_id: str, seed: int | None) -> tuple[Run, dict]:
    """The run to resume and its training state, or a ConfigError saying why it cannot be resumed."""
    previous = as_run(resume)
    if not isinstance(previous, Run):
        raise ConfigError(f"resume={resume!r} is invalid: expected a run or the folder of a saved run")
    where = f"resume={str(resume)!r}" if isinstance(resume, (str, os.PathLike)) else "resume=run"
    config = previous.config
    if (algo, env_id) != (config.algo, config.env_id):
        raise ConfigError(f"{where} is {config.algo} on {config.env_id}, not {algo} on {env_id}: call "
                          f"pg.train({config.algo!r}, {config.env_id!r}, {where}) or pg.resume(...)")
    if seed is not None and seed != config.seed:
        raise ConfigError(f"{where} has seed {config.seed}; a resumed run keeps its seed (leave seed out)")
    if "joint_grad_clip" in config.traps:
        raise ConfigError(f"{where}: a run with the joint_grad_clip trap cannot be resumed (its planted optimiser "
                          "is not saved); train it again")
    state = previous.resume_state()
    if state is None:
        raise ConfigError(f"{where} cannot be resumed: it has no training state (saved by an older pgcourse, "
                          "or stopped inside an update by a second Ctrl-C: resume from its last checkpoint)")
    return previous, state


def _resumed_config(previous: Run, state: dict, device: str, overrides: dict[str, Any]) -> Any:
    """The resumed run's config: its own, with only :data:`RESUME_SETTINGS` changed."""
    changed = sorted(name for name in overrides if name not in RESUME_SETTINGS)
    if changed:
        raise ConfigError(f"a resumed run keeps its own settings; {', '.join(changed)} cannot change "
                          f"(only {', '.join(RESUME_SETTINGS)} can). Train a new run to change them.")
    config = config_from_dict({**previous.config.to_dict(), **overrides, "device": device})
    # Training stops at whichever budget is spent first (Trainer.done): a resume with either spent trains nothing.
    if config.total_steps <= state["env_step"]:
        raise ConfigError(f"the run has already trained {state['env_step']:,} of its total_steps="
                          f"{config.total_steps:,}: pass a larger total_steps (pgcourse resume --steps) to train "
                          "it further")
    if config.max_episodes is not None and config.max_episodes <= (played := len(previous.history.episodes)):
        raise ConfigError(f"the run has already played {played:,} of its max_episodes={config.max_episodes:,}: "
                          "pass a larger max_episodes (pgcourse resume --episodes) to train it further")
    return config


def _check_checkpointing(every: int | None, folder: str | os.PathLike | None,
                         resume: Run | str | os.PathLike | None) -> None:
    """Checkpoints go to a new or empty folder, or back into the folder of the run being resumed."""
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 1):
        raise ConfigError(f"checkpoint_every={every!r} is invalid: expected a number of env steps >= 1")
    if every is not None and folder is None:
        raise ConfigError("checkpoint_every needs checkpoint_dir=... (the folder the checkpoints are saved to)")
    if folder is None:
        return
    target = Path(folder).expanduser()
    problem = save_target_problem(target, overwrite=True, overwrite_flag="checkpointing")
    if problem is not None:
        raise ConfigError(f"checkpoint_dir: {problem}")
    holds_run = target.is_dir() and any(target.iterdir())
    if isinstance(resume, Run):
        resumed_from = resume.saved_training_state.parent if resume.saved_training_state is not None else None
        own = resume.outputs.get("checkpoint_dir")  # the folder this run checkpointed to holds its own checkpoint
    else:
        resumed_from = Path(resume).expanduser().resolve() if resume is not None else None
        own = None
    if holds_run and target.resolve() not in (resumed_from, Path(own) if own else None):
        raise ConfigError(f"checkpoint_dir {target} already holds a saved run; checkpoints would replace it. Choose "
                          f"a new folder, or resume that run (resume={str(folder)!r}) to checkpoint into it")


def _absolute(path: str | os.PathLike | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def _outputs_of_resumed(previous: Run, log_dir: Any, checkpoint_every: Any, checkpoint_dir: Any) -> tuple[Any, Any, Any]:
    """A resumed run goes on writing where it wrote (``previous.outputs``): its log folder unless ``log_dir`` is
    given, its checkpoint cadence and folder unless either checkpoint argument is given. One line on stderr
    says what was taken, so a resumed run never stops logging silently (nor starts unasked)."""
    taken, names = [], _SETTING_NAMES.get()
    recorded = previous.outputs
    if log_dir is None and recorded.get("log_dir"):
        log_dir = recorded["log_dir"]
        taken.append(f"logs to {log_dir}")
    if checkpoint_every is None and checkpoint_dir is None and recorded.get("checkpoint_every"):
        folder = Path(recorded.get("checkpoint_dir") or "")
        loaded_from = previous.saved_training_state.parent if previous.saved_training_state is not None else None
        if loaded_from is None or loaded_from == folder or not (folder.is_dir() and any(folder.iterdir())):
            checkpoint_every, checkpoint_dir = recorded["checkpoint_every"], str(folder)
            taken.append(f"a checkpoint every {checkpoint_every:,} env steps to {checkpoint_dir}")
        else:  # loaded from a copy: its checkpoint folder holds the original, which checkpoints would replace
            taken.append(f"no checkpoints (it checkpointed to {folder}, which holds another copy of it; pass "
                         f"{names['every']} and {names['dir']} to checkpoint this one)")
    if taken:
        print(f"resuming as the run trained: {' and '.join(taken)} (pass {names['log']} / {names['every']} and "
              f"{names['dir']} to change that)", file=sys.stderr)
    return log_dir, checkpoint_every, checkpoint_dir


class _Checkpoints:
    """The ``on_update`` callback that saves a checkpoint each time ``every`` more env steps are done."""

    def __init__(self, every: int, folder: str | os.PathLike, start: ResumePoint | None,
                 outputs: dict[str, Any] | None = None):
        self.every, self.folder, self.outputs = every, folder, outputs or {}
        done = int(start.state["env_step"]) if start is not None else 0
        self.next_at = (done // every + 1) * every

    def __call__(self, trainer: Any) -> None:
        if trainer.env_step >= self.next_at:
            trainer.run.outputs = self.outputs  # a checkpoint resumed later goes on writing where this run writes
            trainer.save_checkpoint(self.folder)
            while self.next_at <= trainer.env_step:
                self.next_at += self.every
