"""The stage checks of the write-the-loop exercises (lesson 01's REINFORCE loop, exercises 04b's PPO from scratch).

Every stage check passes the reference with one line, fails a stub with "not implemented yet", reports a crash
as the learner's own, rejects each wrong version of tests/wrong_loops.py with the hint that names its mistake
(without handing over code), and accepts the right versions written another way. The cases contain what they
claim (terminations, truncations, a step with both flags, a rollout that starts on a reset step, updates that
clip). The references ARE the package's loops: glued together, they train exactly the run ``pg.train`` trains
(slow tests, as are the end-to-end checks on real training).
"""
from __future__ import annotations

import itertools
import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.course import checks
from pgcourse.course.checks import ch01_loop, ch04b_ppo_loop
from pgcourse.course.checks.stages import CountingEnvs
from pgcourse.rl.envs import make_raw_vector_env

import wrong_loops
from wrong_loops import CORRECT_LOOPS, WRONG_LOOPS

FAST_STAGES = ["collect_episodes", "reinforce_update", "collect_rollout", "advantages_and_returns", "ppo_update"]
END_TO_END = ["train_reinforce", "train_ppo"]
ROOT = Path(__file__).resolve().parent.parent
# Code, not words (as tests/test_checks.py): a method call or a keyword argument
SOLUTION_CODE = re.compile(r"[A-Za-z_]\w*\.[A-Za-z_]\w*\(|\b(?!terminated=|truncated=)[a-z_]+=[A-Za-z_(]")


def stub(*args, **kwargs):
    raise NotImplementedError()


def _crashing_helper(x):
    return x / 0


def learner_crashes(*args, **kwargs):
    return _crashing_helper(1)


_messages: dict[str, str] = {}


def rejection(wrong_loop, **kwargs) -> str:
    if wrong_loop.id not in _messages:
        with pytest.raises(AssertionError) as info:
            checks.STAGE_CHECKS[wrong_loop.stage](wrong_loop.fn, **kwargs)
        _messages[wrong_loop.id] = str(info.value)
    return _messages[wrong_loop.id]


def test_every_stage_is_registered_with_a_reference():
    assert sorted(checks.STAGE_CHECKS) == sorted(FAST_STAGES + END_TO_END)
    assert set(checks.STAGE_REFERENCES) == set(checks.STAGE_CHECKS)
    for name, check in checks.STAGE_CHECKS.items():
        assert getattr(checks, f"check_{name}") is check and check.__name__ == f"check_{name}"
        assert name in pg.hints.HINTS, f"{name} has no hints"


@pytest.mark.parametrize("name", FAST_STAGES)
def test_reference_passes_with_one_line(name, capsys):
    checks.STAGE_CHECKS[name](checks.STAGE_REFERENCES[name])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"✓ {name}: ")


@pytest.mark.parametrize("name", FAST_STAGES + END_TO_END)
def test_stub_is_not_implemented_yet(name, capsys):
    with pytest.raises(AssertionError, match="not implemented yet"):
        checks.STAGE_CHECKS[name](stub)


@pytest.mark.parametrize("name", FAST_STAGES + END_TO_END)
def test_learner_exception_is_reported_as_theirs(name, capsys):
    with pytest.raises(checks.LearnerCodeError) as info:
        checks.STAGE_CHECKS[name](learner_crashes)
    message = str(info.value)
    assert "ZeroDivisionError" in message and "_crashing_helper" in message and "pgcourse/course/checks/" not in message


@pytest.mark.parametrize("wrong_loop", [w for w in WRONG_LOOPS if w.stage in FAST_STAGES], ids=lambda w: w.id)
def test_wrong_version_is_rejected_by_its_stage_with_its_own_hint(wrong_loop):
    message = rejection(wrong_loop)
    assert message.startswith(f"{wrong_loop.stage}: ")
    assert wrong_loop.hint in message, f"expected {wrong_loop.hint!r}, got:\n{message}"
    assert "Failing case:" in message


