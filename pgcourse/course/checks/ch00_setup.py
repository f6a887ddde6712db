"""Checks of chapter 00 (setup and tour): play_episode, transition_mask, completed_episode_returns.

``play_episode`` plays real episodes, so it has its own check; the other two are declarative
:class:`~pgcourse.course.checks.harness.Exercise` s over ``[T, N]`` rollouts of a NEXT_STEP vector env.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...rl import envs
from ...classroom.sandboxed import episode_cases
from .harness import (_BOTH_FLAGS_HINT, _STEPS_NOTE, Case, Exercise, LearnerCodeError, Mistake, _bool, _make_check,
                      _message, _t)


# --------------------------------------------------------------------------------------------------
# play_episode (plays real episodes, so it has its own check)
# --------------------------------------------------------------------------------------------------

def _is_real_number(value: Any) -> bool:
    """A finite int or float (numpy scalars and one-element tensors included); NaN and strings are not."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and not value.dtype == torch.bool and math.isfinite(float(value))
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool) and \
        math.isfinite(float(value))


def check_play_episode(fn: Callable[..., Any]) -> None:
    """Check ``play_episode(env, policy, seed) -> (episode_return, length, terminated, truncated)``.

    The episodes are described as data (:mod:`pgcourse.classroom.sandboxed.episode_cases`): in a notebook they are played
    here; in the grader, the sandbox builds the environment and the controller and sends back data.
    """
    import gymnasium as gym

    name = "play_episode"
    for description, env_id, controller, seed in episode_cases.CASES:
        expected = envs.play_episode(gym.make(env_id), episode_cases.CONTROLLERS[controller], seed)
        case = Case(description, dict(env=env_id, policy="a fixed controller", seed=seed))
        if hasattr(fn, "play_episode_case"):  # the grader's handle on a function in the sandbox
            outcome = fn.play_episode_case(env_id, controller, seed)
        else:
            outcome = episode_cases.play(fn, env_id, controller, seed)
        if "error" in outcome:
            if outcome.get("error_type") == "NotImplementedError":
                raise AssertionError(f"{name}: not implemented yet. Replace `raise NotImplementedError()` with your "
                                     "code, then run the check again.")
            if outcome.get("stepped_past_end"):
                raise AssertionError(_message(
                    name, "your loop called env.step() after the episode had ended.",
                    "stop when terminated OR truncated: a time limit (truncated=True) ends the episode too, and "
                    "Pendulum only ever truncates.", True, case, expected=expected,
                    received="a step after the last one"))
            raise LearnerCodeError(f"{name}: your function raised an exception (this is a crash in your code, not "
                                   f"a wrong answer). Your traceback:\n\n{outcome['error']}")
        received = outcome["result"]
        if not (isinstance(received, tuple) and len(received) == 4):
            raise AssertionError(_message(name, "the result is not a 4-tuple.",
                                          "return (episode_return, length, terminated, truncated).", True, case,
                                          expected=expected, received=received))
        episode_return, length, terminated, truncated = received
        hint = None
        if not _is_real_number(episode_return) or not _is_real_number(length):
            raise AssertionError(_message(name, "the return and the length must be finite numbers.",
                                          "episode_return is the sum of the rewards (a float), length the number of "
                                          "env.step calls (an int).", True, case, expected=expected, received=received))
        if outcome["reset_seed"] != seed:
            problem, hint = _seed_problem(outcome["reset_seed"], seed, env_id, controller, expected, received)
            raise AssertionError(_message(name, problem, hint, True, case, expected=expected, received=received))
        if int(length) != expected[1]:
            steps = outcome.get("steps")  # data from where the function ran: used only when it is a count
            if isinstance(steps, int) and not isinstance(steps, bool) and steps == int(length) >= 0:
                raise AssertionError(_message(  # the count is right: the episode itself is another one
                    name, f"the episode you played differs from the reference: you counted its {steps} steps right, "
                          f"but the reference's lasts {expected[1]}, so your loop took other actions than the policy "
                          "gives on the reference's states (does the policy see each new observation?).", None,
                    False, case, expected=expected, received=received))
            # the hint follows the numbers: one too few and one too many are different slips (issue 49)
            if int(length) < expected[1]:
                hint = "count every step, the last one included (length = number of env.step calls)."
            else:
                hint = (f"you counted more steps than env.step calls ({int(length)} for the reference's "
                        f"{expected[1]}): count each env.step call once, from 0 after the reset.")
        elif abs(float(episode_return) - expected[0]) > 1e-3 * max(1.0, abs(expected[0])):
            hint = "sum every reward, the last one included."
        elif (bool(terminated), bool(truncated)) != expected[2:]:
            hint = "return the terminated / truncated flags of the last step exactly as env.step gave them."
        if hint is not None:
            raise AssertionError(_message(name, "the episode you played differs from the reference.", hint, True,
                                          case, expected=expected, received=received))
    print(f"✓ {name}: {len(episode_cases.CASES)} cases passed")


