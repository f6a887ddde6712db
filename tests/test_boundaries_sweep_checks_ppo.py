"""The PPO checks' thresholds, pinned at their edges (issue 45, item 5: the mechanical boundary sweep).

The sweep flipped every ordering comparison of ``pgcourse/course/checks/ch04_ppo.py`` and ``ch04b_*.py`` at its
boundary (``<`` for ``<=``, ``>`` for ``>=``) and found these alive: the KL early stop of ``ppo_epochs`` and of its
known wrong loops (a KL equal to ``target_kl`` does not stop), the "not shuffled" verdict from a batch of 8, the
failure message's tensors shown up to 12 numbers, the glue's rules (one reset, the exact budget, the last update
last, the gradient proof's tolerance), the accepted diagnostic ranges with their ends included, the learning gate at
exactly ``LEARNED_RETURN``, and the reference loop's budget reached exactly. Each test states the definition and
checks it at the edge, one below and one above; every expected value is worked out by hand.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pgcourse.course.checks import ch04_ppo, ch04b_glue, ch04b_ppo_loop
from pgcourse.course.checks.ch04b_reference import reference_ppo_update, reference_train_ppo
from pgcourse.rl.algorithms.rollout import Rollout
from pgcourse.rl.config import make_config
from pgcourse.rl.distributions import categorical_log_prob
from pgcourse.rl.envs import make_raw_vector_env
from pgcourse.rl.networks import CategoricalPolicy, ValueNet


# -- ch04_ppo: clip_fraction's "ratio itself" mistake ---------------------------------------------------------------
def test_the_ratio_itself_mistake_counts_a_ratio_equal_to_clip_eps_as_not_clipped():
    """The mistake "compare the ratio itself with clip_eps" is the reference with its ``- 1`` forgotten: it counts
    the ratios strictly above clip_eps, as the reference counts the distances strictly above it. With
    clip_eps = 0.25: 0.25 (at) and 0.2 (below) are not counted, 0.3 (above) is: 1 of 3."""
    mistake = next(m for m in ch04_ppo.CLIP_FRACTION.mistakes if "not the ratio itself" in m.hint)
    assert float(mistake.compute(torch.tensor([0.25, 0.2, 0.3]), 0.25)) == pytest.approx(1 / 3)
    assert float(mistake.compute(torch.tensor([0.25]), 0.25)) == 0.0


# -- ch04_ppo: minibatch_indices' "not shuffled" verdict --------------------------------------------------------
@pytest.mark.parametrize("batch_size, refused", [(7, False), (8, True), (9, True)])
def test_indices_in_their_original_order_are_refused_from_a_batch_of_8(batch_size, refused):
    """A partition read in the order 0, 1, ..., B - 1 is "not shuffled" from B = 8 on (one shuffle in 8! = 40,320
    gives it); below 8 it is accepted (a small batch may come out in order by chance)."""
    found = ch04_ppo._minibatch_problem([torch.arange(batch_size)], batch_size, batch_size)
    if refused:
        assert found is not None and found[0] == "the indices come in their original order."
    else:
        assert found is None
    shuffled = [torch.cat([torch.arange(1, batch_size), torch.tensor([0])])]  # 1, 2, ..., B - 1, 0
    assert ch04_ppo._minibatch_problem(shuffled, batch_size, batch_size) is None


# -- ch04_ppo: ppo_epochs' early stop, in the reference and in its known wrong loops ----------------------------
ONE_HOT = ch04_ppo._EpochsCase("one-hot, 3 epochs of 3 minibatches", batch_size=12, minibatch_size=4,
                               update_epochs=3, target_kl=0.0, lr=0.05, seed=30, one_hot=True)


def run_epochs(target_kl, mistake=None):
    """(epoch KLs, rows of the weights that moved). With one-hot observations sample i moves only row i, and every
    sample is visited once per epoch, so each KL of the first epoch is measured on rows not yet moved: exactly 0."""
    args = ONE_HOT.args() | dict(target_kl=target_kl)
    start = args["weights"].clone()
    weights, kls = ch04_ppo.reference_ppo_epochs(**args, mistake=mistake)
    return kls, [i for i in range(12) if not torch.equal(weights[i], start[i])]


@pytest.mark.parametrize("target_kl, epochs", [(-1e-9, 1), (0.0, 2), (1e-9, 2), (1.0, 3)])
def test_an_epoch_kl_equal_to_target_kl_does_not_stop_the_epochs(target_kl, epochs):
    """The epochs stop when the epoch's mean KL EXCEEDS target_kl. The first epoch's KL is exactly 0: a target of 0
    lets a second epoch run (its KL is positive, so the epochs stop after it); a target below 0 stops after the
    first; one never reached (1.0) runs all 3."""
    kls, moved = run_epochs(target_kl)
    assert len(kls) == epochs and kls[0] == 0.0 and all(kl > 0 for kl in kls[1:])
    assert moved == list(range(12))


def test_the_stop_before_step_loop_steps_a_minibatch_whose_kl_equals_target_kl():
    """The wrong loop "stop_before_step" breaks off before a minibatch's step when that minibatch's KL EXCEEDS
    target_kl. At target_kl = 0 the first epoch's minibatches (KL exactly 0) are all stepped (every row moves, epoch
    KL 0, so a second epoch starts), and the second epoch stops at its first minibatch (KL > 0) with no KL recorded."""
    kls, moved = run_epochs(0.0, "stop_before_step")
    assert kls == [0.0] and moved == list(range(12))


def test_the_stop_per_minibatch_loop_goes_on_after_a_minibatch_whose_kl_equals_target_kl():
    """The wrong loop "stop_per_minibatch" stops after a minibatch's step when its KL EXCEEDS target_kl. At
    target_kl = 0 the whole first epoch runs (KLs exactly 0: every row moves), and the second stops after its first
    minibatch (KL > 0): 2 epoch KLs, 0 then positive."""
    kls, moved = run_epochs(0.0, "stop_per_minibatch")
    assert len(kls) == 2 and kls[0] == 0.0 and kls[1] > 0 and moved == list(range(12))


# -- ch04_ppo: how a failure message shows a case's tensors -----------------------------------------------------
@pytest.mark.parametrize("batch_size, actions_in_full", [(11, True), (12, True), (13, False)])
def test_a_failure_message_shows_a_tensor_of_up_to_12_numbers_in_full(batch_size, actions_in_full):
    """Tensors of at most 12 numbers are shown as they are, larger ones as "seeded values, shape ..., dtype". The
    default weights are [4, 3] (12 numbers: in full); the observations [B, 4] (44 and more: summarised); the
    actions [B]."""
    case = ch04_ppo._EpochsCase("x", batch_size=batch_size, minibatch_size=4, update_epochs=1, target_kl=None,
                                lr=0.05, seed=31)
    shown = ch04_ppo._shown_args(case)
    assert isinstance(shown["weights"], torch.Tensor) and shown["weights"].shape == (4, 3)
    assert shown["obs"] == f"seeded values, shape ({batch_size}, 4), float32"
    if actions_in_full:
        assert isinstance(shown["actions"], torch.Tensor) and shown["actions"].shape == (batch_size,)
    else:
        assert shown["actions"] == f"seeded values, shape ({batch_size},), int64"


# -- ch04b_glue: the transitions before a step, the count behind a learning rate ---------------------------------
@pytest.mark.parametrize("clock, before", [(0, 0), (1, 3), (2, 5), (3, 8)])
def test_the_transitions_before_clock_0_are_zero(clock, before):
    """The envs' count after their first ``clock`` steps: 0 before any step (not the last entry), then the entry
    of step ``clock``."""
    assert ch04b_glue._transitions_before([3, 5, 8], clock) == before


@pytest.mark.parametrize("lr, initial, counted", [
    (1.0, 1.0, 0),  # lr left at its initial value: a count of 0 (included)
    (0.5, 1.0, 500),
    (0.0, 1.0, 1000),  # lr annealed to 0: the whole budget counted (included)
    (1.001, 1.0, None),  # count -1: below 0
    (-0.001, 1.0, None),  # count 1001: past the budget
    (0.25, 0.0, None),  # an initial lr of 0 (or less) gives no count
    (0.25, -1.0, None),
    (0.5 - 2e-7, 1.0, 500),  # 500.0002: within 1e-3 of a whole count
    (0.5 - 2e-5, 1.0, None),  # 500.02: not a whole count
])
def test_the_count_behind_an_annealed_lr_is_a_whole_count_from_0_to_the_budget(lr, initial, counted):
    """``_count_behind``: T with lr = (1 - T / total_steps) * initial for a whole T in [0, total_steps], both ends
    included (T within 1e-3 of it); None when initial <= 0 or no such T exists. total_steps = 1000."""
    assert ch04b_glue._count_behind(lr, initial, SimpleNamespace(total_steps=1000)) == counted


@pytest.mark.parametrize("updates, never_annealed", [(1, False), (2, True), (3, True)])
def test_a_learning_rate_is_called_never_annealed_only_over_more_than_one_update(updates, never_annealed):
    """With config.anneal_lr, an optimiser whose lr stayed at its initial value in every step is "never annealed"
    only when it stepped in more than one update; with a single update (here one that began after 8 transitions,
    where 0.5 was due) the lr is judged as a count: 1.0 reads as 0 transitions counted, 8 fewer than the envs'."""
    config = SimpleNamespace(anneal_lr=True, total_steps=16)
    transitions = [2 * (k + 1) for k in range(16)]  # 2 envs, no episode end
    clocks = [4 * (u + 1) for u in range(updates)] if updates > 1 else [8]
    starts = [0, *clocks[:-1]] if updates > 1 else [4]
    found = ch04b_glue._lr_problem("actor", "config.lr", 1.0, [[1.0]] * updates, clocks, starts, transitions, config)
    if never_annealed:
        assert found.startswith("the learning rates are never annealed: the actor's lr stayed 1 in every update.")
    else:
        assert found.startswith("your loop's count of valid transitions is not the envs'") and "(8 fewer" in found


