"""The early chapters' checks and the CartPole replay, pinned at every edge of their ordering comparisons (issue 45,
item 5).

A mechanical sweep flipped every ordering comparison of the package at its boundary (``<`` <-> ``<=``, ``>`` <->
``>=``); in ``course/checks`` ch00-ch03 and ``cartpole_replay`` the flips below survived the unit tests, or no unit
test ran the line. Each test states what the comparison means (is a value exactly at the threshold accepted or
refused, counted or not?) and checks it at the edge, one below and one above; every expected value is worked out
by hand. Flips that no input can tell apart are not tested: ``_fallen``'s ``m > 0`` (a margin of 0 is within EDGE,
already not judged), ``check_play_episode``'s ``length < expected`` (under ``length != expected``), and
``ch03._gae_flags``' draws against 0.10, 0.12, 0.2 (none is a float32 multiple of 2**-24, torch.rand's grid).
"""
from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from pgcourse.classroom.sandboxed import episode_cases
from pgcourse.course.checks import cartpole_replay, ch00_setup, ch01_loop, ch02_baseline
from pgcourse.course.checks.cartpole_replay import THETA_LIMIT, X_LIMIT, _fallen, cartpole_problem
from pgcourse.course.checks.ch00_setup import _episode_flags, _same_episode, check_play_episode
from pgcourse.course.checks.ch01_loop import _reinforce_result, graded_train_reinforce, reference_collect_episodes
from pgcourse.course.checks.ch02_baseline import CRITIC_CASES, _reproduces, reference_fit_critic


# -- cartpole_replay: the termination edge, the reset box, the reset clock, the time limit -------------------------
@pytest.mark.parametrize("x, theta, fallen", [
    (X_LIMIT + 2**-10, 0.0, None),  # exactly EDGE beyond |x| = 2.4: rounding decides, not judged
    (X_LIMIT - 2**-10, 0.0, None),  # exactly EDGE within: not judged either
    (-(X_LIMIT + 2**-10), 0.0, None),
    (X_LIMIT + 2**-11, 0.0, None),  # closer than EDGE: not judged
    (X_LIMIT + 2**-9, 0.0, True),  # farther than EDGE beyond: fallen
    (-(X_LIMIT + 2**-9), 0.0, True),
    (X_LIMIT - 2**-9, 0.0, False),  # farther than EDGE within: standing
    (0.0, THETA_LIMIT + 2**-10, None),  # the same edges on the angle
    (0.0, -(THETA_LIMIT - 2**-10), None),
    (0.0, THETA_LIMIT + 2**-9, True),
    (0.0, -(THETA_LIMIT - 2**-9), False),
    (X_LIMIT - 2**-9, THETA_LIMIT + 2**-10, None),  # one margin within EDGE is enough to leave it unjudged
])
def test_a_state_exactly_edge_from_a_threshold_is_not_judged(monkeypatch, x, theta, fallen):
    """``_fallen``: None (not judged) when |x| - 2.4 or |theta| - 12 degrees is within EDGE of 0, EDGE included;
    otherwise whether either is beyond its threshold. EDGE is set to 2**-10 so that the margins are exact: 2.4 and
    THETA_LIMIT plus or minus 2**-10 or 2**-9 are exact doubles, and so are their differences with the limits."""
    monkeypatch.setattr(cartpole_replay, "EDGE", 2**-10)
    assert _fallen(np.array([x, 0.0, theta, 0.0])) is fallen


def _record(obs, terminated=None, truncated=None, resets=((0, 0),)) -> dict:
    """A one-env EnvLog record: rows ``obs`` (the observation each step is taken from), action 1 on every step,
    reward 1, the flags given (none by default) and env 0's resets at the clocks given."""
    obs = np.asarray(obs, dtype=np.float64).reshape(-1, 4)
    rows = len(obs)
    return dict(env=[0] * rows, obs=obs.tolist(), actions=[1] * rows, rewards=[1.0] * rows,
                terminated=list(terminated or [False] * rows), truncated=list(truncated or [False] * rows),
                final=[], resets=[[clock, env, True] for clock, env in resets])


