"""Tiered hints for the exercises: ``pg.hint("collect_rollout")``, then ``level=2``, then ``level=3``.

Each exercise with hints has three, from the least to the most given away:

1. **the idea**: what the piece does and the trap in it, in words;
2. **the formula**: the rule or the math to apply, with the shapes;
3. **near-code**: the skeleton of a solution, its key expressions left as ``…`` for you to write.

A call shows its own level only, so nothing is shown before it is asked for, and nothing is recorded about
which hints were asked for (the grader never sees them). Any exercise can get hints: add its three texts to
:data:`HINTS` under the exercise's name. This module imports nothing from the rest of the package.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

LEVEL_NAMES = ("the idea", "the formula", "near-code")

# exercise name -> (the idea, the formula, near-code); markdown, shown as written
HINTS: dict[str, tuple[str, str, str]] = {
    "compute_gae": (
        "An advantage says how much better the step went than the critic expected. GAE blends the one-step TD "
        "errors of the following steps, each one weighted less (by gamma * lam per step), and the blend must "
        "stop where the episode stops. Two different questions: does this step have a next state to bootstrap "
        "from (not after a termination), and does the next row belong to the same episode (not after any end)?",
        "delta_t = r_t + gamma * (1 - terminated_t) * V(s'_t) - V(s_t), with V(s'_t) = next_values[t].\n\n"
        "A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}, where done_t is 1 if the episode ended at step t "
        "(terminated, truncated, or both: a logical or, never a sum), and A_T = 0 after the last step.\n\n"
        "Shapes: every tensor is [T, N]; the recursion runs over t, for all N envs at once.",
        "```python\nadvantages = torch.zeros_like(rewards)\nrunning = torch.zeros_like(rewards[0])  # [N]\n"
        "for t in reversed(range(T)):\n    delta = …            # uses terminated[t], next_values[t], values[t]\n"
        "    running = delta + … * running   # cut where step t ended an episode\n    advantages[t] = running\n"
        "return advantages.detach()   # targets are constants\n```"),
    "collect_episodes": (
        "Play one complete episode in every env at once. Envs finish at different times, but a vector env steps "
        "all of them together, so the finished ones keep stepping until the last one finishes. Keep only each "
        "env's first episode: everything after an env's first episode end (the reset step, the next episode) is "
        "thrown away.",
        "Per step: obs [N, 4] -> logits = policy(obs) [N, 2] -> one sampled action per env [N] -> "
        "envs.step(actions) gives rewards, terminated, truncated [N]. An env's episode ends at its first step "
        "with terminated OR truncated, and that step belongs to the episode. Record the length of each env's first "
        "episode; at the end, cut each env's column of the stacked steps to its length and concatenate env 0's "
        "episode first.",
        "```python\nobs_np, _ = envs.reset()\nlengths = np.zeros(envs.num_envs, dtype=int)   # 0 while running\n"
        "rows = []\nwith torch.no_grad():\n    while not lengths.all():\n        obs = torch.as_tensor(obs_np, "
        "dtype=torch.float32)\n        actions = …                      # sampled, one per env\n"
        "        obs_np, rewards, terminated, truncated, _ = envs.step(actions.numpy())\n        rows.append((obs, "
        "actions, rewards))\n        ended_now = … & (lengths == 0)\n        lengths[ended_now] = len(rows)\n"
        "# stack the rows, take column i up to lengths[i] for each env i, concatenate\n```"),
    "reinforce_update": (
        "The policy-gradient step of lesson 01: make the actions that were followed by a high return more "
        "likely. The weight of a step is the return from that step on, inside its own episode, and it is a "
        "constant: only the log-probability carries gradient.",
        "For each episode: G_t = r_t + gamma * G_{t+1} (config.gamma). Concatenate the episodes' G in the order of "
        "the batch [B]; standardise them over the whole batch if config.normalize_weights. "
        "L = -mean(log pi(a_t | s_t) * weight_t); then zero the gradients, backpropagate, step.",
        "```python\nreturns = torch.cat([… for rewards in episode_rewards])   # [B]\n"
        "weights = … if config.normalize_weights else returns\nlog_probs = …                       # [B] of the "
        "taken actions\nloss = …\noptimizer.zero_grad()\nloss.backward()\noptimizer.step()\n```"),
    "train_reinforce": (
        "Glue the two pieces: seed, build the policy and its optimiser, then alternate 'play a batch' and 'one "
        "update' until enough episodes were played. Seed everything once, before the loop.",
        "torch.manual_seed(config.seed) and envs.reset(seed=config.seed) before anything random; the policy is "
        "pg.networks.CategoricalPolicy(obs_dim, n_actions, config.hidden_sizes); Adam with config.lr and "
        "config.adam_eps. Each batch gives envs.num_envs episodes; stop once config.max_episodes were played.",
        "```python\ntorch.manual_seed(config.seed)\nenvs.reset(seed=config.seed)\npolicy = …\noptimizer = …\n"
        "episodes = 0\nwhile episodes < config.max_episodes:\n"
        "    obs, actions, episode_rewards = collect_episodes(envs, policy)\n    episodes += …\n"
        "    reinforce_update(…)\nreturn policy\n```"),
    "collect_rollout": (
        "A rollout is n_steps steps of every env with the current policy, stored as [T, N] tensors. Two NEXT_STEP "
        "details decide everything: the step right after an episode end only resets that env (not a transition: "
        "valid False), and the observation an ending step returns is the episode's true final observation (the "
        "state a truncation bootstraps from). Where the last rollout stopped matters too: `start` says which envs "
        "reset on this rollout's first step.",
        "valid[t] = not (terminated[t-1] or truncated[t-1]), with start's resetting flags for t = 0.\n\n"
        "values[t] = V(obs[t]); next_values[t] = V(observation returned by step t) = values[t+1] for t < T-1, and "
        "V(the observation after the rollout) for t = T-1.\n\n"
        "Everything is stored without gradient: sample with Categorical(logits=policy(obs)).sample() for all N envs "
        "every step, log_probs of those sampled actions.",
        "```python\nobs_np, resetting = start\nwith torch.no_grad():\n    for t in range(n_steps):\n"
        "        obs = torch.as_tensor(obs_np, dtype=torch.float32)\n        …                          # logits, "
        "sampled actions, log-probs, value\n        valid[t] = …\n        obs_np, reward, term, trunc, _ = "
        "envs.step(actions.numpy())\n        …                          # store reward and the two flags\n"
        "        resetting = …\n    last_value = …\nnext_values = torch.cat([values[1:], …])\n"
        "return Rollout(…), (obs_np, resetting)\n```"),
    "advantages_and_returns": (
        "Lesson 03's GAE on a rollout: the advantage of a step blends the TD errors of the steps after it in the "
        "same episode. A truncated step still has a future (bootstrap from next_values, the true final "
        "observation's value); a terminated one does not. Reset steps get some number, which the update never "
        "reads.",
        "delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t\n\n"
        "A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}, done_t = terminated_t or truncated_t (both can be 1: "
        "combine with a logical or), A after the last step = 0.\n\nreturns = A + values, the critic's targets. "
        "Both are constants: detach the values you read.",
        "```python\nvalues, next_values = values.detach(), next_values.detach()\nadvantages = "
        "torch.zeros_like(rewards)\nrunning = torch.zeros_like(rewards[0])   # [N]\nfor t in "
        "reversed(range(T)):                 # rows are time steps\n    delta = …\n    running = …\n"
        "    advantages[t] = running\nreturn advantages, …\n```"),
    "ppo_update": (
        "Many small steps on one batch: each epoch visits the minibatches you are given, in order. In each, the "
        "clipped surrogate keeps the new policy near pi_old, the policy that collected the rollout (its log-probs "
        "are stored in the rollout and never change during the update), and the critic regresses on the "
        "returns. The diagnostics watch the same forward pass the step uses.",
        "Batch: the valid rows of the [T, N] tensors, flattened in [t, n] order (the minibatch indices count those "
        "rows). Advantages standardised once over the batch (config.normalize_advantages, and per minibatch "
        "instead if config.normalize_per_minibatch).\n\n"
        "ratio = exp(log pi(a|s) - log pi_old(a|s)); actor loss = -mean(min(ratio A, clip(ratio, 1-eps, 1+eps) A)) "
        "- ent_coef * mean entropy; critic loss = 0.5 mean((V(s) - R)^2). Each network: zero grad, backward, clip "
        "its gradient norm (config.max_grad_norm / critic_max_grad_norm, None = no clip), step.\n\n"
        "approx_kl = mean((ratio - 1) - log ratio), clip_fraction = share of |ratio - 1| > eps, both measured on "
        "the step's forward pass and averaged over all steps; explained_variance = 1 - Var[R - V] / Var[R] with "
        "the critic's values after the last step.",
        "```python\nmask = rollout.valid.reshape(-1)\nobs = rollout.obs.reshape(-1, obs_dim)[mask]       # same for "
        "actions, log_probs, advantages, returns\nif …: advantages = …                                 # once, "
        "before the epochs\nfor epoch in minibatches:\n    for idx in epoch:\n        logits = policy(obs[idx])\n"
        "        new_log_probs, entropy = …, …\n        ratio = …\n        actor_loss = …\n"
        "        critic_loss = …\n"
        "        …                                              # two optimiser steps, each clipped on its own\n"
        "        with torch.no_grad():\n            …                                          # kl and clip "
        "fraction of this step\nwith torch.no_grad():\n    explained_variance = …\nreturn {\"approx_kl\": …, "
        "\"clip_fraction\": …, \"explained_variance\": …}\n```"),
    "train_ppo": (
        "Glue the stages: seed once, build both networks and their optimisers, then repeat 'anneal the learning "
        "rates, collect, advantages, update' until the budget of transitions is spent. Carry `start` from one "
        "rollout to the next: the envs never reset between rollouts.",
        "Seed: torch.manual_seed(config.seed), envs.reset(seed=config.seed), a torch.Generator seeded with "
        "config.seed for the minibatches. Budget: count the valid transitions; stop at the first update that "
        "reaches config.total_steps. Annealing: lr = (1 - transitions so far / total_steps) * config.lr (the "
        "critic's likewise). Minibatches: config.update_epochs lists from pg.minibatch_indices(batch size, "
        "config.minibatch_size, generator), the batch size being this rollout's valid count.",
        "```python\ntorch.manual_seed(config.seed)\nobs, _ = envs.reset(seed=config.seed)\npolicy, value_net = …, "
        "…\nactor_optimizer, critic_optimizer = …, …\ngenerator = torch.Generator().manual_seed(config.seed)\n"
        "start, transitions, history = (obs, np.zeros(envs.num_envs, dtype=bool)), 0, []\nwhile transitions < "
        "config.total_steps:\n    …                                  # anneal both learning rates\n"
        "    rollout, start = collect_rollout(…)\n    transitions += …\n    advantages, returns = …\n"
        "    minibatches = […]\n    history.append(ppo_update(…))\nreturn policy, history\n```"),
}


@dataclass(frozen=True)
class Hint:
    """One level of one exercise's hints; shows itself as markdown in a notebook, as text in a terminal."""

    exercise: str
    level: int
    text: str

    @property
    def levels(self) -> int:
        return len(HINTS[self.exercise])

    def _parts(self) -> tuple[str, str]:
        head = f"Hint {self.level}/{self.levels} for {self.exercise} ({LEVEL_NAMES[self.level - 1]})"
        more = (f"More: pg.hint({self.exercise!r}, level={self.level + 1}) ({LEVEL_NAMES[self.level]})."
                if self.level < self.levels else "That was the last hint: the solved notebook is linked on the "
                                                 "start page.")
        return head, more

    def _repr_markdown_(self) -> str:
        head, more = self._parts()
        return f"**{head}**\n\n{self.text}\n\n*{more}*"

    def __str__(self) -> str:
        head, more = self._parts()
        return f"{head}\n\n{self.text}\n\n{more}"

    __repr__ = __str__


def hint(exercise: str, level: int = 1) -> Hint:
    """The hint of ``level`` (1 the idea, 2 the formula, 3 near-code) for ``exercise``, e.g.
    ``pg.hint("compute_gae")``; the next level is one call away. Nothing is recorded."""
    if exercise not in HINTS:
        close = difflib.get_close_matches(str(exercise), HINTS, n=1)
        did_you_mean = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"no hints for {exercise!r}{did_you_mean}; exercises with hints: {', '.join(sorted(HINTS))}")
    levels = len(HINTS[exercise])
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= levels:
        raise ValueError(f"level={level!r} is invalid: expected 1 ({LEVEL_NAMES[0]}), 2 ({LEVEL_NAMES[1]}) or "
                         f"3 ({LEVEL_NAMES[2]})")
    return Hint(exercise, level, HINTS[exercise][level - 1])
