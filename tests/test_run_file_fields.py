"""Tests that pin what a run's files hold, field by field, not only that a run can be saved (issue 45, item 5).

A mutation audit found one-line bugs in the run files that the whole-run tests let through (``History.from_dict``
reading the wrong key for ``solved_at`` was one). Each test below states a definition of ``pgcourse/rl/history.py``,
``pgcourse/rl/run.py`` or ``pgcourse/rl/algorithms/checkpoint.py`` on small objects built here: runs made by hand
(8-unit networks, histories whose every column holds its own values), trainers built but not trained, and three
tiny trainings of a fraction of a second. Every field of a History, a Run and a training state survives
``to_dict -> from_dict`` and ``save -> load`` exactly, solved or not; folders saved by an older pgcourse still load;
and each refusal (a folder that is not a run, overwriting, a missing or damaged file) says what was wrong.
``tests/test_run_io.py`` tests the round trips of trained runs and the main refusals; this file adds the rest.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import warnings
from dataclasses import FrozenInstanceError
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.rl import run as run_module
from pgcourse.rl.algorithms import checkpoint
from pgcourse.rl.algorithms.trainer import Trainer
from pgcourse.rl.config import ConfigError, make_config
from pgcourse.rl.history import EPISODE_FIELDS, EVAL_FIELDS, UPDATE_FIELDS, History, Table, moving_average
from pgcourse.rl.networks import ValueNet, make_policy
from pgcourse.rl.run import (FORMAT_NAME, FORMAT_VERSION, RUN_FILES, TRAINING_STATE_FILE, Run, RunLoadError,
                             _error_text, _read_json, _space_from_dict, _space_to_dict, as_run, save_target_problem,
                             spaces_match)

NAN = float("nan")
MYSTERIES = Path(pg.__file__).parent / "course" / "debugging" / "mysteries"  # runs saved by older pgcourses
CARTPOLE_OBS = gym.spaces.Box(np.array([-4.8, -np.inf, -0.41887903, -np.inf], dtype=np.float32),
                              np.array([4.8, np.inf, 0.41887903, np.inf], dtype=np.float32), dtype=np.float32)
PENDULUM_OBS = gym.spaces.Box(np.array([-1.0, -1.0, -8.0], dtype=np.float32),
                              np.array([1.0, 1.0, 8.0], dtype=np.float32), dtype=np.float32)
PENDULUM_ACTIONS = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
SOLVED_AT = {"env_step": 96, "wall_time": 0.30000000000000004, "episodes": 3, "mean": 195.5}
OBS_STATS = {"mean": [0.5, -0.5, 2.0], "var": [4.0, 0.25, 9.0], "count": 12.0, "epsilon": 1e-8}
REWARD_STATS = {"var": 2.5, "mean": 0.0, "count": 5.0, "epsilon": 1e-8}


# -- objects made by hand ---------------------------------------------------------------------------------------------
def filled_history(solved: bool) -> tuple[History, dict[str, dict[str, list[float]]]]:
    """A history whose every column of every table holds its own values (no two columns alike, none a round binary
    number), a few NaN, ``solved_at`` set or not; and the columns it must read back."""
    history = History()
    expected: dict[str, dict[str, list[float]]] = {}
    for t, (table, fields, rows) in enumerate((("episodes", EPISODE_FIELDS, 3), ("updates", UPDATE_FIELDS, 2),
                                               ("evals", EVAL_FIELDS, 2))):
        expected[table] = {name: [1000.0 * t + 10.0 * c + r + 0.1 for r in range(rows)] for c, name in enumerate(fields)}
    expected["episodes"]["return"] = [-1234.5678901234567, 0.0, 500.0]
    expected["updates"]["log_std_mean"] = [NAN, NAN]  # a column this algorithm does not measure
    expected["updates"]["step_fraction"][1] = NAN
    expected["evals"]["std"][0] = NAN
    for table, columns in expected.items():
        rows = len(next(iter(columns.values())))
        for r in range(rows):
            getattr(history, table).append(**{name: values[r] for name, values in columns.items()})
    history.status = "solved" if solved else "completed"
    history.solved_at = dict(SOLVED_AT) if solved else None
    return history, expected


def assert_columns(history: History, expected: dict[str, dict[str, list[float]]]) -> None:
    for table, columns in expected.items():
        got = getattr(history, table)
        assert tuple(got) == tuple(columns), table
        for name, values in columns.items():
            np.testing.assert_array_equal(got[name], np.array(values), err_msg=f"{table}[{name!r}]")


def hand_run(algo: str = "ppo", kind: str = "discrete", normalizer: dict | None = None, seed: int = 11,
             history: History | None = None, **settings) -> Run:
    """A run made by hand, not trained: 8-unit networks drawn from ``seed``, CartPole's or Pendulum's spaces."""
    env_id = "CartPole-v1" if kind == "discrete" else "Pendulum-v1"
    config = make_config(algo, env_id, kind, seed=7, hidden_sizes=(8,), device="cpu", progress=False, **settings)
    obs_space = CARTPOLE_OBS if kind == "discrete" else PENDULUM_OBS
    action_space = gym.spaces.Discrete(2) if kind == "discrete" else PENDULUM_ACTIONS
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        policy = make_policy(kind, obs_space.shape[0], 2 if kind == "discrete" else 1, (8,), config.log_std_init)
        value_net = None if algo == "reinforce" else ValueNet(obs_space.shape[0], (8,))
    return Run(config, policy, value_net, history or History(), obs_space, action_space, normalizer,
               torch.device("cpu"), "made by hand")


def state_dicts_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def deep_equal(a, b) -> bool:
    """Nested dicts, lists and tuples equal, tensors and arrays compared element by element."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.fixture
def saved(tmp_path):
    """A hand-made PPO CartPole run with a full, solved history, saved: the folder and the run."""
    history, _ = filled_history(solved=True)
    run = hand_run(history=history)
    return run.save(tmp_path / "run"), run


# =====================================================================================================================
# history.py: the tables
# =====================================================================================================================
def test_the_tables_have_the_documented_columns():
    """Episodes: return, length, env_step, wall_time; evaluations: env_step, wall_time, mean, std; updates: env_step
    and wall_time first, then every diagnostic the loops log, each once."""
    assert EPISODE_FIELDS == ("return", "length", "env_step", "wall_time")
    assert EVAL_FIELDS == ("env_step", "wall_time", "mean", "std")
    assert UPDATE_FIELDS[:2] == ("env_step", "wall_time")
    assert len(set(UPDATE_FIELDS)) == len(UPDATE_FIELDS)
    assert set(UPDATE_FIELDS) == {
        "env_step", "wall_time", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
        "explained_variance", "actor_grad_norm", "critic_grad_norm", "lr", "critic_lr", "advantage_std",
        "log_std_mean", "epochs_run", "value_rel_error", "update_kl", "explained_variance_before",
        "explained_variance_after", "line_search_steps", "step_fraction", "cg_residual", "surrogate_improvement",
        "expected_improvement"}


@pytest.mark.parametrize("rows", [None, {}], ids=["none", "empty-dict"])
def test_a_table_without_rows_is_empty(rows):
    """A table made without saved rows has its fields as columns and no row; each column reads as an empty float64
    array."""
    table = Table(EVAL_FIELDS, rows)
    assert len(table) == table.num_rows == 0 and list(table) == list(EVAL_FIELDS)
    for name in EVAL_FIELDS:
        assert table[name].dtype == np.float64 and table[name].shape == (0,)


def test_saved_rows_read_none_as_nan_and_numbers_as_floats():
    """Saved rows become float columns: None (how NaN is saved) reads NaN, an int reads as the same float."""
    table = Table(("a", "b"), {"a": [1, None, 2.5], "b": [None, None, -3]})
    np.testing.assert_array_equal(table["a"], [1.0, NAN, 2.5])
    np.testing.assert_array_equal(table["b"], [NAN, NAN, -3.0])
    assert table.to_dict() == {"a": [1.0, None, 2.5], "b": [None, None, -3.0]}
    assert all(type(v) is float for v in table.to_dict()["a"] if v is not None)


@pytest.mark.parametrize("given", [("b", "c"), ("a", "c"), ("a", "b"), ("c",), ("a",)])
def test_a_column_missing_from_saved_rows_reads_nan_in_every_row(given):
    """A column the saved rows lack (added to pgcourse after the run was saved) reads NaN in every row, as many
    rows as the saved columns have, wherever it is in the table's fields."""
    saved_rows = {name: [float(i), float(i) + 0.5] for i, name in enumerate(given)}
    table = Table(("a", "b", "c"), saved_rows)
    assert len(table) == 2
    for name in ("a", "b", "c"):
        expected = saved_rows[name] if name in given else [NAN, NAN]
        np.testing.assert_array_equal(table[name], expected, err_msg=name)


def test_a_saved_column_that_is_not_a_field_is_refused_by_name():
    """A saved column the table has no field for is an error that names it and the expected fields."""
    with pytest.raises(ValueError) as info:
        Table(("a", "b"), {"a": [1.0], "zz": [2.0]})
    assert "unknown history column 'zz'" in str(info.value) and "('a', 'b')" in str(info.value)


@pytest.mark.parametrize("rows", [{"a": [1.0], "b": [1.0, 2.0]}, {"a": [], "b": [1.0]}, {"a": [1.0, 2.0], "b": [3.0]}])
def test_saved_columns_of_different_lengths_are_refused(rows):
    """Saved columns must all have one length; otherwise the error gives each column's length."""
    with pytest.raises(ValueError) as info:
        Table(("a", "b"), rows)
    message = str(info.value)
    assert "different lengths" in message
    assert f"'a': {len(rows['a'])}" in message and f"'b': {len(rows['b'])}" in message


def test_append_adds_one_row_with_nan_for_a_missing_column():
    """``append`` adds one row: the values given, as floats, and NaN for each field not given."""
    table = Table(("a", "b", "c"))
    table.append(a=1, c=np.float32(0.5))
    table.append(b=2.25)
    table.append()
    np.testing.assert_array_equal(table["a"], [1.0, NAN, NAN])
    np.testing.assert_array_equal(table["b"], [NAN, 2.25, NAN])
    np.testing.assert_array_equal(table["c"], [0.5, NAN, NAN])
    assert len(table) == 3


def test_append_refuses_an_unknown_column_and_adds_nothing():
    """A value for a column the table does not have is refused, named (sorted), and no row is added."""
    table = Table(("a", "b"))
    table.append(a=1.0, b=2.0)
    with pytest.raises(ValueError) as info:
        table.append(a=3.0, zz=1.0, yy=2.0)
    assert "unknown history column(s) ['yy', 'zz']" in str(info.value)
    assert table.to_dict() == {"a": [1.0], "b": [2.0]}


