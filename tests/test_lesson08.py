"""Lesson 08's claims, read from the cached fine-tuning runs (figures/08_lm/finetune_runs.json) and the cached
pretrained model's evaluation: the lesson asserts them beside its text (pg.claim); these tests say the same of the
cache itself, without running the notebook. The lesson's two live runs (pretraining, section 3; GRPO, section 5) are
compared with their records in the notebook itself, at the levels of pgcourse.agreement (bit for bit is printed as a
fact of the machine; what holds on any machine, inside the recorded seeds' spread, is a pg.claim). The notebook runs
twice in `make test` (the portable pass and the fake-GPU pass), so the live runs are not repeated here; the test below
pins that the lesson compares at those levels."""
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


def strongest_leash(table):
    leashed = sorted((arm for arm in table["arms"] if arm.startswith("loophole_kl") and arm != "loophole_kl0"),
                     key=lambda arm: table["arms"][arm]["kl_coef"])
    return leashed[-1]


def too_long(prompt, response):  # finished, wrong, and a loophole score above 1: a run longer than the prompt
    return response.endswith(lm.END_MARK) and not lm.exact_reward(prompt, response) and \
        lm.loophole_reward(prompt, response) > 1


def test_the_strongest_leash_limits_how_far_the_policy_games_not_whether(table):
    """The gaming shows in the kinds of answer: too-long answers grow (8 -> 22 of the 80 pooled samples) and make a
    larger share of the recorded samples than on the exact verifier, on intervals over seeds."""
    strongest = runs(table, strongest_leash(table))

    def count(entry):
        return sum(too_long(*text.split(">", 1)) for text in entry["texts"])

    first_count, last_count = (sum(count(row["samples"][i]) for row in strongest) for i in (0, -1))
    assert last_count > first_count  # 8 -> 22 of the 80 pooled samples

    def share(rows):  # per seed: too-long share of the samples recorded after update 0
        return np.array([np.mean([too_long(*t.split(">", 1)) for e in row["samples"][1:] for t in e["texts"]])
                         for row in rows])

    leashed = pg.stats.stratified_bootstrap(share(strongest), statistic="mean")
    honest = pg.stats.stratified_bootstrap(share(runs(table, "grpo")), statistic="mean")
    assert leashed.low > honest.high, (leashed, honest)


def test_the_loophole_reward_rise_under_the_strongest_leash_is_no_evidence_of_gaming(table):
    """GRPO on the exact verifier, which never pays the loophole reward, raises it at least as much as the strongest
    leash does (a right answer earns 1.0 on it): the lesson may not read that rise as gaming."""
    def rise(rows):
        return np.array([np.mean(r["history"]["loophole_reward"][-10:]) - np.mean(r["history"]["loophole_reward"][:10])
                         for r in rows])

    leashed = pg.stats.stratified_bootstrap(rise(runs(table, strongest_leash(table))), statistic="mean")
    honest = pg.stats.stratified_bootstrap(rise(runs(table, "grpo")), statistic="mean")
    assert leashed.low <= honest.high, (leashed, honest)
    assert "The loophole reward is no evidence of gaming here" in lesson_markdown()


def test_most_too_long_answers_of_the_strongest_leash_are_the_right_answer_with_a_digit_twice(table):
    """So they do need sorting: 'needs no sorting' was contradicted by the samples the lesson prints."""
    def doubled(prompt, response):
        right = lm.sorted_answer(prompt)
        return any(response[:i] + response[i + 1:] == right and response[i] in response[i - 1:i] + response[i + 1]
                   for i in range(len(response) - 1))

    late = [text.split(">", 1) for row in runs(table, strongest_leash(table)) for e in row["samples"][1:]
            for text in e["texts"] if too_long(*text.split(">", 1))]
    assert sum(doubled(p, r) for p, r in late) > len(late) / 2
    assert "needs no sorting" not in lesson_markdown()


def test_the_unleashed_loophole_reward_ends_above_what_a_right_answer_can_earn(table):
    """A right answer earns exactly 1.0 from the loophole verifier, so a mean above 1 can only come from responses
    longer than the prompt: the reward curve does say something, to a reader who knows what it pays."""
    prompts = lm.held_out_prompts(40)
    assert all(lm.loophole_reward(p, lm.sorted_answer(p)) == 1.0 for p in prompts)
    assert last(runs(table, "loophole_kl0"), "loophole_reward").min() > 1.0
    assert "a right answer earns exactly 1.0 on it" in lesson_markdown()


