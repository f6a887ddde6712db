"""Definition tests for the classroom's pure modules: the handout, the hunts' drawing and key, the exercise
generator and the notebook conventions (issue 45, item 5).

Each test states one decision of ``pgcourse/classroom/handout.py``, ``hunts.py``, ``exercisegen.py`` or
``notebook_format.py`` in words and checks it on small objects built here, with the edges (equality at a boundary,
empty input, one element, case, whitespace, unicode, duplicates, None). Nothing here trains, starts a process or a
sandbox: the hunts' training is replaced by small fake runs, so that the fast unit lane pins what these modules
decide, not only that a slow grading run goes through them.
"""
from __future__ import annotations

import dataclasses
import datetime as real_datetime
import hashlib
import hmac
import json
import os
import random
import stat
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output, new_raw_cell

from pgcourse.classroom import exercisegen, handout, hunts, notebook_format
from pgcourse.classroom.exercisegen import ExerciseGenError
from pgcourse.classroom.handout import HandoutError
from pgcourse.classroom.notebook_format import Cell, NotebookError, SolutionMarkerError
from pgcourse.course.debugging.bug_hunt import HUNT_FORMAT, KEY_FORMAT, MYSTERIES, WITHHELD_SEED
from pgcourse.rl.history import History, Table

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
RAISE = "raise NotImplementedError()"


# =====================================================================================================================
# notebook_format: the conventions
# =====================================================================================================================
def test_the_conventions_constants_are_the_nbgrader_markers_and_stubs():
    """The markers are nbgrader's own (three hashes, BEGIN/END SOLUTION), the stubs are what a learner sees (a code
    answer raises NotImplementedError, a written one says YOUR ANSWER HERE), the tag is ``solution_only`` and a
    notebook file may hold at most 50 MiB."""
    assert notebook_format.BEGIN_SOLUTION == "### BEGIN SOLUTION"
    assert notebook_format.END_SOLUTION == "### END SOLUTION"
    assert notebook_format.CODE_STUB == "raise NotImplementedError()"
    assert notebook_format.MARKDOWN_STUB == "YOUR ANSWER HERE"
    assert notebook_format.SOLUTION_ONLY_TAG == "solution_only"
    assert notebook_format.MAX_NOTEBOOK_BYTES == 50 * 1024 * 1024


@pytest.mark.parametrize("metadata, expected", [
    ({"nbgrader": {"grade_id": "a", "solution": True}}, {"grade_id": "a", "solution": True}),
    ({"nbgrader": {}}, {}),
    ({}, {}),
    ({"nbgrader": None}, {}),
    ({"nbgrader": ["grade_id", "a"]}, {}),
    ({"nbgrader": "a"}, {}),
    (None, {}),
    (["nbgrader"], {}),
    ("nbgrader", {}),
    ({"NBGRADER": {"grade_id": "a"}}, {}),
])
def test_nbgrader_metadata_is_the_mapping_under_nbgrader_or_empty(metadata, expected):
    """A cell's nbgrader metadata is its ``nbgrader`` entry when that is a mapping; ``{}`` when the entry is absent,
    not a mapping, spelled in another case, or the metadata itself is not a mapping."""
    assert notebook_format.nbgrader_metadata(metadata) == expected


@pytest.mark.parametrize("grade_id, expected", [("ex1", "ex1"), (" ", " "), ("é", "é"), ("", None), (None, None),
                                                (5, None), (["ex1"], None), (True, None)])
def test_a_grade_id_is_nonempty_text_or_none(grade_id, expected):
    """``grade_id_of`` gives the nbgrader grade_id when it is non-empty text (kept as written), else None."""
    assert notebook_format.grade_id_of({"nbgrader": {"grade_id": grade_id}}) == expected
    assert notebook_format.grade_id_of({"nbgrader": {}}) is None
    assert notebook_format.grade_id_of({}) is None
    assert notebook_format.grade_id_of(None) is None


@pytest.mark.parametrize("metadata, expected", [
    ({"tags": ["solution_only", "x"]}, ["solution_only", "x"]),
    ({"tags": []}, []),
    ({}, []),
    ({"tags": "solution_only"}, []),  # a string is no list of tags (``in`` would test substrings)
    ({"tags": None}, []),
    ({"tags": {"solution_only": 1}}, []),
    ({"Tags": ["x"]}, []),
    (None, []),
    ([["tags"]], []),
])
def test_a_cells_tags_are_its_tags_list_or_empty(metadata, expected):
    """A cell's tags are its ``tags`` entry when that is a list, else ``[]`` (absent, a string, a mapping, None)."""
    assert notebook_format.cell_tags(metadata) == expected


def test_a_cell_reads_its_nbgrader_metadata_grade_id_and_tags_from_its_metadata():
    """``Cell.nbgrader``, ``Cell.grade_id`` and ``Cell.tags`` are the module's readers applied to the cell's own
    metadata."""
    cell = Cell(3, "code", "x = 1", {"nbgrader": {"grade_id": "g", "solution": True}, "tags": ["t"]})
    assert (cell.index, cell.cell_type, cell.source) == (3, "code", "x = 1")
    assert cell.nbgrader == {"grade_id": "g", "solution": True} and cell.grade_id == "g" and cell.tags == ["t"]
    bare = Cell(0, "markdown", "", {"nbgrader": {"grade_id": ""}, "tags": "t"})
    assert bare.nbgrader == {"grade_id": ""} and bare.grade_id is None and bare.tags == []


# -- solution regions -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source, expected", [
    (f"def f():\n    {BEGIN}\n    return 1\n    {END}", f"def f():\n    {RAISE}"),
    (f"a = 1\n{BEGIN}\nb = 2\n{END}\nc = 3", f"a = 1\n{RAISE}\nc = 3"),
    (f"\t{BEGIN}\n\tx\n\t{END}", f"\t{RAISE}"),                          # a tab indent is kept
    (f" \t {BEGIN}\nx\n{END}", f" \t {RAISE}"),                          # the BEGIN marker's indent, not END's
    (f"{BEGIN}   \nx\n{END}\t ", RAISE),                                   # trailing blanks on a marker line
    (f"{BEGIN}\n{END}", RAISE),                                            # an empty region
    (f"{BEGIN}\na\n{END}\nmid\n  {BEGIN}\nb\n  {END}\n", f"{RAISE}\nmid\n  {RAISE}\n"),  # two regions, final newline
    (f"x\n\n{BEGIN}\n\ny\n\n{END}\n\nz", f"x\n\n{RAISE}\n\nz"),             # blank lines around stay, inside go
    (f"s = 'é'\n{BEGIN}\nt = 'ü'\n{END}", f"s = 'é'\n{RAISE}"),
])
def test_each_solution_region_becomes_the_stub_at_the_begin_markers_indent(source, expected):
    """Every region from a BEGIN marker line to its END marker line, both included, becomes one stub line indented
    like the BEGIN marker; every line outside a region is kept as it was, in order."""
    assert notebook_format.replace_solution_regions(source) == expected
    assert notebook_format.replace_solution_regions(source, strict=False) == expected


def test_the_stub_given_replaces_the_region():
    """The stub is the one given (a markdown answer's placeholder), indented like the marker."""
    source = f"Why?\n  {BEGIN}\nBecause.\n  {END}"
    assert notebook_format.replace_solution_regions(source, "YOUR ANSWER HERE") == "Why?\n  YOUR ANSWER HERE"


@pytest.mark.parametrize("line", [f"x = 1  {BEGIN}", f"#{BEGIN}", f"{BEGIN} here", f"# {END}", f"{END}.",
                                  f"print('{BEGIN}')"])
def test_strictly_a_marker_must_be_alone_on_its_line(line):
    """Strict (the generator): a line holding a marker and anything else but blanks is an error naming the place,
    the line number and the line; not strict (the grader): that line is ordinary text and is kept."""
    source = f"a = 1\n{line}\nb = 2"
    with pytest.raises(SolutionMarkerError) as error:
        notebook_format.replace_solution_regions(source, where="ex.ipynb, cell 4")
    message = str(error.value)
    assert message.startswith("ex.ipynb, cell 4: line 2 ") and repr(line.strip()) in message
    assert "not alone on its line" in message
    assert notebook_format.replace_solution_regions(source, strict=False) == source


@pytest.mark.parametrize("line", ["## BEGIN SOLUTION", "### BEGIN SOLUTIONS", "### begin solution",
                                  "###BEGIN SOLUTION", "### BEGIN  SOLUTION"])
def test_a_near_miss_of_a_marker_is_ordinary_text(line):
    """Only the exact markers count: another number of hashes, another case or spacing inside them is ordinary
    text, kept by the lenient reader (and by the strict one a marker must still be present)."""
    source = f"{line}\nx = 1"
    assert notebook_format.replace_solution_regions(source, strict=False) == source
    if BEGIN not in line:
        with pytest.raises(SolutionMarkerError, match="needs a"):
            notebook_format.replace_solution_regions(source)


def test_strictly_a_second_begin_before_an_end_is_an_error_naming_both_lines():
    """Strict: a BEGIN inside an open region is an error naming its line and the line of the open BEGIN."""
    source = f"x\n{BEGIN}\na\n{BEGIN}\nb\n{END}"
    with pytest.raises(SolutionMarkerError) as error:
        notebook_format.replace_solution_regions(source, where="W")
    assert str(error.value).startswith("W: line 4 opens a second") and "on line 2 was closed" in str(error.value)


def test_leniently_a_second_begin_starts_a_new_region():
    """Not strict: a second BEGIN starts a new region (one more stub, at its own indent); one END closes it."""
    source = f"{BEGIN}\na\n  {BEGIN}\nb\n{END}\nc"
    assert notebook_format.replace_solution_regions(source, strict=False) == f"{RAISE}\n  {RAISE}\nc"


@pytest.mark.parametrize("source, line", [(f"{END}\nx", 1), (f"x\n{BEGIN}\ny\n{END}\n{END}", 5)])
def test_strictly_an_end_without_a_begin_is_an_error(source, line):
    """Strict: an END with no open region (first thing, or a second END) is an error naming its line; not strict,
    the stray END is dropped and the rest kept."""
    with pytest.raises(SolutionMarkerError, match=f"^W: line {line} has '{END}' without a '{BEGIN}' before it$"):
        notebook_format.replace_solution_regions(source, where="W")
    assert notebook_format.replace_solution_regions(f"a\n{END}\nb", strict=False) == "a\nb"


@pytest.mark.parametrize("source, line", [(f"{BEGIN}\nx", 1), (f"a\nb\n{BEGIN}", 3),
                                          (f"{BEGIN}\n{END}\n{BEGIN}\nx", 3)])
def test_strictly_an_unclosed_region_is_an_error_naming_its_begin(source, line):
    """Strict: a region never closed is an error naming the line of its BEGIN; not strict, it runs to the end of the
    source (everything after the BEGIN is dropped)."""
    with pytest.raises(SolutionMarkerError, match=f"^W: '{BEGIN}' on line {line} is never closed"):
        notebook_format.replace_solution_regions(source, where="W")
    assert notebook_format.replace_solution_regions(f"a\n  {BEGIN}\nb\nc", strict=False) == f"a\n  {RAISE}"


@pytest.mark.parametrize("source", ["", "x = 1", "def f():\n    return 1\n"])
def test_strictly_a_source_without_a_region_is_an_error_leniently_unchanged(source):
    """Strict: a solution cell needs at least one BEGIN/END pair (the error says so, naming the place; the default
    place is ``cell``); not strict, a source without regions comes back unchanged."""
    with pytest.raises(SolutionMarkerError, match=f"^cell: a solution cell .* needs a '{BEGIN}' / '{END}' pair"):
        notebook_format.replace_solution_regions(source)
    assert notebook_format.replace_solution_regions(source, strict=False) == source


def test_a_solution_marker_error_is_a_value_error():
    """The marker and notebook errors are ValueErrors (a caller catching bad input catches them)."""
    assert issubclass(SolutionMarkerError, ValueError) and issubclass(NotebookError, ValueError)
    assert issubclass(ExerciseGenError, ValueError)


@pytest.mark.parametrize("source, expected", [
    (f"def f():\n    {BEGIN}\n    return 1\n    {END}", f"def f():\n    {RAISE}"),
    ("no regions at all", "no regions at all"),
    (f"a\n{END}\nb", "a\nb"),
    (f"x  {BEGIN}", f"x  {BEGIN}"),
])
def test_stub_source_is_the_lenient_replacement_by_the_code_stub(source, expected):
    """``stub_source`` is what the exercise shows: each region replaced by ``raise NotImplementedError()``,
    leniently (never an error)."""
    assert notebook_format.stub_source(source) == expected


# -- notebook files ---------------------------------------------------------------------------------------------------
def nb_bytes(notebook: object) -> bytes:
    return json.dumps(notebook).encode()


