"""Planted bugs ("traps") that the debugging chapter (lesson 06) switches on one at a time.

Each trap is a name an algorithm understands: ``pg.train("ppo", "CartPole-v1", traps=("joint_grad_clip",))``.
With ``traps=()`` nothing here runs and every algorithm is exactly the correct one.

There are three kinds of trap:

- **Buggy math** (most of them): a wrong version of one piece of :class:`~pgcourse.algorithms.Components`.
  :func:`apply`, called once in ``Trainer.__init__``, swaps it in. The buggy functions are below, each
  next to a comment saying what it gets wrong.
- **Config presets** (``long_rollout``, ``low_critic_lr``; ``entropy_wrong_sign`` also sets ``ent_coef``):
  :func:`apply` writes the values of :data:`PRESETS` into the config, so ``run.config`` records the
  values the run actually used.
- **Control flow** (``joint_grad_clip``, ``stale_old_log_probs``, ``clipped_action_log_prob``,
  ``per_minibatch_adv_norm``, ``missing_detach`` in REINFORCE with baseline): a one- or two-line
  ``if "<trap>" in config.traps:`` branch in the training loop, commented with the trap's name.

The module is also the lesson's toolbox: :func:`buggy_ppo` / :func:`fixed_ppo` overrides, the
reproduction table (``python -m pgcourse.traps reproduce``), the mystery runs of the bug hunt and
their answer check.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

ALL = ("reinforce", "reinforce_baseline", "a2c", "ppo")
ACTOR_CRITIC = ("a2c", "ppo")

# name -> (algorithms that implement it, one-line description)
TRAPS: dict[str, tuple[tuple[str, ...], str]] = {
    # the three root causes of the "flat-line" diary
    "joint_grad_clip": (ACTOR_CRITIC, "one Adam over actor+critic, one loss, one clip_grad_norm_ over both networks "
                                      "(the critic's big gradient shrinks the actor's step)"),
    "long_rollout": (("ppo",), "16 envs x 256 steps per rollout, 4 epochs of 4 minibatches: 16 gradient steps per "
                               "4096 transitions (default: 40 per 512)"),
    "low_critic_lr": (ACTOR_CRITIC, "critic_lr = 3e-4 (and actor lr = 3e-4), too slow to fit returns up to 500"),
    # the classic mistakes
    "truncation_as_termination": (ACTOR_CRITIC, "GAE cuts the bootstrap on truncation too (time limit treated as "
                                                "a terminal state)"),
    "advantage_sign_flipped": (ALL, "the policy loss uses -A: it makes bad actions more likely"),
    "missing_detach": (ALL, "the policy loss does not detach its weights, so its gradient flows into whatever "
                            "computed the advantage (the critic, in REINFORCE with baseline)"),
    "ratio_from_probs": (("ppo",), "PPO ratio as exp(new)/exp(old) instead of exp(new - old)"),
    "log_prob_not_summed": (ACTOR_CRITIC, "Gaussian log-prob returned per action dimension [B, D], not summed to [B]"),
    "clipped_action_log_prob": (ACTOR_CRITIC, "the sampled action is clipped to the bounds before it and its "
                                              "log-prob are stored"),
    "stale_old_log_probs": (("ppo",), "the 'old' log-probs are recomputed from the policy being updated, so the "
                                      "ratio is always 1 and nothing is clipped"),
    "entropy_wrong_sign": (ALL, "entropy term +beta H instead of -beta H (sets ent_coef=0.01 if it was 0): "
                                "the bonus punishes exploration"),
    "per_minibatch_adv_norm": (("ppo",), "advantages normalised per minibatch instead of once per batch"),
}

# Config values a trap writes into the run's config (recorded in run.config). Values are exactly these.
PRESETS: dict[str, dict[str, Any]] = {
    "long_rollout": dict(num_envs=16, n_steps=256, minibatch_size=1024, update_epochs=4),
    "low_critic_lr": dict(lr=3e-4, critic_lr=3e-4),
}

# The buggy PPO of the diary = the correct PPO with its three root causes switched on.
FLAT_LINE_TRAPS = ("joint_grad_clip", "long_rollout", "low_critic_lr")



def _map_jobs(function, jobs: list, workers: int, report=None) -> list:
    """``[function(job) for job in jobs]``, in ``workers`` processes when ``workers > 1`` (order kept).
    ``report(done, total, result)`` is called as each job finishes (the full reproduction takes ~21 min)."""
    results: list = [None] * len(jobs)
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers) as pool:
            futures = {pool.submit(function, job): i for i, job in enumerate(jobs)}
            for done, future in enumerate(as_completed(futures), start=1):
                results[futures[future]] = future.result()
                if report is not None:
                    report(done, len(jobs), results[futures[future]])
        return results
    for i, job in enumerate(jobs):
        results[i] = function(job)
        if report is not None:
            report(i + 1, len(jobs), results[i])
    return results


def _print_progress(done: int, total: int, result) -> None:
    summary = result[-1] if isinstance(result, tuple) else result  # experiments return (kind, summary)
    returns = summary.get("returns") or []
    last = f"last return {returns[-1]:.0f}" if returns else "no episode finished"
    seconds = f", {summary['seconds']:.0f} s" if "seconds" in summary else ""
    print(f"[{done}/{total}] {summary.get('label')} seed {summary.get('seed')}: {len(returns)} episodes, {last}{seconds}",
          flush=True)


def validate_traps(algo: str, traps: tuple[str, ...]) -> None:
    from .config import ConfigError

    for name in traps:
        if name not in TRAPS:
            known = sorted(TRAPS) or "none yet"
            raise ConfigError(f"traps: unknown trap {name!r}; known traps: {known}")
        algos, _ = TRAPS[name]
        if algo not in algos:
            raise ConfigError(f"traps: {name!r} is implemented for {algos}, not for algo={algo!r}")


def describe() -> dict[str, str]:
    """Name -> what the trap does, for the lesson's table."""
    return {name: description for name, (_, description) in TRAPS.items()}


