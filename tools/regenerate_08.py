#!/usr/bin/env python3
"""Regenerate chapter 08's cached pretrained model and fine-tuning runs (one process, one CPU thread).

    python tools/regenerate_08.py pretrain    # pgcourse/lm/sort_pretrained.pt (+ .json beside it)
    python tools/regenerate_08.py finetune    # figures/08_lm/finetune_runs.json
    python tools/regenerate_08.py reward_model  # figures/08_lm/reward_model_runs.json (+ reward_model.pt)
    python tools/regenerate_08.py all         # all three, pretrain first (the runs fine-tune the cached model)

``finetune`` runs every arm of :data:`pgcourse.rl.lm.cached.ARMS` on seeds 0-9 (``--seeds`` to change) and
writes the table after every run: stopped and started again, it keeps the rows already done whose config
is unchanged. ``tests/test_cached_lm.py`` re-runs one random row and checks it bit for bit.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pgcourse.rl.lm import cached  # noqa: E402
from pgcourse.rl.lm.finetune import FinetuneConfig  # noqa: E402
from pgcourse.rl.lm.pretrain import WEIGHTS, pretrain, save_pretrained  # noqa: E402

PRETRAIN = {"steps": 2000, "seed": 0}


def regenerate_pretrain() -> None:
    started = time.process_time()
    result = pretrain(**PRETRAIN)
    save_pretrained(result, WEIGHTS)
    info = json.loads(WEIGHTS.with_suffix(".json").read_text())
    print(f"pretrain: {len(result.losses)} steps, {time.process_time() - started:.0f} s CPU, "
          f"final loss {sum(result.losses[-50:]) / 50:.4f}, {WEIGHTS.stat().st_size / 1024:.0f} KiB")
    print("held-out evaluation:", {k: round(v, 3) for k, v in info["evaluation"].items()})


def _write(path: Path, table: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(table, out, separators=(",", ":"))
        out.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, path)


def regenerate_finetune(seeds: int = cached.SEEDS, arms: list[str] | None = None, path: Path = cached.CACHED) -> None:
    arms = arms or list(cached.ARMS)
    done = {}
    if path.exists():
        for row in json.loads(path.read_text())["rows"]:
            done[(row["arm"], row["seed"])] = row
    rows = []
    started = time.process_time()
    for seed in range(seeds):  # seeds outer: a table cut short still has every arm on its first seeds
        for arm in cached.ARMS:
            expected = FinetuneConfig(**cached.ARMS[arm], seed=seed, device="cpu").to_dict()
            row = done.get((arm, seed))
            if row is None or row["config"] != expected:  # missing or stale: run it (if its arm is asked for)
                if arm not in arms:
                    continue
                row = cached.run_arm(arm, seed)
                end, start = row["eval_end"], row["eval_start"]
                print(f"{arm:13s} seed {seed}: exact {start['sampled_exact']:.3f} -> {end['sampled_exact']:.3f} "
                      f"(greedy {start['greedy_exact']:.3f} -> {end['greedy_exact']:.3f}), loophole "
                      f"{end['sampled_loophole']:.2f}, {row['cpu_seconds']:.1f} s CPU", flush=True)
            rows.append(row)
            _write(path, {"command": cached.COMMAND, "arms": cached.ARMS, "seeds": seeds, "rows": rows})
    total = sum(row["cpu_seconds"] for row in rows)
    print(f"finetune: {len(rows)} rows, {time.process_time() - started:.0f} s CPU now, {total:.0f} s CPU summed over "
          f"rows, {path.stat().st_size / 2**20:.2f} MiB")


# The learned-reward experiment: a Bradley-Terry reward model fitted on the pretrained model's own preference pairs
# (labelled by the exact verifier), then GRPO against it on seeds 0-9, without a leash and with the GRPO default
# (kl_coef 0.1). The control is the cached "grpo_kl0" arm of finetune_runs.json (the exact reward, no leash), and
# "grpo" (the exact reward, kl_coef 0.1).
REWARD_MODEL = {"pairs": {"count": 3000, "seed": 1234}, "fit": {"steps": 400, "batch_size": 64, "lr": 3e-4,
                                                                  "held_out_share": 0.2, "seed": 0}}
REWARD_MODEL_ARMS = {"learned_kl0": {"method": "grpo", "reward": "learned", "kl_coef": 0.0},
                     "learned_kl_0.1": {"method": "grpo", "reward": "learned", "kl_coef": 0.1}}
REWARD_MODEL_RUNS = cached.CACHED.parent / "reward_model_runs.json"
REWARD_MODEL_WEIGHTS = cached.CACHED.parent / "reward_model.pt"


def regenerate_reward_model(seeds: int = cached.SEEDS, path: Path = REWARD_MODEL_RUNS) -> None:
    from pgcourse.rl.lm.finetune import finetune
    from pgcourse.rl.lm.reward_model import fit_reward_model, preference_pairs

    started = time.process_time()
    pairs = preference_pairs(**REWARD_MODEL["pairs"])
    fit = fit_reward_model(pairs, **REWARD_MODEL["fit"])
    fit_seconds = time.process_time() - started
    torch.save(fit.model.state_dict(), REWARD_MODEL_WEIGHTS)
    print(f"reward model: {len(pairs)} pairs of {pairs.offered} prompts, accuracy {fit.train_accuracy:.3f} fitted, "
          f"{fit.held_out_accuracy:.3f} held out, {fit_seconds:.0f} s CPU, {REWARD_MODEL_WEIGHTS.stat().st_size / 1024:.0f} KiB")
    table = {"command": "python tools/regenerate_08.py reward_model", "settings": REWARD_MODEL,
             "reward_model": {"pairs": len(pairs), "offered": pairs.offered, "fitted": fit.pairs_fitted,
                              "held_out": fit.pairs_held_out, "train_accuracy": fit.train_accuracy,
                              "held_out_accuracy": fit.held_out_accuracy, "cpu_seconds": fit_seconds,
                              "losses": cached.rounded(fit.losses)},
             "arms": REWARD_MODEL_ARMS, "seeds": seeds, "rows": []}
    for seed in range(seeds):
        for arm, fields in REWARD_MODEL_ARMS.items():
            result = finetune(FinetuneConfig(**fields, seed=seed, device="cpu"), reward_fn=fit.reward_fn())
            row = cached.rounded(result.to_dict()) | {"arm": arm, "seed": seed}
            print(f"{arm:15s} seed {seed}: learned reward {result.history['reward'][0]:.2f} -> "
                  f"{sum(result.history['reward'][-10:]) / 10:.2f}, exact {result.eval_start['sampled_exact']:.3f} -> "
                  f"{result.eval_end['sampled_exact']:.3f}, {result.cpu_seconds:.1f} s CPU", flush=True)
            table["rows"].append(row)
            _write(path, table)
    print(f"reward_model: {len(table['rows'])} rows, {time.process_time() - started:.0f} s CPU, "
          f"{path.stat().st_size / 2**20:.2f} MiB")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=["pretrain", "finetune", "reward_model", "all"])
    parser.add_argument("--seeds", type=int, default=cached.SEEDS, help="seeds per arm (default 10)")
    parser.add_argument("--arms", nargs="*", default=None, help=f"arms to (re)run (default all: {list(cached.ARMS)})")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.job in ("pretrain", "all"):
        regenerate_pretrain()
    if args.job in ("finetune", "all"):
        regenerate_finetune(args.seeds, args.arms)
    if args.job in ("reward_model", "all"):
        regenerate_reward_model(args.seeds)


if __name__ == "__main__":
    main()
