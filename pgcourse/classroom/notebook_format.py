"""The course's notebook conventions, read in one place (used by the exercise generator and the grader).

A course notebook is an nbgrader-style notebook:

- an *answer cell* has the cell metadata ``{"nbgrader": {"solution": true, "grade_id": ...}}``; in a
  solution notebook its solution code sits between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
  lines, which the handed-out exercise replaces by ``raise NotImplementedError()``;
- a *check cell* has ``{"nbgrader": {"grade": true, "grade_id": ..., "points": N}}``;
- a cell tagged ``solution_only`` exists in the solution notebook only.

This module reads those conventions (solution markers, nbgrader metadata, tags) and reads notebook
files as plain JSON, without nbformat (a dev dependency only; nbformat 4 and the older 3). It sits
at the bottom of the package: it imports nothing from pgcourse.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["BEGIN_SOLUTION", "END_SOLUTION", "CODE_STUB", "MARKDOWN_STUB", "SOLUTION_ONLY_TAG",
           "MAX_NOTEBOOK_BYTES", "SolutionMarkerError", "NotebookError", "Cell", "nbgrader_metadata",
           "grade_id_of", "cell_tags", "replace_solution_regions", "stub_source", "parse_notebook",
           "clear_outputs"]

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
CODE_STUB = "raise NotImplementedError()"
MARKDOWN_STUB = "YOUR ANSWER HERE"
SOLUTION_ONLY_TAG = "solution_only"
MAX_NOTEBOOK_BYTES = 50 * 2**20

_MARKER = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>### (?:BEGIN|END) SOLUTION)[ \t]*$")


class SolutionMarkerError(ValueError):
    """Solution markers that do not pair up (a missing, stray, nested or misplaced marker, or none)."""


class NotebookError(ValueError):
    """A file that is not a readable Jupyter notebook."""


# --------------------------------------------------------------------------------------------------
# Cell metadata
# --------------------------------------------------------------------------------------------------

def nbgrader_metadata(metadata: Any) -> dict[str, Any]:
    """The ``nbgrader`` entry of a cell's metadata (``{}`` when absent or not a mapping)."""
    meta = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return meta if isinstance(meta, dict) else {}


def grade_id_of(metadata: Any) -> str | None:
    """The cell's nbgrader ``grade_id`` (``None`` when absent, empty or not text)."""
    grade_id = nbgrader_metadata(metadata).get("grade_id")
    return grade_id if isinstance(grade_id, str) and grade_id else None


def cell_tags(metadata: Any) -> list[str]:
    """The cell's tags (``[]`` when absent or not a list)."""
    tags = metadata.get("tags") if isinstance(metadata, dict) else None
    return tags if isinstance(tags, list) else []


# --------------------------------------------------------------------------------------------------
# Solution markers
# --------------------------------------------------------------------------------------------------

def replace_solution_regions(source: str, stub: str = CODE_STUB, where: str = "cell", strict: bool = True) -> str:
    """Replace every ``### BEGIN SOLUTION`` … ``### END SOLUTION`` region (markers included) by ``stub``
    indented like the BEGIN marker.

    ``strict`` (the exercise generator): raise :class:`SolutionMarkerError`, naming ``where``, on a
    marker that is not alone on its line, a nested or stray marker, an unclosed region or no region
    at all. Not strict (the grader, reading whatever notebook it is given): a line that merely
    contains a marker is kept, a second BEGIN starts a new region, a stray END is dropped, an
    unclosed region runs to the end and a source without regions comes back unchanged.
    """
    lines = source.split("\n")
    output: list[str] = []
    open_at: int | None = None
    regions = 0
    for number, line in enumerate(lines, start=1):
        match = _MARKER.match(line)
        if match is None:
            if strict and (BEGIN_SOLUTION in line or END_SOLUTION in line):
                raise SolutionMarkerError(f"{where}: line {number} has a solution marker that is not alone on its "
                                          f"line: {line.strip()!r}; put '{BEGIN_SOLUTION}' / '{END_SOLUTION}' on "
                                          "lines of their own")
            if open_at is None:
                output.append(line)
            continue
        if match["marker"] == BEGIN_SOLUTION:
            if strict and open_at is not None:
                raise SolutionMarkerError(f"{where}: line {number} opens a second '{BEGIN_SOLUTION}' before the "
                                          f"one on line {open_at} was closed with '{END_SOLUTION}'")
            open_at = number
            output.append(match["indent"] + stub)
        else:
            if strict and open_at is None:
                raise SolutionMarkerError(f"{where}: line {number} has '{END_SOLUTION}' without a "
                                          f"'{BEGIN_SOLUTION}' before it")
            open_at = None
            regions += 1
    if strict and open_at is not None:
        raise SolutionMarkerError(f"{where}: '{BEGIN_SOLUTION}' on line {open_at} is never closed: "
                                  f"add '{END_SOLUTION}' after the solution")
    if strict and regions == 0:
        raise SolutionMarkerError(f"{where}: a solution cell (nbgrader solution: true) needs a "
                                  f"'{BEGIN_SOLUTION}' / '{END_SOLUTION}' pair around the answer")
    return "\n".join(output)


