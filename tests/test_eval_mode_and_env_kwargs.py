"""Issue 15, items 4 and 7: how a run is evaluated (``eval_mode``: greedy or sampled) and environments made
with keyword arguments (``env_kwargs``) or registered by the user (``gymnasium.register``).

Everything here trains for a few thousand steps at most; the greedy-against-sampled disagreement on Acrobot
is built by hand: a policy whose most likely action is always "no torque" (greedy: -500 in every episode)
but which pumps energy into the swing with probability 0.45 at each step (sampled: it reaches the goal).
"""
from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

import pgcourse as pg
from pgcourse.cli import main, parse_env_arg
from pgcourse.rl.config import (EVAL_MODE_DEFAULTS, ConfigError, PPOConfig, config_from_dict, fill_absent_defaults,
                                make_config)
from pgcourse.rl.envs import SeededCartPoleVectorEnv, env_spaces, make_raw_vector_env
from pgcourse.rl.evaluation import compare_modes, evaluate, modes_disagree
from pgcourse.course.views.render import rollout_frames
from pgcourse.course.sweeps import ResultsFolder, SweepResultsError, expand, sweep, verify
from pgcourse.course.sweeps.driver import _expected_config, comparable_config
from pgcourse.course.sweeps.spec import action_kind_of
from pgcourse.course.sweeps.trial import history_digest

REPO = Path(__file__).resolve().parent.parent


