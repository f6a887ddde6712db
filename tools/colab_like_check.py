#!/usr/bin/env python3
"""The Colab set-up in a Colab-like Python: another torch, numpy and matplotlib stay untouched, lessons 00 and 01 run.

Nothing here reaches Google Colab (docs/colab.md says what was and was not tried there). This builds the nearest
thing on this machine and runs the notebooks' own set-up cell in it:

1. a Python 3.12 virtual environment holding what a Colab runtime has before the course is installed: torch
   from PyPI at another version than the course's pin (TORCH, the CUDA build with its nvidia wheels, as Colab's),
   numpy and matplotlib at other versions, ipywidgets 7, scipy, pillow, imageio, tqdm, and Jupyter's kernel and
   executor; a stand-in ``google.colab`` package whose ``output.enable_custom_widget_manager`` records its call,
   imported at kernel start (Colab's kernel imports ``google.colab``), so ``"google.colab" in sys.modules``;
2. a copy of this repository (tracked and untracked, not ignored, files) with the Colab cells written into its
   notebooks (``python -m pgcourse.course.colab_cells``, then the exercise generator), standing in for the clone:
   ``PGCOURSE_COLAB_DIR`` points the set-up cell at it, so nothing is fetched from GitHub;
3. the size and modification time of every file of torch, numpy and matplotlib, recorded;
4. lessons 00 and 01 copied to an empty ``content/`` folder (Colab's /content) and executed there with
   nbconvert, top to bottom, in a fresh kernel: the set-up cell installs the course and moves into the
   copy's notebooks/ folder;
5. checks: torch, numpy and matplotlib have the same versions and the same files (size, mtime) as before;
   pgcourse is a regular install (not the copy, not editable); the set-up cell printed that it was ready and
   switched the custom widget manager on; both lessons ran without an error.

Exit 0 when every check holds, 1 otherwise. Minutes (building the environment downloads ~3 GB once; pip's cache
serves later runs); prints each phase's time.

    python tools/colab_like_check.py                      # work folder /tmp/pgcourse-colab-like (replaced)
    python tools/colab_like_check.py --python python3.13 --work DIR
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.12.1"  # the course pins 2.13.0; Colab's torch is whatever Google ships
COLAB_HAS = [TORCH, "numpy==2.0.2", "matplotlib==3.10.0", "ipywidgets==7.7.1", "scipy==1.15.3", "pillow==11.1.0",
             "imageio==2.37.0", "tqdm==4.67.1", "ipykernel", "nbclient", "nbformat", "nbconvert"]
KEPT = ("torch", "numpy", "matplotlib")
LESSONS = ("00_setup_and_tour", "01_reinforce")
FAKE_COLAB = '''"""A stand-in for Colab's google.colab (tools/colab_like_check.py)."""'''
FAKE_OUTPUT = '''import os


def enable_custom_widget_manager():
    with open(os.environ["FAKE_COLAB_RECORD"], "a") as record:
        record.write("enable_custom_widget_manager\\n")
'''
SNAPSHOT = textwrap.dedent('''
    import importlib.metadata, json, os, sys
    out = {}
    for name in sys.argv[2:]:
        dist = importlib.metadata.distribution(name)
        files = {}
        for file in dist.files or []:
            path = file.locate()
            if os.path.isfile(path):
                stat = os.stat(path)
                files[str(file)] = [stat.st_size, stat.st_mtime_ns]
        out[name] = {"version": dist.version, "files": files}
    json.dump(out, open(sys.argv[1], "w"))
''')


def phase(name: str, started: list[float]) -> None:
    now = time.monotonic()
    print(f"[{now - started[0]:7.1f} s] {name}", flush=True)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(str(c) for c in command), flush=True)
    return subprocess.run(command, check=True, **kwargs)


