"""Trial functions that misbehave on purpose, for tests/test_sweeps.py and tests/test_sweeps_ray.py, and the readers of a
sweep's folder and processes that the Ctrl-C tests share.

A backend runs them in place of :func:`pgcourse.sweeps.trial.run_trial` (``LocalBackend(function=...)``).
They live in a module of their own so a worker process can import them: multiprocessing hands its
children the parent's ``sys.path`` (which holds tests/ under pytest), and the Ray tests register this
module with ``ray.cloudpickle.register_pickle_by_value`` so the cluster's workers get it by value.

Each call writes a marker file ``<marker_dir>/<trial_id>.attempt<N>`` (holding the worker's pid) before
doing anything else, so a test can count how often, and in which processes, each trial was started.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pgcourse.course.sweeps import trial as trial_module
from pgcourse.course.sweeps.spec import TrialSpec
from pgcourse.course.sweeps.trial import run_trial


def start_attempt(marker_dir: str, spec_data: dict) -> int:
    """Record one more start of this trial; return its number (1 on the first attempt)."""
    trial_id = TrialSpec.from_dict(spec_data).trial_id
    folder = Path(marker_dir)
    attempt = len(list(folder.glob(f"{trial_id}.attempt*"))) + 1
    (folder / f"{trial_id}.attempt{attempt}").write_text(str(os.getpid()))
    return attempt


def attempts(marker_dir: str, trial_id: str) -> list[int]:
    """The pids of every recorded start of ``trial_id``, in order."""
    files = sorted(Path(marker_dir).glob(f"{trial_id}.attempt*"), key=lambda p: int(p.name.rsplit("attempt", 1)[1]))
    return [int(path.read_text()) for path in files]


def dies_on_first_attempt(spec_data: dict, device: str = "cpu", *, marker_dir: str, seeds=(0,), times: int = 1,
                          labels=None) -> dict:
    """The worker process exits abruptly (as if killed, or out of memory) on the first ``times`` attempts
    of the trials whose seed is in ``seeds`` (and label in ``labels``, if given); every other attempt is
    an ordinary ``run_trial``."""
    attempt = start_attempt(marker_dir, spec_data)
    if attempt <= times and spec_data["seed"] in seeds and (labels is None or spec_data["label"] in labels):
        os._exit(1)
    return run_trial(spec_data, device)


def training_raises(spec_data: dict, device: str = "cpu", *, marker_dir: str, failures: dict | None = None) -> dict:
    """``run_trial`` where ``pg.train`` raises on the first ``failures[seed]`` attempts of a trial (so the
    failure goes through run_trial's own handling: a ``"failed"`` record with the error and traceback)."""
    attempt = start_attempt(marker_dir, spec_data)
    if attempt > (failures or {}).get(spec_data["seed"], 0):
        return run_trial(spec_data, device)

    def broken_train(*args, **kwargs):
        raise RuntimeError(f"planted failure on attempt {attempt}")

    original = trial_module.train
    trial_module.train = broken_train
    try:
        return run_trial(spec_data, device)
    finally:
        trial_module.train = original


def raises_on_first_attempt(spec_data: dict, device: str = "cpu", *, marker_dir: str) -> dict:
    """The trial function itself raises (not training): on the first attempt of every trial."""
    if start_attempt(marker_dir, spec_data) == 1:
        raise RuntimeError("the trial function raised on its first attempt")
    return run_trial(spec_data, device)


def noting_the_ray_node(function):
    """``function`` as a plain function (``ray.remote`` takes no ``functools.partial``) that also notes, in
    the record, the id of the Ray node it ran on."""

    def trial(spec_data: dict, device: str = "cpu") -> dict:
        import ray

        record = function(spec_data, device)
        record["ray_node"] = ray.get_runtime_context().get_node_id()
        return record

    return trial


def crashes_or_raises_once(spec_data: dict, device: str = "cpu", *, marker_dir: str, dies=(), raises=()) -> dict:
    """On its first attempt, a trial whose ``(label, seed)`` is ``dies`` kills its worker and one that is
    ``raises`` raises; every other attempt is an ordinary ``run_trial``."""
    attempt = start_attempt(marker_dir, spec_data)
    if attempt == 1 and (spec_data["label"], spec_data["seed"]) == tuple(dies):
        os._exit(1)
    if attempt == 1 and (spec_data["label"], spec_data["seed"]) == tuple(raises):
        raise RuntimeError("the trial function raised on its first attempt")
    return run_trial(spec_data, device)


# -- reading a sweep's folder and its processes (the Ctrl-C tests of test_sweeps.py and test_sweeps_batch.py) --
def trial_files(folder: Path) -> list[Path]:
    return sorted((folder / "trials").glob("*.json*"))


def part_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".part")]


def descendants(pid: int) -> dict[int, int]:
    """Every process below ``pid`` (read from /proc), with its parent's pid."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found: dict[int, int] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = parent
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an exited child its new parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pgcourse_command(*arguments: str) -> list[str]:
    """``pgcourse ARGUMENTS`` as the installed script, or through ``python -m`` where there is none."""
    import sys

    script = Path(sys.executable).parent / "pgcourse"
    return ([str(script)] if script.exists() else [sys.executable, "-m", "pgcourse.cli"]) + list(arguments)


@dataclass
class Interrupted:
    """What :func:`interrupt_when` saw: the process's exit code and stderr, every process below it while it ran
    (pid -> parent pid, the workers among them), and the seconds from SIGINT to its exit."""

    returncode: int
    stderr: str
    family: dict[int, int]
    seconds: float


def interrupt_when(command: list[str], ready: Callable[[], bool], what: str, after_stop=None,
                   timeout: float = 120) -> Interrupted:
    """Run ``command`` in its own session (so SIGINT reaches its whole process group, as Ctrl-C in a terminal does),
    wait until ``ready()`` (at most ``timeout`` s; ``what`` names it in the failure), send SIGINT, and read stderr
    until the sweep says it was interrupted; then ``after_stop(family, pid)`` (checks made before the process exits;
    ``pid`` is the sweep's own process, the parent of its forkserver)."""
    import queue
    import signal
    import subprocess
    import threading
    import time

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True)
    reader.start()
    family: dict[int, int] = {}
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, f"{what} within {timeout:g} s"
            family.update(descendants(process.pid))
            time.sleep(0.02)
        family.update(descendants(process.pid))
        os.killpg(process.pid, signal.SIGINT)
        interrupted = time.monotonic()
        stderr = ""
        while "interrupted" not in stderr:  # the sweep says it stopped: by then its workers are stopped too
            stderr += lines.get(timeout=30)
        if after_stop is not None:
            after_stop(family, process.pid)
        process.wait(timeout=30)
        seconds = time.monotonic() - interrupted
        reader.join(timeout=10)
        while not lines.empty():
            stderr += lines.get()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return Interrupted(process.returncode, stderr, family, seconds)


def sleeps(spec_data: dict, device: str = "cpu", *, marker_dir: str) -> dict:
    """A trial that records its start and then sleeps for a minute: it is running when the test interrupts it."""
    import time

    start_attempt(marker_dir, spec_data)
    time.sleep(60)
    return run_trial(spec_data, device)
