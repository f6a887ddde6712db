"""The command line: ``pgcourse grade`` (also ``python -m pgcourse.classroom.grading``).

Three things it does (docs/teachers.md walks a term through them):

- grade an assignment: ``pgcourse grade SUBMISSIONS --out grades/02.csv`` (with ``--update`` and
  ``--student``: re-grade some students into that gradebook; with ``--update`` and no submissions: grade
  nothing, apply ``--manual`` points, the LMS's ``--timestamps`` or a change of the late policy to the results
  it holds — the late settings not given again are the gradebook's, and with ``--student`` they change only
  those students: an extension), and with ``--gradebook term.csv`` update the term gradebook, with
  ``--feedback DIR`` write a file per student, with ``--similarity`` write the hints; with ``--roster`` a
  student of the class list who handed in nothing gets a row (0, "no submission");
- export the term gradebook: ``pgcourse grade --export canvas --gradebook term.csv --out canvas.csv``;
- measure: ``pgcourse grade --bench``.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .assignment import make_assignment, read_assignment_file
from .copies import csv_rows as copies_csv, reference_copies, summary_lines as copies_summary
from .course import GradingError, find_course, load_course
from .feedback import write_feedback
from .gradebook import GradeReport, _gradebook_paths, _number
from .grader import bench, grade_paths, stored_policy
from .identity import read_timestamps
from .lms import read_roster
from .manual import free_text_csv
from .records import audit, course_version, run_stamp, write_kept
from .sandbox import UNSAFE, Limits
from .similarity import report_csv, similar_pairs, summary_lines
from .term import export, read_term, term_paths, update_term, write_term
from .timing import settings_for_update

DESCRIPTION = "Classroom grading: ``pgcourse grade SUBMISSION... --out grades.csv``."
LIMIT_OPTIONS = {"exercise_s": "--timeout", "submission_s": "--submission-timeout", "memory_mb": "--memory",
                 "budget_factor": "--time-budget", "budget_floor_s": "--time-budget-floor"}
LIMIT_ARGUMENTS = {"exercise_s": "timeout", "submission_s": "submission_timeout", "memory_mb": "memory",
                   "budget_factor": "time_budget", "budget_floor_s": "time_budget_floor"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("submissions", nargs="*", metavar="SUBMISSION",
                        help="student notebooks, or folders of them (folder/alice.ipynb, folder/alice/*.ipynb, "
                             "nbgrader's submitted/, a Canvas or Moodle download)")
    parser.add_argument("--out", metavar="FILE.csv", help="the assignment's gradebook CSV (the JSON goes next to it); "
                                                          "with --export, the file to write")
    parser.add_argument("--json", metavar="FILE.json", help="feedback JSON (default: --out with .json)")
    parser.add_argument("--chapter", metavar="NAME", help="e.g. 01_reinforce or 01 (default: from the notebooks)")
    parser.add_argument("--course", metavar="DIR", help="course folder with solutions/ or exercises/ (default: found "
                                                        "from the current folder)")
    parser.add_argument("--jobs", type=int, metavar="N", help="parallel grading workers (default: one per CPU core)")
    parser.add_argument("--timeout", type=float, default=Limits.exercise_s, metavar="S",
                        help=f"seconds of work per exercise: CPU time of its answer cells and its check, the same "
                             f"at any load (default {Limits.exercise_s:g})")
    parser.add_argument("--submission-timeout", type=float, default=Limits.submission_s, metavar="S",
                        help=f"seconds of work (CPU time) per submission (default {Limits.submission_s:g})")
    parser.add_argument("--memory", type=int, default=Limits.memory_mb, metavar="MB",
                        help=f"memory a submission's code may use (default {Limits.memory_mb})")
    parser.add_argument("--time-budget", type=float, default=Limits.budget_factor, metavar="FACTOR",
                        help="an exercise's time budget: FACTOR times the course solution's own time for it in the "
                             f"self-test, at least --time-budget-floor, at most --timeout (default "
                             f"{Limits.budget_factor:g})")
    parser.add_argument("--time-budget-floor", type=float, default=Limits.budget_floor_s, metavar="S",
                        help=f"the smallest time budget of an exercise, in seconds (default {Limits.budget_floor_s:g})")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grade without the bubblewrap sandbox (student code then sees this machine's files and "
                             "processes: see docs/teachers.md); without it, grading refuses to start where no "
                             "sandbox can be made")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing gradebook (the previous one is kept in <name>.history/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    term = parser.add_argument_group("a term: assignments, deadlines, the teacher's points, feedback, LMS")
    term.add_argument("--assignment", metavar="FILE.toml", help="the assignment's settings: name, chapter, points, "
                                                                "deadline, late penalty (the options below win)")
    term.add_argument("--name", metavar="NAME", help="the assignment's column in --gradebook (default: the chapter)")
    term.add_argument("--deadline", metavar="TIME", help="e.g. 2025-03-14T23:59+01:00 (no zone: local time)")
    term.add_argument("--late-penalty", metavar="RATE", help="per started day/hour late, of the points possible: "
                                                            "10%%/day, 2%%/hour, 1pt/day; 100%% = late work gets 0")
    term.add_argument("--grace", metavar="DURATION", help="lateness not counted, e.g. 15m")
    term.add_argument("--timestamps", metavar="FILE.csv", help="submission times from the LMS (a student and a time "
                                                               "column, e.g. Moodle's grading worksheet)")
    term.add_argument("--partial-credit", action="store_true", default=None,
                      help="points for the cases a failing answer gets right (standard checks; see docs)")
    term.add_argument("--hide-expected", action="store_true", default=None,
                      help="feedback files do not show the values the checks expected")
    term.add_argument("--update", action="store_true",
                      help="merge into the existing --out gradebook: the students graded now replace their rows; "
                           "without submissions, apply --manual, --timestamps or late settings to the results it holds "
                           "(the settings not given again are the gradebook's)")
    term.add_argument("--student", action="append", metavar="ID",
                      help="grade only this student (repeatable); with --update, change only this student (a "
                           "--deadline given is their extension)")
    term.add_argument("--manual", metavar="FILE.csv", help="the teacher's points and comments: student,exercise,"
                                                           "points,comment (free-text answers, overrides)")
    term.add_argument("--feedback", metavar="DIR", help="write one feedback file per student into DIR")
    term.add_argument("--feedback-format", choices=("md", "html"), default="md", help="feedback files (default md)")
    term.add_argument("--gradebook", metavar="TERM.csv", help="the term gradebook to update (one column per "
                                                              "assignment), or to --export")
    term.add_argument("--similarity", action="store_true", help="write <out>.similarity.csv: answers that look "
                                                                "alike across students (a hint, never a penalty)")
    term.add_argument("--export", choices=("canvas", "moodle"), help="write --gradebook in the LMS's import format "
                                                                     "to --out")
    term.add_argument("--hunt-key", metavar="KEY.json", help="chapter 06: the key of the bug hunts made for the class "
                                                             "(python -m pgcourse.classroom.hunts); each student's hunt "
                                                             "is graded on their own (without it: the practice six)")
    term.add_argument("--roster", metavar="FILE.csv", help="the LMS's class list (its gradebook export), to match "
                                                           "students for --export")
    parser.add_argument("--bench", action="store_true",
                        help="benchmark: grade --count synthetic submissions of --chapter and print the time")
    parser.add_argument("--count", type=int, default=30, metavar="N", help="submissions for --bench (default 30)")


def _limits(args: argparse.Namespace) -> Limits:
    try:
        return Limits(**{field: getattr(args, name) for field, name in LIMIT_ARGUMENTS.items()})
    except ValueError as error:
        text = str(error)
        for field, option in LIMIT_OPTIONS.items():
            if f"limit {field} " in text:
                value = getattr(args, LIMIT_ARGUMENTS[field])
                raise GradingError(f"{option} must be a positive number, got {value!r}") from None
        raise GradingError(text) from None


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of this run, for the audit line (JSON-safe)."""
    return {key: value for key, value in sorted(vars(args).items())
            if key not in ("handler", "command") and value not in (None, False, [])}


