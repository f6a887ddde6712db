"""The code that runs inside the grader's sandbox (the grader copies these files there): it imports nothing of
``pgcourse``, only the standard library, numpy, torch and gymnasium, and each other."""
