"""Validated hyperparameters: every bad value fails early with the field's name and its allowed range."""
from __future__ import annotations

import json
import re

import pytest

import pgcourse as pg
from pgcourse.rl.config import (ALGORITHMS, A2CConfig, ConfigError, PPOConfig, ReinforceConfig, config_from_dict,
                                default_overrides, make_config)


def config_error(algo: str = "ppo", env_id: str = "CartPole-v1", kind: str = "discrete", **overrides) -> str:
    with pytest.raises(ConfigError) as info:
        make_config(algo, env_id, kind, **overrides)
    return str(info.value)


@pytest.mark.parametrize("field, value, allowed", [
    ("lr", -1e-3, "(0.0, 1.0]"),
    ("lr", 0.0, "(0.0, 1.0]"),
    ("lr", float("nan"), "(0.0, 1.0]"),
    ("lr", "0.001", "(0.0, 1.0]"),
    ("critic_lr", 2.0, "(0.0, 1.0]"),
    ("gamma", 0, "(0.0, 1.0]"),
    ("gamma", 0.0, "(0.0, 1.0]"),
    ("gamma", 1.5, "(0.0, 1.0]"),
    ("gae_lambda", 1.2, "[0.0, 1.0]"),
    ("gae_lambda", -0.1, "[0.0, 1.0]"),
    ("num_envs", 0, "[1, inf]"),  # the upper limit is memory: tests/test_num_envs_memory.py
    ("num_envs", 2.5, "[1, inf]"),
    ("num_envs", True, "[1, inf]"),
    ("n_steps", 0, "[1, 100000]"),
    ("total_steps", 0, "[1, inf]"),
    ("seed", -1, "[0, 4294967295]"),
    ("update_epochs", 0, "[1, 1000]"),
    ("clip_eps", 0.0, "(0.0, 1000000.0]"),
    ("target_kl", 0.0, "(0.0, 1000000.0]"),
    ("ent_coef", -0.01, "[0.0, 1.0]"),
    ("max_grad_norm", 0.0, "(0.0, 1000000.0]"),
    ("log_std_init", 5.0, "[-5.0, 2.0]"),
    ("eval_episodes", 0, "[1, 1000]"),
    ("eval_every", -5, "[0, inf]"),
    ("adam_eps", 1e-40, "[1e-30, 1.0]"),  # below float32's normal numbers (5e-324 is 0 there: NaN on a zero gradient)
    ("max_episodes", 0, "[1, inf] or None"),
    ("torch_threads", 0, "[1, 256] or None"),
])
def test_bad_numeric_values_name_field_and_range(field, value, allowed):
    message = config_error(**{field: value})
    assert message.startswith(f"{field}=")
    assert repr(value) in message
    assert allowed in message


def test_minibatch_size_larger_than_batch():
    message = config_error(num_envs=2, n_steps=16, minibatch_size=64)
    assert "minibatch_size=64" in message
    assert "num_envs * n_steps" in message and "32" in message


def test_minibatch_size_equal_to_batch_is_fine():
    config = make_config("ppo", "CartPole-v1", "discrete", num_envs=2, n_steps=16, minibatch_size=32)
    assert config.batch_size == 32


@pytest.mark.parametrize("device", ["gpu", "CUDA", "", "tpu:0"])
def test_bad_device_string(device):
    message = config_error(device=device)
    assert message.startswith("device=")
    assert "'auto'" in message and "'cpu'" in message and "'cuda'" in message


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_device_strings_accepted(device):
    # validation only checks the spelling; availability is checked when training starts
    assert make_config("a2c", "CartPole-v1", "discrete", device=device).device == device


@pytest.mark.parametrize("field, value, words", [
    ("hidden_sizes", (), "hidden_sizes"),
    ("hidden_sizes", (64, 0), "positive layer widths"),
    ("hidden_sizes", (100_000,), "an integer in [1, 65536]"),
    ("on_nonfinite", "ignore", "'stop' or 'raise'"),
    ("anneal_lr", 1, "True or False"),
    ("normalize_obs", "yes", "True or False"),
    ("eval_mode", "argmax_please", "'greedy' (the most likely action"),
    ("env_kwargs", "continuous=True", "a dict of keyword arguments for gym.make"),
    ("env_kwargs", {"render_mode": "human"}, "no 'render_mode' key"),
])
def test_other_bad_values(field, value, words):
    message = config_error(**{field: value})
    assert message.startswith(f"{field}=")
    assert words in message


