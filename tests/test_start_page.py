"""The course opens at START_HERE.ipynb, from the repository root, and every link on the path works.

`make lab` roots JupyterLab at the repository and opens START_HERE.ipynb, so the lessons
(notebooks/), the exercises (exercises/) and the solutions (solutions/) are all inside the server's
root and every relative link between them opens (a link that leaves the root is refused with
"outside root contents directory"). The browser test (tests/test_browser.py) clicks the links for real.
"""
from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
START = ROOT / "START_HERE.ipynb"
LESSONS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def lesson_of(exercise: Path) -> Path:
    """The lesson an exercise notebook goes with: the lesson of the same name, else (an exercises-only chapter
    such as 04b_ppo_from_scratch) the lesson whose number its own starts with (04_ppo)."""
    same = ROOT / "notebooks" / exercise.name
    if same.exists():
        return same
    number = re.match(r"\d+", exercise.name).group(0)
    matches = [lesson for lesson in LESSONS if lesson.name.split("_")[0] == number]
    assert len(matches) == 1, f"{exercise.name}: no lesson numbered {number}"
    return matches[0]


def exercises_of(lesson: Path) -> list[Path]:
    """The exercise notebooks that go with ``lesson``, the one of its own name first."""
    return sorted((e for e in (ROOT / "exercises").glob("*.ipynb") if lesson_of(e) == lesson),
                  key=lambda e: (e.name != lesson.name, e.name))


def markdown_links(path: Path) -> list[str]:
    """The targets of the markdown links in ``path``'s markdown cells, in order (web links left out)."""
    notebook = json.loads(path.read_text())
    sources = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "markdown"]
    return [target for source in sources for target in LINK.findall(source) if "://" not in target]


def resolve(link: str, notebook: Path) -> Path:
    """Where a relative link in ``notebook`` points, as JupyterLab resolves it (from the notebook's folder)."""
    return (notebook.parent / PurePosixPath(link.split("#")[0])).resolve()


def test_start_page_exists_and_has_no_code_to_run():
    notebook = json.loads(START.read_text())
    assert notebook["cells"] and all(cell["cell_type"] == "markdown" for cell in notebook["cells"])


def test_start_page_gives_the_path_lesson_then_exercise_in_order():
    links = [link for link in markdown_links(START) if link.startswith(("notebooks/", "exercises/"))]
    expected = [f"{folder}/{path.name}" for lesson in LESSONS
                for folder, path in [("notebooks", lesson)] + [("exercises", e) for e in exercises_of(lesson)]]
    first_seen = list(dict.fromkeys(links))
    assert first_seen == expected, "the path must be lesson 00 -> exercise 00 -> lesson 01 -> ..."


def test_every_link_on_the_start_page_opens_a_file_inside_the_repository():
    links = markdown_links(START)
    assert any(link.startswith("solutions/") for link in links), "the solutions are linked too"
    for link in links:
        target = resolve(link, START)
        assert target.is_relative_to(ROOT) and target.exists(), f"START_HERE.ipynb: {link} does not resolve"


def main_lesson(optional: Path) -> Path:
    """The lesson an optional lesson without exercises goes with: 04c_ppo_settings -> 04_ppo (same number)."""
    number = re.match(r"\d+", optional.name).group(0)
    matches = [lesson for lesson in LESSONS if lesson.name.split("_")[0] == number]
    assert len(matches) == 1, f"{optional.name}: no lesson numbered {number}"
    return matches[0]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_each_lesson_links_to_its_exercises_with_a_link_that_resolves(lesson):
    """A lesson links to its exercises; an optional lesson without exercises of its own (04c) to its main lesson."""
    links = markdown_links(lesson)
    exercise = ROOT / "exercises" / lesson.name
    if not exercise.exists():
        assert re.fullmatch(r"\d\d[a-z]", lesson.name.split("_")[0]), f"{lesson.name} has no exercises notebook"
        exercise = main_lesson(lesson)
        assert "(optional)" in json.loads(lesson.read_text())["cells"][1]["source"][0], \
            f"{lesson.name} has no exercises: its title says it is optional"
    assert any(resolve(link, lesson) == exercise for link in links), f"{lesson.name} has no link to {exercise}"
    for link in links:
        target = resolve(link, lesson)
        assert target.is_relative_to(ROOT) and target.exists(), f"{lesson.name}: {link} does not resolve"


@pytest.mark.parametrize("folder", ["solutions", "exercises"])
def test_exercise_notebooks_link_back_to_their_lesson(folder):
    for path in sorted((ROOT / folder).glob("*.ipynb")):
        targets = [resolve(link, path) for link in markdown_links(path)]
        assert lesson_of(path) in targets, f"{folder}/{path.name} does not link to its lesson"
        assert all(target.is_relative_to(ROOT) and target.exists() for target in targets), path.name


def test_make_lab_roots_the_server_at_the_repository_and_opens_the_start_page():
    makefile = (ROOT / "Makefile").read_text()
    lab = re.search(r"^lab:.*\n((?:\t.*\n)+)", makefile, flags=re.MULTILINE).group(1)
    assert "jupyter lab" in lab and "START_HERE.ipynb" in lab
    assert "notebooks/" not in lab, "a server rooted at notebooks/ refuses the exercises' folder"
