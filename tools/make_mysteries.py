"""Regenerate the bug hunt's mystery trainers (``pgcourse/traps/mysteries/<k>/``), for course maintainers.

    python tools/make_mysteries.py                      # answers from the solution notebook, saved seeds
    python tools/make_mysteries.py --seeds 1=3,2=5,...  # other training seeds
    python tools/make_mysteries.py --out /tmp/m         # somewhere else (e.g. to compare)

The planted trap of trainer ``k`` is read from the answer cell ``answer_k = "..."`` of
``solutions/06_debugging_traps.ipynb`` (the one place the answers live), so neither this script nor the
package stores them. How each trainer is trained apart from its bug is ``pgcourse.traps.bug_hunt.MYSTERY_SPECS``.
:func:`pgcourse.traps.bug_hunt.write_mysteries` trains each, checks that the bug-hunt check tells its trap
from every other trap and from no trap, and writes nothing unless all of them are sound.
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


def answers_from_notebook(path: Path = SOLUTION) -> dict[int, str]:
    """``{k: trap}`` from the notebook's top-level assignments ``answer_k = "trap"``."""
    found: dict[int, str] = {}
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:
            continue
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id.startswith("answer_") and isinstance(node.value, ast.Constant)):
                found[int(node.targets[0].id.removeprefix("answer_"))] = node.value.value
    return found


def saved_seeds(folder: Path) -> dict[int, int]:
    seeds = {}
    for k in bug_hunt.MYSTERIES:
        config = folder / str(k) / "config.json"
        seeds[k] = int(json.loads(config.read_text())["seed"]) if config.is_file() else k
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", help="1=SEED,2=SEED,... (default: the seeds of the runs saved in --out)")
    parser.add_argument("--out", default=str(bug_hunt.MYSTERY_DIR))
    args = parser.parse_args(argv)
    answers = answers_from_notebook()
    if sorted(answers) != list(bug_hunt.MYSTERIES):
        parser.error(f"{SOLUTION} must assign answer_k for k in {bug_hunt.MYSTERIES}; found {sorted(answers)}")
    seeds = saved_seeds(Path(args.out))
    if args.seeds:
        for item in args.seeds.split(","):
            key, _, value = item.partition("=")
            seeds[int(key)] = int(value)
    start = time.process_time()
    paths = bug_hunt.write_mysteries(answers, seeds, args.out)
    for k, path in zip(bug_hunt.MYSTERIES, paths):
        size = sum(p.stat().st_size for p in path.iterdir())
        print(f"mystery trainer {k}: seed {seeds[k]}, {size / 1024:.0f} KiB, saved to {path}")
    print(f"CPU time: {time.process_time() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