def test_stop_when_solved_needs_evaluations():
    message = config_error(stop_when_solved=True, eval_every=0)
    assert "stop_when_solved" in message and "eval_every" in message


def test_unknown_trap_is_rejected():
    """The config holds trap names as a record; pg.train plants them and rejects unknown ones."""
    import pgcourse as pg

    with pytest.raises(ConfigError, match="no_such_trap"):
        pg.train("ppo", "CartPole-v1", traps=("no_such_trap",))
    assert "traps" in config_error(traps=(1,))


def test_unknown_algo():
    with pytest.raises(ConfigError, match="algo='sac'"):
        make_config("sac", "CartPole-v1", "discrete")
    with pytest.raises(ConfigError, match="algo='sac'"):
        pg.train("sac", "CartPole-v1", progress=False)


def test_setting_of_another_algorithm_is_unknown():
    # clip_eps belongs to PPO; an A2C config must not silently ignore it
    message = config_error("a2c", clip_eps=0.1)
    assert "unknown setting" in message and "clip_eps" in message


def test_unknown_override_key_via_make_config_lists_valid_settings():
    message = config_error(learning_rate=1e-3)
    assert "learning_rate" in message
    assert "'lr'" in message  # the valid settings are listed


def test_unknown_override_key_via_train():
    with pytest.raises(ConfigError, match="learning_rate"):
        pg.train("ppo", "CartPole-v1", learning_rate=1e-3, progress=False)


@pytest.mark.parametrize("name, meant", [
    ("learning_rate", "lr"),          # Stable-Baselines3 / CleanRL
    ("clip_range", "clip_eps"),       # Stable-Baselines3
    ("n_epochs", "update_epochs"),    # Stable-Baselines3
    ("batch_size", "minibatch_size"),  # Stable-Baselines3's minibatch
    ("clip_coef", "clip_eps"),        # CleanRL
    ("clip_epz", "clip_eps"),         # a typo: difflib
    ("gae_lamda", "gae_lambda"),      # a typo: difflib
])
def test_misspelt_setting_says_did_you_mean(name, meant):
    message = config_error(**{name: 0.1})
    assert f"did you mean '{meant}'?" in message, message


def test_another_librarys_name_says_which_library_calls_it_so():
    message = config_error(learning_rate=1e-3)
    assert "did you mean 'lr'?" in message and "Stable-Baselines3" in message


def test_setting_of_another_algorithm_names_the_algorithm_that_has_it():
    message = config_error("a2c", clip_eps=0.1)
    assert "clip_eps" in message and "algo='ppo'" in message, message


def test_name_with_no_near_match_gets_no_guess():
    message = config_error(zzzz=1)
    assert "did you mean" not in message and "unknown setting for algo='ppo': 'zzzz'" in message


def test_unknown_setting_via_train_lists_the_replaceable_functions():
    with pytest.raises(ConfigError) as info:
        pg.train("ppo", "CartPole-v1", learning_rate=1e-3, progress=False)
    message = str(info.value)
    assert "did you mean 'lr'?" in message
    for name in pg.Components.names():
        assert name in message, f"replaceable function {name} not listed"


def test_misspelt_replaceable_function_via_train_suggests_it():
    with pytest.raises(ConfigError) as info:
        pg.train("a2c", "CartPole-v1", compute_gea=pg.compute_gae, progress=False)
    assert "did you mean 'compute_gae'?" in str(info.value)


def test_bad_value_via_train():
    with pytest.raises(ConfigError, match=re.escape("gamma=1.5")):
        pg.train("a2c", "CartPole-v1", gamma=1.5, progress=False)


@pytest.mark.parametrize("component", ["compute_gae", "value_loss", "clipped_surrogate_loss"])
def test_non_callable_component_override(component):
    with pytest.raises(ConfigError) as info:
        pg.train("ppo", "CartPole-v1", progress=False, total_steps=64, **{component: 3})
    assert f"{component}=3" in str(info.value)
    assert "function" in str(info.value)


