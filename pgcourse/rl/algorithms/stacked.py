"""A > 1 agents' networks as one set of stacked weights ``[A, ...]``: forward, sampling, clipping and Adam per agent.

:class:`AgentStack` is the loops' agent axis for many agents (:mod:`.agents`; ``pg.train_many``). It takes the
:class:`~.trainer.Trainer` of each agent (each built, seeded and holding its envs exactly as ``pg.train``
builds it) and stacks their policies' and critics' parameters along a leading agent axis. Each agent's modules keep working: their parameters become views of its slice, so
``trainer.policy`` always holds that agent's current weights (evaluation, NaN guard, ``Run.save``).

What is per agent, and why it stays exact:

- forward: ``baddbmm`` over the agent axis, one matrix product per agent in one call; agent ``a``'s rows
  are computed from agent ``a``'s weights only (:func:`stacked_linear`), and so are their gradients.
- sampling: each agent draws from its own ``torch.Generator``, started from the state torch's global
  generator had when that agent's trainer was built (where ``pg.train`` samples from), so the draws are
  ``pg.train``'s draws.
- gradients: the loss is the sum of the agents' losses, and agent ``a``'s weights appear in agent ``a``'s
  loss only, so the gradient of the sum on slice ``a`` is the gradient of agent ``a``'s loss.
- clipping: each agent's norm is taken over its own slices (as ``clip_grad_norm_`` over its parameters).
- Adam: element-wise, so one update of the stacked tensors is A updates; each agent has its own step
  count and learning rate, and an agent that is not stepping (``active[a]`` False: its epochs stopped
  early, or its budget is spent) keeps weights and moments unchanged.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import math
import pickle
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..batching import minibatch_size_for
from ..distributions import categorical_log_prob, gaussian_log_prob
from ..envs import EpisodeStatistics, RolloutStepper, SeededCartPoleVectorEnv
from ..networks import exponential_race
from ..tensor_envs import StepRecord, TensorRolloutStepper, TensorVectorEnv
from .agents import OneAgent, Rows, agent_minibatches, shared_parts
from .checkpoint import pickle_envs
from .interrupts import InterruptGuard
from .trainer import Trainer, step_actor_then_critic


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


def stacked_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``y[a] = x[a] W[a]^T + b[a]`` for every agent ``a`` (``x [A, b, in]``, ``W [A, out, in]``, ``b [A, out]``): one
    ``baddbmm``, whose autograd backward gives agent ``a``'s gradients from agent ``a``'s rows and weights only.
    Each agent's outputs and gradients are those of its own ``nn.Linear`` to rounding, not bit for bit: the batched
    kernels may round a sum otherwise. Measured on torch 2.13's CPU (float32, random data): ``db`` always equal;
    ``y``, ``dx`` and ``dW`` equal for many shapes (64 rows, 4 or 64 inputs, 64 outputs) but not for all (one
    output, one input, 2048 rows), there differing by about 1e-7 to 3e-6 of the largest value. (A hand-written
    backward with ``nn.Linear``'s formulas, used before, gave the same bits on the machine that compared them
    (2026-11-27) and cost 5-8% more CPU there.)"""
    return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))  # [A, b, out]


def stacked_mlp(net: nn.Sequential, weights: dict[str, Tensor], x: Tensor) -> Tensor:
    """``net``'s layers (Linear, Tanh: :func:`pgcourse.rl.networks.mlp`) on ``x [A, b, in]`` with stacked
    ``weights[name] [A, ...]`` (the names of ``net.named_parameters()``): ``[A, b, out]``."""
    for index, layer in enumerate(net):
        if isinstance(layer, nn.Linear):
            x = stacked_linear(x, weights[f"{index}.weight"], weights[f"{index}.bias"])  # [A, b, out]
        elif isinstance(layer, nn.Tanh):
            x = torch.tanh(x)
        else:
            raise TypeError(f"stacked_mlp knows Linear and Tanh layers, not {type(layer).__name__}")
    return x


def _stack_module(modules: Sequence[nn.Module]) -> dict[str, Tensor]:
    """One leaf ``[A, ...]`` per parameter name; each module's parameter becomes a view of its slice."""
    names = [name for name, _ in modules[0].named_parameters()]
    stacked = {}
    for name in names:
        parameters = [dict(module.named_parameters())[name] for module in modules]
        stacked[name] = torch.stack([p.detach() for p in parameters]).requires_grad_(True)
        for agent, parameter in enumerate(parameters):
            parameter.data = stacked[name].data[agent]
    return stacked


