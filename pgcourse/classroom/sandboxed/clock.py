"""The grader's clock: seconds of work, not of waiting in the machine's queue (issue 46, item 2).

A budget in wall-clock seconds grades the machine's load as much as the student's code: at a load of 10 on 2
cores a solution that takes 3 s alone takes 15 s or more, and the same notebook lost points on a busy machine
that it kept on a quiet one. :class:`WorkClock` counts CPU seconds instead: the grading worker's own
(``time.process_time()``: the checks it runs) plus those of every student process it started, with their whole
process tree (``/proc/<pid>/stat``'s utime, stime and its reaped children's, summed over ``task/*/children``),
those of student processes already ended included. A queue adds no CPU time, so an exercise's budget, its
self-test reference and its verdict are the same at any load.

Code that waits computes nothing (``time.sleep``, ``input()``, a lock, a blocking read), so the work clock alone
would wait for it forever. :meth:`WorkClock.idle` tells waiting from a busy machine: the student and the worker
together computed less than ``IDLE_SHARE`` of the last ``IDLE_WINDOW_S`` wall seconds (a process of a machine at
load 10 on 2 cores still gets about a fifth of a CPU; a sleeping one gets none). And a wall-clock backstop,
``WALL_FACTOR`` times a budget, ends anything else.

Where ``/proc`` cannot be read (not Linux) the clock is the wall clock, as before, and :attr:`measures` says so.
"""
from __future__ import annotations

import os
import time

IDLE_SHARE = 0.02     # less CPU than this share of the wall time, over the window: waiting, not computing
IDLE_WINDOW_S = 5.0   # the wall seconds that share is measured over
WALL_FACTOR = 20.0    # a backstop: no budget of work may take more wall time than this many times itself (+ slack)
WALL_SLACK_S = 60.0
READ_EVERY_S = 0.05   # how often the student processes' CPU time is read from /proc

try:
    _TICK = float(os.sysconf("SC_CLK_TCK"))
except (AttributeError, ValueError, OSError):  # not POSIX
    _TICK = 0.0


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) of process ``pid``, its threads and every descendant it has, living or reaped
    by their parents; None when ``/proc`` does not show ``pid`` (ended, or not Linux)."""
    if not _TICK:
        return None
    total, stack, seen, found = 0.0, [pid], set(), False
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            with open(f"/proc/{current}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += sum(int(value) for value in fields[11:15]) / _TICK  # utime stime cutime cstime
            found = found or current == pid
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as handle:
                    stack += [int(child) for child in handle.read().split()]
        except (OSError, ValueError, IndexError):
            continue  # ended between two reads: its time is its parent's cutime, or lost (a few ticks)
    return total if found else None


class WorkClock:
    """Seconds of work of one grading worker and the student processes it runs (see the module)."""

    def __init__(self) -> None:
        self.measures = "cpu" if tree_cpu_seconds(os.getpid()) is not None else "wall"
        self._students: dict[int, float] = {}  # pid -> its tree's CPU seconds when last read
        self._ended = 0.0
        self._samples: list[tuple[float, float]] = []  # (wall, work), the last IDLE_WINDOW_S and a bit
        self._read_at, self._student_seconds = -1e9, 0.0

    def watch(self, pid: int) -> None:
        """Count the CPU time of student process ``pid`` (and its tree) from now on."""
        self._students[pid] = 0.0

    def forget(self, pid: int) -> None:
        """``pid`` is about to end: keep the CPU time it used, stop reading it."""
        self._read(pid)
        self._ended += self._students.pop(pid, 0.0)
        self._read_at = -1e9

    def _read(self, pid: int) -> float:
        seconds = tree_cpu_seconds(pid)
        if seconds is not None:
            self._students[pid] = max(self._students.get(pid, 0.0), seconds)
        return self._students.get(pid, 0.0)

    def __call__(self) -> float:
        if self.measures == "wall":
            return time.monotonic()
        now = time.monotonic()
        if now - self._read_at >= READ_EVERY_S:  # /proc at most every READ_EVERY_S (a check may send 10k messages)
            self._read_at, self._student_seconds = now, sum(self._read(pid) for pid in list(self._students))
        return time.process_time() + self._ended + self._student_seconds

    def sample(self) -> None:
        """Note (wall, work) now, for :meth:`idle`."""
        now = time.monotonic()
        self._samples.append((now, self()))
        while len(self._samples) > 2 and self._samples[1][0] <= now - IDLE_WINDOW_S:
            self._samples.pop(0)

    def idle(self, since_wall: float) -> float | None:
        """The wall seconds the work has been waiting when, over the last ``IDLE_WINDOW_S`` (all after
        ``since_wall``), it computed less than ``IDLE_SHARE`` of them; None while it computes."""
        if self.measures == "wall" or not self._samples:
            return None
        now, work = self._samples[-1]
        old = [(wall, done) for wall, done in self._samples if since_wall <= wall <= now - IDLE_WINDOW_S]
        if not old:
            return None
        wall, done = old[-1]
        return now - since_wall if (work - done) < IDLE_SHARE * (now - wall) else None


def wall_backstop(budget_s: float) -> float:
    """The most wall seconds a budget of ``budget_s`` seconds of work may take on any machine."""
    return WALL_FACTOR * max(budget_s, 0.0) + WALL_SLACK_S
