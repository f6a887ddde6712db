"""Tests that pin the definitions of the command line's parsing and the Colab set-up's decisions (issue 45, item 5).

The CLI's tests (tests/test_cli.py) run whole commands, and the Colab tests (tests/test_colab.py) the set-up's main
paths: a one-line bug in a converter, a default, a boundary or an error message went through them. Each test below
states one definition of pgcourse/cli.py's argument parsing and converting (every option's type, lower bound,
default and choices, ``--set``, ``--env-arg``, ``--grid``, ``--seeds``, the messages for bad input, the commands'
decisions with their work faked) or of pgcourse/colab.py (requirement names, the install plan, the set-up's stamp),
on small objects built here: nothing trains, grades, starts a process, or touches the network.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import signal
import sys
import threading
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

import pgcourse.bench
import pgcourse.bench.device
import pgcourse.bench.env_speed
import pgcourse.bench.scaling
import pgcourse.course.sweeps
import pgcourse.course.views.render
import pgcourse.classroom.handout
import pgcourse.rl.api
import pgcourse.rl.devices
import pgcourse.rl.envs
import pgcourse.rl.evaluation
import pgcourse.rl.run
from pgcourse import cli, colab
from pgcourse.cli import UsageError

NS = types.SimpleNamespace


@pytest.fixture(scope="module")
def parser():
    return cli.build_parser()


def parse_error(parser, argv, capsys) -> str:
    """argparse's one-line error for ``argv`` (it exits with code 2)."""
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# == pgcourse/cli.py =================================================================================================
# -- the integer type -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("low, text, expected", [
    (0, "0", 0), (0, "-0", 0), (0, "0.0", 0), (1, " 7 ", 7), (1, "+4", 4), (1, "1E3", 1000), (1, "1_0.0", 10),
    (1, "1e20", 10 ** 20), (1, "\u0663", 3), (5, "5", 5), (5, "5.0", 5), (5, "5e0", 5), (1, "1__0", 10),
    (1, "_5_", 5), (1, "2__5.0", 25), (1, "9__007199254740993", 9_007_199_254_740_993),  # exact, not via a float
])
def test_an_integer_option_takes_integers_and_integral_floats_at_or_above_its_lower_bound(low, text, expected):
    """An integer option reads an int (every underscore dropped, wherever it is; surrounding spaces and a sign
    allowed), or a float that is a whole number (``1E3``, ``5.0``) as that integer; the lower bound itself is
    allowed."""
    value = cli._int_at_least(low)(text)
    assert value == expected and type(value) is int


@pytest.mark.parametrize("low", [0, 1, 5])
@pytest.mark.parametrize("form", ["{}", "{}.0", "{}e0"])
def test_an_integer_below_the_lower_bound_is_refused_naming_the_bound_and_the_value(low, form):
    """One below the lower bound (written as an int or as an integral float) is refused with ``expected an integer
    >= LOW, got VALUE``."""
    with pytest.raises(argparse.ArgumentTypeError) as error:
        cli._int_at_least(low)(form.format(low - 1))
    assert str(error.value) == f"expected an integer >= {low}, got {low - 1}"


@pytest.mark.parametrize("text", ["", " ", "1.5", "-0.5", "1e-3", "inf", "-inf", "nan", "0x10", "1,000", "ten",
                                  "True", "5 5"])
def test_a_non_integer_is_refused_with_the_options_example_and_the_text_as_given(text):
    """A text that is neither an int nor a whole float is refused with ``expected an integer (such as EXAMPLE), got
    'TEXT'`` (a fraction is refused as a non-integer even when it is also below the bound); the default example is
    ``50000 or 5e4``."""
    with pytest.raises(argparse.ArgumentTypeError) as error:
        cli._int_at_least(0)(text)
    assert str(error.value) == f"expected an integer (such as 50000 or 5e4), got {text!r}"
    with pytest.raises(argparse.ArgumentTypeError) as error:
        cli._int_at_least(1, "0 or 42")(text)
    assert str(error.value) == f"expected an integer (such as 0 or 42), got {text!r}"


def test_the_integer_type_is_named_integer():
    """argparse names a type by its function's name: it is ``integer``."""
    assert cli._int_at_least(3).__name__ == "integer"


# every integer option: (the command before it, the option, its lower bound, the example of its message, nargs '+')
INTEGER_OPTIONS = [
    (["train", "ppo", "--env", "E"], "--seed", 0, "0 or 42", False),
    (["train", "ppo", "--env", "E"], "--steps", 1, "50000 or 5e4", False),
    (["train", "ppo", "--env", "E"], "--checkpoint-every", 1, "50000 or 5e4", False),
    (["resume", "R"], "--steps", 1, "50000 or 5e4", False),
    (["resume", "R"], "--episodes", 1, "50000 or 5e4", False),
    (["resume", "R"], "--checkpoint-every", 1, "50000 or 5e4", False),
    (["eval", "R"], "--episodes", 1, "50000 or 5e4", False),
    (["eval", "R"], "--seed", 0, "0 or 42", False),
    (["gif", "R"], "--seed", 0, "0 or 42", False),
    (["bench"], "--widths", 1, "50000 or 5e4", True),
    (["bench"], "--seeds", 0, "0 or 42", True),
    (["bench"], "--compare-seeds", 0, "0 or 42", True),
    (["sweep"], "--steps", 1, "50000 or 5e4", False),
    (["sweep"], "--workers", 1, "50000 or 5e4", False),
    (["sweep"], "--retries", 0, "50000 or 5e4", False),
    (["sweep"], "--sample", 1, "50000 or 5e4", False),
    (["sweep"], "--min-arm-seeds", 1, "50000 or 5e4", False),
    (["sweep"], "--sample-seed", 0, "0 or 42", False),
    (["plot", "F"], "--window", 1, "50000 or 5e4", False),
]


@pytest.mark.parametrize("before, option, low, example, many", INTEGER_OPTIONS,
                         ids=[f"{b[0]} {o}" for b, o, *_ in INTEGER_OPTIONS])
def test_each_integer_option_has_its_lower_bound_and_example(parser, capsys, before, option, low, example, many):
    """Each integer option takes its lower bound (0 for seeds and retries, 1 for counts, budgets and sizes), refuses
    one below it, and names its example (``0 or 42`` for a seed) when the text is not an integer."""
    args = parser.parse_args([*before, f"{option}={low}"])
    value = getattr(args, option[2:].replace("-", "_"))
    assert value == ([low] if many else low)
    err = parse_error(parser, [*before, f"{option}={low - 1}"], capsys)
    assert f"argument {option}: expected an integer >= {low}, got {low - 1}" in err, err
    err = parse_error(parser, [*before, f"{option}=x"], capsys)
    assert f"argument {option}: expected an integer (such as {example}), got 'x'" in err, err


# -- the parser: defaults, choices, handlers -----------------------------------------------------------------------
DEFAULTS = [
    (["train", "ppo", "--env", "CartPole-v1"], "cmd_train", dict(
        algo="ppo", env="CartPole-v1", seed=0, steps=None, out=None, device="auto", set=None, env_arg=None,
        overwrite=False, quiet=False, checkpoint_every=None, log_dir=None)),
    (["resume", "R"], "cmd_resume", dict(run_dir="R", steps=None, episodes=None, out=None, overwrite=False, device="auto",
                                         checkpoint_every=None, log_dir=None, quiet=False)),
    (["eval", "R"], "cmd_eval", dict(run_dir="R", episodes=20, seed=10_000, env=None, env_arg=None, mode=None,
                                     stochastic=False)),
    (["gif", "R"], "cmd_gif", dict(run_dir="R", out=None, no_caption=False, seed=0, env=None, env_arg=None, mode=None,
                                   stochastic=False)),
    (["bench"], "cmd_bench", dict(part=None, widths=None, algos=None, envs=None, seeds=None, quick=False,
                                  stop_when_solved=False, no_sb3=False, skip_suite=False, skip_comparisons=False,
                                  skip_scaling=False, skip_batched_seeds=False, compare_seeds=None, json=None,
                                  device="cpu")),
    (["sweep"], "cmd_sweep", dict(algo=None, env=None, seeds="10", grid=None, set=None, env_arg=None, steps=None,
                                  out=None, backend="local", workers=None, address=None, num_gpus=0.0, retries=1,
                                  compress=False, verify=None, sample=3, exact=False, min_arm_seeds=1,
                                  sample_seed=None, quiet=False)),
    (["plot", "F"], "cmd_plot", dict(folders=["F"], out=None, window=20, statistic="iqm")),
    (["exercises"], "cmd_exercises", dict(check=False)),
    (["handout", "D"], "cmd_handout", dict(dir="D", course=None)),
    (["grade"], "cmd_grade", {}),
]


@pytest.mark.parametrize("argv, handler, defaults", DEFAULTS, ids=[argv[0] for argv, *_ in DEFAULTS])
def test_each_command_has_its_defaults_and_its_handler(parser, argv, handler, defaults):
    """Every option a command leaves out has its documented default (``--seed`` 0 for train and gif but 10000 for
    eval, ``--device`` auto but cpu for bench, ``--seeds`` "10" for a sweep, 20 episodes, a window of 20, iqm, ...),
    and the command runs its own handler."""
    args = parser.parse_args(argv)
    assert args.command == argv[0] and args.handler is getattr(cli, handler)
    assert {key: getattr(args, key) for key in defaults} == defaults
    assert type(parser.parse_args(["sweep"]).num_gpus) is float


CHOICES = [
    (["train"], None, ("reinforce", "reinforce_baseline", "a2c", "ppo", "trpo"), ("dqn", "PPO", "")),
    (["eval", "R"], "--mode", ("greedy", "sample", "both"), ("Greedy", "random", "")),
    (["gif", "R"], "--mode", ("greedy", "sample"), ("both", "Sample")),
    (["bench"], None, ("device", "envs", "scaling"), ("suite", "Device")),
    (["bench"], "--algos", ("reinforce", "reinforce_baseline", "a2c", "ppo", "trpo"), ("dqn",)),
    (["sweep"], "--backend", ("local", "batch", "ray"), ("Ray", "dask")),
    (["plot", "F"], "--statistic", ("iqm", "mean", "median"), ("IQM", "max")),
]


@pytest.mark.parametrize("before, option, accepted, refused", CHOICES,
                         ids=[f"{b[0]} {o or 'positional'}" for b, o, *_ in CHOICES])
def test_each_choice_takes_exactly_its_values_case_sensitively(parser, capsys, before, option, accepted, refused):
    """A choice takes each of its values as written and refuses anything else (another case included) with
    argparse's ``invalid choice``."""
    def argv(value):
        tail = [f"{option}={value}"] if option else [value]
        return [*before, *tail, *(["--env", "E"] if before == ["train"] else [])]
    dest = {"train": "algo", "bench": "part"}[before[0]] if option is None else option[2:]
    for value in accepted:
        found = getattr(parser.parse_args(argv(value)), dest)
        assert found == ([value] if option == "--algos" else value)
    for value in refused:
        assert "invalid choice" in parse_error(parser, argv(value), capsys)


