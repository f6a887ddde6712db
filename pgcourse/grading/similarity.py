"""Similarity hints: answer cells that are near-identical across students, for the teacher to look at.

Never a penalty, never in a student's points or feedback: a hint that two students may have worked
together or copied, which the teacher judges by reading the two notebooks.

How: each student's code answer cells (per exercise) are tokenised with Python's own tokenizer,
comments, blank lines and formatting dropped, every identifier renamed by order of first use
(``x``/``eps`` and ``values``/``tiny`` look alike) and every string made ``S``. Windows of
:data:`K` tokens are hashed (fingerprints). Fingerprints of the handed-out stub, and those that more
than a quarter of the class shares (the natural way to write a short answer), are dropped, so a
short right answer that everyone writes alike is not a hint. Two students' answers to one exercise
are reported when their remaining fingerprints overlap by at least :data:`THRESHOLD` of the smaller
set and the smaller set has at least :data:`MIN_FINGERPRINTS` of them.
"""
from __future__ import annotations

import csv
import hashlib
import io
import keyword
import tokenize
from collections import Counter
from dataclasses import dataclass

from .course import Chapter
from .gradebook import Submission, csv_text_cell

K = 8
THRESHOLD = 0.8
MIN_FINGERPRINTS = 12
COMMON_SHARE = 0.25
_SKIP = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING,
         tokenize.ENDMARKER}


def normalised_tokens(source: str) -> list[str]:
    """The tokens of ``source`` with names renamed by first use, strings as ``S``; layout and comments gone."""
    names: dict[str, str] = {}
    tokens: list[str] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in _SKIP:
                continue
            if token.type == tokenize.NAME and not keyword.iskeyword(token.string):
                tokens.append(names.setdefault(token.string, f"v{len(names)}"))
            elif token.type == tokenize.STRING:
                tokens.append("S")
            else:
                tokens.append(token.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        tokens += source.split()  # not Python: compare its words
    return tokens


def fingerprints(source: str) -> set[str]:
    tokens = normalised_tokens(source)
    return {hashlib.sha1(" ".join(tokens[i:i + K]).encode()).hexdigest()[:16] for i in range(len(tokens) - K + 1)}


@dataclass(frozen=True)
class Pair:
    exercise: str
    first: str
    second: str
    overlap: float
    shared: int


def similar_pairs(chapter: Chapter, submissions: list[Submission]) -> list[Pair]:
    """Pairs of students whose answers to one exercise look alike (see the module's docstring), sorted."""
    pairs: list[Pair] = []
    for grade_id in chapter.answer_order:
        stub = set().union(*(fingerprints(source) for source in chapter.stubs.get(grade_id, [])))
        prints: dict[str, set[str]] = {}
        for submission in submissions:
            if submission.problem is not None:
                continue
            sources = [c.source for c in submission.cells if c.grade_id == grade_id and c.cell_type == "code"]
            if sources:
                prints[submission.student] = fingerprints("\n".join(sources)) - stub
        counts = Counter(fp for found in prints.values() for fp in found)
        common = {fp for fp, count in counts.items() if count > max(2, COMMON_SHARE * len(prints))}
        kept = {student: found - common for student, found in prints.items()}
        students = sorted(kept)
        for i, first in enumerate(students):
            for second in students[i + 1:]:
                smaller = min(len(kept[first]), len(kept[second]))
                if smaller < MIN_FINGERPRINTS:
                    continue
                shared = len(kept[first] & kept[second])
                if shared / smaller >= THRESHOLD:
                    pairs.append(Pair(grade_id, first, second, round(shared / smaller, 3), shared))
    return sorted(pairs, key=lambda pair: (-pair.overlap, pair.exercise, pair.first, pair.second))


def report_csv(pairs: list[Pair]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(["exercise", "student", "other_student", "overlap", "shared_fingerprints"])
    for pair in pairs:
        writer.writerow([pair.exercise, csv_text_cell(pair.first), csv_text_cell(pair.second), pair.overlap,
                         pair.shared])
    return buffer.getvalue()


def summary_lines(pairs: list[Pair], limit: int = 10) -> list[str]:
    if not pairs:
        return ["similarity: no two students' answers look alike beyond what much of the class writes"]
    lines = [f"similarity (a hint to read the notebooks, never a verdict): {len(pairs)} pair(s)"]
    lines += [f"  {pair.exercise}: {pair.first} ~ {pair.second} ({pair.overlap:.0%} of fingerprints shared)"
              for pair in pairs[:limit]]
    if len(pairs) > limit:
        lines.append(f"  … {len(pairs) - limit} more in the similarity file")
    return lines