class StackedAdam:
    """``LeanAdam``'s (so ``torch.optim.Adam``'s) arithmetic on stacked tensors, with a step count and a
    learning rate per agent: ``m <- lerp(m, g, 1 - beta1)``, ``v <- beta2 v + (1 - beta2) g^2``,
    ``p <- p - lr_a / (1 - beta1^t_a) * m / (sqrt(v) / sqrt(1 - beta2^t_a) + eps)``, for the agents in
    ``active`` only.

    Nothing crosses to the device per step: the step counts live there too, the bias corrections are a table
    computed on the host as ``LeanAdam`` computes them (in float64, made again only when the steps outgrow it),
    and the learning rates are copied when they change (once per update with annealing)."""

    def __init__(self, params: list[Tensor], eps: float, betas: tuple[float, float] = (0.9, 0.999)):
        self.params, self.eps, self.betas = params, eps, betas
        self.exp_avg = [torch.zeros_like(p) for p in params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in params]
        self.steps = [0] * params[0].shape[0]  # [A] on the host (for the runs' optimiser states)
        device = params[0].device
        self.wide = torch.float64 if device.type != "mps" else torch.float32  # MPS has no float64
        self.step_counts = torch.zeros(len(self.steps), dtype=torch.long, device=device)  # [A] on the device
        self._corrections = (torch.ones(1, dtype=self.wide), torch.ones(1, dtype=self.wide))
        self._lrs: tuple[tuple[float, ...], Tensor] | None = None

    def _bias_corrections(self, largest_step: int) -> tuple[Tensor, Tensor]:
        """``1 - beta1^t`` and ``sqrt(1 - beta2^t)`` for t = 0, 1, ... on the device (row 0 is never used)."""
        if self._corrections[0].shape[0] <= largest_step:
            beta1, beta2 = self.betas
            count = max(2 * self._corrections[0].shape[0], largest_step + 1, 1024)
            steps = [float(max(t, 1)) for t in range(count)]
            self._corrections = tuple(torch.tensor(values, dtype=self.wide, device=self.params[0].device) for values in
                                      ([1 - beta1 ** t for t in steps], [(1 - beta2 ** t) ** 0.5 for t in steps]))
        return self._corrections

    def _learning_rates(self, lrs: Sequence[float]) -> Tensor:
        if self._lrs is None or self._lrs[0] != tuple(lrs):
            self._lrs = (tuple(lrs), torch.tensor(list(lrs), dtype=self.wide, device=self.params[0].device))
        return self._lrs[1]  # [A]

    @torch.no_grad()
    def step(self, lrs: Sequence[float], active: Sequence[bool], active_mask: Tensor | None = None) -> None:
        """One step of the ``active`` agents (``active_mask``: the same, ``[A]`` bool on the device; made from
        ``active`` if not given, a copy)."""
        beta1, beta2 = self.betas
        agents = len(self.steps)
        for agent in range(agents):
            self.steps[agent] += int(active[agent])
        if active_mask is None:
            active_mask = torch.tensor(list(active), device=self.params[0].device)
        first_moment, second_moment = self._bias_corrections(max(self.steps))
        self.step_counts += active_mask
        steps = self.step_counts.clamp(min=1)  # [A]; an agent that never stepped is put back below
        dtype = self.params[0].dtype
        correction2 = second_moment.index_select(0, steps).to(dtype)  # [A]
        step_size = (-(self._learning_rates(lrs) / first_moment.index_select(0, steps))).to(dtype)  # [A]
        per_agent = [(agents,) + (1,) * (p.dim() - 1) for p in self.params]  # a view of [A] that broadcasts
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        tensors = [*self.params, *self.exp_avg, *self.exp_avg_sq]
        idle = not all(active)
        kept = [tensor.clone() for tensor in tensors] if idle else []  # what the idle agents keep
        # the arithmetic once over the list of stacked tensors (torch._foreach_*), for every agent
        torch._foreach_lerp_(self.exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, value=1 - beta2)
        denominators = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denominators, [correction2.view(shape) for shape in per_agent])
        torch._foreach_add_(denominators, self.eps)
        steps = torch._foreach_mul(self.exp_avg, [step_size.view(shape) for shape in per_agent])
        torch._foreach_div_(steps, denominators)  # addcdiv's order: (value * m) / denominator
        torch._foreach_add_(self.params, steps)
        for tensor, old in zip(tensors, kept):  # the agents not stepping keep weights and moments, bit for bit
            tensor.copy_(torch.where(active_mask.view((agents,) + (1,) * (tensor.dim() - 1)), tensor, old))


