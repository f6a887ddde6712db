"""The definitions in ``pgcourse/rl`` (mostly ``rl/lm``) that the second part of the mechanical sweep found no unit test
pinning (issue 45, item 5; ``tools/boundary_sweep.py --paths pgcourse/rl``, the mutants it ran on 2026-11-28),
and one line it found no unit test running (the crossover cache under ``XDG_CACHE_HOME``); the sweep of ``pgcourse/rl``
finished on 2026-11-28 (637 mutants).

Each test states what a check or a piece of bookkeeping means and runs it on the case where the code and a one-line
change of it disagree: a value at the edge of its range (accepted or refused as the error message says), a part of a
condition that only one kind of run needs, an argument that must be used and not replaced by the default. Every
expected value is worked out by hand.

Mutants left untested, because no input tells them apart from the code:
- ``TinyLM._init``'s ``module.bias is not None``: every ``nn.Linear`` of the model has a bias (so dropping the test
  changes nothing), and the zero-initialised value head is set apart;
- ``corpus_answer``'s ``has_repeat(prompt)`` before the dedup draw: deduplicating a prompt without a repeated digit
  changes nothing, and the draw is made either way (the test below states the definition all the same);
- the flips of ``<`` and ``<=`` against a float drawn by ``torch.rand`` (``corpus_answer``'s slip and swap draws) and
  against a clock (``pretrain``'s ``max_seconds``, ``LiveView``'s ``min_seconds``): equality has probability zero.
"""
from __future__ import annotations

import importlib
import math

import pytest
import torch

from pgcourse.rl import course_files, envs, live
from pgcourse.rl.config import ConfigError
from pgcourse.rl.history import History
from pgcourse.rl.lm.finetune import FinetuneConfig, finetune
from pgcourse.rl.lm.model import ModelConfig, TinyLM
from pgcourse.rl.lm.reward_model import PreferencePairs, fit_reward_model
from pgcourse.rl.lm.task import corpus_answer, make_prompts

pretrain_module = importlib.import_module("pgcourse.rl.lm.pretrain")  # (the package's `pretrain` is the function)
TINY_MODEL = dict(d_model=8, n_heads=2, n_layers=1, d_mlp=16)


# -- FinetuneConfig: each setting at the edges of what its message says ---------------------------------------------
@pytest.mark.parametrize("gae_lambda, accepted", [(0.0, True), (1.0, True), (-1e-9, False), (1.0 + 1e-9, False),
                                                  (True, False), ("0.9", False), (math.nan, False)])
def test_gae_lambda_is_a_number_in_the_closed_interval_from_0_to_1(gae_lambda, accepted):
    """'a number in [0, 1]': both ends included (0 is one-step TD, 1 Monte Carlo); a bool, a string or NaN is not a
    number and gets the ConfigError (a string must not reach ``math.isfinite``)."""
    if accepted:
        assert FinetuneConfig(method="ppo", gae_lambda=gae_lambda).gae_lambda == gae_lambda
    else:
        with pytest.raises(ConfigError, match="gae_lambda=.*a number in \\[0, 1\\]"):
            FinetuneConfig(method="ppo", gae_lambda=gae_lambda)


@pytest.mark.parametrize("value, accepted", [(0.5, True), (True, False), (1, True), ("1", False)])
def test_a_float_setting_takes_ints_and_floats_but_not_bools_or_strings(value, accepted):
    if accepted:
        FinetuneConfig(clip_eps=value)
    else:
        with pytest.raises(ConfigError, match="clip_eps="):
            FinetuneConfig(clip_eps=value)


@pytest.mark.parametrize("name, value, accepted", [("max_new_tokens", 64, True), ("max_new_tokens", 65, False),
                                                   ("max_digits", 10, True), ("max_digits", 11, False)])
def test_an_integer_setting_may_equal_the_top_of_its_range(name, value, accepted):
    """'an integer in [1, 64]' (max_new_tokens) and '[1, 10]' (the digits): both ends included."""
    if accepted:
        assert getattr(FinetuneConfig(**{name: value}), name) == value
    else:
        with pytest.raises(ConfigError, match=f"{name}={value} is invalid: expected an integer in \\[1, "):
            FinetuneConfig(**{name: value})


