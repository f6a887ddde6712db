"""One readable training loop per algorithm (`reinforce.py`, `a2c.py`, `ppo.py`, `trpo.py`) over shared parts.

- ``components.py``: :class:`Components`, the math the loops call (every field a learner can replace);
- ``trainer.py``: :class:`Trainer` (build, act, step, record, evaluate, guard) and :class:`Hooks`, the
  named steps where lesson 06's planted bugs plug in from outside;
- ``agents.py`` and ``stacked.py``: the agent axis of the A2C and PPO loops (one agent: ``pg.train``; A agents
  with stacked weights: ``pg.train_many``);
- ``rollout.py``: collecting rollouts ``[T, A, N]`` and whole episodes.

Every loop has the signature
``train_<algo>(config, components=None, hooks=None, on_update=None, resume=None) -> Run`` (A2C and PPO also take
a sequence of configs, one agent each, and return a list of runs).
"""
from .a2c import train_a2c
from .components import Components
from .ppo import train_ppo
from .reinforce import train_reinforce
from .trpo import train_trpo
from .trainer import Hooks, NonFiniteError, Trainer

TRAINERS = {"reinforce": train_reinforce, "reinforce_baseline": train_reinforce, "a2c": train_a2c, "ppo": train_ppo,
            "trpo": train_trpo}

__all__ = ["train_a2c", "train_ppo", "train_reinforce", "train_trpo", "Components", "Hooks", "NonFiniteError", "Trainer",
           "TRAINERS"]
