"""pgcourse.loggers: CSV and TensorBoard logs hold exactly the run's history, appended once, resumable."""
from __future__ import annotations

import csv
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import pgcourse as pg
from pgcourse.rl.history import UPDATE_FIELDS, History, Table
from pgcourse.rl.loggers import FORMATS, LogDirError, TrainingLogger, format_value

pytest.importorskip("tensorboard", reason='the tensorboard extra is not installed: pip install "pgcourse[tensorboard]"')
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TABLES = {"episodes": "episode", "updates": "update", "evals": "eval"}  # history table -> TensorBoard tag prefix


# -- histories ---------------------------------------------------------------------------------------
def grow(history: History, updates: int, start: int = 0) -> History:
    """Add ``updates`` updates of 128 env steps to ``history`` (two episodes each, an evaluation every
    other update); REINFORCE-like NaN in the critic columns, PPO's KL and clip fraction set."""
    for i in range(start, start + updates):
        step = 128 * (i + 1)
        for k in range(2):
            history.episodes.append(**{"return": 10.0 + i + 0.25 * k, "length": 20 + k, "env_step": step,
                                       "wall_time": 0.01 * step + 0.001 * k})
        history.updates.append(env_step=step, wall_time=0.01 * step + 0.005, policy_loss=0.1 / (i + 1),
                               entropy=0.69 - 0.01 * i, approx_kl=1e-3 * i, clip_fraction=0.05, lr=3e-4)
        if i % 2 == 1:
            history.evals.append(env_step=step, wall_time=0.01 * step + 0.006, mean=50.0 + i, std=1.5)
    return history


def truncated(history: History, **rows: int) -> History:
    """The first ``rows[table]`` rows of each table (what an interrupted run had logged)."""
    data = history.to_dict()
    for table, count in rows.items():
        data[table] = {name: values[:count] for name, values in data[table].items()}
    return History.from_dict(data)


@pytest.fixture(scope="module")
def trained():
    """One short real training run (PPO on CartPole, about a second) with evaluations."""
    import pgcourse as pg

    return pg.train("ppo", "CartPole-v1", seed=0, total_steps=4096, progress=False, eval_every=2048,
                    eval_episodes=2)


