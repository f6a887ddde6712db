"""A submission cannot fill the disk or the memory with files (issue 26 red team, item 4).

As root the runner mounts a tmpfs of ``scratch_mb`` (64 MB) as the student's only writable folder. A teacher who
is not root had no such bound: the student's /tmp was bubblewrap's tmpfs with no size (half the machine's
memory), RLIMIT_FSIZE (8 MB) bounds each file only, and 40 files of 7 MB (280 MB) were written and held, memory
that --memory does not count. Without the sandbox the same files went to the teacher's disk. The worker now
watches the folder from outside and stops the process beyond ``scratch_mb`` (pgcourse/grading/scratch.py).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgcourse.classroom.grading.sandbox import SANDBOX, probe_sandbox

ROOT = Path(__file__).resolve().parents[1]
FILL = r'''
import atexit, json, shutil, sys, tempfile, time
from pgcourse.grading.link import StudentFunction
from pgcourse.grading.sandbox import Limits, write_runner_package
from pgcourse.grading.worker import StudentProcess

limits = Limits(memory_mb=512).to_dict()
runner = tempfile.mkdtemp(prefix="pgcourse-test-")
atexit.register(shutil.rmtree, runner, True)  # removed when the script ends
process = StudentProcess({"isolation": sys.argv[1], "limits": limits, "runner_folder": str(write_runner_package(runner))},
                         time.monotonic() + 60)
process.link.deadline = time.monotonic() + 60
process.link._answer(process.link.request("exec", {"source": """
import os, tempfile
def fill():
    written = 0
    for k in range(40):
        try:
            with open(os.path.join(tempfile.gettempdir(), f"f{k}"), "wb") as f:
                f.write(b"x" * (7 << 20))
        except OSError:
            break
        written += 7
    return written
""", "filename": "<fill>"}))
try:
    outcome = {"written_mb": StudentFunction(process.link, "fill")()}
except BaseException as error:
    outcome = {"stopped": f"{type(error).__name__}: {error}"}
process.end()
outcome["why"] = getattr(process, "scratch_full", lambda limits: None)(limits)
print(json.dumps(outcome))
'''


def _run(tmp_path: Path, isolation: str, prefix: list[str]) -> dict:
    script = tmp_path / "fill.py"
    script.write_text(FILL)
    done = subprocess.run([*prefix, sys.executable, str(script), isolation], capture_output=True, text=True,
                          timeout=180, cwd=str(ROOT),
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
                               "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _as_a_teacher_who_is_not_root() -> list[str]:
    """bwrap in a user namespace of its own, as uid 1000 (the grader then takes its not-root path)."""
    if os.geteuid() != 0:
        return []
    return [shutil.which("bwrap") or "bwrap", "--unshare-user", "--uid", "1000", "--gid", "1000", "--dev-bind", "/",
            "/", "--"]


def _assert_stopped(outcome: dict) -> None:
    assert outcome.get("written_mb", 0) <= 64, outcome
    assert "stopped" in outcome and "wrote more than 64 MB of files" in (outcome["why"] or ""), outcome


@pytest.mark.skipif(probe_sandbox()[0] != SANDBOX, reason="needs bubblewrap")
def test_a_student_cannot_fill_an_unsized_tmp_when_the_teacher_is_not_root(tmp_path):
    _assert_stopped(_run(tmp_path, "sandbox", _as_a_teacher_who_is_not_root()))


def test_a_student_cannot_fill_the_teachers_disk_without_the_sandbox(tmp_path):
    _assert_stopped(_run(tmp_path, "unsafe-no-sandbox", []))


@pytest.mark.skipif(probe_sandbox()[0] != SANDBOX or os.geteuid() != 0, reason="needs bubblewrap and root")
def test_as_root_the_sized_scratch_refuses_the_writes(tmp_path):
    """The root path was bounded already (ENOSPC at 64 MB); the process is not stopped for it."""
    outcome = _run(tmp_path, "sandbox", [])
    assert outcome.get("written_mb", 99) <= 64 and outcome["why"] is None, outcome
