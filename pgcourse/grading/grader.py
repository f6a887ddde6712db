"""Grading a class (:func:`grade_paths`), the benchmark and the command line ``pgcourse grade``."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..notebook_format import clear_outputs, grade_id_of
from .course import Chapter, Course, GradingError, find_course, load_course
from .gradebook import (ExerciseResult, GradeReport, StudentResult, Submission, _gradebook_paths, _NotRead, _number,
                        check_gradebook_free, collect_submissions, read_limited, read_submission, shown,
                        write_gradebook)
from .pool import Grader
from .sandbox import UNSAFE, Limits

DESCRIPTION = "Classroom grading: ``pgcourse grade SUBMISSION... --out grades.csv``."


# --------------------------------------------------------------------------------------------------
# Grading a class
# --------------------------------------------------------------------------------------------------

def _infer_chapter(course: Course, submissions: list[Submission]) -> str:
    votes: dict[str, list[str]] = {}
    for submission in submissions:
        if submission.problem:
            continue
        ids = submission.grade_ids
        best, best_overlap = None, 0
        for name in course.names:
            overlap = len(ids & course.grade_ids(name))
            if overlap > best_overlap:
                best, best_overlap = name, overlap
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


def _dedupe(course: Course, chapter: str, submissions: list[Submission]) -> tuple[list[Submission], list[str]]:
    """One submission per student (sorted by student), and a warning for each student who handed in more.

    Handing in two notebooks must not stop the class being graded, and which one counts must not
    depend on the order of a folder listing: a notebook holding this chapter's cells beats one that
    does not (a scratch file, a symlink), then the most recently modified wins, ties going to the
    last path. The student's notes and the summary say which file was graded and which were not.
    """
    by_student: dict[str, list[Submission]] = {}
    for submission in submissions:
        by_student.setdefault(submission.student, []).append(submission)
    kept, warnings = [], []
    for student, group in sorted(by_student.items()):
        if len(group) == 1:
            kept.append(group[0])
            continue
        ids = course.grade_ids(chapter)
        for candidates, only in (([s for s in group if not s.problem and s.grade_ids & ids],
                                  "the only one with this chapter's answer cells"),
                                 ([s for s in group if not s.problem], "the only one that could be read"),
                                 (group, "")):
            if candidates:
                break
        chosen = max(candidates, key=lambda s: (s.mtime_ns, str(s.path)))
        why = only if len(candidates) == 1 else "the most recently modified"
        ignored = ", ".join(f"{s.path}" + (f" ({s.problem})" if s.problem else "")
                            for s in sorted(group, key=lambda s: str(s.path)) if s is not chosen)
        note = f"{len(group)} notebooks handed in: graded {chosen.path} ({why}); ignored {ignored}"
        chosen.notes.append(note)
        warnings.append(f"student {student!r}: {note}")
        kept.append(chosen)
    return kept, warnings


def _read(path: Path, student: str) -> Submission:
    """:func:`read_submission`, but whatever goes wrong costs this student only: their row says why."""
    try:
        return read_submission(path, student)
    except Exception as error:  # noqa: BLE001 (one odd file or grader bug must not lose the class's rows)
        return Submission(student, Path(path), None,
                          problem=f"the grader could not read this file ({type(error).__name__}: {error})")


def _grade_all(pool: Any, chapter: Chapter, tasks: list[tuple[str, dict[str, list[str]]]], limits: Limits,
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
    for exercise in chapter.exercises:
        if submission.problem is not None:
            result = ExerciseResult(0, exercise.points, "invalid", f"not graded: {submission.problem}")
        else:
            try:
                got = raw[submission.student][exercise.id]
                points = float(got["points"]) if got["status"] == "passed" else 0.0
                result = ExerciseResult(_number(min(points, exercise.points)), exercise.points, str(got["status"]),
                                        str(got["feedback"]))
            except Exception as error:  # noqa: BLE001
                reason = failed.get(submission.student) or f"no result for this exercise ({type(error).__name__})"
                result = ExerciseResult(0, exercise.points, "error",
                                        f"not graded: the grader failed on this submission ({reason})")
        exercises[exercise.id] = result
    return StudentResult(submission.student, str(submission.path), submission.sha256, exercises, submission.problem,
                         [*submission.notes, *notes])


def grade_paths(paths: Sequence[str | Path], *, out: str | Path | None = None, json_out: str | Path | None = None,
                chapter: str | None = None, course: str | Path | Course | None = None, limits: Limits | None = None,
                jobs: int | None = None, isolation: str = "auto", overwrite: bool = False, progress: bool = True,
                grader: Grader | None = None) -> GradeReport:
    """Grade the notebooks at ``paths`` (files or folders); with ``out``, also write the gradebook."""
    started = time.monotonic()
    limits = limits or Limits()
    if out is not None:
        check_gradebook_free(out, json_out, overwrite)  # fail before grading, not after
    course = course if isinstance(course, Course) else (load_course(course) if course else find_course())
    found = collect_submissions(paths, course.names)
    if out is not None:
        # A symlink in the class's folder is never followed, so it is compared as a path, not its target:
        # a link to the gradebook is a refused submission, not a reason to stop grading everyone.
        gradebook = {p.resolve() for p in _gradebook_paths(out, json_out)}
        clash = [str(path) for _, path in found if path.parent.resolve() / path.name in gradebook]
        if clash:
            raise GradingError(f"--out would overwrite a submission: {clash[0]}")
    submissions = [_read(path, student) for student, path in found]
    name = course.resolve(chapter) if chapter else _infer_chapter(course, submissions)
    submissions, warnings = _dedupe(course, name, submissions)
    the_chapter = course.chapter(name)

    tasks, notes = [], {}
    for submission in submissions:
        if submission.problem is None:
            try:
                answers, notes[submission.student] = submission.answers(the_chapter)
            except Exception as error:  # noqa: BLE001 (this student's row says why; the others are graded)
                submission.problem = f"the grader could not take the answer cells ({type(error).__name__}: {error})"
                continue
            tasks.append((submission.student, answers))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(submissions), desc=f"grading {name}", unit="notebook", file=sys.stderr,
                   dynamic_ncols=True)
        bar.update(len(submissions) - len(tasks))

    def advance(key: str, exercises: dict[str, Any]) -> None:
        if bar is not None:
            bar.set_postfix_str(shown(key)[:20])
            bar.update(1)

    own = grader is None
    if grader is None:  # no more workers than submissions: each one costs seconds of start-up
        jobs = min(jobs or min(os.cpu_count() or 1, 8), max(1, len(tasks)))
    pool = grader or Grader(jobs=jobs, isolation=isolation, cwd=the_chapter.path.parent)
    try:
        raw, failed = _grade_all(pool, the_chapter, tasks, limits, advance)
        mode, detail = pool.mode, pool.detail
    finally:
        if own:
            pool.close()
        if bar is not None:
            bar.close()

    students = [_row(submission, the_chapter, raw, failed, notes.get(submission.student, []))
                for submission in submissions]
    for submission in submissions:  # read-only: a changed file means something else touched it
        if submission.sha256 is None:
            continue
        try:
            now = hashlib.sha256(read_limited(submission.path)[0]).hexdigest()
        except (_NotRead, OSError):
            now = None
        if now != submission.sha256:
            warnings.append(f"{submission.path} changed while it was being graded (graded: the version read first)")
    report = GradeReport(the_chapter, students, limits, mode or "none", detail or "no submission needed a worker",
                         time.monotonic() - started, warnings)
    if out is not None:
        # The paths were checked free (or --overwrite given) before grading; a file that appeared since
        # (a submission's code without the sandbox, another program) is replaced, and said so.
        for path in _gradebook_paths(out, json_out):
            if path.exists() and not overwrite:
                warnings.append(f"{path} appeared while grading (not written by this run); replaced")
        write_gradebook(report, out, json_out, overwrite=True)
    return report


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


# --------------------------------------------------------------------------------------------------
# Command line (``pgcourse grade``; also ``python -m pgcourse.grading``)
# --------------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submissions", nargs="*", metavar="SUBMISSION",
                        help="student notebooks, or folders of them (folder/alice.ipynb or folder/alice/*.ipynb)")
    parser.add_argument("--out", metavar="FILE.csv", help="gradebook CSV to write (the JSON feedback goes next to it)")
    parser.add_argument("--json", metavar="FILE.json", help="feedback JSON (default: --out with .json)")
    parser.add_argument("--chapter", metavar="NAME", help="e.g. 01_reinforce or 01 (default: from the notebooks)")
    parser.add_argument("--course", metavar="DIR", help="course folder with solutions/ or exercises/ (default: found "
                                                        "from the current folder)")
    parser.add_argument("--jobs", type=int, metavar="N", help="parallel grading workers (default: one per CPU core)")
    parser.add_argument("--timeout", type=float, default=Limits.exercise_s, metavar="S",
                        help=f"wall-clock seconds per exercise (default {Limits.exercise_s:g})")
    parser.add_argument("--submission-timeout", type=float, default=Limits.submission_s, metavar="S",
                        help=f"wall-clock seconds per submission (default {Limits.submission_s:g})")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb, metavar="MB",
                        help=f"memory a submission's code may use (default {Limits.memory_mb})")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grade without the bubblewrap sandbox (student code then sees this machine's files and "
                             "processes: see docs/teachers.md); without it, grading refuses to start where no "
                             "sandbox can be made")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing gradebook")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--bench", action="store_true",
                        help="benchmark: grade --count synthetic submissions of --chapter and print the time")
    parser.add_argument("--count", type=int, default=30, metavar="N", help="submissions for --bench (default 30)")


def run(args: argparse.Namespace) -> int:
    try:
        limits = Limits(exercise_s=args.timeout, submission_s=args.submission_timeout, memory_mb=args.memory)
    except ValueError as error:
        raise GradingError(str(error)) from None
    if args.jobs is not None and args.jobs < 1:
        raise GradingError("--jobs must be at least 1")
    if args.bench:
        bench(count=args.count, chapter=args.chapter, course=args.course, jobs=args.jobs, limits=limits)
        return 0
    if not args.submissions:
        raise GradingError("give the submissions to grade (notebooks or folders)")
    if not args.out:
        raise GradingError("give --out FILE.csv for the gradebook")
    report = grade_paths(args.submissions, out=args.out, json_out=args.json, chapter=args.chapter,
                         course=args.course, limits=limits, jobs=args.jobs,
                         isolation=UNSAFE if args.unsafe_no_sandbox else "auto",
                         overwrite=args.overwrite, progress=not args.quiet)
    print(report.summary())
    csv_path, json_path = _gradebook_paths(args.out, args.json)
    print(f"wrote {csv_path} and {json_path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgcourse.grading", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (GradingError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
