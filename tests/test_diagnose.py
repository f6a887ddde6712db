"""pg.diagnose reads a run's history and names the planted cause among its top findings."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import pgcourse as pg
from pgcourse.course.debugging import bug_hunt
from pgcourse.course.debugging import signals
from pgcourse.course.debugging.signals import top_causes
from pgcourse.rl.history import History


def synthetic_run(algo="ppo", n_actions=2, rows=40, returns=None, status="completed", steps_per_update=512,
                  **columns):
    """A fake run whose history has ``rows`` updates; ``columns`` give per-update values (scalar or array)."""
    history = History()
    defaults = dict(policy_loss=0.0, value_loss=1.0, entropy=0.6, approx_kl=0.01, clip_fraction=0.1,
                    explained_variance=0.8, actor_grad_norm=0.3, critic_grad_norm=0.5, advantage_std=1.0)
    defaults.update(columns)
    for i in range(rows):
        row = {name: (value[i] if isinstance(value, (list, np.ndarray)) else value) for name, value in defaults.items()}
        history.updates.append(env_step=(i + 1) * steps_per_update, wall_time=float(i), lr=1e-3, critic_lr=1e-3,
                               epochs_run=10,
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
    assert "note: [OK   ] explained variance" in str(diagnosis) and "no finding by itself" in str(diagnosis)
    assert "explained variance" in diagnosis._repr_markdown_().split("note:")[1]
    assert solved.history.status == "completed"
    # the same EV with a critic that is really off (30% error) is still the alarm
    lagging = synthetic_run(explained_variance=-0.8, value_rel_error=0.3, returns=np.full(100, 500.0))
    finding = next(f for f in pg.diagnose(lagging, verbose=False) if f.signal == "explained variance")
    assert finding.severity == "alarm"


def test_an_explained_variance_just_below_zero_beside_a_modest_error_is_a_lag_not_an_alarm():
    """Exercise 06's mystery 2 (pool 9): EV -0.000156 at error 0.206 was an ALARM, 'far from its targets', beside
    mystery 1's 'healthy' critic at EV 0.002 and error 0.177: a sign flip of noise around 0 made the alarm."""
    near_zero = synthetic_run(explained_variance=-0.000156, value_rel_error=0.206)
    finding = next(f for f in pg.diagnose(near_zero) if f.signal == "explained variance")
    assert (finding.severity, finding.message) == ("warn", "the critic lags its targets")
    real = bug_hunt.pool_run(9)
    finding = next(f for f in pg.diagnose(real) if f.signal == "explained variance")
    assert finding.severity == "warn"


def test_the_return_trend_calls_no_change_within_the_episodes_noise_an_improvement():
    """Exercise 06's mystery 4 (pool 11): a policy whose actor never moved (gradient ~1e-8) read 'returns
    improve' from its first and last episodes' means, 145 apart with a standard error of ~136."""
    frozen = bug_hunt.pool_run(11)
    finding = next(f for f in [*pg.diagnose(frozen), *pg.diagnose(frozen).healthy] if f.signal == "return trend")
    assert finding.severity == "warn" and "noise" in finding.message
    assert finding.evidence["return_end"] - finding.evidence["return_start"] < 2 * finding.evidence["standard_error"]
    rng = np.random.default_rng(0)
    noisy_but_learning = np.linspace(20, 200, 200) + rng.normal(0, 40, 200)  # a real rise through the noise
    learning = synthetic_run(returns=noisy_but_learning)
    assert "return trend" in [f.signal for f in pg.diagnose(learning).healthy]
    falling = synthetic_run(returns=noisy_but_learning[::-1])
    assert [f.message for f in pg.diagnose(falling) if f.signal == "return trend"] == ["returns went DOWN"]
    same_noise = synthetic_run(returns=rng.normal(100, 40, 200))  # no trend: flat, whichever way the means fall
    assert [f.severity for f in pg.diagnose(same_noise) if f.signal == "return trend"] == ["warn"]


