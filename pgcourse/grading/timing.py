"""When each submission was handed in, which of a student's notebooks counts, and what lateness costs.

The time of a submission is the most trusted one known (see :mod:`pgcourse.grading.identity`): the
LMS's time from ``--timestamps`` (the teacher's file), then nbgrader's ``timestamp.txt`` in the
student's own folder (the class writes the submissions folder, so it comes second), then, for a
Canvas download without either, Canvas's own ``LATE`` flag (late by an unknown amount: charged one
day, or hour, and said so), and last the file's modification time.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from .assignment import LatePolicy
from .course import Course
from .gradebook import StudentResult, Submission
from .identity import file_time, iso, nbgrader_timestamp

CANVAS_FLAG = "canvas-late-flag"
LATE_NOTES = ("handed in ", "Canvas marked this submission LATE")


def stamp_submission(submission: Submission, lms_times: dict[str, datetime], roots: set[Path]) -> None:
    """Set ``submitted_at`` and ``time_source`` from the most trusted source there is (``roots``: the folders
    the teacher gave, whose own ``timestamp.txt`` would be no student's)."""
    identity = submission.identity
    for key in _lms_keys(submission):
        if key in lms_times:
            submission.submitted_at, submission.time_source = lms_times[key], "--timestamps"
            return
    moment = nbgrader_timestamp(submission.path) if submission.path.parent.resolve() not in roots else None
    if moment is not None:
        submission.submitted_at, submission.time_source = moment, "nbgrader timestamp.txt"
        return
    if identity is not None and identity.lms == "canvas":
        submission.submitted_at = None
        submission.time_source = CANVAS_FLAG
        return
    submission.submitted_at, submission.time_source = file_time(submission.mtime_ns), "file modification time"


def _lms_keys(submission: Submission) -> list[str]:
    identity = submission.identity
    keys = [submission.student]
    if identity is not None:  # a name two Moodle participants share is neither's (their numbers are theirs)
        keys += [identity.lms_id, "" if identity.namesake else identity.name, f"Participant {identity.lms_id}"]
    return [key for key in keys if key and key != "Participant "]


def choose(course: Course, chapter: str, group: list[Submission]) -> tuple[Submission, str]:
    """The one of a student's submissions that counts, and why: a notebook holding the chapter's answer
    cells beats one without, then the latest by the most trusted time (a Canvas file's LATE flag and its
    upload number, else the file time), ties going to the last path."""
    ids = course.grade_ids(chapter)
    for candidates, only in (([s for s in group if not s.problem and s.grade_ids & ids],
                              "the only one with this chapter's answer cells"),
                             ([s for s in group if not s.problem], "the only one that could be read"),
                             (group, "")):
        if candidates:
            break
    chosen = max(candidates, key=_order)
    if len(candidates) == 1:
        return chosen, only
    return chosen, _why_latest(chosen, [s for s in candidates if s is not chosen])


def _why_latest(chosen: Submission, others: list[Submission]) -> str:
    """Which time decided: the submission time (and its source), else Canvas's upload number, else the file's."""
    def same(a: Submission, b: Submission, position: int) -> bool:
        return _order(a)[position] == _order(b)[position]

    if not all(same(chosen, other, 0) for other in others):
        return f"the latest by its submission time, from {chosen.time_source}"
    if not all(same(chosen, other, 1) and same(chosen, other, 2) for other in others):
        return "the latest upload to Canvas"
    if not all(same(chosen, other, 3) for other in others):
        return "the most recently modified file"
    return "the same time as another: the last by path"


def _order(submission: Submission) -> tuple[Any, ...]:
    moment = submission.submitted_at.timestamp() if submission.submitted_at is not None else float("-inf")
    identity = submission.identity
    late, upload = (identity.late_flag, identity.upload) if identity is not None else (False, 0)
    return (moment, late, upload, submission.mtime_ns, str(submission.path))


def apply_lateness(row: StudentResult, submission: Submission | None, policy: LatePolicy) -> None:
    """Set the row's submission time, lateness and penalty under ``policy`` (from ``submission``, else from
    what the row already holds: a gradebook being updated)."""
    if submission is not None:
        row.submitted_at = iso(submission.submitted_at)
        row.time_source = submission.time_source
    row.late_s, row.late_units, row.penalty = 0.0, 0, 0.0
    row.notes = [note for note in row.notes if not note.startswith(LATE_NOTES)]  # re-applied: said once
    if policy.deadline is None:
        return
    flagged = bool(row.identity.get("late_flag"))
    if row.time_source == CANVAS_FLAG:
        if flagged:
            row.penalty, row.late_units = policy.penalty(0.0, row.max_total, units=1)
            row.notes.append(f"Canvas marked this submission LATE but gives no time: charged one "
                             f"{policy.unit_name() or 'penalty'}, {row.penalty:g} point(s) (the teacher can give the "
                             "exact time with --timestamps)")
        return
    if row.submitted_at is None:
        return
    row.late_s = policy.lateness(datetime.fromisoformat(row.submitted_at))
    row.penalty, row.late_units = policy.penalty(row.late_s, row.max_total)
    if row.late_s > 0:
        row.notes.append(f"handed in {_duration(row.late_s)} after the deadline{' and grace period' if policy.grace_s else ''}"
                         f" ({row.time_source}): {row.penalty:g} point(s) taken")


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def untrusted_times(rows: list[StudentResult], policy: LatePolicy) -> list[str]:
    """A warning when a deadline is judged on file modification times (unzipping can change them)."""
    if policy.deadline is None:
        return []
    weak = sorted(row.student for row in rows if row.time_source == "file modification time")
    if not weak:
        return []
    listed = ", ".join(weak[:5]) + (" …" if len(weak) > 5 else "")
    return [f"the submission times of {len(weak)} student(s) ({listed}) are file modification times, the least "
            "trusted source: give the LMS's times with --timestamps, or collect with nbgrader (timestamp.txt)"]
