"""What a run needs, besides its weights and history, to continue exactly where it stopped.

A training state is taken between two updates. With the run's weights and history it holds everything
the next update reads: the optimisers' moments and learning rates, torch's and numpy's global random
generators and the minibatch generator, the vector environments themselves (mid-episode, with their own
generators, the autoreset flags and the normalisers' running statistics), and the loop's counters.
Training on from it gives the same numbers, to the bit on CPU, as a run that never stopped
(``tests/test_resume.py``).

Accelerators' generators: the CUDA generator of every GPU is saved when CUDA is in use (available and
initialised; a CUDA run samples its actions from it), and the MPS generator when MPS is available. On
resuming they are put back where that backend is available. The state also records the device the run
trained on. Resuming on another kind of device (a CPU checkpoint on a CUDA machine, or the reverse)
works, from the same weights, optimisers and CPU/numpy generators, and warns that the numbers will not
be those of a run that never stopped (other kernels, other random streams): the saved CUDA/MPS states
are then ignored where that backend is missing, and a backend with no saved state keeps its fresh seed.
A CUDA checkpoint resumed with another number of GPUs restores the GPUs both have, and warns.

The environments are pickled, so a training state is a pickle: resume only runs you made or trust,
as with any pickle. (The weights file stays a plain tensor file, loaded with ``weights_only=True``.)
"""
from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ..history import History
from ..run import Run

STATE_VERSION = 1


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed run starts: the run (its weights and history) and its training state."""

    run: Run
    state: dict[str, Any]


def _vector_env_base(envs: gym.vector.VectorEnv) -> gym.vector.VectorEnv:
    """The innermost vector env under the normalisation and statistics wrappers."""
    while isinstance(envs, gym.vector.VectorWrapper):
        envs = envs.env
    return envs


def pickle_envs(envs: gym.vector.VectorEnv, stepper: Any) -> bytes:
    """Bytes of the vector env and its stepper (one pickle, so the stepper keeps pointing at the env).

    ``SyncVectorEnv`` keeps the functions that built its envs, closures pickle cannot store; they are
    used only in its constructor, so they are left out while pickling."""
    base = _vector_env_base(envs)
    env_fns = getattr(base, "env_fns", None)
    if env_fns is not None:
        base.env_fns = None
    try:
        return pickle.dumps((envs, stepper), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:  # an env holding a C object (e.g. Box2D) cannot be pickled
        raise TypeError(f"the environments of this run cannot be saved for resuming ({type(error).__name__}: "
                        f"{error})") from error
    finally:
        if env_fns is not None:
            base.env_fns = env_fns


def cuda_rng_in_use() -> bool:
    """Whether CUDA's generators can matter to this process: CUDA is available and initialised (reading
    them then starts nothing; a CUDA run has initialised it)."""
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def mps_available() -> bool:
    """Whether this torch has Apple's MPS backend and a device for it."""
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


def accelerator_rng_states() -> dict[str, Any]:
    """The accelerators' generator states: ``cuda_rng`` (one CPU ByteTensor per GPU, from
    ``torch.cuda.get_rng_state_all()``) when :func:`cuda_rng_in_use`, ``mps_rng`` (a CPU ByteTensor, from
    ``torch.mps.get_rng_state()``) when :func:`mps_available`; None for a backend not in use."""
    return {"cuda_rng": torch.cuda.get_rng_state_all() if cuda_rng_in_use() else None,
            "mps_rng": torch.mps.get_rng_state() if mps_available() else None}


