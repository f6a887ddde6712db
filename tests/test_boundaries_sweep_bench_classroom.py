"""The bench's and the classroom's threshold comparisons, pinned exactly at their thresholds (issue 45, item 5).

A mechanical sweep flipped every ordering comparison of the package at its boundary (``<`` for ``<=``, ``>`` for
``>=``) and ran the unit tests that execute the line: these were the survivors in pgcourse/bench and
pgcourse/classroom. Each test below states what the comparison means -- is a value exactly at the threshold
accepted or refused, counted or not -- and checks it at the threshold, just below and just above; every expected
value is worked out by hand. Clocks, SB3 and the proof's gradient gaps are replaced by scripted stand-ins so that a
value can sit exactly on the edge.
"""
from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from pgcourse.bench import checks_speed, env_speed, report, results, sb3, scaling
from pgcourse.bench.device import DeviceTiming
from pgcourse.bench.results import (SB3_ENV_ID, SPEED_TARGET, THROUGHPUT_TARGET, BenchCase, BenchReport,
                                    CompareSettings, SeedResult, SolveRun, ThroughputRun, summarize_case)
from pgcourse.classroom.grading import memcg
from pgcourse.classroom.sandboxed import ppo_proof

TOL = ppo_proof.GRADIENT_TOLERANCE
ABOVE_TOL = TOL * (1 + 1e-9)
BELOW_TOL = TOL * (1 - 1e-9)


def joined(lines: list[str]) -> str:
    """A wrapped report block as one line (textwrap breaks at single spaces)."""
    return " ".join(lines)


# -- the exercise checks' speed goal ---------------------------------------------------------------------------------
def test_a_check_over_the_goal_is_one_slower_than_the_goal_and_one_exactly_at_it_is_within(monkeypatch):
    """``over_goal``: the exercise checks taking more than ``CHECK_GOAL_S`` (0.5 s) and the stage checks taking more
    than ``STAGE_GOAL_S`` (2.0 s); a check taking exactly its goal is "within" it, not over."""
    from pgcourse.course import checks
    exercise = {"below": 0.49, "at": 0.5, "above": 0.51}
    stages = {"stage_below": 1.99, "stage_at": 2.0, "stage_above": 2.01}
    seconds = {**exercise, **stages}
    monkeypatch.setattr(checks, "ALL_CHECKS", {name: name for name in exercise})
    monkeypatch.setattr(checks, "REFERENCES", {name: None for name in exercise})
    monkeypatch.setattr(checks, "STAGE_CHECKS", {name: name for name in stages})
    monkeypatch.setattr(checks, "STAGE_REFERENCES", {name: None for name in stages})
    monkeypatch.setattr(checks_speed, "FAST_STAGES", tuple(stages))
    monkeypatch.setattr(checks_speed, "seconds_of", lambda check, answer: seconds[check])
    data = checks_speed.measure_checks()
    assert (checks_speed.CHECK_GOAL_S, checks_speed.STAGE_GOAL_S) == (0.5, 2.0)
    assert data["over_goal"] == ["above", "stage_above"]


# -- steps per second at zero seconds --------------------------------------------------------------------------------
def test_a_device_timing_of_zero_wall_seconds_is_infinitely_fast_and_a_positive_one_divides():
    """``DeviceTiming.steps_per_second``: env steps / wall seconds when the wall time is positive; a run too short
    for the clock (exactly 0 s) is infinitely fast, not a division by zero."""
    assert DeviceTiming("cpu", 4, 100, 0.0, 0.0).steps_per_second == float("inf")
    assert DeviceTiming("cpu", 4, 100, 0.5, 0.0).steps_per_second == 200.0


@pytest.mark.parametrize("wall_seconds, error, per_second", [(0.0, None, None), (0.5, None, 200.0),
                                                             (0.5, "boom", None)])
def test_a_throughput_run_has_steps_per_second_only_without_error_and_with_positive_wall_time(wall_seconds, error,
                                                                                              per_second):
    """``ThroughputRun.steps_per_second``: env steps / wall seconds for a run without error and a positive wall
    time; None at exactly 0 s (no rate to give) and for a failed run."""
    assert ThroughputRun("pgcourse", 0, 100, wall_seconds, None, error).steps_per_second == per_second