@pytest.mark.parametrize("data", [b"", b"   ", b"\n\t \r\n"])
def test_an_empty_or_blank_file_is_not_a_notebook(data):
    """A file of nothing, or of blanks only, is refused as empty."""
    with pytest.raises(NotebookError, match="^the file is empty$"):
        notebook_format.parse_notebook(data)


def test_a_notebook_of_exactly_the_size_limit_is_read_and_one_byte_more_is_refused(monkeypatch):
    """A file of exactly MAX_NOTEBOOK_BYTES is read; one byte more is refused, the message giving the limit in MB
    (the limit is lowered here to 1 MiB; the real one, 50 MiB, is checked for the message)."""
    monkeypatch.setattr(notebook_format, "MAX_NOTEBOOK_BYTES", 2**20)
    head = b'{"cells": []}'
    exact = head + b" " * (2**20 - len(head))
    assert notebook_format.parse_notebook(exact)[0] == []
    with pytest.raises(NotebookError, match="^the file is larger than 1 MB$"):
        notebook_format.parse_notebook(exact + b" ")
    monkeypatch.undo()
    with pytest.raises(NotebookError, match="^the file is larger than 50 MB$"):
        notebook_format.parse_notebook(b"{" + b" " * (50 * 2**20))


def test_a_notebook_may_start_with_a_byte_order_mark():
    """A UTF-8 file with a byte-order mark (some Windows editors write one) is read as a notebook."""
    cells, _, _ = notebook_format.parse_notebook(b"\xef\xbb\xbf" + nb_bytes({"cells": [{"cell_type": "code",
                                                                                           "source": "é"}]}))
    assert [(c.cell_type, c.source) for c in cells] == [("code", "é")]


def test_a_file_that_is_not_utf8_is_not_a_notebook():
    """Bytes that are not UTF-8 are refused, saying so."""
    with pytest.raises(NotebookError, match=r"^not a notebook \(the file is not UTF-8 text\)$"):
        notebook_format.parse_notebook(b'{"cells": ["\xff\xfe"]}')


@pytest.mark.parametrize("data", [b"{not json", b"[" * 100_000 + b"]" * 100_000, b'{"cells": [}'])
def test_text_that_is_not_json_is_not_a_notebook(data):
    """Text that is not JSON (also JSON nested too deep to parse) is refused, naming JSON, with at most 120
    characters of the parser's message."""
    with pytest.raises(NotebookError) as error:
        notebook_format.parse_notebook(data)
    message = str(error.value)
    assert message.startswith("not a notebook (not valid JSON: ") and message.endswith(")")
    assert len(message) <= len("not a notebook (not valid JSON: )") + 120


def test_the_json_errors_message_is_cut_at_120_characters(monkeypatch):
    """The parser's message is cut to its first 120 characters."""
    def failing(text):
        raise ValueError("x" * 119 + "yz")
    monkeypatch.setattr(notebook_format.json, "loads", failing)
    with pytest.raises(NotebookError) as error:
        notebook_format.parse_notebook(b"{}")
    assert str(error.value) == "not a notebook (not valid JSON: " + "x" * 119 + "y)"


@pytest.mark.parametrize("notebook", [[], [{"cells": []}], "cells", 4, None, {}, {"metadata": {}},
                                      {"Cells": []}, {"nbformat": 4}])
def test_json_without_cells_or_worksheets_is_not_a_notebook(notebook):
    """JSON that is not an object holding ``cells`` (nbformat 4) or ``worksheets`` (nbformat 3) is refused."""
    with pytest.raises(NotebookError, match=r"^not a notebook \(JSON without notebook cells\)$"):
        notebook_format.parse_notebook(nb_bytes(notebook))


@pytest.mark.parametrize("cells", [{}, "abc", None, 3])
def test_cells_that_are_not_a_list_are_refused(cells):
    """A ``cells`` entry that is not a list is refused."""
    with pytest.raises(NotebookError, match=r"^not a notebook \(its cells are not a list\)$"):
        notebook_format.parse_notebook(nb_bytes({"cells": cells}))


@pytest.mark.parametrize("value, version", [(4, 4), (3, 3), (5, 5), ("3", 4), (None, 4), (4.0, 4), (3.0, 4),
                                            ("x", 4)])
def test_the_version_is_the_integer_nbformat_else_4(value, version):
    """The version is the notebook's ``nbformat`` when it is an integer, else 4; absent, 4."""
    assert notebook_format.parse_notebook(nb_bytes({"cells": [], "nbformat": value}))[2] == version
    assert notebook_format.parse_notebook(nb_bytes({"cells": []}))[2] == 4


def test_the_cells_are_read_in_order_with_their_index_type_source_and_metadata():
    """Each cell object is read with its index in the file's list, its type (``unknown`` when not text), its source
    (a string, or a list of strings joined; anything else is empty) and its metadata (a mapping, else ``{}``);
    entries that are not objects are skipped but still count for the indices."""
    raw = [
        {"cell_type": "code", "source": ["a = 1\n", "b = 2"], "metadata": {"tags": ["x"]}},
        "not a cell",
        {"cell_type": "markdown", "source": "# T", "metadata": []},
        {"cell_type": 7, "source": ["a", 1]},
        {"source": None},
        None,
        {"cell_type": "raw", "source": [], "metadata": None},
        {"cell_type": "code", "source": "", "input": "ignored", "metadata": "m"},
    ]
    cells, metadata, version = notebook_format.parse_notebook(nb_bytes({"cells": raw, "nbformat": 4}))
    assert [(c.index, c.cell_type, c.source, c.metadata) for c in cells] == [
        (0, "code", "a = 1\nb = 2", {"tags": ["x"]}),
        (2, "markdown", "# T", {}),
        (3, "unknown", "", {}),
        (4, "unknown", "", {}),
        (6, "raw", "", {}),
        (7, "code", "", {}),
    ]
    assert metadata == {} and version == 4


@pytest.mark.parametrize("value, expected", [({"kernelspec": {"name": "python3"}}, {"kernelspec": {"name": "python3"}}),
                                             ([], {}), ("m", {}), (None, {})])
def test_the_notebooks_metadata_is_its_mapping_else_empty(value, expected):
    """The notebook's metadata is its ``metadata`` entry when a mapping, else ``{}``."""
    assert notebook_format.parse_notebook(nb_bytes({"cells": [], "metadata": value}))[1] == expected


def test_an_nbformat_3_notebooks_cells_are_its_worksheets_cells_in_order_with_code_in_input():
    """nbformat 3 keeps cells in worksheets, code in ``input``: the cells of every worksheet, in order, are read
    (a worksheet that is not an object, or whose cells are not a list, adds none), a code cell's text from
    ``input`` when it has no ``source``."""
    notebook = {"nbformat": 3, "metadata": {"name": "old"}, "worksheets": [
        {"cells": [{"cell_type": "code", "input": ["x = 1\n", "y"]}, {"cell_type": "markdown", "source": "# A"}]},
        "junk",
        {"cells": "not a list"},
        {},
        {"cells": [{"cell_type": "heading", "source": "H", "input": "unused"}]},
    ]}
    cells, metadata, version = notebook_format.parse_notebook(nb_bytes(notebook))
    assert [(c.index, c.cell_type, c.source) for c in cells] == [(0, "code", "x = 1\ny"), (1, "markdown", "# A"),
                                                                 (2, "heading", "H")]
    assert metadata == {"name": "old"} and version == 3


@pytest.mark.parametrize("worksheets", [None, {}, "x"])
def test_worksheets_that_are_not_a_list_give_no_cells(worksheets):
    """A ``worksheets`` entry that is not a list holds no cells (the file is still read)."""
    assert notebook_format.parse_notebook(nb_bytes({"worksheets": worksheets}))[0] == []


def test_cells_take_precedence_over_worksheets():
    """A notebook with both ``cells`` and ``worksheets`` is read from ``cells``."""
    notebook = {"cells": [{"cell_type": "code", "source": "new"}],
                "worksheets": [{"cells": [{"cell_type": "code", "input": "old"}]}]}
    assert [c.source for c in notebook_format.parse_notebook(nb_bytes(notebook))[0]] == ["new"]


def test_clearing_a_cells_outputs_leaves_it_never_run():
    """``clear_outputs`` leaves a code cell with no outputs and no execution count, its other keys as they were."""
    cell = {"cell_type": "code", "source": "x", "outputs": [{"output_type": "stream"}], "execution_count": 7,
            "metadata": {"a": 1}}
    notebook_format.clear_outputs(cell)
    assert cell == {"cell_type": "code", "source": "x", "outputs": [], "execution_count": None, "metadata": {"a": 1}}
    bare = {}
    notebook_format.clear_outputs(bare)
    assert bare == {"outputs": [], "execution_count": None}


# =====================================================================================================================
# exercisegen: from a solution notebook to an exercise
# =====================================================================================================================
def answer_meta(grade_id: str, **more) -> dict:
    return {"nbgrader": {"grade": False, "solution": True, "locked": False, "grade_id": grade_id, **more}}


def check_meta(grade_id: str, points: object = 2) -> dict:
    return {"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": grade_id, "points": points}}


ANSWER_SOURCE = f"def f(x):\n    \"\"\"Twice x.\"\"\"\n    {BEGIN}\n    return 2 * x\n    {END}"
STUBBED = f"def f(x):\n    \"\"\"Twice x.\"\"\"\n    {RAISE}"


def solution_notebook(*cells) -> nbformat.NotebookNode:
    return new_notebook(cells=list(cells), metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                    "language": "python"}})


def test_the_execution_and_output_metadata_keys_are_named():
    """The cell metadata written by executing tools (``execution``, ``ExecuteTime``) and the notebook metadata that
    only describes outputs (``widgets``) are the keys an exercise drops; learner copies go to ``your-work``."""
    assert exercisegen.EXECUTION_METADATA_KEYS == ("execution", "ExecuteTime")
    assert exercisegen.OUTPUT_NOTEBOOK_METADATA_KEYS == ("widgets",)
    assert exercisegen.KEPT_FOLDER == "your-work"


@pytest.mark.parametrize("metadata, label", [({"nbgrader": {"grade_id": "ex1"}}, "03.ipynb, cell 4 (grade_id 'ex1')"),
                                             ({"nbgrader": {"grade_id": ""}}, "03.ipynb, cell 4"),
                                             ({"nbgrader": {}}, "03.ipynb, cell 4"),
                                             ({}, "03.ipynb, cell 4")])
def test_a_cell_is_named_by_notebook_index_and_grade_id(metadata, label):
    """A cell is named in errors as ``<notebook>, cell <index>``, followed by its grade_id (repr) when it has one."""
    assert exercisegen._cell_label("03.ipynb", 4, new_code_cell("x", metadata=metadata)) == label


def test_the_generators_marker_errors_are_exercise_errors_with_the_same_message():
    """The generator reports a bad marker as an ExerciseGenError, with the conventions module's message."""
    with pytest.raises(ExerciseGenError, match="^X: line 1 has '### END SOLUTION' without") as error:
        exercisegen.replace_solution_regions(f"{END}", RAISE, "X")
    assert not isinstance(error.value, SolutionMarkerError) and error.value.__suppress_context__
    assert exercisegen.replace_solution_regions(f"  {BEGIN}\nx\n  {END}", "S", "X") == "  S"


@pytest.mark.parametrize("grade_id", [None, "", 5, ["a"]])
def test_nbgrader_metadata_needs_a_grade_id(grade_id):
    """A cell with nbgrader metadata needs a non-empty text grade_id; the error names the cell."""
    meta = {"nbgrader": {"solution": False, "grade": False}}
    if grade_id is not None:
        meta["nbgrader"]["grade_id"] = grade_id
    notebook = solution_notebook(new_markdown_cell("intro"), new_markdown_cell("x", metadata=meta))
    with pytest.raises(ExerciseGenError, match=r"^nb, cell 1.*: nbgrader metadata without a 'grade_id'$"):
        exercisegen.validate_solution_notebook(notebook, "nb")


def test_empty_nbgrader_metadata_is_no_nbgrader_cell():
    """An empty ``nbgrader`` entry is no nbgrader cell: it needs no grade_id."""
    exercisegen.validate_solution_notebook(solution_notebook(new_markdown_cell("x", metadata={"nbgrader": {}})))


def test_two_cells_with_one_grade_id_are_an_error_naming_both():
    """Every nbgrader cell needs its own grade_id: a repeated one is an error naming it and both cells' indices."""
    notebook = solution_notebook(new_markdown_cell("m"), new_code_cell(ANSWER_SOURCE, metadata=answer_meta("a")),
                                 new_markdown_cell("m"), new_code_cell("check(f)", metadata=check_meta("a")))
    with pytest.raises(ExerciseGenError, match=r"^nb: grade_id 'a' is used by cells 1 and 3; every"):
        exercisegen.validate_solution_notebook(notebook, "nb")
    ok = solution_notebook(new_code_cell(ANSWER_SOURCE, metadata=answer_meta("a")),
                           new_code_cell("check(f)", metadata=check_meta("A")))  # grade_ids differ in case: two ids
    exercisegen.validate_solution_notebook(ok, "nb")


