"""Which device a run trains on, and why: the rule that picks the device behind ``device="auto"``.

(Where a run's tensors live once it has a device is another rule, the course's *device rule*: a run's
modules on ``run.device``; histories, batches and evaluation results handed to lesson code on the CPU.)

The course's environments are gymnasium's, stepped as numpy on the CPU, and its networks and batches are
small (two 64-unit layers; hundreds to a few thousand transitions per update). Every environment step then
copies observations to the device and actions back, and each copy waits for the GPU. One measurement, one
run each, on one NVIDIA H100 80GB machine (16-core Intel Xeon, torch 2.11.0+cu130; reported in the
project's issue 33): ``pg.train("ppo", "CartPole-v1")`` for 100k steps took 20.6 s on its CPU and 54.0 s on
CUDA, both reaching a return of 500. Nothing the course runs has been measured faster on a GPU (the
language-model loop of lesson 08 and TRPO have not been timed on one; Apple's MPS never). So ``"auto"``
means **the CPU**, on a laptop, a GPU box and Colab's GPU runtime alike: there a run is on the same device
as on a CPU-only machine, so it gives the numbers of a CPU that rounds alike and the verdicts the lessons
assert on any CPU. When a GPU is present and not chosen, one line says so, once per process.

A device is asked for explicitly with ``device="cuda"`` (``"cuda:1"``, ``"mps"``, ``"cpu"``), or for every
``device="auto"`` at once with the environment variable ``PGCOURSE_DEVICE`` (e.g. ``PGCOURSE_DEVICE=cuda``
before starting Jupyter, or ``os.environ["PGCOURSE_DEVICE"] = "cuda"`` at the top of a notebook). It needs a
CUDA build of torch. It reaches what defaults to ``"auto"`` (``pg.train``, ``pg.resume``, the CLI's train and
resume, ``pg.lm.finetune``); ``pg.load``, ``pg.sweep``, ``pg.lm.pretrain`` and ``pgcourse bench`` default to
``"cpu"``, and a lesson's runs with ``device="cpu"`` stay on the CPU. A device that is asked for and absent
is an error that says so; nothing falls back silently.

**The one exception: a torch environment past the measured crossover.** With ``env_backend="torch"`` the
environment itself is tensors (:mod:`pgcourse.rl.tensor_envs`) and a step waits for no host copy, so a wide batch
can be faster on a GPU. Where that starts is a property of the machine: ``pgcourse bench device`` measures
PPO's env steps per second on the CPU and the GPU at a few widths and writes the smallest width from which
the GPU is faster at every width it measured (the crossover) to a cache file (:func:`crossover_path`).
``"auto"`` picks CUDA only when the run has ``env_backend="torch"``, CUDA is present, that file holds a
crossover measured on this GPU (its name) with this torch, the run is of the workload class measured (PPO with a
minibatch count, ``num_minibatches``: :data:`MEASURED_WORKLOAD`) and ``num_envs`` is at or past it; otherwise
the CPU, and the reason says which condition was missing. Never MPS unless asked.

Only ``torch`` and the standard library are imported here, so the training loops, the language-model loop and
the CLI share the rule.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

DEVICE_ENV_VAR = "PGCOURSE_DEVICE"
VALID_DEVICES = "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"

# Why "auto" is the CPU (it goes into each run's record). `pgcourse train` prints its first sentence, "auto: the CPU",
# and points to the run's meta.json for the rest: keep that sentence short.
AUTO_CPU_REASON = ("auto: the CPU. The course's networks are small and its environments step on the CPU; in the one "
                   "course run timed on both, PPO on CartPole (100k steps) took 20.6 s on a machine's CPU and 54.0 s "
                   "on its H100 GPU")

_notice_shown = False


@dataclass(frozen=True)
class DeviceChoice:
    """The device a run uses and the reason, in words (kept in the run's record: ``run.device_reason``)."""

    device: torch.device
    reason: str


def is_valid_device_name(name: object) -> bool:
    """Whether ``name`` is one of :data:`VALID_DEVICES` (``"cuda:<index>"`` with a non-negative integer)."""
    if not isinstance(name, str):
        return False
    if name in ("auto", "cpu", "mps", "cuda"):
        return True
    index = name.removeprefix("cuda:")
    return name.startswith("cuda:") and index.isdigit() and index.isascii() and str(int(index)) == index


def gpu_present() -> str | None:
    """``"cuda"`` or ``"mps"`` when this machine has such a device that torch can use, else None."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return None


CACHE_ENV_VAR = "PGCOURSE_CACHE_DIR"
CROSSOVER_FORMAT = "pgcourse-device-crossover"


def crossover_path() -> Path:
    """Where ``pgcourse bench device`` writes the measured crossover: ``$PGCOURSE_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/pgcourse``, else ``~/.cache/pgcourse``; the file ``device_crossover.json``."""
    folder = os.environ.get(CACHE_ENV_VAR) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "pgcourse")
    return Path(folder) / "device_crossover.json"


def cuda_identity() -> dict[str, str]:
    """What a crossover measured on this machine is valid for: the GPU's name and the torch version."""
    return {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}


# The workload class pgcourse bench device measures: PPO whose gradient steps per update are a fixed count
# (num_minibatches), not a fixed size that multiplies them with the width. A crossover says nothing of other classes
# (A2C, PPO with the course's minibatch_size): "auto" keeps those on the CPU (issue 44, item 6).
MEASURED_WORKLOAD = {"algo": "ppo", "minibatches": "count"}


def workload_of(algo: str | None, num_minibatches: int | None) -> dict[str, str | None]:
    """A run's workload class, as the crossover file names the one it measured."""
    return {"algo": algo, "minibatches": "count" if num_minibatches is not None else "size"}


def write_crossover(crossover_envs: int | None, measured: dict[str, Any], path: Path | None = None) -> Path:
    """Store a crossover (``num_envs`` from which the GPU was faster at every measured width; None: never) for
    this GPU and torch, with the measurements it rests on."""
    path = crossover_path() if path is None else path
    path.parent.mkdir(parents=True, exist_ok=True)
    import datetime
    record = {"format": CROSSOVER_FORMAT, "version": 1, **cuda_identity(), "crossover_envs": crossover_envs,
              "workload": measured.get("workload", MEASURED_WORKLOAD),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "measured": measured}
    path.write_text(json.dumps(record, indent=1))
    return path


def read_crossover() -> tuple[int | None, str]:
    """``(crossover num_envs or None, why)`` for this machine's GPU, from :func:`crossover_path`: None when the
    file is missing, unreadable, from another GPU or torch, or says the GPU was never faster."""
    path = crossover_path()
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None, "no crossover measured on this machine (pgcourse bench device measures it)"
    except (OSError, ValueError) as error:
        return None, f"the crossover file {path} cannot be read ({error}); pgcourse bench device rewrites it"
    if not isinstance(record, dict) or record.get("format") != CROSSOVER_FORMAT:
        return None, f"{path} is not a crossover file of pgcourse bench device"
    here = cuda_identity()
    if record.get("gpu") != here["gpu"] or record.get("torch") != here["torch"]:
        return None, (f"the crossover in {path} was measured on {record.get('gpu')!r} with torch "
                      f"{record.get('torch')}, not this {here['gpu']!r} with torch {here['torch']} "
                      "(pgcourse bench device measures it here)")
    crossover = record.get("crossover_envs")
    if crossover is None:
        widest = max((int(width) for width in record.get("measured", {}).get("widths", [])), default=0)
        return None, f"pgcourse bench device measured the GPU slower than the CPU at every width up to {widest} envs"
    if isinstance(crossover, bool) or not isinstance(crossover, int) or crossover < 1:
        return None, f"{path} holds no valid crossover ({crossover!r})"
    workload = record.get("workload", MEASURED_WORKLOAD)  # files before issue 44 measured this class
    when = f" on {record['date']}" if record.get("date") else ""
    return crossover, (f"crossover {crossover} envs, measured by pgcourse bench device on this {here['gpu']}{when} "
                       f"for {workload.get('algo')} with a minibatch {workload.get('minibatches')} ({path})")


def read_workload() -> dict[str, Any]:
    """The workload class of this machine's crossover file (:data:`MEASURED_WORKLOAD` for older files)."""
    try:
        record = json.loads(crossover_path().read_text())
    except (OSError, ValueError):
        return MEASURED_WORKLOAD
    return record.get("workload", MEASURED_WORKLOAD) if isinstance(record, dict) else MEASURED_WORKLOAD


def choose_device(device: str = "auto", *, env_backend: str = "numpy", num_envs: int | None = None,
                  algo: str | None = None, num_minibatches: int | None = None) -> DeviceChoice:
    """The device for ``device`` and why.

    Args:
        device: ``"auto"`` (the CPU, or what ``PGCOURSE_DEVICE`` names, or CUDA for a torch environment past the
            measured crossover, for the workload class it was measured on: see the module), ``"cpu"``, ``"cuda"``,
            ``"cuda:<index>"`` or ``"mps"``.
        env_backend: the run's ``env_backend`` (``"torch"``: the environment can live on the GPU).
        num_envs: the run's batch width, compared with the crossover.
        algo, num_minibatches: the run's workload class (:func:`workload_of`), compared with the measured one.

    Raises:
        ValueError: a name that is none of those, in the argument or in ``PGCOURSE_DEVICE``, or a device
            that is asked for and absent on this machine.
    """
    if not is_valid_device_name(device):
        raise ValueError(f"device={device!r} is invalid: expected {VALID_DEVICES}")
    if device == "auto":
        forced = os.environ.get(DEVICE_ENV_VAR, "").strip()
        if forced and forced != "auto":
            if not is_valid_device_name(forced):
                raise ValueError(f"the environment variable {DEVICE_ENV_VAR}={forced!r} is invalid: expected "
                                 f"{VALID_DEVICES} (or unset it)")
            return DeviceChoice(_available(forced, f"{DEVICE_ENV_VAR}={forced}",
                                           f"unset {DEVICE_ENV_VAR} or set it to 'cpu'"), f"{DEVICE_ENV_VAR}={forced}")
        if env_backend == "torch" and torch.cuda.is_available():
            crossover, why = read_crossover()
            measured, run_class = read_workload(), workload_of(algo, num_minibatches)
            if crossover is not None and run_class != measured:
                _notice_gpu_not_chosen()
                return DeviceChoice(torch.device("cpu"), f"auto: the CPU, since this run is {run_class['algo']} with a "
                                                         f"minibatch {run_class['minibatches']}, not the workload the "
                                                         f"{why} (a measurement of one class says nothing of another)")
            if crossover is not None and num_envs is not None and num_envs >= crossover:
                return DeviceChoice(torch.device("cuda"), f"auto: CUDA, since env_backend='torch' and num_envs="
                                                          f"{num_envs} is at or past the {why}")
            _notice_gpu_not_chosen(" For env_backend='torch', pgcourse bench device measures from which num_envs the "
                                   "GPU is faster, and device='auto' then uses it there.")
            if crossover is not None:
                return DeviceChoice(torch.device("cpu"), f"auto: the CPU, since num_envs={num_envs} is below the "
                                                         f"{why}")
            return DeviceChoice(torch.device("cpu"), f"auto: the CPU, although env_backend='torch' could run on "
                                                     f"CUDA: {why}")
        _notice_gpu_not_chosen()
        return DeviceChoice(torch.device("cpu"), AUTO_CPU_REASON)
    return DeviceChoice(_available(device, f"device={device!r}", "use device='auto' or 'cpu'"),
                        f"asked for: device={device!r}")


def resolve_device(device: str = "auto") -> torch.device:
    """:func:`choose_device` without the reason."""
    return choose_device(device).device


def _available(name: str, asked: str, instead: str) -> torch.device:
    resolved = torch.device(name)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{asked} asks for CUDA, but CUDA is not available on this machine (torch "
                             f"{torch.__version__}{'' if torch.version.cuda else ', a build without CUDA'}); {instead}")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"{asked} asks for GPU {resolved.index}, but this machine has "
                             f"{torch.cuda.device_count()} (numbered from 0)")
    if resolved.type == "mps" and gpu_present() != "mps":
        raise ValueError(f"{asked} asks for MPS, but MPS is not available on this machine; {instead}")
    return resolved


def _notice_gpu_not_chosen(more: str = "") -> None:
    """One line, once per process, when a GPU is present and ``auto`` chose the CPU (``more`` is added to it)."""
    global _notice_shown
    kind = gpu_present()
    if kind is None or _notice_shown:
        return
    _notice_shown = True
    print(f"pgcourse: device='auto' trains on the CPU although {kind.upper()} is available: the course's runs are "
          f"small, and the one run timed on a GPU was slower there. device={kind!r} (or {DEVICE_ENV_VAR}={kind}) "
          f"trains there.{more}", file=sys.stderr)
