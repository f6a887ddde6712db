"""``envs.first_episode_lengths``: the data half of lesson 01's ``collect_episodes`` (exercise 5a's reference)."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from pgcourse.rl import envs
from pgcourse.course.checks import ch01_loop


def test_lengths_agree_with_the_reference_loop_on_real_cartpole_batches():
    """The pure function, applied to the flags a real vector env returned, gives the episode lengths that the
    reference collect_episodes (which tracks them step by step) cut the batch at."""
    for seed in range(3):
        vec = gym.make_vec("CartPole-v1", num_envs=5, vectorization_mode="sync")
        vec.reset(seed=seed)
        torch.manual_seed(seed)
        policy = torch.nn.Linear(4, 2)
        terminated_rows, truncated_rows = [], []
        obs_np, _ = vec.reset()
        ended = np.zeros(5, dtype=bool)
        while not ended.all():
            actions = torch.distributions.Categorical(logits=policy(torch.as_tensor(obs_np, dtype=torch.float32)))
            obs_np, _, terminated, truncated, _ = vec.step(actions.sample().numpy())
            terminated_rows.append(torch.as_tensor(terminated))
            truncated_rows.append(torch.as_tensor(truncated))
            ended |= terminated | truncated
        lengths = envs.first_episode_lengths(torch.stack(terminated_rows), torch.stack(truncated_rows))
        vec.reset(seed=seed)
        torch.manual_seed(seed)
        policy = torch.nn.Linear(4, 2)
        _, _, episode_rewards = ch01_loop.reference_collect_episodes(vec, policy)
        assert lengths.tolist() == [len(rewards) for rewards in episode_rewards]
        assert lengths.dtype == torch.int64
        vec.close()


def test_both_flags_on_one_step_end_the_episode_once():
    terminated = torch.tensor([[0, 0], [1, 0], [0, 1]], dtype=torch.bool)
    truncated = torch.tensor([[0, 0], [1, 0], [0, 0]], dtype=torch.bool)
    assert envs.first_episode_lengths(terminated, truncated).tolist() == [2, 3]


def test_an_env_that_never_ended_is_an_error_naming_it():
    terminated = torch.tensor([[0, 0], [1, 0]], dtype=torch.bool)
    with pytest.raises(ValueError, match=r"env\(s\) \[1\] did not end an episode within the 2 steps"):
        envs.first_episode_lengths(terminated, torch.zeros_like(terminated))


def test_flags_of_the_wrong_shape_are_an_error():
    with pytest.raises(ValueError, match=r"\[T, N\] step-by-env flags, got shape \(3,\)"):
        envs.first_episode_lengths(torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool))
