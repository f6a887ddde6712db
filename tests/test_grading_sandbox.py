"""The sandbox's parts on their own: what bubblewrap binds, the seccomp filter, the runner's import policy."""
from __future__ import annotations

import ast
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pgcourse.grading.sandbox import (SANDBOX, SANDBOX_RUNNER_FOLDER, UNSAFE, Limits, probe_sandbox, seccomp_program,
                                      student_command, write_runner_package)

ROOT = Path(__file__).resolve().parent.parent
needs_sandbox = pytest.mark.skipif(probe_sandbox()[0] != SANDBOX, reason="no bubblewrap sandbox on this machine")


def bound_sources(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg in ("--ro-bind", "--bind")]


def test_the_sandbox_binds_no_course_file():
    runner = write_runner_package(tempfile.mkdtemp())
    argv = student_command(SANDBOX, runner, 3, Limits().to_dict(), 4) if probe_sandbox()[0] == SANDBOX else None
    if argv is None:
        pytest.skip("no bwrap")
    for source in bound_sources(argv):
        inside_course = Path(source).resolve().is_relative_to(ROOT)
        assert not inside_course or Path(source).resolve().is_relative_to(Path(sys.prefix).resolve()), source
    assert str(runner) in bound_sources(argv) and SANDBOX_RUNNER_FOLDER in argv
    assert "--clearenv" in argv and "--unshare-net" in argv and "--unshare-pid" in argv
    assert sorted(p.name for p in (runner / "sandboxside").iterdir()) == sorted(
        ["__init__.py", "wire.py", "link.py", "student.py", "runner.py", "episode_cases.py", "loops.py"])
    # the runner's modules import nothing of pgcourse (they run where pgcourse cannot be imported)
    for module in (runner / "sandboxside").iterdir():
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                assert not any(alias.name.split(".")[0] == "pgcourse" for alias in node.names), module.name
            if isinstance(node, ast.ImportFrom):
                assert node.level <= 1 and (node.module or "").split(".")[0] != "pgcourse", module.name


def test_seccomp_program_shape():
    program = seccomp_program("x86_64")
    assert program is not None and len(program) % 8 == 0
    instructions = [struct.unpack("HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    numbers = {k for code, _, _, k in instructions if code == 0x15}
    assert {57, 58, 56, 435, 272} <= numbers  # fork, vfork, clone, clone3, unshare
    assert instructions[-1] == (0x06, 0, 0, 0x7FFF0000)  # everything else allowed
    assert seccomp_program("sparc") is None


@needs_sandbox
def test_in_the_sandbox_threads_work_and_processes_do_not():
    runner = write_runner_package(tempfile.mkdtemp())
    read, write = os.pipe()
    os.write(write, seccomp_program())
    os.close(write)
    argv = student_command(SANDBOX, runner, 3, Limits().to_dict(), read)
    script = ("import os, threading; box = []; t = threading.Thread(target=lambda: box.append(1)); t.start(); "
              "t.join()\ntry:\n    os.fork(); print('forked')\nexcept OSError as e:\n    print('fork', e.errno)\n"
              "print('thread', box, 'uid', os.getuid(), 'pids', sorted(os.listdir('/proc')).count('1'))")
    argv = argv[:argv.index("--") + 1] + [sys.executable, "-I", "-c", script]
    done = subprocess.run(argv, pass_fds=[read], capture_output=True, text=True, timeout=60)
    os.close(read)
    assert "fork 1" in done.stdout, done.stdout + done.stderr  # EPERM
    assert "thread [1]" in done.stdout


@needs_sandbox
def test_the_runner_blocks_the_course_package_and_says_why():
    """The student process says hello only after its limits, its user and the import policy are in place."""
    from pgcourse.grading.worker import StudentProcess
    import time

    runner = write_runner_package(tempfile.mkdtemp())
    process = StudentProcess({"isolation": SANDBOX, "limits": Limits().to_dict(), "runner_folder": str(runner)},
                             time.monotonic() + 60)
    try:
        link = process.link
        link.deadline = time.monotonic() + 60
        for source in ("import pgcourse.returns", "from pgcourse import returns", "import pgcourse as pg\npg.checks"):
            error = link._answer(link.request("exec", {"source": source, "filename": "<cell>"}))["error"]
            assert "ImportError" in error and "not available while grading" in error, error
        ok = link._answer(link.request("exec", {"source": "import pgcourse as pg  # a setup cell's import",
                                                "filename": "<setup>"}))
        assert ok == {}
    finally:
        process.end()


def test_unsafe_mode_is_a_plain_process():
    runner = write_runner_package(tempfile.mkdtemp())
    argv = student_command(UNSAFE, runner, 3, Limits().to_dict(), scratch="/tmp/x")
    assert argv[0] == sys.executable and "bwrap" not in " ".join(argv)


@needs_sandbox
def test_an_interpreter_under_tmp_stays_visible(monkeypatch):
    """A venv in a clone under /tmp (as CI's may be) is bound on top of the sandbox's own /tmp, not hidden by it."""
    from pgcourse.grading import sandbox

    folder = Path(tempfile.mkdtemp(prefix="pgcourse-venv-like-", dir="/tmp"))
    (folder / "marker.txt").write_text("visible")
    real_roots = sandbox._read_only_roots
    monkeypatch.setattr(sandbox, "_read_only_roots", lambda: [*real_roots(), str(folder)])
    argv = sandbox.student_command(SANDBOX, write_runner_package(tempfile.mkdtemp()), 3, Limits().to_dict())
    argv = argv[:argv.index("--") + 1] + [sys.executable, "-I", "-c",
                                          f"print(open({str(folder / 'marker.txt')!r}).read())"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "visible", done.stderr



@needs_sandbox
def test_an_interpreter_started_through_a_dotdot_path_runs_in_the_sandbox(monkeypatch):
    """``python`` started as ``<folder>/../venv/bin/python`` (sys.executable keeps the ``..``): inside the sandbox
    ``<folder>`` does not exist, so the path could not be resolved and every student process died at start
    (224 setup errors in a run started that way, with the venv beside a clone under /tmp)."""
    from pgcourse.grading import sandbox

    folder = tempfile.mkdtemp(prefix="pgcourse-detour-", dir="/tmp")  # /tmp is the sandbox's own, empty tmpfs
    detour = os.path.join(folder, os.path.relpath(os.path.abspath(sys.executable), folder))  # folder/../../…/python
    assert ".." in detour and os.path.samefile(detour, sys.executable)
    monkeypatch.setattr(sys, "executable", detour)
    argv = sandbox.student_command(SANDBOX, write_runner_package(tempfile.mkdtemp()), 3, Limits().to_dict())
    start = argv.index("--") + 1
    done = subprocess.run(argv[:start] + [argv[start], "-I", "-c", "print('ran')"], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "ran", done.stderr
