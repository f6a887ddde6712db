"""Make the loop-stage checks of lesson 01 and chapter 04b graded exercises (nbgrader metadata), idempotently.

The write-the-loop exercises (lesson 01's REINFORCE loop, 04b's PPO from scratch) are checked in stages by
``pg.checks.check_collect_episodes`` / ``check_reinforce_update`` / ``check_train_reinforce`` and
``check_collect_rollout`` / ``check_ppo_update`` / ``check_train_ppo``. This script gives each such check cell
the nbgrader metadata of a graded check (``grade: true``, ``locked``, a ``grade_id`` = the answer cell's id +
``_check``, ``points`` from :data:`POINTS`), keeping its tags; nothing else of the notebook changes. Run it again
after editing the notebooks: a cell already right is left as it is.

    .venv/bin/python tools/grade_loop_stages_metadata.py              # solutions/ and exercises/ 01 and 04b
    .venv/bin/python tools/grade_loop_stages_metadata.py --check      # exit 1 if a notebook needs the metadata
    .venv/bin/python tools/grade_loop_stages_metadata.py path/to/01_reinforce.ipynb ...

How ``pgcourse grade`` grades these cells (each stage played in the sandbox, the end-to-end stages reduced to
one seed and a shorter budget): docs/teachers.md.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("01_reinforce.ipynb", "04b_ppo_from_scratch.ipynb")
# the stage a check cell calls -> its points (the function checks of these chapters give 1-2 points each)
POINTS = {"collect_episodes": 2, "reinforce_update": 2, "train_reinforce": 2,
          "collect_rollout": 3, "ppo_update": 3, "train_ppo": 3}
CHECK_CALL = re.compile(r"\bpg\.checks\.check_(" + "|".join(POINTS) + r")\(")


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def graded_metadata(grade_id: str, points: int) -> dict:
    return {"grade": True, "grade_id": grade_id, "locked": True, "points": points, "schema_version": 3,
            "solution": False}


def apply(notebook: dict) -> list[str]:
    """Give every loop-stage check cell of ``notebook`` its graded metadata (in place); what changed, in words."""
    changes = []
    answer_id = None
    for index, cell in enumerate(notebook.get("cells", [])):
        meta = cell.setdefault("metadata", {})
        nbgrader = meta.get("nbgrader") or {}
        if cell.get("cell_type") != "code":
            continue
        if nbgrader.get("solution"):
            answer_id = nbgrader.get("grade_id")
            continue
        found = CHECK_CALL.search(_source(cell))
        if not found:
            continue
        stage = found.group(1)
        if not answer_id or not answer_id.endswith(stage):
            raise SystemExit(f"cell {index} checks {stage}, but the answer cell before it is {answer_id!r}: "
                             "expected an answer cell whose grade_id ends with the stage's name")
        wanted = graded_metadata(f"{answer_id}_check", POINTS[stage])
        if nbgrader != wanted:
            meta["nbgrader"] = wanted
            changes.append(f"cell {index}: {stage} graded, {POINTS[stage]} points, grade_id {answer_id}_check")
        answer_id = None
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, help="notebooks (default: solutions/ and exercises/ 01, 04b)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook needs changes")
    args = parser.parse_args(argv)
    paths = args.paths or [ROOT / folder / name for folder in ("solutions", "exercises") for name in NOTEBOOKS]
    needed = False
    for path in paths:
        if not path.exists():
            print(f"{path}: not found, skipped")
            continue
        notebook = json.loads(path.read_text(encoding="utf-8"))
        changes = apply(notebook)
        if not changes:
            print(f"{path}: up to date")
            continue
        needed = True
        for change in changes:
            print(f"{path}: {change}")
        if not args.check:
            path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 1 if needed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