# --------------------------------------------------------------------------------------------------
# The buggy pieces of math. Each wraps the piece it replaces (so a learner's own function still runs).
# --------------------------------------------------------------------------------------------------

def gae_truncation_as_termination(compute_gae: Callable) -> Callable:
    """GAE that treats ``truncated`` as ``terminated``: no bootstrap from V(s') at a time limit."""
    def buggy_compute_gae(rewards, values, next_values, terminated, truncated, gamma, lam):
        done = torch.maximum(terminated.float(), truncated.float())  # BUG: a time limit is not a terminal state
        return compute_gae(rewards, values, next_values, done, truncated, gamma, lam)
    return buggy_compute_gae


def flipped_reinforce_loss(reinforce_loss: Callable) -> Callable:
    def buggy_reinforce_loss(log_probs, weights):
        return reinforce_loss(log_probs, -weights)  # BUG: ascends -A
    return buggy_reinforce_loss


def flipped_surrogate_loss(surrogate: Callable) -> Callable:
    def buggy_clipped_surrogate_loss(new_log_probs, old_log_probs, advantages, clip_eps):
        return surrogate(new_log_probs, old_log_probs, -advantages, clip_eps)  # BUG: ascends -A
    return buggy_clipped_surrogate_loss


def reinforce_loss_no_detach(log_probs: Tensor, weights: Tensor) -> Tensor:
    """``-mean(log pi * w)`` without ``w.detach()``: the gradient also flows into ``w``'s graph."""
    return -(log_probs * weights).mean()  # BUG: weights are not constants


def surrogate_no_detach(new_log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, clip_eps: float) -> Tensor:
    ratio = torch.exp(new_log_probs - old_log_probs.detach())
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -torch.min(ratio * advantages, clipped * advantages).mean()  # BUG: advantages not detached


def surrogate_ratio_from_probs(new_log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor,
                               clip_eps: float) -> Tensor:
    """PPO's clipped surrogate with the ratio formed from raw probabilities (0/0 = NaN once they underflow)."""
    ratio = torch.exp(new_log_probs) / torch.exp(old_log_probs.detach())  # BUG: underflows below log p ~ -87 (float32)
    advantages = advantages.detach()
    clipped = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -torch.min(ratio * advantages, clipped * advantages).mean()


def gaussian_log_prob_not_summed(mean: Tensor, log_std: Tensor, actions: Tensor) -> Tensor:
    """Per-dimension Gaussian log-density ``[B, D]``: the missing ``.sum(-1)``."""
    log_std = log_std.expand_as(mean)
    z = (actions - mean) / torch.exp(log_std)
    return -0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)  # BUG: no .sum(dim=-1); [B, D] broadcasts


