"""Inside ``pgcourse grade``: the trusted grading worker and the sandboxed student process it starts.

Who runs what (see :mod:`pgcourse.classroom.grading.grader` for the teacher's side)::

    pgcourse grade (parent)          reads the course and the submissions, writes the gradebook
      └─ grading worker (trusted)    pgcourse.classroom.grading.worker.worker_main; imports torch, pgcourse and the checks;
           │                         runs the course's check cells
           └─ student process        a fresh process per submission, started in a bubblewrap sandbox
                                     (pgcourse.classroom.grading.sandbox, .runner); runs the course's setup cells and
                                     the student's answer cells, and nothing else

The verdict is computed in the grading worker, by the course's own check cell and the real
``pgcourse.course.checks``: student code never runs in that process. When a check calls the student's
function, the call goes to the student process over a socket as *data* (JSON: numbers, strings,
tensors and arrays as raw bytes, containers); the return value, the arguments as the function
left them (in-place changes), the generator and global RNG states come back the same way. Nothing
else crosses (:mod:`pgcourse.classroom.sandboxed.link`): a check that needs an environment has it built in
the student process from a description (:mod:`pgcourse.classroom.sandboxed.episode_cases`).

So a student can monkeypatch anything in *their* process, print what they like (their output goes
to a size-limited file nobody reads), exit with any status: none of it reaches the verdict. The
student process is fresh for every submission (nothing of an earlier student is in its memory),
cannot import the course package (the reference answers), sees only the interpreter and the
installed packages, has no network and no view of other processes, and cannot start processes.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import gc
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import traceback
import warnings
from typing import Any

import torch

from ..sandboxed.clock import WorkClock
from ..sandboxed.link import Link, StudentFunction, Unavailable
from ..sandboxed.loops import KIT_NAMES
from .memcg import StudentCgroup, find_hierarchy
from .sandbox import SANDBOX, UNSAFE, probe_sandbox, seccomp_program, student_command, write_runner_package
from .scratch import FULL, ScratchWatch, folder_used, tmpfs_used
from ..sandboxed.wire import Lost, StudentError, _seed_everything, _short

ALARM_GRACE = 2.0
COURSE_BLOCKED = "is not available while grading"  # the runner's ImportError for the course package          # seconds the worker's own work in a check may run past the exercise deadline


class StudentProcess:
    """The worker's handle on one student process (a fresh ``python`` in the sandbox, see :mod:`.runner`)."""

    def __init__(self, config: dict[str, Any], deadline: float, clock: WorkClock | None = None):
        """``deadline`` on ``clock`` (the session's work clock; None: the wall clock, ``time.monotonic``)."""
        self.scratch = None
        self.clock = clock
        self.watch: ScratchWatch | None = None
        limits = dict(config["limits"])
        mode = config["isolation"]
        ours, theirs = socket.socketpair()
        keep = [theirs.fileno()]
        seccomp_read = None
        if mode == UNSAFE:
            self.scratch = tempfile.mkdtemp(prefix="pgcourse-grade-")
        program = seccomp_program() if mode == SANDBOX else None
        if program is not None:
            seccomp_read, seccomp_write = os.pipe()
            os.write(seccomp_write, program)
            os.close(seccomp_write)
            keep.append(seccomp_read)
        argv = student_command(mode, config["runner_folder"], theirs.fileno(), limits, seccomp_read, self.scratch)
        hierarchy = config.get("memory_cgroup")
        self.cgroup = StudentCgroup(hierarchy) if hierarchy is not None else None
        if self.cgroup is not None:
            argv = self.cgroup.entry_command(argv)
        try:
            self.proc = subprocess.Popen(argv, pass_fds=keep, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"},
                                         cwd=self.scratch or "/", start_new_session=True)
        finally:
            theirs.close()
            if seccomp_read is not None:
                os.close(seccomp_read)
        self.pid = self.proc.pid
        if clock is not None:
            clock.watch(self.pid)  # its CPU time, and its tree's, counts towards every budget from now on
        self.link = Link(ours, trusted=True, clock=clock)
        self.status: int | None = None
        self.link.deadline = deadline
        self.link.timeout_reason = "the student process did not start in time"
        hello = self.link.recv()
        if hello.get("k") != "hello":
            raise self.link._fail("protocol", "the student process did not start")
        if self.cgroup is not None:  # what it holds now (interpreter, imports: no student code yet) + --memory
            self.cgroup.limit(int(limits["memory_mb"] * 2**20))
        self.watch = self._watch_scratch(mode, limits)
        self.link.deadline = None

    def _watch_scratch(self, mode: str, limits: dict[str, Any]) -> ScratchWatch | None:
        """Where no mount bounds the student's writable folder (not root: bwrap's unsized /tmp; no sandbox: a
        folder on the teacher's disk), a :class:`.scratch.ScratchWatch` stops the process beyond ``scratch_mb``."""
        limit = int(limits.get("scratch_mb", 64) * 2**20)
        if mode == SANDBOX and os.geteuid() != 0:
            return ScratchWatch(lambda: tmpfs_used(self.pid), limit, self._kill)
        if mode == UNSAFE and self.scratch:
            folder = self.scratch
            return ScratchWatch(lambda: folder_used(folder), limit, self._kill)
        return None

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def scratch_full(self, limits: dict[str, Any]) -> str | None:
        """Why the process was stopped, if it was for the files it wrote."""
        if self.watch is None or self.watch.exceeded is None:
            return None
        return FULL.format(mb=f"{limits.get('scratch_mb', 64):g}")

    def alive(self) -> bool:
        return self.status is None and self.link.lost is None

    def end(self, wait: float = 0.0) -> int | None:
        """Stop the process (its whole session; in the sandbox its PID namespace goes with it)."""
        if self.watch is not None:
            self.watch.close()
        if self.clock is not None:
            self.clock.forget(self.pid)
        if self.status is None:
            if wait > 0:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.status = self.proc.wait(timeout=wait)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            if self.status is None:
                self.status = self.proc.wait()  # a death by signal n is -n (as subprocess gives it)
        with contextlib.suppress(OSError):
            self.link.sock.close()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        return self.status


