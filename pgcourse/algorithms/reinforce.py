"""REINFORCE, with or without a learned state-value baseline (Monte Carlo policy gradient).

Pseudo-code (lessons 01 and 02):

    for each update:
        reset the num_envs envs; play one complete episode in each with the current policy
        G_t = r_t + gamma G_{t+1}  for every step of every episode
        weights = G_t                        (plain REINFORCE)
                = G_t - V(s_t)               (with baseline; V is a constant in the actor's loss)
        normalise the weights over the batch                           (optional, default on)
        actor:  L = -mean(log pi(a_t|s_t) * weight_t) - beta H[pi]
        critic: L = 1/2 mean((V(s_t) - G_t)^2)                          (baseline only)

Every episode of a batch comes from the same policy: envs that finish early keep stepping (they
must, in a vector env) but those steps are dropped, so the gradient is an unbiased on-policy
Monte Carlo estimate. ``history.episodes["env_step"]`` counts only the transitions trained on.

Hyperparameters are the fields of :class:`pgcourse.config.ReinforceConfig`.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import ReinforceConfig
from ..diagnostics import explained_variance, relative_value_error
from ..run import Run
from .core import Components, Trainer


def collect_episodes(trainer: Trainer) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[float]]:
    """One complete episode per env from a fresh reset.

    Returns ``obs [B, obs_dim]`` and ``actions [B]`` of all episodes concatenated (env 0's episode
    first), the list of each episode's rewards ``[T_i]`` (as trained on: scaled if reward
    normalisation is on) and each episode's raw return (for the history).
    """
    envs, device = trainer.envs, trainer.device
    num_envs = trainer.config.num_envs
    obs_np, _ = envs.reset()  # continues each env's seeded RNG; NEXT_STEP autoreset state is cleared
    obs_steps, action_steps, reward_steps = [], [], []
    lengths = np.zeros(num_envs, dtype=np.int64)  # [N] length of the first episode, 0 while running
    raw_returns = np.zeros(num_envs)  # [N]
    with torch.no_grad():
        while not lengths.all():
            obs = trainer.obs_tensor(obs_np)  # [N, obs_dim]
            actions, _ = trainer.policy.sample(obs)  # [N]
            obs_np, rewards, terminated, truncated, infos = envs.step(trainer.env_actions(actions))
            obs_steps.append(obs)
            action_steps.append(actions)
            reward_steps.append(np.asarray(rewards, dtype=np.float32))
            ended_now = (np.asarray(terminated) | np.asarray(truncated)) & (lengths == 0)
            if ended_now.any():  # gymnasium adds infos["episode"] only on steps where an episode ended
                lengths[ended_now] = len(reward_steps)
                raw_returns[ended_now] = infos["episode"]["r"][ended_now]
    obs_all = torch.stack(obs_steps)  # [T_max, N, obs_dim]
    actions_all = torch.stack(action_steps)  # [T_max, N]
    rewards_all = torch.as_tensor(np.stack(reward_steps), device=device)  # [T_max, N]
    obs = torch.cat([obs_all[:lengths[i], i] for i in range(num_envs)])  # [B, obs_dim]
    actions = torch.cat([actions_all[:lengths[i], i] for i in range(num_envs)])  # [B]
    episode_rewards = [rewards_all[:lengths[i], i] for i in range(num_envs)]  # N x [T_i]
    return obs, actions, episode_rewards, raw_returns.tolist()


def train_reinforce(config: ReinforceConfig, components: Components | None = None) -> Run:
    with_baseline = config.algo == "reinforce_baseline"
    trainer = Trainer(config, components, needs_critic=with_baseline)
    parts = trainer.components
    policy, value_net = trainer.policy, trainer.value_net

    while not trainer.done:
        trainer.anneal_learning_rates()
        obs, actions, episode_rewards, raw_returns = collect_episodes(trainer)
        for rewards, raw_return in zip(episode_rewards, raw_returns):
            trainer.env_step += int(rewards.shape[0])
            trainer.record_episodes([raw_return], [int(rewards.shape[0])])
        returns = torch.cat([parts.discounted_returns(rewards, config.gamma) for rewards in episode_rewards])  # [B]

        metrics: dict[str, float] = {}
        if with_baseline:
            values = value_net(obs)  # [B]
            weights = returns - values.detach()  # [B] advantages G_t - V(s_t)
            critic_loss = parts.value_loss(values, returns)
            trainer.critic_optimizer.zero_grad()
            critic_loss.backward()
            metrics["critic_grad_norm"] = trainer.clip_and_step(trainer.critic_optimizer, value_net.parameters(),
                                                                config.critic_max_grad_norm)
            metrics["value_loss"] = critic_loss.item()
            metrics["explained_variance"] = explained_variance(values.detach(), returns)
            metrics["value_rel_error"] = relative_value_error(values, returns)
            if "missing_detach" in config.traps:  # trap: the weights keep V's graph (fresh forward, no detach)
                weights = returns - value_net(obs)
        else:
            weights = returns  # [B]
        metrics["advantage_std"] = float(weights.detach().std())
        if config.normalize_weights:
            weights = parts.normalize(weights)

        log_probs, entropy = policy.log_prob_entropy(obs, actions, parts.gaussian_log_prob)  # [B], [B]
        policy_loss = parts.reinforce_loss(log_probs, weights)
        trainer.actor_optimizer.zero_grad()
        (policy_loss + parts.entropy_bonus_loss(entropy, config.ent_coef)).backward()
        metrics["actor_grad_norm"] = trainer.clip_and_step(trainer.actor_optimizer, policy.parameters(),
                                                           config.max_grad_norm)
        trainer.end_update(policy_loss=policy_loss.item(), entropy=entropy.mean().item(), epochs_run=1, **metrics)
    return trainer.finish()
