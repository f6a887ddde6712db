"""Concept questions (issue 14): 3-5 per chapter 00-05, checked automatically with an explanation for every choice;
each exercise notebook ends with "Check your understanding" (the questions, an answer cell, a graded check cell),
an optional stretch task that nothing grades, and a "Next" cell; the exercise ramp ends harder than it starts."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import pgcourse as pg
from pgcourse.course import concepts
from pgcourse.classroom import exercisegen
from pgcourse.classroom.notebook_format import stub_source

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ["00", "01", "02", "03", "04", "05", "06", "07", "08"]
NOTEBOOK = {path.name.split("_")[0]: path for path in sorted((ROOT / "solutions").glob("*.ipynb"))}
LABEL = re.compile(r"^## Exercise .*\((easy|medium|hard), ~(\d+) min\)", re.MULTILINE)
RANK = {"easy": 0, "medium": 1, "hard": 2}


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def by_grade_id(path: Path) -> dict[str, dict]:
    return {cell["metadata"]["nbgrader"]["grade_id"]: cell for cell in cells(path)
            if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")}


def right_answers(chapter: str) -> dict[str, str]:
    return {q.id: q.answer for q in concepts.QUESTIONS[chapter]}


# -- the question bank ------------------------------------------------------------------------------------
def test_every_chapter_has_three_to_five_questions():
    assert sorted(concepts.QUESTIONS) == CHAPTERS
    for chapter, questions in concepts.QUESTIONS.items():
        assert 3 <= len(questions) <= 5, chapter
        assert [q.id for q in questions] == [f"q{i}" for i in range(1, len(questions) + 1)]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_choice_is_explained_and_only_the_answer_is_called_right(chapter):
    for question in concepts.QUESTIONS[chapter]:
        assert len(question.choices) >= 3 and set(question.explanations) == set(question.choices)
        for letter, explanation in question.explanations.items():
            assert len(explanation) > 20, (chapter, question.id, letter)
            assert explanation.startswith("Right") == (letter == question.answer), (chapter, question.id, letter)
    # the right letters are not all the same
    assert len({q.answer for q in concepts.QUESTIONS[chapter]}) > 1



def test_the_right_choice_cannot_be_picked_by_its_length():
    """Issue 49, item 4: a learner who always picked the longest choice got 36 of 37 questions right, because the
    right answer was the longest, most qualified text. Neither the longest nor the shortest choice may give the
    answer away (a tie with the right answer counts as a win for the learner), no chapter may be won that way, and
    no right answer may stand out by being much longer than the wrong ones beside it."""
    longest, shortest, per_chapter, too_long = 0, 0, {}, []
    for chapter, questions in concepts.QUESTIONS.items():
        won = 0
        for question in questions:
            lengths = {letter: len(text) for letter, text in question.choices.items()}
            right = lengths[question.answer]
            wrong = [n for letter, n in lengths.items() if letter != question.answer]
            won += right == max(lengths.values())
            shortest += right == min(lengths.values())
            ratio = right / (sum(wrong) / len(wrong))
            if ratio > 1.6:
                too_long.append((chapter, question.id, round(ratio, 2)))
        longest += won
        per_chapter[chapter] = won
    total = sum(len(questions) for questions in concepts.QUESTIONS.values())
    assert longest <= 10, f"picking the longest choice gets {longest} of {total} right: {per_chapter}"
    assert all(won <= 2 for won in per_chapter.values()), f"won by the longest choice, per chapter: {per_chapter}"
    assert shortest <= 10, f"picking the shortest choice gets {shortest} of {total} right"
    assert not too_long, f"right answers more than 1.6 times the wrong ones' mean length: {too_long}"

def test_a_question_needs_an_explanation_for_every_choice():
    with pytest.raises(ValueError, match="every choice needs an explanation"):
        concepts.Question("q1", "?", {"a": "x", "b": "y"}, "a", {"a": "Right."})
    with pytest.raises(ValueError, match="not one of the choices"):
        concepts.Question("q1", "?", {"a": "x"}, "c", {"a": "Right."})


# -- the check --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_right_answers_pass_with_one_line_per_question(chapter, capsys):
    concepts.check_concepts(chapter, right_answers(chapter))
    out = capsys.readouterr().out
    assert out.count("✓ q") == len(concepts.QUESTIONS[chapter]) and "of" in out.splitlines()[-1]


def test_a_wrong_answer_fails_with_the_reason_that_choice_is_wrong_and_not_the_right_letter():
    question = concepts.QUESTIONS["03"][0]
    wrong = next(letter for letter in question.choices if letter != question.answer)
    answers = {**right_answers("03"), "q1": wrong}
    with pytest.raises(AssertionError) as info:
        concepts.check_concepts("03", answers)
    message = str(info.value)
    assert question.explanations[wrong] in message and f"✗ q1 ({wrong})" in message
    assert question.explanations[question.answer] not in message
    assert "3 of 4 right" in message


def test_missing_invalid_and_unknown_answers_are_named():
    with pytest.raises(AssertionError) as info:
        concepts.check_concepts("01", {"q1": None, "q2": "z", "q7": "a"})
    message = str(info.value)
    assert "q1: not answered yet" in message and "'z' is not a choice" in message and "'q7'" in message
    with pytest.raises(AssertionError, match="must be a dict"):
        concepts.check_concepts("01", ["a", "b"])


def test_letters_are_read_leniently_and_chapters_by_number():
    answers = {key: f" ({value.upper()}) " for key, value in right_answers("02").items()}
    concepts.check_concepts(2, answers)
    concepts.check_concepts("ch02", answers)
    with pytest.raises(ValueError, match="no concept questions for chapter"):
        concepts.check_concepts("09", {})


def test_count_correct_gives_what_per_question_partial_credit_needs():
    answers = right_answers("04")
    assert concepts.count_correct("04", answers) == (5, 5)
    answers["q2"] = None
    answers["q3"] = "a" if answers["q3"] != "a" else "b"
    assert concepts.count_correct("04", answers) == (3, 5)
    assert concepts.count_correct("04", None) == (0, 5)


def test_pg_concepts_is_imported_with_the_package():
    assert pg.concepts is concepts
    assert concepts.show("00")._repr_markdown_().startswith("**q1.**")
    assert concepts.blank_answers("05") == {"q1": None, "q2": None, "q3": None, "q4": None}


# -- the notebooks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_exercise_notebook_ends_with_its_concept_questions(chapter):
    found = by_grade_id(NOTEBOOK[chapter])
    text = source(found[f"ch{chapter}_concepts_text"])
    assert text.startswith("## Check your understanding") and concepts.questions_markdown(chapter) in text
    answer = found[f"ch{chapter}_concepts"]
    assert answer["metadata"]["nbgrader"]["solution"] is True
    check = found[f"ch{chapter}_concepts_check"]
    meta = check["metadata"]["nbgrader"]
    assert meta["grade"] is True and meta["locked"] is True
    assert meta["points"] == concepts.POINTS_PER_QUESTION * len(concepts.QUESTIONS[chapter])
    assert source(check).splitlines()[-1] == f'pg.concepts.check_concepts("{chapter}", answers)'
    # the solution's answers are right; the handout has every answer None (and its stub raises)
    solved: dict = {}
    exec(source(answer).replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), solved)
    assert solved["answers"] == right_answers(chapter)
    handout: dict = {}
    with pytest.raises(NotImplementedError):
        exec(stub_source(source(answer)), handout)
    assert handout["answers"] == concepts.blank_answers(chapter)


@pytest.mark.parametrize("chapter", [*CHAPTERS, "04b"])
def test_every_notebook_has_a_stretch_task_and_a_next_cell_and_a_ramp(chapter):
    path = NOTEBOOK[chapter]
    all_cells = cells(path)
    texts = [source(c) for c in all_cells if c["cell_type"] == "markdown"]
    stretch = [t for t in texts if t.startswith(("## Stretch", "### Stretch"))]
    assert stretch and all("optional" in t.lower() for t in stretch), chapter
    assert all("nbgrader" not in c.get("metadata", {}) or not c["metadata"]["nbgrader"].get("grade")
               for c in all_cells[[source(c) for c in all_cells].index(stretch[0]):]
               if c["cell_type"] == "code"), "nothing after the stretch task is graded"
    assert texts[-1].startswith("## Next") and "](" in texts[-1], chapter
    labels = [LABEL.search(t).groups() for t in texts if LABEL.search(t)]
    assert labels, chapter
    ranks = [RANK[level] for level, _ in labels]
    # the ramp: it starts below hard, the last graded exercise is at least medium, the stretch task ends it hard
    assert ranks[0] < 2 and ranks[-1] >= 1, (chapter, labels)
    assert "(hard," in stretch[-1].split("\n")[0], chapter
    exercise = exercisegen.exercise_text(path)
    assert "With the solution" not in exercise and "the solutions above" not in exercise


def test_the_grader_sees_the_concept_check_as_an_exercise_with_points():
    from pgcourse.classroom.grading.course import build_chapter
    from pgcourse.classroom.notebook_format import parse_notebook

    path = NOTEBOOK["03"]
    chapter = build_chapter(path.stem, path, parse_notebook(path.read_bytes())[0])
    exercise = chapter.exercise("ch03_concepts")
    assert exercise.answer_ids == ("ch03_concepts",) and exercise.points == 2.0


# -- the lesson sections the questions and the exercise texts point to exist ------------------------------
# "lesson 04, section 5", "lesson 04c, sections 1 and 2" (04c: the optional lesson on PPO's settings)
SECTION_REF = re.compile(r"lesson (\d\d[a-z]?)(?:'s [\w ]+?)?, sections? ([\d.]+)(?:(?: and |-|–)([\d.]+))?")


def _lesson_sections(number: str) -> set[str]:
    path = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    text = "\n".join(source(c) for c in cells(path) if c["cell_type"] == "markdown")
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, flags=re.MULTILINE))


def _references() -> list[tuple[str, str, str]]:
    texts = [(f"concepts {chapter} {q.id}", " ".join([q.text, *q.choices.values(), *q.explanations.values()]))
             for chapter, questions in concepts.QUESTIONS.items() for q in questions]
    texts += [(path.name, source(c)) for path in NOTEBOOK.values() for c in cells(path) if c["cell_type"] == "markdown"]
    found = []
    for where, text in texts:
        for match in SECTION_REF.finditer(text.replace("\n", " ")):
            found += [(where, match.group(1), section) for section in match.groups()[1:] if section]
    return found


def test_the_lesson_sections_named_in_questions_and_exercise_texts_exist():
    references = _references()
    assert len(references) >= 15
    missing = [(where, lesson, section) for where, lesson, section in references
               if section.rstrip(".") not in _lesson_sections(lesson)]
    assert not missing, f"these point to lesson sections that do not exist (renumbered?): {missing}"


# -- chapter 06: the feedback gives no bug-hunt answer away, and its numbers are the exercise's (issue 26) -----

def _bug_hunt_answers() -> dict[int, str]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_mysteries", ROOT / "tools" / "make_mysteries.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.answers_from_notebook(NOTEBOOK["06"])


def test_chapter_06_feedback_names_no_mystery_answer():
    """Issue 26, item 4: q1(a)'s feedback said which mysteries pg.diagnose calls healthy ("truncation treated as
    termination, the clipped action's log-prob"): the answers to mysteries 5 and 6."""
    from pgcourse.rl.planted import TRAPS

    generic = {"advantage", "action", "sign", "flipped", "wrong", "entropy", "log", "prob", "probs", "not", "from",
               "as", "old", "critic", "lr", "low", "grad", "clip", "long", "per", "norm", "adv", "missing"}
    for question in concepts.QUESTIONS["06"]:
        for letter, text in question.explanations.items():
            if not re.search(r"myster|bug hunt", text, re.IGNORECASE):
                continue
            for answer in _bug_hunt_answers().values():
                words = [word for word in answer.split("_") if word not in generic and word in TRAPS[answer][1]]
                said = [word for word in words if re.search(rf"\b{word[:7]}", text, re.IGNORECASE)]
                assert not said, (question.id, letter, answer, said)


