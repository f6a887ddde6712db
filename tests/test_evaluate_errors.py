"""pg.evaluate takes a saved run's folder; a mismatched env and Discrete observations get errors that say what to do (issue 15, item 7)."""
import textwrap
from pathlib import Path

import pytest

import pgcourse as pg


@pytest.mark.parametrize("as_type", [str, Path])
def test_evaluate_accepts_a_run_folder_path(tmp_path, as_type):
    run = pg.train("ppo", "CartPole-v1", total_steps=512, num_envs=4, n_steps=32, minibatch_size=64, progress=False)
    folder = run.save(tmp_path / "run")
    assert pg.evaluate(as_type(folder), episodes=2).returns.tolist() == pg.evaluate(run, episodes=2).returns.tolist()


def test_evaluate_on_an_env_with_other_spaces_says_the_envs_differ():
    run = pg.train("ppo", "CartPole-v1", total_steps=512, num_envs=4, n_steps=32, minibatch_size=64, progress=False)
    with pytest.raises(ValueError, match="the environments differ: Acrobot-v1"):
        pg.evaluate(run, "Acrobot-v1", episodes=1)
def test_discrete_observations_say_how_to_one_hot_them_and_the_code_works():
    with pytest.raises(ValueError) as info:
        pg.train("ppo", "FrozenLake-v1", total_steps=256, progress=False)
    message = str(info.value)
    assert "Discrete(16)" in message and "one-hot" in message and "FlattenObservation" in message
    code = textwrap.dedent(message.split("\n\n")[1]).replace("pg.train('ppo', ", "pg.train('ppo', total_steps=256, "
                                                                                    "num_envs=2, n_steps=64, minibatch_size=64, progress=False, env_id=")
    namespace = {"pg": pg}
    exec(code, namespace)  # the message's own code trains a run
    assert namespace["run"].observation_space.shape == (16,)