def test_a_case_summary_has_no_steps_per_second_when_its_runs_took_zero_seconds():
    """``summarize_case``: env steps per second over the runs without error = their steps / their train seconds,
    None when those seconds sum to exactly 0 (and 300 / 1.5 = 200 when they do not)."""
    case = BenchCase("ppo", "CartPole-v1", total_steps=1000, eval_every=500)

    def run(seed: int, steps: int, seconds: float) -> SeedResult:
        return SeedResult("ppo", "CartPole-v1", seed, case.budget, 475.0, False, None, None, None, 10.0, 0.0, steps,
                          1, seconds, "done")
    assert summarize_case(case, [run(0, 100, 0.0), run(1, 200, 0.0)]).env_steps_per_second is None
    assert summarize_case(case, [run(0, 100, 0.5), run(1, 200, 1.0)]).env_steps_per_second == 200.0


def test_the_scaling_benchs_timing_of_zero_wall_seconds_is_infinitely_fast(monkeypatch):
    """``scaling.timed``: steps per second = steps / wall seconds of the timed call, infinite when the wall clock did
    not move (exactly 0 s)."""
    clock = {"wall": 0.0}

    def work() -> int:
        clock["wall"] += step
        return 64
    monkeypatch.setattr(scaling, "time", SimpleNamespace(perf_counter=lambda: clock["wall"], process_time=lambda: 1.0))
    step = 0.0
    assert scaling.timed(torch.device("cpu"), work)["steps_per_second"] == float("inf")
    step = 0.25  # the timed call moves the clock by 0.25 s
    measured = scaling.timed(torch.device("cpu"), work)
    assert (measured["wall_seconds"], measured["steps_per_second"]) == (0.25, 256.0)


# -- the env-speed bench ---------------------------------------------------------------------------------------------
def test_time_steps_stops_at_the_first_clock_reading_that_has_reached_the_seconds_asked(monkeypatch):
    """``time_steps``: steps in blocks of 16, reading the CPU clock after each block, and stops at the first reading
    at or past ``seconds``: a reading exactly equal to ``seconds`` stops it (16 calls, 1.0 s here)."""
    readings = iter([10.0, 10.5, 11.0, 11.5, 12.0])  # start, then one reading per block of 16 steps
    monkeypatch.setattr(env_speed, "time", SimpleNamespace(process_time=lambda: next(readings)))
    calls = []
    assert env_speed.time_steps(calls.append, [0, 1], seconds=1.0) == (32, 1.0)
    assert len(calls) == env_speed.WARMUP_STEPS + 32
    readings = iter([0.0, 0.25, 0.75, 0.75 + 1e-9])
    assert env_speed.time_steps(lambda action: None, [0], seconds=0.75) == (32, 0.75)


@pytest.mark.parametrize("num_envs, sync_measured", [(63, True), (64, True), (65, False)])
def test_the_sync_vector_env_is_measured_up_to_and_including_sync_max_envs(monkeypatch, num_envs, sync_measured):
    """``measure_env_speed``: gymnasium's SyncVectorEnv runs only at batch sizes up to ``SYNC_MAX_ENVS`` (64),
    that size included; the other implementations at every size."""
    def stepper(n, rng):
        return (lambda action: None), [0]
    monkeypatch.setattr(env_speed, "IMPLEMENTATIONS", {"gymnasium SyncVectorEnv": stepper, "other": stepper})
    monkeypatch.setattr(env_speed, "time_steps", lambda step, actions, seconds: (10, 1.0))
    assert env_speed.SYNC_MAX_ENVS == 64
    rows = env_speed.measure_env_speed(num_envs=[num_envs], seconds=0.0, repeats=1)
    measured = {row.implementation for row in rows}
    assert measured == ({"gymnasium SyncVectorEnv", "other"} if sync_measured else {"other"})


# -- the report's goal verdicts --------------------------------------------------------------------------------------
def solve_run(side: str, wall: float) -> SolveRun:
    return SolveRun(side, 0, True, 4096, wall, 0.1, 1, 480.0)


@pytest.mark.parametrize("ours, met", [(0.99, True), (1.0, True), (1.01, False)])
def test_the_time_to_solve_goal_is_met_at_a_ratio_of_at_most_one_quarter(ours, met):
    """(a) time to solve: the goal ``pgcourse / SB3 <= SPEED_TARGET`` (0.25, issue 44) is met at exactly one quarter
    (1 s / 4 s), not met just above it."""
    assert SPEED_TARGET == 0.25 and 1.0 / 4.0 == SPEED_TARGET
    rep = BenchReport([], [0], "cpu", False, comparisons=CompareSettings(seeds=(0,)),
                      solve_runs=[solve_run("pgcourse", ours), solve_run("sb3", 4.0)])
    text = joined(report.time_to_solve_lines(rep))
    verdict = "met on this machine" if met else "not met yet on this machine"
    assert f"ratio pgcourse / SB3 = {ours / 4.0:.2f} (project goal <= 0.25: {verdict})" in text