def describe_exit(status: int | None, limits: dict[str, Any], sandboxed: bool = False) -> str:
    """How the student process ended: ``status`` as :meth:`StudentProcess.end` gives it (-n: killed by signal n).
    ``sandboxed``: the process was bubblewrap, which reports signal n of the process inside as exit status 128 + n,
    the same as the student's own exit status 128 + n: both are said."""
    if status is None:
        return "the student process ended"
    if status < 0 or (sandboxed and status > 128):
        number = -status if status < 0 else status - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        what = {"SIGSEGV": "crashed with a segmentation fault (SIGSEGV)",
                "SIGBUS": "crashed with a bus error (SIGBUS)",
                "SIGABRT": "aborted (SIGABRT)",
                "SIGFPE": "crashed with an arithmetic fault (SIGFPE)",
                "SIGXCPU": "used up its CPU time",
                "SIGXFSZ": f"printed or wrote more than {limits['output_mb']} MB",
                "SIGKILL": "was killed (SIGKILL), e.g. for using too much memory"}.get(name, f"was killed by {name}")
        if status > 0:
            what += f", or your code ended it with exit status {status} (the sandbox cannot tell these apart)"
        return f"the process running your code {what}"
    return f"your code ended the process (exit status {status}), e.g. with os._exit() or a crash"


# --------------------------------------------------------------------------------------------------
# The grading worker
# --------------------------------------------------------------------------------------------------

def free_names(source: str) -> list[str]:
    """Names a check cell reads that it does not bind itself at top level (candidates from the student)."""
    tree = ast.parse(source)
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    bound.update(node.id for node in _top_level_targets(tree))
    loads = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
    return sorted(loads - bound - set(dir(builtins)))


def _top_level_targets(tree: ast.Module) -> list[ast.Name]:
    targets: list[ast.Name] = []
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign | ast.For | ast.With):
            for child in ast.walk(node):
                if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Store):
                    targets.append(child)
    return targets


