"""Regenerate the bug hunt's practice six (``pgcourse/course/debugging/mysteries/<id>/``), for course maintainers.

    python tools/make_mysteries.py                           # the whole pool again, each run with the trap it holds
    python tools/make_mysteries.py --ids 7,8                 # only these pool runs
    python tools/make_mysteries.py --seeds 7=3,8=5           # other training seeds
    python tools/make_mysteries.py --answers 25=TRAP --ids 25       # a new run with trap TRAP (add its MYSTERY_SPECS entry)
    python tools/make_mysteries.py --out /tmp/m              # somewhere else (e.g. to compare)
    python tools/make_mysteries.py --key                     # print the pool's answer key (found by replay)

The practice six's answers are published (the solution notebook); graded hunts are made per student by the teacher
(``pgcourse.classroom.hunts``). The trap of each saved run is found by replaying every trap against it
(:func:`identify_pool`: ``pg.traps.bug_hunt.behaves_like``, about 1 s of CPU per run), the way a student with time
and the package's source could find it too (docs/teachers.md says what that costs). The solution notebook's answer
cells ``answer_k = "..."`` must agree with it on the practice six (``bug_hunt.PRACTICE``). How each
run is trained apart from its bug is ``pgcourse.course.debugging.bug_hunt.MYSTERY_SPECS``.
:func:`pgcourse.course.debugging.bug_hunt.write_mysteries` trains each, checks that pg.diagnose's first lead is not its bug,
that the bug-hunt check tells its trap from every other trap and from no trap, and that another rounding does not
move it, and writes nothing unless all of them are sound.
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

from pgcourse.course.debugging import bug_hunt  # noqa: E402

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


def identify_pool(folder: Path = bug_hunt.MYSTERY_DIR) -> dict[int, str]:
    """``{pool id: trap}`` for every run saved in ``folder``: the one trap whose replay behaves like the run (an
    error if a run matches none or several: write_mysteries only keeps runs that match exactly one)."""
    from pgcourse.course import debugging as traps
    from pgcourse.rl.run import load

    key = {}
    for pool_id in bug_hunt.pool_ids(folder):
        run = load(folder / str(pool_id), device="cpu")
        found = [name for name in traps.TRAPS if bug_hunt.behaves_like(name, run)]
        if len(found) != 1:
            raise ValueError(f"pool run {pool_id} in {folder} behaves like {found or 'no trap'}, not one trap")
        key[pool_id] = found[0]
    return key


def check_solution_answers(key: dict[int, str], path: Path = SOLUTION) -> None:
    """The solution's answer cells agree with the key on the practice six."""
    for k, trap in answers_from_notebook(path).items():
        pool_id = bug_hunt.PRACTICE[k - 1]
        if key.get(pool_id) != trap:
            raise ValueError(f"{path}: answer_{k} = {trap!r} but pool run {pool_id} (practice trainer {k}) "
                             f"behaves like {key.get(pool_id)!r}")


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
    parser.add_argument("--answers", help="ID=TRAP,... the traps of new pool runs (saved ones are found by replay)")
    parser.add_argument("--key", action="store_true", help="print the saved pool's answer key and stop")
    args = parser.parse_args(argv)
    given = {}
    for item in (args.answers.split(",") if args.answers else []):
        key_id, _, trap = item.partition("=")
        given[int(key_id)] = trap
    saved = {i: t for i, t in identify_pool().items() if i not in given}
    if args.key:
        for pool_id, trap in sorted(saved.items()):
            print(f"pool run {pool_id}: {trap}")
        return 0
    try:
        check_solution_answers(saved)
    except ValueError as error:
        parser.error(str(error))
    pool = {**saved, **given}
    ids = [int(i) for i in args.ids.split(",")] if args.ids else sorted(bug_hunt.MYSTERY_SPECS)
    missing = [i for i in ids if i not in pool or i not in bug_hunt.MYSTERY_SPECS]
    if missing:
        parser.error(f"pool runs {missing} need a trap (a saved run of the pool, or --answers ID=TRAP) and a spec in "
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
