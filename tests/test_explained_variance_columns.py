"""Explained variance before and after the update, both logged and named (issue 27, item 4).

``explained_variance`` meant the in-sample fit after the update for PPO and TRPO but the critic's prediction before
its step for A2C and REINFORCE with a baseline; the two new columns say which is which for every critic."""
import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.rl.diagnostics import explained_variance

CASES = [("ppo", "CartPole-v1", dict(total_steps=4096)), ("a2c", "CartPole-v1", dict(total_steps=2000)),
         ("trpo", "CartPole-v1", dict(total_steps=4096)), ("reinforce_baseline", "CartPole-v1", dict(max_episodes=24)),
         ("ppo", "Pendulum-v1", dict(total_steps=4096))]


@pytest.mark.parametrize("algo, env_id, budget", CASES)
def test_every_critic_logs_both_and_the_old_column_is_one_of_them(algo, env_id, budget):
    run = pg.train(algo, env_id, seed=0, progress=False, device="cpu", **budget)
    updates = run.history.updates
    before, after, old = (updates[name] for name in ("explained_variance_before", "explained_variance_after",
                                                      "explained_variance"))
    assert len(before) > 0 and np.isfinite(before).all() and np.isfinite(after).all()
    same_as = after if algo in ("ppo", "trpo") else before
    assert np.array_equal(old, same_as)
    assert not np.array_equal(before, after)  # two measurements: the critic changed between them


def test_ppo_before_is_the_rollout_values_explained_variance():
    """_before is computed with the values stored in the rollout: the same as recomputing it from a hook."""
    seen = []

    def spy(values, returns):
        seen.append((values.detach().clone(), returns.detach().clone()))
        return explained_variance(values, returns)

    run = pg.train("ppo", "CartPole-v1", seed=1, total_steps=2048, progress=False, device="cpu",
                   explained_variance=spy)
    # per update: the in-sample fit (explained_variance and _after share it), then _before
    assert len(seen) == 2 * len(run.history.updates["env_step"])
    befores = [float(explained_variance(v, r)) for v, r in seen[1::2]]
    assert np.allclose(run.history.updates["explained_variance_before"], befores)


def test_a_run_saved_before_the_columns_loads_with_nan(tmp_path):
    run = pg.train("ppo", "CartPole-v1", seed=0, total_steps=2048, progress=False, device="cpu")
    path = run.save(tmp_path / "r")
    import json
    history_file = next(p for p in path.rglob("history.json"))
    data = json.loads(history_file.read_text())
    for name in ("explained_variance_before", "explained_variance_after"):
        del data["updates"][name]
    history_file.write_text(json.dumps(data))
    try:
        loaded = pg.load(path)
    except pg.RunLoadError:
        pytest.skip("saved runs carry a digest of their history: an edited one is refused, as it should be")
    assert np.isnan(loaded.history.updates["explained_variance_before"]).all()
