"""Checks of chapter 01 (REINFORCE): action_log_probs, discounted_returns, normalize, reinforce_loss,
first_episode_lengths."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ...rl import distributions, envs, losses, returns
from .ch00_setup import _episode_flags
from .harness import _BOTH_FLAGS_HINT, _STEPS_NOTE, Case, Exercise, Mistake, _bool, _log_probs, _make_check, _randn, _t


# --------------------------------------------------------------------------------------------------
# action_log_probs
# --------------------------------------------------------------------------------------------------

def _cases_action_log_probs() -> list[Case]:
    g = torch.Generator().manual_seed(21)
    return [
        Case("one state, 2 actions (B=1)", dict(logits=_t([[0.3, -0.2]], requires_grad=True), actions=torch.tensor([1]))),
        Case("B=5, 2 actions", dict(logits=_randn(g, 5, 2, requires_grad=True), actions=torch.tensor([0, 1, 1, 0, 1]))),
        Case("B=4, 3 actions", dict(logits=_randn(g, 4, 3, scale=3.0, requires_grad=True),
                                    actions=torch.tensor([2, 0, 1, 2]))),
        Case("a confident policy: logits [0, 120], action 0",
             dict(logits=_t([[0.0, 120.0]], requires_grad=True), actions=torch.tensor([0]))),
        Case("float64 (B=6, 4 actions)", dict(logits=_randn(g, 6, 4, dtype=torch.float64, requires_grad=True),
                                              actions=torch.tensor([3, 0, 1, 2, 2, 0]))),
    ]


def _gather(values: Tensor, actions: Tensor) -> Tensor:
    return values.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


ACTION_LOG_PROBS = Exercise(
    name="action_log_probs",
    reference=distributions.categorical_log_prob,
    make_cases=_cases_action_log_probs,
    concept="the log-probability of the action taken in each state, under the categorical policy whose logits "
            "are given (the probabilities of a state sum to 1 over its actions): one number per state, <= 0.",
    grad_args=("logits",),
    no_grad_hints={"logits": "the result must keep its gradient with respect to the logits (no .detach(), "
                             "no .item(), no numpy)."},
    mistakes=[
        Mistake("you return probabilities: the function returns their LOG, numbers <= 0.",
                lambda logits, actions: _gather(torch.softmax(logits, -1), actions)),
        Mistake("the logits are not log-probabilities: normalise them over the actions first, so that the "
                "probabilities of a state sum to 1.",
                lambda logits, actions: _gather(logits, actions)),
        Mistake("normalise over the actions (the last dim), not over the batch (dim=0).",
                lambda logits, actions: _gather(torch.log_softmax(logits, 0), actions)),
        Mistake("return the log-prob of the action taken, one per state, not of every action.",
                lambda logits, actions: torch.log_softmax(logits, -1)),
        Mistake("the log of the softmax underflows to log(0) = -inf for a confident policy (a probability of "
                "e^-120 rounds to 0): compute the log-probabilities in log space, never through the "
                "probabilities themselves.",
                lambda logits, actions: _gather(torch.log(torch.softmax(logits, -1)), actions)),
        Mistake("sign flipped: a log-probability is <= 0.",
                lambda logits, actions: -_gather(torch.log_softmax(logits, -1), actions)),
    ],
)


# --------------------------------------------------------------------------------------------------
# discounted_returns, normalize, reinforce_loss
# --------------------------------------------------------------------------------------------------

def _returns_forwards(rewards: Tensor, gamma: float) -> Tensor:
    out = torch.empty_like(rewards)
    running = 0.0
    for t in range(rewards.shape[0]):
        running = rewards[t] + gamma * running
        out[t] = running
    return out


def _returns_exponent_from_start(rewards: Tensor, gamma: float) -> Tensor:
    steps = rewards.shape[0]
    discounts = gamma ** torch.arange(steps, dtype=rewards.dtype)  # gamma^k
    return torch.stack([(discounts[t:] * rewards[t:]).sum() for t in range(steps)])


def _returns_shifted(rewards: Tensor, gamma: float) -> Tensor:
    correct = returns.discounted_returns(rewards, gamma)
    return torch.cat([correct[1:], torch.zeros_like(correct[:1])])


def _returns_rescaled_cumsum(rewards: Tensor, gamma: float) -> Tensor:
    discounts = gamma ** torch.arange(rewards.shape[0], dtype=rewards.dtype)  # [T] gamma^t
    return torch.flip(torch.cumsum(torch.flip(discounts * rewards.detach(), [0]), 0), [0]) / discounts


def _cases_discounted_returns() -> list[Case]:
    g = torch.Generator().manual_seed(2)
    return [
        Case("T=1", dict(rewards=_t([2.0]), gamma=0.9)),
        Case("T=3", dict(rewards=_t([1.0, 2.0, 3.0]), gamma=0.5)),
        Case("T=4, gamma=1 (no discount)", dict(rewards=_t([1.0, 0.0, -1.0, 2.0]), gamma=1.0)),
        Case("T=3, gamma=0 (each return is its own reward)", dict(rewards=_t([1.0, 2.0, 3.0]), gamma=0.0)),
        Case("T=5, rewards that require grad", dict(rewards=_t([0.5, 1.0, 0.0, 2.0, 1.0], requires_grad=True),
                                                     gamma=0.9)),
        Case("float64 rewards (T=6)", dict(rewards=_randn(g, 6, dtype=torch.float64), gamma=0.95)),
        Case("random rewards (T=10)", dict(rewards=_randn(g, 10), gamma=0.9)),
        Case("random rewards (T=40)", dict(rewards=_randn(g, 40, shift=1.0), gamma=0.99)),
    ]


DISCOUNTED_RETURNS = Exercise(
    name="discounted_returns",
    reference=returns.discounted_returns,
    make_cases=_cases_discounted_returns,
    concept="the discounted return of every step of one episode: the reward of that step plus gamma times the "
            "return of the next step, the return after the last step being 0.",
    detached_output_hint="returns are targets, not something to differentiate through: your output must not be "
                         "connected to the autograd graph of the rewards.",
    mistakes=[
        Mistake("you accumulate forwards in time (from t=0): a return sums the rewards that come AFTER step t, "
                "so loop backwards from the last step.", _returns_forwards),
        Mistake("gamma applied one step late: you discount after adding r_t, so r_t itself gets multiplied by "
                "gamma. Only the future is discounted: the reward of step t enters its own return as it is.",
                lambda rewards, gamma: gamma * returns.discounted_returns(rewards, gamma)),
        Mistake("the returns come out in reverse order: you built them from the last step backwards, so the list "
                "holds G_{T-1} first; flip it back (G_0 first).",
                lambda rewards, gamma: returns.discounted_returns(rewards, gamma).flip(0)),
        Mistake("off by one: returns[t] holds G_{t+1} (you store the running return before adding r_t).",
                _returns_shifted),
        Mistake("gamma is ignored: you sum the future rewards without discounting them.",
                lambda rewards, gamma: returns.discounted_returns(rewards, 1.0)),
        Mistake("every step gets the return of the whole episode (G_0): G_t only sums the rewards from step t "
                "on (reward-to-go).",
                lambda rewards, gamma: returns.discounted_returns(rewards, gamma)[0].expand(rewards.shape)),
        Mistake("you divide by gamma**t (a reversed cumulative sum of gamma^k r_k, rescaled): at gamma = 0 that is "
                "0/0 = nan, and for long episodes with a small gamma, gamma**t underflows to 0. Accumulate the return "
                "backwards instead, G_t = r_t + gamma G_{t+1}.", _returns_rescaled_cumsum),
        Mistake("the discount exponent counts from the start of the episode (gamma^k); it must count from "
                "step t: in G_t the reward of step t is not discounted, the next one once, and so on.",
                _returns_exponent_from_start),
    ],
)


def _cases_normalize() -> list[Case]:
    g = torch.Generator().manual_seed(3)
    return [
        Case("a single element", dict(x=_t([3.0]))),
        Case("a constant input", dict(x=_t([2.0, 2.0, 2.0, 2.0]))),
        Case("five values", dict(x=_t([1.0, 2.0, 3.0, 4.0, 10.0]))),
        Case("2-D input [T, N] = [3, 2]: normalise over all elements", dict(x=_t([[1.0, 10.0], [2.0, 20.0],
                                                                                  [3.0, 30.0]]))),
        Case("random 2-D input [4, 3]", dict(x=_randn(g, 4, 3) + _t([0.0, 5.0, -3.0]))),
        Case("float64 input", dict(x=_randn(g, 7, dtype=torch.float64, scale=3.0, shift=1.0))),
        Case("random input (64 values)", dict(x=_randn(g, 64, scale=10.0, shift=-2.0))),
        Case("an input with a graph (advantages can carry one: the result keeps it)",
             dict(x=_randn(g, 6, scale=2.0, requires_grad=True))),
    ]


NORMALIZE = Exercise(
    name="normalize",
    reference=returns.normalize,
    make_cases=_cases_normalize,
    grad_args=("x",),
    no_grad_hints={"x": "keep the graph: do not detach x or rebuild it as a new tensor (the docstring: the result "
                        "keeps the graph; a caller may differentiate through it)."},
    concept="x shifted to mean 0 and scaled to standard deviation 1, the mean and the population standard "
            "deviation (divided by n) being taken over ALL elements at once, and a small epsilon (1e-8) added to "
            "the standard deviation so that a constant input stays finite.",
    mistakes=[
        Mistake("you normalise each column separately (along dim=0): the mean and the standard deviation are "
                "taken over ALL elements at once.",
                lambda x: (x - x.mean(0)) / (x.std(0, unbiased=False) + 1e-8)),
        Mistake("you normalise each row separately (along the last dim): the mean and the standard deviation are "
                "taken over ALL elements at once.",
                lambda x: (x - x.mean(-1, keepdim=True)) / (x.std(-1, unbiased=False, keepdim=True) + 1e-8)),
        Mistake("no epsilon: a constant input (or a single element) has standard deviation 0 and gives "
                "0/0 = nan; the small epsilon of the definition keeps the division finite.",
                lambda x: (x - x.mean()) / x.std(unbiased=False)),
        Mistake("use the population standard deviation (divided by n): torch's default standard deviation is "
                "the unbiased one (divided by n-1), nan for a single element.",
                lambda x: (x - x.mean()) / (x.std() + 1e-8)),
        Mistake("you forgot to subtract the mean.", lambda x: x / (x.std(unbiased=False) + 1e-8)),
        Mistake("you divide by the variance; divide by the standard deviation.",
                lambda x: (x - x.mean()) / (x.var(unbiased=False) + 1e-8)),
        Mistake("you divide by the largest absolute value of x; divide by the standard deviation (the spread of "
                "the values around their mean).",
                lambda x: (x - x.mean()) / (x.abs().max() + 1e-8)),
    ],
)


def _cases_reinforce_loss() -> list[Case]:
    g = torch.Generator().manual_seed(4)
    return [
        Case("B=1", dict(log_probs=_t([-0.5], requires_grad=True), weights=_t([2.0], requires_grad=True))),
        Case("B=4", dict(log_probs=_t([-0.1, -1.2, -0.7, -2.0], requires_grad=True),
                         weights=_t([1.0, -0.5, 2.0, 0.0], requires_grad=True))),
        Case("float64 (B=8)", dict(log_probs=_log_probs(g, 8, dtype=torch.float64, requires_grad=True),
                                   weights=_randn(g, 8, dtype=torch.float64, requires_grad=True))),
        Case("random (B=16)", dict(log_probs=_log_probs(g, 16, requires_grad=True),
                                   weights=_randn(g, 16, scale=3.0, requires_grad=True))),
        Case("random, weights without grad (B=32)", dict(log_probs=_log_probs(g, 32, requires_grad=True),
                                                         weights=_randn(g, 32, shift=1.0))),
    ]


REINFORCE_LOSS = Exercise(
    name="reinforce_loss",
    reference=losses.reinforce_loss,
    make_cases=_cases_reinforce_loss,
    concept="the REINFORCE loss, one number: minus the batch average of each log-probability times its "
            "weight, the weights being constants (no gradient flows into them).",
    grad_args=("log_probs",),
    leak_hints={"weights": "missing .detach() on the weights: returns/advantages are constants of the policy "
                           "gradient, so no gradient may flow into them."},
    mistakes=[
        Mistake("loss sign flipped: gradient DEScent on the loss must raise the log-probability of high-return "
                "actions, so the loss is the negative of the objective.",
                lambda log_probs, weights: (log_probs * weights).mean()),
        Mistake("average over the batch, not .sum(): the loss scale must not grow with the batch size.",
                lambda log_probs, weights: -(log_probs * weights).sum()),
        Mistake("the loss must be a single number (a 0-dim tensor): average the per-sample terms over the "
                "batch.",
                lambda log_probs, weights: -(log_probs * weights)),
        Mistake("use the log-probabilities as they are (the score function is the gradient of log pi), "
                "not exp(log_probs).", lambda log_probs, weights: -(log_probs.exp() * weights).mean()),
    ],
)


# --------------------------------------------------------------------------------------------------
# first_episode_lengths (the data half of collect_episodes)
# --------------------------------------------------------------------------------------------------

def _first_end(done: Tensor) -> Tensor:
    """[N] index of each column's first True (0 for a column with none)."""
    return done.int().argmax(0)