# -- a user's environment, registered when this module is imported ----------------------------------
class LineEnv(gym.Env):
    """Walk right along a line of ``length`` cells to the goal (+1, episode ends); -0.01 a step otherwise.

    ``obs_dim`` pads the observation (position, then zeros), ``continuous`` makes the action a Box in
    [-1, 1] (right when positive) instead of Discrete(2) (1 is right): keyword arguments that change the
    spaces, as LunarLander-v3's ``continuous`` does."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, length: int = 5, obs_dim: int = 2, continuous: bool = False, render_mode: str | None = None):
        self.length, self.render_mode = length, render_mode
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32) if continuous else gym.spaces.Discrete(2)
        self.position = 0

    def _obs(self) -> np.ndarray:
        obs = np.zeros(self.observation_space.shape, np.float32)
        obs[0] = self.position / self.length
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.position = 0
        return self._obs(), {}

    def step(self, action):
        right = float(np.asarray(action).reshape(-1)[0]) > 0 if self.action_space.shape else int(action) == 1
        self.position = min(max(self.position + (1 if right else -1), -self.length), self.length)
        done = self.position >= self.length
        return self._obs(), 1.0 if done else -0.01, done, False, {}

    def render(self):
        frame = np.zeros((16, 8 * (2 * self.length + 1), 3), np.uint8)
        column = 8 * (self.position + self.length)
        frame[:, column:column + 8] = 255
        return frame


LINE_ID = "PgTestLine-v0"
if LINE_ID not in gym.registry:  # a worker importing this module for "module:PgTestLine-v0" registers it too
    gym.register(id=LINE_ID, entry_point=LineEnv, max_episode_steps=20)
IMPORTABLE_LINE_ID = f"{__name__}:{LINE_ID}"  # what a sweep's worker processes can make


def _train_tiny(env_id: str = "CartPole-v1", **overrides):
    overrides.setdefault("total_steps", 1024)
    return pg.train("ppo", env_id, seed=0, progress=False, **overrides)


# -- eval_mode: the config field ---------------------------------------------------------------------
def test_eval_mode_defaults_per_environment():
    assert PPOConfig(algo="ppo", env_id="Acrobot-v1").eval_mode == "greedy"  # the class default
    assert make_config("ppo", "CartPole-v1", "discrete").eval_mode == "greedy"
    assert make_config("ppo", "Pendulum-v1", "continuous").eval_mode == "greedy"
    assert EVAL_MODE_DEFAULTS == {"Acrobot-v1": "sample"}
    assert make_config("ppo", "Acrobot-v1", "discrete").eval_mode == "sample"
    assert make_config("a2c", "Acrobot-v1", "discrete", eval_mode="greedy").eval_mode == "greedy"


@pytest.mark.parametrize("value, hint", [("stochastic", "did you mean 'sample'?"), ("gredy", "did you mean 'greedy'?"),
                                         ("deterministic", "did you mean 'greedy'?"), (True, "'greedy'")])
def test_a_bad_eval_mode_says_what_the_modes_are(value, hint):
    with pytest.raises(ConfigError) as error:
        make_config("ppo", "CartPole-v1", "discrete", eval_mode=value)
    message = str(error.value)
    assert message.startswith(f"eval_mode={value!r} is invalid") and hint in message
    assert "argmax" in message and "drawn from the policy" in message


def test_an_other_librarys_name_points_to_eval_mode_and_env_kwargs():
    with pytest.raises(ConfigError, match=r"'deterministic' \(did you mean 'eval_mode'\?"):
        pg.train("ppo", "CartPole-v1", deterministic=True)
    with pytest.raises(ConfigError, match=r"'env_config' \(did you mean 'env_kwargs'\? env_config is its name in RLl"):
        pg.train("ppo", "CartPole-v1", env_config={})


# -- eval_mode: evaluation ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pumping_acrobot():
    """A run on Acrobot-v1 whose policy is set by hand: "no torque" (action 1) is always the most likely
    action, and with probability 0.45 it pushes in the direction joint 2 is turning (energy pumping)."""
    run = pg.train("ppo", "Acrobot-v1", seed=0, total_steps=512, progress=False, hidden_sizes=(1,),
                   eval_mode="greedy")
    first, _, last = run.policy.net  # Linear(6, 1), Tanh, Linear(1, 3)
    with torch.no_grad():
        first.weight.zero_()
        first.weight[0, 5] = 20.0  # h = tanh(20 * angular velocity of joint 2), about its sign
        first.bias.zero_()
        last.weight.copy_(torch.tensor([[-3.0], [0.0], [3.0]]))  # logits: -3h, 3.2, 3h
        last.bias.copy_(torch.tensor([0.0, 3.2, 0.0]))
    return run


def test_greedy_can_loop_forever_where_sampling_reaches_the_goal(pumping_acrobot):
    greedy = evaluate(pumping_acrobot, episodes=10, mode="greedy")
    sample = evaluate(pumping_acrobot, episodes=10, mode="sample")
    assert greedy.mean == -500.0 and greedy.std == 0.0  # no torque, forever: it never swings up
    assert sample.mean > -300 and (sample.returns > -500).all()
    assert modes_disagree(greedy, sample)
    assert evaluate(pumping_acrobot, episodes=10).mean == -500.0  # the run's eval_mode, greedy here
    both = compare_modes(pumping_acrobot, episodes=10)
    assert both.greedy.mean == greedy.mean and both.sample.mean == sample.mean
    assert both.disagree and "forever" in both.note


def test_sampled_evaluation_repeats_for_a_seed_and_leaves_torch_generator_alone(pumping_acrobot):
    before = torch.get_rng_state()
    first = evaluate(pumping_acrobot, episodes=6, mode="sample", seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    second = evaluate(pumping_acrobot, episodes=6, mode="sample", seed=3)
    np.testing.assert_array_equal(first.returns, second.returns)
    assert not np.array_equal(first.returns, evaluate(pumping_acrobot, episodes=6, mode="sample", seed=4).returns)


def test_deterministic_still_works_and_must_agree_with_mode(pumping_acrobot):
    assert evaluate(pumping_acrobot, episodes=2, deterministic=True).mean == -500.0
    assert evaluate(pumping_acrobot, episodes=2, deterministic=False).mean > -500.0
    with pytest.raises(ValueError, match="contradict"):
        evaluate(pumping_acrobot, episodes=2, deterministic=True, mode="sample")
    with pytest.raises(ConfigError, match=r"mode='both' is invalid.*'greedy'"):
        evaluate(pumping_acrobot, episodes=2, mode="both")


def test_modes_agree_when_the_difference_is_noise():
    result = pg.EvalResult
    assert not modes_disagree(result(-85.0, 10.0, np.array([-75.0, -95.0])),
                              result(-80.0, 8.0, np.array([-72.0, -88.0])))
    assert not modes_disagree(result(500.0, 0.0, np.full(3, 500.0)), result(500.0, 0.0, np.full(3, 500.0)))
    # both deterministic-looking but far apart: above both stds (0) and 10% of the range
    assert modes_disagree(result(500.0, 0.0, np.full(3, 500.0)), result(200.0, 0.0, np.full(3, 200.0)))
    # far apart in means, but each spread wider than the gap: not sharp
    assert not modes_disagree(result(-100.0, 150.0, np.array([-250.0, 50.0])),
                              result(-200.0, 180.0, np.array([-380.0, -20.0])))
    # the gap (94.5) is above both stds (0 and 77.6) but below 10% of the range of the returns (1100): not sharp
    steady, outlier = np.zeros(200), np.array([-100.0] * 199 + [1000.0])
    gap_above_stds = [result(float(r.mean()), float(r.std()), r) for r in (steady, outlier)]
    assert abs(gap_above_stds[0].mean - gap_above_stds[1].mean) > max(gap_above_stds[1].std, gap_above_stds[0].std)
    assert not modes_disagree(*gap_above_stds)


@pytest.mark.parametrize("mode", ["greedy", "sample"])
def test_evaluations_during_training_use_the_configs_eval_mode(mode):
    run = _train_tiny(total_steps=2048, eval_every=2048, eval_episodes=3, eval_mode=mode)
    assert run.config.eval_mode == mode and len(run.history.evals) == 1
    expected = evaluate(run, episodes=3, seed=run.config.eval_seed, mode=mode)
    assert run.history.evals["mean"][-1] == expected.mean


def test_a_sampled_evaluation_during_training_changes_nothing_in_training():
    with_evals = _train_tiny(total_steps=2048, eval_every=512, eval_episodes=3, eval_mode="sample")
    without = _train_tiny(total_steps=2048)
    np.testing.assert_array_equal(with_evals.history.episodes["return"], without.history.episodes["return"])
    np.testing.assert_array_equal(with_evals.history.updates["policy_loss"], without.history.updates["policy_loss"])


def test_cli_eval_prints_both_modes_and_why_when_they_disagree(pumping_acrobot, tmp_path, capsys):
    folder = pumping_acrobot.save(tmp_path / "pumping")
    assert main(["eval", str(folder), "--episodes", "5"]) == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert "mean return -500.0 ± 0.0" in lines[0] and "greedy: the run's eval_mode" in lines[0]
    assert lines[1] == "solved: no (threshold -100)"
    assert lines[2].startswith("returns: ") and len(lines[2].split()) == 1 + 5
    assert lines[3].startswith("sample: mean return ") and "over the same episodes" in lines[3]
    assert lines[4].startswith("returns (sample): ")
    assert lines[5].startswith("the two modes disagree sharply") and "forever" in lines[5]
    assert len(lines) == 6

    assert main(["eval", str(folder), "--episodes", "5", "--mode", "sample"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "sample, as asked; the run's eval_mode is greedy" in lines[0]
    assert lines[3].startswith("greedy: mean return -500.0 ± 0.0")
    assert main(["eval", str(folder), "--episodes", "5", "--mode", "greedy", "--stochastic"]) == 2
    assert "--stochastic is --mode sample" in capsys.readouterr().err


def test_cli_eval_prints_one_mode_when_both_agree(capsys, tmp_path):
    folder = _train_tiny(total_steps=512).save(tmp_path / "run")
    assert main(["eval", str(folder), "--episodes", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    greedy, sample = (evaluate(folder, episodes=3, mode=mode) for mode in ("greedy", "sample"))
    if not modes_disagree(greedy, sample):
        assert len(lines) == 3 and "greedy: the run's eval_mode" in lines[0]
    assert main(["eval", str(folder), "--episodes", "3", "--mode", "both"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[3].startswith("sample: mean return ") and lines[4].startswith("returns (sample): ")


def test_gif_follows_the_runs_eval_mode_and_mode_option(pumping_acrobot, tmp_path, capsys):
    _, greedy_return = rollout_frames(pumping_acrobot, seed=1, frame_skip=50)
    sampled_frames, sampled_return = rollout_frames(pumping_acrobot, seed=1, deterministic=False)
    assert greedy_return == -500.0 and sampled_return > -500.0
    folder = pumping_acrobot.save(tmp_path / "pumping")
    assert main(["gif", str(folder), "--mode", "sample", "--seed", "1", "--out", str(tmp_path / "a.gif")]) == 0
    assert "wrote" in capsys.readouterr().out
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == len(sampled_frames)  # the same sampled episode (greedy plays 500 steps)


# -- env_kwargs ------------------------------------------------------------------------------------------
def test_env_kwargs_are_validated_and_saved_as_json():
    config = make_config("ppo", "CartPole-v1", "discrete", env_kwargs={"sutton_barto_reward": True, "x": (1, 2)})
    assert config.env_kwargs == {"sutton_barto_reward": True, "x": [1, 2]}  # tuples become lists, as in JSON
    assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert make_config("ppo", "CartPole-v1", "discrete").env_kwargs == {}
    for bad, expected in [(["continuous"], "expected a dict of keyword arguments"),
                          ({"render_mode": "human"}, "no 'render_mode' key"),
                          ({"f": float("nan")}, "JSON values only"), ({"f": object()}, "JSON values only"),
                          ({1: True}, "keyword names")]:
        with pytest.raises(ConfigError, match="env_kwargs=") as error:
            make_config("ppo", "CartPole-v1", "discrete", env_kwargs=bad)
        assert expected in str(error.value)


def test_old_saved_configs_load_with_the_defaults_of_the_new_fields(tmp_path):
    # a run saved before the fields existed: today's save with them taken out of its config.json (the shipped
    # mystery runs used to be such runs; they were regenerated with every field)
    folder = _train_tiny(total_steps=1024).save(tmp_path / "old")
    saved = json.loads((folder / "config.json").read_text())
    for added_later in ("eval_mode", "env_kwargs", "log_std_min"):
        saved.pop(added_later)
    (folder / "config.json").write_text(json.dumps(saved))
    run = pg.load(folder)
    assert run.config.eval_mode == "greedy" and run.config.env_kwargs == {} and run.config.log_std_min is None


def test_training_evaluation_and_gifs_use_the_env_kwargs(tmp_path):
    run = _train_tiny(total_steps=2048, env_kwargs={"sutton_barto_reward": True})
    assert run.config.env_kwargs == {"sutton_barto_reward": True}
    assert (run.history.episode_returns == -1).all()  # 0 a step, -1 for falling: the keyword reached training
    folder = run.save(tmp_path / "sutton")
    assert pg.load(folder).config.env_kwargs == {"sutton_barto_reward": True}
    assert (evaluate(folder, episodes=4, mode="sample").returns <= 0).all()  # the run's kwargs by default
    assert (evaluate(folder, episodes=4, mode="sample", env_kwargs={}).returns >= 1).all()  # plain CartPole
    _, episode_return = rollout_frames(run, seed=0, frame_skip=100, deterministic=False)
    assert episode_return <= 0


def test_keyword_arguments_turn_off_the_fast_cartpole():
    assert isinstance(make_raw_vector_env("CartPole-v1", 2, vectorization="auto"), SeededCartPoleVectorEnv)
    envs = make_raw_vector_env("CartPole-v1", 2, vectorization="auto", env_kwargs={"sutton_barto_reward": True})
    assert not isinstance(envs, SeededCartPoleVectorEnv)
    envs.close()


def test_a_wrong_keyword_says_which_ones_the_environment_takes():
    with pytest.raises(ValueError) as error:
        pg.train("ppo", "Pendulum-v1", total_steps=512, progress=False, env_kwargs={"gravity": 5.0})
    message = str(error.value)
    assert message.startswith("cannot make gymnasium environment Pendulum-v1 with env_kwargs={'gravity': 5.0}")
    assert "Pendulum-v1 accepts g" in message


def test_keyword_arguments_can_change_the_spaces_and_the_message_says_so():
    assert env_spaces(LINE_ID)[1] == gym.spaces.Discrete(2)
    assert isinstance(env_spaces(LINE_ID, {"continuous": True})[1], gym.spaces.Box)
    assert action_kind_of(LINE_ID) == "discrete" and action_kind_of(LINE_ID, {"continuous": True}) == "continuous"
    run = _train_tiny(LINE_ID, total_steps=512, env_kwargs={"continuous": True})
    assert run.action_kind == "continuous"
    with pytest.raises(ValueError) as error:
        evaluate(run, env_kwargs={}, episodes=1)
    message = str(error.value)
    assert message.startswith(f"the environments differ: {LINE_ID} has observation space")
    assert f"trained on {LINE_ID} with env_kwargs={{'continuous': True}}" in message
    assert "leave the env and env_kwargs out" in message


def test_lunar_lander_continuous_trains_if_box2d_is_installed():
    pytest.importorskip("Box2D", reason="gymnasium[box2d] is not installed")
    run = pg.train("ppo", "LunarLander-v3", seed=0, total_steps=1024, progress=False, env_kwargs={"continuous": True})
    assert run.action_kind == "continuous" and run.action_space.shape == (2,)
    assert np.isfinite(evaluate(run, episodes=1).mean)
    with pytest.raises(ValueError, match="the environments differ: LunarLander-v3 has"):
        evaluate(run, env_kwargs={}, episodes=1)


# -- env_kwargs on the command line ------------------------------------------------------------------
def test_env_arg_values_are_json_then_python_literals_then_text():
    assert parse_env_arg("continuous=true") == ("continuous", True)
    assert parse_env_arg("continuous=True") == ("continuous", True)
    assert parse_env_arg("g=9.5") == ("g", 9.5)
    assert parse_env_arg("sizes=[1, 2]") == ("sizes", [1, 2])
    assert parse_env_arg("map_name=8x8") == ("map_name", "8x8")


def test_cli_train_eval_and_gif_take_env_args(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "ppo", "--env", "CartPole-v1", "--steps", "512", "--quiet", "--out", str(out),
                 "--env-arg", "sutton_barto_reward=true"]) == 0
    assert pg.load(out).config.env_kwargs == {"sutton_barto_reward": True}
    capsys.readouterr()
    assert main(["eval", str(out), "--episodes", "2", "--mode", "sample"]) == 0
    assert "CartPole-v1 with env_kwargs={'sutton_barto_reward': True}" in capsys.readouterr().out
    assert main(["eval", str(out), "--episodes", "2", "--env-arg", "sutton_barto_reward=false"]) == 0
    assert "env_kwargs={'sutton_barto_reward': False}" in capsys.readouterr().out
    assert main(["gif", str(out), "--out", str(tmp_path / "a.gif"), "--env-arg", "sutton_barto_reward=false"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("arguments, expected", [
    (["--env-arg", "sutton_barto_reward"], "--env-arg expects KEY=VALUE"),
    (["--env-arg", "a=1", "--env-arg", "a=2"], "--env-arg a=... is given twice"),
    (["--env-arg", "a=1", "--set", "env_kwargs={'a': 1}"], "not both"),
    (["--env-arg", "render_mode=human"], "no 'render_mode' key"),
    (["--env-arg", "sutton_barto_rewrd=true"], "did you mean 'sutton_barto_reward'?"),
])
def test_cli_bad_env_args_give_exit_2_with_the_reason(tmp_path, capsys, arguments, expected):
    out = tmp_path / "run"
    assert main(["train", "ppo", "--env", "CartPole-v1", "--steps", "512", "--quiet", "--out", str(out),
                 *arguments]) == 2
    error = capsys.readouterr().err
    assert error.startswith("pgcourse train: error:") and expected in error and len(error.strip().splitlines()) == 1
    assert not out.exists()


# -- a user's registered environment -------------------------------------------------------------------
def test_a_registered_env_trains_evaluates_and_renders_in_process(tmp_path):
    run = _train_tiny(LINE_ID, total_steps=1024, env_kwargs={"length": 3})
    assert run.config.env_id == LINE_ID and run.config.env_kwargs == {"length": 3}
    assert run.history.episode_returns.max() == pytest.approx(0.98)  # the goal of a 3-cell line in 3 steps
    result = evaluate(run, episodes=3, mode="sample")
    assert result.returns.shape == (3,)
    path = pg.rollout_gif(run, path=tmp_path / "line.gif", frame_skip=1)
    with Image.open(path) as gif:
        assert gif.size[0] == 8 * 7  # the render of a 3-cell line: kwargs reached the GIF's env too


def test_an_unregistered_env_says_how_to_register_it():
    with pytest.raises(ValueError) as error:
        pg.train("ppo", "PgNoSuchEnv-v0", total_steps=512)
    message = str(error.value)
    assert "doesn't exist" in message and "gymnasium.register(id='PgNoSuchEnv-v0'" in message
    assert "'my_envs:PgNoSuchEnv-v0'" in message


def test_a_sweep_refuses_an_env_registered_only_in_this_process(tmp_path):
    notebook_id = "PgNotebookLine-v0"
    gym.register(id=notebook_id, entry_point=LineEnv, max_episode_steps=20)
    try:
        assert _train_tiny(notebook_id, total_steps=512).config.env_id == notebook_id  # fine in this process
        with pytest.raises(ConfigError) as error:
            sweep("ppo", notebook_id, seeds=1, folder=tmp_path / "sweep", total_steps=512, progress=False)
        message = str(error.value)
        assert f"env_id={notebook_id!r} is registered only in this process" in message
        assert "fresh worker processes" in message
        assert f"env_id='{__name__}:{notebook_id}'" in message  # the module that defines its entry point
        assert not (tmp_path / "sweep").exists()
    finally:
        del gym.registry[notebook_id]


def test_a_sweep_runs_a_registered_env_given_as_module_and_id(tmp_path):
    results = sweep("ppo", IMPORTABLE_LINE_ID, seeds=1, folder=tmp_path / "sweep", total_steps=512, workers=1,
                    progress=False, env_kwargs={"length": 3})
    assert not results.failed and len(results.trials) == 1
    record = results.trials[0]
    assert record.data["config"]["env_kwargs"] == {"length": 3} and record.data["env_id"] == IMPORTABLE_LINE_ID


def test_a_sweep_with_an_unimportable_module_is_refused():
    with pytest.raises(ConfigError, match="cannot make gymnasium environment|cannot import module"):
        sweep("ppo", "pg_no_such_module:Line-v0", seeds=1, total_steps=512, progress=False)


def test_env_kwargs_are_part_of_a_trials_identity():
    plain, = expand("ppo", "CartPole-v1", 1)
    sutton, = expand("ppo", "CartPole-v1", 1, fixed={"env_kwargs": {"sutton_barto_reward": True}})
    assert plain.trial_id != sutton.trial_id
    grid = expand("ppo", LINE_ID, 1, grid={"env_kwargs": [{"continuous": False}, {"continuous": True}]})
    assert [spec.overrides["env_kwargs"] for spec in grid] == [{"continuous": False}, {"continuous": True}]


# -- old sweep records: fields added since ---------------------------------------------------------------
def _strip_fields(folder: Path, *names: str) -> None:
    """Rewrite every trial record as an older pgcourse wrote it: without ``names`` in its config (and the
    digest recomputed, as that pgcourse computed it)."""
    for path in (folder / "trials").glob("*.json"):
        record = json.loads(path.read_text())
        for name in names:
            record["config"].pop(name)
        record["history_sha256"] = history_digest(record["config"], record["history"])
        path.write_text(json.dumps(record))


def test_absent_fields_equal_their_defaults_and_nothing_else():
    today = make_config("ppo", "CartPole-v1", "discrete").to_dict()
    old = {k: v for k, v in today.items() if k not in ("eval_mode", "env_kwargs")}
    assert comparable_config(old, today) == {k: v for k, v in today.items() if k not in ("device", "progress")}
    acrobot = make_config("ppo", "Acrobot-v1", "discrete").to_dict()
    old = {k: v for k, v in acrobot.items() if k not in ("eval_mode", "env_kwargs")}
    assert "eval_mode" not in fill_absent_defaults(old, acrobot)  # "sample" is not the default: still differs
    assert fill_absent_defaults(old, acrobot)["env_kwargs"] == {}


def test_an_old_record_without_the_new_fields_is_resumed_and_verified(tmp_path):
    folder = tmp_path / "old"
    sweep("ppo", "CartPole-v1", seeds=1, folder=folder, total_steps=512, workers=1, progress=False)
    _strip_fields(folder, "eval_mode", "env_kwargs")
    again = sweep("ppo", "CartPole-v1", seeds=1, folder=folder, total_steps=512, workers=1, progress=False)
    assert again.skipped == 1 and len(again.trials) == 1
    assert verify(folder, sample=1, seed=0).ok


def test_an_old_record_is_refused_when_todays_value_is_not_the_default(tmp_path):
    folder = tmp_path / "old-acrobot"
    sweep("ppo", "Acrobot-v1", seeds=1, folder=folder, total_steps=512, workers=1, progress=False)
    assert ResultsFolder(folder).read(next(iter(ResultsFolder(folder).finished_ids()))).config["eval_mode"] == "sample"
    _strip_fields(folder, "eval_mode", "env_kwargs")
    with pytest.raises(SweepResultsError) as error:
        sweep("ppo", "Acrobot-v1", seeds=1, folder=folder, total_steps=512, workers=1, progress=False)
    message = str(error.value)
    assert "no eval_mode setting (recorded before it existed)" in message and "eval_mode='sample'" in message
    report = verify(folder, sample=1, seed=0)
    assert not report.ok and "config.eval_mode" in str(report)


def test_the_cached_lesson_records_predate_the_new_fields_and_still_compare_equal():
    for name in ("06_reproduction", "06_reproduction_annealed", "06_traps"):
        store = ResultsFolder(REPO / "figures" / name)
        record = next(store.records())
        assert "eval_mode" not in record.config and "env_kwargs" not in record.config
        today = _expected_config(record.spec)
        assert today["eval_mode"] == "greedy" and today["env_kwargs"] == {}
        assert comparable_config(record.config, today) == today, name
