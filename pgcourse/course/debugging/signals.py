"""``pg.diagnose(run)``: read a run's history and say which of the seven signals look unhealthy.

The seven signals (lesson 06), each read from ``run.history.updates`` / ``run.history.episodes``:

1. non-finite numbers (log-probs, losses)          5. the critic: relative error, explained variance
2. entropy: collapsed, or stuck at its maximum       6. approx-KL and clip fraction (PPO)
3. the Gaussian policy's std (continuous actions)    7. gradient norms: actor vs critic, spikes
4. the scale of the advantages

plus two that put them in context: the return trend and the number of updates per 100 episodes.
Each finding names the likely causes; the causes that are traps of :mod:`pgcourse.course.debugging` are given by
their trap name (:mod:`pgcourse.rl.planted`), so you can switch them on and see the signal for yourself.
Only the traps the run's algorithm has are named (REINFORCE has no critic learning rate to get wrong).

Healthy runs stay quiet (lesson 06 scores this on every cached run): the critic (signal 5) is judged by its
relative error, since explained variance cries wolf when the targets barely vary; large raw advantages (4)
are no finding when they are standardised before the loss; a large critic/actor gradient ratio (7) only
counts while the policy has stopped moving.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...rl.planted import TRAPS

SEVERITY_RANK = {"alarm": 2, "warn": 1, "ok": 0}
# The names of the signals diagnose() reports (each Finding's ``signal``), in the order it reads them.
SIGNALS = ("non-finite log-probs/losses", "entropy", "policy std", "advantage scale", "explained variance",
           "KL / clip fraction", "grad norms", "return trend", "updates per episode")
# Where each trap acts: the signals whose numbers it moves by what it does to the update (the bug hunt's answer is
# a trap and one of its signals). A trap that corrupts the ratio or pi_old shows in the KL and clip fraction, and so
# does one that changes how far the actor steps per update (a clip scaled by the critic's norm, a lower actor lr,
# fewer minibatch steps); one that corrupts the critic's step or targets, in the critic's fit (explained variance,
# and the raw advantages it leaves); one that changes the actor's gradient or its steps, in the gradient norms (an
# update logs the mean norm over its gradient steps, each measured at the weights the earlier, changed steps left:
# lesson 06's joint_grad_clip runs log an actor norm 4-15% below the fixed PPO's at update 1 on all ten seeds); one
# that changes what the policy is pushed towards, in its entropy or std (and the return, when it pushes the wrong
# way). Not listed: a signal read before the trap acts (the advantage scale is logged before any normalisation,
# per-batch or per-minibatch).
SHOWS_IN: dict[str, tuple[str, ...]] = {
    "joint_grad_clip": ("grad norms", "KL / clip fraction", "explained variance"),
    "long_rollout": ("updates per episode", "explained variance", "KL / clip fraction"),
    "low_critic_lr": ("explained variance", "advantage scale", "KL / clip fraction"),
    "truncation_as_termination": ("explained variance", "advantage scale"),
    "advantage_sign_flipped": ("return trend", "entropy", "policy std"),
    "missing_detach": ("explained variance", "grad norms"),
    "ratio_from_probs": ("non-finite log-probs/losses", "KL / clip fraction"),
    "log_prob_not_summed": ("KL / clip fraction", "policy std", "entropy", "grad norms"),
    "clipped_action_log_prob": ("policy std", "entropy", "KL / clip fraction", "grad norms"),
    "stale_old_log_probs": ("KL / clip fraction",),
    "entropy_wrong_sign": ("entropy", "policy std"),
    "per_minibatch_adv_norm": ("KL / clip fraction", "grad norms"),
}


def signal_name(text: Any) -> str | None:
    """The signal of :data:`SIGNALS` that ``text`` names (case and spacing as you like), or None."""
    if not isinstance(text, str):
        return None
    wanted = " ".join(text.lower().split())
    return next((name for name in SIGNALS if name.lower() == wanted), None)


# The report's order, one rule for every run: alarms before warnings; within each, first the findings whose reading no
# working update produces (numbers that are not finite, a ratio that is always 1, an actor with no gradient, a step
# of more than KL_WILD nats: Finding.broken), then the rest in the checklist's order (SIGNALS). The findings' sizes
# are on different scales (nats, a relative error, a gradient ratio), so the order ranks no finding by how large it
# is, nor any cause by how much it costs.
REPORT_ORDER = "alarms, then warnings, in the checklist's order; a broken update first"


def report_position(finding: "Finding") -> tuple[int, int, int]:
    """Where ``finding`` stands in :func:`diagnose`'s report (:data:`REPORT_ORDER`): smaller comes first."""
    return (-SEVERITY_RANK[finding.severity], not finding.broken, SIGNALS.index(finding.signal))


