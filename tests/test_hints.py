"""Tiered hints (issue 14): every exercise of the solution notebooks has three hints, the idea, the formula and
near-code, asked for one level at a time with ``pg.hint(name, level)``; the exercise's text says so; no level
hands over the solution, and the stubs' docstrings give the contract, not the one-line answer."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import pgcourse as pg
from pgcourse.course.hints import HINTS, LEVEL_NAMES
from pgcourse.classroom.notebook_format import BEGIN_SOLUTION, END_SOLUTION

ROOT = Path(__file__).resolve().parents[1]
# chapters 00-05 and 04b; 06's bug hunt (its find-the-bug loop included) gives its hints in <details> cells
SOLUTIONS = sorted(path for path in (ROOT / "solutions").glob("*.ipynb") if not path.name.startswith("06_"))
DEF = re.compile(r"^def (\w+)\(", re.MULTILINE)


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def exercises() -> list[tuple[str, str, str, str]]:
    """(notebook, function name, solution body, exercise text) of every function exercise of the solution notebooks:
    an answer cell (nbgrader solution: true) that defines a function; its text is the nearest '## Exercise' cell above."""
    found = []
    for path in SOLUTIONS:
        cells = _cells(path)
        for index, cell in enumerate(cells):
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell["cell_type"] != "code" or not meta.get("solution"):
                continue
            source = _source(cell)
            match = DEF.search(source)
            if not match:
                continue
            body = source.split(BEGIN_SOLUTION, 1)[1].split(END_SOLUTION, 1)[0]
            above = [_source(c) for c in cells[:index] if c["cell_type"] == "markdown"
                     and _source(c).startswith("## Exercise")]
            found.append((path.name, match.group(1), body, above[-1] if above else ""))
    return found


EXERCISES = exercises()
IDS = [f"{notebook}:{name}" for notebook, name, _, _ in EXERCISES]


def test_the_exercises_are_found():
    names = {name for _, name, _, _ in EXERCISES}
    # chapters 00-05 and 04b: 29 function exercises (06's bug hunt is not a function)
    assert len(names) >= 29, sorted(names)
    assert {"compute_gae", "play_episode", "clipped_surrogate_loss", "train_ppo"} <= names


@pytest.mark.parametrize("notebook, name, body, text", EXERCISES, ids=IDS)
def test_every_exercise_has_three_levels_of_hints(notebook, name, body, text):
    assert name in HINTS, f"{notebook}: {name} has no hints; add them to pgcourse/hints.py"
    levels = HINTS[name]
    assert len(levels) == 3 == len(LEVEL_NAMES)
    assert all(isinstance(level, str) and len(level) > 60 for level in levels), name
    assert len(set(levels)) == 3, f"{name}: the three levels must differ"
    for level in (1, 2, 3):
        shown = pg.hint(name, level)
        assert shown.text == levels[level - 1]
        assert f"Hint {level}/3 for {name}" in str(shown) and f"**Hint {level}/3" in shown._repr_markdown_()


@pytest.mark.parametrize("notebook, name, body, text", EXERCISES, ids=IDS)
def test_level_three_is_near_code_not_the_solution(notebook, name, body, text):
    near_code = HINTS[name][2]
    assert "…" in near_code, f"{name}: level 3 leaves its key expressions as … for the learner"
    solution_lines = [line.split("#", 1)[0].strip() for line in body.splitlines()]
    # the lines that do the work (not imports, not bare returns of a name, not blank): none may appear verbatim
    telling = [line for line in solution_lines if len(line) > 25 and "(" in line and not line.startswith(("import",
                                                                                                           "from"))]
    code_lines = {line.split("#", 1)[0].strip() for line in near_code.splitlines()}
    copied = [line for line in telling if line in code_lines]
    # a skeleton shares its frame with the solution (e.g. `obs, info = env.reset(seed=seed)`); the answer's key
    # lines must not all be there
    assert len(copied) < max(1, len(telling)), f"{name}: level 3 repeats the whole solution: {copied}"
    assert len(copied) <= len(telling) // 2 + 1, f"{name}: level 3 repeats most of the solution: {copied}"


@pytest.mark.parametrize("notebook, name, body, text", EXERCISES, ids=IDS)
def test_every_exercise_text_tells_the_learner_about_its_hints(notebook, name, body, text):
    assert f'pg.hint("{name}")' in text, f"{notebook}: the text of {name} does not mention pg.hint(\"{name}\")"


ONE_LINE_ANSWERS = {
    # the formula/method the docstrings used to give away (issue 14)
    "reinforce_loss": ["-mean(", "detach"], "a2c_policy_loss": ["-mean(", "ent_coef * mean"],
    "clipped_surrogate_loss": ["min(rho", "clip(rho"], "approx_kl": ["(r - 1) - log r", "mean((r"],
    "value_loss": ["mean((V", "1/2 mean"], "td_errors": ["gamma * (1 - terminated", "delta_t ="],
    "baseline_advantages": ["G_i - V", "A_i ="], "explained_variance": ["1 - Var", "Var[returns - values]"],
    "gaussian_entropy": ["log(2 pi e)", "log_std + 0.5"], "normalize": ["(x - mean(x))", "std(x) + eps"],
    "discounted_returns": ["G_t = r_t + gamma"],
}


def _docstring(notebook: str, name: str) -> str:
    for cell in _cells(ROOT / "exercises" / notebook):
        source = _source(cell)
        if source.startswith(f"def {name}("):
            return source.split('"""')[1]
    raise AssertionError(f"no stub of {name} in exercises/{notebook}")


@pytest.mark.parametrize("notebook, name, body, text", EXERCISES, ids=IDS)
def test_stub_docstrings_give_a_contract_not_the_answer(notebook, name, body, text):
    doc = _docstring(notebook, name)
    assert "return" in doc.lower() or "Effect" in doc, f"{name}: the docstring states what comes back"
    for giveaway in ONE_LINE_ANSWERS.get(name, []):
        assert giveaway not in doc, f"{name}: the docstring gives the answer away ({giveaway!r})"


def test_no_exercise_text_spells_out_the_method_of_exercise_00():
    text = "\n".join(_source(c) for c in _cells(ROOT / "exercises" / "00_setup_and_tour.ipynb"))
    assert "shift the" not in text.lower()