# -- ch04b_glue: the rules read on a hand-made record ----------------------------------------------------------
N_STEPS, NUM_ENVS, HIDDEN = 4, 2, (3,)


def glue(updates, total_steps, resets=None, steps=None, worst=0.0):
    """The problems ``glue_problems`` finds in a record of ``updates`` updates, each after one rollout of 4 steps of
    2 envs (8 valid transitions, no episode end) and one step of each optimiser (minibatch_size 8), lr constant."""
    config = SimpleNamespace(seed=0, n_steps=N_STEPS, hidden_sizes=HIDDEN, update_epochs=1, minibatch_size=8,
                             total_steps=total_steps, anneal_lr=False, lr=1e-3, critic_lr=1e-3)
    clock = [N_STEPS * (u + 1) for u in range(updates)]
    steps = clock[-1] if steps is None else steps

    def optimiser(out_dim):
        return dict(shapes=ch04b_glue.network_shapes(4, HIDDEN, out_dim), outside_count=0, outside=[], moved=True,
                    clock=clock, lr=[[1e-3]] * updates)
    record = dict(steps=steps, resets=[[0, 0]] if resets is None else resets, stale_count=0, stale=[],
                  optimizers=[optimiser(2), optimiser(1)], returned=0,
                  ppo_gradient=dict(checked=updates, worst=worst, unmatched=0))
    transitions = [NUM_ENVS * (k + 1) for k in range(steps)]
    return ch04b_glue.glue_problems(record, transitions, updates, config)


