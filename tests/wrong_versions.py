"""A catalogue of wrong solutions to the course exercises, written the way a learner might write them.

Each function carries one classic mistake (named in its docstring) and is registered with
``@wrong(exercise, hint)``: the check of ``exercise`` must reject it with an AssertionError whose
message contains ``hint``, a distinctive piece of the explanation of that very mistake.
``@correct(exercise)`` registers other *right* ways to write an exercise, which must pass.

These are written independently of the check's own "known mistakes" (loops where the check
vectorises, other operations), so a test here shows the check recognises the mistake, not just
its own code.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class WrongVersion:
    exercise: str
    fn: Callable
    hint: str  # distinctive substring of the hint the check must give

    @property
    def id(self) -> str:
        return f"{self.exercise}:{self.fn.__name__}"


WRONG_VERSIONS: list[WrongVersion] = []
CORRECT_VERSIONS: list[tuple[str, Callable]] = []


def wrong(exercise: str, hint: str) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        WRONG_VERSIONS.append(WrongVersion(exercise, fn, hint))
        return fn
    return register


def correct(exercise: str) -> Callable[[Callable], Callable]:
    def register(fn: Callable) -> Callable:
        CORRECT_VERSIONS.append((exercise, fn))
        return fn
    return register


# ----------------------------------------------------------------------------- ch00 transition_mask

@wrong("transition_mask", "is -1 on a step where both flags are set")
def transition_mask_flag_sum(terminated, truncated):
    """valid[1:] = 1 - (terminated + truncated)[:-1] as floats (a student's try: 'No known mistake')."""
    valid = torch.ones(terminated.shape)
    valid[1:] = 1 - (terminated.float() + truncated.float())[:-1]
    return valid


@wrong("transition_mask", "shifted along the envs")
def transition_mask_env_axis(terminated, truncated):
    """valid[:, 1:] = ~done[:, :-1] (the same)."""
    done = terminated | truncated
    valid = torch.ones_like(done)
    valid[:, 1:] = ~done[:, :-1]
    return valid


@wrong("transition_mask", "off by one")
def transition_mask_off_by_one(terminated, truncated):
    """Off by one: marks the ending step itself as not a transition (uses step t's flags)."""
    return ~(terminated | truncated)


@wrong("transition_mask", "you only look at `terminated`")
def transition_mask_ignores_truncated(terminated, truncated):
    """Ignores truncation: a time-limit end is followed by a reset step too."""
    valid = torch.ones_like(terminated)
    valid[1:] = ~terminated[:-1]
    return valid


@wrong("transition_mask", "you only look at `truncated`")
def transition_mask_ignores_terminated(terminated, truncated):
    """Ignores termination."""
    valid = torch.ones_like(truncated)
    valid[1:] = ~truncated[:-1]
    return valid


@wrong("transition_mask", "the mask is inverted")
def transition_mask_inverted(terminated, truncated):
    """Marks the reset steps True instead of the real transitions."""
    reset = torch.zeros_like(terminated)
    reset[1:] = terminated[:-1] | truncated[:-1]
    return reset


@wrong("transition_mask", "valid[0] must be True")
def transition_mask_first_step_invalid(terminated, truncated):
    """Step 0 marked invalid (padding the shifted flags with True)."""
    done = terminated | truncated
    padded = torch.cat([torch.ones_like(done[:1]), done[:-1]])
    return ~padded


@wrong("transition_mask", "torch.roll wraps")
def transition_mask_roll(terminated, truncated):
    """Shifts with torch.roll, which wraps the last step's flags round to step 0."""
    return ~torch.roll(terminated | truncated, shifts=1, dims=0)


@wrong("transition_mask", "you dropped step 0")
def transition_mask_missing_first_row(terminated, truncated):
    """Returns only the T-1 shifted rows: step 0 is missing."""
    return ~(terminated[:-1] | truncated[:-1])


@wrong("transition_mask", "can both be True on the same step")
def transition_mask_unclamped_sum(terminated, truncated):
    """done = terminated + truncated as 0/1 numbers: when both flags are set on one step (the pole falls on
    the time-limit step), 1 - done is -1, which .bool() reads as True, so the reset step after it counts
    as a transition."""
    done = terminated.float() + truncated.float()
    valid = torch.ones_like(done)
    valid[1:] = 1 - done[:-1]
    return valid.bool()


@wrong("transition_mask", "return a bool tensor")
def transition_mask_float(terminated, truncated):
    """Right values, but a float 0/1 tensor instead of a bool mask."""
    valid = torch.ones(terminated.shape)
    valid[1:] = 1.0 - (terminated[:-1] | truncated[:-1]).float()
    return valid


@wrong("transition_mask", "you combined the flags with `and`")
def transition_mask_and(terminated, truncated):
    """done = terminated & truncated: only a step with both flags ends an episode (a student's try: told 'you only
    look at `truncated`', a mistake it did not make, issue 49)."""
    valid = torch.ones_like(terminated)
    valid[1:] = ~(terminated & truncated)[:-1]
    return valid


@correct("transition_mask")
def transition_mask_from_a_count(terminated, truncated):
    """Counts the flags as numbers, and a step after a count above 0 is a reset step (both flags count once)."""
    ends = terminated.int() + truncated.int()
    valid = torch.ones_like(terminated, dtype=torch.bool)
    valid[1:] = ends[:-1] == 0
    return valid


@correct("transition_mask")
def transition_mask_loop(terminated, truncated):
    steps, num_envs = terminated.shape
    valid = torch.ones(steps, num_envs, dtype=torch.bool)
    for t in range(1, steps):
        for i in range(num_envs):
            valid[t, i] = not (bool(terminated[t - 1, i]) or bool(truncated[t - 1, i]))
    return valid


# ------------------------------------------------------------------- ch00 completed_episode_returns

def _episode_returns(rewards, ends, *, reset=True, unfinished=False, env_major=False):
    """A learner's loop, with one slip each: the reward of a reset step (the step after any end) is left out, as
    the exercise asks, so that each wrong version carries its one mistake and the check's replay of it agrees on
    every case."""
    steps, num_envs = rewards.shape
    running = [0.0] * num_envs
    found = []
    for t in range(steps):
        for i in range(num_envs):
            if t == 0 or not ends[t - 1, i]:
                running[i] += rewards[t, i].item()
            if ends[t, i]:
                found.append((t, i, running[i]))
                if reset:
                    running[i] = 0.0
    if env_major:
        found.sort(key=lambda item: (item[1], item[0]))
    result = [r for _, _, r in found]
    return result + running if unfinished else result


@wrong("completed_episode_returns", "cut by a time limit")
def episode_returns_ignore_truncated(rewards, terminated, truncated):
    """Only terminated episodes count as ended; truncated ones are dropped (and merged into the next)."""
    return _episode_returns(rewards, terminated)


@wrong("completed_episode_returns", "still running at the end")
def episode_returns_include_unfinished(rewards, terminated, truncated):
    """Also lists the partial returns of the episodes still running at the end of the rollout."""
    return _episode_returns(rewards, terminated | truncated, unfinished=True)


@wrong("completed_episode_returns", "not reset at the episode end")
def episode_returns_not_reset(rewards, terminated, truncated):
    """Returns not reset at episode end: the running sum carries over into the next episode."""
    return _episode_returns(rewards, terminated | truncated, reset=False)


@wrong("completed_episode_returns", "by end step first")
def episode_returns_env_major(rewards, terminated, truncated):
    """Orders the episodes env by env instead of by end step."""
    return _episode_returns(rewards, terminated | truncated, env_major=True)


@wrong("completed_episode_returns", "when you see its reset step")
def episode_returns_recorded_at_reset(rewards, terminated, truncated):
    """Closes an episode on its reset step (so one ending on the last step is lost)."""
    steps, num_envs = rewards.shape
    done = terminated | truncated
    running = torch.zeros(num_envs)
    result = []
    for t in range(steps):
        if t > 0:
            for i in torch.nonzero(done[t - 1]).flatten().tolist():
                result.append(float(running[i]))
                running[i] = 0.0
        running += rewards[t]
    return result


@wrong("completed_episode_returns", "can both be True on the same step")
def episode_returns_unclamped_sum(rewards, terminated, truncated):
    """done = terminated + truncated as numbers, and the running sums reset by multiplying with (1 - done):
    when both flags are set on one step, 1 - done is -1, so the next episode starts from minus the return
    of the one that just ended."""
    done = terminated.double() + truncated.double()
    running = torch.zeros(rewards.shape[1], dtype=torch.float64)
    reset_step = torch.zeros(rewards.shape[1], dtype=torch.bool)  # reset steps add nothing (the one mistake is the sum)
    result = []
    for t in range(rewards.shape[0]):
        running = running + torch.where(reset_step, 0.0, rewards[t].double())
        for i in torch.nonzero(done[t]).flatten().tolist():
            result.append(float(running[i]))
        running = running * (1 - done[t])
        reset_step = done[t] > 0
    return result


@correct("completed_episode_returns")
def episode_returns_cumsum(rewards, terminated, truncated):
    done = (terminated | truncated).T  # [N, T]
    found = []
    for i, env_rewards in enumerate(rewards.T):
        start = 0
        for t in torch.nonzero(done[i]).flatten().tolist():
            found.append((t, i, float(env_rewards[start:t + 1].sum())))
            start = t + 2  # the step after an end is a reset step: the next episode starts after it
    return [value for _, _, value in sorted(found)]


@wrong("completed_episode_returns", "expected a list of Python floats, got a Tensor")
def episode_returns_as_a_tensor(rewards, terminated, truncated):
    """The right returns, as a tensor instead of the list the docstring asks for."""
    return torch.tensor(episode_returns_cumsum(rewards, terminated, truncated))


@wrong("completed_episode_returns", "the reward of the step that ends an episode is left out")
def episode_returns_without_the_last_reward(rewards, terminated, truncated):
    """Closes the episode before adding its ending step's reward (a student's try: 'No known mistake')."""
    done = terminated | truncated
    running = torch.zeros(rewards.shape[1], dtype=torch.float64)
    resetting = torch.zeros(rewards.shape[1], dtype=torch.bool)
    result = []
    for t in range(rewards.shape[0]):
        for i in torch.nonzero(done[t]).flatten().tolist():
            if not resetting[i]:
                result.append(float(running[i]))
                running[i] = 0.0
        running = running + torch.where(resetting | done[t], 0.0, rewards[t].double())
        resetting = done[t].clone()
    return result


@wrong("completed_episode_returns", "reward of a reset step")
def episode_returns_without_mask(rewards, terminated, truncated):
    """Sums every reward, reset steps included: right only while reset steps have reward 0 (gymnasium's), wrong
    once a wrapper shifts or scales rewards."""
    done = terminated | truncated
    running = torch.zeros(rewards.shape[1], dtype=torch.float64)
    result = []
    for t in range(rewards.shape[0]):
        running = running + rewards[t].double()
        for i in torch.nonzero(done[t]).flatten().tolist():
            result.append(float(running[i]))
            running[i] = 0.0
    return result


@wrong("completed_episode_returns", "an episode whose return is 0 is missing")
def episode_returns_nonzero_filter(rewards, terminated, truncated):
    """A [T, N] table of the returns at the steps where an episode ends (0 elsewhere), its unfinished episodes
    kept out by keeping the entries that are not 0 instead of selecting the ending steps with the done flags: an
    episode that ends with return 0 is lost (a student's try: 'No known mistake')."""
    done = terminated | truncated
    valid = torch.ones_like(done)
    valid[1:] = ~done[:-1]
    running = torch.zeros(rewards.shape[1], dtype=torch.float64)
    table = torch.zeros(rewards.shape, dtype=torch.float64)
    for t in range(rewards.shape[0]):
        running = running + torch.where(valid[t], rewards[t].double(), 0.0)
        table[t] = torch.where(done[t], running, 0.0)
        running = torch.where(done[t], 0.0, running)
    return table[table != 0].tolist()


# ----------------------------------------------------------------------------- ch01 discounted_returns

@wrong("discounted_returns", "come out in reverse order")
def discounted_returns_never_flipped_back(rewards, gamma):
    """Appends G_t walking backwards and returns the list as built (a student's try: 'No known mistake')."""
    out, running = [], 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out.append(running)
    return torch.tensor(out, dtype=rewards.dtype)


@wrong("discounted_returns", "accumulate forwards")
def returns_accumulated_forwards(rewards, gamma):
    """Returns accumulated forwards: G_t = r_t + gamma * G_{t-1}."""
    out = torch.zeros_like(rewards)
    running = 0.0
    for t in range(len(rewards)):
        running = rewards[t].item() + gamma * running
        out[t] = running
    return out


@wrong("discounted_returns", "gamma applied one step late")
def returns_gamma_one_step_late(rewards, gamma):
    """Gamma applied one step late: running = (running + r_t) * gamma, so r_t is discounted too."""
    out = torch.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = (running + rewards[t].item()) * gamma
        out[t] = running
    return out


@wrong("discounted_returns", "returns[t] holds G_{t+1}")
def returns_stored_before_update(rewards, gamma):
    """Stores the running return before adding r_t: everything is shifted by one step."""
    out = torch.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        out[t] = running
        running = rewards[t].item() + gamma * running
    return out


@wrong("discounted_returns", "gamma is ignored")
def returns_undiscounted(rewards, gamma):
    """Forgets the discount: reward-to-go without gamma."""
    return rewards.detach().flip(0).cumsum(0).flip(0)


@wrong("discounted_returns", "return of the whole episode")
def returns_whole_episode(rewards, gamma):
    """Gives every step the discounted return of the whole episode, G_0."""
    discounts = gamma ** torch.arange(len(rewards), dtype=rewards.dtype)
    return torch.full_like(rewards, float((discounts * rewards.detach()).sum()))


@wrong("discounted_returns", "counts from the start of the episode")
def returns_exponent_from_episode_start(rewards, gamma):
    """G_t = sum_{k>=t} gamma^k r_k: the exponent counts from 0 instead of from t."""
    out = torch.zeros_like(rewards)
    for t in range(len(rewards)):
        out[t] = sum(gamma ** k * rewards[k].item() for k in range(t, len(rewards)))
    return out


@wrong("discounted_returns", "returns are targets")
def returns_not_detached(rewards, gamma):
    """Builds the returns from the rewards' graph: the output still requires grad."""
    out = []
    running = torch.zeros((), dtype=rewards.dtype)
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        out.append(running)
    return torch.stack(out[::-1])


@wrong("discounted_returns", "keep the dtype of the inputs")
def returns_float32(rewards, gamma):
    """Creates the output with torch.zeros(T): float32 even for float64 rewards."""
    out = torch.zeros(len(rewards))
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t].item() + gamma * running
        out[t] = running
    return out


@wrong("discounted_returns", "forget the `return`")
def returns_forgot_return(rewards, gamma):
    """Computes the returns but forgets to return them."""
    out = torch.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t].item() + gamma * running
        out[t] = running