def test_an_actor_that_gets_no_gradient_is_an_alarm_even_without_a_kl():
    """Exercise 06's mystery 4 (pool 11, A2C on Pendulum: no KL, no entropy maximum): the actor's gradient had a median
    of ~5e-9 and 'grad norms' read healthy, because the 'policy not moving' test reads only those two."""
    frozen = bug_hunt.pool_run(11)
    finding = next(f for f in pg.diagnose(frozen) if f.signal == "grad norms")
    assert finding.severity == "alarm" and "no gradient" in finding.message
    assert top_causes(pg.diagnose(frozen), 1) == [] or top_causes(pg.diagnose(frozen), 1)[0] != "log_prob_not_summed"
    healthy = synthetic_run(actor_grad_norm=0.1, critic_grad_norm=20.0)
    assert "grad norms" in [f.signal for f in pg.diagnose(healthy).healthy]


def test_a_shared_clip_is_no_cause_of_a_lagging_critic_that_is_clipped_on_its_own():
    """With the critic clipped on its own at the actor's norm (PPO's defaults) one clip over both networks leaves
    the critic's step as it was, so a lagging critic does not point at joint_grad_clip (exercise 06, mystery 2)."""
    lagging = pg.diagnose(bug_hunt.pool_run(9))
    finding = next(f for f in lagging if f.signal == "explained variance")
    assert not any(cause.startswith("joint_grad_clip") for cause in finding.causes)


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


# ---------------------------------------------------------------------------------------------
# healthy runs come out clean; causes fit the algorithm (issue 13)
# ---------------------------------------------------------------------------------------------
def with_config(run, **config):
    run.config = SimpleNamespace(**{"algo": run.config.algo, **config})
    return run


def test_causes_name_only_traps_the_algorithm_has():
    from pgcourse.course.debugging.signals import applicable_causes

    causes = ["low_critic_lr", "joint_grad_clip (why)", "advantage_sign_flipped", "learning rate too high"]
    assert applicable_causes(causes, "reinforce") == ["advantage_sign_flipped", "learning rate too high"]
    assert applicable_causes(causes, "ppo") == causes and applicable_causes(causes, None) == causes
    # a REINFORCE+baseline run whose critic lags names no actor-critic trap (it has none of them)
    run = synthetic_run(algo="reinforce_baseline", explained_variance=0.01, value_rel_error=0.7, advantage_std=25.0,
                        approx_kl=float("nan"), clip_fraction=float("nan"))
    diagnosis = pg.diagnose(with_config(run, normalize_weights=True))
    assert [f.signal for f in diagnosis] == ["explained variance"] and diagnosis[0].severity == "warn"
    assert top_causes(diagnosis, 3) == []


def test_large_raw_advantages_are_no_finding_when_they_are_normalised():
    run = synthetic_run(algo="reinforce", advantage_std=60.0, explained_variance=float("nan"),
                        critic_grad_norm=float("nan"), approx_kl=float("nan"), clip_fraction=float("nan"))
    assert not pg.diagnose(with_config(run, normalize_weights=True))
    unnormalised = pg.diagnose(with_config(synthetic_run(algo="ppo", advantage_std=60.0), normalize_advantages=False))
    assert [f.signal for f in unnormalised] == ["advantage scale"]


def test_a_large_critic_to_actor_ratio_with_a_moving_policy_is_healthy():
    diagnosis = pg.diagnose(synthetic_run(actor_grad_norm=0.1, critic_grad_norm=20.0))  # ratio 200, KL 0.01
    assert not diagnosis and "grad norms" in [f.signal for f in diagnosis.healthy]


@pytest.mark.parametrize("error, severity", [(0.1, "ok"), (0.25, "warn"), (0.8, "alarm")])
def test_the_critic_is_judged_by_its_relative_error(error, severity):
    diagnosis = pg.diagnose(synthetic_run(explained_variance=0.1, value_rel_error=error))
    finding = next(f for f in [*diagnosis, *diagnosis.healthy] if f.signal == "explained variance")
    assert finding.severity == severity
    if severity != "ok":
        assert top_causes(diagnosis, 1)[0] == "low_critic_lr"


def test_a_lagging_critic_with_long_rollouts_blames_the_rollout_first():
    run = synthetic_run(explained_variance=0.02, value_rel_error=0.8, steps_per_update=4096)
    assert top_causes(pg.diagnose(run), 1)[0] == "long_rollout"