@pytest.mark.parametrize("min_digits, max_digits, accepted", [(4, 4, True), (4, 5, True), (5, 4, False)])
def test_max_digits_may_equal_min_digits(min_digits, max_digits, accepted):
    """'an integer >= min_digits': prompts of one length are allowed."""
    if accepted:
        FinetuneConfig(min_digits=min_digits, max_digits=max_digits)
    else:
        with pytest.raises(ConfigError, match="max_digits=4 is invalid: expected an integer >= min_digits=5"):
            FinetuneConfig(min_digits=min_digits, max_digits=max_digits)


def test_grpo_accepts_two_responses_per_prompt():
    assert FinetuneConfig(method="grpo", group_size=2).batch_size == 16


@pytest.mark.parametrize("method, accepted", [("grpo", False), ("ppo", True), ("reinforce", True)])
def test_only_grpo_needs_two_responses_per_prompt(method, accepted):
    """GRPO's advantage compares a prompt's responses, so it needs G >= 2; REINFORCE and PPO do not compare them."""
    if accepted:
        assert FinetuneConfig(method=method, group_size=1).batch_size == 8
    else:
        with pytest.raises(ConfigError, match="group_size=1 is invalid: expected an integer >= 2 for method='grpo'"):
            FinetuneConfig(method=method, group_size=1)


# -- finetune: the prompt-and-response length, the value head, the verbose lines -----------------------------------
def tiny_policy(max_len: int) -> TinyLM:
    torch.manual_seed(0)
    return TinyLM(ModelConfig(**TINY_MODEL, max_len=max_len))


TINY_RUN = dict(updates=1, prompts_per_update=1, group_size=2, eval_prompts=2, min_digits=1, max_digits=2,
                max_new_tokens=3, device="cpu")


@pytest.mark.parametrize("max_len, accepted", [(7, True), (6, False)])
def test_a_prompt_and_its_response_may_fill_the_models_positions_exactly(max_len, accepted):
    """BOS + a 2-digit prompt + '>' + 3 response tokens take 7 positions: a model with max_len 7 holds them."""
    if accepted:
        assert len(finetune(model=tiny_policy(max_len), **TINY_RUN).history["reward"]) == 1
    else:
        with pytest.raises(ConfigError, match="max_new_tokens=3 is invalid: expected an integer <= 2"):
            finetune(model=tiny_policy(max_len), **TINY_RUN)


@pytest.mark.parametrize("method, has_value_head", [("grpo", False), ("reinforce", False), ("ppo", True)])
def test_only_ppo_gives_the_policy_a_value_head(method, has_value_head):
    """PPO's advantages come from a value head over tokens; GRPO and REINFORCE use none, and the policy they return
    has none (the starting model has none either)."""
    result = finetune(model=tiny_policy(16), method=method, **TINY_RUN)
    assert (result.model.value_head is not None) == has_value_head


def test_verbose_prints_every_sample_every_updates_and_the_last(capsys):
    """'one line every ``sample_every`` updates' and one for the last update, as the samples are kept: updates 0
    and 2 of three with sample_every=5."""
    result = finetune(model=tiny_policy(16), verbose=True, sample_every=5, **{**TINY_RUN, "updates": 3})
    printed = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("update")]
    assert printed == ["0", "2"] == [str(sample["update"]) for sample in result.samples]


# -- the model, pretraining and the corpus ---------------------------------------------------------------------------
def test_a_model_is_built_with_the_config_it_is_given():
    config = ModelConfig(**TINY_MODEL, max_len=9)
    model = TinyLM(config)
    assert model.config is config and model.position_embedding.num_embeddings == 9


@pytest.mark.parametrize("length, accepted", [(9, True), (10, False)])
def test_a_sequence_may_be_as_long_as_max_len(length, accepted):
    model = TinyLM(ModelConfig(**TINY_MODEL, max_len=9))
    tokens = torch.ones((2, length), dtype=torch.long)
    if accepted:
        assert model(tokens).shape == (2, length, model.config.vocab_size)
    else:
        with pytest.raises(ValueError, match="sequence of 10 tokens is longer than the model's max_len=9"):
            model(tokens)


def test_pretraining_builds_the_model_config_it_is_given():
    config = ModelConfig(**TINY_MODEL, max_len=20)
    result = pretrain_module.pretrain(steps=1, batch_size=2, model_config=config, warmup=1)
    assert result.model.config is config and result.config.model == config.to_dict()