@wrong("discounted_returns", "divide by gamma**t")
def returns_rescaled_cumsum(rewards, gamma):
    """Vectorised as a reversed cumulative sum of gamma^k r_k divided by gamma^t: right for 0 < gamma, but 0/0 = nan
    at gamma = 0 (an edge case the docstring names)."""
    rewards = rewards.detach()
    discounts = gamma ** torch.arange(len(rewards), dtype=rewards.dtype)  # [T] gamma^t
    return torch.flip(torch.cumsum(torch.flip(discounts * rewards, [0]), 0), [0]) / discounts


@correct("discounted_returns")
def returns_matrix(rewards, gamma):
    steps = len(rewards)
    exponents = torch.arange(steps)[None, :] - torch.arange(steps)[:, None]  # k - t
    discounts = torch.where(exponents >= 0, gamma ** exponents.clamp(min=0).to(rewards.dtype),
                            torch.zeros((), dtype=rewards.dtype))
    return discounts @ rewards.detach()


# ------------------------------------------------------------------------- ch01 first_episode_lengths

def _ends_by_loop(terminated, truncated, end_of=lambda term, trunc: bool(term) or bool(trunc), plus=1, last=False):
    """A learner's loop over envs and steps: the step index of each env's first (or last) end, plus ``plus``."""
    steps, num_envs = terminated.shape
    lengths = []
    for i in range(num_envs):
        found = 0
        for t in range(steps):
            if end_of(terminated[t, i], truncated[t, i]):
                found = t + plus
                if not last:
                    break
        lengths.append(found)
    return torch.tensor(lengths, dtype=torch.int64)


@correct("first_episode_lengths")
def first_episode_lengths_loop(terminated, truncated):
    return _ends_by_loop(terminated, truncated)


@correct("first_episode_lengths")
def first_episode_lengths_cumsum(terminated, truncated):
    """Steps before the first end (the running count of ends is still 0), plus the end itself."""
    ended_so_far = (terminated | truncated).long().cumsum(0)  # [T, N]
    return (ended_so_far == 0).sum(0) + 1


@correct("first_episode_lengths")
def first_episode_lengths_nonzero(terminated, truncated):
    done = torch.logical_or(terminated, truncated)
    return torch.stack([done[:, i].nonzero()[0, 0] + 1 for i in range(done.shape[1])])


@wrong("first_episode_lengths", "off by one")
def first_episode_lengths_index_not_length(terminated, truncated):
    """The index of the ending step, not the length: the ending step belongs to the episode."""
    return _ends_by_loop(terminated, truncated, plus=0)


@wrong("first_episode_lengths", "a truncation (the time limit) ends an episode too")
def first_episode_lengths_terminated_only(terminated, truncated):
    """Only terminated ends an episode: a time-limit end is missed."""
    return _ends_by_loop(terminated, truncated, end_of=lambda term, trunc: bool(term))


@wrong("first_episode_lengths", "Added as numbers they make 2")
def first_episode_lengths_flags_added(terminated, truncated):
    """done = terminated + truncated == 1: a step with both flags (2) is not seen as an end."""
    return _ends_by_loop(terminated, truncated, end_of=lambda term, trunc: int(term) + int(trunc) == 1)


@wrong("first_episode_lengths", "keep each env's FIRST episode")
def first_episode_lengths_last_end(terminated, truncated):
    """Runs to the last end in the rollout, not the first: later episodes are counted in."""
    return _ends_by_loop(terminated, truncated, last=True)


@wrong("first_episode_lengths", "expected torch.int64")
def first_episode_lengths_float(terminated, truncated):
    """Right numbers, float dtype: lengths are counts."""
    return _ends_by_loop(terminated, truncated).float()


# ------------------------------------------------------------------------------------ ch01 normalize

@wrong("normalize", "each column separately")
def normalize_per_column(x):
    """Normalising with the wrong axis: statistics along dim 0."""
    return (x - x.mean(dim=0)) / (x.std(dim=0, unbiased=False) + 1e-8)


@wrong("normalize", "each row separately")
def normalize_per_row(x):
    """Normalising with the wrong axis: statistics along the last dim."""
    return (x - x.mean(dim=-1, keepdim=True)) / (x.std(dim=-1, unbiased=False, keepdim=True) + 1e-8)


@wrong("normalize", "no epsilon")
def normalize_without_epsilon(x):
    """Normalising without epsilon: 0/0 on a constant input."""
    return (x - x.mean()) / x.std(unbiased=False)


@wrong("normalize", "population standard deviation")
def normalize_unbiased_std(x):
    """Uses the unbiased (n-1) std."""
    return (x - x.mean()) / (x.std() + 1e-8)


@wrong("normalize", "forgot to subtract the mean")
def normalize_no_centering(x):
    """Only rescales."""
    return x / (x.std(unbiased=False) + 1e-8)


@wrong("normalize", "divide by the variance")
def normalize_by_variance(x):
    """Divides by the variance instead of the std."""
    return (x - x.mean()) / (x.var(unbiased=False) + 1e-8)


@wrong("normalize", "you divide by the largest absolute value")
def normalize_by_max(x):
    """Divides the centred values by max |x| instead of the std (a student's try: told 'you divide by the variance'
    on the case [1, 2, 3, 4, 10], whose variance and max are both 10, issue 49)."""
    return (x - x.mean()) / (x.abs().max() + 1e-8)


@wrong("normalize", "modified its input `x` in place")
def normalize_in_place(x):
    """Right values, but centres and scales the caller's tensor in place."""
    x -= x.mean()
    x /= x.std(unbiased=False) + 1e-8
    return x


@correct("normalize")
def normalize_std_mean(x):
    std, mean = torch.std_mean(x, correction=0)
    return (x - mean) / (std + 1e-8)


# ------------------------------------------------------------------------------- ch01 reinforce_loss

@wrong("reinforce_loss", "loss sign flipped")
def reinforce_loss_sign_flipped(log_probs, weights):
    """Loss sign flipped: returns the objective instead of the loss."""
    return (log_probs * weights.detach()).mean()


@wrong("reinforce_loss", "missing .detach() on the weights")
def reinforce_loss_without_detach(log_probs, weights):
    """REINFORCE loss without detach: gradient flows into the returns."""
    return -(log_probs * weights).mean()


@wrong("reinforce_loss", "not .sum()")
def reinforce_loss_sum(log_probs, weights):
    """Sums over the batch instead of averaging."""
    return -(log_probs * weights.detach()).sum()


@wrong("reinforce_loss", "must be a single number")
def reinforce_loss_not_reduced(log_probs, weights):
    """Returns the per-sample terms, shape [B]."""
    return -log_probs * weights.detach()


@wrong("reinforce_loss", "not exp(log_probs)")
def reinforce_loss_with_probabilities(log_probs, weights):
    """Weights the probabilities instead of the log-probabilities."""
    return -(torch.exp(log_probs) * weights.detach()).mean()


@wrong("reinforce_loss", "no gradient flows back into `log_probs`")
def reinforce_loss_item(log_probs, weights):
    """Builds the loss from Python numbers: it is cut from the graph."""
    return torch.tensor(-(log_probs * weights).mean().item())


@correct("reinforce_loss")
def reinforce_loss_dot(log_probs, weights):
    return -torch.dot(log_probs, weights.detach()) / log_probs.numel()


# -------------------------------------------------------------------------- ch02 baseline_advantages

@wrong("baseline_advantages", "missing .detach() on the values")
def baseline_advantages_without_detach(returns, values):
    """Missing .detach() on values: the policy loss would train the critic."""
    return returns - values


@wrong("baseline_advantages", "not values - returns")
def baseline_advantages_sign_flipped(returns, values):
    """Advantage sign flipped."""
    return values.detach() - returns


@wrong("baseline_advantages", "subtract the baseline")
def baseline_advantages_no_baseline(returns, values):
    """Forgets the baseline."""
    return returns.clone()


@wrong("baseline_advantages", "normalise the advantages here")
def baseline_advantages_normalised(returns, values):
    """Normalises inside."""
    advantages = returns - values.detach()
    return (advantages - advantages.mean()) / (advantages.std(unbiased=False) + 1e-8)


# -------------------------------------------------------------------------------- ch02 value_loss

@wrong("value_loss", "missing the factor 0.5")
def value_loss_no_half(values, returns):
    """Plain MSE without the 0.5."""
    return torch.nn.functional.mse_loss(values, returns.detach())


@wrong("value_loss", "not .sum()")
def value_loss_sum(values, returns):
    """Sums the squared errors."""
    return 0.5 * ((values - returns.detach()) ** 2).sum()


@wrong("value_loss", "missing .detach() on the returns")
def value_loss_without_detach(values, returns):
    """Gradient also flows into the targets."""
    return 0.5 * ((values - returns) ** 2).mean()


@wrong("value_loss", "broadcasts to a [B, B] matrix")
def value_loss_broadcast(values, returns):
    """A critic's [B, 1] output against [B] returns: the classic silent broadcast."""
    return 0.5 * ((values.unsqueeze(1) - returns.detach()) ** 2).mean()


@wrong("value_loss", "not the absolute error")
def value_loss_absolute(values, returns):
    """Absolute instead of squared error."""
    return 0.5 * (values - returns.detach()).abs().mean()


@wrong("value_loss", "a squared-error loss is never negative")
def value_loss_negative(values, returns):
    """Sign flipped."""
    return -0.5 * ((returns.detach() - values) ** 2).mean()


@wrong("value_loss", "do not detach the values")
def value_loss_values_detached(values, returns):
    """Detaches the values: the critic never learns."""
    return 0.5 * ((values.detach() - returns.detach()) ** 2).mean()


@correct("value_loss")
def value_loss_functional(values, returns):
    return 0.5 * torch.nn.functional.mse_loss(values, returns.detach())


# -------------------------------------------------------------------------- ch02 gradient_variance

@wrong("gradient_variance", "you computed the mean gradient")
def gradient_variance_mean(grads):
    """gradient_variance using the mean instead of the variance."""
    return float(grads.mean(dim=0).sum())


@wrong("gradient_variance", "divide by K-1")
def gradient_variance_population(grads):
    """Population variance (divides by K)."""
    centred = grads - grads.mean(dim=0)
    return float((centred ** 2).sum() / grads.shape[0])


@wrong("gradient_variance", "variance along the wrong axis")
def gradient_variance_wrong_axis(grads):
    """Variance across the coordinates of each sample instead of across the samples."""
    return float(torch.var(grads, dim=1).sum())


@wrong("gradient_variance", "you averaged them")
def gradient_variance_mean_over_coordinates(grads):
    """Averages the per-coordinate variances instead of summing them."""
    return float(torch.var(grads, dim=0).mean())


@wrong("gradient_variance", "not standard deviation")
def gradient_variance_std(grads):
    """Sums standard deviations."""
    return float(torch.std(grads, dim=0).sum())


@wrong("gradient_variance", "variance of the gradient norms")
def gradient_variance_of_norms(grads):
    """Variance of the norms of the sampled gradients."""
    return float(torch.linalg.vector_norm(grads, dim=1).var())


@wrong("gradient_variance", "subtract the mean gradient")
def gradient_variance_second_moment(grads):
    """Mean squared norm: forgets to centre."""
    return float((grads * grads).sum(dim=1).mean())


@correct("gradient_variance")
def gradient_variance_trace_cov(grads):
    return torch.trace(torch.cov(grads.T.double()).reshape(grads.shape[1], grads.shape[1])).item()


# ------------------------------------------------------------------------- ch02 categorical_entropy

@wrong("categorical_entropy", "lost the minus sign")
def categorical_entropy_no_minus(logits):
    """Entropy without the minus sign."""
    log_p = torch.log_softmax(logits, dim=-1)
    return (log_p.exp() * log_p).sum(dim=-1)


@wrong("categorical_entropy", "0 * -inf = nan")
def categorical_entropy_log_of_softmax(logits):
    """log(softmax): -inf where a probability underflows."""
    p = torch.softmax(logits, dim=-1)
    return -(p * torch.log(p)).sum(dim=-1)


@wrong("categorical_entropy", "masked afterwards (torch.where, nan_to_num) still reaches the gradient")
def categorical_entropy_nan_masked(logits):
    """The value's nan masked after it is formed: right values, a nan gradient on the underflowing row
    (exercise 02's second read: the old message blamed a detach; nan_to_num on the terms gets the same message)."""
    p = torch.softmax(logits, dim=-1)
    return -torch.where(p > 0, p * torch.log(p), torch.zeros_like(p)).sum(dim=-1)


@wrong("categorical_entropy", "logits are not log-probabilities")
def categorical_entropy_unnormalised(logits):
    """Treats the raw logits as log-probabilities."""
    return -(torch.exp(logits) * logits).sum(dim=-1)


@wrong("categorical_entropy", "normalised over the batch")
def categorical_entropy_softmax_over_the_batch(logits):
    """log_softmax along dim 0 (the batch), then the right sum."""
    log_p = torch.log_softmax(logits, dim=0)
    return -(log_p.exp() * log_p).sum(-1)


@wrong("categorical_entropy", "summed over the batch (dim=0)")
def categorical_entropy_wrong_dim(logits):
    """Sums over the batch dimension."""
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(dim=0)


@wrong("categorical_entropy", "forgot to sum over the actions")
def categorical_entropy_not_summed(logits):
    """Per-action terms, shape [B, A]."""
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p)


@wrong("categorical_entropy", "sum over the actions, not mean")
def categorical_entropy_mean(logits):
    """Averages over the actions."""
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).mean(dim=-1)


@correct("categorical_entropy")
def categorical_entropy_distribution(logits):
    return torch.distributions.Categorical(logits=logits).entropy()


# ----------------------------------------------------------------------------------- ch03 td_errors

@wrong("td_errors", "you bootstrap from values[t + 1]")
def td_errors_values_shifted(rewards, values, next_values, terminated, gamma):
    """Reads the next state's value one row down in values (exercise 03's third read: q4 asks why not, and the check
    did not name it)."""
    following = torch.cat([values[1:], next_values[-1:]], dim=0)
    return rewards + gamma * (1 - terminated) * following - values


@wrong("td_errors", "bootstrap through a terminal state")
def td_errors_no_terminal_mask(rewards, values, next_values, terminated, gamma):
    """TD error without (1 - terminated)."""
    return (rewards + gamma * next_values - values).detach()


@wrong("td_errors", "values and next_values are swapped")
def td_errors_swapped(rewards, values, next_values, terminated, gamma):
    """V(s) and V(s') swapped."""
    return (rewards + gamma * (1 - terminated) * values - next_values).detach()


@wrong("td_errors", "the target minus the current estimate")
def td_errors_sign_flipped(rewards, values, next_values, terminated, gamma):
    """Sign flipped."""
    return (values - (rewards + gamma * (1 - terminated) * next_values)).detach()