@pytest.mark.parametrize("ours_steps, met", [(199, False), (200, True), (201, True)])
def test_the_throughput_goal_is_met_at_a_ratio_of_at_least_two(ours_steps, met):
    """(b) throughput: the goal ``pgcourse / SB3 >= THROUGHPUT_TARGET`` (2x) is met at exactly twice SB3's env steps
    per second (200 / s against 100 / s), not met just below."""
    assert THROUGHPUT_TARGET == 2.0
    rep = BenchReport([], [0], "cpu", False, comparisons=CompareSettings(seeds=(0,)),
                      throughput_runs=[ThroughputRun("pgcourse", 0, ours_steps, 1.0, 480.0),
                                       ThroughputRun("sb3", 0, 100, 1.0, 480.0)])
    text = joined(report.throughput_lines(rep))
    verdict = "met on this machine" if met else "not met yet on this machine"
    assert f"ratio pgcourse / SB3 = {ours_steps / 100:.2f}x (project goal >= 2x: {verdict})" in text


@pytest.mark.parametrize("ours, verdict", [(0.99, "met"), (1.0, "met"), (1.01, "not met")])
def test_the_old_rules_speed_target_is_met_at_a_ratio_of_at_most_one_third(ours, verdict):
    """The old rule (suite PPO seconds to solve / SB3's whole run): met at a ratio of at most 1/3, exactly one third
    (1 s / 3 s) included."""
    solved = SeedResult("ppo", SB3_ENV_ID, 0, "100k steps", 475.0, True, 4096, 20, ours, 500.0, 0.0, 4096, 20, ours,
                        "solved")
    rep = BenchReport([], [0], "cpu", False, results=[solved],
                      sb3_results=[results.SB3Result(0, 100_000, 3.0, 500.0, 0.0, True)])
    text = joined(report.sb3_lines(rep))
    assert f"(old target <= 0.33: {verdict}; 1/1 pgcourse seeds solved)" in text


# -- a case's budget -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("total_steps, budget", [
    (results._MANY_STEPS - 1000, "8 episodes (<= 99,999k steps)"),  # a step cap below the safety cap: shown
    (results._MANY_STEPS, "8 episodes"),  # the safety cap itself: not part of the budget
    (results._MANY_STEPS + 1000, "8 episodes"),
])
def test_an_episode_budget_shows_its_step_cap_only_below_the_safety_cap(total_steps, budget):
    """``BenchCase.budget`` of an episode-limited case: the episode count, with the step cap after it only when the
    cap is below ``_MANY_STEPS`` (100,000,000, the safety cap the episode count always reaches first)."""
    assert results._MANY_STEPS == 100_000_000
    case = BenchCase("reinforce", "CartPole-v1", total_steps=total_steps, eval_every=500, max_episodes=8)
    assert case.budget == budget


# -- SB3's side ------------------------------------------------------------------------------------------------------
class FakeModel:
    """An SB3 model stand-in: ``learn`` calls the callback at the given num_timesteps, stopping when it says so."""

    def __init__(self, schedule: list[int]):
        self.schedule, self.num_timesteps = schedule, 0
        self.env = SimpleNamespace(close=lambda: None)

    def get_env(self):
        return self.env

    def learn(self, total_timesteps, callback=None):
        if callback is None:
            self.num_timesteps = total_timesteps
            return
        callback.model = self
        for steps in self.schedule:
            self.num_timesteps = callback.num_timesteps = steps
            if not callback._on_step():
                return


@pytest.fixture
def fake_sb3(monkeypatch):
    """``stable_baselines3.common.callbacks.BaseCallback`` without stable-baselines3 (it is optional)."""
    class BaseCallback:
        def __init__(self, verbose: int = 0):
            self.num_timesteps, self.model = 0, None
    modules = {"stable_baselines3": types.ModuleType("stable_baselines3"),
               "stable_baselines3.common": types.ModuleType("stable_baselines3.common"),
               "stable_baselines3.common.callbacks": types.ModuleType("stable_baselines3.common.callbacks")}
    modules["stable_baselines3.common.callbacks"].BaseCallback = BaseCallback
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)