def run(args: argparse.Namespace) -> int:
    limits = _limits(args)
    if args.jobs is not None and args.jobs < 1:
        raise GradingError("--jobs must be at least 1")
    if args.bench:
        bench(count=args.count, chapter=args.chapter, course=args.course, jobs=args.jobs, limits=limits)
        return 0
    if args.export:
        return _export(args)
    if not args.out:
        raise GradingError("give --out FILE.csv for the gradebook")
    if not args.submissions and not args.update:
        raise GradingError("give the submissions to grade (notebooks or folders), or --update to re-apply --manual "
                           "or a late policy to the gradebook at --out")
    if args.gradebook:
        term = {p.resolve() for p in term_paths(args.gradebook)}  # a bad name fails before grading
        if term & {p.resolve() for p in _gradebook_paths(args.out, args.json)}:
            raise GradingError(f"--gradebook {args.gradebook} and --out {args.out} are the same files: the term "
                               "gradebook (all assignments) and this assignment's gradebook need names of their own")
        read_term(args.gradebook)
    late, late_changes = _late_settings(args)
    assignment = make_assignment(args.assignment, name=args.name, chapter=args.chapter, deadline=late.get("deadline"),
                                 late_penalty=late.get("late_penalty"), grace=late.get("grace"),
                                 partial_credit=args.partial_credit, hide_expected=args.hide_expected)
    timestamps = read_timestamps(args.timestamps) if args.timestamps else None
    roster = read_roster(args.roster) if args.roster else None
    course = load_course(args.course) if args.course else find_course()
    kept: list[Path] = []
    try:
        report = grade_paths(args.submissions, out=args.out, json_out=args.json, chapter=args.chapter, course=course,
                             limits=limits, jobs=args.jobs, isolation=UNSAFE if args.unsafe_no_sandbox else "auto",
                             overwrite=args.overwrite, progress=not args.quiet, assignment=assignment,
                             update=args.update, students=args.student, manual=args.manual, timestamps=timestamps,
                             kept=kept, late_changes=late_changes, roster=roster, hunt_key=args.hunt_key)
    except KeyboardInterrupt:
        print(interrupted_message(_gradebook_paths(args.out, args.json)), file=sys.stderr)
        return 130
    stamp = run_stamp()
    written = list(_gradebook_paths(args.out, args.json))
    extra_lines = _after_grading(args, report, report.hide_expected, roster, stamp, written, kept)
    print(report.summary())
    for line in extra_lines:
        print(line)
    if report.changes and not args.feedback:
        print(f"note: {len(report.changes)} grade(s) changed: give --feedback DIR to write their students' feedback "
              "files again (they say why)")
    csv_path = written[0]
    audit(csv_path, {"action": "update" if args.update else "grade", "assignment": report.name,
                     "chapter": report.chapter.name, "course": course_version(course.root, report.chapter.path),
                     "options": _options(args), "students": len(report.students),
                     "graded": sorted(s.student for s in report.submissions),
                     **({"changed": {student: [_number(before), _number(after)]
                                     for student, before, after, _ in report.changes}} if args.update else {}),
                     "written": [str(p) for p in written], "kept": [str(p) for p in kept]})
    print("wrote " + ", ".join(str(p) for p in written[:2]) + ("" if len(written) <= 2 else
                                                                f" and {len(written) - 2} more file(s)"))
    if kept:
        print(f"kept the previous version(s) in {kept[0].parent}")
    return 0


