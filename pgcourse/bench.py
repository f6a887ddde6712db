"""The course benchmark: how fast and how reliably each algorithm solves its environment.

For every case of the suite (algorithm, environment, budget) and every seed we train with the
course defaults, evaluating the greedy policy during training every ``eval_every`` env steps, then
evaluate the final policy on 20 fixed episodes (seeds 10000..10019). "Solved" means a mean return
over those 20 episodes at or above the environment's threshold (CartPole-v1: 475, Pendulum-v1: -200).
The time to solve is the first evaluation that reached it (``history.solved_at``); its wall time
excludes the time spent evaluating, so it measures learning alone.

Optionally (``stable-baselines3`` installed) the same machine trains Stable-Baselines3's PPO on
CartPole-v1 with the rl-zoo tuned hyperparameters for 100k steps, as a reference for speed:
the target is pgcourse PPO solving CartPole in at most a third of SB3's 100k-step wall time.
Both run with ``torch.set_num_threads(1)``.

Run it with ``pgcourse bench`` (see ``pgcourse bench --help``), or from Python::

    from pgcourse import bench
    report = bench.run_benchmark(bench.DEFAULT_SUITE, seeds=[0, 1, 2])
    bench.print_report(report)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .api import train
from .config import SOLVE_THRESHOLDS
from .evaluation import evaluate

EVAL_EPISODES = 20
EVAL_SEED = 10_000
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)
SB3_TIMESTEPS = 100_000
SB3_ENV_ID = "CartPole-v1"
SPEED_TARGET = 1 / 3
TINY_ENV_VAR = "PGCOURSE_BENCH_TINY"  # test-only: tiny budgets, one seed, a 512-step SB3 run
INSTALL_HINT = "pip install -e .[bench]"
_MANY_STEPS = 100_000_000  # step budget of episode-limited cases (the episode count stops them first)


# -- the suite ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchCase:
    """One (algorithm, environment, budget) of the suite.

    ``max_episodes`` set: the budget is episodes (``total_steps`` is only a safety cap).
    """

    algo: str
    env_id: str
    total_steps: int
    eval_every: int
    max_episodes: int | None = None

    @property
    def budget(self) -> str:
        if self.max_episodes is not None:
            return f"{self.max_episodes:,} episodes"
        return f"{self.total_steps // 1000:,}k steps" if self.total_steps % 1000 == 0 else f"{self.total_steps:,} steps"

    @property
    def threshold(self) -> float | None:
        return SOLVE_THRESHOLDS.get(self.env_id)

    def train_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"total_steps": self.total_steps, "eval_every": self.eval_every}
        if self.max_episodes is not None:
            kwargs["max_episodes"] = self.max_episodes
        return kwargs


DEFAULT_SUITE = (
    BenchCase("ppo", "CartPole-v1", total_steps=100_000, eval_every=2_500),
    BenchCase("a2c", "CartPole-v1", total_steps=200_000, eval_every=5_000),
    BenchCase("reinforce_baseline", "CartPole-v1", total_steps=_MANY_STEPS, eval_every=10_000, max_episodes=2_000),
    BenchCase("reinforce", "CartPole-v1", total_steps=_MANY_STEPS, eval_every=10_000, max_episodes=2_000),
    BenchCase("ppo", "Pendulum-v1", total_steps=150_000, eval_every=10_000),  # the course default budget
)

# A smoke run: the whole pipeline in a few minutes; the numbers say little.
QUICK_SUITE = (
    BenchCase("ppo", "CartPole-v1", total_steps=20_000, eval_every=2_500),
    BenchCase("a2c", "CartPole-v1", total_steps=20_000, eval_every=5_000),
    BenchCase("reinforce_baseline", "CartPole-v1", total_steps=_MANY_STEPS, eval_every=5_000, max_episodes=100),
    BenchCase("reinforce", "CartPole-v1", total_steps=_MANY_STEPS, eval_every=5_000, max_episodes=100),
    BenchCase("ppo", "Pendulum-v1", total_steps=20_000, eval_every=10_000),
)

# For the tests only (PGCOURSE_BENCH_TINY=1): seconds per case.
TINY_SUITE = (
    BenchCase("ppo", "CartPole-v1", total_steps=1_024, eval_every=512),
    BenchCase("a2c", "CartPole-v1", total_steps=1_024, eval_every=512),
    BenchCase("reinforce_baseline", "CartPole-v1", total_steps=_MANY_STEPS, eval_every=500, max_episodes=8),
    BenchCase("reinforce", "CartPole-v1", total_steps=_MANY_STEPS, eval_every=500, max_episodes=8),
    BenchCase("ppo", "Pendulum-v1", total_steps=1_024, eval_every=2_048),
)


def tiny_mode() -> bool:
    """True when the test-only environment variable ``PGCOURSE_BENCH_TINY=1`` is set."""
    return os.environ.get(TINY_ENV_VAR, "") not in ("", "0")


def select_cases(suite: Sequence[BenchCase], algos: Sequence[str] | None = None,
                 envs: Sequence[str] | None = None) -> list[BenchCase]:
    """The cases of ``suite`` whose algorithm is in ``algos`` and environment in ``envs`` (None: all)."""
    return [case for case in suite
            if (not algos or case.algo in algos) and (not envs or case.env_id in envs)]


# -- results ------------------------------------------------------------------------------------
@dataclass
class SeedResult:
    """One training run of one case with one seed, and the evaluation of its final policy.

    ``solved_*`` describe the first evaluation that reached the threshold: one during training
    (``history.solved_at``) or, failing that, the final evaluation (then at the end of training).
    They are None when no evaluation reached it. Wall times exclude evaluation time.
    """

    algo: str
    env_id: str
    seed: int
    budget: str
    threshold: float | None
    solved: bool
    solved_env_step: int | None
    solved_episodes: int | None
    solved_wall_seconds: float | None
    final_mean: float | None
    final_std: float | None
    total_env_steps: int
    episodes: int
    train_wall_seconds: float
    status: str
    error: str | None = None


@dataclass
class CaseSummary:
    """One table row: a case over all its seeds (medians over the seeds that solved)."""

    algo: str
    env_id: str
    budget: str
    seeds_solved: int
    seeds_total: int
    median_steps_to_solve: float | None
    median_episodes_to_solve: float | None
    median_wall_seconds_to_solve: float | None
    final_mean: float | None       # mean over seeds of each seed's final evaluation mean
    final_std: float | None        # std over seeds of the same
    final_min: float | None        # worst seed's final evaluation mean
    env_steps_per_second: float | None
    failures: int = 0


@dataclass
class SB3Result:
    """One Stable-Baselines3 PPO run on CartPole-v1 (rl-zoo hyperparameters)."""

    seed: int
    timesteps: int
    wall_seconds: float          # model.learn only
    final_mean: float
    final_std: float
    solved: bool


@dataclass
class BenchReport:
    """Everything one benchmark produced; :func:`print_report` and :func:`write_json` present it."""

    cases: list[BenchCase]
    seeds: list[int]
    device: str
    stop_when_solved: bool
    results: list[SeedResult] = field(default_factory=list)
    sb3_results: list[SB3Result] = field(default_factory=list)
    sb3_skipped: str | None = None      # why SB3 did not run (None: it ran)
    sb3_timesteps: int = SB3_TIMESTEPS
    tiny: bool = False

    @property
    def failed(self) -> bool:
        return any(result.error for result in self.results)


# -- pgcourse runs --------------------------------------------------------------------------------
def _solve_point(run: Any, final_mean: float, threshold: float | None, total_env_steps: int, episodes: int,
                 train_wall: float) -> tuple[bool, int | None, int | None, float | None]:
    solved_at = run.history.solved_at
    if solved_at is not None:
        return True, int(solved_at["env_step"]), int(solved_at["episodes"]), float(solved_at["wall_time"])
    if threshold is not None and final_mean >= threshold:
        return True, total_env_steps, episodes, train_wall
    return False, None, None, None


def _training_totals(run: Any) -> tuple[int, int, float]:
    """(env steps trained on, episodes finished, training wall seconds without evaluations)."""
    updates, episodes = run.history.updates, run.history.episodes
    total_env_steps = int(updates["env_step"][-1]) if len(updates) else 0
    wall_times = [table["wall_time"][-1] for table in (updates, episodes) if len(table)]
    return total_env_steps, len(episodes), float(max(wall_times, default=0.0))


def run_case_seed(case: BenchCase, seed: int, device: str = "cpu", stop_when_solved: bool = False,
                  eval_episodes: int = EVAL_EPISODES, eval_seed: int = EVAL_SEED) -> SeedResult:
    """Train ``case`` with ``seed`` (course defaults), evaluate the final policy, summarise."""
    run = train(case.algo, case.env_id, seed=seed, device=device, progress=False, torch_threads=1,
                   eval_episodes=eval_episodes, eval_seed=eval_seed, stop_when_solved=stop_when_solved,
                   **case.train_kwargs())
    final_mean, final_std, _ = evaluate(run, case.env_id, episodes=eval_episodes, seed=eval_seed)
    total_env_steps, episodes, train_wall = _training_totals(run)
    solved, steps, solved_episodes, wall = _solve_point(run, final_mean, case.threshold, total_env_steps, episodes,
                                                        train_wall)
    return SeedResult(case.algo, case.env_id, seed, case.budget, case.threshold, solved, steps, solved_episodes, wall,
                      final_mean, final_std, total_env_steps, episodes, train_wall, run.history.status)


def _failed_result(case: BenchCase, seed: int, error: BaseException) -> SeedResult:
    return SeedResult(case.algo, case.env_id, seed, case.budget, case.threshold, False, None, None, None, None, None,
                      0, 0, 0.0, "error", f"{type(error).__name__}: {error}")


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return float(statistics.median(present)) if present else None


def summarize_case(case: BenchCase, results: Sequence[SeedResult]) -> CaseSummary:
    """Aggregate the seeds of one case into a table row."""
    mine = [r for r in results if (r.algo, r.env_id, r.budget) == (case.algo, case.env_id, case.budget)]
    ran = [r for r in mine if r.error is None]
    solved = [r for r in ran if r.solved]
    finals = [r.final_mean for r in ran if r.final_mean is not None]
    train_seconds = sum(r.train_wall_seconds for r in ran)
    return CaseSummary(
        case.algo, case.env_id, case.budget, len(solved), len(mine),
        _median([r.solved_env_step for r in solved]), _median([r.solved_episodes for r in solved]),
        _median([r.solved_wall_seconds for r in solved]),
        float(statistics.fmean(finals)) if finals else None,
        float(statistics.pstdev(finals)) if finals else None,
        float(min(finals)) if finals else None,
        sum(r.total_env_steps for r in ran) / train_seconds if train_seconds > 0 else None,
        failures=len(mine) - len(ran))


# -- Stable-Baselines3 reference -------------------------------------------------------------------
def sb3_available() -> bool:
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        return False
    return True


def _linear_schedule(start: float) -> Callable[[float], float]:
    """rl-zoo's ``lin_<start>``: SB3 passes the fraction of training left, 1 -> 0."""
    return lambda progress_remaining: progress_remaining * start