@pytest.mark.parametrize("points, ok", [(2, True), (0, True), (1.5, True), (0.0, True), (None, False), ("2", False),
                                        ([2], False)])
def test_a_graded_cell_needs_numeric_points(points, ok):
    """A graded cell (grade: true) needs ``points``, a number (0 included); missing or text is an error naming the
    cell; a cell that is not graded needs none."""
    meta = check_meta("c", points)
    if points is None:
        del meta["nbgrader"]["points"]
    notebook = solution_notebook(new_code_cell("check()", metadata=meta))
    if ok:
        exercisegen.validate_solution_notebook(notebook, "nb")
    else:
        with pytest.raises(ExerciseGenError, match=r"^nb, cell 0 \(grade_id 'c'\): a graded cell \(grade: true\) "
                                                   r"needs 'points'$"):
            exercisegen.validate_solution_notebook(notebook, "nb")
    ungraded = {"nbgrader": {"grade": False, "solution": False, "grade_id": "u"}}
    exercisegen.validate_solution_notebook(solution_notebook(new_markdown_cell("m", metadata=ungraded)))


def test_a_solution_cell_must_be_code_or_markdown():
    """A solution cell is a code or a markdown cell; a raw cell is an error naming it."""
    for make in (new_code_cell, new_markdown_cell):
        exercisegen.validate_solution_notebook(solution_notebook(make(ANSWER_SOURCE, metadata=answer_meta("a"))))
    with pytest.raises(ExerciseGenError, match=r"^nb, cell 0 \(grade_id 'a'\): a solution cell must be a code or "
                                               r"markdown cell$"):
        exercisegen.validate_solution_notebook(solution_notebook(new_raw_cell(ANSWER_SOURCE,
                                                                              metadata=answer_meta("a"))), "nb")


def test_a_solution_cells_markers_are_checked_strictly():
    """A solution cell's markers are checked as the generator replaces them: a cell without a pair is an error
    naming the cell."""
    notebook = solution_notebook(new_code_cell("def f():\n    return 1", metadata=answer_meta("a")))
    with pytest.raises(ExerciseGenError, match=r"^nb, cell 0 \(grade_id 'a'\): a solution cell"):
        exercisegen.validate_solution_notebook(notebook, "nb")


@pytest.mark.parametrize("source", [f"{BEGIN}\nx\n{END}", f"{BEGIN}\nx", f"x\n{END}", f"print('{BEGIN}')"])
@pytest.mark.parametrize("metadata", [{}, {"nbgrader": {"solution": False, "grade_id": "g", "grade": False}}],
                         ids=["no-nbgrader", "not-solution"])
def test_markers_in_a_cell_that_is_not_a_solution_cell_would_leak_and_are_an_error(source, metadata):
    """A cell holding a BEGIN or an END marker (anywhere in its text) but not marked ``solution: true`` would hand
    the solution out: an error naming the cell."""
    notebook = solution_notebook(new_code_cell(source, metadata=metadata))
    with pytest.raises(ExerciseGenError, match=r"^nb, cell 0.*: has solution markers but .* does not say "
                                               "solution: true"):
        exercisegen.validate_solution_notebook(notebook, "nb")


def test_a_solution_only_cell_cannot_carry_nbgrader_metadata():
    """A ``solution_only`` cell is dropped from the exercise, so it may not be an nbgrader cell (an error naming
    it); without nbgrader metadata it is fine."""
    meta = {"tags": ["solution_only"], "nbgrader": {"grade": False, "solution": False, "grade_id": "s"}}
    with pytest.raises(ExerciseGenError, match=r"^nb, cell 0 \(grade_id 's'\): a cell tagged 'solution_only' is "
                                               "dropped"):
        exercisegen.validate_solution_notebook(solution_notebook(new_code_cell("x", metadata=meta)), "nb")
    exercisegen.validate_solution_notebook(solution_notebook(new_code_cell("x", metadata={"tags": ["solution_only"]})))


def test_validation_names_the_default_notebook_as_notebook():
    """Without a name, the notebook is called ``notebook`` in the errors."""
    with pytest.raises(ExerciseGenError, match=r"^notebook, cell 0: has solution markers"):
        exercisegen.validate_solution_notebook(solution_notebook(new_code_cell(f"{BEGIN}\n{END}")))


def exercise_of(*cells, metadata=None) -> nbformat.NotebookNode:
    notebook = solution_notebook(*cells)
    notebook.metadata.update(metadata or {})
    return exercisegen.make_exercise_notebook(notebook, "nb.ipynb")


def test_an_exercise_stubs_code_answers_and_markdown_answers():
    """A code answer's regions become ``raise NotImplementedError()``, a markdown answer's ``YOUR ANSWER HERE``;
    cells that are not answers keep their text."""
    written = f"**Why?**\n{BEGIN}\nBecause the baseline has no gradient.\n{END}"
    exercise = exercise_of(new_markdown_cell("# Intro"), new_code_cell(ANSWER_SOURCE, metadata=answer_meta("a")),
                           new_markdown_cell(written, metadata=answer_meta("w")),
                           new_code_cell("check(f)", metadata=check_meta("c")))
    assert [c.source for c in exercise.cells] == ["# Intro", STUBBED, "**Why?**\nYOUR ANSWER HERE", "check(f)"]


def test_an_exercise_drops_solution_only_cells_and_keeps_the_others_in_order():
    """Cells tagged ``solution_only`` are not in the exercise; every other cell is, in order."""
    exercise = exercise_of(new_markdown_cell("a"), new_code_cell("secret", metadata={"tags": ["solution_only", "x"]}),
                           new_markdown_cell("b", metadata={"tags": ["solution"]}), new_code_cell("c"))
    assert [c.source for c in exercise.cells] == ["a", "b", "c"]


def test_an_exercise_has_no_outputs_and_no_execution_metadata_and_keeps_the_rest():
    """Every code cell of the exercise has no outputs and no execution count; the executing tools' timestamps
    (``execution``, ``ExecuteTime``) go from every cell, every other cell metadata stays; a markdown cell gains no
    outputs."""
    answer = new_code_cell(ANSWER_SOURCE, metadata=answer_meta("a"), execution_count=3,
                           outputs=[new_output("stream", name="stdout", text="hi\n")])
    answer.metadata.update({"execution": {"iopub.status.busy": "2025-01-01T00:00:00Z"},
                            "ExecuteTime": {"start_time": "2025-01-01T00:00:00Z"}, "scrolled": True})
    plain = new_code_cell("print(1)", execution_count=0)  # run, printing nothing
    note = new_markdown_cell("m", metadata={"execution": {"iopub.status.idle": "2025-01-01T00:00:01Z"},
                                            "ExecuteTime": {"end_time": "2025-01-01T00:00:01Z"}, "editable": False})
    exercise = exercise_of(answer, plain, note)
    first, second, third = exercise.cells
    assert first.outputs == [] and first.execution_count is None and second.outputs == []
    assert second.execution_count is None
    assert dict(first.metadata) == {**answer_meta("a"), "scrolled": True}
    assert dict(third.metadata) == {"editable": False} and "outputs" not in third


def test_an_exercise_drops_the_widget_state_and_keeps_the_other_notebook_metadata():
    """The notebook metadata describing outputs (saved widget state) goes; the rest (kernelspec, nbgrader's,
    anything else) stays."""
    exercise = exercise_of(new_markdown_cell("a"), metadata={"widgets": {"state": {}}, "language_info": {"name": "py"},
                                                             "execution": {"keep": True}})
    assert set(exercise.metadata) == {"kernelspec", "language_info", "execution"}


def test_making_an_exercise_leaves_the_solution_as_it_was():
    """The solution notebook given is not modified."""
    solution = solution_notebook(new_code_cell(ANSWER_SOURCE, metadata=answer_meta("a"), execution_count=1,
                                               outputs=[new_output("stream", name="stdout", text="x")]),
                                 new_code_cell("s", metadata={"tags": ["solution_only"]}))
    solution.metadata["widgets"] = {"w": 1}
    before = nbformat.writes(solution)
    exercisegen.make_exercise_notebook(solution)
    assert nbformat.writes(solution) == before


def test_an_exercises_colab_badge_points_at_the_exercise():
    """The Colab badge copied from the solution names the exercise's own file (``exercises/``), not the
    solution's."""
    badge = new_markdown_cell("[![Open In Colab](b.svg)](https://colab.research.google.com/github/o/r/blob/v1/"
                              "solutions/03_a2c.ipynb)", metadata={"tags": ["colab-badge"]})
    exercise = exercise_of(badge)
    assert exercise.cells[0].source.endswith("/blob/v1/exercises/03_a2c.ipynb)")


def test_a_notebook_that_breaks_the_conventions_makes_no_exercise():
    """make_exercise_notebook validates first: a notebook that breaks the conventions raises, naming it."""
    with pytest.raises(ExerciseGenError, match="^nb.ipynb, cell 0"):
        exercise_of(new_code_cell(f"{BEGIN}\nx\n{END}"))


def write_solution(folder: Path, name: str, answer: str = ANSWER_SOURCE) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    notebook = solution_notebook(new_markdown_cell(f"# {name}"), new_code_cell(answer, metadata=answer_meta("a"),
                                                                                execution_count=1))
    nbformat.write(notebook, folder / name)
    return folder / name


def test_exercise_text_is_the_generated_notebook_as_nbformat_writes_it_with_one_final_newline(tmp_path):
    """The text an exercise file should have is nbformat's text of the generated notebook, ending in exactly one
    newline."""
    path = write_solution(tmp_path, "01.ipynb")
    text = exercisegen.exercise_text(path)
    assert text.endswith("}\n") and not text.endswith("\n\n")
    expected = exercisegen.make_exercise_notebook(nbformat.read(path, as_version=4), "01.ipynb")
    assert text == nbformat.writes(expected, version=4).rstrip("\n") + "\n"
    assert [c.source for c in nbformat.reads(text, as_version=4).cells] == ["# 01.ipynb", STUBBED]


def test_the_solution_notebooks_are_the_ipynb_files_in_name_order(tmp_path):
    """The solution notebooks are the folder's ``*.ipynb`` files (not folders, not other suffixes, not
    subfolders'), sorted by name."""
    for name in ("b.ipynb", "a.ipynb", "C.ipynb", "notes.txt", "a.ipynb.bak"):
        (tmp_path / name).write_text("{}")
    (tmp_path / "d.ipynb").mkdir()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "e.ipynb").write_text("{}")
    assert [p.name for p in exercisegen.solution_notebooks(tmp_path)] == ["C.ipynb", "a.ipynb", "b.ipynb"]
    assert exercisegen.solution_notebooks(tmp_path / "missing") == []


@pytest.fixture
def course(tmp_path, monkeypatch):
    """A folder with solutions/01.ipynb and solutions/02.ipynb (no exercises yet), the current folder."""
    monkeypatch.chdir(tmp_path)
    write_solution(tmp_path / "solutions", "01.ipynb")
    write_solution(tmp_path / "solutions", "02.ipynb")
    return tmp_path


def test_main_writes_every_exercise_then_reports_it_up_to_date(course, capsys):
    """Without --check, main writes each exercise that is missing or differs and says how many it rewrote (0 the
    second time); with --check it then finds them all up to date (exit 0)."""
    assert exercisegen.main() == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["wrote exercises/01.ipynb", "wrote exercises/02.ipynb",
                                "2 exercise notebook(s), 2 rewritten"]
    for name in ("01.ipynb", "02.ipynb"):
        assert (course / "exercises" / name).read_text() == exercisegen.exercise_text(course / "solutions" / name)
    assert exercisegen.main(check=True) == 0
    assert capsys.readouterr().out == "2 exercise notebook(s) up to date\n"
    assert exercisegen.main() == 0
    assert capsys.readouterr().out == "2 exercise notebook(s), 0 rewritten\n"
    assert not (course / "exercises" / "your-work").exists()


def test_check_lists_missing_differing_and_orphaned_exercises_and_exits_1(course, capsys):
    """--check writes nothing and exits 1 listing each exercise that is missing, differs from what the generator
    makes, or has no solution notebook."""
    exercises = course / "exercises"
    exercises.mkdir()
    (exercises / "01.ipynb").write_text(exercisegen.exercise_text(course / "solutions" / "01.ipynb") + " ")
    (exercises / "09.ipynb").write_text("{}")
    assert exercisegen.main(check=True) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert lines[0].startswith("exercise notebooks are out of date (run `pgcourse exercises`")
    assert lines[1:] == ["  exercises/01.ipynb differs from what the generator makes from solutions/01.ipynb",
                         "  exercises/02.ipynb is missing", "  exercises/09.ipynb has no solution notebook "
                         "solutions/09.ipynb"]
    assert (exercises / "09.ipynb").read_text() == "{}" and not (exercises / "02.ipynb").exists()