def entropy_bonus_wrong_sign(entropy: Tensor, ent_coef: float) -> Tensor:
    return ent_coef * entropy.mean()  # BUG: +beta H; minimising it lowers the entropy


def apply(config, components):
    """Swap in the buggy math and write the presets of ``config.traps``; returns the new Components.

    Called once by ``Trainer.__init__`` when ``config.traps`` is not empty. The config is changed in
    place (and re-validated) so that ``run.config`` shows the values actually used.
    """
    parts = dataclasses.replace(components)
    for name in config.traps:
        for field, value in PRESETS.get(name, {}).items():
            setattr(config, field, value)
        if name == "entropy_wrong_sign":
            if config.ent_coef == 0.0:
                config.ent_coef = 0.01
            parts.entropy_bonus_loss = entropy_bonus_wrong_sign
        elif name == "truncation_as_termination":
            parts.compute_gae = gae_truncation_as_termination(parts.compute_gae)
        elif name == "advantage_sign_flipped":
            parts.reinforce_loss = flipped_reinforce_loss(parts.reinforce_loss)
            parts.clipped_surrogate_loss = flipped_surrogate_loss(parts.clipped_surrogate_loss)
        elif name == "missing_detach":
            parts.reinforce_loss = reinforce_loss_no_detach
            parts.clipped_surrogate_loss = surrogate_no_detach
        elif name == "ratio_from_probs":
            parts.clipped_surrogate_loss = surrogate_ratio_from_probs
        elif name == "log_prob_not_summed":
            parts.gaussian_log_prob = gaussian_log_prob_not_summed
    config.validate()
    return parts


def joint_clip_and_step(trainer, loss: Tensor) -> tuple[float, float]:
    """The ``joint_grad_clip`` trap: one Adam over actor + critic, one backward of the summed loss, one
    ``clip_grad_norm_`` over all parameters. Returns the actor's and the critic's gradient norms *before*
    clipping (their ratio is the diagnostic)."""
    from . import diagnostics

    actor_params, critic_params = list(trainer.policy.parameters()), list(trainer.value_net.parameters())
    if getattr(trainer, "joint_optimizer", None) is None:
        trainer.joint_optimizer = torch.optim.Adam(
            [{"params": actor_params, "lr": trainer.config.lr}, {"params": critic_params, "lr": trainer.config.critic_lr}],
            eps=trainer.config.adam_eps)
    optimizer = trainer.joint_optimizer
    # follow the (possibly annealed) learning rates of the two regular optimisers
    optimizer.param_groups[0]["lr"] = trainer.actor_optimizer.param_groups[0]["lr"]
    optimizer.param_groups[1]["lr"] = trainer.critic_optimizer.param_groups[0]["lr"]
    optimizer.zero_grad()
    loss.backward()
    actor_norm, critic_norm = diagnostics.grad_norm(actor_params), diagnostics.grad_norm(critic_params)
    if trainer.config.max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(actor_params + critic_params, trainer.config.max_grad_norm)
    optimizer.step()
    return actor_norm, critic_norm


# --------------------------------------------------------------------------------------------------
# The lesson's experiments
# --------------------------------------------------------------------------------------------------

# The diary's buggy PPO used 3e-4 everywhere with joint clipping and long rollouts; its fixed PPO clipped
# separately, used critic_lr 1e-2 and 32-step rollouts. Here "fixed" is simply the course's default PPO.
FIXED_PPO: dict[str, Any] = {}
BUGGY_PPO: dict[str, Any] = {"traps": FLAT_LINE_TRAPS}


def updates_per_100_episodes(run) -> float:
    """Gradient updates (rollouts) per 100 completed episodes over the whole run."""
    episodes = len(run.history.episodes)
    return float("nan") if episodes == 0 else 100.0 * len(run.history.updates) / episodes


