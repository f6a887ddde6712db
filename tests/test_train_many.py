"""pg.train_many: many seeds as one batch through pg.train's own loop with an agent axis, one ordinary Run per seed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.rl.algorithms.stacked import StackedAdam, clip_per_agent, stacked_mlp
from pgcourse.rl.algorithms.optim import LeanAdam
from pgcourse.rl.config import ConfigError
from pgcourse.rl.networks import CategoricalPolicy

SMALL = dict(total_steps=3072, progress=False)  # seven updates of 8 envs x 64 steps


def updates_without_wall_time(run):
    table = run.history.updates
    return {name: np.asarray(table[name]) for name in table if name != "wall_time"}


def assert_runs_identical(run, other):
    ours, theirs = updates_without_wall_time(run), updates_without_wall_time(other)
    assert ours.keys() == theirs.keys()
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name], err_msg=name)
    np.testing.assert_array_equal(np.asarray(run.history.episodes["return"]),
                                  np.asarray(other.history.episodes["return"]))
    for module, other_module in ((run.policy, other.policy), (run.value_net, other.value_net)):
        for (name, p), (_, q) in zip(module.named_parameters(), other_module.named_parameters()):
            assert torch.equal(p, q), name


@pytest.mark.parametrize("env_id, settings", [
    ("CartPole-v1", {}),
    ("CartPole-v1", dict(target_kl=0.005, anneal_lr=True, normalize_per_minibatch=True)),
    ("Pendulum-v1", dict(total_steps=4096)),
])
def test_one_agent_is_pg_train_bit_for_bit(env_id, settings):
    settings = {**SMALL, **settings}
    [run] = pg.train_many("ppo", env_id, seeds=[3], **settings)
    assert_runs_identical(run, pg.train("ppo", env_id, seed=3, **settings))


def test_one_agent_is_pg_train_bit_for_bit_at_any_minibatch_size():
    """A batch of one through the stacked products differed from pg.train in the first update for minibatches of
    86 rows (found by a sweep of shapes; 64 and 128 agreed): one seed is trained by pg.train's loop itself."""
    settings = dict(num_envs=4, n_steps=64, update_epochs=2, minibatch_size=86, total_steps=1024, progress=False)
    [run] = pg.train_many("ppo", "CartPole-v1", seeds=[1], **settings)
    assert_runs_identical(run, pg.train("ppo", "CartPole-v1", seed=1, **settings))


@pytest.mark.slow
def test_changing_one_agents_seed_leaves_the_others_bit_identical():
    settings = dict(total_steps=6144, progress=False, target_kl=0.01)  # early stops differ between agents
    first = pg.train_many("ppo", "CartPole-v1", seeds=[0, 1, 2], **settings)
    second = pg.train_many("ppo", "CartPole-v1", seeds=[0, 5, 2], **settings)
    assert_runs_identical(first[0], second[0])
    assert_runs_identical(first[2], second[2])
    assert not torch.equal(first[1].policy.net[0].weight, second[1].policy.net[0].weight)
    epochs = [np.asarray(run.history.updates["epochs_run"]) for run in first]
    assert any((e < first[0].config.update_epochs).any() for e in epochs)  # KL early stopping was exercised


def test_agents_in_a_batch_follow_pg_train_to_float_rounding():
    """With other agents the stacked products round some rows differently (measured: policy losses within
    1e-7 over the first three updates); the first update's losses and diagnostics agree to 1e-6."""
    runs = pg.train_many("ppo", "CartPole-v1", seeds=[0, 1], **SMALL)
    for seed, run in zip([0, 1], runs):
        ours, theirs = updates_without_wall_time(run), updates_without_wall_time(pg.train("ppo", "CartPole-v1",
                                                                                          seed=seed, **SMALL))
        for name in ("policy_loss", "value_loss", "approx_kl", "update_kl", "explained_variance"):
            np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-5, atol=1e-6, err_msg=name)
        assert run.config.seed == seed


