"""Proximal Policy Optimisation (clip variant), discrete and continuous, on gymnasium vector envs.

Pseudo-code this file follows, line for line (lesson 04):

    for each update:
        anneal the learning rates                                  (optional)
        collect n_steps from num_envs envs with pi_old             -> obs, a, log pi_old(a|s), V(s), r, done flags
        A = GAE(r, V(s), V(s'), terminated, truncated, gamma, lambda);  R = A + V(s)
        for epoch in 1..update_epochs:
            for each shuffled minibatch:
                rho = exp(log pi(a|s) - log pi_old(a|s))
                actor:  L = -mean(min(rho A, clip(rho, 1-eps, 1+eps) A)) - beta H[pi]   (A normalised)
                critic: L = 1/2 mean((V(s) - R)^2)
                clip each network's gradient norm separately, step both Adams
            stop the epochs early if approx-KL > target_kl                          (optional)
        diagnostics: update_kl = KL(pi_old || pi_new) over the whole batch after the last epoch

Two KLs are logged. ``approx_kl`` is the mean, over the update's gradient steps, of the minibatch KL
measured *before* each step (what ``target_kl`` is compared with): it lags the policy and understates
how far the update moved it. ``update_kl`` is the KL between the policy that collected the batch and
the policy after the update, estimated on the whole batch: how far the update went.

Hyperparameters are the fields of :class:`pgcourse.rl.config.PPOConfig` (clip_eps = epsilon,
gae_lambda = lambda, ent_coef = beta, target_kl, update_epochs, minibatch_size, ...). Every piece of
math is ``parts.<name>``, a field of :class:`~pgcourse.rl.algorithms.components.Components`.

The loop trains A >= 1 agents at once (:mod:`.agents`): ``pg.train`` is A = 1, ``pg.train_many`` one agent
per seed. Every tensor carries the agent axis (a rollout ``[T, A, N]``, a batch ``[A, B]``, a minibatch
``[A, b]``); each agent has its own seed, envs, weights, Adam, clipping, annealing, normalisers, permutations
and KL early stop. A :class:`~.agents.Rows` says which rows of a batch or minibatch are each agent's (padding
after them when A > 1); ``gather_rows`` takes a minibatch's rows, ``reduce_rows(agents, parts.<piece>, tensors,
rows, hyperparameters)`` calls a piece of math on each agent's own rows with that agent's hyperparameters (one
number per agent ``[A]``), ``map_rows`` does the same for an elementwise piece (advantage normalisation), and
``AgentMeans`` averages each agent's diagnostics over the gradient steps it took.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import losses
from ..batching import mean_over_rows
from ..config import PPOConfig
from ..diagnostics import relative_value_error
from ..run import Run
from .agents import AgentMeans, Rows, advantages_of, epoch_kl_exceeds, gather_rows, map_rows, reduce_rows
from .components import Components
from .rollout import agents_batch, collect_rollouts
from .stacked import build_agents
from .trainer import Hooks


def train_ppo(config: PPOConfig | Sequence[PPOConfig], components: Components | None = None,
              hooks: Hooks | None = None, on_update=None, resume=None) -> Run | list[Run]:
    """Train PPO: one config gives its :class:`Run`; a sequence of configs (one agent each: ``pg.train_many``)
    a list of runs."""
    with build_agents(config, components, hooks, on_update, resume) as agents:
        # what shapes the loop is every agent's (pg.train_many checks it: many.SHARED_SETTINGS); the
        # hyperparameters that may differ per agent (clip_eps, ent_coef, lr, target_kl...) are read per agent below
        parts, first = agents.parts, agents.trainers[0].config  # parts: the pieces of math (each agent's own)
        compute_gae = parts.gae()
        normalize_batch = first.normalize_advantages and not first.normalize_per_minibatch
        normalize_minibatch = first.normalize_advantages and first.normalize_per_minibatch
        clip_value_loss = any(trainer.config.clip_value_loss for trainer in agents.trainers)
        # the reference entropy term with every ent_coef 0 is 0 (and so is its gradient): left out, backward and all
        entropy_bonus = parts.entropy_bonus_loss is not losses.entropy_bonus_loss or any(
            trainer.config.ent_coef != 0 for trainer in agents.trainers)

        while not agents.done:
            for trainer in agents.trainers:
                trainer.anneal_learning_rates()
            rollout = collect_rollouts(agents, first.n_steps)  # [T, A, N]

            advantages = advantages_of(agents, compute_gae, rollout)  # [T, A, N] GAE of each agent's envs
            returns = advantages + rollout.values  # [T, A, N] critic targets
            (obs, actions, old_log_probs, old_values, advantages, returns), batch_rows = agents_batch(
                rollout, rollout.obs, rollout.actions, rollout.log_probs, rollout.values, advantages,
                returns)  # [A, B, ...], each agent's B_a rows first
            advantage_std = {a: advantages[a, :batch_rows.sizes[a]].std() for a in batch_rows.agents}  # a diagnostic
            if normalize_batch:
                advantages = map_rows(agents, parts.normalize, advantages, batch_rows)  # [A, B]

            per_step = AgentMeans(agents.count)  # each agent's diagnostics, averaged over its gradient steps
            epochs_run = [0] * agents.count
            updating = batch_rows  # the agents still taking epochs (an agent past its target_kl drops out)
            for epoch in range(first.update_epochs):
                epoch_start = len(per_step.steps)
                for index, rows in agents.minibatches(updating):  # each agent's shuffled minibatch, index [A, b]
                    batch_obs, batch_actions, batch_stored, batch_advantages, batch_returns, batch_old_values = \
                        gather_rows((obs, actions, old_log_probs, advantages, returns,
                                     old_values if clip_value_loss else None), index)  # [A, b, ...] each
                    new_log_probs, entropy = agents.log_probs_and_entropy(batch_obs, batch_actions)  # [A, b] each
                    # log pi_old: the stored log-probs (the old_log_probs hook, which a planted bug replaces)
                    batch_old_log_probs = agents.old_log_probs(batch_stored, new_log_probs)
                    if normalize_minibatch:
                        batch_advantages = map_rows(agents, parts.normalize, batch_advantages, rows)
                    # each piece on each agent's own rows, with that agent's hyperparameters: [A], one per agent
                    policy_loss = reduce_rows(agents, parts.clipped_surrogate_loss,
                                              (new_log_probs, batch_old_log_probs, batch_advantages), rows,
                                              lambda c: (c.clip_eps,))  # [A]
                    actor_loss = policy_loss + reduce_rows(agents, parts.entropy_bonus_loss, (entropy,), rows,
                                                           lambda c: (c.ent_coef,)) if entropy_bonus else policy_loss
                    new_values = agents.values(batch_obs)  # [A, b]
                    critic_loss = reduce_rows(agents, parts.value_loss, (new_values, batch_returns, batch_old_values),
                                              rows,
                                              lambda c: (c.clip_eps if c.clip_value_loss else None,))  # [A]
                    actor_norm, critic_norm = agents.step(actor_loss, critic_loss, rows)  # [A] each

                    with torch.no_grad():  # diagnostics stay tensors: read once per update, not per step
                        ratio = (new_log_probs - batch_old_log_probs).exp()  # [A, b]
                        kl = reduce_rows(agents, parts.approx_kl, (batch_old_log_probs, new_log_probs), rows)
                        clipped = reduce_rows(agents, parts.clip_fraction, (ratio,), rows, lambda c: (c.clip_eps,))
                        mean_entropy = reduce_rows(agents, mean_over_rows, (entropy.detach(),), rows)
                    per_step.add(rows, policy_loss=policy_loss.detach(), value_loss=critic_loss.detach(),
                                 entropy=mean_entropy, approx_kl=kl, clip_fraction=clipped,
                                 actor_grad_norm=actor_norm, critic_grad_norm=critic_norm)
                for a in updating.agents:
                    epochs_run[a] += 1
                # approx-KL > target_kl: that agent's policy moved far enough from pi_old, it stops this update's epochs
                stop = epoch_kl_exceeds(agents, per_step, epoch_start, updating)
                updating = Rows(batch_rows.sizes, [going and not stopped for going, stopped in
                                                   zip(updating.stepping, stop)], batch_rows.mask)
                if not updating.agents:
                    break

            with torch.no_grad():
                values_after = agents.values(obs)  # [A, B]
                log_probs_after, _ = agents.log_probs_and_entropy(obs, actions)  # [A, B] under pi_new
                update_kl = reduce_rows(agents, parts.approx_kl, (old_log_probs, log_probs_after),
                                        batch_rows)  # KL(pi_old || pi_new) over the whole batch, [A]
            means = per_step.means()
            for a in batch_rows.agents:  # each agent's history row (its own rows of the batch)
                rows_of = slice(0, batch_rows.sizes[a])
                fit_after = parts.explained_variance(values_after[a, rows_of], returns[a, rows_of])  # in sample
                agents.trainers[a].end_update(
                    **means[a], explained_variance=fit_after, explained_variance_after=fit_after,
                    explained_variance_before=parts.explained_variance(old_values[a, rows_of], returns[a, rows_of]),
                    value_rel_error=relative_value_error(values_after[a, rows_of], returns[a, rows_of]),
                    advantage_std=advantage_std[a], epochs_run=epochs_run[a], update_kl=update_kl[a])
    runs = agents.finish()
    return runs if isinstance(config, Sequence) else runs[0]