@pytest.mark.parametrize("bug", sorted(wrong_loops.SAMPLE_STD_TWINS))
def test_a_sample_std_learners_mistake_is_named_as_the_population_std_learners(bug):
    """04b's ppo_update accepts either std; a student who standardised with torch's default (the sample std) and made
    a mistake on top was told 'the policy parameters differ ... No known mistake' (or that the parameters differ when
    only a diagnostic did): the check compared with the population std's reference. It now speaks of the version the
    learner agrees with furthest, and replays the mistakes in it."""
    def learner(*args):
        return wrong_loops.learner_update(*args, bug=bug, sample_std=True)

    twin = next(w for w in WRONG_LOOPS if w.fn.__name__ == wrong_loops.SAMPLE_STD_TWINS[bug])
    with pytest.raises(AssertionError) as info:
        checks.STAGE_CHECKS["ppo_update"](learner)
    message = str(info.value)
    assert twin.hint in message and "No known mistake" not in message, message
    assert message.splitlines()[0] == rejection(twin).splitlines()[0], (message, rejection(twin))


@pytest.mark.parametrize("stage, fn", [v for v in CORRECT_LOOPS if v[0] in FAST_STAGES],
                         ids=lambda v: getattr(v, "__name__", v))
def test_other_correct_versions_pass(stage, fn, capsys):
    checks.STAGE_CHECKS[stage](fn)
    assert capsys.readouterr().out.startswith(f"✓ {stage}")


def test_the_catalogue_covers_every_stage_and_the_mistakes_the_issue_names():
    assert {w.stage for w in WRONG_LOOPS} == set(FAST_STAGES + END_TO_END)
    assert {stage for stage, _ in CORRECT_LOOPS} == set(FAST_STAGES + END_TO_END)
    assert len({w.id for w in WRONG_LOOPS}) == len(WRONG_LOOPS)
    for wrong_loop in WRONG_LOOPS:
        assert wrong_loop.fn.__doc__, f"{wrong_loop.id} needs a docstring naming its mistake"
    docs = " ".join(w.fn.__doc__.lower() for w in WRONG_LOOPS)
    for mistake in ("reset step trained on", "stale old log-probs", "advantages not detached", "gae over the env axis",
                    "normalising per minibatch when the config asks", "truncation treated as termination",
                    "bootstrapping from the reset observation"):
        assert mistake in docs, mistake


def test_hints_of_one_stage_are_all_different_and_name_no_other_mistake():
    by_stage = defaultdict(list)
    for wrong_loop in WRONG_LOOPS:
        if wrong_loop.stage in FAST_STAGES:
            by_stage[wrong_loop.stage].append(wrong_loop)
    for stage, versions in by_stage.items():
        assert len({w.hint for w in versions}) == len(versions), stage
        for a, b in itertools.permutations(versions, 2):
            assert b.hint not in rejection(a), f"{a.id} is rejected with the hint of {b.id}:\n{rejection(a)}"


def test_what_a_stage_check_says_holds_no_solution_code():
    mistakes = (ch04b_ppo_loop.ROLLOUT_MISTAKES + ch04b_ppo_loop.GAE_MISTAKES + ch04b_ppo_loop.UPDATE_MISTAKES
                + ch01_loop.EPISODES_MISTAKES + ch01_loop.REINFORCE_UPDATE_MISTAKES)
    texts = [m.hint for m in mistakes] + list(ch04b_ppo_loop._ROLLOUT_CONCEPT.values()) + \
        list(ch04b_ppo_loop._UPDATE_CONCEPT.values()) + [ch04b_ppo_loop._GAE_CONCEPT]
    for text in texts:
        assert not SOLUTION_CODE.search(text), text
    for wrong_loop in WRONG_LOOPS:
        if wrong_loop.stage in FAST_STAGES:
            for line in rejection(wrong_loop).splitlines():
                if line.startswith(("Probable mistake:", "No known mistake", "collect_", "ppo_update:",
                                    "advantages_", "reinforce_")):
                    assert not SOLUTION_CODE.search(line), f"{wrong_loop.id}: {line}"


def _advantages_messages() -> dict[str, str]:
    """The advantages check's message for each wrong version of the catalogue and each known mistake of the check."""
    messages = {w.id: rejection(w) for w in WRONG_LOOPS if w.stage == "advantages_and_returns"}
    for number, mistake in enumerate(ch04b_ppo_loop.GAE_MISTAKES):
        with pytest.raises(AssertionError) as info:
            checks.check_advantages_and_returns(mistake.compute)
        messages[f"GAE_MISTAKES[{number}]"] = str(info.value)
    return messages


