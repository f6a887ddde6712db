"""``pgcourse handout DIR``: the course a class receives when its exercises are graded.

The repository is the course for self-study: ``solutions/`` is linked from START_HERE's last column and
every solved notebook is one click away. For graded use the class gets a copy without them:

- **in**: START_HERE.ipynb (rewritten: no column of solutions, "stuck?" points at the hints), the lessons
  (``notebooks/``), the exercises (``exercises/``), the cached runs the lessons read (``figures/``), the
  package (``pgcourse/``) with what installs it (``pyproject.toml``, ``Makefile``, ``environment.yml``,
  ``LICENSE``) and a short README.md for the class;
- **out**: ``solutions/`` (every answer, the concept questions' letters, the free-text model answers),
  ``tests/`` (its wrong versions are built from the answers), ``tools/``, ``docs/`` (the teachers' guide)
  and the repository's README (which shows the solutions' layout).

What a handout cannot hide: the package must be installed for the lessons and the checks to run, and a
check compares with a reference, so the reference implementations stay readable in the package's source
(``pgcourse/rl/returns.py``, ``losses.py``, ``pgcourse/course/checks/ch04b_reference.py``…), and ``pg.hint(name,
level=3)`` gives a skeleton. What the handout does guarantee: an answer that *calls* them fails, in the
notebook as in the grader (:mod:`pgcourse.course.checks.rules`), and an answer that is the course's solution is
reported to the teacher (:mod:`pgcourse.classroom.grading.copies`). docs/teachers.md says this to teachers.

The folder must not exist or be empty: nothing of a user's is ever overwritten.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

FOLDERS = ("notebooks", "exercises", "figures", "pgcourse")
FILES = ("pyproject.toml", "Makefile", "environment.yml", "LICENSE")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "runs", "*.egg-info", ".pytest_cache")
START_HERE = "START_HERE.ipynb"
# START_HERE's sentences about solutions/, as the handout says them
REWRITES = (
    (re.compile(r"3\. \*\*Stuck\?\*\* First ask for a hint: `pg\.hint\(\"function_name\"\)` \(up to three\)\. "
                r"Still stuck\? The solved notebook\s*\n\s*is linked in the last column\."),
     "3. **Stuck?** Each exercise says how to ask for a hint: `pg.hint(\"name\")`, then `level=2` and `level=3`."),
    (re.compile(r"The \[README\]\(README\.md\) shows its API and the command line\."),
     "The [README](README.md) says how to set it up."),
    (re.compile(r"`exercises/`: your notebooks, made from `solutions/` by `pgcourse exercises`\s*\n\s*\(a teachers' "
                r"command: it keeps a copy of a notebook holding your answers in `exercises/your-work/`\s*\n\s*before "
                r"it replaces it; teachers edit the solutions, never the exercises\)\."),
     "`exercises/`: your notebooks, to hand in when they are graded."),
)
README = """# Policy gradients, from REINFORCE to PPO

Open `START_HERE.ipynb` and follow its table: a lesson (`notebooks/`), then its exercises (`exercises/`).

Set up once and open the course (Python 3.11–3.13): `make lab` (JupyterLab) or `make notebook`; by hand,
`python -m venv .venv && .venv/bin/pip install -e ".[course]"`, then `jupyter lab START_HERE.ipynb` in this folder.

Your exercises are graded: hand in the exercise notebooks. A check cell gives the verdict the grader
gives. Write your answers with torch and numpy: the course package (`pg.…`) is not available to your
functions while they are checked or graded (only the pieces an exercise names, such as
`pg.networks.CategoricalPolicy` in the training loops).
"""


class HandoutError(Exception):
    """Why no handout was written (one line)."""


def course_root(start: str | Path | None = None) -> Path:
    """The course folder: ``start``, else the current folder or a parent, else the package's own repository,
    the first that holds START_HERE.ipynb, exercises/ and notebooks/."""
    candidates = [Path(start)] if start else [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]]
    for folder in candidates:
        if (folder / START_HERE).is_file() and (folder / "exercises").is_dir() and (folder / "notebooks").is_dir():
            return folder.resolve()
    where = f"{start}" if start else "this folder, its parents or pgcourse's own repository"
    raise HandoutError(f"no course in {where} (a folder with {START_HERE}, exercises/ and notebooks/); "
                       "pass --course DIR")


def check_target(target: Path, root: Path) -> None:
    """Refuse a target that holds anything, is a file, or lies inside the course folders copied into it."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise HandoutError(f"{target} exists and is not a folder: give a new or empty folder")
    if target.is_dir() and any(target.iterdir()):
        raise HandoutError(f"{target} is not empty: a handout is written only into a new or empty folder "
                           "(nothing of yours is overwritten)")
    resolved = target.resolve()
    for name in (*FOLDERS, "solutions"):
        if resolved == root / name or (root / name) in resolved.parents:
            raise HandoutError(f"{target} is inside the course's {name}/: give a folder outside it")


def start_here_without_solutions(notebook: dict) -> dict:
    """START_HERE with the solutions column removed from its table and its sentences about solutions/ rewritten;
    :class:`HandoutError` if a mention of solutions is left (a link the handout would break or leak)."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        lines = text.split("\n")
        header = next((i for i, line in enumerate(lines) if line.startswith("|") and "solutions/" in line), None)
        if header is not None:
            lines = [_drop_last_column(line) if line.startswith("|") else line for line in lines]
        text = "\n".join(lines)
        for pattern, replacement in REWRITES:
            text = pattern.sub(replacement, text)
        cell["source"] = text
        cell.get("metadata", {}).pop("execution", None)
    left = [line for cell in notebook.get("cells", []) for line in str(cell["source"]).splitlines()
            if re.search(r"solutions?/|\bsolved\b", line)]
    if left:
        raise HandoutError(f"{START_HERE} still mentions the solutions after rewriting ({left[0].strip()[:80]!r}): "
                           "edit pgcourse/classroom/handout.py's REWRITES to say it without them")
    return notebook


def _drop_last_column(line: str) -> str:
    line = line.rstrip()
    cells = (line[:-1] if line.endswith("|") else line).split("|")  # one closing pipe: an empty last cell is a cell
    return "|".join(cells[:-1]) + "|"


def write_handout(target: str | Path, course: str | Path | None = None) -> list[Path]:
    """Write the handout of the course at ``course`` into ``target`` (new or empty); the paths written at its top."""
    root = course_root(course)
    target = Path(target)
    check_target(target, root)
    notebook = start_here_without_solutions(json.loads((root / START_HERE).read_text(encoding="utf-8")))
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FOLDERS:
        if (root / name).is_dir():
            shutil.copytree(root / name, target / name, ignore=SKIP, symlinks=True)
            written.append(target / name)
    for name in FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, target / name)
            written.append(target / name)
    (target / START_HERE).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (target / "README.md").write_text(README, encoding="utf-8")
    return [*written, target / START_HERE, target / "README.md"]