def test_extend_adds_many_rows_like_append():
    """``extend`` adds a row per element of the columns given (all one length), NaN in the columns not given."""
    table = Table(("a", "b", "c"))
    table.append(a=0.5, b=0.25, c=0.125)
    table.extend(a=np.array([1, 2, 3]), c=[4.5, 5.5, 6.5])
    np.testing.assert_array_equal(table["a"], [0.5, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(table["b"], [0.25, NAN, NAN, NAN])
    np.testing.assert_array_equal(table["c"], [0.125, 4.5, 5.5, 6.5])
    table.extend()  # no column: no row
    table.extend(b=[])  # columns of no rows: no row
    assert len(table) == 4


@pytest.mark.parametrize("columns, message", [({"a": [1.0, 2.0], "b": [1.0]}, "columns of different lengths"),
                                              ({"a": [1.0], "zz": [1.0]}, "unknown history column(s) ['zz']")])
def test_extend_refuses_bad_columns_and_adds_nothing(columns, message):
    """Columns of different lengths, or a column the table does not have, are refused, and nothing is added."""
    table = Table(("a", "b"))
    table.append(a=1.0, b=2.0)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        table.extend(**columns)
    assert table.to_dict() == {"a": [1.0], "b": [2.0]}


def test_a_column_is_a_float64_copy_and_an_unknown_one_is_a_key_error():
    """``table[name]`` (and ``table.column(name)``) is a float64 array the caller may change without changing the
    table; a name that is no column is a KeyError naming it and the columns."""
    table = Table(("a", "b"), {"a": [1, 2], "b": [3, 4]})
    column = table["b"]
    assert column.dtype == np.float64
    column[0] = 99.0
    np.testing.assert_array_equal(table.column("b"), [3.0, 4.0])
    with pytest.raises(KeyError) as info:
        table["zz"]
    assert "'zz' is not a history column" in str(info.value) and "('a', 'b')" in str(info.value)
    assert "zz" not in table and "a" in table


def test_a_table_is_a_mapping_of_its_fields_in_order():
    """Iterating a table gives its fields in their order; its length is its number of rows."""
    table = Table(("z", "a", "m"), {"z": [1.0], "a": [2.0], "m": [3.0]})
    assert list(table) == ["z", "a", "m"] == list(table.keys())
    assert {k: v.tolist() for k, v in table.items()} == {"z": [1.0], "a": [2.0], "m": [3.0]}
    assert len(table) == table.num_rows == 1


def test_table_to_dict_writes_nan_as_none_and_repr_names_rows_and_columns():
    """``to_dict`` gives every column in field order as a list, NaN written None (strict JSON); the repr names the
    number of rows and the columns."""
    table = Table(("b", "a"))
    table.append(b=1.5, a=NAN)
    table.append(b=NAN, a=-0.25)
    assert list(table.to_dict()) == ["b", "a"]
    assert table.to_dict() == {"b": [1.5, None], "a": [None, -0.25]}
    assert repr(table) == "Table(2 rows; columns b, a)"
    assert repr(Table(("x",))) == "Table(0 rows; columns x)"


# =====================================================================================================================
# history.py: the history
# =====================================================================================================================
def test_a_new_history_is_running_unsolved_and_empty():
    """A history starts with no row in its episodes, updates and evaluations tables (each with its own fields),
    status "running" and ``solved_at`` None."""
    history = History()
    assert history.status == "running" and history.solved_at is None
    assert (history.episodes.fields, history.updates.fields, history.evals.fields) == (EPISODE_FIELDS, UPDATE_FIELDS,
                                                                                       EVAL_FIELDS)
    assert (len(history.episodes), len(history.updates), len(history.evals)) == (0, 0, 0)


@pytest.mark.parametrize("solved", [True, False], ids=["solved", "unsolved"])
def test_every_field_of_a_history_survives_to_dict_and_from_dict(solved):
    """``History.from_dict(history.to_dict())`` has every column of every table (NaN included), the status and
    ``solved_at`` (the dict of the first evaluation that reached the threshold, or None) exactly."""
    history, expected = filled_history(solved)
    again = History.from_dict(history.to_dict())
    assert_columns(again, expected)
    assert again.status == ("solved" if solved else "completed")
    assert again.solved_at == (SOLVED_AT if solved else None)
    if solved:
        assert [type(v) for v in again.solved_at.values()] == [int, float, int, float]


@pytest.mark.parametrize("solved", [True, False], ids=["solved", "unsolved"])
def test_history_to_dict_is_its_tables_status_and_solved_at(solved):
    """``to_dict`` holds, in this order, the episodes, updates and evaluations (each column a list, NaN as None),
    the status and ``solved_at``; the result is strict JSON."""
    history, expected = filled_history(solved)
    data = history.to_dict()
    assert list(data) == ["episodes", "updates", "evals", "status", "solved_at"]
    for table, columns in expected.items():
        assert data[table] == {name: [None if math.isnan(v) else v for v in values] for name, values in columns.items()}
    assert data["status"] == history.status and data["solved_at"] == (SOLVED_AT if solved else None)
    json.dumps(data, allow_nan=False)  # strict JSON


def test_from_dict_reads_solved_at_from_its_own_key_and_none_when_absent():
    """``solved_at`` comes from the saved ``solved_at`` (not from the status, nor from the last evaluation); a history
    saved before it existed reads None."""
    evals = {"env_step": [10.0, 20.0], "wall_time": [0.1, 0.2], "mean": [300.0, 480.0], "std": [0.0, 1.0]}
    data = {"episodes": {}, "updates": {}, "evals": evals, "status": "solved",
            "solved_at": {"env_step": 20, "wall_time": 0.2, "episodes": 7, "mean": 480.0}}
    assert History.from_dict(data).solved_at == {"env_step": 20, "wall_time": 0.2, "episodes": 7, "mean": 480.0}
    del data["solved_at"]
    assert History.from_dict(data).solved_at is None
    data["solved_at"] = None
    assert History.from_dict(data).solved_at is None


def test_from_dict_gives_each_table_its_own_columns():
    """The saved episodes, updates and evaluations go to the table of the same name (a column missing from one
    reads NaN for its rows), and the status is read as text."""
    data = {"episodes": {"return": [5.0], "length": [5.0]}, "updates": {"policy_loss": [0.5, 0.25]},
            "evals": {"mean": [3.0, 4.0, 5.0]}, "status": "stopped: non-finite loss"}
    history = History.from_dict(data)
    assert (len(history.episodes), len(history.updates), len(history.evals)) == (1, 2, 3)
    np.testing.assert_array_equal(history.episodes["return"], [5.0])
    np.testing.assert_array_equal(history.episodes["env_step"], [NAN])
    np.testing.assert_array_equal(history.updates["policy_loss"], [0.5, 0.25])
    np.testing.assert_array_equal(history.updates["env_step"], [NAN, NAN])
    np.testing.assert_array_equal(history.evals["mean"], [3.0, 4.0, 5.0])
    assert history.status == "stopped: non-finite loss"
    assert History.from_dict({**data, "status": 5}).status == "5"


@pytest.mark.parametrize("missing", ["episodes", "updates", "evals", "status"])
def test_from_dict_needs_every_table_and_the_status(missing):
    """A saved history without one of its tables or its status is a KeyError naming it (``pg.load`` turns it into a
    RunLoadError)."""
    data = {"episodes": {}, "updates": {}, "evals": {}, "status": "completed"}
    del data[missing]
    with pytest.raises(KeyError, match=missing):
        History.from_dict(data)


def test_the_history_views_and_repr():
    """``episode_returns`` is the episodes' return column and ``episode_env_steps`` their env_step column; the repr
    counts episodes, updates and evaluations and gives the status."""
    history, expected = filled_history(solved=True)
    np.testing.assert_array_equal(history.episode_returns, expected["episodes"]["return"])
    np.testing.assert_array_equal(history.episode_env_steps, expected["episodes"]["env_step"])
    history.evals.append(mean=1.0)
    assert repr(history) == "History(3 episodes, 2 updates, 3 evaluations, status='solved')"


@pytest.mark.parametrize("window", [0, -1])
def test_a_moving_average_window_below_one_is_refused(window):
    """The window is at least 1; the error gives the window asked for."""
    with pytest.raises(ValueError, match=f"window={window} must be >= 1"):
        moving_average([1.0, 2.0], window)


@pytest.mark.parametrize("values, window, expected", [
    ([4.0, 2.0, 9.0], 1, [4.0, 2.0, 9.0]),                 # a window of one: the values themselves
    ([1.0, 2.0, 3.0, 4.0], 2, [1.0, 1.5, 2.5, 3.5]),
    ([1.0, 2.0, 3.0, 6.0], 4, [1.0, 1.5, 2.0, 3.0]),        # the window is the whole list: running means
    ([1.0, 2.0, 3.0, 6.0], 9, [1.0, 1.5, 2.0, 3.0]),        # longer than the list: the same
    ([7.0], 3, [7.0]),
    ([], 3, []),
])
def test_the_moving_average_at_its_edges(values, window, expected):
    """Entry i is the mean of the last ``window`` values up to i (fewer at the start), as many entries as values."""
    got = moving_average(values, window)
    assert got.shape == (len(values),)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


# =====================================================================================================================
# run.py: spaces
# =====================================================================================================================
@pytest.mark.parametrize("space, expected", [
    (gym.spaces.Discrete(2), {"type": "Discrete", "n": 2, "start": 0}),
    (gym.spaces.Discrete(3, start=-1), {"type": "Discrete", "n": 3, "start": -1}),
    (PENDULUM_ACTIONS, {"type": "Box", "shape": [1], "low": [-2.0], "high": [2.0], "dtype": "float32"}),
    (gym.spaces.Box(np.array([0.0, -1.5]), np.array([1.0, 2.5]), dtype=np.float64),
     {"type": "Box", "shape": [2], "low": [0.0, -1.5], "high": [1.0, 2.5], "dtype": "float64"}),
    (CARTPOLE_OBS, {"type": "Box", "shape": [4], "low": [-4.800000190734863, -math.inf, -0.41887903213500977, -math.inf],
                    "high": [4.800000190734863, math.inf, 0.41887903213500977, math.inf], "dtype": "float32"}),
], ids=["discrete", "discrete-start", "box", "box-float64", "box-inf"])
def test_a_space_is_saved_as_its_kind_size_bounds_and_dtype(space, expected):
    """A Discrete space is saved as its n and start; a Box as its shape, its bounds (per dimension, infinite ones
    too) and its dtype; reading that back gives the same space."""
    assert _space_to_dict(space) == expected
    again = _space_from_dict(json.loads(json.dumps(expected)))
    assert again == space and again.dtype == space.dtype
    assert spaces_match(again, space)


def test_a_discrete_space_saved_without_its_start_starts_at_zero():
    """A Discrete space saved by an older pgcourse (no ``start``) starts at 0."""
    assert _space_from_dict({"type": "Discrete", "n": 3}) == gym.spaces.Discrete(3, start=0)


def test_a_space_that_cannot_be_saved_or_read_is_an_error_naming_it():
    """Only Discrete and Box spaces are saved: another space, or another saved type, is a ValueError that names it."""
    with pytest.raises(ValueError, match="cannot save space MultiDiscrete"):
        _space_to_dict(gym.spaces.MultiDiscrete([2, 3]))
    with pytest.raises(ValueError, match="unknown space type 'Tuple'"):
        _space_from_dict({"type": "Tuple"})


@pytest.mark.parametrize("a, b, same", [
    (gym.spaces.Discrete(2), gym.spaces.Discrete(2), True),
    (gym.spaces.Discrete(2), gym.spaces.Discrete(3), False),
    (gym.spaces.Discrete(2), gym.spaces.Box(0.0, 1.0, (2,), np.float32), False),
    (PENDULUM_ACTIONS, gym.spaces.Box(-2.0, 2.0, (1,), np.float32), True),
    (PENDULUM_ACTIONS, gym.spaces.Box(-2.0, 2.5, (1,), np.float32), False),
    (PENDULUM_ACTIONS, gym.spaces.Box(-1.0, 2.0, (1,), np.float32), False),
    (PENDULUM_ACTIONS, gym.spaces.Box(-2.0, 2.0, (1,), np.float64), False),
    (PENDULUM_ACTIONS, gym.spaces.Box(-2.0, 2.0, (2,), np.float32), False),
    (gym.spaces.MultiDiscrete([2]), gym.spaces.MultiDiscrete([2]), False),  # a kind no run is trained on
    (gym.spaces.Discrete(2), gym.spaces.MultiDiscrete([2]), False),
])
def test_spaces_match_when_kind_size_bounds_and_dtype_agree(a, b, same):
    """Two spaces match when they are the same kind with the same size (n and start, or shape), bounds and dtype;
    a kind a run cannot be trained on matches nothing."""
    assert spaces_match(a, b) is same and spaces_match(b, a) is same


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
@pytest.mark.parametrize("has_float64", [True, False], ids=["cpu", "no-float64"])
def test_box_bounds_go_to_the_device_in_their_own_dtype_unless_it_has_no_float64(monkeypatch, dtype, has_float64):
    """A Box's bounds become a tensor with the same numbers in the space's dtype; float64 bounds become float32 only
    on a device without float64 (MPS)."""
    from pgcourse.rl import diagnostics

    monkeypatch.setattr(diagnostics, "supports_float64", lambda device: has_float64)
    bounds = np.array([-2, 0, 3], dtype=dtype)
    tensor = run_module.bounds_on_device(bounds, torch.device("cpu"))
    expected = torch.float32 if dtype == np.float64 and not has_float64 else torch.from_numpy(bounds).dtype
    assert tensor.dtype == expected and tensor.tolist() == [-2, 0, 3]


# =====================================================================================================================
# run.py: a run in memory
# =====================================================================================================================
def test_a_run_made_in_memory_has_its_defaults():
    """A new Run lives where its policy's parameters are unless told a device; it has no device reason, no
    normaliser statistics, no training state and no outputs unless given."""
    policy = make_policy("discrete", 4, 2, (8,))
    config = make_config("reinforce", "CartPole-v1", "discrete", hidden_sizes=(8,))
    run = Run(config, policy, None, History(), CARTPOLE_OBS, gym.spaces.Discrete(2))
    assert run.device == torch.device("cpu") and run.device_reason is None
    assert run.normalizer_state == {} and run.obs_normalizer is None
    assert run.training_state is None and run.saved_training_state is None and run.resume_state() is None
    assert run.outputs == {} and run.action_kind == "discrete"
    told = Run(config, policy, None, History(), CARTPOLE_OBS, gym.spaces.Discrete(2), None, torch.device("meta"), "why")
    assert told.device == torch.device("meta") and told.device_reason == "why"
    assert hand_run(kind="continuous").action_kind == "continuous"


def test_the_normaliser_state_sets_the_observation_statistics_only_when_it_has_them():
    """With an ``obs`` entry the run normalises observations with exactly its mean, variance, count and epsilon;
    without one (reward statistics only, or none) it does not."""
    run = hand_run(kind="continuous", normalizer={"obs": OBS_STATS, "reward": REWARD_STATS})
    stats = run.obs_normalizer
    assert (stats.mean.tolist(), stats.var.tolist(), stats.count, stats.epsilon) == (
        OBS_STATS["mean"], OBS_STATS["var"], 12.0, 1e-8)
    run.set_normalizer_state({"reward": REWARD_STATS})
    assert run.obs_normalizer is None and run.normalizer_state == {"reward": REWARD_STATS}


def test_a_runs_repr_names_algorithm_env_seed_and_history():
    """A run's repr names its algorithm, env, seed and history."""
    run = hand_run("reinforce")
    assert repr(run) == ("Run(reinforce on CartPole-v1, seed=7, History(0 episodes, 0 updates, 0 evaluations, "
                         "status='running'))")


def policy_means(run: Run, observations: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return run.policy(torch.as_tensor(observations, dtype=torch.float32)).numpy().astype(np.float64)


OBSERVATIONS = np.array([[0.9, -0.3, 5.0], [-1.0, 0.4, -7.5], [0.1, 0.1, 0.0], [0.6, -0.8, 2.0]], dtype=np.float32)


@pytest.mark.parametrize("box_action", ["clip", "tanh"])
def test_act_maps_the_greedy_action_into_the_box_as_training_does(box_action):
    """A Box action is the Gaussian mean sent into ``[low, high]`` as the config's ``box_action`` says: clipped, or
    squashed to ``low + (tanh(u) + 1) (high - low) / 2``; float32, one row per observation."""
    run = hand_run(kind="continuous", box_action=box_action)
    last = [m for m in run.policy.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(400.0)  # means past the bounds [-2, 2] for some observations
    means = policy_means(run, OBSERVATIONS)
    assert (np.abs(means) > 2.0).any() and (np.abs(means) < 2.0).any()
    expected = np.clip(means, -2.0, 2.0) if box_action == "clip" else -2.0 + (np.tanh(means) + 1.0) * 4.0 / 2.0
    actions = run.act(OBSERVATIONS, deterministic=True)
    assert actions.dtype == np.float32 and actions.shape == (4, 1)
    np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-6)


def test_act_normalises_raw_observations_with_the_saved_statistics():
    """With observation statistics, the policy sees ``(obs - mean) / sqrt(var + epsilon)``, not the raw observation;
    a tensor that requires grad is accepted as the same numbers."""
    run = hand_run(kind="continuous", normalizer={"obs": OBS_STATS})
    normalised = (OBSERVATIONS - np.array(OBS_STATS["mean"])) / np.sqrt(np.array(OBS_STATS["var"]) + 1e-8)
    expected = np.clip(policy_means(run, normalised.astype(np.float32)), -2.0, 2.0)
    assert not np.allclose(expected, np.clip(policy_means(run, OBSERVATIONS), -2.0, 2.0), atol=1e-3)
    np.testing.assert_allclose(run.act(OBSERVATIONS, deterministic=True), expected, rtol=1e-5, atol=1e-6)
    as_tensor = torch.tensor(OBSERVATIONS, requires_grad=True)
    np.testing.assert_allclose(run.act(as_tensor, deterministic=True), expected, rtol=1e-5, atol=1e-6)


def test_act_refuses_booleans_and_gives_the_batch_hint_only_for_one_observation():
    """A bool array is not numeric observations (a TypeError naming the dtype); a wrongly shaped array suggests
    ``obs[None]`` only when it is exactly one observation."""
    run = hand_run()
    with pytest.raises(TypeError, match="numeric array, got dtype bool"):
        run.act(np.zeros((2, 4), dtype=bool))
    with pytest.raises(ValueError, match=r"obs\[None\]"):
        run.act(np.zeros(4))
    for shape in [(3,), (5,), (4, 1), (1, 1, 4)]:
        with pytest.raises(ValueError) as info:
            run.act(np.zeros(shape))
        assert "obs[None]" not in str(info.value) and f"got {shape}" in str(info.value), shape
    actions = run.act(np.zeros((3, 4)), deterministic=True)
    assert actions.dtype == np.int64 and actions.shape == (3,)


# =====================================================================================================================
# run.py: save -> load, every field
# =====================================================================================================================
RUN_KINDS = [("ppo", "discrete", None), ("reinforce", "discrete", None),
             ("reinforce_baseline", "discrete", None), ("a2c", "continuous", {"obs": OBS_STATS, "reward": REWARD_STATS}),
             ("ppo", "continuous", {"reward": REWARD_STATS})]


@pytest.mark.parametrize("solved", [True, False], ids=["solved", "unsolved"])
@pytest.mark.parametrize("algo, kind, normalizer", RUN_KINDS, ids=[f"{a}-{k}" for a, k, _ in RUN_KINDS])
def test_every_field_of_a_run_survives_save_and_load(algo, kind, normalizer, solved, tmp_path):
    """``pg.load(run.save(dir))`` has the run's config, policy and critic weights (no critic for plain REINFORCE),
    every history column, its status and ``solved_at``, the normaliser statistics, both spaces (dtype and infinite
    bounds included), its outputs, and the device it was loaded onto with why and where it trained."""
    history, expected = filled_history(solved)
    run = hand_run(algo, kind, normalizer, history=history)
    run.outputs = {"log_dir": str(tmp_path / "logs"), "checkpoint_every": 3, "checkpoint_dir": str(tmp_path / "ck")}
    loaded = pg.load(run.save(tmp_path / "run"))
    assert loaded.config == run.config and loaded.config.to_dict() == run.config.to_dict()
    assert type(loaded.config) is type(run.config)
    assert state_dicts_equal(loaded.policy, run.policy)
    if algo == "reinforce":
        assert loaded.value_net is None
    else:
        assert state_dicts_equal(loaded.value_net, run.value_net)
    assert_columns(loaded.history, expected)
    assert loaded.history.status == history.status and loaded.history.solved_at == history.solved_at
    assert loaded.normalizer_state == (normalizer or {})
    if normalizer and "obs" in normalizer:
        stats = loaded.obs_normalizer
        assert (stats.mean.tolist(), stats.var.tolist(), stats.count, stats.epsilon) == (
            OBS_STATS["mean"], OBS_STATS["var"], 12.0, 1e-8)
    else:
        assert loaded.obs_normalizer is None
    for name in ("observation_space", "action_space"):
        assert getattr(loaded, name) == getattr(run, name) and getattr(loaded, name).dtype == getattr(run, name).dtype
    assert loaded.outputs == run.outputs and loaded.outputs is not run.outputs
    assert loaded.device == torch.device("cpu") and next(loaded.policy.parameters()).device == torch.device("cpu")
    assert loaded.device_reason == "loaded onto it (asked for: device='cpu'); trained on cpu"
    assert loaded.training_state is None and loaded.saved_training_state is None and loaded.resume_state() is None


def test_meta_json_holds_the_format_the_spaces_the_versions_the_device_and_the_outputs(tmp_path):
    """meta.json: format "pgcourse-run", version 1, both spaces, the package versions, the device (as text) and why
    it was chosen, and the outputs; nothing else."""
    import platform

    run = hand_run(kind="continuous")
    run.outputs = {"log_dir": "/somewhere/logs"}
    meta = json.loads((run.save(tmp_path / "run") / "meta.json").read_text())
    assert (FORMAT_NAME, FORMAT_VERSION) == ("pgcourse-run", 1)
    assert meta == {"format": "pgcourse-run", "version": 1,
                    "observation_space": {"type": "Box", "shape": [3], "low": [-1.0, -1.0, -8.0],
                                          "high": [1.0, 1.0, 8.0], "dtype": "float32"},
                    "action_space": {"type": "Box", "shape": [1], "low": [-2.0], "high": [2.0], "dtype": "float32"},
                    "versions": meta["versions"], "device": "cpu", "device_reason": "made by hand",
                    "outputs": {"log_dir": "/somewhere/logs"}}
    assert meta["versions"]["pgcourse"] == pg.__version__ and meta["versions"]["python"] == platform.python_version()


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_each_file_of_a_saved_run_holds_its_part(algo, tmp_path):
    """config.json is the config's ``to_dict``; weights.pt holds the policy's and the critic's state dicts (None for
    plain REINFORCE) as plain tensors; normalizer.json the statistics; history.json the history's ``to_dict``, as
    strict JSON. A run without a training state writes no training_state.pt."""
    history, _ = filled_history(solved=True)
    run = hand_run(algo, normalizer={"reward": REWARD_STATS}, history=history)
    folder = run.save(tmp_path / "run")
    assert sorted(p.name for p in folder.iterdir()) == sorted(RUN_FILES)
    assert RUN_FILES == ("meta.json", "config.json", "weights.pt", "normalizer.json", "history.json")
    assert json.loads((folder / "config.json").read_text()) == json.loads(json.dumps(run.config.to_dict()))
    weights = torch.load(folder / "weights.pt", weights_only=True)
    assert list(weights) == ["policy", "value_net"]
    assert deep_equal(dict(weights["policy"]), dict(run.policy.state_dict()))
    if algo == "reinforce":
        assert weights["value_net"] is None
    else:
        assert deep_equal(dict(weights["value_net"]), dict(run.value_net.state_dict()))
    assert json.loads((folder / "normalizer.json").read_text()) == {"reward": REWARD_STATS}

    def no_constants(name):
        raise AssertionError(f"history.json holds {name}: not strict JSON")
    saved_history = json.loads((folder / "history.json").read_text(), parse_constant=no_constants)
    assert saved_history == json.loads(json.dumps(history.to_dict()))


def test_a_training_state_is_saved_only_when_the_run_has_one(tmp_path):
    """A run with a training state saves it as training_state.pt; the loaded run knows the file, reads it only when
    asked (``resume_state``), and reads it once."""
    run = hand_run()
    run.training_state = {"envs": b"pickled envs", "env_step": 640, "version": 1}
    folder = run.save(tmp_path / "run")
    assert sorted(p.name for p in folder.iterdir()) == sorted([*RUN_FILES, TRAINING_STATE_FILE])
    assert TRAINING_STATE_FILE == "training_state.pt"
    loaded = pg.load(folder)
    assert loaded.training_state is None and loaded.saved_training_state == (folder / TRAINING_STATE_FILE).resolve()
    assert loaded.resume_state() == {"envs": b"pickled envs", "env_step": 640, "version": 1}
    (folder / TRAINING_STATE_FILE).unlink()
    assert loaded.resume_state()["env_step"] == 640  # kept from the first read


def test_a_loaded_run_saved_again_takes_its_training_state_along(tmp_path, monkeypatch):
    """Saving a loaded run that can be resumed copies its training state into the new folder; a run loaded through
    a relative path records the state's file as an absolute path."""
    run = hand_run()
    run.training_state = {"envs": b"e", "env_step": 3}
    run.save(tmp_path / "first")
    monkeypatch.chdir(tmp_path)
    loaded = pg.load("first")
    assert loaded.saved_training_state == tmp_path.resolve() / "first" / TRAINING_STATE_FILE
    again = loaded.save(tmp_path / "second")
    assert torch.load(again / TRAINING_STATE_FILE, weights_only=False) == {"envs": b"e", "env_step": 3}


@pytest.mark.parametrize("content, says", [
    (b"this is not a torch file" * 4, "is corrupt or not a pgcourse training state: "),
    (b"", "is corrupt or not a pgcourse training state: "),
    ([1, 2, 3], "is not a pgcourse training state"),
    ({"env_step": 3}, "is not a pgcourse training state"),
], ids=["garbage", "empty", "a-list", "no-envs"])
def test_a_damaged_training_state_is_refused_when_asked_for(saved, content, says):
    """A training_state.pt that torch cannot read, or that is not a dict holding the environments, is a
    RunLoadError naming the file (with the reason after the colon), and the run keeps no training state."""
    folder, _ = saved
    if isinstance(content, bytes):
        (folder / TRAINING_STATE_FILE).write_bytes(content)
    else:
        torch.save(content, folder / TRAINING_STATE_FILE)
    loaded = pg.load(folder)  # loading does not read it
    with pytest.raises(RunLoadError) as info:
        loaded.resume_state()
    message = str(info.value)
    assert message.startswith(f"{(folder / TRAINING_STATE_FILE).resolve()} {says}"), message
    if says.endswith(": "):
        assert message[message.index(says) + len(says):].strip(), message  # a reason, even for an empty file
    assert loaded.training_state is None


def test_as_run_loads_a_folder_and_passes_a_run_through(saved):
    """``as_run`` returns a Run itself, and loads the run saved in a folder given as text or as a path."""
    folder, run = saved
    assert as_run(run) is run
    for given in (str(folder), folder):
        loaded = as_run(given)
        assert isinstance(loaded, Run) and loaded.history.solved_at == SOLVED_AT


# =====================================================================================================================
# run.py: where a run may be saved
# =====================================================================================================================
def test_saving_into_an_empty_folder_fills_that_folder(tmp_path, monkeypatch):
    """An existing empty folder is filled in place (the folder itself is kept, as for '--out .'); the path returned
    is absolute, also for a relative path given."""
    target = tmp_path / "empty"
    target.mkdir()
    inode = target.stat().st_ino
    monkeypatch.chdir(tmp_path)
    path = hand_run().save("empty")
    assert path == target.resolve() and path.is_absolute()
    assert target.stat().st_ino == inode
    assert sorted(p.name for p in target.iterdir()) == sorted(RUN_FILES)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_overwrite_replaces_a_saved_run_as_a_whole(tmp_path):
    """With overwrite, a saved run is replaced as a whole: the new run's files only (no training state left from the
    old run when the new one has none), the same path returned, and nothing left beside it."""
    old = hand_run()
    old.training_state = {"envs": b"e"}
    folder = old.save(tmp_path / "run")
    assert hand_run("reinforce").save(folder, overwrite=True) == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(RUN_FILES)
    assert pg.load(folder).config.algo == "reinforce"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_saving_expands_the_home_folder(tmp_path, monkeypatch):
    """A path starting with ``~`` is saved under the home folder, and a refusal names the expanded path."""
    monkeypatch.setenv("HOME", str(tmp_path))
    path = hand_run().save("~/runs/a")
    assert path == (tmp_path / "runs" / "a").resolve() and (path / "meta.json").is_file()
    (tmp_path / "file").write_text("x")
    assert save_target_problem("~/file", overwrite=True) == (f"{tmp_path / 'file'} exists and is not a folder; "
                                                             "choose another path")


def make_folder(root: Path, *names: str, meta: str | None = None) -> Path:
    folder = root / "target"
    folder.mkdir()
    for name in names:
        (folder / name).write_text("x")
    if meta is not None:
        (folder / "meta.json").write_text(meta)
    return folder


RUN_META = json.dumps({"format": "pgcourse-run", "version": 1})


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_missing_path_or_an_empty_folder_can_be_saved_to(tmp_path, overwrite):
    """Nothing stands in the way of a path that does not exist, or of an empty folder, with or without overwrite."""
    assert save_target_problem(tmp_path / "new", overwrite) is None
    assert save_target_problem(make_folder(tmp_path), overwrite) is None


@pytest.mark.parametrize("meta", [None, "not json {", "[1, 2]", '{"format": "other"}', '"pgcourse-run"', ""],
                         ids=["no-meta", "bad-json", "a-list", "other-format", "a-string", "empty"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_folder_that_is_not_a_run_is_never_saved_over(tmp_path, meta, overwrite):
    """A non-empty folder whose meta.json is absent, unreadable or not a pgcourse run's is the user's own: refused
    with or without overwrite, naming what it holds, and never suggesting the flag would help."""
    folder = make_folder(tmp_path, "notes.txt", meta=meta)
    shown = "meta.json, notes.txt" if meta is not None else "notes.txt"
    assert save_target_problem(folder, overwrite, "--overwrite") == (
        f"{folder} is not a saved pgcourse run (it holds {shown}); a run is saved only into a new or empty folder or "
        "over a saved run (--overwrite): choose another path")


def test_a_meta_json_that_cannot_be_read_is_not_a_run(tmp_path):
    """A meta.json that is a folder (unreadable) does not make a run."""
    folder = make_folder(tmp_path)
    (folder / "meta.json").mkdir()
    assert "is not a saved pgcourse run (it holds meta.json)" in save_target_problem(folder, True)


@pytest.mark.parametrize("count, shown", [
    (1, "a0"), (5, "a0, a1, a2, a3, a4"), (6, "a0, a1, a2, a3, a4, …"), (9, "a0, a1, a2, a3, a4, …")])
def test_a_refusal_lists_the_first_five_entries_in_order(tmp_path, count, shown):
    """The refusal names a folder's entries sorted, the first five, with an ellipsis only when there are more."""
    folder = make_folder(tmp_path, *[f"a{i}" for i in reversed(range(count))])
    assert f"(it holds {shown});" in save_target_problem(folder, False)


def test_a_saved_run_is_replaced_only_with_overwrite(tmp_path):
    """A folder holding a saved run (its meta.json says so) is refused without overwrite, with the flag to pass (the
    caller's own spelling); with overwrite it may be replaced, a training state included."""
    folder = make_folder(tmp_path, *RUN_FILES[1:], TRAINING_STATE_FILE, meta=RUN_META)
    assert save_target_problem(folder, False) == (f"{folder} already holds a saved run; pass overwrite=True to "
                                                  "replace it, or choose another path")
    assert save_target_problem(folder, False, "--overwrite") == (f"{folder} already holds a saved run; pass "
                                                                 "--overwrite to replace it, or choose another path")
    assert save_target_problem(folder, True) is None
    only_meta = tmp_path / "only-meta"
    only_meta.mkdir()
    (only_meta / "meta.json").write_text(RUN_META)
    assert save_target_problem(only_meta, True) is None


@pytest.mark.parametrize("others, shown", [(("notes.txt",), "notes.txt"),
                                           (("f", "e", "d", "c", "b", "a"), "a, b, c, d, e")])
def test_overwrite_never_deletes_a_file_beside_a_saved_run(tmp_path, others, shown):
    """Even with overwrite, a saved run with other files beside it is refused, naming the first five of them; without
    overwrite the refusal is the plain 'already holds a saved run' one."""
    folder = make_folder(tmp_path, *RUN_FILES[1:], *others, meta=RUN_META)
    assert save_target_problem(folder, True, "--overwrite") == (
        f"{folder} holds a saved run and other files ({shown}); --overwrite would delete them: move them away or "
        "choose another path")
    assert "already holds a saved run" in save_target_problem(folder, False)


def test_a_file_is_never_saved_over(tmp_path):
    """A path that is a file is refused, with or without overwrite."""
    (tmp_path / "file").write_text("x")
    for overwrite in (False, True):
        assert save_target_problem(tmp_path / "file", overwrite) == (f"{tmp_path / 'file'} exists and is not a "
                                                                     "folder; choose another path")


def test_save_raises_the_problem_as_a_file_exists_error_and_writes_nothing(saved, tmp_path):
    """``run.save`` refuses with FileExistsError carrying the problem in words, and leaves the folder as it was."""
    folder, run = saved
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(FileExistsError) as info:
        hand_run("reinforce").save(folder)
    assert str(info.value) == f"{folder} already holds a saved run; pass overwrite=True to replace it, or choose another path"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


# =====================================================================================================================
# run.py: load's refusals
# =====================================================================================================================
@pytest.mark.parametrize("error, text", [
    (KeyError("policy"), "missing key 'policy'"), (KeyError(), "KeyError"), (ValueError("  bad value \n"), "bad value"),
    (ValueError(""), "ValueError"), (ValueError("   "), "ValueError"), (EOFError(), "EOFError"),
    (RuntimeError("size mismatch"), "size mismatch")])
def test_an_errors_text_is_its_message_or_its_type(error, text):
    """An error is described by its message (stripped), a missing key as 'missing key ...', and an error without a
    message by its type's name."""
    assert _error_text(error) == text


def test_an_empty_json_file_is_cut_short_and_a_one_byte_one_is_read(tmp_path):
    """A file of zero bytes is 'empty (the save was cut short?)'; one byte is read as JSON (and is corrupt if it is
    not JSON)."""
    (tmp_path / "a.json").write_text("")
    with pytest.raises(RunLoadError, match=r"a\.json is empty \(the save was cut short\?\); save the run again"):
        _read_json(tmp_path, "a.json")
    (tmp_path / "a.json").write_text("7")
    assert _read_json(tmp_path, "a.json") == 7
    (tmp_path / "a.json").write_text(" ")
    with pytest.raises(RunLoadError, match=r"a\.json is corrupt \(not valid JSON: Expecting value"):
        _read_json(tmp_path, "a.json")


@pytest.mark.parametrize("what", ["missing", "a-file"])
def test_load_of_a_path_that_is_no_folder_says_no_saved_run(tmp_path, what):
    """A path that does not exist, or is a file, is a FileNotFoundError naming it and what a run folder is."""
    path = tmp_path / "x"
    if what == "a-file":
        path.write_text("x")
    with pytest.raises(FileNotFoundError) as info:
        pg.load(path)
    assert str(info.value).startswith(f"no saved run at {path} (expected the folder of a saved run")


@pytest.mark.parametrize("removed", [("weights.pt",), ("history.json", "config.json"), RUN_FILES])
def test_load_names_every_missing_file_in_the_order_of_a_run(saved, removed):
    """A folder lacking run files is 'not a complete pgcourse run', naming all of them in the order of RUN_FILES (a
    folder without training_state.pt is complete)."""
    folder, _ = saved
    for name in removed:
        (folder / name).unlink()
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value) == f"{folder} is not a complete pgcourse run: missing {[n for n in RUN_FILES if n in removed]}"


@pytest.mark.parametrize("meta", [[1, 2], {"version": 1}, {"format": "pgcourse-runs", "version": 1}, "pgcourse-run"],
                         ids=["a-list", "no-format", "other-format", "a-string"])
def test_load_refuses_a_meta_json_that_is_not_a_runs(saved, meta):
    """meta.json must be a mapping whose format is "pgcourse-run"."""
    folder, _ = saved
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value) == f"{folder / 'meta.json'} does not describe a pgcourse run"


@pytest.mark.parametrize("version", [0, 2, None, "1", 1.5])
def test_load_names_the_format_version_it_cannot_read(saved, version):
    """A run saved in another format version (or none) is refused, naming that version and the one read."""
    folder, _ = saved
    edit_json(folder / "meta.json", lambda meta: meta.update(version=version))
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value) == f"{folder} was saved in format version {version}; this pgcourse reads version 1"


def test_load_names_the_version_as_none_when_meta_has_none(saved):
    """A meta.json without a version is a run of an unknown format version, named None."""
    folder, _ = saved
    edit_json(folder / "meta.json", lambda meta: meta.pop("version"))
    with pytest.raises(RunLoadError, match="saved in format version None; this pgcourse reads version 1"):
        pg.load(folder)


@pytest.mark.parametrize("change, reason", [
    (lambda c: c.update(algo="dqn"), "saved config has unknown algo 'dqn'"),
    (lambda c: c.update(colour="red"), "saved config has unknown field(s) ['colour'] for algo 'ppo'"),
    (lambda c: c.pop("algo"), "saved config is not a mapping with an 'algo' key"),
    (lambda c: c.update(gamma=1.5), "gamma=1.5 is invalid"),
], ids=["algo", "unknown-field", "no-algo", "bad-value"])
def test_load_refuses_an_invalid_config_saying_why(saved, change, reason):
    """A config.json that is not a valid config is a RunLoadError naming the file and the config's own reason."""
    folder, _ = saved
    edit_json(folder / "config.json", change)
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value).startswith(f"{folder / 'config.json'} is not a valid config: {reason}"), str(info.value)


@pytest.mark.parametrize("error", [TypeError("got an unexpected keyword"), ConfigError("seed=-1 is invalid")])
def test_load_turns_a_configs_type_or_config_error_into_a_load_error(saved, monkeypatch, error):
    """Both ways a config can fail to rebuild (a ConfigError, or a TypeError from the config class) are load errors."""
    folder, _ = saved

    def failing(data):
        raise error
    monkeypatch.setattr(run_module, "config_from_dict", failing)
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value) == f"{folder / 'config.json'} is not a valid config: {error}"


