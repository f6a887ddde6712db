"""Open in Colab (issue 29, item 3): the badge and set-up cell writer, the set-up's install plan, and finding
figures/ without an editable install. The Colab-like end-to-end check (a Python 3.12 with another torch, lessons
00 and 01 executed) is tools/colab_like_check.py, run by hand (minutes; docs/colab.md)."""
from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from pgcourse import colab
from pgcourse.course import colab_cells
from pgcourse.rl import course_files
from pgcourse.classroom.exercisegen import make_exercise_notebook

ROOT = Path(__file__).resolve().parents[1]
RUN_PATH = runpy.run_path
RELEASE = colab_cells.Release("someone/pgcourse", "v9.9.9")
DEPENDENCIES = ["torch==2.13.0", "gymnasium[classic-control,box2d]==1.4.0", "numpy==2.4.6", "matplotlib==3.11.2",
                "imageio==2.38.1", "ipywidgets==8.1.9", "scipy==1.17.1"]
COLAB_EXTRA = ["gymnasium[classic-control,box2d]==1.4.0"]
COLAB_HAS = {"torch": "2.12.1", "numpy": "2.0.2", "matplotlib": "3.10.0", "imageio": "2.37.0",
             "ipywidgets": "7.7.1", "scipy": "1.15.3", "gymnasium": "0.29.1"}


# -- the install plan ----------------------------------------------------------------------------------------
def test_the_plan_never_installs_torch_numpy_or_matplotlib_and_only_what_colab_lacks():
    wanted = colab.plan(DEPENDENCIES, COLAB_EXTRA, COLAB_HAS)
    # gymnasium: the extra, at the course's version although Colab has another; nothing else is missing
    assert wanted == COLAB_EXTRA
    lacking = {name: v for name, v in COLAB_HAS.items() if name not in ("scipy", "imageio")}
    assert colab.plan(DEPENDENCIES, COLAB_EXTRA, lacking) == [*COLAB_EXTRA, "imageio==2.38.1", "scipy==1.17.1"]
    assert not {colab.requirement_name(r) for r in colab.plan(DEPENDENCIES, COLAB_EXTRA, {"torch": "1", "numpy": "1",
                                                                                        "matplotlib": "1"})} \
        & set(colab.NEVER_INSTALLED)


def test_the_plan_refuses_a_python_without_torch_and_an_extra_that_names_torch():
    with pytest.raises(colab.ColabSetupError, match="torch not installed.*never installs them"):
        colab.plan(DEPENDENCIES, COLAB_EXTRA, {"numpy": "2", "matplotlib": "3"})
    with pytest.raises(colab.ColabSetupError, match="must never name torch"):
        colab.plan(DEPENDENCIES, ["torch>=2"], COLAB_HAS)


def test_requirement_names_are_normalised():
    assert colab.requirement_name("gymnasium[classic-control,box2d]==1.4.0") == "gymnasium"
    assert colab.requirement_name("Pygame_CE>=2") == "pygame-ce"


def test_the_constraints_pin_colabs_own_versions_and_pip_gets_the_package_without_dependencies(tmp_path):
    assert colab.constraints(COLAB_HAS) == "torch==2.12.1\nnumpy==2.0.2\nmatplotlib==3.10.0\n"
    first, second = colab.pip_commands("py", tmp_path, COLAB_EXTRA, tmp_path / "c.txt")
    assert first == ["py", "-m", "pip", "install", "--quiet", "--no-deps", str(tmp_path)]
    assert second == ["py", "-m", "pip", "install", "--quiet", "--no-warn-conflicts", "-c", str(tmp_path / "c.txt"),
                      *COLAB_EXTRA]


def test_the_versions_colab_keeps_are_named_against_the_courses_pins():
    assert colab.differing_pins(DEPENDENCIES, COLAB_HAS) == [
        "torch 2.12.1 (course: 2.13.0)", "gymnasium 0.29.1 (course: 1.4.0)", "numpy 2.0.2 (course: 2.4.6)",
        "matplotlib 3.10.0 (course: 3.11.2)", "imageio 2.37.0 (course: 2.38.1)", "ipywidgets 7.7.1 (course: 8.1.9)",
        "scipy 1.15.3 (course: 1.17.1)"]
    assert colab.differing_pins(["torch==2.13.0"], {"torch": "2.13.0"}) == []


def test_pyprojects_colab_extra_is_what_the_set_up_reads():
    dependencies, extra = colab.read_requirements((ROOT / "pyproject.toml").read_text())
    assert "torch==2.13.0" in dependencies
    assert [colab.requirement_name(r) for r in extra] == ["gymnasium"]
    assert set(extra) <= set(dependencies), "the extra pins what the dependencies pin (one version per package)"


