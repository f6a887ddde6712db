"""``pgcourse grade`` grades the write-the-loop exercises (lesson 01's REINFORCE loop, 04b's PPO from scratch).

A loop stage hands the learner's functions live objects (envs, networks, optimisers), which never cross into
the sandbox: the check describes each case as data, :mod:`pgcourse.grading.loops` builds and plays it next to
the learner's functions, and the check compares the data that comes back, as in the notebook. Here:

- the sandbox's copies of the course's networks, Rollout, minibatch_indices, fast CartPole and step counter
  give the package's numbers;
- every stage check, played through a handle that round-trips the case and the outcome through the wire's
  encoding, passes the references, names the probable mistake of each wrong loop of tests/wrong_loops.py and
  accepts the honest variants (fast, no sandbox);
- graded for real in the bubblewrap sandbox, on a copy of the course with tools/grade_loop_stages_metadata.py
  applied: every stage is graded and the exercise notebooks get none of it (the solution notebooks' full points are
  tests/test_grading.py's), a wrong loop loses its
  stage's points (with its hint) and keeps the others, an honest variant keeps them, and a loop that hangs or
  reaches for the course package loses that stage only.
"""
from __future__ import annotations

import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.course import checks
from pgcourse.classroom import grading
from pgcourse.course.checks import ch01_loop, ch04b_ppo_loop
from pgcourse.course.checks.stages import REMOTE_CASES, CountingEnvs, fixed_networks
from pgcourse.rl.envs import SeededCartPoleVectorEnv
from pgcourse.classroom.sandboxed import loops
from pgcourse.classroom.grading.grader import synthetic_notebook
from pgcourse.classroom.grading.partial import partial_points
from pgcourse.classroom.grading.sandbox import SANDBOX, probe_sandbox

import wrong_loops
from wrong_loops import CORRECT_LOOPS, WRONG_LOOPS

ROOT = Path(__file__).resolve().parent.parent
LOOP_STAGES = ["collect_episodes", "reinforce_update", "collect_rollout", "ppo_update"]
needs_sandbox = pytest.mark.skipif(probe_sandbox()[0] != SANDBOX, reason="no bubblewrap sandbox on this machine")


# -- the sandbox's copies give the package's numbers -------------------------------------------------------------------

def test_the_kit_networks_are_the_packages():
    for seed in (0, 3):
        torch.manual_seed(seed)
        theirs = (pg.networks.CategoricalPolicy(4, 2, (64, 64)), pg.networks.ValueNet(4, (32,)))
        torch.manual_seed(seed)
        ours = (loops.CategoricalPolicy(4, 2, (64, 64)), loops.ValueNet(4, (32,)))
        obs = torch.randn(7, 4)
        for a, b in zip(theirs, ours):
            assert list(a.state_dict()) == list(b.state_dict())
            assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
            assert torch.equal(a(obs), b(obs))
    assert loops.ROLLOUT_FIELDS == ch04b_ppo_loop.ROLLOUT_FIELDS
    for seed in (0, 5):
        mine = loops.minibatch_indices(37, 8, torch.Generator().manual_seed(seed))
        theirs = pg.minibatch_indices(37, 8, torch.Generator().manual_seed(seed))
        assert all(torch.equal(a, b) for a, b in zip(mine, theirs)) and len(mine) == len(theirs)


def test_the_kit_cartpole_and_counter_play_the_packages_episodes():
    envs = {name: make() for name, make in (("package", lambda: CountingEnvs(SeededCartPoleVectorEnv(3, 500))),
                                           ("kit", lambda: loops._counting_envs_class()(loops.cartpole_envs(3, None, True))))}
    observations = {name: [e.reset(seed=4)[0]] for name, e in envs.items()}
    rng = np.random.default_rng(0)
    for _ in range(300):
        actions = rng.integers(0, 2, size=3)
        for name, e in envs.items():
            observations[name].append(e.step(actions)[0])
    assert all(np.array_equal(a, b) for a, b in zip(observations["package"], observations["kit"]))
    assert envs["package"].episodes == envs["kit"].episodes and envs["package"].transitions == envs["kit"].transitions