class _Deadline:
    """Safety net for the worker's own (trusted but possibly slow) work in a check: SIGPROF after the worker's
    own CPU time has used what is left of the budget ``at`` on ``clock`` (the work clock: a busy machine's queue
    is not the check's time)."""

    def __init__(self, link: Link | None, at: float, clock: Any = time.monotonic):
        self.link, self.at, self.clock = link, at, clock

    def _fire(self, signum: int, frame: Any) -> None:
        lost = Lost("timeout", "time limit")
        if self.link is not None:
            self.link.lost = self.link.lost or lost
        raise lost

    def __enter__(self) -> _Deadline:
        self.previous = signal.signal(signal.SIGPROF, self._fire)
        signal.setitimer(signal.ITIMER_PROF, max(0.01, self.at - self.clock()))
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, self.previous)


_GRADER_FRAMES = re.compile(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*?"
                            + re.escape(f"{StudentError.__module__}.{StudentError.__qualname__}: "))


def _clean_feedback(message: str) -> str:
    """Drop the grading worker's own frames from a check's report of the student's exception."""
    return _GRADER_FRAMES.sub("", message)


def _result(points: float, status: str, feedback: str) -> dict[str, Any]:
    return {"points": points, "status": status, "feedback": _short(feedback.strip(), 6000)}


def _usable_hierarchy():
    """(memcg.Hierarchy or None, what bounds a student's memory): a cgroup is used only if one can be made here."""
    hierarchy, detail = find_hierarchy()
    if hierarchy is None:
        return None, f"the address-space limit (--memory), {detail}"
    try:
        StudentCgroup(hierarchy).remove()
    except OSError as error:
        return None, f"the address-space limit (--memory), no memory cgroup ({error.strerror} in {hierarchy.parent})"
    return hierarchy, f"the address-space limit and {detail}"


class Worker:
    """The trusted grading worker: grades submissions one at a time, each in forked student processes."""

    def __init__(self, isolation: str = "auto", runner_folder: str | None = None):
        if isolation == UNSAFE:
            self.isolation, self.isolation_detail = UNSAFE, ("no sandbox (--unsafe-no-sandbox): student code sees "
                                                             "this machine's files and processes")
        else:
            mode, detail = probe_sandbox()
            if mode is None:
                raise RuntimeError(f"no sandbox for student code: {detail}. Install bubblewrap, or pass "
                                   "--unsafe-no-sandbox to grade without one (see docs/teachers.md for what is lost)")
            self.isolation, self.isolation_detail = mode, detail
        self.memory_cgroup, memory_detail = _usable_hierarchy()
        self.isolation_detail += f"; memory: {memory_detail}"
        self.runner_folder = write_runner_package(runner_folder or tempfile.mkdtemp(prefix="pgcourse-runner-"))
        self._contexts: dict[str, dict[str, Any]] = {}

    def _context(self, course: dict[str, Any]) -> dict[str, Any]:
        key = course["key"]
        if key not in self._contexts:
            namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
            for label, source in course["context"]:
                with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                    exec(compile(source, label, "exec", dont_inherit=True), namespace)  # noqa: S102 - course code
            self._contexts[key] = namespace
        return self._contexts[key]

    def grade(self, course: dict[str, Any], answers: dict[str, list[str]], limits: dict[str, Any]) -> dict[str, Any]:
        session = _Session(self, course, answers, limits)
        try:
            results = session.run()
        finally:
            session.close()
        return {"exercises": results, "isolation": self.isolation, "seconds": session.seconds}


