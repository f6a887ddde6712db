"""Checks of chapter 03 (A2C and GAE): td_errors, compute_gae, a2c_policy_loss."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ...rl import losses, returns
from .harness import _BOTH_FLAGS_HINT, _STEPS_NOTE, Case, Exercise, Mistake, _log_probs, _make_check, _randn, _t


# --------------------------------------------------------------------------------------------------
# td_errors, compute_gae, a2c_policy_loss
# --------------------------------------------------------------------------------------------------

def _gae_flags(g: torch.Generator, steps: int, num_envs: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Float 0/1 flags as the package's rollouts store them: terminations, truncations, and now and then both
    on the same step (gymnasium raises both when the terminal state comes on the time-limit step, and
    ``collect_rollout`` stores the raw flags), so the two are NOT mutually exclusive."""
    u = torch.rand(steps, num_envs, generator=g)
    return (u < 0.12).to(dtype), ((u >= 0.10) & (u < 0.2)).to(dtype)


def _cases_td_errors() -> list[Case]:
    g = torch.Generator().manual_seed(9)
    cases = [
        Case("T=1, N=1, not terminated", dict(rewards=_t([[1.0]]), values=_t([[0.5]]), next_values=_t([[2.0]]),
                                              terminated=_t([[0.0]]), gamma=0.9)),
        Case("T=1, N=2, env 1 terminated", dict(rewards=_t([[1.0, 1.0]]), values=_t([[0.5, 0.5]]),
                                                next_values=_t([[2.0, 2.0]]), terminated=_t([[0.0, 1.0]]),
                                                gamma=0.9)),
        Case("episode terminates mid-rollout (T=4, N=1)",
             dict(rewards=_t([[1.0], [0.0], [2.0], [1.0]]), values=_t([[1.0], [2.0], [0.5], [1.0]]),
                  next_values=_t([[2.0], [3.0], [1.0], [2.0]]), terminated=_t([[0.0], [1.0], [0.0], [0.0]]),
                  gamma=0.9)),
    ]
    for steps, num_envs, dtype, grad in [(3, 2, torch.float32, True), (5, 3, torch.float64, True),
                                         (16, 4, torch.float32, False)]:
        terminated, _ = _gae_flags(g, steps, num_envs, dtype)
        terminated[steps // 2, 0] = 1.0
        description = f"random (T={steps}, N={num_envs}, {str(dtype).removeprefix('torch.')}" + (
            ", values that require grad)" if grad else ")")
        cases.append(Case(description, dict(
            rewards=_randn(g, steps, num_envs, dtype=dtype),
            values=_randn(g, steps, num_envs, dtype=dtype, requires_grad=grad),
            next_values=_randn(g, steps, num_envs, dtype=dtype, requires_grad=grad),
            terminated=terminated, gamma=0.99)))
    return cases


def _shifted_values(values: Tensor, next_values: Tensor) -> Tensor:
    """[T, N] ``values[t + 1]`` for t < T - 1 and ``next_values[T - 1]`` at the last step: the 'next value' read from
    the current values one row down. The course's next-step rollouts happen to make it agree with next_values on
    every row but the last (lesson 03, section 2.5); it is wrong on the last row and, under same-step autoreset,
    after every episode end."""
    return torch.cat([values[1:], next_values[-1:]], dim=0)


_SHIFTED_HINT = ("you bootstrap from values[t + 1], the value of the row below: use next_values[t], the value of the "
                 "observation step t really led to. In pgcourse's rollouts the two agree on every row but the last "
                 "(lesson 03, section 2.5), but a function must not rely on that: the last row has no row below, "
                 "and where the env resets in the same step (same-step autoreset) the row below an episode end is "
                 "the next episode's first state; the check's next_values are not a shifted copy of values.")


TD_ERRORS = Exercise(
    name="td_errors",
    reference=returns.td_errors,
    make_cases=_cases_td_errors,
    concept="the one-step TD error of each step: its reward plus the discounted value of the next state, minus "
            "the value of the current state; after a termination there is no next state to add.",
    note=_STEPS_NOTE,
    detached_output_hint="TD errors are advantage estimates, constants for the policy gradient: your output must "
                         "not be connected to the autograd graph of the values.",
    mistakes=[
        Mistake("you bootstrap through a terminal state: a terminated episode has no future, so its last step "
                "adds no next-state value.",
                lambda rewards, values, next_values, terminated, gamma: rewards + gamma * next_values - values),
        Mistake("values and next_values are swapped: the TD error adds the discounted value of the NEXT state "
                "(next_values) and subtracts the value of the current one (values).",
                lambda rewards, values, next_values, terminated, gamma:
                rewards + gamma * (1 - terminated) * values - next_values),
        Mistake("sign flipped: a TD error is the target minus the current estimate.",
                lambda rewards, values, next_values, terminated, gamma:
                values - rewards - gamma * (1 - terminated) * next_values),
        Mistake("the next value must be discounted by gamma.",
                lambda rewards, values, next_values, terminated, gamma:
                rewards + (1 - terminated) * next_values - values),
        Mistake(_SHIFTED_HINT, lambda rewards, values, next_values, terminated, gamma:
                rewards + gamma * (1 - terminated) * _shifted_values(values, next_values) - values),
        # two students' tries (issue 49): + V(s); the mask inverted, bootstrapping only where the episode terminated
        Mistake("you add the current state's value: the TD error subtracts it (reward plus the discounted next "
                "value, minus V(s): how much better the step went than the critic expected).",
                lambda rewards, values, next_values, terminated, gamma:
                rewards + gamma * (1 - terminated) * next_values + values),
        Mistake("the termination mask is inverted: you add the next state's value only where the episode "
                "terminated, and nowhere else. It is the other way round: every step bootstraps from its next "
                "state's value except a terminated one (multiply by 1 - terminated).",
                lambda rewards, values, next_values, terminated, gamma:
                rewards + gamma * terminated * next_values - values),
        Mistake("only the bootstrap term (the next state's value) is cut at a terminal state: the reward and the "
                "current value still count, so don't multiply the whole delta by the termination mask.",
                lambda rewards, values, next_values, terminated, gamma:
                (1 - terminated) * (rewards + gamma * next_values - values)),
    ],
)


def _gae_variant(rewards: Tensor, values: Tensor, next_values: Tensor, bootstrap: Tensor, trace: Tensor,
                 gamma: float, decay: float, forwards: bool = False, trace_from_next_step: bool = False) -> Tensor:
    """GAE with the masks given explicitly, to reproduce the classic mistakes."""
    deltas = rewards + gamma * bootstrap * next_values - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    steps = rewards.shape[0]
    for t in (range(steps) if forwards else range(steps - 1, -1, -1)):
        keep = (trace[t + 1] if t + 1 < steps else torch.ones_like(trace[0])) if trace_from_next_step else trace[t]
        running = deltas[t] + decay * keep * running
        advantages[t] = running
    return advantages


def _gae_mistake(**knobs: Any) -> Callable[..., Tensor]:
    def compute(rewards, values, next_values, terminated, truncated, gamma, lam):
        not_terminated = 1 - terminated
        not_done = 1 - torch.clamp(terminated + truncated, max=1)
        masks = {"not_terminated": not_terminated, "not_done": not_done, "always": torch.ones_like(rewards),
                 "flag_sum": 1 - (terminated + truncated),  # -1 where both flags are set
                 "truncation_first": 1 - terminated * (1 - truncated),  # both flags: bootstraps as if truncated
                 "not_truncated": 1 - truncated}
        bootstrap = masks[knobs.get("bootstrap", "not_terminated")]
        trace = masks[knobs.get("trace", "not_done")]
        if knobs.get("swap"):
            values, next_values = next_values, values
        if knobs.get("last_next_zero"):  # the rollout's last step treated as the end of the world
            next_values = next_values.clone()
            next_values[-1] = 0.0
        if knobs.get("shifted"):  # values[t + 1] in place of next_values[t] (the rollout's last step keeps its own)
            next_values = _shifted_values(values, next_values)
        decay = gamma if knobs.get("no_lambda") else lam if knobs.get("no_gamma_in_trace") else gamma * lam
        return _gae_variant(rewards, values, next_values, bootstrap, trace, gamma, decay,
                            forwards=knobs.get("forwards", False),
                            trace_from_next_step=knobs.get("trace_from_next_step", False))
    return compute


def _cases_compute_gae() -> list[Case]:
    g = torch.Generator().manual_seed(10)
    zeros4 = _t([[0.0]] * 4)
    cases = [
        Case("T=1, N=1, no episode end", dict(rewards=_t([[1.0]]), values=_t([[0.5]]), next_values=_t([[1.0]]),
                                              terminated=_t([[0.0]]), truncated=_t([[0.0]]), gamma=0.9, lam=0.8)),
        Case("T=1, N=2: env 0 terminates and env 1 is truncated in the same step",
             dict(rewards=_t([[1.0, 1.0]]), values=_t([[0.5, 0.5]]), next_values=_t([[1.0, 1.0]]),
                  terminated=_t([[1.0, 0.0]]), truncated=_t([[0.0, 1.0]]), gamma=0.9, lam=0.8)),
        Case("episode terminates mid-rollout (T=4, N=1)",
             dict(rewards=_t([[1.0], [0.0], [2.0], [1.0]]), values=_t([[1.0], [2.0], [0.5], [1.0]]),
                  next_values=_t([[2.0], [3.0], [1.0], [2.0]]), terminated=_t([[0.0], [1.0], [0.0], [0.0]]),
                  truncated=zeros4, gamma=0.9, lam=0.8)),
        Case("time-limit truncation mid-rollout (T=4, N=1)",
             dict(rewards=_t([[1.0], [0.0], [2.0], [1.0]]), values=_t([[1.0], [2.0], [0.5], [1.0]]),
                  next_values=_t([[2.0], [3.0], [1.0], [2.0]]), terminated=zeros4,
                  truncated=_t([[0.0], [0.0], [1.0], [0.0]]), gamma=0.9, lam=0.8)),
        Case("termination and truncation at the same step in different envs, env 2 ends on the last step "
             "(T=5, N=3)",
             dict(rewards=_t([[1.0, 0.5, 1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]]),
                  values=_t([[1.0, 0.0, 2.0], [0.5, 1.0, 1.0], [2.0, 1.0, 0.0], [1.0, 1.5, 0.5], [0.0, 1.0, 1.0]]),
                  next_values=_t([[0.5, 1.0, 1.0], [1.0, 2.0, 0.0], [1.0, 1.5, 0.5], [0.0, 1.0, 1.0],
                                  [2.0, 0.5, 3.0]]),
                  terminated=_t([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                                 [0.0, 0.0, 1.0]]),
                  truncated=_t([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0],
                                [0.0, 0.0, 0.0]]),
                  gamma=0.9, lam=0.8)),
        # gymnasium raises both flags when the terminal state comes on the time-limit step; step 2 is the reset step
        Case("terminated and truncated both True at step 1: the pole falls on the time-limit step (T=3, N=1)",
             dict(rewards=_t([[1.0], [1.0], [0.0]]), values=_t([[0.5], [0.5], [1.5]]),
                  next_values=_t([[0.5], [1.5], [1.0]]), terminated=_t([[0.0], [1.0], [0.0]]),
                  truncated=_t([[0.0], [1.0], [0.0]]), gamma=0.9, lam=0.8)),
        Case("both flags on one step mid-rollout in env 0 and on the last step in env 1 (T=4, N=2)",
             dict(rewards=_t([[1.0, 0.5], [2.0, 0.0], [0.0, 1.0], [1.0, 2.0]]),
                  values=_t([[1.0, 0.5], [0.5, 1.0], [2.0, 0.0], [1.0, 1.0]]),
                  next_values=_t([[0.5, 1.0], [2.0, 0.0], [1.0, 1.0], [1.5, 2.5]]),
                  terminated=_t([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]),
                  truncated=_t([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0]]), gamma=0.9, lam=0.8)),
    ]
    for steps, num_envs, dtype, grad, gamma, lam, what in [
            (4, 2, torch.float32, False, 0.9, 0.0, "lambda = 0 (one-step TD errors)"),
            (6, 2, torch.float32, False, 0.9, 1.0, "lambda = 1 (Monte Carlo, bootstrapped where cut)"),
            (6, 2, torch.float32, True, 0.95, 0.9, "values that require grad"),
            (8, 3, torch.float64, False, 0.99, 0.95, "float64"),
            (16, 4, torch.float32, False, 0.99, 0.95, "random rollout"),
            (32, 2, torch.float32, False, 0.98, 0.9, "random rollout")]:
        terminated, truncated = _gae_flags(g, steps, num_envs, dtype)
        terminated[1, 0], truncated[1, 0], truncated[steps // 2, -1] = 1.0, 0.0, 1.0
        cases.append(Case(f"{what} (T={steps}, N={num_envs})", dict(
            rewards=_randn(g, steps, num_envs, dtype=dtype, shift=0.5),
            values=_randn(g, steps, num_envs, dtype=dtype, requires_grad=grad),
            next_values=_randn(g, steps, num_envs, dtype=dtype, requires_grad=grad),
            terminated=terminated, truncated=truncated, gamma=gamma, lam=lam)))
    return cases


COMPUTE_GAE = Exercise(
    name="compute_gae",
    reference=returns.compute_gae,
    make_cases=_cases_compute_gae,
    concept="GAE: the advantage of a step is its TD error (no next-state value after a termination) plus "
            "gamma * lam times the advantage of the next step, that chain being cut wherever an episode ended "
            "(terminated, truncated, or both), so the advantages are built from the last step backwards.",
    note=_STEPS_NOTE,
    detached_output_hint="advantages are constants for the losses (the policy loss's weights): your output must not "
                         "be connected to the autograd graph of the values.",
    mistakes=[
        Mistake("you bootstrap through a terminal state: a terminated episode has no future, so its last step "
                "adds no next-state value.",
                _gae_mistake(bootstrap="always")),
        Mistake(_SHIFTED_HINT, _gae_mistake(shifted=True)),
        Mistake("a truncated step (time limit) must still bootstrap from next_values: the episode was cut, not "
                "finished, so only a termination removes the next-state value.",
                _gae_mistake(bootstrap="not_done")),
        Mistake("the lambda-trace is not reset at episode ends: an advantage must never mix in the TD errors of "
                "the next episode, so the chain is cut after every episode end (terminated or truncated).",
                _gae_mistake(trace="always")),
        Mistake("the lambda-trace must also be cut at a truncation: after a truncated step comes another "
                "episode, whose TD errors must not leak into this one's advantages.",
                _gae_mistake(trace="not_terminated")),
        Mistake(_BOTH_FLAGS_HINT + " With done = 2, 1 - done = -1 flips the sign of the running advantage instead "
                "of cutting it at the episode end.",
                _gae_mistake(trace="flag_sum")),
        Mistake("a step that is both terminated and truncated (the pole fell on the time-limit step) is still a "
                "terminal state: there is no next state to bootstrap from. Only a truncation WITHOUT a "
                "termination bootstraps.",
                _gae_mistake(bootstrap="truncation_first")),
        Mistake("values and next_values are swapped: the TD error adds the discounted value of the NEXT state "
                "(next_values) and subtracts the value of the current one (values).", _gae_mistake(swap=True)),
        Mistake("you loop forwards in time: A_t depends on A_{t+1}, so loop backwards from the last step.",
                _gae_mistake(forwards=True)),
        Mistake("the episode-end mask is off by one step: the flags of step t itself decide whether A_{t+1} is "
                "added to A_t (in this course done[t] means 'the episode ended at step t').",
                _gae_mistake(trace_from_next_step=True)),
        Mistake("the two masks are swapped: a termination removes the next-state value (the bootstrap), and every "
                "episode end (terminated or truncated) cuts the lambda-trace; you cut the bootstrap at truncations and "
                "the trace at terminations only.", _gae_mistake(bootstrap="not_truncated", trace="not_terminated")),
        Mistake("the rollout's last step gets no bootstrap: the rollout stops there, the episode does not, so its TD "
                "error adds gamma * next_values like any other step (unless it terminated).",
                _gae_mistake(last_next_zero=True)),
        Mistake("the trace decays by gamma * lam per step; you left out lam.", _gae_mistake(no_lambda=True)),
        # a student's try (issue 49): the TD errors discounted, the trace not
        Mistake("your trace decays by lam alone, without gamma: A_t = delta_t + gamma * lam * A_{t+1} (cut at episode "
                "ends), the advantage of the next step being discounted like any future reward.",
                _gae_mistake(no_gamma_in_trace=True)),
        Mistake("you return the critic targets (advantages + values); compute_gae returns the advantages.",
                lambda rewards, values, next_values, terminated, truncated, gamma, lam:
                returns.compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam) + values),
    ],
)


