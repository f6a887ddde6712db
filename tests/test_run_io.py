"""Run: acting, save/load round trips, refusing to overwrite, clear load errors, evaluation."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import pgcourse as pg
from conftest import TINY_PPO_CONTINUOUS, TINY_PPO_DISCRETE, assert_history_equal
from pgcourse.rl.run import RUN_FILES, TRAINING_STATE_FILE, RunLoadError


@pytest.fixture(scope="module")
def ppo_cartpole():
    return pg.train("ppo", "CartPole-v1", seed=0, device="cpu", progress=False,
                    **{**TINY_PPO_DISCRETE, "total_steps": 1024})


@pytest.fixture(scope="module")
def ppo_pendulum():
    return pg.train("ppo", "Pendulum-v1", seed=0, device="cpu", progress=False,
                    **{**TINY_PPO_CONTINUOUS, "total_steps": 1024})


@pytest.fixture(scope="module")
def reinforce_cartpole():
    return pg.train("reinforce", "CartPole-v1", seed=0, device="cpu", progress=False, max_episodes=8)


@pytest.fixture(scope="module")
def saved_cartpole(ppo_cartpole, tmp_path_factory):
    return ppo_cartpole.save(tmp_path_factory.mktemp("saved") / "ppo-cartpole")


@pytest.fixture
def saved_copy(saved_cartpole, tmp_path):
    """A private copy of a saved run that a test may damage."""
    return Path(shutil.copytree(saved_cartpole, tmp_path / "run"))


def observations(env_id: str, n: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if env_id == "CartPole-v1":
        return rng.normal(scale=[1.0, 1.0, 0.1, 1.0], size=(n, 4)).astype(np.float32)
    theta = rng.uniform(-np.pi, np.pi, n)
    return np.stack([np.cos(theta), np.sin(theta), rng.uniform(-8, 8, n)], axis=1).astype(np.float32)


def state_dicts_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


# ---------------------------------------------------------------------------------------------
# save / load round trip
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("run_name", ["ppo_cartpole", "ppo_pendulum", "reinforce_cartpole"])
def test_save_load_round_trip(run_name, request, tmp_path):
    run = request.getfixturevalue(run_name)
    assert run.history.status == "completed"
    path = run.save(tmp_path / "run")
    # a finished run can be trained further: it keeps its training state (tests/test_resume.py)
    assert sorted(p.name for p in path.iterdir()) == sorted([*RUN_FILES, TRAINING_STATE_FILE])
    loaded = pg.load(path)
    assert loaded.config == run.config
    assert state_dicts_equal(loaded.policy, run.policy)
    if run.value_net is None:
        assert loaded.value_net is None
    else:
        assert state_dicts_equal(loaded.value_net, run.value_net)
    assert_history_equal(loaded.history, run.history)
    assert len(loaded.history.episodes) == len(run.history.episodes) > 0
    assert loaded.normalizer_state == json.loads(json.dumps(run.normalizer_state))
    if run.obs_normalizer is None:
        assert loaded.obs_normalizer is None
    else:
        np.testing.assert_array_equal(loaded.obs_normalizer.mean, run.obs_normalizer.mean)
        np.testing.assert_array_equal(loaded.obs_normalizer.var, run.obs_normalizer.var)
    obs = observations(run.config.env_id)
    np.testing.assert_array_equal(loaded.act(obs, deterministic=True), run.act(obs, deterministic=True))
    assert loaded.observation_space == run.observation_space
    assert loaded.action_space == run.action_space


def test_pendulum_run_keeps_observation_statistics(ppo_pendulum):
    assert ppo_pendulum.obs_normalizer is not None
    assert ppo_pendulum.obs_normalizer.count > 100
    assert "reward" in ppo_pendulum.normalizer_state  # reward scaling on by default for Box actions


def test_cartpole_run_has_no_observation_statistics(ppo_cartpole):
    assert ppo_cartpole.obs_normalizer is None


def test_save_returns_path_and_accepts_str(ppo_cartpole, tmp_path):
    path = ppo_cartpole.save(str(tmp_path / "nested" / "deeper" / "run"))
    assert isinstance(path, Path) and path.is_dir()
    assert pg.load(str(path)).config == ppo_cartpole.config


def test_save_into_existing_empty_folder(ppo_cartpole, tmp_path):
    (tmp_path / "empty").mkdir()
    ppo_cartpole.save(tmp_path / "empty")
    assert pg.load(tmp_path / "empty").config == ppo_cartpole.config


def test_save_refuses_non_empty_folder(ppo_cartpole, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("my notes")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(FileExistsError, match="overwrite=True"):
        ppo_cartpole.save(target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert (target / "notes.txt").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no staging folder left behind


def test_save_refuses_existing_run_and_keeps_it(ppo_cartpole, ppo_pendulum, tmp_path):
    path = ppo_cartpole.save(tmp_path / "run")
    weights_before = (path / "weights.pt").read_bytes()
    with pytest.raises(FileExistsError):
        ppo_pendulum.save(path)
    assert (path / "weights.pt").read_bytes() == weights_before
    assert pg.load(path).config.env_id == "CartPole-v1"


def test_save_refuses_a_file(ppo_cartpole, tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(FileExistsError):
        ppo_cartpole.save(target, overwrite=True)
    assert target.read_text() == "x"


def test_overwrite_replaces_the_folder(ppo_cartpole, ppo_pendulum, tmp_path):
    path = ppo_cartpole.save(tmp_path / "run")
    ppo_pendulum.save(path, overwrite=True)
    assert sorted(p.name for p in path.iterdir()) == sorted([*RUN_FILES, TRAINING_STATE_FILE])
    assert pg.load(path).config.env_id == "Pendulum-v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no leftovers beside it


def test_overwrite_never_deletes_what_is_not_a_run(ppo_cartpole, ppo_pendulum, tmp_path):
    thesis = tmp_path / "thesis"
    (thesis / "sub").mkdir(parents=True)
    (thesis / "thesis.tex").write_text("\\documentclass{article}")
    (thesis / "sub" / "data.csv").write_text("1,2\n")
    with pytest.raises(FileExistsError, match="not a saved pgcourse run .*thesis.tex"):
        ppo_cartpole.save(thesis, overwrite=True)
    assert (thesis / "thesis.tex").read_text() == "\\documentclass{article}" and (thesis / "sub" / "data.csv").exists()
    # a saved run with a file of the user's beside it: the user's file is not deleted either
    run = ppo_cartpole.save(tmp_path / "run")
    (run / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        ppo_pendulum.save(run, overwrite=True)
    assert (run / "notes.txt").read_text() == "mine" and pg.load(run).config.env_id == "CartPole-v1"


def test_save_to_the_current_folder(ppo_cartpole, tmp_path, monkeypatch):
    """'--out .': the folder has no name of its own to build the staging folder's name from."""
    empty = tmp_path / "here"
    empty.mkdir()
    monkeypatch.chdir(empty)
    path = ppo_cartpole.save(".")
    assert path == empty.resolve() and pg.load(".").config.env_id == "CartPole-v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]


