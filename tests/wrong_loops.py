"""Wrong versions of the write-the-loop exercises, written the way a learner might, and correct ones written
differently from the reference.

Lesson 01's REINFORCE loop (``collect_episodes``, ``reinforce_update``, ``train_reinforce``) and exercise
04b's PPO from scratch (``collect_rollout``, ``advantages_and_returns``, ``ppo_update``, ``train_ppo``).
Each stage has one learner-style implementation here, written independently of the checks' references
(other buffers, ``torch.distributions.Categorical``, CleanRL's form of the loss), with ``bug=`` switching
on one classic mistake. ``@wrong(stage, hint)`` registers a wrong version: the stage's check must reject it
with a message containing ``hint``. ``@correct(stage)`` registers a right version written another way: the
check must accept it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.distributions import Categorical

from pgcourse.rl.algorithms.rollout import Rollout
from pgcourse.rl.batching import minibatch_indices
from pgcourse.rl.networks import CategoricalPolicy, ValueNet


@dataclass(frozen=True)
class WrongLoop:
    stage: str
    fn: Callable
    hint: str  # distinctive substring of the message the check must give

    @property
    def id(self) -> str:
        return f"{self.stage}:{self.fn.__name__}"


WRONG_LOOPS: list[WrongLoop] = []
CORRECT_LOOPS: list[tuple[str, Callable]] = []


def wrong(stage: str, hint: str) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        WRONG_LOOPS.append(WrongLoop(stage, fn, hint))
        return fn
    return register


def correct(stage: str) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        CORRECT_LOOPS.append((stage, fn))
        return fn
    return register


# ====================================================================================== 04b collect_rollout

def learner_rollout(envs, policy, value_net, start, n_steps, bug=None):
    """CleanRL-style: preallocated buffers, a Categorical per step, the flags of the previous step carried."""
    next_obs, next_resetting = start
    num_envs = envs.num_envs
    obs = torch.zeros((n_steps, num_envs) + envs.single_observation_space.shape)
    actions = torch.zeros((n_steps, num_envs), dtype=torch.long)
    log_probs, values = torch.zeros((n_steps, num_envs)), torch.zeros((n_steps, num_envs))
    rewards, terminated, truncated = (torch.zeros((n_steps, num_envs)) for _ in range(3))
    valid = torch.zeros((n_steps, num_envs), dtype=torch.bool)
    resetting = np.array(next_resetting, dtype=bool)
    if bug == "start_ignored":
        resetting[:] = False
    with contextlib.nullcontext() if bug == "with_grad" else torch.no_grad():
        for t in range(n_steps):
            observation = torch.tensor(next_obs, dtype=torch.float32)
            dist = Categorical(logits=policy(observation))
            action = dist.probs.argmax(-1) if bug == "greedy" else dist.sample()
            scored = dist.probs.argmax(-1) if bug == "log_prob_of_argmax" else action
            obs[t], actions[t], log_probs[t] = observation, action, dist.log_prob(scored)
            values[t] = value_net(observation)
            valid[t] = True if bug == "reset_step_trained" else torch.tensor(~resetting)
            next_obs, reward, term, trunc, _ = envs.step(action.numpy())
            if bug == "obs_after_step":
                obs[t] = torch.tensor(next_obs, dtype=torch.float32)
            rewards[t] = torch.tensor(reward, dtype=torch.float32)
            terminated[t] = torch.tensor(term | trunc if bug == "flags_merged" else term, dtype=torch.float32)
            truncated[t] = torch.tensor(trunc, dtype=torch.float32)
            resetting = np.asarray(term) if bug == "truncation_no_reset" else np.asarray(term | trunc)
            if bug == "valid_same_step":
                valid[t] = torch.tensor(~resetting)
        last_value = value_net(torch.tensor(next_obs, dtype=torch.float32))
    next_values = torch.cat([values[1:], last_value[None]])
    if bug == "bootstrap_from_reset_obs":  # "the next state after an ending is the new episode's first state"
        all_values = torch.cat([values, last_value[None]])
        ended = (terminated + truncated).bool()
        for t in range(n_steps - 1):
            for n in range(num_envs):
                if ended[t, n]:
                    next_values[t, n] = all_values[t + 2, n]
    if bug == "no_last_bootstrap":
        next_values[-1] = 0.0
    rollout = Rollout(obs=obs, actions=actions, log_probs=log_probs, values=values, next_values=next_values,
                      rewards=rewards, terminated=terminated, truncated=truncated, valid=valid)
    return rollout, (next_obs, resetting)


@correct("collect_rollout")
def rollout_cleanrl_style(envs, policy, value_net, start, n_steps):
    """Preallocated buffers, Categorical.log_prob (rounds differently from log_softmax)."""
    return learner_rollout(envs, policy, value_net, start, n_steps)


@correct("collect_rollout")
def rollout_values_batched_after_the_loop(envs, policy, value_net, start, n_steps):
    """Lists of numpy arrays; the values of all observations in one forward pass after the loop."""
    obs_np, resetting = start
    resetting = np.array(resetting, dtype=bool)
    observations, actions, log_probs, rewards, terminated, truncated, valid = [], [], [], [], [], [], []
    with torch.no_grad():
        for _ in range(n_steps):
            observation = torch.as_tensor(obs_np, dtype=torch.float32)
            log_pi = torch.log_softmax(policy(observation), dim=-1)
            action = Categorical(logits=policy(observation)).sample()
            observations.append(observation)
            actions.append(action)
            log_probs.append(log_pi[torch.arange(len(action)), action])
            valid.append(~resetting)
            obs_np, reward, term, trunc, _ = envs.step(action.numpy())
            rewards.append(reward)
            terminated.append(term)
            truncated.append(trunc)
            resetting = term | trunc
        all_obs = torch.stack(observations + [torch.as_tensor(obs_np, dtype=torch.float32)])  # [T + 1, N, 4]
        all_values = value_net(all_obs.reshape(-1, all_obs.shape[-1])).reshape(all_obs.shape[:2])
    rollout = Rollout(obs=all_obs[:-1], actions=torch.stack(actions), log_probs=torch.stack(log_probs),
                      values=all_values[:-1], next_values=all_values[1:],
                      rewards=torch.as_tensor(np.array(rewards), dtype=torch.float32),
                      terminated=torch.as_tensor(np.array(terminated), dtype=torch.float32),
                      truncated=torch.as_tensor(np.array(truncated), dtype=torch.float32),
                      valid=torch.as_tensor(np.array(valid)))
    return rollout, (obs_np, resetting)


@wrong("collect_rollout", "reset steps are marked as real transitions")
def rollout_trains_on_reset_steps(envs, policy, value_net, start, n_steps):
    """Reset step trained on: every step is marked valid."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="reset_step_trained")


