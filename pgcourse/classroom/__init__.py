"""The classroom: ``grading/`` (``pgcourse grade``), ``handout`` (the learner's copy of the course),
``exercisegen`` (exercises from the solutions), ``notebook_format`` (notebook files and nbgrader's conventions),
and ``sandboxed/``: the code that runs inside the grader's sandbox, which imports nothing of ``pgcourse``.
"""