@pytest.mark.slow
@pytest.mark.parametrize("algo, traps", [("ppo", ("truncation_as_termination", "low_critic_lr")),
                                         ("a2c", ("entropy_wrong_sign",)), ("ppo", ("advantage_sign_flipped",))])
def test_traps_that_replace_math_or_settings_are_planted_in_every_agent(algo, traps):
    """Issue 44: train_many refused every trap, so lesson 03's seed checks trained a trap one seed after another. The
    traps that replace a piece of math or write a setting are planted in every agent of the batch: each agent follows
    pg.train with the same trap (to rounding; one agent bit for bit), and its run records the traps and presets."""
    runs = pg.train_many(algo, "CartPole-v1", seeds=[0, 1], traps=traps, **SMALL)
    for seed, run in zip([0, 1], runs):
        alone = pg.train(algo, "CartPole-v1", seed=seed, traps=traps, **SMALL)  # the last: seed 1's, used below
        assert run.config == alone.config and run.config.traps == traps
        ours, theirs = updates_without_wall_time(run), updates_without_wall_time(alone)
        for name in ("policy_loss", "value_loss", "entropy"):
            np.testing.assert_allclose(ours[name][:1], theirs[name][:1], rtol=1e-5, atol=1e-6, err_msg=name)
    one = pg.train_many(algo, "CartPole-v1", seeds=[1], traps=traps, **SMALL)[0]
    for name in ("policy_loss", "value_loss"):
        np.testing.assert_array_equal(one.history.updates[name], alone.history.updates[name], err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("algo, env_id, trap, steps", [
    ("ppo", "CartPole-v1", "joint_grad_clip", 3072), ("a2c", "CartPole-v1", "joint_grad_clip", 3072),
    ("ppo", "CartPole-v1", "stale_old_log_probs", 3072),
    ("ppo", "Pendulum-v1", "clipped_action_log_prob", 4096), ("a2c", "Pendulum-v1", "clipped_action_log_prob", 4096)])
def test_traps_that_replace_a_step_of_the_loop_are_planted_in_every_agent(algo, env_id, trap, steps):
    """Issue 44: train_many refused the traps that replace a step of the loop (the optimiser step, the sampling,
    pi_old), so lesson 06's bugs trained one seed after another. The batched loop takes the same hooks: each agent
    follows pg.train with the trap over the first update (to rounding: later updates drift as two runs that
    round differently do, more on another kernel path), the trap changes the run (the batch did not drop it), and one
    agent is pg.train's run bit for bit."""
    settings = dict(total_steps=steps, progress=False)
    runs = pg.train_many(algo, env_id, seeds=[0, 1], traps=(trap,), **settings)
    correct = pg.train_many(algo, env_id, seeds=[0, 1], **settings)
    for seed, run, fixed in zip([0, 1], runs, correct):
        alone = pg.train(algo, env_id, seed=seed, traps=(trap,), **settings)  # the last: seed 1's, used below
        assert run.config == alone.config and run.config.traps == (trap,)
        ours, theirs = updates_without_wall_time(run), updates_without_wall_time(alone)
        for name in ("policy_loss", "value_loss", "entropy", "actor_grad_norm", "critic_grad_norm"):
            np.testing.assert_allclose(ours[name][:1], theirs[name][:1], rtol=1e-5, atol=1e-6, err_msg=name)
        assert not all(np.array_equal(ours[name], updates_without_wall_time(fixed)[name])
                       for name in ("policy_loss", "value_loss", "approx_kl" if algo == "ppo" else "entropy"))
    one = pg.train_many(algo, env_id, seeds=[1], traps=(trap,), **settings)[0]
    assert_runs_identical(one, alone)


@pytest.mark.slow
@pytest.mark.parametrize("algo, env_id, traps, steps", [
    ("ppo", "CartPole-v1", [(), ("advantage_sign_flipped",), ("joint_grad_clip", "stale_old_log_probs")], 3072),
    ("a2c", "Pendulum-v1", [("clipped_action_log_prob",), (), ("truncation_as_termination", "joint_grad_clip")],
     4096)])
def test_each_agent_can_have_its_own_traps(algo, env_id, traps, steps):
    """Issue 44: per_agent={"traps": [...]} was refused, so a fixed run and a buggy one could not train side by side.
    Each agent's pieces of math and steps are its own (a piece that differs is called agent by agent, each act or
    pi_old step on the agents that take it, each agent clipped as its step says): each follows its pg.train run
    with its own traps over the first update, to rounding."""
    settings = dict(total_steps=steps, progress=False)
    runs = pg.train_many(algo, env_id, seeds=[0, 1, 2], per_agent={"traps": traps}, **settings)
    for seed, run, agent_traps in zip([0, 1, 2], runs, traps):
        alone = pg.train(algo, env_id, seed=seed, traps=agent_traps, **settings)
        assert run.config == alone.config and run.config.traps == agent_traps
        ours, theirs = updates_without_wall_time(run), updates_without_wall_time(alone)
        for name in ("policy_loss", "value_loss", "entropy", "actor_grad_norm", "critic_grad_norm"):
            np.testing.assert_allclose(ours[name][:1], theirs[name][:1], rtol=1e-5, atol=1e-6, err_msg=name)


def test_runs_are_ordinary_runs(tmp_path):
    runs = pg.train_many("ppo", "CartPole-v1", seeds=[4, 5], **SMALL, per_agent={"lr": [1e-3, 3e-4]})
    assert [run.config.lr for run in runs] == [1e-3, 3e-4]
    loaded = pg.load(runs[1].save(tmp_path / "agent"))
    assert loaded.config.seed == 5
    for p, q in zip(runs[1].policy.parameters(), loaded.policy.parameters()):
        assert torch.equal(p, q)
        assert p.untyped_storage().nbytes() == p.numel() * p.element_size()  # not a view of the stack
    assert not torch.equal(runs[0].policy.net[0].weight, runs[1].policy.net[0].weight)


def test_a_resumed_agent_continues_as_pg_train_would():
    [run] = pg.train_many("ppo", "CartPole-v1", seeds=[2], total_steps=2048, progress=False)
    single = pg.train("ppo", "CartPole-v1", seed=2, total_steps=2048, progress=False)
    assert_runs_identical(pg.resume(run, total_steps=3072), pg.resume(single, total_steps=3072))


def test_stacked_parts_are_one_agents_parts_per_slice():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, (64, 64))
    weights = {name.removeprefix("net."): torch.stack([p.detach()] * 3).clone().requires_grad_()
               for name, p in policy.named_parameters()}
    obs, grad = torch.randn(37, 4), torch.randn(37, 2)
    policy(obs).backward(grad)
    stacked_mlp(policy.net, weights, torch.stack([obs] * 3)).backward(torch.stack([grad] * 3))
    for name, p in policy.named_parameters():  # each slice is one agent's gradient: to rounding, not bit for bit
        stacked_grad = weights[name.removeprefix("net.")].grad  # [3, ...], the same rows for every agent
        for agent in range(3):  # (the batched kernels may sum in another order: docstring of stacked_linear)
            assert torch.equal(stacked_grad[agent], stacked_grad[0]), name
            torch.testing.assert_close(stacked_grad[agent], p.grad, rtol=0, atol=1e-6 * float(p.grad.abs().max()),
                                       msg=name)
    # clipping and Adam per agent; agent 1 inactive keeps weights and moments
    params = [p.detach().clone().requires_grad_() for p in policy.parameters()]
    stacked = [torch.stack([p.detach()] * 3).clone().requires_grad_() for p in policy.parameters()]
    lean, adam = LeanAdam(params, lr=1e-3), StackedAdam(stacked, eps=1e-8)
    for p, s in zip(params, stacked):
        p.grad = p.detach() * 3.0
        s.grad = s.detach() * 3.0
    norm = torch.nn.utils.clip_grad_norm_(params, 0.5)
    norms = clip_per_agent(stacked, [0.5, 0.5, None])
    assert torch.equal(norms, torch.stack([norm] * 3))
    before = [s.detach().clone() for s in stacked]
    lean.step()
    adam.step([1e-3, 1e-3, 1e-3], [True, False, True])
    for p, s, old in zip(params, stacked, before):
        assert torch.equal(p, s[0]) and torch.equal(s[1], old[1])
    assert adam.steps == [1, 0, 1]


