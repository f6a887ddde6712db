"""Exercises 04 and 05 that ramp (issue 27, item 6): the references of the new exercises against the package they
mirror, the margins their checks rely on, and the corrected answer key of exercise 04's q5.

- ``ppo_epochs``: the reference's early stop is the rule ``pg.train("ppo", ...)`` follows (recorded from a real
  run), and the check's cases keep every epoch's KL far from ``target_kl``, so a correct loop that rounds
  differently never takes the other decision.
- ``gaussian_policy_head``: the reference equals ``GaussianPolicy.log_prob_entropy`` with a linear mean.
- ``squashed_log_prob``: the reference equals torch's own change of variables, and the plain ``eps`` form
  agrees with the stable one on the check's cases within what the exercise text says.
- q5: recomputing the old log-probs per epoch does not leave the ratio at 1 (the old key said it did).
"""
from __future__ import annotations

import math

import nbformat
import pytest
import torch
from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

import pgcourse as pg
from pgcourse.course import concepts
from pgcourse.rl import distributions
from pgcourse.course.checks import ch04_ppo, ch05_continuous
from pgcourse.rl.networks import GaussianPolicy

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- ppo_epochs

@pytest.mark.parametrize("case", ch04_ppo.EPOCHS_CASES, ids=lambda case: case.description[:40])
def test_epoch_cases_keep_their_kls_away_from_target_kl(case):
    _, epoch_kls = ch04_ppo.reference_ppo_epochs(**case.args())
    if case.target_kl is None:
        assert len(epoch_kls) == case.update_epochs
        return
    for kl in epoch_kls:
        assert kl > 1.3 * case.target_kl or kl < case.target_kl / 1.3, (kl, case.target_kl)


def test_the_check_cases_take_both_decisions():
    """At least one case stops early and one runs every epoch with a target set: both branches are checked."""
    stopped = ran_all = False
    for case in ch04_ppo.EPOCHS_CASES:
        _, epoch_kls = ch04_ppo.reference_ppo_epochs(**case.args())
        if case.target_kl is not None:
            stopped |= len(epoch_kls) < case.update_epochs
            ran_all |= len(epoch_kls) == case.update_epochs
    assert stopped and ran_all


def test_package_ppo_stops_where_the_exercise_says():
    """Recorded from pg.train: each update's epochs_run is the first epoch whose mean minibatch KL (the KLs the
    loop computes between its minibatch_indices calls) exceeds target_kl, counted, else update_epochs."""
    calls: list[tuple[str, object]] = []

    def recording_minibatches(batch_size, minibatch_size, generator):
        minibatches = pg.minibatch_indices(batch_size, minibatch_size, generator)
        calls.append(("epoch", len(minibatches)))
        return minibatches

    def recording_kl(old_log_probs, new_log_probs):
        kl = pg.diagnostics.approx_kl(old_log_probs, new_log_probs)
        calls.append(("kl", float(kl)))
        return kl

    target_kl, epochs = 0.004, 10
    run = pg.train("ppo", "CartPole-v1", seed=0, total_steps=2048, target_kl=target_kl, update_epochs=epochs,
                   device="cpu", progress=False, minibatch_indices=recording_minibatches, approx_kl=recording_kl)
    expected, position = [], 0
    for _ in range(len(run.history.updates)):
        epochs_run = 0
        while position < len(calls) and calls[position][0] == "epoch":
            count = calls[position][1]
            kls = [value for _, value in calls[position + 1: position + 1 + count]]
            position += 1 + count
            epochs_run += 1
            if sum(kls) / len(kls) > target_kl:
                break
        position += 1  # the update's own KL after its epochs (update_kl)
        expected.append(epochs_run)
    assert position == len(calls)
    recorded = run.history.updates["epochs_run"].astype(int).tolist()
    assert recorded == expected
    assert any(n < epochs for n in recorded)  # the stop took part


def test_exercise_text_states_the_package_stop_rule():
    cells = nbformat.read(ROOT / "exercises" / "04_ppo.ipynb", 4).cells
    text = next(c.source for c in cells if c.metadata.get("nbgrader", {}).get("grade_id") == "ch04_ppo_epochs_text")
    for phrase in ("measured *before* the step", "**greater than** `target_kl`", "The epoch that\n  crossed it is "
                   "complete and counts", "one call of your `minibatch_indices", "**stored** `old_log_probs[idx]`"):
        assert phrase in text, phrase


# -------------------------------------------------------------------------------- gaussian_policy_head

def test_gaussian_policy_head_reference_is_the_package_policy_with_a_linear_mean():
    torch.manual_seed(3)
    policy = GaussianPolicy(obs_dim=3, action_dim=2, hidden_sizes=(), log_std_init=-0.4)
    obs, actions = torch.randn(7, 3), torch.randn(7, 2)
    layer = policy.net[0]
    log_probs, entropy = ch05_continuous.reference_gaussian_policy_head(obs, layer.weight, layer.bias,
                                                                         policy.log_std, actions)
    package_log_probs, package_entropy = policy.log_prob_entropy(obs, actions)
    torch.testing.assert_close(log_probs, package_log_probs)
    torch.testing.assert_close(entropy, package_entropy)


