"""Per-environment defaults (config._ENV_ID_DEFAULTS) sit over the per-action-kind ones and under the user's."""
from __future__ import annotations

import pytest

from pgcourse.bench.results import DEFAULT_SUITE, MAX_EPISODE_STEPS
from pgcourse.rl.config import _ENV_DEFAULTS, _ENV_ID_DEFAULTS, SOLVE_THRESHOLDS, default_overrides, make_config


def test_lunar_lander_ppo_gets_its_tuned_defaults():
    config = make_config("ppo", "LunarLander-v3", "discrete")
    tuned = _ENV_ID_DEFAULTS[("ppo", "LunarLander-v3")]
    assert {name: getattr(config, name) for name in tuned} == tuned
    assert (config.num_envs, config.n_steps, config.gamma, config.total_steps) == (16, 128, 0.999, 1_000_000)


def test_the_user_still_wins_over_the_tuned_defaults():
    config = make_config("ppo", "LunarLander-v3", "discrete", gamma=0.99, total_steps=5_000)
    assert (config.gamma, config.total_steps, config.num_envs) == (0.99, 5_000, 16)


@pytest.mark.parametrize("algo, env_id, kind", [("ppo", "CartPole-v1", "discrete"), ("ppo", "Pendulum-v1", "continuous"),
                                                ("ppo", "Acrobot-v1", "discrete"), ("a2c", "LunarLander-v3", "discrete"),
                                                ("reinforce", "LunarLander-v3", "discrete")])
def test_other_pairs_keep_the_per_action_kind_defaults(algo, env_id, kind):
    # the cached sweeps in figures/ depend on these staying as they are
    assert default_overrides(algo, kind, env_id) == _ENV_DEFAULTS[(algo, kind)] == default_overrides(algo, kind)
    config = make_config(algo, env_id, kind)
    assert {name: getattr(config, name) for name in _ENV_DEFAULTS[(algo, kind)]} == _ENV_DEFAULTS[(algo, kind)]


def test_default_overrides_returns_a_copy():
    default_overrides("ppo", "discrete", "LunarLander-v3")["gamma"] = 0.5
    assert _ENV_ID_DEFAULTS[("ppo", "LunarLander-v3")]["gamma"] == 0.999


def test_every_tuned_pair_names_a_known_environment_and_is_in_the_benchmark():
    suite = {(case.algo, case.env_id) for case in DEFAULT_SUITE}
    for algo, env_id in _ENV_ID_DEFAULTS:
        assert env_id in SOLVE_THRESHOLDS and env_id in MAX_EPISODE_STEPS
        assert (algo, env_id) in suite
        budget = next(case.total_steps for case in DEFAULT_SUITE if (case.algo, case.env_id) == (algo, env_id))
        assert budget == _ENV_ID_DEFAULTS[(algo, env_id)]["total_steps"]  # the bench measures the stated budget