def test_check_with_only_an_orphaned_exercise_is_out_of_date(course, capsys):
    """An exercise without a solution notebook alone makes --check fail; without --check it is warned about and
    left as it is."""
    assert exercisegen.main() == 0
    (course / "exercises" / "zz.ipynb").write_text("mine")
    capsys.readouterr()
    assert exercisegen.main(check=True) == 1
    assert exercisegen.main() == 0
    err = capsys.readouterr().err
    assert "warning: exercises/zz.ipynb has no solution notebook in solutions (left as is)" in err
    assert (course / "exercises" / "zz.ipynb").read_text() == "mine"


def test_regenerating_keeps_a_copy_only_of_an_exercise_holding_learner_work(course, capsys):
    """Before replacing an exercise, main copies it to your-work/ when it holds the learner's work (here: an
    output), and says so; one that merely differs otherwise is replaced without a copy."""
    assert exercisegen.main() == 0
    first = course / "exercises" / "01.ipynb"
    notebook = nbformat.read(first, as_version=4)
    notebook.cells[1].outputs = [new_output("stream", name="stdout", text="mine\n")]
    nbformat.write(notebook, first)
    worked = first.read_text()
    second = course / "exercises" / "02.ipynb"
    notebook = nbformat.read(second, as_version=4)
    notebook.cells[0].source = "# edited heading"
    nbformat.write(notebook, second)
    capsys.readouterr()
    assert exercisegen.main() == 0
    out = capsys.readouterr().out
    kept = list((course / "exercises" / "your-work").iterdir())
    assert [k.read_text() for k in kept] == [worked] and kept[0].name.startswith("01-")
    relative = Path("exercises") / "your-work" / kept[0].name
    assert f"kept your version of 01.ipynb as {relative} (it holds your answers or outputs)" in out
    assert "kept your version of 02.ipynb" not in out and "2 rewritten" in out


def test_main_without_a_solutions_folder_exits_2(tmp_path, capsys):
    """No solutions folder: exit 2, saying where it looked, and nothing written."""
    assert exercisegen.main(solutions_dir=tmp_path / "nope", exercises_dir=tmp_path / "ex") == 2
    assert capsys.readouterr().err == f"error: no solutions folder at {tmp_path / 'nope'}\n"
    assert not (tmp_path / "ex").exists()


@pytest.mark.parametrize("check", [False, True])
def test_main_with_a_broken_solution_exits_2_and_writes_nothing(course, capsys, check):
    """A solution notebook that breaks the conventions: exit 2 with the error, and no exercise written (the others
    neither)."""
    write_solution(course / "solutions", "00.ipynb", answer="def f():\n    return 1")
    assert exercisegen.main(check=check) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 00.ipynb, cell 1 (grade_id 'a'): a solution cell")
    assert not (course / "exercises").exists()


def test_main_with_an_invalid_notebook_exits_2(course, capsys):
    """A solution notebook that nbformat finds invalid (a markdown cell with outputs): exit 2."""
    bad = json.loads((course / "solutions" / "01.ipynb").read_text())
    bad["cells"][0]["outputs"] = []
    (course / "solutions" / "01.ipynb").write_text(json.dumps(bad))
    assert exercisegen.main() == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("argv, expected", [
    ([], dict(check=False, solutions_dir="solutions", exercises_dir="exercises")),
    (["--check"], dict(check=True, solutions_dir="solutions", exercises_dir="exercises")),
    (["--solutions", "s", "--exercises", "e"], dict(check=False, solutions_dir="s", exercises_dir="e")),
])
def test_the_generators_command_line(monkeypatch, argv, expected):
    """``--check`` only compares; ``--solutions``/``--exercises`` name the folders (default solutions/ and
    exercises/); the exit status is main's."""
    calls = []
    monkeypatch.setattr(exercisegen, "main", lambda **kwargs: calls.append(kwargs) or 7)
    assert exercisegen.cli(argv) == 7
    assert calls == [expected]


def answer_notebook(*answers: tuple[str, str], outputs=(), count=None, extra: str = "") -> str:
    notebook = new_notebook()
    if extra:
        notebook.cells.append(new_markdown_cell(extra))
    for grade_id, source in answers:
        notebook.cells.append(new_code_cell(source, metadata={"nbgrader": {"grade_id": grade_id, "solution": True}}))
    notebook.cells.append(new_code_cell("check()", outputs=list(outputs), execution_count=count,
                                        metadata={"nbgrader": {"grade_id": "c", "grade": True, "points": 1}}))
    return nbformat.writes(notebook)


@pytest.mark.parametrize("current, work", [
    (answer_notebook(("a", STUBBED)), False),
    (answer_notebook(("a", STUBBED), count=0), True),                     # run once: count 0 is still a count
    (answer_notebook(("a", STUBBED), count=5), True),
    (answer_notebook(("a", STUBBED), outputs=[new_output("stream", name="stdout", text="x")]), True),
    (answer_notebook(("a", STUBBED + " ")), True),                       # one blank added to the answer
    (answer_notebook(("a", STUBBED), extra="my notes"), False),           # other cells are not answers
    (answer_notebook(("b", STUBBED)), True),                              # a stub, but of a grade_id not regenerated
    (answer_notebook(), False),                                           # the learner deleted the answer cell
    ("not json {", True),                                                 # unreadable: keep it
    ("", True),
])
def test_learner_work_is_an_output_a_run_count_or_a_changed_answer_cell(current, work):
    """A notebook holds the learner's work when a code cell has an output or an execution count (0 included), or an
    answer cell's text is not the regenerated stub of its grade_id; a notebook that cannot be read counts as work."""
    assert exercisegen.holds_learner_work(current, answer_notebook(("a", STUBBED))) is work


def test_a_learners_kept_copy_is_named_by_stem_and_time_numbered_after_the_first(monkeypatch, tmp_path):
    """A kept copy is ``your-work/<stem>-<YYYYmmdd-HHMMSS>.ipynb`` beside the exercise; a second one in the same
    second is ``-2``, a third ``-3``; each holds the notebook as it was copied."""
    class Frozen(real_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 1, 2, 3, 4, 5)
    monkeypatch.setattr(real_datetime, "datetime", Frozen)
    notebook = tmp_path / "ex" / "03_a2c.ipynb"
    notebook.parent.mkdir()
    names = []
    for version in range(3):
        notebook.write_text(f"v{version}")
        kept = exercisegen.keep_learner_copy(notebook)
        names.append(kept.relative_to(tmp_path).as_posix())
        assert kept.read_text() == f"v{version}"
    assert names == ["ex/your-work/03_a2c-20260102-030405.ipynb", "ex/your-work/03_a2c-20260102-030405-2.ipynb",
                     "ex/your-work/03_a2c-20260102-030405-3.ipynb"]


# =====================================================================================================================
# handout: what a class receives
# =====================================================================================================================
def test_the_handout_carries_the_lessons_exercises_figures_and_package_and_what_installs_it():
    """In: notebooks/, exercises/, figures/, pgcourse/, and pyproject.toml, Makefile, environment.yml, LICENSE;
    START_HERE is START_HERE.ipynb. Caches, compiled files, checkpoints, runs and egg-info are skipped."""
    assert handout.FOLDERS == ("notebooks", "exercises", "figures", "pgcourse")
    assert handout.FILES == ("pyproject.toml", "Makefile", "environment.yml", "LICENSE")
    assert handout.START_HERE == "START_HERE.ipynb"
    skipped = handout.SKIP("/x", ["__pycache__", "m.pyc", "m.py", ".ipynb_checkpoints", "runs", "pg.egg-info",
                                  ".pytest_cache", "run", "figures", "m.pyc.txt", "solutions"])
    assert skipped == {"__pycache__", "m.pyc", ".ipynb_checkpoints", "runs", "pg.egg-info", ".pytest_cache"}


def test_the_handouts_readme_says_how_to_set_up_and_hand_in_without_solutions():
    """The class's README names START_HERE, the set-up commands (make lab, an editable install of the course
    extra) and that exercise notebooks are handed in; it never mentions solutions."""
    text = handout.README
    assert text.startswith("# Policy gradients, from REINFORCE to PPO\n")
    for phrase in ("`START_HERE.ipynb`", "`make lab`", '.venv/bin/pip install -e ".[course]"',
                   "hand in the exercise notebooks", "Python 3.11–3.13", "`pg.networks.CategoricalPolicy`"):
        assert phrase in text
    assert "solution" not in text.lower()


