"""Classroom grading: ``pgcourse grade SUBMISSION... --out grades.csv``.

A teacher hands out ``exercises/NN_name.ipynb``, collects one filled notebook per student and
grades the whole class with one command::

    pgcourse grade submitted/ --out grades.csv           # a folder: one notebook (or sub-folder) per student
    pgcourse grade alice.ipynb bob.ipynb --out grades.csv --chapter 01_reinforce

It writes ``grades.csv`` (one row per student, one column per exercise, and the total),
``grades.json`` (the same points plus, per exercise, a status and the check's own message: the
feedback to hand back) and prints a summary table.

What is graded, and how (the full trust model is in :mod:`pgcourse.classroom.grading.worker`):

- From a submission only the *answer cells* are taken: the cells whose nbgrader ``grade_id`` is one
  of the chapter's solution cells. Everything else -- the setup cells, the check cells and their
  points -- comes from the course's own notebook (``solutions/``, else ``exercises/``). Editing or
  deleting a check cell changes nothing.
- For each exercise, in notebook order, the student's answer cells run in a sandboxed student
  process after the course's setup cells (the code cells before the first exercise, plus any
  locked read-only code cell); then the course's check cell runs in a trusted grading worker that
  never runs student code, calling the student's functions across the process boundary with data
  only. The check passes: the exercise's points; it fails or anything goes wrong: 0 and the reason.
- A time limit per exercise and per submission, a memory limit and an output limit; an infinite
  loop, a crash, ``sys.exit``, an exception when the cell runs, a missing cell costs that exercise
  only. Grading is deterministic (seeded RNGs, one thread).
- Submission files are only read. The gradebook is written atomically and never replaces an
  existing file unless ``--overwrite`` is given.

Programmatic use::

    from pgcourse import grading
    report = grading.grade_paths(["submitted/"], out="grades.csv")
    report.students[0].total, report.students[0].exercises["ch01_normalize"].feedback

The parts, none importing this package or a part listed after it: in the grading worker,
:mod:`~pgcourse.classroom.sandboxed.wire` (message frames and value payloads), :mod:`~pgcourse.classroom.sandboxed.link`
(the socket's ends, references), :mod:`~pgcourse.classroom.grading.sandbox` (limits, namespaces),
:mod:`~pgcourse.classroom.sandboxed.student` (the student process), :mod:`~pgcourse.classroom.grading.partial` (partial
credit by cases) and :mod:`~pgcourse.classroom.grading.worker` (the trusted grading worker); in ``pgcourse
grade``, :mod:`~pgcourse.classroom.grading.course` (the course's notebooks), :mod:`~pgcourse.classroom.grading.records`
(files kept: history, audit), :mod:`~pgcourse.classroom.grading.identity` (student ids from file names: plain,
nbgrader, Canvas, Moodle; submission times), :mod:`~pgcourse.classroom.grading.assignment` (points, deadline,
late policy), :mod:`~pgcourse.classroom.grading.gradebook` (submissions, results, CSV/JSON),
:mod:`~pgcourse.classroom.grading.timing` (which notebook counts, lateness), :mod:`~pgcourse.classroom.grading.manual`
(the teacher's points, free-text answers), :mod:`~pgcourse.classroom.grading.feedback` (a file per student),
:mod:`~pgcourse.classroom.grading.similarity` (hints), :mod:`~pgcourse.classroom.grading.lms` and
:mod:`~pgcourse.classroom.grading.term` (the term gradebook, Canvas and Moodle), :mod:`~pgcourse.classroom.grading.pool`
(the workers, seen from here), :mod:`~pgcourse.classroom.grading.grader` (grading a class) and
:mod:`~pgcourse.classroom.grading.command` (the command line). Notebook files and their nbgrader conventions are
read by :mod:`pgcourse.classroom.notebook_format`, which the exercise generator shares. This package imports
the grader's side only: the worker's parts load in the worker. A term with all of it: docs/teachers.md.
"""
from __future__ import annotations

# The names of the single module this package replaces (``grading.X`` keeps working for each of them).
from ..notebook_format import (BEGIN_SOLUTION, END_SOLUTION, MAX_NOTEBOOK_BYTES, Cell, NotebookError, parse_notebook,  # noqa: F401
                               stub_source)
from .course import Chapter, Course, Exercise, GradingError, build_chapter, find_course, load_course  # noqa: F401
from .assignment import Assignment, LatePolicy, make_assignment  # noqa: F401
from .command import add_arguments, main, run  # noqa: F401
from .gradebook import (STATUSES, ExerciseResult, GradeReport, StudentResult, Submission, check_gradebook_free,  # noqa: F401
                        collect_identified, collect_submissions, read_submission, write_gradebook)
from .grader import bench, grade_paths, synthetic_notebook  # noqa: F401
from .pool import Grader  # noqa: F401
from .sandbox import SANDBOX, UNSAFE, Limits, probe_sandbox  # noqa: F401

__all__ = ["Limits", "GradingError", "Course", "Chapter", "Exercise", "Submission", "ExerciseResult",
           "StudentResult", "GradeReport", "Grader", "load_course", "find_course", "read_submission",
           "collect_submissions", "grade_paths", "write_gradebook", "bench", "main", "Assignment", "LatePolicy",
           "make_assignment"]

# the grader's modules that run inside the sandbox live in pgcourse.classroom.sandboxed; ``grading.wire`` and the
# like (the package's old layout) still name them
_SANDBOXED = frozenset({"wire", "clock", "link", "student", "runner", "loops", "ppo_proof"})


def __getattr__(name: str):
    if name in _SANDBOXED:
        import importlib

        return importlib.import_module(f"pgcourse.classroom.sandboxed.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