class _Session:
    """Grading of one submission: exercises in notebook order, restarting the student process when needed."""

    def __init__(self, worker: Worker, course: dict[str, Any], answers: dict[str, list[str]], limits: dict[str, Any]):
        self.worker, self.course, self.answers, self.limits = worker, course, answers, limits
        self.base = worker._context(course)
        self.ns = dict(self.base)
        self.trusted_names = set(self.base)      # defined by the course (setup and check cells)
        self.inserted: dict[str, Any] = {}       # names the student's process provided, as inserted
        self.student: StudentProcess | None = None
        self.executed: set[str] = set()
        self.poisoned: set[str] = set()
        self.skipped_added: dict[int, str] = {}  # cells the student added that lost the process: never run again
        self.added_notes: list[str] = []         # what the student's added cells raised (this exercise)
        self.seconds: dict[str, float] = {}      # per exercise: its answer cells and check (the self-test's times)
        self.clock = WorkClock()  # budgets are seconds of work: this worker's CPU and its student processes'
        self.start = self.clock()
        self.submission_deadline = self.start + float(limits["submission_s"])
        self.config = {"isolation": worker.isolation, "limits": limits, "runner_folder": str(worker.runner_folder),
                       "memory_cgroup": worker.memory_cgroup}

    def close(self) -> None:
        if self.student is not None:
            self.student.end()
            self.student = None
        self.ns.clear()

    def run(self) -> dict[str, dict[str, Any]]:
        results: dict[str, dict[str, Any]] = {}
        for position, exercise in enumerate(self.course["exercises"]):
            started = self.clock()
            if started >= self.submission_deadline:
                results[exercise["id"]] = _result(0, "timeout", f"not graded: the submission used up its time limit "
                                                               f"of {self.limits['submission_s']:g} s")
                continue
            results[exercise["id"]] = self._grade(position, exercise)
        return results

    # -- the student process ------------------------------------------------------------------------
    def _lose(self, lost: Lost) -> str:
        """Stop the student process after ``lost``; the reason for the feedback."""
        student, self.student = self.student, None
        self.executed = set()
        if student is None:
            return lost.reason
        status = student.end(wait=0.3 if lost.kind in ("crashed", "protocol") else 0.0)
        full = student.scratch_full(self.limits)
        if full:
            return full
        if lost.kind == "crashed":
            return describe_exit(status, self.limits, sandboxed=self.config["isolation"] == SANDBOX)
        return lost.reason

    def _start(self) -> None:
        deadline = min(self.clock() + 30.0, self.submission_deadline)
        self.student = StudentProcess(self.config, deadline, self.clock)
        self.executed = set()
        link = self.student.link
        link.deadline, link.timeout_reason = deadline, "the course's setup cells did not finish in time"
        answer_names = set(self.course.get("answer_names", []))
        link._answer(link.request("kit", {"names": [name for name in KIT_NAMES if name not in answer_names]}))
        for label, source in self.course["context"]:
            answer = link._answer(link.request("exec", {"source": source, "filename": label}))
            error = answer.get("error") if isinstance(answer, dict) else None
            # A setup cell that uses the course package (training the lesson's runs, say) stops where it does:
            # the package is not in the sandbox, and answer cells cannot use it either.
            if isinstance(error, str) and COURSE_BLOCKED not in error:
                raise RuntimeError(f"the course's setup cell {label} failed in the student process:\n{error}")
        link.deadline = None

    def _exec_answer(self, grade_id: str, deadline: float, reason: str) -> str | None:
        """Run the student's answer cell(s) ``grade_id`` and the cells they added before it; the answer
        cells' exception text, if any (an added cell's exception is a note, see :meth:`_run_added`)."""
        link = self.student.link
        link.deadline, link.timeout_reason = deadline, reason
        errors = []
        sources = [entry for entry in self.answers[grade_id] if isinstance(entry, str)]
        number = 0
        for entry in self.answers[grade_id]:
            if isinstance(entry, dict):
                self._run_added(entry)
                continue
            number += 1
            label = f"<answer cell {grade_id}>" if len(sources) == 1 else f"<answer cell {grade_id} #{number}>"
            try:
                answer = link._answer(link.request("exec", {"source": entry, "filename": label}))
                link.request("ping", {})  # a death the cell caused a moment after it returned is its own
            except Lost:
                self.poisoned.add(grade_id)
                raise
            if isinstance(answer, dict) and isinstance(answer.get("error"), str):
                errors.append(answer["error"])
        self.executed.add(grade_id)
        link.deadline = None
        return "\n".join(errors) or None

    def _run_added(self, entry: dict[str, Any]) -> None:
        """A code cell the student added: run as in their notebook, but what goes wrong in it costs nothing by
        itself (an exception is a note; a cell that hangs or crashes the process is skipped from then on)."""
        number = int(entry.get("added", 0))
        if number in self.skipped_added:
            return
        link = self.student.link
        try:
            answer = link._answer(link.request("exec", {"source": str(entry.get("source", "")),
                                                        "filename": f"<your added cell {number}>"}))
            link.request("ping", {})
        except Lost as lost:
            self.skipped_added[number] = lost.reason
            raise
        if isinstance(answer, dict) and isinstance(answer.get("error"), str):
            last = answer["error"].strip().splitlines()[-1:] or [""]
            self.added_notes.append(f"note: cell {number}, which you added, raised {last[0]} (the grader ran it "
                                    "before your answer, as the notebook does, and went on)")

    def _ensure_student(self, position: int) -> None:
        """A live student process that has run the answer cells of every exercise before this one."""
        earlier = [grade_id for exercise in self.course["exercises"][:position] for grade_id in exercise["answer_ids"]]
        while True:
            if self.student is None:
                self._start()
            deadline = min(self.clock() + float(self.limits["exercise_s"]), self.submission_deadline)
            try:
                for grade_id in earlier:
                    if grade_id in self.answers and grade_id not in self.poisoned and grade_id not in self.executed:
                        self._exec_answer(grade_id, deadline, "re-running your earlier answer cells took too long")
                return
            except Lost as lost:
                self._lose(lost)
                if self.clock() >= self.submission_deadline:
                    raise

    # -- one exercise --------------------------------------------------------------------------------
    def _grade(self, position: int, exercise: dict[str, Any]) -> dict[str, Any]:
        answer_ids = exercise["answer_ids"]
        present = [grade_id for grade_id in answer_ids if grade_id in self.answers]
        if answer_ids and not present:
            cells = ", ".join(answer_ids)
            return _result(0, "missing", f"answer cell {cells} is missing from the notebook (deleted, or its "
                                         "metadata was changed): there is nothing to grade")
        skipped_before = set(self.skipped_added)
        while True:
            skipped = len(self.skipped_added)
            result = self._grade_once(position, exercise)
            if len(self.skipped_added) == skipped or self.clock() >= self.submission_deadline:
                break  # no added cell of theirs was the problem: this is the result (else once more without it)
        notes = self.added_notes + [f"note: cell {number}, which you added, was skipped: {reason}"
                                    for number, reason in sorted(self.skipped_added.items())
                                    if number not in skipped_before]
        if notes and result["status"] != "passed":
            result = _result(result["points"], result["status"], result["feedback"] + "\n\n" + "\n".join(notes))
        return result

    def _grade_once(self, position: int, exercise: dict[str, Any]) -> dict[str, Any]:
        answer_ids = exercise["answer_ids"]
        present = [grade_id for grade_id in answer_ids if grade_id in self.answers]
        limit, why = self._budget(exercise["id"])
        began = None
        try:
            self._ensure_student(position)
            self.added_notes = []  # notes of this exercise's cells only (not of the earlier ones replayed)
            began = self.clock()
            deadline = min(began + limit, self.submission_deadline)
            reason = (f"time limit: your code ran longer than {why}" if deadline < self.submission_deadline
                      else f"time limit: the submission used up its {self.limits['submission_s']:g} s")
            errors = []
            for grade_id in present:
                error = self._exec_answer(grade_id, deadline, reason)
                if error:
                    errors.append(f"your answer cell {grade_id} raised an exception when it ran:\n{error}")
            if errors:
                return _result(0, "error", "\n".join(errors))
            return self._check(exercise, deadline, reason)
        except Lost as lost:
            explanation = self._lose(lost)
            status = "timeout" if lost.kind == "timeout" else "crashed"
            return _result(0, status, explanation)
        except Exception as error:  # noqa: BLE001 - a problem of the grading itself: reported, then a fresh start
            if self.student is not None:
                self._lose(Lost("protocol", "grading problem"))
            return _result(0, "error", f"grading problem (not caused by your answer, tell your teacher): "
                                       f"{type(error).__name__}: {error}")
        finally:
            if began is not None:
                self.seconds[exercise["id"]] = self.clock() - began  # seconds of work, as the budgets
            self._release()

    def _budget(self, exercise_id: str) -> tuple[float, str]:
        """(seconds, how they were set) for one exercise: its budget from the pool (Limits.budget), else --timeout."""
        cap = float(self.limits["exercise_s"])
        budget = (self.limits.get("budgets") or {}).get(exercise_id)
        if budget is None or float(budget) >= cap:
            return cap, f"{cap:g} s (--timeout)"
        reference = (self.limits.get("reference_s") or {}).get(exercise_id)
        solution = f"the course's solution took {reference:.2g} s; " if reference is not None else ""
        return float(budget), (f"this exercise's budget of {float(budget):.3g} s ({solution}the budget is "
                               f"{self.limits.get('budget_factor', 10):g} times that, at least "
                               f"{self.limits.get('budget_floor_s', 5):g} s, at most --timeout). Only this exercise "
                               "lost its points: the grader went on with the next one")

    def _release(self) -> None:
        if self.student is None:
            return
        link = self.student.link
        try:
            if link.lost is not None:
                raise link.lost
            link.deadline, link.timeout_reason = self.clock() + 10.0, "the student process stopped answering"
            link.request("release", {})
            link.deadline = None
        except Lost as lost:
            self._lose(lost)

    def _check(self, exercise: dict[str, Any], deadline: float, reason: str) -> dict[str, Any]:
        link = self.student.link
        wanted = [name for name in free_names(exercise["check_source"]) if name not in self.trusted_names]
        link.deadline, link.timeout_reason = deadline, reason
        found = link._answer(link.request("lookup", {"names": wanted})) if wanted else {}
        if not isinstance(found, dict):
            raise link._fail("protocol", "the student process answered a lookup with something else")
        for name in set(wanted) | set(self.inserted):   # nothing stale from an earlier exercise
            if name not in self.trusted_names:
                self.ns.pop(name, None)
        self.inserted = {}
        for name, entry in found.items():
            if not (isinstance(name, str) and name in wanted and isinstance(entry, dict)):
                continue
            if entry.get("function") == name:
                value: Any = StudentFunction(link, name)
            elif "data" in entry:
                value = entry["data"]
            else:
                value = Unavailable(name, str(entry.get("unavailable", "object")))
            self.ns[name] = self.inserted[name] = value
        code = compile(exercise["check_source"], f"<check cell {exercise['check_grade_id']}>", "exec",
                       dont_inherit=True)
        link.last_student_error = None
        _seed_everything(0)
        output = io.StringIO()
        status, feedback = "passed", ""
        with contextlib.ExitStack() as stack:
            stack.enter_context(_Deadline(link, deadline + ALARM_GRACE, self.clock))
            stack.enter_context(contextlib.redirect_stdout(output))
            stack.enter_context(contextlib.redirect_stderr(output))
            stack.enter_context(warnings.catch_warnings())
            warnings.simplefilter("ignore")
            try:
                exec(code, self.ns)  # noqa: S102 - the course's own check cell, in the trusted worker
            except Lost:
                raise
            except AssertionError as error:
                status, feedback = "failed", str(error) or "the check failed (AssertionError)"
            except NotImplementedError:
                status, feedback = "failed", "not implemented yet: replace `raise NotImplementedError()` with your code"
            except StudentError as error:
                status, feedback = "error", f"your code raised an exception:\n{error}"
            except NameError as error:
                status, feedback = "error", (f"{error}: your answer cell must define it (was it renamed, or its "
                                             "cell not run?)")
            except Exception as error:  # noqa: BLE001 - LearnerCodeError and any other failure of the check
                name = type(error).__name__
                text = _clean_feedback(str(error))
                if name == "LearnerCodeError":
                    status, feedback = "error", text
                else:
                    status, feedback = "error", f"the check failed with {name}: {text}"
            except BaseException as error:  # noqa: BLE001 - SystemExit/KeyboardInterrupt raised in a check
                status, feedback = "error", f"the check stopped with {type(error).__name__}: {error}"
        if link.lost is not None:
            raise link.lost
        points = 0.0
        if status == "failed" and exercise.get("partial"):
            points, feedback = self._partial_credit(exercise, feedback, deadline)
        link.deadline = None
        # names the check cell defined become part of the trusted namespace for later checks
        for name, value in list(self.ns.items()):
            if name in self.inserted and value is self.inserted[name]:
                continue
            self.trusted_names.add(name)
            self.inserted.pop(name, None)
        if status == "passed":
            return _result(exercise["points"], "passed", output.getvalue() or "passed")
        return _result(points, status, feedback)

    def _partial_credit(self, exercise: dict[str, Any], feedback: str, deadline: float) -> tuple[float, str]:
        """(points, feedback) for a failed standard check under ``--partial-credit`` (see :mod:`.partial`)."""
        from .partial import concept_check, concept_points, count_cases, describe, partial_points, standard_check

        concepts = concept_check(exercise["check_source"])
        if concepts is not None:
            answers = self.ns.get(concepts[1])
            earned, line = concept_points(exercise["points"], concepts[0], None if isinstance(
                answers, StudentFunction | Unavailable) else answers)
            return earned, f"{feedback}\n\n{line}"
        found = standard_check(exercise["check_source"])
        function = self.ns.get(found[1]) if found else None
        if not isinstance(function, StudentFunction):
            return 0.0, feedback
        try:
            with _Deadline(self.student.link, deadline + ALARM_GRACE, self.clock), warnings.catch_warnings(), \
                    contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                _seed_everything(0)
                right, total, informative = count_cases(found[0], function)
        except Lost as lost:  # the check's verdict stands; the next exercise starts a fresh student process
            return 0.0, f"{feedback}\n\nPartial credit: none ({lost.reason} while counting the cases)"
        earned = min(partial_points(exercise["points"], right, total, informative), exercise["points"])
        return earned, f"{feedback}\n\n{describe(right, total, informative, earned, exercise['points'])}"


