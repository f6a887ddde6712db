"""Every planted bug (pgcourse.planted, re-exported by pgcourse.traps) changes the behaviour it claims
(and traps=() changes nothing)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pgcourse as pg
from pgcourse.rl import distributions, losses, returns
from pgcourse.course import debugging as traps
from pgcourse.rl.algorithms import Components, Hooks, Trainer
from pgcourse.rl.algorithms.rollout import collect_rollout
from pgcourse.rl.config import ConfigError, make_config

TESTED: set[str] = set()


def mark_tested(name):
    TESTED.add(name)
    return name


def components_for(name: str, algo: str = "ppo", env: str = "CartPole-v1", kind: str = "discrete"):
    config = make_config(algo, env, kind, traps=(name,), progress=False, device="cpu")
    planted_config, parts, _ = traps.plant(config, Components(), Hooks())
    assert config.traps == (name,) and planted_config is not config  # plant returns a new config
    return planted_config, parts


def test_registry_and_validation():
    assert set(traps.describe()) == set(traps.TRAPS)
    with pytest.raises(ConfigError, match="unknown trap"):
        pg.train("ppo", "CartPole-v1", traps=("no_such_trap",))
    with pytest.raises(ConfigError, match="implemented for"):
        pg.train("reinforce", "CartPole-v1", traps=("stale_old_log_probs",))
    with pytest.raises(ConfigError, match="traps"):
        make_config("ppo", "CartPole-v1", "discrete", traps=(3,))


def test_plant_changes_nothing_it_is_given():
    config = make_config("ppo", "CartPole-v1", "discrete", traps=("long_rollout", "entropy_wrong_sign"))
    parts, hooks = Components(), Hooks()
    new_config, new_parts, new_hooks = traps.plant(config, parts, hooks)
    assert (config.num_envs, config.ent_coef) == (8, 0.0)  # the given config is untouched ...
    assert (new_config.num_envs, new_config.ent_coef) == (16, 0.01)  # ... the returned one has the presets
    assert parts.entropy_bonus_loss is losses.entropy_bonus_loss and new_parts.entropy_bonus_loss is not parts.entropy_bonus_loss
    assert new_hooks == hooks


# -- pure replacements of the math ---------------------------------------------------------------

def test_truncation_as_termination_cuts_the_bootstrap():
    config, parts = components_for(mark_tested("truncation_as_termination"))
    rewards = torch.tensor([[1.0], [1.0]])
    values = torch.tensor([[0.5], [0.5]])
    next_values = torch.tensor([[0.5], [10.0]])
    terminated = torch.zeros(2, 1)
    truncated = torch.tensor([[0.0], [1.0]])
    good = returns.compute_gae(rewards, values, next_values, terminated, truncated, 0.9, 0.95)
    bad = parts.compute_gae(rewards, values, next_values, terminated, truncated, 0.9, 0.95)
    assert parts.compute_gae is not returns.compute_gae
    assert good[1, 0] == pytest.approx(1.0 + 0.9 * 10.0 - 0.5)  # bootstraps from V(final obs)
    assert bad[1, 0] == pytest.approx(1.0 - 0.5)  # treated as terminal
    # without truncations the buggy GAE is the correct one
    same = parts.compute_gae(rewards, values, next_values, terminated, torch.zeros(2, 1), 0.9, 0.95)
    assert torch.allclose(same, returns.compute_gae(rewards, values, next_values, terminated, torch.zeros(2, 1), 0.9, 0.95))


def test_advantage_sign_flipped_negates_both_policy_losses():
    _, parts = components_for(mark_tested("advantage_sign_flipped"))
    log_probs = torch.tensor([-0.5, -1.0, -2.0])
    advantages = torch.tensor([1.0, -0.5, 2.0])
    assert float(parts.reinforce_loss(log_probs, advantages)) == pytest.approx(
        -float(losses.reinforce_loss(log_probs, advantages)))
    old = log_probs + 0.05
    assert float(parts.clipped_surrogate_loss(log_probs, old, advantages, 0.2)) == pytest.approx(
        float(losses.clipped_surrogate_loss(log_probs, old, -advantages, 0.2)))


def test_missing_detach_lets_the_policy_gradient_reach_the_critic():
    _, parts = components_for(mark_tested("missing_detach"), algo="reinforce_baseline")
    critic_weight = torch.tensor(2.0, requires_grad=True)
    log_probs = torch.tensor([-0.5, -1.0], requires_grad=True)
    returns_ = torch.tensor([3.0, 1.0])
    for loss_fn, reaches in ((losses.reinforce_loss, False), (parts.reinforce_loss, True)):
        critic_weight.grad = None
        weights = returns_ - critic_weight * torch.ones(2)  # an advantage computed with V's graph
        loss_fn(log_probs, weights).backward()
        assert (critic_weight.grad is not None and float(critic_weight.grad) != 0.0) == reaches
    # the same for PPO's surrogate
    critic_weight.grad = None
    adv = torch.tensor([1.0, 2.0]) * critic_weight
    parts.clipped_surrogate_loss(log_probs, log_probs.detach(), adv, 0.2).backward()
    assert critic_weight.grad is not None and float(critic_weight.grad) != 0.0


def test_missing_detach_in_reinforce_baseline_changes_the_critic_step():
    """Planted in REINFORCE with baseline, the undetached advantages and the one backward of both losses
    put the actor's gradient into the critic's update: its gradient differs from the value loss's alone."""
    config = make_config("reinforce_baseline", "CartPole-v1", "discrete", traps=("missing_detach",),
                         progress=False, device="cpu")
    config, parts, hooks = traps.plant(config, Components(), Hooks())
    trainer = Trainer(config, parts, hooks, needs_critic=True)
    obs, actions, returns_ = torch.randn(6, 4), torch.tensor([0, 1, 1, 0, 1, 0]), torch.randn(6) * 10

    def critic_gradient(components, step):
        values = trainer.value_net(obs)
        weights = components.baseline_advantages(returns_, values)
        log_probs, _ = trainer.log_probs_and_entropy(obs, actions)
        actor_loss, critic_loss = components.reinforce_loss(log_probs, weights), components.value_loss(values, returns_)
        trainer.actor_optimizer.zero_grad()
        trainer.critic_optimizer.zero_grad()
        if step is None:  # the correct step: each network its own backward
            actor_loss.backward()
            trainer.critic_optimizer.zero_grad()
            critic_loss.backward()
        else:
            trainer.actor_optimizer.step = trainer.critic_optimizer.step = lambda: None  # look, do not move
            step(trainer, actor_loss, critic_loss)
            del trainer.actor_optimizer.step, trainer.critic_optimizer.step
        return torch.cat([p.grad.flatten() for p in trainer.value_net.parameters()])

    correct = critic_gradient(Components(), None)
    leaked = critic_gradient(parts, hooks.actor_critic_step)
    assert not torch.allclose(correct, leaked)
    trainer.finish()


