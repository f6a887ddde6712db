"""Lesson 08's claims, read from the cached fine-tuning runs (figures/08_lm/finetune_runs.json) and the cached
pretrained model's evaluation: the lesson asserts them beside its text (pg.claim); these tests say the same of the
cache itself, without running the notebook. The lesson's two live runs (pretraining, section 3; GRPO, section 5) are
compared with their records at the levels of pgcourse.agreement: bit for bit is a fact of the machine, and what is
asserted is what holds on any machine (inside the recorded seeds' spread)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import pgcourse as pg
import pgcourse.lm as lm

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "08_llm_policy_gradients.ipynb"
METHODS = ("reinforce", "ppo", "grpo")


@pytest.fixture(scope="module")
def table():
    return lm.load_cached()


def runs(table, arm):
    return [row for row in table["rows"] if row["arm"] == arm]


def last(rows, key, k=10):
    return np.array([np.mean(row["history"][key][-k:]) for row in rows])


def test_every_arm_has_every_seed(table):
    for arm in table["arms"]:
        assert sorted(row["seed"] for row in runs(table, arm)) == list(range(table["seeds"])), arm
    assert table["seeds"] >= 10


@pytest.mark.parametrize("arm", METHODS)
def test_every_seed_of_every_method_raises_the_exact_accuracy_well_above_the_pretrained_model(table, arm):
    gains = [row["eval_end"]["sampled_exact"] - row["eval_start"]["sampled_exact"] for row in runs(table, arm)]
    assert min(gains) >= 0.15, (arm, gains)


def test_without_a_leash_the_loophole_is_gamed_and_the_exact_reward_collapses(table):
    hack = runs(table, "loophole_kl0")
    first = np.array([np.mean(row["history"]["exact_reward"][:10]) for row in hack])
    assert last(hack, "loophole_reward").mean() > 2 * np.mean([row["history"]["loophole_reward"][0] for row in hack])
    assert last(hack, "exact_reward").max() < first.min()
    assert last(hack, "finished").max() < 0.05  # the responses no longer stop


def test_the_strongest_leash_keeps_the_policy_near_the_reference(table):
    leashed = sorted((arm for arm in table["arms"] if arm.startswith("loophole_kl") and arm != "loophole_kl0"),
                     key=lambda arm: table["arms"][arm]["kl_coef"])
    strongest = runs(table, leashed[-1])
    free = runs(table, "loophole_kl0")
    assert last(strongest, "kl").max() < last(free, "kl").min()
    assert pg.stats.stratified_bootstrap(last(strongest, "exact_reward"), statistic="mean").low > \
        pg.stats.stratified_bootstrap(last(free, "exact_reward"), statistic="mean").high


def test_the_strongest_leash_limits_how_far_the_policy_games_not_whether(table):
    leashed = sorted((arm for arm in table["arms"] if arm.startswith("loophole_kl") and arm != "loophole_kl0"),
                     key=lambda arm: table["arms"][arm]["kl_coef"])
    strongest = runs(table, leashed[-1])
    first = np.array([np.mean(row["history"]["loophole_reward"][:10]) for row in strongest])
    assert pg.stats.stratified_bootstrap(last(strongest, "loophole_reward"), statistic="mean").low > \
        pg.stats.stratified_bootstrap(first, statistic="mean").high  # it still games the loophole

    def too_long(entry):  # finished, wrong, and a loophole score above 1: a run longer than the prompt
        pairs = [text.split(">", 1) for text in entry["texts"]]
        return sum(r.endswith(lm.END_MARK) and not lm.exact_reward(p, r) and lm.loophole_reward(p, r) > 1
                   for p, r in pairs)

    first_count, last_count = (sum(too_long(row["samples"][i]) for row in strongest) for i in (0, -1))
    assert last_count > first_count  # 8 -> 22 of the 80 pooled samples


def test_the_pretrained_model_keeps_its_corpus_habit_on_repeated_digits():
    evaluation = lm.pretrained_info()["evaluation"]
    assert evaluation["greedy_exact_distinct"] > evaluation["greedy_exact_repeat"] + 0.3


def test_the_lesson_names_the_regenerate_commands_and_links_its_exercises():
    text = "\n".join("".join(cell["source"]) for cell in json.loads(LESSON.read_text())["cells"])
    assert "python tools/regenerate_08.py pretrain" in text and "python tools/regenerate_08.py finetune" in text
    assert "../exercises/08_llm_policy_gradients.ipynb" in text
    assert text.count("my_prediction = None") == 2


# -- the live runs of sections 3 and 5 against their records: claims that hold on any machine ---------------------
def test_the_live_pretraining_record_has_ten_seeds_of_every_block():
    record = lm.cached.LIVE_PRETRAIN_SEEDS
    blocks = lm.cached.LIVE_PRETRAIN_STEPS // lm.cached.LIVE_PRETRAIN_BLOCK
    assert sorted(record) == list(range(10)) and all(len(curve) == blocks for curve in record.values())
    for curve in record.values():  # every seed learns: the last block well below the first
        assert curve[-1] < 0.5 * curve[0]


def test_the_longer_cached_run_ends_below_every_recorded_seed_of_the_live_run():
    """Section 3's claims on the record: the recorded seed 0 (the live run, where it is bit for bit) lies inside the
    other nine seeds' widened spread, and the cached run (more steps) ends lower than every recorded seed."""
    full_end = float(np.mean(lm.pretrained_info()["losses"][-50:]))
    record = lm.cached.LIVE_PRETRAIN_SEEDS
    end = pg.agreement.spread_check(record[0][-1], [record[seed][-1] for seed in record if seed != 0])
    assert end.inside and full_end < min(curve[-1] for curve in record.values()), (full_end, end)