def copy_repository(target: Path) -> None:
    """The repository's tracked and untracked (not ignored) files, as a clone would have them (and this work's)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default="python3.12", help="the Colab-like Python (default: python3.12)")
    parser.add_argument("--work", default="/tmp/pgcourse-colab-like", help="work folder, replaced")
    args = parser.parse_args(argv)
    started = [time.monotonic()]
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    course, content, venv = work / "pgcourse-colab", work / "content", work / "venv"
    content.mkdir(parents=True)

    phase("copy of the repository, with the Colab cells written into its notebooks", started)
    copy_repository(course)
    env = {**os.environ, "PYTHONPATH": str(course)}
    run([sys.executable, "-m", "pgcourse.course.colab_cells", "--root", str(course)], env=env, cwd=course)
    run([sys.executable, "-m", "pgcourse.classroom.exercisegen"], env=env, cwd=course)
    run([sys.executable, "-m", "pgcourse.course.colab_cells", "--root", str(course), "--check"], env=env, cwd=course)

    phase(f"the Colab-like {args.python}: {', '.join(COLAB_HAS)}", started)
    run([args.python, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", *COLAB_HAS])
    fake = site_packages(venv) / "google" / "colab"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE_COLAB + "\n")
    (fake / "output.py").write_text(FAKE_OUTPUT)
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # Colab's kernel has it imported\n")
    versions = subprocess.run([python, "-c", "import torch, numpy, matplotlib, sys; print(sys.version.split()[0], "
                               "torch.__version__, numpy.__version__, matplotlib.__version__)"],
                              check=True, capture_output=True, text=True).stdout.strip()
    print(f"Python, torch, numpy, matplotlib before: {versions}")
    run([python, "-c", SNAPSHOT, str(work / "before.json"), *KEPT])

    phase("lessons 00 and 01 executed in content/ (the set-up cell installs the course first)", started)
    record = work / "widget-manager.txt"
    kernel_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PGCOURSE_ROOT", "VIRTUAL_ENV")}
    kernel_env |= {"PGCOURSE_COLAB_DIR": str(course), "IPYTHONDIR": str(work / "ipython"),
                   "FAKE_COLAB_RECORD": str(record), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    failures, times = [], {}
    for lesson in LESSONS:
        shutil.copy(course / "notebooks" / f"{lesson}.ipynb", content / f"{lesson}.ipynb")
        began = time.monotonic()
        done = subprocess.run([python, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                               "--ExecutePreprocessor.timeout=1800", str(content / f"{lesson}.ipynb")],
                              cwd=content, env=kernel_env, capture_output=True, text=True)
        times[lesson] = time.monotonic() - began
        print(f"{lesson}: exit {done.returncode} in {times[lesson]:.0f} s")
        if done.returncode:
            failures.append(f"{lesson} did not run: {done.stderr[-3000:]}")
            continue
        executed = json.loads((content / f"{lesson}.ipynb").read_text())
        setup = next(c for c in executed["cells"] if "colab-setup" in c.get("metadata", {}).get("tags", []))
        printed = "".join("".join(o.get("text", "")) for o in setup["outputs"])
        print(f"{lesson}'s set-up cell printed:\n{textwrap.indent(printed.strip(), '    ')}")
        if "pgcourse is ready" not in printed:
            failures.append(f"{lesson}: the set-up cell did not say it was ready")

    phase("checks", started)
    run([python, "-c", SNAPSHOT, str(work / "after.json"), *KEPT])
    before, after = (json.loads((work / f"{w}.json").read_text()) for w in ("before", "after"))
    for name in KEPT:
        if before[name]["version"] != after[name]["version"]:
            failures.append(f"{name} went from {before[name]['version']} to {after[name]['version']}")
        changed = [f for f in set(before[name]["files"]) | set(after[name]["files"])
                   if before[name]["files"].get(f) != after[name]["files"].get(f)]
        if changed:
            failures.append(f"{name}: {len(changed)} files changed, e.g. {sorted(changed)[:3]}")
        print(f"{name} {after[name]['version']}: {len(after[name]['files'])} files, "
              f"{'unchanged' if not changed else f'{len(changed)} changed'}")
    where = subprocess.run([python, "-c", "import pgcourse, importlib.metadata as m; print(pgcourse.__file__); "
                            "print(m.distribution('pgcourse').read_text('direct_url.json') or '')"],
                           cwd=content, env={k: v for k, v in kernel_env.items()}, capture_output=True, text=True)
    print(f"pgcourse: {where.stdout.strip()}")
    if str(site_packages(venv)) not in where.stdout or '"editable": true' in where.stdout:
        failures.append(f"pgcourse is not a regular install in the venv: {where.stdout} {where.stderr[-500:]}")
    if not record.is_file() or "enable_custom_widget_manager" not in record.read_text():
        failures.append("the set-up did not switch Colab's custom widget manager on")
    print(f"lesson times: {', '.join(f'{k} {v:.0f} s' for k, v in times.items())}")
    phase("done", started)
    for failure in failures:
        print(f"FAILED: {failure}")
    print("all checks hold" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
