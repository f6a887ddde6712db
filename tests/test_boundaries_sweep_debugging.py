"""Every threshold of the debugging package (pg.diagnose's signals, the bug hunt's check, its evidence, the
reproduction table, the probes), pinned at its edge (issue 45, item 5).

A sweep flipped every ordering comparison of ``pgcourse.course.debugging`` at its boundary (``<`` for ``<=``,
``>`` for ``>=``) and found the ones no test could tell apart: no case sat exactly on the threshold. Each test
below states the definition in words and checks a value exactly AT the threshold, one just below and one just
above (``np.nextafter``: the neighbouring float), on small hand-made histories; every expected verdict is worked
out by hand from the definition.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.course.debugging import bug_hunt, evidence, probes
from pgcourse.course.debugging.experiments import episodes_to
from pgcourse.rl.config import make_config
from pgcourse.rl.history import EPISODE_FIELDS, UPDATE_FIELDS, History, Table

LOG2 = math.log(2)  # the entropy's maximum with two actions


def below(x: float) -> float:
    return float(np.nextafter(x, -np.inf))


def above(x: float) -> float:
    return float(np.nextafter(x, np.inf))


def hand_made_run(updates: dict, returns=(), n_actions: int | None = 2, algo: str = "ppo", **config):
    """A run whose history holds only ``updates`` (columns; the others NaN, so their signals stay silent) and the
    episode ``returns``; ``n_actions`` None: a continuous action space (no maximum entropy)."""
    history = History()
    history.updates = Table(UPDATE_FIELDS, {name: list(values) for name, values in updates.items()})
    if len(returns):
        history.episodes = Table(EPISODE_FIELDS, {"return": list(returns)})
    history.status = "completed"
    space = SimpleNamespace(n=n_actions) if n_actions else SimpleNamespace(shape=(1,))
    return SimpleNamespace(history=history, config=SimpleNamespace(algo=algo, **config), action_space=space)


def finding(run, signal: str):
    """The finding of ``signal`` that pg.diagnose gives ``run`` (unhealthy or healthy), or None."""
    diagnosis = pg.diagnose(run)
    found = [f for f in [*diagnosis, *diagnosis.healthy] if f.signal == signal]
    assert len(found) <= 1
    return found[0] if found else None


# -- signal 2: entropy ---------------------------------------------------------------------------------------------
# With one or two updates the first and the last 10% of the entropy are one update each: start and end exactly.
@pytest.mark.parametrize("end, severity", [(below(0.1 * LOG2), "alarm"), (0.1 * LOG2, "ok"), (above(0.1 * LOG2), "ok")])
def test_entropy_collapsed_means_strictly_below_a_tenth_of_its_maximum(end, severity):
    """Entropy collapse (alarm): the last entropy is below 0.1 * log(n actions); exactly a tenth is no collapse."""
    assert finding(hand_made_run({"entropy": [0.5, end]}), "entropy").severity == severity


@pytest.mark.parametrize("end, severity", [(below(0.97 * LOG2), "ok"), (0.97 * LOG2, "ok"),
                                            (above(0.97 * LOG2), "warn")])
def test_entropy_stuck_at_its_maximum_means_strictly_above_97_percent_of_it(end, severity):
    """Entropy stuck (warn, no returns to say otherwise): the last entropy is above 0.97 * log(n); exactly 97% is
    not stuck."""
    assert finding(hand_made_run({"entropy": [LOG2, end]}), "entropy").severity == severity


@pytest.mark.parametrize("returns, severity", [
    ([5.0], "warn"),  # one episode: too few to say the policy learns, so a maximal entropy is stuck
    ([1.0, 100.0], "ok"),  # two episodes, the last 100 >= 2 * max(first 1, 1) = 2: it learns, not stuck
    ([1.0, 100.0, 200.0], "ok"),
])
def test_a_maximal_entropy_is_stuck_unless_two_or_more_episodes_show_the_returns_doubled(returns, severity):
    """The returns excuse a maximal entropy from 2 episodes on (fewer than 2: no excuse): with 2 episodes the
    first and the last 10% are one episode each, and a last return at least twice the first (at least 2) is
    learning."""
    assert finding(hand_made_run({"entropy": [LOG2, LOG2]}, returns), "entropy").severity == severity


@pytest.mark.parametrize("last, severity", [(19.5, "warn"), (20.0, "ok"), (20.5, "ok")])
def test_returns_that_exactly_doubled_excuse_a_maximal_entropy(last, severity):
    """Stuck (warn) only while the last 10% of returns average below 2 * max(first 10%, 1): three episodes, first
    10, last ``last``: exactly 20 (doubled) is learning, no finding."""
    run = hand_made_run({"entropy": [LOG2, LOG2]}, returns=[10.0, 0.0, last])
    assert finding(run, "entropy").severity == severity


@pytest.mark.parametrize("end, severity", [(below(-0.5), "warn"), (-0.5, "ok"), (above(-0.5), "ok")])
def test_without_a_maximum_entropy_falling_by_exactly_two_nats_is_no_finding(end, severity):
    """Continuous actions (no maximum): the entropy warns when it fell by MORE than 2 nats (1.5 -> -0.5: exactly 2)."""
    run = hand_made_run({"entropy": [1.5, end]}, n_actions=None)
    assert finding(run, "entropy").severity == severity


# -- signal 3: the Gaussian policy's std ---------------------------------------------------------------------------
@pytest.mark.parametrize("end, severity", [
    (below(-2.5), "alarm"), (-2.5, "ok"), (above(-2.5), "ok"),  # collapsed: log-std strictly below -2.5
    (below(1.0), "ok"), (1.0, "ok"), (above(1.0), "warn"),  # grew large: log-std strictly above 1
])
def test_the_std_is_sensible_for_a_log_std_from_minus_two_and_a_half_to_one_inclusive(end, severity):
    """Policy std: alarm when the last log-std is below -2.5, warn when above 1.0; both edges are sensible."""
    assert finding(hand_made_run({"log_std_mean": [end]}, n_actions=None), "policy std").severity == severity


# -- signal 4: the advantages' scale --------------------------------------------------------------------------------
MODERATE, STANDARDISED = "advantages of moderate size", "raw advantages are large, but they are standardised"


@pytest.mark.parametrize("normalise, median, severity, message", [
    (True, 20.0, "ok", MODERATE),  # exactly 20 is not large
    (True, above(20.0), "ok", STANDARDISED),
    (False, below(20.0), "ok", MODERATE),
    (False, 20.0, "ok", MODERATE),
    (False, above(20.0), "warn", "raw advantages are large"),
    (False, below(1e-4), "warn", "advantages are ~0"),
    (False, 1e-4, "ok", MODERATE),  # exactly 1e-4 is not ~0
    (False, above(1e-4), "ok", MODERATE),
])
def test_advantages_are_large_strictly_above_20_and_zero_strictly_below_1e_4(normalise, median, severity, message):
    """Advantage scale (median advantage std over the last half): large above 20 (no finding when they are
    standardised before the loss, a warning otherwise), ~0 below 1e-4; the edges are moderate."""
    run = hand_made_run({"advantage_std": [1.0, median]}, normalize_advantages=normalise)
    found = finding(run, "advantage scale")
    assert found.severity == severity and found.message.startswith(message)


# -- signal 5: the critic ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ev, severity", [
    (below(0.0), "alarm"), (0.0, "warn"), (above(0.0), "warn"),  # worse than the mean: strictly below 0
    (below(0.3), "warn"), (0.3, "ok"), (above(0.3), "ok"),  # explains little: strictly below 0.3
])
def test_explained_variance_alone_alarms_below_zero_and_warns_below_three_tenths(ev, severity):
    """Without a relative error logged, explained variance judges the critic: below 0 alarm, below 0.3 warn;
    exactly 0 is a warning, exactly 0.3 healthy."""
    assert finding(hand_made_run({"explained_variance": [ev]}), "explained variance").severity == severity


@pytest.mark.parametrize("steps_per_update, first_cause", [(2047, "low_critic_lr"), (2048, "long_rollout"),
                                                           (2049, "long_rollout")])
def test_a_lagging_critic_is_blamed_on_the_rollout_first_from_2048_env_steps_per_update(steps_per_update, first_cause):
    """LONG_ROLLOUT_STEPS: from 2048 env steps per update on (inclusive), long_rollout is the first cause named."""
    run = hand_made_run({"explained_variance": [0.1, 0.1], "env_step": [steps_per_update, 2 * steps_per_update]})
    found = finding(run, "explained variance")
    assert found.severity == "warn" and found.causes[0].split(" ")[0] == first_cause


@pytest.mark.parametrize("error, ev, severity, note", [
    (below(0.2), 0.9, "ok", False), (0.2, 0.9, "ok", False), (above(0.2), 0.9, "warn", False),  # lags: above 0.2
    (0.1, below(0.3), "ok", True), (0.1, 0.3, "ok", False), (0.1, above(0.3), "ok", False),  # the note: EV below 0.3
    (below(0.5), 0.9, "warn", False), (0.5, 0.9, "warn", False), (above(0.5), 0.9, "alarm", False),  # far: above 0.5
    (0.3, below(-0.1), "alarm", False), (0.3, -0.1, "warn", False), (0.3, above(-0.1), "warn", False),  # EV < -0.1
])
def test_the_critic_lags_above_a_fifth_and_is_far_above_a_half_or_below_minus_a_tenth_explained(error, ev, severity,
                                                                                                note):
    """Judged by its relative error: up to 0.2 inclusive the critic is fine (with a note when the explained
    variance is below 0.3); above 0.2 it lags (warn); above 0.5, or with an explained variance below -0.1, it is
    far off (alarm). Exactly 0.5 and exactly -0.1 are a lag, not an alarm."""
    found = finding(hand_made_run({"explained_variance": [ev], "value_rel_error": [error]}), "explained variance")
    assert (found.severity, found.note) == (severity, note)


# -- signal 6: approx-KL and clip fraction --------------------------------------------------------------------------
@pytest.mark.parametrize("kl, clip, severity, message", [
    (below(1e-9), 0.0, "alarm", "approx-KL and clip fraction are exactly 0"),
    (1e-9, 0.0, "warn", "the policy barely moves"),  # a KL of 1e-9 is not "exactly 0"
    (0.0, below(1e-9), "alarm", "approx-KL and clip fraction are exactly 0"),
    (0.0, 1e-9, "warn", "the policy barely moves"),  # nor is a clip fraction of 1e-9
    (below(0.5), 0.1, "warn", "updates move the policy far"),
    (0.5, 0.1, "warn", "updates move the policy far"),  # exactly 0.5 nats is far, not broken
    (above(0.5), 0.1, "alarm", "each update moves the policy by more than 0.5"),
    (0.05, 0.1, "ok", "in the usual range"),  # far: KL strictly above 0.05 ...
    (above(0.05), 0.1, "warn", "updates move the policy far"),
    (0.01, 0.3, "ok", "in the usual range"),  # ... or clip fraction strictly above 0.3
    (0.01, above(0.3), "warn", "updates move the policy far"),
    (below(1e-4), 0.1, "warn", "the policy barely moves"),  # barely: KL strictly below 1e-4
    (1e-4, 0.1, "ok", "in the usual range"),
])
def test_kl_and_clip_fraction_bands_are_open_at_each_threshold(kl, clip, severity, message):
    """Signal 6 (PPO; means over updates): both below 1e-9 -> alarm (stale pi_old); KL above 0.5 -> alarm;
    KL above 0.05 or clip above 0.3 -> warn; KL below 1e-4 -> warn; otherwise the usual range. A value exactly at
    a threshold is on the calmer side."""
    found = finding(hand_made_run({"approx_kl": [kl, kl], "clip_fraction": [clip, clip]}), "KL / clip fraction")
    assert found.severity == severity and found.message.startswith(message)


# -- signal 7: gradient norms ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("actor, severity", [(below(1e-6), "alarm"), (1e-6, "ok"), (above(1e-6), "ok")])
def test_an_actor_gradient_is_dead_strictly_below_1e_6(actor, severity):
    """ACTOR_GRAD_DEAD: a median actor gradient norm below 1e-6 is an alarm; exactly 1e-6 is alive."""
    run = hand_made_run({"actor_grad_norm": [actor, actor], "critic_grad_norm": [actor, actor]})
    assert finding(run, "grad norms").severity == severity


MOVES, MODERATE_RATIO = "critic gradient >> actor gradient", "no spikes, critic/actor ratio moderate"


@pytest.mark.parametrize("kl, severity, message", [
    (below(1e-3), "alarm", "the critic's gradient is far larger"),  # 0 < KL < 1e-3: the policy is frozen
    (1e-3, "ok", MOVES),  # a mean KL of exactly 1e-3 moves
    (above(1e-3), "ok", MOVES),
])
def test_a_policy_is_frozen_for_the_gradient_ratio_while_its_kl_is_strictly_below_1e_3(kl, severity, message):
    """A critic/actor gradient ratio above 30 is an alarm only while the policy is not moving: a mean KL strictly
    between 0 and 1e-3 (here the ratio is 100, continuous actions: no entropy maximum)."""
    run = hand_made_run({"actor_grad_norm": [0.5], "critic_grad_norm": [50.0], "approx_kl": [kl],
                         "clip_fraction": [0.1]}, n_actions=None)
    found = finding(run, "grad norms")
    assert found.severity == severity and found.message.startswith(message)


@pytest.mark.parametrize("kl, critic, severity, message", [
    (1e-4, 14.5, "ok", MODERATE_RATIO),  # frozen policy, ratio 29
    (1e-4, 15.0, "ok", MODERATE_RATIO),  # frozen policy, ratio exactly 30: not "far larger"
    (1e-4, 15.5, "alarm", "the critic's gradient is far larger"),  # frozen policy, ratio 31
    (0.01, 15.0, "ok", MODERATE_RATIO),  # moving policy, ratio exactly 30: moderate
    (0.01, 15.5, "ok", MOVES),  # moving policy, ratio 31: large, as usual
])
def test_the_critic_to_actor_ratio_is_large_strictly_above_30(kl, critic, severity, message):
    """CRITIC_TO_ACTOR: the median critic/actor gradient-norm ratio counts as large above 30 (actor 0.5, critic
    ``critic``: ratio critic / 0.5); exactly 30 is moderate, frozen policy or not."""
    run = hand_made_run({"actor_grad_norm": [0.5], "critic_grad_norm": [critic], "approx_kl": [kl],
                         "clip_fraction": [0.1]}, n_actions=None)
    found = finding(run, "grad norms")
    assert found.severity == severity and found.message.startswith(message)


@pytest.mark.parametrize("entropy, severity, message", [
    (below(0.97 * LOG2), "ok", MOVES), (0.97 * LOG2, "ok", MOVES),
    (above(0.97 * LOG2), "alarm", "the critic's gradient is far larger"),
])
def test_a_policy_is_not_moving_for_the_gradient_ratio_when_its_entropy_is_strictly_above_97_percent(entropy, severity,
                                                                                                    message):
    """Besides a tiny KL, an entropy above 0.97 * log(n) (the policy is still uniform) says the policy is not moving:
    with a ratio of 100 and a moving KL (0.01), exactly 97% is moving."""
    run = hand_made_run({"actor_grad_norm": [0.5], "critic_grad_norm": [50.0], "approx_kl": [0.01],
                         "clip_fraction": [0.1], "entropy": [entropy]})
    found = finding(run, "grad norms")
    assert found.severity == severity and found.message.startswith(message)


@pytest.mark.parametrize("peak, severity", [(below(50.0), "ok"), (50.0, "ok"), (above(50.0), "warn")])
def test_a_gradient_spike_is_a_peak_strictly_above_50_times_the_median(peak, severity):
    """Spikes (warn): the largest actor gradient norm over the median one above 50 (median 1 of [1, 1, peak])."""
    run = hand_made_run({"actor_grad_norm": [1.0, 1.0, peak], "critic_grad_norm": [1.0, 1.0, peak]})
    assert finding(run, "grad norms").severity == severity


# -- context: the return trend and the updates per episode ---------------------------------------------------------
@pytest.mark.parametrize("episodes, judged", [(9, False), (10, True), (11, True)])
def test_the_return_trend_is_judged_from_ten_episodes(episodes, judged):
    """The return trend needs at least 10 episodes (inclusive)."""
    run = hand_made_run({"entropy": [0.5]}, returns=[100.0] * episodes)
    assert (finding(run, "return trend") is not None) is judged


@pytest.mark.parametrize("end, severity", [
    (below(-1e-9), "alarm"), (-1e-9, "warn"), (above(-1e-9), "warn"),  # start 0: down means below 0 - 0 - 1e-9
])
def test_returns_went_down_only_strictly_below_the_start_less_the_margin(end, severity):
    """Ten episodes, the first 0 and the last ``end`` (one each: no noise, margin max(0.1 * 0, 0) = 0): DOWN
    (alarm) when end < start - margin - 1e-9; exactly there the returns are flat (warn)."""
    run = hand_made_run({"entropy": [0.5]}, returns=[0.0] * 9 + [end])
    assert finding(run, "return trend").severity == severity


@pytest.mark.parametrize("end, severity", [(below(111.0), "warn"), (111.0, "ok"), (above(111.0), "ok")])
def test_returns_improve_from_the_start_plus_the_margin_plus_one(end, severity):
    """First 100, last ``end``: the margin is 0.1 * 100 = 10, so the returns improve from 100 + 10 + 1 = 111 on
    (inclusive); below it they are flat (warn)."""
    run = hand_made_run({"entropy": [0.5]}, returns=[100.0] * 9 + [end])
    assert finding(run, "return trend").severity == severity


@pytest.mark.parametrize("episodes, severity", [(19, "ok"), (20, "ok"), (21, "warn")])
def test_few_updates_per_episode_means_strictly_fewer_than_five_per_hundred(episodes, severity):
    """One update over ``episodes`` episodes: 100 / 20 = exactly 5 per 100 episodes is enough; 100 / 21 is few."""
    run = hand_made_run({"entropy": [0.5]}, returns=[10.0] * episodes)
    assert finding(run, "updates per episode").severity == severity


# -- the bug hunt's check: distance at most 1 is "behaves alike" -----------------------------------------------------
# The tolerances are set to 0.5 at every update (monkeypatched) and every compared number of the mystery is 1.0, so a
# replay logging 1.5 is exactly 0.5 / 1 / 0.5 = 1 tolerance away: on the edge, in exact binary arithmetic.

EDGE = 1.5  # 1 tolerance from the mystery's 1.0
COMPARED_ROWS = len(bug_hunt.COMPARED)


@pytest.fixture
def half_tolerance(monkeypatch):
    monkeypatch.setattr(bug_hunt, "TOLERANCES", (0.5,))


def signature(*per_update: float) -> np.ndarray:
    """A ``[len(COMPARED), updates]`` signature whose every compared number at update u is ``per_update[u]``."""
    return np.tile(np.asarray(per_update, dtype=float), (COMPARED_ROWS, 1))


def mystery_of(*per_update: float):
    """A saved run (PPO on CartPole, seed 0) whose updates log ``per_update[u]`` in every compared column."""
    history = History()
    history.updates = Table(UPDATE_FIELDS, {column: list(per_update) for column in bug_hunt.COMPARED})
    return SimpleNamespace(config=make_config("ppo", "CartPole-v1", "discrete", seed=0), history=history)


def scripted_trainer(monkeypatch, *per_update: float) -> list[int]:
    """Make the replay's PPO a script that logs ``per_update[u]`` at update u and stops when told (or when it runs
    out); returns the list of updates it ran, filled in as it runs."""
    ran: list[int] = []

    def train(config, components, hooks, on_update):
        trainer = SimpleNamespace(history=History(), stopped=False)
        trainer.run = SimpleNamespace(history=trainer.history)
        for done in range(1, len(per_update) + 1):
            trainer.history.updates = Table(UPDATE_FIELDS, {c: list(per_update[:done]) for c in bug_hunt.COMPARED})
            ran.append(done)
            on_update(trainer)
            if trainer.stopped:
                break
        return trainer.run

    monkeypatch.setattr(bug_hunt, "TRAINERS", {"ppo": train})
    return ran


@pytest.mark.parametrize("updates", [1, 2, 3])
def test_a_replay_trains_exactly_the_updates_it_compares(monkeypatch, updates):
    """``_replay(..., updates)`` stops its training once ``updates`` updates are done (not one later), when every
    update matches the mystery's."""
    ran = scripted_trainer(monkeypatch, *[1.0] * 6)
    replay = bug_hunt._replay(None, mystery_of(*[1.0] * 6), updates)
    assert ran[-1] == updates and replay.shape == (COMPARED_ROWS, updates)


