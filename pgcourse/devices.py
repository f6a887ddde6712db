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

Only ``torch`` is imported here, so the training loops, the language-model loop and the CLI share the rule.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch

DEVICE_ENV_VAR = "PGCOURSE_DEVICE"
VALID_DEVICES = "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"

# Why "auto" is the CPU, in one sentence (it goes into each run's record).
AUTO_CPU_REASON = ("auto: the CPU, since the course's runs are small and its environments step on the CPU; nothing "
                   "it runs was measured faster on a GPU (PPO on CartPole, 100k steps: 54.0 s on an H100 against "
                   "20.6 s on that machine's CPU, one run each)")

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


def choose_device(device: str = "auto") -> DeviceChoice:
    """The device for ``device`` and why.

    Args:
        device: ``"auto"`` (the CPU, or what ``PGCOURSE_DEVICE`` names), ``"cpu"``, ``"cuda"``,
            ``"cuda:<index>"`` or ``"mps"``.

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


def _notice_gpu_not_chosen() -> None:
    """One line, once per process, when a GPU is present and ``auto`` chose the CPU."""
    global _notice_shown
    kind = gpu_present()
    if kind is None or _notice_shown:
        return
    _notice_shown = True
    print(f"pgcourse: device='auto' trains on the CPU although {kind.upper()} is available: the course's runs are "
          f"small and nothing it runs was measured faster on a GPU. device={kind!r} (or {DEVICE_ENV_VAR}={kind}) "
          "trains there.", file=sys.stderr)
