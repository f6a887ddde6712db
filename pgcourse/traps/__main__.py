"""``python -m pgcourse.traps reproduce|experiments``: regenerate lesson 06's cached results.

A command-line entry point (the top layer, beside ``pgcourse.cli``, whose ``--set`` parser it shares).
"""
from __future__ import annotations

import argparse

from ..cli import UsageError, parse_settings
from ..config import ConfigError
from .experiments import REPRO_SETTINGS, experiments, reproduce

def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pgcourse.traps", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the reproduction table (5 algorithms x 5 seeds on CartPole-v1)")
    rep.add_argument("--out", default="figures/06_reproduction.png")
    rep.add_argument("--json", default="figures/06_reproduction.json")
    rep.add_argument("--seeds", type=int, default=5)
    rep.add_argument("--episodes", type=int, default=1000)
    rep.add_argument("--max-steps", type=int, default=600_000,
                     help="safety cap on env steps per run (1,000 CartPole episodes are at most 500,000)")
    rep.add_argument("--workers", type=int, default=1)
    rep.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help=f"change a setting for every algorithm (default {REPRO_SETTINGS}), e.g. --set anneal_lr=True")
    exp = sub.add_parser("experiments", help="ablation of the three root causes + one run per classic mistake")
    exp.add_argument("--json", default="figures/06_traps.json")
    exp.add_argument("--seeds", type=int, default=3)
    exp.add_argument("--ablation-steps", type=int, default=25_000)
    exp.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "experiments":
        experiments(args.json, args.seeds, args.ablation_steps, args.workers)
    if args.command == "reproduce":
        try:
            reproduce(args.out, args.json, args.seeds, args.episodes, args.max_steps, args.workers,
                      parse_settings(args.set))
        except (UsageError, ConfigError) as error:
            parser.error(str(error))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
