"""The ``pgcourse`` command line and the benchmark, with tiny budgets (the whole file runs in well under a minute)."""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import types

import numpy as np
import pytest
from PIL import Image

import pgcourse
import pgcourse.classroom
from pgcourse import bench
from pgcourse.cli import main, parse_setting

TINY_TRAIN = ["--env", "CartPole-v1", "--steps", "2000", "--quiet"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny PPO CartPole run, trained through the CLI and shared by the read-only tests."""
    out = tmp_path_factory.mktemp("runs") / "ppo-cartpole"
    assert main(["train", "ppo", *TINY_TRAIN, "--out", str(out)]) == 0
    return out


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# -- train ------------------------------------------------------------------------------------------
def test_train_saves_a_loadable_run(run_dir):
    run = pgcourse.load(run_dir)
    assert run.config.algo == "ppo" and run.config.env_id == "CartPole-v1"
    assert run.config.total_steps == 2000 and run.config.progress is False
    assert len(run.history.episodes) > 0


def test_train_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "a2c"
    assert main(["train", "a2c", "--env", "CartPole-v1", "--steps", "256", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "episodes" in printed and "wall time" in printed and f"saved to {out}" in printed


def test_train_refuses_an_existing_run_before_training(run_dir, monkeypatch, capsys):
    before = _snapshot(run_dir)
    monkeypatch.setattr(pgcourse, "train", lambda *a, **k: pytest.fail("trained although the folder is taken"))
    assert main(["train", "ppo", *TINY_TRAIN, "--out", str(run_dir)]) == 2
    error = capsys.readouterr().err
    assert "already holds a saved run" in error and "--overwrite" in error
    assert len(error.strip().splitlines()) == 1
    assert _snapshot(run_dir) == before


def test_train_into_a_folder_of_your_own_does_not_first_suggest_overwrite(tmp_path, capsys):
    """``--out`` on a folder holding the user's own files said "pass --overwrite to replace a saved run", and
    --overwrite then refused too: the first message now says at once that this folder is not a run."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["train", "a2c", *TINY_TRAIN, "--out", str(mine)]) == 2
    error = capsys.readouterr().err
    assert "is not a saved pgcourse run (it holds notes.txt)" in error and "pass --overwrite" not in error
    assert (mine / "notes.txt").read_text() == "keep me"


def test_overwrite_replaces_the_run_and_set_values_are_parsed(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "ppo", "--env", "CartPole-v1", "--steps", "512", "--quiet", "--out", str(out)]) == 0
    assert main(["train", "ppo", "--env", "CartPole-v1", "--steps", "512", "--quiet", "--out", str(out), "--seed", "3",
                 "--overwrite", "--set", "hidden_sizes=(32,32)", "--set", "anneal_lr=False", "--set", "lr=2e-3"]) == 0
    config = pgcourse.load(out).config
    assert (config.seed, config.hidden_sizes, config.anneal_lr, config.lr) == (3, (32, 32), False, 2e-3)


@pytest.mark.parametrize("setting, named", [("lr=-1", "lr"), ("clip_epz=0.1", "clip_epz"),
                                            ("hidden_sizes=64", "hidden_sizes"), ("lr", "key=value"),
                                            ("seed=3", "--seed")])
def test_bad_set_gives_exit_2_naming_the_field(tmp_path, capsys, setting, named):
    out = tmp_path / "run"
    assert main(["train", "ppo", *TINY_TRAIN, "--out", str(out), "--set", setting]) == 2
    error = capsys.readouterr().err
    assert error.startswith("pgcourse train: error:") and named in error
    assert not out.exists()


def test_unknown_env_and_wrong_action_space_give_exit_2(tmp_path, capsys):
    assert main(["train", "ppo", "--env", "NoSuchEnv-v0", "--out", str(tmp_path / "a")]) == 2
    assert "NoSuchEnv-v0" in capsys.readouterr().err
    assert main(["train", "reinforce", "--env", "Pendulum-v1", "--out", str(tmp_path / "b")]) == 2
    assert "Discrete action spaces only" in capsys.readouterr().err


def test_unknown_algo_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "dqn", "--env", "CartPole-v1"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_set_values_are_literals_when_possible():
    assert parse_setting("lr=1e-3") == ("lr", 1e-3)
    assert parse_setting("hidden_sizes=(32, 32)") == ("hidden_sizes", (32, 32))
    assert parse_setting("anneal_lr=False") == ("anneal_lr", False)
    assert parse_setting("target_kl=None") == ("target_kl", None)
    assert parse_setting("on_nonfinite=raise") == ("on_nonfinite", "raise")