@wrong("td_errors", "the next value must be discounted")
def td_errors_no_gamma(rewards, values, next_values, terminated, gamma):
    """Forgets gamma."""
    return (rewards + (1 - terminated) * next_values - values).detach()


@wrong("td_errors", "don't multiply the whole delta")
def td_errors_whole_delta_masked(rewards, values, next_values, terminated, gamma):
    """Masks the whole TD error at terminal steps."""
    return ((1 - terminated) * (rewards + gamma * next_values - values)).detach()


@wrong("td_errors", "you add the current state's value")
def td_errors_plus_value(rewards, values, next_values, terminated, gamma):
    """+ V(s) instead of - V(s) (a student's try: 'No known mistake')."""
    return (rewards + gamma * (1 - terminated) * next_values + values).detach()


@wrong("td_errors", "the termination mask is inverted")
def td_errors_mask_inverted(rewards, values, next_values, terminated, gamma):
    """terminated * next_values instead of (1 - terminated) * next_values: bootstraps only at terminal steps (a
    student's try: 'No known mistake')."""
    return (rewards + gamma * terminated * next_values - values).detach()


@wrong("td_errors", "TD errors are advantage estimates")
def td_errors_not_detached(rewards, values, next_values, terminated, gamma):
    """Keeps the graph of the values."""
    return rewards + gamma * (1 - terminated) * next_values - values


# --------------------------------------------------------------------------------- ch03 compute_gae

def _gae_loop(rewards, values, next_values, bootstrap_mask, trace_mask, gamma, decay, forwards=False):
    rewards, values, next_values = rewards.detach(), values.detach(), next_values.detach()
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    order = range(steps) if forwards else reversed(range(steps))
    for t in order:
        delta = rewards[t] + gamma * bootstrap_mask[t] * next_values[t] - values[t]
        last = delta + decay * trace_mask[t] * last
        advantages[t] = last
    return advantages


@wrong("compute_gae", "you bootstrap from values[t + 1]")
def compute_gae_values_shifted(rewards, values, next_values, terminated, truncated, gamma, lam):
    """The right recursion on TD errors that read the next value one row down in values."""
    following = torch.cat([values[1:], next_values[-1:]], dim=0)
    deltas = rewards + gamma * (1 - terminated) * following - values
    advantages, running = torch.zeros_like(rewards), torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * lam * (1 - torch.clamp(terminated[t] + truncated[t], max=1)) * running
        advantages[t] = running
    return advantages


