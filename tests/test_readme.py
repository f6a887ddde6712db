"""The README welcomes a new user (issue 15, item 11): a hero GIF and a figure near the top, what you will learn,
the prerequisites, how long the course takes (the exercises' own time labels, added up here), where to start, the
course, key papers, troubleshooting, and a benchmark section written for users (the internal targets, load
averages and like-for-like tables live in docs/benchmark.md). Every image and link in it points at a file that
exists."""
from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
# "## Exercise 2 · Discounted returns  *(easy, ~15 min)*"
TIME_LABEL = re.compile(r"^#+ (?:Exercise|Mystery) .*\(\w+, ~(\d+) min\)", re.MULTILINE)  # mysteries: the bug hunt
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HTML_SRC = re.compile(r"""<(?:img|a)\b[^>]*\b(?:src|href)=["']([^"']+)["']""")


def readme() -> str:
    return README.read_text()


def sections(text: str) -> dict[str, str]:
    """``## heading`` -> the text under it (up to the next ``## ``), headings lower-cased."""
    parts = re.split(r"^## +(.+)$", text, flags=re.MULTILINE)
    return {heading.strip().lower(): body for heading, body in zip(parts[1::2], parts[2::2])}


def exercise_minutes(notebook: Path) -> list[int]:
    """The time labels of one exercise notebook's exercises, in minutes."""
    cells = json.loads(notebook.read_text())["cells"]
    text = "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown")
    return [int(minutes) for minutes in TIME_LABEL.findall(text)]


def course_minutes() -> dict[str, int]:
    """Chapter ("00", "01", ...) -> the sum of its exercises' time labels."""
    return {notebook.name.split("_")[0]: sum(exercise_minutes(notebook)) for notebook in EXERCISES}  # "04b" too


def bullets(text: str) -> list[str]:
    """The items of the markdown lists in ``text``, each on one line (continuation lines joined)."""
    items: list[str] = []
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(line[2:].strip())
        elif line.startswith("  ") and items and line.strip():
            items[-1] += " " + line.strip()
    return items


def local_targets(text: str) -> list[str]:
    """Every image and link target of the README that is a path in the repository (web links and anchors left out)."""
    targets = LINK.findall(text) + HTML_SRC.findall(text)
    return [t for t in targets if "://" not in t and not t.startswith(("#", "mailto:"))]


# -- the top: a hero GIF and one figure, before any section -------------------------------------------
def _top_images() -> list[str]:
    top = readme().split("\n## ", 1)[0]
    return [target for target in local_targets(top) if target.lower().endswith((".gif", ".png", ".svg", ".jpg"))]


def test_the_readme_opens_with_a_hero_gif_and_one_figure():
    images = _top_images()
    assert [Path(i).suffix.lower() for i in images] == [".gif", ".png"], images
    assert all(image.startswith("figures/") for image in images), "the README's images live in figures/"


def test_the_hero_gif_is_a_small_animated_gif_of_a_trained_agent():
    from PIL import Image

    gif = ROOT / _top_images()[0]
    size = gif.stat().st_size
    assert 20_000 < size < 1_000_000, f"{gif.name}: {size:,} bytes (keep it under 1 MB)"
    with Image.open(gif) as image:
        assert image.format == "GIF" and image.is_animated and image.n_frames >= 50
        assert image.width >= 300 and image.info.get("loop") == 0  # loops forever
    # how to make it again is written down, with the package's own functions
    how = (ROOT / "docs" / "figures.md").read_text()
    assert gif.name in how and "side_by_side_gif" in how and "SDL_VIDEODRIVER=dummy" in how


# -- the sections a new user looks for ------------------------------------------------------------------
REQUIRED_SECTIONS = ["what you will learn", "prerequisites", "how long it takes", "start here", "the course",
                     "the package", "for teachers", "benchmarks", "troubleshooting and faq",
                     "key papers and further reading", "development"]


def test_the_readme_has_the_sections_a_new_user_looks_for_in_order():
    headings = list(sections(readme()))
    missing = [name for name in REQUIRED_SECTIONS if name not in headings]
    assert not missing, f"missing sections: {missing}; found {headings}"
    assert [h for h in headings if h in REQUIRED_SECTIONS] == REQUIRED_SECTIONS


