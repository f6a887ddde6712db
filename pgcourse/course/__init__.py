"""The course's teaching tools, on top of the RL library (:mod:`pgcourse.rl`).

``checks/`` (the exercises' checks, one module per chapter), ``hints``, ``concepts``, ``claims`` (a lesson's
sentence checked against its numbers), ``debugging/`` (lesson 06: ``pg.diagnose``, the experiments, the bug
hunt, the probes), ``views/`` (plots, GIFs, widgets), ``sweeps/`` and ``stats`` (many seeds, intervals),
``tabular`` (exact small MDPs) and ``colab_cells``. Imports the RL library, never the classroom
(except its ``sandboxed`` kit, which imports nothing).
"""