def clip_per_agent(params: list[Tensor], max_norms: Sequence[float | None] | Tensor | None) -> Tensor:
    """Each agent's gradient norm over its slices of ``params`` ``[A]`` (before clipping); scales agent ``a``'s
    gradients by ``min(1, max_norms[a] / (norm_a + 1e-6))``, as ``clip_grad_norm_`` (None: no clipping;
    ``max_norms`` may be given as what :func:`norm_limits` makes: a tensor on the device, or None for no clipping)."""
    grads = [p.grad for p in params if p.grad is not None]
    agents = params[0].shape[0]
    per_tensor = torch.stack([torch.linalg.vector_norm(g.reshape(agents, -1), dim=1) for g in grads])  # [P, A]
    norms = torch.linalg.vector_norm(per_tensor, dim=0)  # [A]
    limits = max_norms if isinstance(max_norms, Tensor) or max_norms is None else \
        norm_limits(max_norms, norms.dtype, norms.device)
    if limits is not None:
        coefficient = torch.clamp(limits / (norms + 1e-6), max=1.0)  # [A]
        torch._foreach_mul_(grads, [coefficient.view((agents,) + (1,) * (g.dim() - 1)) for g in grads])
    return norms


def norm_limits(max_norms: Sequence[float | None], dtype: torch.dtype, device: torch.device) -> Tensor | None:
    """The agents' gradient-norm limits ``[A]`` (inf for an agent without one: inf / (norm + 1e-6) clamps to
    exactly 1), or None when no agent clips."""
    if all(max_norm is None for max_norm in max_norms):
        return None
    return torch.tensor([math.inf if m is None else m for m in max_norms], dtype=dtype, device=device)


def _groups(steps: Sequence) -> list[tuple]:
    """``[(step, [agents that take it])]`` in order of first appearance."""
    groups: dict = {}
    for agent, step in enumerate(steps):
        groups.setdefault(step, []).append(agent)
    return list(groups.items())


def joint_clip(hooks) -> bool:
    """Whether the ``actor_critic_step`` hook clips both networks by one norm (a step that does says so with the
    attribute ``clips_networks_together``): the stack's form of that step is one clip per agent over both."""
    return getattr(hooks.actor_critic_step, "clips_networks_together", False)


class StackedPolicy:
    """The agents' policies as one, over an agent axis: the two methods of ``CategoricalPolicy`` /
    ``GaussianPolicy`` that the loops and the ``act`` hooks call, on ``obs [A, N, obs_dim]``."""

    def __init__(self, stack: AgentStack):
        self.stack = stack

    def sample(self, obs: Tensor, log_prob_fn=None) -> tuple[Tensor, Tensor]:
        """Actions ``[A, N(, D)]`` of the agents drawing now (each from its own generator; the others' rows 0) and
        their log-probs ``[A, N]`` (``log_prob_fn``; the reference one if None, as the policies' own default)."""
        stack = self.stack
        output = stack.policy_output(obs)  # [A, N, n_actions] or [A, N, D]
        actions = stack.sample(output, stack.drawing)
        reference = categorical_log_prob if stack.action_kind == "discrete" else gaussian_log_prob
        return actions, self._log_probs(output, actions, log_prob_fn or reference)

    def log_prob_entropy(self, obs: Tensor, actions: Tensor, log_prob_fn, entropy_fn) -> tuple[Tensor, Tensor]:
        """``log pi(a|s)`` ``[A, b]`` and entropy ``[A, b]`` (the functions apply row by row: once for all agents)."""
        output = self.stack.policy_output(obs)  # [A, b, ...]
        if self.stack.action_kind == "discrete":
            return log_prob_fn(output, actions), entropy_fn(output)
        return (self._log_probs(output, actions, log_prob_fn),
                entropy_fn(self.stack.actor["log_std"]).unsqueeze(1).expand(output.shape[:2]))

    def _log_probs(self, output: Tensor, actions: Tensor, log_prob_fn) -> Tensor:
        if self.stack.action_kind == "discrete":
            return log_prob_fn(output, actions)
        return log_prob_fn(output, self.stack.actor["log_std"].unsqueeze(1).expand_as(output), actions)  # [A, b]


