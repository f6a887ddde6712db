"""Everything around an update rule, shared by the loops: build, act, step, record, evaluate, guard, finish.

- :class:`Trainer`: seeding, device, vector env, networks, optimisers, learning-rate annealing,
  gradient clipping, NaN/inf guard, history, evaluation during training, the progress bar, Ctrl-C
  (the first press stops after the current update: :mod:`.interrupts`) and resuming a run exactly
  where it stopped (:mod:`.checkpoint`). A loop uses it as ``with Trainer(...) as trainer:``.
- :class:`Hooks`: the named steps of the loops (sample an action, step actor and critic, read the
  old log-probs). The defaults are the correct steps; lesson 06's planted bugs
  (:mod:`pgcourse.course.debugging`) replace them from outside, so no loop knows about any bug.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .. import batching, distributions
from ..config import BaseConfig
from ..envs import (RolloutStepper, action_space_kind, add_normalization, check_observation_space, make_vector_env,
                    normalizer_state)
from ..tensor_envs import StepRecord, TensorRolloutStepper, TensorVectorEnv
from ..evaluation import evaluate
from ..history import History
from ..networks import ValueNet, make_policy
from ..devices import choose_device
from ..run import Run, bounds_on_device
from . import checkpoint
from .components import Components
from .interrupts import InterruptGuard
from .optim import LeanAdam


Number = float | Tensor  # a diagnostic: a Python number, or a 0-d tensor not yet read off the device


class NonFiniteError(FloatingPointError):
    """A loss or a parameter became NaN/inf during training (raised when ``on_nonfinite="raise"``)."""


def set_seed(seed: int) -> None:
    """Seed torch (CPU and every CUDA device) and numpy's global generator."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


# -- the named steps (defaults of Hooks) -----------------------------------------------------------
def sample_actions(trainer: Trainer, obs: Tensor) -> tuple[Tensor, Tensor]:
    """Sample from pi_old: actions as sampled (stored and trained on) and their log-probs ``[N]``."""
    return trainer.policy.sample(obs, log_prob_fn=trainer.log_prob_fn)


def step_actor_then_critic(trainer: Trainer, actor_loss: Tensor, critic_loss: Tensor) -> tuple[Number, Number]:
    """Backward, clip and step each network with its own optimiser; returns both gradient norms
    (before clipping)."""
    return trainer.actor_step(actor_loss), trainer.critic_step(critic_loss)


def stored_old_log_probs(stored: Tensor, new_log_probs: Tensor) -> Tensor:
    """PPO's log pi_old(a|s): the log-probs stored when the actions were sampled (constants)."""
    return stored


@dataclass(frozen=True)
class Hooks:
    """Named steps of the training loops; each default is the correct step.

    - ``act(trainer, obs [N, obs_dim]) -> (actions, log_probs [N])``: choose the actions to store.
    - ``actor_critic_step(trainer, actor_loss, critic_loss) -> (actor_grad_norm, critic_grad_norm)``.
    - ``old_log_probs(stored [b], new_log_probs [b]) -> [b]``: PPO's log pi_old of a minibatch.
    """

    act: Callable[..., tuple[Tensor, Tensor]] = sample_actions
    actor_critic_step: Callable[..., tuple[Number, Number]] = step_actor_then_critic
    old_log_probs: Callable[[Tensor, Tensor], Tensor] = stored_old_log_probs


def read_numbers(values: dict[str, Number]) -> dict[str, float]:
    """The diagnostics as Python floats, every tensor among them read in **one** device-to-host copy.

    ``float(t)`` on a CUDA tensor waits for the GPU: one wait per number, several per gradient step. Here the
    tensors are stacked on their device, one stack per dtype (nothing is widened there: MPS has no float64),
    and each stack is copied once, so a loop reads its diagnostics once per update. ``tolist`` gives the floats
    ``float(t)`` gives, bit for bit.
    """
    groups: dict[tuple[torch.dtype, torch.device], list[str]] = {}
    for name, value in values.items():
        if isinstance(value, Tensor):
            groups.setdefault((value.dtype, value.device), []).append(name)
    read: dict[str, float] = {}
    for names in groups.values():
        stacked = torch.stack([values[name].detach().reshape(()) for name in names])  # [k] on the device
        read.update((name, float(number)) for name, number in zip(names, stacked.cpu().tolist()))  # bools, ints too
    return {name: read[name] if name in read else float(value) for name, value in values.items()}


