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


def _dry_run(*arguments: str) -> str:
    import subprocess

    done = subprocess.run(["make", "-n", *arguments, "VENV=/nonexistent-venv"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_lab_installs_the_learners_set_without_the_test_extras():
    """`make lab` installed the dev/bench/scale extras (Ray, playwright, SB3) a learner never uses, and on Linux
    the CUDA torch (5.7 GB of .venv on Python 3.13 against 2.0 GB): issue 29, item 5."""
    lab = _dry_run("lab", "HAS_NVIDIA_GPU=", "ON_LINUX=Linux")
    assert 'pip install -e ".[course]"' in lab
    for extra in ("dev", "bench", "scale", "docs"):
        assert extra not in lab.split('pip install -e ".[')[1].split("]")[0]
    assert '"torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu' in lab
    gpu = _dry_run("lab", "HAS_NVIDIA_GPU=yes", "ON_LINUX=Linux")
    assert '"torch==2.13.0" \n' in gpu.replace('"torch==2.13.0" --', "X") + "\n" or "--index-url" not in gpu
    assert "--index-url" not in gpu and "the CUDA build" in gpu
    mac = _dry_run("lab", "HAS_NVIDIA_GPU=", "ON_LINUX=")
    assert "--index-url" not in mac
    chosen = _dry_run("lab", "TORCH_INDEX=https://example.org/simple", "HAS_NVIDIA_GPU=", "ON_LINUX=Linux")
    assert "--index-url https://example.org/simple" in chosen


def test_make_test_still_installs_everything_the_tests_need():
    test = _dry_run("setup")
    assert 'pip install -e ".[course,dev,bench,scale,tensorboard,docs]"' in test
    assert "--index-url" not in test  # CI's configured index, as before


def test_the_pages_workflow_builds_the_site_as_make_site_does_from_the_docs_extra_only():
    import yaml

    sys_path = str(ROOT / "tools")
    import sys

    sys.path.insert(0, sys_path)
    try:
        from docs_requirements import docs_requirements
    finally:
        sys.path.remove(sys_path)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert docs_requirements() == extras["docs"] and all("==" in pin for pin in extras["docs"])
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "site.yml").read_text())
    steps = [step.get("run", "") for step in workflow["jobs"]["build"]["steps"]]
    assert "python -m pip install $(python tools/docs_requirements.py)" in steps
    assert "make site-build SITE_PYTHON=python SOLUTIONS=1" in steps
    assert workflow["jobs"]["deploy"]["needs"] == "build"
    site = _dry_run("site-build", "SITE_PYTHON=python")
    assert "python -m sphinx -W --keep-going -q -b html -c site" in site and "site/_build/html" in site


def test_every_pytest_pass_of_make_test_prints_native_tracebacks():
    """Issue 50: the fake-GPU pass stopped with an INTERNALERROR (pytest's long traceback format read the failing
    source with the AST and hit CPython 3.11's recursion-depth check), naming neither notebook nor error. Every
    pass of the Makefile prints Python's own tracebacks, and `make test` says which log stopped that way."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^TB := --tb=native$", makefile, re.MULTILINE)
    passes = [line for line in makefile.splitlines() if "-m pytest" in line and not line.lstrip().startswith("#")]
    assert len(passes) >= 6 and all("-m pytest $(TB)" in line for line in passes), passes
    assert "grep -q INTERNALERROR" in makefile


def test_every_test_is_in_one_layer_and_the_layers_name_real_files():
    """Issue 45, item 4: the layers (tests/layers.py) name files that exist, and `make check` runs the unit one."""
    import sys
    sys.path.insert(0, str(ROOT / "tests"))
    from layers import FILE_LAYERS, LAYERS, layer_of
    for layer, patterns in FILE_LAYERS.items():
        assert layer in LAYERS
        for pattern in patterns:
            assert list((ROOT / "tests").glob(pattern)), f"{layer}: {pattern} names no test file"
    assert layer_of(Path("tests/test_returns.py"), slow=False) == "unit"
    assert layer_of(Path("tests/test_returns.py"), slow=True) == "training"
    assert layer_of(Path("tests/test_grading_loops.py"), slow=False) == "grading"
    assert layer_of(Path("notebooks/01_reinforce.ipynb"), slow=False) == "notebooks"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    check = re.search(r"^check: setup\n\t(.*-m pytest \$\(TB\) .*-m unit .*tests/)$", makefile, re.MULTILINE)
    assert check and "-n $(CHECK_JOBS)" in check.group(1), "make check runs the unit layer on every core (xdist)"
    assert re.search(r"^CHECK_JOBS \?= auto$", makefile, re.MULTILINE)
    assert re.search(r'"pytest-xdist==[\d.]+"', (ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "make check" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_make_site_installs_the_docs_extra_alone():
    """Issue 48: `make site` after `make lab` installed every test and tool extra (13.5 min, +0.6 GB) before a build
    that needs the docs extra only (the site is built from the notebooks' stored outputs)."""
    import re

    makefile = (ROOT / "Makefile").read_text()
    site = re.search(r"^site: (.*)$", makefile, re.M).group(1).split()
    assert "setup" not in site and "$(SITE_STAMP)" in site, site
    recipe = re.search(r"^\$\(SITE_STAMP\):.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert "tools/docs_requirements.py" in recipe and "-e \"." not in recipe and "[course" not in recipe, recipe
