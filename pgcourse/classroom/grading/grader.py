"""Grading a class (:func:`grade_paths`) and the benchmark (:func:`bench`).

One run grades one assignment: it collects the submissions (:mod:`.identity` says who and when),
keeps one per student (the latest, :mod:`.timing`), grades them in the pool of sandboxed workers,
adds lateness, free-text answers and the teacher's points (:mod:`.manual`), and writes the
assignment's gradebook, keeping the previous one (:mod:`.records`). The term gradebook, feedback
files, similarity hints and LMS exports are built from that gradebook (:mod:`.term`, :mod:`.feedback`,
:mod:`.similarity`); the command line is :mod:`.command`.
"""
from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from ..notebook_format import clear_outputs, grade_id_of
from .assignment import Assignment, LatePolicy
from .course import Chapter, Course, GradingError, find_course, load_course
from .gradebook import (ExerciseResult, GradeReport, StudentResult, Submission, _gradebook_paths, _NotRead, _number,
                        check_gradebook_free, collect_identified, read_gradebook_json, read_limited, read_report,
                        read_submission, shown, write_gradebook)
from .identity import Identity, identity_warnings, problem_of
from .lms import Roster
from .manual import answers_of, apply_manual, carry_over, free_text_result, read_manual
from .pool import Grader
from .sandbox import UNSAFE, Limits
from .timing import (UNTRUSTED_TIMES, apply_lateness, choose, late_change, restamp, stamp_submission,
                     untrusted_times)

# --------------------------------------------------------------------------------------------------
# Which chapter, which notebook
# --------------------------------------------------------------------------------------------------


def _best_chapter(course: Course, submission: Submission) -> str | None:
    """The course chapter whose cell ids this notebook shares most (None: none)."""
    ids = submission.grade_ids
    best, best_overlap = None, 0
    for name in course.names:
        overlap = len(ids & course.grade_ids(name))
        if overlap > best_overlap:
            best, best_overlap = name, overlap
    return best


def _infer_chapter(course: Course, submissions: list[Submission]) -> str:
    votes: dict[str, list[str]] = {}
    for submission in submissions:
        if submission.problem:
            continue
        best = _best_chapter(course, submission)
        if best is None and submission.chapter_hint in course.notebooks:
            best = submission.chapter_hint
        if best is not None:
            votes.setdefault(best, []).append(submission.student)
    if not votes:
        raise GradingError("could not tell which chapter these notebooks belong to (none carries the course's "
                           "nbgrader cell ids); pass --chapter")
    if len(votes) > 1:
        listing = "; ".join(f"{name}: {', '.join(shown(s) for s in sorted(students)[:5])}"
                            f"{' …' if len(students) > 5 else ''}"
                            for name, students in sorted(votes.items()))
        raise GradingError(f"the submissions belong to different chapters ({listing}); grade one chapter at a "
                           "time, or pass --chapter")
    return next(iter(votes))


def _wrong_notebooks(course: Course, chapter: Chapter, submissions: list[Submission], chosen: bool) -> list[str]:
    """A warning per student whose notebook holds none of the chapter's answer cells; a :class:`GradingError`
    when that is most of the class (a wrong ``--chapter`` must not give everyone 0 and succeed)."""
    answer_ids = set(chapter.answer_order) | {exercise.id for exercise in chapter.manual_exercises}
    readable = [s for s in submissions if s.problem is None]
    wrong = [s for s in readable if not s.grade_ids & answer_ids]
    if not wrong:
        return []
    guesses = sorted({_best_chapter(course, s) or "no chapter of the course" for s in wrong})
    if len(wrong) * 2 > len(readable):
        how = f"--chapter {chapter.name}" if chosen else f"chapter {chapter.name} (inferred)"
        raise GradingError(f"{how}: {len(wrong)} of {len(readable)} submissions hold none of its answer cells (they "
                           f"look like {', '.join(guesses)}); check --chapter, or the folder you gave")
    return [f"student {shown(s.student)!r}: {s.path} holds none of the answer cells of {chapter.name} (it looks like "
            f"{_best_chapter(course, s) or 'no chapter of the course'}): every exercise gets 0; is it the right "
            "notebook?" for s in wrong]


