"""The grader's work clock (issue 46, item 2): budgets in CPU seconds of the worker and its student processes,
so that a verdict does not depend on the machine's load; waiting told from computing."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from pgcourse.classroom.sandboxed import clock

pytestmark = pytest.mark.skipif(clock.WorkClock().measures != "cpu", reason="needs /proc (Linux)")

BUSY = "import time\nt = time.process_time()\nwhile time.process_time() - t < {seconds}: pass\ntime.sleep(30)\n"


def _spawn(source: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", source])


def test_a_student_process_tree_is_counted_in_cpu_seconds_children_included():
    work = clock.WorkClock()
    child = "import subprocess, sys\nsubprocess.run([sys.executable, '-c', " + repr(BUSY.format(seconds=0.6)) + "])\n"
    proc = _spawn(child)  # the CPU is spent by a grandchild
    try:
        work.watch(proc.pid)
        start = work()
        deadline = time.monotonic() + 60
        while work() - start < 0.5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert work() - start >= 0.5  # the grandchild's CPU time counts
        time.sleep(0.5)
        settled = work()
        time.sleep(0.6)
        assert work() - settled < 0.1  # sleeping adds nothing
        work.forget(proc.pid)
        kept = work()
    finally:
        proc.kill()
        proc.wait()
    assert work() >= kept - 0.05  # an ended student's time stays counted


def test_waiting_is_told_from_computing():
    work = clock.WorkClock()
    sleeper = _spawn("import time; time.sleep(60)")
    try:
        work.watch(sleeper.pid)
        armed = time.monotonic()
        waited = None
        while waited is None and time.monotonic() - armed < clock.IDLE_WINDOW_S + 5:
            work.sample()
            waited = work.idle(armed)
            time.sleep(0.2)
        assert waited is not None and waited >= clock.IDLE_WINDOW_S
    finally:
        sleeper.kill()
        sleeper.wait()
    busy = _spawn(BUSY.format(seconds=clock.IDLE_WINDOW_S + 3))
    try:
        work = clock.WorkClock()
        work.watch(busy.pid)
        armed = time.monotonic()
        while time.monotonic() - armed < clock.IDLE_WINDOW_S + 1:
            work.sample()
            assert work.idle(armed) is None  # a computing student is never "waiting", however slowly it runs
            time.sleep(0.2)
    finally:
        busy.kill()
        busy.wait()


def test_a_budget_of_work_has_a_wall_clock_backstop():
    assert clock.wall_backstop(5.0) == clock.WALL_FACTOR * 5.0 + clock.WALL_SLACK_S
    assert clock.wall_backstop(-1.0) == clock.WALL_SLACK_S
