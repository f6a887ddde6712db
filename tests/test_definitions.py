"""Tests that pin what a number *is*, not only that it is there (issue 45, item 5).

A mutation audit found four classes of one-line bugs that every path test let through: a logged column computed
after the transformation it describes (or with an extra term in it), an edge value no case used, a guard or a
cache key that checks one part of what it guards, and a value logged for a step that did not happen. Each test
below states a definition so that any bug of its class fails, not only the one found: properties that hold for
every input (the same first update whatever ``ent_coef``; a spread check that commutes with negation; a total
that never goes below zero), not stored numbers.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.classroom.grading.gradebook import ExerciseResult, StudentResult
from pgcourse.rl import devices
from pgcourse.rl.agreement import spread_check
from pgcourse.rl.algorithms import Hooks, train_ppo
from pgcourse.rl.algorithms.trainer import Trainer, step_actor_then_critic
from pgcourse.rl.config import make_config
from pgcourse.rl.lm.losses import kl_penalized_rewards, masked_clipped_loss, masked_mean
from pgcourse.rl.tensor_envs import TensorObsNormalizer

ONE_STEP_PPO = dict(num_envs=4, n_steps=32, minibatch_size=128, update_epochs=1, total_steps=256, progress=False,
                    device="cpu")


def first_update(run) -> dict[str, float]:
    return {name: float(values[0]) for name, values in run.history.updates.items()}


# -- 1. a logged column is the quantity its name says, computed where the name says ------------------------------
@pytest.mark.parametrize("algo, settings", [("ppo", ONE_STEP_PPO),
                                            ("a2c", dict(num_envs=4, n_steps=32, total_steps=256, progress=False,
                                                         device="cpu"))])
def test_the_logged_policy_loss_is_the_policy_gradient_term_alone(algo, settings):
    """``policy_loss`` is the surrogate (PPO) or the policy-gradient term (A2C) without the entropy bonus: the first
    update's is computed before any step, from the same rollout whatever ``ent_coef`` is, so it cannot depend on
    it; the entropy logged beside it is the same too, while the actor's loss (and so its gradient) does."""
    plain = first_update(pg.train(algo, "CartPole-v1", seed=3, ent_coef=0.0, **settings))
    bonus = first_update(pg.train(algo, "CartPole-v1", seed=3, ent_coef=0.5, **settings))
    assert plain["policy_loss"] == bonus["policy_loss"]
    assert plain["entropy"] == bonus["entropy"]
    assert plain["actor_grad_norm"] != bonus["actor_grad_norm"]  # the bonus is in the loss that is stepped


def test_advantage_std_is_the_spread_of_the_advantages_before_normalisation():
    """Logged before ``normalize``: the same with normalisation on and off (the same rollout), and not 1."""
    normalized = first_update(pg.train("ppo", "CartPole-v1", seed=3, normalize_advantages=True, **ONE_STEP_PPO))
    raw = first_update(pg.train("ppo", "CartPole-v1", seed=3, normalize_advantages=False, **ONE_STEP_PPO))
    assert normalized["advantage_std"] == raw["advantage_std"]
    assert abs(normalized["advantage_std"] - 1.0) > 0.1


def test_explained_variance_before_is_the_collecting_critics_and_after_the_updated_ones():
    """``explained_variance_before`` scores the values stored in the rollout (no epoch has run): the same for one
    epoch and for ten; ``explained_variance_after`` scores the critic after them, so it differs; ``update_kl`` is
    0 for no policy change and grows with the epochs."""
    one = first_update(pg.train("ppo", "CartPole-v1", seed=3, **ONE_STEP_PPO))
    ten = first_update(pg.train("ppo", "CartPole-v1", seed=3, **{**ONE_STEP_PPO, "update_epochs": 10}))
    assert one["explained_variance_before"] == ten["explained_variance_before"]
    assert one["explained_variance_after"] != ten["explained_variance_after"]
    assert 0 < one["update_kl"] < ten["update_kl"]


def test_a_line_search_that_accepts_nothing_logs_a_step_that_did_not_happen_as_zero(monkeypatch):
    """TRPO whose line search accepts no fraction (the real search, given a KL bound no step meets: it tries every
    fraction and reports the last one's improvement and KL): every update keeps the policy, and the log says so:
    fraction, improvement and update KL all 0 (not the last tried step's numbers), every step tried, and the
    weights are the initial ones."""
    from pgcourse.rl.algorithms import trpo as trpo_module

    real = trpo_module.backtracking_line_search
    tried = []

    def rejecting(evaluate, expected, max_kl, *args):
        result = real(evaluate, expected, -1.0, *args)  # KL <= -1: no fraction is accepted
        tried.append(result)
        return result

    monkeypatch.setattr(trpo_module, "backtracking_line_search", rejecting)
    settings = dict(num_envs=4, n_steps=64, total_steps=512, progress=False, device="cpu")
    run = pg.train("trpo", "CartPole-v1", seed=3, **settings)
    monkeypatch.undo()
    trainer = Trainer(make_config("trpo", "CartPole-v1", "discrete", seed=3, **settings), needs_critic=True)
    initial = [p.detach().clone() for p in trainer.policy.parameters()]  # the seed's initial policy
    trainer.finish()
    updates = run.history.updates
    assert len(updates) >= 2 and all(not r.accepted and r.improvement != 0.0 for r in tried)
    assert np.all(np.asarray(updates["step_fraction"]) == 0.0)
    assert np.all(np.asarray(updates["surrogate_improvement"]) == 0.0)
    assert np.all(np.asarray(updates["update_kl"]) == 0.0)
    assert np.all(np.asarray(updates["line_search_steps"]) == run.config.line_search_steps)
    for p, q in zip(run.policy.parameters(), initial):
        assert torch.equal(p, q)


# -- 2. edge values --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stored", [[100.0, 120.0, 110.0], [-100.0, -120.0, -110.0], [-5.0, 3.0, 0.0],
                                    [500.0] * 10, [-500.0] * 10, [0.0, 0.0]])
def test_a_spread_check_commutes_with_negation_and_always_holds_the_stored_seeds(stored):
    """The accepted range of ``-stored`` is the negated range of ``stored`` (a width taken from ``max`` instead of
    ``max |.|`` fails on all-negative scores), and every stored seed is inside its own range."""
    check, negated = spread_check(stored[0], stored), spread_check(-stored[0], [-v for v in stored])
    assert (negated.low, negated.high) == (-check.high, -check.low)
    assert all(check.low <= v <= check.high for v in stored)
    assert check.high - check.low >= 4 * 0.025 * max(abs(v) for v in stored)


def test_an_all_padding_response_adds_nothing_and_no_nan():
    """A batch whose mask is all zeros (every response empty): the masked mean is 0, not NaN, and the clipped loss
    and its gradient are 0; a response mask of zeros gives the task reward alone at its last position."""
    values = torch.randn(3, 5, requires_grad=True)
    zeros = torch.zeros(3, 5)
    assert masked_mean(values, zeros).item() == 0.0
    loss = masked_clipped_loss(values, values.detach(), torch.ones(3), zeros, 0.2)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(values.grad, torch.zeros(3, 5))
    shaped = kl_penalized_rewards(torch.tensor([1.0, 2.0, 3.0]), values.detach(), values.detach(), zeros, 0.1)
    assert torch.isfinite(shaped).all()


@pytest.mark.parametrize("earned, penalty", [(3.0, 5.0), (0.0, 2.0), (10.0, 10.0), (7.5, 0.25), (4.0, 0.0)])
def test_a_late_penalty_takes_at_most_what_was_earned(earned, penalty):
    """The total is ``max(earned - penalty, 0)``: a penalty larger than the points earned leaves 0, never less."""
    row = StudentResult("s", "s.ipynb", None, {"e": ExerciseResult(earned, 10.0, "passed", "")}, penalty=penalty)
    assert row.total == max(earned - penalty, 0.0)
    assert 0.0 <= row.total <= row.earned


def test_a_constant_observation_feature_normalises_to_zero_not_to_nan():
    """A feature that never varies: its running variance can reach exactly 0 (a saved run's statistics, a long
    run whose feature was constant from its first batch), and then (x - mean) / sqrt(var + eps) is a finite 0 there,
    while a varying feature is standardised as usual."""
    normalizer = TensorObsNormalizer(2, torch.device("cpu"))  # one agent: statistics [1, 2]
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        batch = torch.stack([torch.full((64,), 3.0), torch.randn(64, generator=generator)], dim=1)[None]  # [1, 64, 2]
        out = normalizer(batch)[0]
    assert torch.isfinite(out).all() and out[:, 0].abs().max().item() < 1e-2
    normalizer.mean[0, 0], normalizer.var[0, 0] = 3.0, 0.0  # the constant feature's statistics, exactly
    out = normalizer(batch)[0]
    assert normalizer.var[0, 0].item() == 0.0 and torch.equal(out[:, 0], torch.zeros(64))
    assert 0.5 < out[:, 1].std().item() < 1.5