def _same_episode(received: tuple[Any, ...], expected: tuple[Any, ...]) -> bool:
    """Whether a learner's (return, length, terminated, truncated) is the reference's, as the check compares them."""
    episode_return, length, terminated, truncated = received
    return (int(length) == expected[1] and abs(float(episode_return) - expected[0]) <= 1e-3 * max(1.0, abs(expected[0]))
            and (bool(terminated), bool(truncated)) == tuple(expected[2:]))


def _seed_problem(used: Any, seed: int, env_id: str, controller: str, expected: tuple[Any, ...],
                  received: tuple[Any, ...]) -> tuple[str, str]:
    """(headline, named mistake) for an episode that was not reset with the case's seed (``used``: the seed of the
    learner's reset). The headline agrees with the numbers printed beside it: an unseeded episode can be the
    reference's by chance (a push-left CartPole episode lasts 11 steps from about 3% of the random starts)."""
    import gymnasium as gym

    if used is None:
        how = "you reset the environment without a seed, so it starts from a random state (another one each run)"
        hint = ("the episode must start from the seeded state: you reset the environment without a seed; reset it "
                "with the `seed` you are given.")
    elif isinstance(used, int) and not isinstance(used, bool):
        how = f"you reset the environment with seed {used}, not with the `seed` you are given ({seed})"
        replayed = envs.play_episode(gym.make(env_id), episode_cases.CONTROLLERS[controller], used)
        if _same_episode(received, replayed):  # the known mistake replayed: a seed of their own, whatever `seed` is
            hint = (f"you reset the environment with seed {used} whatever the `seed` argument is, so it plays the "
                    f"episode of seed {used} (its numbers are yours), not this case's (seed {seed}): reset with the "
                    f"`seed` you are given.")
        else:
            hint = f"reset the environment once, with the `seed` you are given ({seed}), not {used}."
    else:
        how = f"your function's reset did not use the `seed` you are given ({seed}; it reset with {used!r})"
        hint = f"reset the environment once, at the start, with the `seed` you are given ({seed})."
    if _same_episode(received, expected):
        return (f"your numbers match the reference's on this case, but {how}: they match by chance (another start "
                f"gives other numbers).", hint)
    return f"the episode you played differs from the reference: {how}.", hint


# --------------------------------------------------------------------------------------------------
# transition_mask, completed_episode_returns
# --------------------------------------------------------------------------------------------------