def make_course(root: Path) -> Path:
    """A small course: START_HERE, the folders (with files a handout skips), the files, and what stays out."""
    root.mkdir(parents=True, exist_ok=True)
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {"execution": {"t": 1}, "k": 1},
                           "source": ["# Start ", "here: café\n", "| # | lesson | answers |\n",
                                      "| 01 | [l](notebooks/01.ipynb) | [solved](solutions/01.ipynb) |"]},
                          {"cell_type": "code", "metadata": {"execution": {"t": 2}}, "source": "print(1)",
                           "outputs": [], "execution_count": None}],
                "metadata": {"kernelspec": {"name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
    (root / "START_HERE.ipynb").write_text(json.dumps(notebook))
    for name in ("notebooks", "exercises", "figures", "pgcourse", "solutions", "tests", "tools", "docs"):
        (root / name).mkdir()
        (root / name / "kept.txt").write_text(name)
    for junk in ("__pycache__", ".ipynb_checkpoints", "runs", "pgcourse.egg-info", ".pytest_cache"):
        (root / "pgcourse" / junk).mkdir()
        (root / "pgcourse" / junk / "x").write_text("x")
    (root / "pgcourse" / "m.pyc").write_bytes(b"\0")
    (root / "notebooks" / "link.ipynb").symlink_to("kept.txt")
    for name in ("pyproject.toml", "Makefile", "environment.yml", "LICENSE", "README.md", "setup.cfg"):
        (root / name).write_text(f"{name}\n")
    return root


def test_a_handout_holds_the_course_without_solutions_and_says_what_it_wrote(tmp_path):
    """write_handout copies the four folders (without the skipped entries, links as links) and the four files,
    writes START_HERE without its solutions column and the class's README, and returns the paths at the handout's
    top: the folders, the files, START_HERE, README.md, in that order. solutions/, tests/, tools/, docs/ and the
    repository's README stay out."""
    root = make_course(tmp_path / "course")
    target = tmp_path / "class" / "handout"
    written = handout.write_handout(target, root)
    names = ["notebooks", "exercises", "figures", "pgcourse", "pyproject.toml", "Makefile", "environment.yml",
             "LICENSE", "START_HERE.ipynb", "README.md"]
    assert written == [target / name for name in names]
    assert sorted(p.name for p in target.iterdir()) == sorted(names)
    assert sorted(p.name for p in (target / "pgcourse").iterdir()) == ["kept.txt"]
    assert (target / "notebooks" / "link.ipynb").is_symlink()
    assert os.readlink(target / "notebooks" / "link.ipynb") == "kept.txt"
    assert (target / "LICENSE").read_text() == "LICENSE\n"
    assert (target / "README.md").read_text(encoding="utf-8") == handout.README
    text = (target / "START_HERE.ipynb").read_text(encoding="utf-8")
    assert text.endswith("}\n") and "café" in text and '\n "cells": [' in text  # indent 1, unicode as is
    start = json.loads(text)
    assert start["cells"][0]["source"] == "# Start here: café\n| # | lesson |\n| 01 | [l](notebooks/01.ipynb) |"
    assert start["cells"][0]["metadata"] == {"k": 1} and start["cells"][1]["metadata"] == {"execution": {"t": 2}}
    assert start["metadata"] == {"kernelspec": {"name": "python3"}}


def test_a_handout_skips_a_folder_or_file_the_course_lacks(tmp_path):
    """A course without figures/ or a LICENSE gives a handout without them (and does not list them)."""
    root = make_course(tmp_path / "course")
    (root / "figures" / "kept.txt").unlink()
    (root / "figures").rmdir()
    (root / "LICENSE").unlink()
    (root / "Makefile").unlink()
    (root / "Makefile").mkdir()  # a folder where a file is expected is not copied as the file
    written = handout.write_handout(tmp_path / "h", root)
    assert [p.name for p in written] == ["notebooks", "exercises", "pgcourse", "pyproject.toml", "environment.yml",
                                         "START_HERE.ipynb", "README.md"]


def test_a_handout_refused_for_its_start_here_writes_nothing(tmp_path):
    """A START_HERE that still mentions the solutions after rewriting: HandoutError and no folder made."""
    root = make_course(tmp_path / "course")
    notebook = json.loads((root / "START_HERE.ipynb").read_text())
    notebook["cells"][1]["source"] = "open('solutions/01.ipynb')"
    (root / "START_HERE.ipynb").write_text(json.dumps(notebook))
    with pytest.raises(HandoutError, match="still mentions the solutions"):
        handout.write_handout(tmp_path / "h", root)
    assert not (tmp_path / "h").exists()


def test_a_handout_into_a_folder_that_holds_something_writes_nothing(tmp_path):
    """A target that holds anything is refused before anything is written."""
    root = make_course(tmp_path / "course")
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "README.md").write_text("mine")
    with pytest.raises(HandoutError, match="not empty"):
        handout.write_handout(tmp_path / "h", root)
    assert [p.name for p in (tmp_path / "h").iterdir()] == ["README.md"]


def course_skeleton(folder: Path, start_here=True, exercises=True, notebooks=True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if start_here:
        (folder / "START_HERE.ipynb").write_text("{}")
    if exercises:
        (folder / "exercises").mkdir()
    if notebooks:
        (folder / "notebooks").mkdir()
    return folder


def test_the_course_given_is_the_course_resolved(tmp_path, monkeypatch):
    """``course_root(start)`` is ``start`` (resolved to an absolute path) when it holds START_HERE.ipynb,
    exercises/ and notebooks/."""
    course_skeleton(tmp_path / "c")
    monkeypatch.chdir(tmp_path)
    assert handout.course_root("c") == (tmp_path / "c").resolve()
    assert handout.course_root(Path("c") / ".." / "c") == (tmp_path / "c").resolve()
    assert handout.course_root("c").is_absolute()


@pytest.mark.parametrize("missing", ["start_here", "exercises", "notebooks"])
def test_a_course_lacking_any_of_its_three_parts_is_no_course(tmp_path, monkeypatch, missing):
    """A folder is a course only with all three of START_HERE.ipynb (a file), exercises/ and notebooks/ (folders);
    given one that lacks any, the error names it and says to pass --course (the current folder is not tried)."""
    given = course_skeleton(tmp_path / "c", **{missing: False})
    monkeypatch.chdir(course_skeleton(tmp_path / "cwd"))
    with pytest.raises(HandoutError) as error:
        handout.course_root(given)
    assert str(error.value) == (f"no course in {given} (a folder with START_HERE.ipynb, exercises/ and notebooks/); "
                                "pass --course DIR")


@pytest.mark.parametrize("swap", ["start_here", "exercises", "notebooks"])
def test_a_course_part_of_the_wrong_kind_does_not_count(tmp_path, swap):
    """START_HERE.ipynb must be a file, exercises/ and notebooks/ folders: the other kind of entry is no part."""
    folder = course_skeleton(tmp_path / "c", **{swap: False})
    if swap == "start_here":
        (folder / "START_HERE.ipynb").mkdir()
    else:
        (folder / swap).write_text("x")
    with pytest.raises(HandoutError, match="no course in"):
        handout.course_root(folder)


def test_without_a_course_given_the_current_folder_then_its_parents_are_searched(tmp_path, monkeypatch):
    """No ``start``: the current folder is the course if it is one, else the nearest parent that is one."""
    outer = course_skeleton(tmp_path / "outer")
    inner = course_skeleton(outer / "notebooks" / "inner")
    deep = inner / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert handout.course_root() == inner.resolve()
    monkeypatch.chdir(inner)
    assert handout.course_root(None) == inner.resolve()
    monkeypatch.chdir(outer / "exercises")
    assert handout.course_root() == outer.resolve()


def test_without_a_course_around_the_packages_own_repository_is_the_course(tmp_path, monkeypatch):
    """No course in the current folder or its parents: the repository holding the package (two folders above
    ``pgcourse/classroom/``) is the course if it is one; else an error that names the three places tried."""
    repo = course_skeleton(tmp_path / "repo")
    monkeypatch.setattr(handout, "__file__", str(repo / "pgcourse" / "classroom" / "handout.py"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert handout.course_root() == repo.resolve()
    (repo / "START_HERE.ipynb").unlink()
    with pytest.raises(HandoutError) as error:
        handout.course_root()
    assert str(error.value).startswith("no course in this folder, its parents or pgcourse's own repository (a "
                                       "folder with START_HERE.ipynb")


def test_a_target_that_is_a_file_is_refused(tmp_path):
    """A target that exists and is not a folder (a file) is refused, naming it."""
    target = tmp_path / "h"
    target.write_text("x")
    with pytest.raises(HandoutError, match=f"^{target} exists and is not a folder: give a new or empty folder$"):
        handout.check_target(target, tmp_path / "course")


def test_a_new_or_empty_target_outside_the_course_is_accepted(tmp_path):
    """A target that does not exist yet, or is an empty folder, outside the course's folders, is accepted."""
    root = tmp_path / "course"
    handout.check_target(tmp_path / "new" / "deeper", root)
    (tmp_path / "empty").mkdir()
    handout.check_target(tmp_path / "empty", root)


def test_a_target_holding_one_entry_is_refused(tmp_path):
    """A target folder holding anything, one empty file is enough, is refused, saying nothing is overwritten."""
    target = tmp_path / "h"
    target.mkdir()
    (target / "a").write_text("")
    with pytest.raises(HandoutError, match=f"^{target} is not empty: .*nothing of yours is overwritten"):
        handout.check_target(target, tmp_path / "course")


@pytest.mark.parametrize("name", ["notebooks", "exercises", "figures", "pgcourse", "solutions"])
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_a_target_inside_a_copied_course_folder_or_solutions_is_refused(tmp_path, name, depth):
    """The handout may not be written into a folder it copies, or into solutions/: the folder itself or anything
    below it is refused, naming the folder."""
    root = tmp_path / "course"
    target = root / name / Path(*["sub"] * depth) if depth else root / name
    with pytest.raises(HandoutError, match=f"^{target} is inside the course's {name}/: give a folder outside it$"):
        handout.check_target(target, root)


@pytest.mark.parametrize("relative", ["handout", "notebooks2", "notebooks-handout", "docs/handout", "tests",
                                      "Notebooks_x"])
def test_a_target_beside_the_course_folders_is_accepted(tmp_path, relative):
    """A folder of the course that is not copied (docs/, tests/), or whose name merely begins like a copied one, is
    a valid target: the test is on whole folders, not on the name's text."""
    root = tmp_path / "course"
    handout.check_target(root / relative, root)


def test_a_target_reached_through_dots_is_judged_where_it_leads(tmp_path, monkeypatch):
    """The target is judged by where it leads (resolved): ``x/../notebooks`` is the course's notebooks/."""
    root = tmp_path / "course"
    (root / "x").mkdir(parents=True)
    with pytest.raises(HandoutError, match="inside the course's notebooks/"):
        handout.check_target(root / "x" / ".." / "notebooks" / "h", root)
    monkeypatch.chdir(root)
    with pytest.raises(HandoutError, match="inside the course's solutions/"):
        handout.check_target(Path("solutions"), root)


def start_here(*sources, cell_type="markdown") -> dict:
    return {"cells": [{"cell_type": cell_type, "metadata": {}, "source": s} for s in sources]}


def rewritten(*sources) -> list[str]:
    return [cell["source"] for cell in handout.start_here_without_solutions(start_here(*sources))["cells"]]


def test_the_start_heres_real_sentences_about_solutions_are_rewritten():
    """START_HERE's three sentences about solutions/ (the solved notebook in the last column, the README's API and
    where the exercises come from) are said without them, also where a sentence breaks across lines."""
    stuck = ('3. **Stuck?** First ask for a hint: `pg.hint("function_name")` (up to three). Still stuck? The solved '
             'notebook\n   is linked in the last column.')
    readme = "(`import pgcourse as pg`). The [README](README.md) shows its API and the command line."
    where = ("- `notebooks/`: the lessons. `exercises/`: your notebooks, made from `solutions/` by `pgcourse exercises`"
             "\n  (a teachers' command: it keeps a copy of a notebook holding your answers in `exercises/your-work/`\n"
             "  before it replaces it; teachers edit the solutions, never the exercises). Runs go to `runs/`.")
    assert rewritten(stuck, readme, where) == [
        '3. **Stuck?** Each exercise says how to ask for a hint: `pg.hint("name")`, then `level=2` and `level=3`.',
        "(`import pgcourse as pg`). The [README](README.md) says how to set it up.",
        "- `notebooks/`: the lessons. `exercises/`: your notebooks, to hand in when they are graded. Runs go to "
        "`runs/`."]
    for other_break in ("notebook\nis", "notebook  \n\t is"):
        assert rewritten(stuck.replace("notebook\n   is", other_break)) == [rewritten(stuck)[0]]


def test_the_repositorys_start_here_makes_a_handout_start_here():
    """The course's own START_HERE.ipynb is rewritten without a mention of solutions left (its table loses the
    solutions column)."""
    path = Path(__file__).resolve().parents[1] / "START_HERE.ipynb"
    if not path.is_file():
        pytest.skip("no START_HERE.ipynb beside the tests")
    notebook = handout.start_here_without_solutions(json.loads(path.read_text(encoding="utf-8")))
    table = [line for cell in notebook["cells"] for line in cell["source"].split("\n") if line.startswith("| 01 |")]
    assert len(table) == 1 and table[0].count("|") == 4 and "exercises/01_reinforce.ipynb" in table[0]


@pytest.mark.parametrize("line, expected", [("| a | b | c |", "| a | b |"), ("| a | b | c", "| a | b |"),
                                            ("| a | b | c |   ", "| a | b |"), ("|---|---|---|", "|---|---|"),
                                            ("| a |", "|"), ("| é | [s](solutions/x) |", "| é |"),
                                            ("|a|b| |", "|a|b|")])
def test_dropping_a_rows_last_column(line, expected):
    """A table row loses its last cell, whether or not it ends with a pipe (trailing blanks ignored), and ends
    with a pipe."""
    assert handout._drop_last_column(line) == expected


def test_only_the_table_that_links_solutions_loses_a_column():
    """The last column is dropped from the rows (lines starting with a pipe) of a cell whose table has a row
    linking solutions/; another cell's table is kept whole, and so are a cell's lines that are not rows."""
    with_links = "Text | with a pipe\n| a | b |\n| [x](notebooks/x) | [s](solutions/x) |\n  | indented | row |"
    other = "| a | b |\n| 1 | 2 |"
    assert rewritten(with_links, other) == ["Text | with a pipe\n| a |\n| [x](notebooks/x) |\n  | indented | row |",
                                            other]


def test_a_header_naming_solutions_without_a_slash_is_no_solutions_table():
    """A table is the solutions' table by a row linking ``solutions/``; a table that only says "solutions" is
    kept whole."""
    assert rewritten("| a | solutions |\n| 1 | 2 |") == ["| a | solutions |\n| 1 | 2 |"]


def test_a_cells_source_given_as_a_list_is_joined_and_written_back_as_text():
    """A markdown cell's source given as a list of lines is read joined and written back as one string; a code
    cell's source is left as it was."""
    notebook = start_here(["a\n", "b"])
    notebook["cells"].append({"cell_type": "code", "metadata": {"execution": {"t": 1}}, "source": ["x\n", "y"]})
    out = handout.start_here_without_solutions(notebook)
    assert out["cells"][0]["source"] == "a\nb"
    assert out["cells"][1] == {"cell_type": "code", "metadata": {"execution": {"t": 1}}, "source": ["x\n", "y"]}


def test_a_markdown_cells_execution_metadata_goes_and_the_rest_stays():
    """A markdown cell loses its ``execution`` timestamps and keeps its other metadata; a cell without metadata
    is fine."""
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {"execution": 1, "tags": ["t"]}, "source": "a"},
                          {"cell_type": "markdown", "source": "b"}]}
    out = handout.start_here_without_solutions(notebook)
    assert out["cells"][0]["metadata"] == {"tags": ["t"]} and "metadata" not in out["cells"][1]


def test_only_markdown_cells_are_rewritten():
    """Only markdown cells are rewritten: a raw cell's table and metadata are kept as they were."""
    raw = {"cell_type": "raw", "metadata": {"execution": 1}, "source": "| a | b |\n| [x](notebooks/x) | c |"}
    notebook = {"cells": [raw, {"cell_type": "markdown", "metadata": {}, "source": "| x | [s](solutions/s) |"}]}
    out = handout.start_here_without_solutions(notebook)
    assert out["cells"][0] == {"cell_type": "raw", "metadata": {"execution": 1},
                               "source": "| a | b |\n| [x](notebooks/x) | c |"}
    assert out["cells"][1]["source"] == "| x |"


def test_a_notebook_without_cells_is_returned_as_it_is():
    """A notebook without cells has nothing to rewrite."""
    assert handout.start_here_without_solutions({"metadata": {"a": 1}}) == {"metadata": {"a": 1}}


@pytest.mark.parametrize("leak", ["see solutions/01.ipynb", "the solution/ folder", "The solved notebook.",
                                  "solved", "[x](../solutions/x)", "(solved)"])
@pytest.mark.parametrize("cell_type", ["markdown", "code"])
def test_a_mention_of_solutions_left_after_rewriting_is_refused_naming_it(leak, cell_type):
    """After rewriting, a line of any cell that mentions ``solution/``, ``solutions/`` or the word ``solved`` is an
    error quoting the (stripped) line and pointing at REWRITES."""
    with pytest.raises(HandoutError) as error:
        handout.start_here_without_solutions(start_here("fine", f"  {leak}  ", cell_type=cell_type))
    message = str(error.value)
    assert message.startswith(f"START_HERE.ipynb still mentions the solutions after rewriting ({leak!r})")
    assert message.endswith("edit pgcourse/classroom/handout.py's REWRITES to say it without them")


def test_the_quoted_leak_is_the_first_one_cut_at_80_characters():
    """The error quotes the first line left that mentions solutions, stripped and cut to 80 characters."""
    long = "x" * 90 + " solutions/"
    with pytest.raises(HandoutError) as error:
        handout.start_here_without_solutions(start_here("a", f" {long}", "solved"))
    assert f"({('x' * 80)!r})" in str(error.value)


@pytest.mark.parametrize("text", ["unsolved", "resolved", "solvedness", "solution", "solutions", "Solutions folder",
                                  "a solutions-manual", "dissolved/"])
def test_words_that_only_resemble_a_mention_of_solutions_are_kept(text):
    """Only ``solution/``, ``solutions/`` and the whole word ``solved`` count as a mention: other words (unsolved,
    resolved, solution without a slash) are kept."""
    assert rewritten(text) == [text]


# =====================================================================================================================
# hunts: drawing the mysteries, the key
# =====================================================================================================================
def test_the_trainers_settings_are_the_same_for_every_student():
    """Trainers 1-3 are PPO on CartPole-v1 cut at 100 steps, 12,000 steps; trainer 4 is A2C and 5-6 PPO on
    Pendulum-v1 for 20,480 steps with log_std_init 0.5; every trainer has an entropy bonus of 0.01. 24 draws per
    trainer; the history kept is env_step then the evidence columns."""
    cartpole = dict(algo="ppo", env_id="CartPole-v1", env_kwargs={"max_episode_steps": 100}, total_steps=12_000,
                    ent_coef=0.01)
    pendulum = dict(env_id="Pendulum-v1", total_steps=20_480, log_std_init=0.5, ent_coef=0.01)
    assert hunts.TRAINER_SETTINGS == {1: cartpole, 2: cartpole, 3: cartpole, 4: {"algo": "a2c", **pendulum},
                                      5: {"algo": "ppo", **pendulum}, 6: {"algo": "ppo", **pendulum}}
    assert sorted(hunts.TRAINER_SETTINGS) == list(MYSTERIES)
    assert hunts.ATTEMPTS == 24
    from pgcourse.course.debugging.evidence import COLUMNS
    assert hunts.HISTORY_COLUMNS == ("env_step", *COLUMNS)


def test_a_trainers_candidate_bugs_are_its_algorithms_traps_outside_the_settings_and_fit_for_its_actions(monkeypatch):
    """A trainer may hold a trap of its own algorithm, in the registry's order, unless the trap lives in the settings
    (a preset) or needs continuous actions and the trainer runs CartPole."""
    traps = {"both": (("a2c", "ppo"), None), "ppo_only": (("ppo",), None), "a2c_only": (("a2c",), None),
             "preset": (("ppo", "a2c"), None), "box": (("ppo",), None), "reinforce": (("reinforce",), None)}
    monkeypatch.setattr(hunts, "TRAPS", traps)
    monkeypatch.setattr(hunts, "PRESETS", {"preset": {"lr": 1.0}})
    monkeypatch.setattr(hunts, "BOX_ONLY", ("box",))
    assert hunts.candidates({"algo": "ppo", "env_id": "CartPole-v1"}) == ["both", "ppo_only"]
    assert hunts.candidates({"algo": "ppo", "env_id": "Pendulum-v1"}) == ["both", "ppo_only", "box"]
    assert hunts.candidates({"algo": "a2c", "env_id": "Pendulum-v1"}) == ["both", "a2c_only"]
    assert hunts.candidates({"algo": "PPO", "env_id": "Pendulum-v1"}) == []
    assert hunts.candidates({"algo": "ppo", "env_id": "cartpole-v1"}) == ["both", "ppo_only", "box"]  # exact id


def test_the_real_trainers_candidates_hold_no_preset_and_no_box_only_bug_on_cartpole():
    """With the real registry: no trainer's candidates include a preset; CartPole's include no box-only bug,
    Pendulum's PPO does include one; each candidate is a trap of the trainer's algorithm."""
    from pgcourse.rl.planted import BOX_ONLY, PRESETS, TRAPS
    for k, settings in hunts.TRAINER_SETTINGS.items():
        found = hunts.candidates(settings)
        assert found and not set(found) & set(PRESETS), k
        assert all(settings["algo"] in TRAPS[name][0] for name in found)
        assert bool(set(found) & set(BOX_ONLY)) == (settings["env_id"] != "CartPole-v1"), k


def stream_value(secret: str, student: str, k: int) -> random.Random:
    return random.Random(int.from_bytes(hmac.new(bytes.fromhex(secret), f"{student}/{k}".encode(),
                                                 hashlib.sha256).digest(), "big"))


def test_a_students_draw_stream_is_the_hmac_of_student_and_trainer_under_the_secret():
    """Trainer k's draws for a student come from a generator seeded by HMAC-SHA256(secret, "<student>/<k>") read
    big-endian: a function of the secret, the student and the trainer only."""
    secret = "ab" * 32
    for student, k in (("ann", 1), ("ann", 2), ("Carol Diaz_1234", 6), ("é", 3)):
        assert hunts._stream(secret, student, k).random() == stream_value(secret, student, k).random()
    assert hunts._stream(secret, "ann", 1).random() != hunts._stream("cd" * 32, "ann", 1).random()


def test_a_trainer_runs_the_course_trainer_on_cpu_with_its_settings_and_at_most_its_one_bug(monkeypatch):
    """A hunt run is ``pg.train(algo, env_id, seed, device="cpu", progress=False, traps=(bug,) or (), **rest of the
    settings)``; the settings given are not changed."""
    calls = []
    monkeypatch.setattr(hunts, "train", lambda *args, **kwargs: calls.append((args, kwargs)) or "run")
    settings = {"algo": "ppo", "env_id": "CartPole-v1", "total_steps": 7, "env_kwargs": {"max_episode_steps": 3}}
    before = json.dumps(settings)
    assert hunts._train(settings, 5, "missing_detach") == "run"
    assert hunts._train(settings, 6, None) == "run"
    assert hunts._train(settings, 0, "") == "run"
    rest = {"total_steps": 7, "env_kwargs": {"max_episode_steps": 3}}
    assert calls == [(("ppo", "CartPole-v1"), dict(seed=5, device="cpu", progress=False, traps=("missing_detach",),
                                                   **rest)),
                     (("ppo", "CartPole-v1"), dict(seed=6, device="cpu", progress=False, traps=(), **rest)),
                     (("ppo", "CartPole-v1"), dict(seed=0, device="cpu", progress=False, traps=(), **rest))]
    assert json.dumps(settings) == before


def test_a_draw_is_sound_when_no_first_lead_names_it_and_it_parts_from_its_twin_in_a_signal_it_acts_on(monkeypatch):
    """``sound`` refuses a run whose diagnosis's first lead (of the mystery, not of the twin) names its bug; else
    it compares the mystery's update history with its twin's in the columns of the signals the bug can be told by
    (a signal with no columns adds none) and refuses it if they never part; else None."""
    seen = {}
    lead, parting = [None], [(3, ["entropy"])]
    monkeypatch.setattr(hunts, "first_lead", lambda run: lead[0] if run is mystery else "twin's lead")
    monkeypatch.setattr(hunts, "answerable_signals", lambda trap, settings: seen.setdefault("signals", (trap, settings))
                        and ["entropy", "no such signal", "grad norms"])

    def first_parting(mystery, twin, columns):
        seen["parting"] = (mystery, twin, columns)
        return parting[0]
    monkeypatch.setattr(hunts, "first_parting", first_parting)
    mystery = SimpleNamespace(history=SimpleNamespace(updates="mystery updates"))
    twin = SimpleNamespace(history=SimpleNamespace(updates="twin updates"))
    settings = {"algo": "ppo"}
    assert hunts.sound("bug", settings, mystery, twin) is None
    assert seen["signals"] == ("bug", settings)
    assert seen["parting"] == ("mystery updates", "twin updates", ("entropy", "actor_grad_norm", "critic_grad_norm"))
    parting[0] = None
    assert hunts.sound("bug", settings, mystery, twin) == "it never parts from its twin in a signal it acts on"
    lead[0] = "bug"
    assert hunts.sound("bug", settings, mystery, twin) == "pg.diagnose's first lead names it"
    assert hunts.sound("twin's lead", settings, mystery, twin) == "it never parts from its twin in a signal it acts on"
    lead[0], parting[0] = "another_bug", (1, ["x"])
    assert hunts.sound("bug", settings, mystery, twin) is None


def history_with(rows: int, wall: float = 1.5, solved=None) -> History:
    history = History()
    for i in range(rows):
        history.updates.append(**{c: float(i + 1) for c in history.updates.fields})
        history.episodes.append(**{c: float(i + 2) for c in history.episodes.fields})
    history.evals.append(env_step=1.0, wall_time=wall, mean=2.0, std=0.5)
    history.solved_at = solved
    return history


@dataclasses.dataclass
class FakeConfig:
    algo: str
    env_id: str
    seed: int
    traps: tuple = ()
    lr: float = 3e-4


class FakeRun:
    """A run as a hunt needs one: a config, a history, a training state and ``save``."""

    def __init__(self, settings, seed, trap):
        self.config = FakeConfig(settings["algo"], settings["env_id"], seed, (trap,) if trap else ())
        self.history = history_with(2)
        shift = 0.0 if trap is None else 0.25
        self.history.updates = Table(self.history.updates.fields,
                                     {c: [seed % 1000 + i + shift for i in range(2)]
                                      for c in self.history.updates.fields})
        self.training_state = self.saved_training_state = {"resumable": True}

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        (folder / "history.json").write_text(json.dumps({
            "config": dataclasses.asdict(self.config), "state": self.training_state,
            "saved_state": self.saved_training_state,
            "tables": {name: table.to_dict() for name, table in vars(self.history).items() if isinstance(table, Table)},
            "solved_at": self.history.solved_at}))


def test_a_published_run_withholds_seed_bug_state_and_every_clock():
    """A run as published has the withheld seed and no bug in its config (the rest of the config kept), no training
    state, zero wall time in every table that has a wall_time column (every other column and table as it was) and,
    if it was solved, a solved_at with zero wall time."""
    run = FakeRun({"algo": "ppo", "env_id": "CartPole-v1"}, 12, "missing_detach")
    run.history = history_with(3, solved={"env_step": 9.0, "wall_time": 4.5, "mean": 500.0})
    run.history.extra = Table(("wall_time", "x"), {"wall_time": [3.0], "x": [7.0]})
    run.history.plain = Table(("x",), {"x": [1.0]})
    run.history.note = {"wall_time": [5.0]}  # not a table: left alone
    before = {name: t.to_dict() for name, t in vars(run.history).items() if isinstance(t, Table)}
    assert hunts._withheld(run) is run
    assert run.config == FakeConfig("ppo", "CartPole-v1", WITHHELD_SEED, (), 3e-4)
    assert run.training_state is None and run.saved_training_state is None
    for name, table in vars(run.history).items():
        if not isinstance(table, Table):
            continue
        after = table.to_dict()
        if "wall_time" in table.fields:
            assert after["wall_time"] == [0.0] * len(before[name]["wall_time"]), name
        assert {c: v for c, v in after.items() if c != "wall_time"} == \
            {c: v for c, v in before[name].items() if c != "wall_time"}, name
        assert table.fields == tuple(before[name]), name
    assert run.history.note == {"wall_time": [5.0]}
    assert run.history.solved_at == {"env_step": 9.0, "wall_time": 0.0, "mean": 500.0}
    unsolved = FakeRun({"algo": "ppo", "env_id": "CartPole-v1"}, 1, None)
    assert hunts._withheld(unsolved).history.solved_at is None


def test_a_runs_key_history_is_its_update_columns_as_floats():
    """The key keeps, for each of HISTORY_COLUMNS in order, the run's update column as a list of Python floats."""
    run = FakeRun({"algo": "ppo", "env_id": "CartPole-v1"}, 40, None)
    history = hunts._history(run)
    assert list(history) == list(hunts.HISTORY_COLUMNS)
    assert all(history[c] == [40.0, 41.0] and all(type(x) is float for x in history[c]) for c in history)


def test_a_runs_digest_is_the_sha256_of_its_history_file(tmp_path):
    """A saved run's digest is the hex SHA-256 of its history.json."""
    (tmp_path / "history.json").write_bytes(b'{"a": 1}')
    assert hunts._digest(tmp_path) == hashlib.sha256(b'{"a": 1}').hexdigest()


SECRET = "5e" * 32
THREE = ["c_bug", "a_bug", "b_bug"]


def expected_draws(student: str, bugs: list[str]) -> dict[int, tuple[str, int]]:
    """Every draw sound: trainer k draws ``choice(sorted(unused bugs of its kind, else all))`` then a seed below
    2**31 from its stream."""
    used: dict[str, set] = {}
    draws = {}
    for k in MYSTERIES:
        spec = hunts.TRAINER_SETTINGS[k]
        kind = f"{spec['algo']}/{spec['env_id']}"
        rng = stream_value(SECRET, student, k)
        pool = [b for b in bugs if b not in used.get(kind, set())] or bugs
        trap = rng.choice(sorted(pool))
        draws[k] = (trap, rng.randrange(2**31))
        used.setdefault(kind, set()).add(trap)
    return draws


@pytest.fixture
def fake_training(monkeypatch):
    """Hunts drawn from THREE bugs, trained as FakeRuns; every draw sound unless ``refuse`` names it."""
    trained, refuse = [], set()
    monkeypatch.setattr(hunts, "candidates", lambda settings: list(THREE))

    def train(settings, seed, trap):
        trained.append((settings["algo"], settings["env_id"], seed, trap))
        return FakeRun(settings, seed, trap)
    monkeypatch.setattr(hunts, "_train", train)
    monkeypatch.setattr(hunts, "sound", lambda trap, settings, mystery, twin: f"refused {trap}" if trap in refuse
                        else None)
    return SimpleNamespace(trained=trained, refuse=refuse)


def test_a_students_hunt_draws_each_trainers_bug_and_seed_from_its_stream(tmp_path, fake_training):
    """Each trainer's bug is drawn from the sorted candidates its student does not have yet in that kind of run,
    then its seed below 2**31; mystery and twin train with that seed, the twin without the bug."""
    entry = hunts.make_student_hunt("ann", SECRET, tmp_path / "ann")
    draws = expected_draws("ann", THREE)
    assert {int(k): (e["trap"], e["seed"]) for k, e in entry.items()} == draws
    assert list(entry) == [str(k) for k in MYSTERIES]
    pairs = [(a, e, s, t) for k in MYSTERIES for (t0, s) in [draws[k]]
             for (a, e) in [(hunts.TRAINER_SETTINGS[k]["algo"], hunts.TRAINER_SETTINGS[k]["env_id"])]
             for t in (t0, None)]
    assert fake_training.trained == pairs
    assert expected_draws("bob", THREE) != draws  # another student, other draws


def test_a_bug_repeats_in_a_kind_only_once_every_bug_of_the_kind_is_used(tmp_path, fake_training, monkeypatch):
    """With two bugs and three CartPole trainers, the first two draw both bugs and the third draws from both again
    (no failure), by the same streams."""
    monkeypatch.setattr(hunts, "candidates", lambda settings: ["b_bug", "a_bug"])
    entry = hunts.make_student_hunt("ann", SECRET, tmp_path / "ann")
    assert {int(k): (e["trap"], e["seed"]) for k, e in entry.items()} == expected_draws("ann", ["b_bug", "a_bug"])
    assert {entry["1"]["trap"], entry["2"]["trap"]} == {"a_bug", "b_bug"}


def test_a_students_key_entry_holds_bug_seed_settings_and_both_histories(tmp_path, fake_training):
    """A trainer's key entry is its bug, its seed, the mystery's full config with the seed, and the mystery's and
    the twin's update histories (the bug's, before withholding)."""
    entry = hunts.make_student_hunt("ann", SECRET, tmp_path / "ann")
    for k in MYSTERIES:
        trap, seed = entry[str(k)]["trap"], entry[str(k)]["seed"]
        spec = hunts.TRAINER_SETTINGS[k]
        assert entry[str(k)]["settings"] == {"algo": spec["algo"], "env_id": spec["env_id"], "seed": seed,
                                             "traps": (trap,), "lr": 3e-4}
        assert entry[str(k)]["history"] == {c: [seed % 1000 + 0.25, seed % 1000 + 1.25] for c in hunts.HISTORY_COLUMNS}
        assert entry[str(k)]["twin_history"] == {c: [seed % 1000 + 0.0, seed % 1000 + 1.0]
                                                 for c in hunts.HISTORY_COLUMNS}


def test_a_students_hunt_folder_holds_withheld_runs_twins_and_its_about_file(tmp_path, fake_training):
    """The folder holds the mysteries 1-6 and their twins twins/1-6, saved withheld (no seed, no bug, no state),
    and hunt.json: the format, the student, today's date, each trainer's "ALGO on env", seeds withheld, bugs in
    the key, and each trainer's pair of history digests; no staging folder is left beside it."""
    folder = tmp_path / "ann"
    hunts.make_student_hunt("ann", SECRET, folder)
    assert sorted(p.name for p in folder.iterdir()) == ["1", "2", "3", "4", "5", "6", "hunt.json", "twins"]
    assert sorted(p.name for p in (folder / "twins").iterdir()) == ["1", "2", "3", "4", "5", "6"]
    for k in MYSTERIES:
        for run in (folder / str(k), folder / "twins" / str(k)):
            saved = json.loads((run / "history.json").read_text())
            assert saved["config"]["seed"] == WITHHELD_SEED and saved["config"]["traps"] == []
            assert saved["state"] is None and saved["saved_state"] is None
            assert set(saved["tables"]["updates"]["wall_time"]) == {0.0}
    about_text = (folder / "hunt.json").read_text()
    assert about_text.endswith("}\n") and about_text.startswith('{\n "format"')
    about = json.loads(about_text)
    digest = lambda path: hashlib.sha256((path / "history.json").read_bytes()).hexdigest()  # noqa: E731
    assert about == {"format": HUNT_FORMAT, "student": "ann", "made": real_datetime.date.today().isoformat(),
                     "trainers": {"1": "PPO on CartPole-v1", "2": "PPO on CartPole-v1", "3": "PPO on CartPole-v1",
                                  "4": "A2C on Pendulum-v1", "5": "PPO on Pendulum-v1", "6": "PPO on Pendulum-v1"},
                     "seeds": "withheld", "bugs": "in your teacher's key only",
                     "histories": {str(k): [digest(folder / str(k)), digest(folder / "twins" / str(k))]
                                   for k in MYSTERIES}}
    assert [p.name for p in tmp_path.iterdir()] == ["ann"]


def test_a_stale_staging_folder_is_replaced(tmp_path, fake_training):
    """A staging folder left by an interrupted run (``.<student>.partial``) is removed first: nothing of it reaches
    the hunt."""
    stale = tmp_path / ".ann.partial"
    (stale / "junk").mkdir(parents=True)
    hunts.make_student_hunt("ann", SECRET, tmp_path / "ann")
    assert not stale.exists() and not (tmp_path / "ann" / "junk").exists()


def test_a_refused_draw_draws_again_from_the_same_stream(tmp_path, fake_training):
    """A draw whose run is not sound is drawn again (next bug and seed from the same stream); the bug kept is a
    sound one."""
    fake_training.refuse.add("a_bug")
    entry = hunts.make_student_hunt("ann", SECRET, tmp_path / "ann")
    assert all(e["trap"] != "a_bug" for e in entry.values())
    rng = stream_value(SECRET, "ann", 1)
    draws = []
    while True:
        trap, seed = rng.choice(sorted(THREE)), rng.randrange(2**31)
        draws.append((trap, seed))
        if trap != "a_bug":
            break
    assert (entry["1"]["trap"], entry["1"]["seed"]) == draws[-1]
    assert [(t, s) for (_, _, s, t) in fake_training.trained[:2 * len(draws):2]] == draws


def test_a_trainer_with_every_bug_refused_twice_fails_naming_the_student_and_its_last_reasons(tmp_path,
                                                                                               fake_training):
    """Every bug refused twice leaves nothing to draw: a RuntimeError naming the student, the trainer, the number
    of draws (2 per bug) and the last three reasons; no folder is written."""
    fake_training.refuse.update(THREE)
    with pytest.raises(RuntimeError) as error:
        hunts.make_student_hunt("ann", SECRET, tmp_path / "ann")
    reasons = [f"refused {trap}" for (_, _, _, trap) in fake_training.trained[::2]]
    assert str(error.value) == f"student 'ann', trainer 1: no sound run in 6 draws ({reasons[-3:]})"
    assert sorted(reasons) == sorted(f"refused {bug}" for bug in THREE for _ in range(2))
    assert len(fake_training.trained) == 12 and list(tmp_path.iterdir()) == []


def test_a_trainer_gives_up_after_attempts_draws(tmp_path, fake_training, monkeypatch):
    """With more bugs than ATTEMPTS/2, drawing stops after ATTEMPTS (24) refused draws."""
    bugs = [f"bug{i:02d}" for i in range(20)]
    monkeypatch.setattr(hunts, "candidates", lambda settings: list(bugs))
    fake_training.refuse.update(bugs)
    with pytest.raises(RuntimeError, match=r"^student 'ann', trainer 1: no sound run in 24 draws"):
        hunts.make_student_hunt("ann", SECRET, tmp_path / "ann")
    assert len(fake_training.trained) == 2 * 24


def test_a_trainer_without_candidates_fails_without_training(tmp_path, fake_training, monkeypatch):
    """A trainer with no candidate bug at all fails at once (0 draws), training nothing."""
    monkeypatch.setattr(hunts, "candidates", lambda settings: [])
    with pytest.raises(RuntimeError, match=r"^student 'bo', trainer 1: no sound run in 0 draws \(\[\]\)$"):
        hunts.make_student_hunt("bo", SECRET, tmp_path / "bo")
    assert fake_training.trained == []


def test_a_hunt_may_be_made_with_other_settings(tmp_path, fake_training):
    """``settings`` replaces TRAINER_SETTINGS (for every trainer and in hunt.json)."""
    mine = {k: {"algo": "a2c", "env_id": "Acrobot-v1"} for k in MYSTERIES}
    hunts.make_student_hunt("ann", SECRET, tmp_path / "ann", settings=mine)
    assert {(a, e) for a, e, _, _ in fake_training.trained} == {("a2c", "Acrobot-v1")}
    about = json.loads((tmp_path / "ann" / "hunt.json").read_text())
    assert set(about["trainers"].values()) == {"A2C on Acrobot-v1"}


# -- the key ----------------------------------------------------------------------------------------------------------
def test_reading_a_key_that_cannot_be_read_says_so(tmp_path):
    """A key file missing or not JSON is a ValueError naming it and saying it cannot be read as a key."""
    for path, text in ((tmp_path / "missing.json", None), (tmp_path / "bad.json", "{not json"),
                       (tmp_path / "empty.json", "")):
        if text is not None:
            path.write_text(text)
        with pytest.raises(ValueError, match=f"^{path} cannot be read as a bug-hunt key \\("):
            hunts.read_key(path)


@pytest.mark.parametrize("key", [[], "x", None, {}, {"format": KEY_FORMAT}, {"format": KEY_FORMAT, "students": []},
                                 {"format": "pgcourse-hunt-key/0", "students": {}}, {"format": HUNT_FORMAT,
                                                                                     "students": {}},
                                 {"students": {}}, {"format": KEY_FORMAT.upper(), "students": {}}])
def test_a_key_needs_the_key_format_and_a_students_mapping(tmp_path, key):
    """A key is a JSON object of the key format (exactly) with a mapping of students; anything else is a
    ValueError naming the file and the format expected."""
    path = tmp_path / "k.json"
    path.write_text(json.dumps(key))
    with pytest.raises(ValueError) as error:
        hunts.read_key(path)
    assert str(error.value) == (f"{path} is not a bug-hunt key made by python -m pgcourse.classroom.hunts "
                                f"(expected format {KEY_FORMAT!r})")


def test_a_valid_key_is_read_as_it_is(tmp_path):
    """A key of the right format with a students mapping (empty too) is returned whole."""
    key = {"format": KEY_FORMAT, "secret": "ab", "students": {}, "extra": [1]}
    (tmp_path / "k.json").write_text(json.dumps(key), encoding="utf-8")
    assert hunts.read_key(str(tmp_path / "k.json")) == key


@pytest.mark.parametrize("student", ["", " ", "\t\n", ".", "..", " .. ", "a/b", "/", "a\\b", "a\0b"])
def test_a_student_id_that_cannot_name_a_folder_is_refused(student):
    """A student id names a folder: after stripping blanks, empty, ``.``, ``..`` or holding a slash, a backslash
    or a NUL is a ValueError quoting it."""
    with pytest.raises(ValueError) as error:
        hunts._check_id(student)
    assert str(error.value) == (f"{student.strip()!r} cannot be a student id here: it names the student's folder "
                                "(no '/', not empty)")


@pytest.mark.parametrize("student, kept", [("ann", "ann"), ("  ann  ", "ann"), ("Carol Diaz_1234", "Carol Diaz_1234"),
                                           ("...", "..."), (".a", ".a"), ("Zoë", "Zoë"), ("a.b", "a.b")])
def test_a_student_id_is_kept_stripped(student, kept):
    """Any other id is kept, stripped of surrounding blanks (inner blanks, dots and unicode stay)."""
    assert hunts._check_id(student) == kept


@pytest.fixture
def fake_hunts(monkeypatch):
    """make_student_hunt replaced: it makes the folder and returns an entry naming the student and the secret."""
    made = []

    def make(student, secret, folder, settings=None):
        made.append(student)
        folder.mkdir(parents=True)
        return {"1": {"trap": f"bug_of_{student}", "secret_used": secret[:4]}}
    monkeypatch.setattr(hunts, "make_student_hunt", make)
    return made


def test_make_hunts_makes_a_key_with_a_new_secret_and_each_students_entry(tmp_path, fake_hunts):
    """Without a key, make_hunts makes one (the key format, a new 256-bit hex secret, the students), hunts each
    student once in the order given (ids stripped, repeats dropped), and writes the key (owner-only, one JSON line
    with a final newline); its log numbers the students."""
    lines = []
    out, key_path = tmp_path / "out", tmp_path / "key.json"
    key = hunts.make_hunts([" ann", "bob ", "ann", "bob"], out, key_path, log=lines.append)
    assert fake_hunts == ["ann", "bob"]
    assert key["format"] == KEY_FORMAT and len(key["secret"]) == 64 and int(key["secret"], 16) >= 0
    assert key["students"] == {"ann": {"1": {"trap": "bug_of_ann", "secret_used": key["secret"][:4]}},
                               "bob": {"1": {"trap": "bug_of_bob", "secret_used": key["secret"][:4]}}}
    assert lines == [f"[1/2] ann: {out / 'ann'}", f"[2/2] bob: {out / 'bob'}"]
    text = key_path.read_text()
    assert json.loads(text) == key and text.endswith("}\n") and text.count("\n") == 1
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert not key_path.with_name("key.json.partial").exists()
    other = hunts.make_hunts(["cy"], tmp_path / "out2", tmp_path / "key2.json", log=lines.append)
    assert other["secret"] != key["secret"]


def test_make_hunts_adds_students_to_an_existing_key_with_its_secret(tmp_path, fake_hunts):
    """With a key, make_hunts keeps its secret and its students and adds the new ones."""
    out, key_path = tmp_path / "out", tmp_path / "key.json"
    key_path.write_text(json.dumps({"format": KEY_FORMAT, "secret": "ab" * 32, "students": {}}))
    key = hunts.make_hunts(["ann"], out, key_path, log=lambda line: None)
    assert key["secret"] == "ab" * 32 and key["students"]["ann"]["1"]["secret_used"] == "abab"
    assert json.loads(key_path.read_text()) == key


@pytest.mark.parametrize("students", [[], ["  "]])
def test_make_hunts_without_students_is_an_error(tmp_path, fake_hunts, students):
    """No student ids: a ValueError saying how to name them (a blank id is refused as an id)."""
    with pytest.raises(ValueError, match="no student ids given|cannot be a student id"):
        hunts.make_hunts(students, tmp_path / "out", tmp_path / "key.json")
    if not students:
        with pytest.raises(ValueError, match=r"^no student ids given: name them, or give --students FILE"):
            hunts.make_hunts(students, tmp_path / "out", tmp_path / "key.json")
    assert not (tmp_path / "key.json").exists() and fake_hunts == []


@pytest.mark.parametrize("where", ["out/key.json", "out/deep/key.json", "out", "out/."])
def test_a_key_inside_the_handed_out_folder_is_refused(tmp_path, fake_hunts, where):
    """The key may not lie inside --out (or be it), which students receive: a ValueError, and nothing made."""
    with pytest.raises(ValueError, match="lies inside --out .* keep the key apart"):
        hunts.make_hunts(["ann"], tmp_path / "out", tmp_path / where)
    assert fake_hunts == []


def test_a_key_beside_the_handed_out_folder_is_accepted(tmp_path, fake_hunts):
    """A key in a folder whose name merely begins like --out's is outside it."""
    (tmp_path / "out2").mkdir()
    hunts.make_hunts(["ann"], tmp_path / "out", tmp_path / "out2" / "key.json", log=lambda line: None)
    assert fake_hunts == ["ann"] and (tmp_path / "out2" / "key.json").exists()


def test_folders_the_key_does_not_know_are_refused_all_named_before_anything_is_made(tmp_path, fake_hunts):
    """Folders that exist under --out for students the key has no entry for are refused, all of them named, before
    any student's hunt is made."""
    out = tmp_path / "out"
    (out / "bob").mkdir(parents=True)
    (out / "cy").write_text("a file counts too")
    with pytest.raises(ValueError) as error:
        hunts.make_hunts(["ann", "bob", "cy"], out, tmp_path / "key.json")
    assert str(error.value).startswith(f"{[str(out / 'bob'), str(out / 'cy')]} exist but the key has no entry")
    assert fake_hunts == [] and not (tmp_path / "key.json").exists()


def key_with(path: Path, students: dict) -> None:
    path.write_text(json.dumps({"format": KEY_FORMAT, "secret": "ab" * 32, "students": students}))


def test_a_student_in_the_key_whose_folder_exists_is_kept_untouched(tmp_path, fake_hunts):
    """A student the key knows, whose folder exists, is kept (no hunt made, the entry as it was)."""
    out, key_path = tmp_path / "out", tmp_path / "key.json"
    (out / "ann").mkdir(parents=True)
    key_with(key_path, {"ann": {"old": 1}})
    lines = []
    key = hunts.make_hunts(["ann", "bob"], out, key_path, log=lines.append)
    assert fake_hunts == ["bob"] and key["students"]["ann"] == {"old": 1}
    assert lines == ["[1/2] ann: already in the key, kept", f"[2/2] bob: {out / 'bob'}"]


def test_a_student_in_the_key_whose_folder_is_a_file_is_made_again(tmp_path, fake_hunts):
    """A student the key knows whose folder is missing is made again (the draw is repeatable): kept when the runs
    are the key's, else a RuntimeError saying to restore the folder or give a new key."""
    out, key_path = tmp_path / "out", tmp_path / "key.json"
    same = {"1": {"trap": "bug_of_ann", "secret_used": "abab"}}
    key_with(key_path, {"ann": same, "bob": {"1": {"trap": "other"}}})
    lines = []
    key = hunts.make_hunts(["ann"], out, key_path, log=lines.append)
    assert fake_hunts == ["ann"] and key["students"]["ann"] == same
    assert lines == ["[1/1] ann: its folder was missing, made again (the same runs as the key's)"]
    with pytest.raises(RuntimeError) as error:
        hunts.make_hunts(["bob"], out, key_path, log=lines.append)
    assert str(error.value).startswith(f"{out / 'bob'} was missing and made again, but its runs differ from the key's")
    assert "give 'bob' a new hunt with a new key" in str(error.value)


def test_the_key_is_written_after_each_student(tmp_path, monkeypatch):
    """The key is written after each new student, so a run stopped at the second student keeps the first's entry."""
    def make(student, secret, folder, settings=None):
        if student == "bob":
            raise RuntimeError("stopped")
        folder.mkdir(parents=True)
        return {"who": student}
    monkeypatch.setattr(hunts, "make_student_hunt", make)
    key_path = tmp_path / "key.json"
    with pytest.raises(RuntimeError, match="stopped"):
        hunts.make_hunts(["ann", "bob"], tmp_path / "out", key_path, log=lambda line: None)
    assert json.loads(key_path.read_text())["students"] == {"ann": {"who": "ann"}}


def test_make_hunts_passes_its_settings_on(tmp_path, monkeypatch):
    """The settings given reach every student's hunt."""
    seen = []

    def make(student, secret, folder, settings=None):
        seen.append(settings)
        folder.mkdir(parents=True)
        return {}
    monkeypatch.setattr(hunts, "make_student_hunt", make)
    mine = {1: {"algo": "a2c"}}
    hunts.make_hunts(["ann"], tmp_path / "out", tmp_path / "key.json", settings=mine, log=lambda line: None)
    assert seen == [mine]


def test_a_private_file_is_the_owners_only_and_replaces_the_old_one_whole(tmp_path):
    """A private write leaves the file with mode 0600 (also over a file that was 0644, also under a permissive
    umask), holding exactly the text, and no partial file beside it."""
    path = tmp_path / "key.json"
    path.write_text("old and longer than the new text")
    path.chmod(0o644)
    mask = os.umask(0)
    try:
        hunts._write_private(path, "new é\n")
    finally:
        os.umask(mask)
    assert path.read_text(encoding="utf-8") == "new é\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.json"]
    partial = tmp_path / "key.json.partial"
    partial.write_text("left by an interrupted write, much longer than the text")
    partial.chmod(0o644)
    hunts._write_private(path, "x")
    assert path.read_text() == "x" and stat.S_IMODE(path.stat().st_mode) == 0o600 and not partial.exists()