def test_the_accuracy_split_by_repeated_digits_counts_each_group_alone(monkeypatch):
    """``evaluate_sorting``'s accuracies with and without a repeated digit are over those prompts only. Prompts 112,
    3 and 221 (the first and last with a repeat); sampled answers right on 112 and 221, greedy ones on 112 and 3."""
    prompts = ["112", "3", "221"]
    answers = {"sampled": ["112.", "9.", "122."], "greedy": ["112.", "3.", "9."]}

    class Texts:
        def __init__(self, texts):
            self.texts = texts

    monkeypatch.setattr(pretrain_module, "generate", lambda model, batch, max_new_tokens, temperature=1.0,
                        generator=None, greedy=False: Texts(answers["greedy" if greedy else "sampled"]))
    result = pretrain_module.evaluate_sorting(TinyLM(ModelConfig(**TINY_MODEL)), prompts)
    assert result["sampled_exact"] == pytest.approx(2 / 3) and result["greedy_exact"] == pytest.approx(2 / 3)
    assert (result["sampled_exact_repeat"], result["sampled_exact_distinct"]) == (1.0, 0.0)
    assert (result["greedy_exact_repeat"], result["greedy_exact_distinct"]) == (0.5, 1.0)
    assert (result["prompts"], result["prompts_with_repeat"]) == (3, 2)


@pytest.mark.parametrize("min_digits, max_digits, accepted", [(3, 3, True), (1, 1, True), (4, 3, False),
                                                              (0, 2, False)])
def test_prompts_may_all_have_one_length(min_digits, max_digits, accepted):
    generator = torch.Generator().manual_seed(0)
    if accepted:
        assert {len(p) for p in make_prompts(20, generator, min_digits, max_digits)} == {min_digits}
    else:
        with pytest.raises(ValueError, match="need 1 <= min_digits <= max_digits"):
            make_prompts(20, generator, min_digits, max_digits)


def test_the_corpus_dedups_only_prompts_with_a_repeated_digit():
    """The systematic mistake (each distinct digit once) is about repeated digits: with dedup_prob 1 and no slips, a
    prompt without a repeat is still answered right, and one with a repeat loses its copies (with dedup_prob 0 it
    keeps them)."""
    def answer(prompt, dedup_prob):
        return corpus_answer(prompt, torch.Generator().manual_seed(0), dedup_prob=dedup_prob, slip_prob=0.0)

    assert answer("312", 1.0) == "123."
    assert answer("3112", 1.0) == "123." and answer("3112", 0.0) == "1123."


# -- the reward model's arguments -------------------------------------------------------------------------------------
def pairs(count: int) -> PreferencePairs:
    return PreferencePairs(["12"] * count, ["12"] * count, ["21"] * count, offered=count)


@pytest.mark.parametrize("share, accepted", [(0.0, False), (1.0, False), (0.5, True)])
def test_a_held_out_share_is_strictly_between_0_and_1(share, accepted):
    if accepted:
        fitted, held_out = pairs(4).split(share)
        assert (len(fitted), len(held_out)) == (2, 2)
    else:
        with pytest.raises(ValueError, match="expected a number in \\(0, 1\\)"):
            pairs(4).split(share)


@pytest.mark.parametrize("steps, batch_size, count, message", [
    (0, 4, 5, "must be positive"), (1, 0, 5, "must be positive"),
    (1, 1, 5, None),  # one pair a step is a minibatch
    (1, 4, 2, "too few to fit and hold out"),  # 0.2 of 2 rounds to none held out
    (1, 4, 3, None),  # 2 fitted, 1 held out: the fewest that fit and hold out
])
def test_a_reward_model_needs_a_step_a_pair_a_step_two_fitted_pairs_and_one_held_out(steps, batch_size, count,
                                                                                     message):
    model = TinyLM(ModelConfig(**TINY_MODEL))
    if message is None:
        fit = fit_reward_model(pairs(count), steps=steps, batch_size=batch_size, model=model)
        assert fit is not None
    else:
        with pytest.raises(ValueError, match=message):
            fit_reward_model(pairs(count), steps=steps, batch_size=batch_size, model=model)


def test_a_reward_model_needs_two_fitted_pairs_even_with_one_held_out():
    with pytest.raises(ValueError, match="too few to fit and hold out"):
        fit_reward_model(pairs(2), steps=1, batch_size=1, held_out_share=0.5, model=TinyLM(ModelConfig(**TINY_MODEL)))