@pytest.mark.parametrize("call, says", [
    (dict(algo="trpo"), "no batched loop"),
    (dict(per_agent={"env_backend": ["numpy", "torch"]}), "same for every agent"),
    (dict(seeds=[]), "at least one seed"),
    (dict(per_agent={"lr": [1e-3]}), "one value per seed (2)"),
    (dict(per_agent={"n_steps": [64, 128]}), "same for every agent"),
    (dict(lrr=1e-3), "lrr"),
    (dict(seed=3), "an entry of seeds="),
    (dict(per_agent={"traps": [(), ("long_rollout",)]}), "set num_envs to [8, 16]"),
    (dict(env_id="Pendulum-v1", traps=("log_prob_not_summed",)), "[B, B] matrix on one agent's rows"),
])
def test_clear_errors(call, says):
    arguments = dict(algo="ppo", env_id="CartPole-v1", seeds=[0, 1], progress=False) | call
    with pytest.raises(ConfigError) as error:
        pg.train_many(**arguments)
    assert says in str(error.value)


def test_the_reference_pieces_with_a_mask_are_each_agents_own_call():
    """The reference pieces take ``mask=`` (pg.train_many's padded [A, b] rows): agent by agent the values and
    gradients of the call on its own rows; padded rows and an agent with no rows add nothing and get no gradient.
    The math is written once: the same function with and without the agent axis."""
    from pgcourse.rl import losses, returns
    from pgcourse.rl.diagnostics import approx_kl, clip_fraction

    g = torch.Generator().manual_seed(0)
    sizes, rows = [16, 11, 0], 16  # agent 1's rows are padded, agent 2 has none
    clip_eps, ent_coef = [0.1, 0.2, 0.3], [0.0, 0.01, 0.1]

    def data():
        return torch.randn(3, rows, generator=g)

    new_log_probs, entropy, new_values = (data().requires_grad_() for _ in range(3))
    old_log_probs, advantages, returns_, old_values = new_log_probs.detach() + 0.3 * data(), data(), data(), data()
    mask = torch.arange(rows) < torch.tensor(sizes).unsqueeze(1)  # [A, b]
    column = lambda values: torch.tensor(values).unsqueeze(1)  # noqa: E731  [A, 1]
    normalized = returns.normalize(advantages, mask=mask)
    policy = losses.clipped_surrogate_loss(new_log_probs, old_log_probs, normalized, column(clip_eps), mask=mask)
    bonus = losses.entropy_bonus_loss(entropy, column(ent_coef), mask=mask)
    critic = losses.value_loss(new_values, returns_, old_values, column(clip_eps), mask=mask)
    a2c = losses.a2c_policy_loss(new_log_probs, normalized, entropy, column(ent_coef), mask=mask)
    ratio = (new_log_probs - old_log_probs).exp().detach()
    kl, clipped = approx_kl(old_log_probs, new_log_probs, mask=mask), clip_fraction(ratio, column(clip_eps), mask=mask)
    assert all(value.shape == (3, 1) for value in (policy, bonus, critic, a2c, kl, clipped))
    (policy + bonus + critic + a2c).sum().backward()
    for a, size in enumerate(sizes):
        values = [policy[a], bonus[a], critic[a], a2c[a], kl[a], clipped[a]]
        if size == 0:
            assert not any(value.item() for value in values)
            continue
        own = slice(0, size)
        new_lp, ent, v = (t.detach()[a, own].clone().requires_grad_() for t in (new_log_probs, entropy, new_values))
        adv = returns.normalize(advantages[a, own])
        torch.testing.assert_close(normalized[a, own], adv, rtol=1e-5, atol=1e-6)
        reference = [losses.clipped_surrogate_loss(new_lp, old_log_probs[a, own], adv, clip_eps[a]),
                     losses.entropy_bonus_loss(ent, ent_coef[a]),
                     losses.value_loss(v, returns_[a, own], old_values[a, own], clip_eps[a]),
                     losses.a2c_policy_loss(new_lp, adv, ent, ent_coef[a]),
                     approx_kl(old_log_probs[a, own], new_lp), clip_fraction(ratio[a, own], clip_eps[a])]
        sum(reference[:4]).backward()
        for name, ours, theirs in zip(("surrogate", "entropy", "value", "a2c", "kl", "clip"), values, reference):
            torch.testing.assert_close(ours.reshape(()), theirs.detach(), rtol=1e-5, atol=1e-6, msg=name)
        for stacked, single in ((new_log_probs, new_lp), (entropy, ent), (new_values, v)):
            torch.testing.assert_close(stacked.grad[a, own], single.grad, rtol=1e-5, atol=1e-7)
            assert not stacked.grad[a, size:].any()  # padded rows: no gradient
    assert not new_log_probs.grad[2].any()


