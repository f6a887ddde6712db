"""The bug hunt's pool of mystery runs, and which six of them each student gets.

The package ships a pool of saved mystery runs (``mysteries/<id>/``, ids are plain numbers that say nothing about
the bug). A student's six trainers are drawn from it by their student id: three CartPole runs (the learner's
trainers 1-3) and three Pendulum runs (4-6), each group ordered and chosen by the SHA-256 of
``f"{TERM}/{student}/{id}"`` (the three smallest digests of the group, smallest first), leaving out the six of
:data:`DEFAULT_DRAW`: those are the solution notebook's, whose answers are published. The draw is a pure
function of (term, student id, the pool), so the notebook and the grader get the same six without storing who got
what; changing :data:`TERM` reshuffles every student's draw for a new course run.

Which student the notebook is for: the student says so (``pg.traps.bug_hunt.my_mysteries("s123")``), and where
the environment variable :data:`STUDENT_VARIABLE` is set (the grader sets it to the id of the submission being
graded) it wins over what the notebook said. With neither, the trainers are :data:`DEFAULT_DRAW`, the six the
solution notebook works.

Nothing here names an answer: the pool's answers live in the solution notebook (``tools/make_mysteries.py`` reads
them from there), and every run of the pool was checked when it was written (``bug_hunt.write_mysteries``).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MYSTERY_DIR = Path(__file__).parent / "mysteries"
MYSTERIES = (1, 2, 3, 4, 5, 6)  # the numbers a learner sees: trainers 1-3 on CartPole, 4-6 on Pendulum
GROUPS = (("CartPole-v1", 3), ("Pendulum-v1", 3))  # (environment, how many of the six), in the learner's order
TERM = "2026"  # the course run's salt: change it to give every student a new draw
STUDENT_VARIABLE = "PGCOURSE_STUDENT_ID"  # set by the grader: the id of the submission it grades
DEFAULT_DRAW = (7, 9, 3, 11, 5, 6)  # pool ids of the trainers 1-6 when no student id is given (the solution's)

_CHOSEN: list[str | None] = [None]  # the student id the notebook gave (my_mysteries)


def pool_ids(folder: Path = MYSTERY_DIR) -> tuple[int, ...]:
    """The ids of the saved mystery runs in ``folder`` (sub-folders named by a number with a config.json)."""
    return tuple(sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / "config.json").is_file()))


def pool_env(pool_id: int, folder: Path = MYSTERY_DIR) -> str:
    """The environment id of pool run ``pool_id`` (read from its saved config)."""
    return json.loads((folder / str(pool_id) / "config.json").read_text())["env_id"]


def _digest(term: str, student: str, pool_id: int) -> str:
    return hashlib.sha256(f"{term}/{student}/{pool_id}".encode()).hexdigest()


def draw(student: str, term: str = TERM, folder: Path = MYSTERY_DIR) -> tuple[int, ...]:
    """The pool ids of ``student``'s trainers 1-6: per group of :data:`GROUPS` (environment, count), the ``count``
    runs of that environment, other than :data:`DEFAULT_DRAW`'s, with the smallest SHA-256 of
    ``f"{term}/{student}/{id}"``, smallest first."""
    if not isinstance(student, str) or not student.strip():
        raise ValueError(f"a student id is a non-empty string (e.g. 's123'), got {student!r}")
    ids = pool_ids(folder)
    chosen: list[int] = []
    for env_id, count in GROUPS:
        group = [i for i in ids if pool_env(i, folder) == env_id and i not in DEFAULT_DRAW]  # not the solution's
        if len(group) < count:
            raise ValueError(f"the pool in {folder} has {len(group)} {env_id} runs besides the solution's; a draw "
                             f"takes {count}")
        chosen += sorted(group, key=lambda i: _digest(term, student.strip(), i))[:count]
    return tuple(chosen)


def current_student() -> str | None:
    """The student whose trainers the bug hunt uses: ``$PGCOURSE_STUDENT_ID`` (the grader's), else the id given
    to :func:`choose_student`, else None (the default draw)."""
    return os.environ.get(STUDENT_VARIABLE) or _CHOSEN[0]


def choose_student(student: str | None) -> None:
    """Use ``student``'s draw from now on in this Python (None: back to the default draw)."""
    if student is not None:
        draw(student)  # validates the id
    _CHOSEN[0] = student.strip() if student is not None else None


def current_draw() -> tuple[int, ...]:
    """The pool ids of the current student's trainers 1-6 (:data:`DEFAULT_DRAW` when no student is chosen)."""
    student = current_student()
    return DEFAULT_DRAW if student is None else draw(student)


def pool_id(k: int) -> int:
    """The pool id of the current student's trainer ``k`` (1 to 6)."""
    if k not in MYSTERIES:
        raise ValueError(f"mystery trainers are numbered {MYSTERIES[0]} to {MYSTERIES[-1]}, got {k!r}")
    return current_draw()[MYSTERIES.index(k)]