def stub_source(source: str) -> str:
    """``source`` with each solution region replaced by ``raise NotImplementedError()`` (as the exercise has it)."""
    return replace_solution_regions(source, CODE_STUB, strict=False)


# --------------------------------------------------------------------------------------------------
# Notebook files (read without nbformat: nbformat 4 and the older 3)
# --------------------------------------------------------------------------------------------------

@dataclass
class Cell:
    index: int
    cell_type: str
    source: str
    metadata: dict[str, Any]

    @property
    def nbgrader(self) -> dict[str, Any]:
        return nbgrader_metadata(self.metadata)

    @property
    def grade_id(self) -> str | None:
        return grade_id_of(self.metadata)

    @property
    def tags(self) -> list[str]:
        return cell_tags(self.metadata)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "".join(value)
    return ""


def parse_notebook(data: bytes) -> tuple[list[Cell], dict[str, Any], int]:
    """(cells, notebook metadata, nbformat major version); :class:`NotebookError` if it is not a notebook."""
    if not data.strip():
        raise NotebookError("the file is empty")
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"the file is larger than {MAX_NOTEBOOK_BYTES // 2**20} MB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise NotebookError("not a notebook (the file is not UTF-8 text)") from None
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise NotebookError(f"not a notebook (not valid JSON: {str(error)[:120]})") from None
    if not isinstance(notebook, dict) or not ("cells" in notebook or "worksheets" in notebook):
        raise NotebookError("not a notebook (JSON without notebook cells)")
    version = notebook.get("nbformat") if isinstance(notebook.get("nbformat"), int) else 4
    if "cells" in notebook:
        raw_cells = notebook["cells"]
    else:  # nbformat 3 (and 2): cells live in worksheets, code in "input"
        worksheets = notebook["worksheets"] if isinstance(notebook["worksheets"], list) else []
        raw_cells = [cell for sheet in worksheets if isinstance(sheet, dict)
                     for cell in (sheet.get("cells") if isinstance(sheet.get("cells"), list) else [])]
    if not isinstance(raw_cells, list):
        raise NotebookError("not a notebook (its cells are not a list)")
    cells = []
    for index, raw in enumerate(raw_cells):
        if not isinstance(raw, dict):
            continue
        cell_type = raw.get("cell_type") if isinstance(raw.get("cell_type"), str) else "unknown"
        source = _text(raw.get("source")) if "source" in raw else _text(raw.get("input"))
        metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
        cells.append(Cell(index, cell_type, source, metadata))
    metadata = notebook.get("metadata") if isinstance(notebook.get("metadata"), dict) else {}
    return cells, metadata, version


def clear_outputs(cell: dict[str, Any]) -> None:
    """Empty a code cell's outputs and execution count (a notebook as handed out, never run)."""
    cell["outputs"] = []
    cell["execution_count"] = None