def test_a_replay_stops_at_the_mysterys_last_update_when_it_parts_there(monkeypatch, half_tolerance):
    """A replay stops after the first update whose distance from the mystery's is above ``stop_beyond``, up to and
    including the mystery's last update (here its 2nd of 2, asked for 4): parting at update 2, it runs 2, not 4."""
    ran = scripted_trainer(monkeypatch, 1.0, 10.0, 1.0, 1.0)
    bug_hunt._replay(None, mystery_of(1.0, 1.0), updates=4)
    assert ran[-1] == 2


@pytest.mark.parametrize("first, updates_run", [(below(EDGE), 3), (EDGE, 3), (above(EDGE), 1)])
def test_a_replay_goes_on_while_an_update_is_at_most_stop_beyond_tolerances_away(monkeypatch, half_tolerance, first,
                                                                                 updates_run):
    """``stop_beyond=1``: the replay stops after an update MORE than 1 tolerance from the mystery's; exactly 1
    tolerance (1.5 against 1.0) goes on to all 3 updates."""
    ran = scripted_trainer(monkeypatch, first, 1.0, 1.0)
    bug_hunt._replay(None, mystery_of(1.0, 1.0, 1.0), updates=3)
    assert ran[-1] == updates_run


@pytest.mark.parametrize("replay, alike", [(below(EDGE), True), (EDGE, True), (above(EDGE), False)])
def test_behaves_like_means_a_replay_at_most_one_tolerance_away(monkeypatch, half_tolerance, replay, alike):
    """``behaves_like``: the replay's first updates within a distance of 1 of the mystery's (1 included)."""
    scripted_trainer(monkeypatch, replay, replay)
    assert bug_hunt.behaves_like(None, mystery_of(1.0, 1.0), updates=2) is alike