# The critic's rms error relative to its targets (``value_rel_error``), median over the last half of the run.
# Set from lesson 06's cached CartPole runs: the default PPO at 15k-25k env steps stays at or under 0.18 on 20
# of 20 seeds, critic_lr 3e-4 sits at 0.25-0.27, long rollouts at ~0.84, the flat-line PPO at ~1.06.
CRITIC_LAGS = 0.2  # above: the critic lags its targets (warn)
CRITIC_FAR = 0.5  # above: the critic is far from its targets (alarm)
EV_WORSE_THAN_MEAN = -0.1  # explained variance below: the critic is clearly worse than a constant (alarm, if it lags)
LONG_ROLLOUT_STEPS = 2048  # env steps per update from which a lagging critic is first blamed on the rollout
CRITIC_TO_ACTOR = 30.0  # critic/actor gradient-norm ratio above which one shared clip would freeze the actor
# median actor gradient norm below which the actor is not learning at all (healthy course runs: ~1e-2 to 1; exercise
# 06's mystery 4 logged a median of ~5e-9, exactly 0 on 8 of 161 updates, and read 'grad norms' healthy)
ACTOR_GRAD_DEAD = 1e-6
# The return trend compares the mean of the first and the last 10% of episodes; a change counts only beyond
# TREND_SE standard errors of that difference (a frozen Pendulum policy's first and last 11 episodes differed by
# 145 with a standard error of ~130: initial-state luck, which the rule without it called "improving")
TREND_SE = 2.0
# The causes of flat returns, most harmful first as lesson 06's ablation measured each alone on CartPole PPO (mean
# return of the episodes that end in the last fifth of 25k env steps, ten seeds: long_rollout ~98, low_critic_lr
# ~249, joint_grad_clip ~376 against the fixed PPO's ~372: joint clipping alone cost no measurable return,
# P(ends higher) 0.49 [0.23, 0.76])
FLAT_RETURN_CAUSES = ["long_rollout", "low_critic_lr", "joint_grad_clip", "too short a run"]
KL_WILD = 0.5  # mean approx-KL per update above which the surrogate itself is broken (the healthy PPO: ~0.004)


@dataclass
class Finding:
    """One signal's verdict. ``causes`` lists trap names (see ``pgcourse.course.debugging.TRAPS``) and plain words."""

    signal: str
    severity: str  # "alarm", "warn" or "ok"
    message: str
    evidence: dict[str, float] = field(default_factory=dict)
    causes: list[str] = field(default_factory=list)
    broken: bool = False  # a reading no working update produces (see REPORT_ORDER): reported first in its severity
    note: bool = False  # a healthy verdict worth explaining (printed after the "healthy:" line)

    def __str__(self) -> str:
        numbers = ", ".join(f"{k}={_fmt(v)}" for k, v in self.evidence.items())
        causes = f"\n      likely causes: {'; '.join(self.causes)}" if self.causes and self.severity != "ok" else ""
        return f"[{self.severity.upper():5}] {self.signal}: {self.message} ({numbers}){causes}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _tail(x: np.ndarray, fraction: float = 0.25) -> np.ndarray:
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return x
    return x[-max(1, int(len(x) * fraction)):]


