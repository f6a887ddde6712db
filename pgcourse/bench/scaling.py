"""``pgcourse bench scaling``: env steps per second of PPO CartPole from a thousand envs up, on whatever device is
present, beside a minimal plain-torch PPO loop doing the same work in the same run (issue 44, item 8).

Three measurements, each after one untimed warm-up run (kernels, allocator pools, CUDA's start-up), with the device
synchronised before every clock reading:

- **width**: ``pg.train``'s PPO on the torch CartPole env (``env_backend="torch"``) at each ``num_envs``, the
  "4x4 workload": ``n_steps`` 32, 4 epochs of 4 minibatches (``num_minibatches``), ``UPDATES`` updates;
- **plain loop**: the same workload written as plainly as torch allows (:func:`plain_ppo`): the same env class, the
  same networks and sizes, one Adam over both networks, no diagnostics, no history, no guard. It is the yardstick
  the course's loop is held to (the goal: at least 0.7x of it on a GPU);
- **agents**: ``pg.train_many`` with A agents of N torch envs each (``pg.train``'s loop with the agent axis; each
  agent's env on the device), at a few A.

Env steps are every sub-environment step taken (reset steps included), so both loops are counted for the same
work. The report names the device, torch's version and the date, and ``--json`` writes every number. On a GPU
the default widths reach 262,144 envs and the whole measurement took about a minute on an H200 (2026-11-26); on a
CPU they stop at 16,384 (a CPU gains nothing from width past a few thousand: docs/benchmark.md).
"""
from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

GPU_WIDTHS = (1024, 4096, 16384, 65536, 262144)
CPU_WIDTHS = (1024, 4096, 16384)
QUICK_WIDTHS = (1024, 4096)
AGENT_COUNTS = (1, 4, 16)
AGENT_ENVS = 256  # torch envs per agent in the agents measurement
N_STEPS, EPOCHS, MINIBATCHES, UPDATES = 32, 4, 4, 3
HIDDEN = (64, 64)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, work: Callable[[], int]) -> dict[str, float]:
    """``work()`` (it returns the env steps it took) once untimed, then once timed: steps, wall and CPU seconds."""
    work()
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    steps = work()
    synchronize(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"env_steps": steps, "wall_seconds": wall, "cpu_seconds": cpu,
            "steps_per_second": steps / wall if wall > 0 else float("inf")}


def course_ppo(device: torch.device, num_envs: int, updates: int) -> int:
    """``pg.train``'s PPO on the 4x4 workload; returns the env steps it took (every sub-env step)."""
    from ..rl.algorithms import train_ppo
    from ..rl.config import make_config
    batch = num_envs * N_STEPS
    config = make_config("ppo", "CartPole-v1", "discrete", seed=0, device=str(device), env_backend="torch",
                         progress=False, num_envs=num_envs, n_steps=N_STEPS, num_minibatches=MINIBATCHES,
                         update_epochs=EPOCHS, total_steps=2 * batch * updates, hidden_sizes=HIDDEN)

    def stop_after(trainer) -> None:  # exactly `updates` updates (reset steps do not count towards total_steps)
        trainer.stopped = trainer.stopped or trainer.num_updates >= updates
    run = train_ppo(config, on_update=stop_after)
    return len(run.history.updates) * batch


def plain_ppo(device: torch.device, num_envs: int, updates: int, seed: int = 0) -> int:
    """PPO on the torch CartPole env as plainly as torch writes it (the yardstick): per update ``N_STEPS`` steps of
    every env with no gradient, GAE backwards over the steps, ``EPOCHS`` epochs of ``MINIBATCHES`` shuffled
    minibatches, the clipped surrogate plus half the squared value error, one Adam step over both networks.
    Reset steps are trained on as ordinary steps (the work is the same; the course's loop drops them)."""
    from ..rl.tensor_envs import TensorVectorEnv
    torch.manual_seed(seed)
    envs = TensorVectorEnv("CartPole-v1", num_envs, device=device)

    def net(out: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(4, HIDDEN[0]), nn.Tanh(), nn.Linear(HIDDEN[0], HIDDEN[1]), nn.Tanh(),
                             nn.Linear(HIDDEN[1], out)).to(device)

    actor, critic = net(2), net(1)
    optimizer = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=1e-3)
    obs, _ = envs.reset(seed=seed)
    gamma, lam, clip = 0.99, 0.95, 0.2
    for _ in range(updates):
        obs_buf = torch.empty((N_STEPS, num_envs, 4), device=device)  # [T, N, 4]
        act_buf = torch.empty((N_STEPS, num_envs), dtype=torch.long, device=device)  # [T, N]
        logp_buf, val_buf, rew_buf, done_buf = (torch.empty((N_STEPS, num_envs), device=device) for _ in range(4))
        with torch.no_grad():
            for t in range(N_STEPS):
                logits = actor(obs)  # [N, 2]
                actions = torch.multinomial(torch.softmax(logits, -1), 1).squeeze(1)  # [N]
                obs_buf[t], act_buf[t], val_buf[t] = obs, actions, critic(obs).squeeze(1)
                logp_buf[t] = torch.log_softmax(logits, -1).gather(1, actions[:, None]).squeeze(1)
                obs, reward, terminated, truncated, _ = envs.step(actions)
                rew_buf[t], done_buf[t] = reward.float(), (terminated | truncated).float()
            next_value = critic(obs).squeeze(1)  # [N]
            advantages = torch.empty_like(rew_buf)  # [T, N]
            running = torch.zeros(num_envs, device=device)
            for t in reversed(range(N_STEPS)):
                following = next_value if t == N_STEPS - 1 else val_buf[t + 1]
                delta = rew_buf[t] + gamma * following * (1 - done_buf[t]) - val_buf[t]
                running = delta + gamma * lam * (1 - done_buf[t]) * running
                advantages[t] = running
            returns = advantages + val_buf
        b_obs, b_act, b_logp = obs_buf.reshape(-1, 4), act_buf.reshape(-1), logp_buf.reshape(-1)
        b_adv, b_ret = advantages.reshape(-1), returns.reshape(-1)
        size = b_obs.shape[0] // MINIBATCHES
        for _ in range(EPOCHS):
            permutation = torch.randperm(b_obs.shape[0], device=device)
            for k in range(MINIBATCHES):
                rows = permutation[k * size:(k + 1) * size]
                log_probs = torch.log_softmax(actor(b_obs[rows]), -1).gather(1, b_act[rows, None]).squeeze(1)
                ratio = (log_probs - b_logp[rows]).exp()
                adv = b_adv[rows]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
                value_loss = 0.5 * (critic(b_obs[rows]).squeeze(1) - b_ret[rows]).pow(2).mean()
                optimizer.zero_grad(set_to_none=True)
                (policy_loss + value_loss).backward()
                nn.utils.clip_grad_norm_([*actor.parameters(), *critic.parameters()], 0.5)
                optimizer.step()
    return updates * num_envs * N_STEPS