# -- 3. a guard or a key covers all of what it guards ------------------------------------------------------------
@pytest.mark.parametrize("network", ["policy", "value_net"])
def test_the_non_finite_guard_watches_every_network(network):
    """A NaN that reaches only the critic (or only the actor) stops the run and keeps the last good weights."""
    def poisoning_step(trainer, actor_loss, critic_loss):
        norms = step_actor_then_critic(trainer, actor_loss, critic_loss)
        if trainer.num_updates == 1:  # the second update's step puts a NaN into one network only
            with torch.no_grad():
                next(getattr(trainer, network).parameters()).view(-1)[0] = float("nan")
        return norms

    config = make_config("ppo", "CartPole-v1", "discrete", seed=0, **{**ONE_STEP_PPO, "total_steps": 512})
    with pytest.warns(RuntimeWarning, match="non-finite"):
        run = train_ppo(config, hooks=Hooks(actor_critic_step=poisoning_step))
    assert run.history.status.startswith("stopped: a parameter became non-finite"), run.history.status
    assert len(run.history.updates) == 1
    for module in (run.policy, run.value_net):
        assert all(torch.isfinite(p).all() for p in module.parameters())


def test_the_measured_crossover_is_used_only_for_the_gpu_and_the_torch_that_measured_it(tmp_path, monkeypatch):
    """The crossover file is keyed by the GPU's name and torch's version together: a change of either refuses it."""
    monkeypatch.setenv(devices.CACHE_ENV_VAR, str(tmp_path))
    here = {"gpu": "NVIDIA H200", "torch": "2.13.0+cu130"}
    monkeypatch.setattr(devices, "cuda_identity", lambda: dict(here))

    def write(**identity):
        record = {"format": devices.CROSSOVER_FORMAT, "version": 1, **identity, "crossover_envs": 512,
                  "measured": {"widths": [64, 512]}}
        devices.crossover_path().write_text(json.dumps(record))

    write(**here)
    assert devices.read_crossover()[0] == 512
    write(gpu=here["gpu"], torch="2.12.0+cu128")
    crossover, why = devices.read_crossover()
    assert crossover is None and "2.12.0" in why
    write(gpu="NVIDIA A100", torch=here["torch"])
    crossover, why = devices.read_crossover()
    assert crossover is None and "A100" in why