@wrong("collect_rollout", "the mask is one step early")
def rollout_valid_from_this_steps_flags(envs, policy, value_net, start, n_steps):
    """Marks the step that ends an episode invalid (its own flags) instead of the reset step after it."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="valid_same_step")


@wrong("collect_rollout", "a truncation is followed by a reset step too")
def rollout_no_reset_after_truncation(envs, policy, value_net, start, n_steps):
    """Only a termination makes the next step a reset step."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="truncation_no_reset")


@wrong("collect_rollout", "ignores where the previous one stopped")
def rollout_ignores_start_flags(envs, policy, value_net, start, n_steps):
    """The first step of a continued rollout is taken as a real transition even after an episode end."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="start_ignored")


@wrong("collect_rollout", "bootstrap from the NEW episode's first observation")
def rollout_bootstraps_from_reset_observation(envs, policy, value_net, start, n_steps):
    """Bootstrapping from the reset observation: next value of an ending step is V(first obs of the next episode)."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="bootstrap_from_reset_obs")


@wrong("collect_rollout", "the last step's next value is missing")
def rollout_without_last_bootstrap(envs, policy, value_net, start, n_steps):
    """No V(last observation): the last step's next value is 0."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="no_last_bootstrap")


@wrong("collect_rollout", "you store the observation the step RETURNED")
def rollout_stores_next_observation(envs, policy, value_net, start, n_steps):
    """Stores s_{t+1} in obs[t]."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="obs_after_step")


@wrong("collect_rollout", "your terminated flags include the truncations")
def rollout_merges_flags(envs, policy, value_net, start, n_steps):
    """Truncation treated as termination at collection: terminated = terminated or truncated."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="flags_merged")


@wrong("collect_rollout", "you take the most likely action")
def rollout_greedy(envs, policy, value_net, start, n_steps):
    """Acts greedily instead of sampling."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="greedy")


@wrong("collect_rollout", "the most likely action, not of the action you sampled")
def rollout_log_prob_of_argmax(envs, policy, value_net, start, n_steps):
    """Samples the action but stores the log-probability of the most likely one."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="log_prob_of_argmax")


@wrong("collect_rollout", "connected to the autograd graph")
def rollout_with_grad(envs, policy, value_net, start, n_steps):
    """Collects with autograd on: the stored values carry a graph (advantages not detached downstream)."""
    return learner_rollout(envs, policy, value_net, start, n_steps, bug="with_grad")


# ================================================================================ 04b advantages_and_returns

def learner_gae(rewards, values, next_values, terminated, truncated, gamma, lam, bug=None):
    """A backward loop over time, flags combined with maximum (a logical or of 0/1 floats)."""
    if bug == "next_values_masked_in_place":  # detach() shares the caller's storage: mul_ writes into it
        next_values.detach().mul_(1.0 - terminated)
    if bug == "values_shifted_in_place":
        values.detach().add_(1.0)
        values = values - 1.0
    original_values = values
    if bug != "not_detached":
        values, next_values = values.detach(), next_values.detach()
    if bug == "env_axis":
        rewards, terminated, truncated, values, next_values = (
            x.T for x in (rewards, terminated, truncated, values, next_values))
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        ended = terminated[t] + truncated[t] if bug == "flags_summed" else torch.maximum(terminated[t], truncated[t])
        no_future = ended if bug == "truncation_as_termination" else terminated[t]
        delta = rewards[t] + gamma * next_values[t] * (1.0 - no_future) - values[t]
        cut = 0.0 if bug == "trace_not_cut" else ended
        last = delta + gamma * lam * (1.0 - cut) * last
        advantages[t] = last
    if bug == "env_axis":
        advantages, values = advantages.T, values.T
    if bug == "returns_not_detached":  # advantages from cut values, returns from the values with their graph
        return advantages, advantages + original_values
    return advantages, (advantages if bug == "returns_are_advantages" else advantages + values)


@correct("advantages_and_returns")
def gae_backward_loop(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Backward loop with torch.maximum for the episode end."""
    return learner_gae(rewards, values, next_values, terminated, truncated, gamma, lam)