def _episode_flags(g: torch.Generator, steps: int, num_envs: int, p_end: float = 0.25) -> tuple[Tensor, Tensor]:
    """Bool [T, N] flags as a NEXT_STEP vector env makes them: after every episode end, one reset step.

    An end is a termination, a truncation, or both on the same step (gymnasium raises both when the
    terminal state comes on the time-limit step, e.g. CartPole's pole falling on step 500): the flags
    are NOT mutually exclusive.
    """
    terminated = torch.zeros(steps, num_envs, dtype=torch.bool)
    truncated = torch.zeros(steps, num_envs, dtype=torch.bool)
    draws = torch.rand(steps, num_envs, generator=g).tolist()
    for env_index in range(num_envs):
        resetting = False
        for t in range(steps):
            if resetting:  # the autoreset step: no flags, reward 0
                resetting = False
                continue
            u = draws[t][env_index]
            terminated[t, env_index] = u < 0.6 * p_end or 0.95 * p_end <= u < p_end
            truncated[t, env_index] = 0.6 * p_end <= u < p_end
            resetting = u < p_end
    return terminated, truncated


def _rollout_rewards(g: torch.Generator, terminated: Tensor, truncated: Tensor,
                     dtype: torch.dtype = torch.float32) -> Tensor:
    """Rewards of a NEXT_STEP rollout: 0 on reset steps."""
    rewards = torch.randint(1, 6, terminated.shape, generator=g).to(dtype) / 2
    return rewards * envs.transition_mask(terminated, truncated)


def _shift_mask(flags: Tensor, first: bool = True) -> Tensor:
    """[T, N] mask whose row t is ~flags[t-1], row 0 is ``first``."""
    valid = torch.full_like(flags, first, dtype=torch.bool)
    valid[1:] = ~flags[:-1]
    return valid


def _cases_transition_mask() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    none4 = _bool([[0]] * 4)
    cases = [
        Case("T=1, N=1, no episode end", dict(terminated=_bool([[0]]), truncated=_bool([[0]]))),
        Case("T=1, N=2, env 0 terminates at step 0", dict(terminated=_bool([[1, 0]]), truncated=_bool([[0, 0]]))),
        Case("episode terminates mid-rollout (T=4, N=1)",
             dict(terminated=_bool([[0], [1], [0], [0]]), truncated=none4)),
        Case("time-limit truncation mid-rollout (T=4, N=1)",
             dict(terminated=none4, truncated=_bool([[0], [0], [1], [0]]))),
        Case("termination in env 0 and truncation in env 1 at the same step, env 2 ends on the last step (T=5, N=3)",
             dict(terminated=_bool([[0, 0, 0], [1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]]),
                  truncated=_bool([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]))),
        # gymnasium raises both flags when the terminal state comes on the time-limit step
        Case("terminated and truncated both True at step 1: the pole falls on the time-limit step (T=3, N=1)",
             dict(terminated=_bool([[0], [1], [0]]), truncated=_bool([[0], [1], [0]]))),
        Case("both flags on one step mid-rollout in env 0 and on the last step in env 1 (T=5, N=2)",
             dict(terminated=_bool([[0, 1], [1, 0], [0, 0], [0, 0], [0, 1]]),
                  truncated=_bool([[0, 0], [1, 0], [0, 0], [0, 0], [0, 1]]))),
    ]
    for steps, num_envs in [(8, 2), (12, 4), (30, 3)]:
        terminated, truncated = _episode_flags(g, steps, num_envs)
        cases.append(Case(f"random rollout (T={steps}, N={num_envs})",
                          dict(terminated=terminated, truncated=truncated)))
    return cases


