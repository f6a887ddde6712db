"""The course in Google Colab: install what Colab lacks, never Colab's own torch, numpy or matplotlib.

Every notebook's set-up cell (written by ``pgcourse colab-cells``; hidden on the website) does nothing outside
Colab. In Colab it clones the course at its release tag and runs this file's :func:`setup` from the clone
(``runpy.run_path``: the file imports only the standard library, so it runs before pgcourse is installed):

1. ``pip install --no-deps <clone>``: the package alone, a regular (not editable) install;
2. ``pip install -c <Colab's torch, numpy, matplotlib, pinned to the versions it has> <requirements>``: the
   ``colab`` extra of pyproject.toml (what the lessons need at the course's own version: gymnasium with its
   classic-control and box2d extras) and every other dependency that is not installed at all. pip leaves
   a requirement that is already met alone, and the constraints make it fail rather than replace torch,
   numpy or matplotlib (docs/colab.md);
3. the working folder becomes the notebook's folder in the clone, so ``figures/`` is found
   (``pgcourse.rl.course_files``) and relative paths (``runs/``) behave as in JupyterLab; ipywidgets' custom
   widget manager is switched on (Colab's own shows only the built-in widgets).

A second run of the cell (or of another notebook's cell) skips the installs: the clone keeps a stamp of what was
installed. Tests: tests/test_colab.py (the plan, the commands) and tools/colab_like_check.py (a Colab-like
Python 3.12 with another torch: torch, numpy and matplotlib untouched, lessons 00 and 01 run).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

NEVER_INSTALLED = ("torch", "numpy", "matplotlib")  # Colab's own builds (CUDA torch): never replaced
STAMP = ".colab-installed.json"
FOLDERS = ("notebooks", "exercises", "solutions")


class ColabSetupError(RuntimeError):
    """The set-up cannot go on (what is wrong and what to do)."""


def requirement_name(requirement: str) -> str:
    """The distribution name of a requirement, normalised (PEP 503): ``gymnasium[box2d]==1.4.0`` -> ``gymnasium``."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ColabSetupError(f"cannot read the package name of the requirement {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def read_requirements(pyproject_text: str) -> tuple[list[str], list[str]]:
    """``(dependencies, colab extra)`` of a pyproject.toml's text."""
    project = tomllib.loads(pyproject_text)["project"]
    extras = project.get("optional-dependencies", {})
    if "colab" not in extras:
        raise ColabSetupError("pyproject.toml has no 'colab' extra (the packages Colab must get at the course's "
                              "version); this clone is not a course release that supports Colab")
    return list(project["dependencies"]), list(extras["colab"])


def plan(dependencies: Sequence[str], colab_extra: Sequence[str], installed: Mapping[str, str]) -> list[str]:
    """The requirements to hand pip: the whole ``colab`` extra, then each dependency not installed at all.

    ``installed`` maps normalised distribution names to versions. torch, numpy and matplotlib are never in the
    plan; Colab has them, so a missing one means this is not a Colab-like Python and the set-up stops.
    """
    missing = [name for name in NEVER_INSTALLED if name not in installed]
    if missing:
        raise ColabSetupError(f"{', '.join(missing)} not installed: the Colab set-up uses Colab's own torch, numpy "
                              "and matplotlib and never installs them (outside Colab, install the course with "
                              "`make lab` or `pip install -e .`)")
    forbidden = [r for r in colab_extra if requirement_name(r) in NEVER_INSTALLED]
    if forbidden:
        raise ColabSetupError(f"the colab extra asks for {forbidden}: it must never name {', '.join(NEVER_INSTALLED)}")
    chosen = {requirement_name(r) for r in colab_extra}
    wanted = list(colab_extra)
    for requirement in dependencies:
        name = requirement_name(requirement)
        if name not in NEVER_INSTALLED and name not in chosen and name not in installed:
            wanted.append(requirement)
            chosen.add(name)
    return wanted


def constraints(installed: Mapping[str, str]) -> str:
    """A pip constraints file holding torch, numpy and matplotlib at the versions installed now."""
    return "".join(f"{name}=={installed[name]}\n" for name in NEVER_INSTALLED)


def pip_commands(python: str, root: Path, requirements: Sequence[str], constraints_file: Path) -> list[list[str]]:
    """The two pip runs: the package alone (no dependencies), then ``requirements`` under the constraints."""
    commands = [[python, "-m", "pip", "install", "--quiet", "--no-deps", str(root)]]
    if requirements:
        # --no-warn-conflicts: pip would list every pin of pgcourse that Colab's packages do not meet, in red, as
        # an ERROR; they are kept on purpose, and setup() names the ones that differ in one line instead
        commands.append([python, "-m", "pip", "install", "--quiet", "--no-warn-conflicts", "-c", str(constraints_file),
                         *requirements])
    return commands


def differing_pins(dependencies: Sequence[str], installed: Mapping[str, str]) -> list[str]:
    """``"name version (course: pin)"`` for each ``name==pin`` dependency installed at another version."""
    found = []
    for requirement in dependencies:
        pin = requirement.partition("==")[2].strip()
        name = requirement_name(requirement)
        if pin and name in installed and installed[name] != pin:
            found.append(f"{name} {installed[name]} (course: {pin})")
    return found


def installed_versions() -> dict[str, str]:
    """Every installed distribution, normalised name -> version."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(requirement_name(name), dist.version)
    return found


def _enable_widgets() -> bool:
    """Switch on Colab's custom widget manager (ipywidgets 8's widgets); False outside Colab."""
    try:
        from google.colab import output  # type: ignore[import-not-found]
    except ImportError:
        return False
    output.enable_custom_widget_manager()
    return True


def setup(folder: str = "notebooks", root: str | Path | None = None,
          run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Path:
    """Install the course from ``root`` (default: the clone this file is in) and work in its ``folder``.

    Returns the working folder. Installs nothing on a second call with the same plan (the stamp in ``root``).
    """
    if folder not in FOLDERS:
        raise ColabSetupError(f"folder {folder!r}: expected one of {', '.join(FOLDERS)}")
    root = Path(root if root is not None else Path(__file__).resolve().parents[1]).resolve()
    if not (root / "pyproject.toml").is_file() or not (root / folder).is_dir():
        raise ColabSetupError(f"{root} is not a clone of the course (no pyproject.toml or {folder}/): delete it "
                              "and run the cell again")
    dependencies, colab_extra = read_requirements((root / "pyproject.toml").read_text(encoding="utf-8"))
    before = installed_versions()
    wanted = plan(dependencies, colab_extra, before)
    stamp = root / STAMP
    # what the course asks for, not the plan: the plan shrinks once the missing dependencies are installed
    record = {"dependencies": dependencies, "colab": colab_extra,
              "kept": {name: before[name] for name in NEVER_INSTALLED}}
    if not (stamp.is_file() and json.loads(stamp.read_text()) == record and "pgcourse" in before):
        constraints_file = root / ".colab-constraints.txt"
        constraints_file.write_text(constraints(before))
        for command in pip_commands(sys.executable, root, wanted, constraints_file):
            print("$", " ".join(command[2:]), flush=True)
            if run(command).returncode != 0:
                raise ColabSetupError(f"`{' '.join(command[2:])}` failed (its messages are above); Colab's torch, "
                                      "numpy and matplotlib were not changed")
        importlib.invalidate_caches()
        after = installed_versions()
        changed = [f"{n} {before[n]} -> {after.get(n)}" for n in NEVER_INSTALLED if after.get(n) != before[n]]
        if changed:
            raise ColabSetupError(f"the install changed {', '.join(changed)}: this should not happen; please "
                                  "report it (docs/colab.md)")
        stamp.write_text(json.dumps(record))
    os.environ["PGCOURSE_ROOT"] = str(root)
    work = root / folder
    os.chdir(work)
    widgets = _enable_widgets()
    kept = ", ".join(f"{name} {version}" for name, version in record["kept"].items())
    print(f"pgcourse is ready: Colab's own {kept} kept; working in {work}"
          + ("; ipywidgets' custom widget manager on" if widgets else ""))
    differ = differing_pins(dependencies, installed_versions())
    if differ:
        print(f"Versions other than the course was tested with: {', '.join(differ)}. A run's numbers may differ "
              "from the outputs stored in the lessons (docs/colab.md).")
    return work