def agents_ppo(device: torch.device, agents: int, num_envs: int, updates: int) -> int:
    """``pg.train_many`` with ``agents`` seeds of ``num_envs`` torch envs each, the 4x4 workload."""
    from ..rl.many import train_many
    batch = num_envs * N_STEPS
    runs = train_many("ppo", "CartPole-v1", seeds=range(agents), total_steps=batch * updates, device=str(device),
                         progress=False, env_backend="torch", num_envs=num_envs, n_steps=N_STEPS, num_minibatches=MINIBATCHES,
                         update_epochs=EPOCHS, hidden_sizes=HIDDEN)
    return sum(len(run.history.updates) for run in runs) * batch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from . import _cpu_model
    threads = torch.get_num_threads()
    return f"{_cpu_model()} ({threads} torch thread{'s' if threads > 1 else ''})"


def measure(widths: Sequence[int], agent_counts: Sequence[int] | None = None, agent_envs: int | None = None,
            updates: int = UPDATES, device: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every measurement on ``device`` (default: CUDA when present, else the CPU); ``agent_counts`` and
    ``agent_envs`` default to ``AGENT_COUNTS`` and ``AGENT_ENVS``."""
    agent_counts = AGENT_COUNTS if agent_counts is None else agent_counts
    agent_envs = AGENT_ENVS if agent_envs is None else agent_envs
    where = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    result: dict[str, Any] = {"device": str(where), "device_name": device_name(where), "torch": torch.__version__,
                              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                              "workload": {"env": "CartPole-v1", "n_steps": N_STEPS, "epochs": EPOCHS,
                                           "minibatches": MINIBATCHES, "updates": updates, "hidden": list(HIDDEN)},
                              "widths": [], "agents": []}
    for width in sorted(widths):
        log(f"[scaling] {width:,} envs: the course's PPO, then the plain loop")
        course = timed(where, lambda: course_ppo(where, width, updates))
        plain = timed(where, lambda: plain_ppo(where, width, updates))
        result["widths"].append({"num_envs": width, "course": course, "plain": plain,
                                 "course_over_plain": course["steps_per_second"] / plain["steps_per_second"]})
    for count in agent_counts:
        log(f"[scaling] {count} agents x {agent_envs} torch envs (pg.train_many)")
        run = timed(where, lambda: agents_ppo(where, count, agent_envs, updates))
        result["agents"].append({"agents": count, "num_envs": agent_envs, **run})
    return result


def report_lines(result: dict[str, Any]) -> list[str]:
    workload = result["workload"]
    lines = [f"PPO CartPole-v1 on {result['device_name']} (device {result['device']}), torch {result['torch']}, "
             f"{result['date']}",
             f"{workload['n_steps']} steps x {workload['epochs']} epochs x {workload['minibatches']} minibatches, "
             f"{workload['updates']} updates, after a warm-up run; env steps per wall second",
             f"{'num_envs':>9} {'course (torch env)':>19} {'plain loop':>12} {'course / plain':>15}"]
    for row in result["widths"]:
        lines.append(f"{row['num_envs']:>9,} {row['course']['steps_per_second']:>19,.0f} "
                     f"{row['plain']['steps_per_second']:>12,.0f} {row['course_over_plain']:>14.2f}x")
    for row in result["agents"]:
        lines.append(f"{row['agents']:>3} agents x {row['num_envs']} torch envs (pg.train_many): "
                     f"{row['steps_per_second']:,.0f} env steps/s, {row['cpu_seconds']:.1f} CPU s")
    return lines


def main(widths: Sequence[int] | None = None, quick: bool = False, json_path: str | None = None) -> int:
    """Measure, print and (with ``json_path``) write."""
    on_gpu = torch.cuda.is_available()
    chosen = widths or (QUICK_WIDTHS if quick else GPU_WIDTHS if on_gpu else CPU_WIDTHS)
    result = measure(chosen, agent_counts=AGENT_COUNTS[:2] if quick else None, updates=2 if quick else UPDATES)
    for line in report_lines(result):
        print(line)
    if json_path:
        Path(json_path).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {json_path}")
    return 0