@pytest.mark.slow
def test_the_live_pretraining_run_agrees_with_its_record_at_one_of_the_levels():
    """Bit for bit on a machine that rounds as the one that made the record; elsewhere the last block lies inside
    the widened spread of the nine other recorded seeds (what the lesson asserts)."""
    record = lm.cached.LIVE_PRETRAIN_SEEDS
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        blocks = lm.cached.block_losses(lm.cached.live_pretraining(seed=0).losses)
    finally:
        torch.set_num_threads(threads)
    agreement = pg.agreement.compare(record[0], blocks)
    end = pg.agreement.spread_check(blocks[-1], [record[seed][-1] for seed in record if seed != 0])
    print(agreement, end, sep="\n")
    assert agreement.identical or end.inside


@pytest.mark.slow
def test_a_short_grpo_run_logs_the_first_updates_of_the_cached_run_of_its_seed(table):
    """Section 5 compares its live 40-update run with the first 40 updates of the cached 100-update run: the loop
    has no schedule that looks ahead, so on the machine that made the cache they agree bit for bit; elsewhere the
    late batches land inside the other seeds' spread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = lm.finetune(method="grpo", seed=0, updates=40, sample_every=10, device="cpu")
    finally:
        torch.set_num_threads(threads)
    cached = {row["seed"]: row for row in runs(table, "grpo")}
    first = {key: values[:40] for key, values in cached[0]["history"].items()}
    agreement = pg.agreement.compare(first, lm.cached.rounded(run.history))
    late = pg.agreement.spread_check(np.mean(run.history["exact_reward"][30:40]),
                                     [np.mean(row["history"]["exact_reward"][30:40]) for s, row in cached.items() if s])
    print(agreement, late, sep="\n")
    assert agreement.identical or (agreement.first_difference is not None and late.inside)
    assert run.eval_end["sampled_exact"] > run.eval_start["sampled_exact"]


def test_the_lesson_compares_live_runs_with_the_cache_at_the_levels_not_bit_for_bit():
    code = "\n".join("".join(cell["source"]) for cell in json.loads(LESSON.read_text())["cells"]
                     if cell["cell_type"] == "code")
    assert "max_seconds" not in code  # the live pretraining is a number of steps: the same work on any machine
    assert "np.allclose" not in code and code.count("pg.agreement.compare(") >= 2
    assert "pg.agreement.spread_check(" in code
