"""One feedback file per student (Markdown or HTML), to hand back.

Each file has the assignment, the student's total (and any late penalty), then per exercise its
points, its status in words, the check's message (the likely mistake, the smallest failing case),
their traceback, the teacher's comment and a hint on what to do next that does not give the answer
away. With ``hide_expected`` (``--hide-expected``, as nbgrader's hidden tests) the values the
standard checks expected are replaced by ``(hidden)``; the teacher's JSON keeps them. The notes at the end
say what lateness cost and why a grade changed when the teacher updated it (the LMS's times, a new late
policy, an extension). A student of the class list who handed in nothing gets a file saying so (0 points).

File names are the student ids made safe for any file system (letters, digits, ``-``, ``_``, ``.``;
anything else becomes ``_``, and a short hash keeps two ids apart). Nothing a student wrote (their
name and file names, which are theirs in most layouts, their traceback and exception messages, their
answers, and the notes that quote any of these) becomes markup in either format, so a feedback file
cannot run script, or show a link or a heading of the student's making, wherever it is opened:

- HTML: everything is escaped (``html.escape``), and the page's Content-Security-Policy allows no script;
- Markdown, whose renderers pass raw HTML through: a name is a code span whose backtick fence is longer
  than any run of backticks in it (:func:`md_code`); a message, traceback, answer or note is an indented
  code block (:func:`md_block`), which every Markdown renders as text, whatever it holds (no fence to
  close); the teacher's own text (the assignment's name, comments) is prose whose inline markup characters
  are written as character references (:func:`md_text`). Characters that are not printable
  (a newline in a file name, a terminal escape) are shown as ``\n``, ``\x1b``.
"""
from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

from .gradebook import GradeReport, StudentResult, _number, shown_line, writable
from .records import write_kept

STATUS_WORDS = {"passed": "passed", "failed": "the check failed", "error": "your code raised an exception",
                "timeout": "time limit reached", "crashed": "the process running your code crashed",
                "missing": "answer missing", "invalid": "not graded", "manual": "to be graded by your teacher",
                "reviewed": "graded by your teacher"}
NEXT_STEP = {
    "failed": "Run the check cell in your notebook: it shows the same message. Work the smallest failing case "
              "out by hand and compare it with what your function returns.",
    "error": "Run your answer cell and then the check cell in a fresh kernel (Kernel → Restart & Run All): the "
             "traceback above shows the line that failed.",
    "timeout": "Look for a loop that never ends or work that grows with the input far more than needed; the "
               "check's cases are small.",
    "crashed": "Your code ended the process (os._exit, a segfault, using too much memory): remove that call, or "
               "work on smaller tensors.",
    "missing": "Hand in the notebook you were given, with your answer in its answer cell; do not delete or "
               "re-create answer cells (the grader finds them by their metadata).",
    "invalid": "Hand in the .ipynb notebook file itself (not a link, not another format).",
}
NO_SUBMISSION = ("No submission: nothing was handed in for this assignment, so every exercise gets 0. If you did "
                 "hand something in, tell your teacher.")
_EXPECTED_LINE = re.compile(r"^(\s*expected[^:\n]*:)[^\n]*$", re.MULTILINE)
_EXPECTED_PAIR = re.compile(r"expected [^,;\n]+, received")


def hide_expected_values(text: str) -> str:
    """The check's message without the expected values (labels kept: ``expected: (hidden)``)."""
    text = _EXPECTED_LINE.sub(lambda match: f"{match.group(1)} (hidden)", text)
    return _EXPECTED_PAIR.sub("expected (hidden), received", text)