@pytest.mark.parametrize("fails_at", ["writing the weights", "moving the new run into place"])
def test_a_save_that_fails_midway_keeps_the_old_run(ppo_cartpole, ppo_pendulum, tmp_path, monkeypatch, fails_at):
    path = ppo_cartpole.save(tmp_path / "run")
    if fails_at == "writing the weights":
        def failing_save(*args, **kwargs):
            raise OSError("disk full")
        monkeypatch.setattr(torch, "save", failing_save)
    else:
        import pgcourse.run as run_module
        real_replace = run_module.os.replace

        def failing_replace(src, dst):
            if ".saving-" in str(src):
                raise OSError("disk full")
            return real_replace(src, dst)
        monkeypatch.setattr(run_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        ppo_pendulum.save(path, overwrite=True)
    monkeypatch.undo()
    assert pg.load(path).config.env_id == "CartPole-v1"  # the old run, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging or replaced folder behind


# ---------------------------------------------------------------------------------------------
# load errors name the bad file
# ---------------------------------------------------------------------------------------------
def test_load_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        pg.load(tmp_path / "nowhere")


@pytest.mark.parametrize("name", RUN_FILES)
def test_load_missing_file(saved_copy, name):
    (saved_copy / name).unlink()
    with pytest.raises(RunLoadError, match=name.replace(".", r"\.")):
        pg.load(saved_copy)


@pytest.mark.parametrize("name", ["meta.json", "config.json", "normalizer.json", "history.json"])
def test_load_corrupt_json(saved_copy, name):
    text = (saved_copy / name).read_text()
    (saved_copy / name).write_text(text[: len(text) // 2])
    with pytest.raises(RunLoadError, match=name.replace(".", r"\.")):
        pg.load(saved_copy)


@pytest.mark.parametrize("statistics", ['null', '[]', '{"obs": 3}', '{"obs": {"var": [1, 1, 1, 1], "count": 2, "epsilon": 1e-8}}',
                                        '{"obs": {"mean": [0, 0, 0, 0], "count": 2, "epsilon": 1e-8}}',
                                        '{"obs": {"mean": [0, 0, 0, 0], "var": [1, 1, 1, 1]}}'])
def test_load_refuses_damaged_observation_statistics_naming_the_file(saved_copy, statistics):
    """A normalizer.json that is valid JSON but not the statistics (not an object, an 'obs' that is not one, or one
    missing its mean, var, count or epsilon) is a RunLoadError that names the file, as every other damaged file is;
    it was a bare KeyError or TypeError from inside the loader."""
    (saved_copy / "normalizer.json").write_text(statistics)
    with pytest.raises(RunLoadError, match=r"normalizer\.json"):
        pg.load(saved_copy)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "not_a_dict"])
def test_load_damaged_weights(saved_copy, damage):
    weights = saved_copy / "weights.pt"
    if damage == "garbage":
        weights.write_bytes(b"this is not a torch file" * 10)
    elif damage == "truncated":
        data = weights.read_bytes()
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        weights.write_bytes(b"")
    else:
        torch.save([1, 2, 3], weights)
    with pytest.raises(RunLoadError, match=r"weights\.pt"):
        pg.load(saved_copy)


@pytest.mark.parametrize("name", ["meta.json", "config.json", "normalizer.json", "history.json"])
def test_load_corrupt_json_says_corrupt_once(saved_copy, name):
    text = (saved_copy / name).read_text()
    (saved_copy / name).write_text(text[: len(text) // 2])
    with pytest.raises(RunLoadError) as info:
        pg.load(saved_copy)
    message = str(info.value).replace(str(saved_copy), "RUN")  # the test's own folder name says "corrupt"
    assert message.count("corrupt") == 1 and message.count(name) == 1, message


def _has_empty_text_after_a_colon(message: str) -> bool:
    return any(part.strip() == "" for part in message.split(":")[1:]) or message.rstrip().endswith(":")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "empty_history"])
def test_load_errors_have_text_after_every_colon(saved_copy, damage):
    weights = saved_copy / "weights.pt"
    if damage == "garbage":
        weights.write_bytes(b"this is not a torch file" * 10)
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "empty":
        weights.write_bytes(b"")
    else:
        (saved_copy / "history.json").write_text("")
    with pytest.raises(RunLoadError) as info:
        pg.load(saved_copy)
    message = str(info.value)
    assert not _has_empty_text_after_a_colon(message.replace(str(saved_copy), "RUN")), message
    if damage == "empty":
        assert "empty" in message, message


def test_load_weights_that_do_not_match_config(saved_copy):
    config = json.loads((saved_copy / "config.json").read_text())
    config["hidden_sizes"] = [32, 32]
    (saved_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunLoadError, match=r"weights\.pt.*hidden_sizes=\(32, 32\)"):
        pg.load(saved_copy)


def test_load_critic_missing_for_algo_that_needs_one(saved_copy):
    weights = torch.load(saved_copy / "weights.pt", weights_only=True)
    weights["value_net"] = None
    torch.save(weights, saved_copy / "weights.pt")
    with pytest.raises(RunLoadError, match="critic"):
        pg.load(saved_copy)


@pytest.mark.parametrize("version", [0, 2, 999, None])
def test_load_wrong_format_version(saved_copy, version):
    meta = json.loads((saved_copy / "meta.json").read_text())
    meta["version"] = version
    (saved_copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RunLoadError, match="version"):
        pg.load(saved_copy)


def test_load_wrong_format_name(saved_copy):
    meta = json.loads((saved_copy / "meta.json").read_text())
    meta["format"] = "something-else"
    (saved_copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RunLoadError, match=r"meta\.json"):
        pg.load(saved_copy)


def test_load_invalid_config_values(saved_copy):
    config = json.loads((saved_copy / "config.json").read_text())
    config["gamma"] = 7.0
    (saved_copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunLoadError, match=r"config\.json.*gamma"):
        pg.load(saved_copy)


def test_load_normalizer_of_wrong_dimension(saved_copy):
    (saved_copy / "normalizer.json").write_text(json.dumps(
        {"obs": {"mean": [0.0] * 7, "var": [1.0] * 7, "count": 1.0, "epsilon": 1e-8}}))
    with pytest.raises(RunLoadError, match=r"normalizer\.json"):
        pg.load(saved_copy)


def test_load_error_is_a_value_error():
    assert issubclass(RunLoadError, ValueError)


# ---------------------------------------------------------------------------------------------
# run.act
# ---------------------------------------------------------------------------------------------
def test_act_rejects_single_observation(ppo_cartpole):
    with pytest.raises(ValueError, match=r"obs\[None\]"):
        ppo_cartpole.act(np.zeros(4, dtype=np.float32))


@pytest.mark.parametrize("shape", [(2, 5), (3,), (2, 2, 4), (4, 3)])
def test_act_rejects_wrong_shape(ppo_cartpole, shape):
    with pytest.raises(ValueError, match=r"\[batch, 4\]"):
        ppo_cartpole.act(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("bad", [np.array([["a", "b", "c", "d"]]), np.array([[None, 1, 2, 3]], dtype=object)])
def test_act_rejects_non_numeric(ppo_cartpole, bad):
    with pytest.raises(TypeError, match="numeric"):
        ppo_cartpole.act(bad)


def test_act_discrete_output(ppo_cartpole):
    obs = observations("CartPole-v1", 10)
    for deterministic in (True, False):
        actions = ppo_cartpole.act(obs, deterministic=deterministic)
        assert isinstance(actions, np.ndarray)
        assert actions.shape == (10,) and actions.dtype == np.int64
        assert set(actions.tolist()) <= {0, 1}
    # accepts float64 arrays, python lists and torch tensors alike
    expected = ppo_cartpole.act(obs, deterministic=True)
    np.testing.assert_array_equal(ppo_cartpole.act(obs.astype(np.float64), deterministic=True), expected)
    np.testing.assert_array_equal(ppo_cartpole.act(obs.tolist(), deterministic=True), expected)
    np.testing.assert_array_equal(ppo_cartpole.act(torch.as_tensor(obs), deterministic=True), expected)


def test_act_deterministic_is_argmax(ppo_cartpole):
    obs = observations("CartPole-v1", 10)
    with torch.no_grad():
        logits = ppo_cartpole.policy(torch.as_tensor(obs))
    np.testing.assert_array_equal(ppo_cartpole.act(obs, deterministic=True), logits.argmax(-1).numpy())


def test_act_continuous_output_clipped(ppo_pendulum, tmp_path):
    obs = observations("Pendulum-v1", 12)
    actions = ppo_pendulum.act(obs, deterministic=True)
    assert actions.shape == (12, 1) and actions.dtype == np.float32
    # a very wide policy samples far outside [-2, 2]: act must clip what it hands the environment
    wide = pg.load(ppo_pendulum.save(tmp_path / "run"))
    with torch.no_grad():
        wide.policy.log_std.fill_(2.0)
    sampled = wide.act(np.repeat(obs, 20, axis=0), deterministic=False)
    assert sampled.shape == (240, 1) and sampled.dtype == np.float32
    assert sampled.min() >= -2.0 and sampled.max() <= 2.0
    assert (sampled == 2.0).any() and (sampled == -2.0).any()


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
def test_evaluate_returns_mean_std_returns(ppo_cartpole):
    result = pg.evaluate(ppo_cartpole, "CartPole-v1", episodes=5, seed=123)
    mean, std, returns = result
    assert isinstance(result, pg.EvalResult)
    assert len(returns) == 5
    assert mean == pytest.approx(float(np.mean(returns)))
    assert std == pytest.approx(float(np.std(returns)))
    assert np.all(returns >= 1) and np.all(returns <= 500)
    assert np.all(returns == np.round(returns))  # CartPole pays 1 per step


def test_evaluate_is_deterministic_for_a_seed(ppo_cartpole):
    first = pg.evaluate(ppo_cartpole, episodes=4, seed=7)
    second = pg.evaluate(ppo_cartpole, "CartPole-v1", episodes=4, seed=7)
    np.testing.assert_array_equal(first.returns, second.returns)
    # episode i is the one seeded seed + i, however the episodes are batched
    single = pg.evaluate(ppo_cartpole, episodes=1, seed=9)
    assert single.returns[0] == first.returns[2]
    batched = pg.evaluate(ppo_cartpole, episodes=4, seed=7, max_parallel=3)
    np.testing.assert_array_equal(batched.returns, first.returns)


def test_evaluate_continuous(ppo_pendulum):
    mean, std, returns = pg.evaluate(ppo_pendulum, episodes=2, seed=0)
    assert len(returns) == 2 and np.all(returns < 0)  # Pendulum rewards are all <= 0
    np.testing.assert_array_equal(pg.evaluate(ppo_pendulum, episodes=2, seed=0).returns, returns)


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "Pendulum-v1"])
def test_evaluate_rejects_env_with_other_spaces(ppo_cartpole, env_id):
    with pytest.raises(ValueError, match="trained on"):
        pg.evaluate(ppo_cartpole, env_id, episodes=1)


