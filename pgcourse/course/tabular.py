"""Exact computations on small tabular MDPs: the lessons' proofs in numbers, with no sampling error.

A sampled experiment answers "is the effect larger than the noise?"; an identity of the theory
(the advantage is an unbiased weight, the performance-difference lemma) deserves an exact check.
On an MDP with a handful of states every expectation is a finite sum or a linear solve, so both
sides of an identity can be computed in float64 and compared to ~1e-12.

Notation (Sutton & Barto; Kakade & Langford 2002):

- ``transitions[s, a, s']`` = P(s' | s, a), ``rewards[s, a]`` = r(s, a), ``start[s]`` = mu(s);
- ``probs[s, a]`` = pi(a | s), a tabular policy;
- finite horizon H, undiscounted: Q_t(s, a) = r(s, a) + sum_s' P(s'|s,a) V_{t+1}(s'), V_H = 0,
  V_t(s) = sum_a pi(a|s) Q_t(s, a) (lesson 02);
- discounted, infinite horizon: V = (I - gamma P_pi)^{-1} r_pi, and the normalised discounted state
  distribution d^pi = (1 - gamma) mu^T (I - gamma P_pi)^{-1} (lesson 04).

Everything here is small pure functions of tensors; the shapes are in the comments.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TabularMDP:
    """A finite MDP: ``transitions`` [S, A, S], ``rewards`` [S, A], ``start`` [S], all float64."""
    transitions: torch.Tensor
    rewards: torch.Tensor
    start: torch.Tensor

    @property
    def n_states(self) -> int:
        return self.rewards.shape[0]

    @property
    def n_actions(self) -> int:
        return self.rewards.shape[1]


def random_mdp(n_states: int, n_actions: int, seed: int, reward_offset: float = 0.0,
               reward_scale: float = 1.0, sharpness: float = 1.0) -> TabularMDP:
    """A random MDP: Dirichlet(1) transition rows raised to the power ``sharpness`` and renormalised
    (1: Dirichlet(1); larger: closer to deterministic, so the state distribution reacts more to the
    policy), a Dirichlet(1) start distribution, rewards ``reward_offset + reward_scale * U(-1, 1)``.
    A large offset mimics CartPole's +1 per step."""
    if n_states < 1 or n_actions < 2:
        raise ValueError(f"need at least 1 state and 2 actions, got n_states={n_states}, n_actions={n_actions}")
    if not sharpness > 0:
        raise ValueError(f"sharpness must be a positive power (1 keeps Dirichlet(1) rows), got {sharpness!r}")
    generator = torch.Generator().manual_seed(seed)
    dirichlet = lambda *shape: -torch.log(torch.rand(*shape, generator=generator, dtype=torch.float64))
    transitions = dirichlet(n_states, n_actions, n_states)
    transitions = transitions / transitions.sum(-1, keepdim=True)                  # [S, A, S]
    if sharpness != 1.0:
        transitions = transitions ** sharpness
        transitions = transitions / transitions.sum(-1, keepdim=True)
    start = dirichlet(n_states)
    start = start / start.sum()                                                     # [S]
    uniform = torch.rand(n_states, n_actions, generator=generator, dtype=torch.float64)
    rewards = reward_offset + reward_scale * (2 * uniform - 1)                      # [S, A]
    return TabularMDP(transitions, rewards, start)


# ----- finite horizon: trajectories, returns and the score-function estimators (lesson 02) -----

def finite_horizon_q(mdp: TabularMDP, probs: torch.Tensor, horizon: int) -> torch.Tensor:
    """Q_t(s, a) for t = 0 .. H-1 by backward induction: [H, S, A] (V_t(s) = (probs * Q_t).sum(-1))."""
    q_values = []
    next_values = torch.zeros(mdp.n_states, dtype=mdp.rewards.dtype)                 # V_H = 0, [S]
    for _ in range(horizon):
        q_t = mdp.rewards + mdp.transitions @ next_values                            # [S, A]
        q_values.append(q_t)
        next_values = (probs * q_t).sum(-1)                                          # V_t, [S]
    return torch.stack(q_values[::-1])                                               # [H, S, A]


def finite_horizon_return(mdp: TabularMDP, probs: torch.Tensor, horizon: int) -> torch.Tensor:
    """J(pi) = sum_s mu(s) V_0(s), exact (differentiable in ``probs``)."""
    q_values = finite_horizon_q(mdp, probs, horizon)
    return mdp.start @ (probs * q_values[0]).sum(-1)


@dataclass(frozen=True)
class Trajectories:
    """Every trajectory of length H, with its probability: ``states``, ``actions`` [N, H] (long),
    ``probability`` [N] (sums to 1), ``next_states`` [N, H] (s_{t+1}; the last one is drawn too)."""
    states: torch.Tensor
    actions: torch.Tensor
    next_states: torch.Tensor
    probability: torch.Tensor