def test_chapter_06_q3_feedback_uses_the_exercise_value():
    """q3(c) said a slow critic is "still moving towards 5", where the time-limit probe's true value (the one the
    question asks about, 1 / (1 - gamma): 10 in the exercise) is what a slow critic approaches."""
    from pgcourse.course.checks import ch06_traps

    q3 = next(question for question in concepts.QUESTIONS["06"] if question.id == "q3")
    text = q3.explanations["c"]
    numbers = {float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", text)}
    assert numbers <= {1.0, round(ch06_traps.TRUNCATION_VALUE, 2)}, text
    assert "1 / (1 - gamma)" in text, text


def test_chapter_06_header_points_are_the_graders():
    """The header's table of exercises and points said 14 in all, the grader gives 16 (the concept check's 2 were
    missing): each row's points and the total must be what the grader reads from the graded cells."""
    from pgcourse.classroom.grading.course import load_course

    header = source(next(cell for cell in cells(NOTEBOOK["06"])  # the first cell shown: not the Colab badge's
                         if "remove-cell" not in cell.get("metadata", {}).get("tags", [])))
    rows = re.findall(r"^\|\s*([^|]+?)\s*\|[^|]*\|[^|]*\|\s*\**([\d.]+)\**\s*\|\s*$", header, re.MULTILINE)
    table = {name.strip("* "): float(points) for name, points in rows}
    total = table.pop("total")
    course = load_course(ROOT)
    chapter = course.chapter(next(name for name in course.names if name.startswith("06")))
    graded = {exercise.id: exercise.points for exercise in chapter.exercises}
    assert total == chapter.max_points == sum(table.values()), (total, chapter.max_points, table)
    assert sorted(table.values()) == sorted(graded.values()), (table, graded)