def gradient_steps_per_100_episodes(run) -> float:
    """Optimiser steps per 100 completed episodes (rollouts x epochs x minibatches)."""
    cfg = run.config
    per_update = 1
    if cfg.algo == "ppo":
        per_update = -(-(cfg.num_envs * cfg.n_steps) // cfg.minibatch_size) * cfg.update_epochs
    episodes = len(run.history.episodes)
    return float("nan") if episodes == 0 else 100.0 * per_update * len(run.history.updates) / episodes


REPRO_ALGOS: dict[str, tuple[str, dict[str, Any]]] = {
    "REINFORCE": ("reinforce", {}),
    "REINFORCE + baseline": ("reinforce_baseline", {}),
    "A2C + GAE": ("a2c", {}),
    "PPO fixed": ("ppo", {}),
    "PPO buggy": ("ppo", {"traps": FLAT_LINE_TRAPS}),
}
# The table's budget is episodes, so a learning-rate schedule over env steps has no natural end. Annealed
# over the 600k-step safety cap, A2C fell back from a moving average of 471-500 to 111-161 on 3 of 5 seeds
# (two stayed near 136); with constant rates it ended at 500 on 5/5 (lesson 06, section 2b). Every
# algorithm here runs with constant learning rates (REINFORCE's default), otherwise with the course defaults.
REPRO_SETTINGS: dict[str, Any] = {"anneal_lr": False}


def _repro_one(job: tuple[str, int, int, int, dict[str, Any]]) -> dict[str, Any]:
    import time

    from .api import train

    label, seed, episodes, max_steps, settings = job
    algo, overrides = REPRO_ALGOS[label]
    started = time.perf_counter()
    run = train(algo, "CartPole-v1", seed=seed, total_steps=max_steps, max_episodes=episodes, device="cpu",
                progress=False, **{**settings, **overrides})
    returns = run.history.episodes["return"][:episodes]
    steps = run.history.episodes["env_step"][:episodes]
    return {"label": label, "seed": seed, "returns": returns.tolist(), "env_steps": steps.tolist(),
            "seconds": time.perf_counter() - started,
            "updates_per_100_episodes": updates_per_100_episodes(run)}


def moving_average(x, window: int = 50):
    import numpy as np

    x = np.asarray(x, dtype=float)
    if len(x) == 0:
        return x
    cumsum = np.cumsum(np.insert(x, 0, 0.0))
    out = np.empty_like(x)
    for i in range(len(x)):
        lo = max(0, i + 1 - window)
        out[i] = (cumsum[i + 1] - cumsum[lo]) / (i + 1 - lo)
    return out


def episodes_to(returns, threshold: float = 475.0, window: int = 50) -> int | None:
    """First episode count at which the moving average (``window`` episodes) reaches ``threshold``."""
    import numpy as np

    ma = moving_average(returns, window)
    hits = np.nonzero(ma >= threshold)[0]
    return int(hits[0]) + 1 if len(hits) else None


def reproduction_table(results: list[dict[str, Any]], window: int = 50) -> list[dict[str, Any]]:
    """One row per algorithm: episodes-to-475 (moving average of ``window``) per seed, final average
    (mean of the last 100 episodes, mean and std over seeds), env steps used."""
    import numpy as np

    rows = []
    for label in REPRO_ALGOS:
        runs = [r for r in results if r["label"] == label]
        if not runs:
            continue
        to_475 = [episodes_to(r["returns"], 475.0, window) for r in runs]
        finals = [float(np.mean(r["returns"][-100:])) for r in runs]
        rows.append({"algorithm": label, "seeds": len(runs), "episodes_to_475": to_475,
                     "solved_seeds": sum(e is not None for e in to_475),
                     "median_episodes_to_475": (float(np.median([e for e in to_475 if e is not None]))
                                                if any(e is not None for e in to_475) else None),
                     "final_mean": float(np.mean(finals)), "final_std_over_seeds": float(np.std(finals)),
                     "episodes": [len(r["returns"]) for r in runs],
                     "env_steps_at_end": [int(r["env_steps"][-1]) if r["env_steps"] else 0 for r in runs],
                     "updates_per_100_episodes": float(np.mean([r["updates_per_100_episodes"] for r in runs]))})
    return rows


def _seed_curves(runs: list[dict[str, Any]], window: int):
    """Moving averages of every seed, cut to the shortest run: (episodes [n], curves [seeds, n])."""
    import numpy as np

    n = min(len(r["returns"]) for r in runs)
    curves = np.stack([moving_average(r["returns"], window)[:n] for r in runs])  # [seeds, n]
    return np.arange(1, n + 1), curves


def plot_reproduction(results: list[dict[str, Any]], path=None, window: int = 50):
    """Moving-average return of every algorithm over seeds.

    Top: mean over seeds (line) and min..max over seeds (band), against completed episodes and against
    env steps (each seed interpolated onto a common grid that ends where its shortest seed ends).
    Bottom: one panel per algorithm with every seed drawn, so a collapse or an outlier seed is visible.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [label for label in REPRO_ALGOS if any(r["label"] == label for r in results)]
    fig = plt.figure(figsize=(15, 8.5))
    grid = fig.add_gridspec(2, 2 * len(labels), height_ratios=(1.25, 1.0))
    ax_ep = fig.add_subplot(grid[0, :len(labels)])
    ax_st = fig.add_subplot(grid[0, len(labels):])
    colors = {label: f"C{i}" for i, label in enumerate(labels)}
    for i, label in enumerate(labels):
        runs = [r for r in results if r["label"] == label]
        episodes, curves = _seed_curves(runs, window)
        color = colors[label]
        ax_ep.plot(episodes, curves.mean(0), color=color, label=f"{label} ({len(runs)} seeds)")
        ax_ep.fill_between(episodes, curves.min(0), curves.max(0), color=color, alpha=0.12)
        # against env steps: interpolate each seed onto a common grid of env steps
        n = len(episodes)
        max_step = min(r["env_steps"][n - 1] for r in runs)
        steps = np.linspace(0, max_step, 300)
        on_grid = np.stack([np.interp(steps, np.asarray(r["env_steps"][:n]), c) for r, c in zip(runs, curves)])
        ax_st.plot(steps, on_grid.mean(0), color=color, label=label)
        ax_st.fill_between(steps, on_grid.min(0), on_grid.max(0), color=color, alpha=0.12)
        # bottom row: every seed of this algorithm
        ax = fig.add_subplot(grid[1, 2 * i:2 * i + 2], sharey=ax_ep)
        for seed_curve in curves:
            ax.plot(episodes, seed_curve, color=color, lw=0.8, alpha=0.7)
        ax.plot(episodes, curves.mean(0), color="black", lw=1.5, label="mean")
        reached = sum(episodes_to(r["returns"], 475.0, window) is not None for r in runs)
        finals = [float(np.mean(r["returns"][-100:])) for r in runs]
        ax.set_title(f"{label}\n{reached}/{len(runs)} reach 475; final {np.mean(finals):.0f} ± {np.std(finals):.0f}",
                     fontsize=9)
        ax.set_xlabel("completed episodes", fontsize=8)
        ax.axhline(475, color="grey", ls=":", lw=1)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if i == 0:
            ax.set_ylabel("each seed", fontsize=8)
        else:
            ax.tick_params(labelleft=False)
    ax_ep.set(xlabel="completed episodes", ylabel=f"return (moving average of {window})",
              title="CartPole-v1: mean over seeds, band = min..max, against episodes")
    ax_st.set(xlabel="env steps (each curve ends where its shortest seed ends)",
              title="... and against env steps")
    for ax in (ax_ep, ax_st):
        ax.axhline(475, color="grey", ls=":", lw=1)
        ax.grid(alpha=0.3)
    ax_ep.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def reproduce(out: str, json_out: str, seeds: int = 5, episodes: int = 1000, max_steps: int = 600_000,
              workers: int = 1, settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Run the reproduction table (5 algorithms x ``seeds``, each until ``episodes`` episodes, with
    ``max_steps`` env steps as a safety cap) and write the figure and the JSON.

    ``settings`` replace :data:`REPRO_SETTINGS` (e.g. ``{"anneal_lr": True}``) for every algorithm.
    """
    import json
    import time

    from .config import make_config

    settings = {**REPRO_SETTINGS, **(settings or {})}
    for label, (algo, overrides) in REPRO_ALGOS.items():  # a bad setting fails now, not after an hour
        make_config(algo, "CartPole-v1", "discrete", total_steps=max_steps, max_episodes=episodes,
                    **{**settings, **overrides})
    jobs = [(label, seed, episodes, max_steps, settings) for label in REPRO_ALGOS for seed in range(seeds)]
    started = time.perf_counter()
    results = _map_jobs(_repro_one, jobs, workers, report=_print_progress)
    table = reproduction_table(results)
    extra = "".join(f" --set {key}={value!r}" for key, value in settings.items() if REPRO_SETTINGS.get(key, object()) != value)
    payload = {"command": f"python -m pgcourse.traps reproduce --out {out} --json {json_out} --seeds {seeds} "
                          f"--episodes {episodes} --max-steps {max_steps}{extra}",
               "seconds": time.perf_counter() - started, "episodes": episodes, "max_steps": max_steps,
               "settings": {label: {**settings, **overrides} for label, (_, overrides) in REPRO_ALGOS.items()},
               "table": table, "runs": results}
    with open(json_out, "w") as f:
        json.dump(payload, f)
    plot_reproduction(results, out)
    return results


ABLATION = {"PPO fixed": (), "joint_grad_clip only": ("joint_grad_clip",), "long_rollout only": ("long_rollout",),
            "low_critic_lr only": ("low_critic_lr",), "all three (buggy PPO)": FLAT_LINE_TRAPS}
# (label, algo, env, traps, total_steps): one real run per classic mistake, beside its correct run
MORE_TRAPS = [
    ("CartPole PPO fixed", "ppo", "CartPole-v1", (), 15_000),
    *[(f"CartPole PPO {name}", "ppo", "CartPole-v1", (name,), 15_000)
      for name in ("advantage_sign_flipped", "ratio_from_probs", "stale_old_log_probs", "entropy_wrong_sign",
                   "per_minibatch_adv_norm", "missing_detach")],
    ("CartPole REINFORCE+baseline fixed", "reinforce_baseline", "CartPole-v1", (), 15_000),
    ("CartPole REINFORCE+baseline missing_detach", "reinforce_baseline", "CartPole-v1", ("missing_detach",), 15_000),
    ("Pendulum PPO fixed", "ppo", "Pendulum-v1", (), 50_000),
    *[(f"Pendulum PPO {name}", "ppo", "Pendulum-v1", (name,), 50_000)
      for name in ("truncation_as_termination", "log_prob_not_summed", "clipped_action_log_prob")],
]


def summarize_run(run, label: str, seed: int) -> dict[str, Any]:
    """What the lesson needs from a run: returns, env steps, the diagnostic columns and diagnose's verdict."""
    from .diagnose import diagnose, top_causes

    updates = run.history.updates
    findings = diagnose(run, verbose=False)
    columns = ("env_step", "explained_variance", "actor_grad_norm", "critic_grad_norm", "approx_kl", "clip_fraction",
               "entropy", "advantage_std", "log_std_mean")
    return {"label": label, "seed": seed, "algo": run.config.algo, "env": run.config.env_id,
            "traps": list(run.config.traps), "config": run.config.to_dict(), "status": run.history.status,
            "returns": run.history.episodes["return"].tolist(), "env_steps": run.history.episodes["env_step"].tolist(),
            "updates": {name: [None if v != v else v for v in updates[name].tolist()] for name in columns},
            "updates_per_100_episodes": updates_per_100_episodes(run),
            "gradient_steps_per_100_episodes": gradient_steps_per_100_episodes(run),
            "findings": [str(f) for f in findings[:3]], "top_causes": top_causes(findings, 3)}


def _experiment_one(job):
    from .api import train

    kind, label, algo, env, trap_names, steps, seed = job
    run = train(algo, env, seed=seed, total_steps=steps, device="cpu", progress=False, traps=trap_names)
    return kind, summarize_run(run, label, seed)


def experiments(json_out: str, seeds: int = 3, ablation_steps: int = 25_000, workers: int = 1) -> dict[str, Any]:
    """The ablation of the three root causes (over ``seeds``) and one run per classic mistake; writes JSON."""
    import json
    import time

    jobs = [("ablation", label, "ppo", "CartPole-v1", names, ablation_steps, seed)
            for label, names in ABLATION.items() for seed in range(seeds)]
    jobs += [("more", label, algo, env, names, steps, 0) for label, algo, env, names, steps in MORE_TRAPS]
    started = time.perf_counter()
    done = _map_jobs(_experiment_one, jobs, workers, report=_print_progress)
    payload = {"command": f"python -m pgcourse.traps experiments --json {json_out} --seeds {seeds} "
                          f"--ablation-steps {ablation_steps}",
               "ablation": [r for kind, r in done if kind == "ablation"],
               "more": [r for kind, r in done if kind == "more"], "seconds": time.perf_counter() - started}
    with open(json_out, "w") as f:
        json.dump(payload, f)
    return payload


# --------------------------------------------------------------------------------------------------
# The bug hunt
# --------------------------------------------------------------------------------------------------

MYSTERY_STEPS = 12_000
# The hidden traps are stored as hashes so that reading the source does not give the answers away.
_MYSTERY_SEEDS = {1: 3, 2: 1, 3: 2}
_MYSTERY_HASHES = {1: "8b3a8f007ac8273b", 2: "5566d6cb076ca9c4", 3: "08bfebc073a152c2"}


def _digest(name: str) -> str:
    return hashlib.sha256(("pgcourse-bug-hunt:" + name).encode()).hexdigest()[:16]


def _mystery_trap(k: int) -> str:
    for name in TRAPS:
        if _digest(name) == _MYSTERY_HASHES[k]:
            return name
    raise KeyError(k)


def mystery_run(k: int, total_steps: int = MYSTERY_STEPS):
    """Train mystery PPO trainer ``k`` (1, 2 or 3) on CartPole-v1: the course's PPO with one hidden trap."""
    from .api import train

    if k not in _MYSTERY_HASHES:
        raise ValueError("mystery trainers are numbered 1, 2 and 3")
    return train("ppo", "CartPole-v1", seed=_MYSTERY_SEEDS[k], total_steps=total_steps, device="cpu",
                 progress=False, traps=(_mystery_trap(k),))


def check_bug_hunt(answers: dict[int, str]) -> None:
    """Check the bug hunt: ``answers[k]`` is the trap name (a key of ``TRAPS``) planted in mystery trainer ``k``."""
    if not isinstance(answers, dict):
        raise AssertionError(f"answers must be a dict {{1: 'trap name', 2: ..., 3: ...}}, got {type(answers).__name__}")
    try:  # keys may arrive as strings (e.g. through JSON)
        answers = {int(k): v for k, v in answers.items()}
    except (TypeError, ValueError):
        raise AssertionError("answers must be keyed by the trainer numbers 1, 2 and 3") from None
    missing = [k for k in (1, 2, 3) if k not in answers]
    if missing:
        raise AssertionError(f"answers has no entry for mystery trainer(s) {missing}")
    for k in (1, 2, 3):
        name = answers[k]
        if not isinstance(name, str) or name not in TRAPS:
            raise AssertionError(f"mystery trainer {k}: {name!r} is not a trap name; choose one of {sorted(TRAPS)}")
    wrong = [k for k in (1, 2, 3) if _digest(answers[k]) != _MYSTERY_HASHES[k]]
    if wrong:
        raise AssertionError(f"mystery trainer(s) {wrong}: that is not the planted bug. Look again at which "
                             "signal pg.diagnose flags first, and what in the update could produce exactly that number.")
    print("✓ bug hunt: all three planted bugs named correctly")


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pgcourse.traps", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the reproduction table (5 algorithms x 5 seeds on CartPole-v1)")
    rep.add_argument("--out", default="figures/06_reproduction.png")
    rep.add_argument("--json", default="figures/06_reproduction.json")
    rep.add_argument("--seeds", type=int, default=5)
    rep.add_argument("--episodes", type=int, default=1000)
    rep.add_argument("--max-steps", type=int, default=600_000,
                     help="safety cap on env steps per run (1,000 CartPole episodes are at most 500,000)")
    rep.add_argument("--workers", type=int, default=1)
    rep.add_argument("--set", action="append", metavar="KEY=VALUE",
                     help=f"change a setting for every algorithm (default {REPRO_SETTINGS}), e.g. --set anneal_lr=True")
    exp = sub.add_parser("experiments", help="ablation of the three root causes + one run per classic mistake")
    exp.add_argument("--json", default="figures/06_traps.json")
    exp.add_argument("--seeds", type=int, default=3)
    exp.add_argument("--ablation-steps", type=int, default=25_000)
    exp.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "experiments":
        experiments(args.json, args.seeds, args.ablation_steps, args.workers)
    if args.command == "reproduce":
        from .cli import UsageError, parse_settings
        from .config import ConfigError

        try:
            reproduce(args.out, args.json, args.seeds, args.episodes, args.max_steps, args.workers,
                      parse_settings(args.set))
        except (UsageError, ConfigError) as error:
            parser.error(str(error))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