@pytest.mark.parametrize("final_mean, solved", [(474.95, False), (475.0, True), (475.05, True)])
def test_an_sb3_run_whose_final_mean_reaches_the_threshold_is_solved(monkeypatch, final_mean, solved):
    """``run_sb3_ppo``: solved when the final policy's mean return is at least CartPole's threshold (475), exactly
    475 included."""
    monkeypatch.setattr(sb3, "_zoo_ppo", lambda seed: FakeModel([]))
    monkeypatch.setattr(sb3, "evaluate_sb3", lambda model, env_id, episodes, seed: [final_mean - 0.5, final_mean + 0.5])
    result = sb3.run_sb3_ppo(0, timesteps=512)
    assert (result.final_mean, result.solved, result.env_steps) == (final_mean, solved, 512)


def scripted_evaluator(means: list[float], asked_at: list[int]):
    remaining = iter(means)

    def make(episodes, seed):
        def evaluate_model(model):
            asked_at.append(model.num_timesteps)
            mean = next(remaining)
            return [mean - 1.0, mean + 1.0]
        evaluate_model.env = SimpleNamespace(close=lambda: None)
        return evaluate_model
    return make


def test_sb3s_time_to_solve_evaluates_at_the_first_callback_at_or_past_each_multiple_of_eval_every(monkeypatch,
                                                                                                  fake_sb3):
    """``run_sb3_time_to_solve``: an evaluation is due at every multiple of ``eval_every`` (100 here); the first
    callback whose num_timesteps is at or past the due step evaluates (exactly 100 included), and the next one is
    due at the next multiple above it (after one at 100: 200, not again at 101; after one at 250: 300)."""
    asked_at: list[int] = []
    monkeypatch.setattr(sb3, "_zoo_ppo", lambda seed: FakeModel([99, 100, 101, 199, 200, 201, 250, 299, 300]))
    monkeypatch.setattr(sb3, "sb3_vector_evaluator", scripted_evaluator([10.0] * 9, asked_at))
    settings = CompareSettings(seeds=(0,), budget=300, eval_every=100, threshold=475.0)
    run = sb3.run_sb3_time_to_solve(0, settings)
    assert asked_at == [100, 200, 300]
    assert (run.solved, run.evaluations, run.last_eval_mean) == (False, 3, 10.0)
    asked_at.clear()
    monkeypatch.setattr(sb3, "_zoo_ppo", lambda seed: FakeModel([99, 250, 299, 300, 301]))
    monkeypatch.setattr(sb3, "sb3_vector_evaluator", scripted_evaluator([10.0] * 5, asked_at))
    sb3.run_sb3_time_to_solve(0, settings)
    assert asked_at == [250, 300]


@pytest.mark.parametrize("second_mean, solved_at, evaluations", [(474.99, None, 3), (475.0, 200, 2),
                                                                  (475.01, 200, 2)])
def test_sb3s_time_to_solve_stops_at_the_first_evaluation_whose_mean_reaches_the_threshold(monkeypatch, fake_sb3,
                                                                                           second_mean, solved_at,
                                                                                           evaluations):
    """The shared stopping rule on SB3's side: solved (and stopped) at the first evaluation with mean at least the
    threshold (475), a mean of exactly 475 included."""
    asked_at: list[int] = []
    monkeypatch.setattr(sb3, "_zoo_ppo", lambda seed: FakeModel([100, 200, 300]))
    monkeypatch.setattr(sb3, "sb3_vector_evaluator", scripted_evaluator([400.0, second_mean, 300.0], asked_at))
    run = sb3.run_sb3_time_to_solve(0, CompareSettings(seeds=(0,), budget=300, eval_every=100, threshold=475.0))
    assert (run.solved, run.solved_env_step, run.evaluations) == (solved_at is not None, solved_at, evaluations)


# -- the grader's cgroup mounts --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mountinfo, mounts", [
    ("35 24 - cgroup2 /mnt/five", (None, "/mnt/five")),  # five fields: the fifth (the mount point) is read
    ("35 - cgroup2 /mnt/four", (None, None)),  # four: no fifth field, skipped
    ("35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw", (None, "/sys/fs/cgroup")),  # a real line
])
def test_a_mountinfo_line_is_read_when_it_has_a_fifth_field_the_mount_point(mountinfo, mounts):
    """``_mounts``: a mountinfo line with a " - " separator and at least five fields is read (its fifth field is the
    mount point, the filesystem type follows the separator); a shorter one is skipped."""
    assert memcg._mounts(mountinfo) == mounts