def test_the_repeatable_options_keep_every_value_in_order(parser):
    """``--set``, ``--env-arg`` and ``--grid`` are repeatable (each value kept, in order); ``--widths``, ``--seeds``
    and ``--algos`` of bench take one or more values; ``--num-gpus`` is a float."""
    args = parser.parse_args(["train", "a2c", "--env", "E", "--set", "b=1", "--set", "a=2", "--env-arg", "y=1",
                              "--env-arg", "x=2"])
    assert (args.set, args.env_arg) == (["b=1", "a=2"], ["y=1", "x=2"])
    args = parser.parse_args(["sweep", "--grid", "b=1", "--grid", "a=1,2", "--num-gpus", "0.5"])
    assert (args.grid, args.num_gpus) == (["b=1", "a=1,2"], 0.5)
    args = parser.parse_args(["bench", "--widths", "8", "64", "--seeds", "3", "1", "--algos", "ppo", "a2c"])
    assert (args.widths, args.seeds, args.algos) == ([8, 64], [3, 1], ["ppo", "a2c"])


def test_train_requires_env_and_plot_a_folder(parser, capsys):
    """``pgcourse train`` needs ``--env``; ``pgcourse plot`` needs at least one folder."""
    assert "--env" in parse_error(parser, ["train", "ppo"], capsys)
    assert "FOLDER" in parse_error(parser, ["plot"], capsys)


def test_version_prints_the_package_version(parser, capsys):
    """``pgcourse --version`` prints ``pgcourse VERSION`` and exits 0."""
    from pgcourse._version import __version__
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"pgcourse {__version__}"


# -- --set ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("lr = 3e-4 ", ("lr", 3e-4)),                   # spaces around the key and the value
    ("name=a=b", ("name", "a=b")),                  # the first '=' splits
    ("x=", ("x", "")),                              # an empty value is the empty string
    ("x=  hello world ", ("x", "hello world")),     # not a literal: the text itself, stripped
    ("x='quoted'", ("x", "quoted")),
    ("x=[1, 2]", ("x", [1, 2])),
    ("x={'a': 1}", ("x", {"a": 1})),
    ("x=1_000", ("x", 1000)),
    ("x=-3", ("x", -3)),
    ("x=true", ("x", "true")),                      # JSON's true is not a Python literal
    ("x=[1, 2", ("x", "[1, 2")),
    ("\u03bb=1", ("\u03bb", 1)),                    # a unicode identifier
    ("env=CartPole-v1", ("env", "CartPole-v1")),    # env (not env_id) is no dedicated setting
    ("seeds=3", ("seeds", 3)),
])
def test_a_setting_is_a_stripped_key_and_a_literal_else_its_text(text, expected):
    """``--set KEY=VALUE``: the key before the first ``=`` (stripped), the value a Python literal when it reads as
    one, else the stripped text itself."""
    assert cli.parse_setting(text) == expected


@pytest.mark.parametrize("depth", [3000, 20000])
def test_a_setting_too_deep_for_the_parser_is_its_text(depth):
    """A value Python's parser gives up on (too deep: a RecursionError or a MemoryError) is the text itself."""
    raw = "-" * depth + "1"
    assert cli.parse_setting(f"x={raw}") == ("x", raw)
    assert cli.parse_setting("x=" + "(" * 300 + ")" * 300) == ("x", "(" * 300 + ")" * 300)


@pytest.mark.parametrize("text", ["lr", "=1", " =1", "1lr=1", "l r=1", "lr-x=1", "", "lr:1"])
def test_a_setting_without_a_key_is_refused_naming_the_text(text):
    """A ``--set`` without ``=`` or whose key is no identifier is refused: ``--set expects key=value (e.g. --set
    lr=1e-3), got 'TEXT'``."""
    with pytest.raises(UsageError) as error:
        cli.parse_setting(text)
    assert str(error.value) == f"--set expects key=value (e.g. --set lr=1e-3), got {text!r}"


@pytest.mark.parametrize("key, flag", [("seed", "--seed"), ("total_steps", "--steps"), ("device", "--device"),
                                       ("algo", "ALGO"), ("env_id", "--env")])
def test_a_setting_with_its_own_option_is_refused_naming_the_option(key, flag):
    """seed, total_steps, device, algo and env_id have their own option; ``--set`` of one (spaces around the key
    too) says which option to use."""
    for text in (f"{key}=1", f" {key} =1"):
        with pytest.raises(UsageError) as error:
            cli.parse_setting(text)
        assert str(error.value) == f"--set {key}=...: use {flag} instead"


def test_settings_are_a_dict_the_last_of_a_key_wins():
    """No ``--set`` (None or an empty list) is no override; a key given twice keeps its last value."""
    assert cli.parse_settings(None) == {} and cli.parse_settings([]) == {}
    assert cli.parse_settings(["a=1", "b=x", "a=2"]) == {"a": 2, "b": "x"}
    with pytest.raises(UsageError, match="--set expects key=value"):
        cli.parse_settings(["a=1", "b"])


# -- --env-arg ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("x=null", ("x", None)), ("x=None", ("x", None)), ('x="text"', ("x", "text")), ("x=Infinity", ("x", math.inf)),
    ("x=(1, 2)", ("x", (1, 2))), ("x={'a': 1}", ("x", {"a": 1})), ('x={"a": 1}', ("x", {"a": 1})),
    ("x=01", ("x", "01")), ("x=", ("x", "")), (" x = 5 ", ("x", 5)), ("x=FALSE", ("x", "FALSE")),
    ('x="a\\/b"', ("x", "a/b")),  # JSON's escape first (Python's literal would keep the backslash)
    ("x=a=b", ("x", "a=b")), ("x=1_000", ("x", 1000)), ("x=  hello world ", ("x", "hello world")),
])
def test_an_env_arg_is_json_else_a_python_literal_else_its_text(text, expected):
    """``--env-arg KEY=VALUE``: the key stripped; the value, stripped, read as JSON first, else as a Python literal,
    else the text itself."""
    assert cli.parse_env_arg(text) == expected


def test_an_env_args_json_number_keeps_its_type_and_nan_is_json():
    """JSON decides the type: ``1`` is an int, ``1.0`` a float, ``NaN`` JSON's NaN; a value too deep for Python's
    parser (past JSON) is its text."""
    assert type(cli.parse_env_arg("x=1")[1]) is int and type(cli.parse_env_arg("x=1.0")[1]) is float
    assert math.isnan(cli.parse_env_arg("x=NaN")[1])
    raw = "-" * 3000 + "1"
    assert cli.parse_env_arg(f"x={raw}") == ("x", raw)


@pytest.mark.parametrize("text", ["x", "=1", " =1", "1x=2", "a b=1", ""])
def test_an_env_arg_without_a_key_is_refused_naming_the_text(text):
    """An ``--env-arg`` without ``=`` or whose key is no identifier is refused, naming the form and the text."""
    with pytest.raises(UsageError) as error:
        cli.parse_env_arg(text)
    assert str(error.value) == ("--env-arg expects KEY=VALUE, a keyword argument of the environment (e.g. --env-arg "
                                f"continuous=true), got {text!r}")


def test_env_args_are_none_without_any_and_a_dict_in_order_otherwise():
    """No ``--env-arg`` (None or an empty list) is None, not an empty dict; otherwise the keys in order."""
    assert cli.parse_env_args(None) is None and cli.parse_env_args([]) is None
    found = cli.parse_env_args(["b=1", "a=x", "ab=2"])
    assert found == {"b": 1, "a": "x", "ab": 2} and list(found) == ["b", "a", "ab"]


@pytest.mark.parametrize("items, named", [
    (["a=1", "a=2"], "a"), ([" a=1", "a =1"], "a"), (["b=1", "a=1", "b=2", "a=2"], "a"), (["b=1", "c=1", "b=2"], "b"),
    (["z=1", "z=1", "z=1"], "z"),
])
def test_an_env_arg_given_twice_is_refused_naming_the_first_such_key_in_order(items, named):
    """A key given twice (after stripping, even with the same value) is refused; with several, the message names
    the first in sorted order."""
    with pytest.raises(UsageError) as error:
        cli.parse_env_args(items)
    assert str(error.value) == f"--env-arg {named}=... is given twice; give each keyword argument once"


def test_env_args_go_into_env_kwargs_unless_set_gives_them_too():
    """``--env-arg`` become ``overrides["env_kwargs"]``; none leaves the overrides as they are (a ``--set
    env_kwargs=...`` too); both ``--env-arg`` and ``--set env_kwargs`` (even an empty one) are refused."""
    overrides = {"lr": 1}
    cli._env_kwargs_option(NS(env_arg=None), overrides)
    cli._env_kwargs_option(NS(env_arg=[]), overrides)
    assert overrides == {"lr": 1}
    overrides = {"env_kwargs": {"b": 2}}
    cli._env_kwargs_option(NS(env_arg=None), overrides)
    assert overrides == {"env_kwargs": {"b": 2}}
    overrides = {}
    cli._env_kwargs_option(NS(env_arg=["a=1"]), overrides)
    assert overrides == {"env_kwargs": {"a": 1}}
    with pytest.raises(UsageError) as error:
        cli._env_kwargs_option(NS(env_arg=["a=1"]), {"env_kwargs": {}})
    assert str(error.value) == ("give the environment's keyword arguments with --env-arg KEY=VALUE or with "
                                "--set env_kwargs={...}, not both")


# -- the checks before training -------------------------------------------------------------------------------------
def test_an_env_that_cannot_be_made_is_a_usage_error_with_its_message(monkeypatch):
    """``_check_env_id`` makes the env's spaces with the keyword arguments; a ValueError becomes a UsageError with
    the same message; other errors are not turned into one."""
    calls = []

    def spaces(env_id, env_kwargs=None):
        calls.append((env_id, env_kwargs))
        if env_id == "Bad-v0":
            raise ValueError("no env 'Bad-v0'")
        if env_id == "Odd-v0":
            raise TypeError("odd")
        return None, None
    monkeypatch.setattr(pgcourse.rl.envs, "env_spaces", spaces)
    assert cli._check_env_id("Good-v0", {"a": 1}) is None
    with pytest.raises(UsageError) as error:
        cli._check_env_id("Bad-v0")
    assert str(error.value) == "no env 'Bad-v0'"
    with pytest.raises(TypeError):
        cli._check_env_id("Odd-v0")
    assert calls == [("Good-v0", {"a": 1}), ("Bad-v0", None), ("Odd-v0", None)]


def test_the_out_folder_check_names_the_overwrite_option(tmp_path):
    """``_check_out_free`` applies Run.save's rule before training, naming the command line's ``--overwrite`` (not
    Python's ``overwrite=True``): a new or empty folder is free; a saved run is refused without --overwrite, allowed
    with it; a file is refused."""
    cli._check_out_free(tmp_path / "new", False)
    (tmp_path / "empty").mkdir()
    cli._check_out_free(tmp_path / "empty", False)
    run = tmp_path / "run"
    run.mkdir()
    (run / "meta.json").write_text(json.dumps({"format": pgcourse.rl.run.FORMAT_NAME}))
    with pytest.raises(UsageError) as error:
        cli._check_out_free(run, False)
    assert "pass --overwrite to replace it" in str(error.value) and "overwrite=True" not in str(error.value)
    cli._check_out_free(run, True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="exists and is not a folder"):
        cli._check_out_free(tmp_path / "file", True)