def test_an_advantages_message_never_names_a_mistake_and_then_says_none_is_known():
    """A message that names the mistake (in its first line or as the probable mistake) never adds "No known mistake
    reproduces ...", and what a field should hold is said of advantages and returns only (an input changed in place
    is not described as advantages)."""
    for label, message in _advantages_messages().items():
        field = re.match(r"advantages_and_returns: your (?:function changed its input )?`(\w+)`", message)
        assert field is not None, f"{label}: {message}"
        assert message.count("Probable mistake:") + message.count("No known mistake") == 1, f"{label}:\n{message}"
        if "No known mistake" in message:
            assert field.group(1) in ("advantages", "returns"), f"{label}:\n{message}"
        if "requires grad" in message.splitlines()[0] or "in place" in message.splitlines()[0]:
            assert "Probable mistake:" in message, f"{label}:\n{message}"


def test_each_known_advantages_mistake_is_named_by_its_own_hint():
    """Two mistakes can agree on the smallest failing case (a forward loop and a loop over the env axis on a
    one-env rollout; next_values read from the next row and a truncation treated as a termination on T = 1): the
    check names the one that reproduces the learner's advantages on every case."""
    messages = _advantages_messages()
    for number, mistake in enumerate(ch04b_ppo_loop.GAE_MISTAKES):
        message = messages[f"GAE_MISTAKES[{number}]"]
        assert f"Probable mistake: {mistake.hint}" in message, f"GAE_MISTAKES[{number}]:\n{message}"


def _markdown(notebook: str, grade_id: str) -> str:
    cells = json.loads((ROOT / "solutions" / notebook).read_text(encoding="utf-8"))["cells"]
    return " ".join("".join(cell["source"]) for cell in cells
                    if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id).replace("\n", " ")


def test_each_exercise_text_says_which_std_its_check_takes():
    """04b's ppo_update check accepts the population and the sample std (tests/wrong_loops.py has a correct update
    with each); 08's group-relative advantages take the sample std and name the population one as a mistake
    (tests/wrong_versions.py). Each exercise's text says which, and points at the other's rule."""
    ppo = _markdown("04b_ppo_from_scratch.ipynb", "ch04b_ppo_update_text")
    assert "the population one (it divides by $B$" in ppo and "the sample one (it divides by $B - 1$" in ppo
    assert "the check accepts both" in ppo.lower()
    grpo = _markdown("08_llm_policy_gradients.ipynb", "ch08_group_relative_advantages_text")
    assert "with the sample standard deviation (the one that divides by $G - 1$" in grpo
    assert "the population std (which divides by $G$)" in grpo and "the check names it as a mistake" in grpo
    assert {"update_cleanrl_style", "update_standardised_with_the_sample_std"} <= {
        fn.__name__ for stage, fn in CORRECT_LOOPS if stage == "ppo_update"}


def test_without_a_known_mistake_the_message_says_what_the_field_holds():
    def rollout_with_doubled_rewards(envs, policy, value_net, start, n_steps):
        rollout, next_start = ch04b_ppo_loop.reference_collect_rollout(envs, policy, value_net, start, n_steps)
        rollout.rewards = rollout.rewards * 2
        return rollout, next_start

    with pytest.raises(AssertionError) as info:
        checks.check_collect_rollout(rollout_with_doubled_rewards)
    message = str(info.value)
    assert message.startswith("collect_rollout: your `rewards` are not equal to the reference's.")
    assert "Probable mistake" not in message and "Failing case: 1 CartPole-v1 env(s)" in message
    assert "6 of 6 entries differ, first at [0, 0]: expected 1, received 2" in message


