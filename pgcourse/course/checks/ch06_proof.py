"""The proof that exercise 06 Part B's ``train_actor_critic`` learned: the critic and the policy it returns are the
product of its own optimiser steps on the transitions it played on the envs the check gave it, and the episode
returns the check scores are those it recorded there, not those the loop reports.

A check that only reads what the loop returns can be fooled: a loop that trained nothing, wrote each probe's right
critic by hand and reported 100 returns of 500 passed ("both probe critics right ... best 50-episode average
500"). So during the check the loop's ``make_envs`` is the check's (:func:`pgcourse.classroom.sandboxed.loops.
play_with_make_envs`, the same code in the notebook and in the grader's student process): every env it builds
records every reset and step, and every ``optimizer.step()`` is recorded (parameters before and after, gradients,
settings, the env step it came after). :func:`prove_actor_critic` checks the record with these rules, in this
order (the first broken is named):

1. the loop took optimiser steps and played on the envs make_envs gave it;
   1b. on CartPole-v1, every step of every episode is CartPole-v1's, replayed with its equations
   (:mod:`.cartpole_replay`): a loop that widened the env's thresholds recorded episodes of 500 with an actor that
   learned nothing, and passed;
2. the optimisers are built once: the same ones step at every update, each once;
3. one update per batch: update k comes after exactly k * n_steps steps of each env (``n_steps * num_envs``
   transitions per update), ``total_steps // (n_steps * num_envs)`` updates, no step played after the last;
4. every tensor of the two returned state dicts is a parameter the optimisers stepped, holding what the last
   step left, and every stepped parameter is returned;
5. each step starts from the weights the previous one left (nothing but the optimiser wrote them) and is one
   Adam step (torch.optim.Adam, ``lr`` the loop's argument) on the gradients the parameters held, replayed here;
6. the weights before the first step are the networks the exercise builds right after ``torch.manual_seed(seed)``
   (the policy, then the critic; the other order is accepted);
7. the actions are samples of the policy being trained (a z-test of their log-probabilities, |z| <= 5);
8. the episode returns the loop returned are those of the episodes it played (in order).

Not checked: that each gradient is the actor-critic loss's (the probes test the critic's targets, the CartPole
score the actor's learning).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .cartpole_replay import cartpole_problem

Z_LIMIT = 5.0                  # as pgcourse.course.checks.learning_proof
CARTPOLE = "CartPole-v1"       # the env whose recorded steps are replayed (rule 1b)
ADAM_TOLERANCE = (1e-4, 1e-7)  # (rtol, atol) of a replayed Adam step against the recorded one
RETURN_TOLERANCE = 1e-3        # |reported - recorded| of an episode's return (sums of float rewards)


@dataclasses.dataclass
class ActorCriticContract:
    """What the exercise says the loop does with its arguments."""

    total_steps: int
    seed: int
    lr: float
    n_steps: int = 16


def _networks(obs_dim: int, n_actions: int) -> tuple[nn.Module, nn.Module]:
    policy = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, n_actions))
    value_net = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 1))
    return policy, value_net


def initial_weights(seed: int, obs_dim: int, n_actions: int) -> list[dict[str, dict[str, Tensor]]]:
    """The networks' weights right after ``torch.manual_seed(seed)``, the policy built first (the exercise's
    order) or the critic first: ``[{"policy": state, "value": state}, ...]``."""
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        policy, value_net = _networks(obs_dim, n_actions)
        first = {"policy": policy.state_dict(), "value": value_net.state_dict()}
        torch.manual_seed(seed)
        value_net = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 1))
        policy = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, n_actions))
        return [first, {"policy": policy.state_dict(), "value": value_net.state_dict()}]
    finally:
        torch.random.set_rng_state(state)


def _updates(steps: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The optimiser steps grouped by the env step they came after (one update may step two optimisers)."""
    groups: list[list[dict[str, Any]]] = []
    for step in steps:
        if groups and groups[-1][0]["env_step"] == step["env_step"]:
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def _structure_problem(played: dict[str, Any], steps: list[dict[str, Any]],
                       contract: ActorCriticContract) -> str | None:
    """Rules 1-3."""
    if not steps:
        return ("your loop took no optimiser step: the critic and the policy it returns must be trained by "
                "optimizer.step() on the losses of the transitions it plays, not built or written by hand.")
    if not played["envs_built"] or not len(played["actions"]):
        return ("your loop never stepped the envs make_envs(env_name) gave it: build them with make_envs, as the "
                "loop above does, and play every step on them (the check builds them and records what is played).")
    updates = _updates(steps)
    first = sorted(step["optimizer_number"] for step in updates[0])
    numbers = {step["optimizer_number"] for step in steps}
    if len(numbers) > len(first) or any(sorted(s["optimizer_number"] for s in update) != first for update in updates):
        return (f"your loop built {len(numbers)} optimisers over {len(updates)} updates: build the optimiser once, "
                f"before the loop, and step it once per update (Adam's moment estimates carry from one update to "
                f"the next).")
    num_envs = int(played["envs_built"])
    per_update = contract.n_steps * num_envs
    due = contract.total_steps // per_update
    clocks = [update[0]["env_step"] for update in updates]
    env = np.asarray(played["env"])
    for k, clock in enumerate(clocks):
        previous = clocks[k - 1] if k else 0
        counts = np.bincount(env[previous:clock], minlength=num_envs)
        if clock != (k + 1) * per_update or not (counts == contract.n_steps).all():
            return (f"update {k + 1} came after {clock - previous} transitions ({counts.min()} to {counts.max()} "
                    f"steps per env); the loop's updates: one after every n_steps = {contract.n_steps} steps of each "
                    f"of the {num_envs} envs, total_steps // (n_steps * len(envs)) = {due} updates.")
    if len(updates) != due or len(env) != clocks[-1]:
        return (f"your loop took {len(updates)} updates and played {len(env)} steps; the loop's updates: one after "
                f"every n_steps = {contract.n_steps} steps of each of the {num_envs} envs, total_steps // (n_steps * "
                f"len(envs)) = {due} updates, nothing played after the last.")
    return None