class AgentStack:
    """The networks, random generators and optimisers of A agents (see the module docstring), with the methods
    of the loops' agent axis (:class:`~.agents.OneAgent` has the same for one agent). One Ctrl-C guard for the
    batch: the first press stops every agent after the update it is in (each run comes back 'interrupted' and
    resumable, as from ``pg.train``); a second press stops at once, returning nothing."""

    def __init__(self, configs: Sequence, components=None, hooks=None, on_update: Sequence | None = None):
        """``components`` and ``hooks``: one for every agent, or a sequence of one per agent (bugs planted per
        agent)."""
        components, hooks = ([x] * len(configs) if x is None or not isinstance(x, Sequence) else list(x)
                             for x in (components, hooks))
        self.trainers: list[Trainer] = []
        self.generators: list[torch.Generator] = []
        self.guard = InterruptGuard("Ctrl-C: every agent stops after the current update (press Ctrl-C again to "
                                    "stop at once, with no runs returned)")
        try:
            for agent, config in enumerate(configs):
                self.trainers.append(Trainer(config, components[agent], hooks[agent],
                                             on_update[agent] if on_update else None))
                self.trainers[-1].interrupt = self.guard  # each agent's `done` and status read the batch's guard
                self.generators.append(agent_generator(self.trainers[-1].device))
        except BaseException:
            for trainer in self.trainers:
                trainer._close()
            raise
        first = self.trainers[0]
        self.count = len(self.trainers)
        self.device, self.action_kind = first.device, first.action_kind
        self.components, self.log_prob_fn, self.entropy_fn = first.components, first.log_prob_fn, first.entropy_fn
        self.parts = shared_parts([t.components for t in self.trainers])  # the pieces of math, each agent's own
        if any((t.log_prob_fn, t.entropy_fn) != (self.log_prob_fn, self.entropy_fn) for t in self.trainers):
            raise ValueError("the agents' log-prob or entropy functions differ: a batch computes them once for all")
        # the named steps (lesson 06's planted bugs replace them): the agents that share each act / pi_old step
        self.act_groups, self.old_log_prob_groups = (_groups([getattr(t.hooks, name) for t in self.trainers])
                                                     for name in ("act", "old_log_probs"))
        for trainer in self.trainers:
            if not (trainer.hooks.actor_critic_step is step_actor_then_critic or joint_clip(trainer.hooks)):
                raise ValueError(f"actor_critic_step={trainer.hooks.actor_critic_step!r} has no batched form: "
                                 f"train it with one config")
        if self.action_kind == "continuous":
            self.action_low, self.action_high = first.action_low, first.action_high  # [D], the agents' shared env
        self.policy = StackedPolicy(self)
        self.drawing: list[int] = []  # the agents drawing actions at this step (the others have stopped)
        self.setting_columns: dict = {}
        self.policy_template, self.value_template = first.policy, first.value_net
        self.actor = _stack_module([t.policy for t in self.trainers])
        self.critic = _stack_module([t.value_net for t in self.trainers])
        self.actor_optimizer = StackedAdam(list(self.actor.values()), eps=first.config.adam_eps)
        self.critic_optimizer = StackedAdam(list(self.critic.values()), eps=first.config.adam_eps)
        # each agent clips its actor and its critic with their own limits, or both by one norm at the actor's limit
        # (a step that says so: joint_clip); an agent without a limit gets inf (a factor of exactly 1)
        joint = [joint_clip(t.hooks) for t in self.trainers]
        self.actor_limits, self.critic_limits, self.joint_limits = (
            norm_limits(limits, torch.float32, self.device) for limits in (
                [None if j else c.max_grad_norm for c, j in zip(configs, joint)],
                [None if j else c.critic_max_grad_norm for c, j in zip(configs, joint)],
                [c.max_grad_norm if j else None for c, j in zip(configs, joint)]))
        # a minibatch's rows per agent, padded to the largest minibatch any config can have (B_a <= batch_size)
        self.minibatch_rows = max(minibatch_size_for(c.batch_size, c.minibatch_size, getattr(c, "num_minibatches", None))
                                  if hasattr(c, "minibatch_size") else c.batch_size for c in configs)
        self.shared = shared_env(self.trainers)  # one env of A x N, or None: each agent steps its own
        self.env = self.shared if self.shared is not None else EachAgentEnv(self.trainers)
        self.stopped_envs: dict[int, tuple] = {}  # an agent that stopped before the others: its env as it stopped
        for agent, trainer in enumerate(self.trainers):
            trainer.as_own_run = functools.partial(self.as_own_run, agent)

    def __enter__(self) -> AgentStack:
        self.guard.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.guard.__exit__(exc_type, exc, tb)
        if exc_type is not None:
            for trainer in self.trainers:
                trainer._close()
        return False

    # -- the loops' agent axis (as OneAgent's) -----------------------------------------------------
    def running(self) -> list[bool]:
        return [not trainer.done for trainer in self.trainers]

    @property
    def done(self) -> bool:
        return all(trainer.done for trainer in self.trainers)

    def begin_rollout(self, steps: int, running: Sequence[bool]) -> Tensor:
        """Start the env's rollout (``[A, N]`` flags of the step before it). In the shared env, an agent that has
        stopped keeps being stepped with the others: its env is kept as it was when it stopped, for its run."""
        if self.shared is None:
            return self.env.begin_rollout(steps, running)
        for agent in range(self.count):
            if not running[agent] and agent not in self.stopped_envs:
                self.stopped_envs[agent] = self.shared.agent(agent)
        return self.shared.begin_rollout(steps)

    def env_actions(self, actions: Tensor, running: Sequence[bool]) -> Tensor:
        """The stored actions ``[A, N(, D)]`` as the envs take them (each agent's Box actions clipped or squashed as
        its config says)."""
        if self.action_kind == "discrete":
            return actions
        return torch.stack([trainer.env_action_tensor(actions[a]) for a, trainer in enumerate(self.trainers)])

    def act(self, obs: Tensor, running: Sequence[bool]) -> tuple[Tensor, Tensor]:
        """Actions ``[A, N(, D)]`` drawn by each running agent from its own generator, and their log-probs ``[A, N]``,
        through the ``act`` hook as ``pg.train`` acts: the hook sees this stack as it sees a trainer (``policy``,
        ``log_prob_fn``, ``components``, the bounds), with the agent axis first."""
        actions = log_probs = None
        for hook, agents in self.act_groups:  # one group but for bugs planted per agent
            self.drawing = [a for a in agents if running[a]]  # each agent draws once, in its group's call
            if len(self.act_groups) == 1:
                return hook(self, obs)
            group_actions, group_log_probs = hook(self, obs)
            if actions is None:
                actions, log_probs = group_actions.clone(), group_log_probs.clone()
            actions[agents], log_probs[agents] = group_actions[agents], group_log_probs[agents]
        return actions, log_probs

    def log_probs_and_entropy(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """``log pi(a|s)`` ``[A, b]`` and entropy ``[A, b]`` of ``obs [A, b, obs_dim]``, with grad."""
        return self.policy.log_prob_entropy(obs, actions, self.log_prob_fn, self.entropy_fn)

    def old_log_probs(self, stored: Tensor, new_log_probs: Tensor) -> Tensor:
        """PPO's log pi_old ``[A, b]`` through the ``old_log_probs`` hook (element-wise: one call for all agents that
        share it)."""
        chosen = None
        for hook, agents in self.old_log_prob_groups:
            if len(self.old_log_prob_groups) == 1:
                return hook(stored, new_log_probs)
            group = hook(stored, new_log_probs)
            chosen = group.detach().clone() if chosen is None else chosen
            chosen[agents] = group[agents].detach()
        return chosen

    def step(self, actor_loss: Tensor, critic_loss: Tensor, rows: Rows) -> tuple[Tensor, Tensor]:
        """One backward of the agents' summed losses ``[A]`` (agent a's weights are in its terms only), then each
        agent taking part (``rows.stepping``) clips its actor's and its critic's gradients with its own limits
        and steps both Adams; the gradient norms before clipping, ``[A]`` each."""
        for p in [*self.actor.values(), *self.critic.values()]:
            p.grad = None
        (actor_loss + critic_loss).sum().backward()
        active, active_mask = rows.stepping, rows.mask.any(dim=1)  # the same, on the host and on the device
        actor, critic = list(self.actor.values()), list(self.critic.values())
        actor_norms = clip_per_agent(actor, self.actor_limits)
        critic_norms = clip_per_agent(critic, self.critic_limits)
        if self.joint_limits is not None:  # the agents whose step clips both networks by one norm
            clip_per_agent(actor + critic, self.joint_limits)
        for optimizer, trainer_optimizer in ((self.actor_optimizer, "actor_optimizer"),
                                             (self.critic_optimizer, "critic_optimizer")):
            optimizer.step([getattr(t, trainer_optimizer).param_groups[0]["lr"] for t in self.trainers], active,
                           active_mask)
        if self.action_kind == "continuous":
            with torch.no_grad():
                for agent, trainer in enumerate(self.trainers):
                    if trainer.config.log_std_min is not None and active[agent]:
                        self.actor["log_std"][agent].clamp_(min=trainer.config.log_std_min)
        return actor_norms.detach(), critic_norms.detach()

    def minibatches(self, rows: Rows) -> list[tuple[Tensor, Rows]]:
        return agent_minibatches(self, rows, self.minibatch_rows)

    def _net_weights(self, stacked: dict[str, Tensor]) -> dict[str, Tensor]:
        return {name.removeprefix("net."): value for name, value in stacked.items() if name.startswith("net.")}

    def policy_output(self, obs: Tensor) -> Tensor:
        """Logits ``[A, b, n_actions]`` or Gaussian means ``[A, b, D]`` of ``obs [A, b, obs_dim]``."""
        return stacked_mlp(self.policy_template.net, self._net_weights(self.actor), obs)

    def values(self, obs: Tensor) -> Tensor:
        """``V(s)`` ``[A, b]`` of ``obs [A, b, obs_dim]``."""
        return stacked_mlp(self.value_template.net, self._net_weights(self.critic), obs).squeeze(-1)

    def sample(self, output: Tensor, agents: Sequence[int]) -> Tensor:
        """Actions ``[A, N]`` (or ``[A, N, D]``) for the policy outputs ``[A, N, ...]``, each agent in ``agents``
        drawing from its own generator as ``CategoricalPolicy.sample`` / ``GaussianPolicy.sample`` draw (the
        others' rows stay 0). The softmax runs once for all agents (row by row, so each row's numbers are those
        of its agent's own call); only the draws are per agent."""
        if self.action_kind == "discrete":
            normalized = output - output.logsumexp(dim=-1, keepdim=True)  # [A, N, k], as sample_categorical
            probs = torch.softmax(normalized, dim=-1)
            exponentials, drawing = torch.empty_like(probs), set(agents)  # [A, N, k]
            for agent, rows in enumerate(exponentials.unbind()):  # each agent's draws from its own generator
                if agent in drawing:
                    rows.exponential_(generator=self.generators[agent])
                else:  # an agent not drawing (it has stopped): inf gives its rows action 0
                    rows.fill_(math.inf)
            return exponential_race(probs, exponentials)  # [A, N], as sample_categorical draws
        noise = torch.zeros_like(output)  # [A, N, D]; 0 for the agents not drawing
        for agent in agents:
            torch.randn(output.shape[1:], generator=self.generators[agent], out=noise[agent])
        return output + torch.exp(self.actor["log_std"]).unsqueeze(1) * noise  # [A, N, D], as GaussianPolicy.sample

    def optimizer_states(self, agent: int) -> tuple[dict, dict]:
        """Agent ``agent``'s Adam states in ``LeanAdam.state_dict()``'s form (so its run can be resumed by
        ``pg.resume``, one agent, as if ``pg.train`` had trained it)."""
        def one(optimizer: StackedAdam, lr: float) -> dict:
            group = {"lr": lr, "eps": optimizer.eps, "betas": optimizer.betas}
            state = [None if optimizer.steps[agent] == 0 else
                     {"step": optimizer.steps[agent], "exp_avg": m[agent].clone(), "exp_avg_sq": v[agent].clone()}
                     for m, v in zip(optimizer.exp_avg, optimizer.exp_avg_sq)]
            return {"param_groups": [group], "state": [state]}

        trainer = self.trainers[agent]
        return (one(self.actor_optimizer, trainer.actor_optimizer.param_groups[0]["lr"]),
                one(self.critic_optimizer, trainer.critic_optimizer.param_groups[0]["lr"]))

    @contextlib.contextmanager
    def as_own_run(self, agent: int) -> Iterator[Trainer]:
        """Agent ``agent``'s trainer holding what ``pg.train`` would hold now: its Adam states, its own env and stepper
        (copies of its block of the shared env) and, on the CPU, torch's generator in the agent's state; for a
        checkpoint between updates (``Trainer.save_checkpoint``). Its weights are already its own (views)."""
        trainer = self.trainers[agent]
        actor_state, critic_state = self.optimizer_states(agent)
        trainer.actor_optimizer.load_state_dict(actor_state)
        trainer.critic_optimizer.load_state_dict(critic_state)
        if self.shared is not None:
            trainer.envs, trainer.stepper = self.stopped_envs.get(agent) or self.shared.agent(agent)
        global_state = torch.get_rng_state()
        if self.device.type == "cpu":
            torch.set_rng_state(self.generators[agent].get_state())
        try:
            yield trainer
        finally:
            torch.set_rng_state(global_state)

    def finish(self) -> list:
        """Each agent's :class:`~pgcourse.rl.run.Run` (``Trainer.finish``): its modules get parameters of their
        own (not views of the stack), its optimisers the agent's Adam states and torch's generator the agent's
        state, so that the run saves, loads and resumes as one from ``pg.train``."""
        runs = []
        global_state = torch.get_rng_state()
        for agent, trainer in enumerate(self.trainers):
            if self.shared is not None:  # its own env and stepper, as pg.train would hold them now
                trainer.envs, trainer.stepper = self.stopped_envs.get(agent) or self.shared.agent(agent)
                trainer.shared_env = None
            for module in (trainer.policy, trainer.value_net):
                for parameter in module.parameters():
                    parameter.data = parameter.data.clone()
            actor_state, critic_state = self.optimizer_states(agent)
            trainer.actor_optimizer.load_state_dict(actor_state)
            trainer.critic_optimizer.load_state_dict(critic_state)
            if self.device.type == "cpu":
                torch.set_rng_state(self.generators[agent].get_state())
            runs.append(trainer.finish())
        torch.set_rng_state(global_state)
        return runs


def shared_tensor_env(trainers: Sequence[Trainer]) -> TensorRolloutStepper | None:
    """One torch env of ``A x N`` sub-environments for the agents (each agent's block seeded with its seed, its own
    normalisers), when they train on torch envs with the same normalisation; None otherwise (numpy envs:
    :class:`SharedCartPoleEnv`), and with one-step rollouts (an agent whose rollout held no transition collects again,
    alone: :func:`~.rollout.collect_rollouts`)."""
    first = trainers[0]
    if first.env_backend != "torch" or first.config.n_steps == 1 or any((t.normalize_obs, t.normalize_reward) != (first.normalize_obs,
                                                                                   first.normalize_reward)
                                           for t in trainers):
        return None
    envs = TensorVectorEnv(first.config.env_id, len(trainers) * first.config.num_envs, device=first.device,
                           dtype=first.envs.dtype, max_episode_steps=first.envs.max_episode_steps, streams=len(trainers))
    stepper = TensorRolloutStepper(envs, [t.config.seed for t in trainers], normalize_obs=first.normalize_obs,
                                   normalize_reward=first.normalize_reward, gamma=[t.config.gamma for t in trainers])
    for agent, trainer in enumerate(trainers):
        trainer.shared_env = (stepper, agent)
    return stepper


class SharedCartPoleEnv:
    """The env protocol with the agent axis for A agents on numpy CartPole without normalisation (the default
    backend and the course's CartPole settings): one :class:`~pgcourse.rl.envs.SeededCartPoleVectorEnv` of ``A x N``
    sub-environments in gymnasium's episode statistics, agent ``a``'s block seeded as its own env is (``seed_a + i``:
    each sub-environment draws its start states from its own generator), so every agent plays the episodes its own
    env would, bit for bit. One numpy step a step instead of A: ten agents of 8 envs took 367 us a step one after
    another and 49 us as one env (this 2-core Xeon, 2026-11-28)."""

    def __init__(self, trainers: Sequence[Trainer]):
        self.agents, self.n = len(trainers), trainers[0].config.num_envs
        self.made = [pickle_envs(t.envs, t.stepper) for t in trainers]  # each agent's env as made: its run's env
        envs = EpisodeStatistics(SeededCartPoleVectorEnv(self.agents * self.n, trainers[0].envs.env.max_episode_steps))
        self.stepper = RolloutStepper(envs, [t.config.seed + i for t in trainers for i in range(self.n)])
        self.device, self._steps = trainers[0].device, []
        self.episodes = [0] * self.agents  # each agent's episodes so far, and its last ones (the wrapper's queues)
        self.recent = [collections.deque(maxlen=envs.return_queue.maxlen) for _ in range(self.agents)]

    def begin_rollout(self, steps: int) -> Tensor:
        self._steps = []
        return torch.as_tensor(self.stepper.autoresetting.reshape(self.agents, self.n), device=self.device)  # [A, N]

    def observation(self) -> Tensor:
        obs = np.ascontiguousarray(self.stepper.obs).reshape(self.agents, self.n, -1)  # [A, N, 4] (the env's is a transpose)
        return torch.as_tensor(obs, device=self.device)  # row-major, as the agents' own envs' observations are batched

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        result = self.stepper.step(actions.cpu().numpy().reshape(-1))  # [A * N] each
        ended = np.flatnonzero(result.terminated | result.truncated)  # [E], the order of result's episodes
        self._steps.append((result.valid.reshape(self.agents, self.n).sum(axis=1), time.perf_counter(),
                            ended // self.n, result.episode_returns, result.episode_lengths))
        if ended.size:
            seconds = np.round(time.perf_counter() - self.stepper.envs.episode_start_times[ended], 6)  # as the wrapper
            for agent, episode in zip(ended // self.n, zip(seconds, result.episode_returns, result.episode_lengths)):
                self.episodes[agent] += 1
                self.recent[agent].append(episode)
        return tuple(torch.as_tensor(x.reshape(self.agents, self.n), device=self.device)
                     for x in (result.rewards.astype(np.float32), result.terminated, result.truncated))

    def end_rollout(self) -> list[StepRecord]:
        steps, self._steps = self._steps, []
        if not steps:
            return [StepRecord.empty() for _ in range(self.agents)]
        counts = np.stack([count for count, _, _, _, _ in steps], axis=1).astype(np.int64)  # [A, T]
        clock = np.array([clock for _, clock, _, _, _ in steps], dtype=np.float64)
        step_of = np.concatenate([np.full(len(agents), k, dtype=np.int64) for k, (_, _, agents, _, _) in enumerate(steps)])
        agent_of = np.concatenate([agents for _, _, agents, _, _ in steps])  # [E]
        returns = np.array([r for _, _, _, rs, _ in steps for r in rs], dtype=np.float64)
        lengths = np.array([n for _, _, _, _, ns in steps for n in ns], dtype=np.int64)
        return [StepRecord(counts[a], clock, step_of[agent_of == a], returns[agent_of == a], lengths[agent_of == a])
                for a in range(self.agents)]

    def agent(self, a: int) -> tuple:
        """Agent ``a``'s env and stepper on their own (what ``pg.train`` would hold now), between rollouts."""
        envs, stepper = pickle.loads(self.made[a])
        rows, shared = slice(a * self.n, (a + 1) * self.n), self.stepper.envs
        shared.env.copy_block(rows, envs.env)
        for name in ("episode_returns", "episode_lengths", "prev_dones", "episode_start_times"):
            setattr(envs, name, getattr(shared, name)[rows].copy())
        envs.episode_count = self.episodes[a]
        for seconds, episode_return, length in self.recent[a]:
            envs.time_queue.append(seconds), envs.return_queue.append(episode_return), envs.length_queue.append(length)
        stepper.obs, stepper.autoresetting = self.stepper.obs[rows].copy(), self.stepper.autoresetting[rows].copy()
        return envs, stepper


def shared_env(trainers: Sequence[Trainer]) -> TensorRolloutStepper | SharedCartPoleEnv | None:
    """One env of ``A x N`` sub-environments for the agents, when they can share one: torch envs
    (:func:`shared_tensor_env`), or numpy CartPole without normalisation and with rollouts longer than one step
    (:class:`SharedCartPoleEnv`); None otherwise (each agent steps its own: :class:`EachAgentEnv`)."""
    if trainers[0].env_backend == "torch":
        return shared_tensor_env(trainers)
    if trainers[0].config.n_steps > 1 and all(type(t.envs) is EpisodeStatistics and
                                              type(t.envs.env) is SeededCartPoleVectorEnv for t in trainers):
        return SharedCartPoleEnv(trainers)
    return None


class EachAgentEnv:
    """The env protocol with the agent axis over A agents that each step their own env (numpy envs that cannot share
    one, :func:`shared_env`: normalised, or not CartPole; torch envs normalised differently), one after another; the
    rows of an agent not running are zeros. With numpy envs the
    agents' actions come to the host in one copy and their observations, rewards and flags go to the device in one
    copy each (a copy per agent cost 10-17% of a ten-seed PPO CartPole batch's CPU)."""

    def __init__(self, trainers: Sequence[Trainer]):
        self.trainers, self.running = trainers, [True] * len(trainers)
        first = trainers[0]
        self.shape = (len(trainers), first.config.num_envs)  # [A, N]
        self.host = first.env_backend != "torch"  # every agent's env is numpy (a batch has one env_backend)

    def _each(self, call, *shapes_and_dtypes) -> list[Tensor]:
        device = self.trainers[0].device
        out = [torch.zeros(self.shape + shape, dtype=dtype, device=device) for shape, dtype in shapes_and_dtypes]
        for a, trainer in enumerate(self.trainers):
            if self.running[a]:
                for tensor, value in zip(out, call(a, trainer.env_stepper)):
                    tensor[a] = value[0]
        return out

    def begin_rollout(self, steps: int, running: Sequence[bool]) -> Tensor:
        self.running = list(running)
        return self._each(lambda a, env: (env.begin_rollout(steps),), ((), torch.bool))[0]

    def observation(self) -> Tensor:
        if self.host:
            obs = np.zeros(self.shape + (self.trainers[0].obs_dim,), dtype=np.float32)  # [A, N, obs_dim]
            for a, trainer in enumerate(self.trainers):
                if self.running[a]:
                    obs[a] = trainer.stepper.obs  # as Trainer.obs_tensor converts it
            return torch.as_tensor(obs, device=self.trainers[0].device)
        return self._each(lambda a, env: (env.observation(),), ((self.trainers[0].obs_dim,), torch.float32))[0]

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.host:
            host_actions = actions.cpu().numpy()  # [A, N(, D)]
            out = (np.zeros(self.shape, np.float32), np.zeros(self.shape, bool), np.zeros(self.shape, bool))
            for a, trainer in enumerate(self.trainers):
                if self.running[a]:
                    for array, value in zip(out, trainer.env_stepper.step_host(host_actions[a])):
                        array[a] = value
            return tuple(torch.as_tensor(array, device=self.trainers[0].device) for array in out)
        return tuple(self._each(lambda a, env: env.step(actions[a:a + 1]), ((), torch.float32), ((), torch.bool),
                                ((), torch.bool)))

    def end_rollout(self) -> list[StepRecord]:
        return [trainer.env_stepper.end_rollout()[0] if self.running[a] else StepRecord.empty()
                for a, trainer in enumerate(self.trainers)]


def build_agents(config, components=None, hooks=None, on_update=None, resume=None):
    """The agent axis a loop trains: one config (or a sequence of one) is ``pg.train``'s run, one
    :class:`OneAgent`; a sequence of more is one :class:`~.stacked.AgentStack` (``pg.train_many``: ``components``
    and ``hooks`` one for all agents or one per agent; no resume, which ``pg.train_many`` refuses before it gets
    here; ``on_update`` one callback per agent, or None)."""
    configs = list(config) if isinstance(config, Sequence) else [config]
    if len(configs) == 1:
        callback, components, hooks = (x[0] if isinstance(x, Sequence) else x for x in (on_update, components, hooks))
        return OneAgent(Trainer(configs[0], components, hooks, callback, resume=resume))
    if resume is not None or (on_update is not None and not isinstance(on_update, Sequence)):
        raise ValueError("resume trains one agent (pass one config); on_update is one callback per agent")
    return AgentStack(configs, components, hooks, on_update=on_update)