@correct("advantages_and_returns")
def gae_vectorised_deltas_in_float64(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Float64 arithmetic, the TD errors vectorised, the advantages collected in a list and stacked."""
    values64, next_values64 = values.detach().double(), next_values.detach().double()
    deltas = rewards.double() + gamma * (1.0 - terminated.double()) * next_values64 - values64  # [T, N]
    continues = 1.0 - torch.logical_or(terminated.bool(), truncated.bool()).double()  # [T, N]
    rows, following = [], torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        following = deltas[t] + gamma * lam * continues[t] * following
        rows.append(following)
    advantages = torch.stack(rows[::-1]).float()
    return advantages, advantages + values.detach()


@wrong("advantages_and_returns", "a truncation is treated as a termination")
def gae_truncation_as_termination(*args):
    """Truncation treated as termination: no bootstrap after a time-limit end."""
    return learner_gae(*args, bug="truncation_as_termination")


@wrong("advantages_and_returns", "your recursion runs along the env axis")
def gae_over_the_env_axis(*args):
    """GAE over the env axis: the backward loop runs over the columns."""
    return learner_gae(*args, bug="env_axis")


@wrong("advantages_and_returns", "1 - done = -1")
def gae_flags_summed(*args):
    """done = terminated + truncated, 2 where both flags are set."""
    return learner_gae(*args, bug="flags_summed")


@wrong("advantages_and_returns", "the lambda-trace is not cut at episode ends")
def gae_trace_not_cut(*args):
    """The trace runs on into the next episode."""
    return learner_gae(*args, bug="trace_not_cut")


@wrong("advantages_and_returns", "advantages not detached")
def gae_not_detached(*args):
    """Advantages not detached: built from values that carry a graph."""
    return learner_gae(*args, bug="not_detached")


@wrong("advantages_and_returns", "returns not detached")
def gae_returns_not_detached(*args):
    """Advantages from detached values, but the returns add the values that still carry their graph (a student's
    read: told 'advantages not detached')."""
    return learner_gae(*args, bug="returns_not_detached")


@wrong("advantages_and_returns", "advantages plus the values")
def gae_returns_are_advantages(*args):
    """Returns the advantages as the critic targets."""
    return learner_gae(*args, bug="returns_are_advantages")


@wrong("advantages_and_returns", "an operation wrote into `next_values`")
def gae_masks_next_values_in_place(*args):
    """Zeroes next_values after terminations in place (right advantages, but the caller's next_values changed)."""
    return learner_gae(*args, bug="next_values_masked_in_place")


@wrong("advantages_and_returns", "an operation wrote into `values`")
def gae_shifts_values_in_place(*args):
    """Adds 1 to values in place and takes it off again in its own arithmetic (right results, the caller's values
    changed)."""
    return learner_gae(*args, bug="values_shifted_in_place")


# ============================================================================================ 04b ppo_update

def learner_update(policy, value_net, actor_optimizer, critic_optimizer, rollout, advantages, returns,
                   minibatches, config, bug=None, sample_std=False):
    """CleanRL's form: Categorical, the loss as max of the negated terms, diagnostics inline."""
    keep = torch.ones_like(rollout.valid).flatten() if bug == "reset_steps_trained" else rollout.valid.flatten()
    b_obs = rollout.obs.flatten(0, 1)[keep]
    b_actions, b_old = rollout.actions.flatten()[keep], rollout.log_probs.flatten()[keep]
    b_advantages, b_returns = advantages.flatten()[keep], returns.flatten()[keep]
    per_minibatch = config.normalize_per_minibatch or bug == "always_per_minibatch"
    unbiased = sample_std or bug == "sample_std"  # not a bug: the sample std (divides by B - 1) is as right as the population one
    if config.normalize_advantages and not per_minibatch:
        b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std(unbiased=unbiased) + 1e-8)
    kls, fractions = [], []
    for epoch in minibatches:
        if bug == "old_per_epoch":
            with torch.no_grad():
                b_old = Categorical(logits=policy(b_obs)).log_prob(b_actions)
        for mb in epoch:
            dist = Categorical(logits=policy(b_obs[mb]))
            new_log_probs = dist.log_prob(b_actions[mb])
            old = new_log_probs.detach() if bug == "stale_old_log_probs" else b_old[mb]
            log_ratio = new_log_probs - old
            ratio = log_ratio.exp()
            mb_advantages = b_advantages[mb]
            if bug == "advantages_from_current_critic":
                with torch.no_grad():
                    mb_advantages = b_returns[mb] - value_net(b_obs[mb])
            if config.normalize_advantages and per_minibatch:
                mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std(unbiased=unbiased) + 1e-8)
            pessimistic = torch.min if bug == "min_of_negated" else torch.max  # max of the negated terms is right
            surrogate = pessimistic(-mb_advantages * ratio,
                                    -mb_advantages * ratio.clamp(1 - config.clip_eps, 1 + config.clip_eps)).mean()
            entropy_sign = 1 if bug == "entropy_added" else -1
            actor_loss = surrogate + entropy_sign * config.ent_coef * dist.entropy().mean()
            if bug == "behaviour_cloning":  # imitate a hand-made CartPole controller, softly (KL stays small)
                pushes_right = (b_obs[mb][:, 2] + 0.5 * b_obs[mb][:, 3] > 0).long()  # angle + angular velocity
                target = 0.25 + 0.5 * torch.nn.functional.one_hot(pushes_right, 2).float()  # [b, 2] 0.75 / 0.25
                actor_loss = -(target * torch.log_softmax(dist.logits, -1)).sum(-1).mean()
            elif bug == "controller_advantages":  # PPO's loss, the advantages replaced by agreement with it
                pushes_right = (b_obs[mb][:, 2] + 0.5 * b_obs[mb][:, 3] > 0).long()
                agree = 2.0 * (b_actions[mb] == pushes_right).float() - 1.0
                actor_loss = torch.max(-agree * ratio, -agree * ratio.clamp(1 - config.clip_eps,
                                                                            1 + config.clip_eps)).mean()
            critic_loss = (1.0 if bug == "critic_no_half" else 0.5) * ((value_net(b_obs[mb]) - b_returns[mb]) ** 2).mean()
            if bug == "joint_clipping":
                actor_optimizer.zero_grad()
                critic_optimizer.zero_grad()
                (actor_loss + critic_loss).backward()
                if config.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(list(policy.parameters()) + list(value_net.parameters()),
                                                   config.max_grad_norm)
                actor_optimizer.step()
                critic_optimizer.step()
            else:
                steps = ((critic_optimizer, critic_loss, value_net, config.critic_max_grad_norm),
                         (actor_optimizer, actor_loss, policy, config.max_grad_norm))
                for optimizer, loss, net, limit in steps:
                    optimizer.zero_grad()
                    loss.backward()
                    if limit is not None and not (bug == "no_actor_clip" and net is policy):
                        torch.nn.utils.clip_grad_norm_(net.parameters(), limit)
                    optimizer.step()
            with torch.no_grad():
                kls.append(((ratio - 1) - log_ratio).mean().item() if bug != "kl_swapped"
                           else ((1 / ratio - 1) + log_ratio).mean().item())
                fractions.append(((ratio - 1.0).abs() > config.clip_eps).float().mean().item())
    with torch.no_grad():
        predicted = rollout.values.flatten()[keep].detach().clone() if bug == "ev_before_update" else value_net(b_obs)
        explained = 1 - (b_returns - predicted).var(unbiased=False) / b_returns.var(unbiased=False)
    return {"approx_kl": float(np.mean(kls)), "clip_fraction": float(np.mean(fractions)),
            "explained_variance": float(explained)}


@correct("ppo_update")
def update_cleanrl_style(*args):
    """Categorical log-probs, max of negated terms, critic stepped before the actor."""
    return learner_update(*args)


@correct("ppo_update")
def update_standardised_with_the_sample_std(*args):
    """CleanRL's form with torch's default std, the sample one (divides by B - 1), where the reference uses the
    population std: a 1/B difference PPO does not care about, accepted."""
    return learner_update(*args, bug="sample_std")


