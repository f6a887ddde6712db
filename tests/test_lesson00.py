"""Lesson 00's words against its evidence (issue 27, item 1): sentences the lesson used to say, each contradicted or
not backed by an output of its own, and the evidence that retired it."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def lesson_markdown(name: str = "00_setup_and_tour.ipynb") -> str:
    """The lesson's markdown with its whitespace collapsed (a sentence may break across lines anywhere)."""
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    return " ".join(" ".join(cell.source.split()) for cell in notebook.cells if cell.cell_type == "markdown")


RETIRED_00 = {
    "nothing it runs has been measured faster on a GPU":
        "one run was timed on a GPU (the printed reason), so 'nothing' rests on that one measurement",
    "learns the wrong value for *every* Pendulum episode":
        "the wrong target sits at the last step of each episode; lesson 06's probe shows the value it settles on",
    "which is about 5% of the 500":
        "the printed mean 23.7 is 4.7% of 500 and the median 19 is 3.8%",
    "From lesson 01 on, learning curves start near this value":
        "lesson 05's Pendulum and lesson 08's language model do not start near a CartPole return of 20",
    "The random agent loses the pole after a couple of dozen steps":
        "the GIF's caption gives its return: 18 steps",
}


@pytest.mark.parametrize("sentence", list(RETIRED_00), ids=list(RETIRED_00.values()))
def test_lesson_00_no_longer_says_what_its_evidence_contradicts(sentence):
    assert sentence not in lesson_markdown(), f"lesson 00 says {sentence!r}, but {RETIRED_00[sentence]}"


def test_lesson_00_calls_the_effective_horizon_a_rule_of_thumb():
    """The left panel of the discounting figure shows weight still left after k = 1/(1-gamma) (about 1/e there):
    the text may not read the horizon as a cut-off."""
    assert "rule of thumb, not a cut-off" in lesson_markdown()


def test_lesson_00_folds_its_detail_to_one_number_per_35_words():
    """Issue 27, item 2: at most one number per 35 words of markdown outside <details> (tools/number_density.py)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("number_density", ROOT / "tools" / "number_density.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("number_density", module)
    spec.loader.exec_module(module)
    counted = module.notebook_density(ROOT / "notebooks" / "00_setup_and_tour.ipynb")
    assert counted.words_per_number >= 35, (
        f"lesson 00's prose outside <details> has {counted}; expected at least 35 words per number: fold the "
        "measured details into <details> blocks")