def interrupted_message(gradebook: Sequence[Path]) -> str:
    """What Ctrl-C during the grading left: the gradebook files are written at the end, in one step each
    (atomically), so they are either as they were or not there; the same command grades from the start."""
    there = [str(p) for p in gradebook if Path(p).exists()]
    state = (f"{' and '.join(there)} {'is' if len(there) == 1 else 'are'} as before" if there
             else "no gradebook was written")
    return (f"pgcourse grade: interrupted (Ctrl-C) before the grades were written: {state}, and no submission was "
            f"changed. Run the same command again to grade from the start.")


def _late_settings(args: argparse.Namespace) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The deadline, late penalty and grace to grade with (as text), and with ``--update`` the ones this run
    changes (:func:`pgcourse.classroom.grading.timing.settings_for_update`: a setting not given again is the gradebook's)."""
    options = {key: value for key, value in (("deadline", args.deadline), ("late_penalty", args.late_penalty),
                                             ("grace", args.grace)) if value is not None}
    stored = stored_policy(args.out, args.json) if args.update and args.out else None
    if stored is None:  # not an update (or no gradebook to update: grading says so)
        return options, None
    data = read_assignment_file(args.assignment) if args.assignment else {}
    from_file = {key: data[key] for key in ("deadline", "late_penalty", "grace") if key in data}
    return settings_for_update(stored, options, from_file)


def _after_grading(args: argparse.Namespace, report: GradeReport, hide_expected: bool, roster: Any, stamp: str,
                   written: list[Path], kept: list[Path]) -> list[str]:
    """Free-text export, feedback files, similarity hints and the term gradebook; lines for the summary."""
    lines = []
    csv_path = Path(args.out)
    free_text = free_text_csv(report)
    if free_text is not None:
        path = csv_path.with_name(f"{csv_path.stem}.free-text.csv")
        _keep(kept, write_kept(path, free_text, stamp))
        written.append(path)
        lines.append(f"free-text answers to grade: {path} (fill in points and comment, then --update --manual)")
    if args.feedback:
        only = set(args.student) if args.student else None
        files = write_feedback(report, args.feedback, args.feedback_format, hide_expected, only, stamp)
        written += files
        lines.append(f"feedback: {len(files)} file(s) in {args.feedback}")
    copies = reference_copies(report.chapter, report.submissions) if report.submissions else []
    if args.similarity and report.submissions:
        pairs = similar_pairs(report.chapter, report.submissions)
        path = csv_path.with_name(f"{csv_path.stem}.similarity.csv")
        _keep(kept, write_kept(path, report_csv(pairs) + copies_csv(copies, report.chapter), stamp))
        written.append(path)
        lines += summary_lines(pairs)
    if report.submissions:
        lines += copies_summary(copies, report.chapter)
    if args.gradebook:
        term = read_term(args.gradebook)
        warnings = update_term(term, report, str(_gradebook_paths(args.out, args.json)[1]), roster)
        kept += write_term(args.gradebook, term, stamp)
        written += list(term_paths(args.gradebook))
        audit(term_paths(args.gradebook)[0], {"action": "update-term", "assignment": report.name,
                                              "from": str(csv_path), "students": len(report.students)})
        lines += [f"warning: {warning}" for warning in warnings]
        lines.append(f"term gradebook: {args.gradebook} ({len(term['students'])} students, "
                     f"{len(term['assignments'])} assignment(s))")
    return lines


def _keep(kept: list[Path], path: Path | None) -> None:
    if path is not None:
        kept.append(path)


def _export(args: argparse.Namespace) -> int:
    if not args.gradebook or not args.out:
        raise GradingError(f"--export {args.export} needs --gradebook TERM.csv (what to export) and --out FILE.csv")
    if args.submissions:
        raise GradingError("--export writes the term gradebook; it grades nothing: leave out the submissions")
    term = read_term(args.gradebook, must_exist=True)
    roster = read_roster(args.roster) if args.roster else None
    text, warnings = export(term, args.export, roster)
    out = Path(args.out)
    if out.resolve() in {p.resolve() for p in term_paths(args.gradebook)}:
        raise GradingError(f"--out {out} is the term gradebook itself; choose another file for the export")
    if out.exists() and not args.overwrite and out.read_text(encoding="utf-8", errors="replace") != text:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it (the previous one is kept)")
    kept = write_kept(out, text, run_stamp())
    audit(term_paths(args.gradebook)[0], {"action": f"export-{args.export}", "out": str(out),
                                          "roster": args.roster, "kept": str(kept) if kept else None})
    for warning in warnings:
        print(f"warning: {warning}")
    print(f"wrote {out}: {len(term['students'])} student(s), {len(term['assignments'])} assignment(s), "
          f"for {args.export.capitalize()}'s grade import")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgcourse.classroom.grading", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (GradingError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