@correct("ppo_update")
def update_old_log_probs_recomputed_once(policy, value_net, actor_optimizer, critic_optimizer, rollout, advantages,
                                         returns, minibatches, config):
    """pi_old's log-probs recomputed once, before the first step, from the policy that collected the rollout:
    the same numbers as the stored ones, up to rounding."""
    with torch.no_grad():
        logits = policy(rollout.obs.flatten(0, 1))
        recomputed = torch.log_softmax(logits, -1).gather(-1, rollout.actions.flatten()[:, None]).squeeze(-1)
    fresh = Rollout(**{**rollout.__dict__, "log_probs": recomputed.reshape(rollout.log_probs.shape)})
    return learner_update(policy, value_net, actor_optimizer, critic_optimizer, fresh, advantages, returns,
                          minibatches, config)


@wrong("ppo_update", "the 'old' log-probs are recomputed from the policy being updated")
def update_stale_old_log_probs(*args):
    """Stale old log-probs: pi_old is the current policy in every minibatch, so the ratio is always 1."""
    return learner_update(*args, bug="stale_old_log_probs")


@wrong("ppo_update", "pi_old moves from epoch to epoch")
def update_old_log_probs_each_epoch(*args):
    """Recomputes pi_old's log-probs at the start of every epoch."""
    return learner_update(*args, bug="old_per_epoch")


@wrong("ppo_update", "reset steps are in your batch")
def update_trains_on_reset_steps(*args):
    """Reset step trained on: the batch is all T * N rows, valid or not."""
    return learner_update(*args, bug="reset_steps_trained")


@wrong("ppo_update", "the advantages are normalised at the wrong level")
def update_normalises_per_minibatch(*args):
    """Normalising per minibatch when the config asks for the whole batch."""
    return learner_update(*args, bug="always_per_minibatch")


@wrong("ppo_update", "clips each network's gradient to its own limit")
def update_joint_clipping(*args):
    """One backward over both losses, one gradient clip over both networks."""
    return learner_update(*args, bug="joint_clipping")


@wrong("ppo_update", "approx_kl has its arguments swapped")
def update_kl_swapped(*args):
    """k3 estimator of KL(pi_new || pi_old)."""
    return learner_update(*args, bug="kl_swapped")


@wrong("ppo_update", "the entropy term has the wrong sign")
def update_entropy_added(*args):
    """The entropy added to the loss (minimised: it drives the policy to collapse), not subtracted."""
    return learner_update(*args, bug="entropy_added")


@wrong("ppo_update", "the advantages are recomputed from the critic being updated")
def update_advantages_from_the_current_critic(*args):
    """Each minibatch's advantages recomputed as returns - V(s) with the critic as it is being trained."""
    return learner_update(*args, bug="advantages_from_current_critic")


@wrong("ppo_update", "explained_variance uses the values stored in the rollout")
def update_ev_before_the_update(*args):
    """Explained variance of the rollout's values, measured before the update."""
    return learner_update(*args, bug="ev_before_update")


@wrong("ppo_update", "the actor's gradient is not clipped")
def update_actor_not_clipped(*args):
    """Only the critic's gradient clipped (a student's try: 'No known mistake')."""
    return learner_update(*args, bug="no_actor_clip")


@wrong("ppo_update", "max instead of min")
def update_min_of_the_negated_terms(*args):
    """torch.min of the negated surrogates: the optimistic objective (the same)."""
    return learner_update(*args, bug="min_of_negated")


@wrong("ppo_update", "the critic's loss lacks its half")
def update_critic_loss_without_half(*args):
    """The critic's mean squared error without the 0.5 (the same)."""
    return learner_update(*args, bug="critic_no_half")


# torch's default std (the sample one, accepted) with a real mistake on top: the message must name the mistake, not
# say that the parameters differ from the population std's (a student's try: every such mistake was "No known
# mistake"). The same mistakes as above, so not in the catalogue (one wrong version per mistake): tests/
# test_loop_checks.py checks that each gets its population-std twin's message.
SAMPLE_STD_TWINS = {bug: twin for bug, twin in (("entropy_added", "update_entropy_added"),
                                               ("kl_swapped", "update_kl_swapped"),
                                               ("ev_before_update", "update_ev_before_the_update"),
                                               ("reset_steps_trained", "update_trains_on_reset_steps"))}


# ============================================================================================= 04b train_ppo

def learner_train_ppo(envs, config, collect=learner_rollout, update=learner_update, bug=None):
    """The loop as the docstring says it, written the learner's way: Categorical log-probs everywhere (they round
    differently from the reference's log_softmax, so the run drifts from the package's), a while loop over the valid
    transitions collected; ``bug=`` one glue mistake."""
    torch.manual_seed(config.seed)
    obs, _ = envs.reset(seed=config.seed)
    policy, value_net = CategoricalPolicy(4, 2, config.hidden_sizes), ValueNet(4, config.hidden_sizes)
    untrained = CategoricalPolicy(4, 2, config.hidden_sizes)
    untrained.load_state_dict(policy.state_dict())
    actor_optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
    critic_optimizer = torch.optim.Adam(value_net.parameters(), lr=config.critic_lr, eps=config.adam_eps)
    generator = torch.Generator().manual_seed(config.seed)
    first_start = start = (obs, np.zeros(envs.num_envs, dtype=bool))
    transitions, history = 0, []
    budget = config.total_steps * (2 if bug == "double_budget" else 1)
    updates_up_front = config.total_steps // (config.num_envs * config.n_steps)  # reset steps counted: too few
    while len(history) < updates_up_front if bug == "updates_up_front" else transitions < budget:
        if config.anneal_lr and bug != "no_anneal":
            fraction = 1.0 - transitions / config.total_steps
            actor_optimizer.param_groups[0]["lr"] = fraction * config.lr
            critic_optimizer.param_groups[0]["lr"] = fraction * config.critic_lr
        if bug == "reset_every_rollout":
            obs, _ = envs.reset()
            start = (obs, np.zeros(envs.num_envs, dtype=bool))
        given = first_start if bug == "stale_start" else start
        rollout, start = collect(envs, policy, value_net, given, config.n_steps)
        transitions += int(rollout.valid.sum())
        terminated = ((rollout.terminated + rollout.truncated).clamp(max=1) if bug == "truncation_as_termination"
                      else rollout.terminated)
        advantages, returns = learner_gae(rollout.rewards, rollout.values, rollout.next_values, terminated,
                                          rollout.truncated, config.gamma, config.gae_lambda)
        batch = int(rollout.valid.sum())
        epochs = 1 if bug == "one_epoch" else config.update_epochs
        minibatches = [minibatch_indices(batch, config.minibatch_size, generator) for _ in range(epochs)]
        history.append(update(policy, value_net, actor_optimizer, critic_optimizer, rollout, advantages, returns,
                              minibatches, config))
        if bug == "weight_noise":  # "parameter noise for exploration"
            with torch.no_grad():
                for parameter in policy.parameters():
                    parameter.add_(1e-3 * torch.randn_like(parameter))
    return (untrained if bug == "untrained_copy" else policy), history