@pytest.mark.parametrize("name, message", [("cuda:3", "--device: no cuda:3 here"), ("mps", "--device: no mps here"),
                                           ("auto", "no auto here")])
def test_a_device_error_names_the_option_unless_it_came_from_auto(monkeypatch, name, message):
    """An unavailable ``--device NAME`` is a UsageError ``--device: REASON``; with ``auto`` (the environment
    variable's fault) the reason alone."""
    asked = []

    def resolve(device):
        asked.append(device)
        raise ValueError(f"no {device} here")
    monkeypatch.setattr(pgcourse.rl.devices, "resolve_device", resolve)
    with pytest.raises(UsageError) as error:
        cli._check_device(name)
    assert str(error.value) == message and asked == [name]
    monkeypatch.setattr(pgcourse.rl.devices, "resolve_device", lambda device: "cpu")
    assert cli._check_device(name) is None


# -- SIGTERM and SIGHUP as Ctrl-C -------------------------------------------------------------------------------------
class FakeSignals:
    """The signal module's handler table, faked: no real handler of this process changes."""

    def __init__(self, monkeypatch, **handlers):
        self.table = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL,
                      signal.SIGHUP: signal.SIG_DFL}
        self.table.update({getattr(signal, name): handler for name, handler in handlers.items()})
        self.set_calls, self.raised = [], []
        monkeypatch.setattr(signal, "getsignal", lambda kind: self.table[kind])
        monkeypatch.setattr(signal, "signal", self.set)
        monkeypatch.setattr(signal, "raise_signal", self.raised.append)

    def set(self, kind, handler):
        self.set_calls.append(kind)
        self.table[kind] = handler


def custom_handler(signum, frame):
    pass


def test_sigterm_and_sighup_raise_sigint_inside_and_get_their_handlers_back_after(monkeypatch):
    """In the main thread with Ctrl-C live, SIGTERM and SIGHUP each get a handler that raises SIGINT; on the way out
    (also after an error) each gets its previous handler back, and a handler Python cannot name (None) becomes the
    default one."""
    fake = FakeSignals(monkeypatch, SIGTERM=custom_handler, SIGHUP=None)
    with pytest.raises(RuntimeError):
        with cli._termination_as_interrupt():
            for kind in (signal.SIGTERM, signal.SIGHUP):
                assert fake.table[kind] not in (custom_handler, None, signal.SIG_DFL, signal.SIG_IGN)
                fake.table[kind](kind, None)
            assert fake.raised == [signal.SIGINT, signal.SIGINT]
            raise RuntimeError("inside")
    assert fake.table[signal.SIGTERM] is custom_handler and fake.table[signal.SIGHUP] == signal.SIG_DFL


def test_an_ignored_signal_stays_ignored_and_a_platform_without_sighup_redirects_sigterm_alone(monkeypatch):
    """A signal already ignored (SIGTERM here) is not redirected; on a platform without SIGHUP only SIGTERM is."""
    fake = FakeSignals(monkeypatch, SIGTERM=signal.SIG_IGN)
    with cli._termination_as_interrupt():
        assert fake.table[signal.SIGTERM] == signal.SIG_IGN and fake.table[signal.SIGHUP] != signal.SIG_DFL
    assert signal.SIGTERM not in fake.set_calls and fake.table[signal.SIGHUP] == signal.SIG_DFL
    fake = FakeSignals(monkeypatch)
    monkeypatch.delattr(signal, "SIGHUP")
    with cli._termination_as_interrupt():
        pass
    assert fake.set_calls == [signal.SIGTERM, signal.SIGTERM]


def test_nothing_is_redirected_outside_the_main_thread_or_with_ctrl_c_ignored(monkeypatch):
    """Outside the main thread (where handlers cannot be set) and with SIGINT ignored, the block runs with every
    handler untouched."""
    fake = FakeSignals(monkeypatch)
    ran = []

    def body():
        with cli._termination_as_interrupt():
            ran.append(True)
    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert ran == [True] and fake.set_calls == []
    fake = FakeSignals(monkeypatch, SIGINT=signal.SIG_IGN)
    with cli._termination_as_interrupt():
        ran.append(True)
    assert ran == [True, True] and fake.set_calls == []


# -- train, resume and the training report ----------------------------------------------------------------------------
def budget(algo="ppo", total_steps=1000):
    return NS(algo=algo, env_id="CartPole-v1", seed=3, total_steps=total_steps, num_envs=8, n_steps=16)


@pytest.mark.parametrize("algo, done, said", [
    ("ppo", 999, ""), ("ppo", 1000, ""), ("reinforce", 1000, ""),
    ("ppo", 1001, " (whole rollouts of num_envs x n_steps = 8 x 16 steps)"),
    ("a2c", 1024, " (whole rollouts of num_envs x n_steps = 8 x 16 steps)"),
    ("trpo", 1024, " (whole rollouts of num_envs x n_steps = 8 x 16 steps)"),
    ("reinforce", 1001, " (whole episodes: an update ends when its last episode does)"),
    ("reinforce_baseline", 1500, " (whole episodes: an update ends when its last episode does)"),
])
def test_an_overshoot_is_explained_by_whole_episodes_or_whole_rollouts(algo, done, said):
    """A run that did more env steps than its budget (not equal: equal is no overshoot) says why: whole episodes
    for the REINFORCE algorithms, whole rollouts of num_envs x n_steps for the others."""
    assert cli._overshoot(budget(algo), done) == said


def fake_run(status="completed", returns=(), steps=(), training_state="state", device_reason="", solved_at=None,
             algo="ppo"):
    saved = []

    def save(out, overwrite):
        saved.append((out, overwrite))
        return Path("/saved") / Path(out).name
    history = NS(status=status, episode_returns=np.asarray(returns, dtype=float),
                 updates={"env_step": np.asarray(steps, dtype=float)}, solved_at=solved_at)
    return NS(config=budget(algo), history=history, training_state=training_state, device="cpu",
              device_reason=device_reason, save=save, saved=saved)


def test_the_training_report_says_budget_episodes_last_twenty_and_wall_time(capsys):
    """The report: ``trained ALGO on ENV (seed S) on DEVICE: DONE of BUDGET env steps[why], N episodes, status
    STATUS`` (thousands separated), the mean of the last 20 returns, the wall time, where it was saved; exit 0."""
    run = fake_run(returns=range(25), steps=[512, 1024])
    assert cli._report_training(run, 1.54, Path("out"), False, False) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "trained ppo on CartPole-v1 (seed 3) on cpu: 1,024 of 1,000 env steps (whole rollouts of num_envs x n_steps = "
        "8 x 16 steps), 25 episodes, status completed",
        "mean return of the last 20 episodes: 14.5",  # episodes 5..24
        "wall time: 1.5 s",
        "saved to /saved/out"]
    assert err == "" and run.saved == [(Path("out"), False)]


def test_the_training_report_with_few_or_no_episodes_and_no_updates(capsys):
    """Fewer than 20 episodes: the mean of those; none: no mean line; no update yet: 0 env steps done."""
    cli._report_training(fake_run(returns=[1.0, 2.0, 4.5]), 0.0, Path("a"), True, False)
    out = capsys.readouterr().out
    assert "mean return of the last 3 episodes: 2.5" in out and "0 of 1,000 env steps, 3 episodes" in out
    cli._report_training(fake_run(), 0.0, Path("a"), False, False)
    out = capsys.readouterr().out
    assert "mean return" not in out and "0 episodes" in out


@pytest.mark.parametrize("reason, line", [
    ("", None),
    ("cpu as asked", "device: cpu (cpu as asked)"),
    ("auto: the CPU (no CUDA). More words", "device: cpu (auto: the CPU; the reason in full: device_reason in the "
                                            "run's meta.json)"),
    ("auto: the CPU. No GPU", "device: cpu (auto: the CPU; the reason in full: device_reason in the run's meta.json)"),
])
def test_the_device_line_is_the_first_clause_of_the_reason(capsys, reason, line):
    """The device line shows the reason up to its first ``". "`` and then its first ``" ("``, pointing to meta.json
    only when that cut something; no reason, no line."""
    cli._report_training(fake_run(device_reason=reason), 0.0, Path("a"), False, False)
    lines = [text for text in capsys.readouterr().out.splitlines() if text.startswith("device: ")]
    assert lines == ([line] if line else [])


def test_the_solved_line_says_mean_step_and_time(capsys):
    """A solved run: ``solved (evaluation mean M) at env step S, after T s`` with M and T to one decimal and S an
    integer with separators."""
    solved_at = {"mean": 480.04, "env_step": 12345.0, "wall_time": 3.26, "other": 0}
    cli._report_training(fake_run(solved_at=solved_at), 0.0, Path("a"), False, False)
    assert "solved (evaluation mean 480.0) at env step 12,345, after 3.3 s\n" in capsys.readouterr().out


@pytest.mark.parametrize("status", ["interrupted", "interrupted inside an update; the weights ..."])
def test_an_interrupted_run_exits_130_and_says_how_to_resume(capsys, status):
    """A status starting with ``interrupted`` exits 130; resumable (a training state) it says ``continue with
    'pgcourse resume PATH'``, else that it cannot be resumed exactly."""
    assert cli._report_training(fake_run(status=status), 0.0, Path("a"), False, False) == 130
    assert capsys.readouterr().err == "interrupted: continue with 'pgcourse resume /saved/a'\n"
    assert cli._report_training(fake_run(status=status, training_state=None), 0.0, Path("a"), False, False) == 130
    assert capsys.readouterr().err == ("interrupted inside an update: this run cannot be resumed exactly (use "
                                       "--checkpoint-every next time)\n")
    assert cli._report_training(fake_run(status="completed", training_state=None), 0.0, Path("a"), False, False) == 0


def test_a_checkpointed_run_stopped_inside_an_update_keeps_its_checkpoint(capsys, tmp_path):
    """With checkpoints and no training state (a hard stop inside an update) the run is not saved over the last
    checkpoint, which is named and resumable; with a training state it is saved, replacing the checkpoint."""
    run = fake_run(status="interrupted", training_state=None)
    assert cli._report_training(run, 0.0, tmp_path / "c", False, True) == 130
    out, err = capsys.readouterr()
    assert run.saved == []
    assert f"the last checkpoint is kept in {(tmp_path / 'c').resolve()} (this stop was inside an update)" in out
    assert err == f"interrupted: continue with 'pgcourse resume {(tmp_path / 'c').resolve()}'\n"
    run = fake_run()
    cli._report_training(run, 0.0, Path("c"), False, True)
    assert run.saved == [(Path("c"), True)]


@pytest.fixture
def no_checks(monkeypatch):
    """cmd_train / cmd_resume with their checks and report recorded, training faked, signals untouched."""
    calls = {"out_free": [], "env": [], "device": [], "report": []}
    monkeypatch.setattr(cli, "_check_out_free", lambda out, overwrite: calls["out_free"].append((out, overwrite)))
    monkeypatch.setattr(cli, "_check_env_id", lambda env, kwargs=None: calls["env"].append((env, kwargs)))
    monkeypatch.setattr(cli, "_check_device", lambda name: calls["device"].append(name))
    monkeypatch.setattr(cli, "_termination_as_interrupt", contextlib.nullcontext)
    monkeypatch.setattr(cli, "_report_training", lambda run, seconds, out, overwrite, checkpointed:
                        calls["report"].append((run, out, overwrite, checkpointed)) or 0)
    return calls