BOUND = 0.05 + 1e-7  # RESET_LIMIT plus the allowance for float32 rounding


@pytest.mark.parametrize("component", [0, 1, 2, 3])
@pytest.mark.parametrize("value, accepted", [
    (BOUND, True),  # exactly at the bound: a reset state
    (-BOUND, True),
    (0.05, True),
    (np.nextafter(BOUND, 1.0), False),  # one double beyond: not a state CartPole resets to
    (-np.nextafter(BOUND, 1.0), False),
])
def test_a_reset_observation_exactly_at_the_reset_bound_is_cartpoles(component, value, accepted):
    """The first step of an episode starts from a reset state: every component with |value| <= 0.05 + 1e-7
    (equality accepted). A one-step record from that state (action 1, not ended) is CartPole's or is refused."""
    start = [0.0, 0.0, 0.0, 0.0]
    start[component] = value
    problem = cartpole_problem(_record([start]))
    if accepted:
        assert problem is None
    else:
        assert problem.startswith("step 1 of the record (env 0, step 1 of its episode) starts from")
        assert "resets to a state in [-0.05, 0.05]^4" in problem


def _cartpole_rows(steps: int, seed: int = 1, max_episode_steps: int = 500) -> list[np.ndarray]:
    """The observations of ``steps`` steps of gymnasium's CartPole-v1 from reset(seed) (each the state a step is
    taken from), pushed right every step, with no end (checked)."""
    env = gym.make("CartPole-v1", max_episode_steps=max_episode_steps)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        rows.append(obs)
        obs, _, terminated, truncated, _ = env.step(1)
        assert not terminated and not truncated
    return rows


@pytest.mark.parametrize("first_reset, problem_step", [
    (0, 1),  # a reset at clock 0 starts the episode at row 0: its out-of-box start is step 1 of the record
    (1, 2),  # a reset at clock 1 starts it at row 1 (row 0 belongs to no episode): the problem is step 2's
])
def test_a_reset_recorded_at_clock_k_starts_the_episode_at_row_k(first_reset, problem_step):
    """A reset recorded at clock c applies to the row of clock c (c <= k, equality included): that row is the
    episode's first step, checked against the reset box. Rows 0 and 1 both start far outside the box (x = 1)."""
    problem = cartpole_problem(_record([[1.0, 0, 0, 0], [1.0, 0, 0, 0]], resets=[(first_reset, 0)]))
    assert problem.startswith(f"step {problem_step} of the record (env 0, step 1 of its episode) starts from")


def test_gymnasiums_episodes_one_after_the_other_are_cartpoles(monkeypatch):
    """Two back-to-back episodes of gymnasium's CartPole, the second reset at the clock right after the first one's
    last step, are CartPole's: that row starts the new episode (and is not checked as the old one's next state, nor
    skipped). The time limit is set to 2 steps so that both episodes end by truncation."""
    monkeypatch.setattr(cartpole_replay, "MAX_EPISODE_STEPS", 2)
    rows = _cartpole_rows(2, seed=1) + _cartpole_rows(2, seed=2)
    record = _record(rows, truncated=[False, True, False, True], resets=[(0, 0), (2, 0)])
    assert cartpole_problem(record) is None


@pytest.mark.parametrize("truncated_at, problem", [
    (500, None),  # truncated exactly on the 500th step: CartPole-v1's time limit
    (499, "step 499 of the record (env 0, step 499 of its episode) was truncated"),  # one step early
    (501, "step 500 of the record (env 0, step 500 of its episode) was not truncated"),  # one step late
], ids=["at-500", "at-499", "at-501"])
def test_an_episode_is_truncated_exactly_on_its_500th_step(truncated_at, problem):
    """CartPole-v1's TimeLimit truncates an episode on its 500th step (length >= 500), not before, not after.
    The rows are gymnasium's (seed 1, a balancing controller that lasts past 500 steps with a longer limit)."""
    env = gym.make("CartPole-v1", max_episode_steps=600)
    obs, _ = env.reset(seed=1)
    rows, actions = [], []
    for _ in range(truncated_at):
        rows.append(obs)
        actions.append(int(obs[2] + obs[3] > 0))
        obs, _, terminated, _, _ = env.step(actions[-1])
        assert not terminated
    record = _record(rows, truncated=[t == truncated_at - 1 for t in range(truncated_at)])
    record["actions"] = actions
    found = cartpole_problem(record)
    if problem is None:
        assert found is None
    else:
        assert found.startswith(problem)


