"""The student's writable folder, bounded from outside where no kernel limit bounds it.

As root, the runner mounts a tmpfs of ``--scratch`` MB as the student's only writable folder (:mod:`.runner`).
A teacher who is not root cannot: bubblewrap 0.8 gives ``/tmp`` a tmpfs with no size (half the machine's
memory), the unprivileged runner cannot mount one, and RLIMIT_FSIZE bounds each file, not their sum. A student
who wrote 40 files of 7 MB there held 280 MB of memory (``scratch_mb`` 64), memory that neither RLIMIT_AS nor
``--memory`` counts, times ``--jobs``; without the sandbox (``--unsafe-no-sandbox``) the same files fill the
teacher's disk. So the grading worker watches that folder from outside the sandbox (:class:`ScratchWatch`: the
tmpfs's use through ``/proc/<student>/root/tmp``, or the scratch folder's files) and stops the student process
once it holds more than ``scratch_mb``; the feedback says why (:data:`FULL`).
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

POLL_S = 0.05  # between two looks: at tmpfs speed (a few GB/s) a student can overshoot by a fraction of a second's writes
FULL = ("the process running your code was stopped: it wrote more than {mb} MB of files (its scratch folder holds "
        "at most {mb} MB; write less, or nothing, to files)")


def descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (``/proc/<pid>/task/*/children``), nearest first."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop(0)
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            found += [int(child) for child in children]
            queue += [int(child) for child in children]
    return found


def tmpfs_used(pid: int) -> int | None:
    """Bytes in use on the ``/tmp`` of ``pid``'s sandbox (its deepest process's root, seen from outside); None
    when none of its processes can be looked at (not started, gone)."""
    for child in reversed(descendants(pid)):
        try:
            stats = os.statvfs(f"/proc/{child}/root/tmp")
        except OSError:
            continue
        return (stats.f_blocks - stats.f_bfree) * stats.f_frsize
    return None


def folder_used(folder: str | Path) -> int:
    """Bytes in the files under ``folder`` (allocated blocks: a sparse file counts what it holds)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


class ScratchWatch:
    """A thread that calls ``used()`` every :data:`POLL_S` seconds and, the first time it exceeds ``limit_bytes``,
    records it (``exceeded``) and calls ``stop()`` (the worker kills the student's process group)."""

    def __init__(self, used: Callable[[], int | None], limit_bytes: int, stop: Callable[[], None]):
        self.used, self.limit_bytes, self.stop = used, int(limit_bytes), stop
        self.exceeded: int | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pgcourse-scratch-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(POLL_S):
            used = self.used()
            if used is not None and used > self.limit_bytes:
                self.exceeded = used
                self.stop()
                return

    def close(self) -> None:
        self._done.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)