def test_train_hands_its_options_to_training(parser, monkeypatch, no_checks):
    """``pgcourse train``: the run folder defaults to ``runs/ALGO-ENV-seedSEED``; every option reaches training
    (seed, budget, device, log dir, the ``--set`` settings, ``--env-arg`` as env_kwargs); the progress bar is on
    unless ``--quiet`` (a ``--set progress=`` wins); checkpoints go to the run folder, only with
    ``--checkpoint-every``."""
    trained = []
    monkeypatch.setattr(pgcourse.rl.api, "run_training", lambda algo, env, **kw: trained.append((algo, env, kw)) or "R")
    args = parser.parse_args(["train", "a2c", "--env", "CartPole-v1", "--seed", "3", "--steps", "5e3", "--device",
                              "cpu", "--set", "lr=0.5", "--env-arg", "a=1", "--log-dir", "L"])
    assert cli.cmd_train(args) == 0
    out = Path("runs/a2c-CartPole-v1-seed3")
    assert trained == [("a2c", "CartPole-v1", dict(seed=3, total_steps=5000, device="cpu", log_dir="L", lr=0.5,
                                                   env_kwargs={"a": 1}, progress=True))]
    assert no_checks == {"out_free": [(out, False)], "env": [("CartPole-v1", {"a": 1})], "device": ["cpu"],
                         "report": [("R", out, False, False)]}
    trained.clear()
    args = parser.parse_args(["train", "ppo", "--env", "E", "--out", "X", "--quiet", "--overwrite",
                              "--checkpoint-every", "100"])
    cli.cmd_train(args)
    assert trained[0][2] == dict(seed=0, total_steps=None, device="auto", log_dir=None, checkpoint_every=100,
                                 checkpoint_dir=Path("X"), progress=False)
    assert no_checks["report"][-1][1:] == (Path("X"), True, True)
    trained.clear()
    cli.cmd_train(parser.parse_args(["train", "ppo", "--env", "E", "--quiet", "--set", "progress=True"]))
    assert trained[0][2]["progress"] is True


def test_resume_keeps_the_runs_cadence_and_checks_only_another_out(parser, monkeypatch, no_checks, tmp_path):
    """``pgcourse resume``: saved over RUN_DIR by default (no out-folder check for the run's own folder, however
    written); another --out is checked; the checkpoint cadence is --checkpoint-every, else the run's own; the
    report may always replace the folder."""
    resumed = []
    previous = NS(outputs={"checkpoint_every": 256})
    monkeypatch.setattr(pgcourse.rl.run, "load", lambda source: previous)
    monkeypatch.setattr(pgcourse.rl.api, "resume_quietly", lambda run, **kw: resumed.append((run, kw)) or "R")
    source = tmp_path / "run"
    source.mkdir()
    for out in ([], ["--out", str(tmp_path / "run" / ".." / "run")]):
        assert cli.cmd_resume(parser.parse_args(["resume", str(source), *out])) == 0
    assert no_checks["out_free"] == [] and no_checks["device"] == ["auto", "auto"]
    assert resumed[0] == (previous, dict(total_steps=None, device="auto", progress=True, log_dir=None,
                                         checkpoint_every=256, checkpoint_dir=source))
    assert no_checks["report"][0] == ("R", source, True, True)
    resumed.clear()
    other = tmp_path / "other"
    cli.cmd_resume(parser.parse_args(["resume", str(source), "--out", str(other), "--checkpoint-every", "64",
                                      "--quiet", "--steps", "1000", "--device", "cpu", "--log-dir", "L"]))
    assert no_checks["out_free"] == [(other, False)]
    assert resumed[0][1] == dict(total_steps=1000, device="cpu", progress=False, log_dir="L", checkpoint_every=64,
                                 checkpoint_dir=other)
    resumed.clear()
    previous.outputs = {}
    cli.cmd_resume(parser.parse_args(["resume", str(source)]))
    assert "checkpoint_every" not in resumed[0][1] and no_checks["report"][-1][3] is False


# -- eval and gif -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stochastic, mode, asked", [
    (False, None, None), (False, "greedy", "greedy"), (False, "sample", "sample"), (False, "both", "both"),
    (True, None, "sample"), (True, "sample", "sample"),
])
def test_the_asked_mode_is_mode_and_stochastic_is_sample(stochastic, mode, asked):
    """``--stochastic`` is ``--mode sample``; neither is None (the run's own eval_mode)."""
    assert cli._asked_mode(NS(stochastic=stochastic, mode=mode)) == asked


@pytest.mark.parametrize("mode", ["greedy", "both"])
def test_stochastic_with_another_mode_is_refused_naming_it(mode):
    """``--stochastic`` with ``--mode greedy`` or ``both`` contradicts it, and says so."""
    with pytest.raises(UsageError) as error:
        cli._asked_mode(NS(stochastic=True, mode=mode))
    assert str(error.value) == f"--stochastic is --mode sample; it contradicts --mode {mode}"


@pytest.fixture
def fake_eval(monkeypatch):
    """cmd_eval with the run, the environment and the evaluations faked: ``state`` says what they return."""
    state = NS(results={}, sharp=False, env=("CartPole-v1", None), evaluated=[], resolved=[],
               run=NS(config=NS(algo="ppo", eval_mode="greedy")))
    monkeypatch.setattr(pgcourse.rl.run, "load", lambda path: state.run)
    monkeypatch.setattr(pgcourse.rl.evaluation, "resolve_env",
                        lambda run, env, kwargs: state.resolved.append((env, kwargs)) or state.env)

    def evaluate(run, env_id, episodes, seed, mode, env_kwargs):
        state.evaluated.append((env_id, episodes, seed, mode, env_kwargs))
        return state.results[mode]
    monkeypatch.setattr(pgcourse.rl.evaluation, "evaluate", evaluate)
    monkeypatch.setattr(pgcourse.rl.evaluation, "modes_disagree", lambda greedy, sample: state.sharp)
    monkeypatch.setattr(pgcourse.rl.evaluation, "disagreement_note", lambda greedy, sample: "NOTE")
    state.results = {"greedy": (475.0, 1.0, [474.0, 475.0, 476.0]), "sample": (10.0, 2.0, [8.0, 12.0, 10.0])}
    return state


def test_eval_prints_the_runs_mode_and_whether_the_mean_reaches_the_threshold(parser, fake_eval, capsys):
    """``pgcourse eval``: both modes are evaluated on the same episodes (the shown one first); one line with the
    mean ± std, the episodes and their seeds (SEED..SEED+N-1) and which mode; ``solved: yes`` at a mean equal to the
    threshold; the returns; nothing of the other mode while the two agree."""
    assert cli.cmd_eval(parser.parse_args(["eval", "R", "--episodes", "3", "--seed", "7"])) == 0
    assert capsys.readouterr().out.splitlines() == [
        "ppo on CartPole-v1: mean return 475.0 ± 1.0 over 3 episodes (seeds 7..9, greedy: the run's eval_mode)",
        "solved: yes (threshold 475)", "returns: 474.0 475.0 476.0"]
    assert fake_eval.evaluated == [("CartPole-v1", 3, 7, "greedy", None), ("CartPole-v1", 3, 7, "sample", None)]
    assert fake_eval.resolved == [(None, None)]