def _dedupe(course: Course, chapter: str, submissions: list[Submission]) -> tuple[list[Submission], list[str]]:
    """One submission per student (sorted by student), and a warning for each student who handed in more.

    Handing in two notebooks must not stop the class being graded, and which one counts must not
    depend on the order of a folder listing (:func:`pgcourse.classroom.grading.timing.choose`: the chapter's
    notebook, then the latest). The student's notes and the summary say which file was graded.
    """
    by_student: dict[str, list[Submission]] = {}
    for submission in submissions:
        by_student.setdefault(submission.student, []).append(submission)
    kept, warnings = [], []
    for student, group in sorted(by_student.items()):
        if len(group) == 1:
            kept.append(group[0])
            continue
        chosen, why = choose(course, chapter, group)
        ignored = ", ".join(f"{s.path}" + (f" ({s.problem})" if s.problem else "")
                            for s in sorted(group, key=lambda s: str(s.path)) if s is not chosen)
        note = f"{len(group)} notebooks handed in: graded {chosen.path} ({why}); ignored {ignored}"
        chosen.notes.append(note)
        warnings.append(f"student {student!r}: {note}")
        kept.append(chosen)
    return kept, warnings


def _read(path: Path, identity: Identity, lms_times: dict[str, datetime], roots: set[Path]) -> Submission:
    """:func:`read_submission`, but whatever goes wrong costs this student only: their row says why."""
    try:
        submission = read_submission(path, identity.student)
    except Exception as error:  # noqa: BLE001 (one odd file or grader bug must not lose the class's rows)
        submission = Submission(identity.student, Path(path), None,
                                problem=f"the grader could not read this file ({type(error).__name__}: {error})")
    submission.identity = identity
    if submission.problem is None:
        submission.problem = problem_of(identity)  # a file named for a classmate: graded for no one
    stamp_submission(submission, lms_times, roots)
    return submission


# --------------------------------------------------------------------------------------------------
# Grading
# --------------------------------------------------------------------------------------------------

def _grade_all(pool: Any, chapter: Chapter, tasks: list[tuple[str, dict[str, list[Any]]]], limits: Limits,
               advance: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Results by student, and why for each student the grader failed on.

    The class is graded in one batch (the workers run in parallel); if the batch fails for a reason
    that is not the course's (a :class:`GradingError`: a failed self-test, no worker), the results
    delivered so far are kept and each remaining submission is graded on its own, so an exception
    costs the submission it happened on and no other student's row.
    """
    raw: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}

    def keep(key: str, exercises: dict[str, Any]) -> None:
        raw[key] = exercises
        advance(key, exercises)

    if not tasks:
        return raw, failed
    try:
        raw.update(pool.grade(chapter, tasks, limits, on_result=keep))
        return raw, failed
    except GradingError:
        raise
    except Exception:  # noqa: BLE001 (grade the rest one by one, below)
        pass
    for key, answers in tasks:
        if key in raw:
            continue
        try:
            raw.update(pool.grade(chapter, [(key, answers)], limits, on_result=keep))
        except GradingError:
            raise
        except Exception as error:  # noqa: BLE001
            failed[key] = f"{type(error).__name__}: {error}"
    return raw, failed


def _row(submission: Submission, chapter: Chapter, raw: dict[str, dict[str, Any]], failed: dict[str, str],
         notes: list[str]) -> StudentResult:
    """A student's row from the workers' results; a missing or malformed result is an error for that student."""
    exercises = {}
    free_text = answers_of(submission, chapter)
    for exercise in chapter.exercises:
        if submission.problem is not None:
            result = ExerciseResult(0, exercise.points, "invalid", f"not graded: {submission.problem}")
        elif exercise.kind == "manual":
            result = free_text_result(exercise.points, free_text.get(exercise.id))
        else:
            try:
                got = raw[submission.student][exercise.id]
                # passed: the exercise's points; failed: partial credit, if any (the worker is trusted)
                points = float(got["points"]) if got["status"] in ("passed", "failed") else 0.0
                result = ExerciseResult(_number(min(points, exercise.points)), exercise.points, str(got["status"]),
                                        str(got["feedback"]))
            except Exception as error:  # noqa: BLE001
                reason = failed.get(submission.student) or f"no result for this exercise ({type(error).__name__})"
                result = ExerciseResult(0, exercise.points, "error",
                                        f"not graded: the grader failed on this submission ({reason})")
            result.graded_points = result.points
        exercises[exercise.id] = result
    row = StudentResult(submission.student, str(submission.path), submission.sha256, exercises, submission.problem,
                        [*submission.notes, *notes], submission.identity.to_json() if submission.identity else {})
    _hint_untaken_cells(submission, chapter, row)
    _hint_earlier_failures(submission, chapter, row)
    return row


_MYSTERY_EXERCISE = re.compile(r"ch06_mystery_(\d+)")


def _note_hunt(chapter: Chapter, row: StudentResult, hunt_key: Path | None, made_for: set[str]) -> None:
    """Chapter 06's bug hunt, in the teacher's report: graded without the key, it was graded on the practice six,
    whose answers the solution publishes; graded with it, a student the key has no hunt for scored nothing there."""
    if not any(_MYSTERY_EXERCISE.fullmatch(e.id) for e in chapter.auto_exercises):
        return
    if hunt_key is None:
        row.notes.append("the bug hunt was graded on the practice six (no --hunt-key): their answers are in the "
                         "published solution; grade a class on hunts made per student (python -m "
                         "pgcourse.classroom.hunts, then --hunt-key)")
    elif row.student not in made_for:
        row.notes.append(f"the bug hunt: {hunt_key} has no hunt made for student {row.student!r}, so its mysteries "
                         "scored 0; make one (python -m pgcourse.classroom.hunts ... with that id) and grade again")


def _hunt_warnings(chapter: Chapter, rows: list[StudentResult], hunt_key: Path | None, made_for: set[str]) -> list[str]:
    """The report's warnings about chapter 06's bug hunt: graded on the practice six, or students without a hunt."""
    if not rows or not any(_MYSTERY_EXERCISE.fullmatch(e.id) for e in chapter.auto_exercises):
        return []
    if hunt_key is None:
        return ["the bug hunt was graded on the practice six (no --hunt-key), whose answers the solution publishes: "
                "grade a class on hunts made per student (docs/teachers.md, 'The bug hunt')"]
    missing = sorted(row.student for row in rows if row.student not in made_for)
    return [f"the bug hunt: {hunt_key} has no hunt for {len(missing)} student(s), whose mysteries scored 0: "
            f"{', '.join(map(repr, missing))}"] if missing else []


def check_hunt_key(path: str | Path) -> Path:
    """The teacher's bug-hunt key at ``path``, validated, as an absolute path (a GradingError that says what is
    wrong): readable, made by ``pgcourse.classroom.hunts``, and not in a folder the students' sandbox shows."""
    from ..hunts import read_key  # (not at import: it brings the RL library, which grading needs only here)
    from .sandbox import _read_only_roots

    key = Path(path).expanduser().resolve()
    try:
        read_key(key)
    except ValueError as error:
        raise GradingError(f"--hunt-key: {error}") from None
    shown = [root for root in _read_only_roots() if key.is_relative_to(root)]
    if shown:
        raise GradingError(f"--hunt-key {path} lies in {shown[0]}, a folder the students' sandbox can read: move the "
                           "key elsewhere (e.g. your home folder)")
    return key