@pytest.mark.parametrize("algo", ["reinforce", "reinforce_baseline"])
def test_discrete_only_algorithm_on_continuous_env(algo):
    with pytest.raises(ConfigError) as info:
        pg.train(algo, "Pendulum-v1", total_steps=64, progress=False)
    message = str(info.value)
    assert algo in message
    assert "Discrete" in message
    assert "'ppo'" in message and "'a2c'" in message


def test_config_errors_are_value_errors():
    assert issubclass(ConfigError, ValueError)


# ---------------------------------------------------------------------------------------------
# defaults and round trips
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("algo", ALGORITHMS)
@pytest.mark.parametrize("env_id, kind", [("CartPole-v1", "discrete"), ("Pendulum-v1", "continuous")])
def test_defaults_validate(algo, env_id, kind):
    config = make_config(algo, env_id, kind)
    config.validate()  # idempotent: a valid config stays valid
    assert config.algo == algo and config.env_id == env_id
    for name, value in default_overrides(algo, kind).items():
        assert getattr(config, name) == value
    if isinstance(config, PPOConfig):
        assert config.minibatch_size <= config.batch_size


@pytest.mark.parametrize("cls, algo", [(ReinforceConfig, "reinforce"), (ReinforceConfig, "reinforce_baseline"),
                                       (A2CConfig, "a2c"), (PPOConfig, "ppo")])
def test_class_defaults_validate(cls, algo):
    config = cls(algo=algo, env_id="CartPole-v1")
    assert config.algo == algo


def test_config_class_rejects_wrong_algo():
    with pytest.raises(ConfigError, match="algo"):
        PPOConfig(algo="a2c", env_id="CartPole-v1")
    with pytest.raises(ConfigError, match="algo"):
        ReinforceConfig(algo="ppo", env_id="CartPole-v1")


def test_overrides_beat_defaults():
    config = make_config("ppo", "CartPole-v1", "discrete", lr=1e-4, hidden_sizes=[32])
    assert config.lr == 1e-4
    assert config.hidden_sizes == (32,)  # a list becomes a tuple


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_to_dict_round_trip_through_json(algo):
    config = make_config(algo, "CartPole-v1", "discrete", seed=7, hidden_sizes=(16, 8), eval_every=100,
                         stop_when_solved=True, solve_threshold=10.0, eval_mode="sample",
                         env_kwargs={"sutton_barto_reward": True})
    data = json.loads(json.dumps(config.to_dict()))
    restored = config_from_dict(data)
    assert type(restored) is type(config)
    assert restored == config
    assert restored.to_dict() == config.to_dict()


def test_config_from_dict_rejects_bad_data():
    with pytest.raises(ConfigError):
        config_from_dict({"env_id": "CartPole-v1"})
    with pytest.raises(ConfigError, match="unknown algo"):
        config_from_dict({"algo": "dqn", "env_id": "CartPole-v1"})
    data = make_config("a2c", "CartPole-v1", "discrete").to_dict()
    data["bogus"] = 1
    with pytest.raises(ConfigError, match="bogus"):
        config_from_dict(data)
    data = make_config("a2c", "CartPole-v1", "discrete").to_dict()
    data["gamma"] = 2.0
    with pytest.raises(ConfigError, match="gamma"):
        config_from_dict(data)


def test_resolved_solve_threshold():
    assert make_config("ppo", "CartPole-v1", "discrete").resolved_solve_threshold == 475.0
    assert make_config("ppo", "CartPole-v1", "discrete", solve_threshold=10.0).resolved_solve_threshold == 10.0
    assert make_config("ppo", "Unknown-v0", "discrete").resolved_solve_threshold is None


def test_every_algorithms_class_defaults_form_a_valid_config():
    # default_config_dict fills fields an older saved config lacks (sweep --verify, loading runs); TRPOConfig once
    # inherited A2C's n_steps=16 beside its own minibatch_size=256 and could not be built from its class defaults
    from pgcourse.rl.config import ALGORITHMS, default_config_dict

    for algo in ALGORITHMS:
        assert default_config_dict(algo)["algo"] == algo


def test_a_discrete_only_algorithm_on_box_actions_names_every_algorithm_that_can():
    """The error said "Use 'a2c' or 'ppo'" and left out trpo, which lesson 07 trains on Pendulum."""
    with pytest.raises(pg.ConfigError) as info:
        pg.train("reinforce", "Pendulum-v1", total_steps=10)
    assert "'a2c', 'ppo', 'trpo'" in str(info.value)
