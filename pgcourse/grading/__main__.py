"""``python -m pgcourse.grading``: the same as ``pgcourse grade``."""
from .grader import main

if __name__ == "__main__":
    raise SystemExit(main())
