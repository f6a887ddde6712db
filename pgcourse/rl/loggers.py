"""Training logs in the formats users expect: CSV files and TensorBoard event files, with the run's history.

:class:`TrainingLogger` writes the rows of a :class:`~pgcourse.rl.history.History` that it has not written
yet, and flushes, each time :meth:`TrainingLogger.write` is called (the training loop calls it after
every update), so a run stopped with Ctrl-C keeps its logs up to its last update.

What goes where (``log_dir`` is created if missing):

- ``episodes.csv``, ``updates.csv``, ``evals.csv``: the history's three tables, one row per row, the
  table's columns as the header. NaN (a number not measured, e.g. ``critic_lr`` for REINFORCE) is an
  empty cell, as ``history.json`` writes it as ``null``.
- one TensorBoard event file per logger, written with torch's ``SummaryWriter``: ``episode/return``,
  ``episode/length``, ``update/<column>`` for every update column, ``eval/mean`` and ``eval/std``,
  each point at ``global_step = env_step``. ``env_step`` and ``wall_time`` are not scalars of their own.
  NaN values get no point (a chart of a column this algorithm never measures stays absent). A point's
  wall time is the history's ``wall_time`` (learning time, evaluations excluded) plus one clock offset,
  chosen at the logger's first write so that the history's latest row falls at that moment: TensorBoard's
  "Relative" axis shows the history's ``wall_time``, its "Wall" axis about the clock time.

Resuming: a resumed run's history holds the old rows again. A new logger on a ``log_dir`` that already
holds CSVs skips as many rows of each table as its CSV holds, so only new rows are appended and its new
event file starts after them too. No file is ever deleted or overwritten; a CSV whose header differs
from the history's columns is refused with :class:`LogDirError`.

TensorBoard is an optional extra (``pip install "pgcourse[tensorboard]"``), imported only when a logger
writes that format.
"""
from __future__ import annotations

import csv
import io
import math
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .history import History, Table

FORMATS = ("csv", "tensorboard")
TABLES = (("episodes", "episode"), ("updates", "update"), ("evals", "eval"))  # history attribute, tag prefix
NOT_SCALARS = ("env_step", "wall_time")  # the x axes of TensorBoard's charts, not charts of their own
INSTALL_TENSORBOARD = 'pip install "pgcourse[tensorboard]"'


class LogDirError(ValueError):
    """``log_dir`` cannot hold this run's logs: it is a file, or its CSVs do not match the history."""


@dataclass
class _TableLog:
    """What the logger knows about one history table and its CSV.

    ``written``: rows of the table already logged, by this logger or by an earlier one (the CSV's rows);
    ``header``: the CSV's columns, None until the file has a header; ``checked``: the header was compared
    with the table's columns (once per logger); ``left_out``: columns already warned about.
    """

    name: str
    tag_prefix: str
    path: Path
    written: int = 0
    header: tuple[str, ...] | None = None
    checked: bool = False
    left_out: frozenset[str] = frozenset()


