"""PPO for A agents at once (``pg.train_many``): :mod:`.ppo`'s loop with one more axis, the agent's.

Each agent is a :class:`~.trainer.Trainer` built from its own config (its seed: envs, initial weights,
minibatch permutations, action draws), exactly as ``pg.train`` builds it; the agents' networks are one
:class:`~.stacked.AgentStack`, so a step of the envs costs one forward for all agents and an update one
forward, one backward and one Adam step per minibatch for all agents. The math is :mod:`.ppo`'s, per agent
(the same ``parts.<name>`` calls on that agent's tensors):

    for each update:
        anneal each agent's learning rates (from its own env steps)
        collect n_steps from each agent's envs with its pi_old          -> [T, A, N] tensors
        A = GAE(...) for all agents at once (agents folded into the env axis: GAE is per column)
        per agent: flatten its valid transitions (its own B), normalise its advantages
        for epoch in 1..update_epochs:
            each agent still updating draws its minibatch permutation from its own generator
            for the k-th minibatch of every agent that has one:
                one stacked forward; each agent's losses as in ppo.py; one backward of their sum
                clip each agent's gradient norms on its own, step the stacked Adams for those agents
            an agent whose epoch KL exceeds target_kl stops its epochs (the others go on)
        per agent: diagnostics and ``trainer.end_update`` (history, NaN guard, evaluation)

Agents differ in the number of valid transitions (autoreset steps are dropped), so in their minibatch
count and sizes: a minibatch step pads each agent's rows to the largest minibatch size of the configs (a
length no seed changes; a lone agent's rows are not padded) and an agent's losses read only its own rows.
An agent that has no k-th minibatch, stopped its epochs early or spent its budget takes no step.

How close to ``pg.train``: one agent (A = 1) is ``pg.train``'s run bit for bit on CPU (tests/test_train_many.py,
discrete and continuous); with other agents some matrix products round an agent's rows differently (the
batched kernel for A > 1), so its run follows ``pg.train``'s to float rounding (1e-7 in the first updates'
losses) and then drifts as any two runs that differ in rounding. An agent's run never depends on the other
agents' seeds (tested bit for bit).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..config import PPOConfig
from ..diagnostics import relative_value_error
from ..run import Run
from .components import Components
from .rollout import Rollout, flatten_valid
from .interrupts import InterruptGuard
from .stacked import AgentStack
from .trainer import Means, Trainer, read_numbers


def agent_generator(device: torch.device) -> torch.Generator:
    """A generator in the state torch's global generator for ``device`` is in now: the draws a trainer
    built just now would take from the global generator (as ``pg.train``'s sampling does)."""
    if device.type == "cuda":
        generator = torch.Generator(device=device)
        generator.set_state(torch.cuda.get_rng_state(device))
        return generator
    generator = torch.Generator()
    generator.set_state(torch.get_rng_state())
    return generator


def padded(rows: Sequence[Tensor | None], like: Tensor, length: int) -> Tensor:
    """Stack per-agent ``[b_a, ...]`` tensors into ``[A, length, ...]``, zeros after each agent's rows (and for
    an agent given None). ``length`` is fixed by the configs (a minibatch's or the batch's largest size), never
    by the other agents' row counts: the matrix products may round an agent's rows differently for another
    number of rows, and an agent's numbers must not depend on the other agents' seeds. A lone agent's rows
    are not padded."""
    if len(rows) == 1:  # a lone agent: its rows as they are (then its run is pg.train's, bit for bit)
        return rows[0].unsqueeze(0)
    out = like.new_zeros((len(rows), length, *like.shape[1:]))
    for agent, row in enumerate(rows):
        if row is not None:
            out[agent, :row.shape[0]] = row
    return out


def collect_rollouts(agents: AgentStack, running: Sequence[bool], n_steps: int) -> list[Rollout | None]:
    """:func:`.rollout.collect_rollout` for every running agent at once: per step one stacked forward of
    actor and critic, each agent's actions drawn from its own generator and sent to its own envs."""
    trainers, device = agents.trainers, agents.device
    first = trainers[0]
    num_envs, count = first.config.num_envs, agents.agents
    obs_buffer = torch.zeros((n_steps, count, num_envs, first.obs_dim), device=device)  # [T, A, N, obs_dim]
    action_shape = (n_steps, count, num_envs) if agents.action_kind == "discrete" else \
        (n_steps, count, num_envs, int(first.action_low.shape[0]))
    actions_buffer = torch.zeros(action_shape, device=device,
                                 dtype=torch.long if agents.action_kind == "discrete" else torch.float32)
    log_probs_buffer = torch.zeros((n_steps, count, num_envs), device=device)  # [T, A, N]
    values_buffer = torch.zeros((n_steps + 1, count, num_envs), device=device)  # [T + 1, A, N]
    rewards = np.zeros((n_steps, count, num_envs), dtype=np.float32)
    terminated = np.zeros((n_steps + 1, count, num_envs), dtype=bool)
    truncated = np.zeros((n_steps + 1, count, num_envs), dtype=bool)
    live = [a for a in range(count) if running[a]]
    for a in live:
        terminated[0, a] = trainers[a].stepper.autoresetting

    def observations() -> Tensor:  # [A, N, obs_dim], zeros for agents that are done
        obs = torch.zeros((count, num_envs, first.obs_dim), device=device)
        for a in live:
            obs[a] = trainers[a].obs_tensor(trainers[a].stepper.obs)
        return obs

    with torch.no_grad():
        for t in range(n_steps):
            obs = observations()
            output = agents.policy_output(obs)  # [A, N, n_actions] or [A, N, D]
            values_buffer[t] = agents.values(obs)
            obs_buffer[t] = obs
            actions_buffer[t] = agents.sample(output, live)  # [A, N] or [A, N, D]
            log_probs_buffer[t] = agents.log_prob(output, actions_buffer[t])  # [A, N]
            for a in live:
                trainer = trainers[a]
                result = trainer.stepper.step(trainer.env_actions(actions_buffer[t, a]))
                rewards[t, a], terminated[t + 1, a], truncated[t + 1, a] = (result.rewards, result.terminated,
                                                                            result.truncated)
                trainer.env_step += int(np.count_nonzero(result.valid))
                trainer.record_episodes(result.episode_returns, result.episode_lengths)
        values_buffer[n_steps] = agents.values(observations())

    terminated_all = torch.as_tensor(terminated, device=device)  # [T + 1, A, N]
    truncated_all = torch.as_tensor(truncated, device=device)
    rewards_all = torch.as_tensor(rewards, device=device)
    rollouts: list[Rollout | None] = [None] * count
    for a in live:
        valid = trainers[a].components.transition_mask(terminated_all[:, a], truncated_all[:, a])[1:]  # [T, N]
        rollouts[a] = Rollout(obs=obs_buffer[:, a], actions=actions_buffer[:, a], log_probs=log_probs_buffer[:, a],
                              values=values_buffer[:-1, a], next_values=values_buffer[1:, a],
                              rewards=rewards_all[:, a], terminated=terminated_all[1:, a].float(),
                              truncated=truncated_all[1:, a].float(), valid=torch.as_tensor(valid).bool())
    return rollouts


def gae_all(compute_gae, rollouts: list[Rollout], gamma: float, lam: float) -> list[Tensor]:
    """Each rollout's GAE ``[T, N]`` in one call: the agents side by side on the env axis ``[T, A * N]``
    (GAE treats every column on its own, so each agent's numbers are those of its own call)."""
    def side_by_side(name: str) -> Tensor:
        return torch.cat([getattr(rollout, name) for rollout in rollouts], dim=1)  # [T, A * N]

    advantages = compute_gae(side_by_side("rewards"), side_by_side("values"), side_by_side("next_values"),
                             side_by_side("terminated"), side_by_side("truncated"), gamma, lam)
    return list(advantages.split([rollout.rewards.shape[1] for rollout in rollouts], dim=1))


def train_ppo_many(configs: Sequence[PPOConfig], components: Components | None = None) -> list[Run]:
    """Train one PPO agent per config (same shapes: env, num_envs, n_steps, networks; scalars such as seed,
    lr, clip_eps, gamma, ent_coef may differ) as one batch; returns one :class:`Run` per config."""
    trainers: list[Trainer] = []
    generators: list[torch.Generator] = []
    # one Ctrl-C guard for the batch: the first press stops every agent after the batched update it is in (each run
    # comes back 'interrupted' and resumable, as from pg.train); a second press stops at once, returning nothing
    guard = InterruptGuard("Ctrl-C: every agent stops after the current batched update (press Ctrl-C again to stop "
                           "at once, with no runs returned)")
    try:
        for config in configs:
            trainers.append(Trainer(config, components))
            trainers[-1].interrupt = guard  # each agent's `done` and status read the batch's guard
            generators.append(agent_generator(trainers[-1].device))
        with guard:
            runs = _train(trainers, generators)
    except BaseException:
        for trainer in trainers:
            trainer._close()
        raise
    return runs


def _train(trainers: list[Trainer], generators: list[torch.Generator]) -> list[Run]:
    agents = AgentStack(trainers, generators)
    count, shape = agents.agents, trainers[0].config
    minibatch_rows = max(trainer.config.minibatch_size for trainer in trainers)  # every minibatch fits
    while not all(trainer.done for trainer in trainers):
        running = [not trainer.done for trainer in trainers]
        live = [a for a in range(count) if running[a]]
        for a in live:
            trainers[a].anneal_learning_rates()
        rollouts = collect_rollouts(agents, running, shape.n_steps)

        parts = {a: trainers[a].components for a in live}
        advantages_of = dict(zip(live, gae_all(parts[live[0]].gae(), [rollouts[a] for a in live],
                                               trainers[live[0]].config.gamma, trainers[live[0]].config.gae_lambda)))
        batch, advantage_std = {}, {}
        for a in live:
            config, rollout = trainers[a].config, rollouts[a]
            advantages = advantages_of[a]  # [T, N]
            returns = advantages + rollout.values  # [T, N] critic targets
            obs, actions, old_log_probs, old_values, advantages, returns = flatten_valid(
                rollout, rollout.obs, rollout.actions, rollout.log_probs, rollout.values, advantages, returns)
            advantage_std[a] = advantages.std()
            if config.normalize_advantages and not config.normalize_per_minibatch:
                advantages = parts[a].normalize(advantages)  # [B_a]
            batch[a] = (obs, actions, old_log_probs, old_values, advantages, returns)

        per_step = {a: Means() for a in live}
        epochs_run = dict.fromkeys(live, 0)
        updating = set(live)
        for _ in range(shape.update_epochs):
            minibatches = {a: parts[a].minibatch_indices(batch[a][0].shape[0], trainers[a].config.minibatch_size,
                                                          trainers[a].minibatch_generator) for a in sorted(updating)}
            epoch_kls: dict[int, list[Tensor]] = {a: [] for a in minibatches}
            for k in range(max(len(chunks) for chunks in minibatches.values())):
                stepping = [a for a in minibatches if k < len(minibatches[a])]
                indices = {a: minibatches[a][k].to(agents.device) for a in stepping}  # [b_a]
                obs_rows = [batch[a][0][indices[a]] if a in indices else None for a in range(count)]
                batch_obs = padded(obs_rows, batch[stepping[0]][0], minibatch_rows)  # [A, b_max, obs_dim]
                batch_actions = padded([batch[a][1][indices[a]] if a in indices else None for a in range(count)],
                                       batch[stepping[0]][1], minibatch_rows)  # [A, b_max(, D)]
                outputs, new_values_all = agents.policy_output(batch_obs), agents.values(batch_obs)
                log_probs_all, entropy_all = agents.log_prob_entropy(outputs, batch_actions)  # [A, b_max] each
                total_loss = 0.0
                diagnostics = {}
                for a in stepping:
                    config, idx, size = trainers[a].config, indices[a], indices[a].shape[0]
                    _, _, old_log_probs, old_values, advantages, returns = batch[a]
                    new_log_probs, entropy = log_probs_all[a, :size], entropy_all[a, :size]  # [b], [b]
                    batch_old_log_probs, batch_advantages = old_log_probs[idx], advantages[idx]  # [b]
                    if config.normalize_advantages and config.normalize_per_minibatch:
                        batch_advantages = parts[a].normalize(batch_advantages)
                    policy_loss = parts[a].clipped_surrogate_loss(new_log_probs, batch_old_log_probs,
                                                                  batch_advantages, config.clip_eps)
                    actor_loss = policy_loss + parts[a].entropy_bonus_loss(entropy, config.ent_coef)
                    old_v = old_values[idx] if config.clip_value_loss else None
                    critic_loss = parts[a].value_loss(new_values_all[a, :size], returns[idx], old_v,
                                                      config.clip_eps if config.clip_value_loss else None)
                    total_loss = total_loss + actor_loss + critic_loss  # agent a's weights are in its terms only
                    with torch.no_grad():
                        ratio = (new_log_probs - batch_old_log_probs).exp()  # [b]
                        kl = parts[a].approx_kl(batch_old_log_probs, new_log_probs)
                        clipped = parts[a].clip_fraction(ratio, config.clip_eps)
                    epoch_kls[a].append(kl)
                    diagnostics[a] = dict(policy_loss=policy_loss.detach(), value_loss=critic_loss.detach(),
                                          entropy=entropy.detach().mean(), approx_kl=kl, clip_fraction=clipped)
                agents.zero_grad()
                total_loss.backward()
                actor_norms, critic_norms = agents.step([a in indices for a in range(count)])  # [A], [A]
                for a in stepping:
                    per_step[a].add(**diagnostics[a], actor_grad_norm=actor_norms[a], critic_grad_norm=critic_norms[a])
            for a in minibatches:
                epochs_run[a] += 1
                target_kl = trainers[a].config.target_kl
                if target_kl is not None:  # each agent stops its own epochs
                    epoch_kl = np.mean(list(read_numbers(dict(enumerate(epoch_kls[a]))).values()))
                    if epoch_kl > target_kl:
                        updating.discard(a)
            if not updating:
                break

        with torch.no_grad():
            all_obs = padded([batch[a][0] if a in batch else None for a in range(count)], batch[live[0]][0],
                             shape.batch_size)
            all_actions = padded([batch[a][1] if a in batch else None for a in range(count)], batch[live[0]][1],
                                 shape.batch_size)
            values_after_all = agents.values(all_obs)  # [A, B_max]
            log_probs_after_all, _ = agents.log_prob_entropy(agents.policy_output(all_obs), all_actions)  # pi_new
        for a in live:
            obs, _, old_log_probs, old_values, _, returns = batch[a]
            size = obs.shape[0]
            with torch.no_grad():
                values_after, log_probs_after = values_after_all[a, :size], log_probs_after_all[a, :size]  # [B_a]
                update_kl = parts[a].approx_kl(old_log_probs, log_probs_after)
            fit_after = parts[a].explained_variance(values_after, returns)  # in sample, as in ppo.py
            trainers[a].end_update(**per_step[a].means(), explained_variance=fit_after,
                                   explained_variance_after=fit_after,
                                   explained_variance_before=parts[a].explained_variance(old_values, returns),
                                   value_rel_error=relative_value_error(values_after, returns),
                                   advantage_std=advantage_std[a], epochs_run=epochs_run[a], update_kl=update_kl)
    return agents.finish()
