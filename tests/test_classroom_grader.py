"""The definitions of the classroom grader's own modules, pinned in the unit lane (issue 45, item 5).

The grading tests run whole sandboxed gradings and test paths; a mutation audit found that one-line bugs in the
decisions of ``pgcourse/classroom/grading/{pool,command,term,memcg,grader}.py`` (which worker self-tests, what a
deadline is, which option a bad limit names, which cgroup file a limit goes to, which rows a merge keeps) mostly
pass them. Each test below states one decision in words and checks it on small objects built here: fake workers
without processes (a worker here is a few lists and a clock), fake courses, files in ``tmp_path``. Nothing starts a
process, a sandbox or a worker pool; nothing sleeps.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace

import pytest

from pgcourse.classroom.grading import command, grader, memcg, pool, term
from pgcourse.classroom.grading.assignment import Assignment, LatePolicy
from pgcourse.classroom.grading.course import Chapter, Course, Exercise, GradingError
from pgcourse.classroom.grading.gradebook import ExerciseResult, GradeReport, StudentResult, Submission
from pgcourse.classroom.grading.identity import Identity
from pgcourse.classroom.grading.sandbox import SANDBOX, UNSAFE, Limits
from pgcourse.classroom.notebook_format import Cell
from pgcourse.classroom.sandboxed.clock import wall_backstop


# --------------------------------------------------------------------------------------------------
# Small objects
# --------------------------------------------------------------------------------------------------

def cell(index: int, source: str, grade_id: str | None = None, cell_type: str = "code") -> Cell:
    return Cell(index, cell_type, source, {"nbgrader": {"grade_id": grade_id}} if grade_id else {})


def exercise(eid: str, points: float = 1.0, kind: str = "auto", answer_ids: tuple[str, ...] = ("a1",),
             check_source: str = "assert True") -> Exercise:
    return Exercise(id=eid, check_grade_id=f"{eid}_check", points=points, check_source=check_source,
                    answer_ids=answer_ids, kind=kind)


def chapter_of(*exercises: Exercise, name: str = "01", reference: dict | None = None, stubs: dict | None = None,
               answer_order: list[str] | None = None, path: Path = Path("course/01.ipynb")) -> Chapter:
    order = answer_order if answer_order is not None else sorted({a for e in exercises for a in e.answer_ids})
    return Chapter(name=name, path=path, context=[], exercises=list(exercises), answer_order=order,
                   grade_ids=frozenset(order) | {e.check_grade_id for e in exercises}, reference=reference,
                   stubs=stubs if stubs is not None else {a: ["pass"] for a in order})


def two_auto_one_manual(reference: dict | None = None) -> Chapter:
    """Exercises e1 and e2 (auto, answer cells a1 and a2) and e3 (manual, free text)."""
    return chapter_of(exercise("e1", 2.0, answer_ids=("a1",)), exercise("e2", 3.0, answer_ids=("a2",)),
                      exercise("e3", 1.0, kind="manual", answer_ids=("e3",)),
                      reference=reference, answer_order=["a1", "a2"], stubs={"a1": ["x = 0"], "a2": ["y = 0"]})


def passed(*ids: str, points: float = 1.0) -> dict:
    return {i: {"points": points, "status": "passed", "feedback": ""} for i in ids}


def student_row(student: str, **points: float) -> StudentResult:
    return StudentResult(student, f"{student}.ipynb", "sha", {k: ExerciseResult(v, 5.0, "passed", "")
                                                              for k, v in points.items()})


# ==================================================================================================
# pool.py
# ==================================================================================================

@pytest.mark.parametrize("load, cores, text", [((9.64, 1.0, 1.0), 2, "load average 9.6 on 2 cores"),
                                               ((0.04, 7.0, 7.0), 16, "load average 0.0 on 16 cores"),
                                               ((1.25, 3.0, 5.0), None, "load average 1.2 on 1 cores"),
                                               ((2.96, 0.0, 0.0), 1, "load average 3.0 on 1 cores")])
def test_the_machine_load_is_the_one_minute_average_to_a_tenth_and_the_cores(monkeypatch, load, cores, text):
    """``machine_load`` says the one-minute load average (the first of the three), to one decimal, and the number of
    cores (1 when the system does not tell)."""
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    monkeypatch.setattr(os, "getloadavg", lambda: load)
    assert pool.machine_load() == text


def test_without_a_load_average_the_machine_load_is_the_cores(monkeypatch):
    """Where the system has no load average, the machine load is only the number of cores."""
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    monkeypatch.delattr(os, "getloadavg")
    assert pool.machine_load() == "3 cores"


REPO_ROOT = str(Path(__file__).resolve().parents[1])


@pytest.mark.parametrize("before, after", [(None, REPO_ROOT), ("", REPO_ROOT), ("/x", REPO_ROOT + os.pathsep + "/x"),
                                           ("/x:/y", REPO_ROOT + os.pathsep + "/x:/y")])
def test_a_worker_imports_this_package_first_and_keeps_the_pythonpath_after_it(monkeypatch, before, after):
    """A worker's PYTHONPATH starts with the folder holding this ``pgcourse`` (the checkout), then the grader's own
    PYTHONPATH when it has a non-empty one; nothing more."""
    assert (Path(REPO_ROOT) / "pgcourse" / "__init__.py").is_file()
    if before is None:
        monkeypatch.delenv("PYTHONPATH", raising=False)
    else:
        monkeypatch.setenv("PYTHONPATH", before)
    assert pool._worker_env()["PYTHONPATH"] == after


def test_a_workers_environment_is_the_graders_with_one_thread_and_no_display(monkeypatch):
    """A worker gets the grader's environment, with one thread per math library, a fixed hash seed, no display, no
    bytecode files and unbuffered output (the grader's own values of these replaced)."""
    monkeypatch.setenv("PGCOURSE_TEST_MARK", "kept")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    monkeypatch.setenv("PYTHONHASHSEED", "random")
    env = pool._worker_env()
    assert env["PGCOURSE_TEST_MARK"] == "kept"
    assert {k: env[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHONHASHSEED",
                                "SDL_VIDEODRIVER", "MPLBACKEND", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")} == {
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
        "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
    assert os.environ["OMP_NUM_THREADS"] == "8"  # the grader's own environment is not changed


class RecordingPopen:
    """subprocess.Popen without a process: records its arguments and keeps the worker's end of the socket pair."""

    def __init__(self, argv, **kwargs):
        self.argv, self.kwargs, self.pid = argv, kwargs, 424242
        self.peer = socket.socket(fileno=os.dup(kwargs["pass_fds"][0]))


def test_a_worker_is_started_in_a_session_of_its_own_and_greeted_with_the_isolation(monkeypatch, tmp_path):
    """A worker handle starts ``python -c 'from pgcourse.classroom.grading.worker import worker_main;
    worker_main(FD)'`` with the socket's file descriptor passed, no stdin or stdout, stderr to a log, the worker
    environment, the given folder, in a new session; it sends ``hello`` with the isolation asked for and the runner
    folder it made for the worker (an empty temp folder, removed when the worker is killed), and starts not ready,
    cold and idle."""
    monkeypatch.setattr(pool.subprocess, "Popen", RecordingPopen)
    handle = pool._WorkerHandle("auto", tmp_path)
    try:
        proc = handle.proc
        fd = proc.kwargs["pass_fds"][0]
        assert proc.argv == [sys.executable, "-c", f"from pgcourse.classroom.grading.worker import worker_main; "
                                                   f"worker_main({fd})"]
        assert proc.kwargs["stdin"] == pool.subprocess.DEVNULL and proc.kwargs["stdout"] == pool.subprocess.DEVNULL
        assert proc.kwargs["stderr"] is handle.log and proc.kwargs["cwd"] == tmp_path
        assert proc.kwargs["start_new_session"] is True and proc.kwargs["env"]["OMP_NUM_THREADS"] == "1"
        worker_side = Connection(proc.peer.detach())
        assert worker_side.poll(5) and worker_side.recv() == {"op": "hello", "isolation": "auto",
                                                              "runner_folder": handle.runner_folder}
        runner = Path(handle.runner_folder)
        assert runner.name.startswith("pgcourse-runner-") and runner.parent == Path(tempfile.gettempdir())
        assert list(runner.iterdir()) == []
        worker_side.close()
        assert (handle.ready, handle.isolation, handle.detail, handle.warm, handle.task, handle.deadline) == \
            (False, "", "", set(), None, None)
    finally:
        handle.conn.close()
        handle.log.close()
        shutil.rmtree(handle.runner_folder)


def test_a_worker_that_cannot_be_started_leaves_no_runner_folder(monkeypatch, tmp_path):
    """Popen fails (here: the folder to start in does not exist): the error is the caller's to see, and the runner
    folder made for the worker is removed with it."""
    monkeypatch.setattr(pool.tempfile, "tempdir", str(tmp_path))
    with pytest.raises(FileNotFoundError):
        pool._WorkerHandle("auto", tmp_path / "missing")
    assert list(tmp_path.iterdir()) == []


def bare_handle(log_bytes: bytes = b"") -> pool._WorkerHandle:
    handle = object.__new__(pool._WorkerHandle)
    handle.log = tempfile.TemporaryFile()
    handle.log.write(log_bytes)
    return handle


def test_a_workers_log_tail_is_its_last_2000_characters_decoded_leniently():
    """``log_tail`` reads the worker's whole stderr log from the start and returns its last 2000 characters, an
    undecodable byte replaced, not an error."""
    handle = bare_handle(b"A" * 10 + b"\xff" + b"B" * 1999)
    try:
        assert handle.log_tail() == "\ufffd" + "B" * 1999
    finally:
        handle.log.close()
    short = bare_handle(b"only line\n")
    assert short.log_tail() == "only line\n"
    short.log.close()
    assert short.log_tail() == ""  # a closed log: nothing, not an error


class FakeProc:
    def __init__(self, pid: int = 31337):
        self.pid, self.waits = pid, []

    def wait(self, timeout=None):
        self.waits.append(timeout)


class FakeWireConn:
    def __init__(self, fail: bool = False):
        self.sent, self.closed, self.fail = [], False, fail

    def send(self, message):
        if self.fail:
            raise BrokenPipeError
        self.sent.append(message)

    def close(self):
        self.closed = True


@pytest.mark.parametrize("gone", [None, ProcessLookupError, PermissionError])
def test_killing_a_worker_kills_its_process_group_then_waits_then_closes(monkeypatch, gone):
    """``kill`` sends SIGKILL to the worker's process group (its session), waits up to 10 s for it, closes the
    connection and the log, and removes the worker's runner folder (a killed worker cannot); a process already gone
    (or not ours) is not an error."""
    killed = []

    def killpg(pid, sig):
        killed.append((pid, sig))
        if gone is not None:
            raise gone
    monkeypatch.setattr(os, "killpg", killpg)
    handle = bare_handle()
    handle.proc, handle.conn = FakeProc(), FakeWireConn()
    handle.runner_folder = tempfile.mkdtemp(prefix="pgcourse-runner-")
    handle.kill()
    assert killed == [(31337, signal.SIGKILL)] and handle.proc.waits == [10]
    assert handle.conn.closed and handle.log.closed and not os.path.exists(handle.runner_folder)


@pytest.mark.parametrize("send_fails", [False, True])
def test_stopping_a_worker_asks_it_to_stop_waits_5_s_then_kills_it(monkeypatch, send_fails):
    """``stop`` sends ``{"op": "stop"}`` (a broken connection is no error), waits up to 5 s, then kills the worker
    (which waits up to 10 s more)."""
    killed = []
    monkeypatch.setattr(os, "killpg", lambda pid, sig: killed.append((pid, sig)))
    handle = bare_handle()
    handle.proc, handle.conn = FakeProc(), FakeWireConn(fail=send_fails)
    handle.runner_folder = tempfile.mkdtemp(prefix="pgcourse-runner-")
    handle.stop()
    assert handle.conn.sent == ([] if send_fails else [{"op": "stop"}])
    assert handle.proc.waits == [5, 10] and killed == [(31337, signal.SIGKILL)]


# -- the pool's arguments --------------------------------------------------------------------------

@pytest.mark.parametrize("isolation", ["auto", SANDBOX, UNSAFE])
def test_the_pool_takes_auto_sandbox_or_unsafe(isolation):
    """A pool's isolation is one of ``auto``, the sandbox, or unsafe-no-sandbox; it starts with no worker, no mode,
    no hunt key, no reference times and no self-test counted."""
    made = pool.Grader(jobs=1, isolation=isolation)
    assert made.isolation == isolation
    assert (made.workers, made.mode, made.detail, made.hunt_key, made.reference_s, made.selftests) == \
        ([], "", "", None, {}, {})
    assert pool.Grader.START_TIMEOUT == 180.0


@pytest.mark.parametrize("isolation", ["AUTO", "", "sandbox ", "none", "unsafe"])
def test_any_other_isolation_is_refused_naming_the_choices(isolation):
    """Any other isolation (another case, a space, an abbreviation) is a GradingError that lists the choices."""
    with pytest.raises(GradingError, match=f"isolation must be auto, {SANDBOX} or {UNSAFE}"):
        pool.Grader(jobs=1, isolation=isolation)


@pytest.mark.parametrize("jobs, cores, expected", [(None, 16, 8), (None, 8, 8), (None, 3, 3), (None, None, 1),
                                                   (0, 4, 4), (-3, 4, 1), (1, 4, 1), (12, 4, 12), (2.7, 4, 2)])
def test_the_pool_has_one_worker_per_core_up_to_8_unless_told(monkeypatch, jobs, cores, expected):
    """Workers: the number given (any positive number, beyond the cores too, rounded down), else one per core and
    at most 8 (one when the system does not tell); never fewer than 1 (0 is "not given")."""
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert pool.Grader(jobs=jobs).jobs == expected


@pytest.mark.parametrize("cwd, expected", [(None, None), ("", None), ("course", Path("course"))])
def test_the_pools_folder_is_a_path_or_none(cwd, expected):
    """The folder the workers start in: the one given, as a Path; none (the grader's own) when not given or empty."""
    assert pool.Grader(jobs=1, cwd=cwd).cwd == expected


def test_grading_needs_fork_and_not_windows(monkeypatch):
    """Grading forks sandboxed student processes: on Windows, or without ``os.fork``, the pool refuses to start."""
    monkeypatch.setattr(pool.sys, "platform", "win32")
    with pytest.raises(GradingError, match="needs Linux or macOS"):
        pool.Grader(jobs=1)
    monkeypatch.setattr(pool.sys, "platform", "linux")
    monkeypatch.delattr(os, "fork")
    with pytest.raises(GradingError, match="needs Linux or macOS"):
        pool.Grader(jobs=1)


# -- the pool's scheduling, with workers that are not processes -------------------------------------

class FakeConn:
    """A worker's connection: what the pool sent, and the replies due at a later wait (``tick``)."""

    def __init__(self, world, worker):
        self.world, self.worker, self.inbox, self.sent, self.dead = world, worker, [], [], False

    def due(self) -> bool:
        return self.dead or any(at <= self.world.tick for at, _ in self.inbox)

    def send(self, message):
        self.sent.append(message)
        if message.get("op") == "grade":
            reply = self.world.respond(message, self.worker)
            if reply is not None:
                delay, reply = reply if isinstance(reply, tuple) else (1, reply)
                self.inbox.append((self.world.tick + delay, reply))

    def recv(self):
        for item in self.inbox:
            if item[0] <= self.world.tick:
                self.inbox.remove(item)
                return item[1]
        raise EOFError

    def close(self):
        pass


class FakeWorld:
    """Workers without processes, a clock that moves only when a wait times out, and ``wait`` on the fake conns."""

    def __init__(self, monkeypatch, respond=None, ready_at=None, log="starting\nImportError: no torch\n"):
        self.tick, self.now, self.waits, self.made = 0, 1000.0, [], []
        self.respond = respond or (lambda task, worker: {"op": "result", "key": task["key"],
                                                         "exercises": passed("e1", "e2"), "seconds": {"e1": 0.25}})
        self.ready_at, self.log = ready_at or (lambda number: 1), log
        monkeypatch.setattr(pool, "_WorkerHandle", self.handle)
        monkeypatch.setattr(pool, "wait", self.wait)
        monkeypatch.setattr(pool, "time", SimpleNamespace(monotonic=lambda: self.now))

    def handle(self, isolation, cwd):
        world = self
        worker = SimpleNamespace(number=len(self.made), asked=(isolation, cwd), ready=False, isolation="",
                                 detail="", warm=set(), task=None, deadline=None, started=self.now, killed=False,
                                 stopped=False, log_tail=lambda: world.log)
        worker.conn = FakeConn(self, worker)
        worker.kill = lambda: setattr(worker, "killed", True)
        worker.stop = lambda: setattr(worker, "stopped", True)
        at = self.ready_at(worker.number)
        if at is not None:
            worker.conn.inbox.append((at, {"op": "ready", "isolation": "sandbox", "detail": f"bwrap {worker.number}"}))
        self.made.append(worker)
        return worker

    def wait(self, conns, timeout):
        self.tick += 1
        assert self.tick < 60, "the pool never finished"
        self.waits.append(timeout)
        ready = [c for c in conns if c.due()]
        if not ready and not any(c.inbox for c in conns):
            self.now += timeout if timeout > 0 else 0.5  # the whole wait passed
        return ready

    def tasks(self):
        return [(w.number, m["key"]) for w in self.made for m in w.conn.sent if m.get("op") == "grade"]


def submissions(n: int) -> list[tuple[str, dict]]:
    return [(f"s{i}", {"a1": [f"x = {i}"], "a2": ["y = 1"]}) for i in range(n)]


@pytest.mark.parametrize("n, jobs, selftests", [(1, 2, 1), (2, 2, 2), (3, 2, 2), (1, 1, 1), (5, 3, 3), (0, 2, 0)])
def test_a_cold_worker_self_tests_only_for_work_no_warming_worker_will_take(monkeypatch, n, jobs, selftests):
    """Before its first submission of a chapter a worker runs the chapter's solution (the self-test); a worker
    self-tests only while more submissions wait than workers are already self-testing: one submission and two
    workers is one self-test. Every submission is graded; no submissions, no self-test."""
    world = FakeWorld(monkeypatch)
    chapter = two_auto_one_manual(reference={"a1": ["x = 1"], "a2": ["y = 1"]})
    grading = pool.Grader(jobs=jobs)
    results = grading.grade(chapter, submissions(n), Limits())
    key = chapter.spec()["key"]
    assert grading.selftests.get(key, 0) == selftests
    assert sum(1 for _, k in world.tasks() if k == "\0selftest") == selftests
    assert results == {f"s{i}": passed("e1", "e2") for i in range(n)}
    assert len(world.made) == jobs  # all started, none replaced


def test_a_worker_that_comes_up_late_does_not_self_test_for_the_work_one_warming_worker_takes(monkeypatch):
    """Self-tests under way count: a second worker that says ready while the first still self-tests for the one
    submission left does not start a second self-test."""
    world = FakeWorld(monkeypatch, ready_at=lambda number: 1 + number)
    world.respond = lambda task, worker: (2, {"op": "result", "key": task["key"], "exercises": passed("e1", "e2")})
    grading = pool.Grader(jobs=2)
    grading.grade(two_auto_one_manual(), submissions(1), Limits())
    assert world.tasks() == [(0, "\0selftest"), (0, "s0")]
    assert sum(grading.selftests.values()) == 1


def test_a_warm_worker_takes_the_work_before_a_cold_one_self_tests(monkeypatch):
    """Workers warm for the chapter are served first: with one submission, a warm worker listed after a cold one
    takes it, and the cold one runs no self-test."""
    world = FakeWorld(monkeypatch)
    chapter = two_auto_one_manual()
    key = chapter.spec()["key"]
    grading = pool.Grader(jobs=2)
    grading.workers = [world.handle("auto", None), world.handle("auto", None)]
    for worker in grading.workers:
        worker.conn.inbox.clear()
        worker.ready = True
    grading.workers[1].warm.add(key)
    grading.grade(chapter, submissions(1), Limits())
    assert world.tasks() == [(1, "s0")] and grading.selftests == {}


def test_a_worker_stays_warm_for_the_next_grading_of_the_chapter(monkeypatch):
    """A self-tested worker is warm for that chapter: grading the same chapter again with the same pool runs no
    new self-test."""
    world = FakeWorld(monkeypatch)
    chapter = two_auto_one_manual()
    grading = pool.Grader(jobs=1)
    grading.grade(chapter, submissions(1), Limits())
    grading.grade(chapter, [("late", {})], Limits())
    assert [k for _, k in world.tasks()] == ["\0selftest", "s0", "late"]
    assert grading.selftests == {chapter.spec()["key"]: 1}


def test_the_tasks_sent_carry_the_course_the_answers_the_limits_and_the_hunt_key(monkeypatch):
    """A self-test task grades the solution (the stubs when the course has none) with the plain limits; a student's
    task grades their answers with the limits plus each exercise's budget and reference seconds, and the pool's
    hunt key. The workers' isolation mode and detail become the pool's."""
    world = FakeWorld(monkeypatch)
    limits = Limits(exercise_s=30.0, budget_factor=10.0, budget_floor_s=5.0)
    for reference in ({"a1": ["x = 1"], "a2": ["y = 1"]}, None):
        chapter = two_auto_one_manual(reference=reference)
        grading = pool.Grader(jobs=1)
        grading.hunt_key = "/keys/k.json"
        answers = {"a1": ["x = 9"]}
        grading.grade(chapter, [("ann", answers)], limits)
        selftest, student = [m for m in world.made[-1].conn.sent if m["op"] == "grade"]
        spec = chapter.spec()
        assert selftest == {"op": "grade", "key": "\0selftest", "course": spec,
                            "answers": reference if reference is not None else chapter.stubs,
                            "limits": limits.to_dict()}
        expected_budgets = {"e1": 5.0, "e2": 30.0} if reference else {"e1": 30.0, "e2": 30.0}
        assert student == {"op": "grade", "key": "ann", "course": spec, "answers": answers,
                           "limits": {**limits.to_dict(), "budgets": expected_budgets,
                                      "reference_s": {"e1": 0.25} if reference else {}},
                           "hunt_key": "/keys/k.json"}
        assert (grading.mode, grading.detail) == ("sandbox", f"bwrap {world.made[-1].number}")


def test_the_reference_seconds_are_the_slowest_self_test_of_each_exercise(monkeypatch):
    """Each exercise's reference time is the largest any worker's self-test measured (a number, from text too);
    self-tests of a course without a solution (stubs) time nothing."""
    seconds = {0: {"e1": 0.5, "e2": "0.125"}, 1: {"e1": 0.7}, 2: None}

    def respond(task, worker):
        return {"op": "result", "key": task["key"], "exercises": passed("e1", "e2"),
                "seconds": seconds[worker.number] if task["key"] == "\0selftest" else {}}
    for reference, expected in (({"a1": ["x = 1"], "a2": ["y = 1"]}, {"e1": 0.7, "e2": 0.125}), (None, None)):
        world = FakeWorld(monkeypatch, respond=respond)
        grading = pool.Grader(jobs=3)
        chapter = two_auto_one_manual(reference=reference)
        grading.grade(chapter, submissions(3), Limits())
        assert grading.reference_s.get(chapter.spec()["key"]) == expected
        assert len(world.made) == 3


def test_the_budgets_of_a_task_are_the_limits_budget_of_the_reference_seconds():
    """A task's budget per auto exercise is Limits.budget of the self-test's seconds (the timeout without one); the
    reference seconds are rounded to the millisecond and given only where known; manual exercises have none."""
    grading = pool.Grader(jobs=1)
    grading.reference_s = {"k": {"e1": 0.123456, "e2": 2.0}, "other": {"e1": 9.0}}
    limits = Limits(exercise_s=30.0, budget_factor=10.0, budget_floor_s=5.0)
    chapter = two_auto_one_manual()
    got = grading._with_budgets("k", chapter, limits, {"base": 1})
    assert got == {"base": 1, "budgets": {"e1": 5.0, "e2": 20.0}, "reference_s": {"e1": 0.123, "e2": 2.0}}
    got = grading._with_budgets("unknown", chapter, Limits(exercise_s=7.0), {})
    assert got == {"budgets": {"e1": 7.0, "e2": 7.0}, "reference_s": {}}
    grading.reference_s = {"k": {"e1": 4.0}}
    assert grading._with_budgets("k", chapter, limits, {})["budgets"]["e1"] == 30.0  # 40 s capped at the timeout


def test_results_are_reported_as_they_come_and_self_tests_are_not(monkeypatch):
    """``on_result`` is called once per submission with its exercises; a self-test is never reported."""
    FakeWorld(monkeypatch)
    seen = []
    pool.Grader(jobs=2).grade(two_auto_one_manual(), submissions(3), Limits(),
                              on_result=lambda key, exercises: seen.append((key, exercises)))
    assert sorted(seen, key=lambda kv: kv[0]) == [(f"s{i}", passed("e1", "e2")) for i in range(3)]


def crashed(reason: str) -> dict:
    return {e: {"points": 0, "status": "crashed", "feedback": f"not graded: {reason} while grading this submission"}
            for e in ("e1", "e2")}


@pytest.mark.parametrize("reply, reason", [
    ({"op": "result", "key": "someone else", "exercises": {}}, "the grading worker answered out of turn"),
    ({"op": "result", "exercises": {}}, "the grading worker answered out of turn"),
    ({"op": "crash", "error": "x" * 100 + "y" * 500}, "the grading worker failed: " + "y" * 500),
    ({"op": "crash"}, "the grading worker failed: "),
    ("die", "the grading worker died"),
], ids=["other-key", "no-key", "crash", "crash-no-error", "died"])
def test_a_worker_that_fails_on_a_submission_costs_that_submission_and_is_replaced(monkeypatch, reply, reason):
    """A worker that answers for another submission, crashes (the last 500 characters of its error said) or dies
    gives that submission's auto exercises 0, status crashed, and the reason; the worker is killed and replaced;
    the other submissions are graded."""
    def respond(task, worker):
        if task["key"] != "s1":
            return {"op": "result", "key": task["key"], "exercises": passed("e1", "e2")}
        if reply == "die":
            worker.conn.dead = True
            return None
        return reply
    world = FakeWorld(monkeypatch, respond=respond)
    seen = []
    results = pool.Grader(jobs=1).grade(two_auto_one_manual(), submissions(3), Limits(),
                                        on_result=lambda key, exercises: seen.append(key))
    assert results.pop("s1") == crashed(reason) and seen == ["s0", "s1", "s2"]  # out of turn too (it once lost s1)
    assert results == {"s0": passed("e1", "e2"), "s2": passed("e1", "e2")}
    assert [w.killed for w in world.made] == [True, False] and len(world.made) == 2


def test_a_worker_reporting_a_grading_failure_gives_each_auto_exercise_an_error_with_its_last_line(monkeypatch):
    """``failure`` (the worker's own grading failed) gives every auto exercise 0, status error, and the last line of
    the error (its first 500 characters): not caused by the answer. The worker is kept."""
    long_line = "Z" * 600

    def respond(task, worker):
        if task["key"] == "\0selftest":
            return {"op": "result", "key": task["key"], "exercises": passed("e1", "e2")}
        error = "Traceback:\n  File x\nValueError: bad  \n\n" if task["key"] == "s0" else f"first\n{long_line}"
        return {"op": "failure", "key": task["key"], "error": error}
    world = FakeWorld(monkeypatch, respond=respond)
    results = pool.Grader(jobs=1).grade(two_auto_one_manual(), submissions(2), Limits())
    for key, last in (("s0", "ValueError: bad"), ("s1", "Z" * 500)):
        assert results[key] == {e: {"points": 0, "status": "error",
                                    "feedback": f"grading failed (not caused by this answer): {last}"}
                                for e in ("e1", "e2")}
    assert len(world.made) == 1 and not world.made[0].killed


def test_a_worker_is_given_up_on_only_after_its_deadline_has_passed(monkeypatch):
    """A submission's deadline is the wall backstop of the submission's seconds of work after it was sent; the pool
    waits until then, and only a worker still silent after it (not at it) is replaced, its submission crashed."""
    world = FakeWorld(monkeypatch, respond=lambda task, worker: (
        {"op": "result", "key": task["key"], "exercises": passed("e1", "e2")} if task["key"] == "\0selftest" else None))
    limits = Limits(submission_s=40.0)
    results = pool.Grader(jobs=1).grade(two_auto_one_manual(), submissions(1), limits)
    assert results == {"s0": crashed("the grading worker stopped responding")}
    hard = wall_backstop(40.0)
    assert world.waits == [pool.Grader.START_TIMEOUT, hard, hard, 0.0]  # ready, self-test, the deadline, just after
    assert world.made[0].killed and len(world.made) == 2


def test_a_worker_that_never_says_ready_stops_the_grading_after_the_start_timeout(monkeypatch):
    """A worker has START_TIMEOUT seconds from its start to say ready; one that has not said it after that (not at
    it) stops the grading with a GradingError naming the reason and the last line of the worker's log."""
    world = FakeWorld(monkeypatch, ready_at=lambda number: None)
    grading = pool.Grader(jobs=1)
    with pytest.raises(GradingError) as error:
        grading.grade(two_auto_one_manual(), submissions(1), Limits())
    assert str(error.value) == "a grading worker did not start: the grading worker stopped responding " \
                               "(ImportError: no torch)"
    assert world.waits == [180.0, 0.0] and grading.workers == [] and world.made[0].stopped


@pytest.mark.parametrize("log, said", [("", ""), ("\n  \n", ""), ("a\nlast words  \n", " (last words)")])
def test_a_worker_that_crashes_before_ready_stops_the_grading_with_its_logs_last_line(monkeypatch, log, said):
    """A worker that crashes before it is ready stops the grading: a GradingError with the crash and the last line of
    its log, when it has one; the pool is closed."""
    world = FakeWorld(monkeypatch, ready_at=lambda number: None, log=log)
    grading = pool.Grader(jobs=1)
    grading.start()
    world.made[0].conn.inbox.append((1, {"op": "crash", "error": "boom"}))
    with pytest.raises(GradingError) as error:
        grading.grade(two_auto_one_manual(), submissions(1), Limits())
    assert str(error.value) == f"a grading worker did not start: the grading worker failed: boom{said}"
    assert grading.workers == []


@pytest.mark.parametrize("how, reason", [("crash", "the grading worker failed: boom"),
                                         ("die", "the grading worker died")])
def test_a_self_test_a_worker_could_not_run_stops_the_grading(monkeypatch, how, reason):
    """A worker that crashes or dies during the self-test stops the grading with a GradingError naming the chapter
    and the reason: the course's solution could not be checked. The pool is closed."""
    def respond(task, worker):
        if how == "die":
            worker.conn.dead = True
            return None
        return {"op": "crash", "error": "boom"}
    FakeWorld(monkeypatch, respond=respond)
    grading = pool.Grader(jobs=1)
    with pytest.raises(GradingError) as error:
        grading.grade(two_auto_one_manual(), submissions(1), Limits())
    assert str(error.value) == f"the self-test of 01 could not run: {reason}"
    assert grading.workers == []


def test_an_unasked_answer_of_an_idle_worker_replaces_it_and_costs_no_one(monkeypatch):
    """A message from a worker with no task is out of turn: the worker is replaced, and no submission is charged."""
    world = FakeWorld(monkeypatch)
    grading = pool.Grader(jobs=1)
    worker = world.handle("auto", None)
    worker.ready = True
    grading.workers = [worker]
    worker.conn.inbox.append((0, {"op": "result", "key": "x", "exercises": {}}))
    results: dict = {}
    grading._receive(worker, two_auto_one_manual(), {"key": "k"}, results, None)
    assert results == {} and worker.killed and grading.workers == [world.made[-1]] and world.made[-1] is not worker


def test_pool_start_close_kill_and_replace(monkeypatch):
    """``start`` fills the pool up to ``jobs`` workers (again after a loss, never more); ``close`` stops each worker
    (waiting), ``kill`` kills each (not waiting), both leave none; ``_replace`` kills a worker and puts a fresh one
    in its place; a ``with`` block starts and closes the pool."""
    world = FakeWorld(monkeypatch)
    grading = pool.Grader(jobs=3, isolation=UNSAFE, cwd="here")
    grading.start()
    grading.start()
    assert len(grading.workers) == 3 and all(w.asked == (UNSAFE, Path("here")) for w in grading.workers)
    old = grading.workers[1]
    fresh = grading._replace(old)
    assert old.killed and grading.workers[1] is fresh and fresh not in world.made[:3]
    first = list(grading.workers)
    grading.close()
    assert grading.workers == [] and all(w.stopped and not w.killed for w in first)
    grading.start()
    second = list(grading.workers)
    grading.kill()
    assert grading.workers == [] and all(w.killed and not w.stopped for w in second)
    with pool.Grader(jobs=2) as inside:
        assert len(inside.workers) == 2
        held = list(inside.workers)
    assert inside.workers == [] and all(w.stopped for w in held)


# -- the self-test's verdict --------------------------------------------------------------------------

def verdict(chapter: Chapter, exercises: dict) -> str | None:
    grading = pool.Grader(jobs=1)
    stopped = SimpleNamespace(stop=lambda: stopped.__dict__.setdefault("done", True))
    grading.workers = [stopped]
    try:
        grading._check_selftest(chapter, exercises)
    except GradingError as error:
        assert grading.workers == [] and stopped.done  # the pool is closed before the error
        return str(error)
    assert grading.workers == [stopped]
    return None


def test_a_self_test_that_passes_everything_lets_grading_go_on():
    """The solution's self-test must pass every auto exercise; then grading goes on (the pool stays open)."""
    chapter = two_auto_one_manual(reference={"a1": ["x = 1"]})
    assert verdict(chapter, passed("e1", "e2")) is None


def test_without_a_solution_the_self_test_judges_nothing():
    """A course without a solutions notebook self-tests its stubs, which fail: that verdict is not judged."""
    assert verdict(two_auto_one_manual(reference=None), {e: {"status": "failed", "feedback": "x"}
                                                         for e in ("e1", "e2")}) is None


def test_a_failing_self_test_names_each_exercise_its_status_and_its_first_six_lines():
    """A self-test that fails an exercise stops grading: the course's solution does not pass; each failing exercise
    is named with its status and its feedback's first six lines joined by " / " (at most 900 characters)."""
    chapter = two_auto_one_manual(reference={"a1": ["x = 1"]})
    lines = "\n".join(f"line {i}" for i in range(1, 9))
    message = verdict(chapter, {"e1": {"status": "failed", "feedback": f"  {lines}\n"},
                                "e2": {"status": "error", "feedback": ""}})
    assert message == (f"self-test failed: the course's own solution {chapter.path} does not pass its checks in the "
                       "grader (e1: failed: line 1 / line 2 / line 3 / line 4 / line 5 / line 6; e2: error: ); fix the "
                       "course before grading")
    long = verdict(chapter, {"e1": {"status": "failed", "feedback": "w" * 2000}, "e2": passed("e2")["e2"]})
    assert "(e1: failed: " + "w" * 900 + ")" in long


def test_a_self_test_that_only_ran_out_of_time_blames_the_machine(monkeypatch):
    """When every failing exercise of the self-test timed out, the solution passed all it had time for: the error
    says the machine is slow or busy (its load), not that the course is broken; one other failure makes it a
    failed self-test."""
    monkeypatch.setattr(pool, "machine_load", lambda: "load average 9.9 on 2 cores")
    chapter = two_auto_one_manual(reference={"a1": ["x = 1"]})
    out = {"status": "timeout", "feedback": "over 30 s"}
    message = verdict(chapter, {"e1": out, "e2": out})
    assert message == (f"self-test ran out of time: the course's own solution {chapter.path} did not finish e1, e2 "
                       "within the time limit (e1: timeout: over 30 s; e2: timeout: over 30 s). This machine is slow "
                       "or busy now (load average 9.9 on 2 cores), not the course broken: grade when it is quieter, "
                       "with fewer --jobs, or with a larger --timeout")
    assert verdict(chapter, {"e1": out, "e2": passed("e2")["e2"]}).startswith("self-test ran out of time")
    assert verdict(chapter, {"e1": out, "e2": {"status": "failed", "feedback": ""}}).startswith("self-test failed")


# ==================================================================================================
# command.py
# ==================================================================================================

def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_command_lines_defaults_are_the_limits_defaults_and_nothing_else_set():
    """With no options: the limits are Limits' defaults (30 s per exercise, 300 s per submission, 2048 MB, budget
    factor 10, floor 5 s), --count 30, Markdown feedback, and every other option unset (partial credit and hidden
    values None: not said, so an update keeps the gradebook's)."""
    args = parse()
    assert (args.timeout, args.submission_timeout, args.memory, args.time_budget, args.time_budget_floor) == \
        (30.0, 300.0, 2048, 10.0, 5.0)
    assert (args.count, args.feedback_format, args.submissions, args.jobs, args.out, args.json) == \
        (30, "md", [], None, None, None)
    assert (args.partial_credit, args.hide_expected) == (None, None)
    assert not any((args.update, args.overwrite, args.quiet, args.bench, args.similarity, args.unsafe_no_sandbox))
    assert (args.student, args.export, args.gradebook, args.roster, args.hunt_key, args.deadline) == (None,) * 6


def test_the_command_lines_options_have_their_types_and_choices():
    """--jobs, --memory and --count are integers, the times are numbers; --student repeats; --feedback-format is md
    or html and --export canvas or moodle; the flags set True."""
    args = parse("a.ipynb", "b", "--jobs", "3", "--memory", "100", "--timeout", "2.5", "--submission-timeout", "9",
                 "--time-budget", "1.5", "--time-budget-floor", "0.5", "--student", "x", "--student", "y",
                 "--feedback-format", "html", "--export", "moodle", "--partial-credit", "--hide-expected",
                 "--count", "4")
    assert (args.submissions, args.jobs, args.memory, args.timeout, args.submission_timeout) == \
        (["a.ipynb", "b"], 3, 100, 2.5, 9.0)
    assert (args.time_budget, args.time_budget_floor, args.student, args.feedback_format, args.export) == \
        (1.5, 0.5, ["x", "y"], "html", "moodle")
    assert (args.partial_credit, args.hide_expected, args.count) == (True, True, 4)
    for bad in (["--memory", "1.5"], ["--jobs", "two"], ["--feedback-format", "pdf"], ["--export", "Canvas"],
                ["--count", "3.0"]):
        with pytest.raises(SystemExit):
            parse(*bad)


def test_the_help_states_each_limits_default():
    """The help of each limit option states its default, as Limits has it (``:g``: 30, not 30.0)."""
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    text = " ".join(parser.format_help().split())
    for default in ("(default 30)", "(default 300)", "(default 2048)", "(default 10)", "(default 5)",
                    "(default md)", "(default 30)"):
        assert default in text, default


def test_each_limit_option_sets_its_own_limit():
    """--timeout is the exercise's seconds, --submission-timeout the submission's, --memory the megabytes,
    --time-budget the factor, --time-budget-floor the floor."""
    limits = command._limits(parse("--timeout", "7", "--submission-timeout", "70", "--memory", "700",
                                   "--time-budget", "3", "--time-budget-floor", "2"))
    assert (limits.exercise_s, limits.submission_s, limits.memory_mb, limits.budget_factor, limits.budget_floor_s) == \
        (7.0, 70.0, 700, 3.0, 2.0)


@pytest.mark.parametrize("option, value, shown", [("--timeout", "0", "0.0"), ("--timeout", "nan", "nan"),
                                                  ("--submission-timeout", "-1", "-1.0"), ("--memory", "0", "0"),
                                                  ("--time-budget", "-0.5", "-0.5"),
                                                  ("--time-budget-floor", "inf", "inf")])
def test_a_bad_limit_is_an_error_naming_its_option_and_value(option, value, shown):
    """A limit that is not a positive finite number is a GradingError naming the option (not the field) and the
    value given."""
    with pytest.raises(GradingError) as error:
        command._limits(parse(option, value))
    assert str(error.value) == f"{option} must be a positive number, got {shown}"


def test_a_limit_error_of_another_kind_is_passed_on_as_it_is(monkeypatch):
    """An error of Limits that names none of the options is a GradingError with its own text."""
    def refusing(**kwargs):
        raise ValueError("limit output_mb must be a positive number, got 0")
    args = parse()
    monkeypatch.setattr(command, "Limits", refusing)
    with pytest.raises(GradingError, match="^limit output_mb must be a positive number, got 0$"):
        command._limits(args)


def test_the_audit_lines_options_are_the_ones_set_sorted_without_the_dispatch_keys():
    """The options written in the audit line: those set (not None, False or an empty list; so not 0 either), sorted
    by name, without ``handler`` and ``command``; an empty text and True are kept."""
    args = argparse.Namespace(zeta=1, alpha="x", handler=print, command="grade", none=None, off=False, empty=[],
                              zero=0, on=True, blank="", more=["a"])
    found = command._options(args)
    assert list(found) == ["alpha", "blank", "more", "on", "zeta"]
    assert found == {"alpha": "x", "blank": "", "more": ["a"], "on": True, "zeta": 1}


@pytest.mark.parametrize("existing, state", [((), "no gradebook was written"), ((0,), "{0} is as before"),
                                             ((0, 1), "{0} and {1} are as before"), ((1,), "{1} is as before")])
def test_the_ctrl_c_message_says_which_gradebook_files_are_as_before(tmp_path, existing, state):
    """After Ctrl-C: the gradebook files that exist are as before (one "is", two "are"), or no gradebook was
    written; no submission changed, and the same command grades from the start."""
    paths = [tmp_path / "g.csv", tmp_path / "g.json"]
    for number in existing:
        paths[number].write_text("x")
    assert command.interrupted_message(paths) == (
        "pgcourse grade: interrupted (Ctrl-C) before the grades were written: "
        f"{state.format(*paths)}, and no submission was changed. Run the same command again to grade from the start.")


# -- run: the checks before anything is graded ----------------------------------------------------------

def run_refuses(*argv: str) -> str:
    with pytest.raises(GradingError) as error:
        command.run(parse(*argv))
    return str(error.value)


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_fewer_than_one_job_is_refused_before_anything_else_but_the_limits(jobs):
    """--jobs below 1 is refused (after the limits are checked, before a benchmark or anything else)."""
    assert run_refuses("--jobs", jobs, "--bench") == "--jobs must be at least 1"
    assert run_refuses("--jobs", jobs, "--timeout", "0") == "--timeout must be a positive number, got 0.0"


def test_the_benchmark_runs_with_the_options_given(monkeypatch):
    """--bench grades --count synthetic submissions of --chapter with --jobs and the limits; it returns 0 (one job
    is allowed)."""
    calls = []
    monkeypatch.setattr(command, "bench", lambda **kwargs: calls.append(kwargs))
    assert command.run(parse("--bench", "--jobs", "1", "--chapter", "02", "--course", "c", "--count", "6",
                             "--memory", "99")) == 0
    assert calls == [{"count": 6, "chapter": "02", "course": "c", "jobs": 1, "limits": Limits(memory_mb=99)}]


def test_grading_needs_an_out_file_and_submissions_or_an_update(monkeypatch):
    """Grading needs --out; and submissions, unless it is an --update (which may grade nothing)."""
    assert run_refuses("a.ipynb") == "give --out FILE.csv for the gradebook"
    assert run_refuses("--out", "g.csv") == ("give the submissions to grade (notebooks or folders), or --update to "
                                             "re-apply --manual or a late policy to the gradebook at --out")


@pytest.mark.parametrize("out, json_out, gradebook", [("g.csv", None, "g.csv"), ("g.csv", "t.json", "t.csv"),
                                                      ("a/g.csv", None, "a/./g.csv")])
def test_the_term_gradebook_cannot_be_the_assignments_gradebook(tmp_path, monkeypatch, out, json_out, gradebook):
    """--gradebook and --out (or its JSON) naming the same files is refused before grading."""
    monkeypatch.chdir(tmp_path)
    argv = ["s.ipynb", "--out", out, "--gradebook", gradebook] + (["--json", json_out] if json_out else [])
    assert run_refuses(*argv) == (f"--gradebook {gradebook} and --out {out} are the same files: the term gradebook "
                                  "(all assignments) and this assignment's gradebook need names of their own")


def test_a_term_gradebook_that_is_not_a_csv_name_is_refused_before_grading(tmp_path, monkeypatch):
    """A --gradebook that is not a .csv name is refused before any grading."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(command, "grade_paths", lambda *a, **k: pytest.fail("graded"))
    assert "expected a .csv file name" in run_refuses("s.ipynb", "--out", "g.csv", "--gradebook", "term.txt")


@dataclass
class FakeReport:
    changes: list = field(default_factory=list)
    name: str = "hw1"
    chapter: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(name="01", path=Path("c/01.ipynb")))
    students: list = field(default_factory=lambda: [1, 2, 3])
    submissions: list = field(default_factory=lambda: [SimpleNamespace(student="bo"), SimpleNamespace(student="al")])
    hide_expected: bool = False

    def summary(self):
        return "SUMMARY"


@pytest.fixture
def graded_run(monkeypatch, tmp_path):
    """``run`` with grading, the course and the files after grading replaced by recorders."""
    monkeypatch.chdir(tmp_path)
    seen = SimpleNamespace(grade=None, audits=[], report=FakeReport(), more=[], kept=[])
    monkeypatch.setattr(command, "find_course", lambda: SimpleNamespace(root=Path("found")))
    monkeypatch.setattr(command, "load_course", lambda path: SimpleNamespace(root=Path(path)))

    def grade_paths(submissions, **kwargs):
        seen.grade = dict(kwargs, submissions=submissions)
        kwargs["kept"].extend(seen.kept)
        return seen.report
    monkeypatch.setattr(command, "grade_paths", grade_paths)

    def after(args, report, hide, roster, stamp, written, kept):
        written.extend(seen.more)
        return ["extra line"]
    monkeypatch.setattr(command, "_after_grading", after)
    monkeypatch.setattr(command, "audit", lambda path, entry: seen.audits.append((path, entry)))
    monkeypatch.setattr(command, "course_version", lambda root, path: {"course": str(root)})
    return seen


def test_a_grading_run_prints_the_summary_its_lines_and_what_it_wrote(graded_run, capsys):
    """A run grades with the options given (auto isolation, progress shown), prints the summary, the lines of the
    work after grading and the two gradebook files written, and appends an audit line: action grade, the
    assignment, the chapter, the course's version, the options, the number of students and those graded, sorted."""
    assert command.run(parse("s.ipynb", "--out", "g.csv", "--student", "al")) == 0
    assert graded_run.grade["isolation"] == "auto" and graded_run.grade["progress"] is True
    assert (graded_run.grade["submissions"], graded_run.grade["students"], graded_run.grade["update"]) == \
        (["s.ipynb"], ["al"], False)
    assert capsys.readouterr().out.splitlines() == ["SUMMARY", "extra line", "wrote g.csv, g.json"]
    [(path, entry)] = graded_run.audits
    assert path == Path("g.csv")
    assert entry == {"action": "grade", "assignment": "hw1", "chapter": "01", "course": {"course": "found"},
                     "options": {"out": "g.csv", "student": ["al"], "submissions": ["s.ipynb"], "timeout": 30.0,
                                 "submission_timeout": 300.0, "memory": 2048, "time_budget": 10.0,
                                 "time_budget_floor": 5.0, "count": 30, "feedback_format": "md"},
                     "students": 3, "graded": ["al", "bo"], "written": ["g.csv", "g.json"], "kept": []}


def test_an_update_run_says_what_changed_and_more_files_and_the_kept_folder(graded_run, capsys, tmp_path):
    """With --update the audit line says each changed total (before, after) and the action is update; changed grades
    without --feedback get a note; more than two files written are counted; kept versions name their folder; the
    sandbox is off with --unsafe-no-sandbox, the progress bar with --quiet; --course is loaded."""
    graded_run.report.changes = [("al", 1.0, 2.5, "why"), ("bo", 3.0, 2.0, "late")]
    graded_run.more = [Path("g.free-text.csv"), Path("fb/al.md")]
    graded_run.kept = [tmp_path / "g.history" / "x-g.csv"]
    assert command.run(parse("--out", "g.csv", "--update", "--unsafe-no-sandbox", "--quiet", "--course", "c")) == 0
    assert graded_run.grade["isolation"] == UNSAFE and graded_run.grade["progress"] is False
    out = capsys.readouterr().out.splitlines()
    assert out == ["SUMMARY", "extra line", "note: 2 grade(s) changed: give --feedback DIR to write their students' "
                   "feedback files again (they say why)", "wrote g.csv, g.json and 2 more file(s)",
                   f"kept the previous version(s) in {tmp_path / 'g.history'}"]
    entry = graded_run.audits[0][1]
    assert entry["action"] == "update" and entry["changed"] == {"al": [1, 2.5], "bo": [3, 2]}
    assert entry["course"] == {"course": "c"} and entry["kept"] == [str(tmp_path / "g.history" / "x-g.csv")]


def test_changed_grades_with_feedback_files_need_no_note(graded_run, capsys):
    """With --feedback the changed students' files are written again: no note; a run that is not an update has no
    "changed" in its audit line."""
    graded_run.report.changes = [("al", 1.0, 2.5, "why")]
    command.run(parse("s.ipynb", "--out", "g.csv", "--feedback", "fb"))
    assert not any(line.startswith("note:") for line in capsys.readouterr().out.splitlines())
    assert "changed" not in graded_run.audits[0][1]


def test_ctrl_c_while_grading_returns_130_and_says_what_is_left(graded_run, monkeypatch, capsys):
    """Ctrl-C during the grading returns 130, with the interrupted message on stderr; nothing is audited."""
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(command, "grade_paths", interrupted)
    assert command.run(parse("s.ipynb", "--out", "g.csv")) == 130
    assert capsys.readouterr().err.strip() == command.interrupted_message([Path("g.csv"), Path("g.json")])
    assert graded_run.audits == []


def test_main_prints_a_grading_error_and_returns_2(capsys, monkeypatch):
    """``main`` turns a GradingError or a FileExistsError into ``error: ...`` on stderr and exit status 2."""
    assert command.main(["--jobs", "0"]) == 2
    assert capsys.readouterr().err == "error: --jobs must be at least 1\n"

    def exists(args):
        raise FileExistsError("g.csv already exists")
    monkeypatch.setattr(command, "run", exists)
    assert command.main([]) == 2 and capsys.readouterr().err == "error: g.csv already exists\n"
    monkeypatch.setattr(command, "run", lambda args: 0)
    assert command.main([]) == 0


# -- late settings ---------------------------------------------------------------------------------------

def test_the_late_settings_of_a_grading_are_the_options_given(monkeypatch):
    """Not an update: the late settings are the options given (None ones left out) and no changes are computed
    (the gradebook is not read)."""
    monkeypatch.setattr(command, "stored_policy", lambda *a: pytest.fail("read the gradebook"))
    args = parse("--deadline", "2025-01-01T00:00Z", "--grace", "5m")
    assert command._late_settings(args) == ({"deadline": "2025-01-01T00:00Z", "grace": "5m"}, None)
    assert command._late_settings(parse()) == ({}, None)
    assert command._late_settings(parse("--update", "--late-penalty", "1%")) == ({"late_penalty": "1%"}, None)


def test_the_late_settings_of_an_update_merge_the_gradebooks_with_the_files_and_the_options(monkeypatch, tmp_path):
    """An --update with a gradebook at --out: its stored policy, the options, and the assignment file's deadline,
    penalty and grace (its other settings are not late settings) go to settings_for_update; no gradebook to read:
    the options alone, no changes."""
    calls = []
    stored = LatePolicy.parse("2025-01-01T00:00Z", None, None)
    monkeypatch.setattr(command, "stored_policy", lambda out, json_out: calls.append((out, json_out)) or stored)
    monkeypatch.setattr(command, "settings_for_update", lambda s, o, f: ("merged", s, o, f))
    toml = tmp_path / "hw.toml"
    toml.write_text('name = "HW"\ndeadline = "2025-02-01T00:00Z"\ngrace = "1h"\n')
    args = parse("--update", "--out", "g.csv", "--json", "g2.json", "--late-penalty", "5%", "--assignment", str(toml))
    assert command._late_settings(args) == ("merged", stored, {"late_penalty": "5%"},
                                            {"deadline": "2025-02-01T00:00Z", "grace": "1h"})
    assert calls == [("g.csv", "g2.json")]
    assert command._late_settings(parse("--update", "--out", "g.csv"))[0] == "merged"  # no file: from_file {}
    monkeypatch.setattr(command, "stored_policy", lambda out, json_out: None)
    assert command._late_settings(parse("--update", "--out", "g.csv", "--grace", "2m")) == ({"grace": "2m"}, None)


# -- after grading ---------------------------------------------------------------------------------------

@pytest.fixture
def after_grading(monkeypatch, tmp_path):
    """``_after_grading`` with each writer replaced by a recorder."""
    seen = SimpleNamespace(calls=[], free_text=None, copies=["copy"], pairs=["pair"], warnings=[],
                           term={"students": [1, 2], "assignments": [1, 2, 3]}, kept_term=[])

    def record(name, result=None):
        def recorder(*args):
            seen.calls.append((name, args))
            return result(*args) if callable(result) else result
        return recorder
    monkeypatch.setattr(command, "free_text_csv", lambda report: seen.free_text)
    monkeypatch.setattr(command, "write_kept", record("write_kept",
                                                      lambda path, text, stamp: Path(f"kept-{path.name}")))
    monkeypatch.setattr(command, "write_feedback", record("write_feedback", lambda *a: [Path("f1"), Path("f2")]))
    monkeypatch.setattr(command, "reference_copies", record("reference_copies", lambda *a: seen.copies))
    monkeypatch.setattr(command, "similar_pairs", record("similar_pairs", lambda *a: seen.pairs))
    monkeypatch.setattr(command, "report_csv", lambda pairs: "PAIRS;")
    monkeypatch.setattr(command, "copies_csv", lambda copies, chapter: "COPIES")
    monkeypatch.setattr(command, "summary_lines", lambda pairs: [f"pairs: {pairs}"])
    monkeypatch.setattr(command, "copies_summary", lambda copies, chapter: [f"copies: {copies}"])
    monkeypatch.setattr(command, "read_term", record("read_term", lambda *a: seen.term))
    monkeypatch.setattr(command, "update_term", record("update_term", lambda *a: seen.warnings))
    monkeypatch.setattr(command, "write_term", record("write_term", lambda *a: seen.kept_term))
    monkeypatch.setattr(command, "audit", record("audit"))
    seen.out = tmp_path / "grades" / "hw.csv"
    return seen


def run_after(seen, *argv, submissions=("s",)):
    args = parse("--out", str(seen.out), *argv)
    report = SimpleNamespace(submissions=list(submissions), chapter="CH", name="hw1", students=[1, 2, 3])
    written, kept = [Path("w")], []
    lines = command._after_grading(args, report, True, "ROSTER", "STAMP", written, kept)
    return lines, written, kept


def test_after_grading_with_nothing_asked_writes_nothing_but_says_copies_of_the_solution(after_grading):
    """Without free-text questions or options, nothing is written; the copies of the course's solution among the
    submissions are said (computed only when something was graded)."""
    lines, written, kept = run_after(after_grading)
    assert lines == ["copies: ['copy']"] and written == [Path("w")] and kept == []
    assert [name for name, _ in after_grading.calls] == ["reference_copies"]
    lines, written, kept = run_after(after_grading, "--similarity", submissions=())
    assert lines == [] and after_grading.calls[1:] == []


def test_free_text_answers_are_written_beside_the_gradebook(after_grading):
    """A chapter with free-text questions gets ``<out stem>.free-text.csv`` beside the gradebook (the previous one
    kept), listed as written, with a line saying how to grade it."""
    after_grading.free_text = "student,exercise\n"
    lines, written, kept = run_after(after_grading)
    path = after_grading.out.with_name("hw.free-text.csv")
    assert after_grading.calls[0] == ("write_kept", (path, "student,exercise\n", "STAMP"))
    assert written == [Path("w"), path] and kept == [Path("kept-hw.free-text.csv")]
    assert lines[0] == f"free-text answers to grade: {path} (fill in points and comment, then --update --manual)"


@pytest.mark.parametrize("students, only", [([], None), (["al", "al", "bo"], {"al", "bo"})])
def test_feedback_files_are_written_for_the_students_asked(after_grading, students, only):
    """--feedback writes a file per student (only those given with --student), in the format asked, hiding expected
    values as the report says; the files are listed as written and counted in a line."""
    argv = ["--feedback", "fb", "--feedback-format", "html"] + [x for s in students for x in ("--student", s)]
    lines, written, _ = run_after(after_grading, *argv)
    call = next(args for name, args in after_grading.calls if name == "write_feedback")
    assert call[1:] == ("fb", "html", True, only, "STAMP")
    assert written == [Path("w"), Path("f1"), Path("f2")] and lines[0] == "feedback: 2 file(s) in fb"


def test_similarity_hints_are_written_beside_the_gradebook(after_grading):
    """--similarity writes ``<out stem>.similarity.csv`` (the pairs, then the copies of the solution), lists it and
    says the pairs, then the copies."""
    lines, written, kept = run_after(after_grading, "--similarity")
    path = after_grading.out.with_name("hw.similarity.csv")
    assert ("write_kept", (path, "PAIRS;COPIES", "STAMP")) in after_grading.calls
    assert written == [Path("w"), path] and kept == [Path("kept-hw.similarity.csv")]
    assert lines == ["pairs: ['pair']", "copies: ['copy']"]


def test_the_term_gradebook_takes_the_assignments_json_and_says_its_size(after_grading, tmp_path):
    """--gradebook sets the assignment's column from its JSON gradebook (with the roster), writes the term files
    (their previous versions kept), lists them, audits the update and says each warning and the term's size."""
    gradebook = str(tmp_path / "term.csv")
    after_grading.warnings = ["no submission for hw1: cy"]
    after_grading.kept_term = [Path("old-term.json")]
    lines, written, kept = run_after(after_grading, "--gradebook", gradebook)
    update = next(args for name, args in after_grading.calls if name == "update_term")
    assert update[2:] == (str(after_grading.out.with_suffix(".json")), "ROSTER")
    assert written == [Path("w"), tmp_path / "term.csv", tmp_path / "term.json"] and kept == [Path("old-term.json")]
    audit = next(args for name, args in after_grading.calls if name == "audit")
    assert audit == (tmp_path / "term.csv", {"action": "update-term", "assignment": "hw1",
                                             "from": str(after_grading.out), "students": 3})
    assert lines[-2:] == ["warning: no submission for hw1: cy",
                          f"term gradebook: {gradebook} (2 students, 3 assignment(s))"]


def test_keep_adds_only_a_kept_path():
    """``_keep`` lists a previous version that was kept, and nothing when there was none."""
    kept: list = []
    command._keep(kept, None)
    command._keep(kept, Path("a"))
    assert kept == [Path("a")]


# -- export ----------------------------------------------------------------------------------------------

def write_term_json(path: Path, assignments=({"name": "hw1", "max_points": 3},)) -> None:
    path.write_text(json.dumps({"format": term.TERM_FORMAT, "assignments": list(assignments),
                                "students": [{"student": "al", "scores": {"hw1": 2}}]}))


@pytest.mark.parametrize("argv", [["--export", "canvas", "--out", "x.csv"], ["--export", "moodle",
                                                                             "--gradebook", "t.csv"]])
def test_an_export_needs_a_term_gradebook_and_an_out_file(argv):
    """--export needs --gradebook (what to export) and --out (where)."""
    lms = argv[1]
    assert run_refuses(*argv) == f"--export {lms} needs --gradebook TERM.csv (what to export) and --out FILE.csv"


def test_an_export_grades_nothing(tmp_path):
    """--export with submissions is refused: it writes the term gradebook and grades nothing."""
    assert run_refuses("s.ipynb", "--export", "canvas", "--gradebook", "t.csv", "--out", "x.csv") == \
        "--export writes the term gradebook; it grades nothing: leave out the submissions"


def test_an_export_needs_an_existing_term_gradebook(tmp_path):
    """Exporting a term gradebook that does not exist yet is an error (not an empty export)."""
    assert "there is no term gradebook yet" in run_refuses("--export", "canvas", "--gradebook",
                                                           str(tmp_path / "t.csv"), "--out", str(tmp_path / "x.csv"))


def test_an_export_writes_the_lms_file_warns_and_audits(tmp_path, monkeypatch, capsys):
    """An export writes the LMS's file at --out, prints each warning and what it wrote, and audits it beside the
    term gradebook; an --out holding other text is not replaced without --overwrite, one holding the same text is
    fine; --out may not be the term gradebook itself."""
    monkeypatch.chdir(tmp_path)
    write_term_json(tmp_path / "t.json")
    monkeypatch.setattr(command, "export", lambda data, lms, roster: (f"{lms} text\n", ["w1", "w2"]))
    assert command.run(parse("--export", "canvas", "--gradebook", "t.csv", "--out", "x.csv")) == 0
    assert (tmp_path / "x.csv").read_text() == "canvas text\n"
    assert capsys.readouterr().out.splitlines() == ["warning: w1", "warning: w2", "wrote x.csv: 1 student(s), 1 "
                                                    "assignment(s), for Canvas's grade import"]
    audit = json.loads((tmp_path / "t.audit.jsonl").read_text().splitlines()[-1])
    assert (audit["action"], audit["out"], audit["roster"], audit["kept"]) == ("export-canvas", "x.csv", None, None)
    assert command.run(parse("--export", "canvas", "--gradebook", "t.csv", "--out", "x.csv")) == 0  # same text
    with pytest.raises(FileExistsError, match="x.csv already exists; pass --overwrite"):
        command.run(parse("--export", "moodle", "--gradebook", "t.csv", "--out", "x.csv"))
    assert command.run(parse("--export", "moodle", "--gradebook", "t.csv", "--out", "x.csv", "--overwrite")) == 0
    assert (tmp_path / "x.csv").read_text() == "moodle text\n"
    assert "for Moodle's grade import" in capsys.readouterr().out
    audit = json.loads((tmp_path / "t.audit.jsonl").read_text().splitlines()[-1])
    assert audit["action"] == "export-moodle" and audit["kept"].endswith("-x.csv")
    for out in ("t.csv", "t.json"):
        assert run_refuses("--export", "canvas", "--gradebook", "t.csv", "--out", out) == \
            f"--out {out} is the term gradebook itself; choose another file for the export"


# ==================================================================================================
# term.py
# ==================================================================================================

@pytest.mark.parametrize("name, json_name", [("term.csv", "term.json"), ("T.CSV", "T.json"),
                                             ("a/b.c.csv", "a/b.c.json"), ("x.Csv", "x.json")])
def test_the_term_gradebook_is_a_csv_name_with_its_json_beside_it(name, json_name):
    """A term gradebook is named by its CSV (``.csv`` in any case); its JSON has the same name with ``.json``."""
    assert term.term_paths(name) == (Path(name), Path(json_name))


@pytest.mark.parametrize("name", ["term.txt", "term", "term.csv.bak", "term.json", "csv"])
def test_a_term_gradebook_name_without_csv_is_refused_naming_it(name):
    """Any other name is a GradingError naming the option and the name given."""
    with pytest.raises(GradingError) as error:
        term.term_paths(name)
    assert str(error.value) == f"--gradebook {name}: expected a .csv file name (the JSON goes beside it)"


def test_a_missing_term_gradebook_is_empty_unless_it_must_exist(tmp_path):
    """No term JSON yet: an empty term gradebook (the format, no assignments, no students); with ``must_exist``, a
    GradingError naming the missing JSON."""
    assert term.TERM_FORMAT == "pgcourse-term/1"
    assert term.read_term(tmp_path / "t.csv") == {"format": "pgcourse-term/1", "assignments": [], "students": []}
    with pytest.raises(GradingError) as error:
        term.read_term(tmp_path / "t.csv", must_exist=True)
    assert str(error.value) == (f"--gradebook {tmp_path / 't.csv'}: there is no term gradebook yet "
                                f"({tmp_path / 't.json'} is missing); grade an assignment with --gradebook first")


@pytest.mark.parametrize("text, says", [("{not json", "cannot be read"), ("[]", "is not a term gradebook"),
                                        ('{"format": "pgcourse-term/2"}', "is not a term gradebook"),
                                        ('{"assignments": []}', "is not a term gradebook"),
                                        (b"\xff\xfe", "cannot be read")])
def test_a_term_json_that_is_not_ours_is_refused(tmp_path, text, says):
    """A term JSON that does not parse, or is not an object with this format, is a GradingError naming the file."""
    path = tmp_path / "t.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(GradingError) as error:
        term.read_term(tmp_path / "t.csv")
    assert str(error.value).startswith(f"--gradebook: {path} {says}")


def test_a_term_json_of_this_format_is_read_as_it_is(tmp_path):
    data = {"format": "pgcourse-term/1", "assignments": [{"name": "a"}], "students": [], "extra": 1}
    (tmp_path / "t.json").write_text(json.dumps(data))
    assert term.read_term(tmp_path / "t.csv", must_exist=True) == data


def term_report(name: str, rows, max_points: float = 10.0, chapter: str = "01"):
    return SimpleNamespace(name=name, chapter=SimpleNamespace(name=chapter, max_points=max_points), students=rows)


def term_row(student: str, total: float, identity: dict | None = None, absent: bool = False):
    return SimpleNamespace(student=student, total=total, identity=identity or {}, no_submission=absent)


def test_an_assignments_column_replaces_its_earlier_one_and_keeps_the_others():
    """Updating a term with an assignment sets that assignment's entry (name, chapter, points possible as a plain
    number, gradebook) in place of an earlier one of that name, the assignments sorted by name; the scores of
    that assignment are the report's totals (plain numbers), others untouched."""
    data = {"assignments": [{"name": "hw2", "chapter": "02"},
                            {"name": "hw1", "chapter": "old", "max_points": 1, "gradebook": "old.json"},
                            {"name": "hw0", "chapter": "09"}],
            "students": [{"student": "al", "identity": {}, "scores": {"hw1": 1, "hw2": 7}}]}
    warnings = term.update_term(data, term_report("hw1", [term_row("al", 4.0), term_row("bo", 2.5)], 12.0), "g.json")
    assert warnings == []
    assert data["assignments"] == [{"name": "hw0", "chapter": "09"},
                                   {"name": "hw1", "chapter": "01", "max_points": 12, "gradebook": "g.json"},
                                   {"name": "hw2", "chapter": "02"}]
    assert isinstance(data["assignments"][1]["max_points"], int)
    assert isinstance(data["students"][0]["scores"]["hw1"], int)  # 4.0 is written 4
    assert data["students"] == [{"student": "al", "identity": {}, "scores": {"hw1": 4, "hw2": 7}},
                                {"student": "bo", "identity": {}, "scores": {"hw1": 2.5}}]


def test_a_student_with_no_score_left_leaves_the_term_and_students_are_sorted():
    """A student whose only score was of this assignment and who has no row now leaves the term gradebook; the
    students are sorted by id."""
    data = {"assignments": [], "students": [{"student": "zed", "identity": {}, "scores": {"hw1": 3}},
                                            {"student": "kim", "identity": {}, "scores": {"hw1": 3, "hw0": 1}}]}
    term.update_term(data, term_report("hw1", [term_row("bo", 1.0), term_row("al", 2.0)]), "g.json")
    assert [s["student"] for s in data["students"]] == ["al", "bo", "kim"]
    assert data["students"][2]["scores"] == {"hw0": 1}


def test_a_students_identity_keeps_what_it_had_and_never_the_late_flag():
    """A student's identity in the term takes each field of the row's identity it does not have yet (the first one
    known wins), never ``late_flag`` (a fact of one submission)."""
    data = {"assignments": [], "students": [{"student": "al", "identity": {"lms": "canvas"}, "scores": {"hw0": 1}}]}
    row = term_row("al", 1.0, {"lms": "moodle", "lms_id": "77", "late_flag": True})
    term.update_term(data, term_report("hw1", [row, term_row("bo", 0.0, {"late_flag": True, "name": "Bo"})]), "g")
    assert data["students"][0]["identity"] == {"lms": "canvas", "lms_id": "77"}
    assert data["students"][1]["identity"] == {"name": "Bo"}


def test_no_submission_is_marked_per_assignment_and_warned_about():
    """A row marked "no submission" is 0 and names the assignment in the student's ``no_submission`` (sorted); a
    student who now has a submission loses the mark (the key goes when empty); the update warns, naming them."""
    data = {"assignments": [], "students": [{"student": "al", "identity": {}, "scores": {"hw1": 0, "hw0": 0},
                                             "no_submission": ["hw0", "hw1"]},
                                            {"student": "bo", "identity": {}, "scores": {"hw1": 0},
                                             "no_submission": ["hw1"]}]}
    warnings = term.update_term(data, term_report("hw1", [term_row("al", 3.0), term_row("bo", 2.0),
                                                          term_row("cy", 0.0, absent=True)]), "g")
    by_id = {s["student"]: s for s in data["students"]}
    assert by_id["al"]["no_submission"] == ["hw0"] and "no_submission" not in by_id["bo"]
    assert by_id["cy"]["no_submission"] == ["hw1"] and by_id["cy"]["scores"] == {"hw1": 0}
    assert warnings == ["no submission for hw1: cy (1 student(s): 0 in the term gradebook, named in its "
                        "no_submission column)"]


@pytest.mark.parametrize("count, listed", [(10, "s00, s01, s02, s03, s04, s05, s06, s07, s08, s09"),
                                           (11, "s00, s01, s02, s03, s04, s05, s06, s07, s08, s09 …")])
def test_the_no_submission_warning_names_ten_students_at_most(count, listed):
    """The warning lists at most ten students (sorted), then an ellipsis, and counts them all."""
    rows = [term_row(f"s{i:02d}", 0.0, absent=True) for i in range(count)]
    data = {"assignments": [], "students": []}
    assert term.update_term(data, term_report("hw", rows), "g") == [
        f"no submission for hw: {listed} ({count} student(s): 0 in the term gradebook, named in its no_submission "
        "column)"]


def test_a_row_no_roster_student_matches_is_warned_about_but_kept():
    """With a roster, a row that matches no single roster student is a warning (naming the roster's source); the
    row is in the term gradebook all the same."""
    roster = SimpleNamespace(source="class.csv", match=lambda student, identity: None if student == "x" else "entry")
    data = {"assignments": [], "students": []}
    warnings = term.update_term(data, term_report("hw", [term_row("x", 1.0), term_row("al", 1.0)]), "g", roster)
    assert warnings == ["'x' matches no single student of --roster class.csv"]
    assert [s["student"] for s in data["students"]] == ["al", "x"]


def test_mark_adds_removes_and_sorts_an_assignment_name():
    """``_mark`` sets or clears one assignment's no-submission mark, keeping the others sorted, the key dropped when
    none is left."""
    student: dict = {}
    term._mark(student, "b", True)
    term._mark(student, "a", True)
    term._mark(student, "a", True)
    assert student == {"no_submission": ["a", "b"]}
    term._mark(student, "b", False)
    assert student == {"no_submission": ["a"]}
    term._mark(student, "a", False)
    term._mark(student, "zzz", False)
    assert student == {}


def test_no_submission_is_a_marked_row_or_no_row_in_the_order_asked():
    """Of the assignments asked (in that order), a student handed in nothing for those they have no score for and
    those marked no submission."""
    student = {"scores": {"a": 1, "b": 0, "c": 2}, "no_submission": ["b"]}
    assert term.no_submission(student, ["d", "c", "b", "a"]) == ["d", "b"]
    assert term.no_submission({"scores": {"a": 0}}, ["a"]) == []
    assert term.no_submission({"scores": {}}, []) == []


def test_the_term_csv_has_a_column_per_assignment_a_total_and_no_submission_only_when_needed():
    """The term CSV: student, the assignments in order, total (the sum, 0 for a missing score), texts quoted and
    numbers not; a ``no_submission`` column only when a student handed in nothing somewhere, naming those
    assignments joined by "; "; a name a spreadsheet would read as a formula gets a leading quote."""
    data = {"assignments": [{"name": "hw1"}, {"name": "hw2"}],
            "students": [{"student": "al", "scores": {"hw1": 2, "hw2": 1.5}},
                         {"student": "=bo", "scores": {"hw1": 3}}]}
    assert term.term_csv(data) == ('"student","hw1","hw2","total","no_submission"\n'
                                   '"al",2,1.5,3.5,""\n'
                                   '"\'=bo",3,0,3,"hw2"\n')
    data["students"] = [{"student": "al", "scores": {"hw1": 2, "hw2": 1}}]
    assert term.term_csv(data) == '"student","hw1","hw2","total"\n"al",2,1,3\n'
    data["students"] = [{"student": "al", "scores": {"hw1": 0, "hw2": 0}, "no_submission": ["hw1", "hw2"]}]
    assert term.term_csv(data).splitlines()[1] == '"al",0,0,0,"hw1; hw2"'


def test_writing_the_term_keeps_the_previous_versions_only(tmp_path):
    """``write_term`` writes the JSON (indented, unicode as is) and the CSV; it returns the previous versions kept in
    the history: none the first time or when nothing changed, both when both changed."""
    data = {"format": term.TERM_FORMAT, "assignments": [{"name": "hw1"}], "students": [
        {"student": "zoë", "scores": {"hw1": 1}}]}
    gradebook = tmp_path / "t.csv"
    assert term.write_term(gradebook, data, "S1") == []
    assert json.loads((tmp_path / "t.json").read_text(encoding="utf-8")) == data
    assert "zoë" in (tmp_path / "t.json").read_text(encoding="utf-8")
    assert (tmp_path / "t.json").read_text(encoding="utf-8") == json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    assert gradebook.read_text() == term.term_csv(data)
    assert term.write_term(gradebook, data, "S2") == []
    data["students"][0]["scores"]["hw1"] = 2
    kept = term.write_term(gradebook, data, "S3")
    assert [p.name for p in kept] == ["S3-t.json", "S3-t.csv"]


def test_an_export_needs_an_assignment_and_goes_to_the_lms_named(monkeypatch):
    """An export of a term with no assignment is refused; ``canvas`` makes Canvas's file, ``moodle`` Moodle's."""
    monkeypatch.setattr(term, "canvas_csv", lambda data, roster: ("canvas", [roster]))
    monkeypatch.setattr(term, "moodle_csv", lambda data, roster: ("moodle", [roster]))
    with pytest.raises(GradingError, match="^the term gradebook has no assignment yet: nothing to export$"):
        term.export({"assignments": [], "students": []}, "canvas", None)
    data = {"assignments": [{"name": "a"}], "students": []}
    assert term.export(data, "canvas", "R") == ("canvas", ["R"])
    assert term.export(data, "moodle", "R") == ("moodle", ["R"])


# ==================================================================================================
# memcg.py
# ==================================================================================================

def test_the_limit_and_usage_files_of_each_cgroup_version():
    """cgroup v1 limits ``memory.limit_in_bytes`` then ``memory.memsw.limit_in_bytes`` and reads
    ``memory.usage_in_bytes``; v2 limits ``memory.max`` then ``memory.swap.max`` and reads ``memory.current``."""
    assert (memcg.V1, memcg.V2, memcg.PREFIX) == ("v1", "v2", "pgcourse-student-")
    v1, v2 = memcg.Hierarchy(memcg.V1, Path("/a")), memcg.Hierarchy(memcg.V2, Path("/a"))
    assert v1.limit_files == ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes")
    assert v2.limit_files == ("memory.max", "memory.swap.max")
    assert (v1.usage_file, v2.usage_file) == ("memory.usage_in_bytes", "memory.current")


@pytest.mark.parametrize("text, expected", [
    ("12:memory:/user.slice\n0::/system.slice/x.service\n", ("/user.slice", "/system.slice/x.service")),
    ("4:cpu,memory,pids:/a\n", ("/a", None)),
    ("4:cpuacct:/a\n3:memoryx:/b\n1:name=systemd:/c\n", (None, None)),
    ("0::/\n", (None, "/")),
    ("0:memory:/x\n", ("/x", None)),
    ("0::/a:b\n", (None, "/a:b")),
    ("", (None, None)),
    ("1::/v1-named\n", (None, None)),
], ids=["hybrid", "joined", "other-controllers", "root", "v1-number-0", "colon-in-path", "empty", "not-0"])
def test_a_processs_own_cgroups_are_its_memory_line_and_its_0_colon_colon_line(text, expected):
    """In /proc/self/cgroup, the v1 memory cgroup is the line whose controllers (comma-separated) include exactly
    ``memory``; the v2 cgroup is the line ``0::PATH``; the path is everything after the second colon."""
    assert memcg._own_paths(text) == expected


V1_LINE = "36 35 98:0 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory"
V2_LINE = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"


@pytest.mark.parametrize("text, expected", [
    (f"{V1_LINE}\n{V2_LINE}\n", ("/sys/fs/cgroup/memory", "/sys/fs/cgroup")),
    (f"{V2_LINE}\n30 25 0:27 / /other rw - cgroup2 cgroup2 rw\n", (None, "/sys/fs/cgroup")),
    (f"{V1_LINE}\n37 35 98:1 / /second rw - cgroup cgroup rw,memory\n", ("/sys/fs/cgroup/memory", None)),
    ("36 35 98:0 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,memoryx\n", (None, None)),
    ("36 35 98:0 / /m rw - cgroup cgroup\n", (None, None)),
    ("36 35 98:0 / /m rw cgroup2 cgroup2 rw\n", (None, None)),
    ("1 2 - cgroup2\n", (None, None)),
    ("36 35 98:0 / /t rw - tmpfs tmpfs rw,memory\n", (None, None)),
    ("30 25 0:26 / /u rw - cgroup2 cgroup2 rw,memory\n", (None, "/u")),
    ("", (None, None)),
], ids=["both", "first-v2", "first-v1", "no-memory-option", "no-options", "no-separator", "short", "tmpfs",
        "v2-with-memory", "empty"])
def test_the_cgroup_mounts_are_the_first_memory_v1_and_the_first_v2_of_mountinfo(text, expected):
    """In /proc/self/mountinfo (the mount point is the fifth field; the type and options follow `` - ``): the v1
    mount is the first of type ``cgroup`` whose options include ``memory``, the v2 mount the first of type
    ``cgroup2``; a line without `` - `` or with fewer than five fields is skipped."""
    assert memcg._mounts(text) == expected


def cgroup_world(tmp_path, v1=False, v2_controllers: str | None = None):
    """A fake cgroup file system: a v1 memory mount and a v2 mount in tmp_path, the process in /grp on both."""
    v1_parent, v2_parent = tmp_path / "v1" / "grp", tmp_path / "v2" / "grp"
    v1_parent.mkdir(parents=True)
    v2_parent.mkdir(parents=True)
    if v1:
        (v1_parent / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    if v2_controllers is not None:
        (v2_parent / "cgroup.subtree_control").write_text(v2_controllers)
    own = "5:memory:/grp\n0::/grp\n"
    mounts = (f"1 1 0:1 / {tmp_path / 'v1'} rw - cgroup cgroup rw,memory\n"
              f"2 1 0:2 / {tmp_path / 'v2'} rw - cgroup2 cgroup2 rw\n")
    return own, mounts, v1_parent, v2_parent


def test_v1_is_chosen_where_its_memory_cgroup_is_writable_and_has_a_limit_file(tmp_path):
    """A v1 memory cgroup of the process's own, writable and with ``memory.limit_in_bytes``, is where student cgroups
    go (preferred to v2)."""
    own, mounts, v1_parent, _ = cgroup_world(tmp_path, v1=True, v2_controllers="memory\n")
    assert memcg.find_hierarchy(own, mounts) == (memcg.Hierarchy(memcg.V1, v1_parent),
                                                  f"a memory cgroup (v1) of its own under {v1_parent}")


@pytest.mark.parametrize("controllers", ["memory\n", "cpu io memory pids", "memory"])
def test_v2_is_chosen_where_memory_is_enabled_for_its_children(tmp_path, controllers):
    """Without a usable v1 cgroup, the process's own v2 cgroup is used when ``memory`` is one of the words of its
    ``cgroup.subtree_control`` and it is writable."""
    own, mounts, _, v2_parent = cgroup_world(tmp_path, v2_controllers=controllers)
    assert memcg.find_hierarchy(own, mounts) == (memcg.Hierarchy(memcg.V2, v2_parent),
                                                  f"a memory cgroup (v2) of its own under {v2_parent}")


NO_CGROUP = ("no memory cgroup the grader may create (not root, or cgroup v2 without the memory controller delegated "
             "to the grader's own cgroup)")


@pytest.mark.parametrize("controllers", [None, "", "cpu io", "memoryx", "+memory"])
def test_no_cgroup_where_memory_is_not_delegated(tmp_path, controllers):
    """No v1 limit file and no ``memory`` word in v2's subtree_control (or no such file): no cgroup, and why."""
    own, mounts, _, _ = cgroup_world(tmp_path, v2_controllers=controllers)
    assert memcg.find_hierarchy(own, mounts) == (None, NO_CGROUP)


def test_no_cgroup_in_a_folder_the_grader_may_not_write(tmp_path, monkeypatch):
    """A cgroup folder the grader may not write is not used, v1 or v2."""
    own, mounts, _, _ = cgroup_world(tmp_path, v1=True, v2_controllers="memory")
    monkeypatch.setattr(memcg.os, "access", lambda path, mode: False)
    assert memcg.find_hierarchy(own, mounts) == (None, NO_CGROUP)


def test_writable_means_an_existing_folder_with_write_access(tmp_path, monkeypatch):
    """``_writable``: a folder that exists and that this process may write (checked with W_OK)."""
    asked = []
    monkeypatch.setattr(memcg.os, "access", lambda path, mode: asked.append(mode) or True)
    (tmp_path / "f").write_text("")
    assert memcg._writable(tmp_path) and not memcg._writable(tmp_path / "f")
    assert not memcg._writable(tmp_path / "missing") and asked == [os.W_OK]


@pytest.mark.parametrize("own, mounts", [("", ""), ("5:memory:/grp\n", ""), ("0::/grp\n", ""),
                                         ("", "2 1 0:2 / /x rw - cgroup2 cgroup2 rw\n")])
def test_no_cgroup_without_both_the_own_path_and_the_mount(tmp_path, own, mounts):
    """A cgroup needs both the process's own path and the hierarchy's mount."""
    assert memcg.find_hierarchy(own, mounts) == (None, NO_CGROUP)


def test_an_own_cgroup_at_the_root_is_the_mount_itself(tmp_path):
    """The own path is taken below the mount point: ``/`` is the mount point itself."""
    (tmp_path / "memory.limit_in_bytes").write_text("1\n")
    found, _ = memcg.find_hierarchy("5:memory:/\n", f"1 1 0:1 / {tmp_path} rw - cgroup cgroup rw,memory\n")
    assert found == memcg.Hierarchy(memcg.V1, tmp_path)


def test_unreadable_proc_files_mean_no_cgroups(monkeypatch):
    """Where /proc/self/cgroup cannot be read, there are no cgroups here, and the reason says the OS's words."""
    class Unreadable:
        def __init__(self, path):
            pass

        def read_text(self):
            raise FileNotFoundError(2, "No such file or directory")
    monkeypatch.setattr(memcg, "Path", Unreadable)
    assert memcg.find_hierarchy() == (None, "no cgroups here (No such file or directory)")
    assert memcg.find_hierarchy(proc_cgroup="0::/") == (None, "no cgroups here (No such file or directory)")


@pytest.mark.parametrize("version", [memcg.V1, memcg.V2])
def test_a_student_cgroup_is_a_new_folder_named_for_this_process_and_a_serial(tmp_path, version):
    """A student cgroup is a new folder ``pgcourse-student-PID-N`` under the hierarchy's parent, N counting up within
    this process (two cgroups never share a name); a student process enters it through a shell that writes its own
    pid to ``cgroup.procs`` and then becomes the command."""
    hierarchy = memcg.Hierarchy(version, tmp_path)
    first, second = memcg.StudentCgroup(hierarchy), memcg.StudentCgroup(hierarchy)
    numbers = []
    for made in (first, second):
        assert made.path.parent == tmp_path and made.path.is_dir()
        prefix = f"pgcourse-student-{os.getpid()}-"
        assert made.path.name.startswith(prefix)
        numbers.append(int(made.path.name.removeprefix(prefix)))
    assert numbers[1] == numbers[0] + 1
    assert first.entry_command(["python", "-c", "x"]) == ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                                                          str(first.path), "python", "-c", "x"]


@pytest.mark.parametrize("version, files, written", [
    (memcg.V1, ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"), {"memory.limit_in_bytes": "1100\n",
                                                                          "memory.memsw.limit_in_bytes": "1100\n"}),
    (memcg.V1, ("memory.limit_in_bytes",), {"memory.limit_in_bytes": "1100\n"}),
    (memcg.V2, ("memory.max", "memory.swap.max"), {"memory.max": "1100\n", "memory.swap.max": "0\n"}),
    (memcg.V2, ("memory.max",), {"memory.max": "1100\n"}),
], ids=["v1-swap-counted", "v1-no-swap", "v2", "v2-no-swap"])
def test_a_cgroups_limit_is_its_usage_now_plus_the_memory_given_and_no_swap(tmp_path, version, files, written):
    """The limit is the cgroup's usage now (the first number of its usage file) plus the bytes given: written to
    each limit file the cgroup has (v1: memory and memory+swap alike; v2: memory, and 0 swap); a limit file the
    cgroup does not have is not made. The limit is returned."""
    made = memcg.StudentCgroup(memcg.Hierarchy(version, tmp_path))
    usage = "memory.usage_in_bytes" if version == memcg.V1 else "memory.current"
    (made.path / usage).write_text("1000 extra\n")
    for name in files:
        (made.path / name).write_text("max\n")
    assert made.usage() == 1000
    assert made.limit(100) == 1100
    assert {p.name: p.read_text() for p in made.path.iterdir() if p.name != usage} == written
    assert made.limit("7") == 1007 and made.limit(2.9) == 1002


class FakeTime:
    def __init__(self):
        self.now, self.sleeps = 100.0, []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += 1.0


def test_removing_a_student_cgroup(tmp_path, monkeypatch):
    """``remove`` removes the emptied folder; one already gone is fine; one not empty yet (its processes not yet
    reaped) is tried again every 0.02 s until ``wait`` seconds have passed, then left; one emptied meanwhile is
    removed."""
    clock = FakeTime()
    monkeypatch.setattr(memcg, "time", clock)
    made = memcg.StudentCgroup(memcg.Hierarchy(memcg.V2, tmp_path))
    made.remove()
    assert not made.path.exists() and clock.sleeps == []
    made.remove()  # already gone
    busy = memcg.StudentCgroup(memcg.Hierarchy(memcg.V2, tmp_path))
    (busy.path / "still").write_text("")
    busy.remove(wait=5.0)
    assert busy.path.exists() and clock.sleeps == [0.02] * 5  # tried at 0, 1, ..., 5 s: five waits
    clock.sleeps.clear()
    busy.remove(wait=0.0)
    assert busy.path.exists() and clock.sleeps == []

    def emptying(seconds):
        clock.sleeps.append(seconds)
        (busy.path / "still").unlink(missing_ok=True)
    clock.sleep = emptying
    busy.remove(wait=5.0)
    assert not busy.path.exists() and clock.sleeps == [0.02]


# ==================================================================================================
# grader.py
# ==================================================================================================

def fake_course(**grade_ids: set[str]) -> Course:
    """A course whose chapters (``c01=...``: chapter ``01``) hold these grade ids; no file is read."""
    names = {name.removeprefix("c"): ids for name, ids in grade_ids.items()}
    return Course(root=Path("course"), notebooks={n: Path(f"course/solutions/{n}.ipynb") for n in names},
                  _grade_ids={n: frozenset(ids) for n, ids in names.items()})


def holding(student: str, *grade_ids: str, problem: str | None = None, hint: str | None = None,
            path: str | None = None) -> Submission:
    return Submission(student, Path(path or f"{student}.ipynb"), "sha", problem=problem, chapter_hint=hint,
                      cells=[cell(i, "x = 1", g) for i, g in enumerate(grade_ids)])


@pytest.mark.parametrize("ids, best", [({"b", "c"}, "02"), ({"a", "c"}, "01"), ({"c", "d", "a"}, "02"),
                                       ({"zz"}, None), (set(), None), ({"x"}, "03")])
def test_a_notebooks_chapter_is_the_one_sharing_most_cell_ids_the_first_on_a_tie(ids, best):
    """The best chapter for a notebook shares the most grade ids with it; on a tie, the first chapter by name; none
    when it shares none."""
    course = fake_course(c01={"a", "b"}, c02={"b", "c", "d"}, c03={"x"})
    assert grader._best_chapter(course, holding("s", *sorted(ids))) == best


def test_the_inferred_chapter_is_the_one_every_readable_notebook_votes_for():
    """The chapter of a class is the best chapter of each readable notebook (an unreadable one does not vote); one
    with no course cell votes for its file's chapter hint when that is a chapter of the course."""
    course = fake_course(c01={"a"}, c02={"b"}, c03={"c"})
    found = [holding("al", "b"), holding("bo", "b", "c"), holding("cy", "a", problem="too large"),
             holding("dan", hint="02")]
    assert grader._infer_chapter(course, found) == "02"
    assert grader._infer_chapter(course, [holding("al", hint="03")]) == "03"
    assert grader._infer_chapter(course, [holding("al", "b", hint="03")]) == "02"  # the cells win over the hint


@pytest.mark.parametrize("found", [[], [holding("al", hint="99")], [holding("al", "zz")],
                                   [holding("al", "a", problem="unreadable")]])
def test_no_chapter_can_be_inferred_without_a_vote(found):
    """No readable notebook with a course cell or a known hint: the chapter cannot be told; pass --chapter."""
    with pytest.raises(GradingError, match="^could not tell which chapter these notebooks belong to .*; pass "
                                           "--chapter$"):
        grader._infer_chapter(fake_course(c01={"a"}, c02={"b"}), found)


def test_notebooks_of_different_chapters_are_refused_naming_five_students_of_each():
    """Notebooks voting for two chapters are refused, naming for each chapter (sorted) its students (sorted, five at
    most, then an ellipsis); an unprintable name is shown escaped."""
    course = fake_course(c01={"a"}, c02={"b"})
    found = [holding(s, "b") for s in ("f", "e", "d", "c", "b", "a")] + [holding("z\x1b", "a")]
    with pytest.raises(GradingError) as error:
        grader._infer_chapter(course, found)
    assert str(error.value) == ("the submissions belong to different chapters (01: 'z\\x1b'; 02: a, b, c, d, e …); "
                                "grade one chapter at a time, or pass --chapter")
    with pytest.raises(GradingError, match=r"\(01: x; 02: a, b, c, d, e\);"):
        grader._infer_chapter(course, [holding(s, "b") for s in "edcba"] + [holding("x", "a")])


def wrong_notebook_chapter() -> Chapter:
    return chapter_of(exercise("e1", answer_ids=("a1",)), exercise("m1", kind="manual", answer_ids=("m1",)),
                      answer_order=["a1"])


def test_a_notebook_without_the_chapters_answer_cells_is_a_warning_naming_what_it_looks_like():
    """A readable notebook holding none of the chapter's answer cells (auto or free-text) is a warning per student,
    saying what chapter it looks like (or none of the course); unreadable notebooks and notebooks holding a
    free-text answer cell are not."""
    course = fake_course(c01={"a1", "m1"}, c02={"q"})
    found = [holding("al", "a1"), holding("bo", "m1"), holding("cy", "q", path="cy/hw.ipynb"), holding("dan", "zz"),
             holding("eve", problem="too large"), holding("fay", "a1"), holding("gus", "a1")]
    assert grader._wrong_notebooks(course, wrong_notebook_chapter(), found, chosen=True) == [
        "student 'cy': cy/hw.ipynb holds none of the answer cells of 01 (it looks like 02): every exercise gets 0; is "
        "it the right notebook?",
        "student 'dan': dan.ipynb holds none of the answer cells of 01 (it looks like no chapter of the course): every "
        "exercise gets 0; is it the right notebook?"]
    assert grader._wrong_notebooks(course, wrong_notebook_chapter(), found[:2], chosen=True) == []
    assert grader._wrong_notebooks(course, wrong_notebook_chapter(), [], chosen=False) == []


@pytest.mark.parametrize("chosen, how", [(True, "--chapter 01"), (False, "chapter 01 (inferred)")])
def test_wrong_notebooks_for_most_of_the_class_stop_the_grading(chosen, how):
    """When more than half of the readable notebooks hold none of the chapter's answer cells, the grading stops
    (a wrong --chapter must not give everyone 0): the error counts them and lists what they look like (sorted,
    once each); exactly half is still only warnings."""
    course = fake_course(c01={"a1"}, c02={"q"})
    found = [holding("al", "a1"), holding("bo", "q"), holding("cy", "zz"), holding("dan", "q"),
             holding("eve", problem="x")]
    with pytest.raises(GradingError) as error:
        grader._wrong_notebooks(course, wrong_notebook_chapter(), found, chosen)
    assert str(error.value) == (f"{how}: 3 of 4 submissions hold none of its answer cells (they look like 02, no "
                                "chapter of the course); check --chapter, or the folder you gave")
    half = [holding("al", "a1"), holding("fay", "a1"), holding("bo", "q"), holding("cy", "zz")]
    assert len(grader._wrong_notebooks(course, wrong_notebook_chapter(), half, chosen)) == 2


def test_one_submission_per_student_the_chosen_one_with_a_note_and_a_warning(monkeypatch):
    """A student with several files keeps the one ``choose`` picks (given the course, the chapter and the files in
    their order); the note (on the kept submission) and the warning say how many, which was graded and why, and
    the others by path (sorted) with their problem; students come out sorted; one file is kept as it is."""
    calls = []

    def choose(course, chapter, group):
        calls.append((course, chapter, [s.path.name for s in group]))
        return group[1], "the latest"
    monkeypatch.setattr(grader, "choose", choose)
    files = [holding("zed", "a"), holding("al", path="c.ipynb", problem="too large"), holding("al", path="b.ipynb"),
             holding("al", path="a.ipynb")]
    kept, warnings = grader._dedupe("COURSE", "01", files)
    assert [s.path.name for s in kept] == ["b.ipynb", "zed.ipynb"] and calls == [("COURSE", "01", ["c.ipynb",
                                                                                                    "b.ipynb",
                                                                                                    "a.ipynb"])]
    note = "3 notebooks handed in: graded b.ipynb (the latest); ignored a.ipynb, c.ipynb (too large)"
    assert kept[0].notes == [note] and warnings == [f"student 'al': {note}"] and kept[1].notes == []
    assert grader._dedupe("COURSE", "01", []) == ([], [])


def test_a_file_that_cannot_be_read_costs_its_student_only_and_is_stamped(monkeypatch):
    """Reading a submission: an exception becomes the student's problem (its type and message), with no hash; the
    identity is attached; a file named for a classmate is a problem (a problem of reading is kept first); the
    submission time is stamped from the LMS's times and the roots given."""
    stamped = []
    monkeypatch.setattr(grader, "stamp_submission", lambda s, times, roots: stamped.append((s.student, times, roots)))

    def read_submission(path, student):
        if "bad" in str(path):
            raise ValueError("boom")
        return Submission(student, Path(path), "sha", problem="a symlink" if "link" in str(path) else None)
    monkeypatch.setattr(grader, "read_submission", read_submission)
    times, roots = {"al": datetime(2025, 1, 1, tzinfo=timezone.utc)}, {Path("/r")}
    bad = grader._read("bad.ipynb", Identity("al"), times, roots)
    assert (bad.student, bad.path, bad.sha256, bad.problem) == (
        "al", Path("bad.ipynb"), None, "the grader could not read this file (ValueError: boom)")
    assert bad.identity == Identity("al") and stamped == [("al", times, roots)]
    good = grader._read(Path("ok.ipynb"), Identity("bo"), {}, set())
    assert good.problem is None and good.sha256 == "sha"
    named = grader._read(Path("ok.ipynb"), Identity("bo", named_for="cy"), {}, set())
    assert named.problem.startswith("the file is named for another student, 'cy'")
    link = grader._read(Path("link.ipynb"), Identity("bo", named_for="cy"), {}, set())
    assert link.problem == "a symlink"


class ScriptedPool:
    """A pool whose ``grade`` follows a script: results for keys, or an exception, batch by batch."""

    def __init__(self, *script):
        self.script, self.batches = list(script), []

    def grade(self, chapter, tasks, limits, on_result=None):
        self.batches.append([key for key, _ in tasks])
        step = self.script.pop(0)
        for key in [k for k, _ in tasks if k in step.get("deliver", ())]:
            on_result(key, {"e1": key})
        if "raise" in step:
            raise step["raise"]
        return {key: {"e1": key} for key, _ in tasks if key in step.get("return", ())}


def test_the_class_is_graded_in_one_batch_when_it_goes_well():
    """No tasks: no grading at all. Otherwise one batch; its results are the raw results, each reported once."""
    advanced = []
    idle = ScriptedPool()
    assert grader._grade_all(idle, "CH", [], Limits(), None) == ({}, {}) and idle.batches == []
    scripted = ScriptedPool({"deliver": ("a", "b"), "return": ("a", "b")})
    raw, failed = grader._grade_all(scripted, "CH", [("a", {}), ("b", {})], Limits(),
                                    lambda key, ex: advanced.append(key))
    assert raw == {"a": {"e1": "a"}, "b": {"e1": "b"}} and failed == {} and advanced == ["a", "b"]
    assert scripted.batches == [["a", "b"]]


def test_a_failed_batch_keeps_what_it_delivered_and_grades_the_rest_one_by_one():
    """A batch that fails for a reason not the course's keeps the results it delivered; each remaining submission
    is graded on its own, and one that fails again costs only that student (the exception's type and message)."""
    scripted = ScriptedPool({"deliver": ("a",), "raise": RuntimeError("pool broke")},
                            {"deliver": ("b",), "return": ("b",)}, {"raise": OSError("worker gone")},
                            {"deliver": ("d",), "return": ("d",)})
    raw, failed = grader._grade_all(scripted, "CH", [(k, {}) for k in "abcd"], Limits(), lambda key, ex: None)
    assert scripted.batches == [["a", "b", "c", "d"], ["b"], ["c"], ["d"]]
    assert raw == {"a": {"e1": "a"}, "b": {"e1": "b"}, "d": {"e1": "d"}} and failed == {"c": "OSError: worker gone"}


@pytest.mark.parametrize("when", [0, 1])
def test_a_grading_error_stops_the_class_in_the_batch_or_one_by_one(when):
    """A GradingError (the course's self-test failed, no worker starts) is not one student's: it stops the grading,
    from the batch or from a submission graded on its own."""
    script = [{"raise": GradingError("self-test failed")}] if when == 0 else [
        {"raise": RuntimeError("x")}, {"raise": GradingError("self-test failed")}]
    with pytest.raises(GradingError, match="self-test failed"):
        grader._grade_all(ScriptedPool(*script), "CH", [("a", {}), ("b", {})], Limits(), lambda key, ex: None)


def row_chapter() -> Chapter:
    return chapter_of(exercise("e1", 2.0, answer_ids=("a1",)), exercise("e2", 3.0, answer_ids=("a2",)),
                      exercise("m", 1.0, kind="manual", answer_ids=("m",)), answer_order=["a1", "a2"])


def with_text(student: str, text: str | None, problem: str | None = None) -> Submission:
    cells = [cell(0, "x = 1", "a1")] + ([cell(1, text, "m", cell_type="markdown")] if text is not None else [])
    return Submission(student, Path(f"{student}.ipynb"), "h", problem=problem, cells=cells,
                      identity=Identity(student, lms="canvas", lms_id="5"), notes=["read note"])


@pytest.mark.parametrize("got, points, status", [
    ({"points": 5, "status": "passed", "feedback": "ok"}, 2, "passed"),
    ({"points": 2, "status": "passed", "feedback": "ok"}, 2, "passed"),
    ({"points": 0.5, "status": "failed", "feedback": "ok"}, 0.5, "failed"),
    ({"points": "1.5", "status": "failed", "feedback": "ok"}, 1.5, "failed"),
    ({"points": 1, "status": "error", "feedback": "ok"}, 0, "error"),
    ({"points": 2, "status": "timeout", "feedback": "ok"}, 0, "timeout"),
    ({"points": 2, "status": "crashed", "feedback": "ok"}, 0, "crashed"),
], ids=["capped", "full", "partial", "text", "error", "timeout", "crashed"])
def test_an_auto_exercise_scores_the_workers_points_when_passed_or_failed_at_most_its_worth(got, points, status):
    """An auto exercise scores the worker's points when it passed or failed (partial credit), never more than the
    exercise is worth; any other status scores 0. The grader's own points are what it scored."""
    row = grader._row(with_text("al", "mine"), row_chapter(), {"al": {"e1": got, "e2": got}}, {}, [])
    result = row.exercises["e1"]
    assert (result.points, result.max_points, result.status, result.feedback, result.graded_points) == \
        (points, 2.0, status, "ok", points)
    assert type(result.points) is type(points)  # a whole number as an int


def test_a_missing_or_malformed_result_is_an_error_for_that_exercise_saying_why():
    """An exercise the worker gave no result for (or a malformed one) is an error, 0 points: with the reason the
    grader failed on the student when there is one, else the missing key's exception."""
    chapter = row_chapter()
    row = grader._row(with_text("al", "mine"), chapter, {"al": {"e1": {"points": 1}}}, {}, [])
    assert (row.exercises["e1"].points, row.exercises["e1"].status, row.exercises["e1"].feedback) == (
        0, "error", "not graded: the grader failed on this submission (no result for this exercise (KeyError))")
    assert row.exercises["e2"].feedback == row.exercises["e1"].feedback and row.exercises["e2"].graded_points == 0
    row = grader._row(with_text("al", "mine"), chapter, {}, {"al": "OSError: gone"}, [])
    assert row.exercises["e2"].feedback == "not graded: the grader failed on this submission (OSError: gone)"


def test_a_free_text_exercise_waits_for_the_teacher_and_an_unreadable_file_is_invalid():
    """A free-text exercise is the student's answer for the teacher to grade (missing when there is none; no grader
    points); a submission with a problem has every exercise invalid, 0, saying the problem."""
    chapter = row_chapter()
    row = grader._row(with_text("al", "my answer"), chapter, {"al": passed("e1", "e2")}, {}, ["task note"])
    manual = row.exercises["m"]
    assert (manual.status, manual.answer, manual.graded_points, manual.max_points) == ("manual", "my answer", None, 1.0)
    assert grader._row(with_text("al", None), chapter, {"al": passed("e1", "e2")}, {}, []).exercises["m"].status == \
        "missing"
    assert (row.student, row.file, row.sha256, row.problem, row.notes, row.identity) == (
        "al", "al.ipynb", "h", None, ["read note", "task note"], {"lms": "canvas", "lms_id": "5"})
    bad = grader._row(with_text("bo", "text", problem="too large"), chapter, {"bo": passed("e1", "e2")}, {}, [])
    assert {k: (r.points, r.status, r.feedback, r.graded_points) for k, r in bad.exercises.items()} == {
        k: (0, "invalid", "not graded: too large", None) for k in ("e1", "e2", "m")}
    assert bad.problem == "too large"
    plain = Submission("cy", Path("cy.ipynb"), "h", cells=[cell(0, "x", "a1")])
    assert grader._row(plain, chapter, {"cy": passed("e1", "e2")}, {}, []).identity == {}


def hunt_chapter(eid: str = "ch06_mystery_1") -> Chapter:
    return chapter_of(exercise("ch06_other"), exercise(eid))


@pytest.mark.parametrize("eid, is_hunt", [("ch06_mystery_1", True), ("ch06_mystery_12", True),
                                          ("ch06_mystery_", False), ("xch06_mystery_1", False),
                                          ("ch06_mystery_1a", False), ("ch06_MYSTERY_1", False)])
def test_a_chapter_has_a_bug_hunt_when_an_exercise_is_exactly_ch06_mystery_number(eid, is_hunt):
    """The bug-hunt notes and warnings are for a chapter with an auto exercise named exactly ``ch06_mystery_N``."""
    row = student_row("al")
    grader._note_hunt(hunt_chapter(eid), row, None, set())
    assert bool(row.notes) is is_hunt
    assert bool(grader._hunt_warnings(hunt_chapter(eid), [row], None, set())) is is_hunt


def test_a_bug_hunt_graded_without_a_key_or_for_a_student_the_key_lacks_is_noted():
    """Without --hunt-key each student's row notes the practice six; with one, a student it has no hunt for is
    noted (their mysteries scored 0) and one it has is not. The report warns likewise, naming the missing students
    (sorted); no rows, no warning."""
    chapter = hunt_chapter()
    rows = [student_row("zed"), student_row("al"), student_row("bo")]
    grader._note_hunt(chapter, rows[0], None, set())
    assert rows[0].notes == ["the bug hunt was graded on the practice six (no --hunt-key): their answers are in the "
                             "published solution; grade a class on hunts made per student (python -m "
                             "pgcourse.classroom.hunts, then --hunt-key)"]
    key = Path("/k/key.json")
    grader._note_hunt(chapter, rows[1], key, {"bo"})
    grader._note_hunt(chapter, rows[2], key, {"bo"})
    assert rows[1].notes == ["the bug hunt: /k/key.json has no hunt made for student 'al', so its mysteries scored 0; "
                             "make one (python -m pgcourse.classroom.hunts ... with that id) and grade again"]
    assert rows[2].notes == []
    assert grader._hunt_warnings(chapter, rows, None, set()) == [
        "the bug hunt was graded on the practice six (no --hunt-key), whose answers the solution publishes: grade a "
        "class on hunts made per student (docs/teachers.md, 'The bug hunt')"]
    assert grader._hunt_warnings(chapter, rows, key, {"bo"}) == [
        "the bug hunt: /k/key.json has no hunt for 2 student(s), whose mysteries scored 0: 'al', 'zed'"]
    assert grader._hunt_warnings(chapter, rows, key, {"al", "bo", "zed"}) == []
    assert grader._hunt_warnings(chapter, [], None, set()) == []


def test_a_hunt_key_must_be_a_readable_key_outside_the_sandboxs_folders(tmp_path, monkeypatch):
    """--hunt-key: a key the hunts module reads, as an absolute path (``~`` expanded); one it refuses is a GradingError
    with its reason; one in a folder the students' sandbox can read is refused, naming that folder. (The hunts module
    is stood in for: importing the RL library it brings takes seconds.)"""
    import types

    from pgcourse.classroom.grading import sandbox
    read = []

    def read_key(path):
        read.append(path)
        if path.name == "bad.json":
            raise ValueError(f"{path} is not a bug-hunt key")
        return {"students": {}}
    monkeypatch.setitem(sys.modules, "pgcourse.classroom.hunts", types.SimpleNamespace(read_key=read_key))
    monkeypatch.setenv("HOME", str(tmp_path))
    shown = tmp_path / "shown"
    monkeypatch.setattr(sandbox, "_read_only_roots", lambda: [str(tmp_path / "elsewhere"), str(shown)])
    assert grader.check_hunt_key("~/key.json") == tmp_path / "key.json" and read == [tmp_path / "key.json"]
    assert grader.check_hunt_key(tmp_path / "x" / ".." / "k.json") == tmp_path / "k.json"
    with pytest.raises(GradingError) as error:
        grader.check_hunt_key(shown / "key.json")
    assert str(error.value) == (f"--hunt-key {shown / 'key.json'} lies in {shown}, a folder the students' sandbox can "
                                "read: move the key elsewhere (e.g. your home folder)")
    with pytest.raises(GradingError, match=f"^--hunt-key: {tmp_path / 'bad.json'} is not a bug-hunt key$"):
        grader.check_hunt_key(tmp_path / "bad.json")


@pytest.mark.parametrize("source, names", [
    ("def f(): pass\nasync def g(): pass\nclass C: pass", {"f", "g", "C"}),
    ("import a.b.c\nimport d as e\nfrom m import n, o as p", {"a", "e", "n", "p"}),
    ("x = 1\n(y, [z, w]) = 1, [2, 3]\nv: int = 3\nu: int", {"x", "y", "z", "w", "v", "u"}),
    ("obj.attr = 1\nd[k] = 2", {"obj", "d", "k"}),
    ("if True:\n    hidden = 1\ndef f():\n    inner = 2", {"f"}),
    ("x = (", set()),
    ("", set()),
    ("x += 1\nfor i in y: pass", set()),
], ids=["defs", "imports", "assignments", "targets", "top-level-only", "syntax-error", "empty", "not-definitions"])
def test_the_names_a_cell_defines_at_top_level(source, names):
    """A cell defines, at top level, its functions and classes, the first part of each import (or its alias), and
    every name in its assignment targets; nothing from a cell that does not parse."""
    assert grader._defined_names(source) == names


@pytest.mark.parametrize("source, defines", [
    ("def f(x):", True), ("async def f():", True), ("async  def\tf():", True), ("class f:", True), ("f = 1", True),
    ("f=1", True), ("f: int = 1", True), ("f\t= 1", True), ("x = 1\nf = (", True), ("f == 1", False),
    ("  f = 1", False), ("ff = 1", False), ("f1 = 2", False), ("def ff():", False), ("def f_x():", False),
    ("class fx:", False), ("g = f", False), ("f: int", False), ("print(f)", False), ("f: x\n= 1", False),
])
def test_whether_a_cell_defines_a_name_read_line_by_line(source, defines):
    """A cell defines ``f`` when a line starts with ``def f``/``async def f``/``class f`` (a whole word) or with an
    assignment to ``f`` (annotated or not; ``==`` is no assignment); indented lines do not count; the cell need
    not parse."""
    assert grader._cell_defines(source, "f") is defines


@pytest.mark.parametrize("feedback, line", [("Traceback\n  File x\nSyntaxError: expected ':'\n\n", "SyntaxError: "
                                                                                                   "expected ':'"),
                                            ("  only  ", "only"), ("", "an exception"), ("\n \n\t\n", "an exception")])
def test_the_exception_line_of_a_feedback_is_its_last_non_blank_line(feedback, line):
    """The exception a cell raised is the last non-blank line of its feedback, stripped; "an exception" without one."""
    assert grader._exception_line(feedback) == line


def hint_chapter() -> Chapter:
    return chapter_of(exercise("e1", answer_ids=("a1",)), exercise("e2", answer_ids=("a2",)),
                      exercise("e3", answer_ids=("a3",)), answer_order=["a1", "a2", "a3"])


def hint_row(statuses: dict[str, tuple[str, str]]) -> StudentResult:
    return StudentResult("al", "al.ipynb", None, {k: ExerciseResult(0, 1, status, feedback)
                                                  for k, (status, feedback) in statuses.items()})


RAISED = "your answer cell a1 raised an exception\nTraceback (most recent call last):\nSyntaxError: invalid syntax\n"


def note(name: str, number: int = 2, grade_id: str = "a1", exception: str = "SyntaxError: invalid syntax") -> str:
    return (f"\n\nNote: this exercise failed because cell {number} (your answer cell {grade_id}) raised {exception} "
            f"when it ran: `{name}` is defined there, so it was never defined. This may be the only mistake here: "
            "fix that cell first.")


def test_a_later_failure_on_a_name_an_earlier_broken_cell_defines_points_at_that_cell():
    """When an answer cell raised (its exercise an error saying so), a later exercise that failed or errored on a
    name that cell defines (NameError) says so, naming the cell's number (its first code cell of that id), its id,
    its exception and the name, once per name, sorted; the broken exercise itself, a passed exercise and a name
    the cell does not define get no note."""
    cells = [cell(0, "a1 as text", "a1", cell_type="markdown"), cell(1, "def f(:\n    pass\nx = 1", "a1"),
             cell(2, "g = 2", "a1"), cell(3, "pass", "a2"), cell(4, "pass", "a3")]
    submission = Submission("al", Path("al.ipynb"), None, cells=cells)
    undefined = "NameError: name 'x' is not defined\nNameError: name 'f' is not defined\nname 'h' is not defined"
    row = hint_row({"e1": ("error", "name 'f' is not defined\n" + RAISED), "e2": ("failed", undefined),
                    "e3": ("passed", "name 'g' is not defined")})
    grader._hint_earlier_failures(submission, hint_chapter(), row)
    assert row.exercises["e1"].feedback == "name 'f' is not defined\n" + RAISED
    assert row.exercises["e2"].feedback == undefined + note("f") + note("x")
    assert row.exercises["e3"].feedback == "name 'g' is not defined"
    row = hint_row({"e1": ("error", RAISED), "e2": ("passed", ""), "e3": ("error", "name 'g' is not defined")})
    grader._hint_earlier_failures(submission, hint_chapter(), row)
    assert row.exercises["e3"].feedback == "name 'g' is not defined" + note("g")  # the second copy of a1 defines g


def test_only_an_error_that_says_its_answer_cell_raised_makes_a_cell_broken():
    """An earlier exercise counts as broken only when its status is error and its feedback says that answer cell
    raised; a failed check, or an error of another cell, does not; a cell that is not in the notebook is cell ?."""
    submission = Submission("al", Path("al.ipynb"), None, cells=[cell(0, "f = 1", "a1")])
    for first in (("failed", RAISED), ("error", "your answer cell a9 raised an exception\nX")):
        row = hint_row({"e1": first, "e2": ("failed", "name 'f' is not defined"), "e3": ("passed", "")})
        grader._hint_earlier_failures(submission, hint_chapter(), row)
        assert row.exercises["e2"].feedback == "name 'f' is not defined", first
    chapter = chapter_of(exercise("e1", answer_ids=("a0", "a1")), exercise("e2", answer_ids=("a2",)),
                         answer_order=["a0", "a1", "a2"])
    row = StudentResult("al", "", None, {"e1": ExerciseResult(0, 1, "error", "your answer cell a0 raised an exception\n"
                                                                               "ValueError: v"),
                                         "e2": ExerciseResult(0, 1, "error", "name 'f' is not defined")})
    grader._hint_earlier_failures(Submission("al", Path("x"), None, cells=[]), chapter, row)
    assert row.exercises["e2"].feedback == "name 'f' is not defined"  # a0 has no source here: defines nothing
    row.exercises["e1"].feedback = "your answer cell a1 raised an exception\nValueError: v"
    grader._hint_earlier_failures(Submission("al", Path("x"), None, cells=[cell(7, "f = 2", "a2")]), chapter, row)
    assert row.exercises["e2"].feedback == "name 'f' is not defined"  # a1 has no code cell: nothing it defines


def hint(name: str, number: int, eid: str) -> str:
    return (f"\n\nHint: `{name}` is defined in cell {number} of your notebook, which the grader does not take (only "
            f"the answer cells, and cells you add before an exercise's check): move it into the answer cell of {eid}.")


def test_a_failure_on_a_name_defined_in_a_cell_the_grader_does_not_take_says_move_it():
    """An exercise that failed, errored or is missing gets a hint for each name its check uses that a cell the grader
    did not take defines (the cell's number, sorted names; ``pg``, ``np``, ``torch`` never); a passed or timed-out
    exercise, or a check that does not parse, gets none; no untaken cell, no hint."""
    chapter = chapter_of(exercise("e1", check_source="assert helper(np, torch, pg) == other + zeta"),
                         exercise("e2", check_source="assert helper()"), exercise("e3", check_source="assert helper("),
                         exercise("e4", check_source="assert helper()"), exercise("e5", check_source="helper()"))
    submission = Submission("al", Path("al.ipynb"), None)
    submission.not_taken = [cell(5, "def helper(): pass\nnp = 1\ntorch = 2\npg = 3\nzeta = 4"), cell(8, "helper = 1")]
    row = StudentResult("al", "", None, {"e1": ExerciseResult(0, 1, "failed", "F"),
                                         "e2": ExerciseResult(0, 1, "passed", "P"),
                                         "e3": ExerciseResult(0, 1, "error", "E"),
                                         "e4": ExerciseResult(0, 1, "missing", "M"),
                                         "e5": ExerciseResult(0, 1, "timeout", "T")})
    grader._hint_untaken_cells(submission, chapter, row)
    assert row.exercises["e1"].feedback == "F" + hint("helper", 6, "e1") + hint("zeta", 6, "e1") + hint("helper", 9,
                                                                                                         "e1")
    assert [row.exercises[e].feedback for e in ("e2", "e3", "e5")] == ["P", "E", "T"]
    assert row.exercises["e4"].feedback == "M" + hint("helper", 6, "e4") + hint("helper", 9, "e4")
    submission.not_taken = []
    row.exercises["e4"].feedback = "M"
    grader._hint_untaken_cells(submission, chapter, row)
    assert row.exercises["e4"].feedback == "M"


def test_collecting_keeps_only_the_students_asked_and_names_the_missing(tmp_path, monkeypatch):
    """``_collect`` reads every submission found (the folders given are the roots a timestamp.txt is no student's);
    with ``--student``, only theirs, and a student not found is an error listing (sorted, ten at most) who was."""
    found = [(Identity(f"s{i:02d}"), tmp_path / f"s{i:02d}.ipynb") for i in range(12)]
    monkeypatch.setattr(grader, "collect_identified", lambda paths, names: list(found))
    read = []
    monkeypatch.setattr(grader, "_read", lambda path, identity, times, roots: read.append((path.name, roots)) or path)
    folder = tmp_path / "sub"
    folder.mkdir()
    course = fake_course(c01={"a"})
    assert grader._collect([folder, tmp_path / "s00.ipynb"], course, ["s03", "s01"], {}) == [found[1][1], found[3][1]]
    assert read == [("s01.ipynb", {folder.resolve()}), ("s03.ipynb", {folder.resolve()})]
    assert len(grader._collect([folder], course, None, {})) == 12
    with pytest.raises(GradingError) as error:
        grader._collect([folder], course, ["zed", "s01", "amy"], {})
    assert str(error.value) == ("--student amy, zed: not among the submissions given (found: s00, s01, s02, s03, s04, "
                                "s05, s06, s07, s08, s09)")


def test_the_gradebook_may_not_overwrite_a_submission_but_a_link_to_it_is_only_a_link(tmp_path):
    """--out (or its JSON) that is a submission's own path stops the grading; a submission that is a symbolic link to
    the gradebook is compared by its own path (a refused submission, not a reason to stop)."""
    (tmp_path / "g.csv").write_text("")
    (tmp_path / "sub").mkdir()
    link = tmp_path / "sub" / "x.ipynb"
    link.symlink_to(tmp_path / "g.csv")
    grader._check_out_paths([Submission("x", link, None)], tmp_path / "g.csv", None)
    for clash in (tmp_path / "g.csv", tmp_path / "g.json", tmp_path / "sub" / ".." / "g.json"):
        with pytest.raises(GradingError, match="^--out would overwrite a submission: "):
            grader._check_out_paths([Submission("a", Path("a.ipynb"), None), Submission("x", clash, None)],
                                    tmp_path / "g.csv", None)
    grader._check_out_paths([Submission("x", tmp_path / "g.json", None)], tmp_path / "g.csv", tmp_path / "other.json")


def test_the_tasks_are_the_readable_submissions_answers_and_a_failure_to_take_them_is_a_problem():
    """A task per submission without a problem: its answers, with its notes kept by student; a submission whose answer
    cells cannot be taken gets that problem (the exception said) and no task."""
    def answering(student, fails=False, problem=None):
        def answers(chapter):
            if fails:
                raise KeyError("a1")
            return {"a1": [student]}, [f"note {student}"]
        return SimpleNamespace(student=student, problem=problem, answers=answers)
    found = [answering("al"), answering("bo", fails=True), answering("cy", problem="too large"), answering("dan")]
    tasks, notes = grader._tasks(found, "CH")
    assert tasks == [("al", {"a1": ["al"]}), ("dan", {"a1": ["dan"]})]
    assert notes == {"al": ["note al"], "dan": ["note dan"]}
    assert found[1].problem == "the grader could not take the answer cells (KeyError: 'a1')"
    assert found[2].problem == "too large"


def test_a_file_changed_while_graded_is_a_warning(tmp_path):
    """A submission whose file now hashes otherwise (or is gone) changed while it was graded: a warning; one that
    was not read (no hash) is not checked."""
    import hashlib
    same, changed = tmp_path / "same.ipynb", tmp_path / "changed.ipynb"
    same.write_text("{}")
    changed.write_text("{} ")
    digest = hashlib.sha256(b"{}").hexdigest()
    found = [Submission("a", same, digest), Submission("b", changed, digest),
             Submission("c", tmp_path / "gone", digest), Submission("d", tmp_path / "gone", None)]
    assert grader._changed_files(found) == [
        f"{changed} changed while it was being graded (graded: the version read first)",
        f"{tmp_path / 'gone'} changed while it was being graded (graded: the version read first)"]


class PoolStub:
    def __init__(self, mode="sandbox", detail="bwrap", isolation="auto", fail=None):
        self.mode, self.detail, self.isolation, self.hunt_key, self.fail = mode, detail, isolation, "unset", fail
        self.graded, self.closed, self.killed = [], False, False

    def grade(self, chapter, tasks, limits, on_result=None):
        self.graded.append([key for key, _ in tasks])
        if self.fail is not None:
            raise self.fail
        results = {key: {e.id: {"points": e.points, "status": "passed", "feedback": ""} for e in chapter.auto_exercises}
                   for key, _ in tasks}
        for key, exercises in results.items():
            on_result(key, exercises)
        return results

    def close(self):
        self.closed = True

    def kill(self):
        self.killed = True


@pytest.mark.parametrize("jobs, tasks, cores, workers", [(None, 3, 16, 3), (None, 20, 16, 8), (None, 5, 2, 2),
                                                         (2, 3, 16, 2), (6, 3, 16, 3), (None, 0, 4, 1)])
def test_a_pool_of_its_own_has_no_more_workers_than_submissions(monkeypatch, jobs, tasks, cores, workers):
    """A grading that makes its own pool starts --jobs workers (default one per core, at most 8) but never more than
    submissions to grade (at least one), in the course notebook's folder, with the isolation asked; it closes the
    pool after, and returns the results and the pool's isolation mode."""
    made = []

    def make(jobs, isolation, cwd):
        made.append((jobs, isolation, cwd))
        stub = PoolStub()
        made.append(stub)
        return stub
    monkeypatch.setattr(grader, "Grader", make)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    chapter = chapter_of(exercise("e1"), path=Path("/course/solutions/01.ipynb"))
    found = grader._run_pool(None, chapter, [(f"s{i}", {}) for i in range(tasks)], Limits(), jobs, SANDBOX, False, 0)
    assert made[0] == (workers, SANDBOX, Path("/course/solutions"))
    assert made[1].closed and found[2:] == ("sandbox", "bwrap") and len(found[0]) == tasks


def test_a_given_pool_is_used_not_closed_and_told_the_hunt_key():
    """A pool given is used as it is and left open; it is told the hunt key (as text, or None); no task, no grading."""
    stub = PoolStub()
    chapter = chapter_of(exercise("e1"))
    assert grader._run_pool(stub, chapter, [], Limits(), None, "auto", False, 0) == ({}, {}, "sandbox", "bwrap")
    assert stub.graded == [] and stub.hunt_key is None and not stub.closed
    grader._run_pool(stub, chapter, [("al", {})], Limits(), None, "auto", False, 0, Path("/k/key.json"))
    assert stub.graded == [["al"]] and stub.hunt_key == "/k/key.json" and not stub.closed


@pytest.mark.parametrize("own", [True, False])
def test_ctrl_c_kills_an_own_pool_at_once(monkeypatch, own):
    """Ctrl-C while grading kills the workers of a pool the grading made itself (then closes it) and is raised again;
    a pool given is neither killed nor closed."""
    stub = PoolStub(fail=KeyboardInterrupt())
    monkeypatch.setattr(grader, "Grader", lambda jobs, isolation, cwd: stub)
    with pytest.raises(KeyboardInterrupt):
        grader._run_pool(None if own else stub, chapter_of(exercise("e1")), [("al", {})], Limits(), 1, "auto", False, 0)
    assert (stub.killed, stub.closed) == (own, own)


def test_the_progress_bar_counts_every_submission_and_shows_the_last_student(monkeypatch):
    """With progress, a bar totals the tasks and the submissions skipped (counted done at once), named for the
    chapter; each result advances it by one and shows the student (20 characters at most, escaped); it is closed.
    Without tasks there is no bar."""
    import tqdm.auto
    bars = []

    class Bar:
        def __init__(self, **kwargs):
            self.kwargs, self.updates, self.postfix, self.closed = kwargs, [], [], False
            bars.append(self)

        def update(self, n):
            self.updates.append(n)

        def set_postfix_str(self, text):
            self.postfix.append(text)

        def close(self):
            self.closed = True
    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    stub = PoolStub()
    chapter = chapter_of(exercise("e1"))
    grader._run_pool(stub, chapter, [], Limits(), None, "auto", True, 3)
    assert bars == []
    grader._run_pool(stub, chapter, [("a" * 30, {}), ("b\n", {})], Limits(), None, "auto", True, 3)
    [bar] = bars
    assert (bar.kwargs["total"], bar.kwargs["desc"], bar.kwargs["unit"]) == (5, "grading 01", "notebook")
    assert bar.updates == [3, 1, 1] and bar.postfix == ["a" * 20, "'b\\n'"] and bar.closed
    grader._run_pool(stub, chapter, [("c", {})], Limits(), None, "auto", False, 3)
    assert len(bars) == 1


# -- grade_paths, with a course and a pool that are not processes ----------------------------------------

@pytest.fixture
def small_course(tmp_path):
    chapter = chapter_of(exercise("e1", 2.0, answer_ids=("a1",)), exercise("e2", 1.0, answer_ids=("a2",)),
                         answer_order=["a1", "a2"], path=tmp_path / "solutions" / "01.ipynb")
    return Course(root=tmp_path, notebooks={"01": chapter.path}, _chapters={"01": chapter},
                  _grade_ids={"01": chapter.grade_ids})


def answered(student: str, problem: str | None = None, day: int = 1) -> Submission:
    return Submission(student, Path(f"/class/{student}.ipynb"), None, problem=problem,
                      cells=[cell(0, "x = 1", "a1"), cell(1, "y = 1", "a2")],
                      submitted_at=datetime(2025, 3, day, tzinfo=timezone.utc), time_source="--timestamps")


def grade(monkeypatch, course, found, **kwargs):
    monkeypatch.setattr(grader, "_collect", lambda paths, course, students, times: list(found))
    kwargs.setdefault("grader", PoolStub())
    return grader.grade_paths(kwargs.pop("paths", ["/class"]), chapter=kwargs.pop("chapter", "01"), course=course,
                              progress=False, **kwargs)


def test_grading_asks_for_an_out_file_to_update_and_for_submissions_otherwise(tmp_path, monkeypatch):
    """``grade_paths`` refuses an update without ``out``, and a grading without submissions, before reading the
    course; an existing gradebook is refused before grading unless overwritten or updated."""
    monkeypatch.setattr(grader, "find_course", lambda: pytest.fail("read the course"))
    with pytest.raises(GradingError, match="^--update needs --out: the gradebook to update$"):
        grader.grade_paths([], update=True)
    with pytest.raises(GradingError, match=r"^give the submissions to grade \(notebooks or folders\)$"):
        grader.grade_paths([])
    (tmp_path / "g.json").write_text("{}")
    with pytest.raises(FileExistsError):
        grader.grade_paths(["x"], out=tmp_path / "g.csv")
    with pytest.raises(GradingError, match="is not a gradebook written by pgcourse grade"):
        grader.grade_paths([], out=tmp_path / "g.csv", update=True)


def test_a_grading_gives_each_student_a_row_with_the_pools_results_and_lateness(tmp_path, monkeypatch, small_course):
    """A grading gives each submission a row (sorted by student) with the pool's points, the late penalty of the
    assignment's policy, the pool's isolation; a submission with a problem is not sent to the pool; the gradebook
    is written at ``out``."""
    stub = PoolStub()
    policy = LatePolicy.parse("2025-03-02T00:00:00+00:00", "50%", None)
    report = grade(monkeypatch, small_course, [answered("bo", day=3), answered("al"), answered("cy", "too large")],
                   grader=stub, out=tmp_path / "g.csv", assignment=Assignment(policy=policy))
    assert stub.graded == [["al", "bo"]]
    assert [(r.student, r.earned, r.penalty, r.total) for r in report.students] == [
        ("al", 3.0, 0.0, 3.0), ("bo", 3.0, 1.5, 1.5), ("cy", 0, 0.0, 0)]
    assert (report.isolation, report.isolation_detail, report.policy, report.name) == ("sandbox", "bwrap", policy, "01")
    assert json.loads((tmp_path / "g.json").read_text())["students"][1]["penalty"] == 1.5


def test_a_grading_with_nothing_to_send_says_no_worker_was_needed(monkeypatch, small_course):
    """When no submission needs a worker (every one has a problem), the isolation is "none" and says so."""
    monkeypatch.setattr(grader, "Grader", lambda jobs, isolation, cwd: PoolStub(mode="", detail=""))
    report = grade(monkeypatch, small_course, [answered("al", "a symlink")], grader=None)
    assert (report.isolation, report.isolation_detail) == ("none", "no submission needed a worker")


def test_a_file_that_appears_at_out_while_grading_is_kept_and_said(tmp_path, monkeypatch, small_course):
    """A gradebook file that appears at ``out`` during the grading (not this run's) is kept in the history and
    warned about; the one that did not appear is not."""
    out = tmp_path / "g.csv"

    class Appearing(PoolStub):
        def grade(self, chapter, tasks, limits, on_result=None):
            out.write_text("planted")
            return super().grade(chapter, tasks, limits, on_result)
    report = grade(monkeypatch, small_course, [answered("al")], grader=Appearing(), out=out)
    assert report.warnings == [f"{out} appeared while grading (not written by this run); kept in the history"]
    assert [p.read_text() for p in (tmp_path / "g.history").iterdir()] == ["planted"]


@pytest.mark.parametrize("pool_isolation, isolation", [(UNSAFE, "auto"), ("auto", UNSAFE)])
def test_a_hunt_key_is_never_used_without_the_sandbox(monkeypatch, small_course, pool_isolation, isolation):
    """A bug-hunt key with the sandbox off (asked for, or the pool's) is refused before any grading: a student's code
    could read the key."""
    monkeypatch.setattr(grader, "check_hunt_key", lambda path: Path("/k/key.json"))
    stub = PoolStub(isolation=pool_isolation)
    with pytest.raises(GradingError, match="^--hunt-key with --unsafe-no-sandbox: "):
        grade(monkeypatch, small_course, [answered("al")], grader=stub, isolation=isolation, hunt_key="k")
    assert stub.graded == []


def test_a_hunt_key_tells_whose_hunts_were_made(monkeypatch, tmp_path):
    """With a hunt key, the students it has hunts for are those of its ``students``; the others' rows say they have
    none; a submission with a problem gets no hunt note."""
    import types
    monkeypatch.setattr(grader, "check_hunt_key", lambda path: Path("/k/key.json"))
    monkeypatch.setitem(sys.modules, "pgcourse.classroom.hunts",
                        types.SimpleNamespace(read_key=lambda path: {"students": {"al": {}}}))
    chapter = chapter_of(exercise("ch06_mystery_1", answer_ids=("a1",)), answer_order=["a1"],
                         path=tmp_path / "06.ipynb")
    course = Course(root=tmp_path, notebooks={"06": chapter.path}, _chapters={"06": chapter},
                    _grade_ids={"06": chapter.grade_ids})
    report = grade(monkeypatch, course, [answered("al"), answered("bo"), answered("cy", "too large")], chapter="06",
                   hunt_key="k")
    assert [any("has no hunt made for" in n for n in r.notes) for r in report.students] == [False, True, False]
    assert report.warnings[-1] == "the bug hunt: /k/key.json has no hunt for 2 student(s), whose mysteries scored 0: " \
                                  "'bo', 'cy'"


def test_a_roster_adds_the_students_who_handed_in_nothing_unless_students_are_named(monkeypatch, small_course):
    """With a roster, its students no row is get a "no submission" row; not when only some students are graded."""
    entry = SimpleNamespace()
    roster = SimpleNamespace(entries=[entry], source="class.csv", candidates=lambda student, identity: [],
                             student_of=lambda e: ("zoe", {"email": "z@x"}))
    report = grade(monkeypatch, small_course, [answered("al")], roster=roster)
    assert [(r.student, r.no_submission) for r in report.students] == [("al", False), ("zoe", True)]
    report = grade(monkeypatch, small_course, [answered("al")], roster=roster, students=["al"])
    assert [r.student for r in report.students] == ["al"]


@pytest.fixture
def graded_book(tmp_path, monkeypatch, small_course):
    """A gradebook at tmp_path/g.csv of students al, bo (e1 worth 2, e2 worth 1)."""
    out = tmp_path / "g.csv"
    grade(monkeypatch, small_course, [answered("al"), answered("bo")], out=out)
    return out


def test_an_update_keeps_the_gradebooks_points_and_says_when_they_moved(monkeypatch, small_course, graded_book):
    """An update grading nobody keeps every row; points given now win over the gradebook's, the others are the
    gradebook's (not the course notebook's); when an exercise's points moved, the notice says so for the rows not
    graded now."""
    small_course._chapters["01"] = chapter_of(exercise("e1", 5.0, answer_ids=("a1",)),
                                              exercise("e2", 4.0, answer_ids=("a2",)), answer_order=["a1", "a2"],
                                              path=small_course.notebooks["01"])
    stub = PoolStub()
    report = grade(monkeypatch, small_course, [], paths=[], out=graded_book, update=True, grader=stub,
                   assignment=Assignment(points={"e1": 3.0}))
    assert stub.graded == [] and [r.student for r in report.students] == ["al", "bo"]
    assert [e.points for e in report.chapter.exercises] == [3.0, 1.0]
    assert report.notices == ["the exercises' points changed (e1 2 → 3): the 2 student(s) not graded now keep the "
                              "points they earned before (a passed exercise is not worth the new points): grade the "
                              "class again (--overwrite) to apply them"]
    report = grade(monkeypatch, small_course, [], paths=[], out=graded_book, update=True, grader=stub)
    assert [e.points for e in report.chapter.exercises] == [3.0, 1.0] and report.notices == []


@pytest.mark.parametrize("count", [10, 11])
def test_an_update_for_a_student_not_in_the_gradebook_is_refused_naming_its_students(monkeypatch, small_course,
                                                                                      tmp_path, count):
    """Updating named students without grading: each must be in the gradebook; the error lists the unknown ones and
    the gradebook's students (sorted, ten at most, then an ellipsis when there are more)."""
    out = tmp_path / "g.csv"
    grade(monkeypatch, small_course, [answered(f"s{i:02d}") for i in range(count)], out=out)
    with pytest.raises(GradingError) as error:
        grade(monkeypatch, small_course, [], paths=[], out=out, update=True, students=["zed", "s01", "amy"])
    known = ", ".join(f"s{i:02d}" for i in range(10)) + (" …" if count > 10 else "")
    where = tmp_path / "g.json"
    assert str(error.value) == f"--student amy, zed: not in the gradebook {where} (its students: {known})"


def test_an_update_that_grades_submissions_may_add_a_student_new_to_the_gradebook(monkeypatch, small_course,
                                                                                   graded_book):
    """Grading submissions into a gradebook (--update --student with the files) may add a student it does not have
    yet: only an update that grades nothing needs its students to be in the gradebook."""
    report = grade(monkeypatch, small_course, [answered("cy")], out=graded_book, update=True, students=["cy"])
    assert [r.student for r in report.students] == ["al", "bo", "cy"]


def test_points_moved_while_every_row_is_graded_again_need_no_notice(monkeypatch, small_course, graded_book):
    """When every row of the gradebook is graded now, new points reach them all: no notice about kept points."""
    report = grade(monkeypatch, small_course, [answered("al"), answered("bo")], out=graded_book, update=True,
                   assignment=Assignment(points={"e1": 3.0}))
    assert report.notices == [] and [e.points for e in report.chapter.exercises] == [3.0, 1.0]
    assert [r.total for r in report.students] == [4.0, 4.0]


def test_an_overwritten_gradebook_is_no_file_that_appeared(monkeypatch, small_course, graded_book):
    """With overwrite, an existing gradebook at ``out`` is replaced (its previous version kept) without a warning that
    it appeared while grading."""
    report = grade(monkeypatch, small_course, [answered("al")], out=graded_book, overwrite=True)
    assert report.warnings == [] and len(list((graded_book.parent / "g.history").iterdir())) == 2


def test_a_manual_file_changes_only_the_students_named(monkeypatch, small_course, graded_book, tmp_path):
    """With --student, the manual file's rows of other students are not applied (a notice names them, five at most);
    the named student's are."""
    manual = tmp_path / "m.csv"
    manual.write_text("student,exercise,points,comment\nal,e1,1,ok\n" + "".join(f"{s},e1,1,x\n" for s in "fedcbz"))
    report = grade(monkeypatch, small_course, [], paths=[], out=graded_book, update=True, students=["al"],
                   manual=manual)
    assert report.student("al").exercises["e1"].teacher_points == 1.0
    assert report.student("bo").exercises["e1"].teacher_points is None
    assert report.notices == [f"--manual {manual}: the rows of 6 student(s) not given with --student were not applied "
                              "(b, c, d, e, f …)"]
    manual.write_text("student,exercise,points,comment\nal,e1,1,ok\nbo,e1,0.5,x\n")
    report = grade(monkeypatch, small_course, [], paths=[], out=graded_book, update=True, students=["al"],
                   manual=manual)
    assert report.notices == [f"--manual {manual}: the rows of 1 student(s) not given with --student were not applied "
                              "(bo)"]
    report = grade(monkeypatch, small_course, [], paths=[], out=graded_book, update=True, manual=manual)
    assert report.student("bo").exercises["e1"].teacher_points == 0.5 and report.notices == []


def test_an_update_lists_the_totals_it_changed(monkeypatch, small_course, graded_book, tmp_path):
    """An update's report lists the totals it changed (here by the teacher's points)."""
    manual = tmp_path / "m.csv"
    manual.write_text("student,exercise,points,comment\nal,e1,1,ok\n")
    report = grade(monkeypatch, small_course, [], paths=[], out=graded_book, update=True, manual=manual)
    assert report.changes == [("al", 3, 2.0, "your points for e1")]


def test_the_stored_late_policy_is_the_gradebooks_or_none(tmp_path, monkeypatch, small_course):
    """``stored_policy``: the late policy of the gradebook at ``out``; none when there is no gradebook to read (or it
    is not one); a gradebook without a policy has the empty policy."""
    out = tmp_path / "g.csv"
    assert grader.stored_policy(out, None) is None
    (tmp_path / "g.json").write_text('{"students": []}')
    assert grader.stored_policy(out, None) is None
    with pytest.raises(GradingError, match=f"^{tmp_path / 'g.json'} is not a gradebook written by pgcourse grade$"):
        grader._previous_gradebook(out, None)
    (tmp_path / "g.json").write_text('["chapter"]')
    with pytest.raises(GradingError, match="is not a gradebook written by pgcourse grade"):
        grader._previous_gradebook(out, None)
    (tmp_path / "g.json").write_text('{"chapter": "01"}')
    assert grader.stored_policy(out, None) == LatePolicy()
    policy = LatePolicy.parse("2025-03-02T00:00:00+00:00", "10%/day", "15m")
    (tmp_path / "other.json").write_text(json.dumps({"chapter": "01", "late_policy": policy.to_json()}))
    assert grader.stored_policy(out, tmp_path / "other.json") == policy


# -- merging an update into the gradebook ----------------------------------------------------------------

D1, D2, D3 = "2025-03-01T00:00:00+00:00", "2025-03-08T00:00:00+00:00", "2025-03-15T00:00:00+00:00"


def merge_chapter(points: float = 2.0) -> Chapter:
    return chapter_of(exercise("e1", points, answer_ids=("a1",)), answer_order=["a1"])


def merge_row(student: str, points: float = 2.0, **fields) -> StudentResult:
    return StudentResult(student, f"{student}.ipynb", None, {"e1": ExerciseResult(points, 2.0, "passed", "",
                                                                                  graded_points=points)}, **fields)


def merge_report(rows, policy=None, isolation="sandbox", detail="bwrap", warnings=(), assignment="", points=2.0,
                 hide=False):
    return GradeReport(merge_chapter(points), list(rows), Limits(), isolation, detail, 1.0, list(warnings), assignment,
                       policy or LatePolicy(), hide_expected=hide)


def test_a_merge_replaces_the_rows_graded_now_and_keeps_the_teachers_points_and_own_settings():
    """Rows graded now replace theirs, keeping the teacher's points and the student's own late settings (a copy);
    a class-list "no submission" row of the same LMS user (same email) gives way to the new row; the others are
    kept (a graded row of the same user too: only a "no submission" row gives way); the rows come out sorted, with
    the exercise points of this run."""
    old_al = merge_row("al", 1.0, late_policy={"deadline": D2})
    old_al.exercises["e1"].teacher_points = 1.5
    previous = merge_report([old_al, merge_row("bo", 0, identity={"email": "b@x.org"}, no_submission=True),
                             merge_row("cy", 1.0, identity={"email": "c@x"}),
                             merge_row("dan", 0, identity={"email": "d@x"}, no_submission=True)])
    now = merge_report([merge_row("al", 2.0), merge_row("bo2", 2.0, identity={"email": "b@x.org"}),
                        merge_row("cy2", 2.0, identity={"email": "c@x"})], points=4.0)
    merged = grader._merge(previous, now, Assignment(), None, None, {})
    assert [r.student for r in merged.students] == ["al", "bo2", "cy", "cy2", "dan"]
    al = merged.student("al")
    assert al is now.students[0] and al.exercises["e1"].teacher_points == 1.5 and al.exercises["e1"].points == 1.5
    assert al.late_policy == {"deadline": D2} and al.late_policy is not old_al.late_policy
    assert {r.student: r.exercises["e1"].max_points for r in merged.students} == dict.fromkeys(
        ["al", "bo2", "cy", "cy2", "dan"], 4.0)


@pytest.mark.parametrize("now_isolation, expected", [("none", ("sandbox", "bwrap")), ("unsafe", ("unsafe", "now"))])
def test_a_merge_says_the_isolation_of_the_grading_that_ran_and_drops_warnings_said_afresh(now_isolation, expected):
    """The merged report's isolation is this run's when it graded something, else the gradebook's; the gradebook's
    warnings about a student graded now and about untrusted times are dropped (said afresh), its others kept
    before this run's; the assignment name is this run's or else the gradebook's; hide_expected is this run's."""
    from pgcourse.classroom.grading.timing import UNTRUSTED_TIMES
    previous = merge_report([merge_row("al"), merge_row("cy")], warnings=[
        "student 'al': two files", "student 'cy': two files", UNTRUSTED_TIMES + "2 students", "general",
        "student 'alan': x"], assignment="hw")
    now = merge_report([merge_row("al")], isolation=now_isolation, detail="now", warnings=["new"], hide=True)
    merged = grader._merge(previous, now, Assignment(), None, None, {})
    assert (merged.isolation, merged.isolation_detail) == expected
    assert merged.warnings == ["student 'cy': two files", "general", "student 'alan': x", "new"]
    assert (merged.assignment, merged.hide_expected, merged.seconds) == ("hw", True, 1.0)
    now.assignment = "HW2"
    assert grader._merge(previous, now, Assignment(), None, None, {}).assignment == "HW2"


def test_the_late_changes_of_an_api_merge_are_where_the_assignments_policy_differs():
    """Without explicit late changes (the API), the class's policy becomes the assignment's when it has a deadline
    and differs from the gradebook's; an assignment without a deadline leaves the gradebook's policy."""
    before = LatePolicy.parse(D1, "10%", None)
    previous = merge_report([merge_row("al")], policy=before)
    now = merge_report([])
    moved = LatePolicy.parse(D2, "10%", None)
    assert grader._merge(previous, now, Assignment(policy=moved), None, None, {}).policy == moved
    assert grader._merge(previous, now, Assignment(), None, None, {}).policy == before
    same = LatePolicy.parse(D1, "10%", None)
    assert grader._merge(previous, now, Assignment(policy=same), None, None, {}).policy == before


def test_a_class_wide_late_change_drops_the_own_settings_it_equals_and_names_the_ones_it_does_not():
    """A late change for the whole class makes the assignment's policy the class's; a student's own setting equal to
    the class's new one is dropped; one of a changed setting that differs stays, and a notice names it (as a
    teacher writes it) and how to remove it; an own setting the change does not touch stays silently."""
    previous = merge_report([merge_row("al", late_policy={"deadline": D2}), merge_row("cy", late_policy={
        "deadline": D3}), merge_row("dan", late_policy={"grace_s": 900.0})], policy=LatePolicy.parse(D1, None, None))
    policy = LatePolicy.parse(D2, None, None)
    merged = grader._merge(previous, merge_report([]), Assignment(policy=policy), None, {"deadline": D2}, {})
    assert merged.policy == policy
    assert {r.student: r.late_policy for r in merged.students} == {"al": {}, "cy": {"deadline": D3},
                                                                   "dan": {"grace_s": 900.0}}
    assert merged.notices == [f"cy keeps their own deadline {D3} (give --update --student cy with the class's setting "
                              "to remove it)"]
    merged = grader._merge(previous, merge_report([]), Assignment(policy=policy), None, {}, {})
    assert merged.policy == previous.policy  # no change given: the gradebook's policy


def test_a_late_change_for_named_students_is_their_extension():
    """With --student, a late change becomes those students' own setting (one equal to the class's is removed); the
    class keeps its policy; the other students are not touched."""
    previous = merge_report([merge_row("al", late_policy={"grace_s": 60.0}), merge_row("bo")],
                            policy=LatePolicy.parse(D1, None, None))
    class_json = previous.policy.to_json()
    merged = grader._merge(previous, merge_report([]), Assignment(), ["al"],
                           {"deadline": D2, "grace_s": class_json["grace_s"]}, {})
    assert merged.policy == previous.policy
    assert merged.student("al").late_policy == {"deadline": D2} and merged.student("bo").late_policy == {}
    previous = merge_report([merge_row("al", late_policy={"grace_s": 60.0, "deadline": D3}), merge_row("bo")],
                            policy=LatePolicy.parse(D1, None, None))
    merged = grader._merge(previous, merge_report([]), Assignment(), ["al"], {"deadline": D1}, {})
    assert merged.student("al").late_policy == {"grace_s": 60.0}


def test_a_merge_applies_the_lms_times_to_the_rows_not_graded_now_and_only_the_named():
    """The LMS's times reach the rows not graded now (only the named students' with --student), and the late
    policy is applied to every row."""
    at = datetime(2025, 3, 5, tzinfo=timezone.utc)
    times = {"al": at, "bo": at, "cy": at}
    previous = merge_report([merge_row("al"), merge_row("bo"), merge_row("cy")], policy=LatePolicy.parse(D1, "50%",
                                                                                                       None))
    fresh = merge_row("al")
    merged = grader._merge(previous, merge_report([fresh]), Assignment(), None, None, times)
    assert [(r.student, r.time_source, r.penalty) for r in merged.students] == [
        ("al", "", 0.0), ("bo", "--timestamps", 1.0), ("cy", "--timestamps", 1.0)]
    previous = merge_report([merge_row("al"), merge_row("bo")], policy=LatePolicy.parse(D1, "50%", None))
    merged = grader._merge(previous, merge_report([]), Assignment(), ["bo"], {}, times)
    assert [(r.student, r.time_source) for r in merged.students] == [("al", ""), ("bo", "--timestamps")]


@pytest.mark.parametrize("key, value, text", [("grace_s", 900, "grace 15 min"), ("grace_s", "90", "grace 1.5 min"),
                                              ("deadline", D1, f"deadline {D1}"), ("late_penalty", "",
                                                                                   "late penalty none"),
                                              ("late_penalty", "10%/day", "late penalty 10%/day")])
def test_a_late_setting_is_said_as_a_teacher_gives_it(key, value, text):
    """Grace in minutes (``:g``), the other settings by name with spaces, an empty one as "none"."""
    assert grader._setting(key, value) == text


@pytest.mark.parametrize("a, b, same", [
    ({"lms": "canvas", "lms_id": "7"}, {"lms": "canvas", "lms_id": "7"}, True),
    ({"lms": "canvas", "lms_id": "7"}, {"lms": "moodle", "lms_id": "7"}, False),
    ({"lms": "canvas", "lms_id": "7"}, {"lms": "canvas", "lms_id": "8"}, False),
    ({"lms": "", "lms_id": "7"}, {"lms": "", "lms_id": "7"}, False),
    ({"lms": "canvas", "lms_id": ""}, {"lms": "canvas", "lms_id": ""}, False),
    ({"email": "a@x"}, {"email": "a@x"}, True),
    ({"email": ""}, {"email": ""}, False),
    ({"email": "a@x"}, {"email": "A@x"}, False),
    ({"id_number": "12"}, {"id_number": "12"}, True),
    ({"email": "a@x", "id_number": "1"}, {"email": "b@x", "id_number": "1"}, True),
    ({}, {}, False),
], ids=["canvas-id", "other-lms", "other-id", "no-lms", "no-id", "email", "empty-email", "email-case", "id-number",
        "one-of-two", "nothing"])
def test_two_identities_are_one_lms_user_by_lms_and_id_or_email_or_id_number(a, b, same):
    """Two rows are one LMS user when they have the same LMS and the same (non-empty) user id, or the same non-empty
    email, or the same non-empty ID number."""
    assert grader._same_lms_user(a, b) is same
    assert grader._same_lms_user(b, a) is same


def change_row(student: str, points: float, file: str = "x.ipynb", penalty: float = 0.0, teacher: float | None = None,
               max_points: float = 5.0, eid: str = "e1") -> StudentResult:
    row = StudentResult(student, file, None, {eid: ExerciseResult(points, max_points, "passed", "",
                                                                  teacher_points=teacher)}, penalty=penalty)
    return row


def test_an_update_says_for_each_changed_total_why():
    """Each total an update changed is listed (student, before, after, why): graded again (naming the new file when
    it is another), the teacher's points (for a student not graded again), the exercises' points, a late penalty
    (also a note for a student not graded again); else just "points". A total unchanged with an unchanged penalty,
    and a new student, are not listed (the same total with another penalty is)."""
    before = {"al": change_row("al", 1, "old.ipynb"), "bo": change_row("bo", 1), "cy": change_row("cy", 1),
              "dan": change_row("dan", 1), "eve": change_row("eve", 3), "gus": change_row("gus", 4),
              "hal": change_row("hal", 2), "ivy": change_row("ivy", 2, teacher=2), "kim": change_row("kim", 4)}
    rows = [change_row("al", 2, "sub/new.ipynb"), change_row("bo", 2), change_row("cy", 3, teacher=3),
            change_row("dan", 2, max_points=6.0), change_row("eve", 3), change_row("fay", 1),
            change_row("gus", 4, penalty=1.0), change_row("hal", 1, eid="e9"), change_row("ivy", 3, teacher=3),
            change_row("kim", 5, penalty=1.0)]
    report = merge_report(rows)
    report.submissions = [SimpleNamespace(student=s) for s in ("al", "bo", "dan", "ivy", "kim")]
    found = grader._changes(before, LatePolicy(), report)
    assert found == [("al", 1, 2, "graded again (new.ipynb)"), ("bo", 1, 2, "graded again"),
                     ("cy", 1, 3, "your points for e1"), ("dan", 1, 2, "graded again; the exercises' points changed"),
                     ("gus", 4, 3.0, "late penalty 0 → 1 (late policy: no deadline)"), ("hal", 2, 1, "points"),
                     ("ivy", 2, 3, "graded again"),
                     ("kim", 4, 4.0, "graded again; late penalty 0 → 1 (late policy: no deadline)")]
    assert report.student("gus").notes == ["late penalty changed from 0 to 1 point(s): late policy: no deadline"]
    assert report.student("al").notes == []


def test_a_late_penalty_change_for_a_student_graded_again_is_no_extra_note():
    """A student graded again gets no note about their penalty (their notes are new and say when they handed in)."""
    report = merge_report([change_row("al", 4, penalty=1.0)])
    report.submissions = [SimpleNamespace(student="al")]
    assert grader._changes({"al": change_row("al", 4)}, LatePolicy(), report)[0][3] == \
        "graded again; late penalty 0 → 1 (late policy: no deadline)"
    assert report.student("al").notes == []


def test_the_class_lists_students_without_a_row_get_a_no_submission_row():
    """Each roster entry that no row could be gets a row: 0 points, every exercise "missing" (no grader points for a
    free-text one, 0 for the others), "no submission" as its problem and a warning naming the roster's file; a
    name already taken gets the LMS id, else the email, else the ID number; the rows end sorted."""
    claimed, free, clash, clash2, clash3 = (SimpleNamespace(n=i) for i in range(5))
    given = {id(free): ("cy", {"email": "c@x"}), id(clash): ("al", {"lms_id": "77", "email": "e"}),
             id(clash2): ("cy", {"email": "c2@x", "id_number": "9"}), id(clash3): ("al", {"id_number": "5"})}
    roster = SimpleNamespace(entries=[claimed, free, clash, clash2, clash3], source="/lms/class.csv",
                             candidates=lambda student, identity: [claimed] if student == "al" else [],
                             student_of=lambda entry: given[id(entry)])
    chapter = chapter_of(exercise("e1", 2.0), exercise("m", 1.0, kind="manual", answer_ids=("m",)))
    report = GradeReport(chapter, [merge_row("zed"), merge_row("al")], Limits(), "none", "", 0.0)
    grader._add_non_submitters(report, roster)
    assert [r.student for r in report.students] == ["al", "al (5)", "al (77)", "cy", "cy (c2@x)", "zed"]
    row = report.student("cy")
    assert (row.no_submission, row.identity, row.file, row.sha256, row.total) == (True, {"email": "c@x"}, "", None, 0)
    assert row.problem == "no submission: on the class list (--roster class.csv), nothing was handed in"
    assert {k: (r.points, r.max_points, r.status, r.feedback, r.graded_points) for k, r in row.exercises.items()} == {
        "e1": (0, 2.0, "missing", "no submission: nothing was handed in", 0),
        "m": (0, 1.0, "missing", "no submission: nothing was handed in", None)}
    assert report.warnings[0] == ("student 'cy': on the class list (--roster class.csv), handed in nothing: 0 points, "
                                  "marked \"no submission\"")
    assert len(report.warnings) == 4


# -- the benchmark ---------------------------------------------------------------------------------------

def course_notebook(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "intro"},
             {"cell_type": "code", "metadata": {}, "source": "import x", "outputs": [1], "execution_count": 3},
             *({"cell_type": "code", "metadata": {"nbgrader": {"grade_id": g}}, "source": f"solution {g}",
                "outputs": ["o"], "execution_count": 1} for g in ("a1", "a2", "a3")),
             {"cell_type": "code", "metadata": {"nbgrader": {"grade_id": "e1_check"}}, "source": "check",
              "outputs": ["o"], "execution_count": 2}]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def bench_chapter(path: Path, reference: bool = True) -> Chapter:
    order = ["a1", "a2", "a3"]
    return chapter_of(exercise("e1", answer_ids=tuple(order)), answer_order=order, path=path,
                      reference={g: [f"right {g}"] for g in order} if reference else None,
                      stubs={g: [f"stub {g}", "more"] for g in order})


def test_a_synthetic_notebook_is_the_course_notebook_with_the_answers_given_and_no_outputs(tmp_path):
    """A synthetic submission: the course notebook with every code cell's outputs cleared, each answer cell holding
    the answer given or else the first stub source; other cells as they are."""
    chapter = bench_chapter(course_notebook(tmp_path / "solutions" / "01.ipynb"))
    notebook = grader.synthetic_notebook(chapter, {"a2": "mine"})
    sources = [c["source"] for c in notebook["cells"]]
    assert sources == ["intro", "import x", "stub a1", "mine", "stub a3", "check"]
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert "outputs" not in notebook["cells"][0]


@pytest.fixture
def bench_course(tmp_path):
    paths = {"00_intro": course_notebook(tmp_path / "exercises" / "00_intro.ipynb"),
             "01_reinforce": course_notebook(tmp_path / "solutions" / "01_reinforce.ipynb"),
             "02_a2c": course_notebook(tmp_path / "solutions" / "02_a2c.ipynb"),
             "03_ppo": course_notebook(tmp_path / "solutions" / "03_ppo.ipynb")}
    chapters = {name: bench_chapter(path, reference=name != "00_intro") for name, path in paths.items()}
    return Course(root=tmp_path, notebooks=paths, _chapters=chapters)


def test_the_benchmark_grades_count_notebooks_a_third_right_a_third_stubs_a_third_mixed(bench_course, monkeypatch):
    """``bench`` writes ``count`` notebooks student00..: number % 3 == 0 all right answers (the solution's), == 1 all
    stubs, == 2 the right answer at even positions; grades them (chapter 01_reinforce by default) and prints the
    summary and the time with the workers (--jobs, else one per core up to 8) and the cores."""
    seen = {}

    def grade_paths(paths, chapter, course, limits, jobs, progress):
        folder = Path(paths[0])
        for path in sorted(folder.iterdir()):
            cells = json.loads(path.read_text())["cells"]
            seen[path.name] = [c["source"] for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id", "")
                               .startswith("a")]
        seen["call"] = (chapter, course, jobs, progress)
        return SimpleNamespace(summary=lambda: "TABLE", students=[SimpleNamespace(student="s", total=2.0)])
    monkeypatch.setattr(grader, "grade_paths", grade_paths)
    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    out = io.StringIO()
    found = grader.bench(count=4, course=bench_course, stream=out)
    right, stub = [f"right {g}" for g in ("a1", "a2", "a3")], [f"stub {g}" for g in ("a1", "a2", "a3")]
    assert seen["student00.ipynb"] == right and seen["student01.ipynb"] == stub
    assert seen["student02.ipynb"] == ["right a1", "stub a2", "right a3"] and seen["student03.ipynb"] == right
    assert seen["call"] == ("01_reinforce", bench_course, None, True)
    assert found["chapter"] == "01_reinforce" and found["count"] == 4 and found["workers"] == 8
    assert found["totals"] == {"s": 2.0}
    text = out.getvalue()
    assert text.startswith("TABLE\n\nbenchmark: graded 4 submissions of 01_reinforce (1 exercises each) in ")
    assert text.endswith(" s with 8 worker(s) on 12 CPU core(s), start-up and self-test included\n")
    assert grader.bench(count=1, course=bench_course, jobs=3, stream=io.StringIO())["workers"] == 3


def test_the_benchmarks_chapter_is_the_one_asked_else_reinforce_else_the_first_solved(bench_course, monkeypatch):
    """The benchmark's chapter: the one asked (as a teacher types it), else 01_reinforce when it has a solution, else
    the first chapter with a solution, else the first; a chapter without a solution is refused."""
    monkeypatch.setattr(grader, "grade_paths",
                        lambda paths, chapter, **k: SimpleNamespace(summary=lambda: "", students=[]))
    assert grader.bench(count=0, chapter="2", course=bench_course, stream=io.StringIO())["chapter"] == "02_a2c"
    del bench_course.notebooks["01_reinforce"]
    assert grader.bench(count=0, course=bench_course, stream=io.StringIO())["chapter"] == "02_a2c"
    del bench_course.notebooks["02_a2c"], bench_course.notebooks["03_ppo"]
    with pytest.raises(GradingError, match="^00_intro has no solutions notebook to build right answers from$"):
        grader.bench(count=0, course=bench_course, stream=io.StringIO())


def test_the_pool_waits_no_longer_than_the_earliest_deadline_of_its_waiting_workers(monkeypatch):
    """Each wait of the pool lasts at most until the earliest deadline among the workers it waits on (a busy worker's
    submission deadline, a starting worker's start timeout), so a stuck worker is caught on time while another is
    slower to start or busier: with one worker busy on a short submission and another still starting, the wait is
    the short submission's, not the start timeout."""
    world = FakeWorld(monkeypatch, ready_at=lambda number: 1 if number == 0 else 4)
    checked = []

    def wait(conns, timeout):
        deadlines = [c.worker.deadline if c.worker.ready else c.worker.started + pool.Grader.START_TIMEOUT
                     for c in conns]
        checked.append((timeout, max(0.0, min(deadlines) - world.now)))
        return world.wait(conns, timeout)
    monkeypatch.setattr(pool, "wait", wait)
    limits = Limits(submission_s=4.0)
    pool.Grader(jobs=2).grade(two_auto_one_manual(), submissions(2), limits)
    assert all(timeout == earliest for timeout, earliest in checked), checked
    assert any(earliest < pool.Grader.START_TIMEOUT for _, earliest in checked[1:])  # a short deadline was waited on
