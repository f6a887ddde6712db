"""One readable training loop per algorithm; shared plumbing lives in ``core``."""
from .a2c import train_a2c
from .core import Components, NonFiniteError, Trainer
from .ppo import train_ppo
from .reinforce import train_reinforce

TRAINERS = {"reinforce": train_reinforce, "reinforce_baseline": train_reinforce, "a2c": train_a2c, "ppo": train_ppo}

__all__ = ["train_a2c", "train_ppo", "train_reinforce", "Components", "NonFiniteError", "Trainer", "TRAINERS"]