@pytest.mark.parametrize("prompt, swap_draw, answer", [
    ("3", 0.9, "33."),  # one digit: a slip can only write it twice, whatever the draw
    ("31", 0.2, "113."),  # a draw below one half: a digit written twice
    ("31", 0.9, "31."),  # two digits and a draw of at least one half: the neighbours swapped
    ("312", 0.9, "213."),
])
def test_a_corpus_slip_writes_a_digit_twice_or_swaps_two_neighbours(monkeypatch, prompt, swap_draw, answer):
    """``corpus_answer``'s slip: with a draw below 0.5, or an answer of one digit (nothing to swap), a digit written
    twice; otherwise two neighbours swapped. The draws are set here (dedup none, slip always, where: the first digit)."""
    task_module = importlib.import_module("pgcourse.rl.lm.task")
    monkeypatch.setattr(task_module.torch, "rand", lambda n, generator=None: torch.tensor([0.9, 0.0, swap_draw]))
    monkeypatch.setattr(task_module.torch, "randint", lambda low, high, size, generator=None: torch.zeros(size,
                                                                                                       dtype=torch.long))
    assert corpus_answer(prompt, torch.Generator(), dedup_prob=0.0, slip_prob=0.5) == answer


def test_a_tensor_env_names_its_streams_only_when_it_has_more_than_one():
    from pgcourse.rl.tensor_envs import TensorVectorEnv
    assert "streams" not in repr(TensorVectorEnv("CartPole-v1", 2, device="cpu"))
    assert repr(TensorVectorEnv("CartPole-v1", 4, device="cpu", streams=2)).endswith(", streams=2)")


def test_a_batch_refuses_an_unbatched_trap_planted_in_any_one_agent():
    """``log_prob_not_summed`` has no batched form: one agent carrying it refuses the batch, not only all of them."""
    import pgcourse as pg
    with pytest.raises(ConfigError, match="log_prob_not_summed"):
        pg.train_many("ppo", "Pendulum-v1", seeds=[0, 1], total_steps=64, num_envs=2, n_steps=16, minibatch_size=16,
                      progress=False, per_agent={"traps": [(), ("log_prob_not_summed",)]})


# -- the rest of pgcourse/rl -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("start_here, figures, is_root", [(True, True, True), (True, False, False),
                                                          (False, True, False)])
def test_the_course_folder_holds_both_start_here_and_figures(tmp_path, start_here, figures, is_root):
    if start_here:
        (tmp_path / course_files.START_HERE).write_text("{}")
    if figures:
        (tmp_path / "figures").mkdir()
    assert course_files.is_course_root(tmp_path) == is_root


def test_an_env_without_keyword_arguments_says_so():
    """Acrobot's constructor takes only render_mode: the hint names no accepted argument, it says there is none."""
    hint = envs._bad_kwargs_hint("Acrobot-v1", {"lenght": 1.0})
    assert "Acrobot-v1 accepts no keyword arguments (and gym.make's max_episode_steps)" in hint
    assert "'lenght'" in hint


def test_the_live_view_draws_at_most_once_per_min_seconds():
    """'redrawn every ``every`` updates (at most once per ``min_seconds``)': two updates within an hour draw once."""
    class Trainer:
        def __init__(self):
            self.history, self.env_step, self.num_updates = History(), 0, 0
            self.config = type("Config", (), {"total_steps": 100})()

    view, trainer = live.LiveView(every=1, min_seconds=3600.0), Trainer()
    for update in (1, 2):
        trainer.num_updates, trainer.env_step = update, 10 * update
        trainer.history.updates.append(env_step=trainer.env_step, wall_time=0.1 * update, policy_loss=0.0)
        view.update(trainer)
    assert view.updates_seen == 2 and view.redraws == 1
    assert view.history is trainer.history  # one agent: its History itself (a batch's view keeps a list of them)


def test_the_device_crossover_is_cached_where_its_docstring_says(monkeypatch, tmp_path):
    """``$PGCOURSE_CACHE_DIR``, else ``$XDG_CACHE_HOME/pgcourse``, else ``~/.cache/pgcourse`` (no unit test set
    ``XDG_CACHE_HOME`` before: the sweep found its line not covered)."""
    from pgcourse.rl import devices
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(devices.CACHE_ENV_VAR, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert devices.crossover_path() == tmp_path / "home" / ".cache" / "pgcourse" / "device_crossover.json"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert devices.crossover_path() == tmp_path / "xdg" / "pgcourse" / "device_crossover.json"
    monkeypatch.setenv(devices.CACHE_ENV_VAR, str(tmp_path / "mine"))
    assert devices.crossover_path() == tmp_path / "mine" / "device_crossover.json"
