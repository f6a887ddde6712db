"""Where a sweep's trials run: ``"local"`` (a process pool on this machine, the default), ``"batch"`` (the same
pool, each arm's seeds trained as one ``pg.train_many`` batch) or ``"ray"`` (a Ray cluster: started on this
machine for the call, or an existing one at ``address``).

Both have the same small interface: :meth:`submit` a trial, :meth:`next_result` blocks until any
trial ends and returns ``(spec, record)`` — a trial's record, or a :class:`Lost` when the process
running it died (out of memory, a killed node) — and :meth:`close`. Results come back as trials
finish, in any order; the driver (:func:`pgcourse.course.sweeps.sweep`) writes and retries.
"""
from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from .spec import TrialSpec
from .trial import batchable, run_batch, run_trial

RAY_INSTALL_HINT = "pip install 'pgcourse[scale]' (Ray, pinned)"


@dataclass
class Lost:
    """The worker running a trial died before returning a record.

    ``shared``: other trials were lost with it (a local pool breaks as a whole when one worker dies), so
    this trial's own worker may not be the one that died.
    """

    reason: str
    shared: bool = False


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _ignore_interrupts() -> None:
    """Worker initialiser: Ctrl-C is the driver's to handle (it stops the workers itself)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalBackend:
    """A pool of ``workers`` processes on this machine (default: one per available core).

    Workers start with ``forkserver`` on Linux (never ``fork`` from a process whose torch threads are
    running) and ``spawn`` elsewhere; each trial sets its own torch thread count and seeds.
    """

    name = "local"

    def __init__(self, workers: int | None = None, device: str = "cpu", function=run_trial):
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ValueError(f"workers={workers!r} is invalid: expected a positive integer (or None: one per core)")
        self.workers = workers or available_cores()
        self.device = device
        self.function = function  # what runs one trial: run_trial (the tests pass one that kills its worker)
        self.capacity = self.workers
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[Future, tuple[TrialSpec, ProcessPoolExecutor]] = {}  # each trial and its pool
        self._casualties: dict[ProcessPoolExecutor, int] = {}  # a broken pool: how many trials it lost

    def _make_pool(self) -> ProcessPoolExecutor:
        method = "forkserver" if sys.platform.startswith("linux") else "spawn"
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["pgcourse.course.sweeps.trial"])  # each worker starts with torch imported
        return ProcessPoolExecutor(self.workers, mp_context=context, initializer=_ignore_interrupts)

    def submit(self, spec: TrialSpec) -> None:
        if self._pool is None:
            self._pool = self._make_pool()
        try:
            future = self._pool.submit(self.function, spec.to_dict(), self.device)
        except BrokenProcessPool:  # a worker died since the last result; its trials come back as Lost
            self._discard_pool()
            self._pool = self._make_pool()
            future = self._pool.submit(self.function, spec.to_dict(), self.device)
        self._futures[future] = (spec, self._pool)

    @property
    def in_flight(self) -> int:
        return len(self._futures)

    def next_result(self) -> tuple[TrialSpec, dict[str, Any] | Lost]:
        done, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
        future = next(iter(done))
        spec, pool = self._futures.pop(future)
        try:
            return spec, future.result()
        except BrokenProcessPool as error:
            if pool not in self._casualties:  # every trial in flight in it is lost with it
                self._casualties[pool] = 1 + sum(other is pool for _, other in self._futures.values())
            lost = self._casualties[pool]
            if not any(other is pool for _, other in self._futures.values()):
                del self._casualties[pool]
            if pool is self._pool:  # not a newer pool that runs the retries of an earlier loss
                self._discard_pool()  # the next submit starts a new pool
            return spec, Lost(f"worker process died ({error})" + (f"; {lost} trials were lost with that pool, "
                                                                   "whichever killed it" if lost > 1 else ""),
                              shared=lost > 1)
        except Exception as error:  # the trial function raised (run_trial returns its errors as records)
            return spec, Lost(f"the trial function raised {type(error).__name__}: {error}")

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self, interrupted: bool = False) -> None:
        if self._pool is not None:
            if interrupted:  # stop now: running trials are abandoned (their results were never written)
                processes = list(getattr(self._pool, "_processes", {}).values())
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.join(5)
                    if process.is_alive():
                        process.kill()
                        process.join()
            # wait even when interrupted: the workers are gone, so this only joins the pool's manager thread. Left
            # running, it closes its wake-up pipe while the interpreter's exit hook writes to it (a CPython race:
            # "OSError: Bad file descriptor" printed after Ctrl-C, once in a fresh-clone suite)
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures.clear()
        self._casualties.clear()


class BatchBackend(LocalBackend):
    """The local pool, with each arm's seeds trained as one batch: ``pg.train_many`` in one worker process.

    The driver hands over every trial at once (``capacity`` is unbounded); when it asks for a result, the trials
    handed over since are grouped by arm (algorithm, environment, overrides) in the order they came, each arm
    that :func:`~pgcourse.course.sweeps.trial.batchable` accepts becomes one batch, and every other trial runs on its own
    (as ``"local"`` runs it). ``workers`` batches train at once. Each trial's record names its batch (its seeds in
    order, its size, its wall time): with other agents an agent's run follows its ``pg.train`` run to rounding,
    then drifts (see ``pg.train_many``), so ``pg.sweeps.verify`` re-runs a batch-made trial in its batch.
    """

    name = "batch"

    def __init__(self, workers: int | None = None, device: str = "cpu"):
        super().__init__(workers, device, function=run_batch)
        self.capacity = sys.maxsize
        self._handed: list[TrialSpec] = []  # handed over, not yet started
        self._batches: dict[Future, tuple[list[TrialSpec], ProcessPoolExecutor]] = {}
        self._ready: list[tuple[TrialSpec, dict[str, Any] | Lost]] = []

    def submit(self, spec: TrialSpec) -> None:
        self._handed.append(spec)

    @property
    def in_flight(self) -> int:
        return len(self._handed) + sum(len(specs) for specs, _ in self._batches.values()) + len(self._ready)

    def _start_batches(self) -> None:
        arms: dict[str, list[TrialSpec]] = {}
        for spec in self._handed:
            key = json.dumps([spec.algo, spec.env_id, dict(spec.overrides)], sort_keys=True) if batchable(spec) \
                else spec.trial_id
            arms.setdefault(key, []).append(spec)
        self._handed = []
        for specs in arms.values():
            if self._pool is None:
                self._pool = self._make_pool()
            data = [spec.to_dict() for spec in specs]
            try:
                future = self._pool.submit(run_batch, data, self.device)
            except BrokenProcessPool:
                self._discard_pool()
                self._pool = self._make_pool()
                future = self._pool.submit(run_batch, data, self.device)
            self._batches[future] = (specs, self._pool)

    def next_result(self) -> tuple[TrialSpec, dict[str, Any] | Lost]:
        if not self._ready:
            self._start_batches()
            done, _ = wait(list(self._batches), return_when=FIRST_COMPLETED)
            future = next(iter(done))
            specs, pool = self._batches.pop(future)
            try:
                self._ready.extend(zip(specs, future.result()))
            except BrokenProcessPool as error:
                lost = len(specs) + sum(len(others) for others, other in self._batches.values() if other is pool)
                if pool is self._pool:
                    self._discard_pool()
                self._ready.extend((spec, Lost(f"worker process died ({error})" + (
                    f"; {lost} trials were lost with that pool, whichever killed it" if lost > 1 else ""),
                    shared=lost > 1)) for spec in specs)
            except Exception as error:  # run_batch raised (it returns training errors as records)
                self._ready.extend((spec, Lost(f"the batch function raised {type(error).__name__}: {error}"))
                                   for spec in specs)
        return self._ready.pop(0)

    def close(self, interrupted: bool = False) -> None:
        super().close(interrupted)
        self._handed.clear()
        self._batches.clear()
        self._ready.clear()


class RayBackend:
    """Trials as Ray tasks, each asking for ``num_cpus=1`` (and ``num_gpus`` when given).

    ``address=None`` (and no ``RAY_ADDRESS``) starts a Ray instance on this machine for the call, with
    ``workers`` CPUs (default: every available core), and stops it afterwards; ``"ray://host:10001"``
    connects to a running cluster through the Ray client, ``"host:6379"`` or ``"auto"`` from a node
    of the cluster. A task whose worker died is retried by Ray once (``max_retries=1``); if it is lost
    again the driver sees a :class:`Lost` and may resubmit it. Every node needs the same pgcourse,
    torch and gymnasium versions installed (each record stores the versions it ran with).

    The Ray started here is small (no dashboard, no usage stats, a 128 MiB object store) and patient
    with a busy machine: see :func:`_start_local_ray`.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, num_gpus: float = 0.0,
                 device: str = "cpu", function=run_trial):
        try:
            import ray
        except ImportError:
            raise ImportError(f"backend='ray' needs Ray: {RAY_INSTALL_HINT}") from None
        self.ray = ray
        self.device = device
        address = address or os.environ.get("RAY_ADDRESS") or None
        self._started_here = False
        if not ray.is_initialized():
            if address is None:  # "local": a new instance, even where `ray start` left a cluster's address
                _start_local_ray(ray, workers or available_cores())
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            self._started_here = True
        self.capacity = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(function).options(num_cpus=1, num_gpus=num_gpus, max_retries=1)
        self._refs: dict[Any, TrialSpec] = {}

    def submit(self, spec: TrialSpec) -> None:
        self._refs[self._remote.remote(spec.to_dict(), self.device)] = spec

    @property
    def in_flight(self) -> int:
        return len(self._refs)

    def next_result(self) -> tuple[TrialSpec, dict[str, Any] | Lost]:
        ready, _ = self.ray.wait(list(self._refs), num_returns=1)
        ref = ready[0]
        spec = self._refs.pop(ref)
        try:
            return spec, self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as error:  # the trial function raised (run_trial never does)
            cause = getattr(error, "cause", None)
            if isinstance(cause, BaseException):  # as the local backend says it (Ray's own text is colored)
                return spec, Lost(f"the trial function raised {type(cause).__name__}: {cause}")
            return spec, Lost(_plain(error))
        except self.ray.exceptions.RayError as error:  # worker or node died (the trial's own errors are records)
            return spec, Lost(_plain(error))

    def close(self, interrupted: bool = False) -> None:
        for ref in list(self._refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # already finished, or the cluster is gone
                pass
        self._refs.clear()
        if self._started_here:
            self.ray.shutdown()


# The Ray that backend="ray" starts on this machine (address=None).
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20  # the trials' records are small (Ray's minimum is 75 MiB; default: 30% of RAM)
LOCAL_START_TRIES = 3
# Ray's waits that a setting can lengthen, for a busy machine (each only where the user has not set it): its
# GCS's port file and first connection (30 s) and a worker process's registration. (ray.init turns usage
# stats off itself, except in nightly builds.)
LOCAL_RAY_ENV = {"RAY_gcs_server_port_wait_time_s": "300", "RAY_worker_register_timeout_seconds": "300"}


def _start_local_ray(ray, num_cpus: int) -> None:
    """``ray.init`` of a new Ray instance on this machine with ``num_cpus`` CPUs, up to LOCAL_START_TRIES tries.

    Ray 2.60 limits a starting node in ways no setting changes: its raylet aborts if the dashboard agent
    (a Python process) has not started within 15 s, and ``ray.init`` gives up 30 s after starting the
    raylet ("The current node timed out during startup"); on a busy 2-core machine either can happen. A
    failed try's processes (this process's Ray children and theirs) are killed before the next one, and
    if every try fails the error says, for each, what Ray said and the first lines of its error logs.
    """
    failures = []
    for attempt in range(1, LOCAL_START_TRIES + 1):
        before, began = _ray_processes_started_here(ray), time.time()
        try:
            with _environ_defaults(LOCAL_RAY_ENV):
                ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                         object_store_memory=LOCAL_OBJECT_STORE_BYTES, log_to_driver=False, configure_logging=False)
            return
        except (TypeError, ValueError):  # a bad setting: another try would not help
            raise
        except Exception as error:
            logs = "".join(f"\n  {line}" for line in _error_logs(ray, began))
            failures.append(f"try {attempt}: {_plain(error)}{logs}")
            with contextlib.suppress(Exception):
                ray.shutdown()
            _kill(_ray_processes_started_here(ray) - before)
    raise RuntimeError(f"Ray did not start on this machine ({LOCAL_START_TRIES} tries; load average "
                       f"{_load_average()}, {available_cores()} cores):\n" + "\n".join(failures))


