"""``pg.train_many``: many seeds of one algorithm trained as one batch, one ordinary :class:`Run` per seed."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .algorithms import TRAINERS, Components, Hooks
from .algorithms.components import refuse_uncalled
from .api import _Checkpoints, _check_checkpointing
from .config import ConfigError, check_setting_names, make_config
from .planted import plant
from .envs import action_space_kind, env_spaces
from .run import Run

# what every agent of a batch must share: the shapes of its tensors and the loop's structure
SHARED_SETTINGS = ("env_id", "env_kwargs", "env_backend", "num_envs", "n_steps", "hidden_sizes", "update_epochs",
                   "normalize_advantages", "normalize_per_minibatch", "device", "torch_threads",
                   "adam_eps")  # (one Adam steps the agents' stacked weights: its epsilon is one number)
BATCHED_ALGORITHMS = ("a2c", "ppo")  # the loops with an agent axis (algorithms/agents.py)
UNBATCHED_TRAPS = ("log_prob_not_summed",)  # its bug is a [B, B] broadcast over one agent's rows


def train_many(algo: str, env_id: str, seeds: Sequence[int], total_steps: int | None = None, device: str = "auto",
               live: Any = False, *,
               per_agent: Mapping[str, Sequence[Any]] | None = None, log_dir: str | os.PathLike | None = None,
               checkpoint_every: int | None = None, checkpoint_dir: str | os.PathLike | None = None,
               **overrides: Any) -> list[Run]:
    """Train one agent per seed as one batch (stacked weights ``[A, ...]``); returns one :class:`Run` per seed.

    Each run is what ``pg.train(algo, env_id, seed=s, **overrides)`` returns: config with its seed, its own
    policy and critic weights, a history with the same columns, normaliser state, resumable with
    ``pg.resume``; ``Run.save`` / ``pg.load``, ``pg.stats`` and the plots take it unchanged. Each agent's envs,
    initial weights, action draws and minibatch permutations come from its own seed, its Adam state, gradient
    clipping, learning-rate annealing, advantage normalisation, KL early stopping and normalisers are its own:
    changing one agent's seed leaves the other agents' runs bit for bit the same.

    How close an agent's run is to ``pg.train``'s: one seed (A = 1) is trained by ``pg.train``'s loop, its run bit for bit.
    With other agents the batched matrix products round some rows differently, so an agent follows its
    ``pg.train`` run to float rounding (losses within about 1e-7 over the first updates) and then drifts as
    two runs that differ in rounding do; its learning is the same (``pgcourse bench`` measures ten seeds both
    ways). ``wall_time`` in a history is the batch's clock (the agents train together).

    The same loop as ``pg.train`` (``algorithms/ppo.py``, ``a2c.py``) with one more axis, the agent's, and what
    ``pg.train`` offers around it: numpy or torch envs (``env_backend``; with torch envs, and with numpy CartPole
    without normalisation, the agents' ``A x N`` sub-environments are one vector env, each agent's block seeded with
    its seed, stepped once a step), any device,
    the live view (every agent's curves), ``log_dir`` and checkpoints (each agent's in a folder of its own), and
    lesson 06's planted traps (``traps=`` for every agent, or ``per_agent={"traps": [...]}``: a fixed and a buggy
    run side by side; each agent's run is its ``pg.train`` run with its traps, to rounding).

    Ctrl-C: the first press stops every agent after the batched update it is in and returns the runs, each with
    status ``"interrupted"`` and resumable with ``pg.resume`` (on its own, as a single-agent run); a second press
    stops at once and returns nothing (``KeyboardInterrupt``).

    Args:
        algo: ``"ppo"`` or ``"a2c"`` (the loops with an agent axis; REINFORCE and TRPO train one agent).
        env_id: as for ``pg.train``.
        seeds: one agent per seed.
        live: in a notebook, redraw every agent's return, entropy, KL, clip fraction and explained variance while
            training runs, one line per agent (:class:`~pgcourse.rl.live.LiveView`; or pass one).
        total_steps, device, **overrides: as for ``pg.train``, for every agent (``replaceable functions``
            too: any field of :class:`~pgcourse.rl.algorithms.Components`).
        per_agent: settings that differ between agents, each a sequence of one value per seed, e.g.
            ``per_agent={"lr": [1e-3, 3e-4]}``. Scalars only: the shapes and the loop's structure
            (``SHARED_SETTINGS``: env, env backend, number of envs, rollout length, network sizes, epochs, advantage
            normalisation, device, Adam's epsilon) are the batch's.
        log_dir: write each agent's history as it grows (CSV and TensorBoard, as ``pg.train``'s ``log_dir``) to
            ``log_dir/agent<a>_seed<seed>``; a resumed run goes on logging there.
        checkpoint_every, checkpoint_dir: save each agent's run, resumable on its own (``pg.resume(folder)``, as a
            ``pg.train`` run), to ``checkpoint_dir/agent<a>_seed<seed>`` every this many of its env steps and at the
            end.

    Raises:
        ConfigError: an algorithm without a batched loop, no seeds, a per-agent list of the wrong length, a
            shared setting given per agent, or any error ``pg.train`` would raise for one agent's config.
    """
    if algo not in BATCHED_ALGORITHMS:
        raise ConfigError(f"algo={algo!r} has no batched loop: train_many trains {BATCHED_ALGORITHMS}; "
                          f"train {algo} one seed at a time with pg.train or pg.sweep")
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ConfigError("seeds=[] is invalid: expected at least one seed")
    per_agent = dict(per_agent or {})
    for name, values in per_agent.items():
        if name in SHARED_SETTINGS:
            raise ConfigError(f"per_agent[{name!r}] is invalid: {name} shapes the batch's tensors and is the same "
                              f"for every agent; train different values in separate train_many calls")
        if isinstance(values, (str, bytes)) or len(values) != len(seeds):
            raise ConfigError(f"per_agent[{name!r}] is invalid: expected one value per seed ({len(seeds)}), "
                              f"got {values!r}")
    if "seed" in overrides or "seed" in per_agent:
        raise ConfigError(f"seed= is invalid in train_many: each agent's seed is an entry of seeds= (got seeds={seeds})")
    component_names = Components.names()
    check_setting_names(algo, {**overrides, **per_agent}, replaceable=component_names)
    pieces = {name: overrides.pop(name) for name in list(overrides) if name in component_names}
    _, action_space = env_spaces(env_id, overrides.get("env_kwargs"))
    kind = action_space_kind(action_space)
    refuse_uncalled(algo, kind, pieces)
    if total_steps is not None:
        overrides["total_steps"] = total_steps
    if live:
        overrides.setdefault("progress", False)  # the live view has its own progress bar
    configs = [make_config(algo, env_id, kind, seed=seed, device=device, **overrides,
                           **{name: values[agent] for name, values in per_agent.items()})
               for agent, seed in enumerate(seeds)]
    configs, components, hooks = _planted(configs, Components(**pieces))
    configs[0].check_rollout_memory(agents=len(seeds))  # the agents' rollouts are one batch in memory
    folders = [None if checkpoint_dir is None else Path(checkpoint_dir).expanduser() / f"agent{a}_seed{seed}"
               for a, seed in enumerate(seeds)]
    for folder in folders:  # checked before any folder is made
        _check_checkpointing(checkpoint_every, folder, None)
    loggers = _loggers(log_dir, seeds)
    outputs = [{name: str(Path(value).resolve()) if name != "checkpoint_every" else value for name, value in
                (("log_dir", loggers[a].log_dir if loggers else None), ("checkpoint_every", checkpoint_every),
                 ("checkpoint_dir", folders[a])) if value is not None} for a in range(len(seeds))]
    callbacks = [[] for _ in seeds]
    for a, logger in enumerate(loggers):
        callbacks[a].append(lambda trainer, logger=logger: logger.write(trainer.history))
    if checkpoint_every is not None:
        for a, folder in enumerate(folders):
            callbacks[a].append(_Checkpoints(checkpoint_every, folder, None, outputs[a]))
    view = None
    if live:
        from .live import LiveView  # ipywidgets and matplotlib load only when a live view is asked for

        view = live if isinstance(live, LiveView) else LiveView(title=f"{algo} on {env_id} ({len(seeds)} seeds)")
        for calls in callbacks:
            calls.append(view.update)
        view.show()
    try:
        runs = TRAINERS[algo](configs, components, hooks, on_update=[
            (lambda trainer, calls=calls: [call(trainer) for call in calls]) for calls in callbacks]
            if any(callbacks) else None)
        for a, run in enumerate(runs):
            run.outputs = outputs[a]
            if loggers:
                loggers[a].write(run.history)
            if folders[a] is not None and run.training_state is not None:
                run.save(folders[a], overwrite=True)  # the end of training is the last checkpoint
    finally:
        if view is not None:
            view.close()
        for logger in loggers:
            logger.close()
    if any(run.history.status == "interrupted" for run in runs):
        steps = [int(run.history.updates["env_step"][-1]) if len(run.history.updates) else 0 for run in runs]
        print(f"training interrupted: every agent stopped after the same batched update (env steps {min(steps):,} to "
              f"{max(steps):,} of {configs[0].total_steps:,}). Each run can be continued on its own with "
              f"pg.resume(run) (as a single-agent run), or kept with run.save(folder).")
    return runs


def _loggers(log_dir: str | os.PathLike | None, seeds: list[int]) -> list:
    """One :class:`~pgcourse.rl.loggers.TrainingLogger` per agent, in ``log_dir/agent<a>_seed<seed>`` (none without
    ``log_dir``); a folder that already holds logs is refused, as ``pg.train`` refuses it."""
    if log_dir is None:
        return []
    from .loggers import TrainingLogger, logged_rows

    if Path(log_dir).expanduser().exists() and not Path(log_dir).expanduser().is_dir():
        raise ConfigError(f"log_dir {log_dir} is a file: expected a folder (new, or holding other runs' logs), where "
                          "each agent's logs go to agent<a>_seed<seed>")
    folders = [Path(log_dir).expanduser() / f"agent{a}_seed{seed}" for a, seed in enumerate(seeds)]
    taken = [str(folder) for folder in folders if logged_rows(folder)]
    if taken:
        raise ConfigError(f"log_dir {log_dir} already holds the logs of other runs ({', '.join(taken)}); a new run's "
                          "rows would not be written there. Choose a new folder")
    return [TrainingLogger(folder) for folder in folders]


def _planted(configs: list, components: Components) -> tuple[list, list[Components] | Components, list | None]:
    """The agents' configs, components and hooks with each agent's ``traps`` planted (lesson 06's bugs,
    :func:`~pgcourse.rl.planted.plant`; ``traps=`` for all agents or ``per_agent={"traps": [...]}``), those that
    replace a step of the loop (its optimiser step, its action sampling, its pi_old) included: the batched loop
    takes each agent's hooks. Refused: a trap whose preset changes a setting that shapes the batch for some agents
    only, and ``log_prob_not_summed`` with more than one agent (its bug is a broadcast over one agent's rows)."""
    if not any(config.traps for config in configs):
        return configs, components, None
    if len(configs) > 1 and any(set(UNBATCHED_TRAPS) & set(config.traps) for config in configs):
        raise ConfigError("traps=('log_prob_not_summed',) in train_many: its log-probs [B, D] broadcast against "
                          "pi_old's [B] into a [B, B] matrix on one agent's rows, a shape a batch of agents does not "
                          "have; train it one seed at a time with pg.train (or train_many with one seed)")
    planted = [plant(config, components, Hooks()) for config in configs]
    configs = [config for config, _, _ in planted]
    for name in SHARED_SETTINGS:
        values = [getattr(config, name, None) for config in configs]
        if any(value != values[0] for value in values):
            raise ConfigError(f"per_agent['traps'] is invalid here: the agents' traps set {name} to {values} (a "
                              f"trap's preset), but {name} shapes the batch and is the same for every agent; train "
                              f"those traps in separate train_many calls")
    return configs, [pieces for _, pieces, _ in planted], [hooks for _, _, hooks in planted]