# -- the PPO-gradient proof's verdicts -------------------------------------------------------------------------------
def proof_setup(n_steps: int):
    """A recorder of one update over 2 env steps of 1 env (2 observations) with ``n_steps`` actor steps, each on the
    whole batch, the second env step a truncation; advantages standardised over the batch (population or sample std:
    two gaps per variant). The step's index is passed as its "grad" (only the gap function below reads it)."""
    torch.manual_seed(0)
    policy, critic = nn.Linear(2, 2), nn.Linear(2, 1)
    flat = nn.utils.parameters_to_vector
    obs = [np.array([[0.1, 0.2]], np.float32), np.array([[0.3, 0.4]], np.float32)]
    env_steps = [(obs[0], np.array([0]), np.array([1.0]), np.array([False]), np.array([False]), obs[1]),
                 (obs[1], np.array([1]), np.array([1.0]), np.array([False]), np.array([True]),
                  np.array([[0.5, 0.6]], np.float32))]
    batch = torch.as_tensor(np.concatenate(obs))
    recorder = SimpleNamespace(
        optimizers={1: {"shapes": [[2, 2], [2]], "optimizer": torch.optim.SGD(policy.parameters(), lr=0.1)},
                    2: {"shapes": [[1, 2], [1]], "optimizer": torch.optim.SGD(critic.parameters(), lr=0.1)}},
        n_actions=2, obs_dim=2, obs_modules={1: policy, 2: critic}, env_steps=env_steps,
        critic_at={2: flat(critic.parameters()).detach()},
        actor_steps=[{"clock": 2, "theta": flat(policy.parameters()).detach(), "inputs": [batch], "grad": j}
                     for j in range(n_steps)])
    config = SimpleNamespace(normalize_advantages=True, normalize_per_minibatch=False, gamma=0.99,
                             gae_lambda=0.95, clip_eps=0.2, ent_coef=0.0, max_grad_norm=None)
    return recorder, config


def scripted_gaps(monkeypatch, gaps: dict, asked: list):
    """Replace the gradient gap by a table: ``gaps[(step, variant)]`` is the gap of each standardisation in turn
    (population, then sample std); ``asked`` records (step, variant, standardisation) of every gap computed. The
    variant and standardisation are read from the proof's frame (they are not arguments)."""
    def gap(applied, loss, params, max_grad_norm):
        frame = sys._getframe(1).f_locals
        key = (applied, frame["variant"])
        asked.append((*key, frame["batch_how"]))
        values = gaps.get(key, (1.0, 1.0))
        return values[("population", "sample").index(frame["batch_how"])]
    monkeypatch.setattr(ppo_proof, "_relative_gap", gap)


def test_a_step_ppo_explains_exactly_at_the_tolerance_is_not_compared_with_the_mistakes(monkeypatch):
    """A step whose PPO gap is at most the tolerance, exactly equal included, is explained by PPO: the mistakes'
    variants (stale ratio, cut bootstrap, flipped sign) are not computed for it; one just above it is compared."""
    asked: list = []
    scripted_gaps(monkeypatch, {(0, "ppo"): (TOL, TOL), (1, "ppo"): (ABOVE_TOL, ABOVE_TOL)}, asked)
    recorder, config = proof_setup(2)
    ppo_proof.ppo_gradient_proof(recorder, config)
    assert [(step, variant) for step, variant, _ in asked if step == 0] == [(0, "ppo")]
    assert {variant for step, variant, _ in asked if step == 1} == {"ppo", "stale", "cut", "flipped"}


@pytest.mark.parametrize("first, sample_asked, best", [(BELOW_TOL, False, BELOW_TOL), (TOL, False, TOL),
                                                      (ABOVE_TOL, True, 0.0)])
def test_one_standardisation_whose_gap_is_at_most_the_tolerance_ends_the_search(monkeypatch, first, sample_asked,
                                                                               best):
    """The population std first: a gap at most the tolerance (exactly equal included) explains the step and the
    sample std is not tried (the step's gap is the population one); above it the sample std is tried too and the
    smaller gap is the step's."""
    asked: list = []
    scripted_gaps(monkeypatch, {(0, "ppo"): (first, 0.0)}, asked)
    recorder, config = proof_setup(1)
    proof = ppo_proof.ppo_gradient_proof(recorder, config)
    assert ((0, "ppo", "sample") in asked) is sample_asked
    assert proof["worst"] == best and proof["checked"] == 1