def test_the_first_difference_of_a_replay_that_stopped_early_is_where_it_stopped():
    """``_first_difference``: a replay with 1 update against a mystery with 2 'stopped before update 2' (update
    index 1 is the first the replay does not have)."""
    assert bug_hunt._first_difference(signature(1.0), signature(1.0, 1.0)) == "it stopped before update 2"


@pytest.mark.parametrize("replay, where", [
    (below(EDGE), "its updates match"), (EDGE, "its updates match"),
    (above(EDGE), "at update 1, its env_step differs"),
])
def test_a_replay_first_differs_where_it_is_more_than_a_tolerance_away(half_tolerance, replay, where):
    """``_first_difference``: the first update and column whose relative difference is ABOVE its tolerance."""
    assert bug_hunt._first_difference(signature(replay), signature(1.0)).startswith(where)


@pytest.fixture
def feedback_on(monkeypatch, half_tolerance):
    """``mystery_feedback(1, 'stale_old_log_probs')`` on a mystery logging ``mystery`` at both compared updates, with
    the answer's replay and the correct (no-trap) replay given."""
    def feedback(mystery: float, answer_replay: float, correct_replay: float) -> str | None:
        replays = {"stale_old_log_probs": signature(answer_replay, answer_replay),
                   None: signature(correct_replay, correct_replay)}
        monkeypatch.setattr(bug_hunt, "mystery_run", lambda k: mystery_of(mystery, mystery))
        monkeypatch.setattr(bug_hunt, "_replay", lambda trap, run, *args, **kwargs: replays[trap])
        monkeypatch.setattr(bug_hunt, "where_to_look", lambda k: "the KL")
        return bug_hunt.mystery_feedback(1, "stale_old_log_probs")
    return feedback


