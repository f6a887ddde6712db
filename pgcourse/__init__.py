"""pgcourse: the policy-gradient code behind the course (REINFORCE -> A2C/GAE -> PPO -> TRPO -> language models).

Three folders, one per product (docs/architecture.md lists every module; tests/test_architecture.py holds the
rules: a folder imports only from itself and the folders below it, rl < course < classroom; anything may import
classroom/sandboxed, which imports nothing of pgcourse):
    pgcourse.rl         the RL library a learner reads: returns.py (GAE is here), losses.py, diagnostics.py,
                        batching.py, envs.py, tensor_envs.py, networks.py, config.py, run.py, history.py,
                        algorithms/ (one loop per algorithm; A2C and PPO with an agent axis), api.py (pg.train,
                        pg.resume), many.py (pg.train_many), planted.py (lesson 06's bugs), lm/ (chapter 08)
    pgcourse.course     the teaching tools: checks/, hints, concepts, claims, debugging/ (pg.diagnose, the bug
                        hunt, probes), views/ (plots, GIFs, widgets), sweeps/ (pg.sweep), stats, tabular
    pgcourse.classroom  grading/ (pgcourse grade), handout, exercisegen, notebook_format, and sandboxed/: the code
                        that runs inside the grader's sandbox (imports nothing of pgcourse)
    at the root         cli.py and bench/ (the commands), colab.py (Colab's set-up, run before the install),
                        _moved.py (the import paths of before the folders, pgcourse.returns, pgcourse.algorithms.ppo,
                        pgcourse.traps..., keep working for code written against them)
"""
from __future__ import annotations

from . import _moved

_moved.install()  # before anything else: the old import paths (pgcourse.returns, ...) name the moved modules

from .course import concepts  # concepts: imported eagerly, the grader preloads it
from .rl import agreement, devices, diagnostics, distributions, losses, returns
from .rl.algorithms import Components, NonFiniteError
from .rl.api import resume, train
from .rl.many import train_many
from .rl.batching import minibatch_indices
from .course.claims import ClaimError, claim
from .rl.config import A2CConfig, BaseConfig, ConfigError, PPOConfig, ReinforceConfig
from .rl.diagnostics import approx_kl, clip_fraction, explained_variance
from .rl.evaluation import EvalResult, evaluate
from .rl.history import History
from .course.hints import hint
from .rl.distributions import gaussian_log_prob
from .rl.losses import clipped_surrogate_loss, reinforce_loss, value_loss
from .rl.returns import compute_gae, discounted_returns, normalize
from .rl.devices import choose_device, resolve_device
from .rl.run import Run, RunLoadError, load

from ._version import __version__
from .rl.course_files import figures_dir


def rollout_gif(*args, **kwargs):
    """Write a looping GIF of the run playing an episode (see :func:`pgcourse.course.views.render.rollout_gif`)."""
    from .course.views.render import rollout_gif as _rollout_gif
    return _rollout_gif(*args, **kwargs)


def diagnose(*args, **kwargs):
    """Read a run's history and name the unhealthy signals; returns a list of findings that displays itself
    as the report (``print`` it in a script; see :func:`pgcourse.course.debugging.signals.diagnose`)."""
    from .course.debugging.signals import diagnose as _diagnose
    return _diagnose(*args, **kwargs)


def sweep(*args, **kwargs):
    """Train a grid of settings x seeds in parallel, resumably (see :func:`pgcourse.course.sweeps.sweep`)."""
    from .course.sweeps import sweep as _sweep
    return _sweep(*args, **kwargs)


def plot_sweep(*args, **kwargs):
    """Curves with bootstrap bands and interval estimates of a sweep (see :func:`pgcourse.course.sweeps.plot_sweep`)."""
    from .course.sweeps import plot_sweep as _plot_sweep
    return _plot_sweep(*args, **kwargs)


def show_gif(*args, **kwargs):
    """Display a GIF inline in a notebook (see :func:`pgcourse.course.views.render.show_gif`)."""
    from .course.views.render import show_gif as _show_gif
    return _show_gif(*args, **kwargs)


# pg.<name> -> the module, imported on first use (pg.traps is the debugging chapter's toolbox, course/debugging)
_LAZY_SUBMODULES = {
    **{name: f"rl.{name}" for name in ("envs", "networks", "config", "algorithms", "live", "planted", "lm")},
    **{name: f"course.{name}" for name in ("checks", "stats", "sweeps", "tabular")},
    **{name: f"course.views.{name}" for name in ("plotting", "render", "widgets")},
    "traps": "course.debugging", "grading": "classroom.grading", "exercisegen": "classroom.exercisegen",
    "notebook_format": "classroom.notebook_format", "bench": "bench", "cli": "cli"}


def __getattr__(name: str):
    """``pg.checks``, ``pg.plotting``, ``pg.render``, … are imported on first use (keeps ``import pgcourse`` fast)."""
    if name in _LAZY_SUBMODULES or name in _moved.MOVED:  # pg.hints, pg.history...: any module of before the folders
        import importlib

        return importlib.import_module(f"{__name__}.{_LAZY_SUBMODULES.get(name) or _moved.MOVED[name]}")
    raise AttributeError(f"module 'pgcourse' has no attribute {name!r}")


__all__ = ["train", "resume", "load", "evaluate", "rollout_gif", "show_gif", "Run", "History", "EvalResult",
           "Components",
           "ConfigError", "RunLoadError", "NonFiniteError", "BaseConfig", "ReinforceConfig", "A2CConfig", "PPOConfig",
           "discounted_returns", "normalize", "compute_gae", "reinforce_loss", "clipped_surrogate_loss", "value_loss",
           "gaussian_log_prob", "approx_kl", "clip_fraction", "explained_variance", "minibatch_indices",
           "resolve_device", "choose_device", "devices", "returns", "losses", "diagnostics", "diagnose", "sweep", "plot_sweep", "claim",
           "ClaimError", "hint", "figures_dir"]