def test_the_hand_made_record_of_a_correct_loop_has_no_problem():
    """2 updates of 8 transitions for a budget of 16: one seeded reset, the budget reached by the last update, no
    env step after it (steps == the last update's clock)."""
    assert glue(2, 16) == []


@pytest.mark.parametrize("count, at", [
    (1, None),  # the first reset alone: no problem
    (2, "after env steps 4)"),
    (6, "after env steps 4, 4, 4, 4, 4)"),  # 5 more resets: all listed
    (7, "after env steps 4, 4, 4, 4, 4, ...)"),  # 6 more: the first 5 listed, then "..."
])
def test_every_reset_after_the_first_is_a_problem_and_the_message_lists_at_most_five(count, at):
    """One reset, at the start, is the rule; each later one is counted, and at most 5 of their steps are listed
    ("..." after them when there are more)."""
    found = glue(2, 16, resets=[[0, 0]] + [[4, 0]] * (count - 1))
    if at is None:
        assert found == []
    else:
        assert len(found) == 1 and f"reset the envs {count - 1} more time(s) after the first ({at}" in found[0]


@pytest.mark.parametrize("total_steps, problem", [
    (17, "your loop stopped after 16 valid transitions, short of config.total_steps = 17"),  # 16 < 17: short
    (16, None),  # 16 collected, exactly the budget
    (15, None),
    (9, None),  # the last rollout began after 8 < 9
    (8, "stop at the first update that reaches it (your last rollout began after 8)"),  # began at the budget
    (7, "stop at the first update that reaches it (your last rollout began after 8)"),
])
def test_the_budget_is_reached_by_the_last_update_and_not_before_it(total_steps, problem):
    """Two updates of 8 transitions (the last rollout begins after 8, the loop ends with 16): short when
    16 < total_steps; overshooting when the last rollout began with the budget already reached (8 >= total_steps)."""
    found = glue(2, total_steps)
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0]


@pytest.mark.parametrize("steps, extra", [(8, None), (9, 1), (10, 2)])
def test_env_steps_after_the_last_update_are_a_problem(steps, extra):
    """The loop must end with an update: env steps past the last update's clock (8) are counted; none is fine."""
    found = glue(2, 16, steps=steps)
    if extra is None:
        assert found == []
    else:
        assert f"your loop played {extra} env steps after its last update" in found[-1]