def all_trajectories(mdp: TabularMDP, probs: torch.Tensor, horizon: int) -> Trajectories:
    """Enumerate all (s_0, a_0, s_1, ..., a_{H-1}, s_H): (S (A S)^H) of them, so keep S, A, H small."""
    count = mdp.n_states * (mdp.n_actions * mdp.n_states) ** horizon
    if count > 2_000_000:
        raise ValueError(f"{count:,} trajectories are too many to enumerate: use fewer states, actions or steps")
    grids = [range(mdp.n_states)] + [range(mdp.n_actions), range(mdp.n_states)] * horizon
    path = torch.tensor(list(itertools.product(*grids)), dtype=torch.long)           # [N, 1 + 2H]
    states, actions, next_states = path[:, 0:-1:2], path[:, 1::2], path[:, 2::2]     # [N, H] each
    probability = mdp.start[states[:, 0]]                                            # [N]
    probability = probability * probs.detach()[states, actions].prod(-1)
    probability = probability * mdp.transitions[states, actions, next_states].prod(-1)
    return Trajectories(states, actions, next_states, probability)


def rewards_to_go(mdp: TabularMDP, paths: Trajectories) -> torch.Tensor:
    """G_t = sum_{k >= t} r(s_k, a_k) of every trajectory (undiscounted): [N, H]."""
    rewards = mdp.rewards[paths.states, paths.actions]                               # [N, H]
    return rewards.flip(-1).cumsum(-1).flip(-1)


def softmax_scores(logits: torch.Tensor) -> torch.Tensor:
    """grad_theta log pi(a | s) of a tabular softmax policy pi = softmax(logits[s]), flattened:
    [S, A, S*A]; the row of (s, a) is onehot(s) x (onehot(a) - pi(. | s))."""
    n_states, n_actions = logits.shape
    probs = torch.softmax(logits.detach(), -1)                                       # [S, A]
    eye_s = torch.eye(n_states, dtype=probs.dtype)                                   # [S, S]
    eye_a = torch.eye(n_actions, dtype=probs.dtype)                                  # [A, A]
    per_state = eye_a[None, :, :] - probs[:, None, :]                                # [S, A(a), A(b)]
    scores = eye_s[:, None, :, None] * per_state[:, :, None, :]                      # [S, A, S, A]
    return scores.reshape(n_states, n_actions, n_states * n_actions)


def score_function_moments(scores: torch.Tensor, paths: Trajectories, weights: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and total variance of the one-trajectory estimator g(tau) = sum_t score(s_t, a_t) w_t.

    Args:
        scores: [S, A, P] from :func:`softmax_scores`.
        paths: every trajectory with its probability.
        weights: w_t of every trajectory and step, [N, H] (G_t, Q_t(s_t, a_t), A_t(s_t, a_t), ...).

    Returns:
        E[g] [P] and tr Cov[g] = E||g||^2 - ||E g||^2 (a scalar), both exact sums over the trajectories.
    """
    estimates = (scores[paths.states, paths.actions] * weights[..., None]).sum(1)     # [N, P]
    mean = paths.probability @ estimates                                             # [P]
    second_moment = paths.probability @ (estimates ** 2).sum(-1)
    return mean, second_moment - (mean ** 2).sum()


# ----- discounted, infinite horizon: values, state distribution, performance difference (lesson 04) -----

def discounted_values(mdp: TabularMDP, probs: torch.Tensor, gamma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """V^pi [S] by a linear solve of V = r_pi + gamma P_pi V, and Q^pi [S, A] = r + gamma P V."""
    policy_transitions = torch.einsum("sa,sat->st", probs, mdp.transitions)          # P_pi, [S, S]
    policy_rewards = (probs * mdp.rewards).sum(-1)                                   # r_pi, [S]
    identity = torch.eye(mdp.n_states, dtype=probs.dtype)
    values = torch.linalg.solve(identity - gamma * policy_transitions, policy_rewards)
    return values, mdp.rewards + gamma * mdp.transitions @ values


def discounted_state_distribution(mdp: TabularMDP, probs: torch.Tensor, gamma: float) -> torch.Tensor:
    """d^pi(s) = (1 - gamma) sum_t gamma^t P(s_t = s): [S], sums to 1."""
    policy_transitions = torch.einsum("sa,sat->st", probs, mdp.transitions)          # [S, S]
    identity = torch.eye(mdp.n_states, dtype=probs.dtype)
    return (1 - gamma) * torch.linalg.solve((identity - gamma * policy_transitions).T, mdp.start)


def discounted_return(mdp: TabularMDP, probs: torch.Tensor, gamma: float) -> torch.Tensor:
    """J(pi) = sum_s mu(s) V^pi(s)."""
    return mdp.start @ discounted_values(mdp, probs, gamma)[0]


def advantage_under(mdp: TabularMDP, probs_old: torch.Tensor, probs_new: torch.Tensor, gamma: float,
                    states_from: torch.Tensor) -> torch.Tensor:
    """1/(1 - gamma) sum_s d(s) sum_a pi_new(a|s) A^{pi_old}(s, a), with the state weights d = ``states_from`` [S].

    With d = d^{pi_new} this is J(pi_new) - J(pi_old) exactly (the performance-difference lemma);
    with d = d^{pi_old} it is the surrogate that a batch from pi_old can estimate (lessons 04, 07)."""
    values, q_values = discounted_values(mdp, probs_old, gamma)
    advantages = q_values - values[:, None]                                          # A^{pi_old}, [S, A]
    return states_from @ (probs_new * advantages).sum(-1) / (1 - gamma)


def mean_kl(probs_old: torch.Tensor, probs_new: torch.Tensor, states_from: torch.Tensor) -> torch.Tensor:
    """sum_s d(s) KL(pi_old(.|s) || pi_new(.|s))."""
    per_state = (probs_old * (probs_old.log() - probs_new.log())).sum(-1)            # [S]
    return states_from @ per_state