def test_ratio_from_probs_is_nan_once_probabilities_underflow():
    _, parts = components_for(mark_tested("ratio_from_probs"))
    moderate = torch.tensor([-1.0, -3.0])
    adv = torch.tensor([1.0, 0.5])
    assert float(parts.clipped_surrogate_loss(moderate, moderate + 0.1, adv, 0.2)) == pytest.approx(
        float(losses.clipped_surrogate_loss(moderate, moderate + 0.1, adv, 0.2)), rel=1e-5)
    tiny = torch.tensor([-120.0, -130.0])  # e.g. a 6-D Gaussian far in its tail
    assert math.isfinite(float(losses.clipped_surrogate_loss(tiny, tiny + 0.1, adv, 0.2)))
    assert math.isnan(float(parts.clipped_surrogate_loss(tiny, tiny + 0.1, adv, 0.2)))


def test_log_prob_not_summed_returns_per_dimension_terms():
    _, parts = components_for(mark_tested("log_prob_not_summed"), env="Pendulum-v1", kind="continuous")
    mean, log_std, actions = torch.zeros(5, 3), torch.zeros(3), torch.randn(5, 3)
    good = distributions.gaussian_log_prob(mean, log_std, actions)
    bad = parts.gaussian_log_prob(mean, log_std, actions)
    assert good.shape == (5,) and bad.shape == (5, 3)
    assert torch.allclose(bad.sum(-1), good)
    # against [B] old log-probs the [B, 1] result broadcasts to [B, B]: every advantage meets every ratio
    one_d = parts.gaussian_log_prob(torch.zeros(4, 1), torch.zeros(1), torch.randn(4, 1))
    assert (one_d - torch.zeros(4)).shape == (4, 4)


def test_entropy_wrong_sign_and_its_preset():
    config, parts = components_for(mark_tested("entropy_wrong_sign"))
    entropy = torch.tensor([0.6, 0.7])
    assert config.ent_coef == 0.01  # the trap needs a bonus for its sign to matter
    assert float(parts.entropy_bonus_loss(entropy, 0.01)) == pytest.approx(
        -float(losses.entropy_bonus_loss(entropy, 0.01)))


# -- config presets: the run records the values it used -----------------------------------------