def _defined_names(source: str) -> set[str]:
    """Names a cell defines at top level (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name))
    return names


_UNDEFINED = re.compile(r"name '(\w+)' is not defined")
_DEFINES = r"^(?:async[ \t]+)?def[ \t]+{0}\b|^class[ \t]+{0}\b|^{0}[ \t]*(?::[^=\n]*)?=(?!=)"


def _cell_defines(source: str, name: str) -> bool:
    """Whether ``source`` defines ``name`` at top level (def, class, assignment), read line by line so that a cell
    that does not parse (the SyntaxError that stopped it) is still read."""
    return re.search(_DEFINES.format(re.escape(name)), source, re.MULTILINE) is not None


def _exception_line(feedback: str) -> str:
    """The exception a failed cell raised (``SyntaxError: expected ':'``): the last line of its traceback."""
    lines = [line.strip() for line in feedback.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "an exception"


def _hint_earlier_failures(submission: Submission, chapter: Chapter, row: StudentResult) -> None:
    """Where an exercise failed on a name that an earlier answer cell defines but never got to define (it
    raised: one missing ``:``), say that this exercise failed because of that cell, naming it and its exception,
    so that one mistake does not read as several."""
    numbers: dict[str, int] = {}
    for cell in submission.cells:
        if cell.grade_id and cell.cell_type == "code":
            numbers.setdefault(cell.grade_id, cell.index + 1)
    broken: list[tuple[str, str, str]] = []  # (answer cell, its source, its exception) of earlier cells that raised
    for exercise in chapter.auto_exercises:
        result = row.exercises[exercise.id]
        missing = set(_UNDEFINED.findall(result.feedback)) if result.status in ("failed", "error") else set()
        for grade_id, source, exception in broken:
            for name in sorted(name for name in missing if _cell_defines(source, name)):
                result.feedback += (f"\n\nNote: this exercise failed because cell {numbers.get(grade_id, '?')} (your "
                                    f"answer cell {grade_id}) raised {exception}"
                                    f" when it ran: `{name}` is defined there, so it was never defined. This may be "
                                    f"the only mistake here: fix that cell first.")
                missing.discard(name)
        for grade_id in exercise.answer_ids:
            if result.status == "error" and f"your answer cell {grade_id} raised an exception" in result.feedback:
                sources = [c.source for c in submission.cells if c.grade_id == grade_id and c.cell_type == "code"]
                broken.append((grade_id, "\n".join(sources), _exception_line(result.feedback)))


def _hint_untaken_cells(submission: Submission, chapter: Chapter, row: StudentResult) -> None:
    """Where an exercise failed on a name the student defines in a cell the grader does not take (after the
    last exercise, or before a check whose answer cell is missing), say so in that exercise's feedback."""
    if not submission.not_taken:
        return
    defined = [(cell.index + 1, _defined_names(cell.source)) for cell in submission.not_taken]
    for exercise in chapter.auto_exercises:
        result = row.exercises[exercise.id]
        if result.status not in ("failed", "error", "missing"):
            continue
        try:
            wanted = {node.id for node in ast.walk(ast.parse(exercise.check_source)) if isinstance(node, ast.Name)}
        except SyntaxError:
            continue
        for number, names in defined:
            for name in sorted(names & wanted - {"pg", "np", "torch"}):
                result.feedback += (f"\n\nHint: `{name}` is defined in cell {number} of your notebook, which the "
                                    f"grader does not take (only the answer cells, and cells you add before an "
                                    f"exercise's check): move it into the answer cell of {exercise.id}.")


