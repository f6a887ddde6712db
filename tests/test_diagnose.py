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


def test_healthy_synthetic_run_has_no_alarm():
    findings = pg.diagnose(synthetic_run())
    assert all(f.severity != "alarm" for f in findings)
    assert "all signals look healthy" in str(findings)


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


def test_negative_explained_variance_of_an_accurate_critic_on_constant_targets_is_not_an_alarm():
    # a solved run (every episode 500): EV < 0 only because the targets barely vary; the critic is off by 1%
    diagnosis = pg.diagnose(solved := synthetic_run(explained_variance=-0.8, value_rel_error=0.01,
                                                    returns=np.full(100, 500.0)))
    assert all(f.signal != "explained variance" for f in diagnosis)
    assert "note: [OK   ] explained variance" in str(diagnosis) and "barely vary" in str(diagnosis)
    assert "explained variance" in diagnosis._repr_markdown_().split("note:")[1]
    assert solved.history.status == "completed"
    # the same EV with a critic that is really off (30% error) is still the alarm
    lagging = synthetic_run(explained_variance=-0.8, value_rel_error=0.3, returns=np.full(100, 500.0))
    finding = next(f for f in pg.diagnose(lagging, verbose=False) if f.signal == "explained variance")
    assert finding.severity == "alarm"


@pytest.mark.parametrize("trap", ["stale_old_log_probs", "advantage_sign_flipped", "long_rollout"])
def test_short_real_runs_name_the_planted_cause(trap):
    run = pg.train("ppo", "CartPole-v1", seed=0, total_steps=6000, device="cpu", progress=False, traps=(trap,))
    findings = pg.diagnose(run, verbose=False)
    assert trap in top_causes(findings, 3), [str(f) for f in findings]


# ---------------------------------------------------------------------------------------------
# what pg.diagnose shows: once, in a notebook as in a script
# ---------------------------------------------------------------------------------------------
def test_diagnose_prints_nothing_by_default_and_returns_a_list_of_findings(capsys):
    diagnosis = pg.diagnose(synthetic_run(approx_kl=0.0, clip_fraction=0.0))
    assert capsys.readouterr().out == ""
    assert isinstance(diagnosis, list) and diagnosis[0].signal == "KL / clip fraction"
    assert top_causes(diagnosis, 1) == ["stale_old_log_probs"]


def test_diagnosis_shows_itself_as_the_report():
    diagnosis = pg.diagnose(synthetic_run(approx_kl=0.0, clip_fraction=0.0))
    for text in (str(diagnosis), repr(diagnosis)):
        assert text.startswith("1 signal(s) look unhealthy") and "[ALARM] KL / clip fraction" in text
        assert "healthy: " in text
    markdown = diagnosis._repr_markdown_()
    assert "KL / clip fraction" in markdown and "`stale_old_log_probs" in markdown


def test_verbose_prints_the_report(capsys):
    diagnosis = pg.diagnose(synthetic_run(), verbose=True)
    assert capsys.readouterr().out.strip() == str(diagnosis).strip()


def test_diagnose_as_a_cells_last_line_shows_its_findings_once():
    """In IPython (a notebook's kernel), `pg.diagnose(run)` as the last line displays the report once."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    shell.user_ns.update(pg=pg, run=synthetic_run(approx_kl=0.0, clip_fraction=0.0))
    with capture_output() as captured:
        shell.run_cell("pg.diagnose(run)", store_history=True)
    # what the cell prints and the result it displays (Out[...], written to stdout by a terminal shell)
    shown = captured.stdout + "".join(output.data.get("text/plain", "") for output in captured.outputs)
    assert shown.count("KL / clip fraction") == 1, shown


@pytest.mark.slow
@pytest.mark.parametrize("env_id, total_steps", [("CartPole-v1", 20_000), ("Pendulum-v1", 30_000)])
def test_no_alarm_on_a_healthy_default_run(env_id, total_steps):
    """The course's default PPO, cut short (the full default runs, 3 seeds each, raised no alarm either;
    CartPole ~1 min, Pendulum ~1-2 min per seed on the 2-core machine)."""
    run = pg.train("ppo", env_id, seed=0, total_steps=total_steps, device="cpu", progress=False)
    alarms = [str(f) for f in pg.diagnose(run) if f.severity == "alarm"]
    assert not alarms, alarms
