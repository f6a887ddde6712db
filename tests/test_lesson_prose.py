"""How the lessons read (issue 47, item 2), measured by tools/lesson_prose.py: the tool's counting, and the goals on
every lesson rewritten to meet them (visible words <= 3,500; median sentence <= 18 words; no visible sentence over
45 words; <= 2 bookkeeping words per 1,000), each with the one standard note on how its numbers are checked."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("lesson_prose", ROOT / "tools" / "lesson_prose.py")
lesson_prose = importlib.util.module_from_spec(spec)
sys.modules.setdefault("lesson_prose", lesson_prose)  # its dataclass looks its module up there
spec.loader.exec_module(lesson_prose)

REWRITTEN = ("01_reinforce", "02_reinforce_baseline", "03_a2c_gae", "04_ppo", "04c_ppo_settings",
             "05_continuous_pendulum", "06_debugging_traps", "06c_comparison_tables", "07_trpo", "08_llm_policy_gradients")
NOTE = ("> **How to read the numbers.** The numbers in the text are those the cells printed when this notebook was "
        "run: cached results reprint the same, live runs may differ in their last digits. A ✓ line checks a statement "
        "of the text; one that fails on your machine stops its cell and names it. Results over many seeds come with "
        "intervals, and the evidence behind a section is folded beneath it.")


def notebook(tmp_path: Path, *markdown: str) -> str:
    path = tmp_path / "lesson.ipynb"
    path.write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": text} for text in markdown]
                                + [{"cell_type": "code", "source": "print('not prose at all, ever. ' * 50)"}]}))
    return str(path)


def test_a_fold_a_formula_and_a_table_are_not_visible_prose(tmp_path):
    prose = lesson_prose.measure(notebook(
        tmp_path, "# A title\n\nThe policy gradient $\\nabla_\\theta J = \\mathbb{E}[\\dots]$ is an expectation. "
                  "We sample it.\n\n<details><summary>Evidence</summary>\n\nTen seeds were asserted here.\n</details>\n"
                  "\n| a | b |\n|---|---|\n| 1 | 2 |\n"))
    assert prose.sentences == [2, 7, 3]  # the heading, the formula as one word, "We sample it."
    assert prose.words == 12 + 4 and prose.bookkeeping == 0  # a table's cells are visible words, not sentences


def test_a_sentence_runs_over_its_source_lines_and_ends_at_a_full_stop(tmp_path):
    long = " ".join(["word"] * 30)
    prose = lesson_prose.measure(notebook(tmp_path, f"{long}\n{long}. Next one, e.g. this is short."))
    assert prose.sentences == [60, 6] and len(prose.long) == 1 and "longest sentence" in prose.misses()


def test_bookkeeping_words_are_counted_once_each(tmp_path):
    prose = lesson_prose.measure(notebook(tmp_path, "The claim is asserted and printed, not measured on this machine."))
    assert prose.bookkeeping == 5


@pytest.mark.parametrize("name", REWRITTEN)
def test_a_rewritten_lesson_meets_the_goals(name):
    prose = lesson_prose.measure(str(ROOT / "notebooks" / f"{name}.ipynb"))
    assert not prose.misses(), (f"{name} misses {prose.misses()}: {prose.words} visible words, median sentence "
                                f"{prose.median}, longest {prose.longest}, {prose.bookkeeping_rate:.1f} bookkeeping "
                                f"words per 1,000; over 45 words: {prose.long}")


@pytest.mark.parametrize("name", REWRITTEN)
def test_a_rewritten_lesson_says_once_how_its_numbers_are_checked(name):
    cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    markdown = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"]
    assert sum(NOTE in text for text in markdown) == 1, name
    assert not any("Each bold line is a claim" in text for text in markdown), name


EXERCISES = sorted(path.stem for path in (ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("name", EXERCISES)
def test_an_exercise_notebook_reads_like_the_shorter_lessons(name):
    """Issue 47, item 6: the exercises follow the lessons' goals. Measured on the solution notebook, which the
    exercise notebook is generated from (its markdown is the same)."""
    prose = lesson_prose.measure(str(ROOT / "solutions" / f"{name}.ipynb"))
    assert not prose.misses(), (f"exercise {name} misses {prose.misses()}: {prose.words} visible words, median "
                                f"sentence {prose.median}, longest {prose.longest}, {prose.bookkeeping_rate:.1f} "
                                f"bookkeeping words per 1,000; over 45 words: {prose.long}")