def test_a_private_file_is_created_owner_only_not_narrowed_afterwards(tmp_path, monkeypatch):
    """The key's file is created readable by its owner only (0600 at creation, under any umask), so that there is
    no moment at which another user could open it; the later chmod only narrows a partial file left from before."""
    chmods = []
    monkeypatch.setattr(os, "chmod", lambda path, mode: chmods.append((Path(path).name, mode)))
    mask = os.umask(0)
    try:
        hunts._write_private(tmp_path / "key.json", "secret")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "key.json").stat().st_mode) == 0o600
    assert chmods == [("key.json.partial", 0o600)]


def test_the_hunts_command_line_makes_hunts_for_the_ids_and_the_students_file(tmp_path, monkeypatch, capsys):
    """The ids given, then the students file's non-blank lines (stripped), are hunted, with --out and --key; it
    prints where the key is and how to grade with it, and exits 0."""
    calls = []
    monkeypatch.setattr(hunts, "make_hunts", lambda ids, out, key: calls.append((ids, out, key)))
    roster = tmp_path / "class.txt"
    roster.write_text("  carol  \n\n   \ndan\n", encoding="utf-8")
    assert hunts.main(["ann", "bob", "--students", str(roster), "--out", "o", "--key", "k.json"]) == 0
    assert calls == [(["ann", "bob", "carol", "dan"], "o", "k.json")]
    assert capsys.readouterr().out == "key: k.json (keep it; grade with pgcourse grade ... --hunt-key k.json)\n"
    assert hunts.main(["--out", "o", "--key", "k"]) == 0 and calls[-1] == ([], "o", "k")


