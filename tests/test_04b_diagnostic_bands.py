"""04b's diagnostic bands agree with lesson 04 (issue 27, item 6).

Lesson 04 measures the course defaults below the usual rules of thumb (lesson 04c, section 3.1, quotes approx-KL 0.01
to 0.02 and clip fraction 0.1 to 0.2; lesson 04 the published KL defaults of about 0.01) and calls them defaults; 04b drew the check's wide acceptance range as "the
healthy range", whose upper half is the rules-of-thumb region no reference run reaches.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from pgcourse.course.checks import ch04b_ppo_loop

ROOT = Path(__file__).resolve().parents[1]


def _lesson04_output(pattern: str) -> float:
    """The first number that follows ``pattern`` in lesson 04's stored outputs (an IQM over its 20 seeds)."""
    notebook = nbformat.read(ROOT / "notebooks" / "04_ppo.ipynb", as_version=4)
    text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []))
    match = re.search(pattern + r"\s+([0-9.]+)", text)
    assert match, f"lesson 04's outputs no longer print {pattern!r}"
    return float(match.group(1))


def test_the_reference_span_holds_what_lesson_04_measures_and_lies_inside_the_accepted_range():
    kl_low, kl_high = ch04b_ppo_loop.REFERENCE_KL_SPAN
    clip_low, clip_high = ch04b_ppo_loop.REFERENCE_CLIP_FRACTION_SPAN
    assert ch04b_ppo_loop.KL_RANGE[0] < kl_low < kl_high < ch04b_ppo_loop.KL_RANGE[1]
    assert ch04b_ppo_loop.CLIP_FRACTION_RANGE[0] < clip_low < clip_high < ch04b_ppo_loop.CLIP_FRACTION_RANGE[1]
    assert kl_low <= _lesson04_output(r"median approx-KL") <= kl_high
    assert clip_low <= _lesson04_output(r"mean clip fraction") <= clip_high
    # the rules of thumb lessons 04 and 04c quote lie above every reference run
    assert kl_high < 0.01 and clip_high < 0.1


@pytest.mark.parametrize("folder", ["solutions", "exercises"])
def test_04b_does_not_call_the_checks_range_healthy(folder):
    notebook = nbformat.read(ROOT / folder / "04b_ppo_from_scratch.ipynb", as_version=4)
    source = "\n".join(cell.source for cell in notebook.cells)
    assert "healthy" not in source.lower()
    assert "REFERENCE_KL_SPAN" in source and "REFERENCE_CLIP_FRACTION_SPAN" in source


def test_the_checks_message_gives_the_accepted_range_and_where_a_correct_loop_lies():
    history = [{"approx_kl": 0.05, "clip_fraction": 0.3, "explained_variance": 0.5}] * 3
    problems = " ".join(ch04b_ppo_loop._diagnostic_problems(history))
    assert "healthy" not in problems
    assert "0.0033" in problems and "0.032" in problems