@pytest.mark.parametrize("episodes", [0, -1, 2.5])
def test_evaluate_rejects_bad_episode_count(ppo_cartpole, episodes):
    with pytest.raises(ValueError, match="episodes"):
        pg.evaluate(ppo_cartpole, episodes=episodes)


def test_evaluate_loaded_run_matches_original(ppo_pendulum, tmp_path):
    loaded = pg.load(ppo_pendulum.save(tmp_path / "run"))
    np.testing.assert_array_equal(pg.evaluate(loaded, episodes=2, seed=3).returns,
                                  pg.evaluate(ppo_pendulum, episodes=2, seed=3).returns)


def test_load_a_run_saved_before_a_history_column_existed(saved_copy):
    """Runs saved by an older pgcourse (no ``value_rel_error`` column) still load; the column reads NaN."""
    import json

    history = json.loads((saved_copy / "history.json").read_text())
    history["updates"].pop("value_rel_error")
    (saved_copy / "history.json").write_text(json.dumps(history))
    run = pg.load(saved_copy)
    assert np.isnan(run.history.updates["value_rel_error"]).all()
    assert len(run.history.updates["value_rel_error"]) == len(run.history.updates["entropy"]) > 0


def test_evaluation_runs_on_the_runs_thread_count_and_restores_it(ppo_cartpole, monkeypatch):
    """A 2-core machine evaluated 20 CartPole episodes in 8.2 s with torch's default threads, 2.4 s with one."""
    seen = []
    real_act = ppo_cartpole.act
    monkeypatch.setattr(ppo_cartpole, "act", lambda *a, **k: (seen.append(torch.get_num_threads()), real_act(*a, **k))[1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pg.evaluate(ppo_cartpole, episodes=2, seed=0)
        assert set(seen) == {ppo_cartpole.config.torch_threads} == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# GIFs of a saved run
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("as_type", [str, Path])
def test_rollout_gif_accepts_a_run_folder_path(saved_cartpole, tmp_path, as_type):
    path = pg.rollout_gif(as_type(saved_cartpole), path=tmp_path / "run.gif", frame_skip=10)
    assert Path(path).read_bytes()[:6] == b"GIF89a"


def test_rollout_gif_of_a_folder_that_is_no_run_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved run"):
        pg.rollout_gif(str(tmp_path / "nowhere"), path=tmp_path / "x.gif")


def test_rollout_gif_on_an_env_with_other_spaces_says_the_envs_differ(ppo_cartpole, tmp_path):
    with pytest.raises(ValueError) as info:
        pg.rollout_gif(ppo_cartpole, "Acrobot-v1", tmp_path / "x.gif")
    message = str(info.value)
    assert "Acrobot-v1" in message and "CartPole-v1" in message and "observation space" in message, message
    assert not (tmp_path / "x.gif").exists()


def test_a_saved_run_records_the_package_versions_that_made_it(tmp_path):
    """Issue 15, item 6: meta.json names pgcourse, torch, gymnasium, numpy and Python, so a run that no
    longer reproduces can be traced to an upgrade."""
    import platform

    run = pg.train("reinforce", "CartPole-v1", total_steps=200, progress=False)
    meta = json.loads((run.save(tmp_path / "run") / "meta.json").read_text())
    assert meta["versions"]["pgcourse"] == pg.__version__ and meta["versions"]["python"] == platform.python_version()
    assert set(meta["versions"]) >= {"pgcourse", "torch", "gymnasium", "numpy", "python"}
    assert pg.load(tmp_path / "run").history.status == run.history.status  # still loads