def test_eval_of_an_asked_mode_below_the_threshold_and_of_both(parser, fake_eval, capsys):
    """A mode asked for is shown first, ``as asked``, naming the run's own; a mean just under the threshold is not
    solved; ``--mode both`` (or a sharp disagreement) also prints the other mode; a sharp disagreement says why."""
    fake_eval.results["sample"] = (474.9, 2.0, [474.9])
    cli.cmd_eval(parser.parse_args(["eval", "R", "--episodes", "1", "--stochastic"]))
    assert capsys.readouterr().out.splitlines() == [
        "ppo on CartPole-v1: mean return 474.9 ± 2.0 over 1 episodes (seeds 10000..10000, sample, as asked; the "
        "run's eval_mode is greedy)", "solved: no (threshold 475)", "returns: 474.9"]
    fake_eval.results["sample"] = (10.0, 2.0, [8.0, 12.0])
    cli.cmd_eval(parser.parse_args(["eval", "R", "--mode", "both"]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("(seeds 10000..10019, greedy: the run's eval_mode)")
    assert lines[3:] == ["sample: mean return 10.0 ± 2.0 over the same episodes; solved: no (threshold 475)",
                         "returns (sample): 8.0 12.0"]
    fake_eval.sharp = True
    fake_eval.run.config.eval_mode = "sample"
    cli.cmd_eval(parser.parse_args(["eval", "R"]))
    lines = capsys.readouterr().out.splitlines()
    assert "(seeds 10000..10019, sample: the run's eval_mode)" in lines[0]
    assert lines[3] == "greedy: mean return 475.0 ± 1.0 over the same episodes; solved: yes (threshold 475)"
    assert lines[5] == ("the two modes disagree sharply (their means differ by more than both stds and more than 10% "
                        "of the range of the returns): NOTE")


def test_eval_on_an_env_without_a_threshold_and_with_env_args(parser, fake_eval, capsys):
    """On an environment with no solve threshold there is no solved verdict (neither line); ``--env`` and
    ``--env-arg`` go to resolve_env, and the environment is named with its keyword arguments."""
    fake_eval.env = ("MyEnv-v0", {"a": 1})
    fake_eval.sharp = True
    cli.cmd_eval(parser.parse_args(["eval", "R", "--env", "MyEnv-v0", "--env-arg", "a=1", "--episodes", "2"]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ppo on MyEnv-v0 with env_kwargs={'a': 1}: mean return 475.0 ± 1.0 over 2 episodes")
    assert lines[2] == "sample: mean return 10.0 ± 2.0 over the same episodes"
    assert not any("solved" in t for t in lines)
    assert fake_eval.resolved == [("MyEnv-v0", {"a": 1})]
    assert fake_eval.evaluated[0][4] == {"a": 1}


@pytest.mark.parametrize("flags, deterministic", [([], None), (["--mode", "greedy"], True),
                                                  (["--mode", "sample"], False),
                                                  (["--stochastic"], False)])
def test_gif_is_greedy_only_when_asked_and_named_after_the_run_folder(parser, monkeypatch, tmp_path, capsys, flags,
                                                                     deterministic):
    """``pgcourse gif``: deterministic is None (the run's eval_mode) unless a mode is asked, True for greedy; the
    default file is the run folder's resolved name + .gif in the working folder; the caption is on unless
    ``--no-caption``; the size is printed in KiB to one decimal."""
    recorded = []
    monkeypatch.setattr(pgcourse.rl.run, "load", lambda path: "RUN")

    def rollout_gif(run, env, out, seed, deterministic, caption, env_kwargs):
        recorded.append(dict(run=run, env=env, out=out, seed=seed, deterministic=deterministic, caption=caption,
                             env_kwargs=env_kwargs))
        Path(out).write_bytes(b"x" * 5120)
        return out
    monkeypatch.setattr(pgcourse.course.views.render, "rollout_gif", rollout_gif)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "myrun" / "sub").mkdir(parents=True)
    assert cli.cmd_gif(parser.parse_args(["gif", "runs/myrun/sub/..", *flags])) == 0
    out = str(Path.cwd() / "myrun.gif")
    assert recorded == [dict(run="RUN", env=None, out=out, seed=0, deterministic=deterministic, caption=True,
                             env_kwargs=None)]
    assert capsys.readouterr().out == f"wrote {out} (5.0 KiB)\n"
    cli.cmd_gif(parser.parse_args(["gif", "R", "--out", "g.gif", "--no-caption", "--seed", "4", "--env", "E",
                                   "--env-arg", "k=2", *flags]))
    assert recorded[-1] == dict(run="RUN", env="E", out="g.gif", seed=4, deterministic=deterministic, caption=False,
                                env_kwargs={"k": 2})


# -- bench ----------------------------------------------------------------------------------------------------------
@pytest.fixture
def bench_calls(monkeypatch):
    calls = []
    for module, name in ((pgcourse.bench, "suite"), (pgcourse.bench.device, "device"),
                         (pgcourse.bench.scaling, "scaling"), (pgcourse.bench.env_speed, "envs")):
        monkeypatch.setattr(module, "main", lambda *a, _name=name, **kw: calls.append((_name, a, kw)) or 7)
    return calls


def test_bench_parts_go_to_their_own_benchmark(parser, bench_calls):
    """``bench device`` and ``bench scaling`` get the widths and --quick (scaling also --json); ``bench envs`` gets
    ``--num-envs`` of the widths (default the env benchmark's own) and, with --quick, 0.3 s x 3 measurements; each
    part's exit code is the command's."""
    assert cli.cmd_bench(parser.parse_args(["bench", "device", "--widths", "8", "--quick"])) == 7
    cli.cmd_bench(parser.parse_args(["bench", "scaling", "--json", "s.json"]))
    cli.cmd_bench(parser.parse_args(["bench", "envs", "--widths", "8", "64", "--quick"]))
    cli.cmd_bench(parser.parse_args(["bench", "envs"]))
    assert bench_calls == [
        ("device", (), dict(widths=[8], quick=True)),
        ("scaling", (), dict(widths=None, quick=False, json_path="s.json")),
        ("envs", (["--num-envs", "8", "64", "--seconds", "0.3", "--repeats", "3"],), {}),
        ("envs", (["--num-envs", "8", "64", "512", "4096"],), {})]


def test_bench_without_a_part_runs_the_suite_with_each_skip_flag_turning_its_part_off(parser, bench_calls):
    """``pgcourse bench``: every part on by default (SB3, suite, comparisons, scaling, batched seeds); each
    ``--no-sb3`` / ``--skip-*`` turns off its own part only; the selections pass through."""
    assert cli.cmd_bench(parser.parse_args(["bench"])) == 7
    on = dict(sb3=True, suite=True, comparisons=True, scaling=True, batched_seeds=True)
    assert bench_calls[-1] == ("suite", (), dict(algos=None, envs=None, seeds=None, quick=False, stop_when_solved=False,
                                                  json_path=None, device="cpu", compare_seeds=None, **on))
    for flag, part in (("--no-sb3", "sb3"), ("--skip-suite", "suite"), ("--skip-comparisons", "comparisons"),
                       ("--skip-scaling", "scaling"), ("--skip-batched-seeds", "batched_seeds")):
        cli.cmd_bench(parser.parse_args(["bench", flag]))
        assert {key: bench_calls[-1][2][key] for key in on} == {**on, part: False}, flag
    cli.cmd_bench(parser.parse_args(["bench", "--algos", "ppo", "--envs", "E", "--seeds", "2", "--quick",
                                     "--stop-when-solved", "--json", "j", "--device", "cuda", "--compare-seeds", "5"]))
    assert bench_calls[-1][2] == dict(algos=["ppo"], envs=["E"], seeds=[2], quick=True, stop_when_solved=True,
                                      json_path="j", device="cuda", compare_seeds=[5], **on)


# -- sweep: --grid and --seeds --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("x=1", ("x", [1])), ("x=1,", ("x", [1])), (" x =0.1, 0.2", ("x", [0.1, 0.2])), ("x=1,abc", ("x", [1, "abc"])),
    ("x= a , b ", ("x", ["a", "b"])), ("x=a b,c", ("x", ["a b", "c"])), ("x=[1,2],[3]", ("x", [[1, 2], [3]])),
    ("x=None,True", ("x", [None, True])), ("x='a,b'", ("x", ["a,b"])), ("x=a,b=c", ("x", ["a", "b=c"])),
    ("x=1,1", ("x", [1, 1])), ("x=(1,)", ("x", [(1,)])), ("x=true,1e3", ("x", ["true", 1000.0])),
    ("seeds=1,2", ("seeds", [1, 2])),
])
def test_a_grid_axis_is_a_list_of_literals_else_of_comma_separated_settings(text, expected):
    """``--grid KEY=V1,V2``: the values read as one Python list when they do (tuples and quoted commas kept whole),
    else split at commas, each read as a ``--set`` value (a literal, else its stripped text); duplicates kept."""
    found = cli.parse_grid_axis(text)
    assert found == expected and type(found[1]) is list


def test_a_grid_value_too_deep_for_the_parser_is_its_text():
    """A value Python's parser gives up on is its text, in the per-item reading too."""
    raw = "-" * 3000 + "1"
    assert cli.parse_grid_axis(f"x={raw}") == ("x", [raw])


@pytest.mark.parametrize("text", ["x", "=1", "x=", "x=   ", "1x=1", "a b=1", ""])
def test_a_grid_axis_without_a_key_or_values_is_refused_naming_the_text(text):
    """A ``--grid`` without ``=``, with a key that is no identifier, or with no values (blank too) is refused."""
    with pytest.raises(UsageError) as error:
        cli.parse_grid_axis(text)
    assert str(error.value) == f"--grid expects key=value1,value2,... (e.g. --grid clip_eps=0.1,0.2), got {text!r}"


@pytest.mark.parametrize("key, said", [("seed", "use --seeds"), ("total_steps", "cannot be swept here"),
                                       ("device", "cannot be swept here"), ("algo", "cannot be swept here"),
                                       ("env_id", "cannot be swept here")])
def test_a_grid_over_a_dedicated_option_is_refused(key, said):
    """The seed is swept with ``--seeds``; the other settings with their own option cannot be swept with --grid."""
    for text in (f"{key}=1,2", f" {key} =1"):
        with pytest.raises(UsageError) as error:
            cli.parse_grid_axis(text)
        assert str(error.value) == f"--grid {key}=...: {said}"


@pytest.mark.parametrize("text, seeds", [
    ("1", [0]), ("3", [0, 1, 2]), (" 3 ", [0, 1, 2]), ("\u0663", [0, 1, 2]), ("3-3", [3]), ("0-0", [0]),
    ("3-5", [3, 4, 5]), ("3 - 5", [3, 4, 5]), ("0,4,9", [0, 4, 9]), ("9,0", [9, 0]), ("2,2", [2, 2]), ("0", None),
    ("0,1", [0, 1]), ("7-3", None), ("-1", None), ("1--2", None), ("0,-1", None), ("-2-3", None), ("", None),
    (" ", None), ("a", None), ("1.5", None), ("1-2-3", None), (",", None), ("5,", None), ("1-3,5", None),
])
def test_seeds_are_a_count_an_inclusive_range_or_a_list_of_seeds_at_least_zero(text, seeds):
    """``--seeds N`` is 0..N-1 (N >= 1), ``A-B`` is A..B inclusive (A <= B), ``A,B,...`` those seeds as given (order
    and duplicates kept); no seed, a negative one or unreadable text is refused naming the three forms and the text."""
    if seeds is not None:
        assert cli.parse_seeds(text) == seeds
        return
    with pytest.raises(UsageError) as error:
        cli.parse_seeds(text)
    assert str(error.value) == ("--seeds expects a count (10), a range (0-9) or a list (0,4,9) of seeds >= 0, got "
                                f"{text!r}")


def test_a_large_seed_count_has_no_upper_bound():
    """A count has no largest value: ``100000`` is the seeds 0..99999."""
    seeds = cli.parse_seeds("100000")
    assert len(seeds) == 100_000 and seeds[-1] == 99_999


# -- sweep: the command --------------------------------------------------------------------------------------------
class SweepDone:
    def __init__(self, interrupted=False, failed=(), trials=(), folder="F"):
        self.interrupted, self.failed, self.trials, self.folder = interrupted, list(failed), list(trials), folder

    def summary(self):
        return "SUMMARY"


@pytest.fixture
def fake_sweeps(monkeypatch):
    state = NS(calls=[], verified=[], result=SweepDone(), report=NS(ok=True), error=None)

    def sweep(*args, **kwargs):
        state.calls.append((args, kwargs))
        if state.error:
            raise pgcourse.course.sweeps.SweepResultsError(state.error)
        return state.result

    def verify(folder, **kwargs):
        state.verified.append((folder, kwargs))
        if state.error:
            raise pgcourse.course.sweeps.SweepResultsError(state.error)
        return state.report
    monkeypatch.setattr(pgcourse.course.sweeps, "sweep", sweep)
    monkeypatch.setattr(pgcourse.course.sweeps, "verify", verify)
    return state


SWEEP = ["sweep", "ppo,a2c", "--env", "CartPole-v1,Acrobot-v1", "--out", "F"]


def test_sweep_hands_the_lists_seeds_grid_and_settings_to_the_sweep(parser, fake_sweeps, capsys):
    """``pgcourse sweep``: ALGO and --env split at commas, --seeds parsed, the grid a dict of the axes (None without
    --grid), every option passed, --set and --env-arg as settings; 0 and the summary when nothing failed."""
    assert cli.cmd_sweep(parser.parse_args([*SWEEP, "--seeds", "2-3", "--grid", "lr=0.1,0.2", "--grid", "gamma=0.9",
                                            "--set", "n_steps=8", "--env-arg", "a=1", "--steps", "100",
                                            "--backend", "ray", "--workers", "2", "--address", "A", "--num-gpus", "0.5",
                                            "--retries", "0", "--compress", "--quiet"])) == 0
    assert fake_sweeps.calls == [((["ppo", "a2c"], ["CartPole-v1", "Acrobot-v1"], [2, 3],
                                   {"lr": [0.1, 0.2], "gamma": [0.9]}),
                                  dict(folder="F", backend="ray", workers=2, address="A", num_gpus=0.5, retries=0,
                                       progress=False, compress=True, total_steps=100, n_steps=8,
                                       env_kwargs={"a": 1}))]
    assert capsys.readouterr().out == "SUMMARY\n"
    cli.cmd_sweep(parser.parse_args(SWEEP))
    args, kwargs = fake_sweeps.calls[-1]
    assert args[2:] == (list(range(10)), None)
    assert kwargs == dict(folder="F", backend="local", workers=None, address=None, num_gpus=0.0, retries=1,
                          progress=True, compress=False, total_steps=None)


def test_sweep_exits_1_on_failed_trials_and_130_when_interrupted(parser, fake_sweeps, capsys):
    """Failed trials: exit 1 (after the summary); interrupted: exit 130 and a line saying how many finished trials
    are kept where, and that the same command resumes."""
    fake_sweeps.result = SweepDone(failed=["t"])
    assert cli.cmd_sweep(parser.parse_args(SWEEP)) == 1
    fake_sweeps.result = SweepDone(interrupted=True, trials=["a", "b"], folder="F")
    assert cli.cmd_sweep(parser.parse_args(SWEEP)) == 130
    assert capsys.readouterr().err == ("pgcourse sweep: interrupted; 2 finished trials are kept in F; run the same "
                                       "command again to resume\n")
    fake_sweeps.error = "the folder holds another sweep"
    with pytest.raises(UsageError) as error:
        cli.cmd_sweep(parser.parse_args(SWEEP))
    assert str(error.value) == "the folder holds another sweep"


@pytest.mark.parametrize("argv, message", [
    (["sweep", "--exact"], "--exact goes with --verify FOLDER (accept bit-for-bit re-runs only)"),
    (["sweep", "--exact", "ppo", "--env", "E", "--out", "F"], "--exact goes with --verify FOLDER"),
    (["sweep", "--env", "E", "--out", "F"], "give ALGO and --env (e.g. pgcourse sweep ppo --env CartPole-v1 --seeds "
                                            "10 --out sweeps/ppo), or --verify FOLDER"),
    (["sweep", "ppo", "--out", "F"], "give ALGO and --env"),
    (["sweep", "ppo", "--env", "E"], "--out FOLDER is required: every finished trial is written there (and a rerun "
                                     "resumes)"),
    ([*SWEEP, "--grid", "b=1", "--grid", "a=1", "--grid", "b=2", "--grid", "a=2"],
     "--grid a=... is given twice; list every value once: --grid a=VALUE1,VALUE2"),
    ([*SWEEP, "--grid", "lr=1", "--grid", " lr =2"], "--grid lr=... is given twice"),
    ([*SWEEP, "--seeds", "0"], "--seeds expects a count"),
    ([*SWEEP, "--set", "env_kwargs={}", "--env-arg", "a=1"],
     "give the environment's keyword arguments with --env-arg KEY=VALUE or with --set env_kwargs={...}, not both"),
])
def test_a_sweep_missing_what_it_needs_is_refused_before_anything_runs(parser, fake_sweeps, argv, message):
    """``--exact`` needs --verify; a sweep needs ALGO, --env and --out; a grid key given twice is refused naming the
    first in sorted order; bad seeds and both env-argument forms are refused; nothing is swept."""
    with pytest.raises(UsageError) as error:
        cli.cmd_sweep(parser.parse_args(argv))
    assert str(error.value).startswith(message) and fake_sweeps.calls == []


def test_verify_takes_no_sweep_definition_and_exits_by_the_verdict(parser, fake_sweeps, capsys):
    """``--verify FOLDER`` refuses ALGO, --env, --grid and --set; it passes its options on, prints the report and
    exits 0 when it is ok, 1 when not; a folder it cannot read is a UsageError with the reason."""
    for extra in (["ppo"], ["--env", "E"], ["--grid", "a=1"], ["--set", "a=1"]):
        with pytest.raises(UsageError) as error:
            cli.cmd_sweep(parser.parse_args(["sweep", "--verify", "V", *extra]))
        assert str(error.value) == ("--verify FOLDER re-runs trials of a finished sweep; give no ALGO, --env, --grid "
                                    "or --set")
    assert fake_sweeps.verified == []
    fake_sweeps.report = type("Report", (), {"ok": True, "__str__": lambda self: "REPORT"})()
    assert cli.cmd_sweep(parser.parse_args(["sweep", "--verify", "V"])) == 0
    assert capsys.readouterr().out == "REPORT\n"
    assert fake_sweeps.verified == [("V", dict(sample=3, seed=None, workers=None, progress=True, exact=False,
                                               min_arm_seeds=1))]
    fake_sweeps.report.ok = False
    assert cli.cmd_sweep(parser.parse_args(["sweep", "--verify", "V", "--sample", "5", "--sample-seed", "9",
                                            "--workers", "2", "--quiet", "--exact", "--min-arm-seeds", "3"])) == 1
    assert fake_sweeps.verified[-1] == ("V", dict(sample=5, seed=9, workers=2, progress=False, exact=True,
                                                  min_arm_seeds=3))
    fake_sweeps.error = "no sweep.json in V"
    with pytest.raises(UsageError) as error:
        cli.cmd_sweep(parser.parse_args(["sweep", "--verify", "V"]))
    assert str(error.value) == "no sweep.json in V"


# -- plot -----------------------------------------------------------------------------------------------------------
def run_of(algo, env_id, seed):
    return NS(config=NS(algo=algo, env_id=env_id, seed=seed))


@pytest.mark.parametrize("runs, title", [
    ([("ppo", "CartPole-v1", 0)], "ppo on CartPole-v1, seed 0"),
    ([("ppo", "CartPole-v1", 3), ("ppo", "CartPole-v1", 3)], "ppo on CartPole-v1, seed 3"),
    ([("a2c", "E", 2), ("ppo", "E", 0), ("a2c", "E", 2)], "a2c and ppo on E, 2 seeds"),
    ([("ppo", "B", 1), ("ppo", "A", 1), ("ppo", "B", 1)], "ppo on B and A, seed 1"),
])
def test_a_plot_title_lists_each_differing_part_once_in_order_and_counts_distinct_seeds(runs, title):
    """The title names each algorithm and environment once, in order of first appearance (``x and y``), and ``seed
    S`` for one distinct seed, else ``N seeds`` counting distinct seeds."""
    assert cli.runs_title([run_of(*run) for run in runs]) == title


@pytest.fixture
def plotted(monkeypatch):
    calls = []
    monkeypatch.setattr(pgcourse.course.sweeps, "plot_sweep", lambda folder, **kw: calls.append((folder, kw)))
    return calls


def test_plot_of_a_sweep_writes_the_folders_name_as_png_by_default(parser, plotted, monkeypatch, tmp_path, capsys):
    """``pgcourse plot SWEEP``: the image is the folder's (resolved) name + .png in the working folder unless --out;
    --out may be .png, .svg or .pdf in any case; the statistic and window pass through."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mysweep" / "sub").mkdir(parents=True)
    (tmp_path / "mysweep" / "sweep.json").write_text("{}")
    assert cli.cmd_plot(parser.parse_args(["plot", "mysweep/sub/.."])) == 0
    assert plotted == [(Path("mysweep/sub/.."), dict(statistic="iqm", window=20, path=Path("mysweep.png")))]
    assert capsys.readouterr().out == "wrote mysweep.png\n"
    for out in ("a.PNG", "b.svg", "c.Pdf"):
        cli.cmd_plot(parser.parse_args(["plot", "mysweep", "--out", out, "--statistic", "median", "--window", "5"]))
        assert plotted[-1][1] == dict(statistic="median", window=5, path=Path(out))


@pytest.mark.parametrize("case", ["missing", "file", "two sweeps", "sweep and run", "txt", "no suffix", "not a run"])
def test_plot_refuses_what_is_not_a_sweep_or_saved_runs_naming_it(parser, plotted, monkeypatch, tmp_path, case):
    """Each FOLDER must be a folder; one sweep folder alone (not two, not with runs); --out a .png, .svg or .pdf;
    a folder that is no sweep must hold a saved run's meta.json."""
    monkeypatch.chdir(tmp_path)
    for name in ("s1", "s2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "sweep.json").write_text("{}")
    (tmp_path / "plain").mkdir()
    (tmp_path / "afile").write_text("x")
    argv, message = {
        "missing": (["nowhere"], "nowhere is not a folder (expected a sweep's results folder or a saved run)"),
        "file": (["s1", "afile"], "afile is not a folder (expected a sweep's results folder or a saved run)"),
        "two sweeps": (["s1", "s2"], "give one sweep folder, or one or more saved runs (not both)"),
        "sweep and run": (["plain", "s1"], "give one sweep folder, or one or more saved runs (not both)"),
        "txt": (["s1", "--out", "x.txt"], "--out x.txt: expected a .png, .svg or .pdf file"),
        "no suffix": (["s1", "--out", "x"], "--out x: expected a .png, .svg or .pdf file"),
        "not a run": (["plain"], "plain is neither a sweep folder (sweep.json) nor a saved pgcourse-run (meta.json)"),
    }[case]
    with pytest.raises(UsageError) as error:
        cli.cmd_plot(parser.parse_args(["plot", *argv]))
    assert str(error.value) == message and plotted == []


# -- handout, exercises ----------------------------------------------------------------------------------------------
def test_handout_names_what_it_wrote_and_turns_its_errors_into_usage_errors(parser, monkeypatch, capsys):
    """``pgcourse handout DIR``: one line naming DIR and each written entry by name; a HandoutError is a UsageError
    with its message."""
    calls = []
    monkeypatch.setattr(pgcourse.classroom.handout, "write_handout",
                        lambda target, course: calls.append((target, course)) or [Path("D/START_HERE.md"),
                                                                                  Path("D/lessons")])
    assert cli.cmd_handout(parser.parse_args(["handout", "D", "--course", "C"])) == 0
    assert calls == [("D", "C")]
    assert capsys.readouterr().out == ("wrote the handout into D: START_HERE.md, lessons (no solutions/, tests/, "
                                       "tools/ or docs/; see docs/teachers.md for what the package still shows)\n")

    def refuse(target, course):
        raise pgcourse.classroom.handout.HandoutError("D is not empty")
    monkeypatch.setattr(pgcourse.classroom.handout, "write_handout", refuse)
    with pytest.raises(UsageError) as error:
        cli.cmd_handout(parser.parse_args(["handout", "D"]))
    assert str(error.value) == "D is not empty"


def test_exercises_exit_0_when_the_generator_returns_nothing_and_say_when_it_is_missing(parser, monkeypatch):
    """The generator's None is exit code 0; a generator that cannot be imported is a UsageError naming the cause."""
    import pgcourse.classroom
    fake = types.ModuleType("pgcourse.classroom.exercisegen")
    checked = []
    fake.main = lambda check=False: checked.append(check)
    monkeypatch.setitem(sys.modules, "pgcourse.classroom.exercisegen", fake)
    monkeypatch.setattr(pgcourse.classroom, "exercisegen", fake, raising=False)
    assert cli.cmd_exercises(parser.parse_args(["exercises", "--check"])) == 0 and checked == [True]
    monkeypatch.setitem(sys.modules, "pgcourse.classroom.exercisegen", None)
    monkeypatch.delattr(pgcourse.classroom, "exercisegen")
    with pytest.raises(UsageError) as error:
        cli.cmd_exercises(parser.parse_args(["exercises"]))
    assert str(error.value).startswith("the exercise generator is not available: ")


# -- main: exit codes and one-line messages ---------------------------------------------------------------------------
def test_the_user_errors_are_exactly_these():
    """Errors of the user's input (exit 2, one line): UsageError, ConfigError, RunLoadError, FileExistsError,
    FileNotFoundError, NotADirectoryError, ValueError and gymnasium's errors; nothing else."""
    import gymnasium as gym

    from pgcourse.rl.config import ConfigError
    from pgcourse.rl.run import RunLoadError
    assert set(cli._user_errors()) == {UsageError, ConfigError, RunLoadError, FileExistsError, FileNotFoundError,
                                       NotADirectoryError, ValueError, gym.error.Error}


@pytest.mark.parametrize("raised, code, err", [
    (UsageError("  bad thing\nsecond line"), 2, "pgcourse exercises: error: bad thing\n"),
    (UsageError("\n\n first \n"), 2, "pgcourse exercises: error: first\n"),
    (ValueError(" \n "), 2, "pgcourse exercises: error: ValueError\n"),
    (NotADirectoryError("not a dir"), 2, "pgcourse exercises: error: not a dir\n"),
    (FileExistsError("taken"), 2, "pgcourse exercises: error: taken\n"),
    (KeyboardInterrupt(), 130, "pgcourse exercises: interrupted\n"),
    (None, 5, ""),
])
def test_main_turns_a_user_error_into_one_line_and_exit_2_and_ctrl_c_into_130(monkeypatch, capsys, raised, code, err):
    """A user error: ``pgcourse COMMAND: error: FIRST LINE`` (stripped; the error's type when it has no text), exit
    2; Ctrl-C: ``pgcourse COMMAND: interrupted``, exit 130; otherwise the handler's own exit code."""
    def handler(args):
        if raised is not None:
            raise raised
        return 5
    monkeypatch.setattr(cli, "cmd_exercises", handler)
    assert cli.main(["exercises"]) == code
    assert capsys.readouterr().err == err


def test_main_lets_a_programming_error_through_and_prints_a_warning_as_one_line(monkeypatch, capsys):
    """An error that is not the user's (a RuntimeError) is raised, not hidden; a warning is one line
    ``pgcourse COMMAND: warning: MESSAGE``, and the warning filter is restored after."""
    def broken(args):
        raise RuntimeError("bug")
    monkeypatch.setattr(cli, "cmd_exercises", broken)
    with pytest.raises(RuntimeError):
        cli.main(["exercises"])

    def warns(args):
        warnings.warn("careful", UserWarning)
        return 0
    before = warnings.showwarning
    monkeypatch.setattr(cli, "cmd_exercises", warns)
    assert cli.main(["exercises"]) == 0
    assert capsys.readouterr().err == "pgcourse exercises: warning: careful\n"
    assert warnings.showwarning is before


# -- unknown arguments ----------------------------------------------------------------------------------------------
def test_unknown_arguments_name_the_commands_usage_and_every_argument(parser):
    """The message: the command's usage, then ``pgcourse COMMAND: error: unrecognized argument(s): ARGS`` (all of
    them, as given), then one indented line per option it can say something about, in order; arguments that are no
    long option (``stray``, ``-x``) get no line."""
    said = cli.unknown_arguments(parser, "train", ["stray", "-x", "-steps", "--stesp", "3", "--lr"])
    lines = said.splitlines()
    assert lines[0].startswith("usage: pgcourse train ") and "--env ENV" in said
    assert lines[-3:] == ["pgcourse train: error: unrecognized argument(s): stray -x -steps --stesp 3 --lr",
                          "  --stesp: did you mean --steps?", "  --lr: settings go through --set, e.g. --set lr=VALUE"]


def test_a_setting_written_as_an_option_is_pointed_to_set_before_any_near_option(parser):
    """A config setting written as an option (dashes for underscores) is pointed to ``--set NAME=VALUE`` even when
    an option is near its spelling (``--n-steps`` and ``--steps``); the value is after ``=`` (the rest of the
    token) or the next argument."""
    said = cli.unknown_arguments(parser, "train", ["--n-steps", "8", "--clip-eps=a=b", "--stes=5"])
    assert said.splitlines()[-3:] == ["  --n-steps: settings go through --set, e.g. --set n_steps=8",
                                      "  --clip-eps=a=b: settings go through --set, e.g. --set clip_eps=a=b",
                                      "  --stes=5: did you mean --steps?"]
    assert said.count("did you mean") == 1


def test_a_command_without_set_gets_no_settings_hint_and_a_far_typo_no_guess(parser):
    """Only commands that take ``--set`` point a setting there (eval does not); an option whose similarity to every
    known one is below 0.75 gets no guess (``--epi``: 0.73 to --help), one at 0.75 exactly does (``--seedXYZW``)."""
    said = cli.unknown_arguments(parser, "eval", ["--lr", "3", "--zzzzzz", "--epi", "--seedXYZWV"])
    assert said.split("\npgcourse eval: error: unrecognized argument(s): ")[1] == "--lr 3 --zzzzzz --epi --seedXYZWV"
    said = cli.unknown_arguments(parser, "eval", ["--seedXYZW"])
    assert said.endswith("\n  --seedXYZW: did you mean --seed?")
    said = cli.unknown_arguments(parser, "sweep", ["--gamma", "0.9"])
    assert said.endswith("\n  --gamma: settings go through --set, e.g. --set gamma=0.9")


def test_unknown_arguments_without_a_command_use_the_top_level_options(parser, capsys):
    """Without a command: the top-level usage, ``pgcourse: error: ...`` and guesses among its own options; main
    exits 2 with that message."""
    said = cli.unknown_arguments(parser, None, ["--versoin"])
    assert said.splitlines() == ["usage: pgcourse [-h] [--version] COMMAND ...",
                                 "pgcourse: error: unrecognized argument(s): --versoin",
                                 "  --versoin: did you mean --version?"]
    assert cli.main(["--bogus"]) == 2
    assert "pgcourse: error: unrecognized argument(s): --bogus" in capsys.readouterr().err


def test_the_setting_names_are_every_configs_fields():
    """The settings ``--set`` takes are the fields of every algorithm's config: shared ones and each algorithm's own
    (PPO's clip_eps, TRPO's max_kl, REINFORCE's return_weighting, A2C's gae_lambda)."""
    names = cli._setting_names()
    assert {"lr", "num_envs", "seed", "total_steps", "clip_eps", "max_kl", "return_weighting", "gae_lambda",
            "normalize_weights", "cg_iters", "update_epochs"} <= names
    assert "steps" not in names and "clip-eps" not in names


# == pgcourse/colab.py ===============================================================================================
@pytest.mark.parametrize("requirement, name", [
    ("numpy", "numpy"), ("NumPy>=2", "numpy"), ("  scipy ==1", "scipy"), ("\tpkg", "pkg"),
    ("Foo.Bar__baz~=1", "foo-bar-baz"),
    ("a", "a"), ("3to2", "3to2"), ("zope.interface", "zope-interface"), ("pkg; python_version<'3.13'", "pkg"),
    ("pkg @ https://example.org/pkg.whl", "pkg"), ("A-_-B", "a-b"), ("name-", "name-"), ("pkg.", "pkg-"),
    ("Matplotlib_Inline", "matplotlib-inline"),
])
def test_a_requirement_name_is_its_leading_name_lowercased_with_separator_runs_as_one_dash(requirement, name):
    """PEP 503: the distribution name at the start (after whitespace; a letter or digit, then letters, digits,
    ``.``, ``_``, ``-``), lowercased, each run of ``-``, ``_`` and ``.`` one ``-``."""
    assert colab.requirement_name(requirement) == name


@pytest.mark.parametrize("requirement", ["", "   ", "[extra]", "-pkg", "_pkg", ".pkg", "\u00e9lan", "==1"])
def test_a_requirement_without_a_name_is_refused_naming_it(requirement):
    """A requirement that does not start with a name is a ColabSetupError quoting it."""
    with pytest.raises(colab.ColabSetupError) as error:
        colab.requirement_name(requirement)
    assert str(error.value) == f"cannot read the package name of the requirement {requirement!r}"


def pyproject(extras: str | None) -> str:
    text = '[project]\nname = "x"\ndependencies = ["b==1", "a>=2"]\n'
    return text + (f"[project.optional-dependencies]\n{extras}\n" if extras is not None else "")


def test_the_requirements_are_the_dependencies_and_the_colab_extra_in_order():
    """``read_requirements``: the dependencies and the ``colab`` extra as lists, in their order; an empty colab
    extra is allowed; other extras are not read."""
    assert colab.read_requirements(pyproject('dev = ["z"]\ncolab = ["b==1", "c"]')) == (["b==1", "a>=2"], ["b==1", "c"])
    assert colab.read_requirements(pyproject("colab = []")) == (["b==1", "a>=2"], [])


@pytest.mark.parametrize("extras", [None, 'dev = ["z"]', 'Colab = ["b"]'])
def test_a_pyproject_without_a_colab_extra_is_refused(extras):
    """No ``colab`` extra (no extras at all, others only, or another case) is refused: this is no Colab release."""
    with pytest.raises(colab.ColabSetupError) as error:
        colab.read_requirements(pyproject(extras))
    assert str(error.value).startswith("pyproject.toml has no 'colab' extra")


KEPT = {"torch": "2.0", "numpy": "1.0", "matplotlib": "3.0"}


@pytest.mark.parametrize("lacking, said", [
    (("torch",), "torch"), (("numpy",), "numpy"), (("matplotlib",), "matplotlib"),
    (("torch", "matplotlib"), "torch, matplotlib"), (("matplotlib", "numpy", "torch"), "torch, numpy, matplotlib"),
])
def test_a_python_lacking_torch_numpy_or_matplotlib_gets_no_plan_naming_each_missing(lacking, said):
    """Each of torch, numpy and matplotlib missing stops the plan, naming the missing ones in that order."""
    installed = {name: version for name, version in KEPT.items() if name not in lacking} | {"scipy": "1"}
    with pytest.raises(colab.ColabSetupError) as error:
        colab.plan([], [], installed)
    assert str(error.value).startswith(f"{said} not installed: the Colab set-up uses Colab's own torch")


@pytest.mark.parametrize("extra", [["NumPy>=2"], ["ok", "Torch"], ["matplotlib==3.0"]])
def test_a_colab_extra_naming_torch_numpy_or_matplotlib_is_refused(extra):
    """The colab extra must never name torch, numpy or matplotlib (in any spelling); the message lists them."""
    forbidden = [r for r in extra if r != "ok"]
    with pytest.raises(colab.ColabSetupError) as error:
        colab.plan([], extra, KEPT)
    assert str(error.value) == f"the colab extra asks for {forbidden}: it must never name torch, numpy, matplotlib"


def test_the_plan_is_the_whole_extra_then_each_missing_dependency_once():
    """The plan: the colab extra as written (even what is installed), then each dependency in order that is not
    named by the extra, not installed (under its normalised name) and not planned already; never torch, numpy or
    matplotlib; a name that only starts like one of them is an ordinary package. The inputs are not changed."""
    extra = ["gymnasium[box2d]==1.4", "matplotlib-inline"]
    dependencies = ["torch==9", "gymnasium>=0.29", "scipy==1", "Pygame_CE==2.5", "SciPy>=1", "imageio", "numpy",
                    "Rich"]
    installed = {**KEPT, "pygame-ce": "2.4", "rich": "13", "matplotlib-inline": "0.1"}  # no gymnasium yet
    wanted = colab.plan(dependencies, extra, installed)
    assert wanted == ["gymnasium[box2d]==1.4", "matplotlib-inline", "scipy==1", "imageio"]
    assert extra == ["gymnasium[box2d]==1.4", "matplotlib-inline"] and wanted is not extra
    assert colab.plan([], [], KEPT) == [] and colab.plan(["torch", "numpy"], [], KEPT) == []


def test_the_constraints_follow_torch_numpy_matplotlib_whatever_the_order_installed():
    """The constraints file: ``torch==V``, ``numpy==V``, ``matplotlib==V`` in that order, one a line, nothing else."""
    installed = {"scipy": "1", "matplotlib": "3.9", "numpy": "2.1", "torch": "2.5"}
    assert colab.constraints(installed) == "torch==2.5\nnumpy==2.1\nmatplotlib==3.9\n"


def test_with_nothing_to_install_pip_installs_the_package_alone():
    """No requirements: one pip run (the package, no dependencies), not a second with nothing to install."""
    assert colab.pip_commands("py", Path("/r"), [], Path("/c")) == [
        ["py", "-m", "pip", "install", "--quiet", "--no-deps", str(Path("/r"))]]


@pytest.mark.parametrize("dependencies, installed, found", [
    (["a>=1"], {"a": "0"}, []),                                      # not a pin
    (["a==1"], {}, []),                                              # not installed
    (["a==1"], {"a": "1"}, []),                                      # the pinned version
    (["a == 1 "], {"a": "1"}, []),                                   # spaces around the pin
    (["Foo_Bar==2"], {"foo-bar": "1"}, ["foo-bar 1 (course: 2)"]),   # the normalised name
    (["b==2", "a==1", "c==3"], {"a": "0", "b": "0", "c": "3"}, ["b 0 (course: 2)", "a 0 (course: 1)"]),
    ([], {"a": "1"}, []),
])
def test_a_differing_pin_is_an_installed_version_other_than_the_courses_pin(dependencies, installed, found):
    """``differing_pins``: for each ``name==pin`` dependency installed at another version, in order, ``name version
    (course: pin)``; a dependency without ``==``, not installed, or at its pin is not listed."""
    assert colab.differing_pins(dependencies, installed) == found


def test_installed_versions_are_keyed_by_normalised_name_the_first_one_kept(monkeypatch):
    """Every distribution by its normalised name (the first found when two normalise alike); one without a name is
    skipped."""
    def dist(name, version):
        return NS(metadata={"Name": name}, version=version)
    found = [dist("Foo_Bar", "1.0"), dist("foo-bar", "2.0"), dist(None, "3"), dist("", "4"), dist("NumPy", "2.1")]
    monkeypatch.setattr(importlib.metadata, "distributions", lambda: iter(found))
    assert colab.installed_versions() == {"foo-bar": "1.0", "numpy": "2.1"}


def test_the_widget_manager_is_switched_on_only_in_colab(monkeypatch):
    """In Colab (``google.colab`` importable) the custom widget manager is switched on, once: True; elsewhere False."""
    monkeypatch.setitem(sys.modules, "google.colab", None)
    assert colab._enable_widgets() is False
    switched = []
    module = types.ModuleType("google.colab")
    module.output = NS(enable_custom_widget_manager=lambda: switched.append(True))
    monkeypatch.setitem(sys.modules, "google.colab", module)
    assert colab._enable_widgets() is True and switched == [True]


COLAB_PYPROJECT = ('[project]\nname = "pgcourse"\ndependencies = ["torch==2.0", "numpy==1.0", "matplotlib==3.1", '
                   '"scipy==1.0"]\n[project.optional-dependencies]\ncolab = ["gym==1"]\n')


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """A course clone in tmp_path and the set-up's world faked: what is installed, what pip does, the widgets."""
    root = tmp_path / "clone"
    for folder in ("notebooks", "exercises", "solutions"):
        (root / folder).mkdir(parents=True)
    (root / "pyproject.toml").write_text(COLAB_PYPROJECT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGCOURSE_ROOT", "unset")
    state = NS(root=root, installed={**KEPT, "gym": "1", "scipy": "1.0", "pgcourse": "1"}, commands=[], fail_at=None,
               pip_changes={}, widgets=False)
    monkeypatch.setattr(colab, "installed_versions", lambda: dict(state.installed))
    monkeypatch.setattr(colab, "_enable_widgets", lambda: state.widgets)

    def run(command):
        state.commands.append(command)
        state.installed.update(state.pip_changes)
        return NS(returncode=1 if len(state.commands) == state.fail_at else 0)
    state.run = run
    return state


def test_setup_prints_each_pip_run_and_the_ready_line(clone, capsys):
    """The set-up prints each pip run as ``$ pip install ...``, then ``pgcourse is ready: Colab's own torch V,
    numpy V, matplotlib V kept; working in FOLDER`` (plus the widget manager in Colab), then the pins that differ;
    it works in the clone's folder and sets PGCOURSE_ROOT to the clone."""
    import os
    clone.widgets = True
    work = colab.setup("solutions", root="clone", run=clone.run)
    root = clone.root.resolve()
    assert work == root / "solutions" and Path.cwd() == work and os.environ["PGCOURSE_ROOT"] == str(root)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"$ pip install --quiet --no-deps {root}"
    assert lines[1] == f"$ pip install --quiet --no-warn-conflicts -c {root / '.colab-constraints.txt'} gym==1"
    assert lines[2] == (f"pgcourse is ready: Colab's own torch 2.0, numpy 1.0, matplotlib 3.0 kept; working in {work}"
                        "; ipywidgets' custom widget manager on")
    assert lines[3].startswith("Versions other than the course was tested with: matplotlib 3.0 (course: 3.1). ")
    assert len(lines) == 4
    assert (root / ".colab-constraints.txt").read_text() == "torch==2.0\nnumpy==1.0\nmatplotlib==3.0\n"
    assert json.loads((root / colab.STAMP).read_text()) == {
        "dependencies": ["torch==2.0", "numpy==1.0", "matplotlib==3.1", "scipy==1.0"], "colab": ["gym==1"],
        "kept": KEPT}


def test_the_differing_pins_are_read_after_the_install(clone, capsys):
    """The versions named against the course's pins are those installed after pip ran: a pinned package pip brought
    to its pin is not named, one pip left at another version is."""
    (clone.root / "pyproject.toml").write_text(COLAB_PYPROJECT.replace('"scipy==1.0"', '"scipy==1.0", "gym==1"'))
    clone.installed.update({"gym": "0.5", "matplotlib": "3.1", "scipy": "0.9"})
    clone.pip_changes = {"gym": "1"}
    colab.setup("notebooks", root=clone.root, run=clone.run)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("Versions other than the course was tested with: scipy 0.9 (course: 1.0). A run's ")


def test_setup_without_widgets_or_differing_pins_prints_the_ready_line_alone(clone, capsys):
    """Outside Colab's widgets and with every pin met, the ready line has no widget clause and nothing follows."""
    clone.installed["matplotlib"] = "3.1"
    colab.setup("notebooks", root=clone.root, run=clone.run)
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == (f"pgcourse is ready: Colab's own torch 2.0, numpy 1.0, matplotlib 3.1 kept; working in "
                         f"{clone.root.resolve() / 'notebooks'}")


@pytest.mark.parametrize("change", ["kept version", "dependencies", "no pgcourse", "no stamp"])
def test_setup_installs_again_when_the_stamp_no_longer_matches_or_pgcourse_is_gone(clone, change):
    """A second set-up skips pip only when the stamp records the same dependencies, extra and kept versions and
    pgcourse is installed; any difference (or no stamp) installs again."""
    colab.setup("notebooks", root=clone.root, run=clone.run)
    assert len(clone.commands) == 2
    if change == "kept version":
        clone.installed["torch"] = "2.1"
    elif change == "dependencies":
        (clone.root / "pyproject.toml").write_text(COLAB_PYPROJECT.replace('"scipy==1.0"', '"scipy==1.1"'))
    elif change == "no pgcourse":
        del clone.installed["pgcourse"]
    else:
        (clone.root / colab.STAMP).unlink()
    colab.setup("notebooks", root=clone.root, run=clone.run)
    assert len(clone.commands) == 4
    if change != "no pgcourse":
        colab.setup("notebooks", root=clone.root, run=clone.run)
        assert len(clone.commands) == 4, "the same course again: nothing installed"


@pytest.mark.parametrize("fail_at", [1, 2])
def test_setup_stops_at_the_failing_pip_run_naming_it_and_writes_no_stamp(clone, fail_at):
    """A pip run that fails stops the set-up at once, naming that run; no stamp is written (the next try installs)."""
    clone.fail_at = fail_at
    with pytest.raises(colab.ColabSetupError) as error:
        colab.setup("notebooks", root=clone.root, run=clone.run)
    command = clone.commands[-1]
    assert len(clone.commands) == fail_at
    assert str(error.value) == (f"`{' '.join(command[2:])}` failed (its messages are above); Colab's torch, numpy and "
                                "matplotlib were not changed")
    assert not (clone.root / colab.STAMP).exists()


@pytest.mark.parametrize("changes, said", [
    ({"torch": "2.1"}, "torch 2.0 -> 2.1"),
    ({"numpy": "1.1", "matplotlib": "3.5"}, "numpy 1.0 -> 1.1, matplotlib 3.0 -> 3.5")])
def test_setup_refuses_an_install_that_changed_torch_numpy_or_matplotlib(clone, changes, said):
    """If pip changed torch, numpy or matplotlib anyway, the set-up stops naming each change (before -> after)."""
    clone.pip_changes = changes
    with pytest.raises(colab.ColabSetupError) as error:
        colab.setup("notebooks", root=clone.root, run=clone.run)
    assert str(error.value) == f"the install changed {said}: this should not happen; please report it (docs/colab.md)"
    assert not (clone.root / colab.STAMP).exists()


def test_setup_refuses_a_removed_package_and_reads_its_own_clone_by_default(clone, monkeypatch):
    """A kept package gone after the install is a change to None; without ``root`` the clone is the folder above the
    package holding colab.py."""
    def remove_torch(command):
        clone.commands.append(command)
        clone.installed.pop("torch", None)
        return NS(returncode=0)
    with pytest.raises(colab.ColabSetupError, match="the install changed torch 2.0 -> None: "):
        colab.setup("notebooks", root=clone.root, run=remove_torch)
    clone.installed["torch"] = "2.0"
    monkeypatch.setattr(colab, "__file__", str(clone.root / "pgcourse" / "colab.py"))
    assert colab.setup("exercises", run=clone.run) == clone.root.resolve() / "exercises"


@pytest.mark.parametrize("broken", ["pyproject is a folder", "folder is a file"])
def test_setup_refuses_a_clone_without_its_pyproject_file_or_folder(clone, broken):
    """The clone must hold pyproject.toml as a file and the notebook folder as a folder; the three folders are
    notebooks, exercises, solutions."""
    if broken == "pyproject is a folder":
        (clone.root / "pyproject.toml").unlink()
        (clone.root / "pyproject.toml").mkdir()
    else:
        (clone.root / "notebooks").rmdir()
        (clone.root / "notebooks").write_text("x")
    with pytest.raises(colab.ColabSetupError, match="is not a clone of the course"):
        colab.setup("notebooks", root=clone.root, run=clone.run)
    assert clone.commands == []
    with pytest.raises(colab.ColabSetupError) as error:
        colab.setup("Notebooks", root=clone.root, run=clone.run)
    assert str(error.value) == "folder 'Notebooks': expected one of notebooks, exercises, solutions"
    assert (colab.NEVER_INSTALLED, colab.STAMP) == (("torch", "numpy", "matplotlib"), ".colab-installed.json")