# --------------------------------------------------------------------------------------------------
# Grading a class
# --------------------------------------------------------------------------------------------------

def _collect(paths: Sequence[str | Path], course: Course, students: Sequence[str] | None,
             lms_times: dict[str, datetime]) -> list[Submission]:
    """The submissions at ``paths`` (only ``students``' when given), read once."""
    found = collect_identified(paths, course.names)
    if students:
        wanted = set(students)
        missing = sorted(wanted - {identity.student for identity, _ in found})
        if missing:
            listed = ", ".join(sorted({identity.student for identity, _ in found})[:10])
            raise GradingError(f"--student {', '.join(missing)}: not among the submissions given (found: {listed})")
        found = [(identity, path) for identity, path in found if identity.student in wanted]
    roots = {Path(p).resolve() for p in paths if Path(p).is_dir()}
    return [_read(path, identity, lms_times, roots) for identity, path in found]


def _check_out_paths(found: list[Submission], out: str | Path, json_out: str | Path | None) -> None:
    # A symlink in the class's folder is never followed, so it is compared as a path, not its target:
    # a link to the gradebook is a refused submission, not a reason to stop grading everyone.
    gradebook = {p.resolve() for p in _gradebook_paths(out, json_out)}
    clash = [str(s.path) for s in found if s.path.parent.resolve() / s.path.name in gradebook]
    if clash:
        raise GradingError(f"--out would overwrite a submission: {clash[0]}")


def _tasks(submissions: list[Submission], chapter: Chapter) -> tuple[list[tuple[str, Any]], dict[str, list[str]]]:
    tasks, notes = [], {}
    for submission in submissions:
        if submission.problem is None:
            try:
                answers, notes[submission.student] = submission.answers(chapter)
            except Exception as error:  # noqa: BLE001 (this student's row says why; the others are graded)
                submission.problem = f"the grader could not take the answer cells ({type(error).__name__}: {error})"
                continue
            tasks.append((submission.student, answers))
    return tasks, notes


def _changed_files(submissions: list[Submission]) -> list[str]:
    """Read-only: a submission whose file changed meanwhile was touched by something else; say so."""
    warnings = []
    for submission in submissions:
        if submission.sha256 is None:
            continue
        try:
            now = hashlib.sha256(read_limited(submission.path)[0]).hexdigest()
        except (_NotRead, OSError):
            now = None
        if now != submission.sha256:
            warnings.append(f"{submission.path} changed while it was being graded (graded: the version read first)")
    return warnings


def _run_pool(grader: Grader | None, chapter: Chapter, tasks: list[tuple[str, Any]], limits: Limits,
              jobs: int | None, isolation: str, progress: bool, skipped: int,
              hunt_key: Path | None = None) -> tuple[dict, dict, str, str]:
    bar = None
    if progress and tasks:  # an update that grades nothing draws no empty "0notebook" bar
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tasks) + skipped, desc=f"grading {chapter.name}", unit="notebook", file=sys.stderr,
                   dynamic_ncols=True)
        bar.update(skipped)

    def advance(key: str, exercises: dict[str, Any]) -> None:
        if bar is not None:
            bar.set_postfix_str(shown(key)[:20])
            bar.update(1)

    own = grader is None
    if grader is None:  # no more workers than submissions: each one costs seconds of start-up
        jobs = min(jobs or min(os.cpu_count() or 1, 8), max(1, len(tasks)))
    pool = grader or Grader(jobs=jobs, isolation=isolation, cwd=chapter.path.parent)
    pool.hunt_key = str(hunt_key) if hunt_key is not None else None
    try:
        raw, failed = _grade_all(pool, chapter, tasks, limits, advance) if tasks else ({}, {})
        return raw, failed, pool.mode, pool.detail
    except KeyboardInterrupt:
        if own:
            pool.kill()  # the teacher pressed Ctrl-C: stop at once
        raise
    finally:
        if own:
            pool.close()
        if bar is not None:
            bar.close()


