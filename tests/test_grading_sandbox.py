"""The sandbox's parts on their own: what bubblewrap binds, the seccomp filter, the runner's import policy."""
from __future__ import annotations

import ast
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pgcourse.classroom.grading.sandbox import (SANDBOX, SANDBOX_RUNNER_FOLDER, UNSAFE, Limits, probe_sandbox,
                                                seccomp_program, student_command)

ROOT = Path(__file__).resolve().parent.parent
needs_sandbox = pytest.mark.skipif(probe_sandbox()[0] != SANDBOX, reason="no bubblewrap sandbox on this machine")


def bound_sources(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg in ("--ro-bind", "--bind")]


def test_the_sandbox_binds_no_course_file(runner_folder):
    runner = runner_folder
    argv = student_command(SANDBOX, runner, 3, Limits().to_dict(), 4) if probe_sandbox()[0] == SANDBOX else None
    if argv is None:
        pytest.skip("no bwrap")
    for source in bound_sources(argv):
        inside_course = Path(source).resolve().is_relative_to(ROOT)
        assert not inside_course or Path(source).resolve().is_relative_to(Path(sys.prefix).resolve()), source
    assert str(runner) in bound_sources(argv) and SANDBOX_RUNNER_FOLDER in argv
    assert "--clearenv" in argv and "--unshare-net" in argv and "--unshare-pid" in argv
    assert sorted(p.name for p in (runner / "sandboxside").iterdir()) == sorted(
        ["__init__.py", "wire.py", "clock.py", "link.py", "student.py", "runner.py", "episode_cases.py", "loops.py",
             "ppo_proof.py"])
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
def test_in_the_sandbox_threads_work_and_processes_do_not(runner_folder):
    runner = runner_folder
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
def test_the_runner_blocks_the_course_package_and_says_why(runner_folder):
    """The student process says hello only after its limits, its user and the import policy are in place."""
    from pgcourse.classroom.grading.worker import StudentProcess
    import time

    runner = runner_folder
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


def test_unsafe_mode_is_a_plain_process(runner_folder):
    runner = runner_folder
    argv = student_command(UNSAFE, runner, 3, Limits().to_dict(), scratch="/tmp/x")
    assert argv[0] == sys.executable and "bwrap" not in " ".join(argv)


