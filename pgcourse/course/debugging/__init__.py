"""The debugging chapter's toolbox (lesson 06), built on the planted bugs of :mod:`pgcourse.rl.planted`.

- ``signals.py``: ``pg.diagnose(run)``, the seven signals read from a run's history;
- ``experiments.py``: the reproduction table, the ablation of the flat-line PPO and one run per classic
  mistake, each a ``pg.sweep`` cached in ``figures/`` (``python -m pgcourse.course.debugging reproduce|experiments``);
- ``bug_hunt.py``: the mystery trainers (the practice six, or a hunt made for a student) and the check of the answers;
- ``evidence.py``: where a mystery first parts from its correct twin (an answer's evidence).

The registry (``TRAPS``, ``PRESETS``, ``describe``) and the buggy functions are re-exported here, so
``pg.traps.TRAPS`` and ``pg.traps.surrogate_ratio_from_probs`` read as the lesson uses them.
"""
from ...rl.planted import (BOX_ONLY, FLAT_LINE_TRAPS, PRESETS, TRAPS, describe, entropy_bonus_wrong_sign,
                           gae_truncation_as_termination, gaussian_log_prob_not_summed, plant,
                           surrogate_ratio_from_probs, validate_traps)
from ..views.plotting import moving_average
from .bug_hunt import MYSTERY_STEPS, check_bug_hunt, mystery_run
from .signals import SIGNALS, Diagnosis, Finding, diagnose, top_causes
from .experiments import (ABLATION, BUGGY_PPO, FIXED_PPO, MORE_TRAPS, REPRO_ALGOS, REPRO_SETTINGS, episodes_to,
                          experiment_sweeps, experiments, gradient_steps_per_100_episodes, load_experiments,
                          load_reproduction, plot_reproduction, reproduce, reproduction_arms, reproduction_table,
                          summarize_run, updates_per_100_episodes)

__all__ = ["BOX_ONLY", "FLAT_LINE_TRAPS", "PRESETS", "TRAPS", "describe", "entropy_bonus_wrong_sign",
           "gae_truncation_as_termination", "gaussian_log_prob_not_summed", "plant", "surrogate_ratio_from_probs",
           "validate_traps", "moving_average", "MYSTERY_STEPS", "SIGNALS", "check_bug_hunt", "mystery_run", "Diagnosis",
           "Finding", "diagnose", "top_causes", "ABLATION", "BUGGY_PPO", "FIXED_PPO", "MORE_TRAPS", "REPRO_ALGOS",
           "REPRO_SETTINGS", "episodes_to", "experiments", "gradient_steps_per_100_episodes", "plot_reproduction",
           "reproduce", "reproduction_table", "summarize_run", "updates_per_100_episodes", "experiment_sweeps",
           "load_experiments", "load_reproduction", "reproduction_arms"]