@pytest.mark.parametrize("change, reason", [
    (lambda m: m.pop("observation_space"), "missing key 'observation_space'"),
    (lambda m: m.pop("action_space"), "missing key 'action_space'"),
    (lambda m: m.update(action_space={"type": "MultiBinary"}), "unknown space type 'MultiBinary'"),
    (lambda m: m.update(action_space=None), "'NoneType' object is not subscriptable"),
    (lambda m: m.update(action_space={"type": "Box", "shape": [2, 2], "low": [[0, 0], [0, 0]],
                                      "high": [[1, 1], [1, 1]], "dtype": "float32"}), "unsupported action space"),
], ids=["no-obs-space", "no-action-space", "unknown-type", "none", "2d-box"])
def test_load_refuses_invalid_spaces_saying_why(saved, change, reason):
    """meta.json's spaces must be readable and the action space Discrete or a 1-D Box; otherwise a RunLoadError
    names meta.json and the reason."""
    folder, _ = saved
    edit_json(folder / "meta.json", change)
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value).startswith(f"{folder / 'meta.json'} has invalid spaces: {reason}"), str(info.value)


def test_load_refuses_weights_without_a_policy(saved):
    """weights.pt must be a mapping with a 'policy' state dict."""
    folder, _ = saved
    torch.save({"value_net": None}, folder / "weights.pt")
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value) == f"{folder / 'weights.pt'} does not hold a 'policy' state dict"