def test_a_step_explained_exactly_at_the_tolerance_does_not_count_against_the_mistakes(monkeypatch):
    """The mistakes are judged on the steps PPO does not explain (gap above the tolerance): step 0 at exactly the
    tolerance is explained (its mistakes' gaps are never computed) and does not stop the stale-ratio mistake from
    explaining step 1 (PPO gap 0.5, stale gap 0)."""
    asked: list = []
    scripted_gaps(monkeypatch, {(0, "ppo"): (TOL, TOL), (1, "ppo"): (0.5, 0.5), (1, "stale"): (0.0, 0.0)}, asked)
    recorder, config = proof_setup(2)
    proof = ppo_proof.ppo_gradient_proof(recorder, config)
    assert (proof["worst"], proof["worst_at"]) == (0.5, [1, 2])
    assert proof["ratio_always_one"] is True
    assert proof["truncation_as_termination"] is False and proof["surrogate_sign_flipped"] is False


@pytest.mark.parametrize("mistake_gap, explains", [(BELOW_TOL, True), (TOL, True), (ABOVE_TOL, False)])
def test_a_mistake_explains_a_step_when_its_gap_is_at_most_the_tolerance(monkeypatch, mistake_gap, explains):
    """Each mistake (stale ratio, truncation as termination, flipped sign) explains a step PPO does not (PPO gap 0.5)
    when its own gap is at most the tolerance, exactly equal included; the verdicts need the worst step above the
    tolerance (0.5) and, for the truncation, a truncation in the record (one here)."""
    asked: list = []
    scripted_gaps(monkeypatch, {(0, "ppo"): (0.5, 0.5), (0, "stale"): (mistake_gap, mistake_gap),
                                (0, "cut"): (mistake_gap, mistake_gap), (0, "flipped"): (mistake_gap, mistake_gap)},
                  asked)
    recorder, config = proof_setup(1)
    proof = ppo_proof.ppo_gradient_proof(recorder, config)
    assert proof["truncations"] == 1 and proof["worst"] == 0.5
    assert (proof["ratio_always_one"], proof["truncation_as_termination"], proof["surrogate_sign_flipped"]) == \
        (explains, explains, explains)


@pytest.mark.parametrize("gaps, worst, worst_at", [
    ((0.0, 0.0), 0.0, None),  # no step worse than the starting 0: no worst step
    ((0.5, 0.5), 0.5, [1, 1]),  # a tie keeps the first
    ((0.5, 0.6), 0.6, [1, 2]),
    ((0.6, 0.5), 0.6, [1, 1]),
])
def test_the_worst_step_is_the_first_with_the_largest_gap(monkeypatch, gaps, worst, worst_at):
    """``worst_at``: [update, step] (from 1) of the first step with the largest PPO gap; a later step with an equal
    gap does not replace it, and when every gap is 0 there is none."""
    asked: list = []
    scripted_gaps(monkeypatch, {(j, "ppo"): (gap, gap) for j, gap in enumerate(gaps)}, asked)
    recorder, config = proof_setup(2)
    proof = ppo_proof.ppo_gradient_proof(recorder, config)
    assert (proof["worst"], proof["worst_at"], proof["checked"]) == (worst, worst_at, 2)


@pytest.mark.parametrize("ppo_gap, flagged", [(BELOW_TOL, False), (TOL, False), (ABOVE_TOL, True)])
def test_the_mistake_verdicts_need_a_worst_step_above_the_tolerance(monkeypatch, ppo_gap, flagged):
    """A mistake is named only when the worst step's PPO gap is above the tolerance: a loop whose worst step sits
    exactly at it is a correct loop, whatever its mistakes' gaps (all 0 here) would say."""
    asked: list = []
    scripted_gaps(monkeypatch, {(0, "ppo"): (ppo_gap, ppo_gap), (0, "stale"): (0.0, 0.0), (0, "cut"): (0.0, 0.0),
                                (0, "flipped"): (0.0, 0.0)}, asked)
    recorder, config = proof_setup(1)
    proof = ppo_proof.ppo_gradient_proof(recorder, config)
    assert proof["worst"] == ppo_gap and proof["truncations"] == 1
    assert (proof["ratio_always_one"], proof["truncation_as_termination"], proof["surrogate_sign_flipped"]) == \
        (flagged, flagged, flagged)