@correct("train_ppo")
def train_ppo_with_categorical_log_probs(envs, config):
    """Categorical(logits).log_prob(a) in the rollout and the update, as the docstring invites."""
    return learner_train_ppo(envs, config)


@correct("train_ppo")
def train_ppo_with_log_softmax_gather(envs, config):
    """log_softmax + gather in the rollout (values in one pass after it), pi_old's log-probs recomputed once."""
    return learner_train_ppo(envs, config, collect=rollout_values_batched_after_the_loop,
                             update=update_old_log_probs_recomputed_once)


@correct("train_ppo")
def train_ppo_minibatches_split_by_size(envs, config):
    """Other minibatch code: a permutation cut into chunks of minibatch_size (the last one smaller), the same
    number of minibatches as minibatch_indices; the annealing written as lr - lr * fraction used."""
    torch.manual_seed(config.seed)
    obs, _ = envs.reset(seed=config.seed)
    policy, value_net = CategoricalPolicy(4, 2, config.hidden_sizes), ValueNet(4, config.hidden_sizes)
    optimizers = (torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps),
                  torch.optim.Adam(value_net.parameters(), lr=config.critic_lr, eps=config.adam_eps))
    generator = torch.Generator().manual_seed(config.seed)
    start, collected, history = (obs, np.zeros(envs.num_envs, dtype=bool)), 0, []
    while collected < config.total_steps:
        for optimizer, initial in zip(optimizers, (config.lr, config.critic_lr)):
            optimizer.param_groups[0]["lr"] = initial - initial * collected / config.total_steps if \
                config.anneal_lr else initial
        rollout, start = learner_rollout(envs, policy, value_net, start, config.n_steps)
        size = int(rollout.valid.sum())
        collected += size
        advantages, returns = gae_vectorised_deltas_in_float64(rollout.rewards, rollout.values, rollout.next_values,
                                                               rollout.terminated, rollout.truncated, config.gamma,
                                                               config.gae_lambda)
        minibatches = [list(torch.randperm(size, generator=generator).split(config.minibatch_size))
                       for _ in range(config.update_epochs)]
        history.append(learner_update(policy, value_net, *optimizers, rollout, advantages, returns, minibatches,
                                      config))
    return policy, history


@correct("train_ppo")
def train_ppo_with_sample_std(envs, config):
    """Advantages standardised with the sample std (B - 1), which 04b accepts as well as the population std."""
    return learner_train_ppo(envs, config, update=lambda *args: learner_update(*args, bug="sample_std"))


@wrong("train_ppo", "your actor is not trained on PPO's loss")
def train_ppo_behaviour_cloning(envs, config):
    """PPO's structure (rollouts, GAE, epochs, minibatches, both optimisers) but the actor imitates a hand-made
    controller (push towards the side the pole falls): it learns CartPole, not from PPO's loss."""
    return learner_train_ppo(envs, config, update=lambda *args: learner_update(*args, bug="behaviour_cloning"))


@wrong("train_ppo", "your actor is not trained on PPO's loss")
def train_ppo_controller_advantages(envs, config):
    """PPO's clipped loss, with +1/-1 for agreeing with a hand-made controller in place of the GAE advantages."""
    return learner_train_ppo(envs, config, update=lambda *args: learner_update(*args, bug="controller_advantages"))


@wrong("train_ppo", "ratio is always 1, so pi_old is the policy being updated")
def train_ppo_stale_old_log_probs(envs, config):
    """The whole loop with stale old log-probs: KL and clip fraction exactly 0."""
    return learner_train_ppo(envs, config, update=lambda *args: learner_update(*args, bug="stale_old_log_probs"))


@wrong("train_ppo", "treats a truncated step as a terminated one")
def train_ppo_truncation_as_termination(envs, config):
    """The glue passes terminated | truncated as `terminated` to the advantages: no bootstrap at a time limit. At
    10,000 steps of CartPole no episode reaches 500 steps, so only the short truncation case can tell (issue 46)."""
    return learner_train_ppo(envs, config, bug="truncation_as_termination")


@wrong("train_ppo", "stop at the first update that reaches it")
def train_ppo_twice_the_budget(envs, config):
    """Runs twice total_steps."""
    return learner_train_ppo(envs, config, bug="double_budget")


@wrong("train_ppo", "short of config.total_steps")
def train_ppo_updates_counted_up_front(envs, config):
    """total_steps // (num_envs * n_steps) updates: the reset steps are not transitions, so it stops short."""
    return learner_train_ppo(envs, config, bug="updates_up_front")


@wrong("train_ppo", "the learning rates are never annealed")
def train_ppo_without_annealing(envs, config):
    """config.anneal_lr ignored: the learning rates stay at their initial values."""
    return learner_train_ppo(envs, config, bug="no_anneal")


@wrong("train_ppo", "reset once, at the start")
def train_ppo_resets_every_rollout(envs, config):
    """Each rollout starts from envs.reset(): no episode outlives a rollout."""
    return learner_train_ppo(envs, config, bug="reset_every_rollout")


@wrong("train_ppo", "carry start = the next_start collect_rollout returned")
def train_ppo_start_not_carried(envs, config):
    """Every rollout is given the start of the first one."""
    return learner_train_ppo(envs, config, bug="stale_start")


@wrong("train_ppo", "config.update_epochs = 10 lists")
def train_ppo_one_epoch(envs, config):
    """One list of minibatches per update instead of config.update_epochs."""
    return learner_train_ppo(envs, config, bug="one_epoch")


