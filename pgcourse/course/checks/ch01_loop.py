"""Stage checks of lesson 01's last exercises: the learner writes the REINFORCE loop.

- ``collect_episodes(envs, policy) -> (obs, actions, episode_rewards)``: one complete episode per env from
  ``envs.reset()``; on fixed seeds and a fixed policy, everything must equal the reference exactly.
- ``reinforce_update(policy, optimizer, obs, actions, episode_rewards, config)``: one gradient step; from
  the same batches, the parameters after two successive calls within a stated tolerance.
- ``train_reinforce(envs, config) -> policy``: end to end, the learner's loop learns CartPole on 3 of 3
  seeds within 200 episodes, and the policy it returns is the product of its own updates on the episodes it
  played (:mod:`.learning_proof`: what it played and every optimiser step are recorded and checked).

The reference is this package's REINFORCE (``algorithms/reinforce.py``, ``collect_episodes`` in
``algorithms/rollout.py``) written as these three functions; ``tests/test_loop_checks.py`` shows the three
glued together train exactly the run ``pg.train("reinforce", ...)`` trains.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...rl.config import ReinforceConfig, make_config
from ...rl.envs import make_raw_vector_env
from ...rl.distributions import categorical_log_prob
from ...rl.losses import reinforce_loss
from ...rl.networks import CategoricalPolicy, sample_categorical
from ...rl.returns import discounted_returns, normalize
from .learning_proof import Batch, LoopContract, RecordingEnvs, StepRecorder, prove_learning
from .stages import (PARAMETER_TOLERANCE, REMOTE_CASES, RUNNERS, CountingEnvs, LoopReport, Mismatch, SeedResult,
                     StageMistake, Timer, before_the_loop_seeds, call_learner, call_spec, cartpole_envs,
                     case_mistake, compare, config_spec, fixed_networks, is_remote, learner_run, network_spec,
                     play_loop, policy_from_state, run_stage_check, sampled_returns, seeded_torch, tensor_data,
                     train_on_seeds)


# --------------------------------------------------------------------------------------------------
# The reference (``mistake`` switches on a known wrong version)
# --------------------------------------------------------------------------------------------------

def reference_collect_episodes(envs, policy, *, mistake: str | None = None) -> tuple[Tensor, Tensor, list[Tensor]]:
    """One complete episode per env from ``envs.reset()``: ``obs [B, obs_dim]``, ``actions [B]`` (env 0's
    episode first) and each episode's rewards ``[T_i]``."""
    obs_np, _ = envs.reset(seed=0) if mistake == "reseeded" else envs.reset()
    num_envs = envs.num_envs
    lengths = np.zeros(num_envs, dtype=np.int64)  # [N] length of the first episode, 0 while it runs
    obs_rows, action_rows, reward_rows = [], [], []
    with torch.no_grad():
        while not (lengths.any() if mistake == "stops_at_first_end" else lengths.all()):
            obs = torch.as_tensor(obs_np, dtype=torch.float32)  # [N, obs_dim]
            logits = policy(obs)  # [N, A]
            if mistake == "greedy":
                actions = logits.argmax(dim=-1)
            elif mistake == "samples_running_envs_only":
                actions = torch.zeros(num_envs, dtype=torch.long)
                running = torch.as_tensor(lengths == 0)
                actions[running] = sample_categorical(logits[running])
            else:
                actions = sample_categorical(logits)  # [N]
            obs_np, rewards, terminated, truncated, _ = envs.step(actions.numpy())
            obs_rows.append(torch.as_tensor(obs_np, dtype=torch.float32) if mistake == "obs_after_step" else obs)
            action_rows.append(actions)
            reward_rows.append(torch.as_tensor(np.asarray(rewards, dtype=np.float32)))
            ends = np.asarray(terminated) if mistake == "truncation_ignored" else \
                np.asarray(terminated) | np.asarray(truncated)
            ended_now = ends & (lengths == 0)
            lengths[ended_now] = len(reward_rows) - (1 if mistake == "drops_last_step" else 0)
    if mistake == "stops_at_first_end":
        lengths[lengths == 0] = len(reward_rows)
    if mistake == "keeps_steps_after_the_end":
        lengths[:] = len(reward_rows)
    order = np.argsort(lengths, kind="stable") if mistake == "finish_order" else range(num_envs)
    obs_all, actions_all, rewards_all = torch.stack(obs_rows), torch.stack(action_rows), torch.stack(reward_rows)
    if mistake == "time_major":  # the first episodes' steps picked from [T, N] with a mask: step 0 of every env first
        kept = torch.arange(len(reward_rows)).unsqueeze(1) < torch.as_tensor(lengths).unsqueeze(0)  # [T, N]
        return obs_all[kept], actions_all[kept], [rewards_all[:lengths[i], i] for i in order]
    obs = torch.cat([obs_all[:lengths[i], i] for i in order])  # [B, obs_dim]
    actions = torch.cat([actions_all[:lengths[i], i] for i in order])  # [B]
    return obs, actions, [rewards_all[:lengths[i], i] for i in order]


