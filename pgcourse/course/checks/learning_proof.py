"""The proof that a training loop learned: the policy it returns is the product of its own gradient steps on the
episodes it played on the envs it was given.

An end-to-end check that only scores the returned policy can be fooled: a loop can play its episodes with
random actions and then write a hand-made controller into the policy's weights (it scored 500 where the
reference scores 93). So the check also records, on its side of the loop, everything the loop did:

- :class:`RecordingEnvs` wraps the envs the loop is given: every ``reset`` (and whether it was seeded) and every
  ``step`` (the observation the actions were chosen on, the actions, rewards and flags);
- :class:`StepRecorder` hooks every ``optimizer.step()`` (torch's global optimiser hooks): the parameters before
  and after it, the gradients it used, the optimiser's settings and identity, the env step it came after.

The grader records the same in its sandbox (``pgcourse.classroom.sandboxed.loops``, a copy of these two classes that
imports only torch, numpy and gymnasium), and :func:`prove_learning` checks the record with the same rules in
the notebook and in the grader, in this order (the first rule broken is the mistake named):

1. the loop played on the envs it was given and took optimiser steps, all with one optimiser, on the parameters
   of the policy it returned;
2. one update per batch: each step follows exactly one new batch of complete episodes (every env's first
   episode since a reset, the step that ended it included), and no batch is left unused;
3. the optimiser is the exercise's (its class, lr and eps);
4. the weights before the first step are the policy the exercise builds from the seed, each step starts from
   the weights the previous one left, and the returned policy holds the weights the last step left: nothing
   but the optimiser wrote them;
5. each step is one step of that optimiser on the gradients the parameters held (replayed here);
6. the actions were sampled from the policy being trained: over all steps, the log-probability of the actions
   played is what sampling from the policy gives (a z-test: |z| <= 5, about 1 in 1.7 million for a loop that
   samples);
7. each step's gradient is the exercise's gradient on the batch played just before it, up to a positive scale
   (Adam does not see a scale); when it is not, the known wrong gradients are tried and the one that matches is
   named.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

OPTIMIZER_SETTINGS = ("lr", "eps", "betas", "weight_decay", "amsgrad", "maximize")
Z_LIMIT = 5.0            # |z| of the on-policy test beyond which the actions are not the policy's samples
GRADIENT_RESIDUAL = 1e-3  # relative distance of a gradient from the expected direction; measured on seed 0 (50
                          # and 100 episodes, every update): the right loops of tests/training_loops.py 1.8e-6 at
                          # most; the wrong gradients' updates 6.0e-3 at their closest (returns not discounted, on a
                          # batch of short episodes), 0.07 (across episodes), 0.19 (not normalised), inf (the sign);
                          # one update beyond the bound names the mistake
ADAM_TOLERANCE = (1e-4, 1e-7)  # (rtol, atol) of a replayed Adam step against the recorded one


# --------------------------------------------------------------------------------------------------
# Recording (the sandbox has a copy of these two in pgcourse.classroom.sandboxed.loops)
# --------------------------------------------------------------------------------------------------

class RecordingEnvs(gym.vector.VectorWrapper):
    """Records every reset and step of the learner's loop on its envs; changes nothing the loop sees."""

    def __init__(self, env: gym.vector.VectorEnv):
        super().__init__(env)
        self.resets: list[list[Any]] = []
        self.rows: dict[str, list[np.ndarray]] = {name: [] for name in ("obs", "actions", "rewards", "terminated",
                                                                          "truncated")}
        self._obs: np.ndarray | None = None

    @property
    def clock(self) -> int:
        """The number of steps played so far."""
        return len(self.rows["actions"])

    def reset(self, *, seed: Any = None, options: Any = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.resets.append([self.clock, seed is not None])
        self._obs = np.array(obs, dtype=np.float32)
        return obs, info

    def step(self, actions: Any):
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        row = {"obs": self._obs, "actions": np.array(actions, dtype=np.int64).reshape(self.num_envs),
               "rewards": np.array(rewards, dtype=np.float32), "terminated": np.array(terminated, dtype=bool),
               "truncated": np.array(truncated, dtype=bool)}
        for name, value in row.items():
            self.rows[name].append(value)
        self._obs = np.array(obs, dtype=np.float32)
        return obs, rewards, terminated, truncated, infos

    def data(self) -> dict[str, Any]:
        """What was played: ``resets`` ([steps before it, seeded]), and ``obs [S, N, obs_dim]``, ``actions``,
        ``rewards``, ``terminated``, ``truncated`` ``[S, N]``."""
        empty = {"obs": np.zeros((0, self.num_envs, 4), dtype=np.float32)}  # no step played: [0, N] of each
        return {"resets": [list(reset) for reset in self.resets],
                **{name: torch.as_tensor(np.stack(rows) if rows else empty.get(name, np.zeros((0, self.num_envs))))
                   for name, rows in self.rows.items()}}


class StepRecorder:
    """While active, every ``optimizer.step()`` of any torch optimiser is recorded: the parameters before and
    after it, the gradients it used, the optimiser's settings and identity, the env step it came after."""

    def __init__(self, clock: Callable[[], int], keep: int | None = None):
        self.clock = clock
        self.keep = keep  # record the tensors of the first `keep` steps only (all if None); the rest are counted
        self.steps: list[dict[str, Any]] = []
        self._handles: list[Any] = []
        self._optimizers: dict[int, Any] = {}  # held, so that no other optimiser gets one's id while recording

    def __enter__(self) -> StepRecorder:
        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook
        self._handles = [register_optimizer_step_pre_hook(self._before), register_optimizer_step_post_hook(self._after)]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()

    @staticmethod
    def _params(optimizer: Any) -> list[Tensor]:
        return [p for group in optimizer.param_groups for p in group["params"]]

    def _before(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        params = self._params(optimizer)
        group = optimizer.param_groups[0]
        settings = {key: (tuple(float(b) for b in group[key]) if key == "betas" else
                          (bool(group[key]) if isinstance(group[key], bool) else float(group[key])))
                    for key in OPTIMIZER_SETTINGS if key in group}
        self._optimizers[id(optimizer)] = optimizer
        kept = self.keep is None or len(self.steps) < self.keep
        self.steps.append({"optimizer": type(optimizer).__name__[:100], "optimizer_id": id(optimizer),
                           "groups": len(optimizer.param_groups), "settings": settings, "env_step": int(self.clock()),
                           "ids": [id(p) for p in params], "kept": kept,
                           "before": [p.detach().clone() for p in params] if kept else [],
                           "grad": [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in params]
                           if kept else []})

    def _after(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self.steps and self.steps[-1]["kept"]:
            self.steps[-1]["after"] = [p.detach().clone() for p in self._params(optimizer)]

    def data(self, returned: Any) -> list[dict[str, Any]]:
        """The steps as data, each parameter named by the returned module's name for it (``None``: a tensor of
        no returned module's); the optimisers numbered in the order they first stepped."""
        names = {id(p): name for name, p in returned.named_parameters()} if isinstance(returned, torch.nn.Module) \
            else {}
        numbers: dict[int, int] = {}
        steps = []
        for step in self.steps:
            step = dict(step)
            step["optimizer_number"] = numbers.setdefault(step.pop("optimizer_id"), len(numbers))
            step["names"] = [names.get(i) for i in step.pop("ids")]
            step.setdefault("after", step["before"])
            steps.append(step)
        return steps


# --------------------------------------------------------------------------------------------------
# The record, read back
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Batch:
    """One batch of complete episodes: each env's first episode after a reset, env 0's first.
    ``obs [B, obs_dim]``, ``actions [B]``, ``episode_rewards`` (one ``[T_i]`` per env), ``end``: the number of
    steps played when its last episode ended."""

    obs: Tensor
    actions: Tensor
    episode_rewards: list[Tensor]
    end: int


def batches_played(played: dict[str, Any]) -> list[Batch]:
    """The complete batches of a record: a reset followed by steps until every env has ended its first episode
    (a reset that another follows before every env's episode ended starts no batch)."""
    ends = np.asarray(played["terminated"], dtype=bool) | np.asarray(played["truncated"], dtype=bool)  # [S, N]
    starts = [int(at) for at, _ in played["resets"]]
    batches = []
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else ends.shape[0]
        if stop <= start:
            continue  # a reset followed by another reset (the seeding one)
        segment = ends[start:stop]  # [T, N]
        if not segment.any(axis=0).all():
            continue
        lengths = segment.argmax(axis=0) + 1  # [N] each env's first episode, its last step included
        obs, actions = torch.as_tensor(played["obs"][start:stop]), torch.as_tensor(played["actions"][start:stop])
        rewards = torch.as_tensor(played["rewards"][start:stop], dtype=torch.float32)
        batches.append(Batch(torch.cat([obs[:n, i] for i, n in enumerate(lengths)]).float(),
                             torch.cat([actions[:n, i] for i, n in enumerate(lengths)]).long(),
                             [rewards[:n, i] for i, n in enumerate(lengths)], start + int(lengths.max())))
    return batches


def _flat(tensors: Sequence[Tensor]) -> Tensor:
    return torch.cat([torch.as_tensor(t).reshape(-1).double() for t in tensors])


def direction_residual(received: Tensor, expected: Tensor) -> tuple[float, float]:
    """How far ``received`` is from a positive multiple of ``expected``: (``||r - s e|| / ||r||`` with the best
    ``s``, that ``s``); (inf, 0) for a zero vector or a negative multiple."""
    r, e = received.double(), expected.double()
    if not (r.norm() > 0 and e.norm() > 0):
        return (0.0, 1.0) if r.norm() == e.norm() == 0 else (float("inf"), 0.0)
    scale = float(r @ e / (e @ e))
    if scale <= 0:
        return float("inf"), scale
    return float((r - scale * e).norm() / r.norm()), scale


# --------------------------------------------------------------------------------------------------
# The rules
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class LoopContract:
    """What the exercise says the loop does, for :func:`prove_learning`.

    ``initial``: the policy's parameters as the exercise builds them from the seed, by name.
    ``policy``: a policy with given parameters (by name), for the on-policy test and the gradients.
    ``gradient(policy, batch, mistake)``: the flat gradient of the exercise's loss on a batch (``mistake``: a
    known wrong version's, for naming it). ``mistakes``: (name, what to tell the learner) of those versions.
    ``lr``, ``eps``: the optimiser's (torch.optim.Adam). ``budget``: the number of batches the loop must train on.
    """

    initial: dict[str, Tensor]
    policy: Callable[[dict[str, Tensor]], torch.nn.Module]
    gradient: Callable[[torch.nn.Module, Batch, str | None], Tensor]
    mistakes: Sequence[tuple[str, str]]
    lr: float
    eps: float
    budget: int


def _returned_another_module(steps: list[dict[str, Any]], returned: dict[str, Any]) -> str | None:
    """Rule 1's diagnosis when no tensor the optimiser stepped is a parameter of the returned policy, yet the steps
    trained a network (its weights moved): the loop returned another module than the one it trained. A copy holding
    the trained weights (those the last step left, parameter by parameter) or a new network are told apart; None
    when the steps moved nothing (the optimiser was built on tensors the loss never reaches: rule 1's own message)."""
    kept = [step for step in steps if step.get("kept", True) and step["before"] and step["after"]]
    moved = any(not torch.equal(torch.as_tensor(a), torch.as_tensor(b))
                for step in kept for a, b in zip(step["before"], step["after"]))
    if not moved:
        return None
    mine = [torch.as_tensor(value) for value in returned.values()]

    def holds(weights: list[Any]) -> bool:
        weights = [torch.as_tensor(value) for value in weights]
        return len(weights) == len(mine) and all(a.shape == b.shape and torch.equal(a, b)
                                                 for a, b in zip(weights, mine))

    if steps[-1] is kept[-1] and holds(steps[-1]["after"]):
        return ("the policy you returned is a copy of the policy your updates trained (another module holding its "
                "weights): return the trained policy itself, the module whose parameters your optimiser steps (the "
                "check follows those parameters through every optimizer.step()).")
    untrained = " (it holds the weights your first update started from: untrained)" if steps[0] is kept[0] and \
        holds(steps[0]["before"]) else ""
    return (f"the policy you returned is a new network, not the one your updates trained{untrained}: its weights are "
            f"not those your last optimizer.step() left. Return the policy you built before the loop and trained.")


def _steps_problem(played: dict[str, Any], steps: list[dict[str, Any]], batches: list[Batch],
                   contract: LoopContract, returned: dict[str, Any] | None = None) -> str | None:
    """Rules 1 and 2: the given envs played, steps taken, one optimiser on the returned policy's parameters, one
    update per batch, the budget's number of batches."""
    if not len(played["actions"]):
        return ("your loop never stepped the envs it was given: play every episode on them (the check counts and "
                "records what your loop plays there).")
    if not steps:
        return (f"your loop took no optimiser step: the policy it returns must be trained by optimizer.step() on "
                f"the REINFORCE loss of the episodes it plays ({contract.budget} batches, one update each), not "
                f"built or written by hand.")
    if all(name is None for step in steps for name in step["names"]) and isinstance(returned, dict):
        another = _returned_another_module(steps, returned)
        if another:
            return another
    if any(name is None for step in steps for name in step["names"]):
        return ("the policy you returned is not the one your updates trained: your optimiser steps tensors that are "
                "not its parameters (build the optimiser on policy.parameters() and return that policy).")
    if len({step["optimizer_number"] for step in steps}) > 1:
        return (f"your loop built {len({step['optimizer_number'] for step in steps})} optimisers: build one, before "
                f"the loop, and keep it (Adam's moment estimates carry from one update to the next).")
    previous = 0
    for k, step in enumerate(steps):
        at = step["env_step"]
        new = [batch for batch in batches if previous < batch.end <= at]
        if not new and at > previous:
            return (f"update {k + 1} came before every env had finished its episode: take one optimiser step per "
                    f"batch, after collecting one complete episode in every env (an update after every env step "
                    f"trains on unfinished episodes).")
        if not new:
            return f"update {k + 1} came with no new batch of episodes: take one optimiser step per batch."
        if len(new) > 1:
            return (f"update {k + 1} came after {len(new)} batches of episodes: take one optimiser step per batch "
                    f"(collect_episodes, then reinforce_update).")
        previous = at
    unused = [batch for batch in batches if batch.end > previous]
    if unused:
        return (f"{len(unused)} batch(es) of episodes were played after your last update and never trained on: end "
                f"the loop with an update.")
    if len(steps) != contract.budget:
        return (f"your loop took {len(steps)} updates; train until config.max_episodes episodes: {contract.budget} "
                f"batches of envs.num_envs episodes, one update each.")
    return None


def _weights_problem(steps: list[dict[str, Any]], returned: dict[str, Tensor], contract: LoopContract) -> str | None:
    """Rules 3 and 4: the exercise's optimiser; nothing but its steps wrote the weights."""
    settings = steps[0]["settings"]
    if steps[0]["optimizer"] != "Adam" or not (np.isclose(settings.get("lr", np.nan), contract.lr, rtol=1e-6)
                                               and np.isclose(settings.get("eps", np.nan), contract.eps, rtol=1e-6)):
        return (f"your optimiser is {steps[0]['optimizer']}(lr={settings.get('lr')}, eps={settings.get('eps')}); the "
                f"exercise's is torch.optim.Adam(policy.parameters(), lr=config.lr={contract.lr:g}, "
                f"eps=config.adam_eps={contract.eps:g}).")
    names = steps[0]["names"]
    first = dict(zip(names, steps[0]["before"]))
    if set(first) != set(contract.initial) or not all(torch.equal(torch.as_tensor(first[name]), initial)
                                                      for name, initial in contract.initial.items()):
        return ("the policy's weights before your first update are not those of the policy the exercise builds "
                "(CategoricalPolicy(obs_dim, n_actions, config.hidden_sizes) right after torch.manual_seed("
                "config.seed)): seed first, then build the policy, and let only the optimiser change its weights.")
    for k in range(1, len(steps)):
        if steps[k]["names"] != names or not all(torch.equal(torch.as_tensor(a), torch.as_tensor(b))
                                                for a, b in zip(steps[k - 1]["after"], steps[k]["before"])):
            return (f"the policy's weights changed between update {k} and update {k + 1} outside optimizer.step(): "
                    f"only the optimiser may change them.")
    last = dict(zip(names, steps[-1]["after"]))
    if set(returned) != set(last) or not all(torch.equal(torch.as_tensor(returned[name]), torch.as_tensor(last[name]))
                                             for name in last):
        return ("the policy you returned is not the one your updates trained: its weights differ from those your "
                "last optimizer.step() left (weights written by hand, or another network returned).")
    return None


def _adam_problem(steps: list[dict[str, Any]], contract: LoopContract) -> str | None:
    """Rule 5: each step is one Adam step on the gradients the parameters held (Adam replayed here)."""
    params = [torch.as_tensor(p).detach().clone().requires_grad_(True) for p in steps[0]["before"]]
    adam = torch.optim.Adam(params, lr=contract.lr, eps=contract.eps)
    for k, step in enumerate(steps):
        with torch.no_grad():
            for p, before in zip(params, step["before"]):
                p.copy_(torch.as_tensor(before))
        for p, grad in zip(params, step["grad"]):
            p.grad = torch.as_tensor(grad).clone()
        adam.step()
        rtol, atol = ADAM_TOLERANCE
        if not all(torch.allclose(p.detach(), torch.as_tensor(after), rtol=rtol, atol=atol)
                   for p, after in zip(params, step["after"])):
            return (f"update {k + 1} is not one Adam step on the gradients the parameters held: call "
                    f"optimizer.step() once per update, after loss.backward(), and change the weights no other way.")
    return None


def on_policy_z(steps: list[dict[str, Any]], batches: list[Batch], contract: LoopContract) -> float:
    """The z-score of the actions' log-probability under the policy that played them: sum over every step of
    ``log pi(a|s) - E_pi[log pi(.|s)]``, over the square root of the sum of ``Var_pi[log pi(.|s)]``. About
    N(0, 1) when the actions are the policy's samples (a martingale); far below 0 for uniform random actions
    once the policy prefers some, far above for a controller's actions. 0 when the policy is uniform throughout."""
    total, variance = 0.0, 0.0
    for step, batch in zip(steps, batches_between(steps, batches)):
        policy = contract.policy(dict(zip(step["names"], step["before"])))
        with torch.no_grad():
            log_p = torch.log_softmax(policy(batch.obs).double(), dim=-1)  # [B, A]
        mean = (log_p.exp() * log_p).sum(-1)  # [B]
        total += float((log_p.gather(-1, batch.actions.unsqueeze(-1)).squeeze(-1) - mean).sum())
        variance += float((log_p.exp() * (log_p - mean.unsqueeze(-1)) ** 2).sum())
    return total / variance ** 0.5 if variance > 0 else 0.0


def batches_between(steps: list[dict[str, Any]], batches: list[Batch]) -> list[Batch]:
    """The batch each step trained on (rule 2 holds: one new batch before each step)."""
    chosen, previous = [], 0
    for step in steps:
        chosen.append(next(batch for batch in batches if previous < batch.end <= step["env_step"]))
        previous = step["env_step"]
    return chosen


def _gradient_problem(steps: list[dict[str, Any]], batches: list[Batch], contract: LoopContract) -> str | None:
    """Rule 7: each step's gradient is the exercise's on the batch before it, up to a positive scale; else the
    known wrong gradient that matches is named."""
    previous_grad = None
    for k, (step, batch) in enumerate(zip(steps, batches_between(steps, batches))):
        policy = contract.policy(dict(zip(step["names"], step["before"])))
        received = _flat(step["grad"])
        if direction_residual(received, contract.gradient(policy, batch, None))[0] <= GRADIENT_RESIDUAL:
            previous_grad = received
            continue
        for mistake, text in contract.mistakes:
            if mistake == "no_zero_grad":
                if previous_grad is None:
                    continue
                expected = contract.gradient(policy, batch, None)
                residual = float((received - previous_grad - expected).norm() / received.norm())
            else:
                residual = direction_residual(received, contract.gradient(policy, batch, mistake))[0]
            if residual <= GRADIENT_RESIDUAL:
                return f"the gradient of update {k + 1}: {text}"
        return (f"the gradient of update {k + 1} is not the REINFORCE gradient of the batch of episodes your loop "
                f"played just before it (one complete episode per env, the actions taken, the returns of each "
                f"episode): each update must train on the episodes just played.")
    return None


def prove_learning(played: dict[str, Any], steps: list[dict[str, Any]], returned: dict[str, Tensor],
                   contract: LoopContract) -> str | None:
    """The first rule of the module's docstring that the record breaks, in words; None if the returned policy is
    the product of the loop's own updates on the episodes it played."""
    batches = batches_played(played)
    problem = (_steps_problem(played, steps, batches, contract, returned)
               or _weights_problem(steps, returned, contract) or _adam_problem(steps, contract))
    if problem:
        return problem
    z = on_policy_z(steps, batches, contract)
    if abs(z) > Z_LIMIT:
        return (f"the actions your loop played are not samples of the policy being trained (z = {z:.1f} for their "
                f"log-probabilities; sampling gives |z| <= {Z_LIMIT:g}): at every step, sample each env's action "
                f"from the current policy's logits.")
    return _gradient_problem(steps, batches, contract)