# --------------------------------------------------------------------------------------------------
# Process entry point (spawned by pgcourse.classroom.grading.pool)
# --------------------------------------------------------------------------------------------------

def _preload() -> None:
    """Import what checks and course cells use, before any student code exists on this machine's disk
    view of this process (later imports could read files a student process tried to change)."""
    import importlib
    import pkgutil

    for name in ("gymnasium", "gymnasium.envs.classic_control.cartpole", "gymnasium.envs.classic_control.pendulum",
                 "gymnasium.envs.classic_control.acrobot", "gymnasium.envs.classic_control.mountain_car",
                 "gymnasium.wrappers", "gymnasium.vector", "torch.distributions", "torch.nn.functional",
                 "torch.testing", "numpy.testing", "matplotlib", "matplotlib.pyplot",
                 "pgcourse", "pgcourse.course.checks", "pgcourse.rl.envs", "pgcourse.rl.networks", "pgcourse.rl.config",
                 "pgcourse.rl.algorithms", "pgcourse.rl.returns", "pgcourse.rl.losses", "pgcourse.rl.diagnostics",
                 "pgcourse.rl.batching", "pgcourse.rl.run", "pgcourse.rl.evaluation", "pgcourse.rl.history", "pgcourse.course.debugging",
                 "pgcourse.course.views.plotting", "pgcourse.course.views.render", "pgcourse.course.views.widgets", "torch.fx.experimental.symbolic_shapes"):
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    # pgcourse.course.checks and pgcourse.course.debugging may be packages: their submodules are imported now too (never a
    # __main__, which pkgutil.walk_packages does not import; it imports the subpackages it walks).
    for name in ("pgcourse.course.checks", "pgcourse.course.debugging"):
        with contextlib.suppress(Exception):
            package = importlib.import_module(name)
            for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=f"{name}."):
                if info.name.rsplit(".", 1)[-1] != "__main__":
                    with contextlib.suppress(Exception):
                        importlib.import_module(info.name)
    # What the student process does lazily (a VJP with grad_outputs imports sympy!) is done here once,
    # so that every forked student process starts with it loaded.
    leaf = torch.ones(3, requires_grad=True)
    torch.autograd.grad([leaf * 2.0], [leaf], [torch.ones(3)], retain_graph=True, allow_unused=True)
    torch.autograd.grad((leaf * torch.linspace(0.5, 1.5, 3)).sum(), [leaf], allow_unused=True)
    traceback.format_exception(ValueError, ValueError("warm-up"), None)