# -- ch00: the flags of the rollouts' cases ------------------------------------------------------------------------
P_END = 0.625  # 0.6 * P_END = 0.375 and 0.95 * P_END = 0.59375 exactly: every edge is a float32 torch.rand can draw
ULP = 2**-24  # the spacing of torch.rand's float32 draws


@pytest.mark.parametrize("u, flags, resets", [
    (0.0, (True, False), True),
    (0.375 - ULP, (True, False), True),  # below 0.6 p_end: a termination alone
    (0.375, (False, True), True),  # from 0.6 p_end: a truncation alone
    (0.375 + ULP, (False, True), True),
    (0.59375 - ULP, (False, True), True),
    (0.59375, (True, True), True),  # from 0.95 p_end: both flags
    (0.625 - ULP, (True, True), True),
    (0.625, (False, False), False),  # from p_end on: no end, no reset step
    (0.625 + ULP, (False, False), False),
])
def test_episode_flags_split_the_draw_into_half_open_intervals(monkeypatch, u, flags, resets):
    """``_episode_flags``: a draw u ends the episode when u < p_end: a termination alone on [0, 0.6 p_end), a
    truncation alone on [0.6 p_end, 0.95 p_end), both on [0.95 p_end, p_end), each interval closed on its left; and
    a reset step (no flags) follows every end and only an end. The draws are replaced by ``u`` then 0 (a
    termination, unless that row is the reset step)."""
    draws = torch.tensor([[u], [0.0]], dtype=torch.float32)
    assert float(draws[0, 0]) == u  # an exact float32
    monkeypatch.setattr(torch, "rand", lambda *shape, generator=None: draws.clone())
    terminated, truncated = _episode_flags(torch.Generator(), 2, 1, p_end=P_END)
    assert (bool(terminated[0, 0]), bool(truncated[0, 0])) == flags
    second = (False, False) if resets else (True, False)  # a reset step has no flags
    assert (bool(terminated[1, 0]), bool(truncated[1, 0])) == second


# -- ch00: play_episode's check ------------------------------------------------------------------------------------
CASE = ("CartPole-v1, always push left", "CartPole-v1", "push_left", 0)


def _check_one_case(monkeypatch, reference, outcome):
    """``check_play_episode`` on one case whose reference episode is ``reference``, the learner's handle answering
    ``outcome``; the AssertionError's text, or None when the check passes."""
    monkeypatch.setattr(episode_cases, "CASES", [CASE])
    monkeypatch.setattr(ch00_setup.envs, "play_episode", lambda env, controller, seed: reference)
    handle = SimpleNamespace(play_episode_case=lambda env_id, controller, seed: dict(outcome, reset_seed=seed))
    try:
        check_play_episode(handle)
    except AssertionError as error:
        return str(error)
    return None


@pytest.mark.parametrize("length, steps, counted_right", [
    (0, 0, True),  # zero steps counted as zero: the count is right, the episode another one
    (3, 3, True),
    (-1, -1, False),  # a negative length is not a count of steps
    (0, 1, False),
    (3, 4, False),
])
def test_a_length_equal_to_the_steps_taken_zero_included_is_counted_right(monkeypatch, length, steps, counted_right):
    """When the length is not the reference's (10) but equals the learner's number of env.step calls, 0 included,
    the check says the count is right and the episode is another one; otherwise (a count of its own, a negative
    length) it names a counting slip (here: too few steps)."""
    message = _check_one_case(monkeypatch, (10.0, 10, True, False),
                              dict(result=(float(length), length, True, False), steps=steps))
    if counted_right:
        assert f"you counted its {steps} steps right, but the reference's lasts 10" in message
    else:
        assert "counted its" not in message
        assert "Probable mistake: count every step, the last one included" in message