class TrainingLogger:
    """Writes a run's history as CSV files and TensorBoard event files, appending only new rows.

    Args:
        log_dir: folder of the logs (created if missing; an existing folder is appended to, see the
            module docstring on resuming).
        formats: any of ``"csv"`` and ``"tensorboard"`` (a single name may be given as a string). None (the
            default, what ``pg.train(log_dir=...)`` uses): both, or CSV alone with one warning when the
            ``tensorboard`` package is not installed.

    Raises:
        LogDirError: ``log_dir`` is a file, or a CSV in it has an incomplete last line.
        ValueError: an unknown format name, or no format.
        ImportError: ``"tensorboard"`` asked for by name but the ``tensorboard`` package is not installed.

    Use it as a context manager, or call :meth:`close` when done::

        with TrainingLogger("logs/ppo-cartpole") as logger:
            logger.write(run.history)
    """

    def __init__(self, log_dir: str | Path, formats: str | Iterable[str] | None = None):
        if formats is None:
            formats = FORMATS if tensorboard_installed() else ("csv",)
            if "tensorboard" not in formats:
                warnings.warn(f"logging CSV only to {log_dir}: TensorBoard needs the tensorboard package "
                              f"({INSTALL_TENSORBOARD})", stacklevel=2)
        self.formats = check_formats(formats)
        writer_class = summary_writer_class() if "tensorboard" in self.formats else None
        self.log_dir = make_log_dir(log_dir)
        self._tables = [_TableLog(name, prefix, self.log_dir / f"{name}.csv") for name, prefix in TABLES]
        for log in self._tables:
            log.header, log.written = read_csv_shape(log.path)
        self._clock_offset: float | None = None
        self._closed = False
        self._writer = None
        if writer_class is not None:
            self._warn_if_event_files_cannot_be_continued()
            self._writer = writer_class(log_dir=str(self.log_dir))  # a new event file, never an old one reopened

    # -- the public interface ----------------------------------------------------------------------
    def write(self, history: History) -> None:
        """Write every row of ``history.episodes``, ``.updates`` and ``.evals`` not written yet, then flush.

        Args:
            history: the run's history (``run.history``, or ``trainer.history`` while training). Call it
                again with the same, grown history: each call writes only the rows added since.
        """
        if self._closed:
            raise ValueError(f"this TrainingLogger of {self.log_dir} is closed; make a new one to write again")
        if self._clock_offset is None:
            self._clock_offset = time.time() - latest_wall_time(history)
        for log in self._tables:
            self._write_table(log, getattr(history, log.name))
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the TensorBoard event file (the CSVs are closed after every write). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def rows_written(self) -> dict[str, int]:
        """Rows of each table logged so far (including those an earlier logger wrote to the CSVs)."""
        return {log.name: log.written for log in self._tables}

    def __enter__(self) -> TrainingLogger:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        rows = ", ".join(f"{name} {count}" for name, count in self.rows_written.items())
        state = "closed" if self._closed else "open"
        return f"TrainingLogger({str(self.log_dir)!r}, formats={self.formats}, {state}; rows written: {rows})"

    # -- one table ---------------------------------------------------------------------------------
    def _write_table(self, log: _TableLog, table: Table) -> None:
        fields = tuple(table.fields)
        if "csv" in self.formats:
            self._check_header(log, fields)
        num_rows = len(table)
        if num_rows < log.written and not log.checked:
            warnings.warn(f"{log.path} already holds {log.written} rows, more than this run's history has "
                          f"({num_rows}): only rows after the first {log.written} will be logged. Is {self.log_dir} "
                          "the log of another run? Give each run its own log_dir.", RuntimeWarning, stacklevel=3)
        log.checked = True
        if num_rows <= log.written:
            return
        new_rows = {name: table[name][log.written:] for name in fields}
        if "csv" in self.formats:
            self._append_csv(log, new_rows)
        if self._writer is not None:
            self._add_scalars(log.tag_prefix, new_rows)
        log.written = num_rows

    def _check_header(self, log: _TableLog, fields: tuple[str, ...]) -> None:
        """Write the header of a new CSV; refuse an existing CSV whose header differs from the table's
        columns; warn (once) about columns added to the table after this logger wrote the header."""
        if log.header is None:
            with log.path.open("a", newline="") as file:
                csv.writer(file, lineterminator="\n").writerow(fields)
            log.header = fields
        elif not log.checked and log.header != fields:
            raise LogDirError(
                f"{log.path} has the columns {list(log.header)}, but this run's history has {list(fields)}: "
                "it holds the log of another kind of run (or of a pgcourse version with other columns). Give this "
                "run a new log_dir (the logger never overwrites a file).")
        new_columns = sorted(set(fields) - set(log.header) - log.left_out)
        if new_columns:
            elsewhere = "they go to TensorBoard only" if self._writer is not None else "they are not logged"
            warnings.warn(f"the history's {log.name} gained the column(s) {new_columns} after {log.path} was "
                          f"started; the CSV keeps its header (files are never rewritten), so {elsewhere}",
                          RuntimeWarning, stacklevel=4)
            log.left_out |= frozenset(new_columns)

    @staticmethod
    def _append_csv(log: _TableLog, new_rows: dict[str, np.ndarray]) -> None:
        """Append the rows in one write, under the CSV's header (a column the table lacks: empty cells)."""
        num_rows = len(next(iter(new_rows.values())))
        missing = np.full(num_rows, np.nan)
        columns = [new_rows.get(name, missing) for name in log.header]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(
            [format_value(value) for value in row] for row in zip(*columns))
        with log.path.open("a", newline="") as file:
            file.write(buffer.getvalue())

    def _add_scalars(self, tag_prefix: str, new_rows: dict[str, np.ndarray]) -> None:
        """One point per row and numeric column (NaN skipped), at ``global_step = env_step``."""
        steps = new_rows.get("env_step")
        wall_times = new_rows.get("wall_time")
        for name, values in new_rows.items():
            if name in NOT_SCALARS:
                continue
            for row, value in enumerate(values):
                if math.isnan(value):
                    continue
                self._writer.add_scalar(f"{tag_prefix}/{name}", float(value),
                                        global_step=None if steps is None else finite_int(steps[row]),
                                        walltime=None if wall_times is None else self._clock(wall_times[row]))

    def _clock(self, wall_time: float) -> float | None:
        """Clock time of a point recorded ``wall_time`` seconds into training (None: now)."""
        return None if math.isnan(wall_time) else self._clock_offset + float(wall_time)

    def _warn_if_event_files_cannot_be_continued(self) -> None:
        if any(self.log_dir.glob("events.out.tfevents.*")) and not any(log.written for log in self._tables):
            warnings.warn(f"{self.log_dir} already holds TensorBoard event files but no CSV rows, so the logger "
                          "cannot tell which rows they hold: its new event file starts from the first row, and a "
                          "resumed run's old points would show twice. Log with formats=('csv', 'tensorboard') to "
                          "resume without duplicates.", RuntimeWarning, stacklevel=3)