def test_the_lm_masked_mean_is_the_mean_over_the_mask_alone():
    """Padded positions never enter: the mean is the same with any values where the mask is 0."""
    values = torch.tensor([[1.0, 2.0, 99.0], [3.0, -7.0, 5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    other = torch.where(mask.bool(), values, torch.tensor(-1e6))
    assert masked_mean(values, mask).item() == masked_mean(other, mask).item() == pytest.approx((1 + 2 + 3 + 5) / 4)
    assert math.isfinite(masked_mean(values, mask).item())


# -- 4. the similarity hint compares what the students wrote, not what they were given ----------------------------
STARTER = '''def collect(envs, policy, value_net, steps, gamma=0.99):
    obs, _ = envs.reset(seed=0)
    observations, actions, rewards, dones, values, log_probs = [], [], [], [], [], []
    for t in range(steps):
        obs_tensor = torch.as_tensor(obs, dtype=torch.float32)
        logits = policy(obs_tensor)
        distribution = torch.distributions.Categorical(logits=logits)
        action = distribution.sample()
        log_probs.append(distribution.log_prob(action))
        values.append(value_net(obs_tensor).squeeze(-1))
        next_obs, reward, terminated, truncated, _ = envs.step(action.numpy())
        observations.append(obs_tensor)
        actions.append(action)
        rewards.append(torch.as_tensor(reward, dtype=torch.float32))
        dones.append(torch.as_tensor(terminated | truncated, dtype=torch.float32))
        obs = next_obs
    last_value = value_net(torch.as_tensor(obs, dtype=torch.float32)).squeeze(-1)
    batch = {"obs": torch.stack(observations), "actions": torch.stack(actions),
             "log_probs": torch.stack(log_probs), "values": torch.stack(values),
             "rewards": torch.stack(rewards), "dones": torch.stack(dones), "last_value": last_value}
    # YOUR CODE HERE: the returns of the batch
'''
OWN_A = '''    running = batch["last_value"]
    batch["returns"] = torch.stack([running := r + gamma * running * (1 - d)
                                    for r, d in zip(batch["rewards"].flip(0), batch["dones"].flip(0))]).flip(0)
    return batch
'''
OWN_B = '''    out = []
    g = batch["last_value"].clone()
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * (1.0 - dones[t]) * g
        out.insert(0, g)
    batch["returns"] = torch.stack(out)
    return batch
'''


def test_the_similarity_hint_drops_the_starter_code_however_long_it_is():
    """Two students who kept a long starter body (most of the cell) and wrote their own few lines are not a pair:
    every window of the starter is dropped, not only the windows the winnowing happened to pick from it, however
    long the starter is; a renamed copy of one of them still is a pair."""
    from types import SimpleNamespace

    from pgcourse.classroom.grading.similarity import similar_pairs

    def submission(student, source):
        return SimpleNamespace(student=student, problem=None,
                               cells=[SimpleNamespace(grade_id="collect", cell_type="code", source=source)])

    copy = (STARTER + OWN_B).replace("out", "result").replace("g ", "ret ").replace("g)", "ret)")
    chapter = SimpleNamespace(answer_order=["collect"], stubs={"collect": [STARTER]})
    pairs = similar_pairs(chapter, [submission("ana", STARTER + OWN_A), submission("ben", STARTER + OWN_B),
                                    submission("cy", copy)])
    assert [(pair.first, pair.second) for pair in pairs] == [("ben", "cy")], pairs


# -- 5. the survivors of a fresh audit (issue 45, item 5): each definition stated -----------------------------------
def test_a_ratio_exactly_on_the_clip_boundary_is_not_clipped():
    """PPO clips where |rho - 1| > eps, strictly: rho = 1 +- eps itself is not counted (exact in binary here)."""
    from pgcourse.rl.diagnostics import clip_fraction

    assert clip_fraction(torch.tensor([1.5, 0.5]), 0.5).item() == 0.0
    assert clip_fraction(torch.tensor([1.5, 0.5, 1.75, 0.25]), 0.5).item() == 0.5


def test_an_empty_response_gets_no_reward_at_all():
    """A response with no real token (an all-zero mask row) gets all-zero rewards: no KL term and no task reward
    (there is no last token to put it on), while the other responses get theirs on their last real token."""
    log_probs, ref = torch.zeros(2, 4), torch.zeros(2, 4)
    mask = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    rewards = kl_penalized_rewards(torch.tensor([5.0, 3.0]), log_probs, ref, mask, 0.1)
    assert torch.equal(rewards[0], torch.zeros(4))
    assert torch.equal(rewards[1], torch.tensor([0.0, 3.0, 0.0, 0.0]))


def test_greedy_and_sampled_disagree_only_beyond_both_spreads():
    """``modes_disagree`` needs the gap beyond *each* evaluation's std (and 10% of the range): a gap within the
    sampled policy's wide spread is not a disagreement, however narrow the greedy one is."""
    from pgcourse.rl.evaluation import EvalResult, modes_disagree

    def result(returns):
        returns = np.asarray(returns, dtype=float)
        return EvalResult(float(returns.mean()), float(returns.std()), returns.tolist())

    greedy = result([100.0] * 10)  # std 0
    wide = result([90.0, 210.0] * 5)  # mean 150, std 60: the gap of 50 is beyond greedy's std and 10% of the range
    assert not modes_disagree(greedy, wide) and not modes_disagree(wide, greedy)
    far = result([400.0, 410.0, 420.0, 400.0, 410.0, 420.0, 400.0, 410.0, 420.0, 410.0])
    assert modes_disagree(greedy, far) and modes_disagree(far, greedy)


def test_a_discrete_space_is_the_same_only_with_the_same_start():
    """``Discrete(2)`` and ``Discrete(2, start=1)`` are different action spaces; a saved run keeps its start."""
    import gymnasium as gym

    from pgcourse.rl.run import _space_from_dict, _space_to_dict, spaces_match

    assert not spaces_match(gym.spaces.Discrete(2), gym.spaces.Discrete(2, start=1))
    assert spaces_match(gym.spaces.Discrete(3, start=-1), _space_from_dict(_space_to_dict(gym.spaces.Discrete(3, start=-1))))


@pytest.mark.parametrize("stored, again, same", [(float("nan"), float("nan"), True), (float("nan"), 0.5, False),
                                                 (0.5, float("nan"), False), (0.5, 0.5, True), (0.5, 0.25, False)])
def test_a_nan_is_the_same_only_as_a_nan(stored, again, same):
    """Bit-for-bit agreement treats NaN as equal to NaN only, whichever side holds it."""
    from pgcourse.rl.agreement import _same

    assert _same(stored, again) is same


def test_a_learners_compute_gae_runs_even_when_td_errors_is_replaced_too():
    """``parts.gae()``: the learner's ``compute_gae`` when given (it computes its own deltas); the reference GAE on
    the learner's ``td_errors`` only when ``compute_gae`` is the reference."""
    from pgcourse.rl import returns
    from pgcourse.rl.algorithms import Components

    def my_gae(*args, **kwargs):
        return returns.compute_gae(*args, **kwargs)

    def my_td_errors(*args, **kwargs):
        return returns.td_errors(*args, **kwargs)

    assert Components(compute_gae=my_gae, td_errors=my_td_errors).gae() is my_gae
    only_deltas = Components(td_errors=my_td_errors).gae()
    assert only_deltas.func is returns.compute_gae and only_deltas.keywords == {"td_errors_fn": my_td_errors}
    assert Components().gae() is returns.compute_gae


def test_trpo_logs_the_surrogate_gradient_norm_not_the_search_direction():
    """``actor_grad_norm`` is |g| at theta_old, before the conjugate gradient: the first update's is the same for 1 and
    for 10 CG iterations (the same rollout and policy), while the step they lead to differs."""
    settings = dict(num_envs=4, n_steps=64, total_steps=256, progress=False, device="cpu")
    one = first_update(pg.train("trpo", "CartPole-v1", seed=3, cg_iters=1, **settings))
    ten = first_update(pg.train("trpo", "CartPole-v1", seed=3, cg_iters=10, **settings))
    assert one["actor_grad_norm"] == ten["actor_grad_norm"]
    assert one["update_kl"] != ten["update_kl"]


def test_ppo_value_rel_error_scores_the_critic_after_the_update():
    """Like ``explained_variance_after``, PPO's ``value_rel_error`` is the fitted critic's: it changes with the
    number of epochs, and ten epochs fit the batch better than one."""
    one = first_update(pg.train("ppo", "CartPole-v1", seed=3, **ONE_STEP_PPO))
    ten = first_update(pg.train("ppo", "CartPole-v1", seed=3, **{**ONE_STEP_PPO, "update_epochs": 10}))
    assert ten["value_rel_error"] < one["value_rel_error"]


def test_the_frozen_ratio_alarm_needs_both_kl_and_clip_fraction_at_zero():
    """pg.diagnose's "approx-KL and clip fraction are exactly 0" is raised when both are 0, never when only the KL
    is (a clip fraction of 0.2 says the ratio moves)."""
    from test_diagnose import synthetic_run

    from pgcourse.course.debugging.signals import diagnose

    def alarms(**columns):
        return [f for f in diagnose(synthetic_run(**columns)) if f.signal == "KL / clip fraction" and f.severity == "alarm"
                and "exactly 0" in f.message]

    assert alarms(approx_kl=0.0, clip_fraction=0.0)
    assert not alarms(approx_kl=0.0, clip_fraction=0.2)


def test_a_notebook_that_was_run_holds_learner_work_even_without_outputs():
    """An execution count alone (a cell run whose output was cleared) is work the generator must not erase."""
    import nbformat

    from pgcourse.classroom.exercisegen import holds_learner_work

    generated = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    ran = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", execution_count=3)])
    assert not holds_learner_work(nbformat.writes(generated), nbformat.writes(generated))
    assert holds_learner_work(nbformat.writes(ran), nbformat.writes(generated))


# -- 6. the survivors of a second fresh audit -----------------------------------------------------------------------
def test_update_kl_is_over_the_whole_batch_even_when_target_kl_stops_the_epochs():
    """KL(pi_old || pi_new) is measured on every row of the batch after the last epoch run, whichever agents stopped
    early: with a target that stops most updates after their first epoch the policy still moved, so it is > 0."""
    run = pg.train("ppo", "CartPole-v1", seed=3, target_kl=1e-6, **{**ONE_STEP_PPO, "update_epochs": 4,
                                                                     "minibatch_size": 32, "total_steps": 512})
    updates = run.history.updates
    stopped = np.asarray(updates["epochs_run"]) < run.config.update_epochs  # the target stopped these early
    assert stopped.sum() >= 3
    assert np.all(np.asarray(updates["update_kl"])[stopped] > 0)


def test_log_std_min_may_equal_log_std_init():
    """The bound is ``log_std_min <= log_std_init``: equality (start at the floor) is a valid setting."""
    config = make_config("ppo", "Pendulum-v1", "continuous", seed=0, log_std_init=-0.5, log_std_min=-0.5)
    assert config.log_std_min == config.log_std_init == -0.5
    with pytest.raises(pg.ConfigError, match="log_std_min"):
        make_config("ppo", "Pendulum-v1", "continuous", seed=0, log_std_init=-0.5, log_std_min=-0.4)


def test_the_networks_start_with_the_gains_ppo_uses():
    """Orthogonal layers, zero biases: hidden layers gain sqrt(2), the critic's output gain 1, the policy's 0.01 (a
    near-uniform first policy). An orthogonal [1, 64] row has norm exactly its gain; a [2, 64] one, singular
    values equal to it."""
    from pgcourse.rl.networks import CategoricalPolicy, ValueNet

    torch.manual_seed(0)
    critic, policy = ValueNet(4, (64, 64)), CategoricalPolicy(4, 2, (64, 64))
    for net, gain in ((critic.net, 1.0), (policy.net, 0.01)):
        linears = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
        assert all(torch.equal(layer.bias, torch.zeros_like(layer.bias)) for layer in linears)
        torch.testing.assert_close(torch.linalg.svdvals(linears[-1].weight),
                                   torch.full((linears[-1].out_features,), gain), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(torch.linalg.svdvals(linears[0].weight), torch.full((4,), math.sqrt(2.0)),
                                   rtol=1e-5, atol=1e-6)


# -- 7. the survivors of a third fresh audit (25 of 30 killed before these) -----------------------------------------
def test_a_one_value_sample_adds_no_spread_to_the_welch_standard_error():
    """pg.diagnose's return trend compares the first and last tenths of the returns: a tenth of one episode has no
    spread to estimate and adds nothing (its ddof=1 variance would be nan and make the whole error nan)."""
    from pgcourse.course.debugging.signals import _standard_error_of_difference
    others = np.array([1.0, 2.0, 3.0])
    assert _standard_error_of_difference(np.array([5.0]), others) == pytest.approx(math.sqrt(np.var(others, ddof=1) / 3))
    assert _standard_error_of_difference(others, np.array([5.0])) == pytest.approx(math.sqrt(np.var(others, ddof=1) / 3))
    assert _standard_error_of_difference(np.array([5.0]), np.array([7.0])) == 0.0


@pytest.mark.parametrize("holds", [1, 0, np.int64(1), np.int32(0)])
def test_a_claims_test_is_a_bool_not_a_number_that_happens_to_be_0_or_1(holds):
    """pg.claim(statement, holds): an int is a count or an index, not a verdict (a claim written as
    `pg.claim("...", len(failures))` would pass for 1 failure)."""
    with pytest.raises(TypeError, match="holds must be True or False"):
        pg.claim("something", holds)


@pytest.mark.parametrize("level", [0, -1, 4])
def test_hint_levels_are_one_to_three_and_nothing_else(level):
    """pg.hint(exercise, level): 1 the idea, 2 the formula, 3 near-code; 0 or -1 is an error, not the last hint read
    from the end of the list."""
    with pytest.raises(ValueError, match="level="):
        pg.hint("compute_gae", level)


def test_a_short_answer_copied_whole_into_a_long_one_is_a_pair():
    """Similarity is the share of the SMALLER answer's fingerprints found in the other: a student who pastes a
    classmate's short answer and adds as much code again of their own is still a pair (overlap 1.0)."""
    from types import SimpleNamespace

    from pgcourse.classroom.grading.similarity import similar_pairs

    def submission(student, source):
        return SimpleNamespace(student=student, problem=None,
                               cells=[SimpleNamespace(grade_id="collect", cell_type="code", source=source)])

    short = '''    advantages = torch.zeros_like(rewards)
    last = torch.zeros(rewards.shape[1])
    for step in reversed(range(rewards.shape[0])):
        delta = rewards[step] + gamma * next_values[step] * (1 - terminated[step]) - values[step]
        last = delta + gamma * lam * (1 - done[step]) * last
        advantages[step] = last
    batch["advantages"] = advantages
'''
    chapter = SimpleNamespace(answer_order=["collect"], stubs={"collect": []})
    pairs = similar_pairs(chapter, [submission("ana", short), submission("ben", short + STARTER)])
    assert [(pair.first, pair.second, pair.overlap) for pair in pairs] == [("ana", "ben", 1.0)], pairs


def test_a_wrong_chapter_stops_the_run_only_for_a_strict_majority():
    """Grading with the wrong --chapter must not give everyone 0 and succeed: more than half of the readable
    notebooks holding none of the chapter's cells stops the run; exactly half is a warning per student."""
    from types import SimpleNamespace

    from pgcourse.classroom.grading.course import GradingError
    from pgcourse.classroom.grading.grader import _wrong_notebooks

    course = SimpleNamespace(names=["01_demo", "02_other"], grade_ids=lambda name: {f"{name}_a"})
    chapter = SimpleNamespace(name="02_other", answer_order=["02_other_a"], manual_exercises=[])

    def notebooks(wrong, right):
        return ([SimpleNamespace(student=f"w{i}", path=f"w{i}.ipynb", problem=None, grade_ids={"01_demo_a"})
                 for i in range(wrong)] +
                [SimpleNamespace(student=f"r{i}", path=f"r{i}.ipynb", problem=None, grade_ids={"02_other_a"})
                 for i in range(right)])

    assert len(_wrong_notebooks(course, chapter, notebooks(2, 2), chosen=True)) == 2
    with pytest.raises(GradingError, match="3 of 4 submissions hold none of its answer cells"):
        _wrong_notebooks(course, chapter, notebooks(3, 1), chosen=True)


# -- the fresh audit's survivors (sixth session): definitions stated where a wrong form agreed ----------------------
def test_the_relative_value_error_is_scaled_by_the_mean_absolute_target_on_mixed_signs():
    """rmse / mean|R|: on targets of one sign |mean R| is the same number, so only mixed signs state the definition."""
    from pgcourse.rl.diagnostics import relative_value_error
    returns, values = torch.tensor([-10.0, 10.0, 20.0]), torch.tensor([-9.0, 12.0, 17.0])
    rmse = math.sqrt((1 + 4 + 9) / 3)
    assert relative_value_error(values, returns) == pytest.approx(rmse / (40 / 3), rel=1e-12)


@pytest.mark.parametrize("threshold", [0.0, -150.0])
def test_a_solve_threshold_of_zero_or_below_is_kept_not_replaced_by_the_default(threshold):
    config = make_config("ppo", "Pendulum-v1", "continuous", solve_threshold=threshold, progress=False)
    assert config.resolved_solve_threshold == threshold


def test_the_best_evaluation_of_a_trial_skips_a_missing_one():
    from pgcourse.course.sweeps.results import _MEASURES
    from pgcourse.course.sweeps.store import TrialRecord
    record = TrialRecord({"history": {"evals": {"mean": [10.0, None, 30.0]}}})
    assert _MEASURES["max_eval"](record, 20) == 30.0 and _MEASURES["final_eval"](record, 20) == 30.0


@pytest.mark.parametrize("folder", ["notebooks", "exercises", "figures", "pgcourse", "solutions"])
def test_a_handout_is_refused_inside_every_course_folder(folder, tmp_path):
    """The refusal is a guard over a list: each folder of it is tried, solutions/ included (a handout written there
    would land among the answers)."""
    from pgcourse.classroom.handout import HandoutError, check_target
    (tmp_path / folder).mkdir()
    with pytest.raises(HandoutError, match=f"inside the course's {folder}/"):
        check_target(tmp_path / folder / "handout", tmp_path)
    check_target(tmp_path / "elsewhere", tmp_path)  # a folder outside them is fine


@pytest.mark.parametrize("length", range(1, 13))
def test_the_end_of_a_run_is_its_last_quarter_and_never_less_than_one_value(length):
    """signals' 'end of the run': the last max(1, floor(n / 4)) finite values (x[-0:] would be the whole run)."""
    from pgcourse.course.debugging.signals import _tail
    x = np.arange(length, dtype=float)
    assert list(_tail(x)) == list(x[length - max(1, length // 4):])


def test_a_late_penalty_is_at_most_the_points_and_the_grace_period_is_not_late():
    """Pure grading arithmetic, in the unit lane: 10% a day for 15 days takes all 10 points, not 15; a submission
    inside the grace period is not late."""
    from datetime import datetime, timedelta, timezone
    from pgcourse.classroom.grading.assignment import LatePolicy
    deadline = datetime(2026, 1, 1, tzinfo=timezone.utc)
    policy = LatePolicy(deadline=deadline, amount=10.0, percent=True, unit_s=86400.0, grace_s=900.0)
    assert policy.penalty(15 * 86400.0, max_points=10.0) == (10.0, 15)
    assert policy.lateness(deadline + timedelta(minutes=11)) == 0.0
    assert policy.lateness(deadline + timedelta(minutes=16)) == 60.0


# -- audit 4's remaining survivors: RL and course ---------------------------------------------------------------------
def test_trpo_expected_improvement_is_the_linear_prediction_of_the_full_step():
    """TRPO's ``expected_improvement`` is g . (beta s), the first-order prediction for the full step beta s, with
    beta = sqrt(2 delta / s^T F s): it grows as sqrt(max_kl) (the same rollout, g and s), and for a small trust region
    the real surrogate improvement of the accepted full step matches it."""
    settings = dict(num_envs=4, n_steps=64, total_steps=256, progress=False, device="cpu")
    small = first_update(pg.train("trpo", "CartPole-v1", seed=3, max_kl=1e-4, **settings))
    large = first_update(pg.train("trpo", "CartPole-v1", seed=3, max_kl=4e-4, **settings))
    assert small["actor_grad_norm"] == large["actor_grad_norm"]  # the same g (and so the same s)
    assert large["expected_improvement"] == pytest.approx(2.0 * small["expected_improvement"], rel=1e-5)
    for update in (small, large):
        assert update["step_fraction"] == 1.0
        assert update["surrogate_improvement"] == pytest.approx(update["expected_improvement"], rel=1e-2)


@pytest.mark.parametrize("scores", [[1, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 5], [0, 0, 1, 1, 1, 1, 2, 7], [2, 3, 3, 3, 9, 9]])
def test_a_bca_interval_reflects_with_the_data_even_when_the_bootstrap_ties_the_point(scores):
    """BCa's bias correction z0 counts bootstrap values tied with the point as half below (the mid-rank), so it is
    the same statement about x and about 2c - x: with the same resamples, reflecting the data reflects the interval
    (the median of integer data ties the point in many resamples)."""
    from pgcourse.course import stats
    x = np.asarray(scores, dtype=float)
    centre = 3.0
    here = stats.stratified_bootstrap(x, "median", reps=2000, seed=0, method="bca")
    mirrored = stats.stratified_bootstrap(2 * centre - x, "median", reps=2000, seed=0, method="bca")
    assert mirrored.point == pytest.approx(2 * centre - here.point)
    assert mirrored.low == pytest.approx(2 * centre - here.high)
    assert mirrored.high == pytest.approx(2 * centre - here.low)


def _doubling_exercise(mistakes, cases):
    from pgcourse.course.checks.harness import Case, Exercise
    return Exercise(name="double", reference=lambda x: 2 * x, concept="twice its input",
                    make_cases=lambda: [Case(description, {"x": x.clone()}) for description, x in cases],
                    mistakes=mistakes)


def test_a_known_mistake_is_named_only_when_it_matches_on_some_real_value():
    """A NaN alone is no signature: an answer that is NaN everywhere is not diagnosed as a known mistake whose replay
    is NaN everywhere too, while an answer reproducing the mistake's real values (NaN where it is NaN) is."""
    from pgcourse.course.checks.harness import Mistake, _make_check
    cases = [("negative", torch.tensor([-1.0, -4.0])), ("positive", torch.tensor([1.0, 2.0, 5.0]))]
    all_nan = Mistake("your output is nan everywhere", lambda x: torch.full_like(x, math.nan))
    with pytest.raises(AssertionError) as failure:
        _make_check(_doubling_exercise([all_nan], cases))(lambda x: torch.full_like(x, math.nan))
    assert "nan everywhere" not in str(failure.value) and "No known mistake" in str(failure.value)

    took_the_log = Mistake("you took the log", torch.log)  # NaN on the smallest (failing) case, real on the other
    with pytest.raises(AssertionError, match="Probable mistake: you took the log"):
        _make_check(_doubling_exercise([took_the_log], cases))(torch.log)


@pytest.mark.parametrize("routing", ["roll", "swap"])
def test_the_gradient_check_compares_the_gradient_element_by_element(routing):
    """Right values whose gradient flows into the wrong elements (a permutation of the dependence: the gradient of
    the sum is unchanged) fail the gradient check; the reference's own gradient passes."""
    def reference(logits, actions):
        return torch.log_softmax(logits, -1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def routed(logits, actions):
        right = reference(logits, actions)
        if routing == "roll":
            moved = right.roll(1, dims=0)
        else:
            order = torch.arange(right.shape[0])
            order[:2] = order[:2].flip(0)
            moved = right[order]
        return right.detach() + moved - moved.detach()

    pg.checks.check_action_log_probs(reference)
    with pytest.raises(AssertionError, match="the gradient with respect to `logits` is not the expected one"):
        pg.checks.check_action_log_probs(routed)


@pytest.mark.parametrize("change", [dict(algo="a2c"), dict(env_id="Acrobot-v1"), dict(seed=1),
                                    dict(overrides={"clip_eps": 0.2, "gamma": 0.98}),
                                    dict(overrides={"clip_eps": 0.1, "gamma": 0.99}),
                                    dict(overrides={"clip_eps": 0.1}),
                                    dict(overrides={"clip_eps": 0.1, "gamma": 0.98, "lr": 1e-3})])
def test_a_trials_cache_key_changes_with_every_field_that_changes_the_result(change):
    """The content digest (the trial's cache key) covers all that is run: a different algo, env_id, seed or any
    override gives a different key; the label (the arm's name) alone does not."""
    from dataclasses import replace
    from pgcourse.course.sweeps.spec import TrialSpec
    base = TrialSpec("ppo", "CartPole-v1", 0, {"clip_eps": 0.1, "gamma": 0.98}, label="arm")
    assert replace(base, **change).content_digest != base.content_digest
    assert replace(base, **change, label="other").content_digest == replace(base, **change).content_digest
    assert replace(base, label="renamed").content_digest == base.content_digest


# -- 7. the survivors of the fifth audit ----------------------------------------------------------------------------
def test_the_logged_clip_fraction_counts_the_ratio_pi_new_over_pi_old_of_the_minibatch():
    """The ratio whose share outside [1 - eps, 1 + eps] is logged is pi_new / pi_old = exp(log pi_new - log pi_old)
    of the very minibatch the KL is measured on (not its inverse: |1/r - 1| and |r - 1| count different rows)."""
    seen: list[tuple[str, torch.Tensor]] = []

    def recording_kl(old_log_probs, new_log_probs):
        seen.append(("kl", (new_log_probs - old_log_probs).detach().exp()))
        return pg.diagnostics.approx_kl(old_log_probs, new_log_probs)

    def recording_clip_fraction(ratio, clip_eps):
        seen.append(("clip", ratio.detach().clone()))
        return pg.diagnostics.clip_fraction(ratio, clip_eps)

    pg.train("ppo", "CartPole-v1", seed=0, approx_kl=recording_kl, clip_fraction=recording_clip_fraction,
             **{**ONE_STEP_PPO, "update_epochs": 3, "minibatch_size": 32, "lr": 3e-2})
    pairs = [(seen[k][1], seen[k + 1][1]) for k in range(len(seen) - 1) if seen[k][0] == "kl" and seen[k + 1][0] == "clip"]
    assert len(pairs) >= 8
    moved = [ratio for ratio, _ in pairs if (ratio - 1).abs().max() > 1e-3]
    assert moved  # later minibatches: the policy has moved, so r != 1/r
    for expected, counted in pairs:
        torch.testing.assert_close(counted, expected, rtol=1e-6, atol=1e-7)


def test_target_kl_stops_the_epochs_on_the_epochs_mean_minibatch_kl():
    """The early stop compares the mean of the epoch's minibatch KLs with target_kl (not the last minibatch's, nor
    the largest): minibatch KLs scripted as [0, 0, 0, 1] per epoch (mean 0.25) never stop at target 0.5, and
    [1, 1, 0, 0] (mean 0.5, not above it) never do either; [0, 0, 1, 1] (mean 0.5) at 0.4 stops after one epoch."""
    def scripted(per_epoch):
        calls = {"n": 0}

        def approx_kl(old_log_probs, new_log_probs):
            if old_log_probs.shape[0] > 40:  # the update's own KL over the whole batch, after the epochs
                return pg.diagnostics.approx_kl(old_log_probs, new_log_probs)
            value = per_epoch[calls["n"] % len(per_epoch)]
            calls["n"] += 1
            return torch.tensor(value, dtype=torch.float32)
        return approx_kl

    settings = {**{k: v for k, v in ONE_STEP_PPO.items() if k != "minibatch_size"}, "update_epochs": 3,
                "num_minibatches": 4, "total_steps": 128, "n_steps": 32}
    for per_epoch, target, epochs in (([0.0, 0.0, 0.0, 1.0], 0.5, 3), ([1.0, 1.0, 0.0, 0.0], 0.5, 3),
                                      ([0.0, 0.0, 1.0, 1.0], 0.4, 1)):
        run = pg.train("ppo", "CartPole-v1", seed=0, target_kl=target, approx_kl=scripted(per_epoch), **settings)
        assert set(run.history.updates["epochs_run"].astype(int).tolist()) == {epochs}, (per_epoch, target)


@pytest.mark.parametrize("window", [1, 3, 5, 50])
def test_the_moving_average_is_the_mean_of_the_values_it_covers(window):
    """Entry i is the mean of values[max(0, i - window + 1) : i + 1]: at the start, where fewer than ``window``
    values exist, the mean of those (not their sum over ``window``)."""
    from pgcourse.rl.history import moving_average
    values = np.random.default_rng(0).normal(size=12) * 10 + 5
    expected = [values[max(0, i - window + 1): i + 1].mean() for i in range(len(values))]
    np.testing.assert_allclose(moving_average(values, window), expected, rtol=1e-12)


@pytest.mark.parametrize("kind, answer", [("number", True), ("number", np.bool_(False)), ("numbers", [1.0, True])])
def test_a_bool_is_not_a_number_answer(kind, answer):
    """A check that expects a number (or a list of numbers) refuses a bool, though Python counts bool as an int: a
    comparison's result returned by mistake is named as the wrong type, not scored as 1 or 0."""
    from pgcourse.course.checks.harness import _as_output
    value, problem = _as_output(kind, answer)
    assert value is None and problem is not None and "bool" in problem
    assert _as_output(kind, 1.0 if kind == "number" else [1.0, 2.0])[1] is None


# -- the fifth audit's last course survivors: a sweep's summary and its steps to threshold ----------------------------
def _sweep(seeds_per_arm: dict[str, int], returns_of=lambda arm, seed: [float(seed)] * 3):
    """A finished sweep built from records alone (no training): arm label -> seeds, each seed's episode returns."""
    from pgcourse.course.sweeps.results import SweepResults
    from pgcourse.course.sweeps.spec import TrialSpec
    specs, records = [], []
    for label, seeds in seeds_per_arm.items():
        for seed in range(seeds):
            spec = TrialSpec("ppo", "CartPole-v1", seed, {"clip_eps": 0.1 + len(specs)} if label != "default" else {},
                             label)
            returns = list(returns_of(label, seed))
            specs.append(spec)
            records.append({**spec.to_dict(), "trial_id": spec.trial_id, "arm": spec.arm, "status": "ok",
                            "history": {"episodes": {"return": returns,
                                                     "env_step": [100.0 * (i + 1) for i in range(len(returns))]}}})
    return SweepResults.from_records(records, specs)


def test_an_arm_with_exactly_min_seeds_seeds_gets_intervals_and_one_fewer_gets_its_values():
    """summary() prints intervals for an arm with ``min_seeds`` finished seeds or more, and the seeds' own values
    for an arm with fewer: the floor is inclusive."""
    from pgcourse.course.sweeps.results import INTERVAL_MIN_SEEDS
    lines = _sweep({"exactly": INTERVAL_MIN_SEEDS, "fewer": INTERVAL_MIN_SEEDS - 1}).summary(reps=200).splitlines()
    row = {name: next(line for line in lines if line.startswith(name)) for name in ("exactly", "fewer")}
    assert "per seed" not in row["exactly"] and "[" in row["exactly"], row["exactly"]
    assert "per seed" in row["fewer"], row["fewer"]


def test_steps_to_threshold_per_arm_reads_the_moving_average_not_the_raw_returns():
    """An arm's steps to threshold is where the ``window``-episode moving average of the return first reaches the
    threshold: one lucky episode (return 10 among 0s, env step 300) reaches 5 in the raw returns but not in a moving
    average over 4 episodes, which first reaches 5 when two episodes of 10 join two of 0 (episode 8, env step 800)."""
    returns = [0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 10.0, 10.0, 10.0, 10.0]  # episode i ends at env step 100 (i + 1)
    sweep = _sweep({"default": 3}, returns_of=lambda arm, seed: returns)
    assert sweep.steps_to_threshold(5.0, window=1)["ppo CartPole-v1 default"].median.point == 300.0
    smoothed = sweep.steps_to_threshold(5.0, window=4)["ppo CartPole-v1 default"]
    assert smoothed.median.point == 800.0 and smoothed.reached == 3, smoothed


# -- the sixth audit's RL and course survivors ---------------------------------------------------------------------
def test_every_setting_the_batched_loops_read_from_agent_0_is_refused_per_agent():
    """The batched loops read some settings from the first agent's config alone (``first.<name>``): each of them is a
    shared setting, and giving it per agent is refused with an error that names it (not trained with agent 0's)."""
    import inspect
    import re

    from pgcourse.rl import many
    from pgcourse.rl.algorithms import a2c, ppo, stacked
    read = set()
    for module in (ppo, a2c):
        read |= set(re.findall(r"\bfirst\.([a-z_]+)\b", inspect.getsource(module)))
    read |= set(re.findall(r"\bfirst\.config\.([a-z_]+)\b", inspect.getsource(stacked)))  # the stack's own reads
    read.discard("config")
    assert {"update_epochs", "n_steps", "adam_eps"} <= read and read <= set(many.SHARED_SETTINGS), read
    values = {"update_epochs": [1, 4], "n_steps": [32, 64], "normalize_advantages": [True, False],
              "normalize_per_minibatch": [False, True], "adam_eps": [1e-5, 0.1], "env_id": ["CartPole-v1", "Acrobot-v1"],
              "num_envs": [4, 8]}
    for name in sorted(read):
        with pytest.raises(pg.ConfigError, match=name):
            pg.train_many("ppo", "CartPole-v1", seeds=[0, 1], total_steps=256, progress=False,
                          per_agent={name: values[name]})


def test_a_grid_arm_without_a_label_is_named_by_its_settings_alone():
    """A grid list's arm that names its algorithm or env but no label is labelled by its other settings only
    ("lr=0.01"), and one that names nothing else is "default"."""
    from pgcourse.course.sweeps.spec import _arms
    arms = _arms([{"algo": "a2c", "env_id": "Acrobot-v1", "lr": 0.01}, {"algo": "ppo"}])
    assert [arm["label"] for arm in arms] == ["lr=0.01", "default"]


# -- the seventh audit's RL and course survivors -------------------------------------------------------------------
A2C_TWO_UPDATES = dict(num_envs=4, n_steps=32, total_steps=256, progress=False, device="cpu")


def test_a2c_value_rel_error_scores_the_critic_its_explained_variance_scores():
    """A2C takes one step per batch, so its critic columns (``explained_variance``, ``value_rel_error``) score the
    critic it trained with, before that step (issue 45, seventh audit #6): the first update's are the same whatever
    the critic's learning rate (the same rollout and critic), while ``explained_variance_after`` (the critic after
    its step) is not."""
    slow = first_update(pg.train("a2c", "CartPole-v1", seed=3, critic_lr=1e-4, **A2C_TWO_UPDATES))
    fast = first_update(pg.train("a2c", "CartPole-v1", seed=3, critic_lr=1e-1, **A2C_TWO_UPDATES))
    assert slow["explained_variance"] == fast["explained_variance"]
    assert slow["value_rel_error"] == fast["value_rel_error"]
    assert slow["explained_variance_after"] != fast["explained_variance_after"]


@pytest.mark.parametrize("holder", [0, 1])
def test_a_trap_the_batched_loop_cannot_run_is_refused_whichever_agent_has_it(holder):
    """``log_prob_not_summed`` (a [B, B] broadcast over one agent's rows) cannot be trained in a batch of agents: it
    is refused when any agent has it, the first or a later one (issue 45, seventh audit #12)."""
    from pgcourse.rl.many import UNBATCHED_TRAPS
    traps = [(), ()]
    traps[holder] = tuple(UNBATCHED_TRAPS)
    with pytest.raises(pg.ConfigError, match="log_prob_not_summed"):
        pg.train_many("ppo", "Pendulum-v1", seeds=[0, 1], total_steps=256, progress=False,
                      per_agent={"traps": traps})


def test_runs_that_share_exactly_one_x_get_a_one_point_grid():
    """The default grid spans where every run is defined, from the latest first x to the earliest last x, ends
    included: runs that meet at one x share that one point, and each run's curve there is its value at it; only runs
    that share no x are refused (issue 45, seventh audit #14)."""
    from pgcourse.course.stats import curves_to_grid
    grid, curves = curves_to_grid([[0.0, 1.0, 2.0], [2.0, 3.0, 4.0]], [[5.0, 6.0, 7.0], [1.0, 2.0, 3.0]],
                                  num_points=3)
    assert np.all(grid == 2.0) and curves.tolist() == [[7.0] * 3, [1.0] * 3]
    with pytest.raises(ValueError, match="share no x range"):
        curves_to_grid([[0.0, 1.0], [1.5, 3.0]], [[5.0, 6.0], [1.0, 2.0]])


def _float64_doubling(reference):
    from pgcourse.course.checks.harness import Case, Exercise
    return Exercise(name="double", reference=reference, concept="twice its input",
                    make_cases=lambda: [Case("float64", {"x": torch.tensor([0.1, 0.3, 0.7], dtype=torch.float64)})])


def float32_double(x):
    """Twice ``x`` computed in float32 through a larger number: right to float32 rounding (about 1e-6 here), far
    from it in float64 terms."""
    return (x.float() + 10.0) * 2.0 - 20.0


def test_a_float32_output_loosens_the_tolerance_even_from_float64_inputs():
    """The comparison is at float32's tolerance when float32 is anywhere in the call: in the inputs or in either
    output, the reference's or the learner's (issue 45, seventh audit #15). A reference that works in float32 from
    float64 inputs accepts an answer that differs from it by float32 rounding; a float32 answer to a float64
    reference is told its dtype, not that its values are wrong."""
    from pgcourse.course.checks.harness import _make_check
    x = torch.tensor([0.1, 0.3, 0.7], dtype=torch.float64)
    assert not torch.allclose(float32_double(x).double(), 2 * x, rtol=1e-6, atol=1e-8)  # float64 would refuse it
    _make_check(_float64_doubling(lambda x: 2.0 * x.float()))(float32_double)
    with pytest.raises(AssertionError) as failure:
        _make_check(_float64_doubling(lambda x: 2.0 * x))(float32_double)
    assert "dtype torch.float32, expected torch.float64" in str(failure.value)
    assert "wrong result" not in str(failure.value)


def test_a_gradient_is_broken_only_where_the_references_is_finite():
    """A non-finite learner gradient is a failure where the reference's gradient is finite; where the reference's
    is infinite too (sqrt at 0), matching it is right (issue 45, seventh audit #16)."""
    from pgcourse.course.checks.harness import Case, Exercise, _make_check
    exercise = Exercise(name="root", reference=torch.sqrt, concept="the square root", grad_args=("x",),
                        make_cases=lambda: [Case("with 0", {"x": torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64,
                                                                             requires_grad=True)})])
    check = _make_check(exercise)
    check(torch.sqrt)  # infinite gradient at 0, like the reference's
    with pytest.raises(AssertionError, match="nan or infinite in 1 entries"):
        check(lambda x: x.sqrt() + 0.0 * (x - 1.0).abs().sqrt())  # the same values, a nan gradient at 1


def test_the_gae_checks_random_rollouts_raise_both_flags_on_some_steps():
    """The random rollouts of the GAE checks store the flags as ``collect_rollout`` does: terminated, truncated, and
    now and then both on one step (gymnasium raises both when the terminal state comes on the time-limit step), so
    the two are not mutually exclusive (issue 45, seventh audit #18)."""
    from pgcourse.course.checks.ch03_a2c_gae import _gae_flags
    terminated, truncated = _gae_flags(torch.Generator().manual_seed(0), 200, 8, torch.float32)
    both = (terminated * truncated).mean().item()
    assert 0.005 < both < 0.05, both
    assert ((terminated - truncated) == 1).any() and ((truncated - terminated) == 1).any()


def test_the_grad_norm_alarm_leaves_a_kl_of_exactly_zero_to_the_frozen_ratio_alarm():
    """The grad-norm signal's "the policy is not moving" is a KL above 0 and below 1e-3; a KL of exactly 0 is the
    frozen-ratio signal's case (signal 6), raised there alone, not twice (issue 45, seventh audit #19)."""
    from test_diagnose import synthetic_run

    from pgcourse.course.debugging.signals import diagnose

    def alarms(approx_kl):
        run = synthetic_run(approx_kl=approx_kl, clip_fraction=0.0, actor_grad_norm=0.01, critic_grad_norm=1.0)
        return {f.signal for f in diagnose(run) if f.severity == "alarm"}

    assert alarms(0.0) == {"KL / clip fraction"}
    assert "grad norms" in alarms(5e-4)


@pytest.mark.parametrize("value, shown", [(math.inf, "inf"), (-math.inf, "-inf"), (math.nan, "nan"), (3.0, "3"),
                                          (2.5, "2.5")])
def test_a_claims_evidence_that_is_inf_or_nan_is_shown_not_a_crash(value, shown, capsys):
    """A claim's evidence is shown as a whole number when it is one, else with 4 significant digits; inf and nan are
    not whole numbers and show as themselves (issue 45, seventh audit #21)."""
    from pgcourse.course.claims import claim
    claim("the measure is what it is", True, measure=value)
    assert f"(measure = {shown})" in capsys.readouterr().out


# -- the eighth audit's RL and course survivors --------------------------------------------------------------------
def test_a2c_logs_the_entropy_of_each_agents_own_rows_not_of_its_padding(monkeypatch):
    """In a batch of agents each agent's row of the batch is its valid transitions, then padding up to ``T * N``;
    A2C's logged ``entropy`` is the mean policy entropy over the agent's own rows, the entropies the loss used, not
    over the padded row (issue 45, eighth audit #6). CartPole's autoreset steps make the agents' counts differ,
    so every agent has padding."""
    from pgcourse.rl.algorithms import a2c
    from pgcourse.rl.algorithms.stacked import AgentStack
    sizes, entropies = [], []
    real_batch, real_entropy = a2c.agents_batch, AgentStack.log_probs_and_entropy

    def batch(*args):
        found = real_batch(*args)
        sizes.append(list(found[1].sizes))
        return found

    def log_probs_and_entropy(self, obs, actions):
        log_probs, entropy = real_entropy(self, obs, actions)
        entropies.append(entropy.detach().clone())  # [A, B]
        return log_probs, entropy
    monkeypatch.setattr(a2c, "agents_batch", batch)
    monkeypatch.setattr(AgentStack, "log_probs_and_entropy", log_probs_and_entropy)
    runs = pg.train_many("a2c", "CartPole-v1", seeds=[0, 1], **A2C_TWO_UPDATES)
    assert len(entropies) == len(sizes) == 3 and all(size < 128 for update in sizes for size in update), sizes
    for a, run in enumerate(runs):
        own = [float(entropy[a, :size[a]].mean()) for entropy, size in zip(entropies, sizes)]
        assert [float(v) for v in run.history.updates["entropy"]] == own, a


def test_conjugate_gradients_residual_norm_is_the_norm_of_b_minus_a_x():
    """``CGResult.residual_norm`` is :math:`\\|b - A x\\|` of the ``x`` it returns (the norm, not its square, which
    the loop tracks), after every number of iterations (issue 45, eighth audit #7)."""
    from pgcourse.rl.trust_region import conjugate_gradient
    matrix = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    for iterations in (1, 2):
        found = conjugate_gradient(lambda v: matrix @ v, b, iterations=iterations, residual_tol=0.0)
        norm = float(torch.linalg.vector_norm(b - matrix @ found.x))
        assert found.iterations == iterations and norm > 0.05 and abs(norm - 1.0) > 0.05, norm
        assert found.residual_norm == pytest.approx(norm, rel=1e-9), iterations


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("where", ["input", "output"])
def test_every_floating_dtype_below_float64_loosens_the_tolerance(dtype, where):
    """The checks compare at float64's tolerance only when every floating tensor of the call is float64: a float32,
    float16 or bfloat16 input or output (each rounds coarser than float64) gives float32's tolerance (issue 45,
    eighth audit #15); integer tensors do not count."""
    from pgcourse.course.checks.harness import Case, _tolerance
    tight, loose = (1e-6, 1e-8), (1e-4, 1e-5)
    float64, counts = torch.zeros(3, dtype=torch.float64), torch.arange(3)
    assert _tolerance(Case("all float64", {"x": float64, "n": counts}), float64, counts) == tight
    other = torch.zeros(3, dtype=dtype)
    case = Case("mixed", {"x": other if where == "input" else float64, "n": counts})
    assert _tolerance(case, *((float64, other) if where == "output" else (float64,))) == loose


def test_intervals_leave_out_an_arm_with_one_finished_seed():
    """``intervals()`` estimates every arm with at least 2 finished seeds and leaves out an arm with one (a
    bootstrap of one value is refused): a sweep whose arms have one seed each has no intervals, not an error
    (issue 45, eighth audit #18)."""
    two_and_one = _sweep({"default": 2, "one": 1}).intervals(reps=50)
    assert list(two_and_one) == ["ppo CartPole-v1 default"], list(two_and_one)
    assert _sweep({"default": 1, "one": 1}).intervals(reps=50) == {}


def test_a_trial_record_is_read_only_as_the_trial_it_names(tmp_path):
    """A trial record holds its own ``trial_id``: a record found in another trial's file (copied or renamed) is not
    that trial's record, and reading it is an error that names the file, never the other trial's result (issue 45,
    eighth audit #19)."""
    import shutil

    from pgcourse.course.sweeps.store import ResultsFolder, SweepResultsError
    from pgcourse.course.sweeps.trial import TRIAL_FORMAT
    folder = ResultsFolder(tmp_path)
    folder.trials_dir.mkdir()
    path = folder.write({"format": TRIAL_FORMAT, "trial_id": "aaaa", "status": "failed", "error": "boom"})
    assert folder.read("aaaa").trial_id == "aaaa"
    shutil.copy(path, folder.trials_dir / "bbbb.json")
    with pytest.raises(SweepResultsError, match="bbbb.json is not the record of trial bbbb"):
        folder.read("bbbb")


# -- the tenth audit's unit-lane survivors (chosen at 3da9e14) ------------------------------------------------------
@pytest.mark.parametrize("retries", [0, 1, 2])
def test_a_trial_that_always_fails_is_run_exactly_retries_plus_one_times(retries):
    """``retries``: times a failed trial is run again before its failed record is kept, so ``retries + 1`` runs in
    all (not ``retries``), and the record says so."""
    from pgcourse.course.sweeps.driver import run_specs
    from pgcourse.course.sweeps.spec import TrialSpec

    class AlwaysFails:  # a backend whose every trial fails at once
        capacity, submitted = 1, []

        def __init__(self):
            self.pending = []

        @property
        def in_flight(self):
            return len(self.pending)

        def submit(self, spec):
            self.submitted.append(spec.trial_id)
            self.pending.append(spec)

        def next_result(self):
            spec = self.pending.pop(0)
            return spec, {**spec.to_dict(), "trial_id": spec.trial_id, "status": "failed", "error": "RuntimeError: no"}

        def close(self, interrupted=False):
            pass

    backend = AlwaysFails()
    backend.submitted = []
    outcome = run_specs([TrialSpec("ppo", "CartPole-v1", 0, {}, "default")], None, backend, retries, progress=False)
    assert len(backend.submitted) == retries + 1 and outcome["failed"] == 1
    assert [record["attempts"] for record in outcome["records"]] == [retries + 1]


def test_the_discounting_widget_draws_gamma_one():
    """``plot_discounting(gamma)`` takes 0 < gamma <= 1: gamma = 1 (no discounting, an infinite horizon) is drawn,
    gamma = 0 and 1.01 are refused."""
    from pgcourse.course.views.widgets import plot_discounting
    import matplotlib.pyplot as plt
    plt.close(plot_discounting(1.0))
    for bad in (0.0, 1.01):
        with pytest.raises(ValueError, match="0 < gamma <= 1"):
            plot_discounting(bad)


@pytest.mark.parametrize("rows, shown_more", [(11, None), (12, None), (13, "… 1 more")])
def test_a_check_message_shows_up_to_max_items_rows_and_counts_only_the_rest(rows, shown_more):
    """A tensor in a check's message shows its first ``max_items`` (12) rows; '… k more' appears only when rows are
    left out (13 rows: 1 more), never for exactly 12."""
    from pgcourse.course.checks.harness import _fmt_nested
    text = _fmt_nested(torch.arange(rows, dtype=torch.float32))
    assert ("more" in text) == (shown_more is not None)
    if shown_more:
        assert text.endswith(shown_more + "]")


def test_the_shifted_values_mistake_reads_the_last_rows_next_value_from_the_last_row():
    """The known mistake 'next value = the value one row down' (lesson 03) is values[t + 1] for t < T - 1 and, at the
    last step, next_values[T - 1] (the last row's own next value, not the first row's)."""
    from pgcourse.course.checks.ch03_a2c_gae import _shifted_values
    values = torch.tensor([[1.0], [2.0], [3.0]])  # [T=3, N=1]
    next_values = torch.tensor([[10.0], [20.0], [30.0]])
    assert _shifted_values(values, next_values).tolist() == [[2.0], [3.0], [30.0]]


@pytest.mark.parametrize("solved, total, failures, note", [
    (2, 5, 2, "1 of 3 seeds"),  # 3 ran (2 failed), 2 solved: 1 of the 3 that ran did not
    (3, 5, 2, ""),  # every seed that ran solved: nothing to explain
    (1, 4, 0, "3 of 4 seeds"),
])
def test_a_quick_rows_note_counts_only_the_seeds_that_ran(solved, total, failures, note):
    """``quick_case_note``: of the seeds that ran (``seeds_total - failures``; a failed seed has no result), how many
    did not solve within the quick budget; no note when every seed that ran solved."""
    from pgcourse.bench.report import quick_case_note
    from pgcourse.bench.results import CaseSummary
    summary = CaseSummary("ppo", "CartPole-v1", "10k steps", solved, total, None, None, None, None, None, None, None,
                          failures=failures)
    text = quick_case_note(summary)
    assert (text == "") if note == "" else text.startswith(note)


# -- definitions the eleventh audit found unstated (plotting's grid and mean band, the evaluation schedule, the old
#    speed ratio's guard) ----------------------------------------------------------------------------------------
def _episodes_run(returns, env_steps, algo="ppo"):
    """A stand-in run holding only finished episodes: ``returns[i]`` ended at ``env_steps[i]``."""
    from types import SimpleNamespace
    from pgcourse.rl.history import History
    history = History()
    for ret, step in zip(returns, env_steps):
        history.episodes.append(**{"return": float(ret), "length": 1.0, "env_step": float(step), "wall_time": 0.0})
    return SimpleNamespace(history=history, config=SimpleNamespace(algo=algo))


def test_a_curve_on_a_grid_holds_each_episodes_value_from_the_step_it_ended():
    """``curves_on_grid``: at grid point x, the moving average of the episodes ended at or before x (a step that equals
    an episode's end already holds that episode); NaN before the first end and after the last."""
    from pgcourse.course.views.plotting import curves_on_grid
    run = _episodes_run([1.0, 2.0, 3.0], [10, 20, 30])
    curve = curves_on_grid([run], np.array([5.0, 10.0, 15.0, 20.0, 30.0, 31.0]), window=1)[0]
    np.testing.assert_array_equal(curve, [np.nan, 1.0, 1.0, 2.0, 3.0, np.nan])


def test_the_mean_band_is_the_mean_over_seeds_at_each_step_with_their_range():
    """``plot_mean_band``: the line is the mean over runs (seeds) at each grid step, the minmax band their range."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pgcourse.course.views.plotting import plot_mean_band
    runs = [_episodes_run([0.0] * 5, [10, 20, 30, 40, 50]), _episodes_run([10.0] * 5, [10, 20, 30, 40, 50])]
    ax = plot_mean_band(runs, window=1, points=9)
    xs, ys = ax.lines[0].get_data()
    inside = np.asarray(xs) >= 10
    np.testing.assert_allclose(np.asarray(ys)[inside], 5.0)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == 0.0 and band.max() == 10.0
    plt.close(ax.figure)


def test_an_evaluation_comes_once_per_mark_at_the_first_update_at_or_past_it():
    """Every ``eval_every`` env steps: at the first update whose env_step reaches the next mark, then the mark moves
    past that env_step; an update that lands exactly on a mark moves the mark on, so the next update does not
    evaluate again unless it reaches the following mark."""
    config = make_config("ppo", "CartPole-v1", "discrete", seed=0, device="cpu", progress=False, num_envs=4, n_steps=4,
                         total_steps=160, eval_every=16, eval_episodes=1, update_epochs=1, minibatch_size=16)
    run = train_ppo(config)
    update_steps = run.history.updates["env_step"]
    assert 16 in update_steps and 32 in update_steps  # the first two updates land exactly on marks
    expected, mark = [], 16
    for step in update_steps:
        if step >= mark:
            expected.append(step)
            while mark <= step:
                mark += 16
    assert list(run.history.evals["env_step"]) == expected, (list(update_steps), list(run.history.evals["env_step"]))


def test_the_old_speed_ratio_is_not_given_when_sb3_took_no_time():
    """``speed_ratio`` (the old rule, pgcourse's median seconds to solve over SB3's median whole-budget seconds) is
    None, not a division by zero, when SB3's median is 0 (or missing)."""
    from types import SimpleNamespace
    from pgcourse import bench
    from pgcourse.bench.results import SB3_ENV_ID, speed_ratio
    ppo = SimpleNamespace(algo="ppo", env_id=SB3_ENV_ID, solved=True, solved_wall_seconds=2.0)
    for sb3_seconds, expected in ((0.0, None), (4.0, 0.5)):
        report = bench.BenchReport([], [0], "cpu", False, results=[ppo],
                                   sb3_results=[SimpleNamespace(wall_seconds=sb3_seconds)])
        assert speed_ratio(report) == expected


def test_a_leak_is_a_nonzero_gradient_into_a_constant_and_a_zero_one_is_no_leak():
    """The checks' leak rule: gradient flowing into an argument that must stay constant (``leak_hints``) is a leak
    only where it is nonzero. A correct loss whose graph touches the weights but passes them exactly zero gradient
    (w - w cancels) passes; one that lets gradient through is told its missing .detach()."""
    from pgcourse.course import checks

    def cancels(log_probs, weights):
        return -(log_probs * (weights - weights + weights.detach())).mean()

    def leaks(log_probs, weights):
        return -(log_probs * weights).mean()

    checks.check_reinforce_loss(cancels)
    with pytest.raises(AssertionError, match=r"missing \.detach\(\) on the weights"):
        checks.check_reinforce_loss(leaks)


def test_the_progress_bar_shows_the_mean_return_of_the_last_twenty_episodes():
    """With ``progress=True`` the bar's ``ret=`` after each update is the mean raw return of the last 20 finished
    episodes (all of them while fewer than 20 have ended)."""
    config = make_config("ppo", "CartPole-v1", "discrete", seed=0, device="cpu", progress=True, num_envs=4, n_steps=32,
                         total_steps=4 * 32 * 6, update_epochs=1, minibatch_size=64)
    seen = []
    train_ppo(config, on_update=lambda trainer: seen.append(
        (trainer.progress.postfix, trainer.history.episodes["return"].copy())))
    assert seen and any(len(returns) > 20 for _, returns in seen)
    for postfix, returns in seen:
        if len(returns):
            assert postfix == f"ret={returns[-20:].mean():.1f}", (postfix, returns)


@pytest.mark.parametrize("returns, stuck", [(np.full(100, -500.0), True), (np.full(100, 20.0), True),
                                            (np.linspace(-500.0, -80.0, 100), True), (np.linspace(20, 300, 100), False)])
def test_entropy_at_its_maximum_is_stuck_unless_the_return_at_least_doubled_from_max_start_1(returns, stuck):
    """pg.diagnose's "entropy stuck at its maximum" (entropy above 0.97 of log |A|): unless the last tenth's mean
    return is at least twice max(the first tenth's, 1). All-negative returns (Acrobot, Pendulum) never double from
    1, so a policy still uniform there is stuck (twice a negative start would be lower still, and never flagged)."""
    from test_diagnose import synthetic_run

    from pgcourse.course.debugging.signals import diagnose
    findings = diagnose(synthetic_run(entropy=0.99 * math.log(2), returns=returns))
    flagged = [f for f in findings if f.signal == "entropy" and "stuck at its maximum" in f.message]
    assert bool(flagged) == stuck, [str(f) for f in findings if f.signal == "entropy"]


def test_a_sweeps_final_return_is_the_mean_of_each_trials_last_episodes():
    """SweepResults' ``final_return`` of a trial: the mean of its last ``last`` episode returns (all of them when it
    has fewer), not of its first ones; nan for a trial without an episode."""
    from pgcourse.course.sweeps.results import _MEASURES
    from pgcourse.course.sweeps.store import TrialRecord

    def record(returns):
        return TrialRecord({"history": {"episodes": {"return": returns}}})

    assert _MEASURES["final_return"](record([float(r) for r in range(10)]), 3) == 8.0  # returns 0, 1, ..., 9
    assert _MEASURES["final_return"](record([float(r) for r in range(10)]), 20) == 4.5
    assert math.isnan(_MEASURES["final_return"](record([]), 3))


@pytest.mark.parametrize("first, last, verdict", [(-100.0, -105.0, "returns flat"), (-500.0, -460.0, "returns flat"),
                                                  (-100.0, -120.0, "returns went DOWN"), (-500.0, -400.0, "returns improve"),
                                                  (100.0, 95.0, "returns flat"), (100.0, 120.0, "returns improve")])
def test_the_return_trend_margin_is_a_tenth_of_the_starting_returns_size_whatever_its_sign(first, last, verdict):
    """pg.diagnose's return trend, on noiseless returns (the first tenth ``first``, the last tenth ``last``): a change
    counts when it exceeds 10% of |start| (a tenth of a negative start would be a negative margin: -100 to -105 read
    as going down, -500 to -460 as improving)."""
    from test_diagnose import synthetic_run

    from pgcourse.course.debugging.signals import diagnose
    returns = np.array([first] * 50 + [last] * 50)
    diagnosis = diagnose(synthetic_run(returns=returns))
    [trend] = [f for f in [*diagnosis, *diagnosis.healthy] if f.signal == "return trend"]
    assert trend.message.startswith(verdict), trend
