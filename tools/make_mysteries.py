"""Regenerate the bug hunt's pool of mystery runs (``pgcourse/traps/mysteries/<id>/``), for course maintainers.

    python tools/make_mysteries.py                      # the whole pool: answers from the solution notebook, saved seeds
    python tools/make_mysteries.py --ids 7,8            # only these pool runs
    python tools/make_mysteries.py --seeds 7=3,8=5      # other training seeds
    python tools/make_mysteries.py --out /tmp/m         # somewhere else (e.g. to compare)

The planted trap of each pool run is read from the solution notebook ``solutions/06_debugging_traps.ipynb`` (the one
place the answers live): its ``solution_only`` cell assigns ``pool_answers = {id: "trap", ...}`` for the whole pool,
and its answer cells ``answer_k = "..."`` must agree with it on the default draw (``pgcourse.traps.pool.DEFAULT_DRAW``),
so neither this script nor the package stores them. How each run is trained apart from its bug is
``pgcourse.traps.bug_hunt.MYSTERY_SPECS``. :func:`pgcourse.traps.bug_hunt.write_mysteries` trains each, checks that
pg.diagnose's first lead is not its bug, that the bug-hunt check tells its trap from every other trap and from no
trap, and that another rounding does not move it, and writes nothing unless all of them are sound.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pgcourse.traps import bug_hunt  # noqa: E402

SOLUTION = ROOT / "solutions" / "06_debugging_traps.ipynb"


def _assignments(path: Path) -> dict[str, object]:
    """The notebook's top-level assignments of constants (``name = "..."`` or a dict of constants), by name."""
    found: dict[str, object] = {}
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                try:
                    found[node.targets[0].id] = ast.literal_eval(node.value)
                except ValueError:
                    continue
    return found


def answers_from_notebook(path: Path = SOLUTION) -> dict[int, str]:
    """``{k: trap}`` of the default draw, from the notebook's top-level assignments ``answer_k = "trap"``."""
    return {int(name.removeprefix("answer_")): value for name, value in _assignments(path).items()
            if name.startswith("answer_") and name.removeprefix("answer_").isdigit() and isinstance(value, str)}


def pool_answers_from_notebook(path: Path = SOLUTION) -> dict[int, str]:
    """``{pool id: trap}`` for the whole pool, from the notebook's ``pool_answers = {...}``; checked against its
    answer cells on the default draw."""
    pool = {int(k): v for k, v in dict(_assignments(path).get("pool_answers") or {}).items()}
    for k, trap in answers_from_notebook(path).items():
        pool_id = bug_hunt.DEFAULT_DRAW[k - 1]
        if pool.get(pool_id) != trap:
            raise ValueError(f"{path}: answer_{k} = {trap!r} but pool_answers[{pool_id}] = {pool.get(pool_id)!r} "
                             f"(trainer {k} of the default draw is pool run {pool_id})")
    return pool


def saved_seeds(folder: Path) -> dict[int, int]:
    """The training seed of each pool run: that of its run saved in ``folder``, else of the package's own saved run
    (so that ``--out`` elsewhere retrains the same runs), else its pool id."""
    seeds = {}
    for k in bug_hunt.MYSTERY_SPECS:
        for config in (folder / str(k) / "config.json", bug_hunt.MYSTERY_DIR / str(k) / "config.json"):
            if config.is_file():
                seeds[k] = int(json.loads(config.read_text())["seed"])
                break
        else:
            seeds[k] = k
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", help="7,8,... (default: every pool run of bug_hunt.MYSTERY_SPECS)")
    parser.add_argument("--seeds", help="ID=SEED,ID=SEED,... (default: the seeds of the runs saved in --out)")
    parser.add_argument("--out", default=str(bug_hunt.MYSTERY_DIR))
    args = parser.parse_args(argv)
    try:
        pool = pool_answers_from_notebook()
    except ValueError as error:
        parser.error(str(error))
    ids = [int(i) for i in args.ids.split(",")] if args.ids else sorted(bug_hunt.MYSTERY_SPECS)
    missing = [i for i in ids if i not in pool or i not in bug_hunt.MYSTERY_SPECS]
    if missing:
        parser.error(f"pool runs {missing} need an answer in {SOLUTION}'s pool_answers and a spec in "
                     "bug_hunt.MYSTERY_SPECS")
    seeds = saved_seeds(Path(args.out))
    if args.seeds:
        for item in args.seeds.split(","):
            key, _, value = item.partition("=")
            seeds[int(key)] = int(value)
    start = time.process_time()
    paths = bug_hunt.write_mysteries({i: pool[i] for i in ids}, seeds, args.out)
    for k, path in zip(ids, paths):
        size = sum(p.stat().st_size for p in path.iterdir())
        print(f"pool run {k}: seed {seeds[k]}, {size / 1024:.0f} KiB, saved to {path}")
    print(f"CPU time: {time.process_time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