@needs_sandbox
def test_an_interpreter_under_tmp_stays_visible(monkeypatch, runner_folder):
    """A venv in a clone under /tmp (as CI's may be) is bound on top of the sandbox's own /tmp, not hidden by it."""
    from pgcourse.classroom.grading import sandbox

    folder = Path(tempfile.mkdtemp(prefix="pgcourse-venv-like-", dir="/tmp"))
    try:
        (folder / "marker.txt").write_text("visible")
        real_roots = sandbox._read_only_roots
        monkeypatch.setattr(sandbox, "_read_only_roots", lambda: [*real_roots(), str(folder)])
        argv = sandbox.student_command(SANDBOX, runner_folder, 3, Limits().to_dict())
        argv = argv[:argv.index("--") + 1] + [sys.executable, "-I", "-c",
                                              f"print(open({str(folder / 'marker.txt')!r}).read())"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(folder)
    assert done.stdout.strip() == "visible", done.stderr



@needs_sandbox
def test_an_interpreter_started_through_a_dotdot_path_runs_in_the_sandbox(monkeypatch, runner_folder):
    """``python`` started as ``<folder>/../venv/bin/python`` (sys.executable keeps the ``..``): inside the sandbox
    ``<folder>`` does not exist, so the path could not be resolved and every student process died at start
    (224 setup errors in a run started that way, with the venv beside a clone under /tmp)."""
    from pgcourse.classroom.grading import sandbox

    folder = tempfile.mkdtemp(prefix="pgcourse-detour-", dir="/tmp")  # /tmp is the sandbox's own, empty tmpfs
    try:
        detour = os.path.join(folder, os.path.relpath(os.path.abspath(sys.executable), folder))  # folder/../…/python
        assert ".." in detour and os.path.samefile(detour, sys.executable)
        monkeypatch.setattr(sys, "executable", detour)
        argv = sandbox.student_command(SANDBOX, runner_folder, 3, Limits().to_dict())
        start = argv.index("--") + 1
        done = subprocess.run(argv[:start] + [argv[start], "-I", "-c", "print('ran')"], capture_output=True,
                              text=True, timeout=60)
    finally:
        shutil.rmtree(folder)
    assert done.stdout.strip() == "ran", done.stderr


def test_the_seccomp_program_refuses_memory_outside_the_address_space():
    """memfd_create, memfd_secret and shmget hold pages that RLIMIT_AS does not count (issue 26, item 5.1)."""
    for machine, numbers in (("x86_64", {319, 447, 29}), ("aarch64", {279, 447, 194})):
        program = seccomp_program(machine)
        instructions = [struct.unpack("HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
        for number in numbers:
            at = instructions.index((0x15, 0, 1, number))
            assert instructions[at + 1] == (0x06, 0, 0, 0x00050000 | 1)  # EPERM


@needs_sandbox
def test_in_the_sandbox_memfd_shm_and_dev_shm_are_refused(runner_folder):
    runner = runner_folder
    read, write = os.pipe()
    os.write(write, seccomp_program())
    os.close(write)
    argv = student_command(SANDBOX, runner, 3, Limits().to_dict(), read)
    script = ("import os, ctypes\ntry:\n    os.memfd_create('x'); print('memfd made')\nexcept OSError as e:\n"
              "    print('memfd', e.errno)\nlibc = ctypes.CDLL(None, use_errno=True)\n"
              "print('shmget', libc.shmget(0, 1 << 20, 0o1600), ctypes.get_errno())\n"
              "try:\n    open('/dev/shm/x', 'wb'); print('shm file made')\nexcept OSError as e:\n    print('devshm', e.errno)\n")
    argv = argv[:argv.index("--") + 1] + [sys.executable, "-I", "-c", script]
    done = subprocess.run(argv, pass_fds=[read], capture_output=True, text=True, timeout=60)
    os.close(read)
    assert done.stdout.split("\n")[:3] == ["memfd 1", "shmget -1 1", "devshm 30"], done.stdout + done.stderr  # EROFS


def test_memory_cgroup_hierarchies_are_found_from_proc():
    from pgcourse.classroom.grading import memcg

    with tempfile.TemporaryDirectory() as root:
        v1 = Path(root, "memory", "jobs", "grader")
        v1.mkdir(parents=True)
        (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")
        mounts = (f"30 25 0:26 / {root}/memory rw - cgroup cgroup rw,memory\n"
                  f"31 25 0:27 / {root}/unified rw - cgroup2 cgroup2 rw\n")
        found, _ = memcg.find_hierarchy("4:memory:/jobs/grader\n0::/\n", mounts)
        assert found == memcg.Hierarchy(memcg.V1, v1)
        v2 = Path(root, "unified", "grading")
        v2.mkdir(parents=True)
        (v2 / "cgroup.subtree_control").write_text("cpu memory pids\n")
        found, _ = memcg.find_hierarchy("0::/grading\n", mounts)
        assert found == memcg.Hierarchy(memcg.V2, v2)
        (v2 / "cgroup.subtree_control").write_text("cpu pids\n")  # memory not delegated: none
        found, why = memcg.find_hierarchy("0::/grading\n", mounts)
        assert found is None and "memory controller" in why


def test_a_memory_cgroup_bounds_memory_that_no_address_space_counts(runner_folder):
    """Without the sandbox's seccomp filter, 400 MB of memfd files (--memory 128): the cgroup's limit kills the
    process; RLIMIT_AS alone let it hold them (issue 26, item 5.1). Skipped where no cgroup can be made."""
    from pgcourse.classroom.sandboxed.link import Lost
    from pgcourse.classroom.grading.worker import StudentProcess, _usable_hierarchy
    import time

    hierarchy, detail = _usable_hierarchy()
    if hierarchy is None:
        pytest.skip(detail)
    runner = runner_folder
    config = {"isolation": UNSAFE, "limits": Limits(memory_mb=128).to_dict(), "runner_folder": str(runner),
              "memory_cgroup": hierarchy}
    hoard = "import os\nHOARD = [os.memfd_create('x') for _ in range(100)]\nfor fd in HOARD:\n    os.write(fd, bytes(4 << 20))\n"
    for source, killed in (("x = bytes(32 << 20)", False), (hoard, True)):
        process = StudentProcess(config, time.monotonic() + 60)
        cgroup = process.cgroup.path
        try:
            link = process.link
            link.deadline = time.monotonic() + 60
            try:
                answer = link._answer(link.request("exec", {"source": source, "filename": "<cell>"}))
                link.request("ping", {})
            except Lost as lost:
                answer = lost.kind
        finally:
            status = process.end(wait=1.0)
        assert (answer == "crashed" and status == -9) if killed else answer == {}, (answer, status)  # -9: SIGKILL
        assert not cgroup.exists()


def test_an_exercises_time_budget_follows_the_solutions_own_time():
    """Limits.budget: min(--timeout, max(floor, factor x the solution's seconds)); --timeout without a time."""
    limits = Limits(exercise_s=30, budget_factor=10, budget_floor_s=5)
    assert limits.budget(0.02) == 5 and limits.budget(1.2) == 12 and limits.budget(7.0) == 30
    assert limits.budget(None) == 30 and limits.budget(float("nan")) == 30
    with pytest.raises(ValueError, match="budget_factor"):
        Limits(budget_factor=0)


@pytest.mark.parametrize("option, value", [("--time-budget", "0"), ("--time-budget-floor", "-1")])
def test_a_bad_time_budget_names_its_option(option, value, tmp_path, capsys):
    from pgcourse.cli import main as cli_main

    assert cli_main(["grade", str(tmp_path), "--out", str(tmp_path / "g.csv"), option, value]) == 2
    err = capsys.readouterr().err
    assert f"{option} must be a positive number" in err and "budget_f" not in err


@needs_sandbox
def test_the_student_process_computes_on_the_graders_kernel_path(monkeypatch, runner_folder):
    """A grader run with ATEN_CPU_CAPABILITY set (CI's portable pass, or a teacher pinning a kernel path) checks the
    student's numbers against ones it computes itself, some exactly: the seeded initial weights, whose orthogonal
    init differs in its last bits between kernel paths. With the variable cleared in the sandbox, the course's own
    solution 01 failed its self-test ('the policy's weights before your first update are not those ...')."""
    from pgcourse.classroom.grading import sandbox

    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    argv = sandbox.student_command(SANDBOX, runner_folder, 3, Limits().to_dict())
    start = argv.index("--") + 1
    done = subprocess.run(argv[:start] + [argv[start], "-I", "-c",
                                          "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "DEFAULT", done.stderr