@pytest.mark.parametrize("algo", ["ppo", "a2c", "reinforce_baseline"])
def test_load_refuses_a_run_with_a_critic_but_no_critic_weights(algo, tmp_path):
    """Every algorithm but plain REINFORCE has a critic, so its weights must hold one; the error names the algo."""
    folder = hand_run(algo).save(tmp_path / "run")
    weights = torch.load(folder / "weights.pt", weights_only=True)
    weights["value_net"] = None
    torch.save(weights, folder / "weights.pt")
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value) == f"{folder / 'weights.pt'} has no critic weights but algo={algo!r} needs one"


def test_plain_reinforce_loads_without_a_critic_even_if_weights_hold_one(tmp_path):
    """A plain REINFORCE run has no critic: it loads with none, whatever weights.pt holds beside the policy."""
    folder = hand_run("reinforce").save(tmp_path / "run")
    weights = torch.load(folder / "weights.pt", weights_only=True)
    weights["value_net"] = ValueNet(4, (8,)).state_dict()
    torch.save(weights, folder / "weights.pt")
    assert pg.load(folder).value_net is None


@pytest.mark.parametrize("kind, change, sizes", [
    ("discrete", lambda m: m["action_space"].update(n=3), "obs_dim=4, action_dim=3"),
    ("discrete", lambda m: m["observation_space"].update(shape=[5], low=[0.0] * 5, high=[1.0] * 5), "obs_dim=5, action_dim=2"),
    ("continuous", lambda m: m["action_space"].update(shape=[2], low=[-2.0] * 2, high=[2.0] * 2), "obs_dim=3, action_dim=2"),
], ids=["discrete-actions", "observations", "box-actions"])
def test_load_refuses_weights_that_do_not_fit_the_spaces_naming_the_sizes(kind, change, sizes, tmp_path):
    """Weights whose shapes do not fit the saved spaces are refused, naming hidden_sizes, the observation
    dimension and the action dimension (n for Discrete, the Box's length) the config and spaces call for."""
    folder = hand_run(kind=kind).save(tmp_path / "run")
    edit_json(folder / "meta.json", change)
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value).startswith(f"{folder / 'weights.pt'} does not match config.json (hidden_sizes=(8,), "
                                      f"{sizes}): "), str(info.value)