def test_prerequisites_name_python_calculus_probability_and_pytorch():
    text = sections(readme())["prerequisites"].lower()
    for subject in ("python", "calculus", "probability", "pytorch"):
        assert subject in text, subject
    assert "3.11" in text and "3.13" in text


def test_start_here_gives_the_two_make_commands_and_the_commands_without_make():
    text = sections(readme())["start here"]
    assert "make lab" in text and "make test" in text and "START_HERE.ipynb" in text
    for command in ("python -m venv .venv", "python -m pip install torch==2.13.0",
                    'python -m pip install -e ".[course,dev]"', "jupyter lab START_HERE.ipynb"):
        assert command in text, command
    assert "https://download.pytorch.org/whl/cpu" in text


# -- how long it takes: the exercises' own time labels, added up -----------------------------------------
def test_every_exercise_notebook_has_time_labels():
    assert len(EXERCISES) >= 9  # 00-07 and 04b (PPO from scratch, exercises only), and the chapters after 07
    for notebook in EXERCISES:
        assert exercise_minutes(notebook), f"{notebook.name} has no '(easy, ~10 min)' labels"


def test_the_time_the_readme_gives_is_the_sum_of_the_exercises_time_labels():
    minutes = course_minutes()
    total = sum(minutes.values())
    text = sections(readme())["how long it takes"]
    stated = re.search(r"add up to \*?\*?(\d+) minutes", text)
    assert stated, "the section says 'the exercises' time labels add up to N minutes'"
    assert int(stated.group(1)) == total
    hours, rest = divmod(total, 60)
    assert f"{hours} h {rest} min" in text


def test_the_course_table_has_a_row_for_every_lesson():
    """Every notebook in notebooks/ has its row, the optional 04c (no exercises) too."""
    table = sections(readme())["the course"]
    for lesson in sorted((ROOT / "notebooks").glob("*.ipynb")):
        number = lesson.name.split("_")[0]
        assert re.search(rf"^\| {number} \|", table, flags=re.MULTILINE), f"no row for {lesson.name}"


def test_the_course_table_gives_each_chapters_exercise_time():
    table = sections(readme())["the course"]
    for chapter, minutes in course_minutes().items():
        row = re.search(rf"^\| {chapter} \|.*$", table, flags=re.MULTILINE)
        assert row, f"no row for chapter {chapter}"
        assert row.group(0).rstrip().endswith(f"| {minutes} min |"), (chapter, minutes, row.group(0))


# -- links and images ---------------------------------------------------------------------------------
def test_every_image_and_link_in_the_readme_points_at_a_file_in_the_repository():
    targets = local_targets(readme())
    assert len(targets) >= 8
    for target in targets:
        path = (ROOT / PurePosixPath(target.split("#")[0])).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"README.md: {target} does not exist"


def test_every_link_in_the_docs_points_at_a_file_in_the_repository():
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for target in local_targets(doc.read_text()):
            path = (doc.parent / PurePosixPath(target.split("#")[0])).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), f"{doc.name}: {target} does not exist"


# -- key papers -----------------------------------------------------------------------------------------
PAPERS = [  # (author, year, venue or where, a phrase of the title)
    ("Williams", "1992", "Machine Learning", "Simple statistical gradient-following"),
    ("Sutton", "1999", "NIPS", "Policy gradient methods for reinforcement learning with function approximation"),
    ("Mnih", "2016", "ICML", "Asynchronous methods for deep reinforcement learning"),
    ("Schulman", "2015", "ICML", "Trust region policy optimization"),
    ("Schulman", "2016", "ICLR", "generalized advantage estimation"),
    ("Schulman", "2017", "arXiv:1707.06347", "Proximal policy optimization algorithms"),
    ("Engstrom", "2020", "ICLR", "Implementation matters in deep policy gradients"),
    ("Andrychowicz", "2021", "ICLR", "What matters"),
    ("Huang", "2022", "ICLR Blog Track", "The 37 implementation details of proximal policy optimization"),
    ("Agarwal", "2021", "NeurIPS", "Deep reinforcement learning at the edge of the statistical precipice"),
]