@pytest.mark.parametrize("reference_return, received_return, same", [
    (0.0, 0.001, True),  # |difference| exactly 1e-3 * max(1, |0|) = 1e-3: the same return
    (0.0, -0.001, True),
    (0.0, 0.0009, True),
    (0.0, np.nextafter(0.001, 1.0), False),  # one double more: another return
    (0.0, 0.0011, False),
    (1000.0, 1001.0, True),  # |difference| exactly 1e-3 * 1000 = 1
    (1000.0, 999.0, True),
    (-1000.0, -1001.0, True),
    (1000.0, np.nextafter(1001.0, 2000.0), False),
    (1000.0, 998.9, False),
])
def test_a_return_exactly_the_tolerance_away_is_the_references(monkeypatch, reference_return, received_return,
                                                               same):
    """play_episode's return matches the reference's within 1e-3 * max(1, |reference|), equality included: the
    check passes (same length and flags) or names the sum of the rewards; ``_same_episode`` (which decides what a
    wrongly seeded episode reproduces) agrees."""
    reference = (reference_return, 10, True, False)
    received = (received_return, 10, True, False)
    assert _same_episode(received, reference) is same
    message = _check_one_case(monkeypatch, reference, dict(result=received, steps=10))
    if same:
        assert message is None
    else:
        assert "Probable mistake: sum every reward, the last one included." in message


# -- ch01: the time-major mistake, the episode budget, the learned threshold ---------------------------------------
class _TwoEnvs:
    """Two envs whose observation at time t is 10 t + env; env 0's first episode ends on its 2nd step, env 1's on
    its 3rd (then both run on)."""
    num_envs = 2

    def __init__(self):
        self.t = 0

    def _obs(self):
        return np.array([[10.0 * self.t], [10.0 * self.t + 1]], dtype=np.float32)

    def reset(self):
        self.t = 0
        return self._obs(), {}

    def step(self, actions):
        self.t += 1
        terminated = np.array([self.t == 2, self.t == 3])
        return self._obs(), np.ones(2, dtype=np.float32), terminated, np.zeros(2, dtype=bool), {}


def test_the_time_major_mistake_keeps_exactly_each_first_episodes_steps():
    """The "time_major" wrong collection keeps step t of env i when t < the length of its first episode (step
    ``length`` is the next episode's first): the rows of [T, N] in time-major order, [t0 e0, t0 e1, t1 e0, t1 e1,
    t2 e1] = observations 0, 1, 10, 11, 21 (env 0's step 2, observation 20, is not its first episode's)."""
    obs, actions, rewards = reference_collect_episodes(_TwoEnvs(), lambda obs: torch.zeros(len(obs), 2),
                                                       mistake="time_major")
    assert obs.flatten().tolist() == [0.0, 1.0, 10.0, 11.0, 21.0]
    assert actions.shape == (5,)
    assert [len(r) for r in rewards] == [2, 3]


@pytest.mark.parametrize("episodes, right", [(7, False), (8, True), (9, True), (11, True), (12, False)])
def test_a_loop_plays_from_max_episodes_to_one_batch_more_exclusive(episodes, right):
    """``_reinforce_result``: the loop played its budget when max_episodes <= episodes < max_episodes + num_envs
    (8 <= episodes < 12 here: the batch that crosses the budget is finished, a whole batch more is not)."""
    result = _reinforce_result(0, np.full(episodes, 200.0), 1000, 1.0, max_episodes=8, num_envs=4)
    assert result.learned
    assert result.passed is right
    if not right:
        assert result.problems == [f"it played {episodes} episodes; train until config.max_episodes = 8 (one batch "
                                   f"of 4 episodes at a time)."]