def reference_reinforce_update(policy, optimizer, obs, actions, episode_rewards, config, *,
                               mistake: str | None = None) -> float:
    """One REINFORCE step: discounted returns per episode, normalised over the batch if the config says so,
    the REINFORCE loss, one optimiser step."""
    loss = reference_reinforce_loss(policy, obs, actions, episode_rewards, config, mistake=mistake)
    if mistake != "no_zero_grad":
        optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def reference_reinforce_loss(policy, obs, actions, episode_rewards, config, *, mistake: str | None = None) -> Tensor:
    """The REINFORCE loss of a batch: :math:`-\\frac{1}{B}\\sum_b \\log\\pi_\\theta(a_b|s_b) w_b`, with
    :math:`w` the discounted returns within each episode, normalised over the batch if the config says so."""
    gamma = 1.0 if mistake == "undiscounted" else config.gamma
    if mistake == "discounted_across_episodes":
        returns = discounted_returns(torch.cat(list(episode_rewards)), gamma)
    elif mistake == "episode_return_everywhere":
        returns = torch.cat([torch.full_like(rewards, float(discounted_returns(rewards, gamma)[0]))
                             for rewards in episode_rewards])
    elif mistake == "total_return_everywhere":  # the episode's sum of rewards, undiscounted, at every step
        returns = torch.cat([torch.full_like(rewards, float(rewards.sum())) for rewards in episode_rewards])
    elif mistake == "normalized_per_episode":
        returns = torch.cat([normalize(discounted_returns(rewards, gamma)) for rewards in episode_rewards])
    else:
        returns = torch.cat([discounted_returns(rewards, gamma) for rewards in episode_rewards])  # [B]
    normalizing = {"normalization_flag_ignored": not config.normalize_weights, "always_normalised": True,
                   "never_normalised": False}.get(mistake or "", config.normalize_weights)
    weights = normalize(returns) if normalizing else returns  # [B]
    loss = reinforce_loss(categorical_log_prob(policy(obs), actions), weights)
    return -loss if mistake == "sign_flipped" else loss


def reference_train_reinforce(envs, config: ReinforceConfig, collect=reference_collect_episodes,
                              update=reference_reinforce_update) -> CategoricalPolicy:
    """REINFORCE on ``envs`` until ``config.max_episodes`` episodes, seeded as ``pg.train`` seeds."""
    torch.manual_seed(config.seed)
    envs.reset(seed=config.seed)
    policy = CategoricalPolicy(envs.single_observation_space.shape[0], int(envs.single_action_space.n),
                               config.hidden_sizes)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
    episodes = 0
    while episodes < config.max_episodes:
        obs, actions, episode_rewards = collect(envs, policy)
        episodes += len(episode_rewards)
        update(policy, optimizer, obs, actions, episode_rewards, config)
    return policy


# --------------------------------------------------------------------------------------------------
# Stage 1: a batch of episodes
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class EpisodesCase:
    num_envs: int
    time_limit: int | None = None
    env_seed: int = 0
    torch_seed: int = 0
    net_seed: int = 0

    @property
    def description(self) -> str:
        limit = f" with a {self.time_limit}-step time limit" if self.time_limit else ""
        return f"{self.num_envs} CartPole-v1 env(s){limit}"

    def run(self, collect: Callable[..., Any]) -> Any:
        envs = cartpole_envs(self.num_envs, self.time_limit)
        try:
            envs.reset(seed=self.env_seed)  # seeded once by the caller; collect_episodes continues from there
            policy, _ = fixed_networks(self.net_seed)
            with seeded_torch(self.torch_seed):
                return collect(envs, policy)
        finally:
            envs.close()

    def spec(self) -> dict[str, Any]:
        """This case as data, for a grader's handle that plays it where the learner's function lives."""
        policy, _ = fixed_networks(self.net_seed)
        return {"envs": {"num_envs": self.num_envs, "time_limit": self.time_limit, "seed": self.env_seed},
                "networks": {"policy": network_spec(policy)},
                "calls": [call_spec([{"ref": "envs"}, {"ref": "policy"}], seed=self.torch_seed)]}