@pytest.mark.slow
@pytest.mark.parametrize("algo, env_id, settings", [
    ("a2c", "CartPole-v1", dict(total_steps=2048)),
    ("a2c", "Pendulum-v1", dict(total_steps=2048)),
    ("ppo", "CartPole-v1", dict(total_steps=3072, env_backend="torch")),
    ("a2c", "Acrobot-v1", dict(total_steps=2048, env_backend="torch")),
    ("ppo", "Pendulum-v1", dict(total_steps=2048, env_backend="torch")),  # normalisers per agent in the shared env
])
def test_a2c_and_the_torch_envs_go_through_the_same_loop(algo, env_id, settings):
    """One loop for every agent count: A2C and the torch envs train many seeds too; one seed is pg.train bit for
    bit, a changed seed leaves the other agents bit for bit, and an agent follows its pg.train run to float
    rounding over the first update."""
    settings = {**settings, "progress": False, "device": "cpu"}
    [alone] = pg.train_many(algo, env_id, seeds=[1], **settings)
    assert_runs_identical(alone, pg.train(algo, env_id, seed=1, **settings))
    first = pg.train_many(algo, env_id, seeds=[1, 2], **settings)
    second = pg.train_many(algo, env_id, seeds=[1, 7], **settings)
    assert_runs_identical(first[0], second[0])
    ours, theirs = updates_without_wall_time(first[0]), updates_without_wall_time(alone)
    for name in ("policy_loss", "value_loss", "entropy"):
        np.testing.assert_allclose(ours[name][:1], theirs[name][:1], rtol=1e-4, atol=1e-6, err_msg=name)
    assert [run.config.seed for run in first] == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("env_id, settings", [
    ("CartPole-v1", dict(clip_value_loss=True, normalize_per_minibatch=True, target_kl=0.02)),
    ("Pendulum-v1", dict(total_steps=4096, clip_value_loss=True)),
])
def test_a_replaced_piece_runs_agent_by_agent_and_agrees_with_the_agent_axis(env_id, settings):
    """A replaced loss piece is called on each agent's own rows (the agent-axis math is for the reference pieces);
    with the reference's own arithmetic inside it, the two paths agree to float rounding."""
    from pgcourse.rl import losses

    calls = []

    def surrogate(new_log_probs, old_log_probs, advantages, clip_eps):  # the reference, as a learner's piece
        calls.append(new_log_probs.shape)
        return losses.clipped_surrogate_loss(new_log_probs, old_log_probs, advantages, clip_eps)

    settings = {**SMALL, **settings, "per_agent": {"clip_eps": [0.1, 0.3], "ent_coef": [0.0, 0.01]}}
    axis = pg.train_many("ppo", env_id, seeds=[0, 1], **settings)
    each = pg.train_many("ppo", env_id, seeds=[0, 1], clipped_surrogate_loss=surrogate, **settings)
    assert calls and all(len(shape) == 1 for shape in calls)  # one agent's rows [b_a] per call
    for ours, theirs in zip(axis, each):
        first, other = updates_without_wall_time(ours), updates_without_wall_time(theirs)
        for name in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "update_kl"):
            np.testing.assert_allclose(first[name][:3], other[name][:3], rtol=1e-4, atol=1e-6, err_msg=name)