@pytest.mark.parametrize("replay, right", [(below(EDGE), True), (EDGE, True), (above(EDGE), False)])
def test_an_answer_is_right_when_its_replay_is_at_most_one_tolerance_from_the_mystery(feedback_on, replay, right):
    """``mystery_feedback`` accepts (None) an answer whose replay is within a distance of 1 of the mystery's."""
    assert (feedback_on(1.0, replay, 100.0) is None) is right


@pytest.mark.parametrize("replay, changes_nothing", [(below(EDGE), True), (EDGE, True), (above(EDGE), False)])
def test_a_wrong_answer_changes_nothing_when_its_replay_is_at_most_one_tolerance_from_a_correct_run(
        feedback_on, replay, changes_nothing):
    """A wrong answer (its replay ~1.5 against the mystery's 4.0: 1.25 tolerances off) 'changes nothing' when its
    replay is within a distance of 1 of a correct run's (1.0; 1.5 is exactly 1 tolerance)."""
    message = feedback_on(4.0, replay, 1.0)
    assert message is not None and ("changes nothing in the first updates" in message) is changes_nothing


@pytest.mark.parametrize("replay, near", [(below(2.0), True), (2.0, False), (above(2.0), False)])
def test_a_trap_is_indistinguishable_strictly_within_the_margin(monkeypatch, half_tolerance, replay, near):
    """``indistinguishable(trap, mystery, margin=2)``: the other traps whose replay is LESS than 2 tolerances from
    the mystery (here long_rollout at 2.0 against 1.0: exactly 2 tolerances; every other one far off)."""
    monkeypatch.setattr(bug_hunt, "_replay", lambda other, run, *args, **kwargs: signature(
        replay if other == "long_rollout" else 100.0, replay if other == "long_rollout" else 100.0))
    found = bug_hunt.indistinguishable("stale_old_log_probs", mystery_of(1.0, 1.0), margin=2.0)
    assert found == (["long_rollout"] if near else [])