@pytest.mark.parametrize("name", [mark_tested("long_rollout"), mark_tested("low_critic_lr")])
def test_presets_are_recorded_in_the_run_config(name):
    run = pg.train("ppo", "CartPole-v1", seed=0, total_steps=1, device="cpu", progress=False, traps=(name,))
    for field, value in traps.PRESETS[name].items():
        assert getattr(run.config, field) == value
    assert run.config.traps == (name,)
    if name == "long_rollout":
        # one rollout of 16 x 256 = 4096 transitions, 4 epochs x 4 minibatches
        assert run.config.num_envs * run.config.n_steps == 4096
        assert 3500 < run.history.updates["env_step"][0] <= 4096  # autoreset steps are not transitions
        assert traps.gradient_steps_per_100_episodes(run) < 100.0 * 40 * len(run.history.updates)


# -- control flow --------------------------------------------------------------------------------

def test_joint_grad_clip_clips_actor_and_critic_together(monkeypatch):
    mark_tested("joint_grad_clip")
    calls = []
    original = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        calls.append(len(parameters))
        return original(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    for algo, overrides in (("ppo", dict(n_steps=16, minibatch_size=64, update_epochs=1)), ("a2c", {})):
        for trap in ((), ("joint_grad_clip",)):
            calls.clear()
            run = pg.train(algo, "CartPole-v1", seed=0, total_steps=128, device="cpu", progress=False,
                           max_grad_norm=0.5, critic_max_grad_norm=0.5, traps=trap, **overrides)
            actor_params = len(list(run.policy.parameters()))
            both = actor_params + len(list(run.value_net.parameters()))
            if trap:
                assert set(calls) == {both}  # one clip over every parameter of both networks
            else:
                assert set(calls) == {actor_params, both - actor_params}
            assert np.isfinite(run.history.updates["critic_grad_norm"]).all()


def test_stale_old_log_probs_make_the_ratio_exactly_one():
    mark_tested("stale_old_log_probs")
    kwargs = dict(seed=0, total_steps=1024, device="cpu", progress=False)
    good = pg.train("ppo", "CartPole-v1", **kwargs).history.updates
    bad = pg.train("ppo", "CartPole-v1", traps=("stale_old_log_probs",), **kwargs).history.updates
    assert np.all(bad["approx_kl"] == 0.0) and np.all(bad["clip_fraction"] == 0.0)
    assert good["approx_kl"].max() > 0.0


def test_clipped_action_log_prob_stores_the_clipped_action():
    mark_tested("clipped_action_log_prob")
    rollouts = {}
    for trap in ((), ("clipped_action_log_prob",)):
        config = make_config("ppo", "Pendulum-v1", "continuous", seed=0, device="cpu", progress=False,
                             log_std_init=1.0, traps=trap)
        config, parts, hooks = traps.plant(config, Components(), Hooks())
        trainer = Trainer(config, parts, hooks)
        rollouts[trap] = collect_rollout(trainer, 32)
        trainer.finish()
    good, bad = rollouts[()], rollouts[("clipped_action_log_prob",)]
    assert good.actions.abs().max() > 2.0  # the sampled actions leave the [-2, 2] box ...
    assert bad.actions.abs().max() <= 2.0  # ... the trap stores them clipped
    # and the stored log-prob is that of the clipped action, not of the action actually sampled
    policy_std = math.exp(1.0)
    assert bad.log_probs.max() > -math.log(policy_std) - 0.5 * math.log(2 * math.pi) - 2.0


def test_per_minibatch_adv_norm_normalises_every_minibatch():
    mark_tested("per_minibatch_adv_norm")
    counts = {}
    for trap in ((), ("per_minibatch_adv_norm",)):
        calls = []

        def counting_normalize(x, eps=1e-8):
            calls.append(x.shape[0])
            return returns.normalize(x, eps)

        pg.train("ppo", "CartPole-v1", seed=0, total_steps=512, device="cpu", progress=False, n_steps=64,
                 minibatch_size=128, update_epochs=2, normalize=counting_normalize, traps=trap)
        counts[trap] = calls
    batch_sizes = counts[()]  # once per batch (valid transitions of the rollout, autoreset steps excluded)
    assert len(batch_sizes) >= 1 and all(400 < size <= 512 for size in batch_sizes)
    expected = [2 * -(-size // 128) for size in batch_sizes]  # 2 epochs x ceil(B / 128) minibatches per update
    per_minibatch = counts[("per_minibatch_adv_norm",)]
    assert all(size <= 128 for size in per_minibatch) and len(per_minibatch) == sum(expected)


HARMLESS_HERE = {"ratio_from_probs"}


def test_short_runs_each_trap_changes_the_run():
    """Every trap changes a short real run (same seed) compared with the correct algorithm, except the two
    whose harm needs conditions CartPole does not have (see the lesson): those change it only by rounding."""
    kwargs = dict(seed=0, device="cpu", progress=False)
    base = {}
    for name, (algos, _) in traps.TRAPS.items():
        algo = "ppo" if "ppo" in algos else algos[0]
        env = "Pendulum-v1" if name in ("truncation_as_termination", "log_prob_not_summed",
                                        "clipped_action_log_prob") else "CartPole-v1"
        if algo == "ppo" and name == "missing_detach":
            algo = "reinforce_baseline"  # PPO's advantages carry no graph: the trap is a no-op there
        steps = 600 if algo.startswith("reinforce") else (2048 if env == "Pendulum-v1" else 1024)  # >= 1 time limit
        extra = dict(n_steps=64, minibatch_size=256) if (algo == "ppo" and env == "Pendulum-v1") else {}
        key = (algo, env)
        if key not in base:
            base[key] = pg.train(algo, env, total_steps=steps, **kwargs, **extra)
        run = pg.train(algo, env, total_steps=steps, traps=(name,), **kwargs, **extra)
        a = np.concatenate([base[key].history.updates[c] for c in ("policy_loss", "value_loss", "entropy")])
        b = np.concatenate([run.history.updates[c] for c in ("policy_loss", "value_loss", "entropy")])
        n = min(len(a), len(b))
        assert n > 0
        if name in HARMLESS_HERE:  # the lesson says these do not change a CartPole run beyond rounding
            assert np.allclose(a[:n], b[:n], rtol=1e-3, atol=1e-5), name
        else:
            assert not np.allclose(a[:n], b[:n], equal_nan=True), name


def test_traps_empty_is_the_correct_algorithm():
    config = make_config("ppo", "CartPole-v1", "discrete", progress=False)
    parts = Components()
    assert config.traps == ()
    assert parts.compute_gae is returns.compute_gae and parts.entropy_bonus_loss is losses.entropy_bonus_loss


# -- bug hunt and the lesson's helpers -----------------------------------------------------------

# (the bug hunt itself, mysteries and checks: tests/test_bug_hunt.py)


def test_reproduction_table_helpers():
    assert traps.episodes_to([10.0] * 10 + [500.0] * 100, 475.0, window=10) == 20
    assert traps.episodes_to([10.0] * 50, 475.0) is None
    results = [{"label": "PPO fixed", "seed": s, "returns": [20.0] * 50 + [500.0] * 100,
                "env_steps": list(np.cumsum([20] * 50 + [500] * 100)), "updates_per_100_episodes": 10.0}
               for s in range(2)]
    rows = traps.reproduction_table(results)
    assert rows[0]["solved_seeds"] == 2 and rows[0]["final_mean"] == 500.0


@pytest.mark.slow
def test_reproduce_command_runs_every_algorithm_for_the_episodes_asked(tmp_path):
    """The documented regenerate command, tiny: every algorithm (A2C and PPO too) stops at --episodes,
    and ``python -m pgcourse.traps`` (the name before the folders) runs without runpy's 'found in sys.modules'
    warning; the folder records the command by the module's place now."""
    import subprocess
    import sys

    out, folder = tmp_path / "repro.png", tmp_path / "repro"
    done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m", "pgcourse.traps", "reproduce",
                           "--out", str(out), "--folder", str(folder), "--seeds", "1", "--episodes", "6",
                           "--max-steps", "5000"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "RuntimeWarning" not in done.stderr
    payload = traps.load_reproduction(folder)  # a sweep's results folder: one JSON file per trial
    assert len(list((folder / "trials").glob("*.json.gz"))) == len(traps.REPRO_ALGOS)
    assert payload["command"].startswith("python -m pgcourse.course.debugging reproduce")
    assert out.stat().st_size > 0
    assert {row["algorithm"] for row in payload["table"]} == set(traps.REPRO_ALGOS)
    for run in payload["runs"]:
        assert len(run["returns"]) == 6, run["label"]
        assert run["env_steps"][-1] < 5000, f"{run['label']} did not stop at 6 episodes"
    # an episode budget has no step horizon for a schedule: constant learning rates, recorded in the JSON
    assert all(settings["anneal_lr"] is False for settings in payload["settings"].values())


def test_reproduce_rejects_a_bad_setting_before_running(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pgcourse.traps", "reproduce", "--out", str(tmp_path / "r.png"),
                           "--folder", str(tmp_path / "r"), "--set", "lr=-1"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "lr=-1 is invalid" in done.stderr
    assert not (tmp_path / "r").exists()


def test_every_trap_is_tested():
    mark_tested("advantage_sign_flipped")
    missing = set(traps.TRAPS) - TESTED
    assert not missing, f"traps without a test: {sorted(missing)}"