@pytest.mark.parametrize("error", [ValueError("bad id"), RuntimeError("no sound run"), OSError("disk full")])
def test_the_hunts_command_line_reports_an_error_on_one_line_and_exits_2(monkeypatch, capsys, error):
    """A ValueError, RuntimeError or OSError is printed as one line on stderr, prefixed with the command; exit 2."""
    def failing(ids, out, key):
        raise error
    monkeypatch.setattr(hunts, "make_hunts", failing)
    assert hunts.main(["ann", "--out", "o", "--key", "k"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"python -m pgcourse.classroom.hunts: {error}\n" and captured.out == ""


def test_a_students_file_that_cannot_be_read_exits_2(tmp_path, monkeypatch, capsys):
    """A --students file that cannot be read: exit 2 with the error, nothing hunted."""
    monkeypatch.setattr(hunts, "make_hunts", lambda *args: pytest.fail("hunted"))
    assert hunts.main(["--students", str(tmp_path / "none.txt"), "--out", "o", "--key", "k"]) == 2
    assert capsys.readouterr().err.startswith("python -m pgcourse.classroom.hunts: ")


@pytest.mark.parametrize("argv", [["ann", "--key", "k"], ["ann", "--out", "o"]])
def test_the_hunts_command_line_needs_out_and_key(argv, capsys):
    """--out and --key are required."""
    with pytest.raises(SystemExit) as error:
        hunts.main(argv)
    assert error.value.code == 2 and "required" in capsys.readouterr().err


def test_the_hunts_module_exports_its_public_functions():
    """The public names are the trainers' settings, candidates, make_hunts, make_student_hunt, read_key, sound."""
    assert hunts.__all__ == ["TRAINER_SETTINGS", "candidates", "make_hunts", "make_student_hunt", "read_key", "sound"]
