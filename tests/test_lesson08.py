"""Lesson 08's claims, read from the cached fine-tuning runs (figures/08_lm/finetune_runs.json) and the cached
pretrained model's evaluation: the lesson asserts them beside its text (pg.claim); these tests say the same of the
cache itself, without running the notebook."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

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