def grade_paths(paths: Sequence[str | Path], *, out: str | Path | None = None, json_out: str | Path | None = None,
                chapter: str | None = None, course: str | Path | Course | None = None, limits: Limits | None = None,
                jobs: int | None = None, isolation: str = "auto", overwrite: bool = False, progress: bool = True,
                grader: Grader | None = None, assignment: Assignment | None = None, update: bool = False,
                students: Sequence[str] | None = None, manual: str | Path | None = None,
                timestamps: dict[str, datetime] | None = None, kept: list[Path] | None = None,
                late_changes: dict[str, Any] | None = None, roster: Roster | None = None,
                hunt_key: str | Path | None = None) -> GradeReport:
    """Grade the notebooks at ``paths`` (files or folders); with ``out``, also write the gradebook.

    ``assignment``: points, deadline and late policy, partial credit (:mod:`.assignment`). ``update``:
    merge into the gradebook at ``out`` (the students graded now replace their rows, the others are
    kept; with no ``paths``, nothing is graded: ``manual``, ``timestamps`` and the late policy are applied
    to the results the gradebook holds). ``students``: grade only these of the submissions found; with
    ``update``, also change no other student (``timestamps``, and a late policy that differs from the
    gradebook's, which becomes these students' own: an extension). ``late_changes``: with ``update``, the late
    settings this run gives (:func:`pgcourse.classroom.grading.timing.settings_for_update`; default: those in which
    ``assignment``'s policy differs from the gradebook's). ``manual``: the teacher's points (:mod:`.manual`).
    ``timestamps``: submission times from the LMS. ``roster``: the class list; a student on it who handed in
    nothing gets a row (0, "no submission"). Previous gradebook files are kept (``kept``). A total that an
    update changes is in ``report.changes``, with why. ``hunt_key``: the teacher's bug-hunt key
    (:mod:`pgcourse.classroom.hunts`): chapter 06's hunt is graded on the hunt made for each student (without it, on
    the practice six, and the report says so).
    """
    started = time.monotonic()
    limits = limits or Limits()
    assignment = assignment or Assignment()
    if out is not None and not update:
        check_gradebook_free(out, json_out, overwrite)  # fail before grading, not after
    stored_points: dict[str, float] = {}
    if update:
        if out is None:
            raise GradingError("--update needs --out: the gradebook to update")
        stored = _previous_gradebook(out, json_out)
        stored_points = {e["id"]: float(e["points"]) for e in stored.get("exercises", [])
                         if isinstance(e, dict) and "id" in e and isinstance(e.get("points"), int | float)}
        if assignment.points:  # points not given again are the gradebook's, not the course notebook's
            assignment.points = {**stored_points, **assignment.points}
        assignment.inherit(stored)
    elif not paths:
        raise GradingError("give the submissions to grade (notebooks or folders)")
    course = course if isinstance(course, Course) else (load_course(course) if course else find_course())
    manual_entries = read_manual(manual) if manual else []  # a bad file fails now, not after grading
    submissions = _collect(paths, course, students, timestamps or {}) if paths else []
    if out is not None:
        _check_out_paths(submissions, out, json_out)
    chosen = chapter or assignment.chapter
    name = course.resolve(chosen) if chosen else _infer_chapter(course, submissions)
    the_chapter = assignment.apply(course.chapter(name))
    previous = read_report(_gradebook_paths(out, json_out)[1], the_chapter) if update else None
    if previous is not None and students and not paths:
        known = {row.student for row in previous.students}
        unknown = sorted(set(students) - known)
        if unknown:
            listed = ", ".join(sorted(known)[:10]) + (" …" if len(known) > 10 else "")
            where = _gradebook_paths(out, json_out)[1]
            raise GradingError(f"--student {', '.join(unknown)}: not in the gradebook {where} (its students: {listed})")
    before = {row.student: copy.deepcopy(row) for row in previous.students} if previous is not None else {}
    warnings = course.handout_disagreements(name)
    warnings += identity_warnings((s.identity, s.path) for s in submissions if s.identity is not None)
    warnings += _wrong_notebooks(course, the_chapter, submissions, bool(chosen))
    submissions, more = _dedupe(course, name, submissions)
    warnings += more
    tasks, notes = _tasks(submissions, the_chapter)
    hunt_key = check_hunt_key(hunt_key) if hunt_key is not None else None
    if hunt_key is not None and UNSAFE in (isolation, getattr(grader, "isolation", None)):
        raise GradingError("--hunt-key with --unsafe-no-sandbox: without the sandbox a student's code reads any file "
                           "you can, the key included; grade chapter 06's bug hunt in the sandbox")
    raw, failed, mode, detail = _run_pool(grader, the_chapter, tasks, limits, jobs, isolation, progress,
                                          len(submissions) - len(tasks), hunt_key)
    rows = [_row(submission, the_chapter, raw, failed, notes.get(submission.student, []))
            for submission in submissions]
    made_for: set[str] = set()
    if hunt_key is not None:
        from ..hunts import read_key

        made_for = set(read_key(hunt_key)["students"])
    for row, submission in zip(rows, submissions):
        if submission.problem is None:
            _note_hunt(the_chapter, row, hunt_key, made_for)
    warnings += _hunt_warnings(the_chapter, rows, hunt_key, made_for)
    for row, submission in zip(rows, submissions):
        apply_lateness(row, submission, assignment.policy)
    warnings += _changed_files(submissions)
    report = GradeReport(the_chapter, rows, limits, mode or "none", detail or "no submission needed a worker",
                         time.monotonic() - started, warnings, assignment.name or "", assignment.policy,
                         hide_expected=bool(assignment.hide_expected))
    if previous is not None:
        report = _merge(previous, report, assignment, students, late_changes, timestamps or {})
    report.submissions = submissions
    if roster is not None and not students:
        _add_non_submitters(report, roster)
    report.warnings += untrusted_times(report.students, report.policy)
    report.warnings = list(dict.fromkeys(report.warnings))  # an update says again what the gradebook said
    if manual_entries and students:  # --student: no other student changes, whatever the file holds
        others = sorted({entry.student for entry in manual_entries if entry.student not in set(students)})
        manual_entries = [entry for entry in manual_entries if entry.student in set(students)]
        if others:
            report.notices.append(f"--manual {manual}: the rows of {len(others)} student(s) not given with --student "
                                  f"were not applied ({', '.join(others[:5])}{' …' if len(others) > 5 else ''})")
    if manual_entries:
        apply_manual(report, manual_entries, f"--manual {manual}")
    if previous is not None:
        report.changes = _changes(before, previous.policy, report)
        moved = [f"{e.id} {_number(stored_points[e.id])} → {_number(e.points)}" for e in the_chapter.exercises
                 if stored_points.get(e.id, e.points) != e.points]
        kept_rows = len(report.students) - len(report.submissions)
        if moved and kept_rows:
            report.notices.append(f"the exercises' points changed ({', '.join(moved)}): the {kept_rows} student(s) not "
                                  "graded now keep the points they earned before (a passed exercise is not worth the "
                                  "new points): grade the class again (--overwrite) to apply them")
    if out is not None:
        # The paths were checked free (or --overwrite/--update given) before grading; a file that appeared
        # since (a submission's code without the sandbox, another program) is kept in the history, and said so.
        for path in _gradebook_paths(out, json_out):
            if path.exists() and not overwrite and not update:
                report.warnings.append(f"{path} appeared while grading (not written by this run); kept in the history")
        write_gradebook(report, out, json_out, overwrite=True, kept=kept)
    return report