def _returned_tensors(result: Any) -> list[tuple[str, str, Tensor]] | None:
    """(network, name, tensor) of the two returned state dicts; None if they are not dicts of tensors."""
    tensors = []
    for network, state in (("policy", result[0]), ("value", result[1])):
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            return None
        tensors += [(network, str(name), value) for name, value in state.items()]
    return tensors


def _weights_problem(steps: list[dict[str, Any]], result: Any, contract: ActorCriticContract, obs_dim: int,
                     n_actions: int) -> tuple[str | None, dict[tuple[str, str], int]]:
    """Rules 4-6; also the returned (network, name) -> parameter number."""
    final: dict[int, Tensor] = {}
    first: dict[int, Tensor] = {}
    for step in steps:
        for number, before, after in zip(step["params"], step["before"], step["after"]):
            first.setdefault(number, torch.as_tensor(before))
            final[number] = torch.as_tensor(after)
    returned = _returned_tensors(result)
    names: dict[tuple[str, str], int] = {}
    unmatched = set(final)
    for network, name, value in returned or []:
        match = next((n for n in sorted(unmatched) if final[n].shape == value.shape
                      and torch.equal(final[n], value.detach().cpu())), None)
        if match is None:
            break
        names[(network, name)] = match
        unmatched.discard(match)
    if returned is None or len(names) != len(returned) or unmatched:
        return ("the networks you returned are not those your optimiser steps trained: their weights differ from "
                "those your last optimizer.step() left (weights written by hand, or other networks returned). Return "
                "policy.state_dict() and value_net.state_dict() of the networks your optimiser steps."), names
    last_after: dict[int, Tensor] = {}
    for k, step in enumerate(steps):
        for number, before in zip(step["params"], step["before"]):
            if number in last_after and not torch.equal(torch.as_tensor(before), last_after[number]):
                return (f"the weights changed between two optimiser steps outside optimizer.step() (before step "
                        f"{k + 1}): only the optimiser may change them."), names
        for number, after in zip(step["params"], step["after"]):
            last_after[number] = torch.as_tensor(after)
    problem = _adam_problem(steps, contract)
    if problem:
        return problem, names
    if not any(all(torch.equal(first[names[(network, name)]], init[network][name])
                   for network, name, _ in returned if name in init[network])
               and all(set(init[network]) == {name for net, name, _ in returned if net == network}
                       for network in init)
               for init in initial_weights(contract.seed, obs_dim, n_actions)):
        return ("the weights before your first update are not those of the networks the loop builds right after "
                "torch.manual_seed(seed) (the policy, then value_net, as above): seed first, then build both "
                "networks, and let only the optimiser change their weights."), names
    return None, names


def _adam_problem(steps: list[dict[str, Any]], contract: ActorCriticContract) -> str | None:
    """Rule 5's replay: each optimiser's steps are Adam steps with the loop's lr on the recorded gradients."""
    for step in steps:
        settings = step["settings"]
        if step["optimizer"] != "Adam" or not np.isclose(settings.get("lr", np.nan), contract.lr, rtol=1e-6):
            return (f"your optimiser is {step['optimizer']}(lr={settings.get('lr')}); the loop's is "
                    f"torch.optim.Adam(..., lr=lr), lr being the loop's lr argument (the check passed "
                    f"lr={contract.lr:g}).")
    replayed: dict[int, tuple[list[Tensor], torch.optim.Optimizer]] = {}
    rtol, atol = ADAM_TOLERANCE
    for k, step in enumerate(steps):
        number = step["optimizer_number"]
        if number not in replayed:
            params = [torch.as_tensor(p).detach().clone().requires_grad_(True) for p in step["before"]]
            s = step["settings"]
            replayed[number] = params, torch.optim.Adam(params, lr=s["lr"], eps=s.get("eps", 1e-8),
                                                        betas=tuple(s.get("betas", (0.9, 0.999))),
                                                        weight_decay=s.get("weight_decay", 0.0),
                                                        amsgrad=bool(s.get("amsgrad", False)),
                                                        maximize=bool(s.get("maximize", False)))
        params, adam = replayed[number]
        with torch.no_grad():
            for p, before in zip(params, step["before"]):
                p.copy_(torch.as_tensor(before))
        for p, grad in zip(params, step["grad"]):
            p.grad = torch.as_tensor(grad).clone()
        adam.step()
        if not all(torch.allclose(p.detach(), torch.as_tensor(after), rtol=rtol, atol=atol)
                   for p, after in zip(params, step["after"])):
            return (f"optimiser step {k + 1} is not one Adam step on the gradients the parameters held: call "
                    f"optimizer.step() once per update, after loss.backward(), and change the weights no other way.")
    return None