EPISODES_CASES = [
    EpisodesCase(num_envs=1, env_seed=1, torch_seed=1, net_seed=1),
    EpisodesCase(num_envs=3, time_limit=12, env_seed=2, torch_seed=2, net_seed=2),
    EpisodesCase(num_envs=4, env_seed=3, torch_seed=3, net_seed=3),
]


def episodes_data(result: Any) -> dict[str, Any]:
    """What a ``collect_episodes`` returned, as data (or the problem, in words)."""
    if not (isinstance(result, tuple | list) and len(result) == 3):
        return {"problem": "collect_episodes must return (obs, actions, episode_rewards); got "
                           f"{type(result).__name__}."}
    obs, actions, episode_rewards = result
    if not isinstance(episode_rewards, list | tuple):
        return {"problem": f"episode_rewards should be a list of tensors, one per env; got "
                           f"{type(episode_rewards).__name__}."}
    return {"obs": tensor_data(obs), "actions": tensor_data(actions),
            "episode_rewards": [tensor_data(rewards) for rewards in episode_rewards]}


def run_episodes_case(fn: Callable[..., Any], index: int) -> dict[str, Any]:
    """Case ``index`` of the episodes check with ``fn`` as ``collect_episodes``, as data."""
    return episodes_data(EPISODES_CASES[index].run(fn))


def _episodes_mistake(name: str) -> Callable[[EpisodesCase], Any]:
    return lambda case: case_mistake(case.run, reference_collect_episodes, episodes_data, name)


EPISODES_MISTAKES = [
    StageMistake("you stop when the FIRST env finishes: play until every env has finished its first episode (the "
                 "finished ones keep stepping, and those steps are dropped).", _episodes_mistake("stops_at_first_end")),
    StageMistake("you keep the steps after an env's episode ended: in NEXT_STEP mode the next step only resets that "
                 "env, and what follows is another episode, not part of this one.",
                 _episodes_mistake("keeps_steps_after_the_end")),
    StageMistake("a truncation (the time limit) ends an episode too: stop counting an env's steps at its first "
                 "step with terminated OR truncated.", _episodes_mistake("truncation_ignored")),
    StageMistake("each episode lacks its last step: the step that returns terminated or truncated is part of the "
                 "episode (its reward counts).", _episodes_mistake("drops_last_step")),
    StageMistake("you store the observation the step RETURNED; store the observation the action was chosen on.",
                 _episodes_mistake("obs_after_step")),
    StageMistake("you take the most likely action: REINFORCE samples its actions from the policy.",
                 _episodes_mistake("greedy")),
    StageMistake("you sample actions only for the envs still playing: sample one action per env every step (a "
                 "vector env needs an action for every env, and the check replays the same random draws).",
                 _episodes_mistake("samples_running_envs_only")),
    StageMistake("you reset the envs with a seed inside collect_episodes: the caller seeds them once; each batch "
                 "starts with a reset without a seed, so every batch plays new episodes.",
                 _episodes_mistake("reseeded")),
    StageMistake("the episodes are in the order they finished: keep env order (env 0's episode first).",
                 _episodes_mistake("finish_order")),
    StageMistake("your obs and actions are in time order (every env's step 0, then every env's step 1, ...), as a "
                 "[T, N] mask picks them: the batch holds env 0's whole episode first, then env 1's, and so on, in "
                 "the order of episode_rewards.", _episodes_mistake("time_major")),
]


def _length(value: Any) -> int | None:
    return int(value.shape[0]) if isinstance(value, Tensor) and value.dim() == 1 else None


