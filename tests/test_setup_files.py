"""The set-up files agree with each other, and torch stays pinned to the CPU wheel."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return _parse(requirements)


def _environment_requirements() -> dict[str, str]:
    text = (ROOT / "environment.yml").read_text()
    pip_lines = re.findall(r"^\s+-\s+([A-Za-z0-9_.\-]+(?:\[[^\]]*\])?==\S+)\s*$", text, flags=re.MULTILINE)
    return _parse(pip_lines)


def _parse(requirements: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+(?:\[[^\]]*\])?)==([^\s;]+)", requirement.strip())
        assert match, f"{requirement!r} is not pinned with =="
        name, version = match.groups()
        pins[name.lower()] = version
    return pins


def test_environment_yml_and_pyproject_pin_the_same_packages():
    pyproject, environment = _pyproject_requirements(), _environment_requirements()
    assert pyproject == environment, (
        f"only in pyproject: {sorted(set(pyproject.items()) - set(environment.items()))}; "
        f"only in environment.yml: {sorted(set(environment.items()) - set(pyproject.items()))}")


def test_torch_is_pinned_to_the_cpu_wheel_everywhere():
    assert _pyproject_requirements()["torch"] == "2.13.0"
    assert _environment_requirements()["torch"] == "2.13.0"
    assert 'torch==2.13.0' in (ROOT / "Makefile").read_text()


def test_rendering_comes_from_gymnasium_classic_control_not_a_second_pygame():
    pins = _pyproject_requirements()
    # classic-control brings pygame-ce for rendering; box2d brings LunarLander (Box2D wheels, no build)
    assert "gymnasium[classic-control,box2d]" in pins
    assert "pygame" not in pins and "pygame-ce" not in pins


def test_environment_yml_uses_conda_forge():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"channels:\s*\n\s*-\s*conda-forge", text)


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make lab" in readme
    assert re.search(r"^make test\s*$", ci, flags=re.MULTILINE)


def test_the_course_extra_installs_both_front_ends():
    """JupyterLab and Notebook 7 (``jupyter notebook``): the browser test opens the course in each."""
    course = _parse(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["course"])
    assert "jupyterlab" in course and "notebook" in course
    assert course["notebook"].startswith("7."), "Notebook 7 is built on JupyterLab 4 (the same widgets and renderers)"


def test_the_license_pyproject_names_is_in_the_repository():
    """Issue 15, item 11: pyproject says MIT; the license text must ship with the code."""
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == {"text": "MIT"}
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text


def test_make_test_says_what_it_installs_before_installing_it():
    """Issue 15, item 11: `make test` as root apt-installs chromium and bubblewrap; it says so first."""
    makefile = (ROOT / "Makefile").read_text()
    for package in ("chromium", "bubblewrap"):
        install = makefile.index(f"apt-get install -y {package}")
        assert re.search(rf"echo \"installing {package}", makefile[:install]), package
