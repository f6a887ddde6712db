"""Lesson 01's package piece: ``ReinforceConfig.return_weighting`` (total return vs reward-to-go).

- the option is validated with an error that names the field and the allowed values;
- the default (``"reward_to_go"``) is today's behaviour, to the bit, and older saved configs without the
  field load with it;
- ``"total"`` weights every step of an episode by that episode's G_0 (Williams' estimator), with or
  without normalisation and with the learned baseline;
- the lesson's regenerate script describes the sweep the lesson loads;
- the lesson's text no longer says what its own outputs contradict (issue 27), checked against the cached sweep
  where the evidence is there.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import pgcourse as pg
from conftest import assert_history_equal
from pgcourse.rl.algorithms import Components
from pgcourse.rl.config import ConfigError, ReinforceConfig, config_from_dict, make_config
from pgcourse.course.sweeps import load_results

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(max_episodes=12, num_envs=4)


def train(algo: str = "reinforce", seed: int = 7, **overrides) -> pg.Run:
    return pg.train(algo, "CartPole-v1", seed=seed, device="cpu", progress=False, **{**TINY, **overrides})


def spy(name: str, record: list):
    reference = getattr(Components(), name)

    def spying(*args, **kwargs):
        result = reference(*args, **kwargs)
        record.append((args, kwargs, result))
        return result
    return spying


@pytest.mark.parametrize("value", ["rtg", "Total", "", None, 1, True])
def test_bad_return_weighting_names_field_and_choices(value):
    with pytest.raises(ConfigError, match=r"return_weighting=.* is invalid: expected 'reward_to_go' .*, 'total' .* or "
                                          r"'discounted'"):
        make_config("reinforce", "CartPole-v1", "discrete", return_weighting=value)


def test_bad_return_weighting_via_train_fails_before_training():
    with pytest.raises(ConfigError, match="return_weighting"):
        train(return_weighting="reward-to-go")


@pytest.mark.parametrize("algo", ["reinforce", "reinforce_baseline"])
def test_return_weighting_defaults_to_reward_to_go(algo):
    assert ReinforceConfig(algo=algo, env_id="CartPole-v1").return_weighting == "reward_to_go"
    assert make_config(algo, "CartPole-v1", "discrete").return_weighting == "reward_to_go"


def test_return_weighting_is_not_a_setting_of_other_algorithms():
    with pytest.raises(ConfigError, match="return_weighting"):
        make_config("ppo", "CartPole-v1", "discrete", return_weighting="total")


def test_saved_config_without_the_field_loads_with_the_default():
    saved = make_config("reinforce", "CartPole-v1", "discrete", seed=3).to_dict()
    del saved["return_weighting"]  # a run saved before the option existed
    loaded = config_from_dict(saved)
    assert loaded.return_weighting == "reward_to_go" and loaded.seed == 3


def test_round_trip_keeps_total():
    config = make_config("reinforce", "CartPole-v1", "discrete", return_weighting="total")
    assert config_from_dict(config.to_dict()).return_weighting == "total"


@pytest.mark.parametrize("algo", ["reinforce", "reinforce_baseline"])
def test_explicit_reward_to_go_is_the_default_run_to_the_bit(algo):
    assert_history_equal(train(algo).history, train(algo, return_weighting="reward_to_go").history,
                         ignore=("wall_time",))


@pytest.mark.parametrize("normalize_weights", [False, True])
def test_total_weights_every_step_by_its_episodes_return(normalize_weights):
    returns_calls, loss_calls = [], []
    train(return_weighting="total", normalize_weights=normalize_weights,
          discounted_returns=spy("discounted_returns", returns_calls), reinforce_loss=spy("reinforce_loss", loss_calls))
    per_update = TINY["num_envs"]
    assert len(returns_calls) == per_update * len(loss_calls) and len(loss_calls) >= 2
    for update, (args, _, _) in enumerate(loss_calls):
        episodes = [result for _, _, result in returns_calls[update * per_update:(update + 1) * per_update]]
        expected = torch.cat([torch.full_like(g, float(g[0])) for g in episodes])  # [B] G_0 at every step
        weights = args[1]
        if normalize_weights:
            expected = pg.returns.normalize(expected)
        assert torch.allclose(weights, expected)
        reward_to_go = torch.cat(episodes)
        assert not torch.allclose(weights, pg.returns.normalize(reward_to_go) if normalize_weights else reward_to_go)


@pytest.mark.parametrize("normalize_weights", [False, True])
def test_discounted_weights_step_t_by_gamma_to_the_t_times_its_reward_to_go(normalize_weights):
    returns_calls, loss_calls = [], []
    run = train(return_weighting="discounted", normalize_weights=normalize_weights,
                discounted_returns=spy("discounted_returns", returns_calls), reinforce_loss=spy("reinforce_loss", loss_calls))
    gamma, per_update = run.config.gamma, TINY["num_envs"]
    assert len(returns_calls) == per_update * len(loss_calls) and len(loss_calls) >= 2
    for update, (args, _, _) in enumerate(loss_calls):
        episodes = [result for _, _, result in returns_calls[update * per_update:(update + 1) * per_update]]
        expected = torch.cat([torch.tensor([gamma ** t * float(g[t]) for t in range(len(g))]) for g in episodes])  # [B]
        if normalize_weights:
            expected = pg.returns.normalize(expected)
        assert torch.allclose(args[1], expected, rtol=1e-5, atol=1e-6)
        assert float(args[1][0]) != float(args[1][1]) or len(episodes[0]) == 1
        reward_to_go = torch.cat(episodes)
        assert not torch.allclose(args[1], pg.returns.normalize(reward_to_go) if normalize_weights else reward_to_go)


def test_discounted_round_trips_and_changes_the_run():
    config = make_config("reinforce", "CartPole-v1", "discrete", return_weighting="discounted")
    assert config_from_dict(config.to_dict()).return_weighting == "discounted"
    discounted, reward_to_go = train(return_weighting="discounted", normalize_weights=False), train(normalize_weights=False)
    assert discounted.history.updates["advantage_std"][0] != reward_to_go.history.updates["advantage_std"][0]
    assert discounted.history.updates["policy_loss"][0] != reward_to_go.history.updates["policy_loss"][0]


def test_total_with_baseline_subtracts_the_value_from_the_total_return_and_fits_the_critic_to_reward_to_go():
    returns_calls, value_calls, loss_calls = [], [], []
    train("reinforce_baseline", return_weighting="total", normalize_weights=False,
          discounted_returns=spy("discounted_returns", returns_calls), value_loss=spy("value_loss", value_calls),
          reinforce_loss=spy("reinforce_loss", loss_calls))
    per_update = TINY["num_envs"]
    for update, (args, _, _) in enumerate(loss_calls):
        episodes = [result for _, _, result in returns_calls[update * per_update:(update + 1) * per_update]]
        totals = torch.cat([torch.full_like(g, float(g[0])) for g in episodes])  # [B]
        values, critic_targets = value_calls[update][0]  # value_loss(values, returns)
        assert torch.allclose(args[1], totals - values.detach())
        assert torch.equal(critic_targets, torch.cat(episodes))  # the critic still learns V(s_t) from G_t


def test_total_changes_the_run():
    total, reward_to_go = train(return_weighting="total", normalize_weights=False), train(normalize_weights=False)
    assert total.history.updates["policy_loss"][0] != reward_to_go.history.updates["policy_loss"][0]
    assert total.history.updates["advantage_std"][0] != reward_to_go.history.updates["advantage_std"][0]


def test_regenerate_01_describes_the_lessons_sweep():
    spec = importlib.util.spec_from_file_location("regenerate_01", ROOT / "tools" / "regenerate_01.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sweep = module.SWEEPS["weighting"]
    folder, arms, seeds = sweep.folder, sweep.arms, sweep.seeds
    assert folder == ROOT / "figures" / "01_weighting" and seeds >= 10
    for arm in arms:  # every arm is a valid config
        overrides = {k: v for k, v in arm.items() if k != "label"}
        make_config("reinforce", "CartPole-v1", "discrete", **overrides, **module.SETTINGS)
    weightings = {(arm.get("return_weighting", "reward_to_go"), arm.get("normalize_weights", True)) for arm in arms}
    assert weightings == {(w, n) for w in ("reward_to_go", "total") for n in (False, True)} | {("discounted", False)}
    assert module.command("weighting") == "python tools/regenerate_01.py weighting --workers 2"


# The lesson's words against its evidence (issue 27): sentences the lesson used to say, each contradicted by an
# output of its own or by a known result, and the evidence that retired it.
def lesson_markdown(name: str = "01_reinforce.ipynb") -> str:
    """The lesson's markdown with its whitespace collapsed (a sentence may break across lines anywhere)."""
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    return " ".join(" ".join(cell.source.split()) for cell in notebook.cells if cell.cell_type == "markdown")