@contextlib.contextmanager
def _environ_defaults(values: dict[str, str]):
    """``values`` in os.environ (for the processes Ray starts meanwhile) where not set already; removed after."""
    added = [name for name in values if name not in os.environ]
    os.environ.update({name: values[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            if os.environ.get(name) == values[name]:
                del os.environ[name]


def _ray_processes_started_here(ray) -> set[int]:
    """This process's children that run Ray's programs (raylet, gcs_server, Ray's Python daemons) and their
    descendants (Linux; elsewhere none are found, and a failed start's processes end with this process)."""
    ray_dir, parents = os.path.dirname(ray.__file__), {}
    for stat in (os.scandir("/proc") if os.path.isdir("/proc") else ()):
        if stat.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                with open(f"/proc/{stat.name}/stat") as file:
                    parents[int(stat.name)] = int(file.read().rsplit(")", 1)[1].split()[1])
    found = set()
    for pid, parent in parents.items():
        if parent == os.getpid():
            with contextlib.suppress(OSError):
                with open(f"/proc/{pid}/cmdline", "rb") as file:
                    if ray_dir.encode() in file.read():
                        found.add(pid)
    frontier = found
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    for pid in pids:  # reap this process's own children (the rest are reparented and reaped by init)
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:  # not our child, or already reaped
                break
            time.sleep(0.05)


def _error_logs(ray, since: float, lines: int = 2) -> list[str]:
    """``name.err: first lines`` for each of Ray's error logs written since ``since`` (the session's logs)."""
    try:
        temp_dir = ray._common.utils.get_default_ray_temp_dir()
    except Exception:  # Ray's layout changed: its default
        temp_dir = os.path.join(os.environ.get("RAY_TMPDIR", "/tmp"), "ray")
    logs, found = os.path.join(temp_dir, "session_latest", "logs"), []
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(logs)):
            path = os.path.join(logs, name)
            if name.endswith(".err") and os.path.getmtime(path) >= since:
                with open(path, errors="replace") as file:
                    text = [line.strip()[:300] for line in file if line.strip() and not line.lstrip().startswith(
                        ("/", "*** ", "File ", "^"))]
                if text:
                    found.append(f"{name}: " + " | ".join(text[:lines]))
    return found


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:  # not on this platform
        return "unknown"


def _plain(error: BaseException) -> str:
    """``"WorkerCrashedError: ..."``: the error's first line, without Ray's terminal colors."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def make_backend(backend, workers: int | None = None, address: str | None = None, num_gpus: float = 0.0,
                 device: str = "cpu") -> LocalBackend | RayBackend:
    """``"local"``, ``"batch"`` or ``"ray"`` with these settings; a backend object (``LocalBackend(...)``) as it is."""
    if isinstance(backend, (LocalBackend, RayBackend)):
        return backend
    if backend in ("local", "batch"):
        if address is not None:
            raise ValueError(f"address= is for backend='ray'; the {backend} backend runs on this machine")
        if num_gpus:
            raise ValueError("num_gpus= is for backend='ray'; locally pass device='cuda' to train on this machine's GPU")
        return (LocalBackend if backend == "local" else BatchBackend)(workers, device)
    if backend == "ray":
        if num_gpus < 0:
            raise ValueError(f"num_gpus={num_gpus!r} is invalid: expected a number >= 0")
        return RayBackend(address, workers, num_gpus, "cuda" if num_gpus and device == "cpu" else device)
    raise ValueError(f"backend={backend!r} is invalid: expected 'local' (this machine), 'batch' (this machine, each "
                     "arm's seeds as one pg.train_many batch) or 'ray' (a Ray cluster)")
