"""Where a sweep's trials run: ``"local"`` (a process pool on this machine, the default) or ``"ray"``
(a Ray cluster: started on this machine for the call, or an existing one at ``address``).

Both have the same small interface: :meth:`submit` a trial, :meth:`next_result` blocks until any
trial ends and returns ``(spec, record)`` — a trial's record, or a :class:`Lost` when the process
running it died (out of memory, a killed node) — and :meth:`close`. Results come back as trials
finish, in any order; the driver (:func:`pgcourse.sweeps.sweep`) writes and retries.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from .spec import TrialSpec
from .trial import run_trial

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
            context.set_forkserver_preload(["pgcourse.sweeps.trial"])  # each worker starts with torch imported
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
                for process in list(getattr(self._pool, "_processes", {}).values()):
                    process.terminate()
            self._pool.shutdown(wait=not interrupted, cancel_futures=True)
            self._pool = None
        self._futures.clear()
        self._casualties.clear()


class RayBackend:
    """Trials as Ray tasks, each asking for ``num_cpus=1`` (and ``num_gpus`` when given).

    ``address=None`` (and no ``RAY_ADDRESS``) starts a Ray instance on this machine for the call, with
    ``workers`` CPUs (default: every available core), and stops it afterwards; ``"ray://host:10001"``
    connects to a running cluster through the Ray client, ``"host:6379"`` or ``"auto"`` from a node
    of the cluster. A task whose worker died is retried by Ray once (``max_retries=1``); if it is lost
    again the driver sees a :class:`Lost` and may resubmit it. Every node needs the same pgcourse,
    torch and gymnasium versions installed (each record stores the versions it ran with).
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
                ray.init(address="local", num_cpus=workers or available_cores(), include_dashboard=False,
                         log_to_driver=False, configure_logging=False)
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


def _plain(error: BaseException) -> str:
    """``"WorkerCrashedError: ..."``: the error's first line, without Ray's terminal colors."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def make_backend(backend, workers: int | None = None, address: str | None = None, num_gpus: float = 0.0,
                 device: str = "cpu") -> LocalBackend | RayBackend:
    """``"local"`` or ``"ray"`` with these settings; a backend object (``LocalBackend(...)``) as it is."""
    if isinstance(backend, (LocalBackend, RayBackend)):
        return backend
    if backend == "local":
        if address is not None:
            raise ValueError("address= is for backend='ray'; the local backend runs on this machine")
        if num_gpus:
            raise ValueError("num_gpus= is for backend='ray'; locally pass device='cuda' to train on this machine's GPU")
        return LocalBackend(workers, device)
    if backend == "ray":
        if num_gpus < 0:
            raise ValueError(f"num_gpus={num_gpus!r} is invalid: expected a number >= 0")
        return RayBackend(address, workers, num_gpus, "cuda" if num_gpus and device == "cpu" else device)
    raise ValueError(f"backend={backend!r} is invalid: expected 'local' (this machine) or 'ray' (a Ray cluster)")
