"""Instant feedback for the course exercises: ``pg.checks.check_<exercise>(your_function)``.

A check runs your function on a set of cases (small hand-made ones and seeded random ones, with
the edge cases that matter: an episode ending mid-rollout, a time-limit truncation, a step that is
both terminated and truncated, T=1, one env and several, float64 inputs, inputs that require grad),
compares every result with the reference implementation in this package, and then either prints
one line (``✓ compute_gae: 13 cases passed``) or raises an ``AssertionError`` that names the
probable mistake and shows the smallest case that goes wrong, with what was expected, what your
function returned and where the two differ. When no known mistake explains it, the message says
what the function computes, in words: the checks never hand over the solution's code.

How a mistake gets its name: each check knows the classic wrong versions of its exercise and
computes them on the same cases. If your results agree with one of them on every case, the
message says which mistake that is.

If your function itself raises an exception, that is reported as a :class:`LearnerCodeError`
with your traceback: fix the crash first. ``NotImplementedError`` means the exercise is still a
stub and is reported as "not implemented yet".

``ALL_CHECKS`` maps each exercise name to its check, ``REFERENCES`` to the reference solution.

Where the checks live: ``harness`` has the shared machinery (``Exercise``, ``Mistake``, ``Case``,
running and comparing, the failure messages); each chapter's exercises are declared in their own
module, ``ch00_setup``, ``ch01_reinforce``, ``ch02_baseline``, ``ch03_a2c_gae``, ``ch04_ppo``,
``ch05_continuous``, ``ch06_traps`` (the bug hunt), ``ch07_trpo`` and ``ch08_lm``. Everything is re-exported here.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...rl import batching, envs
from . import ch00_setup, ch01_reinforce, ch02_baseline, ch03_a2c_gae, ch04_ppo, ch05_continuous, ch07_trpo, ch08_lm
from .ch00_setup import (COMPLETED_EPISODE_RETURNS, TRANSITION_MASK, check_completed_episode_returns,
                         check_play_episode, check_transition_mask)
from .ch01_reinforce import (ACTION_LOG_PROBS, DISCOUNTED_RETURNS, FIRST_EPISODE_LENGTHS, NORMALIZE, REINFORCE_LOSS,
                             check_action_log_probs, check_discounted_returns, check_first_episode_lengths,
                             check_normalize, check_reinforce_loss)
from .ch02_baseline import (BASELINE_ADVANTAGES, CATEGORICAL_ENTROPY, GRADIENT_VARIANCE, VALUE_LOSS,
                            check_baseline_advantages, check_categorical_entropy, check_fit_critic,
                            check_gradient_variance, check_value_loss)
from .ch03_a2c_gae import (A2C_POLICY_LOSS, COMPUTE_GAE, TD_ERRORS, check_a2c_policy_loss, check_compute_gae,
                           check_td_errors)
from .ch04_ppo import (APPROX_KL, CLIP_FRACTION, CLIPPED_SURROGATE_LOSS, EXPLAINED_VARIANCE, check_approx_kl,
                       check_clip_fraction, check_clipped_surrogate_loss, check_explained_variance,
                       check_minibatch_indices, check_ppo_epochs)
from .ch05_continuous import (ENV_ACTION, GAUSSIAN_ENTROPY, GAUSSIAN_LOG_PROB, LOG_SQRT_2PI, SQUASHED_LOG_PROB,
                              check_env_action, check_gaussian_entropy, check_gaussian_log_prob,
                              check_gaussian_policy_head, check_squashed_log_prob)
from .ch06_traps import check_bug_hunt, check_mystery, check_train_actor_critic
from .ch07_trpo import (CATEGORICAL_KL, check_categorical_kl, check_conjugate_gradient, check_fisher_vector_product,
                        check_line_search, check_trpo_step)
from .ch08_lm import (GROUP_RELATIVE_ADVANTAGES, KL_K1, KL_K3, MASKED_CLIPPED_LOSS, SEQUENCE_LOG_PROBS,
                      check_group_relative_advantages, check_kl_k1, check_kl_k3, check_masked_clipped_loss,
                      check_sequence_log_probs)
from .harness import (Case, Exercise, LearnerCodeError, Mistake, _check_case, _close, _make_check, _message,
                      _run)

_CHAPTERS = [ch00_setup, ch01_reinforce, ch02_baseline, ch03_a2c_gae, ch04_ppo, ch05_continuous, ch07_trpo, ch08_lm]

EXERCISES: dict[str, Exercise] = {ex.name: ex for chapter in _CHAPTERS for ex in chapter.EXERCISES}

ALL_CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    name: check for chapter in _CHAPTERS for name, check in chapter.CHECKS.items()}

REFERENCES: dict[str, Callable[..., Any]] = {
    **{name: ex.reference for name, ex in EXERCISES.items()},
    "minibatch_indices": batching.minibatch_indices,
    "fit_critic": ch02_baseline.reference_fit_critic,
    "ppo_epochs": ch04_ppo.reference_ppo_epochs,
    "gaussian_policy_head": ch05_continuous.reference_gaussian_policy_head,
    "play_episode": envs.play_episode,
    **ch07_trpo.REFERENCES,
}

__all__ = ["LearnerCodeError", "ALL_CHECKS", "REFERENCES", *(f"check_{name}" for name in ALL_CHECKS)]
__all__ += ["check_trpo_step"]  # chapter 07's assembly exercise: one TRPO update on a real CartPole batch

# The write-the-loop exercises (lesson 01's REINFORCE loop, 04b's PPO from scratch): stage checks of the learner's
# own rollout, update and training loop against the package's loops (``stages``, ``ch01_loop``, ``ch04b_ppo_loop``).
from . import ch01_loop, ch04b_ppo_loop  # noqa: E402
from .ch01_loop import check_collect_episodes, check_reinforce_update, check_train_reinforce  # noqa: E402
from .ch04b_ppo_loop import (check_advantages_and_returns, check_collect_rollout, check_ppo_update, check_train_ppo)  # noqa: E402

STAGE_CHECKS: dict[str, Callable[..., Any]] = {**ch01_loop.STAGE_CHECKS, **ch04b_ppo_loop.STAGE_CHECKS}
STAGE_REFERENCES: dict[str, Callable[..., Any]] = {**ch01_loop.REFERENCES, **ch04b_ppo_loop.REFERENCES}
__all__ += ["STAGE_CHECKS", *(f"check_{name}" for name in STAGE_CHECKS)]

# Chapter 08's GRPO update, checked by a short fine-tuning run (``ch08_lm.check_grpo_update``).
from .ch08_lm import check_grpo_update  # noqa: E402

__all__ += ["check_grpo_update"]

# A check run in the notebook runs the learner's function under the grader's rules (pgcourse.course.checks.rules): the
# course package's own answers are unavailable to it, so the notebook shows the verdict `pgcourse grade` gives.
# Not chapter 08's check_grpo_update, which is not graded (its check fine-tunes with pgcourse.rl.lm).
from . import rules  # noqa: E402

__all__ += ["check_train_actor_critic"]  # chapter 06 Part B's loop: graded, so it runs under the rules too
for _name in sorted({name for name in __all__ if name.startswith("check_") and name != "check_grpo_update"}):
    globals()[_name] = rules.under_grading_rules(globals()[_name])
del _name
ALL_CHECKS = {name: globals()[f"check_{name}"] for name in ALL_CHECKS}
STAGE_CHECKS = {name: globals()[f"check_{name}"] for name in STAGE_CHECKS}