@wrong("train_ppo", "is not the one your actor's optimiser trained")
def train_ppo_returns_an_untrained_copy(envs, config):
    """Trains, then returns a copy of the policy made before training."""
    return learner_train_ppo(envs, config, bug="untrained_copy")


@wrong("train_ppo", "the policy's weights changed between two of its optimiser's steps, not by a step")
def train_ppo_adds_weight_noise(envs, config):
    """Adds noise to the policy's weights after each update (parameter-space exploration, not PPO)."""
    return learner_train_ppo(envs, config, bug="weight_noise")


@wrong("train_ppo", "never stepped the envs")
def train_ppo_without_envs(envs, config):
    """Touches no environment: returns the untrained policy and made-up, healthy-looking diagnostics."""
    torch.manual_seed(config.seed)
    made_up = {"approx_kl": 0.004, "clip_fraction": 0.04, "explained_variance": 0.8}
    updates = config.total_steps // (config.num_envs * config.n_steps)
    return CategoricalPolicy(4, 2, config.hidden_sizes), [dict(made_up) for _ in range(updates)]


# ================================================================================ 01 collect_episodes

def learner_collect_episodes(envs, policy, bug=None):
    """Per-env lists, appended while an env's first episode runs."""
    obs, _ = envs.reset(seed=0) if bug == "reseeded" else envs.reset()
    num_envs = envs.num_envs
    playing = np.ones(num_envs, dtype=bool)
    per_env = [([], [], []) for _ in range(num_envs)]
    with torch.no_grad():
        while playing.any() if bug != "stop_at_first" else playing.all():
            observation = torch.as_tensor(obs, dtype=torch.float32)
            actions = Categorical(logits=policy(observation)).sample()
            next_obs, rewards, terminated, truncated, _ = envs.step(actions.numpy())
            ended = terminated if bug == "truncation_ignored" else terminated | truncated
            for i in np.flatnonzero(playing):
                if bug == "drop_last" and ended[i]:
                    continue
                per_env[i][0].append(observation[i])
                per_env[i][1].append(actions[i])
                per_env[i][2].append(float(rewards[i]))
            playing &= ~ended
            obs = next_obs
    obs_out = torch.stack([o for observations, _, _ in per_env for o in observations])
    actions_out = torch.stack([a for _, acts, _ in per_env for a in acts])
    return obs_out, actions_out, [torch.tensor(rewards, dtype=torch.float32) for _, _, rewards in per_env]


@correct("collect_episodes")
def episodes_in_per_env_lists(envs, policy):
    """Appends each env's steps to its own lists while its first episode runs."""
    return learner_collect_episodes(envs, policy)


@wrong("collect_episodes", "you stop when the FIRST env finishes")
def episodes_stop_at_first_end(envs, policy):
    """Stops the batch when any env finishes."""
    return learner_collect_episodes(envs, policy, bug="stop_at_first")


@wrong("collect_episodes", "a truncation (the time limit) ends an episode too")
def episodes_ignore_truncation(envs, policy):
    """Plays on after a time-limit end, into the reset step and the next episode."""
    return learner_collect_episodes(envs, policy, bug="truncation_ignored")


@wrong("collect_episodes", "each episode lacks its last step")
def episodes_drop_the_last_step(envs, policy):
    """The ending step's reward is lost."""
    return learner_collect_episodes(envs, policy, bug="drop_last")


@wrong("collect_episodes", "you reset the envs with a seed inside collect_episodes")
def episodes_reseeded(envs, policy):
    """Resets with seed=0 every batch: the same starting states every time."""
    return learner_collect_episodes(envs, policy, bug="reseeded")


@wrong("collect_episodes", "your obs and actions are in time order")
def episodes_time_major(envs, policy):
    """Stacks the steps into [T, N] tensors and picks each env's first-episode steps with a [T, N] mask: the
    batch comes out time-major (every env's step 0, then every env's step 1, ...), not env 0's episode first (a
    student's try: 'No known mistake')."""
    obs_np, _ = envs.reset()
    obs_rows, action_rows, reward_rows, end_rows = [], [], [], []
    with torch.no_grad():
        ended = np.zeros(envs.num_envs, dtype=bool)
        while not ended.all():
            observation = torch.as_tensor(obs_np, dtype=torch.float32)
            actions = Categorical(logits=policy(observation)).sample()
            obs_np, rewards, terminated, truncated, _ = envs.step(actions.numpy())
            obs_rows.append(observation)
            action_rows.append(actions)
            reward_rows.append(torch.as_tensor(rewards, dtype=torch.float32))
            end_rows.append(torch.as_tensor(terminated | truncated))
            ended |= terminated | truncated
    ends = torch.stack(end_rows)  # [T, N]
    before_end = torch.cumsum(ends.long(), dim=0) - ends.long()  # [T, N] episode ends strictly before t
    first_episode = before_end == 0  # [T, N]
    rewards_all = torch.stack(reward_rows)
    return (torch.stack(obs_rows)[first_episode], torch.stack(action_rows)[first_episode],
            [rewards_all[first_episode[:, i], i] for i in range(envs.num_envs)])


# ================================================================================ 01 reinforce_update

def learner_reinforce_update(policy, optimizer, obs, actions, episode_rewards, config, bug=None):
    """Returns by a vectorised cumulative sum of discounted rewards, Categorical log-probs."""
    weights = []
    for rewards in ([torch.cat(list(episode_rewards))] if bug == "across_episodes" else episode_rewards):
        if bug == "total_return_everywhere":  # the episode's undiscounted sum of rewards at every step
            weights.append(torch.full((len(rewards),), float(rewards.sum())))
            continue
        discounts = config.gamma ** torch.arange(len(rewards), dtype=torch.float64)
        discounted = (rewards.double() * discounts).flip(0).cumsum(0).flip(0) / discounts
        weights.append(discounted.float())
    weights = torch.cat(weights)
    if config.normalize_weights or bug == "always_normalise":
        weights = (weights - weights.mean()) / (weights.std(unbiased=False) + 1e-8)
    loss = -(Categorical(logits=policy(obs)).log_prob(actions) * weights).mean()
    if bug == "ascent":
        loss = -loss
    if bug not in ("no_zero_grad", "zero_grad_after_backward"):
        optimizer.zero_grad()
    loss.backward()
    if bug == "zero_grad_after_backward":
        optimizer.zero_grad()
    optimizer.step()