# -- reading the logs back ---------------------------------------------------------------------------
def read_csv(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """Header and columns of a CSV written by the logger (empty cells as NaN)."""
    with path.open(newline="") as file:
        header, *rows = list(csv.reader(file))
    columns = {name: np.array([float(row[j]) if row[j] else np.nan for row in rows]) for j, name in enumerate(header)}
    return header, columns


def read_scalars(path: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Every scalar of a folder or of one event file: tag -> [(step, value, wall_time)] in order."""
    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(event.step, event.value, event.wall_time) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


def expected_scalars(history: History, start: dict[str, int] | None = None) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard should hold: a point per row and numeric column (NaN skipped), at env_step."""
    expected = {}
    for table_name, prefix in TABLES.items():
        table = getattr(history, table_name)
        first = (start or {}).get(table_name, 0)
        steps = table["env_step"][first:]
        for column in table.fields:
            if column in ("env_step", "wall_time"):
                continue
            points = [(int(step), float(np.float32(value))) for step, value in zip(steps, table[column][first:])
                      if not np.isnan(value)]
            if points:
                expected[f"{prefix}/{column}"] = points
    return expected


def assert_csvs_equal_history(log_dir: Path, history: History) -> None:
    for table_name in TABLES:
        table = getattr(history, table_name)
        header, columns = read_csv(log_dir / f"{table_name}.csv")
        assert header == list(table.fields), table_name
        for column in table.fields:
            np.testing.assert_array_equal(columns[column], table[column], err_msg=f"{table_name}.csv {column}")


def assert_scalars_equal_history(path: Path, history: History, start: dict[str, int] | None = None) -> None:
    found = {tag: [(step, value) for step, value, _ in points] for tag, points in read_scalars(path).items()}
    assert found == expected_scalars(history, start)


def event_files(log_dir: Path) -> list[Path]:
    return sorted(log_dir.glob("events.out.tfevents.*"))


# -- what is written ---------------------------------------------------------------------------------
def test_the_csvs_hold_the_history_tables_value_for_value(tmp_path):
    history = grow(History(), 5)
    with TrainingLogger(tmp_path, formats=("csv",)) as logger:
        logger.write(history)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["episodes.csv", "evals.csv", "updates.csv"]
    assert_csvs_equal_history(tmp_path, history)
    first_update = (tmp_path / "updates.csv").read_text().splitlines()[1]
    assert first_update.startswith("128,1.285,0.1,,0.69,0,0.05,"), "whole numbers without .0, NaN as empty cells"


def test_tensorboard_holds_the_same_scalars_at_the_same_steps(tmp_path):
    history = grow(History(), 5)
    with TrainingLogger(tmp_path, formats=("tensorboard",)) as logger:
        logger.write(history)
    assert [path.name for path in tmp_path.iterdir()] == [event_files(tmp_path)[0].name]
    scalars = read_scalars(tmp_path)
    assert_scalars_equal_history(tmp_path, history)
    assert {"episode/return", "episode/length", "update/policy_loss", "update/approx_kl", "eval/mean",
            "eval/std"} <= set(scalars)
    assert "update/value_loss" not in scalars, "a column that is all NaN gets no chart"
    assert not any(tag.endswith(("/env_step", "/wall_time")) for tag in scalars)
    # wall time: the history's wall_time plus one clock offset (TensorBoard's "Relative" axis = wall_time)
    for table_name, tag in (("episodes", "episode/return"), ("updates", "update/lr"), ("evals", "eval/mean")):
        relative = np.array([wall for _, _, wall in scalars[tag]]) - scalars["episode/return"][0][2]
        wall_time = getattr(history, table_name)["wall_time"]
        np.testing.assert_allclose(relative, wall_time - history.episodes["wall_time"][0], atol=1e-4)


def test_a_real_training_run_is_logged_in_full(tmp_path, trained):
    history = trained.history
    assert len(history.episodes) > 10 and len(history.updates) > 1 and len(history.evals) >= 1
    with TrainingLogger(tmp_path) as logger:
        logger.write(history)
    assert logger.rows_written == {name: len(getattr(history, name)) for name in TABLES}
    assert_csvs_equal_history(tmp_path, history)
    assert_scalars_equal_history(tmp_path, history)
    assert {"update/approx_kl", "update/clip_fraction", "update/explained_variance", "update/critic_lr"} <= \
        set(read_scalars(tmp_path))


# -- incremental, interrupted and resumed ------------------------------------------------------------
def test_each_write_appends_only_new_rows_and_is_on_disk_at_once(tmp_path):
    history = grow(History(), 2)
    logger = TrainingLogger(tmp_path)
    logger.write(history)
    logger.write(history)  # nothing new: nothing written
    grow(history, 3, start=2)
    logger.write(history)
    # not closed yet (a run stopped with Ctrl-C): everything written so far is already on disk
    assert_csvs_equal_history(tmp_path, history)
    assert_scalars_equal_history(tmp_path, history)
    logger.close()
    logger.close()  # idempotent
    assert logger.closed
    with pytest.raises(ValueError, match="closed"):
        logger.write(history)


def test_a_resumed_run_appends_only_its_new_rows(tmp_path, trained):
    full = trained.history
    first_part = {"episodes": len(full.episodes) // 2, "updates": len(full.updates) // 2, "evals": 1}
    with TrainingLogger(tmp_path) as logger:
        logger.write(truncated(full, **first_part))
    csv_before = {name: (tmp_path / f"{name}.csv").read_bytes() for name in TABLES}
    (first_events,) = event_files(tmp_path)
    events_before = first_events.read_bytes()

    with TrainingLogger(tmp_path) as logger:  # the resumed run's history holds the old rows again
        assert logger.rows_written == first_part
        logger.write(full)
    assert_csvs_equal_history(tmp_path, full)  # every row once
    for name, before in csv_before.items():
        assert (tmp_path / f"{name}.csv").read_bytes().startswith(before), "appended, never rewritten"
    assert first_events.read_bytes() == events_before
    second_events = [path for path in event_files(tmp_path) if path != first_events]
    assert len(second_events) == 1, "a new event file, the old one untouched"
    assert_scalars_equal_history(first_events, truncated(full, **first_part))
    assert_scalars_equal_history(second_events[0], full, start=first_part)


def test_a_log_dir_of_another_kind_of_run_is_refused_and_left_alone(tmp_path):
    (tmp_path / "updates.csv").write_text("env_step,reward,loss\n1,2,3\n")
    logger = TrainingLogger(tmp_path, formats=("csv",))
    with pytest.raises(LogDirError) as raised:
        logger.write(grow(History(), 1))
    message = str(raised.value)
    assert "['env_step', 'reward', 'loss']" in message and str(list(UPDATE_FIELDS)) in message
    assert "new log_dir" in message and "never overwrites" in message
    assert (tmp_path / "updates.csv").read_text() == "env_step,reward,loss\n1,2,3\n"


def test_a_csv_cut_off_mid_line_is_refused(tmp_path):
    (tmp_path / "episodes.csv").write_text("return,length,env_step,wall_time\n1,2,3")
    with pytest.raises(LogDirError, match="incomplete line"):
        TrainingLogger(tmp_path, formats=("csv",))


def test_a_history_shorter_than_the_log_warns_that_the_log_is_another_runs(tmp_path):
    with TrainingLogger(tmp_path, formats=("csv",)) as logger:
        logger.write(grow(History(), 4))
    with TrainingLogger(tmp_path, formats=("csv",)) as logger, pytest.warns(RuntimeWarning, match="another run"):
        logger.write(grow(History(), 1))


def test_event_files_without_csvs_cannot_be_continued_and_say_so(tmp_path):
    with TrainingLogger(tmp_path, formats=("tensorboard",)) as logger:
        logger.write(grow(History(), 1))
    with pytest.warns(RuntimeWarning, match="cannot tell which rows"):
        TrainingLogger(tmp_path, formats=("tensorboard",)).close()


def test_a_column_added_during_the_run_goes_to_tensorboard_and_the_csv_keeps_its_header(tmp_path):
    history = grow(History(), 2)
    logger = TrainingLogger(tmp_path)
    logger.write(history)
    # a later row brings a new column and lacks an old one (e.g. a newer package's history)
    fields = tuple(name for name in UPDATE_FIELDS if name != "lr") + ("grad_steps",)
    old = history.updates
    history.updates = Table(fields, {name: list(old[name]) + [old[name][-1]] for name in fields if name in old}
                            | {"grad_steps": [np.nan] * len(old) + [8.0]})
    with pytest.warns(RuntimeWarning, match=r"\['grad_steps'\].*TensorBoard only"):
        logger.write(history)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logger.write(history)  # warned once
    logger.close()
    header, columns = read_csv(tmp_path / "updates.csv")
    assert header == list(UPDATE_FIELDS)
    assert len(columns["env_step"]) == 3 and np.isnan(columns["lr"][-1]), "a column gone: an empty cell"
    assert [(step, value) for step, value, _ in read_scalars(tmp_path)["update/grad_steps"]] == [(256, 8.0)]


# -- bad input ---------------------------------------------------------------------------------------
def test_a_log_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "log.txt"
    path.write_text("not a folder")
    with pytest.raises(LogDirError, match="is a file, not a folder"):
        TrainingLogger(path)


@pytest.mark.parametrize("formats, message", [(("csv", "wandb"), r"unknown log format\(s\) \['wandb'\]"),
                                              ((), "formats is empty")])
def test_unknown_or_no_formats_are_refused(tmp_path, formats, message):
    with pytest.raises(ValueError, match=message):
        TrainingLogger(tmp_path / "logs", formats=formats)
    assert not (tmp_path / "logs").exists()


def test_one_format_may_be_a_plain_string(tmp_path):
    with TrainingLogger(tmp_path, formats="csv") as logger:
        assert logger.formats == ("csv",)


def test_tensorboard_asked_for_but_missing_says_how_to_install_it_or_log_csv_only(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` now fails as if not installed
    with pytest.raises(ImportError) as raised:
        TrainingLogger(tmp_path / "logs", formats=FORMATS)
    assert 'pip install "pgcourse[tensorboard]"' in str(raised.value)
    assert "formats=('csv',)" in str(raised.value)
    assert not (tmp_path / "logs").exists()
    with TrainingLogger(tmp_path / "logs", formats=("csv",)) as logger:  # CSV alone needs no tensorboard
        logger.write(grow(History(), 1))


def test_without_tensorboard_a_training_run_logs_csv_and_says_so_once(tmp_path, monkeypatch):
    """The README's install without make has no tensorboard; pg.train(log_dir=...) then raised and wrote nothing,
    suggesting formats=('csv',), which neither pg.train nor the CLI accepts (issue 29)."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    with pytest.warns(UserWarning, match="logging CSV only") as warned:
        run = pg.train("a2c", "CartPole-v1", seed=0, progress=False, log_dir=tmp_path / "logs", total_steps=256,
                       num_envs=4, n_steps=16)
    assert len([w for w in warned if "logging CSV only" in str(w.message)]) == 1
    with open(tmp_path / "logs" / "updates.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == len(run.history.updates) > 0
    assert not list((tmp_path / "logs").glob("events.out.tfevents.*"))


def test_importing_pgcourse_or_logging_csv_does_not_import_tensorboard(tmp_path):
    code = ("import sys, pgcourse, pgcourse.loggers\n"
            f"pgcourse.loggers.TrainingLogger({str(tmp_path)!r}, formats=('csv',)).write(pgcourse.History())\n"
            "loaded = sorted(m for m in sys.modules if 'tensorboard' in m)\n"
            "assert not loaded, loaded\n")
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr


def test_csv_cells_are_exact_and_nan_is_empty():
    assert [format_value(v) for v in (4096.0, 0.1, 3e-4, float("nan"), float("inf"), -2.0)] == \
        ["4096", "0.1", "0.0003", "", "inf", "-2"]
    assert float(format_value(1 / 3)) == 1 / 3


def test_a_new_run_refuses_a_log_dir_holding_another_runs_logs(tmp_path, capsys):
    """``--log-dir`` naming another run's logs trained with a warning and logged nothing of the new run (its rows
    were skipped as if it were that run resumed); it is refused before training, as ``--out`` is."""
    from pgcourse.cli import main

    tiny = dict(total_steps=256, num_envs=4, n_steps=16, progress=False)
    pg.train("a2c", "CartPole-v1", seed=0, log_dir=tmp_path / "logs", **tiny)
    before = (tmp_path / "logs" / "updates.csv").read_text()
    with pytest.raises(pg.ConfigError, match="already holds the logs of another run"):
        pg.train("a2c", "CartPole-v1", seed=1, log_dir=tmp_path / "logs", **tiny)
    assert main(["train", "a2c", "--env", "CartPole-v1", "--steps", "256", "--quiet", "--log-dir",
                 str(tmp_path / "logs"), "--out", str(tmp_path / "run")]) == 2
    assert "already holds the logs of another run" in capsys.readouterr().err
    assert (tmp_path / "logs" / "updates.csv").read_text() == before and not (tmp_path / "run").exists()