def _compare_episodes(expected: dict[str, Any], received: dict[str, Any]) -> Mismatch | None:
    if "problem" in received:
        return Mismatch("result", received["problem"])
    lengths = [_length(rewards) for rewards in expected["episode_rewards"]]
    got_lengths = [_length(rewards) for rewards in received["episode_rewards"]]
    if len(got_lengths) != len(lengths):
        return Mismatch("episode_rewards", f"episode_rewards should hold {len(lengths)} episodes, one per env; it "
                                           f"holds {len(got_lengths)}.")
    if None in got_lengths:
        return Mismatch("episode_rewards", "each entry of episode_rewards should be a 1-D tensor of the episode's "
                                           "rewards.")
    if got_lengths != lengths:
        return Mismatch("episode_rewards", f"your episodes have lengths {got_lengths}; the reference's have {lengths}.",
                        expected=torch.tensor(lengths), received=torch.tensor(got_lengths))
    for index, (want, got) in enumerate(zip(expected["episode_rewards"], received["episode_rewards"])):
        mismatch = compare(f"episode_rewards[{index}]", want, got, exact=True, kind="float")
        if mismatch is not None:
            mismatch.field = "episode_rewards"
            return mismatch
    return (compare("obs", expected["obs"], received["obs"], exact=True)
            or compare("actions", expected["actions"], received["actions"], exact=True, kind="integer"))


def _episodes_situation(index: int, expected: dict[str, Any]) -> str:
    lengths = [_length(rewards) for rewards in expected["episode_rewards"]]
    return f"{EPISODES_CASES[index].description}, one episode each from a reset: lengths {lengths}"


def check_collect_episodes(fn: Callable[..., Any]) -> None:
    """Check your ``collect_episodes(envs, policy)`` against the reference on fixed seeds and a fixed policy:
    observations, actions and each episode's rewards must be equal, exactly."""
    run_stage_check(
        "collect_episodes", fn, len(EPISODES_CASES), reference_collect_episodes,
        compare=lambda expected, received, index: _compare_episodes(expected, received),
        mistakes=EPISODES_MISTAKES, mistake_data=lambda mistake, index: mistake.compute(EPISODES_CASES[index]),
        situation=_episodes_situation,
        concept=lambda mismatch: "each env's first episode from the reset, every step up to and including the one "
                                 "that ended it, the actions sampled from the policy, env 0's episode first.",
        note=lambda mismatch: "The check replays the reference's random draws: one action per env every step, "
                              "sampled from torch's generator.")
    print(f"✓ collect_episodes: {len(EPISODES_CASES)} batches of episodes equal to the reference (observations, "
          f"actions and rewards exactly)")


RUNNERS["collect_episodes"] = run_episodes_case
REMOTE_CASES["collect_episodes"] = (lambda index: EPISODES_CASES[index].spec(),
                                    lambda outcome, index: episodes_data(outcome["calls"][0]["result"]))


# --------------------------------------------------------------------------------------------------
# Stage 2: one update
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ReinforceUpdateCase:
    description: str
    episodes: EpisodesCase
    overrides: dict[str, Any]

    @property
    def config(self) -> ReinforceConfig:
        return make_config("reinforce", "CartPole-v1", "discrete", progress=False, **self.overrides)

    def batches(self) -> list[tuple[Tensor, Tensor, list[Tensor]]]:
        """The two batches of the case, played by the reference."""
        return [self.episodes.run(reference_collect_episodes),
                dataclasses.replace(self.episodes, torch_seed=self.episodes.torch_seed + 100).run(
                    reference_collect_episodes)]

    def spec(self) -> dict[str, Any]:
        """This case as data, for a grader's handle that plays it where the learner's function lives."""
        config = self.config
        policy, _ = fixed_networks(self.episodes.net_seed)
        calls = [call_spec([{"ref": "policy"}, {"ref": "optimizer"}, {"value": obs}, {"value": actions},
                            {"value": list(episode_rewards)}, {"ref": "config"}], seed=0, parameters=["policy"])
                 for obs, actions, episode_rewards in self.batches()]
        return {"networks": {"policy": network_spec(policy)},
                "optimizers": {"optimizer": {"params_of": "policy", "lr": config.lr, "eps": config.adam_eps}},
                "config": config_spec(config), "config_name": "ReinforceConfig", "calls": calls}

    def run(self, update: Callable[..., Any]) -> list[list[Tensor]]:
        """Two successive updates on two batches (played by the reference); the parameters after each."""
        config = self.config
        policy, _ = fixed_networks(self.episodes.net_seed)
        optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
        batches = self.batches()
        after = []
        for obs, actions, episode_rewards in batches:
            with seeded_torch(0):
                update(policy, optimizer, obs.clone(), actions.clone(), [r.clone() for r in episode_rewards], config)
            after.append([p.detach().clone() for p in policy.parameters()])
        return after