@pytest.mark.parametrize("last_returns, learned", [(100.0, True), (100.5, True), (99.5, False)])
def test_a_mean_of_the_last_20_returns_exactly_at_100_has_learned(last_returns, learned):
    """Learned: the mean of the last 20 training returns >= LEARNED_RETURN = 100 (equality learns); the first
    returns (10) do not count."""
    returns = np.concatenate([np.full(10, 10.0), np.full(20, last_returns)])
    result = _reinforce_result(0, returns, 1000, 1.0, max_episodes=30, num_envs=4)
    assert result.eval_mean == last_returns
    assert result.learned is learned and result.passed is learned
    if not learned:
        assert result.problems[0].startswith(f"the mean return of the last 20 episodes is {last_returns:.1f}, "
                                             "below 100 (the first 20: ")


def _graded(monkeypatch, episodes: int, mean: float):
    """``graded_train_reinforce`` with the learner's loop replaced: it played ``episodes`` episodes, and the
    grader's evaluation of its policy gives ``mean`` on each of 20 episodes (the learning proof passes)."""
    monkeypatch.setattr(ch01_loop, "_play_recorded", lambda fn, config: (
        {"state": {}}, {"episodes": [[20.0, 20]] * episodes, "transitions": 20 * episodes},
        {"played": {}, "steps": []}, 0.1))
    monkeypatch.setattr(ch01_loop, "policy_from_state", lambda output, obs_dim, n_actions, hidden: None)
    monkeypatch.setattr(ch01_loop, "sampled_returns", lambda policy, env_id, episodes_, seed: np.full(episodes_, mean))
    monkeypatch.setattr(ch01_loop, "_add_proof", lambda result, played, steps, returned, config: None)
    try:
        return graded_train_reinforce(object()).results[0]
    except AssertionError as error:
        return str(error)


@pytest.mark.parametrize("episodes, right", [(49, False), (50, True), (53, True), (54, False)])
def test_the_graded_loop_plays_from_50_episodes_to_one_batch_more_exclusive(monkeypatch, episodes, right):
    """The graded loop (budget 50 episodes, 4 envs) played its budget when 50 <= episodes < 54."""
    outcome = _graded(monkeypatch, episodes, 60.0)
    if right:
        assert outcome.passed and outcome.eval_mean == 60.0
    else:
        assert f"  - it played {episodes} episodes; train until config.max_episodes = 50 (one batch of 4 " in outcome


@pytest.mark.parametrize("mean, learned", [(40.0, True), (40.5, True), (39.5, False)])
def test_a_graded_policy_scoring_exactly_40_has_learned(monkeypatch, mean, learned):
    """The graded policy learned when the grader's mean return over 20 sampled episodes is >= 40 (equality
    learns)."""
    outcome = _graded(monkeypatch, 50, mean)
    if learned:
        assert outcome.passed and outcome.eval_mean == mean
    else:
        assert "train_reinforce: your loop did not learn on seed 0." in outcome
        assert f"scores a mean return of {mean:.1f} over 20 episodes (actions sampled), below 40" in outcome


# -- ch02: naming the start-value-targets mistake ------------------------------------------------------------------
@pytest.mark.parametrize("first_loss, reproduces", [
    (1e-7, True),  # exactly the losses' atol: 0 within rounding
    (-1e-7, True),
    (0.0, True),
    (np.nextafter(1e-7, 1.0), False),  # one double more: a loss that is not 0
    (2e-7, False),
])
def test_a_first_loss_exactly_at_the_tolerance_is_the_start_value_targets_zero(first_loss, reproduces):
    """The "start_value_targets" loop is reproduced when, on every case, the first loss is 0 within the losses'
    atol (|loss| <= 1e-7, equality included) and the weights are not the reference's (here: 100 everywhere)."""
    case = CRITIC_CASES[0]
    weights, _ = reference_fit_critic(**case.args())
    found = (torch.full_like(weights, 100.0).double(), [first_loss])
    assert _reproduces("start_value_targets", [case], [found]) is reproduces