def stored_policy(out: str | Path, json_out: str | Path | None) -> LatePolicy | None:
    """The late policy of the gradebook at ``out`` (None when there is none to read: grading says why)."""
    try:
        return LatePolicy.from_json(_previous_gradebook(out, json_out).get("late_policy") or {})
    except GradingError:
        return None


def _previous_gradebook(out: str | Path, json_out: str | Path | None) -> dict[str, Any]:
    """The JSON of the gradebook ``--update`` merges into (its settings are this run's defaults)."""
    json_path = _gradebook_paths(out, json_out)[1]
    data = read_gradebook_json(json_path)
    if not isinstance(data, dict) or "chapter" not in data:
        raise GradingError(f"{json_path} is not a gradebook written by pgcourse grade")
    return data


def _merge(previous: GradeReport, now: GradeReport, assignment: Assignment, students: Sequence[str] | None,
           late_changes: dict[str, Any] | None, lms_times: dict[str, datetime]) -> GradeReport:
    """``previous`` with the students graded ``now`` replacing their rows (the teacher's points and the student's
    own late settings kept), the LMS's times (``lms_times``) and the late policy applied to the rows it holds.

    With ``students``, only their rows change: a late setting this run gives (``late_changes``) becomes theirs
    (an extension; a setting equal to the class's removes theirs) and the class keeps its policy. Without, the
    class's policy takes the settings given, and a student's own setting stays theirs (said in the notices)."""
    rows = {row.student: row for row in previous.students}
    for row in now.students:
        old = rows.get(row.student)
        if old is not None:
            carry_over(row, old)
            row.late_policy = dict(old.late_policy)
        for other in [r for r in rows.values() if r.no_submission and r.student != row.student
                      and _same_lms_user(r.identity, row.identity)]:
            del rows[other.student]  # the class list's row of a student who has now handed in
        rows[row.student] = row
    if late_changes is None:  # the API: what the assignment's policy changes
        before, given = previous.policy.to_json(), assignment.policy.to_json()
        late_changes = {key: given.get(key, "") for key in ("deadline", "late_penalty", "grace_s")
                        if given.get(key, "") != before.get(key, "")} if assignment.policy.deadline else {}
    named = set(students or ())
    notices = []
    if named:
        policy = previous.policy
        class_json = policy.to_json()
        for name in sorted(named):
            own = rows[name].late_policy
            for key, value in late_changes.items():
                if value == class_json.get(key, ""):
                    own.pop(key, None)
                else:
                    own[key] = value
    else:
        policy = assignment.policy if late_changes else previous.policy
        class_json = policy.to_json()
        for row in rows.values():
            for key, value in list(row.late_policy.items()):
                if value == class_json.get(key, ""):
                    del row.late_policy[key]  # the class's setting now: no longer the student's own
            kept = sorted(key for key in late_changes if key in row.late_policy)
            if kept:
                said = ", ".join(_setting(key, row.late_policy[key]) for key in kept)
                notices.append(f"{row.student} keeps their own {said} (give --update --student {row.student} with the "
                               "class's setting to remove it)")
    graded_now = {row.student for row in now.students}
    for row in rows.values():
        if row.student not in graded_now and (not named or row.student in named):
            restamp(row, lms_times)
        for exercise in now.chapter.exercises:  # points from this run's assignment
            row.exercises[exercise.id].max_points = exercise.points
        apply_lateness(row, None, policy)
    warnings = [w for w in previous.warnings if not any(w.startswith(f"student {s.student!r}") for s in now.students)
                and not w.startswith(UNTRUSTED_TIMES)]  # said afresh from the rows as they are now (--timestamps)
    graded_now_ran = now.isolation != "none"  # no worker ran: nothing was graded now (a merge of points)
    isolation, detail = (now.isolation, now.isolation_detail) if graded_now_ran else (previous.isolation,
                                                                                      previous.isolation_detail)
    report = GradeReport(now.chapter, [rows[name] for name in sorted(rows)], now.limits, isolation,
                         detail, now.seconds, warnings + now.warnings,
                         now.assignment or previous.assignment, policy, hide_expected=now.hide_expected)
    report.notices = notices
    return report