# -- helpers -----------------------------------------------------------------------------------------
def check_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """The formats asked for, each once, in the order given; a single name may be a plain string."""
    names = (formats,) if isinstance(formats, str) else tuple(formats)
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise ValueError(f"unknown log format(s) {unknown}: expected any of {FORMATS}, "
                         "e.g. formats=('csv',) or formats=('csv', 'tensorboard')")
    if not names:
        raise ValueError(f"formats is empty: give at least one of {FORMATS}")
    return tuple(dict.fromkeys(names))


def make_log_dir(log_dir: str | Path) -> Path:
    """``log_dir`` as a folder, created with its parents if missing; a file there is refused."""
    path = Path(log_dir).expanduser()
    if path.exists() and not path.is_dir():
        raise LogDirError(f"log_dir {str(path)!r} is a file, not a folder: pass a folder for the logs "
                          "(it is created if missing)")
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_csv_shape(path: Path) -> tuple[tuple[str, ...] | None, int]:
    """``(header, number of rows)`` of an existing CSV; ``(None, 0)`` when there is none or it is empty."""
    if not path.exists() or path.stat().st_size == 0:
        return None, 0
    text = path.read_text()
    if not text.endswith("\n"):
        raise LogDirError(f"{path} ends in an incomplete line (was the writing process killed?); the logger "
                          "appends only to whole rows: finish or delete that line by hand, or use a new log_dir")
    header, *rows = csv.reader(io.StringIO(text))
    return tuple(header), len(rows)


def logged_rows(log_dir: str | Path) -> int:
    """Rows the CSVs in ``log_dir`` already hold (0: no logs there yet). A new run refuses such a folder
    (:func:`pgcourse.train`): its own rows would be skipped as if it were those logs' run resumed."""
    folder = Path(log_dir).expanduser()
    if not folder.is_dir():
        return 0
    total = 0
    for name, _ in TABLES:
        try:
            total += read_csv_shape(folder / f"{name}.csv")[1]
        except (LogDirError, ValueError, csv.Error):
            total += 1  # a damaged CSV is still someone's log
    return total


def tensorboard_installed() -> bool:
    """Whether the ``tensorboard`` package can be imported (found, not imported: it is slow to import)."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):  # a None in sys.modules (blocked), or a broken spec
        return False


def summary_writer_class() -> type:
    """torch's ``SummaryWriter``; tensorboard is imported here only, when that format is asked for."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it; checked first for a clear message)
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise ImportError(f"TensorBoard logging needs the tensorboard package, which is not installed ({error}). "
                          f"Install it with: {INSTALL_TENSORBOARD}   or log CSV only: TrainingLogger(log_dir, formats=('csv',)) "
                          "(pg.train(log_dir=...) does that by itself when tensorboard is missing)") from error
    return SummaryWriter


def latest_wall_time(history: History) -> float:
    """The largest finite ``wall_time`` of any table's last row (0.0 for an empty history)."""
    last = [float(table["wall_time"][-1]) for table in (history.episodes, history.updates, history.evals)
            if len(table) and "wall_time" in table.fields]
    finite = [value for value in last if math.isfinite(value)]
    return max(finite, default=0.0)


def format_value(value: float) -> str:
    """A CSV cell: NaN empty, a whole number without ``.0`` (``4096``), any other float exactly (``repr``)."""
    value = float(value)
    if math.isnan(value):
        return ""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def finite_int(value: float) -> int | None:
    return int(value) if math.isfinite(value) else None