@pytest.mark.parametrize("answers, specs, message", [
    ({1: "no_such_trap"}, (1,), "is not a trap name"),  # every pool run with a spec answered: accepted
    ({1: "no_such_trap"}, (1, 2), "is not a trap name"),  # some of them: accepted
    ({1: "no_such_trap", 3: "no_such_trap"}, (1, 2), "give an answer and a seed"),  # pool run 3 has no spec
])
def test_write_mysteries_takes_answers_for_any_pool_runs_with_a_spec_all_of_them_included(answers, specs, message):
    """The answered pool runs must be a subset of those with a spec (all of them is a subset) and of the seeded
    ones; past that check, a name that is no trap is refused (nothing is trained)."""
    with pytest.raises(ValueError, match=message):
        bug_hunt.write_mysteries(answers, {k: 0 for k in answers}, specs={k: {} for k in specs})


@pytest.mark.parametrize("drift, written", [(below(0.2), True), (0.2, True), (above(0.2), False)])
def test_a_mystery_is_written_when_its_replay_elsewhere_drifts_at_most_one_margin_th(monkeypatch, tmp_path, drift,
                                                                                    written):
    """``write_mysteries`` refuses a mystery whose replay under another rounding is MORE than 1 / MARGIN = 1 / 5
    = 0.2 tolerances from itself; exactly 0.2 is written (training, replays and saving are stand-ins here)."""
    import dataclasses

    @dataclasses.dataclass
    class Config:
        traps: tuple = ()

    class Trained(SimpleNamespace):
        def save(self, folder, overwrite=False):
            return folder

    monkeypatch.setattr(bug_hunt, "answerable_signals", lambda answer, spec: {"KL / clip fraction"})
    monkeypatch.setattr(bug_hunt, "train", lambda *args, **kwargs: Trained(config=Config(("stale_old_log_probs",))))
    monkeypatch.setattr(bug_hunt, "first_lead", lambda run: None)
    monkeypatch.setattr(bug_hunt, "behaves_like", lambda trap, run: True)
    monkeypatch.setattr(bug_hunt, "indistinguishable", lambda trap, run: [])
    monkeypatch.setattr(bug_hunt, "replay_elsewhere", lambda trap, saved: None)
    monkeypatch.setattr(bug_hunt, "_signature", lambda run, updates: None)
    monkeypatch.setattr(bug_hunt, "distance", lambda replay, expected: drift)
    assert 1.0 / bug_hunt.MARGIN == 0.2
    call = lambda: bug_hunt.write_mysteries({1: "stale_old_log_probs"}, {1: 0}, folder=tmp_path,  # noqa: E731
                                            specs={1: {"algo": "ppo", "env_id": "CartPole-v1"}})
    if written:
        assert call() == [tmp_path / "1"]
    else:
        with pytest.raises(ValueError, match="parts from itself"):
            call()