REINFORCE_UPDATE_CASES = [
    ReinforceUpdateCase("the course's CartPole config (gamma 0.99, returns normalised over the batch)",
                        EpisodesCase(num_envs=4, env_seed=4, torch_seed=4, net_seed=4), {}),
    ReinforceUpdateCase("normalize_weights=False, gamma 0.9, a 15-step time limit",
                        EpisodesCase(num_envs=3, time_limit=15, env_seed=5, torch_seed=5, net_seed=5),
                        dict(normalize_weights=False, gamma=0.9)),
]


def run_reinforce_update_case(fn: Callable[..., Any], index: int) -> list[list[Tensor]]:
    """Case ``index`` of the update check with ``fn`` as ``reinforce_update``: the parameters after each update."""
    return REINFORCE_UPDATE_CASES[index].run(fn)


def _update_mistake(name: str) -> Callable[[ReinforceUpdateCase], Any]:
    return lambda case: case_mistake(case.run, reference_reinforce_update, lambda after: after, name)


# (the wrong version's name in reference_reinforce_loss, what to tell the learner): the update check names them, and
# so does the end-to-end check when an update's gradient is one of them (learning_proof)
REINFORCE_UPDATE_MISTAKE_TEXTS = [
    ("normalization_flag_ignored", "config.normalize_weights is not followed: standardise the returns over the batch "
                                   "only when it is True."),
    ("discounted_across_episodes", "the returns are discounted across episode boundaries: compute G_t within each "
                                   "episode; an episode's return never includes the next episode's rewards."),
    ("episode_return_everywhere", "every step of an episode is weighted by the whole episode's return: weight step t "
                                  "by the return from t on (the rewards before t do not depend on the action at t)."),
    # a student's try (issue 49): sum(rewards) of the episode at every step, neither discounted nor from t on
    ("total_return_everywhere", "every step is weighted by its episode's total reward, undiscounted (the sum of "
                                "all its rewards): weight step t by the discounted return from t on, G_t = r_t + "
                                "gamma G_{t+1} with config.gamma (the rewards before t do not depend on the action "
                                "at t)."),
    ("undiscounted", "the returns are not discounted: G_t = r_t + gamma G_{t+1} with config.gamma."),
    ("normalized_per_episode", "the returns are normalised episode by episode: standardise them once, over the whole "
                               "batch."),
    ("sign_flipped", "the step goes the wrong way: the optimiser minimises the loss, and minimising it must raise the "
                     "log-probability of actions with a high return."),
    ("no_zero_grad", "the gradients are not zeroed before the backward pass, so each update also adds the previous "
                     "update's gradient (the first update is right, the second is not)."),
]
# The update check replays the ignored flag as the loop a learner writes, always or never normalising (a flipped flag
# agrees with neither on the case where the flag is followed by chance, and a mistake is named only where its replay
# gives every case the learner ran: issue 49).
REINFORCE_UPDATE_MISTAKES = [
    StageMistake(text, _update_mistake(variant)) for name, text in REINFORCE_UPDATE_MISTAKE_TEXTS
    for variant in (("always_normalised", "never_normalised") if name == "normalization_flag_ignored" else (name,))]


def _compare_parameters(expected: list[list[Tensor]], received: list[list[Tensor]], initial: list[Tensor]
                        ) -> Mismatch | None:
    before = torch.cat([p.flatten() for p in initial])
    for index, (want, got) in enumerate(zip(expected, received)):
        after = torch.cat([p.flatten() for p in got])
        mismatch = compare("policy parameters", torch.cat([p.flatten() for p in want]), after, exact=False,
                           tolerance=PARAMETER_TOLERANCE)
        if mismatch is not None:
            which = "first" if index == 0 else "second (the first was right)"
            mismatch.field = "policy"
            mismatch.problem = (f"the policy's parameters after your {which} update differ from the reference's "
                                f"(beyond rtol {PARAMETER_TOLERANCE[0]:g}, atol {PARAMETER_TOLERANCE[1]:g}).")
            if torch.equal(after, before):  # a student's try with zero_grad after backward: 'No known mistake'
                mismatch.problem = mismatch.problem[:-1] + ": they did not move at all."
                mismatch.hint = ("no step changed the policy: zero the gradients BEFORE the backward pass (zero_grad "
                                 "after backward erases the gradient the step needs), and call the optimiser's step "
                                 "after backward.")
            return mismatch
        before = after
    return None


