"""The test suite's layers (issue 45, item 4): every test is in one, named by a marker, so that a contributor can
run the fast one first.

- ``unit``: the math, the envs, the configs, the checks' verdicts, the CLI's errors, the package's pieces: the
  fast lane, `make check` (`pytest -m unit -n auto tests/`), a few minutes at most on a 2-core machine.
- ``training``: tests that train agents for real (marked ``slow`` in a unit file, or a file of them below).
- ``claims``: the lessons' cached results re-run and compared (bit for bit on the machine that made them).
- ``grading``: the classroom grader, its sandbox and the term (they start worker processes and grade notebooks).
- ``site``: the website's build and a browser on it.
- ``notebooks``: every lesson and solution notebook run top to bottom (nbval).

`make test` runs every layer; a file is in ``unit`` unless it is listed here.
"""
from __future__ import annotations

from pathlib import Path

LAYERS = ("unit", "training", "claims", "grading", "site", "notebooks")

FILE_LAYERS = {
    "claims": ("test_agreement.py", "test_cached_sweeps.py", "test_cached_lm.py", "test_ch06_learning_proof.py"),
    "training": ("test_train_ppo_agreement.py", "test_training_loops_agree.py", "test_loop_checks.py", "test_bench.py",
                 "test_sweeps.py", "test_sweeps_batch.py", "test_sweeps_ray.py", "test_python_versions.py",
                 "test_ch06_part_b.py"),
    "grading": ("test_term.py", "test_bug_hunt.py", "test_hunts.py", "test_grading*.py"),
    "site": ("test_site.py", "test_browser.py"),
}


def layer_of(path: Path, slow: bool) -> str:
    """The layer of a test in ``path`` (``slow``: it carries the ``slow`` marker)."""
    if path.suffix == ".ipynb":
        return "notebooks"
    for layer, patterns in FILE_LAYERS.items():
        if any(path.match(pattern) for pattern in patterns):
            return layer
    return "training" if slow else "unit"
