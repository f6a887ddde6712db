"""Lesson 02's settings of REINFORCE: ``critic_epochs`` (refit the critic on each batch) and
``center_weights`` (normalise without the batch-mean baseline): validation, defaults and behaviour."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.config import ConfigError, ReinforceConfig, config_from_dict, make_config


def _train(algo="reinforce_baseline", **settings):
    return pg.train(algo, "CartPole-v1", seed=0, device="cpu", max_episodes=16, progress=False, **settings)


@pytest.mark.parametrize("value", [0, -1, 1001, 2.0, True, "3"])
def test_critic_epochs_must_be_a_count_of_steps(value):
    with pytest.raises(ConfigError, match=r"critic_epochs=.* expected an integer in \[1, 1000\]"):
        make_config("reinforce_baseline", "CartPole-v1", "discrete", critic_epochs=value)


def test_critic_epochs_needs_a_critic():
    with pytest.raises(ConfigError, match=r"critic_epochs=5 is invalid: expected 1 for algo='reinforce'"):
        make_config("reinforce", "CartPole-v1", "discrete", critic_epochs=5)
    assert make_config("reinforce", "CartPole-v1", "discrete", critic_epochs=1).critic_epochs == 1


@pytest.mark.parametrize("value", [0, 1, None, "yes"])
def test_center_weights_is_a_bool(value):
    with pytest.raises(ConfigError, match=r"center_weights=.* expected True or False"):
        make_config("reinforce", "CartPole-v1", "discrete", center_weights=value)


def test_defaults_keep_the_old_behaviour_and_old_saved_configs_load():
    config = make_config("reinforce_baseline", "CartPole-v1", "discrete")
    assert config.critic_epochs == 1 and config.center_weights is True
    saved = config.to_dict()
    del saved["critic_epochs"], saved["center_weights"]  # a config saved before the fields existed
    loaded = config_from_dict(saved)
    assert isinstance(loaded, ReinforceConfig) and loaded.critic_epochs == 1 and loaded.center_weights is True


def test_explicit_defaults_give_the_same_run_bit_for_bit():
    plain = _train()
    explicit = _train(critic_epochs=1, center_weights=True)
    for name in ("return", "env_step"):
        np.testing.assert_array_equal(plain.history.episodes[name], explicit.history.episodes[name])
    for name in ("policy_loss", "value_loss", "explained_variance", "entropy"):
        np.testing.assert_array_equal(plain.history.updates[name], explicit.history.updates[name])


def test_more_critic_epochs_fit_the_returns_better():
    one, many = _train(), _train(critic_epochs=20)
    # the first update sees the same batch (same seed, same untrained policy) in both runs
    np.testing.assert_array_equal(one.history.episodes["return"][:4], many.history.episodes["return"][:4])
    obs = torch.randn(1, 4)
    assert not torch.equal(one.value_net(obs), many.value_net(obs))
    # the critic of the later updates predicts the returns better when it is refitted on each batch
    assert np.mean(many.history.updates["value_loss"][1:]) < np.mean(one.history.updates["value_loss"][1:])


def test_uncentred_weights_are_scaled_not_shifted():
    centred, uncentred = _train("reinforce"), _train("reinforce", center_weights=False)
    np.testing.assert_array_equal(centred.history.episodes["return"][:4], uncentred.history.episodes["return"][:4])
    # CartPole's returns are all positive: uncentred, every weight is positive and the first losses differ
    assert centred.history.updates["policy_loss"][0] != uncentred.history.updates["policy_loss"][0]


def test_uncentred_weights_have_unit_std_and_keep_their_sign(monkeypatch):
    seen = {}

    def spy_loss(log_probs, weights):
        seen.setdefault("weights", weights.detach().clone())
        return -(log_probs * weights).mean()

    run = pg.train("reinforce", "CartPole-v1", seed=0, device="cpu", max_episodes=4, progress=False,
                   center_weights=False, reinforce_loss=spy_loss)
    weights = seen["weights"]
    assert len(run.history.updates["policy_loss"]) == 1
    assert (weights > 0).all()  # returns of CartPole are positive and only scaled
    assert float(weights.std(unbiased=False)) == pytest.approx(1.0, abs=1e-5)


def test_lesson_02_caches_are_the_sweeps_regenerate_02_describes():
    # tools/regenerate_02.py writes them; notebooks/02_reinforce_baseline.ipynb reads them (sections 5 and 6)
    import importlib.util
    from pathlib import Path

    from pgcourse.sweeps import load_results

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("regenerate_02", root / "tools" / "regenerate_02.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, sweep in module.SWEEPS.items():
        folder, algo, arms, seeds, settings = sweep.folder, sweep.algo, sweep.arms, sweep.seeds, sweep.settings
        results = load_results(folder)  # reads every trial and checks its digest
        assert not results.missing and not results.failed, name
        assert len(results.trials) == len(arms) * seeds >= 10 * len(arms), name
        labels = {record.label for record in results.trials}
        assert labels == {arm["label"] for arm in arms}, name
        for record in results.trials:
            assert all(record.config[key] == value for key, value in settings.items()), record.trial_id
        assert module.command(name) == f"python tools/regenerate_02.py {name} --workers 2"
