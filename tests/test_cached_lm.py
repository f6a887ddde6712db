"""Chapter 08's cached fine-tuning runs (figures/08_lm) hold what the code computes.

The table has every arm on every seed with its resolved config. One randomly drawn row is run again and compared
with the cached one at the levels of :func:`pgcourse.lm.cached.compare_rerun_row`, strongest first:

1. **bit for bit** (every number, text and count, timings aside): what the machine that made the cache gives, and
   any machine that rounds as it did. Printed as a fact about this machine, never required.
2. **within tolerance**: every number within 1e-4 relative (plus one unit of the 5th decimal the row is rounded to).
3. **inside the spread**: on another processor (another SIMD kernel path) or thread count, torch rounds a sum in
   another order; a few updates later one sampled token differs and the two runs are different draws. Then the
   history's first difference must be a rounding difference, and the summaries (the held-out accuracy before and
   after, the mean reward and KL over the updates), the cached row's and the re-run's alike, must lie inside the
   arm's other nine seeds' range widened by twice its width on each side.

What it can tell: a row whose numbers were edited by hand (a summary moved out of the seeds' spread, or a history
entry changed by more than rounding where the runs had not yet parted), or code that now computes something else
(the history's first difference is larger than rounding). What it cannot tell: the history is stored rounded to 5
decimals, so the first rounding difference is seen only once it reaches the 5th decimal, and an edit smaller than
that rounding, or one that keeps a summary inside the spread after the runs have parted, passes level 3 (where the
re-run is bit for bit, the printed agreement still names the first difference).

The draw's seed is printed, so a failure can be repeated (``PGCOURSE_LM_ROW=arm:seed`` picks the row).
"""
from __future__ import annotations

import copy
import os
import random

import pytest
import torch

from pgcourse.rl.lm.cached import ARMS, CACHED, SEEDS, compare_rerun_row, load_cached, rerun_row
from pgcourse.rl.lm.finetune import FinetuneConfig


@pytest.fixture(scope="module")
def table():
    return load_cached()


def others(table, row):
    """The other seeds of the row's arm: the spread a re-run on another machine must land in."""
    return [r for r in table["rows"] if r["arm"] == row["arm"] and r["seed"] != row["seed"]]


def pick(table, chosen):
    arm, seed = chosen.split(":")
    return next(r for r in table["rows"] if r["arm"] == arm and r["seed"] == int(seed))


def test_the_table_has_every_arm_on_every_seed(table):
    assert CACHED.stat().st_size < 2**20
    assert table["arms"] == ARMS and table["seeds"] == SEEDS >= 10
    assert sorted((row["arm"], row["seed"]) for row in table["rows"]) == sorted(
        (arm, seed) for arm in ARMS for seed in range(SEEDS))
    for row in table["rows"]:
        assert row["config"] == FinetuneConfig(**ARMS[row["arm"]], seed=row["seed"], device="cpu").to_dict()
        assert row["status"] == "finished" and len(row["history"]["update"]) == row["config"]["updates"]


@pytest.mark.slow
def test_a_random_cached_row_reruns_to_the_same_numbers_or_inside_the_spread(table):
    chosen = os.environ.get("PGCOURSE_LM_ROW")  # unset: a fixed row, so a run's verdict repeats; "random": anew
    if chosen == "random":
        row = random.SystemRandom().choice(table["rows"])
    else:
        row = pick(table, chosen) if chosen else random.Random(0).choice(table["rows"])
    print(f"re-running cached row {row['arm']}:{row['seed']} (PGCOURSE_LM_ROW={row['arm']}:{row['seed']} repeats it)")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as tools/regenerate_08.py runs
    try:
        again = rerun_row(row)
    finally:
        torch.set_num_threads(threads)
    check = compare_rerun_row(row, again, others(table, row))
    print(check)
    assert check.ok, f"{row['arm']}:{row['seed']}: {check.problem}"


# -- the levels, judged without re-running: the row itself plays the bit-for-bit re-run -------------------------
def test_a_row_agrees_with_itself_bit_for_bit(table):
    row = pick(table, "grpo_kl0:4")
    check = compare_rerun_row(row, copy.deepcopy(row), others(table, row))
    assert check.level == "bit for bit" and str(check).startswith("bit for bit on this machine: True")


def test_timings_are_facts_of_a_machine_and_never_compared(table):
    row = pick(table, "grpo:3")
    again = {**copy.deepcopy(row), "wall_seconds": row["wall_seconds"] * 3, "cpu_seconds": row["cpu_seconds"] * 2}
    assert compare_rerun_row(row, again, others(table, row)).level == "bit for bit"


def test_a_last_digit_rounding_difference_is_within_tolerance(table):
    row = pick(table, "ppo:2")
    again = copy.deepcopy(row)
    again["history"]["kl"][37] = round(again["history"]["kl"][37] + 1e-5, 5)  # one unit of the 5th decimal
    check = compare_rerun_row(row, again, others(table, row))
    assert check.level == "within tolerance", str(check)


@pytest.mark.parametrize("edit", ["eval_end.sampled_exact = 0.0", "history.reward[50] += 0.2", "history.kl * 5"])
def test_a_row_edited_by_hand_fails(table, edit):
    row = pick(table, "grpo_kl0:6")
    edited = copy.deepcopy(row)
    if edit.startswith("eval_end"):
        edited["eval_end"]["sampled_exact"] = 0.0
    elif edit.startswith("history.reward"):
        edited["history"]["reward"][50] = round(edited["history"]["reward"][50] + 0.2, 5)
    else:
        edited["history"]["kl"] = [round(5 * value, 5) for value in edited["history"]["kl"]]
    check = compare_rerun_row(edited, row, others(table, row))  # the code's honest numbers vs the edited cache
    print(check)
    assert not check.ok and check.level is None


def test_an_edited_summary_fails_also_where_the_rerun_parted_over_rounding(table):
    """Another machine: the re-run parts from the row over a rounding difference (here: a neighbouring seed's run
    from update 30 on, after a last-digit difference at update 29), and the cached row's end evaluation was set to
    0.0 by hand: the spread of the other seeds catches it; the honest row passes."""
    row, draw = pick(table, "grpo_kl0:6"), pick(table, "grpo_kl0:7")
    parted = copy.deepcopy(row)
    parted["history"]["entropy"][29] = round(parted["history"]["entropy"][29] + 1e-5, 5)
    for key, values in parted["history"].items():
        if key != "update":
            values[30:] = draw["history"][key][30:]
    parted["eval_end"], parted["samples"] = draw["eval_end"], draw["samples"]
    honest = compare_rerun_row(row, parted, others(table, row))
    assert honest.level == "inside the spread", str(honest)
    assert honest.onset.rounding and honest.onset.row == 29
    edited = copy.deepcopy(row)
    edited["eval_end"]["sampled_exact"] = 0.0
    check = compare_rerun_row(edited, parted, others(table, row))
    print(check)
    assert not check.ok and "eval_end.sampled_exact (cached)" in check.problem


def test_a_changed_config_or_status_fails(table):
    row = pick(table, "reinforce:1")
    again = copy.deepcopy(row)
    again["config"]["lr"] = 1e-3
    again["history"]["reward"][0] = round(again["history"]["reward"][0] + 1e-5, 5)
    check = compare_rerun_row(row, again, others(table, row))
    assert not check.ok and check.problem.startswith("config")
