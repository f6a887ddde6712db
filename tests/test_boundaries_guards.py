"""Definitions at their edges for the thirteenth audit's survivors (issue 45, item 5).

Audit 13 left alive twelve one-line bugs that no test saw because no case sat on the edge: a saved optimiser group
that mixes parameters with and without moments, a checkpoint due exactly at a multiple of checkpoint_every, one
sampled gradient, an empty float output, the greedy action's dimension, a mystery with no seed, evidence at update
0, infinite scores in the IQM's outer quarters, a sweep backend exactly at capacity, a one-seed sweep plot, an
update for a chapter that gained an exercise, and a Welch t whose second sample has one value. Each test states the
definition and checks it at the edge and at the neighbouring decisions; every expected value is worked out by hand.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pgcourse.bench.many_seeds import welch_t
from pgcourse.course import stats
from pgcourse.course.checks.harness import _all_nan
from pgcourse.course.debugging.evidence import parse_evidence
from pgcourse.rl.algorithms.optim import LeanAdam
from pgcourse.rl.diagnostics import gradient_variance


# -- LeanAdam.load_state_dict: a group restores the moments it saved, whatever its other parameters lack ----------
def fresh_adam():
    first, second = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    return LeanAdam([first, second], lr=0.1), first, second


def saved_moments(step, base):
    return {"step": step, "exp_avg": torch.tensor(base), "exp_avg_sq": torch.tensor([b * b for b in base])}


@pytest.mark.parametrize("saved, restored", [
    ([None, None], {}),  # saved before the first step: nothing restored, nothing made
    ([saved_moments(4, [1.0, 2.0, 3.0]), None], {0: 4, 1: 0}),  # mixed: the saved one restored, the other at zero
    ([None, saved_moments(2, [5.0, 6.0])], {0: 0, 1: 2}),
    ([saved_moments(4, [1.0, 2.0, 3.0]), saved_moments(2, [5.0, 6.0])], {0: 4, 1: 2}),
])
def test_loading_restores_every_saved_moment_of_a_group_even_beside_parameters_without_any(saved, restored):
    """A group is skipped only when none (all) of its parameters has saved moments; otherwise every parameter gets
    state (zeros, step 0, for those saved without) and the saved ones their step, exp_avg and exp_avg_sq; the
    group's settings (lr) are taken either way."""
    source, _, _ = fresh_adam()
    groups = [{**group, "lr": 0.25} for group in source.state_dict()["param_groups"]]
    adam, first, second = fresh_adam()
    adam.load_state_dict({"param_groups": groups, "state": [saved]})
    assert adam.param_groups[0]["lr"] == 0.25
    params = (first, second)
    assert {i for i, p in enumerate(params) if p in adam.state} == set(restored)
    for i, step in restored.items():
        state = adam.state[params[i]]
        assert state["step"] == step
        expected = saved[i] if saved[i] is not None else {"exp_avg": torch.zeros_like(params[i]),
                                                          "exp_avg_sq": torch.zeros_like(params[i])}
        assert torch.equal(state["exp_avg"], expected["exp_avg"])
        assert torch.equal(state["exp_avg_sq"], expected["exp_avg_sq"])


def test_loading_the_state_of_other_parameters_is_refused():
    adam, _, _ = fresh_adam()
    groups = adam.state_dict()["param_groups"]
    with pytest.raises(ValueError, match="the optimiser state is for other parameters"):
        adam.load_state_dict({"param_groups": groups, "state": [[None]]})


# -- checkpoints: one at the first update whose env_step reaches each multiple of checkpoint_every ------------------
@pytest.mark.parametrize("done, steps, saved_at", [
    (None, [127, 128, 255, 256], [128, 256]),  # exactly at each multiple
    (None, [100, 129, 200, 256], [129, 256]),  # past 128 by the first update beyond it
    (None, [127, 640, 641, 767, 768], [640, 768]),  # one save for several multiples passed at once, next at 768
    (128, [128, 255, 256], [256]),  # resumed at 128: the next is 256, not 128 again
    (100, [127, 128], [128]),
])
def test_a_checkpoint_is_saved_at_the_update_whose_env_step_is_exactly_a_multiple(tmp_path, done, steps, saved_at):
    """``_Checkpoints(every)``: a checkpoint when ``env_step >= next mark`` (a multiple of ``every`` above the steps
    done at the start), then the mark moves past ``env_step``."""
    from pgcourse.rl.api import _Checkpoints
    start = None if done is None else SimpleNamespace(state={"env_step": done})
    checkpoints = _Checkpoints(128, tmp_path, start, {"checkpoint_every": 128})
    saves = []
    for step in steps:
        trainer = SimpleNamespace(env_step=step, run=SimpleNamespace(outputs=None))
        trainer.save_checkpoint = lambda folder, t=trainer: saves.append((t.env_step, folder, t.run.outputs))
        checkpoints(trainer)
    assert saves == [(step, tmp_path, {"checkpoint_every": 128}) for step in saved_at]