# -- ch04b_glue: the gradient proof's tolerance -----------------------------------------------------------------
@pytest.mark.parametrize("flag, said", [
    (None, "your actor is not trained on PPO's loss"),
    ("ratio_always_one", "the ratio is always 1"),
    ("truncation_as_termination", "treats a truncated step as a terminated one"),
    ("surrogate_sign_flipped", "the actor's loss has the wrong sign"),
])
@pytest.mark.parametrize("where, rejected", [("below", False), ("at", False), ("above", True)])
def test_a_gradient_gap_equal_to_the_tolerance_passes(flag, said, where, rejected):
    """The proof's verdict: a worst gap above the tolerance (1e-3) is a problem (named by the mistake the proof
    recognised, if any); a gap at the tolerance or below it passes."""
    tolerance = ch04b_glue.gradient_tolerance()
    assert tolerance == 1e-3
    worst = {"below": math.nextafter(tolerance, 0), "at": tolerance, "above": math.nextafter(tolerance, 1)}[where]
    proof = dict(checked=3, worst=worst, worst_at=(2, 1), unmatched=0)
    if flag is not None:
        proof[flag] = True
    found = ch04b_glue.gradient_problems(proof)
    if rejected:
        assert len(found) == 1 and said in found[0]
    else:
        assert found == []


# -- ch04b_ppo_loop: the diagnostics accepted, the learning gate ------------------------------------------------
def diagnostics(kl=0.004, fraction=0.04, ev=0.5, best_ev_min=0.05):
    """``_diagnostic_problems`` of a one-update history (its means and its max are the values themselves)."""
    return ch04b_ppo_loop._diagnostic_problems(
        [dict(approx_kl=kl, clip_fraction=fraction, explained_variance=ev)], best_ev_min)


@pytest.mark.parametrize("kl, hint", [
    (math.nextafter(5e-4, 0), "the policy hardly moves"),
    (5e-4, None),  # both ends of [5e-4, 0.02] accepted
    (math.nextafter(5e-4, 1), None),
    (math.nextafter(0.02, 0), None),
    (0.02, None),
    (math.nextafter(0.02, 1), "the policy jumps far from pi_old"),
])
def test_the_mean_kl_is_accepted_from_5e_4_to_0_02_both_included(kl, hint):
    """The mean approx-KL must lie in [KL_RANGE[0], KL_RANGE[1]] = [5e-4, 0.02], ends included; outside, the
    message says which way it is off."""
    assert ch04b_ppo_loop.KL_RANGE == (5e-4, 0.02)
    found = diagnostics(kl=kl)
    if hint is None:
        assert found == []
    else:
        assert len(found) == 1 and found[0].startswith("the mean approx_kl over the updates is") and hint in found[0]


@pytest.mark.parametrize("fraction, accepted", [
    (math.nextafter(0.005, 0), False),
    (0.005, True),
    (math.nextafter(0.005, 1), True),
    (math.nextafter(0.2, 0), True),
    (0.2, True),
    (math.nextafter(0.2, 1), False),
])
def test_the_mean_clip_fraction_is_accepted_from_0_005_to_0_2_both_included(fraction, accepted):
    """The mean clip fraction must lie in [CLIP_FRACTION_RANGE[0], CLIP_FRACTION_RANGE[1]] = [0.005, 0.2]."""
    assert ch04b_ppo_loop.CLIP_FRACTION_RANGE == (0.005, 0.2)
    found = diagnostics(fraction=fraction)
    assert found == [] if accepted else (len(found) == 1 and found[0].startswith("the mean clip_fraction is"))


@pytest.mark.parametrize("ev, best_ev_min, accepted", [
    (0.05, 0.05, True),  # the default threshold, reached exactly
    (math.nextafter(0.05, 0), 0.05, False),
    (0.25, 0.25, True),  # a threshold passed in
    (0.2499, 0.25, False),
    (0.2501, 0.25, True),
])
def test_the_best_explained_variance_passes_from_best_ev_min_on(ev, best_ev_min, accepted):
    """The critic explains the returns when the best explained variance of any update is >= best_ev_min."""
    found = diagnostics(ev=ev, best_ev_min=best_ev_min)
    assert found == [] if accepted else (len(found) == 1 and found[0].startswith("the critic never explains"))


