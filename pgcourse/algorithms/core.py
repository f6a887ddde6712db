"""Pieces every training loop shares, so each algorithm file holds only its own idea.

- :class:`Components`: the math a learner may replace with their own function (GAE, losses, …).
- :class:`Trainer`: seeding, device, vector env, networks, optimisers, learning-rate annealing,
  gradient clipping, NaN/inf guard, history, evaluation during training and the progress bar.
- :func:`collect_rollout`: ``n_steps`` steps of every env into tensors on the training device.
"""
from __future__ import annotations

import contextvars
import copy
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import diagnostics, losses, returns
from ..config import BaseConfig
from ..envs import RolloutStepper, action_space_kind, check_observation_space, env_spaces, make_vector_env, normalizer_state
from ..evaluation import evaluate
from ..history import History
from ..networks import ValueNet, make_policy
from ..run import Run, resolve_device


# A function called with the trainer after every update (pg.train(..., live=True) sets it for one call;
# the training loops never see it).
ON_UPDATE: contextvars.ContextVar[Callable[[Any], None] | None] = contextvars.ContextVar("on_update", default=None)


class NonFiniteError(FloatingPointError):
    """A loss or a parameter became NaN/inf during training (raised when ``on_nonfinite="raise"``)."""


@dataclass
class Components:
    """The replaceable math of the training loops; pass your own with ``pg.train(..., compute_gae=my_gae)``.

    Each field has the signature of the reference function of the same name in ``pgcourse.returns``,
    ``pgcourse.losses`` or ``pgcourse.diagnostics``.
    """

    discounted_returns: Callable = returns.discounted_returns
    normalize: Callable = returns.normalize
    compute_gae: Callable = returns.compute_gae
    reinforce_loss: Callable = losses.reinforce_loss
    clipped_surrogate_loss: Callable = losses.clipped_surrogate_loss
    value_loss: Callable = losses.value_loss
    gaussian_log_prob: Callable = losses.gaussian_log_prob
    approx_kl: Callable = diagnostics.approx_kl
    entropy_bonus_loss: Callable = losses.entropy_bonus_loss

    @classmethod
    def names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def set_seed(seed: int) -> None:
    """Seed torch (CPU and every CUDA device) and numpy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


@dataclass
class Rollout:
    """``n_steps`` steps of ``N`` environments (``T = n_steps``), all on the training device.

    ``valid[t, i]`` is False for autoreset steps (not transitions: excluded from every loss).
    ``next_values[t]`` is V of the true next observation: ``values[t + 1]`` (NEXT_STEP autoreset
    hands back the final observation of an ending episode, and the following reset step's value
    is computed on it) and ``V(last observation)`` for the last step.
    """

    obs: Tensor          # [T, N, obs_dim]
    actions: Tensor      # [T, N] (discrete) or [T, N, D] (continuous), as sampled
    log_probs: Tensor    # [T, N]
    values: Tensor       # [T, N]
    next_values: Tensor  # [T, N]
    rewards: Tensor      # [T, N]
    terminated: Tensor   # [T, N] float 0/1
    truncated: Tensor    # [T, N] float 0/1
    valid: Tensor        # [T, N] bool


class Trainer:
    """Everything around the update rule: build, step, record, evaluate, guard, finish."""

    def __init__(self, config: BaseConfig, components: Components | None = None, needs_critic: bool = True):
        self.config = config
        self.components = components or Components()
        # Planted bugs (lesson 06): swap in the buggy math / preset config values the traps name.
        # With traps=() this does nothing. See pgcourse/traps.py for what each trap changes.
        if config.traps:
            from .. import traps
            self.components = traps.apply(config, self.components)
        if config.torch_threads is not None:
            torch.set_num_threads(config.torch_threads)
        set_seed(config.seed)
        self.device = resolve_device(config.device)

        observation_space, action_space = env_spaces(config.env_id)
        self.obs_dim = check_observation_space(observation_space, config.env_id)
        self.action_kind = action_space_kind(action_space)
        config.check_env(self.action_kind, str(action_space))
        self.action_low = getattr(action_space, "low", None)
        self.action_high = getattr(action_space, "high", None)
        continuous = self.action_kind == "continuous"
        self.normalize_obs = continuous if config.normalize_obs is None else config.normalize_obs
        self.normalize_reward = continuous if config.normalize_reward is None else config.normalize_reward

        self.envs = make_vector_env(config.env_id, config.num_envs, normalize_obs=self.normalize_obs,
                                    normalize_reward=self.normalize_reward, gamma=config.gamma)
        self.stepper = RolloutStepper(self.envs, config.seed)

        action_dim = int(action_space.n) if not continuous else int(action_space.shape[0])
        self.policy = make_policy(self.action_kind, self.obs_dim, action_dim, config.hidden_sizes,
                                  config.log_std_init).to(self.device)
        self.value_net = ValueNet(self.obs_dim, config.hidden_sizes).to(self.device) if needs_critic else None
        self.actor_optimizer = torch.optim.Adam(self.policy.parameters(), lr=config.lr, eps=config.adam_eps)
        self.critic_optimizer = (torch.optim.Adam(self.value_net.parameters(), lr=config.critic_lr, eps=config.adam_eps)
                                 if self.value_net is not None else None)
        self.minibatch_generator = torch.Generator().manual_seed(config.seed)

        self.history = History()
        self.run = Run(config, self.policy, self.value_net, self.history, observation_space, action_space, {},
                       self.device)
        self.env_step = 0
        self.num_updates = 0
        self.stopped = False
        self._start = time.perf_counter()
        self._eval_seconds = 0.0
        self._next_eval = config.eval_every if config.eval_every > 0 else None
        self._last_good = self._snapshot()
        self.on_update: Callable[[Trainer], None] | None = ON_UPDATE.get()  # pg.train(..., live=True)
        self.progress = None
        if config.progress:
            from tqdm.auto import tqdm
            self.progress = tqdm(total=config.total_steps, desc=f"{config.algo} {config.env_id}", unit="step",
                                 mininterval=0.5, leave=True)

    # -- time and stopping -----------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds since training started, not counting evaluations during training."""
        return time.perf_counter() - self._start - self._eval_seconds

    @property
    def done(self) -> bool:
        max_episodes = self.config.max_episodes
        return (self.stopped or self.env_step >= self.config.total_steps
                or (max_episodes is not None and len(self.history.episodes) >= max_episodes))

    def anneal_learning_rates(self) -> None:
        """Linear decay of both learning rates from their initial values to 0 over ``total_steps``."""
        if not self.config.anneal_lr:
            return
        fraction_left = max(0.0, 1.0 - self.env_step / self.config.total_steps)
        for group in self.actor_optimizer.param_groups:
            group["lr"] = fraction_left * self.config.lr
        if self.critic_optimizer is not None:
            for group in self.critic_optimizer.param_groups:
                group["lr"] = fraction_left * self.config.critic_lr

    # -- tensors in, actions out -----------------------------------------------------------------
    def obs_tensor(self, observations: np.ndarray) -> Tensor:
        return torch.as_tensor(observations, dtype=torch.float32, device=self.device)

    def env_actions(self, actions: Tensor) -> np.ndarray:
        """Host copy of the sampled actions for ``env.step``; continuous ones clipped to the bounds
        (the stored, trained-on action stays the unclipped sample)."""
        actions_np = actions.cpu().numpy()
        if self.action_kind == "continuous":
            return np.clip(actions_np, self.action_low, self.action_high)
        return actions_np

    def record_episodes(self, episode_returns: list[float], episode_lengths: list[int]) -> None:
        for episode_return, length in zip(episode_returns, episode_lengths):
            self.history.episodes.append(**{"return": episode_return, "length": length, "env_step": self.env_step,
                                            "wall_time": self.elapsed()})

    # -- optimisation ----------------------------------------------------------------------------
    @staticmethod
    def clip_and_step(optimizer: torch.optim.Optimizer, parameters: Iterable[torch.nn.Parameter],
                      max_norm: float | None) -> float:
        """Clip the gradient norm of ``parameters`` to ``max_norm`` (if set) and step; returns the
        norm *before* clipping (the number worth plotting)."""
        parameters = list(parameters)
        norm_before = diagnostics.grad_norm(parameters)
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        optimizer.step()
        return norm_before

    def _snapshot(self) -> dict[str, Any]:
        return {"policy": copy.deepcopy(self.policy.state_dict()),
                "value_net": None if self.value_net is None else copy.deepcopy(self.value_net.state_dict())}

    def _parameters_finite(self) -> bool:
        modules = [self.policy] + ([self.value_net] if self.value_net is not None else [])
        return all(torch.isfinite(p).all() for module in modules for p in module.parameters())

    def end_update(self, **metrics: float) -> None:
        """Record one update's diagnostics, guard against NaN/inf, evaluate if due, show progress."""
        self.num_updates += 1
        bad = [name for name in ("policy_loss", "value_loss") if name in metrics and not np.isfinite(metrics[name])]
        if bad or not self._parameters_finite():
            what = f"{', '.join(bad)} became non-finite" if bad else "a parameter became non-finite"
            self._stop_nonfinite(f"{what} at update {self.num_updates} (env step {self.env_step})")
            return
        self._last_good = self._snapshot()
        row = {"env_step": self.env_step, "wall_time": self.elapsed(),
               "lr": self.actor_optimizer.param_groups[0]["lr"],
               "critic_lr": self.critic_optimizer.param_groups[0]["lr"] if self.critic_optimizer else float("nan")}
        if self.action_kind == "continuous":
            row["log_std_mean"] = float(self.policy.log_std.detach().mean())
        row.update(metrics)
        self.history.updates.append(**row)
        if self._next_eval is not None and self.env_step >= self._next_eval:
            while self._next_eval <= self.env_step:
                self._next_eval += self.config.eval_every
            self.evaluate_now()
        if self.progress is not None:
            self.progress.update(min(self.env_step, self.config.total_steps) - self.progress.n)
            recent = self.history.episodes["return"][-20:]
            if len(recent):
                self.progress.set_postfix(ret=f"{recent.mean():.1f}", refresh=False)
        if self.on_update is not None:
            self.on_update(self)

    def _stop_nonfinite(self, reason: str) -> None:
        self.policy.load_state_dict(self._last_good["policy"])
        if self.value_net is not None:
            self.value_net.load_state_dict(self._last_good["value_net"])
        self.stopped = True
        self.history.status = f"stopped: {reason}; the weights of the last good update were kept"
        message = (f"training stopped: {reason}. The run keeps the weights of the last update whose losses and "
                   "parameters were finite. Lower the learning rate or check the loss for log(0) / division by 0.")
        if self.config.on_nonfinite == "raise":
            self.finish()
            raise NonFiniteError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def evaluate_now(self) -> None:
        started = time.perf_counter()
        self.run.set_normalizer_state(normalizer_state(self.envs))
        mean, std, _ = evaluate(self.run, self.config.env_id, episodes=self.config.eval_episodes,
                                seed=self.config.eval_seed)
        self._eval_seconds += time.perf_counter() - started
        self.history.evals.append(env_step=self.env_step, wall_time=self.elapsed(), mean=mean, std=std)
        threshold = self.config.resolved_solve_threshold
        if threshold is not None and mean >= threshold and self.history.solved_at is None:
            self.history.solved_at = {"env_step": self.env_step, "wall_time": self.elapsed(),
                                      "episodes": len(self.history.episodes), "mean": mean}
            if self.config.stop_when_solved:
                self.stopped = True

    def finish(self) -> Run:
        """Close envs and progress bar, freeze the normaliser statistics into the run, set its status."""
        self.run.set_normalizer_state(normalizer_state(self.envs))
        self.envs.close()
        if self.progress is not None:
            self.progress.update(min(self.env_step, self.config.total_steps) - self.progress.n)
            self.progress.close()
        if self.history.status == "running":
            self.history.status = "solved" if (self.stopped and self.history.solved_at) else "completed"
        return self.run