@pytest.mark.parametrize("reward", [False, True], ids=["obs-only", "with-reward"])
@pytest.mark.parametrize("dims", [3, 5, 0])
def test_load_refuses_observation_statistics_of_another_dimension(saved, dims, reward):
    """Observation statistics must have one mean per observation dimension, whatever else the normaliser holds: the
    error gives both numbers."""
    folder, _ = saved
    stats = {"obs": {"mean": [0.0] * dims, "var": [1.0] * dims, "count": 1.0, "epsilon": 1e-8}}
    (folder / "normalizer.json").write_text(json.dumps({**stats, "reward": REWARD_STATS} if reward else stats))
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value) == (f"{folder / 'normalizer.json'} has statistics for {dims} observation dimensions, "
                               "expected 4")


def test_load_reads_observation_statistics_of_the_right_dimension(saved):
    """Observation statistics with one mean per observation dimension are read as saved (epsilon too)."""
    folder, _ = saved
    stats = {"mean": [1.0, 2.0, 3.0, 4.0], "var": [1.0, 4.0, 9.0, 16.0], "count": 3.0, "epsilon": 0.5}
    (folder / "normalizer.json").write_text(json.dumps({"obs": stats}))
    loaded = pg.load(folder)
    assert loaded.obs_normalizer.mean.tolist() == stats["mean"] and loaded.obs_normalizer.epsilon == 0.5