def test_agents_on_torch_envs_step_one_env_of_a_times_n(monkeypatch):
    """Issue 44, item 3: the agents' sub-environments are one torch vector env of A x N (one step a step, not A), each
    agent's block seeded with its seed."""
    from pgcourse.rl.tensor_envs import TensorVectorEnv
    widths: list[int] = []
    step = TensorVectorEnv.step
    monkeypatch.setattr(TensorVectorEnv, "step", lambda self, *args, **kw: widths.append(self.num_envs) or
                        step(self, *args, **kw))
    runs = pg.train_many("ppo", "CartPole-v1", seeds=[0, 1, 2], env_backend="torch", device="cpu", num_envs=4,
                         n_steps=16, minibatch_size=32, total_steps=4 * 16 * 3, progress=False)
    updates = {len(run.history.updates) for run in runs}  # 3 or 4 (reset steps do not count to total_steps)
    assert set(widths) == {12} and len(updates) == 1 and len(widths) == 16 * updates.pop(), (set(widths), len(widths))


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_agents_on_numpy_cartpole_step_one_env_of_a_times_n_and_play_their_own_episodes(algo, monkeypatch):
    """Issue 44, item 3, on the default numpy envs: the agents' CartPole sub-environments are one numpy vector env of
    A x N (one step a step, not A), and each agent's run is the run it has when it steps its own env (the batch without
    the shared env: EachAgentEnv), bit for bit, an agent that stops first included."""
    from pgcourse.rl.algorithms import stacked
    from pgcourse.rl.envs import SeededCartPoleVectorEnv
    settings = dict(device="cpu", num_envs=4, n_steps=32, progress=False, per_agent={"total_steps": [384, 768, 768]},
                    **(dict(minibatch_size=64) if algo == "ppo" else {}))
    widths: list[int] = []
    step = SeededCartPoleVectorEnv.step
    monkeypatch.setattr(SeededCartPoleVectorEnv, "step", lambda self, *args: widths.append(self.num_envs) or
                        step(self, *args))
    shared = pg.train_many(algo, "CartPole-v1", seeds=[0, 1, 2], **settings)
    assert set(widths) == {12} and len(widths) >= 768 // 4, (set(widths), len(widths))
    monkeypatch.setattr(stacked, "shared_env", lambda trainers: None)
    widths.clear()
    each = pg.train_many(algo, "CartPole-v1", seeds=[0, 1, 2], **settings)
    assert set(widths) == {4}
    for ours, theirs in zip(shared, each):
        assert_runs_identical(ours, theirs)
    assert len(shared[0].history.updates) < len(shared[1].history.updates)


