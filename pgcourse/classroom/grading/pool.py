"""The pool of grading workers, seen from ``pgcourse grade``: starting, feeding, replacing them.

Each worker is a fresh Python process (:func:`pgcourse.classroom.grading.worker.worker_main`) talking to this
process over a socket pair; :class:`Grader` sends it a chapter's self-test, then submissions, and
turns a worker that dies, stops answering or answers out of turn into the reason in the feedback.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from ..sandboxed.clock import wall_backstop
from .course import Chapter, GradingError
from .sandbox import SANDBOX, UNSAFE, Limits


# --------------------------------------------------------------------------------------------------
# The pool of grading workers
# --------------------------------------------------------------------------------------------------

def machine_load() -> str:
    """The load now, in words: ``load average 9.6 on 2 cores`` (where the system tells it)."""
    cores = os.cpu_count() or 1
    if not hasattr(os, "getloadavg"):
        return f"{cores} cores"
    return f"load average {os.getloadavg()[0]:.1f} on {cores} cores"


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0",
               SDL_VIDEODRIVER="dummy", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    return env


class _WorkerHandle:
    """A grading worker process (python -c 'from pgcourse.classroom.grading.worker import worker_main; ...')."""

    def __init__(self, isolation: str, cwd: Path | None):
        ours, theirs = socket.socketpair()
        self.log = tempfile.TemporaryFile()
        # The worker's runner folder is made and removed here: a worker killed (a timeout, Ctrl-C) cannot remove it.
        self.runner_folder = tempfile.mkdtemp(prefix="pgcourse-runner-")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", f"from pgcourse.classroom.grading.worker import worker_main; worker_main({theirs.fileno()})"],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
                env=_worker_env(), cwd=cwd, start_new_session=True)
        except BaseException:
            shutil.rmtree(self.runner_folder, ignore_errors=True)
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send({"op": "hello", "isolation": isolation, "runner_folder": self.runner_folder})
        self.ready = False
        self.isolation = ""
        self.detail = ""
        self.warm: set[str] = set()
        self.task: dict[str, Any] | None = None
        self.deadline: float | None = None
        self.started = time.monotonic()

    def log_tail(self) -> str:
        with contextlib.suppress(Exception):
            self.log.seek(0)
            return self.log.read().decode(errors="replace")[-2000:]
        return ""

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.log.close()
        shutil.rmtree(self.runner_folder, ignore_errors=True)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send({"op": "stop"})
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        self.kill()


class Grader:
    """A pool of trusted grading workers (one per CPU core by default); reuse it for several gradings.

    Each worker imports torch and the course package once, before any student code runs, and runs the
    chapter's own solution through the grader once (the self-test) before its first student of that
    chapter: a course whose solution does not score full points stops grading with the reason. A worker warms up
    only for a submission no other worker is warming up for (one late student is one self-test, not one per core).
    """

    START_TIMEOUT = 180.0

    def __init__(self, jobs: int | None = None, isolation: str = "auto", cwd: str | Path | None = None):
        if not hasattr(os, "fork") or sys.platform == "win32":
            raise GradingError("pgcourse grade needs Linux or macOS (it forks sandboxed student processes)")
        if isolation not in ("auto", SANDBOX, UNSAFE):
            raise GradingError(f"isolation must be auto, {SANDBOX} or {UNSAFE}")
        self.jobs = max(1, int(jobs or min(os.cpu_count() or 1, 8)))
        self.isolation = isolation
        self.cwd = Path(cwd) if cwd else None
        self.workers: list[_WorkerHandle] = []
        self.mode, self.detail = "", ""
        self.hunt_key: str | None = None  # the teacher's bug-hunt key (grade_paths' hunt_key), read by the workers
        self.reference_s: dict[str, dict[str, float]] = {}  # chapter key -> exercise -> the solution's seconds
        self.selftests: dict[str, int] = {}  # chapter key -> self-tests started (each runs the whole solution)

    def __enter__(self) -> Grader:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        while len(self.workers) < self.jobs:
            self.workers.append(_WorkerHandle(self.isolation, self.cwd))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def kill(self) -> None:
        """Stop every worker now (Ctrl-C): the submissions they hold are abandoned, not waited for (``close`` waits
        up to 5 s for each busy worker: 12 s after Ctrl-C with two workers)."""
        for worker in self.workers:
            worker.kill()
        self.workers = []

    def _replace(self, worker: _WorkerHandle) -> _WorkerHandle:
        worker.kill()
        fresh = _WorkerHandle(self.isolation, self.cwd)
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def grade(self, chapter: Chapter, submissions: list[tuple[str, dict[str, list[str]]]], limits: Limits,
              on_result: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
        """Grade ``(key, answers)`` pairs; returns {key: {exercise id: {points, status, feedback}}}."""
        self.start()
        spec, limit_dict = chapter.spec(), limits.to_dict()
        selftest_answers = chapter.reference if chapter.reference is not None else chapter.stubs
        pending = list(submissions)
        results: dict[str, dict[str, Any]] = {}
        hard_limit = wall_backstop(float(limits.submission_s))  # wall: the budgets inside are seconds of work
        while pending or any(w.task for w in self.workers):
            now = time.monotonic()
            # a cold worker self-tests only for work no warming worker will take: one submission left and two
            # workers is one self-test, not two (each self-test runs the whole solution)
            warming = sum(1 for w in self.workers if w.task is not None and w.task["key"] == "\0selftest")
            for worker in sorted(self.workers, key=lambda w: spec["key"] not in w.warm):  # warm workers first
                if not worker.ready or worker.task is not None:
                    continue
                if spec["key"] not in worker.warm:
                    if len(pending) <= warming:
                        continue
                    warming += 1
                    self.selftests[spec["key"]] = self.selftests.get(spec["key"], 0) + 1
                    task = {"op": "grade", "key": "\0selftest", "course": spec, "answers": selftest_answers,
                            "limits": limit_dict}
                elif pending:
                    key, answers = pending.pop(0)
                    task = {"op": "grade", "key": key, "course": spec, "answers": answers,
                            "limits": self._with_budgets(spec["key"], chapter, limits, limit_dict),
                            "hunt_key": self.hunt_key}
                else:
                    continue
                worker.task, worker.deadline = task, now + hard_limit
                worker.conn.send(task)
            waiting = [w for w in self.workers if w.task is not None or not w.ready]
            if not waiting:
                continue
            deadlines = [w.deadline if w.ready else w.started + self.START_TIMEOUT for w in waiting]
            timeout = max(0.0, min(deadlines) - time.monotonic())
            ready_conns = wait([w.conn for w in waiting], timeout=timeout)
            for worker in waiting:
                if worker.conn in ready_conns:
                    self._receive(worker, chapter, spec, results, on_result)
                elif time.monotonic() > (worker.deadline if worker.ready else worker.started + self.START_TIMEOUT):
                    self._fail_worker(worker, "the grading worker stopped responding", results, on_result, chapter)
        return results

    def _receive(self, worker: _WorkerHandle, chapter: Chapter, spec: dict[str, Any],
                 results: dict[str, dict[str, Any]], on_result: Callable | None) -> None:
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):
            self._fail_worker(worker, "the grading worker died", results, on_result, chapter)
            return
        op = message.get("op")
        if op == "ready":
            worker.ready, worker.isolation, worker.detail = True, message["isolation"], message["detail"]
            self.mode, self.detail = worker.isolation, worker.detail
            return
        if op == "crash":
            self._fail_worker(worker, f"the grading worker failed: {message.get('error', '')[-500:]}", results,
                              on_result, chapter)
            return
        task = worker.task
        if task is None or message.get("key") != task["key"]:  # the submission it holds gets the reason
            self._fail_worker(worker, "the grading worker answered out of turn", results, on_result, chapter)
            return
        worker.task = None
        if op == "failure":
            exercises = {e.id: {"points": 0, "status": "error",
                                "feedback": "grading failed (not caused by this answer): "
                                            + message.get("error", "").strip().splitlines()[-1][:500]}
                         for e in chapter.auto_exercises}
        else:
            exercises = message["exercises"]
        if task["key"] == "\0selftest":
            self._check_selftest(chapter, exercises)
            if chapter.reference is not None:  # the slowest of the workers' self-tests (stubs time nothing)
                known = self.reference_s.setdefault(spec["key"], {})
                for exercise_id, seconds in (message.get("seconds") or {}).items():
                    known[exercise_id] = max(known.get(exercise_id, 0.0), float(seconds))
            worker.warm.add(spec["key"])
            return
        results[task["key"]] = exercises
        if on_result is not None:
            on_result(task["key"], exercises)

    def _with_budgets(self, key: str, chapter: Chapter, limits: Limits, limit_dict: dict[str, Any]) -> dict[str, Any]:
        """The limits of a task, with each exercise's time budget (Limits.budget of the self-test's seconds)."""
        reference = self.reference_s.get(key, {})
        budgets = {e.id: limits.budget(reference.get(e.id)) for e in chapter.auto_exercises}
        references = {e.id: round(reference[e.id], 3) for e in chapter.auto_exercises if e.id in reference}
        return {**limit_dict, "budgets": budgets, "reference_s": references}

    def _check_selftest(self, chapter: Chapter, exercises: dict[str, Any]) -> None:
        if chapter.reference is None:
            return
        wrong = [(e.id, exercises[e.id]) for e in chapter.auto_exercises if exercises[e.id]["status"] != "passed"]
        if wrong:
            # the feedback's first lines (its cause is on the second line and below), bounded
            details = "; ".join(f"{key}: {r['status']}: {' / '.join(r['feedback'].strip().splitlines()[:6])[:900] if r['feedback'] else ''}"
                                for key, r in wrong)
            self.close()
            if all(r["status"] == "timeout" for _, r in wrong):  # it passed everything it had time for
                raise GradingError(f"self-test ran out of time: the course's own solution {chapter.path} did not finish "
                                   f"{', '.join(key for key, _ in wrong)} within the time limit ({details}). This "
                                   f"machine is slow or busy now ({machine_load()}), not the course broken: grade "
                                   "when it is quieter, with fewer --jobs, or with a larger --timeout")
            raise GradingError(f"self-test failed: the course's own solution {chapter.path} does not pass its checks "
                               f"in the grader ({details}); fix the course before grading")

    def _fail_worker(self, worker: _WorkerHandle, reason: str, results: dict[str, dict[str, Any]],
                     on_result: Callable | None, chapter: Chapter) -> None:
        task = worker.task
        tail = worker.log_tail().strip().splitlines()
        if not worker.ready:
            self.close()
            raise GradingError(f"a grading worker did not start: {reason}" + (f" ({tail[-1]})" if tail else ""))
        self._replace(worker)
        if task is None:
            return
        if task["key"] == "\0selftest":
            self.close()
            raise GradingError(f"the self-test of {chapter.name} could not run: {reason}")
        exercises = {e.id: {"points": 0, "status": "crashed", "feedback": f"not graded: {reason} while grading "
                                                                          "this submission"}
                     for e in chapter.auto_exercises}
        results[task["key"]] = exercises
        if on_result is not None:
            on_result(task["key"], exercises)