def restore_accelerator_rng_states(state: dict[str, Any], device: torch.device) -> list[str]:
    """Put the saved CUDA/MPS generator states of ``state`` back where that backend is available, for a
    run continuing on ``device``; returns what the continuation cannot repeat (one sentence each, empty when
    it repeats the run that never stopped). A state from before these were saved has neither key."""
    notes = []
    saved_device = state.get("device")
    saved_type = None if saved_device is None else torch.device(saved_device).type
    if saved_type is not None and saved_type != device.type:
        notes.append(f"this run trained on {saved_type} and continues on {device.type}: it goes on from the same "
                     "weights, optimisers and CPU generators, but its numbers will differ from a run that never "
                     "stopped (other kernels, other random streams)")
    same_type = saved_type in (None, device.type)
    cuda_states = state.get("cuda_rng")
    if cuda_states is not None and torch.cuda.is_available():
        count = torch.cuda.device_count()
        if len(cuda_states) != count:
            notes.append(f"the training state holds the CUDA generators of {len(cuda_states)} GPU(s) and this "
                         f"machine has {count}: the first {min(count, len(cuda_states))} were restored")
        torch.cuda.set_rng_state_all(cuda_states[:count])
    elif cuda_states is None and device.type == "cuda" and same_type:
        notes.append("the training state holds no CUDA generator state (saved by an older pgcourse): the CUDA "
                     "generators keep their fresh seed, so the actions sampled from now on differ from a run "
                     "that never stopped")
    mps_state = state.get("mps_rng")
    if mps_state is not None and mps_available():
        torch.mps.set_rng_state(mps_state)
    elif mps_state is None and device.type == "mps" and same_type:
        notes.append("the training state holds no MPS generator state (saved by an older pgcourse): the MPS "
                     "generator keeps its fresh seed, so the actions sampled from now on differ from a run "
                     "that never stopped")
    return notes


def capture(trainer: Any) -> dict[str, Any]:
    """The training state of ``trainer`` (a :class:`~.trainer.Trainer`) now (call it between updates)."""
    return {
        "version": STATE_VERSION,
        "algo": trainer.config.algo,
        "env_id": trainer.config.env_id,
        "env_step": trainer.env_step,
        "num_updates": trainer.num_updates,
        "elapsed": trainer.elapsed(),
        "next_eval": trainer._next_eval,
        "envs": pickle_envs(trainer.envs, trainer.stepper),
        "device": str(trainer.device),
        "torch_rng": torch.get_rng_state(),
        **accelerator_rng_states(),
        "numpy_rng": np.random.get_state(),
        "minibatch_rng": trainer.minibatch_generator.get_state(),
        "minibatch_rng_device": trainer.minibatch_generator.device.type,
        "actor_optimizer": trainer.actor_optimizer.state_dict(),
        "critic_optimizer": None if trainer.critic_optimizer is None else trainer.critic_optimizer.state_dict(),
    }


def restore(trainer: Any, state: dict[str, Any]) -> None:
    """Put ``state`` into a freshly built ``trainer`` (whose weights and history are already the run's)."""
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"training state version {state.get('version')!r}; this pgcourse reads {STATE_VERSION}")
    envs, stepper = pickle.loads(state["envs"])
    trainer.envs.close()  # the freshly made ones
    trainer.envs, trainer.stepper = envs, stepper
    trainer.env_step = int(state["env_step"])
    trainer.num_updates = int(state["num_updates"])
    trainer._next_eval = state["next_eval"]
    trainer.actor_optimizer.load_state_dict(state["actor_optimizer"])
    if trainer.critic_optimizer is not None:
        trainer.critic_optimizer.load_state_dict(state["critic_optimizer"])
    torch.set_rng_state(state["torch_rng"])
    for note in restore_accelerator_rng_states(state, trainer.device):
        warnings.warn(f"resuming: {note}", RuntimeWarning, stacklevel=4)
    np.random.set_state(state["numpy_rng"])
    drawn_on = state.get("minibatch_rng_device", "cpu")  # older states: the CPU, where it always was
    if drawn_on == trainer.minibatch_generator.device.type:
        trainer.minibatch_generator.set_state(state["minibatch_rng"])
    else:
        warnings.warn(f"resuming: the minibatch permutations were drawn on {drawn_on} and are now drawn on "
                      f"{trainer.minibatch_generator.device.type} (another generator, seeded afresh): the shuffles "
                      "from now on differ from a run that never stopped", RuntimeWarning, stacklevel=4)


def continue_from(trainer: Any, resume: ResumePoint) -> History:
    """Load the run's weights and its training state into a freshly built ``trainer``; returns a copy of
    the run's history to go on writing (the run passed in is left as it was)."""
    trainer.policy.load_state_dict(resume.run.policy.state_dict())
    if trainer.value_net is not None:
        trainer.value_net.load_state_dict(resume.run.value_net.state_dict())
    restore(trainer, resume.state)
    history = History.from_dict(resume.run.history.to_dict())
    history.status = "running"
    return history