# ------------------------------------------------------------------------------------ squashed_log_prob

def test_squashed_reference_is_torchs_change_of_variables():
    g = torch.Generator().manual_seed(5)
    mean = torch.randn(9, 3, generator=g, dtype=torch.float64)
    log_std = 0.3 * torch.randn(3, generator=g, dtype=torch.float64)
    u = 3.0 * torch.randn(9, 3, generator=g, dtype=torch.float64)
    high = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)
    dist = TransformedDistribution(Normal(mean, log_std.exp()), [TanhTransform(), AffineTransform(0.0, high)])
    torch.testing.assert_close(distributions.tanh_squashed_log_prob(mean, log_std, u, high),
                               dist.log_prob(high * torch.tanh(u)).sum(-1), rtol=1e-10, atol=1e-10)


def test_the_stable_form_stays_finite_where_the_plain_one_saturates():
    u = torch.tensor([[12.0]])
    stable = distributions.tanh_squashed_log_prob(torch.zeros(1, 1), torch.zeros(1), u, torch.ones(1))
    assert torch.isfinite(stable).all()
    assert (1 - torch.tanh(u) ** 2).item() == 0.0  # the plain form needs its eps here


@pytest.mark.parametrize("case", ch05_continuous._cases_squashed_log_prob(), ids=lambda case: case.description)
def test_plain_and_stable_forms_agree_within_the_exercise_text_on_the_check_cases(case):
    """The text says: within |u| <= 2.5 the two forms agree to better than 1e-4 per dimension."""
    u = case.args["u"]
    assert u.abs().max() <= 2.5
    plain = torch.log(1 - torch.tanh(u) ** 2 + 1e-6)
    stable = 2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))
    assert (plain - stable).abs().max() < 1e-4
    # and the whole sums stay inside the check's tolerance
    rtol, atol = ch05_continuous.SQUASHED_LOG_PROB.tolerance
    assert (plain - stable).sum(-1).abs().max() < atol


# --------------------------------------------------------------------------------------------- q5's key

def test_q5_key_no_longer_says_the_ratio_stays_at_one():
    q5 = next(q for q in concepts.QUESTIONS["04"] if q.id == "q5")
    assert "the ratio would be 1 at every epoch" not in q5.choices["a"]
    assert "clip would never act" not in q5.choices["a"]
    assert "from the second minibatch on" not in q5.explanations["d"]
    assert "second epoch" in q5.explanations["d"]


def test_old_log_probs_recomputed_per_epoch_leave_the_ratio_at_one_only_in_each_epochs_first_minibatch():
    """The evidence behind q5's key: with pi_old recomputed at every epoch's start (the wrong loop), the first
    minibatch of each epoch has ratio exactly 1, the later ones do not, and the clip acts on some of them."""
    case = ch04_ppo.EPOCHS_CASES[1]  # 4 epochs of 4 minibatches
    args = case.args()
    weights = args["weights"].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([weights], lr=args["lr"])
    obs, actions, advantages, eps = args["obs"], args["actions"], args["advantages"], args["clip_eps"]
    first_ratios_one, later_moved, clipped = [], [], 0
    for _ in range(case.update_epochs):
        with torch.no_grad():
            anchor = ch04_ppo._linear_log_probs(weights, obs, actions)  # recomputed: the mistake
        for position, idx in enumerate(pg.minibatch_indices(obs.shape[0], case.minibatch_size, args["generator"])):
            new = ch04_ppo._linear_log_probs(weights, obs[idx], actions[idx])
            ratio = (new - anchor[idx]).exp().detach()
            if position == 0:
                first_ratios_one.append(bool(torch.equal(ratio, torch.ones_like(ratio))))
            else:
                later_moved.append(bool((ratio - 1).abs().max() > 1e-3))
                clipped += int(((ratio - 1).abs() > eps).sum())
            loss = pg.clipped_surrogate_loss(new, anchor[idx], advantages[idx], eps)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert all(first_ratios_one) and all(later_moved) and clipped > 0


def test_an_answer_returning_nan_is_not_diagnosed_as_a_mistake_that_also_gives_nan():
    """A NaN in a known mistake's output is no signature: an answer that returns NaN for another reason must not
    be told it made that mistake ("log_std used as std" gives NaN for the negative log_std of the cases).
    Found by an independent learner's try of exercise 05 (a head taking the square root of log_std)."""
    import math

    def nan_head(obs, mean_weight, mean_bias, log_std, actions):
        mean = obs @ mean_weight.T + mean_bias
        std = log_std ** 0.5  # NaN for a negative log_std, for a reason no known mistake names
        z = (actions - mean) / std
        log_probs = (-0.5 * z ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
        entropy = (0.5 * math.log(2 * math.pi * math.e) + log_std).sum(-1).expand(obs.shape[0])
        return log_probs, entropy

    with pytest.raises(AssertionError) as failure:
        pg.checks.check_gaussian_policy_head(nan_head)
    assert "log_std used as std" not in str(failure.value), str(failure.value)