def _standard_error_of_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The standard error of mean(b) - mean(a) for two independent samples (Welch): sqrt(s_a^2/n_a + s_b^2/n_b);
    0 where a sample has one value (no spread to estimate)."""
    return float(np.sqrt(sum(np.var(x, ddof=1) / len(x) for x in (a, b) if len(x) > 1)))


def _head(x: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    x = x[np.isfinite(x)]
    return x[:max(1, int(len(x) * fraction))] if len(x) else x


def _column(table, name: str) -> np.ndarray:
    try:
        return np.asarray(table[name], dtype=float)
    except KeyError:
        return np.array([])


def _max_entropy(run) -> float | None:
    space = getattr(run, "action_space", None)
    n = getattr(space, "n", None)
    return math.log(int(n)) if n is not None else None


class Diagnosis(list):
    """What :func:`diagnose` found: the unhealthy findings in :data:`REPORT_ORDER` (a ``list`` of
    :class:`Finding`), and the healthy ones in ``.healthy``.

    It shows itself as the report, once: as text (``print(diagnosis)``, the Python prompt) and as
    markdown when it is the last line of a notebook cell.
    """

    def __init__(self, unhealthy: list[Finding] = (), healthy: list[Finding] = ()):
        super().__init__(unhealthy)
        self.healthy = list(healthy)

    def report_lines(self) -> list[str]:
        """The report as plain-text lines: the unhealthy findings, the healthy signals, then the notes."""
        if self:
            lines = [f"{len(self)} signal(s) look unhealthy ({REPORT_ORDER}):"]
            lines += [f"  {number}. {finding}" for number, finding in enumerate(self, 1)]
        else:
            lines = ["all signals look healthy"]
        if self.healthy:
            lines.append("healthy: " + ", ".join(finding.signal for finding in self.healthy))
        lines += [f"  note: {finding}" for finding in self.healthy if finding.note]
        return lines

    def __str__(self) -> str:
        return "\n".join(self.report_lines())

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """IPython's text display (it would otherwise print a list subclass as a list)."""
        printer.text(str(self))

    def _repr_markdown_(self) -> str:
        """The report in a notebook: one numbered item per unhealthy finding, causes in code font."""
        if self:
            lines = [f"**{len(self)} signal(s) look unhealthy** ({REPORT_ORDER}):", ""]
            lines += [f"{number}. {_markdown(finding)}" for number, finding in enumerate(self, 1)]
        else:
            lines = ["**all signals look healthy**"]
        if self.healthy:
            lines += ["", "healthy: " + ", ".join(_escape(finding.signal) for finding in self.healthy)]
        lines += ["", *(f"- note: {_markdown(finding)}" for finding in self.healthy if finding.note)]
        return "\n".join(lines)


def _escape(text: str) -> str:
    """``text`` with the characters markdown would read as formatting escaped."""
    return "".join("\\" + char if char in "\\`*_[]<>#|" else char for char in text)


def _markdown(finding: Finding) -> str:
    """One finding as a markdown list item: severity, signal, message, evidence and likely causes."""
    evidence = ", ".join(f"`{name}={_fmt(value)}`" for name, value in finding.evidence.items())
    text = f"**{finding.severity.upper()}** {_escape(finding.signal)}: {_escape(finding.message)}"
    text += f" ({evidence})" if evidence else ""
    if finding.causes and finding.severity != "ok":
        causes = []
        for cause in finding.causes:
            name, _, rest = cause.partition(" ")
            causes.append(f"`{name}` {_escape(rest)}".rstrip() if name in TRAPS else _escape(cause))
        text += "<br>likely causes: " + "; ".join(causes)
    return text