def test_a_config_in_the_sandbox_reads_like_the_packages():
    config = pg.config.make_config("ppo", "CartPole-v1", "discrete", progress=False)
    copy = loops.make_config(checks.stages.config_spec(config), "PPOConfig")
    assert copy.clip_eps == config.clip_eps and copy.hidden_sizes == config.hidden_sizes
    with pytest.raises(Exception):
        copy.clip_eps = 1.0  # frozen, as the package's
    with pytest.raises(loops.SpecError):
        loops.make_config({"not an identifier": 1})


# -- every stage, played through a handle that sends only data -----------------------------------------------------------

from wire_helpers import WireHandle  # noqa: E402  (shared with tests/test_lesson07.py)


@pytest.mark.parametrize("stage", LOOP_STAGES)
def test_each_loop_stage_is_played_as_data_and_the_reference_passes(stage, capsys):
    handle = WireHandle(checks.STAGE_REFERENCES[stage])
    checks.STAGE_CHECKS[stage](handle)
    assert capsys.readouterr().out.startswith(f"✓ {stage}: ")
    assert stage in REMOTE_CASES and handle.cases > 0


@pytest.mark.parametrize("wrong_loop", [w for w in WRONG_LOOPS if w.stage in LOOP_STAGES], ids=lambda w: w.id)
def test_a_wrong_loop_played_as_data_is_rejected_with_its_hint(wrong_loop):
    with pytest.raises(AssertionError) as info:
        checks.STAGE_CHECKS[wrong_loop.stage](WireHandle(wrong_loop.fn))
    message = str(info.value)
    assert message.startswith(f"{wrong_loop.stage}: ") and wrong_loop.hint in message, message


@pytest.mark.parametrize("stage, fn", [v for v in CORRECT_LOOPS if v[0] in LOOP_STAGES], ids=lambda v: getattr(v, "__name__", v))
def test_an_honest_variant_played_as_data_passes(stage, fn, capsys):
    checks.STAGE_CHECKS[stage](WireHandle(fn))
    assert capsys.readouterr().out.startswith(f"✓ {stage}")


def test_a_stub_and_a_crash_played_as_data_are_reported_as_the_learners():
    def stub(*args):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="collect_rollout: not implemented yet"):
        checks.check_collect_rollout(WireHandle(stub))
    with pytest.raises(checks.LearnerCodeError, match="ZeroDivisionError"):
        checks.check_ppo_update(WireHandle(lambda *args: 1 / 0))


def test_the_graded_end_to_end_checks_are_reduced_and_evaluate_the_policy_here():
    """A handle gets the graded check: one seed, a short budget, greedy episodes played by the checker on the
    weights the loop returned (a loop that returns something else is told what to return)."""
    assert ch01_loop.GRADED_EPISODES < 200
    handle = WireHandle(lambda envs, config: {"not": "a policy"})
    with pytest.raises(AssertionError, match="return the policy you trained, a CategoricalPolicy"):
        checks.check_train_reinforce(handle)
    policy, _ = fixed_networks(0)
    with pytest.raises(AssertionError, match="return \\(policy, history\\)"):
        checks.check_train_ppo(WireHandle(lambda envs, config: policy))


@pytest.mark.slow
def test_the_graded_train_reinforce_check_passes_the_reference_on_its_one_seed(capsys):
    """The graded check's own report: its tick line and its one seed, 0. (Every catalogued train_reinforce loop, right
    or wrong, gets the graded verdict from a real student process in tests/test_training_loops_agree.py, and every
    train_ppo loop in tests/test_train_ppo_agreement.py: playing them here too, through the wire's stand-in, cost
    three minutes of the suite.)"""
    report = checks.STAGE_CHECKS["train_reinforce"](WireHandle(checks.STAGE_REFERENCES["train_reinforce"]))
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("✓ train_reinforce (graded)")
    assert len(report.results) == 1 and report.results[0].seed == 0


# -- the metadata script ---------------------------------------------------------------------------------------------------