def test_every_cached_healthy_default_run_raises_no_alarm_and_names_no_trap():
    """Lesson 06's cached runs: REINFORCE, REINFORCE+baseline, A2C and PPO with the course defaults, ten seeds
    each, with constant and annealed learning rates (80 runs, 1,000 episodes each)."""
    from pathlib import Path

    from pgcourse.course.sweeps import load_results
    from pgcourse.course.debugging.experiments import _as_run

    figures = Path(pg.__file__).resolve().parents[1] / "figures"
    checked = 0
    for folder in ("06_reproduction", "06_reproduction_annealed"):
        for record in load_results(figures / folder).trials:
            if record.config["traps"]:
                continue
            diagnosis = pg.diagnose(_as_run(record))
            assert not [f for f in diagnosis if f.severity == "alarm"] and not top_causes(diagnosis, 3), \
                (folder, record.label, record.seed, str(diagnosis))
            checked += 1
    assert checked == 80


def test_a_kl_of_several_nats_per_update_is_an_alarm_that_names_the_unsummed_log_prob_first():
    run = synthetic_run(n_actions=None, approx_kl=3.0, clip_fraction=0.6, log_std_mean=0.5, entropy=1.5,
                        returns=np.linspace(-1200, -1450, 100))
    diagnosis = pg.diagnose(run)
    assert diagnosis[0].signal == "KL / clip fraction" and diagnosis[0].severity == "alarm"
    assert top_causes(diagnosis, 1)[0] == "log_prob_not_summed"
    discrete = pg.diagnose(synthetic_run(approx_kl=3.0, clip_fraction=0.6))
    assert discrete[0].severity == "alarm" and "log_prob_not_summed" not in top_causes(discrete, 3)


def test_diagnose_record_reads_a_cached_trial_with_its_action_space():
    from pathlib import Path

    from pgcourse.course.sweeps import load_results
    from pgcourse.course.debugging.signals import diagnose_record

    figures = Path(pg.__file__).resolve().parents[1] / "figures"
    record = next(r for r in load_results(figures / "06_diagnose").trials
                  if r.label == "CartPole PPO advantage_sign_flipped" and r.seed == 0)
    diagnosis = diagnose_record(record)
    assert top_causes(diagnosis, 1)[0] == "advantage_sign_flipped"
    entropy = next(f for f in diagnosis if f.signal == "entropy")  # needs the action space: log(2) nats at most
    assert entropy.severity == "alarm" and entropy.evidence["entropy_max"] == pytest.approx(math.log(2))


def test_the_report_follows_one_rule_not_sizes_on_different_scales():
    """Findings' sizes are in different units (a gradient ratio, a relative error), so the report does not rank
    them by size: alarms come in the checklist's order. The old order put the flat-line PPO's gradient-ratio alarm
    (log10 of the ratio, 2.5 here) above the critic's (1 + its error, 2.0), and so joint_grad_clip first."""
    run = synthetic_run(entropy=math.log(2), approx_kl=5e-4, clip_fraction=0.0, critic_grad_norm=100.0,
                        actor_grad_norm=0.3, value_rel_error=1.0, explained_variance=0.0,
                        returns=np.full(100, 20.0) + np.tile([0.0, 1.0], 50))
    diagnosis = pg.diagnose(run)
    alarms = [f.signal for f in diagnosis if f.severity == "alarm"]
    assert alarms == ["explained variance", "grad norms"]
    assert [f.severity for f in diagnosis] == sorted((f.severity for f in diagnosis), key=["alarm", "warn"].index)
    assert str(diagnosis).startswith(f"{len(diagnosis)} signal(s) look unhealthy ({signals.REPORT_ORDER}):")


def test_a_broken_update_comes_before_the_other_alarms():
    """A ratio that is always 1 (approx-KL and clip fraction exactly 0) is a reading no working update produces:
    it comes before an entropy collapse, although the checklist reads the entropy first."""
    diagnosis = pg.diagnose(synthetic_run(approx_kl=0.0, clip_fraction=0.0, entropy=0.01))
    assert [f.signal for f in diagnosis][:2] == ["KL / clip fraction", "entropy"]
    assert diagnosis[0].broken and not diagnosis[1].broken
    assert top_causes(diagnosis, 1) == ["stale_old_log_probs"]
