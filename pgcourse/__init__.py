"""pgcourse: the policy-gradient code behind the course (REINFORCE -> A2C/GAE -> PPO).

Where things live (layers import only downward; docs/architecture.md has the diagram):
    math        pgcourse.returns      discounted_returns, normalize, td_errors, compute_gae  (GAE is here)
                pgcourse.losses       reinforce_loss, a2c_policy_loss, clipped_surrogate_loss, value_loss, ...
                pgcourse.diagnostics  approx_kl, clip_fraction, explained_variance, grad_norm
                pgcourse.batching     minibatch_indices
                pgcourse.stats        IQM, optimality gap, stratified-bootstrap intervals, P(improvement), curves
                pgcourse.agreement    a re-run against a cache: bit for bit, within tolerance, inside the spread
    parts       pgcourse.envs, .networks, .config, .history
    runs        pgcourse.run (Run, save, load), pgcourse.evaluation (evaluate)
    training    pgcourse.algorithms   reinforce.py, a2c.py, ppo.py: one loop each; components.py: the math they
                                      call (replaceable); trainer.py: plumbing and named hooks; rollout.py;
                                      checkpoint.py, interrupts.py: Ctrl-C, checkpoints, resuming exactly
                pgcourse.planted      lesson 06's planted bugs; pgcourse.api: pg.train, pg.resume
                pgcourse.many         pg.train_many: many seeds as one batch (algorithms/ppo_many.py, stacked.py)
    course      pgcourse.plotting, .render, .live, .widgets, .checks, .traps (diagnose, experiments, bug hunt)
                pgcourse.sweeps       pg.sweep: grids x seeds on a process pool or Ray, resumable, verified
                pgcourse.claims       pg.claim: a lesson's sentence checked against the numbers beside it
    classroom   pgcourse.grading, pgcourse.exercisegen, pgcourse.notebook_format
                pgcourse.colab_cells, pgcourse.colab   "Open in Colab": the cells, the set-up that keeps Colab's torch
                pgcourse.course_files  pg.figures_dir: the course's files with or without an editable install
    commands    pgcourse.cli, pgcourse.bench
"""
from __future__ import annotations

from . import agreement, concepts, devices, diagnostics, losses, returns  # concepts: imported eagerly, the grader preloads it
from .algorithms import Components, NonFiniteError
from .api import resume, train
from .many import train_many
from .batching import minibatch_indices
from .claims import ClaimError, claim
from .config import A2CConfig, BaseConfig, ConfigError, PPOConfig, ReinforceConfig
from .diagnostics import approx_kl, clip_fraction, explained_variance
from .evaluation import EvalResult, evaluate
from .history import History
from .hints import hint
from .losses import clipped_surrogate_loss, gaussian_log_prob, reinforce_loss, value_loss
from .returns import compute_gae, discounted_returns, normalize
from .devices import choose_device, resolve_device
from .run import Run, RunLoadError, load

from ._version import __version__
from .course_files import figures_dir


def rollout_gif(*args, **kwargs):
    """Write a looping GIF of the run playing an episode (see :func:`pgcourse.render.rollout_gif`)."""
    from .render import rollout_gif as _rollout_gif
    return _rollout_gif(*args, **kwargs)


def diagnose(*args, **kwargs):
    """Read a run's history and name the unhealthy signals; returns a list of findings that displays itself
    as the report (``print`` it in a script; see :func:`pgcourse.traps.signals.diagnose`)."""
    from .traps.signals import diagnose as _diagnose
    return _diagnose(*args, **kwargs)


def sweep(*args, **kwargs):
    """Train a grid of settings x seeds in parallel, resumably (see :func:`pgcourse.sweeps.sweep`)."""
    from .sweeps import sweep as _sweep
    return _sweep(*args, **kwargs)


def plot_sweep(*args, **kwargs):
    """Curves with bootstrap bands and interval estimates of a sweep (see :func:`pgcourse.sweeps.plot_sweep`)."""
    from .sweeps import plot_sweep as _plot_sweep
    return _plot_sweep(*args, **kwargs)


def show_gif(*args, **kwargs):
    """Display a GIF inline in a notebook (see :func:`pgcourse.render.show_gif`)."""
    from .render import show_gif as _show_gif
    return _show_gif(*args, **kwargs)


_LAZY_SUBMODULES = {"checks", "plotting", "render", "bench", "cli", "exercisegen", "traps", "envs", "networks",
                    "config", "algorithms", "widgets", "grading", "live", "planted", "notebook_format",
                    "stats", "sweeps", "lm"}


def __getattr__(name: str):
    """``pg.checks``, ``pg.plotting``, ``pg.render``, … are imported on first use (keeps ``import pgcourse`` fast)."""
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'pgcourse' has no attribute {name!r}")


__all__ = ["train", "resume", "load", "evaluate", "rollout_gif", "show_gif", "Run", "History", "EvalResult",
           "Components",
           "ConfigError", "RunLoadError", "NonFiniteError", "BaseConfig", "ReinforceConfig", "A2CConfig", "PPOConfig",
           "discounted_returns", "normalize", "compute_gae", "reinforce_loss", "clipped_surrogate_loss", "value_loss",
           "gaussian_log_prob", "approx_kl", "clip_fraction", "explained_variance", "minibatch_indices",
           "resolve_device", "choose_device", "devices", "returns", "losses", "diagnostics", "diagnose", "sweep", "plot_sweep", "claim",
           "ClaimError", "hint", "figures_dir"]