@correct("reinforce_update")
def reinforce_update_vectorised_returns(policy, optimizer, obs, actions, episode_rewards, config):
    """Discounted returns as a reversed cumulative sum (float64), Categorical log-probs."""
    learner_reinforce_update(policy, optimizer, obs, actions, episode_rewards, config)


@wrong("reinforce_update", "zero the gradients BEFORE the backward pass")
def reinforce_update_zero_grad_after_backward(policy, optimizer, obs, actions, episode_rewards, config):
    """zero_grad between backward and step: the step sees no gradient, the policy never moves (a student's try was
    told 'No known mistake')."""
    learner_reinforce_update(policy, optimizer, obs, actions, episode_rewards, config, bug="zero_grad_after_backward")


@wrong("reinforce_update", "config.normalize_weights is not followed")
def reinforce_update_always_normalises(policy, optimizer, obs, actions, episode_rewards, config):
    """Normalising when asked not to."""
    learner_reinforce_update(policy, optimizer, obs, actions, episode_rewards, config, bug="always_normalise")


@wrong("reinforce_update", "discounted across episode boundaries")
def reinforce_update_one_long_episode(policy, optimizer, obs, actions, episode_rewards, config):
    """Discounts the concatenated batch as if it were one episode."""
    learner_reinforce_update(policy, optimizer, obs, actions, episode_rewards, config, bug="across_episodes")


@wrong("reinforce_update", "weighted by its episode's total reward, undiscounted")
def reinforce_update_total_return_everywhere(policy, optimizer, obs, actions, episode_rewards, config):
    """Every step weighted by its episode's undiscounted total return, sum(rewards) (a student's try: 'No known
    mistake')."""
    learner_reinforce_update(policy, optimizer, obs, actions, episode_rewards, config, bug="total_return_everywhere")


@wrong("reinforce_update", "the gradients are not zeroed")
def reinforce_update_without_zero_grad(policy, optimizer, obs, actions, episode_rewards, config):
    """Gradients accumulate from one update to the next."""
    learner_reinforce_update(policy, optimizer, obs, actions, episode_rewards, config, bug="no_zero_grad")


@wrong("reinforce_update", "the step goes the wrong way")
def reinforce_update_ascends_the_loss(policy, optimizer, obs, actions, episode_rewards, config):
    """Gradient ascent on the loss."""
    learner_reinforce_update(policy, optimizer, obs, actions, episode_rewards, config, bug="ascent")


# ================================================================================ 01 train_reinforce