WORKER_MEMORY_MB = 4096  # what the grading worker may add to its address space after its imports


def _limit_own_memory(megabytes: int) -> None:
    """A backstop on the trusted worker: results that a check turns into big Python objects then fail with a
    MemoryError (that student's exercise) instead of taking the machine's memory from every other worker."""
    try:
        import resource

        with open("/proc/self/status") as handle:
            size = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + megabytes * 2**20, resource.RLIM_INFINITY))
    except (ImportError, OSError, StopIteration, ValueError):
        pass


def _bug_hunt_student(key: str, hunt_key: str | None) -> None:
    """Grade the bug hunt of submission ``key`` on the hunt made for its student: the submission's key is its
    student (the folder's id), and with the teacher's key (``--hunt-key``) the bug hunt's check reads that
    student's entry (``pgcourse.course.debugging.bug_hunt``: ``$PGCOURSE_STUDENT_ID``, ``$PGCOURSE_HUNT_KEY``; this
    trusted process only: the student's sandbox starts with a cleared environment). The self-test grades the
    solution's answers: the practice six, no student, no key."""
    if key == "\0selftest":
        os.environ.pop("PGCOURSE_STUDENT_ID", None)
        os.environ.pop("PGCOURSE_HUNT_KEY", None)
        return
    os.environ["PGCOURSE_STUDENT_ID"] = str(key)
    if hunt_key:
        os.environ["PGCOURSE_HUNT_KEY"] = hunt_key
    else:
        os.environ.pop("PGCOURSE_HUNT_KEY", None)


