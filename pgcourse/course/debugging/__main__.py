"""``python -m pgcourse.course.debugging reproduce|experiments|mysteries``: regenerate lesson 06's cached results.

A command-line entry point (the top layer, beside ``pgcourse.cli``, whose ``--set`` parser it shares).
``mysteries`` rewrites the bug hunt's saved runs; it takes the answers on the command line
(``--answers 3=NAME,5=NAME,...``, keyed by pool id: the folders ``mysteries/<id>/``;
``tools/make_mysteries.py`` reads them from the solution notebook) and
stores them nowhere, so keep them out of scripts in the repo.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ...cli import UsageError, parse_settings
from ...rl.config import ConfigError
from .bug_hunt import MYSTERY_DIR, MYSTERY_SPECS, write_mysteries
from .experiments import REPRO_SETTINGS, experiments, reproduce


def _numbered(text: str, what: str, value=str) -> dict[int, object]:
    """``"3=a,5=b,6=c"`` -> ``{3: "a", 5: "b", 6: "c"}`` (one entry per pool run written, each a pool id of
    ``bug_hunt.MYSTERY_SPECS``)."""
    pairs: dict[int, object] = {}
    ids = tuple(sorted(MYSTERY_SPECS))
    for item in text.split(","):
        key, sep, val = item.partition("=")
        try:
            if not sep or int(key) not in MYSTERY_SPECS or int(key) in pairs:
                raise ValueError
            pairs[int(key)] = value(val.strip())
        except ValueError:
            raise UsageError(f"--{what}: expected ID=...,ID=... with each ID a pool id of {ids} at most once, "
                             f"got {text!r}") from None
    return pairs


def _saved_seeds(folder: Path) -> dict[int, int]:
    """The seeds of the saved pool runs in ``folder`` (a run not saved there: seed = its pool id)."""
    seeds = {}
    for k in MYSTERY_SPECS:
        config = folder / str(k) / "config.json"
        seeds[k] = int(json.loads(config.read_text())["seed"]) if config.is_file() else k
    return seeds


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgcourse.course.debugging", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the reproduction table (5 algorithms x 10 seeds on CartPole-v1)")
    rep.add_argument("--out", default="figures/06_reproduction.png")
    rep.add_argument("--folder", default="figures/06_reproduction",
                     help="the sweep's results folder (an unfinished one is resumed)")
    rep.add_argument("--seeds", type=int, default=10)
    rep.add_argument("--episodes", type=int, default=1000)
    rep.add_argument("--max-steps", type=int, default=600_000,
                     help="safety cap on env steps per run (1,000 CartPole episodes are at most 500,000)")
    rep.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    rep.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help=f"change a setting for every algorithm (default {REPRO_SETTINGS}), e.g. --set anneal_lr=True")
    exp = sub.add_parser("experiments", help="ablation of the three root causes + one run per classic mistake")
    exp.add_argument("--folder", default="figures/06_traps", help="the sweep's results folder (resumed if unfinished)")
    exp.add_argument("--seeds", type=int, default=10)
    exp.add_argument("--ablation-steps", type=int, default=25_000)
    exp.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    mys = sub.add_parser("mysteries", help="retrain and save the bug hunt's mystery runs (course maintainers)")
    mys.add_argument("--answers", required=True, metavar="ID=TRAP,ID=TRAP",
                     help="the trap planted in each pool run to write (stored nowhere; the saved configs have traps=())")
    mys.add_argument("--seeds", metavar="ID=SEED,ID=SEED",
                     help="training seed of each trainer (default: the seeds of the runs saved now)")
    mys.add_argument("--out", default=str(MYSTERY_DIR), help="folder of the runs (default: the package's own)")
    mys.add_argument("--steps", type=int, default=None,
                     help="env steps per mystery trainer (default: each one's own, bug_hunt.MYSTERY_SPECS)")
    args = parser.parse_args(argv)
    if args.command == "mysteries":
        try:
            answers = _numbered(args.answers, "answers")
            seeds = {**_saved_seeds(Path(args.out)), **(_numbered(args.seeds, "seeds", int) if args.seeds else {})}
            paths = write_mysteries(answers, seeds, args.out, args.steps)
        except (UsageError, ValueError) as error:
            parser.error(str(error))
        for k, path in zip(sorted(answers), paths):
            print(f"pool run {k}: seed {seeds[k]}, saved to {path}")
    if args.command == "experiments":
        experiments(args.folder, args.seeds, args.ablation_steps, args.workers)
    if args.command == "reproduce":
        try:
            reproduce(args.out, args.folder, args.seeds, args.episodes, args.max_steps, args.workers,
                      parse_settings(args.set))
        except (UsageError, ConfigError) as error:
            parser.error(str(error))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