@pytest.mark.parametrize("history, reason", [
    ({"updates": {}, "evals": {}, "status": "completed"}, "missing key 'episodes'"),
    ({"episodes": {}, "updates": {}, "evals": {}}, "missing key 'status'"),
    ({"episodes": {"score": [1.0]}, "updates": {}, "evals": {}, "status": "x"}, "unknown history column 'score'"),
    ({"episodes": {"return": [1.0], "length": []}, "updates": {}, "evals": {}, "status": "x"}, "history columns have"),
    ({"episodes": {"return": ["a"]}, "updates": {}, "evals": {}, "status": "x"}, "could not convert string to float"),
    ({"episodes": {"return": None}, "updates": {}, "evals": {}, "status": "x"}, "'NoneType' object is not iterable"),
], ids=["no-episodes", "no-status", "unknown-column", "lengths", "text", "none"])
def test_load_refuses_a_corrupt_history_saying_why(saved, history, reason):
    """A history.json that is valid JSON but not a history is a RunLoadError naming the file and the reason."""
    folder, _ = saved
    (folder / "history.json").write_text(json.dumps(history))
    with pytest.raises(RunLoadError) as info:
        pg.load(folder)
    assert str(info.value).startswith(f"{folder / 'history.json'} is corrupt: {reason}"), str(info.value)


def test_load_puts_both_networks_on_the_device_chosen_for_the_name_given(saved, monkeypatch):
    """``pg.load(path, device=name)`` asks the device chooser about ``name`` and puts the policy and the critic on
    the device it chose (here torch's parameterless "meta" device, standing in for a GPU), saying why."""
    from pgcourse.rl.devices import DeviceChoice

    folder, _ = saved
    monkeypatch.setattr(run_module, "choose_device", lambda device: DeviceChoice(torch.device("meta"), f"chose {device}"))
    loaded = pg.load(folder, device="cuda:1")
    assert loaded.device == torch.device("meta")
    assert {p.device.type for p in [*loaded.policy.parameters(), *loaded.value_net.parameters()]} == {"meta"}
    assert loaded.device_reason == "loaded onto it (chose cuda:1); trained on cpu"


def test_load_refuses_a_device_that_is_no_device(saved):
    """``pg.load(path, device=...)`` takes the device names training takes; another is a ValueError naming it."""
    folder, _ = saved
    with pytest.raises(ValueError, match="device='tpu' is invalid"):
        pg.load(folder, device="tpu")


@pytest.mark.parametrize("device, outputs, reason, expected_outputs", [
    ("cuda:1", {"log_dir": "/l"}, "loaded onto it (asked for: device='cpu'); trained on cuda:1", {"log_dir": "/l"}),
    ("mps", None, "loaded onto it (asked for: device='cpu'); trained on mps", {}),
    (..., ["not", "a", "dict"], "loaded onto it (asked for: device='cpu'); trained on a device not recorded", {}),
    (..., ..., "loaded onto it (asked for: device='cpu'); trained on a device not recorded", {}),
], ids=["cuda", "mps-outputs-null", "no-device-outputs-list", "neither"])
def test_a_loaded_run_says_where_it_trained_and_keeps_only_mapping_outputs(saved, device, outputs, reason,
                                                                              expected_outputs):
    """A loaded run's reason names the device it was loaded onto and why, and the device meta.json says it trained on
    ('a device not recorded' for a run saved before that was); its outputs are meta.json's when a mapping, else none."""
    folder, _ = saved

    def change(meta):
        for key, value in (("device", device), ("outputs", outputs)):
            if value is ...:
                meta.pop(key)
            else:
                meta[key] = value
    edit_json(folder / "meta.json", change)
    loaded = pg.load(folder)
    assert loaded.device_reason == reason and loaded.outputs == expected_outputs
    assert loaded.device == torch.device("cpu")


# =====================================================================================================================
# run.py: folders saved by an older pgcourse
# =====================================================================================================================
NEWER_COLUMNS = ("value_rel_error", "update_kl", "explained_variance_before", "explained_variance_after",
                 "line_search_steps", "step_fraction", "cg_residual", "surrogate_improvement", "expected_improvement")
NEWER_SETTINGS = {"box_action": "clip", "env_backend": "numpy", "log_std_min": None, "num_minibatches": None}


@pytest.mark.parametrize("solved", [True, False], ids=["solved", "unsolved"])
def test_a_folder_in_the_old_format_still_loads(solved, tmp_path):
    """A run saved before meta.json had the device, its reason and the outputs, before Discrete spaces had a start,
    before history.json had ``solved_at``, and before the newer update columns and settings existed, loads: the
    newer columns read NaN in every row, ``solved_at`` None, the settings their defaults, the start 0, every other
    field as saved."""
    history, expected = filled_history(solved)
    run = hand_run(history=history)
    folder = run.save(tmp_path / "run")

    def old_meta(meta):
        for key in ("device", "device_reason", "outputs"):
            meta.pop(key)
        meta["action_space"].pop("start")
    edit_json(folder / "meta.json", old_meta)
    edit_json(folder / "history.json", lambda h: [h.pop("solved_at"), *[h["updates"].pop(c) for c in NEWER_COLUMNS]])
    edit_json(folder / "config.json", lambda c: [c.pop(name) for name in NEWER_SETTINGS])
    loaded = pg.load(folder)
    for column in NEWER_COLUMNS:
        expected["updates"][column] = [NAN, NAN]
    assert_columns(loaded.history, expected)
    assert loaded.history.solved_at is None and loaded.history.status == history.status
    assert {name: getattr(loaded.config, name) for name in NEWER_SETTINGS} == NEWER_SETTINGS
    assert loaded.config == run.config
    assert loaded.action_space == gym.spaces.Discrete(2) and loaded.observation_space == CARTPOLE_OBS
    assert loaded.device_reason == "loaded onto it (asked for: device='cpu'); trained on a device not recorded"
    assert loaded.outputs == {} and loaded.saved_training_state is None
    assert state_dicts_equal(loaded.policy, run.policy) and state_dicts_equal(loaded.value_net, run.value_net)


@pytest.mark.parametrize("name, trained_on, columns", [("3", "a device not recorded", 17), ("5", "a device not recorded", 17),
                                                       ("11", "cpu", 22)])
def test_the_runs_shipped_by_older_pgcourses_still_load(name, trained_on, columns):
    """The course's debugging mysteries are runs saved by older pgcourses (17 or 22 update columns, some without the
    device); each loads, the columns it lacks reading NaN, the ones it has as saved."""
    folder = MYSTERIES / name
    saved_history = json.loads((folder / "history.json").read_text())
    assert len(saved_history["updates"]) == columns
    loaded = pg.load(folder)
    assert loaded.device_reason.endswith(f"; trained on {trained_on}") and loaded.outputs == {}
    assert loaded.history.status == saved_history["status"] and loaded.history.solved_at is None
    rows = len(saved_history["updates"]["env_step"])
    for column in UPDATE_FIELDS:
        values = saved_history["updates"].get(column, [None] * rows)
        np.testing.assert_array_equal(loaded.history.updates[column], [NAN if v is None else v for v in values],
                                      err_msg=column)
    np.testing.assert_array_equal(loaded.history.episode_returns, saved_history["episodes"]["return"])


# =====================================================================================================================
# tiny trainings: what pg.train hands back survives too
# =====================================================================================================================
TRAININGS = {
    "ppo-solved": ("ppo", "CartPole-v1", dict(total_steps=256, num_envs=4, n_steps=32, minibatch_size=64,
                                              update_epochs=1, eval_every=128, eval_episodes=1, solve_threshold=5.0)),
    "ppo-unsolved": ("ppo", "CartPole-v1", dict(total_steps=256, num_envs=4, n_steps=32, minibatch_size=64,
                                                update_epochs=1, eval_every=128, eval_episodes=1,
                                                solve_threshold=1e9)),
    "reinforce": ("reinforce", "CartPole-v1", dict(total_steps=200)),
    "ppo-pendulum": ("ppo", "Pendulum-v1", dict(total_steps=512, num_envs=2, n_steps=64, minibatch_size=128,
                                                update_epochs=1)),
}


@pytest.fixture(scope="module")
def trained():
    return {name: pg.train(algo, env_id, seed=0, device="cpu", progress=False, **settings)
            for name, (algo, env_id, settings) in TRAININGS.items()}


@pytest.mark.parametrize("name", list(TRAININGS))
def test_a_trained_run_solved_or_not_survives_save_and_load_with_its_training_state(trained, name, tmp_path):
    """A trained run, solved (``solved_at``: env_step, wall_time, episodes and mean of the first evaluation at the
    threshold) or not, loads back with every field; its training state records the algo, env, the env step and
    number of updates it stopped at, the format version, the device, and the critic's optimiser only if it has a
    critic."""
    run = trained[name]
    loaded = pg.load(run.save(tmp_path / "run"))
    if name == "ppo-solved":
        assert run.history.solved_at is not None and list(run.history.solved_at) == ["env_step", "wall_time",
                                                                                      "episodes", "mean"]
        first = int(np.argmax(run.history.evals["mean"] >= 5.0))
        assert run.history.solved_at["env_step"] == run.history.evals["env_step"][first]
        assert run.history.solved_at["mean"] == run.history.evals["mean"][first]
    elif name == "ppo-unsolved":
        assert len(run.history.evals) == 2 and run.history.solved_at is None
    assert loaded.history.solved_at == run.history.solved_at and loaded.history.status == run.history.status
    for table in ("episodes", "updates", "evals"):
        for column in getattr(run.history, table):
            np.testing.assert_array_equal(getattr(loaded.history, table)[column], getattr(run.history, table)[column])
    assert loaded.config == run.config and state_dicts_equal(loaded.policy, run.policy)
    assert loaded.normalizer_state == json.loads(json.dumps(run.normalizer_state))
    assert loaded.device_reason == "loaded onto it (asked for: device='cpu'); trained on cpu"
    state = loaded.resume_state()
    assert (state["version"], state["algo"], state["env_id"], state["device"]) == (
        1, run.config.algo, run.config.env_id, "cpu")
    assert state["num_updates"] == len(run.history.updates) > 0
    assert state["env_step"] == int(run.history.updates["env_step"][-1]) >= run.history.episodes["env_step"][-1]
    assert state["elapsed"] >= run.history.updates["wall_time"][-1]
    assert (state["critic_optimizer"] is None) == (run.value_net is None)
    assert deep_equal(state["actor_optimizer"], run.training_state["actor_optimizer"])