def _course_copy(folder: Path) -> Path:
    for sub in ("solutions", "exercises"):
        (folder / sub).mkdir(parents=True)
        for name in ("01_reinforce.ipynb", "04b_ppo_from_scratch.ipynb"):
            shutil.copy(ROOT / sub / name, folder / sub / name)
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "grade_loop_stages_metadata.py"),
                           *map(str, sorted(folder.glob("*/*.ipynb")))], capture_output=True, text=True, check=True)
    assert "graded" in done.stdout or "up to date" in done.stdout
    return folder


def test_the_metadata_script_makes_every_stage_a_graded_exercise_and_is_idempotent(tmp_path):
    course = grading.load_course(_course_copy(tmp_path))
    again = subprocess.run([sys.executable, str(ROOT / "tools" / "grade_loop_stages_metadata.py"), "--check",
                            *map(str, sorted(tmp_path.glob("*/*.ipynb")))], capture_output=True, text=True)
    assert again.returncode == 0, again.stdout
    ids = {name: [e.id for e in course.chapter(name).auto_exercises] for name in ("01_reinforce", "04b_ppo_from_scratch")}
    assert {"ch01_collect_episodes", "ch01_reinforce_update", "ch01_train_reinforce"} <= set(ids["01_reinforce"])
    assert {"ch04b_collect_rollout", "ch04b_advantages_and_returns", "ch04b_ppo_update",
            "ch04b_train_ppo"} <= set(ids["04b_ppo_from_scratch"])
    chapter = course.chapter("04b_ppo_from_scratch")
    assert chapter.exercise("ch04b_collect_rollout").answer_ids == ("ch04b_collect_rollout",)
    assert chapter.exercise("ch04b_ppo_update").points == 3
    # the course package's minibatch_indices is offered to 04b's loops, never to chapter 04 (an exercise there)
    assert "minibatch_indices" not in chapter.spec()["answer_names"]
    assert "minibatch_indices" in grading.load_course(ROOT).chapter("04_ppo").spec()["answer_names"]


# -- graded for real, in the sandbox -----------------------------------------------------------------------------------------

LIMITS = grading.Limits(exercise_s=30, submission_s=150, memory_mb=1024)
WRONG_SOURCE = (Path(__file__).parent / "wrong_loops.py").read_text()


def _answer(answer_id: str, fn) -> dict[str, str]:
    """An answer cell holding the whole catalogue of tests/wrong_loops.py and ``stage = fn``."""
    stage = answer_id.split("_", 1)[1]
    return {answer_id: f"{WRONG_SOURCE}\n\n{stage} = {fn.__name__}\n"}


def _wrong(stage: str, name: str):
    return next(w for w in WRONG_LOOPS if w.stage == stage and w.fn.__name__ == name)


def _grade_class(folder: Path, course: Path, chapter: str, students: dict[str, dict[str, str]], partial: bool = False):
    the_chapter = grading.load_course(course).chapter(grading.load_course(course).resolve(chapter))
    reference = the_chapter.reference
    submitted = folder / f"class{chapter}"
    submitted.mkdir()
    for student, cells in students.items():
        answers = {} if student == "handout" else {key: value[0] for key, value in reference.items()}
        answers.update(cells)
        (submitted / f"{student}.ipynb").write_text(json.dumps(synthetic_notebook(the_chapter, answers)))
    report = grading.grade_paths([submitted], chapter=chapter, course=course, limits=LIMITS, jobs=2, progress=False,
                                 assignment=grading.Assignment(partial_credit=partial))
    return the_chapter, {row.student: row for row in report.students}


def _concept_answers(chapter: str, wrong: int) -> str:
    """An answer cell for the concept questions of ``chapter``, the last ``wrong`` answers another choice."""
    questions = pg.concepts.QUESTIONS[chapter]
    answers = {q.id: q.answer if i < len(questions) - wrong else next(c for c in q.choices if c != q.answer)
               for i, q in enumerate(questions)}
    return f"answers = {answers!r}\n"


