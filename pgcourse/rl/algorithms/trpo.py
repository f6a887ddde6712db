"""Trust Region Policy Optimisation (TRPO), discrete and continuous, on gymnasium vector envs.

Pseudo-code this file follows (chapter 07; the math is in :mod:`pgcourse.rl.trust_region`):

    for each update:
        collect n_steps from num_envs envs with pi_old          -> obs, a, log pi_old(a|s), V(s), r, done flags
        A = GAE(r, V(s), V(s'), terminated, truncated, gamma, lambda);  R = A + V(s)     (A normalised)
        g = grad of the surrogate L(theta) = mean(rho A) at theta_old                      (rho = 1 there)
        s ~ (F + damping I)^-1 g by conjugate gradient, F v by differentiating KL(pi_old || pi_theta) twice
        full step = sqrt(2 delta / s^T (F + damping I) s) s      (the same damped product as CG)
        backtracking line search: the largest fraction 1, 1/2, 1/4, ... with KL <= delta and L improved by more
            than accept_ratio x the linear prediction g . (fraction x full step)
        critic: critic_epochs passes of minibatch regression of V(s) on R (Adam), separately
        diagnostics: the KL reached, line-search steps, CG residual, the step's surrogate improvement

No step is taken when s^T F s is zero to float precision (:func:`pgcourse.rl.trust_region.quadratic_form_is_zero`):
a zero policy gradient, as when every advantage in the batch is equal (ProbeConstant, whose episodes are all
alike, or a batch in which a converged policy took the rewarded action every time), gives s = 0 and no direction
to step along. The update then leaves the policy as it was, still trains the critic, and logs
``line_search_steps = 0`` (no candidate step tried; a search that ran tried at least one) with ``step_fraction``,
``expected_improvement``, ``surrogate_improvement`` and ``update_kl`` all 0; ``actor_grad_norm`` shows the
gradient's size.

There is no learning rate for the policy: the KL constraint ``max_kl`` (delta) sets the step size. Entropy
bonuses and gradient clipping do not apply to the policy. Hyperparameters are the fields of
:class:`pgcourse.rl.config.TRPOConfig`.

One agent per run: ``pg.train_many`` batches A2C and PPO only (their loops have the agent axis, :mod:`.agents`).
"""
from __future__ import annotations

import torch

from ..batching import on_device
from ..config import TRPOConfig
from ..diagnostics import relative_value_error
from ..run import Run
from ..trust_region import (NO_STEP, assign_flat_, backtracking_line_search, categorical_kl, conjugate_gradient,
                            fisher_vector_product, flat_grad, gaussian_kl, max_step_length, quadratic_form_is_zero)
from .components import Components
from .rollout import collect_rollout, flatten_valid
from .agents import AgentMeans, as_row
from .trainer import Hooks, Trainer


def policy_kl(policy: torch.nn.Module, obs: torch.Tensor, old_output: torch.Tensor,
              old_log_std: torch.Tensor | None) -> torch.Tensor:
    """Mean over the batch of KL(pi_old(.|s) || pi_theta(.|s)), exact for both policy kinds (a scalar).
    ``old_output`` is the old policy's logits ``[B, n]`` or means ``[B, D]``, detached."""
    new_output = policy(obs)
    if old_log_std is None:
        return categorical_kl(old_output, new_output).mean()
    return gaussian_kl(old_output, old_log_std, new_output, policy.log_std).mean()