@pytest.mark.parametrize("author, year, venue, title", PAPERS, ids=[f"{p[0]}{p[1]}" for p in PAPERS])
def test_key_papers_are_cited_with_year_and_venue(author, year, venue, title):
    entry = next((item for item in bullets(sections(readme())["key papers and further reading"])
                  if title.lower() in item.lower()), None)
    assert entry, f"no entry for {title!r}"
    assert author in entry and f"({year})" in entry and venue in entry, entry


def test_further_reading_names_spinning_up_and_cleanrl():
    text = sections(readme())["key papers and further reading"]
    assert "https://spinningup.openai.com" in text and "https://github.com/vwxyzjn/cleanrl" in text


# -- troubleshooting --------------------------------------------------------------------------------------
@pytest.mark.parametrize("problem, fix", [
    ("CUDA", "https://download.pytorch.org/whl/cpu"),          # torch pulls GBs of CUDA wheels
    ("pygame-ce", "pip uninstall -y pygame pygame-ce"),        # two pygames overwrite each other
    ("display", "SDL_VIDEODRIVER=dummy"),                       # headless rendering
    ("already in use", "--port"),                               # jupyter's port
    ("Windows", r".venv\Scripts\activate"),                     # no make
    ("3.14", "PYTHON=python3.12"),                              # which Pythons
    ("bubblewrap", "apt-get install bubblewrap"),               # the grader's sandbox
    ("seeds", "--quick"),                                       # a slow machine
    ("runs/", "--json"),                                        # where outputs go
])
def test_troubleshooting_answers_the_real_problems(problem, fix):
    text = sections(readme())["troubleshooting and faq"]
    assert problem in text and fix in text, (problem, fix)


# -- the benchmark section, for users ---------------------------------------------------------------------
def test_the_benchmark_section_is_for_users_and_the_internals_are_in_docs():
    text = sections(readme())["benchmarks"]
    assert "pgcourse bench --quick" in text and "docs/benchmark.md" in text
    assert "how to read" in text.lower()
    for internal in ("target", "load average", "missed", "old rule"):
        assert internal not in text.lower(), f"README's benchmark section mentions {internal!r}: docs/benchmark.md"
    docs = (ROOT / "docs" / "benchmark.md").read_text()
    for internal in ("target", "load average", "old rule", "like with like", "Tuning notes"):
        assert internal in docs, internal


def test_the_benchmark_numbers_in_the_readme_are_the_ones_docs_record_from_printed_runs():
    """Every number of the README's results table is in docs/benchmark.md's tables of measured runs."""
    text = sections(readme())["benchmarks"]
    docs = (ROOT / "docs" / "benchmark.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and ("CartPole" in line or "Pendulum" in line)]
    assert len(rows) >= 5
    for row in rows:
        cells = re.sub(r"(CartPole|Pendulum)-v1", "", row)
        for number in re.findall(r"−?\d[\d,]*(?:\.\d+)?", cells):
            assert number in docs, f"{number} ({row.strip()}) is not in docs/benchmark.md"


def test_the_first_screen_says_what_the_course_covers_how_long_it_takes_and_the_two_commands():
    """Issue 48: the opening list stopped at the debugging traps (07 and 08 missing), and the two commands were
    about 70 lines down. The first screen (before the first figure) names every chapter, the exercises' total time
    (the sum of their labels, as 'How long it takes' states it) and the two commands."""
    top = readme().split("![", 1)[0]
    for chapter in ("00", "01", "02", "03", "04", "04b", "05", "06", "07", "08"):
        assert f"**{chapter}**" in top, chapter
    hours, rest = divmod(sum(course_minutes().values()), 60)
    assert f"{hours} h {rest} min" in top
    assert "make lab" in top and "make test" in top and len(top.splitlines()) <= 25


def test_the_readme_says_the_colab_badges_lead_nowhere_until_the_course_is_published():
    """Issue 48: the README sent Colab users to badges that docs/colab.md says point at an unpublished address."""
    text = sections(readme())["start here"]
    assert "Google Colab: not working yet." in text and "lead nowhere" in text
    assert "Google Colab does not work yet" in readme().split("![", 1)[0]