def learner_train_reinforce(envs, config, update=learner_reinforce_update, batches=None):
    torch.manual_seed(config.seed)
    envs.reset(seed=config.seed)
    policy = CategoricalPolicy(4, 2, config.hidden_sizes)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
    for _ in range(batches or -(-config.max_episodes // envs.num_envs)):
        update(policy, optimizer, *learner_collect_episodes(envs, policy), config)
    return policy


@correct("train_reinforce")
def train_reinforce_batches_counted_up_front(envs, config):
    """ceil(max_episodes / num_envs) batches, Categorical everywhere."""
    return learner_train_reinforce(envs, config)


@wrong("train_reinforce", "the step goes the wrong way")
def train_reinforce_ascending(envs, config):
    """The whole loop with the loss ascended: the policy unlearns."""
    return learner_train_reinforce(envs, config, update=lambda *args: learner_reinforce_update(*args, bug="ascent"))


@wrong("train_reinforce", "weighted by its episode's total reward, undiscounted")
def train_reinforce_total_return_everywhere(envs, config):
    """The whole loop with every step weighted by its episode's undiscounted total return: an unbiased but noisier
    gradient, so the policy may learn all the same; the check follows each update's gradient and names it."""
    return learner_train_reinforce(
        envs, config, update=lambda *args: learner_reinforce_update(*args, bug="total_return_everywhere"))


@wrong("train_reinforce", "seed first, then build the policy")
def train_reinforce_builds_the_policy_before_seeding(envs, config):
    """The policy built before torch.manual_seed(config.seed): its initial weights are not the exercise's (the check
    used to seed torch with config.seed itself before calling the loop, which hid it: issue 49)."""
    policy = CategoricalPolicy(4, 2, config.hidden_sizes)
    torch.manual_seed(config.seed)
    envs.reset(seed=config.seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
    for _ in range(-(-config.max_episodes // envs.num_envs)):
        learner_reinforce_update(policy, optimizer, *learner_collect_episodes(envs, policy), config)
    return policy


@wrong("train_reinforce", "train until config.max_episodes")
def train_reinforce_one_batch(envs, config):
    """Stops after one batch."""
    return learner_train_reinforce(envs, config, batches=1)


@wrong("train_reinforce", "a copy of the policy your updates trained")
def train_reinforce_returns_a_copy(envs, config):
    """Trains its policy, then returns a new CategoricalPolicy loaded with the trained weights instead of the
    policy itself (a student's try: told that its optimiser steps the wrong tensors)."""
    policy = learner_train_reinforce(envs, config)
    copy = CategoricalPolicy(4, 2, config.hidden_sizes)
    copy.load_state_dict(policy.state_dict())
    return copy


@wrong("train_reinforce", "a new network, not the one your updates trained")
def train_reinforce_returns_a_new_network(envs, config):
    """Trains its policy, then builds and returns a fresh, untrained CategoricalPolicy (a student's try: told that
    its optimiser steps the wrong tensors)."""
    learner_train_reinforce(envs, config)
    return CategoricalPolicy(4, 2, config.hidden_sizes)


# ============================================================== 04b ppo_update: the loss and diagnostics a student got wrong

def learner_update_slipped(policy, value_net, actor_optimizer, critic_optimizer, rollout, advantages, returns,
                           minibatches, config, slip=None):
    """Another learner's update (issue 49's student): log_softmax + gather, the surrogate written with torch.min,
    each network stepped in turn; ``slip=`` one mistake in the loss or in a diagnostic."""
    keep = rollout.valid.flatten()
    b_obs, b_actions = rollout.obs.flatten(0, 1)[keep], rollout.actions.flatten()[keep]
    b_old, b_advantages, b_returns = (x.flatten()[keep] for x in (rollout.log_probs, advantages, returns))
    standardise = lambda a: (a - a.mean()) / (a.std(unbiased=False) + 1e-8)  # noqa: E731
    if config.normalize_advantages and not config.normalize_per_minibatch:
        b_advantages = standardise(b_advantages)
    eps, kls, fractions = config.clip_eps, [], []
    for epoch in minibatches:
        for mb in epoch:
            log_pi = torch.log_softmax(policy(b_obs[mb]), dim=-1)
            new = log_pi.gather(-1, b_actions[mb][:, None]).squeeze(-1)
            entropy = -(log_pi.exp() * log_pi).sum(-1)
            adv = standardise(b_advantages[mb]) if config.normalize_advantages and config.normalize_per_minibatch \
                else b_advantages[mb]
            ratio = torch.exp(b_old[mb] - new if slip == "ratio_inverted" else new - b_old[mb])
            unclipped = ratio * adv
            clipped = (ratio * adv.clamp(1 - eps, 1 + eps) if slip == "advantage_clipped"
                       else ratio.clamp(1 - eps, 1 + eps) * adv)
            objective = clipped if slip == "clipped_only" else torch.min(unclipped, clipped)
            surrogate = objective.mean() if slip == "surrogate_sign" else -objective.mean()
            actor_loss = surrogate - config.ent_coef * entropy.mean()
            critic_loss = 0.5 * ((value_net(b_obs[mb]) - b_returns[mb]) ** 2).mean()
            for optimizer, loss, net, limit in ((actor_optimizer, actor_loss, policy, config.max_grad_norm),
                                                (critic_optimizer, critic_loss, value_net,
                                                 config.critic_max_grad_norm)):
                optimizer.zero_grad()
                loss.backward()
                if limit is not None:
                    torch.nn.utils.clip_grad_norm_(net.parameters(), limit)
                optimizer.step()
            with torch.no_grad():
                log_ratio = new - b_old[mb]
                kls.append(float((-log_ratio).mean() if slip == "kl_k1" else
                                 ((log_ratio.exp() - 1) - log_ratio).mean()))
                fractions.append(float(((log_ratio.exp() - 1).abs() > eps).float().mean()))
    with torch.no_grad():
        predicted = value_net(b_obs)
        explained = (1 - predicted.var(unbiased=False) / b_returns.var(unbiased=False) if slip == "ev_of_values"
                     else 1 - (b_returns - predicted).var(unbiased=False) / b_returns.var(unbiased=False))
    return {"approx_kl": sum(kls) / len(kls),
            "clip_fraction": fractions[-1] if slip == "clip_fraction_last" else sum(fractions) / len(fractions),
            "explained_variance": float(explained)}


@correct("ppo_update")
def update_log_softmax_and_torch_min(*args):
    """log_softmax + gather, the clipped surrogate as -mean(min(ratio * A, clip(ratio) * A)), its own entropy."""
    return learner_update_slipped(*args)


@wrong("ppo_update", "the actor's loss has the wrong sign")
def update_surrogate_sign_flipped(*args):
    """+mean(min(...)): the surrogate minimised, so the actor learns to do worse (a student's try: 'No known
    mistake')."""
    return learner_update_slipped(*args, slip="surrogate_sign")


@wrong("ppo_update", "clip the ratio, not the advantage")
def update_advantage_clipped(*args):
    """ratio * clamp(A, 1 - eps, 1 + eps) in place of clamp(ratio) * A (a student's try: 'No known mistake')."""
    return learner_update_slipped(*args, slip="advantage_clipped")


@wrong("ppo_update", "only the clipped term is kept")
def update_clipped_term_only(*args):
    """-mean(clamp(ratio) * A): no min with the unclipped term (a student's try: 'No known mistake')."""
    return learner_update_slipped(*args, slip="clipped_only")


@wrong("ppo_update", "the ratio is upside down")
def update_ratio_inverted(*args):
    """ratio = exp(old - new) = pi_old / pi_new (a student's try: 'No known mistake')."""
    return learner_update_slipped(*args, slip="ratio_inverted")


@wrong("ppo_update", "approx_kl is k1")
def update_kl_as_k1(*args):
    """approx_kl = mean(-log rho), the k1 estimator (a student's try: bare numbers, no cause)."""
    return learner_update_slipped(*args, slip="kl_k1")


@wrong("ppo_update", "explained_variance compares the variance of the predictions")
def update_ev_of_the_values(*args):
    """explained_variance = 1 - Var(V) / Var(R) (a student's try: bare numbers, no cause)."""
    return learner_update_slipped(*args, slip="ev_of_values")


@wrong("ppo_update", "clip_fraction is the last gradient step's")
def update_clip_fraction_of_the_last_step(*args):
    """clip_fraction of the last minibatch only (a student's try: bare numbers, no cause)."""
    return learner_update_slipped(*args, slip="clip_fraction_last")


# ======================================================================= 04b collect_rollout and train_ppo: next_start

def rollout_next_start_never_resetting(envs, policy, value_net, start, n_steps):
    """A right rollout whose next_start carries resetting flags that are always False: the next rollout never knows
    an episode ended on this one's last step (a student's try passed: the check never gave a rollout the start the
    learner's previous rollout returned)."""
    rollout, (next_obs, resetting) = learner_rollout(envs, policy, value_net, start, n_steps)
    return rollout, (next_obs, np.zeros_like(resetting))


@wrong("collect_rollout", "the next rollout's start must say which envs were reset")
def rollout_returns_a_start_that_never_resets(envs, policy, value_net, start, n_steps):
    """next_start's resetting flags always False (a student's try: '✓ 5 rollouts equal to the reference')."""
    return rollout_next_start_never_resetting(envs, policy, value_net, start, n_steps)


@wrong("train_ppo", "A reset step was counted as a transition")
def train_ppo_with_a_start_that_never_resets(envs, config):
    """The loop with a collect_rollout whose next_start never says an env is resetting: a reset step after an
    episode that ended on a rollout's last step is counted as a transition (a student's try was told its annealing
    was wrong: the learning rates were annealed as the exercise says, from its own count)."""
    return learner_train_ppo(envs, config, collect=rollout_next_start_never_resetting)


@wrong("train_ppo", "the actor's loss has the wrong sign")
def train_ppo_surrogate_sign_flipped(envs, config):
    """The whole loop with the clipped surrogate's sign flipped (a student's try: 'differs ... by 2 of its size')."""
    return learner_train_ppo(envs, config, update=lambda *args: learner_update_slipped(*args, slip="surrogate_sign"))
