"""``python -m pgcourse.classroom.grading``: the same as ``pgcourse grade``."""
from .command import main

if __name__ == "__main__":
    raise SystemExit(main())