def diagnose(run, verbose: bool = False, top: int | None = None) -> Diagnosis:
    """Check the seven signals of ``run`` (a :class:`~pgcourse.rl.run.Run` or anything with ``.history``).

    Returns a :class:`Diagnosis`: the unhealthy findings in :data:`REPORT_ORDER` (``top`` keeps only the
    first few), a list that shows itself as the report (as the last line of a notebook cell, or with
    ``print``), followed by the signals that looked healthy. ``verbose=True`` also prints the report
    (for scripts; in a notebook the returned value is displayed anyway).
    """
    history = run.history
    updates, episodes = history.updates, history.episodes
    findings: list[Finding] = []
    returns = _column(episodes, "return")

    # 1. non-finite numbers ---------------------------------------------------------------------
    bad_columns = {name: int((~np.isfinite(_column(updates, name))).sum())
                   for name in ("policy_loss", "value_loss", "entropy", "approx_kl")
                   if len(_column(updates, name)) and np.isfinite(_column(updates, name)).any()}
    bad_columns = {k: v for k, v in bad_columns.items() if v}
    stopped = str(history.status).startswith("stopped")
    if stopped or bad_columns:
        findings.append(Finding("non-finite log-probs/losses", "alarm",
                                "NaN/inf appeared" + (" and training stopped" if stopped else ""),
                                {"nonfinite_values": float(sum(bad_columns.values())), "stopped": float(stopped)},
                                ["ratio_from_probs (exp(log p) underflows, 0/0)", "log_std exploded",
                                 "learning rate too high"], broken=True))
    else:
        findings.append(Finding("non-finite log-probs/losses", "ok", "all finite"))

    # 2. entropy --------------------------------------------------------------------------------
    entropy = _column(updates, "entropy")
    h_max = _max_entropy(run)
    if len(entropy) and np.isfinite(entropy).any():
        start, end = float(np.mean(_head(entropy))), float(np.mean(_tail(entropy, 0.1)))
        evidence = {"entropy_start": start, "entropy_end": end}
        if h_max is not None:
            evidence["entropy_max"] = h_max
            if end < 0.1 * h_max:
                findings.append(Finding("entropy", "alarm", "entropy collapsed: the policy became deterministic",
                                        evidence, ["advantage_sign_flipped (reinforces the worst action until it is "
                                                   "certain)", "entropy_wrong_sign", "learning rate too high"]))
            elif end > 0.97 * h_max and (len(returns) < 2 or np.mean(_tail(returns, 0.1)) < 2 * max(np.mean(_head(returns)), 1.0)):
                findings.append(Finding("entropy", "warn", "entropy stuck at its maximum: the policy is still "
                                        "uniformly random", evidence,
                                        ["joint_grad_clip (one clip over both networks shrinks the actor's gradient; Adam undoes a steady "
                                         "factor, and alone it cost no measurable return in lesson 06)",
                                         "long_rollout (too few updates)", "low_critic_lr / learning rate too low"]))
            else:
                findings.append(Finding("entropy", "ok", "entropy falls gradually", evidence))
        elif end < start - 2.0:
            findings.append(Finding("entropy", "warn", "entropy fell by more than 2 nats", evidence,
                                    ["entropy_wrong_sign", "advantage_sign_flipped", "clipped_action_log_prob"]))
        else:
            findings.append(Finding("entropy", "ok", "no collapse", evidence))

    # 3. std of a Gaussian policy ---------------------------------------------------------------
    log_std = _column(updates, "log_std_mean")
    if len(log_std) and np.isfinite(log_std).any():
        end = float(np.mean(_tail(log_std, 0.1)))
        evidence = {"log_std_start": float(_head(log_std)[0]), "log_std_end": end, "std_end": math.exp(end)}
        if end < -2.5:
            findings.append(Finding("policy std", "alarm", "std collapsed: no exploration left", evidence,
                                    ["entropy_wrong_sign", "log_prob_not_summed", "clipped_action_log_prob",
                                     "advantage_sign_flipped"]))
        elif end > 1.0:
            findings.append(Finding("policy std", "warn", "std grew large: actions fly to the bounds", evidence,
                                    ["clipped_action_log_prob (out-of-bounds samples never look improbable)",
                                     "log_prob_not_summed", "advantage_sign_flipped"]))
        else:
            findings.append(Finding("policy std", "ok", "std in a sensible range", evidence))

    # 4. advantage scale ------------------------------------------------------------------------
    adv_std = _column(updates, "advantage_std")
    if len(adv_std) and np.isfinite(adv_std).any():
        median = float(np.median(_tail(adv_std, 0.5)))
        evidence = {"advantage_std_median": median, "advantage_std_max": float(np.nanmax(adv_std))}
        if median > 20.0 and _normalises_advantages(run):
            findings.append(Finding("advantage scale", "ok", "raw advantages are large, but they are standardised "
                                    "before the policy loss (the critic's fit is signal 5's job)", evidence))
        elif median > 20.0:
            findings.append(Finding("advantage scale", "warn", "raw advantages are large: the critic is far from the "
                                    "returns (fine if you normalise, a problem for the value loss)", evidence,
                                    ["low_critic_lr (critic lags its returns)", "joint_grad_clip",
                                     "truncation_as_termination", "rewards not normalised"]))
        elif median < 1e-4:
            findings.append(Finding("advantage scale", "warn", "advantages are ~0: nothing to learn from", evidence,
                                    ["reward constant", "normalising a single element"]))
        else:
            findings.append(Finding("advantage scale", "ok", "advantages of moderate size", evidence))

    # 5. explained variance ---------------------------------------------------------------------
    ev = _column(updates, "explained_variance")
    rel_error = _column(updates, "value_rel_error")  # absent in runs saved before it was logged
    if len(ev) and np.isfinite(ev).any():
        median = float(np.median(_tail(ev, 0.5)))
        evidence = {"explained_variance_median_last_half": median}
        causes = ["low_critic_lr", "joint_grad_clip (one clip factor for both networks)", "truncation_as_termination "
                  "(targets jump at time limits)", "long_rollout (few critic steps)"]
        if _critic_clipped_alone(run):  # one shared clip then leaves the critic's step as its own clip had it
            causes.remove("joint_grad_clip (one clip factor for both networks)")
        error = float(np.median(_tail(rel_error, 0.5))) if len(rel_error) and np.isfinite(rel_error).any() else None
        steps = _column(updates, "env_step")
        if len(steps) and steps[-1] / len(steps) >= LONG_ROLLOUT_STEPS:  # few critic updates: the likeliest cause
            causes = ["long_rollout (few critic steps)", *(c for c in causes if not c.startswith("long_rollout"))]
        if error is not None:  # judge the critic by its error; explained variance alone cries wolf
            findings.append(_critic_finding(run, median, error, causes))
        elif median < 0.0:
            findings.append(Finding("explained variance", "alarm", "the critic is worse than predicting the mean",
                                    evidence, causes))
        elif median < 0.3:
            findings.append(Finding("explained variance", "warn", "the critic explains little of the returns",
                                    evidence, causes))
        else:
            findings.append(Finding("explained variance", "ok", "the critic tracks the returns", evidence))

    # 6. approx-KL and clip fraction (PPO) -----------------------------------------------------
    kl, clip = _column(updates, "approx_kl"), _column(updates, "clip_fraction")
    if len(kl) and np.isfinite(kl).any() and run_algo(run) == "ppo":
        kl_mean, clip_mean = float(np.nanmean(kl)), float(np.nanmean(clip))
        evidence = {"approx_kl_mean": kl_mean, "clip_fraction_mean": clip_mean}
        if kl_mean < 1e-9 and clip_mean < 1e-9:
            findings.append(Finding("KL / clip fraction", "alarm", "approx-KL and clip fraction are exactly 0: the ratio "
                                    "is always 1, the 'old' policy moves with the new one", evidence,
                                    ["stale_old_log_probs (old log-probs recomputed after the update)"], broken=True))
        elif kl_mean > KL_WILD:
            continuous = bool(len(log_std)) and bool(np.isfinite(log_std).any())  # a Gaussian policy logs its std
            causes = (["log_prob_not_summed (a [B, D] log-prob broadcasts against the [B] advantages: every ratio "
                       "meets every advantage)", "clipped_action_log_prob", "learning rate too high"] if continuous
                      else ["learning rate too high / too many epochs", "ratio_from_probs"])
            findings.append(Finding("KL / clip fraction", "alarm", "each update moves the policy by more than "
                                    f"{KL_WILD} nats on average: the loss is not a small step on pi_old", evidence,
                                    causes, broken=True))
        elif kl_mean > 0.05 or clip_mean > 0.3:
            findings.append(Finding("KL / clip fraction", "warn", "updates move the policy far from pi_old", evidence,
                                    ["learning rate too high / too many epochs", "per_minibatch_adv_norm",
                                     "advantage_sign_flipped"]))
        elif kl_mean < 1e-4:
            findings.append(Finding("KL / clip fraction", "warn", "the policy barely moves per update", evidence,
                                    ["joint_grad_clip (actor step scaled down by the critic's gradient)",
                                     "learning rate too low"]))
        else:
            findings.append(Finding("KL / clip fraction", "ok", "in the usual range (KL 1e-4..0.05, clip < 0.3)",
                                    evidence))

    # 7. gradient norms ---------------------------------------------------------------------------
    actor, critic = _column(updates, "actor_grad_norm"), _column(updates, "critic_grad_norm")
    if len(actor) and np.isfinite(actor).any():
        evidence = {"actor_grad_norm_median": float(np.nanmedian(actor))}
        spike = float(np.nanmax(actor) / max(np.nanmedian(actor), 1e-12))
        evidence["actor_spike_ratio"] = spike
        ratio = float("nan")
        if len(critic) and np.isfinite(critic).any():
            ratio = float(np.nanmedian(critic / np.maximum(actor, 1e-12)))
            evidence["critic_to_actor_ratio"] = ratio
        frozen = len(kl) and np.isfinite(kl).any() and 0.0 < float(np.nanmean(kl)) < 1e-3  # exactly 0: signal 6
        if float(np.nanmedian(actor)) < ACTOR_GRAD_DEAD:
            findings.append(Finding("grad norms", "alarm", "the actor gets (almost) no gradient: its policy cannot "
                                    "learn, whatever the returns say", evidence,
                                    ["a policy loss that does not reach the actor's parameters (a detach, or a shape "
                                     "bug in the policy loss)", "advantages that are all ~0"], broken=True))
        elif np.isfinite(ratio) and ratio > CRITIC_TO_ACTOR and (frozen or (h_max is not None and len(entropy)
                                                             and np.mean(_tail(entropy, 0.1)) > 0.97 * h_max)):
            findings.append(Finding("grad norms", "alarm", "the critic's gradient is far larger than the actor's and the "
                                    "policy is not moving: one clip over both networks would scale the actor's gradient by "
                                    "max_grad_norm / the joint norm, set by the critic's (with plain SGD that shrinks "
                                    "the actor's step; Adam undoes a steady factor)", evidence,
                                    ["joint_grad_clip", "low_critic_lr (critic far from large returns)"]))
        elif np.isfinite(ratio) and ratio > CRITIC_TO_ACTOR:
            # the usual picture: the critic regresses returns of tens to hundreds. Under one clip over both
            # networks the critic's norm would set the actor's clip factor too (under plain SGD the policy would
            # stop moving; Adam mostly undoes a steady factor); it moves.
            findings.append(Finding("grad norms", "ok", "critic gradient >> actor gradient, as usual for returns "
                                    "of this size; the policy still moves, so no shared clip is starving the actor",
                                    evidence))
        elif spike > 50:
            findings.append(Finding("grad norms", "warn", "gradient-norm spikes", evidence,
                                    ["learning rate too high", "advantage scale", "ratio_from_probs"]))
        else:
            findings.append(Finding("grad norms", "ok", "no spikes, critic/actor ratio moderate", evidence))

    # context: returns and update frequency ------------------------------------------------------
    if len(returns) >= 10:
        first, last = _head(returns), _tail(returns, 0.1)
        start, end = float(np.mean(first)), float(np.mean(last))
        noise = _standard_error_of_difference(first, last)
        evidence = {"return_start": start, "return_end": end, "episodes": float(len(returns)),
                    "standard_error": noise}
        margin = max(0.1 * abs(start), TREND_SE * noise)  # a change must be large and beyond the episodes' noise
        if end < start - margin - 1e-9:
            findings.append(Finding("return trend", "alarm", "returns went DOWN", evidence,
                                    ["advantage_sign_flipped", "entropy_wrong_sign"]))
        elif end < start + margin + 1.0:
            findings.append(Finding("return trend", "warn", "returns flat (no change beyond the episodes' noise)",
                                    evidence, FLAT_RETURN_CAUSES))
        else:
            findings.append(Finding("return trend", "ok", "returns improve", evidence))
    if len(returns) and len(updates):
        per_100 = 100.0 * len(updates) / len(returns)
        evidence = {"updates_per_100_episodes": per_100, "env_steps_per_update":
                    float(_column(updates, "env_step")[-1] / len(updates))}
        if run_algo(run) == "trpo":  # one trust-region step per large batch is TRPO's design, not a trap
            findings.append(Finding("updates per episode", "ok", "one trust-region step per batch (TRPO)", evidence))
        elif per_100 < 5:
            findings.append(Finding("updates per episode", "warn", "few updates per completed episode (short episodes "
                                    "inflate the episode count: judge by env_steps_per_update too)", evidence,
                                    ["long_rollout"]))
        else:
            findings.append(Finding("updates per episode", "ok", "enough updates per episode", evidence))

    for finding in findings:
        finding.causes = applicable_causes(finding.causes, run_algo(run))
    unhealthy = sorted((f for f in findings if f.severity != "ok"), key=report_position)
    diagnosis = Diagnosis(unhealthy[:top] if top is not None else unhealthy,
                          [f for f in findings if f.severity == "ok"])
    if verbose:
        print(diagnosis)
    return diagnosis


