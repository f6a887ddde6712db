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
from .gradebook import (ExerciseResult, GradeReport, StudentResult, Submission, _gradebook_paths, _number,
                        check_gradebook_free, collect_submissions, read_submission, write_gradebook)
from .pool import Grader
from .sandbox import LIMITS_ONLY, SANDBOX, Limits

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
        listing = "; ".join(f"{name}: {', '.join(sorted(students)[:5])}{' …' if len(students) > 5 else ''}"
                            for name, students in sorted(votes.items()))
        raise GradingError(f"the submissions belong to different chapters ({listing}); grade one chapter at a "
                           "time, or pass --chapter")
    return next(iter(votes))


def _dedupe(course: Course, chapter: str | None, submissions: list[Submission]) -> list[Submission]:
    by_student: dict[str, list[Submission]] = {}
    for submission in submissions:
        by_student.setdefault(submission.student, []).append(submission)
    kept = []
    for student, group in sorted(by_student.items()):
        if len(group) > 1 and chapter is not None:
            ids = course.grade_ids(chapter)
            matching = [s for s in group if not s.problem and s.grade_ids & ids]
            group = matching or group
        if len(group) > 1:
            files = ", ".join(str(s.path) for s in group)
            raise GradingError(f"student {student!r} has {len(group)} notebooks ({files}); give one per student")
        kept.append(group[0])
    return kept


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
        gradebook = {p.resolve() for p in _gradebook_paths(out, json_out)}
        clash = [str(path) for _, path in found if path.resolve() in gradebook]
        if clash:
            raise GradingError(f"--out would overwrite a submission: {clash[0]}")
    submissions = [read_submission(path, student) for student, path in found]
    name = course.resolve(chapter) if chapter else _infer_chapter(course, submissions)
    submissions = _dedupe(course, name, submissions)
    the_chapter = course.chapter(name)

    tasks, notes = [], {}
    for submission in submissions:
        if submission.problem is None:
            answers, notes[submission.student] = submission.answers(the_chapter)
            tasks.append((submission.student, answers))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(submissions), desc=f"grading {name}", unit="notebook", file=sys.stderr,
                   dynamic_ncols=True)
        bar.update(len(submissions) - len(tasks))

    def advance(key: str, exercises: dict[str, Any]) -> None:
        if bar is not None:
            bar.set_postfix_str(key[:20])
            bar.update(1)

    own = grader is None
    if grader is None:  # no more workers than submissions: each one costs seconds of start-up
        jobs = min(jobs or min(os.cpu_count() or 1, 8), max(1, len(tasks)))
    pool = grader or Grader(jobs=jobs, isolation=isolation, cwd=the_chapter.path.parent)
    try:
        raw = pool.grade(the_chapter, tasks, limits, on_result=advance) if tasks else {}
        mode, detail = pool.mode, pool.detail
    finally:
        if own:
            pool.close()
        if bar is not None:
            bar.close()

    students = []
    for submission in submissions:
        exercises = {}
        for exercise in the_chapter.exercises:
            if submission.problem is not None:
                result = ExerciseResult(0, exercise.points, "invalid", f"not graded: {submission.problem}")
            else:
                got = raw[submission.student][exercise.id]
                points = float(got["points"]) if got["status"] == "passed" else 0.0
                result = ExerciseResult(_number(min(points, exercise.points)), exercise.points, got["status"],
                                        got["feedback"])
            exercises[exercise.id] = result
        students.append(StudentResult(submission.student, str(submission.path), submission.sha256, exercises,
                                      submission.problem, notes.get(submission.student, [])))
    warnings = []
    for submission in submissions:  # read-only: a changed file means something else touched it
        try:
            now = hashlib.sha256(submission.path.read_bytes()).hexdigest()
        except OSError:
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
    parser.add_argument("--isolation", choices=["auto", SANDBOX, LIMITS_ONLY], default="auto",
                        help="auto: the namespace sandbox where it works, else resource limits only")
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
                         course=args.course, limits=limits, jobs=args.jobs, isolation=args.isolation,
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