@pytest.mark.parametrize("mean, learned", [(49.5, False), (50.0, True), (50.5, True)])
def test_a_loop_whose_mean_return_is_exactly_learned_return_passes_the_gate(monkeypatch, mean, learned):
    """The learning gate: the sampled mean return must reach LEARNED_RETURN = 50 (equality passes). The glue and the
    evaluation are replaced (glue right, every one of the 20 episodes returning ``mean``)."""
    assert ch04b_ppo_loop.LEARNED_RETURN == 50.0
    monkeypatch.setattr(ch04b_ppo_loop, "glue_problems", lambda *args, **kwargs: [])
    monkeypatch.setattr(ch04b_ppo_loop, "sampled_returns",
                        lambda policy, env_id, episodes, seed: np.full(episodes, mean))
    history = [dict(approx_kl=0.004, clip_fraction=0.04, explained_variance=0.5)]
    result = ch04b_ppo_loop._ppo_result(0, None, history, {}, [8], 1.0, SimpleNamespace(env_id="CartPole-v1"))
    assert result.eval_mean == mean
    if learned:
        assert result.problems == []
    else:
        assert len(result.problems) == 1 and result.problems[0].startswith(
            f"the mean return (actions sampled) is {mean:.1f}, below 50")


# -- ch04b_reference: the reference loop's budget ---------------------------------------------------------------
@pytest.mark.parametrize("total_steps, updates", [(15, 2), (16, 2), (17, 3)])
def test_the_reference_loop_stops_once_the_budget_is_reached_exactly(total_steps, updates):
    """``reference_train_ppo`` collects while fewer than total_steps valid transitions were collected: rollouts of
    4 envs x 2 steps (8 transitions, no CartPole episode ends in 4 steps) reach 16 after 2 updates, so a budget of
    16 (or 15) takes 2 updates and one of 17 takes 3."""
    config = make_config("ppo", "CartPole-v1", "discrete", seed=0, num_envs=4, n_steps=2, minibatch_size=8,
                         update_epochs=1, total_steps=total_steps, progress=False)
    envs = make_raw_vector_env("CartPole-v1", config.num_envs, vectorization="sync")
    try:
        policy, value_net, history = reference_train_ppo(envs, config)
    finally:
        envs.close()
    assert len(history) == updates


# -- ch04b_reference: the "clip_fraction_upper_only" mistake of ppo_update ---------------------------------------
def test_the_upper_only_clip_fraction_mistake_leaves_a_ratio_at_1_plus_clip_eps_unclipped():
    """The wrong update "clip_fraction_upper_only" counts the ratios strictly above 1 + clip_eps (the reference's
    rule, one side only). One epoch of one minibatch of 4 transitions, its KL and clip fraction measured with the
    log-probs of the forward pass before the step: the stored (pi_old) log-probs are set so that the ratios are
    r0 (taken as 1 + clip_eps, about 1.25), 1 (below), about 1.5 (above) and about 0.5 (below 1 - clip_eps, not
    counted on the upper side): 1 of 4."""
    torch.manual_seed(0)
    policy, value_net = CategoricalPolicy(4, 2, (8,)), ValueNet(4, (8,))
    obs = torch.randn(1, 4, 4)  # [T=1, N=4, obs_dim]
    actions = torch.tensor([[0, 1, 0, 1]])
    with torch.no_grad():
        new_log_probs = categorical_log_prob(policy(obs[0][torch.arange(4)]), actions[0])  # the update's forward
    old_log_probs = new_log_probs - torch.tensor([math.log(1.25), 0.0, math.log(1.5), math.log(0.5)])
    ratio = (new_log_probs - old_log_probs).exp()
    assert float(ratio[1]) == 1.0 and 1.2 < float(ratio[0]) < 1.3 and float(ratio[2]) > 1.4 > 0.6 > float(ratio[3])
    clip_eps = float(ratio[0]) - 1.0  # exact: float(ratio[0]) is in [1, 2), so 1 + clip_eps == float(ratio[0])
    config = make_config("ppo", "CartPole-v1", "discrete", seed=0, clip_eps=clip_eps, progress=False)
    zeros = torch.zeros(1, 4)
    rollout = Rollout(obs=obs, actions=actions, log_probs=old_log_probs[None], values=zeros, next_values=zeros,
                      rewards=zeros, terminated=zeros, truncated=zeros, valid=torch.ones(1, 4, dtype=torch.bool))
    advantages = torch.tensor([[1.0, -1.0, 0.5, -0.5]])
    actor = torch.optim.Adam(policy.parameters(), lr=1e-3)
    critic = torch.optim.Adam(value_net.parameters(), lr=1e-3)
    found = reference_ppo_update(policy, value_net, actor, critic, rollout, advantages, advantages.clone(),
                                 [[torch.arange(4)]], config, mistake="clip_fraction_upper_only")
    assert found["clip_fraction"] == 0.25
