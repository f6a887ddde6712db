"""What a run needs, besides its weights and history, to continue exactly where it stopped.

A training state is taken between two updates. With the run's weights and history it holds everything
the next update reads: the optimisers' moments and learning rates, torch's and numpy's global random
generators and the minibatch generator, the vector environments themselves (mid-episode, with their own
generators, the autoreset flags and the normalisers' running statistics), and the loop's counters.
Training on from it gives the same numbers, to the bit on CPU, as a run that never stopped
(``tests/test_resume.py``).

The environments are pickled, so a training state is a pickle: resume only runs you made or trust,
as with any pickle. (The weights file stays a plain tensor file, loaded with ``weights_only=True``.)
"""
from __future__ import annotations

import pickle
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
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.get_state(),
        "minibatch_rng": trainer.minibatch_generator.get_state(),
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
    np.random.set_state(state["numpy_rng"])
    trainer.minibatch_generator.set_state(state["minibatch_rng"])


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
