"""The replaceable math of the training loops: every exercise function that has a role in training.

``pg.train("a2c", "CartPole-v1", td_errors=my_td_errors)`` trains with the learner's function in place
of the reference: the loops call nothing else for that step. Each field has the signature (and the
meaning) of the reference function it defaults to; the exercise notebooks re-implement them.

=========================  ==============================  =============================================
field                      reference                       where the loops call it
=========================  ==============================  =============================================
``transition_mask``        ``envs.transition_mask``        rollout: which steps are real transitions
``env_action``             ``distributions.env_action``           rollout: the copy of a Box action sent to env
``action_log_probs``       ``distributions.categorical_log_prob`` sampling and update, Discrete actions
``gaussian_log_prob``      ``distributions.gaussian_log_prob``    sampling and update, Box actions
``categorical_entropy``    ``distributions.categorical_entropy``  update, Discrete actions
``gaussian_entropy``       ``distributions.gaussian_entropy``     update, Box actions
``discounted_returns``     ``returns.discounted_returns``  REINFORCE: G_t of each episode
``baseline_advantages``    ``returns.baseline_advantages`` REINFORCE with baseline: G_t - V(s_t)
``td_errors``              ``returns.td_errors``           A2C / PPO: the deltas inside ``compute_gae``
``compute_gae``            ``returns.compute_gae``         A2C / PPO: advantages
``normalize``              ``returns.normalize``           advantages / REINFORCE weights
``reinforce_loss``         ``losses.reinforce_loss``       REINFORCE actor loss
``a2c_policy_loss``        ``losses.a2c_policy_loss``      A2C actor loss (with its entropy bonus)
``clipped_surrogate_loss`` ``losses.clipped_surrogate_loss`` PPO actor loss
``entropy_bonus_loss``     ``losses.entropy_bonus_loss``   REINFORCE / PPO entropy term
``value_loss``             ``losses.value_loss``           every critic
``minibatch_indices``      ``batching.minibatch_indices``  PPO epochs
``approx_kl``              ``diagnostics.approx_kl``       PPO: logged, and ``target_kl`` early stop
``clip_fraction``          ``diagnostics.clip_fraction``   PPO: logged
``explained_variance``     ``diagnostics.explained_variance`` every critic: logged
=========================  ==============================  =============================================

``td_errors`` and ``compute_gae``: the reference ``compute_gae`` builds on ``td_errors``. Replace only
``td_errors`` and the reference GAE runs on your deltas; replace ``compute_gae`` and your GAE runs
(on whatever deltas it computes itself).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, fields

from .. import batching, diagnostics, distributions, envs, losses, returns
from ..config import ConfigError


# Which fields each algorithm's loop calls (a test spies on every one of them in short runs). A function passed for
# a field its loop never calls would be ignored without a word, so ``pg.train`` refuses it by name.
_DISCRETE_ONLY = frozenset({"action_log_probs", "categorical_entropy"})
_BOX_ONLY = frozenset({"env_action", "gaussian_log_prob", "gaussian_entropy"})
_ACTOR_CRITIC = frozenset({"transition_mask", "td_errors", "compute_gae", "normalize", "value_loss",
                           "explained_variance"})
_CALLED_BY_ALGORITHM = {
    "reinforce": frozenset({"discounted_returns", "normalize", "reinforce_loss", "entropy_bonus_loss"}),
    "reinforce_baseline": frozenset({"discounted_returns", "baseline_advantages", "normalize", "reinforce_loss",
                                     "entropy_bonus_loss", "value_loss", "explained_variance"}),
    "a2c": _ACTOR_CRITIC | {"a2c_policy_loss"},
    "ppo": _ACTOR_CRITIC | {"clipped_surrogate_loss", "entropy_bonus_loss", "minibatch_indices", "approx_kl",
                            "clip_fraction"},
    "trpo": _ACTOR_CRITIC | {"minibatch_indices"},
}


def called_by(algo: str, action_kind: str) -> set[str]:
    """The fields of :class:`Components` that ``algo``'s loop calls on ``action_kind`` ("discrete" or
    "continuous") actions (``td_errors`` through the reference ``compute_gae``)."""
    return set(_CALLED_BY_ALGORITHM[algo] | (_DISCRETE_ONLY if action_kind == "discrete" else _BOX_ONLY))


def refuse_uncalled(algo: str, action_kind: str, pieces: dict[str, Callable]) -> None:
    """Raise ConfigError for a replaced function that ``algo``'s loop never calls (it would be silently ignored)."""
    called = called_by(algo, action_kind)
    for name in sorted(set(pieces) - called):
        actions = "Discrete" if action_kind == "discrete" else "Box"
        raise ConfigError(f"{name}=... is invalid here: {algo}'s loop never calls {name} on {actions} actions, so "
                          f"your function would be ignored without a word. On {actions} actions {algo} calls: "
                          f"{', '.join(sorted(called))}")


@dataclass(frozen=True)
class Components:
    """The math the training loops call; any field can be the learner's function (see the module table)."""

    transition_mask: Callable = envs.transition_mask
    env_action: Callable = distributions.env_action
    action_log_probs: Callable = distributions.categorical_log_prob
    gaussian_log_prob: Callable = distributions.gaussian_log_prob
    categorical_entropy: Callable = distributions.categorical_entropy
    gaussian_entropy: Callable = distributions.gaussian_entropy
    discounted_returns: Callable = returns.discounted_returns
    baseline_advantages: Callable = returns.baseline_advantages
    td_errors: Callable = returns.td_errors
    compute_gae: Callable = returns.compute_gae
    normalize: Callable = returns.normalize
    reinforce_loss: Callable = losses.reinforce_loss
    a2c_policy_loss: Callable = losses.a2c_policy_loss
    clipped_surrogate_loss: Callable = losses.clipped_surrogate_loss
    entropy_bonus_loss: Callable = losses.entropy_bonus_loss
    value_loss: Callable = losses.value_loss
    minibatch_indices: Callable = batching.minibatch_indices
    approx_kl: Callable = diagnostics.approx_kl
    clip_fraction: Callable = diagnostics.clip_fraction
    explained_variance: Callable = diagnostics.explained_variance

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    def gae(self) -> Callable:
        """The GAE the loops run: ``compute_gae``, fed by ``td_errors`` when only the deltas were replaced."""
        if self.compute_gae is returns.compute_gae and self.td_errors is not returns.td_errors:
            return functools.partial(returns.compute_gae, td_errors_fn=self.td_errors)
        return self.compute_gae

    def policy_math(self, action_kind: str) -> tuple[Callable, Callable]:
        """``(log_prob_fn, entropy_fn)`` for the policy's action space: one log-prob function for
        sampling and for the update, so a ratio never mixes two implementations."""
        if action_kind == "discrete":
            return self.action_log_probs, self.categorical_entropy
        return self.gaussian_log_prob, self.gaussian_entropy