def _fake_clone(tmp_path: Path) -> Path:
    root = tmp_path / "clone"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def test_setup_installs_once_then_works_in_the_notebooks_folder(tmp_path, monkeypatch):
    root, commands = _fake_clone(tmp_path), []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGCOURSE_ROOT", "unset")

    def run(command):
        commands.append(command)
        return subprocess.CompletedProcess(command, 0)

    assert colab.setup("notebooks", root=root, run=run) == root / "notebooks"
    assert Path.cwd() == root / "notebooks" and os.environ["PGCOURSE_ROOT"] == str(root)
    assert [c[4:6] for c in commands] == [["--quiet", "--no-deps"], ["--quiet", "--no-warn-conflicts"]]
    assert (root / ".colab-constraints.txt").read_text().startswith("torch==")
    stamp = json.loads((root / colab.STAMP).read_text())
    assert set(stamp["kept"]) == {"torch", "numpy", "matplotlib"}
    colab.setup("notebooks", root=root, run=run)
    assert len(commands) == 2, "a second run installs nothing"


def test_a_second_setup_installs_nothing_after_the_first_installed_a_missing_dependency(tmp_path, monkeypatch):
    """The stamp records what the course asks for, not the plan: the plan shrinks once the missing are installed."""
    root, commands = _fake_clone(tmp_path), []
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGCOURSE_ROOT", "unset")
    installed = {"torch": "2.12.1", "numpy": "2.0.2", "matplotlib": "3.10.0"}
    monkeypatch.setattr(colab, "installed_versions", lambda: dict(installed))

    def run(command):  # pip installs everything asked for
        commands.append(command)
        asked = command[command.index("-c") + 2:] if "-c" in command else ["pgcourse"]
        installed.update({colab.requirement_name(r): "x" for r in asked})
        return subprocess.CompletedProcess(command, 0)

    colab.setup("notebooks", root=root, run=run)
    assert "scipy==1.17.1" in commands[-1], "scipy was missing: installed at the course's pin"
    colab.setup("notebooks", root=root, run=run)
    assert len(commands) == 2, "the second set-up ran pip again"


def test_setup_stops_on_a_failed_pip_and_on_a_folder_that_is_not_the_clones(tmp_path, monkeypatch):
    root = _fake_clone(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(colab.ColabSetupError, match="failed.*were not changed"):
        colab.setup("notebooks", root=root, run=lambda c: subprocess.CompletedProcess(c, 1))
    with pytest.raises(colab.ColabSetupError, match="not a clone of the course"):
        colab.setup("exercises", root=root, run=lambda c: subprocess.CompletedProcess(c, 0))
    with pytest.raises(colab.ColabSetupError, match="expected one of notebooks"):
        colab.setup("figures", root=root)
    assert Path.cwd() == tmp_path


# -- the cells -----------------------------------------------------------------------------------------------
def _notebook() -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 01 · A lesson"),
        nbformat.v4.new_code_cell("import pgcourse as pg\n"
                                  'FIGURES = Path(pg.__file__).resolve().parents[1] / "figures"'),
    ])


def test_the_release_comes_from_pyprojects_repository_url_and_version():
    release = colab_cells.release_from_pyproject((ROOT / "pyproject.toml").read_text())
    from pgcourse import __version__
    assert release.tag == f"v{__version__}"
    assert release.git_url.startswith("https://github.com/")
    with pytest.raises(ValueError, match="expected https://github.com/<owner>/<name>"):
        colab_cells.release_from_pyproject('[project]\nversion = "1"\nurls = {Repository = "https://gitlab.com/a/b"}')


def test_the_writer_puts_the_badge_first_and_the_setup_after_the_title_and_is_idempotent():
    notebook = colab_cells.with_colab_cells(_notebook(), "notebooks/01_x.ipynb", RELEASE)
    assert [c.metadata.get("tags", [])[:1] for c in notebook.cells] == [["colab-badge"], [], ["colab-setup"], []]
    assert "https://colab.research.google.com/github/someone/pgcourse/blob/v9.9.9/notebooks/01_x.ipynb" \
        in notebook.cells[0].source
    assert '("notebooks")' in notebook.cells[2].source and "--branch=v9.9.9" in notebook.cells[2].source
    assert "pg.figures_dir()" in notebook.cells[3].source
    assert colab_cells.problems(notebook, "notebooks/01_x.ipynb", RELEASE) == []
    once = nbformat.writes(notebook)
    again = colab_cells.with_colab_cells(nbformat.reads(once, 4), "notebooks/01_x.ipynb", RELEASE)
    assert nbformat.writes(again) == once
    nbformat.validate(again)