def train_trpo(config: TRPOConfig, components: Components | None = None, hooks: Hooks | None = None,
               on_update=None, resume=None) -> Run:
    with Trainer(config, components, hooks, on_update, resume=resume) as trainer:
        parts, policy, value_net = trainer.components, trainer.policy, trainer.value_net
        parameters = trainer.actor_parameters
        compute_gae = parts.gae()
        continuous = trainer.action_kind == "continuous"

        while not trainer.done:
            trainer.anneal_learning_rates()  # the critic's only: TRPO's policy step has no learning rate
            rollout = collect_rollout(trainer, config.n_steps)

            advantages = compute_gae(rollout.rewards, rollout.values, rollout.next_values, rollout.terminated,
                                     rollout.truncated, config.gamma, config.gae_lambda)  # [T, N]
            returns = advantages + rollout.values  # [T, N] critic targets
            obs, actions, old_log_probs, old_values, advantages, returns = flatten_valid(
                rollout, rollout.obs, rollout.actions, rollout.log_probs, rollout.values, advantages,
                returns)  # [B, ...]
            advantage_std = float(advantages.std())
            if config.normalize_advantages:
                advantages = parts.normalize(advantages)  # [B]

            # -- the policy: one natural-gradient step inside the trust region --------------------------
            with torch.no_grad():
                old_output = policy(obs)  # logits [B, n] or means [B, D]
                old_log_std = policy.log_std.detach().clone() if continuous else None  # [D]
                old_params = torch.nn.utils.parameters_to_vector(parameters)  # [P]

            def surrogate() -> torch.Tensor:  # L(theta) = mean(rho A), rho = pi_theta / pi_old
                new_log_probs, _ = trainer.log_probs_and_entropy(obs, actions)  # [B]
                return ((new_log_probs - old_log_probs).exp() * advantages).mean()

            surrogate_old = surrogate()
            gradient = flat_grad(surrogate_old, parameters)  # g, [P]
            kl_grad = flat_grad(policy_kl(policy, obs, old_output, old_log_std), parameters,
                                create_graph=True)  # [P], zero in value; its derivative is F

            def fisher(vector: torch.Tensor) -> torch.Tensor:
                return fisher_vector_product(kl_grad, parameters, vector, config.cg_damping)

            cg = conjugate_gradient(fisher, gradient, config.cg_iters)
            direction = cg.x  # s ~ F^-1 g, [P]
            fisher_direction = fisher(direction)  # (F + lambda I) s, [P]
            surrogate_before = float(surrogate_old.detach())

            def try_step(fraction: float) -> tuple[float, float]:
                assign_flat_(parameters, old_params + fraction * full_step)
                with torch.no_grad():
                    improvement = float(surrogate()) - surrogate_before
                    kl = float(policy_kl(policy, obs, old_output, old_log_std))
                return improvement, kl

            if quadratic_form_is_zero(direction, fisher_direction):  # e.g. g = 0: every advantage equal
                full_step = torch.zeros_like(direction)  # no step: the policy stays, the critic still trains
                expected_improvement, search = 0.0, NO_STEP  # logged as line_search_steps = 0
            else:
                full_step = max_step_length(direction, fisher_direction, config.max_kl) * direction  # [P]
                expected_improvement = float(gradient @ full_step)
                search = backtracking_line_search(try_step, expected_improvement, config.max_kl,
                                                  config.line_search_steps, config.line_search_shrink,
                                                  config.accept_ratio)
            with torch.no_grad():
                assign_flat_(parameters, old_params + search.fraction * full_step)
                if continuous and config.log_std_min is not None:  # the bound holds after every policy step
                    policy.clamp_log_std_(config.log_std_min)
                update_kl = float(policy_kl(policy, obs, old_output, old_log_std))
                _, entropy = trainer.log_probs_and_entropy(obs, actions)  # [B]

            # -- the critic: minibatch regression on the returns, a separate optimiser ------------------
            per_step = AgentMeans(1)
            for _ in range(config.critic_epochs):
                for batch_idx in on_device(parts.minibatch_indices(obs.shape[0], config.minibatch_size,
                                                                   trainer.minibatch_generator), trainer.device):
                    critic_loss = parts.value_loss(value_net(obs[batch_idx]), returns[batch_idx])
                    critic_norm = trainer.critic_step(critic_loss)
                    per_step.add(value_loss=critic_loss.detach().reshape(1),  # read once per update
                                 critic_grad_norm=as_row([critic_norm], trainer.device))

            with torch.no_grad():
                values_after = value_net(obs)  # [B]
            fit_after = parts.explained_variance(values_after, returns)  # in sample: the batch the critic just fitted
            trainer.end_update(**per_step.means()[0], policy_loss=-surrogate_before, entropy=float(entropy.mean()),
                               actor_grad_norm=float(gradient.norm()), update_kl=update_kl,
                               explained_variance=fit_after, explained_variance_after=fit_after,
                               explained_variance_before=parts.explained_variance(old_values, returns),
                               value_rel_error=relative_value_error(values_after, returns),
                               advantage_std=advantage_std, epochs_run=1,
                               line_search_steps=search.steps_tried,
                               step_fraction=search.fraction, cg_residual=cg.residual_norm,
                               surrogate_improvement=search.improvement if search.accepted else 0.0,
                               expected_improvement=expected_improvement)
    return trainer.finish()
