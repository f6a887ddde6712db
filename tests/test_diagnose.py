"""pg.diagnose reads a run's history and names the planted cause among its top findings."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import pgcourse as pg
from pgcourse.traps.signals import top_causes
from pgcourse.history import History


def synthetic_run(algo="ppo", n_actions=2, rows=40, returns=None, status="completed", **columns):
    """A fake run whose history has ``rows`` updates; ``columns`` give per-update values (scalar or array)."""
    history = History()
    defaults = dict(policy_loss=0.0, value_loss=1.0, entropy=0.6, approx_kl=0.01, clip_fraction=0.1,
                    explained_variance=0.8, actor_grad_norm=0.3, critic_grad_norm=0.5, advantage_std=1.0)
    defaults.update(columns)
    for i in range(rows):
        row = {name: (value[i] if isinstance(value, (list, np.ndarray)) else value) for name, value in defaults.items()}
        history.updates.append(env_step=(i + 1) * 512, wall_time=float(i), lr=1e-3, critic_lr=1e-3, epochs_run=10,
                               **row)
    for i, ret in enumerate(returns if returns is not None else np.linspace(20, 300, 100)):
        history.episodes.append(**{"return": float(ret), "length": 1.0, "env_step": float(i), "wall_time": 0.0})
    history.status = status
    space = SimpleNamespace(n=n_actions) if n_actions else SimpleNamespace(shape=(1,))
    return SimpleNamespace(history=history, config=SimpleNamespace(algo=algo), action_space=space)


def test_healthy_synthetic_run_has_no_alarm(capsys):
    findings = pg.diagnose(synthetic_run())
    assert all(f.severity != "alarm" for f in findings)
    assert "healthy" in capsys.readouterr().out


def test_nonfinite_is_the_top_finding():
    run = synthetic_run(policy_loss=[0.0] * 39 + [float("nan")], status="stopped: policy_loss became non-finite")
    findings = pg.diagnose(run, verbose=False)
    assert findings[0].signal.startswith("non-finite")
    assert "ratio_from_probs" in top_causes(findings, 1)


def test_std_collapse_and_negative_explained_variance():
    run = synthetic_run(n_actions=None, entropy=np.linspace(1.4, -2.0, 40), log_std_mean=np.linspace(0, -3.5, 40),
                        explained_variance=-0.5)
    signals = [f.signal for f in pg.diagnose(run, verbose=False)]
    assert "policy std" in signals and "explained variance" in signals


def test_stale_log_probs_signature_synthetic():
    run = synthetic_run(approx_kl=0.0, clip_fraction=0.0)
    findings = pg.diagnose(run, verbose=False)
    assert findings[0].signal == "KL / clip fraction"
    assert top_causes(findings, 1) == ["stale_old_log_probs"]


def test_joint_clip_signature_synthetic():
    run = synthetic_run(entropy=math.log(2) * 0.999, actor_grad_norm=0.01, critic_grad_norm=50.0, approx_kl=1e-6,
                        explained_variance=0.05, returns=[22.0] * 100)
    assert "joint_grad_clip" in top_causes(pg.diagnose(run, verbose=False), 3)


def test_low_critic_lr_signature_synthetic():
    run = synthetic_run(explained_variance=-0.2, advantage_std=60.0, returns=np.linspace(20, 40, 100))
    assert "low_critic_lr" in top_causes(pg.diagnose(run, verbose=False), 2)


def test_negative_explained_variance_of_an_accurate_critic_on_constant_targets_is_not_an_alarm(capsys):
    # a solved run (every episode 500): EV < 0 only because the targets barely vary; the critic is off by 1%
    solved = synthetic_run(explained_variance=-0.8, value_rel_error=0.01, returns=np.full(100, 500.0))
    assert all(f.signal != "explained variance" for f in pg.diagnose(solved))
    printed = capsys.readouterr().out
    assert "note: [OK   ] explained variance" in printed and "barely vary" in printed
    # the same EV with a critic that is really off (30% error) is still the alarm
    lagging = synthetic_run(explained_variance=-0.8, value_rel_error=0.3, returns=np.full(100, 500.0))
    finding = next(f for f in pg.diagnose(lagging, verbose=False) if f.signal == "explained variance")
    assert finding.severity == "alarm"


@pytest.mark.parametrize("trap", ["stale_old_log_probs", "advantage_sign_flipped", "long_rollout"])
def test_short_real_runs_name_the_planted_cause(trap):
    run = pg.train("ppo", "CartPole-v1", seed=0, total_steps=6000, device="cpu", progress=False, traps=(trap,))
    findings = pg.diagnose(run, verbose=False)
    assert trap in top_causes(findings, 3), [str(f) for f in findings]