def _setting(key: str, value: Any) -> str:
    """A late setting as a teacher gives it: ``deadline 2025-03-09T23:59:00+00:00``, ``grace 15 min``."""
    if key == "grace_s":
        return f"grace {float(value) / 60:g} min"
    return f"{key.replace('_', ' ')} {value or 'none'}"


def _same_lms_user(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two rows' identities are one LMS user (the same Canvas ID or Moodle participant, email, ID number)."""
    if a.get("lms") and a.get("lms") == b.get("lms") and a.get("lms_id") and a.get("lms_id") == b.get("lms_id"):
        return True
    return any(a.get(key) and a.get(key) == b.get(key) for key in ("email", "id_number"))


def _changes(before: dict[str, StudentResult], class_before: Any, report: GradeReport) -> list[tuple[str, float,
                                                                                                     float, str]]:
    """The totals this update changed, each with why; a changed late penalty is also a note for the student (their
    feedback says it), unless they were graded again (then their notes are new, and say when they handed in)."""
    regraded = {submission.student for submission in report.submissions}
    changes = []
    for row in report.students:
        old = before.get(row.student)
        if old is None or (_number(old.total) == _number(row.total) and old.penalty == row.penalty):
            continue
        why = []
        if row.student in regraded:
            why.append("graded again" + (f" ({Path(row.file).name})" if row.file != old.file else ""))
        late = late_change(old, row, class_before, report.policy)
        if late:
            why.append(f"late penalty {_number(old.penalty)} → {_number(row.penalty)} ({late})")
            if row.student not in regraded:
                row.notes.append(f"late penalty changed from {_number(old.penalty)} to {_number(row.penalty)} "
                                 f"point(s): {late}")
        teacher = [key for key, result in row.exercises.items() if key in old.exercises and
                   (result.teacher_points, result.points) != (old.exercises[key].teacher_points,
                                                             old.exercises[key].points)]
        if teacher and row.student not in regraded:
            why.append(f"your points for {', '.join(teacher)}")
        if any(result.max_points != old.exercises[key].max_points for key, result in row.exercises.items()
               if key in old.exercises):
            why.append("the exercises' points changed")
        changes.append((row.student, old.total, row.total, "; ".join(why) or "points"))
    return changes


def _add_non_submitters(report: GradeReport, roster: Roster) -> None:
    """A row for each student of the class list whom no row of ``report`` is (0 points, "no submission")."""
    claimed = {id(entry) for row in report.students for entry in roster.candidates(row.student, row.identity)}
    taken = {row.student for row in report.students}
    for entry in roster.entries:
        if id(entry) in claimed:
            continue
        student, identity = roster.student_of(entry)
        if student in taken:
            student = f"{student} ({identity.get('lms_id') or identity.get('email') or identity.get('id_number')})"
        taken.add(student)
        exercises = {exercise.id: ExerciseResult(0, exercise.points, "missing", "no submission: nothing was handed in",
                                                 graded_points=None if exercise.kind == "manual" else 0)
                     for exercise in report.chapter.exercises}
        report.students.append(StudentResult(student, "", None, exercises,
                                             f"no submission: on the class list (--roster {Path(roster.source).name}),"
                                             " nothing was handed in", [], identity, no_submission=True))
        report.warnings.append(f"student {student!r}: on the class list (--roster {Path(roster.source).name}), "
                               "handed in nothing: 0 points, marked \"no submission\"")
    report.students.sort(key=lambda row: row.student)


# --------------------------------------------------------------------------------------------------
# Benchmark: 30 synthetic submissions of one chapter
# --------------------------------------------------------------------------------------------------

def synthetic_notebook(chapter: Chapter, answers: dict[str, str]) -> dict[str, Any]:
    """A submission notebook: the course notebook with the given answer cell sources (others as handed out)."""
    notebook = json.loads(chapter.path.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        grade_id = grade_id_of(cell.get("metadata", {}))
        if cell.get("cell_type") == "code":
            clear_outputs(cell)
            if grade_id in chapter.stubs:
                cell["source"] = answers.get(grade_id, chapter.stubs[grade_id][0])
    return notebook


def bench(count: int = 30, chapter: str | None = None, course: str | Path | Course | None = None,
          jobs: int | None = None, limits: Limits | None = None, stream: TextIO | None = None) -> dict[str, Any]:
    """Grade ``count`` synthetic submissions of one chapter (a third right, a third stubs, a third mixed)
    from scratch (worker start-up included) and print the table and the time."""
    stream = stream or sys.stdout
    course = course if isinstance(course, Course) else (load_course(course) if course else find_course())
    if chapter:
        name = course.resolve(chapter)
    else:
        solved = [n for n in course.names if course.notebooks[n].parent.name == "solutions"] or course.names
        name = "01_reinforce" if "01_reinforce" in solved else solved[0]
    the_chapter = course.chapter(name)
    if the_chapter.reference is None:
        raise GradingError(f"{name} has no solutions notebook to build right answers from")
    with tempfile.TemporaryDirectory(prefix="pgcourse-grade-bench-") as folder:
        submitted = Path(folder) / "submitted"
        submitted.mkdir()
        for number in range(count):
            answers = {}
            for position, grade_id in enumerate(the_chapter.answer_order):
                right = number % 3 == 0 or (number % 3 == 2 and position % 2 == 0)
                if right:
                    answers[grade_id] = the_chapter.reference[grade_id][0]
            notebook = synthetic_notebook(the_chapter, answers)
            (submitted / f"student{number:02d}.ipynb").write_text(json.dumps(notebook, indent=1), encoding="utf-8")
        started = time.monotonic()
        report = grade_paths([submitted], chapter=name, course=course, limits=limits, jobs=jobs, progress=True)
        seconds = time.monotonic() - started
    print(report.summary(), file=stream)
    workers = jobs or min(os.cpu_count() or 1, 8)
    print(f"\nbenchmark: graded {count} submissions of {name} ({len(the_chapter.exercises)} exercises each) in "
          f"{seconds:.1f} s with {workers} worker(s) on {os.cpu_count()} CPU core(s), start-up and self-test "
          f"included", file=stream)
    return {"chapter": name, "count": count, "seconds": seconds, "workers": workers,
            "totals": {s.student: s.total for s in report.students}}