def make_tensor_env(env_id: str, num_envs: int, device: torch.device) -> TensorVectorEnv:
    """The torch vector env of ``env_backend="torch"`` (float64 on CPU, float32 on a GPU)."""
    return TensorVectorEnv(env_id, num_envs, device=device)


class HostRolloutStepper:
    """The numpy path behind the rollout's env protocol (:class:`~pgcourse.rl.tensor_envs.TensorRolloutStepper` is
    the tensor path), for one agent (the agent axis of length one): a gymnasium vector env stepped through
    :class:`~pgcourse.rl.envs.RolloutStepper`, whose observations go to the device and whose actions come back every
    step (one host copy per step: the env is numpy). Finished episodes are kept as they come and handed over by
    :meth:`end_rollout`, as the tensor path hands over its own."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self._steps: list[tuple[int, float, list[float], list[int]]] = []  # per step: count, clock, episodes ended

    def observation(self) -> Tensor:
        return self.trainer.obs_tensor(self.trainer.stepper.obs).unsqueeze(0)  # [1, N, obs_dim]

    def begin_rollout(self, steps: int) -> Tensor:
        self._steps = []
        return torch.as_tensor(self.trainer.stepper.autoresetting, device=self.trainer.device).unsqueeze(0)  # [1, N]

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        device = self.trainer.device
        return tuple(torch.as_tensor(x, device=device).unsqueeze(0)
                     for x in self.step_host(actions[0].cpu().numpy()))  # [1, N] each

    def step_host(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step of the env with the env's actions ``[N(, D)]`` (clipped if a Box): rewards (float32),
        terminated, truncated ``[N]`` each, as numpy arrays (``pg.train_many`` copies all agents' at once)."""
        result = self.trainer.stepper.step(actions)
        self._steps.append((int(np.count_nonzero(result.valid)), time.perf_counter(), result.episode_returns,
                            result.episode_lengths))
        return result.rewards.astype(np.float32), result.terminated, result.truncated

    def end_rollout(self) -> list[StepRecord]:
        steps, self._steps = self._steps, []
        if not steps:
            return [StepRecord.empty()]
        ended = [len(returns) for _, _, returns, _ in steps]
        return [StepRecord(np.array([count for count, _, _, _ in steps], dtype=np.int64),
                           np.array([clock for _, clock, _, _ in steps], dtype=np.float64),
                           np.repeat(np.arange(len(steps)), ended),
                           np.array([r for _, _, returns, _ in steps for r in returns], dtype=np.float64),
                           np.array([n for _, _, _, lengths in steps for n in lengths], dtype=np.int64))]


