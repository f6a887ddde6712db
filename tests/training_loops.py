"""Lesson 01's REINFORCE loop ``train_reinforce(envs, config)`` written the way learners write it: right ones in
other ways than the reference, and wrong ones, each with the mistake the end-to-end check must name.

Self-contained (its own episode collection and update, written independently of the checks' references), so
that the grader's sandbox can run this source as an answer cell: ``pgcourse.networks.CategoricalPolicy`` is
what the grader offers there. ``TRAINING_LOOPS`` lists ``(stage, fn, expected)``: ``expected`` is ``"passed"``
or a distinctive substring of the message naming the mistake. tests/test_training_loops_agree.py runs each
of them, and tests/wrong_loops.py's train_reinforce and train_ppo loops, through the notebook check and the
grader.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.distributions import Categorical

from pgcourse.rl.networks import CategoricalPolicy

TRAINING_LOOPS: list[tuple[str, object, str]] = []


def _loop(expected: str):
    def register(fn):
        TRAINING_LOOPS.append(("train_reinforce", fn, expected))
        return fn
    return register


def rl_episodes(envs, policy, bug=None):
    """One episode per env from a reset: per-env lists, a Categorical per step (``bug``: how actions are chosen)."""
    obs, _ = envs.reset()
    n = envs.num_envs
    done = [False] * n
    steps = [[] for _ in range(n)]  # (obs, action, reward) of each env's first episode
    with torch.no_grad():
        while not all(done):
            x = torch.tensor(obs, dtype=torch.float32)
            logits = policy(x)
            if bug == "random":
                action = torch.randint(0, logits.shape[-1], (n,))
            elif bug == "greedy":
                action = logits.argmax(-1)
            elif bug == "multinomial":
                action = torch.multinomial(torch.softmax(logits, -1), 1).squeeze(-1)
            else:
                action = Categorical(logits=logits).sample()
            obs, reward, terminated, truncated, _ = envs.step(action.numpy())
            for i in range(n):
                if not done[i]:
                    steps[i].append((x[i], int(action[i]), float(reward[i])))
                    done[i] = bool(terminated[i] or truncated[i])
    return ([torch.stack([s[0] for s in episode]) for episode in steps],
            [torch.tensor([s[1] for s in episode]) for episode in steps],
            [torch.tensor([s[2] for s in episode]) for episode in steps])


def rl_returns(rewards, gamma):
    g, out = 0.0, []
    for r in reversed(rewards.tolist()):
        g = r + gamma * g
        out.append(g)
    return torch.tensor(out[::-1], dtype=torch.float32)


def rl_update(policy, optimizer, obs, actions, rewards, config, bug=None):
    """One REINFORCE step, log_softmax + gather, the mean written as sum / B (``bug``: one classic mistake)."""
    gamma = 1.0 if bug == "undiscounted" else config.gamma
    if bug == "across_episodes":
        returns = rl_returns(torch.cat(rewards), gamma)
    else:
        returns = torch.cat([rl_returns(r, gamma) for r in rewards])
    if config.normalize_weights and bug != "never_normalised":
        returns = (returns - returns.mean()) / (returns.std(unbiased=False) + 1e-8)
    logp = torch.log_softmax(policy(torch.cat(obs)), -1).gather(-1, torch.cat(actions).unsqueeze(-1)).squeeze(-1)
    loss = -(logp * returns).sum() / len(returns)
    if bug == "ascent":
        loss = -loss
    if bug != "no_zero_grad":
        optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def rl_train(envs, config, bug=None, act=None, update_bug=None, batches=None):
    """The loop: seed, build, then one batch and one update at a time until max_episodes episodes."""
    torch.manual_seed(config.seed)
    envs.reset(seed=config.seed)
    policy = CategoricalPolicy(envs.single_observation_space.shape[0], int(envs.single_action_space.n),
                               config.hidden_sizes)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
    played, done = 0, 0
    while (done < batches) if batches is not None else (played < config.max_episodes):
        if bug == "new_optimizer":
            optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
        batch = rl_episodes(envs, policy, act)
        played, done = played + envs.num_envs, done + 1
        for _ in range(2 if bug == "twice" else 1):
            rl_update(policy, optimizer, *batch, config, update_bug)
    return policy


# -- right, written otherwise -----------------------------------------------------------------------------------------

@_loop("passed")
def reinforce_per_env_lists(envs, config):
    """Per-env lists of steps, returns by a Python loop, the loss as a sum over B."""
    return rl_train(envs, config)


@_loop("passed")
def reinforce_multinomial_sampling(envs, config):
    """Actions drawn with torch.multinomial on the softmax: samples of the policy all the same."""
    return rl_train(envs, config, act="multinomial")


@_loop("passed")
def reinforce_batches_counted_and_zero_grad_after_the_step(envs, config):
    """ceil(max_episodes / num_envs) batches counted up front; the gradients zeroed after each step instead of
    before (set_to_none), the optimiser built on a list of the parameters."""
    torch.manual_seed(config.seed)
    envs.reset(seed=config.seed)
    policy = CategoricalPolicy(4, 2, config.hidden_sizes)
    optimizer = torch.optim.Adam(list(policy.parameters()), lr=config.lr, eps=config.adam_eps)
    for _ in range(-(-config.max_episodes // envs.num_envs)):
        obs, actions, rewards = rl_episodes(envs, policy)
        returns = torch.cat([rl_returns(r, config.gamma) for r in rewards]).double()
        weights = ((returns - returns.mean()) / (returns.std(unbiased=False) + 1e-8)).float()
        loss = -(Categorical(logits=policy(torch.cat(obs))).log_prob(torch.cat(actions)) * weights).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return policy


# -- wrong ------------------------------------------------------------------------------------------------------------

def _hand_made_controller(policy):
    """Weights that balance the pole: push towards the side the pole falls to (angle and angular velocity)."""
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
        layers = [layer for layer in policy.net if isinstance(layer, torch.nn.Linear)]
        layers[0].weight[0, 2], layers[0].weight[0, 3] = 10.0, 3.0
        for layer in layers[1:-1]:
            layer.weight[0, 0] = 3.0
        layers[-1].weight[1, 0], layers[-1].weight[0, 0] = 10.0, -10.0
    return policy


@_loop("took no optimiser step")
def reinforce_random_play_then_hand_made_weights(envs, config):
    """The finding of issue 26: 50 episodes of random actions, then a hand-made controller in the weights."""
    torch.manual_seed(config.seed)
    envs.reset(seed=config.seed)
    policy = CategoricalPolicy(4, 2, config.hidden_sizes)
    for _ in range(-(-config.max_episodes // envs.num_envs)):
        rl_episodes(envs, policy, "random")
    return _hand_made_controller(policy)


@_loop("not the one your updates trained")
def reinforce_trained_then_hand_made_weights(envs, config):
    """Trains for real, then writes the controller over what it learned."""
    return _hand_made_controller(rl_train(envs, config))


@_loop("not the one your updates trained")
def reinforce_returns_an_untrained_copy(envs, config):
    """Trains a policy and returns a fresh one built with the same seed."""
    rl_train(envs, config)
    torch.manual_seed(config.seed)
    return CategoricalPolicy(4, 2, config.hidden_sizes)


@_loop("not samples of the policy")
def reinforce_random_actions(envs, config):
    """Plays uniformly random actions and trains on them."""
    return rl_train(envs, config, act="random")


@_loop("not samples of the policy")
def reinforce_greedy_actions(envs, config):
    """Plays the most likely action."""
    return rl_train(envs, config, act="greedy")


@_loop("never stepped the envs it was given")
def reinforce_on_its_own_envs(envs, config):
    """Trains on envs of its own making; the envs it was given are only reset."""
    import gymnasium as gym

    own = gym.make_vec("CartPole-v1", num_envs=envs.num_envs, vectorization_mode="sync")
    try:
        return rl_train(own, config)
    finally:
        own.close()


@_loop("the returns are not discounted")
def reinforce_undiscounted(envs, config):
    return rl_train(envs, config, update_bug="undiscounted")


@_loop("the step goes the wrong way")
def reinforce_ascends_the_loss(envs, config):
    return rl_train(envs, config, update_bug="ascent")


@_loop("the gradients are not zeroed")
def reinforce_without_zero_grad(envs, config):
    return rl_train(envs, config, update_bug="no_zero_grad")


@_loop("discounted across episode boundaries")
def reinforce_discounted_across_episodes(envs, config):
    return rl_train(envs, config, update_bug="across_episodes")


@_loop("config.normalize_weights is not followed")
def reinforce_never_normalised(envs, config):
    return rl_train(envs, config, update_bug="never_normalised")


@_loop("came before every env had finished its episode")
def reinforce_update_after_every_step(envs, config):
    """One update per env step, on that step alone, weighted by its reward (an 'online' REINFORCE)."""
    torch.manual_seed(config.seed)
    obs, _ = envs.reset(seed=config.seed)
    policy = CategoricalPolicy(4, 2, config.hidden_sizes)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
    episodes = 0
    while episodes < config.max_episodes:
        x = torch.tensor(obs, dtype=torch.float32)
        dist = Categorical(logits=policy(x))
        action = dist.sample()
        obs, reward, terminated, truncated, _ = envs.step(action.numpy())
        episodes += int(np.sum(terminated | truncated))
        loss = -(dist.log_prob(action) * torch.tensor(reward, dtype=torch.float32)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return policy


@_loop("train until config.max_episodes")
def reinforce_twice_the_budget(envs, config):
    return rl_train(envs, config, batches=2 * -(-config.max_episodes // envs.num_envs))


@_loop("build one, before the loop")
def reinforce_new_optimizer_each_batch(envs, config):
    """A new Adam for each batch: its moment estimates restart every update."""
    return rl_train(envs, config, bug="new_optimizer")


@_loop("no new batch of episodes")
def reinforce_two_updates_per_batch(envs, config):
    return rl_train(envs, config, bug="twice")


@_loop("weights before your first update")
def reinforce_policy_built_twice(envs, config):
    """A leftover line builds a policy first; the one trained is the second built after the seed."""
    torch.manual_seed(config.seed)
    envs.reset(seed=config.seed)
    policy = CategoricalPolicy(4, 2, config.hidden_sizes)
    policy = CategoricalPolicy(4, 2, config.hidden_sizes)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=config.adam_eps)
    for _ in range(-(-config.max_episodes // envs.num_envs)):
        rl_update(policy, optimizer, *rl_episodes(envs, policy), config)
    return policy


@_loop("the exercise's is torch.optim.Adam")
def reinforce_with_sgd(envs, config):
    torch.manual_seed(config.seed)
    envs.reset(seed=config.seed)
    policy = CategoricalPolicy(4, 2, config.hidden_sizes)
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.05)
    for _ in range(-(-config.max_episodes // envs.num_envs)):
        rl_update(policy, optimizer, *rl_episodes(envs, policy), config)
    return policy