def applicable_causes(causes: list[str], algo: str | None) -> list[str]:
    """``causes`` without the traps that ``algo`` does not have (a REINFORCE run has no critic learning rate
    to get wrong); plain-word causes and every cause of a run of unknown algorithm are kept."""
    if algo is None:
        return list(causes)
    return [cause for cause in causes
            if cause.split(" ", 1)[0] not in TRAPS or algo in TRAPS[cause.split(" ", 1)[0]][0]]


def _normalises_advantages(run) -> bool:
    """Whether the run standardises its advantages (or REINFORCE's returns) before the policy loss."""
    config = getattr(run, "config", None)
    if getattr(config, "algo", None) == "reinforce":  # no critic: the "advantages" are the returns
        return bool(getattr(config, "normalize_weights", True))
    for name in ("normalize_advantages", "normalize_weights"):
        if isinstance(getattr(config, name, None), bool):
            return getattr(config, name)
    return False  # unknown (e.g. a hand-made run): judge the scale as it is


def _critic_finding(run, explained: float, error: float, causes: list[str]) -> Finding:
    r"""Signal 5 from the critic's relative rms error :math:`\epsilon = \sqrt{\mathrm{mean}(\hat R - V)^2}/
    \mathrm{mean}|\hat R|` (median over the last half), with explained variance as its context.

    Explained variance divides by :math:`\mathrm{Var}[\hat R]`, which is small whenever the targets barely
    vary, so on its own it cries wolf on healthy runs; :math:`\epsilon` says how far off the critic is.
    REINFORCE with baseline regresses Monte-Carlo returns cut at the time limit, which depend on the time
    left (not in the observation): its error never reaches 0, so its finding is at most a warning.
    The alarm: the error above :data:`CRITIC_FAR`, or an explained variance below :data:`EV_WORSE_THAN_MEAN`
    (clearly worse than predicting the targets' mean). An explained variance just below 0 beside a modest error
    is noise around 0 (lesson 06's caches: -0.0002 to -0.012 at errors 0.21-0.27, one of them a seed of the ten
    critic_lr 3e-4 runs whose nine others read "lags"), and no alarm.
    """
    evidence = {"explained_variance_median_last_half": explained, "value_rel_error_median_last_half": error}
    monte_carlo = run_algo(run) == "reinforce_baseline"
    if error <= CRITIC_LAGS:
        note = explained < 0.3
        message = ("the critic's typical error is under 20% of its targets" +
                   (" (explained variance is low: it predicts the targets' spread little better than their mean, "
                    "though its error is small next to their size; early in a run a correct critic often does the "
                    "same, so it is no finding by itself: compare with a correct twin)" if note else ""))
        return Finding("explained variance", "ok", message, evidence, note=note)
    if monte_carlo:
        return Finding("explained variance", "warn", "the critic lags its Monte-Carlo targets (one critic step per "
                       "batch; returns cut at the time limit also depend on the time left, which it cannot see)",
                       evidence, ["one critic step per batch (raise critic_epochs)", "critic_lr too low"])
    if error > CRITIC_FAR or explained < EV_WORSE_THAN_MEAN:  # EV just below 0 is noise, not an alarm
        return Finding("explained variance", "alarm", "the critic is far from its targets", evidence, causes)
    return Finding("explained variance", "warn", "the critic lags its targets", evidence, causes)


