"""``box_action="tanh"``: the squashed Gaussian of lesson 05, section 11 (issue 27, item 4)."""
import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.rl.config import ConfigError

SHORT = dict(total_steps=4096, progress=False, device="cpu")


def test_the_squash_maps_any_sample_into_the_box_and_keeps_the_sample():
    u = torch.tensor([[-50.0], [-1.0], [0.0], [0.5], [50.0]])
    low, high = torch.tensor([-2.0]), torch.tensor([2.0])
    a = pg.distributions.tanh_env_action(u, low, high)
    assert torch.allclose(a, 2.0 * torch.tanh(u)) and a.abs().max() <= 2.0
    assert u[0, 0] == -50.0  # a new tensor, the sample untouched
    shifted = pg.distributions.tanh_env_action(torch.zeros(1, 2), torch.tensor([0.0, -1.0]), torch.tensor([4.0, 3.0]))
    assert shifted.tolist() == [[2.0, 1.0]]  # the centre of each box for u = 0


def test_the_log_determinant_cancels_in_the_ratio():
    g = torch.Generator().manual_seed(1)
    u = 4 * torch.randn(500, 2, generator=g, dtype=torch.float64)
    m_old, m_new = torch.randn(500, 2, generator=g, dtype=torch.float64), torch.randn(500, 2, generator=g, dtype=torch.float64)
    s_old, s_new = torch.tensor([0.1, -0.2], dtype=torch.float64), torch.tensor([-0.4, 0.3], dtype=torch.float64)
    high = torch.tensor([2.0, 1.0], dtype=torch.float64)
    squashed = (pg.distributions.tanh_squashed_log_prob(m_new, s_new, u, high)
                - pg.distributions.tanh_squashed_log_prob(m_old, s_old, u, high))
    gaussian = pg.gaussian_log_prob(m_new, s_new, u) - pg.gaussian_log_prob(m_old, s_old, u)
    assert torch.allclose(squashed, gaussian, atol=1e-10)


def test_training_with_the_squash_sends_squashed_actions_and_acts_the_same_way():
    sent = []

    def spy_clip(actions, low, high):  # the replaceable clipping: must not be used with box_action="tanh"
        sent.append("clip")
        return pg.distributions.env_action(actions, low, high)

    run = pg.train("ppo", "Pendulum-v1", box_action="tanh", env_action=spy_clip, **SHORT)
    assert sent == [] and run.config.box_action == "tanh"
    obs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 5.0]], dtype=np.float32)
    normalised = run.obs_normalizer(obs) if run.obs_normalizer is not None else obs
    with torch.no_grad():
        mean, _ = run.policy.sample(torch.as_tensor(normalised, dtype=torch.float32), deterministic=True)
    assert np.allclose(run.act(obs, deterministic=True), (2.0 * torch.tanh(mean)).numpy(), atol=1e-6)


def test_clip_stays_the_default_and_its_run_is_unchanged():
    default = pg.train("ppo", "Pendulum-v1", **SHORT)
    explicit = pg.train("ppo", "Pendulum-v1", box_action="clip", **SHORT)
    assert default.config.box_action == "clip"
    assert np.array_equal(default.history.updates["policy_loss"], explicit.history.updates["policy_loss"])


def test_a_saved_squashed_run_acts_squashed_after_loading(tmp_path):
    run = pg.train("ppo", "Pendulum-v1", box_action="tanh", **SHORT)
    loaded = pg.load(run.save(tmp_path / "squashed"))
    obs = np.array([[0.3, -0.9, 7.0]], dtype=np.float32)
    assert loaded.config.box_action == "tanh" and np.array_equal(loaded.act(obs, deterministic=True), run.act(obs, deterministic=True))


def test_an_unknown_box_action_is_an_error_naming_the_choices():
    with pytest.raises(ConfigError, match="box_action.*clip.*tanh"):
        pg.train("ppo", "Pendulum-v1", box_action="sigmoid", **SHORT)
