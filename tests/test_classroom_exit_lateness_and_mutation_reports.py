"""Tests for three known bugs of the classroom grader, each stated as the definition it broke (unit layer: the file
is not listed in tests/layers.py).

1. How late a hand-in was (grading/timing.py): a lateness that whole minutes would say as "0 min" is said in
   seconds.
2. How the student process ended (grading/worker.py): a death by signal n and the student's own exit status 128 + n
   are told apart (a signal is a negative status, as subprocess gives it); through bubblewrap, which reports a
   signal n of the process inside as exit status 128 + n, the two cannot be told apart and the feedback says so.
3. Which arguments the student's function changed in place (sandboxed/student.py): a tensor holding NaN that the
   function left as it was is not changed (NaN at the same place counts as equal).
"""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import types
from datetime import datetime, timedelta, timezone

import pytest
import torch

from pgcourse.classroom.grading import timing, worker
from pgcourse.classroom.grading.assignment import LatePolicy
from pgcourse.classroom.grading.gradebook import ExerciseResult, StudentResult
from pgcourse.classroom.sandboxed import student
from pgcourse.classroom.sandboxed.link import Link
from pgcourse.classroom.sandboxed.wire import _Enc

# ==================================================================================================================
# 1. A lateness under half a minute
# ==================================================================================================================

DEADLINE = datetime(2025, 3, 14, tzinfo=timezone.utc)


@pytest.mark.parametrize("seconds, said", [(1.0, "1 s"), (29.0, "29 s"), (29.4, "29 s"), (0.4, "under a second"),
                                           (31.0, "1 min"), (300.0, "5 min")])
def test_a_lateness_that_rounds_to_no_minute_is_said_in_seconds(seconds, said):
    """How late, in words: whole minutes under an hour, except when that would say "0 min" (under half a minute):
    then whole seconds, or "under a second"."""
    assert timing._duration(seconds) == said


def test_a_hand_in_one_second_late_is_said_to_be_one_second_late():
    """The row's late note says how late in a unit that is not zero: "handed in 1 s after the deadline"."""
    row = StudentResult("ann", "ann.ipynb", None, {"e": ExerciseResult(8.0, 10.0, "passed", "")})
    submission = types.SimpleNamespace(submitted_at=DEADLINE + timedelta(seconds=1), time_source="--timestamps")
    timing.apply_lateness(row, submission, LatePolicy.parse(DEADLINE.isoformat(), "10%/day", None))
    assert row.notes == ["handed in 1 s after the deadline (--timestamps): 1 point(s) taken"]


# ==================================================================================================================
# 2. A signal, or the student's own exit status 128 + n
# ==================================================================================================================

def ended(code: str) -> int | None:
    """What StudentProcess.end reports for a real python process (no sandbox) that runs ``code``."""
    process = worker.StudentProcess.__new__(worker.StudentProcess)
    process.watch = process.clock = process.scratch = process.cgroup = process.status = None
    process.proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    process.pid = process.proc.pid
    process.link = types.SimpleNamespace(sock=socket.socket())
    return process.end(wait=30.0)


def test_without_a_sandbox_exit_status_139_is_not_a_segmentation_fault():
    """Without a sandbox, the student's os._exit(139) is described as their exit status 139, and a SIGSEGV as a
    segmentation fault: end() keeps a death by signal n as -n (as subprocess gives it), not as 128 + n."""
    exited = ended("import os; os._exit(139)")
    crashed = ended("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    assert (exited, crashed) == (139, -signal.SIGSEGV)
    assert worker.describe_exit(exited, {"output_mb": 8}) == \
        "your code ended the process (exit status 139), e.g. with os._exit() or a crash"
    assert worker.describe_exit(crashed, {"output_mb": 8}) == \
        "the process running your code crashed with a segmentation fault (SIGSEGV)"


@pytest.mark.parametrize("status", [128, 129, 139, 255])
def test_an_exit_status_of_128_or_more_is_the_students_own_without_a_sandbox(status):
    """A non-negative status is the student's own exit status, 128 or more included; only a negative one is a
    signal."""
    assert worker.describe_exit(status, {"output_mb": 8}) == \
        f"your code ended the process (exit status {status}), e.g. with os._exit() or a crash"


def test_in_the_sandbox_128_plus_n_is_signal_n_or_the_students_own_exit_status():
    """bubblewrap reports a signal n of the process inside as exit status 128 + n (n >= 1), as it would the
    student's os._exit(128 + n): in the sandbox such a status names the signal and says it may be the student's
    own exit status; 128, below 128 and negative statuses are as without a sandbox."""
    limits = {"output_mb": 8}
    assert worker.describe_exit(139, limits, sandboxed=True) == (
        "the process running your code crashed with a segmentation fault (SIGSEGV), or your code ended it with exit "
        "status 139 (the sandbox cannot tell these apart)")
    for status in (128, 3, -signal.SIGKILL):
        assert worker.describe_exit(status, limits, sandboxed=True) == worker.describe_exit(status, limits)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap")
def test_bubblewrap_reports_a_signal_as_128_plus_n_like_an_exit_status():
    """Why the sandbox cannot tell them apart: bwrap exits with 128 + n when the process inside died of signal n."""
    import shutil
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        pytest.skip("bwrap is not installed")
    base = [bwrap, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-pid", "--", sys.executable,
            "-c"]
    probe = subprocess.run(base + ["pass"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("bwrap cannot create namespaces here")
    statuses = [subprocess.run(base + [code]).returncode for code in
                ("import os; os._exit(139)", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")]
    assert statuses == [139, 139]


def test_a_lost_student_is_described_with_its_isolation():
    """The worker describes a crashed student's status as seen through its isolation: the sandbox's 128 + n as
    possibly a signal, a status without a sandbox as the student's own."""
    for isolation, words in (("sandbox", "crashed with a segmentation fault (SIGSEGV), or your code ended it"),
                             ("unsafe-no-sandbox", "exit status 139), e.g. with os._exit()")):
        session = worker._Session.__new__(worker._Session)
        session.limits, session.config = {"output_mb": 8}, {"isolation": isolation}
        session.student = types.SimpleNamespace(end=lambda wait=0.0: 139, scratch_full=lambda limits: None)
        assert words in session._lose(worker.Lost("crashed", "the student process ended"))


# ==================================================================================================================
# 3. A NaN left as it was is no change
# ==================================================================================================================

@pytest.mark.parametrize("start, change, mutated", [
    ([float("nan"), 2.0], lambda t: None, False),
    ([float("nan"), 2.0], lambda t: t.mul_(1.0), False),
    ([float("nan"), 2.0], lambda t: t[1:].fill_(3.0), True),
    ([1.0, 2.0], lambda t: t[:1].fill_(float("nan")), True),
    ([complex(float("nan"), 1.0)], lambda t: None, False),
])
def test_a_tensor_holding_nan_is_changed_only_if_its_values_changed(start, change, mutated):
    """An argument tensor is sent back as changed in place when its values differ, NaN at the same place counting
    as equal (as for numpy arrays): a NaN left where it was is no change."""
    ours, peer = socket.socketpair()
    try:
        server, worker_end = student.StudentServer(Link(ours, trusted=False)), Link(peer, trusted=True)
        server.ns["f"] = change
        wire = lambda value: json.loads(json.dumps(worker_end.enc(value, _Enc())))  # noqa: E731
        answer = server._h_call_student({"function": "f", "args": wire((torch.tensor(start),)), "kwargs": wire({})})
        assert [index for index, _ in answer.data["mutated"]] == ([0] if mutated else [])
    finally:
        ours.close()
        peer.close()