# =====================================================================================================================
# checkpoint.py: pickling the environments
# =====================================================================================================================
class Stepper:
    """A stand-in for a rollout stepper: it points at the vector env it steps."""

    def __init__(self, envs):
        self.envs = envs


def sync_envs():
    """Two CartPoles in a SyncVectorEnv (built from closures, which pickle cannot store) under a vector wrapper."""
    base = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1") for _ in range(2)])
    return gym.wrappers.vector.RecordEpisodeStatistics(gym.wrappers.vector.RecordEpisodeStatistics(base)), base


def test_the_vector_env_base_is_under_every_wrapper():
    """The base of a vector env is what is left under all of its vector wrappers (the env itself if it has none)."""
    envs, base = sync_envs()
    assert checkpoint._vector_env_base(envs) is base and checkpoint._vector_env_base(base) is base
    envs.close()


def test_the_envs_and_their_stepper_pickle_together_without_the_env_builders():
    """The vector env and its stepper are pickled as one (the unpickled stepper points at the unpickled env, mid-
    episode as they were); the closures that built the envs are left out while pickling and put back after."""
    envs, base = sync_envs()
    builders = base.env_fns
    obs, _ = envs.reset(seed=3)
    envs.step(np.array([0, 1]))
    data = checkpoint.pickle_envs(envs, Stepper(envs))
    assert base.env_fns is builders
    again, stepper = pickle.loads(data)
    assert stepper.envs is again and checkpoint._vector_env_base(again).env_fns is None
    expected, *_ = envs.step(np.array([1, 1]))
    got, *_ = again.step(np.array([1, 1]))
    np.testing.assert_array_equal(got, expected)
    envs.close()
    again.close()


def test_envs_without_builders_pickle_and_gain_no_builder_attribute():
    """A vector env that keeps no builders (pgcourse's own) pickles as it is, and is not given an ``env_fns``."""
    from pgcourse.rl.envs import make_vector_env

    envs = make_vector_env("CartPole-v1", 2, vectorization="auto")
    base = checkpoint._vector_env_base(envs)
    assert not hasattr(base, "env_fns")
    pickle.loads(checkpoint.pickle_envs(envs, Stepper(envs)))
    assert not hasattr(base, "env_fns")
    envs.close()


def test_envs_that_cannot_be_pickled_are_a_type_error_saying_why_and_keep_their_builders():
    """Envs holding something pickle cannot store are a TypeError that says they cannot be saved for resuming and
    names pickle's error; the builders are put back all the same."""
    envs, base = sync_envs()
    builders = base.env_fns
    stepper = Stepper(envs)
    stepper.callback = lambda: None
    with pytest.raises(TypeError) as info:
        checkpoint.pickle_envs(envs, stepper)
    cause = info.value.__cause__
    assert cause is not None
    assert str(info.value) == (f"the environments of this run cannot be saved for resuming ({type(cause).__name__}: "
                               f"{cause})")
    assert base.env_fns is builders
    envs.close()


# =====================================================================================================================
# checkpoint.py: the accelerators' generators
# =====================================================================================================================
STATE_A, STATE_B, STATE_C = (torch.full((4,), i, dtype=torch.uint8) for i in (1, 2, 3))


@pytest.fixture
def backends(monkeypatch):
    """Fake CUDA (``cuda``: available and initialised, ``count`` GPUs) and MPS (``mps``: available); ``set`` and
    ``mps_set`` record the states put back."""
    fake = {"cuda": True, "initialised": True, "count": 2, "mps": False, "set": [], "mps_set": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: fake["cuda"])
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: fake["initialised"])
    monkeypatch.setattr(torch.cuda, "device_count", lambda: fake["count"])
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [STATE_A, STATE_B][:fake["count"]])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: fake["set"].append(list(states)))
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: fake["mps"])
    monkeypatch.setattr(torch.mps, "get_rng_state", lambda device="mps": STATE_C)
    monkeypatch.setattr(torch.mps, "set_rng_state", lambda state, device="mps": fake["mps_set"].append(state))
    return fake


@pytest.mark.parametrize("available, initialised, in_use", [(True, True, True), (True, False, False),
                                                            (False, True, False), (False, False, False)])
def test_cuda_generators_matter_only_when_cuda_is_available_and_initialised(backends, available, initialised, in_use):
    """CUDA's generators are saved only when CUDA is available and already initialised (reading them starts nothing)."""
    backends.update(cuda=available, initialised=initialised)
    assert checkpoint.cuda_rng_in_use() is in_use


def test_mps_is_available_only_with_a_backend_that_says_so(backends, monkeypatch):
    """MPS counts as available when torch has the backend and it says a device is there."""
    assert checkpoint.mps_available() is False
    backends["mps"] = True
    assert checkpoint.mps_available() is True
    monkeypatch.setattr(torch.backends, "mps", None)
    assert checkpoint.mps_available() is False


@pytest.mark.parametrize("cuda, initialised, mps", [(True, True, True), (True, True, False), (True, False, True),
                                                     (True, False, False), (False, False, True), (False, False, False)])
def test_the_accelerator_states_are_those_of_the_backends_in_use(backends, cuda, initialised, mps):
    """``cuda_rng`` is every GPU's generator state when CUDA is in use (available and initialised: an available CUDA
    never initialised is not touched), ``mps_rng`` MPS's when it is available; None for a backend not in use."""
    backends.update(cuda=cuda, initialised=initialised, mps=mps)
    states = checkpoint.accelerator_rng_states()
    assert list(states) == ["cuda_rng", "mps_rng"]
    assert deep_equal(states["cuda_rng"], [STATE_A, STATE_B] if cuda and initialised else None)
    assert deep_equal(states["mps_rng"], STATE_C if mps else None)


def moved(saved: str, now: str) -> str:
    return (f"this run trained on {saved} and continues on {now}: it goes on from the same weights, optimisers and CPU "
            "generators, but its numbers will differ from a run that never stopped (other kernels, other random "
            "streams)")


NO_CUDA = ("the training state holds no CUDA generator state (saved by an older pgcourse): the CUDA generators keep "
           "their fresh seed, so the actions sampled from now on differ from a run that never stopped")
NO_MPS = ("the training state holds no MPS generator state (saved by an older pgcourse): the MPS generator keeps its "
          "fresh seed, so the actions sampled from now on differ from a run that never stopped")
RESTORES = [
    # (id, backends, state, device, CUDA states put back, MPS states put back, notes)
    ("cuda-same", {}, {"device": "cuda:0", "cuda_rng": [STATE_A, STATE_B]}, "cuda", [[STATE_A, STATE_B]], [], []),
    ("cuda-other-index", {}, {"device": "cuda:1", "cuda_rng": [STATE_A, STATE_B]}, "cuda:0", [[STATE_A, STATE_B]], [],
     []),
    ("more-gpus-saved", {}, {"device": "cuda", "cuda_rng": [STATE_A, STATE_B, STATE_C]}, "cuda",
     [[STATE_A, STATE_B]], [], ["the training state holds the CUDA generators of 3 GPU(s) and this machine has 2: the "
                                "first 2 were restored"]),
    ("fewer-gpus-saved", {}, {"device": "cuda", "cuda_rng": [STATE_C]}, "cuda", [[STATE_C]], [],
     ["the training state holds the CUDA generators of 1 GPU(s) and this machine has 2: the first 1 were restored"]),
    ("cuda-run-on-cpu", {}, {"device": "cuda:0", "cuda_rng": [STATE_A, STATE_B]}, "cpu", [[STATE_A, STATE_B]], [],
     [moved("cuda", "cpu")]),
    ("cpu-run-on-cuda", {}, {"device": "cpu", "cuda_rng": None}, "cuda", [], [], [moved("cpu", "cuda")]),
    ("cuda-without-state", {}, {"device": "cuda:0", "cuda_rng": None}, "cuda", [], [], [NO_CUDA]),
    ("older-on-cuda", {}, {}, "cuda", [], [], [NO_CUDA]),
    ("older-on-cpu", {}, {}, "cpu", [], [], []),
    ("no-cuda-here", {"cuda": False}, {"device": "cpu", "cuda_rng": [STATE_A]}, "cpu", [], [], []),
    ("mps-same", {"cuda": False, "mps": True}, {"device": "mps", "mps_rng": STATE_C}, "mps", [], [STATE_C], []),
    ("mps-run-on-cpu", {"cuda": False, "mps": True}, {"device": "mps", "mps_rng": STATE_C}, "cpu", [], [STATE_C],
     [moved("mps", "cpu")]),
    ("mps-without-state", {"cuda": False, "mps": True}, {"device": "mps", "mps_rng": None}, "mps", [], [], [NO_MPS]),
    ("cpu-run-on-mps", {"cuda": False, "mps": True}, {"device": "cpu", "mps_rng": None}, "mps", [], [],
     [moved("cpu", "mps")]),
    ("older-on-mps", {"cuda": False, "mps": True}, {}, "mps", [], [], [NO_MPS]),
    ("no-mps-here", {"cuda": False}, {"device": "mps", "mps_rng": STATE_C}, "mps", [], [], []),
]


@pytest.mark.parametrize("fake, state, device, cuda_set, mps_set, notes", [r[1:] for r in RESTORES],
                         ids=[r[0] for r in RESTORES])
def test_restoring_the_accelerator_states_puts_back_what_this_machine_can_and_says_what_differs(
        backends, fake, state, device, cuda_set, mps_set, notes):
    """Saved CUDA states go back to the GPUs this machine has (the first ``min`` of both counts), the MPS state where
    MPS is available; a note says when the device type changed, when the GPU counts differ, and when a run
    continuing on the same type of accelerator has no saved state for it (an older pgcourse's)."""
    backends.update(fake)
    assert checkpoint.restore_accelerator_rng_states(state, torch.device(device)) == notes
    assert deep_equal(backends["set"], cuda_set) and deep_equal(backends["mps_set"], mps_set)