def evaluate_sb3(model: Any, env_id: str = SB3_ENV_ID, episodes: int = EVAL_EPISODES,
                 seed: int = EVAL_SEED) -> list[float]:
    """Returns of ``episodes`` greedy episodes, episode ``i`` from ``reset(seed=seed + i)`` (as pg.evaluate)."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            episode_return, done = 0.0, False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = env.step(action)
                episode_return += float(reward)
                done = terminated or truncated
            returns.append(episode_return)
    finally:
        env.close()
    return returns


def run_sb3_ppo(seed: int, timesteps: int = SB3_TIMESTEPS, eval_episodes: int = EVAL_EPISODES,
                eval_seed: int = EVAL_SEED) -> SB3Result:
    """SB3 PPO on CartPole-v1 with the rl-zoo tuned hyperparameters, on CPU, one torch thread."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    torch.set_num_threads(1)
    envs = make_vec_env(SB3_ENV_ID, n_envs=8, seed=seed, vec_env_cls=DummyVecEnv)
    model = PPO("MlpPolicy", envs, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                ent_coef=0.0, learning_rate=_linear_schedule(1e-3), clip_range=_linear_schedule(0.2),
                device="cpu", seed=seed, verbose=0)
    started = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    wall_seconds = time.perf_counter() - started
    envs.close()
    returns = evaluate_sb3(model, SB3_ENV_ID, eval_episodes, eval_seed)
    mean, std = float(statistics.fmean(returns)), float(statistics.pstdev(returns))
    return SB3Result(seed, timesteps, wall_seconds, mean, std, mean >= SOLVE_THRESHOLDS[SB3_ENV_ID])


