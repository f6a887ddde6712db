"""Answers identical to the course's own solution: a hint for the teacher, never a penalty, never in feedback.

A handout (``pgcourse handout``) leaves ``solutions/`` out, but a solution notebook can still travel
(last year's class, a fork of the course online). Each student's answer to an exercise is compared with
the answer cell of the course's solution notebook after the similarity module's normalisation
(:func:`pgcourse.classroom.grading.similarity.normalised_tokens`: names renamed by first use, literals, comments and
layout gone), so renaming the variables or deleting the comments does not hide a copy. The teacher sees
the matches in the summary after grading and, with ``--similarity``, as rows of the similarity report whose
other student is the course's solution; ``verbatim`` says whether the code lines are the solution's own,
comments included.

Not compared: answers whose own part (the solution's tokens beyond the handed-out stub) is shorter than
:data:`MIN_OWN_TOKENS` — a one-line formula has few ways to be written and students who wrote it alone
write the solution's — and multiple-choice answers (a right answer is always the solution's).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from . import similarity
from .course import Chapter
from .gradebook import Submission, csv_text_cell
from .partial import concept_check

MIN_OWN_TOKENS = getattr(similarity, "MIN_TOKENS", 40)  # the similarity hints' own floor, where it has one
SOLUTION = "the course's solution"


@dataclass(frozen=True)
class ReferenceCopy:
    exercise: str      # the answer cell's grade_id
    student: str
    verbatim: bool     # the code lines are the solution's own, comments included
    tokens: int        # the solution's tokens beyond the stub (how much there was to copy)


def _code_lines(source: str) -> list[str]:
    """The lines of a cell without the solution markers, trailing spaces and blank lines."""
    return [line.rstrip() for line in source.splitlines()
            if line.strip() and line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION")]


def own_tokens(reference: str, stub: str) -> int:
    """How many normalised tokens the solution adds to the handed-out stub."""
    return len(similarity.normalised_tokens(reference)) - len(similarity.normalised_tokens(stub))


def reference_copies(chapter: Chapter, submissions: list[Submission]) -> list[ReferenceCopy]:
    """Every (exercise, student) whose answer is the course's solution after normalisation, sorted."""
    if not chapter.reference:
        return []
    multiple_choice = {grade_id for exercise in chapter.auto_exercises if concept_check(exercise.check_source)
                       for grade_id in exercise.answer_ids}
    found = []
    for grade_id in chapter.answer_order:
        sources = chapter.reference.get(grade_id)
        if not sources or grade_id in multiple_choice:
            continue
        reference = "\n".join(sources)
        size = own_tokens(reference, "\n".join(chapter.stubs.get(grade_id, [])))
        if size < MIN_OWN_TOKENS:
            continue
        wanted = similarity.normalised_tokens(reference)
        for submission in submissions:
            if submission.problem is not None:
                continue
            answer = "\n".join(c.source for c in submission.cells if c.grade_id == grade_id and c.cell_type == "code")
            if answer and similarity.normalised_tokens(answer) == wanted:
                found.append(ReferenceCopy(grade_id, submission.student,
                                           _code_lines(answer) == _code_lines(reference), size))
    return sorted(found, key=lambda copy: (copy.exercise, copy.student))


def csv_rows(copies: list[ReferenceCopy], chapter: Chapter) -> str:
    """The copies as rows of the similarity report (no header): the other student is the course's solution."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    where = f"{chapter.path.parent.name}/{chapter.path.name}"
    for copy in copies:
        other = f"{SOLUTION} ({where}{', verbatim' if copy.verbatim else ''})"
        writer.writerow([copy.exercise, csv_text_cell(copy.student), csv_text_cell(other), 1.0, copy.tokens])
    return buffer.getvalue()


def summary_lines(copies: list[ReferenceCopy], chapter: Chapter, limit: int = 10) -> list[str]:
    """For the teacher's summary: who handed in the course's own solution (a hint to read, never a verdict)."""
    if not chapter.reference:
        return []
    if not copies:
        return [f"solution copies: no answer is the course's solution ({chapter.path.parent.name}/"
                f"{chapter.path.name}) after normalisation (answers under {MIN_OWN_TOKENS} tokens of their own "
                "and multiple-choice answers are not compared)"]
    lines = [f"solution copies (a hint to read the notebooks, never a verdict): {len(copies)} answer(s) are the "
             f"course's solution ({chapter.path.parent.name}/{chapter.path.name}) with names, comments and layout "
             "set aside"]
    lines += [f"  {copy.exercise}: {copy.student}{' (verbatim, comments included)' if copy.verbatim else ''}"
              for copy in copies[:limit]]
    if len(copies) > limit:
        lines.append(f"  … {len(copies) - limit} more in the similarity file (--similarity)")
    return lines