def file_stem(student: str) -> str:
    """A file name for ``student`` that is safe everywhere and never collides with another student's."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", writable(student)).strip("._") or "student"
    if safe != student or len(safe) > 120:  # changed or cut: the id's hash tells it apart (kept after the cut)
        safe = safe[:113] + "-" + hashlib.sha256(writable(student).encode()).hexdigest()[:6]
    return safe


def md_code(text: str) -> str:
    """``text`` (one line, such as a student id or a file name) as a Markdown code span: shown as written, never
    markup. The backtick fence is one longer than the longest run of backticks in it; unprintable characters
    (a newline would end the span) are shown escaped."""
    text = shown_line(writable(text))
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_block(text: str) -> list[str]:
    """``text`` (any number of lines: a message, a traceback, an answer) as the lines of a Markdown indented code
    block, to follow a blank line: every Markdown renders it as text, whatever it holds (nothing in it can end
    it early, as a line of backticks ends a fenced block). Unprintable characters are shown escaped."""
    lines = [_printable(line).rstrip() for line in writable(text).expandtabs(4).splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return [f"    {line}" if line else "" for line in lines] or ["    (empty)"]


_MD_SPECIAL = re.compile(r"[\\`*_{}\[\]()<>#!|~&]")


def md_text(text: str) -> str:
    """``text`` (one line, after a label: never at the start of a line) inside Markdown prose, shown as written:
    the characters that make Markdown's and HTML's inline markup (emphasis, code, links and images, tags,
    character references, escapes) become numeric character references, which every renderer shows as the
    character and none takes for markup."""
    return _MD_SPECIAL.sub(lambda match: f"&#{ord(match.group())};", shown_line(writable(text)))


def _printable(line: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)


def markdown(report: GradeReport, row: StudentResult, hide_expected: bool = False) -> str:
    """The feedback for one student, as Markdown (nothing of the student's is markup: see the module's docstring)."""
    lines = [f"# Feedback: {md_text(report.name)}", "", f"Student: {md_code(row.student)}  ",
             f"Notebook: {md_code(Path(row.file).name) if row.file else 'none handed in'}", "",
             f"**Total: {_number(row.total)} / {_number(row.max_total)}**"]
    if row.penalty:
        lines.append(f"(late penalty: {_number(row.penalty)} point(s) taken from {_number(row.earned)})")
    if row.no_submission:
        lines += ["", NO_SUBMISSION]
    elif row.problem:
        lines += ["", "Your notebook could not be graded:", "", *md_block(row.problem)]
    for exercise in report.chapter.exercises:
        result = row.exercises[exercise.id]
        if row.no_submission and result.teacher_points is None and not result.comment:
            lines += ["", f"## {exercise.label}: 0 / {_number(result.max_points)} — no submission"]
            continue
        lines += ["", f"## {exercise.label}: {_number(result.points)} / {_number(result.max_points)} — "
                      f"{STATUS_WORDS.get(result.status, result.status)}"]
        message = hide_expected_values(result.feedback) if hide_expected else result.feedback
        if result.status not in ("passed", "manual", "reviewed") and message:
            lines += ["", *md_block(message)]
        if result.answer and result.status in ("manual", "reviewed"):
            lines += ["", "Your answer:", "", *md_block(result.answer)]
        if result.teacher_points is not None and result.graded_points is not None:
            lines += ["", f"Your teacher set the points to {_number(result.teacher_points)} (the grader gave "
                          f"{_number(result.graded_points)})."]
        if result.comment:
            lines += ["", f"Comment from your teacher: {md_text(result.comment)}"]
        if result.status in NEXT_STEP and result.teacher_points is None:
            lines += ["", f"What to do: {NEXT_STEP[result.status]}"]
    if row.notes:  # notes quote file names and the student's messages: a code block, one "- " line per note
        lines += ["", "## Notes", "", *md_block("\n".join(f"- {note}" for note in row.notes))]
    return "\n".join(lines) + "\n"


def html_page(report: GradeReport, row: StudentResult, hide_expected: bool = False) -> str:
    """The feedback for one student, as a self-contained HTML page (everything escaped)."""
    escape = html.escape
    notebook = f"<code>{escape(Path(row.file).name)}</code>" if row.file else "none handed in"
    parts = [f"<h1>Feedback: {escape(report.name)}</h1>",
             f"<p>Student: <code>{escape(row.student)}</code><br>Notebook: {notebook}</p>",
             f"<p><strong>Total: {_number(row.total)} / {_number(row.max_total)}</strong>"
             + (f" (late penalty: {_number(row.penalty)} point(s) taken)" if row.penalty else "") + "</p>"]
    if row.no_submission:
        parts.append(f"<p>{escape(NO_SUBMISSION)}</p>")
    elif row.problem:
        parts.append(f"<p>Your notebook could not be graded: {escape(row.problem)}</p>")
    for exercise in report.chapter.exercises:
        result = row.exercises[exercise.id]
        if row.no_submission and result.teacher_points is None and not result.comment:
            parts.append(f"<h2>{escape(exercise.label)}: 0 / {_number(result.max_points)} — no submission</h2>")
            continue
        parts.append(f"<h2>{escape(exercise.label)}: {_number(result.points)} / {_number(result.max_points)} — "
                     f"{escape(STATUS_WORDS.get(result.status, result.status))}</h2>")
        message = hide_expected_values(result.feedback) if hide_expected else result.feedback
        if result.status not in ("passed", "manual", "reviewed") and message:
            parts.append(f"<pre>{escape(message)}</pre>")
        if result.answer and result.status in ("manual", "reviewed"):
            parts.append(f"<p>Your answer:</p><blockquote><pre>{escape(result.answer)}</pre></blockquote>")
        if result.teacher_points is not None and result.graded_points is not None:
            parts.append(f"<p>Your teacher set the points to {_number(result.teacher_points)} (the grader gave "
                         f"{_number(result.graded_points)}).</p>")
        if result.comment:
            parts.append(f"<p>Comment from your teacher: {escape(result.comment)}</p>")
        if result.status in NEXT_STEP and result.teacher_points is None:
            parts.append(f"<p>What to do: {escape(NEXT_STEP[result.status])}</p>")
    if row.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(note)}</li>" for note in row.notes) + "</ul>")
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Feedback: {escape(report.name)}</title>"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto}pre{white-space:pre-wrap;"
            f"background:#f4f4f4;padding:.5em}}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_feedback(report: GradeReport, folder: str | Path, fmt: str = "md", hide_expected: bool = False,
                   students: set[str] | None = None, stamp: str = "") -> list[Path]:
    """Write one file per student (only ``students`` when given) into ``folder``; a file that changes keeps
    its previous version in ``<folder>/<name>.history/``. Returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    render = html_page if fmt == "html" else markdown
    written = []
    for row in report.students:
        if students is not None and row.student not in students:
            continue
        path = folder / f"{file_stem(row.student)}.{fmt}"
        write_kept(path, writable(render(report, row, hide_expected)), stamp)
        written.append(path)
    return written