def _cases_a2c_policy_loss() -> list[Case]:
    g = torch.Generator().manual_seed(11)

    def grad_case(description, batch, ent_coef, dtype=torch.float32):
        return Case(description, dict(log_probs=_log_probs(g, batch, dtype=dtype, requires_grad=True),
                                      advantages=_randn(g, batch, dtype=dtype, requires_grad=True),
                                      entropy=(_randn(g, batch, dtype=dtype, scale=0.2) + 1.0).requires_grad_(),
                                      ent_coef=ent_coef))
    return [
        Case("B=1", dict(log_probs=_t([-0.5], requires_grad=True), advantages=_t([2.0], requires_grad=True),
                         entropy=_t([1.0], requires_grad=True), ent_coef=0.01)),
        Case("B=4", dict(log_probs=_t([-0.1, -1.2, -0.7, -2.0], requires_grad=True),
                         advantages=_t([1.0, -0.5, 2.0, 0.0], requires_grad=True),
                         entropy=_t([0.7, 0.5, 0.6, 0.2], requires_grad=True), ent_coef=0.5)),
        grad_case("ent_coef = 0 (B=6)", 6, 0.0),
        grad_case("float64 (B=8)", 8, 0.1, torch.float64),
        grad_case("random (B=20)", 20, 0.01),
    ]