def test_the_cases_contain_what_the_checks_claim():
    rollouts = [case.run(ch04b_ppo_loop.reference_collect_rollout) for case in ch04b_ppo_loop.ROLLOUT_CASES]
    terminated = [r.terminated.bool() for (r, _), _ in rollouts]
    truncated = [r.truncated.bool() for (r, _), _ in rollouts]
    assert any(t.any() for t in terminated) and any(t.any() for t in truncated)
    assert any((a & b).any() for a, b in zip(terminated, truncated)), "a step with both flags"
    continued = [(case, start) for case, (_, start) in zip(ch04b_ppo_loop.ROLLOUT_CASES, rollouts) if case.warmup_steps]
    assert continued and all(np.asarray(start[1]).any() for _, start in continued), "a rollout starts on a reset step"
    assert any(not (r.valid[0].all()) for (r, _), _ in rollouts)
    for case in ch04b_ppo_loop.UPDATE_CASES[:2]:
        result = case.run(ch04b_ppo_loop.reference_ppo_update)[0]
        assert result["clip_fraction"] > 0.1 and result["approx_kl"] > 0, case.description
    lengths = [[len(r) for r in case.run(ch01_loop.reference_collect_episodes)[2]] for case in ch01_loop.EPISODES_CASES]
    assert any(len(set(batch)) > 1 for batch in lengths), "episodes of different lengths in one batch"
    assert 12 in lengths[1], "an episode ended by the time limit"


def test_stage_checks_leave_the_random_state_alone(capsys):
    """(Their speed is measured by ``pgcourse bench``'s checks section, not asserted here: issue 50.)"""
    state = torch.get_rng_state()
    for name in FAST_STAGES:
        checks.STAGE_CHECKS[name](checks.STAGE_REFERENCES[name])
    assert torch.equal(state, torch.get_rng_state())


def test_counting_envs_count_like_pg_train():
    envs = CountingEnvs(make_raw_vector_env("CartPole-v1", 2, vectorization="auto"))
    envs.reset(seed=0)
    for _ in range(60):
        envs.step(np.array([0, 1]))
    ended = len(envs.episodes)
    assert ended > 0 and envs.steps == 60 and envs.transitions == 120 - ended  # one reset step per episode end
    assert sum(length for _, length, _ in envs.episodes) <= envs.transitions


def test_hint_levels_and_errors():
    first, last = pg.hint("collect_rollout"), pg.hint("collect_rollout", level=3)
    assert "Hint 1/3" in str(first) and "level=2" in str(first) and "```python" in last.text
    assert first._repr_markdown_().startswith("**Hint 1/3 for collect_rollout (the idea)**")
    with pytest.raises(ValueError, match="did you mean 'collect_rollout'"):
        pg.hint("collect_rolout")
    with pytest.raises(ValueError, match="level=4 is invalid"):
        pg.hint("ppo_update", level=4)
    for name, levels in pg.hints.HINTS.items():
        assert len(levels) == 3 and all(levels), name


# -- slow: the references are the package's loops; the end-to-end checks train for real ----------------------------
@pytest.mark.slow
def test_the_ppo_reference_trains_exactly_what_pg_train_trains():
    config = pg.config.make_config("ppo", "CartPole-v1", "discrete", seed=1, total_steps=10_000, progress=False)
    envs = CountingEnvs(make_raw_vector_env("CartPole-v1", config.num_envs, vectorization="auto"))
    policy, value_net, history = ch04b_ppo_loop.reference_train_ppo(envs, config)
    run = pg.train("ppo", "CartPole-v1", seed=1, total_steps=10_000, progress=False)
    assert [episode[0] for episode in envs.episodes] == run.history.episodes["return"].tolist()
    assert [episode[2] for episode in envs.episodes] == run.history.episodes["env_step"].tolist()
    for name in ("approx_kl", "clip_fraction", "explained_variance"):
        assert [entry[name] for entry in history] == run.history.updates[name].tolist(), name
    for mine, theirs in zip([*policy.parameters(), *value_net.parameters()],
                            [*run.policy.parameters(), *run.value_net.parameters()]):
        assert torch.equal(mine, theirs)


@pytest.mark.slow
def test_the_reinforce_reference_trains_exactly_what_pg_train_trains():
    config = pg.config.make_config("reinforce", "CartPole-v1", "discrete", seed=3, max_episodes=40, progress=False)
    envs = CountingEnvs(make_raw_vector_env("CartPole-v1", config.num_envs, vectorization="auto"),
                        first_episode_only=True)
    policy = ch01_loop.reference_train_reinforce(envs, config)
    envs.flush()
    run = pg.train("reinforce", "CartPole-v1", seed=3, max_episodes=40, progress=False)
    assert [episode[0] for episode in envs.episodes] == run.history.episodes["return"].tolist()
    assert [episode[2] for episode in envs.episodes] == run.history.episodes["env_step"].tolist()
    assert all(torch.equal(a, b) for a, b in zip(policy.parameters(), run.policy.parameters()))


