"""PPO for A agents at once (``pg.train_many``): :mod:`.ppo`'s loop with one more axis, the agent's.

Each agent is a :class:`~.trainer.Trainer` built from its own config (its seed: envs, initial weights,
minibatch permutations, action draws), exactly as ``pg.train`` builds it; the agents' networks are one
:class:`~.stacked.AgentStack`, so a step of the envs costs one forward for all agents and an update one
forward, one backward and one Adam step per minibatch for all agents. The math is :mod:`.ppo`'s, per agent:

    for each update:
        anneal each agent's learning rates (from its own env steps)
        collect n_steps from each agent's envs with its pi_old          -> [T, A, N] tensors
        A = GAE(...) for all agents at once (agents folded into the env axis: GAE is per column)
        per agent: flatten its valid transitions (its own B_a), normalise its advantages
        the agents' batches side by side                                -> [A, B_max, ...]
        for epoch in 1..update_epochs:
            each agent still updating draws its minibatch permutation from its own generator
            for the k-th minibatch of every agent that has one:
                gather each agent's rows                                -> [A, b, ...]
                one stacked forward; the losses of ppo.py, one mean per agent over its own rows -> [A]
                one backward of their sum; clip each agent's gradient norms on its own, step the stacked Adams
            an agent whose epoch KL exceeds target_kl stops its epochs (the others go on)
        per agent: diagnostics (read once per update) and ``trainer.end_update`` (history, NaN guard, evaluation)

Agents differ in the number of valid transitions (reset steps are dropped), so in their minibatch sizes:
a minibatch pads each agent's rows to the largest minibatch size of the configs (a length no seed changes),
and each agent's means are taken over its own rows (a mask). An agent
that has no k-th minibatch, stopped its epochs early or spent its budget takes no step.

The losses: where every agent runs the reference pieces (``AGENT_AXIS_PIECES``), :func:`agent_axis_losses`
computes them for all agents at once, one set of tensor operations (and of autograd nodes) instead of one per
agent. A replaced piece (a learner's function) is called agent by agent on that agent's rows
(:func:`per_agent_losses`).

How close to ``pg.train``: one agent (A = 1) is trained by ``pg.train``'s loop itself (:func:`train_ppo_many`),
so it is that run bit for bit (a batch of one through the stacked products was not, for some minibatch sizes:
seed 1, 4 envs x 64 steps, minibatches of 86 differed in the first update's losses); with other agents some matrix products round an agent's rows differently (the
batched kernel for A > 1), and its means sum its rows in another grouping, so its run follows ``pg.train``'s to
float rounding (1e-7 in the first updates' losses) and then drifts as any two runs that differ in rounding. An
agent's run never depends on the other agents' seeds (tested bit for bit).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .. import diagnostics, losses
from .. import returns as returns_math
from ..batching import minibatch_size_for, on_device
from ..config import PPOConfig
from ..diagnostics import relative_value_error
from ..run import Run
from .components import Components
from .ppo import train_ppo
from .rollout import Rollout, flatten_valid
from .interrupts import InterruptGuard
from .stacked import AgentStack
from .trainer import Means, Trainer


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
    number of rows, and an agent's numbers must not depend on the other agents' seeds."""
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
        if len(live) == count:  # one conversion for all agents (obs_tensor's, on the stacked arrays)
            return first.obs_tensor(np.stack([trainer.stepper.obs for trainer in trainers]))
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
            # discrete actions go to the envs as they are: one host copy for all agents (Box actions are clipped or
            # squashed per agent, by its own components)
            host_actions = actions_buffer[t].cpu().numpy() if agents.action_kind == "discrete" else None
            for a in live:
                trainer = trainers[a]
                result = trainer.stepper.step(trainer.env_actions(actions_buffer[t, a]) if host_actions is None
                                              else host_actions[a])
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
    lr, clip_eps, gamma, ent_coef may differ) as one batch; returns one :class:`Run` per config. One config is
    ``pg.train``'s run: :func:`.ppo.train_ppo` trains it."""
    if len(configs) == 1:
        return [train_ppo(configs[0], components)]
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