TRANSITION_MASK = Exercise(
    name="transition_mask",
    reference=envs.transition_mask,
    make_cases=_cases_transition_mask,
    concept="a [T, N] bool mask, True for the real transitions: step 0 (the rollout starts right after a reset) "
            "and every step whose previous step did not end an episode; the step right after an end (terminated, "
            "truncated, or both) is the autoreset step, not a transition.",
    note=_STEPS_NOTE,
    mistakes=[
        Mistake("off by one: you used the flags of step t itself. Step t is a real transition even if the episode "
                "ends there; it is the step AFTER an end (the reset step) that is not, so step t depends on the "
                "flags of step t-1.",
                lambda terminated, truncated: ~(terminated | truncated)),
        Mistake("you only look at `terminated`: a truncated step (time limit) ends the episode too, so it is "
                "followed by a reset step as well.",
                lambda terminated, truncated: _shift_mask(terminated)),
        Mistake("you only look at `truncated`: a terminated step ends the episode too, so it is followed by a "
                "reset step as well.",
                lambda terminated, truncated: _shift_mask(truncated)),
        Mistake("you combined the flags with `and`: an episode ends when EITHER flag is set (terminated or "
                "truncated, or both), so combine them with a logical or.",
                lambda terminated, truncated: _shift_mask(terminated & truncated)),
        # done = terminated + truncated as numbers and valid = 1 - done: -1 where both are set, which is True
        Mistake(_BOTH_FLAGS_HINT + " The step after such an end is a reset step, not a transition.",
                lambda terminated, truncated: _shift_mask(terminated ^ truncated)),
        Mistake("the mask is inverted: it must be True for real transitions and False for the reset steps.",
                lambda terminated, truncated: ~_shift_mask(terminated | truncated)),
        Mistake("valid[0] must be True: the rollout starts right after a fresh reset, so step 0 is a real "
                "transition.",
                lambda terminated, truncated: _shift_mask(terminated | truncated, first=False)),
        Mistake("torch.roll wraps the last step round to step 0: when an episode ends on the last step, "
                "your valid[0] becomes False, but step 0 follows a fresh reset whatever happens at the end of the "
                "rollout.",
                lambda terminated, truncated: ~torch.roll(terminated | truncated, 1, dims=0)),
        Mistake("1 - (terminated + truncated) is -1 on a step where both flags are set (a time limit reached as the "
                "pole falls): combine the flags with a logical or (an episode end), then negate it.",
                lambda terminated, truncated: torch.cat([torch.ones_like(terminated[:1], dtype=torch.float32),
                                                         1 - (terminated.float() + truncated.float())[:-1]])),
        Mistake("the mask is shifted along the envs (dim 1), not along time (dim 0): a reset step is the step AFTER "
                "an episode end in the same env.",
                lambda terminated, truncated: _shift_mask((terminated | truncated).T).T),
        Mistake("you dropped step 0: the mask has one row per step, step 0 included, shape [T, N].",
                lambda terminated, truncated: ~(terminated | truncated)[:-1]),
    ],
)


def _returns_by_env(rewards: Tensor, terminated: Tensor, truncated: Tensor, *, ends: Tensor | None = None,
                    reset_running: bool = True, at_reset_step: bool = False, keep_unfinished: bool = False,
                    env_major: bool = False, reset_by_flag_sum: bool = False,
                    add_reset_rewards: bool = False, end_reward_left_out: bool = False) -> list[float]:
    """Episode returns with one knob per classic mistake (all knobs off gives the right answer).

    ``reset_by_flag_sum``: the running sum is reset by multiplying it with 1 - (terminated + truncated),
    which is -1 where both flags are set. ``add_reset_rewards``: a reset step's reward is added to the next
    episode (no transition mask).
    """
    done = (terminated | truncated) if ends is None else ends
    rewards = rewards.double()
    steps, num_envs = rewards.shape
    found: list[tuple[int, int, float]] = []  # (end step, env, return)
    running = [0.0] * num_envs
    for t in range(steps):
        for i in range(num_envs):
            if at_reset_step and t > 0 and done[t - 1, i]:
                found.append((t, i, running[i]))
                running[i] = 0.0
            reset_step = t > 0 and bool(done[t - 1, i])
            ending = not at_reset_step and bool(done[t, i])
            if (add_reset_rewards or not reset_step) and not (end_reward_left_out and ending):
                running[i] += float(rewards[t, i])
            if ending:
                found.append((t, i, running[i]))
                if reset_by_flag_sum:
                    running[i] *= 1.0 - (float(terminated[t, i]) + float(truncated[t, i]))
                elif reset_running:
                    running[i] = 0.0
    found.sort(key=lambda item: (item[1], item[0]) if env_major else (item[0], item[1]))
    result = [value for _, _, value in found]
    return result + running if keep_unfinished else result