def speed_ratio(report: BenchReport) -> float | None:
    """Median pgcourse PPO wall seconds to solve CartPole / median SB3 PPO 100k-step wall seconds."""
    ppo = [r for r in report.results if r.algo == "ppo" and r.env_id == SB3_ENV_ID and r.solved]
    ours = _median([r.solved_wall_seconds for r in ppo])
    theirs = _median([r.wall_seconds for r in report.sb3_results])
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


# -- the whole benchmark ---------------------------------------------------------------------------
def _describe(result: SeedResult) -> str:
    if result.error:
        return f"FAILED ({result.error})"
    solved = (f"solved at {result.solved_env_step:,} steps / {result.solved_episodes:,} episodes "
              f"({result.solved_wall_seconds:.1f} s)" if result.solved else "not solved")
    return (f"{solved}; final {result.final_mean:.1f} ± {result.final_std:.1f}; "
            f"{result.total_env_steps:,} steps in {result.train_wall_seconds:.1f} s")


def run_benchmark(cases: Sequence[BenchCase], seeds: Sequence[int], *, device: str = "cpu",
                  stop_when_solved: bool = False, sb3: bool = True, sb3_seeds: Sequence[int] | None = None,
                  sb3_timesteps: int = SB3_TIMESTEPS, log: Callable[[str], None] | None = None,
                  tiny: bool = False) -> BenchReport:
    """Train every case with every seed (and SB3 PPO if ``sb3``); return the report.

    A run that raises is recorded as failed (its error kept) and the benchmark goes on.
    ``log`` receives one progress line per run (default: print to stdout).
    """
    import torch

    log = log or (lambda line: print(line, flush=True))
    torch.set_num_threads(1)
    report = BenchReport(list(cases), list(seeds), device, stop_when_solved, sb3_timesteps=sb3_timesteps, tiny=tiny)
    total = len(cases) * len(seeds)
    for index, (case, seed) in enumerate(((case, seed) for case in cases for seed in seeds), start=1):
        try:
            result = run_case_seed(case, seed, device=device, stop_when_solved=stop_when_solved)
        except Exception as error:  # keep going: one broken case must not hide the others' numbers
            result = _failed_result(case, seed, error)
        report.results.append(result)
        log(f"[{index}/{total}] {case.algo} {case.env_id} seed {seed}: {_describe(result)}")

    has_ppo_cartpole = any(c.algo == "ppo" and c.env_id == SB3_ENV_ID for c in cases)
    if not sb3:
        report.sb3_skipped = "skipped (--no-sb3)"
    elif not has_ppo_cartpole:
        report.sb3_skipped = f"skipped (the comparison needs ppo on {SB3_ENV_ID} in the suite)"
    elif not sb3_available():
        report.sb3_skipped = f"skipped: stable-baselines3 is not installed (install it with `{INSTALL_HINT}`)"
    else:
        for seed in (sb3_seeds if sb3_seeds is not None else seeds):
            result = run_sb3_ppo(seed, sb3_timesteps)
            report.sb3_results.append(result)
            log(f"[SB3] PPO {SB3_ENV_ID} seed {seed}: {result.timesteps:,} steps in {result.wall_seconds:.1f} s; "
                f"final {result.final_mean:.1f} ± {result.final_std:.1f}")
    return report


