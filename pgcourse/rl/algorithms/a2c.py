"""Advantage actor-critic (A2C) with GAE on gymnasium vector envs: one gradient step per rollout.

Pseudo-code (lesson 03):

    for each update:
        anneal the learning rates                                         (optional)
        collect n_steps from num_envs envs                                -> obs, a, V(s), r, done flags
        A = GAE(r, V(s), V(s'), terminated, truncated, gamma, lambda);  R = A + V(s)
        actor:  L = -mean(log pi(a|s) * A) - beta H[pi]                   (A normalised, a constant)
        critic: L = 1/2 mean((V(s) - R)^2)
        clip each network's gradient norm separately, step both Adams

Hyperparameters are the fields of :class:`pgcourse.rl.config.A2CConfig`. Every piece of math is
``parts.<name>``, a field of :class:`~pgcourse.rl.algorithms.components.Components`. The loop trains A >= 1 agents
at once, as :mod:`.ppo`'s does (:mod:`.agents`: ``pg.train`` is A = 1, ``pg.train_many`` one agent per seed).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..config import A2CConfig
from ..diagnostics import relative_value_error
from ..run import Run
from .agents import advantages_of, map_rows, reduce_rows
from .components import Components
from .rollout import agents_batch, collect_rollouts
from .stacked import build_agents
from .trainer import Hooks


def train_a2c(config: A2CConfig | Sequence[A2CConfig], components: Components | None = None,
              hooks: Hooks | None = None, on_update=None, resume=None) -> Run | list[Run]:
    """Train A2C: one config gives its :class:`Run`; a sequence of configs (one agent each: ``pg.train_many``)
    a list of runs."""
    with build_agents(config, components, hooks, on_update, resume) as agents:
        # what shapes the loop is every agent's (pg.train_many checks it: many.SHARED_SETTINGS)
        parts, first = agents.parts, agents.trainers[0].config  # parts: the pieces of math (each agent's own)
        compute_gae = parts.gae()

        while not agents.done:
            for trainer in agents.trainers:
                trainer.anneal_learning_rates()
            rollout = collect_rollouts(agents, first.n_steps)  # [T, A, N]

            advantages = advantages_of(agents, compute_gae, rollout)  # [T, A, N]
            returns = advantages + rollout.values  # [T, A, N]
            (obs, actions, advantages, returns), batch_rows = agents_batch(rollout, rollout.obs, rollout.actions,
                                                                           advantages, returns)  # [A, B, ...]
            advantage_std = {a: advantages[a, :batch_rows.sizes[a]].std() for a in batch_rows.agents}  # a diagnostic
            if first.normalize_advantages:
                advantages = map_rows(agents, parts.normalize, advantages, batch_rows)  # [A, B]

            log_probs, entropy = agents.log_probs_and_entropy(obs, actions)  # [A, B], [A, B]
            # each piece on each agent's own rows, with that agent's hyperparameters: [A], one per agent
            actor_loss = reduce_rows(agents, parts.a2c_policy_loss, (log_probs, advantages, entropy), batch_rows,
                                     lambda c: (c.ent_coef,))  # [A]
            values = agents.values(obs)  # [A, B]
            critic_loss = reduce_rows(agents, parts.value_loss, (values, returns), batch_rows)  # [A]
            actor_norm, critic_norm = agents.step(actor_loss, critic_loss, batch_rows)  # [A] each

            with torch.no_grad():  # the policy-gradient term alone, and the critic after its step, for the history
                policy_loss = reduce_rows(agents, parts.a2c_policy_loss, (log_probs, advantages, entropy),
                                          batch_rows, lambda c: (0.0,))  # [A]
                values_after = agents.values(obs)  # [A, B]
            for a in batch_rows.agents:  # each agent's history row (its own rows of the batch)
                rows_of = slice(0, batch_rows.sizes[a])
                # the critic before its step (A2C takes one step: the fit it trained with)
                predicted_before = parts.explained_variance(values[a, rows_of].detach(), returns[a, rows_of])
                agents.trainers[a].end_update(
                    policy_loss=policy_loss[a], value_loss=critic_loss[a].detach(), entropy=entropy[a, rows_of].detach().mean(),
                    explained_variance=predicted_before, explained_variance_before=predicted_before,
                    explained_variance_after=parts.explained_variance(values_after[a, rows_of], returns[a, rows_of]),
                    value_rel_error=relative_value_error(values[a, rows_of], returns[a, rows_of]),
                    actor_grad_norm=actor_norm[a], critic_grad_norm=critic_norm[a], advantage_std=advantage_std[a],
                    epochs_run=1)
    runs = agents.finish()
    return runs if isinstance(config, Sequence) else runs[0]