# -- gradient_variance: K >= 2 sampled gradients -------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(0, 3), (1, 3), (1, 1), (3,), (2, 2, 2)])
def test_gradient_variance_refuses_fewer_than_two_samples_or_a_shape_not_k_by_p(shape):
    with pytest.raises(ValueError, match=r"grads must be \[K, P\] with K >= 2 sampled gradients"):
        gradient_variance(torch.ones(shape))


@pytest.mark.parametrize("grads, variance", [
    ([[0.0, 0.0], [2.0, 4.0]], 2.0 + 8.0),  # K = 2: unbiased variance (divide by K - 1 = 1) summed over P
    ([[1.0], [2.0], [3.0]], 1.0),  # K = 3: (1 + 0 + 1) / 2
    ([[5.0, 5.0], [5.0, 5.0]], 0.0),
])
def test_gradient_variance_is_the_summed_unbiased_variance_from_two_samples_on(grads, variance):
    assert gradient_variance(torch.tensor(grads)) == pytest.approx(variance)


# -- the harness: which outputs are "all NaN" ----------------------------------------------------------------------
@pytest.mark.parametrize("value, all_nan", [
    (torch.empty(0), False),  # empty: nothing is NaN
    (torch.empty(0, 3), False),
    (torch.tensor([math.nan]), True),
    (torch.tensor([[math.nan, math.nan]]), True),
    (torch.tensor([math.nan, 1.0]), False),
    (torch.tensor([1, 2]), False),  # integers are never NaN
    (math.nan, True),
    (1.0, False),
    ([], False),
    ([math.nan, math.nan], True),
    ([math.nan, 0.5], False),
])
def test_an_output_is_all_nan_only_when_it_has_entries_and_every_one_is_nan(value, all_nan):
    assert _all_nan(value) is all_nan


# -- the stage checks' greedy return: argmax over the actions of each observation ---------------------------------
class TiltPolicy(torch.nn.Module):
    """Pushes the cart towards the side the pole leans to: logits ``[-angle, angle]`` for each observation."""

    def forward(self, obs):
        return torch.stack([-obs[..., 2], obs[..., 2]], dim=-1)


def greedy_by_hand(episodes, seed):
    import gymnasium as gym
    totals = []
    for i in range(episodes):
        env = gym.make("CartPole-v1")
        obs, _ = env.reset(seed=seed + i)
        total, over = 0.0, False
        while not over:
            obs, reward, terminated, truncated, _ = env.step(int(obs[2] > 0))
            total += reward
            over = terminated or truncated
        env.close()
        totals.append(total)
    return totals


@pytest.mark.parametrize("episodes", [2, 3])
def test_the_greedy_return_takes_each_observations_most_likely_action(episodes):
    """``greedy_returns``: episode ``i`` from ``reset(seed=seed + i)``, each step the argmax of that observation's
    logits (over the action dimension, not the batch)."""
    from pgcourse.course.checks.stages import greedy_returns
    got = greedy_returns(TiltPolicy(), "CartPole-v1", episodes=episodes, seed=7)
    assert got.tolist() == greedy_by_hand(episodes, 7)


# -- write_mysteries: an answer and a seed for each pool run with a spec --------------------------------------------
SPECS = {1: {"algo": "ppo", "env_id": "CartPole-v1"}, 2: {"algo": "ppo", "env_id": "CartPole-v1"}}