# -- eval and gif ------------------------------------------------------------------------------------
def test_eval_prints_mean_std_and_returns(run_dir, capsys):
    assert main(["eval", str(run_dir), "--episodes", "3", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert "mean return" in printed and "±" in printed and "seeds 5..7" in printed
    returns_line = next(line for line in printed.splitlines() if line.startswith("returns:"))
    assert len(returns_line.split()) == 1 + 3


def test_eval_of_a_missing_or_mismatched_run_gives_exit_2(run_dir, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing-here")]) == 2
    assert "no saved run" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--env", "Pendulum-v1", "--episodes", "1"]) == 2
    assert "Pendulum-v1" in capsys.readouterr().err


def test_gif_writes_an_animated_gif(run_dir, tmp_path, capsys):
    out = tmp_path / "ppo.gif"
    assert main(["gif", str(run_dir), "--out", str(out), "--seed", "1"]) == 0
    assert out.read_bytes()[:6] == b"GIF89a"
    with Image.open(out) as image:
        assert image.n_frames > 3
    assert str(out) in capsys.readouterr().out


@pytest.mark.slow
def test_gif_has_a_default_out_and_a_caption(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["gif", str(run_dir), "--seed", "1"]) == 0
    out = tmp_path / f"{run_dir.name}.gif"
    assert str(out) in capsys.readouterr().out
    with Image.open(out) as captioned:
        frame = np.asarray(captioned.convert("RGB"))
    assert main(["gif", str(run_dir), "--seed", "1", "--out", str(tmp_path / "plain.gif"), "--no-caption"]) == 0
    with Image.open(tmp_path / "plain.gif") as plain:
        assert captioned.size[1] == plain.size[1] + 22  # a caption strip under the frames
    strip = frame[-20:]
    assert (strip > 200).mean() > 0.8 and (strip < 100).any()  # white strip with dark text


def test_gif_on_an_env_with_other_spaces_says_the_envs_differ(run_dir, tmp_path, capsys):
    out = tmp_path / "acrobot.gif"
    assert main(["gif", str(run_dir), "--env", "Acrobot-v1", "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "Acrobot-v1" in error and "CartPole-v1" in error and "observation space" in error, error
    assert "shape" not in error.lower() or "mat1" not in error, error  # not torch's matmul error
    assert not out.exists()


# -- help, exercises ------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "eval", "gif", "bench", "exercises"])
def test_help_of_each_subcommand_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"pgcourse {command}" in capsys.readouterr().out


def test_console_entry_point_runs():
    completed = subprocess.run([sys.executable, "-m", "pgcourse.cli", "--help"], capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0
    assert "train" in completed.stdout and "bench" in completed.stdout


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


@pytest.mark.parametrize("flags, check", [([], False), (["--check"], True)])
def test_exercises_calls_the_generator(monkeypatch, flags, check):
    calls = []
    fake = types.ModuleType("pgcourse.classroom.exercisegen")
    fake.main = lambda check=False, **_: calls.append(check) or 7
    monkeypatch.setitem(sys.modules, "pgcourse.classroom.exercisegen", fake)
    monkeypatch.setattr(pgcourse.classroom, "exercisegen", fake, raising=False)
    assert main(["exercises", *flags]) == 7
    assert calls == [check]


# -- bench -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bench_tiny_runs_every_case_and_writes_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(bench.TINY_ENV_VAR, "1")
    json_path = tmp_path / "bench.json"
    code = main(["bench", "--json", str(json_path)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    for case in bench.TINY_SUITE:
        assert f"{case.algo} {case.env_id} seed 0" in printed
    assert "per seed:" in printed and "torch threads 1" in printed
    if bench.sb3_available():
        assert "[SB3] PPO CartPole-v1 seed 0: 512 steps" in printed
        assert "speed ratio:" in printed
    else:
        assert "pip install -e .[bench]" in printed
    data = json.loads(json_path.read_text())
    assert len(data["results"]) == len(bench.TINY_SUITE)
    assert {row["algo"] for row in data["results"]} == {case.algo for case in bench.TINY_SUITE}


def test_bench_selection_that_matches_nothing_gives_exit_2(capsys):
    assert main(["bench", "--algos", "reinforce", "--envs", "Pendulum-v1", "--no-sb3"]) == 2
    assert "no benchmark case matches" in capsys.readouterr().err


def _result(algo, env_id, seed, solved_wall, final_mean=500.0, steps=40_000):
    solved = solved_wall is not None
    return bench.SeedResult(algo, env_id, seed, "100k steps", 475.0, solved, steps if solved else None,
                            200 if solved else None, solved_wall, final_mean, 1.0, 100_000, 900, 50.0, "completed")


def test_report_medians_ratio_and_sb3_skip_line():
    case = bench.BenchCase("ppo", "CartPole-v1", total_steps=100_000, eval_every=2_500)
    results = [_result("ppo", "CartPole-v1", 0, 10.0), _result("ppo", "CartPole-v1", 1, 30.0),
               _result("ppo", "CartPole-v1", 2, None, final_mean=300.0)]
    report = bench.BenchReport([case], [0, 1, 2], "cpu", stop_when_solved=True, results=results)
    summary = bench.summarize_case(case, results)
    assert (summary.seeds_solved, summary.seeds_total) == (2, 3)
    assert summary.median_wall_seconds_to_solve == 20.0 and summary.median_steps_to_solve == 40_000
    assert summary.final_min == 300.0 and summary.env_steps_per_second == pytest.approx(2000.0)

    report.sb3_results = [bench.SB3Result(s, 100_000, wall, 500.0, 0.0, True) for s, wall in enumerate([80.0, 60.0, 100.0])]
    assert bench.speed_ratio(report) == pytest.approx(20.0 / 80.0)
    lines = "\n".join(bench.sb3_lines(report))
    assert "speed ratio" in lines and "0.25" in lines and "met" in lines
    printed = io.StringIO()
    bench.print_report(report, file=printed)
    assert "stop_when_solved: on" in printed.getvalue() and "at solve time" in printed.getvalue()

    report.sb3_results, report.sb3_skipped = [], "skipped: stable-baselines3 is not installed (install it with " \
                                                 "`pip install -e .[bench]`)"
    lines = bench.sb3_lines(report)
    assert lines == [f"SB3 comparison: {report.sb3_skipped}"]
    assert bench.report_to_dict(report)["sb3"]["speed_ratio"] is None


def test_bench_without_sb3_installed_says_how_to_install(monkeypatch, capsys):
    monkeypatch.setattr(bench, "sb3_available", lambda: False)
    monkeypatch.setattr(bench, "run_case_seed", lambda case, seed, **_: _result(case.algo, case.env_id, seed, 5.0))
    report = bench.run_benchmark(bench.DEFAULT_SUITE[:1], [0], log=lambda line: None)
    bench.print_report(report)
    printed = capsys.readouterr().out
    assert "pip install -e .[bench]" in printed


def test_steps_accept_an_integral_float_and_refuse_a_fraction(tmp_path, capsys):
    """``--steps 1e5`` was refused ("expected an integer"), as was ``total_steps=1e4`` in Python; it is 100,000."""
    from pgcourse.cli import _int_at_least

    parse = _int_at_least(1)
    assert parse("5e2") == 500 and parse("1_000") == 1000 and parse("2000.0") == 2000
    for bad in ("12.5", "1e-3", "nan", "inf", "steps"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected an integer"):
            parse(bad)
    out = tmp_path / "run"
    assert main(["train", "a2c", "--env", "CartPole-v1", "--steps", "2.56e2", "--quiet", "--out", str(out)]) == 0
    assert pgcourse.load(out).config.total_steps == 256


def test_a_plot_of_several_runs_is_titled_by_what_they_are_not_by_the_last_one():
    """``pgcourse plot`` of an a2c and a ppo run was titled "ppo on CartPole-v1" (the last run's own title)."""
    from pgcourse.cli import runs_title

    def run(algo, env_id, seed):
        return types.SimpleNamespace(config=types.SimpleNamespace(algo=algo, env_id=env_id, seed=seed))
    assert runs_title([run("a2c", "CartPole-v1", 0), run("ppo", "CartPole-v1", 0)]) == \
        "a2c and ppo on CartPole-v1, seed 0"
    assert runs_title([run("ppo", "CartPole-v1", 0), run("ppo", "CartPole-v1", 1)]) == "ppo on CartPole-v1, 2 seeds"
    assert runs_title([run("ppo", "Acrobot-v1", 0), run("a2c", "CartPole-v1", 1), run("trpo", "CartPole-v1", 2)]) \
        == "ppo, a2c and trpo on Acrobot-v1 and CartPole-v1, 3 seeds"


@pytest.mark.parametrize("command", ["train", "resume", "sweep", "plot", "stats", "bench", "grade", "exercises"])
def test_help_shows_percent_signs_as_one(command, capsys):
    """``pgcourse plot --help`` said "95%% bootstrap bands" (a description is printed as written)."""
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "%%" not in text and (command != "plot" or "95% bootstrap" in text)


def test_the_summary_says_why_it_overshot_the_budget_and_which_device_auto_picked(tmp_path, capsys):
    """"1,109 of 1,000 env steps" read as a bug: the summary now says the loops stop at whole rollouts (or whole
    episodes), and on which device the run trained and why."""
    assert main(["train", "a2c", "--env", "CartPole-v1", "--steps", "1000", "--quiet", "--out", str(tmp_path / "a")]) == 0
    printed = capsys.readouterr().out
    assert "of 1,000 env steps (whole rollouts of num_envs x n_steps = 8 x 16 steps)" in printed
    assert "on cpu:" in printed and "device: cpu (auto: the CPU" in printed
    device_line = next(line for line in printed.splitlines() if line.startswith("device: "))
    assert len(device_line) <= 120, device_line  # issue 48: it was 300 characters on every train and resume


@pytest.mark.parametrize("argv, words", [
    (["train", "ppo", "--env", "CartPole-v1", "--stesp", "2000"], "--stesp: did you mean --steps?"),
    (["train", "ppo", "--env", "CartPole-v1", "--num-envs", "-4"], "--num-envs: settings go through --set, e.g. "
                                                                   "--set num_envs=-4"),
    (["train", "ppo", "--env", "CartPole-v1", "--lr=3e-4"], "--lr=3e-4: settings go through --set, e.g. --set lr=3e-4"),
    (["eval", "runs/x", "--episdoes", "3"], "--episdoes: did you mean --episodes?"),
])
def test_an_unknown_option_is_answered_with_the_one_meant(argv, words, capsys):
    """Issue 48: `--stesp 2000` or `--num-envs -4` printed the top-level usage and "unrecognized arguments", with no
    "did you mean --steps" and no pointer to `--set num_envs=4`. The command's own usage, the arguments it did not
    know, and the option nearest each one."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: pgcourse {argv[0]}") and f"pgcourse {argv[0]}: error: unrecognized argument(s)" in err
    assert words in err, err


def test_the_clis_messages_name_its_options_not_python_arguments(tmp_path, capsys):
    """Issue 48: `pgcourse resume` said "pass log_dir= / checkpoint_every= and checkpoint_dir=" (pg.resume's Python
    arguments) on the command line; and `--seed abc`'s example was "50000 or 5e4"."""
    out = tmp_path / "run"
    pytest.importorskip("torch.utils.tensorboard")
    assert main(["train", "a2c", "--env", "CartPole-v1", "--steps", "256", "--out", str(out), "--quiet",
                 "--log-dir", str(tmp_path / "logs")]) == 0
    capsys.readouterr()
    assert main(["resume", str(out), "--steps", "512", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "resuming as the run trained" in err and "pass --log-dir / --checkpoint-every" in err, err
    assert "log_dir=" not in err, err
    import pgcourse as pg
    pg.resume(pg.load(out), total_steps=768, progress=False)  # in Python, the Python names
    assert "pass log_dir= / checkpoint_every=" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "ppo", "--env", "CartPole-v1", "--seed", "abc"])
    assert "expected an integer (such as 0 or 42), got 'abc'" in capsys.readouterr().err


def test_a_warning_is_one_line_of_the_commands(tmp_path, capsys, monkeypatch):
    """Issue 48: --log-dir without TensorBoard printed Python's warning with its file, line and source line."""
    from pgcourse.rl import loggers

    monkeypatch.setattr(loggers, "tensorboard_installed", lambda: False)
    assert main(["train", "a2c", "--env", "CartPole-v1", "--steps", "256", "--quiet", "--out", str(tmp_path / "a"),
                 "--log-dir", str(tmp_path / "logs")]) == 0
    err = capsys.readouterr().err
    [line] = [line for line in err.splitlines() if "TensorBoard" in line]
    assert line.startswith("pgcourse train: warning: logging CSV only to ") and ".py:" not in err, err


def test_an_env_arg_nested_deeper_than_the_parsers_recurse_is_read_as_text_not_a_traceback():
    """--env-arg KEY=VALUE reads VALUE as JSON, else as a Python literal, else as the text itself: a value nested
    deeper than either parser recurses (a thousand '[') is the text, as a literal that does not parse is, and not a
    RecursionError traceback from json.loads (the literal reader already caught it)."""
    from pgcourse.cli import parse_env_arg
    assert parse_env_arg("x=" + "[" * 1000) == ("x", "[" * 1000)
    assert parse_env_arg("x=[1, 2]") == ("x", [1, 2])


def test_resume_takes_a_new_episode_budget_for_a_run_trained_with_one(tmp_path, capsys):
    """A run trained with ``--set max_episodes=8`` stops after 8 episodes; ``pgcourse resume`` refuses to resume it
    as it is (it would train nothing: the message names ``--episodes``) and plays on with ``--episodes 9``."""
    out = tmp_path / "run"
    assert main(["train", "reinforce", "--env", "CartPole-v1", "--set", "max_episodes=8", "--out", str(out),
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["resume", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "already played 8 of its max_episodes=8: pass a larger max_episodes (pgcourse resume --episodes)" in err
    assert main(["resume", str(out), "--episodes", "9", "--quiet"]) == 0
    import pgcourse as pg
    resumed = pg.load(out)
    assert resumed.config.max_episodes == 9 and len(resumed.history.episodes) > 8