RETIRED_01 = {
    "we then follow the gradient of a slightly different objective":
        "with gamma < 1 the gamma^t-dropped update is the gradient of no objective (Nota and Thomas)",
    "the weights, and with them the gradient, grow about fivefold":
        "section 7 prints the raw gradient norm growing by 1.503, not five, from 22.2- to 113.7-step episodes",
    "the first steps of a long episode all get a weight close to 100":
        "the plot beside the sentence is a 200-step episode, whose G_0 is 86.6 and whose G_t falls all along",
    "the size of a gradient step no longer depends on how good the agent already is":
        "section 7 prints the normalised gradient norm changing by a factor 0.4825",
    "With hundreds to thousands of steps per batch this is negligible":
        "a batch is 4 episodes of 22.2 steps at the untrained policy, and the bias is not measured",
    "the normalised norm shrinks), as section 5 predicted":
        "section 5 predicted no shrinking",
    "the longer the episodes, the more of them there are":
        "implied a growing factor; total / reward-to-go was 5.8, then 5.7",
}


@pytest.mark.parametrize("sentence", list(RETIRED_01), ids=list(RETIRED_01.values()))
def test_lesson_01_no_longer_says_what_its_evidence_contradicts(sentence):
    assert sentence not in lesson_markdown(), f"lesson 01 says {sentence!r}, but {RETIRED_01[sentence]}"