def on_policy_z(played: dict[str, Any], steps: list[dict[str, Any]], names: dict[tuple[str, str], int],
                obs_dim: int, n_actions: int) -> float:
    """The z-score of the played actions' log-probabilities under the policy each update's batch was played with
    (the weights before that update): sum of ``log pi(a|s) - E_pi[log pi]`` over the square root of the sum of
    ``Var_pi[log pi]`` (about N(0, 1) for samples; see pgcourse.course.checks.learning_proof.on_policy_z)."""
    policy, _ = _networks(obs_dim, n_actions)
    keys = [name for network, name in names if network == "policy"]
    obs, actions = torch.as_tensor(played["obs"]).float(), torch.as_tensor(played["actions"]).long()
    total, variance, previous = 0.0, 0.0, 0
    for update in _updates(steps):
        weights = {number: torch.as_tensor(before) for step in update
                   for number, before in zip(step["params"], step["before"])}
        policy.load_state_dict({key: weights[names[("policy", key)]] for key in keys})
        clock = update[0]["env_step"]
        with torch.no_grad():
            log_p = torch.log_softmax(policy(obs[previous:clock]).double(), dim=-1)  # [B, A]
        mean = (log_p.exp() * log_p).sum(-1)  # [B]
        total += float((log_p.gather(-1, actions[previous:clock].unsqueeze(-1)).squeeze(-1) - mean).sum())
        variance += float((log_p.exp() * (log_p - mean.unsqueeze(-1)) ** 2).sum())
        previous = clock
    return total / variance ** 0.5 if variance > 0 else 0.0


def recorded_returns(played: dict[str, Any]) -> list[float]:
    """The returns of the episodes that ended on the check's envs, in the order they ended."""
    return [float(episode[2]) for episode in played["episodes"]]


def _returns_problem(played: dict[str, Any], reported: Any) -> str | None:
    """Rule 8."""
    recorded = recorded_returns(played)
    try:
        reported = [float(x) for x in reported]
    except (TypeError, ValueError):
        return ("train_actor_critic's third result must be the list of the returns of the episodes that ended "
                "during training.")
    if len(reported) != len(recorded):
        return (f"the episode returns your loop returned are not those of the episodes it played: {len(reported)} "
                f"returns for the {len(recorded)} episodes that ended on its envs (append each episode's return "
                f"when it ends, terminated or truncated).")
    for k, (a, b) in enumerate(zip(reported, recorded)):
        if not abs(a - b) <= RETURN_TOLERANCE:
            return (f"the episode returns your loop returned are not those of the episodes it played: episode "
                    f"{k + 1} returned {a:g}, played {b:g} (sum each episode's rewards from its reset, and start "
                    f"from 0 again when it ends).")
    return None


def prove_actor_critic(outcome: dict[str, Any], contract: ActorCriticContract, obs_dim: int,
                       n_actions: int, env_name: str | None = None) -> str | None:
    """The first rule of the module's docstring that the record (``outcome`` of ``play_with_make_envs``) breaks,
    in words; None if the returned networks are the product of the loop's own steps on what it played
    (``env_name`` "CartPole-v1": and every step played is CartPole-v1's, rule 1b)."""
    played, call = outcome["played"], outcome["calls"][0]
    steps, result = call["optimizer_steps"], call["result"]
    problem = _structure_problem(played, steps, contract)
    if not problem and env_name == CARTPOLE:
        problem = cartpole_problem(played)
    if problem:
        return problem
    problem, names = _weights_problem(steps, result, contract, obs_dim, n_actions)
    if problem:
        return problem
    z = on_policy_z(played, steps, names, obs_dim, n_actions)
    if abs(z) > Z_LIMIT:
        return (f"the actions your loop played are not samples of the policy being trained (z = {z:.1f} for their "
                f"log-probabilities; sampling gives |z| <= {Z_LIMIT:g}): at every step, sample each env's action "
                f"from the current policy's logits.")
    return _returns_problem(played, result[2])
