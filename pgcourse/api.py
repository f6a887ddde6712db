"""``pg.train``: the one entry point the notebooks, the CLI and outside scripts use."""
from __future__ import annotations

from typing import Any

from .algorithms import TRAINERS, Components, Hooks
from .config import ALGORITHMS, ConfigError, check_setting_names, make_config
from .envs import action_space_kind, env_spaces
from .planted import plant
from .run import Run


def train(algo: str, env_id: str, seed: int = 0, total_steps: int | None = None, device: str = "auto",
          live: Any = False, **overrides: Any) -> Run:
    """Train ``algo`` on ``env_id`` and return the :class:`~pgcourse.run.Run`.

    Args:
        algo: ``"reinforce"``, ``"reinforce_baseline"``, ``"a2c"`` or ``"ppo"``.
        env_id: a gymnasium id with a ``Discrete`` or 1-D ``Box`` action space.
        seed: same seed on CPU gives the same run (history identical apart from wall times).
        total_steps: env-step budget (None: the course default for this algorithm and action space).
        device: ``"auto"`` picks cuda, then mps, then cpu.
        live: in a notebook, redraw return, entropy, approx KL, clip fraction and explained variance
            every few updates while training runs, then leave a static figure
            (:class:`pgcourse.live.LiveView`; pass a ``LiveView`` to choose where it draws). Not a
            hyperparameter: it is not saved in the config. The text progress bar is off unless asked for.
        **overrides: any field of the algorithm's config (see ``pgcourse.config``), e.g. ``lr=1e-3``,
            ``gae_lambda=0.9``, ``progress=False``; or a function replacing a piece of the math,
            e.g. ``compute_gae=my_compute_gae`` (any field of :class:`~pgcourse.algorithms.Components`);
            ``traps=("joint_grad_clip",)`` plants lesson 06's bugs (:mod:`pgcourse.planted`).

    Raises:
        ConfigError: unknown setting (with a "did you mean" and the valid settings and replaceable
            functions listed), a value out of range, or an algorithm that cannot act in
            this environment's action space.
    """
    if algo not in ALGORITHMS:
        raise ConfigError(f"algo={algo!r} is invalid: expected one of {ALGORITHMS}")
    component_names = Components.names()
    check_setting_names(algo, overrides, replaceable=component_names)
    pieces = {name: overrides.pop(name) for name in list(overrides) if name in component_names}
    for name, fn in pieces.items():
        if not callable(fn):
            raise ConfigError(f"{name}={fn!r} is invalid: expected a function with the signature of "
                              f"pgcourse's reference {name}")
    _, action_space = env_spaces(env_id)
    kind = action_space_kind(action_space)
    if total_steps is not None:
        overrides["total_steps"] = total_steps
    if live:
        overrides.setdefault("progress", False)  # the live view has its own progress bar
    config = make_config(algo, env_id, kind, seed=seed, device=device, **overrides)
    config, components, hooks = plant(config, Components(**pieces), Hooks())
    if not live:
        return TRAINERS[algo](config, components, hooks)
    from .live import LiveView  # ipywidgets and matplotlib load only when a live view is asked for

    view = live if isinstance(live, LiveView) else LiveView(title=f"{algo} on {env_id} (seed {seed})")
    view.show()
    try:
        return TRAINERS[algo](config, components, hooks, on_update=view.update)
    finally:
        view.close()