# =====================================================================================================================
# checkpoint.py: capture, restore, continue
# =====================================================================================================================
def test_the_state_version_and_the_resume_point():
    """Training states are version 1; a resume point is a frozen pair of a run and its state."""
    assert checkpoint.STATE_VERSION == 1
    point = checkpoint.ResumePoint(run=hand_run(), state={"version": 1})
    with pytest.raises(FrozenInstanceError):
        point.state = {}
    assert point.state == {"version": 1}


@pytest.fixture
def trainers(monkeypatch):
    """``make(algo, **settings)``: a Trainer built (not trained) for CartPole, two envs, 8-unit networks; closed after."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    made = []

    def make(algo: str = "a2c", **settings) -> Trainer:
        config = make_config(algo, "CartPole-v1", "discrete", seed=5, hidden_sizes=(8,), device="cpu", progress=False,
                             num_envs=2, **settings)
        trainer = Trainer(config, needs_critic=algo != "reinforce")
        made.append(trainer)
        return trainer
    yield make
    for trainer in made:
        trainer.envs.close()


def advanced(trainer: Trainer, monkeypatch) -> Trainer:
    """The trainer moved on: envs mid-episode, optimisers with moments, counters and generators set to known values."""
    for _ in range(3):
        trainer.stepper.step(np.array([0, 1]))
    observations = torch.linspace(-1.0, 1.0, 12).reshape(3, 4)
    trainer.policy(observations).sum().backward()
    trainer.actor_optimizer.step()
    if trainer.value_net is not None:
        trainer.value_net(observations).sum().backward()
        trainer.critic_optimizer.step()
    trainer.env_step, trainer.num_updates, trainer._next_eval = 123, 4, 192
    monkeypatch.setattr(trainer, "elapsed", lambda: 12.5)
    torch.manual_seed(99)
    np.random.seed(98)
    trainer.minibatch_generator.manual_seed(97)
    return trainer


@pytest.mark.parametrize("algo", ["a2c", "reinforce"])
def test_capture_takes_every_part_of_the_training_state(trainers, monkeypatch, algo):
    """A training state holds the version, algo, env, env step, updates, elapsed time, next evaluation, the pickled
    envs with their stepper, the device, torch's, the accelerators', numpy's and the minibatch generator's states
    (and the minibatch generator's device), and both optimisers' states (None without a critic)."""
    trainer = advanced(trainers(algo, eval_every=64), monkeypatch)
    state = checkpoint.capture(trainer)
    assert list(state) == ["version", "algo", "env_id", "env_step", "num_updates", "elapsed", "next_eval", "envs",
                           "device", "torch_rng", "cuda_rng", "mps_rng", "numpy_rng", "minibatch_rng",
                           "minibatch_rng_device", "actor_optimizer", "critic_optimizer"]
    assert {k: state[k] for k in ("version", "algo", "env_id", "env_step", "num_updates", "elapsed", "next_eval",
                                  "device", "cuda_rng", "mps_rng", "minibatch_rng_device")} == {
        "version": 1, "algo": algo, "env_id": "CartPole-v1", "env_step": 123, "num_updates": 4, "elapsed": 12.5,
        "next_eval": 192, "device": "cpu", "cuda_rng": None, "mps_rng": None, "minibatch_rng_device": "cpu"}
    assert torch.equal(state["torch_rng"], torch.Generator().manual_seed(99).get_state())
    assert deep_equal(state["numpy_rng"], np.random.RandomState(98).get_state())
    assert torch.equal(state["minibatch_rng"], torch.Generator().manual_seed(97).get_state())
    assert deep_equal(state["actor_optimizer"], trainer.actor_optimizer.state_dict())
    assert state["actor_optimizer"]["state"][0][0]["step"] == 1
    if algo == "reinforce":
        assert state["critic_optimizer"] is None
    else:
        assert deep_equal(state["critic_optimizer"], trainer.critic_optimizer.state_dict())
    envs, stepper = pickle.loads(state["envs"])
    assert stepper.envs is envs
    np.testing.assert_array_equal(stepper.obs, trainer.stepper.obs)
    envs.close()


def test_capture_records_the_runs_device_and_the_minibatch_generators_device_apart(trainers):
    """The state records the device the run trained on and, apart from it, the device its minibatch generator draws
    on (a CUDA run may shuffle on the CPU)."""
    trainer = trainers()
    trainer.device = torch.device("cuda", 0)
    state = checkpoint.capture(trainer)
    assert (state["device"], state["minibatch_rng_device"]) == ("cuda:0", "cpu")


@pytest.mark.parametrize("algo, next_eval", [("a2c", 192), ("a2c", None), ("reinforce", 192)])
def test_restore_puts_every_part_back_into_a_fresh_trainer(trainers, monkeypatch, algo, next_eval):
    """Restoring a state into a freshly built trainer closes its new envs and takes the saved ones (mid-episode, the
    stepper pointing at them), the env step and update count (as ints), the next evaluation, both optimisers'
    moments, and torch's, numpy's and the minibatch generator's states, silently when nothing differs."""
    source = advanced(trainers(algo, eval_every=64), monkeypatch)
    source._next_eval = next_eval
    state = checkpoint.capture(source)
    state["env_step"], state["num_updates"] = np.int64(123), np.int64(4)
    torch.manual_seed(0)
    np.random.seed(0)
    fresh = trainers(algo, eval_every=64)
    closed, real_close = [], fresh.envs.close
    monkeypatch.setattr(fresh.envs, "close", lambda: closed.append(True))
    before = fresh.envs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checkpoint.restore(fresh, state)
    assert closed == [True] and fresh.envs is not before and fresh.stepper.envs is fresh.envs
    np.testing.assert_array_equal(fresh.stepper.obs, source.stepper.obs)
    np.testing.assert_array_equal(fresh.stepper.autoresetting, source.stepper.autoresetting)
    assert (fresh.env_step, fresh.num_updates, fresh._next_eval) == (123, 4, next_eval)
    assert type(fresh.env_step) is int and type(fresh.num_updates) is int
    assert deep_equal(fresh.actor_optimizer.state_dict(), source.actor_optimizer.state_dict())
    if algo == "reinforce":
        assert fresh.critic_optimizer is None
    else:
        assert deep_equal(fresh.critic_optimizer.state_dict(), source.critic_optimizer.state_dict())
    assert torch.equal(torch.rand(5), torch.rand(5, generator=torch.Generator().manual_seed(99)))
    assert np.random.random() == np.random.RandomState(98).random_sample()
    assert torch.equal(fresh.minibatch_generator.get_state(), torch.Generator().manual_seed(97).get_state())
    real_close()  # the fresh envs that were replaced (the fixture closes the ones taken over)


@pytest.mark.parametrize("version", [2, 0, None])
def test_restore_refuses_another_state_version_and_changes_nothing(trainers, monkeypatch, version):
    """A training state of another version (or none) is a ValueError naming it, before anything is put back."""
    state = checkpoint.capture(advanced(trainers(), monkeypatch))
    if version is None:
        del state["version"]
    else:
        state["version"] = version
    fresh = trainers()
    envs = fresh.envs
    with pytest.raises(ValueError) as info:
        checkpoint.restore(fresh, state)
    assert str(info.value) == f"training state version {version!r}; this pgcourse reads 1"
    assert fresh.envs is envs and fresh.env_step == 0


def test_restore_draws_minibatches_afresh_when_they_were_drawn_on_another_device(trainers, monkeypatch):
    """Minibatch permutations drawn on another device type cannot be continued: the generator keeps its fresh seed
    and a RuntimeWarning says the shuffles differ from now on. A state without the key was drawn on the CPU."""
    state = checkpoint.capture(advanced(trainers(), monkeypatch))
    fresh = trainers()
    seeded = fresh.minibatch_generator.get_state()
    with pytest.warns(RuntimeWarning) as record:
        checkpoint.restore(fresh, {**state, "minibatch_rng_device": "cuda"})
    assert [str(w.message) for w in record] == [
        "resuming: the minibatch permutations were drawn on cuda and are now drawn on cpu (another generator, "
        "seeded afresh): the shuffles from now on differ from a run that never stopped"]
    assert torch.equal(fresh.minibatch_generator.get_state(), seeded)
    older = {k: v for k, v in state.items() if k != "minibatch_rng_device"}
    again = trainers()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        checkpoint.restore(again, older)
    assert torch.equal(again.minibatch_generator.get_state(), state["minibatch_rng"])


def test_restore_compares_the_minibatch_generators_own_device(trainers, monkeypatch):
    """Whether the minibatch generator's state can be put back depends on the device it draws on, not on the run's:
    a CPU-shuffling trainer of a run now on CUDA takes the CPU-drawn state (the only warning is the device's)."""
    state = checkpoint.capture(advanced(trainers(), monkeypatch))
    fresh = trainers()
    fresh.device = torch.device("cuda")
    with pytest.warns(RuntimeWarning) as record:
        checkpoint.restore(fresh, state)
    assert [str(w.message) for w in record] == [f"resuming: {moved('cpu', 'cuda')}"]
    assert torch.equal(fresh.minibatch_generator.get_state(), state["minibatch_rng"])


def test_restore_warns_with_each_note_about_the_device(trainers, monkeypatch):
    """What a continuation cannot repeat (here: a CUDA run resumed on the CPU) is a RuntimeWarning starting
    'resuming: '."""
    state = checkpoint.capture(advanced(trainers(), monkeypatch))
    with pytest.warns(RuntimeWarning) as record:
        checkpoint.restore(trainers(), {**state, "device": "cuda:0"})
    assert [str(w.message) for w in record] == [f"resuming: {moved('cuda', 'cpu')}"]


@pytest.mark.parametrize("algo", ["a2c", "reinforce"])
def test_continue_from_takes_the_runs_weights_and_a_copy_of_its_history(trainers, monkeypatch, algo):
    """Continuing a run loads its policy (and critic) weights into the fresh trainer, puts its training state back,
    and returns a copy of its history, every field equal but the status, now "running"; the run keeps its own."""
    history, expected = filled_history(solved=True)
    run = hand_run(algo, history=history, seed=3)
    state = checkpoint.capture(advanced(trainers(algo), monkeypatch))
    fresh = trainers(algo)
    assert not state_dicts_equal(fresh.policy, run.policy)
    copy = checkpoint.continue_from(fresh, checkpoint.ResumePoint(run, state))
    assert state_dicts_equal(fresh.policy, run.policy)
    if algo == "reinforce":
        assert fresh.value_net is None
    else:
        assert state_dicts_equal(fresh.value_net, run.value_net)
    assert fresh.env_step == 123
    assert_columns(copy, expected)
    assert copy.solved_at == SOLVED_AT and copy.status == "running"
    assert run.history.status == "solved" and copy is not run.history
    copy.episodes.append(**{"return": 1.0})
    assert len(run.history.episodes) == 3
