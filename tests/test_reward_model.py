"""pgcourse.lm.reward_model (lesson 08's learned reward) and finetune's reward_fn."""
from __future__ import annotations

import math

import pytest
import torch

import pgcourse as pg
import pgcourse.lm as lm
from pgcourse.rl.lm import reward_model as rmod


@pytest.fixture(scope="module")
def pairs():
    return rmod.preference_pairs(count=600, seed=7)


def test_pairs_are_labelled_by_the_exact_verifier(pairs):
    assert 0 < len(pairs) < pairs.offered == 600
    for prompt, chosen, rejected in zip(pairs.prompts, pairs.chosen, pairs.rejected):
        assert lm.exact_reward(prompt, chosen) == 1.0 and lm.exact_reward(prompt, rejected) == 0.0


def test_split_keeps_order_and_rejects_a_bad_share(pairs):
    fitted, held = pairs.split(0.25)
    assert len(fitted) + len(held) == len(pairs) and fitted.prompts + held.prompts == pairs.prompts
    with pytest.raises(ValueError, match="expected a number in"):
        pairs.split(1.0)


def test_bradley_terry_loss_is_log2_at_a_tie_and_falls_with_the_margin():
    tie = rmod.bradley_terry_loss(torch.zeros(3), torch.zeros(3))
    assert tie.item() == pytest.approx(math.log(2))
    assert rmod.bradley_terry_loss(torch.full((3,), 2.0), torch.zeros(3)) < tie
    assert rmod.bradley_terry_loss(torch.zeros(3), torch.full((3,), 2.0)) > tie      # the wrong order costs more


def test_scores_read_the_last_real_token_whatever_the_padding():
    model = lm.load_pretrained().add_value_head()
    torch.nn.init.normal_(model.value_head.weight, std=1.0)
    with torch.no_grad():
        alone = rmod.reward_model_scores(model, ["312"], ["123."])
        padded = rmod.reward_model_scores(model, ["312", "98765"], ["123.", "56789."])
    assert torch.allclose(alone, padded[:1], atol=1e-5)
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        rmod.reward_model_scores(model, ["1", "2"], ["1."])


def test_a_short_fit_separates_held_out_pairs(pairs):
    fit = rmod.fit_reward_model(pairs, steps=80, seed=0)
    assert fit.pairs_fitted + fit.pairs_held_out == len(pairs)
    assert fit.held_out_accuracy > 0.8, fit.held_out_accuracy
    assert fit.losses[-1] < fit.losses[0]
    rewards = fit.reward_fn()(pairs.prompts[:4], pairs.chosen[:4])
    assert rewards.shape == (4,) and rewards.dtype == torch.float32 and not rewards.requires_grad


def test_finetune_takes_a_reward_fn_only_with_reward_learned():
    with pytest.raises(pg.ConfigError, match="reward_fn"):
        lm.finetune(method="grpo", reward="learned", updates=1)
    with pytest.raises(pg.ConfigError, match="reward_fn"):
        lm.finetune(method="grpo", updates=1, reward_fn=lambda prompts, texts: torch.zeros(len(texts)))


def test_finetune_trains_on_the_reward_fn_and_still_logs_the_exact_reward():
    calls = []

    def length_reward(prompts, texts):
        calls.append(len(texts))
        return torch.tensor([float(len(t)) for t in texts])

    result = lm.finetune(method="grpo", reward="learned", reward_fn=length_reward, updates=2, kl_coef=0.0,
                         eval_prompts=8, seed=0, device="cpu")
    assert calls == [64, 64]
    assert result.history["reward"][0] > 1.0                      # mean response length, not an exact reward
    assert all(0.0 <= value <= 1.0 for value in result.history["exact_reward"])
    assert result.config["reward"] == "learned"


# The cached learned-reward runs of lesson 08 §8 (tools/regenerate_08.py reward_model).
def _regenerate_08():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "tools" / "regenerate_08.py"
    spec = importlib.util.spec_from_file_location("regenerate_08_for_tests", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_learned_reward_table_has_every_arm_on_every_seed_and_its_weights():
    import json
    regen = _regenerate_08()
    table = json.loads(regen.REWARD_MODEL_RUNS.read_text())
    assert table["arms"] == regen.REWARD_MODEL_ARMS and table["settings"] == regen.REWARD_MODEL and table["seeds"] >= 10
    assert sorted((row["arm"], row["seed"]) for row in table["rows"]) == sorted(
        (arm, seed) for arm in regen.REWARD_MODEL_ARMS for seed in range(table["seeds"]))
    for row in table["rows"]:
        assert row["config"] == lm.FinetuneConfig(**regen.REWARD_MODEL_ARMS[row["arm"]], seed=row["seed"],
                                                  device="cpu").to_dict()
        assert row["status"] == "finished"
    model = lm.load_pretrained().add_value_head()
    model.load_state_dict(torch.load(regen.REWARD_MODEL_WEIGHTS, weights_only=True))   # the weights match the model


@pytest.mark.slow
def test_a_cached_learned_reward_row_reruns_to_the_same_numbers_or_inside_the_spread():
    """Re-run seed 3 of the unleashed arm with the stored reward model: bit for bit where this machine rounds as the
    one that made the cache, else inside the arm's spread (pgcourse.lm.cached.compare_rerun_row)."""
    import json
    from pgcourse.rl.lm import cached
    regen = _regenerate_08()
    table = json.loads(regen.REWARD_MODEL_RUNS.read_text())
    row = next(r for r in table["rows"] if r["arm"] == "learned_kl0" and r["seed"] == 3)
    reward_model = lm.load_pretrained().add_value_head()
    reward_model.load_state_dict(torch.load(regen.REWARD_MODEL_WEIGHTS, weights_only=True))
    fit = rmod.RewardModelFit(reward_model.eval(), 0.0, 0.0, 0, 0, [])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = lm.finetune(lm.FinetuneConfig(**row["config"]), reward_fn=fit.reward_fn())
    finally:
        torch.set_num_threads(threads)
    again = cached.rounded(result.to_dict()) | {"arm": row["arm"], "seed": row["seed"]}
    others = [r for r in table["rows"] if r["arm"] == row["arm"] and r["seed"] != row["seed"]]
    check = cached.compare_rerun_row(row, again, others)
    print(check)
    assert check.ok, check.problem