def check_reinforce_update(fn: Callable[..., Any]) -> None:
    """Check your ``reinforce_update(policy, optimizer, obs, actions, episode_rewards, config)``: two successive
    updates from the same batches must leave the policy's parameters within rtol 1e-3, atol 1e-5 of the
    reference's."""
    run_stage_check(
        "reinforce_update", fn, len(REINFORCE_UPDATE_CASES), reference_reinforce_update,
        compare=lambda expected, received, index: _compare_parameters(
            expected, received, list(fixed_networks(REINFORCE_UPDATE_CASES[index].episodes.net_seed)[0].parameters())),
        mistakes=REINFORCE_UPDATE_MISTAKES,
        mistake_data=lambda mistake, index: mistake.compute(REINFORCE_UPDATE_CASES[index]),
        situation=lambda index, expected: (f"{REINFORCE_UPDATE_CASES[index].description}; batches of "
                                           f"{REINFORCE_UPDATE_CASES[index].episodes.description}"),
        concept=lambda mismatch: "the policy after one optimiser step on the REINFORCE loss: the log-probabilities "
                                 "of the actions weighted by the discounted returns of each episode (normalised over "
                                 "the batch if the config says so), the weights being constants.")
    print(f"✓ reinforce_update: {len(REINFORCE_UPDATE_CASES)} cases of two updates equal to the reference "
          f"(parameters within rtol {PARAMETER_TOLERANCE[0]:g}, atol {PARAMETER_TOLERANCE[1]:g})")


RUNNERS["reinforce_update"] = run_reinforce_update_case
REMOTE_CASES["reinforce_update"] = (
    lambda index: REINFORCE_UPDATE_CASES[index].spec(),
    lambda outcome, index: [call["parameters"]["policy"] for call in outcome["calls"]])


# --------------------------------------------------------------------------------------------------
# Stage 3: end to end
# --------------------------------------------------------------------------------------------------

LEARNED_RETURN = 100.0   # mean of the last 20 training episodes; a random policy scores about 22, and the
                         # reference 194 to 500 after 200 episodes (seeds 0-11)


def check_train_reinforce(fn: Callable[..., Any], seeds: Sequence[int] = (0, 1, 2), max_episodes: int = 200,
                         env_id: str = "CartPole-v1") -> LoopReport:
    """End to end: your ``train_reinforce(envs, config)`` trains from scratch on each seed with the course's
    CartPole config until ``max_episodes`` episodes; the mean return of its last 20 episodes must reach 100 on
    every seed, and the returned policy must be the product of the loop's own updates: one Adam step per batch
    of episodes played on ``envs``, from the seeded initial weights, on the REINFORCE gradient of that batch,
    its actions sampled from the policy (:func:`~.learning_proof.prove_learning`; the first rule broken is
    named). Slow: it trains for real (a few seconds per seed). Returns a :class:`LoopReport`.

    Graded (a grader's handle, see :func:`graded_train_reinforce`): a reduced check, one seed and a shorter
    budget, the policy evaluated by the grader."""
    if is_remote(fn):
        return graded_train_reinforce(fn)

    def train_one(seed: int) -> SeedResult:
        config = make_config("reinforce", env_id, "discrete", seed=seed, max_episodes=max_episodes, progress=False)
        recording = RecordingEnvs(make_raw_vector_env(env_id, config.num_envs, vectorization="auto"))
        envs = CountingEnvs(recording, first_episode_only=True)
        try:
            with seeded_torch(before_the_loop_seeds(seed)), Timer() as timer, \
                    StepRecorder(lambda: recording.clock) as recorder:
                policy = call_learner(fn, "train_reinforce", [envs, config], ["envs", "config"])
            envs.flush()
        finally:
            envs.close()
        if not isinstance(policy, torch.nn.Module):
            raise AssertionError(f"train_reinforce: return the trained policy (a torch module); got "
                                 f"{type(policy).__name__}.")
        returns = np.array([episode[0] for episode in envs.episodes])
        result = _reinforce_result(seed, returns, envs.transitions, timer.seconds, max_episodes, config.num_envs)
        _add_proof(result, recording.data(), recorder.data(policy), dict(policy.named_parameters()), config)
        result.run = learner_run(policy, None, config, envs, [], 1)
        return result

    return train_on_seeds(
        "train_reinforce", seeds,
        f"check_train_reinforce: training your loop on {len(seeds)} seed(s) x {max_episodes} episodes of {env_id}; "
        f"a line appears as each seed finishes.",
        train_one,
        lambda r: (f"  seed {r.seed}: mean return of the last 20 of {len(r.eval_returns)} episodes {r.eval_mean:.1f}, "
                   f"{r.transitions:,} transitions, {r.seconds:.1f} s"),
        _reinforce_failure,
        f"✓ train_reinforce: learned on {len(seeds)}/{len(seeds)} seeds (last 20 episodes >= {LEARNED_RETURN:g})")