def test_without_the_leash_grpo_narrows_more_at_the_same_accuracy(table):
    """Why the lesson may not explain the narrowing by the rising reward alone."""
    on, off = runs(table, "grpo"), runs(table, "grpo_kl0")
    distinct_on = pg.stats.stratified_bootstrap(last(on, "distinct"), statistic="mean")
    distinct_off = pg.stats.stratified_bootstrap(last(off, "distinct"), statistic="mean")
    assert distinct_off.high < distinct_on.low
    acc_on, acc_off = (pg.stats.stratified_bootstrap([r["eval_end"]["sampled_exact"] for r in rows], statistic="mean")
                       for rows in (on, off))
    assert acc_on.low <= acc_off.high and acc_off.low <= acc_on.high
    assert "The runs do not say how much of the narrowing it explains" in lesson_markdown()


def lesson_markdown() -> str:
    """The lesson's markdown with its whitespace collapsed (a sentence may break across lines anywhere)."""
    cells = json.loads(LESSON.read_text())["cells"]
    return " ".join(" ".join("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown")


RETIRED_08 = {
    "Everything here runs on a laptop CPU in the notebook": "the ten-seed comparisons are loaded from a cache",
    "and now and then it writes a digit twice or swaps two neighbours":
        "SLIP_PROB is 0.4, and six of the eight printed sentences are wrong",
    "That is about half a minute of one CPU thread where this course was made":
        "the stored output printed 59 s of wall time (24 s of CPU) on a busy machine",
    "its own tuned defaults": "the defaults were set by hand from single-seed trials",
    "its greedy answer is nearly always right": "it is right on every one: 1.0 [0.963, 1.0]",
    "so the diversity falls as the reward rises":
        "GRPO without its leash narrows more at the same accuracy: the reward alone does not explain it",
    "the leash costs no accuracy here": "no measurable cost: intervals about 0.04 wide, a smaller cost not ruled out",
    "Nothing in the training curve of the loophole reward says so": "its mean 2.8 is above a right answer's 1.0",
    "and the loophole reward rises (the table before the figure)":
        "GRPO on the exact verifier raises it as much (0.0576 against 0.0329)",
    "only the samples (and an independent check) show it": "the proxy's mean above 1.0 shows it too",
    "a lookalike does, unless most of its group is right":
        "a lookalike (+2.05) is below its group's mean whenever right answers (+3.19) outnumber other wrong ones "
        "(-1.22) about 3 to 1; one right answer among seven lookalikes already puts the mean above it",
    "Training on it multiplied one kind of mistake":
        "lookalikes grew under the exact verifier too (5 to 15 of 80 by update 40); most wrong answers are lookalikes "
        "under both rewards (66% against 60%)",
}


@pytest.mark.parametrize("sentence", list(RETIRED_08), ids=list(RETIRED_08.values()))
def test_lesson_08_no_longer_says_what_its_evidence_contradicts(sentence):
    assert sentence not in lesson_markdown(), f"lesson 08 says {sentence!r}, but {RETIRED_08[sentence]}"


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


def test_the_lesson_compares_live_runs_with_the_cache_at_the_levels_not_bit_for_bit():
    code = "\n".join("".join(cell["source"]) for cell in json.loads(LESSON.read_text())["cells"]
                     if cell["cell_type"] == "code")
    assert "max_seconds" not in code  # the live pretraining is a number of steps: the same work on any machine
    assert "np.allclose" not in code and code.count("pg.agreement.compare(") >= 2
    assert "pg.agreement.spread_check(" in code


def test_lesson_08_defaults_were_checked_on_seeds_it_does_not_report():
    """Issue 27, item 5: METHOD_DEFAULTS were tuned on seeds 0-3, among the ten the lesson reports. The same choices
    were tried again on seeds disjoint from 0-9 (tools/tune_08_disjoint.py); the lesson prints the result and says
    why it matters."""
    import json
    from pathlib import Path

    from pgcourse.rl.lm.finetune import METHOD_DEFAULTS

    root = Path(__file__).resolve().parents[1]
    record = json.loads((root / "figures" / "08_lm" / "disjoint_tuning.json").read_text())
    assert not set(record["seeds"]) & set(range(10)) and len(record["seeds"]) >= 4
    for row in record["rows"]:
        assert row["default"] == all(METHOD_DEFAULTS[row["method"]].get(k) == v for k, v in row["setting"].items())
    markdown = " ".join(" ".join(c.source.split()) for c in
                        __import__("nbformat").read(root / "notebooks" / "08_llm_policy_gradients.ipynb",
                                                    as_version=4).cells if c.cell_type == "markdown")
    assert "four seeds outside 0-9" in markdown