def _cases_completed_episode_returns() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    cases = [
        Case("T=1, N=1, no episode ends", dict(rewards=_t([[1.0]]), terminated=_bool([[0]]), truncated=_bool([[0]]))),
        Case("T=1, N=2, env 1 terminates at step 0",
             dict(rewards=_t([[1.0, 1.5]]), terminated=_bool([[0, 1]]), truncated=_bool([[0, 0]]))),
        Case("episode terminates mid-rollout (T=5, N=1)",
             dict(rewards=_t([[1.0], [2.0], [3.0], [0.0], [4.0]]), terminated=_bool([[0], [0], [1], [0], [0]]),
                  truncated=_bool([[0]] * 5))),
        Case("truncation mid-rollout and on the last step (T=5, N=1)",
             dict(rewards=_t([[1.0], [1.0], [0.0], [2.0], [3.0]]), terminated=_bool([[0]] * 5),
                  truncated=_bool([[0], [1], [0], [0], [1]]))),
        Case("episodes end at the same step in different envs (T=5, N=3)",
             dict(rewards=_t([[1.0, 0.5, 2.0], [2.0, 0.5, 2.0], [3.0, 0.0, 0.0], [4.0, 1.0, 3.0], [0.0, 1.0, 3.0]]),
                  terminated=_bool([[0, 0, 0], [0, 0, 1], [0, 0, 0], [1, 0, 0], [0, 0, 1]]),
                  truncated=_bool([[0, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]]))),
        # gymnasium raises both flags when the terminal state comes on the time-limit step: ONE episode ends
        Case("terminated and truncated both True on the last step: the pole falls on the time-limit step "
             "(T=3, N=2)",
             dict(rewards=_t([[1.0, 2.0], [1.0, 0.0], [2.0, 1.0]]), terminated=_bool([[0, 1], [0, 0], [1, 0]]),
                  truncated=_bool([[0, 0], [0, 0], [1, 1]]))),
        Case("an episode ends with both flags mid-rollout, the next one ends too (T=5, N=1)",
             dict(rewards=_t([[1.0], [2.0], [0.0], [1.0], [3.0]]), terminated=_bool([[0], [1], [0], [0], [1]]),
                  truncated=_bool([[0], [1], [0], [0], [0]]))),
        # a wrapper that shifts rewards gives reset steps a reward too: it belongs to no episode
        Case("reset steps with non-zero rewards (a reward-shifting wrapper's): they add nothing (T=5, N=2)",
             dict(rewards=_t([[1.0, 1.0], [2.0, 1.0], [5.0, 1.0], [1.0, 7.0], [1.0, 1.0]]),
                  terminated=_bool([[0, 0], [1, 1], [0, 0], [0, 0], [1, 0]]), truncated=_bool([[0, 0]] * 5))),
        # a finished episode's return can be 0 (a sparse reward never reached): it is listed all the same
        Case("env 0's episode ends at step 1 with return 0 (its rewards are all 0, a sparse reward never reached), "
             "env 1's is truncated at step 2 (T=4, N=2)",
             dict(rewards=_t([[0.0, 1.0], [0.0, -1.0], [0.0, 2.0], [1.0, 0.0]]),
                  terminated=_bool([[0, 0], [1, 0], [0, 0], [0, 0]]),
                  truncated=_bool([[0, 0], [0, 0], [0, 1], [0, 0]]))),
    ]
    for steps, num_envs, dtype in [(12, 3, torch.float32), (10, 2, torch.float64), (25, 4, torch.float32)]:
        terminated, truncated = _episode_flags(g, steps, num_envs)
        rewards = _rollout_rewards(g, terminated, truncated, dtype)
        cases.append(Case(f"random rollout (T={steps}, N={num_envs}, {str(dtype).removeprefix('torch.')})",
                          dict(rewards=rewards, terminated=terminated, truncated=truncated)))
    return cases