def _reinforce_result(seed: int, returns: np.ndarray, transitions: int, seconds: float, max_episodes: int,
                      num_envs: int) -> SeedResult:
    last = float(returns[-20:].mean()) if len(returns) else float("nan")
    result = SeedResult(seed, last, returns, transitions, len(returns) // num_envs, seconds)
    if not max_episodes <= len(returns) < max_episodes + num_envs:
        result.problems.append(f"it played {len(returns)} episodes; train until config.max_episodes = "
                               f"{max_episodes} (one batch of {num_envs} episodes at a time).")
    if not last >= LEARNED_RETURN:
        result.learned = False
        first = f" (the first 20: {returns[:20].mean():.1f})" if len(returns) else " (it played no episode)"
        result.problems.append(f"the mean return of the last 20 episodes is {last:.1f}, below {LEARNED_RETURN:g}"
                               f"{first}.")
    return result


def reinforce_contract(config: ReinforceConfig, obs_dim: int = 4, n_actions: int = 2) -> LoopContract:
    """What Exercise 7 asks of the loop, for :func:`~.learning_proof.prove_learning`: the policy built right after
    ``torch.manual_seed(config.seed)``, Adam with the config's lr and eps, one update per batch of
    ``envs.num_envs`` episodes until ``config.max_episodes``, each on the gradient of the REINFORCE loss."""
    hidden = tuple(config.hidden_sizes)
    with seeded_torch(config.seed):
        initial = dict(CategoricalPolicy(obs_dim, n_actions, hidden).named_parameters())

    def policy(weights: dict[str, Tensor]) -> CategoricalPolicy:
        module = CategoricalPolicy(obs_dim, n_actions, hidden)
        module.load_state_dict({name: torch.as_tensor(value) for name, value in weights.items()})
        return module

    def gradient(module: CategoricalPolicy, batch: Batch, mistake: str | None) -> Tensor:
        loss = reference_reinforce_loss(module, batch.obs, batch.actions, batch.episode_rewards, config,
                                        mistake=mistake)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(module.parameters()))]).double()

    return LoopContract({name: p.detach().clone() for name, p in initial.items()}, policy, gradient,
                        REINFORCE_UPDATE_MISTAKE_TEXTS, config.lr, config.adam_eps,
                        -(-config.max_episodes // config.num_envs))


def _add_proof(result: SeedResult, played: dict[str, Any], steps: list[dict[str, Any]], returned: dict[str, Any],
               config: ReinforceConfig) -> None:
    """Put the broken rule of the learning proof, if any, first among the seed's problems."""
    problem = prove_learning(played, steps, returned, reinforce_contract(config))
    if problem:
        result.problems.insert(0, problem)


def _reinforce_failure(results: list[SeedResult], failed: SeedResult) -> str:
    headline = (f"your loop did not learn on seed {failed.seed}." if not failed.learned else
                f"your loop's returns reached the threshold on seed {failed.seed} (mean {failed.eval_mean:.1f}), but "
                f"it does not do what the exercise specifies:")
    lines = [f"train_reinforce: {headline}"] + [f"  - {problem}" for problem in failed.problems]
    lines.append("Run the stage checks above first; a loop whose stages pass and that fails here usually "
                 "glues them wrongly (seeding, the optimiser's settings, the number of batches).")
    return "\n".join(lines)


# Graded (pgcourse grade): 30 submissions must be graded in minutes, and 3 seeds x 200 episodes cost 10-20 s per
# submission. One seed, 50 episodes, the policy evaluated by the grader (never by the learner's process) over 20
# episodes with its actions sampled (stages.sampled_returns: a greedy evaluation would reward a lucky untrained
# network). Measured after 50 episodes (seeds 0-11): the reference's policy scores 47.8 to 135.2 (seed 0: 92.7),
# after 0.4-1.3 s of training (load average about 9); an untrained policy scores 24.7 to 25.4.
GRADED_SEED, GRADED_EPISODES, GRADED_RETURN = 0, 50, 40.0


def graded_train_reinforce(fn: Any) -> LoopReport:
    """The reduced end-to-end check the grader runs: your loop trains on seed 0 for 50 episodes where your
    functions live; it must play the budget, the policy it returns, played by the grader for 20 episodes
    with its actions sampled, must reach a mean return of 40 (an untrained policy scores about 25, the
    reference 92.7), and the record of what it played and of its optimiser steps, taken next to it, must
    prove that policy the product of its own updates (the notebook's rules, :func:`_add_proof`)."""
    config = make_config("reinforce", "CartPole-v1", "discrete", seed=GRADED_SEED, max_episodes=GRADED_EPISODES,
                         progress=False)

    def train_one(seed: int) -> SeedResult:
        output, counts, record, seconds = _play_recorded(fn, config)
        policy = policy_from_state(output, 4, 2, config.hidden_sizes)
        played = counts.get("episodes") or []
        evaluated = sampled_returns(policy, "CartPole-v1", EVAL_EPISODES, EVAL_SEED)
        result = SeedResult(seed, float(evaluated.mean()), evaluated, int(counts.get("transitions", 0)),
                            len(played) // config.num_envs, seconds)
        if not GRADED_EPISODES <= len(played) < GRADED_EPISODES + config.num_envs:
            result.problems.append(f"it played {len(played)} episodes; train until config.max_episodes = "
                                   f"{GRADED_EPISODES} (one batch of {config.num_envs} episodes at a time).")
        if not result.eval_mean >= GRADED_RETURN:
            result.learned = False
            result.problems.append(f"the policy it returned scores a mean return of {result.eval_mean:.1f} over "
                                   f"{EVAL_EPISODES} episodes (actions sampled), below {GRADED_RETURN:g} after "
                                   f"{GRADED_EPISODES} episodes of training (an untrained policy scores about 25).")
        _add_proof(result, record["played"], record["steps"], output["state"], config)
        return result

    return train_on_seeds(
        "train_reinforce", [GRADED_SEED],
        f"train_reinforce (graded, reduced): your loop trains on seed {GRADED_SEED} for {GRADED_EPISODES} episodes of "
        f"CartPole-v1; the grader plays {EVAL_EPISODES} episodes of the policy it returns.",
        train_one,
        lambda r: (f"  seed {r.seed}: mean return {r.eval_mean:.1f} over {EVAL_EPISODES} episodes (actions sampled), "
                   f"{r.transitions:,} transitions, {r.seconds:.1f} s"),
        _reinforce_failure,
        f"✓ train_reinforce (graded): learned on seed {GRADED_SEED} (mean return >= {GRADED_RETURN:g} after "
        f"{GRADED_EPISODES} episodes)")


EVAL_EPISODES, EVAL_SEED = 20, 10_000


RECORDED_STEPS = 64  # the graded loop's optimiser steps recorded in full (13 are due; 64 x 4,610 parameters x 3
                    # stay within the wire's 2**20 elements), the others counted


def _play_recorded(fn: Any, config: ReinforceConfig) -> tuple[Any, dict[str, Any], dict[str, Any], float]:
    """The learner's loop played where it lives (:func:`.stages.play_loop`), its envs counting and recording what
    it does and its optimiser steps recorded: (what it returned, as data; the counts; the record, ``played`` and
    ``steps``; seconds)."""
    outcome, seconds = play_loop("train_reinforce", fn, config, {"recording": True, "counting": "first_episode_only"},
                                 record_steps=RECORDED_STEPS)
    call = outcome["calls"][0]
    return (call["result"], outcome.get("counts") or {},
            {"played": outcome.get("played"), "steps": call.get("optimizer_steps") or []}, seconds)


STAGE_CHECKS: dict[str, Callable[..., Any]] = {
    "collect_episodes": check_collect_episodes,
    "reinforce_update": check_reinforce_update,
    "train_reinforce": check_train_reinforce,
}
REFERENCES: dict[str, Callable[..., Any]] = {
    "collect_episodes": reference_collect_episodes,
    "reinforce_update": reference_reinforce_update,
    "train_reinforce": reference_train_reinforce,
}