# -- the bug hunt's evidence --------------------------------------------------------------------------------------


@pytest.mark.parametrize("mystery, parted", [(5e-10, False), (1e-9, False), (2e-9, True)])
def test_a_column_parts_from_its_twin_strictly_beyond_the_tolerance(mystery, parted):
    """Parting: |mystery - twin| / max(|twin|, 1e-3) ABOVE TOLERANCE = 1e-6. Twin 0: the floor 1e-3 divides, so
    1e-9 is exactly 1e-6 (not parted), 2e-9 is 2e-6 (parted), 5e-10 is 5e-7."""
    assert evidence.parted_columns({"entropy": [mystery]}, {"entropy": [0.0]}, 1, ("entropy",)) == (
        ["entropy"] if parted else [])


@pytest.mark.parametrize("value, same", [(5e-13, True), (1e-12, True), (2e-12, False)])
def test_a_learners_value_matches_the_logged_one_within_the_tolerance_inclusive(value, same):
    """``matches``: |value - logged| <= 5e-4 * |logged| + 1e-12; for logged 0 the bound is exactly 1e-12."""
    assert evidence.matches(value, 0.0) is same


@pytest.mark.parametrize("twin_entropy, update, value, verdict", [
    ([0.5, 0.6, 0.8], 1, 0.5, "still equals its correct twin's"),  # before the first parting (update 2)
    ([0.5, 0.6, 0.8], 2, 0.7, None),  # exactly the first parting
    ([0.5, 0.6, 0.8], 3, 0.9, "had already parted"),  # after it (and the run's last update: still in the run)
    ([0.5, 0.7, 0.8], 3, 0.9, None),  # the first parting is the run's last update, 3 of 3
    ([0.5, 0.6, 0.8], 4, 0.9, "past the run's last update (3)"),
])
def test_the_evidence_is_exactly_the_first_parting_and_no_update_past_the_last(twin_entropy, update, value, verdict):
    """``judge_evidence`` (mystery entropy 0.5, 0.7, 0.9 over 3 updates): the evidence's update must be the first
    where the mystery parts from its twin (one earlier: still equal; one later: already parted) and at most the
    run's last update (the last update itself is in the run)."""
    mystery = {"env_step": [1.0, 2.0, 3.0], "entropy": [0.5, 0.7, 0.9]}
    twin = {"env_step": [1.0, 2.0, 3.0], "entropy": twin_entropy}
    found = evidence.judge_evidence(mystery, twin, "entropy", (update, value))
    assert found is None if verdict is None else verdict in found


