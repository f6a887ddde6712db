"""tools/number_density.py: words per number in a lesson's prose outside <details> (issue 27, item 2)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("number_density", ROOT / "tools" / "number_density.py")
number_density = importlib.util.module_from_spec(spec)
sys.modules["number_density"] = number_density  # a dataclass looks its module up there
spec.loader.exec_module(number_density)
density = number_density.density


def test_counts_words_and_numbers_of_plain_prose():
    counted = density("The default ends at 440.9 [400.6, 473.6] over 20 seeds.")
    assert (counted.words, counted.numbers) == (10, 4)
    assert counted.words_per_number == 2.5


@pytest.mark.parametrize("number", ["20", "0.902", "1,400", "95%", "5.8"])
def test_each_number_form_counts_once(number):
    assert density(f"it is {number} here").numbers == 1


def test_details_blocks_are_folded_away():
    text = "Two seeds differ.\n<details><summary>per seed (20 rows)</summary>\n\n1.5 2.5 3.5\n</details>\nDone."
    assert density(text) == number_density.Density(words=4, numbers=0)


def test_two_details_blocks_keep_the_prose_between_them():
    text = "<details>1 2</details> the 3 seeds <DETAILS open>4 5</DETAILS>"
    assert density(text) == number_density.Density(words=3, numbers=1)


@pytest.mark.parametrize("markup", ["$\\gamma = 0.99$", "$$G_t = r_t + 0.99 G_{t+1}$$", "`lr=1e-3`",
                                    "[lesson 02](02_reinforce_baseline.ipynb)"])
def test_formulas_code_and_link_targets_hold_no_numbers(markup):
    counted = density(f"see {markup} now")
    assert counted.numbers == (1 if markup.startswith("[lesson") else 0)  # the link text "lesson 02" stays


def test_a_headings_section_number_is_not_a_number():
    assert density("## 8. Experiment 2: twenty seeds").numbers == 1  # the "2" of "Experiment 2" only


def test_no_number_reads_as_infinitely_sparse():
    assert density("no numbers at all").words_per_number == float("inf")


def test_notebook_density_reads_only_markdown_cells(tmp_path):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["one 1\n", "two 2"]},
             {"cell_type": "code", "metadata": {}, "source": "x = 3 + 4", "outputs": [], "execution_count": None}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert number_density.notebook_density(path) == number_density.Density(words=4, numbers=2)