def test_the_check_names_each_mistake():
    fresh = _notebook()
    found = colab_cells.problems(fresh, "notebooks/01_x.ipynb", RELEASE)
    assert any("cell 0 is not the Colab badge" in p for p in found)
    assert any("find figures/ through the package's file" in p for p in found)
    copied = colab_cells.with_colab_cells(_notebook(), "solutions/01_x.ipynb", RELEASE)
    found = colab_cells.problems(copied, "exercises/01_x.ipynb", RELEASE)
    assert any("expected one linking" in p and "exercises/01_x.ipynb" in p for p in found)
    assert any("set-up cell differs" in p and "folder exercises" in p for p in found)
    older = colab_cells.problems(copied, "solutions/01_x.ipynb", colab_cells.Release("someone/pgcourse", "v1.0.0"))
    assert any("(its own file at v1.0.0)" in p for p in older)
    shown = colab_cells.with_colab_cells(_notebook(), "notebooks/01_x.ipynb", RELEASE)
    shown.cells[2].metadata["tags"] = ["colab-setup"]
    assert any("not tagged 'remove-cell'" in p for p in colab_cells.problems(shown, "notebooks/01_x.ipynb", RELEASE))


def test_the_exercise_generator_points_the_copied_cells_at_the_exercise():
    solution = colab_cells.with_colab_cells(_notebook(), "solutions/01_x.ipynb", RELEASE)
    exercise = make_exercise_notebook(solution, "01_x.ipynb")
    assert colab_cells.problems(exercise, "exercises/01_x.ipynb", RELEASE) == []
    assert "solutions" in solution.cells[0].source, "the solution notebook itself is not changed"


def _run_cell(source: str, clone: Path, in_colab: bool, monkeypatch) -> list:
    """Execute the set-up cell with git and the clone's colab.py replaced by recorders; what they were asked."""
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: calls.append(("run", command)))
    monkeypatch.setattr(runpy, "run_path", lambda path: RUN_PATH(path, init_globals={"CALLS": calls}))
    monkeypatch.setenv(colab_cells.CLONE_VARIABLE, str(clone))
    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    try:
        exec(compile(source, "<setup cell>", "exec"), {})
    except FileNotFoundError:  # the recording git cloned nothing, so there is no colab.py to run
        calls.append(("no clone",))
    return calls


def test_the_setup_cell_does_nothing_outside_colab_and_in_colab_runs_the_clones_setup(monkeypatch, tmp_path):
    source = colab_cells.setup_source(RELEASE, "solutions")
    clone = tmp_path / "clone"
    (clone / "pgcourse").mkdir(parents=True)
    (clone / "pgcourse" / "colab.py").write_text("def setup(folder):\n    CALLS.append(('setup', folder))\n")
    assert _run_cell(source, clone, False, monkeypatch) == []
    assert _run_cell(source, clone, True, monkeypatch) == [("setup", "solutions")], "a clone is there: no git"
    absent = tmp_path / "absent"
    assert _run_cell(source, absent, True, monkeypatch) == [
        ("run", ["git", "clone", "--quiet", "--depth=1", "--branch=v9.9.9", "https://github.com/someone/pgcourse",
                 str(absent)]), ("no clone",)]


def test_the_setup_cell_is_short():
    assert len(colab_cells.setup_source(RELEASE, "notebooks").splitlines()) <= 6


# -- figures/ without an editable install ----------------------------------------------------------------------
def _regular_install(tmp_path: Path) -> Path:
    """The package alone, outside the course (what `pip install .` makes in site-packages)."""
    site = tmp_path / "site-packages"
    shutil.copytree(ROOT / "pgcourse", site / "pgcourse", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _python(code: str, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PGCOURSE_ROOT"} | {"PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_regular_install_finds_figures_and_lesson_08s_cache_from_the_notebooks_folder(tmp_path):
    site = _regular_install(tmp_path)
    code = ("import pgcourse as pg; from pgcourse import lm; print(pg.__file__); print(pg.figures_dir()); "
            "print(len(lm.load_cached()['rows']))")
    done = _python(code, site, ROOT / "notebooks")
    assert done.returncode == 0, done.stderr[-2000:]
    package, figures, rows = done.stdout.split()
    assert Path(package).is_relative_to(site), "the copy outside the course was imported"
    assert Path(figures) == ROOT / "figures" and int(rows) > 0


def test_outside_the_course_the_error_says_where_it_looked_and_what_to_do(tmp_path):
    site = _regular_install(tmp_path)
    done = _python("import pgcourse as pg; pg.figures_dir()", site, tmp_path)
    assert "CourseNotFoundError" in done.stderr and "set PGCOURSE_ROOT" in done.stderr
    assert course_files.course_root(ROOT / "notebooks") == ROOT