@pytest.mark.parametrize("answers, seeds", [
    ({}, {}),  # no answer
    ({1: "no_such_trap"}, {}),  # no seed for it
    ({1: "no_such_trap", 2: "no_such_trap"}, {1: 0}),  # a seed for one of two
    ({1: "no_such_trap"}, {2: 0}),  # a seed for another run only
    ({3: "no_such_trap"}, {3: 0}),  # no spec
])
def test_write_mysteries_refuses_answers_without_a_seed_or_spec_before_anything_else(answers, seeds, tmp_path):
    from pgcourse.course.debugging.bug_hunt import write_mysteries
    with pytest.raises(ValueError, match="give an answer and a seed for pool runs among"):
        write_mysteries(answers, seeds, folder=tmp_path, specs=SPECS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seeds", [{1: 0}, {1: 0, 2: 5}])
def test_write_mysteries_with_a_seed_and_spec_for_each_answer_goes_on_to_check_the_trap(seeds, tmp_path):
    from pgcourse.course.debugging.bug_hunt import write_mysteries
    with pytest.raises(ValueError, match="mystery trainer 1: 'no_such_trap' is not a trap name"):
        write_mysteries({1: "no_such_trap"}, seeds, folder=tmp_path, specs=SPECS)


# -- bug-hunt evidence: the update is counted from 1 ---------------------------------------------------------------
@pytest.mark.parametrize("evidence, parsed", [
    ((0, 0.5), "the evidence's update is an int from 1 (the first update is 1), got 0"),
    ((-1, 0.5), "the evidence's update is an int from 1 (the first update is 1), got -1"),
    ((0.0, 0.5), "the evidence's update is an int from 1 (the first update is 1), got 0"),
    ((np.int64(0), 0.5), "the evidence's update is an int from 1 (the first update is 1), got "),  # then its repr
    ((1, 0.5), (1, 0.5)),
    ((1.0, 2), (1, 2.0)),
    ((np.int64(2), np.float32(0.25)), (2, 0.25)),
    ((True, 0.5), "the evidence's update is an int from 1 (the first update is 1), got True"),
    ((1.5, 0.5), "the evidence's update is an int from 1 (the first update is 1), got 1.5"),
])
def test_evidence_names_an_update_from_one(evidence, parsed):
    got = parse_evidence(evidence)
    assert got == parsed or (parsed.endswith("got ") and got.startswith(parsed) and got.rstrip(")").endswith("0"))


# -- the IQM: the outer quarters get weight 0 and are left out, infinite or not ------------------------------------
@pytest.mark.parametrize("scores, value", [
    ([math.inf, 1.0, 2.0, 3.0], 2.5),  # n = 4: weights 0, 1/2, 1/2, 0 (a never-reached run is +inf)
    ([math.inf, 1.0, 2.0, 3.0, 4.0], 3.0),  # n = 5: weights 0, .3, .4, .3, 0
    ([math.inf, math.inf, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 4.5),  # n = 8: two left out per side
    ([1.0, 2.0, 3.0, 4.0], 2.5),
    ([1.0, math.inf, math.inf, 0.0], math.inf),  # an inf in the middle half counts
])
def test_the_iqm_leaves_out_the_outer_quarters_even_when_they_are_infinite(scores, value):
    """The IQM of the pooled scores sums only the entries of positive weight: an infinite score in the top quarter
    (weight 0) is left out, not multiplied by 0 (which would be NaN)."""
    assert stats._iqm(np.array(scores)[:, None]) == value


# -- the sweep driver: never more trials in flight than the backend's capacity -------------------------------------
class CountingBackend:
    """Finishes trials in the order they were submitted; records the most ever in flight."""

    name = "counting"

    def __init__(self, capacity):
        self.capacity, self.pending, self.most, self.submitted = capacity, [], 0, []

    @property
    def in_flight(self):
        return len(self.pending)

    def submit(self, spec):
        self.pending.append(spec)
        self.submitted.append(spec.trial_id)
        self.most = max(self.most, len(self.pending))

    def next_result(self):
        spec = self.pending.pop(0)
        return spec, {**spec.to_dict(), "trial_id": spec.trial_id, "status": "ok"}

    def close(self, interrupted=False):
        pass


@pytest.mark.parametrize("capacity, trials, most", [(1, 3, 1), (2, 5, 2), (3, 3, 3), (4, 2, 2)])
def test_the_driver_keeps_at_most_capacity_trials_in_flight(capacity, trials, most):
    from pgcourse.course.sweeps.driver import run_specs
    from pgcourse.course.sweeps.spec import TrialSpec
    specs = [TrialSpec("ppo", "CartPole-v1", seed, {}, "default") for seed in range(trials)]
    backend = CountingBackend(capacity)
    outcome = run_specs(specs, None, backend, progress=False)
    assert backend.most == most
    assert backend.submitted == [s.trial_id for s in specs]
    assert [r["trial_id"] for r in outcome["records"]] == [s.trial_id for s in specs] and outcome["failed"] == 0


# -- plot_sweep's title: how many seeds each arm has ---------------------------------------------------------------
@pytest.mark.parametrize("per_arm, title", [
    ([1], "1 arm(s), 1 seeds each"),  # one seed: that count, not "1-1"
    ([3, 3], "2 arm(s), 3 seeds each"),
    ([2, 3], "2 arm(s), 2-3 seeds each"),
    ([4, 1, 2], "3 arm(s), 1-4 seeds each"),
])
def test_the_sweep_plot_title_gives_the_seed_count_or_its_range(per_arm, title):
    import matplotlib.pyplot as plt

    from pgcourse.course.sweeps.plots import plot_sweep
    from pgcourse.course.sweeps.results import SweepResults

    class Results(SweepResults):  # arms with the given seed counts, no curve and no interval to draw
        def __init__(self):
            self.folder = None
            self.groups = {f"arm{i}": [SimpleNamespace(env_id="CartPole-v1")] * n for i, n in enumerate(per_arm)}
            self.trials = [t for records in self.groups.values() for t in records]

        def short_names(self):
            return {arm: arm for arm in self.groups}

        def by_arm(self):
            return self.groups

        def curves(self, arm):
            return [], []

        def intervals(self, *args, **kwargs):
            return {}

    figure = plot_sweep(Results(), reps=10)
    try:
        assert figure._suptitle.get_text() == title
    finally:
        plt.close(figure)


# -- welch_t: None unless both samples have two values -------------------------------------------------------------
@pytest.mark.parametrize("a, b, t", [
    ([], [1.0, 2.0], None),
    ([1.0], [1.0, 2.0], None),
    ([1.0, 2.0], [], None),
    ([1.0, 2.0], [3.0], None),  # the second sample with one value
    ([5.0], [3.0], None),
    ([1.0, 3.0], [5.0, 7.0], -4.0 / math.sqrt(2.0)),  # variances 2 and 2: spread sqrt(2/2 + 2/2)
    ([1.0, 3.0], [1.0, 3.0], 0.0),
    ([2.0, 2.0], [2.0, 2.0], 0.0),  # both constant and equal
    ([1.0, 1.0], [2.0, 2.0, 2.0], -math.inf),  # both constant, unequal
])
def test_welch_t_needs_two_values_in_each_sample(a, b, t):
    got = welch_t(a, b)
    assert got == (None if t is None else pytest.approx(t))


# -- grade --update for a chapter that gained an exercise ----------------------------------------------------------
@pytest.fixture
def grading(tmp_path, monkeypatch):
    """The grader test module's course of e1 (2 points) and e2 (1), and a gradebook of al and bo from it."""
    from test_classroom_grader import PoolStub, answered, chapter_of, exercise, grade

    from pgcourse.classroom.grading.course import Course
    chapter = chapter_of(exercise("e1", 2.0, answer_ids=("a1",)), exercise("e2", 1.0, answer_ids=("a2",)),
                         answer_order=["a1", "a2"], path=tmp_path / "solutions" / "01.ipynb")
    course = Course(root=tmp_path, notebooks={"01": chapter.path}, _chapters={"01": chapter},
                    _grade_ids={"01": chapter.grade_ids})
    out = tmp_path / "g.csv"
    grade(monkeypatch, course, [answered("al"), answered("bo")], out=out)

    def update(*exercises, **kwargs):
        course._chapters["01"] = chapter_of(*exercises, answer_order=sorted({a for e in exercises
                                                                            for a in e.answer_ids}),
                                            path=chapter.path)
        return grade(monkeypatch, course, [], paths=[], out=out, update=True, grader=PoolStub(), **kwargs)

    return SimpleNamespace(update=update, exercise=exercise)


def test_an_update_for_a_chapter_that_gained_an_exercise_keeps_the_rows_and_says_no_points_moved(grading):
    """An exercise the gradebook does not list has no stored points: it is not a change of points (no notice),
    and the update keeps every row."""
    e = grading.exercise
    report = grading.update(e("e1", 2.0, answer_ids=("a1",)), e("e2", 1.0, answer_ids=("a2",)),
                            e("e3", 4.0, answer_ids=("a3",)))
    assert [r.student for r in report.students] == ["al", "bo"]
    assert [(x.id, x.points) for x in report.chapter.exercises] == [("e1", 2.0), ("e2", 1.0), ("e3", 4.0)]
    assert report.notices == []


def test_an_update_names_only_the_stored_exercises_whose_points_moved_beside_a_new_one(grading):
    e = grading.exercise
    report = grading.update(e("e1", 5.0, answer_ids=("a1",)), e("e2", 1.0, answer_ids=("a2",)),
                            e("e3", 4.0, answer_ids=("a3",)), assignment=_points({"e1": 5.0}))
    assert report.notices == ["the exercises' points changed (e1 2 → 5): the 2 student(s) not graded now keep the "
                              "points they earned before (a passed exercise is not worth the new points): grade the "
                              "class again (--overwrite) to apply them"]


def _points(points):
    from pgcourse.classroom.grading.assignment import Assignment
    return Assignment(points=points)