def _last_end_length(done: Tensor) -> Tensor:
    steps = done.shape[0]
    return steps - done.flip(0).int().argmax(0)  # 1 + index of each column's LAST True


def _every_env_ends(terminated: Tensor, truncated: Tensor) -> tuple[Tensor, Tensor]:
    """The flags with a termination added on the last step of every env whose episode had not ended (a
    first episode must end within the steps the function is given)."""
    unfinished = ~(terminated | truncated).any(0)  # [N]
    terminated = terminated.clone()
    terminated[-1] |= unfinished
    return terminated, truncated


def _cases_first_episode_lengths() -> list[Case]:
    g = torch.Generator().manual_seed(11)
    cases = [
        Case("T=1, N=1, the episode ends at step 0", dict(terminated=_bool([[1]]), truncated=_bool([[0]]))),
        Case("one env, terminates at step 2 (T=4, N=1)",
             dict(terminated=_bool([[0], [0], [1], [0]]), truncated=_bool([[0], [0], [0], [0]]))),
        Case("one env, truncated (time limit) at step 1, then a reset step and a termination (T=4, N=1)",
             dict(terminated=_bool([[0], [0], [0], [1]]), truncated=_bool([[0], [1], [0], [0]]))),
        Case("env 0 ends twice, env 1 once, env 2 on the last step (T=6, N=3)",
             dict(terminated=_bool([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 1]]),
                  truncated=_bool([[0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]))),
        # gymnasium raises both flags when the terminal state comes on the time-limit step
        Case("terminated and truncated both True at step 1 in env 0; env 1 terminates later (T=5, N=2)",
             dict(terminated=_bool([[0, 0], [1, 0], [0, 0], [1, 1], [0, 0]]),
                  truncated=_bool([[0, 0], [1, 0], [0, 0], [0, 0], [0, 0]]))),
    ]
    for steps, num_envs in [(8, 2), (12, 4), (30, 5)]:
        terminated, truncated = _every_env_ends(*_episode_flags(g, steps, num_envs))
        cases.append(Case(f"random rollout (T={steps}, N={num_envs})",
                          dict(terminated=terminated, truncated=truncated)))
    return cases