# Why a trap's listed signal cannot move in some settings (see inert_signals)
INERT_BECAUSE: dict[str, str] = {
    "joint_grad_clip": "the critic is clipped on its own at the same norm, so one shared clip leaves the critic's "
                       "step as it was (its clip factor changes by about 1e-5).",
}


def inert_signals(trap: str, config: Any) -> set[str]:
    """Signals of :data:`SHOWS_IN` ``[trap]`` that the trap cannot move in a run of ``config`` (a config object or
    its dict): ``joint_grad_clip`` where the critic is clipped on its own at the actor's norm (PPO's defaults)
    leaves the critic's step, so 'explained variance' does not read it."""
    if trap != "joint_grad_clip":
        return set()
    return {"explained variance"} if _clipped_alone(config) else set()


def _clipped_alone(config: Any) -> bool:
    get = config.get if isinstance(config, dict) else (lambda name: getattr(config, name, None))
    critic_clip, clip = get("critic_max_grad_norm"), get("max_grad_norm")
    return critic_clip is not None and clip is not None and critic_clip <= clip


def _critic_clipped_alone(run) -> bool:
    """Whether the run's critic is clipped on its own at the actor's norm (PPO's defaults): a shared clip over both
    networks then changes the critic's step by a factor ~1 - (actor/critic norm)^2 / 2, nothing a signal can see."""
    return _clipped_alone(getattr(run, "config", None))


def diagnose_record(record, **kwargs) -> Diagnosis:
    """:func:`diagnose` of a cached sweep trial (a :class:`pgcourse.course.sweeps.TrialRecord`): the run rebuilt from
    the record's config and history, with its environment's action space (for the entropy's maximum)."""
    from types import SimpleNamespace

    from ...rl.config import config_from_dict

    config = config_from_dict(record.config)
    run = SimpleNamespace(config=config, history=record.history, action_space=_action_space(config.env_id))
    return diagnose(run, **kwargs)


@functools.lru_cache(maxsize=None)
def _action_space(env_id: str):
    from ...rl.envs import make_env

    env = make_env(env_id)
    try:
        return env.action_space
    finally:
        env.close()


def run_algo(run) -> str | None:
    config = getattr(run, "config", None)
    return getattr(config, "algo", None)


def top_causes(findings: list[Finding], k: int = 3) -> list[str]:
    """The trap names mentioned in the causes of the first ``k`` findings, in order (no duplicates)."""
    names: list[str] = []
    for finding in findings[:k]:
        for cause in finding.causes:
            name = cause.split(" ", 1)[0]
            if name in TRAPS and name not in names:
                names.append(name)
    return names