# -- presenting ------------------------------------------------------------------------------------
def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
                         for i, (cell, width) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule] + [line(row) for row in rows])


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def _mean_std(mean: float | None, std: float | None) -> str:
    return "—" if mean is None else f"{mean:.1f} ± {_fmt(std, '.1f')}"


def summary_table(report: BenchReport) -> str:
    headers = ["algo", "env", "budget", "solved", "med steps", "med episodes", "med wall s",
               "final mean ± std", "final min", "steps/s"]
    rows = []
    for case in report.cases:
        s = summarize_case(case, report.results)
        solved = f"{s.seeds_solved}/{s.seeds_total}" + (f" ({s.failures} failed)" if s.failures else "")
        rows.append([s.algo, s.env_id, s.budget, solved, _fmt(s.median_steps_to_solve),
                     _fmt(s.median_episodes_to_solve), _fmt(s.median_wall_seconds_to_solve, ".1f"),
                     _mean_std(s.final_mean, s.final_std), _fmt(s.final_min, ".1f"), _fmt(s.env_steps_per_second)])
    return format_table(headers, rows)


def detail_table(report: BenchReport) -> str:
    headers = ["algo", "env", "seed", "solved", "steps", "episodes", "wall s", "final mean ± std",
               "env steps", "train s", "status"]
    rows = [[r.algo, r.env_id, str(r.seed), "yes" if r.solved else "no", _fmt(r.solved_env_step),
             _fmt(r.solved_episodes), _fmt(r.solved_wall_seconds, ".1f"), _mean_std(r.final_mean, r.final_std),
             _fmt(r.total_env_steps), _fmt(r.train_wall_seconds, ".1f"), r.error or r.status]
            for r in report.results]
    return format_table(headers, rows)