# -- the reproduction table ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("second, reached", [(549.0, None), (550.0, 2), (551.0, 2)])
def test_a_run_reaches_475_when_its_moving_average_is_at_least_475(second, reached):
    """``episodes_to``: the first episode count at which the moving average (window 2) REACHES the threshold:
    returns 400 then 550 average exactly 475 at episode 2 (549: 474.5, never)."""
    assert episodes_to([400.0, second], 475.0, window=2) == reached


# -- the probes ----------------------------------------------------------------------------------------------------
# ActionObservationRewardEnv's `self._obs > 0` (probes.py:125): equivalent to >= 0, its observation is -1 or +1 only.
def probe_run(value: float, logits=(0.0, 0.0)):
    """A run whose critic says ``value`` and whose policy has ``logits`` at every observation (float32, as a net's)."""
    value_net = lambda obs: torch.full((len(obs),), value, dtype=torch.float32)  # noqa: E731
    policy = lambda obs: torch.tensor([logits], dtype=torch.float32).expand(len(obs), 2)  # noqa: E731
    return SimpleNamespace(config=SimpleNamespace(gamma=0.9), device="cpu", value_net=value_net, policy=policy)


@pytest.mark.parametrize("value, ok", [(float(np.nextafter(np.float32(1.25), np.float32(0))), True), (1.25, True),
                                       (float(np.nextafter(np.float32(1.25), np.float32(2))), False)])
