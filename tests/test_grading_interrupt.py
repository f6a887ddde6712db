"""Ctrl-C in the middle of ``pgcourse grade`` (issue 26 red team, item 2): the teacher's earlier gradebook is kept,
nothing half-written is left, no process outlives the command, and it stops at once saying what it left.

Before: the command waited for each busy grading worker to stop politely (5 s each: 6.2-12.7 s with two workers)
and said only "pgcourse grade: interrupted"; the gradebook was already safe (written at the end, atomically).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pgcourse.classroom import grading
from pgcourse.classroom.grading.grader import synthetic_notebook

from test_grading_attacks import play_answer
from test_grading_sandbox import needs_sandbox

ROOT = Path(__file__).resolve().parents[1]
EARLIER = "student,points\nalice,3\n"


@needs_sandbox  # the grade command refuses to grade without one
def test_ctrl_c_while_grading_stops_at_once_and_keeps_the_earlier_gradebook(tmp_path, tmp_path_factory):
    chapter = grading.load_course(ROOT).chapter(grading.load_course(ROOT).resolve("00"))
    for k in range(4):
        (tmp_path / f"s{k}.ipynb").write_text(json.dumps(synthetic_notebook(
            chapter, {"ch00_play_episode": play_answer("    import time; time.sleep(3)\n")})))
    out = tmp_path / "grades.csv"
    out.write_text(EARLIER)
    temp = tmp_path_factory.mktemp("temp")  # the command's temp directory (TMPDIR): the workers' runner folders
    command = [sys.executable, "-c", "import sys; from pgcourse.cli import main; sys.exit(main())", "grade", str(tmp_path), "--chapter", "00", "--out", str(out),
               "--jobs", "2", "--overwrite", "--quiet"]
    process = subprocess.Popen(command, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env={**os.environ, "SDL_VIDEODRIVER": "dummy", "TMPDIR": str(temp)})
    time.sleep(10)  # the workers started, the self-test or a submission under way
    assert process.poll() is None, process.communicate()
    os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group
    pressed = time.monotonic()
    _, stderr = process.communicate(timeout=60)
    waited = time.monotonic() - pressed
    left = subprocess.run(["pgrep", "-s", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert process.returncode == 130, stderr
    assert waited < 5.0, f"{waited:.1f} s after Ctrl-C"  # measured: 1.6-2.6 s; before 6.2-12.7 s
    assert "interrupted (Ctrl-C) before the grades were written" in stderr and "is as before" in stderr, stderr
    assert out.read_text() == EARLIER
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".ipynb") == ["grades.csv"]  # no .tmp left
    assert left == [], left
    assert sorted(p.name for p in temp.iterdir()) == []  # the killed workers' runner folders are removed too
