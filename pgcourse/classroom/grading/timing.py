"""When each submission was handed in, which of a student's notebooks counts, and what lateness costs.

The time of a submission is the most trusted one known (see :mod:`pgcourse.classroom.grading.identity`): the
LMS's time from ``--timestamps`` (the teacher's file), then nbgrader's ``timestamp.txt`` in the
student's own folder (the class writes the submissions folder, so it comes second), then, for a
Canvas download without either, Canvas's own ``LATE`` flag (late by an unknown amount: charged one
day, or hour, and said so), and last the file's modification time.

A gradebook keeps each student's time and its source, so an ``--update`` applies the LMS's times
(:func:`restamp`) and a changed late policy without grading again; a student may have settings of their
own (an extension: :func:`student_policy`), and a penalty that changes says why (:func:`late_change`).
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .assignment import LatePolicy
from .course import Course, GradingError
from .gradebook import StudentResult, Submission
from .identity import file_time, iso, nbgrader_timestamp

CANVAS_FLAG = "canvas-late-flag"
LATE_NOTES = ("handed in ", "Canvas marked this submission LATE", "your deadline: ", "your late policy: ")
POLICY_FIELDS = ("deadline", "late_penalty", "grace_s")  # LatePolicy.to_json's, as a student's own settings hold them


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


def student_policy(policy: LatePolicy, own: dict[str, Any]) -> LatePolicy:
    """The class's ``policy`` with a student's own settings (``StudentResult.late_policy``: an extension) in place."""
    if not own:
        return policy
    return LatePolicy.from_json({**policy.to_json(), **{key: own[key] for key in POLICY_FIELDS if key in own}})


def describe_own(policy: LatePolicy, own: LatePolicy) -> str:
    """A student's own late policy, for their notes: their deadline, or all of it when more differs."""
    if (own.text, own.grace_s) == (policy.text, policy.grace_s) and own.deadline is not None:
        return f"your deadline: {iso(own.deadline)} (an extension; the class's is {iso(policy.deadline) or 'none'})"
    return f"your late policy: {own.describe()} (the class's: {policy.describe()})"


def apply_lateness(row: StudentResult, submission: Submission | None, policy: LatePolicy) -> None:
    """Set the row's submission time, lateness and penalty under ``policy`` with the student's own settings
    (from ``submission``, else from what the row already holds: a gradebook being updated)."""
    if submission is not None:
        row.submitted_at = iso(submission.submitted_at)
        row.time_source = submission.time_source
    row.late_s, row.late_units, row.penalty = 0.0, 0, 0.0
    row.notes = [note for note in row.notes if not note.startswith(LATE_NOTES)]  # re-applied: said once
    own = student_policy(policy, row.late_policy)
    if own != policy:
        row.notes.append(describe_own(policy, own))
    policy = own
    if policy.deadline is None or row.no_submission:
        return
    flagged = bool(row.identity.get("late_flag"))
    if flagged and row.submitted_at is None and not row.time_source:
        row.time_source = CANVAS_FLAG  # a gradebook written before the flag was kept as the time's source
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


def restamp(row: StudentResult, lms_times: dict[str, datetime]) -> bool:
    """Set a gradebook row's submission time from the LMS's times (``--timestamps`` with ``--update``: the same
    keys as for a submission, :func:`_lms_keys`, from what the row kept); whether one applied."""
    identity = row.identity
    keys = [row.student]
    if identity.get("lms_id"):
        keys += [identity["lms_id"], f"Participant {identity['lms_id']}"]
    if identity.get("name") and identity["name"] == row.student:  # a name two Moodle participants share is neither's
        keys.append(identity["name"])
    for key in keys:
        if key in lms_times:
            row.submitted_at, row.time_source = iso(lms_times[key]), "--timestamps"
            return True
    return False