FIRST_EPISODE_LENGTHS = Exercise(
    name="first_episode_lengths",
    reference=envs.first_episode_lengths,
    make_cases=_cases_first_episode_lengths,
    concept="a [N] int64 tensor: for each env (column), the number of steps of its first episode, from step 0 up to "
            "and including the first step whose terminated or truncated flag is True; what the env did after "
            "that step does not count.",
    note=_STEPS_NOTE,
    mistakes=[
        Mistake("off by one: the step that ended the episode belongs to it. The length is the index of the first "
                "end plus one.",
                lambda terminated, truncated: _first_end(terminated | truncated)),
        Mistake("a truncation (the time limit) ends an episode too: an episode ends at its first step with "
                "terminated OR truncated.",
                lambda terminated, truncated: _first_end(terminated) + 1),
        Mistake("a truncation (the time limit) ends an episode too: an episode ends at its first step with "
                "terminated OR truncated (an env that never terminates has a length too).",
                lambda terminated, truncated: torch.where(terminated.any(0), _first_end(terminated) + 1, 0)),
        Mistake("a termination ends an episode too: an episode ends at its first step with terminated OR "
                "truncated.",
                lambda terminated, truncated: _first_end(truncated) + 1),
        Mistake(_BOTH_FLAGS_HINT + " Such a step ends the episode.",
                lambda terminated, truncated: _first_end(terminated ^ truncated) + 1),
        Mistake(_BOTH_FLAGS_HINT + " The argmax of the sum finds a step where both are True before an earlier end.",
                lambda terminated, truncated: (terminated.long() + truncated.long()).argmax(0) + 1),
        Mistake("keep each env's FIRST episode: its length runs to the first end, not to the last one in the "
                "rollout (the steps after it belong to later episodes).",
                lambda terminated, truncated: _last_end_length(terminated | truncated)),
        Mistake("you counted the episode ends of each env; the length is a number of steps: up to and including "
                "the first end.",
                lambda terminated, truncated: (terminated | truncated).long().sum(0)),
    ],
)


# --------------------------------------------------------------------------------------------------
# The checks of this chapter
# --------------------------------------------------------------------------------------------------

EXERCISES: list[Exercise] = [ACTION_LOG_PROBS, DISCOUNTED_RETURNS, NORMALIZE, REINFORCE_LOSS, FIRST_EPISODE_LENGTHS]

check_action_log_probs = _make_check(ACTION_LOG_PROBS)
check_discounted_returns = _make_check(DISCOUNTED_RETURNS)
check_normalize = _make_check(NORMALIZE)
check_reinforce_loss = _make_check(REINFORCE_LOSS)
check_first_episode_lengths = _make_check(FIRST_EPISODE_LENGTHS)

CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "action_log_probs": check_action_log_probs,
    "discounted_returns": check_discounted_returns,
    "normalize": check_normalize,
    "reinforce_loss": check_reinforce_loss,
    "first_episode_lengths": check_first_episode_lengths,
}