def test_lesson_01_says_what_the_worst_default_seed_did():
    """The default arm's worst seed at episode 200 climbed far above where it ended and fell back; the lesson
    said it 'stalled'. It must now quote that peak, as the cached sweep has it."""
    sweep = load_results(ROOT / "figures" / "01_weighting")
    names = sweep.short_names()
    runs = next(records for arm, records in sweep.by_arm().items() if names[arm] == "reward-to-go, normalised")
    curves = np.stack([pg.stats.moving_average(r.episode_returns, 20) for r in runs])  # [seeds, episodes]
    worst = curves[curves[:, -1].argmin()]  # [episodes]
    assert worst.max() - worst[-1] > 100, "the worst seed no longer climbs and falls back: rewrite lesson 01, section 9"
    text = lesson_markdown()
    assert "it stalled" not in text, "lesson 01 says the worst seed stalled; it climbed and fell back"
    assert f"rose to {worst.max():.1f} at episode {int(worst.argmax()) + 1}" in text, \
        f"lesson 01 should say the worst seed rose to {worst.max():.1f} at episode {int(worst.argmax()) + 1}"


def test_lesson_01_folds_its_detail_to_one_number_per_35_words():
    """Issue 27, item 2: at most one number per 35 words of markdown outside <details> (tools/number_density.py)."""
    spec = importlib.util.spec_from_file_location("number_density", ROOT / "tools" / "number_density.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("number_density", module)
    spec.loader.exec_module(module)
    counted = module.notebook_density(ROOT / "notebooks" / "01_reinforce.ipynb")
    assert counted.words_per_number >= 35, (
        f"lesson 01's prose outside <details> has {counted}; expected at least 35 words per number: fold per-seed "
        "tables and second-order numbers into <details> blocks, keep at most three bold takeaways per section")


PRIMER_TOOLS = ("pg.stats.iqm_weights", "pg.stats.stratified_bootstrap", "pg.stats.probability_of_improvement",
                "pg.stats.wilson_interval")


def statistics_primer_problems(notebook) -> list[str]:
    """What lesson 01's statistics primer lacks (issue 27, item 3). A short box before the first cell that compares
    seeds must say how to read the mean and the IQM, the bootstrap interval, P(improvement) and the Wilson interval,
    and point to the appendix. The appendix (a heading with 'statistics primer', the lesson's last section) must define
    them too and test each on a re-runnable simulation (numpy with a fixed seed) whose claims are asserted."""
    cells = notebook.cells
    first_comparison = next(i for i, cell in enumerate(cells) if cell.cell_type == "code"
                            and "probability_of_improvement(final[" in cell.source)
    terms = ("IQM", "mean", "bootstrap", "Probability of improvement", "Wilson")
    box = [cell.source for cell in cells[:first_comparison] if cell.cell_type == "markdown"
           and "How to read the seed comparisons" in cell.source]
    if not box:
        return ["no box 'How to read the seed comparisons' before the first comparison of seeds"]
    problems = [f"the box before the first comparison does not explain {term}" for term in terms + ("appendix",)
                if term not in box[-1]]
    heading = [i for i, cell in enumerate(cells) if cell.cell_type == "markdown"
               and any(line.startswith("#") and "statistics primer" in line for line in cell.source.splitlines())]
    if not heading or heading[0] < first_comparison:
        return problems + ["no appendix (a heading with 'statistics primer') after the comparisons of seeds"]
    primer = cells[heading[0]:]  # the appendix runs to the end of the lesson
    if any(cell.cell_type == "markdown" and cell.source.startswith("## ") for cell in primer[1:]):
        problems.append("the statistics primer is not the lesson's last section")
    text = " ".join(cell.source for cell in primer if cell.cell_type == "markdown")
    code = [cell for cell in primer if cell.cell_type == "code"]
    problems += [f"the primer's text does not define {term}" for term in terms if term not in text]
    problems += [f"no primer cell simulates with {tool}" for tool in PRIMER_TOOLS
                 if not any(tool in cell.source for cell in code)]
    for cell in code:
        if "np.random.default_rng(" not in cell.source or "pg.claim(" not in cell.source:
            problems.append(f"primer cell {cell.source[:40]!r} needs a fixed-seed simulation and an asserted claim")
        if "✓" not in "".join(output.get("text", "") for output in cell.get("outputs", [])):
            problems.append(f"primer cell {cell.source[:40]!r} shows no asserted claim in its stored output")
    return problems


def test_lesson_01_teaches_its_statistics_before_it_compares_seeds():
    notebook = nbformat.read(ROOT / "notebooks" / "01_reinforce.ipynb", as_version=4)
    assert statistics_primer_problems(notebook) == []