# the loss pieces whose math :func:`agent_axis_losses` computes over the agent axis (the reference functions)
AGENT_AXIS_PIECES = {"clipped_surrogate_loss": losses.clipped_surrogate_loss,
                     "entropy_bonus_loss": losses.entropy_bonus_loss, "value_loss": losses.value_loss,
                     "normalize": returns_math.normalize, "approx_kl": diagnostics.approx_kl,
                     "clip_fraction": diagnostics.clip_fraction}
DIAGNOSTICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")  # one row each, [A] per step


def masked_mean(values: Tensor, mask: Tensor, counts: Tensor) -> Tensor:
    """Each agent's mean of ``values [A, b]`` over its own rows (``mask [A, b]``, ``counts [A]`` of them): ``[A]``.
    Padded rows add an exact 0 and get a zero gradient; an agent with no rows gets 0."""
    return torch.where(mask, values, 0.0).sum(dim=1) / counts.clamp(min=1)


def agent_axis_losses(new_log_probs: Tensor, entropy: Tensor, new_values: Tensor, old_log_probs: Tensor,
                      advantages: Tensor, returns: Tensor, old_values: Tensor, mask: Tensor,
                      settings: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    r""":mod:`.ppo`'s minibatch losses for A agents at once, ``[A, b]`` in, one mean per agent out.

    The reference pieces' math (``AGENT_AXIS_PIECES``) with one more axis and each mean taken over the agent's
    own rows (``mask``): per agent :math:`L^{CLIP}_a - \beta_a \bar H_a` and :math:`\tfrac12\overline{(V - \hat R)^2}_a`
    (clipped where ``clip_value_loss``), with the per-minibatch advantage normalisation where the agent asks for
    it. Each agent's numbers come from its own rows only; they agree with the per-agent calls to float rounding
    (a sum over ``b`` padded rows groups its terms differently from a mean over the agent's own).

    Args:
        new_log_probs, entropy, new_values: ``[A, b]`` from the stacked networks (with grad).
        old_log_probs, advantages, returns, old_values: ``[A, b]`` the agents' minibatch rows (constants).
        mask: ``[A, b]`` True on each agent's rows.
        settings: ``[A, 1]`` tensors ``clip_eps``, ``clip_low`` (``1 - clip_eps``), ``clip_high`` (``1 + clip_eps``),
            ``ent_coef``, and the flags ``normalize_minibatch`` and ``clip_value_loss`` (None where no agent sets
            the flag, so that nothing is read from the device to decide).

    Returns:
        ``actor_loss [A]``, ``critic_loss [A]`` (with grad) and the diagnostics ``[5, A]`` (``DIAGNOSTICS``).
    """
    counts = mask.sum(dim=1).to(new_log_probs.dtype)  # [A]
    clip_eps, ent_coef = settings["clip_eps"], settings["ent_coef"]  # [A, 1]
    if settings["normalize_minibatch"] is not None:
        mean = masked_mean(advantages, mask, counts).unsqueeze(1)  # [A, 1]
        std = masked_mean((advantages - mean) ** 2, mask, counts).sqrt().unsqueeze(1)  # population std, [A, 1]
        advantages = torch.where(settings["normalize_minibatch"], (advantages - mean) / (std + 1e-8), advantages)
    ratio = torch.exp(new_log_probs - old_log_probs)  # [A, b]
    surrogate = torch.min(ratio * advantages, torch.clamp(ratio, settings["clip_low"], settings["clip_high"]) * advantages)
    policy_loss = -masked_mean(surrogate, mask, counts)  # [A]
    mean_entropy = masked_mean(entropy, mask, counts)  # [A]
    actor_loss = policy_loss + (-ent_coef.squeeze(1) * mean_entropy)  # [A]
    squared_error = (new_values - returns) ** 2  # [A, b]
    if settings["clip_value_loss"] is not None:
        clipped_values = old_values + torch.clamp(new_values - old_values, -clip_eps, clip_eps)
        squared_error = torch.where(settings["clip_value_loss"],
                                    torch.max(squared_error, (clipped_values - returns) ** 2), squared_error)
    critic_loss = 0.5 * masked_mean(squared_error, mask, counts)  # [A]
    with torch.no_grad():
        log_ratio = new_log_probs.detach() - old_log_probs  # [A, b]
        kl = masked_mean((torch.exp(log_ratio) - 1.0) - log_ratio, mask, counts)  # k3, as approx_kl
        clipped = masked_mean(((ratio.detach() - 1.0).abs() > clip_eps).float(), mask, counts)
    diagnostics_rows = torch.stack([policy_loss.detach(), critic_loss.detach(), mean_entropy.detach(), kl, clipped])
    return actor_loss, critic_loss, diagnostics_rows


def per_agent_losses(parts: dict[int, Components], configs: Sequence[PPOConfig], stepping: Sequence[int],
                     new_log_probs: Tensor, entropy: Tensor, new_values: Tensor, old_log_probs: Tensor,
                     advantages: Tensor, returns: Tensor, old_values: Tensor,
                     sizes: Sequence[int]) -> tuple[Tensor, Tensor]:
    """The same losses agent by agent, each through its own ``parts.<name>`` calls on its own rows (``[b_a]``):
    for replaced pieces. Returns the sum
    of the agents' losses and the diagnostics ``[5, A]`` (zeros for agents not stepping)."""
    total_loss, rows = 0.0, torch.zeros((len(DIAGNOSTICS), len(configs)), device=new_log_probs.device)
    for a in stepping:
        config, size = configs[a], sizes[a]
        agent_old_log_probs, agent_advantages = old_log_probs[a, :size], advantages[a, :size]  # [b_a]
        agent_new_log_probs, agent_entropy = new_log_probs[a, :size], entropy[a, :size]  # [b_a]
        if config.normalize_advantages and config.normalize_per_minibatch:
            agent_advantages = parts[a].normalize(agent_advantages)
        policy_loss = parts[a].clipped_surrogate_loss(agent_new_log_probs, agent_old_log_probs, agent_advantages,
                                                      config.clip_eps)
        actor_loss = policy_loss + parts[a].entropy_bonus_loss(agent_entropy, config.ent_coef)
        old_v = old_values[a, :size] if config.clip_value_loss else None
        critic_loss = parts[a].value_loss(new_values[a, :size], returns[a, :size], old_v,
                                          config.clip_eps if config.clip_value_loss else None)
        total_loss = total_loss + actor_loss + critic_loss  # agent a's weights are in its terms only
        with torch.no_grad():
            ratio = (agent_new_log_probs - agent_old_log_probs).exp()  # [b_a]
            kl = parts[a].approx_kl(agent_old_log_probs, agent_new_log_probs)
            clipped = parts[a].clip_fraction(ratio, config.clip_eps)
            values = (policy_loss, critic_loss, agent_entropy.mean(), kl, clipped)  # a learner's piece may give floats
            rows[:, a] = torch.stack([torch.as_tensor(value, dtype=rows.dtype, device=rows.device).detach().reshape(())
                                      for value in values])
    return total_loss, rows


def _train(trainers: list[Trainer], generators: list[torch.Generator]) -> list[Run]:
    agents = AgentStack(trainers, generators)
    count, shape, device = agents.agents, trainers[0].config, agents.device
    configs = [trainer.config for trainer in trainers]
    minibatch_rows = max(minibatch_size_for(config.batch_size, config.minibatch_size, config.num_minibatches)
                         for config in configs)  # every minibatch fits (an agent's B_a <= batch_size)
    agent_rows = torch.arange(count, device=device).unsqueeze(1)  # [A, 1]: agent a's rows of a gather
    # the loss math over the agent axis (one set of ops for all agents) where every agent runs the reference
    # pieces; a replaced piece goes agent by agent
    agent_axis = all(getattr(trainer.components, name) is function
                                   for trainer in trainers for name, function in AGENT_AXIS_PIECES.items())

    def column(values: Sequence[float | bool], dtype=torch.float32) -> Tensor:  # [A, 1]
        return torch.tensor(list(values), dtype=dtype, device=device).unsqueeze(1)

    def flags(values: Sequence[bool]) -> Tensor | None:  # [A, 1], or None where no agent sets the flag
        return column(values, torch.bool) if any(values) else None

    settings = {"clip_eps": column([c.clip_eps for c in configs]), "ent_coef": column([c.ent_coef for c in configs]),
                "clip_low": column([1.0 - c.clip_eps for c in configs]),  # in float64, then float32, as clamp's bounds
                "clip_high": column([1.0 + c.clip_eps for c in configs]),
                "normalize_minibatch": flags([c.normalize_advantages and c.normalize_per_minibatch for c in configs]),
                "clip_value_loss": flags([c.clip_value_loss for c in configs])}
    while not all(trainer.done for trainer in trainers):
        running = [not trainer.done for trainer in trainers]
        live = [a for a in range(count) if running[a]]
        for a in live:
            trainers[a].anneal_learning_rates()
        rollouts = collect_rollouts(agents, running, shape.n_steps)

        parts = {a: trainers[a].components for a in live}
        advantages_of = dict(zip(live, gae_all(parts[live[0]].gae(), [rollouts[a] for a in live],
                                               trainers[live[0]].config.gamma, trainers[live[0]].config.gae_lambda)))
        flat, advantage_std, batch_sizes = {}, {}, [0] * count
        for a in live:
            config, rollout = configs[a], rollouts[a]
            advantages = advantages_of[a]  # [T, N]
            returns = advantages + rollout.values  # [T, N] critic targets
            obs, actions, old_log_probs, old_values, advantages, returns = flatten_valid(
                rollout, rollout.obs, rollout.actions, rollout.log_probs, rollout.values, advantages, returns)
            advantage_std[a] = advantages.std()
            if config.normalize_advantages and not config.normalize_per_minibatch:
                advantages = parts[a].normalize(advantages)  # [B_a]
            flat[a] = (obs, actions, old_log_probs, old_values, advantages, returns)
            batch_sizes[a] = obs.shape[0]
        # the agents' batches side by side, [A, B_max, ...] (zeros after each agent's B_a rows)
        batch_obs, batch_actions, batch_old_log_probs, batch_old_values, batch_advantages, batch_returns = (
            padded([flat[a][i] if a in flat else None for a in range(count)], flat[live[0]][i], shape.batch_size)
            for i in range(6))

        per_step_rows: list[Tensor] = []  # [7, A] per gradient step: DIAGNOSTICS and the two gradient norms
        stepped: list[list[int]] = []  # the agents that stepped, per gradient step
        epochs_run = dict.fromkeys(live, 0)
        updating = set(live)
        for _ in range(shape.update_epochs):
            minibatches = {a: parts[a].minibatch_indices(
                batch_sizes[a], minibatch_size_for(batch_sizes[a], configs[a].minibatch_size, configs[a].num_minibatches),
                trainers[a].minibatch_generator) for a in sorted(updating)}  # each agent's chunks, on the CPU
            epoch_start = len(per_step_rows)
            stepping_at = [[a for a in minibatches if k < len(minibatches[a])]
                           for k in range(max(len(chunks) for chunks in minibatches.values()))]
            sizes_at = [[len(minibatches[a][k]) if a in stepping else 0 for a in range(count)]
                        for k, stepping in enumerate(stepping_at)]  # each agent's rows per gradient step
            rows_at = torch.tensor(sizes_at)  # [K, A]
            # the epoch's indices padded side by side on the CPU, then sent to the device with the row counts in one copy
            *indices, rows_at = on_device([*(padded([minibatches[a][k] if a in stepping else None for a in range(count)],
                                                    minibatches[stepping[0]][k], minibatch_rows)
                                             for k, stepping in enumerate(stepping_at)), rows_at], device)  # [A, b] each
            for k, (stepping, index, sizes) in enumerate(zip(stepping_at, indices, sizes_at)):
                flat_index = (index + agent_rows * batch_obs.shape[1]).reshape(-1)  # [A * b] rows of [A * B_max]

                def rows_of(tensor: Tensor) -> Tensor:  # [A, B_max, ...] -> each agent's minibatch [A, b, ...]
                    return tensor.flatten(0, 1).index_select(0, flat_index).view(*index.shape, *tensor.shape[2:])

                obs_rows, old_log_probs, advantages, returns, old_values = (
                    rows_of(batch_obs), rows_of(batch_old_log_probs), rows_of(batch_advantages),
                    rows_of(batch_returns), rows_of(batch_old_values))
                outputs, new_values = agents.policy_output(obs_rows), agents.values(obs_rows)  # [A, b, ...], [A, b]
                new_log_probs, entropy = agents.log_prob_entropy(outputs, rows_of(batch_actions))  # [A, b] each
                if agent_axis:
                    mask = torch.arange(index.shape[1], device=device) < rows_at[k].unsqueeze(1)  # [A, b]
                    actor_loss, critic_loss, rows = agent_axis_losses(
                        new_log_probs, entropy, new_values, old_log_probs, advantages, returns, old_values, mask,
                        settings)  # [A], [A], [5, A]
                    total_loss = (actor_loss + critic_loss).sum()  # agent a's weights are in its terms only
                else:
                    total_loss, rows = per_agent_losses(parts, configs, stepping, new_log_probs, entropy, new_values,
                                                        old_log_probs, advantages, returns, old_values, sizes)
                agents.zero_grad()
                total_loss.backward()
                actor_norms, critic_norms = agents.step([a in stepping for a in range(count)])  # [A], [A]
                per_step_rows.append(torch.cat([rows, actor_norms.unsqueeze(0), critic_norms.unsqueeze(0)]))
                stepped.append(stepping)
            for a in minibatches:
                epochs_run[a] += 1
            with_target = [a for a in minibatches if configs[a].target_kl is not None]
            if with_target:  # the one read per epoch, and only when it decides something
                kls = torch.stack(per_step_rows[epoch_start:])[:, DIAGNOSTICS.index("approx_kl")].tolist()  # [k][A]
                for a in with_target:  # each agent stops its own epochs
                    epoch_kl = np.mean([kls[k][a] for k in range(len(kls)) if a in stepped[epoch_start + k]])
                    if epoch_kl > configs[a].target_kl:
                        updating.discard(a)
            if not updating:
                break

        with torch.no_grad():
            values_after_all = agents.values(batch_obs)  # [A, B_max]
            log_probs_after_all, _ = agents.log_prob_entropy(agents.policy_output(batch_obs), batch_actions)  # pi_new
        read = torch.stack(per_step_rows).tolist()  # [steps][7][A]: the update's diagnostics in one read
        for a in live:
            per_step = Means()  # each diagnostic's mean over the agent's gradient steps, as in ppo.py
            for step, row in enumerate(read):
                if a in stepped[step]:
                    per_step.add(**{name: row[i][a] for i, name in enumerate(
                        (*DIAGNOSTICS, "actor_grad_norm", "critic_grad_norm"))})
            size = batch_sizes[a]
            obs, _, old_log_probs, old_values, _, returns = flat[a]
            with torch.no_grad():
                values_after, log_probs_after = values_after_all[a, :size], log_probs_after_all[a, :size]  # [B_a]
                update_kl = parts[a].approx_kl(old_log_probs, log_probs_after)
            fit_after = parts[a].explained_variance(values_after, returns)  # in sample, as in ppo.py
            trainers[a].end_update(**per_step.means(), explained_variance=fit_after,
                                   explained_variance_after=fit_after,
                                   explained_variance_before=parts[a].explained_variance(old_values, returns),
                                   value_rel_error=relative_value_error(values_after, returns),
                                   advantage_std=advantage_std[a], epochs_run=epochs_run[a], update_kl=update_kl)
    return agents.finish()