COMPLETED_EPISODE_RETURNS = Exercise(
    name="completed_episode_returns",
    reference=envs.completed_episode_returns,
    make_cases=_cases_completed_episode_returns,
    output="numbers",
    concept="the undiscounted return (the sum of the rewards) of every episode that ended inside the rollout, "
            "from its first step to the step where it terminated, was truncated, or both; episodes still running "
            "at the last step are left out; the finished episodes are listed by end step, then env index.",
    note=_STEPS_NOTE,
    mistakes=[
        Mistake("an episode cut by a time limit (truncated) has ended too: close the episode when terminated OR "
                "truncated is True.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       ends=terminated)),
        Mistake("the reward of the step that ends an episode is left out: that step is the episode's last "
                "transition (its reward counts); only the step AFTER it, the reset step, belongs to no episode.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       end_reward_left_out=True)),
        Mistake("you also list episodes that were still running at the end of the rollout: only episodes that "
                "ENDED inside the rollout count.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       keep_unfinished=True)),
        Mistake("the running return is not reset at the episode end: after recording an episode's return, set "
                "that env's running sum back to 0.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       reset_running=False)),
        Mistake("wrong order: list the episodes by end step first, then by env index (loop over steps outside, "
                "envs inside).",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       env_major=True)),
        Mistake("you added the reward of a reset step (the step after an episode's end) to the next episode: a reset "
                "step is not a transition and belongs to no episode, so skip it (transition_mask marks it), whatever "
                "its reward. gymnasium gives it reward 0, and a wrapper around the vector env that only scales rewards keeps "
                "that 0, but one that shifts them (a constant per-step penalty on the vector env) does not.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       add_reset_rewards=True)),
        Mistake("you close an episode when you see its reset step, so an episode ending on the last step of the "
                "rollout is lost: an episode is over at the step where it terminated or was truncated.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       at_reset_step=True)),
        # the ending steps picked by their return being non-zero instead of by the flags (a student's try, issue 49)
        Mistake("an episode whose return is 0 is missing: you keep the returns that are not 0, but an episode that "
                "ended can have return 0 (a sparse reward never reached, rewards that cancel), and one still running "
                "is not 0 in general. An episode has ended where its step's terminated or truncated flag is set, "
                "whatever its return.",
                lambda rewards, terminated, truncated: [value for value in _returns_by_env(rewards, terminated,
                                                                                            truncated) if value != 0]),
        # done = terminated + truncated as numbers: `done == 1` misses a step with both flags ...
        Mistake(_BOTH_FLAGS_HINT + " Such a step ends ONE episode, which must be counted once.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       ends=terminated ^ truncated)),
        # ... and a reset by multiplying with 1 - done turns the running sum into minus itself
        Mistake(_BOTH_FLAGS_HINT + " Where both are set, a reset by multiplying with 1 - done multiplies the "
                "running sum by -1, so the next episode starts from minus the last return instead of 0.",
                lambda rewards, terminated, truncated: _returns_by_env(rewards, terminated, truncated,
                                                                       reset_by_flag_sum=True)),
    ],
)


# --------------------------------------------------------------------------------------------------
# The checks of this chapter
# --------------------------------------------------------------------------------------------------

EXERCISES: list[Exercise] = [TRANSITION_MASK, COMPLETED_EPISODE_RETURNS]

check_transition_mask = _make_check(TRANSITION_MASK)
check_completed_episode_returns = _make_check(COMPLETED_EPISODE_RETURNS)

CHECKS: dict[str, Callable[[Callable[..., Any]], None]] = {
    "play_episode": check_play_episode,
    "transition_mask": check_transition_mask,
    "completed_episode_returns": check_completed_episode_returns,
}