HANG = "def collect_rollout(envs, policy, value_net, start, n_steps):\n    while True:\n        pass\n"
REACH = ("def collect_episodes(envs, policy):\n    import pgcourse.checks.ch01_loop as answers\n"
         "    return answers.reference_collect_episodes(envs, policy)\n")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    if probe_sandbox()[0] != SANDBOX:
        pytest.skip("no bubblewrap sandbox on this machine")
    folder = tmp_path_factory.mktemp("loops")
    course = _course_copy(folder / "course")
    # no solution student here: tests/test_grading.py grades the real solution notebooks of both chapters, whose stages
    # are graded exercises already, to full points
    ch01 = {
        "handout": {},
        "wrong_collect": _answer("ch01_collect_episodes", _wrong("collect_episodes", "episodes_drop_the_last_step").fn),
        "wrong_update": _answer("ch01_reinforce_update", _wrong("reinforce_update", "reinforce_update_without_zero_grad").fn),
        "wrong_train": _answer("ch01_train_reinforce", _wrong("train_reinforce", "train_reinforce_one_batch").fn),
        "honest": {**_answer("ch01_collect_episodes", next(fn for s, fn in CORRECT_LOOPS if s == "collect_episodes")),
                   **_answer("ch01_reinforce_update", next(fn for s, fn in CORRECT_LOOPS if s == "reinforce_update")),
                   **_answer("ch01_train_reinforce", next(fn for s, fn in CORRECT_LOOPS if s == "train_reinforce"))},
        "reaches_for_answers": {"ch01_collect_episodes": REACH},
        "concepts_all_but_one": {"ch01_concepts": _concept_answers("01", wrong=1)},
    }
    ch04b = {
        "handout": {},
        "wrong_rollout": _answer("ch04b_collect_rollout", _wrong("collect_rollout", "rollout_trains_on_reset_steps").fn),
        "wrong_update": _answer("ch04b_ppo_update", _wrong("ppo_update", "update_trains_on_reset_steps").fn),
        "wrong_train": _answer("ch04b_train_ppo", _wrong("train_ppo", "train_ppo_stale_old_log_probs").fn),
        "honest": {**_answer("ch04b_collect_rollout", next(fn for s, fn in CORRECT_LOOPS if s == "collect_rollout")),
                   **_answer("ch04b_ppo_update", next(fn for s, fn in CORRECT_LOOPS if s == "ppo_update"))},
        "hangs": {"ch04b_collect_rollout": HANG},
    }
    return {"01": _grade_class(folder, course, "01", ch01, partial=True), "04b": _grade_class(folder, course, "04b", ch04b)}


STAGE_IDS = {"01": ["ch01_collect_episodes", "ch01_reinforce_update", "ch01_train_reinforce"],
             "04b": ["ch04b_collect_rollout", "ch04b_ppo_update", "ch04b_train_ppo"]}


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("chapter", ["01", "04b"])
def test_every_stage_is_graded_and_the_handout_gets_none(graded, chapter):
    the_chapter, rows = graded[chapter]
    for exercise_id in STAGE_IDS[chapter]:
        assert the_chapter.exercise(exercise_id).points > 0 and rows["honest"].exercises[exercise_id].points > 0
        result = rows["handout"].exercises[exercise_id]
        assert result.points == 0 and "not implemented yet" in result.feedback, result.feedback


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("chapter, student, exercise_id, hint", [
    ("01", "wrong_collect", "ch01_collect_episodes", "each episode lacks its last step"),
    ("01", "wrong_update", "ch01_reinforce_update", "the gradients are not zeroed"),
    ("01", "wrong_train", "ch01_train_reinforce", "train until config.max_episodes"),
    ("04b", "wrong_rollout", "ch04b_collect_rollout", "reset steps are marked as real transitions"),
    ("04b", "wrong_update", "ch04b_ppo_update", "reset steps are in your batch"),
    ("04b", "wrong_train", "ch04b_train_ppo", "ratio is always 1, so pi_old is the policy being updated"),
])
def test_a_wrong_loop_loses_its_stage_with_its_hint_and_keeps_the_rest(graded, chapter, student, exercise_id, hint):
    """The other exercises keep their points; the end-to-end stage, which runs the learner's own stages, may
    fail with them (that is their loop)."""
    the_chapter, rows = graded[chapter]
    row = rows[student]
    assert row.exercises[exercise_id].points == 0 and row.exercises[exercise_id].status == "failed"
    assert hint in row.exercises[exercise_id].feedback, row.exercises[exercise_id].feedback
    end_to_end = STAGE_IDS[chapter][-1]
    for exercise in the_chapter.auto_exercises:
        if exercise.id not in (exercise_id, end_to_end):
            assert row.exercises[exercise.id].points == exercise.points, (exercise.id, row.exercises[exercise.id])


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("chapter", ["01", "04b"])
def test_honest_variants_keep_their_points(graded, chapter):
    the_chapter, rows = graded[chapter]
    assert rows["honest"].total == the_chapter.max_points, {k: v.feedback[:300] for k, v in
                                                            rows["honest"].exercises.items() if v.status != "passed"}