@pytest.mark.parametrize("env_backend", ["numpy", "torch"])
def test_an_agent_that_stops_first_keeps_its_env_as_it_stopped(env_backend):
    """In the shared env an agent that has used its budget keeps being stepped with the others; its run keeps its env
    as it was when it stopped: resumed, it continues the same whatever the other agent did after."""
    settings = dict(env_backend=env_backend, device="cpu", num_envs=4, n_steps=32, minibatch_size=64, progress=False)
    longer = pg.train_many("ppo", "CartPole-v1", seeds=[1, 2], per_agent={"total_steps": [256, 640]}, **settings)
    same = pg.train_many("ppo", "CartPole-v1", seeds=[1, 2], per_agent={"total_steps": [256, 256]}, **settings)
    assert_runs_identical(longer[0], same[0])
    assert len(longer[1].history.updates) > len(longer[0].history.updates)
    assert_runs_identical(pg.resume(longer[0], total_steps=512), pg.resume(same[0], total_steps=512))


def test_each_agent_logs_into_a_folder_of_its_own_and_goes_on_there_when_resumed(tmp_path):
    """Issue 44: train_many refused log_dir. Each agent writes its history as it grows to log_dir/agent<a>_seed<s>
    (CSV, as pg.train's log_dir); a folder holding logs is refused; a resumed agent appends to its own folder."""
    import csv
    runs = pg.train_many("ppo", "CartPole-v1", seeds=[3, 4], total_steps=1024, progress=False, log_dir=tmp_path)
    for a, (seed, run) in enumerate(zip([3, 4], runs)):
        folder = tmp_path / f"agent{a}_seed{seed}"
        with open(folder / "updates.csv") as file:
            rows = list(csv.DictReader(file))
        assert len(rows) == len(run.history.updates) >= 2
        assert [float(row["policy_loss"]) for row in rows] == list(run.history.updates["policy_loss"])
        assert run.outputs == {"log_dir": str(folder.resolve())}
    with pytest.raises(ConfigError, match="already holds the logs of other runs"):
        pg.train_many("ppo", "CartPole-v1", seeds=[3, 4], total_steps=1024, progress=False, log_dir=tmp_path)
    longer = pg.resume(runs[1], total_steps=2048)
    with open(tmp_path / "agent1_seed4" / "updates.csv") as file:
        assert len(list(csv.DictReader(file))) == len(longer.history.updates) > len(runs[1].history.updates)