A2C_POLICY_LOSS = Exercise(
    name="a2c_policy_loss",
    reference=losses.a2c_policy_loss,
    make_cases=_cases_a2c_policy_loss,
    concept="the actor loss, one number: minus the batch average of log-probability times advantage (the "
            "advantages being constants), minus ent_coef times the batch average of the entropy (an entropy "
            "bonus).",
    grad_args=("log_probs", "entropy"),
    leak_hints={"advantages": "missing .detach() on the advantages: they are constants of the policy gradient, "
                              "so the actor loss must not train the critic through them."},
    no_grad_hints={"entropy": "the entropy bonus must carry gradient into the policy: don't detach the entropy."},
    mistakes=[
        Mistake("the whole loss has the wrong sign: you return the objective (to maximise); the loss to minimise "
                "is its negative.",
                lambda log_probs, advantages, entropy, ent_coef:
                -losses.a2c_policy_loss(log_probs, advantages, entropy, ent_coef)),
        Mistake("the policy term has the wrong sign: minimising the loss must raise the log-probability of "
                "actions with a positive advantage.",
                lambda log_probs, advantages, entropy, ent_coef:
                (log_probs * advantages).mean() - ent_coef * entropy.mean()),
        Mistake("entropy sign flipped: it is a bonus, so minimising the loss must RAISE the entropy.",
                lambda log_probs, advantages, entropy, ent_coef:
                -(log_probs * advantages).mean() + ent_coef * entropy.mean()),
        Mistake("don't normalise the advantages inside the loss: the A2C loop has already normalised them before the "
                "call, so use them as they arrive.",
                lambda log_probs, advantages, entropy, ent_coef:
                -(log_probs * returns.normalize(advantages)).mean() - ent_coef * entropy.mean()),
        Mistake("the entropy bonus is missing: the loss also rewards entropy, weighted by ent_coef.",
                lambda log_probs, advantages, entropy, ent_coef: -(log_probs * advantages).mean()),
        Mistake("take the mean of the entropy over the batch, not the sum.",
                lambda log_probs, advantages, entropy, ent_coef:
                -(log_probs * advantages).mean() - ent_coef * entropy.sum()),
        Mistake("average the policy term over the batch, not .sum().",
                lambda log_probs, advantages, entropy, ent_coef:
                -(log_probs * advantages).sum() - ent_coef * entropy.mean()),
    ],
)


# --------------------------------------------------------------------------------------------------
# The checks of this chapter
# --------------------------------------------------------------------------------------------------

EXERCISES: list[Exercise] = [TD_ERRORS, COMPUTE_GAE, A2C_POLICY_LOSS]

check_td_errors = _make_check(TD_ERRORS)
check_compute_gae = _make_check(COMPUTE_GAE)
check_a2c_policy_loss = _make_check(A2C_POLICY_LOSS)

CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "td_errors": check_td_errors,
    "compute_gae": check_compute_gae,
    "a2c_policy_loss": check_a2c_policy_loss,
}
