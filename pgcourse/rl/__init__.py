"""The RL library: what a learner reads and what trains the agents.

The math (``returns``: GAE; ``losses``; ``diagnostics``; ``batching``; ``trust_region``), the environments
(``envs``: gymnasium's; ``tensor_envs``/``tensor_dynamics``: the torch envs), ``networks``, ``config``,
``history``, ``run`` and ``evaluation``; the loops (``algorithms/``: one per algorithm, A2C and PPO with an agent
axis) and the training API (``api``: ``pg.train``, ``pg.resume``; ``many``: ``pg.train_many``), with what a run
writes as it trains (``loggers``, ``live``) and the bugs lesson 06 plants in it (``planted``); ``lm/``: policy
gradients for a tiny language model. Imports nothing of ``pgcourse.course`` or ``pgcourse.classroom``.
"""