def collect_rollout(trainer: Trainer, n_steps: int) -> Rollout:
    """Step every env ``n_steps`` times with the current policy; per step only the observations go
    to the device and the actions come back. Rewards and done flags travel once, at the end."""
    num_envs, device = trainer.config.num_envs, trainer.device
    obs_buffer = torch.empty((n_steps, num_envs, trainer.obs_dim), device=device)  # [T, N, obs_dim]
    action_shape = (n_steps, num_envs) if trainer.action_kind == "discrete" else \
        (n_steps, num_envs, int(trainer.action_low.shape[0]))
    actions_buffer = torch.empty(action_shape, device=device,
                                 dtype=torch.long if trainer.action_kind == "discrete" else torch.float32)
    log_probs_buffer = torch.empty((n_steps, num_envs), device=device)  # [T, N]
    values_buffer = torch.empty((n_steps + 1, num_envs), device=device)  # [T + 1, N]
    rewards = np.zeros((n_steps, num_envs), dtype=np.float32)
    terminated = np.zeros((n_steps, num_envs), dtype=np.float32)
    truncated = np.zeros((n_steps, num_envs), dtype=np.float32)
    valid = np.zeros((n_steps, num_envs), dtype=bool)

    stepper = trainer.stepper
    with torch.no_grad():
        for t in range(n_steps):
            obs = trainer.obs_tensor(stepper.obs)  # [N, obs_dim]
            actions, log_probs = trainer.policy.sample(obs)
            if "clipped_action_log_prob" in trainer.config.traps:  # trap: store the clipped action and its log-prob
                actions = torch.as_tensor(trainer.env_actions(actions), device=device)
                log_probs = trainer.policy.log_prob_entropy(obs, actions)[0]
            obs_buffer[t], actions_buffer[t], log_probs_buffer[t] = obs, actions, log_probs
            values_buffer[t] = trainer.value_net(obs)
            result = stepper.step(trainer.env_actions(actions))
            rewards[t], terminated[t], truncated[t], valid[t] = result.rewards, result.terminated, result.truncated, result.valid
            trainer.env_step += int(result.valid.sum())
            trainer.record_episodes(result.episode_returns, result.episode_lengths)
        values_buffer[n_steps] = trainer.value_net(trainer.obs_tensor(stepper.obs))

    def to_device(array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, device=device)

    return Rollout(obs=obs_buffer, actions=actions_buffer, log_probs=log_probs_buffer, values=values_buffer[:-1],
                   next_values=values_buffer[1:], rewards=to_device(rewards), terminated=to_device(terminated),
                   truncated=to_device(truncated), valid=to_device(valid))


def flatten_valid(rollout: Rollout, *tensors: Tensor) -> list[Tensor]:
    """Flatten ``[T, N, ...]`` tensors to ``[B, ...]`` keeping only real transitions (``valid``)."""
    mask = rollout.valid.reshape(-1)  # [T * N]
    return [tensor.reshape(mask.shape[0], *tensor.shape[2:])[mask] for tensor in tensors]