def worker_main(fd: int) -> None:
    from multiprocessing.connection import Connection

    torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    conn = Connection(fd)
    try:
        hello = conn.recv()
        _preload()
        _limit_own_memory(WORKER_MEMORY_MB)
        worker = Worker(hello.get("isolation", "auto"), hello.get("runner_folder"))
        gc.collect()
        gc.freeze()
        conn.send({"op": "ready", "isolation": worker.isolation, "detail": worker.isolation_detail,
                   "pid": os.getpid()})
        while True:
            try:
                message = conn.recv()
            except EOFError:
                break
            if message.get("op") == "stop":
                break
            if message.get("op") == "grade":
                _bug_hunt_student(message["key"], message.get("hunt_key"))
                try:
                    reply = worker.grade(message["course"], message["answers"], message["limits"])
                    reply.update(op="result", key=message["key"])
                except Exception:  # noqa: BLE001 - a grading failure is reported, the worker stays up
                    reply = {"op": "failure", "key": message["key"], "error": traceback.format_exc()}
                conn.send(reply)
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    except Exception:  # noqa: BLE001
        with contextlib.suppress(Exception):
            conn.send({"op": "crash", "error": traceback.format_exc()})
    finally:
        if "worker" in locals():
            shutil.rmtree(worker.runner_folder, ignore_errors=True)


# Started as: python -c "from pgcourse.classroom.grading.worker import worker_main; worker_main(FD)" (not with -m, so
# that this module has one identity, pgcourse.classroom.grading.worker, in the worker).
