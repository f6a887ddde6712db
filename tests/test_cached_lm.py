"""Chapter 08's cached fine-tuning runs (figures/08_lm) hold what the code computes.

The table has every arm on every seed with its resolved config, and one randomly drawn row is run again
and must give the same history, samples and evaluations bit for bit (after the same rounding). The draw's
seed is printed, so a failure can be repeated (``PGCOURSE_LM_ROW=arm:seed`` picks the row).
"""
from __future__ import annotations

import os
import random

import pytest
import torch

from pgcourse.lm.cached import ARMS, CACHED, SEEDS, load_cached, rerun_row
from pgcourse.lm.finetune import FinetuneConfig

TIMINGS = ("wall_seconds", "cpu_seconds")


@pytest.fixture(scope="module")
def table():
    return load_cached()


def test_the_table_has_every_arm_on_every_seed(table):
    assert CACHED.stat().st_size < 2**20
    assert table["arms"] == ARMS and table["seeds"] == SEEDS >= 10
    assert sorted((row["arm"], row["seed"]) for row in table["rows"]) == sorted(
        (arm, seed) for arm in ARMS for seed in range(SEEDS))
    for row in table["rows"]:
        assert row["config"] == FinetuneConfig(**ARMS[row["arm"]], seed=row["seed"], device="cpu").to_dict()
        assert row["status"] == "finished" and len(row["history"]["update"]) == row["config"]["updates"]


def test_a_random_cached_row_reruns_to_the_same_numbers(table):
    chosen = os.environ.get("PGCOURSE_LM_ROW")
    if chosen:
        arm, seed = chosen.split(":")
        row = next(r for r in table["rows"] if r["arm"] == arm and r["seed"] == int(seed))
    else:
        row = random.SystemRandom().choice(table["rows"])
    print(f"re-running cached row {row['arm']}:{row['seed']} (PGCOURSE_LM_ROW={row['arm']}:{row['seed']} repeats it)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as tools/regenerate_08.py runs
    try:
        again = rerun_row(row)
    finally:
        torch.set_num_threads(threads)
    for key in row:
        if key not in TIMINGS:
            assert again[key] == row[key], f"{row['arm']}:{row['seed']}: {key} differs from the cached row"