class Trainer:
    """The state of one training run and the plumbing every loop shares.

    Args:
        config: the validated config (:mod:`pgcourse.rl.config`).
        components: the math the loop calls (:class:`Components`; a learner's functions go here).
        hooks: the named steps (:class:`Hooks`; planted bugs go here).
        on_update: called with the trainer after every update (e.g. a live plot, a checkpoint); never
            changes training.
        needs_critic: build a value network and its optimiser.
        resume: continue a run from where it stopped (:class:`~.checkpoint.ResumePoint`: the run, whose
            weights and history are taken, and its training state); ``config`` is that run's config,
            with perhaps a larger ``total_steps``.
    """

    def __init__(self, config: BaseConfig, components: Components | None = None, hooks: Hooks | None = None,
                 on_update: Callable[[Trainer], None] | None = None, needs_critic: bool = True,
                 resume: checkpoint.ResumePoint | None = None):
        self.config = config
        self.components = components or Components()
        self.hooks = hooks or Hooks()
        self.on_update = on_update
        if config.torch_threads is not None:
            torch.set_num_threads(config.torch_threads)
        set_seed(config.seed)
        # "auto": the CPU, or CUDA for a torch env past the measured crossover (pgcourse.rl.devices says why)
        device_choice = choose_device(config.device, env_backend=getattr(config, "env_backend", "numpy"),
                                      num_envs=config.num_envs, algo=config.algo,
                                      num_minibatches=getattr(config, "num_minibatches", None))
        self.device, self.device_reason = device_choice.device, device_choice.reason

        # spaces are read from the envs trained on; CartPole runs numpy-vectorised (the same episodes, faster)
        self.env_backend = getattr(config, "env_backend", "numpy")
        if self.env_backend == "torch":  # the env as tensors on the run's device: no host copy per step
            envs = make_tensor_env(config.env_id, config.num_envs, self.device)
        else:
            envs = make_vector_env(config.env_id, config.num_envs, vectorization="auto", env_kwargs=config.env_kwargs)
        observation_space, action_space = envs.single_observation_space, envs.single_action_space
        try:
            self.obs_dim = check_observation_space(observation_space, config.env_id)
            self.action_kind = action_space_kind(action_space)
            config.check_env(self.action_kind, str(action_space))
        except Exception:
            envs.close()
            raise
        continuous = self.action_kind == "continuous"
        self.normalize_obs = continuous if config.normalize_obs is None else config.normalize_obs
        self.normalize_reward = continuous if config.normalize_reward is None else config.normalize_reward
        if self.env_backend == "torch":
            self.envs = envs
            self.stepper = TensorRolloutStepper(envs, config.seed, normalize_obs=self.normalize_obs,
                                                normalize_reward=self.normalize_reward, gamma=config.gamma)
        else:
            self.envs = add_normalization(envs, normalize_obs=self.normalize_obs,
                                          normalize_reward=self.normalize_reward, gamma=config.gamma)
            self.stepper = RolloutStepper(self.envs, config.seed)
        self._host_stepper = HostRolloutStepper(self)
        self.shared_env: tuple[TensorRolloutStepper, int] | None = None  # (a batch's stepper, this agent's index)
        # pg.train_many: a context in which this trainer holds its agent's state as pg.train would (for a checkpoint)
        self.as_own_run: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
        self.log_prob_fn, self.entropy_fn = self.components.policy_math(self.action_kind)
        if self.action_kind == "continuous":
            self.action_low = bounds_on_device(action_space.low, self.device)  # [D]
            self.action_high = bounds_on_device(action_space.high, self.device)  # [D]

        action_dim = int(action_space.n) if not continuous else int(action_space.shape[0])
        self.policy = make_policy(self.action_kind, self.obs_dim, action_dim, config.hidden_sizes,
                                  config.log_std_init).to(self.device)
        self.value_net = ValueNet(self.obs_dim, config.hidden_sizes).to(self.device) if needs_critic else None
        # the parameter lists, listed once (a module lists its parameters by walking its submodules)
        self.actor_parameters = list(self.policy.parameters())
        self.critic_parameters = list(self.value_net.parameters()) if self.value_net is not None else []
        self.actor_optimizer = LeanAdam(self.actor_parameters, lr=config.lr, eps=config.adam_eps)
        self.critic_optimizer = (LeanAdam(self.critic_parameters, lr=config.critic_lr, eps=config.adam_eps)
                                 if self.value_net is not None else None)
        self.minibatch_generator = torch.Generator(device=self.permutation_device()).manual_seed(config.seed)

        self.history = History()
        self.env_step = 0
        self.num_updates = 0
        self._next_eval = config.eval_every if config.eval_every > 0 else None
        elapsed_before = 0.0
        if resume is not None:
            self.history = checkpoint.continue_from(self, resume)
            elapsed_before = float(resume.state["elapsed"])
        self.run = Run(config, self.policy, self.value_net, self.history, observation_space, action_space, {},
                       self.device, self.device_reason)
        self.stopped = False
        self._start = time.perf_counter() - elapsed_before
        self._eval_seconds = 0.0
        self._last_good = self._snapshot()
        self.interrupt = InterruptGuard()
        self.interrupted_inside_update = False
        self._closed = False
        self.progress = None
        if config.progress:
            from tqdm.auto import tqdm
            self.progress = tqdm(total=config.total_steps, initial=min(self.env_step, config.total_steps),
                                 desc=f"{config.algo} {config.env_id}", unit="step", mininterval=0.5, leave=True)

    # -- the with-block around a loop: Ctrl-C and clean-up ----------------------------------------
    def __enter__(self) -> Trainer:
        self.interrupt.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        guarded = self.interrupt.active
        self.interrupt.__exit__(exc_type, exc, tb)
        if exc_type is KeyboardInterrupt and guarded:
            # the second Ctrl-C, inside an update: keep the weights of the last complete update
            self.interrupted_inside_update = True
            self.policy.load_state_dict(self._last_good["policy"])
            if self.value_net is not None:
                self.value_net.load_state_dict(self._last_good["value_net"])
            return True  # the loop's function goes on to ``trainer.finish()``
        if exc_type is not None:
            self._close()  # an error: close envs and progress bar, let the error through
        return False

    # -- time and stopping -----------------------------------------------------------------------
    def elapsed(self) -> float:
        """Seconds since training started, not counting evaluations during training."""
        return time.perf_counter() - self._start - self._eval_seconds

    @property
    def done(self) -> bool:
        max_episodes = self.config.max_episodes
        return (self.stopped or self.interrupt.requested or self.env_step >= self.config.total_steps
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
    @property
    def env_stepper(self) -> HostRolloutStepper | TensorRolloutStepper:
        """What the rollout steps (one agent, the agent axis of length one): the tensor env's stepper, or the numpy
        path behind the same protocol."""
        return self.stepper if isinstance(self.stepper, TensorRolloutStepper) else self._host_stepper

    def obs_tensor(self, observations: np.ndarray) -> Tensor:
        return torch.as_tensor(observations, dtype=torch.float32, device=self.device)

    def act(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Actions to store and their log-probs for a batch of observations (the ``act`` hook)."""
        return self.hooks.act(self, obs)

    def env_actions(self, actions: Tensor) -> np.ndarray:
        """Host copy of the stored actions for ``env.step``: Box actions go through ``env_action``
        (a clipped copy; the stored, trained-on action stays the unclipped sample)."""
        return self.env_action_tensor(actions).cpu().numpy()

    def env_action_tensor(self, actions: Tensor) -> Tensor:
        """The stored actions as ``env.step`` takes them, on the device (Box actions clipped, or squashed with
        ``box_action="tanh"``: a copy either way)."""
        if self.action_kind == "continuous":
            to_box = distributions.tanh_env_action if self.config.box_action == "tanh" else self.components.env_action
            actions = to_box(actions, self.action_low, self.action_high)  # [N, D]
        return actions

    def log_probs_and_entropy(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """``log pi(a|s)`` ``[B]`` and entropy ``[B]`` under the current policy, with grad."""
        return self.policy.log_prob_entropy(obs, actions, self.log_prob_fn, self.entropy_fn)

    def record_episodes(self, episode_returns: list[float], episode_lengths: list[int],
                        clock: float | None = None) -> None:
        """Episodes that ended at ``self.env_step``; ``clock``: the ``time.perf_counter()`` of the step that
        ended them (now, if None)."""
        wall_time = self.elapsed() if clock is None else clock - self._start - self._eval_seconds
        count = len(episode_returns)
        self.history.episodes.extend(**{"return": episode_returns, "length": episode_lengths,
                                        "env_step": [self.env_step] * count, "wall_time": [wall_time] * count})

    def record_rollout(self, record: StepRecord) -> None:
        """Count a rollout's transitions and record its finished episodes, as arrays (no Python per episode: issue
        44); each episode gets the env step at which it ended and the wall time of that step, as if recorded there."""
        env_steps = self.env_step + np.cumsum(record.valid_counts)  # [T] the count after each step
        wall_times = record.clock - self._start - self._eval_seconds  # [T]
        self.history.episodes.extend(**{"return": record.episode_returns, "length": record.episode_lengths,
                                        "env_step": env_steps[record.episode_steps],
                                        "wall_time": wall_times[record.episode_steps]})
        if len(env_steps):
            self.env_step = int(env_steps[-1])

    def permutation_device(self) -> torch.device:
        """Where PPO's and TRPO's minibatch permutations are drawn: on a CUDA device the package's own
        ``minibatch_indices`` draws them there (a permutation of a wide batch drawn on the CPU took more host time
        than the update's kernels, issue 44); everywhere else, and for a learner's ``minibatch_indices`` (which
        may call ``torch.randperm`` without a device), on the CPU, from the seed as before."""
        package_draws = self.components.minibatch_indices is batching.minibatch_indices
        return self.device if self.device.type == "cuda" and package_draws else torch.device("cpu")

    def normalizer_state(self) -> dict[str, Any]:
        """The normalisers' running statistics now (:func:`pgcourse.rl.envs.normalizer_state`'s format); an agent
        of ``pg.train_many`` that shares a batch's env reads its own from there (``shared_env``)."""
        if self.shared_env is not None:
            stepper, agent = self.shared_env
            return stepper.normalizer_state(agent)
        if isinstance(self.stepper, TensorRolloutStepper):
            return self.stepper.normalizer_state()
        return normalizer_state(self.envs)

    # -- optimisation ----------------------------------------------------------------------------
    @staticmethod
    def clip_and_step(optimizer: LeanAdam | torch.optim.Optimizer, parameters: Iterable[torch.nn.Parameter],
                      max_norm: float | None) -> Number:
        """Clip the gradient norm of ``parameters`` to ``max_norm`` (if set) and step; returns the
        norm *before* clipping (the number worth plotting), as a 0-d tensor on the parameters' device: it is
        read with the update's other diagnostics (:func:`read_numbers`), not here."""
        parameters = parameters if isinstance(parameters, list) else list(parameters)
        grads = [p.grad for p in parameters if p.grad is not None]
        if not grads:
            optimizer.step()
            return 0.0
        # clip_grad_norm_ returns the norm it clipped by, measured before clipping (on CPU the same number
        # as diagnostics.grad_norm): one norm computation, not two
        foreach = True if grads[0].is_cuda else None  # CUDA's multi-tensor kernels (torch's own choice there, stated
        # so that the suite's fake CUDA device, a tensor subclass torch would send per tensor, counts CUDA's path)
        if max_norm is not None and foreach and isinstance(optimizer, LeanAdam):
            # on CUDA the clip rides in Adam's fused kernel: each gradient divided by max(1, (|g| + 1e-6) / max_norm),
            # clip_grad_norm_'s factor min(1, max_norm / (|g| + 1e-6)) as a divisor (2 kernels instead of 6; the
            # division rounds otherwise than the product, as the fused kernel does anyway: CPU runs keep theirs)
            norm_before = torch.nn.utils.get_total_norm(grads, foreach=True)
            optimizer.step(grad_scale=((norm_before + 1e-6) / max_norm).clamp_(min=1.0))
            return norm_before.detach()
        if max_norm is not None:
            norm_before = torch.nn.utils.clip_grad_norm_(parameters, max_norm, foreach=foreach)
        else:
            norm_before = torch.nn.utils.get_total_norm(grads, foreach=foreach)
        optimizer.step()
        return norm_before.detach()

    def actor_step(self, actor_loss: Tensor) -> Number:
        """One Adam step of the policy on ``actor_loss``; returns its gradient norm before clipping."""
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        return self.clip_and_step(self.actor_optimizer, self.actor_parameters, self.config.max_grad_norm)

    def critic_step(self, critic_loss: Tensor) -> Number:
        """One Adam step of the critic on ``critic_loss``; returns its gradient norm before clipping."""
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        return self.clip_and_step(self.critic_optimizer, self.critic_parameters, self.config.critic_max_grad_norm)

    def actor_critic_step(self, actor_loss: Tensor, critic_loss: Tensor) -> tuple[Number, Number]:
        """Update both networks (the ``actor_critic_step`` hook); returns both gradient norms. With
        ``config.log_std_min``, a Gaussian policy's ``log_std`` is then projected back onto its bound."""
        norms = self.hooks.actor_critic_step(self, actor_loss, critic_loss)
        if self.config.log_std_min is not None and self.action_kind == "continuous":
            self.policy.clamp_log_std_(self.config.log_std_min)
        return norms

    @staticmethod
    def _copy_state(module: torch.nn.Module) -> dict[str, Tensor]:
        state = module.state_dict()
        copied = OrderedDict((name, tensor.detach().clone()) for name, tensor in state.items())
        copied._metadata = getattr(state, "_metadata", None)  # type: ignore[attr-defined]
        return copied

    def _snapshot(self) -> dict[str, Any]:
        return {"policy": self._copy_state(self.policy),
                "value_net": None if self.value_net is None else self._copy_state(self.value_net)}

    def _parameters_finite(self) -> bool:
        return bool(torch.stack([p.detach().isfinite().all()
                                 for p in [*self.actor_parameters, *self.critic_parameters]]).all())

    def end_update(self, **metrics: Number) -> None:
        """Record one update's diagnostics, guard against NaN/inf, evaluate if due, show progress. Tensors
        among ``metrics`` are read here, in one copy (:func:`read_numbers`)."""
        self.num_updates += 1
        metrics = read_numbers(metrics)
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
        """Evaluation in the config's ``eval_mode`` with the normaliser statistics of this moment (what
        ``pg.evaluate`` of the run saved now would give); a sampled one leaves training's random draws as
        they were."""
        started = time.perf_counter()
        self.run.set_normalizer_state(self.normalizer_state())
        mean, std, _ = evaluate(self.run, self.config.env_id, episodes=self.config.eval_episodes,
                                seed=self.config.eval_seed, mode=self.config.eval_mode)
        self._eval_seconds += time.perf_counter() - started
        self.history.evals.append(env_step=self.env_step, wall_time=self.elapsed(), mean=mean, std=std)
        threshold = self.config.resolved_solve_threshold
        if threshold is not None and mean >= threshold and self.history.solved_at is None:
            self.history.solved_at = {"env_step": self.env_step, "wall_time": self.elapsed(),
                                      "episodes": len(self.history.episodes), "mean": mean}
            if self.config.stop_when_solved:
                self.stopped = True

    # -- the end, and checkpoints on the way ----------------------------------------------------------
    def save_checkpoint(self, folder: str | Path) -> Path:
        """Save the run as it is now, with its training state, to ``folder`` (between updates only):
        ``pg.train(..., resume=folder)`` continues it as if it had never stopped."""
        with self.as_own_run():
            self.run.set_normalizer_state(self.normalizer_state())
            self.run.training_state = checkpoint.capture(self)
            status, self.history.status = self.history.status, "checkpoint"
            try:
                return self.run.save(folder, overwrite=True)
            finally:
                self.history.status = status

    def finish(self) -> Run:
        """Freeze the normaliser statistics and the training state into the run, set its status, close
        envs and progress bar."""
        self.run.set_normalizer_state(self.normalizer_state())
        if self.interrupted_inside_update:
            self.history.status = ("interrupted inside an update; the weights of the last complete update were "
                                   "kept (resume from a checkpoint)")
            self.run.training_state = None  # envs and generators are mid-update: no exact continuation
        else:
            if self.history.status == "running":
                if self.stopped and self.history.solved_at:
                    self.history.status = "solved"
                elif self.interrupt.requested and self.env_step < self.config.total_steps:
                    self.history.status = "interrupted"
                else:
                    self.history.status = "completed"
            try:  # a run stopped by NaN/inf keeps older weights than its optimisers: not resumable
                stopped_nonfinite = self.history.status.startswith("stopped")
                self.run.training_state = None if stopped_nonfinite else checkpoint.capture(self)
            except TypeError as error:  # envs that cannot be pickled: the run is fine, it just cannot resume
                self.run.training_state = None
                warnings.warn(f"{error}; the run cannot be resumed", RuntimeWarning, stacklevel=3)
        self._close()
        return self.run

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.envs.close()
        if self.progress is not None:
            self.progress.update(min(self.env_step, self.config.total_steps) - self.progress.n)
            self.progress.close()