def test_a_probe_value_is_right_within_its_tolerance_inclusive(monkeypatch, value, ok):
    """``check_probe``: the critic is right when every |V - V*| is at most max(VALUE_TOLERANCE * |V*|,
    VALUE_TOLERANCE_ABS); with VALUE_TOLERANCE a quarter (set here: 0.1 is no binary fraction), the constant
    probe's answer 1 is right from 0.75 to 1.25, both included."""
    monkeypatch.setattr(probes, "VALUE_TOLERANCE", 0.25)
    assert probes.check_probe(probe_run(value), "constant")["value_ok"] is ok


@pytest.mark.parametrize("logits, ok", [((0.001, 0.0), False), ((0.0, 0.0), True), ((0.0, 0.001), True)])
def test_a_probe_policy_is_right_from_the_threshold_probability_inclusive(monkeypatch, logits, ok):
    """``check_probe``: the policy is right when it takes the best action (1, on the action probe) with probability
    at least POLICY_THRESHOLD; set to 0.5 here (0.9 is no float32 probability), equal logits give exactly 0.5."""
    monkeypatch.setattr(probes, "POLICY_THRESHOLD", 0.5)
    result = probes.check_probe(probe_run(1.0, logits), "action")
    assert (result["best_action_prob"] == 0.5) is (logits == (0.0, 0.0)) and result["policy_ok"] is ok