@pytest.mark.parametrize("env_backend", ["numpy", "torch"])
def test_an_agents_checkpoint_is_its_run_as_if_it_had_stopped_there(env_backend, tmp_path, monkeypatch):
    """Issue 44: train_many refused checkpoints. Each agent checkpoints to checkpoint_dir/agent<a>_seed<s>; a
    checkpoint taken inside the batch is the run the agent returns when its budget ends at that update (weights,
    Adam states, env, generators): resumed, both continue the same, bit for bit."""
    from pgcourse.rl.algorithms.trainer import Trainer
    save = Trainer.save_checkpoint
    monkeypatch.setattr(Trainer, "save_checkpoint",  # every checkpoint kept aside, in a folder named by its update
                        lambda self, folder: save(self, tmp_path / "kept" / f"{Path(folder).name}_update{self.num_updates}"))
    settings = dict(env_backend=env_backend, device="cpu", num_envs=4, n_steps=32, minibatch_size=64, progress=False,
                    anneal_lr=False)  # (annealing follows total_steps: the budgets 256 and 640 would anneal otherwise)
    runs = pg.train_many("ppo", "CartPole-v1", seeds=[1, 2], total_steps=640, checkpoint_every=256,
                         checkpoint_dir=tmp_path / "checkpoints", **settings)
    stopped = pg.train_many("ppo", "CartPole-v1", seeds=[1, 2], per_agent={"total_steps": [256, 640]}, **settings)[0]
    kept = sorted((tmp_path / "kept").iterdir(), key=lambda path: int(path.name.rsplit("update", 1)[1]))
    first = [path for path in kept if path.name.startswith("agent0_seed1")][0]  # agent 0's first checkpoint
    assert first.name == f"agent0_seed1_update{len(stopped.history.updates)}"
    assert_runs_identical(pg.resume(first, total_steps=640), pg.resume(stopped, total_steps=640))
    final = pg.load(tmp_path / "checkpoints" / "agent1_seed2")  # the end of training is the last checkpoint
    assert_runs_identical(final, runs[1])
    assert runs[1].outputs["checkpoint_dir"] == str((tmp_path / "checkpoints" / "agent1_seed2").resolve())


def test_bad_output_folders_are_refused_before_anything_is_made(tmp_path):
    """A log_dir that is a file gets a ConfigError (it was a raw NotADirectoryError), and an invalid checkpoint setting
    is refused before any agent's log folder is made."""
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    with pytest.raises(ConfigError, match="is a file: expected a folder"):
        pg.train_many("ppo", "CartPole-v1", seeds=[0, 1], total_steps=256, progress=False, log_dir=a_file)
    with pytest.raises(ConfigError, match="checkpoint_every=0 is invalid"):
        pg.train_many("ppo", "CartPole-v1", seeds=[0, 1], total_steps=256, progress=False, log_dir=tmp_path / "logs",
                      checkpoint_every=0, checkpoint_dir=tmp_path / "ckpt")
    assert not (tmp_path / "logs").exists() and a_file.read_text() == "mine"