@pytest.mark.slow
@pytest.mark.parametrize("wrong_loop", [w for w in WRONG_LOOPS if w.stage == "train_reinforce"], ids=lambda w: w.id)
def test_end_to_end_rejects_the_wrong_loops(wrong_loop, capsys):
    """(train_ppo's wrong loops go through the same check in tests/test_train_ppo_agreement.py, in the notebook and
    in the grade, each with its hint: running them here too cost a minute of the suite.)"""
    message = rejection(wrong_loop, seeds=(0,), max_episodes=100)
    assert wrong_loop.hint in message, message
    assert "seed 0" in message


@pytest.mark.slow
@pytest.mark.parametrize("fn", [fn for stage, fn in CORRECT_LOOPS if stage == "train_reinforce"] +
                         [checks.STAGE_REFERENCES["train_reinforce"]], ids=lambda fn: fn.__name__)
def test_end_to_end_accepts_the_reference_and_another_reinforce_loop_on_one_seed(fn, capsys):
    """(train_ppo's correct loops go through the same check in tests/test_train_ppo_agreement.py, at the check's own
    seeds, in the notebook and in the grade, with the same assertions on the report: running them here too cost 42 s
    of the suite.)"""
    report = checks.STAGE_CHECKS["train_reinforce"](fn, seeds=(1,))
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("✓ train_reinforce: ")
    assert len(report.runs[0].history.episodes) > 0


def test_a_handle_that_can_play_a_stage_where_the_function_lives_is_used():
    """The grader's hook: a handle on a function in another process, with ``play_stage(stage, case_index)``
    returning the case's data, is played through that method (the function is never called here)."""
    from pgcourse.course.checks.stages import RUNNERS

    class Handle:
        __name__ = "collect_rollout"

        def __init__(self):
            self.played = []

        def __call__(self, *args):
            raise AssertionError("a handle is not called with live objects")

        def play_stage(self, stage, case_index):
            self.played.append((stage, case_index))
            return RUNNERS[stage](ch04b_ppo_loop.reference_collect_rollout, case_index)

    handle = Handle()
    checks.check_collect_rollout(handle)
    assert handle.played == [("collect_rollout", i) for i in range(len(ch04b_ppo_loop.ROLLOUT_CASES))]


def test_the_short_truncation_case_names_a_loop_that_cuts_the_bootstrap_at_a_time_limit():
    """Issue 46, item 5: at the graded budget a learning loop may never see CartPole's 500-step limit, so a loop
    that treats a truncation as a termination could pass. The short case (a 16-step limit) truncates from the
    first rollout: the reference and another correct loop pass it, the wrong one is named for its mistake."""
    wrong = next(w for w in WRONG_LOOPS if w.stage == "train_ppo" and w.id.endswith("truncation_as_termination"))
    problems = ch04b_ppo_loop._truncation_case(wrong.fn, remote=False)
    assert len(problems) == 1 and "treats a truncated step as a terminated one" in problems[0], problems
    for correct in (checks.STAGE_REFERENCES["train_ppo"], *(fn for stage, fn in CORRECT_LOOPS if stage == "train_ppo")):
        assert ch04b_ppo_loop._truncation_case(correct, remote=False) == []


def test_a_loop_whose_returns_pass_is_not_told_it_did_not_learn():
    """Issue 49: 'your loop did not learn on seed 0' was printed beside returns of 394-444 when the failure was a
    glue rule; the headline now says which it is."""
    from pgcourse.course.checks.stages import SeedResult

    glue = SeedResult(0, 420.5, np.zeros(20), 40_000, 50, 3.0, problems=["your loop took 49 updates; train until ..."])
    message = ch01_loop._reinforce_failure([glue], glue)
    assert "did not learn" not in message and "reached the threshold on seed 0 (mean 420.5)" in message, message
    flat = SeedResult(0, 21.0, np.zeros(20), 4_000, 50, 3.0, problems=["the mean return ... below 100"], learned=False)
    assert "your loop did not learn on seed 0" in ch01_loop._reinforce_failure([flat], flat)