@pytest.mark.slow
@needs_sandbox
def test_a_hanging_loop_and_a_reach_for_the_answers_are_contained(graded):
    the_chapter, rows = graded["04b"]
    hung = rows["hangs"].exercises["ch04b_collect_rollout"]
    assert hung.status == "timeout" and hung.points == 0
    for exercise_id in ("ch04b_advantages_and_returns", "ch04b_ppo_update"):  # a fresh student process goes on
        assert rows["hangs"].exercises[exercise_id].status == "passed"
    the_chapter, rows = graded["01"]
    reached = rows["reaches_for_answers"].exercises["ch01_collect_episodes"]
    assert reached.points == 0 and "not available while grading" in reached.feedback, reached.feedback
    for exercise_id in ("ch01_log_probs", "ch01_reinforce_loss", "ch01_reinforce_update"):
        assert rows["reaches_for_answers"].exercises[exercise_id].status == "passed"


def test_the_wrong_loops_catalogue_runs_where_pgcourse_is_the_kit():
    """The graded class above puts tests/wrong_loops.py into answer cells: it may import only what the kit offers."""
    imported = {line.split(" import ")[0].removeprefix("from ").strip() for line in WRONG_SOURCE.splitlines()
                if line.startswith("from pgcourse")}
    assert imported <= {f"pgcourse.{place}{name}" for place in ("", "rl.")
                        for name in ("algorithms.rollout", "batching", "networks")}
    assert inspect.getsource(wrong_loops).count("pg.") == 0


@pytest.mark.slow
@needs_sandbox
def test_concept_questions_are_graded_with_partial_credit_per_question(graded):
    """H5's "Check your understanding" cells are ordinary check cells; under partial credit, per question."""
    the_chapter, rows = graded["01"]
    exercise = the_chapter.exercise("ch01_concepts")
    assert rows["honest"].exercises["ch01_concepts"].points == exercise.points  # the reference answers
    assert rows["handout"].exercises["ch01_concepts"].points == 0
    result = rows["concepts_all_but_one"].exercises["ch01_concepts"]
    total = len(pg.concepts.QUESTIONS["01"])
    expected = partial_points(exercise.points, total - 1, total, total - 1)
    assert result.status == "failed" and 0 < result.points == expected < exercise.points
    assert f"Partial credit: {total - 1} of {total} questions right" in result.feedback, result.feedback


def test_the_concept_check_cell_is_recognised_for_partial_credit():
    from pgcourse.classroom.grading.partial import concept_check, concept_points

    assert concept_check('# do not edit\npg.concepts.check_concepts("01", answers)') == ("01", "answers")
    for other in ("pg.checks.check_normalize(normalize)", 'pg.concepts.check_concepts("01", answers, x=1)',
                  'pg.concepts.check_concepts("01", answers)\nprint(1)', "check_concepts('01', answers)"):
        assert concept_check(other) is None, other
    questions = pg.concepts.QUESTIONS["01"]
    right = {q.id: q.answer for q in questions}
    assert concept_points(2, "01", right)[0] == 2
    assert concept_points(2, "01", {**right, questions[0].id: None})[0] == partial_points(
        2, len(questions) - 1, len(questions), 1)
    assert concept_points(2, "01", None)[0] == 0 and concept_points(2, "01", "abcd")[0] == 0