def sb3_lines(report: BenchReport) -> list[str]:
    if report.sb3_skipped:
        return [f"SB3 comparison: {report.sb3_skipped}"]
    results = report.sb3_results
    walls = [r.wall_seconds for r in results]
    finals = [r.final_mean for r in results]
    lines = [f"SB3 PPO {SB3_ENV_ID} (rl-zoo hyperparameters, {report.sb3_timesteps:,} steps, cpu): "
             f"{sum(r.solved for r in results)}/{len(results)} seeds solved, final "
             f"{statistics.fmean(finals):.1f} ± {statistics.pstdev(finals):.1f}, "
             f"median wall {statistics.median(walls):.1f} s per run"]
    ratio = speed_ratio(report)
    ppo = [r for r in report.results if r.algo == "ppo" and r.env_id == SB3_ENV_ID and r.error is None]
    if ratio is None:
        lines.append(f"speed ratio: n/a (pgcourse PPO solved {SB3_ENV_ID} on {sum(r.solved for r in ppo)}/"
                     f"{len(ppo)} seeds; the ratio needs at least one)")
    else:
        ours = _median([r.solved_wall_seconds for r in ppo if r.solved])
        verdict = "met" if ratio <= SPEED_TARGET else "MISSED"
        lines.append(f"speed ratio: median pgcourse PPO wall s to solve {SB3_ENV_ID} / median SB3 "
                     f"{report.sb3_timesteps:,}-step wall s = {ours:.1f} / {statistics.median(walls):.1f} = "
                     f"{ratio:.2f} (target <= {SPEED_TARGET:.2f}: {verdict}; "
                     f"{sum(r.solved for r in ppo)}/{len(ppo)} pgcourse seeds solved)")
    return lines