def _source(row: StudentResult) -> str:
    if row.time_source == CANVAS_FLAG:
        return "Canvas's LATE flag, no time" if row.identity.get("late_flag") else "no time (Canvas: not flagged LATE)"
    if row.submitted_at is None:
        return "no time"
    return f"{row.submitted_at}, {row.time_source}"


def late_change(before: StudentResult, row: StudentResult, class_before: LatePolicy, class_now: LatePolicy) -> str:
    """Why ``row``'s late penalty differs from ``before`` (the same student, as the gradebook had them), e.g.
    "submission time 2025-03-09T09:59:00+00:00, --timestamps; was Canvas's LATE flag, no time"; empty when it
    does not differ."""
    if before.penalty == row.penalty:
        return ""
    why = []
    if (before.submitted_at, before.time_source) != (row.submitted_at, row.time_source):
        why.append(f"submission time {_source(row)}; was {_source(before)}")
    own_before, own_now = student_policy(class_before, before.late_policy), student_policy(class_now, row.late_policy)
    if own_now != own_before:
        if row.late_policy:
            why.append("own " + describe_own(class_now, own_now).removeprefix("your "))
        else:
            why.append(f"late policy now: {own_now.describe()}")
    if not why:
        why.append(f"late policy: {own_now.describe()}")
    return "; ".join(why)


LATE_FIELDS = {"deadline": "deadline", "late_penalty": "late_penalty", "grace": "grace_s"}  # option: to_json's field


def settings_for_update(stored: LatePolicy, options: dict[str, str], from_file: dict[str, str]) -> tuple[
        dict[str, str], dict[str, Any]]:
    """The late settings of an ``--update``: (the ones to grade with, as text: those given this run, the options
    winning over the assignment file, and the gradebook's own for the others; the ones this run changes, as
    :meth:`LatePolicy.to_json`'s fields: every option given, and each setting of the file that differs from the
    gradebook's). Giving one setting never resets another: the deadline, the penalty and its unit, the grace."""
    kept: dict[str, str | None] = {}
    if stored.deadline is not None:
        kept = {"deadline": iso(stored.deadline), "late_penalty": stored.text or None,
                "grace": f"{Decimal(repr(stored.grace_s)).normalize():f}s" if stored.grace_s else None}  # exact, no exponent
    full = {key: value for key, value in {**kept, **from_file, **options}.items() if value is not None}
    if "deadline" not in full and full:
        raise GradingError(f"--{'/--'.join(k.replace('_', '-') for k in full)} needs a deadline, and the gradebook "
                           "being updated has none: give --deadline too")
    policy = LatePolicy.parse(full.get("deadline"), full.get("late_penalty"), full.get("grace"))
    now, before = policy.to_json(), stored.to_json()
    changed = {LATE_FIELDS[key]: now.get(LATE_FIELDS[key], "") for key in options}
    changed.update({LATE_FIELDS[key]: now.get(LATE_FIELDS[key], "") for key in from_file if key not in options
                    and now.get(LATE_FIELDS[key]) != before.get(LATE_FIELDS[key])})
    return full, changed


def _duration(seconds: float) -> str:
    if f"{seconds / 60:.0f}" == "0":  # under half a minute: in seconds, not as "0 min"
        return f"{seconds:.0f} s" if f"{seconds:.0f}" != "0" else "under a second"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


UNTRUSTED_TIMES = "the submission times of "  # how untrusted_times' warning starts (an update says it afresh)


def untrusted_times(rows: list[StudentResult], policy: LatePolicy) -> list[str]:
    """A warning when a deadline is judged on file modification times (unzipping can change them)."""
    if policy.deadline is None:
        return []
    weak = sorted(row.student for row in rows if row.time_source == "file modification time")
    if not weak:
        return []
    listed = ", ".join(weak[:5]) + (" …" if len(weak) > 5 else "")
    return [f"{UNTRUSTED_TIMES}{len(weak)} student(s) ({listed}) are file modification times, the least "
            "trusted source: give the LMS's times with --timestamps, or collect with nbgrader (timestamp.txt)"]