@wrong("compute_gae", "the two masks are swapped")
def gae_masks_swapped(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Bootstrap cut at truncations, trace cut at terminations (a student's try: 'No known mistake')."""
    return _gae_loop(rewards, values, next_values, 1 - truncated, 1 - terminated, gamma, gamma * lam)


@wrong("compute_gae", "the rollout's last step gets no bootstrap")
def gae_no_bootstrap_at_the_rollouts_end(rewards, values, next_values, terminated, truncated, gamma, lam):
    """next_values[-1] taken as 0: the rollout's end treated as the end of the episode (the same)."""
    next_values = next_values.detach().clone()
    next_values[-1] = 0.0
    done = torch.maximum(terminated, truncated)
    return _gae_loop(rewards, values, next_values, 1 - terminated, 1 - done, gamma, gamma * lam)


@wrong("compute_gae", "bootstrap through a terminal state")
def gae_bootstraps_through_terminated(rewards, values, next_values, terminated, truncated, gamma, lam):
    """GAE bootstrapping through `terminated` (no (1 - terminated) on next_values)."""
    done = torch.maximum(terminated, truncated)
    return _gae_loop(rewards, values, next_values, torch.ones_like(rewards), 1 - done, gamma, gamma * lam)


@wrong("compute_gae", "must still bootstrap")
def gae_no_bootstrap_on_truncated(rewards, values, next_values, terminated, truncated, gamma, lam):
    """GAE not bootstrapping on `truncated`: treats a time limit like a terminal state."""
    done = torch.maximum(terminated, truncated)
    return _gae_loop(rewards, values, next_values, 1 - done, 1 - done, gamma, gamma * lam)


@wrong("compute_gae", "trace is not reset at episode ends")
def gae_trace_not_reset(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Lambda-trace not reset at episode ends."""
    return _gae_loop(rewards, values, next_values, 1 - terminated, torch.ones_like(rewards), gamma, gamma * lam)


@wrong("compute_gae", "also be cut at a truncation")
def gae_trace_cut_only_on_terminated(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Cuts the trace on terminated only, so advantages leak across a truncation."""
    return _gae_loop(rewards, values, next_values, 1 - terminated, 1 - terminated, gamma, gamma * lam)


@wrong("compute_gae", "values and next_values are swapped")
def gae_values_swapped(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Values and next_values swapped."""
    done = torch.maximum(terminated, truncated)
    return _gae_loop(rewards, next_values, values, 1 - terminated, 1 - done, gamma, gamma * lam)


@wrong("compute_gae", "loop forwards in time")
def gae_forwards(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Loops forwards: accumulates past TD errors instead of future ones."""
    done = torch.maximum(terminated, truncated)
    return _gae_loop(rewards, values, next_values, 1 - terminated, 1 - done, gamma, gamma * lam, forwards=True)


@wrong("compute_gae", "off by one step")
def gae_done_mask_off_by_one(rewards, values, next_values, terminated, truncated, gamma, lam):
    """CleanRL-style next-step done mask used with this course's convention: the trace cut is one step late."""
    rewards, values, next_values = rewards.detach(), values.detach(), next_values.detach()
    done = torch.maximum(terminated, truncated)
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        next_not_done = 1.0 - done[t + 1] if t + 1 < rewards.shape[0] else torch.ones_like(last)
        delta = rewards[t] + gamma * (1 - terminated[t]) * next_values[t] - values[t]
        last = delta + gamma * lam * next_not_done * last
        advantages[t] = last
    return advantages


@wrong("compute_gae", "you left out lam")
def gae_without_lambda(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Trace decays by gamma only."""
    done = torch.maximum(terminated, truncated)
    return _gae_loop(rewards, values, next_values, 1 - terminated, 1 - done, gamma, gamma)


@wrong("compute_gae", "your trace decays by lam alone")
def gae_trace_without_gamma(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Trace decays by lam only, gamma missing from it (the TD errors keep theirs; a student's try: 'No known
    mistake')."""
    done = torch.maximum(terminated, truncated)
    return _gae_loop(rewards, values, next_values, 1 - terminated, 1 - done, gamma, lam)


@wrong("compute_gae", "critic targets (advantages + values)")
def gae_returns_targets(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Returns advantages + values (the value targets) instead of the advantages."""
    done = torch.maximum(terminated, truncated)
    advantages = _gae_loop(rewards, values, next_values, 1 - terminated, 1 - done, gamma, gamma * lam)
    return advantages + values.detach()


@wrong("compute_gae", "advantages are constants for the losses")
def gae_not_detached(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Builds the advantages through the values' graph."""
    done = torch.maximum(terminated, truncated)
    deltas = rewards + gamma * (1 - terminated) * next_values - values
    running = torch.zeros_like(deltas[0])
    out = []
    for t in reversed(range(deltas.shape[0])):
        running = deltas[t] + gamma * lam * (1 - done[t]) * running
        out.append(running)
    return torch.stack(out[::-1])


@wrong("compute_gae", "keep the dtype of the inputs")
def gae_float32(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Allocates the output with torch.zeros(shape): float32 for float64 inputs."""
    done = torch.maximum(terminated, truncated)
    advantages = torch.zeros(rewards.shape)
    advantages[:] = _gae_loop(rewards, values, next_values, 1 - terminated, 1 - done, gamma, gamma * lam)
    return advantages


@wrong("compute_gae", "can both be True on the same step")
def gae_unclamped_done_sum(rewards, values, next_values, terminated, truncated, gamma, lam):
    """done = terminated + truncated, unclamped: when both flags are set on one step (gymnasium does that
    when the pole falls on the time-limit step, and collect_rollout stores the raw flags), done is 2 and
    (1 - done) = -1 flips the sign of the trace instead of cutting it."""
    done = terminated + truncated
    return _gae_loop(rewards, values, next_values, 1 - terminated, 1 - done, gamma, gamma * lam)


@wrong("compute_gae", "is still a terminal state")
def gae_truncation_overrides_termination(rewards, values, next_values, terminated, truncated, gamma, lam):
    """Tests `truncated` before `terminated`: a step where the pole falls on the time-limit step bootstraps
    from V(s') as if it had only been cut by the time limit."""
    rewards, values, next_values = rewards.detach(), values.detach(), next_values.detach()
    steps, num_envs = rewards.shape
    advantages = torch.zeros_like(rewards)
    for i in range(num_envs):
        last = 0.0
        for t in reversed(range(steps)):
            if truncated[t, i]:
                delta = rewards[t, i] + gamma * next_values[t, i] - values[t, i]
                last = delta
            elif terminated[t, i]:
                last = rewards[t, i] - values[t, i]
            else:
                last = rewards[t, i] + gamma * next_values[t, i] - values[t, i] + gamma * lam * last
            advantages[t, i] = last
    return advantages


@correct("compute_gae")
def gae_clamped_flag_sum(rewards, values, next_values, terminated, truncated, gamma, lam):
    done = torch.clamp(terminated + truncated, max=1)
    return _gae_loop(rewards, values, next_values, 1 - terminated, 1 - done, gamma, gamma * lam)


@correct("compute_gae")
def gae_bool_flags(rewards, values, next_values, terminated, truncated, gamma, lam):
    with torch.no_grad():
        done = terminated.bool() | truncated.bool()
        deltas = rewards + gamma * torch.where(terminated.bool(), 0.0, next_values) - values
        advantages = deltas.clone()
        for t in range(rewards.shape[0] - 2, -1, -1):
            advantages[t] += torch.where(done[t], 0.0, gamma * lam * advantages[t + 1])
    return advantages


# ---------------------------------------------------------------------------- ch03 a2c_policy_loss

@wrong("a2c_policy_loss", "don't normalise the advantages inside the loss")
def a2c_policy_loss_normalises_again(log_probs, advantages, entropy, ent_coef):
    """Normalises the advantages again, as lesson 02's section 2.5 formula does (exercise 03's third read)."""
    weights = (advantages - advantages.mean()) / (advantages.std(unbiased=False) + 1e-8)  # lesson 01's normalize
    return -(log_probs * weights.detach()).mean() - ent_coef * entropy.mean()


@wrong("a2c_policy_loss", "entropy sign flipped")
def a2c_entropy_sign_flipped(log_probs, advantages, entropy, ent_coef):
    """A2C entropy sign flipped: the bonus lowers the entropy."""
    return -(log_probs * advantages.detach()).mean() + ent_coef * entropy.mean()


@wrong("a2c_policy_loss", "the policy term has the wrong sign")
def a2c_policy_term_sign_flipped(log_probs, advantages, entropy, ent_coef):
    """Policy-gradient term with the wrong sign."""
    return (log_probs * advantages.detach()).mean() - ent_coef * entropy.mean()


@wrong("a2c_policy_loss", "the whole loss has the wrong sign")
def a2c_loss_sign_flipped(log_probs, advantages, entropy, ent_coef):
    """Loss sign flipped: returns the objective."""
    return (log_probs * advantages.detach()).mean() + ent_coef * entropy.mean()


@wrong("a2c_policy_loss", "missing .detach() on the advantages")
def a2c_without_detach(log_probs, advantages, entropy, ent_coef):
    """Missing .detach() on the advantages."""
    return -(log_probs * advantages).mean() - ent_coef * entropy.mean()


@wrong("a2c_policy_loss", "the entropy bonus is missing")
def a2c_no_entropy(log_probs, advantages, entropy, ent_coef):
    """Forgets the entropy bonus."""
    return -(log_probs * advantages.detach()).mean()


@wrong("a2c_policy_loss", "mean of the entropy")
def a2c_entropy_summed(log_probs, advantages, entropy, ent_coef):
    """Sums the entropy over the batch."""
    return -(log_probs * advantages.detach()).mean() - ent_coef * entropy.sum()


@wrong("a2c_policy_loss", "average the policy term")
def a2c_policy_term_summed(log_probs, advantages, entropy, ent_coef):
    """Sums the policy term over the batch."""
    return -(log_probs * advantages.detach()).sum() - ent_coef * entropy.mean()


@wrong("a2c_policy_loss", "don't detach the entropy")
def a2c_entropy_detached(log_probs, advantages, entropy, ent_coef):
    """Detaches the entropy: the bonus no longer pushes the policy."""
    return -(log_probs * advantages.detach()).mean() - ent_coef * entropy.detach().mean()


# --------------------------------------------------------------------- ch04 clipped_surrogate_loss

def _ppo(ratio, advantages, clip_eps):
    advantages = advantages.detach()
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages).mean()


@wrong("clipped_surrogate_loss", "from raw probabilities")
def ppo_ratio_from_probabilities(new_log_probs, old_log_probs, advantages, clip_eps):
    """Ratio from raw probabilities: exp(new) / exp(old) underflows."""
    ratio = torch.exp(new_log_probs) / torch.exp(old_log_probs)
    return _ppo(ratio, advantages, clip_eps)


@wrong("clipped_surrogate_loss", "not the quotient of the log-probs")
def ppo_ratio_of_log_probs(new_log_probs, old_log_probs, advantages, clip_eps):
    """Divides the log-probs."""
    return _ppo(new_log_probs / old_log_probs, advantages, clip_eps)


@wrong("clipped_surrogate_loss", "you forgot the exp")
def ppo_log_ratio(new_log_probs, old_log_probs, advantages, clip_eps):
    """Uses the log-ratio as the ratio."""
    return _ppo(new_log_probs - old_log_probs, advantages, clip_eps)


@wrong("clipped_surrogate_loss", "the ratio is upside down")
def ppo_ratio_inverted(new_log_probs, old_log_probs, advantages, clip_eps):
    """pi_old / pi_new."""
    return _ppo(torch.exp(old_log_probs - new_log_probs), advantages, clip_eps)


@wrong("clipped_surrogate_loss", "max instead of min")
def ppo_max_instead_of_min(new_log_probs, old_log_probs, advantages, clip_eps):
    """`max` instead of `min` in the surrogate."""
    ratio = torch.exp(new_log_probs - old_log_probs)
    return -torch.max(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages).mean()


@wrong("clipped_surrogate_loss", "clip the advantage instead of the ratio")
def ppo_clips_advantage(new_log_probs, old_log_probs, advantages, clip_eps):
    """Clipping the advantage instead of the ratio."""
    ratio = torch.exp(new_log_probs - old_log_probs)
    return -torch.min(ratio * advantages, ratio * advantages.clamp(1 - clip_eps, 1 + clip_eps)).mean()


@wrong("clipped_surrogate_loss", "loss sign flipped")
def ppo_sign_flipped(new_log_probs, old_log_probs, advantages, clip_eps):
    """Loss sign flipped: returns the objective."""
    ratio = torch.exp(new_log_probs - old_log_probs)
    return torch.min(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages).mean()


@wrong("clipped_surrogate_loss", "you never clip")
def ppo_no_clipping(new_log_probs, old_log_probs, advantages, clip_eps):
    """Plain importance-weighted policy gradient, no clipping."""
    return -(torch.exp(new_log_probs - old_log_probs) * advantages).mean()


@wrong("clipped_surrogate_loss", "the min of the two ratios")
def ppo_min_of_ratios(new_log_probs, old_log_probs, advantages, clip_eps):
    """min(r, clip(r)) * A: the min taken of the ratios before the advantage multiplies them, wrong wherever A < 0
    (a student's try: told 'you never clip' on the symmetric four-region case, issue 49)."""
    ratio = torch.exp(new_log_probs - old_log_probs)
    return -(torch.min(ratio, ratio.clamp(1 - clip_eps, 1 + clip_eps)) * advantages).mean()


@wrong("clipped_surrogate_loss", "only kept the clipped term")
def ppo_only_clipped(new_log_probs, old_log_probs, advantages, clip_eps):
    """Drops the min: only the clipped surrogate."""
    ratio = torch.exp(new_log_probs - old_log_probs)
    return -(torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages).mean()


@wrong("clipped_surrogate_loss", "not .sum()")
def clipped_surrogate_loss_summed(new_log_probs, old_log_probs, advantages, clip_eps):
    """The clipped objective summed over the batch, not averaged."""
    ratio = (new_log_probs - old_log_probs).exp()
    return -torch.min(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages).sum()


@wrong("clipped_surrogate_loss", "clipped the product ratio * advantage")
def clipped_surrogate_loss_clamps_the_product(new_log_probs, old_log_probs, advantages, clip_eps):
    """The product ratio * advantage clamped to [1 - eps, 1 + eps] instead of the ratio."""
    surrogate = (new_log_probs - old_log_probs).exp() * advantages
    return -torch.min(surrogate, surrogate.clamp(1 - clip_eps, 1 + clip_eps)).mean()


@correct("clipped_surrogate_loss")
def ppo_where(new_log_probs, old_log_probs, advantages, clip_eps):
    ratio = (new_log_probs - old_log_probs.detach()).exp()
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, min=1 - clip_eps, max=1 + clip_eps) * advantages
    return -torch.where(unclipped < clipped, unclipped, clipped).mean()


# --------------------------------------------------------------------------------- ch04 approx_kl

@wrong("approx_kl", "wrong sign of the log-ratio")
def approx_kl_wrong_sign(old_log_probs, new_log_probs):
    """KL with the wrong sign: log r = old - new."""
    log_ratio = old_log_probs - new_log_probs
    return ((log_ratio.exp() - 1) - log_ratio).mean()


@wrong("approx_kl", "your KL is negative")
def approx_kl_negated(old_log_probs, new_log_probs):
    """Negated k3."""
    log_ratio = new_log_probs - old_log_probs
    return (log_ratio - (log_ratio.exp() - 1)).mean()


@wrong("approx_kl", "k1 estimator")
def approx_kl_k1(old_log_probs, new_log_probs):
    """Naive k1 estimator."""
    return (old_log_probs - new_log_probs).mean()


@wrong("approx_kl", "the log term must be subtracted")
def approx_kl_plus_log(old_log_probs, new_log_probs):
    """(r - 1) + log r."""
    log_ratio = new_log_probs - old_log_probs
    return ((torch.exp(log_ratio) - 1) + log_ratio).mean()


@wrong("approx_kl", "from raw probabilities")
def approx_kl_ratio_of_probabilities(old_log_probs, new_log_probs):
    """r = pi_new / pi_old through the probabilities (underflows for tiny ones)."""
    ratio = new_log_probs.detach().exp() / old_log_probs.exp()
    return ((ratio - 1) - ratio.log()).mean()


@wrong("approx_kl", "k2 estimator")
def approx_kl_k2(old_log_probs, new_log_probs):
    """k2 estimator."""
    return ((new_log_probs - old_log_probs) ** 2 / 2).mean()


@correct("approx_kl")
def approx_kl_float(old_log_probs, new_log_probs):
    ratio = torch.exp(new_log_probs - old_log_probs)
    return float(torch.mean(ratio - 1 - torch.log(ratio)))


# ------------------------------------------------------------------------------ ch04 clip_fraction

@wrong("clip_fraction", "below 1 - clip_eps are clipped too")
def clip_fraction_upper_only(ratio, clip_eps):
    """Counts only ratios above 1 + eps."""
    return (ratio > 1 + clip_eps).float().mean()


@wrong("clip_fraction", "fraction INSIDE the range")
def clip_fraction_inside(ratio, clip_eps):
    """Fraction inside instead of outside."""
    return ((ratio >= 1 - clip_eps) & (ratio <= 1 + clip_eps)).float().mean()


@wrong("clip_fraction", "that is a count")
def clip_fraction_count(ratio, clip_eps):
    """Counts instead of averaging."""
    return ((ratio - 1).abs() > clip_eps).sum()


@wrong("clip_fraction", "not the ratio itself")
def clip_fraction_forgets_one(ratio, clip_eps):
    """Compares |ratio| with eps."""
    return (ratio.abs() > clip_eps).float().mean()


@wrong("clip_fraction", "Reduce it to one number")
def clip_fraction_mask(ratio, clip_eps):
    """Returns the boolean mask, not the fraction."""
    return (ratio - 1).abs() > clip_eps


@wrong("clip_fraction", "strictly outside the range")
def clip_fraction_boundary_counted(ratio, clip_eps):
    """Counts a ratio exactly on 1 +- eps as clipped."""
    return ((ratio - 1).abs() >= clip_eps).float().mean()


@correct("clip_fraction")
def clip_fraction_clamp_moved(ratio, clip_eps):
    """The ratios that torch.clamp moves."""
    return (ratio.clamp(1 - clip_eps, 1 + clip_eps) != ratio).float().mean()


@correct("clip_fraction")
def clip_fraction_two_sides(ratio, clip_eps):
    return ((ratio < 1 - clip_eps) | (ratio > 1 + clip_eps)).float().mean()


@correct("clip_fraction")
def clip_fraction_python(ratio, clip_eps):
    outside = [abs(r - 1) > clip_eps for r in ratio.tolist()]
    return sum(outside) / len(outside)


# ------------------------------------------------------------------------- ch04 explained_variance

@wrong("explained_variance", "mean squared residual is not the residual's variance")
def explained_variance_mse(values, returns):
    """1 - MSE / Var[R]: right only when the residuals average 0."""
    return float(1 - ((returns - values) ** 2).mean() / returns.var(unbiased=False))


@wrong("explained_variance", "explained variance upside down")
def explained_variance_upside_down(values, returns):
    """1 - Var[R] / Var[R - V]."""
    return float(1 - returns.var() / (returns - values).var())


@wrong("explained_variance", "UNexplained fraction")
def explained_variance_unexplained(values, returns):
    """Forgets the `1 -`."""
    return float((returns - values).var() / returns.var())


@wrong("explained_variance", "not of the values")
def explained_variance_divides_by_values(values, returns):
    """Divides by the variance of the predictions."""
    return float(1 - (returns - values).var() / values.var())


@wrong("explained_variance", "variance of the residual")
def explained_variance_ratio_of_variances(values, returns):
    """Var[V] / Var[R]."""
    return float(values.var() / returns.var())


@correct("explained_variance")
def explained_variance_tensor(values, returns):  # the sample variance on top and bottom: the factor cancels
    if torch.var(returns) == 0:
        return float("nan")
    return 1 - torch.var(returns - values) / torch.var(returns)


@wrong("explained_variance", "the returns do not vary")
def explained_variance_no_nan_rule(values, returns):
    """No guard: constant returns give -inf (or nan only by luck), not nan."""
    return 1 - torch.var(returns - values) / torch.var(returns)


@wrong("approx_kl", "detach the log-ratio")
def approx_kl_attached(old_log_probs, new_log_probs):
    """The right k3, left on the autograd graph of the new log-probs."""
    log_ratio = new_log_probs - old_log_probs
    return ((log_ratio.exp() - 1) - log_ratio).mean()


# -------------------------------------------------------------------------- ch04 minibatch_indices

@wrong("minibatch_indices", "not shuffled")
def minibatches_identity_order(batch_size, minibatch_size, generator):
    """minibatch_indices returning the identity order."""
    return list(torch.arange(batch_size).split(minibatch_size))


@wrong("minibatch_indices", "the minibatches overlap")
def minibatches_overlapping(batch_size, minibatch_size, generator):
    """Samples indices with replacement: chunks overlap and some indices are missing."""
    count = -(-batch_size // minibatch_size)
    return [torch.randint(batch_size, (min(minibatch_size, batch_size),), generator=generator) for _ in range(count)]


@wrong("minibatch_indices", "don't drop the last, smaller minibatch")
def minibatches_drop_last(batch_size, minibatch_size, generator):
    """Drops the last partial minibatch."""
    permutation = torch.randperm(batch_size, generator=generator)
    count = batch_size // minibatch_size
    return [permutation[i * minibatch_size:(i + 1) * minibatch_size] for i in range(count)]


@wrong("minibatch_indices", "rounded down")
def minibatches_floor_count(batch_size, minibatch_size, generator):
    """Makes floor(batch / mb) chunks, so chunks grow beyond minibatch_size."""
    permutation = torch.randperm(batch_size, generator=generator)
    return list(torch.chunk(permutation, max(1, batch_size // minibatch_size)))


def minibatches_floor_count_last_takes_the_rest(batch_size, minibatch_size, generator):
    """floor(batch / mb) minibatches of minibatch_size, the last one taking the indices left over (a student's try:
    told 'minibatch_size is the size of each minibatch, not the number of minibatches', issue 49). The same mistake
    as minibatches_floor_count, cut another way, so not registered a second time: test_checks.MISNAMED runs it."""
    permutation = torch.randperm(batch_size, generator=generator)
    count = max(1, batch_size // minibatch_size)
    return [permutation[i * minibatch_size:(i + 1) * minibatch_size if i < count - 1 else batch_size]
            for i in range(count)]


@wrong("minibatch_indices", "you made minibatch_size of them")
def minibatches_count_confused(batch_size, minibatch_size, generator):
    """Cuts the permutation into minibatch_size pieces."""
    return list(torch.tensor_split(torch.randperm(batch_size, generator=generator), minibatch_size))


@wrong("minibatch_indices", "not reproducible")
def minibatches_ignore_generator(batch_size, minibatch_size, generator):
    """Ignores the generator: draws from the global random state."""
    return list(torch.randperm(batch_size).split(minibatch_size))


@wrong("minibatch_indices", "the same every call")
def minibatches_reseeded(batch_size, minibatch_size, generator):
    """Re-seeds inside: the same shuffle every call."""
    fixed = torch.Generator().manual_seed(0)
    return list(torch.randperm(batch_size, generator=fixed).split(minibatch_size))


@wrong("minibatch_indices", "1-D tensor of integer indices")
def minibatches_as_lists(batch_size, minibatch_size, generator):
    """Returns Python lists instead of index tensors."""
    return [chunk.tolist() for chunk in torch.randperm(batch_size, generator=generator).split(minibatch_size)]


@wrong("minibatch_indices", "cut it into nearly equal parts")
def minibatches_split(batch_size, minibatch_size, generator):
    """The right draw, cut into pieces of minibatch_size with a smaller last one (exercise 04's third read: PPO's batch
    is its valid transitions, rarely a multiple of the minibatch size, so this cut changes the package's run)."""
    return list(torch.randperm(batch_size, generator=generator).split(minibatch_size))


@wrong("minibatch_indices", "the right draw, but its indices regrouped")
def minibatches_strided(batch_size, minibatch_size, generator):
    """The right randperm draw, cut into every n-th index instead of consecutive parts (final review of the change:
    the check called it 'not the order randperm draws', which blamed the draw)."""
    permutation = torch.randperm(batch_size, generator=generator)
    count = -(-batch_size // minibatch_size)
    return [permutation[i::count] for i in range(count)]


@correct("minibatch_indices")
def minibatches_manual_cut(batch_size, minibatch_size, generator):  # tensor_split's sizes, written by hand
    permutation = torch.randperm(batch_size, generator=generator)
    count = -(-batch_size // minibatch_size)
    base, extra = divmod(batch_size, count)
    sizes = [base + 1] * extra + [base] * (count - extra)
    return list(torch.split(permutation, sizes))


@wrong("minibatch_indices", "one randperm of batch_size from the generator")
def minibatches_argsort_of_uniforms(batch_size, minibatch_size, generator):
    """A valid, reproducible shuffle that is not randperm's draw (exercise 04's second read: it passed here and
    then failed exercise 6 with a message about the loop)."""
    order = torch.argsort(torch.rand(batch_size, generator=generator))
    return list(torch.tensor_split(order, -(-batch_size // minibatch_size)))


# ---------------------------------------------------------------------------------- ch04 ppo_epochs
# A learner's loop, written independently of the check's reference (torch.distributions, split, tensor means);
# each registered version below switches on one mistake.

def _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                        minibatch_size, target_kl, generator, slip=None):
    params = weights.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([params], lr=lr)
    size = obs.shape[0]
    if slip == "no_reshuffle":
        fixed_order = torch.randperm(size, generator=generator).split(minibatch_size)
    epoch_kls = []
    for epoch in range(update_epochs):
        if slip == "adam_per_epoch":
            optimizer = torch.optim.Adam([params], lr=lr)
        if slip == "no_reshuffle":
            chunks = fixed_order
        elif slip == "randint":
            chunks = [torch.randint(0, size, (minibatch_size,), generator=generator)
                      for _ in range(size // minibatch_size)]
        else:
            chunks = torch.randperm(size, generator=generator).split(minibatch_size)
        if slip == "half_batch":
            chunks = torch.cat(list(chunks))[: size // 2].split(minibatch_size)
        if slip == "skip_last":
            chunks = chunks[:-1]
        reference_log_probs = old_log_probs
        if slip == "old_per_epoch":
            with torch.no_grad():
                reference_log_probs = torch.distributions.Categorical(logits=obs @ params).log_prob(actions)
        kls = []
        for idx in chunks:
            dist = torch.distributions.Categorical(logits=obs[idx] @ params)
            new_lp = dist.log_prob(actions[idx])
            if slip == "old_from_current":  # the 'old' log-probs taken from the policy being trained
                reference_log_probs = torch.zeros_like(old_log_probs)
                reference_log_probs[idx] = new_lp.detach()
            log_ratio = new_lp - reference_log_probs[idx]
            if slip == "test_before_step" and target_kl is not None:
                if ((log_ratio.exp() - 1) - log_ratio).mean() > target_kl:
                    break
            ratio = log_ratio.exp()
            adv = advantages[idx]
            if slip == "normalised_per_minibatch":
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            loss = -torch.min(ratio * adv, ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv).mean()
            if slip != "no_zero_grad":
                optimizer.zero_grad()
            loss.backward()
            if slip == "grad_norm_clipped":
                torch.nn.utils.clip_grad_norm_([params], 0.5)
            optimizer.step()
            with torch.no_grad():
                if slip == "after_step":
                    log_ratio = (torch.distributions.Categorical(logits=obs[idx] @ params).log_prob(actions[idx])
                                 - reference_log_probs[idx])
                log_ratio = log_ratio.detach()
                if slip == "reversed":
                    log_ratio = -log_ratio
                kls.append(((log_ratio.exp() - 1) - log_ratio).mean())
            if slip == "stop_per_minibatch" and target_kl is not None and kls[-1] > target_kl:
                break
        epoch_kl = (kls[-1] if slip == "kl_last_minibatch" else torch.stack(kls).mean()) if kls else torch.tensor(0.0)
        if slip == "stop_before_append" and target_kl is not None and epoch_kl > target_kl:
            break
        epoch_kls.append(float(epoch_kl))
        if slip in ("test_before_step", "stop_per_minibatch") and len(kls) < len(chunks):
            break
        if slip != "no_stop" and target_kl is not None and epoch_kl > target_kl:
            break
    return params.detach(), epoch_kls


@correct("ppo_epochs")
def ppo_epochs_distributions(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                             minibatch_size, target_kl, generator):
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator)


@correct("ppo_epochs")
def ppo_epochs_while_running_sum(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                                 minibatch_size, target_kl, generator):
    """Another right loop: while, index-sorted minibatches of one randperm, log_softmax, a running KL sum, the
    stop written as 'keep going while'; the trained tensor is the input itself, returned with its grad flag."""
    weights.requires_grad_(True)
    optimizer = torch.optim.Adam([weights], lr=lr)
    count = -(-obs.shape[0] // minibatch_size)
    epoch_kls, keep_going, epoch = [], True, 0
    while keep_going and epoch < update_epochs:
        order = torch.randperm(obs.shape[0], generator=generator)
        total, steps = 0.0, 0
        for k in range(count):
            idx = order[k * minibatch_size:(k + 1) * minibatch_size]
            logp = torch.log_softmax(obs[idx] @ weights, dim=-1).gather(1, actions[idx].long()[:, None])[:, 0]
            diff = logp - old_log_probs[idx]
            objective = torch.minimum(diff.exp() * advantages[idx],
                                      torch.clamp(diff.exp(), 1 - clip_eps, 1 + clip_eps) * advantages[idx])
            optimizer.zero_grad()
            (-objective.sum() / idx.numel()).backward()
            optimizer.step()
            total += float((torch.expm1(diff.detach()) - diff.detach()).mean())
            steps += 1
        epoch_kls.append(total / steps)
        epoch += 1
        keep_going = target_kl is None or epoch_kls[-1] <= target_kl
    return weights, epoch_kls


@wrong("ppo_epochs", "standardised again in each minibatch")
def ppo_epochs_normalised_per_minibatch(weights, obs, actions, old_log_probs, advantages, clip_eps, lr,
                                        update_epochs, minibatch_size, target_kl, generator):
    """Standardises each minibatch's advantages again (a student's try: 'No known mistake')."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="normalised_per_minibatch")


@wrong("ppo_epochs", "the gradient's norm is clipped")
def ppo_epochs_grad_norm_clipped(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                                 minibatch_size, target_kl, generator):
    """Clips the gradient's norm at 0.5 before each step, as ppo.py does; the exercise asks for plain Adam steps (a
    student's try: 'No known mistake')."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="grad_norm_clipped")


@wrong("ppo_epochs", "the gradients are never zeroed")
def ppo_epochs_without_zero_grad(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                                 minibatch_size, target_kl, generator):
    """No zero_grad: gradients accumulate over the minibatches (a student's try: 'No known mistake')."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="no_zero_grad")


@wrong("ppo_epochs", "Adam is rebuilt every epoch")
def ppo_epochs_adam_per_epoch(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                              minibatch_size, target_kl, generator):
    """A new Adam at each epoch (the same)."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="adam_per_epoch")


@wrong("ppo_epochs", "the epoch's KL is its last minibatch's")
def ppo_epochs_kl_of_the_last_minibatch(weights, obs, actions, old_log_probs, advantages, clip_eps, lr,
                                        update_epochs, minibatch_size, target_kl, generator):
    """The epoch's KL taken from its last minibatch (the same)."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="kl_last_minibatch")


@wrong("ppo_epochs", "the epoch whose KL fired the early stop included")
def ppo_epochs_stops_before_recording_the_kl(weights, obs, actions, old_log_probs, advantages, clip_eps, lr,
                                             update_epochs, minibatch_size, target_kl, generator):
    """Tests the epoch's KL before appending it: the last epoch run is missing from the list (a student's try was
    told its loop ran one epoch fewer than it did)."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="stop_before_append")


@wrong("ppo_epochs", "never stops early")
def ppo_epochs_never_stops(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                           minibatch_size, target_kl, generator):
    """Ignores target_kl: always runs update_epochs epochs."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="no_stop")


@wrong("ppo_epochs", "no reshuffle per epoch")
def ppo_epochs_one_shuffle(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                           minibatch_size, target_kl, generator):
    """Shuffles once before the epochs and reuses that order in every epoch."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="no_reshuffle")


@wrong("ppo_epochs", "the KL test sits before the gradient step")
def ppo_epochs_test_before_step(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                                minibatch_size, target_kl, generator):
    """Tests each minibatch's KL before its step and stops there."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="test_before_step")


@wrong("ppo_epochs", "your KL test sits inside the minibatch loop, after each step")
def ppo_epochs_stop_per_minibatch(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                                  minibatch_size, target_kl, generator):
    """Tests each minibatch's KL against target_kl right after its step and stops there, instead of the epoch's mean
    KL after the epoch (a student's try: 'No known mistake')."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="stop_per_minibatch")


@wrong("ppo_epochs", "your ratio is always 1")
def ppo_epochs_old_from_the_current_policy(weights, obs, actions, old_log_probs, advantages, clip_eps, lr,
                                           update_epochs, minibatch_size, target_kl, generator):
    """The 'old' log-probs of each minibatch recomputed from the current policy (detached) instead of the stored
    old_log_probs: the ratio is always 1, nothing is clipped and the KL is always 0 (a student's try: 'No known
    mistake')."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="old_from_current")


@wrong("ppo_epochs", "KL of the wrong sign/direction")
def ppo_epochs_kl_reversed(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                           minibatch_size, target_kl, generator):
    """k3 of log pi_old - log pi_new (the arguments of approx_kl swapped)."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="reversed")


@wrong("ppo_epochs", "measured after the gradient step")
def ppo_epochs_kl_after_step(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                             minibatch_size, target_kl, generator):
    """Recomputes the log-probs after the step for the KL."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="after_step")


@wrong("ppo_epochs", "against the wrong policy")
def ppo_epochs_old_recomputed(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                              minibatch_size, target_kl, generator):
    """Recomputes the 'old' log-probs at the start of each epoch."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="old_per_epoch")


@wrong("ppo_epochs", "overlapping minibatches")
def ppo_epochs_randint(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                       minibatch_size, target_kl, generator):
    """Draws each minibatch with replacement (randint)."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="randint")


@wrong("ppo_epochs", "skips the last minibatch")
def ppo_epochs_skip_last(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                         minibatch_size, target_kl, generator):
    """Drops the last minibatch of every epoch."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="skip_last")


@wrong("ppo_epochs", "never took part in a gradient step")
def ppo_epochs_half_batch(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                          minibatch_size, target_kl, generator):
    """Trains on the first half of each shuffle only (a slip no named mistake plays)."""
    return _ppo_epochs_learner(weights, obs, actions, old_log_probs, advantages, clip_eps, lr, update_epochs,
                               minibatch_size, target_kl, generator, slip="half_batch")


# -------------------------------------------------------------------------- ch05 gaussian_log_prob

LOG_2PI = math.log(2 * math.pi)


@wrong("gaussian_log_prob", "the normaliser's sign is flipped")
def gaussian_log_prob_plus_log_std(mean, log_std, actions):
    """+ log_std in each dimension (a student's try: 'No known mistake')."""
    z = (actions - mean) / log_std.exp()
    return (-0.5 * z ** 2 + log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


@wrong("gaussian_log_prob", "divided by std, not by the variance")
def gaussian_log_prob_over_std(mean, log_std, actions):
    """(a - mu)^2 / sigma instead of / sigma^2 (the same)."""
    return (-0.5 * (actions - mean) ** 2 / log_std.exp() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


@wrong("gaussian_entropy", "summed over every dim")
def gaussian_entropy_sum_of_everything(log_std):
    """.sum() with no dim (the same)."""
    return (log_std + 0.5 + 0.5 * math.log(2 * math.pi)).sum()


@wrong("gaussian_log_prob", "not summed over action dims")
def gaussian_log_prob_not_summed(mean, log_std, actions):
    """Gaussian log-prob not summed over action dims."""
    return torch.distributions.Normal(mean, log_std.exp()).log_prob(actions)


@wrong("gaussian_log_prob", "don't average them")
def gaussian_log_prob_mean(mean, log_std, actions):
    """Averages over the action dims."""
    return torch.distributions.Normal(mean, log_std.exp()).log_prob(actions).mean(-1)


@wrong("gaussian_log_prob", "log_std used as std")
def gaussian_log_prob_log_std_as_std(mean, log_std, actions):
    """log_std used as std."""
    variance = log_std ** 2
    return (-(actions - mean) ** 2 / (2 * variance) - torch.log(log_std) - 0.5 * LOG_2PI).sum(-1)


@wrong("gaussian_log_prob", "missing the normaliser -log(std)")
def gaussian_log_prob_no_log_std_term(mean, log_std, actions):
    """Drops the -log(sigma) term."""
    z = (actions - mean) / torch.exp(log_std)
    return (-0.5 * z ** 2 - 0.5 * LOG_2PI).sum(-1)


@wrong("gaussian_log_prob", "missing the constant -0.5 * log(2 pi)")
def gaussian_log_prob_no_constant(mean, log_std, actions):
    """Drops the normalising constant."""
    z = (actions - mean) / torch.exp(log_std)
    return (-0.5 * z ** 2 - log_std).sum(-1)


@wrong("gaussian_log_prob", "divided (actions - mean) by the variance")
def gaussian_log_prob_divides_by_variance(mean, log_std, actions):
    """Standardises with the variance."""
    z = (actions - mean) / torch.exp(2 * log_std)
    return (-0.5 * z ** 2 - log_std - 0.5 * LOG_2PI).sum(-1)


@wrong("gaussian_log_prob", "negative log-likelihood")
def gaussian_log_prob_negative(mean, log_std, actions):
    """Returns the NLL."""
    return -torch.distributions.Normal(mean, log_std.exp()).log_prob(actions).sum(-1)


@wrong("gaussian_log_prob", "one number for the whole batch")
def gaussian_log_prob_summed_over_the_batch(mean, log_std, actions):
    """.sum() with no dim: the per-dimension log-densities of every row added into one number (a student's try:
    'No known mistake'; the same slip is named in gaussian_entropy's and kl_k1's checks)."""
    z = (actions - mean) / log_std.exp()
    return (-0.5 * z ** 2 - log_std - 0.5 * LOG_2PI).sum()


@correct("gaussian_log_prob")
def gaussian_log_prob_distribution(mean, log_std, actions):
    return torch.distributions.Normal(mean, torch.exp(log_std)).log_prob(actions).sum(dim=-1)


# --------------------------------------------------------------------------- ch05 gaussian_entropy

@wrong("gaussian_entropy", "gaussian entropy not summed")
def gaussian_entropy_not_summed(log_std):
    """Gaussian entropy not summed over the action dims."""
    return log_std + 0.5 * math.log(2 * math.pi * math.e)


@wrong("gaussian_entropy", "summed over the first dim")
def gaussian_entropy_wrong_dim(log_std):
    """Sums over dim 0."""
    return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(dim=0)


@wrong("gaussian_entropy", "don't average them")
def gaussian_entropy_mean(log_std):
    """Averages over the action dims."""
    return (log_std + 0.5 * math.log(2 * math.pi * math.e)).mean(dim=-1)


@wrong("gaussian_entropy", "missing the constant 0.5 * log(2 pi e)")
def gaussian_entropy_no_constant(log_std):
    """Drops the constant."""
    return log_std.sum(dim=-1)


@wrong("gaussian_entropy", "left out the 0.5 from e")
def gaussian_entropy_missing_half(log_std):
    """0.5 log(2 pi) instead of 0.5 log(2 pi e)."""
    return (log_std + 0.5 * math.log(2 * math.pi)).sum(dim=-1)


@wrong("gaussian_entropy", "added the constant once per row")
def gaussian_entropy_constant_once(log_std):
    """sum(log_std) + 0.5 log(2 pi e): the constant added once instead of once per dimension (a student's try: 'No
    known mistake')."""
    return log_std.sum(dim=-1) + 0.5 * math.log(2 * math.pi * math.e)


@wrong("gaussian_entropy", "twice log_std")
def gaussian_entropy_two_log_std(log_std):
    """2 log sigma per dimension (the log of the variance) instead of log sigma (a student's try: 'No known
    mistake')."""
    return (2 * log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(dim=-1)


@wrong("gaussian_entropy", "not on std = exp(log_std)")
def gaussian_entropy_uses_std(log_std):
    """Uses sigma where log sigma belongs."""
    return (torch.exp(log_std) + 0.5 * math.log(2 * math.pi * math.e)).sum(dim=-1)


@correct("gaussian_entropy")
def gaussian_entropy_distribution(log_std):
    return torch.distributions.Normal(torch.zeros_like(log_std), log_std.exp()).entropy().sum(-1)


# -------------------------------------------------------------------------------- ch05 env_action

@wrong("env_action", "you clip `actions` in place")
def env_action_in_place(actions, low, high):
    """env_action clipping in place: the stored action changes too."""
    return actions.clamp_(low, high)


@wrong("env_action", "unclipped")
def env_action_unclipped(actions, low, high):
    """Forgets to clip."""
    return actions.clone()


@wrong("env_action", "not [-1, 1]")
def env_action_unit_box(actions, low, high):
    """Clips to [-1, 1] whatever the bounds."""
    return torch.clamp(actions, -1.0, 1.0)


@wrong("env_action", "only applied the upper bound")
def env_action_upper_only(actions, low, high):
    """Clips only from above."""
    return torch.where(actions > high, high, actions)


@wrong("env_action", "clip, don't squash")
def env_action_tanh(actions, low, high):
    """Squashes with tanh into the box."""
    return low + (high - low) * (torch.tanh(actions) + 1) / 2


@correct("env_action")
def env_action_min_max(actions, low, high):
    return torch.max(torch.min(actions, high), low)


# ------------------------------------------------------------------------- ch05 squashed_log_prob

def _normal_log_prob_sum(mean, log_std, x):
    return torch.distributions.Normal(mean, log_std.exp()).log_prob(x).sum(-1)


@correct("squashed_log_prob")
def squashed_log_prob_plain_eps(mean, log_std, u, high):
    """The plain correction log(1 - tanh^2 + eps), eps = 1e-6 (CleanRL's SAC form), and log(high) apart."""
    correction = torch.log(1 - torch.tanh(u).pow(2) + 1e-6) + torch.log(high)
    return _normal_log_prob_sum(mean, log_std, u) - correction.sum(-1)


@correct("squashed_log_prob")
def squashed_log_prob_transformed_distribution(mean, log_std, u, high):
    """torch's own change of variables: Normal -> TanhTransform -> scale by high."""
    from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform(), AffineTransform(0.0, high)])
    return dist.log_prob(high * torch.tanh(u)).sum(-1)


@correct("squashed_log_prob")
def squashed_log_prob_stable(mean, log_std, u, high):
    """The exact, stable form 2 (log 2 - u - softplus(-2u))."""
    log_slope = 2 * (math.log(2) - u - torch.nn.functional.softplus(-2 * u)) + high.log()
    return _normal_log_prob_sum(mean, log_std, u) - log_slope.sum(dim=-1)


@wrong("squashed_log_prob", "change of variables is missing")
def squashed_log_prob_no_jacobian(mean, log_std, u, high):
    """Forgets the Jacobian: the Gaussian log-density of u alone."""
    return _normal_log_prob_sum(mean, log_std, u)


@wrong("squashed_log_prob", "log-determinant has the wrong sign")
def squashed_log_prob_plus_jacobian(mean, log_std, u, high):
    """Adds the log-determinant instead of subtracting it."""
    correction = torch.log(1 - torch.tanh(u) ** 2 + 1e-6) + torch.log(high)
    return _normal_log_prob_sum(mean, log_std, u) + correction.sum(-1)


@wrong("squashed_log_prob", "not summed over action dims")
def squashed_log_prob_per_dim(mean, log_std, u, high):
    """Keeps the per-dimension terms, [B, D]."""
    per_dim = torch.distributions.Normal(mean, log_std.exp()).log_prob(u)
    return per_dim - torch.log(high * (1 - torch.tanh(u) ** 2) + 1e-6)


@wrong("squashed_log_prob", "log_std used as std in the Gaussian part")
def squashed_log_prob_log_std_as_std(mean, log_std, u, high):
    """Divides by log_std as if it were the standard deviation."""
    correction = torch.log(1 - torch.tanh(u) ** 2 + 1e-6) + torch.log(high)
    gaussian = -0.5 * ((u - mean) / log_std) ** 2 - torch.log(log_std) - 0.5 * math.log(2 * math.pi)
    return gaussian.sum(-1) - correction.sum(-1)


@wrong("squashed_log_prob", "the scale of the squash is missing")
def squashed_log_prob_no_scale(mean, log_std, u, high):
    """Corrects for tanh but not for the scaling by high."""
    return _normal_log_prob_sum(mean, log_std, u) - torch.log(1 - torch.tanh(u) ** 2 + 1e-6).sum(-1)


@wrong("squashed_log_prob", "taken at the squashed action")
def squashed_log_prob_density_of_a(mean, log_std, u, high):
    """Evaluates the Gaussian at a = high * tanh(u) instead of u."""
    a = high * torch.tanh(u)
    return _normal_log_prob_sum(mean, log_std, a) - torch.log(high * (1 - torch.tanh(u) ** 2)).sum(-1)


# ---------------------------------------------------------------------- ch05 gaussian_policy_head

@correct("gaussian_policy_head")
def gaussian_policy_head_distributions(obs, mean_weight, mean_bias, log_std, actions):
    """torch.nn.functional.linear and torch.distributions.Normal."""
    mean = torch.nn.functional.linear(obs, mean_weight, mean_bias)
    dist = torch.distributions.Normal(mean, log_std.exp().expand_as(mean))
    return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)


@correct("gaussian_policy_head")
def gaussian_policy_head_by_hand(obs, mean_weight, mean_bias, log_std, actions):
    """The formulas written out; the entropy built once and repeated for the batch."""
    mean = obs @ mean_weight.t() + mean_bias
    z = (actions - mean) * torch.exp(-log_std)
    log_probs = (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    entropy = (0.5 * math.log(2 * math.pi * math.e) + log_std).sum()
    return log_probs, entropy.repeat(obs.shape[0])


@wrong("gaussian_policy_head", "log-probs not summed over action dims")
def gaussian_policy_head_not_summed(obs, mean_weight, mean_bias, log_std, actions):
    """Returns the per-dimension log-densities."""
    mean = obs @ mean_weight.T + mean_bias
    dist = torch.distributions.Normal(mean, log_std.exp())
    return dist.log_prob(actions), dist.entropy().sum(-1)


@wrong("gaussian_policy_head", "log_std used as std in the log-probs")
def gaussian_policy_head_log_std_as_std(obs, mean_weight, mean_bias, log_std, actions):
    """Uses log_std as the scale."""
    mean = obs @ mean_weight.T + mean_bias
    log_probs = (-0.5 * ((actions - mean) / log_std) ** 2 - log_std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    return log_probs, (log_std + 0.5 + 0.5 * math.log(2 * math.pi)).sum(-1).expand(obs.shape[0])


@wrong("gaussian_policy_head", "bias is missing")
def gaussian_policy_head_no_bias(obs, mean_weight, mean_bias, log_std, actions):
    """Forgets the mean layer's bias."""
    mean = obs @ mean_weight.T
    dist = torch.distributions.Normal(mean, log_std.exp().expand_as(mean))
    return dist.log_prob(actions).sum(-1), dist.entropy().sum(-1)


@wrong("gaussian_policy_head", "one number per row, shape [B]")
def gaussian_policy_head_scalar_entropy(obs, mean_weight, mean_bias, log_std, actions):
    """Returns the entropy of the distribution once, a scalar, not one per row."""
    mean = obs @ mean_weight.T + mean_bias
    log_probs = torch.distributions.Normal(mean, log_std.exp()).log_prob(actions).sum(-1)
    return log_probs, (log_std + 0.5 + 0.5 * math.log(2 * math.pi)).sum()


@wrong("gaussian_policy_head", "log_std used as std in the entropy")
def gaussian_policy_head_entropy_of_std(obs, mean_weight, mean_bias, log_std, actions):
    """The entropy formula with std in place of log std."""
    mean = obs @ mean_weight.T + mean_bias
    log_probs = torch.distributions.Normal(mean, log_std.exp()).log_prob(actions).sum(-1)
    entropy = (log_std.exp() + 0.5 + 0.5 * math.log(2 * math.pi)).sum()
    return log_probs, entropy.expand(obs.shape[0])


@wrong("gaussian_policy_head", "expected a pair (log_probs, entropy)")
def gaussian_policy_head_log_probs_only(obs, mean_weight, mean_bias, log_std, actions):
    """Returns the log-probs alone."""
    mean = obs @ mean_weight.T + mean_bias
    return torch.distributions.Normal(mean, log_std.exp()).log_prob(actions).sum(-1)


# ------------------------------------------------------------------------------ ch00 play_episode

@wrong("play_episode", "stop when terminated OR truncated")
def play_episode_ignores_truncation(env, policy, seed):
    """Loops until terminated only: on Pendulum it would run forever (the check stops it)."""
    obs, _ = env.reset(seed=seed)
    episode_return, length, terminated, truncated = 0.0, 0, False, False
    while not terminated:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        episode_return += float(reward)
        length += 1
    return episode_return, length, terminated, truncated


@wrong("play_episode", "must start from the seeded state")
def play_episode_unseeded(env, policy, seed):
    """Forgets to pass the seed to reset."""
    obs, _ = env.reset()
    episode_return, length = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        episode_return += float(reward)
        length += 1
        if terminated or truncated:
            return episode_return, length, terminated, truncated


@wrong("play_episode", "it plays the episode of seed 42")
def play_episode_fixed_seed(env, policy, seed):
    """Resets with a seed of its own (42), whatever the `seed` argument (a student's try: the headline said the
    episode differs beside the reference's own numbers)."""
    obs, _ = env.reset(seed=42)
    episode_return, length = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        episode_return += float(reward)
        length += 1
        if terminated or truncated:
            return episode_return, length, bool(terminated), bool(truncated)


@wrong("play_episode", "sum every reward, the last one included")
def play_episode_drops_last_reward(env, policy, seed):
    """Breaks out of the loop before adding the last reward."""
    obs, _ = env.reset(seed=seed)
    episode_return, length = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        length += 1
        if terminated or truncated:
            return episode_return, length, terminated, truncated
        episode_return += float(reward)


@wrong("play_episode", "you counted more steps than env.step calls")
def play_episode_one_step_too_many(env, policy, seed):
    """Starts the count at 1 and adds one per step: one step too many (a student's try: told 'count every step, the
    last one included', the fix for one too few, issue 49)."""
    obs, _ = env.reset(seed=seed)
    episode_return, length = 0.0, 1
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        episode_return += float(reward)
        length += 1
        if terminated or truncated:
            return episode_return, length, terminated, truncated


@wrong("play_episode", "return (episode_return, length, terminated, truncated)")
def play_episode_returns_only_the_return(env, policy, seed):
    """Returns the episode return alone."""
    obs, _ = env.reset(seed=seed)
    episode_return, done = 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        episode_return += float(reward)
        done = terminated or truncated
    return episode_return


@wrong("play_episode", "must be finite numbers")
def play_episode_nan_return(env, policy, seed):
    """Never sums the rewards: returns NaN (a comparison with NaN is always False, so a check that tests
    `abs(received - expected) > tol` lets it through)."""
    obs, _ = env.reset(seed=seed)
    length = 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        length += 1
        if terminated or truncated:
            return float("nan"), length, bool(terminated), bool(truncated)


@wrong("play_episode", "flags of the last step")
def play_episode_merges_flags(env, policy, seed):
    """Reports every end as a termination."""
    obs, _ = env.reset(seed=seed)
    episode_return, length = 0.0, 0
    while True:
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        episode_return += float(reward)
        length += 1
        if terminated or truncated:
            return episode_return, length, True, False


# -------------------------------------------------------------------------- ch01 action_log_probs

@wrong("action_log_probs", "you return probabilities")
def action_log_probs_probabilities(logits, actions):
    """Returns probabilities instead of log-probabilities."""
    return torch.softmax(logits, dim=-1)[torch.arange(len(actions)), actions]


@wrong("action_log_probs", "the logits are not log-probabilities")
def action_log_probs_raw_logits(logits, actions):
    """Picks the raw logit of the action."""
    return logits[torch.arange(len(actions)), actions]


@wrong("action_log_probs", "not over the batch (dim=0)")
def action_log_probs_wrong_dim(logits, actions):
    """Normalises over the batch."""
    return torch.log_softmax(logits, dim=0)[torch.arange(len(actions)), actions]


@wrong("action_log_probs", "underflows to log(0)")
def action_log_probs_log_of_softmax(logits, actions):
    """log(softmax): -inf for a confident policy."""
    return torch.log(torch.softmax(logits, dim=-1))[torch.arange(len(actions)), actions]


@wrong("action_log_probs", "keep its gradient")
def action_log_probs_detached(logits, actions):
    """Detaches the result."""
    return torch.log_softmax(logits.detach(), dim=-1)[torch.arange(len(actions)), actions]


@correct("action_log_probs")
def action_log_probs_categorical(logits, actions):
    return torch.distributions.Categorical(logits=logits).log_prob(actions)


# ----------------------------------------------------------------------------- ch07 TRPO

@wrong("categorical_kl", "measured the wrong way round")
def categorical_kl_reversed(old_logits, new_logits):
    """KL(pi_new || pi_old): weighs the log-ratio by the new policy's probabilities."""
    new_p = torch.softmax(new_logits, dim=-1)
    return (new_p * (torch.log_softmax(new_logits, dim=-1) - torch.log_softmax(old_logits, dim=-1))).sum(dim=-1)


@wrong("categorical_kl", "not weighted by the old policy's probabilities")
def categorical_kl_unweighted(old_logits, new_logits):
    """Sums the log-ratio over actions without weighting it by p_old."""
    return (torch.log_softmax(old_logits, dim=-1) - torch.log_softmax(new_logits, dim=-1)).sum(dim=-1)


@wrong("categorical_kl", "as if they were log-probabilities")
def categorical_kl_raw_logits(old_logits, new_logits):
    """Treats the logits as log-probabilities (no softmax)."""
    return (torch.exp(old_logits) * (old_logits - new_logits)).sum(dim=-1)


@wrong("categorical_kl", "one number for the whole batch")
def categorical_kl_batch_mean(old_logits, new_logits):
    """Averages over the states: a scalar instead of one KL per state."""
    old_log_p = torch.log_softmax(old_logits, dim=-1)
    return (old_log_p.exp() * (old_log_p - torch.log_softmax(new_logits, dim=-1))).sum(dim=-1).mean()


@wrong("categorical_kl", "the KL must stay connected to new_logits")
def categorical_kl_detached(old_logits, new_logits):
    """Detaches the new logits: the right values, but no gradient (TRPO's Fisher-vector products need two)."""
    old_p = torch.softmax(old_logits, dim=-1)
    return (old_p * (torch.log_softmax(old_logits, dim=-1) - torch.log_softmax(new_logits.detach(), dim=-1))).sum(-1)


@correct("categorical_kl")
def categorical_kl_distributions(old_logits, new_logits):
    return torch.distributions.kl_divergence(torch.distributions.Categorical(logits=old_logits),
                                             torch.distributions.Categorical(logits=new_logits))


def _hessian_vector(kl_grad, parameters, vector, retain_graph=True):
    grads = torch.autograd.grad((kl_grad * vector).sum(), list(parameters), retain_graph=retain_graph,
                                allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, parameters)])


@wrong("fisher_vector_product", "the damping is missing")
def fisher_vector_product_no_damping(kl_grad, parameters, vector, damping):
    """F v without the damping term."""
    return _hessian_vector(kl_grad, parameters, vector)


@wrong("fisher_vector_product", "the damping multiplies F v")
def fisher_vector_product_damping_scales(kl_grad, parameters, vector, damping):
    """(1 + damping) F v: the damping scales the product instead of adding damping * v."""
    return (1 + damping) * _hessian_vector(kl_grad, parameters, vector)


@wrong("fisher_vector_product", "the graph was freed by the first")
def fisher_vector_product_frees_graph(kl_grad, parameters, vector, damping):
    """Differentiates without retain_graph: the second call on the same kl_grad crashes."""
    return _hessian_vector(kl_grad, parameters, vector, retain_graph=False) + damping * vector


@wrong("fisher_vector_product", "this is the KL's gradient itself")
def fisher_vector_product_returns_kl_grad(kl_grad, parameters, vector, damping):
    """Returns the KL's gradient (zero at theta_old) instead of differentiating it again."""
    return kl_grad.detach().clone()


@wrong("fisher_vector_product", "damping was added to every entry")
def fisher_vector_product_scalar_damping(kl_grad, parameters, vector, damping):
    """Adds the damping as a scalar to every entry, not damping * v."""
    return _hessian_vector(kl_grad, parameters, vector) + damping


@wrong("conjugate_gradient", "that is steepest descent")
def conjugate_gradient_steepest(matrix_vector_product, b, iterations=10, residual_tol=1e-10):
    """Searches along the residual every time: steepest descent, not conjugate directions."""
    x, r = torch.zeros_like(b), b.clone()
    for _ in range(iterations):
        rr = torch.dot(r, r)
        if rr < residual_tol:
            break
        Ar = matrix_vector_product(r)
        alpha = rr / torch.dot(r, Ar)
        x, r = x + alpha * r, r - alpha * Ar
    return x


@wrong("conjugate_gradient", "an off-by-one in its bound")
def conjugate_gradient_one_iteration_short(matrix_vector_product, b, iterations=10, residual_tol=1e-10):
    """range(iterations - 1): one product short (a student's try got 'No known mistake')."""
    x, r, p = torch.zeros_like(b), b.clone(), b.clone()
    rr = torch.dot(r, r)
    for _ in range(iterations - 1):
        if rr < residual_tol:
            break
        Ap = matrix_vector_product(p)
        alpha = rr / torch.dot(p, Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


@wrong("conjugate_gradient", "beta is upside down")
def conjugate_gradient_inverted_beta(matrix_vector_product, b, iterations=10, residual_tol=1e-10):
    """beta = old r.r / new r.r instead of new over old."""
    x, r, p = torch.zeros_like(b), b.clone(), b.clone()
    rr = torch.dot(r, r)
    for _ in range(iterations):
        if rr < residual_tol:
            break
        Ap = matrix_vector_product(p)
        alpha = rr / torch.dot(p, Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr / rr_new) * p
        rr = rr_new
    return x


@wrong("conjugate_gradient", "not recomputed as b - A x")
def conjugate_gradient_recomputes_residual(matrix_vector_product, b, iterations=10, residual_tol=1e-10):
    """Recomputes the residual as b - A x every iteration: two products per iteration."""
    x, r, p = torch.zeros_like(b), b.clone(), b.clone()
    rr = torch.dot(r, r)
    for _ in range(iterations):
        if rr < residual_tol:
            break
        alpha = rr / torch.dot(p, matrix_vector_product(p))
        x = x + alpha * p
        r = b - matrix_vector_product(x)
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


@wrong("conjugate_gradient", "check it before each product, not once before the loop")
def conjugate_gradient_no_stop_check(matrix_vector_product, b, iterations=10, residual_tol=1e-10):
    """Never checks the residual before a product (and divides 0 by 0 for b = 0)."""
    x, r, p = torch.zeros_like(b), b.clone(), b.clone()
    rr = torch.dot(r, r)
    for _ in range(iterations):
        Ap = matrix_vector_product(p)
        alpha = rr / torch.dot(p, Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return torch.nan_to_num(x)


def _cg(matrix_vector_product, b, iterations, residual_tol, r):
    """Conjugate gradient from the residual ``r`` (b itself, or a copy of it): r is updated in place."""
    x, p = torch.zeros_like(b), r.clone()
    rr = torch.dot(r, r)
    for _ in range(iterations):
        if rr < residual_tol:
            break
        Ap = matrix_vector_product(p)
        alpha = rr / torch.dot(p, Ap)
        x = x + alpha * p
        r -= alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


@wrong("conjugate_gradient", "your x is exactly minus the solution's iterate")
def conjugate_gradient_steps_backwards(matrix_vector_product, b, iterations=10, residual_tol=1e-10):
    """x -= alpha * p: the step taken backwards along the direction, the residual updated as it should be, so every
    x is exactly -expected (a student's try: 'No known mistake')."""
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), torch.dot(r, r)
    for _ in range(iterations):
        if rr < residual_tol:
            break
        Ap = matrix_vector_product(p)
        alpha = rr / torch.dot(p, Ap)
        x -= alpha * p
        r = r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


@wrong("conjugate_gradient", "x is right, but b came back changed")
def conjugate_gradient_residual_is_b(matrix_vector_product, b, iterations=10, residual_tol=1e-10):
    """r = b, then r -= alpha * Ap: the residual is the caller's b, zeroed in place (x is right)."""
    return _cg(matrix_vector_product, b, iterations, residual_tol, r=b)


@correct("conjugate_gradient")
def conjugate_gradient_residual_cloned(matrix_vector_product, b, iterations=10, residual_tol=1e-10):
    """r = b.clone(), then r -= alpha * Ap in place: only the copy changes."""
    return _cg(matrix_vector_product, b, iterations, residual_tol, r=b.clone())


@wrong("fisher_vector_product", "your function changed its input `vector` in place")
def fisher_vector_product_damps_vector_in_place(kl_grad, parameters, vector, damping):
    """Hv + damping * v with v scaled in place (vector *= damping), the product taken first: right result, the
    caller's search direction changed."""
    product = _hessian_vector(kl_grad, parameters, vector)
    vector *= damping
    return product + vector


@wrong("line_search", "the line search never shrinks")
def line_search_full_step_only(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5,
                               accept_ratio=0.1):
    """Retries the full step every time instead of shrinking it."""
    for _ in range(max_backtracks):
        improvement, kl = evaluate(1.0)
        if kl <= max_kl and improvement > accept_ratio * expected_improvement:
            return 1.0
    return 0.0


@wrong("line_search", "the KL was not checked")
def line_search_no_kl(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    """Accepts on the improvement alone: the trust region is never enforced."""
    for tried in range(max_backtracks):
        fraction = shrink ** tried
        improvement, _ = evaluate(fraction)
        if improvement > accept_ratio * expected_improvement * fraction:
            return fraction
    return 0.0


@wrong("line_search", "compare the real improvement with accept_ratio")
def line_search_any_improvement(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5,
                                accept_ratio=0.1):
    """Accepts any positive improvement, however far below the linear prediction."""
    for tried in range(max_backtracks):
        fraction = shrink ** tried
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > 0:
            return fraction
    return 0.0


@wrong("line_search", "must count as a rejection")
def line_search_nan_passes(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    """Tests for rejection, so a NaN KL (every comparison False) is accepted."""
    for tried in range(max_backtracks):
        fraction = shrink ** tried
        improvement, kl = evaluate(fraction)
        if kl > max_kl or improvement <= accept_ratio * expected_improvement * fraction:
            continue
        return fraction
    return 0.0


@wrong("line_search", "not scaled by the fraction tried")
def line_search_unscaled_ratio(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5,
                               accept_ratio=0.1):
    """Compares the improvement with accept_ratio x the FULL step's prediction (no x fraction)."""
    for tried in range(max_backtracks):
        fraction = shrink ** tried
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > accept_ratio * expected_improvement:
            return fraction
    return 0.0


@wrong("line_search", "you returned the improvement the linear model predicts")
def line_search_returns_predicted_improvement(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5,
                                              accept_ratio=0.1):
    """Returns fraction x expected_improvement instead of the fraction."""
    for tried in range(max_backtracks):
        fraction = shrink ** tried
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > accept_ratio * expected_improvement * fraction:
            return fraction * expected_improvement
    return 0.0


@wrong("line_search", "you returned the index of the accepted try")
def line_search_returns_the_index(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5,
                                  accept_ratio=0.1):
    """Returns the loop counter k of the accepted try instead of the fraction shrink^k (a student's try: told the
    failing search 'tests the KL limit')."""
    for k in range(max_backtracks):
        fraction = shrink ** k
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > accept_ratio * expected_improvement * fraction:
            return k
    return 0.0


@wrong("line_search", "one try short")
def line_search_one_try_short(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    """Off by one: tries only max_backtracks - 1 fractions."""
    fraction = 1.0
    for _ in range(max_backtracks - 1):
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > accept_ratio * expected_improvement * fraction:
            return fraction
        fraction *= shrink
    return 0.0


@correct("line_search")
def line_search_float32_tensor(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5,
                               accept_ratio=0.1):
    fraction = 1.0
    for _ in range(max_backtracks):
        improvement, kl = evaluate(fraction)
        if kl <= max_kl and improvement > accept_ratio * expected_improvement * fraction:
            return torch.tensor(fraction)  # a 0-d float32 tensor: a real number, rounded to float32
        fraction *= shrink
    return torch.tensor(0.0)


@correct("line_search")
def line_search_while_loop(evaluate, expected_improvement, max_kl, max_backtracks=10, shrink=0.5, accept_ratio=0.1):
    fraction, tries = 1.0, 0
    while tries < max_backtracks:
        improvement, kl = evaluate(fraction)
        tries += 1
        if kl <= max_kl and improvement > accept_ratio * expected_improvement * fraction:
            return fraction
        fraction *= shrink
    return 0.0


# -- chapter 08: policy gradients for language models -------------------------------------------------------------

def _picked_log_probs(logits, tokens):
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)


@wrong("sequence_log_probs", "the padding is not masked")
def sequence_log_probs_unmasked(logits, tokens, mask):
    """Sums every position, the padding's garbage included."""
    return _picked_log_probs(logits, tokens).sum(dim=1)


@wrong("sequence_log_probs", "a mean over the tokens instead of a sum")
def sequence_log_probs_mean(logits, tokens, mask):
    """Averages over the real tokens: a long response looks as likely as a short one."""
    rows = []
    for per_token, row_mask in zip(_picked_log_probs(logits, tokens), mask.float()):
        rows.append((per_token * row_mask).sum() / row_mask.sum())
    return torch.stack(rows)


@wrong("sequence_log_probs", "as if they were log-probabilities")
def sequence_log_probs_raw_logits(logits, tokens, mask):
    """Picks the raw logits, never normalised over the vocabulary."""
    return (logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) * mask).sum(-1)


@wrong("sequence_log_probs", "log(softmax(...)) underflows")
def sequence_log_probs_log_of_softmax(logits, tokens, mask):
    """Takes the log of the softmax: a tiny probability rounds to 0 and its log is -inf."""
    probs = torch.softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    return (torch.log(probs) * mask).sum(-1)


@wrong("sequence_log_probs", "shifted by one position again")
def sequence_log_probs_shifted(logits, tokens, mask):
    """Shifts the logits by one, as if they were not already aligned with the tokens."""
    return (_picked_log_probs(logits[:, :-1], tokens[:, 1:]) * mask[:, 1:]).sum(-1)


@wrong("sequence_log_probs", "the end mark (the last real token) is left out")
def sequence_log_probs_without_end_mark(logits, tokens, mask):
    """Stops one token short: the end-of-sequence token's log-prob is not summed."""
    rows = []
    for per_token, row_mask in zip(_picked_log_probs(logits, tokens), mask.float()):
        n = int(row_mask.sum())
        rows.append(per_token[:max(n - 1, 0)].sum())
    return torch.stack(rows)


@wrong("sequence_log_probs", "one number for the whole batch")
def sequence_log_probs_summed_over_the_batch(logits, tokens, mask):
    """Masked log-probs summed with no dim: one number for the batch (a student's try: 'No known mistake')."""
    return (_picked_log_probs(logits, tokens) * mask).sum()


@correct("sequence_log_probs")
def sequence_log_probs_categorical(logits, tokens, mask):
    per_token = torch.distributions.Categorical(logits=logits).log_prob(tokens)
    return torch.where(mask.bool(), per_token, torch.zeros_like(per_token)).sum(-1)


@wrong("kl_k1", "k1's sign is flipped")
def kl_k1_flipped(log_probs, ref_log_probs):
    """The reference's log-prob minus the policy's."""
    return ref_log_probs - log_probs


@wrong("kl_k1", "the absolute value of the log-ratio is not k1")
def kl_k1_absolute(log_probs, ref_log_probs):
    """Makes every token's estimate non-negative with abs."""
    return torch.abs(log_probs - ref_log_probs)


@wrong("kl_k1", "that is the k3 estimator")
def kl_k1_is_k3(log_probs, ref_log_probs):
    """Computes k3 instead."""
    ratio = torch.exp(ref_log_probs - log_probs)
    return ratio - 1 - torch.log(ratio)


@wrong("kl_k3", "the -1 is missing")
def kl_k3_without_the_minus_one(log_probs, ref_log_probs):
    """r - log r (a student's try: 'No known mistake')."""
    log_ratio = ref_log_probs - log_probs
    return log_ratio.exp() - log_ratio


@wrong("kl_k3", "the ratio is upside down")
def kl_k3_upside_down(log_probs, ref_log_probs):
    """r = pi_theta / pi_ref instead of pi_ref / pi_theta."""
    ratio = torch.exp(log_probs - ref_log_probs)
    return (ratio - 1) - torch.log(ratio)


@wrong("kl_k3", "the k2 estimator")
def kl_k3_is_k2(log_probs, ref_log_probs):
    """Half the squared log-ratio."""
    return (log_probs - ref_log_probs) ** 2 / 2


@wrong("kl_k3", "the log term is added")
def kl_k3_plus_log(log_probs, ref_log_probs):
    """(r - 1) + log r."""
    ratio = torch.exp(ref_log_probs - log_probs)
    return (ratio - 1) + torch.log(ratio)


@wrong("kl_k3", "the leash only pulls if the gradient flows")
def kl_k3_detached(log_probs, ref_log_probs):
    """Detaches the policy's log-probs: right values, no gradient."""
    log_ratio = ref_log_probs - log_probs.detach()
    return torch.exp(log_ratio) - 1 - log_ratio


@correct("kl_k3")
def kl_k3_with_exp(log_probs, ref_log_probs):
    ratio = torch.exp(ref_log_probs - log_probs)
    return ratio - 1 - torch.log(ratio)


@wrong("group_relative_advantages", "the batch's mean (and std) instead of the group's")
def group_advantages_whole_batch(rewards, eps=1e-6, scale=True):
    """Normalises over the whole batch."""
    centred = rewards - rewards.mean()
    return centred / (rewards.std() + eps) if scale else centred


@wrong("group_relative_advantages", "all P x G rewards at once")
def group_advantages_whole_batch_always_scaled(rewards, eps=1e-6, scale=True):
    """Standardises the whole batch at once, and divides whatever scale says (a student's try: 'No known mistake';
    grpo_update's check names the whole-batch standardisation)."""
    return (rewards - rewards.mean()) / (rewards.std() + eps)


@wrong("group_relative_advantages", "without eps")
def group_advantages_no_eps(rewards, eps=1e-6, scale=True):
    """Divides by the std alone: an all-equal group gives 0 / 0 = NaN."""
    rows = [row - row.mean() for row in rewards]
    if scale:
        rows = [centred / row.std() for centred, row in zip(rows, rewards)]
    return torch.stack(rows)


@wrong("group_relative_advantages", "the eps argument is ignored")
def group_advantages_hard_coded_eps(rewards, eps=1e-6, scale=True):
    """Adds a constant 1e-8 to the std, whatever eps is passed."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / (rewards.std(dim=1, keepdim=True) + 1e-8) if scale else centred


@wrong("group_relative_advantages", "you only centred the rewards")
def group_advantages_never_scaled(rewards, eps=1e-6, scale=True):
    """Ignores scale=True."""
    return rewards - rewards.mean(dim=1, keepdim=True)


@wrong("group_relative_advantages", "the population std")
def group_advantages_population_std(rewards, eps=1e-6, scale=True):
    """Divides by the population std (G), not the sample std (G - 1)."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    return centred / (centred.pow(2).mean(dim=1, keepdim=True).sqrt() + eps)


@wrong("group_relative_advantages", "over the prompts (dim 0)")
def group_advantages_over_prompts(rewards, eps=1e-6, scale=True):
    """Takes the statistics down the columns."""
    centred = rewards - rewards.mean(dim=0, keepdim=True)
    return centred / (rewards.std(dim=0, keepdim=True) + eps) if scale else centred


@wrong("group_relative_advantages", "eps is added to the variance")
def group_advantages_eps_inside_the_root(rewards, eps=1e-6, scale=True):
    """Divides by sqrt(var + eps) instead of std + eps: the two agree for a tiny eps, not for eps = 0.1 (a
    student's try: 'No known mistake')."""
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    return centred / torch.sqrt(rewards.var(dim=1, keepdim=True) + eps) if scale else centred


@correct("group_relative_advantages")
def group_advantages_row_by_row(rewards, eps=1e-6, scale=True):
    rows = []
    for row in rewards:
        centred = row - row.mean()
        rows.append(centred / (row.std() + eps) if scale else centred)
    return torch.stack(rows)


def _token_objective(log_probs, old_log_probs, advantages, clip_eps, pick=torch.min):
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(log_probs - old_log_probs.detach())
    return pick(ratio * advantages, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages)


@wrong("masked_clipped_loss", "only the upper side is clipped")
def masked_clipped_loss_upper_clip_only(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """ratio.clamp(max=1 + eps): the lower bound forgotten (the same)."""
    mask = mask.float()
    ratio = torch.exp(log_probs - old_log_probs)
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    per_token = torch.min(ratio * adv, ratio.clamp(max=1 + clip_eps) * adv)
    return -(per_token * mask).sum() / mask.sum().clamp(min=1)


@wrong("masked_clipped_loss", "max instead of min")
def masked_clipped_loss_max(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """The optimistic max of the two surrogates."""
    mask = mask.float()
    return -(_token_objective(log_probs, old_log_probs, advantages, clip_eps, torch.max) * mask).sum() / \
        mask.sum().clamp(min=1)


@wrong("masked_clipped_loss", "the mask is ignored")
def masked_clipped_loss_unmasked(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """Averages over every position, padding included."""
    return -_token_objective(log_probs, old_log_probs, advantages, clip_eps).mean()


@wrong("masked_clipped_loss", "the paper's per-sequence mean")
def masked_clipped_loss_per_sequence(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """Averages each response's tokens, then the responses (GRPO paper's form, not the contract)."""
    mask = mask.float()
    objective = _token_objective(log_probs, old_log_probs, advantages, clip_eps)
    return -torch.stack([(o * m).sum() / m.sum().clamp(min=1) for o, m in zip(objective, mask)]).mean()


@wrong("masked_clipped_loss", "a sum over the tokens, not a mean")
def masked_clipped_loss_sum(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """Sums over the real tokens without dividing by their number."""
    return -(_token_objective(log_probs, old_log_probs, advantages, clip_eps) * mask.float()).sum()


@wrong("masked_clipped_loss", "does not detach the old log-probabilities")
def masked_clipped_loss_old_with_grad(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """Forms the ratio with old_log_probs still attached to its graph."""
    if advantages.dim() == 1:
        advantages = advantages[:, None]
    ratio = torch.exp(log_probs - old_log_probs)
    objective = torch.min(ratio * advantages, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * advantages)
    mask = mask.float()
    return -(objective * mask).sum() / mask.sum().clamp(min=1)


@wrong("masked_clipped_loss", "zeroed but still counted")
def masked_clipped_loss_divides_by_all(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """Zeroes the padding but divides by B * T."""
    return -(_token_objective(log_probs, old_log_probs, advantages, clip_eps) * mask.float()).mean()


@correct("masked_clipped_loss")
def masked_clipped_loss_where(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    objective = _token_objective(log_probs, old_log_probs, advantages, clip_eps)
    keep = mask.bool()
    return -torch.where(keep, objective, torch.zeros_like(objective)).sum() / keep.sum().clamp(min=1)


@wrong("masked_clipped_loss", "no new constant in place of the loss")
def masked_clipped_loss_constant_when_empty(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """torch.tensor(0.0) for a batch without a real token: the right value, no graph (a student's try was asked
    whether it detached an input)."""
    mask = mask.float()
    if mask.sum() == 0:
        return torch.tensor(0.0)
    return -(_token_objective(log_probs, old_log_probs, advantages, clip_eps, torch.min) * mask).sum() / mask.sum()


@wrong("masked_clipped_loss", "an all-padding batch divides 0 by 0")
def masked_clipped_loss_nan_on_padding(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """Right on every batch with a real token; 0/0 = nan on one of padding only (exercise 08's second read: the
    check had no such case)."""
    objective = _token_objective(log_probs, old_log_probs, advantages, clip_eps)
    mask = mask.to(objective.dtype)
    return -(objective * mask).sum() / mask.sum()


# -------------------------------------------------------------------------------- ch02 fit_critic

def _fit_critic_learner(weights, observations, returns, lr, steps, slip=None):
    """A learner's fit_critic (Adam on a copy of the weights), with one known slip or none."""
    w = torch.nn.Parameter(weights.detach().clone())
    optimizer = torch.optim.SGD([w], lr=lr) if slip == "sgd" else torch.optim.Adam([w], lr=lr)
    losses = []
    for _ in range(steps + {"one_more_step": 1, "one_fewer_step": -1}.get(slip or "", 0)):
        if slip == "new_optimizer_each_step":
            optimizer = torch.optim.Adam([w], lr=lr)
        values = (observations * w).sum(dim=1)  # [B]
        targets = returns - values.detach() if slip == "advantage_targets" else returns
        if slip == "mean_target":
            targets = returns.mean().expand_as(returns)
        elif slip == "start_value_targets":
            targets = (observations @ weights).detach()
        loss = torch.nn.functional.mse_loss(values, targets) * 0.5
        if slip == "no_half":
            loss = loss * 2
        if slip == "sum":
            loss = loss * values.shape[0]
        if slip != "no_zero_grad":
            w.grad = None
        (-loss if slip == "ascent" else loss).backward()
        if slip == "zero_grad_before_step":
            optimizer.zero_grad()
        if slip != "no_step":
            optimizer.step()
        if slip == "loss_after_step":
            with torch.no_grad():
                loss = 0.5 * ((observations @ w - targets) ** 2).mean()
        losses.append(float(loss))
    return w.detach(), losses


@correct("fit_critic")
def fit_critic_mse_loss(weights, observations, returns, lr, steps):
    return _fit_critic_learner(weights, observations, returns, lr, steps)


@wrong("fit_critic", "plain gradient descent (SGD)")
def fit_critic_sgd(weights, observations, returns, lr, steps):
    """torch.optim.SGD instead of Adam (a student's try: 'No known mistake')."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, slip="sgd")


@wrong("fit_critic", "create one optimiser before the loop")
def fit_critic_new_adam_each_step(weights, observations, returns, lr, steps):
    """A new Adam inside the loop (exercise 02's third read: it passed the 1-step case and then got 'no known mistake
    reproduces your results', under a description of the loop that it matched word for word)."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, slip="new_optimizer_each_step")


@wrong("fit_critic", "zero the optimiser's gradients before each backward pass, every step")
def fit_critic_no_zero_grad(weights, observations, returns, lr, steps):
    """Never clears the gradients: each step's gradient adds to those of the steps before."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "no_zero_grad")


@wrong("fit_critic", "minimise L_V")
def fit_critic_ascent(weights, observations, returns, lr, steps):
    """Backpropagates the negative loss: gradient ascent on the squared error."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "ascent")


@wrong("fit_critic", "not on the advantages")
def fit_critic_advantage_targets(weights, observations, returns, lr, steps):
    """Regresses the values on G - V instead of G."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "advantage_targets")


@wrong("fit_critic", "take the optimiser's step after each backward pass")
def fit_critic_zero_grad_before_step(weights, observations, returns, lr, steps):
    """Clears the gradients between backward and step: the weights never move."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "zero_grad_before_step")


@wrong("fit_critic", "one step too many")
def fit_critic_one_more_step(weights, observations, returns, lr, steps):
    """Takes steps + 1 optimiser steps."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "one_more_step")


@wrong("fit_critic", "one step too few")
def fit_critic_one_fewer_step(weights, observations, returns, lr, steps):
    """Takes steps - 1 optimiser steps: on a 1-step case none at all (exercise 02's third read: the check called it
    'the weights did not move', a loop that never steps)."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "one_fewer_step")


@wrong("fit_critic", "missing the factor 1/2")
def fit_critic_no_half(weights, observations, returns, lr, steps):
    """The mean squared error without its factor 1/2."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "no_half")


@wrong("fit_critic", "average the squared errors over the batch, not .sum()")
def fit_critic_sum(weights, observations, returns, lr, steps):
    """Sums the squared errors over the batch."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "sum")


@wrong("fit_critic", "one target, the mean return, for every state")
def fit_critic_mean_return_target(weights, observations, returns, lr, steps):
    """Regresses every value on the mean return (a student's try: told 'the weights are right, but the losses
    differ', with a loss-timing cause, issue 49)."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "mean_target")


@wrong("fit_critic", "the critic's own values at the start")
def fit_critic_start_value_targets(weights, observations, returns, lr, steps):
    """Regresses on the starting critic's values (detached): L_V is 0, nothing moves (a student's try: told 'the
    weights did not move: take the optimiser's step', though it stepped and its losses were 0, issue 49)."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "start_value_targets")


def fit_critic_start_value_targets_rounded_otherwise(weights, observations, returns, lr, steps):  # in MISNAMED only
    """The same mistake on a processor whose matmul rounds otherwise than the sum of products that forms the
    values (an Intel Xeon did, in the last bit): L_V starts at 0 within rounding, and Adam's normalised steps turn
    the 1e-8 differences into moves of about lr. The check named no mistake there (its replay moved nothing)."""
    w = torch.nn.Parameter(weights.detach().clone())
    optimizer = torch.optim.Adam([w], lr=lr)
    start = (observations @ weights).detach()
    targets = start + start.abs() * torch.finfo(start.dtype).eps  # the start values, one rounding step away
    losses = []
    for _ in range(steps):
        loss = 0.5 * (((observations * w).sum(dim=1) - targets) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return w.detach(), losses


@wrong("fit_critic", "you record each step's L_V after its optimiser step")
def fit_critic_loss_after_step(weights, observations, returns, lr, steps):
    """Appends the loss recomputed after the step (the next step's loss)."""
    return _fit_critic_learner(weights, observations, returns, lr, steps, "loss_after_step")


# ------------------------------------------------------------------ issue 49: a student's tries at 07 and 08

@wrong("conjugate_gradient", "one product too many: the loop runs iterations + 1 times")
def conjugate_gradient_one_iteration_too_many(matrix_vector_product, b, iterations=10, residual_tol=1e-10):
    """A while loop on k <= iterations: 4 products for iterations=3 (a student's try was told the residual is
    recomputed as b - A x)."""
    x, r, p = torch.zeros_like(b), b.clone(), b.clone()
    rr, k = torch.dot(r, r), 0
    while k <= iterations:
        if rr < residual_tol:
            break
        Ap = matrix_vector_product(p)
        alpha = rr / torch.dot(p, Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr, k = rr_new, k + 1
    return x


@wrong("conjugate_gradient", "x starts at b, not at 0")
def conjugate_gradient_starts_at_b(matrix_vector_product, b, iterations=10, residual_tol=1e-10):
    """x0 = b, so r = b - A b costs a product (a student's try was told the residual is recomputed as b - A x)."""
    x = b.clone()
    r = b - matrix_vector_product(x)
    p, rr = r.clone(), torch.dot(r, r)
    for _ in range(iterations):
        if rr < residual_tol:
            break
        Ap = matrix_vector_product(p)
        alpha = rr / torch.dot(p, Ap)
        x, r = x + alpha * p, r - alpha * Ap
        rr_new = torch.dot(r, r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x


def _token_terms(log_probs, old_log_probs, advantages, clip_eps, slip):
    """The per-token terms of a learner's clipped loss with one slip (the ratio's old log-probs detached)."""
    adv = advantages[:, None] if advantages.dim() == 1 else advantages
    ratio = torch.exp(log_probs - old_log_probs.detach())
    if slip == "advantage_clipped":
        return torch.min(ratio * adv, ratio * adv.clamp(1 - clip_eps, 1 + clip_eps))
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv
    return clipped if slip == "clipped_only" else torch.min(ratio * adv, clipped)


@wrong("masked_clipped_loss", "clip the ratio, not the advantage")
def masked_clipped_loss_clips_the_advantage(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """ratio * clamp(A, 1 - eps, 1 + eps) in place of clamp(ratio) * A (a student's try: 'No known mistake')."""
    mask = mask.float()
    terms = _token_terms(log_probs, old_log_probs, advantages, clip_eps, "advantage_clipped")
    return -(terms * mask).sum() / mask.sum().clamp(min=1)


@wrong("masked_clipped_loss", "only the clipped term is kept")
def masked_clipped_loss_clipped_term_only(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """No min: the clipped term alone (a student's try: 'No known mistake')."""
    mask = mask.float()
    terms = _token_terms(log_probs, old_log_probs, advantages, clip_eps, "clipped_only")
    return -(terms * mask).sum() / mask.sum().clamp(min=1)


@wrong("masked_clipped_loss", "the padding's terms are in the sum")
def masked_clipped_loss_padding_summed(log_probs, old_log_probs, advantages, mask, clip_eps=0.2):
    """Sums every position's term, the padding's included, over the number of real tokens (a student's try:
    'No known mistake', received 36.4 for -0.70)."""
    terms = _token_terms(log_probs, old_log_probs, advantages, clip_eps, None)
    return -terms.sum() / mask.float().sum().clamp(min=1)