def print_report(report: BenchReport, file: TextIO | None = None) -> None:
    """Print the summary table, the per-seed table and the SB3 comparison."""
    file = file or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=file)

    say()
    if report.tiny:
        say(f"(test mode {TINY_ENV_VAR}=1: tiny budgets, the numbers mean nothing)")
    say(f"pgcourse benchmark: seeds {report.seeds}, device {report.device}, torch threads 1 "
        "(pgcourse and SB3 alike, for a fair comparison)")
    say(f"solved = mean return of {EVAL_EPISODES} greedy evaluation episodes (seeds {EVAL_SEED}.."
        f"{EVAL_SEED + EVAL_EPISODES - 1}) >= threshold "
        + ", ".join(f"{env}: {SOLVE_THRESHOLDS[env]:g}" for env in sorted({c.env_id for c in report.cases})
                    if env in SOLVE_THRESHOLDS))
    say("steps/episodes/wall to solve: first evaluation reaching it, medians over solved seeds; "
        "wall seconds exclude evaluation time")
    say(f"final = the final policy's {EVAL_EPISODES}-episode mean; the table shows its mean ± std and min over seeds; "
        "steps/s = env steps trained on / training wall seconds")
    if report.stop_when_solved:
        say("stop_when_solved: on. Training ends at the first evaluation that solves, so the 'final' "
            "evaluation is of the policy at solve time.")
    say()
    say(summary_table(report))
    say()
    say("per seed:")
    say(detail_table(report))
    say()
    for line in sb3_lines(report):
        say(line)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_to_dict(report: BenchReport) -> dict[str, Any]:
    def rows(items: Sequence[Any]) -> list[dict[str, Any]]:
        return [{k: _clean(v) for k, v in dataclasses.asdict(item).items()} for item in items]

    return {
        "settings": {"seeds": report.seeds, "device": report.device, "stop_when_solved": report.stop_when_solved,
                     "eval_episodes": EVAL_EPISODES, "eval_seed": EVAL_SEED, "torch_threads": 1,
                     "tiny_test_mode": report.tiny, "cases": rows(report.cases)},
        "results": rows(report.results),
        "summary": rows([summarize_case(case, report.results) for case in report.cases]),
        "sb3": {"skipped": report.sb3_skipped, "timesteps": report.sb3_timesteps,
                "results": rows(report.sb3_results), "speed_ratio": _clean(speed_ratio(report)),
                "target": SPEED_TARGET},
    }


def write_json(report: BenchReport, path: str | os.PathLike) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report_to_dict(report), indent=1))
    return target


def main(algos: Sequence[str] | None = None, envs: Sequence[str] | None = None, seeds: Sequence[int] | None = None,
         quick: bool = False, stop_when_solved: bool = False, sb3: bool = True, json_path: str | None = None,
         device: str = "cpu") -> int:
    """What ``pgcourse bench`` runs; returns the exit code (1 if any training run failed)."""
    tiny = tiny_mode()
    suite = TINY_SUITE if tiny else QUICK_SUITE if quick else DEFAULT_SUITE
    cases = select_cases(suite, algos, envs)
    if not cases:
        raise ValueError(f"no benchmark case matches algos={list(algos or [])} envs={list(envs or [])}; the suite "
                         f"has {[(c.algo, c.env_id) for c in suite]}")
    if seeds is None:
        seeds = [0] if tiny else QUICK_SEEDS if quick else DEFAULT_SEEDS
    seeds = list(seeds)
    sb3_seeds = seeds[:1] if tiny else seeds[:3] if quick else seeds
    started = time.perf_counter()
    report = run_benchmark(cases, seeds, device=device, stop_when_solved=stop_when_solved, sb3=sb3,
                           sb3_seeds=sb3_seeds, sb3_timesteps=512 if tiny else SB3_TIMESTEPS, tiny=tiny)
    print_report(report)
    print(f"\nbenchmark took {time.perf_counter() - started:.0f} s")
    if json_path:
        print(f"per-seed results written to {write_json(report, json_path)}")
    if report.failed:
        print("some training runs FAILED (see the status column)", file=sys.stderr)
        return 1
    return 0


__all__ = ["BenchCase", "SeedResult", "CaseSummary", "SB3Result", "BenchReport", "DEFAULT_SUITE", "QUICK_SUITE",
           "run_case_seed", "run_sb3_ppo", "evaluate_sb3", "run_benchmark", "summarize_case", "speed_ratio",
           "print_report", "write_json", "report_to_dict", "select_cases", "format_table", "main"]
